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
# Only this script's own background servers still running are stopped.
cleanup() { local j; j=$(jobs -p); [ -z "$j" ] || kill $j 2>/dev/null || true; rm -rf "$work"; }
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

# One round: storescp (the raw ceiling: no fsync, no index) then the gateway (fsync per object,
# redb index), each on a fresh store, the same sender. Rounds alternate so drift on this shared
# machine hits both; the medians are reported.
rounds="${BENCH_ROUNDS:-3}"
peak_rss_kb=0
stored_ok=1
for round in $(seq "$rounds"); do
  scp_port=$(free_port); rm -rf "$work/storescp"; mkdir -p "$work/storescp"
  TCP_NODELAY=1 storescp -od "$work/storescp" -aet STORESCP "$scp_port" &
  scp_pid=$!; wait_port "$scp_port"
  echo "$(send STORESCP "$scp_port" "${small_files[@]}")" >>"$work/scp_small"
  find "$work/storescp" -type f -delete
  echo "$(send STORESCP "$scp_port" "${mg_files[@]}")" >>"$work/scp_mg"
  kill "$scp_pid"; wait "$scp_pid" 2>/dev/null || true

  gw_state="$work/gateway"; rm -rf "$gw_state"; mwl_port=$(free_port); pacs_port=$(free_port)
  GATEWAY_STATE_DIR="$gw_state" MWL_PORT="$mwl_port" PACS_PORT="$pacs_port" PACS_AET=BENCH_PACS \
    LOG_LEVEL=warn "$gateway" serve &
  gw_pid=$!; wait_port "$pacs_port"
  echo "$(send BENCH_PACS "$pacs_port" "${small_files[@]}")" >>"$work/gw_small"
  echo "$(send BENCH_PACS "$pacs_port" "${mg_files[@]}")" >>"$work/gw_mg"
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$gw_pid/status")
  [ "$rss" -gt "$peak_rss_kb" ] && peak_rss_kb=$rss
  stored=$(find "$gw_state/storage" -name '*.dcm' | wc -l)
  [ "$stored" -eq "$((small_count + mg_count))" ] || stored_ok=0
  kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
  say "round $round done"
done
median() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
scp_small=$(median "$work/scp_small"); scp_mg=$(median "$work/scp_mg")
gw_small=$(median "$work/gw_small"); gw_mg=$(median "$work/gw_mg")

rate() { echo "scale=1; $1 / $2" | bc -l; }
printf '\n%-28s %14s %14s %8s\n' "workload" "storescp" "gateway" "ratio"
printf '%-28s %9s img/s %9s img/s %8s\n' "$small_count small, 1 assoc" \
  "$(rate "$small_count" "$scp_small")" "$(rate "$small_count" "$gw_small")" "$(echo "scale=2; $scp_small / $gw_small" | bc -l)"
printf '%-28s %10s MB/s %10s MB/s %8s\n' "$mg_count mammograms, 1 assoc" \
  "$(rate "$mg_mb" "$scp_mg")" "$(rate "$mg_mb" "$gw_mg")" "$(echo "scale=2; $scp_mg / $gw_mg" | bc -l)"
printf '(medians of %s rounds; %s MB small, %s MB mammograms; ratio > 1: the gateway is faster)\n' \
  "$rounds" "$small_mb" "$mg_mb"
printf 'gateway peak RSS: %s MB; every object stored in every round: %s\n' \
  "$((peak_rss_kb / 1024))" "$([ "$stored_ok" -eq 1 ] && echo yes || echo NO)"
