//! Participants, appointments, their status changes and their timeline.

use sqlx::{Any, Transaction};

use crate::domain::{AppointmentStatus, NhsNumber};
use crate::model::{AppointmentDetail, TimelineEntry};

use super::super::db::{clock_time, col, now_ms, Db, StoreError};
use super::clinics::{display_name, display_nhs_number};

/// Adds a participant; the NHS number must be valid.
pub async fn create_participant(
    db: &Db,
    provider_id: i64,
    nhs_number: &NhsNumber,
    family_name: &str,
    given_name: &str,
    birth_date: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO participants (provider_id, nhs_number, family_name, given_name, birth_date, sex)
         VALUES ($1, $2, $3, $4, $5, 'F') RETURNING id",
    )
    .bind(provider_id)
    .bind(nhs_number.as_str())
    .bind(family_name)
    .bind(given_name)
    .bind(birth_date)
    .fetch_one(&db.pool)
    .await?;
    col(&row, "id")
}

/// Adds a checked-in appointment at `starts_at` (`HH:MM`).
pub async fn create(
    db: &Db,
    clinic_id: i64,
    participant_id: i64,
    starts_at: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO appointments (clinic_id, participant_id, starts_at, status, updated_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(clinic_id)
    .bind(participant_id)
    .bind(starts_at)
    .bind(AppointmentStatus::CheckedIn.as_str())
    .bind(now_ms())
    .fetch_one(&db.pool)
    .await?;
    col(&row, "id")
}

/// What sending an appointment to the modality needs to know about it.
#[derive(Debug, Clone)]
pub struct ForWorklist {
    pub id: i64,
    pub clinic_id: i64,
    pub provider_id: i64,
    pub gateway_id: Option<i64>,
    pub status: AppointmentStatus,
    pub participant_id: i64,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: String,
    pub sex: String,
    pub clinic_date: String,
    pub starts_at: String,
}

/// Loads an appointment of the provider for sending, inside the caller's transaction.
pub async fn for_worklist(
    tx: &mut Transaction<'_, Any>,
    provider_id: i64,
    appointment_id: i64,
) -> Result<ForWorklist, StoreError> {
    let r = sqlx::query(
        "SELECT a.id, a.clinic_id, c.provider_id, c.gateway_id, a.status, a.participant_id,
                p.nhs_number, p.family_name, p.given_name, p.birth_date, p.sex, c.clinic_date, a.starts_at
         FROM appointments a JOIN clinics c ON c.id = a.clinic_id
         JOIN participants p ON p.id = a.participant_id
         WHERE a.id = $1 AND c.provider_id = $2",
    )
    .bind(appointment_id)
    .bind(provider_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(ForWorklist {
        id: col(&r, "id")?,
        clinic_id: col(&r, "clinic_id")?,
        provider_id: col(&r, "provider_id")?,
        gateway_id: col(&r, "gateway_id")?,
        status: AppointmentStatus::parse(&col::<String>(&r, "status")?)?,
        participant_id: col(&r, "participant_id")?,
        nhs_number: col(&r, "nhs_number")?,
        family_name: col(&r, "family_name")?,
        given_name: col(&r, "given_name")?,
        birth_date: col(&r, "birth_date")?,
        sex: col(&r, "sex")?,
        clinic_date: col(&r, "clinic_date")?,
        starts_at: col(&r, "starts_at")?,
    })
}

/// The accession number an appointment was sent to the modality with, if any.
pub async fn accession_number(
    tx: &mut Transaction<'_, Any>,
    appointment_id: i64,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT accession_number FROM appointments WHERE id = $1")
        .bind(appointment_id)
        .fetch_one(&mut **tx)
        .await?;
    col(&row, "accession_number")
}

/// Where an appointment belongs, for routing change notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub appointment_id: i64,
    pub clinic_id: i64,
    pub provider_id: i64,
    pub status: AppointmentStatus,
}

/// Finds the appointment a gateway's message is about: by the action that created its worklist
/// item, else by accession number; only among the gateway's provider's appointments.
pub async fn find_for_gateway(
    tx: &mut Transaction<'_, Any>,
    gateway_id: i64,
    action_id: Option<&str>,
    accession_number: Option<&str>,
) -> Result<Option<Placement>, StoreError> {
    const SELECT: &str = "SELECT a.id, a.clinic_id, c.provider_id, a.status
        FROM appointments a JOIN clinics c ON c.id = a.clinic_id
        JOIN gateways g ON g.provider_id = c.provider_id AND g.id = $1";
    let mut row = None;
    if let Some(action_id) = action_id {
        row = sqlx::query(&format!(
            "{SELECT} JOIN gateway_actions ga ON ga.appointment_id = a.id AND ga.gateway_id = g.id
             WHERE ga.id = $2"
        ))
        .bind(gateway_id)
        .bind(action_id)
        .fetch_optional(&mut **tx)
        .await?;
    }
    if row.is_none() {
        if let Some(accession) = accession_number.filter(|a| !a.is_empty()) {
            row = sqlx::query(&format!("{SELECT} WHERE a.accession_number = $2"))
                .bind(gateway_id)
                .bind(accession)
                .fetch_optional(&mut **tx)
                .await?;
        }
    }
    row.map(|r| {
        Ok(Placement {
            appointment_id: col(&r, "id")?,
            clinic_id: col(&r, "clinic_id")?,
            provider_id: col(&r, "provider_id")?,
            status: AppointmentStatus::parse(&col::<String>(&r, "status")?)?,
        })
    })
    .transpose()
}

/// Moves an appointment to `next` if the state machine allows it from `current`; the update is
/// conditional on the stored status still being `current`, so two writers cannot both win.
pub async fn change_status(
    tx: &mut Transaction<'_, Any>,
    appointment_id: i64,
    current: AppointmentStatus,
    next: AppointmentStatus,
    accession_number: Option<&str>,
) -> Result<(), StoreError> {
    current.transition(next)?;
    let done = sqlx::query(
        "UPDATE appointments SET status = $1, updated_at = $2,
             accession_number = COALESCE($3, accession_number)
         WHERE id = $4 AND status = $5",
    )
    .bind(next.as_str())
    .bind(now_ms())
    .bind(accession_number)
    .bind(appointment_id)
    .bind(current.as_str())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Refused(
            "the appointment changed meanwhile; reload and try again".into(),
        ));
    }
    add_timeline(tx, appointment_id, &format!("Status: {}", next.label())).await
}

/// Records how many images the modality reported taken (MPPS COMPLETED), with a history line.
pub async fn record_images_taken(
    tx: &mut Transaction<'_, Any>,
    appointment_id: i64,
    taken: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE appointments SET images_taken = $1 WHERE id = $2")
        .bind(taken)
        .bind(appointment_id)
        .execute(&mut **tx)
        .await?;
    add_timeline(
        tx,
        appointment_id,
        &format!("Modality reports {taken} images taken"),
    )
    .await
}

/// Adds a line to an appointment's history.
pub async fn add_timeline(
    tx: &mut Transaction<'_, Any>,
    appointment_id: i64,
    text: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO timeline (appointment_id, at, text) VALUES ($1, $2, $3)")
        .bind(appointment_id)
        .bind(now_ms())
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds a line to an appointment's history outside any transaction (background workers).
pub async fn note(db: &Db, appointment_id: i64, text: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO timeline (appointment_id, at, text) VALUES ($1, $2, $3)")
        .bind(appointment_id)
        .bind(now_ms())
        .bind(text)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Everything the appointment page shows, for an appointment of the provider.
pub async fn detail(
    db: &Db,
    provider_id: i64,
    appointment_id: i64,
) -> Result<AppointmentDetail, StoreError> {
    let r = sqlx::query(
        "SELECT a.id, a.clinic_id, c.name AS clinic_name, a.starts_at, a.status, a.accession_number,
                a.images_taken, a.walk_in, p.family_name, p.given_name, p.nhs_number, p.birth_date
         FROM appointments a JOIN clinics c ON c.id = a.clinic_id
         JOIN participants p ON p.id = a.participant_id
         WHERE a.id = $1 AND c.provider_id = $2",
    )
    .bind(appointment_id)
    .bind(provider_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    let timeline =
        sqlx::query("SELECT at, text FROM timeline WHERE appointment_id = $1 ORDER BY at, id")
            .bind(appointment_id)
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|t| {
                Ok(TimelineEntry {
                    at: clock_time(col(t, "at")?),
                    text: col(t, "text")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
    Ok(AppointmentDetail {
        id: col(&r, "id")?,
        clinic_id: col(&r, "clinic_id")?,
        clinic_name: col(&r, "clinic_name")?,
        time: col(&r, "starts_at")?,
        participant_name: display_name(
            &col::<String>(&r, "family_name")?,
            &col::<String>(&r, "given_name")?,
        ),
        nhs_number: display_nhs_number(&col::<String>(&r, "nhs_number")?),
        birth_date: col(&r, "birth_date")?,
        status: AppointmentStatus::parse(&col::<String>(&r, "status")?)?,
        accession_number: col(&r, "accession_number")?,
        images_taken: col(&r, "images_taken")?,
        delivery: super::actions::deliveries(db, &[appointment_id])
            .await?
            .remove(&appointment_id),
        walk_in: super::walk_ins::detail(
            db,
            provider_id,
            appointment_id,
            col::<Option<String>>(&r, "walk_in")?
                .as_deref()
                .and_then(crate::domain::WalkIn::parse),
        )
        .await?,
        timeline,
        images: super::images::for_appointment(db, appointment_id).await?,
    })
}

/// The clinic and provider of an appointment, if it is the provider's.
pub async fn placement(
    db: &Db,
    provider_id: i64,
    appointment_id: i64,
) -> Result<Placement, StoreError> {
    let r = sqlx::query(
        "SELECT a.id, a.clinic_id, c.provider_id, a.status FROM appointments a
         JOIN clinics c ON c.id = a.clinic_id WHERE a.id = $1 AND c.provider_id = $2",
    )
    .bind(appointment_id)
    .bind(provider_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(Placement {
        appointment_id: col(&r, "id")?,
        clinic_id: col(&r, "clinic_id")?,
        provider_id: col(&r, "provider_id")?,
        status: AppointmentStatus::parse(&col::<String>(&r, "status")?)?,
    })
}
