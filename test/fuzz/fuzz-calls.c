/* fuzz-calls.c -- every module function, with any arguments, and no
   engine running (binding.c, lisp-datagram.c).

   Lisp checks the arguments before it calls the module, but the module
   checks them again, because a wrong pointer or an unchecked length
   would take Emacs down.  Input: which function (1 byte), then its
   arguments (lisp-gen.h), which are never a netproc handle: the
   generator makes foreign user pointers only.

   Invariants, besides "no crash" and no env misuse (fake-env.h):
   - Every function the module defines is in the table below, so that
     a new one is fuzzed too.
   - A function of a connection refuses what is no handle with
     (wrong-type-argument user-ptrp ARG), a foreign user pointer
     included.
   - With no engine: connect and listen signal an error; drain gives [];
     the others nil; starting without a pipe process signals and leaves
     no engine.
   - netproc--strerror gives the system's text for 0..4095, an error
     for other integers, wrong-type-argument for non-integers;
     netproc--service-port a port or nil for a string.  */

#include "binding.h"
#include "fake-env.h"
#include "lisp-gen.h"

typedef enum
{
  CONN,                   /* (wrong-type-argument user-ptrp ARG) */
  NEEDS_ENGINE,           /* error */
  NIL,
  EMPTY_VECTOR,
  START,
  STRERROR,
  SERVICE_PORT,
} Kind;

static const struct
{
  const char *name;
  ptrdiff_t arity;
  Kind kind;
} functions[] = {
  { "netproc--start", 1, START },
  { "netproc--stop", 0, NIL },
  { "netproc--running-p", 0, NIL },
  { "netproc--connect", 9, NEEDS_ENGINE },
  { "netproc--listen", 6, NEEDS_ENGINE },
  { "netproc--set-option", 3, CONN },
  { "netproc--send", 2, CONN },
  { "netproc--read-direct", 4, CONN },
  { "netproc--read-direct-end", 1, CONN },
  { "netproc--queued", 1, CONN },
  { "netproc--dropped", 1, CONN },
  { "netproc--shutdown-write", 1, CONN },
  { "netproc--set-paused", 2, CONN },
  { "netproc--set-ascii-text", 2, CONN },
  { "netproc--set-linger", 2, CONN },
  { "netproc--close", 1, CONN },
  { "netproc--close-deferred", 1, CONN },
  { "netproc--flush", 0, NIL },
  { "netproc--drain", 0, EMPTY_VECTOR },
  { "netproc--ring", 0, NIL },
  { "netproc--queue-stats", 0, NIL },
  { "netproc--lingering", 0, NIL },
  { "netproc--sync", 0, NIL },
  { "netproc--test-resolver", 3, NEEDS_ENGINE },
  { "netproc--service-port", 1, SERVICE_PORT },
  { "netproc--strerror", 1, STRERROR },
  { "netproc--datagram-received", 2, CONN },
  { "netproc--datagram-address", 1, CONN },
  { "netproc--set-datagram-address", 2, CONN },
};

static void
check_table (void)
{
  g_autoptr (GPtrArray) names = fake_function_names ();
  for (guint i = 0; i < names->len; i++)
    {
      gboolean found = FALSE;
      for (gsize j = 0; j < G_N_ELEMENTS (functions); j++)
        found = found || strcmp (names->pdata[i], functions[j].name) == 0;
      FUZZ_CHECK (found, "%s is not fuzzed: add it to the table",
                  (const char *) names->pdata[i]);
    }
}

static gboolean
is_signal (emacs_value sig, emacs_value data, const char *symbol,
           const char *predicate, emacs_value arg)
{
  if (!sig || !fake_is_symbol (sig, symbol))
    return FALSE;
  if (!predicate)
    return TRUE;
  return fake_list_length (data) == 2
         && fake_is_symbol (fake_nth (data, 0), predicate)
         && fake_nth (data, 1) == arg;
}

static void
check_strerror (emacs_value arg, emacs_value v, emacs_value sig,
                emacs_value data)
{
  switch (fake_type (arg))
    {
    case FAKE_FIXNUM:
      {
        intmax_t code = fake_fixnum_value (arg);
        if (code < 0 || code > 4095)
          {
            FUZZ_CHECK (is_signal (sig, data, "error", NULL, NULL),
                        "strerror %jd: not refused", code);
            return;
          }
        const char *text = g_strerror ((int) code);
        size_t n;
        FUZZ_CHECK (v && fake_type (v) == FAKE_STRING, "strerror %jd: %s",
                    code, fake_repr (v));
        const guint8 *got = fake_string_bytes (v, &n);
        FUZZ_CHECK (n == strlen (text) && memcmp (got, text, n) == 0,
                    "strerror %jd: %s", code, fake_repr (v));
        return;
      }
    case FAKE_BIGNUM:
      FUZZ_CHECK (is_signal (sig, data, "overflow-error", NULL, NULL),
                  "strerror of a bignum: %s", fake_repr (v));
      return;
    default:
      FUZZ_CHECK (is_signal (sig, data, "wrong-type-argument", "integerp",
                             arg),
                  "strerror %s: %s, signal %s", fake_repr (arg),
                  fake_repr (v), fake_repr (sig));
      return;
    }
}

static void
check_service_port (emacs_value arg, emacs_value v, emacs_value sig,
                    emacs_value data)
{
  if (fake_type (arg) != FAKE_STRING)
    FUZZ_CHECK (is_signal (sig, data, "wrong-type-argument", "stringp", arg),
                "service-port %s: signal %s", fake_repr (arg),
                fake_repr (sig));
  else if (fake_string_kind (arg) == FAKE_MULTIBYTE_RAW)
    FUZZ_CHECK (is_signal (sig, data, "wrong-type-argument",
                           "unicode-string-p", arg),
                "service-port %s: signal %s", fake_repr (arg),
                fake_repr (sig));
  else
    FUZZ_CHECK (v && (fake_is_nil (v)
                      || (fake_type (v) == FAKE_FIXNUM
                          && fake_fixnum_value (v) >= 0
                          && fake_fixnum_value (v) <= 0xffff)),
                "service-port %s: %s, signal %s", fake_repr (arg),
                fake_repr (v), fake_repr (sig));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean checked;
  fake_env ();
  if (!checked)
    {
      check_table ();
      checked = TRUE;
    }
  FuzzInput in = { data, size, 0 };
  guint8 which = fi_u8 (&in) % G_N_ELEMENTS (functions);
  const char *name = functions[which].name;
  emacs_value args[9];
  for (ptrdiff_t i = 0; i < functions[which].arity; i++)
    args[i] = lisp_gen_value (&in);

  emacs_value sig, sig_data;
  emacs_value v = fake_call (name, functions[which].arity, args, &sig,
                             &sig_data);
  switch (functions[which].kind)
    {
    case CONN:
      FUZZ_CHECK (!v && is_signal (sig, sig_data, "wrong-type-argument",
                                   "user-ptrp", args[0]),
                  "%s of %s: %s, signal %s %s", name, fake_repr (args[0]),
                  fake_repr (v), fake_repr (sig), fake_repr (sig_data));
      break;
    case NEEDS_ENGINE:
      FUZZ_CHECK (!v && is_signal (sig, sig_data, "error", NULL, NULL),
                  "%s with no engine: %s, signal %s", name, fake_repr (v),
                  fake_repr (sig));
      break;
    case NIL:
      FUZZ_CHECK (v && fake_is_nil (v), "%s with no engine: %s, signal %s",
                  name, fake_repr (v), fake_repr (sig));
      break;
    case EMPTY_VECTOR:
      FUZZ_CHECK (v && fake_type (v) == FAKE_VECTOR
                  && fake_vector_size (v) == 0,
                  "%s with no engine: %s, signal %s", name, fake_repr (v),
                  fake_repr (sig));
      break;
    case START:
      {
        FUZZ_CHECK (!v && is_signal (sig, sig_data, "wrong-type-argument",
                                     "processp", args[0]),
                    "%s %s: %s, signal %s", name, fake_repr (args[0]),
                    fake_repr (v), fake_repr (sig));
        emacs_value running = fake_call ("netproc--running-p", 0, NULL, &sig,
                                         &sig_data);
        FUZZ_CHECK (running && fake_is_nil (running),
                    "an engine after a failed start");
        break;
      }
    case STRERROR:
      check_strerror (args[0], v, sig, sig_data);
      break;
    case SERVICE_PORT:
      check_service_port (args[0], v, sig, sig_data);
      break;
    }
  fake_env_reset ();
  return 0;
}
