//! Provider scoping over real HTTP: every page, server function, stream and thumbnail that names
//! one provider's record answers 404 to the other provider's clinician (and works for the owner,
//! so each check can fail).

mod support;

use shared::wire::SigningKey;
use support::http_client::{header, http, sign_in};
use support::TestDb;
use web::server::seed::DEMO_USERS;
use web::server::store::{appointments, clinics, gateways, identity};

#[tokio::test]
async fn another_providers_records_are_404_on_every_route() {
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (state, seeded, _web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    let running = support::serve(state, "unused-site".into()).await;
    let addr = running.addr;
    let north = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let south = sign_in(addr, DEMO_USERS[1].0, DEMO_USERS[1].1).await;
    assert!(
        http(
            addr,
            "POST",
            "/api/sign_in",
            None,
            Some("email=clinician%40north.example&password=wrong"),
            true
        )
        .await
        .status
            >= 400
    );

    let db = &running.state.db;
    let north_user = identity::authenticate(db, DEMO_USERS[0].0, DEMO_USERS[0].1)
        .await
        .unwrap()
        .unwrap();
    let clinic = seeded.clinic_ids[0];
    let detail = clinics::detail(db, north_user.provider_id, clinic)
        .await
        .unwrap();
    let (appointment, other_appointment, third) = (
        detail.appointments[0].id,
        detail.appointments[1].id,
        detail.appointments[2].id,
    );
    let gateway = seeded.gateway_ids[0];

    // Not signed in: pages send you to sign in; data is refused.
    let anonymous = http(addr, "GET", &format!("/clinics/{clinic}"), None, None, true).await;
    assert!(
        anonymous.status == 302 || anonymous.status == 303,
        "{}",
        anonymous.head
    );
    assert!(anonymous.head.contains("/sign-in"), "{}", anonymous.head);
    assert_ne!(
        http(addr, "POST", "/api/list_clinics", None, Some(""), true)
            .await
            .status,
        200
    );

    // Each route: 404 for South, then 200 for North.
    let routes: Vec<(&str, String, Option<String>, bool)> = vec![
        ("GET", format!("/clinics/{clinic}"), None, true),
        ("GET", format!("/appointments/{appointment}"), None, true),
        (
            "POST",
            "/api/get_clinic".into(),
            Some(format!("id={clinic}")),
            true,
        ),
        (
            "POST",
            "/api/get_appointment".into(),
            Some(format!("id={appointment}")),
            true,
        ),
        (
            "POST",
            "/api/send_to_modality".into(),
            Some(format!("appointment_id={other_appointment}")),
            true,
        ),
        (
            "POST",
            "/api/cancel_appointment".into(),
            Some(format!("appointment_id={third}")),
            true,
        ),
        ("GET", format!("/live/clinics/{clinic}"), None, false),
        (
            "GET",
            format!("/live/appointments/{appointment}"),
            None,
            false,
        ),
    ];
    for (method, path, form, whole) in &routes {
        let theirs = http(addr, method, path, Some(&south), form.as_deref(), *whole).await;
        assert_eq!(
            theirs.status, 404,
            "South {method} {path}: {}\n{}",
            theirs.head, theirs.body
        );
        let ours = http(addr, method, path, Some(&north), form.as_deref(), *whole).await;
        assert_eq!(
            ours.status, 200,
            "North {method} {path}: {}\n{}",
            ours.head, ours.body
        );
    }

    // The send above queued an action. Re-drive and probes are administrators': another
    // provider's administrator gets 404, the owner's clinician 403, the owner's administrator 200.
    let action = web::server::store::actions::list(db, north_user.provider_id, None, 10)
        .await
        .unwrap();
    let action_id = &action
        .iter()
        .find(|a| a.appointment_id == Some(other_appointment))
        .unwrap()
        .id;
    let south_user = identity::authenticate(db, DEMO_USERS[1].0, DEMO_USERS[1].1)
        .await
        .unwrap()
        .unwrap();
    let mut admins = vec![];
    for provider in [north_user.provider_id, south_user.provider_id] {
        support::administrator(db, provider).await;
        admins.push(
            sign_in(
                addr,
                &support::admin_email(provider),
                support::ADMIN_PASSWORD,
            )
            .await,
        );
    }
    let (north_admin, south_admin) = (&admins[0], &admins[1]);
    for (path, form) in [
        ("/api/redrive_action", format!("action_id={action_id}")),
        (
            "/api/check_gateway",
            format!("gateway_id={gateway}&check=echo"),
        ),
    ] {
        for (who, cookie, status) in [
            ("South's administrator", south_admin, 404),
            ("North's clinician", &north, 403),
            ("North's administrator", north_admin, 200),
        ] {
            let mut reply = http(addr, "POST", path, Some(cookie), Some(&form), true).await;
            // The outbox keeps retrying the action (no gateway listens): caught in flight, a
            // re-drive is rightly refused, so the owner's administrator asks again.
            for _ in 0..50 {
                if !(reply.status == 409 && reply.body.contains("this one is sent")) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                reply = http(addr, "POST", path, Some(cookie), Some(&form), true).await;
            }
            assert_eq!(reply.status, status, "{who} {path}: {}", reply.body);
        }
    }
    // Re-sending another provider's worklist item is a 404; the owner's is found (re-sent if
    // the outbox has tried it already, else refused as merely queued).
    let form = format!("appointment_id={other_appointment}");
    let theirs = http(
        addr,
        "POST",
        "/api/resend_worklist_item",
        Some(&south),
        Some(&form),
        true,
    )
    .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    let ours = http(
        addr,
        "POST",
        "/api/resend_worklist_item",
        Some(&north),
        Some(&form),
        true,
    )
    .await;
    // (200 when re-sent; 409 when the outbox holds it at that moment: queued or in flight.)
    assert!(
        ours.status == 200 || ours.status == 409,
        "{}\n{}",
        ours.head,
        ours.body
    );

    for (method, path, form) in [
        ("GET", format!("/actions/{action_id}"), None),
        (
            "POST",
            "/api/get_action".to_string(),
            Some(format!("id={action_id}")),
        ),
    ] {
        let theirs = http(addr, method, &path, Some(&south), form.as_deref(), true).await;
        assert_eq!(theirs.status, 404, "South {method} {path}");
        let ours = http(addr, method, &path, Some(&north), form.as_deref(), true).await;
        assert_eq!(ours.status, 200, "North {method} {path}");
        assert!(ours.body.contains("worklist.create_item"), "{}", ours.body);
        // The payload carries the participant's details: administrators only.
        let nhs_number = detail.appointments[1].nhs_number.replace(' ', "");
        assert!(
            !ours.body.contains(&nhs_number),
            "a clinician sees the payload: {}",
            ours.body
        );
        let admin = http(
            addr,
            method,
            &path,
            Some(north_admin),
            form.as_deref(),
            true,
        )
        .await;
        assert!(admin.body.contains(&nhs_number), "{}", admin.body);
    }
    for (path, form, north_marker) in [
        (
            "/api/list_clinics",
            "",
            "Morning screening clinic".to_string(),
        ),
        (
            "/api/list_gateways",
            "",
            gateways::by_id(db, gateway).await.unwrap().name,
        ),
        ("/api/list_actions", "status=", action_id.clone()),
    ] {
        let theirs = http(addr, "POST", path, Some(&south), Some(form), true).await;
        assert_eq!(theirs.status, 200, "{path}: {}", theirs.head);
        assert!(
            !theirs.body.contains(&north_marker),
            "South's {path} shows North's {north_marker}"
        );
        let ours = http(addr, "POST", path, Some(&north), Some(form), true).await;
        assert!(
            ours.body.contains(&north_marker),
            "North's {path} lacks {north_marker}: {}",
            ours.body
        );
    }

    // Thumbnails: record an image for North's appointment, then fetch it as each.
    let accession = appointments::detail(db, north_user.provider_id, other_appointment)
        .await
        .unwrap()
        .accession_number
        .unwrap();
    let gateway_row = gateways::by_id(db, gateway).await.unwrap();
    let event = support::gateway::image(None, &accession, "9990001006", "R", "CC", 1);
    web::server::events::handle(&running.state, &gateway_row, &gateway_key.seal(&event)).await;
    let image = appointments::detail(db, north_user.provider_id, other_appointment)
        .await
        .unwrap()
        .images[0]
        .id;
    let path = format!("/images/{image}/thumbnail");
    assert_eq!(
        http(addr, "GET", &path, Some(&south), None, true)
            .await
            .status,
        404
    );
    let ours = http(addr, "GET", &path, Some(&north), None, true).await;
    assert_eq!(ours.status, 200);
    assert!(
        ours.head
            .to_ascii_lowercase()
            .contains("content-type: image/jpeg"),
        "{}",
        ours.head
    );

    // Signing out ends the session.
    http(addr, "POST", "/api/sign_out", Some(&north), Some(""), true).await;
    assert_ne!(
        http(
            addr,
            "POST",
            "/api/list_clinics",
            Some(&north),
            Some(""),
            true
        )
        .await
        .status,
        200
    );
    running.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_thumbnails_are_only_jpeg() {
    use base64::Engine;
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let gateway_key = SigningKey::generate();
    let (state, seeded, _web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &gateway_key),
    )
    .await;
    let running = support::serve(state, "unused-site".into()).await;
    let addr = running.addr;
    let north = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let db = &running.state.db;
    let user = identity::authenticate(db, DEMO_USERS[0].0, DEMO_USERS[0].1)
        .await
        .unwrap()
        .unwrap();
    let appointment = clinics::detail(db, user.provider_id, seeded.clinic_ids[0])
        .await
        .unwrap()
        .appointments[0]
        .id;
    web::server::service::send_to_modality(&running.state, &user, appointment)
        .await
        .unwrap();
    let accession = appointments::detail(db, user.provider_id, appointment)
        .await
        .unwrap()
        .accession_number
        .unwrap();
    let gateway_row = gateways::by_id(db, seeded.gateway_ids[0]).await.unwrap();
    // A JPEG the gateway calls "png", and an SVG with a script the gateway calls "svg+xml".
    let svg = base64::engine::general_purpose::STANDARD
        .encode(br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#);
    for (n, view, format, data) in [
        (1, "CC", "png", support::gateway::THUMBNAIL_JPEG.to_string()),
        (2, "MLO", "svg+xml", svg),
    ] {
        let mut event = support::gateway::image(None, &accession, "9990001006", "R", view, n);
        if let shared::wire::event::EventBody::ImageReceived(image) = &mut event.body {
            let thumbnail = image.image.thumbnail.as_mut().unwrap();
            thumbnail.format = format.into();
            thumbnail.data = data;
        }
        web::server::events::handle(&running.state, &gateway_row, &gateway_key.seal(&event)).await;
    }
    let images = appointments::detail(db, user.provider_id, appointment)
        .await
        .unwrap()
        .images;
    assert_eq!(images.len(), 2);
    let (jpeg, svg) = (&images[0], &images[1]);
    assert_eq!(svg.view, "MLO");
    assert!(
        svg.thumbnail_url.is_none(),
        "a non-JPEG thumbnail is not kept"
    );
    let served = http(
        addr,
        "GET",
        &format!("/images/{}/thumbnail", jpeg.id),
        Some(&north),
        None,
        true,
    )
    .await;
    assert_eq!(served.status, 200);
    assert_eq!(header(&served, "content-type"), Some("image/jpeg"));
    let refused = http(
        addr,
        "GET",
        &format!("/images/{}/thumbnail", svg.id),
        Some(&north),
        None,
        true,
    )
    .await;
    assert_eq!(refused.status, 404);

    let page = http(addr, "GET", "/sign-in", None, None, true).await;
    assert_eq!(page.status, 200, "{}", page.head);
    let csp = header(&page, "content-security-policy").expect("a page CSP");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the page CSP names a nonce");
    assert!(
        page.body.contains(&format!("nonce=\"{nonce}\"")),
        "the inline scripts carry the CSP's nonce"
    );
    assert!(
        csp.contains("'wasm-unsafe-eval'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let responses = [
        page,
        served,
        refused,
        http(addr, "GET", "/healthz", None, None, true).await,
        http(addr, "GET", "/no-such-page", None, None, true).await,
        http(
            addr,
            "POST",
            "/api/list_clinics",
            Some(&north),
            Some(""),
            true,
        )
        .await,
        http(addr, "GET", "/live/provider", None, None, true).await,
        http(addr, "GET", "/live/provider", Some(&north), None, false).await,
    ];
    for reply in &responses {
        let first = reply.head.lines().next().unwrap_or_default();
        assert_eq!(
            header(reply, "x-content-type-options"),
            Some("nosniff"),
            "{first}"
        );
        assert_eq!(
            header(reply, "referrer-policy"),
            Some("no-referrer"),
            "{first}"
        );
        let csp = header(reply, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{first}: {csp:?}");
    }
    // Data and streams get the strict policy: nothing on them may run or load.
    assert_eq!(
        header(&responses[3], "content-security-policy"),
        Some(web::server::http::STRICT_CSP)
    );
    running.stop().await;
}

/// `/readyz` for load balancers: ready once the events listeners have started and the database
/// holds every migration this build knows; a database that lost one is 503, and the body says why.
#[tokio::test]
async fn readyz_is_ready_with_the_listeners_up_and_503_when_a_migration_is_missing() {
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let (state, seeded, _web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &SigningKey::generate()),
    )
    .await;
    let running = support::serve(state, "unused-site".into()).await;
    let addr = running.addr;
    let readiness = || async move {
        let reply = http(addr, "GET", "/readyz", None, None, true).await;
        let body: serde_json::Value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("/readyz body {:?}: {e}", reply.body));
        (reply.status, body)
    };
    let gateways = seeded.gateway_ids.len() as u64;
    support::eventually("every listener connected", || async {
        readiness().await.1["listeners"]["connected"] == gateways
    })
    .await;
    let (status, body) = readiness().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"], "ok");
    assert_eq!(
        body["migrations"]["applied"],
        body["migrations"]["expected"]
    );
    assert_eq!(
        http(addr, "GET", "/healthz", None, None, true).await.status,
        200
    );

    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&running.state.db.pool)
    .await
    .unwrap();
    let (status, body) = readiness().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(
        body["migrations"]["applied"].as_u64().unwrap() + 1,
        body["migrations"]["expected"].as_u64().unwrap(),
        "{body}"
    );
    // The process itself is still up.
    assert_eq!(
        http(addr, "GET", "/healthz", None, None, true).await.status,
        200
    );
    running.stop().await;
}

#[tokio::test]
async fn a_page_that_cannot_render_in_time_is_a_503_to_reload_not_a_hang() {
    let db = TestDb::sqlite();
    let emulator = support::emulator().await;
    let (mut state, seeded, _web_key) = support::app_state(
        db.open().await,
        &support::seed_relay(&emulator, &SigningKey::generate()),
    )
    .await;
    state.page_limit = std::time::Duration::from_secs(1);
    let pool = state.db.pool.clone();
    let running = support::serve(state, "unused-site".into()).await;
    let addr = running.addr;
    let north = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let page = format!("/clinics/{}", seeded.clinic_ids[0]);

    // Every database connection busy: the page's session lookup waits far longer than the limit.
    let mut held = Vec::new();
    while let Ok(Ok(connection)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), pool.acquire()).await
    {
        held.push(connection);
    }
    assert!(!held.is_empty());
    let stuck = http(addr, "GET", &page, Some(&north), None, true).await;
    assert_eq!(stuck.status, 503, "{}\n{}", stuck.head, stuck.body);
    assert_eq!(header(&stuck, "retry-after"), Some("1"), "{}", stuck.head);
    assert!(stuck.body.contains("Reload"), "{}", stuck.body);
    // Server functions are not cut short by the page limit: this one waits for a connection.
    let call = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/api/list_clinics",
            Some(&north),
            Some(""),
            true,
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!call.is_finished(), "the server function was cut short");

    drop(held);
    assert_eq!(call.await.unwrap().status, 200);
    let north = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let page_now = http(addr, "GET", &page, Some(&north), None, true).await;
    assert_eq!(page_now.status, 200, "{}", page_now.head);
}
