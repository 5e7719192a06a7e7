//! End to end in a real browser: the web server, the relay emulator and a stand-in gateway in this
//! process; Debian's Chromium driven by playwright-core (web/e2e/live.mjs) in a child process. The
//! clinician signs in, sends an appointment to the modality and watches — without reloading —
//! the status go sent_to_modality → in_progress → complete and the thumbnails arrive; the other
//! provider gets a 404; axe-core finds no serious or critical accessibility violations. The
//! stand-in gateway sends the image events itself, so the measured latency is exactly "gateway
//! sends the event → thumbnail in the DOM".

mod support;

use std::path::Path;

use shared::wire::event::{EventStatus, MppsStatus};
use support::browser::{self, Script, ScriptEnv};
use support::{gateway, ACTIONS, EVENTS};

const IMAGES: usize = 20;
const VIEWS: [(&str, &str); 4] = [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinician_sees_status_and_thumbnails_live_and_other_provider_gets_404() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let artifacts = browser::artifacts("web-e2e");

    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let running = support::serve(state, site).await;
    let gateway_id = seeded.gateway_ids[0];
    support::eventually("events listener connected", || async {
        running
            .state
            .listener_status(gateway_id)
            .is_some_and(|s| s.connected)
    })
    .await;
    let relay = || support::relay_client(&emulator);
    let mut gw = gateway::listen_actions(
        relay(),
        ACTIONS,
        gateway_key.clone(),
        &web_key,
        gateway::reply_created(),
    )
    .await;
    gw.connected().await;

    let mut script = Script::start(
        &crate_dir,
        ScriptEnv {
            base_url: format!("http://{}", running.addr),
            users: web::server::seed::DEMO_USERS,
            clinic_id: seeded.clinic_ids[0],
            artifacts: &artifacts,
            images: IMAGES,
            taken: Some(IMAGES + 1),
            archive: true,
        },
    );
    let appointment_id = script.step("sent").await;
    let action = gw.next().await;
    let item = gateway::worklist_item(&action);
    assert_eq!(
        action
            .source_reference
            .as_ref()
            .map(|r| r.appointment_id.clone()),
        Some(appointment_id.clone())
    );
    let send = |event| {
        let (relay, key, web_key) = (relay(), gateway_key.clone(), web_key.clone());
        async move {
            let reply = gateway::send_event(relay, EVENTS, &key, &web_key, &event).await;
            assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
        }
    };
    send(gateway::mpps(
        Some(action.action_id),
        &item.accession_number,
        MppsStatus::InProgress,
    ))
    .await;
    script.tell("GATEWAY started").await;
    script.step("in_progress").await;
    script.step("appointment open").await;
    for k in 1..=IMAGES {
        let (side, view) = VIEWS[(k - 1) % 4];
        let event = gateway::image(
            Some(action.action_id),
            &item.accession_number,
            &item.participant.nhs_number,
            side,
            view,
            k as i64,
        );
        let sent_at = browser::now_ms();
        send(event).await;
        script.tell(&format!("GATEWAY image {sent_at}")).await;
        script.step(&format!("image {k}")).await;
    }
    let latency = script.step("latency").await;
    eprintln!("image event sent by the gateway → thumbnail in the DOM: {latency}");
    let _ = std::fs::write(
        Path::new(&artifacts).join("latency.txt"),
        format!("{latency}\n"),
    );
    // The modality took one image more than reached the gateway.
    let mut completed = gateway::mpps(
        Some(action.action_id),
        &item.accession_number,
        MppsStatus::Completed,
    );
    if let shared::wire::event::EventBody::MppsStatusUpdate(update) = &mut completed.body {
        update.images_taken = Some(
            (1..=IMAGES + 1)
                .map(|n| shared::wire::event::ReferencedImage {
                    sop_instance_uid: format!("1.2.826.0.1.3680043.8.498.77.{n}"),
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.2".into(),
                    series_instance_uid: "1.2.826.0.1.3680043.8.498.77".into(),
                })
                .collect(),
        );
    }
    send(completed).await;
    script.tell("GATEWAY completed").await;
    script.step("complete").await;
    // The hospital PACS: image 1 stored and its commitment confirmed, image 2 refused; image 3's
    // report comes before a newer one and must not overwrite it.
    let sop = |n: i64| match &gateway::image(None, &item.accession_number, "", "R", "CC", n).body {
        shared::wire::event::EventBody::ImageReceived(image) => {
            image.image.sop_instance_uid.clone()
        }
        _ => unreachable!("gateway::image makes an image event"),
    };
    let archive = |n, state, reason: Option<&str>, age_secs: i64| {
        let mut event = gateway::archive_state(
            Some(action.action_id),
            &item.accession_number,
            &sop(n),
            state,
            reason,
        );
        event.timestamp -= time::Duration::seconds(age_secs);
        event
    };
    use shared::wire::event::ArchiveState;
    send(archive(1, ArchiveState::Forwarded, None, 2)).await;
    send(archive(1, ArchiveState::Committed, None, 1)).await;
    send(archive(
        2,
        ArchiveState::Failed,
        Some("refused with status 0xA700 (out of resources)"),
        1,
    ))
    .await;
    send(archive(3, ArchiveState::Forwarded, None, 1)).await;
    send(archive(
        3,
        ArchiveState::Failed,
        Some("an older report"),
        30,
    ))
    .await;
    script.tell("GATEWAY archived").await;
    script.step("archive").await;
    script.step("count").await;
    let (stray_accession, stray_patient) = ("ACCSTRAY0001", "9990004321");
    send(gateway::image(
        None,
        stray_accession,
        stray_patient,
        "L",
        "CC",
        1,
    ))
    .await;
    // And a C-STORE the gateway refused before it knew whose it was.
    send(shared::wire::event::Event::new(
        "test-gateway",
        shared::wire::event::EventBody::ImageValidationFailed(
            shared::wire::event::ImageValidationFailed {
                action_id: None,
                accession_number: None,
                sop_instance_uid: Some("1.2.826.0.1.3680043.8.498.99".into()),
                calling_ae_title: "STRAY_MODALITY".into(),
                reason: "SOP class not stored here (C-STORE status 0x0122)".into(),
            },
        ),
    ))
    .await;
    script
        .tell(&format!("GATEWAY stray {stray_accession} {stray_patient}"))
        .await;
    script.step("unmatched").await;
    script.step("other provider 404").await;
    script.finish().await;
    running.stop().await;
}

/// Delivery state on the clinic page, live: retrying during an outage (next attempt and reason),
/// refused by the gateway (its message), re-sent by the clinician, delivered; the appointment page
/// shows it in an inset box "– Awaiting images" (e2e/delivery.mjs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinician_sees_delivery_retrying_refused_and_resends() {
    use std::sync::Arc;
    let (site, crate_dir) = browser::site_and_crate_dir();
    let artifacts = browser::artifacts("web-e2e-delivery");
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let running = support::serve(state, site).await;
    let mut script = Script::spawn(
        &crate_dir,
        "e2e/delivery.mjs",
        &[
            ("BASE_URL", format!("http://{}", running.addr)),
            ("USER1", web::server::seed::DEMO_USERS[0].0.to_string()),
            ("PASS1", web::server::seed::DEMO_USERS[0].1.to_string()),
            ("CLINIC_ID", seeded.clinic_ids[0].to_string()),
            ("ARTIFACTS", artifacts.clone()),
        ],
    );
    script.step("sent").await;
    let retrying = script.step("retrying").await;
    assert!(retrying.contains("no listener"), "{retrying}");

    // The gateway comes back refusing the item.
    let relay = || support::relay_client(&emulator);
    let mut refusing = gateway::listen_actions(
        relay(),
        ACTIONS,
        gateway_key.clone(),
        &web_key,
        Arc::new(
            |_: &shared::wire::action::Action| shared::wire::action::Outcome::Error {
                message: "worklist database is read-only".into(),
            },
        ),
    )
    .await;
    refusing.connected().await;
    script.tell("GATEWAY refusing").await;
    script.step("refused").await;
    drop(refusing);
    support::eventually("the refusing listener is gone", || async {
        emulator.listener_count(ACTIONS) == 0
    })
    .await;

    let mut accepting = gateway::listen_actions(
        relay(),
        ACTIONS,
        gateway_key.clone(),
        &web_key,
        gateway::reply_created(),
    )
    .await;
    accepting.connected().await;
    script.tell("GATEWAY accepting").await;
    script.step("delivered").await;
    accepting.next().await;
    script.step("inset").await;
    script.finish().await;
    let _ = Path::new(&artifacts);
    running.stop().await;
}

/// Walk-ins in the browser (e2e/walk_in.mjs): a participant added at the gateway appears live on
/// the clinic page; the clinician matches it to the booked appointment it is, then confirms a
/// second one as a new appointment. The gateway's reports travel through the relay emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinician_matches_and_confirms_walk_ins() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let artifacts = browser::artifacts("web-e2e-walk-in");
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let running = support::serve(state, site).await;
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let user = support::demo_user(&running.state.db, 0).await;
    let clinic = web::server::store::clinics::detail(
        &running.state.db,
        user.provider_id,
        seeded.clinic_ids[0],
    )
    .await
    .unwrap();
    let booked = &clinic.appointments[3];
    let mut script = Script::spawn(
        &crate_dir,
        "e2e/walk_in.mjs",
        &[
            ("BASE_URL", format!("http://{}", running.addr)),
            ("USER1", email.to_string()),
            ("PASS1", password.to_string()),
            ("CLINIC_ID", seeded.clinic_ids[0].to_string()),
            ("ARTIFACTS", artifacts.clone()),
        ],
    );
    support::eventually("the events listener is up", || async {
        emulator.listener_count(EVENTS) > 0
    })
    .await;
    let send = |event| {
        let (relay, key, web_key) = (
            support::relay_client(&emulator),
            gateway_key.clone(),
            web_key.clone(),
        );
        async move {
            let reply = gateway::send_event(relay, EVENTS, &key, &web_key, &event).await;
            assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
        }
    };
    let day = web::server::db::today().replace('-', "");
    script.step("watching").await;
    send(gateway::local_item(
        "LOCALBR01",
        &booked.nhs_number.replace(' ', ""),
        "TYPED^ATGATEWAY",
        &day,
    ))
    .await;
    script.tell("GATEWAY walk-in LOCALBR01").await;
    let walk_in_id = script.step("listed").await;
    let matched = script.step("matched").await;
    assert_eq!(
        matched,
        booked.id.to_string(),
        "the same NHS number is offered first"
    );
    let merged =
        web::server::store::appointments::detail(&running.state.db, user.provider_id, booked.id)
            .await
            .unwrap();
    assert_eq!(merged.accession_number.as_deref(), Some("LOCALBR01"));
    assert!(matches!(
        web::server::store::appointments::detail(
            &running.state.db,
            user.provider_id,
            walk_in_id.parse().unwrap()
        )
        .await,
        Err(web::server::db::StoreError::NotFound)
    ));

    script.step("watching again").await;
    send(gateway::local_item(
        "LOCALBR02",
        "9434765919",
        "NEW^WALKIN",
        &day,
    ))
    .await;
    script.tell("GATEWAY walk-in LOCALBR02").await;
    let confirmed = script.step("confirmed").await;
    let detail = web::server::store::appointments::detail(
        &running.state.db,
        user.provider_id,
        confirmed.parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        detail.walk_in.map(|w| w.state),
        Some(web::domain::WalkIn::Confirmed)
    );
    script.finish().await;
    running.stop().await;
}
