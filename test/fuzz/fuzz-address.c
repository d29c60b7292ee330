/* fuzz-address.c -- Lisp address forms to socket addresses
   (np_lisp_to_sockaddr, np_lisp_to_any_sockaddr: lisp-address.c).

   Input: one Lisp value (lisp-gen.h), given to both functions as the
   address of `make-network-process' :remote or :local, or of
   `set-process-datagram-address'.

   Invariants:
   - What is accepted and what is made of it are what lisp-address.c
     says, computed here on its own from the value: [A B C D PORT] and
     [G0 ... G7 PORT] of fixnums, masked; a string of at most 107 bytes
     without NUL; (FAMILY . [BYTES...]) with FAMILY in 0..65535 and at
     most 126 fixnum bytes (np_lisp_to_any_sockaddr only).
   - The length is within struct sockaddr_storage and the family field
     is the form's.
   - A refusal is a false return; it leaves a signal pending only when
     the value is a string Emacs cannot copy out (raw bytes), never
     otherwise: the caller words the error.
   - An accepted address converted back to Lisp (np_sockaddr_to_lisp,
     as `process-contact' shows it) is accepted again as the same
     address, without a signal.  */

#include "binding.h"
#include "fake-env.h"
#include "lisp-gen.h"

#include <netinet/in.h>
#include <sys/un.h>

typedef struct
{
  gboolean ok;
  gboolean may_signal;
  struct sockaddr_storage ss;
  socklen_t len;
  int family;
} Expected;

static gboolean
all_fixnums (emacs_value vec)
{
  for (size_t i = 0; i < fake_vector_size (vec); i++)
    if (fake_type (fake_vector_ref (vec, i)) != FAKE_FIXNUM)
      return FALSE;
  return TRUE;
}

static guint
element (emacs_value vec, size_t i, guint mask)
{
  return (guint) (fake_fixnum_value (fake_vector_ref (vec, i)) & mask);
}

static void
expect_vector (emacs_value v, Expected *e)
{
  size_t n = fake_vector_size (v);
  if ((n != 5 && n != 9) || !all_fixnums (v))
    return;
  e->ok = TRUE;
  guint16 port = (guint16) element (v, n - 1, 0xffff);
  if (n == 5)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) &e->ss;
      guint8 *b = (guint8 *) &sin->sin_addr;
      for (size_t i = 0; i < 4; i++)
        b[i] = (guint8) element (v, i, 0xff);
      sin->sin_family = AF_INET;
      sin->sin_port = htons (port);
      e->len = sizeof *sin;
    }
  else
    {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &e->ss;
      for (size_t i = 0; i < 8; i++)
        {
          guint g = element (v, i, 0xffff);
          sin6->sin6_addr.s6_addr[2 * i] = (guint8) (g >> 8);
          sin6->sin6_addr.s6_addr[2 * i + 1] = (guint8) g;
        }
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons (port);
      e->len = sizeof *sin6;
    }
  e->family = e->ss.ss_family;
}

static void
expect_string (emacs_value v, Expected *e)
{
  if (fake_string_kind (v) == FAKE_MULTIBYTE_RAW)
    {
      e->may_signal = TRUE;
      return;
    }
  size_t n;
  const guint8 *bytes = fake_string_bytes (v, &n);
  struct sockaddr_un *sun = (struct sockaddr_un *) &e->ss;
  if (n >= sizeof sun->sun_path || memchr (bytes, 0, n))
    return;
  e->ok = TRUE;
  sun->sun_family = AF_UNIX;
  memcpy (sun->sun_path, bytes, n);
  e->len = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + n + 1);
  e->family = AF_UNIX;
}

static void
expect_cons (emacs_value v, Expected *e)
{
  emacs_value family = fake_car (v), bytes = fake_cdr (v);
  const size_t room = sizeof e->ss - sizeof e->ss.ss_family;
  if (fake_type (family) != FAKE_FIXNUM || fake_type (bytes) != FAKE_VECTOR)
    return;
  intmax_t f = fake_fixnum_value (family);
  size_t n = fake_vector_size (bytes);
  if (f < 0 || f > 0xffff || n > room || !all_fixnums (bytes))
    return;
  e->ok = TRUE;
  guint8 *data = (guint8 *) &e->ss + sizeof e->ss.ss_family;
  for (size_t i = 0; i < n; i++)
    data[i] = (guint8) element (bytes, i, 0xff);
  e->len = (socklen_t) (sizeof e->ss.ss_family + n);
  e->family = (int) f;
}

/* What the function taking any form (ANY) or only the three of
   `make-network-process' must make of V.  */
static void
expect (emacs_value v, gboolean any, Expected *e)
{
  memset (e, 0, sizeof *e);
  switch (fake_type (v))
    {
    case FAKE_VECTOR:
      expect_vector (v, e);
      break;
    case FAKE_STRING:
      expect_string (v, e);
      break;
    case FAKE_CONS:
      if (any)
        expect_cons (v, e);
      break;
    default:
      break;
    }
}

static void
check_one (emacs_env *env, emacs_value v, gboolean any)
{
  Expected e;
  expect (v, any, &e);

  struct sockaddr_storage ss;
  socklen_t len = 0;
  int family = -1;
  /* Poisoned, so that a byte left unwritten shows.  */
  memset (&ss, 0xa5, sizeof ss);
  gboolean ok = any ? np_lisp_to_any_sockaddr (env, v, &ss, &len, &family)
                    : np_lisp_to_sockaddr (env, v, &ss, &len);
  emacs_value sig = NULL, data = NULL;
  gboolean pending = fake_pending (&sig, &data);
  const char *fn = any ? "np_lisp_to_any_sockaddr" : "np_lisp_to_sockaddr";

  FUZZ_CHECK (ok == e.ok, "%s (%s): returned %d, expected %d", fn,
              fake_repr (v), ok, e.ok);
  FUZZ_CHECK (!pending || (!ok && e.may_signal),
              "%s (%s): signal %s %s left pending", fn, fake_repr (v),
              fake_repr (sig), fake_repr (data));
  env->non_local_exit_clear (env);
  if (!ok)
    return;

  FUZZ_CHECK (len >= sizeof (sa_family_t) && len <= sizeof ss,
              "%s (%s): length %u", fn, fake_repr (v), (unsigned) len);
  FUZZ_CHECK (len == e.len, "%s (%s): length %u, expected %u", fn,
              fake_repr (v), (unsigned) len, (unsigned) e.len);
  FUZZ_CHECK (memcmp (&ss, &e.ss, sizeof ss) == 0,
              "%s (%s): address differs from the form", fn, fake_repr (v));
  if (any)
    FUZZ_CHECK (family == e.family, "%s (%s): family %d, expected %d", fn,
                fake_repr (v), family, e.family);

  /* Back to Lisp, and once more to an address: the same one.  */
  emacs_value back = np_sockaddr_to_lisp (env, (struct sockaddr *) &ss, len);
  FUZZ_CHECK (!fake_pending (&sig, &data),
              "np_sockaddr_to_lisp of %s's address: signal %s %s",
              fake_repr (v), fake_repr (sig), fake_repr (data));
  struct sockaddr_storage again;
  socklen_t again_len = 0;
  int again_family = -1;
  memset (&again, 0x5a, sizeof again);
  gboolean again_ok = np_lisp_to_any_sockaddr (env, back, &again, &again_len,
                                               &again_family);
  FUZZ_CHECK (again_ok && !fake_pending (NULL, NULL),
              "%s: the address of %s, back as %s, is refused", fn,
              fake_repr (v), fake_repr (back));
  FUZZ_CHECK (again_len == len
              && memcmp (&again, &ss, sizeof again) == 0,
              "%s: %s, back as %s, is another address", fn, fake_repr (v),
              fake_repr (back));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  emacs_env *env = fake_env ();
  FuzzInput in = { data, size, 0 };
  emacs_value v = lisp_gen_value (&in);
  check_one (env, v, FALSE);
  check_one (env, v, TRUE);
  fake_env_reset ();
  return 0;
}
