//! The gateway's side of the cloud, all over Azure Relay: the [`link`] that starts the actions
//! listener and the events courier, [`actions`] (verify, apply to the worklist, signed reply),
//! the durable event [`outbox`] and its courier, and [`events`] (which state changes become
//! events, built inside the change's own transaction).

pub mod actions;
pub mod events;
pub mod link;
pub mod outbox;

pub use link::{CloudConfigError, CloudLink, CloudSettings};
