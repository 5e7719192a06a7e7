//! The screening domain, free of transport and storage: what a valid NHS number is, which
//! appointment status changes are allowed and which gateway actions a person may re-drive.
//! Compiled for both the server and the browser.

pub mod action_status;
pub mod appointment;
pub mod delivery;
pub mod nhs_number;

pub use action_status::{ActionStatus, UnknownActionStatus};
pub use appointment::{AppointmentStatus, IllegalTransition};
pub use delivery::DeliveryState;
pub use nhs_number::{NhsNumber, NhsNumberError};
