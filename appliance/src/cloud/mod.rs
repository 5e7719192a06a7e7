//! The gateway's side of the cloud, all over Azure Relay: the [`link`] that starts the actions
//! listener and the events courier, [`actions`] (verify, admit, apply to the worklist once,
//! signed reply) with its [`admission`] rules (address, validity window) and the [`applied`]
//! actions record, the durable event [`outbox`] and its courier, and [`events`] (which state
//! changes become events, built inside the change's own transaction).

pub mod actions;
pub mod admission;
pub mod applied;
pub mod events;
pub mod link;
pub mod outbox;

pub use link::{CloudConfigError, CloudLink, CloudSettings};
