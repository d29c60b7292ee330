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
;; The mode puts a function of its own in each primitive's function
;; cell, keeping the primitive to call for anything that is not a
;; netproc; native-compiled callers reach it through a trampoline, as
;; they reach advice.  Calls from C do not see it, which is why killing
;; a buffer goes through netproc's own hook.  Not `advice-add': its
;; wrapper, which conses the arguments and applies, costs about 0.3
;; microseconds a call, ten times what a process accessor costs; the
;; mode's own function costs a few tens of nanoseconds.  Advice others put on a
;; primitive, before or while the mode is on, stays around it.  Lisp
;; functions that loading a file may define again (`open-network-stream'
;; and the TLS entry points) are advised instead.  Turning the mode off
;; puts every primitive back: each function cell is again what it was.

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
    (and (netprocp found) found)))

(defsubst netproc-compat--target (designator)
  "Return the netproc DESIGNATOR means, or nil for anything else.
DESIGNATOR is what a process primitive takes: a process, a netproc, a
buffer, a name or nil.  A builtin process is answered at once."
  (cond ((eq (type-of designator) 'process) nil)
        ((netprocp designator) designator)
        (t (netproc-compat--designated designator))))

;;; Replacing the primitives

(defvar netproc-compat--replacements nil
  "The primitives the mode replaces: (PRIMITIVE FUNCTION VARIABLE).
While the mode is on, PRIMITIVE's function cell holds FUNCTION, and
VARIABLE the primitive itself, which FUNCTION calls for anything that is
not a netproc.")

(defvar netproc-compat--advice nil
  "The Lisp functions the mode advises: (FUNCTION . ADVICE).
Unlike primitives, Lisp functions may be autoloaded or redefined by
loading a file; `advice-add' copes with that.")

(eval-and-compile
  (defun netproc-compat--plain-args (arglist)
    "Return ARGLIST without its lambda-list keywords."
    (cl-remove-if (lambda (arg) (memq arg '(&optional &rest))) arglist)))

(defmacro netproc-compat--define (primitive arglist docstring &rest body)
  "Define the function put in PRIMITIVE's cell while the mode is on.
ARGLIST is PRIMITIVE's own and DOCSTRING documents the replacement.
In BODY, `original' is the primitive, to call for anything else."
  (declare (indent 2) (doc-string 3))
  (let ((name (intern (format "netproc-compat--%s" primitive)))
        (var (intern (format "netproc-compat--original-%s" primitive))))
    `(progn
       (defvar ,var nil
         ,(format "The original `%s',\nwhile `netproc-compat-mode' is on."
                  primitive))
       (defun ,name ,arglist
         ,docstring
         (cl-symbol-macrolet ((original ,var))
           ,@body))
       (setf (alist-get ',primitive netproc-compat--replacements)
             (list #',name ',var)))))

(defmacro netproc-compat--dispatch (primitive twin arglist &optional kind)
  "Make PRIMITIVE call TWIN for a netproc while the mode is on.
ARGLIST is PRIMITIVE's; its first argument is the process.  KIND
`designator' means that argument may also be a buffer, a name or nil, as
`process-status' takes; otherwise it is a netproc or anything else."
  (let* ((args (netproc-compat--plain-args arglist))
         (target (car args)))
    `(netproc-compat--define ,primitive ,arglist
       ,(format "Call `%s' if %s is a netproc.
Call the original `%s' for anything else.
The arguments, %s, are those of the original."
                twin (upcase (symbol-name target)) primitive
                (upcase (mapconcat #'symbol-name args " ")))
       ,(if (eq kind 'designator)
            ;; The twin gets the designator itself: it reads a name or
            ;; nil as the primitive would, and returns it likewise.
            `(if (netproc-compat--target ,target)
                 (,twin ,@args)
               (funcall original ,@args))
          `(if (netprocp ,target)
               (,twin ,@args)
             (funcall original ,@args))))))

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

(netproc-compat--define processp (object)
  "Return t if OBJECT is a netproc, else what the original `processp' says."
  (or (netprocp object) (funcall original object)))

(netproc-compat--define process-live-p (process)
  "Return non-nil if PROCESS, a process or a netproc, is alive.
The original is Lisp over `processp' and `process-status'; for anything
but a netproc this does what it does with their originals, rather than
through their replacements."
  (if (netprocp process)
      (netproc-live-p process)
    (and (funcall netproc-compat--original-processp process)
         (memq (funcall netproc-compat--original-process-status process)
               '(run open listen connect stop)))))

(netproc-compat--define process-thread (process)
  "Return the main thread for a netproc PROCESS, else call the original.
A netproc's events are dispatched where Emacs reads its processes: in
the main thread."
  (if (netprocp process) main-thread (funcall original process)))

(defmacro netproc-compat--refuse-signal (primitive)
  "Make PRIMITIVE refuse a netproc, as it refuses a network process."
  `(netproc-compat--define ,primitive (&optional process current-group)
     ,(format "Signal an error if PROCESS is a netproc: it is no subprocess.
Call the original `%s' with CURRENT-GROUP for anything else." primitive)
     (let ((netproc (netproc-compat--target process)))
       (if netproc
           (error "Process %s is not a subprocess" (netproc-name netproc))
         (funcall original process current-group)))))

(netproc-compat--refuse-signal interrupt-process)
(netproc-compat--refuse-signal kill-process)
(netproc-compat--refuse-signal quit-process)

(netproc-compat--define gnutls-peer-status (proc)
  "Return nil for a netproc PROC, which has no TLS; else call the original.
url.el asks every connection it reads headers from."
  (if (netprocp proc) nil (funcall original proc)))

(defun netproc-compat--buffer-netproc (buffer)
  "Return the netproc of BUFFER (a buffer or its name), or nil."
  (let ((buffer (and buffer (> (hash-table-count netproc--listed) 0)
                     (get-buffer buffer))))
    (and buffer (netproc--buffer-netproc buffer))))

(netproc-compat--define get-buffer-process (buffer)
  "Return the original's process for BUFFER, or else BUFFER's netproc."
  (or (funcall original buffer) (netproc-compat--buffer-netproc buffer)))

(netproc-compat--define get-process (name)
  "Return the original's process called NAME, or else the netproc called NAME."
  (cond ((netprocp name) name)
        ((funcall original name))
        ((stringp name) (gethash name netproc--listed))))

(netproc-compat--define process-list ()
  "Return the netprocs, newest first, then the original's processes."
  (if (zerop (hash-table-count netproc--listed))
      (funcall original)
    (append (netproc-list) (funcall original))))

(netproc-compat--define accept-process-output
    (&optional process seconds millisec just-this-one)
  "Wait for output as the original `accept-process-output' does.
A netproc PROCESS is waited for by `accept-netproc-output', reading no
other process when JUST-THIS-ONE is non-nil (but other netprocs).  With
PROCESS nil, netprocs' events are dispatched after the wait, as that
function does, when there are netprocs.  SECONDS, MILLISEC and
JUST-THIS-ONE are as for the original."
  (cond ((netprocp process)
         ;; Other netprocs share the channel and are read with it; other
         ;; processes are left alone, and timers too for an integer.
         (let ((netproc--wait-just-this-one just-this-one))
           (accept-netproc-output process seconds millisec just-this-one)))
        ((or process (zerop (hash-table-count netproc--live)))
         (funcall original process seconds millisec just-this-one))
        (t (prog1 (funcall original nil seconds millisec just-this-one)
             (netproc--dispatch)))))

;;; Routing

(netproc-compat--define make-network-process (&rest args)
  "Make a netproc from ARGS if they are to be routed, else call the original.
A call with :tls-parameters stays builtin; others go where
`netproc-compat-route-function' says."
  (if (and args (not netproc-compat-inhibit)
           (not (plist-get args :tls-parameters))
           (funcall netproc-compat-route-function args))
      (apply #'netproc-make-network-process args)
    (apply original args)))

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

(defun netproc-compat--builtin-only (orig &rest args)
  "Call ORIG with ARGS, keeping the connections it opens builtin."
  (let ((netproc-compat-inhibit t))
    (apply orig args)))

(setq netproc-compat--advice
      '((open-network-stream . netproc-compat--open-network-stream)
        (open-gnutls-stream . netproc-compat--builtin-only)
        ;; url.el over https, through a proxy too: there the connection
        ;; to the proxy is opened plain and turned into TLS afterwards.
        (url-https . netproc-compat--builtin-only)))

;;; Hooks

(defconst netproc-compat--own-hooks
  '((kill-buffer-query-functions . netproc-kill-buffer-query-function)
    (kill-emacs-query-functions . netproc--kill-emacs-query))
  "The queries of netproc that the builtin ones ask while the mode is on.
With the primitives replaced, `process-kill-buffer-query-function' and
`save-buffers-kill-emacs' see netprocs and ask as they ask for
processes; netproc's would ask a second time.")

(defvar netproc-compat--removed-hooks nil
  "The entries of `netproc-compat--own-hooks' the mode took out.")

(defun netproc-compat--take-own-hooks ()
  "Take netproc's own queries out of their hooks while the mode is on."
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

(declare-function comp-subr-trampoline-install "comp" (subr-name))

(defun netproc-compat-primitives ()
  "Return the list of functions replaced or advised by the mode."
  (append (mapcar #'car netproc-compat--replacements)
          (mapcar #'car netproc-compat--advice)))

(defun netproc-compat--reach-native-code (primitive)
  "Make native-compiled code call PRIMITIVE through its function cell.
Native code calls primitives directly; a trampoline sends its calls
through the cell, as for advice.  The first time, compiling the
trampolines of all the primitives takes some twenty seconds; they are
cached in the user's eln-cache."
  (when (and (featurep 'native-compile)
             (subr-primitive-p (symbol-function primitive)))
    (require 'comp)
    ;; Some of them are obsolete, which a trampoline's compilation would
    ;; say each time.
    (let ((byte-compile-warnings nil))
      (comp-subr-trampoline-install primitive))))

(defun netproc-compat--install (primitive function variable)
  "Put FUNCTION in PRIMITIVE's function cell; keep the primitive in VARIABLE.
Advice already on PRIMITIVE stays, around FUNCTION."
  (let ((cell (symbol-function primitive)))
    (unless (eq (if (advice--p cell) (advice--cd*r cell) cell) function)
      (netproc-compat--reach-native-code primitive)
      (set variable (if (advice--p cell) (advice--cd*r cell) cell))
      (fset primitive (if (advice--p cell)
                          (advice--subst-main cell function)
                        function)))))

(defun netproc-compat--uninstall (primitive function variable)
  "Give PRIMITIVE back what `netproc-compat--install' took from it.
FUNCTION and VARIABLE are as given there.  Advice added meanwhile stays."
  (let ((cell (symbol-function primitive)))
    (cond ((eq cell function)
           (fset primitive (symbol-value variable)))
          ((and (advice--p cell) (eq (advice--cd*r cell) function))
           (fset primitive
                 (advice--subst-main cell (symbol-value variable)))))))

(defun netproc-compat--enable ()
  "Replace the primitives, advise the rest, take over netproc's queries."
  (pcase-dolist (`(,primitive ,function ,variable)
                 netproc-compat--replacements)
    (netproc-compat--install primitive function variable))
  (pcase-dolist (`(,name . ,function) netproc-compat--advice)
    (advice-add name :around function))
  (netproc-compat--take-own-hooks))

(defun netproc-compat--disable ()
  "Give every primitive back, remove the advice, restore netproc's queries."
  (pcase-dolist (`(,primitive ,function ,variable)
                 netproc-compat--replacements)
    (netproc-compat--uninstall primitive function variable))
  (pcase-dolist (`(,name . ,function) netproc-compat--advice)
    (advice-remove name function))
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
netprocs made meanwhile keep working through the netproc functions.
See `netproc-compat-primitives' for what the mode changes."
  :global t
  :group 'netproc-compat
  (if netproc-compat-mode
      (netproc-compat--enable)
    (netproc-compat--disable)))

(provide 'netproc-compat)

;;; netproc-compat.el ends here
