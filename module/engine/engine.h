/* engine.h -- the netproc engine: every socket lives on one GLib thread.

   This is the only engine header the binding includes.  The engine knows
   nothing of Emacs: it takes commands from any thread, runs all socket work
   on its own thread (its own GMainContext, pushed as that thread's
   thread-default context), and hands results back as a queue of events.

   Wake-up protocol: the engine writes one byte to WAKE_FD whenever its event
   queue turns from empty to non-empty.  The owner then calls
   np_engine_drain() on its own thread.  A drain is capped; when events
   remain after it, the engine rings WAKE_FD again by itself, so the owner
   only ever reacts to bytes on WAKE_FD.

   Ordering: for one connection, events arrive in the order they happened:
   OPEN or FAILED first, then DATA..., then at most one CLOSED.

   Datagrams (SOCK_DGRAM over AF_INET, AF_INET6 or AF_UNIX) follow the
   builtin, which differs from what one might guess (reference section 8,
   process.c):
   - A client is NpConnectSpec with TYPE SOCK_DGRAM.  Its socket is never
     bound nor connected: it is made, given the options passed (the
     builtin passes none), and is OPEN at once, LOCAL what getsockname()
     says (a wildcard, port 0) and REMOTE the address looked up.  It
     receives from anyone.
   - A server is NpListenSpec with TYPE SOCK_DGRAM: options, SO_REUSEADDR,
     bind, no listen().  It has no OPEN event (np_engine_listen() returned
     everything) and accepts nothing; it reads and sends like a client.
   - Each conn has a datagram address, where np_conn_send*() sends: the
     client's remote address, a server's all zeros (sendto() then fails
     with EINVAL, as the builtin's does) until set.  The engine never
     changes it by itself, because it reads ahead of its owner: the
     builtin updates it as each datagram reaches the filter, so the owner
     calls np_conn_datagram_received() as it hands each DATA event on.
   - Each datagram read is one DATA event, its boundaries kept, with the
     sender in REMOTE (REMOTE_LEN 0 for an unbound Unix socket) and its
     full size in DATAGRAM_LEN.  The datagram is whole unless the conn
     has a DATAGRAM_MAX (the builtin's read-process-output-max cut): LEN
     is less when it was cut to that.
   - A zero-length datagram ends the conn: CLOSED, code 0, as the builtin
     (whose read returns 0) does.  A failed read ends it with the errno.
   - Each np_conn_send*() call is one datagram, sent with one sendto()
     from the caller's thread when nothing is queued, else queued with its
     destination and sent by the engine thread in order.  Errors of a
     direct send come back from np_conn_send_datagram(); those of a queued
     one as SEND_FAILED events.  ICMP errors are never seen: the sockets
     are not connected.

   Seqpacket (SOCK_SEQPACKET, AF_UNIX only: the system refuses it for
   the others) is a stream with record boundaries, and takes the stream
   paths: connect, listen and accept, OPEN, DATA, CLOSED as for
   SOCK_STREAM, TYPE SOCK_SEQPACKET in NpConnectSpec or NpListenSpec
   (its accepted connections are seqpacket too).  Differences:
   - Each DATA event is one record read with one recv(), whole, however
     large, unless DATAGRAM_MAX is set: then it is cut to that and the
     rest of the record is lost, as the builtin, which reads
     read-process-output-max bytes, loses it.
   - Each np_conn_send*() call is one record, sent whole by one send()
     or sendmsg() (never merged with another, never split).  A record
     the socket can never take (EMSGSIZE) is refused: by
     np_conn_send_record() when it was sent at once, else dropped with
     a SEND_FAILED event; the conn goes on.  */

#ifndef NETPROC_ENGINE_H
#define NETPROC_ENGINE_H

#include <glib.h>
#include <sys/socket.h>

G_BEGIN_DECLS

typedef struct NpEngine NpEngine;
typedef struct NpConn NpConn;
typedef struct NpChunk NpChunk;

typedef enum
{
  /* The connection is established; LOCAL and REMOTE hold its addresses.  */
  NP_EVENT_OPEN = 1,
  /* Bytes read from the peer: DATA, LEN (never 0).  */
  NP_EVENT_DATA = 2,
  /* Connecting failed.  CODE is the errno (e.g. ECONNREFUSED) of the last
     address tried, MESSAGE its text.  When name resolution failed,
     RESOLVE_ERROR is TRUE, CODE is 0 and MESSAGE is the resolver's text as
     gai_strerror() words it ("Name or service not known").  When an
     address was tried, LOCAL and REMOTE hold the last attempt's.
     When a socket option could not be set (see NpSockopt), OPTION_FAILED
     is TRUE and OPTION_INDEX says which; no other address was tried.  */
  NP_EVENT_FAILED = 3,
  /* The connection ended without np_conn_close(): CODE 0 for an orderly
     end of file from the peer, else the errno of the failed read or write
     (ECONNRESET, EPIPE).  Always the last event of a connection.  */
  NP_EVENT_CLOSED = 4,
  /* The output queue fell to the low-water mark after having been at or
     above the high-water mark; wakes senders waiting for room.  */
  NP_EVENT_WRITABLE = 5,
  /* A listener accepted a connection.  ID is the listener's; ACCEPTED is
     the new connection (a reference the event owns until the owner takes
     it by setting the field to NULL), ACCEPTED_ID the id its own events
     carry, chosen by the engine from NP_ACCEPTED_ID_BASE up.  LOCAL and
     REMOTE are its addresses.  Its events follow this one.  */
  NP_EVENT_ACCEPTED = 6,
  /* accept() failed with CODE for a reason other than running out of
     connections to accept; the listener goes on.  */
  NP_EVENT_ACCEPT_FAILED = 7,
  /* A datagram queued by np_conn_send*() could not be sent: CODE is the
     errno of its sendto().  It is dropped; the conn goes on.  The builtin
     would have signalled in the sender (see np_conn_send_datagram).
     The same for a queued seqpacket record too large (EMSGSIZE).  */
  NP_EVENT_SEND_FAILED = 8,
} NpEventType;

/* Ids of accepted connections start here, far above any id an owner
   gives, so that the two never meet.  */
#define NP_ACCEPTED_ID_BASE (G_GUINT64_CONSTANT (1) << 48)

typedef struct
{
  guint64 id;             /* the ID given when the connection was made */
  NpEventType type;
  int code;
  gboolean resolve_error;
  char *message;          /* FAILED and CLOSED (may be NULL), owned */
  /* OPEN, FAILED; REMOTE is also the sender of a datagram's DATA.  */
  struct sockaddr_storage local, remote;
  socklen_t local_len, remote_len;
  gboolean option_failed; /* FAILED only: see NP_EVENT_FAILED */
  guint option_index;
  NpConn *accepted;       /* ACCEPTED only */
  guint64 accepted_id;    /* ACCEPTED only */
  gsize len;              /* DATA only */
  gboolean text;          /* DATA of a stream: all ASCII, taken as text
                             (see np_conn_set_ascii_text) */
  gsize datagram_len;     /* DATA of a datagram: its size, >= LEN */
  guint8 data[];          /* DATA only: LEN bytes */
} NpEvent;

/* A socket option, as `make-network-process' sets it: every one is a
   SOL_SOCKET option.  A list of them is applied in order to each socket
   made, before bind or connect; the first that fails fails the whole
   connect or listen, with no other address tried, as in Emacs.  */
typedef enum
{
  /* A value Emacs refuses (a non-integer :priority, ...): applying it
     fails with EINVAL, at its place in the list, which is where Emacs
     signals.  A zeroed NpSockopt is this.  */
  NP_SOCKOPT_INVALID = 0,
  NP_SOCKOPT_BINDTODEVICE,
  NP_SOCKOPT_BROADCAST,
  NP_SOCKOPT_DONTROUTE,
  NP_SOCKOPT_KEEPALIVE,
  NP_SOCKOPT_LINGER,
  NP_SOCKOPT_OOBINLINE,
  NP_SOCKOPT_PRIORITY,
  NP_SOCKOPT_REUSEADDR,
} NpSockoptName;

/* The device buffer SO_BINDTODEVICE gets: IFNAMSIZ bytes, zero-padded.  */
#define NP_SOCKOPT_DEVICE_SIZE 16

typedef struct
{
  NpSockoptName name;
  int value;              /* 0 or 1; PRIORITY's value; LINGER's l_linger */
  int linger_on;          /* LINGER's l_onoff */
  /* BINDTODEVICE: the name, cut to the buffer; all zero unbinds.  */
  char device[NP_SOCKOPT_DEVICE_SIZE];
} NpSockopt;

/* Set OPTION on FD now, on the caller's thread.  Returns 0 or an errno
   (EINVAL for NP_SOCKOPT_INVALID).  For sockets of the caller's own; a
   connection's socket belongs to the engine: see np_conn_set_option().  */
int np_sockopt_set (int fd, const NpSockopt *option);

/* What to connect to.  Exactly one of HOST, PATH and REMOTE is set.  */
typedef struct
{
  int family;             /* AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX */
  const char *host;       /* resolved asynchronously, honouring FAMILY */
  guint16 port;           /* with HOST */
  const char *path;       /* AF_UNIX socket path */
  const struct sockaddr *remote;   /* an explicit address */
  socklen_t remote_len;
  const NpSockopt *options;        /* applied to each socket made; copied */
  guint n_options;
  /* 0 or SOCK_STREAM; SOCK_DGRAM, SOCK_SEQPACKET: see the top */
  int type;
  /* SOCK_DGRAM, SOCK_SEQPACKET: truncate to this; 0 = no limit */
  gsize datagram_max;
  /* np_engine_connect_now(), a stream: a connect that succeeds at once
     is reported as one that took time, by an OPEN event, never as the
     outcome.  For a caller that must not see the connection open before
     it next waits (Emacs's :nowait).  */
  gboolean open_later;
  /* np_engine_connect_now() and np_engine_connect_soon(), a stream that
     opens as the outcome: it
     starts as after np_conn_read_direct() with KEEP, the engine not
     watching it for input, so that the first reply, read directly, wakes
     no thread.  The owner then must call np_conn_read_direct_end()
     before it waits in any other way, or the engine never reads it.  */
  gboolean owner_reads;
} NpConnectSpec;

/* Limits that shape flow control; all in bytes but the last.  */
typedef struct
{
  gsize read_size;        /* largest single read (default 64 KiB) */
  gsize conn_in_high;     /* stop reading a socket with this much undrained */
  gsize conn_in_low;      /* ... and resume once drains bring it down here */
  gsize total_in_high;    /* the same for all connections together: past */
  gsize total_in_low;     /* it, each socket that reads stops, until here */
  gsize out_high;         /* np_conn_send() beyond this: WRITABLE later */
  gsize out_low;
  gsize drain_bytes;      /* cap of one drain */
  guint drain_events;
  guint linger_ms;        /* a closed stream's output: how long it may go
                             unwritten before it is dropped */
} NpLimits;

void np_limits_init_default (NpLimits *limits);

/* What the event queue holds at this moment.  Any thread.  */
typedef struct
{
  gsize in_bytes;         /* DATA bytes queued, all connections (a
                             datagram counts its event's size too) */
  guint events;           /* events queued */
  guint held_back;        /* sockets not read because of the total bound */
} NpQueueStats;

void np_engine_queue_stats (NpEngine *engine, NpQueueStats *stats);

/* Returns once the engine thread has run every command posted before:
   proof that it is not stuck.  */
void np_engine_sync (NpEngine *engine);

/* A test hook (test-resolver.c): how the engine looks names up.  */
typedef enum
{
  NP_RESOLVER_SYSTEM,     /* GIO's default resolver, as at start */
  NP_RESOLVER_STALL,      /* never answers; a lookup ends when cancelled */
  NP_RESOLVER_FAIL,       /* answers every name with an error */
} NpResolverMode;

/* The errors NP_RESOLVER_FAIL gives: GIO's GResolverError values.  */
typedef enum
{
  NP_RESOLVE_NOT_FOUND,
  NP_RESOLVE_TEMPORARY_FAILURE,
  NP_RESOLVE_INTERNAL,
} NpResolveError;

/* Look names up as MODE says from now on; for NP_RESOLVER_FAIL, fail
   with CODE and MESSAGE, gai_strerror()'s text (NULL for "Name or
   service not known").  Lookups under way keep their resolver.
   Returns once the engine thread has switched; never call it on that
   thread.  */
void np_engine_set_resolver (NpEngine *engine, NpResolverMode mode,
                             NpResolveError code, const char *message);

/* How long the owner looks for a reply before it blocks in
   np_conn_read_direct(), in microseconds (0: it blocks at once).  The
   default is 100 on a machine with more than one CPU, else 0.  */
void np_engine_set_spin (NpEngine *engine, int spin_us);

/* Start the engine thread.  WAKE_FD is not closed by the engine; it is made
   close-on-exec and non-blocking.  Returns NULL and sets ERROR on failure.  */
NpEngine *np_engine_new (int wake_fd, const NpLimits *limits, GError **error);

/* Stop the thread, join it, close every socket, free every queued event.
   Safe with NULL.  */
void np_engine_free (NpEngine *engine);

/* Take up to the drain caps of events, oldest first, into OUT (which has
   room for limits.drain_events pointers).  Returns how many.  Each must be
   freed with np_event_free().  Rings WAKE_FD again if events remain.  */
guint np_engine_drain (NpEngine *engine, NpEvent **out);
void np_event_free (NpEvent *event);

/* Ring WAKE_FD once more, even with nothing queued: the owner has work of
   its own left for its next wake-up.  The engine thread writes the byte,
   as it writes every other.  */
void np_engine_ring (NpEngine *engine);

/* Connect to SPEC's literal address (REMOTE or PATH; HOST is ignored) on
   the caller's thread, waiting at most TIMEOUT_MS for the connection to
   complete, so that a fast connect needs no hand-off to the engine
   thread and back.  Settled in time: *OUTCOME is the OPEN or FAILED
   event it would have queued (free it with np_event_free()), and the
   return value the connection, or NULL when it failed.  Not settled:
   *OUTCOME is NULL, and the engine goes on as after np_engine_connect(),
   its OPEN or FAILED event to come; so too when it connected at once and
   SPEC asks for the OPEN later.  With TIMEOUT_MS 0, the socket is made,
   its options are set and the connect is started, with no look at how it
   goes: what fails there (an option, a Unix socket's connect) is the
   outcome, and a connect in progress is the engine's to report.  */
NpConn *np_engine_connect_now (NpEngine *engine, guint64 id,
                               const NpConnectSpec *spec, int timeout_ms,
                               NpEvent **outcome);

/* The same without waiting, for an asynchronous connect: the connect
   is started, and a look (poll with no wait) finds whether it settled
   already, as a fast connect on loopback or a refusal does.  What
   settled is *OUTCOME, as for np_engine_connect_now(), for the owner to
   show at its next wait; the rest, the engine finishes and reports.
   Returns the connection, or NULL when it failed at once.  */
NpConn *np_engine_connect_soon (NpEngine *engine, guint64 id,
                                const NpConnectSpec *spec,
                                NpEvent **outcome);

/* Start connecting (name resolution included) and return a handle owned by
   the caller; the engine keeps its own reference while the socket lives.
   Events for it carry ID.  Never blocks.  */
NpConn *np_engine_connect (NpEngine *engine, guint64 id,
                           const NpConnectSpec *spec);

/* A listening socket.  */
typedef struct
{
  const struct sockaddr *address;  /* to bind; port 0 picks a free one */
  socklen_t address_len;
  /* The socket's family: 0 for ADDRESS's own.  Emacs makes the socket
     for a (FAMILY . BYTES) address with FAMILY but binds an address
     whose family field is 0.  */
  int family;
  int backlog;
  /* -1: SO_REUSEADDR on for inet and left alone for Unix, as Emacs does,
     unless OPTIONS has an NP_SOCKOPT_REUSEADDR; 0 or 1: set as said.  */
  int reuseaddr;
  const NpSockopt *options;        /* applied in order before REUSEADDR */
  guint n_options;
  /* 0 or SOCK_STREAM; SOCK_SEQPACKET listens for seqpacket clients;
     SOCK_DGRAM binds a datagram server (no listen, so BACKLOG is
     unused): see the top.  */
  int type;
  /* SOCK_DGRAM, and the connections a SOCK_SEQPACKET listener accepts:
     truncate to this; 0 = no limit */
  gsize datagram_max;
} NpListenSpec;

/* Which step of making a listener failed.  */
typedef enum
{
  NP_LISTEN_SOCKET,
  NP_LISTEN_OPTION,       /* one of OPTIONS: *OPTION says which */
  NP_LISTEN_REUSEADDR,
  NP_LISTEN_BIND,
  NP_LISTEN_LISTEN,
} NpListenStep;

/* Make, bind and listen on the caller's thread, so that errors and the
   bound address are known when this returns, then let the engine accept
   (unless paused with np_conn_set_paused, which holds clients in the
   backlog).  BOUND gets the address bound.  On failure return NULL and
   set *ERR (an errno), *STEP and, for NP_LISTEN_OPTION, *OPTION (the
   index in SPEC's options; OPTION may be NULL).  Unix socket files are never removed,
   neither stale ones before binding nor the listener's own on close.
   np_conn_close closes the listener; its accepted connections go on.  */
NpConn *np_engine_listen (NpEngine *engine, guint64 id,
                          const NpListenSpec *spec,
                          struct sockaddr_storage *bound,
                          socklen_t *bound_len, int *err,
                          NpListenStep *step, guint *option);

NpConn *np_conn_ref (NpConn *conn);
void np_conn_unref (NpConn *conn);

/* Room for SIZE bytes of output, for np_conn_send_chunk(): a sender
   that copies its bytes from elsewhere anyway copies them into
   np_chunk_bytes(), and they are never copied again.  Any thread.  */
NpChunk *np_chunk_new (gsize size);
guint8 *np_chunk_bytes (NpChunk *chunk);
void np_chunk_free (NpChunk *chunk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NpChunk, np_chunk_free)

/* np_conn_send_record() of the first LEN bytes of CHUNK, which it owns
   from then on, sent or not.  */
int np_conn_send_chunk (NpConn *conn, NpChunk *chunk, gsize len,
                        gsize *queued);

/* Whether np_conn_close() keeps the socket until what is queued is
   written (LINGER, the default) or drops it at once.  Any thread.  */
void np_conn_set_linger (NpConn *conn, gboolean linger);

/* How many closed streams are still writing out their queue: what a
   stop now would drop.  Any thread.  */
int np_engine_lingering (NpEngine *engine);

/* Queue LEN bytes for writing (copied).  Returns the number of bytes now
   queued and not yet written to the kernel.  After np_conn_close() or a
   CLOSED event the bytes are dropped and 0 is returned.  */
gsize np_conn_send (NpConn *conn, const void *data, gsize len);

/* np_conn_send(), but a seqpacket record of LEN bytes that the socket
   refuses at once as too large is dropped and its errno (EMSGSIZE)
   returned, as the builtin signals then; 0 otherwise (sent or queued;
   a queued record refused later gives a SEND_FAILED event).  QUEUED, if
   not NULL, gets what np_conn_send() returns.  On a stream conn it is
   np_conn_send() and returns 0; on a datagram conn,
   np_conn_send_datagram().  Any thread.  */
int np_conn_send_record (NpConn *conn, const void *data, gsize len,
                         gsize *queued);

/* One datagram of LEN bytes to CONN's datagram address (see the top),
   never split nor merged with another.  Returns 0 when it was sent or
   queued (queued: the socket had no room, or others wait before it), or
   the errno of the sendto() that refused it, the datagram dropped and
   the conn open: EMSGSIZE (the builtin's "Sending datagram" error),
   EINVAL (no destination yet), ECONNREFUSED or ENOENT (no Unix socket
   there) ...  EPIPE after np_conn_close() or CLOSED.  LEN 0 sends
   nothing, as the builtin's (process-send-string P "") does.
   np_conn_send() on a datagram conn does the same and drops the error.
   Any thread.  */
int np_conn_send_datagram (NpConn *conn, const void *data, gsize len);

/* CONN's datagram address into ADDR and LEN.  FALSE (and LEN 0) for a
   stream conn; LEN is 0 too while a client's name is being looked up.
   Any thread.  */
gboolean np_conn_datagram_address (NpConn *conn,
                                   struct sockaddr_storage *addr,
                                   socklen_t *len);

/* Sets CONN's datagram address, as `set-process-datagram-address':
   refused (FALSE, nothing changed) for a stream conn, a conn with no
   address yet, or an address whose size differs from the current
   one's, a Unix address's size being a whole sockaddr_un's whatever
   its LEN, as the builtin counts it.  Any thread; the next datagram
   sent goes there.  */
gboolean np_conn_set_datagram_address (NpConn *conn,
                                       const struct sockaddr *addr,
                                       socklen_t len);

/* EVENT, a DATA event of CONN, reaches the owner's filter now: do what
   the builtin's recvfrom() into its datagram address does, which is to
   copy the sender over the address's first REMOTE_LEN bytes, leaving
   its length as it was (so an unbound Unix sender changes nothing).  */
void np_conn_datagram_received (NpConn *conn, const NpEvent *event);
/* The same, for an owner that kept the event's REMOTE and REMOTE_LEN
   (SENDER_LEN bytes of SENDER) and let the event go.  */
void np_conn_datagram_received_from (NpConn *conn,
                                     const struct sockaddr_storage *sender,
                                     socklen_t sender_len);

/* Reads CONN's socket on the calling thread, the owner's, which waits
   for CONN: up to CAP bytes into BUF, in order with what the engine
   read before.  The owner must hold none of CONN's events undelivered;
   the queue must have none of its data either, else this reads nothing.
   With nothing there yet, waits up to TIMEOUT_MS for it, the engine
   thread meanwhile not watching the socket for input (the owner's
   other connections then wait that long).  With KEEP, when it read
   something short of CAP, the engine goes on not watching for input,
   for the owner to wait here again soon (a read of CAP bytes is a
   stream in full flow, and is left to the engine, which reads ahead in
   larger batches: reads here give -1 until the engine reads short): the next reply need not pass through the
   engine, whatever time it comes.  The owner then must call
   np_conn_read_direct_end() before it waits in any other way.  Returns
   the bytes read, or -1: nothing, or not now (the end, an error,
   reading stopped or held back, a listener, a seqpacket or datagram
   conn), all of which the engine reports as ever.  */
gssize np_conn_read_direct (NpConn *conn, int timeout_ms, gboolean keep,
                            void *buf, gsize cap);
/* The engine watches CONN's socket for input again, after a
   np_conn_read_direct() with KEEP.  */
void np_conn_read_direct_end (NpConn *conn);

/* Bytes queued and not yet handed to the kernel.  */
gsize np_conn_queued (NpConn *conn);

/* Bytes queued that will never be written, so far: the connection
   ended with them queued, or a write failed (*ERR is then its errno,
   else 0).  A sender still waiting for room learns from it that its
   data is gone.  */
gsize np_conn_dropped (NpConn *conn, int *err);

/* Half close: once every queued byte is written, shutdown(SHUT_WR).
   Reading goes on.  */
void np_conn_shutdown_write (NpConn *conn);

/* Set OPTION on CONN's socket (a connection's or a listener's), on the
   engine thread that owns it; waits for it to be done.  Returns 0, an
   errno, or -1 when the connection has no socket (any more, or yet).
   Never call it on the engine thread.  */
int np_conn_set_option (NpConn *conn, const NpSockopt *option);

/* Stop or resume reading this socket (the kernel then holds the peer
   back).  A connection still connecting stays paused once open.  */
void np_conn_set_paused (NpConn *conn, gboolean paused);

/* Whether the owner takes the stream's data as text when it is all
   ASCII: DATA events read from now on say so in their TEXT field.  For
   an owner whose decoding maps ASCII to itself, which then need not
   decode, or copy, what it reads.  */
void np_conn_set_ascii_text (NpConn *conn, gboolean on);

/* Whether the LEN bytes at DATA are all ASCII.  */
gboolean np_bytes_ascii (const void *data, gsize len);

/* Write what is queued without waiting for the peer, then close the socket,
   or cancel a pending connect.  No event for this connection is queued
   after this call returns; events queued before it may still be drained,
   and the owner ignores them.  A listener is closed by the time this
   returns, so its address can be bound again at once.  */
void np_conn_close (NpConn *conn);

/* The same, but the socket of a stream or datagram client is left for
   the engine thread to close when it next wakes, which np_engine_flush()
   brings about.  For closes made in a batch (an owner's handlers ending
   the connections its events concern): they cost one wake-up in all,
   and this thread none of their system calls.  */
void np_conn_close_deferred (NpConn *conn);

/* Wakes the engine thread if work posted without a wake-up waits for it
   (np_conn_close_deferred(), among others).  */
void np_engine_flush (NpEngine *engine);

G_END_DECLS

#endif /* NETPROC_ENGINE_H */
