//! Which state changes the cloud hears about, and how they read as events. Called inside the
//! transaction of the change itself, so the change and its event commit together.

use redb::WriteTransaction;
use shared::wire::event::{Event, EventBody, MppsStatus as WireStatus, MppsStatusUpdate};

use crate::db::DbError;
use crate::mpps::{MppsChange, MppsStatus};
use crate::outbox;

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
        }),
    );
    outbox::enqueue(txn, event, &accession)?;
    Ok(())
}
