/* datagram.c -- datagram sockets (UDP over IPv4 and IPv6, Unix datagrams).

   A datagram conn is an NpConn with DATAGRAM set, made by stream.c (a
   client: NpConnectSpec TYPE SOCK_DGRAM) or listen.c (a server) and
   torn down by stream.c like any other; only reading and writing are
   here.  What the builtin does, and so what this mirrors, is told at the
   top of engine.h; the short of it is that no socket is ever connected,
   and every datagram goes to the conn's datagram address with sendto().

   Boundaries.  A read is one recvfrom() and one DATA event.  Output
   keeps one NpDatagram per np_conn_send*() call, and each is written
   with a sendto() of its own: a sendmsg() with several of them in its
   iovec would send them as one datagram.

   Why the engine never updates the datagram address from what it reads:
   it reads ahead of its owner (up to the inbound bounds), while the
   builtin's recvfrom() writes the sender into the address just before
   the filter sees the datagram.  A reply sent from a filter must go to
   that datagram's sender, not to whoever sent the last one read, so the
   owner applies each sender as it delivers the event
   (np_conn_datagram_received()).  */

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "engine-private.h"

/* Datagrams read per readiness callback, as stream.c's reads: a busy
   socket yields to the others after this many.  */
#define NP_DATAGRAMS_PER_WAKE 16
/* How long a Unix datagram socket waits before trying a full receiver
   again: see retry_later().  */
#define NP_UNIX_RETRY_MS 10

/* Any thread, with out_lock held or before the conn is shared.  */
static void
set_address_locked (NpConn *conn, const struct sockaddr_storage *addr,
                    socklen_t len)
{
  len = MIN (len, (socklen_t) sizeof conn->datagram_addr);
  memset (&conn->datagram_addr, 0, sizeof conn->datagram_addr);
  memcpy (&conn->datagram_addr, addr, len);
  /* The builtin's Unix addresses are whole sockaddr_un, the path padded
     with zeros: a sender's shorter address then overwrites only its own
     bytes, and the address reads back as the builtin's does.  */
  if (len > 0 && addr->ss_family == AF_UNIX)
    len = sizeof (struct sockaddr_un);
  conn->datagram_addr_len = len;
}

void
np__datagram_set_address (NpConn *conn, const struct sockaddr_storage *addr,
                          socklen_t len)
{
  pthread_mutex_lock (&conn->out_lock);
  set_address_locked (conn, addr, len);
  pthread_mutex_unlock (&conn->out_lock);
}

/* Public, any thread.  */

gboolean
np_conn_datagram_address (NpConn *conn, struct sockaddr_storage *addr,
                          socklen_t *len)
{
  memset (addr, 0, sizeof *addr);
  *len = 0;
  if (!conn->datagram)
    return FALSE;
  pthread_mutex_lock (&conn->out_lock);
  memcpy (addr, &conn->datagram_addr, conn->datagram_addr_len);
  *len = conn->datagram_addr_len;
  pthread_mutex_unlock (&conn->out_lock);
  return TRUE;
}

gboolean
np_conn_set_datagram_address (NpConn *conn, const struct sockaddr *addr,
                              socklen_t len)
{
  if (!conn->datagram || !addr || len < (socklen_t) sizeof (sa_family_t)
      || len > (socklen_t) sizeof (struct sockaddr_storage))
    return FALSE;
  struct sockaddr_storage copy;
  memcpy (&copy, addr, len);

  /* The builtin's test is the size alone, and the size it gives a Unix
     address is a whole sockaddr_un's, whatever the path: a path fits a
     Unix socket, however long, and no other, however short.  Its real
     length varies with the path, and may happen to be an inet
     socket's.  */
  socklen_t size = addr->sa_family == AF_UNIX
                   ? (socklen_t) sizeof (struct sockaddr_un) : len;

  pthread_mutex_lock (&conn->out_lock);
  gboolean ok = conn->datagram_addr_len > 0
                && size == conn->datagram_addr_len;
  if (ok)
    set_address_locked (conn, &copy, len);
  pthread_mutex_unlock (&conn->out_lock);
  return ok;
}

void
np_conn_datagram_received (NpConn *conn, const NpEvent *event)
{
  if (event->type == NP_EVENT_DATA)
    np_conn_datagram_received_from (conn, &event->remote, event->remote_len);
}

void
np_conn_datagram_received_from (NpConn *conn,
                                const struct sockaddr_storage *sender,
                                socklen_t sender_len)
{
  if (!conn->datagram)
    return;
  pthread_mutex_lock (&conn->out_lock);
  /* recvfrom() into a buffer of the address's length: the sender's
     bytes, no more than fit, and the length stays.  */
  socklen_t n = MIN (sender_len, conn->datagram_addr_len);
  memcpy (&conn->datagram_addr, sender, n);
  pthread_mutex_unlock (&conn->out_lock);
}

int
np_conn_send_datagram (NpConn *conn, const void *data, gsize len)
{
  if (!conn->datagram)
    {
      np_conn_send (conn, data, len);
      return 0;
    }
  if (len == 0)
    return 0;

  /* Two rounds when the datagram must be queued: it is made between
     them, without the lock, which the engine thread takes for every
     datagram it writes.  Only the owner sends, so nothing can come
     between the two in the queue.  */
  NpDatagram *dgram = NULL;
  for (;;)
    {
      pthread_mutex_lock (&conn->out_lock);
      if (!conn->accepting)
        {
          pthread_mutex_unlock (&conn->out_lock);
          g_free (dgram);
          return EPIPE;
        }
      if (dgram)
        break;
      /* Nothing queued and the socket open: send from this thread, so
         the caller learns at once what the kernel thought of it, as
         with the builtin's blocking sendto().  Only a full socket
         defers it.  */
      if (conn->out.length == 0 && conn->direct_fd >= 0)
        {
          ssize_t n;
          do
            n = sendto (conn->direct_fd, data, len,
                        MSG_NOSIGNAL | MSG_DONTWAIT,
                        (const struct sockaddr *) &conn->datagram_addr,
                        conn->datagram_addr_len);
          while (n < 0 && errno == EINTR);
          int err = n < 0 ? errno : 0;
          if (err != EAGAIN)
            {
              pthread_mutex_unlock (&conn->out_lock);
              return err;
            }
        }
      /* The address it goes to is the one of this moment.  */
      struct sockaddr_storage addr = conn->datagram_addr;
      socklen_t addr_len = conn->datagram_addr_len;
      pthread_mutex_unlock (&conn->out_lock);

      dgram = g_malloc (sizeof *dgram + len);
      memcpy (&dgram->addr, &addr, sizeof dgram->addr);
      dgram->addr_len = addr_len;
      dgram->len = len;
      memcpy (dgram->data, data, len);
    }
  gboolean was_empty = conn->out.length == 0;
  g_queue_push_tail (&conn->out, dgram);
  conn->queued += len;
  if (conn->queued >= conn->engine->limits.out_high)
    conn->out_high_hit = TRUE;
  pthread_mutex_unlock (&conn->out_lock);

  if (was_empty)
    np__engine_post (conn->engine, NP_CMD_FLUSH, conn, FALSE);
  return 0;
}

/* Engine thread from here on.  */

/* The head datagram is done with, sent or not.  */
static void
consume_head (NpConn *conn)
{
  const NpLimits *limits = &conn->engine->limits;

  pthread_mutex_lock (&conn->out_lock);
  NpDatagram *dgram = g_queue_pop_head (&conn->out);
  conn->queued -= dgram->len;
  gboolean writable = conn->out_high_hit && conn->queued <= limits->out_low;
  if (writable)
    conn->out_high_hit = FALSE;
  pthread_mutex_unlock (&conn->out_lock);
  g_free (dgram);

  if (writable)
    np__stream_post_simple (conn, NP_EVENT_WRITABLE, 0);
}

static gboolean
on_retry (gpointer data)
{
  NpConn *conn = data;
  np__source_clear (&conn->retry_source);
  if (conn->state == NP_CONN_OPEN)
    np__datagram_write_out (conn, FALSE);
  return G_SOURCE_REMOVE;
}

/* The kernel had no room for the head datagram.  A UDP socket says so
   of its own send buffer, and EPOLLOUT says when there is room again.  A
   Unix one says so of the receiver's queue, which epoll cannot watch on
   an unconnected socket: it reports the socket writable at once, and
   waiting for that would spin.  Try again a little later instead.
   Returns 0 or an errno.  */
static int
retry_later (NpConn *conn)
{
  if (conn->family != AF_UNIX)
    {
      conn->want_write = TRUE;
      return np__stream_rewatch (conn);
    }
  if (!conn->retry_source)
    {
      conn->retry_source = g_timeout_source_new (NP_UNIX_RETRY_MS);
      g_source_set_callback (conn->retry_source, on_retry, conn, NULL);
      g_source_attach (conn->retry_source, conn->engine->context);
    }
  return 0;
}

/* Sends what is queued, one sendto() per datagram, until the queue is
   empty or the socket full.  FINAL is the last attempt before closing:
   no waiting, no event.  Returns FALSE when the connection ended.  */
gboolean
np__datagram_write_out (NpConn *conn, gboolean final)
{
  int fd = conn->fd;
  for (;;)
    {
      /* Only this thread removes datagrams, so the head stays put after
         the lock is released.  */
      pthread_mutex_lock (&conn->out_lock);
      NpDatagram *dgram = g_queue_peek_head (&conn->out);
      struct sockaddr_storage to;
      socklen_t to_len = 0;
      if (dgram)
        {
          /* Queued before the client's address was known: the one it
             has now.  */
          const struct sockaddr_storage *src
            = dgram->addr_len > 0 ? &dgram->addr : &conn->datagram_addr;
          to_len = dgram->addr_len > 0 ? dgram->addr_len
                                       : conn->datagram_addr_len;
          memcpy (&to, src, sizeof to);
        }
      pthread_mutex_unlock (&conn->out_lock);
      if (!dgram)
        break;

      ssize_t n = sendto (fd, dgram->data, dgram->len,
                          MSG_NOSIGNAL | MSG_DONTWAIT,
                          (const struct sockaddr *) &to, to_len);
      if (n < 0)
        {
          int err = errno;
          if (err == EINTR)
            continue;
          if (final)
            return TRUE;
          if (err == EAGAIN)
            {
              err = retry_later (conn);
              if (err == 0)
                return TRUE;
              np__stream_end (conn, err);
              return FALSE;
            }
          /* This datagram, not the socket: drop it, say so, go on.  */
          np__stream_post_simple (conn, NP_EVENT_SEND_FAILED, err);
        }
      consume_head (conn);
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
      /* The builtin's process-send-eof does this on a datagram socket
         too; unconnected, it says ENOTCONN, and nothing comes of it.  */
      conn->shut_wr_done = TRUE;
      (void) shutdown (fd, SHUT_WR);
    }
  return TRUE;
}

guint8 *
np__record_buffer (NpConn *conn, gsize *cap, guint8 **own)
{
  NpEngine *engine = conn->engine;
  if (!engine->datagram_scratch)
    engine->datagram_scratch = g_malloc (NP_DATAGRAM_BUF);
  *own = NULL;
  *cap = NP_DATAGRAM_BUF;
  if (conn->datagram_max > 0)
    {
      *cap = MIN (*cap, conn->datagram_max);
      return engine->datagram_scratch;
    }
  /* A UDP payload always fits.  A Unix record is as large as its
     sender's send buffer, which the sender may raise: ask its size.  */
  if (conn->seqpacket || conn->family == AF_UNIX)
    {
      ssize_t n = recv (conn->fd, NULL, 0,
                        MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
      if (n > NP_DATAGRAM_BUF)
        {
          *own = g_malloc ((gsize) n);
          *cap = (gsize) n;
          return *own;
        }
    }
  return engine->datagram_scratch;
}

/* Returns FALSE when the connection ended.  */
static gboolean
read_datagrams (NpConn *conn)
{
  NpEngine *engine = conn->engine;
  for (int i = 0; i < NP_DATAGRAMS_PER_WAKE; i++)
    {
      g_autofree guint8 *own = NULL;
      gsize cap;
      guint8 *buf = np__record_buffer (conn, &cap, &own);
      struct sockaddr_storage from;
      socklen_t from_len = sizeof from;
      /* MSG_TRUNC: the datagram's real size, however much was kept.  */
      ssize_t n = recvfrom (conn->fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC,
                            (struct sockaddr *) &from, &from_len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            break;
          /* The builtin deactivates the process on any failed read.  */
          np__stream_end (conn, errno);
          return FALSE;
        }
      if (n == 0)
        {
          /* The builtin reads 0 bytes and takes it for the end.  */
          np__stream_end (conn, 0);
          return FALSE;
        }
      gsize full = (gsize) n;
      if (np__channel_post_datagram (engine, conn, buf, MIN (full, cap),
                                     full, &from, from_len))
        {
          /* Backpressure (or closed): the drain will post RESUME.  */
          np__stream_update_reading (conn);
          return conn->state != NP_CONN_DONE;
        }
    }
  return TRUE;
}

void
np__datagram_ready (NpConn *conn, guint32 events)
{
  if (conn->state != NP_CONN_OPEN)
    return;
  gboolean trouble = (events & (EPOLLERR | EPOLLHUP)) != 0;
  if (conn->want_read && (trouble || (events & EPOLLIN)))
    if (!read_datagrams (conn))
      return;
  if (conn->want_write && (trouble || (events & EPOLLOUT)))
    np__datagram_write_out (conn, FALSE);
}
