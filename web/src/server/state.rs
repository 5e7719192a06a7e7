//! What every request handler, server function and background task shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use shared::relay::ListenerStatus;
use shared::wire::{Keyring, SigningKey};
use tokio::sync::{watch, Notify};

use super::bus::Bus;
use super::db::Db;

/// Reads an environment variable by name: the process environment, or a map in tests.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The app's shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub bus: Arc<dyn Bus>,
    /// Our message-signing key: gateways verify our actions and our event replies with it.
    pub signing: Arc<SigningKey>,
    /// Keys trusted for gateways whose row has no public key of its own (`PEER_PUBLIC_KEYS`).
    pub fallback_keys: Keyring,
    /// Wakes the outbox worker when an action is queued or re-driven.
    pub outbox_wake: Arc<Notify>,
    /// The events listener of each gateway, by gateway id.
    pub listeners: Arc<RwLock<HashMap<i64, watch::Receiver<ListenerStatus>>>>,
    /// Where gateway relay keys are read from: the process environment, or a map in tests.
    pub env: EnvLookup,
    /// `source_system` of our actions.
    pub source_system: String,
    /// Mark session cookies `Secure` (`WEB_SECURE_COOKIES`, for deployments behind HTTPS).
    pub secure_cookies: bool,
}

impl AppState {
    /// The state for a database, with the process environment and a fresh in-process bus.
    pub fn new(db: Db, signing: SigningKey, fallback_keys: Keyring) -> AppState {
        AppState {
            db,
            bus: Arc::new(super::bus::LocalBus::new(1024)),
            signing: Arc::new(signing),
            fallback_keys,
            outbox_wake: Arc::new(Notify::new()),
            listeners: Arc::default(),
            env: Arc::new(|name| std::env::var(name).ok()),
            source_system: "screening-web".into(),
            secure_cookies: false,
        }
    }

    /// The current status of a gateway's events listener, if one runs.
    pub fn listener_status(&self, gateway_id: i64) -> Option<ListenerStatus> {
        self.listeners
            .read()
            .ok()?
            .get(&gateway_id)
            .map(|rx| rx.borrow().clone())
    }
}
