//! The requesting side of DIMSE, for the modality emulator and the forwarder to the hospital
//! PACS: open an association, send a request, collect its responses. Messages are framed and assembled by the server's own
//! `dimse::message` (with its limits) and data sets coded by `dimse::data_set`, so both sides
//! speak exactly the same bytes and distrust the same ones.

use dicom_dictionary_std::uids;
use dicom_object::InMemDicomObject;
use dicom_ul::association::client::{AsyncClientAssociation, AsyncTlsStream};
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;

use crate::dimse::stream::DataPdus;
use crate::dimse::{
    data_set, field, message_pdus, status, Assembler, AssemblyError, Command, Context,
    DataSetError, DataSink,
};

/// How much of a data set is read from its file at a time while it is sent.
const READ_AHEAD: usize = 1 << 20;

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
    #[error(
        "{called} at {address} accepted none of the proposed SOP classes and transfer syntaxes"
    )]
    NothingAccepted { called: String, address: String },
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
    #[error("cannot read the object to send: {0}")]
    Read(#[from] std::io::Error),
}

/// How long the peer may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the peer may take to answer or take a PDU; a stalled peer is given up on.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// An error with its causes, so "could not connect" says which (refused, a TLS certificate…).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
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

/// The requestor's association over plain TCP or TLS (boxed: the TLS state is large).
enum Client {
    Plain(Box<AsyncClientAssociation<TcpStream>>),
    Tls(Box<AsyncClientAssociation<AsyncTlsStream>>),
}

impl Client {
    fn set_nodelay(&mut self) {
        let _ = match self {
            Client::Plain(a) => a.inner_stream().set_nodelay(true),
            Client::Tls(a) => a.inner_stream().get_ref().0.set_nodelay(true),
        };
    }

    fn presentation_contexts(&self) -> &[dicom_ul::pdu::PresentationContextNegotiated] {
        match self {
            Client::Plain(a) => a.presentation_contexts(),
            Client::Tls(a) => a.presentation_contexts(),
        }
    }

    fn acceptor_max_pdu_length(&self) -> u32 {
        match self {
            Client::Plain(a) => a.acceptor_max_pdu_length(),
            Client::Tls(a) => a.acceptor_max_pdu_length(),
        }
    }

    async fn send(&mut self, pdu: &Pdu) -> Result<(), dicom_ul::association::Error> {
        match self {
            Client::Plain(a) => a.send(pdu).await,
            Client::Tls(a) => a.send(pdu).await,
        }
    }

    async fn receive(&mut self) -> Result<Pdu, dicom_ul::association::Error> {
        match self {
            Client::Plain(a) => a.receive().await,
            Client::Tls(a) => a.receive().await,
        }
    }

    async fn release(self) -> Result<(), dicom_ul::association::Error> {
        match self {
            Client::Plain(a) => a.release().await,
            Client::Tls(a) => a.release().await,
        }
    }
}

/// Answers an N-EVENT-REPORT-RQ the peer sends on this association (a Storage Commitment
/// report, PS3.4 J.3.3): given the peer's AE title, the context, the command and the data set,
/// returns the N-EVENT-REPORT-RSP.
pub type EventReports =
    Box<dyn Fn(&str, &Context, &Command, Option<&[u8]>) -> Command + Send + Sync>;

/// An open association as the requestor.
pub struct Scu {
    assoc: Client,
    /// The presentation contexts the peer accepted.
    contexts: Vec<Context>,
    next_message_id: u16,
    called: String,
    /// Event reports arriving between our requests' responses; without it they are refused.
    reports: Option<EventReports>,
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
        let little_endian = vec![
            uids::EXPLICIT_VR_LITTLE_ENDIAN.to_string(),
            uids::IMPLICIT_VR_LITTLE_ENDIAN.to_string(),
        ];
        let proposals: Vec<(String, Vec<String>)> = abstract_syntaxes
            .iter()
            .map(|syntax| (syntax.to_string(), little_endian.clone()))
            .collect();
        Scu::connect_with(address, calling, called, &proposals).await
    }

    /// Associates proposing one presentation context per (abstract syntax, transfer syntaxes)
    /// pair, e.g. each stored object's SOP class with its own transfer syntax when forwarding.
    pub async fn connect_with(
        address: &str,
        calling: &str,
        called: &str,
        proposals: &[(String, Vec<String>)],
    ) -> Result<Scu, ScuError> {
        Scu::connect_over(address, None, calling, called, proposals).await
    }

    /// As [`Scu::connect_with`], over TLS when `tls` is given (the peer's certificate checked
    /// by its configuration against `server_name`, PS3.15 Annex B).
    pub async fn connect_over(
        address: &str,
        tls: Option<(&str, std::sync::Arc<rustls::ClientConfig>)>,
        calling: &str,
        called: &str,
        proposals: &[(String, Vec<String>)],
    ) -> Result<Scu, ScuError> {
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(calling.to_string())
            .called_ae_title(called.to_string())
            .connection_timeout(CONNECT_TIMEOUT)
            .read_timeout(RESPONSE_TIMEOUT)
            .write_timeout(RESPONSE_TIMEOUT);
        for (abstract_syntax, transfer_syntaxes) in proposals {
            options = options
                .with_presentation_context(abstract_syntax.clone(), transfer_syntaxes.clone());
        }
        let established = match tls {
            None => options
                .establish_async(address.to_string())
                .await
                .map(|a| Client::Plain(Box::new(a))),
            Some((server_name, config)) => options
                .tls_config(config)
                .server_name(server_name)
                .establish_tls_async(address.to_string())
                .await
                .map(|a| Client::Tls(Box::new(a))),
        };
        let mut assoc = established.map_err(|e| match e {
            dicom_ul::association::Error::NoAcceptedPresentationContexts { .. } => {
                ScuError::NothingAccepted {
                    called: called.into(),
                    address: address.into(),
                }
            }
            e => ScuError::Associate {
                called: called.into(),
                address: address.into(),
                reason: with_causes(&e),
            },
        })?;
        // dicom-ul leaves Nagle on; small DIMSE messages would each wait ~40 ms for an ACK.
        assoc.set_nodelay();
        Ok(Scu {
            contexts: Context::accepted(assoc.presentation_contexts()),
            assoc,
            next_message_id: 1,
            called: called.to_string(),
            reports: None,
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

    /// Answers the peer's N-EVENT-REPORTs on this association with `reports`.
    pub fn on_event_reports(&mut self, reports: EventReports) {
        self.reports = Some(reports);
    }

    /// Whether the peer accepted `abstract_syntax` in any transfer syntax.
    pub fn offers(&self, abstract_syntax: &str) -> bool {
        self.contexts
            .iter()
            .any(|c| c.abstract_syntax == abstract_syntax)
    }

    /// Whether the peer accepted `abstract_syntax` in `transfer_syntax`.
    pub fn accepts(&self, abstract_syntax: &str, transfer_syntax: &str) -> bool {
        self.context_for(abstract_syntax, transfer_syntax).is_some()
    }

    fn context_for(&self, abstract_syntax: &str, transfer_syntax: &str) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.abstract_syntax == abstract_syntax && c.transfer_syntax == transfer_syntax)
    }

    /// C-STOREs an object whose data set (already in `transfer_syntax`, as stored) is read from
    /// `data` in fragments, so an object of any size is sent with one fragment in memory.
    /// Returns the C-STORE-RSP.
    pub async fn store<R: AsyncRead + Unpin>(
        &mut self,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        transfer_syntax: &str,
        data: R,
    ) -> Result<Response, ScuError> {
        self.store_for(sop_class_uid, sop_instance_uid, transfer_syntax, data, None)
            .await
    }

    /// [`Scu::store`] as a C-MOVE sub-operation: the command names the AE that asked for the
    /// move and its C-MOVE-RQ's message id (PS3.7 9.3.1.1).
    pub async fn store_for<R: AsyncRead + Unpin>(
        &mut self,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        transfer_syntax: &str,
        mut data: R,
        move_originator: Option<(&str, u16)>,
    ) -> Result<Response, ScuError> {
        let context_id = self
            .context_for(sop_class_uid, transfer_syntax)
            .map(|c| c.id)
            .ok_or_else(|| ScuError::NoContext(format!("{sop_class_uid} in {transfer_syntax}")))?;
        let command = Command {
            command_field: field::C_STORE_RQ,
            message_id: Some(self.next_message_id),
            affected_sop_class_uid: Some(sop_class_uid.to_string()),
            affected_sop_instance_uid: Some(sop_instance_uid.to_string()),
            priority: Some(0),
            has_data_set: true,
            move_originator_ae: move_originator.map(|(ae, _)| ae.to_string()),
            move_originator_message_id: move_originator.map(|(_, id)| id),
            ..Command::default()
        };
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        let peer_max = self.assoc.acceptor_max_pdu_length();
        for pdu in message_pdus(context_id, &command, None, peer_max) {
            self.send(&pdu).await?;
        }
        // Read ahead in large blocks: a file's reads each cost a hop to the blocking pool, so
        // reading it one PDU (16 KiB, often) at a time would bound the send rate.
        let mut data = tokio::io::BufReader::with_capacity(READ_AHEAD, &mut data);
        let mut pdus = DataPdus::new(&mut data, context_id, peer_max);
        while let Some(pdu) = pdus.next_pdu().await? {
            self.send(&pdu).await?;
        }
        self.receive().await
    }

    async fn send(&mut self, pdu: &Pdu) -> Result<(), ScuError> {
        self.assoc
            .send(pdu)
            .await
            .map_err(|e| ScuError::Association(e.to_string()))
    }

    /// Reads one whole response: its command, then its data set when the command says one
    /// follows. An N-EVENT-REPORT-RQ the peer sends meanwhile is answered on the way.
    async fn receive(&mut self) -> Result<Response, ScuError> {
        loop {
            let (context, command, data) = self.receive_message().await?;
            if command.command_field != field::N_EVENT_REPORT_RQ {
                let data_set = data
                    .as_deref()
                    .map(|bytes| data_set::decode(&context, bytes))
                    .transpose()?;
                return Ok(Response { command, data_set });
            }
            let rsp = match &self.reports {
                Some(answer) => answer(&self.called, &context, &command, data.as_deref()),
                None => Command {
                    error_comment: Some("event reports are not expected here".into()),
                    ..Command::response_to(
                        &command,
                        field::N_EVENT_REPORT_RSP,
                        status::UNRECOGNIZED_OPERATION,
                    )
                },
            };
            let peer_max = self.assoc.acceptor_max_pdu_length();
            for pdu in message_pdus(context.id, &rsp, None, peer_max) {
                self.send(&pdu).await?;
            }
        }
    }

    /// Reads one whole message, kept in memory within the assembler's bound.
    async fn receive_message(&mut self) -> Result<(Context, Command, Option<Vec<u8>>), ScuError> {
        let mut assembler = Assembler::new();
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
                let data = match message.data {
                    Some(DataSink::Memory(bytes)) => Some(bytes),
                    _ => None,
                };
                return Ok((message.context, message.command, data));
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
