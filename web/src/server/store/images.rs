//! Study / Series / Image as reported by the gateway's `study.image_received` events: UIDs, view,
//! laterality, dose, and the small JPEG thumbnail the gateway inlines. Every record belongs to the
//! gateway that reported it: a UID is looked up only among that gateway's studies, so another
//! provider's gateway reporting the same Study Instance UID (a copied study, a colliding UID
//! root) can never attach its images to this provider's appointment, or the other way round.

use sqlx::{Any, Transaction};

use crate::model::{ArchiveBadge, DoseRow, ImageCard, RefusedImage, UnmatchedStudy};

use super::super::db::{col, Db, StoreError};

/// An image to record, already decoded from the event.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    pub appointment_id: Option<i64>,
    pub gateway_id: i64,
    pub study_instance_uid: String,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_date: Option<String>,
    /// The patient as the modality recorded them, to identify an image no appointment claims.
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub series_instance_uid: String,
    pub series_number: Option<i64>,
    pub modality: Option<String>,
    pub sop_instance_uid: String,
    pub instance_number: Option<i64>,
    pub laterality: Option<String>,
    pub view: Option<String>,
    pub kvp: Option<f64>,
    pub exposure_uas: Option<f64>,
    pub organ_dose_dgy: Option<f64>,
    pub entrance_dose_mgy: Option<f64>,
    pub anode: Option<String>,
    pub filter: Option<String>,
    pub body_part_thickness_mm: Option<f64>,
    pub compression_force_n: Option<f64>,
    pub thumbnail: Option<Vec<u8>>,
    pub thumbnail_format: Option<String>,
    pub received_at: i64,
}

/// Records an image (creating its study and series on first sight). Returns the image id, or
/// `None` when that SOP instance was already recorded.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    i: &NewImage,
) -> Result<Option<i64>, StoreError> {
    // Insert-or-ignore, then read: two images of a new study applied at once (two replicas)
    // both create its study and series; on PostgreSQL the second insert waits for the first
    // transaction and then inserts nothing, and both go on with the one row.
    sqlx::query(
        "INSERT INTO studies (appointment_id, gateway_id, study_instance_uid, accession_number,
             description, study_date, patient_id, patient_name, patient_birth_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (gateway_id, study_instance_uid) DO NOTHING",
    )
    .bind(i.appointment_id)
    .bind(i.gateway_id)
    .bind(&i.study_instance_uid)
    .bind(i.accession_number.as_deref())
    .bind(i.study_description.as_deref())
    .bind(i.study_date.as_deref())
    .bind(i.patient_id.as_deref())
    .bind(i.patient_name.as_deref())
    .bind(i.patient_birth_date.as_deref())
    .execute(&mut **tx)
    .await?;
    let study_id: i64 = col(
        &sqlx::query("SELECT id FROM studies WHERE gateway_id = $1 AND study_instance_uid = $2")
            .bind(i.gateway_id)
            .bind(&i.study_instance_uid)
            .fetch_one(&mut **tx)
            .await?,
        "id",
    )?;
    sqlx::query(
        "INSERT INTO series (study_id, series_instance_uid, number, modality)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (study_id, series_instance_uid) DO NOTHING",
    )
    .bind(study_id)
    .bind(&i.series_instance_uid)
    .bind(i.series_number)
    .bind(i.modality.as_deref())
    .execute(&mut **tx)
    .await?;
    let series_id: i64 = col(
        &sqlx::query("SELECT id FROM series WHERE study_id = $1 AND series_instance_uid = $2")
            .bind(study_id)
            .bind(&i.series_instance_uid)
            .fetch_one(&mut **tx)
            .await?,
        "id",
    )?;
    // Once per gateway: a redelivered event, or the same instance in another series, is a repeat.
    let existing = sqlx::query(
        "SELECT i.id FROM images i JOIN series s ON s.id = i.series_id
         JOIN studies st ON st.id = s.study_id
         WHERE st.gateway_id = $1 AND i.sop_instance_uid = $2",
    )
    .bind(i.gateway_id)
    .bind(&i.sop_instance_uid)
    .fetch_optional(&mut **tx)
    .await?;
    if existing.is_some() {
        return Ok(None);
    }
    let row = sqlx::query(
        "INSERT INTO images (series_id, sop_instance_uid, instance_number, laterality, view_position,
             kvp, exposure_uas, organ_dose_dgy, entrance_dose_mgy, anode, filter,
             body_part_thickness_mm, compression_force_n, thumbnail, thumbnail_format, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
    )
    .bind(series_id)
    .bind(&i.sop_instance_uid)
    .bind(i.instance_number)
    .bind(i.laterality.as_deref())
    .bind(i.view.as_deref())
    .bind(i.kvp)
    .bind(i.exposure_uas)
    .bind(i.organ_dose_dgy)
    .bind(i.entrance_dose_mgy)
    .bind(i.anode.as_deref())
    .bind(i.filter.as_deref())
    .bind(i.body_part_thickness_mm)
    .bind(i.compression_force_n)
    .bind(i.thumbnail.clone())
    .bind(i.thumbnail_format.as_deref())
    .bind(i.received_at)
    .fetch_one(&mut **tx)
    .await?;
    col(&row, "id").map(Some)
}

/// One PACS's report on one of the gateway's images.
#[derive(Debug, Clone)]
pub struct ArchiveReport<'a> {
    pub gateway_id: i64,
    pub sop_instance_uid: &'a str,
    pub destination: &'a str,
    pub state: &'a str,
    pub reason: Option<&'a str>,
    /// Unix ms of the event: a report older than the one kept is ignored.
    pub reported_at: i64,
}

/// Records what a PACS has of an image, whether or not the image event has arrived yet. False
/// when a newer report was already kept (this one changes nothing).
pub async fn record_archive_state(
    tx: &mut Transaction<'_, Any>,
    r: &ArchiveReport<'_>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO image_archive (gateway_id, sop_instance_uid, destination, state, reason, reported_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (gateway_id, sop_instance_uid, destination) DO UPDATE
         SET state = excluded.state, reason = excluded.reason, reported_at = excluded.reported_at
         WHERE image_archive.reported_at <= excluded.reported_at",
    )
    .bind(r.gateway_id)
    .bind(r.sop_instance_uid)
    .bind(r.destination)
    .bind(r.state)
    .bind(r.reason)
    .bind(r.reported_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The archive reports of an appointment's images, by image id.
async fn archive_of_appointment(
    db: &Db,
    appointment_id: i64,
) -> Result<Vec<(i64, ArchiveBadge)>, StoreError> {
    let rows = sqlx::query(
        "SELECT i.id, a.destination, a.state, a.reason
         FROM images i JOIN series s ON s.id = i.series_id JOIN studies st ON st.id = s.study_id
         JOIN image_archive a ON a.gateway_id = st.gateway_id AND a.sop_instance_uid = i.sop_instance_uid
         WHERE st.appointment_id = $1
         ORDER BY a.destination",
    )
    .bind(appointment_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                col(r, "id")?,
                ArchiveBadge {
                    destination: col(r, "destination")?,
                    state: col(r, "state")?,
                    reason: col(r, "reason")?,
                },
            ))
        })
        .collect()
}

fn number(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) => format!("{v:.2} {unit}").trim_end().to_string(),
        None => "–".into(),
    }
}

/// The images of an appointment, right before left, CC before MLO.
pub async fn for_appointment(db: &Db, appointment_id: i64) -> Result<Vec<ImageCard>, StoreError> {
    let rows = sqlx::query(
        "SELECT i.id, i.laterality, i.view_position, i.kvp, i.exposure_uas, i.organ_dose_dgy,
                i.entrance_dose_mgy, i.anode, i.filter, i.body_part_thickness_mm, i.compression_force_n,
                i.thumbnail_format, i.instance_number
         FROM images i JOIN series s ON s.id = i.series_id JOIN studies st ON st.id = s.study_id
         WHERE st.appointment_id = $1
         ORDER BY i.laterality DESC, i.view_position, i.instance_number, i.id",
    )
    .bind(appointment_id)
    .fetch_all(&db.pool)
    .await?;
    let archive = archive_of_appointment(db, appointment_id).await?;
    rows.iter()
        .map(|r| {
            let id: i64 = col(r, "id")?;
            Ok(ImageCard {
                archive: archive
                    .iter()
                    .filter(|(image, _)| *image == id)
                    .map(|(_, badge)| badge.clone())
                    .collect(),
                id,
                laterality: col::<Option<String>>(r, "laterality")?.unwrap_or_default(),
                view: col::<Option<String>>(r, "view_position")?.unwrap_or_default(),
                thumbnail_url: col::<Option<String>>(r, "thumbnail_format")?
                    .map(|_| format!("/images/{id}/thumbnail")),
                dose: DoseRow {
                    kvp: number(col(r, "kvp")?, "kV"),
                    exposure_uas: number(col(r, "exposure_uas")?, "µAs"),
                    organ_dose_dgy: number(col(r, "organ_dose_dgy")?, "dGy"),
                    entrance_dose_mgy: number(col(r, "entrance_dose_mgy")?, "mGy"),
                    body_part_thickness_mm: number(col(r, "body_part_thickness_mm")?, "mm"),
                    compression_force_n: number(col(r, "compression_force_n")?, "N"),
                    anode: col(r, "anode")?,
                    filter: col(r, "filter")?,
                },
            })
        })
        .collect()
}

/// A thumbnail's bytes and format, if the image belongs to the provider.
pub async fn thumbnail(
    db: &Db,
    provider_id: i64,
    image_id: i64,
) -> Result<(Vec<u8>, String), StoreError> {
    let row = sqlx::query(
        "SELECT i.thumbnail, i.thumbnail_format FROM images i
         JOIN series s ON s.id = i.series_id JOIN studies st ON st.id = s.study_id
         JOIN gateways g ON g.id = st.gateway_id
         WHERE i.id = $1 AND g.provider_id = $2",
    )
    .bind(image_id)
    .bind(provider_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    match (
        col::<Option<Vec<u8>>>(&row, "thumbnail")?,
        col::<Option<String>>(&row, "thumbnail_format")?,
    ) {
        (Some(bytes), Some(format)) => Ok((bytes, format)),
        _ => Err(StoreError::NotFound),
    }
}

/// The provider's studies that no appointment claims (their accession matched none), newest first.
pub async fn unmatched(db: &Db, provider_id: i64) -> Result<Vec<UnmatchedStudy>, StoreError> {
    let rows = sqlx::query(
        "SELECT st.id, g.name AS gateway_name, st.accession_number, st.patient_id, st.patient_name,
                st.patient_birth_date, st.study_date, st.description,
                (SELECT COUNT(*) FROM images i JOIN series s ON s.id = i.series_id
                 WHERE s.study_id = st.id) AS images
         FROM studies st JOIN gateways g ON g.id = st.gateway_id
         WHERE g.provider_id = $1 AND st.appointment_id IS NULL
         ORDER BY st.id DESC LIMIT 200",
    )
    .bind(provider_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UnmatchedStudy {
                study_id: col(r, "id")?,
                gateway_name: col(r, "gateway_name")?,
                accession_number: col(r, "accession_number")?,
                patient_id: col(r, "patient_id")?,
                patient_name: col(r, "patient_name")?,
                patient_birth_date: col(r, "patient_birth_date")?,
                study_date: col(r, "study_date")?,
                description: col(r, "description")?,
                images: col(r, "images")?,
            })
        })
        .collect()
}

/// Keeps a refused C-STORE that names no appointment, for the clinics page.
pub async fn record_refused(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    gateway_id: i64,
    failed: &shared::wire::event::ImageValidationFailed,
    refused_at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refused_images (gateway_id, sop_instance_uid, accession_number, calling_ae_title, reason, refused_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(gateway_id)
    .bind(failed.sop_instance_uid.as_deref())
    .bind(failed.accession_number.as_deref())
    .bind(&failed.calling_ae_title)
    .bind(&failed.reason)
    .bind(refused_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The C-STOREs the provider's gateways refused that name no appointment, newest first.
pub async fn refused(db: &Db, provider_id: i64) -> Result<Vec<RefusedImage>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.id, g.name AS gateway_name, r.sop_instance_uid, r.accession_number,
                r.calling_ae_title, r.reason, r.refused_at
         FROM refused_images r JOIN gateways g ON g.id = r.gateway_id
         WHERE g.provider_id = $1 ORDER BY r.refused_at DESC, r.id DESC LIMIT 200",
    )
    .bind(provider_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RefusedImage {
                id: col(r, "id")?,
                gateway_name: col(r, "gateway_name")?,
                sop_instance_uid: col(r, "sop_instance_uid")?,
                accession_number: col(r, "accession_number")?,
                calling_ae_title: col(r, "calling_ae_title")?,
                reason: col(r, "reason")?,
                refused_at: super::super::db::date_time(col(r, "refused_at")?),
            })
        })
        .collect()
}
