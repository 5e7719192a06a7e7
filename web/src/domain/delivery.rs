//! Where an appointment's worklist item is on its way to the modality, as the clinician sees it:
//! read from its latest worklist message's status and attempts — the `worklist.create_item`, or,
//! once the appointment is cancelled, the `worklist.cancel_item` that takes the item off the
//! worklist (until that is delivered, the modality still offers the participant).

use serde::{Deserialize, Serialize};

use super::ActionStatus;

/// The delivery state shown beside an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Queued,
    /// An attempt is under way.
    Sending,
    /// An attempt failed for want of the gateway; another follows at the next attempt time.
    Retrying,
    /// The gateway has it: the modality can find the participant.
    Delivered,
    /// The gateway refused it (or the settings are wrong): a person must re-send.
    Refused,
    /// Taken back before delivery: the appointment was cancelled.
    Withdrawn,
}

/// Which worklist message a delivery state is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorklistMessage {
    /// `worklist.create_item`: the participant offered to the modality.
    Create,
    /// `worklist.cancel_item`: the participant taken off the worklist.
    Cancel,
    /// `fhir.order`: the ServiceRequest, delivered by the gateway to the hospital's system.
    FhirOrder,
    /// `fhir.revoke`: the ServiceRequest revoked there.
    FhirRevoke,
}

impl WorklistMessage {
    /// The stored/test name (`data-message`).
    pub const fn as_str(self) -> &'static str {
        match self {
            WorklistMessage::Create => "create",
            WorklistMessage::Cancel => "cancel",
            WorklistMessage::FhirOrder => "fhir_order",
            WorklistMessage::FhirRevoke => "fhir_revoke",
        }
    }
}

impl DeliveryState {
    /// From the action's status and how many attempts it has had.
    pub fn of(status: ActionStatus, attempts: i64) -> DeliveryState {
        match status {
            ActionStatus::Pending if attempts > 0 => DeliveryState::Retrying,
            ActionStatus::Pending => DeliveryState::Queued,
            ActionStatus::Sent => DeliveryState::Sending,
            ActionStatus::Confirmed => DeliveryState::Delivered,
            ActionStatus::Failed => DeliveryState::Refused,
            ActionStatus::Withdrawn => DeliveryState::Withdrawn,
        }
    }

    /// The stored/test name (`data-delivery`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sending => "sending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Refused => "refused",
            DeliveryState::Withdrawn => "withdrawn",
        }
    }

    /// What the clinician reads.
    pub const fn label(self) -> &'static str {
        match self {
            DeliveryState::Queued => "Queued for the modality",
            DeliveryState::Sending => "Sending to the modality",
            DeliveryState::Retrying => "Gateway not reachable, retrying",
            DeliveryState::Delivered => "On the modality worklist",
            DeliveryState::Refused => "Refused by the gateway",
            DeliveryState::Withdrawn => "Withdrawn before delivery",
        }
    }

    /// Whether the clinician may send it again now: after a refusal, or to skip a retry's wait.
    pub fn can_resend(self) -> bool {
        matches!(self, DeliveryState::Refused | DeliveryState::Retrying)
    }

    /// What the clinician reads when the message is `message`: the item, or its removal.
    pub const fn label_for(self, message: WorklistMessage) -> &'static str {
        match (message, self) {
            (WorklistMessage::Create, state) => state.label(),
            (WorklistMessage::Cancel, DeliveryState::Queued) => "Removal from the worklist queued",
            (WorklistMessage::Cancel, DeliveryState::Sending) => {
                "Removing from the modality worklist"
            }
            (WorklistMessage::Cancel, DeliveryState::Retrying) => {
                "Gateway not reachable, retrying the removal"
            }
            (WorklistMessage::Cancel, DeliveryState::Delivered) => {
                "Removed from the modality worklist"
            }
            (WorklistMessage::Cancel, DeliveryState::Refused) => "Removal refused by the gateway",
            (WorklistMessage::Cancel, DeliveryState::Withdrawn) => "Removal withdrawn",
            // What the hospital's system has, never "on the worklist": that is its business.
            (WorklistMessage::FhirOrder, DeliveryState::Queued) => "Order queued",
            (WorklistMessage::FhirOrder, DeliveryState::Sending) => {
                "Sending the order to the hospital system"
            }
            (WorklistMessage::FhirOrder, DeliveryState::Retrying) => {
                "Order not delivered yet, retrying"
            }
            (WorklistMessage::FhirOrder, DeliveryState::Delivered) => {
                "Order accepted by the hospital system"
            }
            (WorklistMessage::FhirOrder, DeliveryState::Refused) => "Order refused",
            (WorklistMessage::FhirOrder, DeliveryState::Withdrawn) => {
                "Order withdrawn before delivery"
            }
            (WorklistMessage::FhirRevoke, DeliveryState::Queued) => "Order cancellation queued",
            (WorklistMessage::FhirRevoke, DeliveryState::Sending) => "Cancelling the order",
            (WorklistMessage::FhirRevoke, DeliveryState::Retrying) => {
                "Order cancellation not delivered yet, retrying"
            }
            (WorklistMessage::FhirRevoke, DeliveryState::Delivered) => {
                "Order cancelled at the hospital system"
            }
            (WorklistMessage::FhirRevoke, DeliveryState::Refused) => "Order cancellation refused",
            (WorklistMessage::FhirRevoke, DeliveryState::Withdrawn) => {
                "Order cancellation withdrawn"
            }
        }
    }

    /// The NHS tag colour.
    pub const fn tag_class(self) -> &'static str {
        match self {
            DeliveryState::Queued | DeliveryState::Sending => "nhsuk-tag nhsuk-tag--grey",
            DeliveryState::Retrying => "nhsuk-tag nhsuk-tag--orange",
            DeliveryState::Delivered => "nhsuk-tag nhsuk-tag--green",
            DeliveryState::Refused => "nhsuk-tag nhsuk-tag--red",
            DeliveryState::Withdrawn => "nhsuk-tag nhsuk-tag--white",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_says_where_the_item_is() {
        let table = [
            (ActionStatus::Pending, 0, DeliveryState::Queued, false),
            (ActionStatus::Pending, 3, DeliveryState::Retrying, true),
            (ActionStatus::Sent, 1, DeliveryState::Sending, false),
            (ActionStatus::Confirmed, 2, DeliveryState::Delivered, false),
            (ActionStatus::Failed, 1, DeliveryState::Refused, true),
            (ActionStatus::Withdrawn, 1, DeliveryState::Withdrawn, false),
        ];
        for (status, attempts, state, resend) in table {
            assert_eq!(
                DeliveryState::of(status, attempts),
                state,
                "{status} {attempts}"
            );
            assert_eq!(state.can_resend(), resend, "{state:?}");
        }
    }

    #[test]
    fn a_removal_reads_as_a_removal() {
        for (state, words) in [
            (DeliveryState::Queued, "Removal from the worklist queued"),
            (
                DeliveryState::Retrying,
                "Gateway not reachable, retrying the removal",
            ),
            (
                DeliveryState::Delivered,
                "Removed from the modality worklist",
            ),
            (DeliveryState::Refused, "Removal refused by the gateway"),
        ] {
            assert_eq!(state.label_for(WorklistMessage::Cancel), words);
            assert_eq!(state.label_for(WorklistMessage::Create), state.label());
        }
    }
}
