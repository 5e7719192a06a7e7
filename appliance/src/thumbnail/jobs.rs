//! The durable job table: one row per stored instance still waiting for its thumbnail and image
//! event ([`crate::db::THUMBNAIL_JOBS`]). A job is written in the store's own transaction and
//! removed in the transaction that queues the image event, so a crash in between leaves the job,
//! which runs again on the next start.
//!
//! Each render attempt is counted in the row *before* it starts, so an attempt that never
//! answers — the renderer crashed, or the whole gateway was killed meanwhile — still counts.
//! The first attempt at a job a C-STORE just queued is counted in a batched commit (durable
//! within a second, [`Database::begin_write_batched`]) so that it never holds the database's
//! write lock through an fsync while the next object waits to be indexed; every other attempt
//! (a retry, a job left by the last run or queued by the re-index) is counted durably. A
//! gateway killed during a first attempt can lose that count and so gives the object one more
//! attempt than [`MAX_ATTEMPTS`], no more: the next start's attempt is durable.
//! After [`MAX_ATTEMPTS`] the job is **quarantined**: the row stays (listed by `gateway status`),
//! the object stays stored, the cloud is told `thumbnail: null` with the reason, and no later
//! start retries it.

use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::db::{Database, DbError, THUMBNAIL_JOBS};
use crate::storage::InstanceRecord;

/// Render attempts a job gets before it is quarantined.
pub const MAX_ATTEMPTS: u32 = 3;

/// A durable request to thumbnail one stored instance and report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub record: InstanceRecord,
    /// Render attempts begun so far (absent in rows written before attempts were counted).
    #[serde(default)]
    pub attempts: u32,
    /// Set when the job was given up; the row is then kept only to be reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<Quarantine>,
    /// Queued by a C-STORE in this run, never attempted (see the module's doc); not stored.
    #[serde(skip)]
    pub fresh: bool,
}

/// Why and when a job was given up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub reason: String,
    /// RFC 3339.
    pub at: String,
}

impl Job {
    /// A new job: no attempt yet.
    pub fn new(record: InstanceRecord) -> Job {
        Job {
            record,
            attempts: 0,
            quarantined: None,
            fresh: false,
        }
    }

    /// A job a C-STORE has just queued: its first attempt is counted in a batched commit.
    pub fn fresh(record: InstanceRecord) -> Job {
        Job {
            fresh: true,
            ..Job::new(record)
        }
    }
}

/// What to do with a job about to be attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Done or quarantined already: nothing.
    Skip,
    /// Render it (the attempt is counted first).
    Render,
    /// Every attempt so far ended without an answer (the gateway, or its worker, died during
    /// each): give up without trying again.
    Quarantine(String),
}

/// Decides on a job read back from the table (`None`: its row is gone, it is done).
pub fn begin(job: Option<&Job>) -> Begin {
    match job {
        None => Begin::Skip,
        Some(job) if job.quarantined.is_some() => Begin::Skip,
        Some(job) if job.attempts >= MAX_ATTEMPTS => Begin::Quarantine(format!(
            "{} render attempts ended without an answer (the gateway or its thumbnail worker \
             stopped during each)",
            job.attempts
        )),
        Some(_) => Begin::Render,
    }
}

/// What to do after attempt number `attempts` (counting from 1) crashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this long (2 s, then 4 s): a transient shortage may have passed.
    Retry(Duration),
    Quarantine,
}

/// 2 s after the first crash, doubling, at most 32 s (the attempts run out before that).
const RETRY: shared::backoff::Exponential =
    shared::backoff::Exponential::new(Duration::from_secs(2), Duration::from_secs(32));

pub fn after_failure(attempts: u32) -> AfterFailure {
    if attempts >= MAX_ATTEMPTS {
        AfterFailure::Quarantine
    } else {
        AfterFailure::Retry(RETRY.delay(attempts))
    }
}

/// Records a job in the store's transaction; [`super::Pool::submit`] it after the commit.
pub fn enqueue_job(txn: &WriteTransaction, record: &InstanceRecord) -> Result<(), DbError> {
    put(txn, &Job::new(record.clone()))
}

fn put(txn: &WriteTransaction, job: &Job) -> Result<(), DbError> {
    let mut table = txn.open_table(THUMBNAIL_JOBS)?;
    let bytes = serde_json::to_vec(job).expect("jobs serialise");
    table.insert(job.record.sop_instance_uid.as_str(), bytes.as_slice())?;
    Ok(())
}

/// Reads the job's row and, when it is to be rendered, counts the attempt before answering:
/// durably, or in a batched commit when `batched` (a fresh job's first attempt). Returns the
/// decision and the job as now stored.
pub fn begin_attempt(
    db: &Database,
    sop_instance_uid: &str,
    batched: bool,
) -> Result<(Begin, Option<Job>), DbError> {
    let write = |txn: &WriteTransaction| {
        let job = {
            let table = txn.open_table(THUMBNAIL_JOBS)?;
            let row = table.get(sop_instance_uid)?;
            match row.map(|v| serde_json::from_slice::<Job>(v.value())) {
                None => None,
                Some(Ok(job)) => Some(job),
                Some(Err(source)) => {
                    return Err(DbError::Corrupt {
                        table: "thumbnail_jobs",
                        key: sop_instance_uid.to_string(),
                        source,
                    })
                }
            }
        };
        let decision = begin(job.as_ref());
        let job = match (job, &decision) {
            (Some(mut job), Begin::Render) => {
                job.attempts += 1;
                put(txn, &job)?;
                Some(job)
            }
            (job, _) => job,
        };
        Ok((decision, job))
    };
    if batched {
        db.write_batched(write)
    } else {
        db.write(write)
    }
}

/// Marks a job given up, in the transaction that queues its `thumbnail: null` event.
pub fn quarantine(txn: &WriteTransaction, job: &Job, reason: &str) -> Result<(), DbError> {
    let at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    put(
        txn,
        &Job {
            quarantined: Some(Quarantine {
                reason: reason.to_string(),
                at,
            }),
            ..job.clone()
        },
    )
}

/// Drops a done job, in the transaction that queues its image event.
pub fn finish(txn: &WriteTransaction, sop_instance_uid: &str) -> Result<(), DbError> {
    txn.open_table(THUMBNAIL_JOBS)?.remove(sop_instance_uid)?;
    Ok(())
}

/// Every row: jobs waiting (left by a previous run, or queued) and quarantined ones.
pub fn all_jobs(db: &Database) -> Result<Vec<Job>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(THUMBNAIL_JOBS)?;
    let mut jobs = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        match serde_json::from_slice(value.value()) {
            Ok(job) => jobs.push(job),
            Err(e) => tracing::error!("unreadable thumbnail job {}: {e}", key.value()),
        }
    }
    Ok(jobs)
}

/// Jobs still to be made (not quarantined).
pub fn pending_jobs(db: &Database) -> Result<Vec<Job>, DbError> {
    let mut jobs = all_jobs(db)?;
    jobs.retain(|j| j.quarantined.is_none());
    Ok(jobs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn job(attempts: u32, quarantined: bool) -> Job {
        let record: InstanceRecord = serde_json::from_value(serde_json::json!({
            "sop_instance_uid": "1.2.3", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.2",
            "study_instance_uid": "1.2", "series_instance_uid": "1.2.1",
            "transfer_syntax": "1.2.840.10008.1.2.1", "file_path": "a/b.dcm",
            "file_size": 1, "file_sha256": "00", "calling_ae": "MOD",
            "received_at": "2026-12-01T10:00:00Z"
        }))
        .expect("a record");
        Job {
            attempts,
            quarantined: quarantined.then(|| Quarantine {
                reason: "r".into(),
                at: "2026-12-01T10:00:00Z".into(),
            }),
            ..Job::new(record)
        }
    }

    #[test]
    fn a_job_is_rendered_until_its_attempts_are_spent_then_quarantined_once() {
        #[rustfmt::skip]
        let cases: Vec<(Option<Job>, &str)> = vec![
            (None, "skip"),                 // done meanwhile
            (Some(job(0, false)), "render"),
            (Some(job(1, false)), "render"),
            (Some(job(2, false)), "render"),
            // A third attempt began and never answered: the process died during it.
            (Some(job(3, false)), "quarantine"),
            (Some(job(7, false)), "quarantine"),
            (Some(job(3, true)), "skip"),  // quarantined: never retried
            (Some(job(0, true)), "skip"),
        ];
        for (job, expected) in cases {
            let got = match begin(job.as_ref()) {
                Begin::Skip => "skip",
                Begin::Render => "render",
                Begin::Quarantine(reason) => {
                    assert!(reason.contains("without an answer"), "{reason}");
                    "quarantine"
                }
            };
            assert_eq!(got, expected, "{job:?}");
        }
    }

    #[test]
    fn a_crashed_attempt_is_retried_with_a_growing_delay_then_quarantined() {
        #[rustfmt::skip]
        let cases = [
            (1, AfterFailure::Retry(Duration::from_secs(2))),
            (2, AfterFailure::Retry(Duration::from_secs(4))),
            (3, AfterFailure::Quarantine),
            (4, AfterFailure::Quarantine),
        ];
        for (attempts, expected) in cases {
            assert_eq!(after_failure(attempts), expected, "attempt {attempts}");
        }
    }

    #[test]
    fn rows_from_before_attempts_were_counted_read_as_fresh_jobs() {
        let old =
            serde_json::json!({ "record": serde_json::to_value(job(0, false).record).unwrap() });
        let read: Job = serde_json::from_value(old).unwrap();
        assert_eq!((read.attempts, read.quarantined), (0, None));
        let text = serde_json::to_string(&job(1, false)).unwrap();
        assert!(!text.contains("quarantined"), "{text}");
    }

    #[test]
    fn attempts_are_counted_before_rendering_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let record = job(0, false).record;
        {
            let db = Database::open(&path).unwrap();
            db.write(|txn| enqueue_job(txn, &record)).unwrap();
            for n in 1..=MAX_ATTEMPTS {
                let (decision, stored) = begin_attempt(&db, "1.2.3", false).unwrap();
                assert_eq!(decision, Begin::Render);
                assert_eq!(stored.unwrap().attempts, n);
            }
        }
        // As after a process killed during its last attempt: the next start gives up.
        let db = Database::open(&path).unwrap();
        let (decision, stored) = begin_attempt(&db, "1.2.3", false).unwrap();
        let Begin::Quarantine(reason) = decision else {
            panic!("{decision:?}")
        };
        let stored = stored.unwrap();
        db.write(|txn| quarantine(txn, &stored, &reason)).unwrap();
        assert_eq!(begin_attempt(&db, "1.2.3", false).unwrap().0, Begin::Skip);
        assert!(pending_jobs(&db).unwrap().is_empty());
        let all = all_jobs(&db).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].quarantined.as_ref().unwrap().reason, reason);
        db.write(|txn| finish(txn, "1.2.3")).unwrap();
        assert_eq!(begin_attempt(&db, "1.2.3", false).unwrap().0, Begin::Skip);
    }
}
