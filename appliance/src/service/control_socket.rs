//! The control socket: `gateway status` (and `gateway doctor`) talk to the running service
//! through a Unix socket in the state directory. redb lets only one process open the database,
//! so the service itself answers, with the same report the cloud's `health` action gets, and
//! adds the worklist items a local operator enters while the cloud is unreachable
//! (`gateway worklist add`). The socket is the service user's alone (mode 0600): root and the
//! service may use it, nobody else.
//!
//! One request per connection: a JSON line, then the client closes its writing half; the reply
//! is one JSON document. A connection that sends nothing gets the status report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use shared::wire::action::{HealthReport, WorklistItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::health::{self, HealthProbe};
use crate::cloud::outbox;
use crate::db::Database;
use crate::worklist::{self, WorklistEntry};

/// The largest request read, and how long a client may take to send it.
const MAX_REQUEST: u64 = 64 * 1024;
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
// One per connection: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Request {
    Status,
    /// A SCHEDULED item entered at the gateway, not by the cloud (no action id).
    WorklistAdd {
        item: WorklistItem,
        station_ae: Option<String>,
    },
    /// Every queued and parked event (`gateway events list`).
    EventsList,
    /// `gateway events retry`: a parked event back in the queue, or a waiting one due now.
    EventsRetry {
        event_id: String,
    },
    /// `gateway events drop`: an event removed for good.
    EventsDrop {
        event_id: String,
    },
}

/// The answer to an `Events…` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventsReply {
    Listed(Vec<outbox::Listed>),
    Handled(outbox::Handled),
    Failed(String),
}

/// The answer to `WorklistAdd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Added {
    Added(Box<WorklistEntry>),
    Refused(String),
}

/// The socket's path in a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway.sock")
}

/// Answers each connection with one JSON health report, until `shutdown` turns true.
pub async fn serve(
    path: PathBuf,
    db: Arc<Database>,
    local: LocalItems,
    probe: HealthProbe,
    started: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // A socket left by a killed process would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!("control socket at {}", path.display());
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("status socket accept failed: {e}");
                    continue;
                }
            },
        };
        let text = match read_request(&mut stream).await {
            Ok(Request::Status) => {
                let report = health::report(&db, &probe, started).await;
                serde_json::to_string(&report).expect("reports serialise")
            }
            Ok(Request::WorklistAdd { item, station_ae }) => {
                let added = add_item(&db, &local, item, station_ae).await;
                serde_json::to_string(&added).expect("replies serialise")
            }
            Ok(
                request @ (Request::EventsList
                | Request::EventsRetry { .. }
                | Request::EventsDrop { .. }),
            ) => {
                let reply = events(&db, &local.doorbell, request).await;
                serde_json::to_string(&reply).expect("replies serialise")
            }
            Err(why) => {
                tracing::warn!("control socket: refused a request: {why}");
                serde_json::to_string(&Added::Refused(why)).expect("replies serialise")
            }
        };
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut *stream).take(MAX_REQUEST + 1).read_to_end(&mut bytes),
    )
    .await;
    match read {
        Err(_) => return Err(format!("no request within {} s", REQUEST_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(format!("reading the request: {e}")),
        Ok(Ok(_)) if bytes.len() as u64 > MAX_REQUEST => {
            return Err(format!("a request over {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => {}
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Request::Status);
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("not a request: {e}"))
}

/// Lists, retries or drops events for `gateway events`, on the running service's database (and
/// rings the courier after a retry, so it goes at once).
async fn events(db: &Arc<Database>, doorbell: &outbox::Doorbell, request: Request) -> EventsReply {
    let db = db.clone();
    let retried = matches!(request, Request::EventsRetry { .. });
    let reply = tokio::task::spawn_blocking(move || handle_events(&db, request))
        .await
        .unwrap_or_else(|e| EventsReply::Failed(format!("event request failed: {e}")));
    if retried && reply == EventsReply::Handled(outbox::Handled::Retrying) {
        doorbell.ring();
    }
    reply
}

/// The events requests on an open database: the running service's, or a stopped one's.
pub fn handle_events(db: &Database, request: Request) -> EventsReply {
    let result = match request {
        Request::EventsList => outbox::list_all(db).map(EventsReply::Listed),
        Request::EventsRetry { event_id } => outbox::retry(db, &event_id).map(EventsReply::Handled),
        Request::EventsDrop { event_id } => {
            outbox::drop_event(db, &event_id).map(EventsReply::Handled)
        }
        other => return EventsReply::Failed(format!("not an events request: {other:?}")),
    };
    result.unwrap_or_else(|e| EventsReply::Failed(e.to_string()))
}

/// Asks the running service an `Events…` request.
pub async fn ask_events(path: &Path, request: &Request) -> std::io::Result<EventsReply> {
    serde_json::from_str(&ask(path, request).await?).map_err(invalid)
}

/// Adds an item entered at the gateway and, with `report_as` (the gateway's name), queues its
/// `worklist.item_added_locally` event in the same commit, so the cloud shows it as a walk-in.
/// `report_as` is `None` in NHS-compatible mode: the NHS app has no such event, and an event it
/// refuses would hold back the procedure's MPPS and image events queued behind it. Both the
/// control socket and `gateway worklist add` on a stopped service add items through here.
pub fn add_local_item(
    db: &Database,
    entry: &WorklistEntry,
    report_as: Option<&str>,
) -> Result<(), worklist::WorklistError> {
    db.write(|txn| {
        worklist::insert(txn, entry)?;
        if let Some(source_system) = report_as {
            crate::cloud::events::local_item_added(txn, source_system, entry)?;
        }
        Ok(())
    })
}

/// How the running service reports the items added through the socket.
#[derive(Debug, Clone)]
pub struct LocalItems {
    /// Who their events are reported as (`None`: not reported).
    pub report_as: Option<String>,
    /// Rung after an item's event is queued, so the outbox tries it at once.
    pub doorbell: crate::cloud::outbox::Doorbell,
}

/// The same checks and insert as `gateway worklist add` on a stopped service.
async fn add_item(
    db: &Arc<Database>,
    local: &LocalItems,
    item: WorklistItem,
    station_ae: Option<String>,
) -> Added {
    let entry = match WorklistEntry::new(item, None, station_ae) {
        Ok(entry) => entry,
        Err(e) => return Added::Refused(e.to_string()),
    };
    let db = db.clone();
    let written = entry.clone();
    let report_as = local.report_as.clone();
    let result =
        tokio::task::spawn_blocking(move || add_local_item(&db, &written, report_as.as_deref()))
            .await;
    match result {
        Ok(Ok(())) => {
            tracing::info!(
                accession = %entry.accession_number,
                reported = local.report_as.is_some(),
                "worklist item added at the gateway (control socket)"
            );
            local.doorbell.ring();
            Added::Added(Box::new(entry))
        }
        Ok(Err(e)) => Added::Refused(e.to_string()),
        Err(e) => Added::Refused(e.to_string()),
    }
}

/// Sends one request and reads the reply.
async fn ask(path: &Path, request: &Request) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path).await?;
    let line = serde_json::to_string(request).expect("requests serialise");
    stream.write_all(line.as_bytes()).await?;
    stream.shutdown().await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

fn invalid(e: serde_json::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Asks the running service for its report.
pub async fn query(path: &Path) -> std::io::Result<HealthReport> {
    serde_json::from_str(&ask(path, &Request::Status).await?).map_err(invalid)
}

/// Asks the running service to add a worklist item.
pub async fn add_worklist_item(
    path: &Path,
    item: WorklistItem,
    station_ae: Option<String>,
) -> std::io::Result<Added> {
    let request = Request::WorklistAdd { item, station_ae };
    serde_json::from_str(&ask(path, &request).await?).map_err(invalid)
}

/// The report as lines for a terminal: the verdict, then one line per check.
pub fn render(report: &HealthReport) -> String {
    let mut out = format!(
        "gateway {} — {} (up {} s)\n",
        report.version,
        if report.healthy {
            "healthy"
        } else {
            "UNHEALTHY"
        },
        report.listener_uptime_seconds
    );
    for (name, check) in &report.checks {
        out.push_str(&format!(
            "  {:<4} {:<15} {}\n",
            if check.ok { "ok" } else { "FAIL" },
            name,
            check.detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_bounded_and_parsed_or_refused() {
        let big = vec![b' '; MAX_REQUEST as usize + 10];
        let cases: [(&[u8], Result<Request, &str>); 4] = [
            (b"", Ok(Request::Status)),
            (br#"{"command":"status"}"#, Ok(Request::Status)),
            (b"GET / HTTP/1.1", Err("not a request")),
            (&big, Err("over 65536 bytes")),
        ];
        for (bytes, expected) in cases {
            let (mut client, mut server) = UnixStream::pair().unwrap();
            let bytes = bytes.to_vec();
            let writer = tokio::spawn(async move {
                let _ = client.write_all(&bytes).await;
                let _ = client.shutdown().await;
                client
            });
            let got = read_request(&mut server).await;
            drop(writer.await);
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(why), Err(needle)) => assert!(why.contains(needle), "{why}"),
                (got, want) => panic!("got {got:?}, expected {want:?}"),
            }
        }
    }
}
