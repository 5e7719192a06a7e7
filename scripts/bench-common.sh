# Sourced by the DICOM benches (bench-store.sh, bench-forward.sh) after they set small_count and
# mg_count: checks the references are installed, builds the release gateway, makes the synthetic
# files once (200 CT-sized 512×512 objects, 40 full-size 4096×3328 mammograms, kept in
# $SCREENING_CACHE/bench-data) and defines the helpers both use.
source "$here/scripts/env.sh"
source "$here/scripts/apt.sh"
rounds="${BENCH_ROUNDS:-3}"
py="${DICOM_TEST_PYTHON:-$SCREENING_CACHE/venv/bin/python}"
command -v storescu >/dev/null || { echo "dcmtk missing: run scripts/deps.sh" >&2; exit 1; }
[ -x "$py" ] || { echo "$py missing: run scripts/deps.sh" >&2; exit 1; }
command -v Orthanc >/dev/null || apt_install "the DICOM benches' Orthanc" orthanc

say "building the gateway (release, as shipped)"
cargo build --release --locked -p appliance --manifest-path "$here/Cargo.toml" >&2
gateway="$CARGO_TARGET_DIR/release/gateway"

data="$SCREENING_CACHE/bench-data"
if [ "$(ls "$data/small" 2>/dev/null | wc -l)" -lt "$small_count" ]; then
  say "generating $small_count small images"
  rm -rf "$data/small"
  "$py" "$here/appliance/tests/peers/peer.py" make-mg --out "$data/small" --count "$small_count" \
    --rows 512 --cols 512 --accession BENCHSMALL >/dev/null
fi
if [ "$(ls "$data/mg" 2>/dev/null | wc -l)" -lt "$mg_count" ]; then
  say "generating $mg_count full-size mammograms (27 MB each; takes a while once)"
  rm -rf "$data/mg"
  "$py" "$here/appliance/tests/peers/peer.py" make-mg --out "$data/mg" --count "$mg_count" \
    --accession BENCHMG >/dev/null
fi
small_files=("$data"/small/*.dcm); small_files=("${small_files[@]:0:$small_count}")
mg_files=("$data"/mg/*.dcm); mg_files=("${mg_files[@]:0:$mg_count}")
small_mb=$(du -cm "${small_files[@]}" | tail -1 | cut -f1)
mg_mb=$(du -cm "${mg_files[@]}" | tail -1 | cut -f1)

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}
