//! Gateways: a provider's on-site appliances and how to reach each through its relay. The row names
//! the environment variable holding the relay key, never the key itself.

use super::super::db::{col, now_ms, Db, StoreError};
use crate::domain::ActionStatus;

/// A gateway's relay and messaging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    pub relay_namespace: String,
    /// Where to dial instead of `wss://{namespace}` (the emulator in development).
    pub relay_endpoint: Option<String>,
    pub actions_hc: String,
    pub events_hc: String,
    pub key_name: String,
    /// The environment variable that holds the relay key.
    pub key_env_var: String,
    /// The gateway's message-signing public key (base64); its events and replies must verify.
    pub public_key: Option<String>,
    /// `dicom_worklist` (worklist.create_item) or `fhir_service_request`.
    pub message_type: String,
    /// Where on site the gateway delivers: the modality worklist it serves.
    pub destination: String,
    pub last_health_at: Option<i64>,
    pub last_health: Option<String>,
}

/// Fields of a new gateway.
#[derive(Debug, Clone)]
pub struct NewGateway {
    pub provider_id: i64,
    pub name: String,
    pub relay_namespace: String,
    pub relay_endpoint: Option<String>,
    pub actions_hc: String,
    pub events_hc: String,
    pub key_name: String,
    pub key_env_var: String,
    pub public_key: Option<String>,
    pub message_type: String,
    pub destination: String,
}

/// Adds a gateway.
pub async fn create(db: &Db, g: &NewGateway) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO gateways (provider_id, name, relay_namespace, relay_endpoint, actions_hc, events_hc,
             key_name, key_env_var, public_key, message_type, destination)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(g.provider_id)
    .bind(&g.name)
    .bind(&g.relay_namespace)
    .bind(g.relay_endpoint.as_deref())
    .bind(&g.actions_hc)
    .bind(&g.events_hc)
    .bind(&g.key_name)
    .bind(&g.key_env_var)
    .bind(g.public_key.as_deref())
    .bind(&g.message_type)
    .bind(&g.destination)
    .fetch_one(&db.pool)
    .await?;
    col(&row, "id")
}

const SELECT: &str =
    "SELECT id, provider_id, name, relay_namespace, relay_endpoint, actions_hc, events_hc,
        key_name, key_env_var, public_key, message_type, destination, last_health_at, last_health
     FROM gateways";

fn record(r: &sqlx::any::AnyRow) -> Result<GatewayRecord, StoreError> {
    Ok(GatewayRecord {
        id: col(r, "id")?,
        provider_id: col(r, "provider_id")?,
        name: col(r, "name")?,
        relay_namespace: col(r, "relay_namespace")?,
        relay_endpoint: col(r, "relay_endpoint")?,
        actions_hc: col(r, "actions_hc")?,
        events_hc: col(r, "events_hc")?,
        key_name: col(r, "key_name")?,
        key_env_var: col(r, "key_env_var")?,
        public_key: col(r, "public_key")?,
        message_type: col(r, "message_type")?,
        destination: col(r, "destination")?,
        last_health_at: col(r, "last_health_at")?,
        last_health: col(r, "last_health")?,
    })
}

/// Every gateway of every provider: the background workers serve them all.
pub async fn all(db: &Db) -> Result<Vec<GatewayRecord>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY id"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(record).collect()
}

/// One gateway by id, for the background workers (no provider scope).
pub async fn by_id(db: &Db, id: i64) -> Result<GatewayRecord, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    record(&row)
}

/// The provider's gateways.
pub async fn for_provider(db: &Db, provider_id: i64) -> Result<Vec<GatewayRecord>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} WHERE provider_id = $1 ORDER BY id"))
        .bind(provider_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(record).collect()
}

/// One of the provider's gateways.
pub async fn get(db: &Db, provider_id: i64, id: i64) -> Result<GatewayRecord, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1 AND provider_id = $2"))
        .bind(id)
        .bind(provider_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    record(&row)
}

/// How many of a gateway's actions are in each outbox state: pending, sent, confirmed, failed.
pub async fn queue_counts(
    db: &Db,
    gateway_id: i64,
) -> Result<[i64; ActionStatus::ALL.len()], StoreError> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM gateway_actions WHERE gateway_id = $1 GROUP BY status",
    )
    .bind(gateway_id)
    .fetch_all(&db.pool)
    .await?;
    let mut counts = [0; ActionStatus::ALL.len()];
    for r in &rows {
        let s: String = col(r, "status")?;
        if let Some(i) = ActionStatus::ALL.iter().position(|x| x.as_str() == s) {
            counts[i] = col(r, "n")?;
        }
    }
    Ok(counts)
}

/// Remembers the gateway's latest health report (a summary line).
pub async fn record_health(db: &Db, gateway_id: i64, summary: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE gateways SET last_health_at = $1, last_health = $2 WHERE id = $3")
        .bind(now_ms())
        .bind(summary)
        .bind(gateway_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}
