#!/usr/bin/env python3
"""pynetdicom/pydicom side of the gateway's integration tests.

Each subcommand prints one JSON object on stdout, so the Rust tests can assert on it. dcmtk has
no MPPS tool and cannot send a C-CANCEL on purpose, hence this script.
"""
import argparse
import io
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, debug_logger  # noqa: F401
from pynetdicom.dimse_primitives import C_FIND, C_STORE, N_CREATE
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    SecondaryCaptureImageStorage,
)

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def out(obj):
    print(json.dumps(obj))
    sys.stdout.flush()


def associate(args, contexts):
    ae = AE(ae_title=args.calling)
    for c in contexts:
        ae.add_requested_context(c)
    assoc = ae.associate(args.host, args.port, ae_title=args.called)
    if not assoc.is_established:
        out({"error": "association failed"})
        sys.exit(2)
    return assoc


def status_of(rsp):
    return None if rsp is None or "Status" not in rsp else int(rsp.Status)


def mpps_dataset(uid_accession, status, omit):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = "MG"
    ds.PatientName = "Smith^Jane"
    ds.PatientID = "9434765919"
    ds.PerformedStationAETitle = "MODALITY1"
    ds.PerformedProcedureStepStartDate = "20261122"
    ds.PerformedProcedureStepStartTime = "093000"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepDescription = "Screening mammography"
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    if status is not None:
        ds.PerformedProcedureStepStatus = status
    step = Dataset()
    step.AccessionNumber = uid_accession or ""
    step.StudyInstanceUID = generate_uid()
    step.RequestedProcedureID = uid_accession or ""
    step.ScheduledProcedureStepID = uid_accession or ""
    ds.ScheduledStepAttributesSequence = Sequence([step])
    ds.PerformedSeriesSequence = Sequence([])
    for keyword in omit:
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def encode(ds, context):
    from pydicom.filewriter import write_dataset

    buf = io.BytesIO()
    fp = pydicom.filebase.DicomFileLike(buf)
    fp.is_little_endian = True
    fp.is_implicit_VR = context.transfer_syntax[0] == "1.2.840.10008.1.2"
    write_dataset(fp, ds)
    return io.BytesIO(buf.getvalue())


def cmd_mpps(args):
    """Runs a list of N-CREATE / N-SET operations on one association; prints their statuses."""
    ops = json.loads(args.ops)
    assoc = associate(args, [ModalityPerformedProcedureStep])
    results = []
    for op in ops:
        if op["op"] == "create" and op.get("uid") is None:
            # No instance UID: the SCP must assign one and name it in the response, which
            # send_n_create does not expose, so the request goes through the DIMSE layer.
            ds = mpps_dataset(op.get("accession"), op.get("status", "IN PROGRESS"), op.get("omit", []))
            context = assoc._get_valid_context(ModalityPerformedProcedureStep, "", "scu")
            req = N_CREATE()
            req.MessageID = 99
            req.AffectedSOPClassUID = ModalityPerformedProcedureStep
            req.AttributeList = encode(ds, context)
            assoc._reactor_checkpoint.clear()
            assoc.dimse.send_msg(req, context.context_id)
            _, rsp = assoc.dimse.get_msg(block=True)
            assoc._reactor_checkpoint.set()
            results.append({"status": None if rsp is None else int(rsp.Status),
                            "uid": None if rsp is None else str(rsp.AffectedSOPInstanceUID)})
        elif op["op"] == "create":
            ds = mpps_dataset(op.get("accession"), op.get("status", "IN PROGRESS"), op.get("omit", []))
            rsp, attrs = assoc.send_n_create(ds, ModalityPerformedProcedureStep, op.get("uid"))
            results.append({"status": status_of(rsp)})
        else:
            ds = Dataset()
            if op.get("status") is not None:
                ds.PerformedProcedureStepStatus = op["status"]
            ds.PerformedProcedureStepEndDate = "20261122"
            ds.PerformedProcedureStepEndTime = "094500"
            series = Dataset()
            series.SeriesInstanceUID = generate_uid()
            series.ReferencedImageSequence = Sequence([])
            ds.PerformedSeriesSequence = Sequence([series])
            rsp, attrs = assoc.send_n_set(ds, ModalityPerformedProcedureStep, op["uid"])
            results.append({"status": status_of(rsp)})
    assoc.release()
    out({"results": results})


def worklist_query():
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.AccessionNumber = ""
    step = Dataset()
    step.Modality = "MG"
    step.ScheduledProcedureStepStartDate = ""
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def cmd_cancel_find(args):
    """Sends a C-FIND and, without waiting, a C-CANCEL for it; counts what comes back."""
    assoc = associate(args, [ModalityWorklistInformationFind])
    context = assoc._get_valid_context(ModalityWorklistInformationFind, "", "scu")
    # Keep pynetdicom's reactor thread off the message queue while we read it ourselves.
    assoc._reactor_checkpoint.clear()
    req = C_FIND()
    req.MessageID = 7
    req.AffectedSOPClassUID = ModalityWorklistInformationFind
    req.Priority = 2
    buf = io.BytesIO()
    from pydicom.filewriter import write_dataset

    fp = pydicom.filebase.DicomFileLike(buf)
    fp.is_little_endian = True
    fp.is_implicit_VR = context.transfer_syntax[0] == "1.2.840.10008.1.2"
    write_dataset(fp, worklist_query())
    req.Identifier = io.BytesIO(buf.getvalue())
    assoc.dimse.send_msg(req, context.context_id)
    assoc.send_c_cancel(7, context.context_id)
    pending = 0
    final = None
    while True:
        _, rsp = assoc.dimse.get_msg(block=True)
        if rsp is None:
            break
        code = int(rsp.Status)
        if code in (0xFF00, 0xFF01):
            pending += 1
            continue
        final = code
        break
    assoc._reactor_checkpoint.set()
    assoc.release()
    out({"pending": pending, "final": final})


# Every return key of PS3.4 Table K.6-1 (Modality Worklist Information Model) of type 1, 1C or 2
# that a worklist SCP may be asked for: top level, then inside the Scheduled Procedure Step
# Sequence. Sequences are asked for empty.
K6_RETURN_KEYS = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientWeight",
    "ConfidentialityConstraintOnPatientDataDescription", "PatientState", "PregnancyStatus",
    "MedicalAlerts", "Allergies", "SpecialNeeds", "AdmissionID", "CurrentPatientLocation",
    "AccessionNumber", "ReferringPhysicianName", "RequestingPhysician", "StudyInstanceUID",
    "RequestedProcedureID", "RequestedProcedureDescription", "RequestedProcedurePriority",
    "PatientTransportArrangements", "ReferencedStudySequence", "ReferencedPatientSequence",
    "RequestedProcedureCodeSequence",
]
K6_STEP_RETURN_KEYS = [
    "Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription", "ScheduledProtocolCodeSequence",
    "ScheduledProcedureStepID", "ScheduledStationName", "ScheduledProcedureStepLocation",
    "PreMedication", "RequestedContrastAgent", "ScheduledProcedureStepStatus",
]


def ask_for(ds, keyword):
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    if dictionary_VR(tag_for_keyword(keyword)) == "SQ":
        setattr(ds, keyword, Sequence([]))
    else:
        setattr(ds, keyword, "")


def all_keys_query():
    ds = Dataset()
    for keyword in K6_RETURN_KEYS:
        ask_for(ds, keyword)
    step = Dataset()
    for keyword in K6_STEP_RETURN_KEYS:
        ask_for(step, keyword)
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def returned(ds, prefix=""):
    """Each element as `path: text`, sequences as their item count (`path: "<n items>"`)."""
    keys = {}
    for elem in ds:
        path = prefix + (elem.keyword or str(elem.tag))
        if elem.VR == "SQ":
            keys[path] = f"<{len(elem.value)} items>"
            for i, item in enumerate(elem.value):
                keys.update(returned(item, f"{path}[{i}]."))
        else:
            keys[path] = "" if elem.value is None else str(elem.value)
    return keys


def cmd_find(args):
    """A worklist C-FIND with pynetdicom (UTF-8 check); prints each match's names, and with
    --all-keys every K.6-1 return key as returned."""
    assoc = associate(args, [ModalityWorklistInformationFind])
    ds = all_keys_query() if args.all_keys else worklist_query()
    if args.name:
        ds.PatientName = args.name
    if args.charset:
        ds.SpecificCharacterSet = args.charset
    matches = []
    final = None
    for status, ident in assoc.send_c_find(ds, ModalityWorklistInformationFind):
        code = status_of(status)
        if code in (0xFF00, 0xFF01):
            match = {"name": str(ident.PatientName), "charset": ident.get("SpecificCharacterSet"),
                     "accession": ident.AccessionNumber}
            if args.all_keys:
                match["keys"] = returned(ident)
            matches.append(match)
        else:
            final = code
    assoc.release()
    out({"matches": matches, "final": final})


def cmd_store_raw(args):
    """Sends a C-STORE whose data set lacks the attributes named in --omit."""
    assoc = associate(args, [SecondaryCaptureImageStorage])
    context = assoc._get_valid_context(SecondaryCaptureImageStorage, "", "scu")
    assoc._reactor_checkpoint.clear()
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = args.dataset_uid or args.uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "9434765919"
    ds.Modality = "OT"
    for keyword in args.omit:
        if keyword in ds:
            delattr(ds, keyword)
    from pydicom.filewriter import write_dataset

    buf = io.BytesIO()
    fp = pydicom.filebase.DicomFileLike(buf)
    fp.is_little_endian = True
    fp.is_implicit_VR = context.transfer_syntax[0] == "1.2.840.10008.1.2"
    write_dataset(fp, ds)
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPClassUID = SecondaryCaptureImageStorage
    req.AffectedSOPInstanceUID = args.uid
    req.Priority = 2
    req.DataSet = io.BytesIO(buf.getvalue())
    assoc.dimse.send_msg(req, context.context_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    status = None if rsp is None else int(rsp.Status)
    comment = None if rsp is None or rsp.ErrorComment is None else str(rsp.ErrorComment)
    assoc._reactor_checkpoint.set()
    assoc.release()
    out({"status": status, "comment": comment})


def cmd_roles(args):
    """Associates proposing SCU/SCP role selection on every context (as some modalities do,
    dicom-rs issue 732), then echoes and stores one object."""
    from pynetdicom import build_role
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=args.calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(SecondaryCaptureImageStorage)
    ae.add_requested_context(MG_FOR_PRESENTATION)
    roles = [build_role(uid, scu_role=True, scp_role=True)
             for uid in (Verification, SecondaryCaptureImageStorage, MG_FOR_PRESENTATION)]
    assoc = ae.associate(args.host, args.port, ae_title=args.called, ext_neg=roles)
    if not assoc.is_established:
        out({"established": False})
        return
    echo = assoc.send_c_echo()
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "9434765919"
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    store = assoc.send_c_store(ds)
    assoc.release()
    out({"established": True, "echo": status_of(echo), "store": status_of(store)})


def cmd_commit_report(args):
    """Sends a Storage Commitment N-EVENT-REPORT as a PACS would on its own association (taking
    the SCP role by role selection): the given transaction, every UID committed."""
    from pynetdicom import build_role

    commitment = "1.2.840.10008.1.20.1"
    ae = AE(ae_title=args.calling)
    ae.add_requested_context(commitment)
    role = build_role(commitment, scu_role=False, scp_role=True)
    assoc = ae.associate(args.host, args.port, ae_title=args.called, ext_neg=[role])
    if not assoc.is_established:
        out({"established": False})
        return
    ds = Dataset()
    ds.TransactionUID = args.transaction
    items = []
    for uid in args.committed:
        item = Dataset()
        item.ReferencedSOPClassUID = MG_FOR_PRESENTATION
        item.ReferencedSOPInstanceUID = uid
        items.append(item)
    ds.ReferencedSOPSequence = Sequence(items)
    failed = []
    for uid in args.failed:
        item = Dataset()
        item.ReferencedSOPClassUID = MG_FOR_PRESENTATION
        item.ReferencedSOPInstanceUID = uid
        item.FailureReason = 0x0112
        failed.append(item)
    if failed:
        ds.FailedSOPSequence = Sequence(failed)
    event_type = 2 if failed else 1
    status, _ = assoc.send_n_event_report(ds, event_type, commitment, "1.2.840.10008.1.20.1.1")
    assoc.release()
    out({"established": True, "status": status_of(status)})


def cmd_make_mg(args):
    """Synthetic Digital Mammography X-Ray For Presentation images, full size by default."""
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    study = generate_uid()
    series = generate_uid()
    rows, cols = args.rows, args.cols
    yy, xx = np.mgrid[0:rows, 0:cols]
    paths = []
    for i in range(args.count):
        laterality = "L" if i % 2 == 0 else "R"
        view = "CC" if (i // 2) % 2 == 0 else "MLO"
        cx = 0 if laterality == "R" else cols
        mask = ((xx - cx) / (cols * 0.75)) ** 2 + ((yy - rows / 2) / (rows * 0.45)) ** 2 < 1
        pixels = (rng.normal(300, 40, (rows, cols)) + mask * 1800).clip(0, 4095).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = MG_FOR_PRESENTATION
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.StudyDate = "20261122"
        ds.Modality = "MG"
        ds.PatientName = args.name
        ds.PatientID = args.patient_id
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "F"
        ds.AccessionNumber = args.accession
        ds.SeriesNumber = 1
        ds.InstanceNumber = i + 1
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = laterality
        ds.ViewPosition = view
        code = Dataset()
        code.CodeValue = "399162004" if view == "CC" else "399368009"
        code.CodingSchemeDesignator = "SCT"
        code.CodeMeaning = "cranio-caudal" if view == "CC" else "medio-lateral oblique"
        ds.ViewCodeSequence = Sequence([code])
        ds.KVP = "28"
        ds.ExposureInuAs = 120000
        ds.ExposureTime = 1200
        ds.OrganDose = "1.25"
        ds.EntranceDoseInmGy = "5.1"
        ds.BodyPartThickness = "52"
        ds.CompressionForce = "110"
        ds.AnodeTargetMaterial = "TUNGSTEN"
        ds.FilterMaterial = "RHODIUM"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.tobytes()
        path = os.path.join(args.out, f"mg_{i:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    out({"files": paths})


def cmd_compare(args):
    """Whether two files hold the same data set (file meta aside)."""
    a = pydicom.dcmread(args.a)
    b = pydicom.dcmread(args.b)
    # Trailing padding (FFFC,FFFC) is not part of the object; storescu does not send it.
    for ds in (a, b):
        if 0xFFFCFFFC in ds:
            del ds[0xFFFCFFFC]
    # Compared by value: a sender may re-declare encapsulated Pixel Data from OW to OB.
    same = [(e.tag, e.value) for e in a] == [(e.tag, e.value) for e in b]
    out({"same": same, "ts": str(b.file_meta.TransferSyntaxUID)})


def cmd_make_worklist(args):
    """Writes worklist entries (the gateway's WorklistEntry JSON, a list in --items) as dcmtk
    wlmscpfs data files: one .wl file each in --out (the called AE title's directory), plus the
    lockfile wlmscpfs needs."""
    with open(args.items) as f:
        entries = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    open(os.path.join(args.out, "lockfile"), "w").close()
    for i, e in enumerate(entries):
        meta = FileMetaDataset()
        # dcmtk's own class for worklist files without an IOD (dump2dcm writes the same).
        meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.AccessionNumber = e["accession_number"]
        ds.ReferringPhysicianName = ""
        ds.PatientName = e["participant"]["name"]
        ds.PatientID = e["participant"]["nhs_number"]
        ds.IssuerOfPatientID = "NHS"
        ds.PatientBirthDate = e["participant"]["birth_date"]
        ds.PatientSex = e["participant"]["sex"]
        ds.StudyInstanceUID = e["study_instance_uid"]
        ds.RequestedProcedureDescription = e["procedure"]["study_description"]
        step = Dataset()
        step.Modality = e["procedure"]["modality"]
        # Type 1 in a worklist file (wlmscpfs rejects a file without it); the gateway's
        # "any station" has no DICOM spelling, so the files name one.
        step.ScheduledStationAETitle = e.get("scheduled_station_ae") or args.station
        step.ScheduledProcedureStepStartDate = e["scheduled"]["date"]
        step.ScheduledProcedureStepStartTime = e["scheduled"]["time"]
        step.ScheduledPerformingPhysicianName = ""
        step.ScheduledProcedureStepDescription = e["procedure"]["study_description"]
        step.ScheduledProcedureStepID = e["scheduled_procedure_step_id"]
        step.ScheduledProcedureStepStatus = e["status"]
        ds.ScheduledProcedureStepSequence = Sequence([step])
        ds.RequestedProcedureID = e["requested_procedure_id"]
        ds.save_as(os.path.join(args.out, f"item{i:06d}.wl"), enforce_file_format=True)
    out({"files": len(entries), "dir": args.out})


def cmd_paths(args):
    import data_store
    out({
        "pydicom": os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"),
        "pydicom_data": os.path.join(os.path.dirname(data_store.__file__), "data"),
    })


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    def net(name):
        s = sub.add_parser(name)
        s.add_argument("host")
        s.add_argument("port", type=int)
        s.add_argument("called")
        s.add_argument("--calling", default="PYNETDICOM")
        return s

    s = net("mpps")
    s.add_argument("ops")
    s = net("cancel-find")
    s = net("find")
    s.add_argument("--name")
    s.add_argument("--charset")
    s.add_argument("--all-keys", action="store_true", help="ask for every K.6-1 return key")
    s = net("store-raw")
    s.add_argument("--uid", default=generate_uid())
    s.add_argument("--omit", nargs="*", default=[])
    s.add_argument("--dataset-uid", help="a SOP Instance UID in the data set unlike the command's")
    s = net("roles")
    s = net("commit-report")
    s.add_argument("--transaction", required=True)
    s.add_argument("--failed", nargs="*", default=[], help="UIDs reported failed (0112)")
    s.add_argument("--committed", nargs="*", default=[], help="UIDs reported committed")
    s = sub.add_parser("make-mg")
    s.add_argument("--out", required=True)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--rows", type=int, default=4096)
    s.add_argument("--cols", type=int, default=3328)
    s.add_argument("--accession", default="ACCMG1")
    s.add_argument("--patient-id", default="9434765919")
    s.add_argument("--name", default="Smith^Jane")
    s.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("compare")
    s.add_argument("a")
    s.add_argument("b")
    sub.add_parser("paths")
    s = sub.add_parser("make-worklist")
    s.add_argument("--items", required=True, help="JSON list of the gateway's worklist entries")
    s.add_argument("--out", required=True, help="the AE title's directory under wlmscpfs -dfp")
    s.add_argument("--station", default="MAMMO1", help="station AE for items scheduled on none")
    args = p.parse_args()
    {
        "mpps": cmd_mpps,
        "cancel-find": cmd_cancel_find,
        "find": cmd_find,
        "store-raw": cmd_store_raw,
        "roles": cmd_roles,
        "commit-report": cmd_commit_report,
        "make-mg": cmd_make_mg,
        "compare": cmd_compare,
        "paths": cmd_paths,
        "make-worklist": cmd_make_worklist,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
