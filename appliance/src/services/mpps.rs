//! MPPS SCP (PS3.4 F.7): N-CREATE and N-SET on Modality Performed Procedure Step, with the
//! status codes the standard gives for each refusal.

use dicom_dictionary_std::uids;
use dicom_object::InMemDicomObject;

use super::Services;
use crate::cloud::events;
use crate::dimse::{data_set, field, status, Association, Command, DimseError, Message};
use crate::mpps::{self, MppsChange, MppsError};
use crate::storage::IncomingObject;
use crate::worklist::new_uid;

fn error_status(e: &MppsError) -> u16 {
    match e {
        MppsError::Duplicate(_) => status::DUPLICATE_SOP_INSTANCE,
        MppsError::NoSuchInstance(_) => status::NO_SUCH_SOP_INSTANCE,
        MppsError::MissingAttribute(_) => status::MISSING_ATTRIBUTE,
        MppsError::InvalidValue(_) => status::INVALID_ATTRIBUTE_VALUE,
        // PS3.4 F.7.2.2 gives N-SET no "not authorized"; 0110 is what a modality expects for a
        // step it may not update.
        MppsError::NotInProgress { .. } | MppsError::NotCreator { .. } | MppsError::Db(_) => {
            status::PROCESSING_FAILURE
        }
    }
}

/// Checks the context and parses the data set; `Err` is the response to send instead, logged
/// once with the calling AE and the step's UID.
fn prepare(
    message: &Message<IncomingObject>,
    response_field: u16,
    calling_ae: &str,
) -> Result<InMemDicomObject, Box<Command>> {
    let refuse = |code: u16, comment: String| {
        let command = &message.command;
        let uid = command
            .affected_sop_instance_uid
            .as_deref()
            .or(command.requested_sop_instance_uid.as_deref())
            .unwrap_or("");
        tracing::warn!(calling_ae = %calling_ae, mpps = %uid, status = format_args!("{code:#06x}"),
            "MPPS {} refused: {comment}", command.name());
        Box::new(Command {
            error_comment: Some(comment),
            ..Command::response_to(command, response_field, code)
        })
    };
    if message.context.abstract_syntax != uids::MODALITY_PERFORMED_PROCEDURE_STEP {
        return Err(refuse(
            status::SOP_CLASS_NOT_SUPPORTED,
            "N-CREATE/N-SET are offered for MPPS only".into(),
        ));
    }
    match message.memory_data() {
        None => Err(refuse(
            status::MISSING_ATTRIBUTE,
            "the request carries no data set".into(),
        )),
        Some(bytes) => data_set::decode(&message.context, bytes)
            .map_err(|e| refuse(status::INVALID_ATTRIBUTE_VALUE, e.to_string())),
    }
}

/// Applies an MPPS change and records its event in one transaction, off the async threads,
/// then rings the outbox doorbell if it committed.
async fn commit<C>(services: &Services, change: C) -> Result<MppsChange, MppsError>
where
    C: FnOnce(&redb::WriteTransaction) -> Result<MppsChange, MppsError> + Send + 'static,
{
    let db = services.db.clone();
    let name = services.name.clone();
    let result = tokio::task::spawn_blocking(move || {
        db.write(|txn| {
            let change = change(txn)?;
            events::mpps_changed(txn, &change, &name)?;
            Ok::<_, MppsError>(change)
        })
    })
    .await
    .expect("MPPS task");
    if result.is_ok() {
        services.doorbell.ring();
    }
    result
}

/// Turns a success response into the refusal `e` maps to, with one log line.
fn set_refusal(rsp: &mut Command, e: &MppsError, calling_ae: &str, uid: &str, request: &str) {
    tracing::warn!(calling_ae = %calling_ae, mpps = %uid, error = %e, "MPPS {request} refused");
    rsp.status = Some(error_status(e));
    rsp.error_comment = Some(e.to_string());
}

pub async fn create(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let data_set = match prepare(&message, field::N_CREATE_RSP, &assoc.calling_ae) {
        Ok(obj) => obj,
        Err(rsp) => return assoc.send(message.context.id, &rsp, None).await,
    };
    // The SCU may leave the instance UID to us (PS3.7 10.1.5.1); then we name it in the reply.
    let uid = message
        .command
        .affected_sop_instance_uid
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(new_uid);
    let calling_ae = assoc.calling_ae.clone();
    let task_uid = uid.clone();
    let result = commit(services, move |txn| {
        mpps::create(txn, &task_uid, &data_set, &calling_ae)
    })
    .await;
    let mut rsp = Command::response_to(&message.command, field::N_CREATE_RSP, status::SUCCESS);
    rsp.affected_sop_class_uid = Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into());
    rsp.affected_sop_instance_uid = Some(uid.clone());
    match result {
        Ok(change) => tracing::info!(
            calling_ae = %assoc.calling_ae, mpps = %uid,
            accession = change.record.linked_accession.as_deref().unwrap_or_default(),
            "MPPS N-CREATE: IN PROGRESS"
        ),
        Err(e) => set_refusal(&mut rsp, &e, &assoc.calling_ae, &uid, "N-CREATE"),
    }
    assoc.send(message.context.id, &rsp, None).await
}

pub async fn set(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let modifications = match prepare(&message, field::N_SET_RSP, &assoc.calling_ae) {
        Ok(obj) => obj,
        Err(rsp) => return assoc.send(message.context.id, &rsp, None).await,
    };
    let mut rsp = Command::response_to(&message.command, field::N_SET_RSP, status::SUCCESS);
    let Some(uid) = message.command.requested_sop_instance_uid.clone() else {
        rsp.status = Some(status::MISSING_ATTRIBUTE);
        rsp.error_comment = Some("N-SET without Requested SOP Instance UID".into());
        return assoc.send(message.context.id, &rsp, None).await;
    };
    let task_uid = uid.clone();
    let calling_ae = assoc.calling_ae.clone();
    let policy = services.mpps_set_policy;
    let result = commit(services, move |txn| {
        mpps::set(txn, &task_uid, &modifications, &calling_ae, policy)
    })
    .await;
    match result {
        Ok(change) => tracing::info!(
            calling_ae = %assoc.calling_ae, mpps = %uid, status = ?change.record.status,
            accession = change.worklist.as_ref().map(|w| w.accession_number.as_str()).unwrap_or_default(),
            worklist_status = ?change.worklist.as_ref().map(|w| w.status),
            "MPPS N-SET"
        ),
        Err(e) => set_refusal(&mut rsp, &e, &assoc.calling_ae, &uid, "N-SET"),
    }
    assoc.send(message.context.id, &rsp, None).await
}
