//! Web app live-update figures: how fast gateway events reach clinicians' pages.
//!
//! The web app runs in this process on SQLite (as the tests start it), the relay emulator on
//! loopback, and a stand-in gateway sends signed events through the relay exactly as the
//! appliance does after it has stored an image or received an MPPS update.
//!
//! 1. **Events per second accepted and pushed to 200 open SSE streams.** 200 concurrent
//!    `/live/appointments/{id}` and `/live/clinics/{id}` streams (alternately: what an appointment
//!    page and a clinic page open), signed in with a real session cookie, watch one appointment.
//!    8 senders then send 500 signed events (9 image events to 1 MPPS update), each over its own
//!    relay connection as the gateway does. We report events accepted per second (first send →
//!    last verified reply), deliveries per second (events × 200 / first send → the last stream
//!    has seen every event), and the process CPU used meanwhile (`/proc/self/stat`), split into
//!    the web app's threads and the load side's (relay emulator, senders, SSE clients), which run
//!    on a separate tokio runtime. Median of 3 runs after 20 warm-up events. There is nothing to
//!    compare with (the NHS seeds poll; they hold no streams), so these rows have no reference.
//! 2. **Image event sent by the gateway → thumbnail in the browser DOM, p50/p99** (the whole
//!    path from the modality is `web/tests/browser_gateway.rs`, which `make bench` also runs).
//!    Debian's Chromium, driven by playwright-core from web/node_modules as in
//!    web/tests/browser.rs, signs in and shows an
//!    appointment page; the gateway sends one image event (with its thumbnail) at a time, and a
//!    MutationObserver in the page stamps `Date.now()` when the new `<img>` enters the DOM, against
//!    `now_ms()` taken here just before sending (same machine, same clock). 30 samples after 3
//!    warm-up ones. The reference is computed, not measured: the NHS seeds poll images every 2 s
//!    and the stream every 0.2 s, so their delay is U(0, 2000) + U(0, 200) ms.
//!
//! Why: the app's promise is that clinicians see the modality's work as it happens without
//! anything polling; (1) shows how much headroom one process has for a busy screening unit's
//! event rate and open pages, (2) what one clinician actually waits for.
//!
//! `cargo bench -p web --bench live`; JSON rows to `$BENCH_OUT` when set. Every wait is bounded.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{clock_tick, median_min_max, percentile, proc_stat_sum, round, send_events, Sent};
use relay_emulator::Emulator;
use serde_json::{json, Value};
use shared::wire::event::{Event, EventStatus, MppsStatus};
use shared::wire::SigningKey;
use support::browser::{self, Script};
use support::{gateway, TestDb, ACTIONS, EVENTS};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use uuid::Uuid;
use web::domain::AppointmentStatus;
use web::server::seed::DEMO_USERS;
use web::server::startup::Running;
use web::server::store::{clinics, identity};

const STREAMS: usize = 200;
const SENDERS: usize = 8;
const EVENTS_PER_RUN: usize = 500;
const WARMUP_EVENTS: usize = 20;
const RUNS: usize = 3;
const BROWSER_WARMUP: usize = 3;
const BROWSER_SAMPLES: usize = 30;
/// Limit for every stream to see a batch, and for a batch to be sent.
const PHASE_LIMIT: Duration = Duration::from_secs(90);
/// Limit for one browser step.
const STEP_LIMIT: Duration = Duration::from_secs(60);
const VIEWS: [(&str, &str); 4] = [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")];
const REFERENCE: &str = "seeds' polling (2 s images + 0.2 s stream), computed";
const BENCHMARK: &str = "Web app live updates";

fn main() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let clock_tick = clock_tick();
    // The load side (relay emulator, senders, SSE clients) runs on its own runtime, so its
    // threads' CPU can be told apart from the web app's.
    let load_threads = Arc::new(Mutex::new(vec![thread_id()]));
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("web-app")
        .enable_all()
        .build()
        .unwrap();
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        // Keep blocking threads alive, so none of their CPU time leaves the per-thread sums.
        .thread_keep_alive(Duration::from_secs(3600))
        .on_thread_start({
            let threads = load_threads.clone();
            move || threads.lock().unwrap().push(thread_id())
        })
        .enable_all()
        .build()
        .unwrap();
    println!(
        "web app live-updates bench on {} cores (the web app, the relay emulator, the load and \
         Chromium share them)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let mut rows = Vec::new();
    {
        let mut world = World::start(&app, &load, &site);
        let target = load.block_on(world.appointment());
        let cpu = Cpu {
            tick: clock_tick,
            load_threads: load_threads.clone(),
        };
        rows.extend(load.block_on(fanout(&world, &target, &cpu)));
        world.stop(&app);
    }
    {
        let mut world = World::start(&app, &load, &site);
        let target = load.block_on(world.appointment());
        rows.extend(load.block_on(thumbnails(&world, &target, &crate_dir)));
        world.stop(&app);
    }

    if let Ok(path) = std::env::var("BENCH_OUT") {
        let out = json!({ "rows": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        println!("wrote {path}");
    }
    load.shutdown_timeout(Duration::from_secs(5));
    app.shutdown_timeout(Duration::from_secs(5));
}

/// The web app, the relay emulator and a stand-in gateway answering actions.
struct World {
    db: Option<TestDb>,
    emulator: Emulator,
    running: Option<Running>,
    gateway_key: SigningKey,
    web_key: SigningKey,
    user: identity::User,
    clinic_id: i64,
    actions: gateway::ActionsListener,
}

/// An appointment sent to the modality: what the gateway's events name.
struct Target {
    appointment_id: i64,
    action_id: Uuid,
    accession: String,
    nhs_number: String,
}

impl World {
    fn start(app: &Runtime, load: &Runtime, site: &str) -> World {
        let db = TestDb::sqlite();
        let emulator = load.block_on(support::emulator());
        let gateway_key = SigningKey::generate();
        let seed_relay = support::seed_relay(&emulator, &gateway_key);
        // Started inside the app runtime, so the server's tasks run on its threads.
        let (running, seeded, web_key) = app.block_on(async {
            let (state, seeded, web_key) = support::app_state(db.open().await, &seed_relay).await;
            (
                support::serve(state, site.to_string()).await,
                seeded,
                web_key,
            )
        });
        let (user, actions) = load.block_on(async {
            let gateway_id = seeded.gateway_ids[0];
            support::eventually("the web app's events listener is connected", || async {
                running
                    .state
                    .listener_status(gateway_id)
                    .is_some_and(|s| s.connected)
            })
            .await;
            let mut actions = gateway::listen_actions(
                support::relay_client(&emulator),
                ACTIONS,
                gateway_key.clone(),
                &web_key,
                gateway::reply_created(),
            )
            .await;
            actions.connected().await;
            let (email, password) = DEMO_USERS[0];
            let user = identity::authenticate(&running.state.db, email, password)
                .await
                .unwrap()
                .expect("the demo user signs in");
            (user, actions)
        });
        World {
            db: Some(db),
            emulator,
            running: Some(running),
            gateway_key,
            web_key,
            user,
            clinic_id: seeded.clinic_ids[0],
            actions,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// Sends the next checked-in appointment to the modality, as a clinician does.
    async fn appointment(&mut self) -> Target {
        let state = &self.running.as_ref().unwrap().state;
        let detail = clinics::detail(&state.db, self.user.provider_id, self.clinic_id)
            .await
            .unwrap();
        let appointment_id = detail
            .appointments
            .iter()
            .find(|a| a.status == AppointmentStatus::CheckedIn)
            .expect("a checked-in appointment")
            .id;
        web::server::service::send_to_modality(state, &self.user, appointment_id)
            .await
            .unwrap();
        let action = self.actions.next().await;
        let item = gateway::worklist_item(&action);
        Target {
            appointment_id,
            action_id: action.action_id,
            accession: item.accession_number,
            nhs_number: item.participant.nhs_number,
        }
    }

    /// The `k`th event of a stream of gateway reports: 9 images to 1 MPPS update, signed.
    fn event(&self, target: &Target, k: usize) -> String {
        let event: Event = if k.is_multiple_of(10) {
            gateway::mpps(
                Some(target.action_id),
                &target.accession,
                MppsStatus::InProgress,
            )
        } else {
            let (side, view) = VIEWS[k % 4];
            gateway::image(
                Some(target.action_id),
                &target.accession,
                &target.nhs_number,
                side,
                view,
                k as i64,
            )
        };
        self.gateway_key.seal(&event)
    }

    /// Sends one sealed event as the gateway does and says whether the web app accepted it.
    async fn send(&self, text: &str) -> bool {
        let reply = gateway::send_text(
            support::relay_client(&self.emulator),
            EVENTS,
            &self.web_key,
            text,
        )
        .await;
        reply.status == EventStatus::Accepted
    }

    fn stop(&mut self, app: &Runtime) {
        if let Some(running) = self.running.take() {
            app.block_on(running.stop());
        }
        drop(self.db.take());
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Events → 200 SSE streams

/// What the SSE clients share with the bench.
struct Streams {
    /// Each stream reports (index, when) once it has counted `target` changes.
    target: AtomicUsize,
    counts: Vec<AtomicUsize>,
    resyncs: AtomicUsize,
}

async fn fanout(world: &World, target: &Target, cpu: &Cpu) -> Vec<Value> {
    let addr = world.addr();
    let cookie = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let streams = Arc::new(Streams {
        target: AtomicUsize::new(usize::MAX),
        counts: (0..STREAMS).map(|_| AtomicUsize::new(0)).collect(),
        resyncs: AtomicUsize::new(0),
    });
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<usize>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut clients = JoinSet::new();
    for i in 0..STREAMS {
        let path = if i % 2 == 0 {
            format!("/live/appointments/{}", target.appointment_id)
        } else {
            format!("/live/clinics/{}", world.clinic_id)
        };
        clients.spawn(sse_client(
            addr,
            path,
            cookie.clone(),
            i,
            streams.clone(),
            ready_tx.clone(),
            done_tx.clone(),
        ));
    }
    let opened = tokio::time::timeout(PHASE_LIMIT, async {
        for _ in 0..STREAMS {
            ready_rx.recv().await;
        }
    })
    .await;
    assert!(opened.is_ok(), "the {STREAMS} SSE streams did not all open");
    println!("{STREAMS} SSE streams open");

    let mut next_k = 1;
    let mut batch = |n: usize| {
        let texts: Vec<String> = (next_k..next_k + n)
            .map(|k| world.event(target, k))
            .collect();
        next_k += n;
        texts
    };

    // Warm-up: the whole path once, connections and caches hot.
    let mut expected = WARMUP_EVENTS;
    streams.target.store(expected, Ordering::SeqCst);
    let warm = send_all(world, batch(WARMUP_EVENTS)).await;
    assert_eq!(warm.refused, 0, "warm-up events refused");
    let warmed = all_streams_done(&mut done_rx).await;
    assert!(warmed.is_ok(), "warm-up events did not reach every stream");

    struct Run {
        accepted_per_s: f64,
        delivered_per_s: f64,
        cpu_core: f64,
        app_core: f64,
        wall: Duration,
        complete: bool,
        /// From the last reply to the last stream having every event.
        lag: Duration,
    }
    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    let mut refused = 0;
    for run in 1..=RUNS {
        let texts = batch(EVENTS_PER_RUN);
        let base = expected;
        expected += EVENTS_PER_RUN;
        streams.target.store(expected, Ordering::SeqCst);
        let before = cpu.sample();
        let start = Instant::now();
        let sent = send_all(world, texts).await;
        let done = all_streams_done(&mut done_rx).await;
        let after = cpu.sample();
        let (last, complete) = match done {
            Ok(last) => (last, true),
            Err(()) => (Instant::now(), false),
        };
        let wall = last.duration_since(start);
        let delivered: usize = streams
            .counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst).saturating_sub(base))
            .sum();
        let cpu_wall = after.at.duration_since(before.at).as_secs_f64();
        let r = Run {
            accepted_per_s: sent.accepted as f64 / sent.elapsed.as_secs_f64(),
            delivered_per_s: delivered as f64 / wall.as_secs_f64(),
            cpu_core: (after.total - before.total) / cpu_wall,
            app_core: ((after.total - after.load) - (before.total - before.load)) / cpu_wall,
            wall,
            complete,
            lag: last.saturating_duration_since(start + sent.elapsed),
        };
        println!(
            "run {run}: {} events accepted in {:.2} s ({:.0} events/s), {delivered} deliveries \
             in {:.2} s ({:.0}/s){}; CPU {:.0} % of one core (web app {:.0} %)",
            sent.accepted,
            sent.elapsed.as_secs_f64(),
            r.accepted_per_s,
            wall.as_secs_f64(),
            r.delivered_per_s,
            if complete { "" } else { " — INCOMPLETE" },
            r.cpu_core * 100.0,
            r.app_core * 100.0,
        );
        latencies.extend(sent.latencies);
        refused += sent.refused;
        runs.push(r);
        if !complete {
            break;
        }
    }
    clients.abort_all();
    let resyncs = streams.resyncs.load(Ordering::SeqCst);
    let incomplete = runs.iter().filter(|r| !r.complete).count();

    let (accepted, accepted_lo, accepted_hi) =
        median_min_max(runs.iter().map(|r| r.accepted_per_s));
    let (delivered, delivered_lo, delivered_hi) =
        median_min_max(runs.iter().map(|r| r.delivered_per_s));
    let wall: f64 = runs.iter().map(|r| r.wall.as_secs_f64()).sum();
    let lag_ms = runs
        .iter()
        .map(|r| r.lag.as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    let cpu_core = runs
        .iter()
        .map(|r| r.cpu_core * r.wall.as_secs_f64())
        .sum::<f64>()
        / wall;
    let app_core = runs
        .iter()
        .map(|r| r.app_core * r.wall.as_secs_f64())
        .sum::<f64>()
        / wall;
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let events = runs.len() * EVENTS_PER_RUN;
    let mut note = format!(
        "CPU {:.0} % of one core for the whole process (web app threads {:.0} %; the rest is the \
         relay emulator, {SENDERS} senders and {STREAMS} SSE clients in the same process); \
         {STREAMS} SSE streams (half appointment, half clinic page); {SENDERS} senders, one relay \
         connection per event; 9 image : 1 MPPS; SQLite; median of {} runs of {EVENTS_PER_RUN} \
         after {WARMUP_EVENTS} warm-up",
        cpu_core * 100.0,
        app_core * 100.0,
        runs.len(),
    );
    if refused > 0 || resyncs > 0 || incomplete > 0 {
        note.push_str(&format!(
            "; {refused} events refused, {resyncs} stream resyncs, {incomplete} runs incomplete \
             after {} s",
            PHASE_LIMIT.as_secs()
        ));
    }
    println!(
        "events accepted: {accepted:.0}/s (min {accepted_lo:.0}, max {accepted_hi:.0}); one \
         event's round trip p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut ms, 0.50),
        percentile(&mut ms, 0.99)
    );
    println!(
        "SSE deliveries: {delivered:.0}/s (min {delivered_lo:.0}, max {delivered_hi:.0}) to \
         {STREAMS} streams; the last stream had every event at most {lag_ms:.1} ms after the \
         last reply"
    );
    println!("{note}");
    vec![
        json!({
            "benchmark": BENCHMARK,
            "metric": format!("Gateway events accepted per second ({STREAMS} SSE streams open)"),
            "unit": "events/s",
            "better": "higher",
            "ours": round(accepted, 1),
            "ours_spread": format!(
                "{accepted_lo:.0}–{accepted_hi:.0}; one event p50 {:.1} ms, p99 {:.1} ms",
                percentile(&mut ms, 0.50),
                percentile(&mut ms, 0.99)
            ),
            "reference": null,
            "reference_value": null,
            "n": events,
            "note": note,
        }),
        json!({
            "benchmark": BENCHMARK,
            "metric": format!("SSE deliveries per second (events × {STREAMS} streams, until every stream has every event)"),
            "unit": "deliveries/s",
            "better": "higher",
            "ours": round(delivered, 0),
            "ours_spread": format!("{delivered_lo:.0}–{delivered_hi:.0}"),
            "reference": null,
            "reference_value": null,
            "n": events * STREAMS,
            "note": format!(
                "every stream had every event at most {lag_ms:.1} ms after the last reply, so this \
                 is bounded by the event rate above, not by the streams; {note}"
            ),
        }),
    ]
}

/// Sends pre-signed events with [`SENDERS`] concurrent senders.
async fn send_all(world: &World, texts: Vec<String>) -> Sent {
    send_events(&world.emulator, &world.web_key, texts, SENDERS, PHASE_LIMIT).await
}

/// Waits until every stream has reported reaching the target; the last report's time.
async fn all_streams_done(
    done: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
) -> Result<Instant, ()> {
    let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
    let mut last = None;
    for _ in 0..STREAMS {
        match tokio::time::timeout_at(deadline, done.recv()).await {
            Ok(Some((_, at))) => last = Some(last.map_or(at, |l: Instant| l.max(at))),
            _ => return Err(()),
        }
    }
    last.ok_or(())
}

/// One SSE client: counts the `image` and `appointment` changes it is sent.
async fn sse_client(
    addr: SocketAddr,
    path: String,
    cookie: String,
    index: usize,
    streams: Arc<Streams>,
    ready: mpsc::UnboundedSender<usize>,
    done: mpsc::UnboundedSender<(usize, Instant)>,
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
    while let Ok(Some(line)) = lines.next_line().await {
        if line.is_empty() {
            break;
        }
    }
    // The body is chunked, but each SSE field is a line of its own: count `event:` lines.
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(name) = line.strip_prefix("event:") else {
            continue;
        };
        match name.trim() {
            "ready" => {
                let _ = ready.send(index);
            }
            "image" | "appointment" => {
                let count = streams.counts[index].fetch_add(1, Ordering::SeqCst) + 1;
                if count == streams.target.load(Ordering::SeqCst) {
                    let _ = done.send((index, Instant::now()));
                }
            }
            "resync" => {
                streams.resyncs.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// Signs in over HTTP as a browser's form does; the session cookie (`name=value`).
async fn sign_in(addr: SocketAddr, email: &str, password: &str) -> String {
    let body = format!("email={}&password={password}", email.replace('@', "%40"));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /api/sign_in HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(tcp).lines();
    let reply = tokio::time::timeout(Duration::from_secs(30), async {
        let mut cookie = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if line.is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with("set-cookie:") {
                cookie = line[11..].trim().split(';').next().map(str::to_string);
            }
        }
        cookie
    })
    .await;
    reply
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no session cookie after signing in as {email}"))
}

// ---------------------------------------------------------------------------------------------
// 2. Image event → thumbnail in the browser DOM

/// The rest of the browser's next `STEP <prefix>` line, within [`STEP_LIMIT`].
async fn step(page: &mut Script, prefix: &str) -> String {
    tokio::time::timeout(STEP_LIMIT, page.step(prefix))
        .await
        .unwrap_or_else(|_| panic!("no STEP {prefix} within {} s", STEP_LIMIT.as_secs()))
}

async fn thumbnails(world: &World, target: &Target, crate_dir: &Path) -> Vec<Value> {
    let (user, pass) = DEMO_USERS[0];
    let mut page = Script::spawn(
        crate_dir,
        "e2e/bench-live.mjs",
        &[
            ("BASE_URL", format!("http://{}", world.addr())),
            ("USER1", user.to_string()),
            ("PASS1", pass.to_string()),
            ("APPOINTMENT_ID", target.appointment_id.to_string()),
        ],
    );
    step(&mut page, "ready").await;
    println!("Chromium shows appointment {}", target.appointment_id);
    let mut samples = Vec::new();
    for k in 1..=BROWSER_WARMUP + BROWSER_SAMPLES {
        let (side, view) = VIEWS[(k - 1) % 4];
        let event = gateway::image(
            Some(target.action_id),
            &target.accession,
            &target.nhs_number,
            side,
            view,
            k as i64,
        );
        let text = world.gateway_key.seal(&event);
        let sent_at = browser::now_ms();
        assert!(world.send(&text).await, "image event {k} refused");
        page.tell(&format!("GATEWAY image {k} {sent_at}")).await;
        let ms: f64 = step(&mut page, &format!("image {k} "))
            .await
            .parse()
            .expect("a latency in ms");
        if k > BROWSER_WARMUP {
            samples.push(ms);
        }
        // Let the page settle (its re-read and the thumbnail fetch) before the next image.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page.finish().await;

    let n = samples.len();
    let (lo, hi) = samples
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    println!(
        "image event sent → thumbnail in the DOM: p50 {p50:.0} ms, p99 {p99:.0} ms (min {lo:.0}, \
         max {hi:.0}, n {n}); seeds' polling, computed: p50 1100 ms, p99 2110.6 ms"
    );
    let note = format!(
        "gateway sends the image event (relay emulator, fresh connection) → new <img> in \
         Chromium's DOM (MutationObserver, Date.now() against the sender's clock, ms resolution); \
         {n} samples after {BROWSER_WARMUP} warm-up; p99 of {n} is the largest sample; \
         reference = U(0,2000)+U(0,200) ms"
    );
    let row = |metric: &str, ours: f64, spread: String, reference: f64| {
        json!({
            "benchmark": BENCHMARK,
            "metric": metric,
            "unit": "ms",
            "better": "lower",
            "ours": round(ours, 1),
            "ours_spread": spread,
            "reference": REFERENCE,
            "reference_value": reference,
            "n": n,
            "note": note,
        })
    };
    vec![
        row(
            "image event sent by the gateway → thumbnail in the browser DOM, p50",
            p50,
            format!("{lo:.0}–{hi:.0}"),
            1100.0,
        ),
        row(
            "image event sent by the gateway → thumbnail in the browser DOM, p99",
            p99,
            format!("max {hi:.0}"),
            2110.6,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// CPU time of this process and of the load side's threads.
struct Cpu {
    tick: f64,
    load_threads: Arc<Mutex<Vec<u32>>>,
}

struct CpuSample {
    at: Instant,
    /// Seconds of CPU, the whole process.
    total: f64,
    /// Seconds of CPU, the load runtime's threads and the main thread.
    load: f64,
}

impl Cpu {
    fn sample(&self) -> CpuSample {
        // utime + stime.
        let ticks = |path: &str| proc_stat_sum(path, 14..=15).unwrap_or(0);
        let load: u64 = self
            .load_threads
            .lock()
            .unwrap()
            .iter()
            .map(|tid| ticks(&format!("/proc/self/task/{tid}/stat")))
            .sum();
        CpuSample {
            at: Instant::now(),
            total: ticks("/proc/self/stat") as f64 / self.tick,
            load: load as f64 / self.tick,
        }
    }
}

/// The calling thread's id, from /proc/thread-self (→ `<pid>/task/<tid>`).
fn thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}
