//! The DIMSE layer (PS3.7) on top of dicom-ul's upper layer: command sets, message assembly
//! from PDVs, status codes. dicom-rs has none of this, so it is ours.

pub mod association;
pub mod command;
pub mod lengths;
pub mod status;

pub use association::{
    message_pdus, Association, Context, DataSink, DimseError, Message, Received,
};
pub use command::{field, Command};
