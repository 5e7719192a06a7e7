//! Forwarding stored images to the hospital's PACS (`PACS_FORWARD`).
//!
//! Every stored object is queued for each destination in the same transaction that indexes it
//! ([`queue::enqueue`]), so an acknowledged C-STORE is never lost to a crash before it is sent.
//! One sender per destination ([`sender`]) sends the queue in order, in each object's original
//! transfer syntax, keeping an association open while there is work, and backs off through PACS
//! outages. An object the PACS refuses for good (its SOP class or transfer syntax not accepted,
//! a failure status) is recorded as failed with the reason and the queue moves on: a clear
//! per-object error, never a silent drop and never a blocked queue.
//!
//! A PACS that accepts Storage Commitment is asked to commit what it took ([`commitment`]);
//! each change of an object's state at a PACS (forwarded, committed, failed) is reported to the
//! cloud as `image.archive_state` in the transaction that records it.

pub mod commitment;
pub mod queue;
pub mod sender;

use std::fmt;

use thiserror::Error;

pub use sender::{Forwarder, SenderSettings};

/// One PACS to forward to: `AE@host:port`, or `AE@host:port+tls` for DICOM TLS (PS3.15
/// Annex B), the PACS's certificate checked against `PACS_FORWARD_TLS_CA_FILE` and the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Why a `PACS_FORWARD` entry is not a destination.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not AE@host:port or AE@host:port+tls (for example PACS@10.1.2.3:104)")]
pub struct BadDestination(pub String);

impl Destination {
    /// Parses `AE@host:port[+tls]`; the host may be a name, an IPv4 address or `[IPv6]`.
    pub fn parse(text: &str) -> Result<Destination, BadDestination> {
        let bad = || BadDestination(text.to_string());
        let trimmed = text.trim();
        let (trimmed, tls) = match trimmed.strip_suffix("+tls") {
            Some(rest) => (rest, true),
            None => (trimmed, false),
        };
        let (ae_title, address) = trimmed.split_once('@').ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ae_ok = !ae_title.is_empty()
            && ae_title.len() <= 16
            && ae_title
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if !ae_ok || host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Destination {
            ae_title: ae_title.to_string(),
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// The address to connect to (`host:port`, IPv6 hosts bracketed).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The key its queue and results are stored under.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.ae_title, self.address())?;
        if self.tls {
            f.write_str("+tls")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_or_say_the_form() {
        let ok = |ae: &str, host: &str, port| {
            Ok(Destination {
                ae_title: ae.into(),
                host: host.into(),
                port,
                tls: false,
            })
        };
        let tls = |ae: &str, host: &str, port| {
            Ok(Destination {
                ae_title: ae.into(),
                host: host.into(),
                port,
                tls: true,
            })
        };
        for (text, expected) in [
            ("PACS@10.1.2.3:104", ok("PACS", "10.1.2.3", 104)),
            (
                " ARCHIVE@pacs.trust.nhs.uk:11112 ",
                ok("ARCHIVE", "pacs.trust.nhs.uk", 11112),
            ),
            ("PACS@[fd00::1]:104", ok("PACS", "fd00::1", 104)),
            ("PACS@pacs.trust:2762+tls", tls("PACS", "pacs.trust", 2762)),
            (
                "PACS@h:2762+ssl",
                Err(BadDestination("PACS@h:2762+ssl".into())),
            ),
            ("PACS@10.1.2.3", Err(BadDestination("PACS@10.1.2.3".into()))),
            ("10.1.2.3:104", Err(BadDestination("10.1.2.3:104".into()))),
            ("@h:104", Err(BadDestination("@h:104".into()))),
            ("PACS@h:0", Err(BadDestination("PACS@h:0".into()))),
            ("PACS@h:http", Err(BadDestination("PACS@h:http".into()))),
            (
                "A_TITLE_LONGER_THAN_16@h:104",
                Err(BadDestination("A_TITLE_LONGER_THAN_16@h:104".into())),
            ),
        ] {
            assert_eq!(Destination::parse(text), expected, "{text}");
        }
        let v6 = Destination::parse("PACS@[fd00::1]:104").unwrap();
        assert_eq!(v6.address(), "[fd00::1]:104");
        assert_eq!(v6.to_string(), "PACS@[fd00::1]:104");
        let secure = Destination::parse("PACS@10.1.2.3:2762+tls").unwrap();
        assert_eq!(secure.to_string(), "PACS@10.1.2.3:2762+tls");
        assert_eq!(secure.address(), "10.1.2.3:2762");
    }
}
