//! Decoders of our own for the grey frames mammography modalities send compressed: each gives
//! frame 0 as 16-bit samples, row by row, written once into the buffer the renderer reads
//! ([`super::grey::Samples::U16`]). dicom-rs decodes what these do not take.
//!
//! - [`jpeg_lossless`]: JPEG lossless, any predictor (dicom-rs' path through jpeg-decoder held
//!   the frame five times and was slower than dcmtk).
//! - [`rle`]: RLE Lossless (dicom-rs' adapter and dicom-pixeldata copied the frame twice).
//! - [`jpegls`]: JPEG-LS, through `pure_jpegls` behind our own header checks (dicom-rs has
//!   JPEG-LS only through CharLS, C++, which does not build into the static musl binary).

pub mod jpeg_lossless;
pub mod jpegls;
pub mod rle;

use std::borrow::Cow;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::render::ThumbnailError;

const JPEG_LOSSLESS: [&str; 2] = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"];
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Frame 0 of a grey, one-frame-read `object` ([`super::first_frame`]) decoded here; `None`
/// when no codec here takes its transfer syntax, or this variant of it.
pub fn decode_grey(
    object: &DefaultDicomObject,
    rows: u32,
    columns: u32,
) -> Option<Result<Vec<u16>, ThumbnailError>> {
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    if jpegls::TRANSFER_SYNTAXES.contains(&ts) {
        return Some(jpegls::decode(object).map(|(_, samples)| samples));
    }
    if JPEG_LOSSLESS.contains(&ts) {
        let stream = match frame_stream(object) {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        return jpeg_lossless::decode(&stream, rows, columns)
            .map_err(|why| ThumbnailError::Decode(format!("JPEG lossless: {why}")))
            .transpose();
    }
    if ts == RLE_LOSSLESS {
        let allocated = object
            .element(tags::BITS_ALLOCATED)
            .ok()
            .and_then(|e| e.to_int::<usize>().ok())?;
        let stream = match frame_stream(object) {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        return rle::decode(&stream, rows, columns, allocated / 8)
            .map_err(|why| ThumbnailError::Decode(format!("RLE: {why}")))
            .transpose();
    }
    None
}

/// Frame 0's compressed bytes: its one fragment borrowed (the usual case, and RLE's rule), or
/// its fragments joined. [`super::first_frame`] keeps only frame 0's fragments.
pub fn frame_stream(object: &DefaultDicomObject) -> Result<Cow<'_, [u8]>, ThumbnailError> {
    let fragments = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
        .ok_or_else(|| {
            ThumbnailError::Decode("encapsulated pixel data without a fragment".into())
        })?;
    Ok(match fragments {
        [one] => Cow::Borrowed(one.as_slice()),
        many => Cow::Owned(many.concat()),
    })
}
