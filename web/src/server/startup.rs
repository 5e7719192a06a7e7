//! Starting and stopping the whole server: HTTP, the outbox worker and the events listeners, all
//! in one process and all stopped by one shutdown signal.

use std::net::SocketAddr;

use leptos::config::LeptosOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::db::StoreError;
use super::outbox::{self, RetryPolicy};
use super::state::AppState;
use super::store::identity;
use super::throttle;

/// Where the browser client and the NHS assets were built, unless `WEB_SITE_ROOT` says otherwise:
/// `$CARGO_TARGET_DIR/web-site` as `web/build-client.sh` writes it.
pub fn default_site_root() -> String {
    let target = option_env!("CARGO_TARGET_DIR").unwrap_or("target");
    format!("{target}/web-site")
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// The metrics listener's address, when one was asked for.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the server needs to start, beyond its state.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Where Prometheus scrapes `/metrics` (`WEB_METRICS_ADDR`); none when unset.
    pub metrics_addr: Option<SocketAddr>,
    pub site_root: String,
    pub retry: RetryPolicy,
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Binds, starts the background workers and serves until [`Running::stop`].
pub async fn start(state: AppState, options: ServeOptions) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| StartError::Bind(options.addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(options.addr, e))?;
    super::metrics::install();
    let metrics_listener = match options.metrics_addr {
        Some(at) => Some(
            super::metrics::bind(at)
                .await
                .map_err(|e| StartError::Bind(at, e))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    // Nothing is reset here: an action another replica is sending is its own until its lease
    // runs out, and one whose sender died is due again then (`store::actions::mark_sent`).
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = Vec::new();

    super::listeners::Listeners::start_all(&state, stop.clone()).await?;

    let mut outbox_stop = stop.clone();
    tasks.push(tokio::spawn(outbox::run(
        state.clone(),
        options.retry,
        async move {
            let _ = outbox_stop.wait_for(|s| *s).await;
        },
    )));

    let mut liveness_stop = stop.clone();
    tasks.push(tokio::spawn(super::liveness::run(
        state.clone(),
        async move {
            let _ = liveness_stop.wait_for(|s| *s).await;
        },
    )));

    if let Some(listener) = metrics_listener {
        let app = super::metrics::router(state.clone());
        let mut metrics_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = metrics_stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("metrics listener: {e}");
            }
        }));
    }

    let mut purge_stop = stop.clone();
    tasks.push(tokio::spawn(purge_expired(state.clone(), async move {
        let _ = purge_stop.wait_for(|s| *s).await;
    })));

    let leptos_options = LeptosOptions::builder()
        .output_name("web")
        .site_root(options.site_root.clone())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build();
    let app = super::http::router(state.clone(), leptos_options);
    let mut http_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        // The peer address reaches handlers (sign-in throttling counts failures per address).
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!("http server: {e}");
        }
    }));
    Ok(Running {
        addr,
        metrics_addr,
        state,
        shutdown,
        tasks,
    })
}

/// Every ten minutes, deletes expired sessions and sign-in failures that no longer count.
async fn purge_expired(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        let sessions = identity::purge_sessions(&state.db).await;
        let failures = throttle::purge(&state.db, &state.sign_in_limits).await;
        match (sessions, failures) {
            (Ok(s), Ok(f)) if s + f > 0 => {
                tracing::info!("purged {s} expired sessions and {f} old sign-in failures")
            }
            (Ok(_), Ok(_)) => {}
            (Err(e), _) | (_, Err(e)) => tracing::error!("purging expired sessions: {e}"),
        }
    }
}

impl Running {
    /// Stops everything and waits for the HTTP server and the outbox to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            // SSE streams never end by themselves; don't wait on them forever.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}
