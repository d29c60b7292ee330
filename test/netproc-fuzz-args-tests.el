;;; netproc-fuzz-args-tests.el --- Random malformed arguments, builtin vs netproc  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; A seeded generator makes argument lists for `make-network-process':
;; random keywords from the real set with random values of random
;; types.  Each list is run against the builtin and against netproc and
;; the outcomes are compared: "made a process" (then deleted at once)
;; or "signalled ERROR-SYMBOL".
;;
;; Nothing ever leaves the machine: `:host' is 127.0.0.1, ::1, `local',
;; "localhost" or a value that cannot be resolved by type (a non-string,
;; "", a non-ASCII name); `:service' is a refused loopback port or an
;; invalid value; `:remote' is a loopback address with the refused port,
;; a missing Unix socket path, or malformed; `:server' only ever comes
;; with `:nowait' (an error before anything is created).
;;
;; Raise the number of cases with NETPROC_TEST_FUZZ_CASES, change the
;; seed with NETPROC_TEST_FUZZ_SEED.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

(defvar netproc-test-fuzz-cases
  (let ((env (getenv "NETPROC_TEST_FUZZ_CASES")))
    (if (and env (> (string-to-number env) 0)) (string-to-number env) 500))
  "Number of argument lists tried by `netproc-test-fuzz-outcome-class'.")

(defvar netproc-test-fuzz-detail-cases
  (min 200 netproc-test-fuzz-cases)
  "Number of argument lists whose full outcome is compared.")

(defvar netproc-test-fuzz-seed
  (let ((env (getenv "NETPROC_TEST_FUZZ_SEED")))
    (if (and env (> (string-to-number env) 0)) (string-to-number env) 28021))
  "Seed of the argument generator.")

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

(defun netproc-test-fuzz-run-side (side templates)
  "Run TEMPLATES on SIDE; return the result of `netproc-test-with-side'.
The trace holds one (:case INDEX OUTCOME) per template, OUTCOME being
\(:made STATUS) or (:signal ERROR-SYMBOL . DATA)."
  (netproc-test-with-side side
    (let* ((rport (netproc-test-refused-port))
           (rport6 (netproc-test-refused-port 'ipv6))
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
           (index 0))
      (kill-buffer dead)
      (dolist (template templates)
        (let* ((args (netproc-test-fuzz-instantiate template context))
               (outcome
                (condition-case err
                    (let* ((inhibit-message t)
                           (obj (apply (netproc-test-fn 'make-network-process)
                                       args)))
                      (if (netproc-test-object-p obj)
                          (prog1 (list :made (netproc-test-call 'process-status obj))
                            (netproc-test-call 'set-process-sentinel obj #'ignore)
                            (netproc-test-call 'set-process-filter obj #'ignore)
                            (netproc-test-let-lookup-end obj)
                            (netproc-test-call 'delete-process obj))
                        (list :returned obj)))
                  (error (list :signal err)))))
          (netproc-test-note :case index outcome)
          (setq index (1+ index)))))))

(defun netproc-test-fuzz-outcomes (result)
  "Return the outcomes of a fuzz RESULT as a vector indexed by case."
  (vconcat (mapcar (lambda (e) (nth 2 e))
                   (cl-remove-if-not (lambda (e) (eq (car e) :case))
                                     (car result)))))

(defun netproc-test-fuzz-class (outcome)
  "Return the class of OUTCOME: :made, :returned or the error symbol."
  (pcase outcome
    (`(:signal (,sym . ,_)) sym)
    (`(,class . ,_) class)))

(defun netproc-test-fuzz-excused-p (template outcome)
  "Non-nil if netproc's OUTCOME for TEMPLATE may differ from the builtin's.
That is netproc's clear refusal of what later work brings (datagrams,
seqpacket, TLS), or a deliberate difference listed in README.org: odd
address forms, and a bad network option value with :nowait, which
netproc signals at once (Emacs finds it in its event loop, and crashes)."
  (let ((remote (plist-get template :remote)))
    (pcase outcome
      (`(:signal (error ,(and (pred stringp) text)))
       (or (string-prefix-p "netproc does not support" text)
           (and (plist-get template :nowait)
                (string-prefix-p "Bad option value for :" text))
           (and (equal text "Malformed :address") (vectorp remote)
                (not (cl-every #'integerp remote)))))
      (`(:signal (file-error "make client process failed"
                             "Address family not supported by protocol" . ,_))
       (consp remote)))))

(defun netproc-test-fuzz-compare (n key)
  "Run N generated cases on both sides; compare outcomes with KEY.
KEY maps an outcome to what must be equal.  Fail listing mismatches.
With `netproc-test-netproc-only', run the netproc side alone and check
only that it ends cleanly."
  (if netproc-test-netproc-only
      (let ((r (netproc-test-fuzz-run-side
                'netproc (netproc-test-fuzz-templates n netproc-test-fuzz-seed))))
        (should-not (assq :scenario-error (car r)))
        (should-not (assq :scenario-timeout (car r)))
        (netproc-test--check-side "netproc" r))
    (netproc-test-fuzz-compare-sides n key)))

(defun netproc-test-fuzz-compare-sides (n key)
  "Run N generated cases on both sides; compare outcomes with KEY."
  (let* ((templates (netproc-test-fuzz-templates n netproc-test-fuzz-seed))
         (b (netproc-test-fuzz-run-side 'builtin templates))
         (bo (netproc-test-fuzz-outcomes b)))
    (when (or (assq :scenario-error (car b)) (assq :scenario-timeout (car b)))
      (ert-fail (list "builtin side failed"
                      (or (assq :scenario-error (car b))
                          (assq :scenario-timeout (car b))))))
    (netproc-test--check-side "builtin" b)
    (should (= (length bo) n))
    (unless netproc-test-builtin-only
      (unless (netproc-test-available-p)
        (ert-fail "netproc is not loadable"))
      (let* ((r (netproc-test-fuzz-run-side 'netproc templates))
             (no (netproc-test-fuzz-outcomes r))
             (mismatches nil))
        (when (or (assq :scenario-error (car r)) (assq :scenario-timeout (car r)))
          (ert-fail (list "netproc side failed"
                          (or (assq :scenario-error (car r))
                              (assq :scenario-timeout (car r))))))
        (dotimes (i n)
          (let ((bv (and (< i (length bo)) (aref bo i)))
                (nv (and (< i (length no)) (aref no i))))
            (unless (or (equal (funcall key bv) (funcall key nv))
                        (netproc-test-fuzz-excused-p (nth i templates) nv))
              (push (list i (nth i templates) :builtin bv :netproc nv)
                    mismatches))))
        (setq mismatches (nreverse mismatches))
        (when mismatches
          (let ((print-escape-newlines t) (print-length 20) (print-level 6))
            (message "%d of %d fuzz cases differ (seed %d):"
                     (length mismatches) n netproc-test-fuzz-seed)
            (dolist (m (seq-take mismatches 40))
              (message "  %S" m))))
        (should (equal (list :mismatches (length mismatches) (car mismatches))
                       (list :mismatches 0 nil)))
        (netproc-test--check-side "netproc" r)))))

(ert-deftest netproc-test-fuzz-outcome-class ()
  "Random malformed arguments: same outcome class on both sides."
  (netproc-test--warm-up)
  (netproc-test-fuzz-compare netproc-test-fuzz-cases #'netproc-test-fuzz-class))

(ert-deftest netproc-test-fuzz-outcome-data ()
  "Random malformed arguments: same status or same error data on both sides."
  (netproc-test--warm-up)
  (netproc-test-fuzz-compare netproc-test-fuzz-detail-cases #'identity))

(ert-deftest netproc-test-fuzz-generator-is-deterministic ()
  "The generator gives the same cases for the same seed, and never dials out."
  (let ((a (netproc-test-fuzz-templates 200 7))
        (b (netproc-test-fuzz-templates 200 7)))
    (should (equal a b))
    (dolist (args a)
      (let ((host (plist-get args :host))
            (remote (plist-get args :remote)))
        (should-not (and (stringp host)
                         (not (member host '("127.0.0.1" "::1" "localhost"
                                             "" "héllo")))))
        (should-not (and (vectorp remote) (memq (length remote) '(5 9))))
        (should-not (and (plist-get args :server)
                         (not (plist-get args :nowait))))))))

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
