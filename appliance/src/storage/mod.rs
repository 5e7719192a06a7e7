//! Received objects: the hash-addressed file store plus the redb index, kept consistent.
//!
//! Order of a store: temporary file → fsync → (in one redb write transaction, which also
//! serialises concurrent stores of the same instance) duplicate check → rename + directory fsync
//! → index rows → caller's hook → commit. A crash before the rename leaves a temporary file that
//! start-up removes; a crash after it leaves a complete file that start-up re-indexes.

pub mod files;
pub mod index;
pub mod sop_classes;

use std::io;
use std::path::Path;
use std::sync::Arc;

use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::OpenFileOptions;
use redb::WriteTransaction;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::db::{Database, DbError};
pub use files::{FileStore, IncomingObject, ReceivedFile};
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
}

impl Storage {
    pub fn new(db: Arc<Database>, files: FileStore) -> Storage {
        Storage { db, files }
    }

    /// Opens a temporary file for an announced object and writes its preamble and file meta
    /// group; the sender's data set bytes follow unchanged, so the stored file is the original
    /// object byte for byte.
    pub fn begin(&self, announced: &Announced) -> Result<IncomingObject, StoreError> {
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
        self.files
            .begin(&prefix)
            .map_err(StoreError::OutOfResources)
    }

    /// Finishes a received object: fsync, validate, install, index, then `hook` in the same
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
        let mut received = incoming.finish().map_err(StoreError::OutOfResources)?;
        let synced = started.elapsed();
        let attributes = read_attributes(&received.path)?;
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

        let txn = self.db.begin_write()?;
        if index::contains(&txn, &record.sop_instance_uid)? {
            return Ok(Stored::Duplicate);
        }
        let before_install = started.elapsed();
        self.files
            .install(&received, &relative)
            .map_err(StoreError::OutOfResources)?;
        received.mark_installed();
        let installed = started.elapsed();
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
            fsync_us = synced.as_micros() as u64,
            install_us = (installed - before_install).as_micros() as u64,
            commit_us = (started.elapsed() - installed).as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "persisted"
        );
        Ok(Stored::New(Box::new(record)))
    }

    /// Indexes files that a crash left installed but unindexed, running `hook` in each index
    /// transaction as [`Storage::complete`] does. Returns how many it indexed.
    pub fn reindex_orphans<H>(&self, hook: H) -> Result<usize, StoreError>
    where
        H: Fn(&WriteTransaction, &InstanceRecord) -> Result<(), DbError>,
    {
        let mut count = 0;
        let root = self.files.root().to_path_buf();
        for a in read_dir_sorted(&root)? {
            if a.file_name().is_some_and(|n| n == "tmp") || !a.is_dir() {
                continue;
            }
            for b in read_dir_sorted(&a)? {
                for file in read_dir_sorted(&b)? {
                    if file.extension().is_none_or(|e| e != "dcm") {
                        continue;
                    }
                    if self.reindex_one(&file, &hook)? {
                        count += 1;
                    }
                }
            }
        }
        Ok(count)
    }

    fn reindex_one<H>(&self, path: &Path, hook: &H) -> Result<bool, StoreError>
    where
        H: Fn(&WriteTransaction, &InstanceRecord) -> Result<(), DbError>,
    {
        let obj = match OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
        {
            Ok(obj) => obj,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable file in the store; left alone");
                return Ok(false);
            }
        };
        let meta = obj.meta().clone();
        let a = index::Attributes::read(&obj);
        let (Some(sop), Some(class), Some(study), Some(series)) = (
            a.sop_instance_uid.clone(),
            a.sop_class_uid.clone(),
            a.study_instance_uid.clone(),
            a.series_instance_uid.clone(),
        ) else {
            return Ok(false);
        };
        let relative = FileStore::relative_path(&sop);
        if self.files.absolute(&relative) != path {
            return Ok(false);
        }
        let txn = self.db.begin_write()?;
        if index::contains(&txn, &sop)? {
            return Ok(false);
        }
        let bytes = std::fs::read(path).map_err(StoreError::OutOfResources)?;
        let record = InstanceRecord::new(
            index::Uids {
                sop_instance_uid: sop,
                sop_class_uid: class,
                series_instance_uid: series,
                study_instance_uid: study,
            },
            a.data_set,
            index::FileFacts {
                transfer_syntax: meta.transfer_syntax().trim_end_matches('\0').to_string(),
                file_path: relative,
                file_size: bytes.len() as u64,
                file_sha256: files::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
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
        Ok(true)
    }
}

fn read_attributes(path: &Path) -> Result<index::Attributes, StoreError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| StoreError::Unreadable(e.to_string()))?;
    Ok(index::Attributes::read(&obj))
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
