//! Server functions: every read a page makes and every mutation a clinician can do, each at a
//! stable URL `/api/<name>` (form-encoded POST). Each one resolves the signed-in user from the
//! session cookie and passes only that user's provider to the store, so another provider's
//! records are a 404. Bodies run on the server only.

use leptos::prelude::*;

use crate::model::{
    ActionDetail, ActionRow, AppointmentDetail, ClinicDetail, ClinicSummary, GatewayRow,
    SignedInUser,
};

/// The message a server function returns for a record that is absent or not the user's.
pub const NOT_FOUND: &str = "not found";

/// Whether a server function failed because the thing does not exist (for this user).
pub fn is_not_found(e: &ServerFnError) -> bool {
    e.to_string().contains(NOT_FOUND)
}

#[cfg(feature = "ssr")]
pub(crate) mod context {
    //! Reaching the app state and the signed-in user from inside a server function.
    use http::StatusCode;
    use leptos::prelude::*;
    use leptos_axum::ResponseOptions;

    use crate::server::auth;
    use crate::server::db::StoreError;
    use crate::server::state::AppState;
    use crate::server::store::identity::User;

    /// The app state the router provides to every server function.
    pub fn state() -> Result<AppState, ServerFnError> {
        use_context::<AppState>().ok_or_else(|| ServerFnError::new("app state missing"))
    }

    /// The signed-in user; otherwise redirects to the sign-in page.
    pub async fn user() -> Result<(AppState, User), ServerFnError> {
        let state = state()?;
        let parts = use_context::<http::request::Parts>()
            .ok_or_else(|| ServerFnError::new("request missing"))?;
        match auth::user(&state, &parts.headers).await {
            Ok(Some(user)) => Ok((state, user)),
            Ok(None) => {
                leptos_axum::redirect("/sign-in");
                Err(ServerFnError::new("sign in first"))
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// A store error as a server function error, with the matching HTTP status.
    pub fn fail(e: StoreError) -> ServerFnError {
        let status = match &e {
            StoreError::NotFound => StatusCode::NOT_FOUND,
            StoreError::Illegal(_) | StoreError::Refused(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let Some(response) = use_context::<ResponseOptions>() {
            response.set_status(status);
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{e}");
        }
        ServerFnError::new(match e {
            StoreError::NotFound => super::NOT_FOUND.to_string(),
            other => other.to_string(),
        })
    }
}

/// The signed-in clinician, or `None`.
#[server(endpoint = "/current_user")]
pub async fn current_user() -> Result<Option<SignedInUser>, ServerFnError> {
    let state = context::state()?;
    let parts = use_context::<http::request::Parts>()
        .ok_or_else(|| ServerFnError::new("request missing"))?;
    let user = crate::server::auth::user(&state, &parts.headers)
        .await
        .map_err(context::fail)?;
    Ok(user.map(|u| SignedInUser {
        name: u.name,
        email: u.email,
        provider_name: u.provider_name,
    }))
}

/// Signs in with email and password, sets the session cookie and goes to the clinics.
#[server(endpoint = "/sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), ServerFnError> {
    use crate::server::{auth, store::identity};
    let state = context::state()?;
    let user = identity::authenticate(&state.db, &email, &password)
        .await
        .map_err(context::fail)?
        .ok_or_else(|| ServerFnError::new("The email address or password is not right"))?;
    let token = identity::create_session(&state.db, user.id)
        .await
        .map_err(context::fail)?;
    let response = expect_context::<leptos_axum::ResponseOptions>();
    response.insert_header(
        auth::SET_COOKIE_HEADER,
        auth::session_cookie(&token, state.secure_cookies),
    );
    leptos_axum::redirect("/clinics");
    Ok(())
}

/// Ends the session.
#[server(endpoint = "/sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    use crate::server::{auth, store::identity};
    let state = context::state()?;
    let parts = use_context::<http::request::Parts>()
        .ok_or_else(|| ServerFnError::new("request missing"))?;
    if let Some(token) = auth::session_token(&parts.headers) {
        identity::delete_session(&state.db, &token)
            .await
            .map_err(context::fail)?;
    }
    let response = expect_context::<leptos_axum::ResponseOptions>();
    response.insert_header(
        auth::SET_COOKIE_HEADER,
        auth::clear_cookie(state.secure_cookies),
    );
    leptos_axum::redirect("/sign-in");
    Ok(())
}

/// The user's provider's clinics.
#[server(endpoint = "/list_clinics")]
pub async fn list_clinics() -> Result<Vec<ClinicSummary>, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::store::clinics::list(&state.db, user.provider_id)
        .await
        .map_err(context::fail)
}

/// One clinic with its appointments.
#[server(endpoint = "/get_clinic")]
pub async fn get_clinic(id: i64) -> Result<ClinicDetail, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::store::clinics::detail(&state.db, user.provider_id, id)
        .await
        .map_err(context::fail)
}

/// One appointment with its timeline and images.
#[server(endpoint = "/get_appointment")]
pub async fn get_appointment(id: i64) -> Result<AppointmentDetail, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::store::appointments::detail(&state.db, user.provider_id, id)
        .await
        .map_err(context::fail)
}

/// Sends a checked-in participant to the modality worklist (through the outbox).
#[server(endpoint = "/send_to_modality")]
pub async fn send_to_modality(appointment_id: i64) -> Result<String, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::service::send_to_modality(&state, &user, appointment_id)
        .await
        .map_err(context::fail)
}

/// Cancels an unfinished appointment (and its worklist item, if it was sent).
#[server(endpoint = "/cancel_appointment")]
pub async fn cancel_appointment(appointment_id: i64) -> Result<Option<String>, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::service::cancel_appointment(&state, &user, appointment_id)
        .await
        .map_err(context::fail)
}

/// The user's gateways.
#[server(endpoint = "/list_gateways")]
pub async fn list_gateways() -> Result<Vec<GatewayRow>, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::service::gateway_rows(&state, &user)
        .await
        .map_err(context::fail)
}

/// Queues an `echo` or a `health` check to a gateway.
#[server(endpoint = "/check_gateway")]
pub async fn check_gateway(gateway_id: i64, check: String) -> Result<String, ServerFnError> {
    use crate::server::service::{self, GatewayCheck};
    let (state, user) = context::user().await?;
    let check = match check.as_str() {
        "echo" => GatewayCheck::Echo,
        "health" => GatewayCheck::Health,
        other => return Err(ServerFnError::new(format!("unknown check {other}"))),
    };
    service::check_gateway(&state, &user, gateway_id, check)
        .await
        .map_err(context::fail)
}

/// The user's provider's gateway actions, newest first, optionally in one status.
#[server(endpoint = "/list_actions")]
pub async fn list_actions(status: String) -> Result<Vec<ActionRow>, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::store::actions::list(&state.db, user.provider_id, Some(&status), 200)
        .await
        .map_err(context::fail)
}

/// One gateway action with its payload and reply.
#[server(endpoint = "/get_action")]
pub async fn get_action(id: String) -> Result<ActionDetail, ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::store::actions::detail(&state.db, user.provider_id, &id)
        .await
        .map_err(context::fail)
}

/// Re-queues a failed (or waiting) action for sending now.
#[server(endpoint = "/redrive_action")]
pub async fn redrive_action(action_id: String) -> Result<(), ServerFnError> {
    let (state, user) = context::user().await?;
    crate::server::service::redrive(&state, &user, &action_id)
        .await
        .map_err(context::fail)
}
