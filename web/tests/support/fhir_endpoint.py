"""A hospital integration engine's FHIR endpoint, for the tests: takes POSTed transaction
bundles, checks each with an independent validator (the `fhir.resources` package, FHIR R4
4.0.1), keeps what it received in OUT_DIR as NNN.json, and answers as a FHIR server would — a
transaction-response Bundle, or 400 with an OperationOutcome that says what is wrong.

usage: fhir_endpoint.py PORT OUT_DIR     (prints "listening PORT" once it accepts)
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fhir.resources
from fhir.resources import construct_fhir_element

assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__

PORT = int(sys.argv[1])
OUT_DIR = sys.argv[2]
LOCK = threading.Lock()
COUNT = [0]


def validate(body):
    """The R4 resources in a transaction bundle, or raises with the validator's words."""
    doc = json.loads(body)
    bundle = construct_fhir_element("Bundle", doc)
    if bundle.type != "transaction":
        raise ValueError(f"Bundle.type is {bundle.type!r}, not 'transaction'")
    resources = []
    for entry in doc.get("entry", []):
        resource = entry["resource"]
        # Each entry on its own too, by its own type, so nothing hides in a generic Resource.
        construct_fhir_element(resource["resourceType"], resource)
        resources.append(resource["resourceType"])
    return doc, resources


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        record = {
            "path": self.path,
            "content_type": self.headers.get("Content-Type"),
        }
        try:
            doc, resources = validate(body)
            record.update(valid=True, body=doc, resources=resources)
            status = 200
            with LOCK:
                COUNT[0] += 1
                n = COUNT[0]
            answer = {
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": [
                    {"response": {"status": "200 OK", "location": f"{r}/{n}/_history/1"}}
                    for r in resources
                ],
            }
        except Exception as e:  # the validator's error, as the engine would report it
            record.update(valid=False, error=str(e), raw=body.decode("utf-8", "replace"))
            status = 400
            answer = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": str(e)}],
            }
        with LOCK:
            seq = len(os.listdir(OUT_DIR)) + 1
            with open(os.path.join(OUT_DIR, f"{seq:03}.json"), "w") as f:
                json.dump(record, f)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        sys.stderr.write("fhir endpoint: " + (format % args) + "\n")


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"listening {PORT}", flush=True)
server.serve_forever()
