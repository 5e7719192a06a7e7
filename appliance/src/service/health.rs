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
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
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
    /// An image waiting longer than this for its thumbnail means the workers are stuck.
    pub max_thumbnail_wait: Duration,
    /// More quarantined thumbnail jobs than this is a pattern (a codec failing for every
    /// image of a modality), not one poison object.
    pub max_quarantined: usize,
}

impl Default for HealthLimits {
    fn default() -> HealthLimits {
        HealthLimits {
            min_free_bytes: 1 << 30,
            min_free_percent: 5.0,
            max_event_age: Duration::from_secs(600),
            max_thumbnail_wait: Duration::from_secs(600),
            max_quarantined: 5,
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
    /// Retention (`RETENTION_DAYS`), for what it would free now; `None` when off.
    pub retention: Option<crate::storage::retention::Policy>,
    /// The actions listener's state (connected, last traffic…).
    pub listener: Option<watch::Receiver<ListenerStatus>>,
    /// The thumbnail workers.
    pub thumbnails: thumbnail::Monitor,
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
    let workers = probe.thumbnails.status();
    let (database, queue, fhir, thumbnails) = tokio::task::spawn_blocking(move || {
        (
            database_check(&task_db),
            queue_check(&task_db, &limits),
            fhir_check(&task_db, &limits),
            match thumbnail::all_jobs(&task_db) {
                Ok(jobs) => thumbnail_check(&workers, &jobs, OffsetDateTime::now_utc(), &limits),
                Err(e) => check(
                    false,
                    format!("cannot read the thumbnail jobs: {e}"),
                    Map::new(),
                ),
            },
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
    let task_db = db.clone();
    let retention = probe.retention.clone();
    let store = tokio::task::spawn_blocking(move || store_check(&task_db, retention.as_ref()))
        .await
        .expect("health checks do not panic");
    checks.insert("store".into(), store);
    checks.insert("database".into(), database);
    checks.insert("event_queue".into(), queue);
    checks.insert("fhir_deliveries".into(), fhir);
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
            // Storage Commitment, where the PACS does it: a failed commitment needs a person
            // (the object is kept), so it is counted, not failed on.
            match crate::forward::commitment::counts(db, destination) {
                Ok((0, 0, 0)) => {}
                Ok((pending, committed, failed)) => {
                    metrics.insert("commit_pending".into(), json!(pending));
                    metrics.insert("committed".into(), json!(committed));
                    metrics.insert("commit_failed".into(), json!(failed));
                    detail.push_str(&format!(
                        "; storage commitment: {committed} committed, {pending} awaited, {failed} failed"
                    ));
                }
                Err(e) => detail.push_str(&format!("; cannot read the commitments: {e}")),
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

/// What the store holds and what retention would free now: information, never unhealthy
/// (the free-space checks are `disk`'s), except when the index cannot be read.
fn store_check(
    db: &Database,
    retention: Option<&crate::storage::retention::Policy>,
) -> HealthCheck {
    let (objects, bytes) = match crate::storage::retention::usage(db) {
        Ok(usage) => usage,
        Err(e) => return check(false, format!("cannot read the index: {e}"), Map::new()),
    };
    let mut metrics = Map::new();
    metrics.insert("objects".into(), json!(objects));
    metrics.insert("bytes".into(), json!(bytes));
    let mut detail = format!("{objects} objects, {} MiB", bytes >> 20);
    match retention {
        None => detail.push_str("; retention off (RETENTION_DAYS unset)"),
        Some(policy) => {
            match crate::storage::retention::preview(db, policy, OffsetDateTime::now_utc()) {
                Ok(would) => {
                    metrics.insert("retention_would_delete".into(), json!(would.deleted));
                    metrics.insert(
                        "retention_would_free_bytes".into(),
                        json!(would.bytes_freed),
                    );
                    metrics.insert(
                        "retention_kept_not_safe".into(),
                        json!(would.kept_not_archived),
                    );
                    detail.push_str(&format!(
                        "; retention would free {} MiB ({} objects) now, {} old enough but not yet safe at every PACS",
                        would.bytes_freed >> 20,
                        would.deleted,
                        would.kept_not_archived
                    ));
                }
                Err(e) => detail.push_str(&format!("; cannot work out retention: {e}")),
            }
        }
    }
    check(true, detail, metrics)
}

/// How many quarantined jobs the detail names one by one.
const QUARANTINED_NAMED: usize = 3;

/// The workers run, no image waits too long, and quarantined jobs are few; every quarantined
/// job is listed in the metrics, the first few in the detail.
fn thumbnail_check(
    workers: &thumbnail::WorkerStatus,
    jobs: &[thumbnail::Job],
    now: OffsetDateTime,
    limits: &HealthLimits,
) -> HealthCheck {
    // Each quarantined job beside its quarantine record, so nothing below needs to unwrap it.
    let quarantined: Vec<_> = jobs
        .iter()
        .filter_map(|j| j.quarantined.as_ref().map(|q| (j, q)))
        .collect();
    let pending: Vec<_> = jobs.iter().filter(|j| j.quarantined.is_none()).collect();
    let oldest_wait = pending
        .iter()
        .filter_map(|j| OffsetDateTime::parse(&j.record.received_at, &Rfc3339).ok())
        .map(|at| (now - at).whole_seconds().max(0) as u64)
        .max();
    let mut problems = Vec::new();
    if workers.running < workers.configured {
        problems.push(format!(
            "only {} of {} worker(s) running{}",
            workers.running,
            workers.configured,
            match &workers.last_death {
                Some(why) => format!(" (last died: {why})"),
                None => String::new(),
            }
        ));
    }
    if let Some(wait) = oldest_wait.filter(|w| *w > limits.max_thumbnail_wait.as_secs()) {
        problems.push(format!(
            "the oldest image has waited {wait} s (more than {} s): the workers are stuck",
            limits.max_thumbnail_wait.as_secs()
        ));
    }
    if quarantined.len() > limits.max_quarantined {
        problems.push(format!(
            "{} jobs quarantined (more than {}): the renderer fails on many images",
            quarantined.len(),
            limits.max_quarantined
        ));
    }
    let mut detail = format!(
        "{}/{} worker(s) running, {} image(s) waiting for a thumbnail{}",
        workers.running,
        workers.configured,
        pending.len(),
        match oldest_wait {
            Some(wait) => format!(" (oldest {wait} s)"),
            None => String::new(),
        }
    );
    if workers.respawns > 0 {
        detail.push_str(&format!(", {} worker restart(s)", workers.respawns));
    }
    if !quarantined.is_empty() {
        let named: Vec<String> = quarantined
            .iter()
            .take(QUARANTINED_NAMED)
            .map(|(j, q)| format!("{} since {}: {}", j.record.sop_instance_uid, q.at, q.reason))
            .collect();
        detail.push_str(&format!(
            "; {} quarantined (stored, reported without a thumbnail): {}{}",
            quarantined.len(),
            named.join("; "),
            if quarantined.len() > QUARANTINED_NAMED {
                format!("; and {} more", quarantined.len() - QUARANTINED_NAMED)
            } else {
                String::new()
            }
        ));
    }
    if !problems.is_empty() {
        detail = format!("{}; {detail}", problems.join("; "));
    }
    let mut metrics = Map::new();
    metrics.insert("pending".into(), json!(pending.len()));
    metrics.insert("oldest_wait_seconds".into(), json!(oldest_wait));
    metrics.insert("workers_configured".into(), json!(workers.configured));
    metrics.insert("workers_running".into(), json!(workers.running));
    metrics.insert("worker_restarts".into(), json!(workers.respawns));
    metrics.insert(
        "quarantined".into(),
        Value::Array(
            quarantined
                .iter()
                .map(|(j, q)| {
                    json!({
                        "sop_instance_uid": j.record.sop_instance_uid,
                        "file_path": j.record.file_path,
                        "attempts": j.attempts,
                        "at": q.at,
                        "reason": q.reason,
                    })
                })
                .collect(),
        ),
    );
    check(problems.is_empty(), detail, metrics)
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
            // A parked event needs a person: the cloud will not take it until someone acts.
            let ok = age <= limits.max_event_age.as_secs() && stats.parked == 0;
            let mut metrics = Map::new();
            metrics.insert("depth".into(), json!(stats.depth));
            metrics.insert("oldest_seconds".into(), json!(stats.oldest_seconds));
            metrics.insert("parked".into(), json!(stats.parked));
            let mut detail = match stats.oldest_seconds {
                None => "no events waiting".to_string(),
                Some(age) => format!("{} event(s) waiting, oldest {age} s", stats.depth),
            };
            if let Some(error) = stats.oldest_error {
                detail.push_str(&format!("; last error: {error}"));
            }
            if stats.parked > 0 {
                detail.push_str(&format!(
                    "; {} parked (gateway events list), newest {}",
                    stats.parked,
                    stats
                        .newest_parked_reason
                        .unwrap_or_else(|| "refused by the cloud".into())
                ));
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

/// FHIR deliveries waiting for their endpoint: failing once the oldest has waited longer than an
/// event may (the hospital's integration engine is down or refusing connections).
fn fhir_check(db: &Database, limits: &HealthLimits) -> HealthCheck {
    let pending = match crate::fhir::queue::pending(db) {
        Ok(p) => p,
        Err(e) => {
            return check(
                false,
                format!("cannot read the FHIR deliveries: {e}"),
                Map::new(),
            )
        }
    };
    let now = crate::db::now_ms();
    let oldest = pending.first().map(|(_, d)| d);
    let oldest_seconds = oldest.map(|d| now.saturating_sub(d.queued_ms) / 1000);
    let mut metrics = Map::new();
    metrics.insert("depth".into(), json!(pending.len()));
    metrics.insert("oldest_seconds".into(), json!(oldest_seconds));
    let Some(oldest) = oldest else {
        return check(true, "no FHIR deliveries waiting".into(), metrics);
    };
    let age = oldest_seconds.unwrap_or(0);
    let mut detail = format!(
        "{} FHIR deliver{} waiting, oldest {age} s (to {})",
        pending.len(),
        if pending.len() == 1 { "y" } else { "ies" },
        oldest.destination
    );
    if let Some(error) = &oldest.last_error {
        detail.push_str(&format!("; last error: {error}"));
    }
    check(age <= limits.max_event_age.as_secs(), detail, metrics)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thumbnail::jobs::{tests::job, Quarantine};
    use crate::thumbnail::WorkerStatus;

    fn workers(configured: usize, running: usize) -> WorkerStatus {
        WorkerStatus {
            configured,
            running,
            respawns: 0,
            last_death: None,
        }
    }

    /// A job for an image received `age` seconds before `now`, quarantined or not.
    fn waiting(uid: &str, age: i64, quarantined: bool, now: OffsetDateTime) -> thumbnail::Job {
        let mut j = job(1, false);
        j.record.sop_instance_uid = uid.into();
        j.record.received_at = (now - time::Duration::seconds(age))
            .format(&Rfc3339)
            .unwrap();
        j.quarantined = quarantined.then(|| Quarantine {
            reason: "the thumbnail renderer failed 3 times".into(),
            at: "2026-12-01T10:00:00Z".into(),
        });
        j
    }

    #[test]
    fn the_thumbnail_check_fails_on_dead_workers_stuck_jobs_and_many_quarantined() {
        let now = OffsetDateTime::now_utc();
        let limits = HealthLimits::default(); // 600 s, 5 quarantined
        let q = |n: usize| -> Vec<thumbnail::Job> {
            (0..n)
                .map(|i| waiting(&format!("1.9.{i}"), 5, true, now))
                .collect()
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, WorkerStatus, Vec<thumbnail::Job>, bool, &str)> = vec![
            ("idle", workers(1, 1), vec![], true, "1/1 worker(s) running, 0 image(s) waiting"),
            ("busy", workers(2, 2), vec![waiting("1.1", 30, false, now)], true, "1 image(s) waiting for a thumbnail (oldest 30 s)"),
            ("dead worker", workers(2, 1), vec![], false, "only 1 of 2 worker(s) running"),
            ("stuck", workers(1, 1), vec![waiting("1.1", 601, false, now)], false, "the oldest image has waited 601 s"),
            ("one poison object", workers(1, 1), q(1), true, "1 quarantined (stored, reported without a thumbnail): 1.9.0 since"),
            ("at the bound", workers(1, 1), q(5), true, "and 2 more"),
            ("beyond the bound", workers(1, 1), q(6), false, "6 jobs quarantined (more than 5)"),
        ];
        for (name, status, jobs, ok, says) in cases {
            let got = thumbnail_check(&status, &jobs, now, &limits);
            assert_eq!(got.ok, ok, "{name}: {}", got.detail);
            assert!(got.detail.contains(says), "{name}: {}", got.detail);
            let listed = got.metrics["quarantined"].as_array().unwrap().len();
            assert_eq!(
                listed,
                jobs.iter().filter(|j| j.quarantined.is_some()).count(),
                "{name}"
            );
        }
    }
}
