//! Where a message to a gateway is in the outbox: `pending → sent → confirmed | failed`, with a
//! failed (or still waiting) one re-driven back to `pending` by a person, and `withdrawn` for an
//! action that must never be sent (a worklist item whose appointment was cancelled first). The actions pages, the
//! gateways page's queue counts and the store's SQL all read these names and rules from here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of one GatewayAction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting to be sent (first time, or again after an outage).
    Pending,
    /// On its way: the worker is waiting for the gateway's reply.
    Sent,
    /// The gateway replied with a success.
    Confirmed,
    /// The gateway refused it, or the settings are wrong: a person must look, then re-drive.
    Failed,
    /// Taken back before delivery (its appointment was cancelled): never sent again.
    Withdrawn,
}

/// A stored action status that is not one of ours (a corrupt row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action status {0:?}")]
pub struct UnknownActionStatus(pub String);

impl ActionStatus {
    /// Every state, in the order the gateways page counts them.
    pub const ALL: [ActionStatus; 5] = [
        ActionStatus::Pending,
        ActionStatus::Sent,
        ActionStatus::Confirmed,
        ActionStatus::Failed,
        ActionStatus::Withdrawn,
    ];

    /// The stored form, which is also what the pages show and the actions filter takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Sent => "sent",
            ActionStatus::Confirmed => "confirmed",
            ActionStatus::Failed => "failed",
            ActionStatus::Withdrawn => "withdrawn",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Result<ActionStatus, UnknownActionStatus> {
        ActionStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownActionStatus(text.to_string()))
    }

    /// Whether a person may put the action back in the queue for now: a failed one after fixing
    /// the cause, or a waiting one to skip its backoff. A sent one is in flight, a confirmed one
    /// is done, a withdrawn one must not reach the gateway.
    pub fn can_redrive(self) -> bool {
        matches!(self, ActionStatus::Pending | ActionStatus::Failed)
    }

    /// Whether the action is settled as far as the actions after it are concerned: the outbox
    /// sends an appointment's next action only once every earlier one is delivered or withdrawn.
    pub fn lets_later_actions_go(self) -> bool {
        matches!(self, ActionStatus::Confirmed | ActionStatus::Withdrawn)
    }

    /// The NHS design system tag colour class for this status.
    pub fn tag_class(self) -> &'static str {
        match self {
            ActionStatus::Pending => "nhsuk-tag nhsuk-tag--grey",
            ActionStatus::Sent => "nhsuk-tag nhsuk-tag--blue",
            ActionStatus::Confirmed => "nhsuk-tag nhsuk-tag--green",
            ActionStatus::Failed => "nhsuk-tag nhsuk-tag--red",
            ActionStatus::Withdrawn => "nhsuk-tag nhsuk-tag--white",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status equals its stored name, so a test or a filter can compare with `"pending"`.
impl PartialEq<str> for ActionStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ActionStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_and_failed_actions_can_be_redriven() {
        let table = [
            (ActionStatus::Pending, true),
            (ActionStatus::Sent, false),
            (ActionStatus::Confirmed, false),
            (ActionStatus::Failed, true),
            (ActionStatus::Withdrawn, false),
        ];
        for (status, expected) in table {
            assert_eq!(status.can_redrive(), expected, "{status}");
        }
    }

    #[test]
    fn stored_names_round_trip_and_match_serde() {
        for status in ActionStatus::ALL {
            assert_eq!(ActionStatus::parse(status.as_str()), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
            assert!(status == status.as_str());
        }
        assert_eq!(
            ActionStatus::parse("confirmed "),
            Err(UnknownActionStatus("confirmed ".into()))
        );
        assert_eq!(
            ActionStatus::parse(""),
            Err(UnknownActionStatus(String::new()))
        );
    }
}
