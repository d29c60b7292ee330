/* test-close.c -- np_conn_close() in every state: nothing for the
   connection after it returns, nothing leaked.  */

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <unistd.h>

#include "testlib.h"




/* Close at random points between connect and the end of a lookup.  */
static void
test_close_during_resolution (void)
{
  THarness h;
  th_init (&h, NULL);
  enum { N = 60 };
  guint boundary[N];
  for (int i = 0; i < N; i++)
    {
      /* A real lookup (in GLib's thread pool), GLib's shortcut for
         localhost, and a literal address.  */
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

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "close/during-resolution", test_close_during_resolution },
    { "close/during-connect", test_close_during_connect },
    { "close/with-queued-data", test_close_with_queued_data },
    { "close/while-data-flows", test_close_while_data_flows },
    { "close/idempotent", test_close_idempotent },
    { "close/refs-outlive-engine", test_refs_outlive_engine },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
