//! The screening domain, free of transport and storage: what a valid NHS number is, which
//! appointment status changes are allowed, which gateway actions a person may re-drive, what
//! each role may do, whether a gateway is there, how a walk-in added at the gateway reads and
//! what a FHIR order says.
//! Compiled for both the server and the browser.

pub mod action_status;
pub mod appointment;
pub mod delivery;
pub mod fhir;
pub mod liveness;
pub mod nhs_number;
pub mod role;
pub mod walk_in;

pub use action_status::{ActionStatus, UnknownActionStatus};
pub use appointment::{AppointmentStatus, IllegalTransition};
pub use delivery::{DeliveryState, WorklistMessage};
pub use liveness::{Evidence, Liveness};
pub use nhs_number::{NhsNumber, NhsNumberError};
pub use role::{Role, UnknownRole};
pub use walk_in::{WalkIn, WalkInDetails};
