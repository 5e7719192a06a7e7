//! The durable FHIR deliveries: one record per action id, written before the action is
//! answered, so an accepted delivery survives a crash and is made exactly once per action (a
//! repeat of the action is answered from its record). A record is kept, once finished, until
//! the action can no longer be admitted, like the applied-actions record.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::wire::action::Outcome;

use crate::db::{self, Database, DbError, FHIR_DELIVERIES};

/// One delivery of one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The action's content digest: the same id with other content is refused.
    pub digest: String,
    /// The allow-listed destination it goes to (normalised).
    pub destination: String,
    pub accession_number: String,
    pub action_type: String,
    /// The bundle as the cloud wrote it.
    pub body: String,
    pub state: State,
    pub attempts: u32,
    /// Unix ms of the next attempt while pending.
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
    pub queued_ms: u64,
    /// Unix ms after which a finished record may go (the action's admission window).
    pub keep_until_ms: u64,
}

/// Where a delivery is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Pending,
    /// The endpoint took it (2xx).
    Delivered {
        http_status: u16,
        answer: Value,
    },
    /// The endpoint refused it for good (4xx other than 408, 425 and 429), or redirected it.
    Refused {
        http_status: u16,
        answer: String,
    },
}

/// What an endpoint's HTTP status means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Refused,
    /// Try again later: a server error, a timeout or throttling.
    Retry,
}

impl Verdict {
    pub fn of(http_status: u16) -> Verdict {
        match http_status {
            200..=299 => Verdict::Delivered,
            408 | 425 | 429 => Verdict::Retry,
            // A redirect (3xx) is not followed — the next host may not be allowed — so it is a
            // setting to fix, as is every other client error (4xx).
            300..=499 => Verdict::Refused,
            _ => Verdict::Retry,
        }
    }
}

impl Delivery {
    pub fn is_pending(&self) -> bool {
        self.state == State::Pending
    }

    /// The reply this delivery gives its action now.
    pub fn outcome(&self) -> Outcome {
        match &self.state {
            State::Delivered {
                http_status,
                answer,
            } => Outcome::Delivered {
                http_status: *http_status,
                answer: answer.clone(),
            },
            State::Refused {
                http_status,
                answer,
            } => Outcome::Error {
                message: format!(
                    "{} refused the message with HTTP {http_status}: {answer}",
                    self.destination
                ),
            },
            State::Pending => Outcome::Queued {
                message: match &self.last_error {
                    None => format!("queued for {}", self.destination),
                    Some(e) => format!(
                        "queued for {}; {} attempt{} failed, the last: {e}",
                        self.destination,
                        self.attempts,
                        if self.attempts == 1 { "" } else { "s" }
                    ),
                },
            },
        }
    }
}

/// The record for `id`, in the caller's transaction.
pub fn get_in(txn: &WriteTransaction, id: &str) -> Result<Option<Delivery>, DbError> {
    db::get_json(&txn.open_table(FHIR_DELIVERIES)?, "fhir_deliveries", id)
}

pub fn put_in(txn: &WriteTransaction, id: &str, delivery: &Delivery) -> Result<(), DbError> {
    db::put_json(&mut txn.open_table(FHIR_DELIVERIES)?, id, delivery)
}

/// The record for `id`.
pub fn get(db: &Database, id: &str) -> Result<Option<Delivery>, DbError> {
    let txn = db.begin_read()?;
    db::get_json(&txn.open_table(FHIR_DELIVERIES)?, "fhir_deliveries", id)
}

/// The pending deliveries (id, record), oldest first, and the earliest next attempt among
/// those not yet due.
pub fn pending(db: &Database) -> Result<Vec<(String, Delivery)>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(FHIR_DELIVERIES)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (id, bytes) = row?;
        let id = id.value().to_string();
        let delivery: Delivery =
            serde_json::from_slice(bytes.value()).map_err(|source| DbError::Corrupt {
                table: "fhir_deliveries",
                key: id.clone(),
                source,
            })?;
        if delivery.is_pending() {
            out.push((id, delivery));
        }
    }
    out.sort_by_key(|(_, d)| d.queued_ms);
    Ok(out)
}

/// Forgets finished deliveries whose actions can no longer be admitted; returns how many.
pub fn purge(txn: &WriteTransaction, now_ms: u64) -> Result<usize, DbError> {
    let mut table = txn.open_table(FHIR_DELIVERIES)?;
    let mut done = Vec::new();
    for row in table.iter()? {
        let (id, bytes) = row?;
        let finished = serde_json::from_slice::<Delivery>(bytes.value())
            .map(|d| !d.is_pending() && d.keep_until_ms < now_ms)
            .unwrap_or(false);
        if finished {
            done.push(id.value().to_string());
        }
    }
    for id in &done {
        table.remove(id.as_str())?;
    }
    Ok(done.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_decide_the_delivery() {
        let cases: [(u16, Verdict); 11] = [
            (200, Verdict::Delivered),
            (201, Verdict::Delivered),
            (204, Verdict::Delivered),
            (301, Verdict::Refused),
            (400, Verdict::Refused),
            (404, Verdict::Refused),
            (408, Verdict::Retry),
            (422, Verdict::Refused),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (503, Verdict::Retry),
        ];
        for (status, verdict) in cases {
            assert_eq!(Verdict::of(status), verdict, "{status}");
        }
    }
}
