;;; websocket-peer.el --- websocket.el at the other end of the compat tests  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; The other end of the websocket tests of netproc-compat-mode: the
;; websocket.el the Debian package elpa-websocket installs, over
;; builtin processes, in a batch Emacs of its own.
;;
;;   emacs -Q --batch -L WEBSOCKET-DIR -l websocket-peer.el \
;;         -f netproc-compat-ws-peer-echo-server
;;
;; listens on 127.0.0.1, prints "port N" on stderr and sends every text and
;; binary frame back as it came, until it is killed or
;; `netproc-compat-ws-peer-lifetime' seconds have gone by.
;;
;;   emacs -Q --batch -L WEBSOCKET-DIR -l websocket-peer.el \
;;         -f netproc-compat-ws-peer-client ws://127.0.0.1:N
;;
;; sends the frames of `netproc-compat-ws-peer-frames' in order, waits
;; for each to come back, prints "echoed K of N" with K the frames that
;; came back equal byte for byte, and exits with status 0 if all did.
;;
;; The tests load this file too, for the frames.

;;; Code:

(require 'cl-lib)

(defvar netproc-compat-ws-peer-lifetime 60
  "Seconds after which a peer exits, whatever it is doing.")

(defun netproc-compat-ws-peer--bytes (count seed)
  "Return COUNT pseudo-random bytes from SEED, the same on every run."
  (let ((bytes (make-string count 0)) (x seed))
    (dotimes (i count)
      (setq x (logand (+ (* x 1103515245) 12345) #x7fffffff))
      (aset bytes i (logand (ash x -16) 255)))
    bytes))

(defun netproc-compat-ws-peer-frames ()
  "Return the list of frames to exchange: each is (OPCODE . PAYLOAD).
A text payload is a string of characters, a binary one a unibyte
string.  Lengths cover the three length encodings of the protocol."
  (list (cons 'text "hello")
        (cons 'text "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e")
        (cons 'binary (apply #'unibyte-string (number-sequence 0 255)))
        (cons 'text (make-string 300 ?\u00e9))
        (cons 'binary (netproc-compat-ws-peer--bytes 70000 7))
        (cons 'text (mapconcat (lambda (i) (format "%d\n" i))
                               (number-sequence 1 30000) ""))
        ;; websocket.el reassembles a frame in time quadratic in its
        ;; length: a megabyte takes it ten seconds.
        (cons 'binary (netproc-compat-ws-peer--bytes 200000 11))))

(defun netproc-compat-ws-peer-bytes (frame)
  "Return the bytes that carry FRAME, an element of the frame list."
  (if (eq (car frame) 'text)
      (encode-coding-string (cdr frame) 'utf-8)
    (cdr frame)))

(defun netproc-compat-ws-peer-send (ws frame)
  "Send FRAME, an element of the frame list, on the websocket WS."
  (if (eq (car frame) 'text)
      (websocket-send-text ws (cdr frame))
    (websocket-send ws (make-websocket-frame :opcode 'binary
                                             :payload (cdr frame)
                                             :completep t))))

(defun netproc-compat-ws-peer-received (frame)
  "Return what websocket.el's FRAME carries as (OPCODE . BYTES)."
  (cons (websocket-frame-opcode frame)
        (encode-coding-string (websocket-frame-payload frame) 'binary)))

(defun netproc-compat-ws-peer--echo (ws frame)
  "Send FRAME back on WS, as it came."
  (websocket-send ws (make-websocket-frame
                      :opcode (websocket-frame-opcode frame)
                      :payload (websocket-frame-payload frame)
                      :completep t)))

(defun netproc-compat-ws-peer--run-until (predicate)
  "Run the event loop until PREDICATE is non-nil or the lifetime is up."
  (let ((end (+ (float-time) netproc-compat-ws-peer-lifetime))
        (rounds 0))
    (while (and (not (funcall predicate)) (< (float-time) end)
                (< rounds (* 40 netproc-compat-ws-peer-lifetime)))
      (accept-process-output nil 0.05)
      (setq rounds (1+ rounds)))))

(defun netproc-compat-ws-peer-echo-server ()
  "Echo frames on a free port of 127.0.0.1 until killed."
  (require 'websocket)
  (let ((server (websocket-server t :host "127.0.0.1"
                                  :on-message #'netproc-compat-ws-peer--echo)))
    ;; On stderr: Emacs buffers its stdout to a pipe until it exits.
    (message "port %d" (process-contact server :service))
    (netproc-compat-ws-peer--run-until #'ignore)
    (kill-emacs 0)))

(defun netproc-compat-ws-peer-client ()
  "Send the frames to the URL on the command line; check what comes back."
  (require 'websocket)
  (let* ((url (pop command-line-args-left))
         (frames (netproc-compat-ws-peer-frames))
         (echoes nil)
         (ws (websocket-open
              url
              :on-message (lambda (_ws frame)
                            (push (netproc-compat-ws-peer-received frame)
                                  echoes)))))
    (netproc-compat-ws-peer--run-until (lambda () (websocket-openp ws)))
    (dolist (frame frames)
      (netproc-compat-ws-peer-send ws frame))
    (netproc-compat-ws-peer--run-until
     (lambda () (>= (length echoes) (length frames))))
    (let ((good (cl-count-if #'identity
                             (cl-mapcar
                              (lambda (frame echo)
                                (equal (cons (car frame)
                                             (netproc-compat-ws-peer-bytes
                                              frame))
                                       echo))
                              frames (reverse echoes)))))
      (princ (format "echoed %d of %d\n" good (length frames)))
      (websocket-close ws)
      (kill-emacs (if (= good (length frames)) 0 1)))))

(provide 'websocket-peer)

;;; websocket-peer.el ends here
