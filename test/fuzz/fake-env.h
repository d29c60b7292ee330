/* fake-env.h -- an emacs_env without Emacs, for the fuzz targets.

   The binding's functions take an emacs_env.  This one implements the
   env functions the binding calls, over the values of fake-lisp.h, with
   the behaviour Emacs 28.2 has (checked against it): the same signals
   for the same misuse, and no env function doing anything while a
   non-local exit is pending.  Any env function the binding does not
   call, and any function it funcalls that is not implemented here,
   aborts with its name: a new call in the binding must be added here
   knowingly.  A NULL value where no non-local exit is pending (the
   result of a failed call, used) aborts too, as does an env call from
   any thread but the one that loaded the module.  */

#ifndef NETPROC_FAKE_ENV_H
#define NETPROC_FAKE_ENV_H

#include "fake-lisp.h"

/* The env, and the module loaded into it (once): emacs_module_init run,
   its functions registered by name.  */
emacs_env *fake_env (void);
/* Collect (fake_collect) and clear any pending non-local exit.  */
void fake_env_reset (void);
/* Call the module function NAME as Lisp would: ARGS checked against its
   arity, a non-local exit it leaves turned into *SIGNAL and *DATA (NULL
   when it returned normally) and cleared.  Returns its value, NULL
   after a non-local exit.  */
emacs_value fake_call (const char *name, ptrdiff_t nargs, emacs_value *args,
                       emacs_value *signal, emacs_value *data);

/* The names of the module's functions, to g_ptr_array_unref.  */
GPtrArray *fake_function_names (void);

/* The pending non-local exit: its symbol and data, or false.  */
bool fake_pending (emacs_value *symbol, emacs_value *data);
/* The read end of the pipe whose write end the last open_channel gave.  */
int fake_channel_read_fd (void);

#endif /* NETPROC_FAKE_ENV_H */
