//! Prometheus metrics at `WEB_METRICS_ADDR` (off when unset), on a listener of their own so the
//! public site never serves them. Counters and the SSE gauge are recorded where things happen
//! through the `metrics` facade; what lives in the database or the listeners (outbox states,
//! each gateway's link and liveness) is read at each scrape.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::db::col;
use super::state::AppState;
use super::store::gateways;

/// SSE streams open now.
pub const SSE_CLIENTS: &str = "web_sse_clients";
/// Failed sign-ins, by `reason` (wrong, throttled).
pub const SIGN_IN_FAILURES: &str = "web_sign_in_failures_total";
/// Events received from gateways, by `outcome` (accepted, duplicate, refused, error).
pub const EVENTS_RECEIVED: &str = "web_events_received_total";
/// Outbox send attempts, by `outcome` (confirmed, failed, retry, withdrawn).
pub const OUTBOX_ATTEMPTS: &str = "web_outbox_attempts_total";
/// Gateway actions in each outbox `status` (sampled at scrape).
pub const OUTBOX_ACTIONS: &str = "web_outbox_actions";
/// 1 while this app's events listener for `gateway` is connected to the relay.
pub const LISTENER_CONNECTED: &str = "web_relay_listener_connected";
/// 1 for the `state` (online, degraded, offline) each `gateway` is in.
pub const GATEWAY_LIVENESS: &str = "web_gateway_liveness";

/// The process's recorder: installed once (tests start many servers in one process).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
    })
}

/// Installs the recorder, so that counters count from start-up.
pub fn install() {
    let _ = handle();
}

/// The router of the metrics listener: `GET /metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn scrape(State(state): State<AppState>) -> String {
    if let Err(e) = sample(&state).await {
        tracing::warn!("metrics: {e}");
    }
    handle().render()
}

/// Sets the gauges read from the database and the listeners.
async fn sample(state: &AppState) -> Result<(), super::db::StoreError> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM gateway_actions GROUP BY status")
        .fetch_all(&state.db.pool)
        .await?;
    for status in crate::domain::ActionStatus::ALL {
        let n = rows
            .iter()
            .find(|r| col::<String>(r, "status").is_ok_and(|s| s == status.as_str()))
            .map(|r| col::<i64>(r, "n"))
            .transpose()?
            .unwrap_or(0);
        metrics::gauge!(OUTBOX_ACTIONS, "status" => status.as_str()).set(n as f64);
    }
    for gateway in gateways::all(&state.db).await? {
        let connected = state
            .listener_status(gateway.id)
            .is_some_and(|s| s.connected);
        metrics::gauge!(LISTENER_CONNECTED, "gateway" => gateway.name.clone())
            .set(f64::from(u8::from(connected)));
        let now = super::liveness::assess(state, &gateway);
        for word in ["online", "degraded", "offline"] {
            metrics::gauge!(GATEWAY_LIVENESS, "gateway" => gateway.name.clone(), "state" => word)
                .set(f64::from(u8::from(now.as_str() == word)));
        }
    }
    Ok(())
}

/// Counts an open SSE stream while it lives.
pub struct SseClient(());

impl SseClient {
    pub fn open() -> SseClient {
        metrics::gauge!(SSE_CLIENTS).increment(1.0);
        SseClient(())
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        metrics::gauge!(SSE_CLIENTS).decrement(1.0);
    }
}
