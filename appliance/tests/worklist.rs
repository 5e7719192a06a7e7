//! Modality Worklist C-FIND driven by dcmtk `findscu -W` (responses extracted to files and read
//! back) and pynetdicom (UTF-8 names, C-CANCEL).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use appliance::worklist;
use common::*;
use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject};
use shared::wire::action::WorklistStatus;

/// Runs `findscu -W` with `keys`; returns every response data set.
fn find(gw: &TestGateway, keys: &[&str]) -> Vec<DefaultDicomObject> {
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = dcmtk("findscu");
    cmd.args(["-W", "-X", "-aet", "MODALITY1", "-aec", MWL_AET])
        .arg("-od")
        .arg(out_dir.path());
    for key in keys {
        cmd.args(["-k", key]);
    }
    let out = cmd.arg("127.0.0.1").arg(gw.mwl_port()).output().unwrap();
    assert!(out.status.success(), "findscu failed: {}", text(&out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| open_file(f).unwrap()).collect()
}

fn value(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("response lacks {tag}"))
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

fn accessions(responses: &[DefaultDicomObject]) -> BTreeSet<String> {
    responses
        .iter()
        .map(|r| value(r, tags::ACCESSION_NUMBER))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn scheduled_gateway() -> TestGateway {
    let gw = TestGateway::start();
    gw.add_item(item("ACC00001", "Smith^Jane", "20261122", "093000"), None);
    gw.add_item(
        item("ACC00002", "SMITHSON^Anne", "20261122", "140000"),
        Some("MAMMO2"),
    );
    gw.add_item(item("ACC00003", "Jones^Mary", "20261123", "080000"), None);
    let mut us = item("ACC00004", "Brown^Sue", "20261122", "100000");
    us.procedure.modality = "US".into();
    gw.add_item(us, None);
    gw.add_item(item("ACC00005", "Smith^Done", "20261122", "090000"), None);
    gw.add_item(item("ACC00006", "Smith^Gone", "20261122", "090000"), None);
    gw.db()
        .write(|txn| {
            // A finished item went through IN PROGRESS: the status machine allows no shortcut.
            worklist::set_status(txn, "ACC00005", WorklistStatus::InProgress)?;
            worklist::set_status(txn, "ACC00005", WorklistStatus::Completed)?;
            worklist::set_status(txn, "ACC00006", WorklistStatus::Discontinued)?;
            worklist::set_status(txn, "ACC00001", WorklistStatus::InProgress)
        })
        .unwrap();
    gw
}

const ACC: &str = "AccessionNumber";
const SPS: &str = "ScheduledProcedureStepSequence[0]";

#[test]
fn every_matching_key() {
    let gw = scheduled_gateway();
    let q = |keys: &[String]| {
        let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
        if !all.iter().any(|k| k.starts_with(ACC)) {
            all.push(ACC);
        }
        accessions(&find(&gw, &all))
    };
    let k = |s: &str| s.to_string();
    let sps = |s: &str| format!("{SPS}.{s}");
    let everyone = set(&["ACC00001", "ACC00002", "ACC00003", "ACC00004"]);

    // Universal: every offered item, never COMPLETED or DISCONTINUED ones.
    assert_eq!(q(&[]), everyone);
    assert_eq!(q(&[k("AccessionNumber=ACC00002")]), set(&["ACC00002"]));
    assert_eq!(q(&[k("AccessionNumber=ACC00005")]), set(&[]));
    assert_eq!(q(&[k("AccessionNumber=ACC0000?")]), everyone);
    assert_eq!(q(&[k("PatientID=9434765903")]), set(&["ACC00003"]));
    // Names: case-insensitive, with * and ?.
    assert_eq!(
        q(&[k("PatientName=smith*")]),
        set(&["ACC00001", "ACC00002"])
    );
    assert_eq!(q(&[k("PatientName=SMITH^J?NE")]), set(&["ACC00001"]));
    assert_eq!(q(&[k("PatientName=*^mary")]), set(&["ACC00003"]));
    assert_eq!(q(&[sps("Modality=US")]), set(&["ACC00004"]));
    assert_eq!(
        q(&[sps("Modality=MG")]),
        set(&["ACC00001", "ACC00002", "ACC00003"])
    );
    // Station: items scheduled on no station are offered to every station.
    assert_eq!(
        q(&[sps("ScheduledStationAETitle=MAMMO1")]),
        set(&["ACC00001", "ACC00003", "ACC00004"])
    );
    assert_eq!(q(&[sps("ScheduledStationAETitle=MAMMO2")]), everyone);
    // Dates: exact, a-b, -b, a-.
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStartDate=20261123")]),
        set(&["ACC00003"])
    );
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStartDate=20261122-20261122")]),
        set(&["ACC00001", "ACC00002", "ACC00004"])
    );
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStartDate=-20261122")]),
        set(&["ACC00001", "ACC00002", "ACC00004"])
    );
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStartDate=20261123-")]),
        set(&["ACC00003"])
    );
    // Times alone, then a date range and a time range combined into one date-time range.
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStartTime=0900-1000")]),
        set(&["ACC00001", "ACC00004"])
    );
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStartTime=-0900")]),
        set(&["ACC00003"])
    );
    assert_eq!(
        q(&[
            sps("ScheduledProcedureStepStartDate=20261122-20261123"),
            sps("ScheduledProcedureStepStartTime=1200-0900"),
        ]),
        set(&["ACC00002", "ACC00003"])
    );
    // Status.
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStatus=SCHEDULED")]),
        set(&["ACC00002", "ACC00003", "ACC00004"])
    );
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStatus=IN PROGRESS")]),
        set(&["ACC00001"])
    );
    assert_eq!(
        q(&[sps("ScheduledProcedureStepStatus=COMPLETED")]),
        set(&[])
    );
    // Keys combine with AND.
    assert_eq!(
        q(&[
            k("PatientName=smith*"),
            sps("ScheduledStationAETitle=MAMMO1")
        ]),
        set(&["ACC00001"])
    );
}

#[test]
fn every_requested_key_is_returned_filled() {
    let gw = TestGateway::start();
    let entry = gw.add_item(
        item("ACC00002", "SMITHSON^Anne", "20261122", "140000"),
        Some("MAMMO2"),
    );
    let keys = [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "ReferringPhysicianName",
        "ScheduledProcedureStepSequence[0].Modality",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
    ];
    let responses = find(&gw, &keys);
    assert_eq!(responses.len(), 1);
    let r = &responses[0];
    assert_eq!(value(r, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(value(r, tags::PATIENT_NAME), "SMITHSON^Anne");
    assert_eq!(value(r, tags::PATIENT_ID), "9434765902");
    assert_eq!(value(r, tags::PATIENT_BIRTH_DATE), "19700101");
    assert_eq!(value(r, tags::PATIENT_SEX), "F");
    assert_eq!(value(r, tags::ACCESSION_NUMBER), "ACC00002");
    assert_eq!(value(r, tags::STUDY_INSTANCE_UID), entry.study_instance_uid);
    assert_eq!(value(r, tags::REQUESTED_PROCEDURE_ID), "ACC00002");
    assert_eq!(
        value(r, tags::REQUESTED_PROCEDURE_DESCRIPTION),
        "Breast screening"
    );
    assert_eq!(value(r, tags::REFERRING_PHYSICIAN_NAME), "");
    let step = &r
        .element(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    assert_eq!(value(step, tags::MODALITY), "MG");
    assert_eq!(value(step, tags::SCHEDULED_STATION_AE_TITLE), "MAMMO2");
    assert_eq!(
        value(step, tags::SCHEDULED_PROCEDURE_STEP_START_DATE),
        "20261122"
    );
    assert_eq!(
        value(step, tags::SCHEDULED_PROCEDURE_STEP_START_TIME),
        "140000"
    );
    assert_eq!(value(step, tags::SCHEDULED_PROCEDURE_STEP_ID), "ACC00002");
    assert_eq!(
        value(step, tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION),
        "Breast screening"
    );
    assert_eq!(
        value(step, tags::SCHEDULED_PROCEDURE_STEP_STATUS),
        "SCHEDULED"
    );
    // The Study Instance UID was made once, with the item: every query returns the same one.
    let again = find(&gw, &["StudyInstanceUID"]);
    assert_eq!(
        value(&again[0], tags::STUDY_INSTANCE_UID),
        entry.study_instance_uid
    );
}

#[test]
fn utf8_names_with_specific_character_set() {
    let gw = TestGateway::start();
    gw.add_item(item("ACC00007", "Ørsted^Zoë", "20261122", "090000"), None);
    gw.add_item(item("ACC00008", "Smith^Jane", "20261122", "090000"), None);
    let v = peer(&["find", "127.0.0.1", &gw.mwl_port(), MWL_AET]);
    assert_eq!(v["final"], 0);
    let matches = v["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "one pending response per match: {v}");
    let orsted = matches
        .iter()
        .find(|m| m["accession"] == "ACC00007")
        .unwrap();
    assert_eq!(orsted["name"], "Ørsted^Zoë");
    assert_eq!(orsted["charset"], "ISO_IR 192");
    // A UTF-8 query key matches too, case-insensitively.
    let v = peer(&[
        "find",
        "127.0.0.1",
        &gw.mwl_port(),
        MWL_AET,
        "--name",
        "ørsted*",
        "--charset",
        "ISO_IR 192",
    ]);
    let matches = v["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{v}");
    assert_eq!(matches[0]["accession"], "ACC00007");
}

#[test]
fn c_cancel_stops_the_pending_responses() {
    let gw = TestGateway::start();
    let total = 2000;
    gw.db()
        .write(|txn| {
            for i in 0..total {
                let e = worklist::WorklistEntry::new(
                    item(&format!("ACC{i:05}"), "Smith^Jane", "20261122", "090000"),
                    None,
                    None,
                )
                .unwrap();
                worklist::insert(txn, &e)?;
            }
            Ok::<_, worklist::WorklistError>(())
        })
        .unwrap();
    let v = peer(&["cancel-find", "127.0.0.1", &gw.mwl_port(), MWL_AET]);
    assert_eq!(v["final"], 0xFE00, "{v}");
    assert!(v["pending"].as_u64().unwrap() < total, "{v}");
    // The association and the server go on working.
    assert_eq!(find(&gw, &["AccessionNumber=ACC00001"]).len(), 1);
}
