//! Storage SCP (PS3.4 B): every standard storage SOP class, the object streamed to a temporary
//! file as it arrives and kept byte for byte.

use super::Services;
use crate::cloud::events;
use crate::dimse::{field, status, Association, Command, Context, DataSink, DimseError, Message};
use crate::storage::sop_classes::STORAGE_SOP_CLASSES;
use crate::storage::{Announced, IncomingObject, StoreError, Stored};
use crate::{forward, thumbnail, worklist};

/// Where a C-STORE's data set goes: a temporary file in the store, or, when that cannot be
/// opened (disk full), nowhere, with the error kept for the reply.
pub fn sink_for(
    storage: &crate::storage::Storage,
    context: &Context,
    command: &Command,
    calling_ae: &str,
) -> DataSink<IncomingObject> {
    let announced = announced(context, command, calling_ae);
    match storage.begin(&announced) {
        Ok(incoming) => DataSink::Stream(incoming),
        Err(StoreError::OutOfResources(e)) => DataSink::Failed(e),
        Err(e) => DataSink::Failed(std::io::Error::other(e.to_string())),
    }
}

/// What storing an instance queues, in the transaction that indexes it: the worklist item's
/// IN PROGRESS, forwarding, the thumbnail (which sends the image event). The same for an object
/// received now and for a file the re-index after a crash finds unindexed.
pub fn on_stored(
    txn: &redb::WriteTransaction,
    record: &crate::storage::InstanceRecord,
    destinations: &[forward::Destination],
) -> Result<(), crate::db::DbError> {
    if let Some(accession) = &record.data_set.accession_number {
        worklist::note_image_received(txn, accession)?;
    }
    forward::queue::enqueue(txn, record, destinations)?;
    thumbnail::enqueue_job(txn, record)
}

fn announced(context: &Context, command: &Command, calling_ae: &str) -> Announced {
    Announced {
        sop_class_uid: command
            .affected_sop_class_uid
            .clone()
            .unwrap_or_else(|| context.abstract_syntax.clone()),
        sop_instance_uid: command
            .affected_sop_instance_uid
            .clone()
            .unwrap_or_default(),
        transfer_syntax: context.transfer_syntax.clone(),
        calling_ae: calling_ae.to_string(),
    }
}

/// The DIMSE status and comment for a failed store.
pub fn failure_status(e: &StoreError) -> u16 {
    match e {
        StoreError::OutOfResources(_) | StoreError::Db(_) => status::OUT_OF_RESOURCES,
        StoreError::Mismatch { .. } => status::DATA_SET_DOES_NOT_MATCH,
        StoreError::MissingAttribute(_)
        | StoreError::Unreadable(_)
        | StoreError::Malformed(_)
        | StoreError::Meta(..) => status::CANNOT_UNDERSTAND,
    }
}

pub async fn handle(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let Message {
        context,
        command,
        data,
    } = message;
    let mut rsp = Command::response_to(&command, field::C_STORE_RSP, status::SUCCESS);
    let announced = announced(&context, &command, &assoc.calling_ae);
    let refuse = |rsp: &mut Command, code: u16, comment: String| {
        tracing::warn!(
            sop_instance_uid = %announced.sop_instance_uid, sop_class_uid = %announced.sop_class_uid,
            calling_ae = %announced.calling_ae, status = format_args!("{code:#06x}"),
            "C-STORE refused: {comment}"
        );
        rsp.status = Some(code);
        rsp.error_comment = Some(comment);
    };
    let is_storage_context = STORAGE_SOP_CLASSES.contains(&context.abstract_syntax.as_str());
    if !is_storage_context || announced.sop_class_uid != context.abstract_syntax {
        refuse(
            &mut rsp,
            status::SOP_CLASS_NOT_SUPPORTED,
            format!(
                "SOP class {} on a context for {}",
                announced.sop_class_uid, context.abstract_syntax
            ),
        );
    } else if announced.sop_instance_uid.is_empty() {
        refuse(
            &mut rsp,
            status::CANNOT_UNDERSTAND,
            "C-STORE-RQ without Affected SOP Instance UID".into(),
        );
    } else {
        match data {
            Some(DataSink::Stream(incoming)) => {
                let storage = services.storage.clone();
                let task_announced = announced.clone();
                let forwarder = services.forwarder.clone();
                let started = std::time::Instant::now();
                let result = tokio::task::spawn_blocking(move || {
                    // Forwarding, the thumbnail and the image event follow off this path.
                    storage.complete(incoming, &task_announced, |txn, record| {
                        on_stored(txn, record, forwarder.destinations())
                    })
                })
                .await
                .expect("store task");
                metrics::histogram!(crate::service::metrics::CSTORE_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                match result {
                    Ok(Stored::New(record)) => {
                        metrics::counter!(crate::service::metrics::CSTORE_BYTES)
                            .increment(record.file_size);
                        tracing::info!(
                            sop_instance_uid = %record.sop_instance_uid,
                            accession = record.data_set.accession_number.as_deref().unwrap_or_default(),
                            calling_ae = %record.calling_ae,
                            bytes = record.file_size,
                            persist_ms = started.elapsed().as_millis() as u64,
                            "stored"
                        );
                        services.forwarder.ring();
                        services.thumbnails.submit(thumbnail::Job::fresh(*record));
                    }
                    Ok(Stored::Duplicate) => tracing::info!(
                        sop_instance_uid = %announced.sop_instance_uid,
                        calling_ae = %announced.calling_ae,
                        "duplicate instance; the stored copy is kept"
                    ),
                    Err(e) => refuse(&mut rsp, failure_status(&e), e.to_string()),
                }
            }
            Some(DataSink::Failed(e)) => {
                refuse(
                    &mut rsp,
                    status::OUT_OF_RESOURCES,
                    format!("cannot write the object: {e}"),
                );
            }
            Some(DataSink::Memory(_)) | None => refuse(
                &mut rsp,
                status::CANNOT_UNDERSTAND,
                "C-STORE-RQ without a data set".into(),
            ),
        }
    }
    report_refusal(services, &announced, &rsp).await;
    let refused = rsp
        .status
        .is_some_and(|c| c != status::SUCCESS && !status::is_warning(c));
    metrics::counter!(
        crate::service::metrics::CSTORE,
        "status" => if refused { "refused" } else { "success" }
    )
    .increment(1);
    assoc.send(context.id, &rsp, None).await
}

/// Tells the cloud about a refused C-STORE (`image.validation_failed`), so a missing image is
/// not silently missing; does nothing for a success or a warning. Failing to queue it is logged;
/// the modality's answer stays the same.
async fn report_refusal(services: &Services, announced: &Announced, rsp: &Command) {
    let code = rsp.status.unwrap_or(status::SUCCESS);
    if code == status::SUCCESS || status::is_warning(code) {
        return;
    }
    let refused = events::RefusedImage {
        calling_ae: announced.calling_ae.clone(),
        sop_instance_uid: Some(announced.sop_instance_uid.clone()).filter(|uid| !uid.is_empty()),
        accession_number: None,
        reason: format!(
            "{} (C-STORE status 0x{code:04X})",
            rsp.error_comment.as_deref().unwrap_or("refused")
        ),
    };
    let (db, name) = (services.db.clone(), services.name.clone());
    let queued = tokio::task::spawn_blocking(move || {
        db.write(|txn| events::image_refused(txn, &name, &refused))
    })
    .await
    .expect("event task");
    match queued {
        Ok(()) => services.doorbell.ring(),
        Err(e) => tracing::error!("the refusal could not be queued for the cloud: {e}"),
    }
}
