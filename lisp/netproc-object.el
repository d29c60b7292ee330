;;; netproc-object.el --- netproc objects and their registry  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; A netproc is a small record, #s(netproc NAME ID), so that printing one
;; shows a person its name and never drags a buffer, a plist or a closure
;; into the output.  Everything else about it lives in a `netproc--st'
;; found through a weak table: a netproc that Lisp no longer references
;; and that is closed costs nothing, while a live one stays reachable from
;; `netproc--live' (dispatch by engine id) and `netproc--listed' (what
;; `netproc-list' shows) until it is deleted, like a process.

;;; Code:

(require 'cl-lib)

(cl-defstruct (netproc (:constructor netproc--new (name id))
                       (:conc-name netproc--rec-)
                       (:copier nil)
                       (:predicate netprocp))
  "A network connection whose input and output run in netproc's engine."
  (name nil :read-only t)
  (id nil :read-only t))

(put 'netprocp 'function-documentation
     "Return t if OBJECT is a netproc, as `processp' does for a process.
A deleted netproc is still a netproc.

\(fn OBJECT)")

(defalias 'netproc-p #'netprocp
  "Another name of `netprocp', the twin of `processp'.")

(cl-defstruct (netproc--st (:constructor netproc--st-new (proc))
                           (:copier nil))
  "What a netproc is, beyond its name."
  proc conn
  (status 'connect)       ; connect, open, failed, closed, or an error symbol
  (exit-status 0)
  stopped                 ; `process-command' is t while stopped
  buffer mark
  (filter 'internal-default-process-filter)
  (sentinel 'internal-default-process-sentinel)
  plist contact
  options                 ; [OPTION VALUE ...] applied at creation
  decode encode
  (carry "")              ; undecoded tail of the last read
  (query t)
  inherit-coding
  nowait                  ; made with :nowait
  blocking                ; the creating call is still waiting for it
  failure                 ; (CODE MESSAGE RESOLVE-P) of a failed connect
  family host portstring
  eof-sent
  send-quit               ; the last send was quit while it waited
  held                    ; events kept back while stopped, newest first
  server                  ; non-nil for a listening netproc
  log                     ; a server's :log function
  (reads 0))              ; filter calls made, for `accept-netproc-output'

(defvar netproc--states (make-hash-table :test 'eq :weakness 'key)
  "Each netproc's `netproc--st'.")

(defvar netproc--live (make-hash-table :test 'eql)
  "Engine id to netproc, for the netprocs whose events still matter.")

(defvar netproc--listed (make-hash-table :test 'equal)
  "Name to netproc, for the netprocs `netproc-list' shows.
Emacs hash tables keep insertion order, so this is also creation order.")

(defvar netproc--next-id 0
  "The engine id of the next netproc.")

(defun netproc--st (proc)
  "Return the state of PROC, which must be a netproc."
  (or (and (netprocp proc) (gethash proc netproc--states))
      (signal 'wrong-type-argument (list 'netprocp proc))))

(defvar netproc--name-hints (make-hash-table :test 'equal)
  "For a name, the smallest N for which NAME<N> may be free.
Without it, making thousands of netprocs of one name would try every
taken NAME<N> each time.")

(defun netproc--unique-name (name)
  "Return NAME, or NAME<N> with the first N that is free, as Emacs does."
  (if (not (gethash name netproc--listed))
      name
    (let ((n (gethash name netproc--name-hints 1)))
      (while (gethash (format "%s<%d>" name n) netproc--listed)
        (setq n (1+ n)))
      (puthash name (1+ n) netproc--name-hints)
      (format "%s<%d>" name n))))

(defun netproc--free-name (name)
  "Note that NAME is free again, for `netproc--unique-name'."
  (when (and (string-suffix-p ">" name)
             (string-match "\\`\\(.*\\)<\\([0-9]+\\)>\\'" name))
    (let ((base (match-string 1 name))
          (n (string-to-number (match-string 2 name))))
      (when (< n (gethash base netproc--name-hints 1))
        (puthash base n netproc--name-hints)))))

(defun netproc--mark (st)
  "Return the mark of ST, made when first wanted.
Most netprocs never have a buffer: a marker for each of them would be
garbage for nothing."
  (or (netproc--st-mark st)
      (setf (netproc--st-mark st) (make-marker))))

(defun netproc--datagram-p (st)
  "Non-nil if ST is the state of a datagram netproc."
  (eq (plist-get (netproc--st-contact st) :type) 'datagram))

(defun netproc--register (name &optional id)
  "Make and register a netproc called NAME (made unique); return its state.
ID is the engine's id for it; by default a new one."
  (let* ((id (or id (setq netproc--next-id (1+ netproc--next-id))))
         (proc (netproc--new (netproc--unique-name name) id))
         (st (netproc--st-new proc)))
    (puthash proc st netproc--states)
    (puthash id proc netproc--live)
    (puthash (netproc--rec-name proc) proc netproc--listed)
    st))

(defun netproc--unlist (proc)
  "Remove PROC from `netproc-list', if it is the netproc listed by its name."
  (let ((name (netproc--rec-name proc)))
    (when (eq (gethash name netproc--listed) proc)
      (remhash name netproc--listed)
      (netproc--free-name name))))

(defun netproc--forget (proc)
  "Stop dispatching events to PROC and remove it from `netproc-list'."
  (remhash (netproc--rec-id proc) netproc--live)
  (netproc--unlist proc))

(defun netproc--buffer-netproc (buffer)
  "Return the first listed netproc whose buffer is BUFFER, or nil."
  (catch 'found
    (maphash (lambda (_name proc)
               (when (eq (netproc--st-buffer (gethash proc netproc--states))
                         buffer)
                 (throw 'found proc)))
             netproc--listed)
    nil))

(declare-function netproc--kill-buffer-netprocs "netproc" ())

(defvar netproc--depth-known nil
  "Non-nil once `add-hook' knows the depth of netproc's kill hook.")

(defun netproc--watch-buffer (buffer)
  "Delete BUFFER's netprocs when it is killed, after its other hooks.
A buffer-local hook at the greatest depth runs after the buffer's own
functions, as Emacs deletes a buffer's processes after `kill-buffer-hook'."
  (with-current-buffer buffer
    (if (and netproc--depth-known
             (not (local-variable-p 'kill-buffer-hook)))
        ;; What `add-hook' would make of it, without its sorting: a
        ;; server makes a buffer per connection it accepts.
        (setq-local kill-buffer-hook
                    (list t #'netproc--kill-buffer-netprocs))
      (add-hook 'kill-buffer-hook #'netproc--kill-buffer-netprocs 100 t)
      (setq netproc--depth-known t))))

(defun netproc--designated (designator)
  "Return the netproc that DESIGNATOR (netproc, buffer or name) means.
Return nil when a buffer or name designates none; signal
`wrong-type-argument' for any other type."
  (cond ((netprocp designator) designator)
        ((stringp designator) (gethash designator netproc--listed))
        ((bufferp designator) (netproc--buffer-netproc designator))
        (t (signal 'wrong-type-argument (list 'netprocp designator)))))

(defun netproc--get-netproc (designator)
  "Return the netproc DESIGNATOR means, or signal as Emacs does for processes.
DESIGNATOR is a netproc, a buffer, a name, or nil for the current
buffer's netproc."
  (cond ((netprocp designator) designator)
        ((null designator)
         (or (netproc--buffer-netproc (current-buffer))
             (error "Buffer %s has no process" (buffer-name))))
        ((stringp designator)
         (or (gethash designator netproc--listed)
             (let ((buffer (get-buffer designator)))
               (and buffer (netproc--buffer-netproc buffer)))
             (error "Process %s does not exist" designator)))
        ((bufferp designator)
         (unless (buffer-live-p designator)
           (error "Attempt to get process for a dead buffer"))
         (or (netproc--buffer-netproc designator)
             (error "Buffer %s has no process" (buffer-name designator))))
        (t (signal 'wrong-type-argument (list 'netprocp designator)))))

(provide 'netproc-object)

;;; netproc-object.el ends here
