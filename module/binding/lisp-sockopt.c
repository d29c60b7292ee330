/* lisp-sockopt.c -- network options of `make-network-process', from Lisp.

   Each (OPTION VALUE) pair becomes an NpSockopt as Emacs's
   set_socket_option() reads it: the booleans are nil -> 0, anything else
   -> 1; :priority wants an integer that fits an int; :linger takes such
   an integer as the linger time, any other non-nil as "on, 0 seconds"
   and nil as off; :bindtodevice takes a string (cut to the 16-byte
   buffer, at its first NUL) or nil.  A pair Emacs would refuse (a
   non-symbol OPTION, a bad value) becomes NP_SOCKOPT_INVALID, which
   fails where it stands in the list: the Lisp side words the error.  */

#include "binding.h"

#include <string.h>

/* An integer that fits a C int into *OUT; false for anything else,
   bignums included (without leaving their overflow error pending).  */
static bool
int_value (emacs_env *env, emacs_value v, int *out)
{
  if (!env->eq (env, env->type_of (env, v), np_sym.type_integer))
    return false;
  intmax_t n = env->extract_integer (env, v);
  if (np_pending (env))
    {
      env->non_local_exit_clear (env);
      return false;
    }
  if (n < G_MININT || n > G_MAXINT)
    return false;
  *out = (int) n;
  return true;
}

bool
np_lisp_to_sockopt (emacs_env *env, emacs_value option, emacs_value value,
                    NpSockopt *out)
{
  memset (out, 0, sizeof *out);
  bool set = env->is_not_nil (env, value);

  if (env->eq (env, option, np_sym.kw_bindtodevice))
    {
      if (env->eq (env, env->type_of (env, value), np_sym.type_string))
        {
          ptrdiff_t size = 0;
          if (!env->copy_string_contents (env, value, NULL, &size))
            return false;
          g_autofree char *name = g_malloc (size);
          if (!env->copy_string_contents (env, value, name, &size))
            return false;
          /* The buffer is zeroed: a shorter name is padded, a 16-byte
             one fills it without a NUL, as in Emacs.  */
          memcpy (out->device, name,
                  MIN (strlen (name), sizeof out->device));
        }
      else if (set)
        return true;  /* invalid */
      out->name = NP_SOCKOPT_BINDTODEVICE;
    }
  else if (env->eq (env, option, np_sym.kw_priority))
    {
      if (int_value (env, value, &out->value))
        out->name = NP_SOCKOPT_PRIORITY;
    }
  else if (env->eq (env, option, np_sym.kw_linger))
    {
      out->name = NP_SOCKOPT_LINGER;
      out->linger_on = 1;
      if (!int_value (env, value, &out->value))
        {
          out->value = 0;
          out->linger_on = set;
        }
    }
  else
    {
      static const struct
      {
        emacs_value *symbol;
        NpSockoptName name;
      } booleans[] = {
        { &np_sym.kw_broadcast, NP_SOCKOPT_BROADCAST },
        { &np_sym.kw_dontroute, NP_SOCKOPT_DONTROUTE },
        { &np_sym.kw_keepalive, NP_SOCKOPT_KEEPALIVE },
        { &np_sym.kw_oobinline, NP_SOCKOPT_OOBINLINE },
        { &np_sym.kw_reuseaddr, NP_SOCKOPT_REUSEADDR },
      };
      for (gsize i = 0; i < G_N_ELEMENTS (booleans); i++)
        if (env->eq (env, option, *booleans[i].symbol))
          {
            out->name = booleans[i].name;
            out->value = set;
            break;
          }
    }
  return !np_pending (env);
}

NpSockopt *
np_lisp_to_sockopts (emacs_env *env, emacs_value pairs, guint *n_out)
{
  *n_out = 0;
  if (!env->is_not_nil (env, pairs))
    return NULL;
  if (!env->eq (env, env->type_of (env, pairs), np_sym.type_vector))
    {
      np_wrong_type (env, env->intern (env, "vectorp"), pairs);
      return NULL;
    }
  ptrdiff_t size = env->vec_size (env, pairs);
  if (np_pending (env) || size % 2 != 0 || size / 2 > G_MAXUINT)
    {
      if (!np_pending (env))
        np_error (env, "Network options must come in pairs");
      return NULL;
    }
  guint n = (guint) (size / 2);
  if (n == 0)
    return NULL;
  NpSockopt *options = g_new0 (NpSockopt, n);
  for (guint i = 0; i < n; i++)
    {
      emacs_value option = env->vec_get (env, pairs, 2 * (ptrdiff_t) i);
      emacs_value value = env->vec_get (env, pairs, 2 * (ptrdiff_t) i + 1);
      if (np_pending (env)
          || !np_lisp_to_sockopt (env, option, value, &options[i]))
        {
          g_free (options);
          return NULL;
        }
    }
  *n_out = n;
  return options;
}
