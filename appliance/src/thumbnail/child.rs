//! Rendering in a child process, as browsers isolate their decoders: the pixel data came from a
//! peer, and openjp2 (C) decodes it. A panic, a stack overflow, a segfault or an abort there
//! cannot be caught in-process; in a child it costs that one attempt, and the parent reads why
//! from the exit status.
//!
//! The parent runs `PROGRAM render-thumbnail --memory-mib M --cpu-secs S FILE` (PROGRAM is the
//! gateway binary itself, [`crate::config::Config::thumbnail_renderer`]). Its limits — address
//! space (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`), no core dumps — are set by the child itself
//! before it reads a byte of the object; it then reads the object's attributes and first frame
//! ([`super::first_frame`]), renders them and writes one
//! JSON [`Reply`] on stdout: the JPEG and the attributes the image event carries, or the
//! renderer's typed refusal. Its stderr is the
//! gateway's (the journal), so a crash message lands beside the parent's log line; its
//! environment holds only `MIMALLOC_ARENA_RESERVE=0` and, in tests, [`TEST_FAULT_VAR`] (no keys
//! while it decodes a peer's bytes). The parent kills a child
//! that outlives [`Limits::timeout`], and the child dies with the parent (`PR_SET_PDEATHSIG`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::first_frame;
use super::render::{render, Rendered};
use crate::cloud::events::ImageExtra;

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "render-thumbnail";

/// Exit status of a child that could not lower its limits (it renders nothing without them).
pub const EXIT_NO_LIMITS: i32 = 3;

/// Test-only: `MODE:SOP_INSTANCE_UID` makes the render child fail on that object — `abort`
/// (SIGABRT, as a C codec's assertion), `memory` (allocates until its `RLIMIT_AS` stops it)
/// or `hang` (spins until its CPU limit or the parent's timeout ends it). Read only by the
/// child, so the gateway's own process is never at risk from it.
pub const TEST_FAULT_VAR: &str = "GATEWAY_TEST_RENDER_FAULT";

/// The largest reply read from a child: a thumbnail is tens of KB.
const MAX_REPLY_BYTES: u64 = 16 << 20;

/// What one render child may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_mib: u64,
    pub timeout: Duration,
}

/// How to run a render child.
#[derive(Debug, Clone)]
pub struct Renderer {
    pub program: PathBuf,
    pub limits: Limits,
}

/// The child's answer on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Rendered {
        /// Base64 of the JPEG.
        jpeg: String,
        width: u32,
        height: u32,
        extra: ImageExtra,
    },
    /// The renderer's considered answer: no thumbnail for this object (not retried).
    NoThumbnail { reason: String, extra: ImageExtra },
}

/// What the parent learnt from one child.
#[derive(Debug)]
pub enum Outcome {
    Rendered {
        rendered: Rendered,
        extra: ImageExtra,
    },
    /// The object cannot be thumbnailed (an unsupported transfer syntax…): reported at once.
    NoThumbnail { reason: String, extra: ImageExtra },
    /// The child crashed, was killed, timed out or could not start: a failed attempt.
    Crashed(String),
}

impl Renderer {
    /// Renders `object` in a child and waits for it (at most [`Limits::timeout`]).
    pub fn render(&self, object: &Path) -> Outcome {
        let limits = &self.limits;
        let mut command = Command::new(&self.program);
        // The child needs none of the gateway's settings, and should not hold its keys while
        // it decodes a peer's bytes.
        command.env_clear();
        if let Some(fault) = std::env::var_os(TEST_FAULT_VAR) {
            command.env(TEST_FAULT_VAR, fault);
        }
        // The child lowers its own limits first thing in `main`. For those to bind it, nothing
        // may reserve address space before: the static build's allocator (mimalloc) reserves a
        // 1 GiB arena at its first allocation, before `main`, unless told not to; without an
        // arena it maps what it needs piece by piece, each map under RLIMIT_AS. Setting the
        // limits between fork and exec instead (`pre_exec`) would force a fork of the whole
        // gateway per thumbnail (copying its page tables, then copy-on-write faults in the
        // receive path); without it std spawns with posix_spawn (vfork-like, no copy).
        command.env("MIMALLOC_ARENA_RESERVE", "0");
        let spawned = command
            .arg(SUBCOMMAND)
            .arg("--memory-mib")
            .arg(limits.memory_mib.to_string())
            .arg("--cpu-secs")
            .arg(limits.timeout.as_secs().max(1).to_string())
            .arg(object)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Outcome::Crashed(format!(
                    "cannot start the renderer {}: {e}",
                    self.program.display()
                ))
            }
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        // Reads until the child closes stdout (it exits, or dies); the wait below bounds it.
        let reader = std::thread::Builder::new()
            .name("thumbnail-reply".into())
            .spawn(move || {
                let mut reply = Vec::new();
                let read = stdout.take(MAX_REPLY_BYTES).read_to_end(&mut reply);
                let _ = sender.send(read.map(|_| reply));
            });
        if let Err(e) = reader {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Crashed(format!("cannot read the renderer's reply: {e}"));
        }
        let reply = match receiver.recv_timeout(limits.timeout) {
            Ok(reply) => reply,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Crashed(format!(
                    "the renderer was still running after {} s and was killed \
                     (THUMBNAIL_TIMEOUT_SECS)",
                    limits.timeout.as_secs()
                ));
            }
        };
        let status = match child.wait() {
            Ok(status) => status,
            Err(e) => return Outcome::Crashed(format!("cannot wait for the renderer: {e}")),
        };
        if let Some(why) = failed_status(status, limits) {
            return Outcome::Crashed(why);
        }
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => return Outcome::Crashed(format!("cannot read the renderer's reply: {e}")),
        };
        match serde_json::from_slice::<Reply>(&reply) {
            Ok(Reply::Rendered {
                jpeg,
                width,
                height,
                extra,
            }) => match base64::engine::general_purpose::STANDARD.decode(jpeg) {
                Ok(jpeg) => Outcome::Rendered {
                    rendered: Rendered {
                        jpeg,
                        width,
                        height,
                    },
                    extra,
                },
                Err(e) => Outcome::Crashed(format!("the renderer's JPEG is not base64: {e}")),
            },
            Ok(Reply::NoThumbnail { reason, extra }) => Outcome::NoThumbnail { reason, extra },
            Err(e) => Outcome::Crashed(format!(
                "the renderer's reply is unreadable ({} bytes): {e}",
                reply.len()
            )),
        }
    }
}

/// Words for an exit status that is not success.
fn failed_status(status: std::process::ExitStatus, limits: &Limits) -> Option<String> {
    use std::os::unix::process::ExitStatusExt as _;
    if status.success() {
        return None;
    }
    if let Some(signal) = status.signal() {
        return Some(format!(
            "the renderer was killed by signal {signal}{}",
            signal_words(signal, limits)
        ));
    }
    Some(match status.code() {
        Some(EXIT_NO_LIMITS) => "the renderer could not set its resource limits (see its \
            message in the log; the systemd unit's SystemCallFilter must allow setrlimit)"
            .to_string(),
        Some(101) => "the renderer panicked (its message is in the log)".to_string(),
        Some(code) => format!("the renderer exited with status {code}"),
        None => "the renderer ended without a status".to_string(),
    })
}

fn signal_words(signal: i32, limits: &Limits) -> String {
    match signal {
        6 => format!(
            " (SIGABRT: an abort, e.g. an allocation beyond its {} MiB limit, \
             THUMBNAIL_MEMORY_MIB)",
            limits.memory_mib
        ),
        9 => " (SIGKILL: its CPU limit, or the kernel's out-of-memory killer)".into(),
        11 => " (SIGSEGV: a crash in the decoder, or a stack overflow)".into(),
        7 => " (SIGBUS)".into(),
        4 => " (SIGILL)".into(),
        24 => format!(
            " (SIGXCPU: more than {} CPU seconds, THUMBNAIL_TIMEOUT_SECS)",
            limits.timeout.as_secs()
        ),
        _ => String::new(),
    }
}

/// The render child's nice value (see [`run_child`]).
pub const THUMBNAIL_NICE: i32 = 10;

/// The child's side: `gateway render-thumbnail --memory-mib M --cpu-secs S FILE`. Returns the
/// process exit status.
pub fn run_child(memory_mib: u64, cpu_secs: u64, object: &Path) -> i32 {
    if let Err(e) = lower_limits(memory_mib, cpu_secs) {
        eprintln!("gateway render-thumbnail: {e}");
        return EXIT_NO_LIMITS;
    }
    // A gateway killed meanwhile takes its render child with it, rather than leaving it to
    // spin until its CPU limit. Best effort: the limits above are what bound the child.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    // A thumbnail can wait; the next C-STORE's answer cannot. Nice 10 gives the receive path
    // (nice 0) the cores first when both want them, and the thumbnail all they have otherwise.
    // Best effort: an unprivileged process may always lower its own priority.
    let _ = rustix::process::setpriority_process(None, THUMBNAIL_NICE);
    let reply = match first_frame::open(object) {
        Err(e) => Reply::NoThumbnail {
            reason: e.to_string(),
            extra: ImageExtra::default(),
        },
        Ok(opened) => {
            let extra = ImageExtra::read(&opened);
            test_fault(&opened);
            match render(&opened) {
                Ok(rendered) => Reply::Rendered {
                    jpeg: base64::engine::general_purpose::STANDARD.encode(&rendered.jpeg),
                    width: rendered.width,
                    height: rendered.height,
                    extra,
                },
                Err(e) => Reply::NoThumbnail {
                    reason: e.to_string(),
                    extra,
                },
            }
        }
    };
    let text = serde_json::to_vec(&reply).expect("replies serialise");
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&text)
        .and_then(|_| stdout.flush())
        .is_err()
    {
        return 1;
    }
    0
}

/// The limits, in words when one cannot be set.
fn lower_limits(memory_mib: u64, cpu_secs: u64) -> Result<(), String> {
    for (resource, name, current, maximum) in limit_table(memory_mib, cpu_secs) {
        set_limit(resource, current, maximum)
            .map_err(|e| format!("cannot set {name} to {current}: {e}"))?;
    }
    Ok(())
}

/// Address space, CPU time (SIGXCPU at the soft limit, SIGKILL a second later), and no core
/// file (a core of a decoder fed patient data would leave pixel data in the crash directory).
fn limit_table(
    memory_mib: u64,
    cpu_secs: u64,
) -> [(rustix::process::Resource, &'static str, u64, u64); 3] {
    use rustix::process::Resource;
    let memory = memory_mib.saturating_mul(1 << 20);
    [
        (Resource::Core, "RLIMIT_CORE", 0, 0),
        (Resource::As, "RLIMIT_AS", memory, memory),
        (Resource::Cpu, "RLIMIT_CPU", cpu_secs, cpu_secs + 1),
    ]
}

fn set_limit(
    resource: rustix::process::Resource,
    current: u64,
    maximum: u64,
) -> Result<(), rustix::io::Errno> {
    rustix::process::setrlimit(
        resource,
        rustix::process::Rlimit {
            current: Some(current),
            maximum: Some(maximum),
        },
    )
}

/// See [`TEST_FAULT_VAR`].
fn test_fault(object: &dicom_object::DefaultDicomObject) {
    let Ok(fault) = std::env::var(TEST_FAULT_VAR) else {
        return;
    };
    let Some((mode, uid)) = fault.split_once(':') else {
        return;
    };
    let this = crate::storage::index::text(object, dicom_dictionary_std::tags::SOP_INSTANCE_UID);
    if this.as_deref() != Some(uid) {
        return;
    }
    eprintln!("gateway render-thumbnail: {TEST_FAULT_VAR}={fault}: failing on purpose");
    match mode {
        "abort" => std::process::abort(),
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Written, not only reserved, as a decoder's buffers are.
                hoard.push(vec![1u8; 16 << 20]);
            }
        }
        "hang" => loop {
            std::hint::spin_loop();
        },
        _ => {}
    }
}
