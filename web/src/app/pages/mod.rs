//! One module per page, each with the server functions it calls beside it (their URLs are
//! `/api/<name>`, stable: the tests and e2e scripts call them). Every server function resolves the
//! signed-in user from the session cookie and passes only that user's provider to the store, so
//! another provider's records are a 404; bodies run on the server only.

pub mod action;
pub mod actions;
pub mod appointment;
pub mod clinic;
pub mod clinics;
pub mod gateway_settings;
pub mod gateways;
pub mod not_found;
pub mod sign_in;
pub mod users;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// The numeric route parameter `name` (0, which matches nothing, when it is not a number).
fn id_param(name: &'static str) -> impl Fn() -> i64 + Copy + Send + Sync + 'static {
    let params = use_params_map();
    move || {
        params
            .read()
            .get(name)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    }
}
