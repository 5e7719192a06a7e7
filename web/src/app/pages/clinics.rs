//! `/clinics`: the provider's clinics, the images the provider's gateways received that match no
//! appointment ("Unmatched images", with the patient details to identify them), and the images
//! they refused that name no appointment ("Images refused by the gateway", with the reason).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::app::error::AppError;
use crate::app::widgets::{Failure, Loading};
use crate::model::{ClinicSummary, RefusedImage, UnmatchedStudy};

#[component]
pub fn Clinics() -> impl IntoView {
    let clinics = Resource::new(|| (), |_| list_clinics());
    let unmatched = Resource::new(|| (), |_| list_unmatched_images());
    let refused = Resource::new(|| (), |_| list_refused_images());
    view! {
        <Title text="Clinics – Manage breast screening"/>
        <h1>"Clinics"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match clinics.await {
                    Ok(list) => view! {
                        <table class="nhsuk-table">
                            <caption class="nhsuk-table__caption">"Your clinics"</caption>
                            <thead class="nhsuk-table__head"><tr>
                                <th scope="col">"Date"</th><th scope="col">"Clinic"</th>
                                <th scope="col">"Location"</th><th scope="col">"Appointments"</th>
                            </tr></thead>
                            <tbody class="nhsuk-table__body">
                                {list.into_iter().map(|c| view! {
                                    <tr class="nhsuk-table__row">
                                        <td class="nhsuk-table__cell">{c.date}</td>
                                        <td class="nhsuk-table__cell"><A href=format!("/clinics/{}", c.id)>{c.name}</A></td>
                                        <td class="nhsuk-table__cell">{c.location}</td>
                                        <td class="nhsuk-table__cell">{c.appointments}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(error) => view! { <Failure error/> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match unmatched.await {
                    Ok(list) if list.is_empty() => ().into_any(),
                    Ok(list) => view! { <UnmatchedImages list/> }.into_any(),
                    Err(error) => view! { <Failure error/> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match refused.await {
                    Ok(list) if list.is_empty() => ().into_any(),
                    Ok(list) => view! { <RefusedImages list/> }.into_any(),
                    Err(error) => view! { <Failure error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn RefusedImages(list: Vec<RefusedImage>) -> impl IntoView {
    let or_dash = |v: Option<String>| v.filter(|s| !s.is_empty()).unwrap_or_else(|| "–".into());
    view! {
        <h2>"Images refused by the gateway"</h2>
        <p class="nhsuk-body">"Images a modality sent that your gateways could not take, and that name no appointment. The modality was told why; they are not stored."</p>
        <table class="nhsuk-table" id="refused-images">
            <caption class="nhsuk-table__caption nhsuk-u-visually-hidden">"Images refused by the gateway"</caption>
            <thead class="nhsuk-table__head"><tr>
                <th scope="col">"When"</th><th scope="col">"Modality"</th><th scope="col">"Reason"</th>
                <th scope="col">"Accession number"</th><th scope="col">"SOP Instance UID"</th><th scope="col">"Gateway"</th>
            </tr></thead>
            <tbody class="nhsuk-table__body">
                {list.into_iter().map(|r| view! {
                    <tr class="nhsuk-table__row" data-refused=r.id>
                        <td class="nhsuk-table__cell">{r.refused_at}</td>
                        <td class="nhsuk-table__cell">{r.calling_ae_title}</td>
                        <td class="nhsuk-table__cell">{r.reason}</td>
                        <td class="nhsuk-table__cell">{or_dash(r.accession_number)}</td>
                        <td class="nhsuk-table__cell app-uid">{or_dash(r.sop_instance_uid)}</td>
                        <td class="nhsuk-table__cell">{r.gateway_name}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn UnmatchedImages(list: Vec<UnmatchedStudy>) -> impl IntoView {
    let or_dash = |v: Option<String>| v.filter(|s| !s.is_empty()).unwrap_or_else(|| "–".into());
    view! {
        <h2>"Unmatched images"</h2>
        <p class="nhsuk-body">"Images your gateways received whose accession number matches no appointment."</p>
        <table class="nhsuk-table" id="unmatched-images">
            <caption class="nhsuk-table__caption nhsuk-u-visually-hidden">"Unmatched images"</caption>
            <thead class="nhsuk-table__head"><tr>
                <th scope="col">"Patient"</th><th scope="col">"Patient ID"</th>
                <th scope="col">"Date of birth"</th><th scope="col">"Accession number"</th>
                <th scope="col">"Study date"</th><th scope="col">"Images"</th><th scope="col">"Gateway"</th>
            </tr></thead>
            <tbody class="nhsuk-table__body">
                {list.into_iter().map(|u| view! {
                    <tr class="nhsuk-table__row" data-study=u.study_id>
                        <td class="nhsuk-table__cell">{or_dash(u.patient_name)}</td>
                        <td class="nhsuk-table__cell">{or_dash(u.patient_id)}</td>
                        <td class="nhsuk-table__cell">{or_dash(u.patient_birth_date)}</td>
                        <td class="nhsuk-table__cell">{or_dash(u.accession_number)}</td>
                        <td class="nhsuk-table__cell">{or_dash(u.study_date)}</td>
                        <td class="nhsuk-table__cell">{u.images}</td>
                        <td class="nhsuk-table__cell">{u.gateway_name}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The provider's studies no appointment claims.
#[server(endpoint = "/list_unmatched_images")]
pub async fn list_unmatched_images() -> Result<Vec<UnmatchedStudy>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::store::images::unmatched(&state.db, user.provider_id)
        .await
        .map_err(context::fail)
}

/// The user's provider's clinics.
#[server(endpoint = "/list_clinics")]
pub async fn list_clinics() -> Result<Vec<ClinicSummary>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::store::clinics::list(&state.db, user.provider_id)
        .await
        .map_err(context::fail)
}

/// The C-STOREs the provider's gateways refused that name no appointment.
#[server(endpoint = "/list_refused_images")]
pub async fn list_refused_images() -> Result<Vec<RefusedImage>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::store::images::refused(&state.db, user.provider_id)
        .await
        .map_err(context::fail)
}
