//! Loopback ports for servers that tests start as separate processes (`gateway serve`, `storescp`,
//! PostgreSQL), which must be told their port before they bind it.
//!
//! Asking the kernel for port 0 and passing the number on is racy: that number comes from the
//! ephemeral range (`net.ipv4.ip_local_port_range`, 32768–60999 by default), the same range every
//! outgoing connection takes its source port from, so a test opening hundreds of connections next
//! door can take it before the server binds it ("Address already in use", seen in CI). Ports here
//! come from below that range, where only listeners live, and no two calls in one process return
//! the same port.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out: above the registered services a developer machine may run.
const FIRST: u32 = 10_000;

/// Calls so far in this process; with the pid it spreads processes over the range.
static CALLS: AtomicU32 = AtomicU32::new(0);

/// A loopback port that was free when asked, outside the ephemeral range, different from every
/// other port this process got here.
pub fn free_port() -> u16 {
    let end = ephemeral_start().clamp(FIRST + 1_000, 65_536);
    let span = end - FIRST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        assert!(
            call < span,
            "every loopback port from {FIRST} to {end} was tried"
        );
        let port = FIRST + (start + call) % span;
        let port = u16::try_from(port).expect("below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// First port of the kernel's ephemeral range (Linux), 32768 when it cannot be read.
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(
                u32::from(port) >= FIRST && u32::from(port) < ephemeral_start().max(FIRST + 1_000)
            );
            TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }
}
