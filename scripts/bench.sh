#!/usr/bin/env bash
# `make bench`: every benchmark, each beside its reference in the same run, then BENCHMARKS.md
# and BENCHMARKS.json at the repository root (scripts/bench-report.py). The references are
# installed by scripts/deps.sh (dcmtk, GDCM, pynetdicom) and scripts/bench-store.sh (Orthanc),
# idempotently. Each bench's rows go to $BENCH_DIR (default target/bench under CARGO_TARGET_DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"
started=$(date +%s)
"$here/scripts/deps.sh"
out="${BENCH_DIR:-$CARGO_TARGET_DIR/bench}"
rm -rf "$out"
mkdir -p "$out"

say "relay round trip (client + emulator)"
BENCH_OUT="$out/relay.json" cargo bench --locked -p relay-emulator --bench relay_roundtrip

say "gateway pipeline: thumbnails vs dcmtk/GDCM, send to modality → C-FIND"
BENCH_OUT="$out/pipeline.json" cargo bench --locked -p appliance --bench pipeline

say "worklist C-FIND with 10,000 items vs dcmtk wlmscpfs"
BENCH_OUT="$out/worklist.json" cargo bench --locked -p appliance --bench worklist

say "web app: 200 SSE streams, image event → thumbnail in the browser DOM"
BENCH_OUT="$out/web.json" cargo bench --locked -p web --bench live

say "C-STORE ingest vs dcmtk storescp, Orthanc and a pynetdicom SCP"
BENCH_OUT="$out/store.json" "$here/scripts/bench-store.sh"

python3 "$here/scripts/bench-report.py" "$out" "$here"
say "make bench took $(( ($(date +%s) - started) / 60 )) min; see BENCHMARKS.md"
