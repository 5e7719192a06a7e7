//! The thumbnail pool: a few supervised worker threads that take committed [`Job`]s from a
//! channel, have each object rendered in a child process ([`super::child`]), write the JPEG
//! beside the store, and — in one transaction — queue the image event and drop the job.
//!
//! - A renderer that crashes costs one attempt ([`jobs::after_failure`]): the job is retried
//!   after a delay, and after [`jobs::MAX_ATTEMPTS`] quarantined (reported `thumbnail: null`
//!   with the reason, kept in the table for `gateway status`).
//! - A worker thread that dies (a panic outside the renderer) is respawned by the supervisor
//!   thread, with a log line at `err`; the job it held is queued again (its attempt counted).
//!   [`Monitor`] tells the health check how many workers run.
//! - Stopping lets the job in hand finish; the rest stay in the table for the next start,
//!   which resubmits them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use shared::wire::event::Thumbnail;
use tokio::sync::mpsc;

use super::child::{Outcome, Renderer};
use super::jobs::{self, AfterFailure, Begin, Job};
use super::render::{Rendered, ThumbnailError};
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

/// A bounded pool of supervised thumbnail worker threads fed through a channel.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// What a worker does with one job: finished with it (reported, quarantined, or left in the
/// table after a database error), or try it again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Done,
    RetryAfter(Duration),
}

type Work = Arc<dyn Fn(&Job) -> Step + Send + Sync>;

/// What a worker thread is told to do next.
enum Task {
    Run(Box<Job>),
    /// Only wakes a waiting thread so that it sees the pool is stopping.
    Wake,
}

struct Shared {
    queue: mpsc::UnboundedSender<Task>,
    receiver: Mutex<mpsc::UnboundedReceiver<Task>>,
    stopping: AtomicBool,
    monitor: Monitor,
    work: Work,
    supervisor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How the workers are, for the health check.
#[derive(Debug, Clone)]
pub struct Monitor(Arc<MonitorState>);

#[derive(Debug)]
struct MonitorState {
    configured: usize,
    running: AtomicUsize,
    respawns: AtomicU64,
    last_death: Mutex<Option<String>>,
}

/// A snapshot of [`Monitor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    pub configured: usize,
    pub running: usize,
    pub respawns: u64,
    /// Why the last worker that died died.
    pub last_death: Option<String>,
}

impl Monitor {
    pub fn status(&self) -> WorkerStatus {
        WorkerStatus {
            configured: self.0.configured,
            running: self.0.running.load(Ordering::SeqCst),
            respawns: self.0.respawns.load(Ordering::SeqCst),
            last_death: self
                .0
                .last_death
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

impl Pool {
    /// Starts `threads` supervised workers rendering through `renderer`, and resubmits the
    /// jobs a previous run left (quarantined ones stay as they are).
    pub fn start(
        db: Arc<Database>,
        places: Places,
        renderer: Renderer,
        doorbell: Doorbell,
        threads: usize,
    ) -> Result<Pool, DbError> {
        let leftover = jobs::pending_jobs(&db)?;
        let work_db = db.clone();
        let pool = Pool::start_with(
            threads,
            Arc::new(move |job: &Job| {
                match process(&work_db, &places, &renderer, job) {
                    Ok(step) => {
                        doorbell.ring();
                        step
                    }
                    Err(e) => {
                        // The job stays in the table: it runs again on the next start.
                        tracing::error!(
                            sop_instance_uid = %job.record.sop_instance_uid,
                            "image event not queued: {e}"
                        );
                        Step::Done
                    }
                }
            }),
        );
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

    /// The pool machinery around any `work` (the unit tests give it a fake).
    fn start_with(threads: usize, work: Work) -> Pool {
        let (queue, receiver) = mpsc::unbounded_channel::<Task>();
        let configured = threads.max(1);
        let shared = Arc::new(Shared {
            queue,
            receiver: Mutex::new(receiver),
            stopping: AtomicBool::new(false),
            monitor: Monitor(Arc::new(MonitorState {
                configured,
                running: AtomicUsize::new(0),
                respawns: AtomicU64::new(0),
                last_death: Mutex::new(None),
            })),
            work,
            supervisor: Mutex::new(None),
        });
        let supervised = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name("thumbnail-supervisor".into())
            .spawn(move || supervise(supervised, configured))
            .expect("a thread can be spawned");
        *shared.supervisor.lock().expect("pool lock") = Some(supervisor);
        Pool { shared }
    }

    /// Queues a committed job.
    pub fn submit(&self, job: Job) {
        let _ = self.shared.queue.send(Task::Run(Box::new(job)));
    }

    /// The workers' state, for the health check.
    pub fn monitor(&self) -> Monitor {
        self.shared.monitor.clone()
    }

    /// Lets the job in hand finish and stops the workers; queued jobs wait in the table for the
    /// next start. Blocking: call from `spawn_blocking` or outside the runtime.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.shared.monitor.0.configured {
            // One wake-up per thread, in case it is waiting for work.
            let _ = self.shared.queue.send(Task::Wake);
        }
        let supervisor = self.shared.supervisor.lock().expect("pool lock").take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.join();
        }
    }
}

/// A worker's end, told to the supervisor (also when it unwinds from a panic).
struct Exit {
    slot: usize,
    /// The job it held, if it died during one.
    job: Option<Box<Job>>,
}

/// Starts the workers, then waits for any to end: while the pool runs, an ended worker died,
/// and is logged and replaced; once it stops, returns when the last has ended.
fn supervise(shared: Arc<Shared>, configured: usize) {
    let (died, deaths) = std::sync::mpsc::channel::<Exit>();
    let mut handles: Vec<Option<std::thread::JoinHandle<()>>> = (0..configured)
        .map(|slot| spawn_worker(shared.clone(), slot, died.clone()))
        .collect();
    while handles.iter().any(Option::is_some) {
        let Ok(exit) = deaths.recv() else { return };
        let Some(handle) = handles.get_mut(exit.slot).and_then(Option::take) else {
            continue;
        };
        let why = match handle.join() {
            Ok(()) => "it returned".to_string(),
            Err(payload) => panic_message(payload.as_ref()),
        };
        if shared.stopping.load(Ordering::SeqCst) {
            continue;
        }
        tracing::error!(
            "thumbnail worker {} died ({why}); starting another in its place",
            exit.slot
        );
        let monitor = &shared.monitor.0;
        monitor.respawns.fetch_add(1, Ordering::SeqCst);
        *monitor.last_death.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        if let Some(job) = exit.job {
            // Its attempt is counted: a job that kills every worker ends quarantined.
            let _ = shared.queue.send(Task::Run(job));
        }
        handles[exit.slot] = spawn_worker(shared.clone(), exit.slot, died.clone());
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("panicked: {text}")
}

/// Counts a worker in while it lives and tells the supervisor when it ends, however it ends.
struct Alive {
    slot: usize,
    job: Option<Box<Job>>,
    monitor: Monitor,
    died: std::sync::mpsc::Sender<Exit>,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.monitor.0.running.fetch_sub(1, Ordering::SeqCst);
        let _ = self.died.send(Exit {
            slot: self.slot,
            job: self.job.take(),
        });
    }
}

fn spawn_worker(
    shared: Arc<Shared>,
    slot: usize,
    died: std::sync::mpsc::Sender<Exit>,
) -> Option<std::thread::JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name(format!("thumbnail-{slot}"))
        .spawn(move || {
            shared.monitor.0.running.fetch_add(1, Ordering::SeqCst);
            let mut alive = Alive {
                slot,
                job: None,
                monitor: shared.monitor.clone(),
                died,
            };
            loop {
                let task = shared
                    .receiver
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .blocking_recv();
                if shared.stopping.load(Ordering::SeqCst) {
                    return; // queued jobs stay in the table for the next start
                }
                let job = match task {
                    Some(Task::Run(job)) => job,
                    Some(Task::Wake) => continue,
                    None => return,
                };
                alive.job = Some(job.clone());
                if let Step::RetryAfter(after) = (shared.work)(&job) {
                    retry_later(&shared, job, after);
                }
                alive.job = None;
            }
        });
    // Out of threads or memory: the slot stays empty, and the health check says fewer workers
    // run than configured; queued jobs wait in the table for the next start.
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!("cannot start thumbnail worker {slot}: {e}");
            None
        }
    }
}

/// Queues the job again after `after`, unless the pool stops first (it then waits in the
/// table for the next start).
fn retry_later(shared: &Arc<Shared>, job: Box<Job>, after: Duration) {
    let queue = shared.queue.clone();
    let _ = std::thread::Builder::new()
        .name("thumbnail-retry".into())
        .spawn(move || {
            std::thread::sleep(after);
            let _ = queue.send(Task::Run(job));
        });
}

/// One attempt at one job: count it, render in a child, and report — or, after the last
/// failed attempt, quarantine.
fn process(
    db: &Database,
    places: &Places,
    renderer: &Renderer,
    job: &Job,
) -> Result<Step, DbError> {
    let uid = job.record.sop_instance_uid.as_str();
    let batched = job.fresh && job.attempts == 0;
    let job = match jobs::begin_attempt(db, uid, batched)? {
        (Begin::Render, Some(job)) => job,
        (Begin::Quarantine(reason), Some(job)) => {
            give_up(db, places, &job, &reason)?;
            return Ok(Step::Done);
        }
        _ => return Ok(Step::Done),
    };
    let started = Instant::now();
    let outcome = renderer.render(&places.storage.join(&job.record.file_path));
    tracing::debug!(
        sop_instance_uid = %uid,
        "thumbnail attempt {} took {} ms",
        job.attempts,
        started.elapsed().as_millis()
    );
    let (thumbnail, extra) = match outcome {
        Outcome::Rendered { rendered, extra } => (
            save(places, &job.record, rendered).map_err(|e| e.to_string()),
            extra,
        ),
        Outcome::NoThumbnail { reason, extra } => (Err(reason), extra),
        Outcome::Crashed(why) => {
            return match jobs::after_failure(job.attempts) {
                AfterFailure::Retry(after) => {
                    tracing::warn!(
                        sop_instance_uid = %uid,
                        "thumbnail attempt {} of {} failed: {why}; trying again in {} s",
                        job.attempts,
                        jobs::MAX_ATTEMPTS,
                        after.as_secs()
                    );
                    Ok(Step::RetryAfter(after))
                }
                AfterFailure::Quarantine => {
                    let reason = format!(
                        "the thumbnail renderer failed {} times on this object; last: {why}",
                        job.attempts
                    );
                    give_up(db, places, &job, &reason)?;
                    Ok(Step::Done)
                }
            };
        }
    };
    if let Err(why) = &thumbnail {
        tracing::warn!(
            sop_instance_uid = %uid,
            transfer_syntax = %job.record.transfer_syntax,
            "no thumbnail for {uid}: {why}"
        );
    }
    // Batched: lost in a crash, the job (committed with the image) is done again.
    db.write_batched(|txn| {
        events::image_received(txn, &places.source_system, &job.record, &extra, thumbnail)?;
        jobs::finish(txn, uid)
    })?;
    Ok(Step::Done)
}

/// Quarantines a job and tells the cloud, in one transaction.
fn give_up(db: &Database, places: &Places, job: &Job, reason: &str) -> Result<(), DbError> {
    tracing::error!(
        sop_instance_uid = %job.record.sop_instance_uid,
        "thumbnail job quarantined: {reason}. The image stays stored and is reported without a \
         thumbnail; `gateway status` lists it"
    );
    db.write(|txn| {
        events::image_received(
            txn,
            &places.source_system,
            &job.record,
            &ImageExtra::default(),
            Err(reason.to_string()),
        )?;
        jobs::quarantine(txn, job, reason)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn a_worker_that_panics_is_replaced_and_its_job_queued_again() {
        let (done, finished) = channel::<String>();
        let panicked = Arc::new(AtomicBool::new(false));
        let seen = panicked.clone();
        let done = Mutex::new(done);
        let pool = Pool::start_with(
            1,
            Arc::new(move |job: &Job| {
                let uid = job.record.sop_instance_uid.clone();
                if uid == "1.2.3" && !seen.swap(true, Ordering::SeqCst) {
                    panic!("a bug outside the renderer");
                }
                done.lock().unwrap().send(uid).unwrap();
                Step::Done
            }),
        );
        pool.submit(jobs::tests::job(0, false));
        let mut later = jobs::tests::job(0, false);
        later.record.sop_instance_uid = "1.2.4".into();
        pool.submit(later);
        let mut got = vec![
            finished.recv_timeout(WAIT).expect("a job is done"),
            finished.recv_timeout(WAIT).expect("a job is done"),
        ];
        got.sort();
        // The job in hand when the worker died ran again on its replacement.
        assert_eq!(got, ["1.2.3", "1.2.4"]);
        let status = pool.monitor().status();
        assert_eq!(
            (status.configured, status.running, status.respawns),
            (1, 1, 1)
        );
        assert!(
            status
                .last_death
                .as_deref()
                .is_some_and(|d| d.contains("a bug outside the renderer")),
            "{status:?}"
        );
        pool.stop();
        assert_eq!(pool.monitor().status().running, 0);
    }

    #[test]
    fn a_retried_job_comes_back_and_stopping_ends_every_worker() {
        let (done, finished) = channel::<u32>();
        let done = Mutex::new(done);
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let pool = Pool::start_with(
            2,
            Arc::new(move |_job: &Job| {
                let n = counted.fetch_add(1, Ordering::SeqCst) as u32 + 1;
                done.lock().unwrap().send(n).unwrap();
                if n < 3 {
                    Step::RetryAfter(Duration::from_millis(10))
                } else {
                    Step::Done
                }
            }),
        );
        pool.submit(jobs::tests::job(0, false));
        for n in 1..=3 {
            assert_eq!(finished.recv_timeout(WAIT).unwrap(), n);
        }
        assert_eq!(pool.monitor().status().running, 2);
        pool.stop();
        let status = pool.monitor().status();
        assert_eq!((status.running, status.respawns), (0, 0));
    }
}
