#!/bin/sh
# Runs engine test binaries and counts their cases.
#
#   test/run-engine-tests.sh build/engine/test-connect build/engine/test-data ...
#
# Each binary prints one line per case, "PASS name" or "FAIL name: detail"
# (see test/engine/testlib.h); other lines pass through.  A binary that
# dies or times out without reporting counts as one failure.  The last
# line is exactly "N passed, N failed".  Exit status 0 only if none failed.
#
# Name lookups stay on this machine: the script starts itself again
# through test/with-local-lookups.sh.

[ -n "${NETPROC_TEST_LOOKUPS:-}" ] \
  || exec "$(dirname "$0")/with-local-lookups.sh" "$0" "$@"

timeout_s=${ENGINE_TEST_TIMEOUT:-300}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
  echo "== $bin"
  timeout "$timeout_s" "$bin" >"$log" 2>&1
  status=$?
  cat "$log"
  p=$(grep -ac '^PASS ' "$log")
  f=$(grep -ac '^FAIL ' "$log")
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
    if [ "$status" -eq 124 ]; then
      echo "FAIL $bin: timed out after ${timeout_s}s"
    else
      echo "FAIL $bin: exit status $status"
    fi
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
