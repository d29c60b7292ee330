/* lisp-gen.c -- a Lisp value made of fuzz input; see lisp-gen.h.  */

#include "lisp-gen.h"

#define MAX_DEPTH 6
#define MAX_VALUES 512
/* A long string is long enough to pass any path limit (108).  */
#define MAX_LONG_STRING 4096

/* The symbols the binding tells apart, and some it must not take for
   them.  */
static const char *const symbols[] = {
  "nil", "t", ":bindtodevice", ":broadcast", ":dontroute", ":keepalive",
  ":linger", ":oobinline", ":priority", ":reuseaddr", "ipv4", "ipv6",
  "local", "seqpacket", "datagram", ":nowait", "stream", "integer",
  "string", "vector", "user-ptr", "car", "error", ":bindtodevicex",
};

static void
foreign_finalize (void *ptr)
{
  (void) ptr;
}

static int foreign_object;

typedef struct
{
  FuzzInput *in;
  int values;
} Gen;

static emacs_value gen (Gen *g, int depth);

static emacs_value
gen_string (Gen *g, size_t len, FakeStringKind kind)
{
  size_t got;
  const guint8 *bytes = fi_bytes (g->in, len, &got);
  if (kind != FAKE_MULTIBYTE)
    return fake_string (bytes, got, kind);
  g_autofree char *valid = g_utf8_make_valid ((const char *) bytes,
                                              (gssize) got);
  return fake_string (valid, strlen (valid), FAKE_MULTIBYTE);
}

static emacs_value
gen_items (Gen *g, int depth, gboolean vector)
{
  size_t n = fi_u8 (g->in);
  g_autofree emacs_value *items = g_new (emacs_value, n ? n : 1);
  for (size_t i = 0; i < n; i++)
    items[i] = gen (g, depth + 1);
  return vector ? fake_vector (n, items) : fake_list (n, items);
}

static emacs_value
gen (Gen *g, int depth)
{
  if (depth > MAX_DEPTH || ++g->values > MAX_VALUES || fi_left (g->in) == 0)
    return fake_nil ();
  FuzzInput *in = g->in;
  switch (fi_u8 (in) & 15)
    {
    case 0:
      return fake_nil ();
    case 1:
      return fake_t ();
    case 2:
      return fake_fixnum (fi_u8 (in));
    case 3:
      return fake_fixnum (fi_u16 (in));
    case 4:
      return fake_fixnum ((intmax_t) (gint64) fi_u64 (in));
    case 5:
      return fake_bignum (fi_u8 (in) & 1 ? -1 : 1);
    case 6:
      {
        guint64 bits = fi_u64 (in);
        double d;
        memcpy (&d, &bits, sizeof d);
        return fake_float (d);
      }
    case 7:
      return fake_symbol (symbols[fi_u8 (in) % G_N_ELEMENTS (symbols)]);
    case 8:
      return gen_string (g, fi_u8 (in), FAKE_UNIBYTE);
    case 9:
      return gen_string (g, fi_u16 (in) % (MAX_LONG_STRING + 1),
                         FAKE_UNIBYTE);
    case 10:
      return gen_string (g, fi_u8 (in), FAKE_MULTIBYTE);
    case 11:
      return gen_string (g, fi_u8 (in), FAKE_MULTIBYTE_RAW);
    case 12:
      return gen_items (g, depth, TRUE);
    case 13:
      {
        emacs_value car = gen (g, depth + 1);
        return fake_cons (car, gen (g, depth + 1));
      }
    case 14:
      return fake_user_ptr (foreign_finalize, &foreign_object);
    default:
      return gen_items (g, depth, FALSE);
    }
}

emacs_value
lisp_gen_value (FuzzInput *in)
{
  Gen g = { .in = in };
  return gen (&g, 0);
}
