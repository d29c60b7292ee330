/* fuzz-sockopt.c -- network option values from Lisp, applied to a socket
   (np_lisp_to_sockopt, np_lisp_to_sockopts: lisp-sockopt.c;
   np_sockopt_set, np__sockopt_apply: sockopt.c).

   Input: a mode byte, then Lisp values (lisp-gen.h): with the low bit
   clear an OPTION and a VALUE, as `set-network-process-option' passes
   them; with it set the PAIRS of `make-network-process' (nil or
   [OPTION VALUE ...]).  Each option made is set on a UDP socket of the
   fuzzer's own.

   Invariants:
   - The NpSockopt made is what lisp-sockopt.c says Emacs makes of the
     pair, computed here on its own: the five booleans nil -> 0, else 1;
     :priority a fixnum that fits an int, else invalid; :linger such a
     fixnum as the time, else on (non-nil) or off with time 0;
     :bindtodevice nil, or a string's bytes up to its first NUL, cut to
     16; any other pair invalid.
   - Nothing is left pending but the signal of a string Emacs cannot
     copy out (raw bytes) given to :bindtodevice, which is then a
     refusal; PAIRS that are not nil or a vector, or of odd length,
     signal.
   - Setting an invalid option fails with EINVAL, a valid one succeeds
     or fails with an errno; a boolean or :priority set reads back as
     set.  Applying a list stops at its first failure, and at the first
     invalid entry at the latest.  */

#include "binding.h"
#include "engine-private.h"
#include "fake-env.h"
#include "lisp-gen.h"

#include <errno.h>

static int udp_fd = -1;

/* An integer that fits an int, as lisp-sockopt.c wants one.  */
static gboolean
int_value (emacs_value v, int *out)
{
  if (fake_type (v) != FAKE_FIXNUM)
    return FALSE;
  intmax_t n = fake_fixnum_value (v);
  if (n < G_MININT || n > G_MAXINT)
    return FALSE;
  *out = (int) n;
  return TRUE;
}

/* What OPTION and VALUE must make; FALSE when they must be refused with
   a signal.  */
static gboolean
expect (emacs_value option, emacs_value value, NpSockopt *e)
{
  static const struct
  {
    const char *symbol;
    NpSockoptName name;
  } booleans[] = {
    { ":broadcast", NP_SOCKOPT_BROADCAST },
    { ":dontroute", NP_SOCKOPT_DONTROUTE },
    { ":keepalive", NP_SOCKOPT_KEEPALIVE },
    { ":oobinline", NP_SOCKOPT_OOBINLINE },
    { ":reuseaddr", NP_SOCKOPT_REUSEADDR },
  };
  memset (e, 0, sizeof *e);
  gboolean set = !fake_is_nil (value);

  if (fake_is_symbol (option, ":bindtodevice"))
    {
      if (fake_type (value) == FAKE_STRING)
        {
          if (fake_string_kind (value) == FAKE_MULTIBYTE_RAW)
            return FALSE;
          size_t n;
          const guint8 *bytes = fake_string_bytes (value, &n);
          n = strnlen ((const char *) bytes, n);
          memcpy (e->device, bytes, MIN (n, sizeof e->device));
        }
      else if (set)
        return TRUE;
      e->name = NP_SOCKOPT_BINDTODEVICE;
    }
  else if (fake_is_symbol (option, ":priority"))
    {
      if (int_value (value, &e->value))
        e->name = NP_SOCKOPT_PRIORITY;
    }
  else if (fake_is_symbol (option, ":linger"))
    {
      e->name = NP_SOCKOPT_LINGER;
      e->linger_on = 1;
      if (!int_value (value, &e->value))
        {
          e->value = 0;
          e->linger_on = set;
        }
    }
  else
    for (gsize i = 0; i < G_N_ELEMENTS (booleans); i++)
      if (fake_is_symbol (option, booleans[i].symbol))
        {
          e->name = booleans[i].name;
          e->value = set;
        }
  return TRUE;
}

static const char *
describe (const NpSockopt *o)
{
  static char text[128];
  snprintf (text, sizeof text, "{name %d, value %d, linger_on %d, "
            "device \"%.16s\"}", o->name, o->value, o->linger_on, o->device);
  return text;
}

/* OPTION set on the socket: its result, and what it reads back.  */
static void
check_set (const NpSockopt *o)
{
  int err = np_sockopt_set (udp_fd, o);
  if (o->name == NP_SOCKOPT_INVALID)
    {
      FUZZ_CHECK (err == EINVAL, "%s: set gave %d, expected EINVAL",
                  describe (o), err);
      return;
    }
  FUZZ_CHECK (err >= 0, "%s: set gave %d", describe (o), err);
  if (err)
    return;

  int level = SOL_SOCKET, name = -1;
  switch (o->name)
    {
    case NP_SOCKOPT_BROADCAST: name = SO_BROADCAST; break;
    case NP_SOCKOPT_DONTROUTE: name = SO_DONTROUTE; break;
    case NP_SOCKOPT_KEEPALIVE: name = SO_KEEPALIVE; break;
    case NP_SOCKOPT_OOBINLINE: name = SO_OOBINLINE; break;
    case NP_SOCKOPT_REUSEADDR: name = SO_REUSEADDR; break;
    case NP_SOCKOPT_PRIORITY: name = SO_PRIORITY; break;
    default: return;
    }
  int got = -1;
  socklen_t len = sizeof got;
  FUZZ_CHECK (getsockopt (udp_fd, level, name, &got, &len) == 0,
              "%s: getsockopt: %s", describe (o), g_strerror (errno));
  if (o->name == NP_SOCKOPT_PRIORITY)
    FUZZ_CHECK (got == o->value, "%s: reads back %d", describe (o), got);
  else
    FUZZ_CHECK ((got != 0) == (o->value != 0), "%s: reads back %d",
                describe (o), got);
}

static void
check_pair (emacs_env *env, emacs_value option, emacs_value value)
{
  NpSockopt e, got;
  gboolean ok = expect (option, value, &e);
  memset (&got, 0x5a, sizeof got);
  gboolean returned = np_lisp_to_sockopt (env, option, value, &got);
  emacs_value sig = NULL, data = NULL;
  gboolean pending = fake_pending (&sig, &data);

  FUZZ_CHECK (returned == ok && pending == !ok,
              "(%s %s): returned %d with %s %s pending, expected %d",
              fake_repr (option), fake_repr (value), returned,
              fake_repr (sig), fake_repr (data), ok);
  env->non_local_exit_clear (env);
  if (!ok)
    return;
  FUZZ_CHECK (memcmp (&got, &e, sizeof got) == 0, "(%s %s): %s",
              fake_repr (option), fake_repr (value), describe (&got));
  check_set (&got);
}

static void
check_pairs (emacs_env *env, emacs_value pairs)
{
  guint n = 12345;
  NpSockopt *options = np_lisp_to_sockopts (env, pairs, &n);
  emacs_value sig = NULL, data = NULL;
  gboolean pending = fake_pending (&sig, &data);
  env->non_local_exit_clear (env);

  if (fake_is_nil (pairs))
    {
      FUZZ_CHECK (!options && n == 0 && !pending, "nil: %u options", n);
      return;
    }
  if (fake_type (pairs) != FAKE_VECTOR)
    {
      FUZZ_CHECK (!options && pending
                  && fake_is_symbol (sig, "wrong-type-argument"),
                  "%s: not refused as no vector", fake_repr (pairs));
      return;
    }
  size_t size = fake_vector_size (pairs);
  if (size % 2)
    {
      FUZZ_CHECK (!options && pending && fake_is_symbol (sig, "error"),
                  "%s: odd, not refused", fake_repr (pairs));
      return;
    }

  /* Each pair as check_pair() expects it, refused if one is.  */
  g_autofree NpSockopt *e = g_new0 (NpSockopt, size / 2 + 1);
  gboolean ok = TRUE;
  for (size_t i = 0; ok && i < size / 2; i++)
    ok = expect (fake_vector_ref (pairs, 2 * i),
                 fake_vector_ref (pairs, 2 * i + 1), &e[i]);
  if (!ok)
    {
      FUZZ_CHECK (!options && pending, "%s: not refused", fake_repr (pairs));
      return;
    }
  FUZZ_CHECK (!pending, "%s: signal %s %s", fake_repr (pairs),
              fake_repr (sig), fake_repr (data));
  FUZZ_CHECK (n == size / 2 && (n == 0) == (options == NULL),
              "%s: %u options at %p", fake_repr (pairs), n,
              (void *) options);
  for (guint i = 0; i < n; i++)
    FUZZ_CHECK (memcmp (&options[i], &e[i], sizeof e[i]) == 0,
                "%s: option %u is %s", fake_repr (pairs), i,
                describe (&options[i]));

  guint failed = G_MAXUINT;
  int err = np__sockopt_apply (udp_fd, options, n, &failed);
  for (guint i = 0; i < n; i++)
    if (options[i].name == NP_SOCKOPT_INVALID)
      {
        FUZZ_CHECK (err != 0 && failed <= i,
                    "%s: applied past invalid option %u (gave %d at %u)",
                    fake_repr (pairs), i, err, failed);
        break;
      }
  if (err)
    FUZZ_CHECK (err > 0 && failed < n, "%s: gave %d at %u",
                fake_repr (pairs), err, failed);
  g_free (options);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  emacs_env *env = fake_env ();
  if (udp_fd < 0)
    {
      udp_fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      FUZZ_CHECK (udp_fd >= 0, "socket: %s", g_strerror (errno));
    }
  FuzzInput in = { data, size, 0 };
  if (fi_u8 (&in) & 1)
    check_pairs (env, lisp_gen_value (&in));
  else
    {
      emacs_value option = lisp_gen_value (&in);
      check_pair (env, option, lisp_gen_value (&in));
    }
  fake_env_reset ();
  return 0;
}
