/* test-direct-read.c -- the owner reading a connection itself while it
   waits for it (np_conn_read_direct()): order kept against the engine's
   own reads, the engine watching again after a wait, and the cases where
   the owner must leave the reading to the engine.  */

#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"

#define PATTERN_BYTES (4 * 1024 * 1024)

static guint8
pattern (gsize i)
{
  return (guint8) (i % 251);
}

typedef struct
{
  int fd;
  gsize total;
  int delay_us;
  const char *late;       /* written once after DELAY_US, when set */
} TWriter;

/* Writes TOTAL pattern bytes in chunks of varying size, pausing now and
   then, so that some arrive while the owner waits and some while the
   engine watches.  */
static void *
write_pattern (void *data)
{
  TWriter *w = data;
  guint8 buf[7000];
  gsize sent = 0;
  guint round = 0;
  while (sent < w->total)
    {
      gsize n = MIN (w->total - sent, 1 + (round * 2654435761u) % sizeof buf);
      for (gsize i = 0; i < n; i++)
        buf[i] = pattern (sent + i);
      t_write_all (w->fd, buf, n);
      sent += n;
      if (++round % 16 == 0)
        g_usleep (200);
    }
  return NULL;
}

static void *
write_late (void *data)
{
  TWriter *w = data;
  g_usleep (w->delay_us);
  t_write_all (w->fd, w->late, strlen (w->late));
  return NULL;
}

/* The owner's side: every DATA event drained, in order, and every
   direct read between drains, appended to GOT as they come.  */
static void
take_events (THarness *h, guint *seen, GByteArray *got)
{
  th_drain_now (h);
  for (; *seen < h->events->len; (*seen)++)
    {
      NpEvent *e = g_ptr_array_index (h->events, *seen);
      if (e->id == 1 && e->type == NP_EVENT_DATA)
        g_byte_array_append (got, e->data, e->len);
    }
}

/* The engine reads while the owner reads: nothing lost, crossed or
   reordered.  */
static void
test_order_under_race (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  TWriter w = { .fd = p.peer, .total = PATTERN_BYTES };
  pthread_t writer;
  pthread_create (&writer, NULL, write_pattern, &w);

  g_autoptr (GByteArray) got = g_byte_array_new ();
  guint seen = 0, direct = 0, round = 0;
  static guint8 buf[65536];
  gint64 end = t_now_ms () + 4 * WAIT_MS;
  while (got->len < PATTERN_BYTES)
    {
      if (t_now_ms () > end)
        T_FAIL ("%u of %d bytes after the time allowed", got->len,
                PATTERN_BYTES);
      take_events (&p.h, &seen, got);
      gsize cap = 1 + (round++ * 40503u) % sizeof buf;
      /* Keeping the input now and then, and giving it back before
         any other wait, as the owner must.  */
      gssize n = np_conn_read_direct (p.conn, round % 3 == 0 ? 1 : 0,
                                      round % 4 == 0, buf, cap);
      if (n > 0)
        {
          g_byte_array_append (got, buf, n);
          direct++;
        }
      else if (round % 5 == 0)
        {
          np_conn_read_direct_end (p.conn);
          th_pump (&p.h, 1);
        }
    }
  pthread_join (writer, NULL);
  T_EQ (PATTERN_BYTES, got->len);
  for (gsize i = 0; i < got->len; i++)
    if (got->data[i] != pattern (i))
      T_FAIL ("byte %zu is %u, expected %u", i, got->data[i], pattern (i));
  /* Both readers took part.  */
  T_ASSERT (direct > 0);
  T_ASSERT (th_count (&p.h, 1, NP_EVENT_DATA) > 0);
  t_pair_close (&p);
}

/* A wait that sees nothing gives the socket back to the engine, which
   then reports what comes, as ever.  */
static void
test_engine_watches_after_wait (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  guint8 buf[64];
  gint64 t0 = t_now_ms ();
  T_EQ (-1, np_conn_read_direct (p.conn, 30, FALSE, buf, sizeof buf));
  T_ASSERT (t_now_ms () - t0 >= 25);
  t_write_all (p.peer, "late", 4);
  th_wait_data (&p.h, 1, 4, WAIT_MS);
  g_autoptr (GByteArray) data = th_data (&p.h, 1);
  T_ASSERT (memcmp (data->data, "late", 4) == 0);
  t_pair_close (&p);
}

/* Data that comes during the wait is read by the owner, and never
   queued.  */
static void
test_wait_sees_data (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  TWriter w = { .fd = p.peer, .delay_us = 20000, .late = "hello" };
  pthread_t writer;
  pthread_create (&writer, NULL, write_late, &w);
  guint8 buf[64];
  gssize n = -1;
  gint64 end = t_now_ms () + WAIT_MS;
  while (n < 0 && t_now_ms () < end)
    n = np_conn_read_direct (p.conn, 200, FALSE, buf, sizeof buf);
  pthread_join (writer, NULL);
  T_EQ (5, n);
  T_ASSERT (memcmp (buf, "hello", 5) == 0);
  th_pump (&p.h, 50);
  T_EQ (0, th_count (&p.h, 1, NP_EVENT_DATA));
  t_pair_close (&p);
}

/* The end of the connection is the engine's to report, even when it
   comes while the owner waits.  */
static void *
write_then_end (void *data)
{
  TWriter *w = data;
  g_usleep (w->delay_us);
  t_write_all (w->fd, w->late, strlen (w->late));
  shutdown (w->fd, SHUT_WR);
  return NULL;
}

static void
test_end_during_wait (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  int fds = t_count_fds ();
  TWriter w = { .fd = p.peer, .delay_us = 20000, .late = "last" };
  pthread_t writer;
  pthread_create (&writer, NULL, write_then_end, &w);
  guint8 buf[64];
  /* "last" first, then only the end: nothing more for the owner.  */
  T_EQ (4, np_conn_read_direct (p.conn, 500, FALSE, buf, sizeof buf));
  pthread_join (writer, NULL);
  T_EQ (-1, np_conn_read_direct (p.conn, 50, FALSE, buf, sizeof buf));
  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  T_EQ (0, th_count (&p.h, 1, NP_EVENT_DATA));
  /* The socket is gone, and reading it now is refused.  */
  T_EQ (-1, np_conn_read_direct (p.conn, 10, FALSE, buf, sizeof buf));
  /* The engine closes it as it reports the end.  */
  gint64 end = t_now_ms () + WAIT_MS;
  while (t_count_fds () != fds - 1 && t_now_ms () < end)
    g_usleep (1000);
  T_EQ (fds - 1, t_count_fds ());
  t_pair_close (&p);
}

/* Data of the conn waiting in the queue comes first: the owner reads
   nothing until it has drained it.  */
static void
test_queued_data_first (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  t_write_all (p.peer, "first", 5);
  /* Wait for the engine to queue it, without draining.  */
  gint64 end = t_now_ms () + WAIT_MS;
  NpQueueStats stats = { 0 };
  while (stats.in_bytes < 5 && t_now_ms () < end)
    {
      g_usleep (1000);
      np_engine_queue_stats (p.h.engine, &stats);
    }
  T_EQ (5, stats.in_bytes);
  t_write_all (p.peer, "second", 6);
  g_usleep (20000);
  guint8 buf[64];
  T_EQ (-1, np_conn_read_direct (p.conn, 10, FALSE, buf, sizeof buf));
  /* Drained: the rest is for the owner, or queued behind.  */
  g_autoptr (GByteArray) got = g_byte_array_new ();
  guint seen = 0;
  end = t_now_ms () + WAIT_MS;
  while (got->len < 11 && t_now_ms () < end)
    {
      take_events (&p.h, &seen, got);
      gssize n = np_conn_read_direct (p.conn, 10, FALSE, buf, sizeof buf);
      if (n > 0)
        g_byte_array_append (got, buf, n);
    }
  T_EQ (11, got->len);
  T_ASSERT (memcmp (got->data, "firstsecond", 11) == 0);
  t_pair_close (&p);
}

/* Reads "a", written by the peer while the owner waits, with KEEP.  */
static void
read_kept (TPair *p, guint8 *buf, gsize cap)
{
  TWriter w = { .fd = p->peer, .delay_us = 20000, .late = "a" };
  pthread_t writer;
  pthread_create (&writer, NULL, write_late, &w);
  T_EQ (1, np_conn_read_direct (p->conn, 1000, TRUE, buf, cap));
  pthread_join (writer, NULL);
  T_EQ ('a', buf[0]);
}

/* After a read with KEEP the owner keeps the input: the engine reads
   nothing until it is given back, then reads what came meanwhile.  */
static void
test_keep_holds_input (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  guint8 buf[64];
  read_kept (&p, buf, sizeof buf);
  t_write_all (p.peer, "b", 1);
  th_pump_for (&p.h, 50);
  T_EQ (0, th_count (&p.h, 1, NP_EVENT_DATA));
  /* Kept: no wait needed to read it.  */
  T_EQ (1, np_conn_read_direct (p.conn, 0, TRUE, buf, sizeof buf));
  T_EQ ('b', buf[0]);
  t_write_all (p.peer, "c", 1);
  th_pump_for (&p.h, 50);
  T_EQ (0, th_count (&p.h, 1, NP_EVENT_DATA));
  np_conn_read_direct_end (p.conn);
  th_wait_data (&p.h, 1, 1, WAIT_MS);
  g_autoptr (GByteArray) data = th_data (&p.h, 1);
  T_EQ ('c', data->data[0]);
  t_pair_close (&p);
}

/* A read that fills the owner's buffer is not kept: more is waiting,
   and the engine reads it, ahead of the owner, until it reads short.  */
static void
test_full_read_not_kept (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  TWriter w = { .fd = p.peer, .delay_us = 20000,
                .late = "0123456789abcdefghij" };
  pthread_t writer;
  pthread_create (&writer, NULL, write_late, &w);
  guint8 buf[10];
  T_EQ (10, np_conn_read_direct (p.conn, 1000, TRUE, buf, sizeof buf));
  pthread_join (writer, NULL);
  T_ASSERT (memcmp (buf, "0123456789", 10) == 0);
  th_wait_data (&p.h, 1, 10, WAIT_MS);
  g_autoptr (GByteArray) data = th_data (&p.h, 1);
  T_ASSERT (memcmp (data->data, "abcdefghij", 10) == 0);
  /* The engine read short: the flow has slowed, and the owner reads
     directly again.  */
  TWriter more = { .fd = p.peer, .delay_us = 20000, .late = "more" };
  pthread_create (&writer, NULL, write_late, &more);
  T_EQ (4, np_conn_read_direct (p.conn, 1000, TRUE, buf, sizeof buf));
  pthread_join (writer, NULL);
  t_pair_close (&p);
}

/* A reset while the owner keeps the input: the engine thread does not
   spin on the hang-up epoll reports unasked, and reports the end once
   the input is given back.  */
static void
test_keep_reset_no_spin (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  guint8 buf[64];
  read_kept (&p, buf, sizeof buf);
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  T_EQ (0, setsockopt (p.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
  close (p.peer);
  p.peer = -1;
  gint64 cpu = t_engine_cpu_ms ();
  th_pump_for (&p.h, 300);
  cpu = t_engine_cpu_ms () - cpu;
  T_LE (cpu, 50);
  T_EQ (0, th_count (&p.h, 1, NP_EVENT_CLOSED));
  np_conn_read_direct_end (p.conn);
  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (ECONNRESET, closed->code);
  t_pair_close (&p);
}

/* One direct read of what the peer writes DELAY_US into a wait of
   TIMEOUT_MS, with the polls it made counted; the bytes read, or -1.
   The owner keeps the input, so that what the peer writes between the
   reads is still there for the next one.  */
static gssize
read_counted (TPair *p, int delay_us, const char *late, int timeout_ms,
              guint *looks, guint *waits)
{
  TWriter w = { .fd = p->peer, .delay_us = delay_us, .late = late };
  pthread_t writer;
  if (late)
    pthread_create (&writer, NULL, write_late, &w);
  guint8 buf[64];
  t_poll_count ();
  gssize n = np_conn_read_direct (p->conn, timeout_ms, TRUE, buf,
                                  sizeof buf);
  t_poll_counted (looks, waits);
  if (late)
    pthread_join (writer, NULL);
  return n;
}

/* A reply that comes while the owner looks for it (spin.c) is read
   without a blocking wait.  */
static void
test_look_finds_reply (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  /* Looking far longer than the reply takes, however slow the build.  */
  np_engine_set_spin (p.h.engine, 500 * 1000);
  guint looks, waits;
  T_EQ (1, read_counted (&p, 5000, "a", 1000, &looks, &waits));
  T_ASSERT (looks > 0);
  T_EQ (0, waits);
  t_pair_close (&p);
}

/* A reply that outlasts the look: the owner blocks, and does not look
   on its next wait, until a reply comes within the look's time again.  */
static void
test_look_missed_then_skipped (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  /* A look far shorter than the late replies, far longer than the time
     an immediate one takes, however slow the build.  */
  np_engine_set_spin (p.h.engine, 20 * 1000);
  guint looks, waits;
  T_EQ (1, read_counted (&p, 100 * 1000, "a", 1000, &looks, &waits));
  T_ASSERT (looks > 0);
  T_EQ (1, waits);
  T_EQ (1, read_counted (&p, 100 * 1000, "b", 1000, &looks, &waits));
  T_EQ (0, looks);
  T_EQ (1, waits);
  /* There at once: the peer answers fast again.  */
  t_write_all (p.peer, "c", 1);
  T_EQ (1, read_counted (&p, 0, NULL, 1000, &looks, &waits));
  T_EQ (0, looks);
  T_EQ (1, waits);
  T_EQ (1, read_counted (&p, 100 * 1000, "d", 1000, &looks, &waits));
  T_ASSERT (looks > 0);
  T_EQ (1, waits);
  t_pair_close (&p);
}

/* A reply that comes just after a missed look is a late one too: the
   next wait does not look.  */
static void
test_look_missed_just (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  np_engine_set_spin (p.h.engine, 20 * 1000);
  guint looks, waits;
  T_EQ (1, read_counted (&p, 30 * 1000, "a", 1000, &looks, &waits));
  T_ASSERT (looks > 0);
  T_EQ (1, waits);
  T_EQ (1, read_counted (&p, 30 * 1000, "b", 1000, &looks, &waits));
  T_EQ (0, looks);
  T_EQ (1, waits);
  t_pair_close (&p);
}

/* No look on one CPU (spin 0), nor in a wait no longer than the look
   would be.  */
static void
test_no_look (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  guint looks, waits;
  np_engine_set_spin (p.h.engine, 0);
  T_EQ (1, read_counted (&p, 5000, "a", 1000, &looks, &waits));
  T_EQ (0, looks);
  T_EQ (1, waits);
  np_engine_set_spin (p.h.engine, 500 * 1000);
  T_EQ (-1, read_counted (&p, 0, NULL, 20, &looks, &waits));
  T_EQ (0, looks);
  T_EQ (1, waits);
  t_pair_close (&p);
}

/* The end seen by a look is the engine's to report, as after a wait.  */
static void
test_look_sees_end (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  np_engine_set_spin (p.h.engine, 500 * 1000);
  TWriter w = { .fd = p.peer, .delay_us = 5000, .late = "" };
  pthread_t writer;
  pthread_create (&writer, NULL, write_then_end, &w);
  guint8 buf[64];
  guint looks, waits;
  t_poll_count ();
  T_EQ (-1, np_conn_read_direct (p.conn, 1000, FALSE, buf, sizeof buf));
  t_poll_counted (&looks, &waits);
  pthread_join (writer, NULL);
  T_ASSERT (looks > 0);
  T_EQ (0, waits);
  NpEvent *closed = th_wait (&p.h, 1, NP_EVENT_CLOSED, WAIT_MS);
  T_EQ (0, closed->code);
  t_pair_close (&p);
}

/* Listeners, datagram and seqpacket sockets are never read here.  */
static void
test_other_kinds_refused (void)
{
  THarness h;
  th_init (&h, NULL);
  struct sockaddr_storage at, bound;
  socklen_t at_len = t_loopback (AF_INET, 0, &at), bound_len = 0;
  int err = 0;
  NpListenStep step;
  NpListenSpec dspec = { .address = (struct sockaddr *) &at,
                         .address_len = at_len, .reuseaddr = -1,
                         .type = SOCK_DGRAM };
  NpConn *dgram = np_engine_listen (h.engine, 1, &dspec, &bound, &bound_len,
                                    &err, &step, NULL);
  T_ASSERT (dgram != NULL);
  NpListenSpec lspec = { .address = (struct sockaddr *) &at,
                         .address_len = at_len, .reuseaddr = -1,
                         .backlog = 4 };
  NpConn *listener = np_engine_listen (h.engine, 2, &lspec, NULL, NULL,
                                       &err, &step, NULL);
  T_ASSERT (listener != NULL);

  int peer = socket (AF_INET, SOCK_DGRAM, 0);
  sendto (peer, "d", 1, 0, (struct sockaddr *) &bound, bound_len);
  g_usleep (20000);
  guint8 buf[16];
  T_EQ (-1, np_conn_read_direct (dgram, 10, FALSE, buf, sizeof buf));
  T_EQ (-1, np_conn_read_direct (listener, 10, FALSE, buf, sizeof buf));
  th_wait (&h, 1, NP_EVENT_DATA, WAIT_MS);

  close (peer);
  np_conn_close (dgram);
  np_conn_unref (dgram);
  np_conn_close (listener);
  np_conn_unref (listener);
  th_free (&h);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "direct-read/order-under-race", test_order_under_race },
    { "direct-read/engine-watches-after-wait",
      test_engine_watches_after_wait },
    { "direct-read/wait-sees-data", test_wait_sees_data },
    { "direct-read/end-during-wait", test_end_during_wait },
    { "direct-read/queued-data-first", test_queued_data_first },
    { "direct-read/keep-holds-input", test_keep_holds_input },
    { "direct-read/keep-reset-no-spin", test_keep_reset_no_spin },
    { "direct-read/full-read-not-kept", test_full_read_not_kept },
    { "direct-read/other-kinds-refused", test_other_kinds_refused },
    { "direct-read/look-finds-reply", test_look_finds_reply },
    { "direct-read/look-missed-then-skipped", test_look_missed_then_skipped },
    { "direct-read/look-missed-just", test_look_missed_just },
    { "direct-read/no-look", test_no_look },
    { "direct-read/look-sees-end", test_look_sees_end },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
