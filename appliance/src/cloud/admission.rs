//! Whether an authentic action may be applied here and now. A valid signature only says the
//! cloud wrote the action; these checks stop a captured one being replayed at another gateway
//! (`target_gateway`) or later (`expires_at`), both inside the signature. Pure: the clock comes in
//! as an argument, so the rules are tested as a table.

use shared::wire::action::Action;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// How far this gateway's clock may be from the cloud's before an action's validity window is
/// misjudged: an action is accepted from `timestamp - CLOCK_SKEW` to `expires_at + CLOCK_SKEW`.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The longest validity window accepted (`expires_at - timestamp`). The cloud re-stamps every
/// attempt, so a window needs to cover one delivery, not an outage; the bound keeps the
/// applied-actions record bounded too.
pub const MAX_VALIDITY: Duration = Duration::hours(24);

/// How long an action without `expires_at` (NHS-compatible mode only) is remembered by the
/// applied-actions record; a repeat after that is applied again (idempotently).
pub const UNEXPIRING_RETENTION: Duration = Duration::days(30);

/// The rules for one gateway.
#[derive(Debug, Clone)]
pub struct Admission {
    /// This gateway's `GATEWAY_NAME`, which `target_gateway` must equal.
    pub gateway: String,
    /// `NHS_COMPATIBLE`: an action may leave out `target_gateway` and `expires_at` (the NHS app
    /// sends neither); those present are still checked.
    pub nhs_compatible: bool,
}

impl Admission {
    /// `Ok` with how long the applied-actions record must remember the action (until it can no
    /// longer be admitted, plus a margin for the clock being stepped back); `Err` with the reason
    /// for the signed `error` reply.
    pub fn check(&self, action: &Action, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
        let missing: Vec<&str> = [
            ("target_gateway", action.target_gateway.is_none()),
            ("expires_at", action.expires_at.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        if !missing.is_empty() && !self.nhs_compatible {
            return Err(format!(
                "action has no {}: this gateway only applies actions addressed to it with an \
                 expiry (NHS_COMPATIBLE is off)",
                missing.join(" and no ")
            ));
        }
        if let Some(target) = &action.target_gateway {
            if *target != self.gateway {
                return Err(format!(
                    "action is addressed to gateway {target:?}, and this is {:?} (GATEWAY_NAME)",
                    self.gateway
                ));
            }
        }
        let Some(expires_at) = action.expires_at else {
            return Ok(now + UNEXPIRING_RETENTION);
        };
        let sealed = action.timestamp;
        if expires_at < sealed {
            return Err(format!(
                "action expires ({}) before it was sealed ({})",
                rfc3339(expires_at),
                rfc3339(sealed)
            ));
        }
        if expires_at - sealed > MAX_VALIDITY {
            return Err(format!(
                "action is valid for {} min, longer than the {} h a gateway accepts",
                (expires_at - sealed).whole_minutes(),
                MAX_VALIDITY.whole_hours()
            ));
        }
        if sealed > now + CLOCK_SKEW {
            return Err(format!(
                "action was sealed at {}, later than this gateway's clock ({}) allows with its \
                 {} min clock skew tolerance: check both clocks (NTP)",
                rfc3339(sealed),
                rfc3339(now),
                CLOCK_SKEW.whole_minutes()
            ));
        }
        if now > expires_at + CLOCK_SKEW {
            return Err(format!(
                "action expired at {} (now {}, clock skew tolerance {} min)",
                rfc3339(expires_at),
                rfc3339(now),
                CLOCK_SKEW.whole_minutes()
            ));
        }
        Ok(expires_at + CLOCK_SKEW * 2)
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::action::Command;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 09:30:00 UTC);

    /// An action sealed `sealed` from now, valid for `valid`, addressed to `to`.
    fn action(to: Option<&str>, sealed: Duration, valid: Option<Duration>) -> Action {
        let mut action = Action::new("cloud", Command::Health);
        action.timestamp = NOW + sealed;
        action.target_gateway = to.map(Into::into);
        action.expires_at = valid.map(|v| NOW + sealed + v);
        action
    }

    #[test]
    fn only_addressed_unexpired_actions_are_admitted() {
        let m = Duration::minutes;
        let strict = Admission {
            gateway: "gw-north".into(),
            nhs_compatible: false,
        };
        let nhs = Admission {
            nhs_compatible: true,
            ..strict.clone()
        };
        let here = Some("gw-north");
        #[rustfmt::skip]
        let cases: Vec<(&str, &Admission, Action, Result<OffsetDateTime, &str>)> = vec![
            ("fresh", &strict, action(here, m(0), Some(m(10))), Ok(NOW + m(20))),
            ("sealed a little ahead of our clock", &strict, action(here, m(4), Some(m(10))), Ok(NOW + m(24))),
            ("sealed too far ahead", &strict, action(here, m(6), Some(m(10))), Err("later than this gateway's clock")),
            ("expired within the tolerance", &strict, action(here, m(-14), Some(m(10))), Ok(NOW + m(6))),
            ("expired", &strict, action(here, m(-16), Some(m(10))), Err("action expired at 2026-11-22T09:24:00Z")),
            ("at another gateway", &strict, action(Some("gw-south"), m(0), Some(m(10))), Err("addressed to gateway \"gw-south\"")),
            ("expires before it was sealed", &strict, action(here, m(0), Some(m(-1))), Err("before it was sealed")),
            ("valid for too long", &strict, action(here, m(0), Some(Duration::hours(25))), Err("1500 min, longer than the 24 h")),
            ("valid for the longest allowed", &strict, action(here, m(0), Some(Duration::hours(24))), Ok(NOW + Duration::hours(24) + m(10))),
            ("unaddressed, strict", &strict, action(None, m(0), None), Err("no target_gateway and no expires_at")),
            ("no expiry, strict", &strict, action(here, m(0), None), Err("no expires_at:")),
            ("no address, strict", &strict, action(None, m(0), Some(m(10))), Err("no target_gateway:")),
            ("NHS format: neither", &nhs, action(None, m(-600), None), Ok(NOW + UNEXPIRING_RETENTION)),
            ("NHS mode checks an address", &nhs, action(Some("gw-south"), m(0), None), Err("addressed to gateway")),
            ("NHS mode checks an expiry", &nhs, action(None, m(-16), Some(m(10))), Err("action expired")),
            ("NHS mode, both present", &nhs, action(here, m(0), Some(m(10))), Ok(NOW + m(20))),
        ];
        for (name, rules, action, expected) in cases {
            let got = rules.check(&action, NOW);
            match (&got, &expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{name}"),
                (Err(reason), Err(part)) => assert!(reason.contains(part), "{name}: {reason}"),
                _ => panic!("{name}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
