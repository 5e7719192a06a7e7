//! Relay settings, read from the environment names both sides share (as the NHS seeds' RELAY_SETUP).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use super::sas::{self, Token};

/// Azure's DNS suffix, appended when `AZURE_RELAY_NAMESPACE` is a bare name.
const AZURE_SUFFIX: &str = ".servicebus.windows.net";

/// Something wrong in the relay settings, said so an operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is not a valid URL: {reason}")]
    BadUrl { name: &'static str, reason: String },
    #[error("{name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Bounds on what the peers at the other end of the relay can make this client hold. The
/// defaults suit both deployables; the gateway reads them from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest websocket message or frame read (`RELAY_MAX_MESSAGE_BYTES`). tungstenite's own
    /// default is 64 MiB, which every concurrent rendezvous could be made to buffer.
    pub max_message_bytes: usize,
    /// Rendezvous a listener serves at once (`RELAY_MAX_CONCURRENT_MESSAGES`); a sender beyond
    /// them is rejected with 503, which senders retry.
    pub max_concurrent_messages: usize,
}

impl Limits {
    /// 1 MiB: an image event with its base64 thumbnail is about 50 KB, actions are smaller.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
    /// Actions are quick to apply; 16 at once is far above what one clinic's cloud app sends.
    pub const DEFAULT_MAX_CONCURRENT_MESSAGES: usize = 16;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: Limits::DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_messages: Limits::DEFAULT_MAX_CONCURRENT_MESSAGES,
        }
    }
}

/// How to reach and authenticate to one relay namespace.
#[derive(Clone)]
pub struct Config {
    /// The namespace tokens are signed for, e.g. `clinic-relay.servicebus.windows.net`.
    pub namespace: String,
    /// Where to dial: `wss://{namespace}` in production, `ws://127.0.0.1:PORT` for the emulator.
    pub endpoint: Url,
    /// The shared access rule's name (`AZURE_RELAY_KEY_NAME`).
    pub key_name: String,
    /// The rule's key string (`AZURE_RELAY_SHARED_ACCESS_KEY`); never printed.
    pub key: String,
    /// Lifetime of each token; listeners renew before it runs out.
    pub token_ttl: Duration,
    /// An HTTP CONNECT proxy for `wss://` (from `HTTPS_PROXY` unless `NO_PROXY` covers the host).
    pub proxy: Option<Url>,
    /// Message size and concurrency bounds for every socket opened with this config.
    pub limits: Limits,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field("endpoint", &self.endpoint.as_str())
            .field("key_name", &self.key_name)
            .field("key", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("proxy", &self.proxy.as_ref().map(Url::as_str))
            .field("limits", &self.limits)
            .finish()
    }
}

impl Config {
    /// A config that dials the namespace itself over `wss://`.
    pub fn new(namespace: &str, key_name: &str, key: &str) -> Config {
        let namespace = qualify(namespace);
        Config {
            endpoint: Url::parse(&format!("wss://{namespace}")).expect("a host name makes a URL"),
            namespace,
            key_name: key_name.to_string(),
            key: key.to_string(),
            token_ttl: Duration::from_secs(3600),
            proxy: None,
            limits: Limits::default(),
        }
    }

    /// A token for `entity`, valid for `token_ttl` from now.
    pub fn token(&self, entity: &str) -> Token {
        let expires_at = unix_now() + self.token_ttl.as_secs().max(1);
        Token::sign(
            &sas::resource_uri(&self.namespace, entity),
            &self.key_name,
            &self.key,
            expires_at,
        )
    }

    /// The websocket URL for an operation (`listen` or `connect`) on `entity`.
    pub(crate) fn url(&self, entity: &str, action: &str, id: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/$hc/{}", entity.trim_matches('/')));
        url.query_pairs_mut()
            .clear()
            .append_pair("sb-hc-action", action)
            .append_pair("sb-hc-id", id);
        url
    }
}

/// Seconds since the Unix epoch, as SAS expiries count them.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn qualify(namespace: &str) -> String {
    let namespace = namespace
        .trim()
        .trim_start_matches("sb://")
        .trim_start_matches("https://")
        .trim_start_matches("wss://")
        .trim_end_matches('/');
    if namespace.contains('.') {
        namespace.to_ascii_lowercase()
    } else {
        format!("{}{AZURE_SUFFIX}", namespace.to_ascii_lowercase())
    }
}

/// Everything either side needs: the namespace and the two hybrid connections.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How to reach and authenticate to the namespace.
    pub connection: Config,
    /// `AZURE_RELAY_HYBRID_CONNECTION`: cloud→gateway actions (the gateway listens).
    pub actions_entity: String,
    /// `AZURE_RELAY_EVENTS_HYBRID_CONNECTION`: gateway→cloud events (the cloud listens).
    pub events_entity: String,
}

impl Settings {
    /// Reads the `AZURE_RELAY_*` variables through `lookup` (the process environment in
    /// production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let require = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let mut connection = Config::new(
            &require("AZURE_RELAY_NAMESPACE")?,
            &require("AZURE_RELAY_KEY_NAME")?,
            &require("AZURE_RELAY_SHARED_ACCESS_KEY")?,
        );
        if let Some(endpoint) = get("AZURE_RELAY_ENDPOINT") {
            connection.endpoint = Url::parse(&endpoint).map_err(|e| ConfigError::BadUrl {
                name: "AZURE_RELAY_ENDPOINT",
                reason: e.to_string(),
            })?;
        }
        if let Some(ttl) = get("AZURE_RELAY_TOKEN_TTL_SECONDS").and_then(|v| v.parse().ok()) {
            connection.token_ttl = Duration::from_secs(ttl);
        }
        connection.proxy = proxy_for(&connection.endpoint, &get)?;
        if let Some(v) = get("RELAY_MAX_MESSAGE_BYTES") {
            // Below 4 KiB not even a signed reply fits.
            connection.limits.max_message_bytes = count("RELAY_MAX_MESSAGE_BYTES", &v, 4096)?;
        }
        if let Some(v) = get("RELAY_MAX_CONCURRENT_MESSAGES") {
            connection.limits.max_concurrent_messages =
                count("RELAY_MAX_CONCURRENT_MESSAGES", &v, 1)?;
        }
        Ok(Settings {
            connection,
            actions_entity: require("AZURE_RELAY_HYBRID_CONNECTION")?,
            events_entity: require("AZURE_RELAY_EVENTS_HYBRID_CONNECTION")?,
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }
}

/// A whole number of at least `min`, or an error naming the setting.
fn count(name: &'static str, value: &str, min: usize) -> Result<usize, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        name,
        value: value.to_string(),
        why,
    };
    match value.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(invalid(format!("must be at least {min}"))),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// The proxy curl would use for this endpoint: `HTTPS_PROXY` for `wss`, `HTTP_PROXY` for `ws`,
/// unless `NO_PROXY` names the host (a suffix match, or `*`).
fn proxy_for(
    endpoint: &Url,
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<Option<Url>, ConfigError> {
    let (upper, lower) = if endpoint.scheme() == "wss" {
        ("HTTPS_PROXY", "https_proxy")
    } else {
        ("HTTP_PROXY", "http_proxy")
    };
    let Some(proxy) = get(upper).or_else(|| get(lower)) else {
        return Ok(None);
    };
    let host = endpoint.host_str().unwrap_or_default().to_ascii_lowercase();
    let no_proxy = get("NO_PROXY")
        .or_else(|| get("no_proxy"))
        .unwrap_or_default();
    let bypass = no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches('.').to_ascii_lowercase();
        entry == "*"
            || (!entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))))
    });
    if bypass {
        return Ok(None);
    }
    let with_scheme = if proxy.contains("://") {
        proxy
    } else {
        format!("http://{proxy}")
    };
    Url::parse(&with_scheme)
        .map(Some)
        .map_err(|e| ConfigError::BadUrl {
            name: upper,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut env: HashMap<&str, &str> = HashMap::from([
            ("AZURE_RELAY_NAMESPACE", "clinic-relay"),
            ("AZURE_RELAY_HYBRID_CONNECTION", "hc-gw-1"),
            ("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "hc-gw-1-events"),
            ("AZURE_RELAY_KEY_NAME", "gateway"),
            ("AZURE_RELAY_SHARED_ACCESS_KEY", "s3cret"),
        ]);
        env.extend(extra.iter().copied());
        Settings::from_lookup(|name| env.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_to_the_real_namespace_over_wss() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.connection.namespace,
            "clinic-relay.servicebus.windows.net"
        );
        assert_eq!(
            s.connection.endpoint.as_str(),
            "wss://clinic-relay.servicebus.windows.net/"
        );
        assert_eq!(
            s.connection.url("hc-gw-1", "listen", "x").as_str(),
            "wss://clinic-relay.servicebus.windows.net/$hc/hc-gw-1?sb-hc-action=listen&sb-hc-id=x"
        );
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn endpoint_override_keeps_the_signed_namespace() {
        let s = settings(&[("AZURE_RELAY_ENDPOINT", "ws://127.0.0.1:9350")]).unwrap();
        assert_eq!(
            s.connection.url("hc", "connect", "y").as_str(),
            "ws://127.0.0.1:9350/$hc/hc?sb-hc-action=connect&sb-hc-id=y"
        );
        let token = s.connection.token("hc");
        assert!(token
            .as_str()
            .contains("sr=http%3A%2F%2Fclinic-relay.servicebus.windows.net%2Fhc&"));
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let mut env = HashMap::new();
        env.insert("AZURE_RELAY_NAMESPACE", "x");
        let err = Settings::from_lookup(|n| env.get(n).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err, ConfigError::Missing("AZURE_RELAY_KEY_NAME"));
        assert!(matches!(
            settings(&[("AZURE_RELAY_ENDPOINT", "::")]),
            Err(ConfigError::BadUrl { .. })
        ));
    }

    #[test]
    fn limits_default_and_are_read_with_their_names() {
        assert_eq!(settings(&[]).unwrap().connection.limits, Limits::default());
        let s = settings(&[
            ("RELAY_MAX_MESSAGE_BYTES", "65536"),
            ("RELAY_MAX_CONCURRENT_MESSAGES", "2"),
        ])
        .unwrap();
        assert_eq!(
            s.connection.limits,
            Limits {
                max_message_bytes: 65536,
                max_concurrent_messages: 2
            }
        );
        for (name, value) in [
            ("RELAY_MAX_MESSAGE_BYTES", "1k"),
            ("RELAY_MAX_MESSAGE_BYTES", "100"),
            ("RELAY_MAX_CONCURRENT_MESSAGES", "0"),
        ] {
            let e = settings(&[(name, value)]).unwrap_err();
            assert!(e.to_string().starts_with(name), "{e}");
        }
    }

    #[test]
    fn proxy_follows_curl_conventions() {
        let s = settings(&[("HTTPS_PROXY", "proxy.trust.nhs.uk:3128")]).unwrap();
        assert_eq!(
            s.connection.proxy.unwrap().as_str(),
            "http://proxy.trust.nhs.uk:3128/"
        );
        let s = settings(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", "localhost,.windows.net"),
        ])
        .unwrap();
        assert!(s.connection.proxy.is_none());
        let s = settings(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("AZURE_RELAY_ENDPOINT", "ws://127.0.0.1:1"),
        ])
        .unwrap();
        assert!(
            s.connection.proxy.is_none(),
            "ws:// uses HTTP_PROXY, not HTTPS_PROXY"
        );
    }
}
