//! The HTTP surface: Leptos pages and server functions, plus the plain axum routes a page cannot
//! be — the live-update streams (SSE) and thumbnail images — all scoped to the signed-in user.

use std::convert::Infallible;
use std::future::ready;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::stream::{self, StreamExt};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use super::auth;
use super::bus::Change;
use super::db::StoreError;
use super::state::AppState;
use super::store::identity::User;
use super::store::{appointments, clinics, images};
use crate::live_event::LiveEvent;

/// The whole app: pages, server functions, streams, thumbnails and the static site.
pub fn router(state: AppState, options: LeptosOptions) -> Router {
    let routes = generate_route_list(crate::app::App);
    let extra = Router::new()
        .route("/live/clinics/{id}", get(clinic_stream))
        .route("/live/appointments/{id}", get(appointment_stream))
        .route("/live/provider", get(provider_stream))
        .route("/images/{id}/thumbnail", get(thumbnail))
        // For load balancers (web/README.md): the process answers / this replica can serve.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state.clone());
    let guard_state = state.clone();
    let context = move || provide_context(state.clone());
    let app = Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || crate::app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context,
            crate::app::shell,
        ))
        .with_state(options)
        .layer(axum::middleware::from_fn_with_state(
            guard_state.clone(),
            bounded_render,
        ))
        .merge(extra);
    let secure = guard_state.secure_cookies;
    security_headers(
        app.layer(axum::middleware::from_fn_with_state(
            guard_state,
            same_site_only,
        )),
        secure,
    )
}

/// Refuses, with 403 and one log line, any request that could change something (every method
/// but GET, HEAD and OPTIONS: server functions, sign-in and sign-out) unless it comes from this
/// site — the CSRF defence beside `SameSite=Lax`. Pages and data this app answers with are never
/// stored by browsers or proxies: they carry patient data.
async fn same_site_only(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !reads {
        if let Err(why) = auth::same_origin(request.headers(), state.public_origin.as_deref()) {
            tracing::warn!(
                path = request.uri().path(),
                "cross-site request refused: {why}"
            );
            return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
        }
    }
    let mut response = next.run(request).await;
    let private = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html") || t.starts_with("application/json"));
    if private && !response.headers().contains_key(header::CACHE_CONTROL) {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// Ends a page render that has not finished within [`AppState::page_limit`] with a 503 and one
/// log line: the clinician gets "reload" instead of a page that never arrives. A render can
/// stall on the database (every connection busy) or, rarely, inside Leptos's server renderer
/// (leptos-rs/leptos#4851). Only page loads (GET outside `/api/`) are bounded: a server function
/// may wait on a gateway for longer, within its own relay timeouts, and streams never end.
async fn bounded_render(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let page =
        request.method() == axum::http::Method::GET && !request.uri().path().starts_with("/api/");
    if !page {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    match tokio::time::timeout(state.page_limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                path,
                limit_s = state.page_limit.as_secs_f32(),
                "page render did not finish in time; answered 503"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "This page took too long to prepare. Reload to try again.\n",
            )
                .into_response()
        }
    }
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<User, Response> {
    match auth::user(state, headers).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(StatusCode::UNAUTHORIZED.into_response()),
        Err(e) => Err(error_response(e)),
    }
}

fn error_response(e: StoreError) -> Response {
    match e {
        StoreError::NotFound => StatusCode::NOT_FOUND.into_response(),
        StoreError::Forbidden(_) => StatusCode::FORBIDDEN.into_response(),
        other => {
            tracing::error!("{other}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An SSE response of the bus changes `wanted` picks, after a `ready` event that tells the page
/// it is subscribed (so nothing it should see can slip past before the stream starts).
fn stream_of(state: &AppState, wanted: impl Fn(&Change) -> bool + Send + 'static) -> Response {
    let client = super::metrics::SseClient::open();
    let changes = state
        .bus
        .subscribe()
        .filter(move |c| ready(matches!(c, Change::Resync) || wanted(c)))
        .map(move |c| {
            // Held by the stream: dropped, and counted out, when the client goes.
            let _open = &client;
            Ok::<_, Infallible>(
                SseEvent::default()
                    .event(c.event_name())
                    .data(serde_json::to_string(&c).unwrap_or_default()),
            )
        });
    let hello = stream::once(ready(Ok(SseEvent::default()
        .event(LiveEvent::Ready.name())
        .data("{}"))));
    Sse::new(hello.chain(changes))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = super::readiness::check(&state).await;
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(readiness)).into_response()
}

async fn clinic_stream(
    State(state): State<AppState>,
    Path(clinic_id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let gateway = match clinics::detail(&state.db, user.provider_id, clinic_id).await {
        Ok(detail) => detail.clinic.gateway_id,
        Err(e) => return error_response(e),
    };
    // The clinic's gateway changing (offline, back) changes the page's banner.
    stream_of(&state, move |c| match c {
        Change::Appointment { clinic_id: c, .. } | Change::Image { clinic_id: c, .. } => {
            *c == clinic_id
        }
        Change::Gateway { gateway_id, .. } => Some(*gateway_id) == gateway,
        _ => false,
    })
}

async fn appointment_stream(
    State(state): State<AppState>,
    Path(appointment_id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(e) = appointments::placement(&state.db, user.provider_id, appointment_id).await {
        return error_response(e);
    }
    stream_of(&state, move |c| match c {
        Change::Appointment {
            appointment_id: a, ..
        }
        | Change::Image {
            appointment_id: a, ..
        } => *a == appointment_id,
        Change::Action {
            appointment_id: a, ..
        } => *a == Some(appointment_id),
        _ => false,
    })
}

async fn provider_stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    stream_of(&state, move |c| {
        matches!(c, Change::Action { .. } | Change::Gateway { .. })
            && c.provider_id() == Some(user.provider_id)
    })
}

async fn thumbnail(
    State(state): State<AppState>,
    Path(image_id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match images::thumbnail(&state.db, user.provider_id, image_id).await {
        // Only ever a JPEG, whatever the gateway called it: the type is ours, not the peer's, and
        // bytes that are not a JPEG are not served at all.
        Ok((bytes, _format)) if is_jpeg(&bytes) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            bytes,
        )
            .into_response(),
        Ok(_) => {
            tracing::warn!(image = image_id, "thumbnail is not a JPEG; not served");
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => error_response(e),
    }
}

/// A JPEG starts with SOI and a marker (FF D8 FF).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// The Content-Security-Policy of every response that does not set its own: nothing may load,
/// run or frame it. Pages set [`page_csp`] instead.
pub const STRICT_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A page's policy: its own scripts (the wasm client, and Leptos's inline hydration scripts by
/// this response's nonce), styles, images and fonts from this origin, server functions and SSE
/// to this origin, forms posting here, and never framed. The NHS design system's CSS loads the
/// Frutiger web fonts from assets.nhs.uk, the one other origin.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; font-src 'self' https://assets.nhs.uk; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The headers every response carries (a page's CSP is set by the page, see [`page_csp`]); with
/// `https`, browsers are also told to use nothing else for two years (HSTS).
fn security_headers(router: Router, https: bool) -> Router {
    use axum::http::HeaderValue;
    use tower_http::set_header::SetResponseHeaderLayer;
    let router = if https {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ))
    } else {
        router
    };
    router
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(STRICT_CSP),
        ))
}
