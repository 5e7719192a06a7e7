//! The whole system in a real browser: the web server and the relay emulator in this process, the
//! real gateway (`gateway serve`, the appliance binary) as a child process, and a modality played
//! by pynetdicom (MPPS, via the appliance tests' peer script) and dcmtk's storescu (C-STORE of
//! synthetic mammograms). The clinician sends an appointment to the modality and sees, without
//! reloading, the gateway's MPPS and image events arrive as status changes and thumbnails.
//! The measured latency here is "modality starts the C-STORE → thumbnail in the DOM".

mod support;

use std::path::Path;

use shared::wire::SigningKey;
use support::browser::{self, Script, ScriptEnv};
use support::real_gateway::{self, GatewaySettings, Modality};
use support::TestDb;
use web::server::store::{actions, appointments};

const IMAGES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_real_gateway_a_modality_drives_the_clinic_page_live() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let (gateway_bin, python, peer_py) = real_gateway::tools();
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
    let settings = GatewaySettings::on_emulator(
        gateway_bin,
        state_dir.path().to_path_buf(),
        gateway_name,
        &emulator,
        gateway_key,
        web_key,
        Path::new(&artifacts).join("gateway.log"),
    );
    let _gateway = settings.start();
    let modality = Modality {
        python,
        peer: peer_py,
        mwl_port: settings.mwl_port,
        pacs_port: settings.pacs_port,
    };
    support::both_ends_listening(&emulator).await;

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
    let files = modality
        .mammograms(
            &state_dir.path().join("modality"),
            IMAGES,
            (256, 208),
            &accession,
            &nhs,
        )
        .await;
    let mpps_uid = modality.start_procedure(&accession).await;
    script.tell("GATEWAY started").await;
    script.step("in_progress").await;
    script.step("appointment open").await;

    for (k, file) in files.iter().enumerate() {
        let sent_at = browser::now_ms();
        modality.store(file).await;
        script.tell(&format!("GATEWAY image {sent_at}")).await;
        script.step(&format!("image {}", k + 1)).await;
    }
    let latency = script.step("latency").await;
    eprintln!("modality C-STORE start → thumbnail in the DOM (real gateway): {latency}");
    let _ = std::fs::write(
        Path::new(&artifacts).join("latency.txt"),
        format!("{latency}\n"),
    );

    modality.end_procedure(&mpps_uid, "COMPLETED").await;
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
