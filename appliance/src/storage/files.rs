//! The hash-addressed image store: `storage/hh/hh/<sha256 of SOP Instance UID>.dcm`.
//!
//! An object is written to `storage/tmp/`, renamed into place, and then made durable, with
//! everything else written to the store's file system meanwhile, by one `syncfs`
//! ([`FileStore::make_durable`]) before the sender is answered. One sync per object instead of
//! four (file, directory, parent directory, index), and objects arriving together on several
//! associations share it: the kernel commits the journal once for every caller waiting.
//! A file's pages are written back before it is renamed ([`PartFile::finish`]), so a crash
//! before the answer leaves a temporary file (removed at start-up) or a complete file at its
//! final name; one after the answer, a complete file, which the index has or the re-index after
//! start-up adds ([`crate::storage::Storage::reindex_orphans`]).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Where objects live on disk.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    tmp: PathBuf,
    /// The store's root directory, held open for `syncfs`.
    root_dir: Arc<File>,
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
            root_dir: Arc::new(File::open(root)?),
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
            queued: 0,
        };
        object.write_all(prefix)?;
        Ok(object)
    }

    /// Moves a complete temporary file to its final place. Not yet durable: see
    /// [`FileStore::make_durable`].
    pub fn install(&self, file: &ReceivedFile, relative: &str) -> io::Result<()> {
        let target = self.absolute(relative);
        let dir = target.parent().expect("hashed paths have a parent");
        // The 256 first-level directories exist from `open`; the second level is made on first
        // use (65,536 directories up front would cost 256 MB of directory blocks).
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir)?,
            Err(e) => return Err(e),
        }
        fs::rename(&file.path, &target)
    }

    /// Makes everything written to the store's file system so far durable: file contents,
    /// renames, new directories, and the index's pages when it lives there too. One `syncfs`
    /// (one journal commit and one cache flush on ext4 and XFS), shared by every thread that
    /// calls it while that commit is under way. POSIX would ask for an fsync of each file and
    /// each directory touched; Linux's `syncfs` covers them all and reports write-back errors
    /// (since 5.8).
    pub fn make_durable(&self) -> io::Result<()> {
        rustix::fs::syncfs(&*self.root_dir).map_err(io::Error::from)
    }
}

/// Bytes written after which the disk is asked to start writing back (see
/// [`PartFile::start_writeback`]).
const WRITEBACK_EVERY: u64 = 256 << 10;

/// A temporary file being written (an object being received), hashed as it is written.
/// Dropped unfinished, the file is removed.
pub struct PartFile {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    /// Bytes whose write-back has been queued (the file's first `queued` bytes).
    queued: u64,
}

impl Write for PartFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("open until finished");
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if self.size - self.queued >= WRITEBACK_EVERY {
            self.start_writeback()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until finished").flush()
    }
}

impl PartFile {
    /// Starts writing what has arrived so far to disk while the rest is still being received,
    /// so the sync before the answer to a 27 MB mammogram only waits for its tail. Queues the
    /// write-back and returns (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`): no journal
    /// commit, no cache flush — those come once, in [`FileStore::make_durable`].
    /// Only the bytes since the last call are queued: the kernel is not asked to look over a
    /// 27 MB file's pages a hundred times.
    fn start_writeback(&mut self) -> io::Result<()> {
        let file = self.file.as_mut().expect("open until finished");
        file.flush()?;
        sync_file_range(
            file.get_ref(),
            self.queued,
            self.size - self.queued,
            libc::SYNC_FILE_RANGE_WRITE,
        )?;
        self.queued = self.size;
        Ok(())
    }

    /// Flushes the file and waits until its pages are written back: complete, and on disk
    /// before its rename can be, but not durable until [`FileStore::make_durable`] (written
    /// back is not flushed from the disk's cache; the journal commit that makes the rename
    /// durable flushes that cache first). So a crash can never leave a short file at an
    /// object's final name.
    pub fn finish(mut self) -> io::Result<ReceivedFile> {
        let writer = self.file.take().expect("finished once");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        // The whole file (offset 0, length 0: to its end), so pages already queued are waited for.
        sync_file_range(
            &file,
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )?;
        Ok(ReceivedFile {
            path: std::mem::take(&mut self.path),
            sha256: hex(&self.hasher.clone().finalize()),
            size: self.size,
            installed: false,
        })
    }
}

/// `sync_file_range(2)` over `length` bytes from `offset` (0: to the end of the file). By hand
/// because neither std nor rustix has it.
fn sync_file_range(file: &File, offset: u64, length: u64, flags: libc::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(length)) = (offset.try_into(), length.try_into()) else {
        return Err(io::Error::other(
            "object larger than the file system allows",
        ));
    };
    // SAFETY: a plain system call on an open descriptor we own; it reads no memory of ours.
    let done = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, flags) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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

/// A complete temporary file (durable once made so by [`FileStore::make_durable`]). Dropped before [`ReceivedFile::mark_installed`], the
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
