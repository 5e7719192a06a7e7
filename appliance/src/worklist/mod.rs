//! Worklist items: what the modalities are offered, and their scheduled-step status.
//!
//! Domain only: no DIMSE types. State changes take the caller's redb [`WriteTransaction`] so the
//! caller can record an event in the same commit.

pub mod matching;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::wire::action::{Participant, Procedure, Scheduled, WorklistItem, WorklistStatus};
use thiserror::Error;
use uuid::Uuid;

use crate::db::{self, Database, DbError};
use crate::storage::now_rfc3339;

pub use matching::Query;

/// A worklist item as the gateway keeps it: the cloud's [`WorklistItem`] plus what the gateway
/// assigns and tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorklistEntry {
    pub accession_number: String,
    pub participant: Participant,
    pub scheduled: Scheduled,
    pub procedure: Procedure,
    pub status: WorklistStatus,
    /// Generated once when the item is created, so every query and every image agree on it.
    pub study_instance_uid: String,
    pub requested_procedure_id: String,
    pub scheduled_procedure_step_id: String,
    /// The modality AE the step is scheduled on; `None` offers it to every station.
    pub scheduled_station_ae: Option<String>,
    /// The cloud action that created the item, when it came through the relay.
    pub action_id: Option<Uuid>,
    /// The MPPS instance that performs this step, once an N-CREATE names the accession.
    pub mpps_instance_uid: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Why a worklist change was refused.
#[derive(Debug, Error)]
pub enum WorklistError {
    #[error("worklist item {0} already exists")]
    Duplicate(String),
    #[error("no worklist item {0}")]
    NotFound(String),
    #[error("invalid worklist item: {0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<redb::TableError> for WorklistError {
    fn from(e: redb::TableError) -> Self {
        WorklistError::Db(e.into())
    }
}

/// A DICOM UID from a random UUID (the `2.25.` root, PS3.5 B.2): unique without a registered
/// organisation root.
pub fn new_uid() -> String {
    format!("2.25.{}", Uuid::new_v4().as_u128())
}

impl WorklistEntry {
    /// A new SCHEDULED entry for a cloud item.
    pub fn new(
        item: WorklistItem,
        action_id: Option<Uuid>,
        station_ae: Option<String>,
    ) -> Result<WorklistEntry, WorklistError> {
        validate(&item)?;
        let now = now_rfc3339();
        Ok(WorklistEntry {
            requested_procedure_id: item.accession_number.clone(),
            scheduled_procedure_step_id: item.accession_number.clone(),
            accession_number: item.accession_number,
            participant: item.participant,
            scheduled: item.scheduled,
            procedure: item.procedure,
            status: WorklistStatus::Scheduled,
            study_instance_uid: new_uid(),
            scheduled_station_ae: station_ae,
            action_id,
            mpps_instance_uid: None,
            created_at: now.clone(),
            updated_at: now,
        })
    }

    /// Whether modalities are offered this item (PS3.4 K: only steps still to be done).
    pub fn is_offered(&self) -> bool {
        matches!(
            self.status,
            WorklistStatus::Scheduled | WorklistStatus::InProgress
        )
    }
}

fn validate(item: &WorklistItem) -> Result<(), WorklistError> {
    let bad = |why: String| Err(WorklistError::Invalid(why));
    let a = &item.accession_number;
    if a.is_empty() || a.len() > 16 || a.contains(['\\', '*', '?']) {
        return bad(format!(
            "accession number {a:?} must be 1–16 characters, no \\ * ?"
        ));
    }
    if item.participant.nhs_number.is_empty() || item.participant.nhs_number.len() > 64 {
        return bad("patient id (NHS number) must be 1–64 characters".into());
    }
    for (what, v, len) in [
        ("birth date", &item.participant.birth_date, 8),
        ("scheduled date", &item.scheduled.date, 8),
    ] {
        if !v.is_empty() && (v.len() != len || !v.bytes().all(|b| b.is_ascii_digit())) {
            return bad(format!("{what} {v:?} must be YYYYMMDD"));
        }
    }
    let t = &item.scheduled.time;
    if !t.is_empty() && (t.len() < 4 || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.')) {
        return bad(format!("scheduled time {t:?} must be HHMM[SS]"));
    }
    Ok(())
}

/// Adds a new item in the caller's transaction.
pub fn insert(txn: &WriteTransaction, entry: &WorklistEntry) -> Result<(), WorklistError> {
    let mut table = txn.open_table(db::WORKLIST)?;
    if table
        .get(entry.accession_number.as_str())
        .map_err(DbError::from)?
        .is_some()
    {
        return Err(WorklistError::Duplicate(entry.accession_number.clone()));
    }
    db::put_json(&mut table, &entry.accession_number, entry)?;
    Ok(())
}

/// Reads an item inside a write transaction.
pub fn get_in(
    txn: &WriteTransaction,
    accession_number: &str,
) -> Result<Option<WorklistEntry>, DbError> {
    let table = txn.open_table(db::WORKLIST)?;
    db::get_json(&table, "worklist", accession_number)
}

/// Replaces an item, stamping `updated_at`.
pub fn put(txn: &WriteTransaction, entry: &mut WorklistEntry) -> Result<(), DbError> {
    entry.updated_at = now_rfc3339();
    let mut table = txn.open_table(db::WORKLIST)?;
    db::put_json(&mut table, &entry.accession_number, entry)
}

/// Sets an item's status (the relay's `worklist.update_status` / `cancel_item`).
pub fn set_status(
    txn: &WriteTransaction,
    accession_number: &str,
    status: WorklistStatus,
) -> Result<WorklistEntry, WorklistError> {
    let mut entry = get_in(txn, accession_number)?
        .ok_or_else(|| WorklistError::NotFound(accession_number.to_string()))?;
    entry.status = status;
    put(txn, &mut entry)?;
    Ok(entry)
}

/// An image for this accession arrived: a SCHEDULED item is now IN PROGRESS. Its MPPS link is
/// left open, so an N-CREATE that comes after the images still links (the NHS gateway loses it).
pub fn note_image_received(
    txn: &WriteTransaction,
    accession_number: &str,
) -> Result<Option<WorklistEntry>, DbError> {
    let Some(mut entry) = get_in(txn, accession_number)? else {
        return Ok(None);
    };
    if entry.status != WorklistStatus::Scheduled {
        return Ok(None);
    }
    entry.status = WorklistStatus::InProgress;
    put(txn, &mut entry)?;
    Ok(Some(entry))
}

/// Reads one item from a snapshot.
pub fn get(db: &Database, accession_number: &str) -> Result<Option<WorklistEntry>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::WORKLIST)?;
    db::get_json(&table, "worklist", accession_number)
}

/// Every item as it is stored, one JSON text each, in accession-number order (`gateway worklist
/// list`). The text is not decoded, so a record this version cannot read is still shown.
pub fn stored_json(db: &Database) -> Result<Vec<String>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::WORKLIST)?;
    let mut items = Vec::new();
    for row in table.iter()? {
        let (_, value) = row?;
        items.push(String::from_utf8_lossy(value.value()).into_owned());
    }
    Ok(items)
}

/// Items offered to modalities that match `query`, in scheduled order. An exact accession
/// number is a point lookup; everything else scans (thousands of items, not millions).
pub fn find(db: &Database, query: &Query) -> Result<Vec<WorklistEntry>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::WORKLIST)?;
    let mut found = Vec::new();
    if let Some(accession) = query.exact_accession() {
        if let Some(entry) = db::get_json::<WorklistEntry, _>(&table, "worklist", &accession)? {
            if entry.is_offered() && query.matches(&entry) {
                found.push(entry);
            }
        }
        return Ok(found);
    }
    for row in table.iter()? {
        let (key, value) = row?;
        let entry: WorklistEntry =
            serde_json::from_slice(value.value()).map_err(|source| DbError::Corrupt {
                table: "worklist",
                key: key.value().to_string(),
                source,
            })?;
        if entry.is_offered() && query.matches(&entry) {
            found.push(entry);
        }
    }
    found.sort_by(|a, b| {
        (&a.scheduled.date, &a.scheduled.time, &a.accession_number).cmp(&(
            &b.scheduled.date,
            &b.scheduled.time,
            &b.accession_number,
        ))
    });
    Ok(found)
}
