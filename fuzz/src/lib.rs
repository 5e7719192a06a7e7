//! Fuzz targets: one function per parser of bytes a peer controls. Each takes arbitrary bytes and
//! must return whatever the input is; a panic, an abort (stack overflow, failed allocation) or a
//! hang is a bug in the gateway. The AFL binary (`src/bin/fuzz-afl.rs`, `make fuzz`) runs them
//! under coverage-guided mutation; `tests/corpus.rs` replays the saved corpus (`corpus/<target>/`)
//! through the same functions in every `cargo test`, so a crash once found and fixed stays fixed.
//!
//! Where an input can be read two ways (whole or in pieces, decoded and re-encoded), the target
//! also checks that both ways agree: a disagreement panics like a crash.

use std::sync::OnceLock;

use appliance::dimse::lengths::{self, Encoding, Scanner};
use appliance::dimse::message::{Assembler, Context, DataSink};
use appliance::dimse::{data_set, message_pdus, Command};
use appliance::storage::index::Attributes;
use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use dicom_ul::pdu::{read_pdu, Pdu};
use serde_json::Value;
use shared::relay::sas::ParsedToken;
use shared::wire::action::{Action, ActionReply};
use shared::wire::event::{Event, EventReply};
use shared::wire::{Keyring, SigningKey, Verification};

/// Explicit VR big endian: retired, still sent by old modalities, so still decoded.
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// A fuzz target: arbitrary bytes in, nothing out; panics on a bug.
pub type Target = fn(&[u8]);

/// Every target by the name `make fuzz` and the corpus directories use.
pub const TARGETS: &[(&str, Target)] = &[
    ("pdv", pdv),
    ("command", command),
    ("lengths", lengths),
    ("data_set", data_set),
    ("wire", wire),
    ("sas", sas),
    ("thumbnail", thumbnail),
    ("stored_file", stored_file),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Largest P-DATA PDU the gateway accepts by default (dicom-ul's default maximum).
const MAX_PDU: u32 = dicom_ul::pdu::DEFAULT_MAX_PDU;

/// The presentation contexts of a typical association: verification in implicit VR, worklist
/// and MPPS in explicit VR, storage in explicit VR big endian (to reach the other decoder).
fn contexts() -> Vec<Context> {
    let context = |id, abstract_syntax: &str, transfer_syntax: &str| Context {
        id,
        abstract_syntax: abstract_syntax.into(),
        transfer_syntax: transfer_syntax.into(),
    };
    vec![
        context(1, uids::VERIFICATION, uids::IMPLICIT_VR_LITTLE_ENDIAN),
        context(
            3,
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        ),
        context(
            5,
            uids::MODALITY_PERFORMED_PROCEDURE_STEP,
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
        ),
        context(
            7,
            uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            EXPLICIT_VR_BIG_ENDIAN,
        ),
    ]
}

/// PDV/message assembly: the input is a stream of PDUs as read off the socket. Each P-DATA PDU's
/// PDVs go to the [`Assembler`] as `Association::receive` passes them; each message it completes
/// has its in-memory data set decoded, and is split again by [`message_pdus`] and reassembled,
/// which must give back the same command and data.
pub fn pdv(data: &[u8]) {
    let contexts = contexts();
    let mut assembler: Assembler<Vec<u8>> = Assembler::new();
    let mut choose = |_: &Context, command: &Command| {
        if command.command_field == appliance::dimse::field::C_STORE_RQ {
            DataSink::Stream(Vec::new())
        } else {
            DataSink::Memory(Vec::new())
        }
    };
    let mut rest = data;
    while let Ok(Some(pdu)) = read_pdu(&mut rest, MAX_PDU, true) {
        let Pdu::PData { data: pdvs } = pdu else {
            continue;
        };
        match assembler.feed(pdvs, &contexts, &mut choose) {
            Ok(Some(message)) => {
                let bytes = match &message.data {
                    None => None,
                    Some(DataSink::Memory(bytes)) | Some(DataSink::Stream(bytes)) => {
                        Some(bytes.clone())
                    }
                    Some(DataSink::Failed(_)) => unreachable!("a Vec never fails to write"),
                };
                if let Some(bytes) = &bytes {
                    let _ = data_set::decode(&message.context, bytes);
                }
                reassemble(
                    &message.context,
                    &message.command,
                    bytes.as_deref(),
                    &contexts,
                );
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

/// Splits a message into PDUs at a small and at an unlimited peer maximum and feeds them back:
/// the same command (as encoded) and data must come out.
fn reassemble(context: &Context, command: &Command, data: Option<&[u8]>, contexts: &[Context]) {
    for peer_max in [0, 1024] {
        let mut assembler: Assembler<Vec<u8>> = Assembler::new();
        let mut choose = |_: &Context, _: &Command| DataSink::Memory(Vec::new());
        let mut out = None;
        for pdu in message_pdus(context.id, command, data, peer_max) {
            let Pdu::PData { data: pdvs } = pdu else {
                panic!("message_pdus made a PDU other than P-DATA");
            };
            assert!(out.is_none(), "PDUs after the message was complete");
            out = assembler
                .feed(pdvs, contexts, &mut choose)
                .unwrap_or_else(|e| panic!("our own PDUs were refused: {e}"));
        }
        let message = out.expect("our own PDUs complete the message");
        assert_eq!(message.command.encode(), command.encode());
        let again = match &message.data {
            Some(DataSink::Memory(bytes)) => Some(bytes.as_slice()),
            None => None,
            Some(_) => unreachable!("memory sinks only"),
        };
        // A command that announces no data set drops any data; else the data comes back whole.
        if command.has_data_set {
            assert_eq!(again, Some(data.unwrap_or_default()));
        } else {
            assert_eq!(again, None);
        }
    }
}

/// Command-set decode, and encode∘decode of what decoded: encoding is a fixed point after one
/// round (the first round may drop elements the gateway ignores and trim padding).
pub fn command(data: &[u8]) {
    let Ok(command) = Command::decode(data) else {
        return;
    };
    let _ = command.name();
    let once = command.encode();
    let decoded =
        Command::decode(&once).unwrap_or_else(|e| panic!("our own encoding does not decode: {e}"));
    assert_eq!(
        decoded.encode(),
        once,
        "encode is not stable after one round"
    );
    let response = Command::response_to(&command, 0x8001, 0x0000);
    Command::decode(&response.encode()).expect("a response decodes");
}

/// The encodings the first byte of a `lengths` input selects.
const ENCODINGS: [Encoding; 4] = [
    Encoding::IMPLICIT_LE,
    Encoding::EXPLICIT_LE,
    Encoding {
        explicit_vr: true,
        big_endian: true,
    },
    Encoding {
        explicit_vr: false,
        big_endian: true,
    },
];

/// `lengths::check` on a whole buffer, and the streaming [`Scanner`] (capturing the attributes
/// the store indexes) fed the same bytes in pieces: both must reach the same verdict, and
/// captured attributes must parse. Byte 0 picks the encoding, byte 1 the piece size.
pub fn lengths(data: &[u8]) {
    let [selector, piece, bytes @ ..] = data else {
        return;
    };
    let encoding = ENCODINGS[usize::from(selector % 4)];
    let whole = lengths::check(bytes, encoding);
    let mut scanner = Scanner::new(encoding, bytes.len() as u64).capturing(Attributes::TAGS);
    let piece = usize::from(*piece).max(1);
    let mut streamed = Ok(());
    for chunk in bytes.chunks(piece) {
        streamed = scanner.feed(chunk);
        if streamed.is_err() {
            break;
        }
    }
    let streamed = streamed.and_then(|()| scanner.finish());
    match (&whole, &streamed) {
        (Ok(()), Ok(captured)) => {
            let ts = if encoding.explicit_vr {
                uids::EXPLICIT_VR_LITTLE_ENDIAN
            } else {
                uids::IMPLICIT_VR_LITTLE_ENDIAN
            };
            if !encoding.big_endian {
                let context = Context {
                    id: 1,
                    abstract_syntax: uids::VERIFICATION.into(),
                    transfer_syntax: ts.into(),
                };
                if let Ok(obj) = data_set::decode(&context, captured) {
                    let _ = Attributes::read(&obj);
                }
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "whole and streamed checks disagree"),
        _ => panic!("whole {whole:?} vs streamed {:?}", streamed.map(|_| ())),
    }
}

/// The transfer syntaxes the first byte of a `data_set` input selects: the three plain ones,
/// deflate (refused), an encapsulated one (its data set is explicit VR) and an unknown UID.
const DATA_SET_SYNTAXES: [&str; 6] = [
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    uids::JPEG_BASELINE8_BIT,
    "1.2.3.4",
];

/// Data-set decode (bounds check, then dicom-object's parser), and a re-encode of what decoded.
pub fn data_set(data: &[u8]) {
    let [selector, bytes @ ..] = data else {
        return;
    };
    let context = Context {
        id: 1,
        abstract_syntax: uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into(),
        transfer_syntax: DATA_SET_SYNTAXES[usize::from(*selector) % DATA_SET_SYNTAXES.len()].into(),
    };
    let Ok(obj) = data_set::decode(&context, bytes) else {
        return;
    };
    let _ = Attributes::read(&obj);
    let _ = data_set::encode(&context, &obj);
}

/// One signing key for the `wire` target, and the verification that trusts it.
fn keys() -> &'static (SigningKey, Verification, Verification) {
    static KEYS: OnceLock<(SigningKey, Verification, Verification)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = SigningKey::from_base64("ZnV6ei1zaWduaW5nLWtleS0wMTIzNDU2Nzg5YWJjZGU=")
            .expect("a 32-byte base64 seed");
        let keyring = Keyring::new(vec![key.public_key()]);
        let lax = Verification {
            keyring: keyring.clone(),
            accept_unsigned: true,
        };
        (key, Verification::strict(keyring), lax)
    })
}

/// Envelope parsing, both directions: `Action::open`, `Event::open` and their replies, as text
/// arrives on a rendezvous. Unsigned input is read as the NHS-compatible gateway reads it; a
/// JSON object is also signed with the trusted key and opened strictly, so the fuzzer reaches
/// the field parsing behind the signature check.
pub fn wire(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key, strict, lax) = keys();
    let open_all = |text: &str, verification: &Verification| {
        let _ = Action::open(text, verification);
        let _ = ActionReply::open(text, verification);
        let _ = Event::open(text, verification);
        let _ = EventReply::open(text, verification);
        let _ = EventReply::open_nhs_compatible(text, verification);
    };
    open_all(text, lax);
    open_all(text, strict);
    if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) {
        let _ = Action::from_stored(Value::Object(map.clone()));
        key.sign(&mut map);
        let signed = Value::Object(map).to_string();
        open_all(&signed, strict);
        if let Ok(action) = Action::open(&signed, strict) {
            let _ = action.content_digest();
            let _ = action.command.action_type();
            let _ = Action::from_stored(action.to_value());
        }
        if let Ok(event) = Event::open(&signed, strict) {
            let _ = event.body.event_type();
        }
    }
}

/// SAS token parsing as the relay emulator checks a presented token: parse, verify against two
/// keys, and the audience check.
pub fn sas(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = ParsedToken::parse(text) else {
        return;
    };
    let _ = token.verify(&["primary-key", "secondary-key"], 1_700_000_000);
    let _ = token.covers("gateway.servicebus.windows.net", "gateway-01");
    let _ = token.covers("", "");
}

/// The transfer syntaxes the thumbnailer meets, selected by byte 0 of a `thumbnail` input.
pub const THUMBNAIL_SYNTAXES: [&str; 10] = [
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    uids::RLE_LOSSLESS,
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_EXTENDED12_BIT,
    uids::JPEG_LOSSLESS,
    uids::JPEG_LOSSLESS_SV1,
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
];

const PHOTOMETRIC: [&str; 6] = [
    "MONOCHROME2",
    "MONOCHROME1",
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "PALETTE COLOR",
];
const BITS_ALLOCATED: [u16; 4] = [16, 8, 32, 1];

/// Bytes of the `thumbnail` input header; the pixel data follows.
pub const THUMBNAIL_HEADER: usize = 16;

/// The thumbnail renderer on mutated pixel data: a 16-byte header gives the image attributes the
/// pixel pipeline reads, the rest is the pixel data (native, or the fragments of an encapsulated
/// syntax). Layout (see [`thumbnail_input`]): syntax, photometric, samples per pixel, bits
/// allocated, bits stored, high bit, pixel representation, flags (bit 0 window, bit 1 rescale,
/// bit 2 planar configuration, bit 3 two frames; bits 4–5 extra fragments), rows (u16 LE),
/// columns (u16 LE), window centre and width (u8 × 16 each).
pub fn thumbnail(data: &[u8]) {
    let Some(object) = thumbnail_object(data) else {
        return;
    };
    let _ = appliance::thumbnail::render(&object);
}

/// What the render child does with a stored file: read its attributes and first frame
/// (`thumbnail::first_frame`), then render. The input is a whole Part 10 file; the seeds are
/// the `thumbnail` seeds' objects as files, in every codec, some of them multi-frame.
pub fn stored_file(data: &[u8]) {
    if let Ok(object) = appliance::thumbnail::first_frame::read(std::io::Cursor::new(data)) {
        let _ = appliance::thumbnail::render(&object);
    }
}

/// The object a `thumbnail` input describes.
pub fn thumbnail_object(data: &[u8]) -> Option<DefaultDicomObject> {
    let (header, pixels) = data.split_first_chunk::<THUMBNAIL_HEADER>()?;
    let pick = |list: &[&'static str], b: u8| list[usize::from(b) % list.len()];
    let ts = pick(&THUMBNAIL_SYNTAXES, header[0]);
    let flags = header[7];
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
    let sop = "2.25.42";
    let class = uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION;
    put(tags::SOP_CLASS_UID, VR::UI, class.into());
    put(tags::SOP_INSTANCE_UID, VR::UI, sop.into());
    put(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        u16::from(header[2] % 5).into(),
    );
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        pick(&PHOTOMETRIC, header[1]).into(),
    );
    let bits_allocated = BITS_ALLOCATED[usize::from(header[3]) % BITS_ALLOCATED.len()];
    put(tags::BITS_ALLOCATED, VR::US, bits_allocated.into());
    put(tags::BITS_STORED, VR::US, u16::from(header[4]).into());
    put(tags::HIGH_BIT, VR::US, u16::from(header[5]).into());
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        u16::from(header[6] % 2).into(),
    );
    put(
        tags::ROWS,
        VR::US,
        u16::from_le_bytes([header[8], header[9]]).into(),
    );
    put(
        tags::COLUMNS,
        VR::US,
        u16::from_le_bytes([header[10], header[11]]).into(),
    );
    if flags & 1 != 0 {
        let (center, width) = (u32::from(header[12]) * 16, u32::from(header[13]) * 16);
        put(tags::WINDOW_CENTER, VR::DS, center.to_string().into());
        put(tags::WINDOW_WIDTH, VR::DS, width.to_string().into());
    }
    if flags & 2 != 0 {
        put(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            format!("-{}", header[14]).into(),
        );
        put(
            tags::RESCALE_SLOPE,
            VR::DS,
            format!("{}", header[15] % 4).into(),
        );
    }
    if flags & 4 != 0 {
        put(tags::PLANAR_CONFIGURATION, VR::US, 1u16.into());
    }
    if flags & 8 != 0 {
        put(tags::NUMBER_OF_FRAMES, VR::IS, "2".into());
    }
    let encapsulated = !matches!(
        ts,
        uids::EXPLICIT_VR_LITTLE_ENDIAN | uids::IMPLICIT_VR_LITTLE_ENDIAN | EXPLICIT_VR_BIG_ENDIAN
    );
    if encapsulated {
        // 1–4 fragments of equal size: where a real object's frame is split.
        let count = usize::from((flags >> 4) & 3) + 1;
        let size = pixels.len().div_ceil(count).max(1);
        let fragments: Vec<Vec<u8>> = pixels.chunks(size).map(<[u8]>::to_vec).collect();
        let sequence = PixelFragmentSequence::new(Vec::<u32>::new(), fragments);
        obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, sequence));
    } else if bits_allocated > 8 {
        let words: Vec<u16> = pixels
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .collect();
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(words.into()),
        ));
    } else {
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(pixels.to_vec().into()),
        ));
    }
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(sop),
    )
    .ok()
}

/// The `thumbnail` input for a real object (a seed): its attributes in the header, its first
/// frame's pixel data (fragments concatenated) after it. `None` for an object the header cannot
/// describe (a transfer syntax not in [`THUMBNAIL_SYNTAXES`]).
pub fn thumbnail_input(object: &DefaultDicomObject) -> Option<Vec<u8>> {
    let ts = object.meta().transfer_syntax().trim_end_matches('\0');
    let syntax = THUMBNAIL_SYNTAXES.iter().position(|s| *s == ts)?;
    let number = |tag| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .unwrap_or(0)
    };
    let photometric = object
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let bits_allocated = number(tags::BITS_ALLOCATED) as u16;
    let rows = (number(tags::ROWS) as u16).to_le_bytes();
    let columns = (number(tags::COLUMNS) as u16).to_le_bytes();
    let window = |tag| {
        object
            .element(tag)
            .ok()
            .and_then(|e| e.to_float64().ok())
            .map(|v| (v / 16.0).clamp(0.0, 255.0) as u8)
    };
    let (center, width) = (window(tags::WINDOW_CENTER), window(tags::WINDOW_WIDTH));
    let mut out = vec![
        syntax as u8,
        PHOTOMETRIC
            .iter()
            .position(|p| *p == photometric)
            .unwrap_or(0) as u8,
        number(tags::SAMPLES_PER_PIXEL) as u8,
        BITS_ALLOCATED
            .iter()
            .position(|b| *b == bits_allocated)
            .unwrap_or(0) as u8,
        number(tags::BITS_STORED) as u8,
        number(tags::HIGH_BIT) as u8,
        number(tags::PIXEL_REPRESENTATION) as u8,
        u8::from(center.is_some() && width.is_some())
            | (u8::from(number(tags::PLANAR_CONFIGURATION) == 1) << 2),
        rows[0],
        rows[1],
        columns[0],
        columns[1],
        center.unwrap_or(0),
        width.unwrap_or(0),
        0,
        1,
    ];
    let pixel_data = object.element(tags::PIXEL_DATA).ok()?;
    match pixel_data.value().fragments() {
        Some(fragments) => out.extend(fragments.iter().flatten()),
        None => out.extend_from_slice(&pixel_data.to_bytes().ok()?),
    }
    Some(out)
}
