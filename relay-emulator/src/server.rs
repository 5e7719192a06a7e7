//! The relay's websocket endpoints: listen, connect (held until accept), accept and reject.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use shared::relay::sas::SasError;
use tokio::sync::oneshot;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::auth::{self, now};
use crate::config::Right;
use crate::state::{ControlOrder, Pending, ServerSocket, State, Verdict};

/// The header the Microsoft SDKs carry tokens in.
const TOKEN_HEADER: &str = "ServiceBusAuthorization";
/// How long a muted ("zombie") control channel is held open before it is finally dropped.
const MUTE_HOLD: Duration = Duration::from_secs(120);

type Reply = Response<Full<Bytes>>;

/// One HTTP request to the relay port.
pub async fn handle(
    state: Arc<State>,
    public_base: Arc<str>,
    remote: SocketAddr,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let path = request.uri().path().to_string();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(hc_path) = path.strip_prefix("/$hc/") else {
        return Ok(refuse(
            StatusCode::NOT_IMPLEMENTED,
            "HTTP-mode requests are not emulated: use the websocket endpoints under /$hc/",
        ));
    };
    if !is_websocket(&request) {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "This endpoint is only for web-socket requests",
        ));
    }
    let Some((entity, suffix)) = state.resolve(hc_path) else {
        return Ok(not_found(&state, hc_path, "Endpoint does not exist."));
    };
    let token = param("sb-hc-token").or_else(|| {
        request
            .headers()
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let action = param("sb-hc-action").unwrap_or_default();
    let response = match action.as_str() {
        "listen" => listen(&state, request, remote, &entity, token.as_deref()),
        "connect" => {
            let app_query: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| !k.starts_with("sb-hc-"))
                .cloned()
                .collect();
            let sender_id = param("sb-hc-id");
            let target = Target {
                entity: &entity,
                suffix: &suffix,
                app_query,
                sender_id,
            };
            connect(
                &state,
                &public_base,
                request,
                remote,
                target,
                token.as_deref(),
            )
            .await
        }
        "accept" => accept(
            &state,
            request,
            param("sb-hc-id"),
            param("sb-hc-statusCode"),
            param("sb-hc-statusDescription"),
        ),
        other => refuse(
            StatusCode::BAD_REQUEST,
            &format!("sb-hc-action {other:?} is not listen, connect or accept"),
        ),
    };
    Ok(response)
}

fn is_websocket(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && request.headers().contains_key(header::SEC_WEBSOCKET_KEY)
}

/// An error response with the description both as the reason phrase (as Azure sends it) and body.
fn refuse(status: StatusCode, description: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(description.to_string())));
    *response.status_mut() = status;
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(description.replace(['\r', '\n'], " ")) {
        response.extensions_mut().insert(reason);
    }
    response
}

fn not_found(state: &State, path: &str, what: &str) -> Reply {
    refuse(
        StatusCode::NOT_FOUND,
        &format!(
            "{what} TrackingId:{}_G0, SystemTracker:sb://{}/{path}, Timestamp:{}",
            uuid::Uuid::new_v4(),
            state.config.namespace,
            now()
        ),
    )
}

fn sas_refusal(error: SasError) -> Reply {
    let status = StatusCode::from_u16(error.http_status()).expect("401 and 403 are valid");
    let text = match error {
        SasError::Unauthorized(t) | SasError::Forbidden(t) => t,
    };
    refuse(status, &text)
}

/// Completes a websocket upgrade: the 101 now, the socket later on `on_socket`.
fn upgrade<F, Fut>(mut request: Request<Incoming>, subprotocol: Option<&str>, on_socket: F) -> Reply
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                on_socket(socket).await;
            }
            Err(e) => tracing::debug!("upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(value) = subprotocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    response
}

fn listen(
    state: &Arc<State>,
    request: Request<Incoming>,
    remote: SocketAddr,
    entity: &str,
    token: Option<&str>,
) -> Reply {
    let config = &state.config;
    let expires_at = match auth::authorize(
        token,
        &config.namespace,
        entity,
        &config.rules,
        Right::Listen,
    ) {
        Ok(expiry) => expiry,
        Err(e) => return sas_refusal(e),
    };
    if state.entity_enabled(entity) == Some(false) {
        return not_found(state, entity, "Endpoint is disabled.");
    }
    let (id, orders) = match state.add_listener(entity, remote) {
        Ok(ok) => ok,
        Err(why) => return refuse(StatusCode::FORBIDDEN, &why),
    };
    tracing::info!(entity, listener = id, %remote, "listener connected");
    let state = state.clone();
    let entity = entity.to_string();
    upgrade(request, None, move |socket| async move {
        let ended = control_channel(&state, &entity, socket, orders, expires_at).await;
        state.remove_listener(&entity, id);
        tracing::info!(entity, listener = id, "listener gone: {ended}");
    })
}

/// Serves one listener's control channel until it ends; returns why it ended.
async fn control_channel(
    state: &State,
    entity: &str,
    socket: ServerSocket,
    mut orders: tokio::sync::mpsc::UnboundedReceiver<ControlOrder>,
    mut expires_at: u64,
) -> String {
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = state.shutdown.subscribe();
    let idle = state.config.idle_timeout;
    let mut last_seen = Instant::now();
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        }))
    };
    loop {
        // The exact instant `se` passes, not whole seconds from now.
        let left = (UNIX_EPOCH + Duration::from_secs(expires_at))
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let expiry = Instant::now() + left;
        let idle_deadline = last_seen + idle.unwrap_or(Duration::from_secs(86_400));
        tokio::select! {
            _ = sleep_until(expiry) => {
                let _ = sink.send(close(1008, "token expired")).await;
                return "token expired (1008)".into();
            }
            _ = sleep_until(idle_deadline), if idle.is_some() => {
                return "idle: dropped without a close frame".into();
            }
            _ = shutdown.changed() => {
                let _ = sink.send(close(1001, "relay shutting down")).await;
                return "emulator shutting down".into();
            }
            order = orders.recv() => match order {
                None => return "removed".into(),
                Some(ControlOrder::Send(text)) => {
                    if let Err(e) = sink.send(Message::Text(text.into())).await {
                        return format!("send failed: {e}");
                    }
                }
                Some(ControlOrder::Close(code, reason)) => {
                    let _ = sink.send(close(code, &reason)).await;
                    return format!("closed by admin ({code})");
                }
                Some(ControlOrder::Drop) => return "dropped by admin".into(),
                Some(ControlOrder::ExpireToken) => expires_at = now().saturating_sub(1),
                Some(ControlOrder::Mute) => {
                    // A zombie: the relay forgets it and stops reading (so no pongs), but the
                    // TCP connection stays open until the client notices.
                    orders.close();
                    tokio::select! {
                        _ = sleep(MUTE_HOLD) => {}
                        _ = shutdown.changed() => {}
                    }
                    return "muted by admin".into();
                }
            },
            frame = stream.next() => {
                last_seen = Instant::now();
                match frame {
                    None => return "connection closed".into(),
                    Some(Err(e)) => return format!("connection error: {e}"),
                    Some(Ok(Message::Close(_))) => return "listener closed".into(),
                    Some(Ok(Message::Text(text))) => {
                        if let Some(token) = renew_token(&text) {
                            let config = &state.config;
                            match auth::authorize(Some(&token), &config.namespace, entity, &config.rules, Right::Listen) {
                                Ok(expiry) => {
                                    expires_at = expiry;
                                    tracing::debug!(entity, "token renewed until {expiry}");
                                }
                                Err(e) => {
                                    let _ = sink.send(close(1008, &e.to_string())).await;
                                    return format!("renewToken refused: {e}");
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

fn renew_token(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value["renewToken"]["token"].as_str().map(str::to_string)
}

/// Where a sender wants to go.
struct Target<'a> {
    entity: &'a str,
    suffix: &'a str,
    app_query: Vec<(String, String)>,
    sender_id: Option<String>,
}

async fn connect(
    state: &Arc<State>,
    public_base: &str,
    request: Request<Incoming>,
    remote: SocketAddr,
    target: Target<'_>,
    token: Option<&str>,
) -> Reply {
    let config = &state.config;
    let entity = target.entity;
    if let Err(e) = auth::authorize(token, &config.namespace, entity, &config.rules, Right::Send) {
        return sas_refusal(e);
    }
    if state.entity_enabled(entity) == Some(false) {
        return not_found(state, entity, "Endpoint is disabled.");
    }
    if !state.has_listener(entity) {
        return not_found(
            state,
            entity,
            "There are no listeners connected for the endpoint.",
        );
    }
    // Never the Sec-WebSocket-Key: concurrent senders may present identical ones.
    let id = format!(
        "{}_G0",
        target
            .sender_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    );
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &target.app_query {
            query.append_pair(k, v);
        }
        query.append_pair("sb-hc-action", "accept");
        query.append_pair("sb-hc-id", &id);
        query.finish()
    };
    let address = format!("{public_base}/$hc/{entity}{}?{query}", target.suffix);
    let connect_headers: HashMap<String, String> = request
        .headers()
        .iter()
        .filter(|(name, _)| !name.as_str().eq_ignore_ascii_case(TOKEN_HEADER))
        .filter_map(|(name, value)| {
            Some((canonical(name.as_str()), value.to_str().ok()?.to_string()))
        })
        .collect();
    let accept = json!({"accept": {
        "address": address,
        "id": id,
        "connectHeaders": connect_headers,
        "remoteEndpoint": {"address": remote.ip().to_string(), "port": remote.port()},
    }})
    .to_string();

    let (verdict_tx, verdict_rx) = oneshot::channel();
    state.pending.lock().unwrap().insert(
        id.clone(),
        Pending {
            entity: entity.to_string(),
            verdict: verdict_tx,
        },
    );
    if !state.dispatch(entity, accept) {
        state.pending.lock().unwrap().remove(&id);
        return not_found(
            state,
            entity,
            "There are no listeners connected for the endpoint.",
        );
    }
    let verdict = tokio::time::timeout(config.rendezvous_timeout, verdict_rx).await;
    state.pending.lock().unwrap().remove(&id);
    match verdict {
        Err(_) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "The listener did not accept the connection in time",
        ),
        Ok(Err(_)) => refuse(StatusCode::BAD_GATEWAY, "The listener went away"),
        Ok(Ok(Verdict::Rejected {
            status,
            description,
        })) => refuse(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &description,
        ),
        Ok(Ok(Verdict::Accepted {
            listener_socket,
            subprotocol,
        })) => upgrade(request, subprotocol.as_deref(), move |sender| async move {
            match listener_socket.await {
                Ok(listener) => pump(sender, listener).await,
                Err(_) => tracing::debug!("listener's rendezvous never completed"),
            }
        }),
    }
}

/// `sec-websocket-key` → `Sec-WebSocket-Key`, as the service reports headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn accept(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: Option<String>,
    status: Option<String>,
    description: Option<String>,
) -> Reply {
    let pending = id.and_then(|id| state.pending.lock().unwrap().remove(&id));
    let Some(pending) = pending else {
        return refuse(
            StatusCode::FORBIDDEN,
            "The rendezvous address is not valid: unknown, already used or expired",
        );
    };
    if let Some(status) = status {
        let status = status
            .parse::<u16>()
            .ok()
            .filter(|s| (400..600).contains(s))
            .unwrap_or(400);
        let description = description.unwrap_or_else(|| "Rejected by user code".into());
        tracing::info!(
            entity = pending.entity,
            status,
            "listener rejected a sender: {description}"
        );
        let _ = pending.verdict.send(Verdict::Rejected {
            status,
            description,
        });
        return refuse(StatusCode::GONE, "Rejection delivered to the sender");
    }
    let subprotocol = request
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or(v).trim().to_string());
    let (socket_tx, socket_rx) = oneshot::channel();
    let verdict = Verdict::Accepted {
        listener_socket: socket_rx,
        subprotocol: subprotocol.clone(),
    };
    if pending.verdict.send(verdict).is_err() {
        return refuse(StatusCode::GONE, "The sender is gone");
    }
    upgrade(request, subprotocol.as_deref(), move |socket| async move {
        let _ = socket_tx.send(socket);
    })
}

/// Relays frames both ways, keeping message boundaries and text/binary types; close frames pass
/// through, and an abrupt drop on one side closes the other (1001 to the listener when the sender
/// vanishes, 1000 to the sender when the listener does).
async fn pump(sender: ServerSocket, listener: ServerSocket) {
    let (mut sender_tx, mut sender_rx) = sender.split();
    let (mut listener_tx, mut listener_rx) = listener.split();
    let goodbye = |code: CloseCode, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        }))
    };
    loop {
        tokio::select! {
            frame = sender_rx.next() => match frame {
                Some(Ok(Message::Close(frame))) => {
                    let _ = listener_tx.send(Message::Close(frame)).await;
                    break;
                }
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if listener_tx.send(message).await.is_err() {
                        let _ = sender_tx.send(goodbye(CloseCode::Normal, "listener closed")).await;
                        break;
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    let _ = listener_tx.send(goodbye(CloseCode::Away, "sender disconnected")).await;
                    break;
                }
            },
            frame = listener_rx.next() => match frame {
                Some(Ok(Message::Close(frame))) => {
                    let _ = sender_tx.send(Message::Close(frame)).await;
                    break;
                }
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if sender_tx.send(message).await.is_err() {
                        let _ = listener_tx.send(goodbye(CloseCode::Away, "sender disconnected")).await;
                        break;
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    let _ = sender_tx.send(goodbye(CloseCode::Normal, "listener disconnected")).await;
                    break;
                }
            },
        }
    }
    // Let both close handshakes finish (bounded), so neither peer sees a reset.
    let drain = async { while let Some(Ok(_)) = sender_rx.next().await {} };
    let drain_listener = async { while let Some(Ok(_)) = listener_rx.next().await {} };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        futures_util::future::join(drain, drain_listener),
    )
    .await;
}
