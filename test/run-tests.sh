#!/usr/bin/env bash
# Runs every suite of `make check' and ends with one line: N passed, N failed.
# Each suite prints its own "N passed, N failed" as its last such line; the
# totals add them up.  A suite that dies without that line counts as one
# failure, so a crash can never pass for success.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0

run_suite() {
  local name=$1; shift
  local log
  log=$(mktemp)
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  local line
  line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result line (exit status $status)"
    failed=$((failed + 1))
  else
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -eq 0 ] && [ "$status" -ne 0 ]; then
      echo "$name: exit status $status"
      failed=$((failed + 1))
    fi
  fi
  rm -f "$log"
}

run_suite "engine (C)" make --no-print-directory check-engine
run_suite "fuzz replay (C)" make --no-print-directory check-fuzz-replay
run_suite "lisp (ERT)" make --no-print-directory check-lisp
# The same engine tests under ThreadSanitizer and AddressSanitizer, and
# the ERT suite against a module built with AddressSanitizer and UBSan
# (`make sanitize'): part of every check, so CI runs them too.
run_suite "sanitizers" test/run-sanitized.sh

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
