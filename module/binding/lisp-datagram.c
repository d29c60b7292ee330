/* lisp-datagram.c -- a datagram netproc's address, as the builtin keeps
   one per datagram socket: where sends go, moved to each sender as its
   datagram reaches the filter.  */

#include "binding.h"

#include <string.h>

/* (netproc--datagram-received CONN SENDER): the datagram from SENDER,
   the raw address a DATA payload carried, reaches CONN's filter now.  */
static emacs_value
Fdatagram_received (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                    void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_sym.nil;
  struct sockaddr_storage sender;
  memset (&sender, 0, sizeof sender);
  ptrdiff_t size = 0;
  /* A string made by the drain, but checked all the same: its bytes go
     into a fixed buffer.  */
  if (!env->eq (env, env->type_of (env, args[1]), np_sym.type_string))
    return np_wrong_type (env, np_sym.stringp, args[1]);
  if (!env->copy_string_contents (env, args[1], NULL, &size))
    return np_sym.nil;
  if (size - 1 > (ptrdiff_t) sizeof sender)
    return np_error (env, "Sender address too long");
  g_autofree char *raw = g_malloc (size);
  if (!env->copy_string_contents (env, args[1], raw, &size))
    return np_sym.nil;
  memcpy (&sender, raw, size - 1);
  np_conn_datagram_received_from (conn, &sender, (socklen_t) (size - 1));
  return np_sym.nil;
}

/* (netproc--datagram-address CONN): its address in Lisp form, or nil
   when CONN is no datagram socket or its engine is gone.  */
static emacs_value
Fdatagram_address (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                   void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_sym.nil;
  struct sockaddr_storage addr;
  socklen_t len;
  if (!np_conn_datagram_address (conn, &addr, &len) || len == 0)
    return np_sym.nil;
  return np_sockaddr_to_lisp (env, (struct sockaddr *) &addr, len);
}

/* (netproc--set-datagram-address CONN ADDRESS): t when ADDRESS is now
   where CONN sends, nil when it was refused as the builtin refuses it
   (no form, or not the socket's size).  */
static emacs_value
Fset_datagram_address (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                       void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_sym.nil;
  struct sockaddr_storage addr;
  socklen_t len = 0;
  int family;
  if (!np_lisp_to_any_sockaddr (env, args[1], &addr, &len, &family))
    return np_sym.nil;
  return np_conn_set_datagram_address (conn, (struct sockaddr *) &addr, len)
         ? np_sym.t : np_sym.nil;
}

void
np_datagram_defuns (emacs_env *env)
{
  np_defun (env, "netproc--datagram-received", 2, Fdatagram_received,
            "The datagram from SENDER (raw bytes) reaches CONN's filter.");
  np_defun (env, "netproc--datagram-address", 1, Fdatagram_address,
            "Return CONN's datagram address, or nil.");
  np_defun (env, "netproc--set-datagram-address", 2, Fset_datagram_address,
            "Send CONN's datagrams to ADDRESS; t, or nil if refused.");
}
