//! An appointment's worklist item on its way to the modality — queued, sending, retrying (when,
//! and why), on the worklist, refused, withdrawn — and, once cancelled, its removal from the
//! worklist, shown where clinicians look (the clinic list and the appointment page), with
//! "Re-send" for a refused or waiting one. The pages re-read it
//! on every change the outbox announces, so it is live.

use leptos::prelude::*;

use crate::app::error::AppError;
use crate::app::widgets::action_error;
use crate::domain::DeliveryState;
use crate::model::Delivery;

/// The delivery tag, its detail line and the re-send button.
#[component]
pub fn DeliveryStatus(delivery: Delivery, appointment_id: i64) -> impl IntoView {
    let resend = ServerAction::<ResendWorklistItem>::new();
    let state = delivery.state;
    let detail = match (state, &delivery.next_attempt_at, &delivery.reason) {
        (DeliveryState::Retrying, Some(at), reason) => Some(format!(
            "Next attempt at {at}{}",
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        (
            DeliveryState::Refused | DeliveryState::Withdrawn | DeliveryState::Retrying,
            _,
            reason,
        ) => reason.clone(),
        _ => None,
    };
    view! {
        <span class="app-delivery" data-delivery=state.as_str() data-message=delivery.message.as_str()>
            <strong class=state.tag_class()>{state.label_for(delivery.message)}</strong>
            {detail.map(|d| view! { <span class="nhsuk-body-s app-delivery__detail">" "{d}</span> })}
        </span>
        {action_error(resend)}
        {state.can_resend().then(|| view! {
            <ActionForm action=resend>
                <input type="hidden" name="appointment_id" value=appointment_id/>
                <button type="submit" class="nhsuk-button nhsuk-button--small nhsuk-button--secondary app-resend">
                    "Re-send"<span class="nhsuk-u-visually-hidden">{match delivery.message {
                        crate::domain::WorklistMessage::Create => " worklist item",
                        crate::domain::WorklistMessage::Cancel => " worklist removal",
                        crate::domain::WorklistMessage::FhirOrder => " order",
                        crate::domain::WorklistMessage::FhirRevoke => " order cancellation",
                    }}</span>
                </button>
            </ActionForm>
        })}
    }
}

/// Re-sends an appointment's refused (or waiting) worklist item: the provider's own, still
/// wanted by the appointment (not for a cancelled one).
#[server(endpoint = "/resend_worklist_item")]
pub async fn resend_worklist_item(appointment_id: i64) -> Result<String, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::resend_worklist_item(&state, &user, appointment_id)
        .await
        .map_err(context::fail)
}
