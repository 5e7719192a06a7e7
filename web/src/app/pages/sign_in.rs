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

/// Signs in with email and password, sets the session cookie and goes to the clinics.
#[server(endpoint = "/sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    use crate::app::context;
    use crate::server::{auth, store::identity};
    let state = context::state()?;
    let user = identity::authenticate(&state.db, &email, &password)
        .await
        .map_err(context::fail)?
        .ok_or_else(|| AppError::Invalid("The email address or password is not right".into()))?;
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
