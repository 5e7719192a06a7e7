//! What can go wrong talking to the relay, sorted by what the caller should do about it.

use std::time::Duration;

/// A relay failure. [`RelayError::is_retryable`] separates outages (retry with backoff) from
/// configuration mistakes (a person must fix the key or the entity name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// 404 on connect: no listener on that hybrid connection right now (or it does not exist).
    #[error("no listener for hybrid connection {entity}: {detail}")]
    NoListener { entity: String, detail: String },
    /// 404 on listen: the hybrid connection does not exist in the namespace.
    #[error("hybrid connection {entity} does not exist: {detail}")]
    NoSuchEntity { entity: String, detail: String },
    /// 401: key name or key wrong, or the token expired (check the clock).
    #[error("relay refused the credentials for {entity} (401): {detail}; check AZURE_RELAY_KEY_NAME, AZURE_RELAY_SHARED_ACCESS_KEY and the clock")]
    Unauthorized { entity: String, detail: String },
    /// 403: the key lacks the right (Listen or Send) or was signed for another namespace or entity.
    #[error("relay forbids this use of {entity} (403): {detail}; check the rule's rights and AZURE_RELAY_NAMESPACE")]
    Forbidden { entity: String, detail: String },
    /// The listener (or the relay) refused the connection with another status.
    #[error("relay answered {status} for {entity}: {detail}")]
    Status {
        entity: String,
        status: u16,
        detail: String,
    },
    /// Nothing came back in time.
    #[error("timed out after {0:?} waiting for the relay")]
    Timeout(Duration),
    /// TCP, TLS, proxy or websocket trouble on the way.
    #[error("cannot reach the relay: {0}")]
    Transport(String),
    /// The peer closed the socket before replying.
    #[error("connection closed before a reply: {0}")]
    Closed(String),
}

impl RelayError {
    /// Whether trying again later can succeed without anyone changing the configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            RelayError::NoListener { .. }
            | RelayError::Timeout(_)
            | RelayError::Transport(_)
            | RelayError::Closed(_) => true,
            RelayError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            RelayError::NoSuchEntity { .. }
            | RelayError::Unauthorized { .. }
            | RelayError::Forbidden { .. } => false,
        }
    }
}
