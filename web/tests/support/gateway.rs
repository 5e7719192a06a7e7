//! A stand-in for the gateway appliance, speaking the real wire contract over the real relay:
//! it listens on the actions hybrid connection and replies signed, and it sends signed events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::relay::{Config, Listener, ListenerOptions, ListenerStatus, Sender};
use shared::wire::action::{
    Action, ActionReply, Command, Outcome, Participant, Procedure, Scheduled, WorklistItem,
};
use shared::wire::event::{
    ArchiveState, Dose, Event, EventBody, EventReply, ImageArchiveState, ImageReceived,
    ImageSummary, LocalWorklistItem, MppsStatus, MppsStatusUpdate, PatientSummary, SeriesSummary,
    StudySummary, Thumbnail,
};
use shared::wire::{Keyring, SigningKey, Verification};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// How the fake gateway answers an action.
pub type Reply = Arc<dyn Fn(&Action) -> Outcome + Send + Sync>;

/// A running actions listener; dropping it stops the listener.
pub struct ActionsListener {
    pub received: mpsc::UnboundedReceiver<Action>,
    pub status: watch::Receiver<ListenerStatus>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for ActionsListener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl ActionsListener {
    /// Waits until the relay has registered the listener.
    pub async fn connected(&mut self) {
        let ok = tokio::time::timeout(
            Duration::from_secs(30),
            self.status.wait_for(|s| s.connected),
        )
        .await
        .is_ok();
        assert!(ok, "fake gateway listener never connected");
    }

    /// The next action the gateway received.
    pub async fn next(&mut self) -> Action {
        tokio::time::timeout(Duration::from_secs(60), self.received.recv())
            .await
            .expect("an action reached the gateway in time")
            .expect("listener running")
    }
}

/// Starts a listener on `entity` that verifies actions with `web_key`, records them and replies
/// (signed with `gateway_key`) as `reply` says.
pub async fn listen_actions(
    relay: Config,
    entity: &str,
    gateway_key: SigningKey,
    web_key: &SigningKey,
    reply: Reply,
) -> ActionsListener {
    listen_actions_replying(
        relay,
        entity,
        gateway_key,
        web_key,
        Arc::new(move |action: &Action| ActionReply::new(action.action_id, reply(action))),
    )
    .await
}

/// The whole reply a gateway sends to an action (to misbehave: answer another action's id).
pub type FullReply = Arc<dyn Fn(&Action) -> ActionReply + Send + Sync>;

/// As [`listen_actions`], with the whole reply made by `reply`.
pub async fn listen_actions_replying(
    relay: Config,
    entity: &str,
    gateway_key: SigningKey,
    web_key: &SigningKey,
    reply: FullReply,
) -> ActionsListener {
    let listener = Listener::new(relay, entity, ListenerOptions::default());
    let status = listener.status();
    let verification = Verification::strict(Keyring::new(vec![web_key.public_key()]));
    let (tx, received) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let tx = Arc::new(Mutex::new(tx));
    tokio::spawn(async move {
        listener
            .run(
                move |text: String| {
                    let verification = verification.clone();
                    let key = gateway_key.clone();
                    let reply = reply.clone();
                    let tx = tx.clone();
                    async move {
                        match Action::open(&text, &verification) {
                            Ok(action) => {
                                let answer = reply(&action);
                                let _ = tx.lock().unwrap().send(action.clone());
                                key.seal(&answer)
                            }
                            Err(rejected) => key.seal(&ActionReply::rejected(&rejected)),
                        }
                    }
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    ActionsListener {
        received,
        status,
        stop: Some(stop),
    }
}

/// Replies `created` to creates, `echo`/`ok`-free: only what the tests use.
pub fn reply_created() -> Reply {
    Arc::new(|action: &Action| match &action.command {
        Command::Echo(payload) => Outcome::Echo {
            payload: payload.clone(),
        },
        _ => Outcome::Created,
    })
}

/// The worklist item of a create action.
pub fn worklist_item(action: &Action) -> WorklistItem {
    match &action.command {
        Command::CreateItem(item) => item.clone(),
        other => panic!("expected worklist.create_item, got {other:?}"),
    }
}

/// Sends one signed event and returns the web app's verified reply.
pub async fn send_event(
    relay: Config,
    entity: &str,
    key: &SigningKey,
    web_key: &SigningKey,
    event: &Event,
) -> EventReply {
    let text = key.seal(event);
    send_text(relay, entity, web_key, &text).await
}

/// Sends raw text as an event and returns the web app's verified reply.
pub async fn send_text(
    relay: Config,
    entity: &str,
    web_key: &SigningKey,
    text: &str,
) -> EventReply {
    let reply = Sender::new(relay, entity)
        .request(text)
        .await
        .expect("the web app answered the event");
    EventReply::open(
        &reply,
        &Verification::strict(Keyring::new(vec![web_key.public_key()])),
    )
    .expect("the web app's reply is signed by its key")
}

/// An MPPS status event for a worklist item.
pub fn mpps(action_id: Option<Uuid>, accession: &str, status: MppsStatus) -> Event {
    Event::new(
        "test-gateway",
        EventBody::MppsStatusUpdate(MppsStatusUpdate {
            action_id,
            accession_number: accession.into(),
            status,
            mpps_instance_uid: format!("1.2.826.0.1.3680043.8.498.{}", accession.len()),
            images_taken: None,
        }),
    )
}

/// An item a local operator added at the gateway (a walk-in), scheduled today at 10:30.
pub fn local_item(accession: &str, nhs_number: &str, name: &str, date: &str) -> Event {
    Event::new(
        "test-gateway",
        EventBody::WorklistItemAddedLocally(LocalWorklistItem {
            accession_number: accession.into(),
            participant: Participant {
                nhs_number: nhs_number.into(),
                name: name.into(),
                birth_date: "19650412".into(),
                sex: "F".into(),
            },
            scheduled: Scheduled {
                date: date.into(),
                time: "103000".into(),
            },
            procedure: Procedure {
                modality: "MG".into(),
                study_description: "Breast screening".into(),
            },
            study_instance_uid: format!("1.2.826.0.1.3680043.8.498.7.{}", accession.len()),
            scheduled_station_ae: None,
        }),
    )
}

/// A hospital PACS's report on one image.
pub fn archive_state(
    action_id: Option<Uuid>,
    accession: &str,
    sop_instance_uid: &str,
    state: ArchiveState,
    reason: Option<&str>,
) -> Event {
    Event::new(
        "test-gateway",
        EventBody::ImageArchiveState(ImageArchiveState {
            action_id,
            accession_number: Some(accession.into()),
            study_instance_uid: "1.2.826.0.1.3680043.8.498.1".into(),
            sop_instance_uid: sop_instance_uid.into(),
            destination: "HOSPITAL_PACS".into(),
            state,
            reason: reason.map(str::to_string),
        }),
    )
}

/// A small real JPEG (60×80, made by Chromium's canvas), so the browser renders the thumbnail.
pub const THUMBNAIL_JPEG: &str = "/9j/4AAQSkZJRgABAQAAAQABAAD/4gHYSUNDX1BST0ZJTEUAAQEAAAHIAAAAAAQwAABtbnRyUkdCIFhZWiAH4AABAAEAAAAAAABhY3NwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQAA9tYAAQAAAADTLQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAlkZXNjAAAA8AAAACRyWFlaAAABFAAAABRnWFlaAAABKAAAABRiWFlaAAABPAAAABR3dHB0AAABUAAAABRyVFJDAAABZAAAAChnVFJDAAABZAAAAChiVFJDAAABZAAAAChjcHJ0AAABjAAAADxtbHVjAAAAAAAAAAEAAAAMZW5VUwAAAAgAAAAcAHMAUgBHAEJYWVogAAAAAAAAb6IAADj1AAADkFhZWiAAAAAAAABimQAAt4UAABjaWFlaIAAAAAAAACSgAAAPhAAAts9YWVogAAAAAAAA9tYAAQAAAADTLXBhcmEAAAAAAAQAAAACZmYAAPKnAAANWQAAE9AAAApbAAAAAAAAAABtbHVjAAAAAAAAAAEAAAAMZW5VUwAAACAAAAAcAEcAbwBvAGcAbABlACAASQBuAGMALgAgADIAMAAxADb/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCABQADwDASIAAhEBAxEB/8QAGwABAAIDAQEAAAAAAAAAAAAAAwIEAAUGAQf/xAAuEAACAQMCAwYFBQAAAAAAAAABAgADBCEFETFBcwY1UWGRsRITIjSBI7LB0eH/xAAUAQEAAAAAAAAAAAAAAAAAAAAA/8QAFBEBAAAAAAAAAAAAAAAAAAAAAP/aAAwDAQACEQMRAD8A41ViqkkqxVWBFUiqk7Wh2Ns7mxt61OvWpVKlJWO+zDcjfh/s1t72Sv7TdqIW5pjmmG9P63gaFViqsl8sqxVgQRggjhEVYHipECYklSIExA0irFVZJViqsD6fpnddp0U/aJalbTe7bXop7CWYGt1TRrbUkJZQlblVUZ/PjONvLCtYXBo112PEEcGHiJ9ElDWNPW/tGXb9VAWpnz8PzA4dViBMSSpECYgaRViqskqxVWB9D0/u616SewlmV7Du+26S+wliBkyZMgcfqVEU9SrqBsPj39c/zBCYlvUCKuoVmGR8W3piEFxA0irFVZJUiqsDuLH7G36S+0eBZ/ZUOmvtHgZKt/dC1tywP1thR5z26vKVqv1Hd+SDiZoq9apc1TUqHPIcgIAKsQLiSVYgXEDSKkVVklSKqwN3S1ihSt6aBHZlQA8AOECvq1xWG1MCkPLJ9ZQVYqrA8ALHdiSTxJiKkkqRFSB4qxAuJJVihcQP/9k=";

/// An image event for a worklist item: `laterality` R/L, `view` CC/MLO.
pub fn image(
    action_id: Option<Uuid>,
    accession: &str,
    nhs_number: &str,
    laterality: &str,
    view: &str,
    n: i64,
) -> Event {
    let study = format!(
        "1.2.826.0.1.3680043.8.498.1.{}",
        accession.bytes().map(u64::from).sum::<u64>()
    );
    Event::new(
        "test-gateway",
        EventBody::ImageReceived(Box::new(ImageReceived {
            action_id,
            participant: PatientSummary {
                patient_id: nhs_number.into(),
                name: "TEST^PATIENT".into(),
                birth_date: None,
                sex: Some("F".into()),
            },
            study: StudySummary {
                study_instance_uid: study.clone(),
                accession_number: Some(accession.into()),
                date: None,
                time: None,
                description: Some("Screening mammography".into()),
            },
            series: SeriesSummary {
                series_instance_uid: format!("{study}.{laterality}{view}")
                    .replace(['R', 'L', 'C', 'M', 'O'], "9"),
                number: Some(1),
                modality: Some("MG".into()),
                description: None,
            },
            image: ImageSummary {
                sop_instance_uid: format!("{study}.{n}"),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.2".into(),
                instance_number: Some(n),
                rows: Some(4096),
                columns: Some(3328),
                transfer_syntax_uid: "1.2.840.10008.1.2.4.70".into(),
                view: Some(view.into()),
                laterality: Some(laterality.into()),
                dose: Dose {
                    kvp: Some(29.0),
                    exposure_uas: Some(56_000.0),
                    organ_dose_dgy: Some(0.012),
                    entrance_dose_mgy: Some(4.1),
                    anode: Some("TUNGSTEN".into()),
                    filter: Some("RHODIUM".into()),
                    body_part_thickness_mm: Some(52.0),
                    compression_force_n: Some(98.0),
                },
                received_at: time::OffsetDateTime::now_utc(),
                thumbnail: Some(Thumbnail {
                    format: "jpeg".into(),
                    width: 60,
                    height: 80,
                    data: THUMBNAIL_JPEG.into(),
                }),
                thumbnail_error: None,
            },
        })),
    )
}
