//! One accepted association seen as a stream of DIMSE messages.
//!
//! dicom-ul reads and writes whole PDUs; this module assembles the presentation data values
//! (PDVs) inside them into messages. A command may be split over several PDVs and PDUs, its data
//! set may arrive in the same PDU as the command or in later ones, and a P-DATA PDU may carry no
//! PDV at all. Data sets are handed PDV by PDV to a sink chosen per command, so a C-STORE of a
//! 27 MB mammogram goes to disk as it arrives instead of being held in memory.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;

use dicom_ul::association::server::AsyncServerAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use thiserror::Error;
use tokio::net::TcpStream;

use super::command::{field, Command, CommandError};

/// Largest data set accepted into memory (C-FIND identifiers, MPPS attributes).
pub const MAX_IN_MEMORY_DATA_SET: usize = 16 * 1024 * 1024;

/// Why an association had to end abnormally.
#[derive(Debug, Error)]
pub enum DimseError {
    #[error("upper layer: {0}")]
    Ul(#[from] dicom_ul::association::Error),
    #[error("bad command set: {0}")]
    Command(#[from] CommandError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("data set larger than {MAX_IN_MEMORY_DATA_SET} bytes for {0}")]
    DataSetTooLarge(&'static str),
}

/// A presentation context as accepted at association time.
#[derive(Debug, Clone)]
pub struct Context {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
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
    fn push(&mut self, bytes: &[u8], what: &'static str) -> Result<(), DimseError> {
        match self {
            DataSink::Memory(buf) => {
                if buf.len() + bytes.len() > MAX_IN_MEMORY_DATA_SET {
                    return Err(DimseError::DataSetTooLarge(what));
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

/// A complete request: its command and, if the command announced one, its data set.
pub struct Message<F> {
    pub context: Context,
    pub command: Command,
    pub data: Option<DataSink<F>>,
}

/// What the peer did next.
pub enum Received<F> {
    Message(Box<Message<F>>),
    /// A-RELEASE-RQ, already answered.
    Released,
    /// A-ABORT from the peer.
    Aborted,
}

/// An established association with message-level reading and writing.
pub struct Association {
    inner: AsyncServerAssociation<TcpStream>,
    contexts: Vec<Context>,
    /// PDUs read while looking for a C-CANCEL, to be processed next.
    backlog: VecDeque<Pdu>,
    pub peer: SocketAddr,
    pub calling_ae: String,
    pub called_ae: String,
}

impl Association {
    pub fn new(mut inner: AsyncServerAssociation<TcpStream>, peer: SocketAddr) -> Association {
        let contexts = inner
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .map(|pc| Context {
                id: pc.id,
                abstract_syntax: trim_uid(&pc.abstract_syntax),
                transfer_syntax: trim_uid(&pc.transfer_syntax),
            })
            .collect();
        #[allow(deprecated)]
        let calling_ae = inner.client_ae_title().trim().to_string();
        let called_ae = inner.called_ae_title().trim().to_string();
        // Belt and braces: the listener already set it on the socket.
        let _ = inner.inner_stream().set_nodelay(true);
        Association {
            inner,
            contexts,
            backlog: VecDeque::new(),
            peer,
            calling_ae,
            called_ae,
        }
    }

    pub fn contexts(&self) -> &[Context] {
        &self.contexts
    }

    fn context(&self, id: u8) -> Result<Context, DimseError> {
        self.contexts
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| {
                DimseError::Protocol(format!("PDV on unaccepted presentation context {id}"))
            })
    }

    async fn next_pdu(&mut self) -> Result<Pdu, DimseError> {
        match self.backlog.pop_front() {
            Some(pdu) => Ok(pdu),
            None => {
                // ACK at once: a sender with Nagle on (most modality stacks) writes the data
                // set PDU only after the command PDU is acknowledged, and Linux's delayed ACK
                // made every N-CREATE/N-SET wait ~40 ms for it. Linux resets quick-ACK mode by
                // itself, hence before every read.
                #[cfg(target_os = "linux")]
                let _ = rustix::net::sockopt::set_tcp_quickack(self.inner.inner_stream(), true);
                Ok(self.inner.receive().await?)
            }
        }
    }

    /// Reads the next message. `choose_sink` is asked, once the command is complete, where its
    /// data set should go.
    pub async fn receive<F, C>(&mut self, mut choose_sink: C) -> Result<Received<F>, DimseError>
    where
        F: Write,
        C: FnMut(&Context, &Command) -> DataSink<F>,
    {
        let mut command_bytes: Vec<u8> = Vec::new();
        let mut command_context: Option<u8> = None;
        // Set once the command is complete and announced a data set.
        let mut pending: Option<(Context, Command, DataSink<F>)> = None;
        // PDVs of one PDU processed so far, so a PDU that completes a message with PDVs left over
        // (nothing legal should) is reported rather than silently truncated.
        loop {
            let pdu = self.next_pdu().await?;
            let pdvs = match pdu {
                Pdu::PData { data } => data,
                Pdu::ReleaseRQ => {
                    self.inner.send(&Pdu::ReleaseRP).await?;
                    return Ok(Received::Released);
                }
                Pdu::AbortRQ { .. } => return Ok(Received::Aborted),
                other => {
                    return Err(DimseError::Protocol(format!(
                        "unexpected {}",
                        other.short_description()
                    )))
                }
            };
            let count = pdvs.len();
            for (index, pdv) in pdvs.into_iter().enumerate() {
                let PDataValue {
                    presentation_context_id: pc,
                    value_type,
                    is_last,
                    data,
                } = pdv;
                match (value_type, pending.as_mut()) {
                    (PDataValueType::Command, None) => {
                        if *command_context.get_or_insert(pc) != pc {
                            return Err(DimseError::Protocol(
                                "command fragments on two presentation contexts".into(),
                            ));
                        }
                        command_bytes.extend_from_slice(&data);
                        if command_bytes.len() > 64 * 1024 {
                            return Err(DimseError::Protocol("command set over 64 KiB".into()));
                        }
                        if is_last {
                            let context = self.context(pc)?;
                            let command = Command::decode(&command_bytes)?;
                            if !command.has_data_set {
                                if index + 1 != count {
                                    return Err(DimseError::Protocol(
                                        "PDVs after a command with no data set".into(),
                                    ));
                                }
                                return Ok(Received::Message(Box::new(Message {
                                    context,
                                    command,
                                    data: None,
                                })));
                            }
                            let sink = choose_sink(&context, &command);
                            pending = Some((context, command, sink));
                        }
                    }
                    (PDataValueType::Data, Some((context, command, sink))) => {
                        if context.id != pc {
                            return Err(DimseError::Protocol(
                                "data set on another presentation context than its command".into(),
                            ));
                        }
                        sink.push(&data, command.name())?;
                        if is_last {
                            if index + 1 != count {
                                return Err(DimseError::Protocol(
                                    "PDVs after the last data fragment".into(),
                                ));
                            }
                            let (context, command, sink) = pending.take().expect("pending");
                            return Ok(Received::Message(Box::new(Message {
                                context,
                                command,
                                data: Some(sink),
                            })));
                        }
                    }
                    (PDataValueType::Data, None) => {
                        return Err(DimseError::Protocol("data PDV before its command".into()))
                    }
                    (PDataValueType::Command, Some(_)) => {
                        return Err(DimseError::Protocol(
                            "command PDV while a data set was expected".into(),
                        ))
                    }
                }
            }
        }
    }

    /// Sends a message, splitting the data set over as many PDUs as the peer's maximum PDU
    /// length needs; the command and a small data set share one PDU.
    pub async fn send(
        &mut self,
        context_id: u8,
        command: &Command,
        data: Option<&[u8]>,
    ) -> Result<(), DimseError> {
        let peer_max = self.inner.requestor_max_pdu_length();
        for pdu in message_pdus(context_id, command, data, peer_max) {
            self.inner.send(&pdu).await?;
        }
        Ok(())
    }

    /// Looks, without waiting, for a C-CANCEL-RQ for `message_id` among what the peer has sent.
    /// Anything else read meanwhile is kept for the next `receive`.
    pub async fn cancel_requested(&mut self, message_id: Option<u16>) -> Result<bool, DimseError> {
        loop {
            // One poll, no timer (a zero timeout waits for the timer wheel's next 1 ms tick,
            // which cost 1.4 ms per pending response). read_pdu_from_wire_async keeps partial
            // reads in the association's buffer, so dropping the future loses nothing.
            let polled = tokio::select! {
                biased;
                pdu = self.inner.receive() => Some(pdu),
                _ = std::future::ready(()) => None,
            };
            let pdu = match polled {
                None => return Ok(false),
                Some(pdu) => pdu?,
            };
            if let Pdu::PData { data } = &pdu {
                if let [only] = data.as_slice() {
                    if only.value_type == PDataValueType::Command && only.is_last {
                        if let Ok(cmd) = Command::decode(&only.data) {
                            if cmd.command_field == field::C_CANCEL_RQ
                                && (message_id.is_none()
                                    || cmd.message_id_being_responded_to == message_id)
                            {
                                return Ok(true);
                            }
                        }
                    }
                }
            }
            self.backlog.push_back(pdu);
        }
    }

    /// Ends the association with an A-ABORT (protocol errors, shutdown).
    pub async fn abort(self) {
        let _ = self.inner.abort().await;
    }
}

fn trim_uid(uid: &str) -> String {
    uid.trim_end_matches(['\0', ' ']).to_string()
}

/// The P-DATA PDUs that carry one message to a peer whose maximum PDU length is `peer_max` (0 =
/// unlimited): the command and a small data set share one PDU, anything larger is split. Both
/// the server side and the modality emulator's client side send through this.
pub fn message_pdus(
    context_id: u8,
    command: &Command,
    data: Option<&[u8]>,
    peer_max: u32,
) -> Vec<Pdu> {
    let peer_max = match peer_max {
        0 => u32::MAX as usize,
        n => n as usize,
    };
    // Each PDV item costs 6 bytes (length, context id, control header) inside the PDU.
    let fragment = peer_max.saturating_sub(6).max(64);
    let command_bytes = command.encode();
    let pdv = |value_type, is_last, data: &[u8]| PDataValue {
        presentation_context_id: context_id,
        value_type,
        is_last,
        data: data.to_vec(),
    };
    let mut pdus = Vec::new();
    match data {
        Some(d) if command_bytes.len() + d.len() + 12 <= peer_max => {
            pdus.push(Pdu::PData {
                data: vec![
                    pdv(PDataValueType::Command, true, &command_bytes),
                    pdv(PDataValueType::Data, true, d),
                ],
            });
        }
        _ => {
            for (i, chunk) in command_bytes.chunks(fragment).enumerate() {
                let last = (i + 1) * fragment >= command_bytes.len();
                pdus.push(Pdu::PData {
                    data: vec![pdv(PDataValueType::Command, last, chunk)],
                });
            }
            if let Some(d) = data {
                let chunks = d.len().div_ceil(fragment).max(1);
                for i in 0..chunks {
                    let chunk = &d[i * fragment..((i + 1) * fragment).min(d.len())];
                    pdus.push(Pdu::PData {
                        data: vec![pdv(PDataValueType::Data, i + 1 == chunks, chunk)],
                    });
                }
            }
        }
    }
    pdus
}
