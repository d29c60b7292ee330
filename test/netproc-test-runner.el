;;; netproc-test-runner.el --- Run every netproc ERT file in one batch Emacs  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Used by test/run-lisp-tests.sh, which starts Emacs in batch mode
;; with the Lisp and test directories on the load path and loads this
;; file.
;; Loads test/netproc-*-tests.el, runs the tests selected by the
;; environment variable NETPROC_TEST_SELECTOR (a regexp on test names,
;; default all), prints "N passed, N failed" as the last line and
;; exits non-zero if a test failed.

;;; Code:

(require 'ert)

(defun netproc-test-runner-main ()
  "Load the test files, run them, print the counts and exit."
  (let* ((dir (file-name-directory (or load-file-name buffer-file-name)))
         (files (directory-files dir t "\\`netproc-.*-tests\\.el\\'"))
         (selector (let ((s (getenv "NETPROC_TEST_SELECTOR")))
                     (if (and s (not (equal s ""))) s t)))
         (load-errors 0))
    ;; Test the sources as they are, even if a .elc is stale.
    (setq load-prefer-newer t)
    (dolist (f files)
      (condition-case err
          (load f nil t)
        (error
         (setq load-errors (1+ load-errors))
         (message "Loading %s failed: %S" f err))))
    (let* ((stats (ert-run-tests-batch selector))
           (passed (ert-stats-completed-expected stats))
           (failed (+ (ert-stats-completed-unexpected stats) load-errors))
           (skipped (ert-stats-skipped stats)))
      (when (> skipped 0)
        (message "%d skipped" skipped))
      (princ (format "%d passed, %d failed\n" passed failed))
      (kill-emacs (if (> failed 0) 1 0)))))

(netproc-test-runner-main)

;;; netproc-test-runner.el ends here
