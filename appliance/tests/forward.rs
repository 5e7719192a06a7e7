//! Forwarding to the hospital PACS (`PACS_FORWARD`), with dcmtk's `storescp` as the PACS: each
//! stored object arrives with its data set byte for byte in its own transfer syntax, a PACS
//! outage only delays it (nothing twice), and an object the PACS will not take is failed with
//! the reason while the rest go on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use appliance::forward::queue::{self, Outcome};
use appliance::forward::Destination;
use common::*;

const HOSPITAL_AE: &str = "HOSPITAL_PACS";

/// `storescp` writing what it receives, bit for bit (`-B`), into `dir`; its log in `log`.
fn hospital_pacs(port: u16, dir: &Path, log: &Path, accept_all: bool) -> Server {
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = dcmtk("storescp");
    cmd.args(["-v", "-B", "-aet", HOSPITAL_AE, "-od"])
        .arg(dir)
        .args(if accept_all { &["+xa"][..] } else { &[][..] })
        .arg(port.to_string())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    Server(cmd.spawn().expect("storescp runs (apt-get install dcmtk)"))
}

/// Where the hospital PACS of a test listens and writes: a free port, its log, its files.
struct Hospital {
    dir: tempfile::TempDir,
    port: u16,
    log: PathBuf,
    received: PathBuf,
}

impl Hospital {
    fn new() -> Hospital {
        let dir = tempfile::tempdir().unwrap();
        let received = dir.path().join("received");
        std::fs::create_dir_all(&received).unwrap();
        Hospital {
            port: free_port(),
            log: dir.path().join("storescp.log"),
            received,
            dir,
        }
    }
}

fn storescu(gw: &TestGateway, option: &str, file: &Path) {
    let out = dcmtk("storescu")
        .args(["-aet", "MODALITY1", "-aec", PACS_AET, option, "127.0.0.1"])
        .arg(gw.pacs_port())
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "storescu: {}", text(&out));
}

fn destination(port: u16) -> Destination {
    Destination::parse(&format!("{HOSPITAL_AE}@127.0.0.1:{port}")).unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The data set of a Part 10 file: everything after its file meta group.
fn data_set_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    bytes[144 + group_length..].to_vec()
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

fn received_count(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Received Store Request")
        .count()
}

#[test]
fn stored_images_reach_the_pacs_with_the_same_data_set_in_their_own_transfer_syntax() {
    let Hospital {
        dir: _dir,
        port,
        log,
        received,
    } = Hospital::new();
    let _pacs = hospital_pacs(port, &received, &log, true);
    let gw = TestGateway::start_with(|c| c.forward_to = vec![destination(port)]);
    let cases = [
        ("-xe", "CT_small.dcm"),
        ("-xi", "MR_small_implicit.dcm"),
        ("-xs", "JPEG-LL.dcm"),
        ("-xv", "RG1_J2KR.dcm"),
        ("-xy", "SC_rgb_jpeg_dcmtk.dcm"),
    ];
    for (option, name) in cases {
        storescu(&gw, option, &sample(name));
    }
    wait_for("every image at the PACS", || {
        files_in(&received).len() == cases.len()
            && queue::stats(gw.db(), &destination(port)).unwrap().queued == 0
    });

    let stored = gw.stored_files();
    for received_file in files_in(&received) {
        let uid = sop_instance_uid(&received_file);
        let original = stored
            .iter()
            .find(|p| sop_instance_uid(p) == uid)
            .expect("the PACS received a stored object");
        assert_eq!(
            data_set_bytes(&received_file),
            data_set_bytes(original),
            "{uid} changed on the way to the PACS"
        );
        let record = appliance::storage::index::get_instance(gw.db(), &uid)
            .unwrap()
            .unwrap();
        let cmp = peer(&[
            "compare",
            original.to_str().unwrap(),
            received_file.to_str().unwrap(),
        ]);
        assert_eq!(cmp["ts"], record.transfer_syntax.as_str(), "{uid}");
        assert!(
            matches!(
                queue::outcome(gw.db(), &destination(port), &uid).unwrap(),
                Some(Outcome::Forwarded { status: 0, .. })
            ),
            "{uid}"
        );
    }
    let stats = queue::stats(gw.db(), &destination(port)).unwrap();
    assert_eq!((stats.forwarded, stats.failed), (cases.len() as u64, 0));
}

#[test]
fn a_pacs_outage_only_delays_forwarding_and_nothing_arrives_twice() {
    let Hospital {
        dir: _dir,
        port,
        log,
        received,
    } = Hospital::new();
    let gw = TestGateway::start_with(|c| c.forward_to = vec![destination(port)]);
    let names = [
        ("-xe", "CT_small.dcm"),
        ("-xs", "JPEG-LL.dcm"),
        ("-xv", "RG1_J2KR.dcm"),
    ];
    for (option, name) in names {
        storescu(&gw, option, &sample(name));
    }
    // The PACS is down: the oldest object records the failed attempt and everything waits.
    wait_for("a failed attempt on record", || {
        queue::head(gw.db(), &destination(port), 1)
            .unwrap()
            .first()
            .is_some_and(|(_, q)| q.attempts >= 1 && q.last_error.is_some())
    });
    assert_eq!(
        queue::stats(gw.db(), &destination(port)).unwrap().queued,
        names.len() as u64
    );

    let _pacs = hospital_pacs(port, &received, &log, true);
    wait_for("every image at the PACS after it returned", || {
        queue::stats(gw.db(), &destination(port)).unwrap().queued == 0
    });
    assert_eq!(files_in(&received).len(), names.len());
    assert_eq!(
        received_count(&log),
        names.len(),
        "an object was sent twice"
    );
}

#[test]
fn an_object_the_pacs_does_not_accept_is_failed_with_the_reason_and_the_rest_go_on() {
    let Hospital {
        dir: _dir,
        port,
        log,
        received,
    } = Hospital::new();
    // Without +xa, storescp takes uncompressed transfer syntaxes only.
    let _pacs = hospital_pacs(port, &received, &log, false);
    let gw = TestGateway::start_with(|c| c.forward_to = vec![destination(port)]);
    let jpeg = sample("JPEG-LL.dcm");
    storescu(&gw, "-xs", &jpeg);
    storescu(&gw, "-xe", &sample("CT_small.dcm"));
    wait_for("the queue to drain", || {
        queue::stats(gw.db(), &destination(port)).unwrap().queued == 0
    });
    match queue::outcome(gw.db(), &destination(port), &sop_instance_uid(&jpeg)).unwrap() {
        Some(Outcome::Failed { reason, .. }) => {
            assert!(reason.contains("did not accept"), "{reason}");
            assert!(reason.contains("1.2.840.10008.1.2.4.70"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(
        files_in(&received).len(),
        1,
        "the uncompressed image arrives"
    );
    let stats = queue::stats(gw.db(), &destination(port)).unwrap();
    assert_eq!((stats.forwarded, stats.failed), (1, 1));
}

/// Retention with the time given, not waited for: only objects past RETENTION_DAYS and
/// forwarded to the PACS go, with their thumbnails and index rows; one the PACS refused stays.
#[test]
fn retention_deletes_only_old_objects_the_pacs_took() {
    use appliance::storage::retention::{self, Policy};
    let Hospital {
        dir: _dir,
        port,
        log,
        received,
    } = Hospital::new();
    // Uncompressed only: the JPEG-LS object is refused and must be kept.
    let _pacs = hospital_pacs(port, &received, &log, false);
    let gw = TestGateway::start_with(|c| c.forward_to = vec![destination(port)]);
    let ct = sample("CT_small.dcm");
    let jpeg = sample("JPEG-LL.dcm");
    storescu(&gw, "-xe", &ct);
    storescu(&gw, "-xs", &jpeg);
    wait_for("forwarding and thumbnails done", || {
        queue::stats(gw.db(), &destination(port)).unwrap().queued == 0
            && appliance::thumbnail::pending_jobs(gw.db())
                .unwrap()
                .is_empty()
    });
    // storescp does no Storage Commitment: a success status counts only with
    // RETENTION_DELETE_FORWARDED.
    let policy = Policy {
        keep: time::Duration::days(30),
        destinations: vec![destination(port)],
        delete_forwarded: true,
    };
    let storage = gw.storage_dir();
    let thumbnails = gw.state.path().join("thumbnails");
    let sweep = |now| retention::sweep(gw.db(), &storage, &thumbnails, &policy, now).unwrap();

    // Not old enough yet: nothing goes.
    let today = sweep(time::OffsetDateTime::now_utc());
    assert_eq!((today.deleted, today.kept_not_archived), (0, 0));
    assert_eq!(gw.stored_files().len(), 2);

    let later = sweep(time::OffsetDateTime::now_utc() + time::Duration::days(31));
    assert_eq!(
        (later.deleted, later.kept_not_archived),
        (1, 1),
        "{later:?}"
    );
    assert!(later.bytes_freed > 0);
    let index = |file: &Path| {
        appliance::storage::index::get_instance(gw.db(), &sop_instance_uid(file)).unwrap()
    };
    assert!(index(&ct).is_none(), "the forwarded object left the index");
    assert!(index(&jpeg).is_some(), "the refused object is kept");
    let left = gw.stored_files();
    assert_eq!(left.len(), 1);
    assert_eq!(sop_instance_uid(&left[0]), sop_instance_uid(&jpeg));
    let thumbs: Vec<_> = std::fs::read_dir(&thumbnails)
        .map(|_| {
            let mut all = Vec::new();
            let mut dirs = vec![thumbnails.clone()];
            while let Some(d) = dirs.pop() {
                for e in std::fs::read_dir(d).unwrap().flatten() {
                    if e.path().is_dir() {
                        dirs.push(e.path());
                    } else {
                        all.push(e.path());
                    }
                }
            }
            all
        })
        .unwrap_or_default();
    assert_eq!(
        thumbs.len(),
        1,
        "the deleted object's thumbnail went with it: {thumbs:?}"
    );
    // A second sweep finds nothing more to do.
    let again = sweep(time::OffsetDateTime::now_utc() + time::Duration::days(31));
    assert_eq!((again.deleted, again.kept_not_archived), (0, 1));
}

/// A `+tls` destination is reached over DICOM TLS, its certificate checked against
/// `PACS_FORWARD_TLS_CA_FILE`: storescp with a certificate from that CA receives the object; one
/// whose certificate another CA issued gets nothing, and the attempt's error says why.
#[test]
fn a_tls_destination_gets_its_objects_over_tls_only_with_a_trusted_certificate() {
    let pki = common::pki::Pki::make();
    let stranger = common::pki::Pki::make();
    let Hospital {
        dir: _dir,
        port,
        log,
        received,
    } = Hospital::new();
    let log_file = std::fs::File::create(&log).unwrap();
    let mut cmd = dcmtk("storescp");
    cmd.args(["-v", "-aet", HOSPITAL_AE, "-od"])
        .arg(&received)
        .arg("+tls")
        .arg(pki.path("server.key"))
        .arg(pki.path("server.pem"))
        // The gateway presents no client certificate.
        .arg("--ignore-peer-cert")
        .arg(port.to_string())
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file));
    let _pacs = Server(cmd.spawn().expect("storescp runs (apt-get install dcmtk)"));
    wait_for("storescp listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let secure = Destination::parse(&format!("{HOSPITAL_AE}@127.0.0.1:{port}+tls")).unwrap();

    // Trusting another CA: the handshake fails, the object waits with the reason.
    let gw = TestGateway::start_with(|c| {
        c.forward_to = vec![secure.clone()];
        c.forward_tls_ca_file = Some(stranger.path("ca.pem"));
    });
    storescu(&gw, "-xe", &sample("CT_small.dcm"));
    wait_for("a failed attempt on record", || {
        queue::head(gw.db(), &secure, 1)
            .unwrap()
            .first()
            .is_some_and(|(_, q)| q.attempts >= 1)
    });
    let (_, entry) = queue::head(gw.db(), &secure, 1).unwrap().remove(0);
    let error = entry.last_error.unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(files_in(&received).is_empty(), "nothing reached the PACS");
    drop(gw);

    // Trusting its CA: the object arrives over TLS.
    let gw = TestGateway::start_with(|c| {
        c.forward_to = vec![secure.clone()];
        c.forward_tls_ca_file = Some(pki.path("ca.pem"));
    });
    let file = sample("CT_small.dcm");
    storescu(&gw, "-xe", &file);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(files_in(&received).len() == 1 && queue::stats(gw.db(), &secure).unwrap().queued == 0) {
        assert!(
            Instant::now() < deadline,
            "the object did not reach the PACS over TLS; storescp says:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(matches!(
        queue::outcome(gw.db(), &secure, &sop_instance_uid(&file)).unwrap(),
        Some(Outcome::Forwarded { status: 0, .. })
    ));
}
