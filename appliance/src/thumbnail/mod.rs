//! Thumbnails and the `study.image_received` event, made off the DICOM receive path.
//!
//! The storage SCP only records a durable job ([`jobs`], in the store's own transaction) and
//! answers the modality at once; the [`pool`] then renders the first frame
//! ([`mod@render`]), writes the JPEG beside the store, and — in one transaction — drops the job
//! and queues the image event with the thumbnail inlined
//! ([`crate::cloud::events::image_received`]). A crash between the two leaves the job, which
//! runs again on start. An object whose transfer syntax cannot be decoded is still reported,
//! with `thumbnail: null` and the reason in the log.

pub mod jobs;
pub mod pool;
pub mod render;

pub use jobs::{enqueue_job, pending_jobs, Job};
pub use pool::{Places, Pool};
pub use render::{reduced_jpeg2000, render, Rendered, ThumbnailError, HEIGHT, QUALITY};
