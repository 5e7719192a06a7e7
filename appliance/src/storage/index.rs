//! The image index: what the gateway knows about each stored instance, its series and study.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::{self, DbError};

/// One stored object: the UIDs that place it, what its data set says, and its file. Dose and
/// geometry attributes are kept because the screening app reports them per view without
/// reopening the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    /// Stored flat, beside the other fields, as records always were.
    #[serde(flatten)]
    pub data_set: DataSetFacts,
    pub transfer_syntax: String,
    /// Store-relative path, `hh/hh/<hash>.dcm`.
    pub file_path: String,
    pub file_size: u64,
    /// SHA-256 of the stored file.
    pub file_sha256: String,
    /// RFC 3339.
    pub received_at: String,
    pub calling_ae: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<String>,
    pub instance_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub study_instance_uid: String,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    pub study_date: Option<String>,
    pub instance_count: u64,
}

/// The attributes read from a received object that the index needs.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_number: Option<String>,
    pub study_date: Option<String>,
    pub data_set: DataSetFacts,
}

/// Everything of an [`InstanceRecord`] that comes from the data set. The dose fields have the
/// wire's names (`shared::wire::event::Dose`); the aliases read records written before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSetFacts {
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    pub modality: Option<String>,
    pub view_position: Option<String>,
    /// The first View Code Sequence item's meaning, e.g. "cranio-caudal".
    pub view_code: Option<String>,
    pub image_laterality: Option<String>,
    pub kvp: Option<f64>,
    /// Exposure in µAs when sent, else mAs × 1000.
    pub exposure_uas: Option<f64>,
    pub exposure_time_ms: Option<f64>,
    pub organ_dose_dgy: Option<f64>,
    pub entrance_dose_mgy: Option<f64>,
    /// Body Part Thickness: the compressed breast thickness, mm.
    #[serde(alias = "compression_thickness_mm")]
    pub body_part_thickness_mm: Option<f64>,
    pub compression_force_n: Option<f64>,
    /// Anode Target Material.
    #[serde(alias = "anode_target_material")]
    pub anode: Option<String>,
    /// Filter Material.
    #[serde(alias = "filter_material")]
    pub filter: Option<String>,
    pub rows: Option<u16>,
    pub columns: Option<u16>,
    // Kept for Study Root Query/Retrieve (`services::qr_find`), so a query reads the index and
    // never a file. Records stored before these existed read them as absent.
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_id: Option<String>,
    pub study_description: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub series_number: Option<String>,
    pub series_description: Option<String>,
    pub instance_number: Option<String>,
}

/// The four UIDs that place an instance, all required to index it.
#[derive(Debug, Clone)]
pub struct Uids {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_instance_uid: String,
    pub study_instance_uid: String,
}

/// Facts about the stored file rather than the data set.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub transfer_syntax: String,
    pub file_path: String,
    pub file_size: u64,
    pub file_sha256: String,
    pub received_at: String,
    pub calling_ae: String,
}

impl InstanceRecord {
    /// Joins the data set's attributes with its file: the one place the record is assembled,
    /// for a fresh store and for a start-up re-index alike.
    pub fn new(uids: Uids, data_set: DataSetFacts, file: FileFacts) -> InstanceRecord {
        InstanceRecord {
            sop_instance_uid: uids.sop_instance_uid,
            sop_class_uid: uids.sop_class_uid,
            series_instance_uid: uids.series_instance_uid,
            study_instance_uid: uids.study_instance_uid,
            data_set,
            transfer_syntax: file.transfer_syntax,
            file_path: file.file_path,
            file_size: file.file_size,
            file_sha256: file.file_sha256,
            received_at: file.received_at,
            calling_ae: file.calling_ae,
        }
    }
}

/// Trimmed text of an element, `None` when absent or empty.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(['\0', ' ']);
    (!value.is_empty()).then(|| value.to_string())
}

fn number(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    text(obj, tag)?.split('\\').next()?.trim().parse().ok()
}

fn unsigned(obj: &InMemDicomObject, tag: Tag) -> Option<u16> {
    obj.get(tag)?.to_int::<u16>().ok()
}

impl Attributes {
    /// Every top-level element [`Attributes::read`] looks at, in tag order, and the character
    /// set their text is in: the store keeps copies of these as an object arrives
    /// (`storage::incoming`) and reads them, never the whole object.
    pub const TAGS: &'static [Tag] = &[
        tags::SPECIFIC_CHARACTER_SET,
        tags::SOP_CLASS_UID,
        tags::SOP_INSTANCE_UID,
        tags::STUDY_DATE,
        tags::STUDY_TIME,
        tags::ACCESSION_NUMBER,
        tags::MODALITY,
        tags::STUDY_DESCRIPTION,
        tags::SERIES_DESCRIPTION,
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::PATIENT_BIRTH_DATE,
        tags::PATIENT_SEX,
        tags::KVP,
        tags::EXPOSURE_TIME,
        tags::EXPOSURE,
        tags::EXPOSURE_INU_AS,
        tags::ANODE_TARGET_MATERIAL,
        tags::BODY_PART_THICKNESS,
        tags::COMPRESSION_FORCE,
        tags::VIEW_POSITION,
        tags::FILTER_MATERIAL,
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::STUDY_ID,
        tags::SERIES_NUMBER,
        tags::INSTANCE_NUMBER,
        tags::LATERALITY,
        tags::IMAGE_LATERALITY,
        tags::ROWS,
        tags::COLUMNS,
        tags::ORGAN_DOSE,
        tags::ENTRANCE_DOSE_INM_GY,
        tags::VIEW_CODE_SEQUENCE,
    ];

    pub fn read(obj: &InMemDicomObject) -> Attributes {
        let exposure_uas = number(obj, tags::EXPOSURE_INU_AS)
            .or_else(|| number(obj, tags::EXPOSURE).map(|mas| mas * 1000.0));
        let view_code = obj
            .get(tags::VIEW_CODE_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|items| items.first())
            .and_then(|item| text(item, tags::CODE_MEANING));
        Attributes {
            sop_instance_uid: text(obj, tags::SOP_INSTANCE_UID),
            sop_class_uid: text(obj, tags::SOP_CLASS_UID),
            series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
            study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
            series_number: text(obj, tags::SERIES_NUMBER),
            study_date: text(obj, tags::STUDY_DATE),
            data_set: DataSetFacts {
                patient_id: text(obj, tags::PATIENT_ID),
                patient_name: text(obj, tags::PATIENT_NAME),
                accession_number: text(obj, tags::ACCESSION_NUMBER),
                modality: text(obj, tags::MODALITY),
                view_position: text(obj, tags::VIEW_POSITION),
                view_code,
                image_laterality: text(obj, tags::IMAGE_LATERALITY)
                    .or_else(|| text(obj, tags::LATERALITY)),
                kvp: number(obj, tags::KVP),
                exposure_uas,
                exposure_time_ms: number(obj, tags::EXPOSURE_TIME),
                organ_dose_dgy: number(obj, tags::ORGAN_DOSE),
                entrance_dose_mgy: number(obj, tags::ENTRANCE_DOSE_INM_GY),
                body_part_thickness_mm: number(obj, tags::BODY_PART_THICKNESS),
                compression_force_n: number(obj, tags::COMPRESSION_FORCE),
                anode: text(obj, tags::ANODE_TARGET_MATERIAL),
                filter: text(obj, tags::FILTER_MATERIAL),
                rows: unsigned(obj, tags::ROWS),
                columns: unsigned(obj, tags::COLUMNS),
                study_date: text(obj, tags::STUDY_DATE),
                study_time: text(obj, tags::STUDY_TIME),
                study_id: text(obj, tags::STUDY_ID),
                study_description: text(obj, tags::STUDY_DESCRIPTION),
                patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
                patient_sex: text(obj, tags::PATIENT_SEX),
                series_number: text(obj, tags::SERIES_NUMBER),
                series_description: text(obj, tags::SERIES_DESCRIPTION),
                instance_number: text(obj, tags::INSTANCE_NUMBER),
            },
        }
    }
}

/// Whether an instance is already indexed.
pub fn contains(txn: &WriteTransaction, sop_instance_uid: &str) -> Result<bool, DbError> {
    let table = txn.open_table(db::INSTANCES)?;
    let found = table.get(sop_instance_uid)?.is_some();
    Ok(found)
}

/// Whether an instance is indexed, in a read snapshot (no write lock taken).
pub fn is_indexed(db: &db::Database, sop_instance_uid: &str) -> Result<bool, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::INSTANCES)?;
    let found = table.get(sop_instance_uid)?.is_some();
    Ok(found)
}

/// Looks an instance up in a read snapshot.
pub fn get_instance(
    db: &db::Database,
    sop_instance_uid: &str,
) -> Result<Option<InstanceRecord>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::INSTANCES)?;
    db::get_json(&table, "instances", sop_instance_uid)
}

/// Every indexed instance `keep` accepts, from one read snapshot (Study Root C-FIND, C-GET and
/// C-MOVE). A record that does not decode is skipped with a log line rather than failing the
/// query for everyone else's images.
pub fn find_instances(
    db: &db::Database,
    mut keep: impl FnMut(&InstanceRecord) -> bool,
) -> Result<Vec<InstanceRecord>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::INSTANCES)?;
    let mut found = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        match serde_json::from_slice::<InstanceRecord>(value.value()) {
            Ok(record) if keep(&record) => found.push(record),
            Ok(_) => {}
            Err(e) => tracing::error!(key = key.value(), "unreadable instance record skipped: {e}"),
        }
    }
    Ok(found)
}

/// Adds an instance and updates its series and study, in the caller's transaction.
pub fn insert(
    txn: &WriteTransaction,
    record: &InstanceRecord,
    series_number: Option<String>,
    study_date: Option<String>,
) -> Result<(), DbError> {
    let mut instances = txn.open_table(db::INSTANCES)?;
    db::put_json(&mut instances, &record.sop_instance_uid, record)?;

    let mut series_table = txn.open_table(db::SERIES)?;
    let mut series: SeriesRecord =
        db::get_json(&series_table, "series", &record.series_instance_uid)?.unwrap_or(
            SeriesRecord {
                series_instance_uid: record.series_instance_uid.clone(),
                study_instance_uid: record.study_instance_uid.clone(),
                modality: record.data_set.modality.clone(),
                series_number,
                instance_count: 0,
            },
        );
    series.instance_count += 1;
    db::put_json(&mut series_table, &record.series_instance_uid, &series)?;

    let mut studies = txn.open_table(db::STUDIES)?;
    let mut study: StudyRecord = db::get_json(&studies, "studies", &record.study_instance_uid)?
        .unwrap_or(StudyRecord {
            study_instance_uid: record.study_instance_uid.clone(),
            patient_id: record.data_set.patient_id.clone(),
            patient_name: record.data_set.patient_name.clone(),
            accession_number: record.data_set.accession_number.clone(),
            study_date,
            instance_count: 0,
        });
    study.instance_count += 1;
    db::put_json(&mut studies, &record.study_instance_uid, &study)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the gateway stored it before the dose fields took the wire's names, with the
    /// data-set fields among the others.
    const OLD_RECORD: &str = r#"{"sop_instance_uid":"1.2.3.4","sop_class_uid":"1.2.840.10008.5.1.4.1.1.1.2","series_instance_uid":"1.2.3","study_instance_uid":"1.2","patient_id":"9434765919","patient_name":"SMITH^JANE","accession_number":"ACC1","modality":"MG","view_position":"CC","view_code":"cranio-caudal","image_laterality":"L","kvp":28.0,"exposure_uas":120000.0,"exposure_time_ms":null,"organ_dose_dgy":1.25,"entrance_dose_mgy":5.1,"compression_thickness_mm":52.0,"compression_force_n":null,"anode_target_material":"TUNGSTEN","filter_material":"RHODIUM","transfer_syntax":"1.2.840.10008.1.2.1","rows":4096,"columns":3328,"file_path":"ab/cd/abcd.dcm","file_size":1234,"file_sha256":"00ff","received_at":"2026-11-22T09:30:00Z","calling_ae":"MODALITY1"}"#;

    #[test]
    fn a_record_stored_by_an_earlier_version_still_decodes() {
        let record: InstanceRecord = serde_json::from_str(OLD_RECORD).unwrap();
        assert_eq!(record.sop_instance_uid, "1.2.3.4");
        assert_eq!(record.file_size, 1234);
        assert_eq!(record.calling_ae, "MODALITY1");
        let facts = &record.data_set;
        assert_eq!(facts.accession_number.as_deref(), Some("ACC1"));
        assert_eq!(facts.view_code.as_deref(), Some("cranio-caudal"));
        assert_eq!(facts.kvp, Some(28.0));
        assert_eq!(facts.exposure_time_ms, None);
        assert_eq!(facts.body_part_thickness_mm, Some(52.0));
        assert_eq!(facts.anode.as_deref(), Some("TUNGSTEN"));
        assert_eq!(facts.filter.as_deref(), Some("RHODIUM"));
        assert_eq!((facts.rows, facts.columns), (Some(4096), Some(3328)));
    }

    #[test]
    fn a_record_is_stored_flat_under_the_wire_names_and_reads_back() {
        let record: InstanceRecord = serde_json::from_str(OLD_RECORD).unwrap();
        let stored = serde_json::to_value(&record).unwrap();
        assert!(stored.get("data_set").is_none(), "{stored}");
        assert_eq!(stored["accession_number"], "ACC1");
        assert_eq!(stored["body_part_thickness_mm"], 52.0);
        assert_eq!(stored["anode"], "TUNGSTEN");
        assert_eq!(stored["filter"], "RHODIUM");
        assert!(stored.get("compression_thickness_mm").is_none());
        let read: InstanceRecord = serde_json::from_value(stored).unwrap();
        assert_eq!(read, record);
    }
}
