//! The gateway's link to the cloud: the actions listener and the events courier, both over Azure
//! Relay, started beside the DICOM services by `gateway serve`.

use std::sync::Arc;

use shared::relay::{Listener, ListenerOptions, ListenerStatus, Sender, Settings};
use shared::wire::{Keyring, SigningKey, Verification};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::actions::Actions;
use super::outbox::{Courier, Doorbell};
use crate::db::Database;
use crate::service::health::HealthProbe;
use crate::service::systemd::Liveness;

/// Why the cloud settings are unusable; each says which variable to fix.
#[derive(Debug, Error)]
pub enum CloudConfigError {
    #[error("relay settings: {0}")]
    Relay(#[from] shared::relay::ConfigError),
    #[error(
        "SIGNING_KEY is not set: run `gateway keygen` and put its SIGNING_KEY line in the env file"
    )]
    NoSigningKey,
    #[error("SIGNING_KEY: {0}")]
    SigningKey(shared::wire::signature::KeyError),
    #[error("PEER_PUBLIC_KEYS is not set: put the cloud app's PUBLIC_KEY there (comma-separated for several)")]
    NoPeerKeys,
    #[error("PEER_PUBLIC_KEYS: {0}")]
    PeerKeys(shared::wire::signature::KeyError),
    #[error("ACCEPT_UNSIGNED_ACTIONS={0:?} is not true or false")]
    AcceptUnsigned(String),
}

/// Everything the link needs from the environment.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub relay: Settings,
    pub signing_key: SigningKey,
    pub peers: Keyring,
    /// Accept unsigned NHS-format actions (`ACCEPT_UNSIGNED_ACTIONS`).
    pub accept_unsigned: bool,
    /// This gateway's name in events (`GATEWAY_NAME`).
    pub name: String,
}

impl CloudSettings {
    /// `None` when no relay is configured (`AZURE_RELAY_NAMESPACE` unset): the gateway then runs
    /// its DICOM services alone, which suits a bench or a first install.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<CloudSettings>, CloudConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if get("AZURE_RELAY_NAMESPACE").is_none() {
            return Ok(None);
        }
        let relay = Settings::from_lookup(&lookup)?;
        let signing_key =
            SigningKey::from_base64(&get("SIGNING_KEY").ok_or(CloudConfigError::NoSigningKey)?)
                .map_err(CloudConfigError::SigningKey)?;
        let peers =
            Keyring::from_list(&get("PEER_PUBLIC_KEYS").ok_or(CloudConfigError::NoPeerKeys)?)
                .map_err(CloudConfigError::PeerKeys)?;
        if peers.keys().is_empty() {
            return Err(CloudConfigError::NoPeerKeys);
        }
        let accept_unsigned = match get("ACCEPT_UNSIGNED_ACTIONS").as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => return Err(CloudConfigError::AcceptUnsigned(v.to_string())),
        };
        Ok(Some(CloudSettings {
            relay,
            signing_key,
            peers,
            accept_unsigned,
            name: get("GATEWAY_NAME").unwrap_or_else(|| "gateway".into()),
        }))
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Option<CloudSettings>, CloudConfigError> {
        CloudSettings::from_lookup(|name| std::env::var(name).ok())
    }
}

/// The running link.
pub struct CloudLink {
    tasks: JoinSet<()>,
    /// The actions listener's state, for `health` and `gateway status`.
    pub listener: watch::Receiver<ListenerStatus>,
}

impl CloudLink {
    /// Starts listening for actions and delivering events until `shutdown` turns true. `probe`
    /// answers the cloud's `health` action; the link adds its own listener's state to it.
    pub fn start(
        settings: CloudSettings,
        db: Arc<Database>,
        probe: HealthProbe,
        doorbell: Doorbell,
        liveness: &Liveness,
        shutdown: watch::Receiver<bool>,
    ) -> CloudLink {
        let relay = settings.relay;
        let listener = Listener::new(
            relay.connection.clone(),
            &relay.actions_entity,
            ListenerOptions::default(),
        );
        let status = listener.status();
        if settings.accept_unsigned {
            tracing::warn!(
                "ACCEPT_UNSIGNED_ACTIONS is on: actions without a signature are accepted"
            );
        }
        tracing::info!(
            "cloud link: actions on {}, events to {}, via {} (namespace {}); signing as key {}, trusting {}",
            relay.actions_entity,
            relay.events_entity,
            relay.connection.endpoint,
            relay.connection.namespace,
            settings.signing_key.id(),
            settings.peers.keys().iter().map(|k| k.id().to_string()).collect::<Vec<_>>().join(", ")
        );
        let actions = Arc::new(Actions::new(
            db.clone(),
            Verification {
                keyring: settings.peers.clone(),
                accept_unsigned: settings.accept_unsigned,
            },
            settings.signing_key.clone(),
            HealthProbe {
                listener: Some(status.clone()),
                ..probe
            },
        ));
        let courier = Courier::new(
            db,
            Sender::new(relay.connection.clone(), &relay.events_entity),
            settings.signing_key,
            Verification::strict(settings.peers),
            doorbell,
        );
        let mut tasks = JoinSet::new();
        tasks.spawn({
            let shutdown = until(shutdown.clone());
            let alive = liveness.register("actions listener");
            async move {
                let _alive = alive;
                listener
                    .run(
                        move |text| {
                            let actions = actions.clone();
                            async move { actions.handle(text).await }
                        },
                        shutdown,
                    )
                    .await
            }
        });
        let alive = liveness.register("event sender");
        let delivering = courier.run(until(shutdown));
        tasks.spawn(async move {
            let _alive = alive;
            delivering.await
        });
        CloudLink {
            tasks,
            listener: status,
        }
    }

    /// Waits for both tasks to finish after shutdown was signalled.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn until(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
