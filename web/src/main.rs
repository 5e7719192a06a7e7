//! `web`: the clinicians' cloud app. `web` (or `web serve`) runs the server; `web keygen` prints a
//! message-signing key pair.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::wire::{Keyring, SigningKey};
use web::server::db::{sqlite_url, Db};
use web::server::outbox::RetryPolicy;
use web::server::seed::{self, SeedRelay};
use web::server::startup::{self, ServeOptions};
use web::server::state::AppState;
use web::server::store::identity;

/// The breast-screening cloud web app.
#[derive(Parser)]
#[command(name = "web", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (the default).
    Serve(ServeArgs),
    /// Print a new message-signing key pair as env-file lines (SIGNING_KEY=… and PUBLIC_KEY=…).
    /// Keep SIGNING_KEY in the web app's environment; give PUBLIC_KEY to each gateway.
    Keygen,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WEB_ADDR", default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Directory for the embedded database and the generated signing key.
    #[arg(long, env = "WEB_STATE_DIR", default_value = ".state/web")]
    state_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default a SQLite file in the state directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where the built browser client and assets are (web/build-client.sh's output).
    #[arg(long, env = "WEB_SITE_ROOT")]
    site_root: Option<String>,
    /// Mark session cookies Secure (set to true behind HTTPS).
    #[arg(long, env = "WEB_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    secure_cookies: bool,
    /// Seed demo data into an empty database (set to false in production).
    #[arg(long, env = "WEB_SEED", default_value_t = true, action = clap::ArgAction::Set)]
    seed: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keygen) => {
            print!("{}", SigningKey::generate().env_lines());
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(ServeArgs::parse_from_env()).await,
    }
}

impl ServeArgs {
    /// The serve arguments when no subcommand was given: from the environment and defaults.
    fn parse_from_env() -> ServeArgs {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::parse_from(["web"]).args
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    for directive in shared::relay::LOG_DIRECTIVES_HIDING_TOKENS {
        filter = filter.add_directive(directive.parse()?);
    }
    tracing_subscriber::fmt().with_env_filter(filter).init();
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let signing = signing_key(&args.state_dir)?;
    let fallback = match std::env::var("PEER_PUBLIC_KEYS") {
        Ok(list) if !list.trim().is_empty() => {
            Keyring::from_list(&list).context("PEER_PUBLIC_KEYS")?
        }
        _ => Keyring::new(vec![]),
    };
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| sqlite_url(&args.state_dir.join("web.db")));
    let db = Db::open(&url).await.context("opening the database")?;
    if args.seed && identity::is_empty(&db).await? {
        seed::seed(&db, &SeedRelay::from_lookup(|n| std::env::var(n).ok())).await?;
        tracing::info!("seeded demo data");
    }
    let mut state = AppState::new(db, signing, fallback);
    state.secure_cookies = args.secure_cookies;
    let running = startup::start(
        state,
        ServeOptions {
            addr: args.addr,
            site_root: args.site_root.unwrap_or_else(startup::default_site_root),
            retry: RetryPolicy::default(),
        },
    )
    .await?;
    println!("web app on http://{}", running.addr);
    for (email, password) in seed::DEMO_USERS {
        println!("  demo sign-in: {email} / {password}");
    }
    shutdown_signal().await?;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from systemd, a container runtime or `make run`'s cleanup.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// `SIGNING_KEY`, or a key generated once and kept in the state directory (development).
fn signing_key(state_dir: &std::path::Path) -> anyhow::Result<SigningKey> {
    if let Ok(text) = std::env::var("SIGNING_KEY") {
        return SigningKey::from_base64(text.trim()).context("SIGNING_KEY");
    }
    let path = state_dir.join("signing.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return SigningKey::from_base64(text.trim()).with_context(|| format!("{}", path.display()));
    }
    let key = SigningKey::generate();
    std::fs::write(&path, key.to_base64())
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(
        "SIGNING_KEY not set: generated {}; give gateways PEER_PUBLIC_KEYS={}",
        path.display(),
        key.public_key().to_base64()
    );
    Ok(key)
}
