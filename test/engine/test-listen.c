/* test-listen.c -- listeners: binding, its errors, accepting, pausing,
   closing, and connections accepted by the thousand.  */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "testlib.h"


/* Addresses.  */

static guint16
port_of (const struct sockaddr_storage *ss)
{
  if (ss->ss_family == AF_INET)
    return ntohs (((const struct sockaddr_in *) ss)->sin_port);
  return ntohs (((const struct sockaddr_in6 *) ss)->sin6_port);
}

/* Same family, address and port (or path).  */
static gboolean
same_address (const struct sockaddr_storage *a,
              const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return FALSE;
  switch (a->ss_family)
    {
    case AF_INET:
      {
        const struct sockaddr_in *x = (const void *) a, *y = (const void *) b;
        return x->sin_port == y->sin_port
               && x->sin_addr.s_addr == y->sin_addr.s_addr;
      }
    case AF_INET6:
      {
        const struct sockaddr_in6 *x = (const void *) a;
        const struct sockaddr_in6 *y = (const void *) b;
        return x->sin6_port == y->sin6_port
               && memcmp (&x->sin6_addr, &y->sin6_addr,
                          sizeof x->sin6_addr) == 0;
      }
    case AF_UNIX:
      return strcmp (((const struct sockaddr_un *) a)->sun_path,
                     ((const struct sockaddr_un *) b)->sun_path) == 0;
    default:
      return FALSE;
    }
}

/* Harness helpers.  */



/* The Nth ACCEPTED event for listener ID, waiting for it.  */
static NpEvent *
wait_accepted (THarness *h, guint64 id, guint nth, int timeout_ms)
{
  gint64 deadline = t_now_ms () + timeout_ms;
  for (;;)
    {
      guint seen = 0;
      for (guint i = 0; i < h->events->len; i++)
        {
          NpEvent *e = g_ptr_array_index (h->events, i);
          if (e->id == id && e->type == NP_EVENT_ACCEPTED && seen++ == nth)
            return e;
        }
      gint64 left = deadline - t_now_ms ();
      if (left <= 0)
        T_FAIL ("timed out waiting for accepted connection %u on %"
                G_GUINT64_FORMAT "; seen %s", nth, id, th_describe (h));
      th_pump (h, (int) MIN (left, 100));
    }
}

/* Every accepted connection's ACCEPTED comes before its own events, and
   its CLOSED, if any, is its last.  */
static void
check_accepted_order (THarness *h)
{
  g_autoptr (GHashTable) announced = g_hash_table_new_full (
    g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr (GHashTable) closed = g_hash_table_new_full (
    g_int64_hash, g_int64_equal, g_free, NULL);
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->type == NP_EVENT_ACCEPTED)
        {
          T_ASSERT (e->accepted_id >= NP_ACCEPTED_ID_BASE);
          gint64 *key = g_new (gint64, 1);
          *key = (gint64) e->accepted_id;
          if (!g_hash_table_add (announced, key))
            T_FAIL ("accepted id %" G_GUINT64_FORMAT " given twice",
                    e->accepted_id);
          continue;
        }
      if (e->id < NP_ACCEPTED_ID_BASE)
        continue;
      gint64 id = (gint64) e->id;
      if (!g_hash_table_contains (announced, &id))
        T_FAIL ("event %u for %" G_GUINT64_FORMAT " before its ACCEPTED",
                i, e->id);
      if (g_hash_table_contains (closed, &id))
        T_FAIL ("event %u for %" G_GUINT64_FORMAT " after its CLOSED", i,
                e->id);
      if (e->type == NP_EVENT_CLOSED)
        {
          gint64 *key = g_new (gint64, 1);
          *key = id;
          g_hash_table_add (closed, key);
        }
    }
}

static NpConn *
listen_or_fail (THarness *h, guint64 id, const struct sockaddr_storage *addr,
                socklen_t len, int reuseaddr, struct sockaddr_storage *bound,
                socklen_t *bound_len)
{
  NpListenSpec spec = { .address = (const struct sockaddr *) addr,
                        .address_len = len, .backlog = 128,
                        .reuseaddr = reuseaddr };
  int err = 0;
  NpListenStep step = NP_LISTEN_SOCKET;
  NpConn *l = np_engine_listen (h->engine, id, &spec, bound, bound_len, &err,
                                &step, NULL);
  if (!l)
    T_FAIL ("np_engine_listen: step %d: %s", step, g_strerror (err));
  return l;
}

static NpConn *
listen_loopback (THarness *h, guint64 id, int family,
                 struct sockaddr_storage *bound)
{
  struct sockaddr_storage addr;
  socklen_t len = t_loopback (family, 0, &addr);
  socklen_t bound_len = 0;
  NpConn *l = listen_or_fail (h, id, &addr, len, -1, bound, &bound_len);
  T_EQ (len, bound_len);
  return l;
}

/* Expects np_engine_listen to fail with ERR at STEP, leaving no
   descriptor behind.  */
static void
expect_listen_error (THarness *h, const struct sockaddr_storage *addr,
                     socklen_t len, int reuseaddr, int want_err,
                     NpListenStep want_step)
{
  NpListenSpec spec = { .address = (const struct sockaddr *) addr,
                        .address_len = len, .backlog = 5,
                        .reuseaddr = reuseaddr };
  int before = t_count_fds ();
  int err = 0;
  NpListenStep step = NP_LISTEN_LISTEN;
  struct sockaddr_storage bound;
  socklen_t bound_len = 0;
  NpConn *l = np_engine_listen (h->engine, 1, &spec, &bound, &bound_len,
                                &err, &step, NULL);
  T_ASSERT (l == NULL);
  if (err != want_err)
    T_FAIL ("expected %s, got %s", g_strerror (want_err), g_strerror (err));
  T_EQ (want_step, step);
  T_EQ (before, t_count_fds ());
}

/* A blocking client socket connected to ADDR (the kernel completes the
   handshake from the backlog, accepted or not).  */
static int
client_connect (const struct sockaddr_storage *addr)
{
  socklen_t len = addr->ss_family == AF_INET ? sizeof (struct sockaddr_in)
                  : addr->ss_family == AF_INET6 ? sizeof (struct sockaddr_in6)
                  : sizeof (struct sockaddr_un);
  int fd = socket (addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    T_FAIL ("socket: %s", g_strerror (errno));
  if (connect (fd, (const struct sockaddr *) addr, len) < 0)
    T_FAIL ("connect: %s", g_strerror (errno));
  return fd;
}

static struct sockaddr_storage
local_of (int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset (&ss, 0, sizeof ss);
  getsockname (fd, (struct sockaddr *) &ss, &len);
  return ss;
}

/* The descriptor of this process whose socket is bound to LOCAL and,
   when PEER is given, connected to it; LISTENING picks listeners.  */
static int
find_socket (const struct sockaddr_storage *local,
             const struct sockaddr_storage *peer, gboolean listening)
{
  DIR *dir = opendir ("/proc/self/fd");
  T_ASSERT (dir != NULL);
  int found = -1;
  struct dirent *entry;
  while (found < 0 && (entry = readdir (dir)))
    {
      int fd = atoi (entry->d_name);
      if (entry->d_name[0] == '.' || fd == dirfd (dir))
        continue;
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      memset (&ss, 0, sizeof ss);
      if (getsockname (fd, (struct sockaddr *) &ss, &len) < 0
          || !same_address (&ss, local))
        continue;
      int acc = 0;
      socklen_t alen = sizeof acc;
      getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen);
      if (!acc != !listening)
        continue;
      if (peer)
        {
          len = sizeof ss;
          memset (&ss, 0, sizeof ss);
          if (getpeername (fd, (struct sockaddr *) &ss, &len) < 0
              || !same_address (&ss, peer))
            continue;
        }
      found = fd;
    }
  closedir (dir);
  return found;
}

static int
sockopt_int (int fd, int level, int name)
{
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt (fd, level, name, &value, &len) < 0)
    T_FAIL ("getsockopt: %s", g_strerror (errno));
  return value;
}

/* Where the engine put a listener: high, close-on-exec, non-blocking.  */
static int
check_listener_fd (const struct sockaddr_storage *bound)
{
  int fd = find_socket (bound, NULL, TRUE);
  T_ASSERT (fd >= 0);
  T_GE (fd, 1024);
  T_ASSERT (fcntl (fd, F_GETFD) & FD_CLOEXEC);
  T_ASSERT (fcntl (fd, F_GETFL) & O_NONBLOCK);
  return fd;
}

/* One client through ACCEPTED, and bytes both ways.  */
static void
exchange (THarness *h, NpEvent *acc, int client, int n)
{
  char msg[64], buf[64];
  int len = g_snprintf (msg, sizeof msg, "to engine %d", n);
  t_write_all (client, msg, (gsize) len);
  th_wait_data (h, acc->accepted_id, (gsize) len, WAIT_MS);
  g_autoptr (GByteArray) got = th_data (h, acc->accepted_id);
  T_EQ (len, got->len);
  T_ASSERT (memcmp (got->data, msg, (gsize) len) == 0);

  len = g_snprintf (msg, sizeof msg, "to client %d", n);
  np_conn_send (acc->accepted, msg, (gsize) len);
  T_EQ (len, t_read_full (client, buf, (gsize) len, WAIT_MS));
  T_ASSERT (memcmp (buf, msg, (gsize) len) == 0);
}

/* Waits until connecting to ADDR is refused: the listener is closed.  */
static void
wait_refused (const struct sockaddr_storage *addr)
{
  gint64 deadline = t_now_ms () + WAIT_MS;
  for (;;)
    {
      int fd = socket (addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int rc = connect (fd, (const struct sockaddr *) addr,
                        addr->ss_family == AF_INET
                          ? sizeof (struct sockaddr_in)
                          : sizeof (struct sockaddr_in6));
      int err = errno;
      close (fd);
      if (rc < 0 && err == ECONNREFUSED)
        return;
      if (t_now_ms () > deadline)
        T_FAIL ("the closed listener's port still answers");
      usleep (20000);
    }
}

/* Cases.  */

static void
test_inet4 (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 3, AF_INET, &bound);
  T_EQ (AF_INET, bound.ss_family);
  T_ASSERT (port_of (&bound) != 0);
  T_EQ (htonl (INADDR_LOOPBACK),
        ((struct sockaddr_in *) &bound)->sin_addr.s_addr);
  int lfd = check_listener_fd (&bound);
  T_EQ (1, sockopt_int (lfd, SOL_SOCKET, SO_REUSEADDR));

  int c = client_connect (&bound);
  NpEvent *acc = wait_accepted (&h, 3, 0, WAIT_MS);
  T_EQ (NP_ACCEPTED_ID_BASE, acc->accepted_id);
  T_ASSERT (acc->accepted != NULL);
  T_ASSERT (same_address (&acc->local, &bound));
  T_EQ (sizeof (struct sockaddr_in), acc->local_len);
  struct sockaddr_storage cl = local_of (c);
  T_ASSERT (same_address (&acc->remote, &cl));
  T_EQ (sizeof (struct sockaddr_in), acc->remote_len);
  exchange (&h, acc, c, 0);

  np_conn_close (l);
  th_drain_now (&h);
  guint boundary = h.events->len;
  wait_refused (&bound);
  th_pump (&h, 100);
  th_assert_quiet_after (&h, 3, boundary);

  np_conn_close (acc->accepted);
  np_conn_unref (l);
  th_free (&h);
  close (c);
}

static void
test_inet6 (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 4, AF_INET6, &bound);
  T_EQ (AF_INET6, bound.ss_family);
  T_ASSERT (port_of (&bound) != 0);
  T_ASSERT (IN6_IS_ADDR_LOOPBACK (&((struct sockaddr_in6 *) &bound)
                                     ->sin6_addr));
  int lfd = check_listener_fd (&bound);
  T_EQ (1, sockopt_int (lfd, SOL_SOCKET, SO_REUSEADDR));

  int c = client_connect (&bound);
  NpEvent *acc = wait_accepted (&h, 4, 0, WAIT_MS);
  T_EQ (AF_INET6, acc->remote.ss_family);
  T_EQ (sizeof (struct sockaddr_in6), acc->remote_len);
  struct sockaddr_storage cl = local_of (c);
  T_ASSERT (same_address (&acc->remote, &cl));
  T_ASSERT (same_address (&acc->local, &bound));
  exchange (&h, acc, c, 0);

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  close (c);
}

static void
test_unix (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "sock", NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr, bound;
  socklen_t len = t_unix_address (path, &addr);
  socklen_t bound_len = 0;
  NpConn *l = listen_or_fail (&h, 5, &addr, len, -1, &bound, &bound_len);
  T_EQ (AF_UNIX, bound.ss_family);
  T_EQ (len, bound_len);
  T_STREQ (path, ((struct sockaddr_un *) &bound)->sun_path);
  int lfd = check_listener_fd (&bound);
  T_EQ (0, sockopt_int (lfd, SOL_SOCKET, SO_REUSEADDR));  /* not set */

  int c = client_connect (&addr);
  NpEvent *acc = wait_accepted (&h, 5, 0, WAIT_MS);
  T_EQ (AF_UNIX, acc->local.ss_family);
  T_STREQ (path, ((struct sockaddr_un *) &acc->local)->sun_path);
  /* The client is unnamed: its address is the family alone.  */
  T_EQ (AF_UNIX, acc->remote.ss_family);
  T_EQ (sizeof (sa_family_t), acc->remote_len);
  exchange (&h, acc, c, 0);

  close (c);
  NpEvent *closed = th_wait (&h, acc->accepted_id, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  /* Never unlinked by the engine.  */
  struct stat st;
  T_EQ (0, stat (path, &st));
  T_ASSERT (S_ISSOCK (st.st_mode));
  t_rmdir (dir);
}

/* REUSEADDR 0 and 1 are set as given, whatever the family.  */
static void
test_reuseaddr_explicit (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "sock", NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr, bound;
  socklen_t bound_len;

  socklen_t len = t_loopback (AF_INET, 0, &addr);
  NpConn *l1 = listen_or_fail (&h, 1, &addr, len, 0, &bound, &bound_len);
  T_EQ (0, sockopt_int (check_listener_fd (&bound), SOL_SOCKET,
                        SO_REUSEADDR));
  len = t_unix_address (path, &addr);
  NpConn *l2 = listen_or_fail (&h, 2, &addr, len, 1, &bound, &bound_len);
  T_EQ (1, sockopt_int (check_listener_fd (&bound), SOL_SOCKET,
                        SO_REUSEADDR));
  /* A null BOUND is allowed.  */
  len = t_loopback (AF_INET6, 0, &addr);
  NpConn *l3 = listen_or_fail (&h, 3, &addr, len, 1, NULL, NULL);

  np_conn_close (l1);
  np_conn_close (l2);
  np_conn_close (l3);
  np_conn_unref (l1);
  np_conn_unref (l2);
  np_conn_unref (l3);
  th_free (&h);
  t_rmdir (dir);
}

static void
test_error_in_use (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  expect_listen_error (&h, &bound, sizeof (struct sockaddr_in), 1,
                       EADDRINUSE, NP_LISTEN_BIND);
  expect_listen_error (&h, &bound, sizeof (struct sockaddr_in), -1,
                       EADDRINUSE, NP_LISTEN_BIND);
  /* The first one is unharmed.  */
  int c = client_connect (&bound);
  wait_accepted (&h, 1, 0, WAIT_MS);
  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  close (c);
}

/* 192.0.2.1 (TEST-NET-1) is on no interface here; binding sends
   nothing.  */
static void
test_error_not_local (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr;
  socklen_t len = t_loopback (AF_INET, 0, &addr);
  ((struct sockaddr_in *) &addr)->sin_addr.s_addr = htonl (0xc0000201);
  expect_listen_error (&h, &addr, len, -1, EADDRNOTAVAIL, NP_LISTEN_BIND);
  th_pump (&h, 50);
  T_EQ (0, h.events->len);
  th_free (&h);
}

static void
test_error_unix_missing_dir (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "no-such-dir", "sock",
                                            NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr;
  socklen_t len = t_unix_address (path, &addr);
  expect_listen_error (&h, &addr, len, -1, ENOENT, NP_LISTEN_BIND);
  th_free (&h);
  t_rmdir (dir);
}

/* An existing file is not removed to make room.  */
static void
test_error_unix_exists (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "file", NULL);
  T_ASSERT (g_file_set_contents (path, "keep", 4, NULL));
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr;
  socklen_t len = t_unix_address (path, &addr);
  expect_listen_error (&h, &addr, len, -1, EADDRINUSE, NP_LISTEN_BIND);
  expect_listen_error (&h, &addr, len, 1, EADDRINUSE, NP_LISTEN_BIND);
  g_autofree char *text = NULL;
  T_ASSERT (g_file_get_contents (path, &text, NULL, NULL));
  T_STREQ ("keep", text);
  th_free (&h);
  t_rmdir (dir);
}

static void
test_error_socket (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr;
  memset (&addr, 0, sizeof addr);
  addr.ss_family = AF_MAX + 1;
  expect_listen_error (&h, &addr, sizeof addr, -1, EAFNOSUPPORT,
                       NP_LISTEN_SOCKET);
  th_free (&h);
}

/* Output and half closes mean nothing to a listener.  */
static void
test_listener_ops (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  T_EQ (0, np_conn_send (l, "abc", 3));
  T_EQ (0, np_conn_queued (l));
  np_conn_shutdown_write (l);
  np_conn_set_paused (l, TRUE);
  np_conn_set_paused (l, FALSE);
  int c = client_connect (&bound);
  wait_accepted (&h, 1, 0, WAIT_MS);
  th_pump (&h, 100);
  T_EQ (1, th_count (&h, 1, NP_EVENT_ACCEPTED));
  T_EQ (1, h.events->len);
  np_conn_close (l);
  np_conn_close (l);
  T_EQ (0, np_conn_send (l, "abc", 3));
  np_conn_unref (l);
  /* A listener let go of without a close lives until the engine goes.  */
  NpConn *l2 = listen_loopback (&h, 2, AF_INET, &bound);
  np_conn_unref (l2);
  int c2 = client_connect (&bound);
  wait_accepted (&h, 2, 0, WAIT_MS);
  th_free (&h);
  close (c);
  close (c2);
}

static void
test_accept_several (void)
{
  enum { N = 6 };
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 9, AF_INET, &bound);
  int clients[N];
  NpEvent *acc[N];
  for (int i = 0; i < N; i++)
    {
      clients[i] = client_connect (&bound);
      acc[i] = wait_accepted (&h, 9, (guint) i, WAIT_MS);
      T_EQ (NP_ACCEPTED_ID_BASE + (guint64) i, acc[i]->accepted_id);
      struct sockaddr_storage cl = local_of (clients[i]);
      T_ASSERT (same_address (&acc[i]->remote, &cl));
      T_ASSERT (same_address (&acc[i]->local, &bound));
      /* The accepted socket sits high, like the others.  */
      int fd = find_socket (&bound, &cl, FALSE);
      T_GE (fd, 1024);
      T_ASSERT (fcntl (fd, F_GETFD) & FD_CLOEXEC);
      T_ASSERT (fcntl (fd, F_GETFL) & O_NONBLOCK);
    }
  /* Backwards, so replies cannot be right by accident of order.  */
  for (int i = N - 1; i >= 0; i--)
    exchange (&h, acc[i], clients[i], i);

  /* Each side ends its own way: a peer's end of file, a half close from
     the engine, a close from the engine.  */
  close (clients[0]);
  clients[0] = -1;
  T_EQ (0, th_wait (&h, acc[0]->accepted_id, NP_EVENT_CLOSED,
                    WAIT_MS)->code);
  np_conn_send (acc[1]->accepted, "bye", 3);
  np_conn_shutdown_write (acc[1]->accepted);
  char buf[8];
  T_EQ (3, t_read_full (clients[1], buf, sizeof buf, WAIT_MS));  /* + EOF */
  t_write_all (clients[1], "still", 5);
  th_wait_data (&h, acc[1]->accepted_id, 5 + strlen ("to engine 1"),
                WAIT_MS);
  np_conn_close (acc[2]->accepted);
  T_EQ (0, t_read_full (clients[2], buf, sizeof buf, WAIT_MS));
  th_pump (&h, 100);
  check_accepted_order (&h);
  T_EQ (N, th_count (&h, 9, NP_EVENT_ACCEPTED));

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  for (int i = 0; i < N; i++)
    if (clients[i] >= 0)
      close (clients[i]);
}

/* Paused, the listener leaves clients in the backlog.  */
static void
test_paused (void)
{
  enum { N = 5 };
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  np_conn_set_paused (l, TRUE);
  th_pump (&h, 50);
  int clients[N + 1];
  for (int i = 0; i < N; i++)
    {
      clients[i] = client_connect (&bound);
      t_write_all (clients[i], "early", 5);
    }
  th_pump (&h, 300);
  T_EQ (0, h.events->len);

  np_conn_set_paused (l, FALSE);
  for (int i = 0; i < N; i++)
    {
      NpEvent *acc = wait_accepted (&h, 1, (guint) i, WAIT_MS);
      th_wait_data (&h, acc->accepted_id, 5, WAIT_MS);
    }

  np_conn_set_paused (l, TRUE);
  th_pump (&h, 50);
  clients[N] = client_connect (&bound);
  th_pump (&h, 300);
  T_EQ (N, th_count (&h, 1, NP_EVENT_ACCEPTED));
  np_conn_set_paused (l, FALSE);
  wait_accepted (&h, 1, N, WAIT_MS);
  check_accepted_order (&h);

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  for (int i = 0; i <= N; i++)
    close (clients[i]);
}

/* Closing a listener ends no connection it accepted.  */
static void
test_close_keeps_accepted (void)
{
  enum { N = 3 };
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  int clients[N];
  NpEvent *acc[N];
  for (int i = 0; i < N; i++)
    {
      clients[i] = client_connect (&bound);
      acc[i] = wait_accepted (&h, 1, (guint) i, WAIT_MS);
    }
  np_conn_close (l);
  np_conn_unref (l);
  th_drain_now (&h);
  guint boundary = h.events->len;

  wait_refused (&bound);

  for (int i = 0; i < N; i++)
    exchange (&h, acc[i], clients[i], i);
  th_pump (&h, 100);
  th_assert_quiet_after (&h, 1, boundary);
  T_EQ (0, th_count (&h, acc[0]->accepted_id, NP_EVENT_CLOSED));
  th_free (&h);
  for (int i = 0; i < N; i++)
    close (clients[i]);
}

/* Clients gone before (or as) they are accepted: each is still accepted,
   then ends.  */
static void
test_client_gone_at_once (void)
{
  enum { N = 40 };
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  np_conn_set_paused (l, TRUE);  /* all in the backlog, then some live */
  th_pump (&h, 50);
  for (int i = 0; i < N; i++)
    {
      if (i == N / 2)
        np_conn_set_paused (l, FALSE);
      int c = client_connect (&bound);
      if (i % 3 == 0)
        t_write_all (c, "last words", 10);
      if (i % 2)
        {
          struct linger lg = { .l_onoff = 1, .l_linger = 0 };  /* reset */
          setsockopt (c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
      close (c);
    }
  for (guint i = 0; i < N; i++)
    {
      NpEvent *acc = wait_accepted (&h, 1, i, WAIT_MS);
      NpEvent *closed = th_wait (&h, acc->accepted_id, NP_EVENT_CLOSED,
                                 WAIT_MS);
      if (closed->code != 0 && closed->code != ECONNRESET)
        T_FAIL ("closed with %s", g_strerror (closed->code));
      guint n = (guint) (acc->accepted_id - NP_ACCEPTED_ID_BASE);
      if (closed->code == 0 && n % 3 == 0)
        {
          g_autoptr (GByteArray) got = th_data (&h, acc->accepted_id);
          T_EQ (10, got->len);
        }
    }
  th_pump (&h, 100);
  T_EQ (N, th_count (&h, 1, NP_EVENT_ACCEPTED));
  T_EQ (0, th_count (&h, 1, NP_EVENT_ACCEPT_FAILED));
  check_accepted_order (&h);
  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
}

/* Waits until the engine has accepted CLIENT from the listener at
   BOUND, without draining anything.  */
static void
wait_engine_accepted (const struct sockaddr_storage *bound, int client)
{
  struct sockaddr_storage cl = local_of (client);
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (find_socket (bound, &cl, FALSE) < 0)
    {
      if (t_now_ms () > deadline)
        T_FAIL ("the engine accepted no client");
      usleep (10000);
    }
}

/* ACCEPTED events left untaken, or still queued when the listener closes
   and when the engine goes, leak nothing.  */
static void
test_queued_accepted_freed (void)
{
  enum { N = 8 };
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  int clients[2 * N];
  for (int i = 0; i < N; i++)
    clients[i] = client_connect (&bound);
  wait_engine_accepted (&bound, clients[N - 1]);
  np_conn_close (l);
  np_conn_unref (l);

  /* Drained after the close and dropped untaken: the engine still holds
     the connections, which go on working.  */
  struct sockaddr_storage first = local_of (clients[0]);
  guint64 first_id = 0;
  guint n;
  while ((n = np_engine_drain (h.engine, h.buf)) > 0)
    for (guint i = 0; i < n; i++)
      {
        NpEvent *e = h.buf[i];
        T_EQ (NP_EVENT_ACCEPTED, e->type);
        if (same_address (&e->remote, &first))
          first_id = e->accepted_id;
        np_event_free (e);
      }
  T_ASSERT (first_id >= NP_ACCEPTED_ID_BASE);
  t_write_all (clients[0], "x", 1);
  th_wait_data (&h, first_id, 1, WAIT_MS);

  /* Another listener's, queued and never drained, through its close and
     np_engine_free.  */
  struct sockaddr_storage bound2;
  NpConn *l2 = listen_loopback (&h, 2, AF_INET, &bound2);
  for (int i = 0; i < N; i++)
    {
      clients[N + i] = client_connect (&bound2);
      t_write_all (clients[N + i], "y", 1);
    }
  wait_engine_accepted (&bound2, clients[2 * N - 1]);
  usleep (50000);
  np_conn_close (l2);
  np_conn_unref (l2);
  th_free (&h);
  char c;
  for (int i = 0; i < 2 * N; i++)
    {
      T_EQ (0, t_read_full (clients[i], &c, 1, WAIT_MS));  /* closed */
      close (clients[i]);
    }
}

/* Out of descriptors: ACCEPT_FAILED, a rest rather than a spin, and the
   client accepted once there is room.  */
static void
test_accept_emfile (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  int c = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  struct rlimit saved, low;
  getrlimit (RLIMIT_NOFILE, &saved);
  low = saved;
  low.rlim_cur = 200;
  T_EQ (0, setrlimit (RLIMIT_NOFILE, &low));
  GArray *fillers = g_array_new (FALSE, FALSE, sizeof (int));
  for (;;)
    {
      int fd = fcntl (h.wake[0], F_DUPFD_CLOEXEC, 0);
      if (fd < 0)
        break;
      g_array_append_val (fillers, fd);
    }
  T_ASSERT (fillers->len > 0);

  if (connect (c, (struct sockaddr *) &bound, sizeof (struct sockaddr_in))
      < 0)
    T_FAIL ("connect: %s", g_strerror (errno));
  NpEvent *failed = th_wait (&h, 1, NP_EVENT_ACCEPT_FAILED, WAIT_MS);
  T_EQ (EMFILE, failed->code);
  gint64 start = t_now_ms ();
  while (t_now_ms () - start < 500)
    th_pump (&h, 50);
  guint fails = th_count (&h, 1, NP_EVENT_ACCEPT_FAILED);
  T_LE (fails, 10);  /* about one per 100 ms */
  T_EQ (0, th_count (&h, 1, NP_EVENT_ACCEPTED));

  for (guint i = 0; i < fillers->len; i++)
    close (g_array_index (fillers, int, i));
  g_array_free (fillers, TRUE);
  T_EQ (0, setrlimit (RLIMIT_NOFILE, &saved));
  NpEvent *acc = wait_accepted (&h, 1, 0, WAIT_MS);
  exchange (&h, acc, c, 0);

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  close (c);
}

static guint8
pattern (gsize i)
{
  return (guint8) ((i * 7 + i / 4099) & 0xff);
}

typedef struct
{
  int fd;
  gsize total;
  gsize written;          /* atomic */
} Writer;

static void *
writer_thread (void *data)
{
  Writer *w = data;
  guint8 chunk[65536];
  gsize off = 0;
  while (off < w->total)
    {
      gsize n = MIN (sizeof chunk, w->total - off);
      for (gsize i = 0; i < n; i++)
        chunk[i] = pattern (off + i);
      t_write_all (w->fd, chunk, n);
      off += n;
      __atomic_store_n (&w->written, off, __ATOMIC_RELEASE);
    }
  return NULL;
}

/* Inbound backpressure and WRITABLE work on an accepted connection as on
   any other.  */
static void
test_accepted_flow (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.read_size = 16 * 1024;
  limits.conn_in_high = 256 * 1024;
  limits.conn_in_low = 64 * 1024;
  limits.out_high = 256 * 1024;
  limits.out_low = 64 * 1024;
  limits.drain_bytes = 64u * 1024 * 1024;
  limits.drain_events = 100000;
  THarness h;
  th_init (&h, &limits);
  struct sockaddr_storage bound;
  NpConn *l = listen_loopback (&h, 1, AF_INET, &bound);
  int c = client_connect (&bound);
  NpEvent *acc = wait_accepted (&h, 1, 0, WAIT_MS);
  guint64 id = acc->accepted_id;
  NpConn *conn = acc->accepted;

  Writer w = { .fd = c, .total = 16u * 1024 * 1024 };
  pthread_t thread;
  pthread_create (&thread, NULL, writer_thread, &w);
  for (int round = 0; round < 3; round++)
    {
      usleep (300000);
      /* One drain, which takes all that is queued: what was held.  */
      gsize before = th_data_len (&h, id);
      guint n = np_engine_drain (h.engine, h.buf);
      for (guint i = 0; i < n; i++)
        g_ptr_array_add (h.events, h.buf[i]);
      gsize held = th_data_len (&h, id) - before;
      T_LE (held, limits.conn_in_high + limits.read_size);
      T_GE (held, 1);
    }
  T_ASSERT (__atomic_load_n (&w.written, __ATOMIC_ACQUIRE) < w.total);
  th_wait_data (&h, id, w.total, 60000);
  pthread_join (thread, NULL);
  g_autoptr (GByteArray) in = th_data (&h, id);
  T_EQ (w.total, in->len);
  for (gsize i = 0; i < in->len; i++)
    if (in->data[i] != pattern (i))
      T_FAIL ("byte %zu: expected %u, got %u", i, pattern (i), in->data[i]);

  /* The client reads nothing until the queue stays above out_high.  */
  guint8 chunk[65536] = { 0 };
  gsize total = 0;
  for (;;)
    {
      while (np_conn_queued (conn) < limits.out_high)
        {
          np_conn_send (conn, chunk, sizeof chunk);
          total += sizeof chunk;
          T_LE (total, 256u * 1024 * 1024);
        }
      th_pump (&h, 200);
      if (np_conn_queued (conn) >= limits.out_high)
        break;
    }
  guint before = th_count (&h, id, NP_EVENT_WRITABLE);
  guint8 *sink = g_malloc (total);
  T_EQ (total, t_read_full (c, sink, total, 30000));
  g_free (sink);
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (th_count (&h, id, NP_EVENT_WRITABLE) == before
         && t_now_ms () < deadline)
    th_pump (&h, 100);
  T_EQ (before + 1, th_count (&h, id, NP_EVENT_WRITABLE));
  check_accepted_order (&h);

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  close (c);
}

/* A thousand clients, each echoed its own payload through the engine.  */
static void
test_thousand_clients (void)
{
  enum { N = 1000 };
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage bound;
  struct sockaddr_storage addr;
  socklen_t len = t_loopback (AF_INET, 0, &addr);
  NpListenSpec spec = { .address = (struct sockaddr *) &addr,
                        .address_len = len, .backlog = 1024,
                        .reuseaddr = -1 };
  int err;
  NpListenStep step;
  NpConn *l = np_engine_listen (h.engine, 1, &spec, &bound, &len, &err,
                                &step, NULL);
  T_ASSERT (l != NULL);

  int *clients = g_new (int, N);
  GByteArray **want = g_new0 (GByteArray *, N);
  GByteArray **got = g_new0 (GByteArray *, N);
  NpConn **conns = g_new0 (NpConn *, N);
  gint64 start = t_now_ms ();
  for (int i = 0; i < N; i++)
    {
      clients[i] = client_connect (&bound);
      t_set_nonblock (clients[i]);
      want[i] = g_byte_array_new ();
      got[i] = g_byte_array_new ();
      char head[32];
      int n = g_snprintf (head, sizeof head, "client %04d:", i);
      g_byte_array_append (want[i], (guint8 *) head, (guint) n);
      for (int k = 0; k < i % 97; k++)
        {
          guint8 b = (guint8) (i * 31 + k);
          g_byte_array_append (want[i], &b, 1);
        }
      t_write_all (clients[i], want[i]->data, want[i]->len);
    }

  struct pollfd *pfds = g_new (struct pollfd, N);
  int *which = g_new (int, N);
  guint cursor = 0;
  int done = 0;
  gint64 deadline = t_now_ms () + 60000;
  while (done < N)
    {
      if (t_now_ms () > deadline)
        T_FAIL ("%d of %d echoed in time", done, N);
      th_pump (&h, 5);
      for (; cursor < h.events->len; cursor++)
        {
          NpEvent *e = g_ptr_array_index (h.events, cursor);
          if (e->type == NP_EVENT_ACCEPTED)
            {
              guint64 k = e->accepted_id - NP_ACCEPTED_ID_BASE;
              T_ASSERT (k < N && !conns[k]);
              conns[k] = e->accepted;
            }
          else if (e->type == NP_EVENT_DATA)
            {
              guint64 k = e->id - NP_ACCEPTED_ID_BASE;
              T_ASSERT (k < N && conns[k]);
              np_conn_send (conns[k], e->data, e->len);
            }
          else
            T_FAIL ("unexpected event %s", th_describe (&h));
        }
      int nfds = 0;
      for (int i = 0; i < N; i++)
        if (got[i]->len < want[i]->len)
          {
            which[nfds] = i;
            pfds[nfds++] = (struct pollfd) { .fd = clients[i],
                                             .events = POLLIN };
          }
      if (poll (pfds, (nfds_t) nfds, 0) <= 0)
        continue;
      for (int j = 0; j < nfds; j++)
        {
          if (!(pfds[j].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
          int i = which[j];
          guint8 buf[512];
          ssize_t n = recv (clients[i], buf, sizeof buf, 0);
          if (n <= 0)
            T_FAIL ("client %d: %s", i, n == 0 ? "end of file"
                                                : g_strerror (errno));
          g_byte_array_append (got[i], buf, (guint) n);
          T_LE (got[i]->len, want[i]->len);
          if (got[i]->len == want[i]->len)
            {
              if (memcmp (got[i]->data, want[i]->data, want[i]->len) != 0)
                T_FAIL ("client %d got another's bytes", i);
              done++;
            }
        }
    }
  T_EQ (N, th_count (&h, 1, NP_EVENT_ACCEPTED));
  check_accepted_order (&h);
  T_LE (t_now_ms () - start, 60000);

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  for (int i = 0; i < N; i++)
    {
      close (clients[i]);
      g_byte_array_unref (want[i]);
      g_byte_array_unref (got[i]);
    }
  g_free (pfds);
  g_free (which);
  g_free (clients);
  g_free (want);
  g_free (got);
  g_free (conns);
}

typedef struct
{
  struct sockaddr_storage addr;
  volatile int stop;
  int made;
} Storm;

static void *
storm_thread (void *data)
{
  Storm *s = data;
  for (int i = 0; i < 600 && !__atomic_load_n (&s->stop, __ATOMIC_ACQUIRE);
       i++)
    {
      int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                       0);
      if (fd < 0)
        break;
      if (connect (fd, (struct sockaddr *) &s->addr,
                   sizeof (struct sockaddr_in)) == 0
          || errno == EINPROGRESS)
        {
          if (i % 2)
            send (fd, "hi", 2, MSG_NOSIGNAL);
          s->made++;
        }
      close (fd);
      if (i % 16 == 0)
        usleep (500);
    }
  return NULL;
}

/* Clients pour in from several threads while the test closes the
   listener: nothing for it afterwards, every accepted one accounted
   for.  */
static void
test_accept_storm_close (void)
{
  enum { THREADS = 4 };
  THarness h;
  th_init (&h, NULL);
  Storm storm;
  memset (&storm, 0, sizeof storm);
  NpConn *l = listen_loopback (&h, 1, AF_INET, &storm.addr);
  Storm per[THREADS];
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++)
    {
      per[i] = storm;
      pthread_create (&threads[i], NULL, storm_thread, &per[i]);
    }
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (th_count (&h, 1, NP_EVENT_ACCEPTED) < 50 && t_now_ms () < deadline)
    th_pump (&h, 10);
  T_GE (th_count (&h, 1, NP_EVENT_ACCEPTED), 50);

  np_conn_close (l);
  th_drain_now (&h);
  guint boundary = h.events->len;
  for (int i = 0; i < THREADS; i++)
    {
      __atomic_store_n (&per[i].stop, 1, __ATOMIC_RELEASE);
      pthread_join (threads[i], NULL);
    }
  th_pump (&h, 300);
  th_drain_now (&h);
  th_assert_quiet_after (&h, 1, boundary);
  check_accepted_order (&h);

  /* Close some of the accepted ones; the engine closes the rest.  */
  for (guint i = 0; i < h.events->len; i += 2)
    {
      NpEvent *e = g_ptr_array_index (h.events, i);
      if (e->type == NP_EVENT_ACCEPTED)
        np_conn_close (e->accepted);
    }
  np_conn_unref (l);
  th_free (&h);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "listen/inet4", test_inet4 },
    { "listen/inet6", test_inet6 },
    { "listen/unix", test_unix },
    { "listen/reuseaddr-explicit", test_reuseaddr_explicit },
    { "listen/error-in-use", test_error_in_use },
    { "listen/error-not-local", test_error_not_local },
    { "listen/error-unix-missing-dir", test_error_unix_missing_dir },
    { "listen/error-unix-exists", test_error_unix_exists },
    { "listen/error-socket", test_error_socket },
    { "listen/listener-ops", test_listener_ops },
    { "listen/accept-several", test_accept_several },
    { "listen/paused", test_paused },
    { "listen/close-keeps-accepted", test_close_keeps_accepted },
    { "listen/client-gone-at-once", test_client_gone_at_once },
    { "listen/queued-accepted-freed", test_queued_accepted_freed },
    { "listen/accept-emfile", test_accept_emfile },
    { "listen/accepted-flow", test_accepted_flow },
    { "listen/thousand-clients", test_thousand_clients },
    { "listen/accept-storm-close", test_accept_storm_close },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
