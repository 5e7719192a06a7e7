//! Start-up on a large store: 100,000 indexed objects and a few that a crash left unindexed.
//! Start-up must not grow with the store (systemd's start timeout would kill it), and the
//! unindexed ones must still be indexed. A measurement, not a timing assertion: run it with
//! `cargo test -p appliance --release --test startup_scale -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use appliance::config::Config;
use appliance::db::Database;
use appliance::server::Gateway;
use appliance::storage::index::{self, DataSetFacts, FileFacts, InstanceRecord, Uids};
use appliance::storage::FileStore;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

const INDEXED: usize = 100_000;
const UNINDEXED: usize = 10;

/// A small synthetic MG file for instance `n`.
fn file_bytes(n: usize) -> (String, Vec<u8>) {
    let sop = format!("1.2.826.0.1.3680043.10.1080.9.{n}");
    let mut obj = InMemDicomObject::new_empty();
    let mg = uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION;
    for (tag, vr, value) in [
        (tags::SOP_CLASS_UID, VR::UI, mg.to_string()),
        (tags::SOP_INSTANCE_UID, VR::UI, sop.clone()),
        (tags::PATIENT_ID, VR::LO, "9434765919".into()),
        (tags::ACCESSION_NUMBER, VR::SH, format!("ACC{}", n % 1000)),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            format!("1.2.826.0.1.3680043.10.1080.8.{}", n / 4),
        ),
        (
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            format!("1.2.826.0.1.3680043.10.1080.7.{}", n / 4),
        ),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(vec![0u16; 64].into()),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(mg)
                .media_storage_sop_instance_uid(sop.as_str())
                .source_application_entity_title("MODALITY1"),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    (sop, bytes)
}

fn record(sop: &str, n: usize, size: u64) -> InstanceRecord {
    InstanceRecord::new(
        Uids {
            sop_instance_uid: sop.into(),
            sop_class_uid: uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION.into(),
            series_instance_uid: format!("1.2.826.0.1.3680043.10.1080.7.{}", n / 4),
            study_instance_uid: format!("1.2.826.0.1.3680043.10.1080.8.{}", n / 4),
        },
        DataSetFacts::default(),
        FileFacts {
            transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN.into(),
            file_path: FileStore::relative_path(sop),
            file_size: size,
            file_sha256: "00".into(),
            received_at: "2026-11-22T09:30:00Z".into(),
            calling_ae: "MODALITY1".into(),
        },
    )
}

#[test]
#[ignore = "a measurement: writes 100,000 files; run with --ignored --nocapture"]
fn start_up_with_100000_indexed_objects() {
    let state = tempfile::tempdir().unwrap();
    let made = Instant::now();
    {
        let files = FileStore::open(&state.path().join("storage")).unwrap();
        let db = Database::open(&appliance::db::path_in(state.path())).unwrap();
        let txn = db.begin_write().unwrap();
        for n in 0..INDEXED + UNINDEXED {
            let (sop, bytes) = file_bytes(n);
            let path = files.absolute(&FileStore::relative_path(&sop));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            if n < INDEXED {
                index::insert(&txn, &record(&sop, n, bytes.len() as u64), None, None).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    eprintln!(
        "made {INDEXED} indexed and {UNINDEXED} unindexed objects in {:.1} s",
        made.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::new(state.path().to_path_buf());
    config.bind = "127.0.0.1".parse().unwrap();
    config.mwl_port = 0;
    config.pacs_port = 0;
    // In a test binary, /proc/self/exe is the test: render with the gateway binary.
    config.thumbnail_renderer = env!("CARGO_BIN_EXE_gateway").into();
    let started = Instant::now();
    let running = runtime
        .block_on(async { Gateway::open(config)?.start().await })
        .expect("gateway starts");
    // Where `gateway serve` tells systemd READY=1.
    let ready = started.elapsed();
    let unindexed: Vec<String> = (INDEXED..INDEXED + UNINDEXED)
        .map(|n| format!("1.2.826.0.1.3680043.10.1080.9.{n}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !unindexed
        .iter()
        .all(|sop| index::get_instance(&running.db, sop).unwrap().is_some())
    {
        assert!(
            Instant::now() < deadline,
            "the unindexed files were never indexed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let indexed = started.elapsed();
    eprintln!(
        "start-up with {INDEXED} indexed objects: ready after {} ms, the {UNINDEXED} unindexed \
         indexed after {} ms",
        ready.as_millis(),
        indexed.as_millis()
    );
    runtime.block_on(running.shutdown(Duration::from_secs(5)));
}
