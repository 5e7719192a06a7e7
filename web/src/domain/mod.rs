//! The screening domain, free of transport and storage: what a valid NHS number is and which
//! appointment status changes are allowed. Compiled for both the server and the browser.

pub mod appointment;
pub mod nhs_number;

pub use appointment::{AppointmentStatus, IllegalTransition};
pub use nhs_number::{NhsNumber, NhsNumberError};
