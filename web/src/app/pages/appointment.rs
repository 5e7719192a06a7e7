//! `/appointments/:id`: one participant's appointment — details, "Cancel appointment", a walk-in's
//! "Confirm" / "Match to a booked appointment", the image gallery (right and left, CC and MLO,
//! then any other view), the dose table and the history; live.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::id_param;
use crate::app::delivery::DeliveryStatus;
use crate::app::error::AppError;
use crate::app::live::use_live_resource;
use crate::app::widgets::{action_error, StatusTag, SummaryRow};
use crate::domain::{AppointmentStatus, WalkIn};
use crate::model::{AppointmentDetail, ArchiveBadge, ImageCard, WalkInDetail};

#[component]
pub fn Appointment() -> impl IntoView {
    let id = id_param("id");
    let cancel = ServerAction::<CancelAppointment>::new();
    let walk_in = WalkInActions {
        confirm: ServerAction::<ConfirmWalkIn>::new(),
        matched: ServerAction::<MatchWalkIn>::new(),
    };
    // A matched walk-in is gone: what the clinician now looks at is the booked appointment.
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(booked)) = walk_in.matched.value().get() {
            navigate(&format!("/appointments/{booked}"), Default::default());
        }
    });
    let appointment = use_live_resource(
        move || format!("/live/appointments/{}", id()),
        move || {
            (
                id(),
                cancel.version().get() + walk_in.confirm.version().get(),
            )
        },
        |(id, _)| get_appointment(id),
    );
    view! {
        {action_error(cancel)}
        {action_error(walk_in.confirm)}
        {action_error(walk_in.matched)}
        {appointment.view(move |a| view! { <AppointmentView appointment=a cancel walk_in/> })}
    }
}

/// The two things a clinician does with a walk-in.
#[derive(Clone, Copy)]
struct WalkInActions {
    confirm: ServerAction<ConfirmWalkIn>,
    matched: ServerAction<MatchWalkIn>,
}

const SIDES: [(&str, &str); 2] = [("R", "Right breast"), ("L", "Left breast")];
const VIEWS: [&str; 2] = ["CC", "MLO"];

#[component]
fn AppointmentView(
    appointment: AppointmentDetail,
    cancel: ServerAction<CancelAppointment>,
    walk_in: WalkInActions,
) -> impl IntoView {
    let a = appointment;
    let title = format!("{} – Manage breast screening", a.participant_name);
    let images = a.images.clone();
    let others: Vec<ImageCard> = images
        .iter()
        .filter(|i| {
            !(SIDES.iter().any(|(s, _)| *s == i.laterality) && VIEWS.contains(&i.view.as_str()))
        })
        .cloned()
        .collect();
    // While the modality has not produced anything yet, the status sits in an inset box with
    // where the worklist item is; once images arrive (or it completes) the tag moves up beside
    // the participant's name.
    let waiting = a.images.is_empty()
        && matches!(
            a.status,
            AppointmentStatus::SentToModality | AppointmentStatus::InProgress
        );
    let delivery = a.delivery.clone();
    let status = a.status;
    view! {
        <Title text=title/>
        <span class="nhsuk-caption-l"><A href=format!("/clinics/{}", a.clinic_id)>{a.clinic_name.clone()}</A></span>
        <h1>
            {a.participant_name.clone()}
            {(!waiting).then(|| view! { " "<span id="heading-status"><StatusTag status=status/></span> })}
        </h1>
        {(waiting || delivery.is_some()).then(|| view! {
            <div class="nhsuk-inset-text" id="delivery-inset">
                <span class="nhsuk-u-visually-hidden">"Information: "</span>
                {waiting.then(|| view! {
                    <p id="inset-status"><StatusTag status=status/>" – Awaiting images"</p>
                })}
                {delivery.map(|d| view! { <div><DeliveryStatus delivery=d appointment_id=a.id/></div> })}
            </div>
        })}
        {a.walk_in.clone().map(|w| view! { <WalkInPanel walk_in=w appointment_id=a.id actions=walk_in/> })}
        <dl class="nhsuk-summary-list">
            <SummaryRow key="NHS number">{a.nhs_number.clone()}</SummaryRow>
            <SummaryRow key="Date of birth">{a.birth_date.clone()}</SummaryRow>
            <SummaryRow key="Appointment">{a.time.clone()}</SummaryRow>
            <SummaryRow key="Status" id="appointment-status"><StatusTag status=a.status/></SummaryRow>
            <SummaryRow key="Accession number">{a.accession_number.clone().unwrap_or_else(|| "Not sent yet".into())}</SummaryRow>
        </dl>
        {(!a.status.is_final()).then(|| view! {
            <ActionForm action=cancel>
                <input type="hidden" name="appointment_id" value=a.id/>
                <button type="submit" class="nhsuk-button nhsuk-button--warning" id="cancel-appointment">"Cancel appointment"</button>
            </ActionForm>
        })}
        <h2>"Images"</h2>
        {a.images_taken.map(|taken| {
            let received = a.images.len() as i64;
            let missing = (taken - received).max(0);
            view! {
                <p class="nhsuk-body" id="image-count" data-taken=taken data-received=received>
                    {format!("{taken} taken, {received} received")}
                    {(missing > 0).then(|| view! {
                        " "<strong class="nhsuk-tag nhsuk-tag--orange">{format!("{missing} not received yet")}</strong>
                    })}
                </p>
            }
        })}
        <div class="app-gallery" id="gallery">
            {SIDES.iter().map(|(side, side_name)| {
                let side_images = images.clone();
                view! {
                    <section class="app-gallery__side" aria-label=*side_name>
                        <h3>{*side_name}</h3>
                        {VIEWS.iter().map(|view_name| {
                            let cards: Vec<ImageCard> = side_images.iter().filter(|i| i.laterality == *side && i.view == *view_name).cloned().collect();
                            view! {
                                <div class="app-gallery__view">
                                    <h4>{format!("{side}{view_name}")}</h4>
                                    {if cards.is_empty() {
                                        view! { <p class="nhsuk-body-s app-awaiting">"Awaiting image"</p> }.into_any()
                                    } else {
                                        cards.into_iter().map(|c| view! { <Thumbnail card=c/> }).collect_view().into_any()
                                    }}
                                </div>
                            }
                        }).collect_view()}
                    </section>
                }
            }).collect_view()}
            {(!others.is_empty()).then(|| view! {
                <section class="app-gallery__side" aria-label="Other views">
                    <h3>"Other views"</h3>
                    {others.into_iter().map(|c| view! { <Thumbnail card=c/> }).collect_view()}
                </section>
            })}
        </div>
        <h2>"Dose"</h2>
        <table class="nhsuk-table" id="dose">
            <caption class="nhsuk-table__caption">"Exposure and dose per image"</caption>
            <thead class="nhsuk-table__head"><tr>
                <th scope="col">"View"</th><th scope="col">"kVp"</th><th scope="col">"Exposure"</th>
                <th scope="col">"Organ dose"</th><th scope="col">"Entrance dose"</th>
                <th scope="col">"Thickness"</th><th scope="col">"Compression"</th><th scope="col">"Anode/filter"</th>
            </tr></thead>
            <tbody class="nhsuk-table__body">
                {images.into_iter().map(|i| {
                    let anode_filter = i.dose.anode_over_filter();
                    view! {
                        <tr class="nhsuk-table__row">
                            <td class="nhsuk-table__cell">{format!("{}{}", i.laterality, i.view)}</td>
                            <td class="nhsuk-table__cell">{i.dose.kvp}</td>
                            <td class="nhsuk-table__cell">{i.dose.exposure_uas}</td>
                            <td class="nhsuk-table__cell">{i.dose.organ_dose_dgy}</td>
                            <td class="nhsuk-table__cell">{i.dose.entrance_dose_mgy}</td>
                            <td class="nhsuk-table__cell">{i.dose.body_part_thickness_mm}</td>
                            <td class="nhsuk-table__cell">{i.dose.compression_force_n}</td>
                            <td class="nhsuk-table__cell">{anode_filter}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <h2>"History"</h2>
        <ol class="nhsuk-list app-timeline" id="timeline">
            {a.timeline.into_iter().map(|t| view! { <li><span class="app-time">{t.at}</span>" "{t.text}</li> }).collect_view()}
        </ol>
    }
}

/// A walk-in added at the gateway: a warning callout with "Confirm walk-in" and "Match to this
/// appointment" while unconfirmed; one line once confirmed.
#[component]
fn WalkInPanel(
    walk_in: WalkInDetail,
    appointment_id: i64,
    actions: WalkInActions,
) -> impl IntoView {
    if walk_in.state == WalkIn::Confirmed {
        return view! {
            <p class="nhsuk-body" id="walk-in" data-walk-in="confirmed">
                <strong class="nhsuk-tag nhsuk-tag--grey">"Walk-in"</strong>" Added at the gateway, confirmed as a new appointment."
            </p>
        }
        .into_any();
    }
    let candidates = walk_in.candidates;
    view! {
        <div class="nhsuk-warning-callout" id="walk-in" data-walk-in="unconfirmed">
            <h2 class="nhsuk-warning-callout__label">
                <span role="text"><span class="nhsuk-u-visually-hidden">"Important: "</span>"Walk-in added at the gateway"</span>
            </h2>
            <p>"This participant was added to the modality worklist at the gateway, not booked here. Confirm it as a new appointment, or match it to the booked appointment it is."</p>
            <ActionForm action=actions.confirm>
                <input type="hidden" name="appointment_id" value=appointment_id/>
                <button type="submit" class="nhsuk-button" id="confirm-walk-in">"Confirm walk-in"</button>
            </ActionForm>
            {if candidates.is_empty() {
                view! { <p class="nhsuk-body-s" id="no-match-candidates">"No booked appointment on this day can take its place: each has been sent to the modality already."</p> }.into_any()
            } else {
                view! {
                    <ActionForm action=actions.matched>
                        <input type="hidden" name="walk_in_id" value=appointment_id/>
                        <div class="nhsuk-form-group">
                            <label class="nhsuk-label" for="match-target">"Booked appointment"</label>
                            <select class="nhsuk-select" id="match-target" name="booked_id">
                                {candidates.into_iter().map(|c| view! {
                                    <option value=c.id>{format!("{} {} ({}) – {}", c.time, c.participant_name, c.nhs_number, c.clinic_name)}</option>
                                }).collect_view()}
                            </select>
                        </div>
                        <button type="submit" class="nhsuk-button nhsuk-button--secondary" id="match-walk-in">"Match to this appointment"</button>
                    </ActionForm>
                }.into_any()
            }}
        </div>
    }
    .into_any()
}

#[component]
fn Thumbnail(card: ImageCard) -> impl IntoView {
    let alt = format!("{}{} image", card.laterality, card.view);
    let preview = match card.thumbnail_url {
        Some(url) => view! {
            <img class="app-thumb" src=url alt=alt data-image-id=card.id/>
        }
        .into_any(),
        None => view! { <p class="nhsuk-body-s app-thumb-missing" data-image-id=card.id>"No preview"</p> }.into_any(),
    };
    view! {
        {preview}
        {card.archive.into_iter().map(|badge| view! { <ArchiveTag badge=badge image_id=card.id/> }).collect_view()}
    }
}

/// What one hospital PACS has of the image, in the clinician's words: confirmed stored
/// (Storage Commitment), sent (stored, not confirmed), or not there with the PACS's reason.
#[component]
fn ArchiveTag(badge: ArchiveBadge, image_id: i64) -> impl IntoView {
    let (class, words) = match badge.state.as_str() {
        "committed" => ("nhsuk-tag nhsuk-tag--green", "In PACS"),
        "forwarded" => ("nhsuk-tag nhsuk-tag--blue", "Sent to PACS"),
        _ => ("nhsuk-tag nhsuk-tag--red", "Not in PACS"),
    };
    view! {
        <p class="nhsuk-body-s app-archive" data-image-id=image_id data-archive-state=badge.state.clone()>
            <strong class=class title=badge.destination.clone()>{words}</strong>
            " "<span class="app-archive__destination">{badge.destination.clone()}</span>
            {badge.reason.map(|reason| view! { <span class="app-archive__reason">": "{reason}</span> })}
        </p>
    }
}

/// One appointment with its timeline and images.
#[server(endpoint = "/get_appointment")]
pub async fn get_appointment(id: i64) -> Result<AppointmentDetail, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::store::appointments::detail(&state.db, user.provider_id, id)
        .await
        .map_err(context::fail)
}

/// Cancels an unfinished appointment (and its worklist item, if it was sent).
#[server(endpoint = "/cancel_appointment")]
pub async fn cancel_appointment(appointment_id: i64) -> Result<Option<String>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::cancel_appointment(&state, &user, appointment_id)
        .await
        .map_err(context::fail)
}

/// Keeps a walk-in added at the gateway as a new appointment.
#[server(endpoint = "/confirm_walk_in")]
pub async fn confirm_walk_in(appointment_id: i64) -> Result<(), AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::confirm_walk_in(&state, &user, appointment_id)
        .await
        .map_err(context::fail)
}

/// Merges a walk-in into the booked appointment it is; returns the booked appointment's id.
#[server(endpoint = "/match_walk_in")]
pub async fn match_walk_in(walk_in_id: i64, booked_id: i64) -> Result<i64, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::match_walk_in(&state, &user, walk_in_id, booked_id)
        .await
        .map_err(context::fail)?;
    Ok(booked_id)
}
