//! The senders: one task per destination, sending its queue oldest first over one association
//! kept open while there is work.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::backoff::Exponential;
use tokio::sync::{watch, Notify};

use super::commitment;
use super::queue::{self, Outcome, Queued};
use super::Destination;
use crate::db::{now_ms, Database, DbError};
use crate::dimse::scu::{Scu, ScuError};
use crate::dimse::status;
use crate::storage::files::open_data_set;

/// Entries taken from the queue per round; also the most presentation contexts proposed at once
/// (one per distinct SOP class and transfer syntax among them; DICOM allows 128).
const BATCH: usize = 32;
/// How long an idle association is kept open for the next image.
const IDLE_RELEASE: Duration = Duration::from_secs(10);
/// How often an empty queue is looked at without a wake-up (a safety net, not the path).
const IDLE_POLL: Duration = Duration::from_secs(5);

/// The configured destinations and the bell rung after each store; `gateway serve` starts the
/// senders once the runtime runs ([`Forwarder::start`]).
#[derive(Clone, Default)]
pub struct Forwarder {
    wake: Arc<Notify>,
    destinations: Arc<[Destination]>,
}

impl Forwarder {
    pub fn new(destinations: Vec<Destination>) -> Forwarder {
        Forwarder {
            wake: Arc::new(Notify::new()),
            destinations: destinations.into(),
        }
    }

    /// Starts one sender per destination; they stop when `shutdown` turns true.
    pub fn start(&self, settings: SenderSettings, shutdown: watch::Receiver<bool>) {
        for destination in self.destinations.iter() {
            let sender = Sender {
                db: settings.db.clone(),
                storage_root: settings.storage_root.clone(),
                calling_ae: settings.calling_ae.clone(),
                source_system: settings.source_system.clone(),
                commit_timeout: settings.commit_timeout,
                destination: destination.clone(),
                wake: self.wake.clone(),
                doorbell: settings.doorbell.clone(),
                tls: settings.tls.clone(),
                backoff: Exponential::new(Duration::from_secs(1), Duration::from_secs(60)),
            };
            tokio::spawn(sender.run(shutdown.clone()));
        }
    }

    /// The configured destinations (for queueing in the store transaction).
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    /// Call after committing a store that queued objects.
    pub fn ring(&self) {
        self.wake.notify_waiters();
    }
}

/// What every sender shares.
#[derive(Clone)]
pub struct SenderSettings {
    pub db: Arc<Database>,
    pub storage_root: PathBuf,
    /// Our AE title towards the PACS (`PACS_AET`, where a PACS also sends commitment reports).
    pub calling_ae: String,
    /// This gateway's name in its events.
    pub source_system: Arc<str>,
    /// How long a PACS may take to answer a commitment request (`PACS_COMMIT_TIMEOUT_SECS`).
    pub commit_timeout: Duration,
    /// Rung after a commitment report queued events.
    pub doorbell: crate::cloud::outbox::Doorbell,
    /// The TLS client configuration for `+tls` destinations (`PACS_FORWARD_TLS_CA_FILE`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

struct Sender {
    db: Arc<Database>,
    storage_root: PathBuf,
    calling_ae: String,
    source_system: Arc<str>,
    commit_timeout: Duration,
    destination: Destination,
    wake: Arc<Notify>,
    doorbell: crate::cloud::outbox::Doorbell,
    tls: Option<Arc<rustls::ClientConfig>>,
    backoff: Exponential,
}

/// An open association and the (SOP class, transfer syntax) pairs it proposed.
struct Open {
    scu: Scu,
    proposed: BTreeSet<(String, String)>,
    last_used: Instant,
    /// The PACS accepted Storage Commitment on it.
    commitment: bool,
}

/// Transfer syntaxes proposed for Storage Commitment (its messages are small data sets).
fn commitment_syntaxes() -> Vec<String> {
    vec![
        dicom_dictionary_std::uids::EXPLICIT_VR_LITTLE_ENDIAN.to_string(),
        dicom_dictionary_std::uids::IMPLICIT_VR_LITTLE_ENDIAN.to_string(),
    ]
}

/// How sending one entry ended.
enum Sent {
    Done(Outcome),
    /// The PACS or the link is in trouble: keep the entry, back off, try again.
    Retry(String),
}

impl Sender {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut open: Option<Open> = None;
        let mut failures: u32 = 0;
        tracing::info!(destination = %self.destination, "forwarding stored images to the PACS");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let batch = match queue::head(&self.db, &self.destination, BATCH) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(destination = %self.destination, "forwarding queue: {e}");
                    self.pause(&mut shutdown, Duration::from_secs(5)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                if let Err(RoundError::Db(e)) = self.request_commitments(&mut open).await {
                    tracing::error!(destination = %self.destination, "storage commitment: {e}");
                }
                if let Some(o) = open.take_if(|o| o.last_used.elapsed() >= IDLE_RELEASE) {
                    let _ = o.scu.release().await;
                }
                let wait = if open.is_some() {
                    IDLE_RELEASE
                } else {
                    IDLE_POLL
                };
                tokio::select! {
                    _ = &mut wake => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            match self.send_batch(&mut open, &batch).await {
                Ok(()) => failures = 0,
                Err(RoundError::Db(e)) => {
                    tracing::error!(destination = %self.destination, "forwarding queue: {e}");
                    self.pause(&mut shutdown, Duration::from_secs(5)).await;
                }
                Err(RoundError::Retry(error)) => {
                    if let Some(o) = open.take() {
                        drop(o);
                    }
                    failures = failures.saturating_add(1);
                    let delay = self.backoff.delay(failures);
                    if let Some((sequence, _)) = batch.first() {
                        if let Err(e) =
                            queue::note_attempt(&self.db, &self.destination, *sequence, &error)
                        {
                            tracing::error!(destination = %self.destination, "forwarding queue: {e}");
                        }
                    }
                    // One line per failure, at most one a minute once the backoff is long.
                    tracing::warn!(
                        destination = %self.destination,
                        queued_ahead = batch.len(),
                        retry_in_s = delay.as_secs(),
                        "cannot forward to the PACS: {error}"
                    );
                    self.pause(&mut shutdown, delay).await;
                }
            }
        }
        if let Some(o) = open {
            let _ = o.scu.release().await;
        }
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Sends `batch` in order on one association, opening (or re-opening, when new pairs are
    /// needed) it first. Stops at the first entry that must be retried.
    async fn send_batch(
        &self,
        open: &mut Option<Open>,
        batch: &[(u64, Queued)],
    ) -> Result<(), RoundError> {
        let needed: BTreeSet<(String, String)> = batch
            .iter()
            .map(|(_, q)| (q.sop_class_uid.clone(), q.transfer_syntax.clone()))
            .collect();
        if open.as_ref().is_none_or(|o| !needed.is_subset(&o.proposed)) {
            if let Some(o) = open.take() {
                let _ = o.scu.release().await;
            }
            let mut proposals: Vec<(String, Vec<String>)> = needed
                .iter()
                .map(|(class, syntax)| (class.clone(), vec![syntax.clone()]))
                .collect();
            proposals.push((commitment::SOP_CLASS.to_string(), commitment_syntaxes()));
            let connected = self.connect(&proposals).await;
            let scu = match connected {
                Ok(scu) => scu,
                // Nothing in this batch is acceptable to the PACS as it is: each is failed
                // with the reason, so the queue moves on.
                Err(ScuError::NothingAccepted { .. }) => {
                    let outcomes: Vec<(u64, &Queued, Outcome)> = batch
                        .iter()
                        .map(|(sequence, entry)| {
                            let reason = not_accepted(entry);
                            tracing::warn!(destination = %self.destination,
                                sop_instance_uid = %entry.sop_instance_uid, "not forwarded, given up: {reason}");
                            (*sequence, entry, Outcome::Failed { at_ms: now_ms(), reason })
                        })
                        .collect();
                    self.finish(&outcomes, false)?;
                    return Ok(());
                }
                Err(e) => return Err(RoundError::Retry(e.to_string())),
            };
            *open = Some(Open {
                commitment: scu.offers(commitment::SOP_CLASS),
                scu,
                proposed: needed,
                last_used: Instant::now(),
            });
        }
        let Some(o) = open.as_mut() else {
            return Err(RoundError::Retry("no association".into()));
        };
        // Outcomes are recorded together once the batch is sent (or stops), one commit for all.
        let mut outcomes: Vec<(u64, &Queued, Outcome)> = Vec::with_capacity(batch.len());
        for (sequence, entry) in batch {
            let started = Instant::now();
            let outcome = match self.send_one(&mut o.scu, entry).await {
                Sent::Done(outcome) => outcome,
                Sent::Retry(error) => {
                    self.finish(&outcomes, o.commitment)?;
                    return Err(RoundError::Retry(error));
                }
            };
            o.last_used = Instant::now();
            match &outcome {
                Outcome::Forwarded { status, .. } => tracing::info!(
                    destination = %self.destination,
                    sop_instance_uid = %entry.sop_instance_uid,
                    status = format_args!("{status:#06x}"),
                    ms = started.elapsed().as_millis() as u64,
                    "forwarded"
                ),
                Outcome::Failed { reason, .. } => tracing::warn!(
                    destination = %self.destination,
                    sop_instance_uid = %entry.sop_instance_uid,
                    "not forwarded, given up: {reason}"
                ),
            }
            outcomes.push((*sequence, entry, outcome));
        }
        self.finish(&outcomes, o.commitment)?;
        self.request_commitments(open).await?;
        Ok(())
    }

    fn finish(
        &self,
        outcomes: &[(u64, &Queued, Outcome)],
        commitment: bool,
    ) -> Result<(), DbError> {
        let finished: Vec<queue::Finish<'_>> = outcomes
            .iter()
            .map(|(sequence, entry, outcome)| queue::Finish {
                destination: &self.destination,
                sequence: *sequence,
                entry,
                outcome,
                commitment,
                source_system: &self.source_system,
            })
            .collect();
        queue::finish(&self.db, &finished)?;
        // The archive-state events they may have queued.
        if !finished.is_empty() {
            self.doorbell.ring();
        }
        Ok(())
    }

    /// Associates with the PACS (over TLS for a `+tls` destination), answering the commitment reports it may send on the same
    /// association.
    async fn connect(&self, proposals: &[(String, Vec<String>)]) -> Result<Scu, ScuError> {
        let tls = match (self.destination.tls, &self.tls) {
            (false, _) => None,
            (true, Some(config)) => Some((self.destination.host.as_str(), config.clone())),
            (true, None) => {
                return Err(ScuError::Associate {
                    called: self.destination.ae_title.clone(),
                    address: self.destination.address(),
                    reason: "a +tls destination needs PACS_FORWARD_TLS_CA_FILE".into(),
                })
            }
        };
        let mut scu = Scu::connect_over(
            &self.destination.address(),
            tls,
            &self.calling_ae,
            &self.destination.ae_title,
            proposals,
        )
        .await?;
        let (db, name, doorbell) = (
            self.db.clone(),
            self.source_system.clone(),
            self.doorbell.clone(),
        );
        let destination = [self.destination.clone()];
        scu.on_event_reports(Box::new(move |peer, context, command, data| {
            let (rsp, changed) =
                commitment::answer_report(&db, &name, &destination, peer, context, command, data);
            if changed {
                doorbell.ring();
            }
            rsp
        }));
        Ok(scu)
    }

    /// Sends the commitment requests that are due (never sent, or unanswered past the timeout),
    /// on the open association when it carries Storage Commitment, else on one of their own.
    /// Each request is counted before it is sent, so a PACS that cannot be reached is asked
    /// again only after the backoff.
    async fn request_commitments(&self, open: &mut Option<Open>) -> Result<(), RoundError> {
        loop {
            let due = commitment::due(
                &self.db,
                &self.destination,
                now_ms(),
                commitment::REQUEST_LIMIT,
            )?;
            if due.is_empty() {
                return Ok(());
            }
            let request =
                commitment::begin_request(&self.db, &self.destination, &due, self.commit_timeout)?;
            if request.references.is_empty() {
                continue;
            }
            let retry_in = commitment::retry_after(self.commit_timeout, 1).as_secs();
            if open.as_ref().is_some_and(|o| !o.commitment) {
                if let Some(o) = open.take() {
                    let _ = o.scu.release().await;
                }
            }
            if open.is_none() {
                let proposals = [(commitment::SOP_CLASS.to_string(), commitment_syntaxes())];
                match self.connect(&proposals).await {
                    Ok(scu) => {
                        *open = Some(Open {
                            commitment: scu.offers(commitment::SOP_CLASS),
                            scu,
                            proposed: BTreeSet::new(),
                            last_used: Instant::now(),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(destination = %self.destination, objects = request.references.len(),
                            "cannot ask the PACS for storage commitment (asked again later): {e}");
                        return Ok(());
                    }
                }
            }
            let Some(o) = open.as_mut() else {
                return Ok(());
            };
            let data_set = commitment::request_data_set(&request);
            let answer = o
                .scu
                .request(
                    commitment::SOP_CLASS,
                    commitment::request_command(),
                    Some(&data_set),
                )
                .await;
            o.last_used = Instant::now();
            match answer.as_ref().map(|r| {
                r.last()
                    .map(|r| (r.status(), r.command.error_comment.clone()))
            }) {
                Ok(Some((code, _))) if code == status::SUCCESS || status::is_warning(code) => {
                    tracing::info!(destination = %self.destination, transaction_uid = %request.transaction_uid,
                        objects = request.references.len(), "storage commitment requested")
                }
                Ok(answer) => {
                    let (code, comment) = answer.unwrap_or((status::PROCESSING_FAILURE, None));
                    tracing::warn!(destination = %self.destination, transaction_uid = %request.transaction_uid,
                        status = format_args!("{code:#06x}"), retry_in_s = retry_in,
                        "the PACS refused the storage commitment request: {}", comment.unwrap_or_default());
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(destination = %self.destination, transaction_uid = %request.transaction_uid,
                        "storage commitment request lost (asked again later): {e}");
                    *open = None;
                    return Ok(());
                }
            }
        }
    }

    async fn send_one(&self, scu: &mut Scu, entry: &Queued) -> Sent {
        let at_ms = now_ms();
        let failed = |reason: String| Sent::Done(Outcome::Failed { at_ms, reason });
        if !scu.accepts(&entry.sop_class_uid, &entry.transfer_syntax) {
            return failed(not_accepted(entry));
        }
        let path = self.storage_root.join(&entry.file_path);
        let file = match tokio::task::spawn_blocking(move || open_data_set(&path)).await {
            Ok(Ok(file)) => file,
            Ok(Err(e)) => return failed(format!("cannot read the stored object: {e}")),
            Err(e) => return Sent::Retry(format!("reading the stored object: {e}")),
        };
        let response = scu
            .store(
                &entry.sop_class_uid,
                &entry.sop_instance_uid,
                &entry.transfer_syntax,
                tokio::fs::File::from_std(file),
            )
            .await;
        match response {
            Ok(rsp) => {
                let code = rsp.status();
                let comment = rsp.command.error_comment.clone().unwrap_or_default();
                if code == status::SUCCESS || status::is_warning(code) {
                    Sent::Done(Outcome::Forwarded {
                        at_ms,
                        status: code,
                    })
                } else if code & 0xFF00 == status::OUT_OF_RESOURCES {
                    // A7xx: the PACS is full or busy now; it may not be later.
                    Sent::Retry(format!(
                        "the PACS answered {code:#06x} (out of resources) {comment}"
                    ))
                } else {
                    failed(format!(
                        "the PACS refused it with status {code:#06x} {comment}"
                    ))
                }
            }
            Err(ScuError::Read(e)) => failed(format!("cannot read the stored object: {e}")),
            Err(e) => Sent::Retry(e.to_string()),
        }
    }
}

fn not_accepted(entry: &Queued) -> String {
    format!(
        "the PACS did not accept SOP class {} in transfer syntax {} (objects are sent as stored, never transcoded)",
        entry.sop_class_uid, entry.transfer_syntax
    )
}

enum RoundError {
    Db(DbError),
    Retry(String),
}

impl From<DbError> for RoundError {
    fn from(e: DbError) -> RoundError {
        RoundError::Db(e)
    }
}
