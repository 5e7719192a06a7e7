//! Retention (`RETENTION_DAYS`): stored objects are deleted once they are old enough and safe
//! elsewhere, so the disk does not fill with clinic days already archived.
//!
//! "Safe elsewhere" means forwarded, with a success status, to every `PACS_FORWARD`
//! destination. The gateway does not yet ask for Storage Commitment, so a success status is the
//! only proof it has; deleting on it needs a second, explicit setting
//! (`RETENTION_DELETE_FORWARDED=true`). Without destinations nothing is ever deleted: the object
//! exists nowhere else. An object still waiting for its thumbnail or its forwarding is kept.
//! The time comes in as an argument, so the rules are tested without waiting.

use std::path::Path;

use redb::ReadableTable;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::index::{InstanceRecord, SeriesRecord, StudyRecord};
use crate::db::{self, Database, DbError};
use crate::forward::queue::{self, Outcome};
use crate::forward::Destination;

/// When objects may be deleted.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long an object is kept after it was received.
    pub keep: Duration,
    /// Every one of them must have taken the object.
    pub destinations: Vec<Destination>,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub deleted: u64,
    pub bytes_freed: u64,
    /// Old enough, but not yet forwarded everywhere (or still waiting for a thumbnail).
    pub kept_not_archived: u64,
}

/// Objects deleted per write transaction.
const BATCH: usize = 200;

/// Deletes what `policy` allows at `now`: the file and its thumbnail first, then, in one
/// transaction per batch, the index rows and the forwarding results. A crash between the two
/// leaves index rows whose file is gone, which the next sweep removes; never a file the index
/// has forgotten (which a restart would re-index and forward again).
pub fn sweep(
    db: &Database,
    storage_root: &Path,
    thumbnails_root: &Path,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Swept, DbError> {
    let mut swept = Swept::default();
    if policy.destinations.is_empty() {
        return Ok(swept);
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
            if !waiting && archived_everywhere(&results, &policy.destinations, &record)? {
                due.push(record);
            } else {
                swept.kept_not_archived += 1;
            }
        }
    }
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
                    results.remove((key.as_str(), record.sop_instance_uid.as_str()))?;
                }
            }
            Ok::<(), DbError>(())
        })?;
        swept.deleted += batch.len() as u64;
        swept.bytes_freed += batch.iter().map(|r| r.file_size).sum::<u64>();
    }
    Ok(swept)
}

/// Whether every destination answered success for this object (read in the sweep's snapshot).
fn archived_everywhere(
    results: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    destinations: &[Destination],
    record: &InstanceRecord,
) -> Result<bool, DbError> {
    for destination in destinations {
        let key = destination.key();
        let forwarded = match results.get((key.as_str(), record.sop_instance_uid.as_str()))? {
            Some(v) => matches!(
                serde_json::from_slice::<Outcome>(v.value()),
                Ok(Outcome::Forwarded { .. })
            ),
            None => false,
        };
        if !forwarded {
            return Ok(false);
        }
    }
    Ok(true)
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "retention: cannot delete: {e}"),
    }
}
