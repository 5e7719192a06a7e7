#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine that has only the Rust
# toolchain. Idempotent: each step checks before it installs, and says what it is doing.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"

apt_packages=(
  nodejs npm          # Microsoft's hyco-ws SDK for the relay interop tests
)

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Node may come from elsewhere than Debian (as on the CI image): then the npm package is not needed.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  fi
  read -r -a missing <<<"${missing[*]}"
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# Node packages for the interop tests, from the committed lockfile.
interop="$here/interop/hyco-ws"
if [ -f "$interop/package-lock.json" ]; then
  stamp="$interop/node_modules/.lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$interop/package-lock.json" "$stamp"; then
    say "npm ci in interop/hyco-ws"
    (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$interop/package-lock.json" "$stamp"
  else
    say "interop/hyco-ws node_modules up to date"
  fi
fi
