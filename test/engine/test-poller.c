/* test-poller.c -- the one epoll set every socket sits in (poller.c):
   idle connections by the thousand, hang-ups on connections that want
   nothing, where the set's own descriptor lives, and sockets whose files
   a forked child keeps open after the engine has closed them.

   Several cases look at the engine from outside, through /proc: the
   engine thread's CPU time (a spin shows there and nowhere else), the
   epoll descriptor's fdinfo (one "tfd:" line per watched socket, with
   its inode), and the socket descriptors of the process.

   What the engine watches is looked at only after np_engine_sync(): the
   commands before it have run, and so has the dispatch that queued the
   last event seen (OPEN and ACCEPTED come before the engine turns to
   reading).  A byte sent through a connection would prove nothing: with
   nothing queued, np_conn_send() writes from the caller's thread.  */

#define _GNU_SOURCE  /* POLLRDHUP */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

/* What a connection that wants nothing may cost the engine thread over
   SPIN_WINDOW_MS.  A level-triggered hang-up reported over and over
   costs the whole window; doing nothing costs a tick or two of the
   kernel's accounting (10 ms each at USER_HZ 100).  */
#define SPIN_WINDOW_MS 300
#define SPIN_CPU_MAX_MS 50

/* Addresses and descriptors.  */

static void
loopback4 (guint16 port, struct sockaddr_in *sin)
{
  memset (sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons (port);
  sin->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
}

/* Connects by address, not by name: no resolver, no worker thread.  */
static NpConn *
connect_to (THarness *h, guint64 id, guint16 port)
{
  struct sockaddr_in sin;
  loopback4 (port, &sin);
  NpConnectSpec spec = { .family = AF_INET,
                         .remote = (const struct sockaddr *) &sin,
                         .remote_len = sizeof sin };
  return np_engine_connect (h->engine, id, &spec);
}

/* An engine listener on a free loopback port; *PORT gets it.  */
static NpConn *
engine_listen (THarness *h, guint64 id, int backlog, guint16 *port)
{
  struct sockaddr_in sin;
  loopback4 (0, &sin);
  NpListenSpec spec = { .address = (const struct sockaddr *) &sin,
                        .address_len = sizeof sin, .backlog = backlog,
                        .reuseaddr = -1 };
  struct sockaddr_storage bound;
  socklen_t bound_len = 0;
  int err = 0;
  NpListenStep step = NP_LISTEN_SOCKET;
  NpConn *l = np_engine_listen (h->engine, id, &spec, &bound, &bound_len,
                                &err, &step, NULL);
  if (!l)
    T_FAIL ("np_engine_listen: step %d: %s", step, g_strerror (err));
  if (port)
    *port = ntohs (((struct sockaddr_in *) &bound)->sin_port);
  return l;
}

/* A blocking client of 127.0.0.1:PORT; the kernel completes the
   handshake from the backlog, accepted or not.  */
static int
client_connect (guint16 port)
{
  struct sockaddr_in sin;
  loopback4 (port, &sin);
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    T_FAIL ("socket: %s", g_strerror (errno));
  if (connect (fd, (struct sockaddr *) &sin, sizeof sin) < 0)
    T_FAIL ("connect: %s", g_strerror (errno));
  return fd;
}

/* Socket descriptors of this process.  */
static int
count_sockets (void)
{
  DIR *dir = opendir ("/proc/self/fd");
  T_ASSERT (dir != NULL);
  int n = 0;
  struct dirent *entry;
  while ((entry = readdir (dir)))
    {
      int fd = atoi (entry->d_name);
      if (entry->d_name[0] == '.' || fd == dirfd (dir))
        continue;
      struct stat st;
      if (fstat (fd, &st) == 0 && S_ISSOCK (st.st_mode))
        n++;
    }
  closedir (dir);
  return n;
}

/* Sockets close on the engine thread: wait, bounded, for WANT.  */
static void
wait_sockets (int want, const char *when)
{
  gint64 deadline = t_now_ms () + WAIT_MS;
  int n;
  while ((n = count_sockets ()) != want && t_now_ms () < deadline)
    usleep (10000);
  if (n != want)
    T_FAIL ("%s: expected %d sockets open, got %d", when, want, n);
}

static guint64
inode_of (int fd)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    T_FAIL ("fstat %d: %s", fd, g_strerror (errno));
  return (guint64) st.st_ino;
}

/* The engine's socket at the other end of PEER (a socket of ours): its
   address is PEER's remote one and the other way round.  */
static int
engine_end_of (int peer)
{
  struct sockaddr_in mine, theirs;
  socklen_t len = sizeof mine;
  if (getsockname (peer, (struct sockaddr *) &mine, &len) < 0)
    T_FAIL ("getsockname: %s", g_strerror (errno));
  len = sizeof theirs;
  if (getpeername (peer, (struct sockaddr *) &theirs, &len) < 0)
    T_FAIL ("getpeername: %s", g_strerror (errno));

  DIR *dir = opendir ("/proc/self/fd");
  T_ASSERT (dir != NULL);
  int found = -1;
  struct dirent *entry;
  while (found < 0 && (entry = readdir (dir)))
    {
      int fd = atoi (entry->d_name);
      if (entry->d_name[0] == '.' || fd == dirfd (dir) || fd == peer)
        continue;
      struct sockaddr_in a, b;
      socklen_t alen = sizeof a, blen = sizeof b;
      if (getsockname (fd, (struct sockaddr *) &a, &alen) < 0
          || getpeername (fd, (struct sockaddr *) &b, &blen) < 0
          || a.sin_family != AF_INET || b.sin_family != AF_INET)
        continue;
      if (a.sin_port == theirs.sin_port
          && a.sin_addr.s_addr == theirs.sin_addr.s_addr
          && b.sin_port == mine.sin_port
          && b.sin_addr.s_addr == mine.sin_addr.s_addr)
        found = fd;
    }
  closedir (dir);
  if (found < 0)
    T_FAIL ("no engine socket at the other end of descriptor %d", peer);
  return found;
}

/* The epoll set.  */

/* Descriptors of this process that are epoll sets, as an array of int.  */
static GArray *
eventpoll_fds (void)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (int));
  DIR *dir = opendir ("/proc/self/fd");
  T_ASSERT (dir != NULL);
  struct dirent *entry;
  while ((entry = readdir (dir)))
    {
      int fd = atoi (entry->d_name);
      if (entry->d_name[0] == '.' || fd == dirfd (dir))
        continue;
      g_autofree char *path = g_strdup_printf ("/proc/self/fd/%d", fd);
      g_autofree char *target = g_file_read_link (path, NULL);
      if (target && strcmp (target, "anon_inode:[eventpoll]") == 0)
        g_array_append_val (out, fd);
    }
  closedir (dir);
  return out;
}

/* The engine's epoll descriptor: the only set in this process (GLib's
   main contexts poll(), they keep no set).  */
static int
engine_epoll_fd (void)
{
  GArray *fds = eventpoll_fds ();
  if (fds->len != 1)
    T_FAIL ("expected one epoll descriptor, found %u", fds->len);
  int fd = g_array_index (fds, int, 0);
  g_array_unref (fds);
  return fd;
}

typedef struct
{
  int tfd;                /* the descriptor number it was added under */
  guint32 events;
  guint64 ino;            /* the open file's inode */
} TWatch;

/* What the set EPFD watches, from its fdinfo: one line per socket,
   "tfd: N events: HEX data: HEX pos:N ino:HEX sdev:HEX".  */
static GArray *
epoll_watches (int epfd)
{
  g_autofree char *path = g_strdup_printf ("/proc/self/fdinfo/%d", epfd);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    T_FAIL ("cannot read %s", path);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (TWatch));
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      if (strncmp (*l, "tfd:", 4) != 0)
        continue;
      int tfd;
      unsigned events;
      unsigned long long data, ino;
      long long pos;
      if (sscanf (*l, "tfd: %d events: %x data: %llx pos:%lld ino:%llx",
                  &tfd, &events, &data, &pos, &ino) != 5)
        T_FAIL ("unexpected line in %s: %s", path, *l);
      TWatch w = { .tfd = tfd, .events = events, .ino = ino };
      g_array_append_val (out, w);
    }
  return out;
}

/* What EPFD watches the open file INO for, or -1 when it is not in the
   set.  By inode, not number: a number can be reused, and a file kept
   open by a child lives on under the number it was added with.  The
   kernel adds EPOLLERR and EPOLLHUP to every entry; they are left out
   here, so that an entry watched for nothing reads 0, not -1.  */
static gint64
watched_for (int epfd, guint64 ino)
{
  GArray *ws = epoll_watches (epfd);
  gint64 events = -1;
  for (guint i = 0; i < ws->len; i++)
    if (g_array_index (ws, TWatch, i).ino == ino)
      events = g_array_index (ws, TWatch, i).events
               & ~(guint32) (EPOLLERR | EPOLLHUP);
  g_array_unref (ws);
  return events;
}

static guint
watch_count (int epfd)
{
  GArray *ws = epoll_watches (epfd);
  guint n = ws->len;
  g_array_unref (ws);
  return n;
}

/* Waits until poll() on FD (an engine socket; poll reads nothing) shows
   one of WANT: the kernel has taken in what the peer did.  */
static void
wait_revents (int fd, short events, short want, const char *what)
{
  gint64 deadline = t_now_ms () + WAIT_MS;
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = events };
      if (poll (&pfd, 1, 100) > 0 && (pfd.revents & want))
        return;
      if (t_now_ms () > deadline)
        T_FAIL ("%s: not seen on descriptor %d within %d ms", what, fd,
                WAIT_MS);
    }
}

static guint
events_for (THarness *h, guint64 id)
{
  guint n = 0;
  for (guint i = 0; i < h->events->len; i++)
    n += ((NpEvent *) g_ptr_array_index (h->events, i))->id == id;
  return n;
}

/* 1. Idle connections by the thousand cost a busy one nothing.  */

static void
test_idle_many (void)
{
  /* Half connected by the engine, half accepted by it: both kinds sit in
     the set.  Each takes two descriptors, ours and the engine's.  */
  enum { OUT = 1000, IN = 1000, BATCH = 100, ROUNDS = 200 };
  enum { LISTENER_ID = 1000000, PING_ID = 1000001 };
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  rlim_t need = 2 * (OUT + IN) + 256;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
    {
      printf ("  (hard limit %lu, %lu descriptors needed; skipped)\n",
              (unsigned long) rl.rlim_max, (unsigned long) need);
      return;
    }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
    {
      rl.rlim_cur = need;
      if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
        T_FAIL ("setrlimit: %s", g_strerror (errno));
    }
  int sockets_before = count_sockets ();

  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  listen (lfd, 4096);

  NpConn **out = g_new0 (NpConn *, OUT);
  int *out_peers = g_new (int, OUT);
  for (int i = 0; i < OUT; i += BATCH)
    {
      /* In batches: a full backlog drops SYNs, and a dropped SYN is
         retried a second later.  */
      for (int k = i; k < i + BATCH; k++)
        out[k] = connect_to (&h, (guint64) k, port);
      for (int k = i; k < i + BATCH; k++)
        out_peers[k] = t_accept (lfd, WAIT_MS);
    }
  for (int i = 0; i < OUT; i++)
    th_wait (&h, (guint64) i, NP_EVENT_OPEN, WAIT_MS);

  guint16 lport;
  NpConn *l = engine_listen (&h, LISTENER_ID, 4096, &lport);
  NpConn **in = g_new0 (NpConn *, IN);
  int *clients = g_new (int, IN);
  guint taken = 0;
  for (int i = 0; i < IN; i += BATCH)
    {
      for (int k = i; k < i + BATCH; k++)
        clients[k] = client_connect (lport);
      gint64 deadline = t_now_ms () + WAIT_MS;
      while (th_count (&h, LISTENER_ID, NP_EVENT_ACCEPTED)
             < (guint) (i + BATCH))
        {
          if (t_now_ms () > deadline)
            T_FAIL ("%u of %d accepted in time", th_count (
                      &h, LISTENER_ID, NP_EVENT_ACCEPTED), i + BATCH);
          th_pump (&h, 100);
        }
    }
  for (guint i = 0; i < h.events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h.events, i);
      if (e->id != LISTENER_ID || e->type != NP_EVENT_ACCEPTED)
        continue;
      guint64 k = e->accepted_id - NP_ACCEPTED_ID_BASE;
      T_ASSERT (k < IN && !in[k]);
      in[k] = g_steal_pointer (&e->accepted);
      taken++;
    }
  T_EQ (IN, taken);

  /* Every idle connection is in the set, watched for reading.  */
  int epfd = engine_epoll_fd ();
  T_GE (watch_count (epfd), OUT + IN + 1);

  NpConn *ping = connect_to (&h, PING_ID, port);
  th_wait (&h, PING_ID, NP_EVENT_OPEN, WAIT_MS);
  int pp = t_accept (lfd, WAIT_MS);

  GString *want = g_string_new (NULL);
  gint64 start = t_now_ms ();
  for (int i = 0; i < ROUNDS; i++)
    {
      char msg[32], got[32];
      int n = g_snprintf (msg, sizeof msg, "ping %03d\n", i);
      np_conn_send (ping, msg, (gsize) n);
      T_EQ (n, t_read_full (pp, got, (gsize) n, WAIT_MS));
      if (memcmp (got, msg, (gsize) n) != 0)
        T_FAIL ("round %d: peer got \"%.*s\", expected \"%.*s\"", i, n, got,
                n, msg);
      n = g_snprintf (msg, sizeof msg, "pong %03d\n", i);
      t_write_all (pp, msg, (gsize) n);
      g_string_append_len (want, msg, n);
      th_wait_data (&h, PING_ID, want->len, WAIT_MS);
      /* Nothing more than the reply: no stray or repeated bytes.  */
      T_EQ (want->len, th_data_len (&h, PING_ID));
    }
  gint64 took = t_now_ms () - start;
  GByteArray *replies = th_data (&h, PING_ID);
  T_EQ (want->len, replies->len);
  if (memcmp (replies->data, want->str, want->len) != 0)
    T_FAIL ("replies out of order or altered: got \"%.*s\"",
            (int) MIN (replies->len, 200), (char *) replies->data);
  g_byte_array_unref (replies);
  g_string_free (want, TRUE);
  printf ("  (%d round trips beside %d idle connections: %" G_GINT64_FORMAT
          " ms)\n", ROUNDS, OUT + IN, took);

  /* The idle ones stayed idle: an OPEN each for ours, nothing at all on
     the accepted ones (their ACCEPTED carries the listener's id).  */
  th_drain_now (&h);
  for (int i = 0; i < OUT; i++)
    if (events_for (&h, (guint64) i) != 1)
      T_FAIL ("idle connection %d: %u events; seen %s", i,
              events_for (&h, (guint64) i), th_describe (&h));
  for (int i = 0; i < IN; i++)
    T_EQ (0, events_for (&h, NP_ACCEPTED_ID_BASE + (guint64) i));
  T_EQ (IN, th_count (&h, LISTENER_ID, NP_EVENT_ACCEPTED));
  T_EQ (0, th_count (&h, LISTENER_ID, NP_EVENT_ACCEPT_FAILED));
  th_check_order (&h, PING_ID);

  /* Close them all with the engine still running: the listener's close
     waits for the engine, after every close posted before it.  Then the
     set is empty and only our own sockets are left.  */
  for (int i = 0; i < OUT; i++)
    {
      np_conn_close (out[i]);
      np_conn_unref (out[i]);
    }
  for (int i = 0; i < IN; i++)
    {
      np_conn_close (in[i]);
      np_conn_unref (in[i]);
    }
  np_conn_close (ping);
  np_conn_unref (ping);
  np_conn_close (l);
  np_conn_unref (l);
  T_EQ (0, watch_count (epfd));
  wait_sockets (sockets_before + 1 + OUT + IN + 1,
                "after closing every engine connection");

  th_free (&h);
  for (int i = 0; i < OUT; i++)
    close (out_peers[i]);
  for (int i = 0; i < IN; i++)
    close (clients[i]);
  close (pp);
  close (lfd);
  T_EQ (sockets_before, count_sockets ());
  g_free (out);
  g_free (out_peers);
  g_free (in);
  g_free (clients);
}

/* 2. A paused connection whose peer goes away: no spin while paused, and
   the right CLOSED once resumed.  */

static void
test_paused_hangup_no_spin (void)
{
  enum { RESET = 1, FIN = 2 };
  THarness h;
  th_init (&h, NULL);
  int sockets_before = count_sockets ();
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  /* One at a time, so each accepted peer is known to be whose.  */
  NpConn *reset = connect_to (&h, RESET, port);
  th_wait (&h, RESET, NP_EVENT_OPEN, WAIT_MS);
  int reset_peer = t_accept (lfd, WAIT_MS);
  NpConn *fin = connect_to (&h, FIN, port);
  th_wait (&h, FIN, NP_EVENT_OPEN, WAIT_MS);
  int fin_peer = t_accept (lfd, WAIT_MS);
  np_engine_sync (h.engine);
  int epfd = engine_epoll_fd ();
  int reset_fd = engine_end_of (reset_peer);
  int fin_fd = engine_end_of (fin_peer);
  guint64 reset_ino = inode_of (reset_fd);
  guint64 fin_ino = inode_of (fin_fd);
  T_EQ (EPOLLIN, watched_for (epfd, reset_ino));
  T_EQ (EPOLLIN, watched_for (epfd, fin_ino));

  np_conn_set_paused (reset, TRUE);
  np_conn_set_paused (fin, TRUE);
  np_engine_sync (h.engine);
  /* Wanting nothing, they are out of the set: an entry with no events
     would still report hang-ups and errors, level-triggered.  */
  T_EQ (-1, watched_for (epfd, reset_ino));
  T_EQ (-1, watched_for (epfd, fin_ino));

  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  T_EQ (0, setsockopt (reset_peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
  close (reset_peer);
  close (fin_peer);
  wait_revents (reset_fd, POLLIN, POLLERR | POLLHUP, "the reset");
  wait_revents (fin_fd, POLLIN | POLLRDHUP, POLLRDHUP, "the end of file");

  guint seen = h.events->len;
  gint64 cpu = t_engine_cpu_ms ();
  th_pump_for (&h, SPIN_WINDOW_MS);
  cpu = t_engine_cpu_ms () - cpu;
  T_LE (cpu, SPIN_CPU_MAX_MS);
  /* Paused: nothing is reported yet.  */
  th_drain_now (&h);
  T_EQ (seen, h.events->len);

  np_conn_set_paused (reset, FALSE);
  np_conn_set_paused (fin, FALSE);
  NpEvent *closed = th_wait (&h, RESET, NP_EVENT_CLOSED, WAIT_MS);
  if (closed->code != ECONNRESET)
    T_FAIL ("reset: expected CLOSED with %s, got %d (%s)",
            g_strerror (ECONNRESET), closed->code,
            closed->message ? closed->message : "");
  closed = th_wait (&h, FIN, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  T_EQ (0, th_data_len (&h, RESET) + th_data_len (&h, FIN));
  th_check_order (&h, RESET);
  th_check_order (&h, FIN);
  /* Both sockets gone with their CLOSED, before any close of ours.  */
  wait_sockets (sockets_before + 1, "after both CLOSED");
  T_EQ (0, watch_count (epfd));

  np_conn_unref (reset);
  np_conn_unref (fin);
  th_free (&h);
  close (lfd);
}

/* 3. Output stuck in a full socket, reading paused, and the peer goes:
   the write fails, so output is dropped and refused, and the socket
   leaves the set without a spin.  The connection ends only when reading
   resumes, through its read side, so that nothing the peer sent first
   is lost.  */

static void
test_writer_paused_peer_gone (void)
{
  int sockets_before = count_sockets ();
  TPair p;
  t_pair_open (&p, NULL);
  int epfd = engine_epoll_fd ();
  guint64 ino = inode_of (engine_end_of (p.peer));
  np_conn_set_paused (p.conn, TRUE);
  np_engine_sync (p.h.engine);
  T_EQ (-1, watched_for (epfd, ino));

  /* The peer reads nothing.  Loopback buffers grow as they fill, so send
     until the queue stays put.  */
  guint8 chunk[65536] = { 0 };
  gsize total = 0;
  for (;;)
    {
      while (np_conn_queued (p.conn) < 2u * 1024 * 1024)
        {
          np_conn_send (p.conn, chunk, sizeof chunk);
          total += sizeof chunk;
          T_LE (total, 256u * 1024 * 1024);
        }
      th_pump (&p.h, 200);
      if (np_conn_queued (p.conn) >= 2u * 1024 * 1024)
        break;
    }
  /* Only the writing side is watched now.  */
  np_engine_sync (p.h.engine);
  T_EQ (EPOLLOUT, watched_for (epfd, ino));

  /* The peer closes with unread bytes: the kernel resets.  */
  gint64 start = t_now_ms ();
  gint64 cpu = t_engine_cpu_ms ();
  close (p.peer);
  p.peer = -1;
  /* The failed write empties the queue; a writing side deaf to hang-ups
     would spin on them instead.  */
  gint64 deadline = start + WAIT_MS;
  while (np_conn_queued (p.conn) > 0)
    {
      gint64 spent = t_engine_cpu_ms () - cpu;
      if (spent > SPIN_CPU_MAX_MS)
        T_FAIL ("engine thread spent %" G_GINT64_FORMAT " ms of CPU since "
                "the peer closed, and the output is still queued", spent);
      if (t_now_ms () > deadline)
        T_FAIL ("output still queued %d ms after the peer closed", WAIT_MS);
      th_pump (&p.h, 50);
    }
  gint64 left = start + SPIN_WINDOW_MS - t_now_ms ();
  if (left > 0)
    th_pump_for (&p.h, (int) left);
  cpu = t_engine_cpu_ms () - cpu;
  T_LE (cpu, SPIN_CPU_MAX_MS);

  /* Output is refused, nothing is watched, nothing reported while
     paused.  */
  T_EQ (0, np_conn_send (p.conn, "late", 4));
  np_engine_sync (p.h.engine);
  T_EQ (0, watch_count (epfd));
  T_ASSERT (th_find (&p.h, 1, NP_EVENT_CLOSED) == NULL);

  /* Reading again, the read side finds the reset.  */
  np_conn_set_paused (p.conn, FALSE);
  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  if (closed->code != ECONNRESET && closed->code != EPIPE)
    T_FAIL ("expected CLOSED with ECONNRESET or EPIPE, got %d (%s)",
            closed->code, closed->message ? closed->message : "");
  th_check_order (&p.h, 1);
  wait_sockets (sockets_before + 1, "after CLOSED");
  T_EQ (0, watch_count (epfd));
  t_pair_close (&p);
  T_EQ (sockets_before, count_sockets ());
}

/* 4. The set's own descriptor: high, close-on-exec, and gone with the
   engine.  */

static void
test_epoll_fd_placed (void)
{
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  gboolean room = rl.rlim_max > 1100;
  if (room)
    {
      /* As in Emacs: soft limit 1024, the engine raises it.  */
      rl.rlim_cur = 1024;
      if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
        T_FAIL ("setrlimit: %s", g_strerror (errno));
    }
  else
    printf ("  (hard limit %lu: no room above 1024; placement not "
            "checked)\n", (unsigned long) rl.rlim_max);

  GArray *before = eventpoll_fds ();
  T_EQ (0, before->len);
  g_array_unref (before);

  THarness h;
  th_init (&h, NULL);
  int epfd = engine_epoll_fd ();
  if (room)
    T_GE (epfd, 1024);
  T_ASSERT (fcntl (epfd, F_GETFD) & FD_CLOEXEC);
  g_autofree char *path = g_strdup_printf ("/proc/self/fdinfo/%d", epfd);
  g_autofree char *info = NULL;
  T_ASSERT (g_file_get_contents (path, &info, NULL, NULL));
  const char *flags = strstr (info, "flags:");
  T_ASSERT (flags != NULL);
  guint64 fl = g_ascii_strtoull (flags + strlen ("flags:"), NULL, 8);
  if (!(fl & O_CLOEXEC))
    T_FAIL ("epoll descriptor %d: flags 0%" G_GINT64_MODIFIER "o lack "
            "O_CLOEXEC", epfd, fl);
  T_EQ (0, watch_count (epfd));

  th_free (&h);
  GArray *after = eventpoll_fds ();
  T_EQ (0, after->len);
  g_array_unref (after);
}

/* 5. A forked child keeps every socket's file open: closing a descriptor
   then does not take the file out of an epoll set, only
   EPOLL_CTL_DEL does.  An entry left behind would report the peer's
   bytes and end of file for a connection already freed.  */

static void
test_fork_holds_socket (void)
{
  enum { CLOSED_ID = 1, LIVE_ID = 2, LISTENER_ID = 3 };
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *a = connect_to (&h, CLOSED_ID, port);
  th_wait (&h, CLOSED_ID, NP_EVENT_OPEN, WAIT_MS);
  int pa = t_accept (lfd, WAIT_MS);
  NpConn *b = connect_to (&h, LIVE_ID, port);
  th_wait (&h, LIVE_ID, NP_EVENT_OPEN, WAIT_MS);
  int pb = t_accept (lfd, WAIT_MS);
  guint16 lport;
  NpConn *l = engine_listen (&h, LISTENER_ID, 8, &lport);
  int c = client_connect (lport);
  NpEvent *acc = th_wait (&h, LISTENER_ID, NP_EVENT_ACCEPTED, WAIT_MS);
  guint64 d_id = acc->accepted_id;
  NpConn *d = g_steal_pointer (&acc->accepted);

  np_engine_sync (h.engine);
  int epfd = engine_epoll_fd ();
  guint64 a_ino = inode_of (engine_end_of (pa));
  guint64 d_ino = inode_of (engine_end_of (c));
  T_EQ (EPOLLIN, watched_for (epfd, a_ino));
  T_EQ (EPOLLIN, watched_for (epfd, d_ino));

  pid_t parent = getpid ();
  pid_t child = fork ();
  if (child < 0)
    T_FAIL ("fork: %s", g_strerror (errno));
  if (child == 0)
    {
      /* Async-signal-safe calls only: the parent has threads.  Gone with
         the parent whatever happens, and after a minute in any case.  */
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (getppid () != parent)
        _exit (0);
      alarm (60);
      for (;;)
        pause ();
    }

  /* Our references go too, so that a late event would find freed
     memory (ASan) and not just a closed connection.  */
  np_conn_close (a);
  np_conn_unref (a);
  np_conn_close (d);
  np_conn_unref (d);
  th_drain_now (&h);
  guint boundary = h.events->len;
  np_engine_sync (h.engine);
  T_EQ (-1, watched_for (epfd, a_ino));
  T_EQ (-1, watched_for (epfd, d_ino));
  /* The child does hold them: no end of file reached the peers.  */
  struct pollfd pfd[2] = { { .fd = pa, .events = POLLIN },
                           { .fd = c, .events = POLLIN } };
  T_EQ (0, poll (pfd, 2, 100));

  /* The peers send and go; the files, in the child, see it all.  */
  t_write_all (pa, "after close", 11);
  t_write_all (c, "after close", 11);
  close (pa);
  close (c);
  /* A round trip on a live connection: the engine has been through its
     set since.  An entry left behind stays ready (bytes and end of file,
     level-triggered) for a conn that is gone: whatever it does with the
     report, it gets it on every iteration.  */
  gint64 cpu = t_engine_cpu_ms ();
  t_write_all (pb, "ping", 4);
  th_wait_data (&h, LIVE_ID, 4, WAIT_MS);
  th_pump_for (&h, SPIN_WINDOW_MS);
  cpu = t_engine_cpu_ms () - cpu;
  T_LE (cpu, SPIN_CPU_MAX_MS);
  th_drain_now (&h);
  th_assert_quiet_after (&h, CLOSED_ID, boundary);
  th_assert_quiet_after (&h, d_id, boundary);

  kill (child, SIGKILL);
  int status;
  while (waitpid (child, &status, 0) < 0 && errno == EINTR)
    ;
  T_ASSERT (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);

  /* With the files released, still nothing; the live one still works.  */
  np_conn_send (b, "pong", 4);
  char buf[4];
  T_EQ (4, t_read_full (pb, buf, 4, WAIT_MS));
  T_ASSERT (memcmp (buf, "pong", 4) == 0);
  t_write_all (pb, "!", 1);
  th_wait_data (&h, LIVE_ID, 5, WAIT_MS);
  th_drain_now (&h);
  th_assert_quiet_after (&h, CLOSED_ID, boundary);
  th_assert_quiet_after (&h, d_id, boundary);
  th_check_order (&h, LIVE_ID);

  np_conn_close (b);
  np_conn_unref (b);
  np_conn_close (l);
  np_conn_unref (l);
  T_EQ (0, watch_count (epfd));
  th_free (&h);
  close (pb);
  close (lfd);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "poller/idle-many", test_idle_many },
    { "poller/paused-hangup-no-spin", test_paused_hangup_no_spin },
    { "poller/writer-paused-peer-gone", test_writer_paused_peer_gone },
    { "poller/epoll-fd-placed", test_epoll_fd_placed },
    { "poller/fork-holds-socket", test_fork_holds_socket },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
