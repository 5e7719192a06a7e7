//! The events listeners, one per gateway: started for every gateway at boot, and started again
//! with the new settings when an administrator adds or changes a gateway — no restart of the app.
//! Each stops when its gateway's settings change or the app shuts down.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use shared::relay::{Listener, ListenerOptions, ListenerStatus};
use tokio::sync::watch;

use super::bus::Change;
use super::db::StoreError;
use super::relay_link;
use super::state::AppState;
use super::store::gateways::{self, GatewayRecord};

/// Every gateway's listener, by gateway id.
#[derive(Default)]
pub struct Listeners {
    running: RwLock<HashMap<i64, Running>>,
    /// The app's shutdown signal, once the server has started; listeners started later stop on
    /// it too.
    shutdown: Mutex<Option<watch::Receiver<bool>>>,
}

struct Running {
    status: watch::Receiver<ListenerStatus>,
    /// Dropped or set to `true`: this listener stops.
    _stop: watch::Sender<bool>,
}

impl Listeners {
    /// The current status of a gateway's events listener, if one runs.
    pub fn status(&self, gateway_id: i64) -> Option<ListenerStatus> {
        let running = self.running.read().ok()?;
        running.get(&gateway_id).map(|r| r.status.borrow().clone())
    }

    /// How many listeners are connected, failing or still starting, for `/readyz`.
    pub fn counts(&self) -> super::readiness::ListenerCounts {
        let mut counts = super::readiness::ListenerCounts::default();
        let Ok(running) = self.running.read() else {
            return counts;
        };
        for r in running.values() {
            let status = r.status.borrow();
            if status.connected {
                counts.connected += 1;
            } else if status.connections > 0 || status.last_error.is_some() {
                counts.failing += 1;
            } else {
                counts.starting += 1;
            }
        }
        counts
    }

    /// Starts a listener for every gateway; all of them (and any started later) stop when
    /// `shutdown` turns true.
    pub async fn start_all(
        state: &AppState,
        shutdown: watch::Receiver<bool>,
    ) -> Result<usize, StoreError> {
        if let Ok(mut slot) = state.listeners.shutdown.lock() {
            *slot = Some(shutdown);
        }
        let all = gateways::all(&state.db).await?;
        let n = all.len();
        for gateway in all {
            Listeners::restart(state, gateway);
        }
        Ok(n)
    }

    /// Stops the gateway's listener, if one runs, and starts one with these settings. Settings
    /// that cannot be used (a missing relay key) leave a stopped listener whose status says why,
    /// for the gateways page.
    pub fn restart(state: &AppState, gateway: GatewayRecord) {
        let Some(app_shutdown) = state.listeners.shutdown.lock().ok().and_then(|s| s.clone())
        else {
            // Not serving yet (a test that builds state only): `start_all` starts it.
            return;
        };
        let (stop, stopped) = watch::channel(false);
        let config = match relay_link::relay_config(&gateway, state.env.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("events listener for {} not started: {e}", gateway.name);
                // A receiver keeps the last value after its sender is gone.
                let status = watch::channel(ListenerStatus {
                    last_error: Some(format!("not started: {e}")),
                    ..Default::default()
                })
                .1;
                state.listeners.put(gateway.id, status, stop);
                announce(state, &gateway);
                return;
            }
        };
        let listener = Listener::new(config, &gateway.events_hc, ListenerOptions::default());
        let status = listener.status();
        state.listeners.put(gateway.id, status.clone(), stop);
        announce(state, &gateway);
        spawn_announcer(state, &gateway, status);
        let handler_state = state.clone();
        let handler_gateway = gateway.clone();
        tokio::spawn(async move {
            listener
                .run(
                    move |text: String| {
                        let state = handler_state.clone();
                        let gateway = handler_gateway.clone();
                        async move { super::events::handle(&state, &gateway, &text).await }
                    },
                    until_either(app_shutdown, stopped),
                )
                .await;
        });
    }

    /// Replaces the gateway's entry; dropping the old one's stop sender stops that listener.
    fn put(
        &self,
        gateway_id: i64,
        status: watch::Receiver<ListenerStatus>,
        stop: watch::Sender<bool>,
    ) {
        if let Ok(mut running) = self.running.write() {
            running.insert(
                gateway_id,
                Running {
                    status,
                    _stop: stop,
                },
            );
        }
    }
}

/// Resolves when the app shuts down or this listener is replaced (its sender set or dropped).
async fn until_either(mut app: watch::Receiver<bool>, mut this: watch::Receiver<bool>) {
    tokio::select! {
        _ = app.wait_for(|s| *s) => {}
        _ = this.wait_for(|s| *s) => {}
    }
}

fn announce(state: &AppState, gateway: &GatewayRecord) {
    state.bus.publish(Change::Gateway {
        provider_id: gateway.provider_id,
        gateway_id: gateway.id,
    });
}

/// Announces link changes so the gateways page updates live; ends with the listener.
fn spawn_announcer(
    state: &AppState,
    gateway: &GatewayRecord,
    mut status: watch::Receiver<ListenerStatus>,
) {
    let state = state.clone();
    let gateway = gateway.clone();
    tokio::spawn(async move {
        let mut connected = status.borrow().connected;
        while status.changed().await.is_ok() {
            let now = status.borrow().connected;
            if now != connected {
                connected = now;
                announce(&state, &gateway);
            }
        }
    });
}
