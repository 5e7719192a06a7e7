//! Modality Worklist C-FIND SCP (PS3.4 K): one pending response per matching item carrying
//! every key the modality asked for, then success; a C-CANCEL stops the stream.

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;

use super::Services;
use crate::dimse::{data_set, field, status, Association, Command, DimseError, Message};
use crate::storage::{index::text, IncomingObject};
use crate::worklist::matching::{status_text, Pattern, Range};
use crate::worklist::{self, Query, WorklistEntry};

pub async fn handle(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let request = &message.command;
    let context = message.context.clone();
    let final_status = |code: u16, comment: Option<String>| Command {
        error_comment: comment,
        ..Command::response_to(request, field::C_FIND_RSP, code)
    };
    if context.abstract_syntax != uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND {
        let rsp = final_status(
            status::SOP_CLASS_NOT_SUPPORTED,
            Some("only Modality Worklist C-FIND is offered".into()),
        );
        return assoc.send(context.id, &rsp, None).await;
    }
    let identifier = match message.memory_data().map(|b| data_set::decode(&context, b)) {
        Some(Ok(obj)) => obj,
        Some(Err(e)) => {
            tracing::warn!(calling_ae = %assoc.calling_ae, error = %e, "unreadable C-FIND identifier");
            let rsp = final_status(status::DATA_SET_DOES_NOT_MATCH, Some(e.to_string()));
            return assoc.send(context.id, &rsp, None).await;
        }
        None => {
            let rsp = final_status(
                status::DATA_SET_DOES_NOT_MATCH,
                Some("C-FIND without an identifier".into()),
            );
            return assoc.send(context.id, &rsp, None).await;
        }
    };
    let query = query_from(&identifier);
    let db = services.db.clone();
    let found = tokio::task::spawn_blocking(move || worklist::find(&db, &query))
        .await
        .expect("worklist query task");
    let entries = match found {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = %e, "worklist query failed");
            let rsp = final_status(status::OUT_OF_RESOURCES, Some(e.to_string()));
            return assoc.send(context.id, &rsp, None).await;
        }
    };
    tracing::info!(calling_ae = %assoc.calling_ae, matches = entries.len(), "worklist C-FIND");
    for entry in &entries {
        if assoc.cancel_requested(request.message_id).await? {
            tracing::info!(calling_ae = %assoc.calling_ae, "worklist C-FIND cancelled");
            let rsp = final_status(status::CANCEL, None);
            return assoc.send(context.id, &rsp, None).await;
        }
        let response = response_for(&identifier, entry, &assoc.calling_ae);
        let data = data_set::encode(&context, &response)
            .map_err(|e| DimseError::Protocol(format!("encoding a worklist response: {e}")))?;
        let mut pending = final_status(status::PENDING, None);
        pending.has_data_set = true;
        assoc.send(context.id, &pending, Some(&data)).await?;
    }
    assoc
        .send(context.id, &final_status(status::SUCCESS, None), None)
        .await
}

/// The matching keys of an identifier.
pub fn query_from(identifier: &InMemDicomObject) -> Query {
    let step = identifier
        .get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.first());
    let pattern = |obj: Option<&InMemDicomObject>, tag: Tag, fold: bool| {
        obj.and_then(|o| text(o, tag))
            .and_then(|v| Pattern::new(&v, fold))
    };
    let range = |tag: Tag| {
        step.and_then(|o| text(o, tag))
            .and_then(|v| Range::parse(&v))
    };
    Query {
        accession_number: pattern(Some(identifier), tags::ACCESSION_NUMBER, false),
        patient_id: pattern(Some(identifier), tags::PATIENT_ID, false),
        patient_name: pattern(Some(identifier), tags::PATIENT_NAME, true),
        modality: pattern(step, tags::MODALITY, false),
        station_ae: pattern(step, tags::SCHEDULED_STATION_AE_TITLE, false),
        date: range(tags::SCHEDULED_PROCEDURE_STEP_START_DATE),
        time: range(tags::SCHEDULED_PROCEDURE_STEP_START_TIME),
        status: pattern(step, tags::SCHEDULED_PROCEDURE_STEP_STATUS, false),
    }
}

/// The value an item has for a top-level key.
fn item_value(tag: Tag, e: &WorklistEntry) -> Option<String> {
    Some(match tag {
        tags::ACCESSION_NUMBER => e.accession_number.clone(),
        tags::PATIENT_NAME => e.participant.name.clone(),
        tags::PATIENT_ID => e.participant.nhs_number.clone(),
        tags::PATIENT_BIRTH_DATE => e.participant.birth_date.clone(),
        tags::PATIENT_SEX => e.participant.sex.clone(),
        tags::STUDY_INSTANCE_UID => e.study_instance_uid.clone(),
        tags::REQUESTED_PROCEDURE_ID => e.requested_procedure_id.clone(),
        tags::REQUESTED_PROCEDURE_DESCRIPTION | tags::STUDY_DESCRIPTION => {
            e.procedure.study_description.clone()
        }
        tags::ISSUER_OF_PATIENT_ID => "NHS".into(),
        _ => return None,
    })
}

/// The Scheduled Station AE Title to return: Type 1 (PS3.4 Table K.6-1), so never empty. An
/// item scheduled on no station (every item the cloud sends) is offered to every station, so it
/// names the station asked for when the query names one exactly, else the querying AE.
fn station_for(entry: &WorklistEntry, query: &InMemDicomObject, calling_ae: &str) -> String {
    if let Some(station) = &entry.scheduled_station_ae {
        return station.clone();
    }
    query
        .get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.first())
        .and_then(|step| text(step, tags::SCHEDULED_STATION_AE_TITLE))
        .filter(|ae| !ae.contains(['*', '?', '\\']))
        .unwrap_or_else(|| calling_ae.to_string())
}

/// The value an item has for a Scheduled Procedure Step Sequence key.
fn step_value(tag: Tag, e: &WorklistEntry, station: &str) -> Option<String> {
    Some(match tag {
        tags::MODALITY => e.procedure.modality.clone(),
        tags::SCHEDULED_STATION_AE_TITLE => station.to_string(),
        tags::SCHEDULED_PROCEDURE_STEP_START_DATE => e.scheduled.date.clone(),
        tags::SCHEDULED_PROCEDURE_STEP_START_TIME => e.scheduled.time.clone(),
        tags::SCHEDULED_PROCEDURE_STEP_ID => e.scheduled_procedure_step_id.clone(),
        tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION => e.procedure.study_description.clone(),
        tags::SCHEDULED_PROCEDURE_STEP_STATUS => status_text(e.status).into(),
        _ => return None,
    })
}

/// Keys returned in a step item when the modality sends the sequence with no item.
const ALL_STEP_KEYS: [(Tag, VR); 7] = [
    (tags::MODALITY, VR::CS),
    (tags::SCHEDULED_STATION_AE_TITLE, VR::AE),
    (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA),
    (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM),
    (tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH),
    (tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, VR::LO),
    (tags::SCHEDULED_PROCEDURE_STEP_STATUS, VR::CS),
];

fn element(tag: Tag, vr: VR, value: Option<String>) -> InMemElement {
    match value {
        Some(v) if !v.is_empty() => DataElement::new(tag, vr, PrimitiveValue::from(v)),
        _ => DataElement::empty(tag, vr),
    }
}

fn empty_sequence(tag: Tag) -> InMemElement {
    DataElement::new(
        tag,
        VR::SQ,
        DataSetSequence::<InMemDicomObject>::from(Vec::new()),
    )
}

/// A response identifier: every key of the query, filled from the item where the gateway has
/// the value and empty otherwise, plus Specific Character Set ISO_IR 192 (names are UTF-8).
/// Every Type 1 return key has a value: the item's validation guarantees those it holds, and
/// the station comes from [`station_for`]. `calling_ae` is the querying modality's AE title.
pub fn response_for(
    query: &InMemDicomObject,
    entry: &WorklistEntry,
    calling_ae: &str,
) -> InMemDicomObject {
    let station = station_for(entry, query, calling_ae);
    let mut out = InMemDicomObject::new_empty();
    out.put(DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from("ISO_IR 192"),
    ));
    for el in query.iter() {
        let tag = el.tag();
        if tag == tags::SPECIFIC_CHARACTER_SET || tag.group() == 0x0002 {
            continue;
        }
        if tag == tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE {
            let mut item = InMemDicomObject::new_empty();
            match el.items().and_then(|items| items.first()) {
                Some(q) if q.iter().next().is_some() => {
                    for key in q.iter() {
                        if key.vr() == VR::SQ {
                            item.put(empty_sequence(key.tag()));
                        } else {
                            let value = step_value(key.tag(), entry, &station);
                            item.put(element(key.tag(), key.vr(), value));
                        }
                    }
                }
                _ => {
                    for (tag, vr) in ALL_STEP_KEYS {
                        item.put(element(tag, vr, step_value(tag, entry, &station)));
                    }
                }
            }
            out.put(DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::from(vec![item]),
            ));
        } else if el.vr() == VR::SQ {
            out.put(empty_sequence(tag));
        } else {
            out.put(element(tag, el.vr(), item_value(tag, entry)));
        }
    }
    out
}
