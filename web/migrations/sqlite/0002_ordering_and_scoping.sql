-- Issue 13: per-appointment ordering of the outbox, and studies/series/images scoped to the
-- gateway that reported them (SQLite dialect; migrations/postgres has the same for PostgreSQL).

-- An appointment's actions in the order they were queued (1, 2, …); the outbox sends one only
-- when every earlier one is delivered or withdrawn. NULL for actions of no appointment.
ALTER TABLE gateway_actions ADD COLUMN appointment_seq BIGINT;
-- 1 once an attempt may have reached the gateway without a reply (a timeout, a dropped
-- connection, a crash mid-send): withdrawing such an action still needs a cancel behind it.
ALTER TABLE gateway_actions ADD COLUMN maybe_delivered BIGINT NOT NULL DEFAULT 0;
UPDATE gateway_actions SET appointment_seq = (
    SELECT COUNT(*) FROM gateway_actions b
    WHERE b.appointment_id = gateway_actions.appointment_id
      AND (b.created_at < gateway_actions.created_at
           OR (b.created_at = gateway_actions.created_at AND b.id <= gateway_actions.id)))
WHERE appointment_id IS NOT NULL;
CREATE UNIQUE INDEX gateway_actions_per_appointment ON gateway_actions (appointment_id, appointment_seq);

-- The images the modality reported taken (MPPS COMPLETED), against which received ones count.
ALTER TABLE appointments ADD COLUMN images_taken BIGINT;

-- UIDs are unique per gateway, not across providers: SQLite cannot drop a column's UNIQUE, so
-- the three tables are rebuilt (children first, then renamed; the renames rewrite the references).
CREATE TABLE studies_scoped (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id BIGINT REFERENCES appointments(id),
    gateway_id BIGINT NOT NULL REFERENCES gateways(id),
    study_instance_uid TEXT NOT NULL,
    accession_number TEXT,
    description TEXT,
    patient_id TEXT,
    patient_name TEXT,
    patient_birth_date TEXT,
    study_date TEXT,
    UNIQUE (gateway_id, study_instance_uid)
);
INSERT INTO studies_scoped (id, appointment_id, gateway_id, study_instance_uid, accession_number, description)
    SELECT id, appointment_id, gateway_id, study_instance_uid, accession_number, description FROM studies;

CREATE TABLE series_scoped (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id BIGINT NOT NULL REFERENCES studies_scoped(id),
    series_instance_uid TEXT NOT NULL,
    number BIGINT,
    modality TEXT,
    UNIQUE (study_id, series_instance_uid)
);
INSERT INTO series_scoped SELECT id, study_id, series_instance_uid, number, modality FROM series;

CREATE TABLE images_scoped (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series_id BIGINT NOT NULL REFERENCES series_scoped(id),
    sop_instance_uid TEXT NOT NULL,
    instance_number BIGINT,
    laterality TEXT,
    view_position TEXT,
    kvp REAL,
    exposure_uas REAL,
    organ_dose_dgy REAL,
    entrance_dose_mgy REAL,
    anode TEXT,
    filter TEXT,
    body_part_thickness_mm REAL,
    compression_force_n REAL,
    thumbnail BLOB,
    thumbnail_format TEXT,
    received_at BIGINT NOT NULL,
    UNIQUE (series_id, sop_instance_uid)
);
INSERT INTO images_scoped SELECT id, series_id, sop_instance_uid, instance_number, laterality,
    view_position, kvp, exposure_uas, organ_dose_dgy, entrance_dose_mgy, anode, filter,
    body_part_thickness_mm, compression_force_n, thumbnail, thumbnail_format, received_at FROM images;

DROP TABLE images;
DROP TABLE series;
DROP TABLE studies;
ALTER TABLE studies_scoped RENAME TO studies;
ALTER TABLE series_scoped RENAME TO series;
ALTER TABLE images_scoped RENAME TO images;
CREATE INDEX studies_by_appointment ON studies (appointment_id);
