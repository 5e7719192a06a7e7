//! End to end in a real browser: the web server, the relay emulator and a stand-in gateway in this
//! process; Debian's Chromium driven by playwright-core (web/e2e/live.mjs) in a child process. The
//! clinician signs in, sends an appointment to the modality and watches — without reloading —
//! the status go sent_to_modality → in_progress → complete and the thumbnails arrive; the other
//! provider gets a 404; axe-core finds no serious or critical accessibility violations.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use shared::wire::event::{EventStatus, MppsStatus};
use shared::wire::SigningKey;
use support::{gateway, TestDb, ACTIONS, EVENTS};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

const IMAGES: usize = 20;
const VIEWS: [(&str, &str); 4] = [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")];

fn require_tools(site: &str) -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Path::new(site).join("pkg/web.js").exists(),
        "the browser client is not built in {site}: run web/build-client.sh (scripts/deps.sh does)"
    );
    assert!(
        crate_dir.join("node_modules/playwright-core").exists(),
        "web/node_modules is missing: run scripts/deps.sh (npm ci in web/)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: apt-get install chromium (scripts/deps.sh does)"
    );
    crate_dir
}

struct Script {
    lines: Lines<BufReader<ChildStdout>>,
    transcript: Vec<String>,
}

impl Script {
    /// Reads the script's output until a `STEP <prefix>` line, returning the rest of that line.
    async fn step(&mut self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .expect("read the browser script's output")
                .unwrap_or_else(|| {
                    panic!(
                        "the browser script ended before STEP {prefix}:\n{}",
                        self.transcript.join("\n")
                    )
                });
            eprintln!("browser: {line}");
            self.transcript.push(line.clone());
            if let Some(rest) = line.strip_prefix(&format!("STEP {prefix}")) {
                return rest.trim().to_string();
            }
            assert!(
                !line.starts_with("RESULT"),
                "the browser test failed before STEP {prefix}:\n{}",
                self.transcript.join("\n")
            );
        }
    }
}

async fn tell(stdin: &mut ChildStdin, line: &str) {
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinician_sees_status_and_thumbnails_live_and_other_provider_gets_404() {
    let site = std::env::var("WEB_SITE_ROOT")
        .unwrap_or_else(|_| web::server::startup::default_site_root());
    let crate_dir = require_tools(&site);
    let artifacts = std::env::var("WEB_E2E_ARTIFACTS").unwrap_or_else(|_| {
        format!(
            "{}/web-e2e",
            option_env!("CARGO_TARGET_DIR").unwrap_or("target")
        )
    });

    // Fresh artefacts each run, so a screenshot never outlives the run that made it.
    let _ = std::fs::remove_dir_all(&artifacts);
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (state, seeded, web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    let running = support::serve(state, site).await;
    let gateway_id = seeded.gateway_ids[0];
    support::eventually("events listener connected", || async {
        running
            .state
            .listener_status(gateway_id)
            .is_some_and(|s| s.connected)
    })
    .await;
    let relay = || support::relay_client(&emulator);
    let mut gw = gateway::listen_actions(
        relay(),
        ACTIONS,
        gateway_key.clone(),
        &web_key,
        gateway::reply_created(),
    )
    .await;
    gw.connected().await;

    let (user1, pass1) = web::server::seed::DEMO_USERS[0];
    let (user2, pass2) = web::server::seed::DEMO_USERS[1];
    let mut child = Command::new("node")
        .arg("e2e/live.mjs")
        .current_dir(&crate_dir)
        .env("BASE_URL", format!("http://{}", running.addr))
        .env("USER1", user1)
        .env("PASS1", pass1)
        .env("USER2", user2)
        .env("PASS2", pass2)
        .env("CLINIC_ID", seeded.clinic_ids[0].to_string())
        .env("ARTIFACTS", &artifacts)
        .env("IMAGES", IMAGES.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (apt-get install nodejs; scripts/deps.sh does)");
    let mut stdin = child.stdin.take().unwrap();
    let mut script = Script {
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
        transcript: vec![],
    };

    let appointment_id = script.step("sent").await;
    let action = gw.next().await;
    let item = gateway::worklist_item(&action);
    assert_eq!(
        action
            .source_reference
            .as_ref()
            .map(|r| r.appointment_id.clone()),
        Some(appointment_id.clone())
    );
    let send = |event| {
        let (relay, key, web_key) = (relay(), gateway_key.clone(), web_key.clone());
        async move {
            let reply = gateway::send_event(relay, EVENTS, &key, &web_key, &event).await;
            assert_eq!(reply.status, EventStatus::Accepted, "{reply:?}");
        }
    };
    send(gateway::mpps(
        Some(action.action_id),
        &item.accession_number,
        MppsStatus::InProgress,
    ))
    .await;
    tell(&mut stdin, "GATEWAY started").await;
    script.step("in_progress").await;
    script.step("appointment open").await;
    for k in 1..=IMAGES {
        let (side, view) = VIEWS[(k - 1) % 4];
        let event = gateway::image(
            Some(action.action_id),
            &item.accession_number,
            &item.participant.nhs_number,
            side,
            view,
            k as i64,
        );
        let sent_at = now_ms();
        send(event).await;
        tell(&mut stdin, &format!("GATEWAY image {sent_at}")).await;
        script.step(&format!("image {k}")).await;
    }
    let latency = script.step("latency").await;
    eprintln!("image event → thumbnail in DOM: {latency}");
    let _ = std::fs::write(
        Path::new(&artifacts).join("latency.txt"),
        format!("{latency}\n"),
    );
    send(gateway::mpps(
        Some(action.action_id),
        &item.accession_number,
        MppsStatus::Completed,
    ))
    .await;
    tell(&mut stdin, "GATEWAY completed").await;
    script.step("complete").await;
    script.step("other provider 404").await;
    drop(stdin);
    let status = child.wait().await.unwrap();
    let rest: Vec<String> = {
        let mut rest = vec![];
        while let Ok(Some(line)) = script.lines.next_line().await {
            eprintln!("browser: {line}");
            rest.push(line);
        }
        rest
    };
    assert!(
        status.success(),
        "browser script failed: {}",
        rest.join("\n")
    );
    assert!(
        rest.iter().any(|l| l == "RESULT 1 passed, 0 failed"),
        "{}",
        rest.join("\n")
    );
    running.stop().await;
}
