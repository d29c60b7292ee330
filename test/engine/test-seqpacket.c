/* test-seqpacket.c -- Unix seqpacket connections: clients of a plain
   seqpacket listener, an engine listener and its plain clients, record
   boundaries both ways (queued records included), truncation, records
   too large, end of file and close.  */

#define _GNU_SOURCE

#include <errno.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "testlib.h"

/* Queued output needs the socket full: records of this size, this
   many, are well past Linux's default send buffer (about 208 KiB).  */
#define FILL_RECORD 4000
#define FILL_COUNT 200
/* Larger than any default socket buffer can take as one record.  */
#define HUGE_RECORD 300000

/* A plain seqpacket listener on PATH.  */
static int
plain_listener (const char *path)
{
  struct sockaddr_storage ss;
  socklen_t len = t_unix_address (path, &ss);
  int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  T_ASSERT (fd >= 0);
  if (bind (fd, (struct sockaddr *) &ss, len) < 0 || listen (fd, 5) < 0)
    T_FAIL ("plain listener: %s", g_strerror (errno));
  return fd;
}

/* A plain seqpacket client of PATH, blocking.  */
static int
plain_client (const char *path)
{
  struct sockaddr_storage ss;
  socklen_t len = t_unix_address (path, &ss);
  int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  T_ASSERT (fd >= 0);
  if (connect (fd, (struct sockaddr *) &ss, len) < 0)
    T_FAIL ("plain connect: %s", g_strerror (errno));
  return fd;
}

/* One record from FD, within TIMEOUT_MS: its length (0 at end of file),
   the bytes in BUF (at most SIZE).  */
static gssize
recv_record (int fd, void *buf, gsize size, int timeout_ms)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  if (poll (&pfd, 1, timeout_ms) != 1)
    T_FAIL ("no record within %d ms", timeout_ms);
  ssize_t n = recv (fd, buf, size, MSG_DONTWAIT);
  if (n < 0)
    T_FAIL ("recv: %s", g_strerror (errno));
  return n;
}

static void
send_record (int fd, const void *data, gsize len)
{
  ssize_t n = send (fd, data, len, MSG_NOSIGNAL);
  if (n != (ssize_t) len)
    T_FAIL ("send of %zu bytes: %zd (%s)", len, n, g_strerror (errno));
}

/* An engine seqpacket client of PATH (id ID), open, truncating reads to
   MAX (0: none).  */
static NpConn *
engine_client (THarness *h, guint64 id, const char *path, gsize max)
{
  NpConnectSpec spec = {
    .family = AF_UNIX,
    .path = path,
    .type = SOCK_SEQPACKET,
    .datagram_max = max,
  };
  NpEvent *outcome = NULL;
  NpConn *conn = np_engine_connect_now (h->engine, id, &spec, WAIT_MS,
                                        &outcome);
  T_ASSERT (outcome != NULL);
  T_EQ (NP_EVENT_OPEN, outcome->type);
  T_ASSERT (conn != NULL);
  np_event_free (outcome);
  return conn;
}

static void
assert_record (NpEvent *e, const char *expected, gsize len)
{
  T_EQ (len, e->len);
  if (memcmp (e->data, expected, len) != 0)
    T_FAIL ("record of %zu bytes differs", len);
}

/* CLOSED is ID's last event: no data after the end.  (th_check_order
   wants an OPEN first, which np_engine_connect_now() and accepting do
   not queue.)  */
static void
assert_closed_last (THarness *h, guint64 id)
{
  NpEvent *last = NULL;
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id == id)
        last = e;
    }
  T_ASSERT (last != NULL);
  T_EQ (NP_EVENT_CLOSED, last->type);
  T_EQ (1, th_count (h, id, NP_EVENT_CLOSED));
}

/* Cases.  */

static void
test_client_boundaries (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "seq", NULL);
  int lfd = plain_listener (path);
  THarness h;
  th_init (&h, NULL);
  NpConn *conn = engine_client (&h, 1, path, 0);
  int peer = t_accept (lfd, WAIT_MS);

  /* Engine to peer: each send one record.  */
  static const char *const out[] = { "a", "bb", "ccc" };
  for (guint i = 0; i < G_N_ELEMENTS (out); i++)
    np_conn_send (conn, out[i], strlen (out[i]));
  char buf[8192];
  for (guint i = 0; i < G_N_ELEMENTS (out); i++)
    {
      gssize n = recv_record (peer, buf, sizeof buf, WAIT_MS);
      T_EQ (strlen (out[i]), n);
      T_ASSERT (memcmp (buf, out[i], n) == 0);
    }

  /* Peer to engine: each record one DATA event, whole, whatever its
     size: larger than the engine's read size, and larger than its
     record buffer (the peer raised its send buffer for it).  */
  const gsize huge = 300000;
  int sndbuf = 1 << 20;
  T_ASSERT (setsockopt (peer, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                        sizeof sndbuf) == 0);
  g_autofree char *big = g_malloc (huge);
  for (gsize i = 0; i < huge; i++)
    big[i] = (char) ('a' + i % 23);
  send_record (peer, "x", 1);
  send_record (peer, "yy", 2);
  send_record (peer, big, 5000);
  send_record (peer, big, 100000);
  send_record (peer, big, huge);
  send_record (peer, "w", 1);
  th_wait_count (&h, 1, NP_EVENT_DATA, 6);
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  T_EQ (6, got->len);
  assert_record (got->pdata[0], "x", 1);
  assert_record (got->pdata[1], "yy", 2);
  assert_record (got->pdata[2], big, 5000);
  assert_record (got->pdata[3], big, 100000);
  assert_record (got->pdata[4], big, huge);
  assert_record (got->pdata[5], "w", 1);

  /* The peer closes: CLOSED, code 0, after the data.  */
  close (peer);
  NpEvent *closed = th_wait (&h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  assert_closed_last (&h, 1);

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (lfd);
  t_rmdir (dir);
}

static void
test_truncate (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "seq", NULL);
  int lfd = plain_listener (path);
  THarness h;
  th_init (&h, NULL);
  NpConn *conn = engine_client (&h, 1, path, 10);
  int peer = t_accept (lfd, WAIT_MS);

  /* As the builtin with read-process-output-max 10: the first 10 bytes
     of a longer record, the rest lost; the next record is whole.  */
  send_record (peer, "0123456789abcdefghij", 20);
  send_record (peer, "ok", 2);
  th_wait_count (&h, 1, NP_EVENT_DATA, 2);
  g_autoptr (GPtrArray) got = th_data_events (&h, 1);
  T_EQ (2, got->len);
  assert_record (got->pdata[0], "0123456789", 10);
  assert_record (got->pdata[1], "ok", 2);

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
  t_rmdir (dir);
}

static void
test_queued_keep_boundaries (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "seq", NULL);
  int lfd = plain_listener (path);
  THarness h;
  th_init (&h, NULL);
  NpConn *conn = engine_client (&h, 1, path, 0);
  int peer = t_accept (lfd, WAIT_MS);

  /* The peer reads nothing yet: the socket fills and the rest queues.
     Record I is FILL_RECORD bytes of I's low byte, its index first.  */
  g_autofree guint8 *rec = g_malloc (FILL_RECORD);
  gsize max_queued = 0;
  for (guint i = 0; i < FILL_COUNT; i++)
    {
      memset (rec, i & 0xff, FILL_RECORD);
      memcpy (rec, &i, sizeof i);
      gsize q = np_conn_send (conn, rec, FILL_RECORD);
      max_queued = MAX (max_queued, q);
    }
  T_GE (max_queued, FILL_RECORD);
  /* A record the socket can never take, queued behind the others: it is
     dropped when its turn comes, with SEND_FAILED, and those after it
     go on.  */
  g_autofree char *huge = g_malloc0 (HUGE_RECORD);
  T_EQ (0, np_conn_send_record (conn, huge, HUGE_RECORD, NULL));
  guint last = FILL_COUNT;
  memset (rec, last & 0xff, FILL_RECORD);
  memcpy (rec, &last, sizeof last);
  np_conn_send (conn, rec, FILL_RECORD);

  g_autofree guint8 *buf = g_malloc (HUGE_RECORD);
  for (guint i = 0; i <= FILL_COUNT; i++)
    {
      gssize n = recv_record (peer, buf, HUGE_RECORD, WAIT_MS);
      T_EQ (FILL_RECORD, n);
      guint index;
      memcpy (&index, buf, sizeof index);
      T_EQ (i, index);
      T_EQ (i & 0xff, buf[FILL_RECORD - 1]);
    }
  NpEvent *failed = th_wait (&h, 1, NP_EVENT_SEND_FAILED, WAIT_MS);
  T_EQ (EMSGSIZE, failed->code);
  T_EQ (0, th_count (&h, 1, NP_EVENT_CLOSED));
  th_wait_unqueued (&h, conn);

  /* Closing ends the peer's reads with end of file.  */
  np_conn_close (conn);
  T_EQ (0, recv_record (peer, buf, HUGE_RECORD, WAIT_MS));
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
  t_rmdir (dir);
}

static void
test_direct_too_large (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "seq", NULL);
  int lfd = plain_listener (path);
  THarness h;
  th_init (&h, NULL);
  NpConn *conn = engine_client (&h, 1, path, 0);
  int peer = t_accept (lfd, WAIT_MS);

  /* Nothing queued: the record is refused at once, as the builtin's
     write() is, and the conn goes on.  */
  g_autofree char *huge = g_malloc0 (HUGE_RECORD);
  gsize queued = 1;
  T_EQ (EMSGSIZE, np_conn_send_record (conn, huge, HUGE_RECORD, &queued));
  T_EQ (0, queued);
  T_EQ (0, np_conn_send_record (conn, "next", 4, &queued));
  char buf[64];
  T_EQ (4, recv_record (peer, buf, sizeof buf, WAIT_MS));
  T_ASSERT (memcmp (buf, "next", 4) == 0);
  th_pump (&h, 50);
  T_EQ (0, th_count (&h, 1, NP_EVENT_SEND_FAILED));
  T_EQ (0, th_count (&h, 1, NP_EVENT_CLOSED));

  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
  t_rmdir (dir);
}

static void
test_listener (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "seq", NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr, bound;
  socklen_t len = t_unix_address (path, &addr);
  socklen_t bound_len = 0;
  NpListenSpec spec = {
    .address = (struct sockaddr *) &addr,
    .address_len = len,
    .backlog = 5,
    .reuseaddr = -1,
    .type = SOCK_SEQPACKET,
    .datagram_max = 100,
  };
  int err = 0;
  NpListenStep step;
  NpConn *l = np_engine_listen (h.engine, 7, &spec, &bound, &bound_len,
                                &err, &step, NULL);
  if (!l)
    T_FAIL ("np_engine_listen: step %d: %s", step, g_strerror (err));

  /* A stream client is refused: the listener is seqpacket.  */
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  T_ASSERT (connect (s, (struct sockaddr *) &addr, len) < 0);
  close (s);

  int c = plain_client (path);
  NpEvent *acc = th_wait (&h, 7, NP_EVENT_ACCEPTED, WAIT_MS);
  guint64 aid = acc->accepted_id;
  NpConn *a = acc->accepted;

  /* Plain client to accepted: boundaries kept, cut to DATAGRAM_MAX.  */
  char big[300];
  memset (big, 'q', sizeof big);
  send_record (c, "one", 3);
  send_record (c, big, sizeof big);
  send_record (c, "three", 5);
  th_wait_count (&h, aid, NP_EVENT_DATA, 3);
  g_autoptr (GPtrArray) got = th_data_events (&h, aid);
  T_EQ (3, got->len);
  assert_record (got->pdata[0], "one", 3);
  assert_record (got->pdata[1], big, 100);
  assert_record (got->pdata[2], "three", 5);

  /* Accepted to plain client.  */
  np_conn_send (a, "r1", 2);
  np_conn_send (a, "r22", 3);
  char buf[64];
  T_EQ (2, recv_record (c, buf, sizeof buf, WAIT_MS));
  T_EQ (3, recv_record (c, buf, sizeof buf, WAIT_MS));
  T_ASSERT (memcmp (buf, "r22", 3) == 0);

  /* The client leaves: the accepted conn ends, code 0.  */
  close (c);
  NpEvent *closed = th_wait (&h, aid, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  assert_closed_last (&h, aid);

  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  t_rmdir (dir);
}

static void
test_engine_both_sides (void)
{
  char *dir = t_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "seq", NULL);
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage addr, bound;
  socklen_t len = t_unix_address (path, &addr);
  socklen_t bound_len = 0;
  NpListenSpec spec = {
    .address = (struct sockaddr *) &addr,
    .address_len = len,
    .backlog = 5,
    .reuseaddr = -1,
    .type = SOCK_SEQPACKET,
  };
  int err = 0;
  NpListenStep step;
  NpConn *l = np_engine_listen (h.engine, 7, &spec, &bound, &bound_len,
                                &err, &step, NULL);
  T_ASSERT (l != NULL);
  NpConn *conn = engine_client (&h, 1, path, 0);
  NpEvent *acc = th_wait (&h, 7, NP_EVENT_ACCEPTED, WAIT_MS);
  guint64 aid = acc->accepted_id;

  np_conn_send (conn, "ab", 2);
  np_conn_send (conn, "cde", 3);
  np_conn_send (acc->accepted, "f", 1);
  th_wait_count (&h, aid, NP_EVENT_DATA, 2);
  th_wait_count (&h, 1, NP_EVENT_DATA, 1);
  g_autoptr (GPtrArray) got = th_data_events (&h, aid);
  assert_record (got->pdata[0], "ab", 2);
  assert_record (got->pdata[1], "cde", 3);

  /* The client closes: the accepted conn sees end of file.  */
  np_conn_close (conn);
  NpEvent *closed = th_wait (&h, aid, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);

  np_conn_unref (conn);
  np_conn_close (l);
  np_conn_unref (l);
  th_free (&h);
  t_rmdir (dir);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "seqpacket/client-boundaries", test_client_boundaries },
    { "seqpacket/truncate", test_truncate },
    { "seqpacket/queued-keep-boundaries", test_queued_keep_boundaries },
    { "seqpacket/direct-too-large", test_direct_too_large },
    { "seqpacket/listener", test_listener },
    { "seqpacket/engine-both-sides", test_engine_both_sides },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
