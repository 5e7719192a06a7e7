//! What a thumbnail needs from a stored file, and no more: the attributes before Pixel Data and
//! the bytes of the first frame. A tomosynthesis object holds tens of frames of 40 MiB; opening
//! it whole to render frame 0 made a render child need gigabytes (stopped by its `RLIMIT_AS`,
//! so such objects got no thumbnail), and whatever follows Pixel Data — where a hostile object
//! hides its deeply nested sequences — was parsed for nothing.
//!
//! Two passes over the file: dicom-object reads the data set up to Pixel Data, then
//! dicom-parser's lazy token reader walks to the top-level Pixel Data element without keeping
//! a value and reads only frame 0 (the first frame's bytes of native pixel data; the fragments
//! of frame 0 when encapsulated, found from the Extended Offset Table, else the Basic Offset
//! Table, else one fragment per frame as PS3.5 A.4 allows). The result is a one-frame object
//! the renderer takes as it would the whole one.
//!
//! Deflated and big-endian data sets are opened whole as before: their bytes cannot be walked
//! in place, and neither is used for mammography.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::header::{HasLength, Header, Length};
use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Codec, Endianness};
use dicom_encoding::TransferSyntaxIndex as _;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::render::{ThumbnailError, MAX_FRAME_BYTES};
use crate::dimse::lengths::{Encoding, Scanner};

/// Most fragments read for one frame (real encoders split a frame into a handful).
const MAX_FRAGMENTS: usize = 4096;

/// Opens the stored object at `path` as a one-frame object.
pub fn open(path: &Path) -> Result<DefaultDicomObject, ThumbnailError> {
    let file = File::open(path).map_err(|e| ThumbnailError::Open(e.to_string()))?;
    read(BufReader::new(file))
}

/// [`open`] over any seekable source of a Part 10 file (with or without its preamble).
///
/// The file came from a peer. The store checked its structure as it arrived, but this reader is
/// its own guard too: before dicom-object (which allocates each declared length up front and
/// recurses per sequence) reads anything, the meta group is checked by hand and every element
/// before Pixel Data by the store's [`Scanner`] (the fuzzer found a 1 GiB element declared in
/// a 1.5 KiB file, and values inside sequences dicom-object sized from their headers alone).
pub fn read<R: Read + Seek>(mut source: R) -> Result<DefaultDicomObject, ThumbnailError> {
    let file_len = source
        .seek(SeekFrom::End(0))
        .and_then(|len| source.seek(SeekFrom::Start(0)).map(|_| len))
        .map_err(|e| ThumbnailError::Open(e.to_string()))?;
    let start = magic_offset(&mut source)?;
    let meta = read_meta_group(&mut source, start)?;
    let ts = TransferSyntaxRegistry
        .get(&meta.transfer_syntax)
        .ok_or_else(|| {
            ThumbnailError::Decode(format!("unknown transfer syntax {}", meta.transfer_syntax))
        })?;
    let reopen = |source: &mut R| {
        source
            .seek(SeekFrom::Start(start))
            .map_err(|e| ThumbnailError::Open(e.to_string()))
    };
    let deflated = matches!(ts.codec(), Codec::Dataset(_));
    if !deflated {
        source
            .seek(SeekFrom::Start(meta.data_set_start))
            .map_err(|e| ThumbnailError::Open(e.to_string()))?;
        let encoding = Encoding {
            explicit_vr: ts.uid() != dicom_dictionary_std::uids::IMPLICIT_VR_LITTLE_ENDIAN,
            big_endian: ts.endianness() == Endianness::Big,
        };
        let length = file_len.saturating_sub(meta.data_set_start);
        check_up_to_pixel_data(&mut source, encoding, length)?;
    }
    reopen(&mut source)?;
    if deflated || ts.endianness() == Endianness::Big {
        // A deflated data set cannot be walked in place (the store inflated and checked it as
        // it arrived); big-endian native pixel data would need its bytes swapped. Neither is
        // used for mammography: such objects are opened whole, as before.
        return OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(source)
            .map_err(|e| ThumbnailError::Open(e.to_string()));
    }
    let attributes = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .read_until(tags::PIXEL_DATA)
        .from_reader(&mut source)
        .map_err(|e| ThumbnailError::Open(e.to_string()))?;
    source
        .seek(SeekFrom::Start(meta.data_set_start))
        .map_err(|e| ThumbnailError::Open(e.to_string()))?;
    let mut tokens = LazyDataSetReader::new_with_ts(source, ts).map_err(open_error)?;
    let frame = first_frame(&mut tokens, &attributes)?;
    Ok(one_frame_object(attributes, frame))
}

/// Largest file meta group read (a real one is a few hundred bytes).
const MAX_META_GROUP: u32 = 64 * 1024;

/// What the file meta group says, checked element by element.
struct Meta {
    transfer_syntax: String,
    data_set_start: u64,
}

/// Reads the meta group ("DICM", then explicit VR little endian group 0002 elements) by hand:
/// small, fixed in layout, and read before any decoder is trusted with the file.
fn read_meta_group<R: Read + Seek>(source: &mut R, start: u64) -> Result<Meta, ThumbnailError> {
    let bad = |why: &str| ThumbnailError::Open(format!("bad file meta group: {why}"));
    source
        .seek(SeekFrom::Start(start))
        .map_err(|e| ThumbnailError::Open(e.to_string()))?;
    let mut head = [0u8; 16];
    if read_up_to(source, &mut head).map_err(|e| ThumbnailError::Open(e.to_string()))? < 16 {
        return Err(bad("the file ends inside it"));
    }
    // "DICM", then (0002,0000) UL 4 <length>.
    if head.get(4..10) != Some([0x02, 0x00, 0x00, 0x00, b'U', b'L'].as_slice()) {
        return Err(bad("it does not start with its group length"));
    }
    let length = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if length > MAX_META_GROUP {
        return Err(bad(&format!("{length} bytes, over {MAX_META_GROUP}")));
    }
    let mut group = vec![0u8; length as usize];
    if read_up_to(source, &mut group).map_err(|e| ThumbnailError::Open(e.to_string()))?
        < group.len()
    {
        return Err(bad("the file ends inside it"));
    }
    let mut transfer_syntax = None;
    let mut at = 0usize;
    while at < group.len() {
        let field = |from: usize, n: usize| group.get(at + from..at + from + n);
        let (Some(tag), Some(vr)) = (field(0, 4), field(4, 2)) else {
            return Err(bad("an element header is cut short"));
        };
        let (header, value_len) = match vr {
            b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN"
            | b"UR" | b"UT" | b"UV" => match field(8, 4).and_then(|l| l.try_into().ok()) {
                Some(l) => (12, u32::from_le_bytes(l) as usize),
                None => return Err(bad("an element header is cut short")),
            },
            _ => match field(6, 2).and_then(|l| l.try_into().ok()) {
                Some(l) => (8, usize::from(u16::from_le_bytes(l))),
                None => return Err(bad("an element header is cut short")),
            },
        };
        let Some(value) = group.get(at + header..(at + header).saturating_add(value_len)) else {
            return Err(bad("an element runs past the group"));
        };
        if tag.get(..2) != Some([0x02, 0x00].as_slice()) {
            return Err(bad("an element outside group 0002"));
        }
        if tag == [0x02, 0x00, 0x10, 0x00] {
            let text = String::from_utf8_lossy(value);
            transfer_syntax = Some(text.trim_end_matches(['\0', ' ']).to_string());
        }
        at += header + value_len;
    }
    Ok(Meta {
        transfer_syntax: transfer_syntax.ok_or_else(|| bad("no Transfer Syntax UID"))?,
        data_set_start: start + 16 + u64::from(length),
    })
}

/// Runs the store's own structure check ([`Scanner`], the one every C-STORE passes as it
/// arrives) over the data set until it has read the top-level Pixel Data header: every element
/// before it then has lengths that fit, whole values, closed containers and bounded nesting.
fn check_up_to_pixel_data<R: Read>(
    source: &mut R,
    encoding: Encoding,
    length: u64,
) -> Result<(), ThumbnailError> {
    let mut scanner = Scanner::new(encoding, length);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = source
            .read(&mut chunk)
            .map_err(|e| ThumbnailError::Open(e.to_string()))?;
        if n == 0 {
            // No pixel data; the first-frame walk says so.
            return scanner
                .finish()
                .map(|_| ())
                .map_err(|e| ThumbnailError::Open(format!("the data set is malformed: {e}")));
        }
        let fed = scanner.feed(chunk.get(..n).unwrap_or_default());
        if scanner.reached_pixel_data() {
            // What follows Pixel Data is never read, so its faults do not matter here.
            return Ok(());
        }
        fed.map_err(|e| ThumbnailError::Open(format!("the data set is malformed: {e}")))?;
    }
}

/// Where "DICM" is: after the 128-byte preamble, or at the start of a file without one.
fn magic_offset<R: Read + Seek>(source: &mut R) -> Result<u64, ThumbnailError> {
    let mut head = [0u8; 132];
    let read = read_up_to(source, &mut head).map_err(|e| ThumbnailError::Open(e.to_string()))?;
    if read >= 132 && head.get(128..132) == Some(b"DICM".as_slice()) {
        Ok(128)
    } else if read >= 4 && head.get(..4) == Some(b"DICM".as_slice()) {
        Ok(0)
    } else {
        Err(ThumbnailError::Open("not a DICOM file (no DICM)".into()))
    }
}

fn read_up_to<R: Read>(source: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(buf.get_mut(filled..).unwrap_or_default())? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn open_error(e: impl std::fmt::Display) -> ThumbnailError {
    ThumbnailError::Open(e.to_string())
}

/// The reader copies what the file holds, so a short value is noticed here.
fn cut_short(read: usize, declared: u64) -> Result<(), ThumbnailError> {
    if read as u64 == declared {
        Ok(())
    } else {
        Err(ThumbnailError::Open(format!(
            "the file ends {read} bytes into a {declared}-byte pixel data value"
        )))
    }
}

fn too_large(bytes: u64) -> ThumbnailError {
    ThumbnailError::Decode(format!(
        "the first frame declares {bytes} bytes, over the {MAX_FRAME_BYTES}-byte limit"
    ))
}

/// Frame 0 as stored.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Native { vr: VR, bytes: Vec<u8> },
    Fragments(Vec<Vec<u8>>),
}

/// Walks the top level to Pixel Data (skipping every value on the way) and reads frame 0.
fn first_frame<S: dicom_parser::StatefulDecode>(
    tokens: &mut LazyDataSetReader<S>,
    attributes: &DefaultDicomObject,
) -> Result<Frame, ThumbnailError> {
    let number = |tag| attributes.element(tag).ok()?.to_int::<u64>().ok();
    let frames = number(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let mut depth = 0usize;
    while let Some(token) = tokens.advance() {
        match token.map_err(open_error)? {
            LazyDataToken::SequenceStart { .. } => depth += 1,
            LazyDataToken::SequenceEnd => depth = depth.saturating_sub(1),
            LazyDataToken::PixelSequenceStart if depth == 0 => {
                return read_fragments(tokens, attributes, frames).map(Frame::Fragments);
            }
            // An icon's encapsulated pixel data, inside a sequence: skipped like any value.
            LazyDataToken::PixelSequenceStart => depth += 1,
            LazyDataToken::LazyValue { header, decoder } => {
                let length = header.length().get().unwrap_or(0);
                if depth == 0 && header.tag() == tags::PIXEL_DATA {
                    // Peer-declared numbers: saturating, so a huge one is "too large", not a wrap.
                    let bits = number(tags::ROWS)
                        .unwrap_or(0)
                        .saturating_mul(number(tags::COLUMNS).unwrap_or(0))
                        .saturating_mul(number(tags::SAMPLES_PER_PIXEL).unwrap_or(1))
                        .saturating_mul(number(tags::BITS_ALLOCATED).unwrap_or(16));
                    let frame_bytes = if frames > 1 {
                        bits.div_ceil(8).min(u64::from(length))
                    } else {
                        u64::from(length)
                    };
                    if frame_bytes > MAX_FRAME_BYTES {
                        return Err(too_large(frame_bytes));
                    }
                    let frame_bytes = frame_bytes as u32; // at most MAX_FRAME_BYTES
                                                          // Read as it arrives (no allocation of the declared size up front).
                    let mut bytes = Vec::new();
                    decoder
                        .read_to_vec(frame_bytes, &mut bytes)
                        .map_err(open_error)?;
                    cut_short(bytes.len(), u64::from(frame_bytes))?;
                    return Ok(Frame::Native {
                        vr: header.vr(),
                        bytes,
                    });
                }
                decoder.skip_bytes(length).map_err(open_error)?;
            }
            LazyDataToken::LazyItemValue { len, decoder } => {
                decoder.skip_bytes(len).map_err(open_error)?;
            }
            _ => {}
        }
    }
    Err(ThumbnailError::Decode(
        "the object has no pixel data".into(),
    ))
}

/// Reads the offset table and the fragments of frame 0 of an encapsulated Pixel Data.
fn read_fragments<S: dicom_parser::StatefulDecode>(
    tokens: &mut LazyDataSetReader<S>,
    attributes: &DefaultDicomObject,
    frames: u64,
) -> Result<Vec<Vec<u8>>, ThumbnailError> {
    // Frame 0's length in bytes of fragment values (Extended Offset Table Lengths), or the
    // offset where frame 1's first item starts (Basic Offset Table), when known.
    let extended_length = attributes
        .element(tags::EXTENDED_OFFSET_TABLE_LENGTHS)
        .ok()
        .and_then(|e| e.to_bytes().ok())
        .and_then(|b| Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)));
    let mut offset_table: Option<Vec<u8>> = None;
    let mut fragments: Vec<Vec<u8>> = Vec::new();
    let (mut value_bytes, mut item_bytes) = (0u64, 0u64);
    while let Some(token) = tokens.advance() {
        match token.map_err(open_error)? {
            LazyDataToken::LazyItemValue { len, decoder } => {
                if offset_table.is_none() {
                    // The Basic Offset Table: 4 bytes per frame.
                    if u64::from(len) > frames.saturating_mul(4).min(MAX_FRAME_BYTES) {
                        return Err(open_error(
                            "the basic offset table is larger than its frames",
                        ));
                    }
                    let mut table = Vec::new();
                    decoder.read_to_vec(len, &mut table).map_err(open_error)?;
                    offset_table = Some(table);
                    continue;
                }
                let frame1_at = offset_table
                    .as_deref()
                    .and_then(|t| Some(u32::from_le_bytes(t.get(4..8)?.try_into().ok()?)));
                let done = frames > 1
                    && !fragments.is_empty()
                    && match (extended_length, frame1_at) {
                        (Some(length), _) => value_bytes >= length,
                        (None, Some(at)) => item_bytes >= u64::from(at),
                        (None, None) => true,
                    };
                if done {
                    break;
                }
                value_bytes += u64::from(len);
                item_bytes += 8 + u64::from(len);
                if value_bytes > MAX_FRAME_BYTES {
                    return Err(too_large(value_bytes));
                }
                if fragments.len() >= MAX_FRAGMENTS {
                    return Err(ThumbnailError::Decode(format!(
                        "the first frame is split into more than {MAX_FRAGMENTS} fragments"
                    )));
                }
                let mut fragment = Vec::new();
                decoder
                    .read_to_vec(len, &mut fragment)
                    .map_err(open_error)?;
                cut_short(fragment.len(), u64::from(len))?;
                fragments.push(fragment);
            }
            LazyDataToken::ItemStart { len: Length(0) } if offset_table.is_none() => {
                // An empty offset table item may come without a value token.
                offset_table = Some(Vec::new());
            }
            LazyDataToken::SequenceEnd => break,
            _ => {}
        }
    }
    if fragments.is_empty() {
        return Err(ThumbnailError::Decode(
            "the encapsulated pixel data has no fragments".into(),
        ));
    }
    Ok(fragments)
}

/// The attributes with frame 0 as their whole pixel data.
fn one_frame_object(mut object: DefaultDicomObject, frame: Frame) -> DefaultDicomObject {
    if object.element(tags::NUMBER_OF_FRAMES).is_ok() {
        object.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("1"),
        ));
    }
    // They describe every frame of the original, not this one.
    object.remove_element(tags::EXTENDED_OFFSET_TABLE);
    object.remove_element(tags::EXTENDED_OFFSET_TABLE_LENGTHS);
    let value = match frame {
        Frame::Native { vr, bytes } => {
            let vr = if vr == VR::OB { VR::OB } else { VR::OW };
            DataElement::new(tags::PIXEL_DATA, vr, PrimitiveValue::U8(bytes.into()))
        }
        Frame::Fragments(fragments) => DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
        ),
    };
    object.put(value);
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dimse::lengths::MAX_SEQUENCE_DEPTH;
    use dicom_core::value::DataSetSequence;
    use dicom_dictionary_std::uids;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use std::io::Cursor;

    /// The pixel data of a test object.
    enum Pixels {
        /// Native 8-bit frames of 4 × 3, frame `f` filled with `f + 1`.
        Native { frames: u8 },
        /// Encapsulated: a basic offset table and fragments as given.
        Fragments {
            table: Vec<u32>,
            fragments: Vec<Vec<u8>>,
        },
    }

    /// A Part 10 file of a small MG object; `extra` adds elements before Pixel Data.
    fn file(frames: u8, pixels: Pixels, extra: &[DataElement<InMemDicomObject>]) -> Vec<u8> {
        let mut obj = InMemDicomObject::new_empty();
        let class = uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION;
        obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, class));
        obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.9"));
        for (tag, value) in [
            (tags::ROWS, 3u16),
            (tags::COLUMNS, 4),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, 8),
        ] {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
        }
        if frames > 1 {
            let text = frames.to_string();
            obj.put(DataElement::new(
                tags::NUMBER_OF_FRAMES,
                VR::IS,
                text.as_str(),
            ));
        }
        for element in extra {
            obj.put(element.clone());
        }
        let ts = match pixels {
            Pixels::Native { frames } => {
                let bytes: Vec<u8> = (0..frames).flat_map(|f| [f + 1; 12]).collect();
                obj.put(DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OB,
                    PrimitiveValue::U8(bytes.into()),
                ));
                uids::EXPLICIT_VR_LITTLE_ENDIAN
            }
            Pixels::Fragments { table, fragments } => {
                let sequence = PixelFragmentSequence::new(table, fragments);
                obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, sequence));
                uids::JPEG_BASELINE8_BIT
            }
        };
        let obj = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(ts)
                    .media_storage_sop_class_uid(class)
                    .media_storage_sop_instance_uid("2.25.9"),
            )
            .unwrap();
        let mut out = Vec::new();
        obj.write_all(&mut out).unwrap();
        out
    }

    fn frame_of(bytes: Vec<u8>) -> Result<(Option<String>, Frame), ThumbnailError> {
        let object = read(Cursor::new(bytes))?;
        let frames = object
            .element(tags::NUMBER_OF_FRAMES)
            .ok()
            .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()));
        let pixel_data = object.element(tags::PIXEL_DATA).unwrap();
        let frame = match pixel_data.value().fragments() {
            Some(fragments) => Frame::Fragments(fragments.to_vec()),
            None => Frame::Native {
                vr: pixel_data.vr(),
                bytes: pixel_data.to_bytes().unwrap().to_vec(),
            },
        };
        Ok((frames, frame))
    }

    fn fragments(lengths: &[usize]) -> Vec<Vec<u8>> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8 + 1; n])
            .collect()
    }

    #[test]
    fn only_the_first_frame_is_read() {
        let one = Some("1".to_string());
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<u8>, Option<String>, Frame)> = vec![
            ("native, one frame", file(1, Pixels::Native { frames: 1 }, &[]),
                None, Frame::Native { vr: VR::OB, bytes: vec![1; 12] }),
            ("native, three frames", file(3, Pixels::Native { frames: 3 }, &[]),
                one.clone(), Frame::Native { vr: VR::OB, bytes: vec![1; 12] }),
            ("one frame in two fragments",
                file(1, Pixels::Fragments { table: vec![], fragments: fragments(&[6, 4]) }, &[]),
                None, Frame::Fragments(fragments(&[6, 4]))),
            ("three frames, no offset table: a fragment each",
                file(3, Pixels::Fragments { table: vec![], fragments: fragments(&[6, 4, 2]) }, &[]),
                one.clone(), Frame::Fragments(fragments(&[6]))),
            ("two frames, the offset table puts frame 1 after two items",
                file(2, Pixels::Fragments { table: vec![0, 8 + 6 + 8 + 4], fragments: fragments(&[6, 4, 2]) }, &[]),
                one.clone(), Frame::Fragments(fragments(&[6, 4]))),
            ("two frames, the extended offset table's lengths say 10 bytes",
                file(2, Pixels::Fragments { table: vec![], fragments: fragments(&[6, 4, 2]) }, &[
                    DataElement::new(tags::EXTENDED_OFFSET_TABLE, VR::OV, PrimitiveValue::U64([0u64, 26].as_slice().into())),
                    DataElement::new(tags::EXTENDED_OFFSET_TABLE_LENGTHS, VR::OV, PrimitiveValue::U64([10u64, 2].as_slice().into())),
                ]),
                one.clone(), Frame::Fragments(fragments(&[6, 4]))),
        ];
        for (name, bytes, frames, frame) in cases {
            let (got_frames, got_frame) = frame_of(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((got_frames, got_frame), (frames, frame), "{name}");
        }
    }

    #[test]
    fn pixel_data_inside_an_icon_sequence_is_skipped() {
        let mut icon = InMemDicomObject::new_empty();
        icon.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(vec![9u8; 4].into()),
        ));
        let icons = DataElement::new(
            tags::ICON_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![icon]),
        );
        let bytes = file(1, Pixels::Native { frames: 1 }, &[icons]);
        let (_, frame) = frame_of(bytes).unwrap();
        assert_eq!(
            frame,
            Frame::Native {
                vr: VR::OB,
                bytes: vec![1; 12]
            }
        );
    }

    #[test]
    fn what_follows_the_pixel_data_is_never_parsed() {
        // 100,000 nested undefined-length sequences after Pixel Data (16 bytes a level): what
        // overflowed the thumbnail thread's stack when the whole object was opened.
        let mut bytes = file(1, Pixels::Native { frames: 1 }, &[]);
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[
                0x09, 0x00, 0x10, 0x00, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let (_, frame) = frame_of(bytes).unwrap();
        assert_eq!(
            frame,
            Frame::Native {
                vr: VR::OB,
                bytes: vec![1; 12]
            }
        );
    }

    #[test]
    fn broken_files_are_refused_with_a_reason() {
        let mut truncated = file(1, Pixels::Native { frames: 1 }, &[]);
        truncated.truncate(truncated.len() - 5);
        // Elements put before the data set's first one.
        let prefixed = |prefix: &[u8]| {
            let mut bytes = file(1, Pixels::Native { frames: 1 }, &[]);
            let group = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
            let at = 144 + group;
            bytes.splice(at..at, prefix.iter().copied());
            bytes
        };
        let gigabyte = prefixed(&[0x09, 0x00, 0x10, 0x00, b'U', b'N', 0, 0, 0, 0, 0, 0x40]);
        let mut nested = Vec::new();
        for _ in 0..=MAX_SEQUENCE_DEPTH {
            nested.extend_from_slice(&[0x09, 0x00, 0x10, 0x00, b'S', b'Q', 0, 0]);
            nested.extend_from_slice(&[0xFF; 4]);
            nested.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let nested = prefixed(&nested);
        let mut huge_meta = file(1, Pixels::Native { frames: 1 }, &[]);
        huge_meta[140..144].copy_from_slice(&u32::MAX.to_le_bytes());
        let cases: [(&str, Vec<u8>, &str); 6] = [
            ("not DICOM", b"hello".to_vec(), "no DICM"),
            (
                "1 GiB declared in a small file",
                gigabyte,
                "declares 1073741824 bytes, room for",
            ),
            (
                "nested too deep before the pixel data",
                nested,
                "nested over 32 deep",
            ),
            ("a meta group of 4 GiB", huge_meta, "bad file meta group"),
            (
                "pixel data cut short",
                truncated,
                "(7FE0,0010) declares 12 bytes, room for 7",
            ),
            (
                "no fragments",
                file(
                    1,
                    Pixels::Fragments {
                        table: vec![],
                        fragments: vec![],
                    },
                    &[],
                ),
                "no fragments",
            ),
        ];
        for (name, bytes, expected) in cases {
            let error = read(Cursor::new(bytes))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
