/* engine-private.h -- what the engine's own files share.

   Nothing here is seen by the binding: it includes engine.h only.

   Threads and locks.  Two kinds of thread touch the engine: the engine
   thread, which owns every socket, GSource and GCancellable, and any
   caller thread (Emacs's), which posts commands, queues output and drains
   events.  Shared state is guarded by pthread mutexes rather than GMutex:
   GLib's GMutex is futex-based inside an uninstrumented library, so
   ThreadSanitizer could not see the ordering it provides.

   Lock order: event_lock, then cmd_lock; a conn's out_lock is never held
   while taking another lock.  */

#ifndef NETPROC_ENGINE_PRIVATE_H
#define NETPROC_ENGINE_PRIVATE_H

#include <pthread.h>
#include <gio/gio.h>

#include "engine.h"

/* Engine-internal prefix: np__ (the public one is np_).  */

typedef enum
{
  NP_CMD_CONNECT,
  NP_CMD_ADOPT,           /* a socket connected (or connecting) already */
  NP_CMD_LISTEN,          /* start accepting on a bound, listening socket */
  NP_CMD_FLUSH,
  NP_CMD_SHUTDOWN_WRITE,
  NP_CMD_PAUSE,
  NP_CMD_RESUME,          /* backpressure lifted by a drain */
  NP_CMD_CLOSE,
  NP_CMD_RING,            /* a capped drain left events behind */
  NP_CMD_SYNC,            /* nothing: np_engine_sync() waits for it */
  NP_CMD_SET_OPTION,      /* np_conn_set_option() waits for it */
  NP_CMD_STOP,
} NpCommandType;

typedef enum
{
  NP_CONN_NEW,
  NP_CONN_RESOLVING,
  NP_CONN_CONNECTING,
  NP_CONN_OPEN,
  NP_CONN_LISTENING,      /* a listener: never OPEN, ends in DONE */
  NP_CONN_DONE,           /* socket gone; the engine holds no reference */
} NpConnState;

typedef struct NpResolveOp NpResolveOp;

/* One chunk of output, from one np_conn_send*() call (chunk.c).  */
struct NpChunk
{
  gsize len;                      /* bytes to send */
  gsize size;                     /* room for them */
  guint8 data[];
};

/* One queued datagram of a datagram conn (whose queue holds only these),
   with where it goes: the datagram address when it was sent, or, with
   ADDR_LEN 0, the one the conn has when it is written (a client whose
   address was still being looked up).  */
typedef struct
{
  struct sockaddr_storage addr;
  socklen_t addr_len;
  gsize len;
  guint8 data[];
} NpDatagram;

struct NpConn
{
  gint ref_count;                 /* atomic */
  NpEngine *engine;               /* not owned; see np_conn_unref() */
  guint64 id;
  /* A listening socket (see listen.c); set before the conn is shared and
     never changed.  A listener refuses output from the start.  */
  gboolean listener;
  /* A datagram socket (see datagram.c), and one np_engine_listen() bound;
     both set before the conn is shared and never changed.  */
  gboolean datagram;
  gboolean datagram_server;
  gsize datagram_max;             /* truncate datagrams read; 0: no limit */
  /* A SOCK_SEQPACKET stream (Unix): the stream code paths, but each read
     is one record (cut to DATAGRAM_MAX when that is set) and each chunk
     queued one record, sent by its own sendmsg().  Set before the conn
     is shared and never changed.  */
  gboolean seqpacket;

  /* The target, copied from the NpConnectSpec; immutable.  */
  int family;
  char *host;
  guint16 port;
  char *path;
  struct sockaddr_storage remote;
  socklen_t remote_len;
  NpSockopt *options;             /* for each socket made */
  guint n_options;

  /* Guarded by engine->event_lock.  */
  gboolean user_closed;           /* no event may be queued any more */
  gsize in_bytes;                 /* DATA bytes queued, not yet drained */
  gboolean in_blocked;            /* reading stopped for backpressure */
  gboolean in_held_back;          /* ... because of the total bound */

  /* Guarded by out_lock.  Only the engine thread removes chunks, so it
     may read a chunk's bytes without the lock.  */
  pthread_mutex_t out_lock;
  GQueue out;                     /* of NpChunk */
  gsize out_offset;               /* bytes of the head chunk already sent */
  gsize queued;
  gboolean accepting;             /* FALSE after close or CLOSED */
  /* The socket, for np_conn_send() to write to directly while nothing is
     queued, or -1.  Closed only under out_lock, so the number is never
     another socket's by the time a sender uses it.  */
  int direct_fd;
  gboolean out_high_hit;
  /* The owner closed the socket itself (see close_here() in stream.c):
     its number may be another file's by now, and the engine must not
     use FD.  Set with read_lock and out_lock both held; read under
     either.  */
  gboolean owner_closed;
  /* Bytes queued that were never written, the connection having ended
     or its writes failed, and that write's errno (0: the end), for a
     sender still waiting on them (np_conn_dropped()).  */
  gsize dropped;
  int dropped_errno;
  /* Reading from the owner's thread while it waits for this conn (see
     np_conn_read_direct()).  read_lock is held by whoever reads the
     socket, across the read and the queueing of what it read, so that
     bytes are delivered in the order they were read; and by whoever
     changes what the epoll set watches.  Guarded by read_lock:  */
  pthread_mutex_t read_lock;
  int read_fd;                    /* the socket while the owner may read
                                     it, else -1 */
  gboolean in_flow;               /* a direct read filled its buffer:
                                     the engine reads until it reads
                                     short (see np_conn_read_direct()) */
  gboolean direct_waiting;        /* the owner waits on the socket: the
                                     set does not watch it for input */
  gboolean spin_missed;           /* owner's thread only: the last reply
                                     outlasted the look (see spin.c) */
  gint ascii_text;                /* atomic: np_conn_set_ascii_text() */
  gint watch_errno;               /* the owner could not give input back
                                     to the set: the engine ends the
                                     connection with this error (atomic;
                                     set once, with read_lock held) */
  guint32 applied;                /* what the set watches it for now */
  /* Where np_conn_send*() sends on a datagram conn; length 0 while
     unknown.  */
  struct sockaddr_storage datagram_addr;
  socklen_t datagram_addr_len;

  /* Engine thread only.  */
  NpConnState state;
  gboolean registered;            /* in engine->conns, holding a ref */
  int fd;                         /* the socket, or -1 */
  guint32 watching;               /* what the engine wants it watched
                                     for (see APPLIED) */
  gboolean want_read;             /* data, or a listener's connections */
  gboolean want_write;            /* room after EAGAIN, or connect done */
  /* A listener resting after an error, a datagram conn's next try, or
     a closed stream's patience with its last output (see linger()).  */
  GSource *retry_source;
  gboolean lingering;             /* closed, writing out what is queued */
  gint no_linger;                 /* atomic: a close drops what is queued */
  gsize linger_queued;            /* what was left at the last check */
  NpResolveOp *resolve;           /* the pending lookup, if any */
  GArray *targets;                /* of NpTarget, addresses to try */
  guint next_target;
  int last_errno;
  /* The addresses of the last attempt, for the FAILED event: Emacs shows
     them in the contact of a refused connection.  */
  struct sockaddr_storage tried_local, tried_remote;
  socklen_t tried_local_len, tried_remote_len;
  gboolean user_paused;
  int write_errno;                /* the peer is gone: see write_out() */
  gboolean shut_wr_requested;
  gboolean shut_wr_done;
};

typedef struct
{
  struct sockaddr_storage addr;
  socklen_t len;
} NpTarget;

struct NpEngine
{
  int wake_fd;
  NpLimits limits;

  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;

  /* Commands: guarded by cmd_lock.  The first post since the queue was
     last taken writes CMD_WAKE_FD, an eventfd that cmd_source watches; it
     runs the whole queue, oldest first.  A quiet post writes nothing and
     waits for the next wake-up of any kind.  */
  pthread_mutex_t cmd_lock;
  GQueue commands;
  gboolean cmd_closed;            /* STOP posted; refuse anything else */
  gboolean cmd_rung;              /* cmd_wake_fd written since the queue
                                     was last taken */
  guint cmd_quiet;                /* quiet posts since then */
  GSource *cmd_source;
  int cmd_wake_fd;

  /* Events: guarded by event_lock.  */
  pthread_mutex_t event_lock;
  GQueue events;                  /* intrusive, see channel.c */
  gsize in_total;                 /* DATA bytes in EVENTS */
  GQueue held_back;               /* conns (with a ref) in_held_back */
  gboolean wake_dead;             /* engine thread only: EPIPE seen */

  /* Engine thread only.  */
  int epoll_fd;                   /* every socket: see poller.c */
  GSource *poll_source;
  GHashTable *conns;              /* set of NpConn the engine holds */
  GResolver *resolver;
  guint pending_resolves;         /* lookups whose callback is still due */
  guint8 *scratch;                /* read buffer, limits.read_size */
  guint8 *datagram_scratch;       /* NP_DATAGRAM_BUF, made when first used */
  guint64 next_accepted_id;       /* from NP_ACCEPTED_ID_BASE up */

  gint spin_us;                   /* atomic: see spin.c */
  gint lingering;                 /* atomic: closed streams still writing
                                     out their queue (see linger()) */
};

/* spin.c */
int np__spin_default (void);
void np__spin_wait_readable (NpConn *conn, int fd, int timeout_ms);

/* engine.c */
void np__engine_post (NpEngine *engine, NpCommandType type, NpConn *conn,
                      gboolean flag);
void np__engine_post_quietly (NpEngine *engine, NpCommandType type,
                              NpConn *conn);
void np__engine_post_and_wait (NpEngine *engine, NpCommandType type,
                               NpConn *conn, gboolean flag);
void np__engine_run_commands (NpEngine *engine);
int np__engine_set_option (NpEngine *engine, NpConn *conn,
                           const NpSockopt *option);
void np__engine_register (NpEngine *engine, NpConn *conn);
void np__engine_unregister (NpEngine *engine, NpConn *conn);

/* channel.c */
NpEvent *np__event_new (guint64 id, NpEventType type, gsize len);
gboolean np__channel_post (NpEngine *engine, NpConn *conn, NpEvent *event);
gboolean np__channel_post_data (NpEngine *engine, NpConn *conn,
                                const guint8 *data, gsize len);
gboolean np__channel_post_datagram (NpEngine *engine, NpConn *conn,
                                    const guint8 *data, gsize len,
                                    gsize full_len,
                                    const struct sockaddr_storage *from,
                                    socklen_t from_len);
void np__channel_ring (NpEngine *engine, gboolean force);
gboolean np__channel_in_blocked (NpEngine *engine, NpConn *conn);
/* No data of CONN waits in the queue, and it may be read.  */
gboolean np__channel_quiet (NpEngine *engine, NpConn *conn);
void np__channel_free_all (NpEngine *engine);

/* poller.c, engine thread only */
gboolean np__poller_init (NpEngine *engine, GError **error);
void np__poller_free (NpEngine *engine);
int np__watch (NpConn *conn, guint32 events);
/* Makes the set watch FD, CONN's socket, for EVENTS now; with read_lock
   held, on any thread.  Returns 0 or an errno.  */
int np__watch_apply (NpConn *conn, int fd, guint32 events);

/* stream.c */
NpConn *np__conn_new (NpEngine *engine, guint64 id);
/* Engine thread only from here.  */
void np__source_clear (GSource **source);
void np__conn_ready (NpConn *conn, guint32 events);
void np__stream_start (NpConn *conn);
void np__stream_adopt (NpConn *conn);
void np__stream_flush (NpConn *conn);
void np__stream_shutdown_write (NpConn *conn);
void np__stream_set_paused (NpConn *conn, gboolean paused);
void np__stream_update_reading (NpConn *conn);
void np__stream_close (NpConn *conn);
void np__stream_abort (NpConn *conn);
void np__stream_allow_direct (NpConn *conn);
int np__stream_rewatch (NpConn *conn);
void np__stream_end (NpConn *conn, int err);
void np__stream_post_simple (NpConn *conn, NpEventType type, int code);

/* datagram.c */
/* The largest datagram read whole: above any UDP payload (65,527 bytes
   over IPv6) and Linux's default Unix datagram bound (about 208 KiB).  */
#define NP_DATAGRAM_BUF (256 * 1024)
void np__datagram_set_address (NpConn *conn,
                               const struct sockaddr_storage *addr,
                               socklen_t len);
/* Engine thread only from here.  */
void np__datagram_ready (NpConn *conn, guint32 events);
/* Where CONN's next record or datagram is read, and *CAP its size: the
   engine's scratch buffer, or *OWN (to free) for a Unix record larger
   than that.  With DATAGRAM_MAX set, at most that many bytes.  */
guint8 *np__record_buffer (NpConn *conn, gsize *cap, guint8 **own);
/* The socket type CONN's sockets are made with.  */
#define NP__CONN_SOCKTYPE(conn) \
  ((conn)->datagram ? SOCK_DGRAM \
   : (conn)->seqpacket ? SOCK_SEQPACKET : SOCK_STREAM)
gboolean np__datagram_write_out (NpConn *conn, gboolean final);

/* listen.c, engine thread only */
void np__listen_start (NpConn *listener);
void np__listen_update (NpConn *listener);
void np__listen_ready (NpConn *listener);

/* fdplace.c */
void np__fd_raise_limit (void);
int np__fd_socket (int family, int type, int *err);
int np__fd_place (int fd);

/* sockopt.c */
/* Applies OPTIONS in order; returns 0, or the errno of the first that
   failed, with its index in *FAILED.  */
int np__sockopt_apply (int fd, const NpSockopt *options, guint n_options,
                       guint *failed);
gboolean np__sockopt_has (const NpSockopt *options, guint n_options,
                          NpSockoptName name);
/* Engine thread.  Returns 0, an errno, or -1 when CONN has no socket.  */
int np__sockopt_set_conn (NpConn *conn, const NpSockopt *option);

/* address.c */
gboolean np__address_unix (const char *path, struct sockaddr_storage *ss,
                           socklen_t *len);
char *np__resolver_message (const GError *error, const char *host);

#endif /* NETPROC_ENGINE_PRIVATE_H */
