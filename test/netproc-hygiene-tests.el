;;; netproc-hygiene-tests.el --- Exports, reloading, engine thread, descriptors  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Checks that do not compare with the builtin: the module exports
;; only its two entry points, loading twice is harmless, the engine
;; thread runs while netproc is loaded, and netproc's descriptors are
;; not inherited by subprocesses.  Everything that loads the module
;; again runs in a child Emacs.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

(defun netproc-test-module-file ()
  "Return the path of the compiled module."
  (or (getenv "NETPROC_MODULE")
      (expand-file-name "../module/netproc-module.so"
                        (file-name-directory
                         (locate-library "netproc-test-lib")))))

(defconst netproc-test-allowed-exports
  '("emacs_module_init" "plugin_is_GPL_compatible")
  "The symbols the module must export.")

(defconst netproc-test-tolerated-exports
  '("_init" "_fini" "_edata" "_end" "__bss_start")
  "Symbols the linker may add; tolerated only when present.")

(ert-deftest netproc-test-hygiene-exports ()
  "The module exports emacs_module_init and plugin_is_GPL_compatible only.
This is about the module `make' builds; a sanitizer build under test
exports the sanitizer's own symbols besides."
  (let ((file (expand-file-name "../module/netproc-module.so"
                                (file-name-directory
                                 (locate-library "netproc-test-lib")))))
    (skip-unless (file-exists-p file))
    (skip-unless (executable-find "nm"))
    (let* ((out (with-temp-buffer
                  (should (eq 0 (call-process "nm" nil t nil "-D" "--defined-only"
                                              file)))
                  (buffer-string)))
           (names (delq nil (mapcar (lambda (line)
                                      (car (last (split-string line " " t))))
                                    (split-string out "\n" t))))
           (extra (cl-set-difference
                   names (append netproc-test-allowed-exports
                                 netproc-test-tolerated-exports)
                   :test #'equal)))
      (should (equal (list :missing
                           (cl-set-difference netproc-test-allowed-exports names
                                              :test #'equal)
                           :extra extra)
                     '(:missing nil :extra nil))))))

(defconst netproc-test-roundtrip-form
  '(let* ((srv (make-network-process
                :name "s" :server t :host "127.0.0.1" :service t :noquery t
                :filter (lambda (p s) (process-send-string p (upcase s)))))
          (got nil)
          (c (netproc-make-network-process
              :name "c" :host "127.0.0.1" :service (process-contact srv :service)
              :filter (lambda (_p s) (setq got (concat got s)))))
          (end (+ (float-time) 5)))
     (netproc-send-string c "ping")
     (while (and (not (equal got "PING")) (< (float-time) end))
       (accept-process-output nil 0.02))
     (delete-netproc c)
     (delete-process srv)
     (princ (format "roundtrip %S\n" got)))
  "A connect, send and echo through netproc, printing what came back.")

(ert-deftest netproc-test-hygiene-load-twice ()
  "Loading netproc.el twice and the module twice is harmless."
  (skip-unless (netproc-test-available-p))
  (let ((r (netproc-test-child-emacs
            `(progn
               (load "netproc" nil t)
               (load "netproc" nil t)
               ,netproc-test-roundtrip-form
               (princ (format "module-load %S\n"
                              (condition-case e
                                  (progn (module-load ,(netproc-test-module-file))
                                         (module-load ,(netproc-test-module-file))
                                         'ok)
                                (error e))))
               (load "netproc" nil t)
               ,netproc-test-roundtrip-form
               (princ "survived\n")))))
    (unless (eq (car r) 0) (message "child Emacs: %S\n%s" (car r) (cdr r)))
    (should (equal (car r) 0))
    (should (equal (cl-count-if (lambda (l) (equal l "roundtrip \"PING\""))
                                (split-string (cdr r) "\n"))
                   2))
    (should (string-match-p "^module-load ok$" (cdr r)))
    (should (string-match-p "^survived$" (cdr r)))))

(ert-deftest netproc-test-hygiene-engine-thread ()
  "The engine thread exists once netproc is loaded and in use."
  (skip-unless (netproc-test-available-p))
  (let ((r (netproc-test-child-emacs
            `(let ((threads (lambda () (length (directory-files
                                                 "/proc/self/task" nil
                                                 "\\`[0-9]+\\'")))))
               (princ (format "before %d\n" (funcall threads)))
               (require 'netproc)
               (princ (format "loaded %d\n" (funcall threads)))
               ,netproc-test-roundtrip-form
               (princ (format "used %d\n" (funcall threads)))))))
    (unless (eq (car r) 0) (message "child Emacs: %S\n%s" (car r) (cdr r)))
    (should (equal (car r) 0))
    (let ((count (lambda (label)
                   (and (string-match (format "^%s \\([0-9]+\\)$" label) (cdr r))
                        (string-to-number (match-string 1 (cdr r)))))))
      (should (string-match-p "roundtrip \"PING\"" (cdr r)))
      (should (> (funcall count "used") (funcall count "before"))))))

(ert-deftest netproc-test-hygiene-descriptors-not-inherited ()
  "A subprocess started after netproc ran inherits no new descriptor."
  (skip-unless (netproc-test-available-p))
  (let ((r (netproc-test-child-emacs
            `(let ((child-fds
                    (lambda ()
                      (with-temp-buffer
                        (call-process "sh" nil t nil "-c" "ls /proc/$$/fd")
                        (split-string (buffer-string))))))
               (princ (format "before %S\n" (funcall child-fds)))
               (require 'netproc)
               ,netproc-test-roundtrip-form
               (let ((srv (make-network-process :name "s2" :server t :noquery t
                                                :host "127.0.0.1" :service t)))
                 (netproc-make-network-process
                  :name "kept" :host "127.0.0.1" :noquery t
                  :service (process-contact srv :service))
                 (princ (format "after %S\n" (funcall child-fds))))))))
    (unless (eq (car r) 0) (message "child Emacs: %S\n%s" (car r) (cdr r)))
    (should (equal (car r) 0))
    (let ((get (lambda (label)
                 (and (string-match (format "^%s \\(.*\\)$" label) (cdr r))
                      (car (read-from-string (match-string 1 (cdr r))))))))
      (should (string-match-p "roundtrip \"PING\"" (cdr r)))
      (should (equal (funcall get "after") (funcall get "before"))))))

(ert-deftest netproc-test-hygiene-no-leak-after-many-connections ()
  "Twenty connects and deletes leave no descriptor and no netproc behind."
  (skip-unless (netproc-test-available-p))
  (netproc-test-with-cleanup
    (let ((peer (netproc-test-peer-start)))
      (dotimes (i 20)
        (let ((p (funcall 'netproc-make-network-process
                          :name (format "m%d" i) :host "127.0.0.1"
                          :service (netproc-test-peer-port peer))))
          (netproc-test-peer-conn peer i)
          (funcall 'delete-netproc p)))
      (should (null (funcall 'netproc-list))))))

;;;; Exiting and garbage collection

(defconst netproc-test-exit-form
  '(let* ((srv (make-network-process
                :name "s" :server t :host "127.0.0.1" :service t :noquery t
                :filter (lambda (p s) (process-send-string p s))))
          (port (process-contact srv :service))
          (chunk (make-string 65536 ?e))
          (conns (cl-loop for i below 8
                          collect (netproc-make-network-process
                                   :name "x" :service port
                                   :filter #'ignore))))
     (require 'cl-lib)
     ;; Transfers in flight in both directions, then exit at once.
     (dolist (c conns)
       (dotimes (_ 16) (netproc-send-string c chunk)))
     (accept-process-output nil 0.05)
     (let ((start (float-time)))
       (add-hook 'kill-emacs-hook
                 (lambda ()
                   (princ (format "hook-ran running=%S\n"
                                  (netproc--running-p))))
                 90)
       (princ (format "exiting after %.3f\n" (- (float-time) start)))
       (kill-emacs 7)))
  "A child scenario: exit while eight netprocs are busy.")

(ert-deftest netproc-test-hygiene-kill-emacs-in-flight ()
  "Exiting with transfers in flight stops the engine and exits at once."
  (let* ((start (float-time))
         (result (netproc-test-child-emacs
                  `(progn (require 'cl-lib) (require 'netproc)
                          ,netproc-test-exit-form)))
         (elapsed (- (float-time) start)))
    (should (equal (car result) 7))
    ;; The engine was stopped (and its thread joined) by the time the last
    ;; hook ran.
    (should (string-match-p "hook-ran running=nil" (cdr result)))
    ;; Start-up included; the exit itself is well under a second.
    (should (< elapsed 5))))

(ert-deftest netproc-test-hygiene-unreferenced-netproc-lives ()
  "A netproc nobody references lives until deleted, like a process."
  (netproc-test-with-cleanup
    (let* ((peer (netproc-test-peer-start))
           (got nil))
      ;; Keep no reference to the netproc itself.
      (funcall 'netproc-make-network-process
               :name "orphan" :service (netproc-test-peer-port peer)
               :filter (lambda (_p s) (setq got (concat got s))))
      (netproc-test-peer-conn peer)
      (garbage-collect)
      (garbage-collect)
      (netproc-test-peer-send peer "still here")
      (netproc-test-wait-for (equal got "still here"))
      (should (equal got "still here"))
      (should (funcall 'get-netproc "orphan"))
      (funcall 'delete-netproc "orphan"))))

;;;; Loading

(ert-deftest netproc-test-hygiene-module-not-built ()
  "Without the compiled module, `require' says so and how to build it."
  (let* ((process-environment
          (cons "NETPROC_MODULE=/nonexistent/netproc-module.so"
                process-environment))
         (result (netproc-test-child-emacs
                  '(condition-case err (progn (require 'netproc) 'loaded)
                     (error (princ (format "%S" err)))))))
    (should (string-match-p
             (concat "netproc.s module is not built: run .make. in "
                     (regexp-quote
                      (file-name-as-directory
                       (expand-file-name
                        ".." (file-name-directory
                              (locate-library "netproc-test-lib"))))))
             (cdr result)))))

(defconst netproc-test-one-function-per-file
  '((netproc . netproc-make-network-process)
    (netproc-make . netproc--make)
    (netproc-io . netproc--decode)
    (netproc-channel . netproc--wait-until)
    (netproc-object . netproc--register)
    (netproc-server . netproc--start-server)
    (netproc-compat . netproc-compat-mode))
  "Each file of lisp/, as its feature, with a function defined in it.")

(ert-deftest netproc-test-hygiene-native-code ()
  "Where Emacs compiles to native code, every file of lisp/ loads as such.
`make' compiles them so (see the Makefile): this fails when that step
failed, or when Emacs no longer finds what it made."
  (skip-unless (and (fboundp 'native-comp-available-p)
                    (native-comp-available-p)))
  (require 'netproc-compat)
  (should (equal (sort (mapcar #'file-name-base
                               (directory-files
                                (file-name-directory (locate-library "netproc"))
                                nil "\\.el\\'"))
                       #'string<)
                 (sort (mapcar (lambda (entry) (symbol-name (car entry)))
                               netproc-test-one-function-per-file)
                       #'string<)))
  (should (equal (cl-remove-if
                  (lambda (entry)
                    (subr-native-elisp-p (symbol-function (cdr entry))))
                  netproc-test-one-function-per-file)
                 nil)))

(ert-deftest netproc-test-hygiene-old-emacs-refused ()
  "An Emacs older than 28 is told so before anything is loaded."
  (let ((result (netproc-test-child-emacs
                 '(condition-case err
                      (let ((emacs-major-version 27)
                            (emacs-version "27.2"))
                        (require 'netproc) 'loaded)
                    (error (princ (format "%S" err)))))))
    (should (string-match-p "netproc needs Emacs 28 or later; this is Emacs 27.2"
                            (cdr result)))))

;;;; Exit queries

(defun netproc-test-exit-prompts (make noquery)
  "Return the prompts `save-buffers-kill-emacs' shows with one connection.
MAKE makes the connection, a builtin process or a netproc, with
:noquery NOQUERY; every answer is no, so Emacs stays."
  (let* ((out "")
         ;; A peer outside Emacs: a server of its own would accept, and its
         ;; accepted connection would have a query flag of its own.
         (server (make-process
                  :name "q-peer" :noquery t :connection-type 'pipe
                  :command (list "perl" "-MIO::Socket::INET" "-e"
                                 (concat "$|=1; my $l=IO::Socket::INET->new("
                                         "LocalAddr=>'127.0.0.1',LocalPort=>0,"
                                         "Listen=>1) or die; print $l->sockport,"
                                         "\"\\n\"; my $c=$l->accept; "
                                         "local $/; <$c>;"))
                  :filter (lambda (_p s) (setq out (concat out s)))
                  :sentinel #'ignore))
         (port (progn
                 (while (and (not (string-match "\\`[0-9]+\n" out))
                             (process-live-p server))
                   (accept-process-output server 1))
                 (string-to-number out)))
         (conn (funcall make :name "q" :service port :noquery noquery))
         (prompts nil)
         (killed nil))
    (unwind-protect
        (cl-letf (((symbol-function 'yes-or-no-p)
                   (lambda (prompt) (push prompt prompts) nil))
                  ((symbol-function 'y-or-n-p)
                   (lambda (prompt) (push prompt prompts) nil))
                  ((symbol-function 'kill-emacs)
                   (lambda (&rest _) (setq killed t))))
          (let ((confirm-kill-processes t)
                (confirm-kill-emacs nil))
            (save-buffers-kill-emacs)))
      (if (processp conn) (delete-process conn) (funcall 'delete-netproc conn))
      (delete-process server)
      (let ((buffer (get-buffer "*Process List*")))
        (when buffer (kill-buffer buffer))))
    (list :prompts prompts :killed killed)))

(ert-deftest netproc-test-hygiene-exit-query ()
  "Exiting asks about a live netproc as about a live process, unless noquery."
  (skip-unless (netproc-test-available-p))
  (dolist (noquery '(nil t))
    (should (equal (netproc-test-exit-prompts 'netproc-make-network-process
                                              noquery)
                   (netproc-test-exit-prompts 'make-network-process
                                              noquery)))))

(provide 'netproc-hygiene-tests)
;;; netproc-hygiene-tests.el ends here
