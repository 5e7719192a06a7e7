//! The storage, scoping and event handling against both real databases: a SQLite file and a
//! PostgreSQL server started for the test. The same scenario runs on each.

mod support;

use shared::wire::event::{EventReply, EventStatus, MppsStatus};
use shared::wire::{Keyring, SigningKey, Verification};
use support::gateway;
use support::TestDb;
use web::domain::{AppointmentStatus, DeliveryState, WorklistMessage};
use web::server::db::{Db, StoreError};
use web::server::events;
use web::server::seed::{self, SeedRelay};
use web::server::service::{self, GatewayCheck};
use web::server::state::AppState;
use web::server::store::{actions, appointments, clinics, gateways, identity, images};

fn not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected not found, got {other:?}"),
    }
}

async fn event_reply(
    state: &AppState,
    gateway: &gateways::GatewayRecord,
    web_key: &SigningKey,
    text: &str,
) -> EventReply {
    let reply = events::handle(state, gateway, text).await;
    EventReply::open(
        &reply,
        &Verification::strict(Keyring::new(vec![web_key.public_key()])),
    )
    .expect("reply signed by the web app")
}

async fn scenario(db: Db) {
    let gateway_key = SigningKey::generate();
    let relay = SeedRelay {
        namespace: "test.servicebus.windows.net".into(),
        endpoint: Some("ws://127.0.0.1:9".into()),
        actions_hc: "gateway-actions".into(),
        events_hc: "gateway-events".into(),
        key_name: "root".into(),
        key_env_var: "AZURE_RELAY_SHARED_ACCESS_KEY".into(),
        gateway_public_key: Some(gateway_key.public_key().to_base64()),
    };
    assert!(identity::is_empty(&db).await.unwrap());
    let seeded = seed::seed(&db, &relay).await.unwrap();
    assert!(!identity::is_empty(&db).await.unwrap());

    // Sign-in: right password only; sessions map back to the user.
    let (north_email, north_password) = seed::DEMO_USERS[0];
    let north = identity::authenticate(&db, north_email, north_password)
        .await
        .unwrap()
        .expect("north signs in");
    assert!(identity::authenticate(&db, north_email, "wrong")
        .await
        .unwrap()
        .is_none());
    assert!(identity::authenticate(&db, "nobody@example", "x")
        .await
        .unwrap()
        .is_none());
    let (south_email, south_password) = seed::DEMO_USERS[1];
    let south = identity::authenticate(&db, south_email, south_password)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(north.provider_id, south.provider_id);
    // Re-drive and probes are administrators'; the scoping checks below use them.
    let north_admin = support::administrator(&db, north.provider_id).await;
    let south_admin = support::administrator(&db, south.provider_id).await;
    let token = identity::create_session(&db, north.id).await.unwrap();
    assert_eq!(
        identity::user_for_session(&db, &token).await.unwrap(),
        Some(north.clone())
    );
    identity::delete_session(&db, &token).await.unwrap();
    assert_eq!(identity::user_for_session(&db, &token).await.unwrap(), None);

    // Clinics: each provider sees its own only.
    let north_clinics = clinics::list(&db, north.provider_id).await.unwrap();
    assert_eq!(north_clinics.len(), 1);
    assert_eq!(north_clinics[0].appointments, 10);
    let clinic_id = north_clinics[0].id;
    assert_eq!(clinic_id, seeded.clinic_ids[0]);
    assert!(clinics::list(&db, south.provider_id)
        .await
        .unwrap()
        .iter()
        .all(|c| c.id != clinic_id));
    not_found(
        clinics::detail(&db, south.provider_id, clinic_id).await,
        "south reads north's clinic",
    );
    let clinic = clinics::detail(&db, north.provider_id, clinic_id)
        .await
        .unwrap();
    assert!(clinic
        .appointments
        .iter()
        .all(|a| a.status == AppointmentStatus::CheckedIn));
    let appointment_id = clinic.appointments[0].id;
    not_found(
        appointments::detail(&db, south.provider_id, appointment_id).await,
        "south reads north's appointment",
    );
    not_found(
        gateways::get(&db, south.provider_id, seeded.gateway_ids[0]).await,
        "south reads north's gateway",
    );

    let web_key = SigningKey::generate();
    let state = AppState::new(db.clone(), web_key.clone(), Keyring::new(vec![]));

    // Send to modality: scoped, queues an action, moves the status, refuses a second send.
    not_found(
        service::send_to_modality(&state, &south, appointment_id).await,
        "south sends north's appointment",
    );
    let action_id = service::send_to_modality(&state, &north, appointment_id)
        .await
        .unwrap();
    let detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::SentToModality);
    let accession = detail
        .accession_number
        .clone()
        .expect("an accession number");
    assert!(
        accession.starts_with("ACC") && accession.len() <= 16,
        "{accession}"
    );
    match service::send_to_modality(&state, &north, appointment_id).await {
        Err(StoreError::Illegal(_)) => {}
        other => panic!("second send must be refused, got {other:?}"),
    }
    let queued = actions::list(&db, north.provider_id, Some("pending"), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, action_id);
    assert_eq!(queued[0].action_type, "worklist.create_item");
    assert!(actions::list(&db, south.provider_id, None, 10)
        .await
        .unwrap()
        .is_empty());
    not_found(
        actions::get(&db, south.provider_id, &action_id).await,
        "south reads north's action",
    );
    not_found(
        service::redrive(&state, &south_admin, &action_id).await,
        "south re-drives north's action",
    );
    not_found(
        service::check_gateway(
            &state,
            &south_admin,
            seeded.gateway_ids[0],
            GatewayCheck::Echo,
        )
        .await,
        "south checks north's gateway",
    );
    let south_gateways = service::gateway_rows(&state, &south).await.unwrap();
    assert!(south_gateways.iter().all(|g| g.id != seeded.gateway_ids[0]));
    let north_gateways = service::gateway_rows(&state, &north).await.unwrap();
    assert_eq!(north_gateways[0].pending, 1);

    // Events: verified, applied once, scoped thumbnails.
    let gateway = gateways::by_id(&db, seeded.gateway_ids[0]).await.unwrap();
    let action_uuid = action_id.parse().unwrap();
    let started = gateway::mpps(Some(action_uuid), &accession, MppsStatus::InProgress);
    let text = gateway_key.seal(&started);
    assert_eq!(
        event_reply(&state, &gateway, &web_key, &text).await.status,
        EventStatus::Accepted
    );
    assert_eq!(
        event_reply(&state, &gateway, &web_key, &text).await.status,
        EventStatus::Duplicate
    );
    let detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::InProgress);

    let nhs = detail.nhs_number.replace(' ', "");
    for (n, (side, view)) in [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")]
        .iter()
        .enumerate()
    {
        let event = gateway::image(None, &accession, &nhs, side, view, n as i64 + 1);
        let reply = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&event)).await;
        assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    }
    let detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.images.len(), 4);
    let views: Vec<String> = detail
        .images
        .iter()
        .map(|i| format!("{}{}", i.laterality, i.view))
        .collect();
    assert_eq!(views, ["RCC", "RMLO", "LCC", "LMLO"]);
    assert_eq!(detail.images[0].dose.kvp, "29.00 kV");
    let image_id = detail.images[0].id;
    let (bytes, format) = images::thumbnail(&db, north.provider_id, image_id)
        .await
        .unwrap();
    assert_eq!(format, "jpeg");
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
    not_found(
        images::thumbnail(&db, south.provider_id, image_id).await,
        "south reads north's thumbnail",
    );

    // A signature by another key changes nothing.
    let forged = gateway::mpps(Some(action_uuid), &accession, MppsStatus::Discontinued);
    let reply = event_reply(
        &state,
        &gateway,
        &web_key,
        &SigningKey::generate().seal(&forged),
    )
    .await;
    assert_eq!(reply.status, EventStatus::Error);
    assert!(reply.message.unwrap_or_default().contains("signature"));

    let completed = gateway::mpps(Some(action_uuid), &accession, MppsStatus::Completed);
    assert_eq!(
        event_reply(&state, &gateway, &web_key, &gateway_key.seal(&completed))
            .await
            .status,
        EventStatus::Accepted
    );
    let detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::Complete);
    assert!(detail
        .timeline
        .iter()
        .any(|t| t.text.contains("Image received: L MLO")));

    // A (repeated) COMPLETED listing five images taken: "5 taken, 4 received".
    let mut again = gateway::mpps(Some(action_uuid), &accession, MppsStatus::Completed);
    if let shared::wire::event::EventBody::MppsStatusUpdate(update) = &mut again.body {
        update.images_taken = Some(
            (1..=5)
                .map(|n| shared::wire::event::ReferencedImage {
                    sop_instance_uid: format!("1.2.3.{n}"),
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.2".into(),
                    series_instance_uid: "1.2.3".into(),
                })
                .collect(),
        );
    }
    assert_eq!(
        event_reply(&state, &gateway, &web_key, &gateway_key.seal(&again))
            .await
            .status,
        EventStatus::Accepted
    );
    let detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!((detail.images_taken, detail.images.len()), (Some(5), 4));

    // An image whose accession matches no appointment is listed for its provider only, with the
    // patient details.
    let stray = gateway::image(None, "ACCNOMATCH0001", "9990001234", "L", "CC", 1);
    let reply = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&stray)).await;
    assert_eq!(reply.status, EventStatus::Accepted);
    let unmatched = images::unmatched(&db, north.provider_id).await.unwrap();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(
        unmatched[0].accession_number.as_deref(),
        Some("ACCNOMATCH0001")
    );
    assert_eq!(unmatched[0].patient_id.as_deref(), Some("9990001234"));
    assert_eq!(unmatched[0].patient_name.as_deref(), Some("TEST^PATIENT"));
    assert_eq!(unmatched[0].images, 1);
    assert!(images::unmatched(&db, south.provider_id)
        .await
        .unwrap()
        .is_empty());

    // A refused image is shown in the appointment's history.
    let refused = shared::wire::event::Event::new(
        "test-gateway",
        shared::wire::event::EventBody::ImageValidationFailed(
            shared::wire::event::ImageValidationFailed {
                action_id: Some(action_uuid),
                accession_number: Some(accession.clone()),
                sop_instance_uid: None,
                calling_ae_title: "MODALITY1".into(),
                reason: "missing SOP Instance UID".into(),
            },
        ),
    );
    let reply = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&refused)).await;
    assert_eq!(reply.status, EventStatus::Accepted);
    let detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert!(detail
        .timeline
        .iter()
        .any(|t| t.text.contains("MODALITY1") && t.text.contains("missing SOP Instance UID")));
    assert!(images::refused(&db, north.provider_id)
        .await
        .unwrap()
        .is_empty());
    // One that names no appointment (refused before its data set was read) is listed for the
    // provider, with what the modality was told; the other provider does not see it.
    let orphan = shared::wire::event::Event::new(
        "test-gateway",
        shared::wire::event::EventBody::ImageValidationFailed(
            shared::wire::event::ImageValidationFailed {
                action_id: None,
                accession_number: None,
                sop_instance_uid: Some("1.2.3.4.5".into()),
                calling_ae_title: "MODALITY2".into(),
                reason: "SOP class not stored here (C-STORE status 0x0122)".into(),
            },
        ),
    );
    let reply = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&orphan)).await;
    assert_eq!(reply.status, EventStatus::Accepted);
    let listed = images::refused(&db, north.provider_id).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0].calling_ae_title.as_str(),
            listed[0].sop_instance_uid.as_deref(),
            listed[0].reason.as_str()
        ),
        (
            "MODALITY2",
            Some("1.2.3.4.5"),
            "SOP class not stored here (C-STORE status 0x0122)"
        )
    );
    assert!(images::refused(&db, south.provider_id)
        .await
        .unwrap()
        .is_empty());

    // Cancelling: scoped; a checked-in appointment needs no message, a sent one cancels its
    // worklist item through the outbox; a cancelled appointment cannot be cancelled again.
    let (checked_in, sent) = (clinic.appointments[1].id, clinic.appointments[2].id);
    not_found(
        service::cancel_appointment(&state, &south, checked_in).await,
        "south cancels north's appointment",
    );
    assert_eq!(
        service::cancel_appointment(&state, &north, checked_in)
            .await
            .unwrap(),
        None
    );
    let cancelled = appointments::detail(&db, north.provider_id, checked_in)
        .await
        .unwrap();
    assert_eq!(cancelled.status, AppointmentStatus::Cancelled);
    assert!(matches!(
        service::cancel_appointment(&state, &north, checked_in).await,
        Err(StoreError::Illegal(_))
    ));
    // Sent but never delivered: cancelling withdraws the worklist item and queues no cancel.
    let create_id = service::send_to_modality(&state, &north, sent)
        .await
        .unwrap();
    assert_eq!(
        service::cancel_appointment(&state, &north, sent)
            .await
            .unwrap(),
        None,
        "nothing reached the gateway, so nothing needs cancelling there"
    );
    let create = actions::get(&db, north.provider_id, &create_id)
        .await
        .unwrap();
    assert_eq!(create.status, "withdrawn");
    let history = appointments::detail(&db, north.provider_id, sent)
        .await
        .unwrap();
    assert_eq!(history.status, AppointmentStatus::Cancelled);
    assert!(
        history
            .timeline
            .iter()
            .any(|t| t.text.contains("withdrawn before delivery")
                && t.text.contains("never reached the gateway")),
        "{:?}",
        history.timeline
    );
    let far = web::server::db::now_ms() + 3_600_000;
    assert!(actions::due(&db, far, 50)
        .await
        .unwrap()
        .iter()
        .all(|a| a.appointment_id != Some(sent)));
    assert!(matches!(
        service::redrive(&state, &north_admin, &create_id).await,
        Err(StoreError::Refused(_))
    ));

    // In flight when cancelled: the cancel is queued but held until the create is settled; a
    // failed create of the cancelled appointment cannot be re-driven; once the create is
    // confirmed the cancel goes.
    let in_flight = clinic.appointments[3].id;
    let create_id = service::send_to_modality(&state, &north, in_flight)
        .await
        .unwrap();
    assert!(actions::mark_sent(&db, &create_id, &support::CLAIM)
        .await
        .unwrap());
    let cancel_id = service::cancel_appointment(&state, &north, in_flight)
        .await
        .unwrap()
        .expect("a cancel behind a create in flight");
    let cancel_action = actions::get(&db, north.provider_id, &cancel_id)
        .await
        .unwrap();
    assert_eq!(cancel_action.action_type, "worklist.cancel_item");
    assert_eq!(cancel_action.status, "pending");
    let due_ids = |due: Vec<actions::Queued>| due.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert!(!due_ids(actions::due(&db, far, 50).await.unwrap()).contains(&cancel_id));
    actions::mark_retry(
        &db,
        &create_id,
        &support::CLAIM,
        "timed out",
        far - 1,
        actions::Reached::Maybe,
    )
    .await
    .unwrap();
    let due = due_ids(actions::due(&db, far, 50).await.unwrap());
    assert!(
        due.contains(&create_id) && !due.contains(&cancel_id),
        "{due:?}"
    );
    assert!(actions::mark_sent(&db, &create_id, &support::CLAIM)
        .await
        .unwrap());
    actions::mark_failed(
        &db,
        &create_id,
        &support::CLAIM,
        "refused",
        None,
        actions::Reached::No,
    )
    .await
    .unwrap();
    assert!(!due_ids(actions::due(&db, far, 50).await.unwrap()).contains(&cancel_id));
    match service::redrive(&state, &north_admin, &create_id).await {
        Err(StoreError::Refused(why)) => assert!(why.contains("cancelled"), "{why}"),
        other => panic!("re-driving a cancelled appointment's item must be refused: {other:?}"),
    }
    actions::redrive(&db, north.provider_id, &cancel_id)
        .await
        .unwrap();
    assert!(!due_ids(actions::due(&db, far, 50).await.unwrap()).contains(&cancel_id));
    actions::mark_confirmed(&db, &create_id, "{}")
        .await
        .unwrap();
    assert!(due_ids(actions::due(&db, far, 50).await.unwrap()).contains(&cancel_id));
    assert_eq!(
        actions::next_due(&db).await.unwrap().map(|t| t <= far),
        Some(true)
    );
    // Several replicas: of two claims on one due action exactly one wins; a claim whose lease
    // ran out (its replica died mid-send) is due again and taken over by another replica, the
    // action marked as maybe delivered; the dead replica's claim is then no good.
    let shared = clinic.appointments[4].id;
    let shared_id = service::send_to_modality(&state, &north, shared)
        .await
        .unwrap();
    let claim = |replica, secs| actions::Claim {
        replica,
        lease: std::time::Duration::from_secs(secs),
    };
    assert!(actions::mark_sent(&db, &shared_id, &claim("a", 0))
        .await
        .unwrap());
    let now = web::server::db::now_ms();
    assert!(due_ids(actions::due(&db, now + 1, 50).await.unwrap()).contains(&shared_id));
    let (claim_b, claim_c) = (claim("b", 300), claim("c", 300));
    let (b, c) = tokio::join!(
        actions::mark_sent(&db, &shared_id, &claim_b),
        actions::mark_sent(&db, &shared_id, &claim_c),
    );
    let (b, c) = (b.unwrap(), c.unwrap());
    assert!(b ^ c, "exactly one replica takes over an expired claim");
    assert!(!actions::mark_sent(&db, &shared_id, &claim("a", 300))
        .await
        .unwrap());
    assert!(!due_ids(actions::due(&db, now + 1, 50).await.unwrap()).contains(&shared_id));
    let mut tx = db.begin().await.unwrap();
    let taken_over = actions::create_of(&mut tx, shared).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert!(
        taken_over.maybe_delivered,
        "a takeover may resend what was delivered"
    );
    // The replica that outlived its lease hears back late: its failure or retry is dropped (the
    // new owner decides), a confirmation counts whoever hears it, and only once.
    let new = if b { claim_b } else { claim_c };
    let old = claim("a", 300);
    assert!(!actions::mark_failed(
        &db,
        &shared_id,
        &old,
        "late refusal",
        None,
        actions::Reached::No
    )
    .await
    .unwrap());
    assert!(!actions::mark_retry(
        &db,
        &shared_id,
        &old,
        "late timeout",
        0,
        actions::Reached::Maybe
    )
    .await
    .unwrap());
    let row = actions::get(&db, north.provider_id, &shared_id)
        .await
        .unwrap();
    assert_eq!(row.status, "sent", "{row:?}");
    assert!(actions::mark_confirmed(&db, &shared_id, "{}")
        .await
        .unwrap());
    assert!(!actions::mark_confirmed(&db, &shared_id, "{}")
        .await
        .unwrap());
    assert!(!actions::mark_failed(
        &db,
        &shared_id,
        &new,
        "after the confirmation",
        None,
        actions::Reached::No
    )
    .await
    .unwrap());
    assert_eq!(
        actions::get(&db, north.provider_id, &shared_id)
            .await
            .unwrap()
            .status,
        "confirmed"
    );

    // Until the removal is delivered the modality still offers the participant, and the pages
    // say so: the delivery shown is the cancel's, refused with its reason, then delivered.
    let removal = |id| {
        let db = db.clone();
        async move {
            appointments::detail(&db, north.provider_id, id)
                .await
                .unwrap()
                .delivery
                .expect("a delivery")
        }
    };
    let shown = removal(in_flight).await;
    assert_eq!(
        (shown.message, shown.state, shown.action_id.clone()),
        (
            WorklistMessage::Cancel,
            DeliveryState::Queued,
            cancel_id.clone()
        )
    );
    assert!(actions::mark_sent(&db, &cancel_id, &support::CLAIM)
        .await
        .unwrap());
    actions::mark_failed(
        &db,
        &cancel_id,
        &support::CLAIM,
        "worklist database is read-only",
        None,
        actions::Reached::No,
    )
    .await
    .unwrap();
    let shown = removal(in_flight).await;
    assert_eq!(
        (shown.message, shown.state),
        (WorklistMessage::Cancel, DeliveryState::Refused)
    );
    assert_eq!(
        shown.reason.as_deref(),
        Some("worklist database is read-only")
    );
    let resent = service::resend_worklist_item(&state, &north, in_flight)
        .await
        .unwrap();
    assert_eq!(resent, cancel_id, "re-send re-sends the removal");
    assert!(actions::mark_sent(&db, &cancel_id, &support::CLAIM)
        .await
        .unwrap());
    actions::mark_confirmed(&db, &cancel_id, "{}")
        .await
        .unwrap();
    let shown = removal(in_flight).await;
    assert_eq!(
        (shown.message, shown.state),
        (WorklistMessage::Cancel, DeliveryState::Delivered)
    );
    // With no removal queued (nothing reached the gateway), the create's withdrawal is shown.
    assert_eq!(removal(sent).await.message, WorklistMessage::Create);

    // Isolation: the other provider's gateway reports a study with the same Study, Series and
    // SOP Instance UIDs; each provider keeps its own images, thumbnails stay scoped.
    let south_clinic = clinics::detail(&db, south.provider_id, seeded.clinic_ids[1])
        .await
        .unwrap();
    let south_appointment = south_clinic.appointments[0].id;
    service::send_to_modality(&state, &south, south_appointment)
        .await
        .unwrap();
    let south_accession = appointments::detail(&db, south.provider_id, south_appointment)
        .await
        .unwrap()
        .accession_number
        .unwrap();
    let south_gateway = gateways::by_id(&db, seeded.gateway_ids[1]).await.unwrap();
    let mut same = gateway::image(None, &south_accession, "9999999999", "R", "CC", 1);
    let north_copy = gateway::image(None, &accession, &nhs, "R", "CC", 1);
    if let (
        shared::wire::event::EventBody::ImageReceived(theirs),
        shared::wire::event::EventBody::ImageReceived(ours),
    ) = (&mut same.body, &north_copy.body)
    {
        theirs.study.study_instance_uid = ours.study.study_instance_uid.clone();
        theirs.series.series_instance_uid = ours.series.series_instance_uid.clone();
        theirs.image.sop_instance_uid = ours.image.sop_instance_uid.clone();
    }
    let reply = event_reply(&state, &south_gateway, &web_key, &gateway_key.seal(&same)).await;
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    let south_images = appointments::detail(&db, south.provider_id, south_appointment)
        .await
        .unwrap()
        .images;
    assert_eq!(
        south_images.len(),
        1,
        "south's own image, not a duplicate of north's"
    );
    let north_images = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap()
        .images;
    assert_eq!(north_images.len(), 4);
    assert!(north_images.iter().all(|i| i.id != south_images[0].id));
    images::thumbnail(&db, south.provider_id, south_images[0].id)
        .await
        .unwrap();
    not_found(
        images::thumbnail(&db, north.provider_id, south_images[0].id).await,
        "north reads south's thumbnail of the shared study UID",
    );
    // The same event again from north's gateway is a repeat there, not a new image.
    let again = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&north_copy)).await;
    assert_eq!(again.status, EventStatus::Accepted);
    assert_eq!(
        appointments::detail(&db, north.provider_id, appointment_id)
            .await
            .unwrap()
            .images
            .len(),
        4
    );
    assert!(matches!(
        service::cancel_appointment(&state, &north, appointment_id).await,
        Err(StoreError::Illegal(_))
    ));

    // Archive states are the reporting gateway's: south's PACS confirming the shared SOP
    // Instance UID marks south's image only. A report may precede its image event.
    let shared_sop = match &north_copy.body {
        shared::wire::event::EventBody::ImageReceived(ours) => ours.image.sop_instance_uid.clone(),
        _ => unreachable!(),
    };
    let committed = gateway::archive_state(
        None,
        &south_accession,
        &shared_sop,
        shared::wire::event::ArchiveState::Committed,
        None,
    );
    let reply = event_reply(
        &state,
        &south_gateway,
        &web_key,
        &gateway_key.seal(&committed),
    )
    .await;
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    let archive_of = |images: Vec<web::model::ImageCard>| -> Vec<(String, String)> {
        images
            .into_iter()
            .flat_map(|i| i.archive)
            .map(|b| (b.destination, b.state))
            .collect()
    };
    let south_detail = appointments::detail(&db, south.provider_id, south_appointment)
        .await
        .unwrap();
    assert_eq!(
        archive_of(south_detail.images),
        [("HOSPITAL_PACS".to_string(), "committed".to_string())]
    );
    let north_detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(archive_of(north_detail.images), []);
    let early = gateway::image(None, &accession, &nhs, "L", "CC", 9);
    let early_sop = match &early.body {
        shared::wire::event::EventBody::ImageReceived(i) => i.image.sop_instance_uid.clone(),
        _ => unreachable!(),
    };
    let refused = gateway::archive_state(
        None,
        &accession,
        &early_sop,
        shared::wire::event::ArchiveState::Failed,
        Some("no such SOP class"),
    );
    let reply = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&refused)).await;
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    let reply = event_reply(&state, &gateway, &web_key, &gateway_key.seal(&early)).await;
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    let north_detail = appointments::detail(&db, north.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(
        archive_of(north_detail.images),
        [("HOSPITAL_PACS".to_string(), "failed".to_string())]
    );
    assert!(north_detail.timeline.iter().any(|t| t
        .text
        .contains("not archived at HOSPITAL_PACS: no such SOP class")));
}

#[tokio::test]
async fn sqlite_store_scoping_and_events() {
    let db = TestDb::sqlite();
    scenario(db.open().await).await;
}

#[tokio::test]
async fn postgres_store_scoping_and_events() {
    let db = TestDb::postgres();
    scenario(db.open().await).await;
}

#[tokio::test]
async fn reopening_a_database_keeps_its_data_and_migrations() {
    let db = TestDb::sqlite();
    let first = db.open().await;
    identity::create_provider(&first, "P", "X").await.unwrap();
    first.pool.close().await;
    let again = db.open().await;
    assert!(!identity::is_empty(&again).await.unwrap());
}
