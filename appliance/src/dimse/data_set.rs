//! In-memory data sets in and out of messages (C-FIND identifiers and responses, MPPS
//! attributes), in the transfer syntax of the presentation context they travel on. A received
//! data set's declared lengths and nesting are bounded ([`super::lengths`]) before the parser
//! sees it.

use dicom_dictionary_std::uids;
use dicom_encoding::transfer_syntax::Endianness;
use dicom_encoding::{Codec, TransferSyntax};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use thiserror::Error;

use super::lengths::{self, Encoding, LengthError};
use super::message::Context;

/// Why a data set could not be read or written. The text goes into the error comment of the
/// response, so it names the element or syntax at fault.
#[derive(Debug, Error)]
pub enum DataSetError {
    #[error("unknown transfer syntax {0}")]
    UnknownTransferSyntax(String),
    /// A declared length does not fit what was received, or sequences nest too deep.
    #[error(transparent)]
    Lengths(#[from] LengthError),
    /// Inflating would bypass the bounds; no AE of the gateway offers deflate for these.
    #[error("deflated data sets are not accepted for {0}")]
    Deflated(&'static str),
    #[error("{0}")]
    Read(String),
    #[error("{0}")]
    Write(String),
}

fn transfer_syntax(context: &Context) -> Result<&'static TransferSyntax, DataSetError> {
    // The registry is a unit struct: promoted to a static, so the entry it lends is too.
    let registry: &'static TransferSyntaxRegistry = &TransferSyntaxRegistry;
    registry
        .get(&context.transfer_syntax)
        .ok_or_else(|| DataSetError::UnknownTransferSyntax(context.transfer_syntax.clone()))
}

/// Parses a data set received on `context`.
pub fn decode(context: &Context, bytes: &[u8]) -> Result<InMemDicomObject, DataSetError> {
    let ts = transfer_syntax(context)?;
    let uid = ts.uid();
    if matches!(ts.codec(), Codec::Dataset(_)) {
        return Err(DataSetError::Deflated("in-memory data sets"));
    }
    let encoding = Encoding {
        explicit_vr: uid != uids::IMPLICIT_VR_LITTLE_ENDIAN,
        big_endian: ts.endianness() == Endianness::Big,
    };
    lengths::check(bytes, encoding)?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts).map_err(|e| DataSetError::Read(e.to_string()))
}

/// Encodes a data set for sending on `context`.
pub fn encode(context: &Context, obj: &InMemDicomObject) -> Result<Vec<u8>, DataSetError> {
    let ts = transfer_syntax(context)?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts)
        .map_err(|e| DataSetError::Write(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    use super::*;

    fn context(transfer_syntax: &str) -> Context {
        Context {
            id: 1,
            abstract_syntax: uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into(),
            transfer_syntax: transfer_syntax.into(),
        }
    }

    #[test]
    fn round_trips_and_bounds_lengths_before_parsing() {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::PATIENT_ID,
            VR::LO,
            PrimitiveValue::from("9434765919"),
        ));
        for ts in [
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            // Explicit VR big endian: retired, but the length check reads it.
            "1.2.840.10008.1.2.2",
        ] {
            let bytes = encode(&context(ts), &obj).unwrap();
            assert_eq!(decode(&context(ts), &bytes).unwrap(), obj, "{ts}");
        }
        // PatientName declaring 2 GiB in ten bytes: refused before the parser runs.
        let huge = [0x10, 0, 0x10, 0, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2];
        let implicit = context(uids::IMPLICIT_VR_LITTLE_ENDIAN);
        assert!(matches!(
            decode(&implicit, &huge),
            Err(DataSetError::Lengths(LengthError::TooLong { .. }))
        ));
        // 50,000 nested undefined-length sequences: refused before the recursive parser.
        let mut bomb = Vec::new();
        for _ in 0..50_000 {
            bomb.extend([0x40, 0, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]);
            bomb.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        assert!(matches!(
            decode(&implicit, &bomb),
            Err(DataSetError::Lengths(LengthError::TooDeep { .. }))
        ));
        // At the depth limit the recursive parser still reads it, on a test thread's stack.
        let nested = |levels: usize| {
            let mut out = Vec::new();
            for _ in 0..levels {
                out.extend([0x40, 0, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]);
                out.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
            }
            out.extend([0x08, 0, 0x60, 0, 2, 0, 0, 0, b'M', b'G']);
            for _ in 0..levels {
                out.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
                out.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            }
            out
        };
        let deepest = decode(&implicit, &nested(lengths::MAX_SEQUENCE_DEPTH)).unwrap();
        assert!(deepest
            .get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)
            .is_some());
        assert!(matches!(
            decode(&implicit, &nested(lengths::MAX_SEQUENCE_DEPTH + 1)),
            Err(DataSetError::Lengths(LengthError::TooDeep { .. }))
        ));
        assert!(matches!(
            decode(&context(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), &[]),
            Err(DataSetError::Deflated(_))
        ));
        assert!(matches!(
            decode(&context("1.2.3.4"), &[]),
            Err(DataSetError::UnknownTransferSyntax(ts)) if ts == "1.2.3.4"
        ));
    }
}
