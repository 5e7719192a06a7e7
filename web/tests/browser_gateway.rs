//! The whole system in a real browser: the web server and the relay emulator in this process, the
//! real gateway (`gateway serve`, the appliance binary) as a child process, and a modality played
//! by pynetdicom (MPPS, via the appliance tests' peer script) and dcmtk's storescu (C-STORE of
//! synthetic mammograms). The clinician sends an appointment to the modality and sees, without
//! reloading, the gateway's MPPS and image events arrive as status changes and thumbnails.
//! The measured latency here is "modality starts the C-STORE → thumbnail in the DOM".

mod support;

use shared::loopback::free_port;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use shared::wire::SigningKey;
use support::browser::{self, Script, ScriptEnv};
use support::{TestDb, ACTIONS, EVENTS, KEY, KEY_NAME, NAMESPACE};
use tokio::process::Command;
use web::server::store::{actions, appointments};

const IMAGES: usize = 20;

fn target_dir() -> String {
    option_env!("CARGO_TARGET_DIR")
        .unwrap_or("target")
        .to_string()
}

/// The gateway binary and the modality tools, failing clearly when one is missing.
fn gateway_and_modality() -> (PathBuf, PathBuf, PathBuf) {
    let gateway = std::env::var("GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(format!("{}/debug/gateway", target_dir())));
    assert!(
        gateway.exists(),
        "the gateway binary is not at {}: cargo build -p appliance (cargo test --workspace builds it)",
        gateway.display()
    );
    let cache = std::env::var("SCREENING_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/screening-gateway",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = PathBuf::from(format!("{cache}/venv/bin/python"));
    assert!(
        python.exists(),
        "the DICOM test virtualenv (pynetdicom) is missing at {}: run scripts/deps.sh",
        python.display()
    );
    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../appliance/tests/peers/peer.py");
    assert!(
        peer.exists(),
        "the modality peer script is missing at {}",
        peer.display()
    );
    let storescu = std::process::Command::new("storescu")
        .arg("--version")
        .output();
    assert!(
        storescu.is_ok(),
        "dcmtk's storescu is not installed: apt-get install dcmtk (scripts/deps.sh does)"
    );
    (gateway, python, peer)
}

/// Runs the peer script and returns its one JSON line.
async fn peer(python: &Path, peer: &Path, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg(peer)
        .args(args)
        .output()
        .await
        .expect("run the modality peer script");
    assert!(
        out.status.success(),
        "peer {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the peer script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_real_gateway_a_modality_drives_the_clinic_page_live() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let (gateway_bin, python, peer_py) = gateway_and_modality();
    let artifacts = browser::artifacts("web-e2e-gateway");
    std::fs::create_dir_all(&artifacts).unwrap();

    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (state, seeded, web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    let provider_id = identity_provider(&state).await;
    // The gateway takes the name the cloud app knows it by: actions are addressed to it.
    let gateway_name = web::server::store::gateways::for_provider(&state.db, provider_id)
        .await
        .unwrap()
        .remove(0)
        .name;
    let running = support::serve(state, site).await;

    let state_dir = support::tempdir::TempDir::new("web-e2e-gateway");
    let (mwl_port, pacs_port) = (free_port(), free_port());
    let log = std::fs::File::create(Path::new(&artifacts).join("gateway.log")).unwrap();
    let _gateway = Command::new(&gateway_bin)
        .arg("serve")
        .env("GATEWAY_STATE_DIR", state_dir.path())
        .env("GATEWAY_BIND", "127.0.0.1")
        .env("GATEWAY_NAME", &gateway_name)
        .env("MWL_AET", "SCREENING_MWL")
        .env("MWL_PORT", mwl_port.to_string())
        .env("PACS_AET", "SCREENING_PACS")
        .env("PACS_PORT", pacs_port.to_string())
        .env("SIGNING_KEY", gateway_key.to_base64())
        .env("PEER_PUBLIC_KEYS", web_key.public_key().to_base64())
        .env("AZURE_RELAY_NAMESPACE", NAMESPACE)
        .env("AZURE_RELAY_ENDPOINT", format!("ws://{}", emulator.addr()))
        .env("AZURE_RELAY_HYBRID_CONNECTION", ACTIONS)
        .env("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", EVENTS)
        .env("AZURE_RELAY_KEY_NAME", KEY_NAME)
        .env("AZURE_RELAY_SHARED_ACCESS_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start the gateway");
    support::eventually("the gateway listens for actions", || async {
        emulator.listener_count(ACTIONS) > 0
    })
    .await;
    support::eventually("the web app listens for events", || async {
        emulator.listener_count(EVENTS) > 0
    })
    .await;

    let mut script = Script::start(
        &crate_dir,
        ScriptEnv {
            base_url: format!("http://{}", running.addr),
            users: web::server::seed::DEMO_USERS,
            clinic_id: seeded.clinic_ids[0],
            artifacts: &artifacts,
            images: IMAGES,
            taken: None,
            archive: false,
        },
    );
    let appointment_id: i64 = script.step("sent").await.parse().unwrap();
    let db = &running.state.db;
    support::eventually("the gateway confirmed the worklist item", || async {
        actions::list(db, provider_id, Some("confirmed"), 10)
            .await
            .unwrap()
            .iter()
            .any(|a| a.appointment_id == Some(appointment_id))
    })
    .await;
    let detail = appointments::detail(db, provider_id, appointment_id)
        .await
        .unwrap();
    let accession = detail.accession_number.clone().unwrap();
    let nhs = detail.nhs_number.replace(' ', "");
    let images_dir = state_dir.path().join("modality");
    let made = peer(
        &python,
        &peer_py,
        &[
            "make-mg",
            "--out",
            images_dir.to_str().unwrap(),
            "--count",
            &IMAGES.to_string(),
            "--rows",
            "256",
            "--cols",
            "208",
            "--accession",
            &accession,
            "--patient-id",
            &nhs,
            "--name",
            "SMITH^JANE",
        ],
    )
    .await;
    let files: Vec<String> = made["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let mwl = mwl_port.to_string();
    let ops = format!(r#"[{{"op":"create","accession":"{accession}","status":"IN PROGRESS"}}]"#);
    let created = peer(
        &python,
        &peer_py,
        &["mpps", "127.0.0.1", &mwl, "SCREENING_MWL", &ops],
    )
    .await;
    assert_eq!(created["results"][0]["status"], 0, "{created}");
    let mpps_uid = created["results"][0]["uid"].as_str().unwrap().to_string();
    script.tell("GATEWAY started").await;
    script.step("in_progress").await;
    script.step("appointment open").await;

    for (k, file) in files.iter().enumerate() {
        let sent_at = browser::now_ms();
        let stored = Command::new("storescu")
            .args([
                "-aec",
                "SCREENING_PACS",
                "127.0.0.1",
                &pacs_port.to_string(),
                file,
            ])
            .output()
            .await
            .unwrap();
        assert!(
            stored.status.success(),
            "storescu: {}",
            String::from_utf8_lossy(&stored.stderr)
        );
        script.tell(&format!("GATEWAY image {sent_at}")).await;
        script.step(&format!("image {}", k + 1)).await;
    }
    let latency = script.step("latency").await;
    eprintln!("modality C-STORE start → thumbnail in the DOM (real gateway): {latency}");
    let _ = std::fs::write(
        Path::new(&artifacts).join("latency.txt"),
        format!("{latency}\n"),
    );

    let ops = format!(r#"[{{"op":"set","uid":"{mpps_uid}","status":"COMPLETED"}}]"#);
    let completed = peer(
        &python,
        &peer_py,
        &["mpps", "127.0.0.1", &mwl, "SCREENING_MWL", &ops],
    )
    .await;
    assert_eq!(completed["results"][0]["status"], 0, "{completed}");
    script.tell("GATEWAY completed").await;
    script.step("complete").await;
    script.step("other provider 404").await;
    script.finish().await;

    // The gateway also takes a cancellation: send another appointment, then cancel it.
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let user = web::server::store::identity::authenticate(db, email, password)
        .await
        .unwrap()
        .unwrap();
    let other = web::server::store::clinics::detail(db, provider_id, seeded.clinic_ids[0])
        .await
        .unwrap()
        .appointments
        .iter()
        .find(|a| a.id != appointment_id)
        .unwrap()
        .id;
    // (Delivered first: a create still undelivered is withdrawn instead, see tests/real_gateway.rs.)
    let sent = web::server::service::send_to_modality(&running.state, &user, other)
        .await
        .unwrap();
    support::eventually(&format!("the gateway confirmed action {sent}"), || async {
        actions::get(db, provider_id, &sent).await.unwrap().status == "confirmed"
    })
    .await;
    let cancel = web::server::service::cancel_appointment(&running.state, &user, other)
        .await
        .unwrap()
        .expect("a cancel action");
    support::eventually(
        &format!("the gateway confirmed action {cancel}"),
        || async { actions::get(db, provider_id, &cancel).await.unwrap().status == "confirmed" },
    )
    .await;
    running.stop().await;
}

async fn identity_provider(state: &web::server::state::AppState) -> i64 {
    let (email, password) = web::server::seed::DEMO_USERS[0];
    web::server::store::identity::authenticate(&state.db, email, password)
        .await
        .unwrap()
        .unwrap()
        .provider_id
}
