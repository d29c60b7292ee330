#!/bin/sh
# Builds the engine tests under ThreadSanitizer (build/tsan) and under
# AddressSanitizer + UndefinedBehaviorSanitizer (build/asan), and runs
# both sets with test/run-engine-tests.sh.
#
# A sanitizer report makes the test case's process exit non-zero, which
# fails that case (each case runs in its own process, see
# test/engine/testlib.h); leaks are reported when the case's process exits.
#
#   test/run-sanitized-engine.sh [tsan|asan]...   (default: both)

set -u
cd "$(dirname "$0")/.." || exit 2

CC=${CC:-gcc}
PKGS="gio-2.0 gio-unix-2.0"
GLIB_CFLAGS=$(pkg-config --cflags $PKGS) || exit 2
GLIB_LIBS=$(pkg-config --libs $PKGS) || exit 2
ENGINE_SRC=$(ls module/engine/*.c)
HELPERS=$(ls test/engine/*.c | grep -v '/test-[^/]*\.c$')
TESTS=$(ls test/engine/test-*.c)

build () {  # build DIR FLAGS...
  dir=$1; shift
  mkdir -p "$dir"
  for t in $TESTS; do
    out="$dir/$(basename "$t" .c)"
    # shellcheck disable=SC2086
    $CC -std=gnu11 -Wall -Wextra -Werror -O1 -g -fno-omit-frame-pointer "$@" \
      -Wl,--wrap=epoll_ctl -Wl,--wrap=poll -Imodule/engine -Itest/engine $GLIB_CFLAGS \
      -o "$out" "$t" $ENGINE_SRC $HELPERS $GLIB_LIBS -lpthread || return 1
  done
}

bins () {
  for t in $TESTS; do printf '%s ' "$1/$(basename "$t" .c)"; done
}

# GLib 2.74's slice allocator hands memory between threads in magazines
# the sanitizers cannot see into: TSan then reports the reuse as races
# and LSan misses leaks.  Plain malloc for every slice avoids both.
export G_SLICE=always-malloc G_DEBUG=gc-friendly

status=0
for kind in ${@:-tsan asan}; do
  case $kind in
    tsan)
      echo "=== ThreadSanitizer"
      build build/tsan -fsanitize=thread || exit 2
      # GLib is not instrumented: its own locking (futexes, atomics) is
      # invisible, so accesses made from inside it (malloc/free/memset in
      # its threads) would be reported as races against each other.
      # ignore_noninstrumented_modules keeps reports to our code; what is
      # left over from GLib is in tsan.supp with the reason.
      TSAN_OPTIONS="suppressions=$PWD/test/engine/tsan.supp ignore_noninstrumented_modules=1 halt_on_error=0 exitcode=66 second_deadlock_stack=1 history_size=4" \
        test/run-engine-tests.sh $(bins build/tsan) || status=1
      ;;
    asan)
      echo "=== AddressSanitizer + UndefinedBehaviorSanitizer"
      build build/asan -fsanitize=address,undefined \
        -fno-sanitize-recover=undefined || exit 2
      ASAN_OPTIONS="detect_leaks=1 abort_on_error=0 exitcode=23" \
      LSAN_OPTIONS="suppressions=$PWD/test/engine/lsan.supp print_suppressions=0" \
      UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1" \
        test/run-engine-tests.sh $(bins build/asan) || status=1
      ;;
    *)
      echo "unknown sanitizer: $kind" >&2
      exit 2
      ;;
  esac
done
exit $status
