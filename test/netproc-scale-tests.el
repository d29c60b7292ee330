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
        (netproc-test-leak-grace 10)
        (n 5000))
    (netproc-test-with-cleanup
      (let* ((opened 0) (closed 0) (echoed 0)
             (srv (netproc-test-server--echo-server
                   "many" :server 4096
                   :sentinel (lambda (_p m)
                               (cond ((string-prefix-p "open from" m)
                                      (cl-incf opened))
                                     ((string-prefix-p "connection broken" m)
                                      (cl-incf closed))))))
             (port (funcall 'netproc-contact srv :service))
             (got (make-vector n ""))
             (payloads (make-vector n nil))
             (clients nil))
        (dotimes (i n)
          (aset payloads i
                (concat (format "[client %05d]" i)
                        (netproc-test-server--payload (* 13 (% i 40)) i)
                        "\n")))
        (dotimes (i n)
          (let ((i i))
            (push (funcall 'netproc-make-network-process
                           :name "many-client" :host "127.0.0.1"
                           :service port :nowait t :coding 'binary
                           :filter
                           (lambda (_p s)
                             (let ((before (length (aref got i))))
                               (aset got i (concat (aref got i) s))
                               (when (and (< before (length (aref payloads i)))
                                          (>= (length (aref got i))
                                              (length (aref payloads i))))
                                 (cl-incf echoed))))
                           :sentinel (lambda (p m)
                                       (when (equal m "open\n")
                                         (funcall 'netproc-send-string
                                                  p (aref payloads i)))))
                  clients)))
        (netproc-test-wait-until (lambda () (= echoed n)) 90 'all-echoed)
        (should (= opened n))
        ;; All open at once: Emacs still starts a program and reads a file.
        (should (eq 0 (call-process "true")))
        (should (with-temp-buffer
                  (insert-file-contents "/proc/self/limits")
                  (> (buffer-size) 0)))
        (should-not (netproc-test-server--diffs (append got nil)
                                                (append payloads nil)))
        (dolist (c clients) (funcall 'delete-netproc c))
        (netproc-test-wait-until (lambda () (= closed n)) 60 'all-closed)
        (funcall 'delete-netproc srv)))))

(provide 'netproc-scale-tests)

;;; netproc-scale-tests.el ends here
