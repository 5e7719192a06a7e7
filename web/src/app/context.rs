//! Reaching the app state and the signed-in user from inside a server function, and turning a
//! store error into the [`AppError`] the page gets with the matching HTTP status. Server only.

use http::request::Parts;
use http::StatusCode;
use leptos::prelude::*;
use leptos_axum::ResponseOptions;

use super::error::AppError;
use crate::server::auth;
use crate::server::db::StoreError;
use crate::server::state::AppState;
use crate::server::store::identity::User;

/// The app state the router provides to every server function.
pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::Internal("app state missing".into()))
}

/// The request being answered.
pub fn request() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or_else(|| AppError::Internal("request missing".into()))
}

/// The signed-in user, or `None`.
pub async fn signed_in() -> Result<(AppState, Option<User>), AppError> {
    let state = state()?;
    let user = auth::user(&state, &request()?.headers)
        .await
        .map_err(fail)?;
    Ok((state, user))
}

/// The signed-in user; otherwise redirects to the sign-in page.
pub async fn user() -> Result<(AppState, User), AppError> {
    match signed_in().await? {
        (state, Some(user)) => Ok((state, user)),
        (_, None) => {
            leptos_axum::redirect("/sign-in");
            Err(AppError::SignInFirst)
        }
    }
}

/// A store error as the app error, with the matching HTTP status; server faults are logged.
pub fn fail(e: StoreError) -> AppError {
    let (status, error) = match e {
        StoreError::NotFound => (StatusCode::NOT_FOUND, AppError::NotFound),
        StoreError::Forbidden(why) => (StatusCode::FORBIDDEN, AppError::Forbidden(why)),
        e @ (StoreError::Illegal(_) | StoreError::Refused(_)) => {
            (StatusCode::CONFLICT, AppError::Refused(e.to_string()))
        }
        other => {
            tracing::error!("{other}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                AppError::Internal(other.to_string()),
            )
        }
    };
    if let Some(response) = use_context::<ResponseOptions>() {
        response.set_status(status);
    }
    error
}
