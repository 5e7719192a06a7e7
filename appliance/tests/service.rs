//! `gateway serve` as systemd runs it, and `gateway doctor` as hospital IT runs it: the sd_notify
//! protocol (READY, STATUS, WATCHDOG, STOPPING) on a real datagram socket, log lines with syslog
//! priorities when stderr is the journal stream, no secret in the log even at `trace`, and the
//! doctor's verdicts on a good installation and on a broken one.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cloud::{accept_all, Relay};
use common::{free_port, Server};

const NAMESPACE: &str = "service.servicebus.windows.net";
/// Long and unusual, so finding it in a log cannot be a coincidence.
const RELAY_KEY: &str = "Zq8-relay-key-that-must-never-be-logged-41d7";

async fn relay() -> Relay {
    Relay::start_with_key(NAMESPACE, "gateway", RELAY_KEY).await
}

/// The settings an installer would write into /etc/gateway/gateway.env.
fn settings(relay: &Relay, state: &Path) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("GATEWAY_STATE_DIR", state.display().to_string()),
        ("GATEWAY_BIND", "127.0.0.1".into()),
        ("MWL_PORT", free_port().to_string()),
        ("PACS_PORT", free_port().to_string()),
        ("GATEWAY_NAME", "gw-service-test".into()),
        ("AZURE_RELAY_NAMESPACE", NAMESPACE.into()),
        ("AZURE_RELAY_ENDPOINT", relay.config.endpoint.to_string()),
        ("AZURE_RELAY_HYBRID_CONNECTION", "actions".into()),
        ("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "events".into()),
        ("AZURE_RELAY_KEY_NAME", "gateway".into()),
        ("AZURE_RELAY_SHARED_ACCESS_KEY", RELAY_KEY.into()),
        ("SIGNING_KEY", relay.gateway_key.to_base64()),
        ("PEER_PUBLIC_KEYS", relay.cloud_key.public_key().to_base64()),
        // A build machine's disk may be nearly full; doctor_says_what_to_fix checks the threshold.
        ("DISK_MIN_FREE_MIB", "1".into()),
        ("DISK_MIN_FREE_PERCENT", "0".into()),
    ])
}

fn write_env_file(path: &Path, settings: &BTreeMap<&'static str, String>, extra: &str, mode: u32) {
    let mut text = String::from("# written by the test, as hospital IT would\n");
    for (name, value) in settings {
        text.push_str(&format!("{name}={value}\n"));
    }
    text.push_str(extra);
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn gateway(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    cmd
}

fn doctor(env_file: &Path) -> (Option<i32>, String) {
    let out = gateway(&["doctor", "--env-file", env_file.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code(), common::text(&out))
}

/// Datagrams systemd would receive, split into `KEY=value` lines.
fn receive(socket: &UnixDatagram, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !until(&seen) {
        assert!(Instant::now() < deadline, "notifications so far: {seen:?}");
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.extend(text.lines().map(str::to_string));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_as_a_notify_service_with_watchdog_and_journal_priorities() {
    let relay = relay().await;
    let _cloud = relay.cloud(accept_all).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let settings = settings(&relay, &state);

    // systemd's side: a notify socket, and a journal stream (here a file whose device:inode is
    // in JOURNAL_STREAM, exactly how journald's stream is recognised).
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log_path = dir.path().join("journal-stream.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let child = gateway(&["serve"])
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("LOG_LEVEL", "trace")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut server = Server(child);

    let seen = receive(&notify, |seen| seen.iter().any(|l| l == "READY=1"));
    let status = seen
        .iter()
        .find(|l| l.starts_with("STATUS="))
        .expect("a STATUS line with READY");
    assert!(
        status.contains("worklist/MPPS SCREENING_MWL on 127.0.0.1:"),
        "{status}"
    );
    // The status line follows the relay channel.
    let seen = receive(&notify, |seen| {
        seen.iter()
            .any(|l| l.starts_with("STATUS=") && l.ends_with("; relay connected"))
    });
    assert!(seen.iter().all(|l| !l.contains(RELAY_KEY)), "{seen:?}");
    // Fed every 100 ms while every vital task runs.
    let seen = receive(&notify, |seen| {
        seen.iter().filter(|l| *l == "WATCHDOG=1").count() >= 5
    });
    assert!(
        !seen.iter().any(|l| l.starts_with("STATUS=failing")),
        "{seen:?}"
    );

    // The doctor, against the same settings in a root-only file, finds nothing to fix.
    let env_file = dir.path().join("gateway.env");
    write_env_file(&env_file, &settings, "", 0o600);
    let doctor_run = tokio::task::spawn_blocking(move || doctor(&env_file));
    let (code, report) = doctor_run.await.unwrap();
    assert_eq!(code, Some(0), "{report}");
    for line in [
        "ok   settings",
        "ok   service        running 0.1.0, healthy",
        "ok   disk",
        "ok   relay          listening on actions",
        "ok   cloud app      listening on events",
        "ok   clock",
    ] {
        assert!(report.contains(line), "missing {line:?} in\n{report}");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    receive(&notify, |seen| seen.iter().any(|l| l == "STOPPING=1"));
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // Journal stream: every line carries its priority, the start-up line is info with the
    // values in its text, and no secret appears even at trace level.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().count() > 5, "{log}");
    for line in log.lines() {
        assert!(
            line.len() > 3 && line.starts_with('<') && line.as_bytes()[2] == b'>',
            "a line without a priority prefix: {line:?}"
        );
    }
    assert!(
        log.lines().any(|l| l
            .starts_with("<6>gateway 0.1.0 started: worklist/MPPS SCREENING_MWL on 127.0.0.1:")),
        "{log}"
    );
    assert!(log.contains("<7>"), "trace/debug lines are priority 7");
    for secret in [
        RELAY_KEY.to_string(),
        settings["SIGNING_KEY"].clone(),
        "sig=".into(),
        "SharedAccessSignature".into(),
    ] {
        let leak = log.lines().find(|l| l.contains(&secret));
        assert!(leak.is_none(), "the log contains {secret:?}: {leak:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_to_fix() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut settings = settings(&relay, &state);
    settings.insert("AZURE_RELAY_SHARED_ACCESS_KEY", "a-wrong-key".into());
    settings.insert("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "evnets".into());
    // Something else already holds the worklist port.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    settings.insert("MWL_PORT", taken.to_string());
    // More free space than any disk has.
    settings.insert("DISK_MIN_FREE_PERCENT", "100".into());
    let env_file: PathBuf = dir.path().join("gateway.env");
    write_env_file(
        &env_file,
        &settings,
        "MWL_PROT=104\nthis line is wrong\n",
        0o644,
    );

    let (code, report) = tokio::task::spawn_blocking(move || doctor(&env_file))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{report}");
    for needle in [
        "readable by other users",
        "fix: sudo chmod 600",
        "MWL_PROT is not a gateway setting",
        "did you mean MWL_PORT?",
        "not NAME=value",
        "WARN service        not running",
        &format!("127.0.0.1:{taken} is in use by another program"),
        "relay refused the credentials for actions (401)",
        "shared access policy",
        "WARN cloud app      nobody listens on evnets",
        "AZURE_RELAY_EVENTS_HYBRID_CONNECTION names none",
        "FAIL disk",
        "needs 0.0 GiB and 100 %",
        "DISK_MIN_FREE_MIB and DISK_MIN_FREE_PERCENT set the threshold",
        "problem(s) to fix",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in\n{report}");
    }
    drop(squatter);

    // No settings file at all: every setting takes its default, and the doctor says so.
    let (code, report) =
        tokio::task::spawn_blocking(move || doctor(Path::new("/nonexistent/gateway.env")))
            .await
            .unwrap();
    assert!(
        report.contains("does not exist: every setting takes its default"),
        "{report}"
    );
    assert!(
        report.contains("AZURE_RELAY_NAMESPACE is empty"),
        "{report}"
    );
    assert!(code.is_some(), "{report}");
}

fn ip_drop_in(env_file: &Path) -> (Option<i32>, String) {
    let out = gateway(&[
        "doctor",
        "--env-file",
        env_file.to_str().unwrap(),
        "--ip-drop-in",
    ])
    .output()
    .unwrap();
    (out.status.code(), common::text(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_missing_allow_list_and_prints_the_ip_filter() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let env_file: PathBuf = dir.path().join("gateway.env");
    let mut settings = settings(&relay, &state);
    write_env_file(&env_file, &settings, "", 0o600);
    let file = env_file.clone();
    let (_, report) = tokio::task::spawn_blocking(move || doctor(&file))
        .await
        .unwrap();
    assert!(
        report.contains("WARN allow-list")
            && report.contains("neither ALLOWED_SOURCE_ADDRESSES nor ALLOWED_CALLING_AETS is set"),
        "{report}"
    );
    let (code, printed) = ip_drop_in(&env_file);
    assert_eq!(code, Some(1), "{printed}");
    assert!(
        printed.contains("ALLOWED_SOURCE_ADDRESSES is not set"),
        "{printed}"
    );

    // With the modalities' addresses: the relay emulator is dialled by IP, so a filter can be made.
    settings.insert("ALLOWED_SOURCE_ADDRESSES", "10.0.0.5, 10.0.0.6".into());
    write_env_file(&env_file, &settings, "", 0o600);
    let file = env_file.clone();
    let (_, report) = tokio::task::spawn_blocking(move || doctor(&file))
        .await
        .unwrap();
    assert!(report.contains("ok   allow-list"), "{report}");
    assert!(
        report.contains("gateway doctor --ip-drop-in | sudo tee"),
        "{report}"
    );
    let (code, printed) = ip_drop_in(&env_file);
    assert_eq!(code, Some(0), "{printed}");
    for line in [
        "IPAddressDeny=any\n",
        "IPAddressAllow=localhost\n",
        "IPAddressAllow=10.0.0.5 10.0.0.6\n",
    ] {
        assert!(printed.contains(line), "missing {line:?} in\n{printed}");
    }

    // Azure dialled directly by name: its addresses change, so no filter is offered.
    settings.remove("AZURE_RELAY_ENDPOINT");
    write_env_file(&env_file, &settings, "", 0o600);
    let (code, printed) = ip_drop_in(&env_file);
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("addresses are Azure's"), "{printed}");
}
