-- Issue 14: roles per provider, accounts an administrator can disable, and the failed sign-ins
-- the throttle counts (in the database, so every replica counts the same attempts).
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'clinician';
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- One row per failed sign-in and subject: 'account:<email>' and 'address:<ip>'.
CREATE TABLE sign_in_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_by_subject ON sign_in_failures (subject, at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
