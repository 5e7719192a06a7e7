//! The hostile-peer harness: the real `gateway serve` process on free loopback ports with its
//! cloud link on a relay emulator and a cloud stub, a raw peer that writes whatever PDU bytes a
//! test gives it (a DICOM library would sanitise them), and the checks every attack ends with:
//! the process lives, C-ECHO answers, peak RSS is bounded, and a good image still produces its
//! image event.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use appliance::dimse::{field, Command};
use appliance::modality::images::{mammogram, Subject, SCREENING_VIEWS};
use appliance::worklist::new_uid;
use dicom_dictionary_std::uids;
use dicom_object::meta::FileMetaTableBuilder;
use shared::wire::event::EventBody;

use super::cloud::{accept_all, CloudStub, Relay};
use super::{dcmtk, free_port, Server, MWL_AET, PACS_AET};

const NAMESPACE: &str = "hostile.servicebus.windows.net";

/// `gateway serve` as systemd runs it, with a cloud that accepts every event. Everything stops
/// on drop, also when the test fails.
pub struct HostileGateway {
    // Dropped in this order: the gateway first, then the cloud, the relay, their runtime.
    server: Option<Server>,
    cloud: CloudStub,
    relay: Relay,
    runtime: tokio::runtime::Runtime,
    pub state: tempfile::TempDir,
    pub mwl_port: u16,
    pub pacs_port: u16,
    settings: Vec<(String, String)>,
}

impl HostileGateway {
    pub fn start() -> HostileGateway {
        HostileGateway::start_with(&[])
    }

    /// Starts with extra settings (`NAME`, `value`), as lines of the env file would give.
    pub fn start_with(settings: &[(&str, &str)]) -> HostileGateway {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let relay = runtime.block_on(Relay::start(NAMESPACE));
        let cloud = runtime.block_on(relay.cloud(accept_all));
        let mut gateway = HostileGateway {
            server: None,
            cloud,
            relay,
            runtime,
            state: tempfile::tempdir().expect("temp dir"),
            mwl_port: free_port(),
            pacs_port: free_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        gateway.serve();
        gateway
    }

    /// The process's log (stderr), appended to across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.state.path().join("gateway.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn serve(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Process::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("serve")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("GATEWAY_STATE_DIR", self.state.path().join("state"))
            .env("GATEWAY_ENV_FILE", "/nonexistent/gateway.env")
            .env("GATEWAY_BIND", "127.0.0.1")
            .env("MWL_AET", MWL_AET)
            .env("PACS_AET", PACS_AET)
            .env("MWL_PORT", self.mwl_port.to_string())
            .env("PACS_PORT", self.pacs_port.to_string())
            .env("GATEWAY_NAME", "gw-hostile")
            .env("AZURE_RELAY_NAMESPACE", NAMESPACE)
            .env(
                "AZURE_RELAY_ENDPOINT",
                self.relay.config.endpoint.to_string(),
            )
            .env("AZURE_RELAY_HYBRID_CONNECTION", "actions")
            .env("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "events")
            .env("AZURE_RELAY_KEY_NAME", "root")
            .env("AZURE_RELAY_SHARED_ACCESS_KEY", "k")
            .env("SIGNING_KEY", self.relay.gateway_key.to_base64())
            .env(
                "PEER_PUBLIC_KEYS",
                self.relay.cloud_key.public_key().to_base64(),
            )
            .env("LOG_LEVEL", "info")
            .envs(self.settings.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gateway serve starts");
        self.server = Some(Server(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.echo_ok() {
            assert!(self.alive(), "gateway serve exited:\n{}", self.log());
            assert!(
                Instant::now() < deadline,
                "gateway serve did not answer C-ECHO:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process (SIGKILL) and starts it again on the same state and ports.
    pub fn restart(&mut self) {
        self.server.take();
        self.serve();
    }

    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("started").0.id()
    }

    /// The process has not exited (a panic that aborts, a stack overflow, an OOM kill).
    pub fn alive(&mut self) -> bool {
        let server = self.server.as_mut().expect("started");
        matches!(server.0.try_wait(), Ok(None))
    }

    /// dcmtk's `echoscu` gets a successful C-ECHO from the worklist AE and the storage AE.
    pub fn echo_ok(&self) -> bool {
        super::echo(&self.mwl_port.to_string(), MWL_AET, "HOSTILE_ECHO")
            && super::echo(&self.pacs_port.to_string(), PACS_AET, "HOSTILE_ECHO")
    }

    /// The process's peak resident set size (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Stores a small valid mammogram with dcmtk's `storescu` and waits until the cloud stub
    /// has its `study.image_received`. Returns its SOP Instance UID.
    pub fn store_good_image_and_wait_for_its_event(&self) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, uid) = good_image(dir.path());
        let out = dcmtk("storescu")
            .args(["-aet", "MODALITY1", "-aec", PACS_AET, "127.0.0.1"])
            .arg(self.pacs_port.to_string())
            .arg(&path)
            .output()
            .expect("storescu runs");
        assert!(
            out.status.success() && !super::text(&out).contains("E: "),
            "storescu of a good image failed: {}\n{}",
            super::text(&out),
            self.log()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let arrived = self.cloud.events().iter().any(|e| {
                matches!(&e.body, EventBody::ImageReceived(image)
                    if image.image.sop_instance_uid == uid)
            });
            if arrived {
                return uid;
            }
            assert!(
                Instant::now() < deadline,
                "no study.image_received for {uid}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The checks after every attack: alive, answering C-ECHO, a good image still produces its
    /// event. Returns the peak RSS, KiB, for the test to bound and report.
    pub fn assert_unharmed(&mut self, attack: &str) -> u64 {
        assert!(self.alive(), "{attack}: the gateway died:\n{}", self.log());
        assert!(self.echo_ok(), "{attack}: C-ECHO fails:\n{}", self.log());
        self.store_good_image_and_wait_for_its_event();
        assert!(self.alive(), "{attack}: the gateway died:\n{}", self.log());
        let peak = self.peak_rss_kib();
        eprintln!("{attack}: peak RSS {} MiB", peak / 1024);
        peak
    }

    /// Every event the cloud stub has received.
    pub fn events(&self) -> Vec<shared::wire::event::Event> {
        self.cloud.events()
    }

    /// Stores `path` with dcmtk's `storescu` and asserts it was accepted.
    pub fn store(&self, path: &Path) {
        let out = dcmtk("storescu")
            .args(["-aet", "MODALITY1", "-aec", PACS_AET, "127.0.0.1"])
            .arg(self.pacs_port.to_string())
            .arg(path)
            .output()
            .expect("storescu runs");
        assert!(
            out.status.success() && !super::text(&out).contains("E: "),
            "storescu of {} failed: {}\n{}",
            path.display(),
            super::text(&out),
            self.log()
        );
    }

    /// `gateway status` against this gateway: its output and exit code.
    pub fn status(&self) -> (String, Option<i32>) {
        let out = Process::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("status")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("GATEWAY_STATE_DIR", self.state.path().join("state"))
            .env("GATEWAY_ENV_FILE", "/nonexistent/gateway.env")
            .output()
            .expect("gateway status runs");
        (super::text(&out), out.status.code())
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// A small, valid MG For Presentation object in explicit VR little endian, written to `dir`.
/// Returns its path and SOP Instance UID.
pub fn good_image(dir: &Path) -> (PathBuf, String) {
    let subject = Subject {
        patient_id: "9434765919".into(),
        patient_name: "SMITH^JANE".into(),
        birth_date: "19700101".into(),
        sex: "F".into(),
        accession_number: "ACCHOSTILE".into(),
        study_instance_uid: new_uid(),
        study_description: "Screening mammography".into(),
    };
    let obj = mammogram(&subject, &new_uid(), SCREENING_VIEWS[0], 1, 64, 52);
    let uid = appliance::storage::index::text(&obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .expect("a SOP Instance UID");
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(
                    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
                )
                .media_storage_sop_instance_uid(uid.as_str()),
        )
        .expect("file meta");
    let path = dir.join(format!("{uid}.dcm"));
    file.write_to_file(&path).expect("write the good image");
    (path, uid)
}

/// One presentation context to propose: id, abstract syntax, transfer syntaxes.
pub struct Proposed<'a> {
    pub id: u8,
    pub abstract_syntax: &'a str,
    pub transfer_syntaxes: &'a [&'a str],
}

/// A-ASSOCIATE-RQ bytes (PS3.8 9.3.2), built by hand so a test can change any of them.
pub fn associate_rq(called: &str, calling: &str, contexts: &[Proposed], max_pdu: u32) -> Vec<u8> {
    fn ae(title: &str) -> [u8; 16] {
        let mut out = [b' '; 16];
        for (o, b) in out.iter_mut().zip(title.bytes()) {
            *o = b;
        }
        out
    }
    fn item(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 0];
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }
    let mut body = vec![0, 1, 0, 0];
    body.extend_from_slice(&ae(called));
    body.extend_from_slice(&ae(calling));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for pc in contexts {
        let mut sub = vec![pc.id, 0, 0, 0];
        sub.extend(item(0x30, pc.abstract_syntax.as_bytes()));
        for ts in pc.transfer_syntaxes {
            sub.extend(item(0x40, ts.as_bytes()));
        }
        body.extend(item(0x20, &sub));
    }
    let mut user = item(0x51, &max_pdu.to_be_bytes());
    user.extend(item(0x52, b"1.2.826.0.1.3680043.10.1080.12"));
    body.extend(item(0x50, &user));
    pdu(0x01, &body)
}

/// A PDU: type, reserved byte, big-endian length, body.
pub fn pdu(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind, 0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A P-DATA-TF PDU with one PDV.
pub fn p_data(context_id: u8, command: bool, last: bool, data: &[u8]) -> Vec<u8> {
    let mut pdv = ((data.len() + 2) as u32).to_be_bytes().to_vec();
    pdv.push(context_id);
    pdv.push(u8::from(command) | (u8::from(last) << 1));
    pdv.extend_from_slice(data);
    pdu(0x04, &pdv)
}

/// A peer on a plain TCP socket: sends the bytes it is given, reads PDUs back.
pub struct RawPeer {
    pub stream: TcpStream,
    /// Accepted presentation contexts: (id, transfer syntax).
    pub accepted: Vec<(u8, String)>,
}

impl RawPeer {
    pub fn connect(port: u16) -> RawPeer {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawPeer {
            stream,
            accepted: Vec::new(),
        }
    }

    /// Connects and negotiates `contexts` with `called`; panics unless it is accepted.
    pub fn associate(port: u16, called: &str, contexts: &[Proposed]) -> RawPeer {
        let mut peer = RawPeer::connect(port);
        peer.send(&associate_rq(called, "HOSTILE", contexts, 1 << 20));
        let (kind, body) = peer.read_pdu().expect("an answer to A-ASSOCIATE-RQ");
        assert_eq!(
            kind, 0x02,
            "A-ASSOCIATE-AC expected, got PDU type {kind:#04x}"
        );
        // Items follow the 68 fixed bytes; 0x21 is a presentation context result.
        let mut at = 68;
        while at + 4 <= body.len() {
            let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
            let item = &body[at + 4..at + 4 + len];
            if body[at] == 0x21 && item[2] == 0 {
                let ts_len = u16::from_be_bytes([item[6], item[7]]) as usize;
                let ts = String::from_utf8_lossy(&item[8..8 + ts_len]);
                peer.accepted
                    .push((item[0], ts.trim_end_matches('\0').to_string()));
            }
            at += 4 + len;
        }
        peer
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a command and its data set, the data set in PDVs of at most 16 KiB.
    pub fn send_message(&mut self, context_id: u8, command: &Command, data: Option<&[u8]>) {
        self.send(&p_data(context_id, true, true, &command.encode()));
        if let Some(data) = data {
            let mut chunks = data.chunks(16 * 1024).peekable();
            if chunks.peek().is_none() {
                self.send(&p_data(context_id, false, true, &[]));
            }
            while let Some(chunk) = chunks.next() {
                self.send(&p_data(context_id, false, chunks.peek().is_none(), chunk));
            }
        }
    }

    /// The next PDU (type, body); `None` when the gateway closed the connection.
    pub fn read_pdu(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 6];
        if let Err(e) = self.stream.read_exact(&mut header) {
            assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "no PDU from the gateway within 60 s"
            );
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ),
                "reading a PDU: {e}"
            );
            return None;
        }
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        assert!(len <= 1 << 24, "a PDU of {len} bytes from the gateway");
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).ok()?;
        Some((header[0], body))
    }

    /// The next response command set (its data set PDVs, if any, are skipped); panics when the
    /// gateway sends anything but P-DATA.
    pub fn response(&mut self) -> Command {
        let response = self.next_response();
        response.expect("a response, not a closed connection")
    }

    /// [`Self::response`], or `None` when the gateway closed the connection or aborted the
    /// association (A-ABORT) instead.
    pub fn next_response(&mut self) -> Option<Command> {
        let mut command = Vec::new();
        loop {
            let (kind, body) = self.read_pdu()?;
            if kind == 0x07 {
                return None;
            }
            assert_eq!(kind, 0x04, "P-DATA expected, got PDU type {kind:#04x}");
            let mut at = 0;
            while at + 6 <= body.len() {
                let len = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
                    as usize;
                let control = body[at + 5];
                let data = &body[at + 6..at + 4 + len];
                if control & 1 == 1 {
                    command.extend_from_slice(data);
                    if control & 2 == 2 {
                        return Some(Command::decode(&command).expect("a command set"));
                    }
                }
                at += 4 + len;
            }
        }
    }

    /// A C-ECHO on context `context_id` (Verification), answered with success.
    pub fn echo(&mut self, context_id: u8) {
        let echo = Command {
            command_field: field::C_ECHO_RQ,
            message_id: Some(99),
            affected_sop_class_uid: Some(uids::VERIFICATION.into()),
            ..Default::default()
        };
        self.send_message(context_id, &echo, None);
        let rsp = self.response();
        assert_eq!(
            (rsp.command_field, rsp.status),
            (field::C_ECHO_RSP, Some(0)),
            "C-ECHO on the raw association: {:?}",
            rsp.error_comment
        );
    }

    /// A-RELEASE-RQ, then waits for the A-RELEASE-RP.
    pub fn release(mut self) {
        self.send(&pdu(0x05, &[0; 4]));
        let (kind, _) = self.read_pdu().expect("A-RELEASE-RP");
        assert_eq!(kind, 0x06, "A-RELEASE-RP expected");
    }
}
