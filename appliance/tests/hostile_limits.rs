//! Limits and faults against the running `gateway serve`: idle connections and ARTIM, the
//! association caps and their A-ASSOCIATE-RJ, the source allow-list at accept, MPPS N-SET from
//! another AE, and the state filesystem full. After each the process lives, C-ECHO answers,
//! peak RSS stays bounded, and a good image still produces its image event.
//!
//! Loopback only: every address of 127.0.0.0/8 is this host, so a test plays several source
//! hosts by binding its sockets to 127.0.0.x before connecting.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use appliance::dimse::{field, Command};
use appliance::modality::images::{mammogram, Subject, SCREENING_VIEWS};
use appliance::worklist::new_uid;
use common::hostile::{associate_rq, HostileGateway, Proposed, RawPeer};
use common::{MWL_AET, PACS_AET};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Peak RSS any of these attacks may leave behind, KiB. The gateway idles at ~20 MiB.
const RSS_BOUND_KIB: u64 = 256 * 1024;

const ECHO: Proposed = Proposed {
    id: 1,
    abstract_syntax: uids::VERIFICATION,
    transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
};
const MPPS: Proposed = Proposed {
    id: 1,
    abstract_syntax: uids::MODALITY_PERFORMED_PROCEDURE_STEP,
    transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
};
const MG: Proposed = Proposed {
    id: 1,
    abstract_syntax: uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    transfer_syntaxes: &[uids::EXPLICIT_VR_LITTLE_ENDIAN],
};

/// The checks after every attack, with the RSS bound.
fn unharmed(gw: &mut HostileGateway, attack: &str) {
    let peak = gw.assert_unharmed(attack);
    assert!(peak < RSS_BOUND_KIB, "{attack}: peak RSS {peak} KiB");
}

/// The gateway's log has a line containing `needle`.
fn assert_logged(gw: &HostileGateway, needle: &str) {
    let log = gw.log();
    assert!(log.contains(needle), "no log line with {needle:?}:\n{log}");
}

/// A-ASSOCIATE-RJ, rejected-transient (2), service-provider presentation (3), local limit
/// exceeded (2): PS3.8 table 9-21, after the reserved byte.
const LOCAL_LIMIT_EXCEEDED: [u8; 4] = [0, 2, 3, 2];

/// A TCP connection to the gateway from `source` (an address of 127.0.0.0/8).
async fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect")
}

/// A raw peer connected from `source`.
fn peer_from(gw: &HostileGateway, source: [u8; 4], port: u16) -> RawPeer {
    let stream = gw.runtime().block_on(async {
        let stream = connect_from(source, port).await.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    RawPeer {
        stream,
        accepted: Vec::new(),
    }
}

/// Sends an A-ASSOCIATE-RQ and returns the answer's PDU type and body.
fn request(peer: &mut RawPeer, called: &str, calling: &str, context: &Proposed) -> (u8, Vec<u8>) {
    peer.send(&associate_rq(
        called,
        calling,
        std::slice::from_ref(context),
        1 << 20,
    ));
    peer.read_pdu().expect("an answer to the A-ASSOCIATE-RQ")
}

/// An association from `source` as `calling`; panics unless accepted.
fn associated(
    gw: &HostileGateway,
    source: [u8; 4],
    port: u16,
    called: &str,
    calling: &str,
    context: &Proposed,
) -> RawPeer {
    let mut peer = peer_from(gw, source, port);
    let (kind, body) = request(&mut peer, called, calling, context);
    assert_eq!(
        kind, 0x02,
        "{calling} from {source:?}: A-ASSOCIATE-AC expected, got type {kind:#04x} {body:02x?}"
    );
    peer
}

/// How long each of the connections was held by the gateway before it closed them (a read
/// returned end of file or a reset); `limit` when it had not by then.
async fn hold_times(connections: Vec<(TcpStream, Instant)>, limit: Duration) -> Vec<Duration> {
    let watching: Vec<_> = connections
        .into_iter()
        .map(|(mut stream, opened)| {
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                let _ = tokio::time::timeout(limit, stream.read(&mut byte)).await;
                opened.elapsed().min(limit)
            })
        })
        .collect();
    let mut held = Vec::new();
    for task in watching {
        held.push(task.await.expect("watcher"));
    }
    held.sort();
    held
}

fn mpps_create(uid: &str) -> (Command, Vec<u8>) {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let step =
        InMemDicomObject::from_element_iter([text(tags::ACCESSION_NUMBER, VR::SH, "ACC12C")]);
    let obj = InMemDicomObject::from_element_iter([
        text(tags::PERFORMED_PROCEDURE_STEP_STATUS, VR::CS, "IN PROGRESS"),
        text(tags::PERFORMED_PROCEDURE_STEP_ID, VR::SH, "PPS1"),
        text(
            tags::COMMENTS_ON_THE_PERFORMED_PROCEDURE_STEP,
            VR::ST,
            &"a procedure step comment ".repeat(40),
        ),
        DataElement::new(
            tags::SCHEDULED_STEP_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![step]),
        ),
    ]);
    let command = Command {
        command_field: field::N_CREATE_RQ,
        message_id: Some(1),
        affected_sop_class_uid: Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into()),
        affected_sop_instance_uid: Some(uid.into()),
        has_data_set: true,
        ..Default::default()
    };
    (command, implicit(&obj))
}

fn mpps_complete(uid: &str) -> (Command, Vec<u8>) {
    let obj = InMemDicomObject::from_element_iter([DataElement::new(
        tags::PERFORMED_PROCEDURE_STEP_STATUS,
        VR::CS,
        PrimitiveValue::from("COMPLETED"),
    )]);
    let command = Command {
        command_field: field::N_SET_RQ,
        message_id: Some(2),
        requested_sop_class_uid: Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into()),
        requested_sop_instance_uid: Some(uid.into()),
        has_data_set: true,
        ..Default::default()
    };
    (command, implicit(&obj))
}

fn implicit(obj: &InMemDicomObject) -> Vec<u8> {
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("encode");
    bytes
}

/// Sends one request and returns the status of its response.
fn status_of(peer: &mut RawPeer, (command, data): (Command, Vec<u8>)) -> u16 {
    peer.send_message(1, &command, Some(&data));
    peer.response().status.expect("a status")
}

/// A C-STORE-RQ of a small valid mammogram, its data set in explicit VR little endian.
fn c_store() -> (Command, Vec<u8>) {
    let subject = Subject {
        patient_id: "9434765919".into(),
        patient_name: "SMITH^JANE".into(),
        birth_date: "19700101".into(),
        sex: "F".into(),
        accession_number: "ACC12C".into(),
        study_instance_uid: new_uid(),
        study_description: "Screening mammography".into(),
    };
    let obj = mammogram(&subject, &new_uid(), SCREENING_VIEWS[1], 1, 64, 52);
    let uid = appliance::storage::index::text(&obj, tags::SOP_INSTANCE_UID).expect("a UID");
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("encode");
    let command = Command {
        command_field: field::C_STORE_RQ,
        message_id: Some(3),
        affected_sop_class_uid: Some(
            uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION.into(),
        ),
        affected_sop_instance_uid: Some(uid),
        priority: Some(0),
        has_data_set: true,
        ..Default::default()
    };
    (command, data)
}

#[test]
fn idle_connections_are_closed_after_artim_while_modalities_associate() {
    const IDLE: usize = 600;
    let artim = Duration::from_secs(5);
    let mut gw = HostileGateway::start_with(&[("DICOM_ARTIM_TIMEOUT_SECS", "5")]);
    let port = gw.mwl_port;
    // From ten hosts, 60 each: under the per-address cap on waiting connections, so every one
    // of them waits for ARTIM.
    let first = Instant::now();
    let idle = gw.runtime().block_on(async {
        let mut idle = Vec::new();
        for i in 0..IDLE {
            let source = [127, 0, 0, 10 + (i % 10) as u8];
            idle.push((connect_from(source, port).await, Instant::now()));
        }
        idle
    });
    let opened_in = first.elapsed();
    // Meanwhile a modality (dcmtk, from 127.0.0.1) associates on both ports.
    assert!(gw.echo_ok(), "C-ECHO refused while idle connections wait");
    let echoed_after = first.elapsed();
    let held = gw
        .runtime()
        .block_on(hold_times(idle, Duration::from_secs(60)));
    let longest = *held.last().unwrap();
    eprintln!(
        "{IDLE} idle connections (opened in {opened_in:?}, C-ECHO done {echoed_after:?} after the first): held {:?} (shortest) to {:?} (longest), ARTIM {artim:?}",
        held[0], longest
    );
    assert!(
        echoed_after < artim,
        "C-ECHO took until the idle connections were dropped ({echoed_after:?})"
    );
    // Without ARTIM they were held until the 120 s idle timeout.
    assert!(
        longest < Duration::from_secs(30),
        "an idle connection was held {longest:?} (ARTIM {artim:?})"
    );
    assert_logged(
        &gw,
        "no association request within DICOM_ARTIM_TIMEOUT_SECS",
    );
    unharmed(&mut gw, "600 idle connections");
}

#[test]
fn one_host_flooding_connections_is_cut_off_at_its_share() {
    const FLOOD: usize = 80;
    let artim = Duration::from_secs(5);
    let mut gw = HostileGateway::start_with(&[("DICOM_ARTIM_TIMEOUT_SECS", "5")]);
    let port = gw.pacs_port;
    let flood = gw.runtime().block_on(async {
        let mut flood = Vec::new();
        for _ in 0..FLOOD {
            flood.push((connect_from([127, 0, 0, 40], port).await, Instant::now()));
        }
        flood
    });
    assert!(gw.echo_ok(), "C-ECHO refused while one host floods");
    let held = gw
        .runtime()
        .block_on(hold_times(flood, Duration::from_secs(60)));
    let at_once = held.iter().filter(|h| **h < artim / 2).count();
    eprintln!(
        "{FLOOD} connections from one address: {at_once} closed at once, the rest after {:?}",
        held.last().unwrap()
    );
    // 64 wait for their request (appliance::admission::PENDING_PER_SOURCE); the rest are
    // closed on accept.
    assert_eq!(at_once, FLOOD - 64, "held: {held:?}");
    unharmed(&mut gw, "a connection flood from one host");
}

#[test]
fn associations_beyond_the_caps_get_a_transient_local_limit_rejection() {
    let mut gw = HostileGateway::start_with(&[
        ("DICOM_MAX_ASSOCIATIONS", "4"),
        ("DICOM_MAX_ASSOCIATIONS_PER_SOURCE", "2"),
    ]);
    let port = gw.mwl_port;
    let a = [127, 0, 0, 51];
    let b = [127, 0, 0, 52];
    let mut held = vec![
        associated(&gw, a, port, MWL_AET, "MODALITY_A", &ECHO),
        associated(&gw, a, port, MWL_AET, "MODALITY_A", &ECHO),
    ];
    // A's third: over its share.
    let mut third = peer_from(&gw, a, port);
    let (kind, body) = request(&mut third, MWL_AET, "MODALITY_A", &ECHO);
    assert_eq!(
        (kind, body.as_slice()),
        (0x03, LOCAL_LIMIT_EXCEEDED.as_slice()),
        "A-ASSOCIATE-RJ transient / provider presentation / local limit exceeded"
    );
    drop(third);
    // Another host still gets in, up to the overall cap.
    held.push(associated(&gw, b, port, MWL_AET, "MODALITY_B", &ECHO));
    held.push(associated(
        &gw,
        b,
        gw.pacs_port,
        PACS_AET,
        "MODALITY_B",
        &ECHO,
    ));
    let mut fifth = peer_from(&gw, [127, 0, 0, 53], gw.pacs_port);
    let (kind, body) = request(&mut fifth, PACS_AET, "MODALITY_C", &ECHO);
    assert_eq!(
        (kind, body.as_slice()),
        (0x03, LOCAL_LIMIT_EXCEEDED.as_slice())
    );
    drop(fifth);
    assert_logged(
        &gw,
        "DICOM_MAX_ASSOCIATIONS_PER_SOURCE associations are open from this address",
    );
    assert_logged(&gw, "DICOM_MAX_ASSOCIATIONS associations are open");
    // A place freed is a place taken again.
    held.remove(0).release();
    associated(
        &gw,
        [127, 0, 0, 53],
        gw.pacs_port,
        PACS_AET,
        "MODALITY_C",
        &ECHO,
    )
    .release();
    for peer in held {
        peer.release();
    }
    unharmed(&mut gw, "associations beyond the caps");
}

#[test]
fn a_host_not_on_the_allow_list_is_closed_at_accept_without_a_byte_read() {
    // The harness's own C-ECHO comes from 127.0.0.1; the stranger is 127.0.0.61.
    let mut gw = HostileGateway::start_with(&[("ALLOWED_SOURCE_ADDRESSES", "127.0.0.1")]);
    let port = gw.mwl_port;
    let mut stranger = peer_from(&gw, [127, 0, 0, 61], port);
    stranger
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut stranger.stream, &mut byte);
    let held = started.elapsed();
    eprintln!("a disallowed host was disconnected after {held:?}: {read:?}");
    // End of file or a reset; a timeout means the gateway was waiting to read its request.
    assert!(
        matches!(&read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection from a disallowed address stayed open: {read:?} after {held:?}"
    );
    // Whatever it sends is never answered: no A-ASSOCIATE-RJ, nothing parsed.
    let mut stranger = peer_from(&gw, [127, 0, 0, 61], port);
    let _ = std::io::Write::write_all(
        &mut stranger.stream,
        &associate_rq(MWL_AET, "STRANGER", &[ECHO], 1 << 20),
    );
    assert!(
        stranger.read_pdu().is_none(),
        "a disallowed host got an answer"
    );
    assert_logged(
        &gw,
        "connection refused: source address not in ALLOWED_SOURCE_ADDRESSES",
    );
    unharmed(&mut gw, "a host not on the allow-list");
}

#[test]
fn only_the_ae_that_created_an_mpps_step_may_update_it() {
    let mut gw = HostileGateway::start();
    let port = gw.mwl_port;
    let uid = new_uid();
    let mut creator = associated(&gw, [127, 0, 0, 1], port, MWL_AET, "MODALITY1", &MPPS);
    assert_eq!(status_of(&mut creator, mpps_create(&uid)), 0x0000);

    let mut other = associated(&gw, [127, 0, 0, 71], port, MWL_AET, "INTRUDER", &MPPS);
    assert_eq!(
        status_of(&mut other, mpps_complete(&uid)),
        0x0110,
        "an N-SET from another AE must be refused with processing failure"
    );
    other.release();
    assert_logged(&gw, "MPPS N-SET refused");
    assert_logged(&gw, "INTRUDER may not update it");
    // The step is still open for its own modality.
    assert_eq!(status_of(&mut creator, mpps_complete(&uid)), 0x0000);
    creator.release();
    unharmed(&mut gw, "an MPPS N-SET from another AE");
}

#[test]
fn mpps_updates_from_any_ae_when_the_setting_says_so() {
    let gw = HostileGateway::start_with(&[("MPPS_SET_FROM_ANY_AE", "true")]);
    let uid = new_uid();
    let mut creator = associated(
        &gw,
        [127, 0, 0, 1],
        gw.mwl_port,
        MWL_AET,
        "MODALITY1",
        &MPPS,
    );
    assert_eq!(status_of(&mut creator, mpps_create(&uid)), 0x0000);
    creator.release();
    let mut other = associated(&gw, [127, 0, 0, 1], gw.mwl_port, MWL_AET, "CONSOLE2", &MPPS);
    assert_eq!(status_of(&mut other, mpps_complete(&uid)), 0x0000);
    other.release();
}

#[test]
fn pdus_flooded_during_a_worklist_stream_are_not_queued_without_bound() {
    const ITEMS: usize = 40;
    const FLOOD_PDUS: usize = 4000; // 4000 × 64 KiB = 250 MiB
                                    // Items made with the CLI before the service starts (redb admits one process at a time).
    let state = tempfile::tempdir().expect("temp dir");
    for i in 0..ITEMS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["worklist", "add", "--accession", &format!("ACCFLOOD{i:02}")])
            .args(["--nhs-number", "9434765919", "--name", "SMITH^JANE"])
            .args([
                "--birth-date",
                "19700101",
                "--date",
                "20261122",
                "--time",
                "093000",
            ])
            .env_clear()
            .env("GATEWAY_STATE_DIR", state.path())
            .env("GATEWAY_ENV_FILE", "/nonexistent/gateway.env")
            .output()
            .expect("gateway worklist add");
        assert!(out.status.success(), "{}", common::text(&out));
    }
    let dir = state.path().to_str().unwrap().to_string();
    let mut gw = HostileGateway::start_with(&[("GATEWAY_STATE_DIR", &dir)]);
    let find = Proposed {
        id: 1,
        abstract_syntax: uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
        transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
    };
    let mut peer = associated(
        &gw,
        [127, 0, 0, 1],
        gw.mwl_port,
        MWL_AET,
        "MODALITY1",
        &find,
    );
    let identifier = InMemDicomObject::from_element_iter([DataElement::new(
        tags::PATIENT_NAME,
        VR::PN,
        PrimitiveValue::Empty,
    )]);
    let command = Command {
        command_field: field::C_FIND_RQ,
        message_id: Some(9),
        affected_sop_class_uid: Some(uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into()),
        priority: Some(0),
        has_data_set: true,
        ..Default::default()
    };
    peer.send_message(1, &command, Some(&implicit(&identifier)));
    // Right behind the request, data PDVs nobody asked for, as fast as the socket takes them.
    let mut flood = peer.stream.try_clone().unwrap();
    let flooding = std::thread::spawn(move || {
        let pdu = common::hostile::p_data(1, false, false, &vec![0x5A; 65536 - 12]);
        (0..FLOOD_PDUS)
            .take_while(|_| std::io::Write::write_all(&mut flood, &pdu).is_ok())
            .count()
    });
    let mut pending = 0;
    let final_status = loop {
        let Some(response) = peer.next_response() else {
            break None;
        };
        match response.status {
            Some(0xFF00) | Some(0xFF01) => pending += 1,
            other => break other,
        }
    };
    // Between responses the gateway reads the association for a C-CANCEL. Whether it meets the
    // flood there (then it aborts mid-stream, rightly: only a C-CANCEL may come now) or only
    // after the last response depends on scheduling; either way it answers in order and never
    // more than it matched.
    match (pending, final_status) {
        (ITEMS, Some(0x0000)) => {}
        (sent, None) if sent <= ITEMS => {
            let log = gw.log();
            assert!(
                log.contains("data PDV before its command"),
                "the stream ended after {sent} of {ITEMS} without the abort for the flood:\n{log}"
            );
        }
        other => panic!(
            "C-FIND stream {other:?}, not {ITEMS} pending then 0000; gateway log:\n{}",
            gw.log()
        ),
    }
    // The flood then reaches the message reader, which refuses it and aborts the association.
    while peer.read_pdu().is_some() {}
    let sent = flooding.join().unwrap();
    eprintln!("flood during a C-FIND of {ITEMS} items: {sent} of {FLOOD_PDUS} 64 KiB PDUs written before the gateway stopped reading or aborted");
    let peak = gw.assert_unharmed("a PDU flood during a worklist stream");
    // Idle it is ~20 MiB; queuing the flood would be 250 MiB more.
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
}

/// A tmpfs mounted for one test, unmounted on drop (also when the test fails).
struct Tmpfs {
    point: PathBuf,
    /// Holds the mount point's parent until after the unmount.
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a loud message) when not root: only root can mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .expect("id -u");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!(
                "\n*** SKIPPED: the state-filesystem-full test mounts a tmpfs and needs root \
                 (CI runs as root). Nothing about a full database disk was tested. ***\n"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let point = dir.path().join("state");
        std::fs::create_dir(&point).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&point)
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mount -t tmpfs failed as root");
        Some(Tmpfs {
            point,
            _parent: dir,
        })
    }

    fn path(&self) -> &Path {
        &self.point
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.point)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.point)
                .status();
        }
    }
}

/// Writes `path` until the filesystem refuses (ENOSPC): 1 MiB at a time, then 4 KiB, then bytes.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0xA5u8; chunk];
        while file
            .write_all(&block)
            .and_then(|_| file.sync_data())
            .is_ok()
        {}
    }
}

#[test]
fn a_full_state_filesystem_refuses_then_serves_again_when_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("48m") else {
        return;
    };
    let state = tmpfs.path().to_str().unwrap().to_string();
    // The disk itself filling is tested here, not the floor that refuses before it does.
    let mut gw =
        HostileGateway::start_with(&[("GATEWAY_STATE_DIR", &state), ("STORAGE_MIN_FREE_MIB", "0")]);
    let filler = tmpfs.path().join("filler");
    fill(&filler);

    // A store cannot be written: out of resources.
    let mut store = associated(
        &gw,
        [127, 0, 0, 1],
        gw.pacs_port,
        PACS_AET,
        "MODALITY1",
        &MG,
    );
    assert_eq!(
        status_of(&mut store, c_store()),
        0xA700,
        "C-STORE on a full disk"
    );
    // The database itself meets the full disk: MPPS steps until one is refused.
    let mut mpps = associated(
        &gw,
        [127, 0, 0, 1],
        gw.mwl_port,
        MWL_AET,
        "MODALITY1",
        &MPPS,
    );
    let refused = (0..300).find(|_| status_of(&mut mpps, mpps_create(&new_uid())) == 0x0110);
    assert!(refused.is_some(), "300 MPPS steps committed on a full disk");
    assert!(gw.alive() && gw.echo_ok(), "C-ECHO while the disk is full");

    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    let deadline = freed + Duration::from_secs(90);
    loop {
        if status_of(&mut store, c_store()) == 0x0000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C-STORE still refused 90 s after the space was freed:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "serving again {:?} after the space was freed (MPPS refused after {} steps)",
        freed.elapsed(),
        refused.unwrap()
    );
    assert_eq!(status_of(&mut mpps, mpps_create(&new_uid())), 0x0000);
    assert_logged(&gw, "state database I/O failed");
    assert_logged(&gw, "state database reopened");
    store.release();
    mpps.release();
    unharmed(&mut gw, "the state filesystem full");
    drop(gw);
}
