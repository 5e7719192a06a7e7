//! `gateway doctor`: checks an installation from the settings file to the relay and says, in
//! plain words, what to fix. Written for hospital IT at a console, who know networks and Debian
//! but not DICOM or Azure Relay: every problem comes with the command or the setting to change.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use shared::relay::{probe, RelayError};

use super::envfile;
use super::health::HealthLimits;
use super::ip_allow::{self, HospitalPeer, NotPossible};
use crate::cloud::CloudSettings;
use crate::config::{Config, SETTINGS, SETTING_ALIASES};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but not as intended (no cloud link, a typo ignored…).
    Warn,
    /// The gateway cannot do its job until this is fixed.
    Fail,
}

/// One thing the doctor looked at.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about it, when there is something to do.
    pub fix: Option<String>,
}

/// Everything the doctor found, in the order it looked.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, check: &'static str, verdict: Verdict, detail: String, fix: Option<String>) {
        self.findings.push(Finding {
            check,
            verdict,
            detail,
            fix,
        });
    }

    /// True when anything must be fixed.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.verdict == Verdict::Fail)
    }

    /// The report as terminal lines, ending with a one-line summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let mark = match f.verdict {
                Verdict::Ok => "ok",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            let _ = writeln!(out, "  {mark:<4} {:<14} {}", f.check, f.detail);
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "       {:<14} fix: {fix}", "");
            }
        }
        let count = |v| self.findings.iter().filter(|f| f.verdict == v).count();
        let (fails, warns) = (count(Verdict::Fail), count(Verdict::Warn));
        let _ = match (fails, warns) {
            (0, 0) => writeln!(out, "all checks passed"),
            (0, w) => writeln!(out, "no problems that stop the gateway; {w} warning(s)"),
            (f, w) => writeln!(out, "{f} problem(s) to fix, {w} warning(s)"),
        };
        out
    }
}

/// Runs every check against the settings in `env_file` (falling back to this process's
/// environment for names the file does not set, as `gateway serve` would see them).
pub async fn examine(env_file: &Path) -> Report {
    let mut report = Report::default();
    let settings = check_env_file(env_file, &mut report);
    let lookup = |name: &str| {
        settings
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    };
    let config = match Config::from_lookup(lookup) {
        Ok(config) => {
            report.add(
                "settings",
                Verdict::Ok,
                format!(
                    "worklist/MPPS {} on port {}, storage {} on port {}, state in {}",
                    config.mwl_aet,
                    config.mwl_port,
                    config.pacs_aet,
                    config.pacs_port,
                    config.state_dir.display()
                ),
                None,
            );
            if config.state_dir != Path::new("/var/lib/gateway") {
                report.add(
                    "settings",
                    Verdict::Warn,
                    format!("GATEWAY_STATE_DIR is {}", config.state_dir.display()),
                    Some("the systemd unit lets the service write only /var/lib/gateway; remove GATEWAY_STATE_DIR unless you run the gateway by hand".into()),
                );
            }
            Some(config)
        }
        Err(e) => {
            report.add(
                "settings",
                Verdict::Fail,
                e.to_string(),
                Some(format!("correct it in {}", env_file.display())),
            );
            None
        }
    };
    let cloud = match CloudSettings::from_lookup(lookup) {
        Ok(Some(cloud)) => Some(cloud),
        Ok(None) => {
            report.add(
                "cloud link",
                Verdict::Warn,
                "AZURE_RELAY_NAMESPACE is empty: the DICOM services run, but nothing reaches the cloud app".into(),
                Some(format!("fill in the Azure Relay section of {}", env_file.display())),
            );
            None
        }
        Err(e) => {
            report.add(
                "cloud link",
                Verdict::Fail,
                e.to_string(),
                Some(format!("correct it in {}", env_file.display())),
            );
            None
        }
    };
    if let Some(config) = &config {
        check_allow_lists(config, cloud.as_ref(), env_file, &mut report);
        check_query_retrieve(config, env_file, &mut report);
        check_service(config, cloud.is_some(), &mut report).await;
        check_disk(config, &mut report);
    }
    if let Some(cloud) = &cloud {
        check_relay(cloud, &mut report).await;
    }
    report
}

/// `gateway doctor --ip-drop-in`: the systemd drop-in for the settings in `env_file`, or why
/// none can be written.
pub fn ip_drop_in(env_file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(env_file).unwrap_or_default();
    let settings: HashMap<String, String> = envfile::parse(&text)
        .0
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    let lookup = |name: &str| {
        settings
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    };
    let config = Config::from_lookup(lookup).map_err(|e| e.to_string())?;
    let cloud = CloudSettings::from_lookup(lookup).map_err(|e| e.to_string())?;
    drop_in_for(&config, cloud.as_ref()).map_err(|e| e.to_string())
}

fn drop_in_for(config: &Config, cloud: Option<&CloudSettings>) -> Result<String, NotPossible> {
    let relay = cloud.map(|c| &c.relay.connection);
    ip_allow::drop_in(
        config.allowed_source_addresses.as_ref(),
        relay.and_then(|r| r.proxy.as_ref()),
        relay.map(|r| &r.endpoint),
        &hospital_peers(config),
        &ip_allow::System,
    )
}

/// Every system inside the hospital the gateway calls: PACS it forwards to, FHIR endpoints.
fn hospital_peers(config: &Config) -> Vec<HospitalPeer> {
    let pacs = config.forward_to.iter().map(HospitalPeer::from);
    let fhir = config.fhir.destinations.iter().map(HospitalPeer::from);
    pacs.chain(fhir).collect()
}

/// Query/Retrieve hands out patients' images, so it is named when on, and warned about when an AE
/// title is its only guard or when an allowed AE could never associate.
fn check_query_retrieve(config: &Config, env_file: &Path, report: &mut Report) {
    let qr = &config.query_retrieve;
    let Some(aets) = &qr.allowed_aets else {
        return;
    };
    let env = env_file.display();
    let mut blocked: Vec<&str> = aets
        .iter()
        .filter(|ae| {
            config
                .allowed_calling_aets
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(*ae))
        })
        .map(String::as_str)
        .collect();
    blocked.sort();
    if !blocked.is_empty() {
        report.add(
            "query/retrieve",
            Verdict::Warn,
            format!("QR_ALLOWED_AETS names {} but ALLOWED_CALLING_AETS does not, so they cannot associate", blocked.join(", ")),
            Some(format!("add them to ALLOWED_CALLING_AETS in {env}")),
        );
    } else if config.allowed_source_addresses.is_none() {
        report.add(
            "query/retrieve",
            Verdict::Warn,
            format!("Query/Retrieve is on for {} AE title(s), with no ALLOWED_SOURCE_ADDRESSES: any host claiming one of those AE titles can read every stored image", aets.len()),
            Some(format!("in {env}, set ALLOWED_SOURCE_ADDRESSES to the reporting workstations' (and modalities') addresses")),
        );
    } else {
        let moves = qr.move_destinations.len();
        report.add(
            "query/retrieve",
            Verdict::Ok,
            format!("on for {} AE title(s), C-MOVE to {moves} destination(s), at most {} matches per C-FIND", aets.len(), qr.max_matches),
            (moves > 0).then(|| "the IPAddressAllow= drop-in lets only ALLOWED_SOURCE_ADDRESSES and PACS_FORWARD through: list each QR_MOVE_DESTINATIONS host in ALLOWED_SOURCE_ADDRESSES too".to_string()),
        );
    }
}

/// The allow-lists: none set is the insecure default, named; with source addresses, whether
/// the systemd drop-in that makes the kernel refuse other hosts is installed and current.
fn check_allow_lists(
    config: &Config,
    cloud: Option<&CloudSettings>,
    env_file: &Path,
    report: &mut Report,
) {
    let ports = format!("{} and {}", config.mwl_port, config.pacs_port);
    let (aets, sources) = (
        config.allowed_calling_aets.as_ref().map(|s| s.len()),
        config.allowed_source_addresses.as_ref().map(|s| s.len()),
    );
    match (aets, sources) {
        (None, None) => report.add(
            "allow-list",
            Verdict::Warn,
            format!("neither ALLOWED_SOURCE_ADDRESSES nor ALLOWED_CALLING_AETS is set: any host that reaches ports {ports} can query the worklist, report procedures and store images"),
            Some(format!("in {}, set ALLOWED_SOURCE_ADDRESSES to the modalities' IP addresses and ALLOWED_CALLING_AETS to their AE titles", env_file.display())),
        ),
        (Some(aets), None) => report.add(
            "allow-list",
            Verdict::Warn,
            format!("{aets} calling AE title(s) allowed, but any host can claim an AE title"),
            Some(format!("set ALLOWED_SOURCE_ADDRESSES in {} too", env_file.display())),
        ),
        (aets, Some(sources)) => report.add(
            "allow-list",
            Verdict::Ok,
            match aets {
                Some(aets) => format!("{sources} source address(es) and {aets} calling AE title(s) allowed"),
                None => format!("{sources} source address(es) allowed (any AE title)"),
            },
            None,
        ),
    }
    let installed = std::fs::read_to_string(ip_allow::DROP_IN_PATH).ok();
    let path = ip_allow::DROP_IN_PATH;
    match (drop_in_for(config, cloud), installed) {
        (Ok(wanted), Some(found)) if wanted == found => report.add(
            "ip filter",
            Verdict::Ok,
            format!("{path} matches: the kernel refuses other hosts too"),
            None,
        ),
        (Ok(_), Some(_)) => report.add(
            "ip filter",
            Verdict::Warn,
            format!("{path} is out of date with ALLOWED_SOURCE_ADDRESSES or the proxy: modalities or the relay may be blocked"),
            Some(ip_allow::INSTALL.to_string()),
        ),
        (Ok(_), None) => report.add(
            "ip filter",
            Verdict::Warn,
            "no systemd address filter: other hosts reach the gateway, which disconnects them on accept".into(),
            Some(ip_allow::INSTALL.to_string()),
        ),
        (Err(NotPossible::NoAllowList), None) => {}
        (Err(why), None) => report.add("ip filter", Verdict::Ok, format!("no systemd address filter: {why}"), None),
        (Err(why), Some(_)) => report.add(
            "ip filter",
            Verdict::Warn,
            format!("{path} is installed, but {why}: it may block modalities or the relay"),
            Some(format!("sudo rm {path} && sudo systemctl daemon-reload && sudo systemctl restart gateway")),
        ),
    }
}

/// Reads the file, reports on its permissions, syntax and names; returns its assignments.
fn check_env_file(path: &Path, report: &mut Report) -> HashMap<String, String> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.add(
                "env file",
                Verdict::Warn,
                format!("{shown} does not exist: every setting takes its default"),
                Some("restore it with `sudo apt-get install --reinstall -o Dpkg::Options::=--force-confmiss gateway`".into()),
            );
            return HashMap::new();
        }
        Err(e) => {
            report.add(
                "env file",
                Verdict::Fail,
                format!("cannot read {shown}: {e}"),
                Some("run as root: `sudo gateway doctor`".into()),
            );
            return HashMap::new();
        }
    };
    let (settings, errors) = envfile::parse(&text);
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.mode() & 0o777;
        let mut detail = format!("{shown}: {} setting(s), mode {mode:04o}", settings.len());
        if meta.uid() == 0 {
            detail.push_str(", owner root");
        }
        report.add("env file", Verdict::Ok, detail, None);
        if mode & 0o077 != 0 {
            report.add(
                "env file",
                Verdict::Warn,
                format!("{shown} is readable by other users, and it holds the relay key"),
                Some(format!("sudo chmod 600 {shown}")),
            );
        }
        if meta.uid() != 0 {
            report.add(
                "env file",
                Verdict::Warn,
                format!("{shown} belongs to uid {}, not root", meta.uid()),
                Some(format!("sudo chown root:root {shown}")),
            );
        }
    }
    for error in errors {
        report.add(
            "env file",
            Verdict::Fail,
            format!("{shown} {error}"),
            Some("write it as NAME=value, or start the line with # to make it a comment".into()),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for setting in &settings {
        let name = setting.name.as_str();
        if let Some(first) = seen.insert(name, setting.line) {
            report.add(
                "env file",
                Verdict::Warn,
                format!(
                    "{name} is set on lines {first} and {}; the last one wins",
                    setting.line
                ),
                Some("delete one of them".into()),
            );
        }
        if !SETTINGS.contains(&name) && !SETTING_ALIASES.contains(&name) {
            let fix = match closest(name) {
                Some(known) => format!("did you mean {known}? rename it on line {}", setting.line),
                None => format!(
                    "remove line {}; gateway(8) lists every setting",
                    setting.line
                ),
            };
            report.add(
                "env file",
                Verdict::Warn,
                format!(
                    "line {}: {name} is not a gateway setting and is ignored",
                    setting.line
                ),
                Some(fix),
            );
        }
    }
    settings.into_iter().map(|s| (s.name, s.value)).collect()
}

/// The known setting nearest to a misspelt `name`, when one is close enough to be meant.
fn closest(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    SETTINGS
        .iter()
        .map(|known| (edit_distance(&upper, known), *known))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance; names are short, so the plain dynamic programme is enough.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Asks the running service for its health; when it is not running, checks the ports are free.
/// Without a relay configured, the service's failing `relay_listener` check is the "cloud link"
/// warning already given, not a second problem.
async fn check_service(config: &Config, cloud_configured: bool, report: &mut Report) {
    let socket = super::control_socket::socket_path(&config.state_dir);
    match super::control_socket::query(&socket).await {
        Ok(health) => {
            let failing: Vec<String> = health
                .checks
                .iter()
                .filter(|(name, c)| !c.ok && (cloud_configured || *name != "relay_listener"))
                .map(|(name, c)| format!("{name}: {}", c.detail))
                .collect();
            if failing.is_empty() {
                report.add(
                    "service",
                    Verdict::Ok,
                    format!(
                        "running {}, healthy, up {} s",
                        health.version, health.listener_uptime_seconds
                    ),
                    None,
                );
            } else {
                report.add(
                    "service",
                    Verdict::Fail,
                    format!("running but unhealthy: {}", failing.join("; ")),
                    Some("`sudo gateway status` shows every check; `journalctl -u gateway -p warning` shows why".into()),
                );
            }
        }
        Err(_) => {
            report.add(
                "service",
                Verdict::Warn,
                format!("not running (no answer on {})", socket.display()),
                Some("`sudo systemctl start gateway`, then `journalctl -u gateway -n 50` if it stops again".into()),
            );
            for (what, port) in [
                ("worklist port", config.mwl_port),
                ("storage port", config.pacs_port),
            ] {
                check_port(what, SocketAddr::new(config.bind, port), report);
            }
        }
    }
}

/// Whether the service could listen on `addr` (checked only while it is not running).
fn check_port(what: &'static str, addr: SocketAddr, report: &mut Report) {
    match TcpListener::bind(addr) {
        Ok(_) => report.add(what, Verdict::Ok, format!("{addr} is free"), None),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => report.add(
            what,
            Verdict::Fail,
            format!("{addr} is in use by another program"),
            Some(format!(
                "find it with `sudo ss -ltnp 'sport = :{}'`, or choose another port",
                addr.port()
            )),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => report.add(
            what,
            Verdict::Ok,
            format!("{addr} needs CAP_NET_BIND_SERVICE, which the systemd unit grants the service"),
            None,
        ),
        Err(e) => report.add(
            what,
            Verdict::Fail,
            format!("cannot listen on {addr}: {e}"),
            Some("check GATEWAY_BIND is an address of this machine".into()),
        ),
    }
}

fn check_disk(config: &Config, report: &mut Report) {
    if !config.state_dir.exists() {
        report.add(
            "disk",
            Verdict::Warn,
            format!("{} does not exist yet", config.state_dir.display()),
            Some("systemd creates it when the service first starts".into()),
        );
        return;
    }
    let disk = super::health::disk_check(&config.state_dir, &HealthLimits::for_config(config));
    let verdict = if disk.ok { Verdict::Ok } else { Verdict::Fail };
    let fix = (!disk.ok).then(|| {
        "free space, or move /var/lib/gateway to a larger disk; images are kept until the disk fills (DISK_MIN_FREE_MIB and DISK_MIN_FREE_PERCENT set the threshold)".to_string()
    });
    report.add("disk", verdict, disk.detail, fix);
}

/// Reaches the relay as the service would: listen on the actions hybrid connection, connect to
/// the events one, and compare clocks.
async fn check_relay(cloud: &CloudSettings, report: &mut Report) {
    let relay = &cloud.relay.connection;
    let host = relay.endpoint.host_str().unwrap_or("the relay").to_string();
    let timeout = Duration::from_secs(15);
    let actions = &cloud.relay.actions_entity;
    let events = &cloud.relay.events_entity;
    let mut relay_clock = None;
    match probe::listen(relay, actions, timeout).await {
        Ok(p) => {
            report.add(
                "relay",
                Verdict::Ok,
                format!(
                    "listening on {actions} at {} works ({} ms)",
                    relay.endpoint,
                    p.took.as_millis()
                ),
                None,
            );
            relay_clock = relay_clock.or(p.clock_skew());
        }
        Err(e) => report.add(
            "relay",
            Verdict::Fail,
            e.to_string(),
            Some(relay_fix(&e, &host, actions, "Listen")),
        ),
    }
    match probe::connect(relay, events, timeout).await {
        Ok(p) => {
            report.add(
                "cloud app",
                Verdict::Ok,
                format!("listening on {events}: events can be delivered"),
                None,
            );
            relay_clock = relay_clock.or(p.clock_skew());
        }
        Err(e @ RelayError::NoListener { .. }) => report.add(
            "cloud app",
            Verdict::Warn,
            format!("nobody listens on {events} now: {e}"),
            Some("the cloud app is down, or AZURE_RELAY_EVENTS_HYBRID_CONNECTION names none (the relay answers both alike); events wait in the gateway's queue meanwhile".into()),
        ),
        Err(e) => report.add("cloud app", Verdict::Fail, e.to_string(), Some(relay_fix(&e, &host, events, "Send"))),
    }
    match relay_clock {
        Some(skew) if skew.abs() > 300.0 => report.add(
            "clock",
            Verdict::Fail,
            format!("this machine's clock is {skew:+.0} s off the relay's"),
            Some("relay tokens and signed messages carry times: turn on NTP (`sudo timedatectl set-ntp true`) or point it at the trust's time server".into()),
        ),
        Some(skew) if skew.abs() > 30.0 => report.add(
            "clock",
            Verdict::Warn,
            format!("this machine's clock is {skew:+.0} s off the relay's"),
            Some("turn on NTP: `sudo timedatectl set-ntp true`".into()),
        ),
        Some(skew) => report.add(
            "clock",
            Verdict::Ok,
            format!("within {:.0} s of the relay's clock", skew.abs().max(1.0)),
            None,
        ),
        None => {}
    }
}

/// What to do about a relay error, in terms of the settings and the network.
fn relay_fix(error: &RelayError, host: &str, entity: &str, right: &str) -> String {
    match error {
        RelayError::Unauthorized { .. } => "copy AZURE_RELAY_KEY_NAME and AZURE_RELAY_SHARED_ACCESS_KEY again from the relay's shared access policy, and check the clock".into(),
        RelayError::Forbidden { .. } => format!("the shared access policy needs the {right} right on {entity}, and AZURE_RELAY_NAMESPACE must be the policy's namespace"),
        RelayError::NoSuchEntity { .. } | RelayError::NoListener { .. } => format!("no hybrid connection named {entity}: check AZURE_RELAY_HYBRID_CONNECTION and AZURE_RELAY_EVENTS_HYBRID_CONNECTION"),
        RelayError::Transport(detail) if detail.contains("certificate") || detail.contains("Certificate") || detail.contains("UnknownIssuer") => "TLS was refused: behind a TLS-inspecting proxy, copy its CA certificate to /usr/local/share/ca-certificates/ and run `sudo update-ca-certificates` (or set SSL_CERT_FILE)".into(),
        RelayError::Transport(_) | RelayError::Timeout(_) => format!("allow outbound TCP 443 to {host} in the firewall, or set HTTPS_PROXY to the trust's proxy"),
        RelayError::Status { .. } | RelayError::Closed(_) => "try again in a minute; if it persists, check the Azure status page and the relay's metrics".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_setting_a_typo_meant() {
        assert_eq!(closest("MWL_PROT"), Some("MWL_PORT"));
        assert_eq!(closest("pacs_aet"), Some("PACS_AET"));
        assert_eq!(
            closest("AZURE_RELAY_SHARED_ACCESS_KY"),
            Some("AZURE_RELAY_SHARED_ACCESS_KEY")
        );
        assert_eq!(closest("COMPLETELY_UNRELATED"), None);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn query_retrieve_is_named_and_its_weak_spots_warned() {
        let set = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
        let addresses = Some(["10.0.0.7".parse().unwrap()].into_iter().collect());
        // (QR_ALLOWED_AETS, ALLOWED_CALLING_AETS, ALLOWED_SOURCE_ADDRESSES, finding)
        let cases = [
            (None, None, None, None),
            (
                set(&["WS1"]),
                None,
                None,
                Some((Verdict::Warn, "any host claiming")),
            ),
            (
                set(&["WS1"]),
                set(&["MG1"]),
                addresses.clone(),
                Some((Verdict::Warn, "WS1")),
            ),
            (
                set(&["WS1"]),
                set(&["MG1", "WS1"]),
                addresses.clone(),
                Some((Verdict::Ok, "on for 1")),
            ),
            (
                set(&["WS1"]),
                None,
                addresses,
                Some((Verdict::Ok, "on for 1")),
            ),
        ];
        for (qr, calling, sources, want) in cases {
            let mut config = Config::new("/tmp".into());
            config.query_retrieve.allowed_aets = qr;
            config.allowed_calling_aets = calling;
            config.allowed_source_addresses = sources;
            let mut report = Report::default();
            check_query_retrieve(&config, Path::new("/etc/gateway/gateway.env"), &mut report);
            let found = report
                .findings
                .first()
                .map(|f| (f.verdict, f.detail.clone()));
            match (found, want) {
                (None, None) => {}
                (Some((verdict, detail)), Some((v, text))) => {
                    assert_eq!(verdict, v, "{detail}");
                    assert!(detail.contains(text), "{detail}");
                }
                (found, want) => panic!("{found:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn a_report_fails_only_on_a_failure() {
        let mut report = Report::default();
        report.add("a", Verdict::Warn, "w".into(), Some("do x".into()));
        assert!(!report.failed());
        assert!(report.render().contains("fix: do x"));
        report.add("b", Verdict::Fail, "f".into(), None);
        assert!(report.failed());
        assert!(report
            .render()
            .contains("1 problem(s) to fix, 1 warning(s)"));
    }
}
