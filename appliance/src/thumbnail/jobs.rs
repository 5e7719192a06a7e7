//! The durable job table: one row per stored instance still waiting for its thumbnail and image
//! event ([`crate::db::THUMBNAIL_JOBS`]). A job is written in the store's own transaction and
//! removed in the transaction that queues the image event, so a crash in between leaves the job,
//! which runs again on the next start.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::{Database, DbError, THUMBNAIL_JOBS};
use crate::storage::InstanceRecord;

/// A durable request to thumbnail one stored instance and report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub record: InstanceRecord,
}

/// Records a job in the store's transaction; [`super::Pool::submit`] it after the commit.
pub fn enqueue_job(txn: &WriteTransaction, record: &InstanceRecord) -> Result<(), DbError> {
    let mut table = txn.open_table(THUMBNAIL_JOBS)?;
    let bytes = serde_json::to_vec(&Job {
        record: record.clone(),
    })
    .expect("jobs serialise");
    table.insert(record.sop_instance_uid.as_str(), bytes.as_slice())?;
    Ok(())
}

/// Drops a done job, in the transaction that queues its image event.
pub fn finish(txn: &WriteTransaction, sop_instance_uid: &str) -> Result<(), DbError> {
    txn.open_table(THUMBNAIL_JOBS)?.remove(sop_instance_uid)?;
    Ok(())
}

/// Jobs left by a previous run.
pub fn pending_jobs(db: &Database) -> Result<Vec<Job>, DbError> {
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
