;;; netproc-server.el --- listening netprocs and the connections they accept  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; A server is made as Emacs makes one: bound and listening before the
;; call returns, so its errors and its port are known at once.  Each
;; connection it accepts becomes a netproc of its own, named, buffered and
;; equipped from the server as Emacs does it, announced to the server's
;; :log function and then to its own sentinel with "open from HOST".

;;; Code:

(require 'cl-lib)
(require 'netproc-object)
(require 'netproc-channel)
(require 'netproc-io)

(declare-function netproc--listen "netproc-module"
                  (id address backlog reuseaddr options type))
(declare-function netproc--option-failure "netproc-make" (pairs index code))
(declare-function netproc--set-datagram-address "netproc-module"
                  (conn address))

(defvar netproc--accept-count 0
  "Connections accepted so far; Unix socket connections are named by it.")

;;; Making a server

(defun netproc--server-address (target)
  "Return the socket address a server with TARGET binds, or signal.
TARGET is what `netproc--target' made of the arguments."
  (cond
   ((plist-get target :address))
   ((plist-get target :path))
   (t
    (let* ((host (plist-get target :host))
           (family (plist-get target :family))
           (found (let ((inhibit-message t)
                        (message-log-max nil))
                    (network-lookup-address-info
                     host (and (memq family '(ipv4 ipv6)) family)))))
      (unless found
        (error "%s/%s Name or service not known"
               host (plist-get target :portstring)))
      (let ((address (copy-sequence (car found))))
        (aset address (1- (length address)) (plist-get target :port))
        address)))))

(defun netproc--listen-error (failure contact options)
  "Signal Emacs's error for FAILURE, a [STEP ERRNO MESSAGE INDEX] from the module.
CONTACT is the server's contact plist, OPTIONS its network options as
`netproc--option-pairs' gives them."
  (pcase-let ((`[,step ,code ,message ,index] failure))
    (let ((symbol (if (eql code netproc--enoent) 'file-missing 'file-error)))
      (pcase step
        ('option (let ((err (netproc--option-failure options index code)))
                   (signal (car err) (cdr err))))
        ('bind (signal symbol (list "Cannot bind server socket" message)))
        ('listen (signal symbol (list "Cannot listen on server socket" message)))
        ('reuseaddr (signal symbol (list "Cannot set reuse option on server socket"
                                         message)))
        (_ (signal symbol (cons "make server process failed"
                                (cons message contact))))))))

(defun netproc--start-server (st args target)
  "Bind and listen for ST, made from ARGS and TARGET; signal on failure."
  (let* ((proc (netproc--st-proc st))
         (server (plist-get args :server))
         (backlog (if (integerp server) server 5))
         (address (netproc--server-address target))
         ;; :reuseaddr is one of the options: given, it replaces the
         ;; default, as in Emacs.
         (result (condition-case err
                     (netproc--listen (netproc--rec-id proc) address
                                      backlog nil (netproc--st-options st)
                                      (plist-get args :type))
                   (error (netproc--forget proc)
                          (signal (car err) (cdr err))))))
    (when (vectorp result)
      (netproc--forget proc)
      (netproc--listen-error result (netproc--st-contact st)
                             (netproc--st-options st)))
    (let ((bound (cdr result))
          (datagram (netproc--datagram-p st)))
      ;; A datagram server accepts nothing: it is open, and reads and
      ;; sends as a client does.
      (setf (netproc--st-conn st) (car result)
            (netproc--st-status st) (if datagram 'open 'listen)
            (netproc--st-server st) (not datagram)
            (netproc--st-log st) (plist-get args :log))
      (when (and datagram (plist-get args :remote))
        ;; The first destination, if it fits the socket; else ignored,
        ;; as Emacs ignores it.
        (netproc--set-datagram-address (car result) (plist-get args :remote)))
      ;; The bound port is the service when the system chose it, or when
      ;; :local gave the address, as in Emacs's contact.
      (when (and (vectorp bound) (vectorp address)
                 (or (plist-get args :local)
                     (eql (aref address (1- (length address))) 0)))
        (netproc--contact-put st :service (aref bound (1- (length bound)))))
      (netproc--contact-put st :local bound)
      (when (netproc--st-stopped st)
        (netproc--update-reading st)))))

;;; Accepting

(defun netproc--peer-host (remote)
  "Return the host part of REMOTE as Emacs words it, or nil for a Unix peer."
  (and (vectorp remote) (format-network-address remote t)))

(defun netproc--accepted-buffer (server-st name suffix)
  "Return the buffer for a connection NAME accepted by SERVER-ST, or nil.
Emacs gives one when the server's filter is the default or t: named
after the server's buffer, or after the connection, with SUFFIX."
  (when (memq (netproc--st-filter server-st)
              '(internal-default-process-filter t))
    (let* ((server-buffer (netproc--st-buffer server-st))
           (base (if server-buffer (buffer-name server-buffer) name)))
      (and base
           (get-buffer-create
            (if server-buffer (concat base suffix) name))))))

(defun netproc--accepted-contact (server-st host local remote)
  "Return the contact of a connection from REMOTE (HOST) to SERVER-ST.
LOCAL is the accepted socket's own address."
  (let ((contact (copy-sequence (netproc--st-contact server-st))))
    (setq contact (plist-put contact :server nil))
    (when (vectorp local)
      (setq contact (plist-put contact :local local)))
    (setq contact (plist-put contact :host (or host t)))
    (when host
      (setq contact (plist-put contact :service
                               (aref remote (1- (length remote))))))
    (plist-put contact :remote remote)))

(defun netproc--on-accepted (server server-st accepted)
  "SERVER (state SERVER-ST) accepted a connection.
ACCEPTED is (HANDLE ID LOCAL REMOTE) from the engine."
  (pcase-let* ((`(,handle ,id ,local ,remote) accepted)
               (host (netproc--peer-host remote))
               (count (setq netproc--accept-count (1+ netproc--accept-count)))
               (suffix (format " <%s>" (if host (format-network-address remote)
                                         count)))
               (name (concat (netproc--rec-name server) suffix))
               (st (netproc--register name id))
               (proc (netproc--st-proc st))
               (buffer (netproc--accepted-buffer server-st name suffix)))
    (setf (netproc--st-conn st) handle
          (netproc--st-status st) 'open
          (netproc--st-family st) (netproc--st-family server-st)
          (netproc--st-contact st) (netproc--accepted-contact
                                    server-st host local remote)
          (netproc--st-buffer st) buffer
          (netproc--st-filter st) (netproc--st-filter server-st)
          (netproc--st-sentinel st) (netproc--st-sentinel server-st)
          (netproc--st-plist st) (copy-sequence (netproc--st-plist server-st))
          (netproc--st-decode st) (netproc--st-decode server-st)
          (netproc--st-encode st) (netproc--st-encode server-st)
          (netproc--st-inherit-coding st)
          (and buffer (netproc--st-inherit-coding server-st)))
    (when buffer
      (netproc--watch-buffer buffer))
    (netproc--update-ascii-text st)
    (when (netproc--holding-p st)
      (netproc--update-reading st))
    (let ((log (netproc--st-log server-st))
          (peer (or host "-")))
      ;; Emacs lets an error in :log propagate, uncaught.
      (when log
        (funcall log server proc (format "accept from %s\n" peer)))
      (netproc--sentinel-call proc st (format "open from %s\n" peer)))))

(defun netproc--on-accept-failed (server server-st code)
  "SERVER (state SERVER-ST) failed to accept, with errno CODE."
  (let ((log (netproc--st-log server-st)))
    (when log
      ;; Emacs's text, without a space before the number.
      (funcall log server nil (format "accept failed with code%d\n" code)))))

(provide 'netproc-server)

;;; netproc-server.el ends here
