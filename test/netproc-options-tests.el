;;; netproc-options-tests.el --- Differential tests of network options  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; The network options of `make-network-process' (:keepalive, :linger,
;; :priority, ...) at creation and through `set-network-process-option',
;; and `featurep's answers about them.
;;
;; What a socket really got is read from outside, by build/sockopt-peek
;; (test/sockopt-peek.c): it finds the socket by its local port (or a
;; Unix server's path) among this Emacs's descriptors, takes a copy with
;; pidfd_getfd(2) and prints getsockopt()'s answers as a plist.  The
;; builtin's socket and netproc's are read the same way, so the traces
;; compare what each set, not what each says it set.
;;
;; The tests run as root, so :priority above 6 and :bindtodevice "lo"
;; are allowed; an unknown device is ENODEV for everyone.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

(declare-function set-netproc-option "netproc"
                  (netproc option value &optional no-error))
(declare-function netproc-featurep "netproc" (&optional subfeature))

;;;; Helpers (side-aware: they may be called from scenario bodies)

(defconst netproc-options--peek
  (expand-file-name "../build/sockopt-peek"
                    (file-name-directory (or load-file-name buffer-file-name)))
  "The helper that reads a socket's options; `make check-lisp' builds it.")

(defun netproc-options--peek (how what &optional listen)
  "Return the options of this Emacs's socket found by HOW and WHAT.
HOW is `tcp' (WHAT a local port; LISTEN non-nil for the listening
socket), `udp' (WHAT a local port) or `unix' (WHAT a bound path).  The value is the helper's plist,
or (:peek-failed OUTPUT) if it could not read them."
  (with-temp-buffer
    (let ((rc (call-process netproc-options--peek nil t nil
                            (number-to-string (emacs-pid))
                            (symbol-name how)
                            (if (numberp what) (number-to-string what) what)
                            (if listen "listen" ""))))
      (if (eql rc 0)
          (car (read-from-string (buffer-string)))
        (list :peek-failed rc (buffer-string))))))

(defun netproc-options--client-options (proc)
  "Return the options of client PROC's socket (a process or netproc)."
  (netproc-options--peek
   'tcp (let ((local (netproc-test-call 'process-contact proc :local)))
          (aref local (1- (length local))))))

(defun netproc-options--set (proc option value &optional no-error)
  "Set OPTION to VALUE on PROC with the side's function; NO-ERROR as there."
  (if (eq netproc-test--side 'netproc)
      (set-netproc-option proc option value no-error)
    (set-network-process-option proc option value no-error)))

(defun netproc-options--featurep (subfeature)
  "Ask the side whether its `make-network-process' supports SUBFEATURE."
  (if (eq netproc-test--side 'netproc)
      (netproc-featurep subfeature)
    (featurep 'make-network-process subfeature)))

(defun netproc-options--make (&rest args)
  "Call the side's `make-network-process' with ARGS.
Return (:made STATUS CONTACT OPTIONS), OPTIONS read from the socket of
the client or server made, which is then deleted; or (:signal ERROR)."
  (condition-case err
      (let* ((proc (apply (netproc-test-fn 'make-network-process) args))
             (server (plist-get args :server))
             (path (and (eq (plist-get args :family) 'local)
                        (plist-get args :service)))
             (options
              (cond ((and server path) (netproc-options--peek 'unix path))
                    (server (netproc-options--peek
                             'tcp (netproc-test-call 'process-contact proc
                                                     :service)
                             t))
                    (path :unix-client)
                    (t (netproc-options--client-options proc))))
             (made (list :made (netproc-test-call 'process-status proc)
                         (netproc-test-call 'process-contact proc t)
                         options)))
        (netproc-test-call 'set-process-sentinel proc #'ignore)
        (netproc-test-call 'delete-process proc)
        made)
    (error (list :signal err))))

(defconst netproc-options--values
  '((:keepalive t) (:keepalive nil) (:keepalive 0) (:keepalive "x")
    (:broadcast t) (:broadcast nil) (:dontroute t) (:dontroute 7)
    (:oobinline t) (:oobinline nil) (:reuseaddr t) (:reuseaddr nil)
    (:linger t) (:linger nil) (:linger 0) (:linger 5) (:linger "x")
    (:linger -1) (:linger 100000000000)
    (:priority 0) (:priority 3) (:priority 6) (:priority 7)
    (:bindtodevice "lo") (:bindtodevice "") (:bindtodevice nil))
  "Options with values every side accepts, applied one by one.")

(defconst netproc-options--bad
  '((:priority "x") (:priority 1.5) (:priority nil) (:priority 100000000000)
    (:priority "x" :bindtodevice "no-such-dev0")
    (:bindtodevice "no-such-dev0" :priority "x")
    (:bindtodevice 42) (:bindtodevice sym) (:bindtodevice "no-such-dev0")
    (:keepalive t "key" 1) (42 1 :keepalive t) (:foo 1 "key" 2))
  "Option lists the builtin refuses, each with its own error.")

;;;; Options at creation

(netproc-test-deftest netproc-options-client-values ()
  "Each option and value at creation reaches the socket as the builtin sets it."
  (let* ((peer (netproc-test-peer-start))
         (port (netproc-test-peer-port peer)))
    (netproc-test-note :defaults
                       (netproc-options--make :name "c" :host "127.0.0.1"
                                              :service port))
    (dolist (option netproc-options--values)
      (netproc-test-note :option option
                         (apply #'netproc-options--make :name "c"
                                :host "127.0.0.1" :service port option)))))

(netproc-test-deftest netproc-options-client-families ()
  "Options apply over IPv6, to a host name, and to a Unix socket client."
  (let ((peer4 (netproc-test-peer-start))
        (peer6 (netproc-test-peer-start :family 'ipv6))
        (local (netproc-test-peer-start :family 'local))
        (all '(:keepalive t :linger 3 :priority 2 :oobinline t
               :dontroute t :broadcast t :bindtodevice "lo")))
    (netproc-test-note :ipv6
                       (apply #'netproc-options--make :name "c" :host "::1"
                              :family 'ipv6
                              :service (netproc-test-peer-port peer6) all))
    ;; A name is looked up first: netproc applies the options on its
    ;; engine thread, Emacs in the call.
    (netproc-test-note :by-name
                       (apply #'netproc-options--make :name "c"
                              :host "localhost" :family 'ipv4
                              :service (netproc-test-peer-port peer4) all))
    (netproc-test-note :unix
                       (apply #'netproc-options--make :name "c"
                              :family 'local
                              :service (netproc-test-peer-service local) all))
    (netproc-test-note :unix-bad
                       (netproc-options--make
                        :name "c" :family 'local
                        :service (netproc-test-peer-service local)
                        :bindtodevice "no-such-dev0"))))

(netproc-test-deftest netproc-options-argument-order ()
  "Options apply in argument order, duplicates too; the contact keeps all."
  (let ((port (netproc-test-peer-port (netproc-test-peer-start))))
    (dolist (options '((:keepalive t :keepalive nil)
                       (:keepalive nil :keepalive t)
                       (:linger 5 :linger nil)
                       (:linger nil :linger 7)
                       (:priority 1 :priority 4 :priority 2)
                       (:bindtodevice "lo" :bindtodevice nil)
                       (:foo 1 :keepalive t :bar nil :oobinline t)))
      (netproc-test-note :order options
                         (apply #'netproc-options--make :name "c"
                                :host "127.0.0.1" :service port options)))))

(netproc-test-deftest netproc-options-client-bad-values ()
  "Bad values signal the builtin's error, in order; no process is left.
The `:buffer' made before the socket is left behind, as by the builtin."
  (let ((port (netproc-test-peer-port (netproc-test-peer-start))))
    (dolist (options netproc-options--bad)
      (dolist (host '("127.0.0.1" "localhost"))
        (netproc-test-note :bad options host
                           (apply #'netproc-options--make
                                  :name "c" :host host :service port
                                  :buffer "obuf" options))))
    (netproc-test-note :after (netproc-test-names
                               (netproc-test-call 'process-list))
                       (buffer-live-p (get-buffer "obuf")))))

(netproc-test-deftest netproc-options-client-unresolvable-first ()
  "The lookup comes before the options: a name that does not resolve wins.
Skipped unless lookups stay on this machine
\(`netproc-test-skip-unless-lookups-local')."
  (netproc-test-skip-unless-lookups-local)
  (let ((port (netproc-test-peer-port (netproc-test-peer-start))))
    (netproc-test-note :unresolvable
                       (netproc-options--make :name "c"
                                              :host "no-such-host.invalid"
                                              :service port :priority "x"))
    (netproc-test-note :after (netproc-test-names
                               (netproc-test-call 'process-list)))))

(netproc-test-deftest netproc-options-server-values ()
  "Options on servers, :reuseaddr's default, and bad values for servers."
  (let ((dir (netproc-test-tmpdir)))
    (dolist (options '(nil (:reuseaddr nil) (:reuseaddr t) (:reuseaddr 0)
                       (:keepalive t :linger 4 :priority 5 :oobinline t
                                   :bindtodevice "lo")
                       (:reuseaddr nil :reuseaddr t)))
      (netproc-test-note :server options
                         (apply #'netproc-options--make :name "s" :server t
                                :host "127.0.0.1" :service t options))
      (netproc-test-note :server6 options
                         (apply #'netproc-options--make :name "s" :server t
                                :host "::1" :family 'ipv6 :service t
                                options)))
    (dolist (options '(nil (:reuseaddr t) (:keepalive t :priority 1)))
      (netproc-test-note :unix-server options
                         (apply #'netproc-options--make
                                :name "s" :server t :family 'local
                                :service (expand-file-name "srv" dir)
                                options))
      (ignore-errors (delete-file (expand-file-name "srv" dir))))
    (dolist (options netproc-options--bad)
      (netproc-test-note :bad-server options
                         (apply #'netproc-options--make :name "s" :server t
                                :host "127.0.0.1" :service t options)))
    (netproc-test-note :after (netproc-test-names
                               (netproc-test-call 'process-list)))))

(netproc-test-deftest netproc-options-accepted-do-not-inherit ()
  "A server's options are not given to the connections it accepts."
  (let* ((server (make-network-process
                  :name "s" :server t :host "127.0.0.1" :service t
                  :keepalive t :priority 3 :linger 2 :sentinel #'ignore))
         (port (process-contact server :service))
         (client (make-network-process :name "c" :host "127.0.0.1"
                                       :service port :sentinel #'ignore))
         (accepted (netproc-test-wait-for
                    (cl-find-if (lambda (p)
                                  (string-prefix-p "s <"
                                                   (netproc-test-object-name p)))
                                (process-list)))))
    ;; The accepted socket is the one whose local port is the server's
    ;; and that does not listen.
    (netproc-test-note :accepted (netproc-options--peek 'tcp port)
                       (plist-get (process-contact accepted t) :keepalive))
    (netproc-test-note :server (netproc-options--peek 'tcp port t))
    (delete-process client)
    (delete-process accepted)
    (delete-process server)))

(netproc-test-deftest netproc-options-datagram ()
  "Datagram servers get their options and :reuseaddr's default; clients
get none when made, and any set later."
  (let ((dir (netproc-test-tmpdir)))
    (dolist (options '(nil (:reuseaddr nil)
                       (:broadcast t :keepalive t :linger 4 :priority 5
                                   :bindtodevice "lo")
                       (:priority "x") (:bindtodevice "no-such-dev0")))
      (netproc-test-note
       :datagram-server options
       (netproc-test-try
         (let* ((s (apply #'make-network-process
                          :name "ds" :server t :type 'datagram
                          :host "127.0.0.1" :service t :noquery t options))
                (port (process-contact s :service)))
           (prog1 (netproc-options--peek 'udp port)
             (delete-process s))))))
    (let* ((path (expand-file-name "uds" dir))
           (u (make-network-process :name "uds" :server t :type 'datagram
                                    :family 'local :service path
                                    :priority 2 :noquery t)))
      (netproc-test-note :unix-datagram-server (netproc-options--peek
                                                'unix path))
      (delete-process u))
    ;; A client is bound by its first send: then its port is known.
    (let* ((s (make-network-process :name "ds" :server t :type 'datagram
                                    :host "127.0.0.1" :service t
                                    :noquery t))
           (port (process-contact s :service))
           (c (make-network-process :name "dc" :type 'datagram
                                    :host "127.0.0.1" :service port
                                    :broadcast t :priority 4 :noquery t
                                    :filter #'ignore))
           (got nil))
      (set-process-filter s (lambda (proc _string)
                              (setq got (process-datagram-address proc))))
      (process-send-string c "x")
      (netproc-test-wait-until (lambda () got) nil 'datagram)
      (netproc-test-note :client-made (netproc-options--peek
                                       'udp (aref got 4)))
      (netproc-test-note :client-set
                         (netproc-options--set c :broadcast t)
                         (netproc-options--set c :priority 4)
                         (netproc-options--peek 'udp (aref got 4)))
      (delete-process c)
      (delete-process s))))

;;;; set-network-process-option

(netproc-test-deftest netproc-options-set-on-client ()
  "Setting options on an open client: results, socket, contact."
  (let* ((port (netproc-test-peer-port (netproc-test-peer-start)))
         (c (make-network-process :name "c" :host "127.0.0.1" :service port
                                  :sentinel #'ignore)))
    (dolist (args (append netproc-options--values
                          '((:priority "x") (:priority nil) (:linger "x")
                            (:bindtodevice "no-such-dev0")
                            (:bindtodevice 42) (:nodelay t) (:foo 1) (foo 1)
                            ("keepalive" t) (42 t) (nil t))))
      (netproc-test-note :set args
                         (netproc-test-try
                           (netproc-options--set c (car args) (cadr args)))
                         (netproc-options--client-options c)))
    (dolist (args '((:nodelay t) (:foo 1) (:priority "x") (:bindtodevice 42)
                    (:bindtodevice "no-such-dev0") ("keepalive" t)
                    (:keepalive t)))
      (netproc-test-note :no-error args
                         (netproc-test-try
                           (netproc-options--set c (car args) (cadr args) t))))
    (netproc-test-note :contact (process-contact c t))
    (stop-process c)
    (netproc-test-note :stopped (netproc-test-try
                                  (netproc-options--set c :keepalive nil))
                       (netproc-options--client-options c))
    (delete-process c)
    (netproc-test-note :deleted
                       (netproc-test-try (netproc-options--set c :keepalive t))
                       (netproc-test-try
                         (netproc-options--set c :nodelay t t)))))

(netproc-test-deftest netproc-options-set-on-server ()
  "Setting options on a listening server, inet and Unix."
  (let* ((s (make-network-process :name "s" :server t :host "127.0.0.1"
                                  :service t :sentinel #'ignore))
         (port (process-contact s :service))
         (dir (netproc-test-tmpdir))
         (path (expand-file-name "u" dir))
         (u (make-network-process :name "u" :server t :family 'local
                                  :service path :sentinel #'ignore)))
    (dolist (args '((:keepalive t) (:reuseaddr nil) (:linger 9)
                    (:priority 5) (:bindtodevice "lo") (:priority "x")
                    (:nodelay t)))
      (netproc-test-note :server args
                         (netproc-test-try
                           (netproc-options--set s (car args) (cadr args)))
                         (netproc-options--peek 'tcp port t))
      (netproc-test-note :unix args
                         (netproc-test-try
                           (netproc-options--set u (car args) (cadr args)))
                         (netproc-options--peek 'unix path)))
    (netproc-test-note :contacts (process-contact s t) (process-contact u t))
    (delete-process s)
    (delete-process u)))

(netproc-test-deftest netproc-options-set-argument-errors ()
  "What is not a running network process is refused as by the builtin."
  (netproc-test-note :integer
                     (netproc-test-try (netproc-options--set 42 :keepalive t)))
  (netproc-test-note :nil
                     (netproc-test-try (netproc-options--set nil :keepalive t)))
  (let* ((peer (netproc-test-peer-start))
         (c (make-network-process :name "c" :host "127.0.0.1"
                                  :service (netproc-test-peer-port peer)
                                  :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :name-string
                       (netproc-test-try (netproc-options--set "c" :keepalive t)))
    (netproc-test-peer-conn peer)
    (netproc-test-peer-close peer)
    (netproc-test-wait-for (eq (process-status c) 'closed))
    (netproc-test-note :peer-closed
                       (netproc-test-try (netproc-options--set c :keepalive t))
                       (netproc-test-try (netproc-options--set c :priority "x"))
                       (netproc-test-try
                         (netproc-options--set c "keepalive" t)))
    (delete-process c)))

(netproc-test-deftest netproc-options-set-while-connecting ()
  "On a :nowait client still connecting, setting an option waits for it."
  (let* ((port (netproc-test-peer-port (netproc-test-peer-start)))
         (c (make-network-process :name "c" :host "127.0.0.1" :service port
                                  :nowait t :sentinel #'netproc-test-sentinel)))
    (netproc-test-note :set (netproc-options--set c :keepalive t)
                       (process-status c))
    (netproc-test-note :socket (netproc-options--client-options c))
    (netproc-test-wait-for (assq :sentinel netproc-test--trace))
    (delete-process c)))

;;;; featurep

(netproc-test-deftest netproc-options-featurep ()
  "The subfeatures both sides support answer alike."
  (dolist (subfeature '(:bindtodevice :broadcast :dontroute :keepalive
                        :linger :oobinline :priority :reuseaddr
                        :nodelay :reuseport :tls-parameters
                        (:nowait t) (:nowait nil) (:server t) (:service t)
                        (:family ipv4) (:family ipv6) (:family local)
                        (:type stream) (:type nil) (:type datagram)
                        (:type seqpacket)))
    (netproc-test-note :featurep subfeature
                       (netproc-options--featurep subfeature))))

;;;; netproc alone (builtin defects, types not supported yet)

(ert-deftest netproc-options-netproc-featurep-types ()
  "Both socket types answer t, and so does the feature itself."
  (skip-unless (netproc-test-available-p))
  (should (netproc-featurep '(:type datagram)))
  (should (netproc-featurep '(:type seqpacket)))
  (should-not (netproc-featurep '(:type stream)))
  (should (netproc-featurep))
  (should (featurep 'netproc-make-network-process :keepalive))
  (should (featurep 'make-network-process '(:type datagram))))

(ert-deftest netproc-options-netproc-nowait ()
  "With :nowait, a bad value signals at once; a refused option fails.
The builtin finds both inside its event loop, signals from whatever was
waiting and leaves the process in `connect', where asking its exit
status crashes Emacs 28.2."
  (skip-unless (netproc-test-available-p))
  (let ((trace
         (netproc-test-with-cleanup
           (let ((port (netproc-test-peer-port (netproc-test-peer-start))))
             (netproc-test-note-try :bad
               (funcall 'netproc-make-network-process
                        :name "n" :host "localhost" :service port :nowait t
                        :priority "x" :buffer "nbuf"))
             (netproc-test-note :buffer (buffer-live-p (get-buffer "nbuf"))
                                (funcall 'netproc-list))
             (let ((n (funcall 'netproc-make-network-process
                               :name "n" :host "127.0.0.1" :service port
                               :nowait t :bindtodevice "no-such-dev0"
                               :sentinel #'netproc-test-sentinel)))
               (netproc-test-wait-for
                (not (eq (funcall 'netproc-status n) 'connect)))
               (netproc-test-note :refused (funcall 'netproc-status n)
                                  (funcall 'netproc-exit-status n))
               (funcall 'delete-netproc n))))))
    (should (equal (cdr (assq :bad trace))
                   '((:signal (error "Bad option value for :priority")))))
    (should (equal (cdr (assq :buffer trace)) '(t nil)))
    (should (member '(:sentinel (:proc "n") "failed with code 19\n" failed)
                    trace))
    (should (equal (cdr (assq :refused trace)) '(failed 19)))))

(provide 'netproc-options-tests)
;;; netproc-options-tests.el ends here
