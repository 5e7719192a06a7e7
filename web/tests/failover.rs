//! Three replicas of `web serve` (separate processes) on one PostgreSQL, the relay emulator and
//! the real gateway, with a clinician's browser on replica C: a send made on replica A and the
//! gateway's MPPS and image events — applied by whichever replica the relay handed them to —
//! show live on C. Then 30 sends spread over the replicas with replica A killed by SIGKILL
//! mid-way: every worklist item is confirmed and on the modality worklist exactly once, and every
//! event took effect once.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use shared::loopback::free_port;
use shared::wire::action::{ActionReply, Outcome};
use shared::wire::{Keyring, SigningKey, Verification};
use support::browser::{self, Script};
use support::http_client::{http, sign_in};
use support::real_gateway::{self, GatewaySettings};
use support::within;
use support::{ACTIONS, EVENTS, KEY, KEY_ENV};
use tokio::process::{Child, Command};
use web::domain::AppointmentStatus;
use web::server::db::Db;
use web::server::seed::DEMO_USERS;
use web::server::store::{actions, appointments, clinics, identity};

const SENDS: usize = 30;

/// One `web serve` process.
struct Replica {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
}

fn start_replica(
    name: &'static str,
    database_url: &str,
    web_key: &SigningKey,
    site: &str,
    dir: &Path,
    artifacts: &str,
) -> Replica {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let state_dir = dir.join(name);
    std::fs::create_dir_all(&state_dir).unwrap();
    let log = std::fs::File::create(Path::new(artifacts).join(format!("web-{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_web"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("WEB_ADDR", addr.to_string())
        .env("WEB_STATE_DIR", &state_dir)
        .env("WEB_SITE_ROOT", site)
        .env("WEB_SECURE_COOKIES", "false")
        .env("SIGNING_KEY", web_key.to_base64())
        .env(KEY_ENV, KEY)
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start web serve");
    Replica { name, addr, child }
}

/// Presses "Send to modality" on a replica (the page's server function); the action's id.
async fn send(replica: &Replica, cookie: &str, appointment_id: i64) -> String {
    let reply = http(
        replica.addr,
        "POST",
        "/api/send_to_modality",
        Some(cookie),
        Some(&format!("appointment_id={appointment_id}")),
        true,
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "send on replica {}: {}",
        replica.name, reply.body
    );
    serde_json::from_str(&reply.body).expect("the action id")
}

/// The replica id a `web serve` printed at start-up (its outbox claims carry it).
async fn replica_id(artifacts: &str, name: &str) -> String {
    let log = Path::new(artifacts).join(format!("web-{name}.log"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(id) = text
            .split("(replica ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
        {
            return id.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no start-up line in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which replica claimed an action, once one has.
async fn claimed(db: &Db, id: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let claimant: Option<Option<String>> = sqlx::query_scalar(
            "SELECT claimed_by FROM gateway_actions WHERE id = $1 AND status = 'sent'",
        )
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        if let Some(Some(claimant)) = claimant {
            return claimant;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "action {id} never claimed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends a signal to a child process (`STOP` pauses it, `CONT` resumes it).
async fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("the process is running").to_string();
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(&pid)
        .status()
        .await
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_killed_mid_way_deliver_every_action_and_event_once() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let (gateway_bin, python, peer_py) = real_gateway::tools();
    let artifacts = browser::artifacts("web-failover");
    std::fs::create_dir_all(&artifacts).unwrap();
    let dir = support::tempdir::TempDir::new("web-failover");

    let support::SharedPostgres {
        pg,
        db,
        emulator,
        seeded,
        gateway_key,
        web_key,
    } = support::SharedPostgres::start().await;
    let url = pg.url();
    let user = identity::authenticate(&db, DEMO_USERS[0].0, DEMO_USERS[0].1)
        .await
        .unwrap()
        .unwrap();
    let clinic_id = seeded.clinic_ids[0];
    support::book_participants(
        &db,
        (user.provider_id, clinic_id),
        SENDS - 10,
        "FAILOVER",
        800_000,
        (12 * 60, 5),
    )
    .await;
    let appointment_ids: Vec<i64> = clinics::detail(&db, user.provider_id, clinic_id)
        .await
        .unwrap()
        .appointments
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(appointment_ids.len(), SENDS);

    let mut replicas: Vec<Replica> = ["a", "b", "c"]
        .into_iter()
        .map(|name| start_replica(name, &url, &web_key, &site, dir.path(), &artifacts))
        .collect();
    for replica in &replicas {
        let addr = replica.addr;
        within(
            Duration::from_secs(90),
            "every replica ready",
            || async move {
                // Not listening yet is not ready (the raw client panics on a refused connection).
                tokio::net::TcpStream::connect(addr).await.is_ok()
                    && http(addr, "GET", "/readyz", None, None, true).await.status == 200
            },
        )
        .await;
    }
    let gateway_name = web::server::store::gateways::by_id(&db, seeded.gateway_ids[0])
        .await
        .unwrap()
        .name;
    let settings = GatewaySettings::on_emulator(
        gateway_bin,
        dir.path().join("gateway"),
        gateway_name,
        &emulator,
        gateway_key.clone(),
        web_key.clone(),
        Path::new(&artifacts).join("gateway.log"),
    );
    std::fs::create_dir_all(&settings.state_dir).unwrap();
    let gateway = settings.start();
    within(
        Duration::from_secs(60),
        "the gateway and all three replicas listen",
        || async { emulator.listener_count(ACTIONS) == 1 && emulator.listener_count(EVENTS) == 3 },
    )
    .await;

    let cookies: Vec<String> = {
        let mut out = Vec::new();
        for replica in &replicas {
            out.push(sign_in(replica.addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await);
        }
        out
    };
    let mut script = Script::spawn(
        &crate_dir,
        "e2e/replicas.mjs",
        &[
            ("BASE_URL", format!("http://{}", replicas[2].addr)),
            ("USER1", DEMO_USERS[0].0.to_string()),
            ("PASS1", DEMO_USERS[0].1.to_string()),
            ("CLINIC_ID", clinic_id.to_string()),
            ("ARTIFACTS", artifacts.clone()),
        ],
    );
    script.step("watching").await;

    // A send on A, seen live on C.
    let first = appointment_ids[0];
    let mut sent: Vec<String> = vec![send(&replicas[0], &cookies[0], first).await];
    script
        .tell(&format!("GATEWAY status {first} sent_to_modality"))
        .await;
    script
        .step(&format!("status {first} sent_to_modality"))
        .await;
    within(
        Duration::from_secs(60),
        "the first item confirmed",
        || async {
            actions::get(&db, user.provider_id, &sent[0])
                .await
                .unwrap()
                .status
                == "confirmed"
        },
    )
    .await;

    // The modality starts the procedure and sends two images: events to whichever replica.
    let detail = appointments::detail(&db, user.provider_id, first)
        .await
        .unwrap();
    let accession = detail.accession_number.clone().unwrap();
    let modality = real_gateway::Modality {
        python: python.clone(),
        peer: peer_py.clone(),
        mwl_port: settings.mwl_port,
        pacs_port: settings.pacs_port,
    };
    let mpps_uid = modality.start_procedure(&accession).await;
    script
        .tell(&format!("GATEWAY status {first} in_progress"))
        .await;
    script.step(&format!("status {first} in_progress")).await;
    let images = modality
        .mammograms(
            &dir.path().join("modality"),
            2,
            (128, 104),
            &accession,
            &detail.nhs_number.replace(' ', ""),
        )
        .await;
    for file in &images {
        modality.store(file).await;
    }
    script.tell(&format!("GATEWAY images {first} 2")).await;
    script.step(&format!("images {first} 2")).await;

    // 29 more sends round the replicas. Mid-way, A is killed while it holds an action: the
    // gateway is paused (SIGSTOP) so that A's send hangs, A is SIGKILLed once it has claimed the
    // action, and the gateway resumes. The action stays claimed by a dead replica until its lease
    // runs out; then B or C takes it over and resends it.
    let replica_a = replica_id(&artifacts, "a").await;
    let mut taken_from_a = None;
    let mut alive: Vec<usize> = vec![0, 1, 2];
    let mut n = 1;
    while n < SENDS {
        let appointment = appointment_ids[n];
        if n >= SENDS / 2 && taken_from_a.is_none() {
            assert!(
                n < SENDS / 2 + 3,
                "replica A never claimed its own send first"
            );
            signal(&gateway, "STOP").await;
            let id = send(&replicas[0], &cookies[0], appointment).await;
            let claimant = claimed(&db, &id).await;
            if claimant == replica_a {
                replicas[0].child.start_kill().unwrap();
                replicas[0].child.wait().await.unwrap();
                alive = vec![1, 2];
                taken_from_a = Some(id.clone());
                eprintln!("replica a killed holding action {id} (send {})", n + 1);
            }
            signal(&gateway, "CONT").await;
            sent.push(id);
        } else {
            let on = alive[n % alive.len()];
            sent.push(send(&replicas[on], &cookies[on], appointment).await);
        }
        n += 1;
    }
    let taken_from_a = taken_from_a.expect("A was killed holding an action");
    within(
        Duration::from_secs(30),
        "A's listener gone from the relay",
        || async { emulator.listener_count(EVENTS) == 2 },
    )
    .await;
    // The procedure completes after A is gone: the event lands on B or C, and C shows it.
    modality.end_procedure(&mpps_uid, "COMPLETED").await;
    script
        .tell(&format!("GATEWAY status {first} complete"))
        .await;
    script.step(&format!("status {first} complete")).await;
    let last = *appointment_ids.last().unwrap();
    script
        .tell(&format!("GATEWAY status {last} sent_to_modality"))
        .await;
    script
        .step(&format!("status {last} sent_to_modality"))
        .await;

    // Every action confirmed: an action A held when it died is taken over once its lease ends
    // (105 s by default), so allow for that.
    let lease = web::server::outbox::RetryPolicy::default().lease();
    within(
        lease + Duration::from_secs(120),
        "all 30 items confirmed",
        || async {
            let mut all = true;
            for id in &sent {
                all &= actions::get(&db, user.provider_id, id)
                    .await
                    .unwrap()
                    .status
                    == "confirmed";
            }
            all
        },
    )
    .await;
    let gateway_says = Verification::strict(Keyring::new(vec![gateway_key.public_key()]));
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let mut retried = 0;
    for id in &sent {
        let (reply, attempts): (Option<String>, i64) =
            sqlx::query_as("SELECT reply, attempts FROM gateway_actions WHERE id = $1")
                .bind(id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        retried += usize::from(attempts > 1);
        let reply = ActionReply::open(reply.as_deref().unwrap_or_default(), &gateway_says)
            .expect("the confirmation is the gateway's signed reply");
        *outcomes
            .entry(match reply.outcome {
                Outcome::Created => "created",
                Outcome::Exists => "exists",
                _ => "other",
            })
            .or_default() += 1;
    }
    eprintln!("confirmations: {outcomes:?}; {retried} actions needed more than one attempt");
    assert_eq!(outcomes.get("other"), None, "{outcomes:?}");
    assert_eq!(
        outcomes.values().sum::<usize>(),
        SENDS,
        "every action answered created or exists"
    );

    // The action A died holding was sent again by another replica, flagged as maybe delivered.
    let (attempts, maybe_delivered, claimant): (i64, i64, String) = sqlx::query_as(
        "SELECT attempts, maybe_delivered, claimed_by FROM gateway_actions WHERE id = $1",
    )
    .bind(&taken_from_a)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(attempts >= 2, "taken over: {attempts} attempts");
    assert_eq!(maybe_delivered, 1);
    assert_ne!(claimant, replica_a, "confirmed by a live replica");

    // On the modality worklist exactly once each (the first is done, so no longer offered).
    let offered = real_gateway::offered(&python, &peer_py, settings.mwl_port).await;
    for appointment in &appointment_ids[1..] {
        let accession = appointments::detail(&db, user.provider_id, *appointment)
            .await
            .unwrap()
            .accession_number
            .unwrap();
        let times = offered.iter().filter(|a| **a == accession).count();
        assert_eq!(times, 1, "{accession} offered {times} times: {offered:?}");
    }

    // Every event took effect once: two images, one of each MPPS state, whoever applied them.
    let detail = appointments::detail(&db, user.provider_id, first)
        .await
        .unwrap();
    assert_eq!(detail.status, AppointmentStatus::Complete);
    assert_eq!(detail.images.len(), 2, "{:?}", detail.images);
    let image_lines = detail
        .timeline
        .iter()
        .filter(|t| t.text.starts_with("Image received"))
        .count();
    assert_eq!(image_lines, 2, "{:?}", detail.timeline);
    let by_type: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, COUNT(*) FROM received_events GROUP BY event_type ORDER BY event_type",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    eprintln!("events applied: {by_type:?}");
    let count = |t: &str| by_type.iter().find(|(k, _)| k == t).map_or(0, |(_, n)| *n);
    assert_eq!(count("study.image_received"), 2, "{by_type:?}");
    assert_eq!(count("mpps.status_update"), 2, "{by_type:?}");

    script.tell("GATEWAY done").await;
    script.step("done").await;
    script.finish().await;
    for replica in &mut replicas[1..] {
        let _ = replica.child.start_kill();
    }
}
