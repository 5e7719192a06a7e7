//! Dialling a relay websocket: TCP (optionally through an HTTP CONNECT proxy), TLS with the OS
//! trust store, the upgrade, and the relay's handshake errors turned into [`RelayError`]s.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::sas::Token;
use super::{Config, RelayError};

/// An open relay websocket (control channel, rendezvous or sender connection).
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The header the Microsoft SDKs put the token in; it keeps the token out of URLs that proxies log.
pub const TOKEN_HEADER: &str = "ServiceBusAuthorization";

/// Which operation a connection is for, so a 404 can be explained correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Listen,
    Connect,
    Rendezvous,
}

/// Opens a websocket to `url` within `timeout`, through `config`'s proxy and with its message
/// size limit; also returns the relay's clock (the handshake's `Date` header) when it sent one.
pub(crate) async fn open(
    url: &Url,
    token: Option<&Token>,
    config: &Config,
    timeout: Duration,
    entity: &str,
    purpose: Purpose,
) -> Result<(Socket, Option<SystemTime>), RelayError> {
    tokio::time::timeout(timeout, open_inner(url, token, config, entity, purpose))
        .await
        .map_err(|_| RelayError::Timeout(timeout))?
}

/// A message over the limit ends its connection with a capacity error before it is buffered
/// (a frame header declaring more is refused as it arrives).
fn websocket_config(config: &Config) -> WebSocketConfig {
    let max = config.limits.max_message_bytes;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

async fn open_inner(
    url: &Url,
    token: Option<&Token>,
    config: &Config,
    entity: &str,
    purpose: Purpose,
) -> Result<(Socket, Option<SystemTime>), RelayError> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| RelayError::Transport(format!("bad relay URL: {e}")))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(token.as_str())
            .map_err(|e| RelayError::Transport(format!("token is not a valid header: {e}")))?;
        request.headers_mut().insert(TOKEN_HEADER, value);
    }
    let host = url
        .host_str()
        .ok_or_else(|| RelayError::Transport(format!("no host in {url}")))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let tcp = match config.proxy.as_ref() {
        Some(proxy) => tunnel(proxy, host, port).await?,
        None => TcpStream::connect((host, port))
            .await
            .map_err(|e| RelayError::Transport(format!("connect {host}:{port}: {e}")))?,
    };
    tcp.set_nodelay(true)
        .map_err(|e| RelayError::Transport(e.to_string()))?;
    let connector = Connector::Rustls(tls_config());
    let ws_config = Some(websocket_config(config));
    match tokio_tungstenite::client_async_tls_with_config(request, tcp, ws_config, Some(connector))
        .await
    {
        Ok((socket, response)) => {
            let date = response
                .headers()
                .get("date")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok());
            Ok((socket, date))
        }
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_string())
                .unwrap_or_default();
            let detail = if body.is_empty() {
                response
                    .status()
                    .canonical_reason()
                    .unwrap_or("")
                    .to_string()
            } else {
                body
            };
            Err(status_error(entity, status, detail, purpose))
        }
        Err(e) => Err(RelayError::Transport(e.to_string())),
    }
}

fn status_error(entity: &str, status: u16, detail: String, purpose: Purpose) -> RelayError {
    let entity = entity.to_string();
    match (status, purpose) {
        (401, _) => RelayError::Unauthorized { entity, detail },
        (403, _) => RelayError::Forbidden { entity, detail },
        (404, Purpose::Connect) => RelayError::NoListener { entity, detail },
        (404, Purpose::Listen) => RelayError::NoSuchEntity { entity, detail },
        (status, _) => RelayError::Status {
            entity,
            status,
            detail,
        },
    }
}

/// An HTTP CONNECT tunnel to `host:port` through `proxy`. tokio-tungstenite has no proxy support,
/// and trusts commonly force one, so this small piece is written here by hand.
async fn tunnel(proxy: &Url, host: &str, port: u16) -> Result<TcpStream, RelayError> {
    let proxy_host = proxy
        .host_str()
        .ok_or_else(|| RelayError::Transport(format!("no host in proxy URL {proxy}")))?;
    let proxy_port = proxy.port_or_known_default().unwrap_or(3128);
    let mut tcp = TcpStream::connect((proxy_host, proxy_port))
        .await
        .map_err(|e| {
            RelayError::Transport(format!("connect to proxy {proxy_host}:{proxy_port}: {e}"))
        })?;
    let mut request = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if !proxy.username().is_empty() {
        let credentials = format!("{}:{}", proxy.username(), proxy.password().unwrap_or(""));
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| RelayError::Transport(format!("proxy write: {e}")))?;
    // Read the proxy's answer byte by byte up to the blank line, so no tunnelled byte is consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(RelayError::Transport("proxy answer too long".into()));
        }
        let byte = tcp
            .read_u8()
            .await
            .map_err(|e| RelayError::Transport(format!("proxy closed the connection: {e}")))?;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let ok = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200");
    if !ok {
        return Err(RelayError::Transport(format!(
            "proxy refused CONNECT {host}:{port}: {status_line}"
        )));
    }
    Ok(tcp)
}

/// TLS with the ring provider and the OS trust store (where trusts add their intercepting
/// proxies' CAs), falling back to the compiled-in Mozilla roots only when the OS store is empty.
/// The gateway's other outbound HTTPS (FHIR delivery) uses it too.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                tracing::warn!(
                    "no usable CA certificates in the OS trust store (install ca-certificates); \
                     using the built-in Mozilla roots"
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}
