"""A pynetdicom storage SCP, as the NHS seeds' gateway receives images: the reference for the
store bench. Accepts every storage class in the common transfer syntaxes and writes each data set
to <dir>/<SOP Instance UID>.dcm (file meta + the encoded data set, no decoding).

    python store_scp.py --port 11112 --aet STORE_SCP --dir /tmp/out
"""

import argparse
import os

from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--aet", default="STORE_SCP")
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    def handle_store(event):
        path = os.path.join(args.dir, event.request.AffectedSOPInstanceUID + ".dcm")
        with open(path, "wb") as f:
            f.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(f, event.file_meta)
            f.write(event.request.DataSet.getvalue())
        return 0x0000

    ae = AE(ae_title=args.aet)
    ae.maximum_pdu_size = 0  # unlimited, like storescp's default large PDUs
    for context in StoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.start_server(("127.0.0.1", args.port), evt_handlers=[(evt.EVT_C_STORE, handle_store)])


if __name__ == "__main__":
    main()
