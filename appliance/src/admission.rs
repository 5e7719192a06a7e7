//! Who gets a connection and then an association, decided before dicom-ul reads a byte.
//!
//! - The source-address allow-list (`ALLOWED_SOURCE_ADDRESSES`) is applied at accept: a host not
//!   on it is disconnected at once, without a byte read.
//! - A connection waiting for its A-ASSOCIATE-RQ holds a socket, so those are capped
//!   ([`PENDING_TOTAL`], [`PENDING_PER_SOURCE`]: beyond them a connection is closed at once) and
//!   timed by ARTIM (PS3.8 9.1.5, `DICOM_ARTIM_TIMEOUT_SECS`).
//! - Associations count from their request's first byte to their end, on both ports together
//!   (`DICOM_MAX_ASSOCIATIONS`) and per source address (`DICOM_MAX_ASSOCIATIONS_PER_SOURCE`).
//!   One over is read (bounded) and answered A-ASSOCIATE-RJ rejected-transient, service-provider
//!   (presentation), local-limit-exceeded (PS3.8 table 9-21): modalities retry that later.
//!   dicom-ul only lets its access control answer with service-user reasons, so the RJ PDU is
//!   written on the raw socket here, with dicom-ul's PDU writer.
//!
//! Idle connections therefore never take an association's place, and one host can hold at most
//! its own share of either.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Config;

/// Connections waiting for their A-ASSOCIATE-RQ, in all: far above any clinic's burst, far
/// below the unit's `LimitNOFILE=65536`, so a flood of idle connections cannot exhaust file
/// descriptors for the modalities.
pub const PENDING_TOTAL: usize = 1024;
/// Connections waiting for their A-ASSOCIATE-RQ from one address, so that one host's flood
/// leaves room for everyone else's.
pub const PENDING_PER_SOURCE: usize = 64;
/// At most one refusal line per reason in this period; the others are counted in the next.
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// Why a connection or an association was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not in `ALLOWED_SOURCE_ADDRESSES`.
    SourceNotAllowed,
    /// [`PENDING_TOTAL`] connections already wait for their request.
    PendingTotal,
    /// [`PENDING_PER_SOURCE`] connections from this address already wait.
    PendingPerSource,
    /// `DICOM_MAX_ASSOCIATIONS` associations are open.
    Associations,
    /// `DICOM_MAX_ASSOCIATIONS_PER_SOURCE` associations are open from this address.
    AssociationsPerSource,
    /// No A-ASSOCIATE-RQ within `DICOM_ARTIM_TIMEOUT_SECS`.
    Artim,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::SourceNotAllowed,
        Refusal::PendingTotal,
        Refusal::PendingPerSource,
        Refusal::Associations,
        Refusal::AssociationsPerSource,
        Refusal::Artim,
    ];
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::SourceNotAllowed => "source address not in ALLOWED_SOURCE_ADDRESSES",
            Refusal::PendingTotal => "too many connections waiting for their association request",
            Refusal::PendingPerSource => {
                "too many connections from this address waiting for their association request"
            }
            Refusal::Associations => "DICOM_MAX_ASSOCIATIONS associations are open",
            Refusal::AssociationsPerSource => {
                "DICOM_MAX_ASSOCIATIONS_PER_SOURCE associations are open from this address"
            }
            Refusal::Artim => "no association request within DICOM_ARTIM_TIMEOUT_SECS",
        })
    }
}

/// The limits of both listeners together; one per gateway.
pub struct Admission {
    allowed_sources: Option<HashSet<IpAddr>>,
    max_associations: usize,
    max_per_source: usize,
    counts: Mutex<Counts>,
    log: [Throttle; Refusal::ALL.len()],
}

#[derive(Default)]
struct Counts {
    pending: Tally,
    open: Tally,
}

/// A total and its share per address.
#[derive(Default)]
struct Tally {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl Tally {
    fn of(&self, ip: IpAddr) -> usize {
        self.by_source.get(&ip).copied().unwrap_or(0)
    }

    fn add(&mut self, ip: IpAddr) {
        self.total += 1;
        *self.by_source.entry(ip).or_default() += 1;
    }

    fn remove(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_source.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&ip);
            }
        }
    }
}

impl Admission {
    pub fn new(config: &Config) -> Arc<Admission> {
        Arc::new(Admission {
            allowed_sources: config
                .allowed_source_addresses
                .as_ref()
                .map(|set| set.iter().copied().map(canonical).collect()),
            max_associations: config.max_associations,
            max_per_source: config.max_associations_per_source,
            counts: Mutex::default(),
            log: Default::default(),
        })
    }

    /// At accept, before reading: a connection that may wait for its request, or the reason to
    /// close it now.
    pub fn connection(self: &Arc<Self>, peer: IpAddr) -> Result<Pending, Refusal> {
        let ip = canonical(peer);
        if self
            .allowed_sources
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&ip))
        {
            return Err(Refusal::SourceNotAllowed);
        }
        let mut counts = self.counts();
        if counts.pending.total >= PENDING_TOTAL {
            return Err(Refusal::PendingTotal);
        }
        if counts.pending.of(ip) >= PENDING_PER_SOURCE {
            return Err(Refusal::PendingPerSource);
        }
        counts.pending.add(ip);
        Ok(Pending {
            admission: self.clone(),
            ip,
            waiting: true,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counts stay consistent under a panic elsewhere: every change is one statement.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one refusal line, or counts it towards the next one when a line for the same
    /// reason went out less than [`LOG_PERIOD`] ago (a flood must not flood the journal).
    pub fn log_refusal(&self, peer: SocketAddr, why: Refusal, calling_ae: Option<&str>) {
        let index = Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        let Some(suppressed) = self.log[index].allow() else {
            return;
        };
        let calling_ae = calling_ae.unwrap_or("");
        if suppressed > 0 {
            tracing::warn!(%peer, calling_ae, suppressed, "connection refused: {why} ({suppressed} more like it in the last {} s)", LOG_PERIOD.as_secs());
        } else {
            tracing::warn!(%peer, calling_ae, "connection refused: {why}");
        }
    }
}

/// A connection waiting for its A-ASSOCIATE-RQ; counted until dropped or turned into a
/// [`Slot`].
pub struct Pending {
    admission: Arc<Admission>,
    ip: IpAddr,
    /// Still counted as waiting (false once moved to the open count).
    waiting: bool,
}

impl Pending {
    /// The request has begun: an association slot, or (still counted as waiting while it is
    /// rejected) the limit that was reached.
    pub fn associate(mut self) -> Result<Slot, (Pending, Refusal)> {
        let admission = self.admission.clone();
        let ip = self.ip;
        let mut counts = admission.counts();
        let refusal = if counts.open.total >= admission.max_associations {
            Refusal::Associations
        } else if counts.open.of(ip) >= admission.max_per_source {
            Refusal::AssociationsPerSource
        } else {
            counts.open.add(ip);
            counts.pending.remove(ip);
            self.waiting = false;
            drop(counts);
            return Ok(Slot { admission, ip });
        };
        drop(counts);
        Err((self, refusal))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.waiting {
            self.admission.counts().pending.remove(self.ip);
        }
    }
}

/// One open association's place; freed when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.counts().open.remove(self.ip);
    }
}

/// IPv4 clients of a dual-stack listener arrive as `::ffff:a.b.c.d`; they count, and are
/// allowed, as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Waits, within ARTIM, for the first byte of the A-ASSOCIATE-RQ (without reading it).
/// `Err(Some(Artim))` when the timer ran out, `Err(None)` when the peer closed or reset first.
pub async fn request_arrives(socket: &TcpStream, artim: Duration) -> Result<(), Option<Refusal>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(artim, socket.peek(&mut first)).await {
        Err(_) => Err(Some(Refusal::Artim)),
        Ok(Ok(0)) | Ok(Err(_)) => Err(None),
        Ok(Ok(_)) => Ok(()),
    }
}

/// The A-ASSOCIATE-RJ a peer over a limit gets: rejected-transient, from the service provider's
/// presentation function, local limit exceeded (PS3.8 table 9-21).
pub fn local_limit_rejection() -> Vec<u8> {
    let pdu = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut bytes = Vec::with_capacity(10);
    dicom_ul::pdu::write_pdu(&mut bytes, &pdu).expect("an RJ PDU encodes into memory");
    bytes
}

/// Reads the A-ASSOCIATE-RQ of a peer to be rejected (at most `max_pdu` bytes, within ARTIM)
/// and returns its calling AE title; `None` when it is not one, too long, or late.
pub async fn read_request(socket: &mut TcpStream, max_pdu: u32, artim: Duration) -> Option<String> {
    match tokio::time::timeout(artim, read_pdu(socket, max_pdu)).await {
        Ok(Some(Pdu::AssociationRQ(rq))) => Some(rq.calling_ae_title.trim().to_string()),
        _ => None,
    }
}

/// Answers a read request with [`local_limit_rejection`] and waits, again within ARTIM, for
/// the peer to close (PS3.8 state Sta13), so that closing first cannot reset the RJ away before
/// the peer reads it.
pub async fn reject(socket: &mut TcpStream, artim: Duration) {
    if socket.write_all(&local_limit_rejection()).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(artim, async {
        let mut sink = [0u8; 1024];
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// One PDU of at most `max_pdu` bytes, or `None` when it is longer, malformed or cut short.
async fn read_pdu(socket: &mut TcpStream, max_pdu: u32) -> Option<Pdu> {
    const HEADER: usize = 6;
    let mut buffer = vec![0u8; HEADER];
    socket.read_exact(&mut buffer).await.ok()?;
    let declared = u32::from_be_bytes([buffer[2], buffer[3], buffer[4], buffer[5]]);
    if declared > max_pdu {
        return None;
    }
    buffer.resize(HEADER + declared as usize, 0);
    socket.read_exact(&mut buffer[HEADER..]).await.ok()?;
    dicom_ul::pdu::read_pdu(&buffer[..], max_pdu, false)
        .ok()
        .flatten()
}

/// Lets one line through per [`LOG_PERIOD`] and counts the rest.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    /// `Some(lines suppressed since the last one)` when a line may be written now.
    fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < LOG_PERIOD) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn admission(total: usize, per_source: usize, allowed: Option<&[&str]>) -> Arc<Admission> {
        let mut config = Config::new(PathBuf::from("/unused"));
        config.max_associations = total;
        config.max_associations_per_source = per_source;
        config.allowed_source_addresses =
            allowed.map(|list| list.iter().map(|a| a.parse().unwrap()).collect());
        Admission::new(&config)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_rejection_is_transient_provider_presentation_local_limit() {
        // PDU type 3, reserved, length 4, reserved, result 2, source 3, reason 2.
        assert_eq!(
            local_limit_rejection(),
            [0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x02]
        );
    }

    #[test]
    fn the_allow_list_is_applied_to_the_connection_and_knows_mapped_addresses() {
        let a = admission(4, 4, Some(&["10.0.0.5"]));
        assert!(a.connection(ip("10.0.0.5")).is_ok());
        assert!(a.connection(ip("::ffff:10.0.0.5")).is_ok());
        assert_eq!(
            a.connection(ip("10.0.0.6")).err(),
            Some(Refusal::SourceNotAllowed)
        );
        assert!(admission(4, 4, None).connection(ip("10.0.0.6")).is_ok());
    }

    #[test]
    fn associations_are_capped_overall_and_per_source_and_freed_on_drop() {
        let a = admission(3, 2, None);
        let (x, y) = (ip("10.0.0.1"), ip("10.0.0.2"));
        // (source, expected outcome) in order, all slots kept.
        let steps = [
            (x, None),
            (x, None),
            (x, Some(Refusal::AssociationsPerSource)),
            (y, None),
            (y, Some(Refusal::Associations)),
        ];
        let mut slots = Vec::new();
        for (i, (source, expected)) in steps.into_iter().enumerate() {
            let outcome = a.connection(source).unwrap().associate();
            assert_eq!(
                outcome.as_ref().err().map(|(_, r)| *r),
                expected,
                "step {i}"
            );
            if let Ok(slot) = outcome {
                slots.push(slot);
            }
        }
        assert_eq!(a.counts().pending.total, 0, "rejected ones stopped waiting");
        slots.remove(0);
        let again = a.connection(y).unwrap().associate();
        assert!(again.is_ok(), "a freed place is taken again");
        drop(slots);
        assert_eq!(a.counts().open.total, 1);
        drop(again);
        assert_eq!(a.counts().open.total, 0);
        assert!(a.counts().open.by_source.is_empty());
    }

    #[test]
    fn waiting_connections_are_capped_per_source_and_in_all() {
        let a = admission(1, 1, None);
        let held: Vec<Pending> = (0..PENDING_PER_SOURCE)
            .map(|_| a.connection(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            a.connection(ip("10.0.0.1")).err(),
            Some(Refusal::PendingPerSource)
        );
        let others: Vec<Pending> = (0..PENDING_TOTAL - PENDING_PER_SOURCE)
            .map(|i| {
                a.connection(IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8]))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            a.connection(ip("10.9.9.9")).err(),
            Some(Refusal::PendingTotal)
        );
        drop(held);
        drop(others);
        assert_eq!(a.counts().pending.total, 0);
        assert!(a.counts().pending.by_source.is_empty());
    }

    #[test]
    fn the_log_throttle_lets_one_line_through_per_period() {
        let throttle = Throttle::default();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        *throttle.last.lock().unwrap() = Some(Instant::now() - LOG_PERIOD);
        assert_eq!(throttle.allow(), Some(2));
    }
}
