//! Which state changes the cloud hears about, and how they read as events: an MPPS status
//! ([`mpps_changed`]), a received image with its thumbnail ([`image_received`]), a refused
//! one ([`image_refused`]), an item a local operator added ([`local_item_added`]) and where an image stands at each PACS ([`archive_state`]). Called inside the transaction of the change itself, so the change
//! and its event commit together.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};
use shared::wire::event::{
    ArchiveState, Dose, Event, EventBody, ImageArchiveState, ImageReceived, ImageSummary,
    ImageValidationFailed, LocalWorklistItem, MppsStatus as WireStatus, MppsStatusUpdate,
    PatientSummary, SeriesSummary, StudySummary, Thumbnail,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::outbox;
use crate::db::{self, DbError};
use crate::mpps::{MppsChange, MppsStatus};
use crate::storage::InstanceRecord;
use crate::worklist;

/// Queues `mpps.status_update` for an N-CREATE or N-SET that set a status. Steps that name no
/// accession number cannot be matched to an appointment by the cloud, so they are only logged.
pub fn mpps_changed(
    txn: &WriteTransaction,
    change: &MppsChange,
    source_system: &str,
) -> Result<(), DbError> {
    let record = &change.record;
    let Some(accession) = record
        .linked_accession
        .clone()
        .or_else(|| record.accession_numbers.first().cloned())
    else {
        tracing::info!(mpps = %record.sop_instance_uid, "MPPS names no accession number: not reported");
        return Ok(());
    };
    let status = match record.status {
        MppsStatus::InProgress => WireStatus::InProgress,
        MppsStatus::Completed => WireStatus::Completed,
        MppsStatus::Discontinued => WireStatus::Discontinued,
    };
    let event = Event::new(
        source_system,
        EventBody::MppsStatusUpdate(MppsStatusUpdate {
            action_id: change.worklist.as_ref().and_then(|w| w.action_id),
            accession_number: accession.clone(),
            status,
            mpps_instance_uid: record.sop_instance_uid.clone(),
            images_taken: change.images_taken.clone(),
        }),
    );
    outbox::enqueue(txn, event, &accession)?;
    Ok(())
}

/// Queues `study.image_received` for a stored instance, with its thumbnail inlined (or, when
/// none could be made, `thumbnail: null` and why in `thumbnail_error`) and the worklist item's
/// details where the object lacks them. Events of one accession (or, without one, one study)
/// are delivered in order.
pub fn image_received(
    txn: &WriteTransaction,
    source_system: &str,
    record: &InstanceRecord,
    extra: &ImageExtra,
    thumbnail: Result<Thumbnail, String>,
) -> Result<(), DbError> {
    let item = match &record.data_set.accession_number {
        Some(accession) => worklist::get_in(txn, accession)?,
        None => None,
    };
    let event = image_event(source_system, record, extra, item.as_ref(), thumbnail);
    let order_key = record
        .data_set
        .accession_number
        .clone()
        .unwrap_or_else(|| record.study_instance_uid.clone());
    outbox::enqueue(txn, event, &order_key)?;
    Ok(())
}

/// Queues `worklist.item_added_locally` for an item a local operator added at the gateway, in
/// the commit that inserts it and under its accession, so the cloud hears of the walk-in before
/// any MPPS or image event of the procedure.
pub fn local_item_added(
    txn: &WriteTransaction,
    source_system: &str,
    entry: &worklist::WorklistEntry,
) -> Result<(), DbError> {
    let event = Event::new(
        source_system,
        EventBody::WorklistItemAddedLocally(LocalWorklistItem {
            accession_number: entry.accession_number.clone(),
            participant: entry.participant.clone(),
            scheduled: entry.scheduled.clone(),
            procedure: entry.procedure.clone(),
            study_instance_uid: entry.study_instance_uid.clone(),
            scheduled_station_ae: entry.scheduled_station_ae.clone(),
        }),
    );
    outbox::enqueue(txn, event, &entry.accession_number)?;
    Ok(())
}

/// A C-STORE the gateway refused, as the modality sent it.
#[derive(Debug, Clone)]
pub struct RefusedImage {
    pub calling_ae: String,
    /// The command's Affected SOP Instance UID (`None` when it named none).
    pub sop_instance_uid: Option<String>,
    /// The data set's accession number, when it was read before the refusal.
    pub accession_number: Option<String>,
    /// The DIMSE error comment the modality was given.
    pub reason: String,
}

/// Queues `image.validation_failed` for a refused C-STORE, so the clinician learns that an
/// image is missing instead of waiting for it. Ordered behind the accession's other events
/// when the accession is known, else behind the sending modality's other refusals.
pub fn image_refused(
    txn: &WriteTransaction,
    source_system: &str,
    refused: &RefusedImage,
) -> Result<(), DbError> {
    let item = match &refused.accession_number {
        Some(accession) => worklist::get_in(txn, accession)?,
        None => None,
    };
    let event = Event::new(
        source_system,
        EventBody::ImageValidationFailed(ImageValidationFailed {
            action_id: item.and_then(|i| i.action_id),
            accession_number: refused.accession_number.clone(),
            sop_instance_uid: refused.sop_instance_uid.clone(),
            calling_ae_title: refused.calling_ae.clone(),
            reason: refused.reason.clone(),
        }),
    );
    let order_key = refused
        .accession_number
        .clone()
        .unwrap_or_else(|| format!("refused-from:{}", refused.calling_ae));
    outbox::enqueue(txn, event, &order_key)?;
    Ok(())
}

/// Queues `image.archive_state` for a change of where a stored object stands at the PACS
/// `destination_ae` (forwarded, committed, or failed with `reason`), inside the transaction that
/// records the change, ordered behind the object's other events (its accession, else its
/// study). An object no longer in the index (retention deleted it meanwhile) is not reported.
pub fn archive_state(
    txn: &WriteTransaction,
    source_system: &str,
    destination_ae: &str,
    sop_instance_uid: &str,
    state: ArchiveState,
    reason: Option<String>,
) -> Result<(), DbError> {
    let record: Option<InstanceRecord> = {
        let instances = txn.open_table(db::INSTANCES)?;
        db::get_json(&instances, "instances", sop_instance_uid)?
    };
    let Some(record) = record else {
        tracing::debug!(
            sop_instance_uid,
            "archive state of an object no longer indexed: not reported"
        );
        return Ok(());
    };
    let accession = record.data_set.accession_number.clone();
    let item = match &accession {
        Some(accession) => worklist::get_in(txn, accession)?,
        None => None,
    };
    let event = Event::new(
        source_system,
        EventBody::ImageArchiveState(ImageArchiveState {
            action_id: item.and_then(|i| i.action_id),
            accession_number: accession.clone(),
            study_instance_uid: record.study_instance_uid.clone(),
            sop_instance_uid: sop_instance_uid.to_string(),
            destination: destination_ae.to_string(),
            state,
            reason,
        }),
    );
    let order_key = accession.unwrap_or(record.study_instance_uid);
    outbox::enqueue(txn, event, &order_key)?;
    Ok(())
}

/// Attributes the image event carries that the index does not keep, read from the object
/// when its thumbnail is made (in the render child, which sends them back with the JPEG).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageExtra {
    instance_number: Option<i64>,
    series_number: Option<i64>,
    series_description: Option<String>,
    study_date: Option<String>,
    study_time: Option<String>,
    study_description: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
}

impl ImageExtra {
    pub fn read(object: &DefaultDicomObject) -> ImageExtra {
        let text = |tag| crate::storage::index::text(object, tag);
        let number = |tag| text(tag).and_then(|s| s.parse::<i64>().ok());
        ImageExtra {
            instance_number: number(tags::INSTANCE_NUMBER),
            series_number: number(tags::SERIES_NUMBER),
            series_description: text(tags::SERIES_DESCRIPTION),
            study_date: text(tags::STUDY_DATE),
            study_time: text(tags::STUDY_TIME),
            study_description: text(tags::STUDY_DESCRIPTION),
            birth_date: text(tags::PATIENT_BIRTH_DATE),
            sex: text(tags::PATIENT_SEX),
        }
    }
}

fn image_event(
    source_system: &str,
    record: &InstanceRecord,
    extra: &ImageExtra,
    item: Option<&worklist::WorklistEntry>,
    thumbnail: Result<Thumbnail, String>,
) -> Event {
    let (thumbnail, thumbnail_error) = match thumbnail {
        Ok(thumbnail) => (Some(thumbnail), None),
        Err(why) => (None, Some(why)),
    };
    let received_at = OffsetDateTime::parse(&record.received_at, &Rfc3339)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let participant = PatientSummary {
        patient_id: record
            .data_set
            .patient_id
            .clone()
            .or_else(|| item.map(|i| i.participant.nhs_number.clone()))
            .unwrap_or_default(),
        name: record
            .data_set
            .patient_name
            .clone()
            .or_else(|| item.map(|i| i.participant.name.clone()))
            .unwrap_or_default(),
        birth_date: extra
            .birth_date
            .clone()
            .or_else(|| item.map(|i| i.participant.birth_date.clone())),
        sex: extra
            .sex
            .clone()
            .or_else(|| item.map(|i| i.participant.sex.clone())),
    };
    Event::new(
        source_system,
        EventBody::ImageReceived(Box::new(ImageReceived {
            action_id: item.and_then(|i| i.action_id),
            participant,
            study: StudySummary {
                study_instance_uid: record.study_instance_uid.clone(),
                accession_number: record.data_set.accession_number.clone(),
                date: extra.study_date.clone(),
                time: extra.study_time.clone(),
                description: extra
                    .study_description
                    .clone()
                    .or_else(|| item.map(|i| i.procedure.study_description.clone())),
            },
            series: SeriesSummary {
                series_instance_uid: record.series_instance_uid.clone(),
                number: extra.series_number,
                modality: record.data_set.modality.clone(),
                description: extra.series_description.clone(),
            },
            image: ImageSummary {
                sop_instance_uid: record.sop_instance_uid.clone(),
                sop_class_uid: record.sop_class_uid.clone(),
                instance_number: extra.instance_number,
                rows: record.data_set.rows.map(u32::from),
                columns: record.data_set.columns.map(u32::from),
                transfer_syntax_uid: record.transfer_syntax.clone(),
                view: record.data_set.view_position.clone(),
                laterality: record.data_set.image_laterality.clone(),
                dose: Dose {
                    kvp: record.data_set.kvp,
                    exposure_uas: record.data_set.exposure_uas,
                    organ_dose_dgy: record.data_set.organ_dose_dgy,
                    entrance_dose_mgy: record.data_set.entrance_dose_mgy,
                    anode: record.data_set.anode.clone(),
                    filter: record.data_set.filter.clone(),
                    body_part_thickness_mm: record.data_set.body_part_thickness_mm,
                    compression_force_n: record.data_set.compression_force_n,
                },
                received_at,
                thumbnail,
                thumbnail_error,
            },
        })),
    )
}
