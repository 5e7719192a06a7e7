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
use tokio::net::TcpListener;
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
        let public_base: Arc<str> = format!("ws://{addr}").into();
        let mut tasks = Vec::new();
        {
            let state = state.clone();
            tasks.push(tokio::spawn(accept_loop(relay, move |io, remote| {
                let state = state.clone();
                let base = public_base.clone();
                serve(
                    io,
                    service_fn(move |req| server::handle(state.clone(), base.clone(), remote, req)),
                )
            })));
        }
        let admin_addr = match admin {
            Some(admin) => {
                let listener = TcpListener::bind(admin).await?;
                let admin_addr = listener.local_addr()?;
                let state = state.clone();
                tasks.push(tokio::spawn(accept_loop(listener, move |io, _| {
                    let state = state.clone();
                    serve(io, service_fn(move |req| admin::handle(state.clone(), req)))
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

    /// The relay port's address: use `ws://{addr}` as `AZURE_RELAY_ENDPOINT`.
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
    F: Fn(TokioIo<tokio::net::TcpStream>, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, remote)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve_one(TokioIo::new(tcp), remote));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve<S>(io: TokioIo<tokio::net::TcpStream>, service: S)
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<http_body_util::Full<bytes::Bytes>>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!("connection ended: {e}");
    }
}
