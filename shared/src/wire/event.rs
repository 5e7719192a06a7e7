//! Events: gateway→cloud reports on the events hybrid connection, and the cloud's replies.
//!
//! Each event has a unique `event_id`; the gateway's outbox retries until the cloud says
//! `accepted` or `duplicate`, so the cloud de-duplicates by id and delivery is exactly-once in
//! effect. The shape follows the NHS proof of concept seven (`event_type` + `data`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{open_object, Rejected, Verification, SCHEMA_VERSION};

/// One report from a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    pub event_id: Uuid,
    #[serde(with = "super::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// Which gateway sent it (its configured name), for the cloud's routing and logs.
    pub source_system: String,
    #[serde(flatten)]
    pub body: EventBody,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// The typed `event_type` + `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum EventBody {
    #[serde(rename = "mpps.status_update")]
    MppsStatusUpdate(MppsStatusUpdate),
    #[serde(rename = "study.image_received")]
    ImageReceived(Box<ImageReceived>),
    #[serde(rename = "image.validation_failed")]
    ImageValidationFailed(ImageValidationFailed),
    #[serde(rename = "image.archive_state")]
    ImageArchiveState(ImageArchiveState),
    #[serde(rename = "worklist.item_added_locally")]
    WorklistItemAddedLocally(LocalWorklistItem),
}

impl EventBody {
    /// The wire name (`event_type`).
    pub fn event_type(&self) -> &'static str {
        match self {
            EventBody::MppsStatusUpdate(_) => "mpps.status_update",
            EventBody::ImageReceived(_) => "study.image_received",
            EventBody::ImageValidationFailed(_) => "image.validation_failed",
            EventBody::ImageArchiveState(_) => "image.archive_state",
            EventBody::WorklistItemAddedLocally(_) => "worklist.item_added_locally",
        }
    }
}

/// The modality started, finished or abandoned the procedure step (MPPS N-CREATE / N-SET).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MppsStatusUpdate {
    /// The action that created the worklist item, when the MPPS could be linked to one.
    pub action_id: Option<Uuid>,
    pub accession_number: String,
    pub status: MppsStatus,
    pub mpps_instance_uid: String,
    /// The images the modality says it took (PS3.4 F.7: Performed Series Sequence → Referenced
    /// Image Sequence), when the step reports them — normally with COMPLETED — so the cloud can
    /// tell "4 taken, 3 received". Absent when the modality reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_taken: Option<Vec<ReferencedImage>>,
}

/// One image an MPPS step reports as taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencedImage {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_instance_uid: String,
}

/// Performed procedure step status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MppsStatus {
    #[serde(rename = "IN PROGRESS")]
    InProgress,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "DISCONTINUED")]
    Discontinued,
}

/// An image was stored on the gateway: its metadata and a small thumbnail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReceived {
    pub action_id: Option<Uuid>,
    pub participant: PatientSummary,
    pub study: StudySummary,
    pub series: SeriesSummary,
    pub image: ImageSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientSummary {
    /// DICOM PatientID (the NHS number for our own worklist items).
    pub patient_id: String,
    pub name: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudySummary {
    pub study_instance_uid: String,
    pub accession_number: Option<String>,
    pub date: Option<String>,
    pub time: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesSummary {
    pub series_instance_uid: String,
    pub number: Option<i64>,
    pub modality: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i64>,
    pub rows: Option<u32>,
    pub columns: Option<u32>,
    pub transfer_syntax_uid: String,
    /// `CC`, `MLO`… (ViewPosition).
    pub view: Option<String>,
    /// `R` or `L` (ImageLaterality).
    pub laterality: Option<String>,
    pub dose: Dose,
    #[serde(with = "super::rfc3339")]
    pub received_at: OffsetDateTime,
    /// `null` when no thumbnail could be made (an undecodable transfer syntax, a renderer that
    /// kept crashing on this object); the image is still stored.
    pub thumbnail: Option<Thumbnail>,
    /// Why `thumbnail` is `null`, in words. Absent (not `null`) when there is a thumbnail, so
    /// the event reads as before to a receiver that knows only the NHS fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_error: Option<String>,
}

/// Exposure and dose attributes a screening service audits; each absent when the modality omits it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dose {
    /// KVP (0018,0060).
    pub kvp: Option<f64>,
    /// ExposureInuAs (0018,1153), µAs.
    pub exposure_uas: Option<f64>,
    /// OrganDose (0040,0316), dGy.
    pub organ_dose_dgy: Option<f64>,
    /// EntranceDoseInmGy (0040,8302).
    pub entrance_dose_mgy: Option<f64>,
    /// AnodeTargetMaterial (0018,1191).
    pub anode: Option<String>,
    /// FilterMaterial (0018,7050).
    pub filter: Option<String>,
    /// BodyPartThickness (0018,11A0), mm.
    pub body_part_thickness_mm: Option<f64>,
    /// CompressionForce (0018,11A2), N.
    pub compression_force_n: Option<f64>,
}

/// A small preview, inlined so the cloud needs no second request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// `jpeg`.
    pub format: String,
    pub width: u32,
    pub height: u32,
    /// Base64 of the encoded image.
    pub data: String,
}

/// An object was refused (missing UIDs, unreadable data set…): the clinician should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageValidationFailed {
    pub action_id: Option<Uuid>,
    pub accession_number: Option<String>,
    pub sop_instance_uid: Option<String>,
    /// The AE title of the modality that sent it.
    pub calling_ae_title: String,
    pub reason: String,
}

/// What the hospital PACS (`PACS_FORWARD`) has of one stored image. Sent after the image's
/// `study.image_received`, once per change: `forwarded` when the PACS answered the C-STORE with
/// success, `committed` when it confirmed Storage Commitment for it (the image may now leave
/// the gateway), `failed` when it refused the image or its commitment (with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageArchiveState {
    pub action_id: Option<Uuid>,
    pub accession_number: Option<String>,
    pub study_instance_uid: String,
    pub sop_instance_uid: String,
    /// The destination's AE title, as configured in `PACS_FORWARD`.
    pub destination: String,
    pub state: ArchiveState,
    /// Why, for `failed`; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A worklist item a local operator added at the gateway (`gateway worklist add`), typically
/// while the cloud was unreachable. Queued in the same commit as the item and ahead of its MPPS
/// and image events (same accession), so the cloud can show it as a walk-in appointment to
/// confirm or to match to a booked one before the procedure's events arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalWorklistItem {
    pub accession_number: String,
    pub participant: super::action::Participant,
    pub scheduled: super::action::Scheduled,
    pub procedure: super::action::Procedure,
    /// The Study Instance UID the gateway generated for the item (its images carry it).
    pub study_instance_uid: String,
    /// The modality AE the item is offered to, when the operator named one.
    pub scheduled_station_ae: Option<String>,
}

/// Where an image stands at one hospital PACS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveState {
    Forwarded,
    Committed,
    Failed,
}

impl ArchiveState {
    /// The wire word, also what the cloud stores.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveState::Forwarded => "forwarded",
            ArchiveState::Committed => "committed",
            ArchiveState::Failed => "failed",
        }
    }
}

impl Event {
    /// A new event with a fresh id, stamped now.
    pub fn new(source_system: &str, body: EventBody) -> Event {
        Event {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::new_v4(),
            timestamp: OffsetDateTime::now_utc(),
            source_system: source_system.to_string(),
            body,
        }
    }

    /// Verifies and parses a received event. Unknown event types are refused with their id.
    pub fn open(text: &str, verification: &Verification) -> Result<Event, Rejected> {
        let (map, id) = open_object(text, "event_id", verification)?;
        let event_type = map
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("(none)")
            .to_string();
        serde_json::from_value(Value::Object(map)).map_err(|e| Rejected {
            id,
            reason: if e.to_string().contains("unknown variant") {
                format!("Unsupported event: {event_type}")
            } else {
                format!("malformed {event_type} event: {e}")
            },
        })
    }
}

/// The cloud's answer to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReply {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    pub event_id: Option<Uuid>,
    pub status: EventStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `accepted` and `duplicate` let the gateway drop the event from its outbox; `error` keeps it
/// (tried again later: the cloud could not record it now); `refused` says the cloud will never
/// take it as it is, so the gateway parks it for an operator (`gateway events list|retry|drop`)
/// instead of retrying for ever and holding back its accession's later events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Error,
    Refused,
}

impl EventReply {
    /// A reply to `event_id`.
    pub fn new(event_id: Uuid, status: EventStatus) -> EventReply {
        EventReply {
            schema_version: SCHEMA_VERSION,
            event_id: Some(event_id),
            status,
            message: None,
        }
    }

    /// The `error` reply for an event refused before it could be recorded.
    pub fn rejected(rejected: &Rejected) -> EventReply {
        EventReply {
            schema_version: SCHEMA_VERSION,
            event_id: rejected.id,
            status: EventStatus::Error,
            message: Some(rejected.reason.clone()),
        }
    }

    /// The `refused` reply for an event the cloud will never record as it is, with why.
    pub fn refused(event_id: Uuid, reason: &str) -> EventReply {
        EventReply {
            schema_version: SCHEMA_VERSION,
            event_id: Some(event_id),
            status: EventStatus::Refused,
            message: Some(reason.to_string()),
        }
    }

    /// Whether the gateway may forget the event.
    pub fn is_delivered(&self) -> bool {
        matches!(self.status, EventStatus::Accepted | EventStatus::Duplicate)
    }

    /// Verifies and parses a reply received by the gateway.
    pub fn open(text: &str, verification: &Verification) -> Result<EventReply, Rejected> {
        let (map, id) = open_object(text, "event_id", verification)?;
        serde_json::from_value(Value::Object(map)).map_err(|e| Rejected {
            id,
            reason: format!("malformed event reply: {e}"),
        })
    }

    /// Parses a reply as a gateway in NHS-compatible mode does. A signed reply is verified and
    /// read as [`EventReply::open`] does. An unsigned one — the NHS app signs nothing — counts
    /// only when its `status` is one of [`NHS_DELIVERED_STATUSES`] (`already_exists` reads as
    /// `duplicate`, the others as `accepted`); any other unsigned reply is refused, so a reply
    /// that is neither ours nor the NHS app's never makes the gateway drop an event.
    pub fn open_nhs_compatible(
        text: &str,
        verification: &Verification,
    ) -> Result<EventReply, Rejected> {
        let value: Value = serde_json::from_str(text).map_err(|e| Rejected {
            id: None,
            reason: format!("message is not valid JSON: {e}"),
        })?;
        let Some(map) = value.as_object().filter(|m| !m.contains_key("signature")) else {
            return EventReply::open(text, &Verification::strict(verification.keyring.clone()));
        };
        let id = map
            .get("event_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        let word = map.get("status").and_then(Value::as_str).unwrap_or("");
        let status = match word {
            "already_exists" => EventStatus::Duplicate,
            word if NHS_DELIVERED_STATUSES.contains(&word) => EventStatus::Accepted,
            _ => {
                return Err(Rejected {
                    id,
                    reason: format!(
                        "unsigned reply with status {word:?}: without a signature only the NHS \
                         app's {} count as delivered",
                        NHS_DELIVERED_STATUSES.join(", ")
                    ),
                })
            }
        };
        Ok(EventReply {
            schema_version: SCHEMA_VERSION,
            event_id: id,
            status,
            message: None,
        })
    }
}

/// What the NHS app's event listeners answer when they have recorded an event (proof of concept
/// seven: `updated` for an MPPS status, `created` or `already_exists` for an image).
pub const NHS_DELIVERED_STATUSES: [&str; 3] = ["updated", "created", "already_exists"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Keyring, SigningKey};
    use serde_json::json;

    #[test]
    fn poc_seven_mpps_shape_is_read() {
        let text = json!({
            "schema_version": 1,
            "event_id": Uuid::new_v4(),
            "timestamp": "2026-11-22T10:00:00Z",
            "event_type": "mpps.status_update",
            "source_system": "gateway-mwl",
            "data": {"action_id": null, "accession_number": "ACC1", "status": "IN PROGRESS", "mpps_instance_uid": "1.2.3"}
        })
        .to_string();
        let verification = Verification {
            keyring: Keyring::default(),
            accept_unsigned: true,
        };
        let event = Event::open(&text, &verification).unwrap();
        assert!(matches!(
            event.body,
            EventBody::MppsStatusUpdate(MppsStatusUpdate {
                status: MppsStatus::InProgress,
                ..
            })
        ));
    }

    #[test]
    fn thumbnail_error_is_absent_unless_there_is_one_and_optional_when_read() {
        let summary: ImageSummary = serde_json::from_value(json!({
            "sop_instance_uid": "1.2.3", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.2",
            "instance_number": null, "rows": null, "columns": null,
            "transfer_syntax_uid": "1.2.840.10008.1.2.1", "view": null, "laterality": null,
            "dose": {}, "received_at": "2026-11-22T10:00:00Z", "thumbnail": null
        }))
        .expect("an image summary without thumbnail_error reads");
        assert_eq!(summary.thumbnail_error, None);
        let value = serde_json::to_value(&summary).unwrap();
        assert!(value.get("thumbnail_error").is_none(), "{value}");
        assert_eq!(value["thumbnail"], Value::Null);
        let failed = ImageSummary {
            thumbnail_error: Some("the renderer crashed 3 times".into()),
            ..summary
        };
        let value = serde_json::to_value(&failed).unwrap();
        assert_eq!(value["thumbnail_error"], "the renderer crashed 3 times");
        assert_eq!(value["thumbnail"], Value::Null);
    }

    #[test]
    fn archive_states_read_as_the_cloud_expects() {
        let body = EventBody::ImageArchiveState(ImageArchiveState {
            action_id: None,
            accession_number: Some("ACC1".into()),
            study_instance_uid: "1.2.3".into(),
            sop_instance_uid: "1.2.3.4".into(),
            destination: "HOSPITAL_PACS".into(),
            state: ArchiveState::Failed,
            reason: Some("refused with 0xA700".into()),
        });
        let value = serde_json::to_value(Event::new("gw-1", body)).unwrap();
        assert_eq!(value["event_type"], "image.archive_state");
        assert_eq!(value["data"]["state"], "failed");
        assert_eq!(value["data"]["reason"], "refused with 0xA700");
        for state in [
            ArchiveState::Forwarded,
            ArchiveState::Committed,
            ArchiveState::Failed,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }

    #[test]
    fn events_round_trip_signed_and_unknown_types_are_named() {
        let key = SigningKey::generate();
        let verification = Verification::strict(Keyring::new(vec![key.public_key()]));
        let event = Event::new(
            "gw-1",
            EventBody::ImageValidationFailed(ImageValidationFailed {
                action_id: None,
                accession_number: Some("ACC1".into()),
                sop_instance_uid: None,
                calling_ae_title: "MODALITY".into(),
                reason: "no SOP Instance UID".into(),
            }),
        );
        assert_eq!(
            Event::open(&key.seal(&event), &verification).unwrap(),
            event
        );

        let mut value = serde_json::to_value(&event).unwrap();
        value["event_type"] = json!("study.exploded");
        let Value::Object(mut map) = value else {
            unreachable!()
        };
        key.sign(&mut map);
        let err = Event::open(&Value::Object(map).to_string(), &verification).unwrap_err();
        assert_eq!(err.reason, "Unsupported event: study.exploded");
        assert_eq!(err.id, Some(event.event_id));
    }

    #[test]
    fn nhs_compatible_replies_count_unsigned_only_in_the_nhs_vocabulary() {
        let key = SigningKey::generate();
        let ours = Verification::strict(Keyring::new(vec![key.public_key()]));
        let id = Uuid::new_v4();
        let open = |text: String| {
            EventReply::open_nhs_compatible(&text, &ours).map(|r| (r.event_id, r.status))
        };
        /// The reply's id and status, or a part of the refusal's reason.
        type Expected = Result<(Option<Uuid>, EventStatus), &'static str>;
        #[rustfmt::skip]
        let cases: Vec<(Value, Expected)> = vec![
            (json!({"status": "updated"}), Ok((None, EventStatus::Accepted))),
            (json!({"status": "created", "message_id": "x"}), Ok((None, EventStatus::Accepted))),
            (json!({"status": "already_exists"}), Ok((None, EventStatus::Duplicate))),
            (json!({"status": "updated", "event_id": id}), Ok((Some(id), EventStatus::Accepted))),
            // Our own vocabulary is not believed unsigned, nor are the NHS app's failures.
            (json!({"status": "accepted", "event_id": id}), Err("status \"accepted\"")),
            (json!({"status": "duplicate"}), Err("status \"duplicate\"")),
            (json!({"status": "action_not_found"}), Err("status \"action_not_found\"")),
            (json!({"status": "error", "message": "boom"}), Err("status \"error\"")),
            (json!({}), Err("status \"\"")),
            (json!(["updated"]), Err("not a JSON object")),
        ];
        for (reply, expected) in cases {
            let got = open(reply.to_string()).map_err(|e| e.reason);
            match (&got, &expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{reply}"),
                (Err(reason), Err(part)) => assert!(reason.contains(part), "{reply}: {reason}"),
                _ => panic!("{reply}: got {got:?}, expected {expected:?}"),
            }
        }
        // A signed reply is verified as in strict mode: ours counts, a forged one does not.
        let signed = key.seal(&EventReply::new(id, EventStatus::Accepted));
        assert_eq!(open(signed.clone()), Ok((Some(id), EventStatus::Accepted)));
        let forged = SigningKey::generate().seal(&EventReply::new(id, EventStatus::Accepted));
        assert!(open(forged).is_err());
        // In strict mode an NHS-style reply is not delivered.
        let nhs = json!({"status": "updated"}).to_string();
        assert!(EventReply::open(&nhs, &ours)
            .unwrap_err()
            .reason
            .contains("not signed"));
    }

    #[test]
    fn reply_delivery_rules() {
        let id = Uuid::new_v4();
        assert!(EventReply::new(id, EventStatus::Accepted).is_delivered());
        assert!(EventReply::new(id, EventStatus::Duplicate).is_delivered());
        assert!(!EventReply::new(id, EventStatus::Error).is_delivered());
        assert!(!EventReply::refused(id, "cannot be read").is_delivered());
    }
}
