//! The cloud on three replicas over one PostgreSQL, beside one replica on the same server.
//!
//! Each configuration runs in this process on a PostgreSQL server the bench starts: one replica,
//! or three (each with its own pool and its own LISTEN connection, as separate processes have),
//! and 1,000 SSE streams (`/live/clinics/{id}`, what a clinic page opens) spread evenly over
//! them, signed in with a real session.
//!
//! 1. **Events accepted and delivered per second.** 8 stand-in gateway senders send 300 signed
//!    image events through the relay emulator, which hands each to one of the replicas' events
//!    listeners at random, as Azure does. Accepted: first send → last verified reply.
//!    Delivered: events × 1,000 streams / first send → the last stream has every event.
//! 2. **Event → delivery on the other replicas, p50/p99.** 100 events applied one at a time on
//!    the first replica (its events handler, without the relay, so that which replica applied
//!    it is known); each stream stamps when it sees the event. With three replicas the samples
//!    are the streams on the *other* two (through `NOTIFY`); with one, its own streams (the
//!    in-process delivery) — the floor that the shared bus adds to.
//!
//! The reference of every row is one replica on the same PostgreSQL in the same run: the rows say
//! what spreading the same load over three costs or gains on one 2-core machine, where the three
//! replicas, PostgreSQL and the 1,000 clients share the cores.
//!
//! `cargo bench -p web --bench replicas`; JSON rows to `$BENCH_OUT` when set. Every wait is bounded.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{percentile, send_events};
use serde_json::{json, Value};
use shared::wire::Keyring;
use support::http_client::sign_in;
use support::{gateway, EVENTS, KEY, KEY_ENV};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use web::server::db::Db;
use web::server::seed::DEMO_USERS;
use web::server::startup::Running;
use web::server::state::AppState;
use web::server::store::{appointments, clinics, gateways, identity};

const STREAMS: usize = 1000;
const SENDERS: usize = 8;
const THROUGHPUT_EVENTS: usize = 300;
const WARMUP_EVENTS: usize = 20;
const LATENCY_EVENTS: usize = 100;
/// Limit for every stream to see a batch, and for a batch to be sent.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
const BENCHMARK: &str = "Cloud replicas on one PostgreSQL";
const VIEWS: [(&str, &str); 4] = [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "replicas bench on {} cores: {STREAMS} SSE streams, PostgreSQL, the relay emulator and \
         the replicas share them",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let one = runtime.block_on(measure(1));
    let three = runtime.block_on(measure(3));
    let rows = rows(&one, &three);
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({ "rows": rows })).unwrap(),
        )
        .unwrap();
        println!("wrote {path}");
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// What one configuration measured.
struct Figures {
    replicas: usize,
    accepted_per_s: f64,
    delivered_per_s: f64,
    /// Event handed to the first replica → seen by a stream (on the others, with several).
    latency_ms: Vec<f64>,
    resyncs: usize,
}

/// The streams' shared counters: each stream's arrival times of `image` changes.
struct Streams {
    arrivals: Vec<Mutex<Vec<Instant>>>,
    counts: Vec<AtomicUsize>,
    ready: AtomicUsize,
    resyncs: AtomicUsize,
}

async fn measure(replicas: usize) -> Figures {
    let support::SharedPostgres {
        pg,
        db,
        emulator,
        seeded,
        gateway_key,
        web_key,
    } = support::SharedPostgres::start().await;
    let url = pg.url();
    let mut running: Vec<Running> = Vec::new();
    for _ in 0..replicas {
        let mut state = AppState::new(
            Db::open(&url).await.unwrap(),
            web_key.clone(),
            Keyring::new(vec![]),
        );
        let env: HashMap<String, String> = [(KEY_ENV.to_string(), KEY.to_string())].into();
        state.env = Arc::new(move |name| env.get(name).cloned());
        running.push(support::serve(state, "unused-site".into()).await);
    }
    support::eventually("every replica listens for events", || async {
        emulator.listener_count(EVENTS) == replicas
    })
    .await;

    // The appointment the events are about, sent to the modality.
    let user = identity::authenticate(&db, DEMO_USERS[0].0, DEMO_USERS[0].1)
        .await
        .unwrap()
        .unwrap();
    let clinic_id = seeded.clinic_ids[0];
    let appointment_id = clinics::detail(&db, user.provider_id, clinic_id)
        .await
        .unwrap()
        .appointments[0]
        .id;
    web::server::service::send_to_modality(&running[0].state, &user, appointment_id)
        .await
        .unwrap();
    let detail = appointments::detail(&db, user.provider_id, appointment_id)
        .await
        .unwrap();
    let accession = detail.accession_number.unwrap();
    let nhs = detail.nhs_number.replace(' ', "");
    let mut k = 0;
    let mut events = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                k += 1;
                let (side, view) = VIEWS[k % 4];
                gateway_key.seal(&gateway::image(
                    None, &accession, &nhs, side, view, k as i64,
                ))
            })
            .collect()
    };

    // 1,000 streams spread over the replicas.
    let streams = Arc::new(Streams {
        arrivals: (0..STREAMS).map(|_| Mutex::new(Vec::new())).collect(),
        counts: (0..STREAMS).map(|_| AtomicUsize::new(0)).collect(),
        ready: AtomicUsize::new(0),
        resyncs: AtomicUsize::new(0),
    });
    let mut cookies = Vec::new();
    for r in &running {
        cookies.push(sign_in(r.addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await);
    }
    let mut clients = JoinSet::new();
    for i in 0..STREAMS {
        let on = i % replicas;
        clients.spawn(sse_client(
            running[on].addr,
            format!("/live/clinics/{clinic_id}"),
            cookies[on].clone(),
            i,
            streams.clone(),
        ));
    }
    within("every stream open", || {
        streams.ready.load(Ordering::SeqCst) == STREAMS
    })
    .await;
    let everyone_has = |n: usize| {
        let streams = streams.clone();
        move || streams.counts.iter().all(|c| c.load(Ordering::SeqCst) >= n)
    };

    // Warm-up, then throughput through the relay.
    let warm = send_events(
        &emulator,
        &web_key,
        events(WARMUP_EVENTS),
        SENDERS,
        PHASE_LIMIT,
    )
    .await;
    assert_eq!(warm.accepted, WARMUP_EVENTS, "warm-up events refused");
    within("warm-up delivered", everyone_has(WARMUP_EVENTS)).await;
    let start = Instant::now();
    let sent = send_events(
        &emulator,
        &web_key,
        events(THROUGHPUT_EVENTS),
        SENDERS,
        PHASE_LIMIT,
    )
    .await;
    let (accepted, sending) = (sent.accepted, sent.elapsed);
    within(
        "every event delivered",
        everyone_has(WARMUP_EVENTS + THROUGHPUT_EVENTS),
    )
    .await;
    let delivering = start.elapsed();
    let accepted_per_s = accepted as f64 / sending.as_secs_f64();
    let delivered_per_s = (THROUGHPUT_EVENTS * STREAMS) as f64 / delivering.as_secs_f64();
    println!(
        "{replicas} replica(s): {accepted} events accepted in {:.2} s ({accepted_per_s:.0}/s); \
         {} deliveries in {:.2} s ({delivered_per_s:.0}/s)",
        sending.as_secs_f64(),
        THROUGHPUT_EVENTS * STREAMS,
        delivering.as_secs_f64()
    );

    // Latency: one event at a time on the first replica, samples from the other replicas'
    // streams (or, alone, its own).
    let gateway_row = gateways::by_id(&db, seeded.gateway_ids[0]).await.unwrap();
    let base = WARMUP_EVENTS + THROUGHPUT_EVENTS;
    for s in &streams.arrivals {
        s.lock().unwrap().clear();
    }
    let mut sent_at = Vec::new();
    for (n, text) in events(LATENCY_EVENTS).into_iter().enumerate() {
        sent_at.push(Instant::now());
        let reply = web::server::events::handle(&running[0].state, &gateway_row, &text).await;
        assert!(!reply.is_empty());
        within("the event reached every stream", everyone_has(base + n + 1)).await;
    }
    let mut latency_ms = Vec::new();
    for (i, arrivals) in streams.arrivals.iter().enumerate() {
        if replicas > 1 && i % replicas == 0 {
            continue; // on the replica that applied the events
        }
        for (at, sent) in arrivals.lock().unwrap().iter().zip(&sent_at) {
            latency_ms.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    clients.abort_all();
    for r in running {
        r.stop().await;
    }
    Figures {
        replicas,
        accepted_per_s,
        delivered_per_s,
        latency_ms,
        resyncs: streams.resyncs.load(Ordering::SeqCst),
    }
}

/// Waits (up to [`PHASE_LIMIT`]) until `check` holds.
async fn within(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + PHASE_LIMIT;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "not within {PHASE_LIMIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One SSE client: stamps each `image` change it is sent.
async fn sse_client(
    addr: SocketAddr,
    path: String,
    cookie: String,
    index: usize,
    streams: Arc<Streams>,
) {
    let mut tcp = TcpStream::connect(addr)
        .await
        .expect("connect to the web app");
    tcp.set_nodelay(true).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(tcp).lines();
    let status = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(status.contains(" 200 "), "SSE {path}: {status}");
    // The body is chunked, but each SSE field is a line of its own: read `event:` lines.
    while let Ok(Some(line)) = lines.next_line().await {
        match line.strip_prefix("event:").map(str::trim) {
            Some("ready") => {
                streams.ready.fetch_add(1, Ordering::SeqCst);
            }
            Some("image") => {
                streams.arrivals[index].lock().unwrap().push(Instant::now());
                streams.counts[index].fetch_add(1, Ordering::SeqCst);
            }
            Some("resync") => {
                streams.resyncs.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

fn rows(one: &Figures, three: &Figures) -> Vec<Value> {
    let reference = "1 replica, same PostgreSQL, same run";
    let note = |f: &Figures| {
        format!(
            "{STREAMS} SSE clinic streams spread over {} replica(s) in one process, each with its \
             own pool and LISTEN connection; {SENDERS} senders through the relay emulator, which \
             picks a replica per event; {} stream resyncs",
            f.replicas, f.resyncs
        )
    };
    let mut rows = vec![
        json!({
            "benchmark": BENCHMARK,
            "metric": format!("events accepted per second, 3 replicas ({STREAMS} SSE streams)"),
            "unit": "events/s", "better": "higher",
            "ours": round2(three.accepted_per_s), "reference": reference,
            "reference_value": round2(one.accepted_per_s), "n": THROUGHPUT_EVENTS,
            "note": note(three),
        }),
        json!({
            "benchmark": BENCHMARK,
            "metric": format!("SSE deliveries per second, 3 replicas (events × {STREAMS} streams)"),
            "unit": "deliveries/s", "better": "higher",
            "ours": round2(three.delivered_per_s), "reference": reference,
            "reference_value": round2(one.delivered_per_s), "n": THROUGHPUT_EVENTS * STREAMS,
            "note": note(three),
        }),
    ];
    for q in [0.5, 0.99] {
        let (mut a, mut b) = (three.latency_ms.clone(), one.latency_ms.clone());
        rows.push(json!({
            "benchmark": BENCHMARK,
            "metric": format!(
                "event → SSE delivery on the other replicas, p{}",
                (q * 100.0) as u32
            ),
            "unit": "ms", "better": "lower",
            "ours": round2(percentile(&mut a, q)),
            "reference": "1 replica: delivery on the replica that applied it",
            "reference_value": round2(percentile(&mut b, q)),
            "n": a.len(),
            "note": format!(
                "{LATENCY_EVENTS} image events applied one at a time on replica 1 (its events \
                 handler, no relay); samples from the streams on replicas 2 and 3, through \
                 PostgreSQL NOTIFY; the reference's from the one replica's own streams"
            ),
        }));
    }
    for row in &rows {
        println!("{row}");
    }
    rows
}

fn round2(x: f64) -> f64 {
    common::round(x, 2)
}
