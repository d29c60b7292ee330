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
   down to conn_in_low asks the engine thread to read again.  */

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

/* Copies LEN bytes into a new DATA event.  Returns TRUE when the engine
   must stop reading: the connection is at its inbound limit, or closed.  */
gboolean
np__channel_post_data (NpEngine *engine, NpConn *conn, const guint8 *data,
                       gsize len)
{
  NpEvent *event = np__event_new (conn->id, NP_EVENT_DATA, len);
  memcpy (event->data, data, len);

  pthread_mutex_lock (&engine->event_lock);
  if (conn->user_closed)
    {
      pthread_mutex_unlock (&engine->event_lock);
      np_event_free (event);
      return TRUE;
    }
  header_of (event)->conn = np_conn_ref (conn);
  conn->in_bytes += len;
  if (conn->in_bytes >= engine->limits.conn_in_high)
    conn->in_blocked = TRUE;
  gboolean blocked = conn->in_blocked;
  gboolean was_empty = push_locked (engine, event);
  pthread_mutex_unlock (&engine->event_lock);

  if (was_empty)
    np__channel_ring (engine, FALSE);
  return blocked;
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
          conn->in_bytes -= event->len;
          if (conn->in_blocked && conn->in_bytes <= limits->conn_in_low)
            {
              conn->in_blocked = FALSE;
              /* Lock order allows cmd_lock under event_lock.  */
              np__engine_post (engine, NP_CMD_RESUME, conn, FALSE);
            }
        }
    }
  gboolean remain = engine->events.length > 0;
  pthread_mutex_unlock (&engine->event_lock);

  if (remain)
    np__engine_post (engine, NP_CMD_RING, NULL, FALSE);
  return n;
}

/* After the engine thread has been joined: no lock needed.  */
void
np__channel_free_all (NpEngine *engine)
{
  GList *link;
  while ((link = g_queue_pop_head_link (&engine->events)))
    np_event_free (link->data);
}
