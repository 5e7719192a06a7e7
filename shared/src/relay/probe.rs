//! One-shot checks of a relay configuration for `gateway doctor`: can we reach the relay, does
//! it take our key, does the hybrid connection exist, is anyone listening on the other side, and
//! how far is our clock from the relay's (SAS tokens and signed messages carry times).

use std::time::{Duration, Instant, SystemTime};

use super::connect::{self, Purpose};
use super::{Config, RelayError};

/// What a probe that got through learned.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The relay's clock from the handshake's `Date` header, when it sent one.
    pub relay_time: Option<SystemTime>,
    /// Our clock when the handshake completed, to compare with `relay_time`.
    pub local_time: SystemTime,
    /// How long the handshake took (TCP, TLS, proxy, upgrade).
    pub took: Duration,
}

impl Probe {
    /// Our clock minus the relay's (positive: we are ahead), when the relay told its time.
    /// `Date` has one-second resolution, so anything under ~2 s is agreement.
    pub fn clock_skew(&self) -> Option<f64> {
        let relay = self.relay_time?;
        Some(match self.local_time.duration_since(relay) {
            Ok(ahead) => ahead.as_secs_f64(),
            Err(behind) => -behind.duration().as_secs_f64(),
        })
    }
}

/// Opens a listener control channel on `entity` and closes it at once. Proves reachability, TLS,
/// the key's Listen right and that the hybrid connection exists. While open (a few milliseconds)
/// the relay may route a sender to it; that sender sees the rendezvous fail and retries.
pub async fn listen(config: &Config, entity: &str, timeout: Duration) -> Result<Probe, RelayError> {
    probe(config, entity, "listen", Purpose::Listen, timeout).await
}

/// Opens a sender connection to `entity` and closes it without sending. Proves the Send right and
/// that a listener is there now ([`RelayError::NoListener`] when none is).
pub async fn connect(
    config: &Config,
    entity: &str,
    timeout: Duration,
) -> Result<Probe, RelayError> {
    probe(config, entity, "connect", Purpose::Connect, timeout).await
}

async fn probe(
    config: &Config,
    entity: &str,
    action: &str,
    purpose: Purpose,
    timeout: Duration,
) -> Result<Probe, RelayError> {
    let entity = entity.trim_matches('/');
    let url = config.url(entity, action, &uuid::Uuid::new_v4().to_string());
    let started = Instant::now();
    let (mut socket, relay_time) = connect::open(
        &url,
        Some(&config.token(entity)),
        config,
        timeout,
        entity,
        purpose,
    )
    .await?;
    let probe = Probe {
        relay_time,
        local_time: SystemTime::now(),
        took: started.elapsed(),
    };
    let _ = socket.close(None).await;
    Ok(probe)
}
