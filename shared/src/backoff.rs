//! Capped exponential backoff, the one retry schedule the outboxes and queues use: the gateway's
//! event courier, PACS forwarding, Storage Commitment requests and thumbnail retries, and the
//! cloud's action outbox. (Reconnecting a relay listener follows the Microsoft
//! SDKs' fixed schedule instead: [`crate::relay::Backoff`].)

use std::time::Duration;

/// Waits `base × 2^(attempts − 1)` after the `attempts`-th failure, never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exponential {
    pub base: Duration,
    pub cap: Duration,
}

impl Exponential {
    pub const fn new(base: Duration, cap: Duration) -> Exponential {
        Exponential { base, cap }
    }

    /// The wait after the `attempts`-th failed attempt (0 and 1 both give `base`).
    pub fn delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.clamp(1, 32) - 1;
        self.base
            .checked_mul(2u32.saturating_pow(exponent))
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_and_caps() {
        let table: [(u64, u64, u32, u64); 9] = [
            // base s, cap s, attempts, expected s
            (1, 60, 0, 1),
            (1, 60, 1, 1),
            (1, 60, 2, 2),
            (1, 60, 6, 32),
            (1, 60, 7, 60),
            (1, 60, u32::MAX, 60),
            (2, 300, 1, 2),
            (2, 300, 8, 256),
            (2, 300, 9, 300),
        ];
        for (base, cap, attempts, expected) in table {
            let backoff = Exponential::new(Duration::from_secs(base), Duration::from_secs(cap));
            assert_eq!(
                backoff.delay(attempts),
                Duration::from_secs(expected),
                "base {base} cap {cap} attempts {attempts}"
            );
        }
    }
}
