//! The names of the events on a page's live-update stream (SSE). The server names each event it
//! sends from here (`server::bus::Change::live_event`) and the browser listens for every name in
//! [`LiveEvent::ALL`] (`app::live`), so the two cannot drift apart. Compiled for both.

/// One kind of event on a live-update stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiveEvent {
    /// The stream is open; sent first and again after every reconnect, so the page re-reads what
    /// it may have missed while the stream was down.
    Ready,
    /// An appointment's status or timeline changed.
    Appointment,
    /// An image arrived for an appointment.
    Image,
    /// An outbox row changed state.
    Action,
    /// A gateway's link or health changed.
    Gateway,
    /// The subscriber missed changes: re-read everything.
    Resync,
}

impl LiveEvent {
    /// Every event a page listens for.
    pub const ALL: [LiveEvent; 6] = [
        LiveEvent::Ready,
        LiveEvent::Appointment,
        LiveEvent::Image,
        LiveEvent::Action,
        LiveEvent::Gateway,
        LiveEvent::Resync,
    ];

    /// The SSE `event:` name.
    pub const fn name(self) -> &'static str {
        match self {
            LiveEvent::Ready => "ready",
            LiveEvent::Appointment => "appointment",
            LiveEvent::Image => "image",
            LiveEvent::Action => "action",
            LiveEvent::Gateway => "gateway",
            LiveEvent::Resync => "resync",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> =
            LiveEvent::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), LiveEvent::ALL.len(), "{names:?}");
        assert!(names
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }
}
