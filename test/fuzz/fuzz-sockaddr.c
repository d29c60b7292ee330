/* fuzz-sockaddr.c -- socket addresses from the kernel to Lisp
   (np_sockaddr_to_lisp: lisp-address.c).

   The addresses of an OPEN, FAILED or ACCEPTED event, a bound server's
   and a datagram sender's come from getsockname(), getpeername(),
   accept() and recvfrom(): any family, and for a Unix socket any bytes
   a peer bound to.  Input: 2 bytes of length (0 to the size of a
   sockaddr_storage), then the address's bytes (zeros past the input's
   end), in a buffer of exactly a sockaddr_storage.

   Invariants:
   - It never signals: it runs while a drain turns events into Lisp, and
     a signal there would lose every event of the drain.
   - The form is the builtin's (process.c, conv_sockaddr_to_lisp): nil
     for length 0; [A B C D PORT] for AF_INET; [G0 ... G7 PORT] for
     AF_INET6; for AF_UNIX the path's bytes up to its first NUL, as a
     unibyte string; else (FAMILY . [BYTES...]) of the bytes after the
     family field, within the length.
   - That form, given back to np_lisp_to_any_sockaddr, is the same
     address (the fields the form has).  */

#include "binding.h"
#include "fake-env.h"
#include "lisp-gen.h"

#include <netinet/in.h>
#include <sys/un.h>

static void
check_vector (emacs_value v, size_t n, const guint8 *expected_bytes,
              size_t n_bytes, guint16 port)
{
  FUZZ_CHECK (fake_type (v) == FAKE_VECTOR && fake_vector_size (v) == n,
              "%s: expected a vector of %zu", fake_repr (v), n);
  size_t per = n_bytes / (n - 1);
  for (size_t i = 0; i + 1 < n; i++)
    {
      guint expected = expected_bytes[per * i];
      if (per == 2)
        expected = expected << 8 | expected_bytes[per * i + 1];
      FUZZ_CHECK (fake_fixnum_value (fake_vector_ref (v, i)) == expected,
                  "%s: element %zu, expected %u", fake_repr (v), i,
                  expected);
    }
  FUZZ_CHECK (fake_fixnum_value (fake_vector_ref (v, n - 1)) == port,
              "%s: port, expected %u", fake_repr (v), port);
}

/* The fields of an inet address that its Lisp form keeps: the family,
   the port and the address.  */
static gboolean
same_inet (const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return FALSE;
  switch (a->ss_family)
    {
    case AF_INET:
      {
        const struct sockaddr_in *x = (const void *) a, *y = (const void *) b;
        return x->sin_port == y->sin_port
               && x->sin_addr.s_addr == y->sin_addr.s_addr;
      }
    case AF_INET6:
      {
        const struct sockaddr_in6 *x = (const void *) a, *y = (const void *) b;
        return x->sin6_port == y->sin6_port
               && memcmp (&x->sin6_addr, &y->sin6_addr,
                          sizeof x->sin6_addr) == 0;
      }
    default:
      return FALSE;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  emacs_env *env = fake_env ();
  FuzzInput in = { data, size, 0 };
  socklen_t len = fi_u16 (&in) % (sizeof (struct sockaddr_storage) + 1);
  /* Exactly a sockaddr_storage, as every caller's: a read past it
     shows.  */
  struct sockaddr_storage *ss = g_new0 (struct sockaddr_storage, 1);
  size_t got;
  const guint8 *bytes = fi_bytes (&in, sizeof *ss, &got);
  memcpy (ss, bytes, got);
  const guint8 *raw = (const guint8 *) ss;

  emacs_value v = np_sockaddr_to_lisp (env, (struct sockaddr *) ss, len);
  emacs_value sig = NULL, sig_data = NULL;
  FUZZ_CHECK (!fake_pending (&sig, &sig_data),
              "family %d, length %u: signal %s %s", ss->ss_family,
              (unsigned) len, fake_repr (sig), fake_repr (sig_data));
  FUZZ_CHECK (v != NULL, "family %d, length %u: no value", ss->ss_family,
              (unsigned) len);

  if (len == 0)
    {
      FUZZ_CHECK (fake_is_nil (v), "length 0: %s, expected nil",
                  fake_repr (v));
      goto done;
    }

  switch (ss->ss_family)
    {
    case AF_INET:
      {
        const struct sockaddr_in *sin = (const void *) ss;
        check_vector (v, 5, (const guint8 *) &sin->sin_addr, 4,
                      ntohs (sin->sin_port));
        break;
      }
    case AF_INET6:
      {
        const struct sockaddr_in6 *sin6 = (const void *) ss;
        check_vector (v, 9, sin6->sin6_addr.s6_addr, 16,
                      ntohs (sin6->sin6_port));
        break;
      }
    case AF_UNIX:
      {
        const struct sockaddr_un *sun = (const void *) ss;
        size_t offset = offsetof (struct sockaddr_un, sun_path);
        size_t max = len > offset ? len - offset : 0;
        size_t n;
        const guint8 *path = fake_string_bytes (v, &n);
        FUZZ_CHECK (n == strnlen (sun->sun_path, max)
                    && memcmp (path, sun->sun_path, n) == 0,
                    "length %u: %s is not the path", (unsigned) len,
                    fake_repr (v));
        FUZZ_CHECK (fake_string_kind (v) == FAKE_UNIBYTE,
                    "%s: a path is bytes, a unibyte string", fake_repr (v));
        break;
      }
    default:
      {
        size_t offset = offsetof (struct sockaddr, sa_data);
        size_t n = len > offset ? len - offset : 0;
        FUZZ_CHECK (fake_type (v) == FAKE_CONS
                    && fake_fixnum_value (fake_car (v)) == ss->ss_family,
                    "family %d: %s", ss->ss_family, fake_repr (v));
        emacs_value vec = fake_cdr (v);
        FUZZ_CHECK (fake_type (vec) == FAKE_VECTOR
                    && fake_vector_size (vec) == n,
                    "length %u: %s", (unsigned) len, fake_repr (v));
        for (size_t i = 0; i < n; i++)
          FUZZ_CHECK (fake_fixnum_value (fake_vector_ref (vec, i))
                      == raw[offset + i],
                      "%s: byte %zu", fake_repr (v), i);
        break;
      }
    }

  /* Back to an address.  A Unix path too long for a path, or with no
     room for its NUL, is the one form that cannot come back.  */
  struct sockaddr_storage again;
  socklen_t again_len = 0;
  int family = -1;
  gboolean ok = np_lisp_to_any_sockaddr (env, v, &again, &again_len,
                                         &family);
  FUZZ_CHECK (!fake_pending (&sig, &sig_data), "back from %s: signal %s %s",
              fake_repr (v), fake_repr (sig), fake_repr (sig_data));
  if (ss->ss_family == AF_UNIX)
    {
      size_t n;
      const guint8 *path = fake_string_bytes (v, &n);
      const struct sockaddr_un *sun = (const void *) &again;
      if (n >= sizeof sun->sun_path)
        FUZZ_CHECK (!ok, "%s: a path too long taken back", fake_repr (v));
      else
        FUZZ_CHECK (ok && family == AF_UNIX && sun->sun_family == AF_UNIX
                    && memcmp (sun->sun_path, path, n) == 0
                    && sun->sun_path[n] == 0,
                    "%s: back as another address", fake_repr (v));
      goto done;
    }
  FUZZ_CHECK (ok, "%s: refused back", fake_repr (v));
  if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)
    FUZZ_CHECK (same_inet (ss, &again) && family == ss->ss_family,
                "%s: back as another address", fake_repr (v));
  else
    {
      /* Emacs leaves the family field of this form 0; the rest is the
         same, and so is the length (when there is a family field).  */
      FUZZ_CHECK (family == ss->ss_family && again.ss_family == 0
                  && (len < sizeof (sa_family_t) || again_len == len)
                  && memcmp ((guint8 *) &again + sizeof (sa_family_t),
                             raw + sizeof (sa_family_t),
                             again_len - sizeof (sa_family_t)) == 0,
                  "%s: back as another address (length %u for %u)",
                  fake_repr (v), (unsigned) again_len, (unsigned) len);
    }

done:
  g_free (ss);
  fake_env_reset ();
  return 0;
}
