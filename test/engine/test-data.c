/* test-data.c -- bytes in both directions, and how streams end.  */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define BIG (16u * 1024 * 1024)

/* A position-dependent byte, so a lost, repeated or reordered chunk shows
   up at its offset.  */
static guint8
pattern (guint32 seed, gsize i)
{
  guint32 x = (guint32) i * 2654435761u ^ seed ^ (guint32) (i >> 16);
  return (guint8) (x >> 24);
}


/* The peer side of the big transfer: writes pattern A, reads and checks
   pattern B, both at once, then closes.  */
typedef struct
{
  int fd;
  gsize bad_at;          /* first wrong offset, or G_MAXSIZE */
  gsize got;
} BigPeer;

static void *
big_peer (void *data)
{
  BigPeer *bp = data;
  guint8 *out = g_malloc (BIG);
  for (gsize i = 0; i < BIG; i++)
    out[i] = pattern (0xA, i);
  guint8 in[65536];
  gsize sent = 0;
  bp->bad_at = G_MAXSIZE;
  t_set_nonblock (bp->fd);
  while (sent < BIG || bp->got < BIG)
    {
      struct pollfd pfd = { .fd = bp->fd,
                            .events = (bp->got < BIG ? POLLIN : 0)
                                      | (sent < BIG ? POLLOUT : 0) };
      if (poll (&pfd, 1, WAIT_MS) <= 0)
        break;
      if (sent < BIG && (pfd.revents & POLLOUT))
        {
          ssize_t n = send (bp->fd, out + sent, BIG - sent, MSG_NOSIGNAL);
          if (n > 0)
            sent += (gsize) n;
        }
      if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        {
          ssize_t n = recv (bp->fd, in, sizeof in, 0);
          if (n <= 0 && errno != EAGAIN)
            break;
          for (ssize_t i = 0; i < n; i++)
            if (in[i] != pattern (0xB, bp->got + (gsize) i)
                && bp->bad_at == G_MAXSIZE)
              bp->bad_at = bp->got + (gsize) i;
          if (n > 0)
            bp->got += (gsize) n;
        }
    }
  g_free (out);
  shutdown (bp->fd, SHUT_WR);
  return NULL;
}

static void
test_transfer_16mib_both_ways (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  BigPeer bp = { .fd = p.peer };
  pthread_t thread;
  pthread_create (&thread, NULL, big_peer, &bp);

  guint8 chunk[65536];
  gsize sent = 0;
  gint64 deadline = t_now_ms () + 60000;
  while (!th_find (&p.h, 1, NP_EVENT_CLOSED))
    {
      if (t_now_ms () > deadline)
        T_FAIL ("transfer stalled: sent %zu, received %zu; %s", sent,
                th_data_len (&p.h, 1), th_describe (&p.h));
      while (sent < BIG && np_conn_queued (p.conn) < p.h.limits.out_high)
        {
          for (gsize i = 0; i < sizeof chunk; i++)
            chunk[i] = pattern (0xB, sent + i);
          /* Written at once or queued: never more than was sent.  */
          gsize queued = np_conn_send (p.conn, chunk, sizeof chunk);
          T_LE (queued, BIG);
          sent += sizeof chunk;
        }
      th_pump (&p.h, 10);
    }
  pthread_join (thread, NULL);

  T_EQ (BIG, bp.got);
  T_EQ (G_MAXSIZE, bp.bad_at);
  GByteArray *in = th_data (&p.h, 1);
  T_EQ (BIG, in->len);
  for (gsize i = 0; i < in->len; i++)
    if (in->data[i] != pattern (0xA, i))
      T_FAIL ("received byte %zu: expected %u, got %u", i,
              pattern (0xA, i), in->data[i]);
  g_byte_array_unref (in);
  NpEvent *closed = th_find (&p.h, 1, NP_EVENT_CLOSED);
  T_EQ (0, closed->code);
  th_check_order (&p.h, 1);
  T_EQ (0, np_conn_queued (p.conn));
  t_pair_close (&p);
}

static void
test_peer_close_after_data (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  gsize n = 300000;
  guint8 *buf = g_malloc (n);
  for (gsize i = 0; i < n; i++)
    buf[i] = pattern (1, i);
  t_write_all (p.peer, buf, n);
  close (p.peer);
  p.peer = -1;

  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  T_ASSERT (closed->message == NULL);
  T_EQ (1, th_count (&p.h, 1, NP_EVENT_CLOSED));
  th_check_order (&p.h, 1);
  GByteArray *in = th_data (&p.h, 1);
  T_EQ (n, in->len);
  T_ASSERT (memcmp (in->data, buf, n) == 0);
  g_byte_array_unref (in);
  g_free (buf);

  /* Output after CLOSED is dropped.  */
  T_EQ (0, np_conn_send (p.conn, "late", 4));
  T_EQ (0, np_conn_queued (p.conn));
  t_pair_close (&p);
}

static void
reset_close (int fd)
{
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  setsockopt (fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close (fd);
}

/* Linux reports a reset to the next recv() as ECONNRESET.  */
static void
test_peer_reset (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  reset_close (p.peer);
  p.peer = -1;
  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (ECONNRESET, closed->code);
  T_STREQ ("Connection reset by peer", closed->message);
  th_check_order (&p.h, 1);
  t_pair_close (&p);
}

/* Writing into a reset connection: one CLOSED, EPIPE or ECONNRESET
   depending on whether the read or the write sees it first.  */
/* Paused, so only the write path can notice the reset: it drops and
   refuses output at once, and the connection ends when reading resumes,
   through the read side.  */
static void
test_write_after_peer_reset (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  np_conn_set_paused (p.conn, TRUE);
  reset_close (p.peer);
  p.peer = -1;
  guint8 chunk[65536] = { 0 };
  gint64 deadline = t_now_ms () + WAIT_MS;
  gboolean refused = FALSE;
  while (!refused && t_now_ms () < deadline)
    {
      /* A refused send returns 0 and queues nothing.  */
      refused = np_conn_send (p.conn, chunk, sizeof chunk) == 0
                && np_conn_queued (p.conn) == 0
                && np_conn_send (p.conn, chunk, 1) == 0
                && np_conn_queued (p.conn) == 0;
      th_pump (&p.h, 10);
    }
  T_ASSERT (refused);
  T_ASSERT (th_find (&p.h, 1, NP_EVENT_CLOSED) == NULL);

  np_conn_set_paused (p.conn, FALSE);
  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  if (closed->code != EPIPE && closed->code != ECONNRESET)
    T_FAIL ("CLOSED code: expected EPIPE or ECONNRESET, got %d",
            closed->code);
  th_pump (&p.h, 200);
  T_EQ (1, th_count (&p.h, 1, NP_EVENT_CLOSED));
  th_check_order (&p.h, 1);
  t_pair_close (&p);
}

/* The peer sends, then resets while our output is stuck in its full
   socket and reading is held back by the inbound bound: every byte it
   sent is delivered before CLOSED.  */
static void
test_reset_keeps_data_sent_before (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.read_size = 4096;
  limits.conn_in_high = 16 * 1024;
  limits.conn_in_low = 4 * 1024;
  TPair p;
  t_pair_open (&p, &limits);

  gsize total = 0;
  for (;;)
    {
      t_send_until_queued (p.conn, 2u * 1024 * 1024, &total);
      th_pump (&p.h, 200);
      if (np_conn_queued (p.conn) >= 2u * 1024 * 1024)
        break;
    }

  /* Not drained: the engine reads 16 KiB and stops.  */
  static guint8 sent[65536];
  for (gsize i = 0; i < sizeof sent; i++)
    sent[i] = (guint8) (i % 251);
  t_write_all (p.peer, sent, sizeof sent);
  np_engine_sync (p.h.engine);
  usleep (100000);
  reset_close (p.peer);
  p.peer = -1;

  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (ECONNRESET, closed->code);
  GByteArray *in = th_data (&p.h, 1);
  T_EQ (sizeof sent, in->len);
  T_ASSERT (memcmp (in->data, sent, sizeof sent) == 0);
  g_byte_array_unref (in);
  th_check_order (&p.h, 1);
  t_pair_close (&p);
}

static void
test_shutdown_write (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  /* Open and idle: the kernel takes it at once.  */
  T_EQ (0, np_conn_send (p.conn, "hello", 5));
  np_conn_shutdown_write (p.conn);

  char buf[16];
  T_EQ (5, t_read_full (p.peer, buf, sizeof buf, WAIT_MS));
  T_ASSERT (memcmp (buf, "hello", 5) == 0);
  T_EQ (0, recv (p.peer, buf, sizeof buf, 0));  /* EOF */

  /* Reading goes on.  */
  t_write_all (p.peer, "after", 5);
  th_wait_data (&p.h, 1, 5, WAIT_MS);
  GByteArray *in = th_data (&p.h, 1);
  T_ASSERT (memcmp (in->data, "after", 5) == 0);
  g_byte_array_unref (in);
  T_ASSERT (th_find (&p.h, 1, NP_EVENT_CLOSED) == NULL);

  close (p.peer);
  p.peer = -1;
  T_EQ (0, th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS)->code);
  th_check_order (&p.h, 1);
  t_pair_close (&p);
}

/* Output and a half close asked for while still connecting take effect
   once open, in that order.  */
static void
test_send_and_shutdown_before_open (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *conn = th_connect_tcp (&h, 1, "localhost", port, AF_INET);
  np_conn_send (conn, "early ", 6);
  np_conn_send (conn, "bytes", 5);
  np_conn_shutdown_write (conn);
  int peer = t_accept (lfd, WAIT_MS);
  char buf[32];
  T_EQ (11, t_read_full (peer, buf, sizeof buf, WAIT_MS));
  T_ASSERT (memcmp (buf, "early bytes", 11) == 0);
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
}

static void
test_send_returns_queued (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  /* Paused peer: nothing is read, so the kernel buffers fill and the
     queue shows what is left.  */
  guint8 chunk[65536] = { 0 };
  gsize total = 0, last = 0;
  for (int i = 0; i < 200; i++)
    {
      last = np_conn_send (p.conn, chunk, sizeof chunk);
      total += sizeof chunk;
      T_LE (last, total);
    }
  T_GE (np_conn_queued (p.conn), 1);
  /* Now read it all: the queue empties.  */
  guint8 *sink = g_malloc (total);
  T_EQ (total, t_read_full (p.peer, sink, total, WAIT_MS));
  g_free (sink);
  th_wait_unqueued (&p.h, p.conn);
  t_pair_close (&p);
}

/* A middling chunk freed is the next one given out, still holding its
   bytes (nothing clears them); small and large ones are not kept.  */
static void
test_chunk_spares_reused (void)
{
  NpChunk *spare = np_chunk_new (64 * 1024 + 1);
  np_chunk_bytes (spare)[0] = 'S';
  np_chunk_free (spare);
  NpChunk *again = np_chunk_new (20 * 1024);
  T_ASSERT (again == spare);
  T_EQ ('S', np_chunk_bytes (again)[0]);

  /* While it is out, another middling one is new.  */
  NpChunk *other = np_chunk_new (64 * 1024);
  T_ASSERT (other != again);
  np_chunk_free (other);
  np_chunk_free (again);

  NpChunk *small = np_chunk_new (100);
  NpChunk *large = np_chunk_new (1024 * 1024);
  np_chunk_bytes (small)[99] = 1;
  np_chunk_bytes (large)[1024 * 1024 - 1] = 1;
  np_chunk_free (small);
  np_chunk_free (large);
  np_chunk_free (NULL);
}

/* On an idle connection a small send is written at once by the caller,
   a large one (NP_DIRECT_MAX and up) is left whole to the engine, so
   the call returns without writing it; both arrive, in order.  */
static void
test_large_send_handed_over (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  enum { SMALL = 1024, LARGE = 64 * 1024 };
  guint8 *out = g_malloc (SMALL + LARGE);
  for (gsize i = 0; i < SMALL + LARGE; i++)
    out[i] = pattern (0xD, i);
  T_EQ (0, np_conn_send (p.conn, out, SMALL));
  T_EQ (LARGE, np_conn_send (p.conn, out + SMALL, LARGE));
  guint8 *in = g_malloc (SMALL + LARGE);
  T_EQ (SMALL + LARGE, t_read_full (p.peer, in, SMALL + LARGE, WAIT_MS));
  T_ASSERT (memcmp (in, out, SMALL + LARGE) == 0);
  th_wait_unqueued (&p.h, p.conn);
  g_free (in);
  g_free (out);
  t_pair_close (&p);
}

/* A chunk of LEN pattern bytes, from byte FROM of the stream on, with
   room for TAIL more that are never to be sent.  */
static NpChunk *
pattern_chunk (gsize from, gsize len, gsize tail)
{
  NpChunk *chunk = np_chunk_new (len + tail);
  guint8 *bytes = np_chunk_bytes (chunk);
  for (gsize i = 0; i < len; i++)
    bytes[i] = pattern (0xC, from + i);
  memset (bytes + len, 'X', tail);
  return chunk;
}

/* Chunks handed over while the peer reads nothing: the kernel takes
   part of one (a megabyte never fits a socket's buffer exactly), which
   is then queued from where it stopped, the rest behind it.  All arrive, in
   order, and none of the room past LEN; one handed over after the
   close is dropped (and freed: the sanitizers' leak check).  */
static void
test_send_chunk_partial_then_queued (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  enum { CHUNK = 1024 * 1024, TAIL = 7 };
  gsize total = 0, queued = 0;
  int chunks = 0;
  while (queued == 0 || chunks < 3)
    {
      T_EQ (0, np_conn_send_chunk (p.conn, pattern_chunk (total, CHUNK, TAIL),
                                   CHUNK, &queued));
      total += CHUNK;
      T_LE (queued, total);
      if (queued)
        chunks++;
      T_LE (total, 256u * 1024 * 1024);
    }

  guint8 *in = g_malloc (total);
  T_EQ (total, t_read_full (p.peer, in, total, 30000));
  for (gsize i = 0; i < total; i++)
    if (in[i] != pattern (0xC, i))
      T_FAIL ("byte %zu: expected %u, got %u", i, pattern (0xC, i), in[i]);
  g_free (in);
  th_wait_unqueued (&p.h, p.conn);

  np_conn_close (p.conn);
  T_EQ (0, np_conn_send_chunk (p.conn, pattern_chunk (0, 10, 0), 10, &queued));
  T_EQ (0, queued);
  t_pair_close (&p);
}

/* Writes TEXT from the peer and returns the DATA event(s) it made,
   which must be one: LEN bytes sent at once to an idle connection.  */
static NpEvent *
data_event_for (TPair *p, const char *text, gsize len)
{
  guint before = th_count (&p->h, 1, NP_EVENT_DATA);
  gsize had = th_data_len (&p->h, 1);
  t_write_all (p->peer, text, len);
  th_wait_data (&p->h, 1, had + len, WAIT_MS);
  T_EQ (before + 1, th_count (&p->h, 1, NP_EVENT_DATA));
  NpEvent *last = NULL;
  for (guint i = 0; i < p->h.events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (p->h.events, i);
      if (e->id == 1 && e->type == NP_EVENT_DATA)
        last = e;
    }
  return last;
}

/* With ASCII text asked for, a read that is all ASCII is marked as
   text, and one that is not stays bytes; not asked for, nothing is.  */
static void
test_ascii_text_marked (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  T_ASSERT (!data_event_for (&p, "plain", 5)->text);
  np_conn_set_ascii_text (p.conn, TRUE);
  T_ASSERT (data_event_for (&p, "plain\r\n", 7)->text);
  T_ASSERT (!data_event_for (&p, "caf\xc3\xa9", 5)->text);
  T_ASSERT (!data_event_for (&p, "\x80", 1)->text);
  np_conn_set_ascii_text (p.conn, FALSE);
  T_ASSERT (!data_event_for (&p, "plain", 5)->text);
  g_autoptr (GByteArray) data = th_data (&p.h, 1);
  T_EQ (23, data->len);
  t_pair_close (&p);
}

/* The scan's edges: every byte counts, wherever it sits.  */
static void
test_bytes_ascii (void)
{
  guint8 buf[257];
  memset (buf, 'a', sizeof buf);
  T_ASSERT (np_bytes_ascii (buf, sizeof buf));
  T_ASSERT (np_bytes_ascii (buf, 0));
  for (gsize at = 0; at < sizeof buf; at += 37)
    {
      buf[at] = 0x80;
      T_ASSERT (!np_bytes_ascii (buf, sizeof buf));
      T_ASSERT (np_bytes_ascii (buf, at));
      buf[at] = 0x7f;
    }
  T_ASSERT (np_bytes_ascii (buf, sizeof buf));
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "data/transfer-16mib-both-ways", test_transfer_16mib_both_ways },
    { "data/peer-close-after-data", test_peer_close_after_data },
    { "data/peer-reset", test_peer_reset },
    { "data/write-after-peer-reset", test_write_after_peer_reset },
    { "data/reset-keeps-data-sent-before",
      test_reset_keeps_data_sent_before },
    { "data/shutdown-write", test_shutdown_write },
    { "data/send-and-shutdown-before-open",
      test_send_and_shutdown_before_open },
    { "data/send-returns-queued", test_send_returns_queued },
    { "data/chunk-spares-reused", test_chunk_spares_reused },
    { "data/large-send-handed-over", test_large_send_handed_over },
    { "data/send-chunk-partial-then-queued",
      test_send_chunk_partial_then_queued },
    { "data/ascii-text-marked", test_ascii_text_marked },
    { "data/bytes-ascii", test_bytes_ascii },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
