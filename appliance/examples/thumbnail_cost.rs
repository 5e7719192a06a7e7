//! What rendering in a child process costs per thumbnail: each file is thumbnailed RUNS times
//! in-process (open, read the event's attributes, render: what the worker did before) and RUNS
//! times through `GATEWAY render-thumbnail` (what it does now), in the same run; a full-size
//! 4096 × 3328 mammogram is written and measured first. Also times the extra redb transaction
//! that counts each attempt before it starts.
//!
//!     cargo build --release --target x86_64-unknown-linux-musl -p appliance --example thumbnail_cost
//!     target/x86_64-unknown-linux-musl/release/examples/thumbnail_cost \
//!         target/x86_64-unknown-linux-musl/release/gateway 10 FILE...

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use appliance::cloud::events::ImageExtra;
use appliance::modality::images::{mammogram, Subject, SCREENING_VIEWS};
use appliance::thumbnail::child::Outcome;
use appliance::thumbnail::{Limits, Renderer};
use dicom_dictionary_std::uids;
use dicom_object::meta::FileMetaTableBuilder;

// The same allocator as the shipped static binary (src/main.rs), so the in-process column is
// what the worker did before and not musl's slower malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

fn full_size_mammogram(dir: &Path) -> PathBuf {
    let subject = Subject {
        patient_id: "9434765919".into(),
        patient_name: "SMITH^JANE".into(),
        birth_date: "19700101".into(),
        sex: "F".into(),
        accession_number: "ACCCOST".into(),
        study_instance_uid: appliance::worklist::new_uid(),
        study_description: "Screening mammography".into(),
    };
    let uid = appliance::worklist::new_uid();
    let object = mammogram(&subject, &uid, SCREENING_VIEWS[0], 1, 4096, 3328);
    let path = dir.join("mg_4096x3328.dcm");
    object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(
                    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
                )
                .media_storage_sop_instance_uid(uid.as_str()),
        )
        .expect("file meta")
        .write_to_file(&path)
        .expect("write the mammogram");
    path
}

fn main() {
    let mut args = std::env::args().skip(1);
    let program = PathBuf::from(
        args.next()
            .expect("usage: thumbnail_cost GATEWAY RUNS FILE..."),
    );
    let runs: usize = args
        .next()
        .map_or(10, |n| n.parse().expect("RUNS is a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = vec![full_size_mammogram(dir.path())];
    files.extend(args.map(PathBuf::from));
    let renderer = Renderer {
        program,
        limits: Limits {
            memory_mib: 1024,
            timeout: Duration::from_secs(60),
        },
    };
    println!(
        "{:<22} {:>9} {:>14} {:>11} {:>12}",
        "file", "KiB", "in-process ms", "child ms", "overhead ms"
    );
    let (mut total_in, mut total_child) = (0.0, 0.0);
    for file in &files {
        let inside: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let object = dicom_object::open_file(file).expect("a DICOM file");
                let _extra = ImageExtra::read(&object);
                appliance::thumbnail::render(&object).expect("a thumbnail");
                started.elapsed()
            })
            .collect();
        let child: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                match renderer.render(file) {
                    Outcome::Rendered { .. } => {}
                    other => panic!("{}: {other:?}", file.display()),
                }
                started.elapsed()
            })
            .collect();
        let (a, b) = (median(inside), median(child));
        total_in += a;
        total_child += b;
        println!(
            "{:<22} {:>9} {:>14.1} {:>11.1} {:>12.1}",
            file.file_name().unwrap().to_string_lossy(),
            std::fs::metadata(file).map(|m| m.len() / 1024).unwrap_or(0),
            a,
            b,
            b - a
        );
    }
    println!(
        "{:<22} {:>9} {:>14.1} {:>11.1} {:>12.1}",
        "all, one each",
        "",
        total_in,
        total_child,
        total_child - total_in
    );

    // The durable attempt counter (a retry, or a job left by the last run): one more redb write
    // transaction (fsync'd commit). A fresh job's first attempt is batched instead.
    let db = appliance::db::Database::open(&dir.path().join("cost.redb")).expect("a database");
    let record: appliance::storage::InstanceRecord = serde_json::from_value(serde_json::json!({
        "sop_instance_uid": "1.2.3", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.2",
        "study_instance_uid": "1.2", "series_instance_uid": "1.2.1",
        "transfer_syntax": "1.2.840.10008.1.2.1", "file_path": "a/b.dcm", "file_size": 1,
        "file_sha256": "00", "calling_ae": "MOD", "received_at": "2026-12-01T10:00:00Z"
    }))
    .expect("a record");
    let counted: Vec<Duration> = (0..runs.max(20))
        .map(|_| {
            db.write(|txn| appliance::thumbnail::enqueue_job(txn, &record))
                .expect("enqueue");
            let started = Instant::now();
            appliance::thumbnail::jobs::begin_attempt(&db, "1.2.3", false).expect("begin");
            started.elapsed()
        })
        .collect();
    println!(
        "counting an attempt (one redb write transaction): {:.2} ms median",
        median(counted)
    );
}
