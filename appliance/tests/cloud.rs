//! The gateway's cloud link over real websockets through the relay emulator: signed actions in
//! (worklist changes, echo, health, refusals), durable events out (retried until the cloud
//! accepts them).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::cloud::{CloudLink, CloudSettings, Ports};
use appliance::config::Config;
use appliance::outbox;
use appliance::server::{Gateway, Running};
use appliance::worklist;
use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use serde_json::json;
use shared::relay::{Config as RelayConfig, Listener, ListenerOptions, Sender, Settings};
use shared::wire::action::{
    Action, ActionReply, Command, Outcome, Participant, Procedure, Scheduled, WorklistItem,
    WorklistStatus,
};
use shared::wire::event::{
    Event, EventBody, EventReply, EventStatus, MppsStatus, MppsStatusUpdate,
};
use shared::wire::{Keyring, SigningKey, Verification};
use tokio::sync::watch;

const NAMESPACE: &str = "cloud-test.servicebus.windows.net";

struct Rig {
    _emulator: Emulator,
    _state: tempfile::TempDir,
    running: Option<Running>,
    link: Option<CloudLink>,
    stop: watch::Sender<bool>,
    relay: RelayConfig,
    cloud_key: SigningKey,
    cloud_trusts: Verification,
}

impl Rig {
    async fn start() -> Rig {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let emulator = Emulator::start(
            EmulatorConfig::new(
                NAMESPACE,
                vec![Rule::parse("root=k").unwrap()],
                vec!["actions".into(), "events".into()],
            ),
            any,
            None,
        )
        .await
        .unwrap();
        let mut relay = RelayConfig::new(NAMESPACE, "root", "k");
        relay.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();

        let state = tempfile::tempdir().unwrap();
        let mut config = Config::new(state.path().to_path_buf());
        config.bind = "127.0.0.1".parse().unwrap();
        config.mwl_port = 0;
        config.pacs_port = 0;
        let running = Gateway::open(config).unwrap().start().await.unwrap();
        outbox::create_table(&running.db).unwrap();

        let gateway_key = SigningKey::generate();
        let cloud_key = SigningKey::generate();
        let settings = CloudSettings {
            relay: Settings {
                relay: relay.clone(),
                actions_entity: "actions".into(),
                events_entity: "events".into(),
            },
            signing_key: gateway_key.clone(),
            peers: Keyring::new(vec![cloud_key.public_key()]),
            accept_unsigned: false,
            name: "gw-test".into(),
        };
        let (stop, stopped) = watch::channel(false);
        let link = CloudLink::start(
            settings,
            running.db.clone(),
            Ports {
                mwl: running.mwl_addr.port(),
                pacs: running.pacs_addr.port(),
                state_dir: state.path().to_path_buf(),
            },
            running.doorbell.clone(),
            stopped,
        );
        let mut status = link.listener.clone();
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected))
            .await
            .expect("the gateway's actions listener connects")
            .unwrap();
        Rig {
            _emulator: emulator,
            _state: state,
            running: Some(running),
            link: Some(link),
            stop,
            relay,
            cloud_key,
            cloud_trusts: Verification::strict(Keyring::new(vec![gateway_key.public_key()])),
        }
    }

    /// Sends a signed action as the cloud does and opens the gateway's signed reply.
    async fn send(&self, command: Command) -> ActionReply {
        let action = Action::new("test-cloud", command);
        self.send_text(&self.cloud_key.seal(&action)).await
    }

    async fn send_text(&self, text: &str) -> ActionReply {
        let reply = Sender::new(self.relay.clone(), "actions")
            .request(text)
            .await
            .unwrap();
        ActionReply::open(&reply, &self.cloud_trusts).expect("the gateway signs its replies")
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.link.take().unwrap().join().await;
        self.running
            .take()
            .unwrap()
            .shutdown(Duration::from_secs(5))
            .await;
    }
}

fn item(accession: &str) -> WorklistItem {
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

fn error_message(reply: &ActionReply) -> &str {
    match &reply.outcome {
        Outcome::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn worklist_actions_are_applied_idempotently_and_answered() {
    let rig = Rig::start().await;
    let create = rig.send(Command::CreateItem(item("ACC1"))).await;
    assert_eq!(create.outcome, Outcome::Created);
    assert_eq!(create.accession_number.as_deref(), Some("ACC1"));

    let again = rig.send(Command::CreateItem(item("ACC1"))).await;
    assert_eq!(
        again.outcome,
        Outcome::Exists,
        "a retried create is a success"
    );

    let mut different = item("ACC1");
    different.participant.name = "JONES^ANN".into();
    let clash = rig.send(Command::CreateItem(different)).await;
    assert!(error_message(&clash).contains("already used"), "{clash:?}");

    let db = rig.running.as_ref().unwrap().db.clone();
    let entry = worklist::get(&db, "ACC1")
        .unwrap()
        .expect("the item is on the worklist");
    assert_eq!(entry.status, WorklistStatus::Scheduled);
    assert!(
        entry.action_id.is_some(),
        "the creating action is remembered for events"
    );

    let update = rig
        .send(Command::UpdateStatus {
            accession_number: "ACC1".into(),
            status: WorklistStatus::InProgress,
        })
        .await;
    assert_eq!(update.outcome, Outcome::Updated);
    assert_eq!(
        worklist::get(&db, "ACC1").unwrap().unwrap().status,
        WorklistStatus::InProgress
    );

    let cancel = rig
        .send(Command::CancelItem {
            accession_number: "ACC1".into(),
            reason: Some("left the clinic".into()),
        })
        .await;
    assert_eq!(cancel.outcome, Outcome::Cancelled);
    assert_eq!(
        worklist::get(&db, "ACC1").unwrap().unwrap().status,
        WorklistStatus::Discontinued
    );

    let missing = rig
        .send(Command::UpdateStatus {
            accession_number: "NOPE".into(),
            status: WorklistStatus::Completed,
        })
        .await;
    assert!(error_message(&missing).contains("NOPE"), "{missing:?}");

    let mut bad = item("THIS-ACCESSION-IS-FAR-TOO-LONG");
    bad.scheduled.date = "22-11-2026".into();
    assert!(!rig.send(Command::CreateItem(bad)).await.is_success());
    rig.stop().await;
}

#[tokio::test]
async fn echo_health_and_refusals() {
    let rig = Rig::start().await;
    let echo = rig.send(Command::Echo(json!({"probe": 7}))).await;
    assert_eq!(
        echo.outcome,
        Outcome::Echo {
            payload: json!({"probe": 7})
        }
    );

    let health = rig.send(Command::Health).await;
    let Outcome::Ok { health } = health.outcome else {
        panic!("{health:?}")
    };
    for name in [
        "mwl_port",
        "pacs_port",
        "disk",
        "database",
        "event_queue",
        "relay_listener",
    ] {
        assert!(
            health.checks.contains_key(name),
            "missing check {name}: {health:?}"
        );
    }
    for name in [
        "mwl_port",
        "pacs_port",
        "database",
        "event_queue",
        "relay_listener",
    ] {
        assert!(health.checks[name].ok, "{name}: {:?}", health.checks[name]);
    }
    assert!(health.checks["event_queue"].metrics.contains_key("depth"));

    // Unsigned (the NHS app's format) is refused by default, with the reason and the id.
    let unsigned = serde_json::to_string(&Action::new("nhs", Command::Health)).unwrap();
    let reply = rig.send_text(&unsigned).await;
    assert!(error_message(&reply).contains("not signed"), "{reply:?}");
    assert!(reply.action_id.is_some());

    // Signed by a key the gateway does not trust.
    let stranger = SigningKey::generate().seal(&Action::new("x", Command::Health));
    assert!(error_message(&rig.send_text(&stranger).await).contains("not among the trusted keys"));

    // Tampered in transit.
    let sealed = rig
        .cloud_key
        .seal(&Action::new("x", Command::CreateItem(item("ACC9"))));
    let tampered = sealed.replace("SMITH^JANE", "EVIL^EVE");
    assert!(error_message(&rig.send_text(&tampered).await).contains("does not match"));

    // Not even JSON.
    assert!(error_message(&rig.send_text("\u{0}garbage").await).contains("not valid JSON"));
    rig.stop().await;
}

#[tokio::test]
async fn events_wait_in_the_outbox_until_the_cloud_accepts_them() {
    let rig = Rig::start().await;
    let running = rig.running.as_ref().unwrap();
    let db = running.db.clone();
    let event = Event::new(
        "gw-test",
        EventBody::MppsStatusUpdate(MppsStatusUpdate {
            action_id: None,
            accession_number: "ACC7".into(),
            status: MppsStatus::InProgress,
            mpps_instance_uid: "1.2.3.4".into(),
        }),
    );
    db.write(|txn| outbox::enqueue(txn, event.clone(), "ACC7"))
        .unwrap();
    running.doorbell.ring();

    // No cloud listening yet: the event stays queued, with the reason.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = outbox::stats(&db).unwrap();
        if let Some(error) = &stats.oldest_error {
            assert_eq!(stats.depth, 1);
            assert!(error.contains("no listener"), "{error}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the courier never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The cloud comes up: the first answer is an error (kept), then it accepts.
    let received = Arc::new(Mutex::new(Vec::new()));
    let cloud = Listener::new(rig.relay.clone(), "events", ListenerOptions::default());
    let mut cloud_status = cloud.status();
    let cloud_key = rig.cloud_key.clone();
    let trusts = rig.cloud_trusts.clone();
    let seen = received.clone();
    let task = tokio::spawn(async move {
        cloud
            .run(
                move |text| {
                    let event =
                        Event::open(&text, &trusts).expect("events are signed by the gateway");
                    let mut seen = seen.lock().unwrap();
                    seen.push(event.clone());
                    let status = if seen.len() == 1 {
                        EventStatus::Error
                    } else {
                        EventStatus::Accepted
                    };
                    let reply = cloud_key.seal(&EventReply::new(event.event_id, status));
                    async move { reply }
                },
                std::future::pending(),
            )
            .await
    });
    cloud_status.wait_for(|s| s.connected).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while outbox::stats(&db).unwrap().depth > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {:?}",
            outbox::stats(&db)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() >= 2,
        "an error reply keeps the event for a retry"
    );
    assert!(
        received.iter().all(|e| e.event_id == event.event_id),
        "the same event, retried"
    );
    task.abort();
    rig.stop().await;
}
