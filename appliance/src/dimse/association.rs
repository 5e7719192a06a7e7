//! One accepted association seen as a stream of DIMSE messages.
//!
//! dicom-ul reads and writes whole PDUs; the [`Assembler`] turns the presentation data values
//! (PDVs) inside them into messages and [`message_pdus`] the other way round. This module adds
//! the socket: reading PDUs, answering A-RELEASE, and peeking for C-CANCEL, over plain TCP or
//! DICOM TLS (PS3.15 Annex B) alike.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;

use dicom_ul::association::server::{AsyncServerAssociation, AsyncTlsStream};
use dicom_ul::pdu::{PDataValueType, Pdu};
use thiserror::Error;
use tokio::net::TcpStream;

use dicom_ul::association::Association as UlAssociation;

use super::command::{field, Command};
use super::message::{message_pdus, Assembler, AssemblyError, Context, DataSink, Message};
use super::stream::DataPdus;

/// PDUs kept while looking for a C-CANCEL. Without an asynchronous operations window the peer
/// may send nothing but a C-CANCEL (and perhaps a release) during a C-FIND stream, so a few is
/// plenty; a peer that sends more waits on TCP flow control instead of filling our memory.
const BACKLOG_LIMIT: usize = 4;

/// Why an association had to end abnormally.
#[derive(Debug, Error)]
pub enum DimseError {
    #[error("upper layer: {0}")]
    Ul(#[from] dicom_ul::association::Error),
    #[error(transparent)]
    Assembly(#[from] AssemblyError),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Why a streamed message was not sent whole.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The data could not be read: the association is mid-message and must be aborted.
    #[error("cannot read the object being sent: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Dimse(#[from] DimseError),
}

/// What the peer did next.
pub enum Received<F> {
    Message(Box<Message<F>>),
    /// A-RELEASE-RQ, already answered.
    Released,
    /// A-ABORT from the peer.
    Aborted,
}

/// The upper-layer association over its transport.
// One per association, held for its whole life: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Link {
    Plain(AsyncServerAssociation<TcpStream>),
    Tls(AsyncServerAssociation<AsyncTlsStream>),
}

/// Calls the same method on either kind of link (dicom-ul's association is generic over the
/// stream; ours is one type so the services need not be).
macro_rules! on_link {
    ($link:expr, $a:ident => $body:expr) => {
        match $link {
            Link::Plain($a) => $body,
            Link::Tls($a) => $body,
        }
    };
}

impl Link {
    async fn receive(&mut self) -> Result<Pdu, dicom_ul::association::Error> {
        on_link!(self, a => a.receive().await)
    }

    async fn send(&mut self, pdu: &Pdu) -> Result<(), dicom_ul::association::Error> {
        on_link!(self, a => a.send(pdu).await)
    }

    fn requestor_max_pdu_length(&self) -> u32 {
        on_link!(self, a => a.requestor_max_pdu_length())
    }

    /// The TCP socket under the link (for socket options).
    fn tcp(&mut self) -> &TcpStream {
        match self {
            Link::Plain(a) => a.inner_stream(),
            Link::Tls(a) => a.inner_stream().get_ref().0,
        }
    }

    async fn abort(self) {
        let _ = on_link!(self, a => a.abort().await);
    }
}

/// An established association with message-level reading and writing.
pub struct Association {
    inner: Link,
    contexts: Vec<Context>,
    /// PDUs read while looking for a C-CANCEL, to be processed next.
    backlog: VecDeque<Pdu>,
    pub peer: SocketAddr,
    pub calling_ae: String,
    pub called_ae: String,
    /// SOP classes for which the requestor took the SCP role (SCP/SCU Role Selection, PS3.7
    /// D.3.3.4): the storage classes a C-GET's sub-operations may be sent in.
    requestor_scp: Vec<String>,
}

impl Association {
    pub fn new(mut inner: Link, peer: SocketAddr) -> Association {
        let contexts = on_link!(&inner, a => Context::accepted(a.presentation_contexts()));
        #[allow(deprecated)]
        let calling_ae = on_link!(&inner, a => a.client_ae_title().trim().to_string());
        let called_ae = on_link!(&inner, a => a.called_ae_title().trim().to_string());
        let requestor_scp = contexts
            .iter()
            .map(|c| c.abstract_syntax.clone())
            .filter(|class| on_link!(&inner, a => UlAssociation::requestor_roles_for(a, class).scp))
            .collect();
        // Belt and braces: the listener already set it on the socket.
        let _ = inner.tcp().set_nodelay(true);
        Association {
            inner,
            contexts,
            backlog: VecDeque::new(),
            peer,
            calling_ae,
            called_ae,
            requestor_scp,
        }
    }

    /// Whether the requestor accepted the SCP role for `sop_class` (it may be sent C-STOREs).
    pub fn requestor_is_scp(&self, sop_class: &str) -> bool {
        self.requestor_scp.iter().any(|c| c == sop_class)
    }

    /// Sends a command whose data set (already in the context's transfer syntax) is read from
    /// `data` in fragments: a stored object of any size with one fragment in memory.
    pub async fn send_streamed<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        context_id: u8,
        command: &Command,
        data: R,
    ) -> Result<(), StreamError> {
        let peer_max = self.inner.requestor_max_pdu_length();
        for pdu in message_pdus(context_id, command, None, peer_max) {
            self.inner.send(&pdu).await.map_err(DimseError::from)?;
        }
        let mut pdus = DataPdus::new(data, context_id, peer_max);
        while let Some(pdu) = pdus.next_pdu().await.map_err(StreamError::Read)? {
            self.inner.send(&pdu).await.map_err(DimseError::from)?;
        }
        Ok(())
    }

    pub fn contexts(&self) -> &[Context] {
        &self.contexts
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
                let _ = rustix::net::sockopt::set_tcp_quickack(self.inner.tcp(), true);
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
        let mut assembler = Assembler::new();
        loop {
            let pdvs = match self.next_pdu().await? {
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
            if let Some(message) = assembler.feed(pdvs, &self.contexts, &mut choose_sink)? {
                return Ok(Received::Message(Box::new(message)));
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
    /// Anything else read meanwhile is kept for the next `receive`, up to [`BACKLOG_LIMIT`]
    /// PDUs; with that many kept it stops reading until they are processed.
    pub async fn cancel_requested(&mut self, message_id: Option<u16>) -> Result<bool, DimseError> {
        while self.backlog.len() < BACKLOG_LIMIT {
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
        Ok(false)
    }

    /// Ends the association with an A-ABORT (protocol errors, shutdown).
    pub async fn abort(self) {
        self.inner.abort().await;
    }
}
