#!/usr/bin/env bash
# `make deb`: builds the gateway as a static musl binary, packages it with cargo-deb into
# dist/gateway_<version>_amd64.deb, and runs lintian on it (any error or warning fails).
# Installs what it needs (musl-tools, the musl target, cargo-deb, lintian) idempotently.
#
#   scripts/package.sh [--revision N]    # Debian revision, default 1 (the install test builds 2)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
source "$here/scripts/apt.sh"

revision=1
if [ "${1:-}" = "--revision" ]; then revision="$2"; fi
target=x86_64-unknown-linux-musl
tools="$SCREENING_CACHE/tools"
export PATH="$tools/bin:$PATH"

need=()
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v lintian >/dev/null || need+=(lintian)
command -v man >/dev/null || need+=(man-db)
apt_install "packaging" "${need[@]}"
if ! rustup target list --installed | grep -x "$target" >/dev/null; then
  say "adding the $target target"
  rustup target add "$target"
fi
cargo_deb_version=3.8.0
if [ "$(cargo-deb --version 2>/dev/null | awk '{print $2}')" != "$cargo_deb_version" ]; then
  say "installing cargo-deb $cargo_deb_version into $tools (about a minute, once)"
  cargo install cargo-deb --version "$cargo_deb_version" --locked --root "$tools" \
    --target-dir "$SCREENING_CACHE/tools-build"
fi

say "building gateway for $target (release: fat LTO, stripped) and packaging it (revision $revision)"
mkdir -p "$here/dist"
cd "$here"
cargo deb -p appliance --target "$target" --deb-revision "$revision" --output "$here/dist" -- --locked
version="$(awk -F'"' '/^version = /{print $2; exit}' "$here/Cargo.toml")"
deb="$here/dist/gateway_${version}-${revision}_amd64.deb"
binary="$CARGO_TARGET_DIR/$target/release/gateway"

say "binary: $(stat -c %s "$binary") bytes, $(file -b "$binary" | cut -d, -f1-2)"
say "package: $deb, $(stat -c %s "$deb") bytes"
if [ "$revision" = 1 ]; then
  # Only the real release is linted: a rebuilt revision's changelog does not name it.
  say "lintian $(lintian --version | awk '{print $2}') on the package"
  lintian --display-info --pedantic --fail-on error,warning "$deb"
  say "lintian: no errors or warnings"
fi
echo "$deb"
