//! The gateway's state database (redb): worklist items, MPPS steps, the image index, the event
//! outbox, the thumbnail jobs and the applied cloud actions. Every table is declared here and created by
//! [`Database::open`], so the whole schema reads in one place and no reader meets a missing
//! table.
//!
//! Every state change runs inside one redb [`WriteTransaction`] that the caller owns, so a
//! caller can add its own writes (the event the change causes) to the same atomic commit. Values
//! are JSON: the records are small, and JSON keeps them readable with any redb tool and tolerant
//! of added fields.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// redb page cache size.
const CACHE_BYTES: usize = 16 << 20;

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
/// A scratch table the `health` check writes to, proving the database takes writes.
pub const HEALTH: TableDefinition<&str, u64> = TableDefinition::new("health");

/// The database file in a state directory.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway.redb")
}

/// Why the state database failed.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("state database: {0}")]
    Redb(#[from] redb::Error),
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
pub struct Database {
    inner: redb::Database,
}

impl Database {
    /// Opens (or creates) the database file and makes sure every table exists, so readers never
    /// meet a missing table.
    pub fn open(path: &Path) -> Result<Database, DbError> {
        // redb's default page cache is 1 GiB; the gateway's tables are small and a bounded
        // cache keeps the appliance's footprint predictable.
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
        ] {
            txn.open_table(table)?;
        }
        txn.open_table(APPLIED_ACTIONS_BY_EXPIRY)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(HEALTH)?;
        txn.commit()?;
        Ok(Database { inner })
    }

    /// Starts a write transaction; commit it with [`WriteTransaction::commit`].
    pub fn begin_write(&self) -> Result<WriteTransaction, DbError> {
        Ok(self.inner.begin_write()?)
    }

    /// Starts a read transaction (a consistent snapshot).
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, DbError> {
        Ok(self.inner.begin_read()?)
    }

    /// Runs `f` in a write transaction and commits if it returns `Ok`.
    pub fn write<T, E>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let txn = self.begin_write()?;
        let value = f(&txn)?;
        txn.commit().map_err(DbError::from)?;
        Ok(value)
    }
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
