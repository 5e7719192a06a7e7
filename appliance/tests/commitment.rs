//! Storage Commitment (PS3.4 Annex J) against a real PACS: Orthanc from Debian, which answers
//! the gateway's N-ACTION at once and reports on a new association to the gateway's storage AE.
//! dcmtk's storescp stands for a PACS without commitment. Forged reports come from pynetdicom.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appliance::config::Config;
use appliance::forward::commitment::{self, Commitment};
use appliance::forward::queue::{self, Outcome};
use appliance::forward::Destination;
use appliance::storage::retention::{self, Policy};
use common::cloud::Relay;
use common::*;
use shared::wire::event::{ArchiveState, EventBody, ImageArchiveState};

const ORTHANC_AE: &str = "ORTHANC";
const STORESCP_AE: &str = "HOSPITAL_PACS";
const ORTHANC: &str = "/usr/sbin/Orthanc";

/// Orthanc as a process with a private configuration in a temp dir, on loopback ports; killed
/// when dropped, even when the test fails.
struct Orthanc {
    _process: Server,
    dir: tempfile::TempDir,
    http_port: u16,
}

impl Orthanc {
    /// Starts Orthanc on `dicom_port`, knowing the gateway as `gateway_ae` at `report_port`
    /// (where it sends its commitment reports), and waits until it listens.
    fn start(dicom_port: u16, gateway_ae: &str, report_port: u16) -> Orthanc {
        assert!(
            Path::new(ORTHANC).exists(),
            "{ORTHANC} is not installed: run scripts/deps.sh (apt package orthanc)"
        );
        let dir = tempfile::tempdir().unwrap();
        let http_port = free_port();
        let config = serde_json::json!({
            "Name": "gateway-test",
            "StorageDirectory": dir.path().join("storage"),
            "IndexDirectory": dir.path().join("index"),
            "DicomAet": ORTHANC_AE,
            "DicomPort": dicom_port,
            "HttpPort": http_port,
            "HttpServerEnabled": true,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomCheckCalledAet": true,
            "Plugins": [],
            "ConcurrentJobs": 1,
            "DicomScuTimeout": 10,
            "DicomModalities": {
                "gateway": {
                    "AET": gateway_ae,
                    "Host": "127.0.0.1",
                    "Port": report_port,
                    "AllowStorageCommitment": true
                }
            }
        });
        let config_path = dir.path().join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("orthanc.log")).unwrap();
        let process = Server(
            Command::new(ORTHANC)
                .arg(&config_path)
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("Orthanc runs"),
        );
        let orthanc = Orthanc {
            _process: process,
            dir,
            http_port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", dicom_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Orthanc did not listen on {dicom_port}:\n{}",
                orthanc.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        orthanc
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap_or_default()
    }

    /// `GET path` on its REST API (loopback, no authentication), the body as JSON.
    fn get(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {response}"))
    }
}

fn storescp(port: u16, dir: &Path) -> Server {
    let log = std::fs::File::create(dir.join("storescp.log")).unwrap();
    let received = dir.join("received");
    std::fs::create_dir_all(&received).unwrap();
    Server(
        dcmtk("storescp")
            .args(["-aet", STORESCP_AE, "-od"])
            .arg(&received)
            .arg(port.to_string())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("storescp runs (apt-get install dcmtk)"),
    )
}

fn destination(ae: &str, port: u16) -> Destination {
    Destination::parse(&format!("{ae}@127.0.0.1:{port}")).unwrap()
}

fn storescu(port: &str, called: &str, file: &Path) {
    let out = dcmtk("storescu")
        .args(["-aet", "MODALITY1", "-aec", called, "127.0.0.1", port])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "storescu: {}", text(&out));
}

fn sop_instance_uid(path: &Path) -> String {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .unwrap();
    obj.meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn samples() -> Vec<PathBuf> {
    vec![sample("CT_small.dcm"), sample("MR_small_implicit.dcm")]
}

/// Objects forwarded to Orthanc end up committed (its report arrives on a new association to
/// the storage AE), while storescp, which does no commitment, leaves them forwarded; the cloud
/// hears forwarded then committed from Orthanc, and only forwarded from storescp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orthanc_commits_what_it_took_and_storescp_leaves_it_forwarded() {
    let relay = Relay::start("commit-test.servicebus.windows.net").await;
    let cloud = relay.cloud(common::cloud::accept_all).await;
    let (orthanc_port, storescp_port) = (free_port(), free_port());
    let orthanc = destination(ORTHANC_AE, orthanc_port);
    let plain = destination(STORESCP_AE, storescp_port);
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::new(state.path().to_path_buf());
    config.bind = "127.0.0.1".parse().unwrap();
    config.mwl_port = 0;
    config.pacs_port = 0;
    config.pacs_aet = PACS_AET.into();
    config.forward_to = vec![orthanc.clone(), plain.clone()];
    let service = relay.serve(config).await;
    let gateway_port = service.dicom.pacs_addr.port();
    let scratch = tempfile::tempdir().unwrap();
    let _storescp = storescp(storescp_port, scratch.path());
    let pacs =
        tokio::task::spawn_blocking(move || Orthanc::start(orthanc_port, PACS_AET, gateway_port))
            .await
            .unwrap();
    let files = samples();
    let uids: Vec<String> = files.iter().map(|f| sop_instance_uid(f)).collect();
    let db = service.dicom.db.clone();
    let (o, p, u) = (orthanc.clone(), plain.clone(), uids.clone());
    let pacs = tokio::task::spawn_blocking(move || {
        for file in &files {
            storescu(&gateway_port.to_string(), PACS_AET, file);
        }
        wait_for("Orthanc's commitment of every object", || {
            u.iter().all(|uid| {
                matches!(
                    commitment::commitment(&db, &o, uid).unwrap(),
                    Some(Commitment::Committed { .. })
                )
            })
        });
        wait_for("storescp to take every object", || {
            queue::stats(&db, &p).unwrap().forwarded == u.len() as u64
        });
        pacs
    })
    .await
    .unwrap();
    let db = &service.dicom.db;
    for uid in &uids {
        assert_eq!(
            commitment::commitment(db, &plain, uid).unwrap(),
            None,
            "storescp negotiated no commitment"
        );
        assert!(matches!(
            queue::outcome(db, &plain, uid).unwrap(),
            Some(Outcome::Forwarded { .. })
        ));
    }
    assert_eq!(commitment::counts(db, &orthanc).unwrap(), (0, 2, 0));
    let stored = pacs.get("/instances");
    assert_eq!(stored.as_array().map(Vec::len), Some(2), "{stored}");

    // The cloud hears each state change once: forwarded and committed from Orthanc,
    // forwarded from storescp.
    let states = |events: &[shared::wire::event::Event]| {
        let mut states: Vec<(String, String, ArchiveState)> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::ImageArchiveState(ImageArchiveState {
                    sop_instance_uid,
                    destination,
                    state,
                    ..
                }) => Some((sop_instance_uid.clone(), destination.clone(), *state)),
                _ => None,
            })
            .collect();
        states.sort_by(|a, b| (&a.0, &a.1, a.2.as_str()).cmp(&(&b.0, &b.1, b.2.as_str())));
        states
    };
    let mut expected = Vec::new();
    for uid in &uids {
        expected.push((
            uid.clone(),
            STORESCP_AE.to_string(),
            ArchiveState::Forwarded,
        ));
        expected.push((uid.clone(), ORTHANC_AE.to_string(), ArchiveState::Committed));
        expected.push((uid.clone(), ORTHANC_AE.to_string(), ArchiveState::Forwarded));
    }
    expected.sort_by(|a, b| (&a.0, &a.1, a.2.as_str()).cmp(&(&b.0, &b.1, b.2.as_str())));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = states(&cloud.events());
        if got == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "archive states the cloud heard: {got:?}\nexpected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for event in cloud.events() {
        if let EventBody::ImageArchiveState(state) = event.body {
            assert!(!state.study_instance_uid.is_empty());
            assert_eq!(state.reason, None);
        }
    }
    service.stop(Duration::from_secs(5)).await;
    drop(pacs);
}

/// A report is taken only for a transaction the gateway issued, from the PACS it was issued to;
/// retention then deletes what was committed and keeps what failed. Orthanc is told a dead port
/// for the gateway, so its own report never arrives and the transaction stays outstanding.
#[test]
fn forged_reports_are_refused_and_retention_deletes_only_committed_objects() {
    let orthanc_port = free_port();
    let orthanc = destination(ORTHANC_AE, orthanc_port);
    // A second destination, never reachable: its AE may report, but not on Orthanc's behalf.
    let other = destination("OTHER_PACS", free_port());
    let gw = TestGateway::start_with(|c| {
        c.forward_to = vec![orthanc.clone(), other.clone()];
    });
    let _pacs = Orthanc::start(orthanc_port, PACS_AET, free_port());
    let files = samples();
    for file in &files {
        storescu(&gw.pacs_port(), PACS_AET, file);
    }
    let uids: Vec<String> = files.iter().map(|f| sop_instance_uid(f)).collect();
    let transaction = |uid: &str| match commitment::commitment(gw.db(), &orthanc, uid).unwrap() {
        Some(Commitment::Pending {
            transaction_uid: Some(t),
            ..
        }) => Some(t),
        _ => None,
    };
    wait_for("commitment requested for both objects", || {
        uids.iter().all(|u| transaction(u).is_some())
            && appliance::thumbnail::pending_jobs(gw.db())
                .unwrap()
                .is_empty()
    });
    let t0 = transaction(&uids[0]).unwrap();
    let t1 = transaction(&uids[1]).unwrap();
    let report = |calling: &str, transaction: &str, ok: &[&str], failed: &[&str]| {
        let port = gw.pacs_port();
        let mut args = vec![
            "commit-report",
            "127.0.0.1",
            &port,
            PACS_AET,
            "--calling",
            calling,
            "--transaction",
            transaction,
        ];
        if !failed.is_empty() {
            args.push("--failed");
            args.extend_from_slice(failed);
        }
        if !ok.is_empty() {
            args.push("--committed");
            args.extend_from_slice(ok);
        }
        let answer = peer(&args);
        assert_eq!(answer["established"], true, "{answer}");
        answer["status"].as_u64().unwrap()
    };
    // A stranger, and another destination, with a real transaction: not authorised. Orthanc's
    // AE with an unknown one: invalid argument. None changes anything.
    assert_eq!(report("INTRUDER", &t0, &[&uids[0]], &[]), 0x0124);
    assert_eq!(report("OTHER_PACS", &t0, &[&uids[0]], &[]), 0x0124);
    assert_eq!(
        report(ORTHANC_AE, "2.25.1234567890", &[&uids[0]], &[]),
        0x0115
    );
    for uid in &uids {
        assert!(transaction(uid).is_some(), "{uid} is still pending");
    }

    // The right PACS and transaction: committed or failed as reported.
    if t0 == t1 {
        assert_eq!(report(ORTHANC_AE, &t0, &[&uids[0]], &[&uids[1]]), 0);
    } else {
        assert_eq!(report(ORTHANC_AE, &t0, &[&uids[0]], &[]), 0);
        assert_eq!(report(ORTHANC_AE, &t1, &[], &[&uids[1]]), 0);
    }
    assert!(matches!(
        commitment::commitment(gw.db(), &orthanc, &uids[0]).unwrap(),
        Some(Commitment::Committed { .. })
    ));
    match commitment::commitment(gw.db(), &orthanc, &uids[1]).unwrap() {
        Some(Commitment::Failed { reason, .. }) => {
            assert!(reason.contains("no such object instance"), "{reason}")
        }
        other => panic!("expected a failed commitment, got {other:?}"),
    }
    // The same report again: its transaction is answered and forgotten.
    assert_eq!(report(ORTHANC_AE, &t0, &[&uids[0]], &[]), 0x0115);

    let storage = gw.storage_dir();
    let thumbnails = gw.state.path().join("thumbnails");
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(31);
    for delete_forwarded in [false, true] {
        let policy = Policy {
            keep: time::Duration::days(30),
            destinations: vec![orthanc.clone()],
            delete_forwarded,
        };
        // `gateway status` says beforehand what the sweep will do.
        let preview = retention::preview(gw.db(), &policy, later).unwrap();
        let swept = retention::sweep(gw.db(), &storage, &thumbnails, &policy, later).unwrap();
        assert_eq!(preview, swept, "the preview is what the sweep did");
        // A success status does not stand in for a failed commitment, whatever the setting.
        let expected = if delete_forwarded { (0, 1) } else { (1, 1) };
        assert_eq!(
            (swept.deleted, swept.kept_not_archived),
            expected,
            "{swept:?}"
        );
    }
    let index = |uid: &str| appliance::storage::index::get_instance(gw.db(), uid).unwrap();
    assert!(index(&uids[0]).is_none(), "the committed object is deleted");
    assert!(index(&uids[1]).is_some(), "the failed one is kept");
    assert_eq!(gw.stored_files().len(), 1);
    let (objects, bytes) = retention::usage(gw.db()).unwrap();
    assert_eq!(objects, 1);
    assert!(bytes > 0);
    assert_eq!(
        commitment::commitment(gw.db(), &orthanc, &uids[0]).unwrap(),
        None,
        "its commitment went with it"
    );
}
