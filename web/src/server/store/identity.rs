//! Providers, clinician accounts (argon2 password hashes) and sign-in sessions.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use super::super::db::{col, now_ms, Db, StoreError};

/// How long a sign-in lasts.
const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

/// A signed-in clinician: who they are and whose records they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    pub email: String,
    pub provider_name: String,
}

/// Adds a provider, returning its id.
pub async fn create_provider(db: &Db, name: &str, ods_code: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("INSERT INTO providers (name, ods_code) VALUES ($1, $2) RETURNING id")
        .bind(name)
        .bind(ods_code)
        .fetch_one(&db.pool)
        .await?;
    col(&row, "id")
}

/// Adds a clinician with an argon2 hash of `password`.
pub async fn create_user(
    db: &Db,
    provider_id: i64,
    email: &str,
    name: &str,
    password: &str,
) -> Result<i64, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StoreError::Refused(format!("cannot hash password: {e}")))?
        .to_string();
    let row = sqlx::query(
        "INSERT INTO users (provider_id, email, name, password_hash) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(provider_id)
    .bind(email.trim().to_lowercase())
    .bind(name)
    .bind(hash)
    .fetch_one(&db.pool)
    .await?;
    col(&row, "id")
}

/// Checks an email and password; `None` when either is wrong (the caller must not say which).
pub async fn authenticate(
    db: &Db,
    email: &str,
    password: &str,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT u.id, u.password_hash FROM users u WHERE u.email = $1")
        .bind(email.trim().to_lowercase())
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let hash: String = col(&row, "password_hash")?;
    let parsed = PasswordHash::new(&hash).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Ok(None);
    }
    user_by_id(db, col(&row, "id")?).await.map(Some)
}

async fn user_by_id(db: &Db, id: i64) -> Result<User, StoreError> {
    let row = sqlx::query(
        "SELECT u.id, u.provider_id, u.name, u.email, p.name AS provider_name
         FROM users u JOIN providers p ON p.id = u.provider_id WHERE u.id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(User {
        id: col(&row, "id")?,
        provider_id: col(&row, "provider_id")?,
        name: col(&row, "name")?,
        email: col(&row, "email")?,
        provider_name: col(&row, "provider_name")?,
    })
}

/// Starts a session for a user; the token goes in the session cookie.
pub async fn create_session(db: &Db, user_id: i64) -> Result<String, StoreError> {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sessions (token, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&token)
    .bind(user_id)
    .bind(now)
    .bind(now + SESSION_MS)
    .execute(&db.pool)
    .await?;
    Ok(token)
}

/// The user of an unexpired session.
pub async fn user_for_session(db: &Db, token: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT user_id FROM sessions WHERE token = $1 AND expires_at > $2")
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(row) => user_by_id(db, col(&row, "user_id")?).await.map(Some),
        None => Ok(None),
    }
}

/// Ends a session (sign out).
pub async fn delete_session(db: &Db, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token = $1")
        .bind(token)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Whether any provider exists yet (first start seeds when none does).
pub async fn is_empty(db: &Db) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM providers")
        .fetch_one(&db.pool)
        .await?;
    Ok(col::<i64>(&row, "n")? == 0)
}
