//! A clinic day, end to end: 40 participants × 4 full-size views through the real system.
//!
//! The web app (SQLite, bench profile) and the relay emulator run in this process, the release
//! gateway (`gateway serve`) as a child process, and the modality is `gateway emulate-modality`,
//! one participant after another as one mammography room works: worklist C-FIND, MPPS IN
//! PROGRESS, four C-STOREs of 4096 × 3328 12-bit images over one association, MPPS COMPLETED.
//! A clinician's Chromium has the clinic page and the day's last participant's appointment page
//! open, live, all day.
//!
//! Reported, from one day (it takes about a minute; n = 1):
//! - **images/s**: 160 / (first C-FIND → last MPPS COMPLETED answered), emulator included
//!   (it synthesizes each image before sending it, on the same 2 cores);
//! - **last C-STORE answered → its thumbnail in the DOM**: the emulator prints the answer to the
//!   day's last C-STORE, a MutationObserver in the appointment page stamps `Date.now()` when the
//!   participant's fourth thumbnail enters the DOM (same machine, same clock). The reference is
//!   the NHS seeds' polling, computed: mean of U(0, 2000) + U(0, 200) ms;
//! - **the gateway's peak RSS with its render children** (the process tree's summed VmRSS,
//!   sampled every 100 ms) and its own VmHWM; the ceiling is 64 MB;
//! - **the gateway's CPU seconds** (user + system, its waited-for render children included),
//!   from the first C-FIND until every image has reached the web app.
//!
//! Before reporting it checks the day really happened: every appointment complete with its four
//! images in the web app, and the clinic page showing all of them complete.
//!
//! `GATEWAY_BIN=… cargo bench -p web --bench clinic_day`; JSON rows to `$BENCH_OUT` when set.
//! Every wait is bounded; the gateway, Chromium and the emulators are killed on the way out.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{clock_tick, proc_stat_sum, round};
use serde_json::{json, Value};
use support::browser::{self, Script};
use support::real_gateway::{self, GatewaySettings, MWL_AET};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use web::domain::AppointmentStatus;
use web::server::seed::DEMO_USERS;
use web::server::store::{actions, appointments, clinics, identity};

const PARTICIPANTS: usize = 40;
const VIEWS: usize = 4;
/// One participant's procedure, from C-FIND to MPPS COMPLETED.
const PROCEDURE_LIMIT: Duration = Duration::from_secs(120);
/// For the web app and the browser to catch up with the modality.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(180);
const STEP_LIMIT: Duration = Duration::from_secs(150);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const BENCHMARK: &str = "Clinic day, end to end";

fn main() {
    let (site, crate_dir) = browser::site_and_crate_dir();
    let (gateway_bin, _, _) = real_gateway::tools();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "clinic day: {PARTICIPANTS} participants × {VIEWS} views of 4096 × 3328 through {} on {} \
         cores (the gateway, the emulated modality, the web app and Chromium share them)",
        gateway_bin.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let rows = runtime.block_on(day(&site, &crate_dir, &gateway_bin));
    if let Ok(path) = std::env::var("BENCH_OUT") {
        let out = json!({ "rows": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        println!("wrote {path}");
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
}

async fn day(site: &str, crate_dir: &Path, gateway_bin: &Path) -> Vec<Value> {
    // `_db` holds the SQLite file for the day's length.
    let support::Rig {
        db: _db,
        emulator,
        gateway_key,
        state,
        seeded,
        web_key,
    } = support::Rig::sqlite().await;
    let (email, password) = DEMO_USERS[0];
    let user = identity::authenticate(&state.db, email, password)
        .await
        .unwrap()
        .expect("the demo user signs in");
    let clinic_id = seeded.clinic_ids[0];
    book_the_day(&state.db, user.provider_id, clinic_id).await;
    let gateway_name = support::first_gateway_name(&state.db, user.provider_id).await;
    let running = support::serve(state, site.to_string()).await;
    let db = &running.state.db;

    let state_dir = support::tempdir::TempDir::new("bench-clinic-day");
    let artifacts = browser::artifacts("bench-clinic-day");
    std::fs::create_dir_all(&artifacts).unwrap();
    let settings = GatewaySettings::on_emulator(
        gateway_bin.to_path_buf(),
        state_dir.path().to_path_buf(),
        gateway_name,
        &emulator,
        gateway_key,
        web_key,
        Path::new(&artifacts).join("gateway.log"),
    );
    let gateway = settings.start();
    let gateway_pid = gateway.id().expect("the gateway is running");
    support::both_ends_listening(&emulator).await;

    // The clinician sends the whole day to the modality, as at the start of a session.
    let booked: Vec<i64> = clinics::detail(db, user.provider_id, clinic_id)
        .await
        .unwrap()
        .appointments
        .iter()
        .filter(|a| a.status == AppointmentStatus::CheckedIn)
        .map(|a| a.id)
        .take(PARTICIPANTS)
        .collect();
    assert_eq!(
        booked.len(),
        PARTICIPANTS,
        "the day's checked-in appointments"
    );
    for &id in &booked {
        web::server::service::send_to_modality(&running.state, &user, id)
            .await
            .unwrap();
    }
    support::within(
        CATCH_UP_LIMIT,
        "the gateway confirmed every worklist item",
        || async {
            let confirmed = actions::list(db, user.provider_id, Some("confirmed"), 1000)
                .await
                .unwrap();
            booked
                .iter()
                .all(|id| confirmed.iter().any(|a| a.appointment_id == Some(*id)))
        },
    )
    .await;
    let mut accessions = Vec::new();
    for &id in &booked {
        let detail = appointments::detail(db, user.provider_id, id)
            .await
            .unwrap();
        accessions.push(detail.accession_number.expect("an accession number"));
    }
    let last_appointment = *booked.last().unwrap();

    let mut page = Script::spawn(
        crate_dir,
        "e2e/bench-clinic-day.mjs",
        &[
            ("BASE_URL", format!("http://{}", running.addr)),
            ("USER1", email.to_string()),
            ("PASS1", password.to_string()),
            ("CLINIC_ID", clinic_id.to_string()),
            ("APPOINTMENT_ID", last_appointment.to_string()),
            ("ARTIFACTS", artifacts.clone()),
        ],
    );
    step(&mut page, "ready").await;
    println!("Chromium shows clinic {clinic_id} and appointment {last_appointment}");

    let sampler = Sampler::start(gateway_pid);
    // Ticks of utime + stime + cutime + cstime: the gateway's and its waited-for render children's.
    let gateway_stat = format!("/proc/{gateway_pid}/stat");
    let gateway_cpu = || proc_stat_sum(&gateway_stat, 14..=17).expect("the gateway's /proc stat");
    // Ticks of cutime + cstime of this process: the emulators are the only children it waits
    // for meanwhile.
    let modality_cpu = || proc_stat_sum("/proc/self/stat", 16..=17).expect("this process's stat");
    let cpu_before = gateway_cpu();
    let modality_before = modality_cpu();
    let started = Instant::now();
    let mut last_stored_ms = 0;
    for (k, accession) in accessions.iter().enumerate() {
        let procedure = tokio::time::timeout(
            PROCEDURE_LIMIT,
            emulate_procedure(gateway_bin, &settings, accession),
        )
        .await
        .unwrap_or_else(|_| panic!("participant {} took over {PROCEDURE_LIMIT:?}", k + 1));
        last_stored_ms = procedure;
        if (k + 1) % 10 == 0 {
            println!(
                "{} participants done in {:.1} s",
                k + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let modality_done = started.elapsed();
    let modality_cpu_s = (modality_cpu() - modality_before) as f64 / clock_tick();
    page.tell(&format!("GATEWAY stored {last_stored_ms} {VIEWS}"))
        .await;
    let to_thumbnail: f64 = step(&mut page, "last thumbnail ")
        .await
        .parse()
        .expect("a latency in ms");

    // Nothing lost: every participant complete with every image, in the store and on screen.
    support::within(
        CATCH_UP_LIMIT,
        "every image and completion reached the web app",
        || async {
            let mut all = true;
            for &id in &booked {
                let detail = appointments::detail(db, user.provider_id, id)
                    .await
                    .unwrap();
                all &= detail.status == AppointmentStatus::Complete && detail.images.len() == VIEWS;
            }
            all
        },
    )
    .await;
    let cpu_after = gateway_cpu();
    let caught_up = started.elapsed();
    let (tree_peak_kb, samples) = sampler.stop();
    let hwm_kb = status_kb(gateway_pid, "VmHWM:").unwrap_or(0);
    page.tell(&format!("GATEWAY day over {PARTICIPANTS}")).await;
    step(&mut page, "clinic complete").await;
    page.finish().await;
    drop(gateway);
    running.stop().await;

    let images = PARTICIPANTS * VIEWS;
    let per_s = images as f64 / modality_done.as_secs_f64();
    let cpu_s = (cpu_after - cpu_before) as f64 / clock_tick();
    println!(
        "{images} images in {:.1} s: {per_s:.2} images/s; every image in the web app after \
         {:.1} s; last C-STORE answered → last thumbnail in the DOM {to_thumbnail:.0} ms; \
         gateway peak {:.1} MB with its render children ({samples} samples; its own VmHWM {:.1} \
         MB); gateway CPU {cpu_s:.1} s ({:.0} ms per image); the emulated modality's CPU \
         {modality_cpu_s:.1} s",
        modality_done.as_secs_f64(),
        caught_up.as_secs_f64(),
        tree_peak_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0,
        cpu_s * 1000.0 / images as f64,
    );
    let note = format!(
        "{PARTICIPANTS} participants one after another through `gateway emulate-modality` (C-FIND, \
         MPPS, 4 C-STOREs of 4096 × 3328 over one association, synthesized by the emulator on \
         the same cores: {modality_cpu_s:.1} s of CPU) into the release gateway; web app on \
         SQLite and Chromium watching the clinic page and the last appointment page; one day"
    );
    let row = |metric: &str, unit: &str, better: &str, ours: f64, reference: Value| {
        let (reference, reference_value) = match reference {
            Value::Null => (Value::Null, Value::Null),
            value => (
                json!("seeds' polling (2 s images + 0.2 s stream), computed mean"),
                value,
            ),
        };
        json!({
            "benchmark": BENCHMARK,
            "metric": metric,
            "unit": unit,
            "better": better,
            "ours": round(ours, 1),
            "reference": reference,
            "reference_value": reference_value,
            "n": 1,
            "note": note,
        })
    };
    vec![
        row(
            "images stored per second, emulated modality included",
            "images/s",
            "higher",
            per_s,
            Value::Null,
        ),
        row(
            "last C-STORE answered → its thumbnail in the browser DOM",
            "ms",
            "lower",
            to_thumbnail,
            json!(1100.0),
        ),
        row(
            "gateway peak RSS with its render children (ceiling 64 MB)",
            "MB",
            "lower",
            tree_peak_kb as f64 / 1024.0,
            Value::Null,
        ),
        row(
            "gateway CPU, render children included",
            "s",
            "lower",
            cpu_s,
            Value::Null,
        ),
    ]
}

/// Books participants into the seeded morning clinic until it has the day's [`PARTICIPANTS`],
/// all checked in (the seed makes ten), eight minutes apart after the seed's.
async fn book_the_day(db: &web::server::db::Db, provider_id: i64, clinic_id: i64) {
    let booked = clinics::detail(db, provider_id, clinic_id)
        .await
        .unwrap()
        .appointments
        .len();
    support::book_participants(
        db,
        (provider_id, clinic_id),
        PARTICIPANTS.saturating_sub(booked),
        "DAY",
        500_000,
        (9 * 60 + booked * 8, 8),
    )
    .await;
}

/// One participant through `gateway emulate-modality`; when (Unix ms) the answer to its last
/// C-STORE was printed.
async fn emulate_procedure(
    gateway_bin: &Path,
    settings: &GatewaySettings,
    accession: &str,
) -> u128 {
    let mut child = Command::new(gateway_bin)
        .arg("emulate-modality")
        .args(["--mwl", &format!("127.0.0.1:{}", settings.mwl_port)])
        .args(["--mwl-aet", MWL_AET])
        .args(["--pacs", &format!("127.0.0.1:{}", settings.pacs_port)])
        .args(["--pacs-aet", "SCREENING_PACS"])
        .args(["--accession", accession])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start gateway emulate-modality");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stored = 0;
    let mut last_stored_ms = 0;
    let mut transcript = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("C-STORE ") && line.ends_with(": stored") {
            stored += 1;
            last_stored_ms = browser::now_ms();
        }
        transcript.push(line);
    }
    let status = child.wait().await.expect("wait for the emulator");
    assert!(
        status.success() && stored == VIEWS,
        "the emulated procedure for {accession} failed:\n{}",
        transcript.join("\n")
    );
    last_stored_ms
}

async fn step(page: &mut Script, prefix: &str) -> String {
    tokio::time::timeout(STEP_LIMIT, page.step(prefix))
        .await
        .unwrap_or_else(|_| panic!("no STEP {prefix} within {} s", STEP_LIMIT.as_secs()))
}

/// Samples the gateway's process tree's resident memory on a thread of its own.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, usize)>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let (mut peak, mut samples) = (0, 0);
                while !stop.load(Ordering::SeqCst) {
                    peak = peak.max(tree_rss_kb(pid));
                    samples += 1;
                    std::thread::sleep(SAMPLE_EVERY);
                }
                (peak, samples)
            }
        });
        Sampler { stop, thread }
    }

    /// The peak summed VmRSS in KiB, and how many samples it is the peak of.
    fn stop(self) -> (u64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// VmRSS of `pid` and every process whose parent it is (the render children), in KiB.
fn tree_rss_kb(pid: u32) -> u64 {
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid));
    std::iter::once(pid)
        .chain(children)
        .filter_map(|p| status_kb(p, "VmRSS:"))
        .sum()
}

fn parent_of(pid: u32) -> Option<u32> {
    proc_stat_sum(&format!("/proc/{pid}/stat"), 4..=4).and_then(|p| u32::try_from(p).ok())
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
