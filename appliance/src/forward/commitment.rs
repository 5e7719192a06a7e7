//! Storage Commitment, push model (PS3.4 Annex J): after forwarding, the gateway asks each PACS
//! that negotiated the SOP class to take responsibility for the objects (N-ACTION), and records
//! its answer (N-EVENT-REPORT) per object, so retention deletes only what a PACS has committed.
//!
//! Every step is durable before it is acted on:
//! - forwarding an object to a PACS that accepted the commitment context records it *pending*
//!   in the transaction that records it forwarded ([`expect`]);
//! - a request is counted and its Transaction UID stored before the N-ACTION is sent
//!   ([`begin_request`]), and it is sent again after `PACS_COMMIT_TIMEOUT_SECS` (doubling, up to
//!   16 times that) while the PACS has not answered — whatever was lost (the N-ACTION, the
//!   report, the gateway itself);
//! - a report is accepted only for a Transaction UID the gateway issued to that PACS, from a peer
//!   calling with that PACS's AE title ([`answer_report`]); it records each object committed or
//!   failed, with the `image.archive_state` event, in one transaction.
//!
//! A re-request gets a new Transaction UID and forgets the old one: a late answer to the old
//! request is refused (0115) and the new one is awaited.

use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::wire::event::ArchiveState;

use super::Destination;
use crate::cloud::events;
use crate::db::{now_ms, Database, DbError, COMMITMENTS, COMMIT_PENDING, COMMIT_TRANSACTIONS};
use crate::dimse::{data_set, field, status, Command, Context};

/// Storage Commitment Push Model SOP Class.
pub const SOP_CLASS: &str = "1.2.840.10008.1.20.1";
/// Its well-known SOP instance, the only one N-ACTION and N-EVENT-REPORT name.
pub const SOP_INSTANCE: &str = "1.2.840.10008.1.20.1.1";
/// N-ACTION Action Type ID: "Request Storage Commitment".
pub const ACTION_REQUEST: u16 = 1;
/// N-EVENT-REPORT Event Type IDs: every object committed / some failed.
pub const EVENT_SUCCESS: u16 = 1;
pub const EVENT_FAILURES: u16 = 2;
/// Objects named in one request.
pub const REQUEST_LIMIT: usize = 64;
/// Items read from a report's sequences: no more than a request of ours names.
const REPORT_LIMIT: usize = REQUEST_LIMIT;
/// The longest wait between requests, as a multiple of the timeout.
const MAX_BACKOFF_FACTOR: u32 = 16;

/// Where one object stands with one PACS's Storage Commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Commitment {
    /// Forwarded; the PACS's commitment is awaited (`transaction_uid` is the latest request).
    Pending {
        sop_class_uid: String,
        transaction_uid: Option<String>,
        attempts: u32,
        since_ms: u64,
    },
    /// The PACS took responsibility for it: it may be deleted here.
    Committed { at_ms: u64, transaction_uid: String },
    /// The PACS reported it cannot commit it (the Failure Reason, in words).
    Failed {
        at_ms: u64,
        transaction_uid: String,
        reason: String,
    },
}

/// A request sent (or about to be): its Transaction UID and the objects it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub transaction_uid: String,
    /// The destination's key ([`Destination::key`]).
    pub destination: String,
    /// Its AE title: only a peer calling with it may answer.
    pub ae_title: String,
    /// (SOP Class UID, SOP Instance UID).
    pub references: Vec<(String, String)>,
    pub requested_at_ms: u64,
}

/// Records `sop_instance_uid` as awaiting `destination`'s commitment, due for a request now;
/// inside the transaction that records it forwarded.
pub fn expect(
    txn: &WriteTransaction,
    destination: &Destination,
    sop_class_uid: &str,
    sop_instance_uid: &str,
) -> Result<(), DbError> {
    let key = destination.key();
    let record = Commitment::Pending {
        sop_class_uid: sop_class_uid.to_string(),
        transaction_uid: None,
        attempts: 0,
        since_ms: now_ms(),
    };
    put(txn, &key, sop_instance_uid, &record)?;
    txn.open_table(COMMIT_PENDING)?
        .insert((key.as_str(), sop_instance_uid), 0)?;
    Ok(())
}

/// The objects whose commitment request is due at `now` (never sent, or unanswered past the
/// timeout), at most `limit`: (SOP Class UID, SOP Instance UID).
pub fn due(
    db: &Database,
    destination: &Destination,
    now: u64,
    limit: usize,
) -> Result<Vec<(String, String)>, DbError> {
    let key = destination.key();
    let txn = db.begin_read()?;
    let pending = txn.open_table(COMMIT_PENDING)?;
    let records = txn.open_table(COMMITMENTS)?;
    let mut out = Vec::new();
    for row in pending.range((key.as_str(), "")..)? {
        let (k, due_at) = row?;
        let (dest, uid) = k.value();
        if dest != key {
            break;
        }
        if due_at.value() > now {
            continue;
        }
        if let Some(Commitment::Pending { sop_class_uid, .. }) = get(&records, &key, uid)? {
            out.push((sop_class_uid, uid.to_string()));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The wait before asking again after the `attempts`-th request: the timeout, doubling, at most
/// 16 times it.
pub fn retry_after(timeout: Duration, attempts: u32) -> Duration {
    shared::backoff::Exponential::new(timeout, timeout.saturating_mul(MAX_BACKOFF_FACTOR))
        .delay(attempts)
}

/// Counts a request for `references` under a new Transaction UID and stores it, before the
/// N-ACTION is sent; the objects are due again after [`retry_after`]. Objects no longer pending
/// (answered meanwhile, or deleted) are left out.
pub fn begin_request(
    db: &Database,
    destination: &Destination,
    references: &[(String, String)],
    timeout: Duration,
) -> Result<Request, DbError> {
    let key = destination.key();
    let now = now_ms();
    let transaction_uid = crate::worklist::new_uid();
    db.write(|txn| {
        let mut kept = Vec::new();
        {
            let mut records = txn.open_table(COMMITMENTS)?;
            let mut pending = txn.open_table(COMMIT_PENDING)?;
            let mut transactions = txn.open_table(COMMIT_TRANSACTIONS)?;
            for (class, uid) in references.iter().take(REQUEST_LIMIT) {
                let Some(Commitment::Pending {
                    sop_class_uid,
                    transaction_uid: previous,
                    attempts,
                    since_ms,
                }) = get(&records, &key, uid)?
                else {
                    continue;
                };
                if let Some(previous) = previous {
                    transactions.remove(previous.as_str())?;
                }
                let attempts = attempts.saturating_add(1);
                let next = now.saturating_add(retry_after(timeout, attempts).as_millis() as u64);
                pending.insert((key.as_str(), uid.as_str()), next)?;
                let record = Commitment::Pending {
                    sop_class_uid,
                    transaction_uid: Some(transaction_uid.clone()),
                    attempts,
                    since_ms,
                };
                let bytes = serde_json::to_vec(&record).expect("commitments serialise");
                records.insert((key.as_str(), uid.as_str()), bytes.as_slice())?;
                kept.push((class.clone(), uid.clone()));
            }
        }
        let request = Request {
            transaction_uid: transaction_uid.clone(),
            destination: key.clone(),
            ae_title: destination.ae_title.clone(),
            references: kept,
            requested_at_ms: now,
        };
        if !request.references.is_empty() {
            let bytes = serde_json::to_vec(&request).expect("requests serialise");
            txn.open_table(COMMIT_TRANSACTIONS)?
                .insert(transaction_uid.as_str(), bytes.as_slice())?;
        }
        Ok::<_, DbError>(request)
    })
}

/// The N-ACTION-RQ data set: the Transaction UID and the Referenced SOP Sequence.
pub fn request_data_set(request: &Request) -> InMemDicomObject {
    let items = request
        .references
        .iter()
        .map(|(class, instance)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    PrimitiveValue::from(class.as_str()),
                ),
                DataElement::new(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    PrimitiveValue::from(instance.as_str()),
                ),
            ])
        })
        .collect::<Vec<_>>();
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::TRANSACTION_UID,
            VR::UI,
            PrimitiveValue::from(request.transaction_uid.as_str()),
        ),
        DataElement::new(
            tags::REFERENCED_SOP_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(items),
        ),
    ])
}

/// The N-ACTION-RQ command for `message_id`'s request (the id is set by the SCU).
pub fn request_command() -> Command {
    Command {
        command_field: field::N_ACTION_RQ,
        requested_sop_class_uid: Some(SOP_CLASS.into()),
        requested_sop_instance_uid: Some(SOP_INSTANCE.into()),
        action_type_id: Some(ACTION_REQUEST),
        ..Command::default()
    }
}

/// A report as read from an N-EVENT-REPORT-RQ data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub transaction_uid: String,
    /// SOP Instance UIDs the PACS committed.
    pub committed: Vec<String>,
    /// SOP Instance UIDs it could not, with the Failure Reason.
    pub failed: Vec<(String, u16)>,
}

/// Why a report is refused: the N-EVENT-REPORT-RSP status and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub comment: String,
}

fn refusal(status: u16, comment: impl Into<String>) -> Refusal {
    Refusal {
        status,
        comment: comment.into(),
    }
}

/// N-EVENT-REPORT statuses (PS3.7 10.1.1.1.8).
const NO_SUCH_EVENT_TYPE: u16 = 0x0113;
const INVALID_ARGUMENT_VALUE: u16 = 0x0115;
const NOT_AUTHORIZED: u16 = 0x0124;

/// Reads a report, bounded: at most [`REPORT_LIMIT`] items in each sequence, each naming its
/// instance (sequences nest no deeper than the assembler's scanner allowed).
pub fn parse_report(event_type: Option<u16>, obj: &InMemDicomObject) -> Result<Report, Refusal> {
    match event_type {
        Some(EVENT_SUCCESS | EVENT_FAILURES) => {}
        other => {
            return Err(refusal(
                NO_SUCH_EVENT_TYPE,
                format!("event type {other:?} is not 1 or 2 (Storage Commitment)"),
            ))
        }
    }
    let text = |o: &InMemDicomObject, tag| {
        o.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let transaction_uid = text(obj, tags::TRANSACTION_UID)
        .ok_or_else(|| refusal(INVALID_ARGUMENT_VALUE, "the report has no Transaction UID"))?;
    let items = |tag, name: &str| -> Result<Vec<InMemDicomObject>, Refusal> {
        let Some(element) = obj.element_opt(tag).ok().flatten() else {
            return Ok(Vec::new());
        };
        let items = element
            .items()
            .ok_or_else(|| refusal(INVALID_ARGUMENT_VALUE, format!("{name} is not a sequence")))?;
        if items.len() > REPORT_LIMIT {
            return Err(refusal(
                INVALID_ARGUMENT_VALUE,
                format!(
                    "{name} lists {} items; a request names at most {REPORT_LIMIT}",
                    items.len()
                ),
            ));
        }
        Ok(items.to_vec())
    };
    let mut committed = Vec::new();
    for item in items(tags::REFERENCED_SOP_SEQUENCE, "Referenced SOP Sequence")? {
        let uid = text(&item, tags::REFERENCED_SOP_INSTANCE_UID).ok_or_else(|| {
            refusal(
                INVALID_ARGUMENT_VALUE,
                "a Referenced SOP Sequence item names no instance",
            )
        })?;
        committed.push(uid);
    }
    let mut failed = Vec::new();
    for item in items(tags::FAILED_SOP_SEQUENCE, "Failed SOP Sequence")? {
        let uid = text(&item, tags::REFERENCED_SOP_INSTANCE_UID).ok_or_else(|| {
            refusal(
                INVALID_ARGUMENT_VALUE,
                "a Failed SOP Sequence item names no instance",
            )
        })?;
        let reason = item
            .element_opt(tags::FAILURE_REASON)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(status::PROCESSING_FAILURE);
        failed.push((uid, reason));
    }
    Ok(Report {
        transaction_uid,
        committed,
        failed,
    })
}

/// The Failure Reason (PS3.3 C.12.1.1.2 / PS3.4 J.3.3.1), in words.
pub fn failure_reason(code: u16) -> String {
    let words = match code {
        0x0110 => "processing failure",
        0x0112 => "no such object instance",
        0x0119 => "class / instance conflict",
        0x0122 => "referenced SOP class not supported",
        0x0131 => "duplicate transaction UID",
        0x0213 => "resource limitation",
        _ => "unknown failure reason",
    };
    format!("the PACS did not commit it: {words} ({code:#06x})")
}

/// What a report changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub committed: usize,
    pub failed: usize,
    /// Instances the report named that the request did not, or that were already answered.
    pub ignored: usize,
}

/// Why a report was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}", .0.comment)]
    Refused(Refusal),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<redb::TableError> for ReportError {
    fn from(e: redb::TableError) -> Self {
        ReportError::Db(e.into())
    }
}

impl From<redb::StorageError> for ReportError {
    fn from(e: redb::StorageError) -> Self {
        ReportError::Db(e.into())
    }
}

/// Applies `report` from a peer calling as `peer_ae`: each object the request named is recorded
/// committed or failed, with its `image.archive_state` event, and the request is forgotten; all
/// in one transaction. Refused when the Transaction UID is not one the gateway has outstanding,
/// or was issued to a PACS with another AE title.
pub fn apply_report(
    db: &Database,
    source_system: &str,
    peer_ae: &str,
    report: &Report,
) -> Result<Applied, ReportError> {
    db.write(|txn| {
        let request: Request = {
            let transactions = txn.open_table(COMMIT_TRANSACTIONS)?;
            let value = transactions.get(report.transaction_uid.as_str())?;
            let Some(value) = value else {
                return Err(ReportError::Refused(refusal(
                    INVALID_ARGUMENT_VALUE,
                    format!(
                        "transaction {} is not one this gateway has outstanding",
                        report.transaction_uid
                    ),
                )));
            };
            serde_json::from_slice(value.value()).map_err(|source| DbError::Corrupt {
                table: "commit_transactions",
                key: report.transaction_uid.clone(),
                source,
            })?
        };
        if request.ae_title != peer_ae {
            return Err(ReportError::Refused(refusal(
                NOT_AUTHORIZED,
                format!(
                    "transaction {} was requested from {}, not {peer_ae}",
                    report.transaction_uid, request.ae_title
                ),
            )));
        }
        let key = request.destination.as_str();
        let named = |uid: &str| request.references.iter().any(|(_, u)| u == uid);
        let answers = report
            .committed
            .iter()
            .map(|uid| (uid, None))
            .chain(report.failed.iter().map(|(uid, code)| (uid, Some(*code))));
        let mut applied = Applied::default();
        for (uid, failure) in answers {
            let current = {
                let records = txn.open_table(COMMITMENTS)?;
                get(&records, key, uid)?
            };
            let pending_here = matches!(&current, Some(Commitment::Pending { transaction_uid: Some(t), .. }) if *t == report.transaction_uid);
            if !named(uid) || !pending_here {
                applied.ignored += 1;
                continue;
            }
            let at_ms = now_ms();
            let transaction_uid = report.transaction_uid.clone();
            let (record, state, reason) = match failure {
                None => (
                    Commitment::Committed {
                        at_ms,
                        transaction_uid,
                    },
                    ArchiveState::Committed,
                    None,
                ),
                Some(code) => {
                    let reason = failure_reason(code);
                    (
                        Commitment::Failed {
                            at_ms,
                            transaction_uid,
                            reason: reason.clone(),
                        },
                        ArchiveState::Failed,
                        Some(reason),
                    )
                }
            };
            put(txn, key, uid, &record)?;
            txn.open_table(COMMIT_PENDING)?.remove((key, uid.as_str()))?;
            events::archive_state(
                txn,
                source_system,
                &request.ae_title,
                uid,
                state,
                reason,
            )?;
            match state {
                ArchiveState::Committed => applied.committed += 1,
                _ => applied.failed += 1,
            }
        }
        txn.open_table(COMMIT_TRANSACTIONS)?
            .remove(report.transaction_uid.as_str())?;
        Ok(applied)
    })
}

/// Answers one N-EVENT-REPORT-RQ, on the gateway's storage SCP (a new association the PACS
/// opened, as Orthanc does) or on the forwarding association itself: checks, applies, and
/// returns the N-EVENT-REPORT-RSP and whether anything changed (then the outbox doorbell is
/// rung). Only a peer calling with a destination's AE title is heard. A refusal is logged once
/// with the peer's AE title and the reason.
pub fn answer_report(
    db: &Database,
    source_system: &str,
    destinations: &[Destination],
    peer_ae: &str,
    context: &Context,
    command: &Command,
    data: Option<&[u8]>,
) -> (Command, bool) {
    let result = (|| {
        // Before the data set is even parsed: only a forwarding destination may report.
        if !destinations.iter().any(|d| d.ae_title == peer_ae) {
            return Err(ReportError::Refused(refusal(
                NOT_AUTHORIZED,
                format!("{peer_ae} is not a PACS_FORWARD destination"),
            )));
        }
        if context.abstract_syntax != SOP_CLASS {
            return Err(ReportError::Refused(refusal(
                status::SOP_CLASS_NOT_SUPPORTED,
                "N-EVENT-REPORT is accepted for Storage Commitment only",
            )));
        }
        let data = data.ok_or_else(|| {
            ReportError::Refused(refusal(
                INVALID_ARGUMENT_VALUE,
                "the report carries no data set",
            ))
        })?;
        let obj = data_set::decode(context, data)
            .map_err(|e| ReportError::Refused(refusal(INVALID_ARGUMENT_VALUE, e.to_string())))?;
        let report = parse_report(command.event_type_id, &obj).map_err(ReportError::Refused)?;
        let applied = apply_report(db, source_system, peer_ae, &report)?;
        tracing::info!(
            calling_ae = peer_ae,
            transaction_uid = %report.transaction_uid,
            committed = applied.committed,
            failed = applied.failed,
            ignored = applied.ignored,
            "storage commitment report"
        );
        Ok(applied)
    })();
    let mut rsp = Command::response_to(command, field::N_EVENT_REPORT_RSP, status::SUCCESS);
    rsp.affected_sop_class_uid = Some(SOP_CLASS.into());
    rsp.affected_sop_instance_uid = Some(SOP_INSTANCE.into());
    rsp.event_type_id = command.event_type_id;
    match result {
        Ok(applied) => (rsp, applied.committed + applied.failed > 0),
        Err(e) => {
            let (code, comment) = match &e {
                ReportError::Refused(r) => (r.status, r.comment.clone()),
                ReportError::Db(e) => (status::PROCESSING_FAILURE, e.to_string()),
            };
            tracing::warn!(
                calling_ae = peer_ae,
                status = format_args!("{code:#06x}"),
                "storage commitment report refused: {comment}"
            );
            rsp.status = Some(code);
            rsp.error_comment = Some(comment);
            (rsp, false)
        }
    }
}

/// One object's commitment at `destination`, if it is awaited or answered.
pub fn commitment(
    db: &Database,
    destination: &Destination,
    sop_instance_uid: &str,
) -> Result<Option<Commitment>, DbError> {
    let txn = db.begin_read()?;
    let records = txn.open_table(COMMITMENTS)?;
    get(&records, &destination.key(), sop_instance_uid)
}

/// Commitments at `destination` in figures: (pending, committed, failed).
pub fn counts(db: &Database, destination: &Destination) -> Result<(u64, u64, u64), DbError> {
    let key = destination.key();
    let txn = db.begin_read()?;
    let records = txn.open_table(COMMITMENTS)?;
    let mut counts = (0, 0, 0);
    for row in records.range((key.as_str(), "")..)? {
        let (k, v) = row?;
        if k.value().0 != key {
            break;
        }
        match serde_json::from_slice::<Commitment>(v.value()) {
            Ok(Commitment::Pending { .. }) => counts.0 += 1,
            Ok(Commitment::Committed { .. }) => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    Ok(counts)
}

/// Reads one record from an open commitments table.
pub fn get(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &str,
    uid: &str,
) -> Result<Option<Commitment>, DbError> {
    table
        .get((key, uid))?
        .map(|v| {
            serde_json::from_slice(v.value()).map_err(|source| DbError::Corrupt {
                table: "commitments",
                key: format!("{key}/{uid}"),
                source,
            })
        })
        .transpose()
}

fn put(txn: &WriteTransaction, key: &str, uid: &str, record: &Commitment) -> Result<(), DbError> {
    let bytes = serde_json::to_vec(record).expect("commitments serialise");
    txn.open_table(COMMITMENTS)?
        .insert((key, uid), bytes.as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(uid: Option<&str>, reason: Option<u16>) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2"),
        ));
        if let Some(uid) = uid {
            obj.put(DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(uid),
            ));
        }
        if let Some(reason) = reason {
            obj.put(DataElement::new(
                tags::FAILURE_REASON,
                VR::US,
                PrimitiveValue::from(reason),
            ));
        }
        obj
    }

    fn report(
        transaction: Option<&str>,
        ok: Vec<InMemDicomObject>,
        failed: Vec<InMemDicomObject>,
    ) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        if let Some(t) = transaction {
            obj.put(DataElement::new(
                tags::TRANSACTION_UID,
                VR::UI,
                PrimitiveValue::from(t),
            ));
        }
        if !ok.is_empty() {
            obj.put(DataElement::new(
                tags::REFERENCED_SOP_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(ok),
            ));
        }
        if !failed.is_empty() {
            obj.put(DataElement::new(
                tags::FAILED_SOP_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(failed),
            ));
        }
        obj
    }

    #[test]
    fn reports_are_read_within_bounds_or_refused_with_a_status() {
        let many = (0..=REPORT_LIMIT)
            .map(|i| item(Some(&format!("1.2.{i}")), None))
            .collect::<Vec<_>>();
        let cases: Vec<(Option<u16>, InMemDicomObject, Result<Report, u16>)> = vec![
            (
                Some(1),
                report(Some("2.25.1"), vec![item(Some("1.2.3"), None)], vec![]),
                Ok(Report {
                    transaction_uid: "2.25.1".into(),
                    committed: vec!["1.2.3".into()],
                    failed: vec![],
                }),
            ),
            (
                Some(2),
                report(
                    Some("2.25.1"),
                    vec![item(Some("1.2.3"), None)],
                    vec![item(Some("1.2.4"), Some(0x0112)), item(Some("1.2.5"), None)],
                ),
                Ok(Report {
                    transaction_uid: "2.25.1".into(),
                    committed: vec!["1.2.3".into()],
                    failed: vec![("1.2.4".into(), 0x0112), ("1.2.5".into(), 0x0110)],
                }),
            ),
            (Some(3), report(Some("2.25.1"), vec![], vec![]), Err(0x0113)),
            (None, report(Some("2.25.1"), vec![], vec![]), Err(0x0113)),
            (Some(1), report(None, vec![], vec![]), Err(0x0115)),
            (
                Some(1),
                report(Some("2.25.1"), vec![item(None, None)], vec![]),
                Err(0x0115),
            ),
            (Some(1), report(Some("2.25.1"), many, vec![]), Err(0x0115)),
        ];
        for (i, (event_type, obj, expected)) in cases.into_iter().enumerate() {
            let got = parse_report(event_type, &obj).map_err(|r| r.status);
            assert_eq!(got, expected, "case {i}");
        }
    }

    #[test]
    fn requests_are_asked_again_later_and_later() {
        let t = Duration::from_secs(60);
        for (attempts, wait) in [(0, 60), (1, 60), (2, 120), (3, 240), (5, 960), (40, 960)] {
            assert_eq!(
                retry_after(t, attempts),
                Duration::from_secs(wait),
                "{attempts}"
            );
        }
    }
}
