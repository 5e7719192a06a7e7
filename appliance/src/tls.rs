//! DICOM over TLS (PS3.15 Annex B): the rustls configuration of the TLS listeners and of the
//! forwarding SCU towards `+tls` destinations, from PEM files named in the settings. The handshake itself is dicom-ul's (`establish_tls_async`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::config::TlsSettings;

/// Why the TLS listeners cannot start; each names the setting to fix.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{setting}={}: {why}", file.display())]
    File {
        setting: &'static str,
        file: std::path::PathBuf,
        why: String,
    },
    #[error("DICOM TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("DICOM_TLS_CLIENT_CA_FILE: {0}")]
    ClientVerifier(String),
}

/// The server configuration: TLS 1.2 and 1.3 with rustls' safe defaults (which meet the BCP 195
/// profile of PS3.15 B.9), and client certificates required when a client CA file is set.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates("DICOM_TLS_CERT_FILE", &settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| TlsError::File {
        setting: "DICOM_TLS_KEY_FILE",
        file: settings.key_file.clone(),
        why: format!("no private key read: {e}"),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &settings.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(file) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("DICOM_TLS_CLIENT_CA_FILE", file)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientVerifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

/// The forwarding SCU's configuration: the PACS's certificate must chain to a CA in
/// `PACS_FORWARD_TLS_CA_FILE` and name the destination's host; no client certificate.
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_for("PACS_FORWARD_TLS_CA_FILE", ca_file)
}

/// A client configuration trusting only the CA certificates in `ca_file`, named by `setting`
/// in errors (also FHIR delivery's `FHIR_CA_FILE`).
pub fn client_config_for(
    setting: &'static str,
    ca_file: &Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in certificates(setting, ca_file)? {
        roots.add(cert)?;
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn certificates(
    setting: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |why: String| TlsError::File {
        setting,
        file: file.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}
