/* test-flow.c -- flow control: pause, inbound backpressure, WRITABLE,
   drain caps.  */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "testlib.h"


static guint8
pattern (gsize i)
{
  return (guint8) (((guint32) i * 2654435761u ^ (guint32) (i >> 12)) >> 24);
}


/* Commands run in order: once a byte sent after them reaches the peer,
   they have taken effect.  */
static void
sync_engine (TPair *p)
{
  np_conn_send (p->conn, "s", 1);
  char c;
  T_EQ (1, t_read_full (p->peer, &c, 1, WAIT_MS));
}

/* One drain, without waiting for a wake byte; returns the DATA bytes it
   took.  With caps above what can be queued, that is everything held.  */
static gsize
drain_now (THarness *h, guint64 id)
{
  gsize before = th_data_len (h, id);
  guint n = np_engine_drain (h->engine, h->buf);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (h->events, h->buf[i]);
  return th_data_len (h, id) - before;
}

static void
test_pause_resume (void)
{
  TPair p;
  t_pair_open (&p, NULL);
  np_conn_set_paused (p.conn, TRUE);
  sync_engine (&p);

  /* The kernel holds the peer back: its writes end in EAGAIN.  */
  t_set_nonblock (p.peer);
  guint8 chunk[65536];
  gsize written = 0;
  gboolean blocked = FALSE;
  while (written < 256u * 1024 * 1024)
    {
      for (gsize i = 0; i < sizeof chunk; i++)
        chunk[i] = pattern (written + i);
      ssize_t n = send (p.peer, chunk, sizeof chunk, MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN)
        {
          /* Once more after a moment: a reader would have made room.  */
          usleep (100000);
          n = send (p.peer, chunk, sizeof chunk, MSG_NOSIGNAL);
          if (n < 0 && errno == EAGAIN)
            {
              blocked = TRUE;
              break;
            }
        }
      T_ASSERT (n > 0);
      written += (gsize) n;
    }
  T_ASSERT (blocked);
  th_pump (&p.h, 200);
  T_EQ (0, th_count (&p.h, 1, NP_EVENT_DATA));

  np_conn_set_paused (p.conn, FALSE);
  th_wait_data (&p.h, 1, written, WAIT_MS);
  GByteArray *in = th_data (&p.h, 1);
  T_EQ (written, in->len);
  for (gsize i = 0; i < in->len; i++)
    if (in->data[i] != pattern (i))
      T_FAIL ("byte %zu: expected %u, got %u", i, pattern (i), in->data[i]);
  g_byte_array_unref (in);
  t_pair_close (&p);
}

/* Paused before the connection opens: stays paused once open.  */
static void
test_paused_while_connecting (void)
{
  THarness h;
  th_init (&h, NULL);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  NpConn *conn = th_connect_tcp (&h, 1, "localhost", port, AF_INET);
  np_conn_set_paused (conn, TRUE);
  int peer = t_accept (lfd, WAIT_MS);
  t_write_all (peer, "held", 4);
  th_wait (&h, 1, NP_EVENT_OPEN, WAIT_MS);
  th_pump (&h, 200);
  T_EQ (0, th_data_len (&h, 1));
  np_conn_set_paused (conn, FALSE);
  th_wait_data (&h, 1, 4, WAIT_MS);
  np_conn_close (conn);
  np_conn_unref (conn);
  th_free (&h);
  close (peer);
  close (lfd);
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
  shutdown (w->fd, SHUT_WR);
  return NULL;
}

static void
test_inbound_backpressure (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.read_size = 16 * 1024;
  limits.conn_in_high = 256 * 1024;
  limits.conn_in_low = 64 * 1024;
  /* One drain takes all that is queued, so its size is what was held.  */
  limits.drain_bytes = 64u * 1024 * 1024;
  limits.drain_events = 100000;
  TPair p;
  t_pair_open (&p, &limits);

  Writer w = { .fd = p.peer, .total = 64u * 1024 * 1024 };
  pthread_t thread;
  pthread_create (&thread, NULL, writer_thread, &w);

  /* Stall: the engine must stop reading, the kernel fills, the writer
     blocks.  */
  for (int round = 0; round < 3; round++)
    {
      usleep (300000);
      gsize held = drain_now (&p.h, 1);
      T_LE (held, limits.conn_in_high + limits.read_size);
      T_GE (held, 1);
    }
  T_ASSERT (__atomic_load_n (&w.written, __ATOMIC_ACQUIRE) < w.total);

  /* Then drain everything: nothing lost, nothing reordered.  */
  th_wait (&p.h, 1, NP_EVENT_CLOSED, 60000);
  pthread_join (thread, NULL);
  GByteArray *in = th_data (&p.h, 1);
  T_EQ (w.total, in->len);
  for (gsize i = 0; i < in->len; i++)
    if (in->data[i] != pattern (i))
      T_FAIL ("byte %zu: expected %u, got %u", i, pattern (i), in->data[i]);
  g_byte_array_unref (in);
  th_check_order (&p.h, 1);
  t_pair_close (&p);
}

static void
test_writable_after_out_high (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.out_high = 256 * 1024;
  limits.out_low = 64 * 1024;
  TPair p;
  t_pair_open (&p, &limits);

  /* The peer reads nothing.  Loopback buffers grow as they fill, so the
     queue may cross out_high and drain into the kernel (a legitimate
     WRITABLE) a few times before it stays above.  */
  guint8 chunk[65536] = { 0 };
  gsize total = 0;
  for (;;)
    {
      while (np_conn_queued (p.conn) < limits.out_high)
        {
          np_conn_send (p.conn, chunk, sizeof chunk);
          total += sizeof chunk;
          T_LE (total, 256u * 1024 * 1024);
        }
      th_pump (&p.h, 200);
      if (np_conn_queued (p.conn) >= limits.out_high)
        break;
    }
  guint before = th_count (&p.h, 1, NP_EVENT_WRITABLE);
  th_pump (&p.h, 100);
  T_EQ (before, th_count (&p.h, 1, NP_EVENT_WRITABLE));

  guint8 *sink = g_malloc (total);
  T_EQ (total, t_read_full (p.peer, sink, total, 30000));
  g_free (sink);
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (th_count (&p.h, 1, NP_EVENT_WRITABLE) == before
         && t_now_ms () < deadline)
    th_pump (&p.h, 100);
  T_EQ (before + 1, th_count (&p.h, 1, NP_EVENT_WRITABLE));
  T_LE (np_conn_queued (p.conn), limits.out_low);
  /* One crossing, one event.  */
  th_pump (&p.h, 100);
  T_EQ (before + 1, th_count (&p.h, 1, NP_EVENT_WRITABLE));
  t_pair_close (&p);
}

/* A drain takes at most drain_events events; the rest ring again, and
   once all are taken the ringing stops.  */
static void
test_capped_drain_rerings (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.drain_events = 4;
  THarness h;
  th_init (&h, &limits);
  guint16 port;
  int lfd = t_listen_tcp (AF_INET, &port);
  enum { N = 10 };
  NpConn *conns[N];
  int peers[N];
  for (int i = 0; i < N; i++)
    conns[i] = th_connect_tcp (&h, (guint64) i, "127.0.0.1", port, AF_INET);
  for (int i = 0; i < N; i++)
    peers[i] = t_accept (lfd, WAIT_MS);
  usleep (200000);  /* let every OPEN be queued before the first drain */

  guint sizes[N + 1] = { 0 };
  guint drains = 0;
  guint total = 0;
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (total < N && t_now_ms () < deadline)
    {
      guint n = th_pump (&h, 100);
      if (n > 0)
        {
          T_LE (n, limits.drain_events);
          sizes[drains++] = n;
          total += n;
        }
    }
  /* th_pump drains only after a wake byte, and nothing but the engine
     writes one: reaching N through it shows each capped drain rang again.
     Ten events at four a drain take three drains at least (more if the
     OPENs trickled in).  */
  T_EQ (N, total);
  T_GE (drains, 3);
  guint largest = 0;
  for (guint i = 0; i < drains; i++)
    largest = MAX (largest, sizes[i]);
  T_EQ (limits.drain_events, largest);  /* the cap was hit */
  /* Nothing left: no more bytes.  */
  struct pollfd pfd = { .fd = h.wake[0], .events = POLLIN };
  T_EQ (0, poll (&pfd, 1, 200));

  for (int i = 0; i < N; i++)
    {
      np_conn_close (conns[i]);
      np_conn_unref (conns[i]);
      close (peers[i]);
    }
  th_free (&h);
  close (lfd);
}

/* The byte cap: a drain stops before the DATA event that would pass it,
   but always takes at least one event.  */
static void
test_drain_byte_cap (void)
{
  NpLimits limits;
  np_limits_init_default (&limits);
  limits.read_size = 1000;
  limits.drain_bytes = 1500;
  TPair p;
  t_pair_open (&p, &limits);
  guint8 buf[5000];
  for (gsize i = 0; i < sizeof buf; i++)
    buf[i] = pattern (i);
  t_write_all (p.peer, buf, sizeof buf);

  gint64 deadline = t_now_ms () + WAIT_MS;
  while (th_data_len (&p.h, 1) < sizeof buf && t_now_ms () < deadline)
    {
      guint before = p.h.events->len;
      th_pump (&p.h, 100);
      gsize bytes = 0;
      guint data_events = 0;
      for (guint i = before; i < p.h.events->len; i++)
        {
          NpEvent *e = g_ptr_array_index (p.h.events, i);
          T_LE (e->len, limits.read_size);
          if (e->type == NP_EVENT_DATA)
            {
              bytes += e->len;
              data_events++;
            }
        }
      if (data_events > 1)
        T_LE (bytes, limits.drain_bytes);
    }
  GByteArray *in = th_data (&p.h, 1);
  T_EQ (sizeof buf, in->len);
  T_ASSERT (memcmp (in->data, buf, sizeof buf) == 0);
  g_byte_array_unref (in);
  t_pair_close (&p);
}

int
main (int argc, char **argv)
{
  static const TCase cases[] = {
    { "flow/pause-resume", test_pause_resume },
    { "flow/paused-while-connecting", test_paused_while_connecting },
    { "flow/inbound-backpressure", test_inbound_backpressure },
    { "flow/writable-after-out-high", test_writable_after_out_high },
    { "flow/capped-drain-rerings", test_capped_drain_rerings },
    { "flow/drain-byte-cap", test_drain_byte_cap },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
