//! The real gateway (`gateway serve`, the appliance binary) as a child process on loopback, with
//! the modality peers the appliance tests use (pynetdicom's peer script, dcmtk): for tests where
//! only the real thing shows what a modality is offered.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use shared::wire::SigningKey;
use tokio::process::{Child, Command};

use relay_emulator::Emulator;

use super::{ACTIONS, EVENTS, KEY, KEY_NAME, NAMESPACE};

fn target_dir() -> String {
    option_env!("CARGO_TARGET_DIR")
        .unwrap_or("target")
        .to_string()
}

/// The gateway binary, the test virtualenv's python and the peer script, failing clearly when one
/// is missing.
pub fn tools() -> (PathBuf, PathBuf, PathBuf) {
    let gateway = std::env::var("GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(format!("{}/debug/gateway", target_dir())));
    assert!(
        gateway.exists(),
        "the gateway binary is not at {}: cargo build -p appliance (cargo test --workspace builds it)",
        gateway.display()
    );
    let cache = std::env::var("SCREENING_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/screening-gateway",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = PathBuf::from(format!("{cache}/venv/bin/python"));
    assert!(
        python.exists(),
        "the DICOM test virtualenv (pynetdicom) is missing at {}: run scripts/deps.sh",
        python.display()
    );
    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../appliance/tests/peers/peer.py");
    assert!(
        peer.exists(),
        "the modality peer script is missing at {}",
        peer.display()
    );
    (gateway, python, peer)
}

/// Not every test binary that includes this module starts a gateway.
#[allow(unused_imports)]
pub use shared::loopback::free_port;

/// Runs the peer script and returns its one JSON line.
pub async fn peer(python: &Path, peer: &Path, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg(peer)
        .args(args)
        .output()
        .await
        .expect("run the modality peer script");
    assert!(
        out.status.success(),
        "peer {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the peer script prints JSON")
}

/// How to start one gateway process; start it again with the same settings after a stop and it
/// finds its state where it left it.
pub struct GatewaySettings {
    pub binary: PathBuf,
    pub state_dir: PathBuf,
    pub name: String,
    pub relay_endpoint: String,
    /// The hybrid connections it listens for actions on and sends events to.
    pub actions_hc: String,
    pub events_hc: String,
    pub gateway_key: SigningKey,
    pub web_key: SigningKey,
    pub mwl_port: u16,
    pub pacs_port: u16,
    pub log: PathBuf,
}

pub const MWL_AET: &str = "SCREENING_MWL";

impl GatewaySettings {
    /// A gateway on free loopback ports that reaches the tests' relay emulator on the tests'
    /// hybrid connections ([`ACTIONS`], [`EVENTS`]), logging to `log`.
    pub fn on_emulator(
        binary: PathBuf,
        state_dir: PathBuf,
        name: String,
        emulator: &Emulator,
        gateway_key: SigningKey,
        web_key: SigningKey,
        log: PathBuf,
    ) -> GatewaySettings {
        GatewaySettings {
            binary,
            state_dir,
            name,
            relay_endpoint: format!("ws://{}", emulator.addr()),
            actions_hc: ACTIONS.into(),
            events_hc: EVENTS.into(),
            gateway_key,
            web_key,
            mwl_port: free_port(),
            pacs_port: free_port(),
            log,
        }
    }

    /// Starts `gateway serve`; the process is killed when the handle drops.
    pub fn start(&self) -> Child {
        self.start_with(&[])
    }

    /// Starts `gateway serve` with these settings added.
    pub fn start_with(&self, extra: &[(&str, &str)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        Command::new(&self.binary)
            .arg("serve")
            .env("GATEWAY_STATE_DIR", &self.state_dir)
            .env("GATEWAY_BIND", "127.0.0.1")
            .env("GATEWAY_NAME", &self.name)
            .env("MWL_AET", MWL_AET)
            .env("MWL_PORT", self.mwl_port.to_string())
            .env("PACS_AET", "SCREENING_PACS")
            .env("PACS_PORT", self.pacs_port.to_string())
            .env("SIGNING_KEY", self.gateway_key.to_base64())
            .env("PEER_PUBLIC_KEYS", self.web_key.public_key().to_base64())
            .env("AZURE_RELAY_NAMESPACE", NAMESPACE)
            .env("AZURE_RELAY_ENDPOINT", &self.relay_endpoint)
            .env("AZURE_RELAY_HYBRID_CONNECTION", &self.actions_hc)
            .env("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", &self.events_hc)
            .env("AZURE_RELAY_KEY_NAME", KEY_NAME)
            .env("AZURE_RELAY_SHARED_ACCESS_KEY", KEY)
            .env("RUST_LOG", "info")
            .envs(extra.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("start the gateway")
    }
}

/// The accession numbers a worklist C-FIND (pynetdicom, every MG item) offers.
pub async fn offered(python: &Path, peer_py: &Path, mwl_port: u16) -> Vec<String> {
    let found = peer(
        python,
        peer_py,
        &["find", "127.0.0.1", &mwl_port.to_string(), MWL_AET],
    )
    .await;
    found["matches"]
        .as_array()
        .expect("the peer lists matches")
        .iter()
        .map(|m| m["accession"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The modality, as the tests play it against a real gateway: MPPS and synthetic mammograms
/// from the appliance tests' peer script (pynetdicom), C-STORE with dcmtk's storescu.
pub struct Modality {
    pub python: PathBuf,
    pub peer: PathBuf,
    pub mwl_port: u16,
    pub pacs_port: u16,
}

impl Modality {
    /// MPPS N-CREATE IN PROGRESS for the item; the instance UID the gateway assigned.
    pub async fn start_procedure(&self, accession: &str) -> String {
        let ops =
            format!(r#"[{{"op":"create","accession":"{accession}","status":"IN PROGRESS"}}]"#);
        let created = self.mpps(&ops).await;
        created["results"][0]["uid"]
            .as_str()
            .expect("the gateway names the MPPS instance")
            .to_string()
    }

    /// MPPS N-SET of the procedure to `status` (`COMPLETED`, `DISCONTINUED`).
    pub async fn end_procedure(&self, mpps_uid: &str, status: &str) {
        let ops = format!(r#"[{{"op":"set","uid":"{mpps_uid}","status":"{status}"}}]"#);
        self.mpps(&ops).await;
    }

    async fn mpps(&self, ops: &str) -> Value {
        let mwl = self.mwl_port.to_string();
        let answer = peer(
            &self.python,
            &self.peer,
            &["mpps", "127.0.0.1", &mwl, MWL_AET, ops],
        )
        .await;
        assert_eq!(answer["results"][0]["status"], 0, "MPPS {ops}: {answer}");
        answer
    }

    /// Writes `count` synthetic mammograms of the participant into `dir`; their paths.
    pub async fn mammograms(
        &self,
        dir: &Path,
        count: usize,
        (rows, cols): (u32, u32),
        accession: &str,
        patient_id: &str,
    ) -> Vec<String> {
        let made = peer(
            &self.python,
            &self.peer,
            &[
                "make-mg",
                "--out",
                dir.to_str().expect("a UTF-8 path"),
                "--count",
                &count.to_string(),
                "--rows",
                &rows.to_string(),
                "--cols",
                &cols.to_string(),
                "--accession",
                accession,
                "--patient-id",
                patient_id,
                "--name",
                "SMITH^JANE",
            ],
        )
        .await;
        made["files"]
            .as_array()
            .expect("the peer lists the files")
            .iter()
            .map(|f| f.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// C-STORE of one file with dcmtk's storescu.
    pub async fn store(&self, file: &str) {
        let stored = Command::new("storescu")
            .args(["-aec", "SCREENING_PACS", "127.0.0.1"])
            .arg(self.pacs_port.to_string())
            .arg(file)
            .output()
            .await
            .expect("dcmtk's storescu (apt-get install dcmtk; scripts/deps.sh does)");
        assert!(
            stored.status.success(),
            "storescu: {}",
            String::from_utf8_lossy(&stored.stderr)
        );
    }
}
