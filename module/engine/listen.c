/* listen.c -- listening sockets and the connections they accept.

   np_engine_listen() does socket, bind and listen on the caller's thread,
   so that an address in use or a missing directory is known when it
   returns, as with the builtin.  The engine thread then watches the
   socket for EPOLLIN and accepts.

   With TYPE SOCK_SEQPACKET the same steps make a Unix seqpacket
   listener; the connections it accepts are seqpacket streams (see
   NpConn's SEQPACKET).
   With TYPE SOCK_DGRAM the same steps, listen() left out, bind a
   datagram server: an NpConn with DATAGRAM and DATAGRAM_SERVER set, OPEN
   from the start, that reads and sends as datagram.c says.

   A listener is an NpConn with LISTENER set.  It goes

     NEW -> LISTENING -> DONE

   and shares the rest of a connection's life: np_conn_set_paused() stops
   accepting (clients wait in the kernel's backlog), np_conn_close() ends
   it through the same teardown, np_engine_free() aborts it with the
   others.  It refuses output from the start.

   Each accepted socket becomes an OPEN connection of its own, with an id
   from NP_ACCEPTED_ID_BASE up, registered with the engine and read at
   once.  Its ACCEPTED event is queued on the listener's id before it is
   read, so it comes before any event of its own.  The event holds one
   reference to it; when the listener was closed by its owner the event
   is refused and the new connection closed again at once.  */

#define _GNU_SOURCE  /* accept4 */

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine-private.h"

/* Accepts per readiness callback: a busy listener yields to the others
   (and to every connection's reads) after this many.  */
#define NP_ACCEPTS_PER_WAKE 64
/* How long a listener rests after running out of descriptors or memory:
   the pending connection keeps the socket readable, so accepting again
   at once would spin.  */
#define NP_ACCEPT_REST_MS 100

/* Public, any thread.  */

/* socket, the options, SO_REUSEADDR, bind and listen, in Emacs's order.
   Returns the descriptor, or -1 with *CODE and *AT (and *OPTION) saying
   what failed; nothing is left open then.  */
static int
open_listening (const NpListenSpec *spec, int *code, NpListenStep *at,
                guint *option)
{
  *at = NP_LISTEN_SOCKET;
  if (!spec->address
      || spec->address_len < (socklen_t) sizeof (sa_family_t))
    {
      *code = EINVAL;
      return -1;
    }
  int family = spec->family ? spec->family : spec->address->sa_family;
  gboolean datagram = spec->type == SOCK_DGRAM;
  int fd = np__fd_socket (family,
                          datagram ? SOCK_DGRAM
                          : spec->type == SOCK_SEQPACKET ? SOCK_SEQPACKET
                          : SOCK_STREAM,
                          code);
  if (fd < 0)
    return -1;

  *at = NP_LISTEN_OPTION;
  int err = np__sockopt_apply (fd, spec->options, spec->n_options, option);
  if (err)
    {
      *code = err;
      close (fd);
      return -1;
    }

  /* Emacs turns SO_REUSEADDR on for inet servers unless :reuseaddr was
     among the options, whatever its value.  */
  int reuse = spec->reuseaddr;
  if (reuse < 0 && !np__sockopt_has (spec->options, spec->n_options,
                                     NP_SOCKOPT_REUSEADDR))
    reuse = family == AF_INET || family == AF_INET6 ? 1 : -1;
  if (reuse >= 0)
    {
      int value = reuse != 0;
      *at = NP_LISTEN_REUSEADDR;
      if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &value, sizeof value)
          < 0)
        goto fail;
    }

  *at = NP_LISTEN_BIND;
  if (bind (fd, spec->address, spec->address_len) < 0)
    goto fail;

  *at = NP_LISTEN_LISTEN;
  if (!datagram && listen (fd, spec->backlog) < 0)
    goto fail;
  return fd;

fail:
  *code = errno;
  close (fd);
  return -1;
}

NpConn *
np_engine_listen (NpEngine *engine, guint64 id, const NpListenSpec *spec,
                  struct sockaddr_storage *bound, socklen_t *bound_len,
                  int *err, NpListenStep *step, guint *option)
{
  int code = 0;
  NpListenStep at = NP_LISTEN_SOCKET;
  guint failed = 0;
  int fd = open_listening (spec, &code, &at, &failed);
  if (fd < 0)
    {
      if (err)
        *err = code;
      if (step)
        *step = at;
      if (option)
        *option = at == NP_LISTEN_OPTION ? failed : 0;
      return NULL;
    }

  if (bound)
    {
      socklen_t len = sizeof *bound;
      memset (bound, 0, sizeof *bound);
      if (getsockname (fd, (struct sockaddr *) bound, &len) < 0)
        len = 0;
      if (bound_len)
        *bound_len = len;
    }

  NpConn *conn = np__conn_new (engine, id);
  conn->family = spec->family ? spec->family : spec->address->sa_family;
  conn->fd = fd;
  if (spec->type == SOCK_DGRAM)
    {
      /* As the builtin: a datagram address of the bound address's size
         (a Unix one is a whole sockaddr_un), all zeros, until one is
         set or a datagram is delivered.  */
      struct sockaddr_storage zero;
      memset (&zero, 0, sizeof zero);
      socklen_t zero_len = conn->family == AF_UNIX
                           ? (socklen_t) sizeof (struct sockaddr_un)
                           : MIN (spec->address_len, (socklen_t) sizeof zero);
      conn->datagram = TRUE;
      conn->datagram_server = TRUE;
      conn->datagram_max = spec->datagram_max;
      np__datagram_set_address (conn, &zero, zero_len);
      conn->direct_fd = fd;
      conn->state = NP_CONN_OPEN;
      np__engine_post (engine, NP_CMD_ADOPT, conn, FALSE);
      return conn;
    }
  conn->listener = TRUE;
  conn->accepting = FALSE;
  /* Passed on to each connection accepted.  */
  conn->seqpacket = spec->type == SOCK_SEQPACKET;
  conn->datagram_max = conn->seqpacket ? spec->datagram_max : 0;
  np__engine_post (engine, NP_CMD_LISTEN, conn, FALSE);
  return conn;
}

/* Engine thread from here on.  */

static void
post_accept_failed (NpConn *listener, int code)
{
  NpEvent *event = np__event_new (listener->id, NP_EVENT_ACCEPT_FAILED, 0);
  event->code = code;
  np__channel_post (listener->engine, listener, event);
}

static void rest (NpConn *listener);

/* Makes FD, just accepted from REMOTE, a connection of its own.  Returns
   FALSE when nothing more is worth accepting now: the listener's owner
   has closed it, or only Emacs's descriptor numbers are left.  */
static gboolean
adopt (NpConn *listener, int fd, const struct sockaddr_storage *remote,
       socklen_t remote_len)
{
  NpEngine *engine = listener->engine;

  fd = np__fd_place (fd);
  if (fd < 0)
    {
      /* Only Emacs's own descriptor numbers are left.  */
      post_accept_failed (listener, EMFILE);
      rest (listener);
      return FALSE;
    }
  NpConn *conn = np__conn_new (engine, engine->next_accepted_id++);
  conn->family = remote->ss_family;
  conn->fd = fd;
  conn->seqpacket = listener->seqpacket;
  conn->datagram_max = listener->datagram_max;
  conn->state = NP_CONN_OPEN;
  np__engine_register (engine, conn);

  NpEvent *event = np__event_new (listener->id, NP_EVENT_ACCEPTED, 0);
  event->accepted = conn;               /* the reference np__conn_new gave */
  event->accepted_id = conn->id;
  event->local_len = sizeof event->local;
  if (getsockname (fd, (struct sockaddr *) &event->local,
                   &event->local_len) < 0)
    event->local_len = 0;
  event->remote_len = MIN (remote_len, (socklen_t) sizeof event->remote);
  memcpy (&event->remote, remote, event->remote_len);
  /* Before the event, so what its sentinel sends goes straight out.  */
  np__stream_allow_direct (conn);

  if (!np__channel_post (engine, listener, event))
    {
      /* Refused and freed with its reference: the engine's is the last,
         and the abort lets go of it.  */
      np__stream_abort (conn);
      return FALSE;
    }
  /* Only now may its own events follow.  */
  np__stream_update_reading (conn);
  return TRUE;
}

static gboolean
on_rested (gpointer data)
{
  NpConn *listener = data;
  np__source_clear (&listener->retry_source);
  np__listen_update (listener);
  return G_SOURCE_REMOVE;
}

/* Stop accepting for a while.  */
static void
rest (NpConn *listener)
{
  listener->retry_source = g_timeout_source_new (NP_ACCEPT_REST_MS);
  g_source_set_callback (listener->retry_source, on_rested, listener, NULL);
  g_source_attach (listener->retry_source, listener->engine->context);
  np__listen_update (listener);
}

/* Errors that belong to one pending connection, not to the listener
   (accept(2) on Linux passes them on): the next accept may well work.  */
static gboolean
per_connection_error (int err)
{
  switch (err)
    {
    case ENETDOWN:
    case EPROTO:
    case ENOPROTOOPT:
    case EHOSTDOWN:
#ifdef ENONET
    case ENONET:
#endif
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return TRUE;
    default:
      return FALSE;
    }
}

void
np__listen_ready (NpConn *listener)
{
  int lfd = listener->fd;

  for (int i = 0; i < NP_ACCEPTS_PER_WAKE; i++)
    {
      struct sockaddr_storage remote;
      socklen_t remote_len = sizeof remote;
      memset (&remote, 0, sizeof remote);
      int fd = accept4 (lfd, (struct sockaddr *) &remote, &remote_len,
                        SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0)
        {
          if (!adopt (listener, fd, &remote, remote_len))
            break;  /* closed by its owner, or resting */
          continue;
        }

      int err = errno;
      if (err == EINTR || err == ECONNABORTED)
        continue;
      if (err == EAGAIN || err == EWOULDBLOCK)
        break;
      post_accept_failed (listener, err);
      if (!per_connection_error (err))
        {
          /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or something unexpected that
             may well last: rest instead of spinning on it.  */
          rest (listener);
          return;
        }
    }
}

void
np__listen_update (NpConn *listener)
{
  if (listener->state != NP_CONN_LISTENING)
    return;
  listener->want_read = !listener->user_paused && !listener->retry_source;
  int err = np__watch (listener, listener->want_read ? EPOLLIN : 0);
  if (err)
    {
      /* Accepting has stopped; say why, and try again later.  */
      post_accept_failed (listener, err);
      if (!listener->retry_source)
        rest (listener);
    }
}

void
np__listen_start (NpConn *listener)
{
  np__engine_register (listener->engine, listener);
  listener->state = NP_CONN_LISTENING;
  np__listen_update (listener);
}
