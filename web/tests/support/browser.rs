//! Running the browser script (`e2e/live.mjs`: playwright-core driving Debian's Chromium) and
//! talking to it by lines: it prints `STEP …` when the page shows a state; we write `GATEWAY …`
//! when the gateway side has acted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The built site, failing clearly if the client or the browser tools are missing.
pub fn site_and_crate_dir() -> (String, PathBuf) {
    let site = std::env::var("WEB_SITE_ROOT")
        .unwrap_or_else(|_| web::server::startup::default_site_root());
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Path::new(&site).join("pkg/web.js").exists(),
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
    (site, crate_dir)
}

/// Where screenshots and measurements go (emptied first).
pub fn artifacts(name: &str) -> String {
    let dir = std::env::var("WEB_E2E_ARTIFACTS").map_or_else(
        |_| {
            format!(
                "{}/{name}",
                option_env!("CARGO_TARGET_DIR").unwrap_or("target")
            )
        },
        |base| format!("{base}/{name}"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The running browser script.
pub struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    transcript: Vec<String>,
}

/// What the script needs to know.
pub struct ScriptEnv<'a> {
    pub base_url: String,
    pub users: [(&'a str, &'a str); 2],
    pub clinic_id: i64,
    pub artifacts: &'a str,
    pub images: usize,
    /// How many images the gateway reports taken in MPPS COMPLETED, when it does.
    pub taken: Option<usize>,
    /// Whether the gateway then reports images' hospital PACS states (`image.archive_state`).
    pub archive: bool,
}

impl Script {
    /// Runs `e2e/live.mjs`, the browser side of the end-to-end tests.
    pub fn start(crate_dir: &Path, env: ScriptEnv<'_>) -> Script {
        Script::spawn(
            crate_dir,
            "e2e/live.mjs",
            &[
                ("BASE_URL", env.base_url),
                ("USER1", env.users[0].0.to_string()),
                ("PASS1", env.users[0].1.to_string()),
                ("USER2", env.users[1].0.to_string()),
                ("PASS2", env.users[1].1.to_string()),
                ("CLINIC_ID", env.clinic_id.to_string()),
                ("ARTIFACTS", env.artifacts.to_string()),
                ("IMAGES", env.images.to_string()),
                (
                    "TAKEN",
                    env.taken.map(|n| n.to_string()).unwrap_or_default(),
                ),
                ("ARCHIVE", if env.archive { "1" } else { "" }.to_string()),
            ],
        )
    }

    /// Runs a playwright-core `script` (relative to the crate, so that it resolves
    /// `web/node_modules`) with `env`, speaking the `STEP` / `GATEWAY` line protocol.
    pub fn spawn(crate_dir: &Path, script: &str, env: &[(&str, String)]) -> Script {
        let mut child = Command::new("node")
            .arg(script)
            .current_dir(crate_dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (apt-get install nodejs; scripts/deps.sh does)");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script {
            child,
            stdin,
            lines,
            transcript: vec![],
        }
    }

    /// Reads the script's output until a `STEP <prefix>` line, returning the rest of that line.
    pub async fn step(&mut self, prefix: &str) -> String {
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

    /// Tells the script what the gateway side just did.
    pub async fn tell(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for the script to end and checks it passed.
    pub async fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().await.unwrap();
        let mut rest = vec![];
        while let Ok(Some(line)) = self.lines.next_line().await {
            eprintln!("browser: {line}");
            rest.push(line);
        }
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
    }
}

/// Now, in the browser's clock units (Unix epoch milliseconds).
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
