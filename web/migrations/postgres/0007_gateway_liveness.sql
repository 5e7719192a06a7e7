-- Issue 14: liveness from evidence. The last time anything real came back from a gateway (an
-- event, a reply to any action), the last time the relay could not reach it and why, and its
-- last health report in full (the event queue's depth, oldest and parked events among it).
ALTER TABLE gateways ADD COLUMN last_contact_at BIGINT;
ALTER TABLE gateways ADD COLUMN last_unreachable_at BIGINT;
ALTER TABLE gateways ADD COLUMN last_unreachable_error TEXT;
ALTER TABLE gateways ADD COLUMN last_health_report TEXT;
