/* poller.c -- one epoll set for every socket the engine watches.

   GLib's main loop polls each of its sources' descriptors on every
   iteration, so with one GSource per connection each wake-up costs time
   in proportion to the number of connections, idle ones included.  Here
   every socket sits in one epoll set instead, and only the set's own
   descriptor is a GLib source: a wake-up costs the sockets that are
   ready, not the ones that are open.

   Interest is level-triggered, as GLib's sources were: a callback that
   reads part of what is there is called again on the next iteration.
   Each socket asks for what its owner wants now (np__watch()), and is
   out of the set while it wants nothing, so a paused connection does not
   report its hang-ups over and over.  */

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine-private.h"

/* Ready sockets handled per iteration; the rest come on the next one,
   after the command queue has had its turn.  */
#define NP_POLL_BATCH 256

typedef struct
{
  GSource base;
  NpEngine *engine;
  gpointer tag;                   /* the epoll descriptor's, for GLib */
} NpPollSource;

static gboolean
poll_source_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  (void) callback;
  (void) data;
  NpEngine *engine = ((NpPollSource *) source)->engine;
  struct epoll_event ready[NP_POLL_BATCH];

  /* Commands first: a socket can be in the set before the command that
     hands its connection over has woken anyone (see
     np__engine_post_quietly()).  */
  np__engine_run_commands (engine);

  int n = epoll_wait (engine->epoll_fd, ready, NP_POLL_BATCH, 0);
  /* A callback can end a connection that comes later in this batch:
     hold each one until the batch is done, and skip those that no longer
     want what they were woken for.  */
  for (int i = 0; i < n; i++)
    np_conn_ref (ready[i].data.ptr);
  for (int i = 0; i < n; i++)
    {
      NpConn *conn = ready[i].data.ptr;
      if (conn->watching != 0)
        np__conn_ready (conn, ready[i].events);
    }
  for (int i = 0; i < n; i++)
    np_conn_unref (ready[i].data.ptr);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs poll_source_funcs = {
  .dispatch = poll_source_dispatch,
};

gboolean
np__poller_init (NpEngine *engine, GError **error)
{
  int fd = epoll_create1 (EPOLL_CLOEXEC);
  if (fd < 0)
    {
      int err = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "epoll_create1: %s", g_strerror (err));
      return FALSE;
    }
  engine->epoll_fd = np__fd_place (fd);
  if (engine->epoll_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES,
                   "epoll_create1: %s", g_strerror (EMFILE));
      return FALSE;
    }

  GSource *source = g_source_new (&poll_source_funcs, sizeof (NpPollSource));
  NpPollSource *ps = (NpPollSource *) source;
  ps->engine = engine;
  ps->tag = g_source_add_unix_fd (source, engine->epoll_fd, G_IO_IN);
  g_source_set_name (source, "netproc sockets");
  /* GLib takes a non-recursive source's descriptors out of its poll set
     around each dispatch and puts them back after, waking its own loop
     each time: two eventfd writes and an empty iteration per event.
     Nothing here iterates the context from inside a dispatch.  */
  g_source_set_can_recurse (source, TRUE);
  g_source_attach (source, engine->context);
  engine->poll_source = source;
  return TRUE;
}

void
np__poller_free (NpEngine *engine)
{
  if (engine->poll_source)
    {
      g_source_destroy (engine->poll_source);
      g_clear_pointer (&engine->poll_source, g_source_unref);
    }
  if (engine->epoll_fd >= 0)
    close (engine->epoll_fd);
  engine->epoll_fd = -1;
}

/* Watches CONN's socket for EVENTS (EPOLLIN, EPOLLOUT, both or none),
   replacing what it watched before, but never for input while the owner
   waits on the socket itself.  Returns 0, or the errno of a set that is
   full (ENOMEM, or ENOSPC past max_user_watches): the socket is then not
   watched, and the caller ends the connection with that error rather
   than leave it silent.  Engine thread only.  */
int
np__watch (NpConn *conn, guint32 events)
{
  if (conn->fd < 0)
    events = 0;
  if (events == conn->watching)
    return 0;

  pthread_mutex_lock (&conn->read_lock);
  /* A socket the owner closed is out of the set already.  */
  if (conn->owner_closed)
    events = 0;
  int err = np__watch_apply (conn, conn->fd,
                             conn->direct_waiting ? events & ~EPOLLIN
                                                  : events);
  if (err == 0)
    conn->watching = events;
  pthread_mutex_unlock (&conn->read_lock);
  return err;
}

int
np__watch_apply (NpConn *conn, int fd, guint32 events)
{
  if (events == conn->applied)
    return 0;
  int op = events == 0 ? EPOLL_CTL_DEL
           : conn->applied == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  struct epoll_event ev = { .events = events, .data.ptr = conn };
  if (epoll_ctl (conn->engine->epoll_fd, op, fd, &ev) < 0
      && op != EPOLL_CTL_DEL)
    return errno;
  conn->applied = events;
  return 0;
}
