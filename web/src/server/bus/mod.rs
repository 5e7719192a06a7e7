//! The change bus: every write that a browser should see (a status change, an image, an action's
//! progress) is announced here, and the SSE streams forward the announcements to the pages that
//! show the changed thing. Nothing polls the database.
//!
//! One replica on SQLite uses [`LocalBus`], a broadcast channel. Replicas on one PostgreSQL use
//! [`PostgresBus`]: each change also goes out as a `NOTIFY`, so a browser on any replica hears
//! what any replica did or received. A change names its row, never its contents: the page
//! re-reads it, so a notification can be small, and one that is lost costs a `resync`, never a
//! wrong page.

mod local;
mod postgres;

pub use local::LocalBus;
pub use postgres::PostgresBus;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::live_event::LiveEvent;

/// Something changed; pages re-read what they show when a change concerns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An appointment's status or timeline changed.
    Appointment {
        provider_id: i64,
        clinic_id: i64,
        appointment_id: i64,
    },
    /// An image arrived for an appointment.
    Image {
        provider_id: i64,
        clinic_id: i64,
        appointment_id: i64,
        image_id: i64,
    },
    /// An outbox row changed state.
    Action {
        provider_id: i64,
        action_id: String,
        appointment_id: Option<i64>,
    },
    /// A gateway's link or health changed.
    Gateway { provider_id: i64, gateway_id: i64 },
    /// This subscriber missed changes (it was too slow): re-read everything.
    Resync,
}

impl Change {
    /// The provider whose users may hear of this change (`None`: everyone subscribed).
    pub fn provider_id(&self) -> Option<i64> {
        match self {
            Change::Appointment { provider_id, .. }
            | Change::Image { provider_id, .. }
            | Change::Action { provider_id, .. }
            | Change::Gateway { provider_id, .. } => Some(*provider_id),
            Change::Resync => None,
        }
    }

    /// Which live-update event announces this change to the pages.
    pub fn live_event(&self) -> LiveEvent {
        match self {
            Change::Appointment { .. } => LiveEvent::Appointment,
            Change::Image { .. } => LiveEvent::Image,
            Change::Action { .. } => LiveEvent::Action,
            Change::Gateway { .. } => LiveEvent::Gateway,
            Change::Resync => LiveEvent::Resync,
        }
    }

    /// The SSE event name, one the pages listen for.
    pub fn event_name(&self) -> &'static str {
        self.live_event().name()
    }
}

/// Publishes changes and hands out subscriptions.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, change: Change);
    /// Every change published from now on, in order.
    fn subscribe(&self) -> BoxStream<'static, Change>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_the_wire_as_json() {
        let change = Change::Image {
            provider_id: 1,
            clinic_id: 2,
            appointment_id: 3,
            image_id: 4,
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
    }

    #[test]
    fn every_change_is_sent_under_a_name_the_pages_listen_for() {
        let changes = [
            Change::Appointment {
                provider_id: 1,
                clinic_id: 2,
                appointment_id: 3,
            },
            Change::Image {
                provider_id: 1,
                clinic_id: 2,
                appointment_id: 3,
                image_id: 4,
            },
            Change::Action {
                provider_id: 1,
                action_id: "a".into(),
                appointment_id: None,
            },
            Change::Gateway {
                provider_id: 1,
                gateway_id: 5,
            },
            Change::Resync,
        ];
        let listened: Vec<&str> = LiveEvent::ALL.iter().map(|e| e.name()).collect();
        let mut sent: Vec<&str> = changes.iter().map(Change::event_name).collect();
        for name in &sent {
            assert!(
                listened.contains(name),
                "the pages do not listen for {name:?}"
            );
        }
        // Each kind of change has its own name, and only `ready` (the stream's own hello) is
        // listened for without a change behind it.
        sent.push(LiveEvent::Ready.name());
        sent.sort_unstable();
        let mut all = listened.clone();
        all.sort_unstable();
        assert_eq!(sent, all);
    }
}
