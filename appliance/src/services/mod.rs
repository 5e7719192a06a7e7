//! The DIMSE services the gateway offers, and the per-association loop that dispatches to them.

pub mod echo;
pub mod mpps;
pub mod qr_find;
pub mod qr_retrieve;
pub mod store;
pub mod worklist;

use std::sync::Arc;

use crate::db::Database;
use crate::dimse::{field, status, Association, Command, Context, DataSink, Message, Received};
use crate::storage::{IncomingObject, Storage};

/// Which of the gateway's two SCPs an association reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `MWL_AET`: worklist C-FIND, MPPS N-CREATE/N-SET, C-ECHO.
    Worklist,
    /// `PACS_AET`: C-STORE, C-ECHO, Storage Commitment reports (N-EVENT-REPORT) from a PACS;
    /// Study Root C-FIND/C-GET/C-MOVE with `QR_ALLOWED_AETS`.
    Storage,
}

/// What the services share: the state database, the image store, and the outbox doorbell to
/// ring after committing a change that queued an event.
#[derive(Clone)]
pub struct Services {
    pub db: Arc<Database>,
    pub storage: Storage,
    pub doorbell: crate::cloud::outbox::Doorbell,
    /// Makes thumbnails and image events after each store.
    pub thumbnails: crate::thumbnail::Pool,
    /// This gateway's name in its events.
    pub name: std::sync::Arc<str>,
    /// Who may update an MPPS step (`MPPS_SET_FROM_ANY_AE`).
    pub mpps_set_policy: crate::mpps::SetPolicy,
    /// Where stored objects are forwarded (`PACS_FORWARD`; none by default).
    pub forwarder: crate::forward::Forwarder,
    /// Who may query and retrieve on the storage AE, and where to (`QR_*`).
    pub query_retrieve: Arc<crate::config::QrSettings>,
}

impl Services {
    /// Serves one association until the peer releases or aborts it, or breaks the protocol.
    pub async fn serve(&self, role: Role, mut assoc: Association) {
        let peer = assoc.peer;
        let calling = assoc.calling_ae.clone();
        loop {
            let storage = self.storage.clone();
            let calling_ae = calling.clone();
            let received = assoc
                .receive(|context: &Context, command: &Command| {
                    if role == Role::Storage && command.command_field == field::C_STORE_RQ {
                        store::sink_for(&storage, context, command, &calling_ae)
                    } else {
                        DataSink::Memory(Vec::new())
                    }
                })
                .await;
            let message = match received {
                Ok(Received::Message(message)) => *message,
                Ok(Received::Released) => {
                    tracing::debug!(%peer, calling_ae = %calling, "association released");
                    return;
                }
                Ok(Received::Aborted) => {
                    tracing::info!(%peer, calling_ae = %calling, "association aborted by the peer");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%peer, calling_ae = %calling, error = %e, "aborting association");
                    assoc.abort().await;
                    return;
                }
            };
            if let Err(e) = self.dispatch(role, &mut assoc, message).await {
                tracing::warn!(%peer, calling_ae = %calling, error = %e, "aborting association");
                assoc.abort().await;
                return;
            }
        }
    }

    async fn dispatch(
        &self,
        role: Role,
        assoc: &mut Association,
        message: Message<IncomingObject>,
    ) -> Result<(), crate::dimse::DimseError> {
        let command_field = message.command.command_field;
        match (role, command_field) {
            (_, field::C_ECHO_RQ) => echo::handle(assoc, message).await,
            (Role::Worklist, field::C_FIND_RQ) => {
                let started = std::time::Instant::now();
                let answered = worklist::handle(self, assoc, message).await;
                metrics::histogram!(crate::service::metrics::CFIND_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                answered
            }
            (Role::Worklist, field::N_CREATE_RQ) => mpps::create(self, assoc, message).await,
            (Role::Worklist, field::N_SET_RQ) => mpps::set(self, assoc, message).await,
            (Role::Storage, field::C_STORE_RQ) => store::handle(self, assoc, message).await,
            (Role::Storage, field::N_EVENT_REPORT_RQ) => {
                let (db, name, peer_ae) =
                    (self.db.clone(), self.name.clone(), assoc.calling_ae.clone());
                let (context, command) = (message.context.clone(), message.command.clone());
                let destinations = self.forwarder.destinations().to_vec();
                let data = message.memory_data().map(<[u8]>::to_vec);
                let answered = tokio::task::spawn_blocking(move || {
                    crate::forward::commitment::answer_report(
                        &db,
                        &name,
                        &destinations,
                        &peer_ae,
                        &context,
                        &command,
                        data.as_deref(),
                    )
                })
                .await;
                // A panic while recording the report is a bug, not the PACS's: it is told
                // "processing failure" (it reports again later) and the association goes on.
                let (rsp, changed) = answered.unwrap_or_else(|e| {
                    tracing::error!(calling_ae = %assoc.calling_ae, "Storage Commitment report not recorded: {e}");
                    let failed = Command::response_to(
                        &message.command,
                        field::N_EVENT_REPORT_RSP,
                        status::PROCESSING_FAILURE,
                    );
                    (failed, false)
                });
                if changed {
                    self.doorbell.ring();
                }
                assoc.send(message.context.id, &rsp, None).await
            }
            (Role::Storage, field::C_FIND_RQ) => qr_find::handle(self, assoc, message).await,
            (Role::Storage, field::C_GET_RQ) => qr_retrieve::get(self, assoc, message).await,
            (Role::Storage, field::C_MOVE_RQ) => qr_retrieve::move_to(self, assoc, message).await,
            // A C-CANCEL for a find that already finished: nothing to do (PS3.7 9.3.2.3).
            (_, field::C_CANCEL_RQ) => Ok(()),
            _ => {
                tracing::warn!(
                    calling_ae = %assoc.calling_ae,
                    command = format_args!("{:#06x}", command_field),
                    "unsupported command on this AE"
                );
                let response = Command {
                    error_comment: Some("operation not supported by this AE".into()),
                    ..Command::response_to(
                        &message.command,
                        command_field | 0x8000,
                        status::UNRECOGNIZED_OPERATION,
                    )
                };
                assoc.send(message.context.id, &response, None).await
            }
        }
    }
}
