//! Actions from the cloud: verify, act on the worklist, reply.
//!
//! The relay listener hands every received message to [`Actions::handle`], concurrently; the
//! reply (signed) goes back on the same rendezvous socket. A message that cannot be verified or
//! read gets an `error` reply that says why, never silence and never a panic.

use std::sync::Arc;
use std::time::Instant;

use shared::wire::action::{Action, ActionReply, Command, Outcome, WorklistItem, WorklistStatus};
use shared::wire::{SigningKey, Verification};

use crate::db::Database;
use crate::service::health::{self, HealthProbe};
use crate::worklist::{self, WorklistEntry, WorklistError};

/// Handles actions for one gateway.
pub struct Actions {
    db: Arc<Database>,
    verification: Verification,
    key: SigningKey,
    probe: HealthProbe,
    started: Instant,
}

impl Actions {
    pub fn new(
        db: Arc<Database>,
        verification: Verification,
        key: SigningKey,
        probe: HealthProbe,
    ) -> Actions {
        Actions {
            db,
            verification,
            key,
            probe,
            started: Instant::now(),
        }
    }

    /// One received message in, one signed reply out.
    pub async fn handle(&self, text: String) -> String {
        let reply = match Action::open(&text, &self.verification) {
            Ok(action) => {
                let id = action.action_id;
                let kind = action.command.action_type();
                let reply = self.execute(action).await;
                match &reply.outcome {
                    Outcome::Error { message } => {
                        tracing::warn!(action_id = %id, "action {kind} {id} failed: {message}")
                    }
                    outcome => {
                        tracing::info!(action_id = %id, "action {kind} {id}: {}", status_word(outcome))
                    }
                }
                reply
            }
            Err(rejected) => {
                tracing::warn!(
                    "refused an action{}: {}",
                    rejected.id.map(|id| format!(" {id}")).unwrap_or_default(),
                    rejected.reason
                );
                ActionReply::rejected(&rejected)
            }
        };
        self.key.seal(&reply)
    }

    async fn execute(&self, action: Action) -> ActionReply {
        let id = action.action_id;
        let reply = |outcome| ActionReply::new(id, outcome);
        match action.command {
            Command::Echo(payload) => reply(Outcome::Echo { payload }),
            Command::Health => reply(Outcome::Ok {
                health: health::report(&self.db, &self.probe, self.started).await,
            }),
            Command::CreateItem(item) => {
                let accession = item.accession_number.clone();
                let db = self.db.clone();
                let result = tokio::task::spawn_blocking(move || create(&db, item, id))
                    .await
                    .expect("worklist write does not panic");
                with_accession(
                    reply(result.unwrap_or_else(|e| Outcome::Error {
                        message: e.to_string(),
                    })),
                    accession,
                )
            }
            Command::UpdateStatus {
                accession_number,
                status,
            } => {
                let outcome = self
                    .set_status(&accession_number, status, Outcome::Updated)
                    .await;
                with_accession(reply(outcome), accession_number)
            }
            Command::CancelItem {
                accession_number,
                reason,
            } => {
                if let Some(reason) = &reason {
                    tracing::info!("cancelling {accession_number}: {reason}");
                }
                let outcome = self
                    .set_status(
                        &accession_number,
                        WorklistStatus::Discontinued,
                        Outcome::Cancelled,
                    )
                    .await;
                with_accession(reply(outcome), accession_number)
            }
        }
    }

    async fn set_status(&self, accession: &str, status: WorklistStatus, done: Outcome) -> Outcome {
        let db = self.db.clone();
        let accession = accession.to_string();
        let result = tokio::task::spawn_blocking(move || {
            db.write(|txn| worklist::set_status(txn, &accession, status))
        })
        .await
        .expect("worklist write does not panic");
        match result {
            Ok(_) => done,
            Err(e) => Outcome::Error {
                message: e.to_string(),
            },
        }
    }
}

fn with_accession(mut reply: ActionReply, accession: String) -> ActionReply {
    reply.accession_number = Some(accession);
    reply
}

fn status_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Created => "created",
        Outcome::Exists => "exists",
        Outcome::Updated => "updated",
        Outcome::Cancelled => "cancelled",
        Outcome::Echo { .. } => "echo",
        Outcome::Ok { .. } => "ok",
        Outcome::Error { .. } => "error",
    }
}

/// Idempotent create: the same item again is `exists`; a different item under the same
/// accession number is an error (accession numbers must not be reused).
fn create(
    db: &Database,
    item: WorklistItem,
    action_id: uuid::Uuid,
) -> Result<Outcome, WorklistError> {
    db.write(|txn| {
        if let Some(existing) = worklist::get_in(txn, &item.accession_number)? {
            return if same_item(&existing, &item) {
                Ok(Outcome::Exists)
            } else {
                Err(WorklistError::Invalid(format!(
                    "accession number {} is already used for a different item",
                    item.accession_number
                )))
            };
        }
        let entry = WorklistEntry::new(item, Some(action_id), None)?;
        worklist::insert(txn, &entry)?;
        Ok(Outcome::Created)
    })
}

fn same_item(entry: &WorklistEntry, item: &WorklistItem) -> bool {
    entry.participant == item.participant
        && entry.scheduled == item.scheduled
        && entry.procedure == item.procedure
}
