//! Several replicas of the web app on one PostgreSQL (a real server the test starts): they
//! migrate once when they start together, and a clinician connected to one replica hears, live,
//! what another replica did — through the PostgreSQL change bus, which survives its listening
//! connection being killed.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shared::wire::event::{EventReply, EventStatus};
use shared::wire::{Keyring, SigningKey, Verification};
use sqlx::Connection;
use support::http_client::{http, sign_in, EventStream};
use support::TestDb;
use web::server::bus::Change;
use web::server::db::Db;
use web::server::service;
use web::server::state::AppState;
use web::server::store::clinics;

/// A replica's state on `db`, sharing the seeded data (and relay key) with the first.
fn replica(db: Db, web_key: &SigningKey) -> AppState {
    let mut state = AppState::new(db, web_key.clone(), Keyring::new(vec![]));
    let env: HashMap<String, String> =
        [(support::KEY_ENV.to_string(), support::KEY.to_string())].into();
    state.env = Arc::new(move |name| env.get(name).cloned());
    state
}

/// The next change on `changes` other than `Resync`, if one comes within `wait`.
async fn next_change(
    changes: &mut futures::stream::BoxStream<'static, Change>,
    wait: Duration,
) -> Option<Change> {
    tokio::time::timeout(wait, async {
        loop {
            match changes.next().await {
                Some(Change::Resync) => continue,
                other => return other,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Publishes on `from` until `to` hears it: the listener connects in the background.
async fn until_heard(from: &AppState, to: &mut futures::stream::BoxStream<'static, Change>) {
    let probe = Change::Gateway {
        provider_id: 0,
        gateway_id: -1,
    };
    for _ in 0..120 {
        from.bus.publish(probe.clone());
        if next_change(to, Duration::from_millis(500)).await == Some(probe.clone()) {
            return;
        }
    }
    panic!("the other replica never heard a change in 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_migrate_once_and_hear_each_others_changes() {
    let pg = TestDb::postgres();
    let url = pg.url();
    // Two replicas starting at the same moment on an empty database.
    let (a, b) = tokio::join!(Db::open(&url), Db::open(&url));
    let (a, b) = (
        a.expect("replica A migrates"),
        b.expect("replica B migrates"),
    );
    let migrations: (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(migrations, (files, files), "each migration applied once");

    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (state_a, seeded, web_key) =
        support::app_state(a, &support::seed_relay(&emulator, &gateway_key)).await;
    let state_b = replica(b, &web_key);

    // The buses: each replica hears the other's changes, and its own exactly once.
    let mut heard_by_a = state_a.bus.subscribe();
    let mut heard_by_b = state_b.bus.subscribe();
    until_heard(&state_a, &mut heard_by_b).await;
    until_heard(&state_b, &mut heard_by_a).await;
    while next_change(&mut heard_by_a, Duration::from_millis(300))
        .await
        .is_some()
    {}
    while next_change(&mut heard_by_b, Duration::from_millis(300))
        .await
        .is_some()
    {}
    let on_b = Change::Gateway {
        provider_id: 1,
        gateway_id: 2,
    };
    state_b.bus.publish(on_b.clone());
    assert_eq!(
        next_change(&mut heard_by_b, Duration::from_secs(5)).await,
        Some(on_b.clone())
    );
    assert_eq!(
        next_change(&mut heard_by_a, Duration::from_secs(5)).await,
        Some(on_b.clone())
    );
    assert_eq!(
        next_change(&mut heard_by_b, Duration::from_millis(500)).await,
        None,
        "B heard its own change twice"
    );

    // The relay hands each delivery of an event to whichever replica listens: the same event
    // arriving on both replicas at once takes effect once, and every other delivery reads
    // `duplicate` (the gateway's cue to stop retrying).
    let gateway_row = web::server::store::gateways::by_id(&state_a.db, seeded.gateway_ids[0])
        .await
        .unwrap();
    let event = support::gateway::image(None, "ACCRACE0000001", "9990001111", "L", "CC", 1);
    let sealed = gateway_key.seal(&event);
    let deliveries = (0..8).map(|n| {
        let state = if n % 2 == 0 { &state_a } else { &state_b };
        web::server::events::handle(state, &gateway_row, &sealed)
    });
    let web_keys = Verification::strict(Keyring::new(vec![web_key.public_key()]));
    let statuses: Vec<EventStatus> = futures::future::join_all(deliveries)
        .await
        .iter()
        .map(|reply| EventReply::open(reply, &web_keys).unwrap().status)
        .collect();
    let accepted = statuses
        .iter()
        .filter(|s| **s == EventStatus::Accepted)
        .count();
    let duplicates = statuses
        .iter()
        .filter(|s| **s == EventStatus::Duplicate)
        .count();
    assert_eq!((accepted, duplicates), (1, 7), "{statuses:?}");
    let unmatched = web::server::store::images::unmatched(&state_b.db, seeded.provider_ids[0])
        .await
        .unwrap();
    let raced: Vec<_> = unmatched
        .iter()
        .filter(|u| u.accession_number.as_deref() == Some("ACCRACE0000001"))
        .collect();
    assert_eq!(raced.len(), 1, "{unmatched:?}");
    assert_eq!(raced[0].images, 1, "the image recorded once");
    // Distinct images of one new study at once, over both replicas: all of them create the
    // study and series if absent, one row each results, and none answers `duplicate` (which
    // would make the gateway drop an image never recorded).
    let views = [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")];
    let deliveries = (0..8).map(|n| {
        let state = if n % 2 == 0 { &state_a } else { &state_b };
        let (side, view) = views[n % 4];
        let event = support::gateway::image(
            None,
            "ACCRACE0000002",
            "9990002222",
            side,
            view,
            n as i64 + 1,
        );
        let sealed = gateway_key.seal(&event);
        let gateway_row = &gateway_row;
        async move { web::server::events::handle(state, gateway_row, &sealed).await }
    });
    let statuses: Vec<EventStatus> = futures::future::join_all(deliveries)
        .await
        .iter()
        .map(|reply| EventReply::open(reply, &web_keys).unwrap().status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == EventStatus::Accepted),
        "{statuses:?}"
    );
    let unmatched = web::server::store::images::unmatched(&state_b.db, seeded.provider_ids[0])
        .await
        .unwrap();
    let study: Vec<_> = unmatched
        .iter()
        .filter(|u| u.accession_number.as_deref() == Some("ACCRACE0000002"))
        .collect();
    assert_eq!(study.len(), 1, "one study: {unmatched:?}");
    assert_eq!(study[0].images, 8, "every image recorded");

    // A clinician's browser on replica B, a send made on replica A.
    let running_a = support::serve(state_a, "unused-site".into()).await;
    let running_b = support::serve(state_b, "unused-site".into()).await;
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let cookie = sign_in(running_b.addr, email, password).await;
    let clinic_id = seeded.clinic_ids[0];
    let mut stream = EventStream::open(
        running_b.addr,
        &format!("/live/clinics/{clinic_id}"),
        &cookie,
    )
    .await;
    stream.wait_for("event: ready", 1).await;
    let user = support::demo_user(&running_a.state.db, 0).await;
    let detail = clinics::detail(&running_a.state.db, user.provider_id, clinic_id)
        .await
        .unwrap();
    let first = detail.appointments[0].id;
    service::send_to_modality(&running_a.state, &user, first)
        .await
        .expect("send on replica A");
    stream.wait_for("event: appointment", 1).await;
    assert!(
        stream.count(&format!("\"appointment_id\":{first}")) >= 1,
        "B's stream names the appointment sent on A"
    );

    // B's listening connection is killed (a failover, a network blip): its pages are told to
    // re-read, and it hears A again once sqlx has listened anew.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&running_a.state.db.pool)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no listening connection to kill");
    stream.wait_for("event: resync", 1).await;
    let second = detail.appointments[1].id;
    service::send_to_modality(&running_a.state, &user, second)
        .await
        .expect("second send on replica A");
    stream
        .wait_for(&format!("\"appointment_id\":{second}"), 1)
        .await;

    // Readiness follows the database: a replica that cannot reach it is taken out of the load
    // balancer (503) and put back when it can, without a restart.
    let addr_b = running_b.addr;
    let readyz = || async move { http(addr_b, "GET", "/readyz", None, None, true).await };
    support::eventually("B ready", || async { readyz().await.status == 200 }).await;
    // From another database: PostgreSQL will not close the one this connection is in.
    let elsewhere = format!("{}/template1", url.rsplit_once('/').unwrap().0);
    let mut admin = sqlx::AnyConnection::connect(&elsewhere).await.unwrap();
    sqlx::query("ALTER DATABASE postgres ALLOW_CONNECTIONS false")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'postgres'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let down = readyz().await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("unavailable"), "{}", down.body);
    sqlx::query("ALTER DATABASE postgres ALLOW_CONNECTIONS true")
        .execute(&mut admin)
        .await
        .unwrap();
    support::eventually("B ready again", || async { readyz().await.status == 200 }).await;

    running_a.stop().await;
    running_b.stop().await;
}
