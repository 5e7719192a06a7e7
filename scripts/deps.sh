#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine that has only the Rust
# toolchain. Idempotent: each step checks before it installs, and says what it is doing.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
source "$here/scripts/apt.sh"

# Node and npm for Microsoft's hyco-ws SDK (relay interop tests); Node may come from elsewhere
# than Debian (as on the CI image), and then nothing is installed.
if command -v node >/dev/null && command -v npm >/dev/null; then
  say "node and npm present"
else
  apt_install "the relay interop tests" nodejs npm
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

# --- DICOM test peers (appliance tests, issue 3) -------------------------------------------
# dcmtk gives echoscu, findscu, storescu, storescp (bench) and the codecs (dcmcjpeg, dcmcjpls,
# dcmcrle) that make the compressed test images. pynetdicom drives MPPS and C-CANCEL, which dcmtk
# has no tool for; pydicom and pydicom-data ship the sample files for every transfer syntax.
dicom_apt=()
command -v storescu >/dev/null || dicom_apt+=(dcmtk)
command -v gdcmconv >/dev/null || dicom_apt+=(libgdcm-tools)  # makes the JPEG 2000 test objects
# Orthanc is the real PACS of the Storage Commitment tests (tests/commitment.rs), started by the
# tests with a private config on free ports; the package's own service, where systemd starts it,
# is left alone.
[ -x /usr/sbin/Orthanc ] || dicom_apt+=(orthanc)
[ -x /usr/bin/time ] || dicom_apt+=(time)  # GNU time: the bench's peak RSS of one process
python3 -c 'import venv, ensurepip' 2>/dev/null || dicom_apt+=(python3 python3-venv)
if [ ${#dicom_apt[@]} -gt 0 ]; then
  apt_install "the DICOM tests" "${dicom_apt[@]}"
else
  say "dcmtk, GDCM tools, Orthanc and python3-venv present"
fi
dicom_venv="$SCREENING_CACHE/venv"
# fhir.resources 6.4 is the last release on FHIR R4 (4.0.1), and needs pydantic 1: the
# independent validator of the FHIR orders the gateway delivers (web/tests/fhir.rs).
dicom_pip=(pynetdicom==3.0.4 pydicom==3.0.2 pydicom-data==1.0.0 numpy fhir.resources==6.4.0 pydantic==1.10.21)
if ! "$dicom_venv/bin/python" -c 'import pynetdicom, pydicom, numpy, data_store, fhir.resources' 2>/dev/null; then
  say "creating the DICOM test virtualenv in $dicom_venv"
  python3 -m venv "$dicom_venv"
  "$dicom_venv/bin/pip" install -q --disable-pip-version-check "${dicom_pip[@]}"
else
  say "DICOM test virtualenv up to date ($dicom_venv)"
fi
# --- end of DICOM test peers ----------------------------------------------------------------

# --- web app (issue 5) ----------------------------------------------------------------------
# Browser tests drive Debian's Chromium with playwright-core; the database tests start their own
# PostgreSQL server (initdb/pg_ctl); the browser client is wasm built with plain cargo +
# wasm-bindgen-cli (exactly the wasm-bindgen version in Cargo.lock); NHS design system CSS,
# playwright-core and axe-core come from npm via web/package-lock.json.
web_apt=()
command -v chromium >/dev/null || web_apt+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || web_apt+=(postgresql)
if [ ${#web_apt[@]} -gt 0 ]; then
  apt_install "the web app tests" "${web_apt[@]}"
else
  say "chromium and postgresql present"
fi
if ! rustup target list --installed | grep -x wasm32-unknown-unknown >/dev/null; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
wasm_bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$here/Cargo.lock")"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wasm_bindgen_version" ]; then
  say "installing wasm-bindgen-cli $wasm_bindgen_version (a few minutes, once)"
  # Not --locked: its lockfile pins a webpki-roots the index may not have.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
else
  say "wasm-bindgen-cli $wasm_bindgen_version present"
fi
web_dir="$here/web"
stamp="$web_dir/node_modules/.lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$web_dir/package-lock.json" "$stamp"; then
  say "npm ci in web"
  (cd "$web_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$web_dir/package-lock.json" "$stamp"
else
  say "web/node_modules up to date"
fi
"$web_dir/build-client.sh"
# --- end of web app -------------------------------------------------------------------------
