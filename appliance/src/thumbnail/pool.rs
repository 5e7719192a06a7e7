//! The thumbnail pool: a few blocking threads that take committed [`Job`]s from a channel, render
//! each object's thumbnail, write it beside the store, and — in one transaction — queue the image
//! event and drop the job. Stopping lets the job in hand finish; the rest stay in the table for
//! the next start, which resubmits them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use dicom_object::open_file;
use shared::wire::event::Thumbnail;
use tokio::sync::mpsc;

use super::jobs::{self, Job};
use super::render::{render, Rendered, ThumbnailError};
use crate::cloud::events::{self, ImageExtra};
use crate::cloud::outbox::Doorbell;
use crate::db::{Database, DbError};
use crate::storage::InstanceRecord;

/// Where the workers read objects and write thumbnails, and what they say about themselves.
#[derive(Debug, Clone)]
pub struct Places {
    /// The image store's root (`STATE_DIR/storage`).
    pub storage: PathBuf,
    /// `STATE_DIR/thumbnails`.
    pub thumbnails: PathBuf,
    /// This gateway's name, as `source_system` of its events.
    pub source_system: String,
}

/// A bounded pool of thumbnail worker threads fed through a channel.
#[derive(Clone)]
pub struct Pool {
    queue: mpsc::UnboundedSender<Task>,
    threads: Arc<Threads>,
}

/// What a worker thread is told to do next.
enum Task {
    Run(Box<Job>),
    /// Only wakes a waiting thread so that it sees the pool is stopping.
    Wake,
}

/// The worker threads, and whether they have been told to stop.
struct Threads {
    stopping: AtomicBool,
    handles: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Pool {
    /// Starts `threads` blocking workers and resubmits the jobs a previous run left.
    pub fn start(
        db: Arc<Database>,
        places: Places,
        doorbell: Doorbell,
        threads: usize,
    ) -> Result<Pool, DbError> {
        let (queue, receiver) = mpsc::unbounded_channel::<Task>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let workers = Arc::new(Threads {
            stopping: AtomicBool::new(false),
            handles: std::sync::Mutex::new(Vec::new()),
        });
        for _ in 0..threads.max(1) {
            let receiver = receiver.clone();
            let db = db.clone();
            let places = places.clone();
            let doorbell = doorbell.clone();
            let pool_ref = workers.clone();
            let handle = std::thread::Builder::new()
                .name("thumbnail".into())
                .spawn(move || loop {
                    let task = receiver.lock().expect("queue lock").blocking_recv();
                    if pool_ref.stopping.load(Ordering::SeqCst) {
                        return; // queued jobs stay in the table for the next start
                    }
                    let Some(Task::Run(job)) = task else { continue };
                    if let Err(e) = process(&db, &places, &job) {
                        // The job stays in the table: it runs again on the next start.
                        tracing::error!(
                            sop_instance_uid = %job.record.sop_instance_uid,
                            "image event not queued: {e}"
                        );
                    } else {
                        doorbell.ring();
                    }
                })
                .expect("a thread can be spawned");
            workers.handles.lock().expect("pool lock").push(handle);
        }
        let pool = Pool {
            queue,
            threads: workers,
        };
        let leftover = jobs::pending_jobs(&db)?;
        if !leftover.is_empty() {
            tracing::info!(
                "resuming {} thumbnail job(s) from the last run",
                leftover.len()
            );
        }
        for job in leftover {
            pool.submit(job);
        }
        Ok(pool)
    }

    /// Queues a committed job.
    pub fn submit(&self, job: Job) {
        let _ = self.queue.send(Task::Run(Box::new(job)));
    }

    /// Lets the job in hand finish and stops the workers; queued jobs wait in the table for the
    /// next start. Blocking: call from `spawn_blocking` or outside the runtime.
    pub fn stop(&self) {
        self.threads.stopping.store(true, Ordering::SeqCst);
        let threads: Vec<_> = self
            .threads
            .handles
            .lock()
            .expect("pool lock")
            .drain(..)
            .collect();
        for _ in &threads {
            // One wake-up per thread, in case it is waiting for work.
            let _ = self.queue.send(Task::Wake);
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Renders one job's thumbnail and queues its image event.
fn process(db: &Database, places: &Places, job: &Job) -> Result<(), DbError> {
    let record = &job.record;
    let path = places.storage.join(&record.file_path);
    let started = std::time::Instant::now();
    let opened = open_file(&path).map_err(|e| ThumbnailError::Open(e.to_string()));
    let (thumbnail, extra) = match opened {
        Ok(object) => {
            let extra = ImageExtra::read(&object);
            let thumbnail = match render(&object).and_then(|r| save(places, record, r)) {
                Ok(thumbnail) => Some(thumbnail),
                Err(e) => {
                    tracing::warn!(
                        sop_instance_uid = %record.sop_instance_uid,
                        transfer_syntax = %record.transfer_syntax,
                        "no thumbnail for {}: {e}",
                        record.sop_instance_uid
                    );
                    None
                }
            };
            (thumbnail, extra)
        }
        Err(e) => {
            tracing::warn!(sop_instance_uid = %record.sop_instance_uid, "no thumbnail: {e}");
            (None, ImageExtra::default())
        }
    };
    tracing::debug!(
        sop_instance_uid = %record.sop_instance_uid,
        "thumbnail step took {} ms",
        started.elapsed().as_millis()
    );
    db.write(|txn| {
        events::image_received(txn, &places.source_system, record, &extra, thumbnail)?;
        jobs::finish(txn, &record.sop_instance_uid)
    })
}

/// Writes the JPEG beside the store (temporary file, then rename) and inlines it.
fn save(
    places: &Places,
    record: &InstanceRecord,
    rendered: Rendered,
) -> Result<Thumbnail, ThumbnailError> {
    let relative = Path::new(&record.file_path).with_extension("jpg");
    let path = places.thumbnails.join(relative);
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("thumbnail paths have a parent");
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(&rendered.jpeg)?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| ThumbnailError::Encode(format!("writing {}: {e}", path.display())))?;
    Ok(Thumbnail {
        format: "jpeg".into(),
        width: rendered.width,
        height: rendered.height,
        data: base64::engine::general_purpose::STANDARD.encode(&rendered.jpeg),
    })
}
