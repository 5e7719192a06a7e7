//! What the web benches share: sending signed gateway events through the relay the way gateways
//! do, and the statistics the rows report.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_emulator::Emulator;
use shared::wire::event::EventStatus;
use shared::wire::SigningKey;
use tokio::task::JoinSet;

use crate::support::{self, gateway, EVENTS};

/// What sending a batch of events did.
pub struct Sent {
    pub accepted: usize,
    pub refused: usize,
    /// First send → last reply.
    pub elapsed: Duration,
    /// Each event's send → verified reply.
    pub latencies: Vec<Duration>,
}

/// Sends pre-signed events with `senders` concurrent senders, each over its own relay
/// connection as the gateway does; gives up on what is unsent after `limit`.
pub async fn send_events(
    emulator: &Emulator,
    web_key: &SigningKey,
    texts: Vec<String>,
    senders: usize,
    limit: Duration,
) -> Sent {
    let total = texts.len();
    let texts = Arc::new(texts);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..senders {
        let (texts, next) = (texts.clone(), next.clone());
        let relay = support::relay_client(emulator);
        let web_key = web_key.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut accepted = 0;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(text) = texts.get(i) else { break };
                let t = Instant::now();
                let reply = gateway::send_text(relay.clone(), EVENTS, &web_key, text).await;
                latencies.push(t.elapsed());
                if reply.status == EventStatus::Accepted {
                    accepted += 1;
                } else if accepted == 0 && latencies.len() <= 1 {
                    eprintln!("event not accepted: {reply:?}");
                }
            }
            (accepted, latencies)
        });
    }
    let mut sent = Sent {
        accepted: 0,
        refused: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    let joined = tokio::time::timeout(limit, async {
        while let Some(result) = tasks.join_next().await {
            // A sender that panicked (the relay failed) counts its unsent events as refused.
            if let Ok((accepted, latencies)) = result {
                sent.accepted += accepted;
                sent.latencies.extend(latencies);
            }
        }
    })
    .await;
    sent.elapsed = start.elapsed();
    if joined.is_err() {
        eprintln!("sending did not finish within {} s", limit.as_secs());
    }
    sent.refused = total - sent.accepted;
    sent
}

/// Nearest-rank percentile.
pub fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
}

pub fn median_min_max(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.collect();
    let median = percentile(&mut v, 0.5);
    (median, v[0], v[v.len() - 1])
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails), for `/proc/…/stat`.
pub fn clock_tick() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The sum of numeric fields `fields` (numbered from 1 as in proc(5): 4 ppid, 14 utime,
/// 15 stime, 16 cutime, 17 cstime) of a `/proc/…/stat` file. The process name in parentheses
/// may hold spaces, so fields are counted from its closing parenthesis.
pub fn proc_stat_sum(path: &str, fields: std::ops::RangeInclusive<usize>) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // What follows the name starts at field 3 (state).
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    fields
        .map(|n| rest.get(n.checked_sub(3)?)?.parse::<u64>().ok())
        .sum()
}
