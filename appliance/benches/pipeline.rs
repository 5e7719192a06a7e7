//! Gateway pipeline figures, each beside its reference in the same run:
//!
//! 1. Thumbnail of one full-size (4096 × 3328, 16-bit) mammogram per transfer syntax: ours
//!    (open + decode + window + scale + JPEG q25, in process) against dcmtk's
//!    `dcmj2pnm +oj +Jq 25 +Wm +Syv 188` (after `dcmdjpls` for JPEG-LS, which dcmj2pnm cannot
//!    read) on the same file. Compressed copies are made with dcmtk (`dcmcjpeg`, `dcmcrle`,
//!    `dcmcjpls`) and GDCM (`gdcmconv`, JPEG 2000) when installed.
//! 2. "Send to modality" → the item answers a C-FIND: a signed `worklist.create_item` through the
//!    relay emulator to the gateway, then a C-FIND by accession number, p50/p99 over 200; the
//!    NHS seeds poll every 1 s (mean 500 ms by construction).
//!
//! `cargo bench -p appliance --bench pipeline`; JSON to `$BENCH_OUT` when set.

// The tests' cloud-side harness: relay emulator, keys, and the gateway as `gateway serve` runs it.
#[path = "../tests/common/cloud.rs"]
#[allow(dead_code)]
mod cloud;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use appliance::config::Config;
use appliance::dimse::scu::Scu;
use appliance::dimse::{field, Command as DimseCommand};
use appliance::modality::images::{mammogram, Subject, SCREENING_VIEWS};
use appliance::thumbnail::{first_frame, render};
use cloud::Relay;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::json;
use shared::relay::Sender;
use shared::wire::action::{Action, Command as ActionCommand};

const RUNS: usize = 5;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // BENCH_KEEP_OBJECTS=DIR keeps the mammograms there, to profile a decoder on them.
    let objects = std::env::var_os("BENCH_KEEP_OBJECTS").map(PathBuf::from);
    let objects = objects.as_deref().unwrap_or(dir.path());
    println!("gateway pipeline bench on {} cores", cores());
    let mut rows = thumbnails(objects);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    rows.extend(runtime.block_on(send_to_modality(dir.path())));
    // Rows for BENCHMARKS.md (scripts/bench-report.py describes the format).
    if let Ok(path) = std::env::var("BENCH_OUT") {
        let out = json!({ "rows": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median and "min–max" text of timed runs.
fn summary(samples: Vec<Duration>) -> (Duration, String) {
    let min = samples.iter().min().copied().unwrap_or_default();
    let max = samples.iter().max().copied().unwrap_or_default();
    (median(samples), format!("{:.0}–{:.0}", ms(min), ms(max)))
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The full-size synthetic RCC view, uncompressed, as a file.
fn write_mammogram(path: &Path) {
    let subject = Subject {
        patient_id: "9434765919".into(),
        patient_name: "SMITH^JANE".into(),
        birth_date: "19700101".into(),
        sex: "F".into(),
        accession_number: "ACCBENCH".into(),
        study_instance_uid: "2.25.1".into(),
        study_description: "Screening mammography".into(),
    };
    let obj: InMemDicomObject = mammogram(&subject, "2.25.2", SCREENING_VIEWS[0], 1, 4096, 3328);
    let sop = obj
        .get(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(
                    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
                )
                .media_storage_sop_instance_uid(sop),
        )
        .unwrap();
    file.write_to_file(path).unwrap();
}

fn run(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `program args` to its end; whether it succeeded and its peak RSS in bytes. Measured by
/// GNU time (`/usr/bin/time`, a few hundred KB itself), not by `wait4` here: a child's maximum
/// RSS includes what its process held before `exec`, a copy of this bench, which is large.
fn peak_rss(program: &str, args: &[String], dir: &Path) -> (bool, u64) {
    let out = dir.join("peak_rss.txt");
    let ok = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&out)
        .arg(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    let kib: u64 = std::fs::read_to_string(&out)
        .ok()
        .and_then(|text| text.trim().lines().last()?.trim().parse().ok())
        .unwrap_or(0);
    (ok, kib * 1024)
}

/// Peak RSS of one thumbnail in the gateway's render child (the process the gateway really
/// runs per image, with the limits it really sets) against the reference's processes.
fn render_memory_row(
    name: &str,
    file: &Path,
    decompress_first: Option<&str>,
    j2k: bool,
    dir: &Path,
) -> serde_json::Value {
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let args = |list: &[&str]| -> Vec<String> { list.iter().map(|a| a.to_string()).collect() };
    let (ok, ours) = peak_rss(
        env!("CARGO_BIN_EXE_gateway"),
        &args(&[
            "render-thumbnail",
            "--memory-mib",
            "1024",
            "--cpu-secs",
            "60",
            &p(file),
        ]),
        dir,
    );
    assert!(ok, "gateway render-thumbnail failed on {name}");
    let raw = dir.join("reference_raw.dcm");
    let mut reference = 0;
    let mut input = file.to_path_buf();
    let decompressor = if j2k {
        Some("gdcmconv")
    } else {
        decompress_first
    };
    if let Some(tool) = decompressor.filter(|t| have(t)) {
        let args: Vec<String> = if j2k {
            vec!["--raw".into(), p(file), p(&raw)]
        } else {
            vec![p(file), p(&raw)]
        };
        let (ok, peak) = peak_rss(tool, &args, dir);
        assert!(ok, "{tool} failed on {name}");
        reference = peak;
        input = raw;
    }
    let jpg = dir.join("dcmtk.jpg");
    let (ok, peak) = peak_rss(
        "dcmj2pnm",
        &args(&[
            "+oj",
            "+Jq",
            "25",
            "+Wm",
            "+Syv",
            "188",
            &p(&input),
            &p(&jpg),
        ]),
        dir,
    );
    assert!(ok, "dcmj2pnm failed on {name}");
    reference = reference.max(peak);
    let mb = |bytes: u64| bytes as f64 / 1e6;
    println!(
        "{name:<20} peak RSS: render child {:.1} MB, reference {:.1} MB",
        mb(ours),
        mb(reference)
    );
    json!({
        "benchmark": "Thumbnail of one 4096 × 3328 16-bit mammogram (188 px high, JPEG q25)",
        "metric": format!("{name}: peak RSS"),
        "unit": "MB",
        "better": "lower",
        "ours": mb(ours),
        "reference": match decompressor {
            Some("gdcmconv") => "GDCM gdcmconv --raw, then dcmtk dcmj2pnm (the larger)",
            Some(_) => "dcmtk dcmdjpls, then dcmj2pnm (the larger)",
            None => "dcmtk dcmj2pnm",
        },
        "reference_value": mb(reference),
        "n": 1,
        "note": "ours: `gateway render-thumbnail`, the child process the gateway runs per image",
    })
}

fn thumbnails(dir: &Path) -> Vec<serde_json::Value> {
    let plain = dir.join("mg_plain.dcm");
    write_mammogram(&plain);
    let path = |name: &str| dir.join(name);
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    // (name, file, the dcmtk tool that must decompress it before dcmj2pnm can read it)
    let mut cases: Vec<(&str, PathBuf, Option<&str>)> = vec![("uncompressed", plain.clone(), None)];
    if have("dcmcjpeg") {
        let out = path("mg_jpegll.dcm");
        if run("dcmcjpeg", &["+e1", &p(&plain), &p(&out)]) {
            cases.push(("JPEG lossless SV1", out, None));
        }
    }
    if have("dcmcrle") {
        let out = path("mg_rle.dcm");
        if run("dcmcrle", &[&p(&plain), &p(&out)]) {
            cases.push(("RLE", out, None));
        }
    }
    if have("dcmcjpls") && have("dcmdjpls") {
        let out = path("mg_jls.dcm");
        if run("dcmcjpls", &[&p(&plain), &p(&out)]) {
            cases.push(("JPEG-LS lossless", out, Some("dcmdjpls")));
        }
        let near = path("mg_jls_near.dcm");
        if run("dcmcjpls", &["+en", &p(&plain), &p(&near)]) {
            cases.push(("JPEG-LS near-lossless (NEAR 2)", near, Some("dcmdjpls")));
        }
    }
    if have("gdcmconv") {
        let lossless = path("mg_j2k.dcm");
        if run("gdcmconv", &["--j2k", &p(&plain), &p(&lossless)]) {
            cases.push(("JPEG 2000 lossless", lossless, None));
        }
        let lossy = path("mg_j2k_lossy.dcm");
        if run(
            "gdcmconv",
            &["--j2k", "--lossy", "-r", "10", &p(&plain), &p(&lossy)],
        ) {
            cases.push(("JPEG 2000 lossy", lossy, None));
        }
    } else {
        println!("(JPEG 2000 rows skipped: gdcmconv not installed — apt package libgdcm-tools)");
    }

    println!(
        "\nthumbnail of one 4096×3328 16-bit mammogram (188 px high, JPEG q25), median of {RUNS}"
    );
    println!(
        "{:<20} {:>10} {:>12} {:>8}",
        "transfer syntax", "ours ms", "dcmtk ms", "ratio"
    );
    let mut rows = Vec::new();
    // A lossless codec's thumbnail is the uncompressed object's, to the byte: a decoder made
    // faster must not have been made wrong.
    let expected = first_frame::open(&plain).and_then(|o| render(&o)).unwrap();
    for (name, file, decompress_first) in cases {
        let lossless = !name.starts_with("JPEG 2000") && !name.contains("near-lossless");
        if lossless {
            let rendered = first_frame::open(&file).and_then(|o| render(&o));
            assert!(
                rendered.as_ref().ok() == Some(&expected),
                "{name}: the thumbnail differs from the uncompressed object's"
            );
        }
        let ours = (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                // What the render child does: attributes and the first frame, then render.
                let result = first_frame::open(&file).and_then(|object| render(&object));
                (started.elapsed(), result.is_ok())
            })
            .collect::<Vec<_>>();
        let ours_ok = ours.iter().all(|(_, ok)| *ok);
        let (ours, ours_spread) = summary(ours.into_iter().map(|(d, _)| d).collect());
        let jpg = dir.join("dcmtk.jpg");
        let raw = dir.join("reference_raw.dcm");
        let j2k = name.starts_with("JPEG 2000");
        // dcmtk reads neither JPEG-LS (without dcmdjpls first) nor JPEG 2000 (GDCM decompresses
        // first, as the reference figures were measured): the decompression is timed too.
        let reference_available = have("dcmj2pnm") && (!j2k || have("gdcmconv"));
        let reference = reference_available.then(|| {
            summary(
                (0..RUNS)
                    .map(|_| {
                        let started = Instant::now();
                        let input = if j2k {
                            assert!(run("gdcmconv", &["--raw", &p(&file), &p(&raw)]));
                            raw.clone()
                        } else if let Some(tool) = decompress_first {
                            assert!(run(tool, &[&p(&file), &p(&raw)]), "{tool} failed");
                            raw.clone()
                        } else {
                            file.clone()
                        };
                        let ok = run(
                            "dcmj2pnm",
                            &[
                                "+oj",
                                "+Jq",
                                "25",
                                "+Wm",
                                "+Syv",
                                "188",
                                &p(&input),
                                &p(&jpg),
                            ],
                        );
                        assert!(ok, "dcmj2pnm failed on {name}");
                        started.elapsed()
                    })
                    .collect(),
            )
        });
        let ours_text = if ours_ok {
            format!("{:.0}", ms(ours))
        } else {
            "no decoder".into()
        };
        let reference_name = if j2k {
            "GDCM gdcmconv --raw + dcmtk dcmj2pnm"
        } else if decompress_first.is_some() {
            "dcmtk dcmdjpls + dcmj2pnm"
        } else {
            "dcmtk dcmj2pnm"
        };
        rows.push(json!({
            "benchmark": "Thumbnail of one 4096 × 3328 16-bit mammogram (188 px high, JPEG q25)",
            "metric": name,
            "unit": "ms",
            "better": "lower",
            "ours": ours_ok.then(|| ms(ours)),
            "ours_spread": ours_ok.then_some(ours_spread),
            "reference": reference_name,
            "reference_value": reference.as_ref().map(|(r, _)| ms(*r)),
            "reference_spread": reference.as_ref().map(|(_, spread)| spread.clone()),
            "n": RUNS,
            "note": if ours_ok { "open + decode + window + scale + encode, in process" } else { "not decoded: stored, thumbnail null" },
        }));
        if ours_ok && reference_available && Path::new("/usr/bin/time").exists() {
            rows.push(render_memory_row(name, &file, decompress_first, j2k, dir));
        }
        let reference = reference.map(|(r, _)| r);
        let (reference_text, ratio) = match reference {
            Some(r) if ours_ok => (format!("{:.0}", ms(r)), format!("{:.2}", ms(r) / ms(ours))),
            Some(r) => (format!("{:.0}", ms(r)), "—".into()),
            None => ("—".into(), "—".into()),
        };
        println!("{name:<20} {ours_text:>10} {reference_text:>12} {ratio:>8}");
    }
    println!("(ratio = dcmtk time / our time: above 1 means we are faster)");
    rows
}

async fn send_to_modality(dir: &Path) -> Vec<serde_json::Value> {
    const NAMESPACE: &str = "bench.servicebus.windows.net";
    const ITEMS: usize = 200;
    let relay = Relay::start(NAMESPACE).await;
    let mut config = Config::new(dir.join("gateway"));
    config.bind = "127.0.0.1".parse().unwrap();
    config.mwl_port = 0;
    config.pacs_port = 0;
    let service = relay.serve(config).await;
    let running = &service.dicom;
    let cloud_key = relay.cloud_key.clone();
    let sender = Sender::new(relay.config.clone(), "actions");
    let mwl = running.mwl_addr.to_string();
    let mut scu = Scu::connect(
        &mwl,
        "BENCH",
        "SCREENING_MWL",
        &[uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND],
    )
    .await
    .unwrap();

    let mut samples = Vec::with_capacity(ITEMS);
    for i in 0..ITEMS + 20 {
        let accession = format!("ACCB{i:06}");
        // Addressed and sealed as the cloud's outbox does: the gateway refuses anything else.
        let action = Action::new(
            "bench",
            ActionCommand::CreateItem(cloud::worklist_item(&accession)),
        )
        .addressed(cloud::GATEWAY_NAME, time::Duration::minutes(15));
        let text = cloud_key.seal(&action);
        let started = Instant::now();
        sender.request(&text).await.unwrap();
        let mut query = InMemDicomObject::new_empty();
        query.put(DataElement::new(
            tags::ACCESSION_NUMBER,
            VR::SH,
            PrimitiveValue::from(accession.clone()),
        ));
        query.put(DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from(""),
        ));
        let responses = scu
            .request(
                uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
                DimseCommand {
                    command_field: field::C_FIND_RQ,
                    affected_sop_class_uid: Some(
                        uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into(),
                    ),
                    priority: Some(0),
                    ..DimseCommand::default()
                },
                Some(&query),
            )
            .await
            .unwrap();
        let found = responses.iter().filter(|r| r.data_set.is_some()).count();
        assert_eq!(found, 1, "the item answers the C-FIND");
        if i >= 20 {
            samples.push(started.elapsed()); // the first 20 warm up
        }
    }
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    println!("\nsend to modality → item answers C-FIND (signed action via the relay emulator, {ITEMS} items)");
    println!("{:<24} {:>10} {:>10}", "", "p50 ms", "p99 ms");
    println!("{:<24} {:>10.2} {:>10.2}", "ours", ms(p50), ms(p99));
    println!(
        "{:<24} {:>10.0} {:>10.0}",
        "seeds' 1 s polling", 500.0, 990.0
    );
    println!("(polling: uniform 0–1000 ms wait, computed, not measured)");
    let _ = scu.release().await;
    [("p50", ms(p50), 500.0), ("p99", ms(p99), 990.0)]
        .into_iter()
        .map(|(at, ours, polling)| {
            json!({
                "benchmark": "System latency",
                "metric": format!("send to modality → item answers C-FIND, {at}"),
                "unit": "ms",
                "better": "lower",
                "ours": ours,
                "reference": "seeds' 1 s worklist polling (computed)",
                "reference_value": polling,
                "n": ITEMS - 20,
                "note": "signed action through the relay emulator, then C-FIND by accession",
            })
        })
        .collect()
}
