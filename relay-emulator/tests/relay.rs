//! The relay client (`shared::relay`) against the emulator, over real websockets on loopback.
//!
//! Where a behaviour belongs to the emulator alone (expiry without renewal, rejects, reused
//! rendezvous addresses, identical websocket keys), a raw tungstenite client plays the peer so that
//! the test does not depend on our own client's habits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use serde_json::{json, Value};
use shared::relay::sas::{resource_uri, Token};
use shared::relay::{Config, Listener, ListenerOptions, ListenerStatus, RelayError, Sender};
use shared::wire::action::{Action, ActionReply, Command, Outcome};
use shared::wire::{Keyring, SigningKey, Verification};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Barrier};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

const NAMESPACE: &str = "test.servicebus.windows.net";
const ROOT_KEY: &str = "root-key-0123456789";

type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn emulator_with(configure: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::new(
        NAMESPACE,
        vec![
            Rule::parse(&format!("root={ROOT_KEY}")).unwrap(),
            Rule::parse("listen-only:listen=listen-key").unwrap(),
            Rule::parse("send-only:send=send-key").unwrap(),
        ],
        vec!["actions".into(), "events".into()],
    );
    configure(&mut config);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Emulator::start(config, any, Some(any)).await.unwrap()
}

async fn emulator() -> Emulator {
    emulator_with(|_| {}).await
}

fn client(emulator: &Emulator, key_name: &str, key: &str) -> Config {
    let mut config = Config::new(NAMESPACE, key_name, key);
    config.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();
    config
}

fn fast_options() -> ListenerOptions {
    ListenerOptions {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
    }
}

/// A running listener task; stopping it (or dropping this) ends the task.
struct Running {
    status: watch::Receiver<ListenerStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn wait_for(&mut self, what: &str, check: impl Fn(&ListenerStatus) -> bool) {
        let reached =
            tokio::time::timeout(Duration::from_secs(20), self.status.wait_for(|s| check(s)))
                .await
                .is_ok();
        assert!(
            reached,
            "listener never reached: {what}; last {:?}",
            *self.status.borrow()
        );
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("listener stops on shutdown")
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spawn_listener<H, F>(
    config: Config,
    entity: &str,
    options: ListenerOptions,
    handler: H,
) -> Running
where
    H: Fn(String) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = String> + Send + 'static,
{
    let listener = Listener::new(config, entity, options);
    let status = listener.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        listener
            .run(handler, async {
                let _ = stopped.await;
            })
            .await
    });
    Running {
        status,
        stop: Some(stop),
        task,
    }
}

async fn echo_listener(
    emulator: &Emulator,
    tag: &'static str,
    options: ListenerOptions,
) -> Running {
    let mut running = spawn_listener(
        client(emulator, "root", ROOT_KEY),
        "actions",
        options,
        move |text| async move { format!("{tag}:{text}") },
    );
    running.wait_for("connected", |s| s.connected).await;
    running
}

async fn admin(emulator: &Emulator, method: &str, path: &str) -> Value {
    let mut tcp = TcpStream::connect(emulator.admin_addr().unwrap())
        .await
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("admin answer: {response}"))
}

/// A websocket request to the emulator with the given query and headers.
async fn raw_connect(
    emulator: &Emulator,
    path_and_query: &str,
    headers: &[(&'static str, String)],
) -> Result<RawSocket, WsError> {
    let mut request = format!("ws://{}{path_and_query}", emulator.addr())
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    connect_async(request).await.map(|(socket, _)| socket)
}

fn status_of(error: WsError) -> u16 {
    match error {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

fn root_token(entity: &str, ttl_seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Token::sign(
        &resource_uri(NAMESPACE, entity),
        "root",
        ROOT_KEY,
        now + ttl_seconds,
    )
    .as_str()
    .to_string()
}

/// Reads control frames until an `accept` arrives.
async fn next_accept(control: &mut RawSocket) -> Value {
    loop {
        match control.next().await.unwrap().unwrap() {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value.get("accept").is_some() {
                    return value["accept"].clone();
                }
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn sender_reaches_listener_and_gets_its_reply() {
    let emulator = emulator().await;
    let listener = echo_listener(&emulator, "gw", ListenerOptions::default()).await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    assert_eq!(sender.request("hello").await.unwrap(), "gw:hello");
    assert_eq!(emulator.listener_count("actions"), 1);
    listener.stop().await;
}

#[tokio::test]
async fn many_senders_are_served_concurrently() {
    // Every handler waits at a barrier for all the others: a listener that served senders one
    // at a time would never get past the first, and every request would time out.
    const SENDERS: usize = 8;
    let emulator = emulator().await;
    let barrier = Arc::new(Barrier::new(SENDERS));
    let mut listener = spawn_listener(
        client(&emulator, "root", ROOT_KEY),
        "actions",
        ListenerOptions::default(),
        move |text| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                format!("done:{text}")
            }
        },
    );
    listener.wait_for("connected", |s| s.connected).await;
    let mut sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    sender.reply_timeout = Duration::from_secs(10);
    let replies = futures_util::future::join_all((0..SENDERS).map(|i| {
        let sender = sender.clone();
        async move { sender.request(&i.to_string()).await }
    }))
    .await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), format!("done:{i}"));
    }
    listener.stop().await;
}

#[tokio::test]
async fn no_listener_is_a_retryable_404() {
    let emulator = emulator().await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    let error = sender.request("x").await.unwrap_err();
    assert!(matches!(error, RelayError::NoListener { .. }), "{error}");
    assert!(error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("There are no listeners connected"),
        "{error}"
    );
}

#[tokio::test]
async fn credentials_and_rights_give_401_and_403() {
    let emulator = emulator().await;
    let _listener = echo_listener(&emulator, "gw", ListenerOptions::default()).await;

    let wrong_key = Sender::new(client(&emulator, "root", "not-the-key"), "actions");
    let error = wrong_key.request("x").await.unwrap_err();
    assert!(matches!(error, RelayError::Unauthorized { .. }), "{error}");
    assert!(!error.is_retryable());

    let unknown_rule = Sender::new(client(&emulator, "nobody", ROOT_KEY), "actions");
    assert!(matches!(
        unknown_rule.request("x").await,
        Err(RelayError::Unauthorized { .. })
    ));

    let listen_key = Sender::new(client(&emulator, "listen-only", "listen-key"), "actions");
    let error = listen_key.request("x").await.unwrap_err();
    assert!(matches!(error, RelayError::Forbidden { .. }), "{error}");

    let mut other_namespace = client(&emulator, "root", ROOT_KEY);
    other_namespace.namespace = "elsewhere.servicebus.windows.net".into();
    let error = Sender::new(other_namespace, "actions")
        .request("x")
        .await
        .unwrap_err();
    assert!(matches!(error, RelayError::Forbidden { .. }), "{error}");

    // A send-only key cannot listen.
    let mut refused = spawn_listener(
        client(&emulator, "send-only", "send-key"),
        "events",
        fast_options(),
        |t| async move { t },
    );
    refused
        .wait_for("a 403", |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("403"))
        })
        .await;

    // An expired token, presented raw.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = Token::sign(
        &resource_uri(NAMESPACE, "actions"),
        "root",
        ROOT_KEY,
        now - 10,
    );
    let error = raw_connect(
        &emulator,
        "/$hc/actions?sb-hc-action=connect",
        &[("ServiceBusAuthorization", expired.as_str().to_string())],
    )
    .await
    .unwrap_err();
    assert_eq!(status_of(error), 401);

    // No token at all.
    let error = raw_connect(&emulator, "/$hc/actions?sb-hc-action=listen", &[])
        .await
        .unwrap_err();
    assert_eq!(status_of(error), 401);
}

#[tokio::test]
async fn listening_on_a_missing_hybrid_connection_is_a_404() {
    let emulator = emulator().await;
    let mut listener = spawn_listener(
        client(&emulator, "root", ROOT_KEY),
        "no-such-hc",
        fast_options(),
        |t| async move { t },
    );
    listener
        .wait_for("a 404", |s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("does not exist"))
        })
        .await;
    listener.stop().await;
}

#[tokio::test]
async fn listener_reconnects_after_its_channel_is_dropped() {
    let emulator = emulator().await;
    let mut listener = echo_listener(&emulator, "gw", fast_options()).await;
    let answer = admin(&emulator, "POST", "/entities/actions/listeners/drop").await;
    assert_eq!(answer["dropped"], 1);
    listener
        .wait_for("a second connection", |s| s.connections == 2 && s.connected)
        .await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    assert_eq!(sender.request("again").await.unwrap(), "gw:again");
    listener.stop().await;
}

#[tokio::test]
async fn listener_replaces_a_channel_after_a_1011_close() {
    let emulator = emulator().await;
    let mut listener = echo_listener(&emulator, "gw", fast_options()).await;
    admin(
        &emulator,
        "POST",
        "/entities/actions/listeners/close?code=1011",
    )
    .await;
    listener
        .wait_for("reconnected after 1011", |s| {
            s.connections == 2 && s.connected
        })
        .await;
    assert!(listener
        .status
        .borrow()
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("1011"));
    listener.stop().await;
}

#[tokio::test]
async fn a_silent_channel_is_declared_dead_and_replaced() {
    // The NHS "zombie listener": the relay no longer routes to the channel and stops answering,
    // but TCP stays up. Only missing pongs reveal it.
    let emulator = emulator().await;
    let mut listener = echo_listener(&emulator, "gw", fast_options()).await;
    let answer = admin(&emulator, "POST", "/entities/actions/listeners/mute").await;
    assert_eq!(answer["muted"], 1);
    listener
        .wait_for("a replacement channel", |s| {
            s.connections == 2 && s.connected
        })
        .await;
    assert!(listener
        .status
        .borrow()
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("no pong"));
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    assert_eq!(sender.request("alive").await.unwrap(), "gw:alive");
    listener.stop().await;
}

#[tokio::test]
async fn tokens_are_renewed_on_the_open_channel_without_a_gap() {
    let emulator = emulator().await;
    let mut config = client(&emulator, "root", ROOT_KEY);
    config.token_ttl = Duration::from_secs(3);
    let mut listener = spawn_listener(
        config,
        "actions",
        ListenerOptions::default(),
        |t| async move { t },
    );
    listener.wait_for("connected", |s| s.connected).await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    // Keep sending across several token lifetimes: without renewal the relay closes the channel
    // (1008) at the first expiry, and senders would see 404s until a reconnect.
    let mut sent = 0;
    // Bounded: about three token lifetimes (renewal at 3/4 of each), then give up and report.
    for _ in 0..120 {
        if listener.status.borrow().renewals >= 3 {
            break;
        }
        assert_eq!(sender.request("tick").await.unwrap(), "tick");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = listener.status.borrow().clone();
    assert!(status.renewals >= 3, "tokens were not renewed: {status:?}");
    assert_eq!(
        status.connections, 1,
        "the channel was replaced: {status:?}"
    );
    assert!(sent > 10);
    listener.stop().await;
}

#[tokio::test]
async fn a_listener_that_does_not_renew_is_closed_with_1008() {
    let emulator = emulator().await;
    let mut control = raw_connect(
        &emulator,
        "/$hc/actions?sb-hc-action=listen",
        &[("ServiceBusAuthorization", root_token("actions", 60))],
    )
    .await
    .unwrap();
    admin(&emulator, "POST", "/tokens/expire").await;
    let frame = tokio::time::timeout(Duration::from_secs(5), control.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Close(Some(close)) = frame else {
        panic!("expected a close frame, got {frame:?}")
    };
    assert_eq!(u16::from(close.code), 1008);
}

#[tokio::test]
async fn an_invalid_renewal_closes_the_channel_with_1008() {
    let emulator = emulator().await;
    let mut control = raw_connect(
        &emulator,
        &format!(
            "/$hc/actions?sb-hc-action=listen&sb-hc-token={}",
            url::form_urlencoded::byte_serialize(root_token("actions", 60).as_bytes())
                .collect::<String>()
        ),
        &[],
    )
    .await
    .unwrap();
    let bad = Token::sign(
        &resource_uri(NAMESPACE, "actions"),
        "root",
        "wrong",
        4_000_000_000,
    );
    let renew = json!({"renewToken": {"token": bad.as_str()}}).to_string();
    control.send(Message::Text(renew.into())).await.unwrap();
    let frame = control.next().await.unwrap().unwrap();
    let Message::Close(Some(close)) = frame else {
        panic!("expected a close frame, got {frame:?}")
    };
    assert_eq!(u16::from(close.code), 1008);
}

#[tokio::test]
async fn nhs_and_node_sdk_token_habits_are_accepted() {
    let emulator = emulator().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The NHS app: https:// resource, token in the query with quote_plus (space as '+').
    let nhs = Token::sign(
        &format!("https://{NAMESPACE}/actions"),
        "root",
        ROOT_KEY,
        now + 60,
    );
    let query: String = url::form_urlencoded::byte_serialize(nhs.as_str().as_bytes()).collect();
    assert!(query.contains('+'));
    let mut control = raw_connect(
        &emulator,
        &format!("/$hc/actions?sb-hc-action=listen&sb-hc-token={query}"),
        &[],
    )
    .await
    .unwrap();
    // Microsoft's Node SDK: port inside the signed resource, token in the header.
    let node = Token::sign(
        &format!("http://{NAMESPACE}:443/actions"),
        "root",
        ROOT_KEY,
        now + 60,
    );
    let sender = tokio::spawn({
        let url = format!("ws://{}/$hc/actions?sb-hc-action=connect", emulator.addr());
        async move {
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert(
                "ServiceBusAuthorization",
                HeaderValue::from_str(node.as_str()).unwrap(),
            );
            let (mut socket, _) = connect_async(request).await.unwrap();
            socket
                .send(Message::Text("from node".into()))
                .await
                .unwrap();
            socket.next().await.unwrap().unwrap()
        }
    });
    let accept = next_accept(&mut control).await;
    assert!(
        accept["connectHeaders"]
            .get("ServiceBusAuthorization")
            .is_none(),
        "the token must not be forwarded"
    );
    let (mut rendezvous, _) = connect_async(accept["address"].as_str().unwrap())
        .await
        .unwrap();
    let got = rendezvous.next().await.unwrap().unwrap();
    assert_eq!(got, Message::Text("from node".into()));
    rendezvous.send(Message::Text("ack".into())).await.unwrap();
    assert_eq!(sender.await.unwrap(), Message::Text("ack".into()));
}

#[tokio::test]
async fn frames_keep_their_boundaries_and_types_and_identical_keys_do_not_collide() {
    let emulator = emulator().await;
    let mut control = raw_connect(
        &emulator,
        "/$hc/actions?sb-hc-action=listen",
        &[("ServiceBusAuthorization", root_token("actions", 60))],
    )
    .await
    .unwrap();
    // Five senders presenting the same Sec-WebSocket-Key at once.
    let senders: Vec<_> = (0..5u8)
        .map(|i| {
            let url = format!("ws://{}/$hc/actions?sb-hc-action=connect", emulator.addr());
            let token = root_token("actions", 60);
            tokio::spawn(async move {
                let mut request = url.into_client_request().unwrap();
                let headers = request.headers_mut();
                headers.insert(
                    "ServiceBusAuthorization",
                    HeaderValue::from_str(&token).unwrap(),
                );
                headers.insert(
                    "Sec-WebSocket-Key",
                    HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
                );
                let (mut socket, _) = connect_async(request).await.unwrap();
                socket
                    .send(Message::Binary(vec![i, 0, 255].into()))
                    .await
                    .unwrap();
                socket
                    .send(Message::Text(format!("text {i}").into()))
                    .await
                    .unwrap();
                let first = socket.next().await.unwrap().unwrap();
                let second = socket.next().await.unwrap().unwrap();
                (i, first, second)
            })
        })
        .collect();
    for _ in 0..5 {
        let accept = next_accept(&mut control).await;
        let address = accept["address"].as_str().unwrap().to_string();
        tokio::spawn(async move {
            let (mut rendezvous, _) = connect_async(address).await.unwrap();
            let Message::Binary(bytes) = rendezvous.next().await.unwrap().unwrap() else {
                panic!("binary frame expected first")
            };
            let Message::Text(text) = rendezvous.next().await.unwrap().unwrap() else {
                panic!("text frame expected second")
            };
            assert_eq!(text.as_str(), format!("text {}", bytes[0]));
            rendezvous
                .send(Message::Text(format!("reply {}", bytes[0]).into()))
                .await
                .unwrap();
            rendezvous.send(Message::Binary(bytes)).await.unwrap();
        });
    }
    for sender in senders {
        let (i, first, second) = sender.await.unwrap();
        assert_eq!(first, Message::Text(format!("reply {i}").into()));
        assert_eq!(second, Message::Binary(vec![i, 0, 255].into()));
    }
}

#[tokio::test]
async fn a_reject_reaches_the_sender_and_rendezvous_addresses_are_single_use() {
    let emulator = emulator().await;
    let mut control = raw_connect(
        &emulator,
        "/$hc/actions?sb-hc-action=listen",
        &[("ServiceBusAuthorization", root_token("actions", 60))],
    )
    .await
    .unwrap();
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    let sending = tokio::spawn(async move { sender.request("x").await });
    let accept = next_accept(&mut control).await;
    let address = accept["address"].as_str().unwrap();
    let reject = format!("{address}&sb-hc-statusCode=409&sb-hc-statusDescription=Gateway%20busy");
    let error = connect_async(reject).await.unwrap_err();
    assert_eq!(
        status_of(error),
        410,
        "the listener's reject handshake gets 410 Gone"
    );
    let error = sending.await.unwrap().unwrap_err();
    assert_eq!(
        error,
        RelayError::Status {
            entity: "actions".into(),
            status: 409,
            detail: "Gateway busy".into()
        }
    );
    // The address was consumed by the reject.
    let error = connect_async(address).await.unwrap_err();
    assert_eq!(status_of(error), 403);
}

#[tokio::test]
async fn an_unanswered_accept_times_out_the_sender() {
    let emulator = emulator_with(|c| c.rendezvous_timeout = Duration::from_millis(300)).await;
    let mut control = raw_connect(
        &emulator,
        "/$hc/actions?sb-hc-action=listen",
        &[("ServiceBusAuthorization", root_token("actions", 60))],
    )
    .await
    .unwrap();
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    let sending = tokio::spawn(async move { sender.request("x").await });
    let _ignored = next_accept(&mut control).await;
    let error = sending.await.unwrap().unwrap_err();
    assert!(
        matches!(error, RelayError::Status { status: 504, .. }),
        "{error}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn the_twenty_sixth_listener_is_refused() {
    let emulator = emulator().await;
    let mut open = Vec::new();
    for _ in 0..25 {
        open.push(
            raw_connect(
                &emulator,
                "/$hc/events?sb-hc-action=listen",
                &[("ServiceBusAuthorization", root_token("events", 60))],
            )
            .await
            .unwrap(),
        );
    }
    let error = raw_connect(
        &emulator,
        "/$hc/events?sb-hc-action=listen",
        &[("ServiceBusAuthorization", root_token("events", 60))],
    )
    .await
    .unwrap_err();
    assert_eq!(status_of(error), 403);
    assert_eq!(
        admin(&emulator, "GET", "/entities").await["events"]["listenerCount"],
        25
    );
}

#[tokio::test]
async fn senders_are_spread_over_several_listeners() {
    let emulator = emulator().await;
    let a = echo_listener(&emulator, "a", ListenerOptions::default()).await;
    let b = echo_listener(&emulator, "b", ListenerOptions::default()).await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    let mut seen_a = 0;
    for _ in 0..40 {
        if sender.request("x").await.unwrap().starts_with("a:") {
            seen_a += 1;
        }
    }
    // Random choice: both listeners get some (all 40 on one has probability 2^-39).
    assert!((1..40).contains(&seen_a), "a served {seen_a} of 40");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn non_websocket_requests_get_400() {
    let emulator = emulator().await;
    let mut tcp = TcpStream::connect(emulator.addr()).await.unwrap();
    tcp.write_all(
        b"GET /$hc/actions?sb-hc-action=connect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("only for web-socket requests"));
}

#[tokio::test]
async fn disabling_an_entity_closes_its_listeners_until_it_is_enabled() {
    let emulator = emulator().await;
    let mut listener = echo_listener(&emulator, "gw", fast_options()).await;
    let answer = admin(&emulator, "POST", "/entities/actions/disable").await;
    assert_eq!(answer["closed"], 1);
    listener
        .wait_for("refused while disabled", |s| {
            !s.connected
                && s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("disabled"))
        })
        .await;
    admin(&emulator, "POST", "/entities/actions/enable").await;
    // The backoff is at most 2 s by the third attempt.
    listener
        .wait_for("back after enable", |s| s.connected && s.connections == 2)
        .await;
    listener.stop().await;
}

#[tokio::test]
async fn the_client_tunnels_through_an_http_connect_proxy() {
    let emulator = emulator().await;
    let _listener = echo_listener(&emulator, "gw", ListenerOptions::default()).await;
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let counter = tunnels.clone();
    tokio::spawn(async move {
        // A minimal CONNECT proxy, as a trust's forward proxy behaves.
        while let Ok((mut inbound, _)) = proxy.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(inbound.read_u8().await.unwrap());
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split_whitespace().nth(1).unwrap().to_string();
                assert!(head.starts_with("CONNECT "), "{head}");
                counter.fetch_add(1, Ordering::SeqCst);
                let mut outbound = TcpStream::connect(target).await.unwrap();
                inbound
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let mut config = client(&emulator, "root", ROOT_KEY);
    config.proxy = Some(format!("http://{proxy_addr}").parse().unwrap());
    let sender = Sender::new(config, "actions");
    assert_eq!(sender.request("via proxy").await.unwrap(), "gw:via proxy");
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn signed_actions_cross_the_relay_and_tampering_is_refused_with_a_reason() {
    let emulator = emulator().await;
    let cloud_key = SigningKey::generate();
    let gateway_key = SigningKey::generate();
    let gateway_trusts = Verification::strict(Keyring::new(vec![cloud_key.public_key()]));
    let cloud_trusts = Verification::strict(Keyring::new(vec![gateway_key.public_key()]));
    let gateway_signer = gateway_key.clone();
    let mut listener = spawn_listener(
        client(&emulator, "root", ROOT_KEY),
        "actions",
        ListenerOptions::default(),
        move |text| {
            let reply = match Action::open(&text, &gateway_trusts) {
                Ok(action) => ActionReply::new(
                    action.action_id,
                    Outcome::Echo {
                        payload: json!("ok"),
                    },
                ),
                Err(rejected) => ActionReply::rejected(&rejected),
            };
            let sealed = gateway_signer.seal(&reply);
            async move { sealed }
        },
    );
    listener.wait_for("connected", |s| s.connected).await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");

    let action = Action::new("test", Command::Echo(json!({"n": 1})));
    let reply = sender.request(&cloud_key.seal(&action)).await.unwrap();
    let reply = ActionReply::open(&reply, &cloud_trusts).unwrap();
    assert!(reply.is_success());
    assert_eq!(reply.action_id, Some(action.action_id));

    let tampered = cloud_key.seal(&action).replace("\"n\":1", "\"n\":2");
    let reply = sender.request(&tampered).await.unwrap();
    let reply = ActionReply::open(&reply, &cloud_trusts).unwrap();
    let Outcome::Error { message } = reply.outcome else {
        panic!("tampered action accepted: {reply:?}")
    };
    assert!(message.contains("does not match"), "{message}");
    assert_eq!(reply.action_id, Some(action.action_id));
    listener.stop().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_and_the_listener_goes_on() {
    let emulator = emulator().await;
    let mut config = client(&emulator, "root", ROOT_KEY);
    config.limits.max_message_bytes = 64 * 1024;
    let mut listener = spawn_listener(
        config,
        "actions",
        fast_options(),
        |text: String| async move { format!("gw:{}", text.len()) },
    );
    listener.wait_for("connected", |s| s.connected).await;
    let sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");

    // tungstenite's default would have taken up to 64 MiB.
    let error = sender.request(&"x".repeat(200 * 1024)).await.unwrap_err();
    assert!(
        matches!(&error, RelayError::Closed(why) if why.starts_with("1009")),
        "{error}"
    );
    // Up to the limit is served, on the same control channel.
    let at_limit = "y".repeat(64 * 1024);
    assert_eq!(sender.request(&at_limit).await.unwrap(), "gw:65536");
    assert_eq!(sender.request("hello").await.unwrap(), "gw:5");
    let status = listener.status.borrow().clone();
    assert!(status.connected && status.connections == 1, "{status:?}");
    listener.stop().await;
}

#[tokio::test]
async fn senders_beyond_the_concurrency_limit_are_rejected_with_503() {
    let emulator = emulator().await;
    let mut config = client(&emulator, "root", ROOT_KEY);
    config.limits.max_concurrent_messages = 2;
    // Handlers wait here until the test lets them answer.
    let (open_gate, gate) = watch::channel(false);
    let mut listener = spawn_listener(config, "actions", fast_options(), move |text: String| {
        let mut gate = gate.clone();
        async move {
            let _ = gate.wait_for(|open| *open).await;
            format!("done:{text}")
        }
    });
    listener.wait_for("connected", |s| s.connected).await;
    let mut sender = Sender::new(client(&emulator, "root", ROOT_KEY), "actions");
    sender.reply_timeout = Duration::from_secs(10);
    let held: Vec<_> = (0..2)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move { sender.request(&i.to_string()).await })
        })
        .collect();
    listener.wait_for("two in hand", |s| s.accepted == 2).await;

    let error = sender.request("third").await.unwrap_err();
    assert!(
        matches!(error, RelayError::Status { status: 503, .. }),
        "{error}"
    );
    assert!(error.is_retryable(), "senders retry a busy listener");
    assert_eq!(listener.status.borrow().rejected, 1);

    open_gate.send(true).unwrap();
    for (i, sending) in held.into_iter().enumerate() {
        assert_eq!(sending.await.unwrap().unwrap(), format!("done:{i}"));
    }
    assert_eq!(sender.request("after").await.unwrap(), "done:after");
    listener.stop().await;
}
