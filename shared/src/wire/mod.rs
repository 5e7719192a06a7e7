//! The wire contract between the cloud app and the gateway: versioned JSON envelopes.
//!
//! One module per message family: [`action`] (cloud→gateway, NHS-compatible) with its replies,
//! [`event`] (gateway→cloud) with its replies, and [`signature`] which both sign with. Every
//! envelope is one JSON text message on a relay rendezvous; every reply is one JSON text message
//! back on the same socket. Unknown fields are ignored; an unknown type is an `error` reply.

pub mod action;
pub mod event;
pub mod signature;

use serde_json::{Map, Value};
use uuid::Uuid;

pub use signature::{Keyring, PublicKey, SignatureError, SigningKey};

/// The envelope version this build writes and understands.
pub const SCHEMA_VERSION: u32 = 1;

/// How a receiver treats the signatures of what it receives.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The peer's public keys (`PEER_PUBLIC_KEYS`).
    pub keyring: Keyring,
    /// Accept messages with no `signature` member at all (the gateway's `NHS_COMPATIBLE`, for
    /// the NHS app which does not sign). A present but bad signature is refused either way.
    pub accept_unsigned: bool,
}

impl Verification {
    /// Require a valid signature by one of these keys.
    pub fn strict(keyring: Keyring) -> Verification {
        Verification {
            keyring,
            accept_unsigned: false,
        }
    }

    /// Checks the signature of a received object per this policy.
    pub fn check(&self, message: &Map<String, Value>) -> Result<(), SignatureError> {
        match self.keyring.verify(message) {
            Err(SignatureError::Missing) if self.accept_unsigned => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// A received message that cannot be acted on, with what is needed to say so to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejected {
    /// The message's id (`action_id` or `event_id`) when it could be read, to correlate the error.
    pub id: Option<Uuid>,
    /// Plain words for the sender's log and the audit trail.
    pub reason: String,
}

/// Parses text into a JSON object, verifies it and reads its id field: the common first steps of
/// opening any envelope.
fn open_object(
    text: &str,
    id_field: &str,
    verification: &Verification,
) -> Result<(Map<String, Value>, Option<Uuid>), Rejected> {
    let value: Value = serde_json::from_str(text).map_err(|e| Rejected {
        id: None,
        reason: format!("message is not valid JSON: {e}"),
    })?;
    let Value::Object(map) = value else {
        return Err(Rejected {
            id: None,
            reason: "message is not a JSON object".into(),
        });
    };
    let id = map
        .get(id_field)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    verification.check(&map).map_err(|e| Rejected {
        id,
        reason: format!("signature rejected: {e}"),
    })?;
    // Absent means version 1: the NHS gateway's replies carry no version.
    match map.get("schema_version").map(Value::as_u64) {
        None => Ok((map, id)),
        Some(Some(v)) if v == u64::from(SCHEMA_VERSION) => Ok((map, id)),
        Some(v) => Err(Rejected {
            id,
            reason: format!(
                "unsupported schema_version {} (this side speaks {SCHEMA_VERSION})",
                v.map_or_else(|| "(not a number)".to_string(), |v| v.to_string())
            ),
        }),
    }
}

/// Serialises an RFC 3339 timestamp the same way on both sides.
pub(crate) mod rfc3339 {
    pub use time::serde::rfc3339::*;
}
