;;; compat-overhead.el --- What netproc-compat-mode costs builtin processes  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Times the process primitives on a builtin connection with
;; `netproc-compat-mode' off and on, in one batch Emacs:
;;
;;   emacs -Q --batch -L lisp -l bench/compat-overhead.el
;;
;; (`make bench-compat').  The loops are byte-compiled, so each call goes
;; through the primitive's function cell as compiled code's calls do.
;; Off and on alternate for BENCH_COMPAT_ROUNDS rounds (default 15) of
;; BENCH_COMPAT_CALLS calls each (default 200000); each figure is the
;; median per call, loop and garbage collection included.  The ratio
;; is on/off: 1.00 means no cost.  Prints a table and writes it to
;; bench/results/compat-overhead.md.
;;
;; netproc-compat is loaded byte-compiled, as `make' leaves it; with
;; BENCH_COMPAT_NATIVE=1 it is native-compiled first, as an interactive
;; Emacs with native compilation does by itself to the files it loads.

;;; Code:

(require 'cl-lib)

(defvar bench-compat-native
  (and (equal (getenv "BENCH_COMPAT_NATIVE") "1")
       (featurep 'native-compile))
  "Non-nil means measure netproc-compat native-compiled.")

(declare-function native-compile "comp" (function-or-file &optional output))

(if (not bench-compat-native)
    (require 'netproc-compat)
  (require 'netproc)
  (let ((eln (make-temp-file "netproc-compat" nil ".eln")))
    (native-compile (locate-library "netproc-compat.el" t) eln)
    (load eln nil t)
    (delete-file eln)))

(defun bench-compat-env (name default)
  "Return the number in the environment variable NAME, or DEFAULT."
  (let ((value (getenv name)))
    (if (and value (not (equal value ""))) (string-to-number value) default)))

(defvar bench-compat-rounds (bench-compat-env "BENCH_COMPAT_ROUNDS" 15)
  "Rounds of off then on.")

(defvar bench-compat-calls (bench-compat-env "BENCH_COMPAT_CALLS" 200000)
  "Calls per primitive per round.")

(defmacro bench-compat-loop (args &rest body)
  "Return a byte-compiled function of (N . ARGS) running BODY N times.
BODY's value is kept, so the compiler cannot drop a call without side
effects."
  (declare (indent 1))
  `(byte-compile '(lambda (n ,@args)
                    (let (value)
                      (dotimes (_ n) (setq value (progn ,@body)))
                      value))))

(defvar bench-compat-workloads nil
  "Each: (LABEL CALLS-DIVISOR FUNCTION), FUNCTION of (N PROC BUFFER).")

(defun bench-compat-setup ()
  "Return (CLIENT SERVER BUFFER) for a builtin connection on loopback."
  (let* ((netproc-compat-inhibit t)
         (server (make-network-process
                  :name "bench-server" :server t :host "127.0.0.1"
                  :service t :noquery t :coding 'binary
                  :filter #'ignore))
         (buffer (generate-new-buffer "bench-client"))
         (client (make-network-process
                  :name "bench-client" :host "127.0.0.1" :noquery t
                  :service (process-contact server :service)
                  :buffer buffer :filter #'ignore :coding 'binary)))
    (list client server buffer)))

(setq bench-compat-workloads
      (list
       (list "empty loop (reference)" 1
             (bench-compat-loop (_p _b) nil))
       (list "processp" 1 (bench-compat-loop (p _b) (processp p)))
       (list "process-status" 1 (bench-compat-loop (p _b) (process-status p)))
       (list "process-live-p" 1 (bench-compat-loop (p _b) (process-live-p p)))
       (list "process-buffer" 1 (bench-compat-loop (p _b) (process-buffer p)))
       (list "process-contact :remote" 1
             (bench-compat-loop (p _b) (process-contact p :remote)))
       (list "get-buffer-process (buffer has one)" 1
             (bench-compat-loop (_p b) (get-buffer-process b)))
       (list "process-list" 1 (bench-compat-loop (_p _b) (process-list)))
       (list "process-send-string 16 B" 4
             (bench-compat-loop (p _b)
               (process-send-string p "0123456789abcdef")))
       (list "accept-process-output PROC 0" 4
             (bench-compat-loop (p _b) (accept-process-output p 0)))
       (list "accept-process-output PROC 0 nil t" 4
             (bench-compat-loop (p _b) (accept-process-output p 0 nil t)))))

(defun bench-compat-time (function n proc buffer)
  "Return seconds per call of FUNCTION run N times on PROC and BUFFER."
  (garbage-collect)
  (let ((start (float-time)))
    (funcall function n proc buffer)
    (/ (- (float-time) start) n)))

(defun bench-compat-median (xs)
  "Return the median of the numbers XS."
  (let ((sorted (sort (copy-sequence xs) #'<)))
    (nth (/ (length sorted) 2) sorted)))

(defun bench-compat-drain (proc)
  "Let the server read what PROC sent, so sends never block."
  (dotimes (_ 20)
    (accept-process-output nil 0.001))
  proc)

(defun bench-compat-measure (proc buffer)
  "Return (LABEL OFF-SECONDS ON-SECONDS) per workload on PROC and BUFFER.
The seconds are medians per call."
  (let ((off (make-hash-table :test 'equal))
        (on (make-hash-table :test 'equal)))
    (dotimes (round bench-compat-rounds)
      ;; Each mode goes first in every other round: what one leaves
      ;; behind (queued data, garbage) weighs on both alike.
      (dolist (mode (if (cl-oddp round) '(on off) '(off on)))
        (netproc-compat-mode (if (eq mode 'on) 1 -1))
        (pcase-dolist (`(,label ,divisor ,function) bench-compat-workloads)
          (let ((n (/ bench-compat-calls divisor)))
            (push (bench-compat-time function n proc buffer)
                  (gethash label (if (eq mode 'on) on off))))
          (bench-compat-drain proc))
        (netproc-compat-mode -1)))
    (mapcar (lambda (workload)
              (let ((label (car workload)))
                (list label
                      (bench-compat-median (gethash label off))
                      (bench-compat-median (gethash label on)))))
            bench-compat-workloads)))

(defun bench-compat-table (rows)
  "Return the Markdown table of ROWS from `bench-compat-measure'."
  (concat
   "| primitive, builtin process | off ns/call | on ns/call | on - off ns "
   "| on/off |\n"
   "|---|---|---|---|---|\n"
   (mapconcat (lambda (row)
                (pcase-let ((`(,label ,off ,on) row))
                  (format "| %s | %.0f | %.0f | %+.0f | %.2f |" label
                          (* off 1e9) (* on 1e9) (* (- on off) 1e9)
                          (/ on off))))
              rows "\n")
   "\n"))

(defun bench-compat-main ()
  "Measure, print the table and write it to bench/results/."
  (pcase-let* ((`(,client ,server ,buffer) (bench-compat-setup))
               (rows (bench-compat-measure client buffer))
               (text (concat
                      "# netproc-compat-mode: cost to builtin processes\n\n"
                      (format "GNU Emacs %s, netproc-compat %s, "
                              emacs-version
                              (if bench-compat-native
                                  "native-compiled"
                                "byte-compiled"))
                      (format "%d rounds of %d calls, medians; "
                              bench-compat-rounds bench-compat-calls)
                      "loop and garbage collection included.\n\n"
                      (bench-compat-table rows)))
               (file (expand-file-name
                      (if bench-compat-native
                          "results/compat-overhead-native.md"
                        "results/compat-overhead.md")
                      (file-name-directory (or load-file-name
                                               buffer-file-name)))))
    (delete-process client)
    (delete-process server)
    (kill-buffer buffer)
    (princ text)
    (let ((coding-system-for-write 'utf-8-unix))
      (write-region text nil file nil 'silent))))

(bench-compat-main)

;;; compat-overhead.el ends here
