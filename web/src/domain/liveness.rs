//! Whether a gateway is there, from evidence rather than from our own side of the link: the last
//! time anything real came back from it (an event, a reply to any action, a probe's health
//! report), the last time the relay could not reach it, and what its last health report said.

use serde::{Deserialize, Serialize};

/// What the clinic and the gateways page are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liveness {
    /// Heard from recently, and its last health report was all right.
    Online,
    /// Heard from recently, but something is wrong: its failing checks, or our events listener.
    Degraded(String),
    /// Not reachable: since its last contact (`None`: never heard from).
    Offline { last_contact_ms: Option<i64> },
}

/// The evidence about one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub now_ms: i64,
    /// How often it is probed.
    pub probe_interval_ms: i64,
    pub last_contact_ms: Option<i64>,
    /// The last time a send to it found no listener or timed out.
    pub last_unreachable_ms: Option<i64>,
    /// The checks its last health report failed (empty: healthy, or no report yet).
    pub failing_checks: Vec<String>,
    /// Whether our events listener for it is connected to the relay.
    pub events_listener_connected: bool,
}

impl Liveness {
    /// Offline when the latest word from the relay is that it cannot reach the gateway, or when
    /// nothing has come back for three probe intervals (the probes themselves are stuck);
    /// otherwise online, or degraded with the reasons.
    pub fn assess(e: &Evidence) -> Liveness {
        let Some(contact) = e.last_contact_ms else {
            return Liveness::Offline {
                last_contact_ms: None,
            };
        };
        let unreachable_since_contact = e.last_unreachable_ms.is_some_and(|u| u > contact);
        let silent_too_long = e.now_ms - contact > 3 * e.probe_interval_ms;
        if unreachable_since_contact || silent_too_long {
            return Liveness::Offline {
                last_contact_ms: Some(contact),
            };
        }
        let mut reasons = Vec::new();
        if !e.failing_checks.is_empty() {
            reasons.push(format!("failing: {}", e.failing_checks.join(", ")));
        }
        if !e.events_listener_connected {
            reasons.push("this app's events listener is not connected".to_string());
        }
        if reasons.is_empty() {
            Liveness::Online
        } else {
            Liveness::Degraded(reasons.join("; "))
        }
    }

    pub fn is_offline(&self) -> bool {
        matches!(self, Liveness::Offline { .. })
    }

    /// The tag's word.
    pub fn label(&self) -> &'static str {
        match self {
            Liveness::Online => "Online",
            Liveness::Degraded(_) => "Degraded",
            Liveness::Offline { .. } => "Offline",
        }
    }

    /// The NHS tag colour.
    pub fn tag_class(&self) -> &'static str {
        match self {
            Liveness::Online => "nhsuk-tag nhsuk-tag--green",
            Liveness::Degraded(_) => "nhsuk-tag nhsuk-tag--yellow",
            Liveness::Offline { .. } => "nhsuk-tag nhsuk-tag--red",
        }
    }

    /// The stored and test-facing word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Liveness::Online => "online",
            Liveness::Degraded(_) => "degraded",
            Liveness::Offline { .. } => "offline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn evidence() -> Evidence {
        Evidence {
            now_ms: 100 * MIN,
            probe_interval_ms: MIN,
            last_contact_ms: Some(100 * MIN - 10_000),
            last_unreachable_ms: None,
            failing_checks: vec![],
            events_listener_connected: true,
        }
    }

    #[test]
    fn liveness_follows_the_evidence() {
        type Change = fn(&mut Evidence);
        let cases: [(&str, Change, &str); 8] = [
            ("heard from 10 s ago", |_| {}, "online"),
            ("never heard from", |e| e.last_contact_ms = None, "offline"),
            (
                "unreachable after the contact",
                |e| e.last_unreachable_ms = Some(e.now_ms - 1_000),
                "offline",
            ),
            (
                "unreachable before the contact",
                |e| e.last_unreachable_ms = Some(e.now_ms - 20_000),
                "online",
            ),
            (
                "silent for three intervals",
                |e| e.last_contact_ms = Some(e.now_ms - 3 * MIN - 1),
                "offline",
            ),
            (
                "silent for two intervals",
                |e| e.last_contact_ms = Some(e.now_ms - 2 * MIN),
                "online",
            ),
            (
                "a failing check",
                |e| e.failing_checks = vec!["disk".into()],
                "degraded",
            ),
            (
                "our listener down",
                |e| e.events_listener_connected = false,
                "degraded",
            ),
        ];
        for (what, change, expected) in cases {
            let mut e = evidence();
            change(&mut e);
            assert_eq!(Liveness::assess(&e).as_str(), expected, "{what}");
        }
        let mut e = evidence();
        e.last_unreachable_ms = Some(e.now_ms);
        assert_eq!(
            Liveness::assess(&e),
            Liveness::Offline {
                last_contact_ms: Some(100 * MIN - 10_000)
            },
            "offline since the last contact"
        );
    }
}
