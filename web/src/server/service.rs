//! The operations behind the server functions: each takes the signed-in user and acts only on
//! that user's provider's records; queueing a message to a gateway writes an outbox row in the same
//! transaction and wakes the outbox worker, so no request waits on the relay.

use shared::wire::action::{
    Action, Command, FhirDelivery, FhirPurpose, Participant, Procedure, Scheduled, SourceReference,
    WorklistItem,
};

use super::bus::Change;
use super::db::StoreError;
use super::state::AppState;
use super::store::actions::{self, NewAction};
use super::store::gateways;
use super::store::identity::User;
use super::store::walk_ins;
use super::store::{appointments, clinics};
use crate::domain::{fhir, ActionStatus, AppointmentStatus, Liveness};
use crate::model::{ActionDetail, ActionRow, ClinicDetail, GatewayRow};

/// A gateway check a user can ask for from the gateways page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayCheck {
    Echo,
    Health,
}

/// "Send to modality": checks the state machine, gives the appointment an accession number,
/// queues `worklist.create_item` for the clinic's gateway. Returns the action id.
pub async fn send_to_modality(
    state: &AppState,
    user: &User,
    appointment_id: i64,
) -> Result<String, StoreError> {
    let mut tx = state.db.begin().await?;
    let a = appointments::for_worklist(&mut tx, user.provider_id, appointment_id).await?;
    a.status.transition(AppointmentStatus::SentToModality)?;
    let gateway = clinic_gateway(state, user, a.gateway_id).await?;
    let accession = accession_number(&a.clinic_date);
    let fhir = gateway.message_type == gateways::FHIR_SERVICE_REQUEST;
    let command = if fhir {
        fhir_delivery(&a, &accession, &gateway.destination, FhirPurpose::Order)
    } else {
        Command::CreateItem(WorklistItem {
            accession_number: accession.clone(),
            participant: Participant {
                nhs_number: a.nhs_number.clone(),
                name: format!(
                    "{}^{}",
                    a.family_name.to_uppercase(),
                    a.given_name.to_uppercase()
                ),
                birth_date: a.birth_date.replace('-', ""),
                sex: a.sex.clone(),
            },
            scheduled: Scheduled {
                date: a.clinic_date.replace('-', ""),
                time: format!("{}00", a.starts_at.replace(':', "")),
            },
            procedure: Procedure {
                modality: "MG".into(),
                study_description: STUDY_DESCRIPTION.into(),
            },
        })
    };
    let mut action = Action::new(&state.source_system, command);
    action.source_reference = Some(SourceReference {
        appointment_id: a.id.to_string(),
        participant_id: a.participant_id.to_string(),
    });
    let action_id = action.action_id.to_string();
    let payload = action.to_value().to_string();
    actions::insert(
        &mut tx,
        &NewAction {
            id: &action_id,
            gateway_id: gateway.id,
            appointment_id: Some(a.id),
            action_type: action.command.action_type(),
            destination: &gateway.destination,
            payload: &payload,
        },
    )
    .await?;
    appointments::change_status(
        &mut tx,
        a.id,
        a.status,
        AppointmentStatus::SentToModality,
        Some(&accession),
    )
    .await?;
    appointments::add_timeline(
        &mut tx,
        a.id,
        &if fhir {
            format!(
                "FHIR order {accession} queued for gateway {}, to deliver to {} (action \
                 {action_id})",
                gateway.name, gateway.destination
            )
        } else {
            format!(
                "Worklist item {accession} queued for gateway {} (action {action_id})",
                gateway.name
            )
        },
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    state.bus.publish(Change::Appointment {
        provider_id: a.provider_id,
        clinic_id: a.clinic_id,
        appointment_id: a.id,
    });
    state.bus.publish(Change::Action {
        provider_id: a.provider_id,
        action_id: action_id.clone(),
        appointment_id: Some(a.id),
    });
    Ok(action_id)
}

const STUDY_DESCRIPTION: &str = "Screening mammography, bilateral";

/// The FHIR order (or its revocation) for an appointment, for the gateway to deliver to
/// `destination`.
fn fhir_delivery(
    a: &appointments::ForWorklist,
    accession: &str,
    destination: &str,
    purpose: FhirPurpose,
) -> Command {
    let order = fhir::Order {
        accession_number: accession.to_string(),
        nhs_number: a.nhs_number.clone(),
        family_name: a.family_name.clone(),
        given_name: a.given_name.clone(),
        birth_date: a.birth_date.clone(),
        sex: a.sex.clone(),
        date: a.clinic_date.clone(),
        starts_at: a.starts_at.clone(),
        description: STUDY_DESCRIPTION.to_string(),
        revoked: purpose == FhirPurpose::Revoke,
    };
    let uuid = || uuid::Uuid::new_v4().to_string();
    Command::DeliverFhir(FhirDelivery {
        destination: destination.to_string(),
        accession_number: accession.to_string(),
        purpose,
        bundle: order.bundle(&uuid(), &uuid()),
    })
}

/// The gateway a clinic's worklist messages go to: its own, else the provider's first.
async fn clinic_gateway(
    state: &AppState,
    user: &User,
    clinic_gateway_id: Option<i64>,
) -> Result<gateways::GatewayRecord, StoreError> {
    match clinic_gateway_id {
        Some(id) => gateways::get(&state.db, user.provider_id, id).await,
        None => gateways::for_provider(&state.db, user.provider_id)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Refused("this provider has no gateway".into())),
    }
}

/// `ACC` + YYYYMMDD + 4 hex: the NHS app's form, at most 16 characters (DICOM SH).
fn accession_number(clinic_date: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "ACC{}{}",
        clinic_date.replace('-', ""),
        hex[..4].to_uppercase()
    )
}

/// Cancels an unfinished appointment. If its worklist item was never delivered, withdraws it (it
/// is never sent, and the gateway needs no message); if it was delivered, or may have been, queues
/// `worklist.cancel_item`, which the outbox sends only after the create. Returns that cancel
/// action's id, if one was queued.
pub async fn cancel_appointment(
    state: &AppState,
    user: &User,
    appointment_id: i64,
) -> Result<Option<String>, StoreError> {
    let mut tx = state.db.begin().await?;
    let a = appointments::for_worklist(&mut tx, user.provider_id, appointment_id).await?;
    a.status.transition(AppointmentStatus::Cancelled)?;
    let accession = appointments::accession_number(&mut tx, a.id).await?;
    let mut action_id = None;
    let mut withdrawn = None;
    if let Some(accession) = accession.filter(|_| a.status != AppointmentStatus::CheckedIn) {
        let create = actions::create_of(&mut tx, a.id).await?;
        let ordered = create
            .as_ref()
            .map(|c| (c.action_type.clone(), c.destination.clone()));
        let needs_cancel = match create {
            Some(create)
                if matches!(create.status, ActionStatus::Pending | ActionStatus::Failed) =>
            {
                let reason = "withdrawn: the appointment was cancelled before delivery";
                if actions::withdraw(&mut tx, &create.id, reason).await? {
                    let follow = if create.maybe_delivered {
                        "; an attempt may have reached the gateway, so a cancellation follows"
                    } else {
                        "; it never reached the gateway"
                    };
                    appointments::add_timeline(
                        &mut tx,
                        a.id,
                        &format!(
                            "Worklist item {accession} withdrawn before delivery (action {}){follow}",
                            create.id
                        ),
                    )
                    .await?;
                    withdrawn = Some(create.id);
                    create.maybe_delivered
                } else {
                    // The worker took it meanwhile: it may land, so cancel behind it.
                    true
                }
            }
            Some(create) if create.status == ActionStatus::Withdrawn => create.maybe_delivered,
            // Delivered, in flight, or sent before actions were recorded per appointment.
            _ => true,
        };
        if needs_cancel {
            let gateway = clinic_gateway(state, user, a.gateway_id).await?;
            // The cancellation matches what was sent: the FHIR order is revoked where it went.
            let (command, destination) = match ordered {
                Some((kind, destination)) if kind == actions::FHIR_ORDER => (
                    fhir_delivery(&a, &accession, &destination, FhirPurpose::Revoke),
                    destination,
                ),
                _ => (
                    Command::CancelItem {
                        accession_number: accession.clone(),
                        reason: Some(format!("cancelled by {}", user.name)),
                    },
                    gateway.destination.clone(),
                ),
            };
            let action = Action::new(&state.source_system, command);
            let id = action.action_id.to_string();
            actions::insert(
                &mut tx,
                &NewAction {
                    id: &id,
                    gateway_id: gateway.id,
                    appointment_id: Some(a.id),
                    action_type: action.command.action_type(),
                    destination: &destination,
                    payload: &action.to_value().to_string(),
                },
            )
            .await?;
            appointments::add_timeline(
                &mut tx,
                a.id,
                &format!(
                    "Cancellation of {} {accession} queued (action {id})",
                    if action.command.action_type() == actions::FHIR_REVOKE {
                        "FHIR order"
                    } else {
                        "worklist item"
                    }
                ),
            )
            .await?;
            action_id = Some(id);
        }
    }
    appointments::change_status(&mut tx, a.id, a.status, AppointmentStatus::Cancelled, None)
        .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    state.bus.publish(Change::Appointment {
        provider_id: a.provider_id,
        clinic_id: a.clinic_id,
        appointment_id: a.id,
    });
    for id in action_id.iter().chain(withdrawn.iter()) {
        state.bus.publish(Change::Action {
            provider_id: a.provider_id,
            action_id: id.clone(),
            appointment_id: Some(a.id),
        });
    }
    Ok(action_id)
}

/// "Re-send": puts an appointment's refused (or waiting) worklist item back in the queue now,
/// after the same checks as a re-drive (the provider's, a create still wanted by its
/// appointment). Returns the action id.
pub async fn resend_worklist_item(
    state: &AppState,
    user: &User,
    appointment_id: i64,
) -> Result<String, StoreError> {
    let placement = appointments::placement(&state.db, user.provider_id, appointment_id).await?;
    let delivery = actions::deliveries(&state.db, &[appointment_id])
        .await?
        .remove(&appointment_id)
        .ok_or_else(|| StoreError::Refused("this appointment has not been sent yet".into()))?;
    if !delivery.state.can_resend() {
        return Err(StoreError::Refused(format!(
            "its worklist item is {}; only a refused or retrying one can be re-sent",
            delivery.state.label().to_lowercase()
        )));
    }
    requeue(state, user, &delivery.action_id).await?;
    appointments::note(
        &state.db,
        appointment_id,
        &format!("Worklist item re-sent by {}", user.name),
    )
    .await?;
    state.bus.publish(Change::Appointment {
        provider_id: placement.provider_id,
        clinic_id: placement.clinic_id,
        appointment_id,
    });
    Ok(delivery.action_id)
}

/// Puts a failed or waiting action back in the queue now: an administrator's tool on the actions
/// pages (a clinician re-sends their appointment's worklist item from its page instead).
pub async fn redrive(state: &AppState, user: &User, action_id: &str) -> Result<(), StoreError> {
    super::admin::require_administrator(user, "re-drive gateway actions")?;
    requeue(state, user, action_id).await
}

async fn requeue(state: &AppState, user: &User, action_id: &str) -> Result<(), StoreError> {
    let appointment_id = actions::redrive(&state.db, user.provider_id, action_id).await?;
    state.outbox_wake.notify_one();
    state.bus.publish(Change::Action {
        provider_id: user.provider_id,
        action_id: action_id.to_string(),
        appointment_id,
    });
    Ok(())
}

/// Queues an `echo` or `health` to one of the user's gateways. Returns the action id.
pub async fn check_gateway(
    state: &AppState,
    user: &User,
    gateway_id: i64,
    check: GatewayCheck,
) -> Result<String, StoreError> {
    super::admin::require_administrator(user, "probe gateways")?;
    let gateway = gateways::get(&state.db, user.provider_id, gateway_id).await?;
    let command = match check {
        GatewayCheck::Echo => Command::Echo(serde_json::json!({ "from": user.email })),
        GatewayCheck::Health => Command::Health,
    };
    let action = Action::new(&state.source_system, command);
    let action_id = action.action_id.to_string();
    let payload = action.to_value().to_string();
    let mut tx = state.db.begin().await?;
    actions::insert(
        &mut tx,
        &NewAction {
            id: &action_id,
            gateway_id: gateway.id,
            appointment_id: None,
            action_type: action.command.action_type(),
            destination: "gateway",
            payload: &payload,
        },
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    state.bus.publish(Change::Action {
        provider_id: user.provider_id,
        action_id: action_id.clone(),
        appointment_id: None,
    });
    Ok(action_id)
}

/// One of the provider's gateway actions; its payload only for an administrator.
pub async fn action_detail(
    state: &AppState,
    user: &User,
    action_id: &str,
) -> Result<ActionDetail, StoreError> {
    let mut detail = actions::detail(&state.db, user.provider_id, action_id).await?;
    if !user.administers() {
        detail.payload = None;
        detail.row.may_redrive = false;
    }
    Ok(detail)
}

/// The provider's gateway actions, newest first, optionally in one status; re-drive offered only
/// to an administrator.
pub async fn action_list(
    state: &AppState,
    user: &User,
    status: &str,
) -> Result<Vec<ActionRow>, StoreError> {
    let mut rows = actions::list(&state.db, user.provider_id, Some(status), 200).await?;
    for row in &mut rows {
        row.may_redrive &= user.administers();
    }
    Ok(rows)
}

/// The user's gateways with their liveness, link state, event queue and queue figures.
pub async fn gateway_rows(state: &AppState, user: &User) -> Result<Vec<GatewayRow>, StoreError> {
    let mut rows = Vec::new();
    for g in gateways::for_provider(&state.db, user.provider_id).await? {
        let [pending, sent, confirmed, failed, _withdrawn] =
            gateways::queue_counts(&state.db, g.id).await?;
        let link = state.listener_status(g.id);
        let liveness = super::liveness::assess(state, &g);
        let report = super::liveness::report(&g);
        let clock = |ms: Option<i64>| ms.map_or_else(|| "never".to_string(), super::db::date_time);
        let liveness_detail = match &liveness {
            Liveness::Online => format!("last contact {}", clock(g.last_contact_at)),
            Liveness::Degraded(why) => format!("{why}; last contact {}", clock(g.last_contact_at)),
            Liveness::Offline { last_contact_ms } => format!(
                "{}{}",
                last_contact_ms.map_or_else(
                    || "never heard from".to_string(),
                    |ms| format!("since {}", super::db::date_time(ms))
                ),
                g.last_unreachable_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        };
        rows.push(GatewayRow {
            id: g.id,
            liveness,
            liveness_detail,
            event_queue: report
                .as_ref()
                .and_then(|r| r.checks.get("event_queue"))
                .map(|c| c.detail.clone()),
            failing_checks: report
                .map(|r| {
                    r.checks
                        .into_iter()
                        .filter(|(_, c)| !c.ok)
                        .map(|(name, c)| format!("{name}: {}", c.detail))
                        .collect()
                })
                .unwrap_or_default(),
            name: g.name,
            namespace: g.relay_namespace,
            actions_hc: g.actions_hc,
            events_hc: g.events_hc,
            message_type: g.message_type,
            destination: g.destination,
            listener_connected: link.as_ref().is_some_and(|l| l.connected),
            listener_last_traffic: link
                .as_ref()
                .and_then(|l| l.last_traffic)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| super::db::date_time(d.as_millis() as i64)),
            listener_error: link.and_then(|l| l.last_error),
            last_health_at: g.last_health_at.map(super::db::date_time),
            last_health: g.last_health,
            pending,
            sent,
            confirmed,
            failed,
            may_manage: user.administers(),
        });
    }
    Ok(rows)
}

/// A clinic with the banner its page shows while its gateway is offline.
pub async fn clinic_detail(
    state: &AppState,
    user: &User,
    clinic_id: i64,
) -> Result<ClinicDetail, StoreError> {
    let mut detail = clinics::detail(&state.db, user.provider_id, clinic_id).await?;
    if let Some(gateway_id) = detail.clinic.gateway_id {
        let gateway = gateways::get(&state.db, user.provider_id, gateway_id).await?;
        if let Liveness::Offline { last_contact_ms } = super::liveness::assess(state, &gateway) {
            let since = last_contact_ms.map_or_else(
                || "has not been heard from yet".to_string(),
                |ms| format!("has been offline since {}", super::db::date_time(ms)),
            );
            detail.gateway_offline = Some(format!(
                "The gateway {} {since}. Sends will be delivered when it returns.",
                gateway.name
            ));
        }
    }
    Ok(detail)
}

/// "Confirm walk-in": keeps an appointment made at the gateway as a new appointment.
pub async fn confirm_walk_in(
    state: &AppState,
    user: &User,
    appointment_id: i64,
) -> Result<(), StoreError> {
    let placement =
        walk_ins::confirm(&state.db, user.provider_id, appointment_id, &user.name).await?;
    state.bus.publish(Change::Appointment {
        provider_id: placement.provider_id,
        clinic_id: placement.clinic_id,
        appointment_id,
    });
    Ok(())
}

/// "Match": the booked appointment takes the walk-in's place (see [`walk_ins::match_to`]).
pub async fn match_walk_in(
    state: &AppState,
    user: &User,
    walk_in_id: i64,
    booked_id: i64,
) -> Result<(), StoreError> {
    let matched = walk_ins::match_to(
        &state.db,
        user.provider_id,
        walk_in_id,
        booked_id,
        &user.name,
    )
    .await?;
    for p in [matched.booked, matched.walk_in] {
        state.bus.publish(Change::Appointment {
            provider_id: p.provider_id,
            clinic_id: p.clinic_id,
            appointment_id: p.appointment_id,
        });
    }
    if let Some(action_id) = matched.withdrawn {
        state.bus.publish(Change::Action {
            provider_id: user.provider_id,
            action_id,
            appointment_id: Some(booked_id),
        });
    }
    Ok(())
}
