-- Issue 15: what the hospital PACS has of each image (`image.archive_state` events). Keyed by
-- the gateway and the SOP instance, not the image row: the gateway forwards an object as soon as
-- it is stored, so its archive state can arrive before the image event that creates the row.
CREATE TABLE image_archive (
    gateway_id INTEGER NOT NULL REFERENCES gateways(id),
    sop_instance_uid TEXT NOT NULL,
    -- The destination's AE title (the gateway's PACS_FORWARD).
    destination TEXT NOT NULL,
    -- forwarded | committed | failed
    state TEXT NOT NULL,
    reason TEXT,
    -- The event's timestamp (unix ms): an older report never overwrites a newer one.
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, sop_instance_uid, destination)
);
