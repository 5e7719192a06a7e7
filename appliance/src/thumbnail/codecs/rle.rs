//! DICOM RLE Lossless (PS3.5 Annex G, `1.2.840.10008.1.2.5`) for one grey sample of 8 or 16
//! bits: a 64-byte header of segment offsets, then one PackBits segment per byte of the sample,
//! most significant first.
//!
//! Written by hand (the format is a page long): dicom-rs' adapter decodes each segment into a
//! buffer of its own and then interleaves them into the frame, and dicom-pixeldata copies that
//! again; this writes each segment's bytes straight into the samples it returns.

use super::jpeg_lossless::Refusal;

/// The `rows` × `columns` samples of one frame's fragment; `Ok(None)` when it is not one grey
/// sample of 1 or 2 bytes (colour is left to dicom-rs).
pub fn decode(
    fragment: &[u8],
    rows: u32,
    columns: u32,
    bytes_per_sample: usize,
) -> Result<Option<Vec<u16>>, Refusal> {
    if !matches!(bytes_per_sample, 1 | 2) {
        return Ok(None);
    }
    let word = |i: usize| {
        fragment
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let segments = word(0).ok_or("a fragment shorter than its 64-byte header")?;
    if segments != bytes_per_sample {
        return Ok(None);
    }
    let count = rows as usize * columns as usize;
    let mut samples = vec![0u16; count];
    for segment in 0..segments {
        let start = word(1 + segment).ok_or("a fragment shorter than its header")?;
        let end = match word(2 + segment) {
            Some(next) if segment + 1 < segments => next,
            _ => fragment.len(),
        };
        let bytes = fragment
            .get(start..end)
            .ok_or("RLE segment offsets out of order or past the fragment")?;
        // Segment 0 holds the most significant byte of each sample.
        let shift = 8 * (segments - 1 - segment) as u32;
        unpack(bytes, &mut samples, shift)?;
    }
    Ok(Some(samples))
}

/// PackBits (G.3.1): a header byte n, then n + 1 literal bytes (n 0–127) or one byte repeated
/// 1 − n times (n −127 to −1); −128 is nothing. Each byte goes into its sample at `shift`.
fn unpack(mut bytes: &[u8], samples: &mut [u16], shift: u32) -> Result<(), Refusal> {
    let mut at = 0;
    while at < samples.len() {
        let Some((&header, rest)) = bytes.split_first() else {
            return Err(format!(
                "an RLE segment ends after {at} of {} samples",
                samples.len()
            ));
        };
        let n = header as i8;
        let cut = || format!("an RLE segment is cut short at sample {at}");
        match n {
            0..=127 => {
                let run = usize::from(n as u8) + 1;
                let literal = rest.get(..run).ok_or_else(cut)?;
                let out = samples
                    .get_mut(at..at + run)
                    .ok_or("an RLE run past the frame")?;
                for (sample, &byte) in out.iter_mut().zip(literal) {
                    *sample |= u16::from(byte) << shift;
                }
                bytes = &rest[run..];
                at += run;
            }
            -127..=-1 => {
                let run = (1 - i32::from(n)) as usize;
                let &byte = rest.first().ok_or_else(cut)?;
                let out = samples
                    .get_mut(at..at + run)
                    .ok_or("an RLE run past the frame")?;
                let value = u16::from(byte) << shift;
                for sample in out {
                    *sample |= value;
                }
                bytes = &rest[1..];
                at += run;
            }
            -128 => bytes = rest,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fragment of the given segments, each after the 64-byte header.
    fn fragment(segments: &[&[u8]]) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut offset = 64u32;
        for (i, segment) in segments.iter().enumerate() {
            header[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
            offset += segment.len() as u32;
        }
        [header, segments.concat()].concat()
    }

    #[test]
    fn segments_are_unpacked_into_their_byte_of_each_sample() {
        // (segments, rows × columns, bytes per sample) → samples, or a part of the refusal.
        type Case<'a> = (&'a [&'a [u8]], (u32, u32), usize, Result<Vec<u16>, &'a str>);
        let cases: [Case; 8] = [
            // A literal run of 4, then a repeat of 3 (header −2), then a no-op (−128).
            (
                &[&[3, 1, 2, 3, 4, 0xFE, 9, 0x80]],
                (1, 7),
                1,
                Ok(vec![1, 2, 3, 4, 9, 9, 9]),
            ),
            // 16-bit: the high bytes, then the low bytes.
            (
                &[&[0xFF, 0x12], &[1, 0x34, 0x56]],
                (1, 2),
                2,
                Ok(vec![0x1234, 0x1256]),
            ),
            // A repeat of 128 (header −127), filling a 16 × 8 frame.
            (&[&[0x81, 5]], (16, 8), 1, Ok(vec![5; 128])),
            (&[&[3, 1, 2]], (1, 4), 1, Err("cut short")),
            (&[&[1, 1, 2]], (1, 4), 1, Err("ends after 2 of 4")),
            (&[&[0xFD, 1]], (1, 2), 1, Err("past the frame")),
            (&[&[0, 1], &[0, 2]], (1, 1), 1, Err("not taken")),
            (&[&[]], (1, 1), 1, Err("ends after 0")),
        ];
        for (segments, (rows, columns), bytes, expected) in cases {
            let result = decode(&fragment(segments), rows, columns, bytes);
            match (result, expected) {
                (Ok(Some(samples)), Ok(expected)) => assert_eq!(samples, expected, "{segments:?}"),
                (Ok(None), Err("not taken")) => {}
                (Err(why), Err(part)) => assert!(why.contains(part), "{segments:?}: {why}"),
                (result, expected) => panic!("{segments:?}: {result:?}, expected {expected:?}"),
            }
        }
    }
}
