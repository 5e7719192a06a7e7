//! DICOM over TLS (PS3.15 Annex B) against dcmtk's TLS client options: C-ECHO and C-STORE on
//! the TLS ports with the server's certificate verified, a plain-TCP client refused there, and
//! with `DICOM_TLS_CLIENT_CA_FILE` only clients holding a certificate from that CA let in.
//! Certificates are made per test with the openssl command.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pki::Pki;
use common::*;

/// How the dcmtk client connects.
enum Client<'a> {
    Plain,
    /// TLS without a client certificate, verifying the server against the CA.
    Anonymous(&'a Pki),
    /// TLS with the client certificate.
    WithCertificate(&'a Pki),
}

fn tls_args(client: &Client) -> Vec<String> {
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    match client {
        Client::Plain => vec![],
        Client::Anonymous(pki) => vec!["+tla".into(), "+cf".into(), s(pki.path("ca.pem"))],
        Client::WithCertificate(pki) => vec![
            "+tls".into(),
            s(pki.path("client.key")),
            s(pki.path("client.pem")),
            "+cf".into(),
            s(pki.path("ca.pem")),
        ],
    }
}

fn echoscu(client: &Client, called: &str, port: u16) -> Output {
    dcmtk("echoscu")
        .args(tls_args(client))
        .args(["-aet", "MODALITY1", "-aec", called, "127.0.0.1"])
        .arg(port.to_string())
        .output()
        .unwrap()
}

fn storescu(client: &Client, port: u16, file: &Path) -> Output {
    dcmtk("storescu")
        .args(tls_args(client))
        .args(["-aet", "MODALITY1", "-aec", PACS_AET, "-xe", "127.0.0.1"])
        .arg(port.to_string())
        .arg(file)
        .output()
        .unwrap()
}

fn tls_ports(gw: &TestGateway) -> (u16, u16) {
    let running = gw.running();
    (
        running.mwl_tls_addr.expect("worklist TLS listener").port(),
        running.pacs_tls_addr.expect("storage TLS listener").port(),
    )
}

#[test]
fn c_echo_and_c_store_over_tls_and_a_plain_client_is_refused_on_the_tls_port() {
    let pki = Pki::make();
    let gw = TestGateway::start_with(|c| c.tls = Some(pki.settings(false)));
    let (mwl_tls, pacs_tls) = tls_ports(&gw);
    let tls = Client::Anonymous(&pki);

    let out = echoscu(&tls, MWL_AET, mwl_tls);
    assert!(out.status.success(), "C-ECHO over TLS: {}", text(&out));
    let out = echoscu(&tls, PACS_AET, pacs_tls);
    assert!(out.status.success(), "C-ECHO over TLS: {}", text(&out));
    let file = sample("CT_small.dcm");
    let out = storescu(&tls, pacs_tls, &file);
    assert!(
        out.status.success() && !text(&out).contains("E: "),
        "C-STORE over TLS: {}",
        text(&out)
    );
    assert_eq!(gw.stored_files().len(), 1);

    // Plain TCP on the TLS port: the handshake fails and nothing is associated.
    let out = echoscu(&Client::Plain, MWL_AET, mwl_tls);
    assert!(
        !out.status.success(),
        "plain C-ECHO on the TLS port: {}",
        text(&out)
    );
    // The plain ports are unchanged beside them.
    assert!(echo(&gw.mwl_port(), MWL_AET, "MODALITY1"));
}

#[test]
fn with_a_client_ca_only_clients_holding_its_certificates_associate() {
    let pki = Pki::make();
    let gw = TestGateway::start_with(|c| c.tls = Some(pki.settings(true)));
    let (mwl_tls, _) = tls_ports(&gw);

    let out = echoscu(&Client::Anonymous(&pki), MWL_AET, mwl_tls);
    assert!(
        !out.status.success(),
        "a client without a certificate got in: {}",
        text(&out)
    );
    let out = echoscu(&Client::WithCertificate(&pki), MWL_AET, mwl_tls);
    assert!(
        out.status.success(),
        "C-ECHO with a client certificate: {}",
        text(&out)
    );
}

#[test]
fn a_missing_certificate_file_names_the_setting() {
    let pki = Pki::make();
    let mut settings = pki.settings(false);
    settings.cert_file = pki.path("absent.pem");
    let e = appliance::tls::server_config(&settings).unwrap_err();
    assert!(e.to_string().starts_with("DICOM_TLS_CERT_FILE="), "{e}");
}

/// Study Root Query/Retrieve on the storage AE's TLS port: `findscu` finds the study stored over
/// TLS and pynetdicom fetches it with C-GET on the same TLS association.
#[test]
fn query_and_retrieve_over_tls() {
    let pki = Pki::make();
    let gw = TestGateway::start_with(|c| {
        c.tls = Some(pki.settings(false));
        c.query_retrieve.allowed_aets = Some(["WORKSTATION".to_string()].into());
    });
    let (_, pacs_tls) = tls_ports(&gw);
    let tls = Client::Anonymous(&pki);
    let out = storescu(&tls, pacs_tls, &sample("CT_small.dcm"));
    assert!(out.status.success(), "C-STORE over TLS: {}", text(&out));
    let study = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";

    let out = dcmtk("findscu")
        .args(tls_args(&tls))
        .args(["-S", "-aet", "WORKSTATION", "-aec", PACS_AET, "127.0.0.1"])
        .arg(pacs_tls.to_string())
        .args(["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains(study),
        "C-FIND over TLS: {}",
        text(&out)
    );

    // dcmtk's getscu has no TLS options: pynetdicom fetches it.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/qr_peer.py");
    let out = Command::new(python())
        .arg(script)
        .args([
            "get",
            "127.0.0.1",
            &pacs_tls.to_string(),
            PACS_AET,
            "--tls-ca",
        ])
        .arg(pki.path("ca.pem"))
        .args(["--key", &format!("StudyInstanceUID={study}")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(said.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("qr_peer.py over TLS: {}", text(&out)));
    assert_eq!(v["statuses"], serde_json::json!([0xFF00, 0]), "{v}");
    assert_eq!(v["stored"].as_array().unwrap().len(), 1, "{v}");
}
