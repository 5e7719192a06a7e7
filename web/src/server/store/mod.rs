//! Queries, one module per concept. Every query that serves a signed-in user takes the user's
//! provider id and filters by it, so another provider's row reads as absent (a 404).

pub mod actions;
pub mod appointments;
pub mod clinics;
pub mod gateways;
pub mod identity;
pub mod images;
pub mod received_events;
pub mod walk_ins;
