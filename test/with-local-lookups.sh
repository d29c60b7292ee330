#!/bin/sh
# Runs COMMAND so that the tests' name lookups cannot leave the machine.
#
#   test/with-local-lookups.sh COMMAND [ARG...]
#
# The test runners (run-engine-tests.sh, run-lisp-tests.sh) start
# themselves again through this script, so every way in, `make check'
# or a runner called by hand, gets the same treatment.
#
# Some tests look up a name that does not exist (no-such-host.invalid),
# on the builtin's side and on netproc's, to compare how each fails.
# Through the system's name service that is a DNS query, which leaves
# the machine.  Both sides resolve through glibc's getaddrinfo() (GIO's
# threaded resolver calls it too), and glibc asks the sources that the
# hosts line of /etc/nsswitch.conf lists.  So when this script may
# (root, and unshare(1) makes a mount namespace), COMMAND runs in a
# private mount namespace in which:
#
# - /etc/nsswitch.conf is the system's own with its hosts line replaced
#   by "hosts: files": every name comes from /etc/hosts or fails with
#   EAI_NONAME, "Name or service not known", the answer the DNS gives
#   for .invalid; localhost and addresses still resolve;
# - /etc/resolv.conf names 127.0.0.1 only, in case anything asks the
#   DNS all the same;
# - nscd's socket, if there is one, is covered: glibc would otherwise
#   ask nscd, which resolves by the system's nsswitch.conf.
#
# Only the mount table is private: the network, the processes and the
# files are the machine's own, and the namespace (and its mounts) ends
# with COMMAND.  A user namespace would let a non-root user do the same,
# but inside it the user would be uid 0, and tests that branch on being
# root (the fault tests' own namespaces) would take the wrong branch.
#
# Otherwise COMMAND runs as it is, and the tests that need a lookup to
# fail skip unless the system's nsswitch.conf already answers from this
# machine alone (netproc-test-lookups-local-p, t_lookups_local()).
#
# Either way NETPROC_TEST_LOOKUPS tells COMMAND which: "namespace" or
# "system"; the guard test netproc-test-lookups-in-effect checks that
# the claim holds.  When it is set already, COMMAND runs as it is: an
# enclosing run decided.
set -u

if [ -n "${NETPROC_TEST_LOOKUPS:-}" ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ] && [ -f /etc/nsswitch.conf ] \
     && unshare --mount true 2>/dev/null; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/netproc-lookups.XXXXXX") || exit 2
  # The copies stay while COMMAND runs: the kernel mounts nothing over a
  # file whose bound copy was removed, and the fault tests mount over
  # /etc/nsswitch.conf again in namespaces of their own.
  trap 'rm -rf "$dir"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Every line glibc reads as a hosts line goes, whatever its spelling.
  { grep -Eiv '^[[:space:]]*hosts[[:space:]:]' /etc/nsswitch.conf
    echo "hosts: files"; } >"$dir/nsswitch.conf"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
    >"$dir/resolv.conf"
  NETPROC_TEST_LOOKUPS=namespace
  export NETPROC_TEST_LOOKUPS
  # unshare(1) makes the new namespace's mounts private: nothing mounted
  # there is seen outside.  A failed mount ends the run; it never falls
  # back to the system's name service.
  unshare --mount sh -c '
    dir=$1; shift
    ok=1
    mount --bind "$dir/nsswitch.conf" /etc/nsswitch.conf || ok=
    if [ -n "$ok" ] && [ -e /etc/resolv.conf ]; then
      mount --bind "$dir/resolv.conf" /etc/resolv.conf || ok=
    fi
    for s in /var/run/nscd/socket /run/nscd/socket; do
      if [ -n "$ok" ] && [ -S "$s" ]; then
        mount --bind /dev/null "$s" || ok=
      fi
    done
    if [ -z "$ok" ]; then
      echo "with-local-lookups: cannot set up the private name service" >&2
      # The runners end with their count; so does this failure.
      echo "0 passed, 1 failed"
      exit 1
    fi
    exec "$@"' sh "$dir" "$@"
  exit $?
fi

NETPROC_TEST_LOOKUPS=system
export NETPROC_TEST_LOOKUPS
exec "$@"
