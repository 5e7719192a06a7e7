//! The single-process bus: a tokio broadcast channel.

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use super::{Bus, Change};

/// Changes published in this process, for subscribers in this process.
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

    /// The sending side, for a bus that also delivers changes from elsewhere.
    pub(super) fn sender(&self) -> &broadcast::Sender<Change> {
        &self.sender
    }
}

impl Bus for LocalBus {
    fn publish(&self, change: Change) {
        // No subscribers is fine: nobody is looking.
        let _ = self.sender.send(change);
    }

    fn subscribe(&self) -> BoxStream<'static, Change> {
        changes(self.sender.subscribe())
    }
}

/// A broadcast receiver as a stream of changes: a subscriber that fell behind gets `Resync`.
pub(super) fn changes(rx: broadcast::Receiver<Change>) -> BoxStream<'static, Change> {
    stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(change) => Some((change, rx)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((Change::Resync, rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
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
}
