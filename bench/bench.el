;;; bench.el --- One benchmark workload, on one side, in a fresh Emacs  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Run by bench/run.sh, one child Emacs per workload and side:
;;
;;   BENCH_WORKLOAD=recv4k BENCH_SIDE=netproc ... \
;;     emacs -Q --batch -L lisp -l bench/bench.el -f bench-main
;;
;; The side is `builtin' (`make-network-process' and the process
;; functions) or `netproc' (`netproc-make-network-process' and the netproc
;; twins).  Every workload runs the same code on both sides through the
;; `bench-*' wrappers below.  Results are printed as lines
;; "RESULT <metric> <number>", other facts as "INFO <key> <value>".
;; Every wait is bounded; run.sh also kills a child that overstays.

;;; Code:

(require 'cl-lib)
(require 'subr-x)

(defun bench-env (name &optional default)
  "The environment variable NAME as a number, or DEFAULT."
  (let ((v (getenv name)))
    (if (and v (not (string-empty-p v))) (string-to-number v) default)))

(defvar bench-side (intern (or (getenv "BENCH_SIDE") "builtin")))
(defvar bench-netproc-p (eq bench-side 'netproc))
;; BENCH_BYTE_CODE=1: netproc's Lisp as byte code even where `make' has
;; compiled it to native code (which Emacs then finds in its cache).
(when (and (getenv "BENCH_BYTE_CODE") (boundp 'native-comp-eln-load-path))
  (setq native-comp-eln-load-path (last native-comp-eln-load-path)))
(when bench-netproc-p (require 'netproc))

(defvar bench-peer (getenv "BENCH_PEER") "The peer program.")
(defvar bench-deadline (+ (float-time) (bench-env "BENCH_WORKLOAD_SECONDS" 100))
  "No wait goes past this time; the workload then reports what it has.")

(defun bench-port (name) (bench-env (concat "BENCH_PORT_" name)))

;;; The two sides

(defun bench-make (&rest args)
  (apply (if bench-netproc-p #'netproc-make-network-process #'make-network-process)
         :noquery t :coding 'binary args))
(defun bench-send (p s)
  (if bench-netproc-p (netproc-send-string p s) (process-send-string p s)))
(defun bench-eof (p) (if bench-netproc-p (netproc-send-eof p) (process-send-eof p)))
(defun bench-delete (p) (if bench-netproc-p (delete-netproc p) (delete-process p)))
(defun bench-status (p) (if bench-netproc-p (netproc-status p) (process-status p)))
(defun bench-contact (p key)
  (if bench-netproc-p (netproc-contact p key) (process-contact p key)))
(defun bench-wait (p secs)
  (if bench-netproc-p (accept-netproc-output p secs) (accept-process-output p secs)))
(defun bench-wait-any (secs)
  (if bench-netproc-p (accept-netproc-output nil secs) (accept-process-output nil secs)))

(defun bench-time-left () (- bench-deadline (float-time)))

;;; Output

(defun bench-result (metric value)
  (princ (format "RESULT %s %s\n" metric
                 (if (floatp value) (format "%.6g" value) value))))
(defun bench-info (key value)
  (princ (format "INFO %s %s\n" key
                 (replace-regexp-in-string "[\n\t]+" " " (format "%s" value)))))

(defun bench-percentile (vec count p)
  "The P-th percentile (0..1) of the first COUNT numbers of VEC."
  (if (zerop count) 0.0
    (let ((sorted (sort (copy-sequence (substring vec 0 count)) #'<)))
      (aref sorted (min (1- count) (floor (* p count)))))))

(defun bench-rss-kib ()
  "VmRSS of this Emacs in KiB, or nil if the file cannot be read."
  (condition-case nil
      (with-temp-buffer
        (insert-file-contents "/proc/self/status")
        (and (re-search-forward "^VmRSS:[ \t]+\\([0-9]+\\)" nil t)
             (string-to-number (match-string 1))))
    (error nil)))

(defun bench-error-text (err)
  "A short one-line description of ERR: its symbol and its string data.
Uses nothing autoloaded: it runs when no descriptor is left to load a file."
  (let ((text (symbol-name (car err))))
    (dolist (x (cdr-safe err))
      (when (stringp x) (setq text (concat text ": " x))))
    (if (> (length text) 100) (substring text 0 100) text)))

;;; Workloads

(defun bench-recv ()
  "Receive the source's stream into a filter that only counts bytes."
  (let* ((total (bench-env "BENCH_RECV_BYTES"))
         (n 0) (calls 0) (t1 nil)
         (t0 (float-time))
         (p (bench-make :name "recv" :host "127.0.0.1"
                        :service (bench-port "SOURCE")
                        :filter (lambda (_p s)
                                  (setq n (+ n (length s)) calls (1+ calls))
                                  (when (>= n total) (setq t1 (float-time)))))))
    (while (and (not t1) (> (bench-time-left) 0)
                (memq (bench-status p) '(open connect)))
      (bench-wait p 1))
    (bench-delete p)
    (bench-info "filter_calls" calls)
    (bench-info "bytes" n)
    (when t1
      (bench-result "mbps" (/ total 1e6 (- t1 t0))))))

(defun bench-send-workload ()
  "Send the configured bytes in 64 KiB strings to the sink; wait for its count."
  (let* ((total (bench-env "BENCH_SEND_BYTES"))
         (chunk (make-string 65536 ?x))
         (reply "")
         (p (bench-make :name "send" :host "127.0.0.1" :service (bench-port "SINK")
                        :filter (lambda (_p s) (setq reply (concat reply s)))))
         (t0 (float-time)))
    (dotimes (_ (/ total 65536)) (bench-send p chunk))
    (bench-eof p)
    (while (and (not (string-suffix-p "\n" reply)) (> (bench-time-left) 0)
                (memq (bench-status p) '(open connect)))
      (bench-wait p 1))
    (let ((t1 (float-time)))
      (bench-delete p)
      (bench-info "sink_counted" (string-trim reply))
      (when (equal (string-to-number reply) total)
        (bench-result "mbps" (/ total 1e6 (- t1 t0)))))))

(defun bench-open-idle (count)
  "Open up to COUNT idle connections to the echo port; return them."
  (let ((idle nil) (made 0) (err nil))
    (while (and (< made count) (not err) (> (bench-time-left) 60))
      (condition-case e
          (progn (push (bench-make :name "idle" :host "127.0.0.1"
                                   :service (bench-port "ECHO"))
                       idle)
                 (setq made (1+ made)))
        (error (setq err e))))
    (bench-info "idle_open" made)
    (when err (bench-info "idle_stopped_by" (bench-error-text err)))
    idle))

(defun bench-pingpong (&optional idle-count)
  "64-byte ping-pong with one message in flight, after IDLE-COUNT idle connections."
  (let* ((idle (and idle-count (bench-open-idle idle-count)))
         (count (bench-env "BENCH_PP_COUNT"))
         (msg (make-string 64 ?p))
         (lat (make-vector count 0.0))
         (got 0) (i 0) (ts 0.0) (done nil)
         (p (bench-make :name "pp" :host "127.0.0.1" :service (bench-port "ECHO")
                        :filter (lambda (proc s)
                                  (setq got (+ got (length s)))
                                  (when (>= got 64)
                                    (setq got (- got 64))
                                    (aset lat i (- (float-time) ts))
                                    (setq i (1+ i))
                                    (if (< i count)
                                        (progn (setq ts (float-time))
                                               (bench-send proc msg))
                                      (setq done t))))))
         (t0 (float-time)))
    (setq ts (float-time))
    (bench-send p msg)
    (while (and (not done) (> (bench-time-left) 0))
      (bench-wait p 1))
    (let ((t1 (float-time)))
      (bench-delete p)
      (mapc #'bench-delete idle)
      (bench-info "round_trips" i)
      (when done
        (bench-result "rate" (/ count (- t1 t0)))
        (bench-result "p50_us" (* 1e6 (bench-percentile lat count 0.5)))
        (bench-result "p99_us" (* 1e6 (bench-percentile lat count 0.99)))))))

(defun bench-connect (nowait)
  "Connect, echo one byte, delete, in sequence, for a fixed time (NOWAIT: with :nowait)."
  (let* ((secs (bench-env "BENCH_CONNECT_SECONDS"))
         (cap 1000000) (count 0) (failures 0)
         (t0 (float-time)) (end (+ t0 secs)))
    (while (and (< (float-time) end) (< count cap) (< failures 10))
      (let* ((got nil)
             (p (bench-make :name "c" :host "127.0.0.1" :service (bench-port "ECHO")
                            :nowait nowait
                            :filter (lambda (_p _s) (setq got t)))))
        (while (and (eq (bench-status p) 'connect) (> (bench-time-left) 0))
          (bench-wait p 0.01))
        (if (not (eq (bench-status p) 'open))
            (setq failures (1+ failures))
          (bench-send p "x")
          (while (and (not got) (> (bench-time-left) 0)
                      (eq (bench-status p) 'open))
            (bench-wait p 1))
          (if got (setq count (1+ count)) (setq failures (1+ failures))))
        (bench-delete p)))
    (bench-info "connections" count)
    (bench-info "failures" failures)
    (when (> count 0)
      (bench-result "rate" (/ count (- (float-time) t0))))))

(defun bench-accept ()
  "An Emacs server under the peer's connect loop; every accepted connection is deleted."
  (let* ((secs (bench-env "BENCH_ACCEPT_SECONDS"))
         (accepted 0) (t-first nil) (t-last nil)
         (srv (bench-make :name "srv" :server 512 :host "127.0.0.1" :service 0
                          :sentinel (lambda (proc ev)
                                      (when (string-prefix-p "open from" ev)
                                        (setq t-last (float-time))
                                        (unless t-first (setq t-first t-last))
                                        (setq accepted (1+ accepted))
                                        (bench-delete proc)))))
         (port (bench-contact srv :service)))
    (call-process bench-peer nil 0 nil "connect" (number-to-string port)
                  (number-to-string secs) "32")
    (let ((end (+ (float-time) secs 1.5)))
      (while (and (< (float-time) end) (> (bench-time-left) 0))
        (bench-wait-any 0.1)))
    (bench-delete srv)
    (bench-info "accepted" accepted)
    (when (and t-first (> accepted 1))
      (bench-result "rate" (/ (1- accepted) (- t-last t-first))))))

(defun bench-maxconn ()
  "Hold as many echo connections as possible (up to a cap), check each, measure RSS."
  (let* ((cap (bench-env "BENCH_MAXCONN_CAP"))
         (echoes 0) (conns nil) (made 0) (err nil)
         (filter (lambda (_p s) (setq echoes (+ echoes (length s)))))
         (open-seconds (bench-env "BENCH_MAXCONN_SECONDS" 45))
         (t-open (float-time))
         rss0 rss1)
    (garbage-collect)
    (setq rss0 (bench-rss-kib))
    (while (and (< made cap) (not err) (> (bench-time-left) 30)
                (< (- (float-time) t-open) open-seconds))
      (condition-case e
          (progn (push (bench-make :name "m" :host "127.0.0.1"
                                   :service (bench-port "ECHO") :filter filter)
                       conns)
                 (setq made (1+ made)))
        (error (setq err e))))
    (bench-info "opened" made)
    (bench-info "open_seconds" (format "%.1f" (- (float-time) t-open)))
    (cond (err (bench-info "stopped_by" (bench-error-text err)))
          ((< made cap) (bench-info "stopped_by" "time budget")))
    (dolist (p conns) (bench-send p "x"))
    (let ((end (+ (float-time) 30)))
      (while (and (< echoes made) (< (float-time) end) (> (bench-time-left) 10))
        (bench-wait-any 0.2)))
    (bench-info "echoed" echoes)
    ;; While everything is open: can Emacs still start a subprocess and
    ;; open a file?
    (let ((sub (condition-case e (call-process "true")
                 (error (bench-info "subprocess_error" (bench-error-text e)) nil)))
          (file (condition-case e
                    (let ((f (make-temp-file "netproc-bench")))
                      (prog1 (with-temp-buffer
                               (insert-file-contents f)
                               t)
                        (delete-file f)))
                  (error (bench-info "file_error" (bench-error-text e)) nil))))
      (bench-info "subprocess" sub)
      (bench-info "file" file)
      (bench-result "subprocess_and_file" (if (and (eql sub 0) file) 1 0)))
    (garbage-collect)
    (setq rss1 (bench-rss-kib))
    ;; Out of descriptors, /proc cannot be read: give one back and retry.
    (when (and (null rss1) conns)
      (bench-delete (pop conns))
      (setq made (1- made))
      (garbage-collect)
      (setq rss1 (bench-rss-kib))
      (bench-info "rss_read_after_closing_one" t))
    (mapc #'bench-delete conns)
    (bench-result "count" (min echoes made))
    (when (and rss0 rss1 (> made 0))
      (bench-result "kib_per_conn" (/ (float (- rss1 rss0)) made)))))

(defun bench-channel ()
  "netproc only: 64-byte messages through the channel, flood rate and paced latency."
  ;; Flood: as fast as the source can send.
  (let* ((count (bench-env "BENCH_CHANNEL_COUNT"))
         (total (* 64 count))
         (n 0) (calls 0) (t-first nil) (t-last nil)
         (p (bench-make :name "flood" :host "127.0.0.1" :service (bench-port "TSOURCE")
                        :filter (lambda (_p s)
                                  (unless t-first (setq t-first (float-time)))
                                  (setq n (+ n (length s)) calls (1+ calls))
                                  (when (>= n total) (setq t-last (float-time)))))))
    (bench-send p (format "%d 0\n" count))
    (while (and (not t-last) (> (bench-time-left) 0)
                (memq (bench-status p) '(open connect)))
      (bench-wait p 1))
    (bench-delete p)
    (bench-info "flood_filter_calls" calls)
    (when (and t-last (> t-last t-first))
      (bench-result "msgs_per_s" (/ count (- t-last t-first)))
      (bench-result "filter_calls_per_s" (/ calls (- t-last t-first)))))
  ;; Latency: paced messages, each carrying its send time.
  (let* ((count (bench-env "BENCH_CHANNEL_LAT_COUNT"))
         (lat (make-vector count 0.0))
         (i 0) (pending "")
         (p (bench-make :name "lat" :host "127.0.0.1" :service (bench-port "TSOURCE")
                        :filter (lambda (_p s)
                                  (let ((now (float-time))
                                        (s (if (string-empty-p pending) s
                                             (concat pending s)))
                                        (pos 0))
                                    (while (<= (+ pos 64) (length s))
                                      (when (< i count)
                                        (aset lat i (- now (/ (string-to-number
                                                               (substring s pos (+ pos 20)))
                                                              1e9)))
                                        (setq i (1+ i)))
                                      (setq pos (+ pos 64)))
                                    (setq pending (substring s pos)))))))
    (bench-send p (format "%d 200\n" count))
    (while (and (< i count) (> (bench-time-left) 0)
                (memq (bench-status p) '(open connect)))
      (bench-wait p 1))
    (bench-delete p)
    (bench-info "latency_samples" i)
    (when (> i 0)
      (bench-result "p50_us" (* 1e6 (bench-percentile lat i 0.5)))
      (bench-result "p99_us" (* 1e6 (bench-percentile lat i 0.99))))))

(defun bench-main ()
  (let ((workload (getenv "BENCH_WORKLOAD"))
        (gcs gcs-done) (gct gc-elapsed) (t0 (float-time)))
    (condition-case err
        (bench-dispatch workload)
      (error (princ (format "ERROR %s\n" (bench-error-text err)))
             (kill-emacs 3)))
    (bench-info "gcs" (- gcs-done gcs))
    (bench-info "gc_seconds" (format "%.3f" (- gc-elapsed gct)))
    (bench-info "seconds" (format "%.3f" (- (float-time) t0)))
    (kill-emacs 0)))

(defun bench-dispatch (workload)
  "Run WORKLOAD."
    (pcase workload
      ("recv4k" (setq read-process-output-max 4096) (bench-recv))
      ("recv1m" (setq read-process-output-max (* 1024 1024)) (bench-recv))
      ("send" (bench-send-workload))
      ("pingpong" (bench-pingpong))
      ("pingpong-idle" (bench-pingpong (bench-env "BENCH_IDLE_COUNT")))
      ("connect" (bench-connect nil))
      ("nowait" (bench-connect t))
      ("accept" (bench-accept))
      ("maxconn" (bench-maxconn))
      ("channel" (bench-channel))
      (_ (error "Unknown workload %S" workload))))

;;; bench.el ends here
