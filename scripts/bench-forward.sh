#!/usr/bin/env bash
# Forwarding bench (not a test): how fast the gateway's C-STORE SCU empties its forwarding queue
# into a hospital PACS, beside dcmtk storescu sending the same files to the same PACS, fresh, in
# the same run. PACSes: dcmtk storescp (no Storage Commitment) and Orthanc (Debian; the gateway
# asks it for Storage Commitment, which it answers on a new association).
#
# Each pass, for each PACS:
#   1. the gateway (release build) stores the files with PACS_FORWARD naming a port nobody listens
#      on, so every object is queued; it is stopped once every thumbnail is made (they would
#      otherwise compete with the forwarding for the two cores);
#   2. the PACS starts, empty; the gateway starts again on the same state and the clock runs until
#      the PACS holds every object (its files counted) — gateway start-up included;
#   3. the PACS is emptied and restarted, and storescu -xs sends the same files, one association.
# Passes: 200 × 0.5 MB objects; 40 × 27 MB mammograms. Medians over BENCH_ROUNDS (default 3).
# Writes rows for BENCHMARKS.md to $BENCH_OUT when set. Usage: scripts/bench-forward.sh [small] [mg]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
small_count="${1:-200}"
mg_count="${2:-40}"
source "$here/scripts/bench-common.sh"

work="$(mktemp -d)"
results="$work/results"; mkdir -p "$results"
gateway_pid=""; pacs_pid=""
cleanup() {
  for pid in $gateway_pid $pacs_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

count() { find "$1" -type f 2>/dev/null | wc -l; }
now() { date +%s.%N; }

state="$work/gateway"
pacs_port=$(free_port)
start_gateway() {
  GATEWAY_STATE_DIR="$state" MWL_PORT="$mwl_port" PACS_PORT="$store_port" PACS_AET=BENCH_GW \
    GATEWAY_BIND=127.0.0.1 LOG_LEVEL=warn GATEWAY_ENV_FILE=/nonexistent \
    PACS_FORWARD="$pacs_ae@127.0.0.1:$pacs_port" "$gateway" serve &
  gateway_pid=$!
  wait_port "$store_port"
}
stop_gateway() {
  kill "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=""
}
# Starts PACS $1 empty on pacs_port; sets pacs_ae and pacs_dir.
start_pacs() {
  local dir="$work/pacs"
  rm -rf "$dir"; mkdir -p "$dir"
  case "$1" in
    storescp)
      pacs_dir="$dir"
      TCP_NODELAY=1 storescp -od "$dir" -aet "$pacs_ae" "$pacs_port" &
      ;;
    orthanc)
      pacs_dir="$dir/files"
      cat >"$work/orthanc.json" <<EOF
{ "Name": "bench", "StorageDirectory": "$dir/files", "IndexDirectory": "$dir/index",
  "DicomAet": "$pacs_ae", "DicomPort": $pacs_port, "HttpServerEnabled": false,
  "DicomCheckCalledAet": false, "StorageCompression": false, "DicomAlwaysAllowStore": true,
  "DicomModalities": { "gateway": [ "BENCH_GW", "127.0.0.1", $store_port ] },
  "Plugins": [], "ConcurrentJobs": 2, "DicomThreadsCount": 4 }
EOF
      Orthanc --logdir="$work" "$work/orthanc.json" >/dev/null 2>&1 &
      ;;
  esac
  pacs_pid=$!
  wait_port "$pacs_port"
}
stop_pacs() {
  kill "$pacs_pid" 2>/dev/null || true
  wait "$pacs_pid" 2>/dev/null || true
  pacs_pid=""
}
wait_for() {
  local want=$1 dir=$2 deadline=$(( $(date +%s) + 900 ))
  until [ "$(count "$dir")" -ge "$want" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "only $(count "$dir") of $want reached the PACS" >&2; exit 1; }
    sleep 0.02
  done
}
thumbnails_done() {
  local deadline=$(( $(date +%s) + 900 ))
  # `status` exits 1 here (no relay is configured): only its report matters.
  until { GATEWAY_STATE_DIR="$state" GATEWAY_ENV_FILE=/nonexistent "$gateway" status 2>/dev/null \
      || true; } | grep -q " 0 image(s) waiting for a thumbnail"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "thumbnails never finished" >&2; exit 1; }
    sleep 0.5
  done
}

pacses=(storescp orthanc)
for round in $(seq "$rounds"); do
  for kind in small mg; do
    if [ "$kind" = small ]; then files=("${small_files[@]}"); else files=("${mg_files[@]}"); fi
    for pacs in "${pacses[@]}"; do
      pacs_ae=$(echo "$pacs" | tr a-z A-Z)
      rm -rf "$state"; mkdir -p "$state"
      mwl_port=$(free_port); store_port=$(free_port)
      # 1. Queue everything while the PACS is away.
      start_gateway
      TCP_NODELAY=1 storescu -xs -aec BENCH_GW 127.0.0.1 "$store_port" "${files[@]}" \
        >"$work/storescu.log" 2>&1 || { cat "$work/storescu.log" >&2; exit 1; }
      thumbnails_done
      stop_gateway
      # 2. The PACS is back: the gateway empties its queue into it.
      start_pacs "$pacs"
      started=$(now)
      start_gateway
      wait_for "${#files[@]}" "$pacs_dir"
      ended=$(now)
      echo "$ended - $started" | bc -l >>"$results/gateway.$pacs.$kind"
      stop_gateway
      stop_pacs
      # 3. The reference: storescu sends the same files straight to a fresh PACS.
      start_pacs "$pacs"
      started=$(now)
      TCP_NODELAY=1 storescu -xs -aec "$pacs_ae" 127.0.0.1 "$pacs_port" "${files[@]}" \
        >"$work/storescu.log" 2>&1 || { cat "$work/storescu.log" >&2; exit 1; }
      wait_for "${#files[@]}" "$pacs_dir"
      ended=$(now)
      echo "$ended - $started" | bc -l >>"$results/storescu.$pacs.$kind"
      stop_pacs
    done
    say "round $round: forwarding $kind × ${#files[@]} done"
  done
done

"$py" - "$results" "$small_count" "$small_mb" "$mg_count" "$mg_mb" "$rounds" <<'EOF'
import json, os, statistics, sys
results, small_count, small_mb, mg_count, mg_mb, rounds = sys.argv[1:]
small_count, mg_count, rounds = int(small_count), int(mg_count), int(rounds)
small_mb, mg_mb = float(small_mb), float(mg_mb)

def rate(name, amount):
    with open(os.path.join(results, name)) as f:
        rates = [amount / float(line) for line in f if line.strip()]
    return statistics.median(rates), f"{min(rates):.1f}–{max(rates):.1f}"

pacs_names = {"storescp": "dcmtk storescp (no commitment)",
              "orthanc": "Orthanc 1.10 (Debian; Storage Commitment asked)"}
passes = [("small", f"{small_count} × 0.5 MB objects", "img/s", small_count),
          ("mg", f"{mg_count} × 27 MB mammograms", "MB/s", mg_mb)]
rows = []
print(f"\n{'workload':44} {'sender':28} {'median':>10} {'min–max':>16}")
for kind, label, unit, amount in passes:
    for pacs, pacs_name in pacs_names.items():
        ours, ours_spread = rate(f"gateway.{pacs}.{kind}", amount)
        ref, ref_spread = rate(f"storescu.{pacs}.{kind}", amount)
        metric = f"{label} to {pacs_name}"
        print(f"{metric:44} {'gateway forwarding queue':28} {ours:10.1f} {ours_spread:>16} {unit}")
        print(f"{'':44} {'dcmtk storescu -xs':28} {ref:10.1f} {ref_spread:>16} {unit}")
        rows.append({"benchmark": "Forwarding to the hospital PACS (queued objects → PACS)",
                     "metric": metric, "unit": unit, "better": "higher", "ours": ours,
                     "ours_spread": ours_spread, "reference": "dcmtk storescu -xs, same files",
                     "reference_value": ref, "reference_spread": ref_spread, "n": rounds,
                     "note": "gateway: from its start on a queue filled while the PACS was "
                             "away until the PACS holds every object; storescu: process start "
                             "to the same; one association each"})
out = os.environ.get("BENCH_OUT")
if out:
    with open(out, "w") as f:
        json.dump({"rows": rows}, f, indent=2, ensure_ascii=False)
EOF
