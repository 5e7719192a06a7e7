//! `/sign-in`: email and password; a session cookie on success.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::error::AppError;
use crate::app::widgets::action_error;

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    view! {
        <Title text="Sign in – Manage breast screening"/>
        <h1>"Sign in"</h1>
        {action_error(action)}
        <ActionForm action=action>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="email">"Email address"</label>
                <input class="nhsuk-input" id="email" name="email" type="email" autocomplete="username" required/>
            </div>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="password">"Password"</label>
                <input class="nhsuk-input" id="password" name="password" type="password" autocomplete="current-password" required/>
            </div>
            <button type="submit" class="nhsuk-button" id="sign-in">"Sign in"</button>
        </ActionForm>
    }
}

/// Signs in with email and password, sets the session cookie and goes to the clinics. Too many
/// failures for the account or this address answer 429 without checking the password.
#[server(endpoint = "/sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    use crate::app::context;
    use crate::server::{auth, throttle};
    let state = context::state()?;
    let request = context::request()?;
    let address = auth::client_address(
        &request.headers,
        &request.extensions,
        state.trust_forwarded_for,
    );
    let response = expect_context::<leptos_axum::ResponseOptions>();
    match auth::sign_in(&state, &email, &password, address)
        .await
        .map_err(context::fail)?
    {
        auth::SignIn::Session(_, token) => {
            response.insert_header(
                auth::SET_COOKIE_HEADER,
                auth::session_cookie(&token, state.secure_cookies),
            );
            leptos_axum::redirect("/clinics");
            Ok(())
        }
        auth::SignIn::Refused => {
            response.set_status(http::StatusCode::UNAUTHORIZED);
            Err(AppError::Invalid(
                "The email address or password is not right".into(),
            ))
        }
        auth::SignIn::Throttled(wait_ms) => {
            response.set_status(http::StatusCode::TOO_MANY_REQUESTS);
            Err(AppError::Refused(format!(
                "Too many failed sign-ins. Try again in {}.",
                throttle::in_words(wait_ms)
            )))
        }
    }
}
