//! Walk-ins: appointments made from worklist items a local operator added at the gateway
//! (`worklist.item_added_locally`), and what a clinician does with them — confirm one as a new
//! appointment, or match it to the booked appointment it really is.
//!
//! A walk-in is recorded with the accession number the gateway gave its item, so the
//! procedure's MPPS and image events (queued behind it on the gateway) find it as they find any
//! appointment. Matching moves its accession, status, images and history onto the booked
//! appointment and removes the walk-in; the booked appointment's own worklist item must not have
//! reached the gateway, or the modality would offer the participant twice.

use sqlx::{Any, Transaction};

use crate::domain::{ActionStatus, AppointmentStatus, WalkIn, WalkInDetails};
use crate::model::{MatchCandidate, WalkInDetail};

use super::super::db::{col, now_ms, Db, StoreError};
use super::appointments::{self, Placement};
use super::clinics::{display_name, display_nhs_number};
use super::{actions, clinics};

/// The item as the gateway reported it.
#[derive(Debug, Clone, Copy)]
pub struct LocalItem<'a> {
    pub gateway_id: i64,
    pub gateway_name: &'a str,
    pub accession_number: &'a str,
    pub details: &'a WalkInDetails,
}

/// What recording a walk-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new walk-in appointment.
    Created(Placement),
    /// The gateway's provider already has an appointment with that accession (a re-sent item).
    AlreadyKnown,
    /// Another provider's appointment has that accession: nothing recorded, and the
    /// procedure's images will show under "Unmatched images".
    AccessionTaken,
}

/// Records a walk-in on the gateway's clinic of that day (one is made, "Walk-ins at …", when
/// the gateway has none), for the participant with that NHS number (added when the provider has
/// none), inside the caller's transaction.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    item: LocalItem<'_>,
) -> Result<Recorded, StoreError> {
    let gateway = sqlx::query("SELECT provider_id FROM gateways WHERE id = $1")
        .bind(item.gateway_id)
        .fetch_one(&mut **tx)
        .await?;
    let provider_id: i64 = col(&gateway, "provider_id")?;
    let holder = sqlx::query(
        "SELECT c.provider_id FROM appointments a JOIN clinics c ON c.id = a.clinic_id
         WHERE a.accession_number = $1",
    )
    .bind(item.accession_number)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(holder) = holder {
        return Ok(if col::<i64>(&holder, "provider_id")? == provider_id {
            Recorded::AlreadyKnown
        } else {
            Recorded::AccessionTaken
        });
    }
    let d = item.details;
    let clinic_id = match sqlx::query(
        "SELECT id FROM clinics WHERE gateway_id = $1 AND clinic_date = $2 ORDER BY id LIMIT 1",
    )
    .bind(item.gateway_id)
    .bind(&d.date)
    .fetch_optional(&mut **tx)
    .await?
    {
        Some(row) => col(&row, "id")?,
        None => {
            clinics::create_in(
                tx,
                provider_id,
                Some(item.gateway_id),
                &format!("Walk-ins at {}", item.gateway_name),
                "Added at the gateway",
                &d.date,
            )
            .await?
        }
    };
    let participant_id: i64 = match sqlx::query(
        "SELECT id FROM participants WHERE provider_id = $1 AND nhs_number = $2",
    )
    .bind(provider_id)
    .bind(d.nhs_number.as_str())
    .fetch_optional(&mut **tx)
    .await?
    {
        Some(row) => col(&row, "id")?,
        None => {
            let row = sqlx::query(
                "INSERT INTO participants (provider_id, nhs_number, family_name, given_name, birth_date, sex)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(provider_id)
            .bind(d.nhs_number.as_str())
            .bind(title_case(&d.family_name))
            .bind(title_case(&d.given_name))
            .bind(&d.birth_date)
            .bind(&d.sex)
            .fetch_one(&mut **tx)
            .await?;
            col(&row, "id")?
        }
    };
    // On the worklist already: the gateway holds the item, so no action is queued.
    let status = AppointmentStatus::SentToModality;
    let row = sqlx::query(
        "INSERT INTO appointments (clinic_id, participant_id, starts_at, status, accession_number, updated_at, walk_in)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(clinic_id)
    .bind(participant_id)
    .bind(&d.time)
    .bind(status.as_str())
    .bind(item.accession_number)
    .bind(now_ms())
    .bind(WalkIn::Unconfirmed.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let appointment_id: i64 = col(&row, "id")?;
    appointments::add_timeline(
        tx,
        appointment_id,
        &format!(
            "Walk-in: worklist item {} added at gateway {} by a local operator for {}^{}, born \
             {}, NHS number {}; confirm it, or match it to the booked appointment",
            item.accession_number,
            item.gateway_name,
            d.family_name,
            d.given_name,
            d.birth_date,
            display_nhs_number(d.nhs_number.as_str())
        ),
    )
    .await?;
    Ok(Recorded::Created(Placement {
        appointment_id,
        clinic_id,
        provider_id,
        status,
    }))
}

/// `SMITH` → `Smith`, as the booking side writes names.
fn title_case(dicom: &str) -> String {
    dicom
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A walk-in of the provider, as confirming or matching needs it.
struct Standing {
    placement: Placement,
    walk_in: Option<WalkIn>,
    clinic_date: String,
    accession_number: Option<String>,
    images_taken: Option<i64>,
    nhs_number: String,
}

async fn standing(
    tx: &mut Transaction<'_, Any>,
    provider_id: i64,
    appointment_id: i64,
) -> Result<Standing, StoreError> {
    let r = sqlx::query(
        "SELECT a.id, a.clinic_id, c.provider_id, a.status, a.walk_in, c.clinic_date,
                a.accession_number, a.images_taken, p.nhs_number
         FROM appointments a JOIN clinics c ON c.id = a.clinic_id
         JOIN participants p ON p.id = a.participant_id
         WHERE a.id = $1 AND c.provider_id = $2",
    )
    .bind(appointment_id)
    .bind(provider_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(Standing {
        placement: Placement {
            appointment_id: col(&r, "id")?,
            clinic_id: col(&r, "clinic_id")?,
            provider_id: col(&r, "provider_id")?,
            status: AppointmentStatus::parse(&col::<String>(&r, "status")?)?,
        },
        walk_in: col::<Option<String>>(&r, "walk_in")?
            .as_deref()
            .and_then(WalkIn::parse),
        clinic_date: col(&r, "clinic_date")?,
        accession_number: col(&r, "accession_number")?,
        images_taken: col(&r, "images_taken")?,
        nhs_number: col(&r, "nhs_number")?,
    })
}

/// Loads the walk-in a clinician acts on: the provider's, still unconfirmed, not cancelled.
async fn unconfirmed(
    tx: &mut Transaction<'_, Any>,
    provider_id: i64,
    appointment_id: i64,
) -> Result<Standing, StoreError> {
    let w = standing(tx, provider_id, appointment_id).await?;
    if w.walk_in != Some(WalkIn::Unconfirmed) {
        return Err(StoreError::Refused(
            "this appointment is not a walk-in waiting to be confirmed".into(),
        ));
    }
    if w.placement.status == AppointmentStatus::Cancelled {
        return Err(StoreError::Refused("this walk-in was cancelled".into()));
    }
    Ok(w)
}

/// "Confirm walk-in": keeps it as a new appointment.
pub async fn confirm(
    db: &Db,
    provider_id: i64,
    appointment_id: i64,
    by: &str,
) -> Result<Placement, StoreError> {
    let mut tx = db.begin().await?;
    let w = unconfirmed(&mut tx, provider_id, appointment_id).await?;
    sqlx::query(
        "UPDATE appointments SET walk_in = $1, updated_at = $2 WHERE id = $3 AND walk_in = $4",
    )
    .bind(WalkIn::Confirmed.as_str())
    .bind(now_ms())
    .bind(appointment_id)
    .bind(WalkIn::Unconfirmed.as_str())
    .execute(&mut *tx)
    .await?;
    appointments::add_timeline(
        &mut tx,
        appointment_id,
        &format!("Walk-in confirmed as a new appointment by {by}"),
    )
    .await?;
    tx.commit().await?;
    Ok(w.placement)
}

/// A booked appointment may take a walk-in's place when nothing of its own reached the
/// gateway: never sent (checked in), or sent with its worklist item still undelivered and no
/// attempt that may have arrived. Returns the create to withdraw, if any.
async fn replaceable(
    tx: &mut Transaction<'_, Any>,
    booked: &Placement,
    walk_in: Option<WalkIn>,
) -> Result<Result<Option<String>, &'static str>, StoreError> {
    if walk_in.is_some() {
        return Ok(Err("it is itself a walk-in"));
    }
    match booked.status {
        AppointmentStatus::CheckedIn => return Ok(Ok(None)),
        AppointmentStatus::SentToModality => {}
        _ => return Ok(Err("the modality has already started or finished it")),
    }
    Ok(match actions::create_of(tx, booked.appointment_id).await? {
        Some(create)
            if matches!(create.status, ActionStatus::Pending | ActionStatus::Failed)
                && !create.maybe_delivered =>
        {
            Ok(Some(create.id))
        }
        _ => Err("its worklist item has (or may have) reached the gateway; cancel it instead"),
    })
}

/// The booked appointments of the walk-in's clinic day (any of the provider's clinics) it may
/// be matched to, the same NHS number first.
pub async fn candidates(
    db: &Db,
    provider_id: i64,
    appointment_id: i64,
) -> Result<Vec<MatchCandidate>, StoreError> {
    let mut tx = db.begin().await?;
    let w = standing(&mut tx, provider_id, appointment_id).await?;
    let rows = sqlx::query(
        "SELECT a.id, a.clinic_id, a.status, c.name AS clinic_name, a.starts_at, p.family_name,
                p.given_name, p.nhs_number
         FROM appointments a JOIN clinics c ON c.id = a.clinic_id
         JOIN participants p ON p.id = a.participant_id
         WHERE c.provider_id = $1 AND c.clinic_date = $2 AND a.walk_in IS NULL AND a.status IN ($3, $4)
         ORDER BY CASE WHEN p.nhs_number = $5 THEN 0 ELSE 1 END, a.starts_at, a.id",
    )
    .bind(provider_id)
    .bind(&w.clinic_date)
    .bind(AppointmentStatus::CheckedIn.as_str())
    .bind(AppointmentStatus::SentToModality.as_str())
    .bind(&w.nhs_number)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let booked = Placement {
            appointment_id: col(r, "id")?,
            clinic_id: col(r, "clinic_id")?,
            provider_id,
            status: AppointmentStatus::parse(&col::<String>(r, "status")?)?,
        };
        // The query already left out walk-ins.
        if replaceable(&mut tx, &booked, None).await?.is_err() {
            continue;
        }
        out.push(MatchCandidate {
            id: booked.appointment_id,
            clinic_name: col(r, "clinic_name")?,
            time: col(r, "starts_at")?,
            participant_name: display_name(
                &col::<String>(r, "family_name")?,
                &col::<String>(r, "given_name")?,
            ),
            nhs_number: display_nhs_number(&col::<String>(r, "nhs_number")?),
        });
    }
    tx.rollback().await?;
    Ok(out)
}

/// What the appointment page shows of a walk-in, `None` for a booked appointment.
pub async fn detail(
    db: &Db,
    provider_id: i64,
    appointment_id: i64,
    walk_in: Option<WalkIn>,
) -> Result<Option<WalkInDetail>, StoreError> {
    Ok(match walk_in {
        None => None,
        Some(WalkIn::Confirmed) => Some(WalkInDetail {
            state: WalkIn::Confirmed,
            candidates: Vec::new(),
        }),
        Some(WalkIn::Unconfirmed) => Some(WalkInDetail {
            state: WalkIn::Unconfirmed,
            candidates: candidates(db, provider_id, appointment_id).await?,
        }),
    })
}

/// What a match changed, for the change notices: the booked appointment (which now holds
/// everything) and the walk-in (gone).
#[derive(Debug, Clone)]
pub struct Matched {
    pub booked: Placement,
    pub walk_in: Placement,
    /// The booked appointment's withdrawn worklist item (its action id), if it had one.
    pub withdrawn: Option<String>,
}

/// "Match to this appointment": the booked appointment takes the walk-in's accession number,
/// status, images and history; its own undelivered worklist item is withdrawn; the walk-in is
/// removed. Refused when the booked appointment's item may have reached the gateway.
pub async fn match_to(
    db: &Db,
    provider_id: i64,
    walk_in_id: i64,
    booked_id: i64,
    by: &str,
) -> Result<Matched, StoreError> {
    let mut tx = db.begin().await?;
    let w = unconfirmed(&mut tx, provider_id, walk_in_id).await?;
    let booked = standing(&mut tx, provider_id, booked_id).await?;
    if booked.clinic_date != w.clinic_date {
        return Err(StoreError::Refused(
            "a walk-in can only be matched to an appointment on its own clinic day".into(),
        ));
    }
    let withdraw = match replaceable(&mut tx, &booked.placement, booked.walk_in).await? {
        Ok(create) => create,
        Err(why) => {
            return Err(StoreError::Refused(format!(
                "this appointment cannot take the walk-in's place: {why}"
            )))
        }
    };
    let has_actions =
        sqlx::query("SELECT COUNT(*) AS n FROM gateway_actions WHERE appointment_id = $1")
            .bind(walk_in_id)
            .fetch_one(&mut *tx)
            .await?;
    if col::<i64>(&has_actions, "n")? != 0 {
        return Err(StoreError::Refused(
            "messages were sent to the gateway about this walk-in; it cannot be merged".into(),
        ));
    }
    let accession = w.accession_number.clone().unwrap_or_default();
    if let Some(create) = &withdraw {
        let reason = "withdrawn: the appointment was matched to a walk-in added at the gateway";
        if !actions::withdraw(&mut tx, create, reason).await? {
            return Err(StoreError::Refused(
                "its worklist item is being sent right now; try again in a moment".into(),
            ));
        }
        actions::withdraw_needless_cancels(&mut tx, booked_id, create).await?;
    }
    // The walk-in's accession is unique: free it before the booked appointment takes it.
    sqlx::query("UPDATE appointments SET accession_number = NULL WHERE id = $1")
        .bind(walk_in_id)
        .execute(&mut *tx)
        .await?;
    for table in ["studies", "timeline"] {
        sqlx::query(&format!(
            "UPDATE {table} SET appointment_id = $1 WHERE appointment_id = $2"
        ))
        .bind(booked_id)
        .bind(walk_in_id)
        .execute(&mut *tx)
        .await?;
    }
    let path = booked.placement.status.path_to(w.placement.status)?;
    let mut at = booked.placement.status;
    for next in path {
        appointments::change_status(&mut tx, booked_id, at, next, None).await?;
        at = next;
    }
    sqlx::query(
        "UPDATE appointments SET accession_number = $1, images_taken = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(&accession)
    .bind(w.images_taken)
    .bind(now_ms())
    .bind(booked_id)
    .execute(&mut *tx)
    .await?;
    let mismatch = if w.nhs_number != booked.nhs_number {
        format!(
            "; the gateway's item has NHS number {}, this appointment {}: the images carry the \
             gateway's",
            display_nhs_number(&w.nhs_number),
            display_nhs_number(&booked.nhs_number)
        )
    } else {
        String::new()
    };
    appointments::add_timeline(
        &mut tx,
        booked_id,
        &format!("Matched by {by} to the walk-in added at the gateway (worklist item {accession}){mismatch}"),
    )
    .await?;
    sqlx::query("DELETE FROM appointments WHERE id = $1")
        .bind(walk_in_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let booked_placement = Placement {
        status: w.placement.status,
        ..booked.placement
    };
    Ok(Matched {
        booked: booked_placement,
        walk_in: w.placement,
        withdrawn: withdraw,
    })
}
