//! The liveness monitor: probes every gateway on a schedule with a signed `health` action (a
//! durable, audited GatewayAction like any other, tried once), judges each gateway from the
//! evidence ([`Liveness::assess`]: the last real contact in either direction, the last time the
//! relay could not reach it, its last health report) and announces every change on the bus, so
//! the gateways page and each clinic's banner follow without a reload.

use std::collections::HashMap;
use std::time::Duration;

use shared::wire::action::{Action, Command, HealthReport};

use super::bus::Change;
use super::db::{now_ms, StoreError};
use super::state::AppState;
use super::store::actions::{self, NewAction, PROBE};
use super::store::gateways::{self, GatewayRecord};
use crate::domain::{Evidence, Liveness};

/// How long settled probes are kept.
const KEEP_PROBES_MS: i64 = 24 * 60 * 60 * 1000;

/// The gateway's liveness now.
pub fn assess(state: &AppState, gateway: &GatewayRecord) -> Liveness {
    Liveness::assess(&Evidence {
        now_ms: now_ms(),
        probe_interval_ms: state.probe_interval.as_millis() as i64,
        last_contact_ms: gateway.last_contact_at,
        last_unreachable_ms: gateway.last_unreachable_at,
        failing_checks: report(gateway)
            .map(|r| {
                r.checks
                    .iter()
                    .filter(|(_, c)| !c.ok)
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default(),
        events_listener_connected: state
            .listener_status(gateway.id)
            .is_some_and(|s| s.connected),
    })
}

/// The gateway's last health report, if it sent one we can read.
pub fn report(gateway: &GatewayRecord) -> Option<HealthReport> {
    serde_json::from_str(gateway.last_health_report.as_deref()?).ok()
}

/// Runs until `stop`: a probe to every gateway twice an interval (none while one is
/// outstanding), so that a gateway that goes away reads offline within one interval, and a look
/// at every gateway's liveness four times an interval, announcing changes.
pub async fn run(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let interval = state.probe_interval;
    let every = interval / 2;
    // The first probe after one period: a restart does not storm every gateway at once.
    let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut look = tokio::time::interval((interval / 4).max(Duration::from_millis(250)));
    let mut last_seen: HashMap<i64, Liveness> = HashMap::new();
    loop {
        let result = tokio::select! {
            _ = &mut stop => return,
            _ = probe.tick() => probe_all(&state).await,
            _ = look.tick() => announce_changes(&state, &mut last_seen).await,
        };
        if let Err(e) = result {
            tracing::error!("liveness monitor: {e}");
        }
    }
}

async fn probe_all(state: &AppState) -> Result<(), StoreError> {
    let mut queued = false;
    for gateway in gateways::all(&state.db).await? {
        if actions::probe_outstanding(&state.db, gateway.id).await? {
            continue;
        }
        let action = Action::new(&state.source_system, Command::Health);
        let id = action.action_id.to_string();
        let payload = action.to_value().to_string();
        let mut tx = state.db.begin().await?;
        actions::insert(
            &mut tx,
            &NewAction {
                id: &id,
                gateway_id: gateway.id,
                appointment_id: None,
                action_type: action.command.action_type(),
                destination: PROBE,
                payload: &payload,
            },
        )
        .await?;
        tx.commit().await?;
        queued = true;
    }
    if queued {
        state.outbox_wake.notify_one();
    }
    actions::purge_probes(&state.db, now_ms() - KEEP_PROBES_MS).await?;
    Ok(())
}

async fn announce_changes(
    state: &AppState,
    last_seen: &mut HashMap<i64, Liveness>,
) -> Result<(), StoreError> {
    for gateway in gateways::all(&state.db).await? {
        let now = assess(state, &gateway);
        if last_seen.get(&gateway.id) != Some(&now) {
            if let Some(before) = last_seen.get(&gateway.id) {
                let line = format!(
                    "gateway {} {} (was {})",
                    gateway.name,
                    now.as_str(),
                    before.as_str()
                );
                if now.is_offline() {
                    tracing::warn!("{line}");
                } else {
                    tracing::info!("{line}");
                }
            }
            last_seen.insert(gateway.id, now);
            state.bus.publish(Change::Gateway {
                provider_id: gateway.provider_id,
                gateway_id: gateway.id,
            });
        }
    }
    Ok(())
}
