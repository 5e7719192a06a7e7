//! Password hashing (argon2id, the crate's defaults) kept off the async executor: each hash takes
//! tens of milliseconds of CPU and 19 MiB, so it runs on the blocking pool, at most
//! [`AT_ONCE`] at a time. A burst of sign-ins then queues here instead of stalling every request
//! and SSE stream on the executor's threads, or exhausting memory.

use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use tokio::sync::Semaphore;

use super::db::StoreError;

/// Hashes computed at once; the rest wait their turn.
pub const AT_ONCE: usize = 2;

static HASHING: Semaphore = Semaphore::const_new(AT_ONCE);

/// The shortest password an administrator may set.
pub const MIN_LENGTH: usize = 12;

/// A PHC-format argon2id hash of `password`.
pub async fn hash(password: &str) -> Result<String, StoreError> {
    let password = password.to_string();
    off_executor(move || hash_now(&password)).await?
}

/// Whether `password` matches `hash`. With no hash (an unknown or disabled account) it checks
/// against a hash of a random password instead, so the answer takes the same time either way and
/// does not tell who has an account.
pub async fn verify(password: &str, hash: Option<String>) -> Result<bool, StoreError> {
    let password = password.to_string();
    off_executor(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (stand_in().to_string(), false),
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(real && matches)
    })
    .await?
}

/// Why a new password is refused, or `None`.
pub fn weakness(password: &str) -> Option<String> {
    (password.chars().count() < MIN_LENGTH)
        .then(|| format!("A password must be at least {MIN_LENGTH} characters"))
}

fn hash_now(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Refused(format!("cannot hash password: {e}")))
}

/// The hash an unknown account is checked against: made once, of a password nobody knows.
fn stand_in() -> &'static str {
    static STAND_IN: OnceLock<String> = OnceLock::new();
    STAND_IN.get_or_init(|| {
        let unknowable = uuid::Uuid::new_v4().to_string();
        hash_now(&unknowable).unwrap_or_default()
    })
}

async fn off_executor<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| StoreError::Refused(format!("password hashing stopped: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Refused(format!("password hashing failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_its_own_hashes_and_never_an_absent_one() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse battery", Some(h)).await.unwrap());
        assert!(!verify("correct horse battery", None).await.unwrap());
        assert!(!verify("", None).await.unwrap());
    }

    #[test]
    fn short_passwords_are_weak() {
        for (password, weak) in [("", true), ("elevenchars", true), ("twelve chars", false)] {
            assert_eq!(weakness(password).is_some(), weak, "{password:?}");
        }
    }
}
