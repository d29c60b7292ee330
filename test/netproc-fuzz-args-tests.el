;;; netproc-fuzz-args-tests.el --- Random malformed arguments, builtin vs netproc  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; A seeded generator makes argument lists for `make-network-process':
;; random keywords from the real set with random values of random
;; types.  Each list is run against the builtin and against netproc,
;; and what a caller can observe is compared.  The outcome of a case is
;;
;;   (:signal ERROR)    the call signalled ERROR;
;;   (:made STATUS FINAL LATER MESSAGES EXIT)
;;                      it returned a process in STATUS, whose status
;;                      was FINAL once it stopped connecting; the waits
;;                      meanwhile signalled LATER (nil if not), its
;;                      sentinel got MESSAGES, and its exit status was
;;                      EXIT (nil while it may be connecting).  Then it
;;                      is deleted.
;;
;; Both sides must give the same class (made, or the error symbol) and
;; the same outcome, except where the builtin is defective or netproc
;; differs on purpose: `netproc-test-fuzz-difference' names each such
;; class.  At the end, a connection must still carry data, and nothing
;; made may be left: no process, no netproc, no descriptor.
;;
;; Every run draws `netproc-test-fuzz-cases' cases (10,000) from a fresh
;; seed, printed so that a failure can be replayed with
;; NETPROC_TEST_FUZZ_SEED (and NETPROC_TEST_FUZZ_CASES), and replays the
;; seeds of `netproc-test-fuzz-replay-seeds', which once failed.
;;
;; Nothing ever leaves the machine: `:host' is 127.0.0.1, ::1, `local',
;; "localhost" (never for IPv6, which /etc/hosts may not know it for) or
;; a value that cannot be resolved by type (a non-string, "", a
;; non-ASCII name); `:service' is a refused loopback port or an
;; invalid value; `:remote' is a loopback address with the refused port,
;; a missing Unix socket path, or malformed; `:server' only ever comes
;; with `:nowait' (an error before anything is created).

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'seq)
(require 'netproc-test-lib)

(declare-function netproc--strerror "netproc-module" (code))

(defvar netproc-test-fuzz-cases
  (let ((env (getenv "NETPROC_TEST_FUZZ_CASES")))
    (if (and env (> (string-to-number env) 0)) (string-to-number env) 10000))
  "Number of argument lists tried by `netproc-test-fuzz-random-seed'.")

(defvar netproc-test-fuzz-seed
  (let ((env (getenv "NETPROC_TEST_FUZZ_SEED")))
    (if (and env (> (string-to-number env) 0))
        (string-to-number env)
      ;; Emacs seeds `random' afresh at startup.
      (1+ (random 2147483646))))
  "Seed of the argument generator for `netproc-test-fuzz-random-seed'.")

(defconst netproc-test-fuzz-replay-seeds
  '((28021 3000) (777 10000)
    (1071621411 6000 5960) (187635074 9000 2731 4854 8641)
    (88197847 7500 3091 7280) (311025897 4500 4269)
    (2973320055 8500 8459) (534437390 8000 7927))
  "Seeds that once failed, replayed by every run: (SEED CASES . FAILED).
CASES reaches past the last case that failed.  FAILED, when given,
lists the cases that failed, and only their chunks are run (see
`netproc-test-fuzz-compare').  The argument lists that showed a netproc
bug are also tests of their own, below.")

(defvar netproc-test-fuzz-chunk 500
  "Number of cases one side runs before the other side runs them.
Each chunk runs with the harness's isolation (`netproc-test-with-side'):
its own time limit, cleanup and descriptor check.")

(defvar netproc-test-fuzz-settle-seconds 2
  "Seconds a process made by a case may stay in `connect'.")

(defvar netproc-test-fuzz-stop-settle-seconds 0.2
  "Seconds a process made with `:stop' is given to report its connect.")

(defvar netproc-test-fuzz-budget 600
  "Seconds one run of `netproc-test-fuzz-compare' may take in all.")

(defvar netproc-test-fuzz-include-datagram t
  "Non-nil means `:type' may be `datagram'.
Never together with `:nowait' on a client: the builtin's such process
stays in `connect' for ever (a deliberate difference).")

;;;; A small deterministic generator

(defvar netproc-test--rng-state 1
  "State of the generator.")

(defun netproc-test-rng-seed (seed)
  "Seed the generator with SEED."
  (setq netproc-test--rng-state (1+ (mod seed 2147483647))))

(defun netproc-test-rng (n)
  "Return a pseudo-random integer in [0, N)."
  (setq netproc-test--rng-state
        (mod (* netproc-test--rng-state 48271) 2147483647))
  (mod netproc-test--rng-state n))

(defun netproc-test-pick (list)
  "Return a pseudo-random element of LIST."
  (nth (netproc-test-rng (length list)) list))

(defun netproc-test-chance (percent)
  "Return non-nil with probability PERCENT / 100."
  (< (netproc-test-rng 100) percent))

;;;; Values

;; Placeholders (netproc-test-fuzz . WHAT) are replaced per side by
;; `netproc-test-fuzz-instantiate'.

(defun netproc-test-fuzz-junk-vector ()
  "Return a vector that is not an IPv4 or IPv6 address."
  (let ((len (netproc-test-pick '(0 1 2 3 4 6 7 8 10 12))))
    (apply #'vector
           (cl-loop repeat len
                    collect (netproc-test-pick
                             (list 0 1 127 255 256 -1 65535 'x "s" nil 1.5))))))

(defun netproc-test-fuzz-value ()
  "Return a random value of a random type (never an address to dial)."
  (pcase (netproc-test-rng 11)
    (0 nil)
    (1 t)
    (2 (netproc-test-pick (list 0 1 -1 2 10 42 99 255 65535 70000
                                most-positive-fixnum most-negative-fixnum
                                (expt 2 70))))
    (3 (netproc-test-pick (list 1.5 -0.0 0.0 1.0e+INF 3.0)))
    (4 (netproc-test-pick (list "" "x" "héllo" "utf-8" "lo" "ipv4" "datagram"
                                (make-string 200 ?z))))
    (5 (netproc-test-pick '(foo local ipv4 ipv6 stream datagram seqpacket
                                utf-8 binary nope ignore :foo)))
    (6 (netproc-test-fuzz-junk-vector))
    (7 (netproc-test-pick '((a . b) (1 2 3) (utf-8 . binary) (nope . utf-8)
                            (a) (2 . [0 0]) (1 . "x"))))
    (8 (netproc-test-pick '((netproc-test-fuzz . live-buffer)
                            (netproc-test-fuzz . dead-buffer))))
    (9 (netproc-test-pick '(ignore netproc-test-fuzz-no-such-function)))
    (_ (netproc-test-pick '(0 nil t)))))

(defun netproc-test-fuzz-host ()
  "Return a `:host' value that is loopback or unusable by type."
  (if (netproc-test-chance 60)
      (netproc-test-pick '("127.0.0.1" "::1" local "localhost"))
    (let ((v (netproc-test-fuzz-value)))
      (if (stringp v) (netproc-test-pick '("" "héllo")) v))))

(defun netproc-test-fuzz-service ()
  "Return a `:service' value: a refused port or an invalid value."
  (if (netproc-test-chance 50)
      (netproc-test-pick '((netproc-test-fuzz . rport)
                           (netproc-test-fuzz . rport-string)))
    (let ((v (netproc-test-fuzz-value)))
      (cond ((stringp v)
             (netproc-test-pick '("" "no-such-service" "héllo")))
            ((integerp v)
             (netproc-test-pick (list -1 0 (expt 2 70) most-positive-fixnum)))
            (t v)))))

(defun netproc-test-fuzz-remote ()
  "Return a `:remote' value: loopback and refused, a missing path, or junk."
  (pcase (netproc-test-rng 6)
    (0 '(netproc-test-fuzz . remote4))
    (1 '(netproc-test-fuzz . remote6))
    (2 '(netproc-test-fuzz . missing-path))
    (3 (netproc-test-fuzz-junk-vector))
    (4 (cons (netproc-test-pick '(0 1 2 10 99))
             (apply #'vector (cl-loop repeat (netproc-test-rng 16)
                                      collect (netproc-test-rng 256)))))
    (_ (let ((v (netproc-test-fuzz-value)))
         (if (or (stringp v) (vectorp v)) 42 v)))))

(defconst netproc-test-fuzz-keywords
  '(:name :type :server :host :service :family :local :remote :nowait :stop
    :buffer :coding :noquery :filter :filter-multibyte :sentinel :log :plist
    :tls-parameters :use-external-socket :bindtodevice :broadcast :dontroute
    :keepalive :linger :oobinline :priority :reuseaddr :foo bar)
  "Keywords drawn by the generator (the real set plus two unknown keys).")

(defun netproc-test-fuzz-pair (key)
  "Return a random value for KEY, within the rules of the commentary."
  (pcase key
    (:name (if (netproc-test-chance 70) "fz" (netproc-test-fuzz-value)))
    (:type (let ((v (if (netproc-test-chance 50)
                        (netproc-test-pick '(nil seqpacket stream "datagram" 42))
                      (netproc-test-fuzz-value))))
             (if (and (eq v 'datagram) (not netproc-test-fuzz-include-datagram))
                 'seqpacket
               v)))
    (:host (netproc-test-fuzz-host))
    (:service (netproc-test-fuzz-service))
    (:family (if (netproc-test-chance 60)
                 (netproc-test-pick '(nil ipv4 ipv6 local foo "ipv4" 2 10 1 99))
               (netproc-test-fuzz-value)))
    (:remote (netproc-test-fuzz-remote))
    (:buffer (if (netproc-test-chance 30) "netproc-test-fuzz-buf"
               (netproc-test-fuzz-value)))
    (:coding (if (netproc-test-chance 50)
                 (netproc-test-pick '(nil utf-8 binary latin-1 nope undecided
                                          (utf-8 . binary) (nope . utf-8)))
               (netproc-test-fuzz-value)))
    (:bindtodevice (if (netproc-test-chance 50)
                       (netproc-test-pick '("lo" "" "no-such-dev0"))
                     (let ((v (netproc-test-fuzz-value)))
                       (if (stringp v) "no-such-dev0" v))))
    (_ (netproc-test-fuzz-value))))

(defun netproc-test-fuzz-arguments ()
  "Return one random argument list (a template, see `netproc-test-fuzz-value')."
  (let ((args nil))
    (when (netproc-test-chance 85)
      (setq args (list :name (netproc-test-fuzz-pair :name))))
    (dotimes (_ (netproc-test-rng 7))
      (let ((key (netproc-test-pick netproc-test-fuzz-keywords)))
        (setq args (append args (list key (netproc-test-fuzz-pair key))))))
    (when (and (netproc-test-chance 50) (not (plist-member args :service)))
      (setq args (append args (list :service (netproc-test-fuzz-service)))))
    ;; `:server' only together with `:nowait', placed before it so both
    ;; are read: the pair is rejected before anything is created.
    (when (plist-get args :server)
      (setq args (append (list :server (plist-get args :server) :nowait t)
                         args)))
    ;; The builtin's :nowait datagram client never leaves `connect', and
    ;; waiting for its socket blocks for ever.
    (when (and (eq (plist-get args :type) 'datagram)
               (plist-get args :nowait) (not (plist-get args :server)))
      (setq args (cl-substitute 'seqpacket 'datagram args)))
    ;; "localhost" may be in /etc/hosts for IPv4 only; looked up for
    ;; IPv6 it would go out to the name servers.
    (when (memq (plist-get args :family) '(ipv6 10))
      (setq args (cl-substitute "::1" "localhost" args :test #'equal)))
    ;; A `:remote' (FAMILY . BYTES) "connects" with AF_UNSPEC; never let
    ;; that boot TLS.
    (when (consp (plist-get args :remote))
      (setq args (append args (list :tls-parameters nil))))
    ;; No odd trailing key: Emacs 28.2 segfaults when an odd-length
    ;; argument list reaches the connect step (see
    ;; `netproc-test-netproc-odd-arguments').
    args))

(defun netproc-test-fuzz-templates (n seed)
  "Return N argument templates generated from SEED."
  (netproc-test-rng-seed seed)
  (cl-loop repeat n collect (netproc-test-fuzz-arguments)))

;;;; Running cases

(defun netproc-test-fuzz-instantiate (template context)
  "Replace the placeholders of TEMPLATE with their values in CONTEXT.
CONTEXT is an alist (WHAT . VALUE)."
  (cond
   ((and (consp template) (eq (car template) 'netproc-test-fuzz))
    (cdr (assq (cdr template) context)))
   ((consp template)
    (cons (netproc-test-fuzz-instantiate (car template) context)
          (netproc-test-fuzz-instantiate (cdr template) context)))
   (t template)))

(defun netproc-test-fuzz-settle (obj messages)
  "Wait while OBJ, a process or a netproc, is connecting; return (FINAL LATER).
MESSAGES is a function returning the sentinel messages OBJ got so far.
FINAL is OBJ's status once it stopped connecting, or when the wait
gave up.  LATER is the error a wait signalled, or nil: the builtin
reports what it finds wrong with a `:nowait' call from whatever call
waits next, and leaves the process in `connect' for ever (see
`netproc-test-fuzz-builtin-defect'), so the wait ends there.

A process made with `:stop' shows `stop' whatever becomes of its
connect, so it is waited for until its sentinel speaks, for
`netproc-test-fuzz-stop-settle-seconds' at most (its connect may fail
without a word)."
  (let* ((status-fn (netproc-test-fn 'process-status))
         (start (float-time))
         (end (+ start netproc-test-fuzz-settle-seconds))
         (stop-end (+ start netproc-test-fuzz-stop-settle-seconds))
         (rounds 0)
         later)
    (while (and (not later) (< rounds 2000)
                (pcase (funcall status-fn obj)
                  ('connect (< (float-time) end))
                  ('stop (and (null (funcall messages))
                              (< (float-time) stop-end)))))
      ;; Short waits: the builtin looks at its name lookups once a wait.
      (condition-case err
          (accept-process-output nil 0.002)
        (error (setq later err)))
      (setq rounds (1+ rounds)))
    ;; A process that left `connect' of its own may still have an error
    ;; in store for the next wait; it belongs to this case, not the next.
    (unless later
      (condition-case err
          (accept-process-output nil 0)
        (error (setq later err))))
    (list (funcall status-fn obj) later)))

(defun netproc-test-fuzz-run-case (args)
  "Call the side's `make-network-process' with ARGS; return the outcome.
The outcome is described in the commentary.  A process made is
deleted once it has settled (`netproc-test-fuzz-settle'): deleting a
builtin one whose name lookup is under way can hang Emacs 28.2.  Its
filter is left as ARGS set it: no data ever comes, and the builtin
makes a process that had `:filter t' stay in `connect' for ever when
its filter changes before its connect fails."
  (let ((result (condition-case err
                    (let ((inhibit-message t))
                      (list :value (apply (netproc-test-fn 'make-network-process)
                                          args)))
                  (error (list :signal err)))))
    (pcase result
      (`(:value ,(and obj (pred netproc-test-object-p)))
       (let ((status (netproc-test-call 'process-status obj))
             (messages nil))
         (netproc-test-call 'set-process-sentinel obj
                            (lambda (_proc message) (push message messages)))
         (pcase-let ((`(,final ,later)
                      (netproc-test-fuzz-settle obj (lambda () messages))))
           (netproc-test-call 'set-process-sentinel obj #'ignore)
           (prog1 (list :made status final later (reverse messages)
                        ;; The builtin's `process-exit-status' crashes
                        ;; Emacs while the connect is under way, which
                        ;; `stop' may hide.
                        (and (not (memq final '(connect stop)))
                             (netproc-test-call 'process-exit-status obj)))
             (netproc-test-call 'delete-process obj)))))
      (`(:value ,obj) (list :returned obj))
      (_ result))))

(defun netproc-test-fuzz-other-refused-port6 (rport)
  "Return a refused ::1 port other than RPORT, the refused IPv4 one.
The system may hand out the same number for both, and then the trace
would show both as <RPORT>: on one side only."
  (let ((port (netproc-test-refused-port 'ipv6))
        (tries 0))
    (while (and (= port rport) (< tries 20))
      (setq port (netproc-test-refused-port 'ipv6)
            tries (1+ tries)))
    port))

(defun netproc-test-fuzz-run-side (side templates &optional first)
  "Run TEMPLATES on SIDE; return the result of `netproc-test-with-side'.
The trace holds one (:case INDEX OUTCOME) per template, INDEX counting
from FIRST (default 0)."
  (netproc-test-with-side side
    (let* ((rport (netproc-test-refused-port))
           (rport6 (netproc-test-fuzz-other-refused-port6 rport))
           (dir (netproc-test-tmpdir))
           (dead (generate-new-buffer "netproc-test-fuzz-dead"))
           (context
            `((rport . ,rport)
              (rport-string . ,(number-to-string rport))
              (remote4 . ,(vector 127 0 0 1 rport))
              (remote6 . ,(vector 0 0 0 0 0 0 0 1 rport6))
              (missing-path . ,(expand-file-name "missing" dir))
              (live-buffer . ,(get-buffer-create "netproc-test-fuzz-live"))
              (dead-buffer . ,dead)))
           (index (or first 0)))
      (kill-buffer dead)
      (dolist (template templates)
        (netproc-test-note
         :case index
         (netproc-test-fuzz-run-case
          (netproc-test-fuzz-instantiate template context)))
        (setq index (1+ index))))))

(defun netproc-test-fuzz-outcomes (result)
  "Return the outcomes of a fuzz RESULT as a list, in order."
  (cl-loop for e in (car result)
           when (eq (car e) :case) collect (nth 2 e)))

(defun netproc-test-fuzz-class (outcome)
  "Return the class of OUTCOME: :made, :returned or the error symbol."
  (pcase outcome
    (`(:signal (,sym . ,_)) sym)
    (`(,class . ,_) class)))

;;;; Who is right

(defun netproc-test-fuzz-builtin-defect (outcome)
  "Return the name of the builtin's defect seen in OUTCOME, or nil.
`stuck-in-connect': Emacs 28.2 returned a `:nowait' process, then
found it could not set it up (a network option the system refuses, a
bad option value, a bad :coding); it signals that from the next wait
and leaves the process in `connect' for ever, with no sentinel.
`process-exit-status' on it crashes Emacs and `process-contact' hangs;
`delete-process' works, and is all the harness does with it."
  (pcase outcome
    ;; `stop' hides `connect'.
    (`(:made ,(or 'connect 'stop) ,(or 'connect 'stop) (,_ . ,_) nil nil)
     'stuck-in-connect)))

(defun netproc-test-fuzz-errno-text-p (code text)
  "Non-nil if errno CODE is described by TEXT, as `strerror' describes it."
  (and (fboundp 'netproc--strerror)
       (equal (funcall 'netproc--strerror code) text)))

(defun netproc-test-fuzz-at-once-error-p (template err)
  "Non-nil if ERR is an error netproc signals at once for TEMPLATE.
That is a bad network option value, or a bad `:coding', which netproc
checks in a `:nowait' call before any socket exists."
  (pcase err
    (`(error ,(and (pred stringp) text))
     (string-prefix-p "Bad option value for :" text))
    ;; A `:coding' that is no symbol, or no coding system.
    ((or `(coding-system-error . ,_) `(wrong-type-argument symbolp . ,_))
     (plist-member template :coding))))

(defun netproc-test-fuzz-difference (template builtin netproc)
  "Return the name of the known difference between BUILTIN and NETPROC.
BUILTIN and NETPROC are the outcomes of TEMPLATE on each side.  The
value is nil when they differ in a way no class explains.  Where the
builtin's process is `stuck-in-connect' (a `:nowait' connect to a host
name), netproc's outcome is one of:
 `refused-option': its connect fails with the errno of the option the
   system refused, status `failed' and a sentinel.
 `signals-at-once': the call signals what the builtin signalled later.
 `refused-before-bad-value': the call signals a bad option value or
   `:coding', which netproc checks before any socket exists; the
   builtin met an option the system refused first.
Where netproc refuses on purpose:
 `netproc-unsupported': what it does not do yet (TLS).
 `malformed-address': an address vector with a non-integer element,
   which the builtin reads garbage from.
 `family-address': a :remote (FAMILY . VECTOR), which the builtin
   makes a process from that is not connected."
  (let ((remote (plist-get template :remote)))
    (or
     (pcase (list (netproc-test-fuzz-builtin-defect builtin) builtin netproc)
       (`(stuck-in-connect
          (:made ,_ ,_ (file-error "Cannot set network option" ,text . ,_)
                 ,_ ,_)
          (:made ,status ,_ nil (,message) ,_))
        (and (eq status (nth 1 builtin))
             (string-match "\\`failed with code \\([0-9]+\\)\n\\'" message)
             (netproc-test-fuzz-errno-text-p
              (string-to-number (match-string 1 message)) text)
             'refused-option))
       (`(stuck-in-connect (:made ,_ ,_ ,later ,_ ,_) (:signal ,err))
        (cond ((equal later err) 'signals-at-once)
              ((and (equal (seq-take later 2)
                           '(file-error "Cannot set network option"))
                    (netproc-test-fuzz-at-once-error-p template err))
               'refused-before-bad-value))))
     (pcase netproc
       (`(:signal (error ,(and (pred stringp) text)))
        (cond ((string-prefix-p "netproc does not support" text)
               'netproc-unsupported)
              ((and (equal text "Malformed :address") (vectorp remote)
                    (not (cl-every #'integerp remote)))
               'malformed-address)))
       (`(:signal (file-error "make client process failed"
                              "Address family not supported by protocol" . ,_))
        (and (consp remote) 'family-address))))))

;;;; Comparing the sides

(defun netproc-test-fuzz--check-chunk (seed side result)
  "Fail if SIDE's RESULT of a chunk of SEED's cases did not run cleanly."
  (let ((bad (or (assq :scenario-error (car result))
                 (assq :scenario-timeout (car result)))))
    (when bad
      (ert-fail (list (format "%s side failed (seed %d)" side seed) bad
                      :last-case (car (last (netproc-test-fuzz-outcomes
                                             result)))))))
  (netproc-test--check-side (format "%s (seed %d)" side seed) result))

(defun netproc-test-fuzz-alive ()
  "Fail unless a connection still carries data, on each side run."
  (let ((sides (cond (netproc-test-netproc-only '(netproc))
                     (netproc-test-builtin-only '(builtin))
                     (t '(builtin netproc)))))
    (dolist (side sides)
      (let ((result
             (netproc-test-with-side side
               (let* ((peer (netproc-test-peer-start))
                      (p (netproc-test-call 'make-network-process
                                            :name "alive" :host "127.0.0.1"
                                            :service (netproc-test-peer-port peer)
                                            :sentinel #'ignore)))
                 (netproc-test-call 'process-send-string p "alive")
                 (netproc-test-note
                  :received
                  (netproc-test-peer-wait-received
                   peer (lambda (data) (>= (length data) 5))))
                 (netproc-test-call 'delete-process p)))))
        (netproc-test-fuzz--check-chunk 0 side result)
        (should (equal (list side (car result))
                       (list side '((:received "alive")))))))))

(defun netproc-test-fuzz-compare (seed n &optional only)
  "Run N cases generated from SEED on both sides; fail on a difference.
A difference is a case whose outcomes are not `equal' and that
`netproc-test-fuzz-difference' does not name.  Each side runs a chunk
of `netproc-test-fuzz-chunk' cases, then the other side the same.  With
ONLY, a list of case numbers, only the chunks that hold them run.  At
the end, Emacs must still carry data over a connection, and nothing
made may be left, process or descriptor.  With
`netproc-test-netproc-only' (or `netproc-test-builtin-only') only that
side runs, and must run cleanly."
  (netproc-test--warm-up)
  (let* ((sides (cond (netproc-test-netproc-only '(netproc))
                      (netproc-test-builtin-only '(builtin))
                      (t '(builtin netproc))))
         (templates (netproc-test-fuzz-templates n seed))
         (start (float-time))
         (deadline (+ start netproc-test-fuzz-budget))
         (fds-before (netproc-test-fds))
         (objects-before (netproc-test-all-objects))
         (index 0)
         (run 0)
         (mismatches nil)
         (classes nil))
    (message "netproc-test-fuzz: seed %d, %d cases%s (replay: NETPROC_TEST_FUZZ_SEED=%d NETPROC_TEST_FUZZ_CASES=%d)"
             seed n (if only (format ", the chunks of %S" only) "") seed n)
    (when (and (memq 'netproc sides) (not (netproc-test-available-p)))
      (ert-fail "netproc is not loadable"))
    (while templates
      (when (> (float-time) deadline)
        (ert-fail (list "over the time budget" :seconds netproc-test-fuzz-budget
                        :seed seed :cases-run index)))
      (let* ((chunk (seq-take templates netproc-test-fuzz-chunk))
             (end (+ index (length chunk)))
             (outcomes
              (and (or (null only)
                       (cl-some (lambda (i) (and (<= index i) (< i end))) only))
                   (mapcar (lambda (side)
                             (let ((r (netproc-test-fuzz-run-side
                                       side chunk index)))
                               (netproc-test-fuzz--check-chunk seed side r)
                               (netproc-test-fuzz-outcomes r)))
                           sides))))
        (when outcomes
          (setq run (+ run (length chunk)))
          (should (equal (mapcar #'length outcomes)
                         (mapcar (lambda (_) (length chunk)) sides))))
        (when (cdr outcomes)
          (cl-loop for template in chunk
                   for b in (car outcomes)
                   for o in (cadr outcomes)
                   for i from index
                   unless (equal b o)
                   do (let ((class (netproc-test-fuzz-difference template b o)))
                        (if class
                            (cl-incf (alist-get class classes 0))
                          (push (list i template :builtin b :netproc o)
                                mismatches)))))
        (setq templates (nthcdr netproc-test-fuzz-chunk templates)
              index end)))
    (setq mismatches (nreverse mismatches))
    (message "netproc-test-fuzz: seed %d: %d cases in %.1f s, %d differ, known differences %S"
             seed run (- (float-time) start) (length mismatches) classes)
    (when mismatches
      (let ((print-escape-newlines t) (print-length 20) (print-level 6))
        (dolist (m (seq-take mismatches 40))
          (message "  %S" m))))
    (should (equal (list :seed seed :mismatches (length mismatches)
                         (car mismatches))
                   (list :seed seed :mismatches 0 nil)))
    (netproc-test-fuzz-alive)
    (should-not (netproc-test-names
                 (cl-set-difference (netproc-test-all-objects) objects-before)))
    (should-not (netproc-test-fd-leaks fds-before))))

(ert-deftest netproc-test-fuzz-random-seed ()
  "Random malformed arguments from a fresh seed: the same outcomes on both sides."
  (netproc-test-fuzz-compare netproc-test-fuzz-seed netproc-test-fuzz-cases))

(ert-deftest netproc-test-fuzz-replayed-seeds ()
  "The seeds that once failed, replayed: the same outcomes on both sides."
  (pcase-dolist (`(,seed ,n . ,only) netproc-test-fuzz-replay-seeds)
    (netproc-test-fuzz-compare seed n only)))

(ert-deftest netproc-test-fuzz-generator-is-deterministic ()
  "The generator gives the same cases for the same seed, and never dials out."
  (let ((a (netproc-test-fuzz-templates 2000 7))
        (b (netproc-test-fuzz-templates 2000 7)))
    (should (equal a b))
    (dolist (args a)
      (let ((host (plist-get args :host))
            (remote (plist-get args :remote)))
        (should-not (and (stringp host)
                         (not (member host '("127.0.0.1" "::1" "localhost"
                                             "" "héllo")))))
        ;; /etc/hosts may know "localhost" for IPv4 only.
        (should-not (and (equal host "localhost")
                         (memq (plist-get args :family) '(ipv6 10))))
        (should-not (and (vectorp remote) (memq (length remote) '(5 9))))
        (should-not (and (plist-get args :server)
                         (not (plist-get args :nowait))))))))

(defun netproc-test-fuzz-one (template)
  "Run TEMPLATE on both sides; return (BUILTIN-OUTCOME NETPROC-OUTCOME).
Fail if a side does not run cleanly."
  (mapcar (lambda (side)
            (let ((result (netproc-test-fuzz-run-side side (list template))))
              (netproc-test-fuzz--check-chunk 0 side result)
              (car (netproc-test-fuzz-outcomes result))))
          '(builtin netproc)))

(ert-deftest netproc-test-fuzz-builtin-stuck-in-connect ()
  "The builtin's `:nowait' process stuck in `connect' is recognised and deleted.
Emacs 28.2 signals what it could not set up from the next wait and
leaves the process in `connect', with no sentinel, however long one
waits; netproc's connect fails, or its call signals.  Seed 777, case
125; seed 28021, case 718."
  (skip-unless (not (or netproc-test-netproc-only netproc-test-builtin-only)))
  (netproc-test--warm-up)
  ;; For ever, as far as a third of a second shows.
  (let ((result
         (netproc-test-with-side 'builtin
           (let* ((messages nil)
                  (p (make-network-process
                      :name "fz" :host "127.0.0.1" :nowait t
                      :bindtodevice "no-such-dev0"
                      :service (netproc-test-refused-port)
                      :sentinel (lambda (_p m) (push m messages)))))
             (netproc-test-note :settled
                                (netproc-test-fuzz-settle
                                 p (lambda () messages)))
             (netproc-test-settle 0.3)
             (netproc-test-note :after (process-status p) messages)
             (set-process-sentinel p #'ignore)
             (delete-process p)))))
    (netproc-test-fuzz--check-chunk 0 'builtin result)
    (should (equal (car result)
                   '((:settled (connect (file-error "Cannot set network option"
                                                    "No such device"
                                                    :bindtodevice "no-such-dev0")))
                     (:after connect nil)))))
  (pcase-dolist (`(,template ,class)
                 '(((:name "fz" :host "::1" :nowait -0.0
                     :keepalive [nil nil nil "s"] :filter 99
                     :bindtodevice local
                     :service (netproc-test-fuzz . rport))
                    signals-at-once)
                   ((:name "fz" :bindtodevice "no-such-dev0"
                     :bindtodevice 1.0e+INF :nowait 99 :log nil :service 0)
                    refused-before-bad-value)
                   ((:name "fz" :nowait t :bindtodevice "no-such-dev0"
                     :service (netproc-test-fuzz . rport))
                    refused-option)))
    (pcase-let ((`(,builtin ,netproc) (netproc-test-fuzz-one template)))
      (should (eq (netproc-test-fuzz-builtin-defect builtin)
                  'stuck-in-connect))
      (should (eq (netproc-test-fuzz-difference template builtin netproc)
                  class)))))

;;;; Argument lists the generator found netproc wrong on

(netproc-test-deftest netproc-test-fuzz-bignum-service ()
  "A bignum `:service' is no port number: `wrong-type-argument', nothing made.
Seed 777, cases 249 and 6403."
  (netproc-test-note-try :blocking
    (make-network-process :name "fz" :service 1180591620717411303424))
  (netproc-test-note-try :nowait
    (make-network-process :name "fz" :linger 255 :noquery nil :nowait 0.0
                          :service 1180591620717411303424)))

(defun netproc-test-fuzz-coding-boom (_args)
  "Signal, as a function of `network-coding-system-alist' may."
  (error "Boom"))

(netproc-test-deftest netproc-test-fuzz-coding-function-signals ()
  "A coding function that signals leaves nothing made (the harness checks).
The generator's case was a bignum `:service' with `:nowait', which
made `find-operation-coding-system' signal (seed 777, case 6403)."
  (let* ((peer (netproc-test-peer-start))
         (service (number-to-string (netproc-test-peer-port peer)))
         (network-coding-system-alist
          `((,(regexp-quote service) . netproc-test-fuzz-coding-boom))))
    (netproc-test-note-try :make
      (make-network-process :name "fz" :host "127.0.0.1" :service service))))

(netproc-test-deftest netproc-test-fuzz-family-out-of-int-range ()
  "A `:family' number that is no C int is an unknown family, checked first.
Seed 777, cases 2803 and 6529."
  (netproc-test-note-try :fixnum
    (make-network-process :name "fz" :noquery 1.0e+INF
                          :log [nil "s" 65535 255 127 "s"]
                          :family 2305843009213693951 :service '(a . b)))
  (netproc-test-note-try :negative
    (make-network-process :name "fz" :service (netproc-test-refused-port)
                          :oobinline t :plist 'foo :log "x"
                          :family -2305843009213693952))
  (dolist (family '(2147483647 2147483648 -2147483648 -2147483649))
    (netproc-test-note-try family
      (make-network-process :name "fz" :family family
                            :service (netproc-test-refused-port)))))

(netproc-test-deftest netproc-test-fuzz-remote-path-keeps-host ()
  "A Unix socket given as `:remote' leaves `:host' in the contact as it was.
Seed 777, cases 593 and 991."
  (let ((missing (expand-file-name "missing" (netproc-test-tmpdir)))
        (live (get-buffer-create "netproc-test-fuzz-live")))
    (netproc-test-note-try :localhost
      (make-network-process :name "fz" :host "localhost" :oobinline t
                            :remote missing :service t :tls-parameters nil))
    (netproc-test-note-try :buffer
      (make-network-process :name "fz" :host live :filter-multibyte 1.0e+INF
                            :remote missing :host t :host 'ignore :service t
                            :tls-parameters nil))))

(netproc-test-deftest netproc-test-fuzz-nowait-lookup-fails-later ()
  "A `:nowait' lookup that cannot succeed is `connect', then `failed'.
The status changes at the next wait, with no sentinel, and a bad
`:coding' is never looked at.  Seed 777, cases 484 and 1986."
  (dolist (args `((:name "fz" :nowait ,(get-buffer-create "netproc-test-fuzz-live")
                   :service "héllo")
                  (:name "fz" :nowait t :coding (nope . utf-8)
                   :service "no-such-service"
                   :broadcast -2305843009213693952 :nowait -0.0)
                  (:name "fz" :host "héllo" :nowait t :service 1)
                  (:name "fz" :nowait t :family 99 :service 1)
                  (:name "fz" :nowait t :family ipv4 :host "::1" :service 1)))
    (let ((p (apply #'make-network-process args)))
      (set-process-sentinel p #'netproc-test-sentinel)
      (netproc-test-note :made (process-status p))
      (netproc-test-wait-for (not (eq (process-status p) 'connect)))
      (netproc-test-note :then (process-status p) (process-exit-status p))
      (delete-process p))))

(defun netproc-test-fuzz-nowait-outcome (args)
  "Run the side's `make-network-process' with ARGS; note what is seen.
The status on return, then once it stopped connecting, with the
sentinel's messages; or the error signalled."
  (condition-case err
      (let ((p (apply (netproc-test-fn 'make-network-process) args)))
        (netproc-test-call 'set-process-sentinel p #'netproc-test-sentinel)
        (netproc-test-note :made (netproc-test-call 'process-status p))
        (netproc-test-wait-for
         (not (eq (netproc-test-call 'process-status p) 'connect)))
        (netproc-test-note :then (netproc-test-call 'process-status p)
                           (netproc-test-call 'process-exit-status p))
        (netproc-test-call 'set-process-sentinel p #'ignore)
        (netproc-test-call 'delete-process p))
    (error (netproc-test-note :signal err))))

(netproc-test-deftest netproc-test-fuzz-nowait-address-starts-in-call ()
  "A `:nowait' connect to an address or a socket path starts in the call.
No lookup: the socket is made and its options set before the call
returns, so a refused option signals; a Unix socket that is not there
makes the status `file-missing' at once; a bad `:coding' signals.
Seed 777, cases 187 and 241."
  (let* ((rport6 (netproc-test-refused-port 'ipv6))
         (dir (netproc-test-tmpdir))
         (missing (expand-file-name "missing" dir))
         (peer (netproc-test-peer-start :family 'local)))
    (dolist (args
             `((:name "fz" :buffer nil :foo nil
                :remote [0 0 0 0 0 0 0 1 ,rport6] bar :foo
                :bindtodevice "no-such-dev0" :nowait ignore
                :service 2305843009213693951 :tls-parameters nil)
               (:name "fz" :remote ,missing :bindtodevice nil
                :use-external-socket -1 :nowait [1 65535 127] :linger t
                :service "" :tls-parameters nil)
               (:name "fz" :nowait t :family local :service ,missing
                :bindtodevice "no-such-dev0")
               (:name "fz" :nowait t :remote [0 0 0 0 0 0 0 1 ,rport6]
                :coding nope)
               (:name "fz" :nowait t :remote [0 0 0 0 0 0 0 1 ,rport6])
               (:name "fz" :nowait t :family local
                :service ,(netproc-test-peer-path peer))))
      (netproc-test-fuzz-nowait-outcome args))))

(netproc-test-deftest netproc-test-fuzz-nowait-seqpacket-inet ()
  "A `:nowait' seqpacket client over IP shows the system's refusal as its status.
At once for an address, at the next wait for a host; options and
`:coding' are never looked at, and a blocking one signals."
  (let ((rport (netproc-test-refused-port)))
    (dolist (args `((:name "fz" :type seqpacket :nowait t :service ,rport)
                    (:name "fz" :type seqpacket :nowait t
                     :remote [127 0 0 1 ,rport])
                    (:name "fz" :type seqpacket :nowait t :priority "x"
                     :coding nope :host "127.0.0.1" :service ,rport)
                    (:name "fz" :type seqpacket :service ,rport)))
      (netproc-test-fuzz-nowait-outcome args))))

(netproc-test-deftest netproc-test-fuzz-empty-host-fails-first ()
  "An empty `:host' fails its lookup before the other arguments are looked at.
Seed 1071621411 case 5960, seed 187635074 cases 2731 and 8641."
  (let ((rport (netproc-test-refused-port)))
    (dolist (args `((:name "fz" :host "" :oobinline nil :buffer datagram
                     :host nil :sentinel ignore :service ,rport)
                    (:name "fz" :plist ,(get-buffer-create "netproc-test-fuzz-live")
                     :local nil :log (utf-8 . binary) :host "" :log nil
                     :plist nil :service ,rport)
                    (:name "fz" :host ""
                     :use-external-socket netproc-test-fuzz-no-such-function
                     :tls-parameters ignore
                     :plist netproc-test-fuzz-no-such-function
                     :service ,(number-to-string rport))
                    (:name "fz" :host "" :nowait t :service ,rport)))
      (netproc-test-fuzz-nowait-outcome args))))

(provide 'netproc-fuzz-args-tests)
;;; netproc-fuzz-args-tests.el ends here
