;;; netproc-test-lib.el --- Differential test harness for netproc  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; A scenario is written once, with the builtin function names
;; (`make-network-process', `process-status', `delete-process', ...).
;; `netproc-test-deftest' defines an ERT test that runs the scenario
;; twice: once as written (the builtin), once with every builtin
;; process function renamed to its netproc twin by the naming rule
;; (the word "process" replaced by "netproc"; `make-network-process'
;; becomes `netproc-make-network-process' and `processp' becomes
;; `netprocp').  Each run records a trace with `netproc-test-note';
;; the two traces, once normalized, must be `equal'.
;;
;; Normalization replaces process objects by (:proc NAME), buffers by
;; (:buffer NAME), markers by (:marker POS BUFFER-NAME), the numbers of
;; the peer's listening ports and of the ephemeral ports seen in
;; address vectors by symbols such as <SPORT> and <CPORT>, the temporary
;; directory by <TMPDIR>, and concatenates consecutive filter calls of
;; the same process (reads are split differently on each side).
;;
;; Peers are builtin servers in the same Emacs (IPv4, IPv6 ::1 or a
;; Unix socket in a temporary directory), driven by explicit commands
;; (`netproc-test-peer-send', `netproc-test-peer-close',
;; `netproc-test-peer-reset'), or a small perl program.  They never
;; write on their own: batch Emacs 28.2 dies of SIGPIPE when the
;; builtin writes twice to a dead peer, so a peer send first checks that
;; its connection is still open.
;;
;; Example:
;;
;;   (netproc-test-deftest netproc-test-example ()
;;     "A blocking connect reports `open'."
;;     (let* ((peer (netproc-test-peer-start))
;;            (p (make-network-process
;;                :name "c" :service (netproc-test-peer-port peer))))
;;       (netproc-test-note :status (process-status p))
;;       (delete-process p)))
;;
;; Set the environment variable NETPROC_TEST_BUILTIN_ONLY to run only
;; the builtin half of each scenario (to check a scenario while netproc
;; is not available), and NETPROC_TEST_VERBOSE to print every trace.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'subr-x)
(require 'netproc nil t)

;;;; Options

(defvar netproc-test-default-timeout 5
  "Seconds `netproc-test-wait-until' waits before failing.")

(defvar netproc-test-side-timeout 20
  "Seconds one side of a differential scenario may run.")

(defvar netproc-test-leak-grace 2
  "Seconds allowed for closed descriptors to disappear after a test.")

(defvar netproc-test-builtin-only
  (and (getenv "NETPROC_TEST_BUILTIN_ONLY")
       (not (equal (getenv "NETPROC_TEST_BUILTIN_ONLY") ""))
       t)
  "Non-nil means differential tests run only their builtin half.")

(defvar netproc-test-netproc-only
  (and (getenv "NETPROC_TEST_NETPROC_ONLY")
       (not (equal (getenv "NETPROC_TEST_NETPROC_ONLY") ""))
       t)
  "Non-nil means differential tests run only their netproc half.
The traces are not compared then; the half must still run without an
error, a leftover or a leaked descriptor.  `make sanitize' uses this: in
an Emacs with the ASan runtime preloaded, the C library's internal locks
that the builtin's own lookups take are not to be trusted.")

(defvar netproc-test-verbose
  (and (getenv "NETPROC_TEST_VERBOSE")
       (not (equal (getenv "NETPROC_TEST_VERBOSE") ""))
       t)
  "Non-nil means print the traces of every differential test.")

;;;; The naming rule

(defconst netproc-test-builtin-functions
  '(make-network-process processp
    process-send-string process-send-region process-send-eof delete-process
    process-status process-exit-status process-live-p process-contact
    process-name process-type process-buffer set-process-buffer
    process-filter set-process-filter process-sentinel set-process-sentinel
    process-mark process-plist set-process-plist process-get process-put
    process-query-on-exit-flag set-process-query-on-exit-flag
    process-coding-system set-process-coding-system
    process-filter-multibyte-p set-process-filter-multibyte
    stop-process continue-process accept-process-output process-list
    get-process process-command process-id
    process-datagram-address set-process-datagram-address)
  "Builtin process functions that have a netproc twin.")

(defun netproc-test-twin (symbol)
  "Return the netproc twin of the builtin function SYMBOL."
  (pcase symbol
    ('make-network-process 'netproc-make-network-process)
    (_ (intern (replace-regexp-in-string
                "process" "netproc" (symbol-name symbol) t t)))))

(defun netproc-test-rename (form)
  "Return FORM with every builtin process function renamed to its twin.
Symbols listed in `netproc-test-builtin-functions' are replaced
wherever they occur in FORM, including in quoted function names."
  (cond
   ((and (symbolp form) (memq form netproc-test-builtin-functions))
    (netproc-test-twin form))
   ((consp form)
    (cons (netproc-test-rename (car form))
          (netproc-test-rename (cdr form))))
   (t form)))

;;;; State of the side being run

(defvar netproc-compat-inhibit)

(defvar netproc-test--side 'builtin
  "Which implementation the running scenario uses.
`builtin' or `netproc'; `compat' is the scenario as written, run with
`netproc-compat-mode' on.")

(defvar netproc-test--trace nil
  "Observations of the running scenario, newest first.")

(defvar netproc-test--subst nil
  "Alist (VALUE . PLACEHOLDER) used to normalize the running trace.")

(defvar netproc-test--port-count 0
  "Number of ports registered automatically in the running trace.")

(defvar netproc-test--peers nil
  "Peers started by the running scenario.")

(defvar netproc-test--helpers nil
  "Helper subprocesses started by the running scenario.")

(defvar netproc-test--tmpdirs nil
  "Temporary directories made by the running scenario.")

(defvar netproc-test--warm nil
  "Non-nil once the one-time warm-up has run.")

(define-error 'netproc-test-timeout "Test wait timed out")
(define-error 'netproc-test-peer-gone "Test peer connection is not open")

(defun netproc-test-available-p ()
  "Return non-nil if netproc is loaded."
  (featurep 'netproc))

(defun netproc-test-fn (symbol)
  "Return the function for builtin SYMBOL on the side being run."
  (if (eq netproc-test--side 'netproc) (netproc-test-twin symbol) symbol))

(defun netproc-test-call (symbol &rest args)
  "Call the side's version of builtin function SYMBOL with ARGS."
  (apply (netproc-test-fn symbol) args))

(defun netproc-test-object-p (object)
  "Return non-nil if OBJECT is a process or a netproc."
  (or (processp object)
      (and (fboundp 'netprocp) (ignore-errors (funcall 'netprocp object)))))

(defun netproc-test-object-name (object)
  "Return the name of OBJECT, a process or a netproc."
  (if (and (fboundp 'netprocp) (ignore-errors (funcall 'netprocp object)))
      (funcall 'netproc-name object)
    (process-name object)))

;;;; Recording

(defun netproc-test--freeze (object depth)
  "Return OBJECT with buffers and markers replaced by what they show now.
Buffers may be killed before the trace is normalized, so they are
described when noted.  DEPTH bounds the recursion."
  (cond
   ((> depth 40) object)
   ((bufferp object)
    (list :buffer (if (buffer-live-p object) (buffer-name object) :killed)))
   ((markerp object)
    (list :marker (marker-position object)
          (and (marker-buffer object) (buffer-name (marker-buffer object)))))
   ((and (consp object) (not (eq (car object) 'closure)))
    (let ((tail object) (n 0) acc)
      (while (and (consp tail) (< n 10000))
        (push (netproc-test--freeze (car tail) (1+ depth)) acc)
        (setq tail (cdr tail) n (1+ n)))
      (let ((result (nreverse acc)))
        (when tail
          (setcdr (last result) (netproc-test--freeze tail (1+ depth))))
        result)))
   ((and (vectorp object) (not (recordp object)))
    (vconcat (mapcar (lambda (x) (netproc-test--freeze x (1+ depth))) object)))
   (t object)))

(defun netproc-test-note (tag &rest values)
  "Record the observation (TAG . VALUES) in the running trace."
  (push (cons tag (netproc-test--freeze values 0)) netproc-test--trace)
  nil)

(defmacro netproc-test-try (&rest body)
  "Evaluate BODY; return (:value VALUE), or (:signal ERROR) if it signals."
  (declare (indent 0) (debug t))
  (let ((err (make-symbol "err")))
    `(condition-case ,err
         (list :value (progn ,@body))
       (error (list :signal ,err)))))

(defmacro netproc-test-note-try (tag &rest body)
  "Record (TAG RESULT) where RESULT is what `netproc-test-try' gives for BODY."
  (declare (indent 1) (debug t))
  `(netproc-test-note ,tag (netproc-test-try ,@body)))

(defmacro netproc-test-note-deliberate (tag builtin netproc &rest body)
  "Record TAG for BODY, a step where netproc differs from the builtin on purpose.
BUILTIN and NETPROC are what `netproc-test-try' must give for BODY on
each side (README.org lists the difference).  When the side gives what
it should, (TAG :as-documented) is recorded, so the traces stay equal;
otherwise (TAG :undocumented RESULT), so they differ and show it."
  (declare (indent 3) (debug t))
  (let ((result (make-symbol "result")))
    `(let ((,result (netproc-test-try ,@body)))
       (netproc-test-note ,tag
                          (if (equal (netproc-test--norm ,result 0)
                                     (netproc-test--norm
                                      (if (memq netproc-test--side
                                                '(netproc compat))
                                          ,netproc ,builtin)
                                      0))
                              :as-documented
                            (list :undocumented ,result))))))

(defun netproc-test-filter (proc string)
  "A filter that records (:filter PROC STRING MULTIBYTE-P)."
  (netproc-test-note :filter proc string (multibyte-string-p string)))

(defun netproc-test-chunk-filter (proc string)
  "A filter that records each call as (:chunk PROC STRING MULTIBYTE-P).
Unlike `netproc-test-filter', chunks are never merged."
  (netproc-test-note :chunk proc string (multibyte-string-p string)))

(defun netproc-test-sentinel (proc message)
  "A sentinel that records (:sentinel PROC MESSAGE STATUS)."
  (netproc-test-note :sentinel proc message
                     (netproc-test-call 'process-status proc)))

(defun netproc-test-register (value placeholder)
  "Normalize VALUE (a port number or a string) as PLACEHOLDER from now on."
  (unless (assoc value netproc-test--subst)
    (push (cons value placeholder) netproc-test--subst))
  value)

;;;; Normalization

(defun netproc-test--port-vector-p (v)
  "Return the port of V if V is an IPv4 or IPv6 address vector with a port."
  (when (and (vectorp v) (memq (length v) '(5 9))
             (cl-every #'natnump v))
    (let ((port (aref v (1- (length v)))))
      (and (>= port 1024) port))))

(defun netproc-test--collect-ports (object depth)
  "Register the unknown ports of address vectors in OBJECT as <CPORT>.
DEPTH bounds the recursion."
  (when (< depth 40)
    (cond
     ((consp object)
      (let ((tail object) (n 0))
        (while (and (consp tail) (< n 10000))
          (netproc-test--collect-ports (car tail) (1+ depth))
          (setq tail (cdr tail) n (1+ n)))
        (when tail (netproc-test--collect-ports tail (1+ depth)))))
     ((and (vectorp object) (not (recordp object)))
      (let ((port (netproc-test--port-vector-p object)))
        (if port
            (unless (assoc port netproc-test--subst)
              (cl-incf netproc-test--port-count)
              (netproc-test-register port '<CPORT>))
          (mapc (lambda (x) (netproc-test--collect-ports x (1+ depth)))
                object)))))))

(defun netproc-test--norm-string (string)
  "Replace registered literals in STRING by their placeholders."
  (dolist (pair netproc-test--subst string)
    (let ((key (car pair)) (ph (cdr pair)))
      (setq string
            (replace-regexp-in-string
             (if (integerp key)
                 (concat "\\b" (number-to-string key) "\\b")
               (regexp-quote key))
             (if (symbolp ph) (symbol-name ph) ph)
             string t t)))))

(defun netproc-test--norm (object depth)
  "Return OBJECT normalized for comparison; DEPTH bounds the recursion."
  (cond
   ((> depth 40) :too-deep)
   ((netproc-test-object-p object)
    (list :proc (netproc-test-object-name object)))
   ((bufferp object)
    (list :buffer (if (buffer-live-p object) (buffer-name object) :killed)))
   ((markerp object)
    (list :marker (marker-position object)
          (and (marker-buffer object) (buffer-name (marker-buffer object)))))
   ((stringp object) (netproc-test--norm-string object))
   ((integerp object)
    (let ((pair (assoc object netproc-test--subst)))
      (if pair (cdr pair) object)))
   ;; The naming rule makes `netprocp' the twin of `processp', in the
   ;; data of wrong-type-argument errors too.
   ((eq object 'netprocp) 'processp)
   ((byte-code-function-p object) :compiled-function)
   ((and (consp object) (eq (car object) 'closure)) :closure)
   ((consp object)
    (let ((tail object) (n 0) acc)
      (while (and (consp tail) (< n 10000))
        (push (netproc-test--norm (car tail) (1+ depth)) acc)
        (setq tail (cdr tail) n (1+ n)))
      (let ((result (nreverse acc)))
        (when tail
          (setcdr (last result) (netproc-test--norm tail (1+ depth))))
        result)))
   ((and (vectorp object) (not (recordp object)))
    (vconcat (mapcar (lambda (x) (netproc-test--norm x (1+ depth))) object)))
   ((recordp object) (list :record (type-of object)))
   (t object)))

(defun netproc-test--coalesce (trace)
  "Merge consecutive (:filter PROC DATA MB) entries of TRACE.
Entries are merged when PROC and MB are equal."
  (let (out)
    (dolist (e trace)
      (let ((prev (car out)))
        (if (and (eq (car e) :filter) (eq (car-safe prev) :filter)
                 (equal (nth 1 e) (nth 1 prev))
                 (equal (nth 3 e) (nth 3 prev)))
            (setcar out (list :filter (nth 1 prev)
                              (concat (nth 2 prev) (nth 2 e)) (nth 3 e)))
          (push e out))))
    (nreverse out)))

(defun netproc-test-normalize (trace)
  "Return TRACE (oldest first) normalized for comparison."
  (netproc-test--collect-ports trace 0)
  (netproc-test--coalesce (netproc-test--norm trace 0)))

;;;; Waiting

(defun netproc-test-wait-until (pred &optional timeout what)
  "Run the event loop until PRED is non-nil; return that value.
Wait at most TIMEOUT seconds (default `netproc-test-default-timeout');
then signal `netproc-test-timeout' with WHAT (a description of PRED)
and the trace seen so far."
  (let* ((timeout (or timeout netproc-test-default-timeout))
         (end (+ (float-time) timeout))
         (max-rounds (+ 1000 (* 200 (ceiling timeout))))
         (rounds 0)
         value)
    (while (and (not (setq value (funcall pred)))
                (< (float-time) end)
                (< rounds max-rounds))
      (accept-process-output nil 0.02)
      (setq rounds (1+ rounds)))
    (or value
        (signal 'netproc-test-timeout
                (list (or what pred) :seconds timeout :rounds rounds
                      :seen (reverse netproc-test--trace))))))

(defmacro netproc-test-wait-for (form &optional timeout)
  "Wait until FORM is non-nil, at most TIMEOUT seconds; return its value."
  (declare (debug t))
  `(netproc-test-wait-until (lambda () ,form) ,timeout ',form))

(defun netproc-test-settle (&optional seconds)
  "Run the event loop for SECONDS (default 0.2).
Only for checking that nothing happens: anything that can be awaited
is awaited with `netproc-test-wait-until'."
  (let ((end (+ (float-time) (or seconds 0.2))) (rounds 0))
    (while (and (< (float-time) end) (< rounds 5000))
      (accept-process-output nil 0.02)
      (setq rounds (1+ rounds)))))

(defun netproc-test-status-sequence (proc &optional timeout)
  "Return the distinct statuses of PROC, sampled while it is connecting.
Bounded by TIMEOUT seconds (default `netproc-test-default-timeout')."
  (let* ((status-fn (netproc-test-fn 'process-status))
         (seen (list (funcall status-fn proc)))
         (end (+ (float-time) (or timeout netproc-test-default-timeout)))
         (rounds 0))
    (while (and (eq (funcall status-fn proc) 'connect)
                (< (float-time) end) (< rounds 10000))
      (accept-process-output nil 0.01)
      (setq rounds (1+ rounds))
      (unless (eq (car seen) (funcall status-fn proc))
        (push (funcall status-fn proc) seen)))
    (nreverse seen)))

;;;; Peers

(cl-defstruct (netproc-test-peer (:constructor netproc-test--make-peer)
                                 (:copier nil))
  "A builtin server used as the other end of a connection."
  server family port path (conns nil) (events nil))

(defvar netproc-test--peer-count 0
  "Number of peers started by the running scenario.")

(defun netproc-test-tmpdir ()
  "Make a temporary directory, removed when the scenario ends."
  (let ((dir (make-temp-file "netproc-test" t)))
    (push dir netproc-test--tmpdirs)
    (netproc-test-register dir "<TMPDIR>")
    dir))

(defun netproc-test--peer-filter (conn string)
  "Append STRING to the data received by the peer connection CONN."
  (process-put conn 'netproc-test-data
               (concat (process-get conn 'netproc-test-data) string)))

(defun netproc-test--peer-sentinel (conn message)
  "Record MESSAGE for the peer connection CONN."
  (let ((peer (process-get conn 'netproc-test-peer)))
    (when (netproc-test-peer-p peer)
      (when (and (string-prefix-p "open from" message)
                 (not (memq conn (netproc-test-peer-conns peer))))
        (setf (netproc-test-peer-conns peer)
              (append (netproc-test-peer-conns peer) (list conn))))
      (setf (netproc-test-peer-events peer)
            (append (netproc-test-peer-events peer)
                    (list (list (cl-position conn (netproc-test-peer-conns peer))
                                message)))))))

(cl-defun netproc-test-peer-start (&key (family 'ipv4) (name "netproc-test-peer"))
  "Start a builtin server on loopback and return it as a peer.
FAMILY is `ipv4' (127.0.0.1), `ipv6' (::1) or `local' (a Unix socket
in a temporary directory).  NAME is the server's process name.  The
server reads bytes (`binary' coding), records what each accepted
connection receives and its sentinel messages, and never writes
unless told to."
  (let* ((peer (netproc-test--make-peer :family family))
         (n (cl-incf netproc-test--peer-count))
         ;; A peer is builtin, with `netproc-compat-mode' on too.
         (netproc-compat-inhibit t)
         (placeholder (if (= n 1) '<SPORT> (intern (format "<SPORT%d>" n))))
         (common (list :name name :server 64 :coding 'binary :noquery t
                       :filter #'netproc-test--peer-filter
                       :sentinel #'netproc-test--peer-sentinel
                       :plist (list 'netproc-test-peer peer)))
         server)
    (pcase family
      ('ipv4 (setq server (apply #'make-network-process
                                 :host "127.0.0.1" :service t :family 'ipv4
                                 common)))
      ('ipv6 (setq server (apply #'make-network-process
                                 :host "::1" :service t :family 'ipv6 common)))
      ('local
       (let ((path (expand-file-name (format "sock%d" n) (netproc-test-tmpdir))))
         (setf (netproc-test-peer-path peer) path)
         (setq server (apply #'make-network-process
                             :family 'local :service path common))))
      (_ (error "Unknown peer family %S" family)))
    (setf (netproc-test-peer-server peer) server)
    (unless (eq family 'local)
      (setf (netproc-test-peer-port peer) (process-contact server :service))
      (netproc-test-register (netproc-test-peer-port peer) placeholder))
    (push peer netproc-test--peers)
    peer))

(defun netproc-test-peer-service (peer)
  "Return what a client passes as `:service' to reach PEER."
  (or (netproc-test-peer-port peer) (netproc-test-peer-path peer)))

(defun netproc-test-peer-conn (peer &optional n timeout)
  "Return PEER's Nth accepted connection (default 0), waiting for it.
Wait at most TIMEOUT seconds."
  (let ((n (or n 0)))
    (netproc-test-wait-until
     (lambda () (nth n (netproc-test-peer-conns peer)))
     timeout (list 'peer-accepts (1+ n)))))

(defun netproc-test-peer-send (peer string &optional n)
  "Make PEER's Nth connection (default 0) send STRING.
Signal `netproc-test-peer-gone' instead if that connection is no
longer open, so the builtin never writes to a closed peer."
  (let ((conn (netproc-test-peer-conn peer n)))
    (accept-process-output nil 0)
    (unless (eq (process-status conn) 'open)
      (signal 'netproc-test-peer-gone
              (list (process-name conn) (process-status conn))))
    (process-send-string conn string)))

(defun netproc-test-peer-close (peer &optional n)
  "Close PEER's Nth connection (default 0) normally (FIN)."
  (delete-process (netproc-test-peer-conn peer n)))

(defun netproc-test-peer-reset (peer &optional n)
  "Reset PEER's Nth connection (default 0): linger 0 then close (RST)."
  (let ((conn (netproc-test-peer-conn peer n)))
    (set-network-process-option conn :linger 0)
    (delete-process conn)))

(defun netproc-test-peer-stop-reading (peer &optional n)
  "Make PEER's Nth connection (default 0) stop reading its socket."
  (stop-process (netproc-test-peer-conn peer n)))

(defun netproc-test-peer-received (peer &optional n)
  "Return the data PEER's Nth connection (default 0) received so far."
  (or (process-get (netproc-test-peer-conn peer n) 'netproc-test-data) ""))

(defun netproc-test-peer-wait-received (peer pred &optional n timeout)
  "Wait until PRED is non-nil for the data PEER's Nth connection received.
Return that data.  Wait at most TIMEOUT seconds."
  (netproc-test-wait-until
   (lambda ()
     (let ((data (netproc-test-peer-received peer n)))
       (and (funcall pred data) data)))
   timeout (list 'peer-received pred)))

(defun netproc-test-peer-wait-closed (peer &optional n timeout)
  "Wait until PEER's Nth connection (default 0) is closed.
Wait at most TIMEOUT seconds."
  (let ((conn (netproc-test-peer-conn peer n timeout)))
    (netproc-test-wait-until (lambda () (eq (process-status conn) 'closed))
                             timeout (list 'peer-closed (or n 0)))))

(defun netproc-test-peer-messages (peer &optional n)
  "Return the sentinel messages of PEER's Nth connection (default 0)."
  (let ((n (or n 0)))
    (mapcar #'cadr (cl-remove-if-not (lambda (e) (eql (car e) n))
                                     (netproc-test-peer-events peer)))))

(defun netproc-test-peer-process-p (object)
  "Return non-nil if OBJECT is a process of a test peer or helper.
netproc's own event channel (a pipe process) counts as a helper."
  (and (processp object)
       (or (process-get object 'netproc-test-peer)
           (process-get object 'netproc-test-helper)
           (and (eq (process-type object) 'pipe)
                (string-prefix-p " *netproc" (process-name object))))))

(defun netproc-test-peer-stop (peer)
  "Delete PEER's server and connections."
  (dolist (pr (cons (netproc-test-peer-server peer)
                    (netproc-test-peer-conns peer)))
    (when (processp pr)
      (set-process-sentinel pr #'ignore)
      (delete-process pr)))
  (let ((path (netproc-test-peer-path peer)))
    (when (and path (file-exists-p path))
      (delete-file path))))

(defun netproc-test-refused-port (&optional family)
  "Return a loopback port nothing listens on, registered as <RPORT>.
FAMILY is `ipv4' (default) or `ipv6'."
  (let* ((netproc-compat-inhibit t)
         (server (make-network-process
                  :name "netproc-test-refused" :server t :service t
                  :host (if (eq family 'ipv6) "::1" "127.0.0.1")
                  :family (or family 'ipv4) :noquery t))
         (port (process-contact server :service)))
    (delete-process server)
    (netproc-test-register port (if (eq family 'ipv6) '<RPORT6> '<RPORT>))))

(defun netproc-test-port-helper (name command placeholder tag)
  "Start COMMAND, a peer named NAME that prints the port it listens on.
Return the port, registered as PLACEHOLDER; wait for it at most ten
seconds, under TAG.  The peer is stopped with the scenario."
  (let* ((port nil)
         (helper
          (make-process
           :name name :noquery t :connection-type 'pipe :command command
           :sentinel #'ignore
           :filter (lambda (_p s)
                     (when (and (not port) (string-match "[0-9]+" s))
                       (setq port (string-to-number (match-string 0 s))))))))
    (process-put helper 'netproc-test-helper t)
    (push helper netproc-test--helpers)
    (netproc-test-wait-until (lambda () port) 10 tag)
    (netproc-test-register port placeholder)))

(defun netproc-test-perl-peer (script)
  "Start a perl peer listening on 127.0.0.1 running SCRIPT; return its port.
SCRIPT is Perl code run with $c bound to the one accepted connection.
The port is registered as <PPORT>."
  (netproc-test-port-helper
   "netproc-test-perl"
   (list "perl" "-MIO::Socket::INET" "-e"
         (concat "$|=1; my $l=IO::Socket::INET->new(LocalAddr=>'127.0.0.1',"
                 "LocalPort=>0,Listen=>1,ReuseAddr=>1) or die;"
                 "print $l->sockport,\"\\n\"; my $c=$l->accept; close $l; "
                 script))
   '<PPORT> 'perl-peer-port))

(defconst netproc-test-perl-answer-after-eof
  (concat "local $/; my $d=<$c>; "
          "print $c \"got:\".length($d).\" bytes then EOF\"; close $c;")
  "Perl peer script: read until EOF, then answer and close.")

;;;; Descriptors and leftovers

(defun netproc-test-fds ()
  "Return the open descriptors of this Emacs as a sorted list of numbers."
  (sort (mapcar #'string-to-number
                (directory-files "/proc/self/fd" nil "\\`[0-9]+\\'" t))
        #'<))

(defun netproc-test-fd-description (fd)
  "Return (FD . TARGET) for descriptor FD."
  (cons fd (ignore-errors (file-symlink-p (format "/proc/self/fd/%d" fd)))))

(defun netproc-test-fd-leaks (before)
  "Return descriptors opened since BEFORE was taken, after a grace period.
The event loop runs for at most `netproc-test-leak-grace' seconds to
let closes land; the result is a list of (FD . TARGET), nil if the
number of descriptors is back to what it was."
  (let ((end (+ (float-time) netproc-test-leak-grace)) (rounds 0) now)
    (while (and (> (length (setq now (netproc-test-fds))) (length before))
                (< (float-time) end) (< rounds 1000))
      (accept-process-output nil 0.02)
      (setq rounds (1+ rounds)))
    (when (> (length now) (length before))
      (mapcar #'netproc-test-fd-description (cl-set-difference now before)))))

(defun netproc-test-all-objects ()
  "Return every live-listed process and netproc, peers excluded."
  (append (cl-remove-if #'netproc-test-peer-process-p (process-list))
          (and (fboundp 'netproc-list) (funcall 'netproc-list))))

(defun netproc-test-names (objects)
  "Return the names of OBJECTS, leaving out peer and helper processes."
  (mapcar #'netproc-test-object-name
          (cl-remove-if #'netproc-test-peer-process-p objects)))

(defun netproc-test-let-lookup-end (object)
  "Give OBJECT, a process or a netproc still connecting, time to leave it.
Wait while its status is `connect', at most two seconds, running the
event loop.  Emacs 28.2's `delete-process' on a `:nowait' process whose
name lookup is under way can spin forever: a signal (a child exiting)
interrupts its `gai_suspend', the lookup ends meanwhile, and from then
on `gai_suspend' answers EAI_ALLDONE, which Emacs retries.  Tests that
delete such a process let the lookup end first."
  (let ((end (+ (float-time) 2)) (rounds 0))
    (while (and (eq (netproc-test-call 'process-status object) 'connect)
                (< (float-time) end) (< rounds 1000))
      (accept-process-output nil 0.02)
      (setq rounds (1+ rounds)))))

(defun netproc-test--delete-object (object)
  "Delete OBJECT, a process or a netproc, without running its sentinel."
  (ignore-errors
    (if (processp object)
        (progn (set-process-sentinel object #'ignore)
               (netproc-test-let-lookup-end object)
               (delete-process object))
      (funcall 'set-netproc-sentinel object #'ignore)
      (funcall 'delete-netproc object))))

(defun netproc-test--cleanup (objects-before buffers-before)
  "Delete what the scenario left; return the names of its leftover objects.
OBJECTS-BEFORE and BUFFERS-BEFORE are what existed before it ran."
  (let* ((left (cl-set-difference (netproc-test-all-objects) objects-before))
         (names (mapcar (lambda (o) (ignore-errors (netproc-test-object-name o)))
                        left)))
    (mapc #'netproc-test--delete-object left)
    (mapc #'netproc-test-peer-stop netproc-test--peers)
    (dolist (h netproc-test--helpers)
      (when (processp h) (delete-process h)))
    (dolist (b (buffer-list))
      (unless (memq b buffers-before)
        (with-current-buffer b (set-buffer-modified-p nil))
        (let ((kill-buffer-query-functions nil)
              (kill-buffer-hook nil))
          (kill-buffer b))))
    (dolist (d netproc-test--tmpdirs)
      (ignore-errors (delete-directory d t)))
    names))

;;;; Name lookups that stay on this machine

;; A lookup of a name that does not exist (no-such-host.invalid) is a
;; DNS query when the system's name service asks the DNS, and the tests
;; send nothing off this machine.  Both sides look names up with
;; glibc's getaddrinfo() (GIO's threaded resolver calls it too), which
;; asks the sources of the hosts line of /etc/nsswitch.conf.
;; test/with-local-lookups.sh, through which the runners start, makes
;; that line "hosts: files" in a mount namespace of the run's own when
;; it can; the tests that need such a lookup skip otherwise.

(defconst netproc-test-local-hosts-sources '("files" "myhostname")
  "Sources of the hosts database that answer from this machine alone.
\"files\" reads /etc/hosts, \"myhostname\" knows this host's names.
Any other (\"dns\", \"resolve\", \"mdns4_minimal\", ...) may ask the
network.")

(defun netproc-test-hosts-sources (text)
  "Return the sources of the hosts database in TEXT, an nsswitch.conf.
A line is read as glibc reads it: blanks, the database's name, then any
run of blanks and colons.  Comments and [STATUS=ACTION] items are left
out; several hosts lines give the sources of all.  Return nil when there
is no hosts line; for one that names no source, (:none)."
  (let ((sources nil)
        (case-fold-search t))
    (dolist (line (split-string text "\n"))
      (let ((line (replace-regexp-in-string "#.*" "" line)))
        (when (string-match "\\`[[:space:]]*hosts[[:space:]:]+\\(.*\\)" line)
          (let ((words (split-string
                        (replace-regexp-in-string
                         "\\[[^]]*\\]" " " (match-string 1 line)))))
            (setq sources (append sources (or words '(:none))))))))
    sources))

(defun netproc-test-nsswitch-local-p (text)
  "Return non-nil if name lookups by TEXT, an nsswitch.conf, stay here.
That is when it has a hosts line, and each of the sources of its hosts
lines is in `netproc-test-local-hosts-sources'.  Without a hosts line,
glibc asks the DNS."
  (let ((sources (netproc-test-hosts-sources text)))
    (and sources
         (cl-every (lambda (s) (member s netproc-test-local-hosts-sources))
                   sources)
         t)))

(defun netproc-test--socket-p (file)
  "Return non-nil if FILE is a socket."
  (let ((attributes (file-attributes file)))
    (and attributes (eq (aref (file-attribute-modes attributes) 0) ?s))))

(defun netproc-test-lookups-local-p ()
  "Return non-nil if a name lookup here cannot leave this machine.
That is when /etc/nsswitch.conf satisfies `netproc-test-nsswitch-local-p'
and nscd has no socket: glibc would ask nscd, which resolves by its own
configuration.  The builtin and GIO both resolve with glibc's
getaddrinfo(), so the answer holds for both sides."
  (and (not (netproc-test--socket-p "/var/run/nscd/socket"))
       (not (netproc-test--socket-p "/run/nscd/socket"))
       (file-readable-p "/etc/nsswitch.conf")
       (netproc-test-nsswitch-local-p
        (with-temp-buffer
          (insert-file-contents "/etc/nsswitch.conf")
          (buffer-string)))))

(defun netproc-test-skip-unless-lookups-local ()
  "Skip the running test unless `netproc-test-lookups-local-p'.
For a test that looks up a name that does not exist, which through the
DNS would be a query leaving the machine.  In a scenario body it skips
the whole test, on every side: see `netproc-test-with-side'."
  (unless (netproc-test-lookups-local-p)
    (let ((why (concat "a lookup here may ask the DNS: see "
                       "test/with-local-lookups.sh")))
      (message "%s skipped: %s"
               (let ((test (ert-running-test)))
                 (if test (ert-test-name test) "A scenario"))
               why)
      (ert-skip why))))

(declare-function netproc--test-resolver "netproc-module" (mode code message))
(declare-function netproc--ensure-engine "netproc-channel" ())
(declare-function netproc--running-p "netproc-module" ())

(defmacro netproc-test-with-resolver (mode code message &rest body)
  "Run BODY while netproc's engine resolves names as MODE, CODE, MESSAGE say.
See `netproc--test-resolver': MODE `stall' or `fail'.  Nothing is asked
of the name service meanwhile, except for numbers and localhost, which
GLib answers itself.  GIO's resolver is back after BODY."
  (declare (indent 3) (debug t))
  `(progn
     (netproc--ensure-engine)
     (netproc--test-resolver ,mode ,code ,message)
     (unwind-protect (progn ,@body)
       (when (netproc--running-p)
         (netproc--test-resolver nil nil nil)))))

;;;; Child Emacs

(defun netproc-test-child-emacs (form &optional args)
  "Run FORM in a child batch Emacs; return (EXIT-CODE . OUTPUT).
The child has lisp/ and test/ on its `load-path', gets the extra
command-line ARGS before FORM, and starts with the default action for
SIGPIPE whatever ours is.  It is killed after 20 seconds."
  (let* ((emacs (expand-file-name invocation-name invocation-directory))
         (test-dir (file-name-directory (locate-library "netproc-test-lib")))
         (lisp-dir (expand-file-name "../lisp/" test-dir)))
    (with-temp-buffer
      (let ((rc (apply #'call-process
                       "timeout" nil t nil "20" "perl" "-e"
                       "$SIG{PIPE}='DEFAULT'; exec @ARGV or die" emacs "-Q"
                       "--batch" "-L" lisp-dir "-L" test-dir
                       (append args
                               (list "--eval" (prin1-to-string form))))))
        (cons rc (buffer-string))))))

;;;; Running a scenario

(defmacro netproc-test-with-side (side &rest body)
  "Evaluate BODY as the SIDE being run, with a fresh trace and cleanup.
Return (TRACE LEFTOVER-NAMES FD-LEAKS); TRACE is normalized."
  (declare (indent 1) (debug t))
  `(let ((netproc-test--side ,side)
         (netproc-test--trace nil)
         (netproc-test--subst nil)
         (netproc-test--port-count 0)
         (netproc-test--peer-count 0)
         (netproc-test--peers nil)
         (netproc-test--helpers nil)
         (netproc-test--tmpdirs nil)
         (objects-before (netproc-test-all-objects))
         (buffers-before (buffer-list))
         (fds-before (netproc-test-fds))
         (default-directory temporary-file-directory)
         leftover)
     (unwind-protect
         (condition-case err
             (with-timeout (netproc-test-side-timeout
                            (netproc-test-note :scenario-timeout
                                               netproc-test-side-timeout))
               ,@body)
           ;; A scenario that skips skips its test, on every side.
           (ert-test-skipped (signal (car err) (cdr err)))
           (error (netproc-test-note :scenario-error err)))
       (setq leftover (netproc-test--cleanup objects-before buffers-before)))
     (list (netproc-test-normalize (reverse netproc-test--trace))
           leftover
           (netproc-test-fd-leaks fds-before))))

(defun netproc-test--warm-up ()
  "Exercise netproc once, so its one-time resources are not seen as leaks."
  (unless netproc-test--warm
    (setq netproc-test--warm t)
    ;; Emacs makes its child-signal pipe at the first `make-process'.
    (let ((child (make-process :name "netproc-test-warm" :command '("true")
                               :noquery t :sentinel #'ignore)))
      (netproc-test-wait-until (lambda () (not (process-live-p child)))
                               5 'warm-up-child)
      (delete-process child))
    (when (netproc-test-available-p)
      (netproc-test-with-side 'netproc
        (dolist (family '(ipv4 ipv6 local))
          (let* ((peer (netproc-test-peer-start :family family))
                 (p (funcall 'netproc-make-network-process
                             :name "warm" :family family
                             :host (and (not (eq family 'local))
                                        (if (eq family 'ipv6) "::1" "127.0.0.1"))
                             :service (netproc-test-peer-service peer)
                             :sentinel #'ignore)))
            (netproc-test-peer-conn peer)
            (funcall 'delete-netproc p)))
        (let* ((peer (netproc-test-peer-start))
               (p (funcall 'netproc-make-network-process
                           :name "warm" :nowait t :host "127.0.0.1"
                           :service (netproc-test-peer-port peer)
                           :sentinel #'ignore)))
          (netproc-test-wait-for (not (eq (funcall 'netproc-status p) 'connect)))
          (funcall 'delete-netproc p))
        ;; A lookup of a name (not of a number) makes a GTask, and with
        ;; the first GTask GLib starts what it keeps for good: its
        ;; worker context, an eventfd and a thread.  Any such lookup
        ;; will do; this one fails in the engine's test resolver and
        ;; asks no name server.
        (netproc-test-with-resolver 'fail 'not-found nil
          (ignore-errors
            (funcall 'netproc-make-network-process
                     :name "warm" :host "no-such-host.invalid"
                     :service 80)))))))

(defun netproc-test--print-trace (label trace &optional other)
  "Print TRACE under LABEL on stderr.
Entries that differ from the entry at the same place in OTHER are
flagged with \">>\"."
  (let ((print-escape-newlines t) (print-length nil) (print-level nil)
        (i 0))
    (message "%s:" label)
    (dolist (e trace)
      (message "  %s%3d %S"
               (if (and other (not (equal e (nth i other)))) ">>" "  ")
               i e)
      (setq i (1+ i)))))

(defun netproc-test--first-difference (a b)
  "Return the index of the first differing entry of lists A and B, or nil."
  (let ((i 0))
    (while (and (or a b) (equal (car a) (car b)))
      (setq a (cdr a) b (cdr b) i (1+ i)))
    (and (or a b) i)))

(defun netproc-test--check-side (label result)
  "Fail if RESULT (from `netproc-test-with-side') has leftovers or leaks.
LABEL names the side in the failure."
  (pcase-let ((`(,_ ,leftover ,leaks) result))
    (when leftover
      (ert-fail (list (format "%s: objects left over" label) leftover)))
    (when leaks
      (ert-fail (list (format "%s: descriptors leaked" label) leaks)))))

(defun netproc-test-compare (name builtin-fn netproc-fn)
  "Run the scenario NAME as BUILTIN-FN and NETPROC-FN; compare the traces."
  (netproc-test--warm-up)
  (if netproc-test-netproc-only
      (netproc-test--run-netproc-only name netproc-fn)
    (netproc-test--compare-sides name builtin-fn netproc-fn)))

(defun netproc-test--run-netproc-only (name netproc-fn)
  "Run the netproc half NETPROC-FN of scenario NAME alone and check it."
  (let* ((n (netproc-test-with-side 'netproc (funcall netproc-fn)))
         (nt (car n)))
    (when (or (assq :scenario-error nt) (assq :scenario-timeout nt))
      (netproc-test--print-trace (format "%s netproc" name) nt)
      (ert-fail (list "netproc side of the scenario failed"
                      (or (assq :scenario-error nt)
                          (assq :scenario-timeout nt)))))
    (netproc-test--check-side "netproc" n)))

(defun netproc-test--compare-sides (name builtin-fn netproc-fn)
  "Run scenario NAME as BUILTIN-FN, then NETPROC-FN; compare the traces."
  (let* ((b (netproc-test-with-side 'builtin (funcall builtin-fn)))
         (bt (car b)))
    (when (or netproc-test-verbose
              (assq :scenario-error bt) (assq :scenario-timeout bt))
      (netproc-test--print-trace (format "%s builtin" name) bt))
    (when (or (assq :scenario-error bt) (assq :scenario-timeout bt))
      (ert-fail (list "builtin side of the scenario failed"
                      (or (assq :scenario-error bt) (assq :scenario-timeout bt)))))
    (netproc-test--check-side "builtin" b)
    (cond
     (netproc-test-builtin-only
      (should (consp bt)))
     ((not (netproc-test-available-p))
      (ert-fail "netproc is not loadable (lisp/netproc.el on load-path?)"))
     (t
      (let* ((n (netproc-test-with-side 'netproc (funcall netproc-fn)))
             (nt (car n))
             (at (netproc-test--first-difference bt nt)))
        (when (or at netproc-test-verbose)
          (message "=== %s: %s" name (if at "TRACES DIFFER" "traces equal"))
          (netproc-test--print-trace "builtin" bt (and at nt))
          (netproc-test--print-trace "netproc" nt (and at bt)))
        (when at
          (ert-fail (list "builtin and netproc traces differ" :at at
                          :builtin (nth at bt) :netproc (nth at nt))))
        (netproc-test--check-side "netproc" n))))))

(defvar netproc-test-scenarios nil
  "Every differential scenario defined so far: (NAME . FUNCTION), newest first.
FUNCTION runs the scenario as written, with the builtin names.")

(defvar netproc-test-scenario-functions nil
  "Functions called with NAME and FUNCTION for each scenario defined.
A file that reruns the scenarios another way adds itself here to see
those of the files loaded after it.")

(defun netproc-test-register-scenario (name function)
  "Record the scenario NAME, run by FUNCTION, and tell those who listen."
  (setf (alist-get name netproc-test-scenarios) function)
  (run-hook-with-args 'netproc-test-scenario-functions name function))

(defmacro netproc-test-deftest (name arglist docstring &rest body)
  "Define NAME, a differential ERT test running BODY on both sides.
BODY uses the builtin function names; the netproc half is BODY with
`netproc-test-rename' applied.  ARGLIST must be ().  DOCSTRING
documents the test.  The scenario as written is also registered with
`netproc-test-register-scenario', for reruns."
  (declare (indent defun) (doc-string 3))
  (let ((tags nil))
    (when (eq (car body) :tags)
      (setq tags (list :tags (cadr body)) body (cddr body)))
    `(progn
       (ert-deftest ,name ,arglist ,docstring ,@tags
         (netproc-test-compare ',name
                               (lambda () ,@body)
                               (lambda () ,@(netproc-test-rename body))))
       (netproc-test-register-scenario ',name (lambda () ,@body)))))

(defmacro netproc-test-with-cleanup (&rest body)
  "Run BODY (a test of netproc alone) with the harness's isolation.
Fail if BODY signals, leaves processes or netprocs, or leaks descriptors."
  (declare (indent 0) (debug t))
  `(progn
     (netproc-test--warm-up)
     (let ((result (netproc-test-with-side 'netproc ,@body)))
       (when (or (assq :scenario-error (car result))
                 (assq :scenario-timeout (car result)))
         (netproc-test--print-trace "netproc" (car result))
         (ert-fail (list "scenario failed"
                         (or (assq :scenario-error (car result))
                             (assq :scenario-timeout (car result))))))
       (netproc-test--check-side "netproc" result)
       (car result))))

(provide 'netproc-test-lib)
;;; netproc-test-lib.el ends here
