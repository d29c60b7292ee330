/* lisp-event.c -- an event's payload as Lisp data, for the drain.

   Events are data, never code: each payload is made of integers,
   strings, addresses in their Lisp forms and, for an accepted
   connection, its handle.  The shapes are those `netproc--drain'
   documents and lisp/netproc-io.el reads.  */

#include "binding.h"

#include <string.h>

emacs_value
np_event_payload (emacs_env *env, NpEvent *ev)
{
  switch (ev->type)
    {
    case NP_EVENT_OPEN:
      {
        emacs_value pair[2] = {
          np_sockaddr_to_lisp (env, (const struct sockaddr *) &ev->local,
                               ev->local_len),
          np_sockaddr_to_lisp (env, (const struct sockaddr *) &ev->remote,
                               ev->remote_len),
        };
        return env->funcall (env, np_sym.cons, 2, pair);
      }
    case NP_EVENT_DATA:
      {
        /* ASCII as text is what decoding it would give (see
           np_conn_set_ascii_text); make_string reads UTF-8.  */
        emacs_value bytes
          = ev->text ? env->make_string (env, (const char *) ev->data,
                                         (ptrdiff_t) ev->len)
                     : env->make_unibyte_string (env, (const char *) ev->data,
                                                 (ptrdiff_t) ev->len);
        if (ev->datagram_len == 0)
          return bytes;
        /* A datagram: (BYTES . SENDER), the sender's raw address for
           `netproc--datagram-received' to apply when BYTES reach the
           filter.  */
        emacs_value pair[2] = {
          bytes,
          env->make_unibyte_string (env, (const char *) &ev->remote,
                                    (ptrdiff_t) ev->remote_len),
        };
        return env->funcall (env, np_sym.cons, 2, pair);
      }
    case NP_EVENT_FAILED:
      {
        const char *msg = ev->message ? ev->message : g_strerror (ev->code);
        emacs_value items[6] = {
          env->make_integer (env, ev->code),
          env->make_string (env, msg, strlen (msg)),
          ev->resolve_error ? np_sym.t : np_sym.nil,
          np_sockaddr_to_lisp (env, (const struct sockaddr *) &ev->local,
                               ev->local_len),
          np_sockaddr_to_lisp (env, (const struct sockaddr *) &ev->remote,
                               ev->remote_len),
          ev->option_failed ? env->make_integer (env, ev->option_index)
                            : np_sym.nil,
        };
        return env->funcall (env, np_sym.list, 6, items);
      }
    case NP_EVENT_CLOSED:
    case NP_EVENT_ACCEPT_FAILED:
      return env->make_integer (env, ev->code);
    case NP_EVENT_ACCEPTED:
      {
        /* The handle takes the event's reference.  */
        emacs_value items[4] = {
          np_make_handle (env, g_steal_pointer (&ev->accepted)),
          env->make_integer (env, (intmax_t) ev->accepted_id),
          np_sockaddr_to_lisp (env, (const struct sockaddr *) &ev->local,
                               ev->local_len),
          np_sockaddr_to_lisp (env, (const struct sockaddr *) &ev->remote,
                               ev->remote_len),
        };
        return env->funcall (env, np_sym.list, 4, items);
      }
    case NP_EVENT_WRITABLE:
    default:
      return np_sym.nil;
    }
}
