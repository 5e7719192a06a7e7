//! Administration in a real browser, with the real gateway: the administrator adds a gateway
//! through the form while the web app runs, `gateway serve` is started with exactly those
//! settings, and a participant sent through it reaches that gateway's modality worklist — no
//! restart of the web app. A clinician gets 403 on the admin pages and never sees a payload
//! (e2e/admin.mjs is the browser side).

mod support;

use support::browser::{self, Script};
use support::real_gateway::{self, GatewaySettings};
use support::{ACTIONS, ADMIN_PASSWORD, EVENTS, KEY_ENV, KEY_NAME, NAMESPACE};
use web::domain::NhsNumber;
use web::server::store::{actions, appointments, clinics, gateways};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrator_adds_a_gateway_and_a_send_through_it_reaches_it_without_a_restart() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let (binary, python, peer_py) = real_gateway::tools();
    let artifacts = browser::artifacts("web-e2e-admin");
    std::fs::create_dir_all(&artifacts).unwrap();
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded: _,
        web_key,
    } = support::Rig::sqlite().await;
    let running = support::serve(state, site).await;
    let db = &running.state.db;
    let clinician = support::demo_user(db, 0).await;
    support::administrator(db, clinician.provider_id).await;
    let (actions_hc, events_hc) = (format!("{ACTIONS}-3"), format!("{EVENTS}-3"));
    let name = "rxn-gateway-ward-b";
    let mut script = Script::spawn(
        &crate_dir,
        "e2e/admin.mjs",
        &[
            ("BASE_URL", format!("http://{}", running.addr)),
            ("ADMIN_USER", support::admin_email(clinician.provider_id)),
            ("ADMIN_PASS", ADMIN_PASSWORD.to_string()),
            (
                "CLINICIAN_USER",
                web::server::seed::DEMO_USERS[0].0.to_string(),
            ),
            (
                "CLINICIAN_PASS",
                web::server::seed::DEMO_USERS[0].1.to_string(),
            ),
            ("GATEWAY_NAME", name.to_string()),
            ("RELAY_NAMESPACE", NAMESPACE.to_string()),
            ("RELAY_ENDPOINT", format!("ws://{}", emulator.addr())),
            ("ACTIONS_HC", actions_hc.clone()),
            ("EVENTS_HC", events_hc.clone()),
            ("KEY_NAME", KEY_NAME.to_string()),
            ("KEY_ENV", KEY_ENV.to_string()),
            ("PUBLIC_KEY", gateway_key.public_key().to_base64()),
            ("ARTIFACTS", artifacts.clone()),
        ],
    );
    script.step("clinician refused").await;
    let gateway_id: i64 = script.step("gateway added").await.parse().unwrap();
    let added = gateways::get(db, clinician.provider_id, gateway_id)
        .await
        .unwrap();
    assert_eq!(
        (
            added.name.as_str(),
            added.actions_hc.as_str(),
            added.events_hc.as_str()
        ),
        (name, actions_hc.as_str(), events_hc.as_str())
    );
    support::eventually("the new gateway's events listener connects", || async {
        running
            .state
            .listener_status(gateway_id)
            .is_some_and(|s| s.connected)
    })
    .await;

    // The real gateway, configured as the form said.
    let state_dir = support::tempdir::TempDir::new("web-admin-gateway");
    let gateway = GatewaySettings {
        binary,
        state_dir: state_dir.path().to_path_buf(),
        name: name.to_string(),
        relay_endpoint: format!("ws://{}", emulator.addr()),
        actions_hc: actions_hc.clone(),
        events_hc,
        gateway_key,
        web_key,
        mwl_port: real_gateway::free_port(),
        pacs_port: real_gateway::free_port(),
        log: std::path::Path::new(&artifacts).join("gateway.log"),
    };
    let _gateway = gateway.start();
    support::eventually("the gateway listens for actions", || async {
        emulator.listener_count(&actions_hc) > 0
    })
    .await;
    // Clinics are not managed in the browser yet: the test gives the new gateway one.
    let clinic = clinics::create(
        db,
        clinician.provider_id,
        Some(gateway_id),
        "Ward B clinic",
        "North Hospital, Ward B",
        &web::server::db::today(),
    )
    .await
    .unwrap();
    let nhs = (0..)
        .find_map(|n: u32| NhsNumber::with_check_digit(&format!("999{:06}", 900_000 + n)))
        .unwrap();
    let participant = appointments::create_participant(
        db,
        clinician.provider_id,
        &nhs,
        "Ward",
        "Bea",
        "1966-05-05",
    )
    .await
    .unwrap();
    let appointment = appointments::create(db, clinic, participant, "10:00")
        .await
        .unwrap();
    script
        .tell(&format!("GATEWAY ready {clinic} {appointment}"))
        .await;
    script.step("delivered").await;

    let accession = appointments::detail(db, clinician.provider_id, appointment)
        .await
        .unwrap()
        .accession_number
        .expect("an accession number once sent");
    let offered = real_gateway::offered(&python, &peer_py, gateway.mwl_port).await;
    assert!(
        offered.contains(&accession),
        "{accession} not offered by the new gateway: {offered:?}"
    );
    let action = actions::list(db, clinician.provider_id, None, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.appointment_id == Some(appointment))
        .expect("the create action");
    assert_eq!(action.gateway_name, name);
    script.tell(&format!("GATEWAY action {}", action.id)).await;
    script.step("payload for administrators only").await;
    script.finish().await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_page_and_the_clinic_say_offline_while_the_gateway_is_down_and_clear_after() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let (binary, _python, _peer_py) = real_gateway::tools();
    let artifacts = browser::artifacts("web-e2e-liveness");
    std::fs::create_dir_all(&artifacts).unwrap();
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        mut state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let interval = std::time::Duration::from_secs(2);
    state.probe_interval = interval;
    let running = support::serve(state, site).await;
    let clinician = support::demo_user(&running.state.db, 0).await;
    let state_dir = support::tempdir::TempDir::new("web-liveness-gateway");
    let gateway = GatewaySettings::on_emulator(
        binary,
        state_dir.path().to_path_buf(),
        support::first_gateway_name(&running.state.db, clinician.provider_id).await,
        &emulator,
        gateway_key,
        web_key,
        std::path::Path::new(&artifacts).join("gateway.log"),
    );
    let mut process = gateway.start();
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let mut script = Script::spawn(
        &crate_dir,
        "e2e/liveness.mjs",
        &[
            ("BASE_URL", format!("http://{}", running.addr)),
            ("USER1", email.to_string()),
            ("PASS1", password.to_string()),
            ("CLINIC_ID", seeded.clinic_ids[0].to_string()),
            ("GATEWAY_ID", seeded.gateway_ids[0].to_string()),
            ("ARTIFACTS", artifacts.clone()),
        ],
    );
    script.step("reachable").await;
    process.kill().await.unwrap();
    script.tell("GATEWAY stopped").await;
    let offline_ms = script.step("offline").await;
    process = gateway.start();
    script.tell("GATEWAY started").await;
    let back_ms = script.step("back").await;
    eprintln!(
        "liveness: offline on the page {offline_ms} ms after the stop, clear {back_ms} ms after the \
         start (probe interval {} ms)",
        interval.as_millis()
    );
    script.finish().await;
    drop(process);
    running.stop().await;
}
