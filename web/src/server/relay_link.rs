//! How to reach a gateway through its relay, from its database row: the relay settings live per
//! gateway, the key itself in the environment variable the row names.

use shared::relay::Config;
use shared::wire::{Keyring, Verification};

use super::store::gateways::GatewayRecord;

/// A gateway's relay settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("environment variable {0} (the relay key of gateway {1}) is not set")]
    MissingKey(String, String),
    #[error("gateway {0} has a bad relay endpoint {1:?}: {2}")]
    BadEndpoint(String, String, String),
    #[error("gateway {0} has a bad public key: {1}")]
    BadPublicKey(String, String),
}

/// The relay client configuration for a gateway.
pub fn relay_config(
    gateway: &GatewayRecord,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<Config, LinkError> {
    let key = env(&gateway.key_env_var)
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| LinkError::MissingKey(gateway.key_env_var.clone(), gateway.name.clone()))?;
    let mut config = Config::new(&gateway.relay_namespace, &gateway.key_name, key.trim());
    if let Some(endpoint) = gateway.relay_endpoint.as_deref().filter(|e| !e.is_empty()) {
        config.endpoint = endpoint.parse().map_err(|e: url::ParseError| {
            LinkError::BadEndpoint(gateway.name.clone(), endpoint.to_string(), e.to_string())
        })?;
    }
    Ok(config)
}

/// How to check what a gateway signs: its own public key when the row has one, else the keys
/// trusted for all gateways (`PEER_PUBLIC_KEYS`).
pub fn verification(
    gateway: &GatewayRecord,
    fallback: &Keyring,
) -> Result<Verification, LinkError> {
    let keyring = match gateway
        .public_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
    {
        Some(key) => Keyring::from_list(key)
            .map_err(|e| LinkError::BadPublicKey(gateway.name.clone(), e.to_string()))?,
        None => fallback.clone(),
    };
    Ok(Verification::strict(keyring))
}
