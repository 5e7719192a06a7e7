//! The hash-addressed image store: `storage/hh/hh/<sha256 of SOP Instance UID>.dcm`.
//!
//! An object is written to `storage/tmp/`, fsynced, then renamed into place and the directory
//! fsynced, and only then indexed. A crash leaves either a temporary file (removed at start-up)
//! or a complete file that [`crate::storage::Storage::reindex_orphans`] indexes on restart.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where objects live on disk.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl FileStore {
    /// Creates the directories and removes temporary files a crash left behind.
    pub fn open(root: &Path) -> io::Result<FileStore> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp)?;
        let mut created = false;
        for byte in 0..=255u8 {
            match fs::create_dir(root.join(format!("{byte:02x}"))) {
                Ok(()) => created = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        if created {
            File::open(root)?.sync_all()?;
        }
        for entry in fs::read_dir(&tmp)? {
            let entry = entry?;
            tracing::info!(file = %entry.path().display(), "removing an incomplete upload left by a crash");
            let _ = fs::remove_file(entry.path());
        }
        Ok(FileStore {
            root: root.to_path_buf(),
            tmp,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store-relative path of an instance: hash-addressed so no UID reaches the file system.
    pub fn relative_path(sop_instance_uid: &str) -> String {
        let hash = hex(&Sha256::digest(sop_instance_uid.as_bytes()));
        format!("{}/{}/{}.dcm", &hash[0..2], &hash[2..4], hash)
    }

    pub fn absolute(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Starts a new object in a temporary file; `prefix` (preamble and file meta) is written and
    /// hashed first.
    pub fn begin(&self, prefix: &[u8]) -> io::Result<PartFile> {
        let path = self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = File::options().write(true).create_new(true).open(&path)?;
        let mut object = PartFile {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            path,
            hasher: Sha256::new(),
            size: 0,
            unsynced: 0,
            early_sync: None,
        };
        object.write_all(prefix)?;
        Ok(object)
    }

    /// Moves a complete temporary file to its final place and makes the rename durable.
    pub fn install(&self, file: &ReceivedFile, relative: &str) -> io::Result<()> {
        let target = self.absolute(relative);
        let dir = target.parent().expect("hashed paths have a parent");
        // The 256 first-level directories exist from `open`; a new second-level one must have
        // its entry made durable too, or a crash could lose a file the index already names.
        // Both fsyncs come after the rename, so one journal commit covers mkdir and rename.
        let new_dir = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                true
            }
            Err(e) => return Err(e),
        };
        fs::rename(&file.path, &target)?;
        File::open(dir)?.sync_all()?;
        if new_dir {
            File::open(dir.parent().expect("two levels"))?.sync_all()?;
        }
        Ok(())
    }
}

/// Bytes written after which the disk is asked to start writing back (see
/// [`PartFile::start_writeback`]).
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A temporary file being written (an object being received), hashed as it is written.
/// Dropped unfinished, the file is removed.
pub struct PartFile {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    unsynced: u64,
    early_sync: Option<std::thread::JoinHandle<()>>,
}

impl Write for PartFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("open until finished");
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.unsynced += n as u64;
        if self.unsynced >= WRITEBACK_EVERY {
            self.start_writeback()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until finished").flush()
    }
}

impl PartFile {
    /// Starts flushing what has arrived so far to disk on a helper thread while the rest is
    /// still being received, so the final fsync of a 27 MB mammogram only waits for its tail.
    /// At most one such flush runs at a time; the final [`PartFile::finish`] still
    /// fsyncs everything.
    fn start_writeback(&mut self) -> io::Result<()> {
        self.unsynced = 0;
        if self.early_sync.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let file = self.file.as_mut().expect("open until finished");
        file.flush()?;
        let clone = file.get_ref().try_clone()?;
        self.early_sync = Some(std::thread::spawn(move || {
            let _ = clone.sync_data();
        }));
        Ok(())
    }

    /// Flushes and fsyncs the file: after this the bytes are on disk.
    pub fn finish(mut self) -> io::Result<ReceivedFile> {
        let writer = self.file.take().expect("finished once");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        if let Some(early) = self.early_sync.take() {
            let _ = early.join();
        }
        file.sync_all()?;
        Ok(ReceivedFile {
            path: std::mem::take(&mut self.path),
            sha256: hex(&self.hasher.clone().finalize()),
            size: self.size,
            installed: false,
        })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A complete, fsynced temporary file. Dropped before [`ReceivedFile::mark_installed`], the
/// file is removed.
pub struct ReceivedFile {
    pub path: PathBuf,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    pub size: u64,
    installed: bool,
}

impl ReceivedFile {
    pub fn mark_installed(&mut self) {
        self.installed = true;
    }
}

impl Drop for ReceivedFile {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Opens a stored Part 10 file positioned at its data set: after the 128-byte preamble, `DICM`
/// and the file meta group, whose length the group's first element gives (PS3.10 7.1). What a
/// C-GET or C-MOVE sub-operation sends, byte for byte as it was received.
pub fn open_data_set(path: &Path) -> io::Result<File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(128))?;
    let meta = dicom_object::meta::FileMetaTable::from_reader((&mut file).take(1 << 20))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    // The group length element itself: tag (4), VR (2), length (2), value (4).
    let data_set_at = 128 + 4 + 12 + u64::from(meta.information_group_length);
    file.seek(SeekFrom::Start(data_set_at))?;
    Ok(file)
}
