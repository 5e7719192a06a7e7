//! GatewayAction: the outbox and the audit trail of every message to a gateway. A row is written
//! in the same transaction as the change that caused it, and sent later by the outbox worker, so a
//! relay outage never loses a message or blocks a clinician's click.

use sqlx::{Any, Transaction};

use crate::domain::{ActionStatus, AppointmentStatus, DeliveryState, WorklistMessage};
use crate::model::{ActionDetail, ActionRow, Delivery};

use super::super::db::{col, date_time, now_ms, Db, StoreError};

const PENDING: &str = ActionStatus::Pending.as_str();
const SENT: &str = ActionStatus::Sent.as_str();
const CONFIRMED: &str = ActionStatus::Confirmed.as_str();
const FAILED: &str = ActionStatus::Failed.as_str();
const WITHDRAWN: &str = ActionStatus::Withdrawn.as_str();

/// The action type that puts an appointment on the modality worklist.
pub const CREATE_ITEM: &str = "worklist.create_item";
/// The action type that takes it off again.
pub const CANCEL_ITEM: &str = "worklist.cancel_item";
/// For a gateway whose message type is FHIR: the order (a ServiceRequest) in place of the
/// worklist item, and its revocation in place of the cancel.
pub const FHIR_ORDER: &str = "fhir.order";
pub const FHIR_REVOKE: &str = "fhir.revoke";

/// Whether an action type sends an appointment to the modality (the item, or the order).
pub fn sends_appointment(action_type: &str) -> bool {
    action_type == CREATE_ITEM || action_type == FHIR_ORDER
}

/// A new outbox row.
#[derive(Debug, Clone)]
pub struct NewAction<'a> {
    pub id: &'a str,
    pub gateway_id: i64,
    pub appointment_id: Option<i64>,
    pub action_type: &'a str,
    pub destination: &'a str,
    /// The unsigned action envelope (JSON); signed at each send.
    pub payload: &'a str,
}

/// Queues an action for sending now, after the appointment's earlier actions (its place in the
/// appointment's order is taken inside the caller's transaction; the unique index makes two
/// writers racing for the same place fail rather than share it).
pub async fn insert(
    tx: &mut Transaction<'_, Any>,
    action: &NewAction<'_>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let seq: Option<i64> = match action.appointment_id {
        Some(appointment_id) => {
            let r = sqlx::query(
                "SELECT COALESCE(MAX(appointment_seq), 0) + 1 AS next FROM gateway_actions
                 WHERE appointment_id = $1",
            )
            .bind(appointment_id)
            .fetch_one(&mut **tx)
            .await?;
            Some(col(&r, "next")?)
        }
        None => None,
    };
    sqlx::query(
        "INSERT INTO gateway_actions (id, gateway_id, appointment_id, action_type, destination,
             payload, status, created_at, attempts, next_attempt_at, appointment_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)",
    )
    .bind(action.id)
    .bind(action.gateway_id)
    .bind(action.appointment_id)
    .bind(action.action_type)
    .bind(action.destination)
    .bind(action.payload)
    .bind(PENDING)
    .bind(now)
    .bind(now)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An outbox row as the worker needs it.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub gateway_id: i64,
    pub provider_id: i64,
    pub appointment_id: Option<i64>,
    pub action_type: String,
    /// `probe` for the liveness monitor's health checks, which are tried once, never retried.
    pub destination: String,
    pub payload: String,
    pub attempts: i64,
}

/// The destination of the liveness monitor's scheduled health checks.
pub const PROBE: &str = "probe";

/// An action is held while an earlier action of its appointment is undelivered (pending, sent
/// or failed): a cancel must never overtake its create. `$1`/`$2` are the two statuses that let
/// later actions go ([`ActionStatus::lets_later_actions_go`]).
const NOT_HELD: &str = "NOT EXISTS (SELECT 1 FROM gateway_actions e
      WHERE a.appointment_id IS NOT NULL AND e.appointment_id = a.appointment_id
        AND e.appointment_seq < a.appointment_seq AND e.status NOT IN ($1, $2))";

/// Actions due now that no earlier action of their appointment holds back, oldest first:
/// pending ones whose next attempt has come, and sent ones whose claim's lease ran out (the
/// replica sending them died mid-send).
pub async fn due(db: &Db, now: i64, limit: i64) -> Result<Vec<Queued>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT a.id, a.gateway_id, g.provider_id, a.appointment_id, a.action_type, a.destination,
                a.payload, a.attempts
         FROM gateway_actions a JOIN gateways g ON g.id = a.gateway_id
         WHERE a.status IN ($3, $4) AND a.next_attempt_at <= $5 AND {NOT_HELD}
         ORDER BY a.next_attempt_at, a.created_at, a.appointment_seq LIMIT $6"
    ))
    .bind(CONFIRMED)
    .bind(WITHDRAWN)
    .bind(PENDING)
    .bind(SENT)
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Queued {
                id: col(r, "id")?,
                gateway_id: col(r, "gateway_id")?,
                provider_id: col(r, "provider_id")?,
                appointment_id: col(r, "appointment_id")?,
                action_type: col(r, "action_type")?,
                destination: col(r, "destination")?,
                payload: col(r, "payload")?,
                attempts: col(r, "attempts")?,
            })
        })
        .collect()
}

/// When the earliest pending action that is not held back falls due, if any (a held one is
/// woken by whatever settles the action before it).
pub async fn next_due(db: &Db) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT MIN(a.next_attempt_at) AS t FROM gateway_actions a
         WHERE a.status IN ($3, $4) AND {NOT_HELD}"
    ))
    .bind(CONFIRMED)
    .bind(WITHDRAWN)
    .bind(PENDING)
    .bind(SENT)
    .fetch_one(&db.pool)
    .await?;
    col(&row, "t")
}

/// Who is sending an action, and until when no other replica may take it over.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The replica's id ([`crate::server::state::AppState::replica`]).
    pub replica: &'a str,
    /// How long one attempt can take, with room to spare: past it the sender is presumed dead.
    pub lease: std::time::Duration,
}

/// Marks an attempt started: `sent`, one more attempt, claimed by this replica for the lease.
/// Returns false if someone else (another replica, or a re-drive racing the worker) changed the
/// row first. This one conditional update is the claim: PostgreSQL and SQLite both apply it to
/// the row once, so of several replicas that read the same due row exactly one sends it.
///
/// Taking over a `sent` row whose lease ran out marks it as maybe delivered: the dead replica may
/// have sent it.
pub async fn mark_sent(db: &Db, id: &str, claim: &Claim<'_>) -> Result<bool, StoreError> {
    let now = now_ms();
    let lease_until = now + i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX / 2);
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, sent_at = $2, attempts = attempts + 1,
             next_attempt_at = $3, claimed_by = $4,
             maybe_delivered = CASE WHEN status = $1 THEN 1 ELSE maybe_delivered END
         WHERE id = $5 AND (status = $6 OR (status = $1 AND next_attempt_at <= $2))",
    )
    .bind(SENT)
    .bind(now)
    .bind(lease_until)
    .bind(claim.replica)
    .bind(id)
    .bind(PENDING)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The gateway accepted the action. Whoever hears it, this replica or one that took over after
/// our lease ran out, the answer is true: the row is confirmed unless it was withdrawn or
/// confirmed already. Returns whether this call confirmed it.
pub async fn mark_confirmed(db: &Db, id: &str, reply: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, confirmed_at = $2, reply = $3, last_error = NULL
         WHERE id = $4 AND status IN ($5, $6, $7)",
    )
    .bind(CONFIRMED)
    .bind(now_ms())
    .bind(reply)
    .bind(id)
    .bind(SENT)
    .bind(PENDING)
    .bind(FAILED)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether an attempt that ended without a usable reply may still have reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// It cannot have been applied (no listener, a refusal the gateway signed, bad settings).
    No,
    /// It may have been (a timeout, a dropped connection, a reply we could not trust).
    Maybe,
}

impl Reached {
    fn flag(self) -> i64 {
        i64::from(self == Reached::Maybe)
    }
}

/// The gateway refused the action, or the configuration is wrong: a person must look. Only
/// while our claim holds: a replica that outlived its lease must not overwrite what the one that
/// took over learned. Returns false when the claim was lost.
pub async fn mark_failed(
    db: &Db,
    id: &str,
    claim: &Claim<'_>,
    error: &str,
    reply: Option<&str>,
    reached: Reached,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, failed_at = $2, last_error = $3, reply = COALESCE($4, reply),
             maybe_delivered = CASE WHEN $5 = 1 THEN 1 ELSE maybe_delivered END
         WHERE id = $6 AND status = $7 AND claimed_by = $8",
    )
    .bind(FAILED)
    .bind(now_ms())
    .bind(error)
    .bind(reply)
    .bind(reached.flag())
    .bind(id)
    .bind(SENT)
    .bind(claim.replica)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The gateway could not be reached: back to pending, to try again at `next_attempt_at`. Only
/// while our claim holds, as for [`mark_failed`].
pub async fn mark_retry(
    db: &Db,
    id: &str,
    claim: &Claim<'_>,
    error: &str,
    next_attempt_at: i64,
    reached: Reached,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, last_error = $2, next_attempt_at = $3,
             maybe_delivered = CASE WHEN $4 = 1 THEN 1 ELSE maybe_delivered END
         WHERE id = $5 AND status = $6 AND claimed_by = $7",
    )
    .bind(PENDING)
    .bind(error)
    .bind(next_attempt_at)
    .bind(reached.flag())
    .bind(id)
    .bind(SENT)
    .bind(claim.replica)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts one of the provider's failed (or waiting) actions back in the queue for now. Returns the
/// gateway id, so the caller can announce the change.
pub async fn redrive(db: &Db, provider_id: i64, id: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "SELECT a.status, a.appointment_id, a.action_type, ap.status AS appointment_status
         FROM gateway_actions a JOIN gateways g ON g.id = a.gateway_id
         LEFT JOIN appointments ap ON ap.id = a.appointment_id
         WHERE a.id = $1 AND g.provider_id = $2",
    )
    .bind(id)
    .bind(provider_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    let current = ActionStatus::parse(&col::<String>(&row, "status")?)?;
    if !current.can_redrive() {
        return Err(StoreError::Refused(format!(
            "only failed or waiting actions can be re-driven; this one is {current}"
        )));
    }
    let appointment_status: Option<String> = col(&row, "appointment_status")?;
    if sends_appointment(&col::<String>(&row, "action_type")?) {
        if let Some(s) = appointment_status {
            refuse_stale_create(AppointmentStatus::parse(&s)?)?;
        }
    }
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, next_attempt_at = $2, failed_at = NULL
         WHERE id = $3 AND status = $4",
    )
    .bind(PENDING)
    .bind(now_ms())
    .bind(id)
    .bind(current.as_str())
    .execute(&db.pool)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Refused(
            "the action changed meanwhile; reload and try again".into(),
        ));
    }
    col(&row, "appointment_id")
}

/// A worklist item is sent only for an appointment still waiting for the modality: never for a
/// cancelled one (a cancelled participant must not be offered), nor again once the modality
/// reported it (it has the item).
pub fn refuse_stale_create(appointment: AppointmentStatus) -> Result<(), StoreError> {
    match appointment {
        AppointmentStatus::SentToModality => Ok(()),
        other => Err(StoreError::Refused(format!(
            "the appointment is {}; its worklist item is not sent again",
            other.label().to_lowercase()
        ))),
    }
}

/// Where each of the given appointments' worklist items is, as the clinic and appointment pages
/// show it: the latest `worklist.create_item` of each, or the `worklist.cancel_item` behind it.
pub async fn deliveries(
    db: &Db,
    appointment_ids: &[i64],
) -> Result<std::collections::HashMap<i64, Delivery>, StoreError> {
    let mut out = std::collections::HashMap::new();
    if appointment_ids.is_empty() {
        return Ok(out);
    }
    // Ids are our own integers, so inlining them is safe; one query for a whole clinic.
    let list = appointment_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(&format!(
        "SELECT appointment_id, id, action_type, status, attempts, next_attempt_at, last_error
         FROM gateway_actions
         WHERE action_type IN ($1, $2, $3, $4) AND appointment_id IN ({list})
         ORDER BY appointment_seq"
    ))
    .bind(CREATE_ITEM)
    .bind(CANCEL_ITEM)
    .bind(FHIR_ORDER)
    .bind(FHIR_REVOKE)
    .fetch_all(&db.pool)
    .await?;
    for r in &rows {
        let status = ActionStatus::parse(&col::<String>(r, "status")?)?;
        let message = match col::<String>(r, "action_type")?.as_str() {
            CREATE_ITEM => WorklistMessage::Create,
            FHIR_ORDER => WorklistMessage::FhirOrder,
            // A cancel withdrawn as needless (its create never reached the gateway) leaves the
            // create's state as the one that tells.
            _ if status == ActionStatus::Withdrawn => continue,
            FHIR_REVOKE => WorklistMessage::FhirRevoke,
            _ => WorklistMessage::Cancel,
        };
        let attempts: i64 = col(r, "attempts")?;
        let state = DeliveryState::of(status, attempts);
        let next: Option<i64> = col(r, "next_attempt_at")?;
        out.insert(
            col(r, "appointment_id")?,
            Delivery {
                message,
                state,
                action_id: col(r, "id")?,
                attempts,
                next_attempt_at: next
                    .filter(|_| state == DeliveryState::Retrying)
                    .map(super::super::db::clock_time),
                reason: col::<Option<String>>(r, "last_error")?
                    .filter(|_| state != DeliveryState::Delivered),
            },
        );
    }
    Ok(out)
}

/// An appointment's worklist item action (its latest), as a cancellation needs to know it.
#[derive(Debug, Clone)]
pub struct CreateOf {
    pub id: String,
    /// `worklist.create_item` or `fhir.order`: what its cancellation must be.
    pub action_type: String,
    /// Where it went (a FHIR order's endpoint: its revocation goes there too).
    pub destination: String,
    pub status: ActionStatus,
    /// Some attempt may have reached the gateway (see [`Reached`]).
    pub maybe_delivered: bool,
}

/// The latest `worklist.create_item` of an appointment, if any.
pub async fn create_of(
    tx: &mut Transaction<'_, Any>,
    appointment_id: i64,
) -> Result<Option<CreateOf>, StoreError> {
    let r = sqlx::query(
        "SELECT id, action_type, destination, status, maybe_delivered FROM gateway_actions
         WHERE appointment_id = $1 AND action_type IN ($2, $3)
         ORDER BY appointment_seq DESC LIMIT 1",
    )
    .bind(appointment_id)
    .bind(CREATE_ITEM)
    .bind(FHIR_ORDER)
    .fetch_optional(&mut **tx)
    .await?;
    r.map(|r| {
        Ok(CreateOf {
            id: col(&r, "id")?,
            action_type: col(&r, "action_type")?,
            destination: col(&r, "destination")?,
            status: ActionStatus::parse(&col::<String>(&r, "status")?)?,
            maybe_delivered: col::<i64>(&r, "maybe_delivered")? != 0,
        })
    })
    .transpose()
}

/// Withdraws an undelivered action (pending or failed, or sent by a replica whose lease ran
/// out — then it may have been delivered, and is marked so): it will never be sent. Returns false
/// if it was no longer undelivered (a worker took it meanwhile), so the caller can fall back.
pub async fn withdraw(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, next_attempt_at = NULL, last_error = $2, failed_at = NULL,
             maybe_delivered = CASE WHEN status = $6 THEN 1 ELSE maybe_delivered END
         WHERE id = $3 AND (status IN ($4, $5) OR (status = $6 AND next_attempt_at <= $7))",
    )
    .bind(WITHDRAWN)
    .bind(reason)
    .bind(id)
    .bind(PENDING)
    .bind(FAILED)
    .bind(SENT)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// After withdrawing worklist item `create_id`: if no attempt of it can have reached the gateway,
/// the cancellations queued behind it (never tried) are needless and withdrawn too.
pub async fn withdraw_needless_cancels(
    tx: &mut Transaction<'_, Any>,
    appointment_id: i64,
    create_id: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, next_attempt_at = NULL, last_error = $2
         WHERE appointment_id = $3 AND action_type IN ($4, $7) AND status = $5 AND attempts = 0
           AND appointment_seq > (SELECT c.appointment_seq FROM gateway_actions c
                                  WHERE c.id = $6 AND c.maybe_delivered = 0)",
    )
    .bind(WITHDRAWN)
    .bind("nothing to cancel: the worklist item never reached the gateway")
    .bind(appointment_id)
    .bind(CANCEL_ITEM)
    .bind(PENDING)
    .bind(create_id)
    .bind(FHIR_REVOKE)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

fn row(r: &sqlx::any::AnyRow) -> Result<ActionRow, StoreError> {
    let t = |name: &str| -> Result<Option<String>, StoreError> {
        Ok(col::<Option<i64>>(r, name)?.map(date_time))
    };
    let status = ActionStatus::parse(&col::<String>(r, "status")?)?;
    Ok(ActionRow {
        id: col(r, "id")?,
        gateway_name: col(r, "gateway_name")?,
        action_type: col(r, "action_type")?,
        destination: col(r, "destination")?,
        appointment_id: col(r, "appointment_id")?,
        attempts: col(r, "attempts")?,
        created_at: date_time(col(r, "created_at")?),
        sent_at: t("sent_at")?,
        confirmed_at: t("confirmed_at")?,
        failed_at: t("failed_at")?,
        next_attempt_at: if status == ActionStatus::Pending {
            t("next_attempt_at")?
        } else {
            None
        },
        last_error: col(r, "last_error")?,
        may_redrive: status.can_redrive(),
        status,
    })
}

const LIST: &str = "SELECT a.id, g.name AS gateway_name, a.action_type, a.destination, a.appointment_id,
        a.status, a.attempts, a.created_at, a.sent_at, a.confirmed_at, a.failed_at, a.next_attempt_at, a.last_error
     FROM gateway_actions a JOIN gateways g ON g.id = a.gateway_id";

/// The provider's actions, newest first, optionally only those in one status.
pub async fn list(
    db: &Db,
    provider_id: i64,
    status_filter: Option<&str>,
    limit: i64,
) -> Result<Vec<ActionRow>, StoreError> {
    let rows = match status_filter.filter(|s| !s.is_empty()) {
        Some(s) => {
            sqlx::query(&format!(
                "{LIST} WHERE g.provider_id = $1 AND a.status = $2 AND a.destination <> '{PROBE}'
             ORDER BY a.created_at DESC LIMIT $3"
            ))
            .bind(provider_id)
            .bind(s)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "{LIST} WHERE g.provider_id = $1 AND a.destination <> '{PROBE}'
                 ORDER BY a.created_at DESC LIMIT $2"
            ))
            .bind(provider_id)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
    };
    rows.iter().map(row).collect()
}

/// Whether a liveness probe to the gateway is still queued or in flight (then no other is
/// queued: an outage must not pile them up).
pub async fn probe_outstanding(db: &Db, gateway_id: i64) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM gateway_actions
         WHERE gateway_id = $1 AND destination = $2 AND status IN ($3, $4)",
    )
    .bind(gateway_id)
    .bind(PROBE)
    .bind(PENDING)
    .bind(ActionStatus::Sent.as_str())
    .fetch_one(&db.pool)
    .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

/// Deletes settled liveness probes older than `before_ms` (kept a day for support; they are
/// not listed on the actions page). Returns how many.
pub async fn purge_probes(db: &Db, before_ms: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM gateway_actions WHERE destination = $1 AND created_at < $2
           AND status NOT IN ($3, $4)",
    )
    .bind(PROBE)
    .bind(before_ms)
    .bind(PENDING)
    .bind(ActionStatus::Sent.as_str())
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// One action of the provider.
pub async fn get(db: &Db, provider_id: i64, id: &str) -> Result<ActionRow, StoreError> {
    let r = sqlx::query(&format!("{LIST} WHERE a.id = $1 AND g.provider_id = $2"))
        .bind(id)
        .bind(provider_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    row(&r)
}

/// One action of the provider with its payload and the gateway's reply.
pub async fn detail(db: &Db, provider_id: i64, id: &str) -> Result<ActionDetail, StoreError> {
    let row = get(db, provider_id, id).await?;
    let r = sqlx::query("SELECT payload, reply FROM gateway_actions WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await?;
    let pretty = |text: String| {
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(text)
    };
    Ok(ActionDetail {
        row,
        payload: Some(pretty(col(&r, "payload")?)),
        reply: col::<Option<String>>(&r, "reply")?.map(pretty),
    })
}
