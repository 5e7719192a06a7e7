//! The events listener: each gateway's reports arrive on its events hybrid connection. Each event
//! is verified against the gateway's key, de-duplicated by `event_id`, applied in one transaction
//! (MPPS status → appointment status; image → Study/Series/Image), announced on the bus, and
//! answered `accepted`, `duplicate` or `error`.

use base64::Engine;
use shared::wire::event::{
    ArchiveState, Event, EventBody, EventReply, EventStatus, ImageArchiveState, ImageReceived,
    LocalWorklistItem, MppsStatus, MppsStatusUpdate,
};
use shared::wire::{Rejected, Verification};

use super::bus::Change;
use super::db::{now_ms, StoreError};
use super::relay_link;
use super::state::AppState;
use super::store::appointments::{self, Placement};
use super::store::gateways::{self, GatewayRecord};
use super::store::images::{self, NewImage};
use super::store::received_events;
use super::store::walk_ins;
use crate::domain::{AppointmentStatus, WalkInDetails};

/// Where an MPPS status takes the appointment.
pub fn appointment_status_for(mpps: MppsStatus) -> AppointmentStatus {
    match mpps {
        MppsStatus::InProgress => AppointmentStatus::InProgress,
        MppsStatus::Completed => AppointmentStatus::Complete,
        MppsStatus::Discontinued => AppointmentStatus::Cancelled,
    }
}

/// Handles one received event text and returns the signed reply text.
pub async fn handle(state: &AppState, gateway: &GatewayRecord, text: &str) -> String {
    let reply = match relay_link::verification(gateway, &state.fallback_keys) {
        Ok(verification) => receive(state, gateway, &verification, text).await,
        Err(e) => EventReply::rejected(&Rejected {
            id: None,
            reason: e.to_string(),
        }),
    };
    let outcome = match reply.status {
        EventStatus::Accepted => "accepted",
        EventStatus::Duplicate => "duplicate",
        EventStatus::Refused => "refused",
        EventStatus::Error => "error",
    };
    metrics::counter!(super::metrics::EVENTS_RECEIVED, "outcome" => outcome).increment(1);
    state.signing.seal(&reply)
}

async fn receive(
    state: &AppState,
    gateway: &GatewayRecord,
    verification: &Verification,
    text: &str,
) -> EventReply {
    let event = match Event::open(text, verification) {
        Ok(event) => event,
        Err(rejected) => {
            tracing::warn!(gateway = %gateway.name, "event refused: {rejected}");
            return EventReply::rejected(&rejected);
        }
    };
    // A verified event is the gateway speaking: the best evidence that it is there.
    if let Err(e) = gateways::record_contact(&state.db, gateway.id).await {
        tracing::error!(gateway = %gateway.name, "recording contact: {e}");
    }
    match apply(state, gateway, &event).await {
        Ok(Applied::Duplicate) => EventReply::new(event.event_id, EventStatus::Duplicate),
        Ok(Applied::Accepted(changes)) => {
            for change in changes {
                state.bus.publish(change);
            }
            EventReply::new(event.event_id, EventStatus::Accepted)
        }
        // It will never apply as it is: the gateway parks it instead of retrying for ever.
        Err(e @ (StoreError::Refused(_) | StoreError::Illegal(_))) => {
            tracing::warn!(gateway = %gateway.name, event = %event.event_id, "event refused: {e}");
            EventReply::refused(event.event_id, &e.to_string())
        }
        Err(e) => {
            tracing::error!(gateway = %gateway.name, event = %event.event_id, "event not applied: {e}");
            EventReply::rejected(&Rejected {
                id: Some(event.event_id),
                reason: format!("not recorded, try again: {e}"),
            })
        }
    }
}

enum Applied {
    Duplicate,
    Accepted(Vec<Change>),
}

async fn apply(
    state: &AppState,
    gateway: &GatewayRecord,
    event: &Event,
) -> Result<Applied, StoreError> {
    let mut tx = state.db.begin().await?;
    let event_id = event.event_id.to_string();
    // De-duplicate first, so a replay can neither fail nor apply anything twice.
    if !received_events::record(&mut tx, &event_id, gateway.id, event.body.event_type()).await? {
        tx.rollback().await?;
        return Ok(Applied::Duplicate);
    }
    let mut changes = Vec::new();
    let outcome = match &event.body {
        EventBody::MppsStatusUpdate(update) => {
            apply_mpps(&mut tx, gateway, update, &mut changes).await?
        }
        EventBody::ImageReceived(image) => {
            apply_image(&mut tx, gateway, image, &mut changes).await?
        }
        EventBody::ImageValidationFailed(failed) => {
            let action_id = failed.action_id.map(|a| a.to_string());
            match appointments::find_for_gateway(
                &mut tx,
                gateway.id,
                action_id.as_deref(),
                failed.accession_number.as_deref(),
            )
            .await?
            {
                Some(p) => {
                    appointments::add_timeline(
                        &mut tx,
                        p.appointment_id,
                        &format!(
                            "Image refused by the gateway (from {}): {}",
                            failed.calling_ae_title, failed.reason
                        ),
                    )
                    .await?;
                    changes.push(appointment_change(&p));
                    "recorded".to_string()
                }
                None => {
                    images::record_refused(
                        &mut tx,
                        gateway.id,
                        failed,
                        (event.timestamp.unix_timestamp_nanos() / 1_000_000) as i64,
                    )
                    .await?;
                    "unmatched: listed as refused".to_string()
                }
            }
        }
        EventBody::ImageArchiveState(archive) => {
            let reported_at_ms = (event.timestamp.unix_timestamp_nanos() / 1_000_000) as i64;
            apply_archive_state(&mut tx, gateway, archive, reported_at_ms, &mut changes).await?
        }
        EventBody::WorklistItemAddedLocally(item) => {
            apply_local_item(&mut tx, gateway, item, &mut changes).await?
        }
    };
    received_events::set_outcome(&mut tx, &event_id, &outcome).await?;
    tx.commit().await?;
    Ok(Applied::Accepted(changes))
}

/// Makes a walk-in appointment of an item a local operator added at the gateway. An item that
/// cannot become one (a field the booking side cannot read, an accession another provider
/// holds) is accepted all the same, with the reason as its outcome: its images then show under
/// "Unmatched images", and refusing it would hold back the procedure's events behind it.
async fn apply_local_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &GatewayRecord,
    item: &LocalWorklistItem,
    changes: &mut Vec<Change>,
) -> Result<String, StoreError> {
    let p = &item.participant;
    let details = match WalkInDetails::from_dicom(
        &p.nhs_number,
        &p.name,
        &p.birth_date,
        &p.sex,
        &item.scheduled.date,
        &item.scheduled.time,
    ) {
        Ok(details) => details,
        Err(why) => {
            tracing::warn!(gateway = %gateway.name, accession = %item.accession_number, "walk-in not recorded: {why}");
            return Ok(format!("not a walk-in: {why}"));
        }
    };
    let recorded = walk_ins::record(
        tx,
        walk_ins::LocalItem {
            gateway_id: gateway.id,
            gateway_name: &gateway.name,
            accession_number: &item.accession_number,
            details: &details,
        },
    )
    .await?;
    Ok(match recorded {
        walk_ins::Recorded::Created(placement) => {
            tracing::info!(gateway = %gateway.name, accession = %item.accession_number, appointment = placement.appointment_id, "walk-in recorded");
            changes.push(appointment_change(&placement));
            "walk-in".into()
        }
        walk_ins::Recorded::AlreadyKnown => "already known".into(),
        walk_ins::Recorded::AccessionTaken => {
            tracing::warn!(gateway = %gateway.name, accession = %item.accession_number, "walk-in not recorded: another provider's appointment has its accession number");
            "accession number in use by another provider".into()
        }
    })
}

/// Records what the PACS has of the image (shown in the gallery); a refusal is also told on the
/// appointment's timeline: the image will not reach the hospital archive by itself, and
/// someone must act.
async fn apply_archive_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &GatewayRecord,
    archive: &ImageArchiveState,
    reported_at_ms: i64,
    changes: &mut Vec<Change>,
) -> Result<String, StoreError> {
    let newest = images::record_archive_state(
        tx,
        &images::ArchiveReport {
            gateway_id: gateway.id,
            sop_instance_uid: &archive.sop_instance_uid,
            destination: &archive.destination,
            state: archive.state.as_str(),
            reason: archive.reason.as_deref(),
            reported_at: reported_at_ms,
        },
    )
    .await?;
    if !newest {
        return Ok("older than the state kept".into());
    }
    let action_id = archive.action_id.map(|a| a.to_string());
    let Some(p) = appointments::find_for_gateway(
        tx,
        gateway.id,
        action_id.as_deref(),
        archive.accession_number.as_deref(),
    )
    .await?
    else {
        return Ok("unmatched".into());
    };
    if archive.state != ArchiveState::Failed {
        // The gallery re-reads and shows the new state.
        changes.push(appointment_change(&p));
        return Ok(archive.state.as_str().to_string());
    }
    appointments::add_timeline(
        tx,
        p.appointment_id,
        &format!(
            "Image {} not archived at {}: {}",
            archive.sop_instance_uid,
            archive.destination,
            archive.reason.as_deref().unwrap_or("no reason given")
        ),
    )
    .await?;
    changes.push(appointment_change(&p));
    Ok("recorded".into())
}

fn appointment_change(p: &Placement) -> Change {
    Change::Appointment {
        provider_id: p.provider_id,
        clinic_id: p.clinic_id,
        appointment_id: p.appointment_id,
    }
}

async fn apply_mpps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &GatewayRecord,
    update: &MppsStatusUpdate,
    changes: &mut Vec<Change>,
) -> Result<String, StoreError> {
    let action_id = update.action_id.map(|a| a.to_string());
    let Some(p) = appointments::find_for_gateway(
        tx,
        gateway.id,
        action_id.as_deref(),
        Some(&update.accession_number),
    )
    .await?
    else {
        tracing::warn!(gateway = %gateway.name, accession = %update.accession_number, "MPPS for no known appointment");
        return Ok("unmatched".into());
    };
    // What the modality says it took, so the page can tell "4 taken, 3 received" (recorded
    // whatever the status does: a repeated COMPLETED still carries the list).
    if let Some(taken) = update.images_taken.as_ref() {
        let distinct: std::collections::BTreeSet<&str> =
            taken.iter().map(|i| i.sop_instance_uid.as_str()).collect();
        appointments::record_images_taken(tx, p.appointment_id, distinct.len() as i64).await?;
    }
    let target = appointment_status_for(update.status);
    let outcome = match p.status.path_to(target) {
        Ok(path) => {
            let mut at = p.status;
            for next in path {
                appointments::change_status(tx, p.appointment_id, at, next, None).await?;
                at = next;
            }
            "applied".to_string()
        }
        Err(illegal) => {
            // Accepted all the same: the gateway must not retry a message we will never apply.
            appointments::add_timeline(
                tx,
                p.appointment_id,
                &format!("Ignored modality status {:?}: {illegal}", update.status),
            )
            .await?;
            "ignored".to_string()
        }
    };
    changes.push(appointment_change(&p));
    Ok(outcome)
}

async fn apply_image(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway: &GatewayRecord,
    event: &ImageReceived,
    changes: &mut Vec<Change>,
) -> Result<String, StoreError> {
    let action_id = event.action_id.map(|a| a.to_string());
    let placement = appointments::find_for_gateway(
        tx,
        gateway.id,
        action_id.as_deref(),
        event.study.accession_number.as_deref(),
    )
    .await?;
    let image = &event.image;
    // Kept only if it is a JPEG, the one type the thumbnail route serves.
    let thumbnail = image.thumbnail.as_ref().and_then(|t| {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&t.data).ok();
        match bytes {
            Some(bytes) if super::http::is_jpeg(&bytes) => Some((bytes, "jpeg".to_string())),
            _ => {
                tracing::warn!(gateway = %gateway.name, sop = %image.sop_instance_uid, format = %t.format, "thumbnail dropped: not a JPEG");
                None
            }
        }
    });
    let new = NewImage {
        appointment_id: placement.map(|p| p.appointment_id),
        gateway_id: gateway.id,
        study_instance_uid: event.study.study_instance_uid.clone(),
        accession_number: event.study.accession_number.clone(),
        study_description: event.study.description.clone(),
        study_date: event.study.date.clone(),
        patient_id: Some(event.participant.patient_id.clone()),
        patient_name: Some(event.participant.name.clone()),
        patient_birth_date: event.participant.birth_date.clone(),
        series_instance_uid: event.series.series_instance_uid.clone(),
        series_number: event.series.number,
        modality: event.series.modality.clone(),
        sop_instance_uid: image.sop_instance_uid.clone(),
        instance_number: image.instance_number,
        laterality: image.laterality.clone(),
        view: image.view.clone(),
        kvp: image.dose.kvp,
        exposure_uas: image.dose.exposure_uas,
        organ_dose_dgy: image.dose.organ_dose_dgy,
        entrance_dose_mgy: image.dose.entrance_dose_mgy,
        anode: image.dose.anode.clone(),
        filter: image.dose.filter.clone(),
        body_part_thickness_mm: image.dose.body_part_thickness_mm,
        compression_force_n: image.dose.compression_force_n,
        thumbnail_format: thumbnail.as_ref().map(|t| t.1.clone()),
        thumbnail: thumbnail.map(|t| t.0),
        received_at: now_ms(),
    };
    let Some(image_id) = images::record(tx, &new).await? else {
        return Ok("already stored".into());
    };
    if let Some(p) = placement {
        appointments::add_timeline(
            tx,
            p.appointment_id,
            &format!(
                "Image received: {} {}",
                image.laterality.as_deref().unwrap_or("?"),
                image.view.as_deref().unwrap_or("?")
            ),
        )
        .await?;
        changes.push(Change::Image {
            provider_id: p.provider_id,
            clinic_id: p.clinic_id,
            appointment_id: p.appointment_id,
            image_id,
        });
        Ok("stored".into())
    } else {
        Ok("stored, no appointment".into())
    }
}
