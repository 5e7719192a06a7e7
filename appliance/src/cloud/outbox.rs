//! The durable event outbox: every event the cloud must hear about, kept in redb until the cloud
//! says `accepted` or `duplicate` (or, in NHS-compatible mode, the NHS app answers `updated`,
//! `created` or `already_exists` unsigned).
//!
//! Events are written with [`enqueue`] inside the *same* redb transaction as the state change
//! that causes them (an MPPS N-CREATE, a stored image), so a crash can never leave a change
//! without its event or an event without its change. [`Courier`] then delivers them over the
//! events hybrid connection, oldest first and in order per study (an `order_key`): a study whose
//! head event is failing waits, other studies go on. Failures are retried with capped
//! exponential backoff **for as long as it takes**: nothing here is ever marked failed and
//! forgotten (the NHS gateway gives up after three tries). A restart resumes from the table.
//!
//! The one exception is an event the cloud answers `refused` (it will never record it as it
//! is): that one is *parked* in its own table, with the reason, so its accession's later events
//! go on; an operator lists, retries or drops it with `gateway events`, and the health report
//! counts it until then.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::backoff::Exponential;
use shared::relay::Sender;
use shared::wire::event::{Event, EventReply, EventStatus};
use shared::wire::{SigningKey, Verification};
use tokio::sync::Notify;

use crate::db::{now_ms, Database, DbError, OUTBOX, PARKED_EVENTS};

/// The longest wait between two attempts at one event.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The retry schedule: 1 s, doubling, capped at [`MAX_BACKOFF`].
const BACKOFF: Exponential = Exponential::new(Duration::from_secs(1), MAX_BACKOFF);

/// One queued event and its delivery history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub event: Event,
    /// Events with the same key are delivered in order (the study, or the accession number).
    pub order_key: String,
    /// Unix milliseconds when it was queued.
    pub queued_at_ms: u64,
    pub attempts: u32,
    /// Unix milliseconds before which it is not retried.
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
}

/// What the queue looks like now, for `health` and `gateway status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub depth: u64,
    /// Age of the oldest undelivered event.
    pub oldest_seconds: Option<u64>,
    /// The most recent delivery error of the oldest event, if it has failed.
    pub oldest_error: Option<String>,
    /// Events the cloud refused, parked for an operator.
    #[serde(default)]
    pub parked: u64,
    /// Why the most recently parked one was refused.
    #[serde(default)]
    pub newest_parked_reason: Option<String>,
}

/// Where an event waits: in the queue, or parked after the cloud refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    Queued,
    Parked,
}

/// One event as `gateway events list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed {
    pub event_id: String,
    pub state: Waiting,
    pub event_type: String,
    pub order_key: String,
    pub queued_at_ms: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What `gateway events retry|drop` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handled {
    /// Back in the queue (a parked one, at its end), due now.
    Retrying,
    /// Removed for good.
    Dropped,
    /// No queued or parked event has that id.
    NotFound,
}

/// Adds an event to the outbox in the caller's transaction; returns its sequence number. Call
/// [`Doorbell::ring`] after the commit so the courier sends it at once.
pub fn enqueue(txn: &WriteTransaction, event: Event, order_key: &str) -> Result<u64, DbError> {
    let mut table = txn.open_table(OUTBOX)?;
    let sequence = table.last()?.map_or(1, |(key, _)| key.value() + 1);
    let now = now_ms();
    let queued = Queued {
        event,
        order_key: order_key.to_string(),
        queued_at_ms: now,
        attempts: 0,
        next_attempt_ms: now,
        last_error: None,
    };
    let bytes = serde_json::to_vec(&queued).expect("events serialise");
    table.insert(sequence, bytes.as_slice())?;
    Ok(sequence)
}

/// Every queued event, oldest first.
pub fn list(db: &Database) -> Result<Vec<(u64, Queued)>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(OUTBOX)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let queued = decode(key.value(), value.value())?;
        out.push((key.value(), queued));
    }
    Ok(out)
}

/// Queue depth, the age of the oldest event, and the parked ones.
pub fn stats(db: &Database) -> Result<Stats, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(OUTBOX)?;
    let depth = table.len()?;
    let oldest = match table.first()? {
        Some((key, value)) => Some(decode(key.value(), value.value())?),
        None => None,
    };
    let parked = txn.open_table(PARKED_EVENTS)?;
    let newest_parked = match parked.last()? {
        Some((key, value)) => Some(decode(key.value(), value.value())?),
        None => None,
    };
    Ok(Stats {
        depth,
        oldest_seconds: oldest
            .as_ref()
            .map(|q| now_ms().saturating_sub(q.queued_at_ms) / 1000),
        oldest_error: oldest.and_then(|q| q.last_error),
        parked: parked.len()?,
        newest_parked_reason: newest_parked.and_then(|q| q.last_error),
    })
}

/// Every queued event, then every parked one, oldest first.
pub fn list_all(db: &Database) -> Result<Vec<Listed>, DbError> {
    let txn = db.begin_read()?;
    let mut out = Vec::new();
    for (table, state) in [(OUTBOX, Waiting::Queued), (PARKED_EVENTS, Waiting::Parked)] {
        for row in txn.open_table(table)?.iter()? {
            let (key, value) = row?;
            let q = decode(key.value(), value.value())?;
            out.push(Listed {
                event_id: q.event.event_id.to_string(),
                state,
                event_type: q.event.body.event_type().to_string(),
                order_key: q.order_key,
                queued_at_ms: q.queued_at_ms,
                attempts: q.attempts,
                last_error: q.last_error,
            });
        }
    }
    Ok(out)
}

/// The sequence of the event with this id in `table`, and the event.
fn find(table: &redb::Table<u64, &[u8]>, event_id: &str) -> Result<Option<(u64, Queued)>, DbError> {
    for row in table.iter()? {
        let (key, value) = row?;
        let q = decode(key.value(), value.value())?;
        if q.event.event_id.to_string() == event_id {
            return Ok(Some((key.value(), q)));
        }
    }
    Ok(None)
}

/// `gateway events retry`: a parked event goes back to the end of the queue with its attempts
/// reset; a queued one waiting out its backoff is due now. Ring the doorbell afterwards.
pub fn retry(db: &Database, event_id: &str) -> Result<Handled, DbError> {
    db.write(|txn| {
        let mut queue = txn.open_table(OUTBOX)?;
        if let Some((sequence, mut q)) = find(&queue, event_id)? {
            q.next_attempt_ms = now_ms();
            let bytes = serde_json::to_vec(&q).expect("events serialise");
            queue.insert(sequence, bytes.as_slice())?;
            return Ok(Handled::Retrying);
        }
        let mut parked = txn.open_table(PARKED_EVENTS)?;
        let Some((sequence, mut q)) = find(&parked, event_id)? else {
            return Ok(Handled::NotFound);
        };
        parked.remove(sequence)?;
        q.attempts = 0;
        q.next_attempt_ms = now_ms();
        let next = queue.last()?.map_or(1, |(key, _)| key.value() + 1);
        let bytes = serde_json::to_vec(&q).expect("events serialise");
        queue.insert(next, bytes.as_slice())?;
        Ok(Handled::Retrying)
    })
}

/// `gateway events drop`: removes a queued or parked event for good (the cloud never hears of
/// it); logged as a warning with what it was.
pub fn drop_event(db: &Database, event_id: &str) -> Result<Handled, DbError> {
    let dropped = db.write(|txn| {
        for table in [OUTBOX, PARKED_EVENTS] {
            let mut t = txn.open_table(table)?;
            if let Some((sequence, q)) = find(&t, event_id)? {
                t.remove(sequence)?;
                return Ok::<_, DbError>(Some(q));
            }
        }
        Ok(None)
    })?;
    Ok(match dropped {
        Some(q) => {
            tracing::warn!(
                event_id,
                "event {} for {} dropped by an operator; the cloud will not hear of it",
                q.event.body.event_type(),
                q.order_key
            );
            Handled::Dropped
        }
        None => Handled::NotFound,
    })
}

fn decode(key: u64, bytes: &[u8]) -> Result<Queued, DbError> {
    serde_json::from_slice(bytes).map_err(|source| DbError::Corrupt {
        table: "outbox",
        key: key.to_string(),
        source,
    })
}

/// The delay before attempt `attempts + 1`: 1 s, 2 s, 4 s… capped at [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    BACKOFF.delay(attempts)
}

/// Wakes the courier when new events are committed, so delivery does not wait for a timer.
#[derive(Debug, Clone, Default)]
pub struct Doorbell(Arc<Notify>);

impl Doorbell {
    /// Call after committing a transaction that enqueued events.
    pub fn ring(&self) {
        self.0.notify_one();
    }
}

/// How one delivery attempt ended.
enum Delivery {
    Delivered,
    Failed(String),
    /// The cloud will never take it as it is: park it.
    Refused(String),
}

/// Which of the cloud's replies mean "delivered".
#[derive(Debug, Clone)]
pub struct Replies {
    /// The cloud's public keys: its replies are verified too, so a spoofed listener cannot make
    /// the gateway drop events.
    pub verification: Verification,
    /// NHS-compatible mode: an unsigned reply in the NHS app's vocabulary (`updated`, `created`,
    /// `already_exists`) also counts ([`EventReply::open_nhs_compatible`]).
    pub nhs_compatible: bool,
}

impl Replies {
    fn open(&self, text: &str) -> Result<EventReply, shared::wire::Rejected> {
        if self.nhs_compatible {
            EventReply::open_nhs_compatible(text, &self.verification)
        } else {
            EventReply::open(text, &self.verification)
        }
    }
}

/// Delivers the outbox over the events hybrid connection.
pub struct Courier {
    db: Arc<Database>,
    sender: Sender,
    key: SigningKey,
    replies: Replies,
    doorbell: Doorbell,
}

impl Courier {
    pub fn new(
        db: Arc<Database>,
        sender: Sender,
        key: SigningKey,
        replies: Replies,
        doorbell: Doorbell,
    ) -> Courier {
        Courier {
            db,
            sender,
            key,
            replies,
            doorbell,
        }
    }

    /// Delivers until `shutdown` completes: a pass over the queue whenever the doorbell rings or
    /// the earliest retry falls due.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = match self.pass().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!("event outbox unreadable: {e}; retrying in 5s");
                    Some(Duration::from_secs(5))
                }
            };
            let wait = next.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.doorbell.0.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass: sends every due event whose study is not held up by an earlier one. Returns how
    /// long until the next retry falls due, if any event is waiting.
    pub async fn pass(&self) -> Result<Option<Duration>, DbError> {
        let queue = {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || list(&db))
                .await
                .expect("outbox read does not panic")?
        };
        let mut held: HashSet<String> = HashSet::new();
        let mut next_due: Option<u64> = None;
        for (sequence, mut queued) in queue {
            if held.contains(&queued.order_key) {
                continue;
            }
            let now = now_ms();
            if queued.next_attempt_ms > now {
                held.insert(queued.order_key.clone());
                next_due = earliest(next_due, queued.next_attempt_ms);
                continue;
            }
            match self.deliver(&queued.event).await {
                Delivery::Delivered => {
                    self.remove(sequence).await?;
                    tracing::info!(
                        event_id = %queued.event.event_id,
                        accession = %queued.order_key,
                        "delivered {} for {} after {} attempt(s)",
                        queued.event.body.event_type(),
                        queued.order_key,
                        queued.attempts + 1
                    );
                }
                Delivery::Refused(why) => {
                    queued.attempts += 1;
                    tracing::warn!(
                        event_id = %queued.event.event_id,
                        accession = %queued.order_key,
                        "{} for {} refused by the cloud: {why}; parked (gateway events list), \
                         its later events go on",
                        queued.event.body.event_type(),
                        queued.order_key
                    );
                    queued.last_error = Some(format!("refused by the cloud: {why}"));
                    self.park(sequence, queued).await?;
                }
                Delivery::Failed(why) => {
                    queued.attempts += 1;
                    let delay = backoff(queued.attempts);
                    queued.next_attempt_ms = now_ms() + delay.as_millis() as u64;
                    tracing::warn!(
                        event_id = %queued.event.event_id,
                        accession = %queued.order_key,
                        "{} for {} not delivered (attempt {}): {why}; retrying in {}s",
                        queued.event.body.event_type(),
                        queued.order_key,
                        queued.attempts,
                        delay.as_secs()
                    );
                    queued.last_error = Some(why);
                    next_due = earliest(next_due, queued.next_attempt_ms);
                    held.insert(queued.order_key.clone());
                    self.update(sequence, queued).await?;
                }
            }
        }
        Ok(next_due.map(|due| Duration::from_millis(due.saturating_sub(now_ms()))))
    }

    async fn deliver(&self, event: &Event) -> Delivery {
        let text = self.key.seal(event);
        let reply = match self.sender.request(&text).await {
            Ok(reply) => reply,
            Err(e) => return Delivery::Failed(e.to_string()),
        };
        match self.replies.open(&reply) {
            Ok(reply) if reply.event_id.is_some_and(|id| id != event.event_id) => {
                Delivery::Failed(format!(
                    "the cloud answered for another event ({:?})",
                    reply.event_id
                ))
            }
            Ok(reply) if reply.is_delivered() => Delivery::Delivered,
            Ok(reply) if reply.status == EventStatus::Refused => {
                Delivery::Refused(reply.message.unwrap_or_else(|| "no reason given".into()))
            }
            Ok(reply) => Delivery::Failed(format!(
                "the cloud refused it: {}",
                reply.message.unwrap_or_else(|| "no reason given".into())
            )),
            Err(rejected) => Delivery::Failed(format!("unusable reply from the cloud: {rejected}")),
        }
    }

    async fn remove(&self, sequence: u64) -> Result<(), DbError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            db.write(|txn| {
                txn.open_table(OUTBOX)?.remove(sequence)?;
                Ok::<_, DbError>(())
            })
        })
        .await
        .expect("outbox write does not panic")
    }

    /// Moves an event from the queue to the parked table in one commit.
    async fn park(&self, sequence: u64, queued: Queued) -> Result<(), DbError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            db.write(|txn| {
                txn.open_table(OUTBOX)?.remove(sequence)?;
                let mut parked = txn.open_table(PARKED_EVENTS)?;
                let key = parked.last()?.map_or(1, |(key, _)| key.value() + 1);
                let bytes = serde_json::to_vec(&queued).expect("events serialise");
                parked.insert(key, bytes.as_slice())?;
                Ok::<_, DbError>(())
            })
        })
        .await
        .expect("outbox write does not panic")
    }

    async fn update(&self, sequence: u64, queued: Queued) -> Result<(), DbError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            db.write(|txn| {
                let bytes = serde_json::to_vec(&queued).expect("events serialise");
                txn.open_table(OUTBOX)?.insert(sequence, bytes.as_slice())?;
                Ok::<_, DbError>(())
            })
        })
        .await
        .expect("outbox write does not panic")
    }
}

fn earliest(due: Option<u64>, candidate: u64) -> Option<u64> {
    Some(due.map_or(candidate, |due| due.min(candidate)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::event::{EventBody, MppsStatus, MppsStatusUpdate};

    fn mpps_event(accession: &str, status: MppsStatus) -> Event {
        Event::new(
            "gw-test",
            EventBody::MppsStatusUpdate(MppsStatusUpdate {
                action_id: None,
                accession_number: accession.into(),
                status,
                mpps_instance_uid: "1.2.3".into(),
                images_taken: None,
            }),
        )
    }

    #[test]
    fn events_survive_reopening_in_order_with_stats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let first = mpps_event("A", MppsStatus::InProgress);
        let second = mpps_event("A", MppsStatus::Completed);
        {
            let db = Database::open(&path).unwrap();
            db.write(|txn| {
                enqueue(txn, first.clone(), "A")?;
                enqueue(txn, second.clone(), "A")?;
                Ok::<_, DbError>(())
            })
            .unwrap();
        }
        let db = Database::open(&path).unwrap();
        let queue = list(&db).unwrap();
        assert_eq!(queue.len(), 2);
        assert!(queue[0].0 < queue[1].0);
        assert_eq!(queue[0].1.event, first);
        assert_eq!(queue[1].1.event, second);
        let stats = stats(&db).unwrap();
        assert_eq!(stats.depth, 2);
        assert!(stats.oldest_seconds.is_some());
    }

    #[test]
    fn an_aborted_transaction_leaves_no_event() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        enqueue(&txn, mpps_event("A", MppsStatus::InProgress), "A").unwrap();
        txn.abort().unwrap();
        assert_eq!(stats(&db).unwrap(), Stats::default());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let seconds: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
