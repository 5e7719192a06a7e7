//! Reconnect delays, as every Microsoft relay SDK uses them.

use std::time::Duration;

/// The delays between reconnect attempts: 0, 1, 2, 5, 10, then 30 s for ever; reset after a
/// connection that worked, so a single drop reconnects at once.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: usize,
}

const DELAYS_SECONDS: [u64; 6] = [0, 1, 2, 5, 10, 30];

impl Backoff {
    /// The delay before the next attempt; each call moves one step along the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let seconds = DELAYS_SECONDS[self.attempt.min(DELAYS_SECONDS.len() - 1)];
        self.attempt += 1;
        Duration::from_secs(seconds)
    }

    /// Call after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_sdk_schedule_and_resets() {
        let mut backoff = Backoff::default();
        let seconds: Vec<u64> = (0..8).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(seconds, [0, 1, 2, 5, 10, 30, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::ZERO);
    }
}
