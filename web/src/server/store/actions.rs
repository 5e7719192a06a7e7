//! GatewayAction: the outbox and the audit trail of every message to a gateway. A row is written
//! in the same transaction as the change that caused it, and sent later by the outbox worker, so a
//! relay outage never loses a message or blocks a clinician's click.

use sqlx::{Any, Transaction};

use crate::domain::ActionStatus;
use crate::model::{ActionDetail, ActionRow};

use super::super::db::{col, date_time, now_ms, Db, StoreError};

const PENDING: &str = ActionStatus::Pending.as_str();
const SENT: &str = ActionStatus::Sent.as_str();
const CONFIRMED: &str = ActionStatus::Confirmed.as_str();
const FAILED: &str = ActionStatus::Failed.as_str();

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

/// Queues an action for sending now.
pub async fn insert(
    tx: &mut Transaction<'_, Any>,
    action: &NewAction<'_>,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO gateway_actions (id, gateway_id, appointment_id, action_type, destination,
             payload, status, created_at, attempts, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
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
    pub payload: String,
    pub attempts: i64,
}

/// Pending actions whose next attempt is due, oldest first.
pub async fn due(db: &Db, now: i64, limit: i64) -> Result<Vec<Queued>, StoreError> {
    let rows = sqlx::query(
        "SELECT a.id, a.gateway_id, g.provider_id, a.appointment_id, a.action_type, a.payload, a.attempts
         FROM gateway_actions a JOIN gateways g ON g.id = a.gateway_id
         WHERE a.status = $1 AND a.next_attempt_at <= $2
         ORDER BY a.next_attempt_at, a.created_at LIMIT $3",
    )
    .bind(PENDING)
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
                payload: col(r, "payload")?,
                attempts: col(r, "attempts")?,
            })
        })
        .collect()
}

/// When the earliest pending action falls due, if any is pending.
pub async fn next_due(db: &Db) -> Result<Option<i64>, StoreError> {
    let row =
        sqlx::query("SELECT MIN(next_attempt_at) AS t FROM gateway_actions WHERE status = $1")
            .bind(PENDING)
            .fetch_one(&db.pool)
            .await?;
    col(&row, "t")
}

/// Marks an attempt started: `sent`, one more attempt. Returns false if someone else (a re-drive
/// racing the worker) changed the row first.
pub async fn mark_sent(db: &Db, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, sent_at = $2, attempts = attempts + 1, next_attempt_at = NULL
         WHERE id = $3 AND status = $4",
    )
    .bind(SENT)
    .bind(now_ms())
    .bind(id)
    .bind(PENDING)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The gateway accepted the action.
pub async fn mark_confirmed(db: &Db, id: &str, reply: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gateway_actions SET status = $1, confirmed_at = $2, reply = $3, last_error = NULL WHERE id = $4",
    )
    .bind(CONFIRMED)
    .bind(now_ms())
    .bind(reply)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The gateway refused the action, or the configuration is wrong: a person must look.
pub async fn mark_failed(
    db: &Db,
    id: &str,
    error: &str,
    reply: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gateway_actions SET status = $1, failed_at = $2, last_error = $3, reply = COALESCE($4, reply)
         WHERE id = $5",
    )
    .bind(FAILED)
    .bind(now_ms())
    .bind(error)
    .bind(reply)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The gateway could not be reached: back to pending, to try again at `next_attempt_at`.
pub async fn mark_retry(
    db: &Db,
    id: &str,
    error: &str,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gateway_actions SET status = $1, last_error = $2, next_attempt_at = $3 WHERE id = $4",
    )
    .bind(PENDING)
    .bind(error)
    .bind(next_attempt_at)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Puts one of the provider's failed (or waiting) actions back in the queue for now. Returns the
/// gateway id, so the caller can announce the change.
pub async fn redrive(db: &Db, provider_id: i64, id: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "SELECT a.status, a.appointment_id FROM gateway_actions a JOIN gateways g ON g.id = a.gateway_id
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
    sqlx::query(
        "UPDATE gateway_actions SET status = $1, next_attempt_at = $2, failed_at = NULL WHERE id = $3",
    )
    .bind(PENDING)
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?;
    col(&row, "appointment_id")
}

/// Actions left `sent` by a crash mid-send go back to pending at start-up: sending again is safe
/// because the gateway answers `exists` for an item it already has.
pub async fn requeue_interrupted(db: &Db) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE gateway_actions SET status = $1, next_attempt_at = $2 WHERE status = $3",
    )
    .bind(PENDING)
    .bind(now_ms())
    .bind(SENT)
    .execute(&db.pool)
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
            "{LIST} WHERE g.provider_id = $1 AND a.status = $2 ORDER BY a.created_at DESC LIMIT $3"
        ))
            .bind(provider_id)
            .bind(s)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "{LIST} WHERE g.provider_id = $1 ORDER BY a.created_at DESC LIMIT $2"
            ))
            .bind(provider_id)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
    };
    rows.iter().map(row).collect()
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
        payload: pretty(col(&r, "payload")?),
        reply: col::<Option<String>>(&r, "reply")?.map(pretty),
    })
}
