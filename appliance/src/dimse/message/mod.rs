//! DIMSE messages on the wire, both ways: [`Assembler`] reads them out of the presentation data
//! values (PDVs) of P-DATA PDUs, [`message_pdus`] writes them into P-DATA PDUs. The gateway's
//! SCPs and the modality emulator's SCU use the same pair, so both sides apply the same limits
//! and speak the same bytes (dicom-rs' `ul` keeps `pdu/reader.rs` beside `pdu/writer.rs` for the
//! same reason).

mod assemble;
mod fragment;

use std::io::Write;

use dicom_ul::pdu::{PresentationContextNegotiated, PresentationContextResultReason};

pub use assemble::{Assembler, AssemblyError};
pub use fragment::message_pdus;

use super::command::Command;

/// Largest command set accepted: a command set is a dozen short elements, so anything near
/// this is not one.
pub const MAX_COMMAND_SET: usize = 64 * 1024;

/// Largest data set accepted into memory (C-FIND identifiers and responses, MPPS attributes).
pub const MAX_IN_MEMORY_DATA_SET: usize = 16 * 1024 * 1024;

/// A presentation context as accepted at association time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

impl Context {
    /// The contexts a negotiation accepted, their UIDs without the padding some peers leave.
    pub fn accepted(negotiated: &[PresentationContextNegotiated]) -> Vec<Context> {
        let trim = |uid: &str| uid.trim_end_matches(['\0', ' ']).to_string();
        negotiated
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .map(|pc| Context {
                id: pc.id,
                abstract_syntax: trim(&pc.abstract_syntax),
                transfer_syntax: trim(&pc.transfer_syntax),
            })
            .collect()
    }
}

/// Where a message's data set goes while it arrives.
pub enum DataSink<F> {
    /// Collected in memory (small data sets: queries, MPPS).
    Memory(Vec<u8>),
    /// Streamed to a writer (C-STORE objects).
    Stream(F),
    /// Writing failed (disk full…): the rest is drained and dropped, the error kept for the reply.
    Failed(std::io::Error),
}

impl<F: Write> DataSink<F> {
    fn push(&mut self, bytes: &[u8], what: &'static str) -> Result<(), AssemblyError> {
        match self {
            DataSink::Memory(buf) => {
                if buf.len() + bytes.len() > MAX_IN_MEMORY_DATA_SET {
                    return Err(AssemblyError::DataSetTooLarge(what));
                }
                buf.extend_from_slice(bytes);
            }
            DataSink::Stream(w) => {
                if let Err(e) = w.write_all(bytes) {
                    // Dropping the writer lets it clean up its temporary file.
                    *self = DataSink::Failed(e);
                }
            }
            DataSink::Failed(_) => {}
        }
        Ok(())
    }
}

/// A complete message: its command and, if the command announced one, its data set.
pub struct Message<F> {
    pub context: Context,
    pub command: Command,
    pub data: Option<DataSink<F>>,
}

impl<F> Message<F> {
    /// The data set bytes of a message whose data set was collected in memory.
    pub fn memory_data(&self) -> Option<&[u8]> {
        match &self.data {
            Some(DataSink::Memory(bytes)) => Some(bytes),
            _ => None,
        }
    }
}
