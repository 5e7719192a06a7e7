#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target of fuzz/ (afl.rs, stable toolchain) for FUZZ_SECONDS each,
# one after another, starting from the saved corpus fuzz/corpus/<target>/, then prints each
# target's executions, speed and crashes from AFL's fuzzer_stats. The targets are pure functions:
# nothing is sent anywhere. Installs cargo-afl (which builds AFL++) under the tool cache when
# missing.
#
#   FUZZ_SECONDS=300      time per target
#   FUZZ_TARGETS="pdv sas" which targets (default: all of fuzz::TARGETS)
#   FUZZ_MEMORY_MB=2048   address-space limit of a target (the unit's MemoryMax): a bigger
#                         allocation aborts and counts as a crash
#   FUZZ_SAVE=1           afterwards, minimise each target's queue with afl-cmin into
#                         fuzz/corpus/<target>/ (the seeds and crash inputs are kept as they are)
#
# Findings stay in $CARGO_TARGET_DIR/afl/out/<target>/default/{crashes,hangs}; triage them with
# `cargo run -p fuzz --bin fuzz-replay -- <target> FILE…`. A crash or hang is fixed by fixing the
# code and copying its input into fuzz/corpus/<target>/ as crash-<hash> or hang-<hash>, which
# `cargo test -p fuzz` then replays.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"

seconds="${FUZZ_SECONDS:-300}"
memory="${FUZZ_MEMORY_MB:-2048}"
all_targets="pdv command lengths data_set wire sas thumbnail stored_file"
targets="${FUZZ_TARGETS:-$all_targets}"
tools="$SCREENING_CACHE/tools"
export PATH="$tools/bin:$PATH"
# cargo-afl keeps the AFL++ it builds under XDG_DATA_HOME: the tool cache, not the home directory.
export XDG_DATA_HOME="$tools/share"
afl_target="$CARGO_TARGET_DIR/afl"
out="$afl_target/out"

if ! cargo afl --version >/dev/null 2>&1; then
  say "installing cargo-afl into $tools"
  cargo install --locked cargo-afl --version '^0.18' --root "$tools"
fi
if ! ls "$XDG_DATA_HOME"/afl.rs/*/*/afl/bin/afl-fuzz >/dev/null 2>&1; then
  say "building AFL++ (cargo afl config --build)"
  cargo afl config --build
fi

say "building the fuzz targets (CARGO_TARGET_DIR=$afl_target)"
CARGO_TARGET_DIR="$afl_target" cargo afl build --locked --release -p fuzz --features afl \
  --bin fuzz-afl
binary="$afl_target/release/fuzz-afl"

# No UI (output goes to a log), no CPU pinning (the machine is shared), no core-dump pattern check.
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1

stat() { sed -n "s/^$2 *: *//p" "$out/$1/default/fuzzer_stats"; }

for t in $targets; do
  # A previous run's findings are kept aside, not overwritten.
  if [ -d "$out/$t/default/crashes" ] && [ -n "$(ls -A "$out/$t/default/crashes")" ]; then
    mkdir -p "$out/kept"
    mv "$out/$t/default/crashes" "$out/kept/$t-crashes-$(date +%s)"
  fi
  rm -rf "${out:?}/$t"
  mkdir -p "$out/$t"
  say "fuzzing $t for ${seconds}s (log: $out/$t.log)"
  cargo afl fuzz -V "$seconds" -m "$memory" -t 2000 -i "fuzz/corpus/$t" -o "$out/$t" \
    -- "$binary" "$t" >"$out/$t.log" 2>&1 || {
    tail -20 "$out/$t.log" >&2
    echo "afl-fuzz failed for $t" >&2
    exit 1
  }
  if [ "${FUZZ_SAVE:-0}" = 1 ]; then
    say "minimising the $t queue into fuzz/corpus/$t"
    min="$out/$t.min"
    rm -rf "$min"
    cargo afl cmin -m "$memory" -t 2000 -i "$out/$t/default/queue" -o "$min" \
      -- "$binary" "$t" >"$out/$t.cmin.log" 2>&1 || tail -5 "$out/$t.cmin.log" >&2
    # Minimised inputs are named by content; seeds (seed-*) and crash cases (crash-*) stay.
    find "fuzz/corpus/$t" -maxdepth 1 -type f -name 'q-*' -delete
    for f in "$min"/*; do
      [ -f "$f" ] || continue
      name="$(basename "$f")"
      case "$name" in *orig:seed-*|*orig:crash-*) continue ;; esac
      cp "$f" "fuzz/corpus/$t/q-$(sha1sum <"$f" | cut -c1-16)"
    done
  fi
done

say "results (this run; from each target's fuzzer_stats)"
printf '%-10s %12s %10s %8s %8s %6s %7s\n' target executions exec/s seconds crashes hangs corpus
crashed=0
for t in $targets; do
  crashes="$(stat "$t" saved_crashes)"
  printf '%-10s %12s %10s %8s %8s %6s %7s\n' "$t" "$(stat "$t" execs_done)" \
    "$(stat "$t" execs_per_sec)" "$(stat "$t" run_time)" "$crashes" \
    "$(stat "$t" saved_hangs)" "$(stat "$t" corpus_count)"
  [ "$crashes" = 0 ] || crashed=1
done
if [ "$crashed" = 1 ]; then
  echo "crash inputs: $out/<target>/default/crashes/ (replay: $binary <target> < input)" >&2
  exit 1
fi
