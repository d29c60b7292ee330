#!/usr/bin/env bash
# `make sanitize': the engine's C tests under ThreadSanitizer and
# AddressSanitizer, then the whole ERT suite against a module built with
# AddressSanitizer and UBSan.  Emacs itself is not instrumented, so the
# ASan runtime is preloaded into it.  Ends with: N passed, N failed.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
# Adds up every count line in log $1 (the engine part prints one per
# sanitizer), and counts a part that printed none, or failed without
# counting a failure (exit status $3), as one failure.
tally() {
  local lines p f
  lines=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$1")
  if [ -z "$lines" ]; then
    failed=$((failed + 1)); echo "$2: no result line"; return
  fi
  p=$(echo "$lines" | awk '{ n += $1 } END { print n }')
  f=$(echo "$lines" | awk '{ n += $3 } END { print n }')
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -eq 0 ] && [ "$3" -ne 0 ]; then
    failed=$((failed + 1)); echo "$2: exit status $3"
  fi
}

log=$(mktemp)
test/run-sanitized-engine.sh 2>&1 | tee "$log"
tally "$log" "engine under sanitizers" "${PIPESTATUS[0]}"

make --no-print-directory build/asan/netproc-module.so \
  build/asan/no-textdomain.so all build/sockopt-peek build/dgram-peer \
  build/echo-peer
asan_rt=$(gcc -print-file-name=libasan.so)
# Emacs's own allocations are not ours to judge: leaks are checked by the
# engine tests, where every allocation is ours.
NETPROC_TEST_NETPROC_ONLY=1 \
NETPROC_MODULE=$PWD/build/asan/netproc-module.so \
LD_PRELOAD="$asan_rt $PWD/build/asan/no-textdomain.so" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  test/run-lisp-tests.sh 2>&1 | tee "$log"
tally "$log" "ERT against the ASan module" "${PIPESTATUS[0]}"
rm -f "$log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
