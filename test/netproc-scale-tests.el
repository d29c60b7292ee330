;;; netproc-scale-tests.el --- thousands of netprocs at once  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Correctness at a scale the builtin cannot reach (it stops near 1,018
;; descriptors): 5,000 netproc clients of one netproc server, each echoing
;; a payload of its own, with nothing lost or crossed, while Emacs can
;; still start a subprocess and read a file.  Timings belong to `make
;; bench'; this only has generous bounds.

;;; Code:

(require 'cl-lib)
(require 'netproc-test-lib)
(require 'netproc-server-tests)

(ert-deftest netproc-scale-five-thousand-clients ()
  "5,000 netproc clients echo distinct payloads; Emacs keeps its low descriptors."
  (skip-unless (netproc-test-available-p))
  ;; The engine raises the soft limit to the hard one when it starts.
  (funcall 'netproc--ensure-engine)
  (skip-unless (>= (or (netproc-test-server--fd-soft-limit) 0) 10200))
  (let ((netproc-test-side-timeout 120)
        (netproc-test-leak-grace 10))
    (netproc-test-with-cleanup
      (netproc-test-server--many-clients
       5000
       (lambda ()
         ;; All open at once: Emacs still starts a program, reads a file.
         (should (eq 0 (call-process "true")))
         (should (with-temp-buffer
                   (insert-file-contents "/proc/self/limits")
                   (> (buffer-size) 0))))))))

(provide 'netproc-scale-tests)

;;; netproc-scale-tests.el ends here
