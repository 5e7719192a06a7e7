-- Issue 13: a C-STORE the gateway refused (image.validation_failed) that names no appointment —
-- usually refused before its data set (and accession number) was read — is kept here, so the
-- provider sees it on the clinics page instead of it vanishing.
CREATE TABLE refused_images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway_id BIGINT NOT NULL REFERENCES gateways(id),
    sop_instance_uid TEXT,
    accession_number TEXT,
    calling_ae_title TEXT NOT NULL,
    reason TEXT NOT NULL,
    refused_at BIGINT NOT NULL
);
CREATE INDEX refused_images_by_gateway ON refused_images (gateway_id, refused_at);
