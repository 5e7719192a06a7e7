//! A grey frame scaled down to thumbnail height in one pass over its stored samples: each sample
//! is mapped to its display level ([`GreyLevels`]) and added into the output pixel whose area
//! holds it, and a row of output is finished as soon as its band of input rows has gone by.
//! So the working memory is one output row of sums, not an 8-bit copy of the frame followed by
//! a resampled one (what `image`'s `thumbnail_exact` over dicom-pixeldata's image needed).
//!
//! Each output pixel is the mean of the whole input pixels in its area: input row `y` belongs
//! to output row `y × height / rows`, and likewise for columns. Areas differ by at most one
//! input row or column, which no one sees in a 188 px thumbnail.

use image::GrayImage;

use super::grey::{Frame, GreyLevels};

/// `frame` at `height` rows (never more than it has) and the width that keeps its aspect ratio.
pub fn downscale(frame: &Frame, levels: &GreyLevels, height: u32) -> GrayImage {
    let (rows, columns) = (frame.rows as usize, frame.columns as usize);
    let out_rows = (height as usize).clamp(1, rows);
    let out_columns = ((columns * out_rows + rows / 2) / rows).clamp(1, columns);
    // Input columns [starts[i], starts[i + 1]) make output column i.
    let starts: Vec<usize> = (0..=out_columns)
        .map(|i| (i * columns).div_ceil(out_columns))
        .collect();
    let mut sums = vec![0u32; out_columns];
    let mut pixels = Vec::with_capacity(out_columns * out_rows);
    let (mut y, mut band_rows) = (0usize, 0u32);
    frame.for_each_row(|row| {
        for (sum, span) in sums.iter_mut().zip(starts.windows(2)) {
            let area = &row[span[0]..span[1]];
            *sum += area.iter().map(|&s| u32::from(levels.get(s))).sum::<u32>();
        }
        band_rows += 1;
        y += 1;
        let band_ends = y == rows || (y * out_rows) / rows != ((y - 1) * out_rows) / rows;
        if band_ends {
            for (sum, span) in sums.iter_mut().zip(starts.windows(2)) {
                let count = (band_rows * (span[1] - span[0]) as u32).max(1);
                pixels.push(((*sum + count / 2) / count) as u8);
                *sum = 0;
            }
            band_rows = 0;
        }
    });
    // rows × columns came from the frame, so the pixel count is exact.
    GrayImage::from_raw(
        out_columns as u32,
        (pixels.len() / out_columns) as u32,
        pixels,
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thumbnail::grey::Samples;

    /// Levels that are the sample itself (8-bit samples, a 0–255 window).
    fn identity() -> GreyLevels {
        let object = crate::thumbnail::grey::tests::grey_object(8, Some((127.5, 256.0)));
        let frame = Frame::new(1, 1, Samples::U8(&[0])).unwrap();
        GreyLevels::new(&object, &frame).unwrap()
    }

    #[test]
    fn each_output_pixel_is_the_mean_of_its_area() {
        let levels = identity();
        for (value, expected) in (0..=255u16).zip(0..=255u8) {
            assert_eq!(levels.get(value), expected);
        }
        // (rows, columns, samples, height) → expected pixels, row by row.
        type Case = (u32, u32, Vec<u8>, u32, Vec<u8>);
        #[rustfmt::skip]
        let cases: [Case; 5] = [
            // 2 × 2 → 1 × 1: the mean, rounded.
            (2, 2, vec![0, 10, 20, 31], 1, vec![15]),
            // 4 × 4 → 2 × 2: quadrants.
            (4, 4, vec![0, 0, 100, 100,
                        0, 0, 100, 100,
                        50, 50, 200, 200,
                        50, 50, 200, 200], 2, vec![0, 100, 50, 200]),
            // 3 × 2 → 2 rows: bands of 2 and 1 rows; width 2 × 2 / 3 rounds to 1.
            (3, 2, vec![10, 20, 30, 40, 200, 250], 2, vec![25, 225]),
            // Never upscaled: asking for more rows keeps the frame as it is.
            (2, 3, vec![1, 2, 3, 4, 5, 6], 10, vec![1, 2, 3, 4, 5, 6]),
            // A single row stays one row.
            (1, 4, vec![0, 4, 8, 12], 1, vec![0, 4, 8, 12]),
        ];
        for (rows, columns, samples, height, expected) in cases {
            let frame = Frame::new(rows, columns, Samples::U8(&samples)).unwrap();
            let image = downscale(&frame, &levels, height);
            assert_eq!(image.into_raw(), expected, "{rows} × {columns} → {height}");
        }
    }

    #[test]
    fn the_output_keeps_the_aspect_ratio_at_the_requested_height() {
        let levels = identity();
        // (rows, columns, height) → (width, height)
        let cases = [
            ((4096, 3328, 188), (153, 188)),
            ((3328, 4096, 188), (231, 188)),
            ((188, 100, 188), (100, 188)),
            ((1000, 1, 188), (1, 188)),
            ((1, 1000, 188), (1000, 1)),
        ];
        for ((rows, columns, height), expected) in cases {
            let samples = vec![7u8; rows as usize * columns as usize];
            let frame = Frame::new(rows, columns, Samples::U8(&samples)).unwrap();
            let image = downscale(&frame, &levels, height);
            assert_eq!(image.dimensions(), expected, "{rows} × {columns}");
            assert!(image.pixels().all(|p| p.0 == [7]), "{rows} × {columns}");
        }
    }
}
