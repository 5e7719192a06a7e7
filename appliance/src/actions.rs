//! Actions from the cloud: verify, act on the worklist, reply.
//!
//! The relay listener hands every received message to [`Actions::handle`], concurrently; the
//! reply (signed) goes back on the same rendezvous socket. A message that cannot be verified or
//! read gets an `error` reply that says why, never silence and never a panic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use shared::relay::ListenerStatus;
use shared::wire::action::{
    Action, ActionReply, Command, HealthCheck, HealthReport, Outcome, WorklistItem, WorklistStatus,
};
use shared::wire::{SigningKey, Verification};
use tokio::sync::watch;

use crate::db::{Database, DbError};
use crate::outbox;
use crate::worklist::{self, WorklistEntry, WorklistError};

/// Thresholds for `health`: below them the gateway says it is unhealthy.
#[derive(Debug, Clone)]
pub struct HealthLimits {
    pub min_free_bytes: u64,
    pub min_free_percent: f64,
    /// An undelivered event older than this means the cloud is not hearing from us.
    pub max_event_age: Duration,
}

impl Default for HealthLimits {
    fn default() -> HealthLimits {
        HealthLimits {
            min_free_bytes: 1 << 30,
            min_free_percent: 5.0,
            max_event_age: Duration::from_secs(600),
        }
    }
}

/// What `health` looks at besides the database.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    pub mwl_port: u16,
    pub pacs_port: u16,
    pub state_dir: PathBuf,
    pub limits: HealthLimits,
    /// The actions listener's state (connected, last traffic…).
    pub listener: Option<watch::Receiver<ListenerStatus>>,
}

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
                health: self.health().await,
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

    /// Real checks, each with what was seen, so a support engineer reading the reply in the cloud
    /// knows what to fix.
    pub async fn health(&self) -> HealthReport {
        let mut checks = std::collections::BTreeMap::new();
        for (name, port) in [
            ("mwl_port", self.probe.mwl_port),
            ("pacs_port", self.probe.pacs_port),
        ] {
            checks.insert(name.to_string(), port_check(port).await);
        }
        checks.insert(
            "disk".into(),
            disk_check(&self.probe.state_dir, &self.probe.limits),
        );
        let db = self.db.clone();
        let limits = self.probe.limits.clone();
        let (database, queue) =
            tokio::task::spawn_blocking(move || (database_check(&db), queue_check(&db, &limits)))
                .await
                .expect("health checks do not panic");
        checks.insert("database".into(), database);
        checks.insert("event_queue".into(), queue);
        if let Some(listener) = &self.probe.listener {
            checks.insert("relay_listener".into(), listener_check(&listener.borrow()));
        }
        HealthReport {
            healthy: checks.values().all(|c| c.ok),
            version: env!("CARGO_PKG_VERSION").to_string(),
            listener_uptime_seconds: self.started.elapsed().as_secs(),
            checks,
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

async fn port_check(port: u16) -> HealthCheck {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let result =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    match result {
        Ok(Ok(_)) => check(true, format!("{addr} accepts connections"), Map::new()),
        Ok(Err(e)) => check(
            false,
            format!("{addr} refuses connections: {e}"),
            Map::new(),
        ),
        Err(_) => check(
            false,
            format!("{addr} did not answer within 2 s"),
            Map::new(),
        ),
    }
}

fn disk_check(dir: &std::path::Path, limits: &HealthLimits) -> HealthCheck {
    match rustix::fs::statvfs(dir) {
        Ok(stat) => {
            let free = stat.f_bavail * stat.f_frsize;
            let total = (stat.f_blocks * stat.f_frsize).max(1);
            let percent = free as f64 * 100.0 / total as f64;
            let ok = free >= limits.min_free_bytes && percent >= limits.min_free_percent;
            let mut metrics = Map::new();
            metrics.insert("free_bytes".into(), json!(free));
            metrics.insert(
                "free_percent".into(),
                json!((percent * 10.0).round() / 10.0),
            );
            let detail = format!(
                "{:.1} GiB free ({percent:.1} %) under {}{}",
                free as f64 / (1u64 << 30) as f64,
                dir.display(),
                if ok {
                    String::new()
                } else {
                    format!(
                        ", needs {:.1} GiB and {} %",
                        limits.min_free_bytes as f64 / (1u64 << 30) as f64,
                        limits.min_free_percent
                    )
                }
            );
            check(ok, detail, metrics)
        }
        Err(e) => check(
            false,
            format!("cannot read free space of {}: {e}", dir.display()),
            Map::new(),
        ),
    }
}

fn database_check(db: &Database) -> HealthCheck {
    // A real write: redb refuses it when the disk is full or the file is damaged.
    let result = db.write(|txn| {
        let mut table = txn.open_table(HEALTH)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        table.insert("last_health_check", now)?;
        Ok::<_, DbError>(())
    });
    match result {
        Ok(()) => check(true, "writable".into(), Map::new()),
        Err(e) => check(false, format!("not writable: {e}"), Map::new()),
    }
}

/// A scratch table `health` writes to, proving the database takes writes.
const HEALTH: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("health");

fn queue_check(db: &Database, limits: &HealthLimits) -> HealthCheck {
    match outbox::stats(db) {
        Ok(stats) => {
            let age = stats.oldest_seconds.unwrap_or(0);
            let ok = age <= limits.max_event_age.as_secs();
            let mut metrics = Map::new();
            metrics.insert("depth".into(), json!(stats.depth));
            metrics.insert("oldest_seconds".into(), json!(stats.oldest_seconds));
            let mut detail = match stats.oldest_seconds {
                None => "no events waiting".to_string(),
                Some(age) => format!("{} event(s) waiting, oldest {age} s", stats.depth),
            };
            if let Some(error) = stats.oldest_error {
                detail.push_str(&format!("; last error: {error}"));
            }
            check(ok, detail, metrics)
        }
        Err(e) => check(
            false,
            format!("cannot read the event queue: {e}"),
            Map::new(),
        ),
    }
}

fn listener_check(status: &ListenerStatus) -> HealthCheck {
    let ago = |t: Option<SystemTime>| t.and_then(|t| t.elapsed().ok()).map(|d| d.as_secs());
    let mut metrics = Map::new();
    metrics.insert(
        "connected_seconds".into(),
        json!(ago(status.connected_since)),
    );
    metrics.insert(
        "last_traffic_seconds".into(),
        json!(ago(status.last_traffic)),
    );
    metrics.insert("connections".into(), json!(status.connections));
    let detail = if status.connected {
        format!(
            "connected for {} s, last traffic {} s ago, {} reconnect(s)",
            ago(status.connected_since).unwrap_or(0),
            ago(status.last_traffic).unwrap_or(0),
            status.connections.saturating_sub(1)
        )
    } else {
        format!(
            "not connected: {}",
            status.last_error.as_deref().unwrap_or("never connected")
        )
    };
    check(status.connected, detail, metrics)
}

fn check(ok: bool, detail: String, metrics: Map<String, Value>) -> HealthCheck {
    HealthCheck {
        ok,
        detail,
        metrics,
    }
}
