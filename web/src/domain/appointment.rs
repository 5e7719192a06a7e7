//! The appointment state machine: `checked_in → sent_to_modality → in_progress → complete`, with
//! `cancelled` reachable from any unfinished state. Every status change in the app, whether a
//! clinician's click or a gateway's MPPS event, goes through [`AppointmentStatus::transition`] so
//! an out-of-order or replayed message cannot move an appointment backwards.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a participant is in today's screening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    CheckedIn,
    SentToModality,
    InProgress,
    Complete,
    Cancelled,
}

/// A refused status change, said in words for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an appointment cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: AppointmentStatus,
    pub to: AppointmentStatus,
}

/// A stored status string that is not one of ours (a corrupt row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown appointment status {0:?}")]
pub struct UnknownStatus(pub String);

impl AppointmentStatus {
    /// Every status, in the order of a normal appointment.
    pub const ALL: [AppointmentStatus; 5] = [
        AppointmentStatus::CheckedIn,
        AppointmentStatus::SentToModality,
        AppointmentStatus::InProgress,
        AppointmentStatus::Complete,
        AppointmentStatus::Cancelled,
    ];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::CheckedIn => "checked_in",
            AppointmentStatus::SentToModality => "sent_to_modality",
            AppointmentStatus::InProgress => "in_progress",
            AppointmentStatus::Complete => "complete",
            AppointmentStatus::Cancelled => "cancelled",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Result<AppointmentStatus, UnknownStatus> {
        AppointmentStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_string()))
    }

    /// What a clinician reads in the status tag.
    pub fn label(self) -> &'static str {
        match self {
            AppointmentStatus::CheckedIn => "Checked in",
            AppointmentStatus::SentToModality => "Sent to modality",
            AppointmentStatus::InProgress => "In progress",
            AppointmentStatus::Complete => "Complete",
            AppointmentStatus::Cancelled => "Cancelled",
        }
    }

    /// The NHS design system tag colour class for this status.
    pub fn tag_class(self) -> &'static str {
        match self {
            AppointmentStatus::CheckedIn => "nhsuk-tag nhsuk-tag--grey",
            AppointmentStatus::SentToModality => "nhsuk-tag nhsuk-tag--blue",
            AppointmentStatus::InProgress => "nhsuk-tag nhsuk-tag--yellow",
            AppointmentStatus::Complete => "nhsuk-tag nhsuk-tag--green",
            AppointmentStatus::Cancelled => "nhsuk-tag nhsuk-tag--red",
        }
    }

    /// Whether nothing can happen to the appointment any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AppointmentStatus::Complete | AppointmentStatus::Cancelled
        )
    }

    /// Whether `next` directly follows this status.
    pub fn can_become(self, next: AppointmentStatus) -> bool {
        use AppointmentStatus::*;
        matches!(
            (self, next),
            (CheckedIn, SentToModality)
                | (SentToModality, InProgress)
                | (InProgress, Complete)
                | (CheckedIn | SentToModality | InProgress, Cancelled)
        )
    }

    /// The status after a legal change, or why the change is refused.
    pub fn transition(
        self,
        next: AppointmentStatus,
    ) -> Result<AppointmentStatus, IllegalTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(IllegalTransition {
                from: self,
                to: next,
            })
        }
    }

    /// The legal steps from here to `target`, for events that report an end state when an
    /// intermediate report was lost (a modality that sends MPPS COMPLETED without IN PROGRESS).
    /// Empty when already there; an error when `target` cannot be reached.
    pub fn path_to(
        self,
        target: AppointmentStatus,
    ) -> Result<Vec<AppointmentStatus>, IllegalTransition> {
        let mut path = Vec::new();
        let mut at = self;
        while at != target {
            let next = if at.can_become(target) {
                target
            } else {
                match at {
                    AppointmentStatus::CheckedIn => AppointmentStatus::SentToModality,
                    AppointmentStatus::SentToModality => AppointmentStatus::InProgress,
                    _ => {
                        return Err(IllegalTransition {
                            from: self,
                            to: target,
                        })
                    }
                }
            };
            path.push(next);
            at = next;
        }
        Ok(path)
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AppointmentStatus::*;
    use super::*;

    #[test]
    fn the_happy_path_is_legal() {
        let end = CheckedIn
            .transition(SentToModality)
            .and_then(|s| s.transition(InProgress))
            .and_then(|s| s.transition(Complete));
        assert_eq!(end, Ok(Complete));
    }

    #[test]
    fn every_unfinished_status_can_be_cancelled() {
        for s in [CheckedIn, SentToModality, InProgress] {
            assert_eq!(s.transition(Cancelled), Ok(Cancelled));
        }
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let legal = [
            (CheckedIn, SentToModality),
            (SentToModality, InProgress),
            (InProgress, Complete),
            (CheckedIn, Cancelled),
            (SentToModality, Cancelled),
            (InProgress, Cancelled),
        ];
        for from in AppointmentStatus::ALL {
            for to in AppointmentStatus::ALL {
                let result = from.transition(to);
                if legal.contains(&(from, to)) {
                    assert_eq!(result, Ok(to));
                } else {
                    assert_eq!(
                        result,
                        Err(IllegalTransition { from, to }),
                        "{from} -> {to}"
                    );
                }
            }
        }
    }

    #[test]
    fn final_statuses_go_nowhere() {
        assert!(Complete.path_to(InProgress).is_err());
        assert!(Cancelled.path_to(Complete).is_err());
        assert!(Complete.transition(Cancelled).is_err());
    }

    #[test]
    fn a_missed_intermediate_status_is_filled_in() {
        assert_eq!(
            SentToModality.path_to(Complete),
            Ok(vec![InProgress, Complete])
        );
        assert_eq!(InProgress.path_to(InProgress), Ok(vec![]));
        assert_eq!(SentToModality.path_to(Cancelled), Ok(vec![Cancelled]));
    }

    #[test]
    fn stored_form_round_trips() {
        for s in AppointmentStatus::ALL {
            assert_eq!(AppointmentStatus::parse(s.as_str()), Ok(s));
        }
        assert!(AppointmentStatus::parse("booked").is_err());
    }
}
