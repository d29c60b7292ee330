;;; netproc-compat-tests.el --- Tests of netproc-compat-mode  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Every differential scenario (see `netproc-test-deftest') is run a
;; third time here: as written, with the builtin names, while
;; `netproc-compat-mode' is on, and its trace must equal the builtin's.
;; Those tests are named netproc-compat-rerun/SCENARIO.
;;
;; Then the mode itself: what it advises and gives back, the routing
;; (TLS stays builtin), and the Emacs-visible behaviour of killing a
;; buffer, `list-processes' and exiting.  The tests against real
;; clients and servers (url.el and nginx, websocket.el) are in
;; netproc-compat-clients-tests.el.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'netproc-test-lib)
(require 'netproc-compat)

;; The first time the mode is turned on for a user, native compilation
;; makes its trampolines (some twenty seconds, then cached): here, before
;; any test's time limit runs.
(netproc-compat-mode 1)
(netproc-compat-mode -1)

;;;; Reruns of the differential scenarios

(defmacro netproc-compat-test-with-mode (&rest body)
  "Run BODY with `netproc-compat-mode' on, and turn it off after."
  (declare (indent 0) (debug t))
  `(progn
     (netproc-compat-mode 1)
     (unwind-protect (progn ,@body)
       (netproc-compat-mode -1))))

(defun netproc-compat-test--failure (trace)
  "Return the entry of TRACE saying its scenario failed, or nil."
  (or (assq :scenario-error trace) (assq :scenario-timeout trace)))

(defun netproc-compat-test--run-compat (name scenario)
  "Run SCENARIO (named NAME) with the mode on; check it ran cleanly.
Return its normalized trace."
  (let* ((result (netproc-test-with-side 'compat
                   (netproc-compat-test-with-mode (funcall scenario))))
         (trace (car result)))
    (when (netproc-compat-test--failure trace)
      (netproc-test--print-trace (format "%s compat" name) trace)
      (ert-fail (list "compat run of the scenario failed"
                      (netproc-compat-test--failure trace))))
    (netproc-test--check-side "compat" result)
    trace))

(defun netproc-compat-test-rerun (name scenario)
  "Run SCENARIO (named NAME) as written, without then with the mode.
The two traces must be equal."
  (netproc-test--warm-up)
  (if (or netproc-test-netproc-only netproc-test-builtin-only)
      (netproc-compat-test--run-compat name scenario)
    (let* ((b (netproc-test-with-side 'builtin (funcall scenario)))
           (bt (car b)))
      (when (netproc-compat-test--failure bt)
        (netproc-test--print-trace (format "%s builtin" name) bt)
        (ert-fail (list "builtin run of the scenario failed"
                        (netproc-compat-test--failure bt))))
      (netproc-test--check-side "builtin" b)
      (let* ((ct (netproc-compat-test--run-compat name scenario))
             (at (netproc-test--first-difference bt ct)))
        (when (or at netproc-test-verbose)
          (message "=== %s (compat): %s" name
                   (if at "TRACES DIFFER" "traces equal"))
          (netproc-test--print-trace "builtin" bt (and at ct))
          (netproc-test--print-trace "compat" ct (and at bt)))
        (when at
          (ert-fail (list "builtin and compat traces differ" :at at
                          :builtin (nth at bt) :compat (nth at ct))))))))

(defconst netproc-compat-test-not-rerun nil
  "Scenarios not to rerun with the mode on: (NAME . REASON).")

(defun netproc-compat-test--define-rerun (name scenario)
  "Define the ERT test that reruns SCENARIO, named NAME, with the mode on."
  (let ((test (intern (format "netproc-compat-rerun/%s" name))))
    (unless (assq name netproc-compat-test-not-rerun)
      (ert-set-test test
                  (make-ert-test
                   :name test
                   :documentation
                   (format "Scenario `%s' as written, with the mode on."
                           name)
                   :tags '(compat)
                   :body (lambda ()
                           (netproc-compat-test-rerun name scenario)))))))

(pcase-dolist (`(,name . ,scenario) (reverse netproc-test-scenarios))
  (netproc-compat-test--define-rerun name scenario))
(add-hook 'netproc-test-scenario-functions #'netproc-compat-test--define-rerun)

;;;; The mode on and off

(defun netproc-compat-test--cells ()
  "Return (PRIMITIVE . FUNCTION-CELL) for every primitive the mode advises."
  (mapcar (lambda (f) (cons f (symbol-function f)))
          (netproc-compat-primitives)))

(defun netproc-compat-test--changed ()
  "Return the functions the mode has replaced or advised now."
  (append
   (cl-loop for (primitive function) in netproc-compat--replacements
            when (eq (symbol-function primitive) function)
            collect primitive)
   (cl-loop for (name . function) in netproc-compat--advice
            when (advice-member-p function name)
            collect name)))

(defun netproc-compat-test--advice-left ()
  "Return the primitives that carry any of the mode's functions as advice."
  (let ((functions (append (mapcar #'cadr netproc-compat--replacements)
                           (mapcar #'cdr netproc-compat--advice))))
    (cl-remove-if-not
     (lambda (primitive)
       (cl-some (lambda (f) (advice-member-p f primitive)) functions))
     (netproc-compat-primitives))))

(ert-deftest netproc-compat-mode-off-restores-primitives ()
  "On, every primitive is changed; off, each function cell is as before."
  (should-not netproc-compat-mode)
  (let ((before (netproc-compat-test--cells)))
    (should-not (netproc-compat-test--changed))
    (dotimes (_ 2)
      (netproc-compat-mode 1)
      (unwind-protect
          (progn
            (should (equal (netproc-compat-test--changed)
                           (netproc-compat-primitives)))
            (should-not (memq #'netproc-kill-buffer-query-function
                              (default-value 'kill-buffer-query-functions)))
            ;; Turning it on twice changes nothing more.
            (netproc-compat-mode 1)
            (should (equal (netproc-compat-test--changed)
                           (netproc-compat-primitives))))
        (netproc-compat-mode -1))
      (should-not (netproc-compat-test--changed))
      (should-not (netproc-compat-test--advice-left))
      (should (memq #'netproc-kill-buffer-query-function
                    (default-value 'kill-buffer-query-functions)))
      (should (memq #'netproc--kill-emacs-query
                    (default-value 'kill-emacs-query-functions)))
      (dolist (cell before)
        (should (eq (symbol-function (car cell)) (cdr cell)))))))

(defvar netproc-compat-test--outer-calls 0
  "Calls seen by `netproc-compat-test--outer-advice'.")

(defun netproc-compat-test--outer-advice (orig &rest args)
  "Count a call in `netproc-compat-test--outer-calls'; call ORIG with ARGS."
  (cl-incf netproc-compat-test--outer-calls)
  (apply orig args))

(ert-deftest netproc-compat-mode-keeps-other-advice ()
  "Advice on a primitive, added before or during the mode, stays."
  (let ((before (symbol-function 'process-status))
        (name-before (symbol-function 'process-name)))
    (unwind-protect
        (progn
          (advice-add 'process-status :around
                      #'netproc-compat-test--outer-advice)
          (netproc-compat-mode 1)
          (advice-add 'process-name :around #'netproc-compat-test--outer-advice)
          (setq netproc-compat-test--outer-calls 0)
          (should (eq (process-status "no such process") nil))
          (should (= netproc-compat-test--outer-calls 1))
          (netproc-compat-mode -1)
          (should (advice-member-p #'netproc-compat-test--outer-advice
                                   'process-status))
          (should (advice-member-p #'netproc-compat-test--outer-advice
                                   'process-name))
          (should-not (netproc-compat-test--advice-left))
          (should (eq (advice--cd*r (symbol-function 'process-name))
                      name-before)))
      (netproc-compat-mode -1)
      (advice-remove 'process-status #'netproc-compat-test--outer-advice)
      (advice-remove 'process-name #'netproc-compat-test--outer-advice))
    (should (eq (symbol-function 'process-status) before))
    (should (eq (symbol-function 'process-name) name-before))))

(ert-deftest netproc-compat-mode-covers-the-primitives ()
  "The mode changes every builtin of the harness and more that clients use.
`process-get' and `process-put' are Lisp over `process-plist' and
`set-process-plist', which it changes."
  (dolist (f (append (cl-set-difference netproc-test-builtin-functions
                                        '(process-get process-put))
                     '(get-buffer-process process-thread
                       process-inherit-coding-system-flag
                       set-process-inherit-coding-system-flag
                       process-tty-name set-network-process-option
                       kill-process interrupt-process quit-process
                       gnutls-peer-status
                       open-network-stream open-gnutls-stream url-https)))
    (should (memq f (netproc-compat-primitives)))))

(ert-deftest netproc-compat-mode-off-makes-builtin-processes ()
  "With the mode off, `make-network-process' is the builtin's."
  (netproc-test-with-cleanup
    (let* ((peer (netproc-test-peer-start))
           (p (make-network-process :name "off" :host "127.0.0.1"
                                    :service (netproc-test-peer-port peer))))
      (should (eq (type-of p) 'process))
      (should-not (netprocp p))
      (delete-process p))))

(ert-deftest netproc-compat-netprocs-outlive-the-mode ()
  "A netproc made while the mode was on keeps working through the twins."
  (netproc-test-with-cleanup
    (let* ((peer (netproc-test-peer-start))
           (got "")
           (p (netproc-compat-test-with-mode
                (make-network-process
                 :name "outlive" :host "127.0.0.1"
                 :service (netproc-test-peer-port peer)
                 :filter (lambda (_p s) (setq got (concat got s)))))))
      (should (netprocp p))
      (should-not (processp p))
      (netproc-send-string p "ping")
      (netproc-test-peer-wait-received peer (lambda (d) (equal d "ping")))
      (netproc-test-peer-send peer "pong")
      (netproc-test-wait-for (equal got "pong"))
      (delete-netproc p)
      (should (eq (netproc-status p) 'closed)))))

(ert-deftest netproc-compat-builtin-processes-unchanged ()
  "With the mode on, a builtin process is served by the primitives."
  (netproc-test-with-cleanup
    (let ((peer (netproc-test-peer-start)))
      (netproc-compat-test-with-mode
        (let ((p (let ((netproc-compat-inhibit t))
                   (make-network-process
                    :name "plain-builtin" :host "127.0.0.1"
                    :service (netproc-test-peer-port peer)))))
          (should (eq (type-of p) 'process))
          (should (eq (process-status p) 'open))
          (should (memq p (process-list)))
          (should (eq (get-process "plain-builtin") p))
          (process-send-string p "x")
          (netproc-test-peer-wait-received peer (lambda (d) (equal d "x")))
          (should (process-live-p p))
          (delete-process p)
          (should (eq (process-status p) 'closed)))))))

(ert-deftest netproc-compat-accept-just-this-one ()
  "`accept-process-output' on a netproc takes JUST-THIS-ONE, t or a number."
  (netproc-test-with-cleanup
    (let ((peer (netproc-test-peer-start)) (got ""))
      (netproc-compat-test-with-mode
        (let ((p (make-network-process
                  :name "jto" :host "127.0.0.1"
                  :service (netproc-test-peer-port peer)
                  :filter (lambda (_p s) (setq got (concat got s))))))
          (should (netprocp p))
          (netproc-test-peer-send peer "a")
          (should (netproc-test-wait-for (accept-process-output p 1 nil t)))
          (netproc-test-peer-send peer "b")
          (should (netproc-test-wait-for (accept-process-output p 1 nil 0)))
          (should (equal got "ab"))
          (should-not (accept-process-output p 0.05 nil t))
          (delete-process p))))))

;;;; Waiting for one connection only

(defun netproc-compat-test--just-this-one (builtin)
  "Wait with JUST-THIS-ONE on a connection, builtin if BUILTIN.
Another, builtin, connection has output waiting too, and a timer is
due.  Return what each wait returned and what ran meanwhile."
  (let* ((peer (netproc-test-peer-start))
         (other-peer (netproc-test-peer-start))
         (seen nil)
         (p (netproc-compat-test--connect
             builtin "jto" peer
             :filter (lambda (_p s) (push (list :jto s) seen))))
         (other (netproc-compat-test--connect
                 t "other" other-peer
                 :filter (lambda (_p s) (push (list :other s) seen))))
         (conn (netproc-test-peer-conn peer))
         (other-conn (netproc-test-peer-conn other-peer)))
    (process-send-string other-conn "o")
    (process-send-string conn "p")
    (run-at-time 0 nil (lambda () (push :timer seen)))
    (push (list :integer (accept-process-output p 2 nil 1)) seen)
    (push (list :t (accept-process-output p 0.05 nil t)) seen)
    (push (list :other (accept-process-output other 2)) seen)
    (delete-process p)
    (delete-process other)
    (reverse seen)))

(ert-deftest netproc-compat-accept-just-this-one-reads-one ()
  "JUST-THIS-ONE on a netproc leaves other processes, and timers, alone."
  (let ((builtin (netproc-test-with-cleanup
                   (netproc-compat-test-with-mode
                     (netproc-test-note
                      :seen (netproc-compat-test--just-this-one t)))))
        (netproc (netproc-test-with-cleanup
                   (netproc-compat-test-with-mode
                     (netproc-test-note
                      :seen (netproc-compat-test--just-this-one nil))))))
    (should (equal (cadr (assq :seen netproc))
                   '((:jto "p") (:integer t) :timer (:t nil)
                     (:other "o") (:other t))))
    (should (equal netproc builtin))))

;;;; TLS stays builtin

(defvar netproc-compat-test--routed nil
  "Argument lists the recording route function saw, newest first.")

(defun netproc-compat-test--record-route (args)
  "Record ARGS in `netproc-compat-test--routed' and route them."
  (push args netproc-compat-test--routed)
  t)

(ert-deftest netproc-compat-tls-stream-decisions ()
  "Which `open-network-stream' parameters count as TLS."
  (dolist (params '((:type tls) (:type ssl) (:type starttls)
                    (:type plain :tls-parameters (gnutls-x509pki))
                    (:type network :success "OK" :capability-command "C")
                    (:starttls-function identity)))
    (should (netproc-compat-tls-stream-p params)))
  (dolist (params '((:type plain) (:type network) () (:nowait t)
                    (:type plain :success "OK" :capability-command "C")))
    (should-not (netproc-compat-tls-stream-p params)))
  (should (netproc-compat-route-default '(:name "a" :service 1)))
  (should (netproc-compat-route-default '(:type seqpacket)))
  (should-not (netproc-compat-route-default '(:type no-such-type))))

(defun netproc-compat-test--starttls (port)
  "Open a STARTTLS stream to PORT; return it as `netproc-test-try' does."
  (netproc-test-try
    (open-network-stream "starttls" nil "127.0.0.1" port
                         :type 'starttls :nogreeting t :return-list t)))

(ert-deftest netproc-compat-tls-calls-stay-builtin ()
  "TLS connections made with the mode on are builtin processes.
The peer speaks no TLS: each handshake is abandoned."
  (netproc-test-with-cleanup
    (let* ((peer (netproc-test-peer-start))
           (port (netproc-test-peer-port peer))
           (netproc-compat-route-function #'netproc-compat-test--record-route)
           (netproc-compat-test--routed nil)
           made)
      (netproc-compat-test-with-mode
        (push (open-network-stream "tls" nil "127.0.0.1" port
                                   :type 'tls :nowait t)
              made)
        (push (make-network-process
               :name "tls-params" :host "127.0.0.1" :service port :nowait t
               :tls-parameters (cons 'gnutls-x509pki
                                     (gnutls-boot-parameters
                                      :hostname "localhost")))
              made)
        ;; STARTTLS to a peer that offers no capabilities: the stream is
        ;; made, finds no TLS, is deleted, and Emacs 28 then fails as it
        ;; does without the mode.
        (should (equal (netproc-compat-test--starttls port)
                       (progn
                         (netproc-compat-mode -1)
                         (unwind-protect (netproc-compat-test--starttls port)
                           (netproc-compat-mode 1)))))
        (should-not netproc-compat-test--routed)
        (should-not (netproc-list))
        (dolist (p made)
          (should (eq (type-of p) 'process)))
        (let ((plain (open-network-stream "plain" nil "127.0.0.1" port
                                          :type 'plain)))
          (should (netprocp plain))
          (should (= (length netproc-compat-test--routed) 1))
          (delete-process plain))
        (dolist (p made)
          (set-process-sentinel p #'ignore)
          (delete-process p))))))

;;;; Killing a buffer, listing processes, exiting

(defun netproc-compat-test--connect (builtin name peer &rest args)
  "Connect NAME to PEER with the mode on, builtin if BUILTIN; pass ARGS."
  (let ((netproc-compat-inhibit builtin))
    (apply #'make-network-process :name name :host "127.0.0.1"
           :service (netproc-test-peer-port peer) args)))

(defun netproc-compat-test--kill-buffer (builtin answer)
  "Kill the buffer of a live connection, builtin if BUILTIN, answering ANSWER.
Return the buffer's liveness, the questions asked, the connection's
status and its sentinel's messages."
  (let* ((peer (netproc-test-peer-start))
         (buffer (get-buffer-create "kb"))
         (questions nil) (messages nil)
         (p (netproc-compat-test--connect
             builtin "kb" peer :buffer buffer
             :sentinel (lambda (_p m) (push m messages)))))
    (netproc-test-peer-conn peer)
    (cl-letf (((symbol-function 'yes-or-no-p)
               (lambda (q) (push q questions) answer)))
      (kill-buffer buffer))
    (netproc-test-settle 0.1)
    (prog1 (list (buffer-live-p buffer) (reverse questions)
                 (process-status p) (reverse messages))
      (delete-process p))))

(ert-deftest netproc-compat-kill-buffer-asks-once ()
  "Killing a netproc's buffer asks and deletes as for a builtin process."
  (dolist (answer '(nil t))
    (let ((builtin (netproc-test-with-cleanup
                     (netproc-compat-test-with-mode
                       (netproc-test-note
                        :seen (netproc-compat-test--kill-buffer t answer)))))
          (netproc (netproc-test-with-cleanup
                     (netproc-compat-test-with-mode
                       (netproc-test-note
                        :seen (netproc-compat-test--kill-buffer nil answer))))))
      (should (equal (length (nth 1 (cadr (assq :seen builtin)))) 1))
      (should (equal netproc builtin)))))

(defun netproc-compat-test--process-row (name)
  "Return the row of NAME in the process list, NAME made anonymous."
  (with-current-buffer "*Process List*"
    (let ((entry (cl-find-if (lambda (e) (equal (aref (cadr e) 0) name))
                             tabulated-list-entries)))
      (and entry
           (replace-regexp-in-string
            (regexp-quote name) "NAME"
            (prin1-to-string (cadr entry)))))))

(ert-deftest netproc-compat-list-processes ()
  "`list-processes' shows a netproc as it shows a builtin connection."
  (netproc-test-with-cleanup
    (let ((peer (netproc-test-peer-start)))
      (netproc-compat-test-with-mode
        (let ((b (netproc-compat-test--connect
                  t "lp-b" peer :buffer (get-buffer-create "lp-b")))
              (n (netproc-compat-test--connect
                  nil "lp-n" peer :buffer (get-buffer-create "lp-n"))))
          (should (netprocp n))
          (list-processes)
          (should (netproc-compat-test--process-row "lp-n"))
          (should (equal (netproc-compat-test--process-row "lp-n")
                         (netproc-compat-test--process-row "lp-b")))
          (with-current-buffer "*Process List*"
            (goto-char (point-min))
            (should (re-search-forward "^ *lp-n .* open " nil t)))
          (delete-process b)
          (delete-process n)
          (kill-buffer "*Process List*"))))))

(defun netproc-compat-test--exit (builtin answer)
  "Ask Emacs to exit with a live connection, builtin if BUILTIN.
Answer ANSWER to the question; `kill-emacs' only notes that it was
called.  Return the questions and whether Emacs would have exited."
  (let* ((peer (netproc-test-peer-start))
         (p (netproc-compat-test--connect builtin "exit" peer))
         (questions nil) (exited nil))
    (netproc-test-peer-conn peer)
    (cl-letf (((symbol-function 'yes-or-no-p)
               (lambda (q) (push q questions) answer))
              ((symbol-function 'kill-emacs)
               (lambda (&rest _) (setq exited t))))
      (save-buffers-kill-emacs))
    (when (get-buffer "*Process List*")
      (kill-buffer "*Process List*"))
    (delete-process p)
    (list (reverse questions) exited)))

(ert-deftest netproc-compat-exit-query ()
  "Exiting with a live netproc asks once, as with a builtin connection."
  (dolist (answer '(nil t))
    (let ((builtin (netproc-test-with-cleanup
                     (netproc-compat-test-with-mode
                       (netproc-test-note
                        :seen (netproc-compat-test--exit t answer)))))
          (netproc (netproc-test-with-cleanup
                     (netproc-compat-test-with-mode
                       (netproc-test-note
                        :seen (netproc-compat-test--exit nil answer))))))
      (should (equal (cadr (assq :seen netproc))
                     (list (list (concat "Active processes exist; "
                                         "kill them and exit anyway? "))
                           answer)))
      (should (equal netproc builtin)))))

(ert-deftest netproc-compat-kill-emacs-with-connections ()
  "An Emacs with live netprocs made by the mode exits at once."
  (let ((result
         (netproc-test-child-emacs
          '(progn
             (require 'netproc-compat)
             (netproc-compat-mode 1)
             (let* ((server (let ((netproc-compat-inhibit t))
                              (make-network-process
                               :name "s" :server t :host "127.0.0.1"
                               :service t :noquery t)))
                    (port (process-contact server :service))
                    (conns (list (make-network-process
                                  :name "a" :host "127.0.0.1" :service port)
                                 (make-network-process
                                  :name "b" :host "127.0.0.1" :service port
                                  :nowait t))))
               (accept-process-output nil 0.1)
               (princ (format "%S\n" (mapcar #'netprocp conns)))
               (kill-emacs 7))))))
    (should (equal result '(7 . "(t t)\n")))))

(provide 'netproc-compat-tests)

;;; netproc-compat-tests.el ends here
