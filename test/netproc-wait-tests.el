;;; netproc-wait-tests.el --- waits, quits, errors and backpressure  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; What happens while Emacs waits on netprocs: `C-g' during a blocking
;; connect and during a send held at the high-water mark, an error in one
;; filter among several events of one batch, and a stopped netproc holding
;; its peer back.  A quit is simulated the way a keyboard interrupt arrives
;; while Emacs waits: a timer sets `quit-flag'.

;;; Code:

(require 'netproc-test-lib)

(defun netproc-wait-tests--quit-after (seconds)
  "Arrange for a quit SECONDS from now; return the timer."
  (run-at-time seconds nil (lambda () (setq quit-flag t))))

(defun netproc-wait-tests--stuck-server ()
  "Return a stopped builtin server whose backlog is already full.
Connects to it are never accepted: the kernel drops further SYNs."
  (let* ((server (make-network-process :name "stuck" :server 1 :service t
                                       :host "127.0.0.1" :stop t :noquery t))
         (port (process-contact server :service))
         (fillers (cl-loop repeat 4
                           collect (netproc-make-network-process
                                    :name "filler" :service port :nowait t
                                    :noquery t))))
    ;; Two of them complete in the kernel's backlog; the rest hang.
    (netproc-test-wait-until
     (lambda () (>= (cl-count 'open (mapcar #'netproc-status fillers)) 2))
     5 'backlog-full)
    (list server port fillers)))

(ert-deftest netproc-wait-quit-cancels-blocking-connect ()
  "A quit during a blocking connect cancels it and signals `quit'."
  (netproc-test-with-cleanup
    (pcase-let* ((`(,server ,port ,fillers) (netproc-wait-tests--stuck-server))
                 (before (length (netproc-list)))
                 (timer (netproc-wait-tests--quit-after 0.3))
                 (start (float-time))
                 (outcome
                  (condition-case err
                      (let ((inhibit-quit nil))
                        (netproc-make-network-process :name "hung" :service port))
                    (quit (list 'quit (cdr err))))))
      (cancel-timer timer)
      (netproc-test-note :outcome outcome)
      (should (equal outcome '(quit nil)))
      (should (< (- (float-time) start) 3))
      ;; The cancelled netproc is gone.
      (should (= (length (netproc-list)) before))
      (should-not (get-netproc "hung"))
      (mapc #'delete-netproc fillers)
      (delete-process server))))

(ert-deftest netproc-wait-quit-cancels-local-backlog-wait ()
  "A quit ends a blocking connect waiting on a full Unix backlog.
Emacs's connect would block there until the server accepts, which a
stopped server in the same Emacs never does; here the wait ends with
`quit', and leaves no netproc and no descriptor behind."
  (netproc-test-with-cleanup
    (let* ((path (expand-file-name "stuck" (netproc-test-tmpdir)))
           (server (make-network-process :name "stuck" :server 1
                                         :family 'local :service path
                                         :stop t :noquery t))
           (fillers nil))
      (while (and (< (length fillers) 8)
                  (not (memq (and fillers (netproc-status (car fillers)))
                             '(file-error failed))))
        (push (netproc-make-network-process :name "filler" :family 'local
                                            :service path :nowait t
                                            :noquery t)
              fillers))
      (should (eq (netproc-status (car fillers)) 'file-error))
      (let* ((before (length (netproc-list)))
             (fds (netproc-test-fds))
             (timer (netproc-wait-tests--quit-after 0.3))
             (start (float-time))
             (outcome
              (condition-case err
                  (let ((inhibit-quit nil))
                    (netproc-make-network-process :name "hung" :family 'local
                                                  :service path))
                (quit (list 'quit (cdr err))))))
        (cancel-timer timer)
        (should (equal outcome '(quit nil)))
        (should (< (- (float-time) start) 3))
        (should (= (length (netproc-list)) before))
        (should-not (get-netproc "hung"))
        (should (equal (netproc-test-fds) fds)))
      (mapc #'delete-netproc fillers)
      (delete-process server))))

(ert-deftest netproc-wait-quit-drops-output-at-exit ()
  "A quit ends the exit's wait for output a peer does not read.
Emacs would have blocked in the send for as long; netproc's exit waits
up to 30 seconds without progress, and says so after one.  A quit there
drops the output and Emacs exits."
  (netproc-test-with-cleanup
    (let* ((port (netproc-test-perl-peer "sleep 60;"))
           (start (float-time))
           (child (netproc-test-child-emacs
                   `(progn
                      (require 'netproc)
                      (let ((netproc-send-high-water-mark (* 64 1024 1024))
                            (p (netproc-make-network-process
                                :name "x" :host "127.0.0.1" :service ,port
                                :coding 'binary)))
                        (dotimes (_ 256)
                          (netproc-send-string p (make-string 65536 ?x)))
                        (run-at-time 2 nil (lambda () (signal 'quit nil)))
                        (kill-emacs 7))))))
      (should (equal (car child) 7))
      (should (< (- (float-time) start) 15))
      (should (string-match-p "netproc: writing out what 1 connection still \
had to send before exiting" (cdr child))))))

(ert-deftest netproc-wait-quit-ends-high-water-wait ()
  "A quit ends a send waiting at the high-water mark; the queue stays."
  (netproc-test-with-cleanup
    (let* ((server (make-network-process :name "sink" :server t :service t
                                         :host "127.0.0.1" :stop t :noquery t))
           (port (process-contact server :service))
           (p (netproc-make-network-process :name "sender" :service port
                                            :noquery t))
           (netproc-send-high-water-mark (* 256 1024))
           (chunk (make-string (* 1024 1024) ?x))
           (timer (netproc-wait-tests--quit-after 0.3))
           (outcome (condition-case err
                        (let ((inhibit-quit nil))
                          (dotimes (_ 64) (netproc-send-string p chunk))
                          'returned)
                      (quit (list 'quit (cdr err))))))
      (cancel-timer timer)
      (should (equal outcome '(quit nil)))
      (should (eq (netproc-status p) 'open))
      (delete-netproc p)
      (delete-process server))))

(ert-deftest netproc-wait-filter-error-keeps-other-events ()
  "An error in one filter neither drops nor reorders others' data.
Under ERT `debug-on-error' is t, so the error propagates out of the wait,
as a builtin filter's does; the other netproc's data still arrives."
  (netproc-test-with-cleanup
    (let* ((peer (netproc-test-peer-start))
           (port (netproc-test-peer-service peer))
           (got-b nil)
           (a (netproc-make-network-process
               :name "a" :service port :noquery t
               :filter (lambda (_p _s) (error "Boom in filter"))))
           (b (netproc-make-network-process
               :name "b" :service port :noquery t
               :filter (lambda (_p s) (setq got-b (concat got-b s))))))
      (let ((caught nil) (end (+ (float-time) 5)))
        ;; The error may surface in any wait, the peer's included.
        (cl-flet ((catching (fn)
                    (condition-case err (funcall fn)
                      (error (setq caught err)))))
          ;; The peer writes all three before Emacs waits again, so no
          ;; error from A's filter can come between them.
          (let ((conn-a (netproc-test-peer-conn peer 0))
                (conn-b (netproc-test-peer-conn peer 1)))
            (process-send-string conn-a "to-a")
            (process-send-string conn-b "to-b-1")
            (process-send-string conn-b "to-b-2"))
          (while (and (not (and caught (equal got-b "to-b-1to-b-2")))
                      (< (float-time) end))
            (catching (lambda () (accept-process-output nil 0.05)))))
        (should (equal caught '(error "Boom in filter")))
        (should (equal got-b "to-b-1to-b-2")))
      (delete-netproc a)
      (delete-netproc b)
      (netproc-test-peer-stop peer))))

(defun netproc-wait-tests--child (form)
  "Run FORM in a child batch Emacs with netproc; return (STATUS . OUTPUT)."
  (with-temp-buffer
    (let* ((lisp-dir (file-name-directory (locate-library "netproc")))
           (status (call-process
                    (expand-file-name invocation-name invocation-directory)
                    nil t nil "-Q" "--batch" "-L" lisp-dir
                    "--eval" "(setq backtrace-on-error-noninteractive nil)"
                    "-l" "netproc" "--eval" (prin1-to-string form))))
      (cons status (buffer-string)))))

(defconst netproc-wait-tests--error-scenario
  '(let* ((server (make-network-process
                   :name "s" :server t :service t :host "127.0.0.1"
                   :sentinel (lambda (p m)
                               (when (string-prefix-p "open" m)
                                 (process-send-string p "x")))))
          (port (process-contact server :service))
          (make (if (eq (intern (getenv "SIDE")) 'netproc)
                    #'netproc-make-network-process #'make-network-process)))
     (funcall make :name "c" :service port
              :filter (lambda (_p _s) (error "Boom in filter")))
     (dotimes (_ 50) (accept-process-output nil 0.05))
     (message "still running"))
  "A child scenario: a filter signals while `debug-on-error' is nil.")

(ert-deftest netproc-wait-filter-error-in-batch-like-builtin ()
  "With `debug-on-error' nil, a filter error ends batch Emacs as the builtin's does."
  (let ((results
         (mapcar (lambda (side)
                   (let ((process-environment
                          (cons (format "SIDE=%s" side) process-environment)))
                     (netproc-wait-tests--child netproc-wait-tests--error-scenario)))
                 '(builtin netproc))))
    (should (equal (nth 0 results) (nth 1 results)))
    (should (equal (car (nth 0 results)) 255))
    (should (string-match-p "error in process filter: Boom in filter"
                            (cdr (nth 1 results))))))

(defconst netproc-wait-tests--flood-script
  (concat
   "use IO::Socket::INET; use IO::Handle; use Time::HiRes qw(time sleep);"
   "$|=1; my $l=IO::Socket::INET->new(LocalAddr=>'127.0.0.1',LocalPort=>0,"
   "Listen=>1,ReuseAddr=>1) or die; print \"port \",$l->sockport,\"\\n\";"
   "my $c=$l->accept; $c->blocking(0); my $buf='z' x 65536; my $n=0;"
   "my $last=time; while (time-$last < 0.5 && $n < 256*1024*1024) {"
   " my $w=syswrite($c,$buf); if (defined $w && $w>0) {$n+=$w; $last=time}"
   " else {sleep 0.01} }"
   "print \"stalled $n\\n\"; $c->blocking(1);"
   "my $more='w' x (1024*1024); my $w=syswrite($c,$more); $n+=$w;"
   "print \"total $n\\n\"; close $c;")
  "A peer that writes until the kernel holds it back, then 1 MiB more.")

(ert-deftest netproc-wait-stop-holds-peer-back ()
  "A stopped netproc stops reading: the peer is held back, nothing is lost."
  (netproc-test-with-cleanup
    (let* ((out "")
           (peer (make-process :name "flood" :noquery t :connection-type 'pipe
                               :command (list "perl" "-e"
                                              netproc-wait-tests--flood-script)
                               :filter (lambda (_p s) (setq out (concat out s)))
                               :sentinel #'ignore))
           (port (string-to-number
                  (netproc-test-wait-until
                   (lambda () (and (string-match "port \\([0-9]+\\)" out)
                                   (match-string 1 out)))
                   10 'flood-port)))
           (received 0)
           (p (netproc-make-network-process
               :name "slow" :service port :noquery t :stop t
               :filter (lambda (_p s) (setq received (+ received (length s))))))
           (stalled (string-to-number
                     (netproc-test-wait-until
                      (lambda () (and (string-match "stalled \\([0-9]+\\)" out)
                                      (match-string 1 out)))
                      20 'peer-stalled))))
      (netproc-test-note :stalled-below-64MiB (< stalled (* 64 1024 1024)))
      (should (< stalled (* 64 1024 1024)))
      (should (= received 0))
      (continue-netproc p)
      (let ((total (string-to-number
                    (netproc-test-wait-until
                     (lambda () (and (string-match "total \\([0-9]+\\)" out)
                                     (match-string 1 out)))
                     20 'peer-total))))
        (netproc-test-wait-until (lambda () (eq (netproc-status p) 'closed))
                                 20 'closed)
        (should (= received total)))
      (delete-netproc p)
      (delete-process peer))))

(ert-deftest netproc-wait-high-water-keeps-reading ()
  "A send held at the high-water mark still takes in what the peer sends.
The peer echoes everything back and writes only as fast as it is read:
if the waiting sender stopped dispatching, both sides would stall."
  (netproc-test-with-cleanup
    (let* ((server (make-network-process
                    :name "echo" :server t :service t :host "127.0.0.1"
                    :noquery t :coding 'binary
                    :filter (lambda (p s) (process-send-string p s))))
           (port (process-contact server :service))
           (received 0)
           (netproc-send-high-water-mark (* 512 1024))
           (p (netproc-make-network-process
               :name "big" :service port :noquery t :coding 'binary
               :filter (lambda (_p s) (setq received (+ received (length s))))))
           (chunk (make-string 65536 ?w))
           (total (* 16 1024 1024)))
      (dotimes (_ (/ total (length chunk)))
        (netproc-send-string p chunk))
      (netproc-test-wait-until (lambda () (= received total)) 30 'all-echoed)
      (should (= received total))
      (delete-netproc p)
      (delete-process server)
      ;; The accepted side closes once it sees the end of file.
      (netproc-test-wait-until
       (lambda () (not (cl-some (lambda (q) (string-prefix-p "echo <" (process-name q)))
                                (process-list))))
       5 'accepted-side-closed))))

(defconst netproc-wait-tests--endless-script
  (concat
   "use IO::Socket::INET; $|=1; my $l=IO::Socket::INET->new(LocalAddr=>"
   "'127.0.0.1',LocalPort=>0,Listen=>1,ReuseAddr=>1) or die;"
   "print \"port \",$l->sockport,\"\\n\"; my $c=$l->accept;"
   "my $buf='f' x 65536; my $end=time+6;"
   "while (time < $end) { syswrite($c,$buf) or last } close $c;")
  "A peer that writes as fast as it can for six seconds.")

(defun netproc-wait-tests--await-accepted-gone (&rest servers)
  "Wait until the connections accepted by SERVERS (names) have closed."
  (netproc-test-wait-until
   (lambda ()
     (not (cl-some (lambda (q)
                     (cl-some (lambda (name)
                                (string-prefix-p (concat name " <")
                                                 (process-name q)))
                              servers))
                   (process-list))))
   5 (cons 'accepted-gone servers)))

(ert-deftest netproc-wait-ends-during-a-flood ()
  "A wait returns once its event came, though another netproc floods."
  (netproc-test-with-cleanup
    (let* ((out "")
           (flood (make-process :name "endless" :noquery t
                                :connection-type 'pipe
                                :command (list "perl" "-e"
                                               netproc-wait-tests--endless-script)
                                :filter (lambda (_p s) (setq out (concat out s)))
                                :sentinel #'ignore))
           (port (string-to-number
                  (netproc-test-wait-until
                   (lambda () (and (string-match "port \\([0-9]+\\)" out)
                                   (match-string 1 out)))
                   10 'flood-port)))
           (server (make-network-process :name "quiet" :server t :service t
                                         :host "127.0.0.1" :noquery t))
           (received 0)
           (f (netproc-make-network-process
               :name "flooded" :service port :noquery t :coding 'binary
               :filter (lambda (_p s) (setq received (+ received (length s)))))))
      (netproc-test-wait-until (lambda () (> received (* 4 1024 1024))) 5
                               'flood-under-way)
      (let* ((start (float-time))
             (q (netproc-make-network-process
                 :name "quick" :service (process-contact server :service)
                 :noquery t))
             (took (- (float-time) start)))
        (netproc-test-note :quick (netproc-status q))
        (should (eq (netproc-status q) 'open))
        (should (< took 1.5))
        (delete-netproc q))
      (delete-netproc f)
      (delete-process flood)
      (delete-process server)
      (netproc-wait-tests--await-accepted-gone "quiet"))))

(ert-deftest netproc-wait-never-ends-through-another-filter ()
  "A wait that is satisfied inside somebody else's filter lets it finish."
  (netproc-test-with-cleanup
    (let* ((steps nil)
           (echo (make-network-process :name "b-srv" :server t :service t
                                       :host "127.0.0.1" :noquery t))
           (b (make-network-process
               :name "b" :service (process-contact echo :service) :noquery t
               :filter (lambda (_p _s)
                         (push 'filter-start steps)
                         ;; Waits itself: netproc events are dispatched here.
                         (accept-process-output nil 0.3)
                         (push 'filter-end steps))))
           (b-peer (netproc-test-wait-until
                    (lambda () (cl-find-if (lambda (q) (string-prefix-p "b-srv <" (process-name q)))
                                           (process-list)))
                    5 'b-accepted))
           (server (make-network-process :name "target" :server t :service t
                                         :host "127.0.0.1" :noquery t)))
      ;; B's data is waiting when the netproc's blocking connect starts.
      (process-send-string b-peer "wake")
      (let ((q (netproc-make-network-process
                :name "q" :service (process-contact server :service)
                :noquery t)))
        (netproc-test-wait-until (lambda () (memq 'filter-end steps)) 5
                                 'filter-finished)
        (should (equal (reverse steps) '(filter-start filter-end)))
        (delete-netproc q))
      (delete-process b)
      (delete-process echo)
      (delete-process server)
      (netproc-wait-tests--await-accepted-gone "b-srv" "target"))))

(defconst netproc-wait-tests--lines 20000
  "Numbered lines the streaming peer of the direct-read scenario sends.")

(netproc-test-deftest netproc-test-wait-for-one-keeps-order ()
  "Waiting for one connection, in every way, while it streams: all in order.
Waiting for a netproc reads its socket on Emacs's thread when nothing of
it waits to be dispatched; waiting for all lets the engine thread read
it.  The two alternate here, with a stop and a filter that waits."
  (let* ((port (netproc-test-perl-peer
                (format (concat "for my $i (1..%d) { printf $c \"%%05d\\n\", $i;"
                                " select(undef,undef,undef,0.0005)"
                                " if $i %% 200 == 0 } close $c;")
                        netproc-wait-tests--lines)))
         (got nil)
         (calls 0)
         (c (make-network-process
             :name "w" :host "127.0.0.1" :service port :coding 'binary
             :sentinel #'ignore
             :filter (lambda (proc s)
                       (push s got)
                       (setq calls (1+ calls))
                       ;; Now and then a filter waits itself.
                       (when (= (% calls 97) 0)
                         (accept-process-output proc 0.001)))))
         (rounds 0))
    (while (and (eq (process-status c) 'open) (< rounds 100000))
      (setq rounds (1+ rounds))
      (pcase (% rounds 5)
        (0 (accept-process-output c 0.01))
        (1 (accept-process-output c 0))
        (2 (accept-process-output nil 0.001))
        (3 (accept-process-output c 0.001 nil t))
        (4 (when (= (% rounds 400) 4)
             (stop-process c)
             (accept-process-output c 0.005)
             (continue-process c)))))
    (netproc-test-wait-until (lambda () (eq (process-status c) 'closed))
                             10 'closed)
    (netproc-test-note
     :intact
     (equal (apply #'concat (nreverse got))
            (mapconcat (lambda (i) (format "%05d\n" i))
                       (number-sequence 1 netproc-wait-tests--lines) "")))
    (netproc-test-note :status (process-status c))
    (delete-process c)))

(netproc-test-deftest netproc-test-wait-for-one-bulk-stream ()
  "Waiting for one connection while it streams 8 MiB at full speed.
The first reads may take place on Emacs's thread; once one fills the
buffer, the stream is left to the engine, whose batches are larger.
Every byte arrives, in order."
  (let* ((port (netproc-test-perl-peer
                (concat "my $b = join('', map { chr($_ % 251) } 0..65535);"
                        " print $c $b for 1..128; close $c;")))
         (got nil)
         (c (make-network-process
             :name "bulk" :host "127.0.0.1" :service port :coding 'binary
             :sentinel #'ignore
             :filter (lambda (_proc s) (push s got))))
         (rounds 0))
    (while (and (eq (process-status c) 'open) (< rounds 100000))
      (setq rounds (1+ rounds))
      (accept-process-output c 1))
    (let* ((all (apply #'concat (nreverse got)))
           (unit (apply #'unibyte-string
                        (mapcar (lambda (i) (% i 251)) (number-sequence 0 65535)))))
      (netproc-test-note :length (length all))
      (netproc-test-note
       :intact
       (cl-loop for i from 0 below 128
                always (eq t (compare-strings all (* i 65536) (* (1+ i) 65536)
                                              unit nil nil)))))
    (netproc-test-note :status (process-status c))
    (delete-process c)))

(provide 'netproc-wait-tests)

;;; netproc-wait-tests.el ends here
