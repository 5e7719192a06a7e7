//! `web`: the clinicians' cloud app. `web` (or `web serve`) runs the server; `web keygen` prints a
//! message-signing key pair; `web admin create` makes a provider's first administrator.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::wire::{Keyring, SigningKey};
use web::domain::Role;
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
    /// Manage administrator accounts from the command line (the first one cannot be made in the
    /// browser: only an administrator can add accounts there).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator, and its provider if there is none of that name. The password is
    /// read from the first line of standard input (`--password-stdin`) or from WEB_ADMIN_PASSWORD.
    Create(AdminCreateArgs),
}

#[derive(clap::Args)]
struct AdminCreateArgs {
    /// The administrator's e-mail address (their sign-in).
    #[arg(long)]
    email: String,
    /// The administrator's name as pages show it.
    #[arg(long)]
    name: String,
    /// The provider (breast screening service) they administer.
    #[arg(long)]
    provider: String,
    /// The provider's ODS code, when the provider is new.
    #[arg(long, default_value = "")]
    ods_code: String,
    /// Read the password from standard input instead of WEB_ADMIN_PASSWORD.
    #[arg(long)]
    password_stdin: bool,
    /// Succeed without change when the account already exists (for scripted set-ups).
    #[arg(long)]
    if_absent: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Where the database is; the same settings as `serve`.
#[derive(clap::Args)]
struct DatabaseArgs {
    /// Directory for the embedded database and the generated signing key.
    #[arg(long, env = "WEB_STATE_DIR", default_value = ".state/web")]
    state_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default a SQLite file in the state directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    async fn open(&self) -> anyhow::Result<Db> {
        std::fs::create_dir_all(&self.state_dir)
            .with_context(|| format!("creating {}", self.state_dir.display()))?;
        let url = self
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&self.state_dir.join("web.db")));
        Db::open(&url)
            .await
            .context("opening the database (DATABASE_URL)")
    }
}

/// The settings `serve` reads that are not flags: `web serve --help` lists them, and the unit and
/// Containerfile tests check every name those files set against this help.
const MORE_SETTINGS: &str = "More settings, from the environment only:
  SIGNING_KEY        this service's message-signing key (`web keygen`); the same on every replica
  PEER_PUBLIC_KEYS   gateway public keys trusted for gateways whose row has none (comma-separated)
  RUST_LOG           log filter (default info,sqlx=warn)
  each gateway's relay key, in the variable its row on the gateways page names";

#[derive(clap::Args)]
#[command(after_help = MORE_SETTINGS)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WEB_ADDR", default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Where the built browser client and assets are (web/build-client.sh's output).
    #[arg(long, env = "WEB_SITE_ROOT")]
    site_root: Option<String>,
    /// Mark session cookies Secure and send HSTS. Only plain HTTP on a loopback address may turn
    /// it off (`make run` does).
    #[arg(long, env = "WEB_SECURE_COOKIES", default_value_t = true, action = clap::ArgAction::Set)]
    secure_cookies: bool,
    /// Seed demo data, with published passwords, into an empty database (`make run` does).
    #[arg(long, env = "WEB_SEED", default_value_t = false, action = clap::ArgAction::Set)]
    seed: bool,
    /// The site's origin as browsers see it, e.g. https://screening.example.nhs.uk, when a proxy
    /// in front changes the Host header; requests that change anything must come from it.
    #[arg(long, env = "WEB_PUBLIC_ORIGIN")]
    public_origin: Option<String>,
    /// Count sign-in failures by the last X-Forwarded-For address (only behind a load balancer
    /// that sets it; otherwise a client could name any address).
    #[arg(long, env = "WEB_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    trust_forwarded_for: bool,
    /// Within how many seconds a gateway that goes away reads offline, on the gateways page and
    /// in its clinics' banner: each gateway gets a signed health probe twice an interval.
    #[arg(long, env = "WEB_PROBE_INTERVAL_SECS", default_value_t = 60)]
    probe_interval_secs: u64,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g. 127.0.0.1:9465) on a listener
    /// of their own; off when unset.
    #[arg(long, env = "WEB_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
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
        Some(Command::Admin(AdminCommand::Create(args))) => admin_create(args).await,
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
    if !args.secure_cookies && !args.addr.ip().is_loopback() {
        anyhow::bail!(
            "WEB_SECURE_COOKIES=false is only for plain HTTP on a loopback address, and WEB_ADDR is \
             {}: serve behind HTTPS and leave WEB_SECURE_COOKIES on",
            args.addr
        );
    }
    let db = args.database.open().await?;
    let signing = signing_key(&args.database.state_dir)?;
    let fallback = match std::env::var("PEER_PUBLIC_KEYS") {
        Ok(list) if !list.trim().is_empty() => {
            Keyring::from_list(&list).context("PEER_PUBLIC_KEYS")?
        }
        _ => Keyring::new(vec![]),
    };
    if args.seed && identity::is_empty(&db).await? {
        seed::seed(&db, &SeedRelay::from_lookup(|n| std::env::var(n).ok())).await?;
        tracing::info!("seeded demo data");
    }
    let mut state = AppState::new(db, signing, fallback);
    state.secure_cookies = args.secure_cookies;
    state.public_origin = args.public_origin;
    state.trust_forwarded_for = args.trust_forwarded_for;
    state.probe_interval = std::time::Duration::from_secs(args.probe_interval_secs.max(1));
    let running = startup::start(
        state,
        ServeOptions {
            addr: args.addr,
            metrics_addr: args.metrics_addr,
            site_root: args.site_root.unwrap_or_else(startup::default_site_root),
            retry: RetryPolicy::default(),
        },
    )
    .await?;
    // The replica id is what outbox claims (`gateway_actions.claimed_by`) and change notices name.
    println!(
        "web app on http://{} (replica {})",
        running.addr, running.state.replica
    );
    if let Some(metrics) = running.metrics_addr {
        println!("  metrics on http://{metrics}/metrics");
    }
    if args.seed {
        for (email, password) in seed::DEMO_USERS {
            println!("  demo sign-in: {email} / {password}");
        }
    }
    shutdown_signal().await?;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}

/// `web admin create`: an administrator account, and its provider when new.
async fn admin_create(args: AdminCreateArgs) -> anyhow::Result<()> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        std::env::var("WEB_ADMIN_PASSWORD").map_err(|_| {
            anyhow::anyhow!("give the password on standard input with --password-stdin, or in WEB_ADMIN_PASSWORD")
        })?
    };
    if let Some(why) = web::server::passwords::weakness(&password) {
        anyhow::bail!("{why}");
    }
    let db = args.database.open().await?;
    if args.if_absent && identity::has_account(&db, &args.email).await? {
        println!(
            "an account for {} already exists; left as it is",
            args.email
        );
        return Ok(());
    }
    let provider_id = match identity::provider_named(&db, &args.provider).await? {
        Some(id) => id,
        None => {
            let id = identity::create_provider(&db, &args.provider, &args.ods_code).await?;
            println!("created provider {:?}", args.provider);
            id
        }
    };
    identity::create_user(
        &db,
        provider_id,
        &args.email,
        &args.name,
        &password,
        Role::Administrator,
    )
    .await
    .context("cannot create the administrator")?;
    println!(
        "created administrator {} for {:?}",
        args.email, args.provider
    );
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
