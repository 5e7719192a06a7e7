//! Nothing is lost: the `gateway serve` process with its cloud link, a modality (the built-in
//! emulator) working while the cloud is down, the gateway killed with SIGKILL before it could
//! send anything, restarted, and the cloud coming back 30 s later — every event arrives, and the
//! cloud's de-duplication never sees one twice. And the gateway SIGKILLed in the middle of an
//! ingest: every object it acknowledged is stored and indexed after the restart.

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
    /// A fresh state directory and ports, with the relay's keys.
    fn new(relay: &Relay) -> Arc<Setup> {
        Arc::new(Setup {
            state: tempfile::tempdir().unwrap(),
            endpoint: relay.config.endpoint.to_string(),
            gateway_key: relay.gateway_key.clone(),
            cloud_key: relay.cloud_key.clone(),
            mwl_port: free_port(),
            pacs_port: free_port(),
        })
    }

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
        self.serve_logging(Stdio::null())
    }

    /// `gateway serve` with its log (stderr) going to `log`.
    fn serve_logging(&self, log: impl Into<Stdio>) -> Server {
        let child = self
            .gateway(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
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

/// [`Setup::serve_logging`] off the async threads (it waits for the gateway to answer).
async fn started(setup: &Arc<Setup>, log: Stdio) -> Server {
    let s = setup.clone();
    tokio::task::spawn_blocking(move || s.serve_logging(log))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_sigkill_and_a_cloud_outage() {
    let relay = Relay::start(NAMESPACE).await;
    let setup = Setup::new(&relay);
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
    let restarted = started(&setup, Stdio::null()).await;
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

/// Acknowledged means durable and, after a restart, indexed: small mammograms are stored one
/// after another over one association and the gateway is SIGKILLed while they flow (between
/// two answers or in the middle of an object, wherever the signal lands). The restarted gateway
/// re-indexes what the index lost (its commits are made durable once a second, the files before
/// every answer); stopped, its database has every acknowledged object, each file matching the
/// recorded hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_object_survives_sigkill_during_ingest() {
    use appliance::dimse::scu::Scu;
    use appliance::dimse::{field, status, Command as Dimse};
    use appliance::modality::images::{mammogram, Subject, SCREENING_VIEWS};
    use dicom_dictionary_std::uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION as MG;

    let relay = Relay::start(NAMESPACE).await;
    let setup = Setup::new(&relay);
    let server = started(&setup, Stdio::null()).await;
    let pid = server.0.id();
    let subject = Subject {
        patient_id: "9434765919".into(),
        patient_name: "SMITH^JANE".into(),
        birth_date: "19700101".into(),
        sex: "F".into(),
        accession_number: "ACCCRASH".into(),
        study_instance_uid: appliance::worklist::new_uid(),
        study_description: "Screening".into(),
    };
    let series = appliance::worklist::new_uid();
    let pacs = format!("127.0.0.1:{}", setup.pacs_port);
    let mut scu = Scu::connect(&pacs, "MODALITY_EMU", common::PACS_AET, &[MG])
        .await
        .expect("associate");

    // The kill comes from another thread a moment after the 40th answer, while the next
    // objects are on their way.
    const KILL_AFTER: usize = 40;
    let mut acknowledged = Vec::new();
    let mut killer = None;
    for number in 1..=2_000u32 {
        let view = SCREENING_VIEWS[number as usize % SCREENING_VIEWS.len()];
        let image = mammogram(&subject, &series, view, number, 256, 208);
        let sop = image
            .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string();
        let command = Dimse {
            command_field: field::C_STORE_RQ,
            affected_sop_class_uid: Some(MG.into()),
            affected_sop_instance_uid: Some(sop.clone()),
            priority: Some(0),
            ..Dimse::default()
        };
        match scu.request(MG, command, Some(&image)).await {
            Ok(responses) if responses.first().map(|r| r.status()) == Some(status::SUCCESS) => {
                acknowledged.push(sop)
            }
            _ => break,
        }
        if acknowledged.len() == KILL_AFTER {
            killer = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(3));
                let killed = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
            }));
        }
    }
    killer.expect("40 objects acknowledged").join().unwrap();
    let mut server = server;
    server.0.wait().unwrap();
    drop(server);
    assert!(
        acknowledged.len() < 2_000,
        "the gateway answered every object although it was killed"
    );

    // Restarted: the re-index after start-up finishes, then a clean stop.
    let log_path = setup.state.path().join("restart.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let restarted = started(&setup, log.into()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let checked = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("store checked against the index"))
        {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the re-index never finished:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "{} acknowledged before the kill; after the restart: {checked}",
        acknowledged.len()
    );
    let mut restarted = restarted;
    let stopped = Command::new("kill")
        .args(["-TERM", &restarted.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(restarted.0.wait().unwrap().success());
    drop(restarted);

    let db = appliance::db::Database::open(&appliance::db::path_in(setup.state.path())).unwrap();
    for sop in &acknowledged {
        let record = appliance::storage::index::get_instance(&db, sop)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {sop} is not indexed after the restart"));
        let file = setup.state.path().join("storage").join(&record.file_path);
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("acknowledged {sop}: {}: {e}", file.display()));
        assert_eq!(
            appliance::storage::files::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            record.file_sha256,
            "acknowledged {sop}: the file is not the one indexed"
        );
    }
}
