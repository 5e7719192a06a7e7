//! Where log lines go. Under systemd, stderr is a journald stream: each line starts with its
//! syslog priority (`<3>` error … `<7>` debug), which journald turns into `PRIORITY=`, so
//! `journalctl -u gateway -p err` finds the errors; no timestamp, journald adds its own. The
//! fields are written into the line (`storage SCP listening pacs_addr=0.0.0.0:4244`), because
//! plain `journalctl` shows only the message text. Elsewhere: ordinary timestamped stderr lines.
//!
//! Secrets stay out: relay keys, tokens and signing keys are never put in a log line, their
//! `Debug` impls are redacted, and the websocket library, which would log the handshake with its
//! token, is held at info (`tests/service.rs` runs the binary at `trace` and greps).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if stderr_is_journal() {
        let inner = Format::default()
            .without_time()
            .with_level(false)
            .with_target(false);
        builder.event_format(Priority(inner)).init();
    } else {
        builder.init();
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

/// Formats each event with the wrapped format as one line, prefixed with its priority.
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // One event, one journal entry: journald splits at newlines and would give the
        // continuation lines the default priority, so embedded newlines are escaped.
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n').replace('\n', "\\n");
        writeln!(writer, "<{}>{line}", priority(event.metadata().level()))
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
