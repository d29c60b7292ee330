/* test-datagram.c -- datagram clients and servers over UDP (IPv4, IPv6)
   and Unix datagram sockets: boundaries, senders, the datagram address,
   errors, flow control, closing.  The peers are plain sockets.  */

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "testlib.h"

/* A 65,000-byte datagram goes through loopback whole; the largest UDP
   payload over IPv4 is 65,535 - 20 - 8.  */
#define BIG_DGRAM 65000
#define MAX_UDP4 65507

/* Addresses.  */

/* The same address, compared by what matters for each family.  */
static void
assert_same_address (const struct sockaddr_storage *expected,
                     socklen_t expected_len,
                     const struct sockaddr_storage *got, socklen_t got_len)
{
  T_EQ (expected->ss_family, got->ss_family);
  if (expected->ss_family == AF_UNIX)
    {
      T_STREQ (((const struct sockaddr_un *) expected)->sun_path,
               ((const struct sockaddr_un *) got)->sun_path);
      return;
    }
  T_EQ (expected_len, got_len);
  if (memcmp (expected, got, expected_len) != 0)
    T_FAIL ("addresses differ (family %d)", expected->ss_family);
}

/* Peers: plain datagram sockets.  */

typedef struct
{
  int fd;
  struct sockaddr_storage addr;   /* where it is bound */
  socklen_t addr_len;
} TPeer;

/* A UDP socket bound to a free loopback port of FAMILY.  */
static void
peer_udp (TPeer *peer, int family)
{
  peer->fd = socket (family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (peer->fd < 0)
    T_FAIL ("socket: %s", g_strerror (errno));
  socklen_t len = t_loopback (family, 0, &peer->addr);
  if (bind (peer->fd, (struct sockaddr *) &peer->addr, len) < 0)
    T_FAIL ("bind: %s", g_strerror (errno));
  peer->addr_len = sizeof peer->addr;
  getsockname (peer->fd, (struct sockaddr *) &peer->addr, &peer->addr_len);
}

/* A Unix datagram socket bound to PATH, or unbound with PATH NULL.  */
static void
peer_unix (TPeer *peer, const char *path)
{
  peer->fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (peer->fd < 0)
    T_FAIL ("socket: %s", g_strerror (errno));
  peer->addr_len = 0;
  memset (&peer->addr, 0, sizeof peer->addr);
  if (!path)
    return;
  peer->addr_len = t_unix_address (path, &peer->addr);
  if (bind (peer->fd, (struct sockaddr *) &peer->addr, peer->addr_len) < 0)
    T_FAIL ("bind %s: %s", path, g_strerror (errno));
}

static void
peer_send_to (TPeer *peer, const void *data, gsize len,
              const struct sockaddr_storage *to, socklen_t to_len)
{
  ssize_t n = sendto (peer->fd, data, len, 0, (const struct sockaddr *) to,
                      to_len);
  if (n != (ssize_t) len)
    T_FAIL ("peer sendto of %zu bytes: %zd (%s)", len, n,
            n < 0 ? g_strerror (errno) : "short");
}

/* Receives one datagram within WAIT_MS; returns its size (MSG_TRUNC:
   the real one), the sender in FROM.  */
static gsize
peer_recv (TPeer *peer, void *buf, gsize size,
           struct sockaddr_storage *from, socklen_t *from_len)
{
  struct pollfd pfd = { .fd = peer->fd, .events = POLLIN };
  if (poll (&pfd, 1, WAIT_MS) <= 0)
    T_FAIL ("peer: no datagram within %d ms", WAIT_MS);
  struct sockaddr_storage ignored;
  socklen_t ignored_len = sizeof ignored;
  if (!from)
    {
      from = &ignored;
      from_len = &ignored_len;
    }
  else
    *from_len = sizeof *from;
  ssize_t n = recvfrom (peer->fd, buf, size, MSG_TRUNC,
                        (struct sockaddr *) from, from_len);
  if (n < 0)
    T_FAIL ("peer recvfrom: %s", g_strerror (errno));
  return (gsize) n;
}

/* Whether a datagram arrives within MS.  */
static gboolean
peer_readable (TPeer *peer, int ms)
{
  struct pollfd pfd = { .fd = peer->fd, .events = POLLIN };
  return poll (&pfd, 1, ms) > 0;
}

/* Sizes that cover the small, the odd and the large: I for the I-th of
   100, the 50th BIG_DGRAM.  */
static gsize
size_of (guint i)
{
  if (i == 50)
    return BIG_DGRAM;
  return 1 + (i * 7919u) % 3000;
}

static void
fill (guint8 *buf, gsize len, guint seed)
{
  for (gsize i = 0; i < len; i++)
    buf[i] = (guint8) (seed * 31 + i * 7 + (i >> 8));
}

/* A datagram client to TO, opened.  */
static NpConn *
client_open (THarness *h, guint64 id, const struct sockaddr_storage *to,
             socklen_t to_len)
{
  NpConnectSpec spec = { .family = to->ss_family,
                         .remote = (const struct sockaddr *) to,
                         .remote_len = to_len, .type = SOCK_DGRAM };
  NpConn *conn = np_engine_connect (h->engine, id, &spec);
  NpEvent *open = th_wait (h, id, NP_EVENT_OPEN, WAIT_MS);
  /* Not connected, not bound: REMOTE is where it sends, LOCAL a
     wildcard of the family.  */
  assert_same_address (to, to_len, &open->remote, open->remote_len);
  T_EQ (to->ss_family, open->local.ss_family);
  return conn;
}

/* Client.  */

/* 100 datagrams each way between a client and a plain socket: each one
   arrives alone and whole, the client's DATA events carry the peer's
   address, and the datagram address follows the builtin's rule.  */
static void
client_both_ways (int family)
{
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_udp (&peer, family);
  NpConn *conn = client_open (&h, 1, &peer.addr, peer.addr_len);

  struct sockaddr_storage dst;
  socklen_t dst_len;
  T_ASSERT (np_conn_datagram_address (conn, &dst, &dst_len));
  assert_same_address (&peer.addr, peer.addr_len, &dst, dst_len);

  guint8 *out = g_malloc (BIG_DGRAM), *in = g_malloc (BIG_DGRAM + 1);
  struct sockaddr_storage client_addr;
  socklen_t client_len = 0;
  for (guint i = 0; i < 100; i++)
    {
      gsize len = size_of (i);
      fill (out, len, i);
      T_EQ (0, np_conn_send_datagram (conn, out, len));
      T_EQ (len, peer_recv (&peer, in, BIG_DGRAM + 1, &client_addr,
                            &client_len));
      if (memcmp (in, out, len) != 0)
        T_FAIL ("datagram %u (%zu bytes) arrived changed", i, len);
    }

  /* Back to where the client sent from.  */
  for (guint i = 0; i < 100; i++)
    {
      gsize len = size_of (i);
      fill (out, len, i + 1000);
      peer_send_to (&peer, out, len, &client_addr, client_len);
      th_wait_count (&h, 1, NP_EVENT_DATA, i + 1);
    }
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  T_EQ (100, got->len);
  for (guint i = 0; i < 100; i++)
    {
      NpEvent *e = g_ptr_array_index (got, i);
      gsize len = size_of (i);
      T_EQ (len, e->len);
      T_EQ (len, e->datagram_len);
      fill (out, len, i + 1000);
      if (memcmp (e->data, out, len) != 0)
        T_FAIL ("datagram %u (%zu bytes) arrived changed", i, len);
      assert_same_address (&peer.addr, peer.addr_len, &e->remote,
                           e->remote_len);
    }
  T_EQ (0, th_count (&h, 1, NP_EVENT_CLOSED));
  th_check_order (&h, 1);

  g_free (out);
  g_free (in);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
}

static void
test_client_ipv4 (void)
{
  client_both_ways (AF_INET);
}

static void
test_client_ipv6 (void)
{
  client_both_ways (AF_INET6);
}

/* A Unix datagram client is unbound, as the builtin's: it sends, and
   its peer sees no address to answer to.  */
static void
test_client_unix (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "peer", NULL);
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_unix (&peer, path);
  NpConn *conn = client_open (&h, 1, &peer.addr, peer.addr_len);

  guint8 *out = g_malloc (BIG_DGRAM), *in = g_malloc (BIG_DGRAM + 1);
  for (guint i = 0; i < 100; i++)
    {
      gsize len = size_of (i);
      fill (out, len, i);
      T_EQ (0, np_conn_send_datagram (conn, out, len));
      struct sockaddr_storage from;
      socklen_t from_len;
      T_EQ (len, peer_recv (&peer, in, BIG_DGRAM + 1, &from, &from_len));
      if (memcmp (in, out, len) != 0)
        T_FAIL ("datagram %u (%zu bytes) arrived changed", i, len);
      T_LE (from_len, sizeof (sa_family_t));  /* unbound: no name */
    }
  g_free (out);
  g_free (in);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
  t_rmdir (dir);
}

/* np_engine_connect_now(): a datagram client opens on the spot.  */
static void
test_client_connect_now (void)
{
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_udp (&peer, AF_INET);
  NpConnectSpec spec = { .family = AF_INET,
                         .remote = (const struct sockaddr *) &peer.addr,
                         .remote_len = peer.addr_len, .type = SOCK_DGRAM };
  NpEvent *outcome = NULL;
  NpConn *conn = np_engine_connect_now (h.engine, 1, &spec, 0, &outcome);
  T_ASSERT (conn != NULL);
  T_ASSERT (outcome != NULL);
  T_EQ (NP_EVENT_OPEN, outcome->type);
  assert_same_address (&peer.addr, peer.addr_len, &outcome->remote,
                       outcome->remote_len);
  np_event_free (outcome);

  T_EQ (0, np_conn_send_datagram (conn, "now", 3));
  char buf[8];
  T_EQ (3, peer_recv (&peer, buf, sizeof buf, NULL, NULL));
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
}

/* A host name is looked up; datagrams sent meanwhile wait, each its
   own, and go to the address found.  */
static void
test_client_resolved_sends_early (void)
{
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_udp (&peer, AF_INET);
  guint16 port = ntohs (((struct sockaddr_in *) &peer.addr)->sin_port);
  NpConnectSpec spec = { .family = AF_INET, .host = "localhost",
                         .port = port, .type = SOCK_DGRAM };
  NpConn *conn = np_engine_connect (h.engine, 1, &spec);
  T_EQ (0, np_conn_send_datagram (conn, "early", 5));
  T_EQ (0, np_conn_send_datagram (conn, "bird", 4));
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  char buf[16];
  T_EQ (5, peer_recv (&peer, buf, sizeof buf, NULL, NULL));
  T_ASSERT (memcmp (buf, "early", 5) == 0);
  T_EQ (4, peer_recv (&peer, buf, sizeof buf, NULL, NULL));
  T_ASSERT (memcmp (buf, "bird", 4) == 0);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
}

/* Errors of a send.  */

/* Too big for UDP over IPv4: EMSGSIZE from the call itself, nothing
   sent, and the conn goes on.  */
static void
test_oversize_emsgsize (void)
{
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_udp (&peer, AF_INET);
  NpConn *conn = client_open (&h, 1, &peer.addr, peer.addr_len);

  guint8 *big = g_malloc0 (MAX_UDP4 + 1);
  T_EQ (EMSGSIZE, np_conn_send_datagram (conn, big, MAX_UDP4 + 1));
  T_EQ (0, np_conn_queued (conn));
  T_EQ (0, np_conn_send_datagram (conn, big, MAX_UDP4));
  guint8 *in = g_malloc (MAX_UDP4 + 2);
  T_EQ (MAX_UDP4, peer_recv (&peer, in, MAX_UDP4 + 2, NULL, NULL));
  T_EQ (0, np_conn_send_datagram (conn, "ok", 2));
  T_EQ (2, peer_recv (&peer, in, MAX_UDP4 + 2, NULL, NULL));
  th_pump (&h, 100);
  T_EQ (0, th_count (&h, 1, NP_EVENT_CLOSED));
  g_free (big);
  g_free (in);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
}

/* Nobody at the port: the socket is not connected, so the ICMP error
   is never seen; sends succeed, no event comes, the conn stays open
   and still receives.  As the builtin (reference 8.8).  */
static void
test_no_listener (void)
{
  THarness h;
  th_init (&h, NULL);
  TPeer gone;
  peer_udp (&gone, AF_INET);
  close (gone.fd);
  NpConn *conn = client_open (&h, 1, &gone.addr, gone.addr_len);

  for (int i = 0; i < 5; i++)
    {
      T_EQ (0, np_conn_send_datagram (conn, "anyone?", 7));
      th_pump (&h, 50);
    }
  th_pump (&h, 200);
  T_EQ (1, h.events->len);  /* the OPEN */

  /* Still reading: a peer set as the datagram address answers, and its
     datagram arrives.  */
  TPeer other;
  peer_udp (&other, AF_INET);
  T_ASSERT (np_conn_set_datagram_address (
    conn, (struct sockaddr *) &other.addr, other.addr_len));
  T_EQ (0, np_conn_send_datagram (conn, "hello", 5));
  struct sockaddr_storage from;
  socklen_t from_len;
  char buf[16];
  T_EQ (5, peer_recv (&other, buf, sizeof buf, &from, &from_len));
  peer_send_to (&other, "back", 4, &from, from_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 1);
  T_EQ (0, th_count (&h, 1, NP_EVENT_CLOSED));
  T_EQ (0, th_count (&h, 1, NP_EVENT_SEND_FAILED));
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (other.fd);
}

/* Server.  */

static NpConn *
server_open (THarness *h, guint64 id, const struct sockaddr_storage *at,
             socklen_t at_len, gsize datagram_max,
             struct sockaddr_storage *bound, socklen_t *bound_len)
{
  NpListenSpec spec = { .address = (const struct sockaddr *) at,
                        .address_len = at_len, .reuseaddr = -1,
                        .type = SOCK_DGRAM, .datagram_max = datagram_max };
  int err = 0;
  NpListenStep step = NP_LISTEN_SOCKET;
  NpConn *conn = np_engine_listen (h->engine, id, &spec, bound, bound_len,
                                   &err, &step, NULL);
  if (!conn)
    T_FAIL ("datagram server: step %d, %s", step, g_strerror (err));
  return conn;
}

/* Two peers send; each DATA says who sent it; the datagram address
   follows the deliveries, not the reads; replies go there, or to an
   address set explicitly.  */
static void
test_server_two_peers (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);
  T_EQ (sizeof (struct sockaddr_in), bound_len);

  /* Before any datagram: all zeros, so sending fails as the builtin's
     "Writing to process: Invalid argument".  */
  struct sockaddr_storage dst;
  socklen_t dst_len;
  T_ASSERT (np_conn_datagram_address (srv, &dst, &dst_len));
  T_EQ (bound_len, dst_len);
  T_EQ (0, dst.ss_family);
  T_EQ (EINVAL, np_conn_send_datagram (srv, "nobody", 6));

  TPeer a, b;
  peer_udp (&a, AF_INET);
  peer_udp (&b, AF_INET);
  peer_send_to (&a, "from-a", 6, &bound, bound_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 1);
  peer_send_to (&b, "from-b", 6, &bound, bound_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 2);

  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  NpEvent *ea = g_ptr_array_index (got, 0), *eb = g_ptr_array_index (got, 1);
  T_EQ (6, ea->len);
  T_ASSERT (memcmp (ea->data, "from-a", 6) == 0);
  assert_same_address (&a.addr, a.addr_len, &ea->remote, ea->remote_len);
  assert_same_address (&b.addr, b.addr_len, &eb->remote, eb->remote_len);

  /* Both are read; only A's is delivered so far: a reply goes to A.  */
  np_conn_datagram_received (srv, ea);
  T_EQ (0, np_conn_send_datagram (srv, "to-a", 4));
  char buf[16];
  T_EQ (4, peer_recv (&a, buf, sizeof buf, NULL, NULL));
  T_ASSERT (memcmp (buf, "to-a", 4) == 0);

  /* Then B's: the last sender.  */
  np_conn_datagram_received (srv, eb);
  T_ASSERT (np_conn_datagram_address (srv, &dst, &dst_len));
  assert_same_address (&b.addr, b.addr_len, &dst, dst_len);
  T_EQ (0, np_conn_send_datagram (srv, "to-b", 4));
  T_EQ (4, peer_recv (&b, buf, sizeof buf, NULL, NULL));
  T_ASSERT (memcmp (buf, "to-b", 4) == 0);
  T_ASSERT (!peer_readable (&a, 50));

  /* Set explicitly.  An IPv6 address on this IPv4 socket is refused and
     changes nothing.  */
  struct sockaddr_storage v6;
  socklen_t v6_len = t_loopback (AF_INET6, 9, &v6);
  T_ASSERT (!np_conn_set_datagram_address (srv, (struct sockaddr *) &v6,
                                           v6_len));
  T_ASSERT (np_conn_set_datagram_address (srv, (struct sockaddr *) &a.addr,
                                          a.addr_len));
  T_EQ (0, np_conn_send_datagram (srv, "set", 3));
  T_EQ (3, peer_recv (&a, buf, sizeof buf, NULL, NULL));
  T_ASSERT (!peer_readable (&b, 50));

  /* No OPEN for a server: it was open when np_engine_listen returned.  */
  T_EQ (0, th_count (&h, 1, NP_EVENT_OPEN));
  np_conn_close (srv);
  np_conn_unref (srv);
  th_free (&h);
  close (a.fd);
  close (b.fd);
}

/* The same over Unix datagram sockets, and the builtin's quirk with an
   unbound sender: no name, so the datagram address stays.  */
static void
test_server_unix (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *spath = g_build_filename (dir, "srv", NULL);
  g_autofree char *apath = g_build_filename (dir, "a", NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_unix_address (spath, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);

  TPeer a, anon;
  peer_unix (&a, apath);
  peer_unix (&anon, NULL);
  guint8 *big = g_malloc (BIG_DGRAM);
  fill (big, BIG_DGRAM, 7);
  peer_send_to (&a, big, BIG_DGRAM, &at, at_len);
  peer_send_to (&anon, "anon", 4, &at, at_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 2);
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  NpEvent *ea = g_ptr_array_index (got, 0), *en = g_ptr_array_index (got, 1);
  T_EQ (BIG_DGRAM, ea->len);
  T_ASSERT (memcmp (ea->data, big, BIG_DGRAM) == 0);
  assert_same_address (&a.addr, a.addr_len, &ea->remote, ea->remote_len);
  T_EQ (4, en->len);
  T_EQ (0, en->remote_len);

  np_conn_datagram_received (srv, ea);
  np_conn_datagram_received (srv, en);
  struct sockaddr_storage dst;
  socklen_t dst_len;
  np_conn_datagram_address (srv, &dst, &dst_len);
  T_EQ (AF_UNIX, dst.ss_family);
  T_STREQ (apath, ((struct sockaddr_un *) &dst)->sun_path);
  /* The length stays a whole sockaddr_un, as the builtin's.  */
  T_EQ (sizeof (struct sockaddr_un), dst_len);
  T_EQ (0, np_conn_send_datagram (srv, big, BIG_DGRAM));
  guint8 *in = g_malloc (BIG_DGRAM + 1);
  T_EQ (BIG_DGRAM, peer_recv (&a, in, BIG_DGRAM + 1, NULL, NULL));
  T_ASSERT (memcmp (in, big, BIG_DGRAM) == 0);

  /* Nobody at a path: the error is the call's.  */
  struct sockaddr_storage nowhere;
  g_autofree char *npath = g_build_filename (dir, "nowhere", NULL);
  socklen_t nowhere_len = t_unix_address (npath, &nowhere);
  T_ASSERT (np_conn_set_datagram_address (srv, (struct sockaddr *) &nowhere,
                                          nowhere_len));
  T_EQ (ENOENT, np_conn_send_datagram (srv, "x", 1));

  g_free (big);
  g_free (in);
  np_conn_close (srv);
  np_conn_unref (srv);
  th_free (&h);
  close (a.fd);
  close (anon.fd);
  t_rmdir (dir);
}

/* What an address must be to be taken, as the builtin counts it: the
   socket's size, a whole sockaddr_un for any Unix path.  A path whose
   real length is an inet socket's is still no inet address, and the
   length of the address set stays the socket's.  */
static void
test_set_address_sizes (void)
{
  char *dir = t_tmpdir ();
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  NpConn *udp = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);
  g_autofree char *spath = g_build_filename (dir, "srv", NULL);
  socklen_t uat_len = t_unix_address (spath, &at);
  NpConn *unix_srv = server_open (&h, 2, &at, uat_len, 0, &bound,
                                  &bound_len);

  /* 13 bytes and a NUL after the family field: 16, an IPv4 address's.  */
  struct sockaddr_storage path16, got;
  socklen_t path16_len = t_unix_address ("/tmp/x1234567", &path16), got_len;
  T_EQ (sizeof (struct sockaddr_in), path16_len);
  T_ASSERT (!np_conn_set_datagram_address (udp, (struct sockaddr *) &path16,
                                           path16_len));
  np_conn_datagram_address (udp, &got, &got_len);
  T_EQ (sizeof (struct sockaddr_in), got_len);
  T_EQ (0, got.ss_family);

  /* Any path fits the Unix socket, and its length stays.  */
  T_ASSERT (np_conn_set_datagram_address (unix_srv,
                                          (struct sockaddr *) &path16,
                                          path16_len));
  np_conn_datagram_address (unix_srv, &got, &got_len);
  T_EQ (sizeof (struct sockaddr_un), got_len);
  T_STREQ ("/tmp/x1234567", ((struct sockaddr_un *) &got)->sun_path);
  struct sockaddr_storage v4;
  socklen_t v4_len = t_loopback (AF_INET, 9, &v4);
  T_ASSERT (!np_conn_set_datagram_address (unix_srv, (struct sockaddr *) &v4,
                                           v4_len));
  T_ASSERT (np_conn_set_datagram_address (udp, (struct sockaddr *) &v4,
                                          v4_len));

  np_conn_close (udp);
  np_conn_unref (udp);
  np_conn_close (unix_srv);
  np_conn_unref (unix_srv);
  th_free (&h);
  t_rmdir (dir);
}

/* IPv6 server, and the address is free again once close returns.  */
static void
test_server_ipv6_rebind (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET6, 0, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);
  TPeer p;
  peer_udp (&p, AF_INET6);
  peer_send_to (&p, "six", 3, &bound, bound_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 1);
  NpEvent *e = th_find (&h, 1, NP_EVENT_DATA);
  assert_same_address (&p.addr, p.addr_len, &e->remote, e->remote_len);
  np_conn_datagram_received (srv, e);
  T_EQ (0, np_conn_send_datagram (srv, "xis", 3));
  char buf[8];
  T_EQ (3, peer_recv (&p, buf, sizeof buf, NULL, NULL));
  np_conn_close (srv);
  np_conn_unref (srv);

  NpConn *again = server_open (&h, 2, &bound, bound_len, 0, NULL, NULL);
  np_conn_close (again);
  np_conn_unref (again);
  th_free (&h);
  close (p.fd);
}

/* Receiving.  */

/* DATAGRAM_MAX truncates as read-process-output-max does the builtin's
   (6000 bytes -> 4096); DATAGRAM_LEN tells the real size.  */
static void
test_truncate (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 4096, &bound, &bound_len);
  TPeer p;
  peer_udp (&p, AF_INET);
  guint8 buf[6000];
  fill (buf, sizeof buf, 3);
  peer_send_to (&p, buf, sizeof buf, &bound, bound_len);
  peer_send_to (&p, "next", 4, &bound, bound_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 2);
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  NpEvent *e = g_ptr_array_index (got, 0);
  T_EQ (4096, e->len);
  T_EQ (6000, e->datagram_len);
  T_ASSERT (memcmp (e->data, buf, 4096) == 0);
  e = g_ptr_array_index (got, 1);
  T_EQ (4, e->len);
  T_EQ (4, e->datagram_len);
  np_conn_close (srv);
  np_conn_unref (srv);
  th_free (&h);
  close (p.fd);
}

/* Without DATAGRAM_MAX a datagram arrives whole: the largest UDP
   payload, and a Unix datagram larger than the engine's read buffer
   (its sender raised its send buffer).  */
static void
test_whole_by_default (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *spath = g_build_filename (dir, "srv", NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at4, bound4, atu, boundu;
  socklen_t at4_len = t_loopback (AF_INET, 0, &at4), bound4_len = 0;
  socklen_t atu_len = t_unix_address (spath, &atu), boundu_len = 0;
  NpConn *udp = server_open (&h, 1, &at4, at4_len, 0, &bound4, &bound4_len);
  NpConn *unx = server_open (&h, 2, &atu, atu_len, 0, &boundu, &boundu_len);

  const gsize unix_big = 300000;
  guint8 *big = g_malloc (unix_big);
  fill (big, unix_big, 11);
  TPeer p4, pu;
  peer_udp (&p4, AF_INET);
  peer_unix (&pu, NULL);
  int sndbuf = 1 << 20;
  T_ASSERT (setsockopt (pu.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                        sizeof sndbuf) == 0);
  peer_send_to (&p4, big, MAX_UDP4, &bound4, bound4_len);
  peer_send_to (&pu, big, unix_big, &boundu, boundu_len);
  peer_send_to (&pu, "after", 5, &boundu, boundu_len);
  th_wait_count (&h, 1, NP_EVENT_DATA, 1);
  th_wait_count (&h, 2, NP_EVENT_DATA, 2);

  NpEvent *e = th_find (&h, 1, NP_EVENT_DATA);
  T_EQ (MAX_UDP4, e->len);
  T_ASSERT (memcmp (e->data, big, MAX_UDP4) == 0);
  g_autoptr (GPtrArray) got = th_data_events (&h, 2);
  e = g_ptr_array_index (got, 0);
  T_EQ (unix_big, e->len);
  T_EQ (unix_big, e->datagram_len);
  T_ASSERT (memcmp (e->data, big, unix_big) == 0);
  e = g_ptr_array_index (got, 1);
  T_EQ (5, e->len);

  g_free (big);
  np_conn_close (udp);
  np_conn_unref (udp);
  np_conn_close (unx);
  np_conn_unref (unx);
  th_free (&h);
  close (p4.fd);
  close (pu.fd);
  t_rmdir (dir);
}

/* A zero-length datagram ends the receiver, as the builtin's read of 0
   bytes does: what came before is delivered, then CLOSED with code 0.  */
static void
test_empty_datagram_closes (void)
{
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_udp (&peer, AF_INET);
  NpConn *conn = client_open (&h, 1, &peer.addr, peer.addr_len);
  T_EQ (0, np_conn_send_datagram (conn, "hi", 2));
  /* Sending nothing sends nothing, as (process-send-string P "").  */
  T_EQ (0, np_conn_send_datagram (conn, "", 0));
  struct sockaddr_storage from;
  socklen_t from_len;
  char buf[8];
  T_EQ (2, peer_recv (&peer, buf, sizeof buf, &from, &from_len));
  T_ASSERT (!peer_readable (&peer, 50));

  peer_send_to (&peer, "before", 6, &from, from_len);
  peer_send_to (&peer, "", 0, &from, from_len);
  NpEvent *closed = th_wait (&h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  T_EQ (1, th_count (&h, 1, NP_EVENT_DATA));
  th_check_order (&h, 1);
  T_EQ (EPIPE, np_conn_send_datagram (conn, "late", 4));
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
}

/* Paused, nothing is read; resumed, everything the kernel kept comes,
   each datagram whole and in order.  */
static void
test_pause_resume (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);
  np_conn_set_paused (srv, TRUE);
  np_engine_sync (h.engine);
  TPeer p;
  peer_udp (&p, AF_INET);
  for (guint i = 0; i < 20; i++)
    {
      char msg[16];
      int n = g_snprintf (msg, sizeof msg, "m%u", i);
      peer_send_to (&p, msg, (gsize) n, &bound, bound_len);
    }
  th_pump (&h, 200);
  T_EQ (0, th_count (&h, 1, NP_EVENT_DATA));
  np_conn_set_paused (srv, FALSE);
  th_wait_count (&h, 1, NP_EVENT_DATA, 20);
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  for (guint i = 0; i < 20; i++)
    {
      NpEvent *e = g_ptr_array_index (got, i);
      g_autofree char *want = g_strdup_printf ("m%u", i);
      T_EQ (strlen (want), e->len);
      T_ASSERT (memcmp (e->data, want, e->len) == 0);
    }
  np_conn_close (srv);
  np_conn_unref (srv);
  th_free (&h);
  close (p.fd);
}

/* The inbound bound holds a datagram socket as it holds a stream: with
   nothing drained the queue stops near CONN_IN_HIGH (each datagram
   counting its event too), and draining lets the rest in.  */
static void
test_inbound_bound (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.conn_in_high = 8 * 1024;
  limits.conn_in_low = 2 * 1024;
  THarness h;
  th_init (&h, &limits);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);
  TPeer p;
  peer_udp (&p, AF_INET);
  guint8 buf[500];
  for (guint i = 0; i < 60; i++)
    {
      fill (buf, sizeof buf, i);
      peer_send_to (&p, buf, sizeof buf, &bound, bound_len);
    }
  /* Let the engine read what it will, then look without draining.  */
  gint64 deadline = t_now_ms () + 300;
  while (t_now_ms () < deadline)
    np_engine_sync (h.engine);
  NpQueueStats stats;
  np_engine_queue_stats (h.engine, &stats);
  T_GE (stats.in_bytes, limits.conn_in_high);
  T_LE (stats.in_bytes, limits.conn_in_high + sizeof buf + sizeof (NpEvent));
  T_LE (stats.events, 59);

  th_wait_count (&h, 1, NP_EVENT_DATA, 60);
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  for (guint i = 0; i < 60; i++)
    {
      NpEvent *e = g_ptr_array_index (got, i);
      fill (buf, sizeof buf, i);
      T_EQ (sizeof buf, e->len);
      if (memcmp (e->data, buf, sizeof buf) != 0)
        T_FAIL ("datagram %u changed", i);
    }
  np_engine_queue_stats (h.engine, &stats);
  T_EQ (0, stats.in_bytes);
  np_conn_close (srv);
  np_conn_unref (srv);
  th_free (&h);
  close (p.fd);
}

/* Sending.  */

/* A Unix receiver that does not read: its queue fills, sends are queued
   (np_conn_send_datagram still says 0), and once it reads, every one
   arrives, whole and in order, and the queue empties.  Then np_engine_
   free with datagrams still queued.  */
static void
test_unix_queue_keeps_boundaries (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "slow", NULL);
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_unix (&peer, path);
  NpConn *conn = client_open (&h, 1, &peer.addr, peer.addr_len);

  guint8 buf[3000];
  guint sent = 0;
  while (np_conn_queued (conn) == 0)
    {
      T_LE (sent, 100000);
      gsize len = 1 + sent % sizeof buf;
      fill (buf, len, sent);
      T_EQ (0, np_conn_send_datagram (conn, buf, len));
      sent++;
    }
  /* A few more behind the first queued, each its own.  */
  for (guint i = 0; i < 50; i++, sent++)
    {
      gsize len = 1 + sent % sizeof buf;
      fill (buf, len, sent);
      T_EQ (0, np_conn_send_datagram (conn, buf, len));
    }
  guint8 in[sizeof buf + 1];
  for (guint i = 0; i < sent; i++)
    {
      gsize len = 1 + i % sizeof buf;
      T_EQ (len, peer_recv (&peer, in, sizeof in, NULL, NULL));
      fill (buf, len, i);
      if (memcmp (in, buf, len) != 0)
        T_FAIL ("datagram %u of %u changed", i, sent);
    }
  th_wait_unqueued (&h, conn);
  T_EQ (0, th_count (&h, 1, NP_EVENT_SEND_FAILED));

  /* Fill it again and free the engine with the queue full.  */
  while (np_conn_queued (conn) == 0)
    T_EQ (0, np_conn_send_datagram (conn, buf, sizeof buf));
  th_free (&h);
  np_conn_unref (conn);
  close (peer.fd);
  t_rmdir (dir);
}

/* Closing while a peer floods: no event after close returns, nothing
   leaks (the harness counts descriptors).  */
typedef struct
{
  int fd;
  struct sockaddr_storage to;
  socklen_t to_len;
  atomic_int stop;
} Flood;

static void *
flood (void *data)
{
  Flood *f = data;
  guint8 buf[1200] = { 1 };
  while (!atomic_load (&f->stop))
    {
      if (sendto (f->fd, buf, sizeof buf, MSG_DONTWAIT,
                  (struct sockaddr *) &f->to, f->to_len) < 0)
        usleep (100);
    }
  return NULL;
}

static void
test_close_while_flowing (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  NpConn *srv = server_open (&h, 1, &at, at_len, 0, &bound, &bound_len);
  TPeer p;
  peer_udp (&p, AF_INET);
  Flood f = { .fd = p.fd, .to = bound, .to_len = bound_len };
  pthread_t thread;
  pthread_create (&thread, NULL, flood, &f);
  th_wait_count (&h, 1, NP_EVENT_DATA, 50);
  /* And sending from here meanwhile, to the flooder.  */
  NpEvent *e = th_find (&h, 1, NP_EVENT_DATA);
  np_conn_datagram_received (srv, e);
  for (int i = 0; i < 100; i++)
    T_EQ (0, np_conn_send_datagram (srv, "reply", 5));
  np_conn_close (srv);
  /* Events queued before the close may still be drained; none after.  */
  th_drain_now (&h);
  guint boundary = h.events->len;
  th_pump (&h, 200);
  th_assert_quiet_after (&h, 1, boundary);
  T_EQ (EPIPE, np_conn_send_datagram (srv, "late", 4));
  atomic_store (&f.stop, 1);
  pthread_join (thread, NULL);
  np_conn_unref (srv);
  th_free (&h);
  close (p.fd);
}

/* np_conn_send() on a datagram conn: one datagram per call as well.  */
static void
test_plain_send_is_one_datagram (void)
{
  THarness h;
  th_init (&h, NULL);
  TPeer peer;
  peer_udp (&peer, AF_INET);
  NpConn *conn = client_open (&h, 1, &peer.addr, peer.addr_len);
  T_EQ (0, np_conn_send (conn, "one", 3));
  T_EQ (0, np_conn_send (conn, "two", 3));
  char buf[16];
  T_EQ (3, peer_recv (&peer, buf, sizeof buf, NULL, NULL));
  T_EQ (3, peer_recv (&peer, buf, sizeof buf, NULL, NULL));
  /* A stream conn has no datagram address.  */
  struct sockaddr_storage dst;
  socklen_t dst_len = 99;
  TPair pair;
  t_pair_open (&pair, NULL);
  T_ASSERT (!np_conn_datagram_address (pair.conn, &dst, &dst_len));
  T_EQ (0, dst_len);
  T_ASSERT (!np_conn_set_datagram_address (pair.conn,
                                           (struct sockaddr *) &peer.addr,
                                           peer.addr_len));
  t_pair_close (&pair);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer.fd);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "datagram/client-ipv4", test_client_ipv4 },
    { "datagram/client-ipv6", test_client_ipv6 },
    { "datagram/client-unix", test_client_unix },
    { "datagram/client-connect-now", test_client_connect_now },
    { "datagram/client-resolved-sends-early",
      test_client_resolved_sends_early },
    { "datagram/oversize-emsgsize", test_oversize_emsgsize },
    { "datagram/no-listener", test_no_listener },
    { "datagram/server-two-peers", test_server_two_peers },
    { "datagram/server-unix", test_server_unix },
    { "datagram/server-ipv6-rebind", test_server_ipv6_rebind },
    { "datagram/set-address-sizes", test_set_address_sizes },
    { "datagram/truncate", test_truncate },
    { "datagram/whole-by-default", test_whole_by_default },
    { "datagram/empty-datagram-closes", test_empty_datagram_closes },
    { "datagram/pause-resume", test_pause_resume },
    { "datagram/inbound-bound", test_inbound_bound },
    { "datagram/unix-queue-keeps-boundaries",
      test_unix_queue_keeps_boundaries },
    { "datagram/close-while-flowing", test_close_while_flowing },
    { "datagram/plain-send-is-one-datagram",
      test_plain_send_is_one_datagram },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
