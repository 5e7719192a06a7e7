//! The database: SQLite by default (a file under the state directory, created on first start) or
//! PostgreSQL when `DATABASE_URL=postgres://…`. One code path through sqlx's `Any` driver: every
//! query uses `$N` placeholders and basic column types (BIGINT epoch milliseconds for times),
//! which both databases read the same way; only the migrations differ by dialect.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::domain::{appointment::UnknownStatus, IllegalTransition, UnknownActionStatus};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database is behind the pool; only migrations and start-up pragmas care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A failed database operation, sorted by what the caller tells the user.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Absent, or belongs to another provider: both are a 404 so that ids reveal nothing.
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("{0}")]
    Refused(String),
    /// The user's role does not allow it (403): the page says so, and the record is not shown.
    #[error("{0}")]
    Forbidden(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<UnknownStatus> for StoreError {
    fn from(e: UnknownStatus) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<UnknownActionStatus> for StoreError {
    fn from(e: UnknownActionStatus) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

/// The connection pool and its backend.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Where it is, for the change bus's own listening connection. Holds the password: kept out
    /// of `Debug`.
    url: Arc<str>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Connects (creating a SQLite file if needed) and applies the migrations.
    pub async fn open(url: &str) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Refused(format!(
                "DATABASE_URL must start with sqlite: or postgres:, not {:?}",
                url.split(':').next().unwrap_or("")
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Writers from the request handlers, the outbox and the events listener
                        // wait for each other instead of failing with "database is locked".
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let db = Db {
            pool,
            backend,
            url: url.into(),
        };
        // On PostgreSQL sqlx holds an advisory lock while it migrates: replicas starting together
        // migrate once, the others wait and find nothing left to do.
        db.migrator().run(&db.pool).await?;
        Ok(db)
    }

    /// The migrations this build applies to its backend.
    pub fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Db {
    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a
    /// deferred transaction that read first and writes later fails outright, without waiting,
    /// when another connection wrote in between (WAL's busy snapshot).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// Reads a row column, naming the column in the error.
pub fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name).map_err(StoreError::from)
}

/// Now, in the stored form (Unix epoch milliseconds).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `HH:MM:SS` (UTC) of a stored time.
pub fn clock_time(ms: i64) -> String {
    let t = to_datetime(ms);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a stored time.
pub fn date_time(ms: i64) -> String {
    let t = to_datetime(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn to_datetime(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A SQLite URL for a file path, as the default database uses.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}
