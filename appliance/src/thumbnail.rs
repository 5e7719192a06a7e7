//! Thumbnails and the `study.image_received` event, made off the DICOM receive path.
//!
//! The storage SCP only records a durable job ([`enqueue_job`], in the store's own transaction)
//! and answers the modality at once; a small pool of workers then decodes the first frame,
//! applies the VOI window (min/max when the object has none), inverts MONOCHROME1, scales to
//! 188 px high, encodes JPEG quality 25 (what the NHS proof of concept showed clinicians), writes
//! it beside the store, and — in one transaction — drops the job and queues the image event with
//! the thumbnail inlined. A crash between the two leaves the job, which runs again on start. An
//! object whose transfer syntax cannot be decoded is still reported, with `thumbnail: null` and
//! the reason in the log.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::uids::EXPLICIT_VR_LITTLE_ENDIAN;
use dicom_object::{open_file, DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::{ConvertOptions, PixelDecoder};
use image::codecs::jpeg::JpegEncoder;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::wire::event::{
    Dose, Event, EventBody, ImageReceived, ImageSummary, PatientSummary, SeriesSummary,
    StudySummary, Thumbnail,
};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::db::{Database, DbError};
use crate::outbox::{self, Doorbell};
use crate::storage::InstanceRecord;
use crate::worklist;

/// Thumbnail height in pixels.
pub const HEIGHT: u32 = 188;
/// JPEG quality of thumbnails.
pub const QUALITY: u8 = 25;

/// Instances waiting for their thumbnail and image event, by SOP Instance UID.
pub const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("thumbnail_jobs");

/// Why no thumbnail could be made (the image is still stored and reported).
#[derive(Debug, Error)]
pub enum ThumbnailError {
    #[error("cannot read the stored object: {0}")]
    Open(String),
    #[error("cannot decode the pixel data: {0}")]
    Decode(String),
    #[error("cannot encode the JPEG: {0}")]
    Encode(String),
}

/// An encoded thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Renders the first frame of an opened object.
pub fn render(object: &DefaultDicomObject) -> Result<Rendered, ThumbnailError> {
    // JPEG 2000 can decode at a fraction of full resolution; a 188 px thumbnail needs no more.
    if let Some(reduced) = reduced_jpeg2000(object) {
        return render_full(&reduced);
    }
    render_full(object)
}

/// Decodes, windows and scales the first frame at whatever resolution the object has.
fn render_full(object: &DefaultDicomObject) -> Result<Rendered, ThumbnailError> {
    let pixels = object
        .decode_pixel_data_frame(0)
        .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    // Default options: the object's VOI window (min/max without one), MONOCHROME1 inverted.
    let image = pixels
        .to_dynamic_image_with_options(0, &ConvertOptions::new().force_8bit())
        .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    let (width, height) = (image.width().max(1), image.height().max(1));
    let image = if height > HEIGHT {
        let new_width = ((u64::from(width) * u64::from(HEIGHT) + u64::from(height) / 2)
            / u64::from(height))
        .max(1) as u32;
        image.thumbnail_exact(new_width, HEIGHT)
    } else {
        image // never upscale a small image
    };
    let image = if image.color().has_color() {
        image::DynamicImage::ImageRgb8(image.to_rgb8())
    } else {
        image::DynamicImage::ImageLuma8(image.to_luma8())
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(&image)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(Rendered {
        jpeg,
        width: image.width(),
        height: image.height(),
    })
}

/// JPEG 2000 transfer syntaxes whose single-frame code stream can be decoded at a reduced
/// resolution (lossless and lossy, Part 1).
const JPEG2000: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// A native copy of a single-frame, single-component JPEG 2000 object, decoded at the smallest
/// resolution level still at least [`HEIGHT`] rows high; `None` when that does not apply, and
/// the caller decodes at full resolution as usual.
pub fn reduced_jpeg2000(object: &DefaultDicomObject) -> Option<DefaultDicomObject> {
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    if !JPEG2000.contains(&ts) {
        return None;
    }
    let number = |tag| object.element(tag).ok()?.to_int::<u32>().ok();
    let rows = number(tags::ROWS)?;
    if number(tags::NUMBER_OF_FRAMES).unwrap_or(1) != 1 || number(tags::SAMPLES_PER_PIXEL)? != 1 {
        return None;
    }
    let reduce = (1..=5).take_while(|r| rows >> r >= HEIGHT).last()?;
    let fragments = object.element(tags::PIXEL_DATA).ok()?.value().fragments()?;
    let code_stream: Vec<u8> = fragments.iter().flatten().copied().collect();
    let params = jpeg2k::DecodeParameters::new().reduce(reduce);
    let image = match jpeg2k::Image::from_bytes_with(&code_stream, params) {
        Ok(image) => image,
        Err(e) => {
            tracing::debug!("reduced JPEG 2000 decode failed ({e}); decoding in full");
            return None;
        }
    };
    let component = image.components().first()?;
    let signed = component.is_signed();
    let samples: Vec<u16> = component
        .data()
        .iter()
        .map(|&v| {
            if signed {
                v as i16 as u16
            } else {
                v.clamp(0, 65535) as u16
            }
        })
        .collect();
    let mut reduced = InMemDicomObject::new_empty();
    // Everything the pixel pipeline reads, except the pixel data and its size.
    for tag in [
        tags::SOP_CLASS_UID,
        tags::SOP_INSTANCE_UID,
        tags::PHOTOMETRIC_INTERPRETATION,
        tags::BITS_STORED,
        tags::HIGH_BIT,
        tags::PIXEL_REPRESENTATION,
        tags::RESCALE_INTERCEPT,
        tags::RESCALE_SLOPE,
        tags::WINDOW_CENTER,
        tags::WINDOW_WIDTH,
        tags::VOILUT_FUNCTION,
        tags::VOILUT_SEQUENCE,
    ] {
        if let Ok(element) = object.element(tag) {
            reduced.put(element.clone());
        }
    }
    reduced.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    reduced.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    reduced.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(component.height() as u16),
    ));
    reduced.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(component.width() as u16),
    ));
    reduced.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(samples.into()),
    ));
    reduced
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(object.meta().media_storage_sop_class_uid())
                .media_storage_sop_instance_uid(object.meta().media_storage_sop_instance_uid()),
        )
        .ok()
}

/// A durable request to thumbnail one stored instance and report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub record: InstanceRecord,
}

/// Records a job in the store's transaction; [`Worker::submit`] it after the commit.
pub fn enqueue_job(txn: &WriteTransaction, record: &InstanceRecord) -> Result<(), DbError> {
    let mut table = txn.open_table(JOBS)?;
    let bytes = serde_json::to_vec(&Job {
        record: record.clone(),
    })
    .expect("jobs serialise");
    table.insert(record.sop_instance_uid.as_str(), bytes.as_slice())?;
    Ok(())
}

/// Jobs left by a previous run.
pub fn pending_jobs(db: &Database) -> Result<Vec<Job>, DbError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(JOBS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut jobs = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        match serde_json::from_slice(value.value()) {
            Ok(job) => jobs.push(job),
            Err(e) => tracing::error!("unreadable thumbnail job {}: {e}", key.value()),
        }
    }
    Ok(jobs)
}

/// Where the worker reads objects and writes thumbnails, and what it says about itself.
#[derive(Debug, Clone)]
pub struct Places {
    /// The image store's root (`STATE_DIR/storage`).
    pub storage: PathBuf,
    /// `STATE_DIR/thumbnails`.
    pub thumbnails: PathBuf,
    /// This gateway's name, as `source_system` of its events.
    pub source_system: String,
}

/// A bounded pool of thumbnail workers fed through a channel.
#[derive(Clone)]
pub struct Worker {
    queue: mpsc::UnboundedSender<Task>,
    pool: Arc<Pool>,
}

/// What a worker thread is told to do next.
enum Task {
    Run(Box<Job>),
    /// Only wakes a waiting thread so that it sees the pool is stopping.
    Wake,
}

struct Pool {
    stopping: AtomicBool,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Worker {
    /// Starts `threads` blocking workers and resubmits the jobs a previous run left.
    pub fn start(
        db: Arc<Database>,
        places: Places,
        doorbell: Doorbell,
        threads: usize,
    ) -> Result<Worker, DbError> {
        let (queue, receiver) = mpsc::unbounded_channel::<Task>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let pool = Arc::new(Pool {
            stopping: AtomicBool::new(false),
            threads: std::sync::Mutex::new(Vec::new()),
        });
        for _ in 0..threads.max(1) {
            let receiver = receiver.clone();
            let db = db.clone();
            let places = places.clone();
            let doorbell = doorbell.clone();
            let pool_ref = pool.clone();
            let handle = std::thread::Builder::new()
                .name("thumbnail".into())
                .spawn(move || loop {
                    let task = receiver.lock().expect("queue lock").blocking_recv();
                    if pool_ref.stopping.load(Ordering::SeqCst) {
                        return; // queued jobs stay in the table for the next start
                    }
                    let Some(Task::Run(job)) = task else { continue };
                    if let Err(e) = process(&db, &places, &job) {
                        // The job stays in the table: it runs again on the next start.
                        tracing::error!(
                            sop_instance_uid = %job.record.sop_instance_uid,
                            "image event not queued: {e}"
                        );
                    } else {
                        doorbell.ring();
                    }
                })
                .expect("a thread can be spawned");
            pool.threads.lock().expect("pool lock").push(handle);
        }
        let worker = Worker { queue, pool };
        let leftover = pending_jobs(&db)?;
        if !leftover.is_empty() {
            tracing::info!(
                "resuming {} thumbnail job(s) from the last run",
                leftover.len()
            );
        }
        for job in leftover {
            worker.submit(job);
        }
        Ok(worker)
    }

    /// Queues a committed job.
    pub fn submit(&self, job: Job) {
        let _ = self.queue.send(Task::Run(Box::new(job)));
    }

    /// Lets the job in hand finish and stops the workers; queued jobs wait in the table for the
    /// next start. Blocking: call from `spawn_blocking` or outside the runtime.
    pub fn stop(&self) {
        self.pool.stopping.store(true, Ordering::SeqCst);
        let threads: Vec<_> = self
            .pool
            .threads
            .lock()
            .expect("pool lock")
            .drain(..)
            .collect();
        for _ in &threads {
            // One wake-up per thread, in case it is waiting for work.
            let _ = self.queue.send(Task::Wake);
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Renders one job's thumbnail and queues its image event.
fn process(db: &Database, places: &Places, job: &Job) -> Result<(), DbError> {
    let record = &job.record;
    let path = places.storage.join(&record.file_path);
    let started = std::time::Instant::now();
    let opened = open_file(&path).map_err(|e| ThumbnailError::Open(e.to_string()));
    let (thumbnail, extra) = match opened {
        Ok(object) => {
            let extra = Extra::read(&object);
            let thumbnail = match render(&object).and_then(|r| save(places, record, r)) {
                Ok(thumbnail) => Some(thumbnail),
                Err(e) => {
                    tracing::warn!(
                        sop_instance_uid = %record.sop_instance_uid,
                        transfer_syntax = %record.transfer_syntax,
                        "no thumbnail for {}: {e}",
                        record.sop_instance_uid
                    );
                    None
                }
            };
            (thumbnail, extra)
        }
        Err(e) => {
            tracing::warn!(sop_instance_uid = %record.sop_instance_uid, "no thumbnail: {e}");
            (None, Extra::default())
        }
    };
    tracing::debug!(
        sop_instance_uid = %record.sop_instance_uid,
        "thumbnail step took {} ms",
        started.elapsed().as_millis()
    );
    db.write(|txn| {
        let item = match &record.accession_number {
            Some(accession) => worklist::get_in(txn, accession)?,
            None => None,
        };
        let event = image_event(
            &places.source_system,
            record,
            &extra,
            item.as_ref(),
            thumbnail,
        );
        let order_key = record
            .accession_number
            .clone()
            .unwrap_or_else(|| record.study_instance_uid.clone());
        outbox::enqueue(txn, event, &order_key)?;
        txn.open_table(JOBS)?
            .remove(record.sop_instance_uid.as_str())?;
        Ok(())
    })
}

/// Writes the JPEG beside the store (temporary file, then rename) and inlines it.
fn save(
    places: &Places,
    record: &InstanceRecord,
    rendered: Rendered,
) -> Result<Thumbnail, ThumbnailError> {
    let relative = Path::new(&record.file_path).with_extension("jpg");
    let path = places.thumbnails.join(relative);
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("thumbnail paths have a parent");
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(&rendered.jpeg)?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| ThumbnailError::Encode(format!("writing {}: {e}", path.display())))?;
    Ok(Thumbnail {
        format: "jpeg".into(),
        width: rendered.width,
        height: rendered.height,
        data: base64::engine::general_purpose::STANDARD.encode(&rendered.jpeg),
    })
}

/// Attributes the event carries that the index does not keep.
#[derive(Debug, Clone, Default)]
struct Extra {
    instance_number: Option<i64>,
    series_number: Option<i64>,
    series_description: Option<String>,
    study_date: Option<String>,
    study_time: Option<String>,
    study_description: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
}

impl Extra {
    fn read(object: &DefaultDicomObject) -> Extra {
        let text = |tag| crate::storage::index::text(object, tag);
        let number = |tag| text(tag).and_then(|s| s.parse::<i64>().ok());
        Extra {
            instance_number: number(tags::INSTANCE_NUMBER),
            series_number: number(tags::SERIES_NUMBER),
            series_description: text(tags::SERIES_DESCRIPTION),
            study_date: text(tags::STUDY_DATE),
            study_time: text(tags::STUDY_TIME),
            study_description: text(tags::STUDY_DESCRIPTION),
            birth_date: text(tags::PATIENT_BIRTH_DATE),
            sex: text(tags::PATIENT_SEX),
        }
    }
}

fn image_event(
    source_system: &str,
    record: &InstanceRecord,
    extra: &Extra,
    item: Option<&worklist::WorklistEntry>,
    thumbnail: Option<Thumbnail>,
) -> Event {
    let received_at = OffsetDateTime::parse(&record.received_at, &Rfc3339)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let participant = PatientSummary {
        patient_id: record
            .patient_id
            .clone()
            .or_else(|| item.map(|i| i.participant.nhs_number.clone()))
            .unwrap_or_default(),
        name: record
            .patient_name
            .clone()
            .or_else(|| item.map(|i| i.participant.name.clone()))
            .unwrap_or_default(),
        birth_date: extra
            .birth_date
            .clone()
            .or_else(|| item.map(|i| i.participant.birth_date.clone())),
        sex: extra
            .sex
            .clone()
            .or_else(|| item.map(|i| i.participant.sex.clone())),
    };
    Event::new(
        source_system,
        EventBody::ImageReceived(Box::new(ImageReceived {
            action_id: item.and_then(|i| i.action_id),
            participant,
            study: StudySummary {
                study_instance_uid: record.study_instance_uid.clone(),
                accession_number: record.accession_number.clone(),
                date: extra.study_date.clone(),
                time: extra.study_time.clone(),
                description: extra
                    .study_description
                    .clone()
                    .or_else(|| item.map(|i| i.procedure.study_description.clone())),
            },
            series: SeriesSummary {
                series_instance_uid: record.series_instance_uid.clone(),
                number: extra.series_number,
                modality: record.modality.clone(),
                description: extra.series_description.clone(),
            },
            image: ImageSummary {
                sop_instance_uid: record.sop_instance_uid.clone(),
                sop_class_uid: record.sop_class_uid.clone(),
                instance_number: extra.instance_number,
                rows: record.rows.map(u32::from),
                columns: record.columns.map(u32::from),
                transfer_syntax_uid: record.transfer_syntax.clone(),
                view: record.view_position.clone(),
                laterality: record.image_laterality.clone(),
                dose: Dose {
                    kvp: record.kvp,
                    exposure_uas: record.exposure_uas,
                    organ_dose_dgy: record.organ_dose_dgy,
                    entrance_dose_mgy: record.entrance_dose_mgy,
                    anode: record.anode_target_material.clone(),
                    filter: record.filter_material.clone(),
                    body_part_thickness_mm: record.compression_thickness_mm,
                    compression_force_n: record.compression_force_n,
                },
                received_at,
                thumbnail,
            },
        })),
    )
}
