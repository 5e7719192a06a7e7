//! Study Root Query/Retrieve on the storage AE against real peers: dcmtk's `findscu -S`,
//! `getscu` and `movescu` (with `storescp` as the move destination), and pynetdicom
//! (`tests/peers/qr_peer.py`) for exact statuses, counts and C-CANCEL. Objects stored with
//! `storescu` come back with their data sets byte for byte.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use appliance::forward::Destination;
use common::*;
use dicom_dictionary_std::tags;

const WORKSTATION: &str = "WORKSTATION";
const DEST_AE: &str = "WS_STORE";

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const CT_SERIES: &str = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";
const CT_SOP: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";
/// A second instance of the CT series, made from the sample with `dcmodify`.
const CT_SOP_2: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322.2";
const MR_STUDY: &str = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457";

/// The objects a test stores: the CT sample, a second instance of its series, the MR sample.
fn objects(dir: &Path) -> Vec<PathBuf> {
    let ct2 = dir.join("ct2.dcm");
    std::fs::copy(sample("CT_small.dcm"), &ct2).unwrap();
    let out = dcmtk("dcmodify")
        .args(["-nb", "-m"])
        .arg(format!("SOPInstanceUID={CT_SOP_2}"))
        .args(["-m", "InstanceNumber=2"])
        .arg(&ct2)
        .output()
        .unwrap();
    assert!(out.status.success(), "dcmodify: {}", text(&out));
    vec![sample("CT_small.dcm"), ct2, sample("MR_small_implicit.dcm")]
}

/// A gateway with Q/R for WORKSTATION, moving to `dest_port`, holding the objects (stored with
/// storescu in their own transfer syntaxes).
fn gateway(dir: &Path, dest_port: u16, max_matches: usize) -> TestGateway {
    let gw = TestGateway::start_with(|c| {
        // HOSTILE: `common::hostile::RawPeer`'s calling AE, for the raw C-CANCEL.
        c.query_retrieve.allowed_aets = Some(HashSet::from([
            WORKSTATION.to_string(),
            "HOSTILE".to_string(),
        ]));
        c.query_retrieve.move_destinations =
            vec![Destination::parse(&format!("{DEST_AE}@127.0.0.1:{dest_port}")).unwrap()];
        c.query_retrieve.max_matches = max_matches;
    });
    for file in objects(dir) {
        let out = dcmtk("storescu")
            .args(["-aet", "MODALITY1", "-aec", PACS_AET, "127.0.0.1"])
            .arg(gw.pacs_port())
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "storescu: {}", text(&out));
    }
    gw
}

/// `findscu -S` with `-X`: the response identifiers, as files, read back.
fn findscu(
    gw: &TestGateway,
    calling: &str,
    keys: &[&str],
) -> (Vec<BTreeMap<String, String>>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dcmtk("findscu");
    cmd.current_dir(dir.path())
        .args(["-S", "-X", "-aet", calling, "-aec", PACS_AET, "127.0.0.1"])
        .arg(gw.pacs_port());
    for k in keys {
        cmd.args(["-k", k]);
    }
    let out = cmd.output().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let responses = files
        .iter()
        .map(|f| {
            let obj = dicom_object::open_file(f).unwrap();
            let get = |tag| {
                obj.element(tag)
                    .ok()
                    .and_then(|e| e.to_str().ok())
                    .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            };
            let mut m = BTreeMap::new();
            for (name, tag) in [
                ("study", tags::STUDY_INSTANCE_UID),
                ("series", tags::SERIES_INSTANCE_UID),
                ("sop", tags::SOP_INSTANCE_UID),
                ("name", tags::PATIENT_NAME),
                ("date", tags::STUDY_DATE),
                ("modality", tags::MODALITY),
                ("study_id", tags::STUDY_ID),
                ("instances", tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
                ("instance_number", tags::INSTANCE_NUMBER),
                ("level", tags::QUERY_RETRIEVE_LEVEL),
            ] {
                if let Some(v) = get(tag) {
                    m.insert(name.to_string(), v);
                }
            }
            m
        })
        .collect();
    (responses, text(&out))
}

fn values(responses: &[BTreeMap<String, String>], key: &str) -> BTreeSet<String> {
    responses
        .iter()
        .filter_map(|r| r.get(key).cloned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Runs `qr_peer.py` and parses its JSON line.
fn qr_peer(gw: &TestGateway, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/qr_peer.py");
    let port = gw.pacs_port();
    let output = Command::new(python())
        .arg(script)
        .arg(args[0])
        .args(["127.0.0.1", &port, PACS_AET])
        .args(&args[1..])
        .output()
        .expect("run qr_peer.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "qr_peer.py {args:?} printed no JSON\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The data set of a Part 10 file: everything after its file meta group.
fn data_set_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    bytes[144 + group_length..].to_vec()
}

fn sop_instance_uid(path: &Path) -> String {
    let obj = dicom_object::open_file(path).unwrap();
    obj.meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string()
}

/// Checks that every file in `dir` is one the gateway stored, data set byte for byte, and
/// returns their SOP Instance UIDs.
fn arrived_intact(gw: &TestGateway, dir: &Path) -> BTreeSet<String> {
    let stored = gw.stored_files();
    let mut uids = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let uid = sop_instance_uid(&path);
        let original = stored
            .iter()
            .find(|p| sop_instance_uid(p) == uid)
            .expect("a stored object arrived");
        assert_eq!(data_set_bytes(&path), data_set_bytes(original), "{uid}");
        uids.insert(uid);
    }
    uids
}

#[test]
fn findscu_queries_each_level_with_wildcards_and_date_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), free_port(), 1000);

    let (all, log) = findscu(
        &gw,
        WORKSTATION,
        &[
            "QueryRetrieveLevel=STUDY",
            "StudyInstanceUID",
            "PatientName",
            "StudyDate",
            "StudyID",
            "NumberOfStudyRelatedInstances",
        ],
    );
    assert_eq!(values(&all, "study"), set(&[CT_STUDY, MR_STUDY]), "{log}");
    let ct = all.iter().find(|r| r["study"] == CT_STUDY).unwrap();
    assert_eq!(ct["name"], "CompressedSamples^CT1");
    assert_eq!(ct["date"], "20040119");
    assert_eq!(ct["study_id"], "1CT1");
    assert_eq!(ct["instances"], "2");
    assert_eq!(ct["level"], "STUDY");

    let cases: &[(&[&str], &[&str])] = &[
        (&["PatientName=*MR*"], &[MR_STUDY]),
        (&["PatientName=compressedsamples^c?1"], &[CT_STUDY]),
        (&["StudyDate=20040101-20040630"], &[CT_STUDY]),
        (&["StudyDate=20040601-"], &[MR_STUDY]),
        (&["StudyDate=-20031231"], &[]),
        (
            &[&format!("StudyInstanceUID={MR_STUDY}\\1.2.3")],
            &[MR_STUDY],
        ),
        (&["ModalitiesInStudy=CT"], &[CT_STUDY]),
    ];
    for (keys, want) in cases {
        let mut k = vec!["QueryRetrieveLevel=STUDY", "StudyInstanceUID"];
        k.extend_from_slice(keys);
        let (found, log) = findscu(&gw, WORKSTATION, &k);
        assert_eq!(values(&found, "study"), set(want), "{keys:?}\n{log}");
    }

    let study_key = format!("StudyInstanceUID={CT_STUDY}");
    let (series, log) = findscu(
        &gw,
        WORKSTATION,
        &[
            "QueryRetrieveLevel=SERIES",
            &study_key,
            "SeriesInstanceUID",
            "Modality",
        ],
    );
    assert_eq!(values(&series, "series"), set(&[CT_SERIES]), "{log}");
    assert_eq!(values(&series, "modality"), set(&["CT"]));
    assert_eq!(values(&series, "study"), set(&[CT_STUDY]));

    let series_key = format!("SeriesInstanceUID={CT_SERIES}");
    let (images, log) = findscu(
        &gw,
        WORKSTATION,
        &[
            "QueryRetrieveLevel=IMAGE",
            &study_key,
            &series_key,
            "SOPInstanceUID",
            "InstanceNumber",
        ],
    );
    assert_eq!(values(&images, "sop"), set(&[CT_SOP, CT_SOP_2]), "{log}");
    let (one, _) = findscu(
        &gw,
        WORKSTATION,
        &[
            "QueryRetrieveLevel=IMAGE",
            &study_key,
            &series_key,
            "SOPInstanceUID",
            "InstanceNumber=2",
        ],
    );
    assert_eq!(values(&one, "sop"), set(&[CT_SOP_2]));

    // Hierarchical: a SERIES query without its study is refused (A900), nothing matched.
    let v = qr_peer(
        &gw,
        &["find", "--level", "SERIES", "--key", "SeriesInstanceUID="],
    );
    assert_eq!(v["statuses"], serde_json::json!([0xA900]), "{v}");
    // A key the gateway does not keep: matches continue with a warning (FF01).
    let v = qr_peer(
        &gw,
        &[
            "find",
            "--key",
            &format!("StudyInstanceUID={CT_STUDY}"),
            "ReferringPhysicianName=",
        ],
    );
    assert_eq!(v["statuses"], serde_json::json!([0xFF01, 0]), "{v}");
}

#[test]
fn query_retrieve_is_refused_to_aes_not_listed_and_off_without_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), free_port(), 1000);
    let (found, log) = findscu(
        &gw,
        "STRANGER",
        &["QueryRetrieveLevel=STUDY", "StudyInstanceUID"],
    );
    assert!(found.is_empty(), "{log}");
    let v = qr_peer(
        &gw,
        &[
            "find",
            "--calling",
            "STRANGER",
            "--key",
            "StudyInstanceUID=",
        ],
    );
    assert_eq!(v["statuses"], serde_json::json!([0x0124]), "{v}");
    assert!(
        v["comment"].as_str().unwrap().contains("QR_ALLOWED_AETS"),
        "{v}"
    );
    let study_key = format!("StudyInstanceUID={CT_STUDY}");
    for cmd in ["get", "move"] {
        let v = qr_peer(
            &gw,
            &[
                cmd,
                "--calling",
                "STRANGER",
                "--dest",
                DEST_AE,
                "--key",
                &study_key,
            ],
        );
        assert_eq!(v["statuses"], serde_json::json!([0x0124]), "{cmd}: {v}");
        assert!(v["stored"].as_array().unwrap().is_empty());
    }

    // The source-address allow-list still applies to an AE in QR_ALLOWED_AETS.
    let elsewhere = TestGateway::start_with(|c| {
        c.query_retrieve.allowed_aets = Some(HashSet::from([WORKSTATION.to_string()]));
        c.allowed_source_addresses = Some(HashSet::from(["127.0.0.9".parse().unwrap()]));
    });
    let v = qr_peer(&elsewhere, &["associate"]);
    assert_eq!(v["established"], false, "{v}");

    // Without QR_ALLOWED_AETS the Q/R SOP classes are not even accepted.
    let off = TestGateway::start();
    let v = qr_peer(&off, &["associate"]);
    let accepted: Vec<&str> = v["accepted"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    assert!(
        !accepted
            .iter()
            .any(|c| c.starts_with("1.2.840.10008.5.1.4.1.2.2")),
        "{v}"
    );
}

#[test]
fn getscu_fetches_a_study_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), free_port(), 1000);
    let received = tempfile::tempdir().unwrap();
    let out = dcmtk("getscu")
        .args(["-S", "-aet", WORKSTATION, "-aec", PACS_AET, "-od"])
        .arg(received.path())
        .args(["+B", "127.0.0.1"])
        .arg(gw.pacs_port())
        .args(["-k", "QueryRetrieveLevel=STUDY", "-k"])
        .arg(format!("StudyInstanceUID={CT_STUDY}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "getscu: {}", text(&out));
    assert_eq!(
        arrived_intact(&gw, received.path()),
        set(&[CT_SOP, CT_SOP_2]),
        "{}",
        text(&out)
    );

    // Counts and final status, from pynetdicom: two pending, then success with 2 completed.
    let v = qr_peer(
        &gw,
        &["get", "--key", &format!("StudyInstanceUID={CT_STUDY}")],
    );
    assert_eq!(v["statuses"], serde_json::json!([0xFF00, 0xFF00, 0]), "{v}");
    assert_eq!(v["completed"], 2, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["stored"].as_array().unwrap().len(), 2);

    // Without the SCP role nothing can be sent: A702, every instance in the failed list.
    let v = qr_peer(
        &gw,
        &[
            "get",
            "--no-role",
            "--key",
            &format!("StudyInstanceUID={CT_STUDY}"),
        ],
    );
    assert_eq!(
        v["statuses"],
        serde_json::json!([0xFF00, 0xFF00, 0xA702]),
        "{v}"
    );
    assert_eq!(v["failed"], 2, "{v}");
    let failed = v["identifiers"][0]["FailedSOPInstanceUIDList"]
        .as_str()
        .unwrap();
    assert!(failed.contains(CT_SOP) && failed.contains(CT_SOP_2), "{v}");
    assert!(v["stored"].as_array().unwrap().is_empty());
    // A retrieve must name what it wants: an empty Study Instance UID is not "everything".
    let v = qr_peer(&gw, &["get", "--key", "StudyInstanceUID="]);
    assert_eq!(v["statuses"], serde_json::json!([0xA900]), "{v}");
    assert!(v["stored"].as_array().unwrap().is_empty());

    // A C-CANCEL sent while the first object is being stored: the rest is not sent (FE00).
    let v = qr_peer(
        &gw,
        &[
            "get-cancel",
            "--key",
            &format!("StudyInstanceUID={CT_STUDY}"),
        ],
    );
    assert_eq!(
        v["statuses"].as_array().unwrap().last(),
        Some(&serde_json::json!(0xFE00)),
        "{v}"
    );
    assert_eq!(v["stored"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["completed"], 1, "{v}");
    assert_eq!(v["remaining"], 1, "{v}");
}

#[test]
fn movescu_sends_a_study_to_a_listed_destination_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dest_port = free_port();
    let gw = gateway(dir.path(), dest_port, 1000);
    let received = tempfile::tempdir().unwrap();
    let log = dir.path().join("storescp.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let _dest = Server(
        dcmtk("storescp")
            .args(["-v", "-B", "-aet", DEST_AE, "-od"])
            .arg(received.path())
            .arg(dest_port.to_string())
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("storescp runs"),
    );
    // storescp listens once it answers an echo.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !echo(&dest_port.to_string(), DEST_AE, "PROBE") {
        assert!(
            std::time::Instant::now() < deadline,
            "storescp did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let out = dcmtk("movescu")
        .args([
            "-S",
            "-aet",
            WORKSTATION,
            "-aec",
            PACS_AET,
            "-aem",
            DEST_AE,
            "127.0.0.1",
        ])
        .arg(gw.pacs_port())
        .args(["-k", "QueryRetrieveLevel=STUDY", "-k"])
        .arg(format!("StudyInstanceUID={CT_STUDY}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "movescu: {}", text(&out));
    assert_eq!(
        arrived_intact(&gw, received.path()),
        set(&[CT_SOP, CT_SOP_2]),
        "{}\n{}",
        text(&out),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let study_key = format!("StudyInstanceUID={MR_STUDY}");
    let v = qr_peer(&gw, &["move", "--dest", DEST_AE, "--key", &study_key]);
    assert_eq!(v["statuses"], serde_json::json!([0xFF00, 0]), "{v}");
    assert_eq!(v["completed"], 1, "{v}");

    let v = qr_peer(&gw, &["move", "--dest", "NOWHERE", "--key", &study_key]);
    assert_eq!(v["statuses"], serde_json::json!([0xA801]), "{v}");
    let out = dcmtk("movescu")
        .args([
            "-S",
            "-aet",
            WORKSTATION,
            "-aec",
            PACS_AET,
            "-aem",
            "NOWHERE",
            "127.0.0.1",
        ])
        .arg(gw.pacs_port())
        .args(["-k", "QueryRetrieveLevel=STUDY", "-k", &study_key])
        .output()
        .unwrap();
    let said = text(&out).to_lowercase();
    assert!(
        said.contains("a801")
            || said.contains("destination unknown")
            || said.contains("movedestinationunknown"),
        "{said}"
    );
}

#[test]
fn the_match_cap_ends_a_find_with_a700() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), free_port(), 1);
    let v = qr_peer(&gw, &["find", "--key", "StudyInstanceUID="]);
    assert_eq!(v["statuses"], serde_json::json!([0xFF00, 0xA700]), "{v}");
    assert!(
        v["comment"].as_str().unwrap().contains("QR_MAX_MATCHES"),
        "{v}"
    );
}

/// A C-FIND and its C-CANCEL written in one go over a raw association, so the cancel is there
/// before the gateway sends its first response: it answers FE00 and nothing else.
#[test]
fn a_cancel_stops_a_find() {
    use appliance::dimse::{data_set, field, Command, Context};
    use common::hostile::{p_data, Proposed, RawPeer};
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;

    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), free_port(), 1000);
    let find_class = uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND;
    let port: u16 = gw.pacs_port().parse().unwrap();
    let mut peer = RawPeer::associate(
        port,
        PACS_AET,
        &[Proposed {
            id: 1,
            abstract_syntax: find_class,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        }],
    );
    let mut identifier = dicom_object::InMemDicomObject::new_empty();
    identifier.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from("STUDY"),
    ));
    identifier.put(DataElement::empty(tags::STUDY_INSTANCE_UID, VR::UI));
    let context = Context {
        id: 1,
        abstract_syntax: find_class.into(),
        transfer_syntax: uids::IMPLICIT_VR_LITTLE_ENDIAN.into(),
    };
    let find = Command {
        command_field: field::C_FIND_RQ,
        message_id: Some(5),
        affected_sop_class_uid: Some(find_class.into()),
        priority: Some(0),
        has_data_set: true,
        ..Default::default()
    };
    let cancel = Command {
        command_field: field::C_CANCEL_RQ,
        message_id_being_responded_to: Some(5),
        ..Default::default()
    };
    let mut bytes = p_data(1, true, true, &find.encode());
    bytes.extend(p_data(
        1,
        false,
        true,
        &data_set::encode(&context, &identifier).unwrap(),
    ));
    bytes.extend(p_data(1, true, true, &cancel.encode()));
    peer.send(&bytes);
    let rsp = peer.response();
    assert_eq!(rsp.command_field, field::C_FIND_RSP);
    assert_eq!(rsp.status, Some(0xFE00), "{rsp:?}");
    peer.release();
}

/// Not a check, a measurement (run with `--ignored --nocapture`): C-FIND against an index of
/// 20,000 instances in 2,000 studies, inserted directly, as `findscu` sees it.
#[test]
#[ignore]
fn measure_find_over_a_large_index() {
    use appliance::storage::index::{self, DataSetFacts, InstanceRecord};
    let gw = TestGateway::start_with(|c| {
        c.query_retrieve.allowed_aets = Some(HashSet::from([WORKSTATION.to_string()]));
        c.query_retrieve.max_matches = 5000;
    });
    let (studies, per_study) = (2000, 10);
    gw.db()
        .write(|txn| {
            for s in 0..studies {
                for i in 0..per_study {
                    let record = InstanceRecord {
                        sop_instance_uid: format!("2.25.{s}.1.{i}"),
                        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.2".into(),
                        series_instance_uid: format!("2.25.{s}.1"),
                        study_instance_uid: format!("2.25.{s}"),
                        data_set: DataSetFacts {
                            patient_name: Some(format!("PATIENT^{s}")),
                            patient_id: Some(format!("{s:010}")),
                            modality: Some("MG".into()),
                            study_date: Some(format!("2026{:02}{:02}", 1 + s % 12, 1 + s % 28)),
                            ..DataSetFacts::default()
                        },
                        transfer_syntax: "1.2.840.10008.1.2.1".into(),
                        file_path: String::new(),
                        file_size: 0,
                        file_sha256: String::new(),
                        received_at: String::new(),
                        calling_ae: String::new(),
                    };
                    index::insert(txn, &record, None, None)?;
                }
            }
            Ok::<_, appliance::db::DbError>(())
        })
        .unwrap();
    let cases: [(&str, &[&str]); 3] = [
        (
            "every study",
            &[
                "QueryRetrieveLevel=STUDY",
                "StudyInstanceUID",
                "PatientName",
            ],
        ),
        (
            "one study by UID",
            &["QueryRetrieveLevel=STUDY", "StudyInstanceUID=2.25.1234"],
        ),
        (
            "a date range",
            &[
                "QueryRetrieveLevel=STUDY",
                "StudyInstanceUID",
                "StudyDate=20260301-20260331",
            ],
        ),
    ];
    for (what, keys) in cases {
        let started = std::time::Instant::now();
        let (found, log) = findscu(&gw, WORKSTATION, keys);
        let ms = started.elapsed().as_millis();
        assert!(!found.is_empty(), "{log}");
        println!(
            "C-FIND {what}: {} matches in {ms} ms (findscu, debug build, {} instances)",
            found.len(),
            studies * per_study
        );
    }
}
