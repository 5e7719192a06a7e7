//! A grey frame's stored values → 8-bit display levels, in the order PS3.3 C.11 applies them:
//! the Modality LUT (Rescale Slope and Intercept), then the VOI — the VOI LUT Sequence, else the
//! first window (with its VOI LUT Function), else the frame's own minimum to maximum — then
//! MONOCHROME1 inverted. All of it is one 64 KiB table indexed by the raw 16-bit sample, so the
//! downscaler maps a sample with one load.
//!
//! The levels are the ones dicom-pixeldata's `to_dynamic_image_with_options(force_8bit)` gave
//! (its window and rescale types are used here; a test compares the two), without the three
//! full-size copies of the frame that path makes. The attributes are looked for at the top level,
//! then in the functional groups of an enhanced object, as dicom-pixeldata does.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{Rescale, VoiLutFunction, WindowLevel, WindowLevelTransform};

use super::render::ThumbnailError;

/// The stored samples of one grey frame, as the object or a decoder holds them.
#[derive(Debug, Clone, Copy)]
pub enum Samples<'a> {
    /// Bits Allocated 8.
    U8(&'a [u8]),
    /// Bits Allocated 16, as values (a decoder's output, a value dicom-object parsed as OW).
    U16(&'a [u16]),
    /// Bits Allocated 16, as little-endian bytes (native pixel data read from the file).
    U16Le(&'a [u8]),
}

/// One grey frame: `rows` × `columns` samples, row by row.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub rows: u32,
    pub columns: u32,
    samples: Samples<'a>,
}

impl<'a> Frame<'a> {
    /// The first `rows` × `columns` samples of `samples`; an error when there are fewer (the
    /// attributes come from a peer and need not match the pixel data).
    pub fn new(rows: u32, columns: u32, samples: Samples<'a>) -> Result<Self, ThumbnailError> {
        let count = rows as usize * columns as usize;
        let short = |have: usize| {
            ThumbnailError::Decode(format!(
                "the pixel data holds {have} samples; a {rows} × {columns} frame needs {count}"
            ))
        };
        let samples = match samples {
            Samples::U8(s) => Samples::U8(s.get(..count).ok_or_else(|| short(s.len()))?),
            Samples::U16(s) => Samples::U16(s.get(..count).ok_or_else(|| short(s.len()))?),
            Samples::U16Le(s) => {
                Samples::U16Le(s.get(..count * 2).ok_or_else(|| short(s.len() / 2))?)
            }
        };
        if count == 0 {
            return Err(short(0));
        }
        Ok(Frame {
            rows,
            columns,
            samples,
        })
    }

    /// Calls `each` with every row's samples as 16-bit values, in order. One row is converted
    /// at a time, so no second copy of the frame is made.
    pub fn for_each_row(&self, mut each: impl FnMut(&[u16])) {
        let columns = self.columns as usize;
        match self.samples {
            Samples::U16(samples) => samples.chunks_exact(columns).for_each(each),
            Samples::U16Le(bytes) => {
                let mut row = vec![0u16; columns];
                for bytes in bytes.chunks_exact(columns * 2) {
                    for (value, pair) in row.iter_mut().zip(bytes.chunks_exact(2)) {
                        *value = u16::from_le_bytes([pair[0], pair[1]]);
                    }
                    each(&row);
                }
            }
            Samples::U8(bytes) => {
                let mut row = vec![0u16; columns];
                for bytes in bytes.chunks_exact(columns) {
                    for (value, &byte) in row.iter_mut().zip(bytes) {
                        *value = u16::from(byte);
                    }
                    each(&row);
                }
            }
        }
    }

    fn bits_allocated(&self) -> u16 {
        match self.samples {
            Samples::U8(_) => 8,
            Samples::U16(_) | Samples::U16Le(_) => 16,
        }
    }
}

/// The display level of every possible raw sample.
pub struct GreyLevels {
    table: Box<[u8; 65536]>,
}

impl GreyLevels {
    /// The display level of a raw sample (bits above Bits Stored are ignored).
    #[inline]
    pub fn get(&self, sample: u16) -> u8 {
        self.table[usize::from(sample)]
    }

    /// The levels for `frame` of `object` (the frame is read for its range when the object
    /// has neither a VOI LUT nor a window).
    pub fn new(object: &DefaultDicomObject, frame: &Frame) -> Result<Self, ThumbnailError> {
        let number = |tag| object.element(tag).ok()?.to_int::<u16>().ok();
        let bits_stored = number(tags::BITS_STORED)
            .filter(|&b| (1..=frame.bits_allocated()).contains(&b))
            .ok_or_else(|| ThumbnailError::Decode("no valid Bits Stored".into()))?;
        let signed = number(tags::PIXEL_REPRESENTATION) == Some(1);
        let inverted = object
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .ok()
            .and_then(|e| e.to_str().ok())
            .is_some_and(|p| p.trim() == "MONOCHROME1");
        let stored = Stored {
            bits: bits_stored,
            signed,
        };
        let rescale = rescale(object);
        // dicom-pixeldata's output depth: 16-bit levels narrowed to 8 when more than 8 bits
        // are stored, 8-bit levels otherwise.
        let output_bits: u16 = if bits_stored > 8 { 16 } else { 8 };
        let narrow = |level: f64| -> u8 {
            // Truncation, as its lookup table's conversion from f64 does.
            let level = level.clamp(0.0, f64::from((1u32 << output_bits) - 1)) as u32;
            (level >> (output_bits - 8)) as u8
        };
        let voi: Box<dyn Fn(f64) -> u8> = if let Some(lut) = voi_lut(object) {
            let shift = i32::from(output_bits) - i32::from(lut.effective_bits());
            if shift < 0 {
                return Err(ThumbnailError::Decode(format!(
                    "a VOI LUT of {} bits for an image of {bits_stored} bits stored",
                    lut.effective_bits()
                )));
            }
            Box::new(move |value| narrow(f64::from(lut.get(value)) * f64::from(1u32 << shift)))
        } else {
            let window = window(object)
                .map(|(level, function)| WindowLevelTransform::new(function, level))
                .unwrap_or_else(|| frame_range(frame, stored, rescale));
            let y_max = f64::from((1u32 << output_bits) - 1);
            Box::new(move |value| narrow(window.apply(value, y_max)))
        };
        let mut table: Box<[u8; 65536]> = vec![0u8; 65536]
            .into_boxed_slice()
            .try_into()
            .map_err(|_| ThumbnailError::Decode("cannot allocate the grey level table".into()))?;
        // Every value of Bits Stored is computed once; the other 16-bit values repeat them.
        let size = 1usize << bits_stored;
        for raw in 0..size {
            let level = voi(rescale.apply(stored.value(raw as u16)));
            table[raw] = if inverted { 255 - level } else { level };
        }
        for raw in size..table.len() {
            table[raw] = table[raw & (size - 1)];
        }
        Ok(GreyLevels { table })
    }
}

/// How a raw sample holds its stored value.
#[derive(Debug, Clone, Copy)]
struct Stored {
    bits: u16,
    signed: bool,
}

impl Stored {
    /// The stored value of a raw sample: its low `bits` bits, two's complement when signed.
    fn value(self, raw: u16) -> f64 {
        let size = 1u32 << self.bits;
        let masked = u32::from(raw) & (size - 1);
        if self.signed && masked >= size / 2 {
            f64::from(masked) - f64::from(size)
        } else {
            f64::from(masked)
        }
    }
}

/// The linear window over the frame's rescaled minimum to maximum, for an object that gives no
/// VOI (dicom-pixeldata's "normalize").
fn frame_range(frame: &Frame, stored: Stored, rescale: Rescale) -> WindowLevelTransform {
    let (mut min, mut max) = (f64::MAX, f64::MIN);
    frame.for_each_row(|row| {
        for &raw in row {
            let value = stored.value(raw);
            min = min.min(value);
            max = max.max(value);
        }
    });
    let (low, high) = if rescale.slope < 0.0 {
        (rescale.apply(max), rescale.apply(min))
    } else {
        (rescale.apply(min), rescale.apply(max))
    };
    WindowLevelTransform::linear(WindowLevel {
        width: high - low,
        center: (low + high) / 2.0,
    })
}

/// The element `tag` at the top level, else in the `group` sequence of the per-frame (first
/// frame's) or shared functional groups, else flat in the shared group item.
fn find<'a>(object: &'a DefaultDicomObject, group: Tag, tag: Tag) -> Option<&'a InMemElement> {
    let first_item = |sequence| object.get(sequence)?.items()?.first();
    let in_group =
        |item: &'a dicom_object::InMemDicomObject| item.get(group)?.items()?.first()?.get(tag);
    object
        .get(tag)
        .or_else(|| first_item(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(in_group))
        .or_else(|| {
            let shared = first_item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)?;
            in_group(shared).or_else(|| shared.get(tag))
        })
}

fn first_float(element: &InMemElement) -> Option<f64> {
    element
        .to_multi_float64()
        .ok()?
        .first()
        .copied()
        .filter(|v| v.is_finite())
}

/// Rescale Slope and Intercept (identity when absent).
fn rescale(object: &DefaultDicomObject) -> Rescale {
    let group = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
    let value = |tag| find(object, group, tag).and_then(first_float);
    Rescale::new(
        value(tags::RESCALE_SLOPE).unwrap_or(1.0),
        value(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    )
}

/// The first window and its VOI LUT Function (LINEAR when absent or unknown).
fn window(object: &DefaultDicomObject) -> Option<(WindowLevel, VoiLutFunction)> {
    let group = tags::FRAME_VOILUT_SEQUENCE;
    let value = |tag| find(object, group, tag).and_then(first_float);
    let level = WindowLevel {
        center: value(tags::WINDOW_CENTER)?,
        width: value(tags::WINDOW_WIDTH)?,
    };
    let function = find(object, group, tags::VOILUT_FUNCTION)
        .and_then(|e| e.to_str().ok())
        .and_then(|name| VoiLutFunction::try_from(name.trim()).ok())
        .unwrap_or_default();
    Some((level, function))
}

/// The first item of a VOI LUT Sequence (PS3.3 C.11.2.1.1).
struct VoiLut {
    first_mapped: i32,
    declared_bits: u16,
    data: Vec<u16>,
}

impl VoiLut {
    /// The entry for a rescaled value: the first below the range, the last above it.
    fn get(&self, value: f64) -> u16 {
        let index = (value.round() - f64::from(self.first_mapped)).clamp(0.0, f64::MAX);
        let last = self.data.len() - 1; // never empty: checked in `voi_lut`
        self.data[(index as usize).min(last)]
    }

    /// The bits the entries span, when fewer than declared: some devices declare 16 bits for
    /// 12-bit data (dicom-pixeldata's rule, which keeps such an image from rendering flat).
    fn effective_bits(&self) -> u16 {
        let max = self.data.iter().copied().max().unwrap_or(0);
        let used = (u16::BITS - max.leading_zeros()) as u16;
        if used == 0 || used > self.declared_bits {
            self.declared_bits
        } else {
            used
        }
    }
}

/// The VOI LUT to apply, or `None` when the object has none or a malformed one (then the
/// window is used, as dicom-pixeldata does).
fn voi_lut(object: &DefaultDicomObject) -> Option<VoiLut> {
    let item = find(object, tags::FRAME_VOILUT_SEQUENCE, tags::VOILUT_SEQUENCE)?
        .items()?
        .first()?;
    let descriptor = item.get(tags::LUT_DESCRIPTOR)?.to_multi_int::<i32>().ok()?;
    let &[entries, first_mapped, bits] = descriptor.as_slice() else {
        return None;
    };
    // An entry count of 0 means 65536 (the count is a US of 16 bits).
    let entries = if entries == 0 { 65536 } else { entries };
    let data = item.get(tags::LUT_DATA)?.to_multi_int::<u16>().ok()?;
    let declared_bits = u16::try_from(bits).ok().filter(|b| (1..=16).contains(b))?;
    (usize::try_from(entries).ok()? == data.len() && !data.is_empty()).then_some(VoiLut {
        first_mapped,
        declared_bits,
        data,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use dicom_pixeldata::{ConvertOptions, PixelDecoder};

    const ROWS: u16 = 16;
    type Attributes = Vec<(Tag, VR, PrimitiveValue)>;
    const COLUMNS: u16 = 24;

    /// A grey object of [`ROWS`] × [`COLUMNS`] samples of `allocated` bits (`stored` of them
    /// used) that span the stored range, with the attributes `extra` adds.
    pub(crate) fn grey_object_with(
        allocated: u16,
        stored: u16,
        signed: bool,
        extra: &[(Tag, VR, PrimitiveValue)],
    ) -> DefaultDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        let class = uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION;
        let mut put = |tag, vr, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
        put(tags::SOP_CLASS_UID, VR::UI, class.into());
        put(tags::SOP_INSTANCE_UID, VR::UI, "2.25.9".into());
        put(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        );
        for (tag, value) in [
            (tags::ROWS, ROWS),
            (tags::COLUMNS, COLUMNS),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, allocated),
            (tags::BITS_STORED, stored),
            (tags::HIGH_BIT, stored - 1),
            (tags::PIXEL_REPRESENTATION, u16::from(signed)),
        ] {
            put(tag, VR::US, PrimitiveValue::from(value));
        }
        for (tag, vr, value) in extra {
            put(*tag, *vr, value.clone());
        }
        let count = usize::from(ROWS) * usize::from(COLUMNS);
        let top = (1u64 << stored) - 1;
        let raw: Vec<u64> = (0..count as u64)
            .map(|i| i * top / (count as u64 - 1))
            .collect();
        let pixels = if allocated == 8 {
            PrimitiveValue::U8(raw.iter().map(|&v| v as u8).collect())
        } else {
            PrimitiveValue::U16(raw.iter().map(|&v| v as u16).collect())
        };
        let vr = if allocated == 8 { VR::OB } else { VR::OW };
        obj.put(DataElement::new(tags::PIXEL_DATA, vr, pixels));
        obj.with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(class)
                .media_storage_sop_instance_uid("2.25.9"),
        )
        .unwrap()
    }

    /// An unsigned grey object of `bits` stored in as many allocated, with a window or none.
    pub(crate) fn grey_object(bits: u16, window: Option<(f64, f64)>) -> DefaultDicomObject {
        let extra: Vec<_> = window
            .into_iter()
            .flat_map(|(center, width)| {
                [
                    (tags::WINDOW_CENTER, VR::DS, center.to_string().into()),
                    (tags::WINDOW_WIDTH, VR::DS, width.to_string().into()),
                ]
            })
            .collect();
        grey_object_with(bits.next_power_of_two().max(8), bits, false, &extra)
    }

    /// Our levels for every sample of the object, row by row.
    fn ours(object: &DefaultDicomObject) -> Vec<u8> {
        let value = object.element(tags::PIXEL_DATA).unwrap().value();
        let samples = match value.primitive().unwrap() {
            PrimitiveValue::U8(bytes) => Samples::U8(bytes),
            PrimitiveValue::U16(values) => Samples::U16(values),
            other => panic!("{other:?}"),
        };
        let frame = Frame::new(u32::from(ROWS), u32::from(COLUMNS), samples).unwrap();
        let levels = GreyLevels::new(object, &frame).unwrap();
        let mut out = Vec::new();
        frame.for_each_row(|row| out.extend(row.iter().map(|&s| levels.get(s))));
        out
    }

    /// dicom-pixeldata's 8-bit image of the object (what thumbnails were made from before).
    fn theirs(object: &DefaultDicomObject) -> Vec<u8> {
        let decoded = object.decode_pixel_data_frame(0).unwrap();
        let options = ConvertOptions::new().force_8bit();
        decoded
            .to_dynamic_image_with_options(0, &options)
            .unwrap()
            .to_luma8()
            .into_raw()
    }

    fn item(elements: Attributes) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(
            elements
                .into_iter()
                .map(|(tag, vr, value)| DataElement::new(tag, vr, value)),
        )
    }

    #[test]
    fn levels_match_dicom_pixeldata_for_every_kind_of_voi() {
        let ds = |v: &str| PrimitiveValue::from(v);
        let window = |c: &str, w: &str| {
            vec![
                (tags::WINDOW_CENTER, VR::DS, ds(c)),
                (tags::WINDOW_WIDTH, VR::DS, ds(w)),
            ]
        };
        let with = |mut a: Attributes, b: Attributes| {
            a.extend(b);
            a
        };
        // A VOI LUT of 4096 entries from 0: a gamma-like curve declared as 16 bits but
        // spanning 12 (the quirk `effective_bits` keeps).
        let lut_data: Vec<u16> = (0..4096u32).map(|i| ((i * i) / 4096) as u16).collect();
        let voi_lut = DataSetSequence::from(vec![item(vec![
            (
                tags::LUT_DESCRIPTOR,
                VR::US,
                PrimitiveValue::U16(vec![4096, 0, 16].into()),
            ),
            (tags::LUT_DATA, VR::OW, PrimitiveValue::U16(lut_data.into())),
        ])]);
        // (what, bits allocated, bits stored, signed, attributes)
        let cases: Vec<(&str, u16, u16, bool, Attributes)> = vec![
            ("12-bit, window", 16, 12, false, window("2048", "1000")),
            ("12-bit, no VOI: min to max", 16, 12, false, vec![]),
            ("16-bit, window", 16, 16, false, window("30000", "20000")),
            ("14-bit, narrow window", 16, 14, false, window("8000", "1")),
            (
                "12-bit, sigmoid",
                16,
                12,
                false,
                with(
                    window("2000", "1500"),
                    vec![(tags::VOILUT_FUNCTION, VR::CS, ds("SIGMOID"))],
                ),
            ),
            (
                "12-bit, linear exact",
                16,
                12,
                false,
                with(
                    window("2000", "1500"),
                    vec![(tags::VOILUT_FUNCTION, VR::CS, ds("LINEAR_EXACT"))],
                ),
            ),
            (
                "12-bit, rescaled",
                16,
                12,
                false,
                with(
                    window("-200", "3000"),
                    vec![
                        (tags::RESCALE_SLOPE, VR::DS, ds("0.5")),
                        (tags::RESCALE_INTERCEPT, VR::DS, ds("-1024")),
                    ],
                ),
            ),
            (
                "12-bit, negative slope, no VOI",
                16,
                12,
                false,
                vec![(tags::RESCALE_SLOPE, VR::DS, ds("-1"))],
            ),
            (
                "MONOCHROME1",
                16,
                12,
                false,
                with(
                    window("2048", "4096"),
                    vec![(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, ds("MONOCHROME1"))],
                ),
            ),
            ("16-bit signed, window", 16, 16, true, window("0", "40000")),
            ("8-bit, window", 8, 8, false, window("100", "80")),
            ("8-bit, no VOI", 8, 8, false, vec![]),
            // The VOI LUT Sequence (added below) wins over the window.
            ("12-bit, VOI LUT Sequence", 16, 12, false, window("10", "1")),
        ];
        for (what, allocated, stored, signed, attributes) in cases {
            let mut object = grey_object_with(allocated, stored, signed, &attributes);
            if what.contains("VOI LUT Sequence") {
                object.put(DataElement::new(
                    tags::VOILUT_SEQUENCE,
                    VR::SQ,
                    voi_lut.clone(),
                ));
            }
            assert_eq!(ours(&object), theirs(&object), "{what}");
        }
    }

    #[test]
    fn an_enhanced_object_s_window_is_found_in_its_functional_groups() {
        let voi = DataSetSequence::from(vec![item(vec![
            (tags::WINDOW_CENTER, VR::DS, "1000".into()),
            (tags::WINDOW_WIDTH, VR::DS, "500".into()),
        ])]);
        let mut shared = InMemDicomObject::new_empty();
        shared.put(DataElement::new(tags::FRAME_VOILUT_SEQUENCE, VR::SQ, voi));
        let mut enhanced = grey_object_with(16, 12, false, &[]);
        enhanced.put(DataElement::new(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![shared]),
        ));
        let flat = grey_object(12, Some((1000.0, 500.0)));
        assert_eq!(ours(&enhanced), ours(&flat));
        assert_ne!(ours(&enhanced), ours(&grey_object(12, None)));
    }

    #[test]
    fn a_frame_shorter_than_its_attributes_is_refused() {
        let bytes = [0u8; 10];
        for samples in [
            Samples::U8(&bytes),
            Samples::U16Le(&bytes),
            Samples::U16(&[0; 5]),
        ] {
            match Frame::new(4, 4, samples) {
                Err(ThumbnailError::Decode(why)) => assert!(why.contains("needs 16"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(Frame::new(0, 4, Samples::U8(&bytes)).is_err());
        assert!(Frame::new(2, 5, Samples::U8(&bytes)).is_ok());
    }
}
