//! NHS-compatible mode end to end, through the relay emulator: the NHS Manage app's unsigned,
//! unaddressed `worklist.create_item` is applied; pynetdicom's C-FIND of the item gets every
//! Type 1 return key with a value; a procedure by the modality emulator reaches a listener
//! written the way the NHS app's is (it verifies nothing and answers unsigned `updated`,
//! `created` or `already_exists`), each event exactly once. And the refusals: the same reply in
//! strict mode is not a delivery.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::cloud::outbox;
use appliance::modality::{self, Options};
use appliance::service::Service;
use appliance::worklist;
use common::cloud::Relay;
use serde_json::{json, Value};
use shared::relay::{Listener, ListenerOptions, Sender};
use shared::wire::action::{ActionReply, Outcome, WorklistStatus};
use shared::wire::event::{Event, EventBody, MppsStatus, MppsStatusUpdate};

const ACCESSION: &str = "ACC20261122ab12";

/// Every delivery an NHS-style listener received, as the JSON it was sent.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<Value>>>);

impl Deliveries {
    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

/// The events side as the NHS app writes it (proof of concept seven's
/// `gateway_event_listener.py`): a plain relay listener that reads each event as JSON without
/// checking any signature, records it, and answers unsigned `{"status": …}` — `updated` for an
/// MPPS status, `created` (or `already_exists` for an image it has) for an image.
async fn nhs_listener(relay: &Relay) -> (Deliveries, tokio::task::JoinHandle<()>) {
    let deliveries = Deliveries::default();
    let seen_images: Arc<Mutex<HashSet<String>>> = Arc::default();
    let listener = Listener::new(relay.config.clone(), "events", ListenerOptions::default());
    let mut status = listener.status();
    let task = tokio::spawn({
        let deliveries = deliveries.clone();
        async move {
            listener
                .run(
                    move |text| {
                        let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        deliveries.0.lock().unwrap().push(event.clone());
                        let status = match event["event_type"].as_str() {
                            Some("mpps.status_update") => "updated",
                            Some("study.image_received") => {
                                let sop = event["data"]["image"]["sop_instance_uid"].to_string();
                                if seen_images.lock().unwrap().insert(sop) {
                                    "created"
                                } else {
                                    "already_exists"
                                }
                            }
                            _ => "error",
                        };
                        let reply = json!({ "status": status }).to_string();
                        async move { reply }
                    },
                    std::future::pending(),
                )
                .await
        }
    });
    status.wait_for(|s| s.connected).await.unwrap();
    (deliveries, task)
}

/// A gateway on this relay, in NHS-compatible mode or not.
async fn gateway(relay: &Relay, state: &tempfile::TempDir, nhs_compatible: bool) -> Service {
    let config = common::loopback_config(state.path());
    let mut settings = relay.settings();
    settings.nhs_compatible = nhs_compatible;
    relay.serve_with(config, settings).await
}

/// The NHS app's `worklist.create_item`, as `_build_payload` writes it: no signature, no
/// target gateway, no expiry.
fn nhs_create_item() -> String {
    json!({
        "schema_version": 1,
        "action_id": "5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7a",
        "action_type": "worklist.create_item",
        "timestamp": "2026-11-22T09:30:00.123456+00:00",
        "source_system": "manage-breast-screening",
        "source_reference": {"appointment_id": "a1", "participant_id": "p1"},
        "parameters": {"worklist_item": {
            "accession_number": ACCESSION,
            "participant": {"nhs_number": "9434765919", "name": "SMITH^JANE",
                            "birth_date": "19700101", "sex": "F"},
            "scheduled": {"date": "20261122", "time": "093000"},
            "procedure": {"modality": "MG", "study_description": "Screening mammography"}
        }}
    })
    .to_string()
}

/// Sends [`nhs_create_item`] as the NHS app does and opens the gateway's (signed) reply.
async fn send_nhs_create_item(relay: &Relay) -> ActionReply {
    let text = Sender::new(relay.config.clone(), "actions")
        .request(&nhs_create_item())
        .await
        .unwrap();
    ActionReply::open(&text, &relay.cloud_trusts()).expect("signed by the gateway")
}

/// The Type 1 return keys of PS3.4 Table K.6-1 (1C where the gateway supports the description
/// rather than the code sequence), as `peer.py find --all-keys` names them.
const TYPE_1_RETURN_KEYS: [&str; 11] = [
    "PatientName",
    "PatientID",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
];

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nhs_app_drives_a_procedure_and_hears_each_event_once() {
    let relay = Relay::start("nhs-e2e.servicebus.windows.net").await;
    let state = tempfile::tempdir().unwrap();
    let service = gateway(&relay, &state, true).await;
    let db = service.dicom.db.clone();
    let (deliveries, _listener) = nhs_listener(&relay).await;

    // 1. The NHS app puts the participant on the worklist, unsigned and unaddressed.
    let reply = send_nhs_create_item(&relay).await;
    assert_eq!(reply.outcome, Outcome::Created, "{reply:?}");

    // 2. pynetdicom asks for every K.6-1 return key: each Type 1 one comes back with a value.
    let mwl_port = service.dicom.mwl_addr.port().to_string();
    let found = tokio::task::spawn_blocking(move || {
        common::peer(&[
            "find",
            "127.0.0.1",
            &mwl_port,
            common::MWL_AET,
            "--all-keys",
        ])
    })
    .await
    .unwrap();
    assert_eq!(found["final"], 0, "{found}");
    let matches = found["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{found}");
    let keys = &matches[0]["keys"];
    for key in TYPE_1_RETURN_KEYS {
        let value = keys[key].as_str().unwrap_or("");
        assert!(
            !value.trim().is_empty(),
            "Type 1 key {key} is empty: {keys}"
        );
    }
    assert_eq!(
        keys["ScheduledProcedureStepSequence[0].ScheduledStationAETitle"], "PYNETDICOM",
        "an item on no station names the querying AE"
    );
    let item = worklist::get(&db, ACCESSION).unwrap().unwrap();
    assert_eq!(keys["StudyInstanceUID"], item.study_instance_uid.as_str());

    // 3. The modality does the procedure: MPPS IN PROGRESS, four views, MPPS COMPLETED.
    let options = Options {
        mwl: service.dicom.mwl_addr.to_string(),
        mwl_aet: common::MWL_AET.into(),
        pacs: service.dicom.pacs_addr.to_string(),
        pacs_aet: common::PACS_AET.into(),
        calling_aet: "MODALITY_EMU".into(),
        accession: Some(ACCESSION.into()),
        patient_id: None,
        rows: 600,
        columns: 488,
        discontinue: false,
    };
    let report = modality::run(&options, |_| {})
        .await
        .expect("the procedure");
    assert_eq!(
        worklist::get(&db, ACCESSION).unwrap().unwrap().status,
        WorklistStatus::Completed
    );

    // 4. The listener's unsigned answers count: six events, each delivered once, none left.
    wait_until("six deliveries and an empty outbox", || {
        deliveries.all().len() >= 6 && outbox::stats(&db).unwrap().depth == 0
    })
    .await;
    // A participant added at the gateway is not reported to the NHS app, which has no walk-ins
    // (an event it refused would hold back the events behind it).
    let local = shared::wire::action::WorklistItem {
        accession_number: "LOCALNHS01".into(),
        participant: item.participant.clone(),
        scheduled: item.scheduled.clone(),
        procedure: item.procedure.clone(),
    };
    let added = appliance::service::control_socket::add_worklist_item(
        &appliance::service::control_socket::socket_path(state.path()),
        local,
        None,
    )
    .await
    .unwrap();
    assert!(
        matches!(added, appliance::service::control_socket::Added::Added(_)),
        "{added:?}"
    );
    assert_eq!(
        outbox::stats(&db).unwrap().depth,
        0,
        "nothing queued for it"
    );
    // Nothing comes again once the outbox is empty (a redelivery would need a queued event).
    service.dicom.doorbell.ring();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Vec<Event> = deliveries
        .all()
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("one of our events"))
        .collect();
    assert_eq!(events.len(), 6, "each event exactly once");
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 6, "no event twice");

    let mpps: Vec<&MppsStatusUpdate> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::MppsStatusUpdate(u) => Some(u),
            _ => None,
        })
        .collect();
    let statuses: Vec<MppsStatus> = mpps.iter().map(|u| u.status).collect();
    assert_eq!(statuses, [MppsStatus::InProgress, MppsStatus::Completed]);
    let action_id = item.action_id.expect("the creating action is remembered");
    assert!(mpps.iter().all(|u| u.action_id == Some(action_id)));
    let mut taken: Vec<String> = mpps[1]
        .images_taken
        .as_ref()
        .expect("COMPLETED lists the images taken")
        .iter()
        .map(|i| i.sop_instance_uid.clone())
        .collect();
    let mut stored = report.stored_sop_instance_uids.clone();
    taken.sort();
    stored.sort();
    assert_eq!(taken, stored);

    let mut images: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ImageReceived(i) => Some(i.image.sop_instance_uid.clone()),
            _ => None,
        })
        .collect();
    images.sort();
    assert_eq!(images, stored, "the four images, once each");
    service.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_nhs_compatible_mode_unsigned_replies_and_actions_are_refused() {
    let relay = Relay::start("nhs-strict.servicebus.windows.net").await;
    let state = tempfile::tempdir().unwrap();
    let service = gateway(&relay, &state, false).await;
    let db = service.dicom.db.clone();

    // The NHS app's create is refused: unsigned.
    let reply = send_nhs_create_item(&relay).await;
    assert!(
        matches!(&reply.outcome, Outcome::Error { message } if message.contains("not signed")),
        "{reply:?}"
    );
    assert!(worklist::get(&db, ACCESSION).unwrap().is_none());

    // An NHS-style `updated` does not deliver an event: it stays queued, with the reason.
    let (deliveries, _listener) = nhs_listener(&relay).await;
    let event = Event::new(
        "gw-test",
        EventBody::MppsStatusUpdate(MppsStatusUpdate {
            action_id: None,
            accession_number: ACCESSION.into(),
            status: MppsStatus::InProgress,
            mpps_instance_uid: "1.2.3".into(),
            images_taken: None,
        }),
    );
    db.write(|txn| outbox::enqueue(txn, event, ACCESSION))
        .unwrap();
    service.dicom.doorbell.ring();
    wait_until("a refused delivery", || {
        outbox::stats(&db).unwrap().oldest_error.is_some()
    })
    .await;
    let stats = outbox::stats(&db).unwrap();
    assert_eq!(stats.depth, 1);
    let error = stats.oldest_error.unwrap();
    assert!(error.contains("not signed"), "{error}");
    assert!(!deliveries.all().is_empty());
    service.stop(Duration::from_secs(5)).await;
}
