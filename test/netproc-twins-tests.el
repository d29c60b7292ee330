;;; netproc-twins-tests.el --- Differential tests of every twin and failure  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Scenarios for the twins and keywords that netproc-client-tests.el
;; leaves out or touches only in passing: coding systems and
;; multibyteness on every value, the inherit-coding flag, datagram
;; addresses of stream connections, lookups by name, buffer and object,
;; the process list, the process mark after a buffer change, property
;; lists, the query flag, the return values of the wait function,
;; `:local' on a client, and the failures: a peer resetting with data
;; in flight, sending after a delete, deleting a pending connect,
;; killing a connection's buffer, the kill-buffer query, errors in
;; sentinels.
;;
;; Every scenario is written with the builtin names and run twice (see
;; `netproc-test-deftest').  Functions the harness does not rename
;; (`process-tty-name', the inherit-coding flag pair,
;; `process-kill-buffer-query-function') are called with
;; `netproc-test-call'.  No scenario makes the builtin write to a peer
;; that has gone away, nor asks the exit status of a process that is
;; still connecting.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

;;;; Helpers (side-aware: they may be called from scenario bodies)

(defun netproc-twins--connect (peer name &rest args)
  "Connect to PEER over IPv4 as NAME, with the extra keyword ARGS.
Use the side being run; return the new process or netproc."
  (apply (netproc-test-fn 'make-network-process)
         :name name :host "127.0.0.1" :service (netproc-test-peer-port peer)
         args))

(defun netproc-twins--state (label proc)
  "Record (:state LABEL STATUS EXIT LIVE COMMAND LISTED) for PROC.
The exit status is not asked while PROC is connecting."
  (let ((status (netproc-test-call 'process-status proc)))
    (netproc-test-note
     :state label status
     (if (eq status 'connect)
         :not-asked
       (netproc-test-call 'process-exit-status proc))
     (netproc-test-call 'process-live-p proc)
     (netproc-test-call 'process-command proc)
     (and (memq proc (netproc-test-call 'process-list)) t))))

(defun netproc-twins--data ()
  "Return the data the recording filters got so far, concatenated."
  (apply #'concat
         (mapcar (lambda (e) (nth 2 e))
                 (cl-remove-if-not (lambda (e) (memq (car e) '(:filter :chunk)))
                                   (reverse netproc-test--trace)))))

(defun netproc-twins--seen (tag &optional message)
  "Return non-nil if the trace has an entry TAG.
With MESSAGE, the entry's third element must be `equal' to it."
  (cl-find-if (lambda (e) (and (eq (car e) tag)
                               (or (null message) (equal (nth 2 e) message))))
              netproc-test--trace))

(defun netproc-twins--sentinel-seen (proc &optional message)
  "Return non-nil if the recording sentinel ran for PROC.
With MESSAGE, it must have run with that message."
  (cl-find-if (lambda (e) (and (eq (car e) :sentinel) (eq (nth 1 e) proc)
                               (or (null message) (equal (nth 2 e) message))))
              netproc-test--trace))

(defun netproc-twins--names ()
  "Return the names in the process list of the side being run."
  (netproc-test-names (netproc-test-call 'process-list)))

(defun netproc-twins--text (buffer)
  "Return the text of BUFFER (a buffer or a name), or nil if it is gone."
  (let ((b (get-buffer buffer)))
    (and (buffer-live-p b)
         (with-current-buffer b
           (save-restriction (widen) (buffer-substring-no-properties
                                      (point-min) (point-max)))))))

(defmacro netproc-twins--asking (answer &rest body)
  "Evaluate BODY with `yes-or-no-p' answering ANSWER without reading.
Each question is recorded as (:asked PROMPT)."
  (declare (indent 1) (debug t))
  `(cl-letf (((symbol-function 'yes-or-no-p)
              (lambda (prompt) (netproc-test-note :asked prompt) ,answer)))
     ,@body))

(defun netproc-twins--erring-sentinel (proc message)
  "Record (:sentinel-ran PROC MESSAGE), then signal an error."
  (netproc-test-note :sentinel-ran proc message)
  (error "Boom in sentinel: %s" message))

(defun netproc-twins--catch-wait (&optional timeout)
  "Wait in the event loop until an error comes out; return that error.
Wait at most TIMEOUT seconds (default `netproc-test-default-timeout'),
then return :no-error.  Every wait is inside the handler."
  (let ((end (+ (float-time) (or timeout netproc-test-default-timeout)))
        (rounds 0)
        caught)
    (while (and (not caught) (< (float-time) end) (< rounds 5000))
      (condition-case err
          (accept-process-output nil 0.02)
        (error (setq caught err)))
      (setq rounds (1+ rounds)))
    (or caught :no-error)))

(defconst netproc-twins-extra-functions
  '(process-tty-name process-inherit-coding-system-flag
    set-process-inherit-coding-system-flag process-kill-buffer-query-function)
  "Builtin functions with a twin that the harness does not rename.")

;;;; Arguments

(netproc-test-deftest netproc-twins-arity ()
  "Every twin takes the number of arguments its builtin takes."
  (dolist (f (append netproc-test-builtin-functions
                     netproc-twins-extra-functions))
    (netproc-test-note :arity f (func-arity (netproc-test-fn f)))))

;;;; Coding systems

(netproc-test-deftest netproc-twins-coding-system ()
  "Setting coding systems: return value, EOL of the encoding, errors."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "cs" :coding 'utf-8)))
    (netproc-test-note :initial (process-coding-system p))
    (netproc-test-note-try :set-utf-8 (set-process-coding-system p 'utf-8 'utf-8))
    (netproc-test-note :after (process-coding-system p))
    (netproc-test-note-try :set-mixed
      (set-process-coding-system p 'latin-1 'utf-8-dos))
    (netproc-test-note :after (process-coding-system p))
    (process-send-string p "a\nb.")
    (netproc-test-note :peer-got
                       (netproc-test-peer-wait-received
                        peer (lambda (d) (string-suffix-p "." d))))
    (netproc-test-note-try :set-bad-decoding
      (set-process-coding-system p 'nope 'utf-8))
    (netproc-test-note-try :set-bad-encoding
      (set-process-coding-system p 'utf-8 'nope))
    (netproc-test-note-try :set-non-symbol (set-process-coding-system p "utf-8"))
    (netproc-test-note :after-bad (process-coding-system p))
    (netproc-test-note-try :get-by-name (process-coding-system "cs"))
    (netproc-test-note-try :set-by-name
      (set-process-coding-system "cs" 'utf-8 'utf-8))
    (delete-process p)))

(netproc-test-deftest netproc-twins-coding-system-nil ()
  "Setting nil coding systems: the encoding and what decoding nil does."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "csn" :coding 'utf-8
                                    :filter #'netproc-test-filter)))
    (netproc-test-note-try :set-decoding-only
      (set-process-coding-system p 'utf-8-unix))
    (netproc-test-note :after (process-coding-system p))
    (netproc-test-note-try :set-nil (set-process-coding-system p))
    (netproc-test-note :after-nil (process-coding-system p))
    (netproc-test-peer-send peer "a\303\251\r\nb.")
    (netproc-test-wait-for (string-suffix-p "." (netproc-twins--data)))
    (netproc-test-note :after-nil-data (process-coding-system p))
    (delete-process p)))

(netproc-test-deftest netproc-twins-coding-system-closed ()
  "The coding systems of a connection the peer closed, then deleted."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "csc" :coding 'utf-8
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-peer-close peer)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-note :closed (process-coding-system p))
    (netproc-test-note-try :set-closed (set-process-coding-system p 'utf-8 'utf-8))
    (netproc-test-note :closed-after (process-coding-system p))
    (delete-process p)
    (netproc-test-note-try :set-deleted
      (set-process-coding-system p 'latin-1 'latin-1))
    (netproc-test-note :deleted (process-coding-system p))))

(netproc-test-deftest netproc-twins-coding-system-kept ()
  "With `delete-exited-processes' nil a closed connection's coding is still set-able."
  (let* ((delete-exited-processes nil)
         (peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "csk" :sentinel #'netproc-test-sentinel)))
    (netproc-test-peer-close peer)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-note-try :set-closed
      (set-process-coding-system p 'latin-1 'latin-1))
    (netproc-test-note :after (process-coding-system p))
    (delete-process p)))

(netproc-test-deftest netproc-twins-coding-system-while-connecting ()
  "Setting the coding systems of a `:nowait' connection still connecting."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "cw" :nowait t
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :status (process-status p))
    (netproc-test-note-try :set (set-process-coding-system p 'latin-1 'latin-1))
    (netproc-test-note :after-set)
    (netproc-test-note :coding (process-coding-system p))
    (netproc-test-wait-for (netproc-twins--seen :sentinel))
    (netproc-test-note :connected (process-status p) (process-coding-system p))
    (delete-process p)))

(netproc-test-deftest netproc-twins-filter-multibyte-values ()
  "The multibyte flag for each decoding, set to t and to nil; when closed."
  (with-suppressed-warnings ((obsolete process-filter-multibyte-p
                                       set-process-filter-multibyte))
    (let ((peer (netproc-test-peer-start)) (n 0))
      (dolist (coding '(utf-8 utf-8-dos latin-1 binary no-conversion raw-text
                              raw-text-dos undecided (binary . utf-8)))
        (let ((p (netproc-twins--connect peer (format "fm%d" n) :coding coding)))
          (netproc-test-note :row coding (process-filter-multibyte-p p)
                             (process-coding-system p))
          (netproc-test-note-try :set-t (set-process-filter-multibyte p t))
          (netproc-test-note :after-t (process-filter-multibyte-p p)
                             (process-coding-system p))
          (netproc-test-note-try :set-nil (set-process-filter-multibyte p nil))
          (netproc-test-note :after-nil (process-filter-multibyte-p p)
                             (process-coding-system p))
          (netproc-test-note-try :set-t-again (set-process-filter-multibyte p 'yes))
          (netproc-test-note :after-t-again (process-filter-multibyte-p p)
                             (process-coding-system p))
          (delete-process p)
          (netproc-test-peer-wait-closed peer n)
          (setq n (1+ n))))
      (let ((p (netproc-twins--connect peer "fmc" :sentinel #'netproc-test-sentinel)))
        (netproc-test-note :open (process-filter-multibyte-p p))
        (netproc-test-peer-close peer n)
        (netproc-test-wait-for (eq (process-status p) 'closed))
        (netproc-test-note :closed (process-filter-multibyte-p p)
                           (process-coding-system p))
        (netproc-test-note-try :set-nil-closed (set-process-filter-multibyte p nil))
        (netproc-test-note :closed-after (process-coding-system p))
        (delete-process p)
        (netproc-test-note :deleted (process-filter-multibyte-p p))
        (netproc-test-note-try :by-name (process-filter-multibyte-p "fmc"))))))

(netproc-test-deftest netproc-twins-inherit-coding-flag ()
  "The inherit-coding-system flag: default, set values, closed, wrong type."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "ih"))
         (q (netproc-twins--connect peer "ih2" :buffer "ih-buf")))
    (netproc-test-note :default
                       (netproc-test-call 'process-inherit-coding-system-flag p)
                       (netproc-test-call 'process-inherit-coding-system-flag q))
    (dolist (flag '(yes t 0 nil))
      (netproc-test-note-try :set
        (netproc-test-call 'set-process-inherit-coding-system-flag p flag))
      (netproc-test-note :get flag
                         (netproc-test-call 'process-inherit-coding-system-flag p)))
    (netproc-test-note-try :get-by-name
      (netproc-test-call 'process-inherit-coding-system-flag "ih"))
    (netproc-test-note-try :set-by-name
      (netproc-test-call 'set-process-inherit-coding-system-flag "ih" t))
    (delete-process p)
    (netproc-test-note-try :set-deleted
      (netproc-test-call 'set-process-inherit-coding-system-flag p t))
    (netproc-test-note-try :get-deleted
      (netproc-test-call 'process-inherit-coding-system-flag p))
    (delete-process q)))

;;;; Datagram addresses, lookups, the process list

(netproc-test-deftest netproc-twins-datagram-address-stream ()
  "A stream connection has no datagram address, open, closed or deleted."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "dg" :sentinel #'netproc-test-sentinel)))
    (netproc-test-note-try :get (process-datagram-address p))
    (netproc-test-note-try :set-v6
      (set-process-datagram-address p (vector 0 0 0 0 0 0 0 1 9)))
    (netproc-test-note-try :set-string (set-process-datagram-address p "/tmp/x"))
    (netproc-test-note-try :set-42 (set-process-datagram-address p 42))
    (netproc-test-note-try :get-by-name (process-datagram-address "dg"))
    (netproc-test-note-try :set-by-name
      (set-process-datagram-address "dg" (vector 127 0 0 1 9)))
    (netproc-test-peer-close peer)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-note-try :get-closed (process-datagram-address p))
    (netproc-test-note-try :set-closed
      (set-process-datagram-address p (vector 127 0 0 1 9)))
    (delete-process p)
    (netproc-test-note-try :get-deleted (process-datagram-address p))))

(netproc-test-deftest netproc-twins-datagram-address-while-connecting ()
  "Asking a connecting `:nowait' connection for its datagram address waits."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "dgw" :nowait t
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :status (process-status p))
    (netproc-test-note-try :get (process-datagram-address p))
    (netproc-test-note :after-get)
    (netproc-test-wait-for (netproc-twins--seen :sentinel))
    (netproc-test-note :open (process-status p))
    (delete-process p))
  (let* ((peer (netproc-test-peer-start))
         (q (netproc-twins--connect peer "dgw2" :nowait t
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :status (process-status q))
    (netproc-test-note-try :set
      (set-process-datagram-address q (vector 127 0 0 1 9)))
    (netproc-test-note :after-set)
    (netproc-test-wait-for (netproc-twins--sentinel-seen q "open\n"))
    (netproc-test-note :open (process-status q))
    (delete-process q)))

(netproc-test-deftest netproc-twins-get-process ()
  "Looking a connection up by name, by object, by buffer, and after delete."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "gp" :buffer "gp-buf")))
    (netproc-test-note-try :by-name (eq (get-process "gp") p))
    (netproc-test-note-try :by-object (eq (get-process p) p))
    (netproc-test-note-try :by-buffer (get-process (get-buffer "gp-buf")))
    (netproc-test-note-try :by-buffer-name (get-process "gp-buf"))
    (netproc-test-note-try :nil (get-process nil))
    (netproc-test-note-try :symbol (get-process 'gp))
    (netproc-test-note-try :empty (get-process ""))
    (delete-process p)
    (netproc-test-note-try :deleted-name (get-process "gp"))
    (netproc-test-note-try :deleted-object (eq (get-process p) p))
    (netproc-test-note :processp-deleted (processp p))))

(netproc-test-deftest netproc-twins-list-order-reuse ()
  "The list is newest first, also when a freed name is taken again."
  (let* ((peer (netproc-test-peer-start))
         (a (netproc-twins--connect peer "la"))
         (b (netproc-twins--connect peer "lb"))
         (c (netproc-twins--connect peer "lc"))
         b2 a2)
    (netproc-test-note :list (netproc-twins--names))
    (delete-process b)
    (setq b2 (netproc-twins--connect peer "lb"))
    (netproc-test-note :list (netproc-twins--names))
    (delete-process a)
    (setq a2 (netproc-twins--connect peer "la"))
    (netproc-test-note :list (netproc-twins--names))
    (netproc-test-note :newest (eq (car (process-list)) a2))
    (mapc #'delete-process (list c b2 a2))
    (netproc-test-note :list (netproc-twins--names))))

(netproc-test-deftest netproc-twins-delete-exited-listing ()
  "`delete-exited-processes' t drops a closed connection, nil keeps it.
Sentinels record whether their connection is still listed."
  (let ((peer (netproc-test-peer-start)) (n 0))
    (dolist (dep '(t nil))
      (let* ((delete-exited-processes dep)
             (name (format "de%d" n))
             (p (netproc-twins--connect
                 peer name
                 :sentinel (lambda (proc msg)
                             (netproc-test-note
                              :sentinel proc msg (process-status proc)
                              (and (memq proc (process-list)) t)
                              (get-process (process-name proc)))))))
        (netproc-test-peer-close peer n)
        (netproc-test-wait-for (eq (process-status p) 'closed))
        (netproc-test-note :after dep (and (memq p (process-list)) t)
                           (get-process name) (process-status name))
        (let ((again (netproc-twins--connect peer name)))
          (netproc-test-note :again (process-name again))
          (delete-process again))
        (delete-process p)
        (netproc-test-note :after-delete (and (memq p (process-list)) t)
                           (get-process name))
        (let ((o (netproc-twins--connect
                  peer (format "do%d" n)
                  :sentinel (lambda (proc msg)
                              (netproc-test-note
                               :sentinel proc msg (process-status proc)
                               (and (memq proc (process-list)) t)
                               (get-process (process-name proc)))))))
          (netproc-test-note :open-delete dep)
          (delete-process o))
        (setq n (+ n 3))))))

;;;; Accessors and designators

(netproc-test-deftest netproc-twins-tty-type-id ()
  "The tty name, type and id of a connection, and their argument checks."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "ty" :buffer "ty-buf")))
    (netproc-test-note-try :tty (netproc-test-call 'process-tty-name p))
    (netproc-test-note-try :tty-name (netproc-test-call 'process-tty-name "ty"))
    (netproc-test-note-try :tty-42 (netproc-test-call 'process-tty-name 42))
    (netproc-test-note-try :type (process-type p))
    (netproc-test-note-try :type-buffer (process-type (get-buffer "ty-buf")))
    (netproc-test-note-try :type-buffer-name (process-type "ty-buf"))
    (netproc-test-note-try :type-name (process-type "ty"))
    (netproc-test-note-try :type-current
      (with-current-buffer "ty-buf" (process-type nil)))
    (netproc-test-note-try :type-missing (process-type "no-such-netproc-test"))
    (netproc-test-note-try :type-42 (process-type 42))
    (netproc-test-note-try :id (process-id p))
    (netproc-test-note-try :id-buffer (process-id (get-buffer "ty-buf")))
    (delete-process p)
    (netproc-test-note-try :tty-deleted (netproc-test-call 'process-tty-name p))
    (netproc-test-note-try :type-deleted (process-type p))
    (netproc-test-note-try :type-deleted-name (process-type "ty"))
    (netproc-test-note-try :id-deleted (process-id p))))

(netproc-test-deftest netproc-twins-designators ()
  "Buffers, buffer names, nil and dead buffers as process designators."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "dz" :buffer "dz-buf"
                                    :sentinel #'netproc-test-sentinel))
         (other (get-buffer-create "dz-other"))
         (dead (generate-new-buffer "dz-dead")))
    (kill-buffer dead)
    (netproc-test-peer-conn peer)
    (netproc-test-note-try :status-buffer (process-status (get-buffer "dz-buf")))
    (netproc-test-note-try :status-buffer-name (process-status "dz-buf"))
    (netproc-test-note-try :status-other (process-status other))
    (netproc-test-note-try :status-dead (process-status dead))
    (netproc-test-note-try :send-buffer-name (process-send-string "dz-buf" "1"))
    (netproc-test-note-try :send-buffer (process-send-string (get-buffer "dz-buf") "2"))
    (netproc-test-note-try :send-current
      (with-current-buffer "dz-buf" (process-send-string nil "3")))
    (netproc-test-note :peer-got (netproc-test-peer-wait-received
                                  peer (lambda (d) (equal d "123"))))
    (netproc-test-note-try :send-other (process-send-string other "x"))
    (netproc-test-note-try :send-current-other
      (with-current-buffer other (process-send-string nil "x")))
    (netproc-test-note-try :send-dead (process-send-string dead "x"))
    (netproc-test-note-try :eof-other (with-current-buffer other (process-send-eof)))
    (netproc-test-note-try :eof-dead (process-send-eof dead))
    (netproc-test-note-try :stop-current
      (with-current-buffer "dz-buf" (stop-process)))
    (netproc-test-note-try :stop-buffer (stop-process (get-buffer "dz-buf")))
    (netproc-test-note-try :continue-buffer
      (continue-process (get-buffer "dz-buf")))
    (netproc-test-note-try :contact-buffer (process-contact (get-buffer "dz-buf")))
    (netproc-test-note-try :buffer-by-name (process-buffer "dz"))
    (netproc-test-note-try :delete-other (delete-process other))
    (netproc-test-note-try :delete-dead (delete-process dead))
    (netproc-test-note-try :delete-current
      (with-current-buffer "dz-buf" (delete-process nil)))
    (netproc-twins--state "deleted" p)))

(netproc-test-deftest netproc-twins-live-p-states ()
  "The live predicate and the command in every state of a connection."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "lv" :sentinel #'netproc-test-sentinel)))
    (netproc-twins--state "open" p)
    (stop-process p)
    (netproc-twins--state "stopped" p)
    (continue-process p)
    (netproc-twins--state "continued" p)
    (netproc-test-note :live-args (process-live-p "lv")
                       (process-live-p nil)
                       (process-live-p (get-buffer-create "lv-buf")))
    (netproc-test-peer-close peer)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-twins--state "closed by peer" p)
    (delete-process p)
    (netproc-twins--state "deleted" p)
    (let ((q (netproc-twins--connect peer "lv2" :nowait t :stop t
                                     :sentinel #'netproc-test-sentinel)))
      ;; Its exit status is not asked: Emacs 28.2 crashes while it connects.
      (netproc-test-note :connecting-stopped (process-status q)
                         (process-live-p q) (process-command q))
      (netproc-test-wait-for (netproc-twins--sentinel-seen q "open\n"))
      (netproc-twins--state "connected, stopped" q)
      (continue-process q)
      (netproc-twins--state "connected" q)
      (delete-process q)
      (netproc-twins--state "deleted" q))
    (let ((r (make-network-process :name "lv3" :host "127.0.0.1"
                                   :service (netproc-test-refused-port)
                                   :nowait t :sentinel #'netproc-test-sentinel)))
      (netproc-twins--state "connecting" r)
      (netproc-test-wait-for
       (netproc-twins--sentinel-seen r "failed with code 111\n"))
      (netproc-twins--state "failed" r)
      (stop-process r)
      (netproc-twins--state "failed, stopped" r)
      (delete-process r)
      (netproc-twins--state "deleted" r))))

(netproc-test-deftest netproc-twins-mark-after-set-buffer ()
  "Where the process mark is after changing the buffer, and where text goes."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "mk" :buffer "mk-a"))
         (b (get-buffer-create "mk-b"))
         (dead (generate-new-buffer "mk-dead")))
    (kill-buffer dead)
    (with-current-buffer "mk-a" (insert "AAAA"))
    (netproc-test-note :a (process-mark p))
    (with-current-buffer b (insert "hello world") (goto-char 3))
    (netproc-test-note-try :set-b (set-process-buffer p b))
    (netproc-test-note :b (process-mark p))
    (netproc-test-peer-send peer "X")
    (netproc-test-wait-for (string-match-p "X" (netproc-twins--text b)))
    (netproc-test-note :b-text (netproc-twins--text b) (process-mark p)
                       (with-current-buffer b (point)))
    (netproc-test-note-try :set-same (set-process-buffer p b))
    (netproc-test-note :same (process-mark p))
    (netproc-test-note-try :set-nil (set-process-buffer p nil))
    (netproc-test-note :nil (process-mark p))
    (netproc-test-note-try :set-a (set-process-buffer p (get-buffer "mk-a")))
    (netproc-test-note :a-again (process-mark p))
    (netproc-test-peer-send peer "Y")
    (netproc-test-wait-for (string-match-p "Y" (netproc-twins--text "mk-a")))
    (netproc-test-note :a-text (netproc-twins--text "mk-a") (process-mark p))
    (netproc-test-note-try :set-name (set-process-buffer p "mk-a"))
    (netproc-test-note-try :set-dead (set-process-buffer p dead))
    (netproc-test-note :dead (process-buffer p) (process-mark p))
    (netproc-test-peer-send peer "Z")
    (netproc-test-settle 0.2)
    (netproc-test-note :texts (netproc-twins--text "mk-a") (netproc-twins--text b))
    (delete-process p)))

(netproc-test-deftest netproc-twins-plist-get-put ()
  "Property list functions: return values, odd lists, names, deleted."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "pp")))
    (netproc-test-note-try :put (process-put p 'a 1))
    (netproc-test-note-try :put-again (process-put p 'a 2))
    (netproc-test-note-try :put-other (process-put p 'b 3))
    (netproc-test-note-try :get (process-get p 'a))
    (netproc-test-note-try :get-missing (process-get p 'z))
    (netproc-test-note-try :set-nil (set-process-plist p nil))
    (netproc-test-note :plist (process-plist p))
    (netproc-test-note-try :set-vector (set-process-plist p [1 2]))
    (netproc-test-note-try :set-string (set-process-plist p "str"))
    (netproc-test-note-try :set-dotted (set-process-plist p (cons 'a 'b)))
    (netproc-test-note :plist (process-plist p))
    (netproc-test-note-try :set-list (set-process-plist p (list 'k 'v)))
    (netproc-test-note-try :get-by-name (process-get "pp" 'k))
    (netproc-test-note-try :put-by-name (process-put "pp" 'k 'w))
    (netproc-test-note-try :plist-by-name (process-plist "pp"))
    (delete-process p)
    (netproc-test-note-try :put-deleted (process-put p 'z 9))
    (netproc-test-note-try :get-deleted (process-get p 'z))
    (netproc-test-note :plist (process-plist p))))

(netproc-test-deftest netproc-twins-query-flag-values ()
  "The query flag setter returns its argument; open, closed, deleted."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "qf" :sentinel #'netproc-test-sentinel)))
    (dolist (flag '(0 "s" nil t))
      (netproc-test-note-try :set (set-process-query-on-exit-flag p flag))
      (netproc-test-note :get flag (process-query-on-exit-flag p)))
    (netproc-test-note-try :set-by-name (set-process-query-on-exit-flag "qf" nil))
    (netproc-test-note-try :get-by-name (process-query-on-exit-flag "qf"))
    (netproc-test-peer-close peer)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-note-try :set-closed (set-process-query-on-exit-flag p nil))
    (netproc-test-note :get-closed (process-query-on-exit-flag p))
    (delete-process p)
    (netproc-test-note-try :set-deleted (set-process-query-on-exit-flag p 'x))
    (netproc-test-note :get-deleted (process-query-on-exit-flag p))))

(netproc-test-deftest netproc-twins-local-ignored ()
  "`:local' on a client is ignored; the contact gets the real address."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "lo" :local (vector 127 0 0 1 1)
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :status (process-status p))
    (netproc-test-note :contact-t (process-contact p t))
    (netproc-test-note :local-port-given (equal (process-contact p :local)
                                                (vector 127 0 0 1 1)))
    (netproc-test-peer-conn peer)
    (process-send-string p "ok")
    (netproc-test-note :peer-got (netproc-test-peer-wait-received
                                  peer (lambda (d) (equal d "ok"))))
    (delete-process p)))

;;;; Waiting

(netproc-test-deftest netproc-twins-accept-output-values ()
  "Return values of the wait function with MILLISEC, JUST-THIS-ONE, stopped."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "ao" :filter #'netproc-test-filter)))
    (netproc-test-peer-conn peer)
    (netproc-test-note :nothing-ms (accept-process-output p 0 100))
    (netproc-test-peer-send peer "a")
    (netproc-test-note :pending-ms (accept-process-output p 0 2000))
    (netproc-test-peer-send peer "b")
    (netproc-test-note :pending-ms-only (accept-process-output p nil 2000))
    (netproc-test-peer-send peer "c")
    (netproc-test-note :just-this-one (accept-process-output p 2 nil t))
    (stop-process p)
    (netproc-test-peer-send peer "d")
    (netproc-test-note :stopped (accept-process-output p 0.3))
    (continue-process p)
    (netproc-test-wait-for (equal (netproc-twins--data) "abcd"))
    (netproc-test-note-try :bad-seconds (accept-process-output p "x"))
    (netproc-test-note-try :bad-millisec (accept-process-output p 0 "x"))
    (netproc-test-note-try :float-with-millisec (accept-process-output p 0.05 10))
    (netproc-test-note-try :by-name (accept-process-output "ao" 0.05))
    (delete-process p)
    (let ((start (float-time)))
      (netproc-test-note :deleted (accept-process-output p 1))
      (netproc-test-note :deleted-quick (< (- (float-time) start) 0.5)))))

;;;; Failures

(netproc-test-deftest netproc-twins-peer-reset-with-data ()
  "The peer sends, then resets: the data comes first, then the close."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "rd" :filter #'netproc-test-filter
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-peer-conn peer)
    (netproc-test-peer-send peer "before reset")
    (netproc-test-peer-reset peer)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-settle 0.1)
    (netproc-twins--state "reset" p)
    (netproc-test-note :get (get-process "rd"))
    (netproc-test-note :contact-remote (process-contact p :remote))
    (netproc-test-note-try :send-eof (process-send-eof p))
    (delete-process p)
    (netproc-twins--state "deleted" p)))

(netproc-test-deftest netproc-twins-peer-reset-while-stopped ()
  "The peer sends and resets while the connection is stopped."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "rs" :filter #'netproc-test-filter
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-peer-conn peer)
    (stop-process p)
    (netproc-test-peer-send peer "held")
    (netproc-test-peer-reset peer)
    (netproc-test-settle 0.3)
    (netproc-twins--state "stopped" p)
    (continue-process p)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-settle 0.1)
    (netproc-twins--state "continued" p)
    (delete-process p)))

(netproc-test-deftest netproc-twins-send-after-delete ()
  "Sending on a deleted connection signals; by name it no longer exists."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "sd" :sentinel #'netproc-test-sentinel)))
    (netproc-test-peer-conn peer)
    (delete-process p)
    (netproc-test-note-try :send (process-send-string p "x"))
    (netproc-test-note-try :send-region
      (with-temp-buffer (insert "abc") (process-send-region p 1 3)))
    (netproc-test-note-try :send-eof (process-send-eof p))
    (netproc-test-note-try :send-by-name (process-send-string "sd" "x"))
    (netproc-test-note-try :eof-by-name (process-send-eof "sd"))
    (netproc-test-peer-wait-closed peer)
    (netproc-test-note :peer-got (netproc-test-peer-received peer))
    (netproc-test-note :peer (netproc-test-peer-messages peer))))

(netproc-test-deftest netproc-twins-delete-pending-refused ()
  "Deleting a `:nowait' connect that will be refused: only \"deleted\\n\"."
  (let* ((port (netproc-test-refused-port))
         (p (make-network-process :name "dpr" :host "127.0.0.1" :service port
                                  :nowait t :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :status (process-status p))
    (netproc-test-note-try :delete (delete-process p))
    (netproc-twins--state "deleted" p)
    (netproc-test-settle 0.3)
    (netproc-twins--state "later" p)
    (netproc-test-note :contact-no-block (process-contact p t t))
    (netproc-test-note-try :send (process-send-string p "x"))
    (netproc-test-note :list (netproc-twins--names))))

;;;; Killing buffers

(netproc-test-deftest netproc-twins-kill-buffer-closed ()
  "Killing the buffer of a connection the peer closed runs no sentinel."
  (let ((peer (netproc-test-peer-start)) (n 0))
    (dolist (dep '(t nil))
      (let* ((delete-exited-processes dep)
             (kill-buffer-query-functions nil)
             (buffer (format "kc%d-buf" n))
             (p (netproc-twins--connect peer (format "kc%d" n) :buffer buffer
                                        :sentinel #'netproc-test-sentinel)))
        (netproc-test-peer-close peer n)
        (netproc-test-wait-for (eq (process-status p) 'closed))
        (netproc-twins--state "closed" p)
        (netproc-test-note :kill (kill-buffer buffer))
        (netproc-twins--state "after kill-buffer" p)
        (netproc-test-note :buffer (process-buffer p))
        (delete-process p)
        (setq n (1+ n))))))

(netproc-test-deftest netproc-twins-kill-buffer-two-connections ()
  "Killing a buffer shared by two connections; kill-buffer-hook sees them open."
  (let* ((kill-buffer-query-functions nil)
         (peer (netproc-test-peer-start))
         (a (netproc-twins--connect peer "k1" :buffer "kk-buf"
                                    :sentinel #'netproc-test-sentinel))
         (b (netproc-twins--connect peer "k2" :buffer "kk-buf"
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-peer-conn peer 1)
    (with-current-buffer "kk-buf"
      (add-hook 'kill-buffer-hook
                (lambda ()
                  (netproc-test-note :late-hook (process-status a)
                                     (process-status b)))
                90 t))
    (netproc-test-note :kill (kill-buffer "kk-buf"))
    (netproc-twins--state "a" a)
    (netproc-twins--state "b" b)
    (netproc-test-note :buffers (process-buffer a) (process-buffer b))))

(netproc-test-deftest netproc-twins-kill-buffer-query ()
  "The kill-buffer query asks about live, flagged connections only."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "kq" :buffer "kq-buf"
                                    :sentinel #'netproc-test-sentinel))
         (q (netproc-twins--connect peer "kq2" :buffer "kq2-buf" :noquery t))
         (empty (get-buffer-create "kq-empty")))
    (netproc-twins--asking nil
      (with-current-buffer "kq-buf"
        (netproc-test-note :open
                           (netproc-test-call 'process-kill-buffer-query-function)))
      (with-current-buffer "kq2-buf"
        (netproc-test-note :noquery
                           (netproc-test-call 'process-kill-buffer-query-function)))
      (with-current-buffer empty
        (netproc-test-note :no-process
                           (netproc-test-call 'process-kill-buffer-query-function)))
      (stop-process p)
      (with-current-buffer "kq-buf"
        (netproc-test-note :stopped
                           (netproc-test-call 'process-kill-buffer-query-function)))
      (continue-process p)
      (set-process-query-on-exit-flag p nil)
      (with-current-buffer "kq-buf"
        (netproc-test-note :flag-off
                           (netproc-test-call 'process-kill-buffer-query-function)))
      (set-process-query-on-exit-flag p t)
      (netproc-test-note :kill-refused (kill-buffer "kq-buf")
                         (buffer-live-p (get-buffer "kq-buf"))
                         (process-status p)))
    (netproc-twins--asking t
      (netproc-test-note :kill-accepted (kill-buffer "kq-buf")
                         (buffer-live-p (get-buffer "kq-buf")))
      (netproc-twins--state "killed" p)
      (netproc-test-note :kill-noquery (kill-buffer "kq2-buf"))
      (netproc-twins--state "killed noquery" q))
    (let* ((delete-exited-processes nil)
           (r (netproc-twins--connect peer "kq3" :buffer "kq3-buf"
                                      :sentinel #'netproc-test-sentinel)))
      (netproc-test-peer-close peer 2)
      (netproc-test-wait-for (eq (process-status r) 'closed))
      (netproc-twins--asking nil
        (with-current-buffer "kq3-buf"
          (netproc-test-note :closed
                             (netproc-test-call
                              'process-kill-buffer-query-function))))
      (delete-process r))))

;;;; Reading held back, stopped connects

(netproc-test-deftest netproc-twins-filter-t-default-filter ()
  "Filter t holds data back; the default filter then writes it and the close."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "ftb" :buffer "ftb-buf")))
    (netproc-test-peer-conn peer)
    (netproc-test-note-try :set-t (set-process-filter p t))
    (netproc-test-peer-send peer "held")
    (netproc-test-settle 0.2)
    (netproc-test-note :held (netproc-twins--text "ftb-buf"))
    (netproc-test-peer-close peer)
    (netproc-test-settle 0.2)
    (netproc-test-note :status (process-status p))
    (netproc-test-note-try :restore (set-process-filter p nil))
    (netproc-test-note :filter (process-filter p))
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-test-note :final (netproc-twins--text "ftb-buf")
                       (process-mark p))
    (delete-process p)))

(netproc-test-deftest netproc-twins-stop-nowait-data ()
  "`:stop t :nowait t': \"open\\n\" while stopped, data only after continuing."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "sn" :nowait t :stop t
                                    :filter #'netproc-test-filter
                                    :sentinel #'netproc-test-sentinel)))
    (netproc-test-wait-for (netproc-twins--seen :sentinel))
    (netproc-test-peer-send peer "while stopped")
    (netproc-test-settle 0.3)
    (netproc-test-note :marker "still stopped")
    (netproc-twins--state "stopped" p)
    (continue-process p)
    (netproc-test-wait-for (equal (netproc-twins--data) "while stopped"))
    (netproc-twins--state "continued" p)
    (stop-process p)
    (netproc-test-peer-close peer)
    (netproc-test-settle 0.2)
    (netproc-twins--state "stopped, peer closed" p)
    (continue-process p)
    (netproc-test-wait-for (eq (process-status p) 'closed))
    (netproc-twins--state "continued after close" p)
    (delete-process p)))

;;;; Errors in sentinels

(netproc-test-deftest netproc-twins-sentinel-error-in-delete ()
  "With `debug-on-error' a sentinel error comes out of the delete."
  (let ((peer (netproc-test-peer-start)) (n 0))
    (dolist (dep '(t nil))
      (let* ((delete-exited-processes dep)
             (debug-on-error t)
             (p (netproc-twins--connect peer (format "sed%d" n)
                                        :sentinel #'netproc-twins--erring-sentinel)))
        (netproc-test-peer-conn peer n)
        (netproc-test-note-try :delete (delete-process p))
        (netproc-twins--state "after" p)
        (set-process-sentinel p #'ignore)
        (netproc-test-note-try :delete-again (delete-process p))
        (netproc-twins--state "deleted again" p)
        (setq n (1+ n))))))

(netproc-test-deftest netproc-twins-sentinel-error-nowait ()
  "With `debug-on-error' errors in \"open\" and \"failed\" sentinels come out."
  (let* ((debug-on-error t)
         (peer (netproc-test-peer-start))
         (p (netproc-twins--connect peer "seo" :nowait t
                                    :sentinel #'netproc-twins--erring-sentinel)))
    (netproc-test-note :caught (netproc-twins--catch-wait))
    (netproc-twins--state "opened" p)
    (set-process-sentinel p #'ignore)
    (delete-process p))
  (let* ((debug-on-error t)
         (q (make-network-process :name "sef" :host "127.0.0.1"
                                  :service (netproc-test-refused-port)
                                  :nowait t
                                  :sentinel #'netproc-twins--erring-sentinel)))
    (netproc-test-note :caught (netproc-twins--catch-wait))
    (netproc-twins--state "failed" q)
    (set-process-sentinel q #'ignore)
    (delete-process q)))

(netproc-test-deftest netproc-twins-sentinel-error-in-send ()
  "A \"failed\" sentinel error comes out of a send waiting for the connect."
  (let* ((debug-on-error t)
         (p (make-network-process :name "ses" :host "127.0.0.1"
                                  :service (netproc-test-refused-port)
                                  :nowait t
                                  :sentinel #'netproc-twins--erring-sentinel)))
    (netproc-test-note-try :send (process-send-string p "x"))
    (netproc-twins--state "after send" p)
    (netproc-test-note-try :send-again (process-send-string p "x"))
    (set-process-sentinel p #'ignore)
    (delete-process p)))

(netproc-test-deftest netproc-twins-split-characters ()
  "A character cut between two reads arrives whole, whatever the decoding."
  (let ((peer (netproc-test-peer-start))
        (n 0))
    (dolist (case '((utf-8 "a\303" "\251z")
                    (euc-jp "a\244" "\242z")
                    (shift_jis "a\202" "\240z")
                    (utf-8 "x\360\237" "\230\200y")
                    (utf-8-dos "a\r" "\nb")
                    (latin-1 "a\351" "b")))
      (let* ((got nil)
             (p (make-network-process
                 :name "split" :host "127.0.0.1" :coding (car case)
                 :service (netproc-test-peer-port peer)
                 :filter (lambda (_p s) (setq got (append got (list s)))))))
        (netproc-test-peer-conn peer n)
        (dolist (chunk (cdr case))
          (netproc-test-peer-send peer chunk n)
          ;; Each chunk starts or ends with a whole character, so each
          ;; read gives the filter something before the next is sent.
          (let ((before (length got)))
            (netproc-test-wait-until (lambda () (> (length got) before))
                                     5 'chunk-read)))
        (netproc-test-note :case (car case) (mapcar #'substring-no-properties got))
        (delete-process p)
        (setq n (1+ n))))))

(provide 'netproc-twins-tests)
;;; netproc-twins-tests.el ends here
