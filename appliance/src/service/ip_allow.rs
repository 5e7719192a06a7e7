//! The systemd drop-in that lets the kernel, not only the gateway, refuse hosts outside
//! `ALLOWED_SOURCE_ADDRESSES` (`IPAddressDeny=any` plus `IPAddressAllow=`, systemd.resource-control(5)).
//!
//! systemd applies the filter to every packet of the service, outgoing ones too, so the drop-in
//! must also allow the way to the relay: the proxy (`HTTPS_PROXY`) and the DNS servers that
//! find it, or a relay endpoint given as an IP address. A relay reached directly by name is at
//! Azure's addresses, which change: then no address filter can be written, and the gateway's own
//! check at accept is what refuses strangers. `gateway doctor --ip-drop-in` prints the file for
//! hospital IT to review and install; it never writes into /etc itself.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};

use url::{Host, Url};

/// Where the drop-in goes.
pub const DROP_IN_PATH: &str = "/etc/systemd/system/gateway.service.d/ip-allow.conf";

/// The command that installs it, for the doctor's advice.
pub const INSTALL: &str = "sudo mkdir -p /etc/systemd/system/gateway.service.d && sudo gateway doctor --ip-drop-in | sudo tee /etc/systemd/system/gateway.service.d/ip-allow.conf && sudo systemctl daemon-reload && sudo systemctl restart gateway";

/// Why no drop-in can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPossible {
    /// Without `ALLOWED_SOURCE_ADDRESSES` a filter would shut the modalities out.
    NoAllowList,
    /// The relay is dialled directly by name: its addresses are Azure's and change.
    RelayByName(String),
    /// The proxy's name does not resolve now.
    Unresolvable { host: String, why: String },
}

impl fmt::Display for NotPossible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotPossible::NoAllowList => write!(f, "ALLOWED_SOURCE_ADDRESSES is not set, so there is no address list to filter with"),
            NotPossible::RelayByName(host) => write!(f, "the relay is reached directly at {host}, whose addresses are Azure's and change, so systemd cannot filter by address (set HTTPS_PROXY to the trust's proxy, or use the host firewall for inbound ports)"),
            NotPossible::Unresolvable { host, why } => write!(f, "the proxy {host} does not resolve: {why}"),
        }
    }
}

/// What the drop-in needs to know about this machine; [`System`] asks the real one.
pub trait Lookup {
    /// The addresses `host` resolves to now.
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, String>;
    /// The DNS servers in `/etc/resolv.conf`.
    fn nameservers(&self) -> Vec<IpAddr>;
}

/// The machine the doctor runs on.
pub struct System;

impl Lookup for System {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
        (host, port)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .map_err(|e| e.to_string())
    }

    fn nameservers(&self) -> Vec<IpAddr> {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        nameservers_in(&text)
    }
}

/// The `nameserver` lines of a resolv.conf.
fn nameservers_in(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .collect()
}

/// A system inside the hospital the gateway itself calls: a PACS it forwards to
/// (`PACS_FORWARD`) or an integration engine it delivers FHIR to (`FHIR_DESTINATIONS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HospitalPeer {
    /// The comment line above its addresses, naming the setting it comes from.
    pub comment: String,
    pub host: String,
    pub port: u16,
}

impl From<&crate::forward::Destination> for HospitalPeer {
    fn from(destination: &crate::forward::Destination) -> HospitalPeer {
        HospitalPeer {
            comment: format!("PACS_FORWARD {destination}: the hospital PACS"),
            host: destination.host.clone(),
            port: destination.port,
        }
    }
}

impl From<&crate::fhir::Destination> for HospitalPeer {
    fn from(destination: &crate::fhir::Destination) -> HospitalPeer {
        let url = destination.url();
        HospitalPeer {
            comment: format!("FHIR_DESTINATIONS {destination}: the integration engine"),
            // An IPv6 host comes bracketed from the URL; the resolver and parser want it bare.
            host: url
                .host_str()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: url.port_or_known_default().unwrap_or(443),
        }
    }
}

/// The drop-in for these modalities, this relay route (through `proxy` when there is one, else
/// straight to `endpoint`; both `None` without a cloud link) and the hospital systems the
/// gateway calls.
pub fn drop_in(
    allowed_sources: Option<&HashSet<IpAddr>>,
    proxy: Option<&Url>,
    endpoint: Option<&Url>,
    hospital: &[HospitalPeer],
    lookup: &dyn Lookup,
) -> Result<String, NotPossible> {
    let sources = allowed_sources
        .filter(|set| !set.is_empty())
        .ok_or(NotPossible::NoAllowList)?;
    let mut sections = vec![(
        "ALLOWED_SOURCE_ADDRESSES: the modalities".to_string(),
        sorted(sources.iter().copied()),
    )];
    match (proxy, endpoint) {
        (Some(proxy), _) => {
            let port = proxy.port_or_known_default().unwrap_or(3128);
            let (addresses, by_name) = addresses_of(proxy, lookup)?;
            sections.push((
                format!(
                    "HTTPS_PROXY {}:{port}: the way to the relay",
                    proxy.host_str().unwrap_or("")
                ),
                addresses,
            ));
            if by_name {
                sections.push((
                    "DNS servers (/etc/resolv.conf), to find the proxy".to_string(),
                    sorted(lookup.nameservers()),
                ));
            }
        }
        (None, Some(endpoint)) => match endpoint.host() {
            Some(Host::Domain(name)) => return Err(NotPossible::RelayByName(name.to_string())),
            _ => {
                let (addresses, _) = addresses_of(endpoint, lookup)?;
                sections.push(("AZURE_RELAY_ENDPOINT: the relay".to_string(), addresses));
            }
        },
        (None, None) => {}
    }
    // The hospital systems the gateway calls, by address or by name.
    let mut hospital_by_name = false;
    for peer in hospital {
        let addresses = match peer.host.parse::<IpAddr>() {
            Ok(ip) => BTreeSet::from([ip]),
            Err(_) => {
                hospital_by_name = true;
                let found = lookup.resolve(&peer.host, peer.port).map_err(|why| {
                    NotPossible::Unresolvable {
                        host: peer.host.clone(),
                        why,
                    }
                })?;
                sorted(found)
            }
        };
        sections.push((peer.comment.clone(), addresses));
    }
    if hospital_by_name && !sections.iter().any(|(c, _)| c.starts_with("DNS servers")) {
        sections.push((
            "DNS servers (/etc/resolv.conf), to find the hospital systems".to_string(),
            sorted(lookup.nameservers()),
        ));
    }
    let mut text = format!(
        "# {DROP_IN_PATH}, printed by `gateway doctor --ip-drop-in`.\n\
         # Only these addresses may exchange packets with the gateway. Print it again after\n\
         # changing ALLOWED_SOURCE_ADDRESSES or the proxy.\n\
         [Service]\n\
         IPAddressDeny=any\n\
         # This host (dcmtk and `gateway emulate-modality` at the console, a local resolver).\n\
         IPAddressAllow=localhost\n"
    );
    for (comment, addresses) in sections {
        let listed: Vec<String> = addresses
            .iter()
            .filter(|a| !a.is_loopback())
            .map(IpAddr::to_string)
            .collect();
        if !listed.is_empty() {
            text.push_str(&format!(
                "# {comment}\nIPAddressAllow={}\n",
                listed.join(" ")
            ));
        }
    }
    Ok(text)
}

/// The addresses of a URL's host, and whether they came from a name (so DNS is needed too).
fn addresses_of(url: &Url, lookup: &dyn Lookup) -> Result<(BTreeSet<IpAddr>, bool), NotPossible> {
    match url.host() {
        Some(Host::Ipv4(v4)) => Ok((BTreeSet::from([IpAddr::V4(v4)]), false)),
        Some(Host::Ipv6(v6)) => Ok((BTreeSet::from([IpAddr::V6(v6)]), false)),
        Some(Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            let found = lookup
                .resolve(name, port)
                .map_err(|why| NotPossible::Unresolvable {
                    host: name.to_string(),
                    why,
                })?;
            if found.is_empty() {
                return Err(NotPossible::Unresolvable {
                    host: name.to_string(),
                    why: "no addresses".into(),
                });
            }
            Ok((sorted(found), true))
        }
        None => Err(NotPossible::Unresolvable {
            host: url.to_string(),
            why: "no host in the URL".into(),
        }),
    }
}

fn sorted(addresses: impl IntoIterator<Item = IpAddr>) -> BTreeSet<IpAddr> {
    addresses.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Lookup for Fake {
        fn resolve(&self, host: &str, _port: u16) -> Result<Vec<IpAddr>, String> {
            match host {
                "proxy.trust.nhs.uk" => Ok(vec!["10.9.9.9".parse().unwrap()]),
                "pacs.trust.nhs.uk" => Ok(vec!["10.4.4.4".parse().unwrap()]),
                _ => Err("Name or service not known".into()),
            }
        }

        fn nameservers(&self) -> Vec<IpAddr> {
            vec!["10.1.1.1".parse().unwrap(), "127.0.0.53".parse().unwrap()]
        }
    }

    fn set(list: &[&str]) -> HashSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn url(text: &str) -> Url {
        text.parse().unwrap()
    }

    /// The `IPAddressAllow=` values of a drop-in.
    fn allowed(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix("IPAddressAllow="))
            .collect()
    }

    /// A route's name, its proxy and endpoint, and the `IPAddressAllow=` values it should get.
    type Case = (
        &'static str,
        Option<Url>,
        Option<Url>,
        Result<Vec<&'static str>, NotPossible>,
    );

    #[test]
    fn each_relay_route_gets_the_addresses_it_needs_or_a_reason() {
        let modalities = set(&["10.0.0.6", "10.0.0.5"]);
        let azure = url("wss://clinic.servicebus.windows.net");
        #[rustfmt::skip]
        let cases: [Case; 5] = [
            ("no cloud link", None, None,
                Ok(vec!["localhost", "10.0.0.5 10.0.0.6"])),
            ("through a named proxy", Some(url("http://proxy.trust.nhs.uk:8080")), Some(azure.clone()),
                Ok(vec!["localhost", "10.0.0.5 10.0.0.6", "10.9.9.9", "10.1.1.1"])),
            ("through a proxy by address", Some(url("http://10.8.8.8:3128")), Some(azure.clone()),
                Ok(vec!["localhost", "10.0.0.5 10.0.0.6", "10.8.8.8"])),
            ("a relay endpoint by address", None, Some(url("wss://10.7.7.7")),
                Ok(vec!["localhost", "10.0.0.5 10.0.0.6", "10.7.7.7"])),
            ("Azure directly", None, Some(azure.clone()),
                Err(NotPossible::RelayByName("clinic.servicebus.windows.net".into()))),
        ];
        for (name, proxy, endpoint, expected) in cases {
            let got = drop_in(
                Some(&modalities),
                proxy.as_ref(),
                endpoint.as_ref(),
                &[],
                &Fake,
            );
            assert_eq!(
                got.as_deref().map(allowed),
                expected.as_ref().cloned(),
                "{name}"
            );
        }
    }

    #[test]
    fn no_allow_list_or_an_unknown_proxy_is_said_so() {
        assert_eq!(
            drop_in(None, None, None, &[], &Fake),
            Err(NotPossible::NoAllowList)
        );
        assert_eq!(
            drop_in(Some(&set(&[])), None, None, &[], &Fake),
            Err(NotPossible::NoAllowList)
        );
        let e = drop_in(
            Some(&set(&["10.0.0.5"])),
            Some(&url("http://nowhere.invalid:1")),
            None,
            &[],
            &Fake,
        )
        .unwrap_err();
        assert!(matches!(e, NotPossible::Unresolvable { .. }), "{e}");
    }

    #[test]
    fn the_forwarding_pacs_is_allowed_by_address_or_name() {
        let pacs: Vec<HospitalPeer> = [
            crate::forward::Destination::parse("PACS@10.3.3.3:104").unwrap(),
            crate::forward::Destination::parse("VNA@pacs.trust.nhs.uk:11112").unwrap(),
        ]
        .iter()
        .map(HospitalPeer::from)
        .collect();
        let text = drop_in(Some(&set(&["10.0.0.5"])), None, None, &pacs, &Fake).unwrap();
        assert_eq!(
            allowed(&text),
            vec!["localhost", "10.0.0.5", "10.3.3.3", "10.4.4.4", "10.1.1.1"],
            "{text}"
        );
        let unknown = [HospitalPeer::from(
            &crate::forward::Destination::parse("PACS@nowhere.invalid:104").unwrap(),
        )];
        let e = drop_in(Some(&set(&["10.0.0.5"])), None, None, &unknown, &Fake).unwrap_err();
        assert!(matches!(e, NotPossible::Unresolvable { .. }), "{e}");
    }

    #[test]
    fn fhir_destinations_are_allowed_by_address_or_name() {
        let engines: Vec<HospitalPeer> = [
            "http://10.6.6.6:8080/fhir",
            "https://[fd00::6]/fhir",
            "https://pacs.trust.nhs.uk/fhir",
        ]
        .iter()
        .map(|url| HospitalPeer::from(&crate::fhir::Destination::parse(url).unwrap()))
        .collect();
        assert_eq!(engines[1].port, 443);
        let text = drop_in(Some(&set(&["10.0.0.5"])), None, None, &engines, &Fake).unwrap();
        assert_eq!(
            allowed(&text),
            vec![
                "localhost",
                "10.0.0.5",
                "10.6.6.6",
                "fd00::6",
                "10.4.4.4",
                "10.1.1.1"
            ],
            "{text}"
        );
        assert!(
            text.contains("# FHIR_DESTINATIONS http://10.6.6.6:8080/fhir: the integration engine"),
            "{text}"
        );
    }

    #[test]
    fn the_drop_in_denies_everything_else() {
        let text = drop_in(Some(&set(&["10.0.0.5"])), None, None, &[], &Fake).unwrap();
        assert!(text.contains("[Service]\nIPAddressDeny=any\n"), "{text}");
    }

    #[test]
    fn reads_nameservers_from_resolv_conf() {
        let text = "# generated\nnameserver 10.1.1.1\nsearch trust.nhs.uk\nnameserver  fe80::1\nnameserver bad\n";
        assert_eq!(
            nameservers_in(text),
            vec![
                "10.1.1.1".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }
}
