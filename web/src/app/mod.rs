//! The pages. Rendered on the server (SSR, async so a missing record gives a real 404) and then
//! hydrated in the browser, where each live page subscribes to its SSE stream and re-reads its
//! data when the server announces a change.
//!
//! This module is the frame: the HTML shell, the routes and the NHS header. Each page is a module
//! of [`pages`] with its server functions beside it; [`live`] keeps a page's data live,
//! [`widgets`] holds what pages share, and [`error`] is the error every server function returns.

#[cfg(feature = "ssr")]
pub(crate) mod context;
pub mod delivery;
pub mod error;
pub mod live;
pub mod pages;
pub mod widgets;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Redirect, Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

use crate::model::SignedInUser;
use error::AppError;
use pages::{
    action::Action,
    actions::Actions,
    appointment::Appointment,
    clinic::Clinic,
    clinics::Clinics,
    gateway_settings::{GatewaySettings, NewGateway},
    gateways::Gateways,
    not_found::NotFound,
    sign_in::SignInPage,
    users::Users,
};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The page's CSP names this response's nonce, which Leptos puts on its inline scripts.
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(value) = http::HeaderValue::from_str(&crate::server::http::page_csp(&nonce)) {
            response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="js-enabled">
                <App/>
            </body>
        </html>
    }
}

/// The app: NHS header, routes, footer.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        // Browser tests wait for this before clicking: until hydration, buttons are plain forms.
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="nhsuk" href="/nhsuk/nhsuk-frontend.min.css"/>
        <Stylesheet id="app" href="/app.css"/>
        <Title text="Manage breast screening"/>
        <Router>
            <Header/>
            <div class="nhsuk-width-container">
                <main class="nhsuk-main-wrapper" id="maincontent">
                    <Routes fallback=|| view! { <NotFound/> }>
                        <Route path=path!("/") view=|| view! { <Redirect path="/clinics"/> }/>
                        <Route path=path!("/sign-in") view=SignInPage/>
                        <Route path=path!("/clinics") view=Clinics ssr=SsrMode::Async/>
                        <Route path=path!("/clinics/:id") view=Clinic ssr=SsrMode::Async/>
                        <Route path=path!("/appointments/:id") view=Appointment ssr=SsrMode::Async/>
                        <Route path=path!("/gateways") view=Gateways ssr=SsrMode::Async/>
                        <Route path=path!("/actions") view=Actions ssr=SsrMode::Async/>
                        <Route path=path!("/actions/:id") view=Action ssr=SsrMode::Async/>
                        <Route path=path!("/admin/users") view=Users ssr=SsrMode::Async/>
                        <Route path=path!("/admin/gateways/new") view=NewGateway ssr=SsrMode::Async/>
                        <Route path=path!("/admin/gateways/:id") view=GatewaySettings ssr=SsrMode::Async/>
                    </Routes>
                </main>
            </div>
            <footer role="contentinfo" class="nhsuk-footer">
                <div class="nhsuk-width-container">
                    <p class="nhsuk-body-s">"Manage breast screening — demonstration system, fictitious data"</p>
                </div>
            </footer>
        </Router>
    }
}

/// The NHS header: service name, who is signed in, the menu and "Sign out".
///
/// The signed-in user is read by one boundary around the whole header, never by two: Leptos
/// 0.8 can leave a server render hanging, now and then, when two `Suspense`s await one resource
/// (leptos-rs/leptos#4851; seen here as a page that never finished). A `Transition` keeps the
/// old header on screen while the next page re-reads the user.
#[component]
fn Header() -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    // Re-read on every navigation: signing in or out moves to another page without a reload.
    let location = leptos_router::hooks::use_location();
    let user = Resource::new(move || location.pathname.get(), |_| current_user());
    view! {
        <Transition fallback=move || view! { <HeaderBody user=None sign_out/> }>
            {move || Suspend::new(async move {
                let user = user.await.ok().flatten();
                view! { <HeaderBody user sign_out/> }
            })}
        </Transition>
    }
}

#[component]
fn HeaderBody(user: Option<SignedInUser>, sign_out: ServerAction<SignOut>) -> impl IntoView {
    let administrator = user.as_ref().is_some_and(|u| u.role.administers());
    view! {
        <header class="nhsuk-header" role="banner">
            <div class="nhsuk-header__container nhsuk-width-container">
                <div class="nhsuk-header__service">
                    <a class="nhsuk-header__service-logo" href="/clinics" aria-label="Manage breast screening homepage">
                        <span class="nhsuk-header__service-name">"Manage breast screening"</span>
                    </a>
                </div>
                {user.map(|u| view! {
                    <p class="app-user" id="signed-in-as">{format!("{} – {}", u.name, u.provider_name)}</p>
                })}
            </div>
            <div class="nhsuk-header__navigation">
                <nav class="nhsuk-width-container" aria-label="Menu">
                    <ul class="app-nav">
                        <li><A href="/clinics">"Clinics"</A></li>
                        <li><A href="/gateways">"Gateways"</A></li>
                        <li><A href="/actions">"Gateway actions"</A></li>
                        {administrator.then(|| view! { <li><A href="/admin/users">"Users"</A></li> })}
                        <li>
                            <ActionForm action=sign_out>
                                <button type="submit" class="app-link-button">"Sign out"</button>
                            </ActionForm>
                        </li>
                    </ul>
                </nav>
            </div>
        </header>
    }
}

/// The signed-in user, or `None`.
#[server(endpoint = "/current_user")]
pub async fn current_user() -> Result<Option<SignedInUser>, AppError> {
    let (_, user) = context::signed_in().await?;
    Ok(user.map(|u| SignedInUser {
        name: u.name,
        email: u.email,
        provider_name: u.provider_name,
        role: u.role,
    }))
}

/// Ends the session.
#[server(endpoint = "/sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::server::{auth, store::identity};
    let state = context::state()?;
    if let Some(token) = auth::session_token(&context::request()?.headers) {
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
