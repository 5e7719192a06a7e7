//! Live pages. A page's data is a [`Resource`] re-read whenever the page's SSE stream announces a
//! change (or reconnects, since changes may have been missed while it was down); the stream is
//! opened after hydration and closed, with its listeners removed and freed, when the page goes.
//! On the server the page renders once, with its data, and opens nothing.

use std::future::Future;

use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::AppError;
use super::widgets::{Failure, Loading};

/// A page's data kept up to date by its live-update stream.
pub struct LiveResource<T: Send + Sync + 'static> {
    /// The server function's latest answer.
    pub resource: Resource<Result<T, AppError>>,
    /// Whether the stream is open (shown by [`LiveIndicator`]).
    pub connected: RwSignal<bool>,
}

impl<T: Send + Sync + 'static> Clone for LiveResource<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for LiveResource<T> {}

/// Reads `fetch(source())` now and again after every event on the stream at `stream_url()`.
/// `source` holds what else the read depends on (the record id, a filter, a mutation's version).
pub fn use_live_resource<S, T, Fut>(
    stream_url: impl Fn() -> String + Send + Sync + 'static,
    source: impl Fn() -> S + Send + Sync + 'static,
    fetch: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> LiveResource<T>
where
    S: PartialEq + Clone + Send + Sync + 'static,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    Fut: Future<Output = Result<T, AppError>> + Send + 'static,
{
    let tick = RwSignal::new(0u32);
    let connected = RwSignal::new(false);
    let resource = Resource::new(move || (source(), tick.get()), move |(s, _)| fetch(s));
    subscribe(stream_url, tick, connected);
    LiveResource {
        resource,
        connected,
    }
}

impl<T> LiveResource<T>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The page body: "Loading…" at first, then `render(data)` or the failure (the 404 page or an
    /// error summary), keeping the old content on screen while a re-read is under way; then the
    /// live indicator.
    pub fn view<V>(self, render: impl Fn(T) -> V + Clone + Send + Sync + 'static) -> impl IntoView
    where
        V: IntoView + 'static,
    {
        let LiveResource {
            resource,
            connected,
        } = self;
        view! {
            <Transition fallback=Loading>
                {move || {
                    let render = render.clone();
                    Suspend::new(async move {
                        match resource.await {
                            Ok(data) => render(data).into_any(),
                            Err(error) => view! { <Failure error/> }.into_any(),
                        }
                    })
                }}
            </Transition>
            <LiveIndicator connected/>
        }
    }
}

/// Opens the stream in the browser: every event bumps `tick`; `ready` (first, and after each
/// reconnect) also sets `connected`, an error clears it.
#[cfg(feature = "hydrate")]
fn subscribe(
    url: impl Fn() -> String + Send + Sync + 'static,
    tick: RwSignal<u32>,
    connected: RwSignal<bool>,
) {
    use send_wrapper::SendWrapper;
    use wasm_bindgen::prelude::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{Event, EventSource, MessageEvent};

    use crate::live_event::LiveEvent;

    Effect::new(move |_| {
        let Ok(source) = EventSource::new(&url()) else {
            return;
        };
        let on_event = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            tick.try_update(|t| *t += 1);
            if event.type_() == LiveEvent::Ready.name() {
                connected.try_set(true);
            }
        });
        for event in LiveEvent::ALL {
            let _ = source
                .add_event_listener_with_callback(event.name(), on_event.as_ref().unchecked_ref());
        }
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_| {
            connected.try_set(false);
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // Runs before the effect re-runs (the page's id changed) and when the page unmounts: no
        // listener may outlive its closure, and no closure outlives its page.
        let held = SendWrapper::new((source, on_event, on_error));
        on_cleanup(move || {
            let (source, on_event, on_error) = held.take();
            source.close();
            source.set_onerror(None);
            for event in LiveEvent::ALL {
                let _ = source.remove_event_listener_with_callback(
                    event.name(),
                    on_event.as_ref().unchecked_ref(),
                );
            }
            drop((on_event, on_error));
        });
    });
}

#[cfg(not(feature = "hydrate"))]
fn subscribe(
    _url: impl Fn() -> String + Send + Sync + 'static,
    _tick: RwSignal<u32>,
    _connected: RwSignal<bool>,
) {
}

/// "Live updates on" once the stream is open; the browser tests wait for `data-live`.
#[component]
pub fn LiveIndicator(connected: RwSignal<bool>) -> impl IntoView {
    view! {
        <p id="live" class="nhsuk-body-s app-live" data-live=move || if connected.get() { "connected" } else { "connecting" }>
            {move || if connected.get() { "Live updates on" } else { "Live updates connecting…" }}
        </p>
    }
}
