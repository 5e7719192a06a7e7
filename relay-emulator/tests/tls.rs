//! The production path: `wss://` with rustls and the OS trust store, as against Azure.
//!
//! The emulator serves TLS with a certificate from a throwaway CA; the client trusts that CA the
//! way an operator would make a machine trust a private CA (here through `SSL_CERT_FILE`, which
//! rustls-native-certs honours). Its own test binary: the variable must be set before the client
//! first loads the trust store.

use std::net::SocketAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use shared::relay::{Config, Listener, ListenerOptions, RelayError, Sender};

const NAMESPACE: &str = "tls.servicebus.windows.net";

#[tokio::test]
async fn wss_through_rustls_with_a_trusted_private_ca() {
    // A CA, and a server certificate for 127.0.0.1 signed by it.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let dir = std::env::temp_dir().join(format!("relay-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    std::env::set_var("SSL_CERT_FILE", &ca_file);

    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut config = EmulatorConfig::new(
        NAMESPACE,
        vec![Rule::parse("root=k").unwrap()],
        vec!["hc".into()],
    );
    config.tls = Some(relay_emulator::tls_config_from(chain, key).unwrap());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::start(config, any, None).await.unwrap();

    let mut client = Config::new(NAMESPACE, "root", "k");
    client.endpoint = format!("wss://{}", emulator.addr()).parse().unwrap();

    let listener = Listener::new(client.clone(), "hc", ListenerOptions::default());
    let mut status = listener.status();
    let task = tokio::spawn(async move {
        listener
            .run(
                |text| async move { format!("secure:{text}") },
                std::future::pending(),
            )
            .await
    });
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected))
        .await
        .expect("listener connects over TLS")
        .unwrap();
    let sender = Sender::new(client.clone(), "hc");
    assert_eq!(sender.request("hi").await.unwrap(), "secure:hi");

    // Plain ws:// to a TLS port fails as a transport error, not as a relay answer.
    let mut plain = client;
    plain.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();
    let error = Sender::new(plain, "hc").request("x").await.unwrap_err();
    assert!(
        matches!(error, RelayError::Transport(_) | RelayError::Closed(_)),
        "{error}"
    );
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
