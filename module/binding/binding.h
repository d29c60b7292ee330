/* binding.h -- what the binding's files share.  Only the binding includes
   emacs-module.h; the engine never sees an emacs_value.  */

#ifndef NETPROC_BINDING_H
#define NETPROC_BINDING_H

#include <emacs-module.h>
#include <glib.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "engine.h"

/* Symbols interned once at load time; global references, so they outlive
   the env they were made in.  */
typedef struct
{
  emacs_value nil, t, error, wrong_type_argument, args_out_of_range;
  /* Predicates, for wrong-type-argument data.  */
  emacs_value stringp, integerp, symbolp, user_ptrp;
  /* What `type-of' answers.  */
  emacs_value type_string, type_vector, type_integer, type_user_ptr;
  emacs_value ipv4, ipv6, local;
  emacs_value seqpacket, datagram, soon;
  /* The network options.  */
  emacs_value kw_bindtodevice, kw_broadcast, kw_dontroute, kw_keepalive;
  emacs_value kw_linger, kw_oobinline, kw_priority, kw_reuseaddr;
  /* Functions.  */
  emacs_value cons, list, vector, multibyte_string_p;
} NpSyms;

extern NpSyms np_sym;

/* Signal (error MESSAGE); returns NIL for the caller to return.  */
emacs_value np_error (emacs_env *env, const char *message);
/* Signal (wrong-type-argument PREDICATE VALUE).  */
emacs_value np_wrong_type (emacs_env *env, emacs_value predicate,
                           emacs_value value);
bool np_pending (emacs_env *env);

/* The connection of handle V, or NULL: with wrong-type-argument signalled
   when V is not a handle, silently when its engine is gone.  */
NpConn *np_conn_arg (emacs_env *env, emacs_value v);
/* A new handle that owns a reference to CONN.  binding.c.  */
emacs_value np_make_handle (emacs_env *env, NpConn *conn);
/* Define the Lisp function NAME of ARITY arguments.  */
void np_defun (emacs_env *env, const char *name, ptrdiff_t arity,
               emacs_value (*fn) (emacs_env *, ptrdiff_t, emacs_value *,
                                  void *),
               const char *doc);

/* Lisp address forms (IPv4 5-vector, IPv6 9-vector, socket path string)
   to a socket address and back.  lisp-address.c.  */
bool np_lisp_to_sockaddr (emacs_env *env, emacs_value address,
                          struct sockaddr_storage *out, socklen_t *out_len);
emacs_value np_sockaddr_to_lisp (emacs_env *env, const struct sockaddr *sa,
                                 socklen_t len);

/* ADDRESS in any form Emacs takes for one, the (FAMILY . [BYTES...])
   form included, into OUT and *OUT_LEN, and its family into *FAMILY;
   false when Emacs would find no size for it.  As in Emacs, the family
   field of a (FAMILY . BYTES) address is left 0: only *FAMILY has it.  */
bool np_lisp_to_any_sockaddr (emacs_env *env, emacs_value address,
                              struct sockaddr_storage *out,
                              socklen_t *out_len, int *family);

/* The payload of EV as Lisp data: (LOCAL . REMOTE) for OPEN, the bytes
   (or (BYTES . SENDER) for a datagram) for DATA, (CODE MESSAGE
   RESOLVE-ERROR LOCAL REMOTE OPTION-INDEX) for FAILED, the code for
   CLOSED and ACCEPT_FAILED, (HANDLE ID LOCAL REMOTE) for ACCEPTED (the
   handle takes EV's reference), nil otherwise.  lisp-event.c.  */
emacs_value np_event_payload (emacs_env *env, NpEvent *ev);

/* The datagram functions.  lisp-datagram.c.  */
void np_datagram_defuns (emacs_env *env);

/* Network options.  lisp-sockopt.c.  */
/* OPTION and VALUE as an NpSockopt into OUT: NP_SOCKOPT_INVALID for a
   pair Emacs refuses when it applies it, and also for an OPTION that is
   no network option.  False only with a non-local exit pending.  */
bool np_lisp_to_sockopt (emacs_env *env, emacs_value option,
                         emacs_value value, NpSockopt *out);
/* PAIRS, nil or a vector [OPTION VALUE ...], as an array to g_free
   (NULL when empty) of *N_OUT options.  NULL with a non-local exit
   pending when PAIRS is malformed.  */
NpSockopt *np_lisp_to_sockopts (emacs_env *env, emacs_value pairs,
                                guint *n_out);

#endif /* NETPROC_BINDING_H */
