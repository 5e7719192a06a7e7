//! What the pages show: plain data the server functions return and the browser renders. Times are
//! already formatted by the server (UTC), so the browser needs no clock or time-zone library.

use serde::{Deserialize, Serialize};

use crate::domain::{
    ActionStatus, AppointmentStatus, DeliveryState, Liveness, Role, WalkIn, WorklistMessage,
};

/// The signed-in user, for the header (administrators also get the admin menu).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedInUser {
    pub name: String,
    pub email: String,
    pub provider_name: String,
    pub role: Role,
}

/// One account on the users page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
    /// When it was disabled, if it is.
    pub disabled_at: Option<String>,
    /// The administrator looking at the page (who cannot disable themself).
    pub is_you: bool,
}

/// A gateway's settings as the administrator's form shows them (empty for a new gateway).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayForm {
    pub id: Option<i64>,
    pub name: String,
    pub relay_namespace: String,
    pub relay_endpoint: String,
    pub actions_hc: String,
    pub events_hc: String,
    pub key_name: String,
    pub key_env_var: String,
    /// One base64 public key per line.
    pub public_keys: String,
    pub message_type: String,
    pub destination: String,
    /// The message types offered, as (value, label).
    pub message_types: Vec<(String, String)>,
}

/// One clinic in the clinics list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicSummary {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub date: String,
    pub appointments: i64,
    /// The gateway the clinic's sends go through.
    pub gateway_id: Option<i64>,
}

/// One row of a clinic's appointment list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentRow {
    pub id: i64,
    pub time: String,
    pub participant_name: String,
    pub nhs_number: String,
    pub status: AppointmentStatus,
    /// Its worklist item's way to the modality, once sent.
    pub delivery: Option<Delivery>,
    /// Set when the appointment was made from an item added at the gateway.
    pub walk_in: Option<WalkIn>,
}

/// Where an appointment's worklist item is: its latest `worklist.create_item`, or the
/// `worklist.cancel_item` queued after it (a withdrawn, needless cancel does not count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The item itself, or (once cancelled) its removal from the worklist.
    pub message: WorklistMessage,
    pub state: DeliveryState,
    pub action_id: String,
    pub attempts: i64,
    /// When the next attempt is due (retrying only), formatted.
    pub next_attempt_at: Option<String>,
    /// Why the last attempt did not deliver it (retrying, refused, withdrawn).
    pub reason: Option<String>,
}

/// A clinic with its appointments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicDetail {
    pub clinic: ClinicSummary,
    pub appointments: Vec<AppointmentRow>,
    /// The banner when the clinic's gateway is offline ("… sends will be delivered when it
    /// returns").
    pub gateway_offline: Option<String>,
}

/// A C-STORE one of the provider's gateways refused that names no appointment (refused before
/// its data set was read, or for an accession number nobody booked): what the modality was told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedImage {
    pub id: i64,
    pub gateway_name: String,
    pub sop_instance_uid: Option<String>,
    pub accession_number: Option<String>,
    /// The modality that sent it.
    pub calling_ae_title: String,
    pub reason: String,
    /// When the gateway refused it, formatted.
    pub refused_at: String,
}

/// A study the provider's gateway reported whose accession number matches no appointment: the
/// patient details as the modality recorded them, to find whose it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmatchedStudy {
    pub study_id: i64,
    pub gateway_name: String,
    pub accession_number: Option<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub study_date: Option<String>,
    pub description: Option<String>,
    pub images: i64,
}

/// One line of an appointment's history: an action sent, an event received, a status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: String,
    pub text: String,
}

/// One received image: where it sits in the gallery and its thumbnail URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageCard {
    pub id: i64,
    /// `R` or `L` (or empty when the modality did not say).
    pub laterality: String,
    /// `CC`, `MLO`, …
    pub view: String,
    pub thumbnail_url: Option<String>,
    pub dose: DoseRow,
    /// What each hospital PACS the gateway forwards to has of it (empty: no forwarding, or no
    /// report yet).
    pub archive: Vec<ArchiveBadge>,
}

/// One PACS's report on one image (`image.archive_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveBadge {
    /// The PACS's AE title.
    pub destination: String,
    /// `forwarded`, `committed` or `failed`.
    pub state: String,
    pub reason: Option<String>,
}

/// Exposure and dose of one image, formatted for the dose table. The fields carry the wire's
/// names (`shared::wire::event::Dose`), so one concept has one name from the modality to the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseRow {
    pub kvp: String,
    pub exposure_uas: String,
    pub organ_dose_dgy: String,
    pub entrance_dose_mgy: String,
    pub body_part_thickness_mm: String,
    pub compression_force_n: String,
    /// Anode target material (`W`, `Mo`, `Rh`, …), when the modality said.
    pub anode: Option<String>,
    /// Filter material, when the modality said.
    pub filter: Option<String>,
}

impl DoseRow {
    /// The table's one "Anode/filter" cell: `W/Rh`, `W/` when only the anode is known, `–` when
    /// neither is.
    pub fn anode_over_filter(&self) -> String {
        match (&self.anode, &self.filter) {
            (None, None) => "–".into(),
            (a, f) => format!(
                "{}/{}",
                a.as_deref().unwrap_or_default(),
                f.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// Everything the appointment page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentDetail {
    pub id: i64,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub time: String,
    pub participant_name: String,
    pub nhs_number: String,
    pub birth_date: String,
    pub status: AppointmentStatus,
    pub accession_number: Option<String>,
    /// How many images the modality reported taken (MPPS COMPLETED), once it has.
    pub images_taken: Option<i64>,
    pub delivery: Option<Delivery>,
    /// Set when the appointment was made from an item added at the gateway; while unconfirmed,
    /// with the booked appointments it could be matched to.
    pub walk_in: Option<WalkInDetail>,
    pub timeline: Vec<TimelineEntry>,
    pub images: Vec<ImageCard>,
}

/// A walk-in's standing and, while unconfirmed, the booked appointments of its clinic day whose
/// worklist item has not reached the gateway (only those can take its place without the
/// modality being offered the participant twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkInDetail {
    pub state: WalkIn,
    pub candidates: Vec<MatchCandidate>,
}

/// A booked appointment a walk-in may be matched to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchCandidate {
    pub id: i64,
    pub clinic_name: String,
    pub time: String,
    pub participant_name: String,
    pub nhs_number: String,
}

/// A gateway and how its links look from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayRow {
    pub id: i64,
    pub name: String,
    pub namespace: String,
    pub actions_hc: String,
    pub events_hc: String,
    pub message_type: String,
    pub destination: String,
    /// Online, degraded or offline, from the evidence (`domain::liveness`).
    pub liveness: Liveness,
    /// What it rests on: the last contact, the relay's words, the failing checks.
    pub liveness_detail: String,
    /// The gateway's event queue from its last health report (depth, oldest, last error).
    pub event_queue: Option<String>,
    /// Its last health report's failing checks, "name: what was seen".
    pub failing_checks: Vec<String>,
    /// Whether this app's events listener for the gateway is connected to the relay.
    pub listener_connected: bool,
    pub listener_last_traffic: Option<String>,
    pub listener_error: Option<String>,
    pub last_health_at: Option<String>,
    pub last_health: Option<String>,
    pub pending: i64,
    pub sent: i64,
    pub confirmed: i64,
    pub failed: i64,
    /// Whether the viewer may probe it and change its settings (an administrator).
    pub may_manage: bool,
}

/// One message to a gateway: the outbox and audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    pub id: String,
    pub gateway_name: String,
    pub action_type: String,
    pub destination: String,
    pub appointment_id: Option<i64>,
    pub status: ActionStatus,
    pub attempts: i64,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub confirmed_at: Option<String>,
    pub failed_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    /// Whether the viewer may re-drive it now: an administrator, and a status that allows it.
    pub may_redrive: bool,
}

/// One action with what was sent and what came back, for support staff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDetail {
    pub row: ActionRow,
    /// The action envelope as queued (pretty JSON; the signature is added at each send). Only
    /// administrators get it: it carries patient data.
    pub payload: Option<String>,
    /// The gateway's last reply (pretty JSON), if any.
    pub reply: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anode_and_filter_share_one_cell() {
        let dose = |anode: Option<&str>, filter: Option<&str>| DoseRow {
            kvp: String::new(),
            exposure_uas: String::new(),
            organ_dose_dgy: String::new(),
            entrance_dose_mgy: String::new(),
            body_part_thickness_mm: String::new(),
            compression_force_n: String::new(),
            anode: anode.map(str::to_string),
            filter: filter.map(str::to_string),
        };
        let table = [
            (Some("W"), Some("Rh"), "W/Rh"),
            (Some("W"), None, "W/"),
            (None, Some("Al"), "/Al"),
            (None, None, "–"),
        ];
        for (anode, filter, cell) in table {
            assert_eq!(
                dose(anode, filter).anode_over_filter(),
                cell,
                "{anode:?} {filter:?}"
            );
        }
    }
}
