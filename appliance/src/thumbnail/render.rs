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

use super::codecs;
use super::downscale::downscale;
use super::grey::{Frame, GreyLevels, Samples};

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

/// Largest decoded frame rendered (rows × columns × samples × bytes per sample). A 4096 × 5120
/// 16-bit mammogram is 40 MiB; a peer's Rows = Columns = 65535 with three 16-bit samples would
/// make a codec allocate 24 GiB from a few header bytes.
pub const MAX_FRAME_BYTES: u64 = 256 << 20;

/// Renders the first frame of an opened object.
pub fn render(object: &DefaultDicomObject) -> Result<Rendered, ThumbnailError> {
    check_image_attributes(object)?;
    // JPEG 2000 can decode at a fraction of full resolution; a 188 px thumbnail needs no more.
    // A panic in that decoder (pure Rust openjp2) falls back to the full decode, guarded too.
    let reduced = std::panic::catch_unwind(|| reduced_jpeg2000(object))
        .ok()
        .flatten();
    if let Some(reduced) = reduced {
        return render_full(&reduced);
    }
    render_full(object)
}

/// Refuses, before any decoder runs, the image attributes the pixel pipeline cannot take: the
/// fuzzer found dicom-pixeldata's lookup table panicking on Bits Stored 0 or over 32 (and
/// allocating 2^Bits Stored entries), and codecs sizing buffers from Rows × Columns alone.
fn check_image_attributes(object: &DefaultDicomObject) -> Result<(), ThumbnailError> {
    let number = |tag, name: &str| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or_else(|| ThumbnailError::Decode(format!("no valid {name}")))
    };
    let refuse = |why: String| Err(ThumbnailError::Decode(why));
    let rows = number(tags::ROWS, "Rows")?;
    let columns = number(tags::COLUMNS, "Columns")?;
    let samples = number(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?;
    let allocated = number(tags::BITS_ALLOCATED, "Bits Allocated")?;
    let stored = number(tags::BITS_STORED, "Bits Stored")?;
    let high_bit = number(tags::HIGH_BIT, "High Bit")?;
    if !matches!(samples, 1 | 3) {
        return refuse(format!("Samples per Pixel {samples} (1 or 3 expected)"));
    }
    if !matches!(allocated, 8 | 16) {
        return refuse(format!("Bits Allocated {allocated} (8 or 16 expected)"));
    }
    if stored == 0 || stored > allocated || high_bit >= allocated || high_bit + 1 < stored {
        return refuse(format!(
            "Bits Stored {stored} with High Bit {high_bit} do not fit Bits Allocated {allocated}"
        ));
    }
    let bytes =
        u64::from(rows) * u64::from(columns) * u64::from(samples) * u64::from(allocated / 8);
    if bytes == 0 || bytes > MAX_FRAME_BYTES {
        return refuse(format!(
            "a {rows} × {columns} frame of {samples} × {allocated}-bit samples is {bytes} bytes \
             (1 to {MAX_FRAME_BYTES} rendered)"
        ));
    }
    check_jpeg2000_header(object, rows, columns, samples)?;
    check_jpeg_header(object, rows, columns, samples)?;
    check_rle_header(object, samples * (allocated / 8))
}

/// JPEG (Part 10 processes 1, 2/4, 14, 14 SV1) and JPEG-LS transfer syntaxes.
const JPEG_ANY: [&str; 6] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
];

/// The JPEG decoders size their work by the stream's frame header (SOF), as the JPEG 2000 one
/// does by SIZ: the fuzzer found a 300-byte stream keeping jpeg-decoder busy for 20 s on the
/// image its SOF declared. The SOF must describe the frame the attributes do (PS3.5 8.2.1).
fn check_jpeg_header(
    object: &DefaultDicomObject,
    rows: u32,
    columns: u32,
    samples: u32,
) -> Result<(), ThumbnailError> {
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    if !JPEG_ANY.contains(&ts) {
        return Ok(());
    }
    let refuse = |why: String| Err(ThumbnailError::Decode(format!("JPEG pixel data: {why}")));
    let Some(stream) = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
        .and_then(|f| f.first())
    else {
        return refuse("no fragment".into());
    };
    if stream.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return refuse("the fragment does not start with a JPEG stream (SOI)".into());
    }
    // Marker segments up to the frame header: FF, marker, 2-byte length counting itself.
    let mut at = 2;
    loop {
        let Some(&[0xFF, marker, a, b]) = stream.get(at..at + 4) else {
            return refuse("no frame header (SOF) before the end of the fragment".into());
        };
        let is_sof = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC))
            || marker == 0xF7;
        if is_sof {
            let Some(&[_, h1, h2, w1, w2, components]) = stream.get(at + 4..at + 10) else {
                return refuse("the frame header is cut short".into());
            };
            let (height, width) = (u16::from_be_bytes([h1, h2]), u16::from_be_bytes([w1, w2]));
            if (u32::from(height), u32::from(width), u32::from(components))
                != (rows, columns, samples)
            {
                return refuse(format!(
                    "the stream is {width} × {height} with {components} components; the \
                     object says {columns} × {rows} with {samples}"
                ));
            }
            return Ok(());
        }
        if marker == 0xDA {
            return refuse("a scan (SOS) before the frame header".into());
        }
        at += 2 + usize::from(u16::from_be_bytes([a, b]));
    }
}

/// dicom-rs' RLE adapter allocates one offset per segment its header declares (up to 2^32) and
/// slices the fragment at those offsets unchecked: the fuzzer found an 8-byte fragment that made
/// it allocate 5.5 GB (an abort, not a panic, where memory is short). PS3.5 G.3: a frame is one
/// fragment with a 64-byte header of one segment per sample byte (at most 15), the first at 64.
fn check_rle_header(object: &DefaultDicomObject, segments: u32) -> Result<(), ThumbnailError> {
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    if ts != "1.2.840.10008.1.2.5" {
        return Ok(());
    }
    let refuse = |why: &str| Err(ThumbnailError::Decode(format!("RLE pixel data: {why}")));
    let Some(fragment) = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
        .and_then(|f| f.first())
    else {
        return refuse("no fragment");
    };
    let u32_at = |i: usize| {
        fragment
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if fragment.len() < 64 {
        return refuse("a fragment shorter than its 64-byte header");
    }
    if u32_at(0) != Some(segments as usize) {
        return refuse(&format!(
            "the header declares {} segments, the image attributes {segments}",
            u32_at(0).unwrap_or_default()
        ));
    }
    let offsets: Vec<usize> = (1..=segments as usize).filter_map(u32_at).collect();
    let ordered = offsets.windows(2).all(|w| w[0] < w[1]);
    if offsets.first() != Some(&64) || !ordered || offsets.iter().any(|&o| o >= fragment.len()) {
        return refuse("segment offsets out of order or past the fragment");
    }
    Ok(())
}

/// Most tiles a JPEG 2000 code stream may have (a single-tile image is usual; 1024 × 1024 px tiles
/// of the largest frame accepted are a few hundred).
const MAX_JPEG2000_TILES: u64 = 4096;

/// A JPEG 2000 decoder sizes its work by the code stream's own SIZ marker, not by the object's
/// attributes: the fuzzer found a 100-byte stream declaring 65792 × 786432 pixels that kept the
/// decoder busy for minutes. PS3.5 8.2.4 requires the two to agree; so does this check, before
/// any decoder sees the stream.
fn check_jpeg2000_header(
    object: &DefaultDicomObject,
    rows: u32,
    columns: u32,
    samples: u32,
) -> Result<(), ThumbnailError> {
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    if !JPEG2000_ANY.contains(&ts) {
        return Ok(());
    }
    let refuse = |why: String| Err(ThumbnailError::Decode(why));
    let first = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
        .and_then(|f| f.first());
    let Some(stream) = first else {
        return refuse("JPEG 2000 pixel data without a fragment".into());
    };
    let u32_at = |at: usize| {
        stream
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    // SOC, then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz.
    if stream.get(..4) != Some(&[0xFF, 0x4F, 0xFF, 0x51][..]) {
        return refuse("the JPEG 2000 fragment does not start with a code stream header".into());
    }
    let (Some(x), Some(y), Some(x0), Some(y0), Some(xt), Some(yt), Some(components)) = (
        u32_at(8),
        u32_at(12),
        u32_at(16),
        u32_at(20),
        u32_at(24),
        u32_at(28),
        stream.get(40..42).map(|b| u16::from_be_bytes([b[0], b[1]])),
    ) else {
        return refuse("the JPEG 2000 code stream header is cut short".into());
    };
    let (width, height) = (x.checked_sub(x0), y.checked_sub(y0));
    if width != Some(columns) || height != Some(rows) || u32::from(components) != samples {
        return refuse(format!(
            "the JPEG 2000 code stream is {} × {} with {components} components; the object \
             says {columns} × {rows} with {samples}",
            width.map_or("?".into(), |w| w.to_string()),
            height.map_or("?".into(), |h| h.to_string()),
        ));
    }
    let tiles = |size: u32, tile: u32| u64::from(size).div_ceil(u64::from(tile.max(1)));
    let count = tiles(columns, xt) * tiles(rows, yt);
    if xt == 0 || yt == 0 || count > MAX_JPEG2000_TILES {
        return refuse(format!(
            "the JPEG 2000 code stream has {count} tiles of {xt} × {yt} (at most \
             {MAX_JPEG2000_TILES} decoded)"
        ));
    }
    Ok(())
}

/// The first frame decoded and converted to an 8-bit image. dicom-rs' codecs index buffers by
/// what the peer's code stream and attributes declare and panic when they disagree (the fuzzer
/// found the JPEG 2000 and RLE adapters doing so); such a panic costs this one thumbnail, as
/// any other decode error does, and never the worker thread.
fn decode_first_frame(object: &DefaultDicomObject) -> Result<image::DynamicImage, ThumbnailError> {
    guarded("the pixel data decoder", || {
        let pixels = object
            .decode_pixel_data_frame(0)
            .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
        // Default options: the object's VOI window (min/max without one), MONOCHROME1 inverted.
        pixels
            .to_dynamic_image_with_options(0, &ConvertOptions::new().force_8bit())
            .map_err(|e| ThumbnailError::Decode(e.to_string()))
    })
}

/// Runs a decoder over peer bytes; a panic in it is a decode error of this object only.
fn guarded<T>(
    what: &str,
    decode: impl FnOnce() -> Result<T, ThumbnailError>,
) -> Result<T, ThumbnailError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        Err(ThumbnailError::Decode(format!(
            "{what} failed on this object: {message}"
        )))
    })
}

/// Decodes, windows and scales the first frame at whatever resolution the object has.
fn render_full(object: &DefaultDicomObject) -> Result<Rendered, ThumbnailError> {
    if is_grey(object) {
        return render_grey(object);
    }
    // Colour (and palette) images: dicom-pixeldata's conversion to an 8-bit image, then
    // `image`'s resampling. They are rare here and small, so its copies of the frame matter
    // less than for a grey mammogram.
    let image = decode_first_frame(object)?;
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
    encode(&image)
}

fn encode(image: &image::DynamicImage) -> Result<Rendered, ThumbnailError> {
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(image)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(Rendered {
        jpeg,
        width: image.width(),
        height: image.height(),
    })
}

/// One sample per pixel, MONOCHROME1 or MONOCHROME2: every mammogram.
fn is_grey(object: &DefaultDicomObject) -> bool {
    let photometric = object
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok().map(|p| p.trim().to_string()));
    let samples = object
        .element(tags::SAMPLES_PER_PIXEL)
        .ok()
        .and_then(|e| e.to_int::<u16>().ok());
    samples == Some(1) && matches!(photometric.as_deref(), Some("MONOCHROME1" | "MONOCHROME2"))
}

/// Native little-endian transfer syntaxes, whose pixel data the renderer reads in place.
const NATIVE_LITTLE_ENDIAN: [&str; 2] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];

/// A grey frame windowed and scaled straight from its samples ([`super::grey`],
/// [`super::downscale`]): native pixel data is read where it lies in the object, compressed
/// pixel data is decoded once — by our own codecs ([`super::codecs`]) where they take it, else
/// by dicom-rs — and read where the decoder put it. Peak memory is the object plus, when
/// compressed, one decoded frame (and whatever a dicom-rs decoder keeps besides).
fn render_grey(object: &DefaultDicomObject) -> Result<Rendered, ThumbnailError> {
    let number = |tag| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or_else(|| ThumbnailError::Decode(format!("no valid {tag}")))
    };
    let (rows, columns) = (number(tags::ROWS)?, number(tags::COLUMNS)?);
    let allocated = number(tags::BITS_ALLOCATED)?;
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    let value = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().primitive());
    let in_place = match value {
        Some(PrimitiveValue::U8(bytes)) if NATIVE_LITTLE_ENDIAN.contains(&ts) => {
            Some(if allocated == 8 {
                Samples::U8(bytes)
            } else {
                Samples::U16Le(bytes)
            })
        }
        Some(PrimitiveValue::U16(values)) if allocated == 16 => Some(Samples::U16(values)),
        _ => None,
    };
    if let Some(samples) = in_place {
        let image = grey_image(object, Frame::new(rows, columns, samples)?)?;
        return encode(&image::DynamicImage::ImageLuma8(image));
    }
    let ours = guarded("the pixel data decoder", || {
        Ok(codecs::decode_grey(object, rows, columns))
    })?;
    let image = match ours {
        Some(decoded) => {
            let decoded = decoded?;
            grey_image(object, Frame::new(rows, columns, Samples::U16(&decoded))?)?
        }
        None => {
            let decoded = guarded("the pixel data decoder", || {
                object
                    .decode_pixel_data_frame(0)
                    .map_err(|e| ThumbnailError::Decode(e.to_string()))
            })?;
            let bytes = decoded.data();
            let samples = if decoded.bits_allocated() == 8 {
                Samples::U8(bytes)
            } else {
                Samples::U16Le(bytes)
            };
            grey_image(object, Frame::new(rows, columns, samples)?)?
        }
    };
    encode(&image::DynamicImage::ImageLuma8(image))
}

fn grey_image(
    object: &DefaultDicomObject,
    frame: Frame,
) -> Result<image::GrayImage, ThumbnailError> {
    let levels = GreyLevels::new(object, &frame)?;
    Ok(downscale(&frame, &levels, HEIGHT))
}

/// JPEG 2000 transfer syntaxes whose single-frame code stream can be decoded at a reduced
/// resolution (lossless and lossy, Part 1).
const JPEG2000: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// Every transfer syntax whose frames are JPEG 2000 code streams (Part 1, Part 2, HTJ2K).
const JPEG2000_ANY: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

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
    native_copy(object, component.height(), component.width(), samples)
}

/// A native (explicit VR little endian) single-frame copy of `object` holding decoded 16-bit
/// grey `samples` of `rows` × `columns`: what the pixel pipeline renders from a frame a codec of
/// ours decoded (a reduced JPEG 2000, a JPEG-LS frame).
fn native_copy(
    object: &DefaultDicomObject,
    rows: u32,
    columns: u32,
    samples: Vec<u16>,
) -> Option<DefaultDicomObject> {
    if u64::from(rows) * u64::from(columns) != samples.len() as u64 {
        return None;
    }
    let (rows, columns) = (u16::try_from(rows).ok()?, u16::try_from(columns).ok()?);
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
        PrimitiveValue::from(rows),
    ));
    reduced.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(columns),
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

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::PixelFragmentSequence;
    use dicom_dictionary_std::uids;

    /// A small object; `native` pixel data fills its frame, else one fragment of `fragment`.
    fn object(
        ts: &str,
        [rows, columns, samples, allocated, stored, high_bit]: [u16; 6],
        fragment: &[u8],
    ) -> DefaultDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        let sop = "2.25.7";
        let class = uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION;
        obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, class));
        obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop));
        let photometric = if samples == 3 { "RGB" } else { "MONOCHROME2" };
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            photometric,
        ));
        for (tag, value) in [
            (tags::ROWS, rows),
            (tags::COLUMNS, columns),
            (tags::SAMPLES_PER_PIXEL, samples),
            (tags::BITS_ALLOCATED, allocated),
            (tags::BITS_STORED, stored),
            (tags::HIGH_BIT, high_bit),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
        }
        if ts == EXPLICIT_VR_LITTLE_ENDIAN {
            let size = usize::from(rows)
                * usize::from(columns)
                * usize::from(samples)
                * usize::from(allocated.div_ceil(8));
            let pixels: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(pixels.into()),
            ));
        } else {
            let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment.to_vec()]);
            obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, fragments));
        }
        obj.with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(ts)
                .media_storage_sop_class_uid(class)
                .media_storage_sop_instance_uid(sop),
        )
        .unwrap()
    }

    #[test]
    fn attributes_the_pixel_pipeline_cannot_take_are_refused_before_decoding() {
        let plain = EXPLICIT_VR_LITTLE_ENDIAN;
        // [rows, columns, samples, bits allocated, bits stored, high bit], and a part of the
        // refusal (None: renders).
        #[rustfmt::skip]
        let cases: [([u16; 6], Option<&str>); 11] = [
            ([8, 6, 1, 16, 12, 11], None),
            ([8, 6, 1, 8, 8, 7], None),
            ([8, 6, 3, 8, 8, 7], None),
            ([8, 6, 1, 16, 0, 11], Some("Bits Stored 0")),
            ([8, 6, 1, 16, 17, 16], Some("Bits Stored 17")),
            ([8, 6, 1, 16, 12, 16], Some("High Bit 16")),
            ([8, 6, 1, 16, 12, 3], Some("High Bit 3")),
            ([8, 6, 1, 32, 32, 31], Some("Bits Allocated 32")),
            ([8, 6, 2, 16, 12, 11], Some("Samples per Pixel 2")),
            ([0, 6, 1, 16, 12, 11], Some("0 bytes")),
            ([65535, 65535, 3, 16, 16, 15], Some("frame of 3")),
        ];
        for (attributes, refusal) in cases {
            let ts = if attributes[0] == 65535 {
                uids::RLE_LOSSLESS
            } else {
                plain
            };
            let result = render(&object(ts, attributes, &[0; 64]));
            match (refusal, result) {
                (None, Ok(rendered)) => assert_eq!(rendered.height, 8, "{attributes:?}"),
                (Some(part), Err(ThumbnailError::Decode(why))) => {
                    assert!(why.contains(part), "{attributes:?}: {why}")
                }
                (refusal, result) => panic!("{attributes:?}: {result:?}, expected {refusal:?}"),
            }
        }
    }

    #[test]
    fn a_code_stream_must_describe_the_frame_the_attributes_do() {
        // SOF0: 8-bit, 256 × 256, one component; SIZ: 256 × 256 from offset 0, one tile.
        let jpeg = [
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0][..],
            &[
                0xFF, 0xC0, 0x00, 0x0B, 8, 0x01, 0x00, 0x01, 0x00, 1, 1, 0x11, 0,
            ],
        ]
        .concat();
        let mut j2k = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0, 0];
        for v in [256u32, 256, 0, 0, 256, 256, 0, 0] {
            j2k.extend_from_slice(&v.to_be_bytes());
        }
        j2k.extend_from_slice(&[0, 1, 7, 1, 1]);
        let cases = [
            (
                uids::JPEG_BASELINE8_BIT,
                &jpeg,
                [8, 6, 1, 8, 8, 7],
                "256 × 256",
            ),
            (
                uids::JPEG_BASELINE8_BIT,
                &jpeg,
                [256, 256, 3, 8, 8, 7],
                "1 components",
            ),
            (
                uids::JPEG2000_LOSSLESS,
                &j2k,
                [8, 6, 1, 8, 8, 7],
                "256 × 256",
            ),
        ];
        for (ts, stream, attributes, part) in cases {
            match render(&object(ts, attributes, stream)) {
                Err(ThumbnailError::Decode(why)) => assert!(why.contains(part), "{why}"),
                other => panic!("{ts} {attributes:?}: {other:?}"),
            }
        }
        // Matching headers pass the check and reach the decoder (which finds no image data).
        for (ts, stream) in [
            (uids::JPEG_BASELINE8_BIT, &jpeg),
            (uids::JPEG2000_LOSSLESS, &j2k),
        ] {
            let object = object(ts, [256, 256, 1, 8, 8, 7], stream);
            let [rows, columns, samples] = [256, 256, 1];
            assert!(
                check_jpeg_header(&object, rows, columns, samples).is_ok(),
                "{ts}"
            );
            assert!(
                check_jpeg2000_header(&object, rows, columns, samples).is_ok(),
                "{ts}"
            );
        }
    }

    #[test]
    fn a_codec_panic_on_a_malformed_fragment_is_a_decode_error() {
        // What the fuzzer found dicom-rs' RLE adapter slicing out of range on, or allocating
        // gigabytes for: a fragment shorter than its header, a header declaring 2^28 segments,
        // segments out of order. All refused by the header check or, past it, caught.
        let mut header = vec![0u8; 64];
        header[0] = 2;
        header[4] = 64;
        header[8] = 70;
        let mut reversed = header.clone();
        reversed[8] = 10;
        let mut valid_header_bad_runs = header.clone();
        valid_header_bad_runs.extend_from_slice(&[0x7f, 1, 2, 3, 4, 5, 0x80, 0x81]);
        let cases: [(&[u8], &str); 5] = [
            (&[0x01, 0x00], "shorter than its 64-byte header"),
            (&[0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0], "shorter than"),
            (
                &[[0xff, 0xff, 0xff, 0x0f].as_slice(), &[0; 60]].concat(),
                "declares 268435455",
            ),
            (&reversed, "out of order"),
            (&valid_header_bad_runs, ""),
        ];
        for (fragment, part) in cases {
            let result = render(&object(uids::RLE_LOSSLESS, [8, 6, 1, 16, 12, 11], fragment));
            match result {
                Err(ThumbnailError::Decode(why)) => assert!(why.contains(part), "{why}"),
                other => panic!("{fragment:?}: {other:?}"),
            }
        }
    }
}
