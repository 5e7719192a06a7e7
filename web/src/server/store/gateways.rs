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
    /// What "Send to modality" produces: `dicom_worklist` (worklist.create_item).
    pub message_type: String,
    /// Where on site the gateway delivers: the modality worklist it serves.
    pub destination: String,
    pub last_health_at: Option<i64>,
    pub last_health: Option<String>,
    /// The gateway's last health report (`shared::wire::action::HealthReport` JSON).
    pub last_health_report: Option<String>,
    /// When anything real last came back from it: an event, or a reply to any action.
    pub last_contact_at: Option<i64>,
    /// When a send to it last found no listener or timed out, and the relay's words.
    pub last_unreachable_at: Option<i64>,
    pub last_unreachable_error: Option<String>,
}

/// What an administrator sets on a gateway: how to reach it through the relay, how to check what
/// it signs, and what "Send to modality" produces for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// The gateway's own name (`GATEWAY_NAME` on the appliance): actions are addressed to it.
    pub name: String,
    pub relay_namespace: String,
    pub relay_endpoint: Option<String>,
    pub actions_hc: String,
    pub events_hc: String,
    pub key_name: String,
    pub key_env_var: String,
    /// Comma-separated base64 Ed25519 public keys; during a key rotation both the old and the
    /// new key are listed, then the old one is removed.
    pub public_key: Option<String>,
    pub message_type: String,
    pub destination: String,
}

/// The message types "Send to modality" can produce, with what the page calls them.
pub const MESSAGE_TYPES: [(&str, &str); 2] = [
    (DICOM_WORKLIST, "DICOM modality worklist item"),
    (
        FHIR_SERVICE_REQUEST,
        "FHIR R4 ServiceRequest, delivered by the gateway to the destination URL",
    ),
];
/// The worklist item on the gateway's own modality worklist (`destination` is a label).
pub const DICOM_WORKLIST: &str = "dicom_worklist";
/// A FHIR order the gateway POSTs to `destination`, an http(s) URL on its `FHIR_DESTINATIONS`.
pub const FHIR_SERVICE_REQUEST: &str = "fhir_service_request";

impl GatewaySettings {
    pub fn sends_fhir(&self) -> bool {
        self.message_type == FHIR_SERVICE_REQUEST
    }

    /// Why these settings cannot be saved, naming the field, or `Ok`.
    pub fn check(&self) -> Result<(), StoreError> {
        let refuse = |why: String| Err(StoreError::Refused(why));
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        for (label, value) in [
            ("Gateway name", &self.name),
            ("Relay namespace", &self.relay_namespace),
            ("Actions hybrid connection", &self.actions_hc),
            ("Events hybrid connection", &self.events_hc),
            ("Relay key name", &self.key_name),
        ] {
            if !plain(value) {
                return refuse(format!(
                    "{label} must be letters, digits, '-', '_' or '.', not {value:?}"
                ));
            }
        }
        if self.actions_hc == self.events_hc {
            return refuse("the actions and events hybrid connections must differ".into());
        }
        let env_var = &self.key_env_var;
        if env_var.is_empty()
            || env_var.starts_with(|c: char| c.is_ascii_digit())
            || !env_var
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return refuse(format!(
                "Relay key variable must be an environment variable name such as \
                 AZURE_RELAY_SHARED_ACCESS_KEY, not {env_var:?}"
            ));
        }
        if let Some(endpoint) = &self.relay_endpoint {
            match url::Url::parse(endpoint) {
                Ok(u) if matches!(u.scheme(), "ws" | "wss") => {}
                _ => {
                    return refuse(format!(
                        "Relay endpoint must be a ws:// or wss:// address, not {endpoint:?}"
                    ))
                }
            }
        }
        if let Some(keys) = &self.public_key {
            if let Err(e) = shared::wire::Keyring::from_list(keys) {
                return refuse(format!("Public keys: {e}"));
            }
        }
        if !MESSAGE_TYPES.iter().any(|(t, _)| *t == self.message_type) {
            return refuse(format!("unknown message type {:?}", self.message_type));
        }
        let destination = &self.destination;
        if self.sends_fhir() {
            match url::Url::parse(destination) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.query().is_none()
                        && u.fragment().is_none() => {}
                _ => {
                    return refuse(format!(
                        "Destination must be the integration engine's http:// or https:// URL \
                         (no credentials or query), as listed in the gateway's \
                         FHIR_DESTINATIONS, not {destination:?}"
                    ))
                }
            }
        } else if !plain(destination) {
            return refuse(format!(
                "Destination must be letters, digits, '-', '_' or '.', not {destination:?}"
            ));
        }
        Ok(())
    }
}

/// Adds one of the provider's gateways, after [`GatewaySettings::check`].
pub async fn create(db: &Db, provider_id: i64, g: &GatewaySettings) -> Result<i64, StoreError> {
    g.check()?;
    refuse_taken_name(db, &g.name, None).await?;
    let row = sqlx::query(
        "INSERT INTO gateways (provider_id, name, relay_namespace, relay_endpoint, actions_hc, events_hc,
             key_name, key_env_var, public_key, message_type, destination)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(provider_id)
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

/// Changes one of the provider's gateways; the caller restarts its listener.
pub async fn update(
    db: &Db,
    provider_id: i64,
    id: i64,
    g: &GatewaySettings,
) -> Result<(), StoreError> {
    g.check()?;
    refuse_taken_name(db, &g.name, Some(id)).await?;
    let done = sqlx::query(
        "UPDATE gateways SET name = $1, relay_namespace = $2, relay_endpoint = $3, actions_hc = $4,
             events_hc = $5, key_name = $6, key_env_var = $7, public_key = $8, message_type = $9,
             destination = $10
         WHERE id = $11 AND provider_id = $12",
    )
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
    .bind(id)
    .bind(provider_id)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Gateway names are global: a signed action names its gateway, and two gateways of one name
/// would each accept the other's actions.
async fn refuse_taken_name(db: &Db, name: &str, except: Option<i64>) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT id FROM gateways WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) if Some(col::<i64>(&r, "id")?) != except => Err(StoreError::Refused(format!(
            "a gateway named {name} already exists"
        ))),
        _ => Ok(()),
    }
}

impl GatewayRecord {
    /// The settings an administrator edits.
    pub fn settings(&self) -> GatewaySettings {
        GatewaySettings {
            name: self.name.clone(),
            relay_namespace: self.relay_namespace.clone(),
            relay_endpoint: self.relay_endpoint.clone(),
            actions_hc: self.actions_hc.clone(),
            events_hc: self.events_hc.clone(),
            key_name: self.key_name.clone(),
            key_env_var: self.key_env_var.clone(),
            public_key: self.public_key.clone(),
            message_type: self.message_type.clone(),
            destination: self.destination.clone(),
        }
    }
}

const SELECT: &str =
    "SELECT id, provider_id, name, relay_namespace, relay_endpoint, actions_hc, events_hc,
        key_name, key_env_var, public_key, message_type, destination, last_health_at, last_health,
        last_health_report, last_contact_at, last_unreachable_at, last_unreachable_error
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
        last_health_report: col(r, "last_health_report")?,
        last_contact_at: col(r, "last_contact_at")?,
        last_unreachable_at: col(r, "last_unreachable_at")?,
        last_unreachable_error: col(r, "last_unreachable_error")?,
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

/// Remembers the gateway's latest health report: a summary line and the report itself.
pub async fn record_health(
    db: &Db,
    gateway_id: i64,
    summary: &str,
    report: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gateways SET last_health_at = $1, last_health = $2, last_health_report = $3
         WHERE id = $4",
    )
    .bind(now_ms())
    .bind(summary)
    .bind(report)
    .bind(gateway_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Something real came back from the gateway now: a verified event or a reply.
pub async fn record_contact(db: &Db, gateway_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE gateways SET last_contact_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(gateway_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A send to the gateway found no listener or timed out now.
pub async fn record_unreachable(db: &Db, gateway_id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gateways SET last_unreachable_at = $1, last_unreachable_error = $2 WHERE id = $3",
    )
    .bind(now_ms())
    .bind(error)
    .bind(gateway_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> GatewaySettings {
        GatewaySettings {
            name: "rxn-gateway".into(),
            relay_namespace: "screening.servicebus.windows.net".into(),
            relay_endpoint: None,
            actions_hc: "gateway-actions".into(),
            events_hc: "gateway-events".into(),
            key_name: "RootManageSharedAccessKey".into(),
            key_env_var: "AZURE_RELAY_SHARED_ACCESS_KEY".into(),
            public_key: Some(
                shared::wire::SigningKey::generate()
                    .public_key()
                    .to_base64(),
            ),
            message_type: "dicom_worklist".into(),
            destination: "modality_worklist".into(),
        }
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        type Change = fn(&mut GatewaySettings);
        let cases: [(&str, Change, Option<&str>); 14] = [
            ("as given", |_| {}, None),
            (
                "emulator endpoint",
                |g| g.relay_endpoint = Some("ws://127.0.0.1:9350".into()),
                None,
            ),
            (
                "two keys in rotation",
                |g| {
                    let two = format!(
                        "{},{}",
                        g.public_key.clone().unwrap(),
                        shared::wire::SigningKey::generate()
                            .public_key()
                            .to_base64()
                    );
                    g.public_key = Some(two);
                },
                None,
            ),
            ("empty name", |g| g.name.clear(), Some("Gateway name")),
            (
                "name with a space",
                |g| g.name = "north gateway".into(),
                Some("Gateway name"),
            ),
            (
                "same hybrid connection",
                |g| g.events_hc = g.actions_hc.clone(),
                Some("must differ"),
            ),
            (
                "lower-case variable",
                |g| g.key_env_var = "relay_key".into(),
                Some("environment variable"),
            ),
            (
                "http endpoint",
                |g| g.relay_endpoint = Some("http://relay".into()),
                Some("ws://"),
            ),
            (
                "bad key",
                |g| g.public_key = Some("AAAA".into()),
                Some("Public keys"),
            ),
            (
                "FHIR to a URL",
                |g| {
                    g.message_type = FHIR_SERVICE_REQUEST.into();
                    g.destination = "https://engine.trust.local/fhir".into();
                },
                None,
            ),
            (
                "FHIR to a label",
                |g| g.message_type = FHIR_SERVICE_REQUEST.into(),
                Some("http:// or https:// URL"),
            ),
            (
                "FHIR with credentials",
                |g| {
                    g.message_type = FHIR_SERVICE_REQUEST.into();
                    g.destination = "https://u:p@engine.trust.local/fhir".into();
                },
                Some("no credentials"),
            ),
            (
                "worklist to a URL",
                |g| g.destination = "https://engine.trust.local/fhir".into(),
                Some("Destination must be letters"),
            ),
            (
                "unknown message type",
                |g| g.message_type = "hl7v2".into(),
                Some("message type"),
            ),
        ];
        for (what, change, refused) in cases {
            let mut g = good();
            change(&mut g);
            match (g.check(), refused) {
                (Ok(()), None) => {}
                (Err(StoreError::Refused(why)), Some(word)) => {
                    assert!(why.contains(word), "{what}: {why}")
                }
                (other, _) => panic!("{what}: {other:?}"),
            }
        }
    }
}
