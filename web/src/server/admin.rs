//! What only a provider's administrators may do: manage accounts and gateways. Every function
//! checks the role first (403 otherwise), stays within the administrator's provider (another
//! provider's record is a 404), and logs who changed what for support and audit.

use super::db::{date_time, StoreError};
use super::listeners::Listeners;
use super::state::AppState;
use super::store::gateways::{self, GatewaySettings, MESSAGE_TYPES};
use super::store::identity::{self, User};
use crate::domain::Role;
use crate::model::{AccountRow, GatewayForm};

/// Refuses anyone but an administrator, naming what they tried.
pub fn require_administrator(user: &User, what: &str) -> Result<(), StoreError> {
    if user.administers() {
        Ok(())
    } else {
        tracing::warn!(user = %user.email, "refused: only an administrator may {what}");
        Err(StoreError::Forbidden(format!(
            "Only an administrator may {what}."
        )))
    }
}

/// The provider's accounts.
pub async fn accounts(state: &AppState, user: &User) -> Result<Vec<AccountRow>, StoreError> {
    require_administrator(user, "manage users")?;
    Ok(identity::accounts(&state.db, user.provider_id)
        .await?
        .into_iter()
        .map(|a| AccountRow {
            is_you: a.id == user.id,
            id: a.id,
            name: a.name,
            email: a.email,
            role: a.role,
            disabled_at: a.disabled_at.map(date_time),
        })
        .collect())
}

/// Adds an account to the administrator's provider.
pub async fn add_account(
    state: &AppState,
    user: &User,
    email: &str,
    name: &str,
    role: Role,
    password: &str,
) -> Result<i64, StoreError> {
    require_administrator(user, "manage users")?;
    let id =
        identity::create_user(&state.db, user.provider_id, email, name, password, role).await?;
    tracing::info!(by = %user.email, "account {} added as {}", email.trim(), role.as_str());
    Ok(id)
}

/// Disables (signing it out everywhere) or re-enables one of the provider's accounts.
pub async fn set_disabled(
    state: &AppState,
    user: &User,
    account_id: i64,
    disabled: bool,
) -> Result<(), StoreError> {
    require_administrator(user, "manage users")?;
    identity::set_disabled(&state.db, user, account_id, disabled).await?;
    tracing::info!(
        by = %user.email,
        "account {account_id} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

/// Sets a new password on one of the provider's accounts (signing it out everywhere).
pub async fn reset_password(
    state: &AppState,
    user: &User,
    account_id: i64,
    password: &str,
) -> Result<(), StoreError> {
    require_administrator(user, "manage users")?;
    identity::reset_password(&state.db, user.provider_id, account_id, password).await?;
    tracing::info!(by = %user.email, "password of account {account_id} reset");
    Ok(())
}

/// The form for one of the provider's gateways, or for a new one (`None`).
pub async fn gateway_form(
    state: &AppState,
    user: &User,
    id: Option<i64>,
) -> Result<GatewayForm, StoreError> {
    require_administrator(user, "manage gateways")?;
    let message_types = MESSAGE_TYPES
        .iter()
        .map(|(v, l)| (v.to_string(), l.to_string()))
        .collect();
    let Some(id) = id else {
        return Ok(GatewayForm {
            message_type: MESSAGE_TYPES[0].0.into(),
            destination: "modality_worklist".into(),
            key_name: "RootManageSharedAccessKey".into(),
            key_env_var: "AZURE_RELAY_SHARED_ACCESS_KEY".into(),
            message_types,
            ..GatewayForm::default()
        });
    };
    let g = gateways::get(&state.db, user.provider_id, id).await?;
    Ok(GatewayForm {
        id: Some(g.id),
        name: g.name,
        relay_namespace: g.relay_namespace,
        relay_endpoint: g.relay_endpoint.unwrap_or_default(),
        actions_hc: g.actions_hc,
        events_hc: g.events_hc,
        key_name: g.key_name,
        key_env_var: g.key_env_var,
        public_keys: g
            .public_key
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        message_type: g.message_type,
        destination: g.destination,
        message_types,
    })
}

/// The settings a submitted form describes: fields trimmed, empty optional ones absent, the
/// public keys one per line (or comma-separated) stored as one list.
pub fn settings_from(form: &GatewayForm) -> GatewaySettings {
    let trimmed = |s: &str| s.trim().to_string();
    let optional = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let keys = form
        .public_keys
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    GatewaySettings {
        name: trimmed(&form.name),
        relay_namespace: trimmed(&form.relay_namespace),
        relay_endpoint: optional(&form.relay_endpoint),
        actions_hc: trimmed(&form.actions_hc),
        events_hc: trimmed(&form.events_hc),
        key_name: trimmed(&form.key_name),
        key_env_var: trimmed(&form.key_env_var),
        public_key: optional(&keys),
        message_type: trimmed(&form.message_type),
        destination: trimmed(&form.destination),
    }
}

/// Adds or changes a gateway; its events listener restarts with the new settings at once and
/// the outbox, which reads a gateway's settings at every send, uses them from its next attempt.
pub async fn save_gateway(
    state: &AppState,
    user: &User,
    form: &GatewayForm,
) -> Result<i64, StoreError> {
    require_administrator(user, "manage gateways")?;
    let settings = settings_from(form);
    let id = match form.id {
        Some(id) => {
            gateways::update(&state.db, user.provider_id, id, &settings).await?;
            id
        }
        None => gateways::create(&state.db, user.provider_id, &settings).await?,
    };
    let record = gateways::get(&state.db, user.provider_id, id).await?;
    tracing::info!(
        by = %user.email,
        "gateway {} {}; restarting its events listener",
        record.name,
        if form.id.is_some() { "changed" } else { "added" }
    );
    Listeners::restart(state, record);
    state.outbox_wake.notify_one();
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_trimmed_settings_with_one_key_list() {
        let form = GatewayForm {
            name: " rxn-gateway ".into(),
            relay_endpoint: "  ".into(),
            public_keys: "key-one\r\n\r\n key-two ,key-three\n".into(),
            ..GatewayForm::default()
        };
        let s = settings_from(&form);
        assert_eq!(s.name, "rxn-gateway");
        assert_eq!(s.relay_endpoint, None);
        assert_eq!(s.public_key.as_deref(), Some("key-one,key-two,key-three"));
        let none = settings_from(&GatewayForm::default());
        assert_eq!(none.public_key, None);
    }
}
