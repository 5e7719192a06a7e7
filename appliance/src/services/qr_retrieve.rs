//! Study Root Query/Retrieve C-GET and C-MOVE SCPs (PS3.4 C.4.2, C.4.3) on the storage AE.
//!
//! The identifier is matched like a C-FIND's (`storage::query`), and every matching stored
//! object is sent as a C-STORE sub-operation in its stored transfer syntax, streamed from its
//! file (never transcoded, never read whole): C-GET on the same association, to a requestor that
//! took the SCP role for the object's SOP class; C-MOVE over a new association to a destination
//! listed in `QR_MOVE_DESTINATIONS` (any other Move Destination is refused with A801). After each
//! sub-operation a pending response carries the remaining/completed/failed/warning counts; the
//! final one is success, B000 with the Failed SOP Instance UID List, A702 when nothing could be
//! sent, or FE00 after a C-CANCEL.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use super::qr_find::{admit, matching};
use super::Services;
use crate::dimse::association::StreamError;
use crate::dimse::scu::{Scu, ScuError};
use crate::dimse::{
    data_set, field, status, Association, Command, Context, DataSink, DimseError, Message, Received,
};
use crate::storage::files::open_data_set;
use crate::storage::index::InstanceRecord;
use crate::storage::IncomingObject;

/// The sub-operation counts, and which instances failed.
#[derive(Debug, Default)]
struct Progress {
    remaining: usize,
    completed: usize,
    failed: usize,
    warning: usize,
    failed_uids: Vec<String>,
}

fn count(n: usize) -> Option<u16> {
    Some(u16::try_from(n).unwrap_or(u16::MAX))
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            remaining: total,
            ..Progress::default()
        }
    }

    /// Counts one sub-operation's C-STORE status.
    fn record(&mut self, uid: &str, outcome: Result<u16, String>) {
        self.remaining = self.remaining.saturating_sub(1);
        match outcome {
            Ok(status::SUCCESS) => self.completed += 1,
            Ok(code) if status::is_warning(code) => self.warning += 1,
            Ok(code) => {
                tracing::warn!(
                    sop_instance_uid = uid,
                    "sub-operation failed: status {code:#06x}"
                );
                self.fail(uid);
            }
            Err(reason) => {
                tracing::warn!(sop_instance_uid = uid, "sub-operation failed: {reason}");
                self.fail(uid);
            }
        }
    }

    fn fail(&mut self, uid: &str) {
        self.failed += 1;
        self.failed_uids.push(uid.to_string());
    }

    /// A pending response: the four counts.
    fn pending(&self, request: &Command, rsp_field: u16) -> Command {
        Command {
            remaining: count(self.remaining),
            completed: count(self.completed),
            failed: count(self.failed),
            warning: count(self.warning),
            ..Command::response_to(request, rsp_field, status::PENDING)
        }
    }

    /// The final response and its identifier (the Failed SOP Instance UID List, when any
    /// failed). `cancelled`: FE00, with the remaining count too.
    fn last(
        &self,
        request: &Command,
        rsp_field: u16,
        cancelled: bool,
    ) -> (Command, Option<InMemDicomObject>) {
        let code = if cancelled {
            status::CANCEL
        } else if self.failed == 0 && self.warning == 0 {
            status::SUCCESS
        } else if self.completed == 0 && self.warning == 0 {
            status::UNABLE_TO_PERFORM_SUB_OPERATIONS
        } else {
            status::SUB_OPERATIONS_FAILED
        };
        let rsp = Command {
            remaining: if cancelled {
                count(self.remaining)
            } else {
                None
            },
            completed: count(self.completed),
            failed: count(self.failed),
            warning: count(self.warning),
            ..Command::response_to(request, rsp_field, code)
        };
        let identifier = (!self.failed_uids.is_empty()).then(|| {
            let mut obj = InMemDicomObject::new_empty();
            obj.put(DataElement::new(
                tags::FAILED_SOP_INSTANCE_UID_LIST,
                VR::UI,
                PrimitiveValue::Strs(self.failed_uids.iter().cloned().collect()),
            ));
            obj
        });
        (rsp, identifier)
    }
}

/// Sends a final response, with its identifier when there is one.
async fn send_last(
    assoc: &mut Association,
    context: &Context,
    (mut rsp, identifier): (Command, Option<InMemDicomObject>),
) -> Result<(), DimseError> {
    let data = match identifier {
        Some(obj) => Some(
            data_set::encode(context, &obj)
                .map_err(|e| DimseError::Protocol(format!("encoding a final response: {e}")))?,
        ),
        None => None,
    };
    rsp.has_data_set = data.is_some();
    assoc.send(context.id, &rsp, data.as_deref()).await
}

/// The checks and matching C-GET and C-MOVE share: the instances to send, or the final
/// response already sent.
async fn instances_for(
    services: &Services,
    assoc: &mut Association,
    message: &Message<IncomingObject>,
    sop_class: &str,
    rsp_field: u16,
) -> Result<Option<Vec<InstanceRecord>>, DimseError> {
    let refuse = |code: u16, comment: String| Command {
        error_comment: Some(comment),
        ..Command::response_to(&message.command, rsp_field, code)
    };
    let query = match admit(services, assoc, message, sop_class, true) {
        Ok((query, _)) => query,
        Err((code, comment)) => {
            assoc
                .send(message.context.id, &refuse(code, comment), None)
                .await?;
            return Ok(None);
        }
    };
    match matching(services, &query).await {
        Ok((matched, _)) => Ok(Some(matched)),
        Err(e) => {
            tracing::error!(error = %e, "Q/R retrieve: the index could not be read");
            let rsp = refuse(status::UNABLE_TO_CALCULATE_MATCHES, e.to_string());
            assoc.send(message.context.id, &rsp, None).await?;
            Ok(None)
        }
    }
}

/// Opens an instance's stored data set, off the async threads.
async fn open(services: &Services, record: &InstanceRecord) -> Result<tokio::fs::File, String> {
    let path = services.storage.files.absolute(&record.file_path);
    match tokio::task::spawn_blocking(move || open_data_set(&path)).await {
        Ok(Ok(file)) => Ok(tokio::fs::File::from_std(file)),
        Ok(Err(e)) => Err(format!("cannot read the stored object: {e}")),
        Err(e) => Err(format!("reading the stored object: {e}")),
    }
}

/// C-GET: the matching objects as C-STORE sub-operations on this association.
pub async fn get(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let get_class = uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_GET;
    let Some(instances) =
        instances_for(services, assoc, &message, get_class, field::C_GET_RSP).await?
    else {
        return Ok(());
    };
    let request = message.command.clone();
    let context = message.context.clone();
    tracing::info!(calling_ae = %assoc.calling_ae, instances = instances.len(), "Q/R C-GET");
    let mut progress = Progress::new(instances.len());
    let mut message_id: u16 = 0;
    let mut cancelled = false;
    for record in &instances {
        if cancelled || assoc.cancel_requested(request.message_id).await? {
            cancelled = true;
            break;
        }
        let uid = record.sop_instance_uid.as_str();
        let store_context = assoc
            .contexts()
            .iter()
            .find(|c| {
                c.abstract_syntax == record.sop_class_uid
                    && c.transfer_syntax == record.transfer_syntax
            })
            .filter(|c| assoc.requestor_is_scp(&c.abstract_syntax))
            .map(|c| c.id);
        let Some(store_context) = store_context else {
            progress.record(
                uid,
                Err(format!(
                    "no accepted context with the SCP role for {} in {} (objects are sent as stored)",
                    record.sop_class_uid, record.transfer_syntax
                )),
            );
            assoc
                .send(
                    context.id,
                    &progress.pending(&request, field::C_GET_RSP),
                    None,
                )
                .await?;
            continue;
        };
        let file = match open(services, record).await {
            Ok(file) => file,
            Err(reason) => {
                progress.record(uid, Err(reason));
                assoc
                    .send(
                        context.id,
                        &progress.pending(&request, field::C_GET_RSP),
                        None,
                    )
                    .await?;
                continue;
            }
        };
        message_id = message_id.wrapping_add(1).max(1);
        let store = Command {
            command_field: field::C_STORE_RQ,
            message_id: Some(message_id),
            affected_sop_class_uid: Some(record.sop_class_uid.clone()),
            affected_sop_instance_uid: Some(record.sop_instance_uid.clone()),
            priority: Some(0),
            has_data_set: true,
            ..Command::default()
        };
        match assoc.send_streamed(store_context, &store, file).await {
            Ok(()) => {}
            // Mid-message: nothing but an abort ends it.
            Err(StreamError::Read(e)) => {
                return Err(DimseError::Protocol(format!(
                    "reading {uid} while sending it: {e}"
                )))
            }
            Err(StreamError::Dimse(e)) => return Err(e),
        }
        let outcome = loop {
            let received = assoc
                .receive(|_: &Context, _: &Command| DataSink::<std::io::Sink>::Memory(Vec::new()))
                .await?;
            let reply = match received {
                Received::Message(m) => m.command,
                Received::Released | Received::Aborted => {
                    return Err(DimseError::Protocol(
                        "the peer ended the association during a C-GET".into(),
                    ))
                }
            };
            match reply.command_field {
                field::C_STORE_RSP if reply.message_id_being_responded_to == Some(message_id) => {
                    break reply.status.unwrap_or(status::SUCCESS)
                }
                field::C_CANCEL_RQ => cancelled = true,
                other => {
                    return Err(DimseError::Protocol(format!(
                        "unexpected command {other:#06x} while waiting for a C-STORE-RSP"
                    )))
                }
            }
        };
        progress.record(uid, Ok(outcome));
        if !cancelled {
            assoc
                .send(
                    context.id,
                    &progress.pending(&request, field::C_GET_RSP),
                    None,
                )
                .await?;
        }
    }
    if cancelled {
        tracing::info!(calling_ae = %assoc.calling_ae, "Q/R C-GET cancelled");
    }
    tracing::info!(
        calling_ae = %assoc.calling_ae, completed = progress.completed, failed = progress.failed,
        warning = progress.warning, "Q/R C-GET done"
    );
    let last = progress.last(&request, field::C_GET_RSP, cancelled);
    send_last(assoc, &context, last).await
}

/// C-MOVE: the matching objects as C-STORE sub-operations over a new association to a
/// `QR_MOVE_DESTINATIONS` entry, with this AE as the calling AE.
pub async fn move_to(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let request = message.command.clone();
    let context = message.context.clone();
    let move_class = uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_MOVE;
    let named = request.move_destination.clone().unwrap_or_default();
    let destination = services
        .query_retrieve
        .move_destinations
        .iter()
        .find(|d| d.ae_title == named)
        .cloned();
    // The allow-list is checked first (by `admit`), so a stranger learns nothing of the
    // destinations.
    let allowed = services.query_retrieve.allows(&assoc.calling_ae);
    let destination = match destination {
        Some(d) => d,
        None if allowed && context.abstract_syntax == move_class => {
            tracing::warn!(calling_ae = %assoc.calling_ae, destination = %named,
                "Q/R C-MOVE refused: the Move Destination is not in QR_MOVE_DESTINATIONS");
            let rsp = Command {
                error_comment: Some("Move Destination not in QR_MOVE_DESTINATIONS".into()),
                ..Command::response_to(
                    &request,
                    field::C_MOVE_RSP,
                    status::MOVE_DESTINATION_UNKNOWN,
                )
            };
            return assoc.send(context.id, &rsp, None).await;
        }
        None => crate::forward::Destination {
            ae_title: named.clone(),
            host: String::new(),
            port: 0,
            tls: false,
        },
    };
    let Some(instances) =
        instances_for(services, assoc, &message, move_class, field::C_MOVE_RSP).await?
    else {
        return Ok(());
    };
    tracing::info!(calling_ae = %assoc.calling_ae, %destination, instances = instances.len(), "Q/R C-MOVE");
    let mut progress = Progress::new(instances.len());
    if instances.is_empty() {
        return send_last(
            assoc,
            &context,
            progress.last(&request, field::C_MOVE_RSP, false),
        )
        .await;
    }
    let mut proposals: Vec<(String, Vec<String>)> = Vec::new();
    for record in &instances {
        let pair = (
            record.sop_class_uid.clone(),
            vec![record.transfer_syntax.clone()],
        );
        if !proposals.contains(&pair) {
            proposals.push(pair);
        }
    }
    let connected = Scu::connect_with(
        &destination.address(),
        &assoc.called_ae,
        &destination.ae_title,
        &proposals,
    )
    .await;
    let mut scu = match connected {
        Ok(scu) => scu,
        Err(e) => {
            tracing::warn!(%destination, "Q/R C-MOVE: {e}");
            for record in &instances {
                progress.record(&record.sop_instance_uid, Err(e.to_string()));
            }
            let (mut rsp, identifier) = progress.last(&request, field::C_MOVE_RSP, false);
            rsp.error_comment = Some(format!("cannot associate with {}", destination.ae_title));
            return send_last(assoc, &context, (rsp, identifier)).await;
        }
    };
    let originator = (assoc.calling_ae.clone(), request.message_id.unwrap_or(0));
    let mut cancelled = false;
    let mut broken: Option<String> = None;
    for record in &instances {
        let uid = record.sop_instance_uid.as_str();
        if let Some(reason) = &broken {
            progress.record(uid, Err(reason.clone()));
            continue;
        }
        if assoc.cancel_requested(request.message_id).await? {
            cancelled = true;
            break;
        }
        let outcome = if !scu.accepts(&record.sop_class_uid, &record.transfer_syntax) {
            Err(format!(
                "{} did not accept {} in {} (objects are sent as stored)",
                destination.ae_title, record.sop_class_uid, record.transfer_syntax
            ))
        } else {
            match open(services, record).await {
                Err(reason) => Err(reason),
                Ok(file) => match scu
                    .store_for(
                        &record.sop_class_uid,
                        uid,
                        &record.transfer_syntax,
                        file,
                        Some((originator.0.as_str(), originator.1)),
                    )
                    .await
                {
                    Ok(rsp) => Ok(rsp.status()),
                    Err(ScuError::Read(e)) => {
                        // Mid-message on the destination's association: it cannot go on.
                        broken = Some(format!("cannot read the stored object: {e}"));
                        Err(format!("cannot read the stored object: {e}"))
                    }
                    Err(e) => {
                        broken = Some(format!("the association with the destination failed: {e}"));
                        Err(e.to_string())
                    }
                },
            }
        };
        progress.record(uid, outcome);
        assoc
            .send(
                context.id,
                &progress.pending(&request, field::C_MOVE_RSP),
                None,
            )
            .await?;
    }
    if broken.is_none() {
        if let Err(e) = scu.release().await {
            tracing::debug!(%destination, "releasing the C-MOVE association: {e}");
        }
    }
    tracing::info!(
        calling_ae = %assoc.calling_ae, %destination, completed = progress.completed,
        failed = progress.failed, warning = progress.warning, cancelled, "Q/R C-MOVE done"
    );
    let last = progress.last(&request, field::C_MOVE_RSP, cancelled);
    send_last(assoc, &context, last).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_status_follows_the_sub_operations() {
        // (completed, failed, warning, cancelled, status)
        let cases = [
            (0, 0, 0, false, status::SUCCESS),
            (3, 0, 0, false, status::SUCCESS),
            (2, 1, 0, false, status::SUB_OPERATIONS_FAILED),
            (2, 0, 1, false, status::SUB_OPERATIONS_FAILED),
            (0, 0, 1, false, status::SUB_OPERATIONS_FAILED),
            (0, 2, 0, false, status::UNABLE_TO_PERFORM_SUB_OPERATIONS),
            (1, 0, 0, true, status::CANCEL),
        ];
        let request = Command {
            command_field: field::C_GET_RQ,
            message_id: Some(7),
            ..Command::default()
        };
        for (completed, failed, warning, cancelled, want) in cases {
            let mut p = Progress::new(completed + failed + warning + 1);
            for i in 0..completed {
                p.record(&format!("1.{i}"), Ok(status::SUCCESS));
            }
            for i in 0..failed {
                p.record(&format!("2.{i}"), Ok(status::OUT_OF_RESOURCES));
            }
            for i in 0..warning {
                p.record(&format!("3.{i}"), Ok(0xB007));
            }
            let (rsp, identifier) = p.last(&request, field::C_GET_RSP, cancelled);
            assert_eq!(
                rsp.status,
                Some(want),
                "{completed} {failed} {warning} {cancelled}"
            );
            assert_eq!(rsp.completed, count(completed));
            assert_eq!(rsp.failed, count(failed));
            assert_eq!(rsp.remaining.is_some(), cancelled);
            assert_eq!(identifier.is_some(), failed > 0);
            assert_eq!(rsp.message_id_being_responded_to, Some(7));
        }
    }
}
