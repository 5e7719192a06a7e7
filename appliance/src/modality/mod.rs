//! `gateway emulate-modality`: behaves as a mammography unit does, against any worklist/MPPS and
//! storage SCP (ours, or a real PACS): C-FIND its worklist, MPPS IN PROGRESS, four C-STOREs
//! (RCC, LCC, RMLO, LMLO), then MPPS COMPLETED or DISCONTINUED. Used by the demo and the
//! end-to-end tests; it stops at the first failure status and says which step failed.

pub mod images;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use thiserror::Error;
use time::OffsetDateTime;

use crate::dimse::scu::{Scu, ScuError};
use crate::dimse::{field, status, Command};
use crate::worklist::new_uid;
use images::{Subject, SCREENING_VIEWS};

/// What to emulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` of the worklist/MPPS SCP.
    pub mwl: String,
    pub mwl_aet: String,
    /// `HOST:PORT` of the storage SCP.
    pub pacs: String,
    pub pacs_aet: String,
    /// Our own AE title.
    pub calling_aet: String,
    /// Pick the worklist item by accession number…
    pub accession: Option<String>,
    /// …or by patient ID (the NHS number); with neither, the first MG item offered.
    pub patient_id: Option<String>,
    pub rows: u16,
    pub columns: u16,
    /// End the step DISCONTINUED instead of COMPLETED.
    pub discontinue: bool,
}

/// Why the emulated procedure stopped.
#[derive(Debug, Error)]
pub enum ModalityError {
    #[error(transparent)]
    Scu(#[from] ScuError),
    #[error("the worklist offers no matching MG item")]
    NoWorklistItem,
    #[error("{step} failed with status 0x{status:04X}{}", comment.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Failed {
        step: String,
        status: u16,
        comment: Option<String>,
    },
}

/// What the procedure did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub accession_number: String,
    pub mpps_instance_uid: String,
    pub stored_sop_instance_uids: Vec<String>,
}

/// Runs the whole procedure, calling `say` with one line per step.
pub async fn run(options: &Options, mut say: impl FnMut(&str)) -> Result<Report, ModalityError> {
    let mut mwl = Scu::connect(
        &options.mwl,
        &options.calling_aet,
        &options.mwl_aet,
        &[
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            uids::MODALITY_PERFORMED_PROCEDURE_STEP,
        ],
    )
    .await?;
    say(&format!(
        "associated with {} at {}",
        options.mwl_aet, options.mwl
    ));

    // 1. The worklist.
    let query = worklist_query(options);
    let responses = mwl
        .request(
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            Command {
                command_field: field::C_FIND_RQ,
                affected_sop_class_uid: Some(uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into()),
                priority: Some(0),
                ..Command::default()
            },
            Some(&query),
        )
        .await?;
    let last = responses.last().expect("at least the final response");
    check("C-FIND", last.status(), &last.command)?;
    let matches: Vec<&InMemDicomObject> = responses
        .iter()
        .filter_map(|r| r.data_set.as_ref())
        .collect();
    say(&format!("C-FIND: {} worklist item(s)", matches.len()));
    for item in &matches {
        say(&format!(
            "  {} {} ({})",
            text(item, tags::ACCESSION_NUMBER),
            text(item, tags::PATIENT_NAME),
            text(item, tags::PATIENT_ID)
        ));
    }
    let item = matches.first().ok_or(ModalityError::NoWorklistItem)?;
    let subject = Subject {
        patient_id: text(item, tags::PATIENT_ID),
        patient_name: text(item, tags::PATIENT_NAME),
        birth_date: text(item, tags::PATIENT_BIRTH_DATE),
        sex: text(item, tags::PATIENT_SEX),
        accession_number: text(item, tags::ACCESSION_NUMBER),
        study_instance_uid: Some(text(item, tags::STUDY_INSTANCE_UID))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(new_uid),
        study_description: text(item, tags::REQUESTED_PROCEDURE_DESCRIPTION),
    };
    let step = item
        .get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.first())
        .map(|s| text(s, tags::SCHEDULED_PROCEDURE_STEP_ID))
        .unwrap_or_default();
    let requested_procedure = text(item, tags::REQUESTED_PROCEDURE_ID);

    // 2. MPPS IN PROGRESS.
    let mpps_uid = new_uid();
    let (date, time) = now();
    let create = mpps_in_progress(options, &subject, &step, &requested_procedure, &date, &time);
    let response = mwl
        .request(
            uids::MODALITY_PERFORMED_PROCEDURE_STEP,
            Command {
                command_field: field::N_CREATE_RQ,
                affected_sop_class_uid: Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into()),
                affected_sop_instance_uid: Some(mpps_uid.clone()),
                ..Command::default()
            },
            Some(&create),
        )
        .await?;
    check("MPPS N-CREATE", response[0].status(), &response[0].command)?;
    say(&format!("MPPS N-CREATE {mpps_uid}: IN PROGRESS"));

    // 3. Four views.
    let mut pacs = Scu::connect(
        &options.pacs,
        &options.calling_aet,
        &options.pacs_aet,
        &[uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION],
    )
    .await?;
    say(&format!(
        "associated with {} at {}",
        options.pacs_aet, options.pacs
    ));
    let series = new_uid();
    let mut stored = Vec::new();
    for (i, view) in SCREENING_VIEWS.into_iter().enumerate() {
        let image = images::mammogram(
            &subject,
            &series,
            view,
            i as u32 + 1,
            options.rows,
            options.columns,
        );
        let sop = text(&image, tags::SOP_INSTANCE_UID);
        let response = pacs
            .request(
                uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
                Command {
                    command_field: field::C_STORE_RQ,
                    affected_sop_class_uid: Some(
                        uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION.into(),
                    ),
                    affected_sop_instance_uid: Some(sop.clone()),
                    priority: Some(0),
                    ..Command::default()
                },
                Some(&image),
            )
            .await?;
        let step = format!("C-STORE {}{}", view.laterality, view.position);
        check(&step, response[0].status(), &response[0].command)?;
        say(&format!("{step} {sop}: stored"));
        stored.push(sop);
    }
    pacs.release().await?;

    // 4. MPPS COMPLETED (or DISCONTINUED).
    let final_status = if options.discontinue {
        "DISCONTINUED"
    } else {
        "COMPLETED"
    };
    let (date, time) = now();
    let set = mpps_final(final_status, &series, &stored, &date, &time);
    let response = mwl
        .request(
            uids::MODALITY_PERFORMED_PROCEDURE_STEP,
            Command {
                command_field: field::N_SET_RQ,
                requested_sop_class_uid: Some(uids::MODALITY_PERFORMED_PROCEDURE_STEP.into()),
                requested_sop_instance_uid: Some(mpps_uid.clone()),
                ..Command::default()
            },
            Some(&set),
        )
        .await?;
    check("MPPS N-SET", response[0].status(), &response[0].command)?;
    say(&format!("MPPS N-SET {mpps_uid}: {final_status}"));
    mwl.release().await?;
    Ok(Report {
        accession_number: subject.accession_number,
        mpps_instance_uid: mpps_uid,
        stored_sop_instance_uids: stored,
    })
}

fn check(step: &str, status: u16, command: &Command) -> Result<(), ModalityError> {
    // Success, and the warnings a store or an MPPS update may answer with, are fine.
    if status == status::SUCCESS || status::is_warning(status) {
        Ok(())
    } else {
        Err(ModalityError::Failed {
            step: step.to_string(),
            status,
            comment: command.error_comment.clone(),
        })
    }
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().trim_end_matches('\0').to_string())
        .unwrap_or_default()
}

fn now() -> (String, String) {
    let now = OffsetDateTime::now_utc();
    (
        format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        ),
        format!("{:02}{:02}{:02}", now.hour(), now.minute(), now.second()),
    )
}

fn put(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::from(value.to_string()),
    ));
}

fn put_sequence(obj: &mut InMemDicomObject, tag: dicom_core::Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn worklist_query(options: &Options) -> InMemDicomObject {
    let mut query = InMemDicomObject::new_empty();
    put(
        &mut query,
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        "ISO_IR 192",
    );
    put(&mut query, tags::PATIENT_NAME, VR::PN, "");
    put(
        &mut query,
        tags::PATIENT_ID,
        VR::LO,
        options.patient_id.as_deref().unwrap_or(""),
    );
    put(&mut query, tags::PATIENT_BIRTH_DATE, VR::DA, "");
    put(&mut query, tags::PATIENT_SEX, VR::CS, "");
    put(
        &mut query,
        tags::ACCESSION_NUMBER,
        VR::SH,
        options.accession.as_deref().unwrap_or(""),
    );
    put(&mut query, tags::STUDY_INSTANCE_UID, VR::UI, "");
    put(&mut query, tags::REQUESTED_PROCEDURE_ID, VR::SH, "");
    put(
        &mut query,
        tags::REQUESTED_PROCEDURE_DESCRIPTION,
        VR::LO,
        "",
    );
    let mut step = InMemDicomObject::new_empty();
    put(&mut step, tags::MODALITY, VR::CS, "MG");
    put(&mut step, tags::SCHEDULED_STATION_AE_TITLE, VR::AE, "");
    put(
        &mut step,
        tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
        VR::DA,
        "",
    );
    put(
        &mut step,
        tags::SCHEDULED_PROCEDURE_STEP_START_TIME,
        VR::TM,
        "",
    );
    put(&mut step, tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH, "");
    put(
        &mut step,
        tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION,
        VR::LO,
        "",
    );
    put_sequence(
        &mut query,
        tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
        vec![step],
    );
    query
}

fn mpps_in_progress(
    options: &Options,
    subject: &Subject,
    step_id: &str,
    requested_procedure: &str,
    date: &str,
    time: &str,
) -> InMemDicomObject {
    let mut ds = InMemDicomObject::new_empty();
    put(&mut ds, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut ds, tags::PATIENT_NAME, VR::PN, &subject.patient_name);
    put(&mut ds, tags::PATIENT_ID, VR::LO, &subject.patient_id);
    put(
        &mut ds,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &subject.birth_date,
    );
    put(&mut ds, tags::PATIENT_SEX, VR::CS, &subject.sex);
    put(&mut ds, tags::MODALITY, VR::CS, "MG");
    put(
        &mut ds,
        tags::PERFORMED_STATION_AE_TITLE,
        VR::AE,
        &options.calling_aet,
    );
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_START_DATE,
        VR::DA,
        date,
    );
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_START_TIME,
        VR::TM,
        time,
    );
    put(&mut ds, tags::PERFORMED_PROCEDURE_STEP_END_DATE, VR::DA, "");
    put(&mut ds, tags::PERFORMED_PROCEDURE_STEP_END_TIME, VR::TM, "");
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_ID,
        VR::SH,
        &subject.accession_number,
    );
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
        VR::LO,
        &subject.study_description,
    );
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_STATUS,
        VR::CS,
        "IN PROGRESS",
    );
    let mut scheduled = InMemDicomObject::new_empty();
    put(
        &mut scheduled,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &subject.study_instance_uid,
    );
    put(
        &mut scheduled,
        tags::ACCESSION_NUMBER,
        VR::SH,
        &subject.accession_number,
    );
    put(
        &mut scheduled,
        tags::REQUESTED_PROCEDURE_ID,
        VR::SH,
        requested_procedure,
    );
    put(
        &mut scheduled,
        tags::SCHEDULED_PROCEDURE_STEP_ID,
        VR::SH,
        step_id,
    );
    put_sequence(
        &mut ds,
        tags::SCHEDULED_STEP_ATTRIBUTES_SEQUENCE,
        vec![scheduled],
    );
    put_sequence(&mut ds, tags::PERFORMED_SERIES_SEQUENCE, Vec::new());
    ds
}

fn mpps_final(
    status: &str,
    series: &str,
    stored: &[String],
    date: &str,
    time: &str,
) -> InMemDicomObject {
    let mut ds = InMemDicomObject::new_empty();
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_STATUS,
        VR::CS,
        status,
    );
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_END_DATE,
        VR::DA,
        date,
    );
    put(
        &mut ds,
        tags::PERFORMED_PROCEDURE_STEP_END_TIME,
        VR::TM,
        time,
    );
    let references = stored
        .iter()
        .map(|sop| {
            let mut r = InMemDicomObject::new_empty();
            put(
                &mut r,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            );
            put(&mut r, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop);
            r
        })
        .collect();
    let mut performed = InMemDicomObject::new_empty();
    put(&mut performed, tags::SERIES_INSTANCE_UID, VR::UI, series);
    put(
        &mut performed,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Screening views",
    );
    put(&mut performed, tags::RETRIEVE_AE_TITLE, VR::AE, "");
    put_sequence(&mut performed, tags::REFERENCED_IMAGE_SEQUENCE, references);
    put_sequence(&mut ds, tags::PERFORMED_SERIES_SEQUENCE, vec![performed]);
    ds
}
