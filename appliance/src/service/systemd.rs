//! Talking to systemd: `READY=1` once the DICOM ports listen, `STATUS=` lines for `systemctl
//! status`, `STOPPING=1`, and the watchdog. The watchdog is fed only while every vital task is
//! alive, so a listener or sender that died (a panic, a bug that returned) gets the whole service
//! restarted by `Restart=on-failure` instead of leaving a gateway that looks up but does nothing.
//! Outside systemd (no `NOTIFY_SOCKET`) every notification is a no-op.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sd_notify::NotifyState;
use shared::relay::ListenerStatus;
use tokio::sync::watch;

/// The vital tasks of the running service, each known by name.
#[derive(Clone, Default)]
pub struct Liveness {
    parts: Arc<Mutex<Vec<Part>>>,
}

/// A registered task: its name, and a handle that dies with the task's [`Alive`].
type Part = (&'static str, Weak<()>);

/// Held by a vital task for as long as it runs; dropping it (the task returned, panicked or was
/// aborted) marks the task dead.
#[must_use = "the task counts as dead as soon as this is dropped"]
pub struct Alive(#[allow(dead_code)] Arc<()>);

impl Liveness {
    /// Registers a vital task named `name` (e.g. "storage listener").
    pub fn register(&self, name: &'static str) -> Alive {
        let token = Arc::new(());
        self.parts
            .lock()
            .expect("liveness lock")
            .push((name, Arc::downgrade(&token)));
        Alive(token)
    }

    /// The names of the registered tasks that are no longer running.
    pub fn dead(&self) -> Vec<&'static str> {
        self.parts
            .lock()
            .expect("liveness lock")
            .iter()
            .filter(|(_, token)| token.strong_count() == 0)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Tells systemd the service is up (`Type=notify`), with a one-line status.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the line `systemctl status gateway` shows.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// Tells systemd a clean shutdown has begun, so it does not count it as a failure.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// Keeps the `systemctl status` line saying whether the relay channel is up, as it changes:
/// `<summary>; relay connected`, or `…; relay not connected: <why>`.
pub async fn follow_relay(
    summary: String,
    mut listener: watch::Receiver<ListenerStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut shown = String::new();
    loop {
        let line = {
            let now = listener.borrow_and_update();
            if now.connected {
                format!("{summary}; relay connected")
            } else {
                let why = now.last_error.as_deref().unwrap_or("connecting");
                format!("{summary}; relay not connected: {why}")
            }
        };
        // The status changes with every message; systemd hears only what the operator sees.
        if line != shown {
            status(&line);
            shown = line;
        }
        tokio::select! {
            changed = listener.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Feeds the systemd watchdog every half period while every task in `liveness` is alive, until
/// `shutdown` turns true. Returns at once when systemd set no watchdog (`WatchdogSec=`).
pub async fn watchdog(liveness: Liveness, mut shutdown: watch::Receiver<bool>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!(
        "systemd watchdog: {} s; fed while the DICOM listeners, the actions listener and the event sender run",
        period.as_secs_f32()
    );
    let mut tick = tokio::time::interval((period / 2).max(Duration::from_millis(10)));
    let mut starving = false;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tick.tick() => {}
        }
        let dead = liveness.dead();
        if dead.is_empty() {
            notify(&[NotifyState::Watchdog]);
        } else if !starving {
            starving = true;
            let dead = dead.join(", ");
            tracing::error!(
                "{dead} stopped running: no longer feeding the systemd watchdog, so systemd restarts the gateway"
            );
            status(&format!("failing: {dead} stopped"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_dead_once_its_token_is_dropped() {
        let liveness = Liveness::default();
        let listener = liveness.register("storage listener");
        let sender = liveness.register("event sender");
        assert!(liveness.dead().is_empty());
        drop(sender);
        assert_eq!(liveness.dead(), vec!["event sender"]);
        drop(listener);
        assert_eq!(liveness.dead(), vec!["storage listener", "event sender"]);
    }

    #[tokio::test]
    async fn a_panicking_task_counts_as_dead() {
        let liveness = Liveness::default();
        let alive = liveness.register("worklist listener");
        let task = tokio::spawn(async move {
            let _alive = alive;
            panic!("boom");
        });
        assert!(task.await.is_err());
        assert_eq!(liveness.dead(), vec!["worklist listener"]);
    }
}
