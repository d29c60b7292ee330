/* lisp-address.c -- Emacs's address forms, to socket addresses and back.

   The forms are those of `make-network-process' and `process-contact':
   [A B C D PORT] for IPv4, [G0 ... G7 PORT] (16-bit groups) for IPv6, a
   string for a Unix socket path, and (FAMILY . [BYTES...]) for anything
   else.  Elements are masked as the builtin masks them (& 0xff for IPv4
   bytes, & 0xffff for groups and ports); unlike the builtin, elements that
   are not integers make the address malformed instead of being read as
   garbage.  */

#include "binding.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static bool
is_integer (emacs_env *env, emacs_value v)
{
  return env->eq (env, env->type_of (env, v), np_sym.type_integer);
}

/* Element I of VEC as an integer masked to MASK; false when it is not an
   integer or does not fit (a bignum).  */
static bool
masked_element (emacs_env *env, emacs_value vec, ptrdiff_t i,
                intmax_t mask, unsigned *out)
{
  emacs_value v = env->vec_get (env, vec, i);
  if (np_pending (env) || !is_integer (env, v))
    return false;
  intmax_t n = env->extract_integer (env, v);
  if (np_pending (env))
    {
      env->non_local_exit_clear (env);
      return false;
    }
  *out = (unsigned) (n & mask);
  return true;
}

static bool
vector_to_inet (emacs_env *env, emacs_value vec, ptrdiff_t size,
                struct sockaddr_storage *out, socklen_t *out_len)
{
  unsigned port;
  if (!masked_element (env, vec, size - 1, 0xffff, &port))
    return false;

  if (size == 5)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) out;
      guint8 *bytes = (guint8 *) &sin->sin_addr.s_addr;
      for (ptrdiff_t i = 0; i < 4; i++)
        {
          unsigned b;
          if (!masked_element (env, vec, i, 0xff, &b))
            return false;
          bytes[i] = (guint8) b;
        }
      sin->sin_family = AF_INET;
      sin->sin_port = htons ((uint16_t) port);
      *out_len = sizeof *sin;
      return true;
    }

  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) out;
  for (ptrdiff_t i = 0; i < 8; i++)
    {
      unsigned g;
      if (!masked_element (env, vec, i, 0xffff, &g))
        return false;
      sin6->sin6_addr.s6_addr[2 * i] = (guint8) (g >> 8);
      sin6->sin6_addr.s6_addr[2 * i + 1] = (guint8) (g & 0xff);
    }
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons ((uint16_t) port);
  *out_len = sizeof *sin6;
  return true;
}

static bool
path_to_unix (emacs_env *env, emacs_value string,
              struct sockaddr_storage *out, socklen_t *out_len)
{
  struct sockaddr_un *sun = (struct sockaddr_un *) out;
  ptrdiff_t size = 0;
  if (!env->copy_string_contents (env, string, NULL, &size))
    return false;
  /* SIZE counts the terminating NUL; the path must leave room for it.  */
  if (size > (ptrdiff_t) sizeof sun->sun_path)
    return false;
  if (!env->copy_string_contents (env, string, sun->sun_path, &size))
    return false;
  if (memchr (sun->sun_path, '\0', size - 1))
    return false;
  sun->sun_family = AF_UNIX;
  *out_len = offsetof (struct sockaddr_un, sun_path) + size;
  return true;
}

bool
np_lisp_to_sockaddr (emacs_env *env, emacs_value address,
                     struct sockaddr_storage *out, socklen_t *out_len)
{
  memset (out, 0, sizeof *out);
  emacs_value type = env->type_of (env, address);

  if (env->eq (env, type, np_sym.type_vector))
    {
      ptrdiff_t size = env->vec_size (env, address);
      if (np_pending (env) || (size != 5 && size != 9))
        return false;
      return vector_to_inet (env, address, size, out, out_len);
    }
  if (env->eq (env, type, np_sym.type_string))
    return path_to_unix (env, address, out, out_len);
  return false;
}

/* (FAMILY . [BYTES...]), with FAMILY an int and the bytes filling the
   address after its family field, which Emacs leaves 0.  The length is
   Emacs's: the family field and the bytes.  */
static bool
cons_to_sockaddr (emacs_env *env, emacs_value cell,
                  struct sockaddr_storage *out, socklen_t *out_len,
                  int *family_out)
{
  emacs_value family = env->funcall (env, env->intern (env, "car"), 1, &cell);
  emacs_value bytes = env->funcall (env, env->intern (env, "cdr"), 1, &cell);
  if (np_pending (env) || !is_integer (env, family)
      || !env->eq (env, env->type_of (env, bytes), np_sym.type_vector))
    return false;
  intmax_t f = env->extract_integer (env, family);
  ptrdiff_t n = env->vec_size (env, bytes);
  const ptrdiff_t room = sizeof *out - sizeof out->ss_family;
  if (np_pending (env) || f < 0 || f > G_MAXUINT16 || n > room)
    {
      env->non_local_exit_clear (env);
      return false;
    }
  guint8 *data = (guint8 *) out + sizeof out->ss_family;
  for (ptrdiff_t i = 0; i < n; i++)
    {
      unsigned b;
      if (!masked_element (env, bytes, i, 0xff, &b))
        return false;
      data[i] = (guint8) b;
    }
  *family_out = (int) f;
  *out_len = (socklen_t) (sizeof out->ss_family + n);
  return true;
}

bool
np_lisp_to_any_sockaddr (emacs_env *env, emacs_value address,
                         struct sockaddr_storage *out, socklen_t *out_len,
                         int *family)
{
  emacs_value type = env->type_of (env, address);
  if (env->eq (env, type, env->intern (env, "cons")))
    {
      memset (out, 0, sizeof *out);
      return cons_to_sockaddr (env, address, out, out_len, family);
    }
  if (!np_lisp_to_sockaddr (env, address, out, out_len))
    return false;
  *family = out->ss_family;
  return true;
}

emacs_value
np_sockaddr_to_lisp (emacs_env *env, const struct sockaddr *sa,
                     socklen_t len)
{
  if (len == 0)
    return np_sym.nil;

  switch (sa->sa_family)
    {
    case AF_INET:
      {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;
        const guint8 *b = (const guint8 *) &sin->sin_addr.s_addr;
        emacs_value items[5];
        for (int i = 0; i < 4; i++)
          items[i] = env->make_integer (env, b[i]);
        items[4] = env->make_integer (env, ntohs (sin->sin_port));
        return env->funcall (env, np_sym.vector, 5, items);
      }
    case AF_INET6:
      {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;
        const guint8 *b = sin6->sin6_addr.s6_addr;
        emacs_value items[9];
        for (int i = 0; i < 8; i++)
          items[i] = env->make_integer (env, (b[2 * i] << 8) | b[2 * i + 1]);
        items[8] = env->make_integer (env, ntohs (sin6->sin6_port));
        return env->funcall (env, np_sym.vector, 9, items);
      }
    case AF_UNIX:
      {
        const struct sockaddr_un *sun = (const struct sockaddr_un *) sa;
        socklen_t offset = offsetof (struct sockaddr_un, sun_path);
        size_t max = len > offset ? len - offset : 0;
        size_t n = strnlen (sun->sun_path, max);
        /* Bytes, as the builtin's: a path is whatever the file system
           took, and make_string would signal for one that is not UTF-8,
           in the middle of a drain.  */
        return env->make_unibyte_string (env, sun->sun_path, n);
      }
    default:
      {
        /* The builtin's form for families it does not know.  */
        socklen_t offset = offsetof (struct sockaddr, sa_data);
        size_t n = len > offset ? len - offset : 0;
        emacs_value bytes[sizeof (struct sockaddr_storage)];
        for (size_t i = 0; i < n && i < sizeof bytes / sizeof *bytes; i++)
          bytes[i] = env->make_integer (env,
                                        ((const guint8 *) sa)[offset + i]);
        emacs_value vec = env->funcall (env, np_sym.vector, n, bytes);
        emacs_value pair[2] = { env->make_integer (env, sa->sa_family), vec };
        return env->funcall (env, np_sym.cons, 2, pair);
      }
    }
}
