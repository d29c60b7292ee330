/* test-flow.c -- flow control: pause, inbound backpressure (per
   connection and for all together), WRITABLE, drain caps.  */

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
  gsize base;             /* byte k written is pattern (base + k) */
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
        chunk[i] = pattern (w->base + off + i);
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

  /* The peer reads nothing, into a small buffer of fixed size.  The
     sender's buffer still grows as it fills, so the queue may cross
     out_high and drain into the kernel (a legitimate WRITABLE) a few
     times before it stays above: until it has, for a whole pump with no
     WRITABLE, send more.  */
  int small = 64 * 1024;
  T_EQ (0, setsockopt (p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
  gsize total = 0;
  for (;;)
    {
      t_send_until_queued (p.conn, limits.out_high, &total);
      guint seen = th_count (&p.h, 1, NP_EVENT_WRITABLE);
      th_pump (&p.h, 200);
      if (np_conn_queued (p.conn) >= limits.out_high
          && th_count (&p.h, 1, NP_EVENT_WRITABLE) == seen)
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

/* The total bound: several connections, each fed by a writer thread of
   its own with a pattern of its own.  */

/* Reads one readiness callback may make (NP_READS_PER_WAKE in stream.c).  */
#define READS_PER_WAKE 4

enum { N_STREAMS = 8 };

typedef struct
{
  THarness h;
  int lfd;
  NpConn *conns[N_STREAMS];   /* id i + 1 */
  int peers[N_STREAMS];
  Writer writers[N_STREAMS];
  pthread_t threads[N_STREAMS];
} TStreams;

/* Connection id I + 1 carries pattern (stream_base (I) + k) at offset k.
   No stream here is 16 MiB long, so no two streams share a stretch of
   the pattern, and bytes delivered to the wrong connection show.  */
static gsize
stream_base (int i)
{
  return (gsize) (i + 1) << 24;
}

/* Open the connections one at a time, so that the Ith accepted socket is
   the peer of id I + 1, then start every writer: EACH bytes, then EOF.  */
static void
streams_open (TStreams *s, const NpLimits *limits, gsize each)
{
  th_init (&s->h, limits);
  guint16 port;
  s->lfd = t_listen_tcp (AF_INET, &port);
  for (int i = 0; i < N_STREAMS; i++)
    {
      s->conns[i] = th_connect_tcp (&s->h, (guint64) i + 1, "127.0.0.1",
                                    port, AF_INET);
      s->peers[i] = t_accept (s->lfd, WAIT_MS);
      th_wait (&s->h, (guint64) i + 1, NP_EVENT_OPEN, WAIT_MS);
    }
  for (int i = 0; i < N_STREAMS; i++)
    {
      s->writers[i] = (Writer) { .fd = s->peers[i], .total = each,
                                 .base = stream_base (i) };
      pthread_create (&s->threads[i], NULL, writer_thread, &s->writers[i]);
    }
}

/* Without draining, sample the queue every 5 ms until it holds at least
   WANT_BYTES and WANT_HELD_BACK sockets are held back.  Every sample must
   hold at most BOUND bytes, and none may be held back unless
   HELD_BACK_ALLOWED.  Returns the last sample.  */
static NpQueueStats
streams_await (TStreams *s, gsize want_bytes, guint want_held_back,
               gsize bound, gboolean held_back_allowed)
{
  NpQueueStats st;
  gint64 deadline = t_now_ms () + WAIT_MS;
  for (;;)
    {
      np_engine_queue_stats (s->h.engine, &st);
      T_LE (st.in_bytes, bound);
      if (!held_back_allowed)
        T_EQ (0, st.held_back);
      if (st.in_bytes >= want_bytes && st.held_back >= want_held_back)
        return st;
      if (t_now_ms () > deadline)
        T_FAIL ("timed out waiting for %zu bytes queued and %u held back: "
                "in_bytes %zu, events %u, held_back %u", want_bytes,
                want_held_back, st.in_bytes, st.events, st.held_back);
      usleep (5000);
    }
}

/* Check that nothing moves for 300 ms while nothing is drained: the
   engine has stopped reading every socket.  Returns the queue then.  */
static NpQueueStats
streams_assert_still (TStreams *s, const NpQueueStats *before)
{
  usleep (300000);
  NpQueueStats st;
  np_engine_queue_stats (s->h.engine, &st);
  T_EQ (before->in_bytes, st.in_bytes);
  T_EQ (before->events, st.events);
  T_EQ (before->held_back, st.held_back);
  return st;
}

/* Drain to the end, checking the queue against BOUND after every drain
   (and HELD-BACK against 0 unless HELD_BACK_ALLOWED); then check every
   byte of every stream, that nothing is left queued or held back, and
   close everything.  */
static void
streams_finish (TStreams *s, gsize bound, gboolean held_back_allowed)
{
  guint closed = 0;
  guint seen = s->h.events->len;
  gint64 deadline = t_now_ms () + 60000;
  while (closed < N_STREAMS)
    {
      if (t_now_ms () > deadline)
        {
          g_autofree char *events = th_describe (&s->h);
          T_FAIL ("%u of %d streams closed after 60 s; seen %s", closed,
                  N_STREAMS, events);
        }
      th_pump (&s->h, 100);
      NpQueueStats st;
      np_engine_queue_stats (s->h.engine, &st);
      T_LE (st.in_bytes, bound);
      if (!held_back_allowed)
        T_EQ (0, st.held_back);
      for (; seen < s->h.events->len; seen++)
        {
          NpEvent *e = g_ptr_array_index (s->h.events, seen);
          if (e->type == NP_EVENT_CLOSED)
            {
              T_EQ (0, e->code);
              closed++;
            }
        }
    }

  for (int i = 0; i < N_STREAMS; i++)
    {
      pthread_join (s->threads[i], NULL);
      guint64 id = (guint64) i + 1;
      th_check_order (&s->h, id);
      GByteArray *in = th_data (&s->h, id);
      T_EQ (s->writers[i].total, in->len);
      for (gsize k = 0; k < in->len; k++)
        if (in->data[k] != pattern (stream_base (i) + k))
          T_FAIL ("id %d, byte %zu: expected %u, got %u", i + 1, k,
                  pattern (stream_base (i) + k), in->data[k]);
      g_byte_array_unref (in);
    }

  /* A CLOSED is the last event of its connection and follows a read that
     was not held back, so with all drained nothing is left anywhere.  */
  NpQueueStats st;
  np_engine_queue_stats (s->h.engine, &st);
  T_EQ (0, st.in_bytes);
  T_EQ (0, st.events);
  T_EQ (0, st.held_back);

  for (int i = 0; i < N_STREAMS; i++)
    {
      np_conn_close (s->conns[i]);
      np_conn_unref (s->conns[i]);
      close (s->peers[i]);
    }
  th_free (&s->h);
  close (s->lfd);
}

/* Limits under which the total bound bites first: the total reaches
   total_in_high long before any connection reaches its conn_in_high.  */
static void
total_bound_limits (NpLimits *limits)
{
  np_limits_init_default (limits);
  limits->read_size = 16 * 1024;
  limits->conn_in_high = 1024 * 1024;
  limits->conn_in_low = 256 * 1024;
  limits->total_in_high = 256 * 1024;
  limits->total_in_low = 64 * 1024;
  /* One drain takes all that is queued.  */
  limits->drain_bytes = 256u * 1024 * 1024;
  limits->drain_events = 100000;
}

/* Past total_in_high, the connection whose read crossed it may have made
   the rest of its callback's reads, and each other one a single read,
   before it is held back.  Allowing every connection a whole callback is
   more than that, and still far below what the writers offer.  */
static gsize
total_bound (const NpLimits *limits)
{
  return limits->total_in_high
         + N_STREAMS * limits->read_size * READS_PER_WAKE;
}

static void
test_total_bound_holds_back (void)
{
  NpLimits limits;
  total_bound_limits (&limits);
  gsize bound = total_bound (&limits);
  TStreams s;
  streams_open (&s, &limits, 2u * 1024 * 1024);

  /* Nothing drained: the writers offer 64 times total_in_high, so the
     total crosses it and every socket, each one delivering, is held back
     after its next read.  Then nothing moves.  */
  NpQueueStats st = streams_await (&s, limits.total_in_high, N_STREAMS,
                                   bound, TRUE);
  st = streams_assert_still (&s, &st);
  T_LE (st.in_bytes, bound);
  T_EQ (N_STREAMS, st.held_back);

  /* Each drain that brings the total under total_in_low resumes them
     all: nothing lost, nothing reordered, never past the bound.  */
  streams_finish (&s, bound, TRUE);
}

/* total_in_high 0 is no total bound at all (not a bound at 0, nor the
   default): with every connection at its own conn_in_high, the total is
   past the default total_in_high and nothing is held back.  */
static void
test_total_bound_zero_means_none (void)
{
  NpLimits defaults;
  np_limits_init_default (&defaults);
  NpLimits limits = defaults;
  limits.read_size = 16 * 1024;
  limits.conn_in_high = defaults.total_in_high / N_STREAMS + 1024 * 1024;
  limits.conn_in_low = 256 * 1024;
  limits.total_in_high = 0;
  limits.total_in_low = 0;
  limits.drain_bytes = 256u * 1024 * 1024;
  limits.drain_events = 100000;
  /* Each connection stops at most one read past its own bound.  */
  gsize bound = N_STREAMS * (limits.conn_in_high + limits.read_size);
  TStreams s;
  streams_open (&s, &limits, limits.conn_in_high + 2u * 1024 * 1024);

  NpQueueStats st = streams_await (&s, N_STREAMS * limits.conn_in_high, 0,
                                   bound, FALSE);
  T_GE (st.in_bytes, defaults.total_in_high + 1);
  /* The per-connection bound still applies: given time, the engine reads
     no further.  (A connection may still be a read short of its bound
     when the total is reached, so the total need not stand still.)  */
  usleep (300000);
  np_engine_queue_stats (s.h.engine, &st);
  T_LE (st.in_bytes, bound);
  T_EQ (0, st.held_back);

  /* One drain takes everything queued (one only: it resumes reading):
     no connection passed its own bound.  */
  guint from = s.h.events->len;
  guint n = np_engine_drain (s.h.engine, s.h.buf);
  for (guint k = 0; k < n; k++)
    g_ptr_array_add (s.h.events, s.h.buf[k]);
  for (int i = 0; i < N_STREAMS; i++)
    {
      gsize got = 0;
      for (guint k = from; k < s.h.events->len; k++)
        {
          NpEvent *e = g_ptr_array_index (s.h.events, k);
          if (e->id == (guint64) i + 1 && e->type == NP_EVENT_DATA)
            got += e->len;
        }
      T_GE (got, limits.conn_in_high);
      T_LE (got, limits.conn_in_high + limits.read_size);
    }

  streams_finish (&s, bound, FALSE);
}

/* The engine thread never waits on its owner: with the queue at its
   bound, every socket held back, nothing drained and the wake pipe full,
   a forced ring finds the pipe full and the engine goes on running
   commands.  A sync that did not return would end the case by the
   harness's alarm; the time asked of it here is far shorter.  */
static void
test_sync_while_undrained (void)
{
  NpLimits limits;
  total_bound_limits (&limits);
  gsize bound = total_bound (&limits);
  TStreams s;
  streams_open (&s, &limits, 2u * 1024 * 1024);
  NpQueueStats st = streams_await (&s, limits.total_in_high, N_STREAMS,
                                   bound, TRUE);

  /* Fill the wake pipe (the engine made it non-blocking).  */
  static const guint8 bytes[4096] = { 1 };
  gsize filled = 0;
  for (;;)
    {
      ssize_t n = write (s.h.wake[1], bytes, sizeof bytes);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          T_EQ (EAGAIN, errno);
          break;
        }
      filled += (gsize) n;
      T_LE (filled, 64u * 1024 * 1024);
    }

  for (int i = 0; i < 20; i++)
    {
      np_engine_ring (s.h.engine);
      gint64 start = t_now_ms ();
      np_engine_sync (s.h.engine);
      T_LE (t_now_ms () - start, 2000);
    }
  /* Syncs drain nothing and resume nothing.  */
  NpQueueStats after;
  np_engine_queue_stats (s.h.engine, &after);
  T_EQ (st.in_bytes, after.in_bytes);
  T_EQ (N_STREAMS, after.held_back);
  T_EQ (0, th_data_len (&s.h, 1));

  streams_finish (&s, bound, TRUE);
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
    { "flow/total-bound-holds-back", test_total_bound_holds_back },
    { "flow/total-bound-zero-means-none", test_total_bound_zero_means_none },
    { "flow/sync-while-undrained", test_sync_while_undrained },
  };
  return t_main (argc, argv, cases, G_N_ELEMENTS (cases));
}
