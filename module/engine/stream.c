/* stream.c -- stream connections (TCP and Unix): connect, read, write.

   Life of a connection on the engine thread:

     NEW -> RESOLVING -> CONNECTING -> OPEN -> DONE
              (host)     (each address
                          in turn)

   A connection accepted by a listener (listen.c) starts at OPEN.

   Any state may go straight to DONE, through one function, teardown(),
   which drops every source, cancels the lookup, closes the socket and
   lets go of the engine's reference.  That reference is the only thing
   keeping the struct alive from the engine's side, so nothing may touch a
   conn after a call that can reach teardown(); such calls come last or
   report whether the conn lives on.

   The socket is ours, not GSocketClient's: we need the exact errno of a
   failed connect (the sentinel shows "failed with code 111"), the
   descriptor number (see fdplace.c), and GLib 2.74's GSocketClient has a
   use-after-free in its connect path (GLib issue 3266).  It is a plain
   descriptor in the engine's epoll set (poller.c); reads and writes are
   plain syscalls so errors keep their errno.  */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine-private.h"

/* Reads per readiness callback: enough to keep a fast stream going
   without letting one socket starve the others.  */
#define NP_READS_PER_WAKE 4
/* Sends of this many bytes or more are written by the engine thread,
   even when nothing is queued.  On loopback such a write keeps the
   writer in the kernel longer than handing it over costs (a wake-up of
   the engine thread); handed over, it runs while Emacs's thread goes on,
   and a stream of them keeps both threads busy instead of one.  */
#define NP_DIRECT_MAX (32 * 1024)
/* Chunks handed to one sendmsg().  */
#define NP_IOV_MAX 32

/* One name lookup.  Its callback always comes, cancelled or not, and
   frees it; conn->resolve points at it only while the result is still
   wanted.  */
struct NpResolveOp
{
  NpConn *conn;                   /* owned reference */
  GCancellable *cancel;
};

static void try_next_target (NpConn *conn);
static gboolean on_linger_check (gpointer data);
static void linger_ready (NpConn *conn, guint32 events);

/* Public, any thread.  */

/* A conn in state NEW that takes output; one reference, the caller's.  */
NpConn *
np__conn_new (NpEngine *engine, guint64 id)
{
  NpConn *conn = g_new0 (NpConn, 1);
  conn->ref_count = 1;
  conn->engine = engine;
  conn->id = id;
  pthread_mutex_init (&conn->out_lock, NULL);
  pthread_mutex_init (&conn->read_lock, NULL);
  conn->read_fd = -1;
  g_queue_init (&conn->out);
  conn->accepting = TRUE;
  conn->direct_fd = -1;
  conn->fd = -1;
  conn->state = NP_CONN_NEW;
  return conn;
}

static NpConn *
conn_from_spec (NpEngine *engine, guint64 id, const NpConnectSpec *spec)
{
  NpConn *conn = np__conn_new (engine, id);
  conn->family = spec->family;
  conn->host = g_strdup (spec->host);
  conn->port = spec->port;
  conn->path = g_strdup (spec->path);
  conn->datagram = spec->type == SOCK_DGRAM;
  conn->seqpacket = spec->type == SOCK_SEQPACKET;
  conn->datagram_max = spec->datagram_max;
  if (spec->remote && spec->remote_len > 0)
    {
      conn->remote_len = MIN (spec->remote_len,
                              (socklen_t) sizeof conn->remote);
      memcpy (&conn->remote, spec->remote, conn->remote_len);
    }
  if (spec->options && spec->n_options > 0)
    {
      conn->options = g_memdup2 (spec->options,
                                 spec->n_options * sizeof *spec->options);
      conn->n_options = spec->n_options;
    }
  return conn;
}

NpConn *
np_engine_connect (NpEngine *engine, guint64 id, const NpConnectSpec *spec)
{
  NpConn *conn = conn_from_spec (engine, id, spec);
  np__engine_post (engine, NP_CMD_CONNECT, conn, FALSE);
  return conn;
}

static void add_target (NpConn *conn, const struct sockaddr_storage *addr,
                        socklen_t len);

/* The local and remote addresses of FD into EVENT; REMOTE, when given,
   instead of asking the socket (which has no peer after a failure).  */
static void
event_addresses (NpEvent *event, int fd, const NpTarget *remote)
{
  event->local_len = sizeof event->local;
  if (fd < 0 || getsockname (fd, (struct sockaddr *) &event->local,
                             &event->local_len) < 0)
    event->local_len = 0;
  if (remote)
    {
      memcpy (&event->remote, &remote->addr, remote->len);
      event->remote_len = remote->len;
      return;
    }
  event->remote_len = sizeof event->remote;
  if (fd < 0 || getpeername (fd, (struct sockaddr *) &event->remote,
                             &event->remote_len) < 0)
    event->remote_len = 0;
}

static int connect_wait (int fd, int timeout_ms);

/* connect() on this thread; waits up to TIMEOUT_MS for a connect in
   progress.  Returns 0 when connected, EINPROGRESS when still going, or
   the errno of the failure.  */
static int
connect_here (int fd, const NpTarget *target, int timeout_ms)
{
  if (connect (fd, (const struct sockaddr *) &target->addr, target->len) == 0)
    return 0;
  if (errno != EINPROGRESS)
    return errno;
  /* No time: not even a look, whose answer would depend on how fast the
     peer answered (loopback refuses before the look).  */
  if (timeout_ms <= 0)
    return EINPROGRESS;
  return connect_wait (fd, timeout_ms);
}

/* Waits up to TIMEOUT_MS (0: a look) for FD's connect in progress to
   settle.  Returns as connect_here() does.  */
static int
connect_wait (int fd, int timeout_ms)
{
  /* Signals interrupt the wait; each retry waits only for what is left,
     so a steady stream of them cannot keep the caller here.  */
  struct pollfd pfd = { .fd = fd, .events = POLLOUT };
  gint64 deadline = g_get_monotonic_time () + MAX (timeout_ms, 0) * 1000;
  int n;
  for (;;)
    {
      gint64 left_ms = (deadline - g_get_monotonic_time () + 999) / 1000;
      n = poll (&pfd, 1, (int) MAX (left_ms, 0));
      if (n >= 0 || errno != EINTR)
        break;
    }
  if (n <= 0)
    return EINPROGRESS;
  if (pfd.revents == POLLOUT)
    return 0;  /* writable and no error or hang-up: connected */

  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  return err;
}

/* A stream np_engine_connect_now() opened: the engine takes the
   connection over when it next wakes for any reason, so that a
   connection that sends, reads its reply directly and closes costs the
   engine thread no wake-up at all.  The socket goes into the engine's
   set from this thread, or, when the owner reads it first (OWNER_READS),
   only once the owner gives input back (np_conn_read_direct_end()):
   then even a reply that comes before the owner waits for it wakes no
   thread, and the socket never enters the set if it closes first.  */
static void
adopt_open_quietly (NpConn *conn, int fd, gboolean owner_reads)
{
  /* What np__stream_adopt() asks for, so that a direct read ending
     before the hand-over puts the socket back in the set.  */
  conn->watching = EPOLLIN;
  np__engine_post_quietly (conn->engine, NP_CMD_ADOPT, conn);

  pthread_mutex_lock (&conn->read_lock);
  int err = 0;
  if (owner_reads)
    conn->direct_waiting = TRUE;
  else if (conn->read_fd == fd)
    err = np__watch_apply (conn, fd, EPOLLIN);
  pthread_mutex_unlock (&conn->read_lock);
  /* A full set: wake the engine, whose own try reports the error.  */
  if (err)
    np__engine_post (conn->engine, NP_CMD_SYNC, NULL, FALSE);
}

/* np_engine_connect_now(), and with LOOK np_engine_connect_soon().  */
static NpConn *
connect_here_now (NpEngine *engine, guint64 id, const NpConnectSpec *spec,
                  int timeout_ms, gboolean look, NpEvent **outcome)
{
  *outcome = NULL;
  NpConn *conn = conn_from_spec (engine, id, spec);

  NpTarget target;
  gboolean literal = FALSE;
  if (conn->remote_len > 0)
    {
      memcpy (&target.addr, &conn->remote, conn->remote_len);
      target.len = conn->remote_len;
      literal = TRUE;
    }
  else if (conn->path)
    literal = np__address_unix (conn->path, &target.addr, &target.len);
  if (!literal)
    {
      /* A name to look up, or a path too long: the engine's way.  */
      np__engine_post (engine, NP_CMD_CONNECT, conn, FALSE);
      return conn;
    }

  int err = 0;
  guint failed_option = 0;
  int fd = np__fd_socket (target.addr.ss_family, NP__CONN_SOCKTYPE (conn),
                          &err);
  if (fd >= 0)
    {
      err = np__sockopt_apply (fd, conn->options, conn->n_options,
                               &failed_option);
      if (err)
        {
          /* As Emacs does: no connect, and the option is the error.  */
          NpEvent *event = np__event_new (id, NP_EVENT_FAILED, 0);
          event->code = err;
          event->message = g_strdup (g_strerror (err));
          event->option_failed = TRUE;
          event->option_index = failed_option;
          close (fd);
          *outcome = event;
          np_conn_unref (conn);
          return NULL;
        }
      /* A datagram client is not connected: open as it is.  */
      if (!conn->datagram)
        {
          err = connect_here (fd, &target, timeout_ms);
          /* Asynchronous, the outcome may be whatever a look finds
             now: the owner shows it no sooner than its next wait, as if
             it took time.  */
          if (err == EINPROGRESS && look)
            err = connect_wait (fd, 0);
          /* The engine finds the socket writable and reports the OPEN.  */
          if (err == 0 && spec->open_later)
            err = EINPROGRESS;
        }
    }

  if (err == EINPROGRESS)
    {
      /* Not yet: the engine watches it from here, as if it had started
         the connect itself.  */
      conn->fd = fd;
      add_target (conn, &target.addr, target.len);
      conn->next_target = 1;
      conn->state = NP_CONN_CONNECTING;
      np__engine_post (engine, NP_CMD_ADOPT, conn, FALSE);
      return conn;
    }

  if (err == 0)
    {
      /* The peer is the address just connected to.  */
      NpEvent *event = np__event_new (id, NP_EVENT_OPEN, 0);
      event_addresses (event, fd, &target);
      conn->fd = fd;
      conn->direct_fd = fd;
      if (!conn->datagram && !conn->seqpacket)
        conn->read_fd = fd;
      conn->state = NP_CONN_OPEN;
      if (conn->datagram)
        {
          conn->family = target.addr.ss_family;
          np__datagram_set_address (conn, &target.addr, target.len);
        }
      *outcome = event;
      if (conn->datagram || conn->seqpacket)
        np__engine_post (engine, NP_CMD_ADOPT, conn, FALSE);
      else
        adopt_open_quietly (conn, fd, spec->owner_reads);
      return conn;
    }

  NpEvent *event = np__event_new (id, NP_EVENT_FAILED, 0);
  event->code = err;
  event->message = g_strdup (g_strerror (err));
  if (fd >= 0)
    {
      event_addresses (event, fd, &target);
      close (fd);
    }
  *outcome = event;
  np_conn_unref (conn);
  return NULL;
}

NpConn *
np_engine_connect_now (NpEngine *engine, guint64 id,
                       const NpConnectSpec *spec, int timeout_ms,
                       NpEvent **outcome)
{
  return connect_here_now (engine, id, spec, timeout_ms, FALSE, outcome);
}

NpConn *
np_engine_connect_soon (NpEngine *engine, guint64 id,
                        const NpConnectSpec *spec, NpEvent **outcome)
{
  return connect_here_now (engine, id, spec, 0, TRUE, outcome);
}

NpConn *
np_conn_ref (NpConn *conn)
{
  g_atomic_int_inc (&conn->ref_count);
  return conn;
}

/* Drops what is queued: chunks, or a datagram conn's NpDatagrams.  */
static void
clear_output (NpConn *conn)
{
  g_queue_clear_full (&conn->out, conn->datagram
                                  ? g_free
                                  : (GDestroyNotify) np_chunk_free);
}

/* May run inside Emacs's garbage collection, on any thread, even after
   np_engine_free(): it touches nothing but the conn itself.  The engine
   holds its own reference for as long as a socket, source or lookup
   exists, so the last reference never finds any of those.  */
void
np_conn_unref (NpConn *conn)
{
  if (!conn || !g_atomic_int_dec_and_test (&conn->ref_count))
    return;
  clear_output (conn);
  g_clear_pointer (&conn->targets, g_array_unref);
  g_free (conn->options);
  /* Only a listener whose start never ran (its command refused by an
     engine being stopped) still has a socket here; closing it is all
     that is left to do.  */
  if (conn->fd >= 0 && !conn->owner_closed)
    close (conn->fd);
  pthread_mutex_destroy (&conn->out_lock);
  pthread_mutex_destroy (&conn->read_lock);
  g_free (conn->host);
  g_free (conn->path);
  g_free (conn);
}

/* Sends CHUNK's bytes, or queues what the socket does not take; CHUNK
   is the queue's or freed.  With REFUSED non-NULL, a record the kernel
   refuses outright (EMSGSIZE) on a direct send is dropped and its errno
   stored there instead of being queued.  */
static gsize
send_stream (NpConn *conn, NpChunk *chunk, int *refused)
{
  gsize len = chunk->len;
  if (len == 0)
    {
      np_chunk_free (chunk);
      return np_conn_queued (conn);
    }

  pthread_mutex_lock (&conn->out_lock);
  if (!conn->accepting)
    {
      pthread_mutex_unlock (&conn->out_lock);
      np_chunk_free (chunk);
      return 0;
    }
  /* Nothing queued and the socket open: write at once from this thread,
     so a reply does not wait for the engine thread to wake.  What the
     kernel does not take, or an error, goes to the engine as usual; it
     reports errors.  Only an empty queue allows it, so order is kept.
     A large write goes to the engine all the same (see NP_DIRECT_MAX),
     except a seqpacket record, which must be refused here if too big.  */
  gsize sent = 0;
  if (conn->out.length == 0 && conn->direct_fd >= 0
      && (len < NP_DIRECT_MAX || conn->seqpacket))
    {
      ssize_t n = send (conn->direct_fd, chunk->data, len,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
      /* A seqpacket send is all or nothing: any count is the record.  */
      gboolean done = n == (ssize_t) len || (n > 0 && conn->seqpacket);
      if (!done && n < 0 && errno == EMSGSIZE && refused)
        {
          *refused = EMSGSIZE;
          done = TRUE;
        }
      if (done)
        {
          pthread_mutex_unlock (&conn->out_lock);
          np_chunk_free (chunk);
          return 0;
        }
      if (n > 0)
        sent = (gsize) n;
    }
  /* While the queue is non-empty the engine is already on it (writing,
     waiting for the socket, or about to open it): only the first chunk
     needs to tell it.  A first chunk partly written starts at what the
     kernel took.  */
  gboolean was_empty = conn->out.length == 0;
  if (was_empty)
    conn->out_offset = sent;
  g_queue_push_tail (&conn->out, chunk);
  conn->queued += len - sent;
  if (conn->queued >= conn->engine->limits.out_high)
    conn->out_high_hit = TRUE;
  gsize queued = conn->queued;
  pthread_mutex_unlock (&conn->out_lock);

  if (was_empty)
    np__engine_post (conn->engine, NP_CMD_FLUSH, conn, FALSE);
  return queued;
}

static NpChunk *
chunk_copy (const void *data, gsize len)
{
  NpChunk *chunk = np_chunk_new (len);
  memcpy (np_chunk_bytes (chunk), data, len);
  chunk->len = len;
  return chunk;
}

gsize
np_conn_send (NpConn *conn, const void *data, gsize len)
{
  if (conn->datagram)
    {
      (void) np_conn_send_datagram (conn, data, len);
      return np_conn_queued (conn);
    }
  return send_stream (conn, chunk_copy (data, len), NULL);
}

int
np_conn_send_chunk (NpConn *conn, NpChunk *chunk, gsize len, gsize *queued)
{
  chunk->len = len;
  if (conn->datagram)
    {
      int err = np_conn_send_datagram (conn, chunk->data, len);
      np_chunk_free (chunk);
      if (queued)
        *queued = np_conn_queued (conn);
      return err;
    }
  int refused = 0;
  gsize q = send_stream (conn, chunk, conn->seqpacket ? &refused : NULL);
  if (queued)
    *queued = refused ? np_conn_queued (conn) : q;
  return refused;
}

int
np_conn_send_record (NpConn *conn, const void *data, gsize len,
                     gsize *queued)
{
  return np_conn_send_chunk (conn, chunk_copy (data, len), len, queued);
}

gsize
np_conn_queued (NpConn *conn)
{
  pthread_mutex_lock (&conn->out_lock);
  gsize queued = conn->queued;
  pthread_mutex_unlock (&conn->out_lock);
  return queued;
}

gsize
np_conn_dropped (NpConn *conn, int *err)
{
  pthread_mutex_lock (&conn->out_lock);
  gsize dropped = conn->dropped;
  *err = conn->dropped_errno;
  pthread_mutex_unlock (&conn->out_lock);
  return dropped;
}

void
np_conn_shutdown_write (NpConn *conn)
{
  if (conn->listener)
    return;
  np__engine_post (conn->engine, NP_CMD_SHUTDOWN_WRITE, conn, FALSE);
}

void
np_conn_set_paused (NpConn *conn, gboolean paused)
{
  np__engine_post (conn->engine, NP_CMD_PAUSE, conn, paused);
}

void
np_conn_set_linger (NpConn *conn, gboolean linger)
{
  g_atomic_int_set (&conn->no_linger, linger ? 0 : 1);
}

int
np_engine_lingering (NpEngine *engine)
{
  return g_atomic_int_get (&engine->lingering);
}

void
np_conn_set_ascii_text (NpConn *conn, gboolean on)
{
  g_atomic_int_set (&conn->ascii_text, on ? 1 : 0);
}

gboolean
np_bytes_ascii (const void *data, gsize len)
{
  const guint8 *bytes = data;
  guint8 any = 0;
  for (gsize i = 0; i < len; i++)
    any |= bytes[i];
  return any < 0x80;
}

/* np_conn_close(), on the owner's thread: an open stream with nothing
   queued to send is closed here and now, as close(2) would close it, and
   the engine forgets it whenever it next wakes; waking it for each
   connection closed would cost a thread switch for bookkeeping.  With
   output queued, or the engine reading the end, the engine closes it as
   before.  Returns whether the socket was closed here.  */
static gboolean
close_here (NpConn *conn)
{
  if (conn->datagram || conn->seqpacket)
    return FALSE;
  pthread_mutex_lock (&conn->read_lock);
  pthread_mutex_lock (&conn->out_lock);
  int fd = conn->read_fd;
  gboolean here = fd >= 0 && conn->direct_fd == fd && conn->out.length == 0;
  if (here)
    {
      (void) np__watch_apply (conn, fd, 0);
      conn->direct_waiting = FALSE;
      conn->read_fd = conn->direct_fd = -1;
      conn->owner_closed = TRUE;
      close (fd);
    }
  pthread_mutex_unlock (&conn->out_lock);
  pthread_mutex_unlock (&conn->read_lock);
  return here;
}

/* np_conn_close(), or with DEFER np_conn_close_deferred().  */
static void
close_conn (NpConn *conn, gboolean defer)
{
  NpEngine *engine = conn->engine;

  pthread_mutex_lock (&engine->event_lock);
  gboolean already = conn->user_closed;
  conn->user_closed = TRUE;
  pthread_mutex_unlock (&engine->event_lock);
  if (already)
    return;

  pthread_mutex_lock (&conn->out_lock);
  conn->accepting = FALSE;
  pthread_mutex_unlock (&conn->out_lock);

  /* A listener's address must be free to bind again once this returns,
     as it is after close(2): wait for the engine to close it.  So must a
     datagram server's.  */
  if (conn->listener || conn->datagram_server)
    np__engine_post_and_wait (engine, NP_CMD_CLOSE, conn, FALSE);
  else if (defer)
    np__engine_post_quietly (engine, NP_CMD_CLOSE, conn);
  else if (close_here (conn))
    np__engine_post_quietly (engine, NP_CMD_CLOSE, conn);
  else
    np__engine_post (engine, NP_CMD_CLOSE, conn, FALSE);
}

void
np_conn_close (NpConn *conn)
{
  close_conn (conn, FALSE);
}

void
np_conn_close_deferred (NpConn *conn)
{
  close_conn (conn, TRUE);
}

/* Engine thread from here on.  */

void
np__source_clear (GSource **source)
{
  if (*source)
    {
      g_source_destroy (*source);
      g_source_unref (*source);
      *source = NULL;
    }
}

/* Out of the epoll set before the close: a child forked by Emacs may
   still hold the open file, and the set would go on reporting it.  */
static void
drop_socket (NpConn *conn)
{
  np__source_clear (&conn->retry_source);
  conn->want_read = conn->want_write = FALSE;
  np__watch (conn, 0);
  if (conn->fd >= 0)
    {
      pthread_mutex_lock (&conn->read_lock);
      conn->read_fd = -1;
      pthread_mutex_lock (&conn->out_lock);
      conn->direct_fd = -1;
      if (!conn->owner_closed)
        close (conn->fd);
      conn->fd = -1;
      pthread_mutex_unlock (&conn->out_lock);
      pthread_mutex_unlock (&conn->read_lock);
    }
}

/* Tells the poller what CONN wants now.  Returns 0 or an errno.  */
int
np__stream_rewatch (NpConn *conn)
{
  return np__watch (conn, (conn->want_read ? EPOLLIN : 0)
                          | (conn->want_write ? EPOLLOUT : 0));
}

/* From now on senders may write to the socket themselves.  */
void
np__stream_allow_direct (NpConn *conn)
{
  pthread_mutex_lock (&conn->out_lock);
  if (!conn->shut_wr_requested)
    conn->direct_fd = conn->fd;
  pthread_mutex_unlock (&conn->out_lock);
  if (!conn->seqpacket && !conn->datagram && !conn->listener)
    {
      pthread_mutex_lock (&conn->read_lock);
      conn->read_fd = conn->fd;
      pthread_mutex_unlock (&conn->read_lock);
    }
}

/* The one way out.  May free CONN.  */
static void
teardown (NpConn *conn)
{
  drop_socket (conn);
  if (conn->lingering)
    {
      conn->lingering = FALSE;
      g_atomic_int_add (&conn->engine->lingering, -1);
    }
  if (conn->resolve)
    {
      /* Unhook first: a cancelled task reports back even so, and must
         find its result unwanted.  */
      NpResolveOp *op = g_steal_pointer (&conn->resolve);
      g_cancellable_cancel (op->cancel);
    }
  g_clear_pointer (&conn->targets, g_array_unref);
  conn->state = NP_CONN_DONE;

  pthread_mutex_lock (&conn->out_lock);
  conn->accepting = FALSE;
  conn->dropped += conn->queued;
  clear_output (conn);
  conn->out_offset = 0;
  conn->queued = 0;
  pthread_mutex_unlock (&conn->out_lock);

  np__engine_unregister (conn->engine, conn);
}

static void
post_simple (NpConn *conn, NpEventType type, int code, gboolean resolve_error,
             char *message)
{
  NpEvent *event = np__event_new (conn->id, type, 0);
  event->code = code;
  event->resolve_error = resolve_error;
  event->message = message;
  np__channel_post (conn->engine, conn, event);
}

/* Posts the last event (FAILED or CLOSED) and lets go.  Output is refused
   before the event is queued, so whoever has drained it already sees
   np_conn_send() return 0.  May free CONN.  */
static void
finish (NpConn *conn, NpEventType type, int code, gboolean resolve_error,
        char *message)
{
  pthread_mutex_lock (&conn->out_lock);
  conn->accepting = FALSE;
  pthread_mutex_unlock (&conn->out_lock);
  post_simple (conn, type, code, resolve_error, message);
  teardown (conn);
}

/* Ends an open connection with CLOSED.  May free CONN.  */
void
np__stream_end (NpConn *conn, int err)
{
  finish (conn, NP_EVENT_CLOSED, err, FALSE,
          err ? g_strdup (g_strerror (err)) : NULL);
}

void
np__stream_post_simple (NpConn *conn, NpEventType type, int code)
{
  post_simple (conn, type, code, FALSE, NULL);
}

/* Remember where the attempt on the current socket went, before the
   socket is dropped.  */
static void
note_attempt (NpConn *conn, const NpTarget *target)
{
  memcpy (&conn->tried_remote, &target->addr, target->len);
  conn->tried_remote_len = target->len;
  conn->tried_local_len = sizeof conn->tried_local;
  if (getsockname (conn->fd, (struct sockaddr *) &conn->tried_local,
                   &conn->tried_local_len) < 0)
    conn->tried_local_len = 0;
}

/* May free CONN.  */
static void
fail_connect (NpConn *conn)
{
  int err = conn->last_errno ? conn->last_errno : ECONNREFUSED;
  NpEvent *event = np__event_new (conn->id, NP_EVENT_FAILED, 0);
  event->code = err;
  event->message = g_strdup (g_strerror (err));
  memcpy (&event->local, &conn->tried_local, conn->tried_local_len);
  event->local_len = conn->tried_local_len;
  memcpy (&event->remote, &conn->tried_remote, conn->tried_remote_len);
  event->remote_len = conn->tried_remote_len;

  pthread_mutex_lock (&conn->out_lock);
  conn->accepting = FALSE;
  pthread_mutex_unlock (&conn->out_lock);
  np__channel_post (conn->engine, conn, event);
  teardown (conn);
}

/* An option could not be set on the socket just made: the connect
   fails with it, and no other address is tried, as in Emacs.  May free
   CONN.  */
static void
fail_option (NpConn *conn, guint index, int err)
{
  NpEvent *event = np__event_new (conn->id, NP_EVENT_FAILED, 0);
  event->code = err;
  event->message = g_strdup (g_strerror (err));
  event->option_failed = TRUE;
  event->option_index = index;

  drop_socket (conn);
  pthread_mutex_lock (&conn->out_lock);
  conn->accepting = FALSE;
  pthread_mutex_unlock (&conn->out_lock);
  np__channel_post (conn->engine, conn, event);
  teardown (conn);
}

/* Chunks written: drop them, and tell waiting senders when the queue has
   come down from the high-water mark.  */
static void
consume_output (NpConn *conn, gsize n)
{
  const NpLimits *limits = &conn->engine->limits;

  pthread_mutex_lock (&conn->out_lock);
  conn->queued -= n;
  while (n > 0)
    {
      NpChunk *chunk = g_queue_peek_head (&conn->out);
      gsize left = chunk->len - conn->out_offset;
      if (n < left)
        {
          conn->out_offset += n;
          break;
        }
      n -= left;
      np_chunk_free (g_queue_pop_head (&conn->out));
      conn->out_offset = 0;
    }
  gboolean writable = conn->out_high_hit && conn->queued <= limits->out_low;
  if (writable)
    conn->out_high_hit = FALSE;
  pthread_mutex_unlock (&conn->out_lock);

  if (writable)
    post_simple (conn, NP_EVENT_WRITABLE, 0, FALSE, NULL);
}

/* The peer is gone while we write.  What it sent before may still be
   in the socket, unread because reading is paused, held back, or only
   behind in its turn: the read side ends the connection once it has
   delivered that, with the write's error.
   Until then output is refused.  Returns FALSE when the connection
   ended.  */
static gboolean
give_up_writing (NpConn *conn, int err)
{
  conn->write_errno = err;
  conn->want_write = FALSE;
  pthread_mutex_lock (&conn->out_lock);
  conn->accepting = FALSE;
  conn->direct_fd = -1;
  conn->dropped += conn->queued;
  conn->dropped_errno = err;
  clear_output (conn);
  conn->out_offset = 0;
  conn->queued = 0;
  pthread_mutex_unlock (&conn->out_lock);
  err = np__stream_rewatch (conn);
  if (err)
    {
      np__stream_end (conn, err);
      return FALSE;
    }
  return TRUE;
}

/* Writes until the queue is empty or the socket is full.  FINAL is the
   last attempt before closing: no waiting, no event, no error reported.
   Returns FALSE when the connection ended (CONN may be freed).  */
static gboolean
write_out (NpConn *conn, gboolean final)
{
  if (conn->datagram)
    return np__datagram_write_out (conn, final);
  int fd = conn->fd;
  if (conn->write_errno)
    return TRUE;
  pthread_mutex_lock (&conn->out_lock);
  gboolean closed_here = conn->owner_closed;
  pthread_mutex_unlock (&conn->out_lock);
  if (closed_here)
    return TRUE;

  for (;;)
    {
      /* Only this thread removes chunks, so their bytes stay put after
         the lock is released; np_conn_send() only appends.  */
      struct iovec iov[NP_IOV_MAX];
      int niov = 0;
      pthread_mutex_lock (&conn->out_lock);
      gsize offset = conn->out_offset;
      /* A seqpacket conn sends each chunk, one np_conn_send(), as a
         record of its own: one chunk per sendmsg().  */
      int iov_max = conn->seqpacket ? 1 : NP_IOV_MAX;
      for (GList *l = conn->out.head; l && niov < iov_max; l = l->next)
        {
          NpChunk *chunk = l->data;
          iov[niov].iov_base = chunk->data + offset;
          iov[niov].iov_len = chunk->len - offset;
          offset = 0;
          niov++;
        }
      pthread_mutex_unlock (&conn->out_lock);
      if (niov == 0)
        break;

      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = niov };
      ssize_t n = sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (final)
            return TRUE;
          int err = errno;
          if (err == EAGAIN)
            {
              conn->want_write = TRUE;
              err = np__stream_rewatch (conn);
              if (err == 0)
                return TRUE;
            }
          else if (err == EPIPE || err == ECONNRESET)
            return give_up_writing (conn, err);
          else if (err == EMSGSIZE && conn->seqpacket)
            {
              /* A record larger than the socket can ever take: the
                 builtin signals in the sender and goes on.  Here the
                 sender has returned; drop it, say so, go on.  */
              consume_output (conn, iov[0].iov_len);
              post_simple (conn, NP_EVENT_SEND_FAILED, err, FALSE, NULL);
              continue;
            }
          np__stream_end (conn, err);
          return FALSE;
        }
      consume_output (conn, (gsize) n);
    }

  conn->want_write = FALSE;
  int err = np__stream_rewatch (conn);
  if (err)
    {
      np__stream_end (conn, err);
      return FALSE;
    }
  if (conn->shut_wr_requested && !conn->shut_wr_done && !final)
    {
      conn->shut_wr_done = TRUE;
      if (shutdown (fd, SHUT_WR) < 0 && errno != ENOTCONN)
        {
          np__stream_end (conn, errno);
          return FALSE;
        }
    }
  return TRUE;
}

/* Returns FALSE when the connection ended.  */
static gboolean
read_in (NpConn *conn)
{
  NpEngine *engine = conn->engine;
  int fd = conn->fd;
  gsize size = engine->limits.read_size;
  guint8 *buf = engine->scratch;

  for (int i = 0; i < NP_READS_PER_WAKE; i++)
    {
      /* One recv() is one record: it must hold all of it, or what does
         not fit is lost.  */
      g_autofree guint8 *own = NULL;
      if (conn->seqpacket)
        buf = np__record_buffer (conn, &size, &own);
      /* The read and its queueing are one step for the owner, which may
         read the socket itself (np_conn_read_direct()).  */
      pthread_mutex_lock (&conn->read_lock);
      if (conn->owner_closed)
        {
          pthread_mutex_unlock (&conn->read_lock);
          break;
        }
      if (conn->direct_waiting)
        {
          /* The owner reads input now.  Woken before it took over, or
             by a hang-up, which epoll reports unasked: out of the set
             until the owner gives input back, so as not to be woken
             for it over and over.  */
          (void) np__watch_apply (conn, fd, conn->applied & EPOLLOUT);
          pthread_mutex_unlock (&conn->read_lock);
          break;
        }
      ssize_t n = recv (fd, buf, size, MSG_DONTWAIT);
      int err = n < 0 ? errno : 0;
      /* A short read: the flow the owner left to the engine has
         slowed, and the owner may read directly again.  */
      if (n >= 0 && (gsize) n < size)
        conn->in_flow = FALSE;
      gboolean blocked = n > 0
                         && np__channel_post_data (engine, conn, buf,
                                                   (gsize) n);
      pthread_mutex_unlock (&conn->read_lock);
      errno = err;
      if (n > 0)
        {
          if (blocked)
            {
              /* Backpressure (or closed): the drain will post RESUME.  */
              np__stream_update_reading (conn);
              return conn->state != NP_CONN_DONE;
            }
          /* A short read empties a stream; records are short anyway.  */
          if ((gsize) n < size && !conn->seqpacket)
            break;
          continue;
        }
      if (n == 0)
        {
          /* After a failed write the error was reported there, and the
             read sees only the end: the error says more.  */
          np__stream_end (conn, conn->write_errno);
          return FALSE;
        }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        break;
      np__stream_end (conn, errno);
      return FALSE;
    }
  return TRUE;
}

void
np__stream_update_reading (NpConn *conn)
{
  if (conn->listener)
    {
      np__listen_update (conn);
      return;
    }
  if (conn->state != NP_CONN_OPEN)
    return;
  /* Atomic, not under read_lock: this runs on every resume.  */
  int err = g_atomic_int_get (&conn->watch_errno);
  if (!err)
    {
      conn->want_read = !conn->user_paused
                        && !np__channel_in_blocked (conn->engine, conn);
      err = np__stream_rewatch (conn);
    }
  if (err)
    np__stream_end (conn, err);
}

/* TARGET is where it went: a datagram socket has no peer to ask for.
   May free CONN.  */
static void
conn_open (NpConn *conn, const NpTarget *target)
{
  int fd = conn->fd;
  conn->state = NP_CONN_OPEN;

  NpEvent *event = np__event_new (conn->id, NP_EVENT_OPEN, 0);
  if (conn->datagram)
    {
      conn->family = target->addr.ss_family;
      np__datagram_set_address (conn, &target->addr, target->len);
      event_addresses (event, fd, target);
    }
  else
    event_addresses (event, fd, NULL);
  /* TARGET may be one of them.  */
  g_clear_pointer (&conn->targets, g_array_unref);
  /* Before the event: whatever its sentinel sends can go straight out.
     Senders write directly only while nothing is queued, so output
     queued while connecting still goes first.  */
  np__stream_allow_direct (conn);
  np__channel_post (conn->engine, conn, event);

  conn->want_write = FALSE;
  np__stream_update_reading (conn);
  if (conn->state == NP_CONN_DONE)
    return;
  /* Output queued while connecting, and a half close asked for then.  */
  write_out (conn, FALSE);
}

/* The connect in progress has ended, one way or the other.  */
static void
connect_ready (NpConn *conn)
{
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt (conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;

  if (err == 0)
    conn_open (conn, NULL);
  else
    {
      conn->last_errno = err;
      note_attempt (conn, &g_array_index (conn->targets, NpTarget,
                                          conn->next_target - 1));
      drop_socket (conn);
      try_next_target (conn);
    }
}

/* The poller found CONN's socket ready for EVENTS.  Hang-ups and errors
   go to whichever side is watching: its syscall reports them.  */
void
np__conn_ready (NpConn *conn, guint32 events)
{
  if (conn->listener)
    {
      np__listen_ready (conn);
      return;
    }
  if (conn->datagram)
    {
      np__datagram_ready (conn, events);
      return;
    }
  if (conn->state == NP_CONN_CONNECTING)
    {
      connect_ready (conn);
      return;
    }
  if (conn->state != NP_CONN_OPEN)
    return;
  if (conn->lingering)
    {
      linger_ready (conn, events);
      return;
    }

  gboolean trouble = (events & (EPOLLERR | EPOLLHUP)) != 0;
  /* Reading first: what the peer sent before a reset is delivered.  */
  if (conn->want_read && (trouble || (events & EPOLLIN)))
    if (!read_in (conn))
      return;
  if (conn->want_write && (trouble || (events & EPOLLOUT)))
    write_out (conn, FALSE);
}

/* Tries the remaining addresses in order until one connects or is in
   progress.  May free CONN.  */
static void
try_next_target (NpConn *conn)
{
  while (conn->targets && conn->next_target < conn->targets->len)
    {
      NpTarget *target = &g_array_index (conn->targets, NpTarget,
                                         conn->next_target);
      conn->next_target++;

      int err = 0;
      int fd = np__fd_socket (target->addr.ss_family,
                              NP__CONN_SOCKTYPE (conn), &err);
      if (fd < 0)
        {
          conn->last_errno = err;
          continue;
        }
      conn->fd = fd;

      guint failed = 0;
      err = np__sockopt_apply (fd, conn->options, conn->n_options, &failed);
      if (err)
        {
          fail_option (conn, failed, err);
          return;
        }

      /* A datagram client is not connected (see engine.h).  */
      if (conn->datagram)
        {
          conn_open (conn, target);
          return;
        }
      int rc = connect (fd, (struct sockaddr *) &target->addr, target->len);
      if (rc == 0)
        {
          conn_open (conn, target);
          return;
        }
      err = errno;
      if (err == EINPROGRESS)
        {
          conn->state = NP_CONN_CONNECTING;
          conn->want_write = TRUE;
          err = np__stream_rewatch (conn);
          if (err == 0)
            return;
        }
      /* Unix sockets fail at once (ENOENT, ECONNREFUSED, EAGAIN for a
         full backlog); so does TCP with ENETUNREACH and the like.  */
      conn->last_errno = err;
      note_attempt (conn, target);
      drop_socket (conn);
    }
  fail_connect (conn);
}

static void
add_target (NpConn *conn, const struct sockaddr_storage *addr, socklen_t len)
{
  if (!conn->targets)
    conn->targets = g_array_new (FALSE, FALSE, sizeof (NpTarget));
  NpTarget target = { .len = len };
  memcpy (&target.addr, addr, len);
  g_array_append_val (conn->targets, target);
}

static void
resolve_op_free (NpResolveOp *op)
{
  g_clear_object (&op->cancel);
  np_conn_unref (op->conn);
  g_free (op);
}

static void
on_resolved (GObject *source, GAsyncResult *result, gpointer data)
{
  NpResolveOp *op = data;
  NpConn *conn = op->conn;
  conn->engine->pending_resolves--;

  g_autoptr (GError) error = NULL;
  GList *addrs = g_resolver_lookup_by_name_with_flags_finish (
    G_RESOLVER (source), result, &error);

  if (conn->resolve == op)
    {
      conn->resolve = NULL;
      if (!addrs)
        {
          finish (conn, NP_EVENT_FAILED, 0, TRUE,
                  np__resolver_message (error, conn->host));
        }
      else
        {
          for (GList *l = addrs; l; l = l->next)
            {
              g_autoptr (GSocketAddress) sa
                = g_inet_socket_address_new (l->data, conn->port);
              struct sockaddr_storage ss;
              if (g_socket_address_to_native (sa, &ss, sizeof ss, NULL))
                add_target (conn, &ss,
                            (socklen_t) g_socket_address_get_native_size (sa));
            }
          conn->state = NP_CONN_CONNECTING;
          try_next_target (conn);
        }
    }
  g_resolver_free_addresses (addrs);
  /* The op's reference kept CONN alive through a teardown above.  */
  resolve_op_free (op);
}

static void
start_resolve (NpConn *conn)
{
  NpEngine *engine = conn->engine;
  GResolverNameLookupFlags flags = G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT;
  if (conn->family == AF_INET)
    flags = G_RESOLVER_NAME_LOOKUP_FLAGS_IPV4_ONLY;
  else if (conn->family == AF_INET6)
    flags = G_RESOLVER_NAME_LOOKUP_FLAGS_IPV6_ONLY;

  NpResolveOp *op = g_new0 (NpResolveOp, 1);
  op->conn = np_conn_ref (conn);
  op->cancel = g_cancellable_new ();
  conn->resolve = op;
  conn->state = NP_CONN_RESOLVING;
  engine->pending_resolves++;
  /* Called on the engine thread with its context pushed, so the callback
     comes back here.  */
  g_resolver_lookup_by_name_with_flags_async (engine->resolver, conn->host,
                                              flags, op->cancel, on_resolved,
                                              op);
}

void
np__stream_start (NpConn *conn)
{
  np__engine_register (conn->engine, conn);

  if (conn->remote_len > 0)
    {
      add_target (conn, &conn->remote, conn->remote_len);
      try_next_target (conn);
    }
  else if (conn->path)
    {
      struct sockaddr_storage ss;
      socklen_t len;
      if (np__address_unix (conn->path, &ss, &len))
        add_target (conn, &ss, len);
      else
        conn->last_errno = ENAMETOOLONG;
      try_next_target (conn);
    }
  else if (conn->host)
    start_resolve (conn);
  else
    {
      conn->last_errno = EINVAL;
      fail_connect (conn);
    }
}

/* A socket np_engine_connect_now() connected, or left connecting.  */
void
np__stream_adopt (NpConn *conn)
{
  np__engine_register (conn->engine, conn);
  if (conn->state == NP_CONN_CONNECTING)
    {
      conn->want_write = TRUE;
      int err = np__stream_rewatch (conn);
      if (err)
        {
          conn->last_errno = err;
          note_attempt (conn, &g_array_index (conn->targets, NpTarget, 0));
          drop_socket (conn);
          try_next_target (conn);
        }
      return;
    }
  if (conn->watching)
    {
      /* adopt_open_quietly() put the socket in the set, or tried to:
         watch afresh, which keeps what it did and retries what failed.  */
      pthread_mutex_lock (&conn->read_lock);
      conn->watching = 0;
      pthread_mutex_unlock (&conn->read_lock);
    }
  np__stream_update_reading (conn);
  if (conn->state == NP_CONN_OPEN)
    write_out (conn, FALSE);
}

void
np__stream_flush (NpConn *conn)
{
  if (conn->state == NP_CONN_OPEN)
    write_out (conn, FALSE);
}

void
np__stream_shutdown_write (NpConn *conn)
{
  pthread_mutex_lock (&conn->out_lock);
  conn->shut_wr_requested = TRUE;
  conn->direct_fd = -1;
  pthread_mutex_unlock (&conn->out_lock);
  if (conn->state == NP_CONN_OPEN)
    write_out (conn, FALSE);
}

void
np__stream_set_paused (NpConn *conn, gboolean paused)
{
  conn->user_paused = paused;
  np__stream_update_reading (conn);
}

/* A closed stream with output still queued keeps its socket until the
   queue is written, as the kernel goes on sending what close(2) leaves
   in a socket's buffer: Emacs's send has written everything by the time
   it returns, so a delete right after it loses nothing, and neither may
   netproc's.  The engine gives up when the peer is gone, or when a
   whole limits.linger_ms passes without a byte written.  What comes in
   meanwhile is read and dropped, so that a peer that writes while it
   reads is not held up.  Not after np_conn_set_linger (CONN, FALSE).
   Returns whether CONN lingers.  */
static gboolean
linger (NpConn *conn)
{
  if (conn->datagram || conn->write_errno || conn->owner_closed
      || g_atomic_int_get (&conn->no_linger))
    return FALSE;
  pthread_mutex_lock (&conn->out_lock);
  gsize queued = conn->queued;
  pthread_mutex_unlock (&conn->out_lock);
  if (queued == 0)
    return FALSE;

  conn->lingering = TRUE;
  g_atomic_int_inc (&conn->engine->lingering);
  conn->linger_queued = queued;
  conn->want_read = TRUE;
  conn->want_write = TRUE;
  if (np__stream_rewatch (conn) != 0)
    return FALSE;
  np__source_clear (&conn->retry_source);
  conn->retry_source = g_timeout_source_new (conn->engine->limits.linger_ms);
  g_source_set_callback (conn->retry_source, on_linger_check, conn, NULL);
  g_source_attach (conn->retry_source, conn->engine->context);
  return TRUE;
}

/* A lingering stream's timer: go unless something was written since
   the last check.  */
static gboolean
on_linger_check (gpointer data)
{
  NpConn *conn = data;
  pthread_mutex_lock (&conn->out_lock);
  gsize queued = conn->queued;
  pthread_mutex_unlock (&conn->out_lock);
  if (queued < conn->linger_queued)
    {
      conn->linger_queued = queued;
      return G_SOURCE_CONTINUE;
    }
  /* The source is being dispatched: let GLib drop it, not teardown.  */
  g_clear_pointer (&conn->retry_source, g_source_unref);
  teardown (conn);
  return G_SOURCE_REMOVE;
}

/* A lingering stream's socket is ready.  */
static void
linger_ready (NpConn *conn, guint32 events)
{
  gboolean trouble = (events & (EPOLLERR | EPOLLHUP)) != 0;
  if (conn->want_read && (trouble || (events & EPOLLIN)))
    {
      guint8 drop[16384];
      for (int i = 0; i < NP_READS_PER_WAKE; i++)
        {
          ssize_t n = recv (conn->fd, drop, sizeof drop, MSG_DONTWAIT);
          if (n > 0)
            continue;
          if (n == 0)
            {
              /* The peer has said all it will; it may still read.  */
              conn->want_read = FALSE;
              if (np__stream_rewatch (conn) != 0)
                {
                  teardown (conn);
                  return;
                }
            }
          else if (errno != EAGAIN && errno != EINTR)
            {
              teardown (conn);
              return;
            }
          break;
        }
    }
  if (trouble || (events & EPOLLOUT))
    {
      if (!write_out (conn, FALSE))
        return;
      pthread_mutex_lock (&conn->out_lock);
      gsize queued = conn->queued;
      pthread_mutex_unlock (&conn->out_lock);
      if (queued == 0 || conn->write_errno)
        teardown (conn);
    }
}

/* np_conn_close(): what is queued is written first (see linger()).  */
void
np__stream_close (NpConn *conn)
{
  if (conn->state == NP_CONN_OPEN)
    {
      write_out (conn, TRUE);
      if (linger (conn))
        return;
    }
  teardown (conn);
}

/* Engine shutdown: go without writing.  */
void
np__stream_abort (NpConn *conn)
{
  teardown (conn);
}

/* With read_lock held: one non-blocking read, if nothing of CONN waits
   in the queue before it.  Returns the bytes read; 0 when there is
   nothing now; -1 when the owner must not read (data queued, no
   socket), or at the end or an error, which are the engine's to
   report.  */
static gssize
read_now_locked (NpConn *conn, void *buf, gsize cap)
{
  if (conn->read_fd < 0 || !np__channel_quiet (conn->engine, conn))
    return -1;
  ssize_t n = recv (conn->read_fd, buf, cap, MSG_DONTWAIT);
  if (n > 0)
    return n;
  return n < 0 && errno == EAGAIN ? 0 : -1;
}

/* With read_lock held: the engine's set watches the socket for input
   again, if the engine wants it to.  */
static void
end_direct_locked (NpConn *conn)
{
  conn->direct_waiting = FALSE;
  if (conn->read_fd < 0)
    return;
  int err = np__watch_apply (conn, conn->read_fd, conn->watching);
  if (err && !g_atomic_int_get (&conn->watch_errno))
    {
      /* A full set (the socket's first entry may be made here): never
         a connection left silent, but one that ends with the error, as
         when the engine's own watch fails.  */
      g_atomic_int_set (&conn->watch_errno, err);
      np__engine_post (conn->engine, NP_CMD_RESUME, conn, FALSE);
    }
}

gssize
np_conn_read_direct (NpConn *conn, int timeout_ms, gboolean keep,
                     void *buf, gsize cap)
{
  pthread_mutex_lock (&conn->read_lock);
  gssize got = -1;
  int fd = conn->read_fd;
  /* Data queued first, or a stream in full flow that the engine reads
     in larger batches: the owner drains instead.  */
  if (fd < 0 || conn->in_flow || !np__channel_quiet (conn->engine, conn))
    goto done;
  if (timeout_ms <= 0)
    {
      /* Only what is there: no waiting.  */
      got = read_now_locked (conn, buf, cap);
      goto done;
    }
  /* No read first: the wait returns at once for what is there already
     (a reply seldom is), and a read saved is a system call saved per
     message.  */
  /* Wait here, with the engine's set no longer watching for input, so
     that the engine thread is not woken for what this thread reads.  */
  conn->direct_waiting = TRUE;
  int err = np__watch_apply (conn, fd, conn->applied & ~(guint32) EPOLLIN);
  pthread_mutex_unlock (&conn->read_lock);

  if (err == 0)
    np__spin_wait_readable (conn, fd, timeout_ms);

  pthread_mutex_lock (&conn->read_lock);
  /* The engine may have dropped the socket meanwhile: then READ_FD is
     -1, and the number polled may be another file's by now.  */
  if (conn->read_fd == fd)
    got = read_now_locked (conn, buf, cap);

 done:
  /* A full buffer is a stream in full flow: the engine reads ahead of
     the owner better, in larger batches, until it reads short.  */
  if (got > 0 && (gsize) got == cap)
    conn->in_flow = TRUE;
  if (conn->direct_waiting && !(keep && got > 0 && !conn->in_flow))
    end_direct_locked (conn);
  pthread_mutex_unlock (&conn->read_lock);
  return got > 0 ? got : -1;
}

void
np_conn_read_direct_end (NpConn *conn)
{
  pthread_mutex_lock (&conn->read_lock);
  if (conn->direct_waiting)
    end_direct_locked (conn);
  pthread_mutex_unlock (&conn->read_lock);
}
