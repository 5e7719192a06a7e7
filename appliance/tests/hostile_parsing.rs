//! Hostile data sets against the running `gateway serve`, sent as raw PDUs: after each the
//! process lives, C-ECHO answers, peak RSS stays bounded, and a good image still produces its
//! image event.

mod common;

use appliance::dimse::{field, Command};
use common::hostile::{HostileGateway, Proposed, RawPeer};
use common::{MWL_AET, PACS_AET};
use dicom_dictionary_std::uids;

#[test]
fn the_harness_speaks_raw_pdus_to_the_running_gateway() {
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(
        gw.mwl_port,
        MWL_AET,
        &[Proposed {
            id: 1,
            abstract_syntax: uids::VERIFICATION,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        }],
    );
    assert_eq!(peer.accepted.len(), 1);
    let echo = Command {
        command_field: field::C_ECHO_RQ,
        message_id: Some(7),
        affected_sop_class_uid: Some(uids::VERIFICATION.into()),
        ..Default::default()
    };
    peer.send_message(1, &echo, None);
    let rsp = peer.response();
    assert_eq!(rsp.command_field, field::C_ECHO_RSP);
    assert_eq!(rsp.status, Some(0));
    peer.release();
    gw.assert_unharmed("a plain C-ECHO");
}

/// Levels of nesting in the sequence bombs: far beyond any real object, far below 16 MiB.
const LEVELS: usize = 50_000;
/// Peak RSS the gateway must stay under through every attack (the unit allows 2 GiB).
const RSS_BOUND_KIB: u64 = 200 * 1024;

/// One implicit VR little endian element with a defined length.
fn element(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let mut out = header(group, element, value.len() as u32);
    out.extend_from_slice(value);
    out
}

fn header(group: u16, element: u16, length: u32) -> Vec<u8> {
    let mut out = group.to_le_bytes().to_vec();
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out
}

/// A UID padded to even length, as DICOM wants it.
fn uid(value: &str) -> Vec<u8> {
    let mut out = value.as_bytes().to_vec();
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// `levels` sequences (0008,1115), each an undefined-length SQ holding one undefined-length
/// item holding the next: 16 bytes a level, then the delimiters.
fn undefined_length_bomb(levels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(levels * 32);
    for _ in 0..levels {
        out.extend(header(0x0008, 0x1115, u32::MAX));
        out.extend(header(0xFFFE, 0xE000, u32::MAX));
    }
    for _ in 0..levels {
        out.extend(header(0xFFFE, 0xE00D, 0));
        out.extend(header(0xFFFE, 0xE0DD, 0));
    }
    out
}

/// The same nesting with every length defined: level `d` holds `16 × (levels − d)` bytes.
fn defined_length_bomb(levels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(levels * 16);
    for d in 0..levels {
        let size = 16 * (levels - d) as u32;
        out.extend(header(0x0008, 0x1115, size - 8));
        out.extend(header(0xFFFE, 0xE000, size - 16));
    }
    out
}

const MG: &str = uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION;

fn worklist_contexts() -> [Proposed<'static>; 3] {
    [
        Proposed {
            id: 1,
            abstract_syntax: uids::VERIFICATION,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        },
        Proposed {
            id: 3,
            abstract_syntax: uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        },
        Proposed {
            id: 5,
            abstract_syntax: uids::MODALITY_PERFORMED_PROCEDURE_STEP,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        },
    ]
}

fn storage_contexts() -> [Proposed<'static>; 2] {
    [
        Proposed {
            id: 1,
            abstract_syntax: uids::VERIFICATION,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        },
        Proposed {
            id: 7,
            abstract_syntax: MG,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        },
    ]
}

/// The association still serves: a C-ECHO on it is answered with success.
fn echo_on(peer: &mut RawPeer) {
    let echo = Command {
        command_field: field::C_ECHO_RQ,
        message_id: Some(99),
        affected_sop_class_uid: Some(uids::VERIFICATION.into()),
        ..Default::default()
    };
    peer.send_message(1, &echo, None);
    let rsp = peer.response();
    assert_eq!(
        (rsp.command_field, rsp.status),
        (field::C_ECHO_RSP, Some(0))
    );
}

/// Sends a C-STORE of `data_set` (announced as MG instance `sop_instance_uid`) and returns the
/// response.
fn store(peer: &mut RawPeer, sop_instance_uid: &str, data_set: &[u8]) -> Command {
    let rq = Command {
        command_field: field::C_STORE_RQ,
        message_id: Some(1),
        affected_sop_class_uid: Some(MG.into()),
        affected_sop_instance_uid: Some(sop_instance_uid.into()),
        priority: Some(0),
        has_data_set: true,
        ..Default::default()
    };
    peer.send_message(7, &rq, Some(data_set));
    peer.response()
}

/// The start of an MG data set: SOP class and instance, implicit VR little endian.
fn mg_start(sop_instance_uid: &str) -> Vec<u8> {
    let mut out = element(0x0008, 0x0016, &uid(MG));
    out.extend(element(0x0008, 0x0018, &uid(sop_instance_uid)));
    out
}

/// Study and Series Instance UID, then a 4-byte Pixel Data.
fn mg_end() -> Vec<u8> {
    let mut out = element(0x0020, 0x000D, &uid("1.2.826.0.1.3680043.10.1080.1"));
    out.extend(element(
        0x0020,
        0x000E,
        &uid("1.2.826.0.1.3680043.10.1080.2"),
    ));
    out.extend(element(0x7FE0, 0x0010, &[0, 0, 0, 0]));
    out
}

/// A C-STORE refusal: "cannot understand" (0xCxxx) or "does not match SOP class" (0xA900),
/// nothing stored, one warning naming why.
fn assert_store_refused(gw: &HostileGateway, rsp: &Command, sop_instance_uid: &str, why: &str) {
    let status = rsp.status.expect("a status");
    assert!(
        status & 0xF000 == 0xC000 || status == 0xA900,
        "C-STORE answered {status:#06x} ({:?})",
        rsp.error_comment
    );
    let comment = rsp.error_comment.clone().unwrap_or_default();
    assert!(comment.contains(why), "{comment:?} does not say {why:?}");
    eprintln!("C-STORE refused with {status:#06x}: {comment}");
    let stored =
        gw.state
            .path()
            .join("state/storage")
            .join(appliance::storage::FileStore::relative_path(
                sop_instance_uid,
            ));
    assert!(!stored.exists(), "a refused object was stored");
    let log = gw.log();
    let lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(sop_instance_uid))
        .collect();
    assert_eq!(lines.len(), 1, "one warning for the refusal:\n{log}");
}

#[test]
fn a_c_find_identifier_nesting_50000_undefined_length_sequences_is_refused() {
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(gw.mwl_port, MWL_AET, &worklist_contexts());
    let find = Command {
        command_field: field::C_FIND_RQ,
        message_id: Some(1),
        affected_sop_class_uid: Some(uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into()),
        priority: Some(0),
        has_data_set: true,
        ..Default::default()
    };
    let mut identifier = element(0x0010, 0x0020, b"9434765919");
    identifier.extend(undefined_length_bomb(LEVELS));
    peer.send_message(3, &find, Some(&identifier));
    let rsp = peer.response();
    assert_eq!(rsp.command_field, field::C_FIND_RSP);
    assert_eq!(rsp.status, Some(0xA900), "{:?}", rsp.error_comment);
    assert!(
        rsp.error_comment
            .as_deref()
            .unwrap_or("")
            .contains("nested"),
        "{:?}",
        rsp.error_comment
    );
    echo_on(&mut peer);
    peer.release();
    let log = gw.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains("C-FIND identifier"))
            .count(),
        1,
        "{log}"
    );
    let peak = gw.assert_unharmed("C-FIND undefined-length bomb");
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
}

#[test]
fn an_mpps_n_create_nesting_50000_undefined_length_sequences_is_refused() {
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(gw.mwl_port, MWL_AET, &worklist_contexts());
    let mpps_uid = "1.2.826.0.1.3680043.10.1080.77";
    let create = Command {
        command_field: field::N_CREATE_RQ,
        message_id: Some(1),
        affected_sop_class_uid: Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into()),
        affected_sop_instance_uid: Some(mpps_uid.into()),
        has_data_set: true,
        ..Default::default()
    };
    let mut data_set = element(0x0040, 0x0252, b"IN PROGRESS ");
    data_set.extend(undefined_length_bomb(LEVELS));
    peer.send_message(5, &create, Some(&data_set));
    let rsp = peer.response();
    assert_eq!(rsp.command_field, field::N_CREATE_RSP);
    assert_eq!(rsp.status, Some(0x0106), "{:?}", rsp.error_comment);
    assert!(
        rsp.error_comment
            .as_deref()
            .unwrap_or("")
            .contains("nested"),
        "{:?}",
        rsp.error_comment
    );
    echo_on(&mut peer);
    peer.release();
    let log = gw.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains(mpps_uid))
            .count(),
        1,
        "{log}"
    );
    let peak = gw.assert_unharmed("MPPS N-CREATE undefined-length bomb");
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
}

#[test]
fn a_c_store_declaring_a_4_gib_element_before_pixel_data_is_refused_without_allocating_it() {
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(gw.pacs_port, PACS_AET, &storage_contexts());
    let sop = "1.2.826.0.1.3680043.10.1080.3";
    let mut data_set = mg_start(sop);
    // Manufacturer (0008,0070) declaring 0xFFFFFFF0 bytes, then a few bytes and the end.
    data_set.extend(header(0x0008, 0x0070, 0xFFFF_FFF0));
    data_set.extend(b"ACME");
    data_set.extend(mg_end());
    let rsp = store(&mut peer, sop, &data_set);
    assert_store_refused(&gw, &rsp, sop, "declares");
    echo_on(&mut peer);
    peer.release();
    let peak = gw.assert_unharmed("C-STORE 4 GiB element");
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
}

#[test]
fn a_c_store_nesting_50000_defined_length_sequences_is_refused() {
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(gw.pacs_port, PACS_AET, &storage_contexts());
    let sop = "1.2.826.0.1.3680043.10.1080.4";
    let mut data_set = mg_start(sop);
    data_set.extend(defined_length_bomb(LEVELS));
    data_set.extend(mg_end());
    let rsp = store(&mut peer, sop, &data_set);
    assert_store_refused(&gw, &rsp, sop, "nested");
    echo_on(&mut peer);
    peer.release();
    let peak = gw.assert_unharmed("C-STORE defined-length bomb");
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
}

#[test]
fn a_c_store_nesting_50000_sequences_after_pixel_data_is_refused() {
    // Stored, this object would reach the thumbnailer, which parses the whole file.
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(gw.pacs_port, PACS_AET, &storage_contexts());
    let sop = "1.2.826.0.1.3680043.10.1080.5";
    let mut data_set = mg_start(sop);
    data_set.extend(mg_end());
    // (FFFA,FFFA) Digital Signatures Sequence: an SQ that may follow Pixel Data.
    data_set.extend(header(0xFFFA, 0xFFFA, u32::MAX));
    data_set.extend(header(0xFFFE, 0xE000, u32::MAX));
    data_set.extend(undefined_length_bomb(LEVELS));
    data_set.extend(header(0xFFFE, 0xE00D, 0));
    data_set.extend(header(0xFFFE, 0xE0DD, 0));
    let rsp = store(&mut peer, sop, &data_set);
    assert_store_refused(&gw, &rsp, sop, "nested");
    echo_on(&mut peer);
    peer.release();
    let peak = gw.assert_unharmed("C-STORE bomb after Pixel Data");
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
}
