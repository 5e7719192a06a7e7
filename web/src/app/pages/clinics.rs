//! `/clinics`: the provider's clinics, and the images the provider's gateways received that match
//! no appointment ("Unmatched images", with the patient details to identify them).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::app::error::AppError;
use crate::app::widgets::{Failure, Loading};
use crate::model::{ClinicSummary, UnmatchedStudy};

#[component]
pub fn Clinics() -> impl IntoView {
    let clinics = Resource::new(|| (), |_| list_clinics());
    let unmatched = Resource::new(|| (), |_| list_unmatched_images());
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
