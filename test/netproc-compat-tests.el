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

(defconst netproc-compat-test-not-rerun
  '((netproc-twins-arity
     . "`func-arity' of an advised function is (0 . many) in Emacs 28"))
  "Scenarios that observe what advice itself changes, with the reason.")

(defun netproc-compat-test--define-rerun (name scenario)
  "Define the ERT test that reruns SCENARIO, named NAME, with the mode on."
  (let ((test (intern (format "netproc-compat-rerun/%s" name))))
    (unless (assq name netproc-compat-test-not-rerun)
      (ert-set-test test
                  (make-ert-test
                   :name test
                   :documentation
                   (format "Scenario `%s' as written, with `netproc-compat-mode' on."
                           name)
                   :tags '(compat)
                   :body (lambda ()
                           (netproc-compat-test-rerun name scenario)))))))

(pcase-dolist (`(,name . ,scenario) (reverse netproc-test-scenarios))
  (netproc-compat-test--define-rerun name scenario))
(add-hook 'netproc-test-scenario-functions #'netproc-compat-test--define-rerun)

(provide 'netproc-compat-tests)

;;; netproc-compat-tests.el ends here
