//! `/actions/:id`: one message to a gateway with its timings, payload and the gateway's reply, for
//! support staff; live.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::actions::RedriveAction;
use crate::app::error::AppError;
use crate::app::live::use_live_resource;
use crate::app::widgets::{action_error, RedriveForm, SummaryRow};
use crate::model::ActionDetail;

#[component]
pub fn Action() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let redrive = ServerAction::<RedriveAction>::new();
    let action = use_live_resource(
        || "/live/provider".to_string(),
        move || (id(), redrive.version().get()),
        |(id, _)| get_action(id),
    );
    view! {
        {action_error(redrive)}
        {action.view(move |a| view! { <ActionView action=a redrive/> })}
    }
}

#[component]
fn ActionView(action: ActionDetail, redrive: ServerAction<RedriveAction>) -> impl IntoView {
    let r = action.row;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    let id = r.id.clone();
    view! {
        <Title text="Gateway action – Manage breast screening"/>
        <span class="nhsuk-caption-l"><A href="/actions">"Gateway actions"</A></span>
        <h1>{r.action_type.clone()}</h1>
        <dl class="nhsuk-summary-list" id="action" data-status=r.status.as_str()>
            <SummaryRow key="Action id">{id}</SummaryRow>
            <SummaryRow key="Status">{r.status.as_str()}</SummaryRow>
            <SummaryRow key="Gateway">{format!("{} ({})", r.gateway_name, r.destination)}</SummaryRow>
            <SummaryRow key="Attempts">{r.attempts.to_string()}</SummaryRow>
            <SummaryRow key="Created">{r.created_at.clone()}</SummaryRow>
            <SummaryRow key="Last sent">{or_dash(&r.sent_at)}</SummaryRow>
            <SummaryRow key="Confirmed">{or_dash(&r.confirmed_at)}</SummaryRow>
            <SummaryRow key="Failed">{or_dash(&r.failed_at)}</SummaryRow>
            <SummaryRow key="Next attempt">{or_dash(&r.next_attempt_at)}</SummaryRow>
            <SummaryRow key="Last error">{or_dash(&r.last_error)}</SummaryRow>
        </dl>
        {r.appointment_id.map(|a| view! { <p><A href=format!("/appointments/{a}")>{format!("Appointment {a}")}</A></p> })}
        <RedriveForm redrive action_id=r.id allowed=r.may_redrive/>
        {action.payload.map(|payload| view! {
            <h2>"Payload"</h2>
            <pre class="app-json" tabindex="0" id="payload">{payload}</pre>
        })}
        <h2>"Gateway reply"</h2>
        {match action.reply {
            Some(reply) => view! { <pre class="app-json" tabindex="0">{reply}</pre> }.into_any(),
            None => view! { <p>"No reply yet."</p> }.into_any(),
        }}
    }
}

/// One gateway action with its reply, and its payload for an administrator.
#[server(endpoint = "/get_action")]
pub async fn get_action(id: String) -> Result<ActionDetail, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::action_detail(&state, &user, &id)
        .await
        .map_err(context::fail)
}
