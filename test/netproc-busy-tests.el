;;; netproc-busy-tests.el --- Lisp busy while netprocs stream  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; While Lisp runs without waiting, nothing drains the engine's event
;; queue, yet the engine thread goes on reading.  It must stop in time:
;; a connection at its own bound (4 MiB) is no longer read, and all
;; connections together stop once the queue holds 32 MiB (the engine's
;; total_in_high): each socket that delivers data is then held back, and
;; the kernel holds its peer back in turn.
;;
;; Here 100 netprocs stream 2 MiB each from one perl peer, every
;; connection with a pattern of its own, while Lisp spins for two
;; seconds.  Every 100 ms the spin asks for `netproc--queue-stats' and
;; `netproc--sync'.  The queue must stay under its bound, sockets must
;; be held back, the engine thread must answer every sync, and Emacs's
;; resident memory must grow by no more than the bound and some slack.
;; Once Lisp waits again, every byte must arrive, in order.
;;
;; This is a test of netproc alone: the builtin reads nothing while Lisp
;; is busy, so there is nothing to compare.  The same scenario runs on
;; the builtin first as a reference, whose numbers are printed and never
;; checked; under `netproc-test-netproc-only' it does not run.
;;
;;   NETPROC_TEST_SELECTOR=netproc-busy test/run-lisp-tests.sh

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

;;;; The scenario

(defconst netproc-busy-tests--streams 100
  "Connections streaming at once.")

(defconst netproc-busy-tests--size (* 2 1024 1024)
  "Bytes the peer sends on each connection.")

(defconst netproc-busy-tests--total-high (* 32 1024 1024)
  "The engine's bound on the queue for all connections (total_in_high).")

(defconst netproc-busy-tests--queue-bound
  ;; Past total_in_high each connection may still finish its readiness
  ;; callback: at most 4 reads (NP_READS_PER_WAKE) of 64 KiB (read_size).
  (+ netproc-busy-tests--total-high
     (* netproc-busy-tests--streams 4 64 1024))
  "The most data the queue may hold while nothing is drained.")

(defconst netproc-busy-tests--rss-limit
  (+ netproc-busy-tests--total-high (* 48 1024 1024))
  "How far VmRSS may grow while the queue fills and Lisp spins.
The spin starts as the peer starts writing, so the queue fills during
it: its growth is measured over the spin, and from before the first
byte.  Both are the 32 MiB bound and 48 MiB of slack for:
- the queue's overshoot, `netproc-busy-tests--queue-bound' minus the
  bound: 25 MiB at most, some 6 MiB in practice (a socket is held back
  after one read of 64 KiB);
- a header of some 300 bytes per queued read, and the rounding of
  malloc's arenas around the reads;
- what Lisp dispatched before the spin (a little: the spin starts at
  once), as strings and garbage until the next collection;
- the spin's own garbage (boxed floats, the samples' buffers).
None of it grows with the data offered, 200 MiB: without the total
bound the engine reads all of it while Lisp spins, up to its 4 MiB a
connection, and memory grows by as much.")

(defconst netproc-busy-tests--peer-script
  (concat
   "use strict; use IO::Socket::INET; use IO::Select;"
   "$SIG{PIPE}='IGNORE'; alarm 300; $|=1; my ($n,$size)=@ARGV;"
   "my $l=IO::Socket::INET->new(LocalAddr=>'127.0.0.1',LocalPort=>0,"
   "Listen=>128,ReuseAddr=>1) or die \"listen: $!\";"
   "print \"port \",$l->sockport,\"\\n\";"
   "my @c; for (1..$n) { push @c, ($l->accept or die \"accept: $!\") }"
   "close $l; my (%idx,%off);"
   ;; Each client's first byte is its index; it gets nothing before.
   "for my $c (@c) { sysread($c,my $b,1) == 1 or die \"no index\";"
   " $idx{$c}=ord $b; $off{$c}=0; $c->blocking(0) } print \"streaming\\n\";"
   ;; Byte k of connection i is (k + 7i) mod 251: a slice of $pat.
   "my $chunk=65536; my $pat=join '',map {chr($_ % 251)} 0..$chunk+250;"
   "my $w=IO::Select->new(@c); my $done=0;"
   "while ($done < $n) {"
   " my @ready=$w->can_write(60) or die \"held back for 60 s\";"
   " for my $s (@ready) {"
   "  my $k=$off{$s}; my $len=$size-$k; $len=$chunk if $len > $chunk;"
   "  my $wr=syswrite($s,$pat,$len,($k+7*$idx{$s}) % 251);"
   "  next if !defined $wr && $!{EAGAIN};"
   "  if (defined $wr) { $off{$s}+=$wr; next if $off{$s} < $size }"
   "  $w->remove($s); close $s; $done++ } }"
   "print \"done\\n\";")
  "A perl peer: serve N connections (first argument) SIZE bytes each.
It prints its port, accepts N connections, and reads one byte from each:
its index I.  Then it prints \"streaming\" and writes to every connection
as fast as it is read, byte K of connection I being (K + 7I) mod 251,
and closes each at its end.")

(defun netproc-busy-tests--rss ()
  "Return the resident memory of this Emacs in bytes (VmRSS)."
  (with-temp-buffer
    (insert-file-contents "/proc/self/status")
    (if (re-search-forward "^VmRSS:[ \t]+\\([0-9]+\\) kB" nil t)
        (* 1024 (string-to-number (match-string 1)))
      (error "No VmRSS in /proc/self/status"))))

(defun netproc-busy-tests--sanitized-p ()
  "Return non-nil if AddressSanitizer's runtime is preloaded into Emacs.
`make sanitize' runs the suite so.  Its allocator's redzones, size
classes and quarantine roughly double what the queue costs in resident
memory, which then says more about the sanitizer than about netproc."
  (string-match-p "libasan" (or (getenv "LD_PRELOAD") "")))

(defun netproc-busy-tests--start-peer (n size)
  "Start the perl peer for N connections of SIZE bytes; return it.
Its port is its `port' property once this returns; its output so far
is its `out' property."
  (let ((proc (make-process
               :name "busy-peer" :noquery t :connection-type 'pipe
               :command (list "perl" "-e" netproc-busy-tests--peer-script
                              (number-to-string n) (number-to-string size))
               :filter (lambda (p s)
                         (process-put p 'out (concat (process-get p 'out) s)))
               :sentinel #'ignore)))
    (process-put proc 'port
                 (netproc-test-wait-until
                  (lambda ()
                    (let ((out (or (process-get proc 'out) "")))
                      (and (string-match "port \\([0-9]+\\)" out)
                           (string-to-number (match-string 1 out)))))
                  10 'busy-peer-port))
    proc))

(defun netproc-busy-tests--connect (port got bad ended)
  "Connect one client per element of GOT to the peer on PORT; return them.
Client I counts its bytes in (aref GOT I) and records its first
discontinuity in (aref BAD I) as (I OFFSET EXPECTED GOT).  Its sentinel
calls ENDED when its stream ends."
  (let (clients)
    (dotimes (i (length got))
      (push (netproc-test-call
             'make-network-process
             :name "busy" :host "127.0.0.1" :service port
             :coding 'binary :noquery t
             :filter
             (lambda (_p s)
               ;; Continuity, cheaply: the first and last byte of each
               ;; chunk are what the pattern has at their offsets.
               (let* ((off (aref got i))
                      (len (length s))
                      (first (% (+ off (* 7 i)) 251))
                      (last (% (+ off len -1 (* 7 i)) 251)))
                 (unless (aref bad i)
                   (cond ((/= (aref s 0) first)
                          (aset bad i (list i off first (aref s 0))))
                         ((/= (aref s (1- len)) last)
                          (aset bad i (list i (+ off len -1) last
                                            (aref s (1- len)))))))
                 (aset got i (+ off len))))
             :sentinel (lambda (_p m)
                         (unless (string-prefix-p "open" m)
                           (funcall ended))))
            clients))
    (nreverse clients)))

(defun netproc-busy-tests--spin (seconds netproc)
  "Keep Lisp busy for SECONDS without waiting; sample every 100 ms.
With NETPROC, each sample times `netproc--sync' and reads
`netproc--queue-stats'.  Return a plist: :busy (seconds spun),
:samples, :in-bytes-first and :in-bytes (the first and the largest
queue), :held-back (the most sockets held back), :sync (the slowest
sync, in seconds; nil without NETPROC) and :rss-max (the largest VmRSS)."
  (let* ((start (float-time))
         (end (+ start seconds))
         (next start)
         (now start)
         (spins 0)
         (samples 0)
         in-bytes-first
         (in-bytes (and netproc 0))
         (held-back (and netproc 0))
         (sync (and netproc 0.0))
         (rss-max 0))
    ;; No wait in here: no event is dispatched, nothing is drained.
    (while (and (< (setq now (float-time)) end) (< spins 100000000))
      (when (>= now next)
        (setq next (+ now 0.1)
              samples (1+ samples))
        (when netproc
          (let* ((t0 (float-time))
                 (synced (funcall 'netproc--sync))
                 (took (- (float-time) t0))
                 (stats (funcall 'netproc--queue-stats)))
            (unless (eq synced t)
              (error "Engine sync returned %S, not t" synced))
            (setq sync (max sync took)
                  in-bytes-first (or in-bytes-first (aref stats 0))
                  in-bytes (max in-bytes (aref stats 0))
                  held-back (max held-back (aref stats 2)))))
        (setq rss-max (max rss-max (netproc-busy-tests--rss))))
      (setq spins (1+ spins)))
    (list :busy (- now start) :samples samples
          :in-bytes-first in-bytes-first :in-bytes in-bytes
          :held-back held-back :sync sync :rss-max rss-max)))

(defun netproc-busy-tests--scenario ()
  "Stream to many clients of the side being run while Lisp spins.
Return a plist of what was seen: what `netproc-busy-tests--spin'
returns, and :before (bytes the filters got before the spin), :during
\(bytes they got during it), :rss-busy (the growth of VmRSS over the
spin), :rss (its growth from before the first byte to the spin's end),
:complete (seconds from the spin's end until every stream ended),
:short (indices of connections that did not get exactly their bytes)
and :bad (the first discontinuity of each connection that had one)."
  (let* ((n netproc-busy-tests--streams)
         (size netproc-busy-tests--size)
         (netproc (eq (netproc-test-fn 'make-network-process)
                      'netproc-make-network-process))
         ;; The engine's descriptors are there from the start: it runs
         ;; until the harness kills its channel's buffer.
         (fds-start (progn (when netproc
                             (funcall 'netproc--ensure-engine))
                           (netproc-test-fds)))
         (peer (netproc-busy-tests--start-peer n size))
         (got (make-vector n 0))
         (bad (make-vector n nil))
         (ended 0)
         (clients (netproc-busy-tests--connect
                   (process-get peer 'port) got bad
                   (lambda () (setq ended (1+ ended)))))
         (rss-quiet (progn (garbage-collect) (netproc-busy-tests--rss))))
    ;; All connected: now every one asks for its stream at once.
    (cl-loop for p in clients for i from 0
             do (netproc-test-call 'process-send-string p (unibyte-string i)))
    ;; The peer has every index and writes to all: spin at once, so
    ;; that the queue fills while Lisp spins, not before.
    (netproc-test-wait-until
     (lambda () (string-match-p "streaming" (process-get peer 'out)))
     20 'peer-streaming)
    (let* ((before (cl-reduce #'+ got))
           (rss-start (progn (garbage-collect) (netproc-busy-tests--rss)))
           (spin (netproc-busy-tests--spin 2.0 netproc))
           (during (- (cl-reduce #'+ got) before))
           (rss-end (max (plist-get spin :rss-max) (netproc-busy-tests--rss)))
           (waited (float-time)))
      (netproc-test-wait-until (lambda () (= ended n)) 60 'all-streams-ended)
      (let ((complete (- (float-time) waited)))
        (mapc (lambda (p) (netproc-test-call 'delete-process p)) clients)
        (delete-process peer)
        (let ((left (netproc-test-fd-leaks fds-start)))
          (when left
            (error "Descriptors still open after deleting all: %S" left)))
        (append spin
                (list :before before :during during
                      :rss-busy (- rss-end rss-start) :rss (- rss-end rss-quiet)
                      :complete complete
                      :short (cl-loop for i below n
                                      unless (= (aref got i) size) collect i)
                      :bad (delq nil (append bad nil))))))))

(defun netproc-busy-tests--mib (bytes)
  "Return BYTES in MiB, rounded to a tenth, for messages."
  (and bytes (/ (round (* 10 bytes) (* 1024 1024)) 10.0)))

(defun netproc-busy-tests--report (label seen)
  "Print the numbers in SEEN (a plist from the scenario), under LABEL."
  (message
   "%s: %s MiB before the spin; spun %.2f s (%d samples, %d bytes \
dispatched)%s; VmRSS grew %s MiB over the spin, %s MiB since before the \
first byte; all ended %.2f s after the spin; short %S, bad %S"
   label (netproc-busy-tests--mib (plist-get seen :before))
   (plist-get seen :busy) (plist-get seen :samples) (plist-get seen :during)
   (if (plist-get seen :sync)
       (format ", queue %s MiB at first and %s at most, %d held back at \
most, slowest sync %.4f s"
               (netproc-busy-tests--mib (plist-get seen :in-bytes-first))
               (netproc-busy-tests--mib (plist-get seen :in-bytes))
               (plist-get seen :held-back) (plist-get seen :sync))
     "")
   (netproc-busy-tests--mib (plist-get seen :rss-busy))
   (netproc-busy-tests--mib (plist-get seen :rss))
   (plist-get seen :complete) (plist-get seen :short) (plist-get seen :bad)))

;;;; Tests

(ert-deftest netproc-busy-lisp-100-streams ()
  "Lisp busy for 2 s while 100 netprocs stream: bounded, responsive, lossless."
  (skip-unless (netproc-test-available-p))
  (skip-unless (executable-find "perl"))
  (let ((netproc-test-side-timeout 120)
        (netproc-test-leak-grace 5)
        seen)
    ;; Emacs's and netproc's one-time descriptors come first, before the
    ;; reference's count (`netproc-test-with-cleanup' does it for its own).
    (netproc-test--warm-up)
    ;; The reference: the builtin does not read while Lisp is busy.
    ;; The notes hold numbers and lists of numbers only, which the
    ;; harness's normalization leaves as they are.
    (unless netproc-test-netproc-only
      (let* ((trace (car (netproc-test-with-side 'builtin
                           (netproc-test-note
                            :seen (netproc-busy-tests--scenario)))))
             (builtin (cadr (assq :seen trace))))
        (if builtin
            (netproc-busy-tests--report "builtin (reference)" builtin)
          (message "builtin (reference) did not finish: %S" trace))))
    (setq seen (cadr (assq :seen (netproc-test-with-cleanup
                                   (netproc-test-note
                                    :seen (netproc-busy-tests--scenario))))))
    (netproc-busy-tests--report "netproc" seen)
    ;; The spin was a spin: nothing was dispatched, for 2 s.
    (should (>= (plist-get seen :busy) 2.0))
    (should (= (plist-get seen :during) 0))
    (should (>= (plist-get seen :samples) 15))
    ;; The queue stayed bounded, because sockets were held back.
    (should (<= (plist-get seen :in-bytes) netproc-busy-tests--queue-bound))
    (should (> (plist-get seen :held-back) 0))
    ;; The engine thread answered every sync.
    (should (< (plist-get seen :sync) 1.0))
    ;; Memory grew by the queue's bound and no more (see the limit's
    ;; documentation), over the spin and over the whole stream.
    (if (netproc-busy-tests--sanitized-p)
        (message "VmRSS not checked: the AddressSanitizer allocator is in use")
      (should (<= (plist-get seen :rss-busy) netproc-busy-tests--rss-limit))
      (should (<= (plist-get seen :rss) netproc-busy-tests--rss-limit)))
    ;; Nothing lost, nothing out of order.
    (should (equal (plist-get seen :short) nil))
    (should (equal (plist-get seen :bad) nil))))

(provide 'netproc-busy-tests)

;;; netproc-busy-tests.el ends here
