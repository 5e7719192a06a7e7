//! Configuration from the environment (`/etc/gateway/gateway.env` under systemd). Names follow
//! the NHS gateway where it has one (`MWL_AET`, `MWL_PORT`, `PACS_AET`, `PACS_PORT`).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Every variable the gateway reads. `gateway doctor` calls any other name in the env file a
/// likely typo, and a test checks that the packaged `gateway.env` documents each of these.
pub const SETTINGS: &[&str] = &[
    "METRICS_ADDR",
    "MWL_AET",
    "MWL_PORT",
    "PACS_AET",
    "PACS_PORT",
    "GATEWAY_BIND",
    "PACS_FORWARD",
    "RETENTION_DAYS",
    "RETENTION_DELETE_FORWARDED",
    "PACS_COMMIT_TIMEOUT_SECS",
    "PACS_FORWARD_TLS_CA_FILE",
    "FHIR_DESTINATIONS",
    "FHIR_CA_FILE",
    "QR_ALLOWED_AETS",
    "QR_MOVE_DESTINATIONS",
    "QR_MAX_MATCHES",
    "MWL_TLS_PORT",
    "PACS_TLS_PORT",
    "DICOM_TLS_CERT_FILE",
    "DICOM_TLS_KEY_FILE",
    "DICOM_TLS_CLIENT_CA_FILE",
    "ALLOWED_CALLING_AETS",
    "ALLOWED_SOURCE_ADDRESSES",
    "DICOM_IDLE_TIMEOUT_SECS",
    "DICOM_MAX_PDU",
    "DICOM_MAX_ASSOCIATIONS",
    "DICOM_MAX_ASSOCIATIONS_PER_SOURCE",
    "DICOM_ARTIM_TIMEOUT_SECS",
    "MPPS_SET_FROM_ANY_AE",
    "THUMBNAIL_WORKERS",
    "THUMBNAIL_MEMORY_MIB",
    "THUMBNAIL_TIMEOUT_SECS",
    "THUMBNAIL_RENDERER",
    "DISK_MIN_FREE_MIB",
    "DISK_MIN_FREE_PERCENT",
    "STORAGE_MIN_FREE_MIB",
    "GATEWAY_STATE_DIR",
    "GATEWAY_NAME",
    "SIGNING_KEY",
    "PEER_PUBLIC_KEYS",
    // NHS-compatible mode for actions and event replies; ACCEPT_UNSIGNED_ACTIONS is its old
    // name, still read (cloud::link).
    "NHS_COMPATIBLE",
    "ACCEPT_UNSIGNED_ACTIONS",
    "AZURE_RELAY_NAMESPACE",
    "AZURE_RELAY_HYBRID_CONNECTION",
    "AZURE_RELAY_EVENTS_HYBRID_CONNECTION",
    "AZURE_RELAY_KEY_NAME",
    "AZURE_RELAY_SHARED_ACCESS_KEY",
    "AZURE_RELAY_ENDPOINT",
    "AZURE_RELAY_TOKEN_TTL_SECONDS",
    "RELAY_MAX_MESSAGE_BYTES",
    "RELAY_MAX_CONCURRENT_MESSAGES",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "LOG_LEVEL",
];

/// Other spellings the gateway honours (lower-case proxy variables as curl reads them, and the
/// libraries' own names), accepted by `gateway doctor` without comment.
pub const SETTING_ALIASES: &[&str] = &[
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "SSL_CERT_DIR",
    "RUST_LOG",
];

/// Everything the DICOM services need to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// AE title of the worklist and MPPS SCP.
    /// Where Prometheus scrapes `/metrics` (`METRICS_ADDR`, e.g. 127.0.0.1:9464); off when unset.
    pub metrics_addr: Option<SocketAddr>,
    pub mwl_aet: String,
    pub mwl_port: u16,
    /// AE title of the storage SCP.
    pub pacs_aet: String,
    pub pacs_port: u16,
    /// Address both listeners bind (`GATEWAY_BIND`, default all interfaces).
    pub bind: IpAddr,
    /// Holds `gateway.redb` and `storage/`.
    pub state_dir: PathBuf,
    /// Calling AE titles allowed to associate; `None` lets any AE in.
    pub allowed_calling_aets: Option<HashSet<String>>,
    /// Source addresses allowed to connect; `None` lets any address in.
    pub allowed_source_addresses: Option<HashSet<IpAddr>>,
    /// An association idle this long is aborted (`DICOM_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Largest PDU we accept (`DICOM_MAX_PDU`).
    pub max_pdu: u32,
    /// Associations open at once on both ports together (`DICOM_MAX_ASSOCIATIONS`). Each may
    /// hold a 16 MiB message in memory, so the default keeps the worst case well under the
    /// unit's `MemoryMax=2G`; beyond it a new association gets A-ASSOCIATE-RJ (transient).
    pub max_associations: usize,
    /// Associations open at once from one source address
    /// (`DICOM_MAX_ASSOCIATIONS_PER_SOURCE`), so that one host cannot take every slot.
    pub max_associations_per_source: usize,
    /// How long a new connection may take to send its A-ASSOCIATE-RQ, and a rejected peer to
    /// close (`DICOM_ARTIM_TIMEOUT_SECS`, the ARTIM timer of PS3.8 9.1.5).
    pub artim_timeout: Duration,
    /// Accept an MPPS N-SET from any calling AE, not only from the AE that created the step
    /// (`MPPS_SET_FROM_ANY_AE`).
    pub mpps_set_from_any_ae: bool,
    /// This gateway's name in its events (`GATEWAY_NAME`).
    pub name: String,
    /// Threads making thumbnails (`THUMBNAIL_WORKERS`); few, so that decoding never starves
    /// the DICOM receive path of CPU.
    pub thumbnail_workers: usize,
    /// Address space one thumbnail render child may map (`THUMBNAIL_MEMORY_MIB`): a decoder fed
    /// hostile data fails there, alone, instead of taking the unit to its `MemoryMax`.
    pub thumbnail_memory_mib: u64,
    /// Wall-clock (and CPU-second) limit of one render child (`THUMBNAIL_TIMEOUT_SECS`); the
    /// parent kills it after this.
    pub thumbnail_timeout: Duration,
    /// The program run as `PROGRAM render-thumbnail` for each thumbnail: the gateway binary
    /// itself (`/proc/self/exe`, the running version even after an upgrade replaced the file).
    /// Tests that run the service inside a test binary point it at the built `gateway`;
    /// `THUMBNAIL_RENDERER` names a wrapper where the binary cannot exec itself (an arm64
    /// gateway run under qemu-user without binfmt_misc).
    pub thumbnail_renderer: PathBuf,
    /// Free space under the state directory below which `health` and `gateway doctor` say the
    /// gateway is unhealthy: MiB (`DISK_MIN_FREE_MIB`) and per cent (`DISK_MIN_FREE_PERCENT`).
    pub disk_min_free_mib: u64,
    pub disk_min_free_percent: f64,
    /// Free space below which C-STORE is refused with A700 (`STORAGE_MIN_FREE_MIB`; 0: never).
    pub storage_min_free_mib: u64,
    /// Days a stored object is kept once it is safe at every PACS (`RETENTION_DAYS`); `None`
    /// keeps everything ([`crate::storage::retention`]).
    pub retention_days: Option<u32>,
    /// Whether a success status from a PACS that does not do Storage Commitment counts as safe
    /// for retention (`RETENTION_DELETE_FORWARDED`; a PACS that does must commit).
    pub retention_delete_forwarded: bool,
    /// How long a PACS may take to answer a Storage Commitment request before it is asked again
    /// (`PACS_COMMIT_TIMEOUT_SECS`, doubling per attempt up to 16 times).
    pub commit_timeout: Duration,
    /// PEM CA certificates a `+tls` destination's certificate must chain to
    /// (`PACS_FORWARD_TLS_CA_FILE`; required when one is `+tls`).
    pub forward_tls_ca_file: Option<PathBuf>,
    /// DICOM over TLS (PS3.15 Annex B) beside the plain ports, when either TLS port is set.
    pub tls: Option<TlsSettings>,
    /// The hospital PACS (one or more) every stored object is forwarded to (`PACS_FORWARD`).
    pub forward_to: Vec<crate::forward::Destination>,
    /// Study Root Query/Retrieve on the storage AE; off unless `QR_ALLOWED_AETS` is set.
    pub query_retrieve: QrSettings,
    /// Where the FHIR messages the cloud sends may be delivered (`FHIR_DESTINATIONS`,
    /// `FHIR_CA_FILE`); none unless set.
    pub fhir: crate::fhir::FhirSettings,
}

/// Who may query and retrieve the stored images, and where C-MOVE may send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrSettings {
    /// Calling AE titles allowed C-FIND/C-GET/C-MOVE (`QR_ALLOWED_AETS`); `None`: Q/R is not
    /// offered at all (least privilege: the store holds patients' images).
    pub allowed_aets: Option<HashSet<String>>,
    /// The only C-MOVE destinations (`QR_MOVE_DESTINATIONS`, `AE@host:port`); a Move
    /// Destination not here is refused with A801.
    pub move_destinations: Vec<crate::forward::Destination>,
    /// Most C-FIND matches returned (`QR_MAX_MATCHES`); beyond it the query ends with A700 and a
    /// comment saying so, after the first this many.
    pub max_matches: usize,
}

impl QrSettings {
    pub fn enabled(&self) -> bool {
        self.allowed_aets.is_some()
    }

    pub fn allows(&self, calling_ae: &str) -> bool {
        self.allowed_aets
            .as_ref()
            .is_some_and(|set| set.contains(calling_ae))
    }
}

/// DICOM TLS listeners and their credentials (`MWL_TLS_PORT`, `PACS_TLS_PORT`,
/// `DICOM_TLS_CERT_FILE`, `DICOM_TLS_KEY_FILE`, `DICOM_TLS_CLIENT_CA_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The worklist/MPPS AE over TLS (0 picks a free port, as for the plain ones).
    pub mwl_port: Option<u16>,
    /// The storage AE over TLS.
    pub pacs_port: Option<u16>,
    /// PEM: the server's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM: when set, a client must present a certificate issued by one of these CAs.
    pub client_ca_file: Option<PathBuf>,
}

/// Why the environment does not make a configuration.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

impl Config {
    /// Defaults for everything but the state directory.
    pub fn new(state_dir: PathBuf) -> Config {
        Config {
            metrics_addr: None,
            mwl_aet: "SCREENING_MWL".into(),
            mwl_port: 4243,
            pacs_aet: "SCREENING_PACS".into(),
            pacs_port: 4244,
            bind: IpAddr::from([0, 0, 0, 0]),
            state_dir,
            allowed_calling_aets: None,
            allowed_source_addresses: None,
            idle_timeout: Duration::from_secs(120),
            max_pdu: 65536,
            max_associations: 32,
            max_associations_per_source: 8,
            artim_timeout: Duration::from_secs(10),
            mpps_set_from_any_ae: false,
            name: "gateway".into(),
            thumbnail_workers: 1,
            thumbnail_memory_mib: 1024,
            thumbnail_timeout: Duration::from_secs(60),
            thumbnail_renderer: PathBuf::from("/proc/self/exe"),
            disk_min_free_mib: 1024,
            disk_min_free_percent: 5.0,
            storage_min_free_mib: 256,
            forward_to: Vec::new(),
            fhir: crate::fhir::FhirSettings::default(),
            query_retrieve: QrSettings {
                allowed_aets: None,
                move_destinations: Vec::new(),
                max_matches: 1000,
            },
            tls: None,
            retention_days: None,
            retention_delete_forwarded: false,
            commit_timeout: Duration::from_secs(300),
            forward_tls_ca_file: None,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let state_dir = get("GATEWAY_STATE_DIR").unwrap_or_else(|| "/var/lib/gateway".into());
        let mut config = Config::new(PathBuf::from(state_dir));
        if let Some(v) = get("METRICS_ADDR") {
            config.metrics_addr = Some(parse("METRICS_ADDR", &v)?);
        }
        if let Some(v) = get("MWL_AET") {
            config.mwl_aet = ae_title("MWL_AET", &v)?;
        }
        if let Some(v) = get("PACS_AET") {
            config.pacs_aet = ae_title("PACS_AET", &v)?;
        }
        if let Some(v) = get("MWL_PORT") {
            config.mwl_port = parse("MWL_PORT", &v)?;
        }
        if let Some(v) = get("PACS_PORT") {
            config.pacs_port = parse("PACS_PORT", &v)?;
        }
        if let Some(v) = get("GATEWAY_BIND") {
            config.bind = parse("GATEWAY_BIND", &v)?;
        }
        if let Some(v) = get("ALLOWED_CALLING_AETS") {
            let set = list(&v)
                .map(|ae| ae_title("ALLOWED_CALLING_AETS", ae))
                .collect::<Result<HashSet<_>, _>>()?;
            config.allowed_calling_aets = Some(set);
        }
        if let Some(v) = get("ALLOWED_SOURCE_ADDRESSES") {
            let set = list(&v)
                .map(|a| parse("ALLOWED_SOURCE_ADDRESSES", a))
                .collect::<Result<HashSet<_>, _>>()?;
            config.allowed_source_addresses = Some(set);
        }
        if let Some(v) = get("DICOM_IDLE_TIMEOUT_SECS") {
            config.idle_timeout = Duration::from_secs(parse("DICOM_IDLE_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("DICOM_MAX_PDU") {
            let n: u32 = parse("DICOM_MAX_PDU", &v)?;
            if n < 4096 {
                return Err(invalid("DICOM_MAX_PDU", &v, "must be at least 4096"));
            }
            config.max_pdu = n;
        }
        if let Some(v) = get("DICOM_MAX_ASSOCIATIONS") {
            config.max_associations = at_least_one("DICOM_MAX_ASSOCIATIONS", &v)?;
        }
        if let Some(v) = get("DICOM_MAX_ASSOCIATIONS_PER_SOURCE") {
            config.max_associations_per_source =
                at_least_one("DICOM_MAX_ASSOCIATIONS_PER_SOURCE", &v)?;
        }
        if let Some(v) = get("DICOM_ARTIM_TIMEOUT_SECS") {
            let secs = at_least_one("DICOM_ARTIM_TIMEOUT_SECS", &v)?;
            config.artim_timeout = Duration::from_secs(secs as u64);
        }
        if let Some(v) = get("MPPS_SET_FROM_ANY_AE") {
            config.mpps_set_from_any_ae = boolean("MPPS_SET_FROM_ANY_AE", &v)?;
        }
        if let Some(v) = get("GATEWAY_NAME") {
            config.name = v.trim().to_string();
        }
        if let Some(v) = get("THUMBNAIL_WORKERS") {
            config.thumbnail_workers = at_least_one("THUMBNAIL_WORKERS", &v)?;
        }
        if let Some(v) = get("PACS_FORWARD") {
            for entry in v.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()) {
                let destination = crate::forward::Destination::parse(entry)
                    .map_err(|e| invalid("PACS_FORWARD", &v, &e.to_string()))?;
                if !config.forward_to.contains(&destination) {
                    config.forward_to.push(destination);
                }
            }
        }
        if let Some(v) = get("FHIR_DESTINATIONS") {
            for entry in v.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()) {
                let destination = crate::fhir::Destination::parse(entry)
                    .map_err(|e| invalid("FHIR_DESTINATIONS", &v, &e.to_string()))?;
                if !config.fhir.destinations.contains(&destination) {
                    config.fhir.destinations.push(destination);
                }
            }
        }
        config.fhir.ca_file = get("FHIR_CA_FILE").map(PathBuf::from);
        if let Some(v) = get("QR_ALLOWED_AETS") {
            let set = list(&v)
                .map(|ae| ae_title("QR_ALLOWED_AETS", ae))
                .collect::<Result<HashSet<_>, _>>()?;
            config.query_retrieve.allowed_aets = Some(set);
        }
        if let Some(v) = get("QR_MOVE_DESTINATIONS") {
            for entry in v.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()) {
                let destination = crate::forward::Destination::parse(entry)
                    .map_err(|e| invalid("QR_MOVE_DESTINATIONS", &v, &e.to_string()))?;
                if destination.tls {
                    // C-MOVE opens its association in plain TCP: refused rather than sent in
                    // clear to a destination the operator meant to reach over TLS.
                    return Err(invalid(
                        "QR_MOVE_DESTINATIONS",
                        &v,
                        "+tls is not supported for C-MOVE destinations yet (only in PACS_FORWARD)",
                    ));
                }
                config.query_retrieve.move_destinations.push(destination);
            }
        }
        if let Some(v) = get("QR_MAX_MATCHES") {
            config.query_retrieve.max_matches = at_least_one("QR_MAX_MATCHES", &v)?;
        }
        config.forward_tls_ca_file = get("PACS_FORWARD_TLS_CA_FILE")
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from);
        if let Some(secure) = config.forward_to.iter().find(|d| d.tls) {
            if config.forward_tls_ca_file.is_none() {
                return Err(invalid(
                    "PACS_FORWARD_TLS_CA_FILE",
                    "",
                    &format!(
                        "must name a PEM file of the CA certificates {secure} is checked against"
                    ),
                ));
            }
        }
        if let Some(v) = get("PACS_COMMIT_TIMEOUT_SECS") {
            let secs = at_least_one("PACS_COMMIT_TIMEOUT_SECS", &v)?;
            config.commit_timeout = Duration::from_secs(secs as u64);
        }
        config.retention_delete_forwarded = get("RETENTION_DELETE_FORWARDED")
            .map(|b| boolean("RETENTION_DELETE_FORWARDED", &b))
            .transpose()?
            .unwrap_or(false);
        if let Some(v) = get("RETENTION_DAYS") {
            let days = at_least_one("RETENTION_DAYS", &v)?;
            if config.forward_to.is_empty() {
                return Err(invalid(
                    "RETENTION_DAYS",
                    &v,
                    "needs PACS_FORWARD: without a PACS the objects exist nowhere else",
                ));
            }
            config.retention_days = Some(u32::try_from(days).unwrap_or(u32::MAX));
        }
        let mwl_tls: Option<u16> = get("MWL_TLS_PORT")
            .map(|v| parse("MWL_TLS_PORT", &v))
            .transpose()?;
        let pacs_tls: Option<u16> = get("PACS_TLS_PORT")
            .map(|v| parse("PACS_TLS_PORT", &v))
            .transpose()?;
        if mwl_tls.is_some() || pacs_tls.is_some() {
            let required = |name: &'static str| {
                get(name).map(PathBuf::from).ok_or_else(|| {
                    invalid(
                        name,
                        "",
                        "must name a PEM file when MWL_TLS_PORT or PACS_TLS_PORT is set",
                    )
                })
            };
            config.tls = Some(TlsSettings {
                mwl_port: mwl_tls,
                pacs_port: pacs_tls,
                cert_file: required("DICOM_TLS_CERT_FILE")?,
                key_file: required("DICOM_TLS_KEY_FILE")?,
                client_ca_file: get("DICOM_TLS_CLIENT_CA_FILE").map(PathBuf::from),
            });
        }
        if let Some(v) = get("THUMBNAIL_MEMORY_MIB") {
            let mib: u64 = parse("THUMBNAIL_MEMORY_MIB", &v)?;
            if mib < 64 {
                return Err(invalid("THUMBNAIL_MEMORY_MIB", &v, "must be at least 64"));
            }
            config.thumbnail_memory_mib = mib;
        }
        if let Some(v) = get("THUMBNAIL_RENDERER") {
            config.thumbnail_renderer = PathBuf::from(v.trim());
        }
        if let Some(v) = get("THUMBNAIL_TIMEOUT_SECS") {
            let secs = at_least_one("THUMBNAIL_TIMEOUT_SECS", &v)?;
            config.thumbnail_timeout = Duration::from_secs(secs as u64);
        }
        if let Some(v) = get("DISK_MIN_FREE_MIB") {
            config.disk_min_free_mib = parse("DISK_MIN_FREE_MIB", &v)?;
        }
        if let Some(v) = get("STORAGE_MIN_FREE_MIB") {
            config.storage_min_free_mib = parse("STORAGE_MIN_FREE_MIB", &v)?;
        }
        if let Some(v) = get("DISK_MIN_FREE_PERCENT") {
            let percent: f64 = parse("DISK_MIN_FREE_PERCENT", &v)?;
            if !(0.0..=100.0).contains(&percent) {
                return Err(invalid("DISK_MIN_FREE_PERCENT", &v, "must be 0 to 100"));
            }
            config.disk_min_free_percent = percent;
        }
        if config.mwl_port == config.pacs_port && config.mwl_port != 0 {
            return Err(invalid(
                "PACS_PORT",
                &config.pacs_port.to_string(),
                "must differ from MWL_PORT",
            ));
        }
        Ok(config)
    }
}

fn invalid(name: &'static str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        why: why.to_string(),
    }
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', ' ', '\\'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A count that must be at least 1: zero would refuse everything, which no one means.
fn at_least_one(name: &'static str, value: &str) -> Result<usize, ConfigError> {
    match parse(name, value)? {
        0 => Err(invalid(name, value, "must be at least 1")),
        n => Ok(n),
    }
}

fn boolean(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(name, value, "must be true or false")),
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| invalid(name, value, &e.to_string()))
}

/// An AE title: 1–16 characters of printable ASCII without backslash (PS3.5 AE).
fn ae_title(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        return Err(invalid(
            name,
            value,
            "an AE title is 1–16 printable ASCII characters",
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_packaged_env_file_and_man_page_document_every_setting() {
        let env_file = include_str!("../../packaging/gateway.env");
        let assigned: Vec<&str> = env_file
            .lines()
            .map(|l| l.trim_start_matches('#'))
            .filter_map(|l| l.split_once('=').map(|(name, _)| name))
            .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        for name in SETTINGS {
            assert!(assigned.contains(name), "gateway.env lacks {name}");
        }
        for name in &assigned {
            assert!(SETTINGS.contains(name), "gateway.env sets unknown {name}");
        }
        let man_page = include_str!("../../packaging/gateway.8");
        for name in SETTINGS {
            assert!(
                man_page.contains(name),
                "gateway(8) does not mention {name}"
            );
        }
    }

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_the_seed_names_and_lists() {
        let c = from(&[
            ("MWL_AET", "MWL"),
            ("MWL_PORT", "11112"),
            ("PACS_PORT", "11113"),
            ("GATEWAY_STATE_DIR", "/tmp/x"),
            ("ALLOWED_CALLING_AETS", "HOLOGIC1, GE2"),
            ("ALLOWED_SOURCE_ADDRESSES", "127.0.0.1"),
        ])
        .unwrap();
        assert_eq!(c.mwl_aet, "MWL");
        assert_eq!((c.mwl_port, c.pacs_port), (11112, 11113));
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        let aets = c.allowed_calling_aets.unwrap();
        assert!(aets.contains("HOLOGIC1") && aets.contains("GE2") && aets.len() == 2);
        assert_eq!(c.allowed_source_addresses.unwrap().len(), 1);
    }

    #[test]
    fn retention_needs_a_pacs_and_deleting_on_forwarding_alone_an_explicit_yes() {
        let pacs = ("PACS_FORWARD", "PACS@10.0.0.5:104");
        let yes = ("RETENTION_DELETE_FORWARDED", "true");
        let days = ("RETENTION_DAYS", "30");
        assert_eq!(from(&[]).unwrap().retention_days, None);
        for (pairs, retention, delete_forwarded) in [
            (vec![pacs, days], Some(30), false),
            (vec![pacs, yes, days], Some(30), true),
            (vec![pacs], None, false),
        ] {
            let c = from(&pairs).unwrap();
            assert_eq!(
                (c.retention_days, c.retention_delete_forwarded),
                (retention, delete_forwarded),
                "{pairs:?}"
            );
        }
        for (pairs, needle) in [
            (vec![yes, days], "needs PACS_FORWARD"),
            (vec![pacs, yes, ("RETENTION_DAYS", "0")], "at least 1"),
        ] {
            let e = from(&pairs).unwrap_err();
            assert!(
                e.to_string().starts_with("RETENTION_DAYS") && e.to_string().contains(needle),
                "{e}"
            );
        }
        assert_eq!(
            from(&[("PACS_COMMIT_TIMEOUT_SECS", "60")])
                .unwrap()
                .commit_timeout,
            Duration::from_secs(60)
        );
        assert!(from(&[("PACS_COMMIT_TIMEOUT_SECS", "0")]).is_err());
    }

    #[test]
    fn a_tls_destination_needs_a_ca_file() {
        let secure = ("PACS_FORWARD", "PACS@10.0.0.5:2762+tls");
        let e = from(&[secure]).unwrap_err();
        assert!(e.to_string().starts_with("PACS_FORWARD_TLS_CA_FILE"), "{e}");
        let c = from(&[
            secure,
            ("PACS_FORWARD_TLS_CA_FILE", "/etc/gateway/pacs-ca.pem"),
        ])
        .unwrap();
        assert!(c.forward_to[0].tls);
        assert_eq!(
            c.forward_tls_ca_file,
            Some(PathBuf::from("/etc/gateway/pacs-ca.pem"))
        );
    }

    #[test]
    fn tls_ports_need_a_certificate_and_key() {
        assert_eq!(from(&[]).unwrap().tls, None);
        let e = from(&[("PACS_TLS_PORT", "2762")]).unwrap_err();
        assert!(e.to_string().starts_with("DICOM_TLS_CERT_FILE"), "{e}");
        let e = from(&[("PACS_TLS_PORT", "2762"), ("DICOM_TLS_CERT_FILE", "/c.pem")]).unwrap_err();
        assert!(e.to_string().starts_with("DICOM_TLS_KEY_FILE"), "{e}");
        let c = from(&[
            ("MWL_TLS_PORT", "2761"),
            ("DICOM_TLS_CERT_FILE", "/c.pem"),
            ("DICOM_TLS_KEY_FILE", "/k.pem"),
        ])
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!((tls.mwl_port, tls.pacs_port), (Some(2761), None));
        assert_eq!(tls.client_ca_file, None);
        assert!(from(&[("MWL_TLS_PORT", "tls")]).is_err());
    }

    #[test]
    fn query_retrieve_is_off_unless_aets_are_listed() {
        let off = from(&[]).unwrap().query_retrieve;
        assert!(!off.enabled() && !off.allows("WS1"));
        assert_eq!(off.max_matches, 1000);
        let on = from(&[
            ("QR_ALLOWED_AETS", "WS1, WS2"),
            (
                "QR_MOVE_DESTINATIONS",
                "WS1@10.0.0.7:104,ARCHIVE@[::1]:11112",
            ),
            ("QR_MAX_MATCHES", "50"),
        ])
        .unwrap()
        .query_retrieve;
        assert!(on.allows("WS1") && on.allows("WS2") && !on.allows("MODALITY1"));
        let moves: Vec<String> = on.move_destinations.iter().map(|d| d.to_string()).collect();
        assert_eq!(moves, ["WS1@10.0.0.7:104", "ARCHIVE@[::1]:11112"]);
        assert_eq!(on.max_matches, 50);
        // (setting, value, named in the error)
        let bad = [
            ("QR_ALLOWED_AETS", "A_TITLE_LONGER_THAN_16"),
            ("QR_MOVE_DESTINATIONS", "WS1@host"),
            ("QR_MOVE_DESTINATIONS", "WS1@10.0.0.7:104+tls"),
            ("QR_MAX_MATCHES", "0"),
        ];
        for (name, value) in bad {
            let e = from(&[(name, value)]).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn fhir_destinations_are_a_list_of_urls() {
        let c = from(&[(
            "FHIR_DESTINATIONS",
            "https://engine.trust.local/fhir, http://10.1.2.3:8080/r4/ https://engine.trust.local/fhir/",
        )])
        .unwrap();
        let urls: Vec<String> = c.fhir.destinations.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            urls,
            ["https://engine.trust.local/fhir", "http://10.1.2.3:8080/r4"]
        );
        assert!(from(&[]).unwrap().fhir.destinations.is_empty());
        let e = from(&[("FHIR_DESTINATIONS", "engine.trust.local")]).unwrap_err();
        assert!(e.to_string().starts_with("FHIR_DESTINATIONS"), "{e}");
    }

    #[test]
    fn forwarding_destinations_are_a_list() {
        let c = from(&[(
            "PACS_FORWARD",
            "PACS@10.0.0.5:104, VNA@vna.local:11112 PACS@10.0.0.5:104",
        )])
        .unwrap();
        let names: Vec<String> = c.forward_to.iter().map(|d| d.to_string()).collect();
        assert_eq!(names, ["PACS@10.0.0.5:104", "VNA@vna.local:11112"]);
        assert!(from(&[]).unwrap().forward_to.is_empty());
        let e = from(&[("PACS_FORWARD", "10.0.0.5:104")]).unwrap_err();
        assert!(e.to_string().starts_with("PACS_FORWARD"), "{e}");
        assert!(e.to_string().contains("AE@host:port"), "{e}");
    }

    #[test]
    fn disk_thresholds_are_settings_and_bounded() {
        let c = from(&[
            ("DISK_MIN_FREE_MIB", "64"),
            ("DISK_MIN_FREE_PERCENT", "0.5"),
        ])
        .unwrap();
        assert_eq!((c.disk_min_free_mib, c.disk_min_free_percent), (64, 0.5));
        let d = from(&[]).unwrap();
        assert_eq!((d.disk_min_free_mib, d.disk_min_free_percent), (1024, 5.0));
        for (name, value) in [
            ("DISK_MIN_FREE_PERCENT", "101"),
            ("DISK_MIN_FREE_PERCENT", "-1"),
            ("DISK_MIN_FREE_MIB", "lots"),
        ] {
            let e = from(&[(name, value)]).unwrap_err();
            assert!(e.to_string().starts_with(name), "{e}");
        }
    }

    #[test]
    fn names_the_bad_variable() {
        let e = from(&[("MWL_PORT", "http")]).unwrap_err();
        assert!(e.to_string().starts_with("MWL_PORT=\"http\""), "{e}");
        let e = from(&[("PACS_AET", "A_TITLE_LONGER_THAN_16")]).unwrap_err();
        assert!(e.to_string().contains("PACS_AET"), "{e}");
        assert!(from(&[("MWL_PORT", "4000"), ("PACS_PORT", "4000")]).is_err());
        for name in [
            "THUMBNAIL_WORKERS",
            "THUMBNAIL_TIMEOUT_SECS",
            "DICOM_MAX_ASSOCIATIONS",
            "DICOM_MAX_ASSOCIATIONS_PER_SOURCE",
            "DICOM_ARTIM_TIMEOUT_SECS",
        ] {
            let e = from(&[(name, "0")]).unwrap_err();
            assert!(e.to_string().starts_with(name), "{e}");
            assert!(e.to_string().contains("at least 1"), "{e}");
        }
        let e = from(&[("MPPS_SET_FROM_ANY_AE", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
    }

    #[test]
    fn limits_have_safe_defaults_and_can_be_changed() {
        let c = from(&[]).unwrap();
        assert_eq!((c.max_associations, c.max_associations_per_source), (32, 8));
        assert_eq!(c.artim_timeout, Duration::from_secs(10));
        assert!(!c.mpps_set_from_any_ae);
        let c = from(&[
            ("DICOM_MAX_ASSOCIATIONS", "4"),
            ("DICOM_MAX_ASSOCIATIONS_PER_SOURCE", "2"),
            ("DICOM_ARTIM_TIMEOUT_SECS", "3"),
            ("MPPS_SET_FROM_ANY_AE", "true"),
        ])
        .unwrap();
        assert_eq!((c.max_associations, c.max_associations_per_source), (4, 2));
        assert_eq!(c.artim_timeout, Duration::from_secs(3));
        assert!(c.mpps_set_from_any_ae);
    }
}
