//! The DIMSE layer (PS3.7) on top of dicom-ul's upper layer: command sets, messages assembled
//! from and split into PDVs, data sets in a context's transfer syntax, status codes. dicom-rs
//! has none of this, so it is ours. The SCPs (`association.rs`) and the requesting side
//! (`scu.rs`: the modality emulator, and the forwarder to the hospital PACS) share all of it.

pub mod association;
pub mod command;
pub mod data_set;
pub mod lengths;
pub mod message;
pub mod scu;
pub mod status;
pub mod stream;

pub use association::{Association, DimseError, Received};
pub use command::{field, Command};
pub use data_set::DataSetError;
pub use message::{message_pdus, Assembler, AssemblyError, Context, DataSink, Message};
