#!/bin/bash
# Run every test/netproc-*-tests.el in one batch Emacs with module
# assertions.  The last line printed is "N passed, N failed"; the exit
# status is non-zero if a test failed or Emacs did not finish.
#
#   test/run-lisp-tests.sh                  all tests
#   NETPROC_TEST_SELECTOR=client test/run-lisp-tests.sh
#   NETPROC_TEST_FUZZ_CASES=5000 test/run-lisp-tests.sh
#   NETPROC_TEST_BUILTIN_ONLY=1 ...         only the builtin half
#   NETPROC_TEST_VERBOSE=1 ...              print every trace
#
# Name lookups stay on this machine: the script starts itself again
# through test/with-local-lookups.sh.

[ -n "${NETPROC_TEST_LOOKUPS:-}" ] \
  || exec "$(dirname "$0")/with-local-lookups.sh" "$0" "$@"
cd "$(dirname "$0")/.." || exit 2
EMACS=${EMACS:-emacs}
TIMEOUT=${NETPROC_TEST_TIMEOUT:-900}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

timeout "$TIMEOUT" "$EMACS" -Q --batch --module-assertions -L lisp -L test \
  -l test/netproc-test-runner.el 2>&1 | tee "$log" | grep -a --line-buffered -Ev '^[0-9]+ passed, [0-9]+ failed$'
rc=${PIPESTATUS[0]}

summary=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
if [ -n "$summary" ]; then
  echo "$summary"
  exit "$rc"
fi
# Emacs died or timed out before printing its counts: count what ERT
# reported so far and add one failure for the run that did not finish.
passed=$(grep -acE '^ +passed +[0-9]+/[0-9]+ ' "$log")
failed=$(grep -acE '^ +FAILED +[0-9]+/[0-9]+ ' "$log")
echo "Emacs exited with status $rc before the end of the run" >&2
echo "$passed passed, $((failed + 1)) failed"
exit 1
