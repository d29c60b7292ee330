/* engine.c -- the engine thread, its main context and the command queue.

   Every socket operation happens on one thread that runs its own
   GMainContext, pushed as that thread's thread-default context so that
   GResolver and GSource callbacks come back to it (never to the global
   default context, which belongs to whoever embeds us).  Other threads
   talk to it only through commands: a queue under cmd_lock and one custom
   GSource that runs the whole queue in order, so commands for a connection
   take effect in the order they were issued.  */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine-private.h"

typedef struct
{
  GSource base;
  NpEngine *engine;
} NpCommandSource;

/* What a caller waiting for its command to be done waits on.  */
typedef struct
{
  pthread_mutex_t lock;
  pthread_cond_t cond;
  gboolean done;
} NpDone;

typedef struct
{
  NpCommandType type;
  NpConn *conn;           /* owned reference, or NULL */
  gboolean flag;
  NpDone *done;           /* the waiter's, or NULL */
  NpSockopt option;       /* SET_OPTION: what to set ... */
  int *result;            /* ... and where its outcome goes */
} NpCommand;

/* How long np_engine_free waits for cancelled lookups to report back
   before it lets them go (they then leak their small state, not a
   socket).  */
#define NP_STOP_GRACE_US (2 * G_USEC_PER_SEC)

void
np_limits_init_default (NpLimits *limits)
{
  limits->read_size = 64 * 1024;
  limits->conn_in_high = 4 * 1024 * 1024;
  limits->conn_in_low = 1024 * 1024;
  limits->total_in_high = 32 * 1024 * 1024;
  limits->total_in_low = 16 * 1024 * 1024;
  limits->out_high = 1024 * 1024;
  limits->out_low = 256 * 1024;
  limits->drain_bytes = 4 * 1024 * 1024;
  limits->drain_events = 4096;
  limits->linger_ms = 30000;
}

/* Also releases a waiter: run or not (the engine stopping), the command
   is over.  */
static void
command_free (NpCommand *cmd)
{
  if (cmd->conn)
    np_conn_unref (cmd->conn);
  if (cmd->done)
    {
      pthread_mutex_lock (&cmd->done->lock);
      cmd->done->done = TRUE;
      pthread_cond_signal (&cmd->done->cond);
      pthread_mutex_unlock (&cmd->done->lock);
    }
  g_free (cmd);
}

static NpCommand *
command_new (NpCommandType type, NpConn *conn, gboolean flag, NpDone *done)
{
  NpCommand *cmd = g_new0 (NpCommand, 1);
  cmd->type = type;
  cmd->conn = conn ? np_conn_ref (conn) : NULL;
  cmd->flag = flag;
  cmd->done = done;
  return cmd;
}

/* Quiet commands (np__engine_post_quietly()) that may wait for the
   engine's next wake-up before one is forced: a loop that opens and
   closes connections without ever waiting would otherwise pile them up.  */
#define NP_QUIET_COMMANDS_MAX 64

/* Not GLib's own wake-up (g_source_set_ready_time()): that takes the
   context's lock, which the engine thread holds through most of each
   iteration, so posts from Emacs's thread would wait for it.  An eventfd
   write takes no lock of ours.  */
static void
write_wake (NpEngine *engine)
{
  static const guint64 one = 1;
  while (write (engine->cmd_wake_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

/* Posting never blocks beyond the short queue lock, so any thread may do
   it, including a finalizer running inside Emacs's garbage collection.  */
static void
submit (NpEngine *engine, NpCommand *cmd, gboolean wake)
{
  pthread_mutex_lock (&engine->cmd_lock);
  gboolean refused = engine->cmd_closed;
  /* One wake-up per batch the engine takes: the first command that asks
     for one since the last take writes, whatever quiet ones came
     before it.  */
  gboolean ring = FALSE;
  if (!refused)
    {
      g_queue_push_tail (&engine->commands, cmd);
      if (cmd->type == NP_CMD_STOP)
        engine->cmd_closed = TRUE;
      /* Quiet ones too, past a bound: each holds a connection's memory
         until the engine takes it.  */
      ring = !engine->cmd_rung
             && (wake || ++engine->cmd_quiet >= NP_QUIET_COMMANDS_MAX);
      if (ring)
        engine->cmd_rung = TRUE;
    }
  pthread_mutex_unlock (&engine->cmd_lock);

  if (refused)
    {
      command_free (cmd);
      return;
    }
  if (ring)
    write_wake (engine);
}

static void
post (NpEngine *engine, NpCommandType type, NpConn *conn, gboolean flag,
      NpDone *done)
{
  submit (engine, command_new (type, conn, flag, done), TRUE);
}

/* Submit CMD, whose DONE is the caller's, and return once the engine
   thread has run it (or refused it: the engine stopping).  */
static void
submit_and_wait (NpEngine *engine, NpCommand *cmd, NpDone *done)
{
  pthread_mutex_init (&done->lock, NULL);
  pthread_cond_init (&done->cond, NULL);
  done->done = FALSE;
  cmd->done = done;
  submit (engine, cmd, TRUE);
  pthread_mutex_lock (&done->lock);
  while (!done->done)
    pthread_cond_wait (&done->cond, &done->lock);
  pthread_mutex_unlock (&done->lock);
  pthread_cond_destroy (&done->cond);
  pthread_mutex_destroy (&done->lock);
}

void
np__engine_post (NpEngine *engine, NpCommandType type, NpConn *conn,
                 gboolean flag)
{
  post (engine, type, conn, flag, NULL);
}

/* Post without waking the engine thread: the command runs when anything
   else wakes it, a later command or a ready socket (the poller runs the
   queue first).  For work that can wait for that: a socket the caller
   has already put in the epoll set need not cost a thread switch.  */
void
np__engine_post_quietly (NpEngine *engine, NpCommandType type, NpConn *conn)
{
  submit (engine, command_new (type, conn, FALSE, NULL), FALSE);
}

/* Post, and return once the engine thread has run the command.  Never
   call it on the engine thread, nor while holding an engine lock.  The
   wait is short: the engine thread never waits for anyone.  */
void
np__engine_post_and_wait (NpEngine *engine, NpCommandType type,
                          NpConn *conn, gboolean flag)
{
  NpDone done;
  submit_and_wait (engine, command_new (type, conn, flag, NULL), &done);
}

/* np_conn_set_option(): the socket is the engine thread's, so the
   setsockopt runs there.  RESULT stays -1 when the command never ran or
   found no socket; the engine thread writes it before it signals DONE,
   whose lock orders the write before our read.  */
int
np__engine_set_option (NpEngine *engine, NpConn *conn,
                       const NpSockopt *option)
{
  int result = -1;
  NpDone done;
  NpCommand *cmd = command_new (NP_CMD_SET_OPTION, conn, FALSE, NULL);
  cmd->option = *option;
  cmd->result = &result;
  submit_and_wait (engine, cmd, &done);
  return result;
}

void
np__engine_register (NpEngine *engine, NpConn *conn)
{
  g_hash_table_add (engine->conns, np_conn_ref (conn));
  conn->registered = TRUE;
}

/* May drop the last reference: the caller must not touch CONN after.  */
void
np__engine_unregister (NpEngine *engine, NpConn *conn)
{
  if (!conn->registered)
    return;
  conn->registered = FALSE;
  g_hash_table_remove (engine->conns, conn);
  np_conn_unref (conn);
}

static void
engine_stop (NpEngine *engine)
{
  /* Aborting unregisters, so take a snapshot first.  */
  g_autoptr (GPtrArray) live = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init (&iter, engine->conns);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (live, key);
  for (guint i = 0; i < live->len; i++)
    np__stream_abort (g_ptr_array_index (live, i));
  g_main_loop_quit (engine->loop);
}

static void
run_command (NpEngine *engine, NpCommand *cmd)
{
  NpConn *conn = cmd->conn;

  /* Commands for a connection the engine has let go of (closed, failed,
     or never started) have nothing left to act on.  */
  if (conn && cmd->type != NP_CMD_CONNECT && cmd->type != NP_CMD_LISTEN
      && cmd->type != NP_CMD_ADOPT && !conn->registered)
    return;

  switch (cmd->type)
    {
    case NP_CMD_CONNECT:
      np__stream_start (conn);
      break;
    case NP_CMD_ADOPT:
      np__stream_adopt (conn);
      break;
    case NP_CMD_LISTEN:
      np__listen_start (conn);
      break;
    case NP_CMD_FLUSH:
      np__stream_flush (conn);
      break;
    case NP_CMD_SHUTDOWN_WRITE:
      np__stream_shutdown_write (conn);
      break;
    case NP_CMD_PAUSE:
      np__stream_set_paused (conn, cmd->flag);
      break;
    case NP_CMD_RESUME:
      np__stream_update_reading (conn);
      break;
    case NP_CMD_CLOSE:
      np__stream_close (conn);
      break;
    case NP_CMD_RING:
      np__channel_ring (engine, cmd->flag);
      break;
    case NP_CMD_SYNC:
      break;
    case NP_CMD_SET_OPTION:
      *cmd->result = np__sockopt_set_conn (conn, &cmd->option);
      break;
    case NP_CMD_STOP:
      engine_stop (engine);
      break;
    }
}

/* Engine thread: runs every command queued so far.  */
void
np__engine_run_commands (NpEngine *engine)
{
  GQueue batch = G_QUEUE_INIT;
  pthread_mutex_lock (&engine->cmd_lock);
  batch = engine->commands;
  g_queue_init (&engine->commands);
  engine->cmd_rung = FALSE;
  engine->cmd_quiet = 0;
  pthread_mutex_unlock (&engine->cmd_lock);

  NpCommand *cmd;
  while ((cmd = g_queue_pop_head (&batch)))
    {
      run_command (engine, cmd);
      command_free (cmd);
    }
}

static gboolean
cmd_source_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  (void) callback;
  (void) data;
  NpEngine *engine = ((NpCommandSource *) source)->engine;

  /* Reset before taking the queue: a post that lands after the swap
     finds the queue empty and writes again, so no command waits for a
     later one.  */
  guint64 count;
  while (read (engine->cmd_wake_fd, &count, sizeof count) < 0
         && errno == EINTR)
    ;
  np__engine_run_commands (engine);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs cmd_source_funcs = {
  .dispatch = cmd_source_dispatch,
};

static gboolean
wake_up (gpointer data)
{
  (void) data;
  return G_SOURCE_CONTINUE;
}

static gpointer
engine_thread (gpointer data)
{
  NpEngine *engine = data;

  g_main_context_push_thread_default (engine->context);
  engine->resolver = g_resolver_get_default ();

  g_main_loop_run (engine->loop);

  /* Cancelled lookups still call back once, into this context; their
     state (and a conn reference) is freed there.  A periodic wake-up
     bounds each iteration so the grace period is honoured.  */
  if (engine->pending_resolves > 0)
    {
      gint64 deadline = g_get_monotonic_time () + NP_STOP_GRACE_US;
      GSource *tick = g_timeout_source_new (20);
      g_source_set_callback (tick, wake_up, NULL, NULL);
      g_source_attach (tick, engine->context);
      while (engine->pending_resolves > 0
             && g_get_monotonic_time () < deadline)
        g_main_context_iteration (engine->context, TRUE);
      g_source_destroy (tick);
      g_source_unref (tick);
    }

  g_clear_object (&engine->resolver);
  g_main_context_pop_thread_default (engine->context);
  return NULL;
}

static gboolean
set_fd_flags (int fd, GError **error)
{
  int fl = fcntl (fd, F_GETFL);
  int fdfl = fcntl (fd, F_GETFD);
  if (fl < 0 || fdfl < 0
      || fcntl (fd, F_SETFL, fl | O_NONBLOCK) < 0
      || fcntl (fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
    {
      int err = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "wake descriptor %d: %s", fd, g_strerror (err));
      return FALSE;
    }
  return TRUE;
}

static void
engine_destroy (NpEngine *engine)
{
  /* Events may hold conn references; conns never point back into the
     engine once it is gone except through ->engine, which only the
     per-connection API uses and which is not called after free.  */
  np__channel_free_all (engine);

  NpCommand *cmd;
  while ((cmd = g_queue_pop_head (&engine->commands)))
    command_free (cmd);

  if (engine->cmd_source)
    {
      g_source_destroy (engine->cmd_source);
      g_source_unref (engine->cmd_source);
    }
  if (engine->cmd_wake_fd >= 0)
    close (engine->cmd_wake_fd);
  np__poller_free (engine);
  g_clear_pointer (&engine->loop, g_main_loop_unref);
  g_clear_pointer (&engine->context, g_main_context_unref);
  g_clear_pointer (&engine->conns, g_hash_table_unref);
  g_free (engine->scratch);
  g_free (engine->datagram_scratch);
  pthread_mutex_destroy (&engine->cmd_lock);
  pthread_mutex_destroy (&engine->event_lock);
  g_free (engine);
}

/* GLib initializes its translations and GIO's type classes lazily, the
   first time they are used.  Do it here, on the caller's thread, so the
   first connect does not pay for it: it takes the C library's locale
   locks and reads translation files, work that would otherwise stall
   every connection the engine thread serves at that moment.  */
static void
warm_up_glib (void)
{
  g_autoptr (GInetAddress) address
    = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GResolver) resolver = g_resolver_get_default ();
  g_autoptr (GError) error = NULL;
  g_set_error_literal (&error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND,
                       g_dgettext ("glib20", "Unknown error"));
  /* Made for what making them does; clang would call them unused.  */
  (void) address;
  (void) resolver;
}

NpEngine *
np_engine_new (int wake_fd, const NpLimits *limits, GError **error)
{
  if (!set_fd_flags (wake_fd, error))
    return NULL;

  np__fd_raise_limit ();
  warm_up_glib ();

  NpEngine *engine = g_new0 (NpEngine, 1);
  engine->wake_fd = wake_fd;
  engine->epoll_fd = -1;
  engine->cmd_wake_fd = -1;
  engine->spin_us = np__spin_default ();
  if (limits)
    engine->limits = *limits;
  else
    np_limits_init_default (&engine->limits);
  if (engine->limits.read_size == 0)
    engine->limits.read_size = 64 * 1024;
  if (engine->limits.drain_events == 0)
    engine->limits.drain_events = 1;
  if (engine->limits.total_in_high == 0)
    engine->limits.total_in_high = G_MAXSIZE;  /* no total bound */
  pthread_mutex_init (&engine->cmd_lock, NULL);
  pthread_mutex_init (&engine->event_lock, NULL);
  g_queue_init (&engine->commands);
  g_queue_init (&engine->events);
  g_queue_init (&engine->held_back);
  engine->conns = g_hash_table_new (NULL, NULL);
  engine->scratch = g_malloc (engine->limits.read_size);
  engine->next_accepted_id = NP_ACCEPTED_ID_BASE;

  engine->context = g_main_context_new ();
  engine->loop = g_main_loop_new (engine->context, FALSE);
  engine->cmd_source = g_source_new (&cmd_source_funcs,
                                     sizeof (NpCommandSource));
  ((NpCommandSource *) engine->cmd_source)->engine = engine;
  g_source_set_name (engine->cmd_source, "netproc commands");
  g_source_set_priority (engine->cmd_source, G_PRIORITY_HIGH);
  /* Not blocked around its dispatch, so GLib does not wake its own loop
     for it (see poller.c).  */
  g_source_set_can_recurse (engine->cmd_source, TRUE);
  int wake = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  engine->cmd_wake_fd = wake < 0 ? -1 : np__fd_place (wake);
  if (engine->cmd_wake_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES,
                   "eventfd: %s", g_strerror (wake < 0 ? errno : EMFILE));
      engine_destroy (engine);
      return NULL;
    }
  g_source_add_unix_fd (engine->cmd_source, engine->cmd_wake_fd, G_IO_IN);
  g_source_attach (engine->cmd_source, engine->context);
  if (!np__poller_init (engine, error))
    {
      engine_destroy (engine);
      return NULL;
    }

  /* The thread inherits our signal mask: start it with everything blocked
     so no signal meant for Emacs is ever delivered to it.  */
  sigset_t all, saved;
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &saved);
  engine->thread = g_thread_try_new ("netproc-engine", engine_thread, engine,
                                     error);
  pthread_sigmask (SIG_SETMASK, &saved, NULL);

  if (!engine->thread)
    {
      engine_destroy (engine);
      return NULL;
    }
  return engine;
}

void
np_engine_free (NpEngine *engine)
{
  if (!engine)
    return;
  np__engine_post (engine, NP_CMD_STOP, NULL, FALSE);
  g_thread_join (engine->thread);
  engine->thread = NULL;
  engine_destroy (engine);
}

void
np_engine_sync (NpEngine *engine)
{
  np__engine_post_and_wait (engine, NP_CMD_SYNC, NULL, FALSE);
}

void
np_engine_flush (NpEngine *engine)
{
  pthread_mutex_lock (&engine->cmd_lock);
  gboolean ring = !engine->cmd_rung && engine->cmd_quiet > 0
                  && !engine->cmd_closed;
  if (ring)
    engine->cmd_rung = TRUE;
  pthread_mutex_unlock (&engine->cmd_lock);
  if (ring)
    write_wake (engine);
}

void
np_engine_ring (NpEngine *engine)
{
  np__engine_post (engine, NP_CMD_RING, NULL, TRUE);
}
