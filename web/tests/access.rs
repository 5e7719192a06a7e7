//! Who may do what, over real HTTP: sign-in throttling per account and per address, the
//! same-origin check on every mutation, the security headers, administrators' pages and actions
//! refused to clinicians, accounts disabled and passwords reset, gateways added at run time, and
//! the `web` binary's safe production defaults and `web admin create`.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::http_client::{header, http, post_with, sign_in};
use support::{Rig, ADMIN_PASSWORD};
use tokio::io::{AsyncBufReadExt, BufReader};
use web::domain::Role;
use web::model::GatewayForm;
use web::server::admin;
use web::server::db::StoreError;
use web::server::seed::DEMO_USERS;
use web::server::store::{appointments, clinics, gateways, identity};
use web::server::throttle::Limits;

fn form(email: &str, password: &str) -> String {
    format!("email={}&password={password}", email.replace('@', "%40"))
}

async fn try_sign_in(
    addr: std::net::SocketAddr,
    email: &str,
    password: &str,
) -> support::http_client::Reply {
    http(
        addr,
        "POST",
        "/api/sign_in",
        None,
        Some(&form(email, password)),
        true,
    )
    .await
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_and_per_address() {
    let mut rig = Rig::sqlite().await;
    rig.state.sign_in_limits = Limits {
        window_ms: 10_000,
        per_account: 3,
        per_address: 5,
    };
    let running = support::serve(rig.state.clone(), "unused-site".into()).await;
    let addr = running.addr;
    let (north, north_password) = DEMO_USERS[0];
    let (south, south_password) = DEMO_USERS[1];
    for _ in 0..3 {
        assert_eq!(try_sign_in(addr, north, "wrong-password").await.status, 401);
    }
    // Over the account's limit: even the right password is not checked.
    let throttled = try_sign_in(addr, north, north_password).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(
        throttled.body.contains("Too many failed sign-ins"),
        "{}",
        throttled.body
    );
    assert!(header(&throttled, "set-cookie").is_none());
    // Another account from the same address still signs in (3 of its 5 failures used)...
    assert_eq!(try_sign_in(addr, south, south_password).await.status, 200);
    // ...until unknown accounts use up the address's limit: equal answers, and then 429 for all.
    for nobody in ["nobody@example.test", "no-one@example.test"] {
        assert_eq!(
            try_sign_in(addr, nobody, "whatever-password").await.status,
            401
        );
    }
    assert_eq!(try_sign_in(addr, south, south_password).await.status, 429);
    // The window moves on and the right password works again.
    support::eventually("the oldest failures leave the window", || async {
        try_sign_in(addr, north, north_password).await.status == 200
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn mutations_from_another_site_are_refused_and_change_nothing() {
    let rig = Rig::sqlite().await;
    let running = support::serve(rig.state.clone(), "unused-site".into()).await;
    let addr = running.addr;
    let cookie = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let user = support::demo_user(&running.state.db, 0).await;
    let appointment = clinics::detail(
        &running.state.db,
        user.provider_id,
        rig.seeded.clinic_ids[0],
    )
    .await
    .unwrap()
    .appointments[0]
        .id;
    let send = format!("appointment_id={appointment}");
    let ours = format!("http://{addr}");
    for (what, headers) in [
        ("no Origin", vec![]),
        ("another site", vec![("Origin", "https://attacker.example")]),
        ("opaque origin", vec![("Origin", "null")]),
        (
            "cross-site fetch",
            vec![("Origin", ours.as_str()), ("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let reply = post_with(
            addr,
            "/api/send_to_modality",
            Some(&cookie),
            &send,
            &headers,
        )
        .await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        // Login CSRF too: no session for a form posted from elsewhere.
        let login = post_with(
            addr,
            "/api/sign_in",
            None,
            &form(DEMO_USERS[0].0, DEMO_USERS[0].1),
            &headers,
        )
        .await;
        assert_eq!(login.status, 403, "{what}");
        assert!(header(&login, "set-cookie").is_none());
    }
    let unchanged = appointments::detail(&running.state.db, user.provider_id, appointment)
        .await
        .unwrap();
    assert_eq!(unchanged.status.as_str(), "checked_in");
    assert!(unchanged.accession_number.is_none());
    // The same request from this site goes through.
    let reply = post_with(
        addr,
        "/api/send_to_modality",
        Some(&cookie),
        &send,
        &[("Origin", &ours), ("Sec-Fetch-Site", "same-origin")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    running.stop().await;
}

#[tokio::test]
async fn behind_https_responses_carry_hsts_and_secure_cookies_and_private_data_is_never_cached() {
    let mut rig = Rig::sqlite().await;
    rig.state.secure_cookies = true;
    let running = support::serve(rig.state.clone(), "unused-site".into()).await;
    let addr = running.addr;
    let login = try_sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let cookie = header(&login, "set-cookie").unwrap_or_default().to_string();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = http(addr, "GET", "/clinics", Some(&session), None, true).await;
    let data = http(
        addr,
        "POST",
        "/api/list_clinics",
        Some(&session),
        Some(""),
        true,
    )
    .await;
    for reply in [&page, &data, &login] {
        let first = reply.head.lines().next().unwrap_or_default();
        assert_eq!(
            header(reply, "strict-transport-security"),
            Some("max-age=63072000; includeSubDomains"),
            "{first}"
        );
        assert_eq!(
            header(reply, "cross-origin-opener-policy"),
            Some("same-origin"),
            "{first}"
        );
        assert_eq!(
            header(reply, "cross-origin-resource-policy"),
            Some("same-origin"),
            "{first}"
        );
        assert!(
            header(reply, "permissions-policy")
                .unwrap_or_default()
                .contains("camera=()"),
            "{first}"
        );
        assert_eq!(header(reply, "x-frame-options"), Some("DENY"), "{first}");
    }
    for reply in [&page, &data] {
        assert_eq!(
            header(reply, "cache-control"),
            Some("no-store"),
            "{}",
            reply.head
        );
    }
    running.stop().await;
    // Plain HTTP (localhost): no HSTS, which would lock the browser out of http://127.0.0.1.
    let plain = Rig::sqlite().await;
    let running = support::serve(plain.state.clone(), "unused-site".into()).await;
    let page = http(running.addr, "GET", "/sign-in", None, None, true).await;
    assert_eq!(page.status, 200);
    assert!(header(&page, "strict-transport-security").is_none());
    running.stop().await;
}

#[tokio::test]
async fn only_administrators_open_the_admin_pages_and_manage_accounts() {
    let rig = Rig::sqlite().await;
    let running = support::serve(rig.state.clone(), "unused-site".into()).await;
    let (addr, db) = (running.addr, &running.state.db);
    let clinician = support::demo_user(db, 0).await;
    let south = support::demo_user(db, 1).await;
    support::administrator(db, clinician.provider_id).await;
    support::administrator(db, south.provider_id).await;
    let clinician_cookie = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let admin_cookie = sign_in(
        addr,
        &support::admin_email(clinician.provider_id),
        ADMIN_PASSWORD,
    )
    .await;
    let south_admin = sign_in(
        addr,
        &support::admin_email(south.provider_id),
        ADMIN_PASSWORD,
    )
    .await;
    let gateway = rig.seeded.gateway_ids[0];

    // Pages: 403 with the reason for a clinician, 200 for the administrator.
    for path in [
        "/admin/users".to_string(),
        "/admin/gateways/new".into(),
        format!("/admin/gateways/{gateway}"),
    ] {
        let refused = http(addr, "GET", &path, Some(&clinician_cookie), None, true).await;
        assert_eq!(refused.status, 403, "{path}");
        assert!(
            refused.body.contains("Only an administrator"),
            "{path}: {}",
            refused.body
        );
        let page = http(addr, "GET", &path, Some(&admin_cookie), None, true).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
    // Another provider's gateway is not found, even for an administrator.
    let theirs = http(
        addr,
        "GET",
        &format!("/admin/gateways/{gateway}"),
        Some(&south_admin),
        None,
        true,
    )
    .await;
    assert_eq!(theirs.status, 404);
    let users = http(addr, "GET", "/admin/users", Some(&admin_cookie), None, true).await;
    assert!(users.body.contains(DEMO_USERS[0].0), "{}", users.body);
    assert!(
        !users.body.contains(DEMO_USERS[1].0),
        "another provider's account listed"
    );

    // Server functions: refused to the clinician, and nothing changes.
    let new_account = "name=New+Clinician&email=new%40north.example&role=clinician&password=a-long-first-password";
    for (path, body) in [
        ("/api/list_accounts", "".to_string()),
        ("/api/add_account", new_account.to_string()),
        (
            "/api/set_account_disabled",
            format!("account_id={}&disabled=true", clinician.id),
        ),
        ("/api/get_gateway_settings", format!("gateway_id={gateway}")),
    ] {
        let reply = http(
            addr,
            "POST",
            path,
            Some(&clinician_cookie),
            Some(&body),
            true,
        )
        .await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
    }
    assert!(!identity::has_account(db, "new@north.example")
        .await
        .unwrap());
    assert_eq!(
        support::demo_user(db, 0).await.id,
        clinician.id,
        "still enabled"
    );

    // The administrator adds an account (a short password refused first) ...
    let weak = http(
        addr,
        "POST",
        "/api/add_account",
        Some(&admin_cookie),
        Some("name=New+Clinician&email=new%40north.example&role=clinician&password=short"),
        true,
    )
    .await;
    assert_eq!(weak.status, 409, "{}", weak.body);
    let added = http(
        addr,
        "POST",
        "/api/add_account",
        Some(&admin_cookie),
        Some(new_account),
        true,
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let new_id: i64 = added.body.trim().parse().expect("the new account's id");
    let new_cookie = sign_in(addr, "new@north.example", "a-long-first-password").await;
    let new_user = identity::authenticate(db, "new@north.example", "a-long-first-password")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_user.role, Role::Clinician);
    assert_eq!(
        http(
            addr,
            "POST",
            "/api/list_clinics",
            Some(&new_cookie),
            Some(""),
            true
        )
        .await
        .status,
        200
    );

    // ... resets its password: the old one and its session stop working ...
    let reset = http(
        addr,
        "POST",
        "/api/reset_password",
        Some(&admin_cookie),
        Some(&format!(
            "account_id={new_id}&password=another-long-password"
        )),
        true,
    )
    .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_ne!(
        http(
            addr,
            "POST",
            "/api/list_clinics",
            Some(&new_cookie),
            Some(""),
            true
        )
        .await
        .status,
        200
    );
    assert_eq!(
        try_sign_in(addr, "new@north.example", "a-long-first-password")
            .await
            .status,
        401
    );
    let new_cookie = sign_in(addr, "new@north.example", "another-long-password").await;

    // ... and disables it: signed out at once, and the right password no longer signs in.
    let off = http(
        addr,
        "POST",
        "/api/set_account_disabled",
        Some(&admin_cookie),
        Some(&format!("account_id={new_id}&disabled=true")),
        true,
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_ne!(
        http(
            addr,
            "POST",
            "/api/list_clinics",
            Some(&new_cookie),
            Some(""),
            true
        )
        .await
        .status,
        200
    );
    assert_eq!(
        try_sign_in(addr, "new@north.example", "another-long-password")
            .await
            .status,
        401
    );
    // South's administrator cannot touch North's accounts; nobody can disable themself.
    let foreign = http(
        addr,
        "POST",
        "/api/set_account_disabled",
        Some(&south_admin),
        Some(&format!("account_id={new_id}&disabled=false")),
        true,
    )
    .await;
    assert_eq!(foreign.status, 404);
    let admin = identity::authenticate(
        db,
        &support::admin_email(clinician.provider_id),
        ADMIN_PASSWORD,
    )
    .await
    .unwrap()
    .unwrap();
    let own = http(
        addr,
        "POST",
        "/api/set_account_disabled",
        Some(&admin_cookie),
        Some(&format!("account_id={}&disabled=true", admin.id)),
        true,
    )
    .await;
    assert_eq!(own.status, 409, "{}", own.body);
    running.stop().await;
}

#[tokio::test]
async fn a_gateway_added_or_changed_at_run_time_gets_its_listener_at_once() {
    let rig = Rig::sqlite().await;
    let running = support::serve(rig.state.clone(), "unused-site".into()).await;
    let state = &running.state;
    let clinician = support::demo_user(&state.db, 0).await;
    let admin = support::administrator(&state.db, clinician.provider_id).await;
    let mut form = GatewayForm {
        name: "rxn-gateway-2".into(),
        relay_namespace: support::NAMESPACE.into(),
        relay_endpoint: format!("ws://{}", rig.emulator.addr()),
        actions_hc: format!("{}-3", support::ACTIONS),
        events_hc: format!("{}-3", support::EVENTS),
        key_name: support::KEY_NAME.into(),
        key_env_var: support::KEY_ENV.into(),
        public_keys: rig.gateway_key.public_key().to_base64(),
        message_type: "dicom_worklist".into(),
        destination: "modality_worklist".into(),
        ..GatewayForm::default()
    };
    assert!(matches!(
        admin::save_gateway(state, &clinician, &form).await,
        Err(StoreError::Forbidden(_))
    ));
    let bad = GatewayForm {
        public_keys: "not-a-key".into(),
        ..form.clone()
    };
    assert!(matches!(
        admin::save_gateway(state, &admin, &bad).await,
        Err(StoreError::Refused(_))
    ));
    let taken = GatewayForm {
        name: gateways::by_id(&state.db, rig.seeded.gateway_ids[1])
            .await
            .unwrap()
            .name,
        ..form.clone()
    };
    assert!(
        matches!(admin::save_gateway(state, &admin, &taken).await, Err(StoreError::Refused(why)) if why.contains("already exists"))
    );
    assert_eq!(
        gateways::for_provider(&state.db, clinician.provider_id)
            .await
            .unwrap()
            .len(),
        1
    );

    let id = admin::save_gateway(state, &admin, &form).await.unwrap();
    support::eventually("the new gateway's events listener connects", || async {
        state.listener_status(id).is_some_and(|s| s.connected)
    })
    .await;
    // Changed to a key variable that is not set: the listener restarts and says why.
    form.id = Some(id);
    form.key_env_var = "NO_SUCH_RELAY_KEY".into();
    admin::save_gateway(state, &admin, &form).await.unwrap();
    let status = state.listener_status(id).unwrap();
    assert!(!status.connected);
    assert!(status
        .last_error
        .unwrap_or_default()
        .contains("NO_SUCH_RELAY_KEY"));
    // And back: connected again, without a restart of the app.
    form.key_env_var = support::KEY_ENV.into();
    admin::save_gateway(state, &admin, &form).await.unwrap();
    support::eventually(
        "the listener reconnects with the fixed settings",
        || async { state.listener_status(id).is_some_and(|s| s.connected) },
    )
    .await;
    running.stop().await;
}

/// The `web` binary with a fresh state directory and nothing from the caller's environment that
/// would change its defaults.
fn web_command(state_dir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_web"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WEB_STATE_DIR", state_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn web_admin_create_makes_the_first_administrator() {
    let dir = support::tempdir::TempDir::new("web-admin");
    let create = |password: &'static str, extra: &'static [&'static str]| {
        let mut command = web_command(dir.path());
        command.args([
            "admin",
            "create",
            "--email",
            "Admin@North.Example",
            "--name",
            "First Admin",
            "--provider",
            "North Breast Screening Service",
            "--ods-code",
            "RXN",
            "--password-stdin",
        ]);
        command.args(extra);
        async move {
            let mut child = command.spawn().unwrap();
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(format!("{password}\n").as_bytes())
                .await
                .unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let weak = create("short", &[]).await;
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));
    let made = create("a-long-admin-password", &[]).await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let again = create("a-long-admin-password", &[]).await;
    assert!(
        !again.status.success(),
        "a second create of the same account fails"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(create("a-long-admin-password", &["--if-absent"])
        .await
        .status
        .success());

    let db = web::server::db::Db::open(&web::server::db::sqlite_url(&dir.path().join("web.db")))
        .await
        .unwrap();
    let admin = identity::authenticate(&db, "admin@north.example", "a-long-admin-password")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.role, Role::Administrator);
    assert_eq!(admin.provider_name, "North Breast Screening Service");
}

#[tokio::test]
async fn web_serve_defaults_are_safe_for_production() {
    let dir = support::tempdir::TempDir::new("web-defaults");
    // Insecure cookies on a public address: refused, naming the setting.
    let refused = web_command(dir.path())
        .args(["serve"])
        .env("WEB_ADDR", "0.0.0.0:0")
        .env("WEB_SECURE_COOKIES", "false")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("WEB_SECURE_COOKIES"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // No WEB_SEED: an empty database stays empty (no published demo passwords), and the session
    // cookie is Secure.
    let port = shared::loopback::free_port();
    let mut serve = web_command(dir.path())
        .args(["serve"])
        .env("WEB_ADDR", format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("web app on") {
                return true;
            }
            assert!(!line.contains("demo sign-in"), "{line}");
        }
        false
    })
    .await;
    assert_eq!(started, Ok(true), "web serve did not start");
    let db = web::server::db::Db::open(&web::server::db::sqlite_url(&dir.path().join("web.db")))
        .await
        .unwrap();
    assert!(
        identity::is_empty(&db).await.unwrap(),
        "seeded without WEB_SEED"
    );
    let admin = "admin@north.example";
    let provider = identity::create_provider(&db, "North", "RXN")
        .await
        .unwrap();
    identity::create_user(
        &db,
        provider,
        admin,
        "Admin",
        "a-long-admin-password",
        Role::Administrator,
    )
    .await
    .unwrap();
    let login = try_sign_in(
        format!("127.0.0.1:{port}").parse().unwrap(),
        admin,
        "a-long-admin-password",
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(header(&login, "set-cookie")
        .unwrap_or_default()
        .contains("; Secure"));
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
}

#[tokio::test]
async fn the_metrics_listener_shows_sign_in_failures_streams_outbox_states_and_gateways() {
    let rig = Rig::sqlite().await;
    let running = support::serve(rig.state.clone(), "unused-site".into()).await;
    let addr = running.addr;
    let metrics = running.metrics_addr.expect("a metrics listener");
    assert_ne!(
        metrics.port(),
        addr.port(),
        "metrics are not on the public port"
    );
    assert_eq!(
        try_sign_in(addr, DEMO_USERS[0].0, "wrong-password")
            .await
            .status,
        401
    );
    let cookie = sign_in(addr, DEMO_USERS[0].0, DEMO_USERS[0].1).await;
    let stream = http(addr, "GET", "/live/provider", Some(&cookie), None, false).await;
    assert_eq!(stream.status, 200);
    let user = support::demo_user(&running.state.db, 0).await;
    let appointment = clinics::detail(
        &running.state.db,
        user.provider_id,
        rig.seeded.clinic_ids[0],
    )
    .await
    .unwrap()
    .appointments[0]
        .id;
    web::server::service::send_to_modality(&running.state, &user, appointment)
        .await
        .unwrap();
    let gateway = gateways::by_id(&running.state.db, rig.seeded.gateway_ids[0])
        .await
        .unwrap();
    let scrape = || async {
        http(metrics, "GET", "/metrics", None, None, true)
            .await
            .body
    };
    support::eventually("the metrics show the traffic", || async {
        let body = scrape().await;
        body.contains("web_sign_in_failures_total{reason=\"wrong\"}")
            && body.contains("web_outbox_attempts_total")
    })
    .await;
    let body = scrape().await;
    for series in [
        "web_sse_clients".to_string(),
        "web_outbox_actions{status=\"pending\"}".into(),
        format!(
            "web_relay_listener_connected{{gateway=\"{}\"}} 1",
            gateway.name
        ),
        format!(
            "web_gateway_liveness{{gateway=\"{}\",state=\"offline\"}} 1",
            gateway.name
        ),
    ] {
        assert!(body.contains(&series), "no {series} in\n{body}");
    }
    // The public site does not serve them.
    assert_eq!(
        http(addr, "GET", "/metrics", None, None, true).await.status,
        404
    );
    running.stop().await;
}
