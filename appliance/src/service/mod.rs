//! Running as a service: [`run`] wires the whole `gateway serve` process (the DICOM services,
//! the cloud link, the control socket) and takes it down in order; [`systemd`] (readiness, the
//! status line, the watchdog), [`logging`] (journald priorities), [`envfile`] (the settings file
//! read the way systemd reads it), [`health`] (the self-checks), [`control_socket`] (the Unix
//! socket `gateway status` asks), [`doctor`] (`gateway doctor`'s installation checks),
//! [`ip_allow`] (the systemd drop-in that filters by `ALLOWED_SOURCE_ADDRESSES`) and [`metrics`]
//! (Prometheus at `METRICS_ADDR`).

pub mod control_socket;
pub mod doctor;
pub mod envfile;
pub mod health;
pub mod ip_allow;
pub mod logging;
pub mod metrics;
pub mod run;
pub mod systemd;

pub use run::{serve, Service};
