/* fake-lisp.h -- Lisp values without Emacs, for the fake env.

   Values are made by the fuzz targets (lisp-gen.c) and by the fake env
   (fake-env.c) for the module, and live until fake_collect(), which
   plays garbage collection: it frees every value made since, running
   user-pointer finalizers.  Symbols are interned for good, and so they
   outlive every collection, as do values given to fake_keep().  */

#ifndef NETPROC_FAKE_LISP_H
#define NETPROC_FAKE_LISP_H

#include <emacs-module.h>
#include <glib.h>
#include <stdbool.h>

typedef enum
{
  FAKE_SYMBOL,
  FAKE_FIXNUM,
  FAKE_BIGNUM,            /* an integer outside intmax_t */
  FAKE_FLOAT,
  FAKE_STRING,
  FAKE_VECTOR,
  FAKE_CONS,
  FAKE_USER_PTR,
  FAKE_FUNCTION,
  FAKE_PROCESS,
} FakeType;

typedef enum
{
  FAKE_UNIBYTE,           /* bytes */
  FAKE_MULTIBYTE,         /* text: the bytes are its UTF-8 */
  /* Text with raw bytes (eight-bit characters) in it: Emacs refuses to
     copy it out as UTF-8.  The bytes stand for the raw bytes.  */
  FAKE_MULTIBYTE_RAW,
} FakeStringKind;

typedef emacs_value (*FakeModuleFn) (emacs_env *, ptrdiff_t, emacs_value *,
                                     void *);

/* The representation.  fake-env.c reads it; the fuzz targets go
   through the functions below, which check what they read.  */
struct emacs_value_tag
{
  guint32 magic;
  FakeType type;
  bool kept;
  union
  {
    char *name;                                         /* SYMBOL */
    intmax_t fixnum;
    int sign;                                           /* BIGNUM */
    double d;
    struct { guint8 *bytes; size_t len; FakeStringKind kind; } str;
    struct { emacs_value *items; size_t n; } vec;
    struct { emacs_value car, cdr; } cons;
    struct { void (*fin) (void *); void *ptr; } uptr;
    struct { FakeModuleFn fn; ptrdiff_t min, max; void *data; } fun;
  };
};

/* Making values.  */
emacs_value fake_nil (void);
emacs_value fake_t (void);
emacs_value fake_symbol (const char *name);
emacs_value fake_fixnum (intmax_t n);
emacs_value fake_bignum (int sign);
emacs_value fake_float (double d);
emacs_value fake_string (const void *bytes, size_t len, FakeStringKind kind);
emacs_value fake_vector (size_t n, const emacs_value *items);
emacs_value fake_cons (emacs_value car, emacs_value cdr);
emacs_value fake_list (size_t n, const emacs_value *items);
emacs_value fake_user_ptr (void (*fin) (void *), void *ptr);
emacs_value fake_process (void);
/* A module function, as make_function makes one.  */
emacs_value fake_function (FakeModuleFn fn, ptrdiff_t min, ptrdiff_t max,
                           void *data);
/* Call F, a module function, in ENV; its arity is checked (NAME says
   which, when it is not).  */
emacs_value fake_function_call (emacs_env *env, emacs_value f,
                                const char *name, ptrdiff_t nargs,
                                emacs_value *args);

/* Looking at values.  Each aborts when V is not of the type it reads.  */
FakeType fake_type (emacs_value v);
bool fake_is_nil (emacs_value v);
bool fake_is_symbol (emacs_value v, const char *name);
intmax_t fake_fixnum_value (emacs_value v);
const guint8 *fake_string_bytes (emacs_value v, size_t *len);
FakeStringKind fake_string_kind (emacs_value v);
size_t fake_vector_size (emacs_value v);
emacs_value fake_vector_ref (emacs_value v, size_t i);
emacs_value fake_car (emacs_value v);
emacs_value fake_cdr (emacs_value v);
/* The length of the proper list V, or -1.  */
ptrdiff_t fake_list_length (emacs_value v);
emacs_value fake_nth (emacs_value list, size_t n);
void (*fake_user_finalizer (emacs_value v)) (void *);
/* Structural equality, as `equal' (strings: same kind and bytes).  */
bool fake_equal (emacs_value a, emacs_value b);
/* V printed, for messages; freed at the next reset.  */
const char *fake_repr (emacs_value v);

/* Abort, saying WHAT, unless V is a live value.  */
void fake_check_value (emacs_value v, const char *what);
/* V, and what it holds, survive collections from now on.  */
void fake_keep (emacs_value v);
/* Free every value made since the last collection but those kept.  */
void fake_collect (void);

/* Say what went wrong and abort.  */
void fake_fail (const char *file, int line, const char *fmt, ...)
  __attribute__ ((noreturn)) G_GNUC_PRINTF (3, 4);

#endif /* NETPROC_FAKE_LISP_H */
