#!/usr/bin/env python3
"""pynetdicom side of the Study Root Query/Retrieve tests (tests/query_retrieve.rs): exact
statuses and counts, and the C-CANCELs dcmtk cannot send on purpose. Prints one JSON object."""
import argparse
import json
import sys

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind as FIND,
    StudyRootQueryRetrieveInformationModelGet as GET,
    StudyRootQueryRetrieveInformationModelMove as MOVE,
)


def out(obj):
    print(json.dumps(obj))
    sys.stdout.flush()


def counts(status):
    keys = [
        "NumberOfRemainingSuboperations",
        "NumberOfCompletedSuboperations",
        "NumberOfFailedSuboperations",
        "NumberOfWarningSuboperations",
    ]
    return {k[8:-13].lower(): (int(status[k].value) if k in status else None) for k in keys}


def identifier(args):
    ds = Dataset()
    ds.QueryRetrieveLevel = args.level
    for kv in args.key:
        k, _, v = kv.partition("=")
        setattr(ds, k, v)
    return ds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["find", "get", "get-cancel", "move", "associate"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("called")
    p.add_argument("--calling", default="WORKSTATION")
    p.add_argument("--level", default="STUDY")
    p.add_argument("--key", nargs="*", default=[])
    p.add_argument("--dest", default="")
    p.add_argument("--tls-ca", help="DICOM TLS, verifying the gateway against this CA (PEM)")
    p.add_argument("--no-role", action="store_true", help="propose no SCP role for storage")
    args = p.parse_args()

    ae = AE(ae_title=args.calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for c in (FIND, GET, MOVE):
        ae.add_requested_context(c)
    roles = []
    for c in (CTImageStorage, MRImageStorage):
        ae.add_requested_context(c, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        if not args.no_role:
            roles.append(build_role(c, scp_role=True))
    stored = []
    state = {}

    def on_store(event):
        stored.append(event.request.AffectedSOPInstanceUID)
        if args.cmd == "get-cancel" and len(stored) == 1:
            event.assoc.send_c_cancel(9, state["get_context"])
        return 0x0000

    tls = None
    if args.tls_ca:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.tls_ca)
        tls = (context, args.host)
    assoc = ae.associate(
        args.host, args.port, ae_title=args.called, ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)], tls_args=tls,
    )
    if not assoc.is_established:
        out({"established": False})
        return
    accepted = sorted({c.abstract_syntax for c in assoc.accepted_contexts})
    if args.cmd == "associate":
        out({"established": True, "accepted": accepted})
        assoc.release()
        return
    statuses, identifiers, last = [], [], None
    if args.cmd == "find":
        responses = assoc.send_c_find(identifier(args), FIND, msg_id=9)
    elif args.cmd in ("get", "get-cancel"):
        state["get_context"] = assoc._get_valid_context(GET, "", "scu").context_id
        responses = assoc.send_c_get(identifier(args), GET, msg_id=9)
    else:
        responses = assoc.send_c_move(identifier(args), args.dest, MOVE, msg_id=9)
    for status, ds in responses:
        if status is None or "Status" not in status:
            statuses.append(None)
            break
        statuses.append(int(status.Status))
        last = status
        if ds is not None and int(status.Status) in (0xFF00, 0xFF01):
            identifiers.append({el.keyword or str(el.tag): str(el.value) for el in ds})
        elif ds is not None and "FailedSOPInstanceUIDList" in ds:
            identifiers.append({"FailedSOPInstanceUIDList": str(ds.FailedSOPInstanceUIDList)})
    result = {
        "established": True,
        "statuses": statuses,
        "identifiers": identifiers,
        "stored": stored,
        "comment": str(last.get("ErrorComment", "")) if last is not None else "",
    }
    if last is not None:
        result.update(counts(last))
    assoc.release()
    out(result)


if __name__ == "__main__":
    main()
