//! Delivering FHIR messages the cloud wrote (`fhir.order`, `fhir.revoke`) to an HTTP endpoint
//! inside the hospital — an integration engine — on the gateway's own allow-list
//! (`FHIR_DESTINATIONS`).
//!
//! The allow-list is the point: the cloud names the destination, but a compromised cloud must
//! not make the gateway call arbitrary hosts on the hospital network, so anything not listed
//! exactly is refused before a byte is sent, and redirects are never followed.
//!
//! An accepted delivery is kept in redb ([`queue`]) before the action is answered, and the
//! [`sender`] delivers it with retries on `shared::backoff` through endpoint outages and gateway
//! restarts. The action's reply is the endpoint's answer once there is one; until then it is
//! `queued`, and the cloud asks again with the same action id.

pub mod queue;
pub mod sender;

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;
use url::Url;

pub use queue::Delivery;
pub use sender::Deliveries;

/// Where FHIR messages may go, and how their TLS is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FhirSettings {
    /// `FHIR_DESTINATIONS`: the only endpoints the gateway delivers to. Empty: none.
    pub destinations: Vec<Destination>,
    /// `FHIR_CA_FILE`: PEM CA certificates an `https` destination must chain to; unset, the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
}

/// One allowed endpoint: an `http` or `https` URL without credentials, query or fragment,
/// compared in its normalised form (lower-case scheme and host, default port dropped, no
/// trailing slash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination(Url);

/// Why a URL is not a destination.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BadDestination {
    #[error("{0:?} is not a URL (for example https://engine.trust.local/fhir)")]
    NotAUrl(String),
    #[error("{0:?}: only http and https destinations are delivered to")]
    Scheme(String),
    #[error("{0:?}: a destination carries no user name, password, query or fragment")]
    Extras(String),
}

impl Destination {
    pub fn parse(text: &str) -> Result<Destination, BadDestination> {
        let text = text.trim();
        let url = Url::parse(text).map_err(|_| BadDestination::NotAUrl(text.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(BadDestination::Scheme(text.to_string()));
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(BadDestination::Extras(text.to_string()));
        }
        let mut url = url;
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(&path);
        Ok(Destination(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

/// Why the gateway will not deliver to the destination an action names.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NotAllowed {
    #[error(
        "this gateway delivers FHIR to no destination: FHIR_DESTINATIONS is not set in \
         /etc/gateway/gateway.env"
    )]
    NoneConfigured,
    #[error(
        "destination {0} is not on this gateway's allow-list (FHIR_DESTINATIONS: {1}); a hospital \
         administrator adds it there"
    )]
    NotListed(String, String),
    #[error("destination: {0}")]
    Bad(#[from] BadDestination),
}

impl FhirSettings {
    /// The listed destination `url` names, or why it is refused.
    pub fn allowed(&self, url: &str) -> Result<&Destination, NotAllowed> {
        if self.destinations.is_empty() {
            return Err(NotAllowed::NoneConfigured);
        }
        let wanted = Destination::parse(url)?;
        self.destinations
            .iter()
            .find(|d| **d == wanted)
            .ok_or_else(|| {
                let listed = self
                    .destinations
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                NotAllowed::NotListed(wanted.to_string(), listed)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_normalise() {
        let cases: [(&str, Result<&str, &str>); 9] = [
            (
                "https://engine.trust.local/fhir",
                Ok("https://engine.trust.local/fhir"),
            ),
            (
                "HTTPS://Engine.Trust.Local:443/fhir/",
                Ok("https://engine.trust.local/fhir"),
            ),
            ("http://10.1.2.3:8080/", Ok("http://10.1.2.3:8080")),
            ("http://[::1]:8080/r4", Ok("http://[::1]:8080/r4")),
            ("ftp://engine/fhir", Err("only http and https")),
            ("engine.trust.local/fhir", Err("not a URL")),
            ("https://user:pw@engine/fhir", Err("no user name")),
            ("https://engine/fhir?x=1", Err("no user name")),
            ("https://engine/fhir#top", Err("no user name")),
        ];
        for (text, expected) in cases {
            match (Destination::parse(text), expected) {
                (Ok(d), Ok(want)) => assert_eq!(d.to_string(), want, "{text}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn only_listed_destinations_are_allowed() {
        let settings = FhirSettings {
            destinations: vec![Destination::parse("https://engine.trust.local/fhir").unwrap()],
            ca_file: None,
        };
        let cases: [(&str, Result<(), &str>); 7] = [
            ("https://engine.trust.local/fhir", Ok(())),
            ("https://ENGINE.trust.local:443/fhir/", Ok(())),
            (
                "http://engine.trust.local/fhir",
                Err("not on this gateway's allow-list"),
            ),
            (
                "https://engine.trust.local:8443/fhir",
                Err("not on this gateway's allow-list"),
            ),
            (
                "https://engine.trust.local/fhir/admin",
                Err("not on this gateway's allow-list"),
            ),
            (
                "https://pacs.trust.local/fhir",
                Err("not on this gateway's allow-list"),
            ),
            ("https://u:p@engine.trust.local/fhir", Err("no user name")),
        ];
        for (url, expected) in cases {
            match (settings.allowed(url), expected) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{url}: {e}"),
                (got, want) => panic!("{url}: got {got:?}, expected {want:?}"),
            }
        }
        let unset = FhirSettings::default();
        let none = unset.allowed("https://engine.trust.local/fhir");
        assert_eq!(none, Err(NotAllowed::NoneConfigured));
    }
}
