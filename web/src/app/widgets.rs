//! The pieces the pages share: the error summary and failure page, status tags, summary-list rows
//! and the re-drive form, each written once in the NHS design system's markup.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use super::error::AppError;
use super::pages::actions::RedriveAction;
use super::pages::not_found::NotFound;
use crate::domain::{ActionStatus, AppointmentStatus};

/// What a page shows until its data arrives.
#[component]
pub fn Loading() -> impl IntoView {
    view! { <p>"Loading…"</p> }
}

/// The NHS error summary, with the reason.
#[component]
pub fn ErrorSummary(message: String) -> impl IntoView {
    view! {
        <div class="nhsuk-error-summary" role="alert" tabindex="-1">
            <h2 class="nhsuk-error-summary__title">"There is a problem"</h2>
            <div class="nhsuk-error-summary__body"><p class="app-error">{message}</p></div>
        </div>
    }
}

/// A failed read, as a page: the 404 page for a record that is absent or not the user's, a
/// refusal for a page the user's role may not see (403), otherwise an error summary.
#[component]
pub fn Failure(error: AppError) -> impl IntoView {
    match error {
        AppError::NotFound => view! { <NotFound/> }.into_any(),
        AppError::Forbidden(why) => view! {
            <h1>"You cannot see this page"</h1>
            <p class="nhsuk-body" id="forbidden">{why}</p>
        }
        .into_any(),
        other => view! { <ErrorSummary message=other.to_string()/> }.into_any(),
    }
}

/// The error summary for the last submission of `action`, if it failed.
pub fn action_error<S>(action: ServerAction<S>) -> impl IntoView
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
{
    move || {
        action.value().with(|result| match result {
            Some(Err(e)) => Some(view! { <ErrorSummary message=e.to_string()/> }),
            _ => None,
        })
    }
}

/// An appointment's status as a coloured tag (`data-status` for the browser tests).
#[component]
pub fn StatusTag(status: AppointmentStatus) -> impl IntoView {
    view! { <strong class=status.tag_class() data-status=status.as_str()>{status.label()}</strong> }
}

/// A gateway action's status as a coloured tag.
#[component]
pub fn ActionStatusTag(status: ActionStatus) -> impl IntoView {
    view! { <strong class=status.tag_class()>{status.as_str()}</strong> }
}

/// One row of an NHS summary list: `key`, then the value (the children).
#[component]
pub fn SummaryRow(
    key: &'static str,
    /// An id for the value cell, for pages and tests that watch it.
    #[prop(optional)]
    id: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">{key}</dt><dd class="nhsuk-summary-list__value" id=id>{children()}</dd></div>
    }
}

/// The "Re-drive" button of one action, shown only when the viewer may re-drive it (an
/// administrator, and a status that allows it).
#[component]
pub fn RedriveForm(
    redrive: ServerAction<RedriveAction>,
    action_id: String,
    allowed: bool,
    /// The small button of a table row rather than the page's own.
    #[prop(optional)]
    small: bool,
) -> impl IntoView {
    let class = if small {
        "nhsuk-button nhsuk-button--small nhsuk-button--secondary"
    } else {
        "nhsuk-button nhsuk-button--secondary"
    };
    allowed.then(|| {
        view! {
            <ActionForm action=redrive>
                <input type="hidden" name="action_id" value=action_id/>
                <button type="submit" class=class>"Re-drive"</button>
            </ActionForm>
        }
    })
}
