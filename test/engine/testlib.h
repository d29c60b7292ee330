/* testlib.h -- a small harness for the engine tests.

   Each test case runs in its own child process (fork), so a crash, a
   hang (alarm) or a sanitizer report at exit fails that case alone.  The
   child counts /proc/self/fd before and after the case: a descriptor left
   open fails it.  The parent prints one line per case:

     PASS name
     FAIL name: detail

   which test/run-engine-tests.sh counts.  */

#ifndef NETPROC_TESTLIB_H
#define NETPROC_TESTLIB_H

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "engine.h"

typedef struct
{
  const char *name;
  void (*func) (void);
} TCase;

int t_main (int argc, char **argv, const TCase *cases, gsize n_cases);

void t_fail (const char *file, int line, const char *fmt, ...)
  __attribute__ ((noreturn)) G_GNUC_PRINTF (3, 4);

#define T_FAIL(...) t_fail (__FILE__, __LINE__, __VA_ARGS__)

#define T_ASSERT(cond)                                                  \
  do {                                                                  \
    if (!(cond))                                                        \
      T_FAIL ("assertion failed: %s", #cond);                           \
  } while (0)

#define T_EQ(expected, got)                                             \
  do {                                                                  \
    long long e_ = (long long) (expected), g_ = (long long) (got);      \
    if (e_ != g_)                                                       \
      T_FAIL ("%s: expected %lld, got %lld", #got, e_, g_);             \
  } while (0)

#define T_LE(got, bound)                                                \
  do {                                                                  \
    long long g_ = (long long) (got), b_ = (long long) (bound);         \
    if (g_ > b_)                                                        \
      T_FAIL ("%s: expected <= %lld, got %lld", #got, b_, g_);          \
  } while (0)

#define T_GE(got, bound)                                                \
  do {                                                                  \
    long long g_ = (long long) (got), b_ = (long long) (bound);         \
    if (g_ < b_)                                                        \
      T_FAIL ("%s: expected >= %lld, got %lld", #got, b_, g_);          \
  } while (0)

#define T_STREQ(expected, got)                                          \
  do {                                                                  \
    const char *e_ = (expected), *g_ = (got);                           \
    if (g_strcmp0 (e_, g_) != 0)                                        \
      T_FAIL ("%s: expected \"%s\", got \"%s\"", #got,                  \
              e_ ? e_ : "(null)", g_ ? g_ : "(null)");                  \
  } while (0)

/* An engine with a pipe as its wake descriptor, and every event drained
   so far, in order.  */
typedef struct
{
  NpEngine *engine;
  int wake[2];
  NpLimits limits;
  GPtrArray *events;      /* of NpEvent, owned */
  NpEvent **buf;
  guint wake_bytes;       /* bytes read from the pipe */
  guint drains;
} THarness;

void th_init (THarness *h, const NpLimits *limits);
void th_free (THarness *h);
/* Waits up to TIMEOUT_MS for the wake descriptor, then drains once.
   Returns the number of events drained.  */
guint th_pump (THarness *h, int timeout_ms);
/* Pumps until an event of TYPE for ID has been drained; fails the test on
   timeout, listing what was seen.  */
NpEvent *th_wait (THarness *h, guint64 id, NpEventType type, int timeout_ms);
/* The first event of TYPE for ID drained so far, or NULL.  */
NpEvent *th_find (THarness *h, guint64 id, NpEventType type);
guint th_count (THarness *h, guint64 id, NpEventType type);
gsize th_data_len (THarness *h, guint64 id);
/* Pumps until at least WANT data bytes for ID arrived.  */
void th_wait_data (THarness *h, guint64 id, gsize want, int timeout_ms);
GByteArray *th_data (THarness *h, guint64 id);
/* OPEN or FAILED first, then DATA..., then at most one CLOSED.  */
void th_check_order (THarness *h, guint64 id);
char *th_describe (THarness *h);

NpConn *th_connect_tcp (THarness *h, guint64 id, const char *host,
                        guint16 port, int family);

/* How long a test waits for anything that should happen, in ms.  */
#define WAIT_MS 10000

/* Takes every event queued at this moment into H, without waiting.  */
void th_drain_now (THarness *h);
/* Fails if any event for ID sits at or after index FROM of H's events.  */
void th_assert_quiet_after (THarness *h, guint64 id, guint from);
/* The DATA events of ID drained so far, in order (the array
   does not own them).  */
GPtrArray *th_data_events (THarness *h, guint64 id);
/* Pumps until WANT events of TYPE for ID have been drained; fails the
   test after WAIT_MS.  */
void th_wait_count (THarness *h, guint64 id, NpEventType type, guint want);
/* Pumps for MS, taking whatever comes.  */
void th_pump_for (THarness *h, int ms);
/* Pumps until CONN has nothing queued; fails the test after WAIT_MS.
   A peer can read the last byte before the engine thread, back from its
   write, has taken it off the queue.  */
void th_wait_unqueued (THarness *h, NpConn *conn);
/* The CPU time, in ms, of the thread named netproc-engine (one engine at
   a time).  */
gint64 t_engine_cpu_ms (void);

/* An engine connection (id 1) and the peer socket it reached.  */
typedef struct
{
  THarness h;
  int lfd;
  int peer;
  NpConn *conn;
} TPair;

void t_pair_open (TPair *p, const NpLimits *limits);
void t_pair_close (TPair *p);

/* Peers.  */
/* Addresses: loopback of FAMILY (AF_INET or AF_INET6) with PORT, or the
   Unix socket PATH, into SS; returns the length.  */
socklen_t t_loopback (int family, guint16 port, struct sockaddr_storage *ss);
socklen_t t_unix_address (const char *path, struct sockaddr_storage *ss);
int t_listen_tcp (int family, guint16 *port);
int t_listen_unix (const char *path);
int t_accept (int lfd, int timeout_ms);
void t_write_all (int fd, const void *data, gsize len);
/* Reads until EOF or LEN bytes; returns the count.  */
gsize t_read_full (int fd, void *buf, gsize len, int timeout_ms);
void t_set_nonblock (int fd);
int t_count_fds (void);
/* Sends 64 KiB chunks of zeros on CONN until at least QUEUED bytes wait
   in its queue, adding what it sent to *TOTAL; fails the test past
   256 MiB.  */
void t_send_until_queued (NpConn *conn, gsize queued, gsize *total);
char *t_tmpdir (void);
void t_rmdir (char *dir);
gint64 t_now_ms (void);

/* TRUE if a name lookup here cannot leave the machine: /etc/nsswitch.conf
   has a hosts line, and each of its sources answers from this machine
   alone ("files", "myhostname"), and no nscd is there to answer by a
   configuration of its own.  test/with-local-lookups.sh makes it so when
   it can.  A case that looks up a name that does not exist does it
   through the system's resolver only then: otherwise the lookup is a DNS
   query.  */
gboolean t_lookups_local (void);

/* The next TIMES epoll_ctl() calls with operation OP, from any thread,
   fail with ERR instead (a set past its limit, say).  The tests are
   linked with --wrap=epoll_ctl for it.  */
void t_epoll_fail (int op, int err, int times);

/* Counts this thread's poll() calls from now, until t_poll_counted()
   gives how many were looks (no timeout) and how many waits.  The tests
   are linked with --wrap=poll for it.  */
void t_poll_count (void);
void t_poll_counted (guint *looks, guint *waits);

#endif
