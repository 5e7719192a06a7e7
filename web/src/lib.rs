// Leptos view types of the clinic table nest deeper than the default limit in the wasm build.
#![recursion_limit = "256"]
//! The breast-screening cloud web app. The same crate builds the server (feature `ssr`, the
//! default) and the browser client (feature `hydrate`, for wasm32).

pub mod app;
pub mod domain;
pub mod live_event;
pub mod model;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
