//! The whole gateway pipeline with real parts: a signed `worklist.create_item` through the relay
//! emulator, the item found by pynetdicom's C-FIND, MPPS IN PROGRESS, four MG images sent by dcmtk
//! `storescu`, MPPS COMPLETED — and the cloud (a relay listener here) receiving every event,
//! images with their thumbnails, each accepted once.

mod common;

use std::time::Duration;

use base64::Engine as _;

use appliance::cloud::outbox;
use common::cloud::{accept_all, Relay};
use shared::wire::action::{Command, Outcome};
use shared::wire::event::{EventBody, MppsStatus};

const ACCESSION: &str = "ACCPIPE1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_item_mpps_and_images_reach_the_cloud() {
    let relay = Relay::start("pipeline.servicebus.windows.net").await;
    let state = tempfile::tempdir().unwrap();
    let config = common::loopback_config(state.path());
    let service = relay.serve(config).await;
    let running = &service.dicom;
    let cloud = relay.cloud(accept_all).await;

    // 1. The clinician sends the participant to the modality.
    let item = common::item(ACCESSION, "SMITH^JANE", "20261122", "093000");
    let (action, reply) = relay.send(Command::CreateItem(item)).await;
    assert_eq!(reply.outcome, Outcome::Created);

    let mwl_port = running.mwl_addr.port().to_string();
    let pacs_port = running.pacs_addr.port().to_string();
    let peer = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            common::peer(&args)
        })
    };

    // 2. The modality finds it on its worklist (pynetdicom C-FIND).
    let found = peer(vec![
        "find".into(),
        "127.0.0.1".into(),
        mwl_port.clone(),
        common::MWL_AET.into(),
    ])
    .await
    .unwrap();
    let matches = found["matches"].as_array().unwrap();
    assert!(
        matches.iter().any(|m| m["accession"] == ACCESSION),
        "{found}"
    );

    // 3. MPPS IN PROGRESS, four views by dcmtk storescu, MPPS COMPLETED.
    let created = peer(vec![
        "mpps".into(),
        "127.0.0.1".into(),
        mwl_port.clone(),
        common::MWL_AET.into(),
        serde_json::json!([{"op": "create", "accession": ACCESSION}]).to_string(),
    ])
    .await
    .unwrap();
    assert_eq!(created["results"][0]["status"], 0, "{created}");
    let mpps_uid = created["results"][0]["uid"].as_str().unwrap().to_string();

    let images = state.path().join("images");
    let made = peer(vec![
        "make-mg".into(),
        "--out".into(),
        images.display().to_string(),
        "--count".into(),
        "4".into(),
        "--rows".into(),
        "512".into(),
        "--cols".into(),
        "416".into(),
        "--accession".into(),
        ACCESSION.into(),
    ])
    .await
    .unwrap();
    let files: Vec<String> = made["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let store = tokio::task::spawn_blocking(move || {
        common::dcmtk("storescu")
            .args(["-aec", common::PACS_AET, "127.0.0.1", &pacs_port])
            .args(&files)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(store.status.success(), "storescu: {}", common::text(&store));

    let completed = peer(vec![
        "mpps".into(),
        "127.0.0.1".into(),
        mwl_port,
        common::MWL_AET.into(),
        serde_json::json!([{"op": "set", "uid": mpps_uid, "status": "COMPLETED"}]).to_string(),
    ])
    .await
    .unwrap();
    assert_eq!(completed["results"][0]["status"], 0, "{completed}");

    // 4. Everything reaches the cloud: 2 MPPS events and 4 images with thumbnails.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let count = cloud.events().len();
        if count >= 6 && outbox::stats(&running.db).unwrap().depth == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {count} events arrived; queue {:?}",
            outbox::stats(&running.db)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = cloud.events();
    assert_eq!(*cloud.duplicates.lock().unwrap(), 0);
    let mpps: Vec<MppsStatus> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::MppsStatusUpdate(u) => {
                assert_eq!(u.accession_number, ACCESSION);
                assert_eq!(
                    u.action_id,
                    Some(action.action_id),
                    "MPPS events name the action"
                );
                Some(u.status)
            }
            _ => None,
        })
        .collect();
    assert_eq!(mpps, [MppsStatus::InProgress, MppsStatus::Completed]);
    let images: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ImageReceived(image) => Some(image),
            _ => None,
        })
        .collect();
    assert_eq!(images.len(), 4);
    let mut views: Vec<String> = images
        .iter()
        .map(|i| {
            assert_eq!(i.action_id, Some(action.action_id));
            assert_eq!(i.study.accession_number.as_deref(), Some(ACCESSION));
            assert_eq!(i.image.dose.kvp, Some(28.0));
            let thumbnail = i.image.thumbnail.as_ref().expect("a thumbnail");
            assert_eq!((thumbnail.format.as_str(), thumbnail.height), ("jpeg", 188));
            // A real JPEG of the size it claims.
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&thumbnail.data)
                .unwrap();
            let jpeg =
                image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
            assert_eq!(
                (jpeg.width(), jpeg.height()),
                (thumbnail.width, thumbnail.height)
            );
            format!(
                "{}{}",
                i.image.laterality.clone().unwrap(),
                i.image.view.clone().unwrap()
            )
        })
        .collect();
    views.sort();
    assert_eq!(views, ["LCC", "LMLO", "RCC", "RMLO"]);
    assert!(state.path().join("thumbnails").is_dir());

    service.stop(Duration::from_secs(5)).await;
}
