//! The gateway's cloud link over real websockets through the relay emulator: signed actions in
//! (worklist changes, echo, health, refusals, replays, misrouted and expired actions), durable
//! events out (retried until the cloud accepts them; a refused C-STORE among them).

mod common;

use std::time::Duration;

use appliance::cloud::outbox;
use appliance::config::Config;
use appliance::service::Service;
use appliance::worklist;
use common::cloud::{worklist_item, Relay};
use serde_json::json;
use shared::wire::action::{Action, ActionReply, Command, Outcome, WorklistStatus};
use shared::wire::event::{Event, EventBody, EventStatus, MppsStatus, MppsStatusUpdate};
use shared::wire::SigningKey;

struct Rig {
    relay: Relay,
    _state: tempfile::TempDir,
    service: Service,
}

impl Rig {
    async fn start() -> Rig {
        let relay = Relay::start("cloud-test.servicebus.windows.net").await;
        let state = tempfile::tempdir().unwrap();
        let mut config = Config::new(state.path().to_path_buf());
        config.bind = "127.0.0.1".parse().unwrap();
        config.mwl_port = 0;
        config.pacs_port = 0;
        let service = relay.serve(config).await;
        Rig {
            relay,
            _state: state,
            service,
        }
    }

    async fn send(&self, command: Command) -> ActionReply {
        self.relay.send(command).await.1
    }

    async fn send_text(&self, text: &str) -> ActionReply {
        self.relay.send_text(text).await
    }

    async fn stop(self) {
        self.service.stop(Duration::from_secs(5)).await;
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
    let create = rig.send(Command::CreateItem(worklist_item("ACC1"))).await;
    assert_eq!(create.outcome, Outcome::Created);
    assert_eq!(create.accession_number.as_deref(), Some("ACC1"));

    let again = rig.send(Command::CreateItem(worklist_item("ACC1"))).await;
    assert_eq!(
        again.outcome,
        Outcome::Exists,
        "a retried create is a success"
    );

    let mut different = worklist_item("ACC1");
    different.participant.name = "JONES^ANN".into();
    let clash = rig.send(Command::CreateItem(different)).await;
    assert!(error_message(&clash).contains("already used"), "{clash:?}");

    let db = rig.service.dicom.db.clone();
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

    // A cancel that overtook its create (the create was in flight when the cloud withdrew it):
    // answered, remembered, and the late create is refused, so the item is never offered.
    let early = rig
        .send(Command::CancelItem {
            accession_number: "ACCLATE".into(),
            reason: None,
        })
        .await;
    assert_eq!(early.outcome, Outcome::Cancelled, "{early:?}");
    let late = rig
        .send(Command::CreateItem(worklist_item("ACCLATE")))
        .await;
    assert!(
        error_message(&late).contains("cancelled before it arrived"),
        "{late:?}"
    );
    assert!(worklist::get(&db, "ACCLATE").unwrap().is_none());

    let missing = rig
        .send(Command::UpdateStatus {
            accession_number: "NOPE".into(),
            status: WorklistStatus::Completed,
        })
        .await;
    assert!(error_message(&missing).contains("NOPE"), "{missing:?}");

    let mut bad = worklist_item("THIS-ACCESSION-IS-FAR-TOO-LONG");
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
    let sealed = rig.relay.cloud_key.seal(&Action::new(
        "x",
        Command::CreateItem(worklist_item("ACC9")),
    ));
    let tampered = sealed.replace("SMITH^JANE", "EVIL^EVE");
    assert!(error_message(&rig.send_text(&tampered).await).contains("does not match"));
    let db = rig.service.dicom.db.clone();
    assert!(
        worklist::get(&db, "ACC9").unwrap().is_none(),
        "a refused action changes nothing"
    );

    // Not even JSON.
    assert!(error_message(&rig.send_text("\u{0}garbage").await).contains("not valid JSON"));
    rig.stop().await;
}

#[tokio::test]
async fn events_wait_in_the_outbox_until_the_cloud_accepts_them() {
    let rig = Rig::start().await;
    let running = &rig.service.dicom;
    let db = running.db.clone();
    let event = Event::new(
        "gw-test",
        EventBody::MppsStatusUpdate(MppsStatusUpdate {
            action_id: None,
            accession_number: "ACC7".into(),
            status: MppsStatus::InProgress,
            mpps_instance_uid: "1.2.3.4".into(),
            images_taken: None,
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
    let cloud = rig
        .relay
        .cloud(|n| {
            if n == 1 {
                EventStatus::Error
            } else {
                EventStatus::Accepted
            }
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while outbox::stats(&db).unwrap().depth > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {:?}",
            outbox::stats(&db)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = cloud.events();
    assert_eq!(
        received.len(),
        1,
        "refused once, then accepted: {received:?}"
    );
    assert_eq!(
        received[0].event_id, event.event_id,
        "the same event, retried"
    );
    assert_eq!(*cloud.duplicates.lock().unwrap(), 0);
    assert_eq!(
        *cloud.deliveries.lock().unwrap(),
        2,
        "one refused delivery, one accepted"
    );
    rig.stop().await;
}

/// An action to the test gateway, sealed `sealed` from now and valid for `valid`.
fn stamped(command: Command, to: &str, sealed: time::Duration, valid: time::Duration) -> Action {
    let mut action = Action::new("test-cloud", command).addressed(to, valid);
    action.timestamp += sealed;
    action.expires_at = action.expires_at.map(|e| e + sealed);
    action
}

fn status_of(rig: &Rig, accession: &str) -> WorklistStatus {
    worklist::get(&rig.service.dicom.db, accession)
        .unwrap()
        .expect("the item exists")
        .status
}

#[tokio::test]
async fn a_replayed_action_gets_its_first_answer_and_changes_nothing() {
    let rig = Rig::start().await;
    let key = &rig.relay.cloud_key;
    let minutes = time::Duration::minutes;
    let create = stamped(
        Command::CreateItem(worklist_item("ACCR1")),
        common::cloud::GATEWAY_NAME,
        minutes(0),
        minutes(10),
    );
    assert_eq!(
        rig.send_text(&key.seal(&create)).await.outcome,
        Outcome::Created
    );
    // The same sealed bytes again: answered as the first time (not `exists`), from the record.
    let again = rig.send_text(&key.seal(&create)).await;
    assert_eq!(again.outcome, Outcome::Created);
    assert_eq!(again.action_id, Some(create.action_id));

    let start = stamped(
        Command::UpdateStatus {
            accession_number: "ACCR1".into(),
            status: WorklistStatus::InProgress,
        },
        common::cloud::GATEWAY_NAME,
        minutes(0),
        minutes(10),
    );
    let sealed_start = key.seal(&start);
    assert_eq!(rig.send_text(&sealed_start).await.outcome, Outcome::Updated);
    let cancel = rig
        .send(Command::CancelItem {
            accession_number: "ACCR1".into(),
            reason: None,
        })
        .await;
    assert_eq!(cancel.outcome, Outcome::Cancelled);
    // A captured `update_status` replayed after the cancel: the same answer, and the item stays
    // cancelled (the status machine would refuse it anyway; the record never lets it try).
    let replayed = rig.send_text(&sealed_start).await;
    assert_eq!(replayed.outcome, Outcome::Updated);
    assert_eq!(status_of(&rig, "ACCR1"), WorklistStatus::Discontinued);

    // A retry re-stamps the action: the same content, so the same answer.
    let mut retry = start.clone();
    retry.timestamp += minutes(1);
    retry.expires_at = retry.expires_at.map(|e| e + minutes(1));
    assert_eq!(
        rig.send_text(&key.seal(&retry)).await.outcome,
        Outcome::Updated
    );

    // The same id with other content is refused, and changes nothing.
    let mut reused = start.clone();
    reused.command = Command::CancelItem {
        accession_number: "ACCR1".into(),
        reason: None,
    };
    let refused = rig.send_text(&key.seal(&reused)).await;
    assert!(
        error_message(&refused).contains("already applied with different content"),
        "{refused:?}"
    );
    let record = appliance::cloud::applied::get(&rig.service.dicom.db, start.action_id)
        .unwrap()
        .expect("the applied action is recorded");
    assert_eq!(record.digest, start.content_digest());
    rig.stop().await;
}

#[tokio::test]
async fn misrouted_expired_and_unaddressed_actions_are_refused() {
    let rig = Rig::start().await;
    let key = &rig.relay.cloud_key;
    let minutes = time::Duration::minutes;
    let here = common::cloud::GATEWAY_NAME;
    let create = |accession: &str| Command::CreateItem(worklist_item(accession));
    #[rustfmt::skip]
    let refusals = [
        ("another gateway", stamped(create("ACCX1"), "gw-elsewhere", minutes(0), minutes(10)),
            "addressed to gateway \"gw-elsewhere\""),
        ("expired beyond the tolerance", stamped(create("ACCX2"), here, minutes(-20), minutes(10)),
            "action expired at"),
        ("sealed in the future", stamped(create("ACCX3"), here, minutes(30), minutes(10)),
            "later than this gateway's clock"),
        ("valid for days", stamped(create("ACCX4"), here, minutes(0), time::Duration::days(3)),
            "longer than the 24 h"),
        ("unaddressed", Action::new("test-cloud", create("ACCX5")),
            "no target_gateway and no expires_at"),
    ];
    for (name, action, reason) in refusals {
        let reply = rig.send_text(&key.seal(&action)).await;
        assert!(error_message(&reply).contains(reason), "{name}: {reply:?}");
        assert_eq!(reply.action_id, Some(action.action_id), "{name}");
    }
    for accession in ["ACCX1", "ACCX2", "ACCX3", "ACCX4", "ACCX5"] {
        assert!(
            worklist::get(&rig.service.dicom.db, accession)
                .unwrap()
                .is_none(),
            "{accession}: a refused action changes nothing"
        );
    }
    // Expired, but within the 5 minutes' clock skew tolerance: applied.
    let late = stamped(create("ACCX6"), here, minutes(-13), minutes(10));
    assert_eq!(
        rig.send_text(&key.seal(&late)).await.outcome,
        Outcome::Created
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_refused_c_store_reaches_the_cloud_as_validation_failed() {
    let rig = Rig::start().await;
    let cloud = rig.relay.cloud(common::cloud::accept_all).await;
    let port = rig.service.dicom.pacs_addr.port().to_string();
    let uid = "1.2.826.0.1.3680043.10.99.1";
    let stored = tokio::task::spawn_blocking(move || {
        common::peer(&[
            "store-raw",
            "127.0.0.1",
            &port,
            "SCREENING_PACS",
            "--uid",
            uid,
            "--omit",
            "StudyInstanceUID",
        ])
    })
    .await
    .unwrap();
    assert_ne!(stored["status"], 0, "the store is refused: {stored}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let refusal = loop {
        let found = cloud.events().into_iter().find_map(|e| match e.body {
            EventBody::ImageValidationFailed(failed) => Some(failed),
            _ => None,
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no image.validation_failed arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refusal.sop_instance_uid.as_deref(), Some(uid));
    assert_eq!(refusal.calling_ae_title, "PYNETDICOM");
    let comment = stored["comment"].as_str().unwrap();
    assert!(refusal.reason.contains(comment), "{refusal:?} vs {comment}");
    assert!(refusal.reason.contains("C-STORE status 0x"), "{refusal:?}");
    rig.stop().await;
}

/// `gateway events …` as an operator runs it on the same state directory as the service.
fn events_cli(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("events")
        .args(args)
        .env("GATEWAY_STATE_DIR", state)
        .env("GATEWAY_ENV_FILE", "/nonexistent/gateway.env")
        .env("MWL_PORT", "0")
        .env("PACS_PORT", "0")
        .env("GATEWAY_BIND", "127.0.0.1")
        .output()
        .unwrap()
}

fn mpps(accession: &str, status: MppsStatus) -> Event {
    Event::new(
        "gw-test",
        EventBody::MppsStatusUpdate(MppsStatusUpdate {
            action_id: None,
            accession_number: accession.into(),
            status,
            mpps_instance_uid: format!("1.2.3.{accession}"),
            images_taken: None,
        }),
    )
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_cloud_refuses_is_parked_out_of_the_way_until_an_operator_retries_or_drops_it()
{
    let rig = Rig::start().await;
    let running = &rig.service.dicom;
    let db = running.db.clone();
    // The first delivery and the fourth are refused for good; the rest accepted.
    let cloud = rig
        .relay
        .cloud(|n| {
            if n == 1 || n == 4 {
                EventStatus::Refused
            } else {
                EventStatus::Accepted
            }
        })
        .await;
    let (first, second) = (
        mpps("ACC8", MppsStatus::InProgress),
        mpps("ACC8", MppsStatus::Completed),
    );
    db.write(|txn| {
        outbox::enqueue(txn, first.clone(), "ACC8")?;
        outbox::enqueue(txn, second.clone(), "ACC8")
    })
    .unwrap();
    running.doorbell.ring();

    // Refused: parked, and the accession's later event is delivered all the same.
    until("the refused event parked and the next delivered", || {
        let stats = outbox::stats(&db).unwrap();
        stats.depth == 0 && stats.parked == 1 && cloud.events().len() == 1
    })
    .await;
    assert_eq!(cloud.events()[0].event_id, second.event_id);
    let health = match rig.send(Command::Health).await.outcome {
        Outcome::Ok { health } => health,
        other => panic!("{other:?}"),
    };
    let queue = &health.checks["event_queue"];
    assert!(!queue.ok, "a parked event needs a person: {queue:?}");
    assert!(
        queue.detail.contains("1 parked") && queue.detail.contains("refused by the cloud"),
        "{}",
        queue.detail
    );

    // The operator sees it (through the running service) and sends it again: accepted.
    let state = rig._state.path();
    let listed = events_cli(state, &["list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event_id"], first.event_id.to_string());
    assert_eq!(lines[0]["state"], "parked");
    assert_eq!(lines[0]["order_key"], "ACC8");
    let first_id = first.event_id.to_string();
    let retried = events_cli(state, &["retry", &first_id]);
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    until("the retried event delivered", || {
        cloud.events().iter().any(|e| e.event_id == first.event_id)
    })
    .await;
    assert_eq!(outbox::stats(&db).unwrap().parked, 0);

    // Another refusal, dropped: gone from both tables, never delivered.
    let third = mpps("ACC9", MppsStatus::InProgress);
    db.write(|txn| outbox::enqueue(txn, third.clone(), "ACC9"))
        .unwrap();
    running.doorbell.ring();
    until("the second refusal parked", || {
        outbox::stats(&db).unwrap().parked == 1
    })
    .await;
    let third_id = third.event_id.to_string();
    assert!(events_cli(state, &["drop", &third_id]).status.success());
    assert_eq!(outbox::stats(&db).unwrap(), outbox::Stats::default());
    assert!(!cloud.events().iter().any(|e| e.event_id == third.event_id));
    let unknown = events_cli(state, &["drop", &third_id]);
    assert_eq!(unknown.status.code(), Some(1), "an id nobody has");
    rig.stop().await;
}
