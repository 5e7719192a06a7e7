//! Modality Worklist C-FIND latency with 10,000 scheduled items: ours against dcmtk's
//! `wlmscpfs` serving the same items as `.wl` files, in the same run.
//!
//! A screening unit asks the worklist many times a day, and a busy site schedules weeks ahead,
//! so the query must stay fast when the worklist is large. Three queries, each on a fresh
//! association as a modality makes them: (a) by AccessionNumber (1 match), (b) by
//! ScheduledProcedureStepStartDate, a one-day range (~357 matches), (c) by PatientName
//! `PATEL*` (1,000 matches). The client is the same for both servers (our `Scu`, in this
//! process, so no process start-up is timed); a sample runs from connect to the final C-FIND
//! response, every response decoded, release not timed. 3 warm-up queries, then 30 measured per
//! case, ours and dcmtk alternating so load from elsewhere on the machine hits both alike. Both
//! servers must return the expected number of matches for every query, or the bench panics.
//! wlmscpfs runs as shipped (a process per association, every `.wl` file read per query) with
//! TCP_NODELAY=1, without which Debian's dcmtk leaves Nagle on.
//!
//! `cargo bench -p appliance --bench worklist`; rows to `$BENCH_OUT` when set.

use shared::loopback::free_port;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use appliance::config::Config;
use appliance::dimse::scu::Scu;
use appliance::dimse::{field, status, Command as DimseCommand};
use appliance::server::Gateway;
use appliance::worklist::{self, WorklistEntry};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use serde_json::json;
use shared::wire::action::{Participant, Procedure, Scheduled, WorklistItem};

const ITEMS: usize = 10_000;
const DAYS: usize = 28;
const WARMUP: usize = 3;
const RUNS: usize = 30;
const DCMTK_AET: &str = "DCMTK_MWL";
const CALLING_AET: &str = "MAMMO1";
const SURNAMES: [&str; 10] = [
    "SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "PATEL",
    "WRIGHT",
];
const SUFFIXES: [&str; 5] = ["", "SON", "FORD", "LEY", "TON"];
const GIVEN: [&str; 8] = [
    "JANE", "MARY", "SUSAN", "ANNE", "PRIYA", "FIONA", "GRACE", "HELEN",
];
const BENCHMARK: &str = "Worklist C-FIND, 10,000 items";

/// The scheduled date of item `i`: 28 consecutive days from 2 November 2026, ~357 a day.
fn day_of(i: usize) -> usize {
    i * DAYS / ITEMS
}

fn date(day: usize) -> String {
    format!("{}", 20261102 + day) // 2–29 November: no month boundary
}

/// The deterministic worklist: same every run, and the same for both servers.
fn generate() -> Vec<WorklistItem> {
    (0..ITEMS)
        .map(|i| {
            let day = day_of(i);
            // The day's first item; its items run from 08:00 to 17:00, evenly spaced.
            let first = (day * ITEMS).div_ceil(DAYS);
            let second = 8 * 3600 + (i - first) * 9 * 3600 * DAYS / ITEMS;
            WorklistItem {
                accession_number: format!("BENCH{i:06}"),
                participant: Participant {
                    nhs_number: format!("9{i:09}"),
                    name: format!(
                        "{}{}^{}",
                        SURNAMES[i % SURNAMES.len()],
                        SUFFIXES[(i / SURNAMES.len()) % SUFFIXES.len()],
                        GIVEN[(i / 50) % GIVEN.len()]
                    ),
                    birth_date: format!("{}{:02}{:02}", 1950 + i % 25, 1 + i % 12, 1 + i % 28),
                    sex: "F".into(),
                },
                scheduled: Scheduled {
                    date: date(day),
                    time: format!(
                        "{:02}{:02}{:02}",
                        second / 3600,
                        second / 60 % 60,
                        second % 60
                    ),
                },
                procedure: Procedure {
                    modality: "MG".into(),
                    study_description: "Breast screening".into(),
                },
            }
        })
        .collect()
}

struct Case {
    name: &'static str,
    /// Matching key: top-level tag, or in the Scheduled Procedure Step item.
    key: Tag,
    key_name: &'static str,
    in_step: bool,
    value: String,
    expected: usize,
}

fn cases(items: &[WorklistItem]) -> Vec<Case> {
    let accession = format!("BENCH{:06}", ITEMS / 2 + 123);
    let day = date(13);
    let prefix = "PATEL";
    vec![
        Case {
            name: "by accession number",
            key: tags::ACCESSION_NUMBER,
            key_name: "AccessionNumber",
            in_step: false,
            expected: items
                .iter()
                .filter(|i| i.accession_number == accession)
                .count(),
            value: accession,
        },
        Case {
            name: "by scheduled date, one day",
            key: tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
            key_name: "ScheduledProcedureStepStartDate",
            in_step: true,
            expected: items.iter().filter(|i| i.scheduled.date == day).count(),
            value: format!("{day}-{day}"),
        },
        Case {
            name: "by patient name PATEL*",
            key: tags::PATIENT_NAME,
            key_name: "PatientName",
            in_step: false,
            expected: items
                .iter()
                .filter(|i| i.participant.name.starts_with(prefix))
                .count(),
            value: format!("{prefix}*"),
        },
    ]
}

/// What a screening unit asks for: the keys it shows and stamps on images, with one matching
/// key filled in.
fn identifier(case: &Case) -> InMemDicomObject {
    let value = |tag: Tag, in_step: bool| {
        if tag == case.key && in_step == case.in_step {
            case.value.clone()
        } else {
            String::new()
        }
    };
    let mut step = InMemDicomObject::new_empty();
    for (tag, vr) in [
        (tags::MODALITY, VR::CS),
        (tags::SCHEDULED_STATION_AE_TITLE, VR::AE),
        (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA),
        (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM),
        (tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH),
        (tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, VR::LO),
    ] {
        step.put(DataElement::new(
            tag,
            vr,
            PrimitiveValue::from(value(tag, true)),
        ));
    }
    let mut query = InMemDicomObject::new_empty();
    for (tag, vr) in [
        (tags::ACCESSION_NUMBER, VR::SH),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_INSTANCE_UID, VR::UI),
        (tags::REQUESTED_PROCEDURE_DESCRIPTION, VR::LO),
        (tags::REQUESTED_PROCEDURE_ID, VR::SH),
    ] {
        query.put(DataElement::new(
            tag,
            vr,
            PrimitiveValue::from(value(tag, false)),
        ));
    }
    query.put(DataElement::new(
        tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![step]),
    ));
    query
}

/// One query as a modality makes it: associate, C-FIND, read every response. Returns the time
/// to the final response and the number of matches.
async fn find(address: &str, called: &str, query: &InMemDicomObject) -> (Duration, usize) {
    tokio::time::timeout(Duration::from_secs(60), find_once(address, called, query))
        .await
        .unwrap_or_else(|_| panic!("{called}: no final C-FIND response within 60 s"))
}

async fn find_once(address: &str, called: &str, query: &InMemDicomObject) -> (Duration, usize) {
    let started = Instant::now();
    let mut scu = Scu::connect(
        address,
        CALLING_AET,
        called,
        &[uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND],
    )
    .await
    .unwrap_or_else(|e| panic!("{called}: {e}"));
    let responses = scu
        .request(
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            DimseCommand {
                command_field: field::C_FIND_RQ,
                affected_sop_class_uid: Some(uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into()),
                priority: Some(0),
                ..DimseCommand::default()
            },
            Some(query),
        )
        .await
        .unwrap_or_else(|e| panic!("{called}: C-FIND failed: {e}"));
    let elapsed = started.elapsed();
    let last = responses.last().map(|r| r.status());
    assert_eq!(
        last,
        Some(status::SUCCESS),
        "{called}: the C-FIND did not end in success"
    );
    let found = responses.iter().filter(|r| r.data_set.is_some()).count();
    let _ = scu.release().await;
    (elapsed, found)
}

/// wlmscpfs, killed on drop so a panicking bench does not leave it listening.
struct Wlmscpfs {
    child: Child,
    port: u16,
}

impl Wlmscpfs {
    fn start(data_files: &Path, log: &Path) -> Wlmscpfs {
        let found = Command::new("sh")
            .args(["-c", "command -v wlmscpfs"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "dcmtk's `wlmscpfs` is not installed: run scripts/deps.sh (apt package dcmtk)"
        );
        let port = free_port();
        let child = Command::new("wlmscpfs")
            .arg("-dfp")
            .arg(data_files)
            .arg(port.to_string())
            // Debian's dcmtk leaves Nagle on unless told otherwise (~40 ms per response).
            .env("TCP_NODELAY", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .expect("start wlmscpfs");
        let mut server = Wlmscpfs { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(exit)) = server.child.try_wait() {
                panic!(
                    "wlmscpfs exited ({exit}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "wlmscpfs is not listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Wlmscpfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests' virtualenv python, as `tests/common/mod.rs` finds it.
fn python() -> PathBuf {
    let path = std::env::var_os("DICOM_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("SCREENING_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/screening-gateway")
                })
                .join("venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} does not exist: run scripts/deps.sh to create the virtualenv with pydicom \
         (or set DICOM_TEST_PYTHON)",
        path.display()
    );
    path
}

/// The same entries as wlmscpfs data files, written by `peer.py make-worklist` (pydicom).
fn write_worklist_files(entries: &[WorklistEntry], dir: &Path) -> PathBuf {
    let json_path = dir.join("items.json");
    std::fs::write(&json_path, serde_json::to_vec(entries).unwrap()).unwrap();
    let data_files = dir.join("wlmscpfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/peer.py");
    let output = Command::new(python())
        .arg(script)
        .arg("make-worklist")
        .arg("--items")
        .arg(&json_path)
        .arg("--out")
        .arg(data_files.join(DCMTK_AET))
        .arg("--station")
        .arg(CALLING_AET)
        .output()
        .expect("run peer.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reply: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "peer.py make-worklist printed no JSON ({})\nstdout: {stdout}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert_eq!(reply["files"].as_u64(), Some(entries.len() as u64));
    data_files
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)]
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1000.0
}

/// Three significant figures or so: 0.512, 29.1, 448.
fn short(ms: f64) -> String {
    match ms {
        m if m < 10.0 => format!("{m:.2}"),
        m if m < 100.0 => format!("{m:.1}"),
        m => format!("{m:.0}"),
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let items = generate();
    let cases = cases(&items);

    // Ours: the gateway in this process on its own two-worker runtime, as the tests run it.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::new(dir.path().join("gateway"));
    config.bind = "127.0.0.1".parse().unwrap();
    config.mwl_port = 0;
    config.pacs_port = 0;
    // In a test binary, /proc/self/exe is the test: render with the gateway binary.
    config.thumbnail_renderer = env!("CARGO_BIN_EXE_gateway").into();
    let our_aet = config.mwl_aet.clone();
    let running = server
        .block_on(async { Gateway::open(config)?.start().await })
        .expect("gateway starts");
    let entries: Vec<WorklistEntry> = items
        .iter()
        .map(|item| WorklistEntry::new(item.clone(), None, None).unwrap())
        .collect();
    let started = Instant::now();
    running
        .db
        .write(|txn| {
            entries
                .iter()
                .try_for_each(|entry| worklist::insert(txn, entry))
        })
        .expect("insert the items");
    println!(
        "gateway: {ITEMS} items inserted in one transaction in {:.0} ms",
        ms(started.elapsed())
    );
    let ours_addr = running.mwl_addr.to_string();

    // dcmtk: the same entries (study UIDs included) as one .wl file each.
    let started = Instant::now();
    let data_files = write_worklist_files(&entries, dir.path());
    println!(
        "wlmscpfs: {ITEMS} .wl files written by pydicom in {:.0} ms",
        ms(started.elapsed())
    );
    let dcmtk = Wlmscpfs::start(&data_files, &dir.path().join("wlmscpfs.log"));
    let dcmtk_addr = format!("127.0.0.1:{}", dcmtk.port);

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for case in &cases {
        let query = identifier(case);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..WARMUP + RUNS {
            let (t_ours, n_ours) = client.block_on(find(&ours_addr, &our_aet, &query));
            let (t_dcmtk, n_dcmtk) = client.block_on(find(&dcmtk_addr, DCMTK_AET, &query));
            if n_ours != case.expected || n_dcmtk != case.expected {
                panic!(
                    "{}: {}={:?} should match {} items; the gateway returned {n_ours}, \
                     wlmscpfs {n_dcmtk}",
                    case.name, case.key_name, case.value, case.expected
                );
            }
            if round >= WARMUP {
                ours.push(t_ours);
                theirs.push(t_dcmtk);
            }
        }
        let matches = match case.expected {
            1 => "1 match".to_string(),
            n => format!("{n} matches"),
        };
        let note = format!(
            "{matches}, {} {}; fresh association per query; p99 of {RUNS} is the slowest",
            case.key_name, case.value
        );
        let (ours_min, dcmtk_min) = (
            ms(*ours.iter().min().unwrap()),
            ms(*theirs.iter().min().unwrap()),
        );
        let mut line = (case.name, case.expected, [0.0; 4]);
        for (i, (label, q)) in [("p50", 0.50), ("p99", 0.99)].into_iter().enumerate() {
            let (o, d) = (ms(percentile(&mut ours, q)), ms(percentile(&mut theirs, q)));
            line.2[i * 2] = o;
            line.2[i * 2 + 1] = d;
            rows.push(json!({
                "benchmark": BENCHMARK,
                "metric": format!("{}, {label}", case.name),
                "unit": "ms",
                "better": "lower",
                "ours": o,
                "ours_spread": format!("min {}", short(ours_min)),
                "reference": "dcmtk wlmscpfs",
                "reference_value": d,
                "reference_spread": format!("min {}", short(dcmtk_min)),
                "n": RUNS,
                "note": note,
            }));
        }
        table.push(line);
    }
    drop(dcmtk);
    server.block_on(running.shutdown(Duration::from_secs(5)));

    println!(
        "\n{BENCHMARK}: C-FIND latency, ms, fresh association per query, {RUNS} measured after \
         {WARMUP} warm-up"
    );
    println!(
        "{:<28} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "query", "matches", "ours p50", "ours p99", "dcmtk p50", "dcmtk p99", "p50 ratio"
    );
    for (name, matches, [o50, d50, o99, d99]) in &table {
        println!(
            "{name:<28} {matches:>8} {o50:>9.2} {o99:>9.2} {d50:>10.1} {d99:>10.1} {:>8.0}×",
            d50 / o50
        );
    }
    println!("(dcmtk = wlmscpfs, default options, TCP_NODELAY=1; ratio = dcmtk / ours)");

    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({ "rows": rows })).unwrap(),
        )
        .unwrap();
    }
}
