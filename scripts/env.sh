# Sourced by the Makefile's scripts: where builds and tool caches live.
# Builds are kept outside the clone, so CI on a fresh clone and repeated local runs are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/screening-gateway/target}"
export SCREENING_CACHE="${SCREENING_CACHE:-$HOME/.cache/screening-gateway}"
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '==> %s\n' "$*" >&2; }
