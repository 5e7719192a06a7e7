//! Where log lines go. Under systemd (stderr is a journald stream) each event is sent to the
//! journal over its native protocol: `PRIORITY=` from the level, so `journalctl -u gateway -p
//! err` finds the errors; every field as a journal field of its own, upper-cased, so
//! `journalctl -u gateway ACCESSION=ACC1` or `CALLING_AE=MODALITY1` finds one procedure's or one
//! modality's lines; and the fields also written into `MESSAGE` (`stored
//! sop_instance_uid=1.2.3 accession=ACC1 …`), because plain `journalctl` shows only the message
//! text. Should the journal socket refuse an entry, the line goes to stderr with its `<N>`
//! priority prefix instead. Elsewhere: ordinary timestamped stderr lines.
//!
//! Secrets stay out: relay keys, tokens and signing keys are never put in a log line, their
//! `Debug` impls are redacted, and the websocket library, which would log the handshake with its
//! token, is held at info (`tests/service.rs` runs the binary at `trace` and greps).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: `LOG_LEVEL` (or `RUST_LOG`) filters, `info` by default.
pub fn init() {
    let mut filter = EnvFilter::try_from_env("LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Relay tokens never reach the log (see the constant). Held back as noise: dicom-pixeldata's
    // warning on every image without a VOI window (the thumbnailer handles it with min/max) and
    // the JPEG 2000 codec's per-image progress lines at info; real decode failures reach the log
    // through the thumbnailer's own errors.
    let quiet = shared::relay::LOG_DIRECTIVES_HIDING_TOKENS
        .into_iter()
        .chain(["dicom_pixeldata=error", "jpeg2k=warn"]);
    for directive in quiet {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    if stderr_is_journal() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(filter)
            .with(Journal)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Sends each event to the journal with its fields (see the module comment). Written here
/// because `tracing-journald` leaves the fields out of `MESSAGE`, which is what support staff
/// read; the protocol itself is `libsystemd`'s.
struct Journal;

impl<S: Subscriber> tracing_subscriber::Layer<S> for Journal {
    fn on_event(&self, event: &Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level();
        let message = fields.message_line();
        let mut vars = fields.journal_fields();
        vars.push(("SYSLOG_IDENTIFIER".into(), "gateway".into()));
        vars.push(("TARGET".into(), event.metadata().target().to_string()));
        let sent =
            libsystemd::logging::journal_send(journal_priority(level), &message, vars.into_iter());
        if sent.is_err() {
            // One event, one line: journald would give continuation lines the default priority.
            eprintln!("<{}>{}", priority(level), message.replace('\n', "\\n"));
        }
    }
}

fn journal_priority(level: &Level) -> libsystemd::logging::Priority {
    use libsystemd::logging::Priority;
    match *level {
        Level::ERROR => Priority::Error,
        Level::WARN => Priority::Warning,
        Level::INFO => Priority::Info,
        _ => Priority::Debug,
    }
}

/// One event's message and fields, in the order written.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl Fields {
    /// `message key=value …`, as plain `journalctl` shows it.
    fn message_line(&self) -> String {
        let mut line = self.message.clone();
        for (name, value) in &self.pairs {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&format!("{name}={value}"));
        }
        line
    }

    /// Each field as the journal names it: upper case, letters, digits and `_` only, not
    /// starting with `_` (those are the journal's own trusted fields).
    fn journal_fields(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter_map(|(name, value)| {
                let key: String = name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let key = key.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
                (!key.is_empty()).then(|| (key.to_string(), value.clone()))
            })
            .collect()
    }
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs.push((field.name(), format!("{value:?}")));
        }
    }
}

/// True when systemd connected stderr to journald: `JOURNAL_STREAM` names the device and inode
/// of that stream, and they must match stderr's (a child whose stderr was redirected inherits
/// the variable but not the stream).
fn stderr_is_journal() -> bool {
    std::env::var("JOURNAL_STREAM")
        .is_ok_and(|stream| is_stream(&stream, std::io::stderr().as_fd()))
}

/// Whether `fd` is the stream `JOURNAL_STREAM` (`device:inode`) names.
fn is_stream(journal_stream: &str, fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .is_ok_and(|stat| journal_stream == format!("{}:{}", stat.st_dev, stat.st_ino))
}

/// The syslog priority journald reads from a line's `<N>` prefix.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_match_syslog() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn fields_become_journal_fields_and_stay_in_the_message() {
        use tracing_subscriber::layer::SubscriberExt;
        /// Each event's message line and journal fields.
        type Entry = (String, Vec<(String, String)>);
        #[derive(Clone, Default)]
        struct Seen(std::sync::Arc<std::sync::Mutex<Vec<Entry>>>);
        impl<S: Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                let mut fields = Fields::default();
                event.record(&mut fields);
                self.0
                    .lock()
                    .unwrap()
                    .push((fields.message_line(), fields.journal_fields()));
            }
        }
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let accession = "ACC1";
            tracing::info!(accession, calling_ae = %"MODALITY1", bytes = 12u64, "stored");
            tracing::warn!(_hidden = 1, "r#type" = "x", "odd names");
        });
        let seen = seen.0.lock().unwrap();
        assert_eq!(
            seen[0].0,
            "stored accession=ACC1 calling_ae=MODALITY1 bytes=12"
        );
        assert_eq!(
            seen[0].1,
            [
                ("ACCESSION".to_string(), "ACC1".to_string()),
                ("CALLING_AE".into(), "MODALITY1".into()),
                ("BYTES".into(), "12".into())
            ]
        );
        assert_eq!(
            seen[1].1,
            [
                ("HIDDEN".to_string(), "1".to_string()),
                ("R_TYPE".into(), "x".into())
            ]
        );
    }

    #[test]
    fn a_journal_stream_is_recognised_by_device_and_inode() {
        let file = tempfile::tempfile().unwrap();
        let stat = rustix::fs::fstat(&file).unwrap();
        let stream = format!("{}:{}", stat.st_dev, stat.st_ino);
        assert!(is_stream(&stream, file.as_fd()));
        let other = tempfile::tempfile().unwrap();
        assert!(!is_stream(&stream, other.as_fd()));
        assert!(!is_stream("garbage", file.as_fd()));
    }
}
