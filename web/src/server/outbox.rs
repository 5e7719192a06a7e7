//! The outbox worker: sends queued GatewayActions through each gateway's relay, signed, out of
//! the request cycle. A reply of `created`/`exists`/`updated`/… confirms the action; `error` fails
//! it with the gateway's message; an outage (no listener, timeout) leaves it pending with a capped
//! exponential backoff and the next attempt time recorded for the actions page.
//!
//! An appointment's actions go in the order they were queued (the store holds one back while an
//! earlier one is undelivered), and a worklist item is checked against its appointment before
//! every attempt: one whose appointment was cancelled meanwhile is withdrawn, never sent.

use std::time::Duration;

use serde_json::Value;
use shared::backoff::Exponential;
use shared::relay::{RelayError, Sender};
use shared::wire::action::{Action, ActionReply, Outcome};
use tokio::time::sleep;

use super::bus::Change;
use super::db::{now_ms, StoreError};
use super::relay_link;
use super::state::AppState;
use super::store::actions::Reached;
use super::store::{actions, gateways};

/// How long one attempt's seal is valid. Each attempt is re-stamped, so this covers one delivery
/// (connect and reply timeouts, with room for clock skew), not an outage; gateways accept at most
/// 24 hours.
pub const ACTION_VALIDITY: time::Duration = time::Duration::minutes(15);

/// How the worker sends: the backoff between attempts after an outage and how long one attempt
/// may take.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after a failed attempt (the same capped exponential schedule as the gateway's
    /// event courier).
    pub backoff: Exponential,
    /// How long the relay may take to find the gateway's listener.
    pub connect_timeout: Duration,
    /// How long the gateway may take to reply.
    pub reply_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            backoff: Exponential::new(Duration::from_secs(2), Duration::from_secs(300)),
            connect_timeout: Duration::from_secs(15),
            reply_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long a replica's claim on an action it is sending holds off the others: one attempt's
    /// connect and reply timeouts and a minute to spare. Past it the sender is presumed dead and
    /// any replica sends the action again (the gateway answers `exists` for what it has).
    pub fn lease(&self) -> Duration {
        self.connect_timeout + self.reply_timeout + Duration::from_secs(60)
    }

    /// The wait after the `attempts`-th failed attempt (the stored attempt counter).
    pub fn delay(&self, attempts: i64) -> Duration {
        self.backoff
            .delay(u32::try_from(attempts.max(0)).unwrap_or(u32::MAX))
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Confirmed,
    Failed(String),
    Retry {
        error: String,
        next_attempt_at: i64,
    },
    /// Someone else changed the row first (a re-drive raced us).
    Skipped,
    /// Not sent: the appointment no longer wants it (cancelled before delivery).
    Withdrawn(String),
}

/// Runs until `shutdown` completes: sends what is due, then sleeps until the next action falls due
/// or a new one is queued.
pub async fn run(
    state: AppState,
    policy: RetryPolicy,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let wake = state.outbox_wake.notified();
        tokio::pin!(wake);
        // Register interest before reading, so a wake-up between the read and the wait is kept.
        wake.as_mut().enable();
        if let Err(e) = send_due(&state, policy).await {
            tracing::error!("outbox: {e}");
        }
        let pause = match actions::next_due(&state.db).await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(0, 60_000) as u64),
            Ok(None) => Duration::from_secs(60),
            Err(e) => {
                tracing::error!("outbox: {e}");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = wake => {}
            _ = sleep(pause) => {}
        }
    }
}

/// Sends every action due now; returns how many were attempted.
/// Gateways are served concurrently, each gateway's actions in order, so one unreachable gateway
/// (waiting out its connect timeout) does not hold up the others.
pub async fn send_due(state: &AppState, policy: RetryPolicy) -> Result<usize, StoreError> {
    let due = actions::due(&state.db, now_ms(), 50).await?;
    let count = due.len();
    let mut by_gateway: std::collections::BTreeMap<i64, Vec<actions::Queued>> = Default::default();
    for action in due {
        by_gateway
            .entry(action.gateway_id)
            .or_default()
            .push(action);
    }
    let batches = by_gateway.into_values().map(|batch| async move {
        for action in &batch {
            send_one(state, policy, action).await?;
        }
        Ok::<_, StoreError>(())
    });
    for result in futures::future::join_all(batches).await {
        result?;
    }
    Ok(count)
}

/// Sends one action and records and announces what became of it.
async fn send_one(
    state: &AppState,
    policy: RetryPolicy,
    action: &actions::Queued,
) -> Result<(), StoreError> {
    let outcome = attempt(state, policy, action).await?;
    tracing::info!(action = %action.id, kind = %action.action_type, "outbox: {outcome:?}");
    let counted = match &outcome {
        Attempt::Confirmed => "confirmed",
        Attempt::Failed(_) => "failed",
        Attempt::Retry { .. } => "retry",
        Attempt::Withdrawn(_) => "withdrawn",
        Attempt::Skipped => "skipped",
    };
    metrics::counter!(super::metrics::OUTBOX_ATTEMPTS, "outcome" => counted).increment(1);
    if let Some(appointment_id) = action.appointment_id {
        let line = match &outcome {
            Attempt::Confirmed => Some(format!("Gateway confirmed {}", action.action_type)),
            Attempt::Failed(error) => Some(format!("Gateway action failed: {error}")),
            Attempt::Retry {
                next_attempt_at, ..
            } => Some(format!(
                "Gateway not reachable; next attempt at {}",
                super::db::clock_time(*next_attempt_at)
            )),
            Attempt::Withdrawn(why) => Some(format!("Worklist item not sent: {why}")),
            Attempt::Skipped => None,
        };
        if let Some(line) = line {
            super::store::appointments::note(&state.db, appointment_id, &line).await?;
        }
    }
    state.bus.publish(Change::Action {
        provider_id: action.provider_id,
        action_id: action.id.clone(),
        appointment_id: action.appointment_id,
    });
    if let Some(appointment_id) = action.appointment_id {
        if let Ok(p) =
            super::store::appointments::placement(&state.db, action.provider_id, appointment_id)
                .await
        {
            state.bus.publish(Change::Appointment {
                provider_id: p.provider_id,
                clinic_id: p.clinic_id,
                appointment_id,
            });
        }
    }
    Ok(())
}

/// One send of one action, with its outcome recorded.
pub async fn attempt(
    state: &AppState,
    policy: RetryPolicy,
    action: &actions::Queued,
) -> Result<Attempt, StoreError> {
    if let Some(why) = stale(state, action).await? {
        return withdraw(state, action, &why).await;
    }
    let claim = actions::Claim {
        replica: &state.replica,
        lease: policy.lease(),
    };
    if !actions::mark_sent(&state.db, &action.id, &claim).await? {
        return Ok(Attempt::Skipped);
    }
    match send_and_record(state, policy, action, &claim).await {
        // A create that did not land while its appointment was being cancelled is withdrawn, so
        // the cancellation queued behind it is not held for ever.
        Ok(outcome @ (Attempt::Failed(_) | Attempt::Retry { .. })) => {
            match stale(state, action).await? {
                Some(why) => withdraw(state, action, &why).await,
                None => Ok(outcome),
            }
        }
        Ok(outcome) => Ok(outcome),
        // Database trouble: the row stays `sent`, and is sent again once the lease runs out.
        Err(e @ StoreError::Sql(_)) => Err(e),
        // Anything else (its gateway gone, a corrupt payload) will not get better by itself.
        Err(other) => {
            let error = other.to_string();
            failed(state, action, &claim, error, None, Reached::No).await
        }
    }
}

/// Records the attempt as failed for good, with why (and the reply, when there was one).
async fn failed(
    state: &AppState,
    action: &actions::Queued,
    claim: &actions::Claim<'_>,
    error: String,
    reply: Option<&str>,
    reached: Reached,
) -> Result<Attempt, StoreError> {
    if !actions::mark_failed(&state.db, &action.id, claim, &error, reply, reached).await? {
        return Ok(superseded(action));
    }
    Ok(Attempt::Failed(error))
}

/// Our lease ran out before the answer came and another replica took the action over: what it
/// learns is what counts.
fn superseded(action: &actions::Queued) -> Attempt {
    tracing::warn!(action = %action.id, "outbox: the lease ran out before the gateway answered; another replica has taken the action over");
    Attempt::Skipped
}

/// Records a retry, unless the claim was lost.
async fn retry(
    state: &AppState,
    action: &actions::Queued,
    claim: &actions::Claim<'_>,
    error: String,
    next_attempt_at: i64,
    reached: Reached,
) -> Result<Attempt, StoreError> {
    if !actions::mark_retry(
        &state.db,
        &action.id,
        claim,
        &error,
        next_attempt_at,
        reached,
    )
    .await?
    {
        return Ok(superseded(action));
    }
    Ok(Attempt::Retry {
        error,
        next_attempt_at,
    })
}

/// Why a worklist item must not (or no longer) be sent, if so: its appointment is not waiting
/// for the modality any more.
async fn stale(state: &AppState, action: &actions::Queued) -> Result<Option<String>, StoreError> {
    let Some(appointment_id) = action.appointment_id else {
        return Ok(None);
    };
    if !actions::sends_appointment(&action.action_type) {
        return Ok(None);
    }
    let placement =
        super::store::appointments::placement(&state.db, action.provider_id, appointment_id)
            .await?;
    Ok(
        (placement.status == crate::domain::AppointmentStatus::Cancelled)
            .then(|| "the appointment was cancelled before it was delivered".to_string()),
    )
}

/// Withdraws a stale worklist item (and, when no attempt can have reached the gateway, the
/// cancellation queued behind it: there is nothing there to cancel).
async fn withdraw(
    state: &AppState,
    action: &actions::Queued,
    why: &str,
) -> Result<Attempt, StoreError> {
    let mut tx = state.db.begin().await?;
    let taken = actions::withdraw(&mut tx, &action.id, why).await?;
    if taken {
        if let Some(appointment_id) = action.appointment_id {
            actions::withdraw_needless_cancels(&mut tx, appointment_id, &action.id).await?;
        }
    }
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(if taken {
        Attempt::Withdrawn(why.to_string())
    } else {
        Attempt::Skipped
    })
}

async fn send_and_record(
    state: &AppState,
    policy: RetryPolicy,
    action: &actions::Queued,
    claim: &actions::Claim<'_>,
) -> Result<Attempt, StoreError> {
    let attempts = action.attempts + 1;
    let gateway = gateways::by_id(&state.db, action.gateway_id).await?;
    let prepared = relay_link::relay_config(&gateway, state.env.as_ref()).and_then(|config| {
        Ok((
            config,
            relay_link::verification(&gateway, &state.fallback_keys)?,
        ))
    });
    let (config, verification) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let error = e.to_string();
            return failed(state, action, claim, error, None, Reached::No).await;
        }
    };
    let corrupt = |e: String| StoreError::Corrupt(format!("action {} payload: {e}", action.id));
    let payload: Value =
        serde_json::from_str(&action.payload).map_err(|e| corrupt(e.to_string()))?;
    // Addressed to this gateway and stamped for this attempt alone, inside the signature: a
    // captured message is refused by any other gateway, and by this one after ACTION_VALIDITY.
    let sealed = Action::from_stored(payload)
        .map_err(|e| corrupt(e.reason))?
        .addressed(&gateway.name, ACTION_VALIDITY);
    let text = state.signing.seal(&sealed.to_value());
    let mut sender = Sender::new(config, &gateway.actions_hc);
    sender.connect_timeout = policy.connect_timeout;
    sender.reply_timeout = policy.reply_timeout;
    let sent = sender.request(&text).await;
    // Evidence for the liveness monitor: a verified reply (of any outcome) is contact; the relay
    // finding no listener, or a timeout, is the opposite.
    match &sent {
        Ok(reply_text) if ActionReply::open(reply_text, &verification).is_ok() => {
            gateways::record_contact(&state.db, gateway.id).await?
        }
        Err(e) => gateways::record_unreachable(&state.db, gateway.id, &e.to_string()).await?,
        Ok(_) => {}
    }
    match sent {
        Ok(reply_text) => match ActionReply::open(&reply_text, &verification) {
            // A signed reply to some other action says nothing about this one.
            Ok(reply) if !reply_is_for(&reply, sealed.action_id) => {
                let error = match reply.action_id {
                    Some(other) => format!(
                        "the gateway's reply is for action {other}, not {}",
                        sealed.action_id
                    ),
                    None => "the gateway's reply names no action".to_string(),
                };
                tracing::warn!(action = %action.id, "outbox: {error}");
                failed(
                    state,
                    action,
                    claim,
                    error,
                    Some(&reply_text),
                    Reached::Maybe,
                )
                .await
            }
            // The gateway holds a FHIR delivery it has not made yet: ask again later, when its
            // record will carry the endpoint's answer.
            Ok(ActionReply {
                outcome: Outcome::Queued { message },
                ..
            }) => {
                let next_attempt_at = now_ms() + policy.delay(attempts).as_millis() as i64;
                retry(
                    state,
                    action,
                    claim,
                    format!("the gateway has it, not yet delivered: {message}"),
                    next_attempt_at,
                    Reached::Maybe,
                )
                .await
            }
            Ok(reply) if reply.is_success() => {
                // The health first: once the action reads `confirmed`, its report is on record.
                if let Outcome::Ok { health } = &reply.outcome {
                    let failing: Vec<&str> = health
                        .checks
                        .iter()
                        .filter(|(_, c)| !c.ok)
                        .map(|(name, _)| name.as_str())
                        .collect();
                    let summary = if health.healthy {
                        format!("healthy (version {})", health.version)
                    } else {
                        format!("unhealthy: {}", failing.join(", "))
                    };
                    let report = serde_json::to_string(health).unwrap_or_default();
                    gateways::record_health(&state.db, gateway.id, &summary, &report).await?;
                    state.bus.publish(Change::Gateway {
                        provider_id: gateway.provider_id,
                        gateway_id: gateway.id,
                    });
                }
                if !actions::mark_confirmed(&state.db, &action.id, &reply_text).await? {
                    // Withdrawn meanwhile, or confirmed by the replica that took it over.
                    return Ok(Attempt::Skipped);
                }
                Ok(Attempt::Confirmed)
            }
            Ok(reply) => {
                let error = match reply.outcome {
                    Outcome::Error { message } => message,
                    other => format!("unexpected reply {other:?}"),
                };
                failed(state, action, claim, error, Some(&reply_text), Reached::No).await
            }
            Err(rejected) => {
                let error = format!("reply refused: {rejected}");
                failed(
                    state,
                    action,
                    claim,
                    error,
                    Some(&reply_text),
                    Reached::Maybe,
                )
                .await
            }
        },
        // A liveness probe is tried once: the next one is due within the interval anyway.
        Err(e) if action.destination == actions::PROBE => {
            let error = format!("probe: {e}");
            failed(state, action, claim, error, None, reached(&e)).await
        }
        Err(e) if e.is_retryable() => {
            let error = e.to_string();
            let next_attempt_at = now_ms() + policy.delay(attempts).as_millis() as i64;
            retry(state, action, claim, error, next_attempt_at, reached(&e)).await
        }
        Err(e) => {
            let error = e.to_string();
            failed(state, action, claim, error, None, reached(&e)).await
        }
    }
}

/// Whether a reply answers the action sent: it must name that action's id.
fn reply_is_for(reply: &ActionReply, action_id: uuid::Uuid) -> bool {
    reply.action_id == Some(action_id)
}

/// Whether a failed send may have reached the gateway: the relay found no listener, refused us
/// or could not be reached — no; a timeout or a connection closed before the reply — maybe.
fn reached(e: &RelayError) -> Reached {
    match e {
        RelayError::Timeout(_) | RelayError::Closed(_) => Reached::Maybe,
        _ => Reached::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            backoff: Exponential::new(Duration::from_secs(2), Duration::from_secs(60)),
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1), Duration::from_secs(2));
        assert_eq!(p.delay(2), Duration::from_secs(4));
        assert_eq!(p.delay(5), Duration::from_secs(32));
        assert_eq!(p.delay(6), Duration::from_secs(60));
        assert_eq!(p.delay(1000), Duration::from_secs(60));
    }
}
