//! `/readyz`: may a load balancer send this replica requests? `/healthz` only says the process
//! answers; this says it can do its work — the database answers, every migration this build
//! knows is applied, and every gateway's events listener has finished starting.
//!
//! A listener that cannot reach its relay does not make the replica unready: the relay hands
//! each event to whichever replica listens, actions go out from any replica through the shared
//! outbox, and pulling every replica because one hospital's relay is down would take the service
//! away from every other clinic. Such a listener shows on the gateways page, in the metrics and
//! in the counts here.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::db::Db;
use super::state::AppState;

/// How long the database may take to answer before this replica reads unready.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` answers, as JSON: counts only, nothing about patients or gateways' names (the
/// endpoint is for load balancers and needs no sign-in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `ok`, or why the database cannot be used.
    pub database: String,
    pub migrations: Migrations,
    pub listeners: ListenerCounts,
}

/// Migrations this build knows and how many of them the database has applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Migrations {
    pub expected: usize,
    pub applied: usize,
}

/// The events listeners by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListenerCounts {
    pub connected: usize,
    /// Not connected after trying: retrying with backoff, or not startable (a missing key).
    pub failing: usize,
    /// Not yet through their first attempt.
    pub starting: usize,
}

/// Checks this replica now.
pub async fn check(state: &AppState) -> Readiness {
    let listeners = state.listeners.counts();
    let (database, migrations) =
        match tokio::time::timeout(DATABASE_TIMEOUT, migrations(&state.db)).await {
            Ok(Ok(m)) => ("ok".to_string(), m),
            Ok(Err(e)) => (format!("unavailable: {e}"), Migrations::default()),
            Err(_) => (
                format!("no answer within {} s", DATABASE_TIMEOUT.as_secs()),
                Migrations::default(),
            ),
        };
    let ready =
        database == "ok" && migrations.applied == migrations.expected && listeners.starting == 0;
    let readiness = Readiness {
        ready,
        database,
        migrations,
        listeners,
    };
    log_change(&readiness);
    readiness
}

/// One log line when this replica turns ready or unready, not one per probe.
fn log_change(now: &Readiness) {
    // 0: not yet checked, 1: ready, 2: unready.
    static LAST: AtomicU8 = AtomicU8::new(0);
    let state = if now.ready { 1 } else { 2 };
    if LAST.swap(state, Ordering::Relaxed) == state {
        return;
    }
    if now.ready {
        tracing::info!("ready: database, migrations and events listeners are up");
    } else {
        tracing::warn!(
            database = %now.database,
            migrations = now.migrations.applied,
            expected = now.migrations.expected,
            starting_listeners = now.listeners.starting,
            "not ready"
        );
    }
}

/// The database's applied migrations among those this build knows: one query, so it is also
/// the database's reachability check.
async fn migrations(db: &Db) -> Result<Migrations, sqlx::Error> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&db.pool)
            .await?;
    let known: Vec<i64> = db
        .migrator()
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    Ok(Migrations {
        expected: known.len(),
        applied: known.iter().filter(|v| applied.contains(v)).count(),
    })
}
