//! An object being received: its temporary file, and the checks its data set passes as the
//! bytes arrive (nesting depth, every declared length, delimiters: [`Scanner`]), which also
//! keep copies of the few elements the index needs. A refused object stops being written at
//! its first bad byte, and no received object is ever parsed whole: the index reads only the
//! copies, so an element declaring 4 GiB costs nothing and one that really is 4 GiB is never
//! loaded.

use std::io::{self, Write};

use dicom_dictionary_std::uids;
use dicom_encoding::transfer_syntax::Endianness;
use dicom_encoding::{Codec, TransferSyntax};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use flate2::write::DeflateDecoder;
use thiserror::Error;

use super::files::{PartFile, ReceivedFile};
use super::index::Attributes;
use super::StoreError;
use crate::dimse::lengths::{Encoding, LengthError, Scanner};

/// Most bytes a deflated data set may inflate to. Deflate packs up to ~1000:1, so without a
/// bound a few megabytes would keep a core busy inflating for minutes; deflated objects are
/// small in practice (reports, waveforms).
pub const MAX_INFLATED: u64 = 4 << 30;

/// Why a received data set is refused before it is stored.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Lengths(#[from] LengthError),
    #[error("the deflated data set does not inflate: {0}")]
    Inflate(String),
    #[error("unknown transfer syntax {0}")]
    UnknownTransferSyntax(String),
}

/// The streaming check of one data set in its transfer syntax.
pub struct DataSetCheck {
    scan: Scan,
    /// What the copies are parsed with (the inflated syntax for a deflated one).
    parse_as: &'static TransferSyntax,
}

enum Scan {
    Plain(Scanner),
    /// Inflated as it arrives; the scanner sees the inflated bytes.
    Deflated(Box<DeflateDecoder<ScannerSink>>),
}

/// A scanner as the inflater's output.
struct ScannerSink(Scanner);

impl Write for ScannerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.feed(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn registry_get(uid: &str) -> Result<&'static TransferSyntax, CheckError> {
    // The registry is a unit struct: promoted to a static, so the entry it lends is too.
    let registry: &'static TransferSyntaxRegistry = &TransferSyntaxRegistry;
    registry
        .get(uid)
        .ok_or_else(|| CheckError::UnknownTransferSyntax(uid.to_string()))
}

impl DataSetCheck {
    /// A check for a data set in `transfer_syntax`, keeping copies of [`Attributes::TAGS`].
    pub fn new(transfer_syntax: &str) -> Result<DataSetCheck, CheckError> {
        let ts = registry_get(transfer_syntax.trim_end_matches(['\0', ' ']))?;
        if matches!(ts.codec(), Codec::Dataset(_)) {
            let scanner =
                Scanner::new(Encoding::EXPLICIT_LE, MAX_INFLATED).capturing(Attributes::TAGS);
            return Ok(DataSetCheck {
                scan: Scan::Deflated(Box::new(DeflateDecoder::new(ScannerSink(scanner)))),
                parse_as: registry_get(uids::EXPLICIT_VR_LITTLE_ENDIAN)?,
            });
        }
        let encoding = Encoding {
            explicit_vr: ts.uid() != uids::IMPLICIT_VR_LITTLE_ENDIAN,
            big_endian: ts.endianness() == Endianness::Big,
        };
        Ok(DataSetCheck {
            // No bound on the size: the object streams to disk, and the disk's limits apply.
            scan: Scan::Plain(Scanner::new(encoding, u64::MAX).capturing(Attributes::TAGS)),
            parse_as: ts,
        })
    }

    /// The next bytes of the data set, as received.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), CheckError> {
        match &mut self.scan {
            Scan::Plain(scanner) => Ok(scanner.feed(bytes)?),
            Scan::Deflated(inflater) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    match inflater.write(rest) {
                        // The deflate stream has ended: what follows is the even-length pad
                        // byte (or junk no reader looks at).
                        Ok(0) => break,
                        Ok(n) => rest = &rest[n..],
                        Err(e) => return Err(inflate_error(inflater.get_mut(), e)),
                    }
                }
                Ok(())
            }
        }
    }

    /// The data set is complete: the end-of-object checks, and the copies.
    pub fn finish(self) -> Result<Captured, CheckError> {
        let scanner = match self.scan {
            Scan::Plain(scanner) => scanner,
            Scan::Deflated(mut inflater) => match inflater.try_finish() {
                Ok(()) => {
                    inflater
                        .finish()
                        .map_err(|e| CheckError::Inflate(e.to_string()))?
                        .0
                }
                Err(e) => return Err(inflate_error(inflater.get_mut(), e)),
            },
        };
        Ok(Captured {
            bytes: scanner.finish()?,
            transfer_syntax: self.parse_as,
        })
    }
}

/// The scanner's refusal if it refused, else the inflater's error.
fn inflate_error(sink: &mut ScannerSink, e: io::Error) -> CheckError {
    match sink.0.feed(&[]) {
        Err(refused) => CheckError::Lengths(refused),
        Ok(()) => CheckError::Inflate(e.to_string()),
    }
}

/// Copies of the indexed elements of a checked data set.
pub struct Captured {
    bytes: Vec<u8>,
    transfer_syntax: &'static TransferSyntax,
}

impl Captured {
    /// Reads the index's attributes from the copies: at most a few dozen elements of
    /// [`crate::dimse::lengths::MAX_CAPTURED_ELEMENT`] each, already bounded in depth.
    pub fn attributes(&self) -> Result<Attributes, StoreError> {
        let obj =
            InMemDicomObject::read_dataset_with_ts(self.bytes.as_slice(), self.transfer_syntax)
                .map_err(|e| StoreError::Unreadable(e.to_string()))?;
        Ok(Attributes::read(&obj))
    }
}

/// A C-STORE object arriving: written to its temporary file while its data set passes the
/// check; refused, the file is dropped at once and the rest of the bytes only drained.
pub struct IncomingObject {
    file: Option<PartFile>,
    check: DataSetCheck,
    refused: Option<CheckError>,
}

impl IncomingObject {
    pub fn new(file: PartFile, check: DataSetCheck) -> IncomingObject {
        IncomingObject {
            file: Some(file),
            check,
            refused: None,
        }
    }

    /// The object is complete: `Err` if its data set was refused (the temporary file is
    /// already gone), else the complete file and the copies of the indexed elements.
    pub fn finish(mut self) -> Result<(ReceivedFile, Captured), StoreError> {
        if let Some(refused) = self.refused.take() {
            return Err(StoreError::Malformed(refused));
        }
        let captured = self.check.finish().map_err(StoreError::Malformed)?;
        let file = self.file.take().expect("kept until refused or finished");
        let received = file.finish().map_err(StoreError::OutOfResources)?;
        Ok((received, captured))
    }
}

impl Write for IncomingObject {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.refused.is_none() {
            if let Err(e) = self.check.feed(buf) {
                self.refused = Some(e);
                // Nothing more of a refused object reaches the disk.
                self.file = None;
            }
        }
        if let Some(file) = &mut self.file {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    use super::*;

    /// An object with every indexed attribute, some others, and pixel data.
    fn object() -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        let mut text = |tag, vr, value: &str| {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
        };
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.1.2");
        text(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4");
        text(tags::STUDY_DATE, VR::DA, "20261122");
        text(tags::ACCESSION_NUMBER, VR::SH, "ACC1");
        text(tags::MODALITY, VR::CS, "MG");
        text(tags::MANUFACTURER, VR::LO, "ACME");
        text(tags::PATIENT_NAME, VR::PN, "SMÍTH^JANE");
        text(tags::PATIENT_ID, VR::LO, "9434765919");
        text(tags::KVP, VR::DS, "29");
        text(tags::EXPOSURE_TIME, VR::IS, "1200");
        text(tags::EXPOSURE, VR::IS, "118");
        text(tags::ANODE_TARGET_MATERIAL, VR::CS, "TUNGSTEN");
        text(tags::BODY_PART_THICKNESS, VR::DS, "52");
        text(tags::COMPRESSION_FORCE, VR::DS, "110");
        text(tags::VIEW_POSITION, VR::CS, "CC");
        text(tags::FILTER_MATERIAL, VR::CS, "RHODIUM");
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2");
        text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3");
        text(tags::SERIES_NUMBER, VR::IS, "1");
        text(tags::IMAGE_LATERALITY, VR::CS, "L");
        text(tags::ORGAN_DOSE, VR::DS, "1.21");
        text(tags::ENTRANCE_DOSE_INM_GY, VR::DS, "4.9");
        let mut code = InMemDicomObject::new_empty();
        code.put(DataElement::new(
            tags::CODE_MEANING,
            VR::LO,
            PrimitiveValue::from("cranio-caudal"),
        ));
        obj.put(DataElement::new(
            tags::VIEW_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![code]),
        ));
        obj.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(4u16),
        ));
        obj.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(4u16),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![7u16; 16].into()),
        ));
        obj
    }

    fn encoded(obj: &InMemDicomObject, uid: &str) -> Vec<u8> {
        let mut out = Vec::new();
        obj.write_dataset_with_ts(&mut out, registry_get(uid).unwrap())
            .unwrap();
        out
    }

    #[test]
    #[allow(deprecated)] // explicit VR big endian: retired, still received
    fn the_copies_give_the_attributes_the_whole_object_gives() {
        let obj = object();
        let whole = Attributes::read(&obj);
        for uid in [
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            uids::EXPLICIT_VR_BIG_ENDIAN,
            uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        ] {
            let bytes = encoded(&obj, uid);
            for piece in [1, 100, bytes.len()] {
                let mut check = DataSetCheck::new(uid).unwrap();
                for chunk in bytes.chunks(piece) {
                    check.feed(chunk).unwrap();
                }
                let attributes = check.finish().unwrap().attributes().unwrap();
                assert_eq!(
                    attributes.data_set, whole.data_set,
                    "{uid}, pieces of {piece}"
                );
                assert_eq!(attributes.sop_instance_uid, whole.sop_instance_uid, "{uid}");
                assert_eq!(attributes.series_number, whole.series_number, "{uid}");
                assert_eq!(attributes.study_date, whole.study_date, "{uid}");
                assert_eq!(
                    attributes.data_set.patient_name.as_deref(),
                    Some("SMÍTH^JANE")
                );
                assert_eq!(
                    attributes.data_set.view_code.as_deref(),
                    Some("cranio-caudal")
                );
            }
        }
    }

    #[test]
    fn a_deflated_bomb_and_bad_deflate_are_refused() {
        // 50,000 nested undefined-length sequences, deflated: 1.6 MB inflates from a few KB.
        let mut bomb = Vec::new();
        for _ in 0..50_000 {
            bomb.extend([
                0x40, 0, 0x00, 0x01, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            bomb.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflater.write_all(&bomb).unwrap();
        let deflated = deflater.finish().unwrap();
        assert!(deflated.len() < 20_000, "{}", deflated.len());
        let mut check = DataSetCheck::new(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN).unwrap();
        let refused = check
            .feed(&deflated)
            .and_then(|()| check.finish().map(|_| ()));
        assert!(
            matches!(
                refused,
                Err(CheckError::Lengths(LengthError::TooDeep { .. }))
            ),
            "{refused:?}"
        );
        // A deflate stream padded to even length, as DICOM pads it, is fine.
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        deflater
            .write_all(&encoded(&object(), uids::EXPLICIT_VR_LITTLE_ENDIAN))
            .unwrap();
        let mut padded = deflater.finish().unwrap();
        padded.push(0);
        let mut check = DataSetCheck::new(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN).unwrap();
        check.feed(&padded).unwrap();
        let attributes = check.finish().unwrap().attributes().unwrap();
        assert_eq!(attributes.sop_instance_uid.as_deref(), Some("1.2.3.4"));
        let mut check = DataSetCheck::new(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN).unwrap();
        let refused = check
            .feed(&[0xFF; 64])
            .and_then(|()| check.finish().map(|_| ()));
        assert!(
            matches!(refused, Err(CheckError::Inflate(_))),
            "{refused:?}"
        );
        assert!(matches!(
            DataSetCheck::new("1.2.3.4"),
            Err(CheckError::UnknownTransferSyntax(_))
        ));
    }
}
