//! Thumbnails and the `study.image_received` event, made off the DICOM receive path.
//!
//! The storage SCP only records a durable job ([`jobs`], in the store's own transaction) and
//! answers the modality at once; the [`pool`] then has the first frame read ([`first_frame`])
//! and rendered ([`mod@render`]: a grey frame is mapped to display levels by [`grey`] and
//! scaled by [`downscale`] straight from its samples) in a child process with resource limits ([`child`]), writes the JPEG beside
//! the store, and — in one transaction — drops the job and queues the image event with the
//! thumbnail inlined ([`crate::cloud::events::image_received`]). A crash between the two leaves
//! the job, which runs again on start. An object whose transfer syntax cannot be decoded is
//! still reported, with `thumbnail: null` and the reason in `thumbnail_error`; one whose
//! renderer keeps crashing is quarantined after [`jobs::MAX_ATTEMPTS`] and reported the same
//! way.

pub mod child;
pub mod codecs;
pub mod downscale;
pub mod first_frame;
pub mod grey;
pub mod jobs;
pub mod pool;
pub mod render;

pub use child::{Limits, Renderer};
pub use jobs::{all_jobs, enqueue_job, pending_jobs, Job};
pub use pool::{Monitor, Places, Pool, WorkerStatus};
pub use render::{reduced_jpeg2000, render, Rendered, ThumbnailError, HEIGHT, QUALITY};
