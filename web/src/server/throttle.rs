//! Sign-in throttling: failed sign-ins are counted per account and per client address over a
//! sliding window, in the database so that every replica counts the same attempts and a restart
//! forgets nothing. Over either limit, the password is not even checked until the window has
//! moved on: guessing is slowed to a handful of tries per account and per address per window.

use std::net::IpAddr;

use super::db::{col, now_ms, Db, StoreError};

/// How many failures each subject may have within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window_ms: i64,
    pub per_account: i64,
    pub per_address: i64,
}

impl Default for Limits {
    /// Five wrong passwords per account and twenty per address in 15 minutes.
    fn default() -> Limits {
        Limits {
            window_ms: 15 * 60 * 1000,
            per_account: 5,
            per_address: 20,
        }
    }
}

/// The subject a failure is counted under.
fn account(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn address(ip: IpAddr) -> String {
    format!("address:{ip}")
}

/// The subjects of one attempt, each with its limit.
fn subjects(limits: &Limits, email: &str, ip: Option<IpAddr>) -> Vec<(String, i64)> {
    let mut out = vec![(account(email), limits.per_account)];
    if let Some(ip) = ip {
        out.push((address(ip), limits.per_address));
    }
    out
}

/// How long until another attempt is allowed, when one is over its limit: the time until its
/// oldest counted failure leaves the window.
pub async fn wait_needed(
    db: &Db,
    limits: &Limits,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<Option<i64>, StoreError> {
    let now = now_ms();
    let mut wait = None;
    for (subject, limit) in subjects(limits, email, ip) {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM sign_in_failures
             WHERE subject = $1 AND at > $2",
        )
        .bind(&subject)
        .bind(now - limits.window_ms)
        .fetch_one(&db.pool)
        .await?;
        let n: i64 = col(&row, "n")?;
        let oldest: Option<i64> = col(&row, "oldest")?;
        if let (true, Some(oldest)) = (n >= limit, oldest) {
            let this = (oldest + limits.window_ms - now).max(1);
            wait = Some(wait.map_or(this, |w: i64| w.max(this)));
        }
    }
    Ok(wait)
}

/// Counts one failed attempt against the account and the address.
pub async fn record_failure(
    db: &Db,
    limits: &Limits,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<(), StoreError> {
    let now = now_ms();
    for (subject, _) in subjects(limits, email, ip) {
        sqlx::query("INSERT INTO sign_in_failures (subject, at) VALUES ($1, $2)")
            .bind(subject)
            .bind(now)
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

/// Forgets an account's failures once its owner has signed in (the address's stay counted).
pub async fn clear_account(db: &Db, email: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
        .bind(account(email))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Drops failures that have left the window; returns how many.
pub async fn purge(db: &Db, limits: &Limits) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sign_in_failures WHERE at <= $1")
        .bind(now_ms() - limits.window_ms)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// "15 minutes", "1 minute": a wait in words, rounded up to the minute.
pub fn in_words(wait_ms: i64) -> String {
    let minutes = (wait_ms.max(1) + 59_999) / 60_000;
    if minutes == 1 {
        "1 minute".into()
    } else {
        format!("{minutes} minutes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_counts_against_its_account_and_its_address() {
        let limits = Limits::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            subjects(&limits, " Clinician@North.Example ", Some(ip)),
            vec![
                ("account:clinician@north.example".to_string(), 5),
                ("address:192.0.2.7".to_string(), 20)
            ]
        );
        assert_eq!(subjects(&limits, "a@b", None).len(), 1);
    }

    #[test]
    fn waits_read_in_whole_minutes() {
        for (ms, words) in [
            (0, "1 minute"),
            (1, "1 minute"),
            (60_000, "1 minute"),
            (60_001, "2 minutes"),
            (15 * 60_000, "15 minutes"),
        ] {
            assert_eq!(in_words(ms), words, "{ms}");
        }
    }
}
