;;; netproc-io.el --- engine events become filter and sentinel calls  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; What Emacs does when a network process connects, reads or closes,
;; done for netprocs: the same sentinel strings, the same default filter
;; and sentinel, decoding that keeps a character split across two reads
;; whole, and input held back while a netproc is stopped.

;;; Code:

(require 'netproc-object)
(require 'netproc-channel)

(declare-function netproc--set-paused "netproc-module" (conn flag))
(declare-function netproc--set-ascii-text "netproc-module" (conn flag))
(declare-function netproc--close "netproc-module" (conn))
(declare-function netproc--close-deferred "netproc-module" (conn))
(declare-function netproc--flush "netproc-module" ())
(declare-function netproc--read-direct-end "netproc-module" (conn))
(declare-function netproc--datagram-received "netproc-module"
                  (conn sender))
(declare-function netproc--on-accepted "netproc-server"
                  (server server-st accepted))
(declare-function netproc--on-accept-failed "netproc-server"
                  (server server-st code))

;; Event types, as the module numbers them.
(defconst netproc--event-open 1)
(defconst netproc--event-data 2)
(defconst netproc--event-failed 3)
(defconst netproc--event-closed 4)
(defconst netproc--event-accepted 6)
(defconst netproc--event-accept-failed 7)

(defconst netproc--enoent 2
  "The errno of a missing file (Linux).")

(defun netproc--handle-event (id type payload)
  "Handle the engine's event TYPE with PAYLOAD for the netproc with ID."
  (let ((proc (gethash id netproc--live)))
    (when (and (null proc) (eq type netproc--event-accepted))
      ;; Accepted just before its server was deleted: nobody will use it.
      (netproc--close (car payload)))
    (when proc
      (let ((st (gethash proc netproc--states)))
        (cond
         ((eq type netproc--event-data)
          (if (netproc--keeping-p st)
              (push (cons type payload) (netproc--st-held st))
            (netproc--deliver proc st payload)))
         ((eq type netproc--event-open) (netproc--on-open proc st payload))
         ((eq type netproc--event-failed) (netproc--on-failed proc st payload))
         ((eq type netproc--event-closed)
          (if (netproc--keeping-p st)
              (push (cons type payload) (netproc--st-held st))
            (netproc--on-closed proc st)))
         ((eq type netproc--event-accepted)
          (netproc--on-accepted proc st payload))
         ((eq type netproc--event-accept-failed)
          (netproc--on-accept-failed proc st payload)))))))

;;; Status changes

(defvar netproc--reading-here nil
  "Connections whose input this thread keeps reading, for the next wait.")

(defvar netproc--give-back-timer nil
  "Timer that gives input back to the engine at Emacs's next wait.")

(defun netproc--give-back ()
  "Let the engine read again what this thread kept reading."
  (dolist (conn netproc--reading-here)
    (netproc--read-direct-end conn))
  (setq netproc--reading-here nil))

(defun netproc--give-back-soon ()
  "Give the reading this thread took over back to the engine, at the next wait."
  (setq netproc--give-back-timer
        (netproc--next-wait-timer netproc--give-back-timer
                                  #'netproc--give-back)))

(defvar netproc--flush-timer nil
  "Timer that wakes the engine for closes left to it, at Emacs's next wait.")

(defun netproc--close-conn (conn)
  "Close CONN, the connection of a netproc being deleted.
A filter or sentinel leaves the close to the engine thread, which the
end of the dispatch wakes once for all the closes of its batch (a
server closing each connection it answered, say).  A handler that waits
before that wakes it at once (`netproc--flush-timer').  Elsewhere the
close costs this thread less than waking the engine would."
  (if (not netproc--dispatching)
      (netproc--close conn)
    (netproc--close-deferred conn)
    (setq netproc--flush-timer
          (netproc--next-wait-timer netproc--flush-timer #'netproc--flush))))

(defun netproc--owner-reads (conn)
  "Note that CONN's input is read on this thread, until Emacs next waits.
A connection that a blocking connect opened starts so: its first reply
is read here by a wait for it, with no hand-off from the engine thread,
and the engine reads it once Emacs waits in any other way."
  (push conn netproc--reading-here)
  (netproc--give-back-soon))

(defun netproc--owner-done (conn)
  "Forget that CONN, being closed, is read on this thread.
A loop that connects and deletes without ever waiting would otherwise
keep every connection it made until its next wait."
  (when netproc--reading-here
    (setq netproc--reading-here (delq conn netproc--reading-here))))

(defun netproc--sentinel-call (proc st message)
  "Run PROC's sentinel (state ST) with MESSAGE."
  (let ((sentinel (netproc--st-sentinel st)))
    (if (not (eq sentinel 'internal-default-process-sentinel))
        (netproc--call 'sentinel sentinel proc message)
      ;; The default writes only to a live buffer: without one, a
      ;; connection deleted costs no call.
      (when (buffer-live-p (netproc--st-buffer st))
        (netproc--call 'sentinel #'netproc--default-sentinel
                       proc message)))))

(defun netproc--contact-put (st key value)
  "Set KEY to VALUE in the contact of ST, in place when KEY is there."
  (setf (netproc--st-contact st)
        (plist-put (netproc--st-contact st) key value)))

(defun netproc--on-open (proc st addresses)
  "PROC (state ST) connected; ADDRESSES is (LOCAL . REMOTE)."
  (netproc--contact-put st :remote (cdr addresses))
  (netproc--contact-put st :local (car addresses))
  (setf (netproc--st-status st) 'open)
  ;; Only an asynchronous connect announces itself, as in Emacs.
  (when (netproc--st-nowait st)
    (netproc--sentinel-call proc st "open\n")))

(defun netproc--on-failed (proc st failure)
  "Connecting PROC (state ST) failed.
FAILURE is (CODE MESSAGE RESOLVE-P LOCAL REMOTE OPTION): LOCAL and
REMOTE the addresses of the last attempt when there was one, OPTION the
index of the network option that could not be set, or nil."
  (netproc--forget-events proc)
  (setf (netproc--st-failure st) failure)
  (pcase-let ((`(,code ,message ,resolve-p ,local ,remote) failure))
    (when (and remote (netproc--st-nowait st))
      ;; Emacs had made the socket, so the contact shows where it went.
      (netproc--contact-put st :remote remote)
      (netproc--contact-put st :local local))
    (cond
     ((netproc--st-blocking st)
      ;; The creating call signals the error itself.
      (setf (netproc--st-status st) 'failed))
     (resolve-p
      ;; Emacs runs no sentinel when an asynchronous lookup fails.
      (setf (netproc--st-status st) 'failed
            (netproc--st-exit-status st)
            (format "Name lookup of %s failed" (netproc--st-host st))))
     ((eq (netproc--st-family st) 'local)
      ;; Emacs connects Unix sockets at once, even with :nowait, and shows
      ;; the error as the status, with no sentinel.
      (setf (netproc--st-status st)
            (if (eql code netproc--enoent) 'file-missing 'file-error)
            (netproc--st-exit-status st)
            (cons "make client process failed"
                  (cons message (netproc--st-contact st)))))
     (t
      (setf (netproc--st-status st) 'failed
            (netproc--st-exit-status st) code)
      (netproc--sentinel-call proc st (format "failed with code %d\n" code))))))

(defun netproc--forget-events (proc)
  "Dispatch no more events to PROC."
  (remhash (netproc--rec-id proc) netproc--live))

(defun netproc--on-closed (proc st)
  "The peer of PROC (state ST) closed the connection or reset it."
  (netproc--flush-carry proc st)
  (netproc--forget-events proc)
  (setf (netproc--st-status st) 'closed
        (netproc--st-exit-status st) 256)
  (when delete-exited-processes
    (netproc--unlist proc))
  (netproc--sentinel-call proc st "connection broken by remote peer\n"))

(defconst netproc--econnaborted 103
  "The errno of a connection aborted on this side (Linux).")

(defun netproc--orphan (proc)
  "End PROC, whose engine stopped under it.
An open connection ends as one the peer broke.  A connect under way
fails with ECONNABORTED: a blocking one's creating call signals it,
naming the channel; a :nowait one is told as of any failed connect,
with its sentinel, so that nobody waits for it for ever."
  (let ((st (gethash proc netproc--states)))
    (setf (netproc--st-held st) nil)
    (if (eq (netproc--st-status st) 'connect)
        (progn
          (netproc--forget-events proc)
          (setf (netproc--st-status st) 'failed
                (netproc--st-failure st)
                (list netproc--econnaborted
                      "Connection aborted: netproc's channel was deleted"
                      nil))
          (unless (netproc--st-blocking st)
            (setf (netproc--st-exit-status st) netproc--econnaborted)
            (netproc--sentinel-call proc st
                                    (format "failed with code %d\n"
                                            netproc--econnaborted))))
      (netproc--on-closed proc st))))

;;; Holding input while stopped

(defun netproc--holding-p (st)
  "Non-nil when input for ST must wait: stopped, or filter t.
A server only stops accepting when stopped: with filter t it accepts."
  (or (netproc--st-stopped st)
      (and (not (netproc--st-server st)) (eq (netproc--st-filter st) t))))

(defun netproc--waiting-p (st)
  "Non-nil when input for ST must wait to reach its filter.
While it is held (`netproc--holding-p'); while the call that makes it
still waits for its blocking connect, because Emacs reads nothing of a
connection before that call has returned, and its caller has not yet
had the chance to set a filter (a connect by name opens on the engine
thread, whose first data can come in the same drain as the opening)."
  (or (netproc--holding-p st) (netproc--st-blocking st)))

(defun netproc--keeping-p (st)
  "Non-nil when input for ST is to be held, not given to its filter.
While it must wait (`netproc--waiting-p'), and while earlier input is
still held, which must come first."
  (or (netproc--waiting-p st) (netproc--st-held st)))

(defun netproc--release-held-soon (st)
  "Deliver ST's held input at Emacs's next wait, unless it must wait still.
As Emacs reads a connection then: after the call that made it returned,
or after `continue-process'."
  (when (and (netproc--st-held st) (not (netproc--waiting-p st)))
    (run-at-time 0 nil #'netproc--release-held (netproc--st-proc st))))

(defun netproc--update-reading (st)
  "Tell the engine whether to read ST's socket; release held input."
  (let ((holding (netproc--holding-p st)))
    (when (netproc--st-conn st)
      (netproc--set-paused (netproc--st-conn st) holding))
    (unless holding
      (netproc--release-held-soon st))))

(defun netproc--release-held (proc)
  "Deliver the input held for PROC, in order, while it need not wait."
  (let ((st (gethash proc netproc--states)))
    (while (and st (netproc--st-held st) (not (netproc--waiting-p st)))
      (let ((event (car (last (netproc--st-held st)))))
        (setf (netproc--st-held st) (butlast (netproc--st-held st)))
        (if (eq (car event) netproc--event-data)
            (netproc--deliver proc st (cdr event))
          (netproc--on-closed proc st))))))

;;; Decoding

(defconst netproc--longest-cut 3
  "The most bytes of a character a read can leave for the next one.
Four-byte UTF-8 sequences are the longest any decoding here meets.")

(defun netproc--cr-tail-p (bytes coding)
  "Non-nil if BYTES ends with a CR that CODING pairs with a LF to come.
Only a decoding known to be CRLF keeps it.  One whose ends of lines are
still to be found decodes the CR, as Emacs does: a newline if it finds
them to be CR, else a CR, even after a CRLF."
  (let ((n (length bytes)))
    (and (> n 0) (= (aref bytes (1- n)) ?\r)
         (not inhibit-eol-conversion)
         (eql (coding-system-eol-type coding) 1))))

(defun netproc--cut-chars (text)
  "Return how many characters at the end of TEXT are undecoded raw bytes.
Decoding turns the bytes of a character that a read cut short into raw
bytes; at most `netproc--longest-cut' of them are counted."
  (let ((len (length text))
        (n 0))
    (while (and (< n netproc--longest-cut) (< n len)
                (eq (char-charset (aref text (- len n 1))) 'eight-bit))
      (setq n (1+ n)))
    n))

(defun netproc--utf-8-follower-p (byte)
  "Non-nil if BYTE may continue a UTF-8 sequence."
  (= (logand byte #xc0) #x80))

(defun netproc--utf-8-char-p (bytes i len)
  "Non-nil if the LEN bytes of BYTES at I make a character for Emacs.
Its UTF-8 decoder refuses overlong forms, surrogates, and five-byte
forms outside its own range of characters."
  (let* ((c1 (aref bytes i))
         (c (logand c1 (aref [0 0 #x1f #x0f #x07 #x03] len))))
    (dotimes (k (1- len))
      (setq c (logior (ash c 6) (logand (aref bytes (+ i k 1)) #x3f))))
    (pcase len
      (2 (>= c #x80))
      (3 (and (>= c #x800) (not (and (>= c #xd800) (< c #xe000)))))
      (4 (>= c #x10000))
      (_ (and (= (logand c1 #xfc) #xf8) (>= c #x200000) (<= c (max-char)))))))

(defun netproc--utf-8-carry (bytes)
  "Return how many bytes at the end of BYTES Emacs's UTF-8 decoder defers.
It keeps a sequence the read cut short, for the next read; a sequence
that goes wrong before the end gives its first byte raw, and decoding
goes on from the next byte.  The count is found as the decoder would,
from the last byte where it certainly starts a character: an ASCII
byte or a leading one, never taken as part of another character."
  (let* ((n (length bytes))
         (i (let ((p (1- n)))
              (while (and (>= p 0) (> p (- n 17))
                          (netproc--utf-8-follower-p (aref bytes p)))
                (setq p (1- p)))
              ;; Followers only, that far back: a character that began
              ;; before them ended four bytes in at most, so each byte
              ;; after that starts a try of its own.
              (cond ((< p 0) 0)
                    ((netproc--utf-8-follower-p (aref bytes p)) (- n 8))
                    (t p))))
         (carry 0))
    (while (< i n)
      (let* ((c1 (aref bytes i))
             (need (cond ((< c1 #x80) 0) ((< c1 #xc0) 4) ((< c1 #xe0) 1)
                         ((< c1 #xf0) 2) ((< c1 #xf8) 3) (t 4)))
             (j (1+ i)))
        (while (and (> need 0) (< j n)
                    (netproc--utf-8-follower-p (aref bytes j)))
          (setq j (1+ j) need (1- need)))
        (cond ((= need 0)
               ;; A whole sequence: a character, or only its first byte,
               ;; raw.
               (setq i (if (or (= j (1+ i))
                               (netproc--utf-8-char-p bytes i (- j i)))
                           j
                         (1+ i))))
              ;; Cut short by the end of the read.
              ((= j n) (setq carry (- n i) i n))
              ;; Broken before the end: its first byte, raw.
              (t (setq i (1+ i))))))
    carry))

(defvar netproc--carry-rules (make-hash-table :test 'eq)
  "For each decoding met, what `netproc--carry-rule' found.
As with `netproc--ascii-text-codings', a coding system redefined after
netproc met it keeps the answer found then, until `clrhash'.")

(defun netproc--single-byte-coding-p (coding)
  "Non-nil if CODING decodes each byte by itself, as a character or raw."
  (let ((charsets (coding-system-charset-list coding)))
    (and (eq (coding-system-type coding) 'charset)
         (listp charsets)
         (not (memq nil (mapcar (lambda (charset)
                                  (= (charset-dimension charset) 1))
                                charsets))))))

(defun netproc--utf-16-carry (bytes coding)
  "Return how many bytes at the end of BYTES CODING's UTF-16 decoder defers.
That is half a code unit, and a high surrogate whose low one is still to
come; with CRLF ends of lines, also a CR, which may start a CRLF.  The
byte order is CODING's, or that of the byte order mark BYTES starts
with when CODING is still to find it from one."
  (let* ((n (length bytes))
         (keep (% n 2))
         (big (if (and (consp (coding-system-get coding :bom))
                       (string-prefix-p "\377\376" bytes))
                  nil
                (not (eq (coding-system-get coding :endian) 'little))))
         (end (- n keep)))
    (when (>= end 2)
      ;; The last whole code unit.
      (let ((last (if big
                      (logior (ash (aref bytes (- end 2)) 8)
                              (aref bytes (1- end)))
                    (logior (ash (aref bytes (1- end)) 8)
                            (aref bytes (- end 2))))))
        (cond ((<= #xd800 last #xdbff) (setq keep (+ keep 2)))
              ((and (= last ?\r) (not inhibit-eol-conversion)
                    (eql (coding-system-eol-type coding) 1))
               (setq keep (+ keep 2))))))
    keep))

(defun netproc--carry-rule (coding)
  "Return how to find what CODING's decoder defers to the next read.
`utf-8': a character cut short, found from the bytes.  `utf-16': the
same, for two-byte code units (see `netproc--utf-16-carry').  `none':
nothing, as with a decoding of one byte per character.  `scan': the
raw bytes that decoding left at the end."
  (or (gethash coding netproc--carry-rules)
      (puthash coding
               (cond ((eq (coding-system-type coding) 'utf-8) 'utf-8)
                     ((eq (coding-system-type coding) 'utf-16) 'utf-16)
                     ((netproc--single-byte-coding-p coding) 'none)
                     (t 'scan))
               netproc--carry-rules)))

(defvar netproc--ascii-text-codings (make-hash-table :test 'eq)
  "For each decoding met, what `netproc--ascii-text-probe' found.
A coding system changed after netproc first met it (redefined, or
given a post-read conversion with `coding-system-put') keeps the
answer found then; `clrhash' on this table makes netproc look again.")

(defun netproc--ascii-text-probe (coding)
  "Return the `last-coding-system-used' that decoding ASCII with CODING gives.
Return `no' instead if CODING may decode ASCII bytes to anything but
the same characters, or learn something from them: a decoding that
converts ends of lines, or detects, or runs a function or a table."
  (if (and (coding-system-p coding)
           (eq (coding-system-eol-type coding) 0)
           (memq (coding-system-type coding) '(utf-8 charset))
           (coding-system-get coding :ascii-compatible-p)
           (not (coding-system-get coding :post-read-conversion))
           (not (coding-system-get coding :decode-translation-table)))
      (let ((last-coding-system-used nil))
        (decode-coding-string "a" coding)
        last-coding-system-used)
    'no))

(defun netproc--ascii-text-used (coding)
  "Return the `last-coding-system-used' that decoding ASCII with CODING gives.
Return nil if CODING may decode ASCII to something else."
  (and coding
       (let ((known (gethash coding netproc--ascii-text-codings)))
         (unless known
           (setq known (netproc--ascii-text-probe coding))
           (puthash coding known netproc--ascii-text-codings))
         (and (not (eq known 'no)) known))))

(defun netproc--ascii-text-coding (st)
  "Return the coding system for ST's input, if ASCII needs no decoding.
That is when its decoding gives ASCII bytes as the same characters and
nothing is carried over from the last read: then what is read may come
as multibyte text already (see `netproc--read-direct'), which is what
decoding it would give.  The value is what `last-coding-system-used'
would be after that decoding; nil when the bytes must be decoded."
  (and (equal (netproc--st-carry st) "")
       (null standard-translation-table-for-decode)
       (netproc--ascii-text-used (netproc--st-decode st))))

(defun netproc--update-ascii-text (st)
  "Tell the engine whether ST's all-ASCII input may come as text.
It may while ST's decoding maps ASCII to itself.  What came so when
that no longer holds, by the time it is decoded, is decoded all the
same (see `netproc--decode')."
  (let ((conn (netproc--st-conn st)))
    (when conn
      (netproc--set-ascii-text
       conn (and (netproc--ascii-text-used (netproc--st-decode st)) t)))))

(defun netproc--decode (st bytes &optional final)
  "Decode BYTES read for ST with its decoding, keeping an incomplete tail.
A character cut by the read, whatever the coding system, and a CR that
may start a CRLF, wait for the next read, as Emacs's decoder keeps them.
With FINAL, decode everything that is left.  BYTES that came as text
\(see `netproc--ascii-text-coding') are given as they are, when they
still may be."
  (if (not (multibyte-string-p bytes))
      (netproc--decode-bytes st bytes final)
    (let ((used (netproc--ascii-text-coding st)))
      (if (not used)
          ;; ASCII text, for a decoding that has changed since, or a
          ;; carried tail: back to bytes, and decoded.
          (netproc--decode-bytes st (string-to-unibyte bytes) final)
        ;; What decoding it would have left.
        (setq last-coding-system-used used)
        bytes))))

(defun netproc--ascii-shortcut-p (bytes coding)
  "Non-nil if `decode-coding-string' takes its ASCII shortcut for BYTES.
It does for ASCII BYTES and a CODING that keeps ASCII, unless ends of
lines may need converting: then it hands BYTES back as they are."
  (and (coding-system-get coding :ascii-compatible-p)
       (not (string-match-p "[^[:ascii:]]" bytes))
       (or (eq (coding-system-eol-type coding) 0)
           inhibit-eol-conversion
           (not (string-search "\r" bytes)))))

(defun netproc--ascii-plain-p (bytes coding)
  "Non-nil if decoding ASCII BYTES with CODING can change nothing in them.
It can when a function or a table takes part, and when CODING detects:
an escape sequence of ISO 2022, or a null byte, tells it what the bytes
are."
  (not (or (coding-system-get coding :post-read-conversion)
           (coding-system-get coding :decode-translation-table)
           standard-translation-table-for-decode
           (and (eq (coding-system-type coding) 'undecided)
                (string-match-p "[\0\e]" bytes)))))

(defun netproc--decode-in-buffer (bytes coding)
  "Decode ASCII BYTES with CODING in a buffer, where no shortcut is taken.
Raw text, which detection may find, comes back unibyte, as from
`decode-coding-string'."
  (with-temp-buffer
    (insert bytes)
    (decode-coding-region (point-min) (point-max) coding)
    (if (eq (coding-system-type last-coding-system-used) 'raw-text)
        (string-to-unibyte (buffer-string))
      (buffer-string))))

(defun netproc--decode-string (bytes coding)
  "Decode BYTES with CODING as Emacs decodes the output of a process.
`decode-coding-string' has a shortcut for ASCII that a process's
decoder lacks: it neither learns the end-of-line format from such text,
nor detects a coding in it, nor runs the coding's post-read conversion
or translation tables.  Here the first is done at once, and for the
others the text is decoded in a buffer, as the decoder would.
`last-coding-system-used' becomes what the decoder made of CODING."
  (cond
   ((not (netproc--ascii-shortcut-p bytes coding))
    (decode-coding-string bytes coding t))
   ((netproc--ascii-plain-p bytes coding)
    (let ((eol (coding-system-eol-type coding)))
      (setq last-coding-system-used
            (if (and (vectorp eol) (not inhibit-eol-conversion)
                     (string-search "\n" bytes))
                (aref eol 0)
              coding))
      bytes))
   (t (netproc--decode-in-buffer bytes coding))))

(defun netproc--decode-bytes (st bytes final)
  "Decode BYTES for ST as `netproc--decode' does, FINAL as there."
  (let* ((coding (or (netproc--st-decode st)
                     ;; No decoding at all detects, as Emacs's nil does.
                     'undecided))
         (input (if (equal (netproc--st-carry st) "")
                    bytes
                  (concat (netproc--st-carry st) bytes)))
         (rule (if final 'none (netproc--carry-rule coding)))
         (keep (cond (final 0)
                     ;; A CR there is two bytes.
                     ((eq rule 'utf-16) (netproc--utf-16-carry input coding))
                     ((netproc--cr-tail-p input coding) 1)
                     ((eq rule 'utf-8) (netproc--utf-8-carry input))
                     (t 0)))
         (ready (if (> keep 0) (substring input 0 (- keep)) input)))
    (setf (netproc--st-carry st) (if (> keep 0) (substring input (- keep)) ""))
    (cond
     ((equal ready "") ready)
     ;; Bytes pass through these unchanged, and unibyte, as in Emacs.
     ((memq coding '(binary no-conversion))
      (setq last-coding-system-used coding)
      ready)
     (t
      (let* ((text (netproc--decode-string ready coding))
             (cut (if (eq rule 'scan) (netproc--cut-chars text) 0)))
        ;; What Emacs learns from the data (the end-of-line format, or
        ;; the coding system itself) becomes the process's decoding.
        (when (or (vectorp (coding-system-eol-type coding))
                  (eq (coding-system-type coding) 'undecided))
          (unless (eq (netproc--st-decode st) last-coding-system-used)
            (setf (netproc--st-decode st) last-coding-system-used)
            (netproc--update-ascii-text st)))
        (when (> cut 0)
          (setf (netproc--st-carry st)
                (concat (substring ready (- cut)) (netproc--st-carry st))
                text (substring text 0 (- cut))))
        ;; Decoding plain ASCII hands back the unibyte input, but Emacs
        ;; gives a filter multibyte text unless the decoding is raw (or
        ;; was found to be).
        (if (or (multibyte-string-p text)
                (eq (coding-system-type last-coding-system-used) 'raw-text))
            text
          (string-to-multibyte text)))))))

(defun netproc--deliver (proc st bytes)
  "Decode BYTES for PROC (state ST) and give them to its filter.
BYTES may also be a datagram, (BYTES . SENDER): as in Emacs, SENDER
becomes the datagram address as the datagram reaches the filter, so
that a reply from the filter goes back to it."
  (when (consp bytes)
    (netproc--datagram-received (netproc--st-conn st) (cdr bytes))
    (setq bytes (car bytes)))
  (netproc--give proc st (netproc--decode st bytes)))

(defun netproc--flush-carry (proc st)
  "Give PROC's filter whatever undecoded bytes are left (state ST)."
  (unless (equal (netproc--st-carry st) "")
    (netproc--give proc st (netproc--decode st "" t))))

(defun netproc--give (proc st text)
  "Call PROC's filter (state ST) with TEXT, unless TEXT is empty."
  (unless (equal text "")
    (setf (netproc--st-reads st) (1+ (netproc--st-reads st)))
    (let ((filter (netproc--st-filter st)))
      (netproc--call 'filter
                     (if (eq filter 'internal-default-process-filter)
                         #'netproc--default-filter
                       filter)
                     proc text))))

;;; The default filter and sentinel

(defun netproc--insert-at-mark (proc text before-markers)
  "Insert TEXT in PROC's buffer at its mark, as Emacs's defaults do.
With BEFORE-MARKERS, markers at the insertion point move after the text.
Point moves with the text when it was at or after the insertion point;
a read-only or narrowed buffer is written all the same."
  (let* ((st (netproc--st proc))
         (buffer (netproc--st-buffer st))
         (mark (and (buffer-live-p buffer) (netproc--mark st))))
    (when mark
      (with-current-buffer buffer
        (let* ((inhibit-read-only t)
               (opoint (point))
                    ;; A mark outside a narrowing is brought to its edge:
               ;; the text goes in where it can be seen.
               (pos (if (eq (marker-buffer mark) buffer)
                        (max (point-min) (min (point-max)
                                              (marker-position mark)))
                      (point-max)))
               (len (length text)))
          (goto-char pos)
          (if before-markers
              (insert-before-markers text)
            (insert text))
          (set-marker mark (point) buffer)
          (goto-char (if (>= opoint pos) (+ opoint len) opoint)))))))

(defun netproc--default-filter (proc text)
  "Insert TEXT into PROC's buffer at its mark, like Emacs's default filter."
  (netproc--insert-at-mark proc text t))

(defun netproc--default-sentinel (proc message)
  "Insert \"Process NAME MESSAGE\" into PROC's buffer, as Emacs does.
Nothing is inserted while PROC is open, so \"open\" notices stay silent."
  (let ((st (netproc--st proc)))
    ;; Most netprocs have no buffer: no text is made for it then.
    (unless (or (memq (netproc--st-status st) '(open connect))
                (not (buffer-live-p (netproc--st-buffer st))))
      (netproc--insert-at-mark
       proc (concat "\nProcess " (netproc--rec-name proc) " " message) nil))))

(provide 'netproc-io)

;;; netproc-io.el ends here
