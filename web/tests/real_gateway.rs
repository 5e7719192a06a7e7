//! The outbox against the real gateway (`gateway serve`) through the relay emulator, with the
//! modality's view checked by a pynetdicom worklist C-FIND: what the clinician cancelled is never
//! offered to the radiographer, however the outage and the clicks interleave.

mod support;

use shared::wire::SigningKey;
use support::real_gateway::{self, GatewaySettings};
use support::{TestDb, ACTIONS};
use web::domain::AppointmentStatus;
use web::server::service;
use web::server::store::{actions, appointments, clinics, gateways, identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_gateway_is_down_never_lets_the_item_reach_the_worklist() {
    let (binary, python, peer_py) = real_gateway::tools();
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (state, seeded, web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let user = identity::authenticate(&state.db, email, password)
        .await
        .unwrap()
        .unwrap();
    let gateway_name = gateways::for_provider(&state.db, user.provider_id)
        .await
        .unwrap()
        .remove(0)
        .name;
    let running = support::serve(state, "unused-site".into()).await;
    let db = &running.state.db;
    let clinic = clinics::detail(db, user.provider_id, seeded.clinic_ids[0])
        .await
        .unwrap();
    let (cancelled, kept) = (clinic.appointments[0].id, clinic.appointments[1].id);

    // The gateway is down: the create is tried, fails for want of a listener, and waits.
    let create = service::send_to_modality(&running.state, &user, cancelled)
        .await
        .unwrap();
    support::eventually("the create is waiting after a failed attempt", || async {
        let a = actions::get(db, user.provider_id, &create).await.unwrap();
        a.status == "pending" && a.attempts >= 1 && a.next_attempt_at.is_some()
    })
    .await;
    let accession = appointments::detail(db, user.provider_id, cancelled)
        .await
        .unwrap()
        .accession_number
        .unwrap();

    // The clinician cancels: the undelivered create is withdrawn and no cancel is needed.
    let cancel = service::cancel_appointment(&running.state, &user, cancelled)
        .await
        .unwrap();
    assert_eq!(cancel, None, "nothing reached the gateway to cancel");
    let withdrawn = actions::get(db, user.provider_id, &create).await.unwrap();
    assert_eq!(withdrawn.status, "withdrawn", "{withdrawn:?}");

    // The gateway comes up. Another appointment is sent and confirmed, so the outbox has run
    // against the live gateway since; the cancelled one is still not offered.
    let state_dir = support::tempdir::TempDir::new("web-real-gateway");
    let artifacts = support::browser::artifacts("web-real-gateway");
    std::fs::create_dir_all(&artifacts).unwrap();
    let settings = GatewaySettings {
        binary,
        state_dir: state_dir.path().to_path_buf(),
        name: gateway_name,
        relay_endpoint: format!("ws://{}", emulator.addr()),
        gateway_key,
        web_key,
        mwl_port: real_gateway::free_port(),
        pacs_port: real_gateway::free_port(),
        log: std::path::Path::new(&artifacts).join("gateway.log"),
    };
    let mut gateway = settings.start();
    support::eventually("the gateway listens for actions", || async {
        emulator.listener_count(ACTIONS) > 0
    })
    .await;
    let other = service::send_to_modality(&running.state, &user, kept)
        .await
        .unwrap();
    support::eventually("the gateway confirmed the other item", || async {
        actions::get(db, user.provider_id, &other)
            .await
            .unwrap()
            .status
            == "confirmed"
    })
    .await;
    let kept_accession = appointments::detail(db, user.provider_id, kept)
        .await
        .unwrap()
        .accession_number
        .unwrap();
    let offered = real_gateway::offered(&python, &peer_py, settings.mwl_port).await;
    assert!(offered.contains(&kept_accession), "{offered:?}");
    assert!(
        !offered.contains(&accession),
        "the cancelled participant is offered: {offered:?}"
    );

    // Cancelling the delivered one sends a cancel, and then it is not offered either.
    let cancel = service::cancel_appointment(&running.state, &user, kept)
        .await
        .unwrap()
        .expect("a delivered item needs a cancel");
    support::eventually("the gateway confirmed the cancel", || async {
        actions::get(db, user.provider_id, &cancel)
            .await
            .unwrap()
            .status
            == "confirmed"
    })
    .await;
    let offered = real_gateway::offered(&python, &peer_py, settings.mwl_port).await;
    assert!(
        !offered.contains(&kept_accession) && !offered.contains(&accession),
        "{offered:?}"
    );

    let detail = appointments::detail(db, user.provider_id, cancelled)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::Cancelled);
    assert!(detail
        .timeline
        .iter()
        .any(|t| t.text.contains("withdrawn before delivery")));
    let after = actions::get(db, user.provider_id, &create).await.unwrap();
    assert_eq!(after.status, "withdrawn");
    assert_eq!(after.attempts, withdrawn.attempts, "never tried again");
    let _ = gateway.kill().await;
    running.stop().await;
}
