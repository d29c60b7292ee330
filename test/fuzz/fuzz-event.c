/* fuzz-event.c -- events as Lisp data (np_event_payload: lisp-event.c).

   What the drain hands Lisp is made from what the kernel and the peers
   gave the engine: data bytes, datagram senders, addresses of any
   family and length.  Input, big-endian: type (1 byte, any value), id
   (8), code (4), flags (1: resolve_error, option_failed, a message, a
   datagram), option index (4), accepted id (8), local and remote
   lengths (1 each, up to a sockaddr_storage) and that many bytes each,
   a message (1 length byte, made valid UTF-8, as the engine's messages
   are), the datagram's full size over its length (2), then the data.

   Invariants:
   - No signal: one would lose every event of the drain.
   - Each payload has the shape binding.h gives for its type, with the
     event's values in it: the data as a unibyte string of its bytes, a
     datagram's sender as the raw bytes of its address, the code, the
     message, the addresses as np_sockaddr_to_lisp makes them.
   - An accepted connection's handle takes the event's reference: the
     event lets go of it, and collecting the handle frees the
     connection (LeakSanitizer sees it if not).  */

#include "binding.h"
#include "engine-private.h"
#include "fake-env.h"
#include "lisp-gen.h"

static void
fill_address (FuzzInput *in, struct sockaddr_storage *ss, socklen_t len)
{
  size_t got;
  const guint8 *bytes = fi_bytes (in, len, &got);
  memcpy (ss, bytes, got);
}

static void
check_address (emacs_env *env, emacs_value got,
               const struct sockaddr_storage *ss, socklen_t len,
               const char *what)
{
  emacs_value expected
    = np_sockaddr_to_lisp (env, (const struct sockaddr *) ss, len);
  FUZZ_CHECK (expected && fake_equal (got, expected), "%s: %s, expected %s",
              what, fake_repr (got), fake_repr (expected));
}

static void
check_string (emacs_value v, const void *bytes, size_t len,
              FakeStringKind kind, const char *what)
{
  FUZZ_CHECK (fake_type (v) == FAKE_STRING, "%s: %s", what, fake_repr (v));
  size_t n;
  const guint8 *got = fake_string_bytes (v, &n);
  FUZZ_CHECK (n == len && memcmp (got, bytes, n) == 0
              && fake_string_kind (v) == kind,
              "%s: %s, expected %zu bytes", what, fake_repr (v), len);
}

static void
check_list (emacs_value v, ptrdiff_t n, const char *what)
{
  FUZZ_CHECK (fake_list_length (v) == n, "%s: %s, expected a list of %td",
              what, fake_repr (v), n);
}

static void
check_payload (emacs_env *env, const NpEvent *ev, emacs_value v,
               NpConn *accepted)
{
  switch (ev->type)
    {
    case NP_EVENT_OPEN:
      FUZZ_CHECK (fake_type (v) == FAKE_CONS, "OPEN: %s", fake_repr (v));
      check_address (env, fake_car (v), &ev->local, ev->local_len,
                     "OPEN local");
      check_address (env, fake_cdr (v), &ev->remote, ev->remote_len,
                     "OPEN remote");
      break;
    case NP_EVENT_DATA:
      if (ev->datagram_len == 0)
        {
          check_string (v, ev->data, ev->len, FAKE_UNIBYTE, "DATA");
          break;
        }
      FUZZ_CHECK (fake_type (v) == FAKE_CONS, "datagram: %s", fake_repr (v));
      check_string (fake_car (v), ev->data, ev->len, FAKE_UNIBYTE,
                    "datagram bytes");
      check_string (fake_cdr (v), &ev->remote, ev->remote_len, FAKE_UNIBYTE,
                    "datagram sender");
      break;
    case NP_EVENT_FAILED:
      {
        check_list (v, 6, "FAILED");
        FUZZ_CHECK (fake_fixnum_value (fake_nth (v, 0)) == ev->code,
                    "FAILED code: %s", fake_repr (v));
        const char *msg = ev->message ? ev->message : g_strerror (ev->code);
        check_string (fake_nth (v, 1), msg, strlen (msg),
                      fake_string_kind (fake_nth (v, 1)), "FAILED message");
        FUZZ_CHECK (fake_is_symbol (fake_nth (v, 2),
                                    ev->resolve_error ? "t" : "nil"),
                    "FAILED resolve error: %s", fake_repr (v));
        check_address (env, fake_nth (v, 3), &ev->local, ev->local_len,
                       "FAILED local");
        check_address (env, fake_nth (v, 4), &ev->remote, ev->remote_len,
                       "FAILED remote");
        emacs_value index = fake_nth (v, 5);
        FUZZ_CHECK (ev->option_failed
                    ? fake_type (index) == FAKE_FIXNUM
                      && fake_fixnum_value (index) == ev->option_index
                    : fake_is_nil (index),
                    "FAILED option: %s", fake_repr (v));
        break;
      }
    case NP_EVENT_CLOSED:
    case NP_EVENT_ACCEPT_FAILED:
      FUZZ_CHECK (fake_type (v) == FAKE_FIXNUM
                  && fake_fixnum_value (v) == ev->code,
                  "type %d: %s, expected %d", ev->type, fake_repr (v),
                  ev->code);
      break;
    case NP_EVENT_ACCEPTED:
      {
        check_list (v, 4, "ACCEPTED");
        emacs_value handle = fake_nth (v, 0);
        FUZZ_CHECK (fake_type (handle) == FAKE_USER_PTR
                    && fake_user_finalizer (handle) != NULL,
                    "ACCEPTED handle: %s", fake_repr (v));
        FUZZ_CHECK (ev->accepted == NULL,
                    "ACCEPTED: the event kept the connection %p", accepted);
        FUZZ_CHECK (fake_fixnum_value (fake_nth (v, 1))
                    == (intmax_t) ev->accepted_id,
                    "ACCEPTED id: %s", fake_repr (v));
        check_address (env, fake_nth (v, 2), &ev->local, ev->local_len,
                       "ACCEPTED local");
        check_address (env, fake_nth (v, 3), &ev->remote, ev->remote_len,
                       "ACCEPTED remote");
        break;
      }
    default:
      FUZZ_CHECK (fake_is_nil (v), "type %d: %s, expected nil", ev->type,
                  fake_repr (v));
      break;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  emacs_env *env = fake_env ();
  FuzzInput in = { data, size, 0 };
  NpEventType type = (NpEventType) fi_u8 (&in);
  guint64 id = fi_u64 (&in);
  int code = (int) fi_u32 (&in);
  guint8 flags = fi_u8 (&in);
  guint option_index = fi_u32 (&in);
  guint64 accepted_id = fi_u64 (&in);
  const socklen_t room = sizeof (struct sockaddr_storage);
  socklen_t local_len = fi_u8 (&in) % (room + 1);
  socklen_t remote_len = fi_u8 (&in) % (room + 1);
  struct sockaddr_storage local = { 0 }, remote = { 0 };
  fill_address (&in, &local, local_len);
  fill_address (&in, &remote, remote_len);
  size_t message_len;
  const guint8 *message = fi_bytes (&in, fi_u8 (&in), &message_len);
  gsize datagram_extra = fi_u16 (&in);
  size_t len;
  const guint8 *bytes = fi_bytes (&in, fi_left (&in), &len);

  NpEvent *ev = np__event_new (id, type, type == NP_EVENT_DATA ? len : 0);
  ev->code = code;
  ev->resolve_error = flags & 1;
  ev->option_failed = (flags & 2) != 0;
  ev->option_index = option_index;
  if (flags & 4)
    ev->message = g_utf8_make_valid ((const char *) message,
                                     (gssize) message_len);
  ev->local = local;
  ev->local_len = local_len;
  ev->remote = remote;
  ev->remote_len = remote_len;
  NpConn *accepted = NULL;
  if (type == NP_EVENT_ACCEPTED)
    {
      /* An engine of its own is not needed: only the handle's
         finalizer, which lets go of it, ever sees it.  */
      accepted = np__conn_new (NULL, accepted_id);
      ev->accepted = accepted;
      ev->accepted_id = accepted_id;
    }
  if (type == NP_EVENT_DATA)
    {
      memcpy (ev->data, bytes, len);
      if (flags & 8)
        ev->datagram_len = len + datagram_extra;
    }

  emacs_value v = np_event_payload (env, ev);
  emacs_value sig = NULL, sig_data = NULL;
  FUZZ_CHECK (!fake_pending (&sig, &sig_data), "type %d: signal %s %s",
              type, fake_repr (sig), fake_repr (sig_data));
  check_payload (env, ev, v, accepted);

  np_event_free (ev);
  /* Collects the handle, whose finalizer frees ACCEPTED.  */
  fake_env_reset ();
  return 0;
}
