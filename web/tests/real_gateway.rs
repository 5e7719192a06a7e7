//! The outbox against the real gateway (`gateway serve`) through the relay emulator, with the
//! modality's view checked by a pynetdicom worklist C-FIND: what the clinician cancelled is never
//! offered to the radiographer, however the outage and the clicks interleave.

mod support;

use support::real_gateway::{self, GatewaySettings};
use support::ACTIONS;
use web::domain::AppointmentStatus;
use web::server::service;
use web::server::store::{actions, appointments, clinics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_gateway_is_down_never_lets_the_item_reach_the_worklist() {
    let (binary, python, peer_py) = real_gateway::tools();
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let user = support::demo_user(&state.db, 0).await;
    let gateway_name = support::first_gateway_name(&state.db, user.provider_id).await;
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
    let settings = GatewaySettings::on_emulator(
        binary,
        state_dir.path().to_path_buf(),
        gateway_name,
        &emulator,
        gateway_key,
        web_key,
        std::path::Path::new(&artifacts).join("gateway.log"),
    );
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

/// Runs the gateway binary with the state directory of `settings` and returns its stdout.
async fn gateway_command(settings: &GatewaySettings, args: &[&str]) -> String {
    let out = tokio::process::Command::new(&settings.binary)
        .args(args)
        .env("GATEWAY_STATE_DIR", &settings.state_dir)
        .env("GATEWAY_NAME", &settings.name)
        .env("GATEWAY_ENV_FILE", settings.state_dir.join("absent.env"))
        .output()
        .await
        .expect("run the gateway binary");
    assert!(
        out.status.success(),
        "gateway {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_added_at_the_gateway_while_the_cloud_is_away_arrives_as_a_walk_in() {
    let (binary, _python, _peer_py) = real_gateway::tools();
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let user = support::demo_user(&state.db, 0).await;
    let gateway_name = support::first_gateway_name(&state.db, user.provider_id).await;

    // The cloud is away: the gateway runs, and nobody listens for its events.
    let state_dir = support::tempdir::TempDir::new("web-walk-in");
    let artifacts = support::browser::artifacts("web-walk-in");
    std::fs::create_dir_all(&artifacts).unwrap();
    let settings = GatewaySettings::on_emulator(
        binary,
        state_dir.path().to_path_buf(),
        gateway_name.clone(),
        &emulator,
        gateway_key,
        web_key,
        std::path::Path::new(&artifacts).join("gateway.log"),
    );
    let mut gateway = settings.start();
    support::eventually(
        "the gateway is up (its actions listener connected)",
        || async { emulator.listener_count(ACTIONS) > 0 },
    )
    .await;

    // A local operator adds a participant without stopping the service, and the radiographer
    // runs the procedure from the worklist: MPPS and four views.
    let day = web::server::db::today().replace('-', "");
    let added = gateway_command(
        &settings,
        &[
            "worklist",
            "add",
            "--accession",
            "LOCALWALK01",
            "--nhs-number",
            "9434765919",
            "--name",
            "WALKIN^WENDY",
            "--birth-date",
            "19600101",
            "--date",
            &day,
            "--time",
            "101500",
        ],
    )
    .await;
    assert!(added.contains("LOCALWALK01"), "{added}");
    let mwl = format!("127.0.0.1:{}", settings.mwl_port);
    let pacs = format!("127.0.0.1:{}", settings.pacs_port);
    gateway_command(
        &settings,
        &[
            "emulate-modality",
            "--mwl",
            &mwl,
            "--pacs",
            &pacs,
            "--accession",
            "LOCALWALK01",
            "--rows",
            "256",
            "--cols",
            "208",
        ],
    )
    .await;

    // The cloud comes back; the queued events arrive in order and make a walk-in with its
    // images, complete.
    let running = support::serve(state, "unused-site".into()).await;
    let db = &running.state.db;
    let clinic_id = seeded.clinic_ids[0];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(150);
    let walk_in = loop {
        let clinic = clinics::detail(db, user.provider_id, clinic_id)
            .await
            .unwrap();
        let found = clinic
            .appointments
            .into_iter()
            .find(|a| a.walk_in.is_some());
        if let Some(row) = found {
            let detail = appointments::detail(db, user.provider_id, row.id)
                .await
                .unwrap();
            if detail.status == AppointmentStatus::Complete && detail.images.len() == 4 {
                break detail;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no complete walk-in with four images; see {}",
            settings.log.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(walk_in.accession_number.as_deref(), Some("LOCALWALK01"));
    assert_eq!(
        walk_in.walk_in.map(|w| w.state),
        Some(web::domain::WalkIn::Unconfirmed)
    );
    assert_eq!(walk_in.time, "10:15");
    assert_eq!(walk_in.nhs_number, "943 476 5919");
    let _ = gateway.kill().await;
    running.stop().await;
}
