-- Issue 16: several replicas share one outbox. A replica that starts sending an action claims
-- it (`claimed_by`, its replica id) until a lease runs out, kept in `next_attempt_at` while the
-- action is `sent`; a `sent` action whose lease ran out (its replica died mid-send) is due again
-- for any replica. Nothing is reset at start-up any more, so actions interrupted before this
-- migration are due now.
ALTER TABLE gateway_actions ADD COLUMN claimed_by TEXT;
UPDATE gateway_actions SET next_attempt_at = 0 WHERE status = 'sent';
