//! Nothing is lost: the `gateway serve` process with its cloud link, a modality (the built-in
//! emulator) working while the cloud is down, the gateway killed with SIGKILL before it could
//! send anything, restarted, and the cloud coming back 30 s later — every event arrives, and the
//! cloud's de-duplication never sees one twice.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appliance::modality::{self, Options};
use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use shared::relay::{Config as RelayConfig, Listener, ListenerOptions};
use shared::wire::event::{Event, EventBody, EventReply, EventStatus};
use shared::wire::{Keyring, SigningKey, Verification};

const NAMESPACE: &str = "resilience.servicebus.windows.net";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    state: tempfile::TempDir,
    endpoint: String,
    gateway_key: SigningKey,
    cloud_key: SigningKey,
    mwl_port: u16,
    pacs_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Setup {
    fn gateway(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.args(args)
            .env("GATEWAY_STATE_DIR", self.state.path())
            .env("GATEWAY_BIND", "127.0.0.1")
            .env("MWL_AET", common::MWL_AET)
            .env("PACS_AET", common::PACS_AET)
            .env("MWL_PORT", self.mwl_port.to_string())
            .env("PACS_PORT", self.pacs_port.to_string())
            .env("GATEWAY_NAME", "gw-resilience")
            .env("AZURE_RELAY_NAMESPACE", NAMESPACE)
            .env("AZURE_RELAY_ENDPOINT", &self.endpoint)
            .env("AZURE_RELAY_HYBRID_CONNECTION", "actions")
            .env("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "events")
            .env("AZURE_RELAY_KEY_NAME", "root")
            .env("AZURE_RELAY_SHARED_ACCESS_KEY", "k")
            .env("SIGNING_KEY", self.gateway_key.to_base64())
            .env("PEER_PUBLIC_KEYS", self.cloud_key.public_key().to_base64())
            .env("LOG_LEVEL", "info");
        cmd
    }

    fn serve(&self) -> Server {
        let child = self
            .gateway(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server(child);
        // Up when `gateway status` answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status().0 == Some(3) {
            assert!(Instant::now() < deadline, "gateway serve did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// (exit code, report text) of `gateway status`.
    fn status(&self) -> (Option<i32>, String) {
        let out = self.gateway(&["status"]).output().unwrap();
        (out.status.code(), common::text(&out))
    }

    /// The event queue depth the running gateway reports.
    fn queue_depth(&self) -> Option<u64> {
        let (_, report) = self.status();
        let line = report.lines().find(|l| l.contains("event_queue"))?;
        if line.contains("no events waiting") {
            return Some(0);
        }
        line.split_whitespace()
            .skip_while(|w| *w != "event_queue")
            .nth(1)?
            .parse()
            .ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_sigkill_and_a_cloud_outage() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::start(
        EmulatorConfig::new(
            NAMESPACE,
            vec![Rule::parse("root=k").unwrap()],
            vec!["actions".into(), "events".into()],
        ),
        any,
        None,
    )
    .await
    .unwrap();
    let setup = Arc::new(Setup {
        state: tempfile::tempdir().unwrap(),
        endpoint: format!("ws://{}", emulator.addr()),
        gateway_key: SigningKey::generate(),
        cloud_key: SigningKey::generate(),
        mwl_port: free_port(),
        pacs_port: free_port(),
    });
    let out = setup
        .gateway(&[
            "worklist",
            "add",
            "--accession",
            "ACCRES1",
            "--nhs-number",
            "9434765919",
            "--name",
            "SMITH^JANE",
            "--birth-date",
            "19700101",
            "--date",
            "20261122",
            "--time",
            "093000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));

    // The cloud is down. The modality does its whole procedure.
    let server = setup.serve();
    let options = Options {
        mwl: format!("127.0.0.1:{}", setup.mwl_port),
        mwl_aet: common::MWL_AET.into(),
        pacs: format!("127.0.0.1:{}", setup.pacs_port),
        pacs_aet: common::PACS_AET.into(),
        calling_aet: "MODALITY_EMU".into(),
        accession: Some("ACCRES1".into()),
        patient_id: None,
        rows: 512,
        columns: 416,
        discontinue: false,
    };
    modality::run(&options, |_| {})
        .await
        .expect("the procedure succeeds");

    // Wait until every event is queued (2 MPPS + 4 images), then kill the gateway outright.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = setup.clone();
        let depth = tokio::task::spawn_blocking(move || s.queue_depth())
            .await
            .unwrap();
        if depth == Some(6) {
            break;
        }
        assert!(Instant::now() < deadline, "events never queued: {depth:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut server = server;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    drop(server);

    // Restarted, it still cannot reach the cloud for 30 s.
    let restarted = {
        let s = setup.clone();
        tokio::task::spawn_blocking(move || s.serve())
            .await
            .unwrap()
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    let s = setup.clone();
    let depth = tokio::task::spawn_blocking(move || s.queue_depth())
        .await
        .unwrap();
    assert_eq!(depth, Some(6), "nothing is dropped while the cloud is away");

    // The cloud comes back: every event arrives, none twice.
    let received: Arc<Mutex<Vec<Event>>> = Arc::default();
    let duplicates = Arc::new(Mutex::new(0usize));
    let mut relay = RelayConfig::new(NAMESPACE, "root", "k");
    relay.endpoint = setup.endpoint.parse().unwrap();
    let cloud = Listener::new(relay, "events", ListenerOptions::default());
    let trusts = Verification::strict(Keyring::new(vec![setup.gateway_key.public_key()]));
    let cloud_key = setup.cloud_key.clone();
    let task = tokio::spawn({
        let received = received.clone();
        let duplicates = duplicates.clone();
        async move {
            cloud
                .run(
                    move |text| {
                        let event = Event::open(&text, &trusts).expect("signed by the gateway");
                        let mut received = received.lock().unwrap();
                        let status = if received.iter().any(|e| e.event_id == event.event_id) {
                            *duplicates.lock().unwrap() += 1;
                            EventStatus::Duplicate
                        } else {
                            received.push(event.clone());
                            EventStatus::Accepted
                        };
                        let reply = cloud_key.seal(&EventReply::new(event.event_id, status));
                        async move { reply }
                    },
                    std::future::pending(),
                )
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = setup.clone();
        let depth = tokio::task::spawn_blocking(move || s.queue_depth())
            .await
            .unwrap();
        if depth == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "queue never drained: {depth:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 6, "every event once");
    assert_eq!(*duplicates.lock().unwrap(), 0);
    let images = received
        .iter()
        .filter(|e| matches!(e.body, EventBody::ImageReceived(_)))
        .count();
    assert_eq!(images, 4);
    task.abort();
    drop(restarted);
}
