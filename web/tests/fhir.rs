//! The FHIR message type end to end: the web app, the relay emulator, the real gateway
//! (`gateway serve`) and a real HTTP endpoint standing in for the hospital's integration engine
//! (`support/fhir_endpoint.py`), which checks every bundle with an independent FHIR R4
//! validator (the `fhir.resources` package). The order is accepted while the endpoint is down,
//! survives a SIGKILL of the gateway, is delivered once when the endpoint returns, and the
//! endpoint's answer comes back as the action's reply; the cancellation revokes it; a
//! destination not on the gateway's allow-list is refused before any connection is made.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use support::real_gateway::{self, GatewaySettings};
use support::ACTIONS;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use web::domain::{DeliveryState, WorklistMessage};
use web::server::service;
use web::server::store::{actions, appointments, clinics, gateways};

/// Starts the endpoint on `port`, writing what it receives to `out`; waits until it listens.
async fn start_endpoint(python: &Path, port: u16, out: &Path) -> Child {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/fhir_endpoint.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(port.to_string())
        .arg(out)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the FHIR endpoint");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the FHIR endpoint starts within 30 s")
        .unwrap();
    assert_eq!(first.as_deref(), Some(format!("listening {port}").as_str()));
    child
}

/// What the endpoint received, in order.
fn received(out: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect()
}

fn service_request(record: &Value) -> &Value {
    &record["body"]["entry"][1]["resource"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_order_reaches_the_endpoint_valid_once_and_a_destination_off_the_list_is_refused() {
    let (binary, python, _) = real_gateway::tools();
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let user = support::demo_user(&state.db, 0).await;
    let db = state.db.clone();
    let endpoint_port = real_gateway::free_port();
    let endpoint_url = format!("http://127.0.0.1:{endpoint_port}/fhir");

    // The administrator's choice, as the gateway settings page saves it.
    let gateway = gateways::for_provider(&db, user.provider_id)
        .await
        .unwrap()
        .remove(0);
    let mut settings = gateway.settings();
    settings.message_type = gateways::FHIR_SERVICE_REQUEST.into();
    settings.destination = endpoint_url.clone();
    gateways::update(&db, user.provider_id, gateway.id, &settings)
        .await
        .unwrap();
    let running = support::serve(state, "unused-site".into()).await;
    let state = &running.state;

    let state_dir = support::tempdir::TempDir::new("web-fhir");
    let artifacts = support::browser::artifacts("web-fhir");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Path::new(&artifacts).join("received");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let gateway_settings = GatewaySettings::on_emulator(
        binary,
        state_dir.path().to_path_buf(),
        gateway.name.clone(),
        &emulator,
        gateway_key,
        web_key,
        Path::new(&artifacts).join("gateway.log"),
    );
    let allow = [("FHIR_DESTINATIONS", endpoint_url.as_str())];
    let mut gw = gateway_settings.start_with(&allow);
    let listening = || async { emulator.listener_count(ACTIONS) > 0 };
    support::eventually("the gateway listens for actions", listening).await;

    // The endpoint is down: the gateway takes the order, keeps it, and says it is queued.
    let clinic = clinics::detail(&db, user.provider_id, seeded.clinic_ids[0])
        .await
        .unwrap();
    let (ordered, refused) = (clinic.appointments[0].id, clinic.appointments[1].id);
    let order = service::send_to_modality(state, &user, ordered)
        .await
        .unwrap();
    support::eventually("the gateway holds the order, undelivered", || async {
        let a = actions::get(&db, user.provider_id, &order).await.unwrap();
        a.status == "pending"
            && a.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not yet delivered") && e.contains(&endpoint_url))
    })
    .await;
    let row = actions::get(&db, user.provider_id, &order).await.unwrap();
    assert_eq!(row.action_type, actions::FHIR_ORDER);
    assert!(
        row.last_error.as_deref().unwrap().contains("refused"),
        "the reason names the endpoint's failure: {row:?}"
    );

    // A SIGKILL of the gateway loses nothing: the order is in its database.
    gw.kill().await.unwrap();
    let mut gw = gateway_settings.start_with(&allow);
    support::eventually("the gateway is back", listening).await;
    let _endpoint = start_endpoint(&python, endpoint_port, &out).await;
    support::eventually(
        "the order is confirmed with the endpoint's answer",
        || async {
            actions::get(&db, user.provider_id, &order)
                .await
                .unwrap()
                .status
                == "confirmed"
        },
    )
    .await;
    let got = received(&out);
    assert_eq!(got.len(), 1, "delivered exactly once: {got:?}");
    assert_eq!(got[0]["valid"], true, "the validator's verdict: {}", got[0]);
    assert_eq!(got[0]["path"], "/fhir");
    assert_eq!(got[0]["content_type"], "application/fhir+json");
    assert_eq!(
        got[0]["resources"],
        serde_json::json!(["Patient", "ServiceRequest"])
    );
    let accession = appointments::detail(&db, user.provider_id, ordered)
        .await
        .unwrap()
        .accession_number
        .unwrap();
    let request = service_request(&got[0]);
    assert_eq!(request["status"], "active");
    assert_eq!(request["identifier"][0]["value"], accession.as_str());
    let nhs_number = &got[0]["body"]["entry"][0]["resource"]["identifier"][0]["value"];
    assert_eq!(nhs_number.as_str().map(str::len), Some(10));
    let detail = service::action_detail(state, &user, &order).await.unwrap();
    let reply: Value = serde_json::from_str(detail.reply.as_deref().unwrap()).unwrap();
    assert_eq!(reply["status"], "delivered", "{reply}");
    assert_eq!(reply["http_status"], 200);
    assert_eq!(reply["answer"]["type"], "transaction-response", "{reply}");
    let delivery = actions::deliveries(&db, &[ordered])
        .await
        .unwrap()
        .remove(&ordered)
        .unwrap();
    assert_eq!(delivery.message, WorklistMessage::FhirOrder);
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(
        delivery.state.label_for(delivery.message),
        "Order accepted by the hospital system"
    );

    // Cancelling revokes the order where it went.
    let revoke = service::cancel_appointment(state, &user, ordered)
        .await
        .unwrap()
        .expect("a delivered order needs revoking");
    support::eventually("the revocation is confirmed", || async {
        actions::get(&db, user.provider_id, &revoke)
            .await
            .unwrap()
            .status
            == "confirmed"
    })
    .await;
    let got = received(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["valid"], true, "{}", got[1]);
    assert_eq!(service_request(&got[1])["status"], "revoked");
    assert_eq!(
        service_request(&got[1])["identifier"][0]["value"],
        accession.as_str()
    );

    // A destination the gateway does not list is refused, and nothing connects to it.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let elsewhere_url = format!("http://{}/fhir", elsewhere.local_addr().unwrap());
    settings.destination = elsewhere_url.clone();
    gateways::update(&db, user.provider_id, gateway.id, &settings)
        .await
        .unwrap();
    let off_list = service::send_to_modality(state, &user, refused)
        .await
        .unwrap();
    support::eventually("the order off the allow-list failed", || async {
        actions::get(&db, user.provider_id, &off_list)
            .await
            .unwrap()
            .status
            == "failed"
    })
    .await;
    let failed = actions::get(&db, user.provider_id, &off_list)
        .await
        .unwrap();
    let why = failed.last_error.unwrap_or_default();
    assert!(
        why.contains("not on this gateway's allow-list")
            && why.contains("FHIR_DESTINATIONS")
            && why.contains(&elsewhere_url),
        "{why}"
    );
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the gateway connected to a destination off its list"
    );
    assert_eq!(received(&out).len(), 2, "nothing more reached the endpoint");
    let log = std::fs::read_to_string(&gateway_settings.log).unwrap();
    assert!(
        log.contains("not on this gateway's allow-list"),
        "one log line for the refusal"
    );
    let _ = gw.kill().await;
    running.stop().await;
}
