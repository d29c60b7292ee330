;;; netproc-make.el --- netproc-make-network-process  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Reads the arguments of `make-network-process' as Emacs 28 reads them:
;; the same checks in the same order, so a bad argument signals the same
;; error, and the same contact plist.  Then it asks the engine to connect
;; and, unless :nowait, waits for the outcome while Emacs keeps running
;; (and `C-g' works).

;;; Code:

(require 'cl-lib)
(require 'netproc-object)
(require 'netproc-channel)
(require 'netproc-io)
(require 'netproc-server)

(declare-function netproc--connect "netproc-module"
                  (id family host port path remote now options type))
(declare-function netproc--close "netproc-module" (conn))
(declare-function netproc--service-port "netproc-module" (name))
(declare-function netproc--strerror "netproc-module" (code))

(defconst netproc--network-options
  '(:reuseaddr :broadcast :dontroute :keepalive :linger :oobinline
    :priority :bindtodevice)
  "The keywords of `make-network-process' that are socket options.")

(defun netproc--check-type (args)
  "Check the :type and :server of ARGS as Emacs does, first of all."
  (unless (memq (plist-get args :type) '(nil datagram seqpacket))
    (error "Unsupported connection type"))
  (when (and (plist-get args :server) (plist-get args :nowait))
    (error "`:server' is incompatible with `:nowait'")))

(defun netproc--option-pairs (args)
  "Return the network options of the argument list ARGS, in order.
The value is a vector [OPTION VALUE ...] of the pairs Emacs acts on when
it makes the socket: each network option, duplicates included, and each
pair whose key is not a symbol (Emacs signals for it there).  A trailing
key without a value has the value nil."
  (let (pairs)
    (while args
      (let ((key (car args)))
        (when (or (not (symbolp key)) (memq key netproc--network-options))
          (push key pairs)
          (push (cadr args) pairs)))
      (setq args (cddr args)))
    (vconcat (nreverse pairs))))

(defun netproc--option-error (option value)
  "Return the error Emacs signals for network OPTION with VALUE, or nil.
The value is (ERROR-SYMBOL . DATA), for a non-symbol OPTION or a VALUE
that OPTION does not take."
  (cond ((not (symbolp option)) (list 'wrong-type-argument 'symbolp option))
        ((or (and (eq option :priority)
                  (not (and (integerp value)
                            (<= -2147483648 value 2147483647))))
             (and (eq option :bindtodevice) value (not (stringp value))))
         (list 'error (format "Bad option value for %s" option)))))

(defun netproc--file-error-symbol (code)
  "Return the symbol of a file error with errno CODE, as Emacs picks it."
  (pcase code
    (2 'file-missing)                     ; ENOENT
    (13 'permission-denied)               ; EACCES
    (17 'file-already-exists)             ; EEXIST
    (_ 'file-error)))

(defun netproc--option-failure (pairs index code)
  "Return the error for option INDEX of PAIRS, which failed with errno CODE.
PAIRS is what `netproc--option-pairs' made; the value is (SYMBOL . DATA)."
  (let ((option (aref pairs (* 2 index)))
        (value (aref pairs (1+ (* 2 index)))))
    (or (netproc--option-error option value)
        (list (netproc--file-error-symbol code) "Cannot set network option"
              (netproc--strerror code) option value))))

(defun netproc--check-option-values (st)
  "Signal as Emacs does if a network option of ST has a bad value.
For a :nowait connect, whose options are applied on the engine thread:
Emacs finds such a value inside its event loop, where it crashes."
  (let ((pairs (netproc--st-options st)))
    (dotimes (i (/ (length pairs) 2))
      (let ((err (netproc--option-error (aref pairs (* 2 i))
                                        (aref pairs (1+ (* 2 i))))))
        (when err
          (netproc--forget (netproc--st-proc st))
          (signal (car err) (cdr err)))))))

(defconst netproc--esocktnosupport 94
  "The errno of socket(2) for a socket type the family does not have.")

(defun netproc--socket-refused-p (args target)
  "Non-nil if socket(2) would refuse the socket ARGS and TARGET ask for.
That is a seqpacket socket of a family other than `local'.  An address
in the (FAMILY . VECTOR) form is left to `netproc--start-connect',
which refuses every such address alike."
  (and (eq (plist-get args :type) 'seqpacket)
       (not (eq (plist-get target :family) 'local))
       (not (consp (plist-get target :remote)))))

(defun netproc--check-supported (args target)
  "Refuse what the system would refuse, where Emacs would make the socket.
ARGS are the arguments, TARGET what `netproc--target' made of them.  A
:nowait client is refused later (see `netproc--refuse-socket')."
  (when (and (netproc--socket-refused-p args target)
             (or (plist-get args :server) (not (plist-get args :nowait))))
    ;; What socket(2) answers; Emacs reports it so.
    (signal 'file-error
            (cons (if (plist-get args :server)
                      "make server process failed"
                    "make client process failed")
                  (cons (netproc--strerror netproc--esocktnosupport)
                        args)))))

(defun netproc--address-form-p (address)
  "Non-nil if ADDRESS has one of the forms Emacs takes for an address.
Unlike Emacs, which reads non-integer elements as garbage, netproc wants
integers in an address vector."
  (or (and (vectorp address) (memq (length address) '(5 9))
           (cl-every #'fixnump address))
      (stringp address)
      (and (consp address) (integerp (car address)) (vectorp (cdr address)))))

(defun netproc--family (value)
  "Return the family symbol (nil, ipv4, ipv6 or local) meant by VALUE.
Integers are address family numbers, as Emacs allows if they fit in a
C int; others that the system has no use for become the symbol
`unsupported'."
  (cond ((memq value '(nil ipv4 ipv6 local)) value)
        ((eql value 0) nil)
        ((eql value 1) 'local)
        ((eql value 2) 'ipv4)
        ((eql value 10) 'ipv6)
        ((and (fixnump value) (<= -2147483648 value 2147483647)) 'unsupported)
        (t (error "Unknown address family"))))

(defun netproc--portstring (service)
  "Return SERVICE as Emacs passes it to the resolver, for messages.
That is text, or a fixnum, which is kept as it is: messages print it as
the same text, and a connection need not allocate that text for
nothing.  A bignum is no port number to Emacs: it wants a string
instead."
  (cond ((eq service t) "0")
        ((or (fixnump service) (stringp service)) service)
        (t (signal 'wrong-type-argument (list 'stringp service)))))

(defun netproc--port (portstring)
  "Return the port number of PORTSTRING, or nil when no service has it.
A number is read as the C library reads it: `strtoul', kept as a 32-bit
int that must not be negative, then cut to 16 bits."
  (cond ((equal portstring "") 0)
        ((string-match "\\`[ \t\n\v\f\r]*\\([-+]?\\)\\([0-9]+\\)\\'" portstring)
         (let* ((digits (string-to-number (match-string 2 portstring)))
                (value (cond ((>= digits (expt 2 64)) (1- (expt 2 64)))
                             ((equal (match-string 1 portstring) "-")
                              (mod (- digits) (expt 2 64)))
                             (t digits)))
                (int (logand value #xffffffff)))
           (and (< int #x80000000) (logand int #xffff))))
        (t (netproc--service-port portstring))))

(defun netproc--literal-family (host)
  "Return `ipv4' or `ipv6' if HOST is a numeric address of that family."
  (cond ((string-match-p "\\`[0-9]+\\(\\.[0-9]+\\)\\{3\\}\\'" host) 'ipv4)
        ((string-match-p "\\`[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\\'" host) 'ipv6)))

(defun netproc--default-coding (args buffer host service)
  "Return (DECODING . ENCODING) for a netproc made with ARGS.
BUFFER, HOST and SERVICE are as resolved; this follows Emacs's order:
:coding, then `coding-system-for-read' and `coding-system-for-write', then
`find-operation-coding-system', then `default-process-coding-system'."
  (let* ((given (plist-get args :coding))
         (unibyte (if buffer
                      (and (buffer-live-p buffer)
                           (not (buffer-local-value
                                 'enable-multibyte-characters buffer)))
                    (not (default-value 'enable-multibyte-characters))))
         (found (and (not given) host service
                     (find-operation-coding-system
                      'open-network-stream (plist-get args :name)
                      buffer host service)))
         (fallback (if (consp found) found default-process-coding-system)))
    (cons (cond (given (if (consp given) (car given) given))
                (coding-system-for-read)
                (unibyte 'raw-text)
                ((consp fallback) (car fallback)))
          (cond (given (if (consp given) (cdr given) given))
                (coding-system-for-write)
                (unibyte nil)
                ((consp fallback) (cdr fallback))))))

(defun netproc--check-coding (coding)
  "Signal as Emacs does when the :coding value CODING is not usable."
  (dolist (c (if (consp coding) (list (car coding) (cdr coding))
               (list coding)))
    (unless (symbolp c)
      (signal 'wrong-type-argument (list 'symbolp c)))
    (check-coding-system c)))

(defun netproc--target (args)
  "Check the address arguments of ARGS; return where to connect.
The value is a plist with :family, :host, :portstring (see
`netproc--portstring'), :port, :path and :remote, from which the engine
gets exactly one destination."
  (let* ((server (plist-get args :server))
         ;; A server binds its :local address; a client connects to :remote.
         (given (plist-get args (if server :local :remote))))
    (if given
        (progn
          (unless (netproc--address-form-p given)
            (error "Malformed :address"))
          (list (if server :address :remote) given
                :family (cond ((stringp given) 'local)
                              ((and (vectorp given) (= (length given) 9))
                               'ipv6)
                              ((vectorp given) 'ipv4))))
      (let* ((family (netproc--family (plist-get args :family)))
             (service (plist-get args :service))
             (host (plist-get args :host)))
        (setq host (cond ((null host)
                          (unless (eq family 'local)
                            (if (eq family 'ipv6) "::1" "127.0.0.1")))
                         ((eq host 'local)
                          (if (eq family 'ipv6) "::1" "127.0.0.1"))
                         ((stringp host) host)
                         (t (signal 'wrong-type-argument
                                    (list 'stringp host)))))
        (if (eq family 'local)
            (progn
              (when (plist-get args :host)
                (message ":family local ignores the :host property"))
              (unless (stringp service)
                (signal 'wrong-type-argument (list 'stringp service)))
              (when (>= (string-bytes service) 108)
                (error "Service name too long"))
              (list :family 'local :path service))
          (let ((portstring (netproc--portstring service)))
            ;; Emacs checks this before a blocking lookup only; with
            ;; :nowait the lookup fails (see `netproc--lookup-error').
            (when (and (netproc--non-ascii-p host)
                       (not (plist-get args :nowait)))
              (error "Non-ASCII hostname %s detected, please use puny-encode-domain"
                     host))
            (list :family family :host host :portstring portstring
                  :port (cond ((not (fixnump portstring))
                               (netproc--port portstring))
                              ((<= 0 portstring #x7fffffff)
                               ;; What parsing its text would give.
                               (logand portstring #xffff))
                              (t (netproc--port
                                  (number-to-string portstring)))))))))))

(defun netproc--non-ascii-p (host)
  "Non-nil if the host name HOST has a character that is not ASCII."
  (and (multibyte-string-p host) (/= (string-bytes host) (length host))))

(defun netproc--lookup-error (target)
  "Return the resolver's complaint about TARGET, or nil if it has none.
These are the failures the C library reports before any lookup, and
the names it finds nothing for without asking a name server: the empty
name, and a name that is not ASCII, which only a :nowait call gets this
far with (GLib would ask for its IDN form).  Emacs's blocking lookup
comes before it makes anything, so these must be known before too."
  (let ((family (plist-get target :family))
        (host (plist-get target :host)))
    (cond ((and host (netproc--non-ascii-p host))
           "Name or service not known")
          ((eq family 'unsupported)
           "ai_family not supported")
        ((and host (null (plist-get target :port)))
         "Servname not supported for ai_socktype")
        ((and host (memq family '(ipv4 ipv6))
              (memq (netproc--literal-family host) '(ipv4 ipv6))
              (not (eq (netproc--literal-family host) family)))
         "Address family for hostname not supported")
        ((equal host "")
         "Name or service not known"))))

(defun netproc--contact-plist (args target)
  "Return the contact plist of a netproc made with ARGS and TARGET.
That is ARGS itself, as in Emacs, with two amendments: the :host of a
Unix socket named by :family `local' and :service is nil (an address
given as :remote or :local leaves it as it is), and an odd trailing
keyword gets a nil value (Emacs reads it as nil too, but crashes when it
later adds :remote to such a list)."
  (let ((contact args))
    (when (cl-oddp (length contact))
      (setq contact (append contact (list nil))))
    (when (and (plist-get target :path)
               (plist-get contact :host))
      (setq contact (plist-put contact :host nil)))
    contact))

(defun netproc--setup (args target)
  "Register a netproc for ARGS and TARGET; return its state."
  (let* ((name (plist-get args :name))
         (buffer (let ((b (plist-get args :buffer)))
                   (and b (get-buffer-create b))))
         (plist (copy-sequence (plist-get args :plist)))
         (tls (plist-get args :tls-parameters)))
    (unless (listp tls)
      (signal 'wrong-type-argument (list 'listp tls)))
    (netproc--check-supported args target)
    (when tls
      (error "netproc does not support TLS; use `make-network-process'"))
    ;; The coding first: `network-coding-system-alist' may name a
    ;; function, and if that signals, nothing must be registered.
    (let* ((coding (netproc--default-coding
                    args buffer (plist-get target :host)
                    (plist-get args :service)))
           (st (netproc--register name)))
      (setf (netproc--st-contact st) (netproc--contact-plist args target)
            (netproc--st-options st) (netproc--option-pairs args)
            (netproc--st-buffer st) buffer
            (netproc--st-plist st) plist
            (netproc--st-query st) (not (plist-get args :noquery))
            (netproc--st-stopped st) (and (plist-get args :stop) t)
            (netproc--st-nowait st) (and (plist-get args :nowait) t)
            (netproc--st-family st) (plist-get target :family)
            (netproc--st-host st) (plist-get target :host)
            (netproc--st-portstring st) (plist-get target :portstring)
            (netproc--st-decode st) (car coding)
            (netproc--st-encode st) (cdr coding))
      (let ((filter (plist-get args :filter))
            (sentinel (plist-get args :sentinel)))
        (when filter (setf (netproc--st-filter st) filter))
        (when sentinel (setf (netproc--st-sentinel st) sentinel)))
      (when (buffer-live-p buffer)
        (netproc--watch-buffer buffer)
        (set-marker (netproc--mark st)
                    (with-current-buffer buffer (point-max)) buffer))
      st)))

(defmacro netproc--forgetting-on-error (st &rest body)
  "Run BODY; if it signals, forget ST first.
A macro: a function taking the arguments of the module call as a list
would allocate that list for every connect."
  (declare (indent 1) (debug t))
  (let ((err (make-symbol "err")))
    `(condition-case ,err
         (progn ,@body)
       (error
        (netproc--forget (netproc--st-proc ,st))
        (signal (car ,err) (cdr ,err))))))

(defun netproc--literal-p (target)
  "Non-nil if TARGET needs no name lookup: an address or a socket path."
  (or (plist-get target :path) (plist-get target :remote)))

(defconst netproc--eagain 11
  "The errno of a connect to a Unix socket whose backlog is full (Linux).")

(defun netproc--backlog-pause (st target result pause)
  "Return how long ST waits before connecting to TARGET again, or nil.
RESULT is what the module's connect gave; PAUSE the last wait, or nil.
A blocking connect to a Unix socket whose backlog is full waits, in
Emacs, until the server accepts: the system refuses it at once, so it
is tried again, after waits that grow from a millisecond to fifty.  A
`:nowait' one fails, as in Emacs."
  (and (not (netproc--st-nowait st))
       (plist-get target :path)
       (not (netproc--datagram-p st))
       (vectorp result)
       (null (aref result 0))
       (eql (aref result 1) netproc--event-failed)
       (eql (car (aref result 2)) netproc--eagain)
       (if pause (min 0.05 (* 2 pause)) 0.001)))

(defun netproc--pause-connect (st seconds)
  "Wait SECONDS before ST's next try to connect; forget ST on a quit.
Emacs runs timers and other processes meanwhile."
  (let ((done nil))
    (unwind-protect
        (progn (netproc--wait-until #'ignore seconds)
               (setq done t))
      (unless done
        (netproc--forget (netproc--st-proc st))))))

(defun netproc--start-connect (st target)
  "Ask the engine to connect ST to TARGET.
A blocking connect to a numeric address or a socket path is tried at
once, on this thread: when it settles, its outcome is handled here, as
the engine's event would have been.  So is the start of a :nowait one
to an address given as such or a socket path: Emacs makes that socket,
sets its options and starts the connect in the call too (see
`netproc--failed-at-once').  A :nowait one to a host name that is a
numeric inet address is tried at once as well, though Emacs looks it
up first: what settles at once is kept for the next wait (see
`netproc--settle-later'), as the lookup would have made it wait."
  (let* ((remote (plist-get target :remote))
         (id (netproc--rec-id (netproc--st-proc st)))
         (nowait (netproc--st-nowait st))
         (now (cond ((not nowait) t)
                    ;; Emacs does not make a datagram client's connect
                    ;; wait, and sets no options on it.
                    ((netproc--datagram-p st) nil)
                    ((netproc--literal-p target) 0)
                    ((not (plist-get target :path)) 'soon))))
    (when (consp remote)
      ;; Emacs would "connect" such an address to nothing and let the first
      ;; send kill it with SIGPIPE; refuse it as the system would.
      (netproc--forget (netproc--st-proc st))
      (signal 'file-error
              (cons "make client process failed"
                    (cons "Address family not supported by protocol"
                          (netproc--st-contact st)))))
    (let ((result nil)
          (pause nil))
      (while (progn
               (setq result
                     (netproc--forgetting-on-error st
                       (netproc--connect
                        id
                        (and (memq (plist-get target :family) '(ipv4 ipv6))
                             (plist-get target :family))
                        (plist-get target :host)
                        (plist-get target :port)
                        (plist-get target :path)
                        remote now
                        ;; Emacs sets no option on a datagram client it
                        ;; makes.
                        (unless (netproc--datagram-p st)
                          (netproc--st-options st))
                        ;; Records and datagrams arrive whole (Emacs cuts
                        ;; them to `read-process-output-max').
                        (plist-get (netproc--st-contact st) :type))))
               (setq pause (netproc--backlog-pause st target result pause)))
        (netproc--pause-connect st pause))
      (cond
       ((not (vectorp result))
        (setf (netproc--st-conn st) result))
       ((eq now 'soon)
        (setf (netproc--st-conn st) (aref result 0))
        (netproc--settle-later id (aref result 1) (aref result 2)
                               (aref result 0)))
       (nowait
        ;; Only a failure comes back at once (NOW 0).
        (netproc--failed-at-once st (aref result 2)))
       (t
        (setf (netproc--st-conn st) (aref result 0)
              ;; The creating call reports a failure itself.
              (netproc--st-blocking st) t)
        (netproc--handle-event id (aref result 1) (aref result 2))
        (when (netproc--st-conn st)
          ;; The module leaves an opened stream's input to this thread.
          (netproc--owner-reads (netproc--st-conn st))))))
    (netproc--update-ascii-text st)
    (when (netproc--holding-p st)
      (netproc--update-reading st))))

(defun netproc--failed-at-once (st failure)
  "Settle ST, a :nowait connect that FAILURE ended before it started.
FAILURE is a FAILED event's payload.  An option the system refused
signals, as in Emacs, which then deletes the process.  A connect that
failed at once (a Unix socket's always does) makes the error the
status, as Emacs shows it, with no sentinel."
  (let ((proc (netproc--st-proc st)))
    (pcase-let ((`(,code ,message ,_ ,_ ,_ ,option) failure))
      (if option
          (let ((err (netproc--option-failure (netproc--st-options st)
                                              option code)))
            (netproc--forget proc)
            (signal (car err) (cdr err)))
        (netproc--forget-events proc)
        (setf (netproc--st-failure st) failure
              (netproc--st-status st) (netproc--file-error-symbol code)
              (netproc--st-exit-status st)
              (cons "make client process failed"
                    (cons message (netproc--st-contact st))))))))

(defun netproc--refuse-socket (st target)
  "Settle ST, a :nowait connect to TARGET whose socket the system refuses.
Emacs shows the refusal as the status, with no sentinel, and neither sets
options nor looks at :coding: at once for an address, after the lookup
for a host name, which is when it makes the socket."
  (let ((failure (list netproc--esocktnosupport
                       (netproc--strerror netproc--esocktnosupport)
                       nil nil nil nil)))
    (if (netproc--literal-p target)
        (netproc--failed-at-once st failure)
      (netproc--forget-events (netproc--st-proc st))
      (run-at-time 0 nil #'netproc--failed-after-lookup st failure))))

(defun netproc--failed-after-lookup (st failure)
  "Settle ST as `netproc--failed-at-once' does, unless ST was deleted.
FAILURE is as for that function."
  (when (eq (netproc--st-status st) 'connect)
    (netproc--failed-at-once st failure)))

(defun netproc--check-before-lookup (st args)
  "Signal at once for what Emacs would find wrong with ST after its lookup.
ARGS are its arguments.  Emacs sets the options of a :nowait connect to
a host when the lookup is done, then looks at its :coding: inside its
event loop, where it signals from whatever call waits and leaves the
process in `connect' for ever.  Here the call itself signals."
  (unless (netproc--datagram-p st)
    (netproc--check-option-values st))
  (when (plist-member args :coding)
    (netproc--forgetting-on-error st
      (netproc--check-coding (plist-get args :coding)))))

(defun netproc--fail-lookup (st message)
  "Settle ST as a name lookup that failed with MESSAGE.
Blocking: signal Emacs's error.  :nowait: Emacs starts the lookup and
finds that it failed at its next wait, so the status stays `connect'
until then, and becomes `failed' with no sentinel."
  (let ((proc (netproc--st-proc st)))
    (if (netproc--st-nowait st)
        (progn
          (netproc--forget-events proc)
          (run-at-time 0 nil #'netproc--lookup-failed st))
      (netproc--forget proc)
      (error "%s/%s %s" (netproc--st-host st) (netproc--st-portstring st)
             message))))

(defun netproc--lookup-failed (st)
  "Make ST's status that of a failed name lookup, unless ST was deleted."
  (when (eq (netproc--st-status st) 'connect)
    (setf (netproc--st-status st) 'failed
          (netproc--st-exit-status st)
          (format "Name lookup of %s failed" (netproc--st-host st)))))

(defun netproc--await-connect (st)
  "Wait until ST's blocking connect has an outcome; signal if it failed.
A quit cancels the connect."
  (let ((proc (netproc--st-proc st)))
    ;; A connect the module settled in the call (most of them) needs no
    ;; wait, and no closure for one: what a loop of short connections
    ;; allocates is what its collections cost.
    (when (eq (netproc--st-status st) 'connect)
      (let ((settled nil))
        (setf (netproc--st-blocking st) t)
        (unwind-protect
            (progn
              (netproc--wait-until
               (lambda () (not (eq (netproc--st-status st) 'connect))))
              (setq settled t))
          (setf (netproc--st-blocking st) nil)
          (unless settled
            (netproc--close (netproc--st-conn st))
            (netproc--forget proc)))))
    (setf (netproc--st-blocking st) nil)
    ;; What came with the opening waits for the caller's next wait.
    (netproc--release-held-soon st)
    (when (eq (netproc--st-status st) 'failed)
      (netproc--forget proc)
      (pcase-let ((`(,code ,message ,resolve-p ,_ ,_ ,option)
                   (netproc--st-failure st)))
        (cond
         (option
          (let ((err (netproc--option-failure (netproc--st-options st)
                                              option code)))
            (signal (car err) (cdr err))))
         (resolve-p
          (error "%s/%s %s" (netproc--st-host st)
                 (netproc--st-portstring st) message))
         (t
          (signal (if (eql code netproc--enoent) 'file-missing 'file-error)
                  (cons "make client process failed"
                        (cons message (netproc--st-contact st))))))))))

(defun netproc--check-coding-after-connect (st args)
  "Check :coding of ARGS once ST is connected, as Emacs does then."
  (when (plist-member args :coding)
    (condition-case err
        (netproc--check-coding (plist-get args :coding))
      (error
       (netproc--close (netproc--st-conn st))
       (netproc--forget (netproc--st-proc st))
       (signal (car err) (cdr err))))))

(defun netproc--make (args)
  "Make a netproc from the argument list ARGS of `make-network-process'."
  (netproc--check-type args)
  (let ((name (plist-get args :name)))
    (unless (stringp name)
      (signal 'wrong-type-argument (list 'stringp name))))
  (let* ((target (netproc--target args))
         (lookup-error (netproc--lookup-error target)))
    (when (and lookup-error (not (plist-get args :nowait)))
      (error "%s/%s %s" (plist-get target :host)
             (plist-get target :portstring) lookup-error))
    (netproc--ensure-engine)
    (let ((st (netproc--setup args target)))
      (cond
       ;; Emacs never gets to the options or :coding of a failed lookup.
       (lookup-error (netproc--fail-lookup st lookup-error))
       ((plist-get args :server)
        (netproc--start-server st args target)
        (netproc--check-coding-after-connect st args))
       ((and (netproc--st-nowait st) (netproc--socket-refused-p args target))
        (netproc--refuse-socket st target))
       ((and (netproc--st-nowait st) (netproc--literal-p target))
        (netproc--start-connect st target)
        ;; Emacs looks at :coding once the connect is under way, not
        ;; when it failed at once.
        (when (eq (netproc--st-status st) 'connect)
          (netproc--check-coding-after-connect st args)))
       ((netproc--st-nowait st)
        (netproc--check-before-lookup st args)
        (netproc--start-connect st target))
       (t
        (netproc--start-connect st target)
        (netproc--await-connect st)
        (netproc--check-coding-after-connect st args)))
      (netproc--st-proc st))))

(provide 'netproc-make)

;;; netproc-make.el ends here
