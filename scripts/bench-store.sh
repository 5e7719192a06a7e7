#!/usr/bin/env bash
# Store bench (not a test): dcmtk storescu (TCP_NODELAY=1) sends synthetic images to four
# receivers in the same run, each started fresh on an empty store for every pass:
#   - the gateway (release build: fsync per object, redb index, thumbnails in the background),
#   - dcmtk storescp (the raw ceiling: writes files, no fsync, no index),
#   - Orthanc (Debian package; index + storage, HTTP off),
#   - a pynetdicom storage SCP (appliance/benches/peers/store_scp.py; the seeds' stack).
# Passes: 200 CT-sized (512×512 16-bit, ~0.5 MB) objects over one association; 40 full-size
# mammograms (4096×3328, 27 MB) over one association, and over four in parallel (10 each).
# Every receiver must have stored every object, or the bench fails. Reports medians over rounds,
# each receiver's idle RSS (1 s after start) and peak RSS (VmHWM), the gateway's also with its
# render children (the sum over its process tree, sampled every 0.1 s until every thumbnail is
# made, outside the timed part), and writes rows for
# BENCHMARKS.md to $BENCH_OUT when set. Usage: scripts/bench-store.sh [small_count] [mg_count]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
small_count="${1:-200}"
mg_count="${2:-40}"
source "$here/scripts/bench-common.sh"

work="$(mktemp -d)"
results="$work/results"; mkdir -p "$results"
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$server_pid/status"; }

# Starts receiver $1 on a fresh store in $work/store; sets server_pid, port, ae, count_dir.
start() {
  local store="$work/store"
  rm -rf "$store"; mkdir -p "$store"
  port=$(free_port)
  case "$1" in
    gateway)
      ae=BENCH_PACS; count_dir="$store/storage"
      GATEWAY_STATE_DIR="$store" MWL_PORT="$(free_port)" PACS_PORT="$port" PACS_AET="$ae" \
        GATEWAY_BIND=127.0.0.1 LOG_LEVEL=warn GATEWAY_ENV_FILE=/nonexistent "$gateway" serve &
      ;;
    storescp)
      ae=STORESCP; count_dir="$store"
      TCP_NODELAY=1 storescp -od "$store" -aet "$ae" "$port" &
      ;;
    orthanc)
      ae=ORTHANC; count_dir="$store/files"
      cat >"$work/orthanc.json" <<EOF
{ "Name": "bench", "StorageDirectory": "$store/files", "IndexDirectory": "$store/index",
  "DicomAet": "$ae", "DicomPort": $port, "HttpServerEnabled": false, "DicomCheckCalledAet": false,
  "StorageCompression": false, "DicomAlwaysAllowStore": true, "Plugins": [],
  "ConcurrentJobs": 2, "DicomThreadsCount": 4 }
EOF
      Orthanc --logdir="$work" "$work/orthanc.json" >/dev/null 2>&1 &
      ;;
    pynetdicom)
      ae=STORE_SCP; count_dir="$store"
      "$py" "$here/appliance/benches/peers/store_scp.py" --port "$port" --aet "$ae" --dir "$store" &
      ;;
  esac
  server_pid=$!
  wait_port "$port"
  sleep 1
}

# The gateway's process tree (it and its render children), summed, sampled until stopped.
start_tree_sampler() {
  echo 0 >"$work/tree_peak"; touch "$work/sampling"
  ( peak=0
    while [ -e "$work/sampling" ]; do
      now="$(tree_rss "$server_pid")"
      if [ "$now" -gt "$peak" ]; then peak="$now"; echo "$peak" >"$work/tree_peak"; fi
      sleep 0.1
    done ) &
  sampler_pid=$!
}

# Waits (untimed) for the pass's $1 thumbnails, then records the tree's peak.
stop_tree_sampler() {
  local want=$1
  for _ in $(seq 1200); do
    [ "$(find "$work/store/thumbnails" -name '*.jpg' 2>/dev/null | wc -l)" -ge "$want" ] && break
    sleep 0.25
  done
  rm -f "$work/sampling"; wait "$sampler_pid" 2>/dev/null || true
  cat "$work/tree_peak" >>"$results/gateway.tree_kib"
}

stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# Seconds to send files to $ae@$port over $1 parallel associations.
send() {
  local lanes=$1; shift
  local files=("$@") pids=() start end lane
  [ "$lanes" -le "${#files[@]}" ] || lanes=${#files[@]}
  start=$(date +%s.%N)
  for lane in $(seq 0 $((lanes - 1))); do
    local part=()
    local i
    for ((i = lane; i < ${#files[@]}; i += lanes)); do part+=("${files[$i]}"); done
    TCP_NODELAY=1 storescu -xs -aec "$ae" 127.0.0.1 "$port" "${part[@]}" \
      >"$work/storescu.$lane.log" 2>&1 &
    pids+=($!)
  done
  for lane in "${!pids[@]}"; do
    wait "${pids[$lane]}" || { cat "$work/storescu.$lane.log" >&2; echo "storescu failed" >&2; exit 1; }
  done
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# Fails unless the receiver has stored $1 objects under count_dir once storescu got its
# answers (a check on honesty, outside the timed part).
expect_stored() {
  local want=$1 got
  got=$(find "$count_dir" -type f 2>/dev/null | wc -l)
  [ "$got" -ge "$want" ] || { echo "$receiver stored $got of $want objects" >&2; exit 1; }
}

receivers=(storescp gateway orthanc pynetdicom)
passes=("small:1" "mg:1" "mg:4")
for round in $(seq "$rounds"); do
  for pass in "${passes[@]}"; do
    kind=${pass%%:*}; lanes=${pass#*:}
    if [ "$kind" = small ]; then files=("${small_files[@]}"); else files=("${mg_files[@]}"); fi
    for receiver in "${receivers[@]}"; do
      start "$receiver"
      echo "$(kib VmRSS)" >>"$results/$receiver.idle_kib"
      [ "$receiver" != gateway ] || start_tree_sampler
      seconds=$(send "$lanes" "${files[@]}")
      expect_stored "${#files[@]}"
      echo "$(kib VmHWM)" >>"$results/$receiver.peak_kib"
      [ "$receiver" != gateway ] || stop_tree_sampler "${#files[@]}"
      echo "$seconds" >>"$results/$receiver.$kind.$lanes"
      stop
    done
    say "round $round: $kind × ${#files[@]} over $lanes association(s) done"
  done
done

"$py" - "$results" "$small_count" "$small_mb" "$mg_count" "$mg_mb" "$rounds" <<'EOF'
import json, os, statistics, sys
results, small_count, small_mb, mg_count, mg_mb, rounds = sys.argv[1:]
small_count, mg_count, rounds = int(small_count), int(mg_count), int(rounds)
small_mb, mg_mb = float(small_mb), float(mg_mb)

def read(name):
    with open(os.path.join(results, name)) as f:
        return [float(line) for line in f if line.strip()]

names = {"storescp": "dcmtk storescp", "orthanc": "Orthanc 1.10 (Debian)",
         "pynetdicom": "pynetdicom storage SCP"}
passes = [("small", 1, f"{small_count} × 0.5 MB objects, 1 association", "img/s", small_count),
          ("mg", 1, f"{mg_count} × 27 MB mammograms, 1 association", "MB/s", mg_mb),
          ("mg", 4, f"{mg_count} × 27 MB mammograms, 4 associations", "MB/s", mg_mb)]
rows = []
print(f"\n{'workload':44} {'receiver':24} {'median':>10} {'min–max':>16}")
for kind, lanes, label, unit, amount in passes:
    def rate(receiver):
        rates = [amount / s for s in read(f"{receiver}.{kind}.{lanes}")]
        return statistics.median(rates), f"{min(rates):.1f}–{max(rates):.1f}"
    ours, ours_spread = rate("gateway")
    print(f"{label:44} {'gateway':24} {ours:10.1f} {ours_spread:>16} {unit}")
    for receiver, name in names.items():
        ref, ref_spread = rate(receiver)
        print(f"{'':44} {name:24} {ref:10.1f} {ref_spread:>16} {unit}")
        rows.append({"benchmark": "C-STORE ingest (storescu sender, fresh store each pass)",
                     "metric": label, "unit": unit, "better": "higher", "ours": ours,
                     "ours_spread": ours_spread, "reference": name, "reference_value": ref,
                     "reference_spread": ref_spread, "n": rounds,
                     "note": "gateway: fsync + index per object before answering"})
mem = lambda receiver, what: max(read(f"{receiver}.{what}_kib")) / 1024
print()
for what, label in [("idle", "idle RSS 1 s after start"), ("peak", "peak RSS over all passes")]:
    ours = mem("gateway", what)
    print(f"{label:44} gateway {ours:.1f} MB; " +
          ", ".join(f"{n} {mem(r, what):.1f} MB" for r, n in names.items()))
    for receiver, name in names.items():
        rows.append({"benchmark": "Receiver memory", "metric": label, "unit": "MB",
                     "better": "lower", "ours": ours, "reference": name,
                     "reference_value": mem(receiver, what), "n": rounds * len(passes),
                     "note": "max over passes" + ("; gateway process only (VmHWM)"
                                                  if what == "peak" else "")})
tree = max(read("gateway.tree_kib")) / 1024
print(f"{'peak RSS with thumbnail render children':44} gateway {tree:.1f} MB")
for receiver, name in names.items():
    rows.append({"benchmark": "Receiver memory", "metric": "peak RSS, gateway with its render children",
                 "unit": "MB", "better": "lower", "ours": tree, "reference": name,
                 "reference_value": mem(receiver, "peak"), "n": rounds * len(passes),
                 "note": "gateway: sum over its process tree (the service and the render child of each "
                         "thumbnail), sampled every 0.1 s until every thumbnail was made; "
                         "reference: its VmHWM"})
out = os.environ.get("BENCH_OUT")
if out:
    with open(out, "w") as f:
        json.dump({"rows": rows}, f, indent=2, ensure_ascii=False)
EOF
