//! The change bus: every write that a browser should see (a status change, an image, an action's
//! progress) is announced here, and the SSE streams forward the announcements to the pages that
//! show the changed thing. Nothing polls the database. The [`Bus`] trait hides the in-process
//! broadcast channel so that a PostgreSQL LISTEN/NOTIFY implementation can serve several web
//! replicas later.

use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::live_event::LiveEvent;

/// Something changed; pages re-read what they show when a change concerns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The single-process bus: a tokio broadcast channel.
#[derive(Debug, Clone)]
pub struct LocalBus {
    sender: broadcast::Sender<Change>,
}

impl LocalBus {
    /// A bus that keeps up to `capacity` changes for a slow subscriber before it must resync.
    pub fn new(capacity: usize) -> LocalBus {
        LocalBus {
            sender: broadcast::channel(capacity).0,
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, change: Change) {
        // No subscribers is fine: nobody is looking.
        let _ = self.sender.send(change);
    }

    fn subscribe(&self) -> BoxStream<'static, Change> {
        stream::unfold(self.sender.subscribe(), |mut rx| async move {
            match rx.recv().await {
                Ok(change) => Some((change, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Change::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_changes_in_order_and_a_resync_when_they_lag() {
        let bus = LocalBus::new(2);
        let mut sub = bus.subscribe();
        let change = |id| Change::Gateway {
            provider_id: 1,
            gateway_id: id,
        };
        bus.publish(change(1));
        assert_eq!(sub.next().await, Some(change(1)));
        for id in 2..=5 {
            bus.publish(change(id));
        }
        assert_eq!(sub.next().await, Some(Change::Resync));
        assert_eq!(sub.next().await, Some(change(4)));
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
