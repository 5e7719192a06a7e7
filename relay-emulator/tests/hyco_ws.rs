//! Interop with Microsoft's own Node SDK, `hyco-ws`: the emulator is only faithful if code nobody
//! here wrote works against it, and our client is only compatible if it talks to that SDK.
//!
//! Needs `node` and `interop/hyco-ws/node_modules` (`scripts/deps.sh` runs `npm ci` there); the
//! tests fail with that instruction when either is missing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use serde_json::Value;
use shared::relay::{Config, Listener, ListenerOptions, Sender};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const NAMESPACE: &str = "interop.servicebus.windows.net";
const KEY: &str = "interop-key";

fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/hyco-ws");
    assert!(
        dir.join("node_modules/hyco-ws").is_dir(),
        "hyco-ws is not installed in {}: run scripts/deps.sh (npm ci there)",
        dir.display()
    );
    dir
}

async fn emulator() -> Emulator {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = EmulatorConfig::new(
        NAMESPACE,
        vec![Rule::parse(&format!("root={KEY}")).unwrap()],
        vec!["hc1".into()],
    );
    Emulator::start(config, any, None).await.unwrap()
}

fn node(emulator: &Emulator, script: &str, extra: &[&str]) -> Command {
    let mut command = Command::new("node");
    command
        .current_dir(interop_dir())
        .arg(script)
        .args(["--endpoint", &format!("ws://{}", emulator.addr())])
        .args([
            "--namespace",
            NAMESPACE,
            "--path",
            "hc1",
            "--key-name",
            "root",
            "--key",
            KEY,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the SDK's listener and waits for its `ready` line.
async fn sdk_listener(emulator: &Emulator) -> Child {
    let mut child = node(emulator, "listener.js", &[])
        .spawn()
        .expect("node is installed (scripts/deps.sh)");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("hyco-ws listener starts within 20 s")
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some("ready"),
        "hyco-ws listener did not get ready"
    );
    child
}

/// Runs the SDK's sender once and returns (exit code, stdout, stderr).
async fn sdk_send(emulator: &Emulator, message: &str) -> (i32, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        node(emulator, "sender.js", &["--message", message]).output(),
    )
    .await
    .expect("hyco-ws sender finishes")
    .expect("node is installed (scripts/deps.sh)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

fn client(emulator: &Emulator) -> Config {
    let mut config = Config::new(NAMESPACE, "root", KEY);
    config.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();
    config
}

#[tokio::test]
async fn sdk_listener_and_sdk_sender_through_the_emulator() {
    let emulator = emulator().await;
    let (code, _, stderr) = sdk_send(&emulator, "nobody home").await;
    assert_eq!(code, 2, "no listener yet: {stderr}");
    assert!(stderr.contains("404"), "{stderr}");

    let _listener = sdk_listener(&emulator).await;
    let (code, stdout, stderr) = sdk_send(&emulator, "hello ü").await;
    assert_eq!(code, 0, "{stderr}");
    let reply: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reply["echo"], "hello ü");
    assert_eq!(reply["by"], "hyco-ws");
}

#[tokio::test]
async fn our_sender_reaches_the_sdk_listener() {
    let emulator = emulator().await;
    let _listener = sdk_listener(&emulator).await;
    let sender = Sender::new(client(&emulator), "hc1");
    for i in 0..5 {
        let reply = sender.request(&format!("from rust {i}")).await.unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["echo"], format!("from rust {i}"));
        assert_eq!(reply["by"], "hyco-ws");
    }
}

#[tokio::test]
async fn the_sdk_sender_reaches_our_listener() {
    let emulator = emulator().await;
    let listener = Listener::new(client(&emulator), "hc1", ListenerOptions::default());
    let mut status = listener.status();
    let task = tokio::spawn(async move {
        listener
            .run(
                |text| async move { format!("{{\"rust_listener_got\":{}}}", Value::String(text)) },
                std::future::pending(),
            )
            .await
    });
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected))
        .await
        .unwrap()
        .unwrap();
    let (code, stdout, stderr) = sdk_send(&emulator, "from node").await;
    assert_eq!(code, 0, "{stderr}");
    let reply: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reply["rust_listener_got"], "from node");
    task.abort();
}
