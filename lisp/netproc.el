;;; netproc.el --- make-network-process with its I/O on a GLib thread  -*- lexical-binding: t; -*-

;; Version: 0.1
;; Package-Requires: ((emacs "28.1"))
;; Keywords: comm, processes

;; This file is part of netproc.

;;; Commentary:

;; netproc makes network connections that behave like the processes of
;; `make-network-process' while a dynamic module does their input and
;; output on a thread of its own.  Call `netproc-make-network-process'
;; with the keywords you know; use the twin of every process function,
;; named by one rule: the builtin's name with "process" replaced by
;; "netproc".
;;
;;   (require 'netproc)
;;   (let ((conn (netproc-make-network-process
;;                :name "echo" :host "127.0.0.1" :service 7
;;                :filter (lambda (_proc text) (message "got %S" text)))))
;;     (netproc-send-string conn "hello\n")
;;     (accept-netproc-output conn 1)
;;     (delete-netproc conn))
;;
;; Build the module with `make' in the top directory first.

;;; Code:

(require 'cl-lib)
(require 'netproc-object)
(require 'netproc-channel)
(require 'netproc-io)
(require 'netproc-make)
(require 'netproc-server)

(declare-function netproc--send "netproc-module" (conn string))
(declare-function netproc--set-linger "netproc-module" (conn flag))
(declare-function netproc--queued "netproc-module" (conn))
(declare-function netproc--dropped "netproc-module" (conn))
(declare-function netproc--read-direct "netproc-module"
                  (conn timeout-ms keep ascii-text))
(declare-function netproc--shutdown-write "netproc-module" (conn))
(declare-function netproc--close "netproc-module" (conn))
(declare-function netproc--set-option "netproc-module" (conn option value))
(declare-function netproc--strerror "netproc-module" (code))
(declare-function netproc--datagram-address "netproc-module" (conn))
(declare-function netproc--set-datagram-address "netproc-module"
                  (conn address))

(netproc--load-module)

(defgroup netproc nil
  "Network processes whose I/O runs on a thread of their own."
  :group 'processes
  :prefix "netproc-")

(defcustom netproc-send-high-water-mark (* 4 1024 1024)
  "Bytes a netproc may have queued for sending before a send waits.
Past this mark, `netproc-send-string' and `netproc-send-region' wait for
the engine to write the queue out, dispatching incoming events meanwhile
so that two netprocs sending to each other never deadlock.  \\[keyboard-quit]
ends the wait; what was queued is still sent."
  :type 'integer)

(defcustom netproc-exit-write-timeout nil
  "Seconds Emacs's exit waits at most for netprocs' queued output.
Emacs's send gives the kernel every byte before it returns, and the
kernel sends them after Emacs exits; netproc's send queues them in the
engine, so the exit waits for the engine to write them out.  nil means
as long as each peer takes some of its output within 30 seconds.
\\[keyboard-quit] ends the wait early; what is left is dropped."
  :type '(choice (const :tag "While peers take output" nil)
                 (number :tag "Seconds")))

;;; Making netprocs

(defun netproc-make-network-process (&rest args)
  "Make a network connection as `make-network-process' does; return it.
The value is a netproc: use the netproc twins of the process functions
on it (`netproc-send-string', `delete-netproc', ...).  With no ARGS, return
nil.

ARGS are keyword arguments, read as `make-network-process' reads them
\(the first occurrence of a keyword wins, unknown keywords are kept in the
contact plist):

:name NAME -- the name, a string, made unique with <1>, <2>...
:host HOST -- a host name or address string, or `local' for the loopback
  address; default \"127.0.0.1\" (\"::1\" with :family `ipv6').
:service SERVICE -- a port number, a service name, or for :family `local'
  the socket's path.
:family FAMILY -- nil (any), `ipv4', `ipv6' or `local' (a Unix socket).
:remote ADDRESS -- connect to ADDRESS instead: [A B C D PORT],
  [G0 ... G7 PORT] or a socket path string.
:local ADDRESS -- ignored for clients, as by Emacs.
:nowait BOOL -- return at once with status `connect'; the sentinel gets
  \"open\\n\" or \"failed with code N\\n\" later.  Without it the call
  waits for the connection, and \\[keyboard-quit] cancels it.
:stop BOOL -- start stopped (see `stop-netproc').
:buffer BUFFER -- the buffer or buffer name the default filter inserts in.
:coding CODING -- a coding system, or (DECODING . ENCODING).
:noquery BOOL -- do not ask about this connection when Emacs exits.
:filter FILTER -- called with the netproc and each string received.
:filter-multibyte BOOL -- accepted and ignored, as by Emacs 28.
:sentinel SENTINEL -- called with the netproc and a message when its
  status changes.
:plist PLIST -- the initial `netproc-plist'.
:server BOOL -- listen instead of connecting (an integer is the backlog);
  see `make-network-process'.

Network options, set on the socket before it connects or binds, in the
order given (see also `set-netproc-option'):

:bindtodevice DEVICE -- a network interface name, or nil for none.
:broadcast BOOL, :dontroute BOOL, :keepalive BOOL, :oobinline BOOL,
:reuseaddr BOOL -- on for any non-nil value (0 included).  Servers on
  IPv4 and IPv6 have :reuseaddr on unless it is given.
:linger LINGER -- an integer: linger that many seconds on close; nil:
  off; any other value: on, zero seconds.
:priority PRIORITY -- an integer, the socket's priority.

A bad value signals an error, as does a value the system refuses
\(`file-error' \"Cannot set network option\").

:type `seqpacket' (with :family `local' only, as the system allows)
keeps record boundaries: each send is one record, each record read is
one filter call, whole (Emacs cuts it to `read-process-output-max').

:type `datagram' makes a UDP socket, or a Unix datagram socket with
:family `local'.  Each send is one datagram, to the netproc's datagram
address (see `netproc-datagram-address'); each datagram received is
one filter call, whole.  A client sends to :host and :service (or
:remote); a server (:server t) binds its address, is `open' rather than
listening, accepts nothing, and replies to the sender of the datagram
its filter was last given, or first to :remote if given.  As in Emacs,
a datagram client gets no network option when it is made, and an empty
datagram received ends the netproc.

TLS is not supported and signals an error."
  (and args (netproc--make args)))

;;; Sending

(defun netproc--await-socket (st)
  "Wait while ST is still connecting asynchronously."
  (when (eq (netproc--st-status st) 'connect)
    (netproc--wait-until
     (lambda () (not (eq (netproc--st-status st) 'connect))))))

(defconst netproc--emsgsize 90
  "The errno of a message too long for its socket (Linux).")

(defun netproc--send-refused (proc st refusal)
  "Signal the error Emacs signals when PROC (state ST) could not send.
REFUSAL is (ERRNO . MESSAGE): a seqpacket record or a datagram the
system refused, which leaves PROC open."
  (signal (netproc--file-error-symbol (car refusal))
          (list (if (and (netproc--datagram-p st)
                         (eql (car refusal) netproc--emsgsize))
                    "Sending datagram"
                  "Writing to process")
                (cdr refusal) proc)))

(defun netproc--check-running (proc st)
  "Signal Emacs's error unless PROC (state ST) can send."
  (unless (eq (netproc--st-status st) 'open)
    (error "Process %s not running" (netproc--rec-name proc))))

(defun netproc--encode (st string)
  "Return STRING as the bytes to send for ST.
Multibyte text is encoded.  Unibyte text keeps its bytes, but gets the
end-of-line conversion of the encoding, as Emacs does it."
  (let ((coding (netproc--st-encode st)))
    (cond ((and (memq coding '(nil binary no-conversion))
                (not (multibyte-string-p string)))
           string)
          ((multibyte-string-p string)
           (encode-coding-string string (or coding 'no-conversion)))
          ((and coding (memq (coding-system-eol-type coding) '(1 2)))
           (encode-coding-string
            string (coding-system-change-text-conversion coding 'raw-text)))
          (t string))))

(defun netproc--queue (proc st string)
  "Queue STRING on PROC (state ST), waiting while the queue is too full."
  (netproc--await-socket st)
  (netproc--check-running proc st)
  (when (netproc--st-eof-sent st)
    ;; Emacs would write this to /dev/null; losing data silently is worse
    ;; than saying so.
    (error "Process %s has already sent EOF" (netproc--rec-name proc)))
  (let ((bytes (netproc--encode st string)))
    (unless (equal bytes "")
      (let* ((conn (netproc--st-conn st))
             (queued (netproc--send conn bytes)))
        (when (consp queued)
          (netproc--send-refused proc st queued))
        ;; Emacs's send, quit while it waits for the socket, leaves the
        ;; rest unwritten, and its delete drops that; after a send that
        ;; returned, the kernel has everything (see `delete-netproc').
        (setf (netproc--st-send-quit st) nil)
        (when (> queued netproc-send-high-water-mark)
          (setf (netproc--st-send-quit st) t)
          (netproc--wait-until
           (lambda ()
             (or (not (eq (netproc--st-status st) 'open))
                 (<= (netproc--queued conn)
                     netproc-send-high-water-mark))))
          (setf (netproc--st-send-quit st) nil)
          ;; Still waiting, this send can still say what Emacs's would:
          ;; that its data is gone.  Output is only ever dropped once, by
          ;; the end of the connection or a failed write, and this send's
          ;; was queued last: any drop took some of it.
          (let ((dropped (netproc--dropped conn)))
            (when (and dropped (> (car dropped) 0))
              (netproc--send-dropped proc (cdr dropped)))))))))

(defun netproc--send-dropped (proc errno)
  "Signal that output of PROC was dropped, as Emacs's send would.
ERRNO is the error of the write that failed, or 0 if the connection
ended first."
  (if (eql errno 0)
      (error "Output file descriptor of %s is closed" (netproc--rec-name proc))
    (signal (netproc--file-error-symbol errno)
            (list "Writing to process" (netproc--strerror errno) proc))))

(defun netproc-send-string (netproc string)
  "Send STRING to NETPROC, as `process-send-string' does.
NETPROC may be a netproc, its buffer or its name.  A multibyte STRING is
encoded with the netproc's encoding; a unibyte one is sent as it is.  The
bytes are queued for the engine and the call returns; only when more than
`netproc-send-high-water-mark' bytes are waiting does it wait."
  (let ((proc (netproc--get-netproc netproc)))
    (unless (stringp string)
      (signal 'wrong-type-argument (list 'stringp string)))
    (netproc--queue proc (netproc--st proc) string)
    nil))

(defun netproc-send-region (netproc start end)
  "Send the current buffer's text from START to END to NETPROC.
Like `process-send-region'; see `netproc-send-string'."
  (let* ((proc (netproc--get-netproc netproc))
         (text (condition-case nil
                   (buffer-substring-no-properties start end)
                 (args-out-of-range
                  (signal 'args-out-of-range
                          (list (current-buffer) start end))))))
    (netproc--queue proc (netproc--st proc) text)
    nil))

(defun netproc-send-eof (&optional netproc)
  "Close the sending side of NETPROC once its queue is written.
Like `process-send-eof': data from the peer keeps arriving.  NETPROC
defaults to the current buffer's netproc.  Return NETPROC.  On a
datagram netproc this does nothing, and sending goes on."
  (let* ((proc (netproc--get-netproc netproc))
         (st (netproc--st proc)))
    (netproc--await-socket st)
    (netproc--check-running proc st)
    ;; A datagram socket has no end to send, and Emacs sends none.
    (unless (or (netproc--st-eof-sent st) (netproc--datagram-p st))
      (setf (netproc--st-eof-sent st) t)
      (netproc--shutdown-write (netproc--st-conn st)))
    netproc))

;;; Deleting

(defvar netproc--deleting nil
  "The netprocs whose \"deleted\" sentinel is running, innermost first.")

(defun delete-netproc (netproc)
  "Delete NETPROC: close its connection and run its sentinel.
Like `delete-process': the sentinel gets \"deleted\\n\" before this
returns, unless NETPROC had already closed and left `netproc-list'.
Output still queued is written before the socket closes, as Emacs's
sends would have written it, unless a quit ended the send that queued
it.  NETPROC may be a netproc, its buffer or its name; nil means the
current buffer's netproc."
  (let* ((proc (netproc--get-netproc netproc))
         (st (netproc--st proc))
         (listed (and (eq (gethash (netproc--rec-name proc) netproc--listed)
                          proc)
                      ;; Deleted again from its own "deleted" sentinel,
                      ;; with `delete-exited-processes' nil: Emacs 28.2
                      ;; would run the sentinel again, and again, until
                      ;; it crashes.  Once is enough.
                      (not (memq proc netproc--deleting)))))
    (netproc--forget-events proc)
    (when (netproc--st-conn st)
      (netproc--owner-done (netproc--st-conn st))
      ;; What is queued is written out before the socket closes, as the
      ;; kernel writes what Emacs's send left it, unless a quit ended the
      ;; send that queued it.
      (when (netproc--st-send-quit st)
        (netproc--set-linger (netproc--st-conn st) nil))
      (netproc--close-conn (netproc--st-conn st)))
    (setf (netproc--st-status st) 'closed
          (netproc--st-exit-status st) 0
          (netproc--st-held st) nil)
    ;; Emacs notifies the processes it still lists: a connection that
    ;; closed and left the list with `delete-exited-processes' gets no
    ;; second sentinel call.  It unlists the deleted one before the
    ;; sentinel when `delete-exited-processes' is set, else after it (and
    ;; not at all if the sentinel exits non-locally).
    (when delete-exited-processes
      (netproc--unlist proc))
    (when listed
      (let ((netproc--deleting (cons proc netproc--deleting)))
        (netproc--sentinel-call proc st "deleted\n"))
      (netproc--report-deferred-errors))
    (netproc--unlist proc)
    nil))

;;; Status

(defun netproc-status (netproc)
  "Return the status of NETPROC, as `process-status' does.
The value is `open', `connect', `stop', `closed', `failed' or an error
symbol.  NETPROC may be a netproc, a buffer or a name; a name that no
netproc has gives nil."
  (let ((proc (if (stringp netproc)
                  (gethash netproc netproc--listed)
                (netproc--get-netproc netproc))))
    (when proc
      (let* ((st (netproc--st proc))
             (status (netproc--st-status st)))
        (cond ((eq status 'closed) 'closed)
              ((netproc--st-stopped st) 'stop)
              (t status))))))

(defun netproc-live-p (netproc)
  "Return non-nil if NETPROC is alive, as `process-live-p' does."
  (and (netprocp netproc)
       (memq (netproc-status netproc) '(run open listen connect stop))))

(defun netproc-exit-status (netproc)
  "Return the exit status of NETPROC, as `process-exit-status' does.
0 while open or after `delete-netproc', 256 after the peer closed, the
error number after a failed asynchronous connect.  Unlike Emacs 28, this
is safe while NETPROC is still connecting: it returns 0."
  (netproc--st-exit-status (netproc--st netproc)))

(defun netproc-command (netproc)
  "Return t while NETPROC is stopped, else nil, as `process-command' does."
  (netproc--st-stopped (netproc--st netproc)))

(defun netproc-id (netproc)
  "Return nil: a netproc, like a network process, has no process id.
NETPROC must be a netproc."
  (netproc--st netproc)
  nil)

(defun netproc-tty-name (netproc)
  "Return nil: NETPROC has no terminal, as a network process has none."
  (netproc--st netproc)
  nil)

(defun netproc-type (netproc)
  "Return `network', the type of NETPROC (a netproc, buffer or name)."
  (netproc--get-netproc netproc)
  'network)

(defun netproc-name (netproc)
  "Return the name of NETPROC."
  (netproc--st netproc)
  (netproc--rec-name netproc))

(defun netproc-contact (netproc &optional key no-block)
  "Return what NETPROC was made with, as `process-contact' does.
With KEY nil, (HOST SERVICE); with KEY t, the whole contact plist, which
also holds the :remote and :local addresses once connected; with a
keyword, its value.  While NETPROC is still connecting this waits,
unless NO-BLOCK is non-nil: then it returns nil.  For a datagram
netproc, :remote is its datagram address at the time of the call."
  (let ((st (netproc--st netproc)))
    ;; Emacs answers nil to NO-BLOCK whenever there is no socket: still
    ;; connecting, failed, closed or deleted.
    (if (and no-block (not (memq (netproc--st-status st) '(open listen))))
        nil
      (netproc--await-socket st)
      (when (and (memq key '(t :remote)) (netproc--datagram-live-p st))
        ;; Emacs records where the datagrams go now, in the contact.
        (netproc--contact-put st :remote (netproc--datagram-address
                                          (netproc--st-conn st))))
      (let ((contact (netproc--st-contact st)))
        (cond ((null key)
               (list (plist-get contact :host) (plist-get contact :service)))
              ((eq key t) contact)
              (t (plist-get contact key)))))))

;;; Buffer, filter, sentinel

(defun netproc-buffer (netproc)
  "Return the buffer NETPROC is associated with, or nil."
  (netproc--st-buffer (netproc--st netproc)))

(defun set-netproc-buffer (netproc buffer)
  "Make BUFFER the buffer of NETPROC; return BUFFER."
  (let ((st (netproc--st netproc)))
    (unless (or (null buffer) (bufferp buffer))
      (signal 'wrong-type-argument (list 'bufferp buffer)))
    (setf (netproc--st-buffer st) buffer)
    (netproc--contact-put st :buffer buffer)
    ;; As Emacs does: the mark goes to the end of the new buffer.
    (cond ((buffer-live-p buffer)
           (netproc--watch-buffer buffer)
           (set-marker (netproc--mark st)
                       (with-current-buffer buffer (point-max)) buffer))
          ;; A marker cannot point into a killed buffer: Emacs's ends up
          ;; pointing nowhere.
          (buffer (set-marker (netproc--mark st) nil)))
    buffer))

(defun netproc-mark (netproc)
  "Return the marker where NETPROC's default filter puts text."
  (netproc--mark (netproc--st netproc)))

(defun netproc-filter (netproc)
  "Return the filter of NETPROC.
`internal-default-process-filter' stands for the default, as for
processes."
  (netproc--st-filter (netproc--st netproc)))

(defun set-netproc-filter (netproc filter)
  "Give NETPROC the filter FILTER; nil means the default.  Return it.
FILTER t stops reading, as it does for a process, until another filter
is set."
  (let ((st (netproc--st netproc)))
    (unless filter
      (setq filter 'internal-default-process-filter))
    (setf (netproc--st-filter st) filter)
    (netproc--contact-put st :filter filter)
    (netproc--update-reading st)
    filter))

(defun netproc-sentinel (netproc)
  "Return the sentinel of NETPROC.
`internal-default-process-sentinel' stands for the default."
  (netproc--st-sentinel (netproc--st netproc)))

(defun set-netproc-sentinel (netproc sentinel)
  "Give NETPROC the sentinel SENTINEL; nil means the default.  Return it."
  (let ((st (netproc--st netproc)))
    (unless sentinel
      (setq sentinel 'internal-default-process-sentinel))
    (setf (netproc--st-sentinel st) sentinel)
    (netproc--contact-put st :sentinel sentinel)
    sentinel))

;;; Property list and query flag

(defun netproc-plist (netproc)
  "Return the property list of NETPROC."
  (netproc--st-plist (netproc--st netproc)))

(defun set-netproc-plist (netproc plist)
  "Make PLIST, a list, the property list of NETPROC; return it."
  (let ((st (netproc--st netproc)))
    (unless (listp plist)
      (signal 'wrong-type-argument (list 'listp plist)))
    (setf (netproc--st-plist st) plist)))

(defun netproc-get (netproc propname)
  "Return the value of NETPROC's property PROPNAME."
  (plist-get (netproc-plist netproc) propname))

(defun netproc-put (netproc propname value)
  "Set NETPROC's property PROPNAME to VALUE."
  (set-netproc-plist netproc (plist-put (netproc-plist netproc)
                                        propname value)))

(defun netproc-query-on-exit-flag (netproc)
  "Return non-nil if Emacs asks about NETPROC before exiting."
  (netproc--st-query (netproc--st netproc)))

(defun set-netproc-query-on-exit-flag (netproc flag)
  "Ask about NETPROC when Emacs exits if FLAG is non-nil; return FLAG."
  (setf (netproc--st-query (netproc--st netproc)) (and flag t))
  flag)

(defun netproc-inherit-coding-system-flag (netproc)
  "Return the inherit-coding-system flag of NETPROC."
  (netproc--st-inherit-coding (netproc--st netproc)))

(defun set-netproc-inherit-coding-system-flag (netproc flag)
  "Set the inherit-coding-system flag of NETPROC to FLAG; return FLAG."
  (setf (netproc--st-inherit-coding (netproc--st netproc)) (and flag t))
  flag)

;;; Coding

(defun netproc-coding-system (netproc)
  "Return (DECODING . ENCODING), the coding systems of NETPROC."
  (let ((st (netproc--st netproc)))
    (cons (netproc--st-decode st) (netproc--st-encode st))))

(defun set-netproc-coding-system (netproc &optional decoding encoding)
  "Use DECODING for what NETPROC receives and ENCODING for what it sends.
Like `set-process-coding-system'; returns nil."
  (let ((st (netproc--st netproc)))
    (check-coding-system decoding)
    (check-coding-system encoding)
    ;; Emacs gives an encoding that leaves the end of line open Unix
    ;; line ends, and no encoding at all is then `raw-text-unix'.
    (setq encoding (if (null encoding)
                       'raw-text-unix
                     (if (vectorp (coding-system-eol-type encoding))
                         (coding-system-change-eol-conversion encoding 'unix)
                       encoding)))
    (setf (netproc--st-decode st) decoding
          (netproc--st-encode st) encoding)
    (netproc--update-ascii-text st)
    nil))

(defun netproc-filter-multibyte-p (netproc)
  "Return non-nil if NETPROC's filter gets multibyte strings."
  (let* ((st (netproc--st netproc))
         (decode (netproc--st-decode st)))
    ;; Emacs answers nil for a connection that has no socket.
    (and (memq (netproc--st-status st) '(open listen))
         decode (not (eq (coding-system-type decode) 'raw-text)))))

(defun set-netproc-filter-multibyte (netproc flag)
  "With FLAG nil, give NETPROC's filter unibyte strings from now on.
As `set-process-filter-multibyte' does in Emacs 28, this switches the
decoding to `raw-text' with the same end-of-line conversion."
  (let ((st (netproc--st netproc)))
    (when (and (null flag) (netproc--st-decode st)
               (not (eq (coding-system-type (netproc--st-decode st))
                        'raw-text)))
      (setf (netproc--st-decode st)
            (coding-system-change-text-conversion (netproc--st-decode st)
                                                  'raw-text))
      (netproc--update-ascii-text st))
    nil))

;;; Stopping

(defun netproc--stop-target (netproc)
  "Return the netproc NETPROC is, or signal as `stop-process' does."
  (if (netprocp netproc)
      netproc
    (let ((proc (netproc--get-netproc netproc)))
      (error "Process %s is not a subprocess" (netproc--rec-name proc)))))

(defun stop-netproc (&optional netproc _current-group)
  "Stop reading from NETPROC; the peer is held back.  Return NETPROC.
Like `stop-process' on a network process: status `stop', no sentinel."
  (let* ((proc (netproc--stop-target netproc))
         (st (netproc--st proc)))
    (setf (netproc--st-stopped st) t)
    (unless (memq (netproc--st-status st) '(closed failed))
      (netproc--update-reading st))
    proc))

(defun continue-netproc (&optional netproc _current-group)
  "Resume reading from NETPROC; return NETPROC.
What arrived while it was stopped reaches the filter when Emacs next
waits, then a close that happened meanwhile."
  (let* ((proc (netproc--stop-target netproc))
         (st (netproc--st proc)))
    (setf (netproc--st-stopped st) nil)
    (netproc--update-reading st)
    proc))

;;; Waiting

;; What `accept-netproc-output' waits for.  Dynamic rather than captured
;; by a closure: a wait per message is common, and a closure per wait is
;; garbage per message.  A nested wait binds them afresh.
(defvar netproc--awaited nil "The state of the netproc being waited for.")
(defvar netproc--awaited-reads 0 "Its filter calls when the wait began.")
(defvar netproc--awaited-status nil "Its status when the wait began.")

(defun netproc--awaited-p ()
  "Non-nil when the netproc `accept-netproc-output' waits for is done.
That is, when its filter was called, or its status changed: there will be
no output from a connection that failed, and one that just opened is
what a caller polling a :nowait connect waits for."
  (or (> (netproc--st-reads netproc--awaited) netproc--awaited-reads)
      (not (eq (netproc--st-status netproc--awaited)
               netproc--awaited-status))
      (not (memq netproc--awaited-status '(open connect)))))

(defun accept-netproc-output (&optional netproc seconds millisec
                                        _just-this-one)
  "Wait for output from NETPROC, as `accept-process-output' does.
With NETPROC nil, wait for output from any process or netproc.  Wait at
most SECONDS plus MILLISEC milliseconds, or until output arrives, or, for
a NETPROC, until its status changes (a :nowait connect opened or failed).
Return non-nil if NETPROC (or anything, when NETPROC is nil) gave output.
JUST-THIS-ONE is accepted for compatibility: other netprocs' events are
dispatched in order all the same."
  (if millisec
      (progn
        (unless (fixnump millisec)
          (signal 'wrong-type-argument (list 'fixnump millisec)))
        (unless (or (null seconds) (fixnump seconds))
          (signal 'wrong-type-argument (list 'fixnump seconds))))
    (unless (or (null seconds) (numberp seconds))
      (signal 'wrong-type-argument (list 'numberp seconds))))
  (if (null netproc)
      (prog1 (accept-process-output nil seconds millisec)
        (netproc--dispatch))
    (let* ((netproc--awaited (netproc--st netproc))
           (netproc--awaited-reads (netproc--st-reads netproc--awaited))
           (netproc--awaited-status (netproc--st-status netproc--awaited))
           (limit (if millisec
                      (+ (or seconds 0) (/ millisec 1000.0))
                    seconds)))
      (netproc--read-now netproc--awaited
                         (if (and limit (<= limit 0)) 0 1))
      (netproc--wait-until #'netproc--awaited-p limit)
      (> (netproc--st-reads netproc--awaited) netproc--awaited-reads))))

(defun netproc--read-now (st timeout-ms)
  "Read what ST's socket has on this thread, waiting up to TIMEOUT-MS.
A reply usually comes sooner than the engine thread could pass it on,
so the netproc waited for is read here first, and its filter called.
Only when nothing of it waits to be dispatched, so that its input stays
in order; the end of the connection and errors still come as events.
After a read, this thread keeps the input for the next wait of the
same kind, until Emacs waits in any other way (see
`netproc--give-back-soon')."
  (when (and (eq (netproc--st-status st) 'open)
             (netproc--st-conn st)
             (null (netproc--st-held st))
             (not (netproc--holding-p st))
             (>= netproc--batch-pos (length netproc--batch)))
    (let ((conn (netproc--st-conn st)))
      ;; Only the netproc waited for is kept: another one's input goes
      ;; back to the engine, or it could wait behind this one.
      (setq netproc--reading-here (delq conn netproc--reading-here))
      (netproc--give-back)
      (let* ((ascii (netproc--ascii-text-coding st))
             (bytes (netproc--read-direct conn timeout-ms t (and ascii t))))
        (when bytes
          ;; The module decides what it keeps (not a stream in full
          ;; flow); giving back what it did not keep does nothing.
          (setq netproc--reading-here (list conn))
          (netproc--give-back-soon)
          (netproc--deliver (netproc--st-proc st) st bytes)
          (netproc--report-deferred-errors))))))


;;; Lists and lookups

(defun netproc-list ()
  "Return a list of the netprocs that are not deleted, newest first."
  (let (all)
    (maphash (lambda (_name proc) (push proc all)) netproc--listed)
    ;; A name freed and taken again keeps its old place in the table.
    (sort all (lambda (a b) (> (netproc--rec-id a) (netproc--rec-id b))))))

(defun get-netproc (name)
  "Return the netproc named NAME, or nil."
  (cond ((netprocp name) name)
        ((stringp name) (gethash name netproc--listed))
        (t (signal 'wrong-type-argument (list 'stringp name)))))

(defun netproc--datagram-live-p (st)
  "Non-nil if ST is a datagram netproc that still has its socket."
  (and (netproc--datagram-p st)
       (eq (netproc--st-status st) 'open)
       (netproc--st-conn st)))

(defun netproc-datagram-address (netproc)
  "Return where NETPROC sends its datagrams, as `process-datagram-address'.
For a client, the address it was made for; for a server, the sender of
the datagram its filter was last given (all zeros before the first, or
the :remote it was made with).  The value is an address in the form
of `netproc-contact', or nil when NETPROC is not a datagram netproc or
is no longer open.  While NETPROC is still connecting, this waits."
  (let ((st (netproc--st netproc)))
    (netproc--await-socket st)
    (and (netproc--datagram-live-p st)
         (netproc--datagram-address (netproc--st-conn st)))))

(defun set-netproc-datagram-address (netproc address)
  "Send NETPROC's datagrams to ADDRESS from now on.
Like `set-process-datagram-address': return ADDRESS, or nil when
NETPROC is not an open datagram netproc or ADDRESS does not fit its
socket (an IPv6 address for an IPv4 socket, say).  While NETPROC is
still connecting, this waits."
  (let ((st (netproc--st netproc)))
    (netproc--await-socket st)
    (and (netproc--datagram-live-p st)
         (netproc--set-datagram-address (netproc--st-conn st) address)
         address)))

(defun set-netproc-option (netproc option value &optional no-error)
  "Set the network OPTION of NETPROC to VALUE, as `set-network-process-option'.
OPTION is one of the options `netproc-make-network-process' takes
\(:keepalive, :linger, ...).  Return t, and record VALUE in NETPROC's
contact.  An unknown OPTION signals an error, or with NO-ERROR non-nil
returns nil; a bad VALUE signals either way.  NETPROC may be a server.
While NETPROC is still connecting (:nowait), this waits for it."
  (let ((st (netproc--st netproc)))
    (netproc--await-socket st)
    (unless (memq (netproc--st-status st) '(open listen))
      (error "Process is not running"))
    (unless (symbolp option)
      (signal 'wrong-type-argument (list 'symbolp option)))
    (if (not (memq option netproc--network-options))
        (unless no-error
          (error "Unknown or unsupported option"))
      (let ((bad (netproc--option-error option value)))
        (when bad
          (signal (car bad) (cdr bad))))
      ;; -1: the engine has let go of the socket (the peer closed it, and
      ;; the event saying so is still on its way).  Emacs, which has not
      ;; read the end yet either, sets the option on a socket that is
      ;; about to go: t all the same.
      (let ((code (netproc--set-option (netproc--st-conn st) option value)))
        (when (> code 0)
          (signal (netproc--file-error-symbol code)
                  (list "Cannot set network option" (netproc--strerror code)
                        option value))))
      (netproc--contact-put st option value)
      t)))

;;; Features

(defconst netproc--subfeatures
  '(:reuseaddr :priority :oobinline :linger :keepalive :dontroute
    :broadcast :bindtodevice
    (:server t) (:service t) (:family ipv6) (:family ipv4) (:family local)
    (:nowait t) (:type seqpacket) (:type datagram))
  "What `netproc-make-network-process' supports, as `featurep' asks it.
The same list as Emacs's for `make-network-process'.")

(provide 'netproc-make-network-process netproc--subfeatures)

(defun netproc-featurep (&optional subfeature)
  "Return t if `netproc-make-network-process' supports SUBFEATURE.
The twin of (featurep \='make-network-process SUBFEATURE): SUBFEATURE is
a network option keyword such as :keepalive, or a list such as
\(:nowait t), (:family local) or (:type datagram); nil asks whether
netproc is there at all.  The same answer comes from
\(featurep \='netproc-make-network-process SUBFEATURE)."
  (featurep 'netproc-make-network-process subfeature))

;;; Buffers and exiting

(defun netproc-kill-buffer-query-function ()
  "Ask before killing a buffer whose netproc is alive and flagged.
Like `process-kill-buffer-query-function'."
  (let ((proc (netproc--buffer-netproc (current-buffer))))
    (or (not proc)
        (not (netproc-query-on-exit-flag proc))
        (not (memq (netproc-status proc) '(run stop open listen)))
        (yes-or-no-p (format "Buffer %S has a running process; kill it? "
                             (buffer-name (current-buffer)))))))

(defun netproc--kill-buffer-netprocs ()
  "Delete the netprocs of the buffer being killed, as Emacs does.
Emacs deletes a buffer's processes once `kill-buffer-hook' has run, newest
first; this runs from the buffer's own hook, after every other function."
  (let ((buffer (current-buffer)) doomed)
    (maphash (lambda (_name proc)
               (when (eq (netproc--st-buffer (netproc--st proc)) buffer)
                 (push proc doomed)))
             netproc--listed)
    (mapc #'delete-netproc
          (sort doomed (lambda (a b)
                         (> (netproc--rec-id a) (netproc--rec-id b)))))))

(defun netproc--kill-emacs-query ()
  "Ask before exiting while flagged netprocs are alive."
  (or (not confirm-kill-processes)
      (not (cl-some (lambda (proc)
                      (and (netproc-query-on-exit-flag proc)
                           (memq (netproc-status proc)
                                 '(run stop open listen))))
                    (netproc-list)))
      (yes-or-no-p "Active processes exist; kill them and exit anyway? ")))

(add-hook 'kill-buffer-query-functions #'netproc-kill-buffer-query-function)
(add-hook 'kill-emacs-query-functions #'netproc--kill-emacs-query)
(add-hook 'kill-emacs-hook #'netproc--shutdown)

(provide 'netproc)

;;; netproc.el ends here
