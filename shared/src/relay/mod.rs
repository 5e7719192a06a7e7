//! Azure Relay Hybrid Connections client: the only way the cloud and the gateway reach each other.
//!
//! Both directions are outbound websockets on 443 from each side. A [`Listener`] holds a control
//! channel open and answers every sender on its own rendezvous socket, concurrently; a [`Sender`]
//! opens one connection, sends one JSON message and awaits one reply. The protocol notes this
//! follows are in `docs/relay.md`; the same code runs against real Azure and against the
//! `relay-emulator` crate, because the endpoint it dials is configured apart from the namespace it
//! signs tokens for.

mod backoff;
mod config;
mod connect;
mod error;
mod listener;
pub mod probe;
pub mod sas;
mod sender;

pub use backoff::Backoff;
pub use config::{Config, ConfigError, Limits, Settings};
pub use connect::tls_config;
pub use error::RelayError;
pub use listener::{Listener, ListenerOptions, ListenerStatus};
pub use sender::Sender;

/// Log filter directives every binary using this client must add: the websocket library logs
/// whole handshake requests, relay token included, at debug, so it is held at info whatever the
/// operator's log level asks for.
pub const LOG_DIRECTIVES_HIDING_TOKENS: [&str; 2] = ["tungstenite=info", "tokio_tungstenite=info"];
