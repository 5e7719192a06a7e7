//! A local emulator of Azure Relay Hybrid Connections, faithful to the websocket protocol.
//!
//! Microsoft ships no emulator, so without this the cloud↔gateway path could only be tested
//! against a real namespace. Implemented: listen, connect (the sender's upgrade held until the
//! listener accepts or rejects), accept, reject, SAS validation with Azure's 401/403 split,
//! 404 for a missing entity or no listener, up to 25 listeners per entity with random choice,
//! `renewToken` and close 1008 on expiry, frames relayed with their boundaries and types, and a
//! test-only admin API for faults ([`admin`]). Not implemented: HTTP-mode requests (`request` /
//! `response`), which our protocol does not use; they get 501.

pub mod admin;
mod auth;
pub mod config;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use config::{Config, Right, Rule};
use state::State;

/// A running emulator. Dropping it stops it (control channels get a 1001).
pub struct Emulator {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds the relay port (and the admin port, if any) and starts serving. Port 0 picks a free one.
    pub async fn start(
        config: Config,
        listen: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> std::io::Result<Emulator> {
        let state = Arc::new(State::new(config));
        let relay = TcpListener::bind(listen).await?;
        let addr = relay.local_addr()?;
        let scheme = if state.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        let public_base: Arc<str> = format!("{scheme}://{addr}").into();
        let tls = state
            .config
            .tls
            .clone()
            .map(tokio_rustls::TlsAcceptor::from);
        let mut tasks = Vec::new();
        {
            let state = state.clone();
            tasks.push(tokio::spawn(accept_loop(relay, move |tcp, remote| {
                let state = state.clone();
                let base = public_base.clone();
                let tls = tls.clone();
                async move {
                    let service = service_fn(move |req| {
                        server::handle(state.clone(), base.clone(), remote, req)
                    });
                    match tls {
                        None => serve(tcp, service).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => serve(stream, service).await,
                            Err(e) => tracing::info!(%remote, "TLS handshake failed: {e}"),
                        },
                    }
                }
            })));
        }
        let admin_addr = match admin {
            Some(admin) => {
                let listener = TcpListener::bind(admin).await?;
                let admin_addr = listener.local_addr()?;
                let state = state.clone();
                tasks.push(tokio::spawn(accept_loop(listener, move |tcp, _| {
                    let state = state.clone();
                    serve(
                        tcp,
                        service_fn(move |req| admin::handle(state.clone(), req)),
                    )
                })));
                Some(admin_addr)
            }
            None => None,
        };
        tracing::info!(
            "relay emulator for {} on ws://{addr}",
            state.config.namespace
        );
        Ok(Emulator {
            addr,
            admin_addr,
            state,
            tasks,
        })
    }

    /// The relay port's address: use `ws://{addr}` (`wss://` with TLS) as `AZURE_RELAY_ENDPOINT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin API's address, when one was asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Connected listeners per entity.
    pub fn listener_count(&self, entity: &str) -> usize {
        self.state
            .entities
            .lock()
            .unwrap()
            .get(&entity.to_ascii_lowercase())
            .map_or(0, |e| e.listeners.len())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.state.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop<F, Fut>(listener: TcpListener, serve_one: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, remote)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve_one(tcp, remote));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve<I, S>(io: I, service: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<http_body_util::Full<bytes::Bytes>>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!("connection ended: {e}");
    }
}

/// Why a TLS certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("unusable certificate or key: {0}")]
    Invalid(String),
}

/// A rustls server config from PEM files, for `--tls-cert` / `--tls-key`.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path, e: rustls::pki_types::pem::Error| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(cert, e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, e))?;
    tls_config_from(chain, key)
}

/// A rustls server config (ring provider) from a certificate chain and its key.
pub fn tls_config_from(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    Ok(Arc::new(config))
}
