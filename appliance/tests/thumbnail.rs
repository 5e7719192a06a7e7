//! Thumbnails from real objects in every transfer syntax the gateway decodes: a synthetic 16-bit
//! image compressed by dcmtk's own encoders, and pydicom's JPEG 2000 samples.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use appliance::thumbnail::{first_frame, render, Rendered, HEIGHT};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{open_file, FileMetaTableBuilder, InMemDicomObject};
use image::GenericImageView;

const ROWS: u16 = 832;
const COLUMNS: u16 = 640;

/// A 12-bit image: a bright half-ellipse on the left ("breast") on a dark background, with a
/// gradient inside so that windowing and scaling are visible.
fn write_synthetic(path: &Path, photometric: &str, window: Option<(f64, f64)>) {
    write_synthetic_frames(path, photometric, window, 1);
}

/// [`write_synthetic`] with every sample scaled to `bits` bits stored (16: the full range).
fn write_synthetic_bits(path: &Path, bits: u16) {
    write_synthetic(path, "MONOCHROME2", None);
    let mut object = open_file(path).unwrap();
    let scaled: Vec<u16> = object
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_multi_int::<u16>()
        .unwrap()
        .iter()
        .map(|&p| ((u32::from(p) << (bits - 12)) | u32::from(p & 0xF)) as u16)
        .collect();
    object.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(bits),
    ));
    object.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(bits - 1),
    ));
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(scaled.into()),
    ));
    object.write_to_file(path).unwrap();
}

/// [`write_synthetic`] with `frames` frames: frame 0 as there, the others its negative, so a
/// thumbnail of any frame but the first looks nothing like it.
fn write_synthetic_frames(path: &Path, photometric: &str, window: Option<(f64, f64)>, frames: u16) {
    let mut pixels = Vec::with_capacity(usize::from(ROWS) * usize::from(COLUMNS));
    for y in 0..ROWS {
        for x in 0..COLUMNS {
            let dy = (f64::from(y) - f64::from(ROWS) / 2.0) / (f64::from(ROWS) / 2.0);
            let dx = f64::from(x) / f64::from(COLUMNS);
            let inside = dx * dx + dy * dy < 0.8;
            pixels.push(if inside {
                1000 + (3000.0 * (1.0 - dx)) as u16
            } else {
                40
            });
        }
    }
    let mut obj = InMemDicomObject::new_empty();
    let sop = "2.25.1234567890123456789";
    let mut put = |tag, vr, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION.into(),
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, sop.into());
    put(tags::STUDY_INSTANCE_UID, VR::UI, "2.25.1".into());
    put(tags::SERIES_INSTANCE_UID, VR::UI, "2.25.2".into());
    put(tags::MODALITY, VR::CS, "MG".into());
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric.into());
    put(tags::ROWS, VR::US, PrimitiveValue::from(ROWS));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(COLUMNS));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    if let Some((center, width)) = window {
        put(tags::WINDOW_CENTER, VR::DS, center.to_string().into());
        put(tags::WINDOW_WIDTH, VR::DS, width.to_string().into());
    }
    if frames > 1 {
        put(tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string().into());
        let negative: Vec<u16> = pixels.iter().map(|&p| 4095 - p).collect();
        for _ in 1..frames {
            pixels.extend_from_slice(&negative);
        }
    }
    put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into()));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(
                    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
                )
                .media_storage_sop_instance_uid(sop),
        )
        .unwrap();
    file.write_to_file(path).unwrap();
}

/// Renders a file as the render child does (attributes and frame 0 only) and decodes the JPEG
/// back; for a single-frame file, the same JPEG as from the whole object opened.
fn thumbnail(path: &Path) -> image::DynamicImage {
    let rendered = render_first_frame(path);
    let whole = open_file(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    if whole.element(tags::NUMBER_OF_FRAMES).is_err() {
        let from_whole = render(&whole).unwrap();
        assert!(
            from_whole == rendered,
            "{}: frame 0 alone renders differently",
            path.display()
        );
    }
    let jpeg =
        image::load_from_memory_with_format(&rendered.jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(
        (jpeg.width(), jpeg.height()),
        (rendered.width, rendered.height)
    );
    jpeg
}

fn render_first_frame(path: &Path) -> Rendered {
    let object = first_frame::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    render(&object).unwrap_or_else(|e| panic!("render {}: {e}", path.display()))
}

/// Mean brightness of a vertical strip (its middle half, inside the ellipse), 0–255.
fn mean(image: &image::DynamicImage, x0: u32, x1: u32) -> f64 {
    let luma = image.to_luma8();
    let (mut sum, mut n) = (0u64, 0u64);
    for y in luma.height() / 4..luma.height() * 3 / 4 {
        for x in x0..x1 {
            sum += u64::from(luma.get_pixel(x, y)[0]);
            n += 1;
        }
    }
    sum as f64 / n as f64
}

fn compressed(dir: &Path, source: &Path, tool: &str, args: &[&str], name: &str) -> PathBuf {
    let out = dir.join(name);
    let output = common::dcmtk(tool)
        .args(args)
        .arg(source)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{tool} failed: {}",
        common::text(&output)
    );
    out
}

#[test]
fn every_decodable_transfer_syntax_gives_a_188_px_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("plain.dcm");
    write_synthetic(&source, "MONOCHROME2", None);
    let expected_width = (u32::from(COLUMNS) * HEIGHT + u32::from(ROWS) / 2) / u32::from(ROWS);
    let cases = [
        ("explicit VR little endian", source.clone()),
        (
            "JPEG lossless SV1",
            compressed(dir.path(), &source, "dcmcjpeg", &["+e1"], "jpegll.dcm"),
        ),
        (
            "JPEG lossless",
            compressed(dir.path(), &source, "dcmcjpeg", &["+el"], "jpegl.dcm"),
        ),
        (
            "RLE",
            compressed(dir.path(), &source, "dcmcrle", &[], "rle.dcm"),
        ),
        (
            "JPEG-LS lossless",
            compressed(dir.path(), &source, "dcmcjpls", &["+el"], "jls.dcm"),
        ),
        (
            "JPEG-LS near-lossless",
            compressed(dir.path(), &source, "dcmcjpls", &["+en"], "jls-near.dcm"),
        ),
    ];
    for (what, path) in cases {
        let image = thumbnail(&path);
        assert_eq!(image.height(), HEIGHT, "{what}");
        assert_eq!(image.width(), expected_width, "{what}");
        // The breast (left) is brighter than the background (right edge), whatever the codec.
        let left = mean(&image, 0, image.width() / 4);
        let right = mean(&image, image.width() - 5, image.width());
        assert!(
            left > right + 60.0,
            "{what}: left {left:.0} right {right:.0}"
        );
    }
}

#[test]
fn a_multi_frame_object_is_thumbnailed_from_its_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single.dcm");
    write_synthetic(&single, "MONOCHROME2", None);
    let expected = render_first_frame(&single);
    let multi = dir.path().join("multi.dcm");
    write_synthetic_frames(&multi, "MONOCHROME2", None, 4);
    // dcmcjpeg writes a basic offset table and one fragment per frame; dcmcrle an empty table.
    let cases = [
        ("native", multi.clone()),
        (
            "JPEG lossless",
            compressed(dir.path(), &multi, "dcmcjpeg", &["+el"], "jpegl.dcm"),
        ),
        (
            "JPEG lossless, fragments of 64 KiB",
            compressed(
                dir.path(),
                &multi,
                "dcmcjpeg",
                &["+el", "+fs", "64"],
                "jpegl-fs.dcm",
            ),
        ),
        (
            "RLE",
            compressed(dir.path(), &multi, "dcmcrle", &[], "rle.dcm"),
        ),
    ];
    for (what, path) in cases {
        assert!(
            render_first_frame(&path) == expected,
            "{what}: not frame 0's thumbnail"
        );
    }
}

#[test]
fn jpeg_2000_samples_decode() {
    for name in ["MR_small_jp2klossless.dcm", "JPEG2000.dcm"] {
        let path = common::sample(name);
        let image = thumbnail(&path);
        assert!(image.height() > 0 && image.height() <= HEIGHT, "{name}");
    }
}

#[test]
fn jpeg_2000_is_decoded_at_a_reduced_resolution_with_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("plain.dcm");
    // With the object's own window the mapping is fixed; min/max would follow the wavelet's
    // small overshoots at this synthetic image's hard edges.
    write_synthetic(&source, "MONOCHROME2", Some((2000.0, 4000.0)));
    let j2k = dir.path().join("j2k.dcm");
    let output = Command::new("gdcmconv")
        .args(["--j2k"])
        .arg(&source)
        .arg(&j2k)
        .output()
        .expect("gdcmconv is installed (scripts/deps.sh: libgdcm-tools)");
    assert!(
        output.status.success(),
        "gdcmconv: {}",
        common::text(&output)
    );
    let object = open_file(&j2k).unwrap();
    // 832 rows: two levels down (208 rows) is the smallest at least 188 high.
    let reduced = appliance::thumbnail::reduced_jpeg2000(&object).expect("reducible");
    let rows = reduced
        .element(tags::ROWS)
        .unwrap()
        .to_int::<u32>()
        .unwrap();
    assert_eq!(rows, u32::from(ROWS) / 4);
    let from_j2k = thumbnail(&j2k);
    let from_plain = thumbnail(&source);
    assert_eq!(from_j2k.dimensions(), from_plain.dimensions());
    let w = from_plain.width();
    for (x0, x1) in [(0, w / 4), (w / 4, w / 2), (w - 5, w)] {
        let (a, b) = (mean(&from_j2k, x0, x1), mean(&from_plain, x0, x1));
        assert!(
            (a - b).abs() < 12.0,
            "strip {x0}..{x1}: reduced {a:.0} vs full {b:.0}"
        );
    }
}

#[test]
fn monochrome1_is_inverted_and_the_voi_window_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mono2 = dir.path().join("mono2.dcm");
    let mono1 = dir.path().join("mono1.dcm");
    write_synthetic(&mono2, "MONOCHROME2", None);
    write_synthetic(&mono1, "MONOCHROME1", None);
    let (a, b) = (thumbnail(&mono2), thumbnail(&mono1));
    let w = a.width();
    assert!(
        mean(&a, 0, w / 4) > mean(&a, w - 5, w),
        "MONOCHROME2: tissue bright"
    );
    assert!(
        mean(&b, 0, w / 4) < mean(&b, w - 5, w),
        "MONOCHROME1: tissue dark after inversion"
    );

    // A narrow window low in the range saturates the tissue to white and keeps the background
    // black; min/max (no window) leaves the tissue gradient grey.
    let windowed = dir.path().join("windowed.dcm");
    write_synthetic(&windowed, "MONOCHROME2", Some((500.0, 200.0)));
    let c = thumbnail(&windowed);
    let tissue_windowed = mean(&c, w / 8, w / 4);
    let tissue_minmax = mean(&a, w / 8, w / 4);
    assert!(
        tissue_windowed > 245.0,
        "window applied: {tissue_windowed:.0}"
    );
    assert!(
        tissue_minmax < 230.0,
        "min/max without a window: {tissue_minmax:.0}"
    );
}

/// The native samples of a decompressed (or native) file's first frame.
fn native_samples(path: &Path) -> Vec<u16> {
    let object = open_file(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    object
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_multi_int::<u16>()
        .unwrap()
}

/// JPEG-LS, lossless and near-lossless, 8, 12 and 16 bits, from dcmtk's own encoder: our decoder's
/// samples equal dcmtk's `dcmdjpls` output exactly (and, lossless, the source), and the
/// thumbnail of the lossless stream is the source's.
#[test]
fn jpeg_ls_decodes_bit_exact_against_dcmdjpls() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, source) in sources(dir.path()) {
        let source = &source;
        let original = samples_u16(source);
        for (what, args, near) in [
            ("lossless", vec!["+el"], 0),
            ("near-lossless 2", vec!["+en"], 2),
            ("near-lossless 5", vec!["+en", "+md", "5"], 5),
        ] {
            let name = format!("{bits}-{}.dcm", what.replace(' ', "-"));
            let jls = compressed(dir.path(), source, "dcmcjpls", &args, &name);
            let by_dcmtk = compressed(dir.path(), &jls, "dcmdjpls", &[], &format!("d-{name}"));
            let object = first_frame::open(&jls).unwrap();
            let (header, ours) = appliance::thumbnail::codecs::jpegls::decode(&object)
                .unwrap_or_else(|e| panic!("{bits}-bit {what}: {e}"));
            assert_eq!(header.near, near, "{bits}-bit {what}");
            let theirs = samples_u16(&by_dcmtk);
            assert!(
                ours == theirs,
                "{bits}-bit {what}: samples differ from dcmdjpls's"
            );
            let deviation = ours
                .iter()
                .zip(&original)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(
                deviation <= u16::from(near),
                "{bits}-bit {what}: off by {deviation}"
            );
        }
        // Fill bytes before EOI (CharLS writes one after a scan ending in FF) leave the same
        // scan; two here, so the fragment keeps an even length.
        let lossless = dir.path().join(format!("{bits}-lossless.dcm"));
        let mut bytes = std::fs::read(&lossless).unwrap();
        let eoi = bytes
            .windows(2)
            .rposition(|w| w == [0xFF, 0xD9])
            .expect("an EOI");
        bytes.splice(eoi..eoi, [0xFF, 0xFF]);
        // The fragment grows by two bytes: rewrite its item's length.
        let item = bytes[..eoi]
            .windows(4)
            .rposition(|w| w == [0xFE, 0xFF, 0x00, 0xE0])
            .expect("the fragment's item");
        let length = u32::from_le_bytes(bytes[item + 4..item + 8].try_into().unwrap()) + 2;
        bytes[item + 4..item + 8].copy_from_slice(&length.to_le_bytes());
        let filled = dir.path().join(format!("{bits}-filled.dcm"));
        std::fs::write(&filled, &bytes).unwrap();
        let object = first_frame::open(&filled).unwrap();
        let (_, ours) = appliance::thumbnail::codecs::jpegls::decode(&object)
            .unwrap_or_else(|e| panic!("{bits}-bit with fill bytes: {e}"));
        assert!(
            ours == original,
            "{bits}-bit with fill bytes: samples differ"
        );

        assert!(
            render_first_frame(&lossless) == render_first_frame(source),
            "{bits}-bit: the lossless thumbnail is not the source's"
        );
        assert_eq!(thumbnail(&lossless).height(), HEIGHT);
    }
}

/// A JPEG-LS stream whose header the decoder must not be given (here a point transform, which it
/// would ignore and decode to wrong samples) is refused with the reason, before decoding.
#[test]
fn a_jpeg_ls_header_outside_t87_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("plain.dcm");
    write_synthetic(&source, "MONOCHROME2", None);
    let jls = compressed(dir.path(), &source, "dcmcjpls", &[], "jls.dcm");
    let mut bytes = std::fs::read(&jls).unwrap();
    // The scan header: FF DA, length 8, Ns 1, C, Tm, NEAR, ILV, Al.
    let sos = bytes
        .windows(4)
        .position(|w| w == [0xFF, 0xDA, 0x00, 0x08])
        .expect("a scan header");
    bytes[sos + 9] = 3;
    let tampered = dir.path().join("tampered.dcm");
    std::fs::write(&tampered, &bytes).unwrap();
    let object = first_frame::open(&tampered).unwrap();
    let error = render(&object).unwrap_err();
    assert!(
        error.to_string().contains("point transform of 3 bits"),
        "{error}"
    );
}

#[test]
fn small_images_are_not_upscaled() {
    let path = common::sample("CT_small.dcm");
    let object = open_file(&path).unwrap();
    let rows = object.element(tags::ROWS).unwrap().to_int::<u32>().unwrap();
    let image = thumbnail(&path);
    assert_eq!(image.height(), rows.min(HEIGHT));
    let _ = image.dimensions();
}

/// [`write_synthetic`] as 8-bit samples (Bits Allocated, Stored 8): the 12-bit values / 16.
fn write_synthetic_8bit(path: &Path) {
    write_synthetic(path, "MONOCHROME2", None);
    let mut object = open_file(path).unwrap();
    let narrowed: Vec<u8> = native_samples(path)
        .iter()
        .map(|&p| (p >> 4) as u8)
        .collect();
    for (tag, value) in [
        (tags::BITS_ALLOCATED, 8u16),
        (tags::BITS_STORED, 8),
        (tags::HIGH_BIT, 7),
    ] {
        object.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(narrowed.into()),
    ));
    object.write_to_file(path).unwrap();
}

/// The 8-, 12- and 16-bit sources the codec tests compress.
fn sources(dir: &Path) -> Vec<(u16, PathBuf)> {
    let (eight, twelve, sixteen) = (
        dir.join("plain8.dcm"),
        dir.join("plain12.dcm"),
        dir.join("plain16.dcm"),
    );
    write_synthetic_8bit(&eight);
    write_synthetic(&twelve, "MONOCHROME2", None);
    write_synthetic_bits(&sixteen, 16);
    vec![(8, eight), (12, twelve), (16, sixteen)]
}

/// Our codec's samples for a compressed file's first frame (`None`: the codec left it).
fn decoded_by_ours(path: &Path) -> Option<Vec<u16>> {
    let object = first_frame::open(path).unwrap();
    let (rows, columns) = (u32::from(ROWS), u32::from(COLUMNS));
    appliance::thumbnail::codecs::decode_grey(&object, rows, columns)
        .map(|decoded| decoded.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The samples of a native file as 16-bit values, whatever its Bits Allocated (dcmtk writes
/// 8-bit samples as OW too, two to a word).
fn samples_u16(path: &Path) -> Vec<u16> {
    let object = open_file(path).unwrap();
    let value = object.element(tags::PIXEL_DATA).unwrap();
    let allocated = object
        .element(tags::BITS_ALLOCATED)
        .unwrap()
        .to_int::<u16>()
        .unwrap();
    if allocated == 8 {
        value
            .to_bytes()
            .unwrap()
            .iter()
            .map(|&b| u16::from(b))
            .collect()
    } else {
        value.to_multi_int::<u16>().unwrap()
    }
}

/// JPEG lossless from dcmtk's own encoder — every predictor, 8, 12 and 16 bits, with and
/// without a point transform, and the SV1 transfer syntax — decodes to exactly dcmdjpeg's
/// samples (and, without a point transform, the source's).
#[test]
fn jpeg_lossless_decodes_bit_exact_against_dcmdjpeg_for_every_predictor() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, source) in sources(dir.path()) {
        let original = samples_u16(&source);
        let mut variants: Vec<(String, Vec<String>)> = vec![("SV1".into(), vec!["+e1".into()])];
        for predictor in 1..=7 {
            for point_transform in [0, 3] {
                variants.push((
                    format!("predictor {predictor}, point transform {point_transform}"),
                    [
                        "+el",
                        "+sv",
                        &predictor.to_string(),
                        "+pt",
                        &point_transform.to_string(),
                    ]
                    .map(String::from)
                    .to_vec(),
                ));
            }
        }
        for (what, args) in variants {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let name = format!("{bits}-{}.dcm", what.replace([' ', ','], "-"));
            let jpeg = compressed(dir.path(), &source, "dcmcjpeg", &args, &name);
            let by_dcmtk = compressed(dir.path(), &jpeg, "dcmdjpeg", &[], &format!("d-{name}"));
            let ours = decoded_by_ours(&jpeg)
                .unwrap_or_else(|| panic!("{bits}-bit {what}: left to jpeg-decoder"));
            let theirs = samples_u16(&by_dcmtk);
            let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            assert!(
                ours == theirs,
                "{bits}-bit {what}: samples differ from dcmdjpeg's, first at {first:?}"
            );
            if !what.ends_with("point transform 3") {
                assert!(
                    ours == original,
                    "{bits}-bit {what}: not the source's samples"
                );
            }
        }
    }
}

/// RLE from dcmtk's encoder, 8, 12 and 16 bits, decodes to the source's samples.
#[test]
fn rle_decodes_to_the_source_samples() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, source) in sources(dir.path()) {
        let rle = compressed(
            dir.path(),
            &source,
            "dcmcrle",
            &[],
            &format!("{bits}.rle.dcm"),
        );
        let ours = decoded_by_ours(&rle).expect("taken by our RLE codec");
        assert!(
            ours == samples_u16(&source),
            "{bits}-bit RLE: samples differ"
        );
        assert!(
            render_first_frame(&rle) == render_first_frame(&source),
            "{bits}-bit RLE: the thumbnail is not the source's"
        );
    }
}

/// Damaged streams — bytes overwritten anywhere, or cut short — are a decode error or some
/// frame of the right size from our JPEG lossless, RLE and JPEG-LS codecs, never a panic or a
/// hang.
#[test]
fn damaged_lossless_streams_are_errors_not_panics() {
    use appliance::thumbnail::codecs::{frame_stream, jpeg_lossless, jpegls, rle};
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("plain.dcm");
    write_synthetic(&source, "MONOCHROME2", None);
    let jpeg = compressed(
        dir.path(),
        &source,
        "dcmcjpeg",
        &["+el", "+sv", "6"],
        "j.dcm",
    );
    let rle_file = compressed(dir.path(), &source, "dcmcrle", &[], "r.dcm");
    let jls = compressed(dir.path(), &source, "dcmcjpls", &["+en"], "l.dcm");
    let (rows, columns) = (u32::from(ROWS), u32::from(COLUMNS));
    let count = usize::from(ROWS) * usize::from(COLUMNS);
    for (codec, path) in [
        ("JPEG lossless", &jpeg),
        ("RLE", &rle_file),
        ("JPEG-LS", &jls),
    ] {
        let object = first_frame::open(path).unwrap();
        let stream = frame_stream(&object).unwrap().into_owned();
        let decode = |bytes: &[u8]| match codec {
            "RLE" => rle::decode(bytes, rows, columns, 2),
            "JPEG-LS" => jpegls::decode_stream(bytes, rows, columns, 16).map(|(_, s)| Some(s)),
            _ => jpeg_lossless::decode(bytes, rows, columns),
        };
        assert!(
            matches!(decode(&stream), Ok(Some(_))),
            "{codec}: the intact stream"
        );
        let (mut errors, mut state) = (0, 0x2545_f491_u64);
        for trial in 0..400 {
            let mut damaged = stream.clone();
            // xorshift: a fixed sequence, so a failure is reproducible.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % damaged.len();
            if trial % 4 == 0 {
                damaged.truncate(at);
            } else {
                damaged[at] = (state >> 32) as u8;
            }
            match decode(&damaged) {
                Ok(Some(samples)) => assert_eq!(samples.len(), count, "{codec}, trial {trial}"),
                Ok(None) => {}
                Err(_) => errors += 1,
            }
        }
        assert!(errors > 0, "{codec}: no damage was noticed in 400 trials");
    }
}
