//! Thumbnails isolated from the receive path's fate, against the running `gateway serve`: a
//! render child that really aborts, runs out of its address space, or hangs costs that one job;
//! after three failed attempts the job is quarantined (the cloud hears `thumbnail: null` with
//! the reason, `gateway status` lists it), and a restart on that state starts cleanly without
//! trying it again.
//!
//! The crash is made real by `GATEWAY_TEST_RENDER_FAULT`, honoured only by the render child.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::hostile::{good_image, HostileGateway};
use shared::wire::event::{EventBody, ImageSummary};

/// The image events the cloud stub holds for `uid`.
fn image_events(gw: &HostileGateway, uid: &str) -> Vec<ImageSummary> {
    gw.events()
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::ImageReceived(image) if image.image.sop_instance_uid == uid => {
                Some(image.image)
            }
            _ => None,
        })
        .collect()
}

/// Waits for the first image event of `uid`.
fn wait_for_image_event(gw: &HostileGateway, uid: &str) -> ImageSummary {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(image) = image_events(gw, uid).into_iter().next() {
            return image;
        }
        assert!(
            Instant::now() < deadline,
            "no study.image_received for {uid}:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a gateway whose render child fails on one object in `mode`, stores that object, and
/// returns the gateway, the object's UID and its (quarantined) image event.
fn crash_on_one_object(
    mode: &str,
    settings: &[(&str, &str)],
    dir: &Path,
) -> (HostileGateway, String, ImageSummary) {
    let (poison, uid) = good_image(dir);
    let fault = format!("{mode}:{uid}");
    let mut all = vec![("GATEWAY_TEST_RENDER_FAULT", fault.as_str())];
    all.extend_from_slice(settings);
    let gw = HostileGateway::start_with(&all);
    gw.store(&poison);
    let event = wait_for_image_event(&gw, &uid);
    (gw, uid, event)
}

/// The checks after a crash: alive, C-ECHO, and a good image stored afterwards gets its event
/// with a real thumbnail.
fn assert_thumbnails_go_on(gw: &mut HostileGateway, what: &str) {
    gw.assert_unharmed(what);
    let good = gw.store_good_image_and_wait_for_its_event();
    let event = wait_for_image_event(gw, &good);
    let thumbnail = event
        .thumbnail
        .unwrap_or_else(|| panic!("{what}: the good image has no thumbnail:\n{}", gw.log()));
    assert_eq!(thumbnail.format, "jpeg");
    assert!(thumbnail.height > 0 && !thumbnail.data.is_empty());
    assert_eq!(event.thumbnail_error, None);
}

#[test]
fn a_renderer_that_aborts_costs_one_job_which_is_quarantined_and_not_retried_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, uid, event) = crash_on_one_object("abort", &[], dir.path());

    // (b) Three attempts, then the cloud is told: no thumbnail, and why.
    assert_eq!(event.thumbnail, None);
    let reason = event.thumbnail_error.expect("a reason for thumbnail: null");
    assert!(
        reason.contains("failed 3 times") && reason.contains("SIGABRT"),
        "{reason}"
    );
    let log = gw.log();
    assert_eq!(log.matches("failing on purpose").count(), 3, "{log}");
    assert!(log.contains("thumbnail attempt 1 of 3 failed"), "{log}");
    assert!(log.contains("thumbnail job quarantined"), "{log}");

    // (a) The process lives, C-ECHO answers, a good image still gets its thumbnail.
    assert_thumbnails_go_on(&mut gw, "a render child that aborts");

    // `gateway status` lists the quarantined job with its reason.
    let (status, code) = gw.status();
    assert_ne!(code, Some(3), "the service answers: {status}");
    let line = status
        .lines()
        .find(|l| l.contains("thumbnail_jobs"))
        .unwrap_or_else(|| panic!("no thumbnail line:\n{status}"));
    eprintln!("gateway status: {line}");
    assert!(
        line.trim_start().starts_with("ok"),
        "one poison object is within bounds: {line}"
    );
    assert!(
        line.contains("1 quarantined") && line.contains(&uid) && line.contains("SIGABRT"),
        "{line}"
    );

    // (c) A restart (SIGKILL, as a crash would) on that state starts cleanly: it answers, and
    // the quarantined job is neither retried nor reported again.
    gw.restart();
    assert_eq!(
        gw.log().matches(" started: ").count(),
        2,
        "the restarted gateway reached READY:\n{}",
        gw.log()
    );
    assert_thumbnails_go_on(&mut gw, "a restart on a quarantined job");
    let log = gw.log();
    assert_eq!(log.matches("failing on purpose").count(), 3, "{log}");
    assert!(
        !log.contains("resuming"),
        "the quarantined job is not resumed: {log}"
    );
    assert_eq!(image_events(&gw, &uid).len(), 1, "reported once");
    let (status, _) = gw.status();
    assert!(
        status.contains(&uid),
        "still listed after the restart:\n{status}"
    );
}

#[test]
fn a_renderer_beyond_its_memory_limit_is_stopped_by_it_and_the_gateway_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, _uid, event) =
        crash_on_one_object("memory", &[("THUMBNAIL_MEMORY_MIB", "128")], dir.path());
    assert_eq!(event.thumbnail, None);
    let reason = event.thumbnail_error.expect("a reason");
    assert!(reason.contains("128 MiB limit"), "{reason}");
    // Rust's own message when the address-space limit refuses an allocation.
    assert!(gw.log().contains("memory allocation of"), "{}", gw.log());
    assert_thumbnails_go_on(&mut gw, "a render child beyond its memory limit");
    let peak = gw.peak_rss_kib();
    assert!(peak < 200 * 1024, "the gateway's own peak RSS: {peak} KiB");
}

#[test]
fn a_renderer_that_hangs_is_killed_at_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, _uid, event) =
        crash_on_one_object("hang", &[("THUMBNAIL_TIMEOUT_SECS", "1")], dir.path());
    assert_eq!(event.thumbnail, None);
    let reason = event.thumbnail_error.expect("a reason");
    // Whichever comes first: the CPU limit (SIGXCPU/SIGKILL) or the parent's wall clock.
    assert!(
        reason.contains("SIGXCPU")
            || reason.contains("SIGKILL")
            || reason.contains("THUMBNAIL_TIMEOUT_SECS"),
        "{reason}"
    );
    assert_thumbnails_go_on(&mut gw, "a render child that hangs");
}
