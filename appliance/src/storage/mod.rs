//! Received objects: the hash-addressed file store plus the redb index, kept consistent.
//!
//! Order of a store: temporary file, its data set checked as it arrives (`incoming.rs`) → (the
//! instance's turn, [`InstanceClaims`], so concurrent stores of one instance take turns)
//! duplicate check → rename → one `syncfs` that makes the file, its name and everything before
//! it durable, outside any lock so stores on several associations share it → index rows →
//! caller's hook → commit → answer. The index commit itself is made
//! durable within a second ([`crate::db::Database::begin_write_batched`]) rather than with
//! every object: an acknowledged object is a durable file, and a file the index lost in a crash
//! is indexed again by the re-index after start-up, with the same hook. A crash before the rename leaves a
//! temporary file that start-up removes; one after it, a file the re-index indexes if it parses.

pub mod files;
pub mod incoming;
pub mod index;
pub mod query;
pub mod retention;
pub mod sop_classes;

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dicom_object::meta::{FileMetaTable, FileMetaTableBuilder};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::db::{Database, DbError};
pub use files::{FileStore, PartFile, ReceivedFile};
pub use incoming::{CheckError, IncomingObject};
pub use index::InstanceRecord;

/// What the sender told us about the object before its bytes arrived (the C-STORE command and
/// the presentation context).
#[derive(Debug, Clone)]
pub struct Announced {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    pub calling_ae: String,
}

/// Why an object was not stored.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Disk full or another local resource problem: the sender should retry later.
    #[error("out of resources: {0}")]
    OutOfResources(#[source] io::Error),
    #[error("the data set has no {0}")]
    MissingAttribute(&'static str),
    #[error("the data set's {what} {found} differs from the command's {announced}")]
    Mismatch {
        what: &'static str,
        found: String,
        announced: String,
    },
    #[error("the data set cannot be parsed: {0}")]
    Unreadable(String),
    /// Refused by the checks it passes as it arrives (depth, lengths, delimiters). The text
    /// is the response's error comment, which holds 64 characters: the fault comes first.
    #[error("{0}")]
    Malformed(CheckError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("file meta for {0}: {1}")]
    Meta(String, String),
}

/// Result of a successful store.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    New(Box<InstanceRecord>),
    /// Already held: the first copy is kept, the new bytes are discarded.
    Duplicate,
}

/// The store and its index.
#[derive(Clone)]
pub struct Storage {
    pub db: Arc<Database>,
    pub files: FileStore,
    /// Below this much free space a new object is refused with A700 (`STORAGE_MIN_FREE_MIB`),
    /// so the disk never fills: the database, the worklist and MPPS keep working and the
    /// modality keeps the image and sends it again later.
    pub min_free_bytes: u64,
    claims: Arc<InstanceClaims>,
}

/// The SOP Instance UIDs being stored right now. By hand: a set under a mutex, and a condvar
/// to wait for a UID's turn; no crate does less.
#[derive(Default)]
struct InstanceClaims {
    held: std::sync::Mutex<HashSet<String>>,
    released: std::sync::Condvar,
}

/// One instance's turn; the next store of it proceeds when this is dropped.
struct Turn<'a> {
    claims: &'a InstanceClaims,
    uid: String,
}

impl InstanceClaims {
    fn claim(&self, uid: &str) -> Turn<'_> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(uid) {
            held = self.released.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.insert(uid.to_string());
        Turn {
            claims: self,
            uid: uid.to_string(),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.uid);
        self.claims.released.notify_all();
    }
}

impl Storage {
    pub fn new(db: Arc<Database>, files: FileStore) -> Storage {
        Storage {
            db,
            files,
            min_free_bytes: 0,
            claims: Arc::default(),
        }
    }

    /// Refuses to start an object while the store's filesystem is below its floor.
    fn check_floor(&self) -> Result<(), StoreError> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let stat = rustix::fs::statvfs(self.files.root())
            .map_err(|e| StoreError::OutOfResources(io::Error::from(e)))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if free < self.min_free_bytes {
            return Err(StoreError::OutOfResources(io::Error::other(format!(
                "{} MiB free < STORAGE_MIN_FREE_MIB",
                free >> 20
            ))));
        }
        Ok(())
    }

    /// Opens a temporary file for an announced object and writes its preamble and file meta
    /// group; the sender's data set bytes follow unchanged, so the stored file is the original
    /// object byte for byte.
    pub fn begin(&self, announced: &Announced) -> Result<IncomingObject, StoreError> {
        self.check_floor()?;
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(announced.sop_class_uid.as_str())
            .media_storage_sop_instance_uid(announced.sop_instance_uid.as_str())
            .transfer_syntax(announced.transfer_syntax.as_str())
            .source_application_entity_title(announced.calling_ae.as_str())
            .implementation_version_name("SCREENING_GW")
            .build()
            .map_err(|e| StoreError::Meta(announced.sop_instance_uid.clone(), e.to_string()))?;
        let mut prefix = vec![0u8; 128];
        prefix.extend_from_slice(b"DICM");
        meta.write(&mut prefix)
            .map_err(|e| StoreError::Meta(announced.sop_instance_uid.clone(), e.to_string()))?;
        let check = incoming::DataSetCheck::new(&announced.transfer_syntax)
            .map_err(StoreError::Malformed)?;
        let file = self
            .files
            .begin(&prefix)
            .map_err(StoreError::OutOfResources)?;
        Ok(IncomingObject::new(file, check))
    }

    /// Finishes a received object: validate, install, sync, index, then `hook` in the same
    /// transaction (issue 4 writes its `study.image_received` event there), then commit.
    /// Blocking: call from `spawn_blocking`.
    pub fn complete<H>(
        &self,
        incoming: IncomingObject,
        announced: &Announced,
        hook: H,
    ) -> Result<Stored, StoreError>
    where
        H: FnOnce(&WriteTransaction, &InstanceRecord) -> Result<(), DbError>,
    {
        let started = std::time::Instant::now();
        let (mut received, captured) = incoming.finish()?;
        let synced = started.elapsed();
        let attributes = captured.attributes()?;
        let sop_instance_uid = attributes
            .sop_instance_uid
            .clone()
            .ok_or(StoreError::MissingAttribute("SOP Instance UID (0008,0018)"))?;
        let sop_class_uid = attributes
            .sop_class_uid
            .clone()
            .ok_or(StoreError::MissingAttribute("SOP Class UID (0008,0016)"))?;
        let study_instance_uid =
            attributes
                .study_instance_uid
                .clone()
                .ok_or(StoreError::MissingAttribute(
                    "Study Instance UID (0020,000D)",
                ))?;
        let series_instance_uid =
            attributes
                .series_instance_uid
                .clone()
                .ok_or(StoreError::MissingAttribute(
                    "Series Instance UID (0020,000E)",
                ))?;
        if sop_instance_uid != announced.sop_instance_uid {
            return Err(StoreError::Mismatch {
                what: "SOP Instance UID",
                found: sop_instance_uid,
                announced: announced.sop_instance_uid.clone(),
            });
        }
        if sop_class_uid != announced.sop_class_uid {
            return Err(StoreError::Mismatch {
                what: "SOP Class UID",
                found: sop_class_uid,
                announced: announced.sop_class_uid.clone(),
            });
        }
        let relative = FileStore::relative_path(&sop_instance_uid);
        let record = InstanceRecord::new(
            index::Uids {
                sop_instance_uid,
                sop_class_uid,
                series_instance_uid,
                study_instance_uid,
            },
            attributes.data_set,
            index::FileFacts {
                transfer_syntax: announced.transfer_syntax.clone(),
                file_path: relative.clone(),
                file_size: received.size,
                file_sha256: received.sha256.clone(),
                received_at: now_rfc3339(),
                calling_ae: announced.calling_ae.clone(),
            },
        );

        // Stores of one instance at once (two associations, a retry racing the original) take
        // turns from here to the commit, so the first copy is the one kept; stores of different
        // instances go on side by side and share their syncs.
        let _turn = self.claims.claim(&record.sop_instance_uid);
        if index::is_indexed(&self.db, &record.sop_instance_uid)? {
            return Ok(Stored::Duplicate);
        }
        let before_install = started.elapsed();
        self.files
            .install(&received, &relative)
            .map_err(StoreError::OutOfResources)?;
        received.mark_installed();
        // Durable before any index row names it: the index can never outlive its file.
        if let Err(e) = self.files.make_durable() {
            // Nothing indexed, nothing acknowledged: the sender keeps the object and retries.
            let _ = std::fs::remove_file(self.files.absolute(&relative));
            return Err(StoreError::OutOfResources(e));
        }
        let installed = started.elapsed();
        let txn = self.db.begin_write_batched()?;
        if index::contains(&txn, &record.sop_instance_uid)? {
            // The re-index after start-up found the file between the rename and now, and
            // indexed it with the same hook: stored, once.
            return Ok(Stored::Duplicate);
        }
        let indexed = (|| {
            index::insert(
                &txn,
                &record,
                attributes.series_number,
                attributes.study_date,
            )?;
            hook(&txn, &record)?;
            txn.commit()?;
            Ok::<(), DbError>(())
        })();
        if let Err(e) = indexed {
            // Nothing half-written: an acknowledged failure leaves no file behind.
            let _ = std::fs::remove_file(self.files.absolute(&relative));
            return Err(match e {
                DbError::Redb(redb::Error::Io(io)) => StoreError::OutOfResources(io),
                other => StoreError::Db(other),
            });
        }
        tracing::debug!(
            sop_instance_uid = %record.sop_instance_uid,
            finish_us = synced.as_micros() as u64,
            install_and_sync_us = (installed - before_install).as_micros() as u64,
            commit_us = (started.elapsed() - installed).as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "persisted"
        );
        Ok(Stored::New(Box::new(record)))
    }

    /// Indexes files that a crash left installed but unindexed, running `hook` in each index
    /// transaction as [`Storage::complete`] does and `indexed` after each commit. A file is
    /// named by the hash of its SOP Instance UID, so the files the index already has are
    /// known from the index alone and never opened: the cost is a directory walk plus one
    /// streamed read of each new file. Stops early when `stop` is set.
    pub fn reindex_orphans<H, A>(
        &self,
        hook: H,
        mut indexed: A,
        stop: &AtomicBool,
    ) -> Result<Reindexed, StoreError>
    where
        H: Fn(&WriteTransaction, &InstanceRecord) -> Result<(), DbError>,
        A: FnMut(InstanceRecord),
    {
        let known = self.indexed_file_names()?;
        let mut counts = Reindexed::default();
        let root = self.files.root().to_path_buf();
        for a in read_dir_sorted(&root)? {
            if a.file_name().is_some_and(|n| n == "tmp") || !a.is_dir() {
                continue;
            }
            for b in read_dir_sorted(&a)? {
                if stop.load(Ordering::Relaxed) {
                    return Ok(counts);
                }
                for file in read_dir_sorted(&b)? {
                    if file.extension().is_none_or(|e| e != "dcm") {
                        continue;
                    }
                    counts.files += 1;
                    let name = file.file_stem().and_then(|s| s.to_str()).and_then(unhex);
                    if name.is_some_and(|name| known.contains(&name)) {
                        continue;
                    }
                    if let Some(record) = self.reindex_one(&file, &hook)? {
                        counts.indexed += 1;
                        indexed(record);
                    }
                }
            }
        }
        Ok(counts)
    }

    /// Runs [`Storage::reindex_orphans`] on a thread of its own, so start-up (and systemd's
    /// READY) never waits for a walk of the whole store; a store arriving meanwhile is safe,
    /// as each re-index checks the index again in its own write transaction.
    pub fn reindex_in_background<H, A>(&self, hook: H, indexed: A) -> Reindexing
    where
        H: Fn(&WriteTransaction, &InstanceRecord) -> Result<(), DbError> + Send + 'static,
        A: FnMut(InstanceRecord) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let storage = self.clone();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("reindex".into())
            .spawn(move || {
                let started = Instant::now();
                match storage.reindex_orphans(hook, indexed, &stopping) {
                    Ok(counts) => {
                        if counts.indexed > 0 {
                            tracing::warn!(
                                reindexed = counts.indexed,
                                "indexed stored files left unindexed by a crash"
                            );
                        }
                        tracing::info!(
                            files = counts.files,
                            reindexed = counts.indexed,
                            ms = started.elapsed().as_millis() as u64,
                            "store checked against the index"
                        );
                    }
                    Err(e) => tracing::error!("re-indexing the store stopped: {e}"),
                }
            })
            .expect("a thread can be spawned");
        Reindexing {
            stop,
            thread: Some(thread),
        }
    }

    /// The file names (hashes of SOP Instance UIDs) of every indexed instance.
    fn indexed_file_names(&self) -> Result<HashSet<[u8; 32]>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn
            .open_table(crate::db::INSTANCES)
            .map_err(DbError::from)?;
        let mut names = HashSet::with_capacity(table.len().map_err(DbError::from)? as usize);
        for entry in table.iter().map_err(DbError::from)? {
            let (uid, _) = entry.map_err(DbError::from)?;
            names.insert(Sha256::digest(uid.value().as_bytes()).into());
        }
        Ok(names)
    }

    /// Indexes one stored file if the index lacks it. The file is read once, streamed: hashed,
    /// and its data set checked as a received one is, keeping copies of the indexed elements.
    fn reindex_one<H>(&self, path: &Path, hook: &H) -> Result<Option<InstanceRecord>, StoreError>
    where
        H: Fn(&WriteTransaction, &InstanceRecord) -> Result<(), DbError>,
    {
        let (meta, attributes, size, sha256) = match read_stored(path) {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable file in the store; left alone");
                return Ok(None);
            }
        };
        let a = attributes;
        let (Some(sop), Some(class), Some(study), Some(series)) = (
            a.sop_instance_uid.clone(),
            a.sop_class_uid.clone(),
            a.study_instance_uid.clone(),
            a.series_instance_uid.clone(),
        ) else {
            return Ok(None);
        };
        let relative = FileStore::relative_path(&sop);
        if self.files.absolute(&relative) != path {
            return Ok(None);
        }
        let txn = self.db.begin_write()?;
        if index::contains(&txn, &sop)? {
            return Ok(None);
        }
        let record = InstanceRecord::new(
            index::Uids {
                sop_instance_uid: sop,
                sop_class_uid: class,
                series_instance_uid: series,
                study_instance_uid: study,
            },
            a.data_set,
            index::FileFacts {
                transfer_syntax: meta.transfer_syntax().to_string(),
                file_path: relative,
                file_size: size,
                file_sha256: sha256,
                received_at: now_rfc3339(),
                calling_ae: meta
                    .source_application_entity_title()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            },
        );
        index::insert(&txn, &record, a.series_number, a.study_date)?;
        hook(&txn, &record)?;
        txn.commit().map_err(DbError::from)?;
        tracing::info!(sop_instance_uid = %record.sop_instance_uid, "re-indexed a stored file the index did not have");
        Ok(Some(record))
    }
}

/// What a re-index found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reindexed {
    /// Stored files seen.
    pub files: usize,
    /// Of those, files the index lacked and now has.
    pub indexed: usize,
}

/// A re-index running in the background; [`Reindexing::stop`] ends it early.
pub struct Reindexing {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reindexing {
    /// Asks the re-index to stop and waits for it. Blocking: call from `spawn_blocking`.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a stored file in one streamed pass: its file meta, the indexed attributes (after the
/// same checks as a received data set), its size and SHA-256.
fn read_stored(path: &Path) -> Result<(FileMetaTable, index::Attributes, u64, String), StoreError> {
    let unreadable = |e: io::Error| StoreError::Unreadable(e.to_string());
    let mut reader = Hashing {
        inner: BufReader::with_capacity(1 << 16, File::open(path).map_err(unreadable)?),
        hasher: Sha256::new(),
        size: 0,
    };
    let mut preamble = [0u8; 128];
    reader.read_exact(&mut preamble).map_err(unreadable)?;
    let meta = FileMetaTable::from_reader(&mut reader)
        .map_err(|e| StoreError::Unreadable(e.to_string()))?;
    let mut check =
        incoming::DataSetCheck::new(meta.transfer_syntax()).map_err(StoreError::Malformed)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        check.feed(&buf[..n]).map_err(StoreError::Malformed)?;
    }
    let attributes = check
        .finish()
        .map_err(StoreError::Malformed)?
        .attributes()?;
    let sha256 = files::hex(&reader.hasher.finalize());
    Ok((meta, attributes, reader.size, sha256))
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// A file name of the store back to the hash it spells; `None` for anything else.
fn unhex(name: &str) -> Option<[u8; 32]> {
    let bytes = name.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(StoreError::OutOfResources)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("UTC formats")
}

#[cfg(test)]
mod tests {
    use super::InstanceClaims;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_second_store_of_one_instance_waits_for_the_first_and_others_do_not() {
        let claims = Arc::new(InstanceClaims::default());
        let first = claims.claim("1.2.3");
        // Another instance is not held up.
        drop(claims.claim("1.2.4"));
        let second_started = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (claims, started) = (claims.clone(), second_started.clone());
            std::thread::spawn(move || {
                let _turn = claims.claim("1.2.3");
                started.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !second_started.load(Ordering::SeqCst),
            "both held 1.2.3 at once"
        );
        drop(first);
        waiter.join().unwrap();
        assert!(second_started.load(Ordering::SeqCst));
        assert!(claims.held.lock().unwrap().is_empty());
    }
}
