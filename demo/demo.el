;;; demo.el --- One client scenario over the builtin and over netproc  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Run from the top directory with `make demo', or:
;;
;;   emacs -Q --batch -L lisp -l demo/demo.el
;;
;; Part 1 runs the same client scenario twice against one local
;; upper-casing server (a builtin `:server t' process on 127.0.0.1):
;; once with `make-network-process' and the process functions, once with
;; `netproc-make-network-process' and their netproc twins.  It prints one
;; row per step with both results and whether they are equal.  Values are
;; compared in full; the table only truncates what it shows.  Port numbers
;; are shown as <PORT> on both sides, and a unibyte string given to a
;; filter as (unibyte STRING).
;;
;; Part 2 shows what netproc adds: a couple of thousand connections open
;; at once in one Emacs, each exchanging a line with a small Perl server,
;; while Emacs can still start a subprocess.  The builtin cannot follow
;; there: Emacs refuses descriptors at or above 1024, and its own
;; connections use them up near 1,018.
;;
;; Everything runs on loopback, every wait is bounded, a watchdog ends
;; the run after 60 seconds, and every connection and process is deleted
;; at the end.

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'netproc)

;;; Bounds

(defconst demo-watchdog-seconds 60
  "The whole demo ends after this many seconds, whatever it is doing.")

(defconst demo-step-seconds 5
  "The longest a single step of part 1 waits for an event.")

(defconst demo-stress-target 2000
  "How many simultaneous netproc connections part 2 tries to hold.")

(defconst demo-stress-seconds 20
  "The longest each phase of part 2 may take.")

(defvar demo-watchdog
  (run-at-time demo-watchdog-seconds nil
               (lambda ()
                 (princ (format "\ndemo: still running after %d s; giving up\n"
                                demo-watchdog-seconds))
                 (kill-emacs 2))))

;;; The two sides

;; Each side is a plist from an operation to the function that does it.
;; The scenario calls `demo-call' and never names either side's functions.

(defconst demo-builtin
  '(:make make-network-process
    :send process-send-string
    :send-eof process-send-eof
    :delete delete-process
    :status process-status
    :exit-status process-exit-status
    :live-p process-live-p
    :contact process-contact
    :list process-list
    :accept accept-process-output)
  "The builtin's process functions.")

(defconst demo-netproc
  '(:make netproc-make-network-process
    :send netproc-send-string
    :send-eof netproc-send-eof
    :delete delete-netproc
    :status netproc-status
    :exit-status netproc-exit-status
    :live-p netproc-live-p
    :contact netproc-contact
    :list netproc-list
    :accept accept-netproc-output)
  "netproc's twins of the same functions.")

(defvar demo-side nil
  "The side the scenario runs on: `demo-builtin' or `demo-netproc'.")

(defun demo-call (op &rest args)
  "Call the current side's function for OP with ARGS."
  (apply (plist-get demo-side op) args))

;;; What filters and sentinels saw

(defvar demo-seen (make-hash-table :test 'eq)
  "Connection -> list of (KIND . STRING) its filter and sentinel got, newest first.")

(defun demo-filter (proc string)
  "Record STRING as data received by PROC.
A unibyte STRING is recorded as (unibyte STRING): with the default
utf-8 decoding, the builtin's filters get multibyte strings, and the
difference shows in `string-to-multibyte', `insert' and the like."
  (push (cons 'data (if (multibyte-string-p string) string
                      (list 'unibyte string)))
        (gethash proc demo-seen)))

(defun demo-sentinel (proc message)
  "Record MESSAGE as a sentinel call for PROC."
  (push (cons 'sentinel message) (gethash proc demo-seen)))

(defun demo-seen (proc kind)
  "Return, oldest first, the strings of KIND that PROC got."
  (let (out)
    (dolist (entry (gethash proc demo-seen) out)
      (when (eq (car entry) kind)
        (push (cdr entry) out)))))

(defun demo-each (strings)
  "Mark STRINGS to be shown one per line in the table."
  (cons 'demo-each strings))

(defun demo-wait (proc predicate)
  "Let PROC's events in until PREDICATE returns non-nil; return its value.
Give up after `demo-step-seconds' and return nil."
  (let ((deadline (+ (float-time) demo-step-seconds))
        value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      ;; A closed connection makes the builtin return at once; waiting for
      ;; any process instead keeps this loop from spinning.
      (if (memq (demo-call :status proc) '(open connect))
          (demo-call :accept proc 0.05)
        (accept-process-output nil 0.05)))
    value))

;;; The server

(defvar demo-server nil "The builtin server both sides connect to.")
(defvar demo-port nil "Its port.")
(defvar demo-closed-port nil "A port nothing listens on.")

(defun demo-server-filter (proc string)
  "Answer STRING upper-cased; close PROC's connection on \"quit\"."
  (if (string-prefix-p "quit" string)
      (delete-process proc)
    (process-send-string proc (upcase string))))

(defun demo-start-server ()
  "Start the server and find a port that refuses connections."
  (setq demo-server (make-network-process
                     :name "demo-server" :server t :host "127.0.0.1"
                     :service t :family 'ipv4 :noquery t
                     :filter #'demo-server-filter))
  (setq demo-port (process-contact demo-server :service))
  ;; Bind a free port, then close it: connecting there is refused.
  (let ((probe (make-network-process :name "demo-probe" :server t
                                     :host "127.0.0.1" :service t :noquery t)))
    (setq demo-closed-port (process-contact probe :service))
    (delete-process probe)))

(defun demo-connect (name &rest more)
  "Connect to the server with NAME and the keywords MORE."
  (apply #'demo-call :make :name name :host "127.0.0.1" :service demo-port
         :filter #'demo-filter :sentinel #'demo-sentinel :noquery t more))

;;; Part 1: the scenario

(defun demo-scenario ()
  "Run the client scenario on `demo-side'; return its rows as (LABEL . VALUES).
VALUES is a list of what the step observed, in order."
  (let (rows conns)
    (cl-flet ((row (label &rest values)
             ;; A list of what a filter or sentinel got takes a line per
             ;; string, and the word "none" when there was nothing.
             (push (cons label
                         (cl-mapcan (lambda (v)
                                      (if (eq (car-safe v) 'demo-each)
                                          (or (copy-sequence (cdr v)) (list 'none))
                                        (list v)))
                                    values))
                   rows)))
      ;; 1. A blocking connect: open at once, contact as given.
      (let ((c (demo-connect "demo-a")))
        (push c conns)
        (row "connect (blocking): status, contact"
             (demo-call :status c) (demo-call :contact c))
        (row "contact :remote, :local"
             (demo-call :contact c :remote) (demo-call :contact c :local))
        ;; 2. A line goes out, the filter gets the answer.
        (demo-call :send c "hello\n")
        (demo-wait c (lambda () (demo-seen c 'data)))
        (row "send \"hello\\n\": filter got" (demo-each (demo-seen c 'data)))
        ;; 3. The server closes the connection.
        (demo-call :send c "quit\n")
        (demo-wait c (lambda () (demo-seen c 'sentinel)))
        (row "server closes: sentinel, status, exit status"
             (demo-each (demo-seen c 'sentinel)) (demo-call :status c)
             (demo-call :exit-status c)))
      ;; 4. :nowait returns at once; the sentinel says "open\n" later.
      (let* ((c (demo-connect "demo-b" :nowait t))
             (first (demo-call :status c)))
        (push c conns)
        (demo-wait c (lambda () (demo-seen c 'sentinel)))
        (row ":nowait: status, sentinel, status"
             first (demo-each (demo-seen c 'sentinel)) (demo-call :status c))
        ;; 5. send-eof: the answer to what was sent still arrives, then
        ;; the server (an Emacs peer) treats the half-close as a close.
        (demo-call :send c "bye\n")
        (demo-call :send-eof c)
        (demo-wait c (lambda () (cdr (demo-seen c 'sentinel))))
        (row "send \"bye\\n\", send-eof: filter, sentinel"
             (demo-each (demo-seen c 'data)) (demo-each (demo-seen c 'sentinel))))
      ;; 6. A refused blocking connect signals.
      (apply #'row "refused (blocking): error"
           (condition-case err
               (progn (push (demo-call :make :name "demo-c" :host "127.0.0.1"
                                       :service demo-closed-port)
                            conns)
                      'no-error)
             ;; One line each: symbol, message, reason, the contact.
             (error (list (car err) (nth 1 err) (nth 2 err) (nthcdr 3 err)))))
      ;; 7. A refused :nowait connect fails in the sentinel.
      (let ((c (demo-call :make :name "demo-d" :host "127.0.0.1"
                          :service demo-closed-port :nowait t :noquery t
                          :sentinel #'demo-sentinel)))
        (push c conns)
        (demo-wait c (lambda () (demo-seen c 'sentinel)))
        (row "refused (:nowait): sentinel, status, exit status"
             (demo-each (demo-seen c 'sentinel)) (demo-call :status c)
             (demo-call :exit-status c)))
      ;; 8. delete: the sentinel runs before delete returns.
      (let ((c (demo-connect "demo-e")))
        (push c conns)
        (demo-call :delete c)
        (row "delete: sentinel, status, exit status"
             (demo-each (demo-seen c 'sentinel)) (demo-call :status c)
             (demo-call :exit-status c)))
      ;; 9. What is left: nothing live; the failed one stays listed.
      (setq conns (reverse conns))
      (row "afterwards: live, still listed"
           (mapcar #'demo-name (cl-remove-if-not
                                (lambda (c) (demo-call :live-p c)) conns))
           (mapcar #'demo-name (cl-remove-if-not
                                (lambda (c) (memq c (demo-call :list))) conns)))
      (dolist (c conns)
        (ignore-errors (demo-call :delete c))))
    (nreverse rows)))

(defun demo-name (proc)
  "The name of PROC, a process or a netproc."
  (if (processp proc) (process-name proc) (netproc-name proc)))

;;; Printing

(defconst demo-width 100 "Columns the output fits in.")

(defun demo-show (value)
  "Return VALUE as one line of text, with port numbers hidden."
  (let* ((print-escape-newlines t)
         (text (prin1-to-string value)))
    ;; Ports differ from run to run and between the sides.
    (setq text (replace-regexp-in-string
                "\\[127 0 0 1 [0-9]+\\]" "[127 0 0 1 <PORT>]" text t t))
    (dolist (port (list demo-port demo-closed-port))
      (setq text (replace-regexp-in-string
                  (format "\\_<%d\\_>" port) "<PORT>" text t t)))
    text))

(defun demo-show-all (values)
  "Return VALUES shown one after the other, two spaces apart."
  (mapconcat #'demo-show values "  "))

(defun demo-cut (text width)
  "TEXT cut to WIDTH columns; what does not fit becomes an ellipsis."
  (truncate-string-to-width text width nil nil "…"))

(defun demo-wrap (text width)
  "TEXT broken into lines of at most WIDTH columns at spaces."
  (let (lines line)
    (dolist (word (split-string text " "))
      (if (and line (> (+ (string-width line) 1 (string-width word)) width))
          (progn (push line lines) (setq line word))
        (setq line (if line (concat line " " word) word))))
    (nreverse (mapcar (lambda (l) (demo-cut l width)) (cons line lines)))))

(defun demo-print-row (cells widths)
  "Print CELLS (lists of lines) in columns of WIDTHS, then a mark."
  (let ((height (apply #'max (mapcar #'length cells))))
    (dotimes (i height)
      (princ (string-trim-right
              (mapconcat (lambda (pair)
                           (string-pad (or (nth i (car pair)) "") (cdr pair)))
                         (cl-mapcar #'cons cells widths)
                         " | ")))
      (terpri))))

(defun demo-print-table (builtin netproc)
  "Print the rows BUILTIN and NETPROC side by side; return how many match.
Each value a step observed takes one line of its column."
  (let* ((mark-width 1)
         (value-width 36)
         (label-width (- demo-width (* 2 value-width) mark-width 10))
         (widths (list label-width value-width value-width mark-width))
         (rule (mapconcat (lambda (w) (make-string w ?-)) widths "-+-"))
         (same 0)
         (different nil))
    (demo-print-row '(("step") ("builtin") ("netproc") ("=")) widths)
    (princ rule) (terpri)
    (cl-loop for (label . b) in builtin
             for (_ . n) in netproc
             for bt = (demo-show-all b)
             for nt = (demo-show-all n)
             for equal = (equal bt nt)
             do (if equal (cl-incf same) (push (list label bt nt) different))
             do (demo-print-row
                 (list (demo-wrap label label-width)
                       (mapcar (lambda (v) (demo-cut (demo-show v) value-width)) b)
                       (mapcar (lambda (v) (demo-cut (demo-show v) value-width)) n)
                       (list (if equal "✓" "✗")))
                 widths)
             do (progn (princ rule) (terpri)))
    (princ (format "%d of %d steps identical\n" same (length builtin)))
    (dolist (d (nreverse different))
      (princ (format "\n✗ %s\n  builtin: %s\n  netproc: %s\n"
                     (nth 0 d) (nth 1 d) (nth 2 d))))
    same))

(defun demo-part-1 ()
  "Run the scenario on both sides and print the table."
  (princ "Part 1. The same client scenario with make-network-process (builtin)\n")
  (princ "and with netproc-make-network-process and its twins (netproc-send-string,\n")
  (princ "netproc-status, delete-netproc, ...), against one local server that\n")
  (princ "answers each line upper-cased.  Values are compared in full; long ones\n")
  (princ "are cut short here (…).  Ports are shown as <PORT>; a filter's\n")
  (princ "string shows as (unibyte STRING) when it is not multibyte.\n\n")
  (demo-start-server)
  (let* ((builtin (let ((demo-side demo-builtin)) (demo-scenario)))
         (netproc (let ((demo-side demo-netproc)) (demo-scenario))))
    (demo-print-table builtin netproc)))

;;; Part 2: many connections

(defconst demo-echo-server-perl
  "use IO::Socket::INET; use IO::Select;
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
  Listen => 4096, ReuseAddr => 1) or die \"listen: $!\";
$| = 1; print $l->sockport, \"\\n\";
my $s = IO::Select->new($l, \\*STDIN);
while (1) {
  for my $h ($s->can_read) {
    if ($h == $l) { my $c = $l->accept; $s->add($c) if $c; next }
    if (fileno($h) == 0) { exit 0 unless sysread(STDIN, my $x, 1); next }
    my $n = sysread($h, my $b, 4096);
    if ($n) { syswrite($h, uc $b) } else { $s->remove($h); close $h }
  }
}"
  "An upper-casing server that serves any number of connections.
It prints its port, and exits when its standard input closes.")

(defun demo-hard-fd-limit ()
  "Return the hard limit on open descriptors, or nil if unknown."
  (with-temp-buffer
    (when (ignore-errors (insert-file-contents "/proc/self/limits") t)
      (when (re-search-forward "^Max open files +[0-9]+ +\\([0-9]+\\)" nil t)
        (string-to-number (match-string 1))))))

(defun demo-open-fds ()
  "Return how many descriptors this Emacs has open."
  (length (directory-files "/proc/self/fd" nil "\\`[0-9]+\\'" t)))

(defun demo-wait-all (predicate)
  "Wait until PREDICATE holds, at most `demo-stress-seconds'; return it."
  (let ((deadline (+ (float-time) demo-stress-seconds))
        value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      (accept-netproc-output nil 0.05))
    value))

(defun demo-part-2 ()
  "Open many netproc connections at once; print what was measured.
Return non-nil if every connection opened, answered and closed."
  (princ "\nPart 2. What netproc adds: many connections in one Emacs.\n")
  (princ "Emacs refuses descriptors numbered 1024 and up, so the builtin stops near\n")
  (princ "1,018 connections; netproc places its sockets at 1024 and above.  Here\n")
  (princ "netproc alone, against a small Perl server that answers upper-cased\n")
  (princ "(a builtin server would run out of descriptors too):\n\n")
  (let* ((limit (demo-hard-fd-limit))
         ;; The sockets live at 1024 and up; keep some room for the rest.
         (room (if limit (- limit 1024 64) demo-stress-target))
         (target (max 0 (min demo-stress-target room)))
         (server nil)
         (port nil)
         (conns nil))
    (when (< target demo-stress-target)
      (princ (format "  (hard limit on descriptors: %s, so %d connections)\n"
                     limit target)))
    (unwind-protect
        (progn
          (setq server (make-process
                        :name "demo-perl" :noquery t :connection-type 'pipe
                        :command (list "perl" "-e" demo-echo-server-perl)
                        :filter (lambda (_p s) (setq port (concat port s)))))
          (demo-wait-all (lambda () (and port (string-suffix-p "\n" port))))
          (setq port (string-to-number (or port "0")))
          (when (zerop port)
            (error "The Perl server did not start"))
          (let ((fds-before (demo-open-fds))
                (opened 0) (failed 0) (answered 0)
                (t0 (float-time)) t1 t2 t3)
            (dotimes (i target)
              (push (netproc-make-network-process
                     :name (format "many-%d" i) :host "127.0.0.1" :service port
                     :nowait t :noquery t
                     :sentinel (lambda (_p m)
                                 (cond ((equal m "open\n") (cl-incf opened))
                                       ((string-prefix-p "failed" m)
                                        (cl-incf failed))))
                     :filter (lambda (_p s)
                               (when (string-suffix-p "\n" s) (cl-incf answered))))
                    conns))
            (demo-wait-all (lambda () (>= (+ opened failed) target)))
            (setq t1 (float-time))
            (let ((fds-open (demo-open-fds))
                  (subprocess (call-process "true")))
              (dolist (c conns)
                (when (eq (netproc-status c) 'open)
                  (netproc-send-string c "ping\n")))
              (demo-wait-all (lambda () (>= answered opened)))
              (setq t2 (float-time))
              (mapc #'delete-netproc conns)
              (setq t3 (float-time))
              (let ((live (cl-count-if #'netproc-live-p conns)))
                (setq conns nil)
                ;; The engine thread closes the sockets after delete returns.
                (demo-wait-all (lambda () (<= (demo-open-fds) fds-before)))
                (let ((fds-after (demo-open-fds)))
                  (princ (format "  %-34s %5d of %d%s  %6.2f s\n"
                                 "connections open at the same time"
                                 opened target
                                 (if (> failed 0) (format " (%d failed)" failed) "")
                                 (- t1 t0)))
                  (princ (format "  %-34s %5d of %d  %6.2f s\n"
                                 "each sent \"ping\\n\", got \"PING\\n\""
                                 answered opened (- t2 t1)))
                  (princ (format "  %-34s %5d of %d  %6.2f s\n"
                                 "deleted" (- target live) target (- t3 t2)))
                  (princ (format "  %-34s %5d before, %d with all open, %d after\n"
                                 "descriptors open in this Emacs"
                                 fds-before fds-open fds-after))
                  (princ (format "  %-34s %5S\n"
                                 "(call-process \"true\") while open" subprocess))
                  (and (= opened target) (= answered opened) (= live 0)
                       (<= fds-after fds-before) (eql subprocess 0)))))))
      (mapc #'delete-netproc conns)
      (when (process-live-p server)
        (delete-process server)))))

;;; Main

(let ((same (demo-part-1))
      (many (demo-part-2)))
  (when (process-live-p demo-server)
    (delete-process demo-server))
  (cancel-timer demo-watchdog)
  (princ (format "\n%s\n"
                 (if many "Part 2: every connection opened, answered and closed."
                   "Part 2 fell short (see above).")))
  (ignore same))

;;; demo.el ends here
