-- Issue 13: per-appointment ordering of the outbox, and studies/series/images scoped to the
-- gateway that reported them (PostgreSQL dialect; migrations/sqlite has the same for SQLite).

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

-- UIDs are unique per gateway, not across providers.
ALTER TABLE studies DROP CONSTRAINT studies_study_instance_uid_key;
ALTER TABLE studies ADD CONSTRAINT studies_per_gateway UNIQUE (gateway_id, study_instance_uid);
ALTER TABLE studies ADD COLUMN patient_id TEXT;
ALTER TABLE studies ADD COLUMN patient_name TEXT;
ALTER TABLE studies ADD COLUMN patient_birth_date TEXT;
ALTER TABLE studies ADD COLUMN study_date TEXT;
ALTER TABLE series DROP CONSTRAINT series_series_instance_uid_key;
ALTER TABLE series ADD CONSTRAINT series_per_study UNIQUE (study_id, series_instance_uid);
ALTER TABLE images DROP CONSTRAINT images_sop_instance_uid_key;
ALTER TABLE images ADD CONSTRAINT images_per_series UNIQUE (series_id, sop_instance_uid);
CREATE INDEX studies_by_appointment ON studies (appointment_id);
