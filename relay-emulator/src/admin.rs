//! The test-only admin API, on its own port: inspect listeners and inject the faults a real
//! namespace produces (dropped channels, 1011s, expired tokens, disabled entities, zombies).
//!
//! | request | effect |
//! |---|---|
//! | `GET /entities` | every entity with `enabled`, `listenerCount` and its listeners |
//! | `PUT /entities/{hc}` / `DELETE /entities/{hc}` | create / delete (listeners closed with 1001) |
//! | `POST /entities/{hc}/disable` / `…/enable` | disable (listeners closed with 1001) / enable |
//! | `POST /entities/{hc}/listeners/drop[?id=N]` | drop channels without a close frame |
//! | `POST /entities/{hc}/listeners/close?code=1011[&id=N]` | close channels with a code |
//! | `POST /entities/{hc}/listeners/mute[?id=N]` | stop reading and routing: a zombie listener |
//! | `POST /tokens/expire` | every listener's token expires now (close 1008 unless renewed) |

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::state::{ControlOrder, Entity, State};

type Reply = Response<Full<Bytes>>;

/// One admin request.
pub async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Reply, Infallible> {
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
    let id = param("id").and_then(|v| v.parse::<u64>().ok());
    let segments: Vec<String> = request
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let reply = match (request.method(), segments.as_slice()) {
        (&Method::GET, ["entities"]) => ok(entities(&state)),
        (&Method::PUT, ["entities", name]) => {
            state
                .entities
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_insert(Entity {
                    enabled: true,
                    listeners: Vec::new(),
                });
            ok(json!({"created": name}))
        }
        (&Method::DELETE, ["entities", name]) => {
            let closed = state.order(name, None, || {
                ControlOrder::Close(1001, "entity deleted".into())
            });
            state.entities.lock().unwrap().remove(*name);
            ok(json!({"deleted": name, "closed": closed}))
        }
        (&Method::POST, ["entities", name, verb @ ("disable" | "enable")]) => {
            let enable = *verb == "enable";
            match state.entities.lock().unwrap().get_mut(*name) {
                Some(entity) => entity.enabled = enable,
                None => return Ok(error(StatusCode::NOT_FOUND, "no such entity")),
            }
            let closed = if enable {
                0
            } else {
                state.order(name, None, || {
                    ControlOrder::Close(1001, "entity disabled".into())
                })
            };
            ok(json!({"entity": name, "enabled": enable, "closed": closed}))
        }
        (&Method::POST, ["entities", name, "listeners", verb]) => {
            let order = match *verb {
                "drop" => || ControlOrder::Drop,
                "mute" => || ControlOrder::Mute,
                "close" => {
                    let code = param("code").and_then(|c| c.parse().ok()).unwrap_or(1011);
                    let count = state.order(name, id, || {
                        ControlOrder::Close(code, "closed by the emulator's admin API".into())
                    });
                    return Ok(ok(json!({"closed": count, "code": code})));
                }
                _ => return Ok(error(StatusCode::NOT_FOUND, "unknown listener operation")),
            };
            if *verb == "mute" {
                // A muted listener leaves routing at once, as a zombie does from the relay's view.
                let affected = state.order(name, id, order);
                let muted: Vec<u64> = state
                    .entities
                    .lock()
                    .unwrap()
                    .get(*name)
                    .map(|e| {
                        e.listeners
                            .iter()
                            .filter(|l| id.is_none_or(|id| l.info.id == id))
                            .map(|l| l.info.id)
                            .collect()
                    })
                    .unwrap_or_default();
                for listener in muted {
                    state.remove_listener(name, listener);
                }
                ok(json!({"muted": affected}))
            } else {
                ok(json!({"dropped": state.order(name, id, order)}))
            }
        }
        (&Method::POST, ["tokens", "expire"]) => {
            let mut count = 0;
            for (entity, listener) in state.all_listeners() {
                count += state.order(&entity, Some(listener), || ControlOrder::ExpireToken);
            }
            ok(json!({"expired": count}))
        }
        _ => error(StatusCode::NOT_FOUND, "unknown admin request"),
    };
    Ok(reply)
}

fn entities(state: &State) -> Value {
    let entities = state.entities.lock().unwrap();
    let list: serde_json::Map<String, Value> = entities
        .iter()
        .map(|(name, e)| {
            let listeners: Vec<_> = e.listeners.iter().map(|l| l.info.clone()).collect();
            (
                name.clone(),
                json!({"enabled": e.enabled, "listenerCount": listeners.len(), "listeners": listeners}),
            )
        })
        .collect();
    Value::Object(list)
}

fn ok(body: Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Reply {
    let mut response = ok(json!({"error": message}));
    *response.status_mut() = status;
    response
}
