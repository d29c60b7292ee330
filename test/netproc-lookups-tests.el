;;; netproc-lookups-tests.el --- Name lookups that stay on this machine  -*- lexical-binding: t; -*-

;; This file is part of netproc.

;;; Commentary:

;; Some tests look up a name that does not exist, no-such-host.invalid,
;; on the builtin's side and on netproc's, to compare how each fails.
;; Through the DNS that lookup would leave the machine.  The runners
;; start through test/with-local-lookups.sh, which, when it can, makes
;; the hosts database /etc/hosts alone in a mount namespace of the run's
;; own, and says in NETPROC_TEST_LOOKUPS what it did; the tests that
;; look such a name up skip unless `netproc-test-lookups-local-p'.
;;
;; Here: the guard, which fails if the run claims a private name
;; service that is not in effect, or could have had one and has not;
;; and how nsswitch.conf is read.
;;
;;   NETPROC_TEST_SELECTOR=netproc-test-lookups test/run-lisp-tests.sh

;;; Code:

(require 'cl-lib)
(require 'ert)
(require 'netproc-test-lib)

(defun netproc-test-lookups--read (file)
  "Return the contents of FILE, or nil if it cannot be read."
  (and (file-readable-p file)
       (with-temp-buffer
         (insert-file-contents file)
         (buffer-string))))

(defun netproc-test-lookups--name-servers ()
  "Return the name servers /etc/resolv.conf lists, in order."
  (let ((text (or (netproc-test-lookups--read "/etc/resolv.conf") ""))
        (servers nil))
    (dolist (line (split-string text "\n"))
      (when (string-match "\\`[ \t]*nameserver[ \t]+\\([^ \t#]+\\)" line)
        (push (match-string 1 line) servers)))
    (nreverse servers)))

(defun netproc-test-lookups--mount-points ()
  "Return the mount points of this process's mount namespace."
  (mapcar (lambda (line) (nth 4 (split-string line " ")))
          (split-string (or (netproc-test-lookups--read
                             "/proc/self/mountinfo")
                            "")
                        "\n" t)))

(defun netproc-test-lookups--namespace-possible-p ()
  "Non-nil if test/with-local-lookups.sh could make its namespace here.
That is what it checks: root, an /etc/nsswitch.conf, and unshare(1)
making a mount namespace."
  (and (eq (user-uid) 0)
       (file-exists-p "/etc/nsswitch.conf")
       (executable-find "unshare")
       (eq 0 (call-process "unshare" nil nil nil "--mount" "true"))))

(ert-deftest netproc-test-lookups-in-effect ()
  "The run's name lookups stay on this machine when it says they do.
test/with-local-lookups.sh says in NETPROC_TEST_LOOKUPS what it did.
With \"namespace\", the hosts line of /etc/nsswitch.conf is \"files\"
and that file is mounted over the system's, /etc/resolv.conf names
127.0.0.1 alone, `netproc-test-lookups-local-p' holds, localhost and
127.0.0.1 resolve and no-such-host.invalid fails at once, and the fault
tests can still make namespaces of their own.  With \"system\", the
script could not have made its namespace: otherwise the tests that look
up such a name would skip for nothing.  Skipped when the variable is
not set: the run did not start through a runner."
  (let ((claim (getenv "NETPROC_TEST_LOOKUPS")))
    (cond
     ((null claim)
      (ert-skip "NETPROC_TEST_LOOKUPS is not set: not run by a runner"))
     ((equal claim "namespace")
      (should (equal (netproc-test-hosts-sources
                      (or (netproc-test-lookups--read "/etc/nsswitch.conf")
                          ""))
                     '("files")))
      (should (member "/etc/nsswitch.conf"
                      (netproc-test-lookups--mount-points)))
      (when (file-exists-p "/etc/resolv.conf")
        (should (equal (netproc-test-lookups--name-servers) '("127.0.0.1"))))
      (should (netproc-test-lookups-local-p))
      (should (network-lookup-address-info "localhost"))
      (should (network-lookup-address-info "127.0.0.1"))
      (let* ((start (float-time))
             (found (network-lookup-address-info "no-such-host.invalid"))
             (took (- (float-time) start)))
        (should (equal (list :found found :fast (< took 1))
                       '(:found nil :fast t))))
      (should (eq 0 (call-process "unshare" nil nil nil
                                  "--mount" "--net" "true"))))
     ((equal claim "system")
      (should-not (netproc-test-lookups--namespace-possible-p)))
     (t
      (ert-fail (list "NETPROC_TEST_LOOKUPS is neither namespace nor system"
                      claim))))))

(ert-deftest netproc-test-lookups-hosts-sources ()
  "The hosts line is read as glibc reads it, and judged by its sources.
Any source but \"files\" and \"myhostname\" makes lookups non-local; so
does a file without a hosts line, for glibc then asks the DNS."
  (pcase-dolist (`(,text ,sources ,local)
                 '(("hosts:          files dns\n" ("files" "dns") nil)
                   ("passwd: files\nhosts: files\nnetworks: files\n"
                    ("files") t)
                   ("hosts: files myhostname\n" ("files" "myhostname") t)
                   ("# hosts: dns\nhosts: files # dns\n" ("files") t)
                   ("hosts: files mdns4_minimal [NOTFOUND=return] dns\n"
                    ("files" "mdns4_minimal" "dns") nil)
                   ("hosts: files [ !UNAVAIL = return ] resolve\n"
                    ("files" "resolve") nil)
                   ("  hosts : files\n" ("files") t)
                   ("hosts files\nHOSTS: dns\n" ("files" "dns") nil)
                   ("hostsx: dns\nhosts: files\n" ("files") t)
                   ("hosts:\n" (:none) nil)
                   ("passwd: files\n" nil nil)))
    (let ((got (netproc-test-hosts-sources text)))
      (should (equal (list text got) (list text sources)))
      (should (equal (list text (netproc-test-nsswitch-local-p text))
                     (list text local))))))

(provide 'netproc-lookups-tests)
;;; netproc-lookups-tests.el ends here
