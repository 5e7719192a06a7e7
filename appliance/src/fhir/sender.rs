//! Accepting FHIR deliveries from actions and making them: [`Deliveries::accept`] checks the
//! allow-list, records the delivery and waits a little for its answer; [`Deliveries::run`]
//! POSTs each pending one to its destination, in order per accession number, retrying on
//! `shared::backoff` until the endpoint takes or refuses it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use shared::backoff::Exponential;
use shared::wire::action::{FhirDelivery, Outcome, FHIR_ANSWER_LIMIT};
use thiserror::Error;
use tokio::sync::Notify;

use super::queue::{self, Delivery, State, Verdict};
use super::FhirSettings;
use crate::db::{self, Database, DbError};

/// How long an action waits for its delivery's answer before it is answered `queued`: well
/// inside the cloud's 30 s reply timeout.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One whole request, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const BACKOFF: Exponential = Exponential::new(Duration::from_secs(2), Duration::from_secs(300));
/// The longest the sender sleeps without looking at the queue.
const IDLE_LOOK: Duration = Duration::from_secs(60);

/// Why FHIR delivery cannot start; names the setting to fix.
#[derive(Debug, Error)]
pub enum FhirError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("FHIR delivery: the HTTP client: {0}")]
    Client(String),
}

/// Why an action's delivery was not accepted.
#[derive(Debug, Error)]
enum Refusal {
    #[error(transparent)]
    NotAllowed(#[from] super::NotAllowed),
    #[error(
        "action {0} was already accepted with different content (an action id is never reused: \
         a changed message needs a new id)"
    )]
    IdReused(String),
    #[error("{0}: the bundle must be a JSON object")]
    NotAnObject(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Runs a queue transaction on the blocking pool; should it panic, the caller gets an error
/// (and the action its error reply) instead of the task dying with it.
async fn off_the_executor<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(DbError::Unavailable(format!("the FHIR queue task: {e}"))))?
}

/// The FHIR deliveries of one gateway: shared by the actions handler and the sender task.
pub struct Deliveries {
    db: Arc<Database>,
    settings: FhirSettings,
    client: reqwest::Client,
    /// Rung when a delivery is queued, so the sender does not wait for its timer.
    wake: Notify,
    /// Rung (to every waiter) when a delivery finishes.
    finished: Notify,
}

impl Deliveries {
    pub fn new(db: Arc<Database>, settings: FhirSettings) -> Result<Deliveries, FhirError> {
        let mut tls = match &settings.ca_file {
            Some(file) => (*crate::tls::client_config_for("FHIR_CA_FILE", file)?).clone(),
            None => (*shared::relay::tls_config()).clone(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            // A redirect could lead anywhere: only allow-listed URLs are called.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("screening-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FhirError::Client(e.to_string()))?;
        Ok(Deliveries {
            db,
            settings,
            client,
            wake: Notify::new(),
            finished: Notify::new(),
        })
    }

    /// Takes one `fhir.order`/`fhir.revoke` action: refused when its destination is not on the
    /// allow-list; otherwise recorded (once per action id) and answered with the endpoint's
    /// answer if it comes within [`ANSWER_WAIT`], else `queued`.
    pub async fn accept(
        &self,
        action_id: &str,
        digest: &str,
        keep_until_ms: u64,
        delivery: FhirDelivery,
        action_type: &str,
    ) -> Outcome {
        match self
            .record(action_id, digest, keep_until_ms, delivery, action_type)
            .await
        {
            Ok(record) if !record.is_pending() => record.outcome(),
            Ok(_) => {
                self.wake.notify_one();
                self.answer_within(action_id, ANSWER_WAIT).await
            }
            Err(e) => Outcome::Error {
                message: format!("{action_type}: {e}"),
            },
        }
    }

    async fn record(
        &self,
        action_id: &str,
        digest: &str,
        keep_until_ms: u64,
        delivery: FhirDelivery,
        action_type: &str,
    ) -> Result<Delivery, Refusal> {
        let destination = self.settings.allowed(&delivery.destination)?.to_string();
        if !delivery.bundle.is_object() {
            return Err(Refusal::NotAnObject(action_type.to_string()));
        }
        let new = Delivery {
            digest: digest.to_string(),
            destination,
            accession_number: delivery.accession_number,
            action_type: action_type.to_string(),
            body: delivery.bundle.to_string(),
            state: State::Pending,
            attempts: 0,
            next_attempt_ms: db::now_ms(),
            last_error: None,
            queued_ms: db::now_ms(),
            keep_until_ms,
        };
        let db = self.db.clone();
        let id = action_id.to_string();
        off_the_executor(move || {
            db.write(|txn| {
                queue::purge(txn, db::now_ms())?;
                match queue::get_in(txn, &id)? {
                    Some(mut known) if known.digest == new.digest => {
                        // A repeat: keep the record as long as the newest attempt needs it.
                        if known.keep_until_ms < new.keep_until_ms {
                            known.keep_until_ms = new.keep_until_ms;
                            queue::put_in(txn, &id, &known)?;
                        }
                        Ok(known)
                    }
                    Some(_) => Err(Refusal::IdReused(id.clone())),
                    None => {
                        queue::put_in(txn, &id, &new)?;
                        tracing::info!(
                            accession = %new.accession_number,
                            action_id = %id,
                            "{} for {} queued for {}",
                            new.action_type,
                            new.accession_number,
                            new.destination
                        );
                        Ok(new)
                    }
                }
            })
        })
        .await
    }

    /// The delivery's outcome once it finishes, or `queued` after `wait`.
    async fn answer_within(&self, action_id: &str, wait: Duration) -> Outcome {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            match queue::get(&self.db, action_id) {
                Ok(Some(record)) if !record.is_pending() => return record.outcome(),
                Ok(Some(record)) if tokio::time::Instant::now() >= deadline => {
                    return record.outcome()
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Outcome::Error {
                        message: format!("FHIR delivery {action_id} is not on record"),
                    }
                }
                Err(e) => {
                    return Outcome::Error {
                        message: format!("FHIR delivery {action_id}: {e}"),
                    }
                }
            }
            let _ = tokio::time::timeout_at(deadline, finished).await;
        }
    }

    /// Delivers until `shutdown`: each due delivery in the order queued, one accession's after
    /// another's only once the earlier is finished.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = match self.deliver_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!("FHIR delivery queue: {e}");
                    Some(db::now_ms() + 5_000)
                }
            };
            let wait = next
                .map(|at| Duration::from_millis(at.saturating_sub(db::now_ms())))
                .unwrap_or(IDLE_LOOK)
                .min(IDLE_LOOK);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass over the pending deliveries; returns when the next one not yet due is.
    async fn deliver_due(&self) -> Result<Option<u64>, DbError> {
        let mut held: HashSet<String> = HashSet::new();
        let mut next: Option<u64> = None;
        for (id, delivery) in queue::pending(&self.db)? {
            if held.contains(&delivery.accession_number) {
                continue;
            }
            if delivery.next_attempt_ms > db::now_ms() {
                next = Some(next.map_or(delivery.next_attempt_ms, |n| {
                    n.min(delivery.next_attempt_ms)
                }));
                held.insert(delivery.accession_number.clone());
                continue;
            }
            let attempt = self.post(&delivery).await;
            let updated = self.finish(&id, attempt).await?;
            if let Some(d) = updated.filter(Delivery::is_pending) {
                next = Some(next.map_or(d.next_attempt_ms, |n| n.min(d.next_attempt_ms)));
                held.insert(d.accession_number);
            }
            self.finished.notify_waiters();
        }
        Ok(next)
    }

    /// One POST of one delivery.
    async fn post(&self, delivery: &Delivery) -> Attempt {
        let response = self
            .client
            .post(&delivery.destination)
            .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .body(delivery.body.clone())
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(error_chain(&e)),
        };
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere said");
            return Attempt::Answered {
                status,
                answer: serde_json::Value::String(format!(
                    "a redirect to {to}, not followed: FHIR_DESTINATIONS and the gateway's \
                     destination in the web app must name the final URL"
                )),
            };
        }
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        // The answer is read up to the limit and no further: an endpoint cannot fill our memory.
        let mut body = Vec::new();
        let mut cut = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = FHIR_ANSWER_LIMIT.saturating_sub(body.len());
                    body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&[]));
                    if chunk.len() > room {
                        cut = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if Verdict::of(status) == Verdict::Retry => {
                    return Attempt::Failed(format!("HTTP {status}, then {}", error_chain(&e)))
                }
                // The status is what counts; a broken answer after it is kept as far as it came.
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let answer = match serde_json::from_slice(&body) {
            Ok(value) if json && !cut => value,
            _ if cut => {
                serde_json::Value::String(format!("{text}… (cut at {FHIR_ANSWER_LIMIT} bytes)"))
            }
            _ => serde_json::Value::String(text),
        };
        Attempt::Answered { status, answer }
    }

    /// Records an attempt; returns the record as it now is. The log line and the counter come
    /// after the commit, so they say only what was stored.
    async fn finish(&self, id: &str, attempt: Attempt) -> Result<Option<Delivery>, DbError> {
        let db = self.db.clone();
        let key = id.to_string();
        let (record, settled) = off_the_executor(move || {
            db.write(|txn| -> Result<_, DbError> {
                let Some(mut d) = queue::get_in(txn, &key)? else {
                    return Ok((None, None));
                };
                if !d.is_pending() {
                    return Ok((Some(d), None));
                }
                let settled = settle(&mut d, attempt);
                queue::put_in(txn, &key, &d)?;
                Ok((Some(d), Some(settled)))
            })
        })
        .await?;
        if let (Some(d), Some(settled)) = (&record, &settled) {
            report(id, d, settled);
        }
        Ok(record)
    }
}

/// What one attempt made of a pending delivery.
enum Settled {
    Retry { why: String, wait: Duration },
    Delivered { status: u16 },
    Refused { status: u16, answer: String },
}

/// Applies one attempt to its pending record; the caller stores it.
fn settle(d: &mut Delivery, attempt: Attempt) -> Settled {
    d.attempts += 1;
    let retry = |d: &mut Delivery, why: String| {
        let wait = BACKOFF.delay(d.attempts);
        d.last_error = Some(why.clone());
        d.next_attempt_ms = db::now_ms() + wait.as_millis() as u64;
        Settled::Retry { why, wait }
    };
    match attempt {
        Attempt::Failed(why) => retry(d, why),
        Attempt::Answered { status, answer } => match Verdict::of(status) {
            Verdict::Delivered => {
                d.state = State::Delivered {
                    http_status: status,
                    answer,
                };
                Settled::Delivered { status }
            }
            Verdict::Refused => {
                let answer = match answer {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                d.state = State::Refused {
                    http_status: status,
                    answer: answer.clone(),
                };
                Settled::Refused { status, answer }
            }
            Verdict::Retry => retry(d, format!("HTTP {status}")),
        },
    }
}

/// One log line and one count per stored attempt.
fn report(id: &str, d: &Delivery, settled: &Settled) {
    let (kind, accession, destination) = (&d.action_type, &d.accession_number, &d.destination);
    let outcome = match settled {
        Settled::Retry { why, wait } => {
            tracing::warn!(
                accession = %accession,
                action_id = %id,
                "{kind} for {accession} to {destination}: attempt {} failed ({why}); next in {} s",
                d.attempts,
                wait.as_secs()
            );
            "retry"
        }
        Settled::Delivered { status } => {
            tracing::info!(
                accession = %accession,
                action_id = %id,
                "{kind} for {accession} delivered to {destination}: HTTP {status}"
            );
            "delivered"
        }
        Settled::Refused { status, answer } => {
            tracing::warn!(
                accession = %accession,
                action_id = %id,
                "{kind} for {accession} refused by {destination}: HTTP {status}: {answer}"
            );
            "refused"
        }
    };
    metrics::counter!(crate::service::metrics::FHIR_DELIVERIES, "outcome" => outcome).increment(1);
}

/// How one POST ended.
enum Attempt {
    /// No HTTP answer: could not connect, timed out, the connection broke.
    Failed(String),
    Answered {
        status: u16,
        answer: serde_json::Value,
    },
}

/// reqwest's error with its causes, which carry the useful part ("connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
