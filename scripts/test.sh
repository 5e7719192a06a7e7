#!/usr/bin/env bash
# `make test`: installs what the tests need, then runs every test in the workspace.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"
"$here/scripts/deps.sh"
say "building and running the tests (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo test --workspace --locked --no-fail-fast
