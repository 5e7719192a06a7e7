//! Test fixtures: real databases (a SQLite file; a PostgreSQL server started for the test), the
//! relay emulator on loopback, and a fake gateway speaking the wire contract over it.
#![allow(dead_code)]

pub mod browser;
pub mod gateway;
pub mod http_client;
pub mod postgres;
pub mod real_gateway;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use shared::backoff::Exponential;
use shared::relay::Config;
use shared::wire::{Keyring, SigningKey};
use web::server::db::{sqlite_url, Db};
use web::server::outbox::RetryPolicy;
use web::server::seed::{self, SeedRelay, Seeded};
use web::server::startup::{self, Running, ServeOptions};
use web::server::state::AppState;

pub const NAMESPACE: &str = "test.servicebus.windows.net";
pub const KEY_NAME: &str = "root";
pub const KEY: &str = "root-key-0123456789";
pub const KEY_ENV: &str = "AZURE_RELAY_SHARED_ACCESS_KEY";
pub const ACTIONS: &str = "gateway-actions";
pub const EVENTS: &str = "gateway-events";

/// A database for one test: a SQLite file in a temporary directory, or a fresh PostgreSQL server.
pub enum TestDb {
    Sqlite(tempdir::TempDir),
    Postgres(postgres::PgServer),
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite(tempdir::TempDir::new("web-sqlite"))
    }

    pub fn postgres() -> TestDb {
        TestDb::Postgres(postgres::PgServer::start())
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => sqlite_url(&dir.path().join("web.db")),
            TestDb::Postgres(pg) => pg.url(),
        }
    }

    pub async fn open(&self) -> Db {
        Db::open(&self.url())
            .await
            .expect("open and migrate the database")
    }
}

/// A minimal temporary directory (removed on drop) so the tests need no extra crate.
pub mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(prefix: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The relay emulator with both providers' hybrid connections, and a third pair.
pub async fn emulator() -> Emulator {
    let config = EmulatorConfig::new(
        NAMESPACE,
        vec![Rule::parse(&format!("{KEY_NAME}={KEY}")).unwrap()],
        vec![
            ACTIONS.into(),
            EVENTS.into(),
            format!("{ACTIONS}-2"),
            format!("{EVENTS}-2"),
            // For gateways an administrator adds while the app runs.
            format!("{ACTIONS}-3"),
            format!("{EVENTS}-3"),
        ],
    );
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Emulator::start(config, any, Some(any)).await.unwrap()
}

/// A relay client config for the emulator.
pub fn relay_client(emulator: &Emulator) -> Config {
    let mut config = Config::new(NAMESPACE, KEY_NAME, KEY);
    config.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();
    config
}

/// The seed settings pointing at this emulator, trusting `gateway_key`.
pub fn seed_relay(emulator: &Emulator, gateway_key: &SigningKey) -> SeedRelay {
    SeedRelay {
        namespace: NAMESPACE.into(),
        endpoint: Some(format!("ws://{}", emulator.addr())),
        actions_hc: ACTIONS.into(),
        events_hc: EVENTS.into(),
        key_name: KEY_NAME.into(),
        key_env_var: KEY_ENV.into(),
        gateway_public_key: Some(gateway_key.public_key().to_base64()),
    }
}

/// Several replicas' world: a PostgreSQL server for the test, the relay emulator, and the demo
/// data (its gateways relayed through the emulator, trusting the gateway key), migrated and
/// seeded once. Each replica then opens its own pool on `pg.url()`.
pub struct SharedPostgres {
    pub pg: TestDb,
    pub db: Db,
    pub emulator: Emulator,
    pub seeded: Seeded,
    pub gateway_key: SigningKey,
    /// The key every replica signs with (`SIGNING_KEY`).
    pub web_key: SigningKey,
}

impl SharedPostgres {
    pub async fn start() -> SharedPostgres {
        let pg = TestDb::postgres();
        let emulator = emulator().await;
        let gateway_key = SigningKey::generate();
        let db = pg.open().await;
        let seeded = seed::seed(&db, &seed_relay(&emulator, &gateway_key))
            .await
            .expect("seed");
        SharedPostgres {
            pg,
            db,
            emulator,
            seeded,
            gateway_key,
            web_key: SigningKey::generate(),
        }
    }
}

/// A seeded app state whose relay key comes from a map, not the process environment.
pub async fn app_state(db: Db, relay: &SeedRelay) -> (AppState, Seeded, SigningKey) {
    let seeded = seed::seed(&db, relay).await.expect("seed");
    let web_key = SigningKey::generate();
    let mut state = AppState::new(db, web_key.clone(), Keyring::new(vec![]));
    let env: HashMap<String, String> = [(KEY_ENV.to_string(), KEY.to_string())].into();
    state.env = Arc::new(move |name| env.get(name).cloned());
    (state, seeded, web_key)
}

/// A quick retry policy for tests (the backoff arithmetic itself is unit-tested).
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        backoff: Exponential::new(Duration::from_millis(200), Duration::from_secs(1)),
        connect_timeout: Duration::from_secs(5),
        reply_timeout: Duration::from_secs(10),
    }
}

/// Starts the whole server on a free loopback port.
pub async fn serve(state: AppState, site_root: String) -> Running {
    startup::start(
        state,
        ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            // Every test server serves metrics too, on a port of its own.
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            site_root,
            retry: fast_retry(),
        },
    )
    .await
    .expect("start the web server")
}

/// Waits until both ends listen on the relay: the gateway for actions, the web app for events.
pub async fn both_ends_listening(emulator: &Emulator) {
    eventually("the gateway listens for actions", || async {
        emulator.listener_count(ACTIONS) > 0
    })
    .await;
    eventually("the web app listens for events", || async {
        emulator.listener_count(EVENTS) > 0
    })
    .await;
}

/// Waits (up to a generous limit, for a loaded machine) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(Duration::from_secs(60), what, check).await
}

/// Waits up to `limit` until `check` holds (a lease to run out, say).
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened within {limit:?}: {what}");
}

/// `n` more checked-in participants in the clinic (the seed makes ten a clinic): valid NHS
/// numbers in the 999 test range from `first_nhs` on (clear of the seed's), named `{label}{k}`,
/// booked every `every` minutes from `first` (minutes after midnight).
pub async fn book_participants(
    db: &Db,
    (provider_id, clinic_id): (i64, i64),
    n: usize,
    label: &str,
    first_nhs: usize,
    (first, every): (usize, usize),
) {
    use web::domain::NhsNumber;
    use web::server::store::appointments;
    for k in 0..n {
        let nhs = (0..)
            .find_map(|m| NhsNumber::with_check_digit(&format!("999{:06}", first_nhs + k * 50 + m)))
            .expect("a valid NHS number within 10 tries");
        let participant = appointments::create_participant(
            db,
            provider_id,
            &nhs,
            &format!("{label}{k}"),
            "Test",
            "1960-01-01",
        )
        .await
        .unwrap();
        let minutes = first + k * every;
        appointments::create(
            db,
            clinic_id,
            participant,
            &format!("{:02}:{:02}", minutes / 60, minutes % 60),
        )
        .await
        .unwrap();
    }
}

/// The seeded demo user `n` (0: the north provider's clinician, 1: the south's), signed in.
pub async fn demo_user(db: &Db, n: usize) -> web::server::store::identity::User {
    let (email, password) = seed::DEMO_USERS[n];
    web::server::store::identity::authenticate(db, email, password)
        .await
        .expect("sign-in query")
        .expect("the demo user signs in")
}

/// The password of every [`administrator`].
pub const ADMIN_PASSWORD: &str = "administrator-password";

/// The e-mail address of the provider's [`administrator`].
pub fn admin_email(provider_id: i64) -> String {
    format!("admin-{provider_id}@example.test")
}

/// A new administrator of the provider, signed in (the seed makes none: `web admin create` does).
pub async fn administrator(db: &Db, provider_id: i64) -> web::server::store::identity::User {
    use web::server::store::identity;
    let email = admin_email(provider_id);
    let password = ADMIN_PASSWORD;
    identity::create_user(
        db,
        provider_id,
        &email,
        "Test Administrator",
        password,
        web::domain::Role::Administrator,
    )
    .await
    .expect("create the administrator");
    identity::authenticate(db, &email, password)
        .await
        .expect("sign-in query")
        .expect("the administrator signs in")
}

/// The name of a provider's first gateway (the one its seeded clinic uses).
pub async fn first_gateway_name(db: &Db, provider_id: i64) -> String {
    web::server::store::gateways::for_provider(db, provider_id)
        .await
        .expect("gateways query")
        .remove(0)
        .name
}

/// Where most end-to-end tests start: the relay emulator, a SQLite database seeded to trust a
/// fresh gateway key, and the app state (not yet serving). Keep `db` bound for the test's
/// length: dropping it deletes the database.
pub struct Rig {
    pub db: TestDb,
    pub emulator: Emulator,
    pub gateway_key: SigningKey,
    pub state: AppState,
    pub seeded: Seeded,
    pub web_key: SigningKey,
}

impl Rig {
    pub async fn sqlite() -> Rig {
        let db = TestDb::sqlite();
        let emulator = emulator().await;
        let gateway_key = SigningKey::generate();
        let (state, seeded, web_key) =
            app_state(db.open().await, &seed_relay(&emulator, &gateway_key)).await;
        Rig {
            db,
            emulator,
            gateway_key,
            state,
            seeded,
            web_key,
        }
    }
}

/// An outbox claim, for tests that play the outbox worker's part by hand.
pub const CLAIM: web::server::store::actions::Claim<'static> = web::server::store::actions::Claim {
    replica: "test-replica",
    lease: Duration::from_secs(300),
};
