;;; netproc-channel.el --- the module, its engine, and the event channel  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; The engine thread reports to Emacs through one pipe process: it queues
;; events and writes a wake-up byte; the pipe's filter drains every pending
;; event with one module call and dispatches them in order.  Filters and
;; sentinels therefore run exactly when Emacs runs those of processes:
;; while it waits.
;;
;; An error in a filter or sentinel does not stop the dispatch of the
;; events after it: with `debug-on-error' nil it is caught and reported as
;; Emacs reports one in a process filter once the batch is done; with
;; `debug-on-error' non-nil it propagates, as Emacs lets it, and the rest of
;; the batch is dispatched at the next opportunity, in order.

;;; Code:

(require 'netproc-object)
(require 'subr-x)

(declare-function netproc--start "netproc-module" (channel))
(declare-function netproc--stop "netproc-module" ())
(declare-function netproc--running-p "netproc-module" ())
(declare-function netproc--drain "netproc-module" ())
(declare-function netproc--ring "netproc-module" ())
(declare-function netproc--flush "netproc-module" ())
(declare-function netproc--sync "netproc-module" ())
(declare-function netproc--lingering "netproc-module" ())
(declare-function netproc--queued "netproc-module" (conn))
(declare-function netproc--close "netproc-module" (conn))
(declare-function netproc--set-linger "netproc-module" (conn flag))
(declare-function netproc--handle-event "netproc-io" (id type payload))
(declare-function netproc--orphan "netproc-io" (proc))
(declare-function netproc--owner-reads "netproc-io" (conn))

(defconst netproc--top-directory
  (expand-file-name ".." (file-name-directory
                          (or load-file-name buffer-file-name)))
  "The top directory of netproc's sources, where `make' builds it.")

(defconst netproc--module-file
  (or (getenv "NETPROC_MODULE")
      (expand-file-name "module/netproc-module.so" netproc--top-directory))
  "Where `make' puts the compiled module.
The environment variable NETPROC_MODULE names another build, such as the
one `make sanitize' makes.")

(defun netproc--load-module ()
  "Load the compiled module, or explain how to build it."
  (unless (fboundp 'netproc--start)
    (when (< emacs-major-version 28)
      (error "netproc needs Emacs 28 or later; this is Emacs %s"
             emacs-version))
    (unless module-file-suffix
      (error "This Emacs was built without dynamic module support"))
    (unless (file-exists-p netproc--module-file)
      (error "netproc's module is not built: run `make' in %s"
             (file-name-as-directory netproc--top-directory)))
    (module-load netproc--module-file)))

(defvar netproc--batch []
  "The events being dispatched: [ID TYPE PAYLOAD ...].")

(defvar netproc--settled nil
  "Outcomes of :nowait connects that settled in the call, oldest first.
Each is (ID TYPE PAYLOAD CONN), CONN being the connection or nil.")

(defvar netproc--batch-pos 0
  "Index in `netproc--batch' of the next event to dispatch.")

(defvar netproc--deferred-errors nil
  "Errors caught in filters and sentinels during a batch, newest first.
Each is (KIND . ERROR), KIND being `filter' or `sentinel'.")


(defvar netproc--wait-predicate nil
  "What the innermost netproc wait waits for, a function of no arguments.
Bound only while netproc waits for something itself; filters and
sentinels run with it nil.")

(defvar netproc-exit-write-timeout)

(defvar netproc--channel nil
  "The pipe process the engine rings when events are queued.")

(defvar netproc--wait-just-this-one nil
  "JUST-THIS-ONE for netproc's waits on its channel, as `accept-process-output'.
Non-nil reads the channel alone, no other process; an integer also keeps
timers from running.  Bound only around a wait that asks for it;
filters and sentinels run with it nil.")

(defun netproc--ensure-engine ()
  "Start the engine and its channel unless they are running."
  (netproc--load-module)
  (unless (and netproc--channel (process-live-p netproc--channel)
               (netproc--running-p))
    (netproc--channel-lost)
    (let* ((process-adaptive-read-buffering nil)
           ;; Reads of the channel are a byte or two: with adaptive read
           ;; buffering on, Emacs would take them for a slow producer and
           ;; delay reading it by up to tens of milliseconds each time.
           (pipe (make-pipe-process :name " *netproc-channel*"
                                   :buffer nil
                                   :coding 'binary
                                   :noquery t
                                   :filter #'netproc--channel-filter
                                   :sentinel #'netproc--channel-sentinel)))
      ;; Tools that list processes can tell the channel from the user's.
      (process-put pipe 'netproc-channel t)
      (netproc--start pipe)
      (setq netproc--channel pipe))))

(defun netproc--channel-sentinel (pipe _message)
  "Notice that PIPE, the channel, was deleted, and end its connections."
  (when (and (eq pipe netproc--channel) (not (process-live-p pipe)))
    (run-at-time 0 nil #'netproc--channel-lost)))

(defun netproc--channel-lost ()
  "Stop an engine whose channel is gone; its netprocs end with it.
With nobody reading the channel, the engine's events have nowhere to go:
each live netproc is closed as by its peer, and the next netproc made
starts a new engine."
  (when (and (fboundp 'netproc--running-p) (netproc--running-p)
             (not (process-live-p netproc--channel)))
    (let ((orphans (hash-table-values netproc--live)))
      (netproc--stop)
      (setq netproc--batch [] netproc--batch-pos 0
            netproc--settled nil
            netproc--channel nil)
      (when orphans
        ;; Their sentinels speak the builtin's words, which cannot say
        ;; why: this does.
        (message "netproc: its channel process was deleted; %d connection%s \
ended with it" (length orphans) (if (cdr orphans) "s" "")))
      (dolist (proc orphans)
        (netproc--orphan proc))
      (netproc--report-deferred-errors))))

(defun netproc--shutdown ()
  "Stop the engine: close every connection, and run no sentinel.
Run from `kill-emacs-hook', after what netprocs still had to send is
written out (see `netproc--write-out-before-exit')."
  (let ((pipe netproc--channel))
    (setq netproc--channel nil)
    (when (process-live-p pipe)
      ;; Exiting: the engine's events are no longer dispatched.
      (set-process-filter pipe #'ignore))
    (netproc--write-out-before-exit)
    (when (fboundp 'netproc--stop)
      (netproc--stop))
    (when (process-live-p pipe)
      (delete-process pipe))))

(defun netproc--write-out-before-exit ()
  "Wait while the engine writes out what netprocs still have queued.
Emacs's send returns once the kernel has every byte, and the kernel
goes on sending after Emacs exits; netproc's returns with the bytes
queued in the engine, which stopping drops.  So each open netproc with
output queued is closed, which writes it out before the socket goes,
and Emacs waits for those and for the netprocs deleted so (see
`delete-netproc'), each for as long as its peer takes some of it within
30 seconds, and all for `netproc-exit-write-timeout' seconds at most.
\\[keyboard-quit] ends the wait, dropping what is left."
  (when (and (fboundp 'netproc--lingering) (netproc--lingering))
    (maphash (lambda (_id proc)
               (let* ((st (gethash proc netproc--states))
                      (conn (and st (netproc--st-conn st))))
                 (when (and conn (eq (netproc--st-status st) 'open)
                            (> (netproc--queued conn) 0))
                   ;; As `delete-netproc': a quit send's rest is dropped.
                   (when (netproc--st-send-quit st)
                     (netproc--set-linger conn nil))
                   (netproc--close conn))))
             netproc--live)
    ;; The engine has started each of those closes.
    (netproc--sync)
    (let* ((start (float-time))
           (deadline (and netproc-exit-write-timeout
                          (+ start netproc-exit-write-timeout)))
           (told nil))
      (condition-case nil
          (let (left)
            (while (and (> (setq left (netproc--lingering)) 0)
                        (or (not deadline) (< (float-time) deadline)))
              (when (and (not told) (> (- (float-time) start) 1))
                (setq told t)
                (message "netproc: writing out what %d connection%s still \
had to send before exiting%s" left (if (= left 1) "" "s")
                         (if noninteractive "" "; C-g drops it")))
              (sleep-for 0.02)))
        (quit nil)))))

;;; Dispatch

(defun netproc--next-wait-timer (timer function)
  "Make TIMER run FUNCTION at Emacs's next wait; return TIMER.
TIMER nil means a new timer.  Due since long ago, it runs as soon as
Emacs looks at its timers, which it does in every wait, and not before."
  (unless (memq timer timer-list)
    (unless timer
      (setq timer (timer-create))
      (timer-set-function timer function))
    (timer-set-time timer 0)
    (timer-activate timer))
  timer)

(defvar netproc--settle-timer nil
  "Timer that has a wait that is not netproc's show settled outcomes.")

(defun netproc--settle-later (id type payload conn)
  "Show the outcome TYPE with PAYLOAD of ID's :nowait connect at the next wait.
CONN is the connection, nil when it failed.  Emacs finds the outcome of
a :nowait connect at its next wait, even one that settled at once."
  (setq netproc--settled
        (nconc netproc--settled (list (list id type payload conn)))
        netproc--settle-timer
        (netproc--next-wait-timer netproc--settle-timer
                                  #'netproc--settle-in-dispatch)))

(defun netproc--settle-in-dispatch ()
  "Have the channel's filter show the settled outcomes, in this wait.
There they run as events always do, with the error handling Emacs gives
process filters; run from this timer, they would get a timer's."
  (when netproc--settled
    (netproc--schedule-redispatch)))

(defun netproc--settle ()
  "Show the outcomes in `netproc--settled', in order.
Every netproc wait and every dispatch does it first of all.  An opened
connection's first input is then read by a wait for it."
  (while netproc--settled
    (pcase-let ((`(,id ,type ,payload ,conn) (pop netproc--settled)))
      (netproc--handle-event id type payload)
      (when (and conn (gethash id netproc--live))
        (netproc--owner-reads conn))))
  (netproc--report-deferred-errors))


(defun netproc--channel-filter (_pipe _bytes)
  "Dispatch every pending event; the wake-up bytes carry no information."
  (netproc--dispatch))

(defun netproc--run-batch ()
  "Dispatch the rest of `netproc--batch'.
The position advances before each event is handled, so an event whose
handler exits non-locally is not handled twice, and a nested dispatch (a
filter that waits) carries on from the right place."
  (while (< netproc--batch-pos (length netproc--batch))
    (let ((batch netproc--batch)
          (i netproc--batch-pos))
      (setq netproc--batch-pos (+ i 3))
      (netproc--handle-event (aref batch i) (aref batch (1+ i))
                             (aref batch (+ i 2))))))

(defvar netproc--dispatching nil
  "Non-nil while events are dispatched, filters and sentinels running.
Connections they close are left to the engine thread, woken once for
all of them when the dispatch ends (see `netproc--close-conn').")

(defvar netproc--dispatch-finished nil
  "Non-nil once the innermost `netproc--dispatch' has run to its end.
Dynamically bound: a lexical flag would make the dispatch's unwind form
a closure, allocated on every event.")

(defun netproc--dispatch ()
  "Dispatch what is left of the current batch, then drain and dispatch."
  (let ((netproc--dispatch-finished nil)
        (netproc--dispatching t))
    (unwind-protect
        (progn
          (when netproc--settled
            (netproc--settle))
          (netproc--run-batch)
          ;; A stopped engine drains nothing: [].
          (when (fboundp 'netproc--drain)
            (setq netproc--batch (netproc--drain)
                  netproc--batch-pos 0)
            (netproc--run-batch))
          (setq netproc--dispatch-finished t))
      ;; Either wakes the engine, which then closes what the handlers
      ;; left to it.
      (if netproc--dispatch-finished
          (when (fboundp 'netproc--flush)
            (netproc--flush))
        (netproc--schedule-redispatch))))
  (netproc--report-deferred-errors)
  (netproc--end-wait-if-satisfied))

(defun netproc--schedule-redispatch ()
  "Finish the interrupted batch at the next chance Emacs gets.
The engine rings the channel once more, so the rest of the batch is
dispatched where events always are: in the channel's filter, with the
error handling Emacs gives process filters.  A timer would run it with a
timer's."
  (when (and (fboundp 'netproc--running-p) (netproc--running-p))
    (netproc--ring)))

(defun netproc--call (kind function proc arg)
  "Call FUNCTION with PROC and ARG, as Emacs does a filter or sentinel.
KIND is `filter' or `sentinel'.  The current buffer is kept.  An error is
caught and kept for `netproc--report-deferred-errors', unless
`debug-on-error' is non-nil: then it propagates."
  (save-current-buffer
    ;; A wait inside the filter must not end the wait that is running it.
    ;; Not `condition-case-unless-debug': that would call the debugger
    ;; and then catch.  Emacs catches nothing while `debug-on-error' is
    ;; set, so the error reaches whoever is waiting.
    (let ((netproc--wait-predicate nil)
          (netproc--wait-just-this-one nil))
      (if debug-on-error
          (funcall function proc arg)
        (condition-case err
            (funcall function proc arg)
          (error (push (cons kind err) netproc--deferred-errors)))))))

(defun netproc--report-deferred-errors ()
  "Report the errors caught in filters and sentinels as Emacs does.
Emacs shows \"error in process filter: ...\", beeps and pauses two
seconds; in batch mode it prints the message and exits with status 255."
  (when netproc--deferred-errors
    (let ((errors (reverse netproc--deferred-errors)))
      (setq netproc--deferred-errors nil)
      (dolist (entry errors)
        (let ((text (format "error in process %s: %s" (car entry)
                            (error-message-string (cdr entry)))))
          (if noninteractive
              (progn (message "%s" text)
                     (kill-emacs 255))
            (ding)
            (message "%s" text)
            (let ((inhibit-quit t))
              (sleep-for 2))))))))

(defconst netproc--accept-output (symbol-function 'accept-process-output)
  "The primitive `accept-process-output', as it was when netproc loaded.
netproc's waits call it directly: advice on the primitive (such as
`netproc-compat-mode' adds) would stand between the wait and its
dispatch, where `netproc--directly-under-wait-p' must find nothing.")

(defun netproc--wait-until (predicate &optional seconds)
  "Dispatch events until PREDICATE gives non-nil; return that value.
Give up after SECONDS (nil means no limit) and return nil.  Emacs runs
timers and other processes meanwhile, and \[keyboard-quit] quits.

The wait is on the channel itself, so Emacs returns as soon as events
came and were dispatched, rather than after the ten milliseconds of
quiet that a wait on all processes needs.  While a busy connection
keeps the channel readable, Emacs would keep reading it without
returning; the dispatcher ends the wait itself once PREDICATE holds."
  ;; The clock is read only once a first slice has gone by: most waits
  ;; end sooner, and every reading is a float for the collector.
  (let ((slice (if seconds (min 0.05 seconds) 0.05))
        (deadline nil)
        value)
    ;; No dispatch before the first wait: whatever is queued has rung the
    ;; channel, and draining it here would leave that wake-up byte behind
    ;; to end a later wait for nothing.
    (when netproc--settled
      (netproc--settle))
    (setq value (funcall predicate))
    (when (and seconds (<= seconds 0))
      (setq slice nil))
    (while (and (not (or value (setq value (funcall predicate))))
                slice)
      (when (and seconds (null deadline))
        (setq deadline (+ (float-time) seconds)))
      (if (process-live-p netproc--channel)
          (catch 'netproc--wait-satisfied
            (let ((netproc--wait-predicate predicate))
              (funcall netproc--accept-output netproc--channel slice nil
                       netproc--wait-just-this-one)))
        ;; No channel, so no events: keep time for timers and quits.
        (accept-process-output nil slice))
      (when deadline
        (let ((left (- deadline (float-time))))
          (setq slice (and (> left 0) (max 0.001 (min 0.05 left)))))))
    value))

(defun netproc--end-wait-if-satisfied ()
  "End the innermost netproc wait if what it waits for has come.
Only when this dispatch runs for that wait itself: the throw must never
cross a filter, sentinel or timer of somebody else's that happened to
wait inside it."
  (when (and netproc--wait-predicate (funcall netproc--wait-predicate)
             (netproc--directly-under-wait-p))
    (throw 'netproc--wait-satisfied t)))

(defconst netproc--dispatch-frames
  '(netproc--dispatch netproc--channel-filter netproc--end-wait-if-satisfied
    netproc--directly-under-wait-p netproc--visit-frame timer-event-handler
    apply funcall mapbacktrace)
  "Functions that may stand between a wait and its dispatch.")

(defvar netproc--frames-state nil
  "Where `netproc--directly-under-wait-p' is in its walk up the stack.
A dynamic variable, so that its walker is a constant function rather
than a closure made on every event.")

(defun netproc--directly-under-wait-p ()
  "Non-nil if only netproc's own dispatch stands between here and its wait.
That is: going up the stack, past the channel filter, the redispatch
timer and their callers, the first other function is the
`accept-process-output' that `netproc--wait-until' called."
  (let ((netproc--frames-state 'dispatch))
    (catch 'netproc--frames-seen
      (mapbacktrace #'netproc--visit-frame #'netproc--directly-under-wait-p)
      nil)))

(defun netproc--visit-frame (_evald function _args _flags)
  "Look at the FUNCTION of one frame for `netproc--directly-under-wait-p'."
  (if (eq netproc--frames-state 'dispatch)
      (cond ((or (eq function 'accept-process-output)
                 (eq function netproc--accept-output))
             (setq netproc--frames-state 'accept))
            ((not (memq function netproc--dispatch-frames))
             (throw 'netproc--frames-seen nil)))
    (throw 'netproc--frames-seen (eq function 'netproc--wait-until))))

(provide 'netproc-channel)

;;; netproc-channel.el ends here
