//! `/actions`: every message to the provider's gateways, newest first, filterable by status, with
//! "Re-drive" where the status allows; live. The re-drive server function lives here and is used
//! by the action page too.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::app::error::AppError;
use crate::app::live::use_live_resource;
use crate::app::widgets::{action_error, ActionStatusTag, RedriveForm};
use crate::domain::ActionStatus;
use crate::model::ActionRow;

#[component]
pub fn Actions() -> impl IntoView {
    let query = use_query_map();
    let status = move || query.read().get("status").unwrap_or_default();
    let redrive = ServerAction::<RedriveAction>::new();
    let actions = use_live_resource(
        || "/live/provider".to_string(),
        move || (status(), redrive.version().get()),
        |(status, _)| list_actions(status),
    );
    let choices = std::iter::once("").chain(ActionStatus::ALL.map(ActionStatus::as_str));
    view! {
        <Title text="Gateway actions – Manage breast screening"/>
        <h1>"Gateway actions"</h1>
        <form method="get" action="/actions" class="app-filter">
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="status">"Status"</label>
                <select class="nhsuk-select" id="status" name="status">
                    {choices.map(|s| {
                        let selected = move || status() == s;
                        view! { <option value=s selected=selected>{if s.is_empty() { "All" } else { s }}</option> }
                    }).collect_view()}
                </select>
            </div>
            <button type="submit" class="nhsuk-button nhsuk-button--secondary">"Filter"</button>
        </form>
        {action_error(redrive)}
        {actions.view(move |rows| view! { <ActionTable rows redrive/> })}
    }
}

/// What the table's "Detail" cell says about where an action is.
fn detail(r: &ActionRow) -> String {
    match (r.status, &r.next_attempt_at, &r.last_error) {
        (ActionStatus::Pending, Some(next), Some(err)) => {
            format!("Next attempt {next}. Last error: {err}")
        }
        (ActionStatus::Pending, Some(next), None) => format!("Next attempt {next}"),
        (ActionStatus::Confirmed, _, _) => {
            format!("Confirmed {}", r.confirmed_at.clone().unwrap_or_default())
        }
        (_, _, Some(err)) => err.clone(),
        _ => r
            .sent_at
            .clone()
            .map(|s| format!("Sent {s}"))
            .unwrap_or_default(),
    }
}

#[component]
fn ActionTable(rows: Vec<ActionRow>, redrive: ServerAction<RedriveAction>) -> impl IntoView {
    view! {
        <table class="nhsuk-table" id="actions">
            <caption class="nhsuk-table__caption">"Messages to gateways, newest first"</caption>
            <thead class="nhsuk-table__head"><tr>
                <th scope="col">"Created"</th><th scope="col">"Type"</th><th scope="col">"Gateway"</th>
                <th scope="col">"Status"</th><th scope="col">"Attempts"</th><th scope="col">"Detail"</th><th scope="col">"Action"</th>
            </tr></thead>
            <tbody class="nhsuk-table__body">
                {rows.into_iter().map(|r| {
                    let detail = detail(&r);
                    let id = r.id.clone();
                    view! {
                        <tr class="nhsuk-table__row" id=format!("action-{}", r.id) data-status=r.status.as_str()>
                            <td class="nhsuk-table__cell"><A href=format!("/actions/{}", r.id)>{r.created_at}</A></td>
                            <td class="nhsuk-table__cell">{r.action_type}
                                {r.appointment_id.map(|a| view! { " for "<A href=format!("/appointments/{a}")>{format!("appointment {a}")}</A> })}
                            </td>
                            <td class="nhsuk-table__cell">{r.gateway_name}</td>
                            <td class="nhsuk-table__cell"><ActionStatusTag status=r.status/></td>
                            <td class="nhsuk-table__cell">{r.attempts}</td>
                            <td class="nhsuk-table__cell">{detail}</td>
                            <td class="nhsuk-table__cell">
                                <RedriveForm redrive action_id=id allowed=r.may_redrive small=true/>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The user's provider's gateway actions, newest first, optionally in one status.
#[server(endpoint = "/list_actions")]
pub async fn list_actions(status: String) -> Result<Vec<ActionRow>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::action_list(&state, &user, &status)
        .await
        .map_err(context::fail)
}

/// Re-queues a failed (or waiting) action for sending now.
#[server(endpoint = "/redrive_action")]
pub async fn redrive_action(action_id: String) -> Result<(), AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::redrive(&state, &user, &action_id)
        .await
        .map_err(context::fail)
}
