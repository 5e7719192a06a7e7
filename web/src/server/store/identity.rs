//! Providers, user accounts (argon2 password hashes, a role, possibly disabled) and sign-in
//! sessions. A disabled account cannot sign in and its sessions are gone.

use super::super::db::{col, now_ms, Db, StoreError};
use super::super::passwords;
use crate::domain::Role;

/// How long a sign-in lasts.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

/// A signed-in user: who they are, whose records they may see and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub provider_id: i64,
    pub name: String,
    pub email: String,
    pub provider_name: String,
    pub role: Role,
}

impl User {
    /// Whether this user may manage users and gateways, read payloads and re-drive actions.
    pub fn administers(&self) -> bool {
        self.role.administers()
    }
}

/// One account as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled_at: Option<i64>,
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

/// The id of the provider with this name, if there is one.
pub async fn provider_named(db: &Db, name: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT id FROM providers WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| col(&r, "id")).transpose()
}

/// Adds an account with an argon2 hash of `password`. An e-mail address already in use is
/// refused by name.
pub async fn create_user(
    db: &Db,
    provider_id: i64,
    email: &str,
    name: &str,
    password: &str,
    role: Role,
) -> Result<i64, StoreError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || name.trim().is_empty() {
        return Err(StoreError::Refused(
            "an account needs a name and an e-mail address".into(),
        ));
    }
    if let Some(why) = passwords::weakness(password) {
        return Err(StoreError::Refused(why));
    }
    if has_account(db, &email).await? {
        return Err(StoreError::Refused(format!(
            "an account for {email} already exists"
        )));
    }
    let hash = passwords::hash(password).await?;
    let row = sqlx::query(
        "INSERT INTO users (provider_id, email, name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(provider_id)
    .bind(&email)
    .bind(name.trim())
    .bind(hash)
    .bind(role.as_str())
    .fetch_one(&db.pool)
    .await?;
    col(&row, "id")
}

/// Whether an account (enabled or not) has this e-mail address.
pub async fn has_account(db: &Db, email: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT id FROM users WHERE email = $1")
        .bind(email.trim().to_lowercase())
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.is_some())
}

/// Checks an email and password; `None` when either is wrong or the account is disabled (the
/// caller must not say which). Unknown and disabled accounts cost the same hash as known ones.
pub async fn authenticate(
    db: &Db,
    email: &str,
    password: &str,
) -> Result<Option<User>, StoreError> {
    let row =
        sqlx::query("SELECT id, password_hash FROM users WHERE email = $1 AND disabled_at IS NULL")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&db.pool)
            .await?;
    let (id, hash) = match row {
        Some(row) => (
            Some(col::<i64>(&row, "id")?),
            Some(col(&row, "password_hash")?),
        ),
        None => (None, None),
    };
    match (passwords::verify(password, hash).await?, id) {
        (true, Some(id)) => user_by_id(db, id).await.map(Some),
        _ => Ok(None),
    }
}

async fn user_by_id(db: &Db, id: i64) -> Result<User, StoreError> {
    let row = sqlx::query(
        "SELECT u.id, u.provider_id, u.name, u.email, u.role, p.name AS provider_name
         FROM users u JOIN providers p ON p.id = u.provider_id
         WHERE u.id = $1 AND u.disabled_at IS NULL",
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
        role: role(&row)?,
    })
}

fn role(row: &sqlx::any::AnyRow) -> Result<Role, StoreError> {
    col::<String>(row, "role")?
        .parse()
        .map_err(|e: crate::domain::UnknownRole| StoreError::Corrupt(e.to_string()))
}

/// The provider's accounts, by name.
pub async fn accounts(db: &Db, provider_id: i64) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, email, name, role, disabled_at FROM users WHERE provider_id = $1 ORDER BY name, id",
    )
    .bind(provider_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Account {
                id: col(r, "id")?,
                email: col(r, "email")?,
                name: col(r, "name")?,
                role: role(r)?,
                disabled_at: col(r, "disabled_at")?,
            })
        })
        .collect()
}

/// Disables or re-enables one of the provider's accounts; disabling ends its sessions at once.
/// An administrator cannot disable their own account (the provider would be left without one
/// who can undo it).
pub async fn set_disabled(
    db: &Db,
    by: &User,
    account_id: i64,
    disabled: bool,
) -> Result<(), StoreError> {
    if disabled && account_id == by.id {
        return Err(StoreError::Refused(
            "you cannot disable your own account".into(),
        ));
    }
    let mut tx = db.begin().await?;
    let done = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND provider_id = $3")
        .bind(disabled.then(now_ms))
        .bind(account_id)
        .bind(by.provider_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if disabled {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets a new password on one of the provider's accounts and ends its sessions, so that whoever
/// knew the old one is signed out.
pub async fn reset_password(
    db: &Db,
    provider_id: i64,
    account_id: i64,
    password: &str,
) -> Result<(), StoreError> {
    if let Some(why) = passwords::weakness(password) {
        return Err(StoreError::Refused(why));
    }
    let hash = passwords::hash(password).await?;
    let mut tx = db.begin().await?;
    let done =
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND provider_id = $3")
            .bind(hash)
            .bind(account_id)
            .bind(provider_id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
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

/// The user of an unexpired session of an enabled account.
pub async fn user_for_session(db: &Db, token: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT user_id FROM sessions WHERE token = $1 AND expires_at > $2")
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(row) => match user_by_id(db, col(&row, "user_id")?).await {
            Ok(user) => Ok(Some(user)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        },
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

/// Deletes expired sessions; returns how many.
pub async fn purge_sessions(db: &Db) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now_ms())
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Whether any provider exists yet (first start seeds when none does).
pub async fn is_empty(db: &Db) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM providers")
        .fetch_one(&db.pool)
        .await?;
    Ok(col::<i64>(&row, "n")? == 0)
}
