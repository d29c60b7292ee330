/* sockopt.c -- the socket options of `make-network-process'.

   Emacs knows eight options, all at SOL_SOCKET level, and sets each with
   one setsockopt() whose argument it derives from the Lisp value (see
   NpSockopt in engine.h; the binding derives it the same way).  Applied
   at creation, they go on each socket made, in the order given, before
   bind or connect; the first failure ends the attempt, which is why an
   NP_SOCKOPT_INVALID entry fails in its place rather than up front: an
   earlier option that fails is what Emacs reports.

   Sockets being made are the maker's (the caller's thread for a listener
   or a connect done at once, the engine thread otherwise).  A socket in
   use belongs to the engine thread: np_conn_set_option() posts there and
   waits.  */

#include <errno.h>
#include <sys/socket.h>

#include "engine-private.h"

int
np_sockopt_set (int fd, const NpSockopt *option)
{
  int value = option->value;
  const void *arg = &value;
  socklen_t len = sizeof value;
  struct linger linger;
  int name;

  switch (option->name)
    {
    case NP_SOCKOPT_BINDTODEVICE:
      /* Emacs passes the whole zero-padded buffer; all zeros unbinds.  */
      name = SO_BINDTODEVICE;
      arg = option->device;
      len = sizeof option->device;
      break;
    case NP_SOCKOPT_BROADCAST:
      name = SO_BROADCAST;
      break;
    case NP_SOCKOPT_DONTROUTE:
      name = SO_DONTROUTE;
      break;
    case NP_SOCKOPT_KEEPALIVE:
      name = SO_KEEPALIVE;
      break;
    case NP_SOCKOPT_LINGER:
      name = SO_LINGER;
      linger.l_onoff = option->linger_on;
      linger.l_linger = option->value;
      arg = &linger;
      len = sizeof linger;
      break;
    case NP_SOCKOPT_OOBINLINE:
      name = SO_OOBINLINE;
      break;
    case NP_SOCKOPT_PRIORITY:
      name = SO_PRIORITY;
      break;
    case NP_SOCKOPT_REUSEADDR:
      name = SO_REUSEADDR;
      break;
    case NP_SOCKOPT_INVALID:
    default:
      return EINVAL;
    }
  return setsockopt (fd, SOL_SOCKET, name, arg, len) < 0 ? errno : 0;
}

int
np__sockopt_apply (int fd, const NpSockopt *options, guint n_options,
                   guint *failed)
{
  for (guint i = 0; i < n_options; i++)
    {
      int err = np_sockopt_set (fd, &options[i]);
      if (err)
        {
          *failed = i;
          return err;
        }
    }
  return 0;
}

gboolean
np__sockopt_has (const NpSockopt *options, guint n_options,
                 NpSockoptName name)
{
  for (guint i = 0; i < n_options; i++)
    if (options[i].name == name)
      return TRUE;
  return FALSE;
}

int
np_conn_set_option (NpConn *conn, const NpSockopt *option)
{
  return np__engine_set_option (conn->engine, conn, option);
}

/* Engine thread: the command np_conn_set_option() posted.  */
int
np__sockopt_set_conn (NpConn *conn, const NpSockopt *option)
{
  if (conn->fd < 0 || conn->state == NP_CONN_DONE)
    return -1;
  pthread_mutex_lock (&conn->read_lock);
  gboolean closed_here = conn->owner_closed;
  pthread_mutex_unlock (&conn->read_lock);
  if (closed_here)
    return -1;
  return np_sockopt_set (conn->fd, option);
}
