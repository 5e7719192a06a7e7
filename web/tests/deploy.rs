//! The ways the cloud app is deployed, checked: the systemd unit by `systemd-analyze` (verify, and
//! a security exposure no worse than the gateway's limit), and the unit, its environment file and
//! the Containerfile against the settings the binary itself lists in `web serve --help` — so a
//! renamed setting cannot leave a deployment silently running on a default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "screening-web.service";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// Every environment variable `web serve` reads, from its own help: the `[env: NAME=` of each
/// flag and the names listed under "More settings".
fn settings() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_web"))
        .args(["serve", "--help"])
        .output()
        .expect("running web serve --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("help is text");
    let mut names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_string)
        .collect();
    let more = help
        .split("More settings")
        .nth(1)
        .expect("the help lists the environment-only settings");
    names.extend(
        more.lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|word| {
                word.len() > 2 && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .map(str::to_string),
    );
    assert!(
        names.contains("DATABASE_URL") && names.contains("SIGNING_KEY"),
        "{names:?}"
    );
    names
}

/// `KEY=value` pairs of a unit's `Environment=` lines.
fn unit_environment(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of a unit's `Key=` line.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// The Containerfile's instructions, continuation lines joined, comments dropped.
fn instructions(containerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in containerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// `KEY=value` pairs of every `ENV` instruction.
fn container_environment(instructions: &[String]) -> Vec<(String, String)> {
    instructions
        .iter()
        .filter_map(|i| i.strip_prefix("ENV "))
        .flat_map(|pairs| {
            pairs
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{key} is not set"))
}

fn systemd_analyze() -> &'static str {
    let path = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(path).exists(),
        "{path} not found: apt-get install systemd (scripts/deps.sh does)"
    );
    path
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let unit = read(&format!("systemd/{UNIT}"));
    // `verify` checks that ExecStart's program exists: a root with the unit, systemd's units and
    // this build's binary where the unit expects it.
    let root = std::env::temp_dir().join(format!("web-unit-{}", std::process::id()));
    let exec = unit_value(&unit, "ExecStart")
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.join(&exec).parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_web"), root.join(&exec)).unwrap();
    std::fs::write(units.join(UNIT), &unit).unwrap();
    // systemd's own units (sysinit.target, network-online.target…), which the unit's ordering
    // names.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(root.join("usr/lib/systemd/"))
        .status()
        .expect("copying systemd's units");
    assert!(copied.success());
    let verify = Command::new(systemd_analyze())
        .arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", root.display()))
        .arg(units.join(UNIT))
        .output()
        .expect("running systemd-analyze verify");
    let security = Command::new(systemd_analyze())
        .args(["security", "--offline=yes"])
        .arg(format!("--root={}", root.display()))
        .arg(units.join(UNIT))
        .output()
        .expect("running systemd-analyze security");
    let _ = std::fs::remove_dir_all(&root);
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !complaints.contains(UNIT),
        "systemd-analyze verify: {complaints}"
    );
    let report = String::from_utf8_lossy(&security.stdout);
    let score: f64 = report
        .split(&format!("Overall exposure level for {UNIT}: "))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure score in: {report}{}",
                String::from_utf8_lossy(&security.stderr)
            )
        });
    println!("systemd-analyze security --offline: {score}");
    assert!(
        score <= 2.0,
        "exposure {score} > 2.0 (the gateway's limit):\n{report}"
    );
}

#[test]
fn the_unit_the_environment_file_and_the_containerfile_set_only_settings_the_binary_reads() {
    let known = settings();
    let unit = read(&format!("systemd/{UNIT}"));
    let env_file = read("systemd/screening-web.env");
    let containerfile = read("web/Containerfile");
    let steps = instructions(&containerfile);
    let unit_env = unit_environment(&unit);
    let image_env = container_environment(&steps);
    let file_keys: Vec<String> = env_file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    assert!(!unit_env.is_empty() && !image_env.is_empty() && !file_keys.is_empty());
    for (from, key) in unit_env
        .iter()
        .map(|(k, _)| (UNIT, k))
        .chain(image_env.iter().map(|(k, _)| ("web/Containerfile", k)))
        .chain(file_keys.iter().map(|k| ("systemd/screening-web.env", k)))
    {
        // The image's build stage sets cargo's own setting; everything else is the app's.
        if key == "CARGO_TARGET_DIR" {
            continue;
        }
        assert!(
            known.contains(key),
            "{from} sets {key}, which `web serve --help` does not list: {known:?}"
        );
    }

    // The unit and the image lay the app out alike: one set of instructions for both.
    let entrypoint = steps
        .iter()
        .find_map(|s| s.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let binary = unit_value(&unit, "ExecStart")
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(entrypoint, format!("[\"{binary}\"]"));
    for key in ["WEB_SITE_ROOT", "WEB_STATE_DIR", "WEB_ADDR"] {
        assert_eq!(lookup(&unit_env, key), lookup(&image_env, key), "{key}");
    }
    let copies: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.strip_prefix("COPY --from=build "))
        .collect();
    assert!(
        copies.iter().any(|c| c.ends_with(&format!(" {binary}"))),
        "{copies:?}"
    );
    let site = lookup(&image_env, "WEB_SITE_ROOT");
    assert!(
        copies.iter().any(|c| c.ends_with(&format!(" {site}"))),
        "{copies:?}"
    );
    let port = lookup(&image_env, "WEB_ADDR")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert!(
        steps.iter().any(|s| *s == format!("EXPOSE {port}")),
        "EXPOSE {port}"
    );

    // Its tools match the build's: the wasm-bindgen CLI must equal the crate in Cargo.lock.
    let lock = read("Cargo.lock");
    let bindgen = lock
        .split("name = \"wasm-bindgen\"\nversion = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("wasm-bindgen in Cargo.lock");
    assert!(
        containerfile.contains(&format!("wasm-bindgen-cli --version {bindgen}")),
        "web/Containerfile must install wasm-bindgen-cli {bindgen}, as Cargo.lock has"
    );
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_string)
        .expect("the workspace rust-version");
    let image_rust = containerfile
        .split("rust:")
        .nth(1)
        .and_then(|rest| rest.split('-').next())
        .expect("a rust: build image");
    assert!(
        version(image_rust) >= version(&rust_version),
        "the build image's Rust {image_rust} is older than rust-version {rust_version}"
    );
    for path in [
        "web/build-client.sh",
        "web/package-lock.json",
        ".dockerignore",
    ] {
        assert!(repo().join(path).exists(), "the image build needs {path}");
    }

    match builder() {
        Some(tool) => {
            let built = Command::new(tool)
                .args(["build", "-f", "web/Containerfile", "-t", "screening-web:test", "."])
                .current_dir(repo())
                .status()
                .expect("running the image builder");
            assert!(built.success(), "{tool} build -f web/Containerfile failed");
        }
        None => println!("no container builder here (podman, or docker with a daemon): files checked, image not built"),
    }
}

fn version(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|n| n.parse().ok()).collect()
}

/// podman, or docker with a daemon that answers.
fn builder() -> Option<&'static str> {
    let works = |tool: &str, args: &[&str]| {
        Command::new(tool)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("podman", &["info"]) {
        Some("podman")
    } else if works("docker", &["info"]) {
        Some("docker")
    } else {
        None
    }
}
