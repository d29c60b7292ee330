/* fake-env.c -- an emacs_env without Emacs; see fake-env.h.

   What each function does when given the wrong thing is what Emacs
   28.2's emacs-module.c does: the signal and its data.  Two behaviours
   the binding relies on were checked against a real Emacs 28.2:
   copy_string_contents signals (wrong-type-argument unicode-string-p)
   for a string holding raw bytes, and make_string signals
   (wrong-type-argument utf-8-string-p) for bytes that are not UTF-8.  */

#define _GNU_SOURCE  /* pipe2 */

#include "fake-env.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static struct
{
  struct emacs_env_28 env;
  bool ready;
  pthread_t thread;
  GHashTable *functions;          /* name -> FUNCTION value, by defalias */
  enum emacs_funcall_exit exit;
  emacs_value exit_symbol, exit_data;
  int channel_read_fd;
} fake;

#define FAIL(...) fake_fail (__FILE__, __LINE__, __VA_ARGS__)

/* Non-local exits.  */

static void
check_thread (const char *what)
{
  if (!pthread_equal (pthread_self (), fake.thread))
    FAIL ("%s called off the main thread", what);
}

static void
signal_list (const char *symbol, size_t n, const emacs_value *items)
{
  if (fake.exit != emacs_funcall_exit_return)
    return;
  fake.exit = emacs_funcall_exit_signal;
  fake.exit_symbol = fake_symbol (symbol);
  fake.exit_data = fake_list (n, items);
}

static void
wrong_type (const char *predicate, emacs_value v)
{
  emacs_value items[2] = { fake_symbol (predicate), v };
  signal_list ("wrong-type-argument", 2, items);
}

bool
fake_pending (emacs_value *symbol, emacs_value *data)
{
  if (fake.exit == emacs_funcall_exit_return)
    return false;
  if (symbol)
    *symbol = fake.exit_symbol;
  if (data)
    *data = fake.exit_data;
  return true;
}

/* Every env function but those for non-local exits does nothing while
   one is pending, and returns its error value: as in Emacs.  */
#define BEGIN(name, error_value)                                        \
  do {                                                                  \
    check_thread (name);                                                \
    if (fake.exit != emacs_funcall_exit_return)                         \
      return error_value;                                               \
  } while (0)

static enum emacs_funcall_exit
env_non_local_exit_check (emacs_env *env)
{
  (void) env;
  check_thread ("non_local_exit_check");
  return fake.exit;
}

static void
env_non_local_exit_clear (emacs_env *env)
{
  (void) env;
  check_thread ("non_local_exit_clear");
  fake.exit = emacs_funcall_exit_return;
  fake.exit_symbol = fake.exit_data = NULL;
}

static enum emacs_funcall_exit
env_non_local_exit_get (emacs_env *env, emacs_value *symbol,
                        emacs_value *data)
{
  (void) env;
  check_thread ("non_local_exit_get");
  if (fake.exit != emacs_funcall_exit_return)
    {
      *symbol = fake.exit_symbol;
      *data = fake.exit_data;
    }
  return fake.exit;
}

static void
env_non_local_exit_signal (emacs_env *env, emacs_value symbol,
                           emacs_value data)
{
  (void) env;
  check_thread ("non_local_exit_signal");
  fake_check_value (symbol, "non_local_exit_signal symbol");
  fake_check_value (data, "non_local_exit_signal data");
  if (symbol->type != FAKE_SYMBOL)
    FAIL ("non_local_exit_signal: %s is no symbol", fake_repr (symbol));
  if (fake_list_length (data) < 0)
    FAIL ("non_local_exit_signal: data %s is no list", fake_repr (data));
  /* The first signal stands, as in Emacs.  */
  if (fake.exit != emacs_funcall_exit_return)
    return;
  fake.exit = emacs_funcall_exit_signal;
  fake.exit_symbol = symbol;
  fake.exit_data = data;
}

/* Types and conversions.  */

static emacs_value
env_intern (emacs_env *env, const char *name)
{
  (void) env;
  BEGIN ("intern", NULL);
  return fake_symbol (name);
}

static emacs_value
env_type_of (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("type_of", NULL);
  fake_check_value (v, "type_of");
  static const char *const names[] = {
    [FAKE_SYMBOL] = "symbol",
    [FAKE_FIXNUM] = "integer",
    [FAKE_BIGNUM] = "integer",
    [FAKE_FLOAT] = "float",
    [FAKE_STRING] = "string",
    [FAKE_VECTOR] = "vector",
    [FAKE_CONS] = "cons",
    [FAKE_USER_PTR] = "user-ptr",
    [FAKE_FUNCTION] = "module-function",
    [FAKE_PROCESS] = "process",
  };
  return fake_symbol (names[v->type]);
}

static bool
env_is_not_nil (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("is_not_nil", false);
  fake_check_value (v, "is_not_nil");
  return !fake_is_nil (v);
}

static bool
env_eq (emacs_env *env, emacs_value a, emacs_value b)
{
  (void) env;
  BEGIN ("eq", false);
  fake_check_value (a, "eq");
  fake_check_value (b, "eq");
  /* Fixnums are immediate in Emacs: equal ones are eq.  */
  if (a->type == FAKE_FIXNUM && b->type == FAKE_FIXNUM)
    return a->fixnum == b->fixnum;
  return a == b;
}

static intmax_t
env_extract_integer (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("extract_integer", 0);
  fake_check_value (v, "extract_integer");
  if (v->type == FAKE_BIGNUM)
    {
      signal_list ("overflow-error", 0, NULL);
      return 0;
    }
  if (v->type != FAKE_FIXNUM)
    {
      wrong_type ("integerp", v);
      return 0;
    }
  return v->fixnum;
}

static emacs_value
env_make_integer (emacs_env *env, intmax_t n)
{
  (void) env;
  BEGIN ("make_integer", NULL);
  return fake_fixnum (n);
}

static double
env_extract_float (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("extract_float", 0);
  fake_check_value (v, "extract_float");
  if (v->type != FAKE_FLOAT)
    {
      wrong_type ("floatp", v);
      return 0;
    }
  return v->d;
}

static emacs_value
env_make_float (emacs_env *env, double d)
{
  (void) env;
  BEGIN ("make_float", NULL);
  return fake_float (d);
}

/* Strings.  */

static bool
env_copy_string_contents (emacs_env *env, emacs_value v, char *buf,
                          ptrdiff_t *len)
{
  (void) env;
  BEGIN ("copy_string_contents", false);
  fake_check_value (v, "copy_string_contents");
  if (v->type != FAKE_STRING)
    {
      wrong_type ("stringp", v);
      return false;
    }
  if (v->str.kind == FAKE_MULTIBYTE_RAW)
    {
      wrong_type ("unicode-string-p", v);
      return false;
    }
  ptrdiff_t required = (ptrdiff_t) v->str.len + 1;
  if (!buf)
    {
      *len = required;
      return true;
    }
  if (*len < required)
    {
      emacs_value items[3] = {
        fake_fixnum (*len), fake_fixnum (required), fake_fixnum (PTRDIFF_MAX),
      };
      *len = required;
      signal_list ("args-out-of-range", 3, items);
      return false;
    }
  *len = required;
  memcpy (buf, v->str.bytes, (size_t) required);
  return true;
}

/* Valid UTF-8, NUL bytes included, as Emacs takes it.  */
static bool
utf8_valid (const char *s, ptrdiff_t len)
{
  const char *end = s + len;
  while (s < end)
    {
      const char *nul = memchr (s, '\0', (size_t) (end - s));
      const char *stop = nul ? nul : end;
      if (!g_utf8_validate_len (s, (gsize) (stop - s), NULL))
        return false;
      s = nul ? nul + 1 : end;
    }
  return true;
}

static emacs_value
env_make_string (emacs_env *env, const char *str, ptrdiff_t len)
{
  (void) env;
  BEGIN ("make_string", NULL);
  if (len < 0)
    {
      signal_list ("overflow-error", 0, NULL);
      return NULL;
    }
  if (len > 0 && !str)
    FAIL ("make_string: NULL with length %td", len);
  if (!utf8_valid (str, len))
    {
      wrong_type ("utf-8-string-p", fake_string (str, (size_t) len,
                                                 FAKE_UNIBYTE));
      return NULL;
    }
  bool ascii = true;
  for (ptrdiff_t i = 0; i < len; i++)
    ascii = ascii && (guint8) str[i] < 0x80;
  return fake_string (str, (size_t) len, ascii ? FAKE_UNIBYTE
                                               : FAKE_MULTIBYTE);
}

static emacs_value
env_make_unibyte_string (emacs_env *env, const char *str, ptrdiff_t len)
{
  (void) env;
  BEGIN ("make_unibyte_string", NULL);
  if (len < 0)
    {
      signal_list ("overflow-error", 0, NULL);
      return NULL;
    }
  if (len > 0 && !str)
    FAIL ("make_unibyte_string: NULL with length %td", len);
  return fake_string (str, (size_t) len, FAKE_UNIBYTE);
}

/* Vectors.  */

static bool
check_vector_index (emacs_value v, ptrdiff_t i)
{
  if (v->type != FAKE_VECTOR)
    {
      wrong_type ("vectorp", v);
      return false;
    }
  if (i < 0 || (size_t) i >= v->vec.n)
    {
      emacs_value items[2] = { v, fake_fixnum (i) };
      signal_list ("args-out-of-range", 2, items);
      return false;
    }
  return true;
}

static emacs_value
env_vec_get (emacs_env *env, emacs_value v, ptrdiff_t i)
{
  (void) env;
  BEGIN ("vec_get", NULL);
  fake_check_value (v, "vec_get");
  return check_vector_index (v, i) ? v->vec.items[i] : NULL;
}

static ptrdiff_t
env_vec_size (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("vec_size", 0);
  fake_check_value (v, "vec_size");
  if (v->type != FAKE_VECTOR)
    {
      wrong_type ("vectorp", v);
      return 0;
    }
  return (ptrdiff_t) v->vec.n;
}

/* User pointers.  */

static emacs_value
env_make_user_ptr (emacs_env *env, void (*fin) (void *), void *ptr)
{
  (void) env;
  BEGIN ("make_user_ptr", NULL);
  return fake_user_ptr (fin, ptr);
}

static void *
env_get_user_ptr (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("get_user_ptr", NULL);
  fake_check_value (v, "get_user_ptr");
  if (v->type != FAKE_USER_PTR)
    {
      wrong_type ("user-ptrp", v);
      return NULL;
    }
  return v->uptr.ptr;
}

static void
(*env_get_user_finalizer (emacs_env *env, emacs_value v)) (void *)
{
  (void) env;
  BEGIN ("get_user_finalizer", NULL);
  fake_check_value (v, "get_user_finalizer");
  if (v->type != FAKE_USER_PTR)
    {
      wrong_type ("user-ptrp", v);
      return NULL;
    }
  return v->uptr.fin;
}

/* References, functions, channels.  */

static emacs_value
env_make_global_ref (emacs_env *env, emacs_value v)
{
  (void) env;
  BEGIN ("make_global_ref", NULL);
  fake_check_value (v, "make_global_ref");
  /* Symbols are kept for good already; the binding keeps nothing else,
     and a reference to anything else would need counting.  */
  if (v->type != FAKE_SYMBOL)
    FAIL ("make_global_ref of %s: only symbols are implemented",
          fake_repr (v));
  return v;
}

static emacs_value
env_make_function (emacs_env *env, ptrdiff_t min, ptrdiff_t max,
                   FakeModuleFn fn, const char *doc, void *data)
{
  (void) env;
  (void) doc;
  BEGIN ("make_function", NULL);
  return fake_function (fn, min, max, data);
}

/* The Lisp functions the binding funcalls.  */
static emacs_value
call_builtin (const char *name, ptrdiff_t nargs, emacs_value *args)
{
#define ARITY(n)                                                        \
  if (nargs != (n))                                                     \
    FAIL ("funcall of %s with %td arguments", name, nargs)
  if (strcmp (name, "car") == 0 || strcmp (name, "cdr") == 0)
    {
      ARITY (1);
      if (fake_is_nil (args[0]))
        return args[0];
      if (args[0]->type != FAKE_CONS)
        {
          wrong_type ("listp", args[0]);
          return NULL;
        }
      return name[1] == 'a' ? args[0]->cons.car : args[0]->cons.cdr;
    }
  if (strcmp (name, "cons") == 0)
    {
      ARITY (2);
      return fake_cons (args[0], args[1]);
    }
  if (strcmp (name, "list") == 0)
    return fake_list ((size_t) nargs, args);
  if (strcmp (name, "vector") == 0)
    return fake_vector ((size_t) nargs, args);
  if (strcmp (name, "multibyte-string-p") == 0)
    {
      ARITY (1);
      return args[0]->type == FAKE_STRING
             && args[0]->str.kind != FAKE_UNIBYTE ? fake_t () : fake_nil ();
    }
  if (strcmp (name, "defalias") == 0)
    {
      ARITY (2);
      if (args[0]->type != FAKE_SYMBOL || args[1]->type != FAKE_FUNCTION)
        FAIL ("defalias of %s to %s", fake_repr (args[0]),
              fake_repr (args[1]));
      fake_keep (args[1]);
      g_hash_table_insert (fake.functions, args[0]->name, args[1]);
      return args[0];
    }
#undef ARITY
  FAIL ("funcall of %s: not implemented in the fake env", name);
}

static emacs_value
env_funcall (emacs_env *env, emacs_value f, ptrdiff_t nargs,
             emacs_value *args)
{
  (void) env;
  BEGIN ("funcall", NULL);
  fake_check_value (f, "funcall");
  if (nargs < 0 || (nargs > 0 && !args))
    FAIL ("funcall with %td arguments at %p", nargs, (void *) args);
  for (ptrdiff_t i = 0; i < nargs; i++)
    fake_check_value (args[i], "funcall argument");
  if (f->type == FAKE_FUNCTION)
    return fake_function_call (&fake.env, f, "a module function", nargs, args);
  if (f->type != FAKE_SYMBOL)
    FAIL ("funcall of %s", fake_repr (f));
  emacs_value defined = g_hash_table_lookup (fake.functions, f->name);
  if (defined)
    return fake_function_call (&fake.env, defined, f->name, nargs, args);
  return call_builtin (f->name, nargs, args);
}

static int
env_open_channel (emacs_env *env, emacs_value process)
{
  (void) env;
  BEGIN ("open_channel", -1);
  fake_check_value (process, "open_channel");
  if (process->type != FAKE_PROCESS)
    {
      wrong_type ("processp", process);
      return -1;
    }
  /* Emacs hands over a descriptor of its own for the pipe process's
     input; the read end stands for the process.  */
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    FAIL ("pipe2: %s", g_strerror (errno));
  if (fake.channel_read_fd >= 0)
    close (fake.channel_read_fd);
  fake.channel_read_fd = fds[0];
  return fds[1];
}

int
fake_channel_read_fd (void)
{
  return fake.channel_read_fd;
}

/* What the binding does not call: each says so and aborts.  */

#define UNIMPLEMENTED(name)                                             \
  FAIL ("env->" name " is not implemented in the fake env")

static void
env_free_global_ref (emacs_env *env, emacs_value v)
{
  (void) env; (void) v;
  UNIMPLEMENTED ("free_global_ref");
}

static void
env_non_local_exit_throw (emacs_env *env, emacs_value tag, emacs_value v)
{
  (void) env; (void) tag; (void) v;
  UNIMPLEMENTED ("non_local_exit_throw");
}

static void
env_set_user_ptr (emacs_env *env, emacs_value v, void *ptr)
{
  (void) env; (void) v; (void) ptr;
  UNIMPLEMENTED ("set_user_ptr");
}

static void
env_set_user_finalizer (emacs_env *env, emacs_value v, void (*fin) (void *))
{
  (void) env; (void) v; (void) fin;
  UNIMPLEMENTED ("set_user_finalizer");
}

static void
env_vec_set (emacs_env *env, emacs_value vec, ptrdiff_t i, emacs_value v)
{
  (void) env; (void) vec; (void) i; (void) v;
  UNIMPLEMENTED ("vec_set");
}

static bool
env_should_quit (emacs_env *env)
{
  (void) env;
  UNIMPLEMENTED ("should_quit");
}

static enum emacs_process_input_result
env_process_input (emacs_env *env)
{
  (void) env;
  UNIMPLEMENTED ("process_input");
}

static struct timespec
env_extract_time (emacs_env *env, emacs_value v)
{
  (void) env; (void) v;
  UNIMPLEMENTED ("extract_time");
}

static emacs_value
env_make_time (emacs_env *env, struct timespec t)
{
  (void) env; (void) t;
  UNIMPLEMENTED ("make_time");
}

static bool
env_extract_big_integer (emacs_env *env, emacs_value v, int *sign,
                         ptrdiff_t *count, emacs_limb_t *magnitude)
{
  (void) env; (void) v; (void) sign; (void) count; (void) magnitude;
  UNIMPLEMENTED ("extract_big_integer");
}

static emacs_value
env_make_big_integer (emacs_env *env, int sign, ptrdiff_t count,
                      const emacs_limb_t *magnitude)
{
  (void) env; (void) sign; (void) count; (void) magnitude;
  UNIMPLEMENTED ("make_big_integer");
}

static void
(*env_get_function_finalizer (emacs_env *env, emacs_value f)) (void *)
{
  (void) env; (void) f;
  UNIMPLEMENTED ("get_function_finalizer");
}

static void
env_set_function_finalizer (emacs_env *env, emacs_value f,
                            void (*fin) (void *))
{
  (void) env; (void) f; (void) fin;
  UNIMPLEMENTED ("set_function_finalizer");
}

static void
env_make_interactive (emacs_env *env, emacs_value f, emacs_value spec)
{
  (void) env; (void) f; (void) spec;
  UNIMPLEMENTED ("make_interactive");
}

/* Loading.  */

int emacs_module_init (struct emacs_runtime *runtime);

static emacs_env *
runtime_get_environment (struct emacs_runtime *runtime)
{
  (void) runtime;
  return &fake.env;
}

static void
load_module (void)
{
  struct emacs_runtime runtime = {
    .size = sizeof runtime,
    .get_environment = runtime_get_environment,
  };
  int status = emacs_module_init (&runtime);
  if (status != 0)
    FAIL ("emacs_module_init returned %d", status);
  if (fake.exit != emacs_funcall_exit_return)
    FAIL ("emacs_module_init left a non-local exit");
}

emacs_env *
fake_env (void)
{
  if (fake.ready)
    return &fake.env;
  fake.ready = true;
  fake.thread = pthread_self ();
  fake.functions = g_hash_table_new (g_str_hash, g_str_equal);
  fake.channel_read_fd = -1;

  struct emacs_env_28 *env = &fake.env;
  env->size = sizeof *env;
  env->make_global_ref = env_make_global_ref;
  env->free_global_ref = env_free_global_ref;
  env->non_local_exit_check = env_non_local_exit_check;
  env->non_local_exit_clear = env_non_local_exit_clear;
  env->non_local_exit_get = env_non_local_exit_get;
  env->non_local_exit_signal = env_non_local_exit_signal;
  env->non_local_exit_throw = env_non_local_exit_throw;
  env->make_function = env_make_function;
  env->funcall = env_funcall;
  env->intern = env_intern;
  env->type_of = env_type_of;
  env->is_not_nil = env_is_not_nil;
  env->eq = env_eq;
  env->extract_integer = env_extract_integer;
  env->make_integer = env_make_integer;
  env->extract_float = env_extract_float;
  env->make_float = env_make_float;
  env->copy_string_contents = env_copy_string_contents;
  env->make_string = env_make_string;
  env->make_user_ptr = env_make_user_ptr;
  env->get_user_ptr = env_get_user_ptr;
  env->set_user_ptr = env_set_user_ptr;
  env->get_user_finalizer = env_get_user_finalizer;
  env->set_user_finalizer = env_set_user_finalizer;
  env->vec_get = env_vec_get;
  env->vec_set = env_vec_set;
  env->vec_size = env_vec_size;
  env->should_quit = env_should_quit;
  env->process_input = env_process_input;
  env->extract_time = env_extract_time;
  env->make_time = env_make_time;
  env->extract_big_integer = env_extract_big_integer;
  env->make_big_integer = env_make_big_integer;
  env->get_function_finalizer = env_get_function_finalizer;
  env->set_function_finalizer = env_set_function_finalizer;
  env->open_channel = env_open_channel;
  env->make_interactive = env_make_interactive;
  env->make_unibyte_string = env_make_unibyte_string;

  load_module ();
  fake_env_reset ();
  return &fake.env;
}

void
fake_env_reset (void)
{
  fake.exit = emacs_funcall_exit_return;
  fake.exit_symbol = fake.exit_data = NULL;
  fake_collect ();
}

GPtrArray *
fake_function_names (void)
{
  fake_env ();
  GPtrArray *names = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer name;
  g_hash_table_iter_init (&iter, fake.functions);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    g_ptr_array_add (names, name);
  return names;
}

emacs_value
fake_call (const char *name, ptrdiff_t nargs, emacs_value *args,
           emacs_value *signal, emacs_value *data)
{
  fake_env ();
  if (fake.exit != emacs_funcall_exit_return)
    FAIL ("fake_call of %s with a non-local exit pending", name);
  emacs_value f = g_hash_table_lookup (fake.functions, name);
  if (!f)
    FAIL ("no module function %s", name);
  for (ptrdiff_t i = 0; i < nargs; i++)
    fake_check_value (args[i], name);
  emacs_value result = fake_function_call (&fake.env, f, name, nargs, args);
  *signal = *data = NULL;
  if (fake.exit != emacs_funcall_exit_return)
    {
      *signal = fake.exit_symbol;
      *data = fake.exit_data;
      fake.exit = emacs_funcall_exit_return;
      fake.exit_symbol = fake.exit_data = NULL;
      return NULL;
    }
  fake_check_value (result, name);
  return result;
}
