//! The control socket: `gateway status` (and `gateway doctor`) talk to the running service
//! through a Unix socket in the state directory. redb lets only one process open the database,
//! so the service itself answers, with the same report the cloud's `health` action gets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use shared::wire::action::HealthReport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::health::{self, HealthProbe};
use crate::db::Database;

/// The socket's path in a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway.sock")
}

/// Answers each connection with one JSON health report, until `shutdown` turns true.
pub async fn serve(
    path: PathBuf,
    db: Arc<Database>,
    probe: HealthProbe,
    started: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // A socket left by a killed process would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    tracing::info!("status socket at {}", path.display());
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("status socket accept failed: {e}");
                    continue;
                }
            },
        };
        let report = health::report(&db, &probe, started).await;
        let text = serde_json::to_string(&report).expect("reports serialise");
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Asks the running service for its report.
pub async fn query(path: &Path) -> std::io::Result<HealthReport> {
    let mut stream = UnixStream::connect(path).await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The report as lines for a terminal: the verdict, then one line per check.
pub fn render(report: &HealthReport) -> String {
    let mut out = format!(
        "gateway {} — {} (up {} s)\n",
        report.version,
        if report.healthy {
            "healthy"
        } else {
            "UNHEALTHY"
        },
        report.listener_uptime_seconds
    );
    for (name, check) in &report.checks {
        out.push_str(&format!(
            "  {:<4} {:<15} {}\n",
            if check.ok { "ok" } else { "FAIL" },
            name,
            check.detail
        ));
    }
    out
}
