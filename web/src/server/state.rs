//! What every request handler, server function and background task shares.

use std::sync::Arc;

use shared::relay::ListenerStatus;
use shared::wire::{Keyring, SigningKey};
use tokio::sync::Notify;

use super::bus::{Bus, LocalBus, PostgresBus};
use super::db::{Backend, Db};
use super::listeners::Listeners;
use super::throttle::Limits;

/// Reads an environment variable by name: the process environment, or a map in tests.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Changes kept for a slow SSE subscriber before it is told to re-read everything.
const BUS_CAPACITY: usize = 1024;

/// A page's data is a few indexed reads; one that takes longer than this is stuck.
pub const PAGE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The app's shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub bus: Arc<dyn Bus>,
    /// This process's id among the replicas on one database: on its outbox claims and its
    /// change notifications.
    pub replica: String,
    /// Our message-signing key: gateways verify our actions and our event replies with it.
    pub signing: Arc<SigningKey>,
    /// Keys trusted for gateways whose row has no public key of its own (`PEER_PUBLIC_KEYS`).
    pub fallback_keys: Keyring,
    /// Wakes the outbox worker when an action is queued or re-driven.
    pub outbox_wake: Arc<Notify>,
    /// The events listener of each gateway.
    pub listeners: Arc<Listeners>,
    /// Where gateway relay keys are read from: the process environment, or a map in tests.
    pub env: EnvLookup,
    /// `source_system` of our actions.
    pub source_system: String,
    /// Mark session cookies `Secure` and send HSTS (`WEB_SECURE_COOKIES`, on unless the app is
    /// plain HTTP on localhost).
    pub secure_cookies: bool,
    /// How many failed sign-ins each account and address may have.
    pub sign_in_limits: Limits,
    /// Take the client's address from `X-Forwarded-For` (`WEB_TRUST_FORWARDED_FOR`, only behind
    /// a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// The site's origin as browsers see it (`WEB_PUBLIC_ORIGIN`, behind a proxy); mutations
    /// must come from it. Unset: the request's own `Host`.
    pub public_origin: Option<String>,
    /// Within how long a gateway that goes away reads offline (`WEB_PROBE_INTERVAL_SECS`): it
    /// is probed twice an interval.
    pub probe_interval: std::time::Duration,
    /// How long a page may take to render before the browser gets a 503 to reload instead of
    /// a page that never arrives (see `server::http::bounded_render`).
    pub page_limit: std::time::Duration,
}

impl AppState {
    /// The state for a database, with the process environment and a fresh bus: in-process on
    /// SQLite, shared by every replica through the database on PostgreSQL (so it must be called
    /// inside the tokio runtime).
    pub fn new(db: Db, signing: SigningKey, fallback_keys: Keyring) -> AppState {
        let replica = uuid::Uuid::new_v4();
        let bus: Arc<dyn Bus> = match db.backend {
            Backend::Sqlite => Arc::new(LocalBus::new(BUS_CAPACITY)),
            Backend::Postgres => Arc::new(PostgresBus::start(&db, BUS_CAPACITY, replica)),
        };
        AppState {
            db,
            bus,
            replica: replica.to_string(),
            signing: Arc::new(signing),
            fallback_keys,
            outbox_wake: Arc::new(Notify::new()),
            listeners: Arc::default(),
            env: Arc::new(|name| std::env::var(name).ok()),
            source_system: "screening-web".into(),
            secure_cookies: false,
            sign_in_limits: Limits::default(),
            trust_forwarded_for: false,
            public_origin: None,
            probe_interval: std::time::Duration::from_secs(60),
            page_limit: PAGE_LIMIT,
        }
    }

    /// The current status of a gateway's events listener, if one runs.
    pub fn listener_status(&self, gateway_id: i64) -> Option<ListenerStatus> {
        self.listeners.status(gateway_id)
    }
}
