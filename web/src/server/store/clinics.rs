//! Clinics and their appointment lists.

use crate::domain::{AppointmentStatus, NhsNumber, WalkIn};
use crate::model::{AppointmentRow, ClinicDetail, ClinicSummary};

use super::super::db::{col, Db, StoreError};

/// Adds a clinic.
pub async fn create(
    db: &Db,
    provider_id: i64,
    gateway_id: Option<i64>,
    name: &str,
    location: &str,
    date: &str,
) -> Result<i64, StoreError> {
    insert(&db.pool, provider_id, gateway_id, name, location, date).await
}

/// Adds a clinic inside the caller's transaction (a walk-in's day that had none).
pub async fn create_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    provider_id: i64,
    gateway_id: Option<i64>,
    name: &str,
    location: &str,
    date: &str,
) -> Result<i64, StoreError> {
    insert(&mut **tx, provider_id, gateway_id, name, location, date).await
}

async fn insert<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    provider_id: i64,
    gateway_id: Option<i64>,
    name: &str,
    location: &str,
    date: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO clinics (provider_id, gateway_id, name, location, clinic_date)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(provider_id)
    .bind(gateway_id)
    .bind(name)
    .bind(location)
    .bind(date)
    .fetch_one(executor)
    .await?;
    col(&row, "id")
}

const SUMMARY: &str = "SELECT c.id, c.name, c.location, c.clinic_date, c.gateway_id,
        (SELECT COUNT(*) FROM appointments a WHERE a.clinic_id = c.id) AS n
     FROM clinics c";

fn summary(row: &sqlx::any::AnyRow) -> Result<ClinicSummary, StoreError> {
    Ok(ClinicSummary {
        id: col(row, "id")?,
        name: col(row, "name")?,
        location: col(row, "location")?,
        date: col(row, "clinic_date")?,
        appointments: col(row, "n")?,
        gateway_id: col(row, "gateway_id")?,
    })
}

/// The provider's clinics, newest first.
pub async fn list(db: &Db, provider_id: i64) -> Result<Vec<ClinicSummary>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SUMMARY} WHERE c.provider_id = $1 ORDER BY c.clinic_date DESC, c.id"
    ))
    .bind(provider_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(summary).collect()
}

/// One of the provider's clinics with its appointments in time order.
pub async fn detail(db: &Db, provider_id: i64, clinic_id: i64) -> Result<ClinicDetail, StoreError> {
    let row = sqlx::query(&format!("{SUMMARY} WHERE c.id = $1 AND c.provider_id = $2"))
        .bind(clinic_id)
        .bind(provider_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let clinic = summary(&row)?;
    let rows = sqlx::query(
        "SELECT a.id, a.starts_at, a.status, a.walk_in, p.family_name, p.given_name, p.nhs_number
         FROM appointments a JOIN participants p ON p.id = a.participant_id
         WHERE a.clinic_id = $1 ORDER BY a.starts_at, a.id",
    )
    .bind(clinic_id)
    .fetch_all(&db.pool)
    .await?;
    let ids = rows
        .iter()
        .map(|r| col::<i64>(r, "id"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut deliveries = super::actions::deliveries(db, &ids).await?;
    let appointments = rows
        .iter()
        .map(|r| {
            let id: i64 = col(r, "id")?;
            Ok(AppointmentRow {
                delivery: deliveries.remove(&id),
                id,
                time: col(r, "starts_at")?,
                participant_name: display_name(
                    &col::<String>(r, "family_name")?,
                    &col::<String>(r, "given_name")?,
                ),
                nhs_number: display_nhs_number(&col::<String>(r, "nhs_number")?),
                status: AppointmentStatus::parse(&col::<String>(r, "status")?)?,
                walk_in: col::<Option<String>>(r, "walk_in")?
                    .as_deref()
                    .and_then(WalkIn::parse),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(ClinicDetail {
        clinic,
        appointments,
        gateway_offline: None,
    })
}

/// `SMITH, Jane`: how the pages name a participant.
pub fn display_name(family_name: &str, given_name: &str) -> String {
    format!("{}, {given_name}", family_name.to_uppercase())
}

/// `943 476 5919`, or the stored text as is if it is somehow not a valid number.
pub fn display_nhs_number(stored: &str) -> String {
    NhsNumber::parse(stored)
        .map(|n| n.to_string())
        .unwrap_or_else(|_| stored.to_string())
}
