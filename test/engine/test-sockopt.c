/* test-sockopt.c -- network options: set on each socket made, in order,
   before connect or bind; the first failure reported with its index and
   errno; set later on the engine's own socket through np_conn_set_option.
   Runs as root (SO_BINDTODEVICE to "lo", priorities above 6).  */

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

static NpSockopt
opt (NpSockoptName name, int value)
{
  NpSockopt o = { .name = name, .value = value };
  if (name == NP_SOCKOPT_LINGER)
    o.linger_on = 1;
  return o;
}

static NpSockopt
device (const char *name)
{
  NpSockopt o = { .name = NP_SOCKOPT_BINDTODEVICE };
  memcpy (o.device, name, MIN (strlen (name), sizeof o.device));
  return o;
}

static int
get_int (int fd, int name)
{
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt (fd, SOL_SOCKET, name, &value, &len) < 0)
    T_FAIL ("getsockopt %d: %s", name, g_strerror (errno));
  return value;
}

static void
get_device (int fd, char out[NP_SOCKOPT_DEVICE_SIZE + 1])
{
  socklen_t len = NP_SOCKOPT_DEVICE_SIZE;
  memset (out, 0, NP_SOCKOPT_DEVICE_SIZE + 1);
  if (getsockopt (fd, SOL_SOCKET, SO_BINDTODEVICE, out, &len) < 0)
    T_FAIL ("getsockopt SO_BINDTODEVICE: %s", g_strerror (errno));
}

/* Options that every check below expects, set by EXPECTED_SET.  */
static const NpSockopt *
expected_set (guint *n)
{
  static NpSockopt set[8];
  set[0] = opt (NP_SOCKOPT_KEEPALIVE, 1);
  set[1] = opt (NP_SOCKOPT_LINGER, 5);
  set[2] = opt (NP_SOCKOPT_PRIORITY, 3);
  set[3] = opt (NP_SOCKOPT_OOBINLINE, 1);
  set[4] = opt (NP_SOCKOPT_DONTROUTE, 1);
  set[5] = opt (NP_SOCKOPT_BROADCAST, 1);
  set[6] = device ("lo");
  set[7] = opt (NP_SOCKOPT_REUSEADDR, 0);
  *n = G_N_ELEMENTS (set);
  return set;
}

static void
check_expected (int fd)
{
  T_EQ (1, get_int (fd, SO_KEEPALIVE));
  T_EQ (3, get_int (fd, SO_PRIORITY));
  T_EQ (1, get_int (fd, SO_OOBINLINE));
  T_EQ (1, get_int (fd, SO_DONTROUTE));
  T_EQ (1, get_int (fd, SO_BROADCAST));
  T_EQ (0, get_int (fd, SO_REUSEADDR));
  struct linger l;
  socklen_t len = sizeof l;
  T_EQ (0, getsockopt (fd, SOL_SOCKET, SO_LINGER, &l, &len));
  T_EQ (1, l.l_onoff);
  T_EQ (5, l.l_linger);
  char dev[NP_SOCKOPT_DEVICE_SIZE + 1];
  get_device (fd, dev);
  T_STREQ ("lo", dev);
}

/* This process's socket whose local TCP port is PORT and which listens
   (LISTENING) or not: the engine's own, found from outside the engine.  */
static int
find_socket (guint16 port, gboolean listening)
{
  for (int fd = 0; fd < 65536; fd++)
    {
      struct stat st;
      if (fstat (fd, &st) < 0 || !S_ISSOCK (st.st_mode))
        continue;
      struct sockaddr_in sin;
      socklen_t len = sizeof sin;
      if (getsockname (fd, (struct sockaddr *) &sin, &len) < 0
          || sin.sin_family != AF_INET || ntohs (sin.sin_port) != port)
        continue;
      if (get_int (fd, SO_ACCEPTCONN) == listening)
        return fd;
    }
  T_FAIL ("no socket with local port %u", port);
}

static guint16
event_local_port (const NpEvent *ev)
{
  return ntohs (((const struct sockaddr_in *) &ev->local)->sin_port);
}

static void
loopback4 (guint16 port, struct sockaddr_in *sin)
{
  memset (sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons (port);
  sin->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
}

/* np_sockopt_set on a plain socket: every option, and what it reads
   back as; zeros for off and unbind.  */
static void
test_set_each (void)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  guint n;
  const NpSockopt *set = expected_set (&n);
  for (guint i = 0; i < n; i++)
    T_EQ (0, np_sockopt_set (fd, &set[i]));
  check_expected (fd);

  NpSockopt off = opt (NP_SOCKOPT_LINGER, 0);
  off.linger_on = 0;
  T_EQ (0, np_sockopt_set (fd, &off));
  struct linger l;
  socklen_t len = sizeof l;
  getsockopt (fd, SOL_SOCKET, SO_LINGER, &l, &len);
  T_EQ (0, l.l_onoff);
  NpSockopt unbind = device ("");
  T_EQ (0, np_sockopt_set (fd, &unbind));
  char dev[NP_SOCKOPT_DEVICE_SIZE + 1];
  get_device (fd, dev);
  T_STREQ ("", dev);
  NpSockopt keep_off = opt (NP_SOCKOPT_KEEPALIVE, 0);
  T_EQ (0, np_sockopt_set (fd, &keep_off));
  T_EQ (0, get_int (fd, SO_KEEPALIVE));
  close (fd);
}

static void
test_set_errors (void)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  NpSockopt invalid = { 0 };
  T_EQ (EINVAL, np_sockopt_set (fd, &invalid));
  NpSockopt nodev = device ("no-such-dev0");
  T_EQ (ENODEV, np_sockopt_set (fd, &nodev));
  /* 16 bytes and no NUL: the kernel reads 15 of them.  */
  NpSockopt longname = device ("abcdefghijklmnopq");
  T_EQ (ENODEV, np_sockopt_set (fd, &longname));
  close (fd);
}

/* The engine thread makes the socket (np_engine_connect): the options
   are on it once it is open.  */
static void
test_connect_applies (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  guint n;
  const NpSockopt *set = expected_set (&n);
  struct sockaddr_in sin;
  loopback4 (port, &sin);
  NpConnectSpec spec = { .remote = (struct sockaddr *) &sin,
                         .remote_len = sizeof sin,
                         .options = set, .n_options = n };
  NpConn *conn = np_engine_connect (h.engine, 1, &spec);
  NpEvent *open = th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  check_expected (find_socket (event_local_port (open), FALSE));

  /* Later changes go through the engine thread.  */
  NpSockopt prio = opt (NP_SOCKOPT_PRIORITY, 6);
  T_EQ (0, np_conn_set_option (conn, &prio));
  T_EQ (6, get_int (find_socket (event_local_port (open), FALSE),
                    SO_PRIORITY));
  NpSockopt nodev = device ("no-such-dev0");
  T_EQ (ENODEV, np_conn_set_option (conn, &nodev));
  NpSockopt invalid = { 0 };
  T_EQ (EINVAL, np_conn_set_option (conn, &invalid));

  np_conn_close (conn);
  np_engine_sync (h.engine);
  T_EQ (-1, np_conn_set_option (conn, &prio));
  np_conn_unref (conn);
  th_free (&h);
  close (lfd);
}

/* A name to look up: the engine thread makes the socket after the
   lookup.  The same for np_engine_connect_now on the caller's thread.  */
static void
test_connect_by_name_and_now (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  guint n;
  const NpSockopt *set = expected_set (&n);

  NpConnectSpec by_name = { .family = AF_INET, .host = "localhost",
                            .port = port, .options = set, .n_options = n };
  NpConn *a = np_engine_connect (h.engine, 1, &by_name);
  NpEvent *open = th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  check_expected (find_socket (event_local_port (open), FALSE));

  struct sockaddr_in sin;
  loopback4 (port, &sin);
  NpConnectSpec now = { .remote = (struct sockaddr *) &sin,
                        .remote_len = sizeof sin,
                        .options = set, .n_options = n };
  NpEvent *outcome = NULL;
  NpConn *b = np_engine_connect_now (h.engine, 2, &now, 1000, &outcome);
  T_ASSERT (b != NULL);
  T_ASSERT (outcome != NULL);
  T_EQ (NP_EVENT_OPEN, outcome->type);
  check_expected (find_socket (event_local_port (outcome), FALSE));
  np_event_free (outcome);

  np_conn_close (a);
  np_conn_close (b);
  np_conn_unref (a);
  np_conn_unref (b);
  th_free (&h);
  close (lfd);
}

/* The first option that fails fails the connect: its index and errno,
   no address tried, no socket left.  On every path.  */
static void
test_connect_failure (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpSockopt set[3] = { opt (NP_SOCKOPT_KEEPALIVE, 1), device ("no-such-dev0"),
                       { 0 } };
  NpSockopt bad_first[2] = { { 0 }, device ("no-such-dev0") };
  struct sockaddr_in sin;
  loopback4 (port, &sin);

  NpConnectSpec spec = { .remote = (struct sockaddr *) &sin,
                         .remote_len = sizeof sin,
                         .options = set, .n_options = 3 };
  NpConn *a = np_engine_connect (h.engine, 1, &spec);
  NpEvent *ev = th_wait (&h, 1, NP_EVENT_FAILED, WAIT_MS);
  T_ASSERT (ev->option_failed);
  T_EQ (1, ev->option_index);
  T_EQ (ENODEV, ev->code);
  T_STREQ (g_strerror (ENODEV), ev->message);
  T_EQ (0, ev->remote_len);

  /* localhost resolves to one address per family here at most; the
     first socket's failure ends it all the same.  */
  NpConnectSpec by_name = { .host = "localhost", .port = port,
                            .options = bad_first, .n_options = 2 };
  NpConn *b = np_engine_connect (h.engine, 2, &by_name);
  ev = th_wait (&h, 2, NP_EVENT_FAILED, WAIT_MS);
  T_ASSERT (ev->option_failed);
  T_EQ (0, ev->option_index);
  T_EQ (EINVAL, ev->code);

  NpEvent *outcome = NULL;
  NpConn *c = np_engine_connect_now (h.engine, 3, &spec, 1000, &outcome);
  T_ASSERT (c == NULL);
  T_ASSERT (outcome != NULL);
  T_EQ (NP_EVENT_FAILED, outcome->type);
  T_ASSERT (outcome->option_failed);
  T_EQ (1, outcome->option_index);
  T_EQ (ENODEV, outcome->code);
  np_event_free (outcome);

  /* Nobody connected.  */
  t_set_nonblock (lfd);
  T_EQ (-1, accept (lfd, NULL, NULL));
  th_check_order (&h, 1);
  np_conn_unref (a);
  np_conn_unref (b);
  th_free (&h);
  close (lfd);
}

/* A listener: options before SO_REUSEADDR's default, which a
   REUSEADDR option replaces; failure at NP_LISTEN_OPTION with the
   index; set later through the engine.  */
static void
test_listen (void)
{
  THarness h;
  th_init (&h, NULL);
  guint n;
  const NpSockopt *set = expected_set (&n);
  struct sockaddr_in sin;
  loopback4 (0, &sin);
  NpListenSpec spec = { .address = (struct sockaddr *) &sin,
                        .address_len = sizeof sin, .backlog = 5,
                        .reuseaddr = -1, .options = set, .n_options = n };
  struct sockaddr_storage bound;
  socklen_t bound_len = 0;
  int err = 0;
  NpListenStep step = NP_LISTEN_SOCKET;
  guint index = 99;
  NpConn *l = np_engine_listen (h.engine, 1, &spec, &bound, &bound_len,
                                &err, &step, &index);
  T_ASSERT (l != NULL);
  guint16 port = ntohs (((struct sockaddr_in *) &bound)->sin_port);
  int lfd = find_socket (port, TRUE);
  check_expected (lfd);  /* SO_REUSEADDR 0: the option, not the default */

  NpSockopt keep_off = opt (NP_SOCKOPT_KEEPALIVE, 0);
  T_EQ (0, np_conn_set_option (l, &keep_off));
  T_EQ (0, get_int (lfd, SO_KEEPALIVE));
  NpSockopt reuse = opt (NP_SOCKOPT_REUSEADDR, 1);
  T_EQ (0, np_conn_set_option (l, &reuse));
  T_EQ (1, get_int (lfd, SO_REUSEADDR));
  np_conn_close (l);
  np_conn_unref (l);

  /* Without a REUSEADDR option, the default is on.  */
  spec.n_options = 1;
  l = np_engine_listen (h.engine, 2, &spec, &bound, &bound_len, &err,
                        &step, &index);
  T_ASSERT (l != NULL);
  port = ntohs (((struct sockaddr_in *) &bound)->sin_port);
  T_EQ (1, get_int (find_socket (port, TRUE), SO_REUSEADDR));
  T_EQ (1, get_int (find_socket (port, TRUE), SO_KEEPALIVE));
  np_conn_close (l);
  np_conn_unref (l);

  NpSockopt failing[3] = { opt (NP_SOCKOPT_PRIORITY, 2), opt (NP_SOCKOPT_KEEPALIVE, 1),
                           device ("no-such-dev0") };
  spec.options = failing;
  spec.n_options = 3;
  int before = t_count_fds ();
  l = np_engine_listen (h.engine, 3, &spec, &bound, &bound_len, &err, &step,
                        &index);
  T_ASSERT (l == NULL);
  T_EQ (NP_LISTEN_OPTION, step);
  T_EQ (2, index);
  T_EQ (ENODEV, err);
  T_EQ (before, t_count_fds ());
  th_free (&h);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "sockopt/set-each", test_set_each },
    { "sockopt/set-errors", test_set_errors },
    { "sockopt/connect-applies", test_connect_applies },
    { "sockopt/connect-by-name-and-now", test_connect_by_name_and_now },
    { "sockopt/connect-failure", test_connect_failure },
    { "sockopt/listen", test_listen },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
