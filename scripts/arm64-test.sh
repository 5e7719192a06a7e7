#!/usr/bin/env bash
# The arm64 package's gateway under emulation (part of `make test`). Builds
# dist/gateway_<version>_arm64.deb (scripts/package.sh --arch arm64, lintian-clean), takes the
# binary out of it and runs it with qemu-user on this machine (qemu-aarch64-static called
# directly: no binfmt needed), against the host's dcmtk:
#   - `gateway --version`, and `gateway worklist add` into a fresh state directory;
#   - `gateway serve` on free loopback ports answering C-ECHO (echoscu) and a worklist C-FIND
#     (findscu);
#   - two full-size mammograms stored by storescu, one uncompressed and one JPEG 2000 (decoded
#     by openjp2, the cross-compiled C), each rendered to a thumbnail in the state directory;
#   - SIGTERM stops it cleanly.
# Where qemu-user cannot be installed it says so in a framed message and exits 0: the only skip.
#
#   scripts/arm64-test.sh                          # the test
#   scripts/arm64-test.sh --clinic-day N [--host]  # measures instead, for packaging/README.md
#
# --clinic-day N: N participants' four full-size views, sent one participant after another by the
# host build's `gateway emulate-modality`, are ingested and thumbnailed by the emulated gateway;
# then it prints the gateway's peak RSS (VmHWM) and CPU seconds. --host runs the amd64 binary
# natively instead of the arm64 one under qemu, for comparison.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
source "$here/scripts/apt.sh"

participants=""
on_host=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clinic-day) participants="$2"; shift 2 ;;
    --host) on_host=1; shift ;;
    *) echo "usage: scripts/arm64-test.sh [--clinic-day N [--host]]" >&2; exit 2 ;;
  esac
done

skip() {
  local rule="=========================================================================="
  printf '%s\n  SKIPPED: the arm64 test (scripts/arm64-test.sh)\n  %s\n  The arm64 .deb was NOT run.\n%s\n' \
    "$rule" "$*" "$rule" >&2
  exit 0
}
fail() {
  if [ -f "${work:-}/serve.log" ]; then
    echo "--- the emulated gateway's log (last 30 lines) ---" >&2
    tail -n 30 "$work/serve.log" >&2
  fi
  echo "ARM64 TEST FAILED: $*" >&2
  exit 1
}
check() { say "ok: $*"; }

need=()
command -v echoscu >/dev/null || need+=(dcmtk)
command -v gdcmconv >/dev/null || need+=(libgdcm-tools)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
apt_install "the arm64 test" "${need[@]}" || true
command -v qemu-aarch64-static >/dev/null ||
  skip "qemu-user-static could not be installed (apt-get install qemu-user-static)."
command -v echoscu >/dev/null || fail "dcmtk is not installed (apt-get install dcmtk)"
command -v gdcmconv >/dev/null || fail "GDCM tools are not installed (apt-get install libgdcm-tools)"
python="$SCREENING_CACHE/venv/bin/python"
[ -x "$python" ] || fail "$python is missing: run scripts/deps.sh (the DICOM test virtualenv)"

# --- the package and its binary ------------------------------------------------------------------
deb="$("$here/scripts/package.sh" --arch arm64 | tail -1)"
work="$(mktemp -d /tmp/gateway-arm64.XXXXXX)"
server=""
stop_server() {
  [ -n "$server" ] || return 0
  kill -TERM "$server" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}
trap 'stop_server; rm -rf "$work"' EXIT

dpkg-deb -x "$deb" "$work/root"
bin="$work/root/usr/bin/gateway"
kind="$(file -b "$bin")"
case "$kind" in
  *"ARM aarch64"*"statically linked"* | *"ARM aarch64"*"static-pie linked"*) ;;
  *) fail "usr/bin/gateway in $deb is not a static AArch64 executable: $kind" ;;
esac
check "$(basename "$deb"): usr/bin/gateway is $(echo "$kind" | cut -d, -f1,2,4), $(stat -c %s "$bin") bytes"

renderer=()
if [ -n "$on_host" ]; then
  host_deb="$("$here/scripts/package.sh" | tail -1)"
  dpkg-deb -x "$host_deb" "$work/host"
  gateway=("$work/host/usr/bin/gateway")
  label="amd64 natively"
else
  gateway=(qemu-aarch64-static "$bin")
  label="arm64 under qemu-user"
  # The gateway renders thumbnails in a child of itself; without binfmt_misc the host cannot
  # exec an arm64 binary, so the child goes through qemu too, with room for qemu's own
  # translation cache under the child's address-space limit.
  printf '#!/bin/sh\nexec qemu-aarch64-static %q "$@"\n' "$bin" >"$work/renderer"
  chmod +x "$work/renderer"
  renderer=(THUMBNAIL_RENDERER="$work/renderer" THUMBNAIL_MEMORY_MIB=4096)
fi
state="$work/state"
mwl_aet=ARM_MWL
pacs_aet=ARM_PACS
# Only these settings: nothing from the caller's environment (a relay key, say) reaches it.
settings=(PATH="$PATH" GATEWAY_STATE_DIR="$state" GATEWAY_ENV_FILE=/nonexistent/gateway.env
  MWL_AET="$mwl_aet" PACS_AET="$pacs_aet" MWL_PORT=0 PACS_PORT=0 GATEWAY_BIND=127.0.0.1
  LOG_LEVEL=info "${renderer[@]}")
run() { env -i "${settings[@]}" "${gateway[@]}" "$@"; }
add_item() {
  run worklist add --accession "$1" --nhs-number "$2" --name "$3" --birth-date 19700101 \
    --date "$(date +%Y%m%d)" --time 093000 >/dev/null || fail "gateway worklist add $1"
}
mwl="" pacs=""
start_server() {
  # Created here, not by the background job's redirection, which may come after the first read.
  : >"$work/serve.log"
  # Not through run(): $! must be the gateway itself (env execs it), which SIGTERM stops.
  env -i "${settings[@]}" "${gateway[@]}" serve 2>>"$work/serve.log" &
  server=$!
  for _ in $(seq 1 120); do
    mwl="$(sed -n -E '/mwl_addr=/ { s/.*mwl_addr=[0-9.]+:([0-9]+).*/\1/p; q }' "$work/serve.log")"
    pacs="$(sed -n -E '/pacs_addr=/ { s/.*pacs_addr=[0-9.]+:([0-9]+).*/\1/p; q }' "$work/serve.log")"
    [ -n "$mwl" ] && [ -n "$pacs" ] && return 0
    kill -0 "$server" 2>/dev/null || fail "gateway serve exited before listening"
    sleep 0.5
  done
  fail "gateway serve did not listen within 60 s"
}
thumbnails() { find "$state/thumbnails" -name '*.jpg' 2>/dev/null | wc -l; }
wait_for_thumbnails() {
  local want="$1" seconds="$2"
  for _ in $(seq 1 $((seconds * 2))); do
    [ "$(thumbnails)" -ge "$want" ] && return 0
    kill -0 "$server" 2>/dev/null || fail "gateway serve exited while making thumbnails"
    sleep 0.5
  done
  fail "$(thumbnails) of $want thumbnails after $seconds s"
}

# --- measuring a clinic day ---------------------------------------------------------------------
if [ -n "$participants" ]; then
  [ -n "$on_host" ] || host_deb="$("$here/scripts/package.sh" | tail -1)"
  [ -d "$work/host" ] || dpkg-deb -x "$host_deb" "$work/host"
  modality="$work/host/usr/bin/gateway"
  say "adding $participants worklist items"
  for i in $(seq -w 1 "$participants"); do add_item "ARMDAY$i" "94347659$i" "Participant^$i"; done
  start_server
  # Thumbnails render in child processes (one per image, each its own qemu under emulation), so
  # memory is sampled over the whole process tree (tree_rss, scripts/env.sh): the peak of the sum,
  # every 0.2 s.
  echo 0 >"$work/tree_peak"
  ( peak=0
    while kill -0 "$server" 2>/dev/null; do
      now="$(tree_rss "$server")"
      if [ "$now" -gt "$peak" ]; then peak="$now"; echo "$peak" >"$work/tree_peak"; fi
      sleep 0.2
    done ) &
  sampler=$!
  say "ingesting $participants participants x 4 full-size views (emulate-modality from the host)"
  started=$(date +%s)
  for i in $(seq -w 1 "$participants"); do
    "$modality" emulate-modality --mwl "127.0.0.1:$mwl" --mwl-aet "$mwl_aet" \
      --pacs "127.0.0.1:$pacs" --pacs-aet "$pacs_aet" --accession "ARMDAY$i" >"$work/modality.log" 2>&1 ||
      { cat "$work/modality.log" >&2; fail "emulate-modality for ARMDAY$i"; }
  done
  wait_for_thumbnails $((participants * 4)) $((participants * 4 * 30))
  wall=$(($(date +%s) - started))
  hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")"
  tree_peak="$(cat "$work/tree_peak")"
  # utime and stime (fields 14, 15 of /proc/PID/stat) are the whole process's, every thread;
  # cutime and cstime (16, 17) its render children's, each counted once it has been reaped.
  ticks="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$server/stat")"
  cpu="$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')"
  stored="$(du -sm "$state/storage" | cut -f1)"
  printf 'clinic day (%s): %d participants, %d views (%s MB stored), %d thumbnails in %d s wall\n' \
    "$label" "$participants" $((participants * 4)) "$stored" "$(thumbnails)" "$wall"
  printf 'gateway peak RSS (VmHWM): %d KiB = %.0f MiB; with its render children (peak of the sum, sampled): %.0f MiB; CPU (user+sys, children included, from start-up): %s s\n' \
    "$hwm" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$tree_peak" 'BEGIN { print k / 1024 }')" "$cpu"
  stop_server
  wait "$sampler" 2>/dev/null || true
  exit 0
fi

# --- the test ----------------------------------------------------------------------------------
version="$(run --version)" || fail "gateway --version"
[ "$version" = "gateway $(awk -F'"' '/^version = /{print $2; exit}' "$here/Cargo.toml")" ] ||
  fail "gateway --version printed '$version'"
check "qemu-aarch64-static gateway --version: $version"
add_item ARM64ACC1 9434765919 "Smith^Jane"
check "gateway worklist add"

start_server
check "gateway serve: worklist/MPPS on 127.0.0.1:$mwl, storage on 127.0.0.1:$pacs"
echoscu -aet MODALITY1 -aec "$pacs_aet" 127.0.0.1 "$pacs" || fail "echoscu on the storage port"
echoscu -aet MODALITY1 -aec "$mwl_aet" 127.0.0.1 "$mwl" || fail "echoscu on the worklist port"
check "C-ECHO (echoscu) on both ports"
found="$(findscu -W -aet MODALITY1 -aec "$mwl_aet" -k AccessionNumber -k PatientName \
  127.0.0.1 "$mwl" 2>&1)" || fail "findscu: $found"
case "$found" in *ARM64ACC1*) ;; *) fail "findscu did not return ARM64ACC1: $found" ;; esac
check "worklist C-FIND (findscu) returns ARM64ACC1"

images="$work/images"
"$python" "$here/appliance/tests/peers/peer.py" make-mg --out "$images" --count 2 \
  --accession ARM64ACC1 >/dev/null || fail "peer.py make-mg"
gdcmconv --j2k "$images/mg_001.dcm" "$images/mg_001_j2k.dcm" || fail "gdcmconv --j2k"
store() {
  local out
  out="$(storescu -aet MODALITY1 -aec "$pacs_aet" "$1" 127.0.0.1 "$pacs" "$2" 2>&1)" &&
    case "$out" in *"E: "*) false ;; esac || fail "storescu $1 $(basename "$2"): $out"
}
store -xe "$images/mg_000.dcm"
check "C-STORE of a 4096 x 3328 mammogram, explicit VR little endian"
store -xv "$images/mg_001_j2k.dcm"
check "C-STORE of a 4096 x 3328 mammogram, JPEG 2000 lossless"
wait_for_thumbnails 2 120
for jpg in $(find "$state/thumbnails" -name '*.jpg'); do
  case "$(file -b "$jpg")" in
    "JPEG image data"*x188,* | "JPEG image data"*188x*) ;;
    *) fail "$jpg is not a 188 px JPEG: $(file -b "$jpg")" ;;
  esac
done
check "two thumbnails rendered (uncompressed and JPEG 2000): $(thumbnails) .jpg, 188 px"
if grep ' ERROR ' "$work/serve.log" >&2; then fail "the gateway logged errors"; fi

kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
[ "$status" -eq 0 ] || fail "gateway serve exited $status on SIGTERM"
check "SIGTERM: gateway serve exited 0"
say "arm64 test passed"
