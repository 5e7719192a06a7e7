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

pub use matching::{status_text, Query};

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
    #[error("worklist item {accession} is {} and cannot become {}", status_text(*.from), status_text(*.to))]
    Transition {
        accession: String,
        from: WorklistStatus,
        to: WorklistStatus,
    },
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

    /// Moves the item to `to` if the status machine allows it ([`transition`]); the caller
    /// stores the entry.
    pub fn advance(&mut self, to: WorklistStatus) -> Result<Transition, WorklistError> {
        let step = transition(self.status, to).ok_or_else(|| WorklistError::Transition {
            accession: self.accession_number.clone(),
            from: self.status,
            to,
        })?;
        self.status = to;
        Ok(step)
    }

    /// Whether modalities are offered this item (PS3.4 K: only steps still to be done).
    pub fn is_offered(&self) -> bool {
        matches!(
            self.status,
            WorklistStatus::Scheduled | WorklistStatus::InProgress
        )
    }
}

/// What an allowed status change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Changed,
    /// The item already had that status: an idempotent no-op, so retries are safe.
    Unchanged,
}

/// The scheduled-step status machine: SCHEDULED → IN PROGRESS → COMPLETED | DISCONTINUED, and
/// SCHEDULED → DISCONTINUED (cancelled before it started). COMPLETED and DISCONTINUED are final,
/// so no late or replayed message can put a finished or cancelled participant back on the
/// worklist. `None`: not allowed.
pub fn transition(from: WorklistStatus, to: WorklistStatus) -> Option<Transition> {
    use WorklistStatus::{Completed, Discontinued, InProgress, Scheduled};
    match (from, to) {
        _ if from == to => Some(Transition::Unchanged),
        (Scheduled, InProgress | Discontinued) | (InProgress, Completed | Discontinued) => {
            Some(Transition::Changed)
        }
        _ => None,
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
    // Type 1 return keys of a worklist C-FIND (PS3.4 Table K.6-1) come from these: a modality
    // must never be offered an item with one of them empty.
    for (what, v) in [
        ("participant name", &item.participant.name),
        ("modality", &item.procedure.modality),
        ("study description", &item.procedure.study_description),
        ("scheduled date", &item.scheduled.date),
        ("scheduled time", &item.scheduled.time),
    ] {
        if v.trim().is_empty() {
            return bad(format!("{what} must not be empty"));
        }
    }
    let is_date = |v: &str| v.len() == 8 && v.bytes().all(|c| c.is_ascii_digit());
    let birth = &item.participant.birth_date;
    if !birth.is_empty() && !is_date(birth) {
        return bad(format!("birth date {birth:?} must be YYYYMMDD"));
    }
    let date = &item.scheduled.date;
    if !is_date(date) {
        return bad(format!("scheduled date {date:?} must be YYYYMMDD"));
    }
    let t = &item.scheduled.time;
    if t.len() < 4 || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
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

/// Sets an item's status (the relay's `worklist.update_status` / `cancel_item`) through the
/// status machine: a change it does not allow is refused, the same status again changes nothing.
pub fn set_status(
    txn: &WriteTransaction,
    accession_number: &str,
    status: WorklistStatus,
) -> Result<(WorklistEntry, Transition), WorklistError> {
    let mut entry = get_in(txn, accession_number)?
        .ok_or_else(|| WorklistError::NotFound(accession_number.to_string()))?;
    let step = entry.advance(status)?;
    if step == Transition::Changed {
        put(txn, &mut entry)?;
    }
    Ok((entry, step))
}

/// An image for this accession arrived: a SCHEDULED item is now IN PROGRESS. Its MPPS link is
/// left open, so an N-CREATE that comes after the images still links (the NHS gateway loses it).
/// An image for a finished or cancelled item is still stored; the item keeps its status.
pub fn note_image_received(
    txn: &WriteTransaction,
    accession_number: &str,
) -> Result<Option<WorklistEntry>, DbError> {
    let Some(mut entry) = get_in(txn, accession_number)? else {
        return Ok(None);
    };
    match entry.advance(WorklistStatus::InProgress) {
        Ok(Transition::Changed) => {
            put(txn, &mut entry)?;
            Ok(Some(entry))
        }
        Ok(Transition::Unchanged) => Ok(None),
        Err(e) => {
            tracing::warn!(
                accession = accession_number,
                "image received: {e}; status kept"
            );
            Ok(None)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use WorklistStatus::{Completed, Discontinued, InProgress, Scheduled};

    #[test]
    fn the_status_machine_only_moves_forward() {
        use Transition::{Changed, Unchanged};
        #[rustfmt::skip]
        let cases: [(WorklistStatus, WorklistStatus, Option<Transition>); 16] = [
            (Scheduled, Scheduled, Some(Unchanged)),
            (Scheduled, InProgress, Some(Changed)),
            (Scheduled, Completed, None),
            (Scheduled, Discontinued, Some(Changed)),
            (InProgress, Scheduled, None),
            (InProgress, InProgress, Some(Unchanged)),
            (InProgress, Completed, Some(Changed)),
            (InProgress, Discontinued, Some(Changed)),
            (Completed, Scheduled, None),
            (Completed, InProgress, None),
            (Completed, Completed, Some(Unchanged)),
            (Completed, Discontinued, None),
            (Discontinued, Scheduled, None),
            (Discontinued, InProgress, None),
            (Discontinued, Completed, None),
            (Discontinued, Discontinued, Some(Unchanged)),
        ];
        for (from, to, expected) in cases {
            assert_eq!(transition(from, to), expected, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn a_refused_change_names_the_item_and_both_statuses() {
        let mut entry = matching::tests::entry("20261122", "093000", None);
        entry.advance(InProgress).unwrap();
        entry.advance(Completed).unwrap();
        let e = entry.advance(Scheduled).unwrap_err();
        assert_eq!(
            e.to_string(),
            "worklist item ACC00001 is COMPLETED and cannot become SCHEDULED"
        );
        assert_eq!(
            entry.status, Completed,
            "a refused change leaves the status"
        );
    }

    #[test]
    fn items_without_a_type_1_value_are_refused() {
        let good = matching::tests::entry("20261122", "093000", None);
        let item = |change: fn(&mut WorklistItem)| {
            let mut item = WorklistItem {
                accession_number: good.accession_number.clone(),
                participant: good.participant.clone(),
                scheduled: good.scheduled.clone(),
                procedure: good.procedure.clone(),
            };
            change(&mut item);
            validate(&item).map_err(|e| e.to_string())
        };
        assert_eq!(item(|_| {}), Ok(()));
        /// A change that empties or breaks one field, and the end of the refusal.
        type Case = (fn(&mut WorklistItem), &'static str);
        #[rustfmt::skip]
        let cases: [Case; 7] = [
            (|i| i.participant.name = " ".into(), "participant name must not be empty"),
            (|i| i.procedure.modality.clear(), "modality must not be empty"),
            (|i| i.procedure.study_description.clear(), "study description must not be empty"),
            (|i| i.scheduled.date.clear(), "scheduled date must not be empty"),
            (|i| i.scheduled.time.clear(), "scheduled time must not be empty"),
            (|i| i.scheduled.date = "2026-11-22".into(), "scheduled date \"2026-11-22\" must be YYYYMMDD"),
            (|i| i.participant.birth_date = "1970".into(), "birth date \"1970\" must be YYYYMMDD"),
        ];
        for (change, message) in cases {
            let e = item(change).unwrap_err();
            assert!(e.ends_with(message), "{e}");
        }
    }
}
