# Sourced by the Makefile's scripts: where builds and tool caches live.
# Builds are kept outside the clone, so CI on a fresh clone and repeated local runs are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/screening-gateway/target}"
export SCREENING_CACHE="${SCREENING_CACHE:-$HOME/.cache/screening-gateway}"
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '==> %s\n' "$*" >&2; }

# Resident memory of process $1 and all its descendants, summed, in KiB: the gateway renders each
# thumbnail in a child process, so its own VmHWM is not its footprint.
tree_rss() {
  local pids="$1" all="$1"
  while [ -n "$pids" ]; do
    pids="$(pgrep -d, -P "$pids" || true)"
    [ -z "$pids" ] || all="$all,$pids"
  done
  ps -o rss= -p "$all" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}
