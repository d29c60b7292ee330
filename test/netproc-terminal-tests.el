;;; netproc-terminal-tests.el --- C-g in a real terminal Emacs  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; netproc-wait-tests.el quits a blocking connect and a send held at the
;; high-water mark by setting `quit-flag' from a timer, in batch mode.
;; Here the quit is the real thing: an `emacs -nw -Q' runs in a private
;; tmux server, the scenario is started by typing M-x in it, and once it
;; blocks the test types C-g, which the terminal turns into SIGINT.
;;
;; The terminal Emacs loads a small driver, written by the test, that
;; writes what happens to files in a temporary directory: when the
;; blocking call starts, when a timer finds it waiting, and when the
;; quit reached the command.  The answer time is that last moment, read
;; on Emacs's own clock, minus the moment just before tmux was asked to
;; type C-g: neither the tmux client's start nor the test's polling
;; makes it look faster than it was.  Then the echo area must say
;; "Quit", an M-: typed after it must be evaluated, the object must be
;; in the state the builtin leaves, and once it is deleted the terminal
;; Emacs must have as many descriptors (/proc/PID/fd) as before the
;; scenario.
;;
;; The same scenarios run with the builtin `make-network-process' and
;; `process-send-string'; their tests assert only what the builtin does
;; every time, and print what they saw.
;;
;; The tests need tmux (the Makefile's `deps' installs it), no terminal
;; of their own and no standard input.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

;;;; Options

(defconst netproc-test-terminal-answer-limit 0.2
  "Seconds within which the terminal Emacs must answer \\[keyboard-quit].")

(defconst netproc-test-terminal-start-timeout 5
  "Seconds the terminal Emacs may take to start, load the driver and warm up.")

(defconst netproc-test-terminal-timeout 3
  "Seconds any other step in the terminal may take before the test gives up.")

(defconst netproc-test-terminal-size '(100 . 30)
  "Columns and lines of the terminal, so that the echo area is at a known line.")

;;;; The driver, loaded by the terminal Emacs

(defconst netproc-test-terminal-driver
  '(;; Loading a .elc with no native code would start compiling it in
    ;; the background: subprocesses that come and go while descriptors
    ;; are counted.
    (setq native-comp-deferred-compilation nil)
    (require 'cl-lib)
    (require 'netproc)

    (defun netproc-test-tty-put (name value)
      "Write VALUE to the file NAME in the test's directory, all at once.
The test reads the file as soon as it exists: it is renamed into place."
      (let ((file (expand-file-name name netproc-test-tty-dir))
            (coding-system-for-write 'utf-8-unix))
        (write-region (prin1-to-string value) nil (concat file ".tmp")
                      nil 'silent)
        (rename-file (concat file ".tmp") file t)))

    (defun netproc-test-tty-sockets ()
      "Return this Emacs's open sockets as (FD . TARGET)."
      (cl-remove-if-not
       (lambda (entry) (string-prefix-p "socket:" (or (cdr entry) "")))
       (mapcar (lambda (name)
                 (cons (string-to-number name)
                       (file-symlink-p (concat "/proc/self/fd/" name))))
               (directory-files "/proc/self/fd" nil "\\`[0-9]+\\'" t))))

    (defun netproc-test-tty-own-processes ()
      "Return the names of the processes, netproc's channel left out."
      (mapcar #'process-name
              (cl-remove-if (lambda (p) (process-get p 'netproc-channel))
                            (process-list))))

    (defun netproc-test-tty-wait (predicate)
      "Run the event loop until PREDICATE holds, three seconds at most."
      (let ((end (+ (float-time) 3)))
        (while (and (not (funcall predicate)) (< (float-time) end))
          (accept-process-output nil 0.01))
        (funcall predicate)))

    (defun netproc-test-tty-warm-up ()
      "Connect and send once with netproc and with the builtin.
What either keeps open for good (netproc's engine and channel) is then
open before the test counts descriptors."
      (let* ((server (make-network-process
                      :name "warm-server" :server t :host "127.0.0.1"
                      :service t :noquery t :coding 'binary))
             (port (process-contact server :service))
             (np (netproc-make-network-process
                  :name "warm" :host "127.0.0.1" :service port :noquery t
                  :coding 'binary))
             (bp (make-network-process
                  :name "warm-builtin" :host "127.0.0.1" :service port
                  :noquery t :coding 'binary)))
        (netproc-send-string np "x")
        (process-send-string bp "x")
        (delete-netproc np)
        (delete-process bp)
        (delete-process server)
        (mapc #'delete-process
              (cl-remove-if (lambda (p) (process-get p 'netproc-channel))
                            (process-list)))
        ;; netproc closes its sockets on the engine thread.
        (netproc-test-tty-wait (lambda () (null (netproc-test-tty-sockets))))))

    (defun netproc-test-tty-make (name &rest args)
      "Make the client NAME with ARGS, on the side under test."
      (apply (if (eq netproc-test-tty-side 'netproc)
                 #'netproc-make-network-process
               #'make-network-process)
             :name name :host "127.0.0.1" :service netproc-test-tty-port
             :noquery t :coding 'binary args))

    (defvar netproc-test-tty-object nil
      "The sending client of the `send' scenario.")

    (defun netproc-test-tty-block ()
      "Make the call that blocks; return its value if it ever returns."
      (pcase netproc-test-tty-scenario
        ('connect (netproc-test-tty-make "hung"))
        ('send
         (let ((chunk (make-string (* 1024 1024) ?x))
               (netproc-send-high-water-mark (* 256 1024)))
           ;; 64 MiB: far more than the kernel's buffers take on loopback.
           (dotimes (_ 64)
             (if (eq netproc-test-tty-side 'netproc)
                 (netproc-send-string netproc-test-tty-object chunk)
               (process-send-string netproc-test-tty-object chunk)))
           'all-sent))))

    (defun netproc-test-tty-run ()
      "Run the scenario and note when it blocks and when a quit ends it."
      (interactive)
      (when (eq netproc-test-tty-scenario 'send)
        (setq netproc-test-tty-object (netproc-test-tty-make "sender")))
      ;; Timers run only while Emacs waits: this one firing shows that
      ;; the call below has reached its wait.
      (let ((timer (run-at-time 0.05 nil (lambda ()
                                           (netproc-test-tty-put
                                            "waiting" (float-time))))))
        (netproc-test-tty-put "calling" (float-time))
        (unwind-protect
            (condition-case err
                (let ((value (netproc-test-tty-block)))
                  (netproc-test-tty-put "result"
                                        (list 'returned (float-time)
                                              (format "%S" value))))
              (quit
               (netproc-test-tty-put "result" (list 'quit (float-time)))
               ;; On to the command loop, which shows "Quit".
               (signal (car err) (cdr err)))
              (error
               (netproc-test-tty-put "result" (list 'error (float-time)
                                                    (format "%S" err)))))
          (cancel-timer timer))))

    (defun netproc-test-tty-report ()
      "Note the state the scenario left its client in, then delete it."
      (let* ((time (float-time))
             (name (if (eq netproc-test-tty-scenario 'send) "sender" "hung"))
             (netproc (eq netproc-test-tty-side 'netproc))
             (object (if netproc (get-netproc name) (get-process name)))
             (status (and object (if netproc (netproc-status object)
                                   (process-status object)))))
        (when object
          (if netproc (delete-netproc object) (delete-process object)))
        (netproc-test-tty-put
         "report"
         (list :time time :listed (and object t) :status status
               :netprocs (mapcar #'netproc-name (netproc-list))
               :processes (netproc-test-tty-own-processes)))))

    (netproc-test-tty-warm-up)
    (netproc-test-tty-put "ready"
                          (list :pid (emacs-pid)
                                :sockets (netproc-test-tty-sockets)
                                :netprocs (mapcar #'netproc-name (netproc-list))
                                :processes (netproc-test-tty-own-processes))))
  "The forms of the driver the terminal Emacs loads.
They follow the definitions of `netproc-test-tty-dir' (the directory
the driver writes its notes to), `netproc-test-tty-side' (`netproc' or
`builtin'), `netproc-test-tty-scenario' (`connect' or `send') and
`netproc-test-tty-port' (the server's port).")

(defun netproc-test-terminal-write-driver (dir side scenario port)
  "Write the driver for SIDE and SCENARIO, reaching PORT, into DIR.
Return its file name."
  (let ((file (expand-file-name "driver.el" dir))
        (print-length nil) (print-level nil) (print-escape-newlines t))
    (with-temp-file file
      (insert ";;; driver.el  -*- lexical-binding: t; -*-\n")
      (dolist (form (append `((defvar netproc-test-tty-dir ,dir)
                              (defvar netproc-test-tty-side ',side)
                              (defvar netproc-test-tty-scenario ',scenario)
                              (defvar netproc-test-tty-port ,port))
                            netproc-test-terminal-driver))
        (prin1 form (current-buffer))
        (insert "\n")))
    file))

;;;; The terminal

(defvar netproc-test-terminal-count 0
  "Number of tmux servers started by this Emacs, for unique names.")

(cl-defstruct (netproc-test-terminal (:constructor netproc-test-terminal--make)
                                     (:copier nil))
  "A terminal Emacs in a tmux server of its own."
  socket dir env pid server-pid)

(defun netproc-test-terminal-environment (dir)
  "Return the environment for tmux, its socket directory being DIR.
TERM is set, as CI may have none.  HOME is DIR too, so that nothing
the terminal Emacs writes for the user (native code, say) outlives the
test.  A TMUX from an enclosing session would make tmux refuse to nest.
A preloaded library (`make sanitize' preloads the ASan runtime) is for
Emacs: it is given to the pane alone."
  (append (list "TERM=xterm-256color" (concat "TMUX_TMPDIR=" dir)
                (concat "HOME=" dir))
          (cl-remove-if
           (lambda (entry)
             (string-match-p
              "\\`\\(TERM\\|HOME\\|TMUX\\|TMUX_PANE\\|TMUX_TMPDIR\\|LD_PRELOAD\\)\\(=\\|\\'\\)"
              entry))
           process-environment)))

(defun netproc-test-terminal-tmux (term &rest args)
  "Run tmux with ARGS against TERM's server; return its output.
Signal an error if tmux fails or takes more than five seconds."
  (let ((process-environment (netproc-test-terminal-env term)))
    (with-temp-buffer
      (let ((status (apply #'call-process "timeout" nil t nil "5" "tmux"
                           "-L" (netproc-test-terminal-socket term)
                           "-f" "/dev/null" args)))
        (unless (eq status 0)
          (error "The command tmux %S ended with status %s: %s"
                 args status (buffer-string)))
        (buffer-string)))))

(defun netproc-test-terminal-note (term name)
  "Return the note NAME the driver of TERM wrote, or nil if there is none yet."
  (let ((file (expand-file-name name (netproc-test-terminal-dir term))))
    (when (file-exists-p file)
      (with-temp-buffer
        (insert-file-contents file)
        (car (read-from-string (buffer-string)))))))

(defun netproc-test-terminal-poll (predicate seconds)
  "Return PREDICATE's value once non-nil, or nil after SECONDS."
  (let ((end (+ (float-time) seconds)) (rounds 0) value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) end) (< rounds (+ 1000 (* 400 seconds))))
      (accept-process-output nil 0.005)
      (setq rounds (1+ rounds)))
    (or value (funcall predicate))))

(defun netproc-test-terminal-screen (term)
  "Return the lines on TERM's screen; nil if tmux cannot tell."
  (ignore-errors
    (split-string (netproc-test-terminal-tmux
                   term "capture-pane" "-p" "-t" "netproc")
                  "\n")))

(defun netproc-test-terminal-await-note (term name &optional seconds)
  "Return the note NAME of TERM, waiting SECONDS for it; fail without it.
SECONDS defaults to `netproc-test-terminal-timeout'."
  (or (netproc-test-terminal-poll
       (lambda () (netproc-test-terminal-note term name))
       (or seconds netproc-test-terminal-timeout))
      (ert-fail (list "the terminal Emacs wrote no note" name
                      :screen (netproc-test-terminal-screen term)))))

(defun netproc-test-terminal-echo-area (term)
  "Return the last line of TERM, its echo area, without trailing blanks."
  (let ((lines (netproc-test-terminal-screen term)))
    (and lines
         (string-trim-right
          (or (nth (1- (cdr netproc-test-terminal-size)) lines) "")))))

(defun netproc-test-terminal-type (term &rest keys)
  "Type KEYS into TERM, with one tmux command.
Each of KEYS is a key as tmux names it (\"Enter\", \"Escape\"), or
\(:text STRING), text typed as it is."
  (apply #'netproc-test-terminal-tmux term
         (cdr (cl-mapcan (lambda (key)
                           (append (list ";" "send-keys" "-t" "netproc")
                                   (if (consp key)
                                       (list "-l" (cadr key))
                                     (list key))))
                         keys))))

(defun netproc-test-terminal-start (dir side scenario port)
  "Start a terminal Emacs running SIDE's SCENARIO against PORT.
Its notes go to DIR.  Return the terminal at once; the driver writes the
note \"ready\" once it is loaded."
  (let* ((term (netproc-test-terminal--make
                :socket (format "netproc-test-%d-%d" (emacs-pid)
                                (cl-incf netproc-test-terminal-count))
                :dir dir
                :env (netproc-test-terminal-environment dir)))
         (emacs (expand-file-name invocation-name invocation-directory))
         (lisp-dir (file-name-directory (locate-library "netproc")))
         (driver (netproc-test-terminal-write-driver dir side scenario port))
         (preload (getenv "LD_PRELOAD")))
    ;; Eterm-color: a terminfo entry every Debian has (ncurses-base), right
    ;; for tmux's screen (it wraps lines as tmux does), and one Emacs has
    ;; no term/ file for.  With tmux's own TERM, Emacs would load
    ;; term/xterm, and start compiling it natively, in a subprocess that
    ;; comes and goes while the test counts descriptors.
    (apply #'netproc-test-terminal-tmux term
           "start-server" ";"
           "set-option" "-g" "default-terminal" "Eterm-color" ";"
           "new-session" "-d" "-s" "netproc"
           "-x" (number-to-string (car netproc-test-terminal-size))
           "-y" (number-to-string (cdr netproc-test-terminal-size))
           (append (and preload (list "-e" (concat "LD_PRELOAD=" preload)))
                   ;; Several words: tmux runs Emacs itself, no shell.
                   (list emacs "-nw" "-Q" "-L" lisp-dir "-l" driver)))
    (pcase-let ((`(,pane ,server)
                 (split-string (netproc-test-terminal-tmux
                                term "display-message" "-p" "-t" "netproc"
                                "#{pane_pid} #{pid}"))))
      (setf (netproc-test-terminal-pid term) (string-to-number pane)
            (netproc-test-terminal-server-pid term) (string-to-number server)))
    term))

(defun netproc-test-terminal-alive-p (pid)
  "Return non-nil if the process PID exists and is not a zombie."
  (let ((attrs (process-attributes pid)))
    (and attrs (not (equal (alist-get 'state attrs) "Z")))))

(defun netproc-test-terminal-stop (term)
  "Kill TERM's tmux server; make sure it and its Emacs are gone."
  (ignore-errors (netproc-test-terminal-tmux term "kill-server"))
  (dolist (pid (list (netproc-test-terminal-pid term)
                     (netproc-test-terminal-server-pid term)))
    (when (and pid (> pid 0)
               (not (netproc-test-terminal-poll
                     (lambda () (not (netproc-test-terminal-alive-p pid)))
                     netproc-test-terminal-timeout)))
      ;; The hangup did not end it.
      (signal-process pid 'KILL))))

(defun netproc-test-terminal-fds (pid)
  "Return the descriptors of the process PID, a sorted list of numbers."
  (sort (mapcar #'string-to-number
                (directory-files (format "/proc/%d/fd" pid) nil
                                 "\\`[0-9]+\\'" t))
        #'<))

(defun netproc-test-terminal-describe-fds (pid fds)
  "Return FDS of the process PID as (FD . TARGET)."
  (mapcar (lambda (fd)
            (cons fd (ignore-errors
                       (file-symlink-p (format "/proc/%d/fd/%d" pid fd)))))
          fds))

(defun netproc-test-terminal-tcp (port)
  "Return the lines of /proc/net/tcp about 127.0.0.1:PORT.
The file is read by cat: `insert-file-contents' stops at 16 KiB of a
file that says it is empty, as /proc's do, and this one is often larger."
  (let ((address (format "0100007F:%04X" port)))
    (with-temp-buffer
      (call-process "timeout" nil t nil "5" "cat" "/proc/net/tcp")
      (cl-remove-if-not (lambda (line) (string-match-p address line))
                        (split-string (buffer-string) "\n" t)))))

(defun netproc-test-terminal-syn-sent-p (pid port)
  "Return non-nil if the process PID has a socket connecting to PORT.
That is a TCP socket of its, in /proc/net/tcp, in state SYN_SENT (02)
towards 127.0.0.1:PORT: a connect the server's full backlog keeps
unanswered."
  (let ((inodes
         (delq nil
               (mapcar (lambda (entry)
                         (let ((target (or (cdr entry) "")))
                           (and (string-match "\\`socket:\\[\\([0-9]+\\)\\]"
                                              target)
                                (match-string 1 target))))
                       (netproc-test-terminal-describe-fds
                        pid (netproc-test-terminal-fds pid)))))
        (remote (format "0100007F:%04X" port)))
    (and (cl-some (lambda (line)
                    (let ((fields (split-string line)))
                      (and (equal (nth 2 fields) remote)
                           (equal (nth 3 fields) "02")
                           (member (nth 9 fields) inodes))))
                  (netproc-test-terminal-tcp port))
         t)))

;;;; Servers that make the calls block

(defun netproc-test-terminal-stuck-server ()
  "Return (SERVER PORT FILLERS): a stopped server whose backlog is full.
As in netproc-wait-tests.el: two connects complete in the kernel's
backlog of one, the others hang, and so will any connect to PORT."
  (let* ((server (make-network-process :name "stuck" :server 1 :service t
                                       :host "127.0.0.1" :stop t :noquery t))
         (port (process-contact server :service))
         (fillers (cl-loop repeat 4
                           collect (netproc-make-network-process
                                    :name "filler" :host "127.0.0.1"
                                    :service port :nowait t :noquery t))))
    (netproc-test-wait-until
     (lambda () (>= (cl-count 'open (mapcar #'netproc-status fillers)) 2))
     5 'backlog-full)
    (list server port fillers)))

(defun netproc-test-terminal-sink-server ()
  "Return a stopped server, whose connections are never accepted nor read.
Connects complete in the kernel's backlog, and what a client sends
fills the socket buffers, then stays with the client."
  (make-network-process :name "sink" :server t :service t
                        :host "127.0.0.1" :stop t :noquery t))

;;;; A scenario

(defun netproc-test-terminal-blocked-p (term pid side scenario port)
  "Return non-nil once TERM's Emacs (process PID) is blocked in SCENARIO.
SIDE and PORT are those of the scenario.  A timer the driver set has
fired if Emacs is waiting in an event loop; the builtin's connect runs
none, and only its socket, connecting, shows where it is."
  (let ((timer-ran (netproc-test-terminal-note term "waiting")))
    (pcase (list side scenario)
      ('(builtin connect) (netproc-test-terminal-syn-sent-p pid port))
      ('(netproc connect)
       (and timer-ran (netproc-test-terminal-syn-sent-p pid port)))
      (_ (and timer-ran t)))))

(defun netproc-test-terminal-quit (term pid side scenario port)
  "Quit SIDE's SCENARIO against PORT in TERM, whose Emacs is process PID.
Start the scenario, wait until it blocks, type \\[keyboard-quit], then look.  Return
what `netproc-test-terminal-run' returns."
  (let ((before (netproc-test-terminal-fds pid))
        (seen nil))
    (netproc-test-terminal-type term "M-x" '(:text "netproc-test-tty-run")
                                "Enter")
    (netproc-test-terminal-await-note term "calling")
    (unless (netproc-test-terminal-poll
             (lambda ()
               (netproc-test-terminal-blocked-p term pid side scenario port))
             netproc-test-terminal-timeout)
      (ert-fail (list "the call did not block"
                      :waiting (netproc-test-terminal-note term "waiting")
                      :result (netproc-test-terminal-note term "result")
                      :fds (netproc-test-terminal-describe-fds
                            pid (netproc-test-terminal-fds pid))
                      :tcp (netproc-test-terminal-tcp port)
                      :screen (netproc-test-terminal-screen term))))
    ;; Blocked, not done: the call has not returned on its own.
    (should-not (netproc-test-terminal-note term "result"))
    (setq seen (list :timer-ran
                     (and (netproc-test-terminal-note term "waiting") t)))
    (let* ((sent (float-time))
           (_ (netproc-test-terminal-type term "C-g"))
           (result (netproc-test-terminal-poll
                    (lambda () (netproc-test-terminal-note term "result"))
                    netproc-test-terminal-timeout)))
      (setq seen (plist-put seen :outcome (car result)))
      (setq seen (plist-put seen :answer (and result (- (nth 1 result) sent)))))
    ;; Without an answer, nothing more is to be had from this Emacs.
    (when (plist-get seen :outcome)
      (setq seen (plist-put
                  seen :quit-shown
                  (and (netproc-test-terminal-poll
                        (lambda ()
                          (equal (netproc-test-terminal-echo-area term) "Quit"))
                        netproc-test-terminal-timeout)
                       t)))
      (let* ((typed (float-time))
             (_ (netproc-test-terminal-type
                 term "M-:" '(:text "(netproc-test-tty-report)") "Enter"))
             (report (netproc-test-terminal-poll
                      (lambda () (netproc-test-terminal-note term "report"))
                      netproc-test-terminal-timeout)))
        (setq seen (plist-put seen :followup
                              (and report (- (plist-get report :time) typed))))
        (setq seen (plist-put seen :report (cddr report))))
      ;; netproc closes a socket on its engine thread, maybe just after
      ;; the delete returned.
      (netproc-test-terminal-poll
       (lambda () (<= (length (netproc-test-terminal-fds pid)) (length before)))
       netproc-test-terminal-timeout))
    (let ((after (netproc-test-terminal-fds pid)))
      (setq seen (plist-put seen :fds-before (length before)))
      (setq seen (plist-put seen :fds-after (length after)))
      (setq seen (plist-put seen :extra-fds
                            (netproc-test-terminal-describe-fds
                             pid (cl-set-difference after before)))))
    (plist-put seen :alive (netproc-test-terminal-alive-p pid))))

(defun netproc-test-terminal-run (side scenario port)
  "Run SIDE's SCENARIO against PORT in a terminal Emacs and quit it.
Return a plist of what was seen:
 :timer-ran   whether Emacs ran timers while blocked
 :outcome     `quit', `returned' or `error', as the driver noted it,
              nil if it noted nothing in time
 :answer      seconds from just before \\[keyboard-quit] was typed to when
              the quit reached the command
 :quit-shown  whether the echo area then said \"Quit\"
 :followup    seconds for an expression typed next to be evaluated
 :report      the driver's account of the client: (:listed :status
              :netprocs :processes)
 :fds-before, :fds-after  how many descriptors Emacs had before the
              scenario and once its client was deleted
 :extra-fds   what it has open that it had not before, as (FD . TARGET)
 :alive       whether it is still running.
Without an answer to the quit, only :timer-ran, :outcome, :answer, the
descriptors and :alive are there."
  (let ((dir (netproc-test-tmpdir))
        (term nil)
        (seen nil))
    (unwind-protect
        (let* ((_ (setq term (netproc-test-terminal-start dir side scenario
                                                          port)))
               (ready (netproc-test-terminal-await-note
                       term "ready" netproc-test-terminal-start-timeout))
               (pid (plist-get ready :pid)))
          ;; Nothing of the warm-up is left, and tmux ran Emacs itself.
          (should (equal (cddr ready) '(:sockets nil :netprocs nil
                                                 :processes nil)))
          (should (equal pid (netproc-test-terminal-pid term)))
          (setq seen (netproc-test-terminal-quit term pid side scenario port)))
      (when term
        (netproc-test-terminal-stop term)))
    (message "netproc-test-terminal: %s %s: C-g answered in %s, M-: in %s, %S"
             side scenario
             (netproc-test-terminal-ms (plist-get seen :answer))
             (netproc-test-terminal-ms (plist-get seen :followup))
             seen)
    seen))

(defun netproc-test-terminal-ms (seconds)
  "Return SECONDS as milliseconds for people, or \"no answer\" if nil."
  (if seconds (format "%.1f ms" (* 1000 seconds)) "no answer"))

(defun netproc-test-terminal-check (seen report)
  "Fail unless in SEEN the quit was answered in time, with nothing left.
REPORT is the state the client must be left in: (:listed L :status S
:netprocs nil :processes nil)."
  (should (eq (plist-get seen :outcome) 'quit))
  (should (< (plist-get seen :answer) netproc-test-terminal-answer-limit))
  (should (plist-get seen :quit-shown))
  (should (plist-get seen :followup))
  (should (equal (plist-get seen :report) report))
  (should (equal (plist-get seen :extra-fds) nil))
  (should (= (plist-get seen :fds-after) (plist-get seen :fds-before)))
  (should (plist-get seen :alive)))

;;;; Tests

(ert-deftest netproc-test-terminal-quit-blocking-connect ()
  "Typing \\[keyboard-quit] in a terminal ends a blocking connect; nothing is left.
The netproc is gone, as the builtin's process is, and Emacs ran its
timers while it waited."
  (netproc-test-with-cleanup
    (pcase-let* ((`(,server ,port ,fillers) (netproc-test-terminal-stuck-server))
                 (seen (netproc-test-terminal-run 'netproc 'connect port)))
      (netproc-test-terminal-check
       seen '(:listed nil :status nil :netprocs nil :processes nil))
      (should (plist-get seen :timer-ran))
      (mapc #'delete-netproc fillers)
      (delete-process server))))

(ert-deftest netproc-test-terminal-builtin-quit-blocking-connect ()
  "Typing \\[keyboard-quit] in a terminal ends the builtin's blocking connect.
What the builtin does every time: its connect(2) is interrupted, the
process is gone, its socket closed.  Emacs runs no timer meanwhile."
  (skip-unless (not netproc-test-netproc-only))
  (netproc-test-with-cleanup
    (pcase-let* ((`(,server ,port ,fillers) (netproc-test-terminal-stuck-server))
                 (seen (netproc-test-terminal-run 'builtin 'connect port)))
      (netproc-test-terminal-check
       seen '(:listed nil :status nil :netprocs nil :processes nil))
      (should-not (plist-get seen :timer-ran))
      (mapc #'delete-netproc fillers)
      (delete-process server))))

(ert-deftest netproc-test-terminal-quit-high-water-send ()
  "Typing \\[keyboard-quit] in a terminal ends a send held at the high-water mark.
The netproc stays open, as the builtin's process does, and deleting it
gives its descriptor back."
  (netproc-test-with-cleanup
    (let* ((server (netproc-test-terminal-sink-server))
           (seen (netproc-test-terminal-run
                  'netproc 'send (process-contact server :service))))
      (netproc-test-terminal-check
       seen '(:listed t :status open :netprocs nil :processes nil))
      (delete-process server))))

(ert-deftest netproc-test-terminal-builtin-quit-blocked-send ()
  "Typing \\[keyboard-quit] in a terminal ends the builtin's send to a stuck peer.
What the builtin does every time: it waits in its event loop, quits
from there, and its process stays open."
  (skip-unless (not netproc-test-netproc-only))
  (netproc-test-with-cleanup
    (let* ((server (netproc-test-terminal-sink-server))
           (seen (netproc-test-terminal-run
                  'builtin 'send (process-contact server :service))))
      (netproc-test-terminal-check
       seen '(:listed t :status open :netprocs nil :processes nil))
      (delete-process server))))

;;;; Exiting with output queued

(defconst netproc-test-terminal-exit-message
  (concat "netproc: writing out what 1 connection still had to send "
          "before exiting; C-g drops it")
  "What the exit says while it waits for a netproc's output.")

(defconst netproc-test-terminal-exit-form
  '(let ((netproc-send-high-water-mark (* 64 1024 1024))
         (p (netproc-test-tty-make "sender")))
     ;; 16 MiB: far more than the kernel's buffers take on loopback.
     (dotimes (_ 16)
       (netproc-send-string p (make-string (* 1024 1024) ?x)))
     (netproc-test-tty-put "queued" (float-time))
     (kill-emacs 0))
  "What the terminal Emacs is asked to evaluate: queue output, exit.")

(ert-deftest netproc-test-terminal-quit-exit-wait ()
  "Typing \[keyboard-quit] ends the exit's wait for output a peer never reads.
The exit waits for what the netproc still has queued, says so in the
echo area, and on \[keyboard-quit] drops it: Emacs is gone soon after."
  (netproc-test-with-cleanup
    (let* ((server (netproc-test-terminal-sink-server))
           (dir (netproc-test-tmpdir))
           (term nil))
      (unwind-protect
          (let* ((_ (setq term (netproc-test-terminal-start
                                dir 'netproc 'send
                                (process-contact server :service))))
                 (ready (netproc-test-terminal-await-note
                         term "ready" netproc-test-terminal-start-timeout))
                 (pid (plist-get ready :pid)))
            (netproc-test-terminal-type
             term "M-:" (list :text (prin1-to-string
                                     netproc-test-terminal-exit-form))
             "Enter")
            (netproc-test-terminal-await-note term "queued")
            ;; Said after a second of waiting.
            (should (netproc-test-terminal-poll
                     (lambda ()
                       (equal (netproc-test-terminal-echo-area term)
                              netproc-test-terminal-exit-message))
                     netproc-test-terminal-timeout))
            (should (netproc-test-terminal-alive-p pid))
            (let ((typed (float-time)))
              (netproc-test-terminal-type term "C-g")
              (should (netproc-test-terminal-poll
                       (lambda () (not (netproc-test-terminal-alive-p pid)))
                       netproc-test-terminal-timeout))
              (message "netproc-test-terminal: exit gone %.1f ms after C-g"
                       (* 1000 (- (float-time) typed)))))
        (when term
          (netproc-test-terminal-stop term)))
      (delete-process server))))

(provide 'netproc-terminal-tests)

;;; netproc-terminal-tests.el ends here
