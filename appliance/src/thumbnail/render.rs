//! One stored object in, one small JPEG out: decode the first frame (a JPEG 2000 code stream at
//! a reduced resolution when that is enough), apply the VOI window (min/max when the object has
//! none), invert MONOCHROME1, scale to [`HEIGHT`] px high and encode at JPEG [`QUALITY`] (what the
//! NHS proof of concept showed clinicians). Pure: no files, no database.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::uids::EXPLICIT_VR_LITTLE_ENDIAN;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::{ConvertOptions, PixelDecoder};
use image::codecs::jpeg::JpegEncoder;
use thiserror::Error;

/// Thumbnail height in pixels.
pub const HEIGHT: u32 = 188;
/// JPEG quality of thumbnails.
pub const QUALITY: u8 = 25;

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
