;;; netproc-compat-clients-tests.el --- Real clients over netproc-compat-mode  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Code nobody here wrote, run unchanged with `netproc-compat-mode' on:
;; url.el and `open-network-stream' against nginx, and websocket.el's
;; client and server against websocket.el in a second Emacs.
;;
;; nginx runs from the test itself: on 127.0.0.1, on a free port, with
;; its configuration (test/compat/nginx.conf.in), logs, PID file and
;; files in a temporary directory, in the foreground as a child of this
;; Emacs (under `timeout', in case this Emacs dies), and is stopped by
;; the PID it wrote.  The websocket peer is test/compat/websocket-peer.el
;; in a batch Emacs without the mode: the other end is websocket.el over
;; builtin processes.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'url)
(require 'url-http)
(require 'netproc-test-lib)
(require 'netproc-compat)
(require 'netproc-compat-tests)

(defconst netproc-compat-test--files
  (expand-file-name "compat/" (file-name-directory
                               (or load-file-name buffer-file-name)))
  "Where the helper files of these tests are.")

;;;; nginx

(defun netproc-compat-test-nginx-program ()
  "Return the nginx executable, or nil if nginx is not installed."
  (or (executable-find "nginx")
      (and (file-executable-p "/usr/sbin/nginx") "/usr/sbin/nginx")))

(defun netproc-compat-test--free-port ()
  "Return a loopback port that was free a moment ago."
  (let* ((netproc-compat-inhibit t)
         (server (make-network-process :name "netproc-test-free-port"
                                       :server t :host "127.0.0.1"
                                       :service t :noquery t))
         (port (process-contact server :service)))
    (delete-process server)
    port))

(defun netproc-compat-test--write-file (file text)
  "Write TEXT, a unibyte string, to FILE as it is."
  (let ((coding-system-for-write 'binary))
    (write-region text nil file nil 'silent)))

(defun netproc-compat-test--file-bytes (file)
  "Return the bytes of FILE as a unibyte string."
  (with-temp-buffer
    (set-buffer-multibyte nil)
    (insert-file-contents-literally file)
    (buffer-string)))

(defconst netproc-compat-test-chunk-parts 24
  "How many times the chunked page includes its part.")

(defun netproc-compat-test--write-site (www)
  "Write the files nginx serves into the directory WWW."
  (make-directory (expand-file-name "chunked" www) t)
  (netproc-compat-test--write-file (expand-file-name "small.txt" www)
                                   "hello from nginx\n")
  (let ((rc (call-process "head" nil
                          (list :file (expand-file-name "big.bin" www)) nil
                          "-c" (number-to-string (* 10 1024 1024))
                          "/dev/urandom")))
    (unless (eql rc 0)
      (error "Could not write big.bin: %S" rc)))
  (netproc-compat-test--write-file
   (expand-file-name "chunked/part.txt" www)
   (apply #'concat (mapcar (lambda (i) (format "line %05d of the part\n" i))
                           (number-sequence 1 3000))))
  (netproc-compat-test--write-file
   (expand-file-name "chunked/page.html" www)
   (apply #'concat (make-list netproc-compat-test-chunk-parts
                              "<!--# include file=\"part.txt\" -->"))))

(defun netproc-compat-test--write-conf (dir port)
  "Write DIR/nginx.conf for nginx on PORT, from the template; return it."
  (let ((conf (expand-file-name "nginx.conf" dir))
        (text (with-temp-buffer
                (insert-file-contents
                 (expand-file-name "nginx.conf.in" netproc-compat-test--files))
                (buffer-string))))
    (dolist (pair `(("@DIR@" . ,(directory-file-name dir))
                    ("@PORT@" . ,(number-to-string port))
                    ("@USER@" . ,(if (zerop (user-uid)) "user root;" ""))))
      (setq text (replace-regexp-in-string (car pair) (cdr pair) text t t)))
    (netproc-compat-test--write-file conf text)
    conf))

(defun netproc-compat-test--accepting-p (port)
  "Return non-nil if something accepts connections on loopback PORT."
  (condition-case nil
      (let* ((netproc-compat-inhibit t)
             (probe (make-network-process :name "netproc-test-probe"
                                          :host "127.0.0.1" :service port
                                          :noquery t :sentinel #'ignore)))
        (delete-process probe)
        t)
    (file-error nil)))

(cl-defstruct (netproc-compat-test-nginx
               (:constructor netproc-compat-test--make-nginx)
               (:copier nil))
  "An nginx started by a test."
  process dir port)

(defvar netproc-compat-test-nginx-lifetime 300
  "Seconds after which an nginx started by a test is stopped in any case.")

(defun netproc-compat-test-nginx-start ()
  "Start nginx on a free loopback port; return it once it accepts."
  (let* ((dir (netproc-test-tmpdir))
         (port (netproc-compat-test--free-port))
         (conf (netproc-compat-test--write-conf dir port)))
    (make-directory (expand-file-name "tmp" dir))
    (netproc-compat-test--write-site (expand-file-name "www" dir))
    (let ((process (make-process
                    :name "netproc-test-nginx" :noquery t
                    :connection-type 'pipe :sentinel #'ignore
                    :buffer (generate-new-buffer " *netproc-test-nginx*")
                    ;; Should this Emacs die, nginx does not outlive
                    ;; the limit.
                    :command (list "timeout"
                                   (number-to-string
                                    netproc-compat-test-nginx-lifetime)
                                   (netproc-compat-test-nginx-program)
                                   "-p" (file-name-as-directory dir)
                                   "-c" conf
                                   "-e" (expand-file-name "error.log" dir)))))
      (process-put process 'netproc-test-helper t)
      (push process netproc-test--helpers)
      (netproc-test-wait-until
       (lambda () (or (not (process-live-p process))
                      (netproc-compat-test--accepting-p port)))
       10 'nginx-accepts)
      (unless (process-live-p process)
        (error "The nginx server did not start: %s"
               (with-current-buffer (process-buffer process) (buffer-string))))
      (netproc-compat-test--make-nginx :process process :dir dir :port port))))

(defun netproc-compat-test-nginx-pid (nginx)
  "Return the PID NGINX wrote in its PID file."
  (string-to-number
   (netproc-compat-test--file-bytes
    (expand-file-name "nginx.pid" (netproc-compat-test-nginx-dir nginx)))))

(defun netproc-compat-test-nginx-stop (nginx)
  "Stop NGINX by the PID it wrote, and wait for it to exit."
  (let ((process (netproc-compat-test-nginx-process nginx))
        (pid (netproc-compat-test-nginx-pid nginx)))
    (when (and (> pid 0) (process-live-p process))
      ;; nginx runs in the foreground under `timeout', which exits with it.
      (signal-process pid 'TERM)
      (ignore-errors
        (netproc-test-wait-until (lambda () (not (process-live-p process)))
                                 10 'nginx-exits)))
    (when (process-live-p process)
      (delete-process process))))

(defun netproc-compat-test-nginx-url (nginx path)
  "Return the URL of PATH on NGINX."
  (format "http://127.0.0.1:%d/%s" (netproc-compat-test-nginx-port nginx) path))

(defun netproc-compat-test-nginx-log (nginx)
  "Return the lines of NGINX's access log: (CONNECTION REQUESTS REQUEST)."
  (let ((text (netproc-compat-test--file-bytes
               (expand-file-name "access.log"
                                 (netproc-compat-test-nginx-dir nginx)))))
    (mapcar (lambda (line)
              (and (string-match "\\`\\([0-9]+\\) \\([0-9]+\\) \"\\([^\"]*\\)\""
                                 line)
                   (list (string-to-number (match-string 1 line))
                         (string-to-number (match-string 2 line))
                         (match-string 3 line))))
            (split-string text "\n" t))))

(defun netproc-compat-test--forget-url-connections ()
  "Close url.el's connections kept open for reuse."
  (maphash (lambda (_key conns)
             (dolist (conn conns)
               (set-process-sentinel conn #'ignore)
               (delete-process conn)))
           url-http-open-connections)
  (clrhash url-http-open-connections))

(defmacro netproc-compat-test-with-nginx (var &rest body)
  "Run BODY with VAR bound to a running nginx and the mode on.
BODY runs under `netproc-test-with-cleanup'; nginx is stopped after it,
and url.el forgets the connections it kept."
  (declare (indent 1) (debug (symbolp body)))
  `(progn
     (unless (netproc-compat-test-nginx-program)
       (ert-skip "nginx is not installed"))
     (netproc-test-with-cleanup
       (let ((,var (netproc-compat-test-nginx-start))
             (url-proxy-services nil)
             (url-request-method nil)
             (url-request-data nil)
             (url-request-extra-headers nil))
         (unwind-protect
             (netproc-compat-test-with-mode
               (unwind-protect (progn ,@body)
                 (netproc-compat-test--forget-url-connections)))
           (netproc-compat-test-nginx-stop ,var))))))

;;;; url.el

(defun netproc-compat-test--response (buffer)
  "Return (STATUS HEADERS BODY CONNECTION) of url.el's response BUFFER.
BODY is a unibyte string; CONNECTION the process or netproc it came on."
  (with-current-buffer buffer
    (let ((body (buffer-substring-no-properties
                 (1+ url-http-end-of-headers) (point-max))))
      (list url-http-response-status
            (buffer-substring-no-properties (point-min) url-http-end-of-headers)
            (if (multibyte-string-p body)
                (encode-coding-string body 'binary)
              body)
            url-http-process))))

(defun netproc-compat-test--fetch (nginx path)
  "Fetch PATH from NGINX with `url-retrieve-synchronously'; return the response.
See `netproc-compat-test--response'."
  (let ((buffer (url-retrieve-synchronously
                 (netproc-compat-test-nginx-url nginx path) t t 30)))
    (should buffer)
    (prog1 (netproc-compat-test--response buffer)
      (kill-buffer buffer))))

(defun netproc-compat-test--site-file (nginx path)
  "Return the bytes of PATH as NGINX has it on disk."
  (netproc-compat-test--file-bytes
   (expand-file-name path (expand-file-name
                           "www" (netproc-compat-test-nginx-dir nginx)))))

(ert-deftest netproc-compat-url-retrieve-synchronously-small ()
  "`url-retrieve-synchronously' over a netproc fetches a small file."
  (netproc-compat-test-with-nginx nginx
    (pcase-let ((`(,status ,_ ,body ,conn)
                 (netproc-compat-test--fetch nginx "small.txt")))
      (should (netprocp conn))
      (should (eql status 200))
      (should (equal body "hello from nginx\n")))
    (should (equal (mapcar #'caddr (netproc-compat-test-nginx-log nginx))
                   '("GET /small.txt HTTP/1.1")))))

(ert-deftest netproc-compat-url-retrieve-async ()
  "`url-retrieve' over a netproc calls back with the file."
  (netproc-compat-test-with-nginx nginx
    (let* ((done nil)
           (buffer (url-retrieve
                    (netproc-compat-test-nginx-url nginx "small.txt")
                    (lambda (status) (setq done (list status)))
                    nil t t)))
      (should (netprocp (get-buffer-process buffer)))
      (netproc-test-wait-for done 30)
      (should (equal done '(nil)))
      (pcase-let ((`(,status ,_ ,body ,conn)
                   (netproc-compat-test--response buffer)))
        (should (netprocp conn))
        (should (eql status 200))
        (should (equal body "hello from nginx\n")))
      (kill-buffer buffer))))

(ert-deftest netproc-compat-url-big-file ()
  "A 10 MiB file fetched by url.el over a netproc has the right SHA-256."
  (netproc-compat-test-with-nginx nginx
    (pcase-let ((`(,status ,_ ,body ,conn)
                 (netproc-compat-test--fetch nginx "big.bin")))
      (should (netprocp conn))
      (should (eql status 200))
      (should (= (length body) (* 10 1024 1024)))
      (should (equal (secure-hash 'sha256 body)
                     (secure-hash 'sha256 (netproc-compat-test--site-file
                                           nginx "big.bin")))))))

(ert-deftest netproc-compat-url-chunked ()
  "A chunked response reaches url.el over a netproc whole."
  (netproc-compat-test-with-nginx nginx
    (pcase-let ((`(,status ,headers ,body ,conn)
                 (netproc-compat-test--fetch nginx "chunked/page.html")))
      (should (netprocp conn))
      (should (eql status 200))
      (should (string-match-p "^Transfer-Encoding: chunked" headers))
      (should (equal (secure-hash 'sha256 body)
                     (secure-hash 'sha256
                                  (apply #'concat
                                         (make-list
                                          netproc-compat-test-chunk-parts
                                          (netproc-compat-test--site-file
                                           nginx "chunked/part.txt")))))))))

(ert-deftest netproc-compat-url-keep-alive ()
  "The url.el client sends its next request on the kept-alive netproc."
  (netproc-compat-test-with-nginx nginx
    (let* ((first (netproc-compat-test--fetch nginx "small.txt"))
           (second (netproc-compat-test--fetch nginx "chunked/page.html"))
           (log (netproc-compat-test-nginx-log nginx)))
      (should (netprocp (nth 3 first)))
      (should (eq (nth 3 first) (nth 3 second)))
      (should (eql (nth 0 second) 200))
      (should (= (length log) 2))
      ;; One connection, its first request then its second.
      (should (eql (car (nth 0 log)) (car (nth 1 log))))
      (should (equal (mapcar #'cadr log) '(1 2))))))

(ert-deftest netproc-compat-url-https-stays-builtin ()
  "The url.el client opens a builtin connection for https, mode or not.
The peer speaks no TLS; the handshake is abandoned."
  (netproc-test-with-cleanup
    (let ((peer (netproc-test-peer-start))
          (url-proxy-services nil))
      (netproc-compat-test-with-mode
        (let* ((buffer (url-retrieve
                        (format "https://127.0.0.1:%d/"
                                (netproc-test-peer-port peer))
                        #'ignore nil t t))
               (conn (buffer-local-value 'url-http-process buffer)))
          (should (eq (type-of conn) 'process))
          (should-not (netproc-list))
          (netproc-test-peer-conn peer)
          (set-process-sentinel conn #'ignore)
          (delete-process conn)
          (netproc-compat-test--forget-url-connections)
          (kill-buffer buffer))))))

;;;; open-network-stream

(defmacro netproc-compat-test-without-mode (&rest body)
  "Run BODY with `netproc-compat-mode' off, and turn it on again after."
  (declare (indent 0) (debug t))
  `(progn
     (netproc-compat-mode -1)
     (unwind-protect (progn ,@body)
       (netproc-compat-mode 1))))

(defun netproc-compat-test--plain-get (nginx nowait)
  "GET small.txt from NGINX over `open-network-stream', :nowait if NOWAIT.
The stream has a buffer and the default filter and sentinel.  Return
whether it is a netproc, its status right after opening, and its
buffer's text at the end, without the date nginx gives."
  (let* ((buffer (generate-new-buffer "ons"))
         (stream (open-network-stream
                  "ons" buffer "127.0.0.1"
                  (netproc-compat-test-nginx-port nginx)
                  :type 'plain :nowait nowait))
         (opened (process-status stream)))
    (netproc-test-wait-for (not (eq (process-status stream) 'connect)))
    (process-send-string stream "GET /small.txt HTTP/1.0\r\nHost: x\r\n\r\n")
    (netproc-test-wait-for (eq (process-status stream) 'closed) 10)
    (prog1 (list (netprocp stream) opened
                 (with-current-buffer buffer
                   (replace-regexp-in-string "^Date: .*" "Date: -"
                                             (buffer-string))))
      (delete-process stream)
      (kill-buffer buffer))))

(defun netproc-compat-test--plain-get-both (nginx nowait)
  "Check a plain GET from NGINX, :nowait if NOWAIT, against the builtin's."
  (let ((builtin (netproc-compat-test-without-mode
                   (netproc-compat-test--plain-get nginx nowait)))
        (netproc (netproc-compat-test--plain-get nginx nowait)))
    (should-not (car builtin))
    (should (car netproc))
    (should (string-match-p "\\`HTTP/1.1 200 OK\r?\n" (nth 2 netproc)))
    (should (string-match-p "\r?\n\r?\nhello from nginx\n" (nth 2 netproc)))
    (should (equal (cdr netproc) (cdr builtin)))))

(ert-deftest netproc-compat-open-network-stream-plain ()
  "`open-network-stream' :type plain makes a netproc that acts as the builtin."
  (netproc-compat-test-with-nginx nginx
    (netproc-compat-test--plain-get-both nginx nil)))

(ert-deftest netproc-compat-open-network-stream-plain-nowait ()
  "As `netproc-compat-open-network-stream-plain', with :nowait t."
  (netproc-compat-test-with-nginx nginx
    (netproc-compat-test--plain-get-both nginx t)))

;;;; websocket.el

(defun netproc-compat-test-websocket-dir ()
  "Return the directory of websocket.el, as installed by Debian, or nil."
  (car (last (file-expand-wildcards
              "/usr/share/emacs/site-lisp/elpa/websocket-*"))))

(defun netproc-compat-test--load-websocket ()
  "Load websocket.el and the peer's frames; skip the test without them."
  (let ((dir (netproc-compat-test-websocket-dir)))
    (unless dir
      (ert-skip "websocket.el (Debian's elpa-websocket) is not installed"))
    (add-to-list 'load-path dir)
    (require 'websocket)
    (load (expand-file-name "websocket-peer.el" netproc-compat-test--files)
          nil t)))

(declare-function websocket-open "websocket")
(declare-function websocket-openp "websocket")
(declare-function websocket-close "websocket")
(declare-function websocket-conn "websocket")
(declare-function websocket-server "websocket")
(declare-function websocket-server-close "websocket")
(declare-function netproc-compat-ws-peer-frames "websocket-peer")
(declare-function netproc-compat-ws-peer-bytes "websocket-peer")
(declare-function netproc-compat-ws-peer-send "websocket-peer")
(declare-function netproc-compat-ws-peer-received "websocket-peer")

(defun netproc-compat-test-ws-peer (function &rest args)
  "Start websocket-peer.el's FUNCTION with ARGS in a batch Emacs.
Return its process; what it prints collects in its buffer."
  (let ((process
         (make-process
          :name "netproc-test-ws-peer" :noquery t :connection-type 'pipe
          :sentinel #'ignore
          :buffer (generate-new-buffer " *netproc-test-ws-peer*")
          :command (append
                    (list (expand-file-name invocation-name
                                            invocation-directory)
                          "-Q" "--batch"
                          "-L" (netproc-compat-test-websocket-dir)
                          "-l" (expand-file-name "websocket-peer.el"
                                                 netproc-compat-test--files)
                          "-f" function)
                    args))))
    (process-put process 'netproc-test-helper t)
    (push process netproc-test--helpers)
    process))

(defun netproc-compat-test-ws-output (peer)
  "Return what PEER printed so far."
  (with-current-buffer (process-buffer peer) (buffer-string)))

(defun netproc-compat-test-ws-stop (peer)
  "Stop PEER by its PID and wait for it to exit."
  (when (process-live-p peer)
    (signal-process (process-id peer) 'TERM)
    (ignore-errors
      (netproc-test-wait-until (lambda () (not (process-live-p peer)))
                               10 'ws-peer-exits))))

(defun netproc-compat-test--expected (frames)
  "Return FRAMES as (OPCODE . BYTES), as they must arrive."
  (mapcar (lambda (f) (cons (car f) (netproc-compat-ws-peer-bytes f)))
          frames))

(ert-deftest netproc-compat-websocket-client ()
  "The websocket.el client over a netproc gets every frame echoed exactly."
  (netproc-compat-test--load-websocket)
  (netproc-test-with-cleanup
    (let* ((peer (netproc-compat-test-ws-peer
                  "netproc-compat-ws-peer-echo-server"))
           (port (netproc-test-wait-until
                  (lambda ()
                    (let ((out (netproc-compat-test-ws-output peer)))
                      (and (string-match "port \\([0-9]+\\)" out)
                           (string-to-number (match-string 1 out)))))
                  20 'ws-peer-port))
           (frames (netproc-compat-ws-peer-frames))
           (echoes nil))
      (unwind-protect
          (netproc-compat-test-with-mode
            (let ((ws (websocket-open
                       (format "ws://127.0.0.1:%d" port)
                       :on-message
                       (lambda (_ws frame)
                         (push (netproc-compat-ws-peer-received frame)
                               echoes)))))
              (should (netprocp (websocket-conn ws)))
              (netproc-test-wait-for (websocket-openp ws) 10)
              (dolist (frame frames)
                (netproc-compat-ws-peer-send ws frame))
              (netproc-test-wait-for (>= (length echoes) (length frames)) 20)
              (websocket-close ws)
              (should (equal (reverse echoes)
                             (netproc-compat-test--expected frames)))))
        (netproc-compat-test-ws-stop peer)))))

(ert-deftest netproc-compat-websocket-server ()
  "The websocket.el server over netprocs receives and echoes every frame."
  (netproc-compat-test--load-websocket)
  (netproc-test-with-cleanup
    (netproc-compat-test-with-mode
      (let* ((received nil)
             (conns nil)
             (server (websocket-server
                      t :host "127.0.0.1"
                      :on-message
                      (lambda (ws frame)
                        (cl-pushnew (websocket-conn ws) conns)
                        (push (netproc-compat-ws-peer-received frame) received)
                        (netproc-compat-ws-peer-send
                         ws (let ((got (car received)))
                              (if (eq (car got) 'text)
                                  (cons 'text (decode-coding-string (cdr got)
                                                                    'utf-8))
                                got))))))
             (peer nil))
        (unwind-protect
            (progn
              (should (netprocp server))
              (setq peer (netproc-compat-test-ws-peer
                          "netproc-compat-ws-peer-client"
                          (format "ws://127.0.0.1:%d"
                                  (process-contact server :service))))
              (netproc-test-wait-for (not (process-live-p peer)) 30)
              (should (equal (netproc-compat-test-ws-output peer)
                             (format "echoed %d of %d\n"
                                     (length (netproc-compat-ws-peer-frames))
                                     (length (netproc-compat-ws-peer-frames)))))
              (should (eql (process-exit-status peer) 0))
              (should (= (length conns) 1))
              (should (netprocp (car conns)))
              (should (equal (reverse received)
                             (netproc-compat-test--expected
                              (netproc-compat-ws-peer-frames)))))
          (when peer (netproc-compat-test-ws-stop peer))
          (websocket-server-close server))))))

(provide 'netproc-compat-clients-tests)

;;; netproc-compat-clients-tests.el ends here
