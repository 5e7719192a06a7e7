//! MPPS N-CREATE / N-SET driven by pynetdicom: the worklist link, every status code, and
//! arrival order (images before the N-CREATE).

mod common;

use appliance::mpps::{self, MppsStatus};
use common::*;
use serde_json::{json, Value};
use shared::wire::action::WorklistStatus;

fn run(gw: &TestGateway, ops: Value) -> Vec<Value> {
    let v = peer(&[
        "mpps",
        "127.0.0.1",
        &gw.mwl_port(),
        MWL_AET,
        &ops.to_string(),
    ]);
    v["results"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{v}"))
}

fn statuses(results: &[Value]) -> Vec<u64> {
    results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

#[test]
fn create_then_complete_links_and_finishes_the_item() {
    let gw = TestGateway::start();
    gw.add_item(item("ACC00001", "Smith^Jane", "20261122", "093000"), None);
    let r = run(
        &gw,
        json!([{"op": "create", "uid": "1.2.826.0.1.1", "accession": "ACC00001"}]),
    );
    assert_eq!(statuses(&r), [0]);
    let entry = gw.item("ACC00001");
    assert_eq!(entry.status, WorklistStatus::InProgress);
    assert_eq!(entry.mpps_instance_uid.as_deref(), Some("1.2.826.0.1.1"));

    let r = run(
        &gw,
        json!([{"op": "set", "uid": "1.2.826.0.1.1", "status": "COMPLETED"}]),
    );
    assert_eq!(statuses(&r), [0]);
    assert_eq!(gw.item("ACC00001").status, WorklistStatus::Completed);
    let record = mpps::get(gw.db(), "1.2.826.0.1.1").unwrap().unwrap();
    assert_eq!(record.status, MppsStatus::Completed);
    assert_eq!(record.linked_accession.as_deref(), Some("ACC00001"));
    // The MPPS data set is kept, with the N-SET's attributes merged in.
    let bytes = mpps::data_set(gw.db(), "1.2.826.0.1.1").unwrap().unwrap();
    let obj = dicom_object::InMemDicomObject::read_dataset_with_ts(
        bytes.as_slice(),
        &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    let get = |tag| {
        obj.element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .to_string()
    };
    use dicom_dictionary_std::tags;
    assert_eq!(get(tags::PERFORMED_PROCEDURE_STEP_STATUS), "COMPLETED");
    assert_eq!(get(tags::PERFORMED_PROCEDURE_STEP_END_TIME), "094500");
    assert_eq!(get(tags::PERFORMED_STATION_AE_TITLE), "MODALITY1");
    // A finished item leaves the worklist.
    assert!(!gw.item("ACC00001").is_offered());
}

#[test]
fn discontinued_step_discontinues_the_item() {
    let gw = TestGateway::start();
    gw.add_item(item("ACC00002", "Smith^Jane", "20261122", "093000"), None);
    let r = run(
        &gw,
        json!([
            {"op": "create", "uid": "1.2.826.0.1.2", "accession": "ACC00002"},
            {"op": "set", "uid": "1.2.826.0.1.2", "status": "IN PROGRESS"},
            {"op": "set", "uid": "1.2.826.0.1.2", "status": "DISCONTINUED"}
        ]),
    );
    assert_eq!(statuses(&r), [0, 0, 0]);
    assert_eq!(gw.item("ACC00002").status, WorklistStatus::Discontinued);
}

#[test]
fn every_failure_status() {
    let gw = TestGateway::start();
    gw.add_item(item("ACC00003", "Smith^Jane", "20261122", "093000"), None);
    let r = run(
        &gw,
        json!([
            // 0x0106: N-CREATE must start IN PROGRESS.
            {"op": "create", "uid": "1.2.826.0.3.1", "accession": "ACC00003", "status": "COMPLETED"},
            // 0x0120: status missing, then the scheduled step sequence missing.
            {"op": "create", "uid": "1.2.826.0.3.2", "accession": "ACC00003", "status": null},
            {"op": "create", "uid": "1.2.826.0.3.3", "accession": "ACC00003",
             "omit": ["ScheduledStepAttributesSequence"]},
            // 0x0000 then 0x0111 for the same instance again.
            {"op": "create", "uid": "1.2.826.0.3.4", "accession": "ACC00003"},
            {"op": "create", "uid": "1.2.826.0.3.4", "accession": "ACC00003"},
            // 0x0112: N-SET of an instance nobody created.
            {"op": "set", "uid": "1.2.826.0.3.99", "status": "COMPLETED"},
            // 0x0106: not a Performed Procedure Step Status.
            {"op": "set", "uid": "1.2.826.0.3.4", "status": "FINISHED"},
            // 0x0000, then 0x0110: a completed step may no longer be updated.
            {"op": "set", "uid": "1.2.826.0.3.4", "status": "COMPLETED"},
            {"op": "set", "uid": "1.2.826.0.3.4", "status": "DISCONTINUED"}
        ]),
    );
    assert_eq!(
        statuses(&r),
        [0x0106, 0x0120, 0x0120, 0, 0x0111, 0x0112, 0x0106, 0, 0x0110]
    );
    assert_eq!(gw.item("ACC00003").status, WorklistStatus::Completed);
}

#[test]
fn images_before_the_n_create_do_not_lose_the_link() {
    let gw = TestGateway::start();
    gw.add_item(item("ACC00004", "Smith^Jane", "20261122", "093000"), None);
    // The modality sends its images first…
    let work = tempfile::tempdir().unwrap();
    let made = peer(&[
        "make-mg",
        "--out",
        work.path().to_str().unwrap(),
        "--count",
        "2",
        "--rows",
        "64",
        "--cols",
        "52",
        "--accession",
        "ACC00004",
    ]);
    let files: Vec<&str> = made["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let out = dcmtk("storescu")
        .args(["-v", "-aet", "MODALITY1", "-aec", PACS_AET, "127.0.0.1"])
        .arg(gw.pacs_port())
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let entry = gw.item("ACC00004");
    assert_eq!(entry.status, WorklistStatus::InProgress);
    assert_eq!(entry.mpps_instance_uid, None);
    // …then the N-CREATE, which must still link, and the N-SET, which must complete the item.
    let r = run(
        &gw,
        json!([
            {"op": "create", "uid": "1.2.826.0.4.1", "accession": "ACC00004"},
            {"op": "set", "uid": "1.2.826.0.4.1", "status": "COMPLETED"}
        ]),
    );
    assert_eq!(statuses(&r), [0, 0]);
    let entry = gw.item("ACC00004");
    assert_eq!(entry.mpps_instance_uid.as_deref(), Some("1.2.826.0.4.1"));
    assert_eq!(entry.status, WorklistStatus::Completed);
}

#[test]
fn unscheduled_steps_and_scp_assigned_uids() {
    let gw = TestGateway::start();
    // No worklist item has this accession: the step is still recorded and can complete.
    let r = run(
        &gw,
        json!([
            {"op": "create", "uid": "1.2.826.0.5.1", "accession": "NOT_SCHEDULED"},
            {"op": "set", "uid": "1.2.826.0.5.1", "status": "COMPLETED"}
        ]),
    );
    assert_eq!(statuses(&r), [0, 0]);
    let record = mpps::get(gw.db(), "1.2.826.0.5.1").unwrap().unwrap();
    assert_eq!(record.linked_accession, None);
    assert_eq!(record.accession_numbers, ["NOT_SCHEDULED"]);
    // An N-CREATE without an instance UID gets one from the gateway, named in the response.
    let r = run(&gw, json!([{"op": "create", "accession": ""}]));
    assert_eq!(statuses(&r), [0]);
    let uid = r[0]["uid"].as_str().expect("uid in the N-CREATE response");
    assert!(uid.starts_with("2.25."), "{uid}");
    assert!(mpps::get(gw.db(), uid).unwrap().is_some());
}
