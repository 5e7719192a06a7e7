//! The emulator's live state: entities, their connected listeners, and senders waiting for an accept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rand::seq::SliceRandom;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;

use crate::config::Config;

/// A websocket the emulator serves (either side of a rendezvous, or a control channel).
pub type ServerSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Orders to a control channel task.
#[derive(Debug)]
pub enum ControlOrder {
    /// Send this text frame (an `accept`).
    Send(String),
    /// Close with this code and reason.
    Close(u16, String),
    /// Drop the TCP connection without a close frame, as a network failure would.
    Drop,
    /// Stop reading (and so stop answering pings): a "zombie" listener.
    Mute,
    /// Treat the token as expired now.
    ExpireToken,
}

/// One connected listener, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerInfo {
    pub id: u64,
    pub remote: String,
    /// Unix seconds.
    pub connected_at: u64,
    /// How many senders it has been given.
    pub accepted: u64,
}

pub struct ListenerEntry {
    pub info: ListenerInfo,
    pub orders: mpsc::UnboundedSender<ControlOrder>,
}

/// One hybrid connection.
pub struct Entity {
    pub enabled: bool,
    pub listeners: Vec<ListenerEntry>,
}

/// How a held sender's handshake ends.
pub enum Verdict {
    /// The listener connected to the rendezvous address; its socket arrives on the receiver.
    Accepted {
        listener_socket: oneshot::Receiver<ServerSocket>,
        subprotocol: Option<String>,
    },
    /// The listener rejected with this status and description.
    Rejected { status: u16, description: String },
}

/// A sender waiting for its listener.
pub struct Pending {
    pub entity: String,
    pub verdict: oneshot::Sender<Verdict>,
}

/// Everything behind one mutex: the emulator is a test tool and its critical sections are tiny.
pub struct State {
    pub config: Config,
    pub entities: Mutex<HashMap<String, Entity>>,
    pub pending: Mutex<HashMap<String, Pending>>,
    next_listener: AtomicU64,
    /// Flips to true when the emulator shuts down.
    pub shutdown: watch::Sender<bool>,
}

impl State {
    pub fn new(config: Config) -> State {
        let entities = config
            .entities
            .iter()
            .map(|name| {
                (
                    name.to_ascii_lowercase(),
                    Entity {
                        enabled: true,
                        listeners: Vec::new(),
                    },
                )
            })
            .collect();
        State {
            config,
            entities: Mutex::new(entities),
            pending: Mutex::new(HashMap::new()),
            next_listener: AtomicU64::new(1),
            shutdown: watch::channel(false).0,
        }
    }

    /// Splits `/$hc/` paths into (entity, suffix), matching the longest entity name.
    pub fn resolve(&self, path: &str) -> Option<(String, String)> {
        let entities = self.entities.lock().unwrap();
        let lower = path.trim_start_matches('/').to_ascii_lowercase();
        entities
            .keys()
            .filter(|name| lower == **name || lower.starts_with(&format!("{name}/")))
            .max_by_key(|name| name.len())
            .map(|name| {
                (
                    name.clone(),
                    path.trim_start_matches('/')[name.len()..].to_string(),
                )
            })
    }

    /// Registers a listener unless the entity is full; returns its id and order queue.
    pub fn add_listener(
        &self,
        entity: &str,
        remote: SocketAddr,
    ) -> Result<(u64, mpsc::UnboundedReceiver<ControlOrder>), String> {
        let mut entities = self.entities.lock().unwrap();
        let entry = entities
            .get_mut(entity)
            .ok_or_else(|| "Endpoint does not exist".to_string())?;
        if entry.listeners.len() >= self.config.max_listeners {
            return Err(format!(
                "QuotaExceeded: MaximumListenersPerEndpoint ({}) reached",
                self.config.max_listeners
            ));
        }
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let (orders, receiver) = mpsc::unbounded_channel();
        entry.listeners.push(ListenerEntry {
            info: ListenerInfo {
                id,
                remote: remote.to_string(),
                connected_at: crate::auth::now(),
                accepted: 0,
            },
            orders,
        });
        Ok((id, receiver))
    }

    pub fn remove_listener(&self, entity: &str, id: u64) {
        if let Some(entry) = self.entities.lock().unwrap().get_mut(entity) {
            entry.listeners.retain(|l| l.info.id != id);
        }
    }

    /// Picks a listener at random and hands it the accept message.
    pub fn dispatch(&self, entity: &str, accept: String) -> bool {
        let mut entities = self.entities.lock().unwrap();
        let Some(entry) = entities.get_mut(entity) else {
            return false;
        };
        let Some(chosen) = entry.listeners.choose_mut(&mut rand::thread_rng()) else {
            return false;
        };
        chosen.info.accepted += 1;
        chosen.orders.send(ControlOrder::Send(accept)).is_ok()
    }

    /// Sends an order to the listeners of an entity (all, or the one with `id`); returns how many.
    pub fn order(&self, entity: &str, id: Option<u64>, make: impl Fn() -> ControlOrder) -> usize {
        let entities = self.entities.lock().unwrap();
        entities
            .get(entity)
            .map(|e| {
                e.listeners
                    .iter()
                    .filter(|l| id.is_none_or(|id| l.info.id == id))
                    .filter(|l| l.orders.send(make()).is_ok())
                    .count()
            })
            .unwrap_or(0)
    }

    /// Every listener of every entity.
    pub fn all_listeners(&self) -> Vec<(String, u64)> {
        let entities = self.entities.lock().unwrap();
        entities
            .iter()
            .flat_map(|(name, e)| e.listeners.iter().map(move |l| (name.clone(), l.info.id)))
            .collect()
    }

    pub fn entity_enabled(&self, entity: &str) -> Option<bool> {
        self.entities.lock().unwrap().get(entity).map(|e| e.enabled)
    }

    pub fn has_listener(&self, entity: &str) -> bool {
        self.entities
            .lock()
            .unwrap()
            .get(entity)
            .is_some_and(|e| !e.listeners.is_empty())
    }
}
