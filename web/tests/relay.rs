//! The outbox worker and the events listener over real websockets through the relay emulator,
//! with a stand-in gateway on the other side speaking the signed wire contract.

mod support;

use std::sync::Arc;

use shared::wire::action::Outcome;
use shared::wire::event::{EventStatus, MppsStatus};
use shared::wire::SigningKey;
use support::{gateway, TestDb, ACTIONS, EVENTS};
use web::domain::AppointmentStatus;
use web::server::service;
use web::server::store::{actions, appointments, clinics, gateways, identity};

struct World {
    _db: TestDb,
    emulator: relay_emulator::Emulator,
    running: web::server::startup::Running,
    gateway_key: SigningKey,
    web_key: SigningKey,
    user: identity::User,
    /// An administrator of the same provider (re-drive and probes are theirs).
    admin: identity::User,
    clinic_id: i64,
    gateway_id: i64,
}

async fn world() -> World {
    world_on(TestDb::sqlite(), None).await
}

/// The world, with the liveness monitor probing every `probe_interval` when given (else the
/// default minute, so that no probe reaches a test's stand-in gateway).
async fn world_on(db: TestDb, probe_interval: Option<std::time::Duration>) -> World {
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (mut state, seeded, web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let user = identity::authenticate(&state.db, email, password)
        .await
        .unwrap()
        .unwrap();
    let admin = support::administrator(&state.db, user.provider_id).await;
    if let Some(interval) = probe_interval {
        state.probe_interval = interval;
    }
    let running = support::serve(state, "unused-site".into()).await;
    World {
        _db: db,
        emulator,
        running,
        gateway_key,
        web_key,
        user,
        admin,
        clinic_id: seeded.clinic_ids[0],
        gateway_id: seeded.gateway_ids[0],
    }
}

impl World {
    async fn first_appointment(&self) -> i64 {
        clinics::detail(
            &self.running.state.db,
            self.user.provider_id,
            self.clinic_id,
        )
        .await
        .unwrap()
        .appointments[0]
            .id
    }

    async fn action(&self, id: &str) -> web::model::ActionRow {
        actions::get(&self.running.state.db, self.user.provider_id, id)
            .await
            .unwrap()
    }

    async fn wait_action(&self, id: &str, status: &str) -> web::model::ActionRow {
        support::eventually(&format!("action {id} {status}"), || async {
            self.action(id).await.status == status
        })
        .await;
        self.action(id).await
    }

    async fn gateway(&self, reply: gateway::Reply) -> gateway::ActionsListener {
        let mut listener = gateway::listen_actions(
            support::relay_client(&self.emulator),
            ACTIONS,
            self.gateway_key.clone(),
            &self.web_key,
            reply,
        )
        .await;
        listener.connected().await;
        listener
    }

    async fn events_listener_connected(&self) {
        support::eventually("the web app's events listener is connected", || async {
            self.running
                .state
                .listener_status(self.gateway_id)
                .is_some_and(|s| s.connected)
        })
        .await;
    }
}

#[tokio::test]
async fn outbox_sends_a_signed_worklist_item_and_records_the_confirmation() {
    let w = world().await;
    let mut gw = w.gateway(gateway::reply_created()).await;
    let appointment_id = w.first_appointment().await;
    let action_id = service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();

    let received = gw.next().await;
    assert_eq!(received.action_id.to_string(), action_id);
    let item = gateway::worklist_item(&received);
    let detail = appointments::detail(&w.running.state.db, w.user.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(
        item.participant.nhs_number,
        detail.nhs_number.replace(' ', "")
    );
    assert_eq!(Some(item.accession_number.clone()), detail.accession_number);
    assert_eq!(item.procedure.modality, "MG");
    // Addressed to the gateway the clinic uses and sealed for this attempt only.
    let gateway_name = gateways::for_provider(&w.running.state.db, w.user.provider_id)
        .await
        .unwrap()
        .remove(0)
        .name;
    assert_eq!(
        received.target_gateway.as_deref(),
        Some(gateway_name.as_str())
    );
    let expires_at = received.expires_at.expect("an expiry");
    assert!(expires_at > received.timestamp, "{received:?}");
    assert!(
        expires_at - received.timestamp <= web::server::outbox::ACTION_VALIDITY,
        "{received:?}"
    );

    let row = w.wait_action(&action_id, "confirmed").await;
    assert_eq!(row.attempts, 1);
    assert!(row.confirmed_at.is_some());
    assert_eq!(row.last_error, None);
    w.running.stop().await;
}

#[tokio::test]
async fn outbox_retries_while_no_gateway_listens_then_delivers() {
    let w = world().await;
    let appointment_id = w.first_appointment().await;
    let action_id = service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();

    support::eventually(
        "a failed attempt is recorded with a next attempt",
        || async {
            let a = w.action(&action_id).await;
            a.status == "pending" && a.attempts >= 1 && a.next_attempt_at.is_some()
        },
    )
    .await;
    let waiting = w.action(&action_id).await;
    assert!(
        waiting
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no listener"),
        "{waiting:?}"
    );

    let mut gw = w.gateway(gateway::reply_created()).await;
    assert_eq!(gw.next().await.action_id.to_string(), action_id);
    let done = w.wait_action(&action_id, "confirmed").await;
    assert!(done.attempts >= 2, "{done:?}");
    w.running.stop().await;
}

#[tokio::test]
async fn an_error_reply_fails_the_action_and_a_redrive_sends_it_again() {
    let w = world().await;
    let refusing = w
        .gateway(Arc::new(|_: &shared::wire::action::Action| {
            Outcome::Error {
                message: "worklist database is read-only".into(),
            }
        }))
        .await;
    let appointment_id = w.first_appointment().await;
    let action_id = service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();
    let failed = w.wait_action(&action_id, "failed").await;
    assert_eq!(
        failed.last_error.as_deref(),
        Some("worklist database is read-only")
    );
    assert_eq!(failed.attempts, 1);
    drop(refusing);

    let mut gw = w.gateway(gateway::reply_created()).await;
    // Re-drive is an administrator's: a clinician is refused and nothing is re-queued.
    assert!(matches!(
        service::redrive(&w.running.state, &w.user, &action_id).await,
        Err(web::server::db::StoreError::Forbidden(_))
    ));
    assert_eq!(
        actions::get(&w.running.state.db, w.user.provider_id, &action_id)
            .await
            .unwrap()
            .status
            .as_str(),
        "failed"
    );
    service::redrive(&w.running.state, &w.admin, &action_id)
        .await
        .unwrap();
    assert_eq!(gw.next().await.action_id.to_string(), action_id);
    let done = w.wait_action(&action_id, "confirmed").await;
    assert_eq!(done.attempts, 2);
    // A confirmed action cannot be re-driven.
    assert!(service::redrive(&w.running.state, &w.admin, &action_id)
        .await
        .is_err());
    w.running.stop().await;
}

#[tokio::test]
async fn events_over_the_relay_are_verified_applied_once_and_answered() {
    let w = world().await;
    w.events_listener_connected().await;
    let mut gw = w.gateway(gateway::reply_created()).await;
    let appointment_id = w.first_appointment().await;
    service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();
    let action = gw.next().await;
    let item = gateway::worklist_item(&action);
    let relay = || support::relay_client(&w.emulator);

    let started = gateway::mpps(
        Some(action.action_id),
        &item.accession_number,
        MppsStatus::InProgress,
    );
    let reply = gateway::send_event(relay(), EVENTS, &w.gateway_key, &w.web_key, &started).await;
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    assert_eq!(reply.event_id, Some(started.event_id));
    let again = gateway::send_event(relay(), EVENTS, &w.gateway_key, &w.web_key, &started).await;
    assert_eq!(again.status, EventStatus::Duplicate);

    let image = gateway::image(
        Some(action.action_id),
        &item.accession_number,
        &item.participant.nhs_number,
        "R",
        "CC",
        1,
    );
    let reply = gateway::send_event(relay(), EVENTS, &w.gateway_key, &w.web_key, &image).await;
    assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");

    let detail = appointments::detail(&w.running.state.db, w.user.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::InProgress);
    assert_eq!(detail.images.len(), 1);
    assert!(detail.images[0].thumbnail_url.is_some());
    w.running.stop().await;
}

#[tokio::test]
async fn events_with_a_bad_or_missing_signature_are_refused_and_change_nothing() {
    let w = world().await;
    w.events_listener_connected().await;
    let mut gw = w.gateway(gateway::reply_created()).await;
    let appointment_id = w.first_appointment().await;
    service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();
    let action = gw.next().await;
    let item = gateway::worklist_item(&action);
    let relay = || support::relay_client(&w.emulator);
    let event = gateway::mpps(
        Some(action.action_id),
        &item.accession_number,
        MppsStatus::InProgress,
    );

    let forged =
        gateway::send_event(relay(), EVENTS, &SigningKey::generate(), &w.web_key, &event).await;
    assert_eq!(forged.status, EventStatus::Error);
    assert!(forged.message.unwrap_or_default().contains("signature"));
    let unsigned = serde_json::to_string(&event).unwrap();
    let reply = gateway::send_text(relay(), EVENTS, &w.web_key, &unsigned).await;
    assert_eq!(reply.status, EventStatus::Error);

    let detail = appointments::detail(&w.running.state.db, w.user.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::SentToModality);
    // The genuine event is still accepted afterwards: a refusal is not recorded as received.
    let genuine = gateway::send_event(relay(), EVENTS, &w.gateway_key, &w.web_key, &event).await;
    assert_eq!(genuine.status, EventStatus::Accepted, "{genuine:?}");
    w.running.stop().await;
}

#[tokio::test]
async fn gateway_checks_record_the_health_reply_for_the_gateways_page() {
    use shared::wire::action::{Command, HealthReport};
    let w = world().await;
    let mut gw = w
        .gateway(Arc::new(
            |action: &shared::wire::action::Action| match &action.command {
                Command::Health => Outcome::Ok {
                    health: HealthReport {
                        healthy: true,
                        version: "9.9.9".into(),
                        listener_uptime_seconds: 5,
                        checks: Default::default(),
                    },
                },
                Command::Echo(payload) => Outcome::Echo {
                    payload: payload.clone(),
                },
                _ => Outcome::Created,
            },
        ))
        .await;
    assert!(matches!(
        service::check_gateway(
            &w.running.state,
            &w.user,
            w.gateway_id,
            service::GatewayCheck::Echo
        )
        .await,
        Err(web::server::db::StoreError::Forbidden(_))
    ));
    let echo = service::check_gateway(
        &w.running.state,
        &w.admin,
        w.gateway_id,
        service::GatewayCheck::Echo,
    )
    .await
    .unwrap();
    let health = service::check_gateway(
        &w.running.state,
        &w.admin,
        w.gateway_id,
        service::GatewayCheck::Health,
    )
    .await
    .unwrap();
    gw.next().await;
    gw.next().await;
    w.wait_action(&echo, "confirmed").await;
    w.wait_action(&health, "confirmed").await;
    let rows = service::gateway_rows(&w.running.state, &w.user)
        .await
        .unwrap();
    let row = rows.iter().find(|g| g.id == w.gateway_id).unwrap();
    assert_eq!(row.last_health.as_deref(), Some("healthy (version 9.9.9)"));
    assert!(row.last_health_at.is_some());
    assert_eq!(row.confirmed, 2);
    w.events_listener_connected().await;
    let rows = service::gateway_rows(&w.running.state, &w.user)
        .await
        .unwrap();
    assert!(rows
        .iter()
        .any(|g| g.id == w.gateway_id && g.listener_connected));
    w.running.stop().await;
}

#[tokio::test]
async fn on_postgresql_the_outbox_and_the_events_listener_work_the_same() {
    let w = world_on(TestDb::postgres(), None).await;
    w.events_listener_connected().await;
    let mut gw = w.gateway(gateway::reply_created()).await;
    let appointment_id = w.first_appointment().await;
    let action_id = service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();
    let action = gw.next().await;
    w.wait_action(&action_id, "confirmed").await;
    let item = gateway::worklist_item(&action);
    let relay = || support::relay_client(&w.emulator);
    for status in [MppsStatus::InProgress, MppsStatus::Completed] {
        let event = gateway::mpps(Some(action.action_id), &item.accession_number, status);
        let reply = gateway::send_event(relay(), EVENTS, &w.gateway_key, &w.web_key, &event).await;
        assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
    }
    let detail = appointments::detail(&w.running.state.db, w.user.provider_id, appointment_id)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::Complete);
    support::eventually("the confirmation is in the history", || async {
        appointments::detail(&w.running.state.db, w.user.provider_id, appointment_id)
            .await
            .unwrap()
            .timeline
            .iter()
            .any(|t| t.text.contains("Gateway confirmed"))
    })
    .await;
    w.running.stop().await;
}

#[tokio::test]
async fn a_missing_relay_key_fails_the_action_with_the_variable_named() {
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (mut state, _seeded, _web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    state.env = Arc::new(|_| None);
    let (email, password) = web::server::seed::DEMO_USERS[0];
    let user = identity::authenticate(&state.db, email, password)
        .await
        .unwrap()
        .unwrap();
    let running = support::serve(state, "unused-site".into()).await;
    let appointment_id = clinics::list(&running.state.db, user.provider_id)
        .await
        .unwrap()[0]
        .id;
    let appointment_id = clinics::detail(&running.state.db, user.provider_id, appointment_id)
        .await
        .unwrap()
        .appointments[0]
        .id;
    let action_id = service::send_to_modality(&running.state, &user, appointment_id)
        .await
        .unwrap();
    support::eventually("the action fails", || async {
        actions::get(&running.state.db, user.provider_id, &action_id)
            .await
            .unwrap()
            .status
            == "failed"
    })
    .await;
    let row = actions::get(&running.state.db, user.provider_id, &action_id)
        .await
        .unwrap();
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains(support::KEY_ENV),
        "{row:?}"
    );
    let gateways = service::gateway_rows(&running.state, &user).await.unwrap();
    let error = gateways[0].listener_error.clone().unwrap_or_default();
    assert!(!gateways[0].listener_connected);
    assert!(
        error.contains("not started") && error.contains(support::KEY_ENV),
        "{error}"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_signed_reply_naming_another_action_fails_the_action_with_the_reason() {
    let w = world().await;
    let other = uuid::Uuid::new_v4();
    let mut gw = gateway::listen_actions_replying(
        support::relay_client(&w.emulator),
        ACTIONS,
        w.gateway_key.clone(),
        &w.web_key,
        Arc::new(move |_: &shared::wire::action::Action| {
            shared::wire::action::ActionReply::new(other, Outcome::Created)
        }),
    )
    .await;
    gw.connected().await;
    let appointment_id = w.first_appointment().await;
    let action_id = service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();
    assert_eq!(gw.next().await.action_id.to_string(), action_id);
    let failed = w.wait_action(&action_id, "failed").await;
    let error = failed.last_error.unwrap_or_default();
    assert!(
        error.contains(&other.to_string()) && error.contains(&action_id),
        "{error}"
    );
    w.running.stop().await;
}

#[tokio::test]
async fn cancelling_during_an_outage_withdraws_the_create_and_the_gateway_never_sees_either() {
    let w = world().await;
    let appointment_id = w.first_appointment().await;
    let create = service::send_to_modality(&w.running.state, &w.user, appointment_id)
        .await
        .unwrap();
    support::eventually("the create waits after a failed attempt", || async {
        let a = w.action(&create).await;
        a.status == "pending" && a.attempts >= 1
    })
    .await;
    assert_eq!(
        service::cancel_appointment(&w.running.state, &w.user, appointment_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.action(&create).await.status, "withdrawn");
    // The gateway comes back: a health check goes through, the withdrawn create does not.
    let mut gw = w.gateway(gateway::reply_created()).await;
    let echo = service::check_gateway(
        &w.running.state,
        &w.admin,
        w.gateway_id,
        service::GatewayCheck::Echo,
    )
    .await
    .unwrap();
    let received = gw.next().await;
    assert_eq!(
        received.action_id.to_string(),
        echo,
        "only the echo is sent"
    );
    w.wait_action(&echo, "confirmed").await;
    assert!(
        gw.received.try_recv().is_err(),
        "nothing else reached the gateway"
    );
    assert_eq!(w.action(&create).await.status, "withdrawn");
    w.running.stop().await;
}

#[tokio::test]
async fn probes_find_a_gateway_offline_then_online_and_never_pile_up_or_clutter_the_list() {
    use shared::wire::action::{Command, HealthCheck, HealthReport};
    use web::domain::Liveness;
    let w = world_on(
        TestDb::sqlite(),
        Some(std::time::Duration::from_millis(300)),
    )
    .await;
    let state = &w.running.state;
    let row = || async {
        service::gateway_rows(state, &w.user)
            .await
            .unwrap()
            .into_iter()
            .find(|g| g.id == w.gateway_id)
            .unwrap()
    };
    // Nobody listens: probes fail at once (tried once, not retried) and the gateway is offline,
    // with the relay's words.
    support::eventually("a failed probe", || async {
        actions::probe_outstanding(&state.db, w.gateway_id)
            .await
            .unwrap()
            || gateways::by_id(&state.db, w.gateway_id)
                .await
                .unwrap()
                .last_unreachable_at
                .is_some()
    })
    .await;
    support::eventually("offline with the reason", || async {
        let r = row().await;
        r.liveness.is_offline() && r.liveness_detail.starts_with("never heard from: ")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // This gateway's probes: the seed's other gateway is probed too, and its probe may be
    // outstanding at the same moment.
    let probes = sqlx::query(
        "SELECT status, attempts FROM gateway_actions
         WHERE destination = 'probe' AND gateway_id = $1",
    )
    .bind(w.gateway_id)
    .fetch_all(&state.db.pool)
    .await
    .unwrap();
    assert!(probes.len() >= 2, "probes keep coming: {}", probes.len());
    let outstanding = probes
        .iter()
        .filter(|r| {
            matches!(
                sqlx::Row::get::<String, _>(*r, "status").as_str(),
                "pending" | "sent"
            )
        })
        .count();
    assert!(
        outstanding <= 1,
        "probes pile up: {outstanding} outstanding"
    );
    assert!(probes
        .iter()
        .all(|r| sqlx::Row::get::<i64, _>(r, "attempts") <= 1));
    // Not on the actions page: they would bury the clinic's own actions.
    assert!(actions::list(&state.db, w.user.provider_id, None, 100)
        .await
        .unwrap()
        .is_empty());

    // The gateway answers, with one failing check: degraded, then healthy: online.
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reply_failing = failing.clone();
    let _gw = w
        .gateway(Arc::new(
            move |action: &shared::wire::action::Action| match &action.command {
                Command::Health => {
                    let bad = reply_failing.load(std::sync::atomic::Ordering::SeqCst);
                    let mut checks = std::collections::BTreeMap::new();
                    checks.insert(
                        "event_queue".to_string(),
                        HealthCheck {
                            ok: !bad,
                            detail: "3 event(s) waiting, oldest 900 s".into(),
                            metrics: Default::default(),
                        },
                    );
                    Outcome::Ok {
                        health: HealthReport {
                            healthy: !bad,
                            version: "9.9.9".into(),
                            listener_uptime_seconds: 5,
                            checks,
                        },
                    }
                }
                _ => Outcome::Created,
            },
        ))
        .await;
    support::eventually("degraded by the failing check", || async {
        let r = row().await;
        matches!(&r.liveness, Liveness::Degraded(why) if why.contains("event_queue"))
            && r.event_queue.as_deref() == Some("3 event(s) waiting, oldest 900 s")
            && r.failing_checks == ["event_queue: 3 event(s) waiting, oldest 900 s"]
    })
    .await;
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    support::eventually("online", || async {
        row().await.liveness == Liveness::Online
    })
    .await;
    w.running.stop().await;
}
