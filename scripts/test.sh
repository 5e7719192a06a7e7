#!/usr/bin/env bash
# `make test`: installs what the tests need, runs every test in the workspace, then the arm64
# package under emulation (cross-build the arm64 .deb, run its gateway with qemu-user against
# dcmtk) and the package install test (build the .deb, install, upgrade and purge it in a booted
# Debian container).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"
"$here/scripts/deps.sh"
say "building and running the tests (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
status=0
cargo test --workspace --locked --no-fail-fast || status=$?
say "arm64 package under emulation (scripts/arm64-test.sh)"
"$here/scripts/arm64-test.sh" || status=1
if [ "$(id -u)" -eq 0 ]; then
  say "package install test (scripts/install-test.sh)"
  "$here/scripts/install-test.sh" || status=1
else
  echo "==> SKIPPED the package install test: it needs root (debootstrap, systemd-nspawn);" \
    "run sudo scripts/install-test.sh" >&2
fi
exit "$status"
