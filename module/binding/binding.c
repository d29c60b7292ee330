/* binding.c -- the only place where Lisp and the engine meet.

   Every function here runs on Emacs's main thread, called from Lisp.  The
   engine never calls back: it queues events and rings the channel, a pipe
   process whose filter calls `netproc--drain'.  Arguments are checked here
   again even though lisp/ checks them first, because a wrong pointer or an
   unchecked length would take the whole editor down.  */

#include "binding.h"
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Built with -fvisibility=hidden: these two are all Emacs may see.  */
#define NP_EXPORT __attribute__ ((visibility ("default")))

NP_EXPORT int plugin_is_GPL_compatible;

NpSyms np_sym;

static NpEngine *engine;
static int channel_fd = -1;
static NpLimits limits;
static NpEvent **drain_buffer;
/* What one direct read takes.  */
static guint8 direct_buffer[64 * 1024];

/* Helpers for signalling.  */

bool
np_pending (emacs_env *env)
{
  return env->non_local_exit_check (env) != emacs_funcall_exit_return;
}

emacs_value
np_error (emacs_env *env, const char *message)
{
  emacs_value text = env->make_string (env, message, strlen (message));
  emacs_value data = env->funcall (env, np_sym.list, 1, &text);
  env->non_local_exit_signal (env, np_sym.error, data);
  return np_sym.nil;
}

emacs_value
np_wrong_type (emacs_env *env, emacs_value predicate, emacs_value value)
{
  emacs_value items[2] = { predicate, value };
  emacs_value data = env->funcall (env, np_sym.list, 2, items);
  env->non_local_exit_signal (env, np_sym.wrong_type_argument, data);
  return np_sym.nil;
}

static bool
is_type (emacs_env *env, emacs_value v, emacs_value type)
{
  return env->eq (env, env->type_of (env, v), type);
}

/* A string argument as a NUL-terminated C string (g_free it), or NULL with
   wrong-type-argument signalled.  */
static char *
string_arg (emacs_env *env, emacs_value v, ptrdiff_t *len_out)
{
  if (!is_type (env, v, np_sym.type_string))
    {
      np_wrong_type (env, np_sym.stringp, v);
      return NULL;
    }
  ptrdiff_t size = 0;
  if (!env->copy_string_contents (env, v, NULL, &size))
    return NULL;
  char *buf = g_malloc (size);
  if (!env->copy_string_contents (env, v, buf, &size))
    {
      g_free (buf);
      return NULL;
    }
  if (len_out)
    *len_out = size - 1;
  return buf;
}

static bool
integer_arg (emacs_env *env, emacs_value v, intmax_t *out)
{
  if (!is_type (env, v, np_sym.type_integer))
    {
      np_wrong_type (env, np_sym.integerp, v);
      return false;
    }
  *out = env->extract_integer (env, v);
  return !np_pending (env);
}

static bool
engine_running (emacs_env *env)
{
  if (engine)
    return true;
  np_error (env, "netproc's engine is not running");
  return false;
}

/* Connection handles: user pointers that only this finalizer owns, so a
   foreign user pointer is never taken for a connection.  A handle records
   the engine generation it was made in: a connection of an engine that
   was stopped (the user deleted the channel, or Emacs is exiting) must
   never reach the engine's functions again, since that engine is gone.
   Finalizers run inside garbage collection: dropping a reference is all
   they may do.  */

typedef struct
{
  NpConn *conn;
  unsigned generation;
} NpHandle;

static unsigned generation;

static void
handle_finalize (void *ptr) EMACS_NOEXCEPT
{
  NpHandle *handle = ptr;
  np_conn_unref (handle->conn);
  g_free (handle);
}

emacs_value
np_make_handle (emacs_env *env, NpConn *conn)
{
  NpHandle *handle = g_new (NpHandle, 1);
  handle->conn = conn;
  handle->generation = generation;
  return env->make_user_ptr (env, handle_finalize, handle);
}

/* The connection of handle V, or NULL: with wrong-type-argument signalled
   when V is not a handle, silently when its engine is gone.  */
NpConn *
np_conn_arg (emacs_env *env, emacs_value v)
{
  if (!is_type (env, v, np_sym.type_user_ptr)
      || env->get_user_finalizer (env, v) != handle_finalize)
    {
      np_wrong_type (env, np_sym.user_ptrp, v);
      return NULL;
    }
  NpHandle *handle = env->get_user_ptr (env, v);
  if (!engine || handle->generation != generation)
    return NULL;
  return handle->conn;
}

/* Engine lifecycle.  */

static emacs_value
Fstart (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  if (engine)
    return np_sym.t;

  int fd = env->open_channel (env, args[0]);
  if (np_pending (env))
    return np_sym.nil;

  np_limits_init_default (&limits);
  g_autoptr (GError) error = NULL;
  engine = np_engine_new (fd, &limits, &error);
  if (!engine)
    {
      close (fd);
      return np_error (env, error->message);
    }
  channel_fd = fd;
  generation++;
  drain_buffer = g_new0 (NpEvent *, limits.drain_events);
  return np_sym.t;
}

static emacs_value
Fstop (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) args; (void) data;
  if (!engine)
    return np_sym.nil;
  np_engine_free (g_steal_pointer (&engine));
  /* The engine never closes the channel: it is our copy of Emacs's pipe.  */
  close (channel_fd);
  channel_fd = -1;
  g_clear_pointer (&drain_buffer, g_free);
  return np_sym.t;
}

static emacs_value
Frunning_p (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) args; (void) data;
  return engine ? np_sym.t : np_sym.nil;
}

/* Connecting.  */

static bool
family_arg (emacs_env *env, emacs_value v, int *family)
{
  if (!env->is_not_nil (env, v))
    *family = AF_UNSPEC;
  else if (env->eq (env, v, np_sym.ipv4))
    *family = AF_INET;
  else if (env->eq (env, v, np_sym.ipv6))
    *family = AF_INET6;
  else if (env->eq (env, v, np_sym.local))
    *family = AF_UNIX;
  else
    {
      np_error (env, "Unknown address family");
      return false;
    }
  return true;
}

/* TYPE, nil (a stream), `seqpacket' or `datagram', into *SOCKTYPE.
   Records and datagrams are read whole: no cut is asked of the engine.  */
static bool
socktype_arg (emacs_env *env, emacs_value type, int *socktype)
{
  if (!env->is_not_nil (env, type))
    *socktype = SOCK_STREAM;
  else if (env->eq (env, type, np_sym.seqpacket))
    *socktype = SOCK_SEQPACKET;
  else if (env->eq (env, type, np_sym.datagram))
    *socktype = SOCK_DGRAM;
  else
    {
      np_error (env, "Unsupported connection type");
      return false;
    }
  return true;
}

/* HOST as a numeric address of FAMILY (or any, for AF_UNSPEC) with PORT,
   into SS; FALSE for a name to look up.  */
static gboolean
literal_address (const char *host, int family, guint16 port,
                 struct sockaddr_storage *ss, socklen_t *len)
{
  memset (ss, 0, sizeof *ss);
  struct sockaddr_in *sin = (struct sockaddr_in *) ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
  if (family != AF_INET6 && inet_pton (AF_INET, host, &sin->sin_addr) == 1)
    {
      sin->sin_family = AF_INET;
      sin->sin_port = htons (port);
      *len = sizeof *sin;
      return TRUE;
    }
  if (family != AF_INET && inet_pton (AF_INET6, host, &sin6->sin6_addr) == 1)
    {
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons (port);
      *len = sizeof *sin6;
      return TRUE;
    }
  return FALSE;
}

/* How long a blocking connect may keep Emacs in the module before the
   engine takes over and Emacs waits for it (where C-g works).  */
#define CONNECT_NOW_MS 20

/* (netproc--connect ID FAMILY HOST PORT PATH REMOTE NOW OPTIONS TYPE).
   TYPE: see socktype_arg.
   Without NOW, start connecting and return the handle; events follow.
   With NOW t, a numeric address or a socket path is connected at once: the
   result is then [HANDLE TYPE PAYLOAD], the OPEN or FAILED event (HANDLE
   nil for FAILED), or the handle alone if the connect is still going.
   With NOW 0, as Emacs does for a :nowait connect to such an address: the
   socket is made, its options set and the connect started here, with no
   wait; a failure there is the result, an OPEN is always an event.
   With NOW `soon', for a :nowait connect to a numeric host, which Emacs
   would look up first: tried here at once without waiting, and whatever
   comes of it follows as an event; the handle, or nil if it failed.
   OPTIONS, nil or [OPTION VALUE ...], go on each socket made.  */
static emacs_value
Fconnect (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  if (!engine_running (env))
    return np_sym.nil;

  intmax_t id;
  if (!integer_arg (env, args[0], &id))
    return np_sym.nil;
  if (id < 0)
    return np_error (env, "Connection id must be non-negative");

  NpConnectSpec spec = { 0 };
  if (!family_arg (env, args[1], &spec.family))
    return np_sym.nil;
  if (!socktype_arg (env, args[8], &spec.type))
    return np_sym.nil;
  g_autofree NpSockopt *options
    = np_lisp_to_sockopts (env, args[7], &spec.n_options);
  if (np_pending (env))
    return np_sym.nil;
  spec.options = options;

  g_autofree char *host = NULL;
  g_autofree char *path = NULL;
  struct sockaddr_storage remote;
  socklen_t remote_len = 0;

  if (env->is_not_nil (env, args[5]))
    {
      if (!np_lisp_to_sockaddr (env, args[5], &remote, &remote_len))
        return np_pending (env) ? np_sym.nil
                                : np_error (env, "Malformed :address");
      spec.remote = (struct sockaddr *) &remote;
      spec.remote_len = remote_len;
    }
  else if (env->is_not_nil (env, args[4]))
    {
      ptrdiff_t len;
      if (!(path = string_arg (env, args[4], &len)))
        return np_sym.nil;
      if ((size_t) len >= sizeof ((struct sockaddr_un *) 0)->sun_path)
        return np_error (env, "Service name too long");
      spec.path = path;
    }
  else
    {
      intmax_t port;
      if (!(host = string_arg (env, args[2], NULL)))
        return np_sym.nil;
      if (!integer_arg (env, args[3], &port))
        return np_sym.nil;
      if (port < 0 || port > 0xffff)
        return np_error (env, "Port out of range");
      spec.host = host;
      spec.port = (guint16) port;
      /* A numeric host needs no lookup, and the engine skips it.  */
      if (literal_address (host, spec.family, spec.port, &remote,
                           &remote_len))
        {
          spec.remote = (struct sockaddr *) &remote;
          spec.remote_len = remote_len;
        }
    }

  if (!env->is_not_nil (env, args[6]))
    return np_make_handle (env, np_engine_connect (engine, (guint64) id, &spec));

  /* The Lisp side reads an opened stream's first reply itself, and gives
     input back to the engine at its next other wait.  */
  spec.owner_reads = TRUE;
  NpEvent *outcome = NULL;
  NpConn *conn;
  if (env->eq (env, args[6], np_sym.soon))
    conn = np_engine_connect_soon (engine, (guint64) id, &spec, &outcome);
  else
    {
      int timeout_ms = CONNECT_NOW_MS;
      if (!env->eq (env, args[6], np_sym.t))
        {
          intmax_t now;
          if (!integer_arg (env, args[6], &now))
            return np_sym.nil;
          if (now != 0)
            return np_error (env, "NOW must be nil, t, 0 or soon");
          timeout_ms = 0;
          spec.open_later = TRUE;
        }
      conn = np_engine_connect_now (engine, (guint64) id, &spec, timeout_ms,
                                    &outcome);
    }
  emacs_value handle = conn ? np_make_handle (env, conn) : np_sym.nil;
  if (!outcome)
    return handle;
  emacs_value items[3] = {
    handle,
    env->make_integer (env, outcome->type),
    np_event_payload (env, outcome),
  };
  np_event_free (outcome);
  return env->funcall (env, np_sym.vector, 3, items);
}

/* (netproc--listen ID ADDRESS BACKLOG REUSEADDR OPTIONS TYPE): bind
   and listen now (TYPE: see socktype_arg).  Return (HANDLE . BOUND-ADDRESS), or [STEP ERRNO MESSAGE
   INDEX] when a step failed, STEP being socket, option, reuseaddr, bind
   or listen, INDEX the failed option's (for option): the Lisp side words
   the error as Emacs does.  REUSEADDR is nil (the default for the
   family, unless OPTIONS sets it), or 0 or 1.  OPTIONS is nil or
   [OPTION VALUE ...].  */
static emacs_value
Flisten (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  if (!engine_running (env))
    return np_sym.nil;

  intmax_t id, backlog, reuse = -1;
  if (!integer_arg (env, args[0], &id))
    return np_sym.nil;
  if (id < 0 || (guint64) id >= NP_ACCEPTED_ID_BASE)
    return np_error (env, "Connection id out of range");

  struct sockaddr_storage address;
  socklen_t address_len;
  int family;
  /* The (FAMILY . [BYTES...]) form too, bound as Emacs binds it.  */
  if (!np_lisp_to_any_sockaddr (env, args[1], &address, &address_len,
                                &family))
    return np_pending (env) ? np_sym.nil
                            : np_error (env, "Malformed :address");
  if (!integer_arg (env, args[2], &backlog))
    return np_sym.nil;
  if (env->is_not_nil (env, args[3]) && !integer_arg (env, args[3], &reuse))
    return np_sym.nil;

  int socktype;
  if (!socktype_arg (env, args[5], &socktype))
    return np_sym.nil;

  guint n_options = 0;
  g_autofree NpSockopt *options
    = np_lisp_to_sockopts (env, args[4], &n_options);
  if (np_pending (env))
    return np_sym.nil;

  NpListenSpec spec = {
    .address = (struct sockaddr *) &address,
    .address_len = address_len,
    .family = family,
    .backlog = (int) CLAMP (backlog, G_MININT, G_MAXINT),
    .reuseaddr = reuse < 0 ? -1 : reuse != 0,
    .options = options,
    .n_options = n_options,
    .type = socktype,
  };
  struct sockaddr_storage bound;
  socklen_t bound_len = 0;
  int err = 0;
  NpListenStep step = NP_LISTEN_SOCKET;
  guint failed = 0;
  NpConn *conn = np_engine_listen (engine, (guint64) id, &spec, &bound,
                                   &bound_len, &err, &step, &failed);
  if (!conn)
    {
      static const char *const steps[] = {
        [NP_LISTEN_SOCKET] = "socket",
        [NP_LISTEN_OPTION] = "option",
        [NP_LISTEN_REUSEADDR] = "reuseaddr",
        [NP_LISTEN_BIND] = "bind",
        [NP_LISTEN_LISTEN] = "listen",
      };
      const char *text = g_strerror (err);
      emacs_value items[4] = {
        env->intern (env, steps[step]),
        env->make_integer (env, err),
        env->make_string (env, text, strlen (text)),
        env->make_integer (env, failed),
      };
      return env->funcall (env, np_sym.vector, 4, items);
    }
  emacs_value pair[2] = {
    np_make_handle (env, conn),
    np_sockaddr_to_lisp (env, (struct sockaddr *) &bound, bound_len),
  };
  return env->funcall (env, np_sym.cons, 2, pair);
}

/* Data and control.  */

static emacs_value
Fsend (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_pending (env) ? np_sym.nil : env->make_integer (env, 0);
  if (!is_type (env, args[1], np_sym.type_string))
    return np_wrong_type (env, np_sym.stringp, args[1]);
  emacs_value multibyte
    = env->funcall (env, np_sym.multibyte_string_p, 1, &args[1]);
  if (np_pending (env))
    return np_sym.nil;
  if (env->is_not_nil (env, multibyte))
    return np_error (env, "netproc--send needs a unibyte string");

  /* A unibyte string's contents come out byte for byte, straight into
     the chunk that is queued if the socket cannot take them at once.  */
  ptrdiff_t size = 0;
  if (!env->copy_string_contents (env, args[1], NULL, &size))
    return np_sym.nil;
  g_autoptr (NpChunk) chunk = np_chunk_new (size);
  if (!env->copy_string_contents (env, args[1], (char *) np_chunk_bytes (chunk),
                                  &size))
    return np_sym.nil;
  gsize queued = 0;
  int refused = np_conn_send_chunk (conn, g_steal_pointer (&chunk), size - 1,
                                    &queued);
  if (refused)
    {
      /* A seqpacket record too large, or a datagram the system
         refused: (ERRNO . MESSAGE), for the Lisp side to signal as the
         builtin does.  */
      const char *text = g_strerror (refused);
      emacs_value pair[2] = {
        env->make_integer (env, refused),
        env->make_string (env, text, strlen (text)),
      };
      return env->funcall (env, np_sym.cons, 2, pair);
    }
  return env->make_integer (env, (intmax_t) queued);
}

/* (netproc--read-direct CONN TIMEOUT-MS KEEP ASCII-TEXT): what CONN's
   socket has now, read on this thread, as a unibyte string, or nil (see
   np_conn_read_direct()).  Waits up to TIMEOUT-MS for it.  With
   ASCII-TEXT, bytes that are all ASCII come as a multibyte string, which
   is what decoding them would give: the caller asks for that only when
   its decoding maps ASCII to itself, and so need not decode, or copy,
   what it reads.  */
static emacs_value
Fread_direct (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
              void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  intmax_t timeout;
  if (!conn || !integer_arg (env, args[1], &timeout))
    return np_sym.nil;
  gssize n = np_conn_read_direct (conn, (int) CLAMP (timeout, 0, 1000),
                                  env->is_not_nil (env, args[2]),
                                  direct_buffer, sizeof direct_buffer);
  if (n <= 0)
    return np_sym.nil;
  /* make_string reads UTF-8, of which ASCII is the part that means the
     same to every decoding the caller allows.  */
  if (env->is_not_nil (env, args[3]) && np_bytes_ascii (direct_buffer, n))
    return env->make_string (env, (const char *) direct_buffer, n);
  return env->make_unibyte_string (env, (const char *) direct_buffer, n);
}

static emacs_value
Fread_direct_end (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                  void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_read_direct_end (conn);
  return np_sym.nil;
}

static emacs_value
Fqueued (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_pending (env) ? np_sym.nil : env->make_integer (env, 0);
  return env->make_integer (env, (intmax_t) np_conn_queued (conn));
}

/* (netproc--dropped CONN): (BYTES . ERRNO), see np_conn_dropped().  */
static emacs_value
Fdropped (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_sym.nil;
  int err;
  gsize dropped = np_conn_dropped (conn, &err);
  emacs_value items[2] = {
    env->make_integer (env, (intmax_t) dropped),
    env->make_integer (env, err),
  };
  return env->funcall (env, np_sym.cons, 2, items);
}

static emacs_value
Fshutdown_write (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                 void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_shutdown_write (conn);
  return np_sym.nil;
}

static emacs_value
Fset_paused (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_set_paused (conn, env->is_not_nil (env, args[1]));
  return np_sym.nil;
}

/* (netproc--set-ascii-text CONN FLAG): see np_conn_set_ascii_text().  */
static emacs_value
Fset_ascii_text (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                 void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_set_ascii_text (conn, env->is_not_nil (env, args[1]));
  return np_sym.nil;
}

static emacs_value
Fset_linger (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_set_linger (conn, env->is_not_nil (env, args[1]));
  return np_sym.nil;
}

/* (netproc--set-option CONN OPTION VALUE): set a network option on the
   socket, on the engine thread.  Return 0, the errno of the failure, or
   -1 when the connection has no socket.  OPTION must be one of the eight
   and VALUE one it takes: the Lisp side checks both first, as Emacs does,
   and this only refuses what it cannot convert.  */
static emacs_value
Fset_option (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (!conn)
    return np_pending (env) ? np_sym.nil : env->make_integer (env, -1);
  NpSockopt option;
  if (!np_lisp_to_sockopt (env, args[1], args[2], &option))
    return np_sym.nil;
  if (option.name == NP_SOCKOPT_INVALID)
    return np_error (env, "Bad network option or value");
  return env->make_integer (env, np_conn_set_option (conn, &option));
}

static emacs_value
Fclose (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_close (conn);
  return np_sym.nil;
}

static emacs_value
Fclose_deferred (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                 void *data)
{
  (void) nargs; (void) data;
  NpConn *conn = np_conn_arg (env, args[0]);
  if (conn)
    np_conn_close_deferred (conn);
  return np_sym.nil;
}

static emacs_value
Fflush (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) args; (void) data;
  if (engine)
    np_engine_flush (engine);
  return np_sym.nil;
}

/* Draining: every pending event as one flat vector [ID TYPE PAYLOAD ...],
   so one module call serves a whole wake-up.  */

static emacs_value
Fdrain (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) args; (void) data;
  if (!engine)
    return env->funcall (env, np_sym.vector, 0, NULL);

  guint n = np_engine_drain (engine, drain_buffer);
  g_autofree emacs_value *items = g_new (emacs_value, 3 * (gsize) n);
  for (guint i = 0; i < n; i++)
    {
      NpEvent *ev = drain_buffer[i];
      items[3 * i] = env->make_integer (env, (intmax_t) ev->id);
      items[3 * i + 1] = env->make_integer (env, ev->type);
      items[3 * i + 2] = np_event_payload (env, ev);
    }
  /* The events are Lisp data now; free them even if making it failed.  */
  for (guint i = 0; i < n; i++)
    np_event_free (g_steal_pointer (&drain_buffer[i]));
  if (np_pending (env))
    return np_sym.nil;
  return env->funcall (env, np_sym.vector, 3 * (ptrdiff_t) n, items);
}

static emacs_value
Fring (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) args; (void) data;
  if (engine)
    np_engine_ring (engine);
  return np_sym.nil;
}

/* Vector [IN-BYTES EVENTS HELD-BACK], or nil with no engine.  */
static emacs_value
Fqueue_stats (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
              void *data)
{
  (void) nargs; (void) args; (void) data;
  if (!engine)
    return np_sym.nil;
  NpQueueStats stats;
  np_engine_queue_stats (engine, &stats);
  emacs_value items[3] = {
    env->make_integer (env, (intmax_t) stats.in_bytes),
    env->make_integer (env, stats.events),
    env->make_integer (env, stats.held_back),
  };
  return env->funcall (env, np_sym.vector, 3, items);
}

static emacs_value
Fsync (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) args; (void) data;
  if (!engine)
    return np_sym.nil;
  np_engine_sync (engine);
  return np_sym.t;
}

/* (netproc--lingering): see np_engine_lingering().  */
static emacs_value
Flingering (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) args; (void) data;
  if (!engine)
    return np_sym.nil;
  return env->make_integer (env, np_engine_lingering (engine));
}

/* (netproc--test-resolver MODE CODE MESSAGE): a test hook, see
   test-resolver.c.  MODE nil or `system', `stall' or `fail'; CODE, for
   `fail', nil or `not-found', `temporary-failure' or `internal';
   MESSAGE nil or gai_strerror()'s text.  */
static emacs_value
Ftest_resolver (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
                void *data)
{
  (void) nargs; (void) data;
  if (!engine_running (env))
    return np_sym.nil;

  NpResolverMode mode;
  if (!env->is_not_nil (env, args[0])
      || env->eq (env, args[0], env->intern (env, "system")))
    mode = NP_RESOLVER_SYSTEM;
  else if (env->eq (env, args[0], env->intern (env, "stall")))
    mode = NP_RESOLVER_STALL;
  else if (env->eq (env, args[0], env->intern (env, "fail")))
    mode = NP_RESOLVER_FAIL;
  else
    return np_error (env, "Unknown test resolver mode");

  NpResolveError code;
  if (!env->is_not_nil (env, args[1])
      || env->eq (env, args[1], env->intern (env, "not-found")))
    code = NP_RESOLVE_NOT_FOUND;
  else if (env->eq (env, args[1], env->intern (env, "temporary-failure")))
    code = NP_RESOLVE_TEMPORARY_FAILURE;
  else if (env->eq (env, args[1], env->intern (env, "internal")))
    code = NP_RESOLVE_INTERNAL;
  else
    return np_error (env, "Unknown resolver error code");

  g_autofree char *message = NULL;
  if (env->is_not_nil (env, args[2])
      && !(message = string_arg (env, args[2], NULL)))
    return np_sym.nil;

  np_engine_set_resolver (engine, mode, code, message);
  return np_sym.t;
}

/* Small services for the Lisp side.  */

static emacs_value
Fservice_port (emacs_env *env, ptrdiff_t nargs, emacs_value *args,
               void *data)
{
  (void) nargs; (void) data;
  g_autofree char *name = string_arg (env, args[0], NULL);
  if (!name)
    return np_sym.nil;
  struct servent entry, *result = NULL;
  char buf[4096];
  if (getservbyname_r (name, "tcp", &entry, buf, sizeof buf, &result) != 0
      || !result)
    return np_sym.nil;
  return env->make_integer (env, ntohs ((uint16_t) result->s_port));
}

static emacs_value
Fstrerror (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  intmax_t code;
  if (!integer_arg (env, args[0], &code))
    return np_sym.nil;
  if (code < 0 || code > 4095)
    return np_error (env, "Not an errno value");
  const char *text = g_strerror ((int) code);
  return env->make_string (env, text, strlen (text));
}

/* Registration.  */

void
np_defun (emacs_env *env, const char *name, ptrdiff_t arity,
       emacs_value (*fn) (emacs_env *, ptrdiff_t, emacs_value *, void *),
       const char *doc)
{
  emacs_value args[2] = {
    env->intern (env, name),
    env->make_function (env, arity, arity, fn, doc, NULL),
  };
  env->funcall (env, env->intern (env, "defalias"), 2, args);
}

static emacs_value
global_symbol (emacs_env *env, const char *name)
{
  return env->make_global_ref (env, env->intern (env, name));
}

static void
intern_symbols (emacs_env *env)
{
  np_sym.nil = global_symbol (env, "nil");
  np_sym.t = global_symbol (env, "t");
  np_sym.error = global_symbol (env, "error");
  np_sym.wrong_type_argument = global_symbol (env, "wrong-type-argument");
  np_sym.args_out_of_range = global_symbol (env, "args-out-of-range");
  np_sym.stringp = global_symbol (env, "stringp");
  np_sym.integerp = global_symbol (env, "integerp");
  np_sym.symbolp = global_symbol (env, "symbolp");
  np_sym.user_ptrp = global_symbol (env, "user-ptrp");
  np_sym.type_string = global_symbol (env, "string");
  np_sym.type_vector = global_symbol (env, "vector");
  np_sym.type_integer = global_symbol (env, "integer");
  np_sym.type_user_ptr = global_symbol (env, "user-ptr");
  np_sym.ipv4 = global_symbol (env, "ipv4");
  np_sym.ipv6 = global_symbol (env, "ipv6");
  np_sym.local = global_symbol (env, "local");
  np_sym.seqpacket = global_symbol (env, "seqpacket");
  np_sym.datagram = global_symbol (env, "datagram");
  np_sym.soon = global_symbol (env, "soon");
  np_sym.kw_bindtodevice = global_symbol (env, ":bindtodevice");
  np_sym.kw_broadcast = global_symbol (env, ":broadcast");
  np_sym.kw_dontroute = global_symbol (env, ":dontroute");
  np_sym.kw_keepalive = global_symbol (env, ":keepalive");
  np_sym.kw_linger = global_symbol (env, ":linger");
  np_sym.kw_oobinline = global_symbol (env, ":oobinline");
  np_sym.kw_priority = global_symbol (env, ":priority");
  np_sym.kw_reuseaddr = global_symbol (env, ":reuseaddr");
  np_sym.cons = global_symbol (env, "cons");
  np_sym.list = global_symbol (env, "list");
  np_sym.vector = global_symbol (env, "vector");
  np_sym.multibyte_string_p = global_symbol (env, "multibyte-string-p");
}

NP_EXPORT int
emacs_module_init (struct emacs_runtime *runtime)
{
  if (runtime->size < (ptrdiff_t) sizeof *runtime)
    return 1;
  emacs_env *env = runtime->get_environment (runtime);
  if (env->size < (ptrdiff_t) sizeof (struct emacs_env_28))
    {
      /* Too old for open_channel.  Say so rather than fail obscurely.  */
      fputs ("netproc needs Emacs 28 or later\n", stderr);
      return 2;
    }

  /* Loading twice re-registers the same functions: harmless.  */
  if (!np_sym.nil)
    intern_symbols (env);

  np_defun (env, "netproc--start", 1, Fstart,
         "Start the engine, ringing CHANNEL (a pipe process) for events.");
  np_defun (env, "netproc--stop", 0, Fstop,
         "Stop the engine: join its thread and close every socket.");
  np_defun (env, "netproc--running-p", 0, Frunning_p,
         "Return t when the engine is running.");
  np_defun (env, "netproc--connect", 9, Fconnect,
         "Start connecting: ID FAMILY HOST PORT PATH REMOTE NOW OPTIONS\n"
         "TYPE.  TYPE is nil, seqpacket or datagram.\n"
         "Return the connection's handle; with NOW, connect a numeric\n"
         "address at once and return [HANDLE TYPE PAYLOAD] if it settled\n"
         "(NOW soon: only started, and looked at).  An opened stream's\n"
         "input is then this thread's, until `netproc--read-direct-end'.\n"
         "OPTIONS is nil or [OPTION VALUE ...], for each socket made.");
  np_defun (env, "netproc--listen", 6, Flisten,
         "Listen: ID ADDRESS BACKLOG REUSEADDR OPTIONS TYPE.\n"
         "Return (HANDLE . BOUND-ADDRESS), or [STEP ERRNO MESSAGE INDEX].");
  np_defun (env, "netproc--set-option", 3, Fset_option,
         "Set network OPTION to VALUE on CONN's socket.\n"
         "Return 0, the errno of a failure, or -1 without a socket.");
  np_defun (env, "netproc--send", 2, Fsend,
         "Queue the unibyte STRING on CONN; return the bytes queued.\n"
         "A seqpacket record refused as too large, or a datagram the\n"
         "system refused: (ERRNO . MESSAGE).");
  np_defun (env, "netproc--read-direct", 4, Fread_direct,
            "Return what CONN's socket has, read now, or nil.\n"
            "Wait up to TIMEOUT-MS for it; with KEEP, keep reading it\n"
            "here until `netproc--read-direct-end'.  With ASCII-TEXT,\n"
            "all-ASCII bytes come as a multibyte string.");
  np_defun (env, "netproc--read-direct-end", 1, Fread_direct_end,
            "Let the engine read CONN again after a KEEP read.");
  np_defun (env, "netproc--queued", 1, Fqueued,
         "Return the bytes queued on CONN and not yet written.");
  np_defun (env, "netproc--dropped", 1, Fdropped,
         "Return (BYTES . ERRNO): what CONN's queue lost, never written.\n"
         "ERRNO is that of the write that failed, or 0 when the connection\n"
         "ended with output queued.  Nil when CONN's engine is gone.");
  np_defun (env, "netproc--shutdown-write", 1, Fshutdown_write,
         "Half close CONN once its queue is written.");
  np_defun (env, "netproc--set-paused", 2, Fset_paused,
         "Stop reading CONN when FLAG is non-nil, else resume.");
  np_defun (env, "netproc--set-ascii-text", 2, Fset_ascii_text,
         "With FLAG, all-ASCII data CONN reads comes as multibyte text.");
  np_defun (env, "netproc--set-linger", 2, Fset_linger,
         "With FLAG nil, closing CONN drops what it has queued at once;\n"
         "else the engine writes it out first, as after close(2).");
  np_defun (env, "netproc--close", 1, Fclose,
         "Close CONN; no event for it follows.");
  np_defun (env, "netproc--close-deferred", 1, Fclose_deferred,
         "Close CONN as `netproc--close' does, but leave a client's socket\n"
         "to the engine, which takes it when next woken: see `netproc--flush'.");
  np_defun (env, "netproc--flush", 0, Fflush,
         "Wake the engine if work left to it waits, closes among it.");
  np_defun (env, "netproc--drain", 0, Fdrain,
         "Return the pending events as a vector [ID TYPE PAYLOAD ...].");
  np_defun (env, "netproc--ring", 0, Fring,
         "Have the engine ring the channel once more.");
  np_defun (env, "netproc--queue-stats", 0, Fqueue_stats,
         "Return [IN-BYTES EVENTS HELD-BACK] of the event queue, or nil.\n"
         "IN-BYTES is the data waiting to be drained, EVENTS the events,\n"
         "HELD-BACK the sockets not read because of the total bound.");
  np_defun (env, "netproc--lingering", 0, Flingering,
         "Return how many closed connections are still writing out their\n"
         "queue, or nil when no engine runs.");
  np_defun (env, "netproc--sync", 0, Fsync,
         "Return t once the engine thread has run every earlier command.\n"
         "Return nil when no engine runs.");
  np_defun (env, "netproc--test-resolver", 3, Ftest_resolver,
         "A test hook: look names up as MODE says from now on.\n"
         "MODE nil or `system' is GIO's resolver; `stall' never answers,\n"
         "a lookup ending only when cancelled; `fail' answers every name\n"
         "with the error CODE (nil or `not-found', `temporary-failure',\n"
         "`internal') and MESSAGE (nil: \"Name or service not known\").\n"
         "Numeric addresses and \"localhost\" never reach a resolver.\n"
         "Return t; signal an error when no engine runs.");
  np_defun (env, "netproc--service-port", 1, Fservice_port,
         "Return the TCP port of service NAME, or nil.");
  np_defun (env, "netproc--strerror", 1, Fstrerror,
         "Return the system's text for error number CODE.");
  np_datagram_defuns (env);
  return np_pending (env) ? 3 : 0;
}
