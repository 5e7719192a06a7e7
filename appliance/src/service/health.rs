//! The gateway's self-checks, answered to the cloud's `health` action and to `gateway status`.
//!
//! Every check says what it saw in words (and figures), so whoever reads the reply — a support
//! engineer in the cloud app, or hospital IT at the console — knows what to fix.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use shared::relay::ListenerStatus;
use shared::wire::action::{HealthCheck, HealthReport};
use tokio::sync::watch;

use crate::cloud::outbox;
use crate::db::{Database, DbError, HEALTH};
use crate::thumbnail;

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

impl HealthLimits {
    /// The configured disk thresholds (`DISK_MIN_FREE_MIB`, `DISK_MIN_FREE_PERCENT`).
    pub fn for_config(config: &crate::config::Config) -> HealthLimits {
        HealthLimits {
            min_free_bytes: config.disk_min_free_mib.saturating_mul(1 << 20),
            min_free_percent: config.disk_min_free_percent,
            ..HealthLimits::default()
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
    /// The PACS destinations stored objects are forwarded to (`PACS_FORWARD`).
    pub forward_to: Vec<crate::forward::Destination>,
    /// The actions listener's state (connected, last traffic…).
    pub listener: Option<watch::Receiver<ListenerStatus>>,
}

/// Runs every check. `started` is when the service started (reported as its uptime).
pub async fn report(db: &Arc<Database>, probe: &HealthProbe, started: Instant) -> HealthReport {
    let mut checks = std::collections::BTreeMap::new();
    for (name, port) in [("mwl_port", probe.mwl_port), ("pacs_port", probe.pacs_port)] {
        checks.insert(name.to_string(), port_check(port).await);
    }
    checks.insert("disk".into(), disk_check(&probe.state_dir, &probe.limits));
    let task_db = db.clone();
    let limits = probe.limits.clone();
    let (database, queue, thumbnails) = tokio::task::spawn_blocking(move || {
        (
            database_check(&task_db),
            queue_check(&task_db, &limits),
            thumbnail_check(&task_db),
        )
    })
    .await
    .expect("health checks do not panic");
    for destination in &probe.forward_to {
        let task_db = db.clone();
        let (target, limits) = (destination.clone(), probe.limits.clone());
        let forwarding =
            tokio::task::spawn_blocking(move || forward_check(&task_db, &target, &limits))
                .await
                .expect("health checks do not panic");
        checks.insert(format!("forward {destination}"), forwarding);
    }
    checks.insert("database".into(), database);
    checks.insert("event_queue".into(), queue);
    checks.insert("thumbnail_jobs".into(), thumbnails);
    match &probe.listener {
        Some(listener) => {
            checks.insert("relay_listener".into(), listener_check(&listener.borrow()));
        }
        None => {
            checks.insert(
                "relay_listener".into(),
                check(
                    false,
                    "no relay configured (AZURE_RELAY_NAMESPACE is not set)".into(),
                    Map::new(),
                ),
            );
        }
    }
    HealthReport {
        healthy: checks.values().all(|c| c.ok),
        version: env!("CARGO_PKG_VERSION").to_string(),
        listener_uptime_seconds: started.elapsed().as_secs(),
        checks,
    }
}

/// Unhealthy while the oldest object waiting for this PACS is older than `max_event_age` (the
/// PACS has been unreachable that long); objects it refused for good are counted, not failed on,
/// since they need a person, not a restart.
fn forward_check(
    db: &Database,
    destination: &crate::forward::Destination,
    limits: &HealthLimits,
) -> HealthCheck {
    match crate::forward::queue::stats(db, destination) {
        Ok(stats) => {
            let stuck = stats
                .oldest_seconds
                .is_some_and(|age| age > limits.max_event_age.as_secs());
            let mut metrics = Map::new();
            metrics.insert("queued".into(), json!(stats.queued));
            metrics.insert("forwarded".into(), json!(stats.forwarded));
            metrics.insert("failed".into(), json!(stats.failed));
            metrics.insert("oldest_seconds".into(), json!(stats.oldest_seconds));
            let mut detail = format!(
                "{} waiting, {} forwarded, {} refused for good",
                stats.queued, stats.forwarded, stats.failed
            );
            if let Some(age) = stats.oldest_seconds {
                detail.push_str(&format!("; oldest waiting {age} s"));
            }
            if let Some(error) = stats.oldest_error {
                detail.push_str(&format!(" ({error})"));
            }
            check(!stuck, detail, metrics)
        }
        Err(e) => check(
            false,
            format!("cannot read the forwarding queue: {e}"),
            Map::new(),
        ),
    }
}

fn thumbnail_check(db: &Database) -> HealthCheck {
    match thumbnail::pending_jobs(db) {
        Ok(jobs) => {
            let mut metrics = Map::new();
            metrics.insert("pending".into(), json!(jobs.len()));
            check(
                true,
                format!("{} image(s) waiting for a thumbnail", jobs.len()),
                metrics,
            )
        }
        Err(e) => check(
            false,
            format!("cannot read the thumbnail jobs: {e}"),
            Map::new(),
        ),
    }
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

pub(crate) fn disk_check(dir: &std::path::Path, limits: &HealthLimits) -> HealthCheck {
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
