//! The pages. Rendered on the server (SSR, async so a missing record gives a real 404) and then
//! hydrated in the browser, where each page subscribes to its SSE stream and re-reads its data when
//! the server announces a change.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Redirect, Route, Router, Routes, A};
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::{path, SsrMode};

use crate::api::*;
use crate::domain::AppointmentStatus;
use crate::model::{
    ActionDetail, ActionRow, AppointmentDetail, ClinicDetail, GatewayRow, ImageCard,
};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="js-enabled">
                <App/>
            </body>
        </html>
    }
}

/// The app: NHS header, routes, footer.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        // Browser tests wait for this before clicking: until hydration, buttons are plain forms.
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="nhsuk" href="/nhsuk/nhsuk-frontend.min.css"/>
        <Stylesheet id="app" href="/app.css"/>
        <Title text="Manage breast screening"/>
        <Router>
            <Header/>
            <div class="nhsuk-width-container">
                <main class="nhsuk-main-wrapper" id="maincontent">
                    <Routes fallback=|| view! { <NotFound/> }>
                        <Route path=path!("/") view=|| view! { <Redirect path="/clinics"/> }/>
                        <Route path=path!("/sign-in") view=SignIn/>
                        <Route path=path!("/clinics") view=Clinics ssr=SsrMode::Async/>
                        <Route path=path!("/clinics/:id") view=Clinic ssr=SsrMode::Async/>
                        <Route path=path!("/appointments/:id") view=Appointment ssr=SsrMode::Async/>
                        <Route path=path!("/gateways") view=Gateways ssr=SsrMode::Async/>
                        <Route path=path!("/actions") view=Actions ssr=SsrMode::Async/>
                        <Route path=path!("/actions/:id") view=Action ssr=SsrMode::Async/>
                    </Routes>
                </main>
            </div>
            <footer role="contentinfo" class="nhsuk-footer">
                <div class="nhsuk-width-container">
                    <p class="nhsuk-body-s">"Manage breast screening — demonstration system, fictitious data"</p>
                </div>
            </footer>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let user = Resource::new(|| (), |_| current_user());
    view! {
        <header class="nhsuk-header" role="banner">
            <div class="nhsuk-header__container nhsuk-width-container">
                <div class="nhsuk-header__service">
                    <a class="nhsuk-header__service-logo" href="/clinics" aria-label="Manage breast screening homepage">
                        <span class="nhsuk-header__service-name">"Manage breast screening"</span>
                    </a>
                </div>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        user.await.ok().flatten().map(|u| view! {
                            <p class="app-user" id="signed-in-as">{format!("{} – {}", u.name, u.provider_name)}</p>
                        })
                    })}
                </Suspense>
            </div>
            <div class="nhsuk-header__navigation">
                <nav class="nhsuk-width-container" aria-label="Menu">
                    <ul class="app-nav">
                        <li><A href="/clinics">"Clinics"</A></li>
                        <li><A href="/gateways">"Gateways"</A></li>
                        <li><A href="/actions">"Gateway actions"</A></li>
                        <li>
                            <ActionForm action=sign_out>
                                <button type="submit" class="app-link-button">"Sign out"</button>
                            </ActionForm>
                        </li>
                    </ul>
                </nav>
            </div>
        </header>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p>"If you typed the web address, check it is correct."</p>
    }
}

/// A failed server function, as a page: not found, or an error summary.
#[component]
fn Failure(error: ServerFnError) -> impl IntoView {
    if is_not_found(&error) {
        view! { <NotFound/> }.into_any()
    } else {
        view! { <ErrorSummary message=error.to_string()/> }.into_any()
    }
}

#[component]
fn ErrorSummary(message: String) -> impl IntoView {
    let message = message
        .trim_start_matches("error running server function: ")
        .to_string();
    view! {
        <div class="nhsuk-error-summary" role="alert" tabindex="-1">
            <h2 class="nhsuk-error-summary__title">"There is a problem"</h2>
            <div class="nhsuk-error-summary__body"><p class="app-error">{message}</p></div>
        </div>
    }
}

/// Subscribes the page to an SSE stream: each announced change bumps `tick` (which the page's
/// resources depend on, so they re-read), and `connected` says whether the stream is open.
fn live_updates(
    url: impl Fn() -> String + 'static,
    tick: RwSignal<u32>,
    connected: RwSignal<bool>,
) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use wasm_bindgen::prelude::Closure;
        use wasm_bindgen::JsCast;
        let Ok(source) = web_sys::EventSource::new(&url()) else {
            return;
        };
        for name in [
            "appointment",
            "image",
            "action",
            "gateway",
            "resync",
            "ready",
        ] {
            let on_event = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_| {
                // `ready` comes first and again after every reconnect: re-read what may have been
                // missed while the stream was down.
                tick.try_update(|t| *t += 1);
                if name == "ready" {
                    connected.try_set(true);
                }
            });
            let _ =
                source.add_event_listener_with_callback(name, on_event.as_ref().unchecked_ref());
            on_event.forget();
        }
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            connected.try_set(false);
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        let source = send_wrapper::SendWrapper::new(source);
        on_cleanup(move || source.close());
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (url, tick, connected);
}

#[component]
fn LiveIndicator(connected: RwSignal<bool>) -> impl IntoView {
    view! {
        <p id="live" class="nhsuk-body-s app-live" data-live=move || if connected.get() { "connected" } else { "connecting" }>
            {move || if connected.get() { "Live updates on" } else { "Live updates connecting…" }}
        </p>
    }
}

#[component]
fn SignIn() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    view! {
        <Title text="Sign in – Manage breast screening"/>
        <h1>"Sign in"</h1>
        {move || match action.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            _ => ().into_any(),
        }}
        <ActionForm action=action>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="email">"Email address"</label>
                <input class="nhsuk-input" id="email" name="email" type="email" autocomplete="username" required/>
            </div>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="password">"Password"</label>
                <input class="nhsuk-input" id="password" name="password" type="password" autocomplete="current-password" required/>
            </div>
            <button type="submit" class="nhsuk-button" id="sign-in">"Sign in"</button>
        </ActionForm>
    }
}

#[component]
fn Clinics() -> impl IntoView {
    let clinics = Resource::new(|| (), |_| list_clinics());
    view! {
        <Title text="Clinics – Manage breast screening"/>
        <h1>"Clinics"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
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
                    Err(e) => view! { <Failure error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn param_id(name: &'static str) -> impl Fn() -> i64 + Copy + 'static {
    let params = use_params_map();
    move || {
        params
            .read()
            .get(name)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    }
}

#[component]
fn StatusTag(status: AppointmentStatus) -> impl IntoView {
    view! { <strong class=status.tag_class() data-status=status.as_str()>{status.label()}</strong> }
}

#[component]
fn Clinic() -> impl IntoView {
    let id = param_id("id");
    let tick = RwSignal::new(0u32);
    let connected = RwSignal::new(false);
    let send = ServerAction::<SendToModality>::new();
    let clinic = Resource::new(
        move || (id(), tick.get(), send.version().get()),
        |(id, _, _)| get_clinic(id),
    );
    live_updates(move || format!("/live/clinics/{}", id()), tick, connected);
    view! {
        {move || match send.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            _ => ().into_any(),
        }}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match clinic.await {
                    Ok(c) => view! { <ClinicView clinic=c send=send/> }.into_any(),
                    Err(e) => view! { <Failure error=e/> }.into_any(),
                }
            })}
        </Transition>
        <LiveIndicator connected=connected/>
    }
}

#[component]
fn ClinicView(clinic: ClinicDetail, send: ServerAction<SendToModality>) -> impl IntoView {
    let title = format!("{} – Manage breast screening", clinic.clinic.name);
    view! {
        <Title text=title/>
        <span class="nhsuk-caption-l">{clinic.clinic.location.clone()}</span>
        <h1>{clinic.clinic.name.clone()}</h1>
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
                    view! {
                        <tr class="nhsuk-table__row" id=format!("appointment-{}", a.id)>
                            <td class="nhsuk-table__cell">{a.time}</td>
                            <td class="nhsuk-table__cell"><A href=format!("/appointments/{}", a.id)>{a.participant_name}</A></td>
                            <td class="nhsuk-table__cell">{a.nhs_number}</td>
                            <td class="nhsuk-table__cell app-status"><StatusTag status=a.status/></td>
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

#[component]
fn Appointment() -> impl IntoView {
    let id = param_id("id");
    let tick = RwSignal::new(0u32);
    let connected = RwSignal::new(false);
    let cancel = ServerAction::<CancelAppointment>::new();
    let appointment = Resource::new(
        move || (id(), tick.get(), cancel.version().get()),
        |(id, _, _)| get_appointment(id),
    );
    live_updates(
        move || format!("/live/appointments/{}", id()),
        tick,
        connected,
    );
    view! {
        {move || match cancel.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            _ => ().into_any(),
        }}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match appointment.await {
                    Ok(a) => view! { <AppointmentView appointment=a cancel=cancel/> }.into_any(),
                    Err(e) => view! { <Failure error=e/> }.into_any(),
                }
            })}
        </Transition>
        <LiveIndicator connected=connected/>
    }
}

const SIDES: [(&str, &str); 2] = [("R", "Right breast"), ("L", "Left breast")];
const VIEWS: [&str; 2] = ["CC", "MLO"];

#[component]
fn AppointmentView(
    appointment: AppointmentDetail,
    cancel: ServerAction<CancelAppointment>,
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
    view! {
        <Title text=title/>
        <span class="nhsuk-caption-l"><A href=format!("/clinics/{}", a.clinic_id)>{a.clinic_name.clone()}</A></span>
        <h1>{a.participant_name.clone()}</h1>
        <dl class="nhsuk-summary-list">
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">"NHS number"</dt><dd class="nhsuk-summary-list__value">{a.nhs_number.clone()}</dd></div>
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">"Date of birth"</dt><dd class="nhsuk-summary-list__value">{a.birth_date.clone()}</dd></div>
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">"Appointment"</dt><dd class="nhsuk-summary-list__value">{a.time.clone()}</dd></div>
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">"Status"</dt><dd class="nhsuk-summary-list__value" id="appointment-status"><StatusTag status=a.status/></dd></div>
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">"Accession number"</dt><dd class="nhsuk-summary-list__value">{a.accession_number.clone().unwrap_or_else(|| "Not sent yet".into())}</dd></div>
        </dl>
        {(!a.status.is_final()).then(|| view! {
            <ActionForm action=cancel>
                <input type="hidden" name="appointment_id" value=a.id/>
                <button type="submit" class="nhsuk-button nhsuk-button--warning" id="cancel-appointment">"Cancel appointment"</button>
            </ActionForm>
        })}
        <h2>"Images"</h2>
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
                {images.into_iter().map(|i| view! {
                    <tr class="nhsuk-table__row">
                        <td class="nhsuk-table__cell">{format!("{}{}", i.laterality, i.view)}</td>
                        <td class="nhsuk-table__cell">{i.dose.kvp}</td>
                        <td class="nhsuk-table__cell">{i.dose.exposure_uas}</td>
                        <td class="nhsuk-table__cell">{i.dose.organ_dose_dgy}</td>
                        <td class="nhsuk-table__cell">{i.dose.entrance_dose_mgy}</td>
                        <td class="nhsuk-table__cell">{i.dose.thickness_mm}</td>
                        <td class="nhsuk-table__cell">{i.dose.compression_n}</td>
                        <td class="nhsuk-table__cell">{i.dose.anode_filter}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <h2>"History"</h2>
        <ol class="nhsuk-list app-timeline" id="timeline">
            {a.timeline.into_iter().map(|t| view! { <li><span class="app-time">{t.at}</span>" "{t.text}</li> }).collect_view()}
        </ol>
    }
}

#[component]
fn Thumbnail(card: ImageCard) -> impl IntoView {
    let alt = format!("{}{} image", card.laterality, card.view);
    match card.thumbnail_url {
        Some(url) => view! {
            <img class="app-thumb" src=url alt=alt data-image-id=card.id/>
        }
        .into_any(),
        None => view! { <p class="nhsuk-body-s app-thumb-missing" data-image-id=card.id>"No preview"</p> }.into_any(),
    }
}

#[component]
fn Gateways() -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let connected = RwSignal::new(false);
    let check = ServerAction::<CheckGateway>::new();
    let gateways = Resource::new(
        move || (tick.get(), check.version().get()),
        |_| list_gateways(),
    );
    live_updates(|| "/live/provider".to_string(), tick, connected);
    view! {
        <Title text="Gateways – Manage breast screening"/>
        <h1>"Gateways"</h1>
        {move || match check.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            Some(Ok(_)) => view! { <p class="nhsuk-body" role="status">"Check queued; see Gateway actions for the reply."</p> }.into_any(),
            None => ().into_any(),
        }}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match gateways.await {
                    Ok(rows) => rows.into_iter().map(|g| view! { <GatewayCard gateway=g check=check/> }).collect_view().into_any(),
                    Err(e) => view! { <Failure error=e/> }.into_any(),
                }
            })}
        </Transition>
        <LiveIndicator connected=connected/>
    }
}

#[component]
fn GatewayCard(gateway: GatewayRow, check: ServerAction<CheckGateway>) -> impl IntoView {
    let g = gateway;
    let link = if g.listener_connected {
        view! { <strong class="nhsuk-tag nhsuk-tag--green">"Connected"</strong> }.into_any()
    } else {
        view! { <strong class="nhsuk-tag nhsuk-tag--red">"Not connected"</strong> }.into_any()
    };
    let row = |key: &'static str, value: String| {
        view! {
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">{key}</dt><dd class="nhsuk-summary-list__value">{value}</dd></div>
        }
    };
    view! {
        <section class="nhsuk-card" id=format!("gateway-{}", g.id)>
            <div class="nhsuk-card__content">
                <h2 class="nhsuk-card__heading">{g.name.clone()}</h2>
                <dl class="nhsuk-summary-list">
                    <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">"Events listener"</dt><dd class="nhsuk-summary-list__value">{link}</dd></div>
                    {row("Last traffic", g.listener_last_traffic.clone().unwrap_or_else(|| "–".into()))}
                    {row("Listener error", g.listener_error.clone().unwrap_or_else(|| "–".into()))}
                    {row("Last health reply", match (&g.last_health_at, &g.last_health) {
                        (Some(at), Some(h)) => format!("{h} at {at}"),
                        _ => "none yet".into(),
                    })}
                    {row("Relay", format!("{} (actions {}, events {})", g.namespace, g.actions_hc, g.events_hc))}
                    {row("Messages", format!("{} to {}", g.message_type, g.destination))}
                    {row("Queue", format!("{} pending, {} sent, {} confirmed, {} failed", g.pending, g.sent, g.confirmed, g.failed))}
                </dl>
                <div class="app-button-row">
                    <ActionForm action=check>
                        <input type="hidden" name="gateway_id" value=g.id/>
                        <input type="hidden" name="check" value="echo"/>
                        <button type="submit" class="nhsuk-button nhsuk-button--secondary">"Send echo"</button>
                    </ActionForm>
                    <ActionForm action=check>
                        <input type="hidden" name="gateway_id" value=g.id/>
                        <input type="hidden" name="check" value="health"/>
                        <button type="submit" class="nhsuk-button nhsuk-button--secondary">"Check health"</button>
                    </ActionForm>
                </div>
            </div>
        </section>
    }
}

#[component]
fn Actions() -> impl IntoView {
    let query = use_query_map();
    let status = move || query.read().get("status").unwrap_or_default();
    let tick = RwSignal::new(0u32);
    let connected = RwSignal::new(false);
    let redrive = ServerAction::<RedriveAction>::new();
    let actions = Resource::new(
        move || (status(), tick.get(), redrive.version().get()),
        |(status, _, _)| list_actions(status),
    );
    live_updates(|| "/live/provider".to_string(), tick, connected);
    view! {
        <Title text="Gateway actions – Manage breast screening"/>
        <h1>"Gateway actions"</h1>
        <form method="get" action="/actions" class="app-filter">
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="status">"Status"</label>
                <select class="nhsuk-select" id="status" name="status">
                    {["", "pending", "sent", "confirmed", "failed"].into_iter().map(|s| {
                        let selected = move || status() == s;
                        view! { <option value=s selected=selected>{if s.is_empty() { "All" } else { s }}</option> }
                    }).collect_view()}
                </select>
            </div>
            <button type="submit" class="nhsuk-button nhsuk-button--secondary">"Filter"</button>
        </form>
        {move || match redrive.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            _ => ().into_any(),
        }}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match actions.await {
                    Ok(rows) => view! { <ActionTable rows=rows redrive=redrive/> }.into_any(),
                    Err(e) => view! { <Failure error=e/> }.into_any(),
                }
            })}
        </Transition>
        <LiveIndicator connected=connected/>
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
                    let detail = match (&r.status[..], &r.next_attempt_at, &r.last_error) {
                        ("pending", Some(next), Some(err)) => format!("Next attempt {next}. Last error: {err}"),
                        ("pending", Some(next), None) => format!("Next attempt {next}"),
                        ("confirmed", _, _) => format!("Confirmed {}", r.confirmed_at.clone().unwrap_or_default()),
                        (_, _, Some(err)) => err.clone(),
                        _ => r.sent_at.clone().map(|s| format!("Sent {s}")).unwrap_or_default(),
                    };
                    let can_redrive = r.status == "failed" || r.status == "pending";
                    let tag = match &r.status[..] {
                        "confirmed" => "nhsuk-tag nhsuk-tag--green",
                        "failed" => "nhsuk-tag nhsuk-tag--red",
                        "sent" => "nhsuk-tag nhsuk-tag--blue",
                        _ => "nhsuk-tag nhsuk-tag--grey",
                    };
                    let id = r.id.clone();
                    view! {
                        <tr class="nhsuk-table__row" id=format!("action-{}", r.id) data-status=r.status.clone()>
                            <td class="nhsuk-table__cell"><A href=format!("/actions/{}", r.id)>{r.created_at}</A></td>
                            <td class="nhsuk-table__cell">{r.action_type}
                                {r.appointment_id.map(|a| view! { " for "<A href=format!("/appointments/{a}")>{format!("appointment {a}")}</A> })}
                            </td>
                            <td class="nhsuk-table__cell">{r.gateway_name}</td>
                            <td class="nhsuk-table__cell"><strong class=tag>{r.status.clone()}</strong></td>
                            <td class="nhsuk-table__cell">{r.attempts}</td>
                            <td class="nhsuk-table__cell">{detail}</td>
                            <td class="nhsuk-table__cell">
                                {can_redrive.then(|| view! {
                                    <ActionForm action=redrive>
                                        <input type="hidden" name="action_id" value=id/>
                                        <button type="submit" class="nhsuk-button nhsuk-button--small nhsuk-button--secondary">"Re-drive"</button>
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

#[component]
fn Action() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let tick = RwSignal::new(0u32);
    let connected = RwSignal::new(false);
    let redrive = ServerAction::<RedriveAction>::new();
    let action = Resource::new(
        move || (id(), tick.get(), redrive.version().get()),
        |(id, _, _)| get_action(id),
    );
    live_updates(|| "/live/provider".to_string(), tick, connected);
    view! {
        {move || match redrive.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            _ => ().into_any(),
        }}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match action.await {
                    Ok(a) => view! { <ActionView action=a redrive=redrive/> }.into_any(),
                    Err(e) => view! { <Failure error=e/> }.into_any(),
                }
            })}
        </Transition>
        <LiveIndicator connected=connected/>
    }
}

#[component]
fn ActionView(action: ActionDetail, redrive: ServerAction<RedriveAction>) -> impl IntoView {
    let r = action.row;
    let can_redrive = r.status == "failed" || r.status == "pending";
    let row = |key: &'static str, value: String| {
        view! {
            <div class="nhsuk-summary-list__row"><dt class="nhsuk-summary-list__key">{key}</dt><dd class="nhsuk-summary-list__value">{value}</dd></div>
        }
    };
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    let id = r.id.clone();
    view! {
        <Title text="Gateway action – Manage breast screening"/>
        <span class="nhsuk-caption-l"><A href="/actions">"Gateway actions"</A></span>
        <h1>{r.action_type.clone()}</h1>
        <dl class="nhsuk-summary-list" id="action" data-status=r.status.clone()>
            {row("Action id", r.id.clone())}
            {row("Status", r.status.clone())}
            {row("Gateway", format!("{} ({})", r.gateway_name, r.destination))}
            {row("Attempts", r.attempts.to_string())}
            {row("Created", r.created_at.clone())}
            {row("Last sent", or_dash(r.sent_at.clone()))}
            {row("Confirmed", or_dash(r.confirmed_at.clone()))}
            {row("Failed", or_dash(r.failed_at.clone()))}
            {row("Next attempt", or_dash(r.next_attempt_at.clone()))}
            {row("Last error", or_dash(r.last_error.clone()))}
        </dl>
        {r.appointment_id.map(|a| view! { <p><A href=format!("/appointments/{a}")>{format!("Appointment {a}")}</A></p> })}
        {can_redrive.then(|| view! {
            <ActionForm action=redrive>
                <input type="hidden" name="action_id" value=id/>
                <button type="submit" class="nhsuk-button nhsuk-button--secondary">"Re-drive"</button>
            </ActionForm>
        })}
        <h2>"Payload"</h2>
        <pre class="app-json" tabindex="0">{action.payload}</pre>
        <h2>"Gateway reply"</h2>
        {match action.reply {
            Some(reply) => view! { <pre class="app-json" tabindex="0">{reply}</pre> }.into_any(),
            None => view! { <p>"No reply yet."</p> }.into_any(),
        }}
    }
}
