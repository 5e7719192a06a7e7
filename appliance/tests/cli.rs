//! The `gateway` binary as an operator runs it: `worklist add`, then `serve` configured by
//! environment, answering real peers, and stopping on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

fn gateway(state: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env("GATEWAY_STATE_DIR", state)
        .env("GATEWAY_ENV_FILE", "/nonexistent/gateway.env")
        .env("MWL_AET", "CLI_MWL")
        .env("PACS_AET", "CLI_PACS")
        .env("MWL_PORT", "0")
        .env("PACS_PORT", "0")
        .env("GATEWAY_BIND", "127.0.0.1")
        .env("LOG_LEVEL", "info");
    cmd
}

/// `GET /metrics` from the running gateway, retried while the exporter and the first sample of
/// the queue gauges come up.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut body = String::new();
        if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let _ = tcp.read_to_string(&mut body);
        }
        if body.contains("gateway_event_queue_depth") || std::time::Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn worklist_add_then_serve_then_sigterm() {
    let state = tempfile::tempdir().unwrap();
    let out = gateway(state.path())
        .args([
            "worklist",
            "add",
            "--accession",
            "ACCCLI01",
            "--nhs-number",
            "9434765919",
            "--name",
            "Smith^Jane",
            "--birth-date",
            "19700101",
            "--date",
            "20261122",
            "--time",
            "093000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"study_instance_uid\":\"2.25."));
    // A bad item is refused with the reason.
    let out = gateway(state.path())
        .args([
            "worklist",
            "add",
            "--accession",
            "TOO_LONG_ACCESSION_NUMBER",
        ])
        .args([
            "--nhs-number",
            "1",
            "--name",
            "A^B",
            "--birth-date",
            "19700101",
        ])
        .args(["--date", "20261122", "--time", "0930"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("accession number"), "{}", text(&out));

    let metrics_port = shared::loopback::free_port();
    let mut child = gateway(state.path())
        .arg("serve")
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut server = Server(child);
    let (mut mwl, mut pacs) = (None, None);
    let mut lines = BufReader::new(stderr).lines();
    while mwl.is_none() || pacs.is_none() {
        let line = lines
            .next()
            .expect("gateway exited before listening")
            .unwrap();
        let port = |key: &str| {
            line.split(key).nth(1).map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_string()
            })
        };
        mwl = mwl.or_else(|| port("mwl_addr="));
        pacs = pacs.or_else(|| port("pacs_addr="));
    }
    let (mwl, pacs) = (mwl.unwrap(), pacs.unwrap());
    std::thread::spawn(move || for _ in lines {});

    assert!(echo(&pacs, "CLI_PACS", "MODALITY1"));
    let out = dcmtk("findscu")
        .args([
            "-W",
            "-aec",
            "CLI_MWL",
            "-k",
            "AccessionNumber",
            "-k",
            "PatientName",
        ])
        .args(["127.0.0.1", &mwl])
        .output()
        .unwrap();
    assert!(text(&out).contains("ACCCLI01"), "{}", text(&out));

    // `gateway status` asks the running service: the DICOM side is fine, the relay is not
    // configured here, so it is unhealthy (exit 1) and says why.
    let out = gateway(state.path()).arg("status").output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for line in [
        "UNHEALTHY",
        "ok   mwl_port",
        "ok   pacs_port",
        "ok   database",
        "FAIL relay_listener",
        // ACCCLI01's walk-in event, queued for the cloud when the item was added.
        "1 event(s) waiting",
    ] {
        assert!(report.contains(line), "missing {line:?} in\n{report}");
    }

    // While it runs, `worklist add` goes through the service (a clinic working offline adds a
    // participant without stopping it), with the same checks: the C-FIND offers it at once.
    let add = |accession: &str| {
        gateway(state.path())
            .args(["worklist", "add", "--accession", accession])
            .args(["--nhs-number", "9434765870", "--name", "Jones^Ann"])
            .args([
                "--birth-date",
                "19650303",
                "--date",
                "20261122",
                "--time",
                "101500",
            ])
            .output()
            .unwrap()
    };
    let out = add("ACCCLI02");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"accession_number\":\"ACCCLI02\""));
    let out = add("ACCCLI02");
    assert!(!out.status.success(), "a duplicate was added");
    assert!(text(&out).contains("refused"), "{}", text(&out));
    let out = dcmtk("findscu")
        .args(["-W", "-aec", "CLI_MWL", "-k", "AccessionNumber=ACCCLI02"])
        .args(["127.0.0.1", &mwl])
        .output()
        .unwrap();
    assert!(text(&out).contains("ACCCLI02"), "{}", text(&out));
    // Its walk-in event is queued with it; the refused duplicate queued nothing.
    let report = text(&gateway(state.path()).arg("status").output().unwrap());
    assert!(report.contains("2 event(s) waiting"), "{report}");
    let socket = state.path().join("gateway.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the control socket is the service user's alone"
    );

    // Prometheus at METRICS_ADDR: the associations, a C-STORE and the C-FINDs counted.
    let stored = dcmtk("storescu")
        .args(["-aet", "MODALITY1", "-aec", "CLI_PACS", "127.0.0.1", &pacs])
        .arg(sample("CT_small.dcm"))
        .output()
        .unwrap();
    assert!(stored.status.success(), "{}", text(&stored));
    let metrics = scrape(metrics_port);
    for series in [
        "gateway_associations_total{service=\"storage\"}",
        "gateway_associations_total{service=\"worklist\"} 2",
        "gateway_associations_open",
        "gateway_cstore_total{status=\"success\"} 1",
        "gateway_cstore_bytes_total",
        "gateway_cstore_seconds_bucket",
        "gateway_cfind_seconds_count 2",
        "gateway_event_queue_depth",
        "gateway_events_parked 0",
        "gateway_forward_queue_depth 0",
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }

    // While it runs, redb is locked: the CLI says so instead of corrupting anything.
    let out = gateway(state.path())
        .args(["worklist", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("stop it first"), "{}", text(&out));

    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.0.wait().unwrap();
    assert!(
        status.success(),
        "gateway exits cleanly on SIGTERM: {status}"
    );
    let out = gateway(state.path())
        .args(["worklist", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACCCLI01"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACCCLI02"));
    let out = gateway(state.path()).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "not running: {}", text(&out));
    assert!(text(&out).contains("not running"), "{}", text(&out));
}
