/* test-engine.c -- the engine as a whole: limits, the wake descriptor,
   the thread's signal mask, descriptor placement, shutdown with live
   connections, and a race between a sending thread and the drain.  */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"


static void
test_limits_default (void)
{
  NpLimits l;
  memset (&l, 0xff, sizeof l);
  np_limits_init_default (&l);
  T_EQ (64 * 1024, l.read_size);
  T_EQ (4 * 1024 * 1024, l.conn_in_high);
  T_EQ (1024 * 1024, l.conn_in_low);
  T_EQ (32 * 1024 * 1024, l.total_in_high);
  T_EQ (16 * 1024 * 1024, l.total_in_low);
  T_EQ (1024 * 1024, l.out_high);
  T_EQ (256 * 1024, l.out_low);
  T_EQ (4 * 1024 * 1024, l.drain_bytes);
  T_EQ (4096, l.drain_events);
}

static void
test_wake_fd_flags (void)
{
  THarness h;
  th_init (&h, NULL);
  T_ASSERT (fcntl (h.wake[1], F_GETFL) & O_NONBLOCK);
  T_ASSERT (fcntl (h.wake[1], F_GETFD) & FD_CLOEXEC);
  th_free (&h);
}

/* A wake descriptor whose reader is gone: the engine takes EPIPE quietly
   (the test would die of SIGPIPE otherwise: it is not ignored here).  */
static void
test_wake_reader_gone (void)
{
  signal (SIGPIPE, SIG_DFL);
  THarness h;
  th_init (&h, NULL);
  close (h.wake[0]);
  h.wake[0] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  NpConnectSpec spec = { .family = AF_UNIX, .path = "/nonexistent/x" };
  NpConn *conn = np_engine_connect (h.engine, 1, &spec);
  usleep (200000);
  NpEvent *out[16];
  gint64 deadline = t_now_ms () + WAIT_MS;
  guint n = 0;
  while (n == 0 && t_now_ms () < deadline)
    {
      n = np_engine_drain (h.engine, out);
      usleep (10000);
    }
  T_EQ (1, n);
  T_EQ (NP_EVENT_FAILED, out[0]->type);
  np_event_free (out[0]);
  np_conn_unref (conn);
  th_free (&h);
}

static char *
engine_thread_status (void)
{
  DIR *dir = opendir ("/proc/self/task");
  struct dirent *entry;
  char *status = NULL;
  while (!status && (entry = readdir (dir)))
    {
      if (entry->d_name[0] == '.')
        continue;
      g_autofree char *comm_path
        = g_strdup_printf ("/proc/self/task/%s/comm", entry->d_name);
      g_autofree char *comm = NULL;
      if (!g_file_get_contents (comm_path, &comm, NULL, NULL))
        continue;
      if (strcmp (g_strstrip (comm), "netproc-engine") == 0)
        {
          g_autofree char *path
            = g_strdup_printf ("/proc/self/task/%s/status", entry->d_name);
          g_file_get_contents (path, &status, NULL, NULL);
        }
    }
  closedir (dir);
  return status;
}

static guint64
status_mask (const char *status, const char *field)
{
  const char *line = strstr (status, field);
  if (!line)
    T_FAIL ("no %s in thread status", field);
  return g_ascii_strtoull (line + strlen (field), NULL, 16);
}

static void
test_engine_thread_signal_mask (void)
{
  /* The caller's own mask, which must come back unchanged.  */
  sigset_t mine, after;
  sigemptyset (&mine);
  sigaddset (&mine, SIGUSR2);
  pthread_sigmask (SIG_SETMASK, &mine, NULL);

  THarness h;
  th_init (&h, NULL);
  pthread_sigmask (SIG_SETMASK, NULL, &after);
  for (int sig = 1; sig < NSIG; sig++)
    if (sigismember (&mine, sig) != sigismember (&after, sig))
      T_FAIL ("caller's mask changed at signal %d", sig);

  g_autofree char *status = NULL;
  for (int i = 0; i < 100 && !status; i++)
    {
      status = engine_thread_status ();
      if (!status)
        usleep (10000);
    }
  if (!status)
    T_FAIL ("no thread named netproc-engine");
  guint64 blocked = status_mask (status, "SigBlk:");
  /* Everything but what cannot be blocked (SIGKILL, SIGSTOP) and glibc's
     two internal signals (32, 33), which pthread_sigmask leaves alone.  */
  for (int sig = 1; sig <= 64; sig++)
    {
      if (sig == SIGKILL || sig == SIGSTOP || sig == 32 || sig == 33)
        continue;
      if (!(blocked & (G_GUINT64_CONSTANT (1) << (sig - 1))))
        T_FAIL ("signal %d not blocked in the engine thread (SigBlk %016"
                G_GINT64_MODIFIER "x)", sig, blocked);
    }
  th_free (&h);
}

/* Socket descriptors of this process, as a set of numbers.  */
static GHashTable *
socket_fds (void)
{
  GHashTable *set = g_hash_table_new (NULL, NULL);
  DIR *dir = opendir ("/proc/self/fd");
  struct dirent *entry;
  while ((entry = readdir (dir)))
    {
      if (entry->d_name[0] == '.')
        continue;
      int fd = atoi (entry->d_name);
      struct stat st;
      if (fstat (fd, &st) == 0 && S_ISSOCK (st.st_mode))
        g_hash_table_add (set, GINT_TO_POINTER (fd + 1));
    }
  closedir (dir);
  return set;
}

/* New sockets of the engine's: those present now and not in BEFORE, less
   the peer's.  */
static GArray *
new_engine_fds (GHashTable *before, int peer)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (int));
  g_autoptr (GHashTable) now = socket_fds ();
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init (&iter, now);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      int fd = GPOINTER_TO_INT (key) - 1;
      if (fd != peer && !g_hash_table_contains (before, key))
        g_array_append_val (out, fd);
    }
  return out;
}

static void
check_placement (rlim_t soft, rlim_t hard, gboolean expect_high)
{
  struct rlimit rl = { .rlim_cur = soft, .rlim_max = hard };
  if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
    T_FAIL ("setrlimit: %s", g_strerror (errno));

  THarness h;
  th_init (&h, NULL);
  getrlimit (RLIMIT_NOFILE, &rl);
  T_EQ (hard, rl.rlim_cur);  /* raised to the hard limit */

  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  g_autoptr (GHashTable) before = socket_fds ();
  NpConn *conn = th_connect_tcp (&h, 1, "127.0.0.1", port, AF_INET);
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  int peer = t_accept (lfd, WAIT_MS);
  GArray *fds = new_engine_fds (before, peer);
  T_EQ (1, fds->len);
  int fd = g_array_index (fds, int, 0);
  if (expect_high)
    T_GE (fd, 1024);
  else
    T_LE (fd, 1023);
  T_ASSERT (fcntl (fd, F_GETFD) & FD_CLOEXEC);
  g_array_unref (fds);

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
}

/* As in Emacs: soft limit 1024, hard limit higher.  */
static void
test_fds_above_1024 (void)
{
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_max <= 1100)
    {
      printf ("  (hard limit %lu: no room above 1024; skipped)\n",
              (unsigned long) rl.rlim_max);
      return;
    }
  check_placement (1024, rl.rlim_max, TRUE);
}

/* With no room above 1024 the low number is kept.  */
static void
test_fds_fallback_low_limit (void)
{
  check_placement (256, 512, FALSE);
}

/* With every number from 1024 up taken, the engine spills into 512-1023
   and then refuses with EMFILE: the numbers below 512 stay free, so
   Emacs can still open a file.  */
static void
test_fds_spill_stops_at_512 (void)
{
  enum { LIMIT = 1200 };
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < LIMIT)
    {
      printf ("  (hard limit %lu: too low; skipped)\n",
              (unsigned long) rl.rlim_max);
      return;
    }
  rl.rlim_cur = 1024;
  rl.rlim_max = LIMIT;
  if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
    T_FAIL ("setrlimit: %s", g_strerror (errno));

  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  /* Never accepted: the kernel completes the connections in the
     backlog, so no peer descriptor competes with the engine's.  */
  listen (lfd, 2 * LIMIT);

  NpConn *conns[LIMIT];
  guint n = 0;
  int failed = 0;
  while (n < LIMIT && !failed)
    {
      conns[n] = th_connect_tcp (&h, n, "127.0.0.1", port, AF_INET);
      gint64 end = t_now_ms () + WAIT_MS;
      while (!th_find (&h, n, NP_EVENT_OPEN)
             && !th_find (&h, n, NP_EVENT_FAILED) && t_now_ms () < end)
        th_pump (&h, 100);
      NpEvent *fail = th_find (&h, n, NP_EVENT_FAILED);
      if (fail)
        failed = fail->code;
      else if (!th_find (&h, n, NP_EVENT_OPEN))
        T_FAIL ("connection %u neither opened nor failed", n);
      n++;
    }
  T_EQ (EMFILE, failed);
  /* Everything from 512 up is in use, and the engine took nothing
     lower than that.  */
  T_GE (n, LIMIT - 1024 + 400);
  for (int fd = 3; fd < 512; fd++)
    {
      struct stat st;
      if (fd != lfd && fstat (fd, &st) == 0 && S_ISSOCK (st.st_mode))
        T_FAIL ("descriptor %d below 512 is a socket", fd);
    }
  int file = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  T_GE (file, 0);
  T_LE (file, 511);
  close (file);

  for (guint i = 0; i < n; i++)
    {
      np_conn_close (conns[i]);
      np_conn_unref (conns[i]);
    }
  th_free (&h);
  close (lfd);
}

/* A listener whose accept queue is full: connects to it hang.  */
static int
stuck_listener (guint16 *port, int fillers[4])
{
  int lfd = t_listen_tcp (AF_INET, port);
  listen (lfd, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_port = htons (*port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  for (int i = 0; i < 4; i++)
    {
      fillers[i] = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK
                                      | SOCK_CLOEXEC, 0);
      connect (fillers[i], (struct sockaddr *) &sin, sizeof sin);
    }
  usleep (100000);
  return lfd;
}

/* Shutdown with connections in every state: open (idle, paused, with
   output queued and unread input), connecting, resolving.  */
static void
test_free_with_200_live (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port, stuck_port;
  int lfd = t_listen_tcp (AF_INET, &port);
  int fillers[4];
  int stuck = stuck_listener (&stuck_port, fillers);

  enum { N = 200 };
  NpConn *conns[N + 20];
  int peers[N];
  for (int i = 0; i < N; i++)
    conns[i] = th_connect_tcp (&h, (guint64) i, "127.0.0.1", port, AF_INET);
  for (int i = 0; i < N; i++)
    peers[i] = t_accept (lfd, WAIT_MS);
  for (int i = 0; i < N; i++)
    th_wait (&h, (guint64) i, NP_EVENT_OPEN, WAIT_MS);

  guint8 big[256 * 1024] = { 0 };
  for (int i = 0; i < N; i++)
    {
      if (i % 4 == 1)
        np_conn_set_paused (conns[i], TRUE);
      if (i % 4 == 2)
        for (int k = 0; k < 40; k++)
          np_conn_send (conns[i], big, sizeof big);
      t_write_all (peers[i], big, 4096);
    }
  for (int i = N; i < N + 10; i++)
    conns[i] = th_connect_tcp (&h, (guint64) i, "127.0.0.1", stuck_port,
                               AF_INET);
  /* Lookups that never end: the engine's stalling test resolver, so that
     they are still resolving when the engine goes, and nothing is asked
     of the DNS.  */
  np_engine_set_resolver (h.engine, NP_RESOLVER_STALL, NP_RESOLVE_NOT_FOUND,
                          NULL);
  for (int i = N + 10; i < N + 20; i++)
    conns[i] = th_connect_tcp (&h, (guint64) i, "no-such-host.invalid", 80,
                               AF_UNSPEC);
  th_pump (&h, 200);

  gint64 start = t_now_ms ();
  np_engine_free (h.engine);
  h.engine = NULL;
  gint64 took = t_now_ms () - start;
  /* Bounded, not fast: no wait for the lookups or the stuck connects,
     only for the engine thread itself, however loaded the machine.  */
  T_LE (took, WAIT_MS);

  /* Every socket is closed: each peer sees the end.  */
  for (int i = 0; i < N; i++)
    {
      t_set_nonblock (peers[i]);
      for (;;)
        {
          char buf[65536];
          struct pollfd pfd = { .fd = peers[i], .events = POLLIN };
          T_EQ (1, poll (&pfd, 1, WAIT_MS));
          ssize_t n = recv (peers[i], buf, sizeof buf, 0);
          if (n <= 0)
            break;
        }
      close (peers[i]);
    }
  for (int i = 0; i < N + 20; i++)
    np_conn_unref (conns[i]);
  th_free (&h);
  for (int i = 0; i < 4; i++)
    close (fillers[i]);
  close (stuck);
  close (lfd);
}

/* The race: one thread connects, sends and closes while this one drains;
   a peer thread accepts, writes, echoes, and closes when we do.  */
typedef struct
{
  int lfd;
  int stop;               /* atomic */
} Peer;

static void *
peer_thread (void *data)
{
  Peer *peer = data;
  GArray *fds = g_array_new (FALSE, FALSE, sizeof (struct pollfd));
  struct pollfd lp = { .fd = peer->lfd, .events = POLLIN };
  g_array_append_val (fds, lp);
  char buf[8192];
  memset (buf, 'p', sizeof buf);
  while (!__atomic_load_n (&peer->stop, __ATOMIC_ACQUIRE))
    {
      if (poll ((struct pollfd *) fds->data, fds->len, 50) <= 0)
        continue;
      for (guint i = fds->len; i-- > 0;)
        {
          struct pollfd *p = &g_array_index (fds, struct pollfd, i);
          if (!p->revents)
            continue;
          if (i == 0)
            {
              int fd = accept4 (peer->lfd, NULL, NULL,
                                SOCK_CLOEXEC | SOCK_NONBLOCK);
              if (fd >= 0)
                {
                  send (fd, buf, 1 + (size_t) fd % sizeof buf,
                        MSG_NOSIGNAL);
                  struct pollfd np = { .fd = fd, .events = POLLIN };
                  g_array_append_val (fds, np);
                }
              continue;
            }
          ssize_t n = recv (p->fd, buf, sizeof buf, 0);
          if (n > 0)
            send (p->fd, buf, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);
          else if (n == 0 || errno != EAGAIN)
            {
              close (p->fd);
              g_array_remove_index_fast (fds, i);
            }
        }
    }
  for (guint i = 1; i < fds->len; i++)
    close (g_array_index (fds, struct pollfd, i).fd);
  g_array_unref (fds);
  return NULL;
}

typedef struct
{
  NpEngine *engine;
  guint16 port;
  int done;               /* atomic */
  guint made;
} Sender;

static void *
sender_thread (void *data)
{
  Sender *s = data;
  enum { LIVE = 32 };
  NpConn *live[LIVE] = { 0 };
  GRand *rand = g_rand_new_with_seed (42);
  char msg[3000];
  memset (msg, 's', sizeof msg);
  for (guint round = 0; round < 3000; round++)
    {
      guint slot = g_rand_int_range (rand, 0, LIVE);
      if (live[slot])
        {
          switch (g_rand_int_range (rand, 0, 5))
            {
            case 0:
              np_conn_close (live[slot]);
              np_conn_unref (live[slot]);
              live[slot] = NULL;
              break;
            case 1:
              np_conn_set_paused (live[slot], g_rand_boolean (rand));
              break;
            case 2:
              /* Dropped without close: the engine keeps it until the
                 peer or the shutdown ends it.  */
              np_conn_unref (live[slot]);
              live[slot] = NULL;
              break;
            default:
              np_conn_send (live[slot], msg,
                            (gsize) g_rand_int_range (rand, 1, sizeof msg));
              (void) np_conn_queued (live[slot]);
              break;
            }
        }
      else
        {
          NpConnectSpec spec = { .family = AF_INET, .host = "127.0.0.1",
                                 .port = s->port };
          live[slot] = np_engine_connect (s->engine, s->made++, &spec);
          if (g_rand_boolean (rand))
            np_conn_send (live[slot], "early", 5);
        }
      if (round % 64 == 0)
        usleep (1000);
    }
  for (guint i = 0; i < LIVE; i++)
    if (live[i])
      {
        if (i % 2)
          np_conn_close (live[i]);
        np_conn_unref (live[i]);
      }
  g_rand_free (rand);
  __atomic_store_n (&s->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void
test_stress_send_close_drain (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.drain_events = 64;   /* many small drains, many re-rings */
  limits.conn_in_high = 4096; /* backpressure on and off all the time */
  limits.conn_in_low = 1024;
  limits.read_size = 1024;
  THarness h;
  th_init (&h, &limits);
  Peer peer = { 0 };
  guint16 port;
  peer.lfd = t_listen_tcp (AF_INET, &port);
  pthread_t peer_tid, sender_tid;
  pthread_create (&peer_tid, NULL, peer_thread, &peer);
  Sender s = { .engine = h.engine, .port = port };
  pthread_create (&sender_tid, NULL, sender_thread, &s);

  gint64 deadline = t_now_ms () + 60000;
  while (!__atomic_load_n (&s.done, __ATOMIC_ACQUIRE))
    {
      T_ASSERT (t_now_ms () < deadline);
      th_pump (&h, 10);
    }
  pthread_join (sender_tid, NULL);
  th_pump (&h, 200);
  np_engine_free (h.engine);
  h.engine = NULL;
  __atomic_store_n (&peer.stop, 1, __ATOMIC_RELEASE);
  pthread_join (peer_tid, NULL);

  guint opened = 0;
  for (guint id = 0; id < s.made; id++)
    {
      th_check_order (&h, id);
      opened += th_count (&h, id, NP_EVENT_OPEN);
    }
  T_GE (s.made, 100);
  T_GE (opened, 10);
  gsize bytes = 0;
  for (guint i = 0; i < h.events->len; i++)
    bytes += ((NpEvent *) g_ptr_array_index (h.events, i))->len;
  printf ("  (%u connections, %u opened, %zu bytes received, %u drains)\n",
          s.made, opened, bytes, h.drains);
  th_free (&h);
  close (peer.lfd);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "engine/limits-default", test_limits_default },
    { "engine/wake-fd-flags", test_wake_fd_flags },
    { "engine/wake-reader-gone", test_wake_reader_gone },
    { "engine/thread-signal-mask", test_engine_thread_signal_mask },
    { "engine/fds-above-1024", test_fds_above_1024 },
    { "engine/fds-fallback-low-limit", test_fds_fallback_low_limit },
    { "engine/fds-spill-stops-at-512", test_fds_spill_stops_at_512 },
    { "engine/free-with-200-live", test_free_with_200_live },
    { "engine/stress-send-close-drain", test_stress_send_close_drain },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
