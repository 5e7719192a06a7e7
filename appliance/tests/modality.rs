//! The built-in modality emulator against the real gateway, checked through the gateway's own
//! state; and through the `gateway emulate-modality` command line.

mod common;

use appliance::cloud::outbox;
use appliance::modality::{self, Options};
use appliance::worklist;
use shared::wire::action::WorklistStatus;

fn options(gateway: &common::TestGateway, accession: &str) -> Options {
    Options {
        mwl: format!("127.0.0.1:{}", gateway.mwl_port()),
        mwl_aet: common::MWL_AET.into(),
        pacs: format!("127.0.0.1:{}", gateway.pacs_port()),
        pacs_aet: common::PACS_AET.into(),
        calling_aet: "MODALITY_EMU".into(),
        accession: Some(accession.into()),
        patient_id: None,
        rows: 600,
        columns: 488,
        discontinue: false,
    }
}

#[test]
fn a_full_procedure_completes_the_item_and_queues_its_events() {
    let gateway = common::TestGateway::start();
    gateway.add_item(
        common::item("ACCEMU1", "SMITH^JANE", "20261122", "093000"),
        None,
    );
    gateway.add_item(
        common::item("ACCEMU2", "JONES^ANN", "20261122", "094000"),
        None,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut lines = Vec::new();
    let report = runtime
        .block_on(modality::run(&options(&gateway, "ACCEMU1"), |l| {
            lines.push(l.to_string())
        }))
        .unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert_eq!(report.accession_number, "ACCEMU1");
    assert_eq!(report.stored_sop_instance_uids.len(), 4);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("C-FIND: 1 worklist item")),
        "{lines:?}"
    );

    let item = gateway.item("ACCEMU1");
    assert_eq!(item.status, WorklistStatus::Completed);
    assert_eq!(
        item.mpps_instance_uid.as_deref(),
        Some(report.mpps_instance_uid.as_str())
    );
    assert_eq!(gateway.item("ACCEMU2").status, WorklistStatus::Scheduled);
    assert_eq!(gateway.stored_files().len(), 4);

    // Events wait for the cloud: two MPPS changes now, four images once thumbnailed.
    let db = gateway.db();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while outbox::stats(db).unwrap().depth < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            outbox::stats(db)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = worklist::get(db, "ACCEMU1");
}

#[test]
fn the_command_line_reports_each_step_and_fails_without_an_item() {
    let gateway = common::TestGateway::start();
    gateway.add_item(
        common::item("ACCCLI1", "SMITH^JANE", "20261122", "093000"),
        None,
    );
    let gateway_bin = env!("CARGO_BIN_EXE_gateway");
    let run = |accession: &str, extra: &[&str]| {
        std::process::Command::new(gateway_bin)
            .args([
                "emulate-modality",
                "--mwl",
                &format!("127.0.0.1:{}", gateway.mwl_port()),
            ])
            .args([
                "--mwl-aet",
                common::MWL_AET,
                "--pacs",
                &format!("127.0.0.1:{}", gateway.pacs_port()),
            ])
            .args([
                "--pacs-aet",
                common::PACS_AET,
                "--accession",
                accession,
                "--rows",
                "300",
                "--cols",
                "244",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = run("ACCCLI1", &["--discontinue"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{}", common::text(&ok));
    for step in [
        "C-FIND: 1",
        "MPPS N-CREATE",
        "C-STORE RCC",
        "C-STORE LMLO",
        "DISCONTINUED",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in\n{stdout}");
    }
    assert_eq!(gateway.item("ACCCLI1").status, WorklistStatus::Discontinued);

    let missing = run("NO-SUCH-ITEM", &[]);
    assert!(!missing.status.success());
    assert!(
        common::text(&missing).contains("no matching MG item"),
        "{}",
        common::text(&missing)
    );
}
