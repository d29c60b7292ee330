;;; netproc-address-tests.el --- Differential tests of address forms  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; The address forms of `:remote' and `:local', for clients and servers
;; of each type: the IPv4 5-vector, the IPv6 9-vector, the socket path
;; string, and what Emacs makes of vectors of the wrong length, of
;; elements out of range (it keeps their low bits: [383 0 0 1 P] is
;; 127.0.0.1), of the wrong type.  Each case records whether a process
;; was made, its status and contact, or the error, on each side.
;;
;; Address vectors with a non-integer element are left out: the builtin
;; reads garbage from them, netproc calls them malformed (a deliberate
;; difference, tested in netproc-client-tests.el).

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

(defun netproc-address--outcome (args)
  "Make a process from ARGS on the running side; return what came of it.
The value is (:made STATUS CONTACT) or the error, as `netproc-test-try'
gives it.  A process made is deleted."
  (let ((r (netproc-test-try
             (apply (netproc-test-fn 'make-network-process) :noquery t args))))
    (if (not (netproc-test-object-p (cadr r)))
        r
      (let ((proc (cadr r)))
        (prog1 (list :made (netproc-test-call 'process-status proc)
                     (netproc-test-call 'process-contact proc t))
          (netproc-test-call 'set-process-sentinel proc #'ignore)
          (netproc-test-call 'delete-process proc))))))

(defun netproc-address--note (label args)
  "Record under LABEL the outcome of making a process from ARGS."
  (netproc-test-note :case label (netproc-address--outcome args)))

(netproc-test-deftest netproc-test-address-client-remote ()
  "Stream clients given :remote in every form, good and bad."
  (let* ((port (netproc-test-peer-port (netproc-test-peer-start)))
         (port6 (netproc-test-peer-port
                 (netproc-test-peer-start :family 'ipv6 :name "peer6")))
         (path (netproc-test-peer-path
                (netproc-test-peer-start :family 'local :name "peerl"))))
    (dolist (remote (list (vector 127 0 0 1 port)
                          ;; Low bits kept: 383 & 255 = 127, -129 too.
                          (vector 383 0 0 1 port)
                          (vector -129 256 512 1 port)
                          (vector 127 0 0 1 (+ port 65536))
                          (vector 0 0 0 0 0 0 0 1 port6)
                          (vector 65536 0 0 0 0 0 0 65537 port6)
                          path
                          [] [127] [127 0 0 1] [127 0 0 1 80 80]
                          [0 0 0 0 0 0 0 1] [0 0 0 0 0 0 0 0 1 80]
                          42 'sym 1.5 '(1 2) (list 2 127 0 0 1)))
      (netproc-address--note (list :remote remote)
                             (list :name "a" :remote remote)))))

(netproc-test-deftest netproc-test-address-client-local ()
  "Stream clients given :local: ignored when well formed, as Emacs does."
  (let ((port (netproc-test-peer-port (netproc-test-peer-start))))
    (dolist (local (list [127 0 0 1 0] [127 0 0 2 0] [0 0 0 0 0 0 0 1 0]
                         "/tmp/no-such-netproc-socket" [1 2] 42))
      (netproc-address--note (list :local local)
                             (list :name "a" :host "127.0.0.1" :service port
                                   :local local)))))

(netproc-test-deftest netproc-test-address-server-local ()
  "Servers given :local in every form, stream and datagram."
  (let ((dir (netproc-test-tmpdir)))
    (dolist (type '(nil datagram))
      (dolist (local (list [127 0 0 1 0]
                           [383 0 0 1 0]
                           [127 0 0 1 65536]
                           [0 0 0 0 0 0 0 1 0]
                           [0 0 0 0 0 0 0 65537 0]
                           (expand-file-name (format "s-%s" type) dir)
                           [1 2 3] [127 0 0 1 0 0] [0 0 0 0 0 0 0 0 1 0]
                           42 'sym
                           ;; The form for any family: raw bytes.
                           '(2 . [0 0 127 0 0 1 0 0 0 0 0 0 0 0])
                           '(2 . [0 0 127 0 0 1])
                           '(2 . [0])
                           '(99 . [1 2 3])))
        (netproc-address--note (list :server type :local local)
                               (list :name "s" :server t :type type
                                     :local local))))))

(netproc-test-deftest netproc-test-address-datagram-client-remote ()
  "Datagram clients given :remote in every form, good and bad."
  (let ((dir (netproc-test-tmpdir)))
    (dolist (remote (list [127 0 0 1 9] [383 0 0 1 9] [0 0 0 0 0 0 0 1 9]
                          (expand-file-name "none" dir)
                          [1 2 3] [127 0 0 1 9 9] 42))
      (netproc-address--note (list :datagram remote)
                             (list :name "d" :type 'datagram
                                   :remote remote)))))

(provide 'netproc-address-tests)
;;; netproc-address-tests.el ends here
