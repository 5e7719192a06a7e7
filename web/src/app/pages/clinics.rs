//! `/clinics`: the provider's clinics.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::app::error::AppError;
use crate::app::widgets::{Failure, Loading};
use crate::model::ClinicSummary;

#[component]
pub fn Clinics() -> impl IntoView {
    let clinics = Resource::new(|| (), |_| list_clinics());
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
    }
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
