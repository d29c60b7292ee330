/* test-close.c -- np_conn_close() in every state: nothing for the
   connection after it returns, nothing leaked.  */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"




/* Close at random points between connect and the end of a lookup.  */
static void
test_close_during_resolution (void)
{
  THarness h;
  th_init (&h, NULL);
  /* The name does not exist; closed as soon as connected, its lookup is
     still running.  That lookup is GIO's, in GLib's thread pool, when
     it stays on this machine; otherwise the engine's stalling test
     resolver takes it, and it is still running for certain, without a
     DNS query.  */
  if (!t_lookups_local ())
    np_engine_set_resolver (h.engine, NP_RESOLVER_STALL, NP_RESOLVE_NOT_FOUND,
                            NULL);
  enum { N = 60 };
  guint boundary[N];
  for (int i = 0; i < N; i++)
    {
      /* A lookup, GLib's shortcut for localhost (which no resolver
         sees), and a literal address.  */
      static const char *const names[] = { "no-such-host.invalid",
                                           "localhost", "127.0.0.1" };
      NpConn *conn = th_connect_tcp (&h, (guint64) i, names[i % 3], 9,
                                     AF_UNSPEC);
      if (i % 3)
        usleep ((useconds_t) g_random_int_range (0, 3000));
      np_conn_close (conn);
      np_conn_unref (conn);
      th_drain_now (&h);
      boundary[i] = h.events->len;
    }
  th_pump (&h, 500);
  th_drain_now (&h);
  for (int i = 0; i < N; i++)
    th_assert_quiet_after (&h, (guint64) i, boundary[i]);
  th_free (&h);
}

/* A listener whose accept queue is full drops SYNs, so a connect to it
   stays in progress.  */
static void
test_close_during_connect (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  listen (lfd, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_port = htons (port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int fillers[4];
  for (int i = 0; i < 4; i++)
    {
      fillers[i] = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK
                                      | SOCK_CLOEXEC, 0);
      connect (fillers[i], (struct sockaddr *) &sin, sizeof sin);
    }
  usleep (100000);

  NpConn *conn = th_connect_tcp (&h, 1, "127.0.0.1", port, AF_INET);
  th_pump (&h, 300);
  T_EQ (0, h.events->len);  /* still connecting */
  np_conn_close (conn);
  np_conn_unref (conn);
  th_drain_now (&h);
  guint boundary = h.events->len;
  th_pump (&h, 300);
  th_assert_quiet_after (&h, 1, boundary);
  th_free (&h);
  for (int i = 0; i < 4; i++)
    close (fillers[i]);
  close (lfd);
}

static void
test_close_with_queued_data (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *conn = th_connect_tcp (&h, 1, "127.0.0.1", port, AF_INET);
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  int peer = t_accept (lfd, WAIT_MS);

  char msg[1000];
  for (gsize i = 0; i < sizeof msg; i++)
    msg[i] = (char) ('a' + i % 26);
  np_conn_send (conn, msg, sizeof msg);
  np_conn_close (conn);
  T_EQ (0, np_conn_send (conn, "more", 4));  /* refused after close */

  char buf[2000];
  T_EQ (sizeof msg, t_read_full (peer, buf, sizeof buf, WAIT_MS));
  T_ASSERT (memcmp (buf, msg, sizeof msg) == 0);
  T_EQ (0, recv (peer, buf, sizeof buf, 0));  /* then EOF */

  th_drain_now (&h);
  guint boundary = h.events->len;
  th_pump (&h, 200);
  th_assert_quiet_after (&h, 1, boundary);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
}

static guint8
close_pattern (gsize i)
{
  return (guint8) ((i * 2654435761u) >> 13);
}

/* Far more queued than the socket takes, then closed while the peer
   reads nothing: the engine goes on writing after the close, and the
   peer gets every byte, in order, then the end.  No event comes.  */
static void
test_close_writes_out_a_long_queue (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  enum { TOTAL = 32 * 1024 * 1024, CHUNK = 1024 * 1024 };
  guint8 *out = g_malloc (TOTAL);
  for (gsize i = 0; i < TOTAL; i++)
    out[i] = close_pattern (i);
  gsize queued = 0;
  for (gsize off = 0; off < TOTAL; off += CHUNK)
    queued = np_conn_send (p.conn, out + off, CHUNK);
  T_GE (queued, CHUNK);
  th_drain_now (&p.h);
  guint boundary = p.h.events->len;
  T_EQ (0, np_engine_lingering (p.h.engine));
  np_conn_close (p.conn);
  /* Counted while it writes: what a stop would drop.  */
  np_engine_sync (p.h.engine);
  T_EQ (1, np_engine_lingering (p.h.engine));

  guint8 *in = g_malloc (TOTAL + 1);
  T_EQ (TOTAL, t_read_full (p.peer, in, TOTAL + 1, 30000));
  T_ASSERT (memcmp (in, out, TOTAL) == 0);
  th_pump (&p.h, 100);
  th_assert_quiet_after (&p.h, 1, boundary);
  T_EQ (0, np_engine_lingering (p.h.engine));
  g_free (in);
  g_free (out);
  t_pair_close (&p);
}

/* A closed stream whose peer never reads: once linger_ms pass with
   nothing written, the engine drops the rest and closes the socket,
   and the peer gets only what the kernel held.  */
static void
test_close_gives_up_on_a_stuck_peer (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.linger_ms = 200;
  TPair p;
  t_pair_open (&p, &limits);
  gsize total = 0;
  t_send_until_queued (p.conn, 4u * 1024 * 1024, &total);
  int before = t_count_fds ();
  np_conn_close (p.conn);
  /* Still open a while after the close, then closed by the engine.  */
  usleep (50 * 1000);
  T_EQ (before, t_count_fds ());
  T_EQ (1, np_engine_lingering (p.h.engine));
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (t_count_fds () == before && t_now_ms () < deadline)
    usleep (10 * 1000);
  T_EQ (before - 1, t_count_fds ());
  T_EQ (0, np_engine_lingering (p.h.engine));

  /* Reading now, the peer finds less than was sent, then the end.  */
  t_set_nonblock (p.peer);
  guint8 *sink = g_malloc (total);
  gsize got = 0;
  gboolean ended = FALSE;
  deadline = t_now_ms () + WAIT_MS;
  while (!ended && t_now_ms () < deadline)
    {
      ssize_t n = recv (p.peer, sink, total, 0);
      if (n > 0)
        got += (gsize) n;
      else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        ended = TRUE;
      else
        usleep (1000);
    }
  T_ASSERT (ended);
  T_LE (got, total - 1);
  g_free (sink);
  t_pair_close (&p);
}

/* With linger off, a close drops what is queued and closes at once.  */
static void
test_close_without_linger (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  gsize total = 0;
  t_send_until_queued (p.conn, 1024 * 1024, &total);
  int before = t_count_fds ();
  np_conn_set_linger (p.conn, FALSE);
  np_conn_close (p.conn);
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (t_count_fds () == before && t_now_ms () < deadline)
    usleep (1000);
  T_EQ (before - 1, t_count_fds ());
  T_LE (t_now_ms () - (deadline - WAIT_MS), 1000);
  T_EQ (0, np_engine_lingering (p.h.engine));
  t_pair_close (&p);
}

typedef struct
{
  int fd;
  volatile int stop;
} Flood;

static void *
flood_thread (void *data)
{
  Flood *f = data;
  char chunk[4096] = { 0 };
  while (!__atomic_load_n (&f->stop, __ATOMIC_ACQUIRE))
    if (send (f->fd, chunk, sizeof chunk, MSG_NOSIGNAL | MSG_DONTWAIT) < 0
        && errno != EAGAIN)
      break;
    else
      usleep (100);
  return NULL;
}

/* Data keeps arriving while the connection is closed: the line holds.  */
static void
test_close_while_data_flows (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *conn = th_connect_tcp (&h, 1, "127.0.0.1", port, AF_INET);
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  int peer = t_accept (lfd, WAIT_MS);
  Flood f = { .fd = peer };
  pthread_t thread;
  pthread_create (&thread, NULL, flood_thread, &f);
  th_wait_data (&h, 1, 100000, WAIT_MS);

  np_conn_close (conn);
  th_drain_now (&h);
  guint boundary = h.events->len;
  th_pump (&h, 300);
  th_drain_now (&h);
  th_assert_quiet_after (&h, 1, boundary);

  __atomic_store_n (&f.stop, 1, __ATOMIC_RELEASE);
  pthread_join (thread, NULL);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
}

/* Closing twice, and closing after the connection failed, are no-ops.  */
static void
test_close_idempotent (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  close (lfd);
  NpConn *conn = th_connect_tcp (&h, 1, "127.0.0.1", port, AF_INET);
  th_wait (&h, 1, NP_EVENT_FAILED, WAIT_MS);
  np_conn_close (conn);
  np_conn_close (conn);
  th_pump (&h, 100);
  T_EQ (1, h.events->len);
  np_conn_unref (conn);
  th_free (&h);
}

/* The binding may let go of a connection it never closed (a finalizer),
   and may hold one past np_engine_free().  */
static void
test_refs_outlive_engine (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *dropped = th_connect_tcp (&h, 1, "127.0.0.1", port, AF_INET);
  NpConn *kept = th_connect_tcp (&h, 2, "127.0.0.1", port, AF_INET);
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  th_wait (&h, 2, NP_EVENT_OPEN, WAIT_MS);
  int p1 = t_accept (lfd, WAIT_MS);
  int p2 = t_accept (lfd, WAIT_MS);
  np_conn_unref (dropped);   /* the engine still holds it: stays open */
  t_write_all (p1, "x", 1);
  th_wait_data (&h, 1, 1, WAIT_MS);
  th_free (&h);              /* closes both sockets */
  char c;
  T_EQ (0, t_read_full (p1, &c, 1, WAIT_MS));
  T_EQ (0, t_read_full (p2, &c, 1, WAIT_MS));
  np_conn_unref (kept);      /* after the engine is gone */
  close (p1);
  close (p2);
  close (lfd);
}

/* A connection np_engine_connect_now() opened: its hand-over to the
   engine is still queued, quietly.  */
static NpConn *
open_now (THarness *h, guint64 id, guint16 port)
{
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_port = htons (port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  NpConnectSpec spec = { .family = AF_INET,
                         .remote = (const struct sockaddr *) &sin,
                         .remote_len = sizeof sin };
  NpEvent *open = NULL;
  NpConn *conn = np_engine_connect_now (h->engine, id, &spec, WAIT_MS,
                                        &open);
  T_ASSERT (conn != NULL && open != NULL && open->type == NP_EVENT_OPEN);
  np_event_free (open);
  return conn;
}

/* The socket number of CONN's peer end, found by the peer's address.  */
static int
own_socket_of (int peer)
{
  struct sockaddr_storage want;
  socklen_t want_len = sizeof want;
  T_EQ (0, getpeername (peer, (struct sockaddr *) &want, &want_len));
  for (int fd = 1024; fd < 65536; fd++)
    {
      struct sockaddr_storage got;
      socklen_t got_len = sizeof got;
      if (getsockname (fd, (struct sockaddr *) &got, &got_len) == 0
          && got_len == want_len && memcmp (&got, &want, got_len) == 0)
        return fd;
    }
  T_FAIL ("no socket of ours is the peer's peer");
  return -1;
}

/* An open stream with nothing queued is closed by np_conn_close()
   itself: its number is free when the call returns, and may be taken at
   once by anyone.  The engine, forgetting the connection later (the
   hand-over of one np_engine_connect_now() opened still queued before
   it), must then leave that number alone.  */
static void
test_close_here_number_reused (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);

  for (int round = 0; round < 2; round++)
    {
      guint64 id = (guint64) round + 1;
      NpConn *conn;
      if (round == 0)
        conn = open_now (&h, id, port);
      else
        {
          conn = th_connect_tcp (&h, id, "127.0.0.1", port, AF_INET);
          th_wait (&h, id, NP_EVENT_OPEN, WAIT_MS);
        }
      int peer = t_accept (lfd, WAIT_MS);
      int number = own_socket_of (peer);
      np_conn_close (conn);
      th_drain_now (&h);
      guint boundary = h.events->len;

      /* Closed already: the number is free, and taken.  */
      int other = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      T_EQ (number, fcntl (other, F_DUPFD_CLOEXEC, number));
      close (other);
      struct sockaddr_in sin = { .sin_family = AF_INET,
                                 .sin_port = htons (port),
                                 .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
      T_EQ (0, connect (number, (struct sockaddr *) &sin, sizeof sin));
      int other_peer = t_accept (lfd, WAIT_MS);

      /* Now the engine runs what was queued for the old connection.  */
      np_engine_sync (h.engine);
      th_drain_now (&h);
      th_assert_quiet_after (&h, id, boundary);

      /* The new socket is whole: still open, in both directions, and
         nobody else reads it.  */
      t_write_all (number, "out", 3);
      char buf[3];
      T_EQ (3, t_read_full (other_peer, buf, 3, WAIT_MS));
      t_write_all (other_peer, "in!", 3);
      usleep (50000);
      T_EQ (3, t_read_full (number, buf, 3, WAIT_MS));
      T_ASSERT (memcmp (buf, "in!", 3) == 0);

      /* The old peer read the end.  */
      T_EQ (0, t_read_full (peer, buf, 1, WAIT_MS));
      np_conn_unref (conn);
      close (number);
      close (other_peer);
      close (peer);
    }
  th_free (&h);
  close (lfd);
}

/* Connections opened and closed in a loop that never waits: each
   socket is gone when np_conn_close() returns, and the engine, woken
   once in a while, forgets them all.  */
static void
test_close_here_in_a_loop (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  int before = t_count_fds ();
  for (int i = 0; i < 300; i++)
    {
      NpConn *conn = open_now (&h, (guint64) i + 1, port);
      int peer = t_accept (lfd, WAIT_MS);
      np_conn_close (conn);
      np_conn_unref (conn);
      close (peer);
      T_EQ (before, t_count_fds ());
    }
  th_pump (&h, 100);
  T_EQ (0, h.events->len);
  th_free (&h);
  close (lfd);
}

/* np_conn_close_deferred(): a batch of closes left to the engine, which
   does nothing of them (the peers see no end) until np_engine_flush()
   wakes it once for all.  */
static void
test_close_deferred_until_flush (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  int before = t_count_fds ();
  enum { N = 8 };
  NpConn *conns[N];
  int peers[N];
  for (int i = 0; i < N; i++)
    {
      conns[i] = open_now (&h, (guint64) i + 1, port);
      peers[i] = t_accept (lfd, WAIT_MS);
    }
  /* The engine has taken everything over and sleeps.  */
  np_engine_sync (h.engine);
  th_drain_now (&h);
  guint boundary = h.events->len;

  for (int i = 0; i < N; i++)
    np_conn_close_deferred (conns[i]);
  struct pollfd pfd = { .fd = peers[0], .events = POLLIN };
  T_EQ (0, poll (&pfd, 1, 100));

  np_engine_flush (h.engine);
  char byte;
  for (int i = 0; i < N; i++)
    {
      T_EQ (0, t_read_full (peers[i], &byte, 1, WAIT_MS));
      close (peers[i]);
      np_conn_unref (conns[i]);
    }
  np_engine_sync (h.engine);
  th_drain_now (&h);
  for (int i = 0; i < N; i++)
    th_assert_quiet_after (&h, (guint64) i + 1, boundary);
  T_EQ (before, t_count_fds ());
  th_free (&h);
  close (lfd);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "close/during-resolution", test_close_during_resolution },
    { "close/during-connect", test_close_during_connect },
    { "close/with-queued-data", test_close_with_queued_data },
    { "close/writes-out-a-long-queue", test_close_writes_out_a_long_queue },
    { "close/gives-up-on-a-stuck-peer", test_close_gives_up_on_a_stuck_peer },
    { "close/without-linger", test_close_without_linger },
    { "close/while-data-flows", test_close_while_data_flows },
    { "close/idempotent", test_close_idempotent },
    { "close/refs-outlive-engine", test_refs_outlive_engine },
    { "close/here-number-reused", test_close_here_number_reused },
    { "close/here-in-a-loop", test_close_here_in_a_loop },
    { "close/deferred-until-flush", test_close_deferred_until_flush },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
