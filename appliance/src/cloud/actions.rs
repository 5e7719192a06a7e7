//! Actions from the cloud: verify, admit, apply to the worklist once, reply.
//!
//! The relay listener hands every received message to [`Actions::handle`], concurrently; the
//! reply (signed) goes back on the same rendezvous socket. A message is refused with an `error`
//! reply that says why — never silence, never a panic — when its signature does not verify, when
//! it is not addressed to this gateway or outside its validity window ([`super::admission`]), or
//! when its id was already applied with other content ([`super::applied`]). A worklist action
//! applied before is answered with its recorded reply and not applied again.

use std::sync::Arc;
use std::time::Instant;

use redb::ReadableTable;
use shared::wire::action::{Action, ActionReply, Command, Outcome, WorklistItem, WorklistStatus};
use shared::wire::{Rejected, SigningKey, Verification};
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use super::admission::Admission;
use super::applied::{self, Prior};
use crate::db::{self, Database, DbError};
use crate::fhir::Deliveries;
use crate::service::health::{self, HealthProbe};
use crate::worklist::{self, WorklistEntry, WorklistError};

/// Handles actions for one gateway.
pub struct Actions {
    db: Arc<Database>,
    verification: Verification,
    admission: Admission,
    key: SigningKey,
    fhir: Arc<Deliveries>,
    probe: HealthProbe,
    started: Instant,
}

/// Why a worklist action was not applied.
#[derive(Debug, Error)]
enum Refusal {
    #[error(
        "action {0} was already applied with different content (an action id is never reused: \
         a changed action needs a new id)"
    )]
    IdReused(Uuid),
    #[error(transparent)]
    Worklist(#[from] WorklistError),
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        Refusal::Worklist(e.into())
    }
}

impl Actions {
    pub fn new(
        db: Arc<Database>,
        verification: Verification,
        admission: Admission,
        key: SigningKey,
        fhir: Arc<Deliveries>,
        probe: HealthProbe,
    ) -> Actions {
        Actions {
            db,
            verification,
            admission,
            key,
            fhir,
            probe,
            started: Instant::now(),
        }
    }

    /// One received message in, one signed reply out.
    pub async fn handle(&self, text: String) -> String {
        let opened = Action::open(&text, &self.verification).and_then(|action| {
            match self.admission.check(&action, OffsetDateTime::now_utc()) {
                Ok(keep_until) => Ok((action, keep_until)),
                Err(reason) => Err(Rejected {
                    id: Some(action.action_id),
                    reason: format!("{}: {reason}", action.command.action_type()),
                }),
            }
        });
        let reply = match opened {
            Ok((action, keep_until)) => {
                let id = action.action_id;
                let kind = action.command.action_type();
                let reply = self.execute(action, keep_until).await;
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

    async fn execute(&self, action: Action, keep_until: OffsetDateTime) -> ActionReply {
        let id = action.action_id;
        let kind = action.command.action_type();
        let digest = action.content_digest();
        let once = Once {
            id,
            digest: digest.clone(),
            keep_until,
        };
        let db = self.db.clone();
        let apply = |accession: String, change: Change| async move {
            tokio::task::spawn_blocking(move || once.apply(&db, accession, change))
                .await
                .expect("worklist write does not panic")
        };
        match action.command {
            // Read-only: answered afresh every time, never recorded.
            Command::Echo(payload) => ActionReply::new(id, Outcome::Echo { payload }),
            Command::Health => ActionReply::new(
                id,
                Outcome::Ok {
                    health: health::report(&self.db, &self.probe, self.started).await,
                },
            ),
            Command::CreateItem(item) => {
                apply(item.accession_number.clone(), Change::Create(item)).await
            }
            Command::UpdateStatus {
                accession_number,
                status,
            } => apply(accession_number, Change::Status(status, Outcome::Updated)).await,
            Command::CancelItem {
                accession_number,
                reason,
            } => {
                if let Some(reason) = &reason {
                    tracing::info!("cancelling {accession_number}: {reason}");
                }
                apply(accession_number, Change::Cancel).await
            }
            // Recorded in the FHIR queue, which answers repeats itself.
            Command::DeliverFhir(delivery) => {
                let accession = delivery.accession_number.clone();
                let keep_until_ms =
                    u64::try_from(keep_until.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                let outcome = self
                    .fhir
                    .accept(&id.to_string(), &digest, keep_until_ms, delivery, kind)
                    .await;
                ActionReply {
                    accession_number: Some(accession),
                    ..ActionReply::new(id, outcome)
                }
            }
        }
    }
}

/// A worklist change an action asks for.
enum Change {
    Create(WorklistItem),
    /// Set this status (through the status machine) and answer with this outcome.
    Status(WorklistStatus, Outcome),
    /// Take the item off the worklist (DISCONTINUED); when it has not arrived, make sure it
    /// never will.
    Cancel,
}

/// What the applied-actions record needs to apply one action once.
struct Once {
    id: Uuid,
    digest: String,
    keep_until: OffsetDateTime,
}

impl Once {
    /// Applies the change unless the record says the action was applied already, and records it,
    /// all in one transaction. Only applied actions are recorded: a refused one changed nothing,
    /// so trying it again (a retry once its item exists, say) is safe.
    fn apply(self, db: &Database, accession: String, change: Change) -> ActionReply {
        let id = self.id;
        let reply = |outcome| ActionReply {
            accession_number: Some(accession.clone()),
            ..ActionReply::new(id, outcome)
        };
        let result = db.write(|txn| {
            applied::purge(txn, OffsetDateTime::now_utc())?;
            match applied::lookup(txn, id, &self.digest)? {
                Prior::Same(earlier) => {
                    tracing::info!(action_id = %id, "action {id} was applied before: answering as then");
                    return Ok(earlier);
                }
                Prior::Different => return Err(Refusal::IdReused(id)),
                Prior::New => {}
            }
            let outcome = match change {
                Change::Create(item) => create(txn, item, id)?,
                Change::Status(status, done) => {
                    worklist::set_status(txn, &accession, status)?;
                    done
                }
                Change::Cancel => cancel(txn, &accession)?,
            };
            let applied = reply(outcome);
            applied::record(txn, id, &self.digest, &applied, self.keep_until)?;
            Ok(applied)
        });
        result.unwrap_or_else(|e: Refusal| {
            reply(Outcome::Error {
                message: e.to_string(),
            })
        })
    }
}

fn status_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Created => "created",
        Outcome::Exists => "exists",
        Outcome::Updated => "updated",
        Outcome::Cancelled => "cancelled",
        Outcome::Echo { .. } => "echo",
        Outcome::Ok { .. } => "ok",
        Outcome::Delivered { .. } => "delivered",
        Outcome::Queued { .. } => "queued",
        Outcome::Error { .. } => "error",
    }
}

/// Idempotent create: the same item again is `exists`; a different item under the same
/// accession number is an error (accession numbers must not be reused).
fn create(
    txn: &redb::WriteTransaction,
    item: WorklistItem,
    action_id: Uuid,
) -> Result<Outcome, WorklistError> {
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
    let cancelled = txn
        .open_table(db::CANCELLED_BEFORE_CREATE)?
        .get(item.accession_number.as_str())
        .map_err(DbError::from)?
        .is_some();
    if cancelled {
        return Err(WorklistError::Invalid(format!(
            "worklist item {} was cancelled before it arrived; it is not offered",
            item.accession_number
        )));
    }
    let entry = WorklistEntry::new(item, Some(action_id), None)?;
    worklist::insert(txn, &entry)?;
    Ok(Outcome::Created)
}

/// How long a cancel of an item that never arrived keeps its create out: far beyond any
/// action's validity (24 h), so a create still in flight is refused when it lands.
const CANCELLED_BEFORE_CREATE_KEPT_MS: u64 = 30 * 24 * 3600 * 1000;

/// Cancels an item. An item the gateway does not have yet is remembered as cancelled, so that
/// its create — in flight when the cloud, not hearing back, withdrew it and sent this cancel —
/// is refused when it lands, and the participant is never offered.
fn cancel(txn: &redb::WriteTransaction, accession: &str) -> Result<Outcome, WorklistError> {
    if worklist::get_in(txn, accession)?.is_some() {
        worklist::set_status(txn, accession, WorklistStatus::Discontinued)?;
        return Ok(Outcome::Cancelled);
    }
    let mut table = txn.open_table(db::CANCELLED_BEFORE_CREATE)?;
    let now = db::now_ms();
    let mut stale = Vec::new();
    for row in table.iter().map_err(DbError::from)? {
        let (old, at) = row.map_err(DbError::from)?;
        if now.saturating_sub(at.value()) > CANCELLED_BEFORE_CREATE_KEPT_MS {
            stale.push(old.value().to_string());
        }
    }
    for old in stale {
        table.remove(old.as_str()).map_err(DbError::from)?;
    }
    table.insert(accession, now).map_err(DbError::from)?;
    tracing::info!(
        accession,
        "cancel for an item not here (yet): its create will be refused"
    );
    Ok(Outcome::Cancelled)
}

fn same_item(entry: &WorklistEntry, item: &WorklistItem) -> bool {
    entry.participant == item.participant
        && entry.scheduled == item.scheduled
        && entry.procedure == item.procedure
}
