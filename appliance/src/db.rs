//! The gateway's state database (redb): worklist items, MPPS steps, the image index, the event
//! outbox, the thumbnail jobs, the applied cloud actions, the FHIR deliveries and the forwarding queue. Every table is declared here and created by
//! [`Database::open`], so the whole schema reads in one place and no reader meets a missing
//! table.
//!
//! Every state change runs inside one redb [`WriteTransaction`] that the caller owns, so a
//! caller can add its own writes (the event the change causes) to the same atomic commit. Values
//! are JSON: the records are small, and JSON keeps them readable with any redb tool and tolerant
//! of added fields.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Durability, ReadableDatabase, StorageError, TableDefinition, TransactionError, WriteTransaction,
};
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// redb page cache size.
const CACHE_BYTES: usize = 16 << 20;
/// The first wait before reopening again after a failed reopen; it doubles up to
/// [`REOPEN_MAX_DELAY`].
const REOPEN_FIRST_DELAY: Duration = Duration::from_secs(1);
const REOPEN_MAX_DELAY: Duration = Duration::from_secs(30);

/// Worklist items by accession number.
pub const WORKLIST: TableDefinition<&str, &[u8]> = TableDefinition::new("worklist");
/// MPPS steps by MPPS SOP Instance UID.
pub const MPPS: TableDefinition<&str, &[u8]> = TableDefinition::new("mpps");
/// The MPPS data set as last set (N-CREATE merged with N-SETs), explicit VR LE.
pub const MPPS_DATA_SETS: TableDefinition<&str, &[u8]> = TableDefinition::new("mpps_data_sets");
/// Stored instances by SOP Instance UID.
pub const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
/// Series by Series Instance UID.
pub const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series");
/// Studies by Study Instance UID.
pub const STUDIES: TableDefinition<&str, &[u8]> = TableDefinition::new("studies");
/// Queued events by sequence number (ascending = oldest first): [`crate::cloud::outbox`].
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Events the cloud refused for good, by their outbox sequence: kept for an operator to retry or
/// drop (`gateway events`), out of the way of their accession's later events.
pub const PARKED_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("parked_events");
/// Instances waiting for their thumbnail and image event, by SOP Instance UID:
/// [`crate::thumbnail::jobs`].
pub const THUMBNAIL_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("thumbnail_jobs");
/// Worklist actions already applied, by action id: what they asked (a digest) and what was
/// answered, so a repeat is answered again without being re-applied: [`crate::cloud::applied`].
pub const APPLIED_ACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("applied_actions");
/// The same actions by (Unix milliseconds after which they may be forgotten, action id), so
/// purging reads only what is due.
pub const APPLIED_ACTIONS_BY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("applied_actions_by_expiry");
/// Accession numbers cancelled before their item arrived, with when (Unix milliseconds): a
/// create that lands after its cancel (it was in flight when the cloud gave up waiting) is
/// refused instead of offering a cancelled participant: [`crate::cloud::actions`].
pub const CANCELLED_BEFORE_CREATE: TableDefinition<&str, u64> =
    TableDefinition::new("cancelled_before_create");
/// Objects waiting to be forwarded, by (destination `AE@host:port`, sequence): [`crate::forward::queue`].
pub const FORWARD_QUEUE: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("forward_queue");
/// What became of each forwarded object, by (destination, SOP Instance UID).
pub const FORWARD_RESULTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("forward_results");
/// Storage Commitment (PS3.4 Annex J) of each forwarded object at each destination that
/// negotiated it, by (destination, SOP Instance UID): [`crate::forward::commitment`].
pub const COMMITMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("commitments");
/// The commitments still awaited, by (destination, SOP Instance UID) → Unix milliseconds when
/// the request is (re)sent, so the senders read only what is due.
pub const COMMIT_PENDING: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("commit_pending");
/// Commitment requests (N-ACTION) sent and not yet answered, by Transaction UID.
pub const COMMIT_TRANSACTIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("commit_transactions");
/// A scratch table the `health` check writes to, proving the database takes writes.
/// FHIR deliveries by action id ([`crate::fhir::queue`]).
pub const FHIR_DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("fhir_deliveries");
pub const HEALTH: TableDefinition<&str, u64> = TableDefinition::new("health");

/// Unix milliseconds, the clock of every timestamp the tables keep (0 if the clock is before
/// 1970, which only a broken RTC gives).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The database file in a state directory.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway.redb")
}

/// Why the state database failed.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("state database: {0}")]
    Redb(#[from] redb::Error),
    #[error("state database unavailable after an I/O error ({0}); it is reopened as soon as it can be (is the disk of GATEWAY_STATE_DIR full?)")]
    Unavailable(String),
    #[error("state database record {table}/{key} is unreadable: {source}")]
    Corrupt {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The open state database.
///
/// After one failed write (the state filesystem full, an I/O error) redb answers `PreviousIo`
/// to every later transaction until the database is closed and opened again. This type then
/// **reopens** it, rather than exiting for systemd to restart the process, because reopening:
/// - heals by itself once space is freed, with no restart loop against the unit's start limit
///   while the disk stays full (a restart would fail the same way, and after `StartLimitBurst`
///   systemd gives up until a person intervenes);
/// - keeps the process, its other associations and C-ECHO/C-FIND answering meanwhile, while
///   stores and MPPS changes are refused (A700, 0110) and `gateway status` reports the database.
///
/// The failure is logged at `err` once; failed reopens are retried at the next use after a
/// delay doubling from 1 s to 30 s, each logged at `err`. Transactions already begun on the old
/// handle keep its file locked until they end, so a reopen can need a second attempt.
pub struct Database {
    path: PathBuf,
    state: Mutex<State>,
    /// When a batched commit was last made durable (ms since `opened`; 0: not yet).
    last_durable_ms: AtomicU64,
    opened: Instant,
}

/// How long a batched commit ([`Database::begin_write_batched`]) may stay not yet durable.
pub const DURABLE_WITHIN: Duration = Duration::from_secs(1);

enum State {
    Open(Arc<redb::Database>),
    /// Closed after an I/O error; reopened at the first use after `retry_at`.
    Failed {
        why: String,
        retry_at: Instant,
        delay: Duration,
    },
}

/// An error that latches redb until reopened (`PreviousIo`) or that causes the latch (`Io`).
fn is_io_failure(e: &TransactionError) -> bool {
    matches!(
        e,
        TransactionError::Storage(
            StorageError::Io(_) | StorageError::PreviousIo | StorageError::DatabaseClosed
        )
    )
}

impl Database {
    /// Opens (or creates) the database file and makes sure every table exists, so readers never
    /// meet a missing table.
    pub fn open(path: &Path) -> Result<Database, DbError> {
        Ok(Database {
            path: path.to_path_buf(),
            state: Mutex::new(State::Open(Arc::new(open_file(path)?))),
            last_durable_ms: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// A write transaction for what can be recovered after a crash without it: an index row
    /// whose file is durable (the re-index after start-up restores it), a finished thumbnail
    /// (its job, committed durably, is simply done again). Its commit skips redb's fsync unless
    /// [`DURABLE_WITHIN`] has passed since the last durable batched commit; that one makes all
    /// the earlier ones durable (as does any other commit: they are durable by default).
    pub fn begin_write_batched(&self) -> Result<WriteTransaction, DbError> {
        let mut txn = self.begin_write()?;
        self.batch(&mut txn)?;
        Ok(txn)
    }

    fn batch(&self, txn: &mut WriteTransaction) -> Result<(), DbError> {
        let now = self.opened.elapsed().as_millis() as u64;
        let last = self.last_durable_ms.load(Ordering::Relaxed);
        if last == 0 || now.saturating_sub(last) >= DURABLE_WITHIN.as_millis() as u64 {
            self.last_durable_ms.store(now.max(1), Ordering::Relaxed);
            return Ok(());
        }
        txn.set_durability(Durability::None)
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Makes every batched commit so far durable (an empty durable commit): at shutdown.
    pub fn checkpoint(&self) -> Result<(), DbError> {
        let txn = self.begin_write()?;
        txn.commit()?;
        Ok(())
    }

    /// Starts a write transaction; commit it with [`WriteTransaction::commit`].
    pub fn begin_write(&self) -> Result<WriteTransaction, DbError> {
        Ok(self.begin(|db| db.begin_write())?.1)
    }

    /// Starts a read transaction (a consistent snapshot).
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, DbError> {
        Ok(self.begin(|db| db.begin_read())?.1)
    }

    /// Begins a transaction on the current handle; on an I/O failure, closes the handle and
    /// tries once more on a reopened one. Returns the handle used with the transaction.
    fn begin<T>(
        &self,
        begin: impl Fn(&redb::Database) -> Result<T, TransactionError>,
    ) -> Result<(Arc<redb::Database>, T), DbError> {
        let db = self.handle()?;
        match begin(&db) {
            Ok(txn) => Ok((db, txn)),
            Err(e) if is_io_failure(&e) => {
                self.close_after(&db, &e.to_string());
                drop(db);
                let db = self.handle()?;
                let txn = begin(&db)?;
                Ok((db, txn))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The open handle, reopening a failed one when its time has come.
    fn handle(&self) -> Result<Arc<redb::Database>, DbError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (why, delay) = match &*state {
            State::Open(db) => return Ok(db.clone()),
            State::Failed { why, retry_at, .. } if Instant::now() < *retry_at => {
                return Err(DbError::Unavailable(why.clone()))
            }
            State::Failed { why, delay, .. } => (why.clone(), *delay),
        };
        match open_file(&self.path) {
            Ok(db) => {
                tracing::warn!(path = %self.path.display(), "state database reopened after an I/O error ({why})");
                let db = Arc::new(db);
                *state = State::Open(db.clone());
                Ok(db)
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(),
                    "cannot reopen the state database: {e}; next attempt in {} s", delay.as_secs());
                *state = State::Failed {
                    why: why.clone(),
                    retry_at: Instant::now() + delay,
                    delay: (delay * 2).min(REOPEN_MAX_DELAY),
                };
                Err(DbError::Unavailable(why))
            }
        }
    }

    /// Closes `failed` (unless another thread already replaced it) so the next use reopens.
    fn close_after(&self, failed: &Arc<redb::Database>, e: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(&*state, State::Open(db) if Arc::ptr_eq(db, failed)) {
            tracing::error!(path = %self.path.display(), "state database I/O failed: {e}; reopening it");
            *state = State::Failed {
                why: e.to_string(),
                retry_at: Instant::now(),
                delay: REOPEN_FIRST_DELAY,
            };
        }
    }

    /// Runs `f` in a write transaction and commits if it returns `Ok`. A commit that fails on
    /// I/O closes the handle at once (the next use reopens it).
    pub fn write<T, E>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.write_in(false, f)
    }

    /// [`Database::write`] in a batched transaction ([`Database::begin_write_batched`]).
    pub fn write_batched<T, E>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.write_in(true, f)
    }

    fn write_in<T, E>(
        &self,
        batched: bool,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let (db, mut txn) = self.begin(|db| db.begin_write())?;
        if batched {
            self.batch(&mut txn)?;
        }
        let value = f(&txn)?;
        if let Err(e) = txn.commit() {
            if matches!(
                &e,
                redb::CommitError::Storage(StorageError::Io(_) | StorageError::PreviousIo)
            ) {
                self.close_after(&db, &e.to_string());
            }
            return Err(DbError::from(e).into());
        }
        Ok(value)
    }
}

/// Opens the file with a bounded cache and creates any missing table.
fn open_file(path: &Path) -> Result<redb::Database, DbError> {
    // redb's default page cache is 1 GiB; the gateway's tables are small and a bounded cache
    // keeps the appliance's footprint predictable.
    let inner = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)?;
    let txn = inner.begin_write()?;
    for table in [
        WORKLIST,
        MPPS,
        MPPS_DATA_SETS,
        INSTANCES,
        SERIES,
        STUDIES,
        THUMBNAIL_JOBS,
        APPLIED_ACTIONS,
        FHIR_DELIVERIES,
    ] {
        txn.open_table(table)?;
    }
    txn.open_table(APPLIED_ACTIONS_BY_EXPIRY)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(PARKED_EVENTS)?;
    txn.open_table(FORWARD_QUEUE)?;
    txn.open_table(FORWARD_RESULTS)?;
    txn.open_table(COMMITMENTS)?;
    txn.open_table(COMMIT_PENDING)?;
    txn.open_table(COMMIT_TRANSACTIONS)?;
    txn.open_table(HEALTH)?;
    txn.open_table(CANCELLED_BEFORE_CREATE)?;
    txn.commit()?;
    Ok(inner)
}

/// Reads and decodes one JSON record.
pub fn get_json<T, R>(table: &R, name: &'static str, key: &str) -> Result<Option<T>, DbError>
where
    T: DeserializeOwned,
    R: redb::ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key)? {
        None => Ok(None),
        Some(guard) => serde_json::from_slice(guard.value())
            .map(Some)
            .map_err(|source| DbError::Corrupt {
                table: name,
                key: key.to_string(),
                source,
            }),
    }
}

/// Encodes and writes one JSON record.
pub fn put_json<T: Serialize>(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), DbError> {
    let bytes = serde_json::to_vec(value).expect("records serialize");
    table.insert(key, bytes.as_slice())?;
    Ok(())
}
