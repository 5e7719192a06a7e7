//! Actions: cloud→gateway commands on the actions hybrid connection, and the gateway's replies.
//!
//! Field-compatible with the NHS production envelope (`schema_version`, `action_id`,
//! `action_type`, `timestamp`, `source_system`, `source_reference`, `parameters.worklist_item`), so
//! the NHS app can drive this gateway in NHS-compatible mode (`NHS_COMPATIBLE=true`). Unlike the
//! NHS app, an `exists` reply is a success: creating an item is idempotent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{open_object, Rejected, Verification, SCHEMA_VERSION};

/// One command to a gateway. `action_id` is the cloud's GatewayAction id: the gateway stores it on
/// the worklist item so that later events can refer back to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub action_id: Uuid,
    /// When the cloud sealed this attempt (re-stamped on every retry, like `expires_at`).
    pub timestamp: OffsetDateTime,
    pub source_system: String,
    /// The gateway this action is for (its `GATEWAY_NAME`), inside the signature so that a
    /// captured action cannot be replayed at another gateway. Absent in NHS-format actions.
    pub target_gateway: Option<String>,
    /// After this instant the gateway refuses the action, so a captured one cannot be replayed
    /// later. Absent in NHS-format actions.
    pub expires_at: Option<OffsetDateTime>,
    pub source_reference: Option<SourceReference>,
    pub command: Command,
}

/// What the cloud's records the action came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReference {
    pub appointment_id: String,
    pub participant_id: String,
}

/// The typed `action_type` + `parameters`.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `worklist.create_item`: put a participant on the modality worklist.
    CreateItem(WorklistItem),
    /// `worklist.update_status`: move an item to another scheduled-step status.
    UpdateStatus {
        accession_number: String,
        status: WorklistStatus,
    },
    /// `worklist.cancel_item`: take an item off the worklist (DISCONTINUED), with an optional reason.
    CancelItem {
        accession_number: String,
        reason: Option<String>,
    },
    /// `echo`: a liveness probe through the whole relay path; the parameters come back verbatim.
    Echo(Value),
    /// `health`: the gateway's self-checks.
    Health,
    /// `fhir.order` / `fhir.revoke`: a FHIR message the cloud wrote, for the gateway to deliver
    /// to an HTTP endpoint inside the hospital (an integration engine) on its own allow-list.
    DeliverFhir(FhirDelivery),
}

/// `parameters` of `fhir.order` and `fhir.revoke`. The gateway does not read the bundle: it
/// checks the destination against its allow-list and delivers the bytes as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FhirDelivery {
    /// The endpoint's URL (a FHIR base: the bundle is POSTed to it).
    pub destination: String,
    /// The appointment's accession number, which the ServiceRequest carries as its identifier.
    pub accession_number: String,
    #[serde(skip)]
    pub purpose: FhirPurpose,
    /// A FHIR R4 transaction `Bundle` (a `Patient` and its `ServiceRequest`).
    pub bundle: Value,
}

/// What a FHIR delivery asks of the hospital.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FhirPurpose {
    /// `fhir.order`: the participant is to be imaged (`ServiceRequest.status = active`).
    #[default]
    Order,
    /// `fhir.revoke`: the appointment was cancelled (`ServiceRequest.status = revoked`).
    Revoke,
}

impl Command {
    /// The wire name (`action_type`).
    pub fn action_type(&self) -> &'static str {
        match self {
            Command::CreateItem(_) => "worklist.create_item",
            Command::UpdateStatus { .. } => "worklist.update_status",
            Command::CancelItem { .. } => "worklist.cancel_item",
            Command::Echo(_) => "echo",
            Command::Health => "health",
            Command::DeliverFhir(d) => match d.purpose {
                FhirPurpose::Order => "fhir.order",
                FhirPurpose::Revoke => "fhir.revoke",
            },
        }
    }
}

/// `parameters.worklist_item` of a create: everything the modality worklist needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorklistItem {
    /// At most 16 characters (DICOM SH); the NHS app makes `ACC` + YYYYMMDD + 4 hex.
    pub accession_number: String,
    pub participant: Participant,
    pub scheduled: Scheduled,
    pub procedure: Procedure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Ten digits with a valid check digit; the DICOM PatientID.
    pub nhs_number: String,
    /// DICOM person name, `FAMILY^GIVEN`.
    pub name: String,
    /// YYYYMMDD.
    pub birth_date: String,
    /// `F`, `M` or `O`; the NHS app defaults to `F`.
    #[serde(default = "default_sex")]
    pub sex: String,
}

fn default_sex() -> String {
    "F".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    /// YYYYMMDD.
    pub date: String,
    /// HHMMSS.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Procedure {
    /// `MG` for mammography.
    pub modality: String,
    pub study_description: String,
}

/// DICOM scheduled procedure step status, as the worklist and MPPS use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorklistStatus {
    #[serde(rename = "SCHEDULED")]
    Scheduled,
    #[serde(rename = "IN PROGRESS")]
    InProgress,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "DISCONTINUED")]
    Discontinued,
}

/// The shape on the wire; `Action` is its checked, typed form.
#[derive(Serialize, Deserialize)]
struct RawAction {
    schema_version: u32,
    action_id: Uuid,
    action_type: String,
    #[serde(with = "super::rfc3339")]
    timestamp: OffsetDateTime,
    source_system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_gateway: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    expires_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_reference: Option<SourceReference>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    parameters: Value,
}

#[derive(Serialize, Deserialize)]
struct ItemParameters<T> {
    worklist_item: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StatusChange {
    accession_number: String,
    status: WorklistStatus,
}

#[derive(Serialize, Deserialize)]
struct AccessionOnly {
    accession_number: String,
}

impl Action {
    /// A new action with a fresh id, stamped now.
    pub fn new(source_system: &str, command: Command) -> Action {
        Action {
            action_id: Uuid::new_v4(),
            timestamp: OffsetDateTime::now_utc(),
            source_system: source_system.to_string(),
            target_gateway: None,
            expires_at: None,
            source_reference: None,
            command,
        }
    }

    /// Addresses the action to one gateway and limits how long it may be applied: stamped now,
    /// valid for `validity`.
    pub fn addressed(mut self, gateway: &str, validity: time::Duration) -> Action {
        self.timestamp = OffsetDateTime::now_utc();
        self.target_gateway = Some(gateway.to_string());
        self.expires_at = Some(self.timestamp + validity);
        self
    }

    /// A digest of what the action asks for — everything but `timestamp` and `expires_at`,
    /// which the cloud re-stamps on every attempt, and the signature over them — as the hex of
    /// SHA-256 over its canonical bytes. Two attempts at one action have the same digest; an
    /// action id reused for other content does not.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let Value::Object(mut map) = self.to_value() else {
            unreachable!("an action serialises to an object")
        };
        map.remove("timestamp");
        map.remove("expires_at");
        let digest = Sha256::digest(super::signature::canonical_bytes(&map));
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Verifies and parses a received action. The error carries the action id when it could be
    /// read, so the reply can still name the action it refuses.
    pub fn open(text: &str, verification: &Verification) -> Result<Action, Rejected> {
        let (map, id) = open_object(text, "action_id", verification)?;
        Action::from_map(map, id)
    }

    /// Parses an action the cloud wrote itself (its stored outbox payload, unsigned), so that
    /// each attempt can be re-addressed and re-stamped before it is sealed.
    pub fn from_stored(value: Value) -> Result<Action, Rejected> {
        let Value::Object(map) = value else {
            return Err(Rejected {
                id: None,
                reason: "a stored action is not a JSON object".into(),
            });
        };
        let id = map
            .get("action_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        Action::from_map(map, id)
    }

    fn from_map(map: Map<String, Value>, id: Option<Uuid>) -> Result<Action, Rejected> {
        let rejected = |reason: String| Rejected { id, reason };
        let raw: RawAction = serde_json::from_value(Value::Object(map))
            .map_err(|e| rejected(format!("malformed action envelope: {e}")))?;
        let action_type = raw.action_type.clone();
        let malformed =
            |e: serde_json::Error| rejected(format!("{action_type}: malformed parameters: {e}"));
        let command = match raw.action_type.as_str() {
            "worklist.create_item" => {
                let p: ItemParameters<WorklistItem> =
                    serde_json::from_value(raw.parameters).map_err(malformed)?;
                Command::CreateItem(p.worklist_item)
            }
            "worklist.update_status" => {
                let p: ItemParameters<StatusChange> =
                    serde_json::from_value(raw.parameters).map_err(malformed)?;
                Command::UpdateStatus {
                    accession_number: p.worklist_item.accession_number,
                    status: p.worklist_item.status,
                }
            }
            "worklist.cancel_item" => {
                let p: ItemParameters<AccessionOnly> =
                    serde_json::from_value(raw.parameters).map_err(malformed)?;
                Command::CancelItem {
                    accession_number: p.worklist_item.accession_number,
                    reason: p.reason,
                }
            }
            "echo" => Command::Echo(raw.parameters),
            "health" => Command::Health,
            kind @ ("fhir.order" | "fhir.revoke") => {
                let mut d: FhirDelivery =
                    serde_json::from_value(raw.parameters).map_err(malformed)?;
                d.purpose = if kind == "fhir.order" {
                    FhirPurpose::Order
                } else {
                    FhirPurpose::Revoke
                };
                Command::DeliverFhir(d)
            }
            other => return Err(rejected(format!("Unsupported action: {other}"))),
        };
        Ok(Action {
            action_id: raw.action_id,
            timestamp: raw.timestamp,
            source_system: raw.source_system,
            target_gateway: raw.target_gateway,
            expires_at: raw.expires_at,
            source_reference: raw.source_reference,
            command,
        })
    }

    /// The unsigned JSON object; sign it with [`super::SigningKey::seal`] or [`Action::to_json`].
    pub fn to_value(&self) -> Value {
        let parameters = match &self.command {
            Command::CreateItem(item) => to_value(ItemParameters {
                worklist_item: item,
                reason: None,
            }),
            Command::UpdateStatus {
                accession_number,
                status,
            } => to_value(ItemParameters {
                worklist_item: StatusChange {
                    accession_number: accession_number.clone(),
                    status: *status,
                },
                reason: None,
            }),
            Command::CancelItem {
                accession_number,
                reason,
            } => to_value(ItemParameters {
                worklist_item: AccessionOnly {
                    accession_number: accession_number.clone(),
                },
                reason: reason.clone(),
            }),
            Command::Echo(payload) => payload.clone(),
            Command::Health => Value::Null,
            Command::DeliverFhir(d) => to_value(d),
        };
        to_value(RawAction {
            schema_version: SCHEMA_VERSION,
            action_id: self.action_id,
            action_type: self.command.action_type().to_string(),
            timestamp: self.timestamp,
            source_system: self.source_system.clone(),
            target_gateway: self.target_gateway.clone(),
            expires_at: self.expires_at,
            source_reference: self.source_reference.clone(),
            parameters,
        })
    }
}

fn to_value<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("wire types serialise")
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// How much of a FHIR endpoint's answer a reply carries.
pub const FHIR_ANSWER_LIMIT: usize = 16 * 1024;

/// The gateway's answer to one action, sent back on the same rendezvous socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReply {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// The action answered; absent only when the request was too broken to read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<Uuid>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The item concerned, for worklist actions (the NHS gateway sends it on `updated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// `status` of a reply, with the data that status carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Created,
    /// The item was already there with the same content: a success, so retries are safe.
    Exists,
    Updated,
    Cancelled,
    Echo {
        payload: Value,
    },
    Ok {
        health: HealthReport,
    },
    /// A FHIR delivery the endpoint accepted (2xx): its HTTP status and answer (JSON when it
    /// answered JSON, else its text), cut to [`FHIR_ANSWER_LIMIT`] bytes.
    Delivered {
        http_status: u16,
        answer: Value,
    },
    /// A FHIR delivery the gateway holds durably but has not delivered yet: the cloud asks
    /// again later (the same action id), and is answered from the gateway's record.
    Queued {
        message: String,
    },
    Error {
        message: String,
    },
}

impl ActionReply {
    /// A reply to `action_id`.
    pub fn new(action_id: Uuid, outcome: Outcome) -> ActionReply {
        ActionReply {
            schema_version: SCHEMA_VERSION,
            action_id: Some(action_id),
            outcome,
            accession_number: None,
        }
    }

    /// The `error` reply for a message that was refused before it could be acted on.
    pub fn rejected(rejected: &Rejected) -> ActionReply {
        ActionReply {
            schema_version: SCHEMA_VERSION,
            action_id: rejected.id,
            outcome: Outcome::Error {
                message: rejected.reason.clone(),
            },
            accession_number: None,
        }
    }

    /// Whether the cloud should mark the action confirmed (everything but `error` and
    /// `queued`).
    pub fn is_success(&self) -> bool {
        !matches!(self.outcome, Outcome::Error { .. } | Outcome::Queued { .. })
    }

    /// Verifies and parses a reply received by the sender.
    pub fn open(text: &str, verification: &Verification) -> Result<ActionReply, Rejected> {
        let (map, id) = open_object(text, "action_id", verification)?;
        serde_json::from_value(Value::Object(map)).map_err(|e| Rejected {
            id,
            reason: format!("malformed action reply: {e}"),
        })
    }
}

/// The answer to `health`: every check by name, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// True only when every check is ok.
    pub healthy: bool,
    pub version: String,
    pub listener_uptime_seconds: u64,
    pub checks: BTreeMap<String, HealthCheck>,
}

/// One self-check: its verdict, what was seen in words, and any figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub ok: bool,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Keyring, SigningKey};
    use serde_json::json;

    /// The NHS production payload, as `_build_payload` writes it (no signature).
    fn nhs_payload() -> Value {
        json!({
            "schema_version": 1,
            "action_id": "5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7a",
            "action_type": "worklist.create_item",
            "timestamp": "2026-11-22T09:30:00.123456+00:00",
            "source_system": "manage-breast-screening",
            "source_reference": {"appointment_id": "a1", "participant_id": "p1"},
            "parameters": {"worklist_item": {
                "accession_number": "ACC20261122ab12",
                "participant": {"nhs_number": "9434765919", "name": "SMITH^JANE", "birth_date": "19700101", "sex": "F"},
                "scheduled": {"date": "20261122", "time": "093000"},
                "procedure": {"modality": "MG", "study_description": "Screening mammography"}
            }},
            "some_future_field": {"ignored": true}
        })
    }

    fn lenient() -> Verification {
        Verification {
            keyring: Keyring::default(),
            accept_unsigned: true,
        }
    }

    #[test]
    fn reads_the_nhs_production_envelope_when_unsigned_is_allowed() {
        let action = Action::open(&nhs_payload().to_string(), &lenient()).unwrap();
        let Command::CreateItem(item) = &action.command else {
            panic!("{action:?}")
        };
        assert_eq!(item.accession_number, "ACC20261122ab12");
        assert_eq!(item.participant.name, "SMITH^JANE");
        assert_eq!(action.source_reference.unwrap().appointment_id, "a1");
    }

    #[test]
    fn unsigned_is_refused_by_default_with_the_action_id() {
        let strict = Verification::strict(Keyring::default());
        let err = Action::open(&nhs_payload().to_string(), &strict).unwrap_err();
        assert_eq!(
            err.id.unwrap().to_string(),
            "5b0c7c8e-6a4c-4f7e-9a55-3f1f2d1c0b7a"
        );
        assert!(err.reason.contains("not signed"), "{}", err.reason);
    }

    #[test]
    fn every_command_round_trips_signed() {
        let key = SigningKey::generate();
        let verification = Verification::strict(Keyring::new(vec![key.public_key()]));
        let item: WorklistItem =
            serde_json::from_value(nhs_payload()["parameters"]["worklist_item"].clone()).unwrap();
        for command in [
            Command::CreateItem(item),
            Command::UpdateStatus {
                accession_number: "A".into(),
                status: WorklistStatus::InProgress,
            },
            Command::CancelItem {
                accession_number: "A".into(),
                reason: Some("participant left".into()),
            },
            Command::Echo(json!({"probe": 1})),
            Command::Health,
            Command::DeliverFhir(FhirDelivery {
                destination: "https://engine.trust.local/fhir".into(),
                accession_number: "A".into(),
                purpose: FhirPurpose::Order,
                bundle: json!({"resourceType": "Bundle", "type": "transaction"}),
            }),
            Command::DeliverFhir(FhirDelivery {
                destination: "https://engine.trust.local/fhir".into(),
                accession_number: "A".into(),
                purpose: FhirPurpose::Revoke,
                bundle: json!({"resourceType": "Bundle", "type": "transaction"}),
            }),
        ] {
            let action = Action::new("test", command);
            let text = key.seal(&action);
            let opened = Action::open(&text, &verification).unwrap();
            // Timestamps round-trip at full precision through RFC 3339.
            assert_eq!(opened, action);
        }
    }

    #[test]
    fn the_address_and_expiry_are_signed_and_round_trip() {
        let key = SigningKey::generate();
        let verification = Verification::strict(Keyring::new(vec![key.public_key()]));
        let action = Action::new("test", Command::Health)
            .addressed("gateway-north", time::Duration::minutes(10));
        assert_eq!(action.target_gateway.as_deref(), Some("gateway-north"));
        assert_eq!(
            action.expires_at.map(|e| e - action.timestamp),
            Some(time::Duration::minutes(10))
        );
        let text = key.seal(&action);
        assert_eq!(Action::open(&text, &verification).unwrap(), action);
        // Re-addressing a sealed action breaks its signature.
        let tampered = text.replace("gateway-north", "gateway-south");
        assert!(Action::open(&tampered, &verification).is_err());
        // NHS-format actions carry neither.
        let nhs = Action::open(&nhs_payload().to_string(), &lenient()).unwrap();
        assert_eq!((nhs.target_gateway, nhs.expires_at), (None, None));
    }

    #[test]
    fn the_content_digest_ignores_only_the_attempt_stamps() {
        let item: WorklistItem =
            serde_json::from_value(nhs_payload()["parameters"]["worklist_item"].clone()).unwrap();
        let first = Action::new("cloud", Command::CreateItem(item.clone()))
            .addressed("gw", time::Duration::minutes(5));
        let mut retry = first.clone();
        retry.timestamp += time::Duration::minutes(3);
        retry.expires_at = retry.expires_at.map(|e| e + time::Duration::minutes(3));
        assert_eq!(first.content_digest(), retry.content_digest());
        assert_eq!(first.content_digest().len(), 64);

        let mut other_item = item;
        other_item.participant.name = "JONES^ANN".into();
        let changes: [fn(&mut Action, &WorklistItem); 4] = [
            |a, other| a.command = Command::CreateItem(other.clone()),
            |a, _| a.target_gateway = Some("another-gw".into()),
            |a, _| a.source_system = "someone-else".into(),
            |a, _| a.source_reference = None,
        ];
        let mut with_reference = first.clone();
        with_reference.source_reference = Some(SourceReference {
            appointment_id: "a1".into(),
            participant_id: "p1".into(),
        });
        for (i, change) in changes.iter().enumerate() {
            let mut changed = with_reference.clone();
            change(&mut changed, &other_item);
            assert_ne!(
                changed.content_digest(),
                with_reference.content_digest(),
                "change {i}"
            );
        }
    }

    #[test]
    fn unknown_types_and_broken_parameters_are_clear_errors() {
        let mut payload = nhs_payload();
        payload["action_type"] = json!("worklist.explode");
        let err = Action::open(&payload.to_string(), &lenient()).unwrap_err();
        assert_eq!(err.reason, "Unsupported action: worklist.explode");
        assert!(err.id.is_some());

        let mut payload = nhs_payload();
        payload["parameters"]["worklist_item"]
            .as_object_mut()
            .unwrap()
            .remove("accession_number");
        let err = Action::open(&payload.to_string(), &lenient()).unwrap_err();
        assert!(err.reason.contains("accession_number"), "{}", err.reason);

        for junk in ["", "[]", "{", "null", "{\"schema_version\": 99}"] {
            assert!(Action::open(junk, &lenient()).is_err(), "{junk}");
        }
    }

    #[test]
    fn replies_match_the_nhs_shapes() {
        let id = Uuid::nil();
        let reply = ActionReply::new(id, Outcome::Exists);
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"schema_version": 1, "action_id": id, "status": "exists"})
        );
        assert!(reply.is_success());
        let nhs_error = json!({"status": "error", "message": "Unsupported action: x"}).to_string();
        let parsed: ActionReply = serde_json::from_str(&nhs_error).unwrap();
        assert!(!parsed.is_success());
    }
}
