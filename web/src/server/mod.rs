//! Everything that runs only on the server: storage, background work, HTTP wiring.

pub mod admin;
pub mod auth;
pub mod bus;
pub mod db;
pub mod events;
pub mod http;
pub mod listeners;
pub mod liveness;
pub mod metrics;
pub mod outbox;
pub mod passwords;
pub mod readiness;
pub mod relay_link;
pub mod seed;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod throttle;
