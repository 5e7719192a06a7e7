//! Storage SCP driven by dcmtk `storescu` (and pynetdicom for malformed requests): every
//! transfer syntax, full-size synthetic mammograms, duplicates, missing UIDs, disk full and
//! crash recovery.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use appliance::storage::index::{get_instance, InstanceRecord};
use appliance::storage::FileStore;
use common::*;
use shared::wire::action::WorklistStatus;

fn storescu(gw: &TestGateway, args: &[&str], files: &[&Path]) -> Output {
    dcmtk("storescu")
        .args(["-v", "-aet", "MODALITY1", "-aec", PACS_AET])
        .args(args)
        .arg("127.0.0.1")
        .arg(gw.pacs_port())
        .args(files)
        .output()
        .expect("storescu runs")
}

fn assert_stored(out: &Output) {
    let t = text(out);
    assert!(
        out.status.success() && !t.contains("Store Response (Error") && !t.contains("E: "),
        "storescu failed: {t}"
    );
}

fn sop_instance_uid(path: &Path) -> String {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .unwrap();
    obj.meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string()
}

/// The stored file holds the same data set as the original, and the index agrees with the
/// file on disk.
fn check_stored_copy(gw: &TestGateway, original: &Path, transfer_syntax: &str) -> InstanceRecord {
    let uid = sop_instance_uid(original);
    let record = get_instance(gw.db(), &uid)
        .unwrap()
        .unwrap_or_else(|| panic!("{} is not indexed", original.display()));
    assert_eq!(
        record.transfer_syntax,
        transfer_syntax,
        "{}",
        original.display()
    );
    assert_eq!(record.file_path, FileStore::relative_path(&uid));
    let stored = gw.storage_dir().join(&record.file_path);
    let bytes = std::fs::read(&stored).unwrap();
    assert_eq!(bytes.len() as u64, record.file_size);
    assert_eq!(
        appliance::storage::files::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        record.file_sha256
    );
    let cmp = peer(&[
        "compare",
        original.to_str().unwrap(),
        stored.to_str().unwrap(),
    ]);
    assert_eq!(
        cmp["same"],
        true,
        "{} changed in storage",
        original.display()
    );
    assert_eq!(cmp["ts"], transfer_syntax);
    record
}

#[test]
fn every_transfer_syntax_is_stored_as_sent() {
    // (storescu option that proposes the syntax, sample file, transfer syntax UID)
    let cases = [
        ("-xi", "MR_small_implicit.dcm", "1.2.840.10008.1.2"),
        ("-xe", "CT_small.dcm", "1.2.840.10008.1.2.1"),
        ("-xb", "MR_small_bigendian.dcm", "1.2.840.10008.1.2.2"),
        ("-xd", "image_dfl.dcm", "1.2.840.10008.1.2.1.99"),
        ("-xy", "SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50"),
        ("-xx", "JPGExtended.dcm", "1.2.840.10008.1.2.4.51"),
        ("-xs", "JPEG-LL.dcm", "1.2.840.10008.1.2.4.70"),
        (
            "-xt",
            "emri_small_jpeg_ls_lossless.dcm",
            "1.2.840.10008.1.2.4.80",
        ),
        ("-xv", "RG1_J2KR.dcm", "1.2.840.10008.1.2.4.90"),
        ("-xw", "RG1_J2KI.dcm", "1.2.840.10008.1.2.4.91"),
        ("-xr", "MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),
    ];
    for (option, name, ts) in cases {
        // Some samples share a SOP Instance UID, so each gets a fresh store.
        let gw = TestGateway::start();
        let file = sample(name);
        assert_stored(&storescu(&gw, &[option], &[&file]));
        check_stored_copy(&gw, &file, ts);
        assert_eq!(gw.stored_files().len(), 1);
    }
}

/// Full-size synthetic mammograms (4096 × 3328, 16 bit, 27 MB) in the syntaxes mammography
/// units send, generated here: pydicom for the original, dcmtk's codecs for the rest.
#[test]
fn full_size_mammograms_are_stored_and_indexed() {
    let work = tempfile::tempdir().unwrap();
    let made = peer(&[
        "make-mg",
        "--out",
        work.path().to_str().unwrap(),
        "--count",
        "1",
        "--accession",
        "ACCMG0000001",
    ]);
    let original = PathBuf::from(made["files"][0].as_str().unwrap());
    let variant = |tool: &str, args: &[&str], name: &str| -> PathBuf {
        let out = work.path().join(name);
        let status = dcmtk(tool)
            .args(args)
            .arg("+ua")
            .arg(&original)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "{tool} failed");
        out
    };
    let sv1 = variant("dcmcjpeg", &["+e1"], "mg_sv1.dcm");
    let rle = variant("dcmcrle", &[], "mg_rle.dcm");
    let jls = variant("dcmcjpls", &["+el"], "mg_jls.dcm");
    let jls_near = variant("dcmcjpls", &["+en"], "mg_jls_near.dcm");

    let gw = TestGateway::start();
    gw.add_item(
        item("ACCMG0000001", "Smith^Jane", "20261122", "093000"),
        None,
    );
    for (option, file, ts) in [
        ("-xe", &original, "1.2.840.10008.1.2.1"),
        ("-xs", &sv1, "1.2.840.10008.1.2.4.70"),
        ("-xr", &rle, "1.2.840.10008.1.2.5"),
        ("-xt", &jls, "1.2.840.10008.1.2.4.80"),
        ("-xu", &jls_near, "1.2.840.10008.1.2.4.81"),
    ] {
        assert_stored(&storescu(&gw, &[option], &[file]));
        let record = check_stored_copy(&gw, file, ts);
        assert_eq!(record.data_set.rows, Some(4096));
        assert_eq!(record.data_set.columns, Some(3328));
        assert_eq!(record.data_set.modality.as_deref(), Some("MG"));
        assert_eq!(record.calling_ae, "MODALITY1");
        assert_eq!(
            record.data_set.accession_number.as_deref(),
            Some("ACCMG0000001")
        );
        assert_eq!(record.data_set.image_laterality.as_deref(), Some("L"));
        assert_eq!(record.data_set.view_position.as_deref(), Some("CC"));
        assert_eq!(record.data_set.view_code.as_deref(), Some("cranio-caudal"));
        assert_eq!(record.data_set.kvp, Some(28.0));
        assert_eq!(record.data_set.exposure_uas, Some(120000.0));
        assert_eq!(record.data_set.organ_dose_dgy, Some(1.25));
        assert_eq!(record.data_set.entrance_dose_mgy, Some(5.1));
        assert_eq!(record.data_set.body_part_thickness_mm, Some(52.0));
        assert_eq!(record.data_set.anode.as_deref(), Some("TUNGSTEN"));
        assert_eq!(record.data_set.filter.as_deref(), Some("RHODIUM"));
    }
    assert_eq!(gw.stored_files().len(), 5);
    // The first image of a scheduled accession puts its item in progress.
    assert_eq!(gw.item("ACCMG0000001").status, WorklistStatus::InProgress);
}

#[test]
fn duplicate_instance_succeeds_and_is_stored_once() {
    let gw = TestGateway::start();
    let file = sample("CT_small.dcm");
    assert_stored(&storescu(&gw, &["-xe"], &[&file]));
    let first = get_instance(gw.db(), &sop_instance_uid(&file))
        .unwrap()
        .unwrap();
    assert_stored(&storescu(&gw, &["-xe"], &[&file, &file]));
    assert_eq!(gw.stored_files().len(), 1);
    let again = get_instance(gw.db(), &sop_instance_uid(&file))
        .unwrap()
        .unwrap();
    assert_eq!(first, again, "the first copy and its index row are kept");
}

#[test]
fn every_storage_sop_class_is_accepted() {
    // dcmtk storescu proposes its own list of ~120 storage classes; all must be accepted.
    let gw = TestGateway::start();
    let out = dcmtk("storescu")
        .args(["-d", "-aet", "MODALITY1", "-aec", PACS_AET, "127.0.0.1"])
        .arg(gw.pacs_port())
        .arg(sample("CT_small.dcm"))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("Accepted"), "{t}");
    assert!(!t.contains("(Abstract Syntax Not Supported)"), "{t}");
    use dicom_dictionary_std::uids;
    for class in [
        uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
        uids::BREAST_TOMOSYNTHESIS_IMAGE_STORAGE,
        uids::BREAST_PROJECTION_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
        uids::X_RAY_RADIATION_DOSE_SR_STORAGE,
    ] {
        assert!(
            appliance::storage::sop_classes::STORAGE_SOP_CLASSES.contains(&class),
            "{class}"
        );
    }
}

#[test]
fn missing_uids_fail_with_a_status_and_store_nothing() {
    let gw = TestGateway::start();
    let port = gw.pacs_port();
    for omit in [
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPClassUID",
    ] {
        let v = peer(&["store-raw", "127.0.0.1", &port, PACS_AET, "--omit", omit]);
        assert_eq!(v["status"], 0xC000, "{omit}: {v}");
        assert!(
            v["comment"].as_str().unwrap().contains("has no"),
            "{omit}: {v}"
        );
    }
    // A real sample without a Study Instance UID, sent by storescu.
    let out = storescu(&gw, &["-xu"], &[&sample("JPEGLSNearLossless_08.dcm")]);
    assert!(text(&out).contains("CannotUnderstand"), "{}", text(&out));
    assert!(gw.stored_files().is_empty());
    assert!(
        std::fs::read_dir(gw.storage_dir().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no temporary file left"
    );
    // A data set whose SOP Instance UID is not the one its command announced.
    let v = peer(&[
        "store-raw",
        "127.0.0.1",
        &port,
        PACS_AET,
        "--uid",
        "1.2.826.0.9.1",
        "--dataset-uid",
        "1.2.826.0.9.2",
    ]);
    assert_eq!(v["status"], 0xA900, "{v}");
    assert!(gw.stored_files().is_empty());
    // And the server still stores good objects.
    let v = peer(&["store-raw", "127.0.0.1", &port, PACS_AET]);
    assert_eq!(v["status"], 0);
    assert_eq!(gw.stored_files().len(), 1);
}

/// A tmpfs too small for a mammogram under `storage/`: the store answers A700, leaves no file,
/// and goes on storing what fits. Needs root (mount), as on the dev boxes and CI.
#[test]
fn disk_full_answers_a700_and_leaves_nothing_half_written() {
    struct Mount(PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let work = tempfile::tempdir().unwrap();
    let made = peer(&[
        "make-mg",
        "--out",
        work.path().to_str().unwrap(),
        "--count",
        "1",
    ]);
    let mammogram = PathBuf::from(made["files"][0].as_str().unwrap());

    let state = tempfile::tempdir().unwrap();
    let storage = state.path().join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&storage)
        .status()
        .expect("mount runs");
    assert!(
        mounted.success(),
        "this test mounts an 8 MB tmpfs to fill the disk and must run as root"
    );
    let _mount = Mount(storage.clone());
    let mut config = appliance::config::Config::new(state.path().to_path_buf());
    // The disk itself filling is tested here, not the floor that refuses before it does.
    config.storage_min_free_mib = 0;
    let gw = TestGateway::start_in(state, config);

    let out = storescu(&gw, &["-xe"], &[&mammogram]);
    assert!(
        text(&out).contains("OutOfResources") || text(&out).contains("0xa700"),
        "expected A700: {}",
        text(&out)
    );
    assert!(gw.stored_files().is_empty());
    assert!(std::fs::read_dir(storage.join("tmp"))
        .unwrap()
        .next()
        .is_none());
    assert!(get_instance(gw.db(), &sop_instance_uid(&mammogram))
        .unwrap()
        .is_none());
    // Small objects still fit and are stored.
    assert_stored(&storescu(&gw, &["-xe"], &[&sample("CT_small.dcm")]));
    assert_eq!(gw.stored_files().len(), 1);
    drop(gw);
}

/// Below STORAGE_MIN_FREE_MIB a C-STORE is refused with A700 before a byte is written, the
/// reason names the setting, and the other services go on.
#[test]
fn under_the_free_space_floor_stores_are_refused_with_a700_and_nothing_is_written() {
    // More free space than any disk has: every store is under the floor.
    let gw = TestGateway::start_with(|c| c.storage_min_free_mib = u64::MAX >> 20);
    // -d prints the response's Error Comment.
    let out = storescu(&gw, &["-xe", "-d"], &[&sample("CT_small.dcm")]);
    let t = text(&out);
    assert!(
        t.contains("OutOfResources") || t.contains("0xa700"),
        "expected A700: {t}"
    );
    assert!(
        t.contains("STORAGE_MIN_FREE_MIB"),
        "the reason names the setting: {t}"
    );
    assert!(gw.stored_files().is_empty());
    assert!(echo(&gw.pacs_port(), PACS_AET, "MODALITY1"));
}

#[test]
fn restart_indexes_files_a_crash_left_unindexed_and_drops_partial_uploads() {
    let gw = TestGateway::start();
    let file = sample("CT_small.dcm");
    assert_stored(&storescu(&gw, &["-xe"], &[&file]));
    let uid = sop_instance_uid(&file);
    let before = get_instance(gw.db(), &uid).unwrap().unwrap();
    // Simulate a crash after the rename but before the index commit, and one mid-upload.
    gw.db()
        .write(|txn| {
            let mut t = txn.open_table(appliance::db::INSTANCES)?;
            t.remove(uid.as_str())?;
            Ok::<_, appliance::db::DbError>(())
        })
        .unwrap();
    std::fs::write(gw.storage_dir().join("tmp/half.part"), b"partial").unwrap();
    let state = gw.stop();
    let config = appliance::config::Config::new(state.path().to_path_buf());
    let gw = TestGateway::start_in(state, config);
    // The re-index runs after start-up, in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let after = loop {
        if let Some(found) = get_instance(gw.db(), &uid).unwrap() {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "never re-indexed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(after.file_sha256, before.file_sha256);
    assert_eq!(after.calling_ae, "MODALITY1");
    assert!(!gw.storage_dir().join("tmp/half.part").exists());
}
