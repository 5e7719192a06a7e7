//! Round-trip latency of one action through the relay emulator: sender connects, the relay hands
//! the sender to the listener, the listener opens its rendezvous, echoes, and the sender reads the
//! reply. Measures our client and emulator together over real loopback websockets.
//!
//! `cargo bench -p relay-emulator --bench relay_roundtrip` prints p50/p90/p99/max for 1,000
//! sequential actions and for 100 concurrent ones (after a warm-up), and writes JSON to
//! `$BENCH_OUT` when that is set.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use relay_emulator::{Config as EmulatorConfig, Emulator, Rule};
use serde_json::json;
use shared::relay::{Config, Listener, ListenerOptions, Sender};
use shared::wire::action::{Action, ActionReply, Command, Outcome};
use shared::wire::{Keyring, SigningKey, Verification};

const NAMESPACE: &str = "bench.servicebus.windows.net";

#[tokio::main]
async fn main() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::start(
        EmulatorConfig::new(
            NAMESPACE,
            vec![Rule::parse("root=k").unwrap()],
            vec!["actions".into()],
        ),
        any,
        None,
    )
    .await
    .unwrap();
    let mut config = Config::new(NAMESPACE, "root", "k");
    config.endpoint = format!("ws://{}", emulator.addr()).parse().unwrap();

    // Both ends sign and verify, as in production.
    let cloud = SigningKey::generate();
    let gateway = SigningKey::generate();
    let gateway_trusts = Verification::strict(Keyring::new(vec![cloud.public_key()]));
    let cloud_trusts = Verification::strict(Keyring::new(vec![gateway.public_key()]));
    // The listener serves all 100 at once: the gateway's default (16, RELAY_MAX_CONCURRENT_
    // MESSAGES) turns the rest away with 503 for the outbox to retry, which would time the
    // retries rather than the relay.
    let mut listening = config.clone();
    listening.limits.max_concurrent_messages = 100;
    let listener = Listener::new(listening, "actions", ListenerOptions::default());
    let mut status = listener.status();
    tokio::spawn(async move {
        listener
            .run(
                move |text| {
                    let reply = match Action::open(&text, &gateway_trusts) {
                        Ok(a) => ActionReply::new(
                            a.action_id,
                            Outcome::Echo {
                                payload: json!(null),
                            },
                        ),
                        Err(r) => ActionReply::rejected(&r),
                    };
                    let sealed = gateway.seal(&reply);
                    async move { sealed }
                },
                std::future::pending(),
            )
            .await
    });
    status.wait_for(|s| s.connected).await.unwrap();
    let sender = Sender::new(config, "actions");

    let one = |sender: Sender, cloud: SigningKey, trusts: Verification| async move {
        let action = Action::new("bench", Command::Echo(json!({"probe": true})));
        let text = cloud.seal(&action);
        let started = Instant::now();
        let reply = sender.request(&text).await.expect("round trip");
        let elapsed = started.elapsed();
        assert!(ActionReply::open(&reply, &trusts).unwrap().is_success());
        elapsed
    };

    for _ in 0..50 {
        one(sender.clone(), cloud.clone(), cloud_trusts.clone()).await;
    }
    let mut sequential = Vec::with_capacity(1000);
    for _ in 0..1000 {
        sequential.push(one(sender.clone(), cloud.clone(), cloud_trusts.clone()).await);
    }
    let mut concurrent = Vec::new();
    for _ in 0..5 {
        let batch = futures_util::future::join_all(
            (0..100).map(|_| one(sender.clone(), cloud.clone(), cloud_trusts.clone())),
        )
        .await;
        concurrent.extend(batch);
    }

    let seq = Summary::of(&mut sequential);
    let conc = Summary::of(&mut concurrent);
    println!(
        "relay round trip, signed echo action, emulator on loopback ({} cores)",
        cores()
    );
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "", "p50 ms", "p90 ms", "p99 ms", "max ms", "n"
    );
    println!("{:<32} {}", "1,000 sequential", seq.row());
    println!("{:<32} {}", "100 concurrent (x5 batches)", conc.row());
    // Rows for BENCHMARKS.md (scripts/bench-report.py describes the format); no reference.
    if let Ok(path) = std::env::var("BENCH_OUT") {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut rows = Vec::new();
        for (label, summary) in [("1,000 sequential", &seq), ("100 concurrent × 5", &conc)] {
            for (at, value) in [("p50", summary.p50), ("p99", summary.p99)] {
                rows.push(json!({
                    "benchmark": "System latency",
                    "metric": format!("relay round trip (signed echo action via the emulator), {label}, {at}"),
                    "unit": "ms",
                    "better": "lower",
                    "ours": ms(value),
                    "ours_spread": format!("max {:.1}", ms(summary.max)),
                    "reference": null,
                    "reference_value": null,
                    "n": summary.n,
                }));
            }
        }
        let out = json!({ "rows": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }
}

struct Summary {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    n: usize,
}

impl Summary {
    fn of(samples: &mut [Duration]) -> Summary {
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
        Summary {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: *samples.last().unwrap(),
            n: samples.len(),
        }
    }

    fn row(&self) -> String {
        let ms = |d: Duration| format!("{:>8.2}", d.as_secs_f64() * 1000.0);
        format!(
            "{} {} {} {} {:>6}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.n
        )
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
