//! Walk-ins against both real databases: an item a local operator added at the gateway arrives
//! as `worklist.item_added_locally`, becomes an unconfirmed appointment on the gateway's clinic
//! of that day, collects the procedure's events, and is confirmed or matched to the booked
//! appointment it is — with every refusal tested.

mod support;

use shared::wire::event::{EventReply, EventStatus, MppsStatus};
use shared::wire::{Keyring, SigningKey, Verification};
use support::gateway;
use support::TestDb;
use web::domain::{AppointmentStatus, WalkIn};
use web::server::db::{today, Db, StoreError};
use web::server::events;
use web::server::seed::{self, SeedRelay};
use web::server::service;
use web::server::state::AppState;
use web::server::store::{actions, appointments, clinics, gateways, received_events};

async fn deliver(
    state: &AppState,
    gateway: &gateways::GatewayRecord,
    gateway_key: &SigningKey,
    web_key: &SigningKey,
    event: &shared::wire::event::Event,
) -> EventReply {
    let reply = events::handle(state, gateway, &gateway_key.seal(event)).await;
    let reply = EventReply::open(
        &reply,
        &Verification::strict(Keyring::new(vec![web_key.public_key()])),
    )
    .expect("reply signed by the web app");
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    reply
}

fn refused<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str, says: &str) {
    match result {
        Err(StoreError::Refused(why)) => assert!(why.contains(says), "{what}: {why}"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// A valid test-range NHS number at or after `start`, away from the seed's (999000100 + 7n).
fn nhs_number_from(start: u32) -> web::domain::NhsNumber {
    (start..)
        .find_map(|n| web::domain::NhsNumber::with_check_digit(&format!("999{n:06}")))
        .unwrap()
}

async fn outcome(db: &Db, event: &shared::wire::event::Event) -> String {
    received_events::outcome(db, &event.event_id.to_string())
        .await
        .unwrap()
        .expect("the event was recorded")
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
    let seeded = seed::seed(&db, &relay).await.unwrap();
    let web_key = SigningKey::generate();
    let state = AppState::new(db.clone(), web_key.clone(), Keyring::new(vec![]));
    let north = support::demo_user(&db, 0).await;
    let south = support::demo_user(&db, 1).await;
    let north_gateway = gateways::by_id(&db, seeded.gateway_ids[0]).await.unwrap();
    let south_gateway = gateways::by_id(&db, seeded.gateway_ids[1]).await.unwrap();
    let clinic_id = seeded.clinic_ids[0];
    let booked = clinics::detail(&db, north.provider_id, clinic_id)
        .await
        .unwrap()
        .appointments;
    let day = today().replace('-', "");

    // A walk-in for a participant the provider has on its books, under today's clinic.
    let known = appointments::detail(&db, north.provider_id, booked[0].id)
        .await
        .unwrap();
    let known_nhs = known.nhs_number.replace(' ', "");
    let added = gateway::local_item("LOCAL0001", &known_nhs, "SOMEONE^ELSE", &day);
    deliver(&state, &north_gateway, &gateway_key, &web_key, &added).await;
    assert_eq!(outcome(&db, &added).await, "walk-in");
    let clinic = clinics::detail(&db, north.provider_id, clinic_id)
        .await
        .unwrap();
    let walk_in = clinic
        .appointments
        .iter()
        .find(|a| a.walk_in.is_some())
        .expect("the walk-in is on today's clinic")
        .clone();
    assert_eq!(walk_in.walk_in, Some(WalkIn::Unconfirmed));
    assert_eq!(walk_in.status, AppointmentStatus::SentToModality);
    assert_eq!(walk_in.time, "10:30");
    assert_eq!(
        walk_in.participant_name, known.participant_name,
        "the participant on the books, found by NHS number"
    );
    let detail = appointments::detail(&db, north.provider_id, walk_in.id)
        .await
        .unwrap();
    assert_eq!(detail.accession_number.as_deref(), Some("LOCAL0001"));
    assert!(
        detail.delivery.is_none(),
        "no action: the gateway has the item"
    );
    assert!(detail.timeline.iter().any(|t| t.text.contains("Walk-in")));
    let candidates = detail.walk_in.expect("walk-in detail").candidates;
    assert_eq!(
        candidates.len(),
        booked.len(),
        "every checked-in appointment of the day"
    );
    assert_eq!(
        candidates[0].id, booked[0].id,
        "the same NHS number is offered first"
    );
    // The other provider sees none of it.
    assert!(matches!(
        appointments::detail(&db, south.provider_id, walk_in.id).await,
        Err(StoreError::NotFound)
    ));

    // The same item again (a new event id) does not make a second walk-in.
    let again = gateway::local_item("LOCAL0001", &known_nhs, "SOMEONE^ELSE", &day);
    deliver(&state, &north_gateway, &gateway_key, &web_key, &again).await;
    assert_eq!(outcome(&db, &again).await, "already known");
    // The other provider's gateway reporting the same accession takes nothing of north's.
    let clash = gateway::local_item("LOCAL0001", &known_nhs, "SOMEONE^ELSE", &day);
    deliver(&state, &south_gateway, &gateway_key, &web_key, &clash).await;
    assert_eq!(
        outcome(&db, &clash).await,
        "accession number in use by another provider"
    );
    // An item the booking side cannot read is accepted (the gateway must not retry it) and
    // recorded nowhere.
    let bad = gateway::local_item("LOCAL0002", "9434765910", "A^B", &day);
    deliver(&state, &north_gateway, &gateway_key, &web_key, &bad).await;
    assert!(
        outcome(&db, &bad)
            .await
            .starts_with("not a walk-in: NHS number"),
        "{}",
        outcome(&db, &bad).await
    );

    // The procedure's events find the walk-in by its accession.
    for status in [MppsStatus::InProgress, MppsStatus::Completed] {
        let mpps = gateway::mpps(None, "LOCAL0001", status);
        deliver(&state, &north_gateway, &gateway_key, &web_key, &mpps).await;
        assert_eq!(outcome(&db, &mpps).await, "applied");
    }
    for (n, (side, view)) in [("R", "CC"), ("L", "CC")].into_iter().enumerate() {
        let image = gateway::image(None, "LOCAL0001", &known_nhs, side, view, n as i64 + 1);
        deliver(&state, &north_gateway, &gateway_key, &web_key, &image).await;
    }
    let detail = appointments::detail(&db, north.provider_id, walk_in.id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::Complete);
    assert_eq!(detail.images.len(), 2);

    // Refusals: another provider, a booked appointment already delivered, another day, a
    // booked appointment as the "walk-in".
    let (delivered, pending, target) = (booked[1].id, booked[2].id, booked[0].id);
    let create = service::send_to_modality(&state, &north, delivered)
        .await
        .unwrap();
    assert!(actions::mark_sent(&db, &create, &support::CLAIM)
        .await
        .unwrap());
    actions::mark_confirmed(&db, &create, "{}").await.unwrap();
    let pending_create = service::send_to_modality(&state, &north, pending)
        .await
        .unwrap();
    assert!(matches!(
        service::match_walk_in(&state, &south, walk_in.id, target).await,
        Err(StoreError::NotFound)
    ));
    refused(
        service::match_walk_in(&state, &north, walk_in.id, delivered).await,
        "a delivered booked appointment",
        "reached the gateway",
    );
    refused(
        service::match_walk_in(&state, &north, target, walk_in.id).await,
        "a booked appointment is not a walk-in",
        "not a walk-in",
    );
    let candidates = appointments::detail(&db, north.provider_id, walk_in.id)
        .await
        .unwrap()
        .walk_in
        .unwrap()
        .candidates;
    assert!(
        candidates.iter().all(|c| c.id != delivered) && candidates.iter().any(|c| c.id == pending),
        "{candidates:?}"
    );
    let other_day = clinics::create(
        &db,
        north.provider_id,
        Some(north_gateway.id),
        "Tomorrow",
        "Here",
        "2099-01-01",
    )
    .await
    .unwrap();
    let participant = appointments::create_participant(
        &db,
        north.provider_id,
        &nhs_number_from(900_000),
        "Later",
        "Lou",
        "1970-01-01",
    )
    .await
    .unwrap();
    let tomorrow = appointments::create(&db, other_day, participant, "09:00")
        .await
        .unwrap();
    refused(
        service::match_walk_in(&state, &north, walk_in.id, tomorrow).await,
        "another day",
        "own clinic day",
    );

    // Matching to a booked appointment whose item is still queued: it takes the walk-in's
    // accession, status, images and history; its own create is withdrawn; the walk-in is gone.
    service::match_walk_in(&state, &north, walk_in.id, pending)
        .await
        .unwrap();
    assert!(matches!(
        appointments::detail(&db, north.provider_id, walk_in.id).await,
        Err(StoreError::NotFound)
    ));
    let merged = appointments::detail(&db, north.provider_id, pending)
        .await
        .unwrap();
    assert_eq!(merged.accession_number.as_deref(), Some("LOCAL0001"));
    assert_eq!(merged.status, AppointmentStatus::Complete);
    assert_eq!(merged.images.len(), 2);
    assert!(merged.walk_in.is_none());
    assert!(merged.timeline.iter().any(|t| t.text.contains("Walk-in")));
    assert!(
        merged
            .timeline
            .iter()
            .any(|t| t.text.contains("Matched by") && t.text.contains("NHS number")),
        "the NHS numbers differ and the history says so: {:?}",
        merged.timeline
    );
    let withdrawn = actions::get(&db, north.provider_id, &pending_create)
        .await
        .unwrap();
    assert_eq!(withdrawn.status, "withdrawn", "{withdrawn:?}");
    // Later events of the accession land on the booked appointment.
    let late = gateway::image(None, "LOCAL0001", &known_nhs, "R", "MLO", 3);
    deliver(&state, &north_gateway, &gateway_key, &web_key, &late).await;
    assert_eq!(
        appointments::detail(&db, north.provider_id, pending)
            .await
            .unwrap()
            .images
            .len(),
        3
    );

    // A walk-in for a day the gateway has no clinic: a "Walk-ins at …" clinic is made for it.
    let new_nhs = nhs_number_from(910_000);
    let elsewhere = gateway::local_item("LOCAL0003", new_nhs.as_str(), "NEWCOMER^ANNA", "20990202");
    deliver(&state, &north_gateway, &gateway_key, &web_key, &elsewhere).await;
    let walk_in_clinic = clinics::list(&db, north.provider_id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.date == "2099-02-02")
        .expect("a clinic for the walk-in's day");
    assert_eq!(
        walk_in_clinic.name,
        format!("Walk-ins at {}", north_gateway.name)
    );
    let row = clinics::detail(&db, north.provider_id, walk_in_clinic.id)
        .await
        .unwrap()
        .appointments
        .remove(0);
    assert_eq!(row.participant_name, "NEWCOMER, Anna");
    // Not by the other provider; confirmed once; not again, and then not matchable.
    assert!(matches!(
        service::confirm_walk_in(&state, &south, row.id).await,
        Err(StoreError::NotFound)
    ));
    service::confirm_walk_in(&state, &north, row.id)
        .await
        .unwrap();
    let confirmed = appointments::detail(&db, north.provider_id, row.id)
        .await
        .unwrap();
    assert_eq!(confirmed.walk_in.map(|w| w.state), Some(WalkIn::Confirmed));
    assert!(confirmed
        .timeline
        .iter()
        .any(|t| t.text.contains("confirmed as a new appointment")));
    refused(
        service::confirm_walk_in(&state, &north, row.id).await,
        "confirming twice",
        "not a walk-in waiting",
    );
    // Cancelling a walk-in cancels its item at the gateway (nothing was queued to withdraw).
    let cancel = service::cancel_appointment(&state, &north, row.id)
        .await
        .unwrap();
    assert!(
        cancel.is_some(),
        "the gateway holds the item: a cancel is queued"
    );
}

#[tokio::test]
async fn sqlite_walk_ins() {
    let db = TestDb::sqlite();
    scenario(db.open().await).await;
}

#[tokio::test]
async fn postgres_walk_ins() {
    let db = TestDb::postgres();
    scenario(db.open().await).await;
}
