#!/usr/bin/env bash
# `make bench`: every benchmark, each beside its reference in the same run. The references it
# needs (dcmtk, GDCM's tools) are installed by scripts/deps.sh, idempotently. Results are printed, and each
# bench's JSON goes to $BENCH_DIR (default target/bench under CARGO_TARGET_DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"
"$here/scripts/deps.sh"
out="${BENCH_DIR:-$CARGO_TARGET_DIR/bench}"
mkdir -p "$out"

say "relay round trip (client + emulator)"
BENCH_OUT="$out/relay.json" cargo bench --locked -p relay-emulator --bench relay_roundtrip

say "gateway pipeline: thumbnails vs dcmtk, send to modality → C-FIND"
BENCH_OUT="$out/pipeline.json" cargo bench --locked -p appliance --bench pipeline

say "C-STORE ingest vs dcmtk storescp"
"$here/scripts/bench-store.sh"
say "JSON results in $out"
