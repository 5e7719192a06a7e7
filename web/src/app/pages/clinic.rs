//! `/clinics/:id`: a clinic's appointments, each checked-in one with "Send to modality"; live.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::id_param;
use crate::app::delivery::DeliveryStatus;
use crate::app::error::AppError;
use crate::app::live::use_live_resource;
use crate::app::widgets::{action_error, StatusTag};
use crate::domain::{AppointmentStatus, WalkIn};
use crate::model::ClinicDetail;

#[component]
pub fn Clinic() -> impl IntoView {
    let id = id_param("id");
    let send = ServerAction::<SendToModality>::new();
    let clinic = use_live_resource(
        move || format!("/live/clinics/{}", id()),
        move || (id(), send.version().get()),
        |(id, _)| get_clinic(id),
    );
    view! {
        {action_error(send)}
        {clinic.view(move |c| view! { <ClinicView clinic=c send/> })}
    }
}

#[component]
fn ClinicView(clinic: ClinicDetail, send: ServerAction<SendToModality>) -> impl IntoView {
    let title = format!("{} – Manage breast screening", clinic.clinic.name);
    view! {
        <Title text=title/>
        <span class="nhsuk-caption-l">{clinic.clinic.location.clone()}</span>
        <h1>{clinic.clinic.name.clone()}</h1>
        {clinic.gateway_offline.clone().map(|notice| view! {
            <div class="nhsuk-warning-callout" id="gateway-offline">
                <h2 class="nhsuk-warning-callout__label"><span role="text"><span class="nhsuk-u-visually-hidden">"Important: "</span>"Gateway offline"</span></h2>
                <p>{notice}</p>
            </div>
        })}
        <p class="nhsuk-body">{format!("Clinic date {}", clinic.clinic.date)}</p>
        <table class="nhsuk-table" id="appointments">
            <caption class="nhsuk-table__caption">"Appointments"</caption>
            <thead class="nhsuk-table__head"><tr>
                <th scope="col">"Time"</th><th scope="col">"Participant"</th>
                <th scope="col">"NHS number"</th><th scope="col">"Status"</th><th scope="col">"Action"</th>
            </tr></thead>
            <tbody class="nhsuk-table__body">
                {clinic.appointments.into_iter().map(|a| {
                    let can_send = a.status.can_become(AppointmentStatus::SentToModality);
                    let who = format!(" for {}", a.participant_name);
                    let delivery = a.delivery.clone().filter(|_| a.status == AppointmentStatus::SentToModality || a.status == AppointmentStatus::Cancelled);
                    view! {
                        <tr class="nhsuk-table__row" id=format!("appointment-{}", a.id)>
                            <td class="nhsuk-table__cell">{a.time}</td>
                            <td class="nhsuk-table__cell">
                                <A href=format!("/appointments/{}", a.id)>{a.participant_name}</A>
                                {a.walk_in.map(|w| view! {
                                    " "<strong class="nhsuk-tag nhsuk-tag--grey app-walk-in" data-walk-in=w.as_str()>
                                        {if w == WalkIn::Unconfirmed { "Walk-in: confirm or match" } else { "Walk-in" }}
                                    </strong>
                                })}
                            </td>
                            <td class="nhsuk-table__cell">{a.nhs_number}</td>
                            <td class="nhsuk-table__cell app-status">
                                <StatusTag status=a.status/>
                                {delivery.map(|d| view! { <br/><DeliveryStatus delivery=d appointment_id=a.id/> })}
                            </td>
                            <td class="nhsuk-table__cell">
                                {can_send.then(|| view! {
                                    <ActionForm action=send>
                                        <input type="hidden" name="appointment_id" value=a.id/>
                                        <button type="submit" class="nhsuk-button nhsuk-button--small app-send">
                                            "Send to modality"<span class="nhsuk-u-visually-hidden">{who}</span>
                                        </button>
                                    </ActionForm>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// One clinic with its appointments.
#[server(endpoint = "/get_clinic")]
pub async fn get_clinic(id: i64) -> Result<ClinicDetail, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::clinic_detail(&state, &user, id)
        .await
        .map_err(context::fail)
}

/// Sends a checked-in participant to the modality worklist (through the outbox).
#[server(endpoint = "/send_to_modality")]
pub async fn send_to_modality(appointment_id: i64) -> Result<String, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::send_to_modality(&state, &user, appointment_id)
        .await
        .map_err(context::fail)
}
