//! Modality Performed Procedure Steps: what the modality reports it did.
//!
//! Each step is kept by its own SOP Instance UID, whatever the worklist says, so the order in
//! which the N-CREATE and the images arrive does not matter: an N-CREATE after the images still
//! links to the (already IN PROGRESS) item, and an N-SET always finds its step.
//! Domain only: data sets come in as parsed objects, never as DIMSE messages.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::wire::action::WorklistStatus;
use thiserror::Error;

use crate::db::{self, Database, DbError};
use crate::storage::{index::text, now_rfc3339};
use crate::worklist::{self, WorklistEntry};

/// Performed Procedure Step Status (0040,0252) defined terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MppsStatus {
    #[serde(rename = "IN PROGRESS")]
    InProgress,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "DISCONTINUED")]
    Discontinued,
}

impl MppsStatus {
    pub fn parse(value: &str) -> Option<MppsStatus> {
        match value.trim() {
            "IN PROGRESS" => Some(MppsStatus::InProgress),
            "COMPLETED" => Some(MppsStatus::Completed),
            "DISCONTINUED" => Some(MppsStatus::Discontinued),
            _ => None,
        }
    }
}

/// One performed procedure step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MppsRecord {
    pub sop_instance_uid: String,
    pub status: MppsStatus,
    /// Accession numbers from the Scheduled Step Attributes Sequence (empty when unscheduled).
    pub accession_numbers: Vec<String>,
    /// The worklist item this step performs, when one matched.
    pub linked_accession: Option<String>,
    pub calling_ae: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Why an N-CREATE or N-SET was refused; each maps to one DIMSE status.
#[derive(Debug, Error)]
pub enum MppsError {
    #[error("MPPS instance {0} already exists")]
    Duplicate(String),
    #[error("no MPPS instance {0}")]
    NoSuchInstance(String),
    #[error("missing attribute {0}")]
    MissingAttribute(&'static str),
    #[error("invalid attribute value: {0}")]
    InvalidValue(String),
    #[error("MPPS {uid} is {status:?} and may no longer be updated")]
    NotInProgress { uid: String, status: MppsStatus },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<redb::TableError> for MppsError {
    fn from(e: redb::TableError) -> Self {
        MppsError::Db(e.into())
    }
}

impl From<redb::StorageError> for MppsError {
    fn from(e: redb::StorageError) -> Self {
        MppsError::Db(e.into())
    }
}

/// What a create or set changed, for the caller's events.
#[derive(Debug, Clone)]
pub struct MppsChange {
    pub record: MppsRecord,
    /// The worklist item whose status changed with it, if any.
    pub worklist: Option<WorklistEntry>,
}

fn encode(obj: &InMemDicomObject) -> Result<Vec<u8>, MppsError> {
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| MppsError::InvalidValue(format!("data set cannot be encoded: {e}")))?;
    Ok(bytes)
}

/// N-CREATE: a new step, IN PROGRESS, linked to its worklist item when one is waiting.
pub fn create(
    txn: &WriteTransaction,
    sop_instance_uid: &str,
    data_set: &InMemDicomObject,
    calling_ae: &str,
) -> Result<MppsChange, MppsError> {
    let status_text = text(data_set, tags::PERFORMED_PROCEDURE_STEP_STATUS).ok_or(
        MppsError::MissingAttribute("Performed Procedure Step Status (0040,0252)"),
    )?;
    if MppsStatus::parse(&status_text) != Some(MppsStatus::InProgress) {
        return Err(MppsError::InvalidValue(format!(
            "Performed Procedure Step Status must be IN PROGRESS at N-CREATE, not {status_text:?}"
        )));
    }
    let steps = data_set
        .get(tags::SCHEDULED_STEP_ATTRIBUTES_SEQUENCE)
        .ok_or(MppsError::MissingAttribute(
            "Scheduled Step Attributes Sequence (0040,0270)",
        ))?;
    let accession_numbers: Vec<String> = steps
        .items()
        .unwrap_or_default()
        .iter()
        .filter_map(|item| text(item, tags::ACCESSION_NUMBER))
        .collect();

    let mut table = txn.open_table(db::MPPS)?;
    if table.get(sop_instance_uid)?.is_some() {
        return Err(MppsError::Duplicate(sop_instance_uid.to_string()));
    }
    let mut linked_accession = None;
    let mut linked_entry = None;
    for accession in &accession_numbers {
        let Some(mut entry) = worklist::get_in(txn, accession)? else {
            continue;
        };
        // SCHEDULED, or IN PROGRESS because its images came first: either way it waits for
        // its MPPS. A finished item or one another step already performs is left alone.
        if entry.is_offered() && entry.mpps_instance_uid.is_none() {
            entry.status = WorklistStatus::InProgress;
            entry.mpps_instance_uid = Some(sop_instance_uid.to_string());
            worklist::put(txn, &mut entry)?;
            linked_accession = Some(accession.clone());
            linked_entry = Some(entry);
            break;
        }
        tracing::warn!(accession, status = ?entry.status, mpps = ?entry.mpps_instance_uid,
            "MPPS names a worklist item that is finished or already performed by another step; not linked");
    }
    let now = now_rfc3339();
    let record = MppsRecord {
        sop_instance_uid: sop_instance_uid.to_string(),
        status: MppsStatus::InProgress,
        accession_numbers,
        linked_accession,
        calling_ae: calling_ae.to_string(),
        created_at: now.clone(),
        updated_at: now,
    };
    db::put_json(&mut table, sop_instance_uid, &record)?;
    let mut data_sets = txn.open_table(db::MPPS_DATA_SETS)?;
    data_sets.insert(sop_instance_uid, encode(data_set)?.as_slice())?;
    Ok(MppsChange {
        record,
        worklist: linked_entry,
    })
}

/// N-SET: merges the modifications into the stored data set; COMPLETED or DISCONTINUED ends
/// the step and its worklist item.
pub fn set(
    txn: &WriteTransaction,
    sop_instance_uid: &str,
    modifications: &InMemDicomObject,
) -> Result<MppsChange, MppsError> {
    let mut table = txn.open_table(db::MPPS)?;
    let mut record: MppsRecord = db::get_json(&table, "mpps", sop_instance_uid)?
        .ok_or_else(|| MppsError::NoSuchInstance(sop_instance_uid.to_string()))?;
    if record.status != MppsStatus::InProgress {
        return Err(MppsError::NotInProgress {
            uid: record.sop_instance_uid,
            status: record.status,
        });
    }
    let new_status = match modifications.get(tags::PERFORMED_PROCEDURE_STEP_STATUS) {
        None => None,
        Some(_) => {
            let value =
                text(modifications, tags::PERFORMED_PROCEDURE_STEP_STATUS).unwrap_or_default();
            Some(MppsStatus::parse(&value).ok_or_else(|| {
                MppsError::InvalidValue(format!(
                    "Performed Procedure Step Status {value:?} is not IN PROGRESS, COMPLETED or DISCONTINUED"
                ))
            })?)
        }
    };
    let mut data_sets = txn.open_table(db::MPPS_DATA_SETS)?;
    let mut stored = match data_sets.get(sop_instance_uid)? {
        Some(bytes) => InMemDicomObject::read_dataset_with_ts(
            bytes.value(),
            &EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .map_err(|e| MppsError::InvalidValue(format!("stored MPPS data set unreadable: {e}")))?,
        None => InMemDicomObject::new_empty(),
    };
    for element in modifications.iter() {
        stored.put(element.clone());
    }
    data_sets.insert(sop_instance_uid, encode(&stored)?.as_slice())?;

    let mut linked_entry = None;
    if let Some(status) = new_status {
        record.status = status;
        let finished = match status {
            MppsStatus::Completed => Some(WorklistStatus::Completed),
            MppsStatus::Discontinued => Some(WorklistStatus::Discontinued),
            MppsStatus::InProgress => None,
        };
        if let (Some(item_status), Some(accession)) = (finished, &record.linked_accession) {
            if let Some(mut entry) = worklist::get_in(txn, accession)? {
                if entry.mpps_instance_uid.as_deref() == Some(sop_instance_uid) {
                    entry.status = item_status;
                    worklist::put(txn, &mut entry)?;
                    linked_entry = Some(entry);
                }
            }
        }
    }
    record.updated_at = now_rfc3339();
    db::put_json(&mut table, sop_instance_uid, &record)?;
    Ok(MppsChange {
        record,
        worklist: linked_entry,
    })
}

/// Reads one step from a snapshot.
pub fn get(db: &Database, sop_instance_uid: &str) -> Result<Option<MppsRecord>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::MPPS)?;
    db::get_json(&table, "mpps", sop_instance_uid)
}

/// The stored data set of a step (N-CREATE merged with every N-SET).
pub fn data_set(db: &Database, sop_instance_uid: &str) -> Result<Option<Vec<u8>>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::MPPS_DATA_SETS)?;
    Ok(table.get(sop_instance_uid)?.map(|v| v.value().to_vec()))
}
