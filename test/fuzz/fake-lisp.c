/* fake-lisp.c -- Lisp values without Emacs, for the fake env; see
   fake-lisp.h.  */

#include "fake-lisp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_MAGIC 0x4c495350u  /* "LISP" */

static struct
{
  GPtrArray *arena;               /* values to free at the next collection */
  GPtrArray *texts;               /* fake_repr()'s strings */
  GHashTable *symbols;            /* name -> value */
} lisp;

void
fake_fail (const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "%s:%d: fake env: ", file, line);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  abort ();
}

#define FAIL(...) fake_fail (__FILE__, __LINE__, __VA_ARGS__)

static void
init (void)
{
  if (lisp.arena)
    return;
  lisp.arena = g_ptr_array_new ();
  lisp.texts = g_ptr_array_new_with_free_func (g_free);
  lisp.symbols = g_hash_table_new (g_str_hash, g_str_equal);
}

static emacs_value expect (emacs_value v, FakeType type, const char *what);

/* Values.  */

static emacs_value
new_value (FakeType type)
{
  init ();
  emacs_value v = g_new0 (struct emacs_value_tag, 1);
  v->magic = FAKE_MAGIC;
  v->type = type;
  g_ptr_array_add (lisp.arena, v);
  return v;
}

static void
free_value (gpointer p, gpointer unused)
{
  (void) unused;
  emacs_value v = p;
  if (v->kept)
    return;
  switch (v->type)
    {
    case FAKE_STRING:
      g_free (v->str.bytes);
      break;
    case FAKE_VECTOR:
      g_free (v->vec.items);
      break;
    case FAKE_USER_PTR:
      /* Garbage collection: the finalizer runs.  */
      if (v->uptr.fin)
        v->uptr.fin (v->uptr.ptr);
      break;
    default:
      break;
    }
  v->magic = 0;
  g_free (v);
}

void
fake_check_value (emacs_value v, const char *what)
{
  if (!v)
    FAIL ("%s: a NULL emacs_value with no non-local exit pending "
          "(the result of a call that failed, used)", what);
  if (v->magic != FAKE_MAGIC)
    FAIL ("%s: not a live value", what);
}

emacs_value
fake_symbol (const char *name)
{
  init ();
  emacs_value v = g_hash_table_lookup (lisp.symbols, name);
  if (v)
    return v;
  /* Interned for good: not in the arena.  */
  v = g_new0 (struct emacs_value_tag, 1);
  v->magic = FAKE_MAGIC;
  v->type = FAKE_SYMBOL;
  v->kept = true;
  v->name = g_strdup (name);
  g_hash_table_insert (lisp.symbols, v->name, v);
  return v;
}

emacs_value
fake_nil (void)
{
  return fake_symbol ("nil");
}

emacs_value
fake_t (void)
{
  return fake_symbol ("t");
}

emacs_value
fake_fixnum (intmax_t n)
{
  emacs_value v = new_value (FAKE_FIXNUM);
  v->fixnum = n;
  return v;
}

emacs_value
fake_bignum (int sign)
{
  emacs_value v = new_value (FAKE_BIGNUM);
  v->sign = sign < 0 ? -1 : 1;
  return v;
}

emacs_value
fake_float (double d)
{
  emacs_value v = new_value (FAKE_FLOAT);
  v->d = d;
  return v;
}

emacs_value
fake_string (const void *bytes, size_t len, FakeStringKind kind)
{
  emacs_value v = new_value (FAKE_STRING);
  v->str.bytes = g_malloc (len + 1);
  if (len)
    memcpy (v->str.bytes, bytes, len);
  v->str.bytes[len] = 0;
  v->str.len = len;
  v->str.kind = kind;
  return v;
}

emacs_value
fake_vector (size_t n, const emacs_value *items)
{
  emacs_value v = new_value (FAKE_VECTOR);
  v->vec.items = g_new0 (emacs_value, n ? n : 1);
  for (size_t i = 0; i < n; i++)
    {
      fake_check_value (items[i], "vector element");
      v->vec.items[i] = items[i];
    }
  v->vec.n = n;
  return v;
}

emacs_value
fake_cons (emacs_value car, emacs_value cdr)
{
  fake_check_value (car, "car");
  fake_check_value (cdr, "cdr");
  emacs_value v = new_value (FAKE_CONS);
  v->cons.car = car;
  v->cons.cdr = cdr;
  return v;
}

emacs_value
fake_list (size_t n, const emacs_value *items)
{
  emacs_value list = fake_nil ();
  for (size_t i = n; i > 0; i--)
    list = fake_cons (items[i - 1], list);
  return list;
}

emacs_value
fake_user_ptr (void (*fin) (void *), void *ptr)
{
  emacs_value v = new_value (FAKE_USER_PTR);
  v->uptr.fin = fin;
  v->uptr.ptr = ptr;
  return v;
}

emacs_value
fake_process (void)
{
  return new_value (FAKE_PROCESS);
}

emacs_value
fake_function (FakeModuleFn fn, ptrdiff_t min, ptrdiff_t max, void *data)
{
  if (min < 0 || (max != emacs_variadic_function && max < min))
    FAIL ("a function of arity %td..%td", min, max);
  emacs_value v = new_value (FAKE_FUNCTION);
  v->fun.fn = fn;
  v->fun.min = min;
  v->fun.max = max;
  v->fun.data = data;
  return v;
}

emacs_value
fake_function_call (emacs_env *env, emacs_value f, const char *name,
                    ptrdiff_t nargs, emacs_value *args)
{
  expect (f, FAKE_FUNCTION, name);
  if (nargs < f->fun.min
      || (f->fun.max != emacs_variadic_function && nargs > f->fun.max))
    FAIL ("%s called with %td arguments", name, nargs);
  return f->fun.fn (env, nargs, args, f->fun.data);
}

void
fake_keep (emacs_value v)
{
  fake_check_value (v, "fake_keep");
  if (v->kept)
    return;
  v->kept = true;
  if (v->type == FAKE_VECTOR)
    for (size_t i = 0; i < v->vec.n; i++)
      fake_keep (v->vec.items[i]);
  else if (v->type == FAKE_CONS)
    {
      fake_keep (v->cons.car);
      fake_keep (v->cons.cdr);
    }
}

/* Looking at values.  */

static emacs_value
expect (emacs_value v, FakeType type, const char *what)
{
  fake_check_value (v, what);
  if (v->type != type)
    FAIL ("%s: %s is of the wrong type", what, fake_repr (v));
  return v;
}

FakeType
fake_type (emacs_value v)
{
  fake_check_value (v, "fake_type");
  return v->type;
}

bool
fake_is_symbol (emacs_value v, const char *name)
{
  fake_check_value (v, "fake_is_symbol");
  return v->type == FAKE_SYMBOL && strcmp (v->name, name) == 0;
}

bool
fake_is_nil (emacs_value v)
{
  return fake_is_symbol (v, "nil");
}

intmax_t
fake_fixnum_value (emacs_value v)
{
  return expect (v, FAKE_FIXNUM, "fake_fixnum_value")->fixnum;
}

const guint8 *
fake_string_bytes (emacs_value v, size_t *len)
{
  expect (v, FAKE_STRING, "fake_string_bytes");
  *len = v->str.len;
  return v->str.bytes;
}

FakeStringKind
fake_string_kind (emacs_value v)
{
  return expect (v, FAKE_STRING, "fake_string_kind")->str.kind;
}

size_t
fake_vector_size (emacs_value v)
{
  return expect (v, FAKE_VECTOR, "fake_vector_size")->vec.n;
}

emacs_value
fake_vector_ref (emacs_value v, size_t i)
{
  expect (v, FAKE_VECTOR, "fake_vector_ref");
  if (i >= v->vec.n)
    FAIL ("fake_vector_ref: index %zu of %zu", i, v->vec.n);
  return v->vec.items[i];
}

emacs_value
fake_car (emacs_value v)
{
  return expect (v, FAKE_CONS, "fake_car")->cons.car;
}

emacs_value
fake_cdr (emacs_value v)
{
  return expect (v, FAKE_CONS, "fake_cdr")->cons.cdr;
}

ptrdiff_t
fake_list_length (emacs_value v)
{
  ptrdiff_t n = 0;
  for (; fake_type (v) == FAKE_CONS; v = v->cons.cdr)
    n++;
  return fake_is_nil (v) ? n : -1;
}

emacs_value
fake_nth (emacs_value list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    list = fake_cdr (list);
  return fake_car (list);
}

void
(*fake_user_finalizer (emacs_value v)) (void *)
{
  return expect (v, FAKE_USER_PTR, "fake_user_finalizer")->uptr.fin;
}

bool
fake_equal (emacs_value a, emacs_value b)
{
  fake_check_value (a, "fake_equal");
  fake_check_value (b, "fake_equal");
  if (a == b)
    return true;
  if (a->type != b->type)
    return false;
  switch (a->type)
    {
    case FAKE_FIXNUM:
      return a->fixnum == b->fixnum;
    case FAKE_FLOAT:
      return a->d == b->d;
    case FAKE_STRING:
      return a->str.kind == b->str.kind && a->str.len == b->str.len
             && memcmp (a->str.bytes, b->str.bytes, a->str.len) == 0;
    case FAKE_VECTOR:
      if (a->vec.n != b->vec.n)
        return false;
      for (size_t i = 0; i < a->vec.n; i++)
        if (!fake_equal (a->vec.items[i], b->vec.items[i]))
          return false;
      return true;
    case FAKE_CONS:
      return fake_equal (a->cons.car, b->cons.car)
             && fake_equal (a->cons.cdr, b->cons.cdr);
    default:
      return false;       /* symbols are eq or different */
    }
}

static void
repr (GString *out, emacs_value v, int depth)
{
  if (!v)
    {
      g_string_append (out, "#<NULL>");
      return;
    }
  if (depth > 8)
    {
      g_string_append (out, "...");
      return;
    }
  switch (v->type)
    {
    case FAKE_SYMBOL:
      g_string_append (out, v->name);
      break;
    case FAKE_FIXNUM:
      g_string_append_printf (out, "%jd", v->fixnum);
      break;
    case FAKE_BIGNUM:
      g_string_append (out, v->sign < 0 ? "-<bignum>" : "<bignum>");
      break;
    case FAKE_FLOAT:
      g_string_append_printf (out, "%g", v->d);
      break;
    case FAKE_STRING:
      g_string_append (out, v->str.kind == FAKE_UNIBYTE ? "u\"" : "m\"");
      for (size_t i = 0; i < v->str.len; i++)
        {
          guint8 c = v->str.bytes[i];
          if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            g_string_append_c (out, (char) c);
          else
            g_string_append_printf (out, "\\%03o", c);
        }
      g_string_append_c (out, '"');
      break;
    case FAKE_VECTOR:
      g_string_append_c (out, '[');
      for (size_t i = 0; i < v->vec.n; i++)
        {
          if (i)
            g_string_append_c (out, ' ');
          repr (out, v->vec.items[i], depth + 1);
        }
      g_string_append_c (out, ']');
      break;
    case FAKE_CONS:
      g_string_append_c (out, '(');
      repr (out, v->cons.car, depth + 1);
      g_string_append (out, " . ");
      repr (out, v->cons.cdr, depth + 1);
      g_string_append_c (out, ')');
      break;
    case FAKE_USER_PTR:
      g_string_append_printf (out, "#<user-ptr %p>", v->uptr.ptr);
      break;
    case FAKE_FUNCTION:
      g_string_append (out, "#<module-function>");
      break;
    case FAKE_PROCESS:
      g_string_append (out, "#<process>");
      break;
    }
}

const char *
fake_repr (emacs_value v)
{
  GString *out = g_string_new (NULL);
  repr (out, v, 0);
  char *text = g_string_free (out, FALSE);
  g_ptr_array_add (lisp.texts, text);
  return text;
}

void
fake_collect (void)
{
  init ();
  /* Kept values stay where they are, outside any arena from now on.  */
  GPtrArray *arena = lisp.arena;
  lisp.arena = g_ptr_array_new ();
  g_ptr_array_foreach (arena, free_value, NULL);
  g_ptr_array_free (arena, TRUE);
  g_ptr_array_set_size (lisp.texts, 0);
}
