//! The durable forwarding queue: per destination, the objects still to send, oldest first, and
//! what became of each sent one (forwarded, or failed with the reason).

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::wire::event::ArchiveState;

use super::Destination;
use crate::db::{now_ms, Database, DbError, FORWARD_QUEUE, FORWARD_RESULTS};
use crate::storage::index::InstanceRecord;

/// One object waiting to be sent to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub study_instance_uid: String,
    pub transfer_syntax: String,
    /// Relative to the store's root, as in the index.
    pub file_path: String,
    pub queued_at_ms: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What became of one object at one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// The PACS answered success (or a warning, which still stores the object).
    Forwarded { at_ms: u64, status: u16 },
    /// The PACS will not take it as it is; sending it again would not help.
    Failed { at_ms: u64, reason: String },
}

/// A destination's queue and results in figures, for `gateway status` and the health report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: u64,
    pub oldest_seconds: Option<u64>,
    pub oldest_error: Option<String>,
    pub forwarded: u64,
    pub failed: u64,
}

/// Queues `record` for every destination, inside the caller's transaction (the one that indexes
/// the object), so it is queued exactly when it is stored.
pub fn enqueue(
    txn: &WriteTransaction,
    record: &InstanceRecord,
    destinations: &[Destination],
) -> Result<(), DbError> {
    let mut table = txn.open_table(FORWARD_QUEUE)?;
    for destination in destinations {
        let key = destination.key();
        let last = table
            .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().1);
        let queued = Queued {
            sop_instance_uid: record.sop_instance_uid.clone(),
            sop_class_uid: record.sop_class_uid.clone(),
            study_instance_uid: record.study_instance_uid.clone(),
            transfer_syntax: record.transfer_syntax.clone(),
            file_path: record.file_path.clone(),
            queued_at_ms: now_ms(),
            attempts: 0,
            last_error: None,
        };
        let bytes = serde_json::to_vec(&queued).expect("queue entries serialise");
        table.insert((key.as_str(), last.map_or(1, |n| n + 1)), bytes.as_slice())?;
    }
    Ok(())
}

/// The oldest `limit` entries for `destination`, with their sequence numbers.
pub fn head(
    db: &Database,
    destination: &Destination,
    limit: usize,
) -> Result<Vec<(u64, Queued)>, DbError> {
    let key = destination.key();
    let txn = db.begin_read()?;
    let table = txn.open_table(FORWARD_QUEUE)?;
    let mut out = Vec::new();
    for row in table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))? {
        let (k, v) = row?;
        out.push((k.value().1, decode(&key, k.value().1, v.value())?));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// How an entry is finished: where it went and what the association negotiated.
#[derive(Clone, Copy)]
pub struct Finish<'a> {
    pub destination: &'a Destination,
    pub sequence: u64,
    pub entry: &'a Queued,
    pub outcome: &'a Outcome,
    /// The PACS accepted Storage Commitment on this association: a forwarded object awaits its
    /// commitment ([`super::commitment::expect`]).
    pub commitment: bool,
    /// This gateway's name in its events.
    pub source_system: &'a str,
}

/// Takes entries off the queue and records their outcomes, with the `image.archive_state` event
/// when an object's state at this PACS changes (not for a repeat of the same outcome) and its
/// pending commitment, in one transaction: one commit for a batch of objects, not one each. A
/// crash before it commits sends those objects again, which a PACS takes as the same instance.
pub fn finish(db: &Database, finished: &[Finish<'_>]) -> Result<(), DbError> {
    if finished.is_empty() {
        return Ok(());
    }
    db.write(|txn| {
        for finish in finished {
            finish_in(txn, finish)?;
        }
        Ok::<(), DbError>(())
    })
}

fn finish_in(txn: &WriteTransaction, finish: &Finish<'_>) -> Result<(), DbError> {
    let Finish {
        destination,
        sequence,
        entry,
        outcome,
        commitment,
        source_system,
    } = *finish;
    let key = destination.key();
    let uid = entry.sop_instance_uid.as_str();
    txn.open_table(FORWARD_QUEUE)?
        .remove((key.as_str(), sequence))?;
    let bytes = serde_json::to_vec(outcome).expect("outcomes serialise");
    let previous = txn
        .open_table(FORWARD_RESULTS)?
        .insert((key.as_str(), uid), bytes.as_slice())?
        .and_then(|v| serde_json::from_slice::<Outcome>(v.value()).ok());
    let (state, reason) = match outcome {
        Outcome::Forwarded { .. } => (ArchiveState::Forwarded, None),
        Outcome::Failed { reason, .. } => (ArchiveState::Failed, Some(reason.clone())),
    };
    let changed = !matches!(
        (&previous, outcome),
        (Some(Outcome::Forwarded { .. }), Outcome::Forwarded { .. })
            | (Some(Outcome::Failed { .. }), Outcome::Failed { .. })
    );
    if changed {
        crate::cloud::events::archive_state(
            txn,
            source_system,
            &destination.ae_title,
            uid,
            state,
            reason,
        )?;
    }
    if commitment && matches!(outcome, Outcome::Forwarded { .. }) {
        super::commitment::expect(txn, destination, &entry.sop_class_uid, uid)?;
    }
    Ok(())
}

/// Records a failed attempt on the head entry (the PACS unreachable, the association lost), so
/// `gateway status` can say why the queue is not moving.
pub fn note_attempt(
    db: &Database,
    destination: &Destination,
    sequence: u64,
    error: &str,
) -> Result<(), DbError> {
    let key = destination.key();
    db.write(|txn| {
        let mut table = txn.open_table(FORWARD_QUEUE)?;
        let current = match table.get((key.as_str(), sequence))? {
            Some(v) => decode(&key, sequence, v.value())?,
            None => return Ok(()),
        };
        let updated = Queued {
            attempts: current.attempts.saturating_add(1),
            last_error: Some(error.to_string()),
            ..current
        };
        let bytes = serde_json::to_vec(&updated).expect("queue entries serialise");
        table.insert((key.as_str(), sequence), bytes.as_slice())?;
        Ok::<(), DbError>(())
    })
}

/// What became of one object at `destination`, if it was sent.
pub fn outcome(
    db: &Database,
    destination: &Destination,
    sop_instance_uid: &str,
) -> Result<Option<Outcome>, DbError> {
    let key = destination.key();
    let txn = db.begin_read()?;
    let table = txn.open_table(FORWARD_RESULTS)?;
    let value = table.get((key.as_str(), sop_instance_uid))?;
    value
        .map(|v| {
            serde_json::from_slice(v.value()).map_err(|source| DbError::Corrupt {
                table: "forward_results",
                key: format!("{key}/{sop_instance_uid}"),
                source,
            })
        })
        .transpose()
}

/// Objects waiting to be forwarded, to every destination together (for the metrics).
pub fn depth(db: &Database) -> Result<u64, DbError> {
    use redb::ReadableTableMetadata;
    let txn = db.begin_read()?;
    Ok(txn.open_table(FORWARD_QUEUE)?.len()?)
}

/// Queue depth, the oldest entry's age and error, and the outcomes so far.
pub fn stats(db: &Database, destination: &Destination) -> Result<Stats, DbError> {
    let key = destination.key();
    let txn = db.begin_read()?;
    let queue = txn.open_table(FORWARD_QUEUE)?;
    let mut stats = Stats::default();
    for (i, row) in queue
        .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
        .enumerate()
    {
        let (k, v) = row?;
        if i == 0 {
            let oldest = decode(&key, k.value().1, v.value())?;
            stats.oldest_seconds = Some(now_ms().saturating_sub(oldest.queued_at_ms) / 1000);
            stats.oldest_error = oldest.last_error;
        }
        stats.queued += 1;
    }
    let results = txn.open_table(FORWARD_RESULTS)?;
    for row in results.range((key.as_str(), "")..)? {
        let (k, v) = row?;
        if k.value().0 != key {
            break;
        }
        match serde_json::from_slice::<Outcome>(v.value()) {
            Ok(Outcome::Forwarded { .. }) => stats.forwarded += 1,
            Ok(Outcome::Failed { .. }) => stats.failed += 1,
            Err(_) => stats.failed += 1,
        }
    }
    Ok(stats)
}

fn decode(key: &str, sequence: u64, bytes: &[u8]) -> Result<Queued, DbError> {
    serde_json::from_slice(bytes).map_err(|source| DbError::Corrupt {
        table: "forward_queue",
        key: format!("{key}/{sequence}"),
        source,
    })
}
