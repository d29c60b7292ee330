/* test-resolver.c -- a test hook: a resolver that stalls or fails.

   Not a feature.  np_engine_set_resolver() makes the engine look names
   up with an NpTestResolver instead of GIO's default resolver, so that
   tests meet, at once and without a packet leaving the machine, what
   the world gives rarely and slowly:

   - STALL: a name server that never answers.  A lookup ends only when
     it is cancelled (a deleted or quit connect), as a real one does.
   - FAIL: a name server that answers every name with an error: the
     GResolverError asked for, worded as GLib's own resolver words it,
     "Error resolving “HOST”: MESSAGE", MESSAGE being what gai_strerror()
     would say ("Name or service not known").

   GLib answers numeric addresses and "localhost" itself, before any
   resolver is asked: those still connect.  */

#include "engine-private.h"

#define NP_TYPE_TEST_RESOLVER (np__test_resolver_get_type ())
G_DECLARE_FINAL_TYPE (NpTestResolver, np__test_resolver, NP, TEST_RESOLVER,
                      GResolver)

struct _NpTestResolver
{
  GResolver parent_instance;
  NpResolverMode mode;          /* NP_RESOLVER_STALL or NP_RESOLVER_FAIL */
  GResolverError code;          /* for FAIL */
  char *message;
};

G_DEFINE_TYPE (NpTestResolver, np__test_resolver, G_TYPE_RESOLVER)

static GError *
failure (NpTestResolver *self, const char *hostname)
{
  return g_error_new (G_RESOLVER_ERROR, self->code,
                      "Error resolving “%s”: %s", hostname, self->message);
}

/* A stalled lookup's cancellable fired: the task ends with
   G_IO_ERROR_CANCELLED, in the context the lookup was started from.  */
static gboolean
on_cancelled (GCancellable *cancellable, gpointer data)
{
  (void) cancellable;
  g_task_return_error_if_cancelled (G_TASK (data));
  return G_SOURCE_REMOVE;
}

static void
lookup_async (GResolver *resolver, const char *hostname,
              GResolverNameLookupFlags flags, GCancellable *cancellable,
              GAsyncReadyCallback callback, gpointer data)
{
  (void) flags;
  NpTestResolver *self = NP_TEST_RESOLVER (resolver);
  g_autoptr (GTask) task = g_task_new (resolver, cancellable, callback, data);
  g_task_set_source_tag (task, lookup_async);

  if (self->mode == NP_RESOLVER_FAIL)
    {
      /* GTask defers the callback to a later iteration: the caller is
         never re-entered.  */
      g_task_return_error (task, failure (self, hostname));
      return;
    }
  /* Without a cancellable, nothing can end the lookup: it stalls for
     ever, holding its task.  The engine always passes one.  */
  if (!cancellable)
    {
      g_steal_pointer (&task);
      return;
    }
  /* The source holds the task until it fires.  */
  g_autoptr (GSource) source = g_cancellable_source_new (cancellable);
  g_task_attach_source (task, source, G_SOURCE_FUNC (on_cancelled));
}

static void
lookup_by_name_async (GResolver *resolver, const char *hostname,
                      GCancellable *cancellable, GAsyncReadyCallback callback,
                      gpointer data)
{
  lookup_async (resolver, hostname, G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT,
                cancellable, callback, data);
}

static GList *
lookup_finish (GResolver *resolver, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, resolver), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Nothing in the engine looks names up synchronously; a synchronous
   STALL would block its caller for ever, so it is refused instead.  */
static GList *
lookup_with_flags (GResolver *resolver, const char *hostname,
                   GResolverNameLookupFlags flags, GCancellable *cancellable,
                   GError **error)
{
  (void) flags;
  (void) cancellable;
  NpTestResolver *self = NP_TEST_RESOLVER (resolver);
  if (self->mode == NP_RESOLVER_FAIL)
    g_propagate_error (error, failure (self, hostname));
  else
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                         "The stalling test resolver answers only "
                         "asynchronous lookups");
  return NULL;
}

static GList *
lookup_by_name (GResolver *resolver, const char *hostname,
                GCancellable *cancellable, GError **error)
{
  return lookup_with_flags (resolver, hostname,
                            G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT, cancellable,
                            error);
}

static void
np__test_resolver_finalize (GObject *object)
{
  g_free (NP_TEST_RESOLVER (object)->message);
  G_OBJECT_CLASS (np__test_resolver_parent_class)->finalize (object);
}

static void
np__test_resolver_class_init (NpTestResolverClass *klass)
{
  GResolverClass *resolver_class = G_RESOLVER_CLASS (klass);
  G_OBJECT_CLASS (klass)->finalize = np__test_resolver_finalize;
  resolver_class->lookup_by_name = lookup_by_name;
  resolver_class->lookup_by_name_async = lookup_by_name_async;
  resolver_class->lookup_by_name_finish = lookup_finish;
  resolver_class->lookup_by_name_with_flags = lookup_with_flags;
  resolver_class->lookup_by_name_with_flags_async = lookup_async;
  resolver_class->lookup_by_name_with_flags_finish = lookup_finish;
}

static void
np__test_resolver_init (NpTestResolver *self)
{
  (void) self;
}

/* Switching, on the engine thread, which alone uses engine->resolver.  */

typedef struct
{
  NpEngine *engine;
  GResolver *resolver;          /* owned; NULL for GIO's default */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  gboolean done;
} NpSwitch;

static gboolean
switch_resolver (gpointer data)
{
  NpSwitch *sw = data;
  /* The lock orders this thread's reading of SW after the caller's
     filling it, for ThreadSanitizer too, which cannot see GLib's own.  */
  pthread_mutex_lock (&sw->lock);
  g_clear_object (&sw->engine->resolver);
  sw->engine->resolver = sw->resolver ? g_steal_pointer (&sw->resolver)
                                      : g_resolver_get_default ();
  sw->done = TRUE;
  pthread_cond_signal (&sw->cond);
  pthread_mutex_unlock (&sw->lock);
  return G_SOURCE_REMOVE;
}

void
np_engine_set_resolver (NpEngine *engine, NpResolverMode mode,
                        NpResolveError code, const char *message)
{
  NpSwitch sw = { .engine = engine };
  if (mode != NP_RESOLVER_SYSTEM)
    {
      NpTestResolver *resolver = g_object_new (NP_TYPE_TEST_RESOLVER, NULL);
      resolver->mode = mode;
      resolver->code = code == NP_RESOLVE_TEMPORARY_FAILURE
                       ? G_RESOLVER_ERROR_TEMPORARY_FAILURE
                       : code == NP_RESOLVE_INTERNAL ? G_RESOLVER_ERROR_INTERNAL
                       : G_RESOLVER_ERROR_NOT_FOUND;
      resolver->message = g_strdup (message ? message
                                    : "Name or service not known");
      sw.resolver = G_RESOLVER (resolver);
    }
  pthread_mutex_init (&sw.lock, NULL);
  pthread_cond_init (&sw.cond, NULL);
  /* Through GLib rather than the command queue, so that a hook for
     tests costs the engine's own code nothing.  The engine thread owns
     its context, so this always queues an idle source there.  */
  pthread_mutex_lock (&sw.lock);
  g_main_context_invoke_full (engine->context, G_PRIORITY_HIGH,
                              switch_resolver, &sw, NULL);
  while (!sw.done)
    pthread_cond_wait (&sw.cond, &sw.lock);
  pthread_mutex_unlock (&sw.lock);
  pthread_cond_destroy (&sw.cond);
  pthread_mutex_destroy (&sw.lock);
}
