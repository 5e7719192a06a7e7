//! The requesting side of DIMSE, for the modality emulator: open an association, send a
//! request, collect its responses. Messages are framed and assembled by the server's own
//! `dimse::message` (with its limits) and data sets coded by `dimse::data_set`, so both sides
//! speak exactly the same bytes and distrust the same ones.

use dicom_dictionary_std::uids;
use dicom_object::InMemDicomObject;
use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::{ClientAssociationOptions, Pdu};
use thiserror::Error;
use tokio::net::TcpStream;

use crate::dimse::{
    data_set, message_pdus, status, Assembler, AssemblyError, Command, Context, DataSetError,
    DataSink,
};

/// What went wrong talking to a peer.
#[derive(Debug, Error)]
pub enum ScuError {
    #[error("cannot associate with {called} at {address}: {reason}")]
    Associate {
        called: String,
        address: String,
        reason: String,
    },
    #[error("{0} was not accepted by the peer")]
    NoContext(String),
    #[error("association failed: {0}")]
    Association(String),
    #[error("the peer aborted the association")]
    Aborted,
    #[error("cannot encode or decode a data set: {0}")]
    DataSet(#[from] DataSetError),
    #[error("malformed response: {0}")]
    Malformed(#[from] AssemblyError),
    #[error("malformed response: unexpected PDU {0}")]
    UnexpectedPdu(String),
}

/// One response: its command and data set, if any.
#[derive(Debug, Clone)]
pub struct Response {
    pub command: Command,
    pub data_set: Option<InMemDicomObject>,
}

impl Response {
    /// The DIMSE status (0 when absent, which no conforming peer sends).
    pub fn status(&self) -> u16 {
        self.command.status.unwrap_or(status::SUCCESS)
    }
}

/// An open association as the requestor.
pub struct Scu {
    assoc: AsyncClientAssociation<TcpStream>,
    /// The presentation contexts the peer accepted.
    contexts: Vec<Context>,
    next_message_id: u16,
}

impl Scu {
    /// Associates with `called` at `address`, proposing each abstract syntax with explicit and
    /// implicit VR little endian.
    pub async fn connect(
        address: &str,
        calling: &str,
        called: &str,
        abstract_syntaxes: &[&str],
    ) -> Result<Scu, ScuError> {
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(calling.to_string())
            .called_ae_title(called.to_string());
        for syntax in abstract_syntaxes {
            options = options.with_presentation_context(
                syntax.to_string(),
                vec![
                    uids::EXPLICIT_VR_LITTLE_ENDIAN.to_string(),
                    uids::IMPLICIT_VR_LITTLE_ENDIAN.to_string(),
                ],
            );
        }
        let mut assoc = options
            .establish_async(address.to_string())
            .await
            .map_err(|e| ScuError::Associate {
                called: called.into(),
                address: address.into(),
                reason: e.to_string(),
            })?;
        // dicom-ul leaves Nagle on; small DIMSE messages would each wait ~40 ms for an ACK.
        let _ = assoc.inner_stream().set_nodelay(true);
        Ok(Scu {
            contexts: Context::accepted(assoc.presentation_contexts()),
            assoc,
            next_message_id: 1,
        })
    }

    /// Sends one request on the context for `abstract_syntax` and returns every response up to
    /// and including the final (non-pending) one.
    pub async fn request(
        &mut self,
        abstract_syntax: &str,
        mut command: Command,
        data_set: Option<&InMemDicomObject>,
    ) -> Result<Vec<Response>, ScuError> {
        let context = self
            .contexts
            .iter()
            .find(|c| c.abstract_syntax == abstract_syntax)
            .ok_or_else(|| ScuError::NoContext(abstract_syntax.to_string()))?;
        let bytes = data_set
            .map(|obj| data_set::encode(context, obj))
            .transpose()?;
        command.message_id = Some(self.next_message_id);
        command.has_data_set = bytes.is_some();
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        let peer_max = self.assoc.acceptor_max_pdu_length();
        for pdu in message_pdus(context.id, &command, bytes.as_deref(), peer_max) {
            self.assoc
                .send(&pdu)
                .await
                .map_err(|e| ScuError::Association(e.to_string()))?;
        }
        let mut responses = Vec::new();
        loop {
            let response = self.receive().await?;
            let pending = status::is_pending(response.status());
            responses.push(response);
            if !pending {
                return Ok(responses);
            }
        }
    }

    /// Reads one whole message: its command, then its data set when the command says one follows.
    async fn receive(&mut self) -> Result<Response, ScuError> {
        let mut assembler = Assembler::new();
        // Responses are small (C-FIND identifiers at most): kept in memory, within its bound.
        let mut memory = |_: &Context, _: &Command| DataSink::<std::io::Sink>::Memory(Vec::new());
        loop {
            let pdu = self
                .assoc
                .receive()
                .await
                .map_err(|e| ScuError::Association(e.to_string()))?;
            let pdvs = match pdu {
                Pdu::PData { data } => data,
                Pdu::AbortRQ { .. } => return Err(ScuError::Aborted),
                other => return Err(ScuError::UnexpectedPdu(format!("{other:?}"))),
            };
            if let Some(message) = assembler.feed(pdvs, &self.contexts, &mut memory)? {
                let data_set = message
                    .memory_data()
                    .map(|bytes| data_set::decode(&message.context, bytes))
                    .transpose()?;
                return Ok(Response {
                    command: message.command,
                    data_set,
                });
            }
        }
    }

    /// Releases the association politely.
    pub async fn release(self) -> Result<(), ScuError> {
        self.assoc
            .release()
            .await
            .map_err(|e| ScuError::Association(e.to_string()))
    }
}
