//! JPEG-LS frames (PS3.5 A.4.3: lossless `1.2.840.10008.1.2.4.80`, near-lossless `.81`) decoded
//! by our own T.87 decoder ([`scan`]; dicom-rs offers JPEG-LS only through CharLS, C++, which
//! does not build into the static musl binary).
//!
//! The decoder's arithmetic holds only for parameters T.87 allows, so every marker segment
//! before the scan is read here first and the stream refused, with the reason, unless it is one grey component, interleave mode 0, no point
//! transform, a NEAR and preset parameters T.87 allows, and the frame the attributes describe.
//! The decoded samples then go through the same pipeline as native pixel data.
//! Multi-component JPEG-LS (colour) is refused: mammograms are grey.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::frame_stream;
use crate::thumbnail::render::ThumbnailError;

/// The JPEG-LS transfer syntaxes.
pub const TRANSFER_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

mod scan;

/// What the frame and scan headers say, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub precision: u8,
    pub rows: u16,
    pub columns: u16,
    pub near: u8,
    pub parameters: Parameters,
    /// Where the scan's entropy-coded data starts in the stream.
    pub scan_start: usize,
}

/// The coding parameters (T.87 C.2.4.1.1): the preset ones (LSE) where given, else the
/// defaults for the sample precision and NEAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters {
    pub near: u8,
    pub maxval: u16,
    pub thresholds: [u16; 3],
    pub reset: u16,
}

impl Parameters {
    /// `maxval` and each threshold or `reset` of 0 standing for its default (C.2.4.1.1.1).
    fn new(precision: u8, near: u8, maxval: u16, given: [u16; 3], reset: u16) -> Self {
        let maxval = if maxval == 0 {
            ((1u32 << precision) - 1) as u16
        } else {
            maxval
        };
        let (max, n) = (i32::from(maxval), i32::from(near));
        // CLAMP(i, j): j when i is outside j..=MAXVAL.
        let clamp = |i: i32, j: i32| if i > max || i < j { j } else { i };
        // BASIC_T1, T2, T3.
        let [b1, b2, b3] = [3, 7, 21];
        let (t1, t2, t3) = if max >= 128 {
            let factor = (max.min(4095) + 128) / 256;
            let t1 = clamp(factor * (b1 - 2) + 2 + 3 * n, n + 1);
            let t2 = clamp(factor * (b2 - 3) + 3 + 5 * n, t1);
            (t1, t2, clamp(factor * (b3 - 4) + 4 + 7 * n, t2))
        } else {
            let factor = 256 / (max + 1);
            let t1 = clamp((b1 / factor + 3 * n).max(2), n + 1);
            let t2 = clamp((b2 / factor + 5 * n).max(3), t1);
            (t1, t2, clamp((b3 / factor + 7 * n).max(4), t2))
        };
        let pick = |given: u16, default: i32| if given == 0 { default as u16 } else { given };
        Parameters {
            near,
            maxval,
            thresholds: [pick(given[0], t1), pick(given[1], t2), pick(given[2], t3)],
            reset: if reset == 0 { 64 } else { reset },
        }
    }
}

/// The first frame's samples, row by row, after the header checks.
pub fn decode(object: &DefaultDicomObject) -> Result<(Header, Vec<u16>), ThumbnailError> {
    let refuse = |why: String| ThumbnailError::Decode(format!("JPEG-LS: {why}"));
    let number = |tag| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
    };
    let (Some(rows), Some(columns), Some(samples), Some(allocated)) = (
        number(tags::ROWS),
        number(tags::COLUMNS),
        number(tags::SAMPLES_PER_PIXEL),
        number(tags::BITS_ALLOCATED),
    ) else {
        return Err(refuse(
            "Rows, Columns, Samples per Pixel or Bits Allocated missing".into(),
        ));
    };
    if samples != 1 {
        return Err(refuse(format!(
            "{samples} samples per pixel (one grey component decoded)"
        )));
    }
    let stream = frame_stream(object)?;
    decode_stream(&stream, rows, columns, allocated).map_err(refuse)
}

/// One frame's JPEG-LS stream decoded, when it is the `rows` × `columns` frame of samples of
/// at most `allocated` bits that the object describes.
pub fn decode_stream(
    stream: &[u8],
    rows: u32,
    columns: u32,
    allocated: u32,
) -> Result<(Header, Vec<u16>), String> {
    let header = check_header(stream)?;
    if (u32::from(header.rows), u32::from(header.columns)) != (rows, columns) {
        return Err(format!(
            "the stream is {} × {}; the object says {columns} × {rows}",
            header.columns, header.rows
        ));
    }
    // dcmtk writes 12-bit data as a 16-bit stream: the precision bounds the container only.
    if u32::from(header.precision) > allocated {
        return Err(format!(
            "the stream has {}-bit samples; Bits Allocated is {allocated}",
            header.precision
        ));
    }
    let data = stream.get(header.scan_start..).unwrap_or_default();
    let rows_columns = (usize::from(header.rows), usize::from(header.columns));
    let pixels = scan::decode(data, rows_columns.0, rows_columns.1, &header.parameters)?;
    Ok((header, pixels))
}

/// Reads the marker segments from SOI through SOS (T.87 C.2) and refuses what the decoder does
/// not take: a few fixed-layout segments.
pub fn check_header(stream: &[u8]) -> Result<Header, String> {
    if stream.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err("the fragment does not start with a JPEG-LS stream (SOI)".into());
    }
    let mut at = 2;
    let mut frame: Option<(u8, u16, u16)> = None;
    let mut presets = (0u16, [0u16; 3], 0u16);
    loop {
        let Some(&[0xFF, marker, a, b]) = stream.get(at..at + 4) else {
            return Err("no scan header (SOS) before the end of the fragment".into());
        };
        let length = usize::from(u16::from_be_bytes([a, b]));
        if length < 2 {
            return Err(format!("a marker segment of length {length}"));
        }
        let segment = stream
            .get(at + 4..at + 2 + length)
            .ok_or("a marker segment runs past the end of the fragment")?;
        match marker {
            // SOF55: P, Y, X, Nf, then Nf × (C, H×V, Tq).
            0xF7 => {
                let &[precision, y1, y2, x1, x2, components, ..] = segment else {
                    return Err("the frame header (SOF55) is cut short".into());
                };
                if length != 8 + 3 * usize::from(components) {
                    return Err(format!(
                        "a frame header of length {length} for {components} components"
                    ));
                }
                if components != 1 {
                    return Err(format!(
                        "{components} components (one grey component decoded)"
                    ));
                }
                if !(2..=16).contains(&precision) {
                    return Err(format!("{precision}-bit samples (2 to 16 allowed)"));
                }
                let (rows, columns) = (u16::from_be_bytes([y1, y2]), u16::from_be_bytes([x1, x2]));
                if rows == 0 || columns == 0 {
                    return Err("a frame of zero rows or columns".into());
                }
                frame = Some((precision, rows, columns));
            }
            // LSE: preset coding parameters (id 1) only; mapping tables are for palette images.
            0xF8 => {
                let Some((precision, _, _)) = frame else {
                    return Err("preset parameters (LSE) before the frame header".into());
                };
                let &[id, m1, m2, t11, t12, t21, t22, t31, t32, r1, r2] = segment else {
                    return Err(
                        "a preset parameters segment (LSE) other than coding parameters".into(),
                    );
                };
                if id != 1 {
                    return Err(format!(
                        "an LSE segment of id {id} (only coding parameters, 1)"
                    ));
                }
                let field = |h, l| u16::from_be_bytes([h, l]);
                let full = (1u32 << precision) - 1;
                let maxval = field(m1, m2);
                let max = if maxval == 0 { full } else { u32::from(maxval) };
                if max > full || max < 1 {
                    return Err(format!("MAXVAL {maxval} for {precision}-bit samples"));
                }
                let (t1, t2, t3) = (field(t11, t12), field(t21, t22), field(t31, t32));
                let reset = field(r1, r2);
                // Zero means "the default"; given ones must be ordered and within MAXVAL.
                let given: Vec<u32> = [t1, t2, t3]
                    .into_iter()
                    .filter(|&t| t != 0)
                    .map(u32::from)
                    .collect();
                if given.windows(2).any(|w| w[0] > w[1]) || given.iter().any(|&t| t > max) {
                    return Err(format!(
                        "thresholds T1 {t1}, T2 {t2}, T3 {t3} with MAXVAL {max}"
                    ));
                }
                if reset != 0 && !(3..=max.max(255)).contains(&u32::from(reset)) {
                    return Err(format!("RESET {reset} (3 to {} allowed)", max.max(255)));
                }
                presets = (maxval, [t1, t2, t3], reset);
            }
            // DRI: restart intervals, which the decoder does not take.
            0xDD => return Err("restart intervals (DRI)".into()),
            // SOS: Ns, Ns × (C, Tm), NEAR, ILV, Al/Ah.
            0xDA => {
                let Some((precision, rows, columns)) = frame else {
                    return Err("a scan (SOS) before the frame header".into());
                };
                let &[components, ..] = segment else {
                    return Err("the scan header (SOS) is cut short".into());
                };
                if components != 1 || length != 6 + 2 * usize::from(components) {
                    return Err(format!(
                        "a scan header of length {length} for {components} components"
                    ));
                }
                let &[_, _, _, near, interleave, point_transform] = segment else {
                    return Err("the scan header (SOS) is cut short".into());
                };
                let full = (1u32 << precision) - 1;
                let (maxval, thresholds, reset) = presets;
                let max = if maxval == 0 { full } else { u32::from(maxval) };
                if u32::from(near) > (max / 2).min(255) {
                    return Err(format!("NEAR {near} with MAXVAL {max}"));
                }
                if interleave != 0 {
                    return Err(format!("interleave mode {interleave} for one component"));
                }
                if point_transform != 0 {
                    return Err(format!("a point transform of {point_transform} bits"));
                }
                return Ok(Header {
                    precision,
                    rows,
                    columns,
                    near,
                    parameters: Parameters::new(precision, near, maxval, thresholds, reset),
                    scan_start: at + 2 + length,
                });
            }
            // Any other segment (APPn, COM) is skipped; other SOFs are not JPEG-LS.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Err(format!(
                    "a JPEG frame header (FF {marker:02X}) in a JPEG-LS stream"
                ));
            }
            _ => {}
        }
        at += 2 + length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, SOF55 (P, 832 × 640, one component), an optional LSE, SOS (NEAR, ILV, Al/Ah).
    fn stream(precision: u8, lse: Option<[u8; 11]>, near: u8, ilv: u8, pt: u8) -> Vec<u8> {
        let mut s = vec![0xFF, 0xD8];
        s.extend([
            0xFF, 0xF7, 0, 11, precision, 0x03, 0x40, 0x02, 0x80, 1, 1, 0x11, 0,
        ]);
        if let Some(lse) = lse {
            s.extend([0xFF, 0xF8, 0, 13]);
            s.extend(lse);
        }
        s.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, near, ilv, pt]);
        s.extend([0u8; 8]);
        s
    }

    #[test]
    fn default_parameters_follow_t87_c_2_4_1_1() {
        // (precision, NEAR, MAXVAL, given thresholds, RESET) → (MAXVAL, T1, T2, T3, RESET)
        type Case = ((u8, u8, u16, [u16; 3], u16), (u16, [u16; 3], u16));
        let cases: [Case; 6] = [
            ((12, 0, 0, [0; 3], 0), (4095, [18, 67, 276], 64)),
            ((16, 0, 0, [0; 3], 0), (65535, [18, 67, 276], 64)),
            ((8, 0, 0, [0; 3], 0), (255, [3, 7, 21], 64)),
            ((12, 2, 0, [0; 3], 0), (4095, [24, 77, 290], 64)),
            ((12, 0, 100, [0; 3], 0), (100, [2, 3, 10], 64)),
            ((12, 0, 0, [0, 50, 0], 32), (4095, [18, 50, 276], 32)),
        ];
        for ((precision, near, maxval, given, reset), (m, t, r)) in cases {
            let p = Parameters::new(precision, near, maxval, given, reset);
            assert_eq!(
                (p.maxval, p.thresholds, p.reset),
                (m, t, r),
                "{precision} {near}"
            );
        }
    }

    #[test]
    fn headers_outside_what_t87_allows_are_refused() {
        let ok = Header {
            precision: 12,
            rows: 832,
            columns: 640,
            near: 0,
            parameters: Parameters::new(12, 0, 0, [0; 3], 0),
            scan_start: 0,
        };
        let lse = |maxval: u16, t: [u16; 3], reset: u16| {
            let [m1, m2] = maxval.to_be_bytes();
            let [a, b] = t[0].to_be_bytes();
            let [c, d] = t[1].to_be_bytes();
            let [e, f] = t[2].to_be_bytes();
            let [r1, r2] = reset.to_be_bytes();
            Some([1, m1, m2, a, b, c, d, e, f, r1, r2])
        };
        let cases: Vec<(&str, Vec<u8>, Result<Header, &str>)> = vec![
            ("lossless 12-bit", stream(12, None, 0, 0, 0), Ok(ok)),
            (
                "near-lossless 3",
                stream(12, None, 3, 0, 0),
                Ok(Header { near: 3, ..ok }),
            ),
            (
                "16-bit with defaults given as zeros",
                stream(16, lse(0, [0, 0, 0], 0), 0, 0, 0),
                Ok(Header {
                    precision: 16,
                    ..ok
                }),
            ),
            (
                "given thresholds and RESET",
                stream(12, lse(4095, [18, 67, 276], 64), 0, 0, 0),
                Ok(ok),
            ),
            ("not a JPEG stream", vec![0, 1, 2, 3], Err("SOI")),
            ("1-bit samples", stream(1, None, 0, 0, 0), Err("1-bit")),
            ("17-bit samples", stream(17, None, 0, 0, 0), Err("17-bit")),
            (
                "NEAR above MAXVAL / 2",
                stream(4, None, 8, 0, 0),
                Err("NEAR 8"),
            ),
            (
                "line interleave",
                stream(12, None, 0, 1, 0),
                Err("interleave"),
            ),
            (
                "point transform",
                stream(12, None, 0, 0, 2),
                Err("point transform"),
            ),
            (
                "RESET below 3",
                stream(12, lse(0, [0, 0, 0], 2), 0, 0, 0),
                Err("RESET 2"),
            ),
            (
                "MAXVAL above the precision",
                stream(8, lse(4095, [0, 0, 0], 0), 0, 0, 0),
                Err("MAXVAL 4095"),
            ),
            (
                "thresholds out of order",
                stream(12, lse(0, [300, 67, 276], 0), 0, 0, 0),
                Err("thresholds"),
            ),
            (
                "cut short",
                stream(12, None, 0, 0, 0)[..10].to_vec(),
                Err("past the end"),
            ),
        ];
        for (what, bytes, expected) in cases {
            match (check_header(&bytes), expected) {
                (Ok(h), Ok(e)) => assert_eq!(
                    (h.precision, h.rows, h.columns, h.near),
                    (e.precision, e.rows, e.columns, e.near),
                    "{what}"
                ),
                (Err(why), Err(e)) => assert!(why.contains(e), "{what}: {why}"),
                (got, e) => panic!("{what}: got {got:?}, expected {e:?}"),
            }
        }
    }
}
