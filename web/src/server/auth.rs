//! Sign-in sessions carried in an HttpOnly cookie, and reading the signed-in user from a request.

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

use super::db::StoreError;
use super::state::AppState;
use super::store::identity::{self, User};

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
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200{}",
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
