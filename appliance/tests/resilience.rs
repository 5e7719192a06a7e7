//! Nothing is lost: the `gateway serve` process with its cloud link, a modality (the built-in
//! emulator) working while the cloud is down, the gateway killed with SIGKILL before it could
//! send anything, restarted, and the cloud coming back 30 s later — every event arrives, and the
//! cloud's de-duplication never sees one twice.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::modality::{self, Options};
use common::cloud::{accept_all, Relay};
use common::{free_port, Server};
use shared::wire::event::EventBody;
use shared::wire::SigningKey;

const NAMESPACE: &str = "resilience.servicebus.windows.net";

struct Setup {
    state: tempfile::TempDir,
    endpoint: String,
    gateway_key: SigningKey,
    cloud_key: SigningKey,
    mwl_port: u16,
    pacs_port: u16,
}

impl Setup {
    fn gateway(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.args(args)
            .env("GATEWAY_STATE_DIR", self.state.path())
            .env("GATEWAY_ENV_FILE", "/nonexistent/gateway.env")
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
    let relay = Relay::start(NAMESPACE).await;
    let setup = Arc::new(Setup {
        state: tempfile::tempdir().unwrap(),
        endpoint: relay.config.endpoint.to_string(),
        gateway_key: relay.gateway_key.clone(),
        cloud_key: relay.cloud_key.clone(),
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

    // Wait until every event is queued (the walk-in the local add reports, 2 MPPS, 4 images),
    // then kill the gateway outright.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = setup.clone();
        let depth = tokio::task::spawn_blocking(move || s.queue_depth())
            .await
            .unwrap();
        if depth == Some(7) {
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
    assert_eq!(depth, Some(7), "nothing is dropped while the cloud is away");

    // The cloud comes back: every event arrives, none twice.
    let cloud = relay.cloud(accept_all).await;
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
    let received = cloud.events();
    assert_eq!(received.len(), 7, "every event once");
    assert!(
        matches!(received[0].body, EventBody::WorklistItemAddedLocally(_)),
        "the walk-in arrives before its procedure's events: {:?}",
        received[0].body.event_type()
    );
    assert_eq!(*cloud.duplicates.lock().unwrap(), 0);
    let images = received
        .iter()
        .filter(|e| matches!(e.body, EventBody::ImageReceived(_)))
        .count();
    assert_eq!(images, 4);
    drop(restarted);
}
