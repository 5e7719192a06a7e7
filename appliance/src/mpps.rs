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
use shared::wire::event::ReferencedImage;
use thiserror::Error;

use crate::db::{self, Database, DbError};
use crate::storage::{index::text, now_rfc3339};
use crate::worklist::{self, Transition, WorklistEntry};

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

    /// The status a step starts in: an N-CREATE must say IN PROGRESS (PS3.4 F.7.2.1.2).
    /// `value` is the Performed Procedure Step Status sent, `None` when absent or empty.
    pub fn at_create(value: Option<&str>) -> Result<MppsStatus, MppsError> {
        let value = value.ok_or(MppsError::MissingAttribute(
            "Performed Procedure Step Status (0040,0252)",
        ))?;
        match MppsStatus::parse(value) {
            Some(MppsStatus::InProgress) => Ok(MppsStatus::InProgress),
            _ => Err(MppsError::InvalidValue(format!(
                "Performed Procedure Step Status must be IN PROGRESS at N-CREATE, not {value:?}"
            ))),
        }
    }
}

/// Who may update a step with N-SET (`MPPS_SET_FROM_ANY_AE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetPolicy {
    /// Only the calling AE that created the step, so that no other host can complete or
    /// discontinue a procedure it did not perform (the default).
    CreatorOnly,
    /// Any calling AE (for modalities that update their steps under another AE title).
    AnyAe,
}

impl MppsRecord {
    /// Whether `calling_ae` may send an N-SET for this step under `policy`.
    pub fn may_be_set_by(&self, calling_ae: &str, policy: SetPolicy) -> Result<(), MppsError> {
        if policy == SetPolicy::AnyAe || self.calling_ae == calling_ae.trim() {
            return Ok(());
        }
        Err(MppsError::NotCreator {
            uid: self.sop_instance_uid.clone(),
            creator: self.calling_ae.clone(),
            calling_ae: calling_ae.trim().to_string(),
        })
    }

    /// The step's status after an N-SET that sends `value` (`None`: the N-SET leaves the status
    /// out). Only an IN PROGRESS step may be updated: COMPLETED and DISCONTINUED are final
    /// (PS3.4 F.7.2.2.2), whatever the N-SET says.
    pub fn status_after_set(&self, value: Option<&str>) -> Result<MppsStatus, MppsError> {
        if self.status != MppsStatus::InProgress {
            return Err(MppsError::NotInProgress {
                uid: self.sop_instance_uid.clone(),
                status: self.status,
            });
        }
        match value {
            None => Ok(self.status),
            Some(value) => MppsStatus::parse(value).ok_or_else(|| {
                MppsError::InvalidValue(format!(
                    "Performed Procedure Step Status {value:?} is not IN PROGRESS, COMPLETED or DISCONTINUED"
                ))
            }),
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
    #[error("MPPS {uid} was created by AE {creator}; {calling_ae} may not update it (MPPS_SET_FROM_ANY_AE is false)")]
    NotCreator {
        uid: String,
        creator: String,
        calling_ae: String,
    },
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
    /// The worklist item the step performs, as it stands after the change, if one is linked.
    pub worklist: Option<WorklistEntry>,
    /// When the step ended: the images the modality lists as taken, if it lists any.
    pub images_taken: Option<Vec<ReferencedImage>>,
}

/// More referenced images than any screening procedure takes: such a list is not believed.
pub const MAX_IMAGES_TAKEN: usize = 1000;

/// The images a step lists (PS3.3 C.4.14: Performed Series Sequence → Referenced Image
/// Sequence), read from the merged data set. `None` when it lists none, or lists more than
/// [`MAX_IMAGES_TAKEN`] (logged): a wrong count would mislead more than no count.
pub fn images_taken(data_set: &InMemDicomObject) -> Option<Vec<ReferencedImage>> {
    let mut images = Vec::new();
    let series = data_set
        .get(tags::PERFORMED_SERIES_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or_default();
    for one in series {
        let series_uid = text(one, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        let references = one
            .get(tags::REFERENCED_IMAGE_SEQUENCE)
            .and_then(|e| e.items())
            .unwrap_or_default();
        for reference in references {
            let Some(sop_instance_uid) = text(reference, tags::REFERENCED_SOP_INSTANCE_UID) else {
                continue;
            };
            if images.len() == MAX_IMAGES_TAKEN {
                tracing::warn!(
                    "MPPS lists more than {MAX_IMAGES_TAKEN} images taken; the count is not reported"
                );
                return None;
            }
            images.push(ReferencedImage {
                sop_instance_uid,
                sop_class_uid: text(reference, tags::REFERENCED_SOP_CLASS_UID).unwrap_or_default(),
                series_instance_uid: series_uid.clone(),
            });
        }
    }
    (!images.is_empty()).then_some(images)
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
    let status =
        MppsStatus::at_create(text(data_set, tags::PERFORMED_PROCEDURE_STEP_STATUS).as_deref())?;
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
        if entry.mpps_instance_uid.is_none() && entry.advance(WorklistStatus::InProgress).is_ok() {
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
        status,
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
        images_taken: None,
    })
}

/// N-SET from `calling_ae`: merges the modifications into the stored data set; COMPLETED or
/// DISCONTINUED ends the step and its worklist item.
pub fn set(
    txn: &WriteTransaction,
    sop_instance_uid: &str,
    modifications: &InMemDicomObject,
    calling_ae: &str,
    policy: SetPolicy,
) -> Result<MppsChange, MppsError> {
    let mut table = txn.open_table(db::MPPS)?;
    let mut record: MppsRecord = db::get_json(&table, "mpps", sop_instance_uid)?
        .ok_or_else(|| MppsError::NoSuchInstance(sop_instance_uid.to_string()))?;
    record.may_be_set_by(calling_ae, policy)?;
    // An element present with no value is a bad value, not a missing one.
    let sent = modifications
        .get(tags::PERFORMED_PROCEDURE_STEP_STATUS)
        .map(|_| text(modifications, tags::PERFORMED_PROCEDURE_STEP_STATUS).unwrap_or_default());
    let new_status = record.status_after_set(sent.as_deref())?;
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
    record.status = new_status;
    let finished = match new_status {
        MppsStatus::Completed => Some(WorklistStatus::Completed),
        MppsStatus::Discontinued => Some(WorklistStatus::Discontinued),
        MppsStatus::InProgress => None,
    };
    if let Some(accession) = &record.linked_accession {
        if let Some(mut entry) = worklist::get_in(txn, accession)? {
            if entry.mpps_instance_uid.as_deref() == Some(sop_instance_uid) {
                // The step ends whatever the item says (the modality did the work), but the
                // item follows the status machine: one the cloud cancelled stays cancelled.
                match finished.map(|status| entry.advance(status)) {
                    Some(Ok(Transition::Changed)) => worklist::put(txn, &mut entry)?,
                    Some(Err(e)) => tracing::warn!(mpps = sop_instance_uid, "MPPS N-SET: {e}"),
                    Some(Ok(Transition::Unchanged)) | None => {}
                }
                linked_entry = Some(entry);
            }
        }
    }
    let images_taken = match new_status {
        MppsStatus::InProgress => None,
        MppsStatus::Completed | MppsStatus::Discontinued => images_taken(&stored),
    };
    record.updated_at = now_rfc3339();
    db::put_json(&mut table, sop_instance_uid, &record)?;
    Ok(MppsChange {
        record,
        worklist: linked_entry,
        images_taken,
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

#[cfg(test)]
mod tests {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    use super::*;
    use MppsStatus::{Completed, Discontinued, InProgress};

    /// What one request gave: the step's status, or the refusal by name.
    type Outcome = Result<MppsStatus, &'static str>;

    /// An error by its variant, so results compare in a table.
    fn kind<T>(result: Result<T, MppsError>) -> Result<T, &'static str> {
        result.map_err(|e| match e {
            MppsError::Duplicate(_) => "Duplicate",
            MppsError::NoSuchInstance(_) => "NoSuchInstance",
            MppsError::MissingAttribute(_) => "MissingAttribute",
            MppsError::InvalidValue(_) => "InvalidValue",
            MppsError::NotInProgress { .. } => "NotInProgress",
            MppsError::NotCreator { .. } => "NotCreator",
            MppsError::Db(_) => "Db",
        })
    }

    #[test]
    fn n_create_must_say_in_progress() {
        let cases: [(Option<&str>, Outcome); 8] = [
            (Some("IN PROGRESS"), Ok(InProgress)),
            (Some(" IN PROGRESS "), Ok(InProgress)),
            (Some("COMPLETED"), Err("InvalidValue")),
            (Some("DISCONTINUED"), Err("InvalidValue")),
            (Some("SCHEDULED"), Err("InvalidValue")),
            (Some("in progress"), Err("InvalidValue")),
            (Some("INPROGRESS"), Err("InvalidValue")),
            (None, Err("MissingAttribute")),
        ];
        for (value, expected) in cases {
            assert_eq!(kind(MppsStatus::at_create(value)), expected, "{value:?}");
        }
    }

    fn record(status: MppsStatus) -> MppsRecord {
        MppsRecord {
            sop_instance_uid: "1.2.3".into(),
            status,
            accession_numbers: Vec::new(),
            linked_accession: None,
            calling_ae: "MODALITY1".into(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn only_an_in_progress_step_may_change() {
        #[rustfmt::skip]
        let cases: [(MppsStatus, Option<&str>, Outcome); 19] = [
            (InProgress, None, Ok(InProgress)),
            (InProgress, Some("IN PROGRESS"), Ok(InProgress)),
            (InProgress, Some("COMPLETED"), Ok(Completed)),
            (InProgress, Some("DISCONTINUED"), Ok(Discontinued)),
            (InProgress, Some(" COMPLETED"), Ok(Completed)),
            (InProgress, Some(""), Err("InvalidValue")),
            (InProgress, Some("completed"), Err("InvalidValue")),
            (InProgress, Some("SCHEDULED"), Err("InvalidValue")),
            (InProgress, Some("DONE"), Err("InvalidValue")),
            (Completed, None, Err("NotInProgress")),
            (Completed, Some("IN PROGRESS"), Err("NotInProgress")),
            (Completed, Some("COMPLETED"), Err("NotInProgress")),
            (Completed, Some("DISCONTINUED"), Err("NotInProgress")),
            (Completed, Some("DONE"), Err("NotInProgress")),
            (Discontinued, None, Err("NotInProgress")),
            (Discontinued, Some("IN PROGRESS"), Err("NotInProgress")),
            (Discontinued, Some("COMPLETED"), Err("NotInProgress")),
            (Discontinued, Some("DISCONTINUED"), Err("NotInProgress")),
            (Discontinued, Some(""), Err("NotInProgress")),
        ];
        for (current, value, expected) in cases {
            assert_eq!(
                kind(record(current).status_after_set(value)),
                expected,
                "{current:?} + {value:?}"
            );
        }
    }

    #[test]
    fn only_the_creating_ae_may_update_unless_allowed() {
        use SetPolicy::{AnyAe, CreatorOnly};
        // The step was created by MODALITY1.
        let cases: [(&str, SetPolicy, Result<(), &str>); 6] = [
            ("MODALITY1", CreatorOnly, Ok(())),
            (" MODALITY1 ", CreatorOnly, Ok(())),
            ("MODALITY2", CreatorOnly, Err("NotCreator")),
            ("modality1", CreatorOnly, Err("NotCreator")),
            ("", CreatorOnly, Err("NotCreator")),
            ("MODALITY2", AnyAe, Ok(())),
        ];
        for (caller, policy, expected) in cases {
            assert_eq!(
                kind(record(InProgress).may_be_set_by(caller, policy)),
                expected,
                "{caller:?} {policy:?}"
            );
        }
    }

    /// One request to the redb-backed functions.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// N-CREATE with this status (none: left out), naming the accession.
        Create(Option<&'static str>),
        /// N-SET with this status (none: only other attributes).
        Set(Option<&'static str>),
        /// N-SET COMPLETED from another AE than the creator.
        SetFromOtherAe,
    }

    const UID: &str = "1.2.826.0.1.7";
    /// The accession of the item `matching::tests::entry` makes.
    const ACCESSION: &str = "ACC00001";

    fn data_set(status: Option<&str>, with_steps: bool) -> InMemDicomObject {
        let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let mut elements = vec![text(
            tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
            VR::LO,
            "screening",
        )];
        if let Some(status) = status {
            elements.push(text(tags::PERFORMED_PROCEDURE_STEP_STATUS, VR::CS, status));
        }
        if with_steps {
            let step = InMemDicomObject::from_element_iter([text(
                tags::ACCESSION_NUMBER,
                VR::SH,
                ACCESSION,
            )]);
            elements.push(DataElement::new(
                tags::SCHEDULED_STEP_ATTRIBUTES_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![step]),
            ));
        }
        InMemDicomObject::from_element_iter(elements)
    }

    /// A fresh database holding one SCHEDULED item, [`ACCESSION`].
    fn database_with_item() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("state.redb")).unwrap();
        let entry = crate::worklist::matching::tests::entry("20261122", "093000", None);
        db.write(|txn| worklist::insert(txn, &entry)).unwrap();
        (dir, db)
    }

    /// Runs `ops` against a fresh database holding one SCHEDULED item; returns each op's
    /// resulting step status (or refusal) and the item's status at the end.
    fn run(ops: &[Op]) -> (Vec<Outcome>, WorklistStatus) {
        let (_dir, db) = database_with_item();
        let results = ops
            .iter()
            .map(|op| {
                kind(db.write(|txn| match *op {
                    Op::Create(status) => create(txn, UID, &data_set(status, true), "MODALITY1"),
                    Op::Set(status) => set(
                        txn,
                        UID,
                        &data_set(status, false),
                        "MODALITY1",
                        SetPolicy::CreatorOnly,
                    ),
                    Op::SetFromOtherAe => set(
                        txn,
                        UID,
                        &data_set(Some("COMPLETED"), false),
                        "INTRUDER",
                        SetPolicy::CreatorOnly,
                    ),
                }))
                .map(|change| change.record.status)
            })
            .collect();
        let item = worklist::get(&db, ACCESSION).unwrap().unwrap();
        (results, item.status)
    }

    #[test]
    fn steps_end_once_and_finish_their_item() {
        use Op::{Create, Set, SetFromOtherAe};
        use WorklistStatus as W;
        let ip = Some("IN PROGRESS");
        let done = Some("COMPLETED");
        let stop = Some("DISCONTINUED");
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Op>, Vec<Outcome>, WorklistStatus)> = vec![
            ("create links the item",
                vec![Create(ip)], vec![Ok(InProgress)], W::InProgress),
            ("IN PROGRESS → COMPLETED",
                vec![Create(ip), Set(done)], vec![Ok(InProgress), Ok(Completed)], W::Completed),
            ("IN PROGRESS → DISCONTINUED",
                vec![Create(ip), Set(stop)], vec![Ok(InProgress), Ok(Discontinued)], W::Discontinued),
            ("updates that keep it IN PROGRESS",
                vec![Create(ip), Set(None), Set(ip), Set(done)],
                vec![Ok(InProgress), Ok(InProgress), Ok(InProgress), Ok(Completed)], W::Completed),
            ("nothing after COMPLETED",
                vec![Create(ip), Set(done), Set(ip), Set(stop), Set(done), Set(None)],
                vec![Ok(InProgress), Ok(Completed), Err("NotInProgress"), Err("NotInProgress"),
                     Err("NotInProgress"), Err("NotInProgress")], W::Completed),
            ("nothing after DISCONTINUED",
                vec![Create(ip), Set(stop), Set(done), Set(None)],
                vec![Ok(InProgress), Ok(Discontinued), Err("NotInProgress"), Err("NotInProgress")],
                W::Discontinued),
            ("a bad status text is refused and the step stays open",
                vec![Create(ip), Set(Some("DONE")), Set(Some("")), Set(done)],
                vec![Ok(InProgress), Err("InvalidValue"), Err("InvalidValue"), Ok(Completed)],
                W::Completed),
            ("N-CREATE COMPLETED creates nothing",
                vec![Create(done), Set(done)], vec![Err("InvalidValue"), Err("NoSuchInstance")],
                W::Scheduled),
            ("N-CREATE without a status creates nothing",
                vec![Create(None), Set(None)], vec![Err("MissingAttribute"), Err("NoSuchInstance")],
                W::Scheduled),
            ("N-CREATE with a bad status creates nothing",
                vec![Create(Some("STARTED"))], vec![Err("InvalidValue")], W::Scheduled),
            ("a second N-CREATE of the same instance",
                vec![Create(ip), Create(ip)], vec![Ok(InProgress), Err("Duplicate")], W::InProgress),
            ("N-SET of an unknown instance",
                vec![Set(done)], vec![Err("NoSuchInstance")], W::Scheduled),
            ("another AE cannot end the step; its creator still can",
                vec![Create(ip), SetFromOtherAe, Set(done)],
                vec![Ok(InProgress), Err("NotCreator"), Ok(Completed)], W::Completed),
        ];
        for (name, ops, expected, item_status) in cases {
            assert_eq!(run(&ops), (expected, item_status), "{name}");
        }
    }

    /// A Performed Series Sequence: each series with the (class, instance) UIDs it references.
    fn performed(series: &[(&str, &[(&str, &str)])]) -> InMemDicomObject {
        let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let items = series
            .iter()
            .map(|(uid, images)| {
                let references = images
                    .iter()
                    .map(|(class, sop)| {
                        let mut elements = Vec::new();
                        if !class.is_empty() {
                            elements.push(text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class));
                        }
                        if !sop.is_empty() {
                            elements.push(text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop));
                        }
                        InMemDicomObject::from_element_iter(elements)
                    })
                    .collect::<Vec<_>>();
                InMemDicomObject::from_element_iter([
                    text(tags::SERIES_INSTANCE_UID, VR::UI, uid),
                    DataElement::new(
                        tags::REFERENCED_IMAGE_SEQUENCE,
                        VR::SQ,
                        DataSetSequence::from(references),
                    ),
                ])
            })
            .collect::<Vec<_>>();
        InMemDicomObject::from_element_iter([DataElement::new(
            tags::PERFORMED_SERIES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(items),
        )])
    }

    #[test]
    fn the_images_taken_are_read_from_every_performed_series() {
        let image = |sop: &str, class: &str, series: &str| ReferencedImage {
            sop_instance_uid: sop.into(),
            sop_class_uid: class.into(),
            series_instance_uid: series.into(),
        };
        let mg = "1.2.840.10008.5.1.4.1.1.1.2";
        #[rustfmt::skip]
        let cases: Vec<(&str, InMemDicomObject, Option<Vec<ReferencedImage>>)> = vec![
            ("no Performed Series Sequence", InMemDicomObject::new_empty(), None),
            ("a series that references nothing", performed(&[("9.1", &[])]), None),
            ("two series", performed(&[("9.1", &[(mg, "1.1"), (mg, "1.2")]), ("9.2", &[(mg, "1.3")])]),
                Some(vec![image("1.1", mg, "9.1"), image("1.2", mg, "9.1"), image("1.3", mg, "9.2")])),
            ("a reference without an instance UID is skipped",
                performed(&[("9.1", &[(mg, ""), ("", "1.4")])]), Some(vec![image("1.4", "", "9.1")])),
        ];
        for (name, data_set, expected) in cases {
            assert_eq!(images_taken(&data_set), expected, "{name}");
        }
        let many: Vec<(&str, &str)> = vec![(mg, "1.5"); MAX_IMAGES_TAKEN + 1];
        assert_eq!(
            images_taken(&performed(&[("9.1", &many)])),
            None,
            "an implausible count"
        );
    }

    #[test]
    fn completed_reports_the_images_of_the_merged_data_set() {
        let (_dir, db) = database_with_item();
        let mg = "1.2.840.10008.5.1.4.1.1.1.2";
        let change = |ops: &dyn Fn(&WriteTransaction) -> Result<MppsChange, MppsError>| {
            db.write(|txn| ops(txn)).unwrap()
        };
        let created = change(&|txn| create(txn, UID, &data_set(Some("IN PROGRESS"), true), "M"));
        assert_eq!(created.images_taken, None);
        // The images come in an N-SET that leaves the step IN PROGRESS…
        let listed = change(&|txn| {
            set(
                txn,
                UID,
                &performed(&[("9.1", &[(mg, "1.1")])]),
                "M",
                SetPolicy::CreatorOnly,
            )
        });
        assert_eq!(listed.images_taken, None, "reported when the step ends");
        // …and are reported by the N-SET that completes it, which lists none itself.
        let done = change(&|txn| {
            set(
                txn,
                UID,
                &data_set(Some("COMPLETED"), false),
                "M",
                SetPolicy::CreatorOnly,
            )
        });
        let taken = done
            .images_taken
            .expect("the merged data set lists one image");
        assert_eq!(taken[0].sop_instance_uid, "1.1");
        assert_eq!(
            done.worklist.map(|w| w.status),
            Some(WorklistStatus::Completed)
        );
    }

    #[test]
    fn a_cancelled_item_stays_cancelled_when_its_step_completes() {
        let (_dir, db) = database_with_item();
        db.write(|txn| create(txn, UID, &data_set(Some("IN PROGRESS"), true), "M"))
            .unwrap();
        db.write(|txn| worklist::set_status(txn, ACCESSION, WorklistStatus::Discontinued))
            .unwrap();
        let done = db
            .write(|txn| {
                set(
                    txn,
                    UID,
                    &data_set(Some("COMPLETED"), false),
                    "M",
                    SetPolicy::CreatorOnly,
                )
            })
            .unwrap();
        assert_eq!(done.record.status, Completed, "the step itself ends");
        let item = done
            .worklist
            .expect("still linked, so the event names its action");
        assert_eq!(item.status, WorklistStatus::Discontinued);
    }

    #[test]
    fn a_step_without_scheduled_step_attributes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("state.redb")).unwrap();
        let result = db.write(|txn| create(txn, UID, &data_set(Some("IN PROGRESS"), false), "M"));
        assert_eq!(
            kind(result.map(|c| c.record.status)),
            Err("MissingAttribute")
        );
    }
}
