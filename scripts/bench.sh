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

say "cloud replicas: 3 on one PostgreSQL vs 1, 1,000 SSE streams"
BENCH_OUT="$out/replicas.json" cargo bench --locked -p web --bench replicas

say "whole path: modality C-STORE → thumbnail in the browser DOM (release gateway, Chromium)"
cargo build --release --locked -p appliance --bin gateway
GATEWAY_BIN="$CARGO_TARGET_DIR/release/gateway" WEB_E2E_ARTIFACTS="$out/e2e" \
  cargo test --profile bench --locked -p web --test browser_gateway
python3 - "$out/e2e/web-e2e-gateway/latency.txt" "$out/e2e.json" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
figures = {k: float(v) for k, v in re.findall(r"(p50|p99|min|max|n)=([0-9.]+)", text)}
rows = [{"benchmark": "System latency",
         "metric": f"modality starts C-STORE → thumbnail in the browser DOM (real gateway), {at}",
         "unit": "ms", "better": "lower", "ours": figures[at],
         "ours_spread": f"{figures['min']:.0f}–{figures['max']:.0f}",
         "reference": "seeds' polling (2 s images + 0.2 s stream), computed",
         "reference_value": reference, "n": int(figures["n"]),
         "note": "web/tests/browser_gateway.rs: release gateway as a process, storescu per "
                 "image (process start included), 256 × 208 images, web app in bench profile"}
        for at, reference in [("p50", 1100.0), ("p99", 2110.6)]]
json.dump({"rows": rows}, open(sys.argv[2], "w"), indent=2, ensure_ascii=False)
EOF

say "a clinic day: 40 participants × 4 views through the emulated modality, the release gateway, the web app and Chromium"
GATEWAY_BIN="$CARGO_TARGET_DIR/release/gateway" WEB_E2E_ARTIFACTS="$out/e2e" BENCH_OUT="$out/clinic-day.json" \
  cargo bench --locked -p web --bench clinic_day

say "C-STORE ingest vs dcmtk storescp, Orthanc and a pynetdicom SCP"
BENCH_OUT="$out/store.json" "$here/scripts/bench-store.sh"

say "forwarding to the hospital PACS (storescp, Orthanc) vs dcmtk storescu of the same files"
BENCH_OUT="$out/forward.json" "$here/scripts/bench-forward.sh"

python3 "$here/scripts/bench-report.py" "$out" "$here"
say "make bench took $(( ($(date +%s) - started) / 60 )) min; see BENCHMARKS.md"
