//! JPEG-LS frames (PS3.5 A.4.3: lossless `1.2.840.10008.1.2.4.80`, near-lossless `.81`) decoded
//! by `pure_jpegls`, the one pure-Rust T.87 decoder that builds into the static musl binary
//! (dicom-rs offers JPEG-LS only through CharLS, C++).
//!
//! The decoder trusts the stream's header, and streams with out-of-range parameters are known to
//! overflow its arithmetic, so every marker segment before the scan is read here first and the
//! stream refused, with the reason, unless it is one grey component, interleave mode 0, no point
//! transform, a NEAR and preset parameters T.87 allows, and the frame the attributes describe.
//! The decoded samples then go through the same pipeline as native pixel data.
//! Multi-component JPEG-LS (colour) is refused: mammograms are grey.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::frame_stream;
use crate::thumbnail::render::ThumbnailError;

/// The JPEG-LS transfer syntaxes.
pub const TRANSFER_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

/// What the frame and scan headers say, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub precision: u8,
    pub rows: u16,
    pub columns: u16,
    pub near: u8,
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
    let header = check_header(&stream).map_err(refuse)?;
    if (u32::from(header.rows), u32::from(header.columns)) != (rows, columns) {
        return Err(refuse(format!(
            "the stream is {} × {}; the object says {columns} × {rows}",
            header.columns, header.rows
        )));
    }
    // dcmtk writes 12-bit data as a 16-bit stream: the precision bounds the container only.
    if u32::from(header.precision) > allocated {
        return Err(refuse(format!(
            "the stream has {}-bit samples; Bits Allocated is {allocated}",
            header.precision
        )));
    }
    let decoded = jpegls::decode(&stream, columns, rows).or_else(|e| {
        // Fill bytes (FF) may precede any marker (T.81 B.1.1.2, which T.87 keeps), and CharLS
        // writes one before EOI when the scan's last byte is FF; pure_jpegls 2.0.0 wants EOI
        // straight after the scan. Without them the stream is the same scan.
        match without_fill_before_eoi(&stream) {
            Some(trimmed) => jpegls::decode(&trimmed, columns, rows),
            None => Err(e),
        }
    });
    let (pixels, _, _) =
        decoded.map_err(|e| refuse(format!("the decoder refused the stream: {e}")))?;
    Ok((header, pixels))
}

/// The stream with the fill bytes between its scan and its EOI removed, if it has any (after
/// EOI only padding may follow: DICOM pads fragments to even length).
fn without_fill_before_eoi(stream: &[u8]) -> Option<Vec<u8>> {
    let eoi = stream.windows(2).rposition(|w| w == [0xFF, 0xD9])?;
    let fill = stream[..eoi]
        .iter()
        .rev()
        .take_while(|&&b| b == 0xFF)
        .count();
    if fill == 0 {
        return None;
    }
    let mut trimmed = Vec::with_capacity(stream.len() - fill);
    trimmed.extend_from_slice(&stream[..eoi - fill]);
    trimmed.extend_from_slice(&stream[eoi..]);
    Some(trimmed)
}

/// Reads the marker segments from SOI through SOS (T.87 C.2) and refuses what the decoder must
/// not be given. Written by hand: a few fixed-layout segments, and the decoder exposes no
/// header parser of its own.
pub fn check_header(stream: &[u8]) -> Result<Header, String> {
    if stream.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err("the fragment does not start with a JPEG-LS stream (SOI)".into());
    }
    let mut at = 2;
    let mut frame: Option<(u8, u16, u16)> = None;
    let mut maxval = 0u16;
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
                maxval = field(m1, m2);
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
    fn fill_bytes_before_eoi_are_dropped() {
        let cases: [(&[u8], Option<&[u8]>); 4] = [
            (&[1, 2, 0xFF, 0xD9], None),
            (&[1, 2, 0xFF, 0xFF, 0xD9], Some(&[1, 2, 0xFF, 0xD9])),
            (&[1, 0xFF, 0xFF, 0xFF, 0xD9, 0], Some(&[1, 0xFF, 0xD9, 0])),
            (&[1, 2, 3], None),
        ];
        for (stream, expected) in cases {
            assert_eq!(
                without_fill_before_eoi(stream).as_deref(),
                expected,
                "{stream:?}"
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
                (Ok(h), Ok(e)) => assert_eq!(h, e, "{what}"),
                (Err(why), Err(e)) => assert!(why.contains(e), "{what}: {why}"),
                (got, e) => panic!("{what}: got {got:?}, expected {e:?}"),
            }
        }
    }
}
