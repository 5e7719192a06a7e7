//! Prometheus metrics at `METRICS_ADDR` (off when unset), through the `metrics` facade and its
//! Prometheus exporter's own small HTTP listener. The DICOM and cloud code record with the
//! `metrics` macros under the names below; without `METRICS_ADDR` no recorder is installed and
//! they cost next to nothing. Gauges of stored state (queue depths) are sampled by [`sample`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};
use tokio::sync::watch;

use crate::db::Database;

/// Associations accepted, by `service` (worklist, storage).
pub const ASSOCIATIONS: &str = "gateway_associations_total";
/// Associations open now.
pub const ASSOCIATIONS_OPEN: &str = "gateway_associations_open";
/// C-STORE requests answered, by `status` (success, refused).
pub const CSTORE: &str = "gateway_cstore_total";
/// Bytes of objects stored.
pub const CSTORE_BYTES: &str = "gateway_cstore_bytes_total";
/// Time from a C-STORE's data set in hand to its answer (the object durable and indexed).
pub const CSTORE_SECONDS: &str = "gateway_cstore_seconds";
/// Time to answer a worklist C-FIND, all matches streamed.
pub const CFIND_SECONDS: &str = "gateway_cfind_seconds";
/// Events waiting for the cloud, and refused ones parked.
pub const EVENT_QUEUE: &str = "gateway_event_queue_depth";
pub const EVENTS_PARKED: &str = "gateway_events_parked";
/// Objects waiting to be forwarded to a PACS.
pub const FORWARD_QUEUE: &str = "gateway_forward_queue_depth";
/// FHIR delivery attempts by outcome: delivered, refused (by the endpoint), retry.
pub const FHIR_DELIVERIES: &str = "gateway_fhir_deliveries_total";
/// FHIR deliveries waiting for their endpoint.
pub const FHIR_QUEUE: &str = "gateway_fhir_queue_depth";
/// 1 while the relay listener for actions is connected.
pub const RELAY_CONNECTED: &str = "gateway_relay_connected";
/// Times the relay listener connected again after losing its connection.
pub const RELAY_RECONNECTS: &str = "gateway_relay_reconnects_total";

/// Starts the exporter on `addr`: `GET /metrics` answers the text format.
pub fn install(addr: SocketAddr) -> Result<(), BuildError> {
    let seconds = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&seconds)?
        .install()?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    Ok(())
}

/// Every 5 s until `stop`: the queue depths from the database.
pub async fn sample(db: Arc<Database>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = every.tick() => {}
        }
        let db = db.clone();
        let read = tokio::task::spawn_blocking(move || {
            let events = crate::cloud::outbox::stats(&db)?;
            let forward = crate::forward::queue::depth(&db)?;
            let fhir = crate::fhir::queue::pending(&db)?.len();
            Ok::<_, crate::db::DbError>((events, forward, fhir))
        })
        .await;
        match read {
            Ok(Ok((events, forward, fhir))) => {
                metrics::gauge!(FHIR_QUEUE).set(fhir as f64);
                metrics::gauge!(EVENT_QUEUE).set(events.depth as f64);
                metrics::gauge!(EVENTS_PARKED).set(events.parked as f64);
                metrics::gauge!(FORWARD_QUEUE).set(forward as f64);
            }
            Ok(Err(e)) => tracing::warn!("metrics: cannot read the queues: {e}"),
            Err(e) => tracing::warn!("metrics: {e}"),
        }
    }
}

/// Follows the relay listener until `stop`: its connection as a gauge, reconnects as a counter.
pub async fn follow_relay(
    mut status: watch::Receiver<shared::relay::ListenerStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut was = status.borrow().connected;
    let mut ever = was;
    metrics::gauge!(RELAY_CONNECTED).set(f64::from(u8::from(was)));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            changed = status.changed() => if changed.is_err() { return },
        }
        let now = status.borrow().connected;
        if now != was {
            metrics::gauge!(RELAY_CONNECTED).set(f64::from(u8::from(now)));
            if now && ever {
                metrics::counter!(RELAY_RECONNECTS).increment(1);
            }
            ever |= now;
            was = now;
        }
    }
}
