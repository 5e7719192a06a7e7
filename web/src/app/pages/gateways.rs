//! `/gateways`: each gateway's liveness (online / degraded / offline since, from the evidence),
//! its event queue and failing checks from its last health report, this app's events listener,
//! and the outbox queue; live. For an
//! administrator also "Send echo", "Check health", "Change settings" and "Add a gateway".

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::error::AppError;
use crate::app::live::use_live_resource;
use crate::app::widgets::{ErrorSummary, SummaryRow};
use crate::model::GatewayRow;

#[component]
pub fn Gateways() -> impl IntoView {
    let check = ServerAction::<CheckGateway>::new();
    let gateways = use_live_resource(
        || "/live/provider".to_string(),
        move || check.version().get(),
        |_| list_gateways(),
    );
    let viewer = Resource::new(|| (), |_| crate::app::current_user());
    view! {
        <Title text="Gateways – Manage breast screening"/>
        <h1>"Gateways"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let administrator = viewer.await.ok().flatten().is_some_and(|u| u.role.administers());
                administrator.then(|| view! {
                    <a class="nhsuk-button nhsuk-button--secondary" href="/admin/gateways/new" id="add-gateway">"Add a gateway"</a>
                })
            })}
        </Suspense>
        {move || match check.value().get() {
            Some(Err(e)) => view! { <ErrorSummary message=e.to_string()/> }.into_any(),
            Some(Ok(_)) => view! { <p class="nhsuk-body" role="status">"Check queued; see Gateway actions for the reply."</p> }.into_any(),
            None => ().into_any(),
        }}
        {gateways.view(move |rows| {
            rows.into_iter().map(|g| view! { <GatewayCard gateway=g check/> }).collect_view()
        })}
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
    let liveness = view! {
        <strong class=g.liveness.tag_class() data-liveness=g.liveness.as_str()>{g.liveness.label()}</strong>
        " "<span class="app-liveness-detail">{g.liveness_detail.clone()}</span>
    };
    let failing = (!g.failing_checks.is_empty()).then(|| {
        let checks = g.failing_checks.clone();
        view! {
            <SummaryRow key="Failing checks">
                <ul class="nhsuk-list">{checks.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}</ul>
            </SummaryRow>
        }
    });
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    view! {
        <section class="nhsuk-card" id=format!("gateway-{}", g.id)>
            <div class="nhsuk-card__content">
                <h2 class="nhsuk-card__heading">{g.name.clone()}</h2>
                <dl class="nhsuk-summary-list">
                    <SummaryRow key="Gateway">{liveness}</SummaryRow>
                    {failing}
                    <SummaryRow key="Event queue at the gateway">{or_dash(&g.event_queue)}</SummaryRow>
                    <SummaryRow key="Events listener">{link}</SummaryRow>
                    <SummaryRow key="Last traffic">{or_dash(&g.listener_last_traffic)}</SummaryRow>
                    <SummaryRow key="Listener error">{or_dash(&g.listener_error)}</SummaryRow>
                    <SummaryRow key="Last health reply">{match (&g.last_health_at, &g.last_health) {
                        (Some(at), Some(h)) => format!("{h} at {at}"),
                        _ => "none yet".into(),
                    }}</SummaryRow>
                    <SummaryRow key="Relay">{format!("{} (actions {}, events {})", g.namespace, g.actions_hc, g.events_hc)}</SummaryRow>
                    <SummaryRow key="Messages">{format!("{} to {}", g.message_type, g.destination)}</SummaryRow>
                    <SummaryRow key="Queue">{format!("{} pending, {} sent, {} confirmed, {} failed", g.pending, g.sent, g.confirmed, g.failed)}</SummaryRow>
                </dl>
                {g.may_manage.then(|| view! {
                <div class="app-button-row">
                    <a class="nhsuk-button nhsuk-button--secondary" href=format!("/admin/gateways/{}", g.id)>
                        "Change settings"<span class="nhsuk-u-visually-hidden">{format!(" of {}", g.name)}</span>
                    </a>
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
                })}
            </div>
        </section>
    }
}

/// The user's gateways.
#[server(endpoint = "/list_gateways")]
pub async fn list_gateways() -> Result<Vec<GatewayRow>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::service::gateway_rows(&state, &user)
        .await
        .map_err(context::fail)
}

/// Queues an `echo` or a `health` check to a gateway.
#[server(endpoint = "/check_gateway")]
pub async fn check_gateway(gateway_id: i64, check: String) -> Result<String, AppError> {
    use crate::app::context;
    use crate::server::service::{self, GatewayCheck};
    let (state, user) = context::user().await?;
    let check = match check.as_str() {
        "echo" => GatewayCheck::Echo,
        "health" => GatewayCheck::Health,
        other => return Err(AppError::Invalid(format!("unknown check {other}"))),
    };
    service::check_gateway(&state, &user, gateway_id, check)
        .await
        .map_err(context::fail)
}
