//! The requesting side of DIMSE, for the modality emulator: open an association, send a
//! request, collect its responses. The framing is the server's own (`dimse::message_pdus`) and
//! the command sets its codec, so both sides speak exactly the same bytes.

use dicom_dictionary_std::uids;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::pdu::{PDataValueType, PresentationContextResultReason};
use dicom_ul::{ClientAssociationOptions, Pdu};
use thiserror::Error;
use tokio::net::TcpStream;

use crate::dimse::{message_pdus, status, Command};

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
    DataSet(String),
    #[error("malformed response: {0}")]
    Response(String),
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
            .assoc
            .presentation_contexts()
            .iter()
            .find(|c| {
                c.abstract_syntax.trim_end_matches('\0') == abstract_syntax
                    && c.reason == PresentationContextResultReason::Acceptance
            })
            .cloned()
            .ok_or_else(|| ScuError::NoContext(abstract_syntax.to_string()))?;
        let ts = TransferSyntaxRegistry
            .get(context.transfer_syntax.trim_end_matches('\0'))
            .ok_or_else(|| {
                ScuError::DataSet(format!(
                    "unknown transfer syntax {}",
                    context.transfer_syntax
                ))
            })?;
        let bytes = match data_set {
            Some(obj) => {
                let mut bytes = Vec::new();
                obj.write_dataset_with_ts(&mut bytes, ts)
                    .map_err(|e| ScuError::DataSet(e.to_string()))?;
                Some(bytes)
            }
            None => None,
        };
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
            let response = self.receive(ts).await?;
            let pending = matches!(response.status(), status::PENDING | 0xFF01);
            responses.push(response);
            if !pending {
                return Ok(responses);
            }
        }
    }

    /// Reads one whole message: its command, then its data set when the command says one follows.
    async fn receive(&mut self, ts: &dicom_encoding::TransferSyntax) -> Result<Response, ScuError> {
        let (mut command_bytes, mut data_bytes) = (Vec::new(), Vec::new());
        let (mut command, mut data_done) = (None::<Command>, false);
        loop {
            let pdu = self
                .assoc
                .receive()
                .await
                .map_err(|e| ScuError::Association(e.to_string()))?;
            let values = match pdu {
                Pdu::PData { data } => data,
                Pdu::AbortRQ { .. } => return Err(ScuError::Aborted),
                other => return Err(ScuError::Response(format!("unexpected PDU {other:?}"))),
            };
            for value in values {
                match value.value_type {
                    PDataValueType::Command => {
                        command_bytes.extend_from_slice(&value.data);
                        if value.is_last {
                            command = Some(
                                Command::decode(&command_bytes)
                                    .map_err(|e| ScuError::Response(e.to_string()))?,
                            );
                        }
                    }
                    PDataValueType::Data => {
                        data_bytes.extend_from_slice(&value.data);
                        data_done |= value.is_last;
                    }
                }
            }
            if let Some(command) = &command {
                if !command.has_data_set || data_done {
                    let data_set = if command.has_data_set {
                        Some(
                            InMemDicomObject::read_dataset_with_ts(data_bytes.as_slice(), ts)
                                .map_err(|e| ScuError::DataSet(e.to_string()))?,
                        )
                    } else {
                        None
                    };
                    return Ok(Response {
                        command: command.clone(),
                        data_set,
                    });
                }
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
