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
    peer.echo(1);
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

/// Where an attack goes: one of the two AEs, with a context for C-ECHO (id 1) and one for the
/// attack (id 3).
struct Target {
    aet: &'static str,
    abstract_syntax: &'static str,
}

const WORKLIST: Target = Target {
    aet: MWL_AET,
    abstract_syntax: uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
};
const MPPS: Target = Target {
    aet: MWL_AET,
    abstract_syntax: uids::MODALITY_PERFORMED_PROCEDURE_STEP,
};
const STORAGE: Target = Target {
    aet: PACS_AET,
    abstract_syntax: MG,
};

/// What the gateway must answer: the status, words of the error comment, and a word of the
/// one warning it logs.
struct Refusal {
    status: fn(u16) -> bool,
    comment: &'static str,
    logged: &'static str,
}

/// Sends `command` with `data_set` on a fresh raw association and checks the refusal: the
/// response's status and comment, one warning, the same association still answering C-ECHO,
/// and afterwards the gateway unharmed with its peak RSS bounded.
fn attack(target: Target, command: Command, data_set: &[u8], refusal: Refusal, name: &str) {
    let mut gw = HostileGateway::start();
    let port = if target.aet == MWL_AET {
        gw.mwl_port
    } else {
        gw.pacs_port
    };
    let implicit: &[&str] = &[uids::IMPLICIT_VR_LITTLE_ENDIAN];
    let mut peer = RawPeer::associate(
        port,
        target.aet,
        &[
            Proposed {
                id: 1,
                abstract_syntax: uids::VERIFICATION,
                transfer_syntaxes: implicit,
            },
            Proposed {
                id: 3,
                abstract_syntax: target.abstract_syntax,
                transfer_syntaxes: implicit,
            },
        ],
    );
    peer.send_message(3, &command, Some(data_set));
    let rsp = peer.response();
    assert_eq!(rsp.command_field, command.command_field | 0x8000, "{name}");
    let status = rsp.status.expect("a status");
    let comment = rsp.error_comment.clone().unwrap_or_default();
    assert!(
        (refusal.status)(status),
        "{name}: answered {status:#06x} ({comment:?})"
    );
    assert!(
        comment.contains(refusal.comment),
        "{name}: {comment:?} does not say {:?}",
        refusal.comment
    );
    eprintln!("{name}: refused with {status:#06x}: {comment}");
    // The association goes on.
    peer.echo(1);
    peer.release();
    let log = gw.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(refusal.logged))
        .count();
    assert_eq!(warnings, 1, "{name}: one warning for the refusal:\n{log}");
    if let Some(sop) = &command.affected_sop_instance_uid {
        let stored = gw
            .state
            .path()
            .join("state/storage")
            .join(appliance::storage::FileStore::relative_path(sop));
        assert!(!stored.exists(), "{name}: a refused object was stored");
    }
    let peak = gw.assert_unharmed(name);
    assert!(peak < RSS_BOUND_KIB, "{name}: peak RSS {peak} KiB");
}

fn with_data_set(command_field: u16, sop_class: &str, sop_instance: Option<&str>) -> Command {
    Command {
        command_field,
        message_id: Some(1),
        affected_sop_class_uid: Some(sop_class.into()),
        affected_sop_instance_uid: sop_instance.map(str::to_string),
        priority: (command_field != field::N_CREATE_RQ).then_some(0),
        has_data_set: true,
        ..Default::default()
    }
}

/// A C-STORE of `data_set` as MG instance `sop`, refused with "cannot understand" (0xCxxx)
/// or "does not match SOP class" (0xA900), the comment saying `comment`.
fn store_attack(sop: &'static str, data_set: &[u8], comment: &'static str, name: &str) {
    attack(
        STORAGE,
        with_data_set(field::C_STORE_RQ, MG, Some(sop)),
        data_set,
        Refusal {
            status: |s| s & 0xF000 == 0xC000 || s == 0xA900,
            comment,
            logged: sop,
        },
        name,
    );
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

#[test]
fn a_c_find_identifier_nesting_50000_undefined_length_sequences_is_refused() {
    let mut identifier = element(0x0010, 0x0020, b"9434765919");
    identifier.extend(undefined_length_bomb(LEVELS));
    attack(
        WORKLIST,
        with_data_set(field::C_FIND_RQ, WORKLIST.abstract_syntax, None),
        &identifier,
        Refusal {
            status: |s| s == 0xA900,
            comment: "nested",
            logged: "C-FIND identifier",
        },
        "C-FIND undefined-length bomb",
    );
}

#[test]
fn an_mpps_n_create_nesting_50000_undefined_length_sequences_is_refused() {
    let mpps_uid = "1.2.826.0.1.3680043.10.1080.77";
    let mut data_set = element(0x0040, 0x0252, b"IN PROGRESS ");
    data_set.extend(undefined_length_bomb(LEVELS));
    attack(
        MPPS,
        with_data_set(field::N_CREATE_RQ, MPPS.abstract_syntax, Some(mpps_uid)),
        &data_set,
        Refusal {
            status: |s| s == 0x0106,
            comment: "nested",
            logged: mpps_uid,
        },
        "MPPS N-CREATE undefined-length bomb",
    );
}

#[test]
fn a_c_store_declaring_a_4_gib_element_before_pixel_data_is_refused_without_allocating_it() {
    let sop = "1.2.826.0.1.3680043.10.1080.3";
    let mut data_set = mg_start(sop);
    // Manufacturer (0008,0070) declaring 0xFFFFFFF0 bytes, then a few bytes and the end.
    data_set.extend(header(0x0008, 0x0070, 0xFFFF_FFF0));
    data_set.extend(b"ACME");
    data_set.extend(mg_end());
    store_attack(sop, &data_set, "declares", "C-STORE 4 GiB element");
}

#[test]
fn a_c_store_nesting_50000_defined_length_sequences_is_refused() {
    let sop = "1.2.826.0.1.3680043.10.1080.4";
    let mut data_set = mg_start(sop);
    data_set.extend(defined_length_bomb(LEVELS));
    data_set.extend(mg_end());
    store_attack(sop, &data_set, "nested", "C-STORE defined-length bomb");
}

#[test]
fn a_c_store_nesting_50000_sequences_after_pixel_data_is_refused() {
    // Stored, this object would reach the thumbnailer, which parses the whole file.
    let sop = "1.2.826.0.1.3680043.10.1080.5";
    let mut data_set = mg_start(sop);
    data_set.extend(mg_end());
    // (FFFA,FFFA) Digital Signatures Sequence: an SQ that may follow Pixel Data.
    data_set.extend(header(0xFFFA, 0xFFFA, u32::MAX));
    data_set.extend(header(0xFFFE, 0xE000, u32::MAX));
    data_set.extend(undefined_length_bomb(LEVELS));
    data_set.extend(header(0xFFFE, 0xE00D, 0));
    data_set.extend(header(0xFFFE, 0xE0DD, 0));
    store_attack(sop, &data_set, "nested", "C-STORE bomb after Pixel Data");
}
