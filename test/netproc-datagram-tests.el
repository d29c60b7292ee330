;;; netproc-datagram-tests.el --- Differential tests of datagram sockets  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; `:type datagram' over IPv4, IPv6 and Unix sockets: clients, servers,
;; the datagram address and its twins, written once with the builtin
;; names and run against the builtin and against netproc (see
;; `netproc-test-deftest').
;;
;; Filters record each datagram on its own, under :record (see
;; netproc-seqpacket-tests.el, whose filter and long-record convention
;; these reuse): a datagram longer than `read-process-output-max' comes
;; whole from netproc and cut from the builtin, a deliberate difference.
;;
;; Peers outside Emacs are build/dgram-peer (test/dgram-peer.c), a plain
;; C program: it echoes datagrams, and it sends the zero-length datagram
;; Emacs itself cannot send.  Peers that must stay builtin in both
;; halves are made by functions defined outside the scenario bodies, so
;; the renaming of the netproc half does not reach them.
;;
;; What the builtin does, as observed (reference §8 and these
;; scenarios): a datagram server is `open', accepts nothing, and sends
;; to the sender of the datagram its filter got last; `process-contact'
;; with t or :remote first stores the datagram address as :remote; an
;; empty datagram ends the receiver; a datagram too large for the
;; socket signals (file-error "Sending datagram" "Message too long" P),
;; other refusals (file-error "Writing to process" MESSAGE P), and the
;; process stays open; options are not set on a client when it is made.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)
(require 'netproc-server-tests)
(require 'netproc-seqpacket-tests)
(require 'netproc-options-tests)

;;;; Helpers

(defconst netproc-datagram--peer-program
  (expand-file-name "../build/dgram-peer"
                    (file-name-directory (or load-file-name buffer-file-name)))
  "The plain datagram peer, built by `make check'.")

(defun netproc-datagram--echo-peer (family count &optional path)
  "Start the C peer echoing COUNT datagrams on FAMILY; return its port.
FAMILY is \"ipv4\", \"ipv6\" or \"unix\" (then on PATH, and the value is
PATH).  The port is registered as <DPORT>."
  (let* ((ready nil)
         (helper
          (make-process
           :name "netproc-test-dgram-peer" :noquery t
           :connection-type 'pipe
           :command (append (list netproc-datagram--peer-program "echo" family)
                            (and path (list path))
                            (list (number-to-string count)))
           :sentinel #'ignore
           :filter (lambda (_p s)
                     (when (and (not ready)
                                (string-match "\\([0-9]+\\|ready\\)" s))
                       (setq ready (match-string 1 s)))))))
    (process-put helper 'netproc-test-helper t)
    (push helper netproc-test--helpers)
    (netproc-test-wait-until (lambda () ready) 10 'dgram-peer-ready)
    (if path
        path
      (netproc-test-register (string-to-number ready) '<DPORT>))))

(defun netproc-datagram--peer-send (family where &rest texts)
  "Have the C peer send each of TEXTS as one datagram to WHERE, and exit.
FAMILY is \"ipv4\", \"ipv6\" or \"unix\"; WHERE a port or a path.  An
empty text is a zero-length datagram."
  (let ((status (apply #'call-process netproc-datagram--peer-program nil nil nil
                       "send" family (format "%s" where) texts)))
    (unless (eql status 0)
      (error "The datagram peer exited with %s" status))))

(defun netproc-datagram--builtin-server (name &rest args)
  "A builtin IPv4 datagram server NAME, recording; ARGS are extra keywords."
  (apply #'make-network-process
         :name name :server t :type 'datagram :host "127.0.0.1" :service t
         :coding 'binary :noquery t
         :filter #'netproc-seqpacket-filter
         :sentinel #'netproc-seqpacket-builtin-sentinel
         args))

(defun netproc-datagram--builtin-client (name port &optional filter)
  "A builtin IPv4 datagram client NAME of PORT, recording.
FILTER replaces the recording filter."
  (make-network-process
   :name name :type 'datagram :host "127.0.0.1" :service port
   :coding 'binary :noquery t
   :filter (or filter #'netproc-seqpacket-filter)
   :sentinel #'netproc-seqpacket-builtin-sentinel))

(defun netproc-datagram--builtin-port (proc)
  "The port of the builtin datagram server PROC."
  (process-contact proc :service))

(defun netproc-datagram--builtin-send (proc string)
  "Send STRING from the builtin PROC."
  (process-send-string proc string))

(defun netproc-datagram--builtin-delete (proc)
  "Delete the builtin PROC."
  (delete-process proc))

(defun netproc-datagram--free-port ()
  "Return a loopback UDP port nothing is bound to, registered as <UPORT>."
  (let* ((s (make-network-process
             :name "netproc-test-free-udp" :server t :type 'datagram
             :host "127.0.0.1" :service t :noquery t))
         (port (process-contact s :service)))
    (delete-process s)
    (netproc-test-register port '<UPORT>)))

;;;; One kind on both ends

(netproc-test-server-deftest netproc-test-datagram-pair ()
  "A UDP server and two clients: boundaries, addresses, replies, errors."
  (let* ((srv (make-network-process
               :name "dsrv" :server t :type 'datagram :host "127.0.0.1"
               :service t :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel))
         (port (netproc-test-register (process-contact srv :service)
                                      '<DSPORT>))
         (c1 (make-network-process
              :name "dc1" :type 'datagram :host "127.0.0.1" :service port
              :coding 'binary :filter #'netproc-seqpacket-filter
              :sentinel #'netproc-test-server-sentinel))
         (c2 (make-network-process
              :name "dc2" :type 'datagram :remote (vector 127 0 0 1 port)
              :coding 'binary :filter #'netproc-seqpacket-filter
              :sentinel #'netproc-test-server-sentinel))
         c1-address)
    (netproc-test-server-state "server" srv)
    (netproc-test-server-state "client" c1)
    (netproc-test-server-note :types (process-type srv) (process-type c1))
    (netproc-test-server-note :addresses (process-datagram-address srv)
                              (process-datagram-address c1)
                              (process-datagram-address c2))
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-contacts "client" c1)
    (netproc-test-server-contacts "client by :remote" c2)
    ;; Each send one datagram, each datagram one filter call.
    (dolist (s (list "one" "two" "three" (make-string 6000 ?G)
                     (make-string 65507 ?H) "four"))
      (process-send-string c1 s))
    (netproc-seqpacket-wait-records srv 6)
    ;; The server now sends to c1, the sender of what it got last.
    (setq c1-address (process-datagram-address srv))
    (netproc-test-server-note :server-address c1-address)
    (process-send-string srv "to-c1")
    (netproc-seqpacket-wait-records c1 1)
    (process-send-string c2 "from-c2")
    (netproc-seqpacket-wait-records srv 7)
    (process-send-string srv "to-c2")
    (netproc-seqpacket-wait-records c2 1)
    (netproc-test-server-note :contact-remote (process-contact srv :remote))
    ;; Setting it: what fits the socket, else nil and no change.
    (netproc-test-server-note
     :set-bad
     (set-process-datagram-address srv [0 0 0 0 0 0 0 1 9])
     (set-process-datagram-address srv "/tmp/none")
     ;; As long as an IPv4 address, and no more one.
     (set-process-datagram-address srv "/tmp/x1234567")
     (set-process-datagram-address srv 42)
     (set-process-datagram-address srv '(2 . [0 0 127 0 0 1]))
     (set-process-datagram-address srv (cons 2 (make-vector 200 0)))
     (set-process-datagram-address srv '(70000 . [1 2]))
     (set-process-datagram-address srv '(x . [1 2]))
     (process-datagram-address srv))
    ;; The form for any family, of the socket's size: taken as it is,
    ;; its family field left 0 as Emacs leaves it; sending there fails.
    (netproc-test-server-note
     :set-raw
     (set-process-datagram-address srv '(2 . [0 9 127 0 0 1 0 0 0 0 0 0 0 0]))
     (process-datagram-address srv)
     (netproc-test-try (process-send-string srv "raw")))
    (netproc-test-server-state "server after raw address" srv)
    (netproc-test-server-note :set (set-process-datagram-address
                                    srv c1-address))
    (process-send-string srv "again-c1")
    (netproc-seqpacket-wait-records c1 2)
    ;; Nothing to send, and no end to send.
    (netproc-test-server-note-try :empty (process-send-string c1 ""))
    (netproc-test-server-note-try :eof (process-send-eof c1))
    (process-send-string c1 "after-eof")
    (netproc-seqpacket-wait-records srv 8)
    ;; Too large for any datagram: an error, and the client goes on.
    (netproc-test-server-note-try :too-large
      (process-send-string c1 (make-string 70000 ?x)))
    (netproc-test-server-state "client after too large" c1)
    ;; Stopped, the server keeps what comes for later, in order.
    (stop-process srv)
    (dotimes (i 3)
      (process-send-string c2 (format "held%d" i)))
    (netproc-test-settle 0.2)
    (netproc-test-server-state "server stopped" srv)
    (continue-process srv)
    (netproc-seqpacket-wait-records srv 11)
    ;; Nobody at the address: no error, no change.
    (netproc-test-server-note :set-free
                              (set-process-datagram-address
                               c1 (vector 127 0 0 1
                                          (netproc-datagram--free-port))))
    (netproc-test-server-note-try :unreachable
      (process-send-string c1 "lost"))
    (netproc-test-settle 0.2)
    (netproc-test-server-state "client after unreachable" c1)
    (delete-process c1)
    (delete-process c2)
    (netproc-test-server-state "client deleted" c1)
    (netproc-test-server-note :deleted-address (process-datagram-address c1)
                              (set-process-datagram-address c1 c1-address))
    (netproc-test-server-note-try :send-deleted
      (process-send-string c1 "x"))
    (delete-process srv)
    (netproc-test-server-contacts "server deleted" srv)))

(netproc-test-server-deftest netproc-test-datagram-server-errors ()
  "A server sending before any peer; a stream process's datagram address."
  (let* ((srv (make-network-process
               :name "dsrv" :server t :type 'datagram :host "127.0.0.1"
               :service t :sentinel #'netproc-test-server-sentinel))
         (stream (make-network-process
                  :name "ssrv" :server t :host "127.0.0.1" :service t)))
    (netproc-test-server-note-try :send-first
      (process-send-string srv "nobody"))
    (netproc-test-server-state "server after send" srv)
    (netproc-test-server-note :contact (process-contact srv t))
    (netproc-test-server-note :stream
                              (process-datagram-address stream)
                              (set-process-datagram-address
                               stream [127 0 0 1 9]))
    (netproc-test-server-note-try :not-process
      (process-datagram-address "dsrv"))
    (delete-process stream)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-datagram-empty-ends ()
  "A zero-length datagram ends a server and a client, data first."
  (let* ((srv (make-network-process
               :name "dsrv" :server t :type 'datagram :host "127.0.0.1"
               :service t :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel))
         (port (netproc-test-register (process-contact srv :service)
                                      '<DSPORT>))
         (c (make-network-process
             :name "dcli" :type 'datagram :host "127.0.0.1" :service port
             :coding 'binary :filter #'netproc-seqpacket-filter
             :sentinel #'netproc-test-server-sentinel)))
    (process-send-string c "hello")
    (netproc-seqpacket-wait-records srv 1)
    ;; The client's port, as the server saw it.
    (let ((c-port (aref (process-datagram-address srv) 4)))
      (netproc-datagram--peer-send "ipv4" port "from-c" "" "never")
      (netproc-test-server-wait-gone srv)
      (netproc-datagram--peer-send "ipv4" c-port "to-c" "" "never")
      (netproc-test-server-wait-gone c))
    (netproc-test-settle 0.2)
    (netproc-test-server-state "server" srv)
    (netproc-test-server-state "client" c)
    (netproc-test-server-note :addresses (process-datagram-address srv)
                              (process-datagram-address c))
    (netproc-test-server-note-try :send-closed (process-send-string c "x"))
    (delete-process c)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-datagram-ipv6 ()
  "An IPv6 datagram client of a plain C echo peer; an IPv6 server."
  (let* ((port (netproc-datagram--echo-peer "ipv6" 4))
         (c (make-network-process
             :name "d6" :type 'datagram :host "::1" :service port
             :coding 'binary :filter #'netproc-seqpacket-filter
             :sentinel #'netproc-test-server-sentinel))
         (srv (make-network-process
               :name "d6srv" :server t :type 'datagram :family 'ipv6
               :service t :coding 'binary
               :filter #'netproc-seqpacket-filter)))
    (netproc-test-server-contacts "client" c)
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-note :addresses (process-datagram-address c)
                              (process-datagram-address srv))
    (dolist (s (list "one" (make-string 6000 ?G) (make-string 65507 ?H)
                     "four"))
      (process-send-string c s))
    (netproc-seqpacket-wait-records c 4)
    (netproc-test-server-note :set-v4 (set-process-datagram-address
                                       c [127 0 0 1 9]))
    (delete-process c)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-datagram-local ()
  "Unix datagrams: an unbound client, a bound C peer, missing paths."
  (let* ((dir (netproc-test-tmpdir))
         (path (expand-file-name "dg" dir))
         (srv (make-network-process
               :name "ldsrv" :server t :family 'local :type 'datagram
               :service path :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel))
         (c (make-network-process
             :name "ldcli" :family 'local :type 'datagram :service path
             :coding 'binary :filter #'netproc-seqpacket-filter
             :sentinel #'netproc-test-server-sentinel))
         (nowhere (make-network-process
                   :name "ldnone" :family 'local :type 'datagram
                   :service (expand-file-name "none" dir))))
    (netproc-test-server-state "server" srv)
    (netproc-test-server-state "client" c)
    (netproc-test-server-state "client of nothing" nowhere)
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-contacts "client" c)
    (netproc-test-server-note :addresses (process-datagram-address srv)
                              (process-datagram-address c))
    (dolist (s (list "one" (make-string 100000 ?J) "three"))
      (process-send-string c s))
    (netproc-seqpacket-wait-records srv 3)
    ;; An unbound sender cannot be answered.
    (netproc-test-server-note :from-unbound (process-datagram-address srv))
    (netproc-test-server-note-try :reply-unbound
      (process-send-string srv "back"))
    ;; A bound one, gone by the time the server answers.
    (netproc-datagram--peer-send "unix" path "from-peer")
    (netproc-seqpacket-wait-records srv 4)
    (netproc-test-server-note :from-peer (process-datagram-address srv))
    (netproc-test-server-note-try :reply-gone
      (process-send-string srv "back"))
    (netproc-test-server-note-try :to-nothing
      (process-send-string nowhere "x"))
    (netproc-test-server-state "after errors" srv)
    (delete-process nowhere)
    (delete-process c)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-datagram-server-remote ()
  ":remote on a datagram server is where it sends first, if it fits."
  (let* ((rcv (netproc-datagram--builtin-server "rcv"))
         (rport (netproc-test-register (netproc-datagram--builtin-port rcv)
                                       '<RCVPORT>))
         (srv (make-network-process
               :name "dsrv" :server t :type 'datagram :host "127.0.0.1"
               :service t :remote (vector 127 0 0 1 rport) :noquery t))
         (srv6 (make-network-process
                :name "dsrv6" :server t :type 'datagram :host "127.0.0.1"
                :service t :remote [0 0 0 0 0 0 0 1 9] :noquery t)))
    (netproc-test-server-note :addresses (process-datagram-address srv)
                              (process-datagram-address srv6))
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-contacts "server, :remote of another family" srv6)
    (process-send-string srv "first")
    (netproc-seqpacket-wait-records rcv 1)
    (delete-process srv)
    (delete-process srv6)
    (netproc-datagram--builtin-delete rcv)))

(netproc-test-server-deftest netproc-test-datagram-client-options ()
  "A datagram client gets no option when made; later ones are set."
  (let* ((port (netproc-datagram--free-port))
         (c (make-network-process
             :name "dopt" :type 'datagram :host "127.0.0.1" :service port
             :bindtodevice "no-such-dev0" :broadcast t)))
    (netproc-test-server-state "client" c)
    (netproc-test-server-note :contact (process-contact c t))
    (netproc-test-server-note-try :keepalive
      (netproc-options--set c :keepalive t))
    (netproc-test-server-note-try :device
      (netproc-options--set c :bindtodevice "no-such-dev0"))
    (delete-process c)))

;;;; Interop: one side always builtin

(netproc-test-server-deftest netproc-test-datagram-client-to-builtin-server ()
  "A datagram client (builtin, then netproc) and a builtin server."
  (let* ((srv (netproc-datagram--builtin-server "bsrv"))
         (port (netproc-test-register (netproc-datagram--builtin-port srv)
                                      '<BSPORT>))
         (c (make-network-process
             :name "dcli" :type 'datagram :host "127.0.0.1" :service port
             :coding 'binary :filter #'netproc-seqpacket-filter
             :sentinel #'netproc-test-server-sentinel)))
    (dolist (s (list "one" (make-string 3000 ?c) "three"))
      (process-send-string c s))
    (netproc-seqpacket-wait-records srv 3)
    (netproc-datagram--builtin-send srv "back1")
    (netproc-datagram--builtin-send srv (make-string 6000 ?G))
    (netproc-seqpacket-wait-records c 2)
    (delete-process c)
    (netproc-datagram--builtin-delete srv)))

(netproc-test-server-deftest netproc-test-datagram-builtin-client-to-server ()
  "A datagram server (builtin, then netproc) and two builtin clients."
  (let* ((srv (make-network-process
               :name "dsrv" :server t :type 'datagram :host "127.0.0.1"
               :service t :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel))
         (port (netproc-test-register (process-contact srv :service)
                                      '<DSPORT>))
         (b1 (netproc-datagram--builtin-client "b1" port))
         (b2 (netproc-datagram--builtin-client "b2" port)))
    (netproc-datagram--builtin-send b1 "from-b1")
    (netproc-seqpacket-wait-records srv 1)
    (process-send-string srv "to-b1")
    (netproc-seqpacket-wait-records b1 1)
    (netproc-datagram--builtin-send b2 (make-string 6000 ?G))
    (netproc-seqpacket-wait-records srv 2)
    (process-send-string srv "to-b2")
    (netproc-seqpacket-wait-records b2 1)
    (netproc-datagram--builtin-delete b1)
    (netproc-datagram--builtin-delete b2)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-datagram-filter-replies ()
  "A server's filter answers each datagram: the answer goes to its sender.
Two builtin clients send at once, so the server reads datagrams of both
before its filter runs; each answer must still reach its own sender."
  (let* ((srv (make-network-process
               :name "dsrv" :server t :type 'datagram :host "127.0.0.1"
               :service t :coding 'binary
               :filter (lambda (proc string)
                         (process-send-string proc (concat "re:" string)))))
         (port (netproc-test-register (process-contact srv :service)
                                      '<DSPORT>))
         ;; What each client gets, kept out of the trace: the two
         ;; clients' answers interleave differently from run to run.
         (got1 nil) (got2 nil)
         (b1 (netproc-datagram--builtin-client
              "b1" port (lambda (_p s) (push s got1))))
         (b2 (netproc-datagram--builtin-client
              "b2" port (lambda (_p s) (push s got2)))))
    (dotimes (i 20)
      (netproc-datagram--builtin-send b1 (format "b1-%d" i))
      (netproc-datagram--builtin-send b2 (format "b2-%d" i)))
    (netproc-test-wait-until (lambda () (and (>= (length got1) 20)
                                             (>= (length got2) 20)))
                             nil 'answers)
    (netproc-test-server-note
     :all-answered-to-sender
     (sort (copy-sequence got1) #'string<)
     (sort (copy-sequence got2) #'string<))
    (netproc-datagram--builtin-delete b1)
    (netproc-datagram--builtin-delete b2)
    (delete-process srv)))

;;;; Deliberate differences

(netproc-test-server-deftest netproc-test-datagram-nowait ()
  "A :nowait datagram client: stuck in `connect' on the builtin, open here.
The builtin's would never send (its sends hang), so nothing is sent on
that side."
  (let* ((port (netproc-datagram--echo-peer "ipv4" 1))
         (got nil)
         (c (make-network-process
             :name "dnw" :type 'datagram :host "127.0.0.1" :service port
             :nowait t :coding 'binary
             :filter (lambda (_proc string) (push string got)))))
    (netproc-test-settle 0.3)
    (netproc-test-note-deliberate :status
        '(:value connect) '(:value open) (process-status c))
    (when (eq (process-status c) 'open)
      (process-send-string c "ping")
      (netproc-test-wait-until (lambda () got) nil 'echo))
    (netproc-test-note-deliberate :echo '(:value nil) '(:value ("ping")) got)
    (delete-process c)))

(provide 'netproc-datagram-tests)
;;; netproc-datagram-tests.el ends here
