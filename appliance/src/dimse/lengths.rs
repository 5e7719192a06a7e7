//! A cheap sanity check of an in-memory data set before it is parsed: every defined length
//! must fit inside what was received. Without it a 10-byte identifier that declares a 2 GiB
//! element keeps the parser busy for tens of seconds (measured: 25 s) — a denial of service
//! from any peer that can associate.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// How the data set is encoded.
#[derive(Debug, Clone, Copy)]
pub struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

/// `Err` names the first element whose length does not fit.
pub fn check(bytes: &[u8], enc: Encoding) -> Result<(), String> {
    check_range(bytes, enc, 0)
}

fn check_range(bytes: &[u8], enc: Encoding, depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err("sequences nested more than 32 deep".into());
    }
    let u16_at = |p: usize| {
        let b = [bytes[p], bytes[p + 1]];
        if enc.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |p: usize| {
        let b = [bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]];
        if enc.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes.len() - pos < 8 {
            return Err(format!("truncated element header at byte {pos}"));
        }
        let tag = Tag(u16_at(pos), u16_at(pos + 2));
        let (vr, len, header) = if tag.0 == 0xFFFE {
            (None, u32_at(pos + 4), 8)
        } else if enc.explicit_vr {
            let vr = VR::from_binary([bytes[pos + 4], bytes[pos + 5]]);
            match vr {
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
                ) => {
                    if bytes.len() - pos < 12 {
                        return Err(format!("truncated element header at byte {pos}"));
                    }
                    (vr, u32_at(pos + 8), 12)
                }
                _ => (vr, u16_at(pos + 6) as u32, 8),
            }
        } else {
            let vr = StandardDataDictionary.by_tag(tag).map(|e| e.vr().relaxed());
            (vr, u32_at(pos + 4), 8)
        };
        pos += header;
        if len == u32::MAX {
            // Undefined length: the content and its delimiters follow as ordinary elements.
            continue;
        }
        let len = len as usize;
        if len > bytes.len() - pos {
            return Err(format!(
                "element {tag} declares {len} bytes but only {} remain",
                bytes.len() - pos
            ));
        }
        let value = &bytes[pos..pos + len];
        if vr == Some(VR::SQ) || tag == Tag(0xFFFE, 0xE000) {
            check_range(value, enc, depth + 1)?;
        }
        pos += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMPLICIT: Encoding = Encoding {
        explicit_vr: false,
        big_endian: false,
    };

    #[test]
    fn accepts_fitting_lengths_and_rejects_huge_ones() {
        // PatientName, empty; then PatientID "12".
        let ok = [
            0x10, 0, 0x10, 0, 0, 0, 0, 0, 0x10, 0, 0x20, 0, 2, 0, 0, 0, b'1', b'2',
        ];
        assert!(check(&ok, IMPLICIT).is_ok());
        let huge = [0x10, 0, 0x10, 0, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2];
        assert!(check(&huge, IMPLICIT).unwrap_err().contains("declares"));
        // A sequence whose item claims more than the sequence holds.
        let nested = [
            0x40, 0, 0x00, 0x01, 16, 0, 0, 0, // (0040,0100) SQ, 16 bytes
            0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0, // item, 8 bytes
            0x08, 0, 0x60, 0, 0xFF, 0, 0, 0, // Modality claims 255 bytes
        ];
        assert!(check(&nested, IMPLICIT).is_err());
    }
}
