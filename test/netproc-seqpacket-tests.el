;;; netproc-seqpacket-tests.el --- Differential tests of seqpacket sockets  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; `:type seqpacket' over Unix sockets (`:family local'), the only
;; family where the system has it: clients, servers and the connections
;; they accept, written once with the builtin names and run against the
;; builtin and against netproc (see `netproc-test-deftest').
;;
;; What matters here is the record boundaries, so filters record each
;; call on its own, under the tag :record, which the harness never
;; merges (it merges consecutive :filter entries, as streams are split
;; differently on each side).  Long records are recorded as
;; (:len LENGTH FIRST-CHAR).
;;
;; What the builtin does, as observed (reference §8.12 and these
;; scenarios): one filter call per record, in both directions; a record
;; longer than `read-process-output-max' is cut to it, the rest lost; a
;; record larger than the socket can ever take (some 200 KB) signals
;; (file-error "Writing to process" "Message too long" PROCESS) in the
;; sender and the connection goes on.
;;
;; netproc delivers a long record whole: a deliberate difference.  The
;; scenarios fill each long record with a character of its own, listed
;; in `netproc-seqpacket-long-records' with the record's length; the
;; filter records such a record as (:long CHAR :as-documented) when it
;; has the length the side must give (cut on the builtin, whole on
;; netproc), and with the length it had otherwise, so that a cut record
;; on the netproc side makes the traces differ.
;;
;; The interop scenarios keep one side builtin in both halves: the
;; functions `netproc-seqpacket--builtin-server' and
;; `netproc-seqpacket--builtin-client' are defined outside the scenario
;; bodies, so the renaming of the netproc half does not reach them.  The
;; builtin half is then builtin against builtin; the netproc half is
;; netproc against builtin; the traces must agree.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)
(require 'netproc-server-tests)

;;;; Helpers

(defconst netproc-seqpacket-long-records
  '((?b . 6000) (?d . 5000) (?e . 5000) (?G . 6000) (?H . 65507)
    (?J . 100000))
  "The records and datagrams longer than the builtin reads, by filling.
Each is (CHAR . LENGTH): the scenarios send such a record of LENGTH
characters CHAR, and no other record made of CHAR.")

(defun netproc-seqpacket--shape (string)
  "Return STRING as recorded: itself, or (:len N FIRST-CHAR) when long.
A long record of `netproc-seqpacket-long-records' is recorded as
\(:long CHAR :as-documented) when it has the length the side gives
\(the builtin cuts it to `read-process-output-max'), else as
\(:long CHAR LENGTH)."
  (let* ((n (length string))
         (char (and (> n 0) (aref string 0)))
         (long (and (> n 40) (assq char netproc-seqpacket-long-records))))
    (cond (long
           (if (= n (if (memq netproc-test--side '(netproc compat))
                        (cdr long)
                      (min (cdr long) read-process-output-max)))
               (list :long char :as-documented)
             (list :long char n)))
          ((<= n 40) string)
          (t (list :len n char)))))

(defun netproc-seqpacket-filter (proc string)
  "A filter that records each call as (:record NAME SHAPE) for PROC."
  (netproc-test-server-note :record proc
                            (netproc-seqpacket--shape string)))

(defun netproc-seqpacket--records (proc)
  "Return how many :record entries the running trace has for PROC."
  (let ((name (list :proc (netproc-test-object-name proc))))
    (cl-count-if (lambda (e) (and (eq (car e) :record)
                                  (equal (nth 1 e) name)))
                 netproc-test--trace)))

(defun netproc-seqpacket-wait-records (proc n &optional timeout)
  "Wait until PROC's filter has recorded N records; at most TIMEOUT seconds."
  (netproc-test-wait-until
   (lambda () (>= (netproc-seqpacket--records proc) n))
   timeout (list 'records (netproc-test-object-name proc) n)))

(defun netproc-seqpacket-builtin-sentinel (proc message)
  "A sentinel for the always builtin PROC, recording as the others do."
  (netproc-test-server-note :sentinel proc message (process-status proc)))

(defun netproc-seqpacket--builtin-server (name path)
  "A builtin seqpacket server NAME on PATH, recording as the scenarios do."
  (make-network-process
   :name name :server t :family 'local :type 'seqpacket :service path
   :coding 'binary :noquery t
   :filter #'netproc-seqpacket-filter
   :sentinel #'netproc-seqpacket-builtin-sentinel))

(defun netproc-seqpacket--builtin-client (name path)
  "A builtin seqpacket client NAME of PATH, recording as the scenarios do."
  (make-network-process
   :name name :family 'local :type 'seqpacket :service path
   :coding 'binary :noquery t
   :filter #'netproc-seqpacket-filter
   :sentinel #'netproc-seqpacket-builtin-sentinel))

(defun netproc-seqpacket--builtin-accepted (server-name)
  "The first live builtin process accepted by the builtin SERVER-NAME."
  (let ((p (netproc-test-wait-until
            (lambda ()
              (cl-find-if (lambda (p)
                            (and (string-prefix-p (concat server-name " <")
                                                  (process-name p))
                                 (not (process-contact p :server))))
                          (process-list)))
            nil (list 'builtin-accepted server-name))))
    (netproc-test-server--register-name (process-name p) server-name)
    p))

;;;; Same Emacs: server and client of the same kind

(netproc-test-server-deftest netproc-test-seqpacket-pair ()
  "A seqpacket server and client: records kept both ways, contacts, end."
  (let* ((path (expand-file-name "seq" (netproc-test-tmpdir)))
         (srv (make-network-process
               :name "qsrv" :server t :family 'local :type 'seqpacket
               :service path :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel
               :log #'netproc-test-server-log))
         (c (make-network-process
             :name "qcli" :family 'local :type 'seqpacket :service path
             :coding 'binary
             :filter #'netproc-seqpacket-filter
             :sentinel #'netproc-test-server-sentinel))
         (a (netproc-test-server-accepted "qsrv" 0)))
    (netproc-test-server-state "server" srv)
    (netproc-test-server-state "client" c)
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-contacts "client" c)
    (netproc-test-server-contacts "accepted" a)
    (netproc-test-server-note :type (process-type a) (process-name a))
    ;; Client to server: sizes around the read size of the builtin
    ;; (read-process-output-max, 4096 in batch): the 6000-byte record
    ;; comes out cut to it.
    (netproc-test-note :read-max read-process-output-max)
    (dolist (s (list "one" "two" (make-string 4096 ?a) (make-string 6000 ?b)
                     "" "four"))
      (process-send-string c s))
    (netproc-seqpacket-wait-records a 5)
    ;; Server to client.
    (dolist (s (list "r1" (make-string 100 ?z) "r3"))
      (process-send-string a s))
    (netproc-seqpacket-wait-records c 3)
    ;; Records sent while the reader is stopped stay apart.
    (stop-process a)
    (dotimes (i 5)
      (process-send-string c (format "held%d" i)))
    (netproc-test-server-state "accepted stopped" a)
    (continue-process a)
    (netproc-seqpacket-wait-records a 10)
    ;; A record the socket can never take.
    (netproc-test-server-note-try :too-large
      (process-send-string c (make-string 300000 ?y)))
    (netproc-test-server-state "client after too large" c)
    (process-send-string c "after")
    (netproc-seqpacket-wait-records a 11)
    ;; The server side closes: the client sees the end.
    (delete-process a)
    (netproc-test-server-wait-gone c)
    (netproc-test-server-state "client after peer delete" c)
    (netproc-test-server-state "accepted deleted" a)
    (delete-process c)
    (delete-process srv)
    (netproc-test-server-state "server deleted" srv)))

(netproc-test-server-deftest netproc-test-seqpacket-client-close ()
  "A seqpacket client deletes itself: the accepted connection ends."
  (let* ((path (expand-file-name "seq" (netproc-test-tmpdir)))
         (srv (make-network-process
               :name "qsrv" :server t :family 'local :type 'seqpacket
               :service path :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel))
         (c (make-network-process
             :name "qcli" :family 'local :type 'seqpacket :service path
             :coding 'utf-8 :nowait t
             :filter #'netproc-seqpacket-filter
             ;; Not recorded: its "open\n" and the accepted one's "open
             ;; from -\n" come in either order.
             :sentinel #'ignore))
         (a (netproc-test-server-accepted "qsrv" 0)))
    (netproc-test-wait-for (eq (process-status c) 'open))
    (netproc-test-server-state "nowait client" c)
    (netproc-test-server-contacts "nowait client" c)
    (process-send-string c "héllo")
    (process-send-string c "wörld")
    (netproc-seqpacket-wait-records a 2)
    (delete-process c)
    (netproc-test-server-wait-gone a)
    (netproc-test-server-state "accepted after client delete" a)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-seqpacket-refused ()
  "Seqpacket errors: another family, a missing path, a stream listener."
  (let* ((dir (netproc-test-tmpdir))
         (stream-path (expand-file-name "stream" dir))
         (stream-srv (make-network-process
                      :name "ssrv" :server t :family 'local
                      :service stream-path :noquery t)))
    (netproc-test-server-note-try :ipv4-server
      (make-network-process :name "q4" :server t :type 'seqpacket
                            :host "127.0.0.1" :service t))
    (netproc-test-server-note-try :ipv4-client
      (make-network-process :name "q4c" :type 'seqpacket
                            :host "127.0.0.1" :service 9))
    (netproc-test-server-note-try :missing
      (make-network-process :name "qm" :family 'local :type 'seqpacket
                            :service (expand-file-name "none" dir)))
    (netproc-test-server-note-try :wrong-type
      (make-network-process :name "qw" :family 'local :type 'seqpacket
                            :service stream-path))
    (delete-process stream-srv)))

;;;; Interop: one side always builtin

(netproc-test-server-deftest netproc-test-seqpacket-client-to-builtin-server ()
  "A seqpacket client (builtin, then netproc) and a builtin server."
  (let* ((path (expand-file-name "seq" (netproc-test-tmpdir)))
         (srv (netproc-seqpacket--builtin-server "bsrv" path))
         (c (make-network-process
             :name "qcli" :family 'local :type 'seqpacket :service path
             :coding 'binary
             :filter #'netproc-seqpacket-filter
             :sentinel #'netproc-test-server-sentinel))
         (a (netproc-seqpacket--builtin-accepted "bsrv")))
    (dolist (s (list "one" (make-string 3000 ?c) "three"))
      (process-send-string c s))
    (netproc-test-wait-until
     (lambda () (>= (cl-count-if (lambda (e) (eq (car e) :record))
                                 netproc-test--trace)
                    3))
     nil 'server-records)
    (funcall (intern "process-send-string") a "back1")
    (funcall (intern "process-send-string") a (make-string 5000 ?d))
    (netproc-seqpacket-wait-records c 2)
    (funcall (intern "delete-process") a)
    (netproc-test-server-wait-gone c)
    (netproc-test-server-state "client after server side delete" c)
    (funcall (intern "delete-process") srv)))

(netproc-test-server-deftest netproc-test-seqpacket-builtin-client-to-server ()
  "A seqpacket server (builtin, then netproc) and a builtin client."
  (let* ((path (expand-file-name "seq" (netproc-test-tmpdir)))
         (srv (make-network-process
               :name "qsrv" :server t :family 'local :type 'seqpacket
               :service path :coding 'binary
               :filter #'netproc-seqpacket-filter
               :sentinel #'netproc-test-server-sentinel))
         (c (netproc-seqpacket--builtin-client "bcli" path))
         (a (netproc-test-server-accepted "qsrv" 0)))
    (netproc-test-server-contacts "accepted" a)
    (dolist (s (list "one" (make-string 5000 ?e) "three"))
      (funcall (intern "process-send-string") c s))
    (netproc-seqpacket-wait-records a 3)
    (process-send-string a "back1")
    (process-send-string a (make-string 3000 ?f))
    (process-send-string a "back3")
    (netproc-test-wait-until
     (lambda () (>= (cl-count-if (lambda (e) (eq (car e) :record))
                                 netproc-test--trace)
                    6))
     nil 'client-records)
    (funcall (intern "delete-process") c)
    (netproc-test-server-wait-gone a)
    (netproc-test-server-state "accepted after client delete" a)
    (delete-process srv)))

(provide 'netproc-seqpacket-tests)
;;; netproc-seqpacket-tests.el ends here
