//! Changes shared by every replica on one PostgreSQL, over `LISTEN`/`NOTIFY`.
//!
//! A change is delivered to this replica's own subscribers at once, as [`super::LocalBus`]
//! would, and also sent as a notification on [`CHANNEL`] naming this replica, so that the others
//! deliver it to theirs (and this one ignores its own). Notifications are transient: whenever the
//! listening connection is (re)established, subscribers get `Resync` and re-read, so a change
//! made while a replica was not listening is never a page left wrong.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use shared::backoff::Exponential;
use sqlx::postgres::PgListener;
use sqlx::AnyPool;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::local::{self, LocalBus};
use super::{Bus, Change};
use crate::server::db::Db;

/// The notification channel every replica listens on.
pub const CHANNEL: &str = "screening_changes";

/// PostgreSQL refuses larger payloads; a change is a few ids, far below it.
const MAX_PAYLOAD: usize = 8000;

/// Changes waiting to be sent as notifications before the publisher falls behind and the other
/// replicas are told to resync instead.
const OUTGOING: usize = 4096;

/// What goes over the channel: the change and which replica made it.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    from: Uuid,
    change: Change,
}

/// The change bus of one replica among several on one PostgreSQL.
pub struct PostgresBus {
    local: LocalBus,
    outgoing: mpsc::Sender<Change>,
    /// Set when a change could not be queued for the other replicas; they get `Resync` instead.
    overflowed: Arc<AtomicBool>,
    listener: JoinHandle<()>,
}

impl PostgresBus {
    /// Starts listening and publishing on the current tokio runtime. A bus that cannot reach the
    /// database yet keeps trying in the background with backoff; its subscribers still get this
    /// replica's own changes meanwhile.
    pub fn start(db: &Db, capacity: usize, replica: Uuid) -> PostgresBus {
        let local = LocalBus::new(capacity);
        let (outgoing, queued) = mpsc::channel(OUTGOING);
        let overflowed = Arc::new(AtomicBool::new(false));
        tokio::spawn(publish_all(
            db.pool.clone(),
            replica,
            queued,
            overflowed.clone(),
        ));
        let listener = tokio::spawn(listen(
            db.url().to_string(),
            replica,
            local.sender().clone(),
        ));
        PostgresBus {
            local,
            outgoing,
            overflowed,
            listener,
        }
    }
}

impl Bus for PostgresBus {
    fn publish(&self, change: Change) {
        self.local.publish(change.clone());
        if change == Change::Resync {
            return;
        }
        if self.outgoing.try_send(change).is_err() && !self.overflowed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "change bus: more than {OUTGOING} changes wait to be sent to the other replicas; \
                 they will be told to re-read instead"
            );
        }
    }

    fn subscribe(&self) -> BoxStream<'static, Change> {
        local::changes(self.local.sender().subscribe())
    }
}

impl Drop for PostgresBus {
    fn drop(&mut self) {
        // The publisher ends by itself once `outgoing` is gone, after sending what is queued.
        self.listener.abort();
    }
}

/// Sends each queued change as a notification, in the order published.
async fn publish_all(
    pool: AnyPool,
    replica: Uuid,
    mut queued: mpsc::Receiver<Change>,
    overflowed: Arc<AtomicBool>,
) {
    while let Some(change) = queued.recv().await {
        notify(&pool, replica, change).await;
        if overflowed.swap(false, Ordering::Relaxed) {
            notify(&pool, replica, Change::Resync).await;
        }
    }
}

async fn notify(pool: &AnyPool, replica: Uuid, change: Change) {
    let notice = Notice {
        from: replica,
        change,
    };
    let Ok(payload) = serde_json::to_string(&notice) else {
        return;
    };
    // `pg_notify` returns `void`, which the Any driver cannot decode: select a count instead.
    let sent = sqlx::query("SELECT COUNT(*) AS n FROM (SELECT pg_notify($1, $2)) AS sent")
        .bind(CHANNEL)
        .bind(payload)
        .execute(pool)
        .await;
    if let Err(e) = sent {
        tracing::warn!("change bus: could not tell the other replicas of a change: {e}");
    }
}

/// Listens on [`CHANNEL`] until aborted, reconnecting with backoff, and hands the other
/// replicas' changes to this replica's subscribers.
async fn listen(url: String, replica: Uuid, subscribers: broadcast::Sender<Change>) {
    let backoff = Exponential::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failures = 0;
    loop {
        match connect(&url).await {
            Ok(mut listener) => {
                failures = 0;
                // Whatever was published while nobody listened is unknown here: re-read.
                let _ = subscribers.send(Change::Resync);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => {
                            if let Some(change) = received(notification.payload(), replica) {
                                let _ = subscribers.send(change);
                            }
                        }
                        // The connection dropped and sqlx has listened again: re-read.
                        Ok(None) => {
                            tracing::warn!(
                                "change bus: the listening connection was lost and re-established"
                            );
                            let _ = subscribers.send(Change::Resync);
                        }
                        Err(e) => {
                            tracing::warn!("change bus: listening failed: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("change bus: cannot listen on {CHANNEL}: {e}"),
        }
        failures += 1;
        tokio::time::sleep(backoff.delay(failures)).await;
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The change a notification carries, unless it is this replica's own or unreadable.
fn received(payload: &str, replica: Uuid) -> Option<Change> {
    if payload.len() > MAX_PAYLOAD {
        tracing::warn!(
            "change bus: ignored a {}-byte notification on {CHANNEL}",
            payload.len()
        );
        return None;
    }
    match serde_json::from_str::<Notice>(payload) {
        Ok(notice) if notice.from == replica => None,
        Ok(notice) => Some(notice.change),
        Err(e) => {
            tracing::warn!("change bus: ignored an unreadable notification on {CHANNEL}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_from_others_are_taken_and_the_rest_ignored() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        let change = Change::Gateway {
            provider_id: 1,
            gateway_id: 2,
        };
        let notice = |from| {
            serde_json::to_string(&Notice {
                from,
                change: change.clone(),
            })
            .unwrap()
        };
        let padded = format!("{}{}", notice(other), " ".repeat(MAX_PAYLOAD));
        #[rustfmt::skip]
        let cases: [(&str, String, Option<Change>); 5] = [
            ("another replica's", notice(other), Some(change.clone())),
            ("our own", notice(me), None),
            ("not JSON", "NOTIFY".into(), None),
            ("an unknown kind", format!(r#"{{"from":"{other}","change":{{"kind":"drop_tables"}}}}"#), None),
            ("too large", padded, None),
        ];
        for (name, payload, expected) in cases {
            assert_eq!(received(&payload, me), expected, "{name}");
        }
    }
}
