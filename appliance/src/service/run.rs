//! `gateway serve` in one place: [`Service`] starts the DICOM services, the cloud link when a
//! relay is configured and the control socket, and stops them in order; [`serve`] adds what only
//! the real process has (the environment, systemd, the signals). The integration tests start the
//! same [`Service`], so they run the wiring the appliance runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::control_socket;
use super::health::{HealthLimits, HealthProbe};
use super::systemd;
use crate::cloud::{CloudConfigError, CloudLink, CloudSettings};
use crate::config::Config;
use crate::fhir::Deliveries;
use crate::server::{Gateway, Running, ServerError};

/// How long open associations get to finish when the service stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why `gateway serve` could not run.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Cloud(#[from] CloudConfigError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot listen for SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("METRICS_ADDR={0}: cannot serve metrics there: {1}")]
    Metrics(std::net::SocketAddr, String),
}

/// Whether items a local operator adds are reported to the cloud as walk-ins: always, except in
/// NHS-compatible mode (the NHS app has no such event). Without a relay they are queued, for
/// when one is configured.
pub fn reports_local_items(cloud: Option<&CloudSettings>) -> bool {
    cloud.is_none_or(|settings| !settings.nhs_compatible)
}

/// The running gateway: DICOM services, cloud link, control socket.
pub struct Service {
    /// The DICOM side: its addresses, database, outbox doorbell and vital tasks.
    pub dicom: Running,
    /// The cloud link; `None` when no relay is configured.
    pub cloud: Option<CloudLink>,
    mwl_aet: String,
    pacs_aet: String,
    control_socket: JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
}

impl Service {
    /// Opens the state, starts listening, then starts the cloud link (with `cloud`) and the
    /// control socket in the state directory.
    pub async fn start(
        config: Config,
        cloud: Option<CloudSettings>,
    ) -> Result<Service, ServerError> {
        let state_dir = config.state_dir.clone();
        let (mwl_aet, pacs_aet) = (config.mwl_aet.clone(), config.pacs_aet.clone());
        let limits = HealthLimits::for_config(&config);
        let forward_to = config.forward_to.clone();
        let fhir = config.fhir.clone();
        let retention = crate::storage::retention::Policy::for_config(&config);
        let report_local_items_as =
            reports_local_items(cloud.as_ref()).then(|| config.name.clone());
        let dicom = Gateway::open(config)?.start().await?;
        let fhir = Arc::new(Deliveries::new(dicom.db.clone(), fhir)?);
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let probe = HealthProbe {
            mwl_port: dicom.mwl_addr.port(),
            pacs_port: dicom.pacs_addr.port(),
            state_dir: state_dir.clone(),
            limits,
            forward_to,
            retention,
            listener: None,
            thumbnails: dicom.thumbnail_monitor(),
        };
        let cloud = cloud.map(|settings| {
            CloudLink::start(
                settings,
                dicom.db.clone(),
                fhir.clone(),
                probe.clone(),
                dicom.doorbell.clone(),
                &dicom.liveness,
                stopped.clone(),
            )
        });
        let probe = HealthProbe {
            listener: cloud.as_ref().map(|link| link.listener.clone()),
            ..probe
        };
        let control_socket = tokio::spawn(control_socket::serve(
            control_socket::socket_path(&state_dir),
            dicom.db.clone(),
            control_socket::LocalItems {
                report_as: report_local_items_as,
                doorbell: dicom.doorbell.clone(),
            },
            probe,
            started,
            stopped,
        ));
        Ok(Service {
            dicom,
            cloud,
            mwl_aet,
            pacs_aet,
            control_socket,
            stop,
        })
    }

    /// One line saying what runs where, for the log and `systemctl status`.
    pub fn summary(&self) -> String {
        format!(
            "worklist/MPPS {} on {}, storage {} on {}, cloud link {}",
            self.mwl_aet,
            self.dicom.mwl_addr,
            self.pacs_aet,
            self.dicom.pacs_addr,
            if self.cloud.is_some() { "on" } else { "off" }
        )
    }

    /// Stops the cloud link and the control socket, gives open associations `grace` to
    /// finish, and waits for every part to end.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        self.dicom.shutdown(grace).await;
        if let Some(link) = self.cloud {
            link.join().await;
        }
        if let Ok(Err(e)) = self.control_socket.await {
            tracing::warn!("status socket: {e}");
        }
    }
}

/// `gateway serve`: runs the [`Service`] on `config` and the cloud settings in the environment
/// until SIGTERM or Ctrl-C, telling systemd as it goes.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    // Read the cloud settings first: a wrong key should stop start-up, not surface later.
    let cloud = CloudSettings::from_env()?;
    if cloud.is_none() {
        tracing::warn!(
            "AZURE_RELAY_NAMESPACE is not set: running the DICOM services without the cloud link"
        );
    }
    let metrics_addr = config.metrics_addr;
    if let Some(addr) = metrics_addr {
        super::metrics::install(addr).map_err(|e| ServeError::Metrics(addr, e.to_string()))?;
    }
    let service = Service::start(config, cloud).await?;
    let summary = service.summary();
    tracing::info!("gateway {} started: {summary}", env!("CARGO_PKG_VERSION"));
    systemd::ready(&summary);
    let (stop, stopped) = watch::channel(false);
    if let Some(link) = &service.cloud {
        tokio::spawn(systemd::follow_relay(
            summary.clone(),
            link.listener.clone(),
            stopped.clone(),
        ));
    }
    if metrics_addr.is_some() {
        tokio::spawn(super::metrics::sample(
            service.dicom.db.clone(),
            stopped.clone(),
        ));
        if let Some(link) = &service.cloud {
            tokio::spawn(super::metrics::follow_relay(
                link.listener.clone(),
                stopped.clone(),
            ));
        }
    }
    let watchdog = tokio::spawn(systemd::watchdog(service.dicom.liveness.clone(), stopped));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    systemd::stopping();
    // The watchdog stops before the listeners do, so their ending is not taken for a failure.
    let _ = stop.send(true);
    let _ = watchdog.await;
    service.stop(SHUTDOWN_GRACE).await;
    Ok(())
}
