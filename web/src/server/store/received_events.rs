//! The ids of events already received: the gateway retries until it hears `accepted` or
//! `duplicate`, so an event may arrive more than once and must take effect once.

use sqlx::{Any, Transaction};

use super::super::db::{now_ms, StoreError};

/// Records an event id inside the transaction that applies it. `false` when it was already
/// recorded (a duplicate), in which case the caller applies nothing.
///
/// Insert-or-ignore on the primary key, not a read then a write: when two replicas receive the
/// same event at once, the second insert waits for the first transaction and then inserts
/// nothing (it committed: a duplicate) or the row (it rolled back: ours to apply), so exactly one
/// of them applies its effect.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    event_id: &str,
    gateway_id: i64,
    event_type: &str,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO received_events (event_id, gateway_id, event_type, received_at, outcome)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(gateway_id)
    .bind(event_type)
    .bind(now_ms())
    .bind("received")
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// What applying the event did (`applied`, `ignored`, `unmatched`, …), for the audit trail.
pub async fn set_outcome(
    tx: &mut Transaction<'_, Any>,
    event_id: &str,
    outcome: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE received_events SET outcome = $1 WHERE event_id = $2")
        .bind(outcome)
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What applying a received event did, `None` if it was never received (support's question
/// "did the cloud get it, and what did it do with it?").
pub async fn outcome(
    db: &super::super::db::Db,
    event_id: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT outcome FROM received_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| super::super::db::col(&r, "outcome"))
        .transpose()
}
