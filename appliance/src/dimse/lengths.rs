//! Bounds on a peer's data set, checked from its element headers alone before any parser sees
//! it: every declared length fits what contains it and what can arrive, every undefined-length
//! sequence and item is closed by its delimiter, and sequences nest at most
//! [`MAX_SEQUENCE_DEPTH`] deep. dicom-object's reader recurses once per level and allocates a
//! value's declared length before reading it, so without this a 10-byte identifier declaring
//! a 2 GiB element kept it busy for 25 s, a C-STORE declaring 0xFFFFFFF0 bytes took 4 GiB of
//! memory, and 50,000 nested sequences (16 bytes a level) overflowed a worker's stack and
//! aborted the process.
//!
//! [`Scanner`] takes the bytes in pieces as they arrive and holds only the open containers and
//! one partial header, so a C-STORE object is checked while it streams to disk. It can also
//! keep copies of a few top-level elements ([`Scanner::capturing`]): the store indexes those
//! without ever parsing the object. [`check`] is the same scan over bytes held in memory.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use thiserror::Error;

/// Deepest nesting of sequences accepted. Real objects nest a handful of levels (a code item
/// in a view code sequence in a per-frame group: 3; SR content trees rarely pass 10), and
/// dicom-object's recursive reader is comfortable far deeper on a 2 MiB stack; the thousands
/// of levels an attacker sends are refused with room to spare on both sides.
pub const MAX_SEQUENCE_DEPTH: usize = 32;

/// Largest top-level element [`Scanner::capturing`] keeps a copy of. The attributes the store
/// indexes are UIDs, names, codes and numbers; one larger than this is not kept (the index
/// then lacks it) rather than held in memory.
pub const MAX_CAPTURED_ELEMENT: usize = 64 * 1024;

/// How the data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

impl Encoding {
    pub const IMPLICIT_LE: Encoding = Encoding {
        explicit_vr: false,
        big_endian: false,
    };
    pub const EXPLICIT_LE: Encoding = Encoding {
        explicit_vr: true,
        big_endian: false,
    };
}

/// Why a data set's structure cannot be trusted. Byte offsets count from the data set's start.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LengthError {
    #[error("sequences nested over {MAX_SEQUENCE_DEPTH} deep at byte {at}")]
    TooDeep { at: u64 },
    #[error("{tag} declares {declared} bytes, room for {room} (byte {at})")]
    TooLong {
        tag: Tag,
        at: u64,
        declared: u64,
        room: u64,
    },
    #[error("{tag} declares {declared} bytes, only {arrived} arrived")]
    Truncated {
        tag: Tag,
        declared: u64,
        arrived: u64,
    },
    #[error("truncated element header at byte {at}")]
    TruncatedHeader { at: u64 },
    #[error("{tag} at byte {at} crosses the end of its sequence or item")]
    CrossesEnd { tag: Tag, at: u64 },
    #[error("{tag} at byte {at} has an unknown VR {vr:?}")]
    UnknownVr { tag: Tag, at: u64, vr: [u8; 2] },
    #[error("{tag} at byte {at}: {why}")]
    Misplaced {
        tag: Tag,
        at: u64,
        why: &'static str,
    },
    #[error("data set larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{tag} at byte {at} declares {declared} bytes, not a whole number of {vr:?} values")]
    PartialValue {
        tag: Tag,
        at: u64,
        vr: VR,
        declared: u32,
    },
}

/// Bytes of one value of a binary VR. dicom-object reads `declared / size` values and leaves
/// the remainder unread, so a US of 257 bytes shifts every later header by one byte: the fuzzer
/// found a 1 KiB identifier whose next "length" made it allocate and fill gigabytes for 10 s.
fn value_size(vr: VR) -> Option<u32> {
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => Some(4),
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => Some(8),
        _ => None,
    }
}

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);
const UNDEFINED: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Holds items (data sets).
    Sequence,
    Item,
    /// Encapsulated pixel data: items whose values are opaque fragments.
    Fragments,
}

/// An open sequence, item or fragment list: its value starts at `start` and a defined-length
/// one ends at `end`.
#[derive(Debug)]
struct Open {
    kind: Kind,
    tag: Tag,
    start: u64,
    end: Option<u64>,
}

/// The value being skipped: what it belongs to and how many of its bytes are still due.
#[derive(Debug)]
struct Value {
    tag: Tag,
    declared: u64,
    left: u64,
}

/// A streaming check of one data set; see the module documentation.
#[derive(Debug)]
pub struct Scanner {
    encoding: Encoding,
    /// Most bytes the data set may have (the whole buffer for [`check`]).
    limit: u64,
    /// Bytes consumed so far.
    at: u64,
    header: [u8; 12],
    have: usize,
    value: Option<Value>,
    open: Vec<Open>,
    depth: usize,
    capture: Capture,
    failed: Option<LengthError>,
    /// The header of the top-level Pixel Data has been read: everything before it was checked.
    pixel_data: bool,
}

/// Copies of chosen top-level elements, in the data set's own encoding.
#[derive(Debug, Default)]
struct Capture {
    tags: &'static [Tag],
    bytes: Vec<u8>,
    /// Where the element being copied starts in `bytes`, while one is.
    current: Option<usize>,
}

impl Capture {
    fn take(&mut self, bytes: &[u8]) {
        if let Some(start) = self.current {
            if self.bytes.len() - start + bytes.len() > MAX_CAPTURED_ELEMENT {
                self.bytes.truncate(start);
                self.current = None;
            } else {
                self.bytes.extend_from_slice(bytes);
            }
        }
    }
}

impl Scanner {
    /// A scan of a data set of at most `limit` bytes.
    pub fn new(encoding: Encoding, limit: u64) -> Scanner {
        Scanner {
            encoding,
            limit,
            at: 0,
            header: [0; 12],
            have: 0,
            value: None,
            open: Vec::new(),
            depth: 0,
            capture: Capture::default(),
            failed: None,
            pixel_data: false,
        }
    }

    /// Whether the top-level Pixel Data element's header has been read without error, so
    /// every element before it is known to be sound (what the thumbnailer reads).
    pub fn reached_pixel_data(&self) -> bool {
        self.pixel_data
    }

    /// Also keeps a copy of the top-level elements with these tags (each up to
    /// [`MAX_CAPTURED_ELEMENT`]); [`Scanner::finish`] returns them as one data set.
    pub fn capturing(mut self, tags: &'static [Tag]) -> Scanner {
        self.capture.tags = tags;
        self
    }

    /// Takes the next bytes of the data set. After an error every call returns it again.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), LengthError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.scan(bytes);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// The data set is complete: `Err` if it ended inside an element or a defined-length
    /// sequence or item. An undefined-length one left open at the very end is tolerated, as
    /// dicom-object tolerates it. Returns the captured elements.
    pub fn finish(self) -> Result<Vec<u8>, LengthError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Some(v) = &self.value {
            return Err(LengthError::Truncated {
                tag: v.tag,
                declared: v.declared,
                arrived: v.declared - v.left,
            });
        }
        if self.have > 0 {
            return Err(LengthError::TruncatedHeader { at: self.at });
        }
        if let Some((open, end)) = self.open.iter().find_map(|o| Some((o, o.end?))) {
            return Err(LengthError::Truncated {
                tag: open.tag,
                declared: end - open.start,
                arrived: self.at - open.start,
            });
        }
        let mut captured = self.capture.bytes;
        if let Some(start) = self.capture.current {
            // An element left open at the end is not kept: it may be cut anywhere.
            captured.truncate(start);
        }
        Ok(captured)
    }

    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), LengthError> {
        if self.at + self.have as u64 + bytes.len() as u64 > self.limit {
            return Err(LengthError::TooLarge { limit: self.limit });
        }
        while !bytes.is_empty() {
            if let Some(value) = &mut self.value {
                let n = value.left.min(bytes.len() as u64) as usize;
                value.left -= n as u64;
                let done = value.left == 0;
                self.capture.take(&bytes[..n]);
                self.at += n as u64;
                bytes = &bytes[n..];
                if done {
                    self.value = None;
                    self.close_ended();
                }
                continue;
            }
            let need = self.header_length();
            let n = (need - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == need && need == self.header_length() {
                let top_level_pixel_data = self.open.is_empty() && self.tag() == tags::PIXEL_DATA;
                self.element()?;
                self.pixel_data |= top_level_pixel_data;
            }
        }
        Ok(())
    }

    fn u16_at(&self, p: usize) -> u16 {
        let b = [self.header[p], self.header[p + 1]];
        if self.encoding.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, p: usize) -> u32 {
        let b = [
            self.header[p],
            self.header[p + 1],
            self.header[p + 2],
            self.header[p + 3],
        ];
        if self.encoding.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn tag(&self) -> Tag {
        Tag(self.u16_at(0), self.u16_at(2))
    }

    /// Bytes of the header being read: 8, or 12 once its explicit VR says so.
    fn header_length(&self) -> usize {
        if self.have < 8 || !self.encoding.explicit_vr || self.tag().0 == 0xFFFE {
            return 8;
        }
        match VR::from_binary([self.header[4], self.header[5]]) {
            Some(
                VR::OB
                | VR::OD
                | VR::OF
                | VR::OL
                | VR::OV
                | VR::OW
                | VR::SQ
                | VR::SV
                | VR::UC
                | VR::UN
                | VR::UR
                | VR::UT
                | VR::UV,
            ) => 12,
            _ => 8,
        }
    }

    /// Where the innermost defined-length container ends, else the limit.
    fn room(&self) -> (u64, bool) {
        match self.open.iter().rev().find_map(|o| o.end) {
            Some(end) => (end - self.at, true),
            None => (self.limit - self.at, false),
        }
    }

    /// A complete header is in `self.header`: check it and open what it starts.
    fn element(&mut self) -> Result<(), LengthError> {
        let length = self.have;
        self.have = 0;
        let tag = self.tag();
        let at = self.at;
        let (room, in_container) = self.room();
        if length as u64 > room {
            return Err(if in_container {
                LengthError::CrossesEnd { tag, at }
            } else {
                LengthError::TruncatedHeader { at }
            });
        }
        let (vr, declared) = if tag.0 == 0xFFFE {
            (None, self.u32_at(4))
        } else if self.encoding.explicit_vr {
            let bytes = [self.header[4], self.header[5]];
            let vr = VR::from_binary(bytes).ok_or(LengthError::UnknownVr { tag, at, vr: bytes })?;
            let declared = if length == 12 {
                self.u32_at(8)
            } else {
                u32::from(self.u16_at(6))
            };
            (Some(vr), declared)
        } else {
            let vr = StandardDataDictionary.by_tag(tag).map(|e| e.vr().relaxed());
            (vr, self.u32_at(4))
        };
        if self.open.is_empty() && self.capture.tags.contains(&tag) {
            self.capture.current = Some(self.capture.bytes.len());
        }
        let header = self.header;
        self.capture.take(&header[..length]);
        self.at += length as u64;
        let room = room - length as u64;
        let top = self.open.last().map(|o| (o.kind, o.end.is_none()));
        let misplaced = |why| Err(LengthError::Misplaced { tag, at, why });
        let fits = |declared: u32| {
            if u64::from(declared) > room {
                Err(LengthError::TooLong {
                    tag,
                    at,
                    declared: declared.into(),
                    room,
                })
            } else {
                Ok(u64::from(declared))
            }
        };
        if matches!(tag, ITEM_DELIMITER | SEQUENCE_DELIMITER) && declared != 0 {
            // dicom-object reads a stray delimiter's length as a value to allocate: the fuzzer
            // found one declaring 1 GiB at the top level (PS3.5 7.5: the length is zero).
            return misplaced("a delimiter with a non-zero length");
        }
        match tag {
            ITEM => match top {
                Some((Kind::Sequence, _)) if declared == UNDEFINED => {
                    self.push(Kind::Item, tag, None)?
                }
                Some((Kind::Sequence, _)) => {
                    let end = self.at + fits(declared)?;
                    self.push(Kind::Item, tag, Some(end))?;
                }
                Some((Kind::Fragments, _)) if declared == UNDEFINED => {
                    return misplaced("a pixel data fragment needs a defined length")
                }
                Some((Kind::Fragments, _)) => self.skip(tag, fits(declared)?),
                _ => return misplaced("an item outside a sequence"),
            },
            ITEM_DELIMITER => match top {
                Some((Kind::Item, true)) => self.pop(),
                // dicom-object skips a stray one at the top level; so does this check.
                None => {}
                _ => return misplaced("an item delimiter outside an undefined-length item"),
            },
            SEQUENCE_DELIMITER => match top {
                Some((Kind::Sequence | Kind::Fragments, true)) => self.pop(),
                None => {}
                _ => return misplaced("a sequence delimiter outside an undefined-length sequence"),
            },
            _ if matches!(top, Some((Kind::Sequence, _))) => {
                return misplaced("a sequence holds only items")
            }
            _ if matches!(top, Some((Kind::Fragments, _))) => {
                return misplaced("encapsulated pixel data holds only fragments")
            }
            // dicom-object reads any other undefined-length element as a sequence.
            _ if declared == UNDEFINED && tag == tags::PIXEL_DATA => {
                self.push(Kind::Fragments, tag, None)?
            }
            _ if declared == UNDEFINED => self.push(Kind::Sequence, tag, None)?,
            _ if vr == Some(VR::SQ) => {
                let end = self.at + fits(declared)?;
                self.push(Kind::Sequence, tag, Some(end))?;
            }
            _ => {
                if let Some(vr) = vr.filter(|vr| value_size(*vr).is_some_and(|n| declared % n != 0))
                {
                    return Err(LengthError::PartialValue {
                        tag,
                        at,
                        vr,
                        declared,
                    });
                }
                self.skip(tag, fits(declared)?)
            }
        }
        self.close_ended();
        Ok(())
    }

    fn push(&mut self, kind: Kind, tag: Tag, end: Option<u64>) -> Result<(), LengthError> {
        if kind == Kind::Sequence {
            if self.depth == MAX_SEQUENCE_DEPTH {
                return Err(LengthError::TooDeep { at: self.at });
            }
            self.depth += 1;
        }
        self.open.push(Open {
            kind,
            tag,
            start: self.at,
            end,
        });
        Ok(())
    }

    fn pop(&mut self) {
        if let Some(open) = self.open.pop() {
            if open.kind == Kind::Sequence {
                self.depth -= 1;
            }
        }
    }

    fn skip(&mut self, tag: Tag, declared: u64) {
        if declared > 0 {
            self.value = Some(Value {
                tag,
                declared,
                left: declared,
            });
        }
    }

    /// Closes the defined-length containers that end here, and the captured element if it
    /// ended.
    fn close_ended(&mut self) {
        if self.value.is_some() {
            return;
        }
        while self.open.last().is_some_and(|o| o.end == Some(self.at)) {
            self.pop();
        }
        if self.open.is_empty() {
            self.capture.current = None;
        }
    }
}

/// Checks a complete data set held in memory.
pub fn check(bytes: &[u8], encoding: Encoding) -> Result<(), LengthError> {
    let mut scanner = Scanner::new(encoding, bytes.len() as u64);
    scanner.feed(bytes)?;
    scanner.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQ_TAG: (u16, u16) = (0x0040, 0x0100); // Scheduled Procedure Step Sequence

    /// An implicit VR little endian header.
    fn h(group: u16, element: u16, length: u32) -> Vec<u8> {
        let mut out = group.to_le_bytes().to_vec();
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out
    }

    fn el(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
        [h(group, element, value.len() as u32), value.to_vec()].concat()
    }

    fn item(length: u32) -> Vec<u8> {
        h(0xFFFE, 0xE000, length)
    }

    fn item_end() -> Vec<u8> {
        h(0xFFFE, 0xE00D, 0)
    }

    fn seq_end() -> Vec<u8> {
        h(0xFFFE, 0xE0DD, 0)
    }

    fn sq(length: u32) -> Vec<u8> {
        h(SQ_TAG.0, SQ_TAG.1, length)
    }

    /// `levels` undefined-length sequences, each in an item of the one above, all closed.
    fn undefined_nest(levels: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..levels {
            out.extend(sq(UNDEFINED));
            out.extend(item(UNDEFINED));
        }
        for _ in 0..levels {
            out.extend(item_end());
            out.extend(seq_end());
        }
        out
    }

    /// The same nesting with defined lengths.
    fn defined_nest(levels: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for d in 0..levels {
            let size = 16 * (levels - d) as u32;
            out.extend(sq(size - 8));
            out.extend(item(size - 16));
        }
        out
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    /// What a case expects: accepted, or refused with this error variant.
    #[derive(Debug, PartialEq)]
    enum Want {
        Ok,
        TooDeep,
        TooLong,
        TruncatedHeader,
        CrossesEnd,
        UnknownVr,
        Misplaced,
        PartialValue,
    }

    fn kind(result: &Result<(), LengthError>) -> Want {
        match result {
            Ok(()) => Want::Ok,
            Err(LengthError::TooDeep { .. }) => Want::TooDeep,
            Err(LengthError::TooLong { .. }) => Want::TooLong,
            Err(LengthError::TruncatedHeader { .. }) => Want::TruncatedHeader,
            Err(LengthError::CrossesEnd { .. }) => Want::CrossesEnd,
            Err(LengthError::UnknownVr { .. }) => Want::UnknownVr,
            Err(LengthError::Misplaced { .. }) => Want::Misplaced,
            Err(LengthError::PartialValue { .. }) => Want::PartialValue,
            Err(e @ (LengthError::TooLarge { .. } | LengthError::Truncated { .. })) => {
                panic!("a whole buffer neither exceeds its limit nor ends early: {e}")
            }
        }
    }

    /// Feeds `bytes` one byte at a time, as the slowest peer would send them.
    fn check_bytewise(bytes: &[u8], encoding: Encoding) -> Result<(), LengthError> {
        let mut scanner = Scanner::new(encoding, bytes.len() as u64);
        for b in bytes {
            scanner.feed(std::slice::from_ref(b))?;
        }
        scanner.finish().map(|_| ())
    }

    #[test]
    fn implicit_vr_cases() {
        let patient_id = el(0x0010, 0x0020, b"12");
        let cases: Vec<(&str, Vec<u8>, Want)> = vec![
            ("empty", vec![], Want::Ok),
            (
                "two elements",
                cat(&[el(0x0010, 0x0010, b""), patient_id.clone()]),
                Want::Ok,
            ),
            (
                "2 GiB in ten bytes",
                cat(&[h(0x0010, 0x0010, 0x7FFF_FFFF), vec![1, 2]]),
                Want::TooLong,
            ),
            (
                "0xFFFFFFF0 before pixel data",
                cat(&[h(0x0008, 0x0070, 0xFFFF_FFF0), el(0x7FE0, 0x0010, &[0; 4])]),
                Want::TooLong,
            ),
            (
                "value one byte short",
                cat(&[h(0x0010, 0x0020, 3), b"12".to_vec()]),
                Want::TooLong,
            ),
            (
                "truncated header",
                patient_id[..5].to_vec(),
                Want::TruncatedHeader,
            ),
            (
                "element then a truncated header",
                cat(&[patient_id.clone(), vec![0x10, 0]]),
                Want::TruncatedHeader,
            ),
            (
                "undefined nesting at the limit",
                undefined_nest(MAX_SEQUENCE_DEPTH),
                Want::Ok,
            ),
            (
                "undefined nesting over the limit",
                undefined_nest(MAX_SEQUENCE_DEPTH + 1),
                Want::TooDeep,
            ),
            (
                "undefined nesting, 50,000 levels",
                undefined_nest(50_000),
                Want::TooDeep,
            ),
            (
                "defined nesting at the limit",
                defined_nest(MAX_SEQUENCE_DEPTH),
                Want::Ok,
            ),
            (
                "defined nesting over the limit",
                defined_nest(MAX_SEQUENCE_DEPTH + 1),
                Want::TooDeep,
            ),
            (
                "undefined nesting left open at the end",
                undefined_nest(3)[..48].to_vec(),
                Want::Ok,
            ),
            (
                "item longer than its sequence",
                cat(&[sq(16), item(8), el(0x0008, 0x0060, b"MG"), vec![0; 2]]),
                Want::TooLong,
            ),
            (
                "element longer than its item",
                cat(&[sq(24), item(16), h(0x0008, 0x0060, 255), vec![0; 8]]),
                Want::TooLong,
            ),
            (
                "header crossing the end of its item",
                cat(&[sq(12), item(4), vec![0x08, 0, 0x60, 0], patient_id.clone()]),
                Want::CrossesEnd,
            ),
            (
                "defined sequence cut short",
                cat(&[sq(40), item(UNDEFINED), patient_id.clone()]),
                Want::TooLong,
            ),
            (
                "undefined item in a defined sequence",
                cat(&[
                    sq(26),
                    item(UNDEFINED),
                    el(0x0008, 0x0060, b"MG"),
                    item_end(),
                    patient_id.clone(),
                ]),
                Want::Ok,
            ),
            (
                "defined item in an undefined sequence",
                cat(&[
                    sq(UNDEFINED),
                    item(10),
                    el(0x0008, 0x0060, b"MG"),
                    seq_end(),
                    patient_id.clone(),
                ]),
                Want::Ok,
            ),
            (
                "empty sequences and items",
                cat(&[
                    sq(0),
                    sq(8),
                    item(0),
                    sq(UNDEFINED),
                    seq_end(),
                    sq(UNDEFINED),
                    item(UNDEFINED),
                    item_end(),
                    seq_end(),
                ]),
                Want::Ok,
            ),
            (
                "an undefined item left open inside a defined sequence",
                cat(&[
                    sq(18),
                    item(UNDEFINED),
                    el(0x0008, 0x0060, b"MG"),
                    patient_id.clone(),
                ]),
                Want::CrossesEnd,
            ),
            ("item outside a sequence", cat(&[item(0)]), Want::Misplaced),
            (
                "element directly in a sequence",
                cat(&[sq(UNDEFINED), patient_id.clone(), seq_end()]),
                Want::Misplaced,
            ),
            (
                "item delimiter in a defined item",
                cat(&[sq(16), item(8), item_end()]),
                Want::Misplaced,
            ),
            (
                "sequence delimiter in an item",
                cat(&[sq(UNDEFINED), item(UNDEFINED), seq_end()]),
                Want::Misplaced,
            ),
            (
                "sequence delimiter closing a defined sequence",
                cat(&[sq(8), seq_end()]),
                Want::Misplaced,
            ),
            (
                "stray delimiters at the top level",
                cat(&[item_end(), seq_end(), patient_id.clone()]),
                Want::Ok,
            ),
            (
                "a stray sequence delimiter declaring 1 GiB",
                cat(&[
                    seq_end()[..4].to_vec(),
                    vec![0, 0, 0, 0x40],
                    patient_id.clone(),
                ]),
                Want::Misplaced,
            ),
            (
                "an item delimiter with a length",
                cat(&[
                    sq(UNDEFINED),
                    item(UNDEFINED),
                    h(0xFFFE, 0xE00D, 2),
                    vec![0; 2],
                ]),
                Want::Misplaced,
            ),
            (
                "an undefined-length non-sequence element is read as a sequence",
                cat(&[
                    h(0x0009, 0x1010, UNDEFINED),
                    item(UNDEFINED),
                    item_end(),
                    seq_end(),
                ]),
                Want::Ok,
            ),
            (
                "private element's value is not scanned",
                cat(&[el(0x0009, 0x1010, &sq(UNDEFINED))]),
                Want::Ok,
            ),
            (
                "encapsulated pixel data",
                cat(&[
                    h(0x7FE0, 0x0010, UNDEFINED),
                    item(0),
                    item(4),
                    vec![1, 2, 3, 4],
                    seq_end(),
                ]),
                Want::Ok,
            ),
            (
                "fragment of undefined length",
                cat(&[h(0x7FE0, 0x0010, UNDEFINED), item(UNDEFINED), seq_end()]),
                Want::Misplaced,
            ),
            (
                "fragment longer than the data set",
                cat(&[h(0x7FE0, 0x0010, UNDEFINED), item(100), vec![0; 4]]),
                Want::TooLong,
            ),
            (
                "element among fragments",
                cat(&[h(0x7FE0, 0x0010, UNDEFINED), patient_id.clone(), seq_end()]),
                Want::Misplaced,
            ),
            (
                "Rows (US) of three bytes",
                cat(&[el(0x0028, 0x0010, &[1, 0, 0]), patient_id.clone()]),
                Want::PartialValue,
            ),
            (
                "two US values",
                cat(&[el(0x0028, 0x0010, &[1, 0, 2, 0]), patient_id.clone()]),
                Want::Ok,
            ),
            (
                "a UL of six bytes",
                cat(&[el(0x0008, 0x0000, &[0; 6])]),
                Want::PartialValue,
            ),
            (
                "odd-length native pixel data (OW)",
                cat(&[el(0x7FE0, 0x0010, &[0; 5])]),
                Want::PartialValue,
            ),
            (
                "an odd-length text is read whole",
                cat(&[el(0x0010, 0x0010, b"ABC")]),
                Want::Ok,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(kind(&check(&bytes, Encoding::IMPLICIT_LE)), want, "{name}");
            assert_eq!(
                kind(&check_bytewise(&bytes, Encoding::IMPLICIT_LE)),
                want,
                "{name}, byte by byte"
            );
        }
    }

    /// An explicit VR header, short or long form by VR.
    fn x(group: u16, element: u16, vr: &[u8; 2], length: u32, big_endian: bool) -> Vec<u8> {
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = [u16b(group), u16b(element)].concat();
        if group == 0xFFFE {
            out.extend(u32b(length));
            return out;
        }
        out.extend(vr);
        if matches!(
            vr,
            b"OB" | b"OW" | b"SQ" | b"UN" | b"UT" | b"UC" | b"UR" | b"OF"
        ) {
            out.extend([0, 0]);
            out.extend(u32b(length));
        } else {
            out.extend(u16b(length as u16));
        }
        out
    }

    #[test]
    fn explicit_vr_cases() {
        for big_endian in [false, true] {
            let enc = Encoding {
                explicit_vr: true,
                big_endian,
            };
            let x = |g, e, vr, len| x(g, e, vr, len, big_endian);
            let cases: Vec<(&str, Vec<u8>, Want)> = vec![
                (
                    "short form",
                    cat(&[x(0x0010, 0x0020, b"LO", 2), b"12".to_vec()]),
                    Want::Ok,
                ),
                (
                    "long form",
                    cat(&[x(0x0009, 0x1010, b"OB", 4), vec![0; 4]]),
                    Want::Ok,
                ),
                (
                    "long form, header cut after 8 bytes",
                    x(0x0009, 0x1010, b"OB", 4)[..8].to_vec(),
                    Want::TruncatedHeader,
                ),
                (
                    "huge long form",
                    cat(&[x(0x0009, 0x1010, b"OB", 0xFFFF_FFF0), vec![0; 4]]),
                    Want::TooLong,
                ),
                (
                    "unknown VR",
                    cat(&[x(0x0010, 0x0020, b"ZZ", 2), b"12".to_vec()]),
                    Want::UnknownVr,
                ),
                (
                    // The fuzzer's: a US of 257 bytes, and what dicom-object then misread as
                    // a header declaring gigabytes.
                    "a US of 257 bytes",
                    cat(&[x(0x0028, 0x0002, b"US", 0x101), vec![0; 0x101]]),
                    Want::PartialValue,
                ),
                (
                    "an FD of 12 bytes, whatever its tag",
                    cat(&[x(0x0009, 0x1010, b"FD", 12), vec![0; 12]]),
                    Want::PartialValue,
                ),
                (
                    "an OB of odd length",
                    cat(&[x(0x0009, 0x1010, b"OB", 3), vec![0; 3]]),
                    Want::Ok,
                ),
                (
                    "defined sequence with an item",
                    cat(&[
                        x(0x0040, 0x0100, b"SQ", 18),
                        x(0xFFFE, 0xE000, b"  ", 10),
                        x(0x0008, 0x0060, b"CS", 2),
                        b"MG".to_vec(),
                    ]),
                    Want::Ok,
                ),
                (
                    "undefined UN read as a sequence",
                    cat(&[
                        x(0x0009, 0x1010, b"UN", UNDEFINED),
                        x(0xFFFE, 0xE000, b"  ", 0),
                        x(0xFFFE, 0xE0DD, b"  ", 0),
                    ]),
                    Want::Ok,
                ),
                (
                    "a defined SQ's nesting counts",
                    {
                        let mut out = Vec::new();
                        for _ in 0..=MAX_SEQUENCE_DEPTH {
                            out.extend(x(0x0040, 0x0100, b"SQ", UNDEFINED));
                            out.extend(x(0xFFFE, 0xE000, b"  ", UNDEFINED));
                        }
                        out
                    },
                    Want::TooDeep,
                ),
            ];
            for (name, bytes, want) in cases {
                assert_eq!(
                    kind(&check(&bytes, enc)),
                    want,
                    "{name}, big endian {big_endian}"
                );
                assert_eq!(
                    kind(&check_bytewise(&bytes, enc)),
                    want,
                    "{name}, big endian {big_endian}, byte by byte"
                );
            }
        }
    }

    #[test]
    fn streaming_refuses_lengths_beyond_what_arrived_and_the_limit() {
        // A streamed object's size is unknown until it ends: a value longer than what arrived
        // is found at the end, one longer than the limit at once.
        let declared = cat(&[h(0x0008, 0x0070, 0xFFFF_FFF0), b"ACME".to_vec()]);
        let mut scanner = Scanner::new(Encoding::IMPLICIT_LE, u64::MAX);
        scanner.feed(&declared).unwrap();
        assert_eq!(
            scanner.finish(),
            Err(LengthError::Truncated {
                tag: Tag(0x0008, 0x0070),
                declared: 0xFFFF_FFF0,
                arrived: 4
            })
        );
        let mut scanner = Scanner::new(Encoding::IMPLICIT_LE, 1 << 20);
        assert!(matches!(
            scanner.feed(&declared),
            Err(LengthError::TooLong {
                declared: 0xFFFF_FFF0,
                ..
            })
        ));
        // The error sticks.
        assert!(scanner.feed(b"more").is_err());
        // A defined-length sequence the object ends inside.
        let mut scanner = Scanner::new(Encoding::IMPLICIT_LE, u64::MAX);
        scanner.feed(&cat(&[sq(40), item(UNDEFINED)])).unwrap();
        assert_eq!(
            scanner.finish(),
            Err(LengthError::Truncated {
                tag: Tag(0x0040, 0x0100),
                declared: 40,
                arrived: 8
            })
        );
        let mut scanner = Scanner::new(Encoding::IMPLICIT_LE, 10);
        assert_eq!(
            scanner.feed(&[0; 11]),
            Err(LengthError::TooLarge { limit: 10 })
        );
        let message = check(&undefined_nest(50_000), Encoding::IMPLICIT_LE)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("sequences nested over 32 deep"),
            "{message}"
        );
    }

    #[test]
    fn captures_the_chosen_top_level_elements_only() {
        const KEEP: &[Tag] = &[
            Tag(0x0008, 0x0018),
            Tag(0x0040, 0x0100),
            Tag(0x0010, 0x0020),
        ];
        let uid = el(0x0008, 0x0018, b"1.2.3\0");
        let sequence = cat(&[
            sq(UNDEFINED),
            item(UNDEFINED),
            el(0x0008, 0x0018, b"9\0"),
            item_end(),
            seq_end(),
        ]);
        let big = el(0x0010, 0x0020, &vec![b'1'; MAX_CAPTURED_ELEMENT]);
        let bytes = cat(&[
            el(0x0008, 0x0016, b"1.2\0"),
            uid.clone(),
            sequence.clone(),
            big,
            el(0x7FE0, 0x0010, &[0; 4]),
        ]);
        for piece in [1, 7, bytes.len()] {
            let mut scanner = Scanner::new(Encoding::IMPLICIT_LE, u64::MAX).capturing(KEEP);
            for chunk in bytes.chunks(piece) {
                scanner.feed(chunk).unwrap();
            }
            assert_eq!(
                scanner.finish().unwrap(),
                cat(&[uid.clone(), sequence.clone()]),
                "pieces of {piece}"
            );
        }
    }
}
