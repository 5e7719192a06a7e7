//! SAS checks as the relay makes them at each handshake: token, signature, expiry, audience, right.

use std::time::{SystemTime, UNIX_EPOCH};

use shared::relay::sas::{ParsedToken, SasError};

use crate::config::{Right, Rule};

/// Checks a presented token for `right` on `entity`; on success returns the token's expiry.
pub fn authorize(
    token: Option<&str>,
    namespace: &str,
    entity: &str,
    rules: &[Rule],
    right: Right,
) -> Result<u64, SasError> {
    let token = token.ok_or_else(|| {
        SasError::Unauthorized("MissingToken: the request has no SAS token".into())
    })?;
    let parsed = ParsedToken::parse(token)?;
    let rule = rules
        .iter()
        .find(|r| r.name == parsed.key_name)
        .ok_or_else(|| {
            SasError::Unauthorized(format!(
                "InvalidSignature: no authorization rule named {:?}",
                parsed.key_name
            ))
        })?;
    let keys: Vec<&str> = rule.keys.iter().map(String::as_str).collect();
    parsed.verify(&keys, now())?;
    if !parsed.covers(namespace, entity) {
        return Err(SasError::Forbidden(format!(
            "InvalidAudience: the token is for {:?}, not sb://{namespace}/{entity}",
            parsed.resource
        )));
    }
    if !rule.allows(right) {
        return Err(SasError::Forbidden(format!(
            "Unauthorized access. '{right:?}' claim(s) are required to perform this operation. \
             Rule {:?} does not grant it",
            rule.name
        )));
    }
    Ok(parsed.expires_at)
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
