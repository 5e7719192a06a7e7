//! The listening side of a hybrid connection: a control channel kept alive for ever, and one task
//! per sender.
//!
//! What the NHS gateway got wrong and this does not: accepts are served concurrently (a slow action
//! never holds up the next sender), the token is renewed on the open channel (no reconnect, so no
//! window of 404s for senders), and a channel that stops answering pings is treated as dead and
//! replaced, instead of lingering as a "zombie listener".
//!
//! What peers can make it hold is bounded by the config's [`Limits`](super::Limits): messages
//! over `max_message_bytes` end their rendezvous with 1009, and beyond `max_concurrent_messages`
//! rendezvous at once a sender is rejected with 503 (and beyond as many rejections in flight,
//! ignored: the relay answers it 504 after its rendezvous timeout).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use url::Url;

use super::connect::{self, Purpose, Socket};
use super::{Backoff, Config, RelayError};

/// Timings of a listener; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// How often to ping the control channel. The relay drops idle channels at about 4 minutes.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the channel is declared dead and replaced.
    pub pong_timeout: Duration,
    /// Limit for opening the control channel or a rendezvous.
    pub connect_timeout: Duration,
    /// How long a rendezvous may sit without a message before it is closed.
    pub idle_timeout: Duration,
}

impl Default for ListenerOptions {
    fn default() -> ListenerOptions {
        ListenerOptions {
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// What a listener is doing now, for health checks and `status` commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerStatus {
    /// A control channel is open.
    pub connected: bool,
    /// When the current control channel opened.
    pub connected_since: Option<SystemTime>,
    /// When the relay last sent anything (accept, pong…) on the control channel.
    pub last_traffic: Option<SystemTime>,
    /// Control channels opened so far (1 + reconnects).
    pub connections: u64,
    /// Tokens renewed on open channels.
    pub renewals: u64,
    /// Senders accepted so far.
    pub accepted: u64,
    /// Senders turned away because `max_concurrent_messages` rendezvous were open.
    pub rejected: u64,
    /// Why the last channel ended or the last attempt failed.
    pub last_error: Option<String>,
}

/// Listens on one hybrid connection and answers each message a sender sends with the handler.
pub struct Listener {
    config: Arc<Config>,
    entity: String,
    options: ListenerOptions,
    status: watch::Sender<ListenerStatus>,
    /// One permit per rendezvous being served.
    serving: Arc<Semaphore>,
    /// One permit per rejection being delivered, so that a flood of accepts costs no more tasks.
    rejecting: Arc<Semaphore>,
}

/// Turns one received text message into the reply text. Called concurrently.
pub type Handler =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ControlMessage {
    Accept(AcceptCommand),
    Request(RequestCommand),
}

#[derive(Deserialize)]
struct AcceptCommand {
    address: String,
    id: String,
}

#[derive(Deserialize)]
struct RequestCommand {
    id: String,
}

impl Listener {
    /// A listener for `entity`; nothing happens until [`Listener::run`].
    pub fn new(config: Config, entity: &str, options: ListenerOptions) -> Listener {
        let concurrent = config.limits.max_concurrent_messages.max(1);
        Listener {
            config: Arc::new(config),
            entity: entity.trim_matches('/').to_string(),
            options,
            status: watch::channel(ListenerStatus::default()).0,
            serving: Arc::new(Semaphore::new(concurrent)),
            rejecting: Arc::new(Semaphore::new(concurrent)),
        }
    }

    /// A live view of the listener's state.
    pub fn status(&self) -> watch::Receiver<ListenerStatus> {
        self.status.subscribe()
    }

    /// Keeps a control channel open until `shutdown` completes, reconnecting with the SDKs'
    /// backoff after any failure (configuration errors included: they are logged as errors and
    /// retried at the slowest pace, since an operator may fix the relay side without touching us).
    pub async fn run<H, F>(&self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(String) -> F + Send + Sync + 'static,
        F: Future<Output = String> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |text| Box::pin(handler(text)));
        tokio::pin!(shutdown);
        let mut backoff = Backoff::default();
        loop {
            let outcome = self
                .connect_and_serve(&handler, &mut backoff, shutdown.as_mut())
                .await;
            let why = match outcome {
                Ok(Ended::Shutdown) => return,
                Ok(Ended::Lost(why)) => {
                    tracing::warn!(entity = %self.entity, "relay control channel lost: {why}; reconnecting");
                    why
                }
                Err(error) => {
                    if error.is_retryable() {
                        tracing::warn!(entity = %self.entity, "relay listener cannot connect: {error}");
                    } else {
                        tracing::error!(entity = %self.entity, "relay listener refused: {error}");
                    }
                    error.to_string()
                }
            };
            self.status.send_modify(|s| {
                s.connected = false;
                s.connected_since = None;
                s.last_error = Some(why);
            });
            let delay = backoff.next_delay();
            if !delay.is_zero() {
                tracing::info!(entity = %self.entity, "next relay listener attempt in {}s", delay.as_secs());
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = sleep(delay) => {}
            }
        }
    }

    async fn connect_and_serve(
        &self,
        handler: &Handler,
        backoff: &mut Backoff,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Ended, RelayError> {
        let token = self.config.token(&self.entity);
        let url = self
            .config
            .url(&self.entity, "listen", &uuid::Uuid::new_v4().to_string());
        let (socket, _relay_time) = tokio::select! {
            _ = &mut shutdown => return Ok(Ended::Shutdown),
            socket = connect::open(
                &url,
                Some(&token),
                &self.config,
                self.options.connect_timeout,
                &self.entity,
                Purpose::Listen,
            ) => socket?,
        };
        backoff.reset();
        let now = SystemTime::now();
        self.status.send_modify(|s| {
            s.connected = true;
            s.connected_since = Some(now);
            s.last_traffic = Some(now);
            s.connections += 1;
        });
        tracing::info!(
            entity = %self.entity,
            endpoint = %self.config.endpoint,
            "relay listener connected on {}",
            self.entity
        );
        Ok(self
            .serve(socket, token.expires_at(), handler, shutdown)
            .await)
    }

    /// Runs one control channel until it ends.
    async fn serve(
        &self,
        socket: Socket,
        mut expires_at: u64,
        handler: &Handler,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Ended {
        let (mut sink, mut stream) = socket.split();
        let mut next_ping = Instant::now() + self.options.ping_interval;
        let mut pong_deadline: Option<Instant> = None;
        let mut renew_at = renewal_instant(expires_at);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    let _ = sink.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "listener shutting down".into(),
                    }))).await;
                    return Ended::Shutdown;
                }
                _ = sleep_until(next_ping) => {
                    next_ping = Instant::now() + self.options.ping_interval;
                    if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                        return Ended::Lost(format!("ping failed: {e}"));
                    }
                    pong_deadline.get_or_insert(Instant::now() + self.options.pong_timeout);
                }
                _ = sleep_until(pong_deadline.unwrap_or_else(far_future)), if pong_deadline.is_some() => {
                    return Ended::Lost(format!("no pong within {:?}: channel is dead", self.options.pong_timeout));
                }
                _ = sleep_until(renew_at) => {
                    let token = self.config.token(&self.entity);
                    let renew = json!({"renewToken": {"token": token.as_str()}}).to_string();
                    if let Err(e) = sink.send(Message::Text(renew.into())).await {
                        return Ended::Lost(format!("token renewal failed: {e}"));
                    }
                    expires_at = token.expires_at();
                    renew_at = renewal_instant(expires_at);
                    self.status.send_modify(|s| s.renewals += 1);
                    tracing::debug!(entity = %self.entity, "relay token renewed until {expires_at}");
                }
                frame = stream.next() => {
                    let Some(frame) = frame else {
                        return Ended::Lost("the relay dropped the connection".into());
                    };
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(e) => return Ended::Lost(format!("control channel error: {e}")),
                    };
                    self.status.send_modify(|s| s.last_traffic = Some(SystemTime::now()));
                    match frame {
                        Message::Text(text) => {
                            if let Some(reply) = self.control_message(&text, handler) {
                                if let Err(e) = sink.send(Message::Text(reply.into())).await {
                                    return Ended::Lost(format!("control reply failed: {e}"));
                                }
                            }
                        }
                        Message::Pong(_) => pong_deadline = None,
                        Message::Close(frame) => {
                            let why = match frame {
                                Some(f) => format!("relay closed the control channel ({} {})", u16::from(f.code), f.reason),
                                None => "relay closed the control channel".into(),
                            };
                            return Ended::Lost(why);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Acts on one control-channel command; returns a text to send back, if any.
    fn control_message(&self, text: &str, handler: &Handler) -> Option<String> {
        match serde_json::from_str::<ControlMessage>(text) {
            Ok(ControlMessage::Accept(accept)) => {
                let task = Rendezvous {
                    config: self.config.clone(),
                    entity: self.entity.clone(),
                    options: self.options.clone(),
                    handler: handler.clone(),
                };
                if let Ok(permit) = self.serving.clone().try_acquire_owned() {
                    self.status.send_modify(|s| s.accepted += 1);
                    tokio::spawn(task.serve(accept, permit));
                    return None;
                }
                self.status.send_modify(|s| s.rejected += 1);
                let limit = self.config.limits.max_concurrent_messages;
                match self.rejecting.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tracing::warn!(entity = %self.entity, id = %accept.id,
                            "relay sender rejected with 503: {limit} messages already in hand (RELAY_MAX_CONCURRENT_MESSAGES)");
                        tokio::spawn(task.reject(accept, permit));
                    }
                    Err(_) => tracing::warn!(entity = %self.entity, id = %accept.id,
                        "relay sender ignored: {limit} messages in hand and as many rejections (RELAY_MAX_CONCURRENT_MESSAGES)"),
                }
                None
            }
            Ok(ControlMessage::Request(request)) => {
                // HTTP-mode requests are not part of our protocol: answer them instead of
                // leaving the sender to time out.
                tracing::warn!(entity = %self.entity, "relay HTTP request {} refused: only websocket senders are served", request.id);
                Some(
                    json!({"response": {
                        "requestId": request.id,
                        "statusCode": 501,
                        "statusDescription": "Only websocket connections are served",
                        "body": false
                    }})
                    .to_string(),
                )
            }
            Err(e) => {
                tracing::warn!(entity = %self.entity, "ignoring unknown relay control message ({e}): {}", truncate(text));
                None
            }
        }
    }
}

enum Ended {
    Shutdown,
    Lost(String),
}

/// One accepted sender: open the rendezvous address verbatim and answer its messages.
struct Rendezvous {
    config: Arc<Config>,
    entity: String,
    options: ListenerOptions,
    handler: Handler,
}

impl Rendezvous {
    fn address(&self, accept: &AcceptCommand) -> Option<Url> {
        match Url::parse(&accept.address) {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(entity = %self.entity, "relay sent an unusable rendezvous address ({e})");
                None
            }
        }
    }

    /// Opens the rendezvous socket the relay's accept pointed to.
    async fn dial(&self, url: &Url) -> Result<(Socket, Option<SystemTime>), RelayError> {
        connect::open(
            url,
            None,
            &self.config,
            self.options.connect_timeout,
            &self.entity,
            Purpose::Rendezvous,
        )
        .await
    }

    /// Turns the sender away with 503, which it retries: the rendezvous address with a status
    /// code is the relay protocol's reject. The relay answers the handshake itself with an
    /// error (410), so its outcome says nothing and is ignored.
    async fn reject(self, accept: AcceptCommand, _permit: OwnedSemaphorePermit) {
        let Some(mut url) = self.address(&accept) else {
            return;
        };
        url.query_pairs_mut()
            .append_pair("sb-hc-statusCode", "503")
            .append_pair("sb-hc-statusDescription", "Listener busy; try again later");
        let _ = self.dial(&url).await;
    }

    async fn serve(self, accept: AcceptCommand, _permit: OwnedSemaphorePermit) {
        let Some(url) = self.address(&accept) else {
            return;
        };
        let socket = self.dial(&url).await;
        let mut socket = match socket {
            Ok((socket, _relay_time)) => socket,
            Err(e) => {
                tracing::warn!(entity = %self.entity, id = %accept.id, "cannot open rendezvous: {e}");
                return;
            }
        };
        loop {
            let frame = match tokio::time::timeout(self.options.idle_timeout, socket.next()).await {
                Err(_) => break,
                Ok(None) => return,
                Ok(Some(Err(WsError::Capacity(e)))) => {
                    let limit = self.config.limits.max_message_bytes;
                    tracing::warn!(entity = %self.entity, id = %accept.id,
                        "relay message refused: {e} (RELAY_MAX_MESSAGE_BYTES is {limit})");
                    let _ = socket
                        .close(Some(CloseFrame {
                            code: CloseCode::Size,
                            reason: "message too big".into(),
                        }))
                        .await;
                    return;
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(entity = %self.entity, id = %accept.id, "rendezvous ended: {e}");
                    return;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let text = match frame {
                Message::Text(text) => text.to_string(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Message::Close(_) => break,
                _ => continue,
            };
            let reply = (self.handler)(text).await;
            if let Err(e) = socket.send(Message::Text(reply.into())).await {
                tracing::warn!(entity = %self.entity, id = %accept.id, "reply not delivered: {e}");
                return;
            }
        }
        let _ = socket.close(None).await;
    }
}

/// Renew when three quarters of the token's life has passed: well before the relay's 1008, and
/// never more often than every few seconds even for very short test tokens.
fn renewal_instant(expires_at: u64) -> Instant {
    // From the exact time left, not whole seconds: a token can have up to a second less left than
    // `expires_at - unix_now()` says, which matters for short lifetimes.
    let left = (UNIX_EPOCH + Duration::from_secs(expires_at))
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now() + (left * 3 / 4).max(Duration::from_millis(500))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(200) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
