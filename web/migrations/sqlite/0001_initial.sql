-- The web app's schema (SQLite dialect; migrations/postgres holds the same schema for PostgreSQL).
-- Times are Unix epoch milliseconds (BIGINT) so the same queries run on both databases.

CREATE TABLE providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    ods_code TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL
);

CREATE TABLE sessions (
    token TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE gateways (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    name TEXT NOT NULL UNIQUE,
    relay_namespace TEXT NOT NULL,
    relay_endpoint TEXT,
    actions_hc TEXT NOT NULL,
    events_hc TEXT NOT NULL,
    key_name TEXT NOT NULL,
    key_env_var TEXT NOT NULL,
    public_key TEXT,
    message_type TEXT NOT NULL,
    destination TEXT NOT NULL,
    last_health_at BIGINT,
    last_health TEXT
);

CREATE TABLE clinics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    gateway_id BIGINT REFERENCES gateways(id),
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    clinic_date TEXT NOT NULL
);

CREATE TABLE participants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    nhs_number TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    UNIQUE (provider_id, nhs_number)
);

CREATE TABLE appointments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clinic_id BIGINT NOT NULL REFERENCES clinics(id),
    participant_id BIGINT NOT NULL REFERENCES participants(id),
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    accession_number TEXT UNIQUE,
    updated_at BIGINT NOT NULL
);

CREATE TABLE timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id BIGINT NOT NULL REFERENCES appointments(id),
    at BIGINT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX timeline_by_appointment ON timeline (appointment_id, at);

CREATE TABLE gateway_actions (
    id TEXT PRIMARY KEY,
    gateway_id BIGINT NOT NULL REFERENCES gateways(id),
    appointment_id BIGINT REFERENCES appointments(id),
    action_type TEXT NOT NULL,
    destination TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    confirmed_at BIGINT,
    failed_at BIGINT,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_error TEXT,
    reply TEXT
);
CREATE INDEX gateway_actions_due ON gateway_actions (status, next_attempt_at);

CREATE TABLE received_events (
    event_id TEXT PRIMARY KEY,
    gateway_id BIGINT NOT NULL REFERENCES gateways(id),
    event_type TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL
);

CREATE TABLE studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id BIGINT REFERENCES appointments(id),
    gateway_id BIGINT NOT NULL REFERENCES gateways(id),
    study_instance_uid TEXT NOT NULL UNIQUE,
    accession_number TEXT,
    description TEXT
);

CREATE TABLE series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    series_instance_uid TEXT NOT NULL UNIQUE,
    number BIGINT,
    modality TEXT
);

CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series_id BIGINT NOT NULL REFERENCES series(id),
    sop_instance_uid TEXT NOT NULL UNIQUE,
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
    received_at BIGINT NOT NULL
);
