//! Retention (`RETENTION_DAYS`): stored objects are deleted once they are old enough and safe
//! elsewhere, so the disk does not fill with clinic days already archived.
//!
//! "Safe elsewhere" means safe at every `PACS_FORWARD` destination: *committed* by a PACS that
//! accepted Storage Commitment when the object was forwarded to it
//! ([`crate::forward::commitment`]; pending or failed commitments keep the object), and, for a
//! PACS that did not, forwarded with a success status — which counts only with the explicit
//! `RETENTION_DELETE_FORWARDED=true`, since a success status promises nothing about tomorrow.
//! Without destinations nothing is ever deleted: the object exists nowhere else. An object still
//! waiting for its thumbnail or its forwarding is kept.
//! The time comes in as an argument, so the rules are tested without waiting.

use std::path::Path;

use redb::ReadableTable;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::index::{InstanceRecord, SeriesRecord, StudyRecord};
use crate::db::{self, Database, DbError};
use crate::forward::commitment::{self, Commitment};
use crate::forward::queue::{self, Outcome};
use crate::forward::Destination;

/// When objects may be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long an object is kept after it was received.
    pub keep: Duration,
    /// Every one of them must have taken the object.
    pub destinations: Vec<Destination>,
    /// A success status counts from a PACS without Storage Commitment
    /// (`RETENTION_DELETE_FORWARDED`).
    pub delete_forwarded: bool,
}

impl Policy {
    /// The configured policy (`RETENTION_DAYS`, `PACS_FORWARD`, `RETENTION_DELETE_FORWARDED`),
    /// `None` when retention is off.
    pub fn for_config(config: &crate::config::Config) -> Option<Policy> {
        config.retention_days.map(|days| Policy {
            keep: Duration::days(i64::from(days)),
            destinations: config.forward_to.clone(),
            delete_forwarded: config.retention_delete_forwarded,
        })
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub deleted: u64,
    pub bytes_freed: u64,
    /// Old enough, but not yet safe everywhere (or still waiting for a thumbnail).
    pub kept_not_archived: u64,
}

/// Objects deleted per write transaction.
const BATCH: usize = 200;

/// Deletes what `policy` allows at `now`: the file and its thumbnail first, then, in one
/// transaction per batch, the index rows, the forwarding results and the commitments. A crash between the two
/// leaves index rows whose file is gone, which the next sweep removes; never a file the index
/// has forgotten (which a restart would re-index and forward again).
pub fn sweep(
    db: &Database,
    storage_root: &Path,
    thumbnails_root: &Path,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Swept, DbError> {
    let (due, kept_not_archived) = candidates(db, policy, now)?;
    let mut swept = Swept {
        kept_not_archived,
        ..Swept::default()
    };
    for batch in due.chunks(BATCH) {
        for record in batch {
            let file = storage_root.join(&record.file_path);
            let thumbnail =
                thumbnails_root.join(Path::new(&record.file_path).with_extension("jpg"));
            for path in [&file, &thumbnail] {
                remove(path);
            }
        }
        db.write(|txn| {
            let mut instances = txn.open_table(db::INSTANCES)?;
            let mut series = txn.open_table(db::SERIES)?;
            let mut studies = txn.open_table(db::STUDIES)?;
            let mut results = txn.open_table(db::FORWARD_RESULTS)?;
            let mut commitments = txn.open_table(db::COMMITMENTS)?;
            let mut commit_pending = txn.open_table(db::COMMIT_PENDING)?;
            for record in batch {
                if instances
                    .remove(record.sop_instance_uid.as_str())?
                    .is_none()
                {
                    continue;
                }
                let uid = record.series_instance_uid.as_str();
                if let Some(mut s) = db::get_json::<SeriesRecord, _>(&series, "series", uid)? {
                    s.instance_count = s.instance_count.saturating_sub(1);
                    if s.instance_count == 0 {
                        series.remove(uid)?;
                    } else {
                        db::put_json(&mut series, uid, &s)?;
                    }
                }
                let uid = record.study_instance_uid.as_str();
                if let Some(mut s) = db::get_json::<StudyRecord, _>(&studies, "studies", uid)? {
                    s.instance_count = s.instance_count.saturating_sub(1);
                    if s.instance_count == 0 {
                        studies.remove(uid)?;
                    } else {
                        db::put_json(&mut studies, uid, &s)?;
                    }
                }
                for destination in &policy.destinations {
                    let key = destination.key();
                    let row = (key.as_str(), record.sop_instance_uid.as_str());
                    results.remove(row)?;
                    commitments.remove(row)?;
                    commit_pending.remove(row)?;
                }
            }
            Ok::<(), DbError>(())
        })?;
        swept.deleted += batch.len() as u64;
        swept.bytes_freed += batch.iter().map(|r| r.file_size).sum::<u64>();
    }
    Ok(swept)
}

/// What [`sweep`] would delete at `now` (nothing is changed): for `gateway status`.
pub fn preview(db: &Database, policy: &Policy, now: OffsetDateTime) -> Result<Swept, DbError> {
    let (due, kept_not_archived) = candidates(db, policy, now)?;
    Ok(Swept {
        deleted: due.len() as u64,
        bytes_freed: due.iter().map(|r| r.file_size).sum(),
        kept_not_archived,
    })
}

/// The objects stored and their bytes, from the index.
pub fn usage(db: &Database) -> Result<(u64, u64), DbError> {
    let txn = db.begin_read()?;
    let instances = txn.open_table(db::INSTANCES)?;
    let mut usage = (0, 0);
    for row in instances.iter()? {
        let (_, value) = row?;
        usage.0 += 1;
        if let Ok(record) = serde_json::from_slice::<InstanceRecord>(value.value()) {
            usage.1 += record.file_size;
        }
    }
    Ok(usage)
}

/// The objects due for deletion at `now`, read in one snapshot, and how many are old enough
/// but not yet safe everywhere.
fn candidates(
    db: &Database,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<(Vec<InstanceRecord>, u64), DbError> {
    let mut kept_not_archived = 0;
    if policy.destinations.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let cutoff = now - policy.keep;
    // A later copy of the same SOP instance may still be waiting to be forwarded.
    let mut queued = std::collections::HashSet::new();
    for destination in &policy.destinations {
        for (_, entry) in queue::head(db, destination, usize::MAX)? {
            queued.insert(entry.sop_instance_uid);
        }
    }
    let mut due: Vec<InstanceRecord> = Vec::new();
    {
        let txn = db.begin_read()?;
        let instances = txn.open_table(db::INSTANCES)?;
        let jobs = txn.open_table(db::THUMBNAIL_JOBS)?;
        let results = txn.open_table(db::FORWARD_RESULTS)?;
        let commitments = txn.open_table(db::COMMITMENTS)?;
        for row in instances.iter()? {
            let (key, value) = row?;
            let record: InstanceRecord = match serde_json::from_slice(value.value()) {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(
                        sop_instance_uid = key.value(),
                        "retention: unreadable index record: {e}"
                    );
                    continue;
                }
            };
            let old_enough =
                OffsetDateTime::parse(&record.received_at, &Rfc3339).is_ok_and(|at| at < cutoff);
            if !old_enough {
                continue;
            }
            let thumbnail_pending = jobs.get(record.sop_instance_uid.as_str())?.is_some();
            let waiting = thumbnail_pending || queued.contains(&record.sop_instance_uid);
            if !waiting && safe_everywhere(&results, &commitments, policy, &record)? {
                due.push(record);
            } else {
                kept_not_archived += 1;
            }
        }
    }
    Ok((due, kept_not_archived))
}

/// Whether the object is safe at every destination (read in the sweep's snapshot): committed
/// where commitment was negotiated, else forwarded with a success status when the policy lets
/// that count.
fn safe_everywhere(
    results: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    commitments: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    policy: &Policy,
    record: &InstanceRecord,
) -> Result<bool, DbError> {
    for destination in &policy.destinations {
        let key = destination.key();
        let uid = record.sop_instance_uid.as_str();
        let forwarded = match results.get((key.as_str(), uid))? {
            Some(v) => matches!(
                serde_json::from_slice::<Outcome>(v.value()),
                Ok(Outcome::Forwarded { .. })
            ),
            None => false,
        };
        let commitment = commitment::get(commitments, &key, uid)?;
        if !is_safe(forwarded, commitment.as_ref(), policy.delete_forwarded) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The rule for one destination: its commitment decides where there is one; otherwise only a
/// success status and `RETENTION_DELETE_FORWARDED`.
fn is_safe(forwarded: bool, commitment: Option<&Commitment>, delete_forwarded: bool) -> bool {
    match commitment {
        Some(Commitment::Committed { .. }) => forwarded,
        Some(Commitment::Pending { .. } | Commitment::Failed { .. }) => false,
        None => forwarded && delete_forwarded,
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "retention: cannot delete: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_safe_where_committed_or_forwarded_without_commitment_when_allowed() {
        let committed = Commitment::Committed {
            at_ms: 1,
            transaction_uid: "2.25.1".into(),
        };
        let pending = Commitment::Pending {
            sop_class_uid: "1.2".into(),
            transaction_uid: None,
            attempts: 0,
            since_ms: 1,
        };
        let failed = Commitment::Failed {
            at_ms: 1,
            transaction_uid: "2.25.1".into(),
            reason: "no such object".into(),
        };
        for (forwarded, commitment, delete_forwarded, safe) in [
            (true, Some(&committed), false, true),
            (true, Some(&committed), true, true),
            (true, Some(&pending), true, false),
            (true, Some(&failed), true, false),
            (true, None, false, false),
            (true, None, true, true),
            (false, None, true, false),
            (false, Some(&committed), true, false),
        ] {
            assert_eq!(
                is_safe(forwarded, commitment, delete_forwarded),
                safe,
                "{forwarded} {commitment:?} {delete_forwarded}"
            );
        }
    }
}
