//! C-ECHO on both AEs with dcmtk `echoscu`, and association-time access control.

mod common;

use common::*;

#[test]
fn echo_answers_on_both_aes() {
    let gw = TestGateway::start();
    assert!(
        echo(&gw.mwl_port(), MWL_AET, "MODALITY1"),
        "echo on the worklist AE"
    );
    assert!(
        echo(&gw.pacs_port(), PACS_AET, "MODALITY1"),
        "echo on the storage AE"
    );
}

#[test]
fn wrong_called_ae_is_rejected() {
    let gw = TestGateway::start();
    assert!(!echo(&gw.mwl_port(), "SOMEONE_ELSE", "MODALITY1"));
    assert!(echo(&gw.mwl_port(), MWL_AET, "MODALITY1"), "still answers");
}

#[test]
fn calling_ae_allow_list_rejects_unknown_aes() {
    let gw = TestGateway::start_with(|c| {
        c.allowed_calling_aets = Some(["HOLOGIC1".to_string()].into_iter().collect());
    });
    let out = dcmtk("echoscu")
        .args([
            "-aet",
            "INTRUDER",
            "-aec",
            MWL_AET,
            "127.0.0.1",
            &gw.mwl_port(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Calling AE Title Not Recognized"),
        "echoscu should report the rejection reason: {}",
        text(&out)
    );
    assert!(!echo(&gw.pacs_port(), PACS_AET, "INTRUDER"));
    assert!(echo(&gw.mwl_port(), MWL_AET, "HOLOGIC1"));
    assert!(echo(&gw.pacs_port(), PACS_AET, "HOLOGIC1"));
}

#[test]
fn source_address_allow_list_rejects_other_hosts() {
    let gw = TestGateway::start_with(|c| {
        c.allowed_source_addresses = Some(["192.0.2.7".parse().unwrap()].into_iter().collect());
    });
    assert!(!echo(&gw.mwl_port(), MWL_AET, "MODALITY1"));

    let gw = TestGateway::start_with(|c| {
        c.allowed_source_addresses = Some(["127.0.0.1".parse().unwrap()].into_iter().collect());
    });
    assert!(echo(&gw.mwl_port(), MWL_AET, "MODALITY1"));
}

#[test]
fn many_associations_at_once() {
    // 16 clients from one address: the per-source cap (8 by default, tested in
    // hostile_limits.rs) is raised so this tests concurrency, not the cap.
    let gw = TestGateway::start_with(|c| c.max_associations_per_source = 16);
    let port = gw.pacs_port();
    let children: Vec<_> = (0..16)
        .map(|i| {
            dcmtk("echoscu")
                .args([
                    "-aet",
                    &format!("SCU{i}"),
                    "-aec",
                    PACS_AET,
                    "127.0.0.1",
                    &port,
                ])
                .args(["--repeat", "5"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn role_selection_items_do_not_break_association() {
    // A ZEISS HFA3 proposing SCU/SCP roles on every context timed out on a dicom-rs SCP
    // (dicom-rs issue 732); pynetdicom proposes the same here.
    let gw = TestGateway::start();
    let v = peer(&["roles", "127.0.0.1", &gw.pacs_port(), PACS_AET]);
    assert_eq!(v["established"], true, "{v}");
    assert_eq!(v["echo"], 0, "{v}");
    assert_eq!(v["store"], 0, "{v}");
    assert_eq!(gw.stored_files().len(), 1);
}
