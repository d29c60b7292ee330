#!/bin/sh
# bench/run.sh -- the builtin network processes against netproc, same run.
#
#   bench/run.sh                 full run (6 rounds, 256 MiB streams)
#   BENCH_ROUNDS=4 bench/run.sh  another number of rounds (made even)
#   BENCH_QUICK=1 bench/run.sh   a fast smoke run with small sizes
#   BENCH_BYTE_CODE=1 bench/run.sh  netproc's Lisp as byte code, though
#                                `make' compiled it to native code
#
# Builds the loopback peer (bench/peer.c), then for each round starts a
# peer and runs every workload in a fresh `emacs -Q --batch -L lisp'
# child, builtin and netproc, each under a watchdog; the builtin goes
# first in odd rounds, netproc in even ones.  Then measures what
# netproc-compat-mode costs builtin processes (bench/compat-overhead.el;
# not when BENCH_WORKLOADS picks workloads).  Prints the table of
# medians and writes bench/results/latest.md and latest.svg.
# Run from the top directory after `make' (the module must be built).
set -u

EMACS=${EMACS:-emacs}
CC=${CC:-gcc}
TOP=$(pwd)
OUT=$TOP/build/bench
RESULTS=$TOP/bench/results
mkdir -p "$OUT" "$RESULTS"

if [ ! -f module/netproc-module.so ]; then
  echo "bench: module/netproc-module.so is missing; run make first" >&2
  exit 1
fi

# The peer: zero warnings required.
if ! $CC -O2 -Wall -Wextra -Werror -o "$OUT/peer" bench/peer.c; then
  echo "bench: the peer does not build cleanly" >&2
  exit 1
fi
PEER=$OUT/peer

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${BENCH_ROUNDS:-2}
  export BENCH_RECV_BYTES=$((16 * 1024 * 1024))
  export BENCH_SEND_BYTES=$((16 * 1024 * 1024))
  export BENCH_PP_COUNT=2000
  export BENCH_IDLE_COUNT=1000
  export BENCH_CONNECT_SECONDS=1
  export BENCH_ACCEPT_SECONDS=1
  export BENCH_MAXCONN_CAP=2000
  export BENCH_MAXCONN_SECONDS=10
  export BENCH_CHANNEL_COUNT=100000
  export BENCH_CHANNEL_LAT_COUNT=1000
else
  ROUNDS=${BENCH_ROUNDS:-6}
  export BENCH_RECV_BYTES=$((256 * 1024 * 1024))
  export BENCH_SEND_BYTES=$((256 * 1024 * 1024))
  export BENCH_PP_COUNT=20000
  export BENCH_IDLE_COUNT=1000
  export BENCH_CONNECT_SECONDS=2
  export BENCH_ACCEPT_SECONDS=3
  export BENCH_MAXCONN_CAP=20000
  export BENCH_MAXCONN_SECONDS=45
  export BENCH_CHANNEL_COUNT=1000000
  export BENCH_CHANNEL_LAT_COUNT=5000
fi
# Each side goes first in as many rounds as the other (see below).
if [ $((ROUNDS % 2)) -eq 1 ]; then
  ROUNDS=$((ROUNDS + 1))
  echo "bench: $ROUNDS rounds, so that each side goes first as often"
fi
WATCHDOG=${BENCH_WATCHDOG:-120}
export BENCH_PEER="$PEER"
export BENCH_WORKLOAD_SECONDS=$((WATCHDOG - 10))

WORKLOADS=${BENCH_WORKLOADS:-"recv4k recv1m send pingpong pingpong-idle connect nowait accept maxconn channel"}

RAW=$OUT/raw.tsv
LOGDIR=$OUT/logs
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
: > "$RAW"

PEER_PID=
stop_peer () {
  if [ -n "$PEER_PID" ]; then
    kill "$PEER_PID" 2>/dev/null
    wait "$PEER_PID" 2>/dev/null
    PEER_PID=
  fi
}
trap 'stop_peer; exit 130' INT TERM
trap 'stop_peer' EXIT

start_peer () {
  portfile=$OUT/ports.$$
  rm -f "$portfile"
  "$PEER" serve "$portfile" "$BENCH_RECV_BYTES" 3600 &
  PEER_PID=$!
  i=0
  while [ ! -s "$portfile" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  if [ ! -s "$portfile" ]; then
    echo "bench: the peer did not start" >&2
    exit 1
  fi
  set -- $(cat "$portfile")
  for kv in "$@"; do
    case $kv in
      source=*) export BENCH_PORT_SOURCE=${kv#source=} ;;
      sink=*) export BENCH_PORT_SINK=${kv#sink=} ;;
      echo=*) export BENCH_PORT_ECHO=${kv#echo=} ;;
      tsource=*) export BENCH_PORT_TSOURCE=${kv#tsource=} ;;
    esac
  done
}

run_child () { # workload side round
  log=$LOGDIR/$1.$2.$3.log
  BENCH_WORKLOAD=$1 BENCH_SIDE=$2 timeout -k 5 "$WATCHDOG" \
    "$EMACS" -Q --batch -L lisp -l bench/bench.el -f bench-main \
    > "$log" 2>&1 < /dev/null
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    printf '%s\t%s\t%s\tFAIL\twatchdog (%s s)\n' "$1" "$2" "$3" "$WATCHDOG" >> "$RAW"
  elif [ $rc -ne 0 ] || ! grep -q '^RESULT ' "$log"; then
    why=$(grep -m1 '^ERROR ' "$log" | cut -c7-80)
    printf '%s\t%s\t%s\tFAIL\texit %s %s\n' "$1" "$2" "$3" "$rc" "$why" >> "$RAW"
  fi
  awk -v w="$1" -v s="$2" -v r="$3" -v OFS='\t' \
    '$1 == "RESULT" { print w, s, r, $2, $3 }
     $1 == "INFO"   { v = $0; sub(/^INFO +[^ ]+ */, "", v);
                      print w, s, r, "info:" $2, v }' "$log" >> "$RAW"
  printf ' %s/%s' "$1" "$2"
}

echo "bench: $ROUNDS round(s), quick=$QUICK, watchdog ${WATCHDOG}s per child"
START=$(date +%s)
round=1
while [ $round -le "$ROUNDS" ]; do
  printf 'round %s:' "$round"
  start_peer
  for w in $WORKLOADS; do
    # Who goes first alternates by round: a workload that makes
    # connections leaves thousands in TIME_WAIT, which slow the next
    # child's connects for a minute.
    if [ $((round % 2)) -eq 1 ]; then
      sides="builtin netproc"
    else
      sides="netproc builtin"
    fi
    for side in $sides; do
      if [ "$w" != channel ] || [ "$side" = netproc ]; then
        run_child "$w" "$side" "$round"
      fi
    done
  done
  stop_peer
  echo
  round=$((round + 1))
done
# What netproc-compat-mode costs builtin processes, in the same run.
COMPAT_MD=
if [ -z "${BENCH_WORKLOADS:-}" ]; then
  echo "bench: netproc-compat-mode on builtin processes"
  if "$EMACS" -Q --batch -L lisp -l bench/compat-overhead.el > "$LOGDIR/compat.log" 2>&1; then
    COMPAT_MD=$RESULTS/compat-overhead.md
  else
    echo "bench: the netproc-compat-mode measure failed; see $LOGDIR/compat.log" >&2
  fi
fi
ELAPSED=$(( $(date +%s) - START ))

CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: *//')
# What netproc's Lisp ran as: see BENCH_BYTE_CODE.
LISP_CODE=$(BENCH_SIDE=netproc "$EMACS" -Q --batch -L lisp -l bench/bench.el \
  --eval "(princ (if (and (fboundp 'subr-native-elisp-p)
                          (subr-native-elisp-p (symbol-function 'netproc--make)))
                     \"native code\" \"byte code\"))" 2>/dev/null)
BENCH_MACHINE="nproc $(nproc), $CPU, $(uname -sr), $("$EMACS" --version | head -1), netproc's Lisp as ${LISP_CODE:-?}" \
BENCH_ROUNDS_DONE=$ROUNDS BENCH_ELAPSED=$ELAPSED BENCH_RAW=$RAW \
BENCH_MD=$RESULTS/latest.md BENCH_SVG=$RESULTS/latest.svg BENCH_COMPAT_MD=$COMPAT_MD \
  "$EMACS" -Q --batch -l bench/report.el -f bench-report-main
