/* channel.c -- the event queue between the engine thread and its owner.

   The engine thread appends; the owner drains on its own thread after a
   byte shows up on WAKE_FD.  A byte is written only when the queue turns
   non-empty, and again when a capped drain leaves events behind, so the
   pipe never fills with one byte per event.

   Only the engine thread writes to WAKE_FD.  The drain runs on Emacs's
   main thread, where a write to a pipe whose reader has gone would raise
   SIGPIPE and end a batch Emacs; the engine thread has every signal
   blocked and takes EPIPE as an error value instead.

   Inbound flow control lives here too: every DATA event counts against its
   connection until drained.  At conn_in_high the engine stops reading that
   socket (the kernel then holds the peer back); the drain that brings it
   down to conn_in_low asks the engine thread to read again.  All
   connections together have a bound as well, so that a thousand slow
   readers cannot each fill their own: past total_in_high, every socket
   that delivers data is held back after that read, and the drain that
   brings the total down to total_in_low lets them all read again.  */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine-private.h"

/* Each event is allocated with a private header in front of the public
   NpEvent: the queue link (no second allocation per event) and, for DATA,
   a reference to the connection whose count the drain must lower.  */
typedef struct
{
  GList link;
  NpConn *conn;
  gsize charge;           /* what it counts against the inbound bounds */
} NpEventHeader;

/* Rounded so that the NpEvent after it keeps malloc's alignment.  */
#define NP_HEADER_SIZE ((sizeof (NpEventHeader) + 15) & ~(gsize) 15)

static inline NpEventHeader *
header_of (NpEvent *event)
{
  return (NpEventHeader *) ((guint8 *) event - NP_HEADER_SIZE);
}

NpEvent *
np__event_new (guint64 id, NpEventType type, gsize len)
{
  /* Only the fixed part is cleared: DATA bytes are written over at once.  */
  guint8 *block = g_malloc (NP_HEADER_SIZE + sizeof (NpEvent) + len);
  memset (block, 0, NP_HEADER_SIZE + sizeof (NpEvent));
  NpEvent *event = (NpEvent *) (block + NP_HEADER_SIZE);
  header_of (event)->link.data = event;
  event->id = id;
  event->type = type;
  event->len = len;
  return event;
}

void
np_event_free (NpEvent *event)
{
  if (!event)
    return;
  NpEventHeader *header = header_of (event);
  if (header->conn)
    np_conn_unref (header->conn);
  /* An accepted connection the owner did not take: the engine keeps its
     own reference while the socket lives.  */
  if (event->accepted)
    np_conn_unref (event->accepted);
  g_free (event->message);
  g_free (header);
}

/* Ring when events are queued, or always with FORCE.  */
void
np__channel_ring (NpEngine *engine, gboolean force)
{
  if (engine->wake_dead)
    return;

  pthread_mutex_lock (&engine->event_lock);
  gboolean pending = engine->events.length > 0;
  pthread_mutex_unlock (&engine->event_lock);
  if (!pending && !force)
    return;

  static const guint8 byte = 1;
  for (;;)
    {
      if (write (engine->wake_fd, &byte, 1) >= 0)
        return;
      if (errno == EINTR)
        continue;
      /* EAGAIN: the pipe is full, so a byte is already waiting.  */
      if (errno != EAGAIN)
        engine->wake_dead = TRUE;  /* EPIPE, EBADF: the reader is gone */
      return;
    }
}

/* Called with event_lock held.  Returns whether the queue was empty.  */
static gboolean
push_locked (NpEngine *engine, NpEvent *event)
{
  gboolean was_empty = engine->events.length == 0;
  g_queue_push_tail_link (&engine->events, &header_of (event)->link);
  return was_empty;
}

/* Takes EVENT.  The check of user_closed and the push share one lock
   hold, which is what makes np_conn_close() a hard line: nothing for the
   connection enters the queue once it has returned.  */
gboolean
np__channel_post (NpEngine *engine, NpConn *conn, NpEvent *event)
{
  pthread_mutex_lock (&engine->event_lock);
  if (conn->user_closed)
    {
      pthread_mutex_unlock (&engine->event_lock);
      np_event_free (event);
      return FALSE;
    }
  gboolean was_empty = push_locked (engine, event);
  pthread_mutex_unlock (&engine->event_lock);

  if (was_empty)
    np__channel_ring (engine, FALSE);
  return TRUE;
}

/* Queues EVENT, a DATA event of CONN, counting it against the inbound
   bounds.  Returns TRUE when the engine must stop reading: the
   connection is at its inbound limit, or closed.  */
static gboolean
post_data_event (NpEngine *engine, NpConn *conn, NpEvent *event,
                 gsize charge)
{
  gsize len = charge;
  header_of (event)->charge = charge;

  pthread_mutex_lock (&engine->event_lock);
  if (conn->user_closed)
    {
      pthread_mutex_unlock (&engine->event_lock);
      np_event_free (event);
      return TRUE;
    }
  header_of (event)->conn = np_conn_ref (conn);
  conn->in_bytes += len;
  engine->in_total += len;
  if (conn->in_bytes >= engine->limits.conn_in_high)
    conn->in_blocked = TRUE;
  else if (engine->in_total >= engine->limits.total_in_high
           && !conn->in_blocked)
    {
      conn->in_blocked = TRUE;
      conn->in_held_back = TRUE;
      g_queue_push_tail (&engine->held_back, np_conn_ref (conn));
    }
  gboolean blocked = conn->in_blocked;
  gboolean was_empty = push_locked (engine, event);
  pthread_mutex_unlock (&engine->event_lock);

  if (was_empty)
    np__channel_ring (engine, FALSE);
  return blocked;
}

/* Copies LEN bytes into a new DATA event; see post_data_event().  */
gboolean
np__channel_post_data (NpEngine *engine, NpConn *conn, const guint8 *data,
                       gsize len)
{
  NpEvent *event = np__event_new (conn->id, NP_EVENT_DATA, len);
  memcpy (event->data, data, len);
  /* The scan costs this thread, not the owner's.  */
  event->text = g_atomic_int_get (&conn->ascii_text)
                && np_bytes_ascii (data, len);
  return post_data_event (engine, conn, event, len);
}

/* One datagram: LEN bytes of the FULL_LEN it had, from FROM.  It counts
   against the bounds like stream bytes, plus the size of its event: a
   flood of tiny datagrams costs memory per event, not per byte, and
   must be held back as surely (the kernel then drops what no longer
   fits, as UDP does).  */
gboolean
np__channel_post_datagram (NpEngine *engine, NpConn *conn,
                           const guint8 *data, gsize len, gsize full_len,
                           const struct sockaddr_storage *from,
                           socklen_t from_len)
{
  NpEvent *event = np__event_new (conn->id, NP_EVENT_DATA, len);
  memcpy (event->data, data, len);
  event->datagram_len = full_len;
  event->remote_len = MIN (from_len, (socklen_t) sizeof event->remote);
  memcpy (&event->remote, from, event->remote_len);
  return post_data_event (engine, conn, event, len + sizeof (NpEvent));
}

gboolean
np__channel_in_blocked (NpEngine *engine, NpConn *conn)
{
  pthread_mutex_lock (&engine->event_lock);
  /* Nothing read for a closed conn would be delivered.  */
  gboolean blocked = conn->in_blocked || conn->user_closed;
  pthread_mutex_unlock (&engine->event_lock);
  return blocked;
}

gboolean
np__channel_quiet (NpEngine *engine, NpConn *conn)
{
  pthread_mutex_lock (&engine->event_lock);
  gboolean quiet = conn->in_bytes == 0 && !conn->in_blocked
                   && !conn->user_closed;
  pthread_mutex_unlock (&engine->event_lock);
  return quiet;
}

/* Called with event_lock held.  */
static void
resume_locked (NpEngine *engine, NpConn *conn)
{
  conn->in_blocked = FALSE;
  /* Lock order allows cmd_lock under event_lock.  */
  np__engine_post (engine, NP_CMD_RESUME, conn, FALSE);
}

guint
np_engine_drain (NpEngine *engine, NpEvent **out)
{
  const NpLimits *limits = &engine->limits;
  guint n = 0;
  gsize bytes = 0;

  pthread_mutex_lock (&engine->event_lock);
  while (n < limits->drain_events)
    {
      GList *link = engine->events.head;
      if (!link)
        break;
      NpEvent *event = link->data;
      if (event->type == NP_EVENT_DATA)
        {
          /* The first event always goes, however large, so a drain
             makes progress with any caps.  */
          if (n > 0 && bytes + event->len > limits->drain_bytes)
            break;
          bytes += event->len;
        }
      g_queue_unlink (&engine->events, link);
      out[n++] = event;

      NpConn *conn = header_of (event)->conn;
      if (conn)
        {
          conn->in_bytes -= header_of (event)->charge;
          engine->in_total -= header_of (event)->charge;
          if (conn->in_blocked && !conn->in_held_back
              && conn->in_bytes <= limits->conn_in_low)
            resume_locked (engine, conn);
        }
    }
  /* References to let go of outside the lock.  */
  GQueue released = G_QUEUE_INIT;
  if (engine->held_back.length > 0
      && engine->in_total <= limits->total_in_low)
    {
      NpConn *conn;
      while ((conn = g_queue_pop_head (&engine->held_back)))
        {
          conn->in_held_back = FALSE;
          /* Still over its own bound: its own drain resumes it.  */
          if (conn->in_bytes <= limits->conn_in_low)
            resume_locked (engine, conn);
          g_queue_push_tail (&released, conn);
        }
    }
  gboolean remain = engine->events.length > 0;
  pthread_mutex_unlock (&engine->event_lock);
  g_queue_clear_full (&released, (GDestroyNotify) np_conn_unref);

  if (remain)
    np__engine_post (engine, NP_CMD_RING, NULL, FALSE);
  return n;
}

void
np_engine_queue_stats (NpEngine *engine, NpQueueStats *stats)
{
  pthread_mutex_lock (&engine->event_lock);
  stats->in_bytes = engine->in_total;
  stats->events = engine->events.length;
  stats->held_back = engine->held_back.length;
  pthread_mutex_unlock (&engine->event_lock);
}

/* After the engine thread has been joined: no lock needed.  */
void
np__channel_free_all (NpEngine *engine)
{
  GList *link;
  while ((link = g_queue_pop_head_link (&engine->events)))
    np_event_free (link->data);
  g_queue_clear_full (&engine->held_back, (GDestroyNotify) np_conn_unref);
}
