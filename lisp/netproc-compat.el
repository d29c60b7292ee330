;;; netproc-compat.el --- Builtin process functions that take netprocs  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; `netproc-compat-mode' lets code written for `make-network-process'
;; and the process primitives run over netproc unchanged:
;;
;;   (require 'netproc-compat)
;;   (netproc-compat-mode 1)
;;
;; While the mode is on, `make-network-process' makes netprocs (the calls
;; that `netproc-compat-route-function' accepts, all but TLS by
;; default), and each process primitive a network client or server
;; meets takes a netproc and does what its netproc twin does.  Anything
;; else goes to the primitive unchanged.
;;
;; The primitives get `:around' advice, so calls from Lisp, byte-compiled
;; or native-compiled, see netprocs; calls from C do not, which is why
;; killing a buffer and exiting Emacs go through netproc's own hooks.
;; Each advice looks at the type of its process argument first: a
;; builtin process costs one type test.  Turning the mode off removes
;; every advice, and each primitive's function cell is again what it
;; was.

;;; Code:

(require 'cl-lib)
(require 'netproc)
;; Its `open-gnutls-stream' is neither defined nor autoloaded until then;
;; the mode advises it.
(require 'gnutls)

(defgroup netproc-compat nil
  "Run code written for `make-network-process' over netproc."
  :group 'netproc
  :prefix "netproc-compat-")

(defcustom netproc-compat-route-function #'netproc-compat-route-default
  "Function that decides which `make-network-process' calls make netprocs.
It is called with the list of arguments of each call while
`netproc-compat-mode' is on; a non-nil value means make a netproc, nil
means leave the call to the builtin.  Calls that will carry TLS never
reach it: they stay builtin."
  :type 'function)

(defvar netproc-compat-inhibit nil
  "Non-nil means `make-network-process' makes builtin processes.
Bind it around code whose connections must stay builtin while
`netproc-compat-mode' is on.")

(defun netproc-compat-route-default (args)
  "Return non-nil if a `make-network-process' call with ARGS can be a netproc.
That is every call but those with a :type netproc does not support yet."
  (let ((type (plist-get args :type)))
    (or (null type) (netproc-featurep (list :type type)))))

;;; Which netproc an argument means

(defun netproc-compat--designated (designator)
  "Return the netproc that DESIGNATOR, a buffer, a name or nil, stands for.
Return nil when it stands for a builtin process or for nothing.  As for
`get-process', a builtin process of that name, or of that buffer, wins."
  (let ((found (cond ((null designator) (get-buffer-process (current-buffer)))
                     ((stringp designator)
                      (or (get-process designator)
                          (let ((buffer (get-buffer designator)))
                            (and buffer (get-buffer-process buffer)))))
                     ((bufferp designator)
                      (and (buffer-live-p designator)
                           (get-buffer-process designator))))))
    (and (netproc-p found) found)))

(defsubst netproc-compat--target (designator)
  "Return the netproc DESIGNATOR means, or nil for anything else.
DESIGNATOR is what a process primitive takes: a process, a netproc, a
buffer, a name or nil.  A builtin process is answered at once."
  (cond ((netproc-p designator) designator)
        ((eq (type-of designator) 'process) nil)
        (t (netproc-compat--designated designator))))

;;; The advice

(defvar netproc-compat--advice nil
  "The advice of the mode: (PRIMITIVE . FUNCTION), newest first.")

(defun netproc-compat--register (primitive function)
  "Note that FUNCTION is to advise PRIMITIVE while the mode is on."
  (setf (alist-get primitive netproc-compat--advice) function))

(eval-and-compile
  (defun netproc-compat--plain-args (arglist)
    "Return ARGLIST without its lambda-list keywords."
    (cl-remove-if (lambda (arg) (memq arg '(&optional &rest))) arglist)))

(defmacro netproc-compat--dispatch (primitive twin arglist &optional kind)
  "Define the advice that hands PRIMITIVE's netproc calls to TWIN.
ARGLIST is PRIMITIVE's; its first argument is the process.  KIND
`designator' means that argument may also be a buffer, a name or nil, as
`process-status' takes; otherwise it is a netproc or anything else."
  (let* ((name (intern (format "netproc-compat--%s" primitive)))
         (args (netproc-compat--plain-args arglist))
         (target (car args))
         (doc (format "Call the twin of ORIG if %s is a netproc, else ORIG.
The twin is `%s';
ORIG is the original `%s'.
The arguments, %s, are its own."
                      (upcase (symbol-name target)) twin primitive
                      (upcase (mapconcat #'symbol-name args " ")))))
    `(progn
       (defun ,name (orig ,@arglist)
         ,doc
         ,(if (eq kind 'designator)
              ;; The twin gets the designator itself: it reads a name
              ;; or nil as the primitive would, and returns it likewise.
              `(if (netproc-compat--target ,target)
                   (,twin ,@args)
                 (funcall orig ,@args))
            `(if (netproc-p ,target)
                 (,twin ,@args)
               (funcall orig ,@args))))
       (netproc-compat--register ',primitive #',name))))

(netproc-compat--dispatch process-status netproc-status (process) designator)
(netproc-compat--dispatch process-type netproc-type (process) designator)
(netproc-compat--dispatch process-send-string netproc-send-string
                          (process string) designator)
(netproc-compat--dispatch process-send-region netproc-send-region
                          (process start end) designator)
(netproc-compat--dispatch process-send-eof netproc-send-eof
                          (&optional process) designator)
(netproc-compat--dispatch delete-process delete-netproc (process) designator)
(netproc-compat--dispatch stop-process stop-netproc
                          (&optional process current-group) designator)
(netproc-compat--dispatch continue-process continue-netproc
                          (&optional process current-group) designator)

(netproc-compat--dispatch process-live-p netproc-live-p (process))
(netproc-compat--dispatch process-exit-status netproc-exit-status (process))
(netproc-compat--dispatch process-contact netproc-contact
                          (process &optional key no-block))
(netproc-compat--dispatch process-name netproc-name (process))
(netproc-compat--dispatch process-buffer netproc-buffer (process))
(netproc-compat--dispatch set-process-buffer set-netproc-buffer
                          (process buffer))
(netproc-compat--dispatch process-filter netproc-filter (process))
(netproc-compat--dispatch set-process-filter set-netproc-filter
                          (process filter))
(netproc-compat--dispatch process-sentinel netproc-sentinel (process))
(netproc-compat--dispatch set-process-sentinel set-netproc-sentinel
                          (process sentinel))
(netproc-compat--dispatch process-mark netproc-mark (process))
(netproc-compat--dispatch process-plist netproc-plist (process))
(netproc-compat--dispatch set-process-plist set-netproc-plist (process plist))
(netproc-compat--dispatch process-get netproc-get (process propname))
(netproc-compat--dispatch process-put netproc-put (process propname value))
(netproc-compat--dispatch process-query-on-exit-flag
                          netproc-query-on-exit-flag (process))
(netproc-compat--dispatch set-process-query-on-exit-flag
                          set-netproc-query-on-exit-flag (process flag))
(netproc-compat--dispatch process-inherit-coding-system-flag
                          netproc-inherit-coding-system-flag (process))
(netproc-compat--dispatch set-process-inherit-coding-system-flag
                          set-netproc-inherit-coding-system-flag
                          (process flag))
(netproc-compat--dispatch process-coding-system netproc-coding-system
                          (process))
(netproc-compat--dispatch set-process-coding-system set-netproc-coding-system
                          (process &optional decoding encoding))
(netproc-compat--dispatch process-filter-multibyte-p
                          netproc-filter-multibyte-p (process))
(netproc-compat--dispatch set-process-filter-multibyte
                          set-netproc-filter-multibyte (process flag))
(netproc-compat--dispatch process-datagram-address netproc-datagram-address
                          (process))
(netproc-compat--dispatch set-process-datagram-address
                          set-netproc-datagram-address (process address))
(netproc-compat--dispatch set-network-process-option set-netproc-option
                          (process option value &optional no-error))
(netproc-compat--dispatch process-id netproc-id (process))
(netproc-compat--dispatch process-command netproc-command (process))
(netproc-compat--dispatch process-tty-name netproc-tty-name (process))

(defun netproc-compat--processp (orig object)
  "Return t if OBJECT is a netproc, else what ORIG, `processp', says."
  (or (netproc-p object) (funcall orig object)))
(netproc-compat--register 'processp #'netproc-compat--processp)

(defun netproc-compat--process-thread (orig process)
  "Return the main thread for a netproc PROCESS, else call ORIG.
A netproc's events are dispatched where Emacs reads its processes: the
main thread."
  (if (netproc-p process) main-thread (funcall orig process)))
(netproc-compat--register 'process-thread #'netproc-compat--process-thread)

(defun netproc-compat--signal (orig &optional process current-group)
  "Refuse to signal a netproc PROCESS as Emacs refuses for a connection.
Anything else goes to ORIG with CURRENT-GROUP."
  (let ((netproc (netproc-compat--target process)))
    (if netproc
        (error "Process %s is not a subprocess" (netproc-name netproc))
      (funcall orig process current-group))))
(dolist (primitive '(interrupt-process kill-process quit-process))
  (netproc-compat--register primitive #'netproc-compat--signal))

(defun netproc-compat--gnutls-peer-status (orig proc)
  "Return nil for a netproc PROC, which has no TLS; else call ORIG.
url.el asks every connection it reads headers from."
  (if (netproc-p proc) nil (funcall orig proc)))
(netproc-compat--register 'gnutls-peer-status
                          #'netproc-compat--gnutls-peer-status)

(defun netproc-compat--buffer-netproc (buffer)
  "Return the netproc of BUFFER (a buffer or its name), or nil."
  (let ((buffer (and buffer (> (hash-table-count netproc--listed) 0)
                     (get-buffer buffer))))
    (and buffer (netproc--buffer-netproc buffer))))

(defun netproc-compat--get-buffer-process (orig buffer)
  "Return ORIG's process for BUFFER, or else BUFFER's netproc."
  (or (funcall orig buffer) (netproc-compat--buffer-netproc buffer)))
(netproc-compat--register 'get-buffer-process
                          #'netproc-compat--get-buffer-process)

(defun netproc-compat--get-process (orig name)
  "Return ORIG's process called NAME, or else the netproc called NAME."
  (cond ((netproc-p name) name)
        ((funcall orig name))
        ((stringp name) (gethash name netproc--listed))))
(netproc-compat--register 'get-process #'netproc-compat--get-process)

(defun netproc-compat--process-list (orig)
  "Return the netprocs, newest first, then what ORIG, `process-list', gives."
  (append (netproc-list) (funcall orig)))
(netproc-compat--register 'process-list #'netproc-compat--process-list)

(defun netproc-compat--accept-process-output
    (orig &optional process seconds millisec just-this-one)
  "Wait for output as `accept-process-output' (ORIG) does.
A netproc PROCESS is waited for by `accept-netproc-output'.  With
PROCESS nil, netprocs' events are dispatched after the wait, as that
function does, when there are netprocs.  SECONDS, MILLISEC and
JUST-THIS-ONE are as for `accept-process-output'."
  (cond ((netproc-p process)
         (accept-netproc-output process seconds millisec just-this-one))
        ((or process (zerop (hash-table-count netproc--live)))
         (funcall orig process seconds millisec just-this-one))
        (t (prog1 (funcall orig nil seconds millisec just-this-one)
             (netproc--dispatch)))))
(netproc-compat--register 'accept-process-output
                          #'netproc-compat--accept-process-output)

;;; Routing

(defun netproc-compat--make-network-process (orig &rest args)
  "Make a netproc from ARGS if they are to be routed, else call ORIG."
  (if (and args (not netproc-compat-inhibit)
           (not (plist-get args :tls-parameters))
           (funcall netproc-compat-route-function args))
      (apply #'netproc-make-network-process args)
    (apply orig args)))
(netproc-compat--register 'make-network-process
                          #'netproc-compat--make-network-process)

(defun netproc-compat-tls-stream-p (parameters)
  "Return non-nil if `open-network-stream' with PARAMETERS may carry TLS.
That is :type `tls', `ssl' or `starttls', :tls-parameters, or a
`network' connection (the default) given what it needs to try STARTTLS."
  (let ((type (plist-get parameters :type)))
    (or (memq type '(tls ssl starttls))
        (plist-get parameters :tls-parameters)
        (and (memq type '(nil network))
             (or (plist-get parameters :starttls-function)
                 (and (plist-get parameters :success)
                      (plist-get parameters :capability-command)))))))

(defun netproc-compat--open-network-stream (orig name buffer host service
                                                 &rest parameters)
  "Call ORIG, `open-network-stream', with NAME BUFFER HOST SERVICE PARAMETERS.
Its connection stays builtin if it may carry TLS."
  (let ((netproc-compat-inhibit
         (or netproc-compat-inhibit
             (and (netproc-compat-tls-stream-p parameters) t))))
    (apply orig name buffer host service parameters)))
(netproc-compat--register 'open-network-stream
                          #'netproc-compat--open-network-stream)

(defun netproc-compat--builtin-only (orig &rest args)
  "Call ORIG with ARGS; the connections it makes stay builtin."
  (let ((netproc-compat-inhibit t))
    (apply orig args)))
(netproc-compat--register 'open-gnutls-stream #'netproc-compat--builtin-only)
;; url.el over https, through a proxy too: there the connection to the
;; proxy is opened plain and turned into TLS afterwards.
(netproc-compat--register 'url-https #'netproc-compat--builtin-only)

;;; Hooks

(defconst netproc-compat--own-hooks
  '((kill-buffer-query-functions . netproc-kill-buffer-query-function)
    (kill-emacs-query-functions . netproc--kill-emacs-query))
  "netproc's own queries, which the builtin ones do while the mode is on.
With the primitives advised, `process-kill-buffer-query-function' and
`save-buffers-kill-emacs' see netprocs and ask as they ask for
processes; netproc's would ask a second time.")

(defvar netproc-compat--removed-hooks nil
  "The entries of `netproc-compat--own-hooks' the mode took out.")

(defun netproc-compat--take-own-hooks ()
  "Take netproc's own queries out of their hooks while the mode is on."
  (setq netproc-compat--removed-hooks nil)
  (pcase-dolist (`(,hook . ,function) netproc-compat--own-hooks)
    (when (memq function (default-value hook))
      (remove-hook hook function)
      (push (cons hook function) netproc-compat--removed-hooks))))

(defun netproc-compat--restore-own-hooks ()
  "Put back the queries `netproc-compat--take-own-hooks' took out."
  (pcase-dolist (`(,hook . ,function) netproc-compat--removed-hooks)
    (add-hook hook function))
  (setq netproc-compat--removed-hooks nil))

;;; The mode

(defun netproc-compat-primitives ()
  "Return the functions `netproc-compat-mode' advises."
  (mapcar #'car netproc-compat--advice))

(defun netproc-compat--enable ()
  "Advise the primitives and take over netproc's queries."
  (pcase-dolist (`(,primitive . ,function) netproc-compat--advice)
    (advice-add primitive :around function))
  (netproc-compat--take-own-hooks))

(defun netproc-compat--disable ()
  "Remove every advice and give netproc its queries back."
  (pcase-dolist (`(,primitive . ,function) netproc-compat--advice)
    (advice-remove primitive function))
  (netproc-compat--restore-own-hooks))

;;;###autoload
(define-minor-mode netproc-compat-mode
  "Run code written for `make-network-process' over netproc.
While this global mode is on, `make-network-process' makes netprocs
\(those calls `netproc-compat-route-function' accepts), and the process
primitives take netprocs: `process-send-string', `process-status',
`delete-process', `accept-process-output', `process-list', ... each does
what its netproc twin does.  Connections that may carry TLS stay builtin:
`open-network-stream' with :type `tls', `ssl' or `starttls' (or what a
STARTTLS upgrade needs), `open-gnutls-stream', and :tls-parameters.
Builtin processes are served by the primitives as before.

Turning the mode off gives every primitive back its own definition;
netprocs made meanwhile keep working through the netproc functions."
  :global t
  :group 'netproc-compat
  (if netproc-compat-mode
      (netproc-compat--enable)
    (netproc-compat--disable)))

(provide 'netproc-compat)

;;; netproc-compat.el ends here
