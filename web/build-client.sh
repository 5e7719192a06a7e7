#!/usr/bin/env bash
# Builds the web app's browser client (wasm, feature `hydrate`) with plain cargo + wasm-bindgen,
# and assembles the static site the server serves: /pkg (the client), /nhsuk (NHS design system
# CSS from the npm package), /assets (its images), /app.css.
#   web/build-client.sh            debug client
#   web/build-client.sh --release  size-optimised client (profile wasm-release)
# Output: $WEB_SITE_ROOT, default $CARGO_TARGET_DIR/web-site (what the server looks for).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"
site="${WEB_SITE_ROOT:-$CARGO_TARGET_DIR/web-site}"
profile_args=(); bindgen_args=(); out=debug
if [ "${1:-}" = "--release" ]; then
  profile_args=(--profile wasm-release); out=wasm-release
  bindgen_args=(--remove-name-section --remove-producers-section)
fi

command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen not found: run scripts/deps.sh" >&2; exit 1; }
[ -d web/node_modules/nhsuk-frontend ] || { echo "web/node_modules missing: run scripts/deps.sh" >&2; exit 1; }

say "building the web client (wasm32, $out)"
cargo build -p web --lib --locked --target wasm32-unknown-unknown --no-default-features --features hydrate "${profile_args[@]}"
mkdir -p "$site/pkg" "$site/nhsuk"
wasm-bindgen --target web "${bindgen_args[@]}" --out-dir "$site/pkg" --out-name web \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$out/web.wasm"
cp web/node_modules/nhsuk-frontend/dist/nhsuk/nhsuk-frontend.min.css "$site/nhsuk/"
rm -rf "$site/assets"; cp -r web/node_modules/nhsuk-frontend/dist/nhsuk/assets "$site/assets"
cp web/style/app.css "$site/app.css"
say "web client in $site ($(du -h "$site/pkg/web_bg.wasm" | cut -f1) wasm)"
