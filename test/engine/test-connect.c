/* test-connect.c -- establishing connections, and failing to.  */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "testlib.h"


/* A TCP port with nobody listening: bound, then released.  */
static guint16
closed_port (void)
{
  guint16 port;
  int fd = t_listen_tcp (AF_INET, &port);
  close (fd);
  return port;
}

static guint16
sin_port (const struct sockaddr_storage *ss)
{
  return ntohs (((const struct sockaddr_in *) ss)->sin_port);
}

static void
test_tcp_open_addresses (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);

  NpConn *conn = th_connect_tcp (&h, 7, "127.0.0.1", port, AF_INET);
  NpEvent *open = th_wait (&h, 7, NP_EVENT_OPEN, WAIT_MS);
  int peer = t_accept (lfd, WAIT_MS);

  T_EQ (AF_INET, open->remote.ss_family);
  T_EQ (sizeof (struct sockaddr_in), open->remote_len);
  T_EQ (port, sin_port (&open->remote));
  T_EQ (htonl (INADDR_LOOPBACK),
        ((struct sockaddr_in *) &open->remote)->sin_addr.s_addr);

  /* Our local address is what the peer sees as its peer.  */
  struct sockaddr_storage seen;
  socklen_t seen_len = sizeof seen;
  getpeername (peer, (struct sockaddr *) &seen, &seen_len);
  T_EQ (AF_INET, open->local.ss_family);
  T_EQ (seen_len, open->local_len);
  T_EQ (sin_port (&seen), sin_port (&open->local));
  T_EQ (0, open->code);
  T_ASSERT (open->message == NULL);

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
}

static void
test_tcp_refused (void)
{
  THarness h;
  th_init (&h, NULL);
  NpConn *conn = th_connect_tcp (&h, 1, "127.0.0.1", closed_port (), AF_INET);
  NpEvent *failed = th_wait (&h, 1, NP_EVENT_FAILED, WAIT_MS);
  T_EQ (ECONNREFUSED, failed->code);
  T_EQ (111, failed->code);
  T_EQ (FALSE, failed->resolve_error);
  T_STREQ ("Connection refused", failed->message);
  T_EQ (1, h.events->len);
  /* After FAILED, output is refused.  */
  T_EQ (0, np_conn_send (conn, "x", 1));
  np_conn_unref (conn);
  th_free (&h);
}

static void
test_unresolvable (void)
{
  THarness h;
  th_init (&h, NULL);
  NpConn *conn = th_connect_tcp (&h, 2, "no-such-host.invalid", 80,
                                 AF_UNSPEC);
  NpEvent *failed = th_wait (&h, 2, NP_EVENT_FAILED, 60000);
  T_EQ (TRUE, failed->resolve_error);
  T_EQ (0, failed->code);
  T_ASSERT (failed->message != NULL);
  /* Without a reachable DNS server the resolver says the latter.  */
  if (strcmp (failed->message, "Name or service not known") != 0
      && strcmp (failed->message, "Temporary failure in name resolution")
           != 0)
    T_FAIL ("unexpected message \"%s\"", failed->message);
  T_EQ (1, h.events->len);
  np_conn_unref (conn);
  th_free (&h);
}

static NpConn *
connect_path (THarness *h, guint64 id, const char *path)
{
  NpConnectSpec spec = { .family = AF_UNIX, .path = path };
  return np_engine_connect (h->engine, id, &spec);
}

static void
test_unix_missing (void)
{
  THarness h;
  th_init (&h, NULL);
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "nobody", NULL);
  NpConn *conn = connect_path (&h, 3, path);
  NpEvent *failed = th_wait (&h, 3, NP_EVENT_FAILED, WAIT_MS);
  T_EQ (ENOENT, failed->code);
  T_EQ (FALSE, failed->resolve_error);
  T_STREQ ("No such file or directory", failed->message);
  np_conn_unref (conn);
  th_free (&h);
  t_rmdir (dir);
}

static void
test_unix_not_a_socket (void)
{
  THarness h;
  th_init (&h, NULL);
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "plain", NULL);
  T_ASSERT (g_file_set_contents (path, "x", 1, NULL));
  NpConn *conn = connect_path (&h, 4, path);
  NpEvent *failed = th_wait (&h, 4, NP_EVENT_FAILED, WAIT_MS);
  T_EQ (ECONNREFUSED, failed->code);
  np_conn_unref (conn);
  th_free (&h);
  t_rmdir (dir);
}

static void
test_unix_path_too_long (void)
{
  THarness h;
  th_init (&h, NULL);
  char path[200];
  memset (path, 'a', sizeof path - 1);
  path[sizeof path - 1] = 0;
  NpConn *conn = connect_path (&h, 4, path);
  NpEvent *failed = th_wait (&h, 4, NP_EVENT_FAILED, WAIT_MS);
  T_EQ (ENAMETOOLONG, failed->code);
  np_conn_unref (conn);
  th_free (&h);
}

static void
test_unix_open (void)
{
  THarness h;
  th_init (&h, NULL);
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "sock", NULL);
  int lfd = t_listen_unix (path);
  NpConn *conn = connect_path (&h, 5, path);
  NpEvent *open = th_wait (&h, 5, NP_EVENT_OPEN, WAIT_MS);
  int peer = t_accept (lfd, WAIT_MS);
  T_EQ (AF_UNIX, open->remote.ss_family);
  T_STREQ (path, ((struct sockaddr_un *) &open->remote)->sun_path);

  np_conn_send (conn, "ping", 4);
  char buf[4];
  T_EQ (4, t_read_full (peer, buf, 4, WAIT_MS));
  T_ASSERT (memcmp (buf, "ping", 4) == 0);

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
  t_rmdir (dir);
}

static void
test_remote_sockaddr (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  struct sockaddr_in sin = {
    .sin_family = AF_INET,
    .sin_port = htons (port),
    .sin_addr.s_addr = htonl (INADDR_LOOPBACK),
  };
  NpConnectSpec spec = { .family = AF_INET,
                         .remote = (struct sockaddr *) &sin,
                         .remote_len = sizeof sin };
  NpConn *conn = np_engine_connect (h.engine, 6, &spec);
  NpEvent *open = th_wait (&h, 6, NP_EVENT_OPEN, WAIT_MS);
  T_EQ (port, sin_port (&open->remote));
  int peer = t_accept (lfd, WAIT_MS);

  /* And a refused one, by address.  */
  sin.sin_port = htons (closed_port ());
  NpConn *refused = np_engine_connect (h.engine, 8, &spec);
  T_EQ (ECONNREFUSED, th_wait (&h, 8, NP_EVENT_FAILED, WAIT_MS)->code);

  np_conn_close (conn);
  np_conn_unref (conn);
  np_conn_unref (refused);
  th_free (&h);
  close (peer);
  close (lfd);
}

/* "localhost" may give ::1 before 127.0.0.1: with only IPv4 listening the
   engine must go on to the next address.  */
static void
test_localhost_tries_each_address (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *conn = th_connect_tcp (&h, 9, "localhost", port, AF_UNSPEC);
  NpEvent *open = th_wait (&h, 9, NP_EVENT_OPEN, WAIT_MS);
  T_EQ (AF_INET, open->remote.ss_family);
  int peer = t_accept (lfd, WAIT_MS);
  close (peer);
  close (lfd);

  /* Nobody on any address: the last errno is reported.  */
  NpConn *none = th_connect_tcp (&h, 10, "localhost", closed_port (),
                                 AF_UNSPEC);
  T_EQ (ECONNREFUSED, th_wait (&h, 10, NP_EVENT_FAILED, WAIT_MS)->code);

  np_conn_close (conn);
  np_conn_unref (conn);
  np_conn_unref (none);
  th_free (&h);
}

static void
test_ipv6 (void)
{
  int probe = socket (AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  gboolean have_v6 = probe >= 0
                     && bind (probe, (struct sockaddr *) &sin6,
                              sizeof sin6) == 0;
  if (probe >= 0)
    close (probe);
  if (!have_v6)
    {
      printf ("  (no IPv6 loopback here; skipped)\n");
      return;
    }

  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET6, &port);
  NpConn *conn = th_connect_tcp (&h, 11, "::1", port, AF_INET6);
  NpEvent *open = th_wait (&h, 11, NP_EVENT_OPEN, WAIT_MS);
  T_EQ (AF_INET6, open->remote.ss_family);
  T_EQ (AF_INET6, open->local.ss_family);
  int peer = t_accept (lfd, WAIT_MS);

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
}

static void
test_many_connects (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  enum { N = 100 };
  NpConn *conns[N];
  int peers[N];
  for (int i = 0; i < N; i++)
    conns[i] = th_connect_tcp (&h, (guint64) i + 100, "127.0.0.1", port,
                               AF_INET);
  for (int i = 0; i < N; i++)
    peers[i] = t_accept (lfd, WAIT_MS);
  for (int i = 0; i < N; i++)
    {
      th_wait (&h, (guint64) i + 100, NP_EVENT_OPEN, WAIT_MS);
      T_EQ (1, th_count (&h, (guint64) i + 100, NP_EVENT_OPEN));
    }
  for (int i = 0; i < N; i++)
    {
      np_conn_close (conns[i]);
      np_conn_unref (conns[i]);
      close (peers[i]);
    }
  th_free (&h);
  close (lfd);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "connect/tcp-open-addresses", test_tcp_open_addresses },
    { "connect/tcp-refused", test_tcp_refused },
    { "connect/unresolvable", test_unresolvable },
    { "connect/unix-missing", test_unix_missing },
    { "connect/unix-not-a-socket", test_unix_not_a_socket },
    { "connect/unix-path-too-long", test_unix_path_too_long },
    { "connect/unix-open", test_unix_open },
    { "connect/remote-sockaddr", test_remote_sockaddr },
    { "connect/localhost-tries-each-address",
      test_localhost_tries_each_address },
    { "connect/ipv6", test_ipv6 },
    { "connect/many", test_many_connects },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
