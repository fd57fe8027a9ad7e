#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target in fuzz/ for a bounded time each (default 20 s;
# FUZZ_SECONDS overrides), starting from the committed seed corpus. Prints one summary
# line per target and fails if any target finds a crash (artifacts in fuzz/artifacts/).
#
# New inputs libFuzzer finds go to a temporary directory, never into fuzz/corpus/, so a
# run leaves the work tree clean. The build goes to fuzz/target (git-ignored).
set -euo pipefail

# shellcheck source=scripts/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_fuzz

seconds="${FUZZ_SECONDS:-20}"
case "$seconds" in
  '' | *[!0-9]* | 0) echo "FUZZ_SECONDS must be a positive whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac

fuzz_dir="$TOLLGATE_ROOT/fuzz"
export CARGO_TARGET_DIR="$fuzz_dir/target"
cd "$fuzz_dir"

log "building the fuzz targets (nightly, address sanitizer)"
build_log="$CARGO_TARGET_DIR/fuzz-smoke-build.log"
mkdir -p "$CARGO_TARGET_DIR"
if ! cargo +nightly fuzz build >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  echo "fuzz build failed (full log: $build_log)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=0
summary=()
for target in $(cargo +nightly fuzz list); do
  log "fuzzing $target for ${seconds}s"
  new_corpus="$work/$target"
  run_log="$work/$target.log"
  mkdir -p "$new_corpus"
  status=0
  # The first corpus directory receives new inputs; the committed seeds are read only.
  cargo +nightly fuzz run "$target" "$new_corpus" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$run_log" 2>&1 || status=$?

  stat() { sed -n "s/^stat::$1: *//p" "$run_log" | tail -n 1; }
  execs="$(stat number_of_executed_units)"
  rate="$(stat average_exec_per_sec)"
  cov="$(grep -Eo 'cov: [0-9]+' "$run_log" | tail -n 1 | cut -d' ' -f2 || true)"
  found="$(find "$new_corpus" -type f | wc -l | tr -d ' ')"
  if [ "$status" -eq 0 ] && grep -q 'Done [0-9]* runs' "$run_log"; then
    verdict="ok"
  else
    verdict="FAILED (exit $status)"
    failed=1
    echo "---- $target: last lines of the libFuzzer log ----" >&2
    tail -n 40 "$run_log" >&2
    ls -1 "artifacts/$target" 2>/dev/null | sed "s|^|crash input: fuzz/artifacts/$target/|" >&2 || true
  fi
  summary+=("$(printf 'fuzz %-7s %-6s %4ss  %10s execs  %7s exec/s  cov %5s  new inputs %4s' \
    "$target" "$verdict" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$found")")
done

printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz smoke run found a crash" >&2
  exit 1
fi
