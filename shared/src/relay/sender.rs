//! The sending side: one connection per message, one reply awaited.
//!
//! A fresh connection per message keeps the sender stateless and lets the relay spread senders
//! over several listeners (high-availability gateways). The caller keeps its own durable outbox
//! and retries on [`RelayError::is_retryable`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::connect::{self, Purpose};
use super::{Config, RelayError};

/// Sends messages to whoever listens on one hybrid connection.
#[derive(Debug, Clone)]
pub struct Sender {
    config: Arc<Config>,
    entity: String,
    /// Limit for the relay to find a listener and for the listener to accept.
    pub connect_timeout: Duration,
    /// Limit for the reply once the message is sent.
    pub reply_timeout: Duration,
}

impl Sender {
    /// A sender to `entity`, with the NHS app's 30 s limits.
    pub fn new(config: Config, entity: &str) -> Sender {
        Sender {
            config: Arc::new(config),
            entity: entity.trim_matches('/').to_string(),
            connect_timeout: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(30),
        }
    }

    /// Sends one text message and returns the listener's one reply.
    pub async fn request(&self, message: &str) -> Result<String, RelayError> {
        let token = self.config.token(&self.entity);
        let url = self
            .config
            .url(&self.entity, "connect", &uuid::Uuid::new_v4().to_string());
        let (mut socket, _relay_time) = connect::open(
            &url,
            Some(&token),
            &self.config,
            self.connect_timeout,
            &self.entity,
            Purpose::Connect,
        )
        .await?;
        socket
            .send(Message::Text(message.into()))
            .await
            .map_err(|e| RelayError::Transport(format!("send: {e}")))?;
        let reply = tokio::time::timeout(self.reply_timeout, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
                    Some(Ok(Message::Binary(bytes))) => {
                        return Ok(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame
                            .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "no close frame".into());
                        return Err(RelayError::Closed(why));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(RelayError::Closed(e.to_string())),
                    None => return Err(RelayError::Closed("connection dropped".into())),
                }
            }
        })
        .await
        .map_err(|_| RelayError::Timeout(self.reply_timeout))??;
        let _ = socket.close(None).await;
        Ok(reply)
    }
}
