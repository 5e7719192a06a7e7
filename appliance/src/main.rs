//! `gateway`: the breast-screening DICOM gateway appliance.
//!
//! Subcommands are the operator's whole interface: everything is configured by environment
//! (`/etc/gateway/gateway.env` when installed from the .deb).

use std::path::PathBuf;

use anyhow::Context;
use appliance::config::Config;
use appliance::db::Database;
use appliance::service::{control_socket, doctor, envfile, logging};
use appliance::worklist::{self, WorklistEntry};
use clap::{Parser, Subcommand};
use shared::wire::action::{Participant, Procedure, Scheduled, WorklistItem};
use shared::wire::SigningKey;

// musl's malloc serialises tokio's worker threads; the static .deb build uses mimalloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Connects mammography modalities to the breast-screening cloud app through Azure Relay.
#[derive(Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Print a new message-signing key pair as env-file lines (SIGNING_KEY=… and PUBLIC_KEY=…).
    /// Keep SIGNING_KEY in the gateway's env file; give PUBLIC_KEY to the cloud app.
    Keygen,
    /// Run the DICOM services: worklist + MPPS on MWL_AET/MWL_PORT, storage on
    /// PACS_AET/PACS_PORT, state in GATEWAY_STATE_DIR. Stops on SIGTERM or Ctrl-C.
    Serve,
    /// Ask the running service how it is: DICOM ports, disk, database, event queue, relay link.
    /// Exits 1 when unhealthy, 3 when the service is not running.
    Status,
    /// Check the installation: the env file, the ports, the disk, the relay (reachability, key,
    /// hybrid connections), the clock. Says what to fix; exits 1 when something must be.
    Doctor {
        /// The settings file to check (default: GATEWAY_ENV_FILE, else /etc/gateway/gateway.env).
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// Print only the systemd drop-in (IPAddressDeny/IPAddressAllow) made from
        /// ALLOWED_SOURCE_ADDRESSES and the relay route, for
        /// /etc/systemd/system/gateway.service.d/ip-allow.conf; exits 1 when none can be made.
        #[arg(long)]
        ip_drop_in: bool,
    },
    /// Behave as a mammography unit: C-FIND the worklist, MPPS IN PROGRESS, store four views
    /// (RCC, LCC, RMLO, LMLO), MPPS COMPLETED. Prints each step; exits non-zero on any failure.
    EmulateModality(EmulateModality),
    /// Worklist items in GATEWAY_STATE_DIR (the gateway must be stopped: redb allows one
    /// process at a time). The cloud app creates items through the relay instead.
    #[command(subcommand)]
    Worklist(WorklistCommand),
    /// Events waiting for the cloud, and the ones it refused (parked): list them, send one
    /// again, or drop one for good. Through the running service, or on a stopped one's state.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Internal: render one stored object's thumbnail under resource limits and write it as
    /// JSON on stdout. `gateway serve` runs it as a child process per thumbnail, so a decoder
    /// crash costs that thumbnail, never the service.
    #[command(hide = true)]
    RenderThumbnail {
        /// Address space limit (RLIMIT_AS), MiB.
        #[arg(long)]
        memory_mib: u64,
        /// CPU time limit (RLIMIT_CPU), seconds.
        #[arg(long)]
        cpu_secs: u64,
        /// The stored object.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct EmulateModality {
    /// Worklist and MPPS SCP, HOST:PORT.
    #[arg(long)]
    mwl: String,
    #[arg(long, default_value = "SCREENING_MWL")]
    mwl_aet: String,
    /// Storage SCP, HOST:PORT.
    #[arg(long)]
    pacs: String,
    #[arg(long, default_value = "SCREENING_PACS")]
    pacs_aet: String,
    #[arg(long, default_value = "MODALITY_EMU")]
    calling_aet: String,
    /// Take the worklist item with this accession number.
    #[arg(long, conflicts_with = "patient_id")]
    accession: Option<String>,
    /// Take the worklist item of this patient ID (NHS number).
    #[arg(long)]
    patient_id: Option<String>,
    /// Image size; a full-field digital mammogram is 4096 × 3328.
    #[arg(long, default_value_t = 4096)]
    rows: u16,
    #[arg(long, default_value_t = 3328)]
    cols: u16,
    /// End the procedure DISCONTINUED instead of COMPLETED.
    #[arg(long)]
    discontinue: bool,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// One JSON line per event: id, queued or parked, type, accession or study, attempts, why.
    List,
    /// Send it again now (a parked one goes back to the end of the queue).
    Retry {
        /// The event's id, from `gateway events list`.
        event_id: String,
    },
    /// Remove it for good: the cloud will never hear of it. Logged.
    Drop {
        /// The event's id, from `gateway events list`.
        event_id: String,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
enum WorklistCommand {
    /// Add a SCHEDULED item.
    Add(AddItem),
    /// Print every item as one JSON object per line.
    List,
}

/// A worklist item as `gateway worklist add` takes it.
#[derive(clap::Args)]
struct AddItem {
    #[arg(long)]
    accession: String,
    /// The NHS number, used as Patient ID.
    #[arg(long)]
    nhs_number: String,
    /// DICOM person name, FAMILY^GIVEN.
    #[arg(long)]
    name: String,
    /// YYYYMMDD.
    #[arg(long)]
    birth_date: String,
    #[arg(long, default_value = "F")]
    sex: String,
    /// Scheduled date, YYYYMMDD.
    #[arg(long)]
    date: String,
    /// Scheduled time, HHMMSS.
    #[arg(long)]
    time: String,
    #[arg(long, default_value = "MG")]
    modality: String,
    #[arg(long, default_value = "Breast screening")]
    description: String,
    /// Only offer the item to this modality AE title.
    #[arg(long)]
    station_ae: Option<String>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keygen => keygen(),
        Command::Serve => serve(),
        Command::Status => status(),
        Command::Doctor {
            env_file,
            ip_drop_in,
        } => doctor(env_file, ip_drop_in),
        Command::EmulateModality(args) => emulate_modality(args),
        Command::Worklist(WorklistCommand::Add(add)) => worklist_add(add),
        Command::Worklist(WorklistCommand::List) => worklist_list(),
        Command::Events(command) => events(command),
        Command::RenderThumbnail {
            memory_mib,
            cpu_secs,
            file,
        } => std::process::exit(appliance::thumbnail::child::run_child(
            memory_mib, cpu_secs, &file,
        )),
    }
}

fn keygen() -> anyhow::Result<()> {
    print!("{}", SigningKey::generate().env_lines());
    Ok(())
}

fn serve() -> anyhow::Result<()> {
    logging::init();
    let config = Config::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(appliance::service::serve(config))?;
    Ok(())
}

/// Exits 1 when the service says it is unhealthy, 3 when it does not answer.
fn status() -> anyhow::Result<()> {
    envfile::load_into_env(&envfile::path());
    let config = Config::from_env()?;
    let path = control_socket::socket_path(&config.state_dir);
    let runtime = tokio::runtime::Runtime::new()?;
    match runtime.block_on(control_socket::query(&path)) {
        Ok(report) => {
            print!("{}", control_socket::render(&report));
            if !report.healthy {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!(
                "the gateway is not running, or not as this user: no answer on {} ({e})",
                path.display()
            );
            std::process::exit(3);
        }
    }
    Ok(())
}

/// Exits 1 when something must be fixed.
fn doctor(env_file: Option<PathBuf>, ip_drop_in: bool) -> anyhow::Result<()> {
    let path = env_file.unwrap_or_else(envfile::path);
    if ip_drop_in {
        match doctor::ip_drop_in(&path) {
            Ok(text) => print!("{text}"),
            Err(why) => {
                eprintln!("no drop-in for the settings in {}: {why}", path.display());
                std::process::exit(1);
            }
        }
        return Ok(());
    }
    println!(
        "gateway {} doctor, settings from {}",
        env!("CARGO_PKG_VERSION"),
        path.display()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(doctor::examine(&path));
    print!("{}", report.render());
    if report.failed() {
        std::process::exit(1);
    }
    Ok(())
}

fn emulate_modality(args: EmulateModality) -> anyhow::Result<()> {
    let options = appliance::modality::Options {
        mwl: args.mwl,
        mwl_aet: args.mwl_aet,
        pacs: args.pacs,
        pacs_aet: args.pacs_aet,
        calling_aet: args.calling_aet,
        accession: args.accession,
        patient_id: args.patient_id,
        rows: args.rows,
        columns: args.cols,
        discontinue: args.discontinue,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime
        .block_on(appliance::modality::run(&options, |line| {
            println!("{line}")
        }))
        .context("emulated procedure failed")?;
    println!(
        "done: {} image(s) for {}",
        report.stored_sop_instance_uids.len(),
        report.accession_number
    );
    Ok(())
}

/// `worklist add`: through the running service's control socket when there is one (a clinic
/// working offline adds participants at the gateway without stopping it); otherwise it opens
/// the state database itself.
fn worklist_add(add: AddItem) -> anyhow::Result<()> {
    envfile::load_into_env(&envfile::path());
    let config = Config::from_env()?;
    let Some(add) = add_through_the_service(&config, add)? else {
        return Ok(());
    };
    let db = open_stopped_state(&config)?;
    let (item, station_ae) = item_of(add);
    let entry = WorklistEntry::new(item, None, station_ae)?;
    let cloud = appliance::cloud::CloudSettings::from_env()?;
    let report_as = appliance::service::run::reports_local_items(cloud.as_ref())
        .then_some(config.name.as_str());
    control_socket::add_local_item(&db, &entry, report_as)?;
    println!("{}", serde_json::to_string(&entry)?);
    Ok(())
}

/// `worklist list`: every item as a JSON line, read from the state database (the service must
/// be stopped).
fn worklist_list() -> anyhow::Result<()> {
    envfile::load_into_env(&envfile::path());
    let config = Config::from_env()?;
    let db = open_stopped_state(&config)?;
    for item in worklist::stored_json(&db)? {
        println!("{item}");
    }
    Ok(())
}

/// `events list|retry|drop`: through the running service's control socket when there is one,
/// else on the stopped service's state. Exits 1 when no event has the id.
fn events(command: EventsCommand) -> anyhow::Result<()> {
    use control_socket::{EventsReply, Request};
    envfile::load_into_env(&envfile::path());
    let config = Config::from_env()?;
    let request = match command {
        EventsCommand::List => Request::EventsList,
        EventsCommand::Retry { event_id } => Request::EventsRetry { event_id },
        EventsCommand::Drop { event_id } => Request::EventsDrop { event_id },
    };
    let path = control_socket::socket_path(&config.state_dir);
    let reply = if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime
            .block_on(control_socket::ask_events(&path, &request))
            .with_context(|| format!("asking the running gateway on {}", path.display()))?
    } else {
        control_socket::handle_events(&open_stopped_state(&config)?, request)
    };
    match reply {
        EventsReply::Listed(events) => {
            for event in events {
                println!("{}", serde_json::to_string(&event)?);
            }
        }
        EventsReply::Handled(appliance::cloud::outbox::Handled::NotFound) => {
            eprintln!("no queued or parked event has that id (see gateway events list)");
            std::process::exit(1);
        }
        EventsReply::Handled(done) => println!("{}", serde_json::to_string(&done)?),
        EventsReply::Failed(why) => anyhow::bail!("{why}"),
    }
    Ok(())
}

/// Opens the state database of a stopped service (redb allows one process at a time).
fn open_stopped_state(config: &Config) -> anyhow::Result<Database> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    let path = appliance::db::path_in(&config.state_dir);
    Database::open(&path).with_context(|| {
        format!(
            "opening {} (is `gateway serve` running? stop it first)",
            path.display()
        )
    })
}

/// Hands an `add` to the running service; gives the command back when no service answers.
fn add_through_the_service(config: &Config, add: AddItem) -> anyhow::Result<Option<AddItem>> {
    let path = control_socket::socket_path(&config.state_dir);
    if std::os::unix::net::UnixStream::connect(&path).is_err() {
        return Ok(Some(add));
    }
    let (item, station_ae) = item_of(add);
    let runtime = tokio::runtime::Runtime::new()?;
    let added = runtime
        .block_on(control_socket::add_worklist_item(&path, item, station_ae))
        .with_context(|| format!("asking the running gateway on {}", path.display()))?;
    match added {
        control_socket::Added::Added(entry) => {
            println!("{}", serde_json::to_string(&entry)?);
            Ok(None)
        }
        control_socket::Added::Refused(why) => {
            anyhow::bail!("the running gateway refused the item: {why}")
        }
    }
}

/// The item an `add` describes, and its station.
fn item_of(add: AddItem) -> (WorklistItem, Option<String>) {
    let AddItem {
        accession,
        nhs_number,
        name,
        birth_date,
        sex,
        date,
        time,
        modality,
        description,
        station_ae,
    } = add;
    let item = WorklistItem {
        accession_number: accession,
        participant: Participant {
            nhs_number,
            name,
            birth_date,
            sex,
        },
        scheduled: Scheduled { date, time },
        procedure: Procedure {
            modality,
            study_description: description,
        },
    };
    (item, station_ae)
}
