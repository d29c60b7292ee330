;;; report.el --- Medians, ratios and targets of a benchmark run  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Run by bench/run.sh after the rounds.  Reads the raw lines
;; (WORKLOAD SIDE ROUND METRIC VALUE, tab-separated; METRIC "FAIL" for a
;; child that failed), prints the table, and writes it as Markdown with
;; an SVG bar chart of the ratios.

;;; Code:

(require 'cl-lib)
(require 'subr-x)

(defconst bench-rows
  ;; (LABEL WORKLOAD METRIC UNIT KIND TARGET-KIND TARGET)
  ;; KIND `rate': higher is better, ratio netproc/builtin.
  ;; KIND `time': lower is better, ratio builtin/netproc.
  ;; TARGET-KIND `ratio': the ratio must reach TARGET; `min'/`max': netproc's
  ;; own median must be at least/at most TARGET; nil: reported only.
  '(("receive, counting filter (builtin rpom 4096)" "recv4k" "mbps" "MB/s" rate ratio 3)
    ("receive, counting filter (builtin rpom 1 MiB)" "recv1m" "mbps" "MB/s" rate ratio 2)
    ("send in 64 KiB strings to a sink" "send" "mbps" "MB/s" rate ratio 1)
    ("ping-pong 64 B, one in flight" "pingpong" "rate" "rt/s" rate ratio 0.8)
    ("ping-pong 64 B: p50 latency" "pingpong" "p50_us" "µs" time nil nil)
    ("ping-pong 64 B: p99 latency (≤ 2× builtin)" "pingpong" "p99_us" "µs" time ratio 0.5)
    ("ping-pong 64 B, 1,000 idle connections open" "pingpong-idle" "rate" "rt/s" rate ratio 4)
    ("ping-pong, 1,000 idle: p50 latency" "pingpong-idle" "p50_us" "µs" time nil nil)
    ("ping-pong, 1,000 idle: p99 latency" "pingpong-idle" "p99_us" "µs" time nil nil)
    ("connect + 1 B echoed + delete, sequential" "connect" "rate" "/s" rate ratio 1)
    ("the same with :nowait" "nowait" "rate" "/s" rate ratio 100)
    ("accept rate, Emacs server" "accept" "rate" "/s" rate ratio 1)
    ("simultaneous connections held (each echoed)" "maxconn" "count" "conns" rate min 19000)
    ("RSS per connection" "maxconn" "kib_per_conn" "KiB" time max 4)
    ("subprocess + file open while held (1 = both work)" "maxconn" "subprocess_and_file" "" rate min 1)
    ("channel: 64 B messages/s (flood)" "channel" "msgs_per_s" "msg/s" rate nil nil)
    ("channel: filter calls/s (flood)" "channel" "filter_calls_per_s" "calls/s" rate nil nil)
    ("channel: thread-to-filter latency p50 (paced)" "channel" "p50_us" "µs" time nil nil)
    ("channel: thread-to-filter latency p99 (paced)" "channel" "p99_us" "µs" time nil nil)))

(defvar bench-raw nil "List of (WORKLOAD SIDE ROUND METRIC VALUE-STRING).")

(defun bench-read-raw (file)
  (with-temp-buffer
    (insert-file-contents file)
    (dolist (line (split-string (buffer-string) "\n" t))
      (let ((f (split-string line "\t")))
        ;; Fields past the fifth belong to the value.
        (push (append (cl-subseq f 0 (min 4 (length f)))
                      (and (> (length f) 4)
                           (list (string-join (nthcdr 4 f) " "))))
              bench-raw))))
  (setq bench-raw (nreverse bench-raw)))

(defun bench-values (workload side metric)
  "Numbers of METRIC for WORKLOAD on SIDE, one per round."
  (cl-loop for (w s _r m v) in bench-raw
           when (and (equal w workload) (equal s side) (equal m metric))
           collect (string-to-number v)))

(defun bench-strings (workload side metric)
  (cl-loop for (w s _r m v) in bench-raw
           when (and (equal w workload) (equal s side) (equal m metric))
           collect v))

(defun bench-failures (workload side)
  (cl-loop for (w s r m v) in bench-raw
           when (and (equal w workload) (equal s side) (equal m "FAIL"))
           collect (format "round %s: %s" r v)))

(defun bench-median (xs)
  (when xs
    (let* ((v (vconcat (sort (copy-sequence xs) #'<)))
           (n (length v)))
      (if (cl-oddp n) (aref v (/ n 2))
        (/ (+ (aref v (1- (/ n 2))) (aref v (/ n 2))) 2.0)))))

(defun bench-num (x)
  (cond ((null x) "–")
        ((>= (abs x) 1000) (format "%s" (bench-group (round x))))
        ((>= (abs x) 100) (format "%.0f" x))
        ((>= (abs x) 10) (format "%.1f" x))
        (t (format "%.2f" x))))

(defun bench-group (n)
  "N with thousands separated by commas."
  (let ((s (number-to-string (abs n))) (out ""))
    (while (> (length s) 3)
      (setq out (concat "," (substring s -3) out)
            s (substring s 0 -3)))
    (concat (if (< n 0) "-" "") s out)))

(defun bench-cell (xs)
  (if (null xs) "–"
    (if (= (length xs) 1) (bench-num (car xs))
      (format "%s (%s–%s)" (bench-num (bench-median xs))
              (bench-num (apply #'min xs)) (bench-num (apply #'max xs))))))

(defun bench-evaluate (row)
  "Return a plist describing ROW's outcome."
  (pcase-let* ((`(,label ,w ,m ,unit ,kind ,tkind ,target) row)
               (b (bench-values w "builtin" m))
               (n (bench-values w "netproc" m))
               (bm (bench-median b)) (nm (bench-median n))
               (ratio (and bm nm (> bm 0) (> nm 0)
                           (if (eq kind 'rate) (/ (float nm) bm) (/ (float bm) nm))))
               (verdict
                (pcase tkind
                  ('ratio (cond ((null ratio) "FAIL") ((>= ratio target) "PASS") (t "MISS")))
                  ('min (cond ((null nm) "FAIL") ((>= nm target) "PASS") (t "MISS")))
                  ('max (cond ((null nm) "FAIL") ((<= nm target) "PASS") (t "MISS")))
                  (_ (if nm "info" "FAIL"))))
               (target-text
                (pcase tkind
                  ('ratio (format "≥ %s×" target))
                  ('min (format "≥ %s" (bench-num target)))
                  ('max (format "≤ %s" (bench-num target)))
                  (_ "–"))))
    (list :label label :unit unit :builtin (bench-cell b) :netproc (bench-cell n)
          :ratio ratio :ratio-text (if ratio (format "%.2f×" ratio) "–")
          :target target-text :target-kind tkind :target-value target
          :verdict verdict)))

(defun bench-pad (s n)
  (let ((w (string-width s)))
    (if (>= w n) s (concat s (make-string (- n w) ?\s)))))

(defun bench-print-table (results)
  (let ((cols '(52 7 30 30 9 10 6)))
    (cl-flet ((line (cells)
                (princ (string-trim-right
                        (mapconcat #'identity
                                   (cl-mapcar #'bench-pad cells cols) " ")))
                (princ "\n")))
      (line '("workload" "unit" "builtin median (min–max)"
              "netproc median (min–max)" "ratio" "target" "result"))
      (princ (make-string 146 ?-)) (princ "\n")
      (dolist (r results)
        (line (list (plist-get r :label) (plist-get r :unit)
                    (plist-get r :builtin) (plist-get r :netproc)
                    (plist-get r :ratio-text) (plist-get r :target)
                    (plist-get r :verdict)))))))

(defun bench-md-table (results)
  (concat
   "| workload | unit | builtin median (min–max) | netproc median (min–max) | ratio | target | result |\n"
   "|---|---|---|---|---|---|---|\n"
   (mapconcat (lambda (r)
                (format "| %s | %s | %s | %s | %s | %s | %s |"
                        (plist-get r :label) (plist-get r :unit)
                        (plist-get r :builtin) (plist-get r :netproc)
                        (plist-get r :ratio-text) (plist-get r :target)
                        (plist-get r :verdict)))
              results "\n")
   "\n"))

(defun bench-notes ()
  "Facts from the children worth reading next to the table."
  (let ((notes nil))
    (cl-flet ((note (fmt &rest args) (push (apply #'format fmt args) notes))
              (info (w s key) (bench-strings w s (concat "info:" key))))
      (let ((b (info "pingpong-idle" "builtin" "idle_open"))
            (n (info "pingpong-idle" "netproc" "idle_open")))
        (note "Idle connections actually open in the 1,000-idle ping-pong: builtin %s, netproc %s%s."
              (string-join (delete-dups (copy-sequence b)) "/")
              (string-join (delete-dups (copy-sequence n)) "/")
              (let ((why (info "pingpong-idle" "builtin" "idle_stopped_by")))
                (if why (format " (builtin stopped by: %s)" (car why)) ""))))
      (dolist (side '("builtin" "netproc"))
        (let ((opened (info "maxconn" side "opened"))
              (why (info "maxconn" side "stopped_by"))
              (secs (info "maxconn" side "open_seconds")))
          (note "Simultaneous connections, %s: opened %s in %s s%s."
                side (string-join opened "/") (string-join secs "/")
                (if why (format "; stopped by: %s"
                                (string-join (delete-dups (copy-sequence why)) " | "))
                  " (cap reached)"))))
      (note "GC in each child (median collections / median GC seconds), builtin vs netproc:")
      (dolist (w '("recv4k" "recv1m" "send" "pingpong" "pingpong-idle" "connect"
                   "nowait" "accept" "maxconn" "channel"))
        (cl-flet ((gc (side)
                    (let ((g (bench-median (mapcar #'string-to-number (info w side "gcs"))))
                          (s (bench-median (mapcar #'string-to-number (info w side "gc_seconds"))))
                          (tt (bench-median (mapcar #'string-to-number (info w side "seconds")))))
                      (if g (format "%s GCs, %.2f s of %.2f s" (round g) s tt) "–"))))
          (note "  %s: builtin %s; netproc %s" w (gc "builtin") (gc "netproc"))))
      (dolist (w '("recv4k" "recv1m" "send" "pingpong" "pingpong-idle" "connect"
                   "nowait" "accept" "maxconn" "channel"))
        (dolist (side '("builtin" "netproc"))
          (dolist (f (bench-failures w side))
            (note "FAILED %s/%s %s" w side f)))))
    (nreverse notes)))

;;; SVG

(defun bench-svg-x (ratio)
  "Horizontal position of RATIO on the log axis 0.1×–1000×."
  (let ((lo -1.0) (hi 3.0) (x0 330) (x1 770))
    (+ x0 (* (- x1 x0) (/ (- (min hi (max lo (log ratio 10))) lo) (- hi lo))))))

(defun bench-xml (s)
  (replace-regexp-in-string
   "[&<>]" (lambda (c) (pcase c ("&" "&amp;") ("<" "&lt;") (_ "&gt;"))) s))

(defun bench-svg (results)
  (let* ((rows (cl-remove-if-not (lambda (r) (plist-get r :ratio)) results))
         (h 22) (top 40) (height (+ top (* h (length rows)) 40))
         (out nil))
    (cl-flet ((emit (fmt &rest args) (push (apply #'format fmt args) out)))
      (emit "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">" height)
      (emit "<rect width=\"800\" height=\"%d\" fill=\"white\"/>" height)
      (emit "<text x=\"10\" y=\"18\" font-size=\"13\" font-weight=\"bold\">netproc vs builtin (ratio &gt; 1: netproc better; log scale)</text>")
      (emit "<text x=\"10\" y=\"32\" fill=\"#555\">bar: ratio of medians; black tick: target; green PASS, red MISS, grey no target</text>")
      (dolist (g '(0.1 1 10 100 1000))
        (let ((x (bench-svg-x g)))
          (emit "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%s\"/>"
                x top x (+ top (* h (length rows))) (if (= g 1) "#000" "#ddd") (if (= g 1) 1.5 1))
          (emit "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s×</text>"
                x (+ top (* h (length rows)) 14) g)))
      (cl-loop for r in rows for i from 0 do
               (let* ((y (+ top (* i h)))
                      (ratio (plist-get r :ratio))
                      (x1 (bench-svg-x 1)) (xr (bench-svg-x ratio))
                      (color (pcase (plist-get r :verdict)
                               ("PASS" "#3a9a3a") ("MISS" "#c83c3c") (_ "#999"))))
                 (emit "<text x=\"322\" y=\"%d\" text-anchor=\"end\">%s</text>"
                       (+ y 15) (bench-xml (plist-get r :label)))
                 (emit "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
                       (min x1 xr) (+ y 4) (max 1 (abs (- xr x1))) (- h 8) color)
                 (emit "<text x=\"%.1f\" y=\"%d\" fill=\"#333\">%s</text>"
                       (+ (max x1 xr) 3) (+ y 15) (plist-get r :ratio-text))
                 (when (eq (plist-get r :target-kind) 'ratio)
                   (let ((xt (bench-svg-x (plist-get r :target-value))))
                     (emit "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\" stroke-width=\"2\"/>"
                           xt (+ y 1) xt (+ y h -1))))))
      (emit "</svg>"))
    (concat (string-join (nreverse out) "\n") "\n")))

(defun bench-report-main ()
  (bench-read-raw (getenv "BENCH_RAW"))
  (let* ((results (mapcar #'bench-evaluate bench-rows))
         (machine (getenv "BENCH_MACHINE"))
         (rounds (getenv "BENCH_ROUNDS_DONE"))
         (quick (equal (getenv "BENCH_QUICK") "1"))
         (header (format "Ratio > 1 means netproc is better: netproc/builtin for rates and counts, builtin/netproc for times and sizes.\nMachine: %s. Rounds: %s%s, %s s in all. Each value: median (min–max) over rounds, one fresh Emacs per round and side.\nSizes: receive %s MiB, send %s MiB, %s round trips per ping-pong, connection cap %s."
                         machine rounds (if quick " (BENCH_QUICK: small sizes)" "")
                         (getenv "BENCH_ELAPSED")
                         (/ (string-to-number (getenv "BENCH_RECV_BYTES")) 1048576)
                         (/ (string-to-number (getenv "BENCH_SEND_BYTES")) 1048576)
                         (getenv "BENCH_PP_COUNT") (getenv "BENCH_MAXCONN_CAP")))
         (notes (bench-notes)))
    (princ "\n") (princ header) (princ "\n\n")
    (bench-print-table results)
    (princ "\n")
    (dolist (n notes) (princ n) (princ "\n"))
    (with-temp-file (getenv "BENCH_MD")
      (insert "# netproc vs builtin network processes\n\n"
              (replace-regexp-in-string "\n" "\n\n" header) "\n\n"
              (bench-md-table results) "\n"
              "![ratios](latest.svg)\n\n"
              (mapconcat (lambda (n) (concat "- " n)) notes "\n") "\n")
      ;; The same run's measure of netproc-compat-mode, one level down.
      (let ((compat (getenv "BENCH_COMPAT_MD")))
        (when (and compat (file-readable-p compat))
          (insert "\n#")
          (insert-file-contents compat)
          (goto-char (point-max)))))
    (with-temp-file (getenv "BENCH_SVG")
      (insert (bench-svg results)))
    (princ (format "\nWrote %s and %s\n" (getenv "BENCH_MD") (getenv "BENCH_SVG")))))

;;; report.el ends here
