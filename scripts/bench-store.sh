#!/usr/bin/env bash
# Store bench (not a test): dcmtk storescu sends 200 small (512×512, ~0.5 MB) and 40 full-size
# (4096×3328, 27 MB) synthetic images over one association each to the gateway and to dcmtk
# storescp, in the same run, TCP_NODELAY=1 for dcmtk. Prints img/s, MB/s, the gateway/storescp
# ratio and the gateway's peak RSS. Usage: scripts/bench-store.sh [small_count] [mg_count]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
small_count="${1:-200}"
mg_count="${2:-40}"
py="${DICOM_TEST_PYTHON:-$SCREENING_CACHE/venv/bin/python}"
command -v storescu >/dev/null || { echo "dcmtk missing: run scripts/deps.sh" >&2; exit 1; }
[ -x "$py" ] || { echo "$py missing: run scripts/deps.sh" >&2; exit 1; }

say "building the gateway (release)"
cargo build --release -p appliance --manifest-path "$here/Cargo.toml" >&2
gateway="$CARGO_TARGET_DIR/release/gateway"

data="$SCREENING_CACHE/bench-data"
if [ "$(ls "$data/small" 2>/dev/null | wc -l)" -lt "$small_count" ]; then
  say "generating $small_count small images"
  rm -rf "$data/small"
  "$py" "$here/appliance/tests/peers/peer.py" make-mg --out "$data/small" --count "$small_count" \
    --rows 512 --cols 512 --accession BENCHSMALL >/dev/null
fi
if [ "$(ls "$data/mg" 2>/dev/null | wc -l)" -lt "$mg_count" ]; then
  say "generating $mg_count full-size mammograms (27 MB each; takes a while once)"
  rm -rf "$data/mg"
  "$py" "$here/appliance/tests/peers/peer.py" make-mg --out "$data/mg" --count "$mg_count" \
    --accession BENCHMG >/dev/null
fi
small_files=("$data"/small/*.dcm); small_files=("${small_files[@]:0:$small_count}")
mg_files=("$data"/mg/*.dcm); mg_files=("${mg_files[@]:0:$mg_count}")
mb() { du -cm "$@" | tail -1 | cut -f1; }
small_mb=$(mb "${small_files[@]}")
mg_mb=$(mb "${mg_files[@]}")

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# Seconds to send files to AE@port over one association.
send() {
  local ae=$1 port=$2; shift 2
  local start end
  start=$(date +%s.%N)
  TCP_NODELAY=1 storescu -xs -aec "$ae" 127.0.0.1 "$port" "$@" >"$work/storescu.log" 2>&1 \
    || { cat "$work/storescu.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# storescp: raw ceiling (no fsync, no index).
scp_port=$(free_port); mkdir -p "$work/storescp-small" "$work/storescp-mg"
TCP_NODELAY=1 storescp -od "$work/storescp-small" -aet STORESCP "$scp_port" &
pids+=($!); wait_port "$scp_port"
scp_small=$(send STORESCP "$scp_port" "${small_files[@]}")
rm -rf "$work/storescp-small"
scp_mg=$(send STORESCP "$scp_port" "${mg_files[@]}")
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

# The gateway: fsync per object, redb index, same sender.
gw_state="$work/gateway"; mwl_port=$(free_port); pacs_port=$(free_port)
GATEWAY_STATE_DIR="$gw_state" MWL_PORT="$mwl_port" PACS_PORT="$pacs_port" PACS_AET=BENCH_PACS \
  LOG_LEVEL=warn "$gateway" serve &
gw_pid=$!; pids+=("$gw_pid"); wait_port "$pacs_port"
gw_small=$(send BENCH_PACS "$pacs_port" "${small_files[@]}")
gw_mg=$(send BENCH_PACS "$pacs_port" "${mg_files[@]}")
peak_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$gw_pid/status")
stored=$(find "$gw_state/storage" -name '*.dcm' | wc -l)
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true

rate() { echo "scale=1; $1 / $2" | bc -l; }
printf '\n%-28s %14s %14s %8s\n' "workload" "storescp" "gateway" "ratio"
printf '%-28s %9s img/s %9s img/s %8s\n' "$small_count small, 1 assoc" \
  "$(rate "$small_count" "$scp_small")" "$(rate "$small_count" "$gw_small")" "$(echo "scale=2; $scp_small / $gw_small" | bc -l)"
printf '%-28s %10s MB/s %10s MB/s %8s\n' "$mg_count mammograms, 1 assoc" \
  "$(rate "$mg_mb" "$scp_mg")" "$(rate "$mg_mb" "$gw_mg")" "$(echo "scale=2; $scp_mg / $gw_mg" | bc -l)"
printf '(%s MB small, %s MB mammograms; ratio > 1 means the gateway is faster)\n' "$small_mb" "$mg_mb"
printf 'gateway peak RSS: %s MB; objects stored by the gateway: %s of %s\n' \
  "$((peak_rss_kb / 1024))" "$stored" "$((small_count + mg_count))"
