//! `/admin/gateways/new` and `/admin/gateways/:id`, administrators only: a gateway's relay
//! settings, public keys and message type. Saving takes effect at once: the gateway's events
//! listener restarts with the new settings and the outbox uses them from its next send.

// `save_gateway` takes one argument per form field (ActionForm posts them flat), and the lint
// must also reach the client stub the `#[server]` macro generates beside it.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::id_param;
use crate::app::error::AppError;
use crate::app::widgets::{action_error, Failure, Loading};
use crate::model::GatewayForm;

#[component]
pub fn GatewaySettings() -> impl IntoView {
    let id = id_param("id");
    let form = Resource::new(id, get_gateway_settings);
    view! { <SettingsPage form/> }
}

#[component]
pub fn NewGateway() -> impl IntoView {
    let form = Resource::new(|| 0, |_| get_gateway_settings(0));
    view! { <SettingsPage form/> }
}

#[component]
fn SettingsPage(form: Resource<Result<GatewayForm, AppError>>) -> impl IntoView {
    let save = ServerAction::<SaveGateway>::new();
    view! {
        <span class="nhsuk-caption-l"><A href="/gateways">"Gateways"</A></span>
        {action_error(save)}
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match form.await {
                    Ok(f) => view! { <SettingsForm form=f save/> }.into_any(),
                    Err(error) => view! { <Failure error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SettingsForm(form: GatewayForm, save: ServerAction<SaveGateway>) -> impl IntoView {
    let title = match form.id {
        Some(_) => format!("Settings of {}", form.name),
        None => "Add a gateway".to_string(),
    };
    let field = |id: &'static str, label: &'static str, hint: &'static str, value: String| {
        let hint_id = format!("{id}-hint");
        view! {
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for=id>{label}</label>
                <div class="nhsuk-hint" id=hint_id.clone()>{hint}</div>
                <input class="nhsuk-input" id=id name=id type="text" value=value aria-describedby=hint_id autocomplete="off" spellcheck="false"/>
            </div>
        }
    };
    view! {
        <Title text=format!("{title} – Manage breast screening")/>
        <h1>{title}</h1>
        <ActionForm action=save attr:id="gateway-settings">
            <input type="hidden" name="gateway_id" value=form.id.unwrap_or(0)/>
            {field("name", "Gateway name", "The gateway's GATEWAY_NAME: actions are addressed to it.", form.name)}
            <h2>"Relay"</h2>
            {field("relay_namespace", "Relay namespace", "For example screening.servicebus.windows.net.", form.relay_namespace)}
            {field("relay_endpoint", "Relay endpoint (optional)", "Dial this ws:// or wss:// address instead of the namespace (the relay emulator).", form.relay_endpoint)}
            {field("actions_hc", "Actions hybrid connection", "The hybrid connection the gateway listens on for actions.", form.actions_hc)}
            {field("events_hc", "Events hybrid connection", "The hybrid connection this app listens on for the gateway's events.", form.events_hc)}
            {field("key_name", "Relay key name", "The shared access policy's name.", form.key_name)}
            {field("key_env_var", "Relay key variable", "The environment variable of this app that holds the policy's key. The key itself is never stored here.", form.key_env_var)}
            <h2>"Message signing"</h2>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="public_keys">"Gateway public keys"</label>
                <div class="nhsuk-hint" id="public_keys-hint">"One per line, from gateway keygen. To rotate: add the new key, switch the gateway to it, then remove the old one. None: the keys in PEER_PUBLIC_KEYS are trusted."</div>
                <textarea class="nhsuk-textarea" id="public_keys" name="public_keys" rows="3" aria-describedby="public_keys-hint" spellcheck="false">{form.public_keys}</textarea>
            </div>
            <h2>"Messages"</h2>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="message_type">"What Send to modality produces"</label>
                <select class="nhsuk-select" id="message_type" name="message_type">
                    {form.message_types.into_iter().map(|(value, label)| {
                        let selected = value == form.message_type;
                        view! { <option value=value selected=selected>{label}</option> }
                    }).collect_view()}
                </select>
            </div>
            {field("destination", "Destination", "For a worklist item: modality_worklist. For FHIR: the integration engine's URL, which must also be in the gateway's FHIR_DESTINATIONS (for example https://engine.trust.local/fhir).", form.destination)}
            <button type="submit" class="nhsuk-button" id="save-gateway">"Save gateway"</button>
        </ActionForm>
    }
}

/// A gateway's settings form; 0 for a new gateway (administrators only).
#[server(endpoint = "/get_gateway_settings")]
pub async fn get_gateway_settings(gateway_id: i64) -> Result<GatewayForm, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::admin::gateway_form(&state, &user, (gateway_id != 0).then_some(gateway_id))
        .await
        .map_err(context::fail)
}

/// Adds (`gateway_id` 0) or changes a gateway, then goes back to the gateways page.
#[server(endpoint = "/save_gateway")]
pub async fn save_gateway(
    gateway_id: i64,
    name: String,
    relay_namespace: String,
    relay_endpoint: String,
    actions_hc: String,
    events_hc: String,
    key_name: String,
    key_env_var: String,
    public_keys: String,
    message_type: String,
    destination: String,
) -> Result<i64, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    let form = GatewayForm {
        id: (gateway_id != 0).then_some(gateway_id),
        name,
        relay_namespace,
        relay_endpoint,
        actions_hc,
        events_hc,
        key_name,
        key_env_var,
        public_keys,
        message_type,
        destination,
        message_types: vec![],
    };
    let id = crate::server::admin::save_gateway(&state, &user, &form)
        .await
        .map_err(context::fail)?;
    leptos_axum::redirect("/gateways");
    Ok(id)
}
