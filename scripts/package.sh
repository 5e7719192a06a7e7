#!/usr/bin/env bash
# `make deb [ARCH=arm64]`: builds the gateway as a static musl binary, packages it with cargo-deb
# into dist/gateway_<version>_<arch>.deb, and runs lintian on it (any error or warning fails).
# Installs what it needs idempotently: lintian, the Rust musl target and cargo-deb; for amd64
# musl-tools, for arm64 a cross C toolchain (zig from PyPI's `ziglang`, driven by cargo-zigbuild:
# it compiles the C in the build, openjp2, mimalloc and ring's assembly, against zig's own musl).
#
#   scripts/package.sh [--arch amd64|arm64] [--revision N]
#     --arch      Debian architecture, default amd64 (`make deb ARCH=arm64` passes it)
#     --revision  Debian revision, default 1 (the install test builds 2)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
source "$here/scripts/apt.sh"

arch=amd64
revision=1
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --revision) revision="$2"; shift 2 ;;
    *) echo "usage: scripts/package.sh [--arch amd64|arm64] [--revision N]" >&2; exit 2 ;;
  esac
done
case "$arch" in
  amd64) target=x86_64-unknown-linux-musl ;;
  arm64) target=aarch64-unknown-linux-musl ;;
  *) echo "package.sh: unknown architecture '$arch' (ARCH=amd64 or ARCH=arm64)" >&2; exit 2 ;;
esac
tools="$SCREENING_CACHE/tools"
export PATH="$tools/bin:$PATH"

need=()
if [ "$arch" = amd64 ]; then command -v musl-gcc >/dev/null || need+=(musl-tools); fi
command -v lintian >/dev/null || need+=(lintian)
command -v man >/dev/null || need+=(man-db)
command -v file >/dev/null || need+=(file)
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

build=()
if [ "$arch" = arm64 ]; then
  # Both from PyPI, into their own virtualenv: the ziglang wheel is the whole zig toolchain
  # (including musl for every architecture), the cargo-zigbuild wheel its prebuilt binary.
  zig_version=0.15.2
  zigbuild_version=0.24.1
  zig_venv="$tools/zig"
  if [ "$("$zig_venv/bin/python" -m ziglang version 2>/dev/null)" != "$zig_version" ] ||
    ! "$zig_venv/bin/pip" show cargo-zigbuild 2>/dev/null | grep -x "Version: $zigbuild_version" >/dev/null; then
    say "installing zig $zig_version and cargo-zigbuild $zigbuild_version into $zig_venv (PyPI, once)"
    python3 -m venv "$zig_venv"
    "$zig_venv/bin/pip" install -q --disable-pip-version-check \
      "ziglang==$zig_version" "cargo-zigbuild==$zigbuild_version"
  fi
  # On PATH beside cargo-deb; zig finds its lib/ (musl, headers) from its real path.
  mkdir -p "$tools/bin"
  ln -sf "$zig_venv/bin/cargo-zigbuild" "$tools/bin/cargo-zigbuild"
  ln -sf "$("$zig_venv/bin/python" -c \
    'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')" \
    "$tools/bin/zig"
  build=(--cargo-build zigbuild)
fi

say "building gateway for $target (release: fat LTO, stripped) and packaging it (revision $revision)"
mkdir -p "$here/dist"
cd "$here"
cargo deb -p appliance --target "$target" "${build[@]}" --deb-revision "$revision" \
  --output "$here/dist" -- --locked
version="$(awk -F'"' '/^version = /{print $2; exit}' "$here/Cargo.toml")"
deb="$here/dist/gateway_${version}-${revision}_${arch}.deb"
binary="$CARGO_TARGET_DIR/$target/release/gateway"

say "binary: $(stat -c %s "$binary") bytes, $(file -b "$binary" | cut -d, -f1,2,4)"
# The package promises no libc: a binary that wants a dynamic loader would not start on a
# machine without one, so it is refused here rather than found out there.
if file -b "$binary" | grep -E 'dynamically linked|interpreter' >/dev/null; then
  echo "package.sh: $binary is not static: $(file -b "$binary")" >&2
  exit 1
fi
say "package: $deb, $(stat -c %s "$deb") bytes"
if [ "$revision" = 1 ]; then
  # Only the real release is linted: a rebuilt revision's changelog does not name it.
  say "lintian $(lintian --version | awk '{print $2}') on the package"
  lintian --display-info --pedantic --fail-on error,warning "$deb"
  say "lintian: no errors or warnings"
fi
echo "$deb"
