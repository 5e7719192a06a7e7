//! The gateway's link to the cloud: the actions listener and the events courier, both over Azure
//! Relay, started beside the DICOM services by `gateway serve`.

use std::sync::Arc;

use shared::relay::{Listener, ListenerOptions, ListenerStatus, Sender, Settings};
use shared::wire::{Keyring, SigningKey, Verification};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::actions::Actions;
use super::admission::Admission;
use super::outbox::{Courier, Doorbell, Replies};
use crate::db::Database;
use crate::fhir::Deliveries;
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
    #[error("{0}={1:?} is not true or false")]
    NotABool(&'static str, String),
    #[error(
        "NHS_COMPATIBLE={0} contradicts ACCEPT_UNSIGNED_ACTIONS={1} (its old name): remove \
         ACCEPT_UNSIGNED_ACTIONS from the env file"
    )]
    NhsModeContradiction(bool, bool),
}

/// Everything the link needs from the environment.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub relay: Settings,
    pub signing_key: SigningKey,
    pub peers: Keyring,
    /// NHS-compatible mode (`NHS_COMPATIBLE`, formerly `ACCEPT_UNSIGNED_ACTIONS`): unsigned
    /// NHS-format actions are accepted without an address or expiry, and unsigned event replies
    /// in the NHS app's vocabulary count as delivered.
    pub nhs_compatible: bool,
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
        let flag = |name: &'static str| match get(name).as_deref() {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
            Some(v) => Err(CloudConfigError::NotABool(name, v.to_string())),
        };
        // ACCEPT_UNSIGNED_ACTIONS is the old name, still read so installed env files keep working.
        let nhs_compatible = match (flag("NHS_COMPATIBLE")?, flag("ACCEPT_UNSIGNED_ACTIONS")?) {
            (Some(new), Some(old)) if new != old => {
                return Err(CloudConfigError::NhsModeContradiction(new, old))
            }
            (new, old) => new.or(old).unwrap_or(false),
        };
        Ok(Some(CloudSettings {
            relay,
            signing_key,
            peers,
            nhs_compatible,
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
        fhir: Arc<Deliveries>,
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
        if settings.nhs_compatible {
            tracing::warn!(
                "NHS_COMPATIBLE is on: unsigned actions without an address or expiry are accepted, \
                 and unsigned event replies in the NHS app's vocabulary count as delivered"
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
                accept_unsigned: settings.nhs_compatible,
            },
            Admission {
                gateway: settings.name.clone(),
                nhs_compatible: settings.nhs_compatible,
            },
            settings.signing_key.clone(),
            fhir.clone(),
            HealthProbe {
                listener: Some(status.clone()),
                ..probe
            },
        ));
        let courier = Courier::new(
            db,
            Sender::new(relay.connection.clone(), &relay.events_entity),
            settings.signing_key,
            Replies {
                verification: Verification::strict(settings.peers),
                nhs_compatible: settings.nhs_compatible,
            },
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
        tasks.spawn({
            let shutdown = until(shutdown.clone());
            let alive = liveness.register("FHIR sender");
            async move {
                let _alive = alive;
                fhir.run(shutdown).await
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

    /// Waits for its tasks to finish after shutdown was signalled.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn until(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The NHS-compatible mode a set of settings gives, or the error's text.
    fn mode(pairs: &[(&str, &str)]) -> Result<bool, String> {
        let mut map: HashMap<String, String> = [
            ("AZURE_RELAY_NAMESPACE", "ns.servicebus.windows.net"),
            ("AZURE_RELAY_KEY_NAME", "gateway"),
            ("AZURE_RELAY_SHARED_ACCESS_KEY", "k"),
            ("AZURE_RELAY_HYBRID_CONNECTION", "actions"),
            ("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "events"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        map.insert("SIGNING_KEY".into(), SigningKey::generate().to_base64());
        let peer = SigningKey::generate().public_key().to_base64();
        map.insert("PEER_PUBLIC_KEYS".into(), peer);
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        CloudSettings::from_lookup(|k| map.get(k).cloned())
            .map(|s| s.expect("a relay is configured").nhs_compatible)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_setting_or_its_old_name_turns_nhs_compatible_mode_on() {
        /// Settings given, and the mode or a part of the error.
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<bool, &'static str>,
        );
        #[rustfmt::skip]
        let cases: [Case; 9] = [
            (&[], Ok(false)),
            (&[("NHS_COMPATIBLE", "true")], Ok(true)),
            (&[("NHS_COMPATIBLE", "0")], Ok(false)),
            (&[("ACCEPT_UNSIGNED_ACTIONS", "true")], Ok(true)),
            (&[("ACCEPT_UNSIGNED_ACTIONS", "false")], Ok(false)),
            (&[("NHS_COMPATIBLE", "TRUE"), ("ACCEPT_UNSIGNED_ACTIONS", "1")], Ok(true)),
            (&[("NHS_COMPATIBLE", "false"), ("ACCEPT_UNSIGNED_ACTIONS", "true")],
                Err("NHS_COMPATIBLE=false contradicts ACCEPT_UNSIGNED_ACTIONS=true")),
            (&[("NHS_COMPATIBLE", "yes")], Err("NHS_COMPATIBLE=\"yes\" is not true or false")),
            (&[("ACCEPT_UNSIGNED_ACTIONS", "on")], Err("ACCEPT_UNSIGNED_ACTIONS=\"on\" is not")),
        ];
        for (pairs, expected) in cases {
            match (mode(pairs), expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{pairs:?}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{pairs:?}: {e}"),
                (got, expected) => panic!("{pairs:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
