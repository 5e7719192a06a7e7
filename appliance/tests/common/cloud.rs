//! The cloud side for gateway tests: a relay emulator, the gateway started as `gateway serve`
//! starts it (DICOM services, cloud link, control socket) on that relay, and a cloud stub that
//! receives events as the web app does (verify, record, de-duplicate by event id, reply).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::cloud::CloudSettings;
use appliance::config::Config;
use appliance::service::Service;
use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use shared::relay::{Config as RelayConfig, Listener, ListenerOptions, Sender, Settings};
use shared::wire::action::{
    Action, ActionReply, Command, Participant, Procedure, Scheduled, WorklistItem,
};
use shared::wire::event::{Event, EventReply, EventStatus};
use shared::wire::{Keyring, SigningKey, Verification};

/// The test gateway's `GATEWAY_NAME`, which the cloud addresses its actions to.
pub const GATEWAY_NAME: &str = "gw-test";

/// A relay namespace with `actions` and `events`, and the keys of both sides.
pub struct Relay {
    pub emulator: Emulator,
    pub config: RelayConfig,
    pub gateway_key: SigningKey,
    pub cloud_key: SigningKey,
}

impl Relay {
    pub async fn start(namespace: &str) -> Relay {
        Relay::start_with_key(namespace, "root", "k").await
    }

    /// A relay whose one shared access rule is `key_name` with `key`.
    pub async fn start_with_key(namespace: &str, key_name: &str, key: &str) -> Relay {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let emulator = Emulator::start(
            EmulatorConfig::new(
                namespace,
                vec![Rule::parse(&format!("{key_name}={key}")).unwrap()],
                vec!["actions".into(), "events".into()],
            ),
            any,
            None,
        )
        .await
        .unwrap();
        let mut config = RelayConfig::new(namespace, key_name, key);
        config.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();
        Relay {
            emulator,
            config,
            gateway_key: SigningKey::generate(),
            cloud_key: SigningKey::generate(),
        }
    }

    /// How the cloud verifies what the gateway signs.
    pub fn cloud_trusts(&self) -> Verification {
        Verification::strict(Keyring::new(vec![self.gateway_key.public_key()]))
    }

    /// The gateway's cloud settings for this relay.
    pub fn settings(&self) -> CloudSettings {
        CloudSettings {
            relay: Settings {
                connection: self.config.clone(),
                actions_entity: "actions".into(),
                events_entity: "events".into(),
            },
            signing_key: self.gateway_key.clone(),
            peers: Keyring::new(vec![self.cloud_key.public_key()]),
            nhs_compatible: false,
            name: GATEWAY_NAME.into(),
        }
    }

    /// Starts the gateway on `config` with its cloud link on this relay, as `gateway serve`
    /// does, and waits until its actions listener is connected.
    pub async fn serve(&self, config: Config) -> Service {
        self.serve_with(config, self.settings()).await
    }

    /// As [`Relay::serve`], with other cloud settings (NHS-compatible mode, say).
    pub async fn serve_with(&self, mut config: Config, settings: CloudSettings) -> Service {
        // In a test binary, /proc/self/exe is the test: render with the gateway binary.
        config.thumbnail_renderer = env!("CARGO_BIN_EXE_gateway").into();
        let service = Service::start(config, Some(settings))
            .await
            .expect("gateway starts");
        let mut status = service
            .cloud
            .as_ref()
            .expect("the cloud link runs")
            .listener
            .clone();
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected))
            .await
            .expect("the gateway's actions listener connects")
            .unwrap();
        service
    }

    /// Sends a signed action as the cloud does (addressed to the test gateway, valid for ten
    /// minutes) and opens the gateway's signed reply.
    pub async fn send(&self, command: Command) -> (Action, ActionReply) {
        let action =
            Action::new("test-cloud", command).addressed(GATEWAY_NAME, time::Duration::minutes(10));
        let reply = self.send_text(&self.cloud_key.seal(&action)).await;
        (action, reply)
    }

    /// Sends any text on the actions connection and opens the reply.
    pub async fn send_text(&self, text: &str) -> ActionReply {
        let reply = Sender::new(self.config.clone(), "actions")
            .request(text)
            .await
            .unwrap();
        ActionReply::open(&reply, &self.cloud_trusts()).expect("the gateway signs its replies")
    }

    /// Starts the cloud's events listener; it answers the n-th delivery of an event it has not
    /// accepted yet with `answer(n)` (so a test can refuse the first ones).
    pub async fn cloud(&self, answer: fn(usize) -> EventStatus) -> CloudStub {
        let received: Arc<Mutex<Vec<Event>>> = Arc::default();
        let duplicates = Arc::new(Mutex::new(0usize));
        let deliveries = Arc::new(Mutex::new(0usize));
        let listener = Listener::new(self.config.clone(), "events", ListenerOptions::default());
        let mut status = listener.status();
        let trusts = self.cloud_trusts();
        let key = self.cloud_key.clone();
        let task = tokio::spawn({
            let received = received.clone();
            let duplicates = duplicates.clone();
            let deliveries = deliveries.clone();
            async move {
                listener
                    .run(
                        move |text| {
                            let event = Event::open(&text, &trusts).expect("signed by the gateway");
                            let mut received = received.lock().unwrap();
                            let status = if received.iter().any(|e| e.event_id == event.event_id) {
                                *duplicates.lock().unwrap() += 1;
                                EventStatus::Duplicate
                            } else {
                                let mut deliveries = deliveries.lock().unwrap();
                                *deliveries += 1;
                                let status = answer(*deliveries);
                                if matches!(status, EventStatus::Accepted | EventStatus::Duplicate)
                                {
                                    received.push(event.clone());
                                }
                                status
                            };
                            let reply = key.seal(&EventReply::new(event.event_id, status));
                            async move { reply }
                        },
                        std::future::pending(),
                    )
                    .await
            }
        });
        status.wait_for(|s| s.connected).await.unwrap();
        CloudStub {
            received,
            duplicates,
            deliveries,
            task,
        }
    }
}

/// The cloud's events side: what it accepted, and how many duplicates it saw.
pub struct CloudStub {
    pub received: Arc<Mutex<Vec<Event>>>,
    pub duplicates: Arc<Mutex<usize>>,
    /// Deliveries of not-yet-accepted events, refused ones included.
    pub deliveries: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl CloudStub {
    pub fn events(&self) -> Vec<Event> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for CloudStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts every event.
pub fn accept_all(_: usize) -> EventStatus {
    EventStatus::Accepted
}

/// A valid worklist item for one fixed participant, as the cloud would send it.
pub fn worklist_item(accession: &str) -> WorklistItem {
    WorklistItem {
        accession_number: accession.into(),
        participant: Participant {
            nhs_number: "9434765919".into(),
            name: "SMITH^JANE".into(),
            birth_date: "19700101".into(),
            sex: "F".into(),
        },
        scheduled: Scheduled {
            date: "20261122".into(),
            time: "093000".into(),
        },
        procedure: Procedure {
            modality: "MG".into(),
            study_description: "Screening mammography".into(),
        },
    }
}
