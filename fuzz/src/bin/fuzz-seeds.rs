//! Writes the initial seeds of every target into `<dir>/<target>/`: real messages the gateway
//! and its peers exchange, made by the gateway's own code (and dcmtk's and GDCM's encoders for
//! the compressed pixel data, when installed). `make fuzz` starts from the saved corpus, which
//! began as these seeds; run `cargo run -p fuzz --bin fuzz-seeds -- DIR` to make them again.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use appliance::dimse::message::Context;
use appliance::dimse::{data_set, field, message_pdus, Command};
use appliance::modality::images::{mammogram, Subject, SCREENING_VIEWS};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{open_file, FileMetaTableBuilder, InMemDicomObject};
use dicom_ul::pdu::write_pdu;
use shared::relay::sas::Token;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz-seeds DIR"));
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut seeds = Seeds { dir, count: 0 };

    let commands = commands();
    for (i, command) in commands.iter().enumerate() {
        seeds.put("command", &format!("command-{i}"), &command.encode());
    }

    let subject = Subject {
        patient_id: "9434765919".into(),
        patient_name: "SMITH^JANE".into(),
        birth_date: "19700101".into(),
        sex: "F".into(),
        accession_number: "ACC1".into(),
        study_instance_uid: "2.25.1".into(),
        study_description: "Screening mammography".into(),
    };
    let image = mammogram(&subject, "2.25.2", SCREENING_VIEWS[0], 1, 16, 12);
    let data_sets = [
        ("identifier", worklist_identifier()),
        ("mpps", mpps()),
        ("image", image.clone()),
    ];
    for (selector, ts) in [
        uids::IMPLICIT_VR_LITTLE_ENDIAN,
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        "1.2.840.10008.1.2.2",
    ]
    .into_iter()
    .enumerate()
    {
        let context = context(ts);
        for (name, obj) in &data_sets {
            let bytes = data_set::encode(&context, obj).expect("encodes");
            let mut input = vec![selector as u8];
            input.extend_from_slice(&bytes);
            seeds.put("data_set", &format!("{name}-{selector}"), &input);
            // lengths: the same selector, pieces of 7 bytes.
            let mut input = vec![selector as u8, 7];
            input.extend_from_slice(&bytes);
            seeds.put("lengths", &format!("{name}-{selector}"), &input);
        }
    }

    // P-DATA streams: an echo, a C-FIND with its identifier, an N-CREATE with its attributes,
    // a C-STORE, each whole and split at a 1 KiB peer maximum.
    let explicit = context(uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let implicit = context(uids::IMPLICIT_VR_LITTLE_ENDIAN);
    let big = context("1.2.840.10008.1.2.2");
    let messages = [
        ("echo", 1, commands[0].clone(), None),
        (
            "find",
            3,
            commands[1].clone(),
            Some(data_set::encode(&explicit, &worklist_identifier()).unwrap()),
        ),
        (
            "ncreate",
            5,
            commands[3].clone(),
            Some(data_set::encode(&implicit, &mpps()).unwrap()),
        ),
        (
            "store",
            7,
            commands[2].clone(),
            Some(data_set::encode(&big, &image).unwrap()),
        ),
    ];
    for (name, id, command, data) in &messages {
        for peer_max in [0, 1024] {
            let mut stream = Vec::new();
            for pdu in message_pdus(*id, command, data.as_deref(), peer_max) {
                write_pdu(&mut stream, &pdu).expect("writes");
            }
            seeds.put("pdv", &format!("{name}-{peer_max}"), &stream);
        }
    }

    for (i, (resource, expiry)) in [
        (
            "sb://gateway.servicebus.windows.net/gateway-01",
            1_700_000_600,
        ),
        ("https://gateway.servicebus.windows.net/", 4_000_000_000u64),
        (
            "http%3a%2f%2fgateway.servicebus.windows.net%2fgateway-01",
            0,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let token = Token::sign(resource, "RootManageSharedAccessKey", "primary-key", expiry);
        seeds.put("sas", &format!("token-{i}"), token.as_str().as_bytes());
    }

    for (name, text) in WIRE {
        seeds.put("wire", name, text.as_bytes());
    }

    thumbnail_seeds(&mut seeds, scratch.path(), image);
    eprintln!("wrote {} seeds under {}", seeds.count, seeds.dir.display());
}

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("creates the seed directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("writes a seed");
        self.count += 1;
    }
}

fn context(ts: &str) -> Context {
    Context {
        id: 1,
        abstract_syntax: uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into(),
        transfer_syntax: ts.into(),
    }
}

fn commands() -> Vec<Command> {
    let request = |field, class: &str, data| Command {
        command_field: field,
        message_id: Some(7),
        affected_sop_class_uid: Some(class.into()),
        has_data_set: data,
        ..Command::default()
    };
    let echo = request(field::C_ECHO_RQ, uids::VERIFICATION, false);
    let find = Command {
        priority: Some(0),
        ..request(
            field::C_FIND_RQ,
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            true,
        )
    };
    let store = Command {
        affected_sop_instance_uid: Some("2.25.3".into()),
        priority: Some(0),
        ..request(
            field::C_STORE_RQ,
            uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            true,
        )
    };
    let create = Command {
        affected_sop_instance_uid: Some("2.25.4".into()),
        ..request(
            field::N_CREATE_RQ,
            uids::MODALITY_PERFORMED_PROCEDURE_STEP,
            true,
        )
    };
    let set = Command {
        command_field: field::N_SET_RQ,
        message_id: Some(8),
        requested_sop_class_uid: Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into()),
        requested_sop_instance_uid: Some("2.25.4".into()),
        has_data_set: true,
        ..Command::default()
    };
    let cancel = Command {
        command_field: field::C_CANCEL_RQ,
        message_id_being_responded_to: Some(7),
        ..Command::default()
    };
    let mut failed = Command::response_to(&store, field::C_STORE_RSP, 0xA700);
    failed.error_comment = Some("out of resources: the store's disk is full".into());
    vec![echo, find, store, create, set, cancel, failed]
}

fn text(s: &str) -> PrimitiveValue {
    PrimitiveValue::from(s.to_string())
}

/// A modality's worklist query: return keys, one nested in the scheduled step sequence.
fn worklist_identifier() -> InMemDicomObject {
    let mut step = InMemDicomObject::new_empty();
    step.put(DataElement::new(tags::MODALITY, VR::CS, text("MG")));
    step.put(DataElement::new(
        tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
        VR::DA,
        text("20261122-20261123"),
    ));
    step.put(DataElement::new(
        tags::SCHEDULED_STATION_AE_TITLE,
        VR::AE,
        text("MODALITY"),
    ));
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, text("")));
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, text("")));
    obj.put(DataElement::new(tags::ACCESSION_NUMBER, VR::SH, text("")));
    obj.put(DataElement::new(
        tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![step]),
    ));
    obj
}

/// An MPPS N-CREATE's attributes.
fn mpps() -> InMemDicomObject {
    let mut attribute = InMemDicomObject::new_empty();
    attribute.put(DataElement::new(
        tags::ACCESSION_NUMBER,
        VR::SH,
        text("ACC1"),
    ));
    attribute.put(DataElement::new(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        text("2.25.1"),
    ));
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::PERFORMED_PROCEDURE_STEP_STATUS,
        VR::CS,
        text("IN PROGRESS"),
    ));
    obj.put(DataElement::new(
        tags::PATIENT_ID,
        VR::LO,
        text("9434765919"),
    ));
    obj.put(DataElement::new(
        tags::SCHEDULED_STEP_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![attribute]),
    ));
    obj
}

/// Envelopes as the cloud and the gateway send them (unsigned: the `wire` target signs them).
const WIRE: [(&str, &str); 7] = [
    (
        "create-item",
        r#"{"schema_version":1,"action_id":"5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7a","action_type":"worklist.create_item","timestamp":"2026-11-22T09:30:00.123456+00:00","source_system":"manage-breast-screening","target_gateway":"gw-1","expires_at":"2026-11-22T09:45:00Z","source_reference":{"appointment_id":"a1","participant_id":"p1"},"parameters":{"worklist_item":{"accession_number":"ACC20261122ab12","participant":{"nhs_number":"9434765919","name":"SMITH^JANE","birth_date":"19700101","sex":"F"},"scheduled":{"date":"20261122","time":"093000"},"procedure":{"modality":"MG","study_description":"Screening mammography"}}}}"#,
    ),
    (
        "update-status",
        r#"{"schema_version":1,"action_id":"5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7b","action_type":"worklist.update_status","timestamp":"2026-11-22T09:30:00Z","source_system":"cloud","parameters":{"accession_number":"A","status":"IN_PROGRESS"}}"#,
    ),
    (
        "cancel-item",
        r#"{"schema_version":1,"action_id":"5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7c","action_type":"worklist.cancel_item","timestamp":"2026-11-22T09:30:00Z","source_system":"cloud","parameters":{"accession_number":"A","reason":"participant left"}}"#,
    ),
    (
        "echo",
        r#"{"schema_version":1,"action_id":"5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7d","action_type":"echo","timestamp":"2026-11-22T09:30:00Z","source_system":"cloud","parameters":{"probe":[1,2.5,"x",null,{"deep":true}]}}"#,
    ),
    (
        "mpps-event",
        r#"{"schema_version":1,"event_id":"0b6a1f9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b","timestamp":"2026-11-22T10:00:00Z","event_type":"mpps.status_update","source_system":"gateway-mwl","data":{"action_id":null,"accession_number":"ACC1","status":"IN PROGRESS","mpps_instance_uid":"1.2.3"}}"#,
    ),
    (
        "validation-failed",
        r#"{"schema_version":1,"event_id":"0b6a1f9e-1c2d-4e5f-8a9b-0c1d2e3f4a5c","timestamp":"2026-11-22T10:00:00Z","event_type":"image.validation_failed","source_system":"gw-1","data":{"action_id":null,"accession_number":"ACC1","sop_instance_uid":null,"calling_ae_title":"MODALITY","reason":"no SOP Instance UID"}}"#,
    ),
    (
        "replies",
        r#"{"schema_version":1,"action_id":"5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7a","event_id":"0b6a1f9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b","status":"accepted","outcome":"created","message":"ok"}"#,
    ),
];

/// Thumbnail inputs: the synthetic mammogram native, and compressed by each encoder installed.
/// Writes a mammogram data set as a Part 10 file in explicit VR little endian.
fn write_mammogram(obj: InMemDicomObject, sop: &str, path: &Path) {
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(
                uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            )
            .media_storage_sop_instance_uid(sop),
    )
    .expect("a file meta table")
    .write_to_file(path)
    .unwrap_or_else(|e| panic!("writes {}: {e}", path.display()));
}

fn thumbnail_seeds(seeds: &mut Seeds, scratch: &Path, image: InMemDicomObject) {
    let sop = "2.25.42";
    let mut image = image;
    image.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, text(sop)));
    let plain = scratch.join("plain.dcm");
    write_mammogram(image, sop, &plain);
    let mut files = vec![("native".to_string(), plain.clone())];
    let encoders: [(&str, &str, &[&str]); 5] = [
        ("rle", "dcmcrle", &[]),
        ("jpeg-sv1", "dcmcjpeg", &["+e1"]),
        ("jpeg-lossless", "dcmcjpeg", &["+el"]),
        ("j2k", "gdcmconv", &["--j2k"]),
        ("j2k-lossy", "gdcmconv", &["--j2k", "--lossy", "-q", "30"]),
    ];
    for (name, tool, args) in encoders {
        let out = scratch.join(format!("{name}.dcm"));
        match Process::new(tool).args(args).arg(&plain).arg(&out).output() {
            Ok(o) if o.status.success() => files.push((name.to_string(), out)),
            Ok(o) => eprintln!(
                "{tool} {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("{tool} not run ({e}): no {name} seed"),
        }
    }
    // Two frames, for the first-frame reader's offset-table paths (stored_file only).
    let two = scratch.join("two-frames.dcm");
    let mut obj = open_file(&plain).expect("reads back").into_inner();
    let mut frames = obj
        .element(tags::PIXEL_DATA)
        .expect("pixel data")
        .to_multi_int::<u16>()
        .expect("16-bit samples");
    frames.extend(frames.clone().iter().map(|v| 4095 - v));
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, text("2")));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(frames.into()),
    ));
    write_mammogram(obj, sop, &two);
    seeds.put(
        "stored_file",
        "two-frames",
        &std::fs::read(&two).expect("reads it"),
    );
    for (name, tool, args) in [
        ("two-frames-rle", "dcmcrle", &[][..]),
        ("two-frames-jpeg-lossless", "dcmcjpeg", &["+el"][..]),
    ] {
        let out = scratch.join(format!("{name}.dcm"));
        match Process::new(tool).args(args).arg(&two).arg(&out).output() {
            Ok(o) if o.status.success() => {
                seeds.put("stored_file", name, &std::fs::read(&out).expect("reads it"))
            }
            _ => eprintln!("{tool} failed: no {name} seed"),
        }
    }
    // An 8-bit one for the baseline JPEG decoder.
    let baseline = scratch.join("jpeg-baseline.dcm");
    let eight = scratch.join("eight.dcm");
    let mut obj = open_file(&plain).expect("reads back").into_inner();
    let pixels: Vec<u8> = obj
        .element(tags::PIXEL_DATA)
        .expect("pixel data")
        .to_multi_int::<u16>()
        .expect("16-bit samples")
        .iter()
        .map(|v| (v >> 4) as u8)
        .collect();
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(8u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(8u16),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(7u16),
    ));
    obj.remove_element(tags::WINDOW_CENTER);
    obj.remove_element(tags::WINDOW_WIDTH);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixels.into()),
    ));
    write_mammogram(obj, sop, &eight);
    files.push(("native-8bit".into(), eight.clone()));
    match Process::new("dcmcjpeg")
        .args(["+eb"])
        .arg(&eight)
        .arg(&baseline)
        .output()
    {
        Ok(o) if o.status.success() => files.push(("jpeg-baseline".into(), baseline)),
        _ => eprintln!("dcmcjpeg +eb failed: no baseline JPEG seed"),
    }
    for (name, path) in files {
        let bytes = std::fs::read(&path).expect("reads a seed file");
        seeds.put("stored_file", &name, &bytes);
        let object = open_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match fuzz::thumbnail_input(&object) {
            Some(input) => seeds.put("thumbnail", &name, &input),
            None => eprintln!("{name}: transfer syntax not in the thumbnail target's list"),
        }
    }
}
