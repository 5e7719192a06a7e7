//! Shared test harness: the real gateway on free loopback ports, and the real peers (dcmtk,
//! pynetdicom). A missing peer fails the test with a message saying how to install it.
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod cloud;
pub mod hostile;
pub mod pki;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use appliance::config::Config;
use appliance::db::Database;
use appliance::server::{Gateway, Running};
use appliance::worklist::{self, WorklistEntry};
use shared::wire::action::{Participant, Procedure, Scheduled, WorklistItem};

pub const MWL_AET: &str = "TEST_MWL";
pub const PACS_AET: &str = "TEST_PACS";

/// Settings for a gateway in `state_dir` on free loopback ports with the test AE titles.
pub fn loopback_config(state_dir: &Path) -> Config {
    let mut config = Config::new(state_dir.to_path_buf());
    config.bind = "127.0.0.1".parse().unwrap();
    config.mwl_port = 0;
    config.pacs_port = 0;
    config.mwl_aet = MWL_AET.into();
    config.pacs_aet = PACS_AET.into();
    // In a test binary, /proc/self/exe is the test: render with the gateway binary.
    config.thumbnail_renderer = env!("CARGO_BIN_EXE_gateway").into();
    config
}

/// A gateway running in this test process on its own runtime; stopped on drop, so a failing
/// test still stops it.
pub struct TestGateway {
    pub state: tempfile::TempDir,
    pub running: Option<Running>,
    pub runtime: Option<tokio::runtime::Runtime>,
}

impl TestGateway {
    pub fn start() -> TestGateway {
        TestGateway::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        let state = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(state.path().to_path_buf());
        adjust(&mut config);
        TestGateway::start_in(state, config)
    }

    /// Starts on `config`'s state directory (for restart tests).
    pub fn start_in(state: tempfile::TempDir, mut config: Config) -> TestGateway {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .try_init();
        config.mwl_aet = MWL_AET.into();
        config.pacs_aet = PACS_AET.into();
        config.bind = "127.0.0.1".parse().unwrap();
        config.mwl_port = 0;
        config.pacs_port = 0;
        // In a test binary, /proc/self/exe is the test: render with the gateway binary.
        config.thumbnail_renderer = env!("CARGO_BIN_EXE_gateway").into();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = runtime
            .block_on(async { Gateway::open(config)?.start().await })
            .expect("gateway starts");
        TestGateway {
            state,
            running: Some(running),
            runtime: Some(runtime),
        }
    }

    /// Stops the gateway and hands back its state directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shutdown();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.state, dir)
    }

    fn shutdown(&mut self) {
        if let (Some(running), Some(runtime)) = (self.running.take(), self.runtime.take()) {
            runtime.block_on(running.shutdown(Duration::from_secs(5)));
            runtime.shutdown_background();
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    pub fn mwl_port(&self) -> String {
        self.running().mwl_addr.port().to_string()
    }

    pub fn pacs_port(&self) -> String {
        self.running().pacs_addr.port().to_string()
    }

    pub fn db(&self) -> &Database {
        &self.running().db
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.state.path().join("storage")
    }

    /// Adds a SCHEDULED worklist item the way the relay action will.
    pub fn add_item(&self, item: WorklistItem, station: Option<&str>) -> WorklistEntry {
        let entry = WorklistEntry::new(item, None, station.map(str::to_string)).unwrap();
        self.db()
            .write(|txn| worklist::insert(txn, &entry))
            .expect("insert item");
        entry
    }

    pub fn item(&self, accession: &str) -> WorklistEntry {
        worklist::get(self.db(), accession)
            .unwrap()
            .expect("item exists")
    }

    /// Every `.dcm` file in the store.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect(&self.storage_dir(), &mut files);
        files.retain(|p| p.extension().is_some_and(|e| e == "dcm"));
        files
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn item(accession: &str, name: &str, date: &str, time: &str) -> WorklistItem {
    WorklistItem {
        accession_number: accession.into(),
        participant: Participant {
            nhs_number: format!("94347659{}", &accession[accession.len() - 2..]),
            name: name.into(),
            birth_date: "19700101".into(),
            sex: "F".into(),
        },
        scheduled: Scheduled {
            date: date.into(),
            time: time.into(),
        },
        procedure: Procedure {
            modality: "MG".into(),
            study_description: "Breast screening".into(),
        },
    }
}

/// A dcmtk tool; panics with the fix when it is not installed.
pub fn dcmtk(tool: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "dcmtk's `{tool}` is not installed: run scripts/deps.sh (apt package dcmtk)"
    );
    let mut cmd = Command::new(tool);
    // Debian's dcmtk leaves Nagle on unless told otherwise.
    cmd.env("TCP_NODELAY", "1");
    cmd
}

/// The test virtualenv's python (`DICOM_TEST_PYTHON` overrides it).
pub fn python() -> PathBuf {
    let path = std::env::var_os("DICOM_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("SCREENING_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/screening-gateway")
                });
            cache.join("venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} does not exist: run scripts/deps.sh to create the virtualenv with pynetdicom, pydicom \
         and pydicom-data (or set DICOM_TEST_PYTHON)",
        path.display()
    );
    path
}

/// Runs `tests/peers/peer.py` and parses its JSON line.
pub fn peer(args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/peer.py");
    let output = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("run peer.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "peer.py {args:?} printed no JSON (exit {:?})\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Where pydicom's and pydicom-data's sample files are.
pub fn sample(name: &str) -> PathBuf {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (pydicom, data) = DIRS.get_or_init(|| {
        let v = peer(&["paths"]);
        (
            PathBuf::from(v["pydicom"].as_str().unwrap()),
            PathBuf::from(v["pydicom_data"].as_str().unwrap()),
        )
    });
    let a = pydicom.join(name);
    if a.exists() {
        return a;
    }
    let b = data.join(name);
    assert!(
        b.exists(),
        "sample file {name} is in neither pydicom nor pydicom-data"
    );
    b
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `echoscu` against one of the gateway's AEs; true when the echo succeeded.
pub fn echo(port: &str, called: &str, calling: &str) -> bool {
    dcmtk("echoscu")
        .args(["-aet", calling, "-aec", called, "127.0.0.1", port])
        .output()
        .expect("echoscu runs")
        .status
        .success()
}

/// A `gateway` (or other) process, killed and reaped when dropped, even when the test fails.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port for a server started as a process (outside the ephemeral range: see there).
pub use shared::loopback::free_port;
