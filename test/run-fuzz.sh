#!/usr/bin/env bash
# Runs each fuzz target (built in build/fuzz/) for FUZZ_SECONDS, one at
# a time, and ends with one line: N passed, N failed.
#
#   FUZZ_SECONDS=60 test/run-fuzz.sh fuzz-address fuzz-sockopt ...
#
# A target starts from its kept inputs (test/fuzz/corpus/TARGET/ and
# test/fuzz/regressions/TARGET/) and from what earlier runs found
# (build/fuzz/corpus/TARGET/, where new inputs go: the kept corpus is
# only read).  It passes when it ran its time out without a crash; a
# crash leaves its input in build/fuzz/crashes/TARGET/ and the report in
# build/fuzz/TARGET.log.  The table of the run goes to
# build/fuzz/summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
out=build/fuzz
summary=$out/summary.md
# GLib 2.74's slice allocator hides frees from LeakSanitizer.
export G_SLICE=always-malloc

passed=0
failed=0
total_execs=0
total_seconds=0
rows=()

for target in "$@"; do
  bin=$out/$target
  work=$out/corpus/$target
  crashes=$out/crashes/$target
  log=$out/$target.log
  mkdir -p "$work"
  rm -rf "$crashes"
  mkdir -p "$crashes"
  dirs=("$work" "test/fuzz/corpus/$target")
  [ -d "test/fuzz/regressions/$target" ] \
    && dirs+=("test/fuzz/regressions/$target")

  echo "== $target (${seconds}s)"
  start=$(date +%s)
  "$bin" -max_total_time="$seconds" -timeout=10 -max_len=4096 \
         -print_final_stats=1 -artifact_prefix="$crashes/" \
         "${dirs[@]}" >"$log" 2>&1
  status=$?
  elapsed=$(( $(date +%s) - start ))

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  execs=${execs:-0}
  found=$(find "$crashes" -type f | wc -l)
  corpus=$(find "$work" -type f | wc -l)
  total_execs=$((total_execs + execs))
  total_seconds=$((total_seconds + elapsed))

  if [ "$status" -eq 0 ] && [ "$found" -eq 0 ]; then
    result=passed
    passed=$((passed + 1))
  else
    result=failed
    failed=$((failed + 1))
    # The invariant or sanitizer report, and where the input is.
    grep -E -m 1 -A 1 'invariant failed' "$log"
    grep -E -m 1 'runtime error|^SUMMARY: ' "$log"
    find "$crashes" -type f -printf '  input: %p\n'
    [ "$found" -eq 0 ] && echo "  exit status $status, see $log"
  fi
  echo "$target: $execs execs in ${elapsed}s, $found crashes, corpus $corpus: $result"
  rows+=("| $target | $execs | $elapsed | $((execs / (elapsed > 0 ? elapsed : 1))) | $found | $corpus | $result |")
done

{
  echo "# make fuzz, $(date -u '+%Y-%m-%d %H:%M UTC'), FUZZ_SECONDS=$seconds"
  echo
  echo "| target | execs | seconds | execs/s | crashes | corpus | result |"
  echo "|--------|-------|---------|---------|---------|--------|--------|"
  printf '%s\n' "${rows[@]}"
  echo "| total | $total_execs | $total_seconds | | | | |"
  echo
  echo "$passed passed, $failed failed"
} >"$summary"

echo "Summary: $summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
