//! Signing in (throttled, see [`super::throttle`]), sessions carried in an HttpOnly cookie,
//! reading the signed-in user from a request, and the same-origin check every mutation passes.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

use super::db::StoreError;
use super::state::AppState;
use super::store::identity::{self, User};
use super::throttle;

/// What a sign-in attempt came to.
#[derive(Debug)]
pub enum SignIn {
    /// Right: a new session's token for the cookie.
    Session(User, String),
    /// Wrong email or password, or a disabled account: the page must not say which.
    Refused,
    /// Too many recent failures for this account or address; try again after this many ms.
    Throttled(i64),
}

/// Checks a sign-in, counting failures per account and address; the password is not checked at
/// all while either is over its limit. Each failure is one log line (support sees an attack).
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<SignIn, StoreError> {
    let limits = &state.sign_in_limits;
    let who = address.map_or_else(|| "unknown address".into(), |a| a.to_string());
    if let Some(wait) = throttle::wait_needed(&state.db, limits, email, address).await? {
        tracing::warn!(from = %who, "sign-in throttled for {}: too many failures", email.trim());
        metrics::counter!(super::metrics::SIGN_IN_FAILURES, "reason" => "throttled").increment(1);
        return Ok(SignIn::Throttled(wait));
    }
    match identity::authenticate(&state.db, email, password).await? {
        Some(user) => {
            throttle::clear_account(&state.db, email).await?;
            let token = identity::create_session(&state.db, user.id).await?;
            Ok(SignIn::Session(user, token))
        }
        None => {
            throttle::record_failure(&state.db, limits, email, address).await?;
            tracing::warn!(from = %who, "sign-in failed for {}", email.trim());
            metrics::counter!(super::metrics::SIGN_IN_FAILURES, "reason" => "wrong").increment(1);
            Ok(SignIn::Refused)
        }
    }
}

/// The client's address: the TCP peer, or with `trust_forwarded` (behind a load balancer that
/// appends it, `WEB_TRUST_FORWARDED_FOR`) the last address in `X-Forwarded-For`.
pub fn client_address(
    headers: &HeaderMap,
    extensions: &http::Extensions,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    if trust_forwarded {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// Why a request that changes something is refused as cross-site, or `Ok`. Browsers send
/// `Origin` on every POST; it must be this site: `public_origin` exactly (`WEB_PUBLIC_ORIGIN`,
/// behind a proxy), else the scheme-less host matching the request's `Host`. A request without
/// `Origin` is refused too: a form on another site cannot omit it, and our own pages never do.
pub fn same_origin(headers: &HeaderMap, public_origin: Option<&str>) -> Result<(), String> {
    let origin = headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Origin header")?;
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(format!("Sec-Fetch-Site is {site}"));
        }
    }
    let ours = match public_origin {
        Some(public) => origin.eq_ignore_ascii_case(public.trim_end_matches('/')),
        None => {
            let host = headers.get(HOST).and_then(|v| v.to_str().ok());
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
    };
    if ours {
        Ok(())
    } else {
        Err(format!("Origin {origin} is not this site"))
    }
}

/// The session cookie's name.
pub const COOKIE_NAME: &str = "screening_session";

/// The session token in a request's cookies.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The signed-in user of a request, if any.
pub async fn user(state: &AppState, headers: &HeaderMap) -> Result<Option<User>, StoreError> {
    match session_token(headers) {
        Some(token) => identity::user_for_session(&state.db, &token).await,
        None => Ok(None),
    }
}

/// The `Set-Cookie` value that starts a session. `secure` (behind HTTPS) keeps the browser from
/// ever sending the cookie over plain HTTP.
pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        identity::SESSION_MS / 1000,
        if secure { "; Secure" } else { "" }
    ))
    .expect("a hex token is a valid header value")
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    ))
    .expect("a static cookie is a valid header value")
}

/// The header name for setting cookies, re-exported for server functions.
pub const SET_COOKIE_HEADER: http::HeaderName = SET_COOKIE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_and_secure_when_asked() {
        let plain = session_cookie("abc", false);
        assert!(plain.to_str().unwrap().contains("HttpOnly"));
        assert!(!plain.to_str().unwrap().contains("Secure"));
        assert!(session_cookie("abc", true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
        assert!(clear_cookie(true).to_str().unwrap().contains("Max-Age=0"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_this_sites_origin_may_change_anything() {
        let public = Some("https://screening.example.nhs.uk");
        for (request, public_origin, allowed) in [
            (
                vec![
                    ("host", "127.0.0.1:8000"),
                    ("origin", "http://127.0.0.1:8000"),
                ],
                None,
                true,
            ),
            (
                vec![
                    ("host", "127.0.0.1:8000"),
                    ("origin", "http://evil.example"),
                ],
                None,
                false,
            ),
            (
                vec![("host", "127.0.0.1:8000"), ("origin", "null")],
                None,
                false,
            ),
            (vec![("host", "127.0.0.1:8000")], None, false),
            (
                vec![
                    ("host", "127.0.0.1:8000"),
                    ("origin", "http://127.0.0.1:8000"),
                    ("sec-fetch-site", "cross-site"),
                ],
                None,
                false,
            ),
            (
                vec![
                    ("host", "127.0.0.1:8000"),
                    ("origin", "http://127.0.0.1:8000"),
                    ("sec-fetch-site", "same-origin"),
                ],
                None,
                true,
            ),
            (
                vec![
                    ("host", "internal:8000"),
                    ("origin", "https://screening.example.nhs.uk"),
                ],
                public,
                true,
            ),
            (
                vec![
                    ("host", "internal:8000"),
                    ("origin", "http://internal:8000"),
                ],
                public,
                false,
            ),
        ] {
            let result = same_origin(&headers(&request), public_origin);
            assert_eq!(
                result.is_ok(),
                allowed,
                "{request:?} {public_origin:?}: {result:?}"
            );
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let mut extensions = http::Extensions::new();
        extensions.insert(ConnectInfo("10.0.0.5:4000".parse::<SocketAddr>().unwrap()));
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.2")]);
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(client_address(&forwarded, &extensions, false), Some(peer));
        assert_eq!(
            client_address(&forwarded, &extensions, true),
            Some("198.51.100.2".parse().unwrap())
        );
        assert_eq!(
            client_address(&HeaderMap::new(), &extensions, true),
            Some(peer)
        );
        assert_eq!(
            client_address(&HeaderMap::new(), &http::Extensions::new(), false),
            None
        );
    }

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; screening_session=abc; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("abc"));
        headers.insert(COOKIE, HeaderValue::from_static("a=1"));
        assert_eq!(session_token(&headers), None);
    }
}
