//! `relay-emulator`: run a local Azure Relay Hybrid Connections namespace.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use relay_emulator::{Config, Emulator, Rule};

/// A local, faithful emulator of Azure Relay Hybrid Connections (websocket mode).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address for the relay endpoint, e.g. 127.0.0.1:9350 (clients use ws://ADDR).
    #[arg(long)]
    listen: SocketAddr,
    /// The namespace tokens must be signed for, e.g. clinic-relay.servicebus.windows.net.
    #[arg(long)]
    namespace: String,
    /// A shared access rule: NAME=KEY (all rights) or NAME:listen,send=KEY. Repeatable.
    #[arg(long = "rule", required = true)]
    rules: Vec<String>,
    /// A hybrid connection name. Repeatable.
    #[arg(long = "entity", required = true)]
    entities: Vec<String>,
    /// Address for the test-only admin API (listeners, fault injection).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Listeners allowed per hybrid connection.
    #[arg(long, default_value_t = 25)]
    max_listeners: usize,
    /// Seconds a sender's handshake is held waiting for the listener.
    #[arg(long, default_value_t = 30)]
    rendezvous_timeout: u64,
    /// Drop control channels silent for this many seconds (Azure: about 240). Off by default.
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rules = args
        .rules
        .iter()
        .map(|r| Rule::parse(r).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut config = Config::new(&args.namespace, rules, args.entities);
    config.max_listeners = args.max_listeners;
    config.rendezvous_timeout = Duration::from_secs(args.rendezvous_timeout);
    config.idle_timeout = args.idle_timeout.map(Duration::from_secs);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(relay_emulator::tls_config(cert, key)?);
    }
    let emulator = Emulator::start(config, args.listen, args.admin)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some(admin) = emulator.admin_addr() {
        tracing::info!("admin API on http://{admin}");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(emulator);
    Ok(())
}
