//! Synthetic mammograms: what a real unit sends, without patient data.
//!
//! A 16-bit (12 bits stored) MONOCHROME2 image per view with a breast-shaped region against the
//! chest wall on the side its laterality puts it, tissue texture from a cheap deterministic
//! noise, and the MG attributes a screening service reads (view, laterality, dose, exposure).

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use crate::worklist::new_uid;

/// One of the four screening views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// `R` or `L`.
    pub laterality: &'static str,
    /// `CC` or `MLO`.
    pub position: &'static str,
}

/// The standard screening set, in the order radiographers take them.
pub const SCREENING_VIEWS: [View; 4] = [
    View {
        laterality: "R",
        position: "CC",
    },
    View {
        laterality: "L",
        position: "CC",
    },
    View {
        laterality: "R",
        position: "MLO",
    },
    View {
        laterality: "L",
        position: "MLO",
    },
];

/// Who and what the image belongs to (from the worklist item).
#[derive(Debug, Clone)]
pub struct Subject {
    pub patient_id: String,
    pub patient_name: String,
    pub birth_date: String,
    pub sex: String,
    pub accession_number: String,
    pub study_instance_uid: String,
    pub study_description: String,
}

/// One image of `view`, `rows` × `columns`, as a data set ready for C-STORE.
pub fn mammogram(
    subject: &Subject,
    series_instance_uid: &str,
    view: View,
    number: u32,
    rows: u16,
    columns: u16,
) -> InMemDicomObject {
    let pixels = pixels(view, rows, columns, number);
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
    let text = |s: &str| PrimitiveValue::from(s.to_string());
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, text("ISO_IR 192"));
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        text(uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION),
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, text(&new_uid()));
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        text(&subject.study_instance_uid),
    );
    put(tags::SERIES_INSTANCE_UID, VR::UI, text(series_instance_uid));
    put(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        text(&subject.study_description),
    );
    put(tags::MODALITY, VR::CS, text("MG"));
    put(tags::PATIENT_NAME, VR::PN, text(&subject.patient_name));
    put(tags::PATIENT_ID, VR::LO, text(&subject.patient_id));
    put(tags::PATIENT_BIRTH_DATE, VR::DA, text(&subject.birth_date));
    put(tags::PATIENT_SEX, VR::CS, text(&subject.sex));
    put(
        tags::ACCESSION_NUMBER,
        VR::SH,
        text(&subject.accession_number),
    );
    put(tags::SERIES_NUMBER, VR::IS, text("1"));
    put(tags::INSTANCE_NUMBER, VR::IS, text(&number.to_string()));
    put(
        tags::PRESENTATION_INTENT_TYPE,
        VR::CS,
        text("FOR PRESENTATION"),
    );
    put(tags::IMAGE_LATERALITY, VR::CS, text(view.laterality));
    put(tags::VIEW_POSITION, VR::CS, text(view.position));
    put(tags::KVP, VR::DS, text("29"));
    put(tags::EXPOSURE_INU_AS, VR::IS, text("118000"));
    put(tags::ORGAN_DOSE, VR::DS, text("1.21"));
    put(tags::ENTRANCE_DOSE_INM_GY, VR::DS, text("4.9"));
    put(tags::BODY_PART_THICKNESS, VR::DS, text("52"));
    put(tags::COMPRESSION_FORCE, VR::DS, text("110"));
    put(tags::ANODE_TARGET_MATERIAL, VR::CS, text("TUNGSTEN"));
    put(tags::FILTER_MATERIAL, VR::CS, text("RHODIUM"));
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        text("MONOCHROME2"),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(columns));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    put(tags::WINDOW_CENTER, VR::DS, text("1800"));
    put(tags::WINDOW_WIDTH, VR::DS, text("2600"));
    put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into()));
    obj
}

/// The breast: a half ellipse from the chest wall (left edge for R, right edge for L),
/// brighter towards the wall, with texture; the background is dark.
fn pixels(view: View, rows: u16, columns: u16, seed: u32) -> Vec<u16> {
    let (rows_f, cols_f) = (f32::from(rows), f32::from(columns));
    let mut state = 0x9E37_79B9u32 ^ seed.wrapping_mul(0x85EB_CA6B);
    let mut out = Vec::with_capacity(usize::from(rows) * usize::from(columns));
    let depth = if view.position == "MLO" { 0.82 } else { 0.72 };
    for y in 0..rows {
        let dy = (f32::from(y) - rows_f / 2.0) / (rows_f * 0.46);
        for x in 0..columns {
            let from_wall = if view.laterality == "R" {
                f32::from(x)
            } else {
                cols_f - 1.0 - f32::from(x)
            } / (cols_f * depth);
            let r2 = from_wall * from_wall + dy * dy;
            // xorshift32: fast, deterministic texture.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state >> 24) as f32; // 0..255
            let value = if r2 < 1.0 {
                1200.0 + 1600.0 * (1.0 - from_wall).max(0.0) + noise * 2.0
            } else {
                150.0 + noise * 0.3
            };
            out.push(value.min(4095.0) as u16);
        }
    }
    out
}
