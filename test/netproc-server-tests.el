;;; netproc-server-tests.el --- Differential tests of netproc servers  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Servers (`make-network-process' with `:server') and the connections
;; they accept, written once with the builtin names and run against
;; the builtin and against netproc (see `netproc-test-deftest').  In
;; the netproc half the clients of a server are netprocs too.
;;
;; Accepted connections are named after their peer ("srv
;; <127.0.0.1:PORT>") or, on a Unix socket, after a session-wide
;; counter ("srv <N>"), so the scenarios here record process objects
;; by name, as strings the trace normalization rewrites: the peer port
;; of each accepted connection becomes <APORT1>, <APORT2>... in order
;; of acceptance, and the counter suffix " <N>" becomes " <L1>", " <L2>"...
;;
;; After the differential scenarios come tests of netproc alone:
;; builtin clients against a netproc server and the reverse, a socat
;; client, a thousand concurrent clients, and peers that misbehave.
;;
;; No scenario makes the builtin write to a peer that has gone away,
;; nor asks the exit status of a process still connecting.

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

;;;; Recording by name

(defvar netproc-test-server--seen nil
  "Accepted connections found so far by the running scenario, oldest first.")

(defun netproc-test-server--named (object depth)
  "Return OBJECT with every process or netproc replaced by (:proc NAME).
DEPTH bounds the recursion."
  (cond
   ((> depth 40) object)
   ((netproc-test-object-p object)
    (list :proc (netproc-test-object-name object)))
   ((and (consp object) (not (eq (car object) 'closure)))
    (let ((tail object) (n 0) acc)
      (while (and (consp tail) (< n 10000))
        (push (netproc-test-server--named (car tail) (1+ depth)) acc)
        (setq tail (cdr tail) n (1+ n)))
      (let ((result (nreverse acc)))
        (when tail
          (setcdr (last result) (netproc-test-server--named tail (1+ depth))))
        result)))
   ((and (vectorp object) (not (recordp object)))
    (vconcat (mapcar (lambda (x) (netproc-test-server--named x (1+ depth)))
                     object)))
   (t object)))

(defun netproc-test-server-note (tag &rest values)
  "Record (TAG . VALUES) with processes and netprocs recorded by name.
Names are strings, so the ports and counters in them are normalized."
  (apply #'netproc-test-note tag (netproc-test-server--named values 0)))

(defmacro netproc-test-server-note-try (tag &rest body)
  "Record (TAG RESULT) by name, RESULT being what `netproc-test-try' gives.
RESULT is the value of BODY, or the error it signals."
  (declare (indent 1) (debug t))
  `(netproc-test-server-note ,tag (netproc-test-try ,@body)))

(defun netproc-test-server-sentinel (proc message)
  "A sentinel that records (:sentinel NAME MESSAGE STATUS) for PROC."
  (netproc-test-server-note :sentinel proc message
                            (netproc-test-call 'process-status proc)))

(defun netproc-test-server-filter (proc string)
  "A filter that records (:filter NAME STRING MULTIBYTE-P) for PROC."
  (netproc-test-server-note :filter proc string (multibyte-string-p string)))

(defun netproc-test-server-echo (proc string)
  "A filter that records STRING for PROC, then sends it back."
  (netproc-test-server-filter proc string)
  (netproc-test-call 'process-send-string proc string))

(defun netproc-test-server-log (server conn message)
  "A :log function that records (:log SERVER CONN MESSAGE) by name."
  (netproc-test-server-note :log server conn message))

(defun netproc-test-server-received (proc)
  "Return what the recording filters got so far for PROC, concatenated."
  (let ((name (netproc-test-object-name proc)))
    (apply #'concat
           (mapcar (lambda (e) (nth 2 e))
                   (cl-remove-if-not
                    (lambda (e) (and (eq (car e) :filter)
                                     (equal (nth 1 e) (list :proc name))))
                    (reverse netproc-test--trace))))))

(defun netproc-test-server-wait-received (proc string &optional timeout)
  "Wait until the recording filters got exactly STRING for PROC.
Wait at most TIMEOUT seconds."
  (netproc-test-wait-until
   (lambda () (equal (netproc-test-server-received proc) string))
   timeout (list 'received (netproc-test-object-name proc) string)))

(defun netproc-test-server-wait-gone (proc &optional timeout)
  "Wait until PROC has left the process list (its sentinel has run).
Wait at most TIMEOUT seconds."
  (netproc-test-wait-until
   (lambda () (not (memq proc (netproc-test-call 'process-list))))
   timeout (list 'gone (netproc-test-object-name proc))))

(defun netproc-test-server-wait-length (proc length &optional timeout)
  "Wait until the recording filters got LENGTH characters for PROC.
Wait at most TIMEOUT seconds."
  (netproc-test-wait-until
   (lambda () (>= (length (netproc-test-server-received proc)) length))
   timeout (list 'received-length (netproc-test-object-name proc) length)))

(defun netproc-test-server-state (label proc)
  "Record (:state LABEL STATUS EXIT LIVE COMMAND LISTED) for PROC.
The exit status is not asked while PROC is connecting."
  (let ((status (netproc-test-call 'process-status proc)))
    (netproc-test-server-note
     :state label status
     (if (eq status 'connect)
         :not-asked
       (netproc-test-call 'process-exit-status proc))
     (netproc-test-call 'process-live-p proc)
     (netproc-test-call 'process-command proc)
     (and (memq proc (netproc-test-call 'process-list)) t))))

(defun netproc-test-server-accessors (label proc)
  "Record under LABEL what the accessors of PROC return."
  (netproc-test-server-note
   :accessors label
   (netproc-test-call 'process-name proc)
   (netproc-test-call 'process-type proc)
   (netproc-test-call 'process-id proc)
   (netproc-test-call 'process-buffer proc)
   (netproc-test-call 'process-mark proc)
   (netproc-test-call 'process-plist proc)
   (netproc-test-call 'process-query-on-exit-flag proc)
   (netproc-test-call 'process-coding-system proc)
   (netproc-test-call 'process-filter-multibyte-p proc)
   (netproc-test-call 'process-inherit-coding-system-flag proc)
   (netproc-test-call 'process-filter proc)
   (netproc-test-call 'process-sentinel proc)
   (netproc-test-call 'process-datagram-address proc)))

(defun netproc-test-server-contacts (label proc)
  "Record under LABEL the three forms of the contact of PROC."
  (netproc-test-server-note
   :contacts label
   (netproc-test-call 'process-contact proc)
   (netproc-test-call 'process-contact proc t)
   (mapcar (lambda (key) (netproc-test-call 'process-contact proc key))
           '(:name :server :host :service :family :local :remote :log :foo))))

;;;; Finding accepted connections

(defun netproc-test-server--count-placeholders (prefix)
  "Return how many registered placeholders start with PREFIX."
  (cl-count-if (lambda (pair)
                 (string-prefix-p prefix (format "%s" (cdr pair))))
               netproc-test--subst))

(defun netproc-test-server--register-name (name server-name)
  "Register the variable part of NAME, a connection of SERVER-NAME.
The peer port becomes <APORTk>; a counter suffix \" <N>\" becomes
\" <Lk>\"."
  (let ((suffix (substring name (length server-name))))
    (cond
     ((string-match ":\\([0-9]+\\)>\\'" suffix)
      (let ((port (string-to-number (match-string 1 suffix))))
        (unless (assoc port netproc-test--subst)
          (netproc-test-register
           port
           (intern (format "<APORT%d>"
                           (1+ (netproc-test-server--count-placeholders
                                "<APORT"))))))))
     ((string-match "\\` <[0-9]+>\\'" suffix)
      (netproc-test-register
       suffix (format " <L%d>" (1+ (netproc-test-server--count-placeholders
                                    " <L"))))))))

(defun netproc-test-server--scan (server-name)
  "Add the newly listed connections of SERVER-NAME to the seen ones."
  (let ((prefix (concat server-name " <")))
    (dolist (p (reverse (netproc-test-call 'process-list)))
      (let ((name (netproc-test-call 'process-name p)))
        (when (and (string-prefix-p prefix name)
                   (not (memq p netproc-test-server--seen)))
          (netproc-test-server--register-name name server-name)
          (setq netproc-test-server--seen
                (append netproc-test-server--seen (list p))))))))

(defun netproc-test-server-conns (server-name)
  "Return the connections of SERVER-NAME seen so far, oldest first."
  (netproc-test-server--scan server-name)
  (let ((prefix (concat server-name " <")))
    (cl-remove-if-not
     (lambda (p) (string-prefix-p prefix (netproc-test-object-name p)))
     netproc-test-server--seen)))

(defun netproc-test-server-accepted (server-name &optional n timeout)
  "Return the Nth connection (default 0) accepted by the server SERVER-NAME.
Wait at most TIMEOUT seconds for it to appear."
  (let ((n (or n 0)))
    (netproc-test-wait-until
     (lambda () (nth n (netproc-test-server-conns server-name)))
     timeout (list 'accepted server-name (1+ n)))))

(defmacro netproc-test-server-deftest (name arglist docstring &rest body)
  "Define NAME, a differential test of servers running BODY on both sides.
ARGLIST must be ().  DOCSTRING documents the test."
  (declare (indent defun) (doc-string 3))
  `(netproc-test-deftest ,name ,arglist ,docstring
     (let ((netproc-test-server--seen nil))
       ,@body)))

(defun netproc-test-server-client (name port &rest args)
  "Connect NAME to 127.0.0.1 PORT with the extra keyword ARGS, side-aware."
  (apply (netproc-test-fn 'make-network-process)
         :name name :host "127.0.0.1" :service port args))

;;;; Listening

(netproc-test-server-deftest netproc-test-server-ipv4 ()
  "An IPv4 server: state, accessors, contacts, an accepted connection, data."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :family 'ipv4 :plist '(k1 v1) :noquery t
               :sentinel #'netproc-test-server-sentinel
               :filter #'netproc-test-server-filter
               :log #'netproc-test-server-log))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>)))
    (netproc-test-note :real-port (natnump port) (> port 0)
                       (equal (process-contact srv :local)
                              (vector 127 0 0 1 port)))
    (netproc-test-note :processp (processp srv))
    (netproc-test-server-state "listening" srv)
    (netproc-test-server-accessors "server" srv)
    (netproc-test-server-contacts "server" srv)
    (netproc-test-note :list (netproc-test-names (process-list)))
    (let* ((c (netproc-test-server-client
               "c" port :filter #'netproc-test-server-filter
               :sentinel #'netproc-test-server-sentinel))
           (acc (netproc-test-server-accepted "srv")))
      (netproc-test-server-state "accepted" acc)
      (netproc-test-server-accessors "accepted" acc)
      (netproc-test-server-contacts "accepted" acc)
      (netproc-test-server-contacts "client" c)
      (netproc-test-note :list (netproc-test-names (process-list)))
      (netproc-test-note :get (eq (get-process (process-name acc)) acc))
      (process-send-string c "from the client")
      (netproc-test-server-wait-received acc "from the client")
      (process-send-string acc "from the server")
      (netproc-test-server-wait-received c "from the server")
      (netproc-test-server-state "server with a connection" srv)
      (delete-process c)
      (netproc-test-server-wait-gone acc)
      (netproc-test-server-state "peer gone" acc)
      (netproc-test-note :list (netproc-test-names (process-list)))
      (delete-process srv)
      (netproc-test-server-state "server deleted" srv)
      (netproc-test-server-contacts "server deleted" srv))))

(netproc-test-server-deftest netproc-test-server-two-connections ()
  "Two clients give two connections, named after their peers, in order."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :sentinel #'netproc-test-server-sentinel
               :filter #'netproc-test-server-filter))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>))
         (c1 (netproc-test-server-client "c1" port))
         (a1 (netproc-test-server-accepted "srv" 0))
         (c2 (netproc-test-server-client "c2" port))
         (a2 (netproc-test-server-accepted "srv" 1)))
    (netproc-test-server-note :names (process-name a1) (process-name a2))
    (netproc-test-note :ports-match
                       (equal (process-contact a1 :remote)
                              (process-contact c1 :local))
                       (equal (process-contact a2 :remote)
                              (process-contact c2 :local)))
    (process-send-string c2 "two")
    (netproc-test-server-wait-received a2 "two")
    (process-send-string c1 "one")
    (netproc-test-server-wait-received a1 "one")
    (delete-process a1)
    (netproc-test-server-state "a1 deleted" a1)
    (netproc-test-server-state "a2" a2)
    (netproc-test-server-wait-gone c1)
    (netproc-test-server-state "c1" c1)
    (delete-process c2)
    (netproc-test-server-wait-gone a2)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-server-host-restricts ()
  "`:host' chooses the listening address; without it, 127.0.0.1 only."
  (dolist (host '(nil "127.0.0.1" local "0.0.0.0" "127.0.0.2"))
    (let* ((srv (apply #'make-network-process :name "srv" :server t
                       :service t :filter #'ignore
                       (and host (list :host host))))
           (port (netproc-test-register (process-contact srv :service)
                                        '<SPORT>)))
      (netproc-test-server-contacts (list :host host) srv)
      (dolist (to '("127.0.0.1" "127.0.0.2"))
        (let* ((k (length (netproc-test-server-conns "srv")))
               (r (netproc-test-try
                    (make-network-process :name "c" :host to :service port))))
          (netproc-test-server-note :connect host to
                                    (if (eq (car r) :value)
                                        (process-status (cadr r))
                                      r))
          (when (eq (car r) :value)
            (let ((acc (netproc-test-server-accepted "srv" k)))
              (netproc-test-server-note :accepted-from
                                        (process-contact acc :host))
              (delete-process (cadr r))
              (netproc-test-server-wait-gone acc)))))
      (delete-process srv))))

(netproc-test-server-deftest netproc-test-server-local-vectors ()
  "`:local' address vectors: port 0 is replaced and `:service' appended."
  (let ((fixed (netproc-test-refused-port)))
    (dolist (args (list (list :local (vector 127 0 0 1 0))
                        (list :local (vector 127 0 0 1 0) :service 5)
                        (list :service t :local (vector 127 0 0 1 0))
                        (list :local (vector 127 0 0 1 fixed))
                        (list :host "127.0.0.2" :local (vector 127 0 0 1 0))
                        (list :local (vector 0 0 0 0 0 0 0 1 0))
                        (list :local (vector 0 0 0 0 0))))
      (let* ((srv (apply #'make-network-process :name "srv" :server t
                         :filter #'ignore args))
             (local (process-contact srv :local))
             (port (aref local (1- (length local)))))
        (netproc-test-register port '<SPORT>)
        (netproc-test-server-contacts args srv)
        (let* ((k (length (netproc-test-server-conns "srv")))
               (c (make-network-process
                   :name "c" :service port
                   :host (if (= (length local) 9) "::1" "127.0.0.1")))
               (acc (netproc-test-server-accepted "srv" k)))
          (netproc-test-server-note :client (process-status c)
                                    (process-contact acc :local))
          (delete-process c)
          (netproc-test-server-wait-gone acc))
        (delete-process srv)))))

(netproc-test-server-deftest netproc-test-server-backlog ()
  "With the server stopped, of 10 :nowait clients N+1 reach `open'."
  (dolist (qlen '(t 1 3))
    (let* ((srv (make-network-process :name "srv" :server qlen
                                      :host "127.0.0.1" :service t :stop t
                                      :filter #'ignore))
           (port (process-contact srv :service))
           clients)
      (dotimes (i 10)
        (push (make-network-process :name (format "b%d" i) :host "127.0.0.1"
                                    :service port :nowait t :sentinel #'ignore)
              clients))
      (netproc-test-settle 1.0)
      (netproc-test-note :backlog qlen
                         (cl-count 'open (mapcar #'process-status clients))
                         (cl-count 'connect (mapcar #'process-status clients)))
      (netproc-test-note :accepted (netproc-test-server-conns "srv"))
      (mapc #'delete-process clients)
      (delete-process srv))))

(netproc-test-server-deftest netproc-test-server-ipv6 ()
  "An IPv6 server on ::1; the accepted connection's name is deliberate."
  (let* ((msgs nil)
         (logs nil)
         (srv (make-network-process
               :name "srv6" :server t :host "::1" :service t
               :sentinel (lambda (p m) (push (list (process-name p) m) msgs))
               :log (lambda (_s _c m) (push m logs))
               :filter (lambda (_p s) (push s msgs))))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>)))
    (netproc-test-server-contacts "server" srv)
    (netproc-test-note-try :ipv4-client
      (make-network-process :name "c4" :host "127.0.0.1" :service port))
    (let* ((c (make-network-process :name "c6" :host "::1" :service port
                                    :filter #'netproc-test-server-filter))
           (cport (netproc-test-register (aref (process-contact c :local) 8)
                                         '<APORT1>))
           (acc (netproc-test-wait-for (car (netproc-test-server-conns
                                             "srv6")))))
      (netproc-test-note-deliberate :accepted-name
          (list :value (format "srv6 <[0:0:0:0:0:0:0:100]:%d>" cport))
          (list :value (format "srv6 <[0:0:0:0:0:0:0:1]:%d>" cport))
        (process-name acc))
      (netproc-test-note-deliberate :accepted-contact
          (list :value (list "0:0:0:0:0:0:0:100" cport))
          (list :value (list "0:0:0:0:0:0:0:1" cport))
        (process-contact acc))
      (netproc-test-note-deliberate :accepted-host
          '(:value "0:0:0:0:0:0:0:100") '(:value "0:0:0:0:0:0:0:1")
        (process-contact acc :host))
      (netproc-test-note-deliberate :log
          '(:value ("accept from 0:0:0:0:0:0:0:100\n"))
          '(:value ("accept from 0:0:0:0:0:0:0:1\n"))
        logs)
      (netproc-test-note-deliberate :sentinel
          (list :value (list (list (format "srv6 <[0:0:0:0:0:0:0:100]:%d>"
                                           cport)
                                   "open from 0:0:0:0:0:0:0:100\n")))
          (list :value (list (list (format "srv6 <[0:0:0:0:0:0:0:1]:%d>"
                                           cport)
                                   "open from 0:0:0:0:0:0:0:1\n")))
        msgs)
      (netproc-test-note :accepted
                         (process-contact acc :remote)
                         (process-contact acc :local)
                         (process-contact acc :service)
                         (process-contact acc :server)
                         (process-status acc))
      (setq msgs nil)
      (process-send-string c "six")
      (netproc-test-wait-for msgs)
      (netproc-test-note :server-got msgs)
      (process-send-string acc "back")
      (netproc-test-server-wait-received c "back")
      (delete-process acc)
      (netproc-test-server-wait-gone c)
      (delete-process srv))))

(netproc-test-server-deftest netproc-test-server-local ()
  "A Unix socket server: contacts, counter names, log, data, delete."
  (let* ((path (expand-file-name "sock" (netproc-test-tmpdir)))
         (srv (make-network-process
               :name "lsrv" :server t :family 'local :service path
               :sentinel #'netproc-test-server-sentinel
               :log #'netproc-test-server-log))
         (c1 (make-network-process :name "lc1" :family 'local :service path
                                   :filter #'netproc-test-server-filter))
         (a1 (netproc-test-server-accepted "lsrv" 0))
         (c2 (make-network-process :name "lc2" :family 'local :service path
                                   :filter #'netproc-test-server-filter))
         (a2 (netproc-test-server-accepted "lsrv" 1)))
    (netproc-test-server-state "server" srv)
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-contacts "client" c1)
    (netproc-test-server-contacts "accepted" a1)
    (netproc-test-server-accessors "accepted" a1)
    (netproc-test-server-note :names (process-name a1) (process-name a2)
                              (buffer-name (process-buffer a1)))
    (process-send-string c1 "one")
    (process-send-string c2 "two")
    (netproc-test-wait-for
     (and (equal (with-current-buffer (process-buffer a1) (buffer-string))
                 "one")
          (equal (with-current-buffer (process-buffer a2) (buffer-string))
                 "two")))
    (netproc-test-server-accessors "accepted after data" a1)
    (process-send-string a2 "owt")
    (netproc-test-server-wait-received c2 "owt")
    (delete-process srv)
    (netproc-test-server-state "server deleted" srv)
    (netproc-test-note :socket-file (file-exists-p path))
    (netproc-test-note-try :connect-after
      (make-network-process :name "lc3" :family 'local :service path))
    (process-send-string c1 "still")
    (netproc-test-wait-for
     (equal (with-current-buffer (process-buffer a1) (buffer-string))
            "onestill"))
    (delete-process c1)
    (netproc-test-server-wait-gone a1)
    (delete-process a2)
    (netproc-test-server-wait-gone c2)))

(netproc-test-server-deftest netproc-test-server-local-path-bytes ()
  "A Unix socket server at a path that is no UTF-8: its addresses are bytes.
Such a path reaches the drain with every connection accepted there."
  (let* ((path (string-to-unibyte
                (concat (expand-file-name "sock" (netproc-test-tmpdir))
                        "\377")))
         (srv (make-network-process
               :name "lsrv" :server t :family 'local :service path
               :sentinel #'netproc-test-server-sentinel))
         (c1 (make-network-process :name "lc1" :family 'local :service path
                                   :filter #'netproc-test-server-filter))
         (a1 (netproc-test-server-accepted "lsrv" 0)))
    (netproc-test-server-note :local
                              (equal (process-contact srv :local) path)
                              (multibyte-string-p
                               (process-contact srv :local)))
    (netproc-test-server-contacts "server" srv)
    (netproc-test-server-contacts "accepted" a1)
    (process-send-string c1 "one")
    (netproc-test-wait-for
     (equal (with-current-buffer (process-buffer a1) (buffer-string))
            "one"))
    (delete-process c1)
    (netproc-test-server-wait-gone a1)
    (delete-process srv)))

;;;; Accepted connections

(netproc-test-server-deftest netproc-test-server-buffers ()
  "The buffer of an accepted connection follows the server's filter."
  (dolist (args (list (list :buffer "s-buf")
                      nil
                      (list :filter t)
                      (list :filter t :buffer "s-buf")
                      (list :filter #'netproc-test-server-filter
                            :buffer "s-buf")
                      (list :filter #'netproc-test-server-filter)))
    (let* ((srv (apply #'make-network-process :name "srv" :server t
                       :host "127.0.0.1" :service t args))
           (port (netproc-test-register (process-contact srv :service)
                                        '<SPORT>))
           (k (length (netproc-test-server-conns "srv")))
           (c (netproc-test-server-client "c" port))
           (acc (netproc-test-server-accepted "srv" k)))
      (netproc-test-server-note :buffer args (process-buffer acc)
                                (process-mark acc) (process-filter acc))
      (process-send-string c "data")
      (pcase (process-filter acc)
        ('t (netproc-test-settle 0.3))
        ('internal-default-process-filter
         (netproc-test-wait-for
          (equal (with-current-buffer (process-buffer acc) (buffer-string))
                 "data")))
        (_ (netproc-test-server-wait-received acc "data")))
      (when (process-buffer acc)
        (netproc-test-server-note
         :contents args (with-current-buffer (process-buffer acc)
                          (buffer-string))
         (process-mark acc)))
      (when (eq (process-filter acc) t)
        (set-process-filter acc nil)
        (netproc-test-wait-for
         (equal (with-current-buffer (process-buffer acc) (buffer-string))
                "data"))
        (netproc-test-server-note :after-filter-nil (process-mark acc)))
      (when (plist-get args :buffer)
        (netproc-test-note :server-buffer
                           (with-current-buffer "s-buf" (buffer-string))))
      (delete-process c)
      (netproc-test-server-wait-gone acc)
      (delete-process srv))))

(defun netproc-test-server-other-filter (proc string)
  "A second recording filter: (:other-filter NAME STRING MULTIBYTE-P).
NAME is the name of PROC."
  (netproc-test-server-note :other-filter proc string
                            (multibyte-string-p string)))

(defun netproc-test-server-seen-other-filter ()
  "Return non-nil once `netproc-test-server-other-filter' recorded a call."
  (assq :other-filter netproc-test--trace))

(netproc-test-server-deftest netproc-test-server-inheritance ()
  "What an accepted connection takes from its server, at accept time."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :filter #'netproc-test-server-filter
               :sentinel #'netproc-test-server-sentinel
               :plist (list 'a 1) :coding '(latin-1 . utf-8-unix)
               :noquery t :stop t))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>)))
    (continue-process srv)
    (let* ((c1 (netproc-test-server-client "c1" port :coding 'binary))
           (a1 (netproc-test-server-accepted "srv" 0)))
      (netproc-test-server-accessors "a1" a1)
      (netproc-test-server-state "a1" a1)
      (process-put a1 'b 2)
      (netproc-test-note :plists (process-plist a1) (process-plist srv))
      (process-send-string c1 "\303\251")
      (netproc-test-server-wait-length a1 2)
      ;; Later changes of the server reach only later connections.
      (set-process-filter srv #'netproc-test-server-other-filter)
      (set-process-sentinel srv nil)
      (set-process-plist srv (list 'c 3))
      (with-suppressed-warnings ((obsolete set-process-filter-multibyte))
        (set-process-filter-multibyte srv nil))
      (set-process-query-on-exit-flag srv t)
      (netproc-test-server-accessors "server changed" srv)
      (let* ((c2 (netproc-test-server-client "c2" port :coding 'binary))
             (a2 (netproc-test-server-accepted "srv" 1)))
        (netproc-test-server-accessors "a2" a2)
        (netproc-test-server-accessors "a1 unchanged" a1)
        (process-send-string c2 "\303\251")
        (netproc-test-wait-for (netproc-test-server-seen-other-filter))
        (process-send-string c1 "x")
        (netproc-test-server-wait-length a1 3)
        (delete-process c2)
        (netproc-test-server-wait-gone a2)
        (netproc-test-server-state "a2 after peer left" a2)
        (delete-process c1)
        (netproc-test-server-wait-gone a1)
        (delete-process srv)))))

(netproc-test-server-deftest netproc-test-server-log-calls ()
  "`:log' gets three arguments, before the connection's first sentinel."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :sentinel #'netproc-test-server-sentinel
               :log (lambda (&rest args)
                      (netproc-test-server-note :log-args (length args) args
                                                (processp (nth 1 args))))))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>))
         (c (netproc-test-server-client "c" port))
         (acc (netproc-test-server-accepted "srv")))
    (netproc-test-wait-for (assq :sentinel netproc-test--trace))
    (netproc-test-note :log-in-contact
                       (functionp (process-contact acc :log))
                       (functionp (process-contact srv :log)))
    (delete-process acc)
    (netproc-test-server-wait-gone c)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-server-stop-continue ()
  "A stopped server leaves clients in the backlog until `continue-process'."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :sentinel #'netproc-test-server-sentinel
               :log #'netproc-test-server-log))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>)))
    (netproc-test-server-note :stop (eq (stop-process srv) srv))
    (netproc-test-server-state "stopped" srv)
    (netproc-test-server-note-try :stop-by-name (stop-process "srv"))
    (netproc-test-server-note-try :continue-by-name (continue-process "srv"))
    (let ((clients (list (netproc-test-server-client "c1" port)
                         (netproc-test-server-client "c2" port)
                         (netproc-test-server-client "c3" port))))
      (netproc-test-server-note :clients (mapcar #'process-status clients))
      (netproc-test-settle 0.3)
      (netproc-test-server-note :accepted-while-stopped
                                (netproc-test-server-conns "srv"))
      (netproc-test-server-note :continue (eq (continue-process srv) srv))
      (netproc-test-server-state "continued" srv)
      (netproc-test-server-accepted "srv" 2)
      (netproc-test-wait-for
       (= 3 (cl-count-if (lambda (e) (eq (car e) :sentinel))
                         netproc-test--trace)))
      (dolist (acc (netproc-test-server-conns "srv"))
        (netproc-test-server-state "accepted" acc))
      (process-send-string (nth 2 clients) "third")
      (netproc-test-wait-for
       (equal (with-current-buffer
                  (process-buffer (nth 2 (netproc-test-server-conns "srv")))
                (buffer-string))
              "third"))
      (stop-process srv)
      (delete-process srv)
      (netproc-test-server-state "deleted while stopped" srv)
      (cl-loop for c in clients
               for acc in (netproc-test-server-conns "srv")
               do (delete-process c)
               (netproc-test-server-wait-gone acc)))))

(netproc-test-server-deftest netproc-test-server-stop-at-creation ()
  "`:stop t' makes a stopped server; the contact keeps `:stop'."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t :stop t
               :sentinel #'netproc-test-server-sentinel))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>))
         (c (netproc-test-server-client "c" port)))
    (netproc-test-server-state "created stopped" srv)
    (netproc-test-settle 0.3)
    (netproc-test-server-note :accepted (netproc-test-server-conns "srv"))
    (continue-process srv)
    (let ((acc (netproc-test-server-accepted "srv")))
      (netproc-test-wait-for (assq :sentinel netproc-test--trace))
      (netproc-test-server-state "accepted" acc)
      (netproc-test-server-state "continued" srv)
      (netproc-test-note :contact-stop (process-contact srv :stop)
                         (process-contact acc :stop))
      (delete-process c)
      (netproc-test-server-wait-gone acc)
      (delete-process srv))))

(netproc-test-server-deftest netproc-test-server-delete-server ()
  "Deleting the server leaves its connections working; new ones are refused."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :buffer "srv-buf"
               :sentinel #'netproc-test-server-sentinel
               :filter #'netproc-test-server-filter))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>))
         (c (netproc-test-server-client
             "c" port :filter #'netproc-test-server-filter
             :sentinel #'netproc-test-server-sentinel))
         (acc (netproc-test-server-accepted "srv")))
    (netproc-test-server-note :delete (delete-process srv))
    (netproc-test-server-state "server" srv)
    (netproc-test-server-state "accepted" acc)
    (process-send-string c "still there?")
    (netproc-test-server-wait-received acc "still there?")
    (process-send-string acc "yes")
    (netproc-test-server-wait-received c "yes")
    (netproc-test-server-note-try :new-client
      (make-network-process :name "late" :host "127.0.0.1" :service port))
    (netproc-test-server-note-try :send-to-deleted-server
      (process-send-string srv "x"))
    (netproc-test-server-note :server-buffer
                              (with-current-buffer "srv-buf" (buffer-string)))
    (delete-process acc)
    (netproc-test-server-wait-gone c)
    (netproc-test-server-state "client" c)))

(netproc-test-server-deftest netproc-test-server-delete-accepted ()
  "Deleting an accepted connection; the server goes on accepting."
  (let* ((srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :sentinel #'netproc-test-server-sentinel
               :filter #'netproc-test-server-echo))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>))
         (c1 (netproc-test-server-client
              "c1" port :filter #'netproc-test-server-filter
              :sentinel #'netproc-test-server-sentinel))
         (a1 (netproc-test-server-accepted "srv" 0)))
    (process-send-string c1 "echo me")
    (netproc-test-server-wait-received c1 "echo me")
    (delete-process a1)
    (netproc-test-server-state "a1" a1)
    (netproc-test-server-wait-gone c1)
    (netproc-test-server-state "c1" c1)
    (netproc-test-server-note :listed (netproc-test-server-conns "srv")
                              (netproc-test-names (process-list)))
    (let* ((c2 (netproc-test-server-client
                "c2" port :filter #'netproc-test-server-filter))
           (a2 (netproc-test-server-accepted "srv" 1)))
      (process-send-string c2 "again")
      (netproc-test-server-wait-received c2 "again")
      (netproc-test-server-state "a2" a2)
      (delete-process c2)
      (netproc-test-server-wait-gone a2)
      (delete-process srv))))

(netproc-test-server-deftest netproc-test-server-kill-buffers ()
  "Killing the buffer of a connection, then of the server, deletes them."
  (let* ((kill-buffer-query-functions nil)
         (srv (make-network-process
               :name "srv" :server t :host "127.0.0.1" :service t
               :buffer "srv-buf"
               :sentinel #'netproc-test-server-sentinel))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>))
         (c1 (netproc-test-server-client
              "c1" port :sentinel #'netproc-test-server-sentinel))
         (a1 (netproc-test-server-accepted "srv" 0))
         (c2 (netproc-test-server-client
              "c2" port :sentinel #'netproc-test-server-sentinel))
         (a2 (netproc-test-server-accepted "srv" 1)))
    (netproc-test-wait-for
     (= 2 (cl-count-if (lambda (e) (eq (car e) :sentinel))
                       netproc-test--trace)))
    (netproc-test-server-note :buffers (process-buffer a1) (process-buffer a2))
    (kill-buffer (process-buffer a1))
    (netproc-test-server-state "a1" a1)
    (netproc-test-server-note :buffer-after (process-buffer a1))
    (netproc-test-server-wait-gone c1)
    (kill-buffer "srv-buf")
    (netproc-test-server-state "server" srv)
    (netproc-test-server-state "a2" a2)
    (process-send-string c2 "alive")
    (netproc-test-wait-for
     (equal (with-current-buffer (process-buffer a2) (buffer-string))
            "alive"))
    (delete-process c2)
    (netproc-test-server-wait-gone a2)
    (netproc-test-server-state "a2 after peer left" a2)))

(netproc-test-server-deftest netproc-test-server-send-to-server ()
  "A listening server cannot be sent to."
  (let ((srv (make-network-process :name "srv" :server t :host "127.0.0.1"
                                   :service t)))
    (netproc-test-register (process-contact srv :service) '<SPORT>)
    (netproc-test-server-note-try :send-string (process-send-string srv "x"))
    (netproc-test-server-note-try :send-region
      (with-temp-buffer
        (insert "xyz")
        (process-send-region srv (point-min) (point-max))))
    (netproc-test-server-note-try :send-eof (process-send-eof srv))
    (netproc-test-server-note-try :send-by-name (process-send-string "srv" "x"))
    (netproc-test-server-state "after sends" srv)
    (delete-process srv)))

;;;; Errors

(netproc-test-server-deftest netproc-test-server-errors ()
  "Failures to listen: port in use, foreign address, socket paths, :nowait."
  (let* ((dir (netproc-test-tmpdir))
         (plain (expand-file-name "plain" dir))
         (srv (make-network-process :name "srv" :server t :service t
                                    :host "127.0.0.1"))
         (port (netproc-test-register (process-contact srv :service) '<SPORT>)))
    (with-temp-file plain (insert "not a socket"))
    (netproc-test-server-note-try :port-in-use
      (make-network-process :name "s2" :server t :host "127.0.0.1"
                            :service port :buffer "err-buf"))
    (netproc-test-note :error-buffer (and (get-buffer "err-buf") t))
    (netproc-test-server-note-try :port-in-use-any
      (make-network-process :name "s2" :server t :host "0.0.0.0"
                            :service port))
    (netproc-test-server-note-try :port-in-use-noreuse
      (make-network-process :name "s2" :server t :host "127.0.0.1"
                            :service port :reuseaddr nil))
    (netproc-test-server-note-try :local-vector-in-use
      (make-network-process :name "s2" :server t
                            :local (vector 127 0 0 1 port)))
    (netproc-test-server-note-try :not-local-address
      (make-network-process :name "s2" :server t :host "192.0.2.1"
                            :service t))
    (netproc-test-server-note-try :not-local-vector
      (make-network-process :name "s2" :server t
                            :local (vector 192 0 2 1 0)))
    (netproc-test-server-note-try :missing-directory
      (make-network-process :name "s2" :server t :family 'local
                            :service (expand-file-name "no/such/sock" dir)))
    (netproc-test-server-note-try :plain-file
      (make-network-process :name "s2" :server t :family 'local
                            :service plain))
    (netproc-test-server-note-try :nowait
      (make-network-process :name "s2" :server t :nowait t :service t))
    (netproc-test-server-note :list (netproc-test-names (process-list)))
    (netproc-test-server-state "first server" srv)
    (delete-process srv)))

(netproc-test-server-deftest netproc-test-server-stale-socket ()
  "A deleted Unix socket server leaves its file; binding it again fails."
  (let* ((path (expand-file-name "sock" (netproc-test-tmpdir)))
         (srv (make-network-process :name "lsrv" :server t :family 'local
                                    :service path)))
    (delete-process srv)
    (netproc-test-note :file-left (file-exists-p path))
    (netproc-test-server-note-try :rebind
      (make-network-process :name "lsrv" :server t :family 'local
                            :service path))
    (delete-file path)
    (let ((again (make-network-process :name "lsrv" :server t :family 'local
                                       :service path)))
      (netproc-test-server-state "after removing the file" again)
      (delete-process again))))

(netproc-test-server-deftest netproc-test-server-reuseaddr ()
  "With a port in TIME_WAIT, only `:reuseaddr nil' fails to listen again."
  (dolist (reuse '(nil default t))
    (let* ((s1 (make-network-process :name "r1" :server t :host "127.0.0.1"
                                     :service t :filter #'ignore
                                     :sentinel #'ignore))
           (port (netproc-test-register (process-contact s1 :service)
                                        '<SPORT>))
           (k (length (netproc-test-server-conns "r1")))
           (c (make-network-process :name "rc" :host "127.0.0.1" :service port
                                    :sentinel #'ignore))
           (acc (netproc-test-server-accepted "r1" k)))
      ;; The server's side closes first, so its port is left in TIME_WAIT.
      (delete-process acc)
      (netproc-test-server-wait-gone c)
      (delete-process s1)
      (let ((r (netproc-test-try
                 (apply #'make-network-process :name "r2" :server t
                        :host "127.0.0.1" :service port :filter #'ignore
                        (and (not (eq reuse 'default))
                             (list :reuseaddr reuse))))))
        (netproc-test-server-note :relisten reuse
                                  (if (eq (car r) :value)
                                      (process-status (cadr r))
                                    r))
        (when (eq (car r) :value)
          (netproc-test-server-note :contact (process-contact (cadr r) t))
          (delete-process (cadr r)))))))

(netproc-test-server-deftest netproc-test-server-relisten-after-delete ()
  "A deleted server's port can be listened on again at once."
  (let ((failures nil))
    (dotimes (_ 20)
      (let* ((srv (make-network-process :name "srv" :server t
                                        :host "127.0.0.1" :service t))
             (port (process-contact srv :service)))
        (delete-process srv)
        (let ((r (netproc-test-try
                   (make-network-process :name "srv" :server t
                                         :host "127.0.0.1" :service port))))
          (if (eq (car r) :value)
              (delete-process (cadr r))
            (push (cadr r) failures)))))
    (netproc-test-note :failures (length failures) (delete-dups failures))))

;;;; netproc alone: other ends of other kinds

(defun netproc-test-server--payload (size seed)
  "Return a unibyte string of SIZE bytes of every value, varied by SEED."
  (let ((s (make-string size 0)))
    (dotimes (i size)
      (aset s i (% (+ (* i 7) (* seed 13) (/ i 251)) 256)))
    (string-to-unibyte s)))

(defun netproc-test-server--bytes (string)
  "Return STRING as a unibyte string of the same bytes."
  (if (multibyte-string-p string) (string-to-unibyte string) string))

(defun netproc-test-server--diff (got want)
  "Return how GOT differs from WANT, byte for byte; nil if it does not."
  (let ((g (netproc-test-server--bytes got))
        (w (netproc-test-server--bytes want)))
    (unless (string= g w)
      (list :got-length (length g) :want-length (length w)
            :first-difference-at
            (1- (abs (compare-strings g nil nil w nil nil)))))))

(defun netproc-test-server--diffs (gots wants)
  "Return the differences of the strings GOTS and WANTS, by index."
  (cl-loop for g in gots for w in wants for i from 0
           for d = (netproc-test-server--diff g w)
           when d collect (cons i d)))

(defun netproc-test-server--echo-server (name &rest args)
  "Make a netproc echo server NAME on 127.0.0.1; ARGS come first.
Unless ARGS say otherwise, its connections send back every byte."
  (apply #'funcall 'netproc-make-network-process
         (append args
                 (list :name name :server t :host "127.0.0.1" :service t
                       :coding 'binary :sentinel #'ignore
                       :filter (lambda (p s)
                                 (funcall 'netproc-send-string p s))))))

(defun netproc-test-server--conns-of (server-name)
  "Return the live netprocs accepted by SERVER-NAME."
  (cl-remove-if-not
   (lambda (p)
     (and (string-prefix-p (concat server-name " <") (funcall 'netproc-name p))
          (funcall 'netproc-live-p p)))
   (funcall 'netproc-list)))

(defun netproc-test-server--helper (name command &optional filter)
  "Start COMMAND as helper process NAME with binary pipes; return it.
FILTER, if non-nil, is its filter.  The harness deletes it at the end."
  (let ((proc (make-process :name name :command command :noquery t
                            :connection-type 'pipe :coding 'binary
                            :sentinel #'ignore
                            :filter (or filter #'ignore))))
    (process-put proc 'netproc-test-helper t)
    (push proc netproc-test--helpers)
    proc))

(ert-deftest netproc-test-server-netproc-builtin-clients ()
  "Builtin clients exchange data with a netproc server, byte for byte."
  (skip-unless (netproc-test-available-p))
  (netproc-test-with-cleanup
    (let* ((srv (netproc-test-server--echo-server "echo"))
           (port (funcall 'netproc-contact srv :service))
           (got (make-vector 3 ""))
           (payloads (mapcar (lambda (i) (netproc-test-server--payload
                                          (* (1+ i) 40000) i))
                             '(0 1 2)))
           (clients
            (cl-loop for i below 3
                     collect
                     (let ((i i))
                       (make-network-process
                        :name (format "bc%d" i) :host "127.0.0.1"
                        :service port :coding 'binary :sentinel #'ignore
                        :filter (lambda (_p s)
                                  (aset got i (concat (aref got i) s))))))))
      (cl-loop for c in clients for data in payloads
               do (process-send-string c data))
      (netproc-test-wait-until
       (lambda () (cl-every #'identity
                            (cl-mapcar (lambda (g d) (>= (length g) (length d)))
                                       got payloads)))
       10 'echoed)
      (let ((differences (netproc-test-server--diffs (append got nil)
                                                     payloads)))
        (should-not differences))
      (should (= 3 (length (netproc-test-server--conns-of "echo"))))
      (mapc #'delete-process clients)
      (netproc-test-wait-until
       (lambda () (null (netproc-test-server--conns-of "echo"))) 5
       'connections-closed)
      (funcall 'delete-netproc srv))))

(ert-deftest netproc-test-server-netproc-against-builtin-server ()
  "Netproc clients exchange data with a builtin server, byte for byte."
  (skip-unless (netproc-test-available-p))
  (netproc-test-with-cleanup
    (let* ((srv (make-network-process
                 :name "becho" :server t :host "127.0.0.1" :service t
                 :coding 'binary :sentinel #'ignore :noquery t
                 :filter (lambda (p s) (process-send-string p s))))
           (port (process-contact srv :service))
           (got (make-vector 3 ""))
           (payloads (mapcar (lambda (i) (netproc-test-server--payload
                                          (* (1+ i) 40000) (+ i 5)))
                             '(0 1 2)))
           (clients
            (cl-loop for i below 3
                     collect
                     (let ((i i))
                       (funcall 'netproc-make-network-process
                                :name (format "nc%d" i) :host "127.0.0.1"
                                :service port :coding 'binary
                                :sentinel #'ignore
                                :filter (lambda (_p s)
                                          (aset got i (concat (aref got i)
                                                              s))))))))
      (cl-loop for c in clients for data in payloads
               do (funcall 'netproc-send-string c data))
      (netproc-test-wait-until
       (lambda () (cl-every #'identity
                            (cl-mapcar (lambda (g d) (>= (length g) (length d)))
                                       got payloads)))
       10 'echoed)
      (let ((differences (netproc-test-server--diffs (append got nil)
                                                     payloads)))
        (should-not differences))
      (mapc (lambda (c) (funcall 'delete-netproc c)) clients)
      (netproc-test-wait-until
       (lambda ()
         (null (cl-remove-if-not
                (lambda (p) (and (string-prefix-p "becho <" (process-name p))
                                 (process-live-p p)))
                (process-list))))
       5 'builtin-connections-closed)
      (delete-process srv))))

(ert-deftest netproc-test-server-netproc-socat-client ()
  "A socat client and a netproc server exchange data both ways, intact."
  (skip-unless (netproc-test-available-p))
  (skip-unless (executable-find "socat"))
  (netproc-test-with-cleanup
    (let* ((greeting "hello from netproc\r\n\0\377")
           (srv (netproc-test-server--echo-server
                 "echo"
                 :sentinel (lambda (p m)
                             (when (string-prefix-p "open from" m)
                               (funcall 'netproc-send-string p greeting)))))
           (port (funcall 'netproc-contact srv :service))
           (payload (netproc-test-server--payload 200000 3))
           (out "")
           (socat (netproc-test-server--helper
                   "socat" (list "socat" "-" (format "TCP:127.0.0.1:%d" port))
                   (lambda (_p s) (setq out (concat out s))))))
      (netproc-test-wait-until
       (lambda () (equal out greeting)) 5 'greeting)
      (process-send-string socat payload)
      (netproc-test-wait-until
       (lambda () (>= (length out) (+ (length greeting) (length payload))))
       10 'echoed)
      (let ((difference (netproc-test-server--diff
                         out (concat greeting payload))))
        (should-not difference))
      (process-send-eof socat)
      (netproc-test-wait-until (lambda () (not (process-live-p socat)))
                               5 'socat-exits)
      (should (equal (process-exit-status socat) 0))
      (netproc-test-wait-until
       (lambda () (null (netproc-test-server--conns-of "echo"))) 5
       'connection-closed)
      (funcall 'delete-netproc srv))))

(defun netproc-test-server--fd-soft-limit ()
  "Return the soft limit of open descriptors of this Emacs, or nil."
  (with-temp-buffer
    (insert-file-contents "/proc/self/limits")
    (when (re-search-forward
           "^Max open files +\\([0-9]+\\|unlimited\\)" nil t)
      (let ((v (match-string 1)))
        (if (equal v "unlimited") most-positive-fixnum
          (string-to-number v))))))

(defun netproc-test-server--many-clients (n &optional while-open)
  "Have N netproc clients of one netproc server echo distinct payloads.
Check nothing is lost or crossed, call WHILE-OPEN (if any) while every
connection is open, then close them all.  Run inside the harness."
  (let* ((opened 0) (closed 0) (echoed 0)
         (srv (netproc-test-server--echo-server
               "many" :server (min n 4096)
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
                         ;; Count completions as they happen, so waiting
                         ;; costs nothing per connection.
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
    (when while-open
      (funcall while-open))
    (should-not (netproc-test-server--diffs (append got nil)
                                            (append payloads nil)))
    (dolist (c clients) (funcall 'delete-netproc c))
    (netproc-test-wait-until (lambda () (= closed n)) 60 'all-closed)
    (should (null (netproc-test-server--conns-of "many")))
    (funcall 'delete-netproc srv)))

(ert-deftest netproc-test-server-netproc-thousand-clients ()
  "A netproc server holds 1,000 concurrent netproc clients, nothing crossed."
  (skip-unless (netproc-test-available-p))
  ;; The engine raises the soft limit to the hard one when it starts.
  (funcall 'netproc--ensure-engine)
  (skip-unless (>= (or (netproc-test-server--fd-soft-limit) 0) 2100))
  (let ((netproc-test-side-timeout 60)
        (netproc-test-leak-grace 5))
    (netproc-test-with-cleanup
      (netproc-test-server--many-clients 1000))))

(ert-deftest netproc-test-server-netproc-hostile-peers ()
  "Peers that vanish, reset or flood do not stop a netproc server serving."
  (skip-unless (netproc-test-available-p))
  (let ((netproc-test-side-timeout 40))
    (netproc-test-with-cleanup
      (let* ((flood-size (* 2 1024 1024))
             (srv (netproc-test-server--echo-server "srv" :server 64
                                                    :filter t))
             (port (funcall 'netproc-contact srv :service))
             (perl-connect
              (concat "use IO::Socket::INET; my $s = IO::Socket::INET->new("
                      "PeerAddr => '127.0.0.1', PeerPort => " (number-to-string port)
                      ") or die \"connect: $!\";"))
             (helpers nil))
        ;; Connect and vanish at once, several times.
        (dotimes (i 5)
          (push (netproc-test-server--helper
                 (format "vanish%d" i) (list "perl" "-e" perl-connect))
                helpers))
        ;; Connect, then reset.
        (dotimes (_ 5)
          (let ((c (make-network-process :name "rst" :host "127.0.0.1"
                                         :service port :sentinel #'ignore)))
            (set-network-process-option c :linger 0)
            (delete-process c)))
        ;; Connect, send half a line, vanish.
        (push (netproc-test-server--helper
               "partial" (list "perl" "-e"
                               (concat perl-connect
                                       "print $s \"half a li\"; exit 0;")))
              helpers)
        ;; Flood before any filter reads (the server's filter is t).
        (push (netproc-test-server--helper
               "flood" (list "perl" "-e"
                             (concat perl-connect
                                     (format "print $s ('x' x %d); close $s;"
                                             flood-size))))
              helpers)
        (netproc-test-wait-until
         (lambda () (cl-notany #'process-live-p (cdr helpers))) 10
         'quick-peers-exit)
        (netproc-test-settle 0.5)
        ;; Read what the flood left: every byte, then the close.
        (let* ((count 0)
               (counter (lambda (_p s) (cl-incf count (length s)))))
          (funcall 'set-netproc-filter srv counter)
          (dolist (p (netproc-test-server--conns-of "srv"))
            (funcall 'set-netproc-filter p counter))
          (netproc-test-wait-until
           (lambda () (and (= count (+ flood-size (length "half a li")))
                           (not (process-live-p (car helpers)))))
           15 'flood-read)
          (should (equal (process-exit-status (car helpers)) 0)))
        (netproc-test-wait-until
         (lambda () (null (netproc-test-server--conns-of "srv"))) 5
         'hostile-connections-closed)
        (should (eq (funcall 'netproc-status srv) 'listen))
        ;; A well-behaved client, builtin then netproc, is still served.
        (funcall 'set-netproc-filter srv
                 (lambda (p s) (funcall 'netproc-send-string p s)))
        (let* ((got "")
               (c (make-network-process
                   :name "good" :host "127.0.0.1" :service port
                   :coding 'binary :sentinel #'ignore
                   :filter (lambda (_p s) (setq got (concat got s))))))
          (process-send-string c "ping")
          (netproc-test-wait-until (lambda () (equal got "ping")) 5 'pong)
          (delete-process c))
        (let* ((got "")
               (c (funcall 'netproc-make-network-process
                           :name "good" :host "127.0.0.1" :service port
                           :coding 'binary :sentinel #'ignore
                           :filter (lambda (_p s) (setq got (concat got s))))))
          (funcall 'netproc-send-string c "ping2")
          (netproc-test-wait-until (lambda () (equal got "ping2")) 5 'pong2)
          (funcall 'delete-netproc c))
        (netproc-test-wait-until
         (lambda () (null (netproc-test-server--conns-of "srv"))) 5
         'good-connections-closed)
        (funcall 'delete-netproc srv)))))

(defun netproc-test-server-as-nobody (make)
  "Return what MAKE gives for a server on port 80, run as user nobody.
Root may bind any port, so the refusal needs an unprivileged child."
  (let* ((lisp-dir (file-name-directory (locate-library "netproc")))
         (form `(progn
                  (require 'netproc)
                  (princ (format "%S" (condition-case err
                                          (funcall ',make :name "s" :server t
                                                   :service 80
                                                   :host "127.0.0.1")
                                        (error err)))))))
    (with-temp-buffer
      (call-process "setpriv" nil t nil "--reuid=65534" "--regid=65534"
                    "--clear-groups"
                    (expand-file-name invocation-name invocation-directory)
                    "-Q" "--batch" "-L" lisp-dir
                    "--eval" (prin1-to-string form))
      (buffer-string))))

(ert-deftest netproc-test-server-permission-denied ()
  "A port the user may not bind gives the builtin's error."
  (skip-unless (and (executable-find "setpriv") (= (user-uid) 0)))
  (let ((builtin (netproc-test-server-as-nobody 'make-network-process))
        (netproc (netproc-test-server-as-nobody 'netproc-make-network-process)))
    (should (equal builtin
                   "(file-error \"Cannot bind server socket\" \"Permission denied\")"))
    (should (equal netproc builtin))))

;;;; Closing from handlers

(defun netproc-test-server--builtin-client (port)
  "Connect a builtin client to 127.0.0.1 PORT; it notes when it ends.
Builtin on both sides: its sentinel runs in any wait, netproc's too."
  (make-network-process :name "bc" :host "127.0.0.1" :service port
                        :noquery t
                        :sentinel (lambda (p e) (process-put p 'ended e))))

(defun netproc-test-server--client-ended (client)
  "Return the sentinel message that ended the builtin CLIENT, or nil."
  (process-get client 'ended))

(defun netproc-test-server--client-delete (client)
  "Delete the builtin CLIENT."
  (delete-process client))

(netproc-test-server-deftest netproc-test-server-sentinel-deletes-then-waits ()
  "A sentinel deletes the connection it accepted, then waits in it.
The peer sees the end during that wait, as it would at once had the
sentinel not waited."
  (let* ((client nil)
         (seen :no-sentinel)
         (srv (make-network-process
               :name "dw" :server t :host "127.0.0.1" :service t :noquery t
               :sentinel
               (lambda (proc event)
                 (when (string-prefix-p "open from" event)
                   (delete-process proc)
                   (let ((end (+ (float-time) 3)))
                     (while (and (not (netproc-test-server--client-ended
                                       client))
                                 (< (float-time) end))
                       (sleep-for 0.02)))
                   (setq seen (netproc-test-server--client-ended client))))))
         (port (process-contact srv :service)))
    (setq client (netproc-test-server--builtin-client port))
    (netproc-test-wait-for (not (eq seen :no-sentinel)) 5)
    (netproc-test-note :client-saw-during-the-wait seen)
    (netproc-test-server--client-delete client)
    (delete-process srv)))

(provide 'netproc-server-tests)
;;; netproc-server-tests.el ends here
