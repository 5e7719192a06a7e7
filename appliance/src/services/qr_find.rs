//! Study Root Query/Retrieve C-FIND SCP (PS3.4 C.4.1) on the storage AE, over the image index
//! (`storage::query` matches; nothing here opens a stored file). One pending response per
//! matching study, series or image, then success; at most `QR_MAX_MATCHES`, then A700 saying
//! so; a C-CANCEL stops the stream. Only AEs in `QR_ALLOWED_AETS` are answered.

use dicom_dictionary_std::uids;
use dicom_object::InMemDicomObject;

use super::Services;
use crate::dimse::{data_set, field, status, Association, Command, DimseError, Message};
use crate::storage::index::{self, InstanceRecord};
use crate::storage::query::Query;
use crate::storage::IncomingObject;

/// The Study Root Query/Retrieve SOP classes the storage AE offers when `QR_ALLOWED_AETS` is set.
pub const QR_SOP_CLASSES: [&str; 3] = [
    uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND,
    uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_MOVE,
    uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_GET,
];

/// Why a Q/R request is answered with a final failure before any matching: the status and its
/// comment.
pub(super) type Refusal = (u16, String);

/// The checks every Q/R request passes first: the calling AE is allowed, the context is the
/// request's own SOP class, the identifier decodes (within `dimse::data_set`'s length and depth
/// bounds) and is a Study Root identifier.
pub(super) fn admit(
    services: &Services,
    assoc: &Association,
    message: &Message<IncomingObject>,
    sop_class: &str,
    retrieve: bool,
) -> Result<(Query, InMemDicomObject), Refusal> {
    if !services.query_retrieve.allows(&assoc.calling_ae) {
        tracing::warn!(
            calling_ae = %assoc.calling_ae, peer = %assoc.peer,
            "{} refused: the calling AE title is not in QR_ALLOWED_AETS", message.command.name()
        );
        return Err((
            status::NOT_AUTHORIZED,
            "calling AE title not in QR_ALLOWED_AETS".into(),
        ));
    }
    if message.context.abstract_syntax != sop_class {
        return Err((
            status::SOP_CLASS_NOT_SUPPORTED,
            format!("not on a {sop_class} context"),
        ));
    }
    let identifier = match message
        .memory_data()
        .map(|b| data_set::decode(&message.context, b))
    {
        Some(Ok(obj)) => obj,
        Some(Err(e)) => {
            tracing::warn!(calling_ae = %assoc.calling_ae, error = %e, "unreadable Q/R identifier");
            return Err((status::DATA_SET_DOES_NOT_MATCH, e.to_string()));
        }
        None => {
            return Err((
                status::DATA_SET_DOES_NOT_MATCH,
                "request without an identifier".into(),
            ))
        }
    };
    let parsed = if retrieve {
        Query::parse_retrieve(&identifier)
    } else {
        Query::parse(&identifier)
    };
    match parsed {
        Ok(query) => Ok((query, identifier)),
        Err(e) => {
            tracing::warn!(calling_ae = %assoc.calling_ae, "Q/R identifier refused: {e}");
            Err((status::DATA_SET_DOES_NOT_MATCH, e.to_string()))
        }
    }
}

/// The instances matching `query`, and every instance of their studies (for the counts), read
/// from one index snapshot each, off the async threads.
pub(super) async fn matching(
    services: &Services,
    query: &Query,
) -> Result<(Vec<InstanceRecord>, Vec<InstanceRecord>), crate::db::DbError> {
    let db = services.db.clone();
    let query = query.clone();
    tokio::task::spawn_blocking(move || {
        let only_study = query.only_study().map(str::to_string);
        let in_scope = |r: &InstanceRecord| {
            only_study
                .as_deref()
                .is_none_or(|s| r.study_instance_uid == s)
        };
        let matched = index::find_instances(&db, |r| in_scope(r) && query.matches_instance(r))?;
        let studies: std::collections::HashSet<String> = matched
            .iter()
            .map(|r| r.study_instance_uid.clone())
            .collect();
        let all = index::find_instances(&db, |r| studies.contains(&r.study_instance_uid))?;
        Ok((matched, all))
    })
    .await
    .expect("index query task")
}

pub async fn handle(
    services: &Services,
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    let request = message.command.clone();
    let context = message.context.clone();
    let final_status = |code: u16, comment: Option<String>| Command {
        error_comment: comment,
        ..Command::response_to(&request, field::C_FIND_RSP, code)
    };
    let (query, _) = match admit(
        services,
        assoc,
        &message,
        uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND,
        false,
    ) {
        Ok(admitted) => admitted,
        Err((code, comment)) => {
            return assoc
                .send(context.id, &final_status(code, Some(comment)), None)
                .await
        }
    };
    let (matched, all) = match matching(services, &query).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "Q/R C-FIND: the index could not be read");
            let rsp = final_status(status::OUT_OF_RESOURCES, Some(e.to_string()));
            return assoc.send(context.id, &rsp, None).await;
        }
    };
    let entities = query.entities(&matched, &all);
    let cap = services.query_retrieve.max_matches;
    tracing::info!(
        calling_ae = %assoc.calling_ae, level = query.level.name(), matches = entities.len(),
        "Q/R C-FIND"
    );
    // FF01: the identifier asked for keys the gateway does not keep; they come back empty.
    let pending_status = if query.unsupported.is_empty() {
        status::PENDING
    } else {
        status::PENDING_WARNING
    };
    for entity in entities.iter().take(cap) {
        if assoc.cancel_requested(request.message_id).await? {
            tracing::info!(calling_ae = %assoc.calling_ae, "Q/R C-FIND cancelled");
            return assoc
                .send(context.id, &final_status(status::CANCEL, None), None)
                .await;
        }
        let response = query.response(entity, &assoc.called_ae);
        let data = data_set::encode(&context, &response)
            .map_err(|e| DimseError::Protocol(format!("encoding a C-FIND response: {e}")))?;
        let mut pending = final_status(pending_status, None);
        pending.has_data_set = true;
        assoc.send(context.id, &pending, Some(&data)).await?;
    }
    if entities.len() > cap {
        tracing::warn!(
            calling_ae = %assoc.calling_ae, matches = entities.len(), cap,
            "Q/R C-FIND stopped at QR_MAX_MATCHES"
        );
        let rsp = final_status(
            status::OUT_OF_RESOURCES,
            Some(format!(
                "more than QR_MAX_MATCHES={cap} matches; narrow the query"
            )),
        );
        return assoc.send(context.id, &rsp, None).await;
    }
    assoc
        .send(context.id, &final_status(status::SUCCESS, None), None)
        .await
}
