/* fuzz-datagram.c -- a datagram netproc's address, from Lisp
   (netproc--set-datagram-address, netproc--datagram-received,
   netproc--datagram-address: lisp-datagram.c; np_conn_*datagram*:
   datagram.c).

   The fuzzer starts the engine once, through the module's own
   functions, with the datagram sockets the builtin has: UDP servers on
   127.0.0.1 and ::1, a Unix one, and a UDP and a Unix client.  Nothing
   is ever sent.  Input: the socket (1 byte), then up to 8 operations
   (1 byte each, and their operands): set the address to a Lisp value
   (lisp-gen.h); deliver a datagram from a sender, raw bytes (1 length
   byte, then the bytes) or any Lisp value; read the address; call one
   of the three with something that is no netproc handle.  Each input
   starts from the socket's first address.

   Invariants:
   - An address is taken exactly when the builtin takes it
     (Fset_process_datagram_address): it has a form, and its size as
     Emacs counts it, a whole sockaddr_un for a path, is the socket's.
     Taken, it is the address, and its length stays; refused, nothing
     changes.
   - A delivered sender is copied over the address's first bytes, no
     more than its length, which stays (recvfrom() into the builtin's
     buffer); a sender that is no string, or longer than any address,
     signals.
   - The address reads back as np_sockaddr_to_lisp makes it, and never
     signals.
   - Something that is no handle is refused with wrong-type-argument.  */

#include "binding.h"
#include "fake-env.h"
#include "lisp-gen.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sys/un.h>

typedef struct
{
  const char *name;
  emacs_value handle;
  NpConn *conn;
  struct sockaddr_storage first;
  socklen_t first_len;
} Socket;

static Socket sockets[5];
static guint n_sockets;
static char *tmpdir, *unix_path;

static emacs_value
call (const char *name, ptrdiff_t nargs, emacs_value *args)
{
  emacs_value sig, data;
  emacs_value v = fake_call (name, nargs, args, &sig, &data);
  FUZZ_CHECK (v, "setting up, %s: signal %s %s", name, fake_repr (sig),
              fake_repr (data));
  return v;
}

static void
add_socket (const char *name, emacs_value handle)
{
  Socket *s = &sockets[n_sockets++];
  fake_keep (handle);
  s->name = name;
  s->handle = handle;
  s->conn = np_conn_arg (fake_env (), handle);
  FUZZ_CHECK (s->conn, "%s: no connection", name);
  np_conn_datagram_address (s->conn, &s->first, &s->first_len);
  FUZZ_CHECK (s->first_len > 0, "%s: no datagram address", name);
}

static void
add_server (const char *name, emacs_value address)
{
  emacs_value args[6] = {
    fake_fixnum (n_sockets + 1), address, fake_fixnum (5), fake_nil (),
    fake_nil (), fake_symbol ("datagram"),
  };
  emacs_value result = call ("netproc--listen", 6, args);
  /* [STEP ERRNO MESSAGE INDEX]: no such address here (no IPv6).  */
  if (fake_type (result) == FAKE_CONS)
    add_socket (name, fake_car (result));
}

static void
add_client (const char *name, emacs_value family, emacs_value path,
            emacs_value remote)
{
  emacs_value args[9] = {
    fake_fixnum (n_sockets + 1), family, fake_nil (), fake_nil (), path,
    remote, fake_t (), fake_nil (), fake_symbol ("datagram"),
  };
  /* A datagram client is open at once: [HANDLE TYPE PAYLOAD].  */
  emacs_value result = call ("netproc--connect", 9, args);
  FUZZ_CHECK (fake_type (result) == FAKE_VECTOR
              && fake_type (fake_vector_ref (result, 0)) == FAKE_USER_PTR,
              "%s: %s", name, fake_repr (result));
  add_socket (name, fake_vector_ref (result, 0));
}

static void
tear_down (void)
{
  emacs_value sig, data;
  fake_call ("netproc--stop", 0, NULL, &sig, &data);
  if (unix_path)
    g_unlink (unix_path);
  if (tmpdir)
    g_rmdir (tmpdir);
}

static void
set_up (void)
{
  fake_env ();
  emacs_value process = fake_process ();
  call ("netproc--start", 1, &process);
  atexit (tear_down);

  emacs_value v4[5] = { fake_fixnum (127), fake_fixnum (0), fake_fixnum (0),
                        fake_fixnum (1), fake_fixnum (0) };
  add_server ("udp4 server", fake_vector (5, v4));
  emacs_value v6[9];
  for (int i = 0; i < 9; i++)
    v6[i] = fake_fixnum (i == 7);
  add_server ("udp6 server", fake_vector (9, v6));

  g_autoptr (GError) error = NULL;
  tmpdir = g_dir_make_tmp ("netproc-fuzz-XXXXXX", &error);
  FUZZ_CHECK (tmpdir, "tmpdir: %s", error->message);
  unix_path = g_build_filename (tmpdir, "dg", NULL);
  emacs_value path = fake_string (unix_path, strlen (unix_path),
                                  FAKE_UNIBYTE);
  add_server ("unix server", path);

  emacs_value discard[5] = { fake_fixnum (127), fake_fixnum (0),
                             fake_fixnum (0), fake_fixnum (1),
                             fake_fixnum (9) };
  add_client ("udp4 client", fake_nil (), fake_nil (),
              fake_vector (5, discard));
  add_client ("unix client", fake_symbol ("local"), path, fake_nil ());
  fake_env_reset ();
}

static void
current (Socket *s, struct sockaddr_storage *addr, socklen_t *len)
{
  FUZZ_CHECK (np_conn_datagram_address (s->conn, addr, len),
              "%s: no datagram address", s->name);
}

/* The size Emacs gives ADDRESS when it compares it with the socket's
   (get_lisp_to_sockaddr_size): a whole sockaddr_un for a path.  */
static socklen_t
emacs_size (emacs_value address, socklen_t len)
{
  if (fake_type (address) == FAKE_STRING)
    return sizeof (struct sockaddr_un);
  return len;
}

static void
op_set (emacs_env *env, Socket *s, FuzzInput *in)
{
  emacs_value address = lisp_gen_value (in);
  struct sockaddr_storage before, after, parsed;
  socklen_t before_len, after_len, parsed_len = 0;
  int family;
  current (s, &before, &before_len);
  gboolean has_form = np_lisp_to_any_sockaddr (env, address, &parsed,
                                               &parsed_len, &family);
  gboolean copy_failed = fake_pending (NULL, NULL);
  env->non_local_exit_clear (env);
  gboolean fits = has_form && emacs_size (address, parsed_len) == before_len;

  emacs_value args[2] = { s->handle, address };
  emacs_value sig, data;
  emacs_value v = fake_call ("netproc--set-datagram-address", 2, args, &sig,
                             &data);
  current (s, &after, &after_len);
  if (copy_failed)
    {
      FUZZ_CHECK (!v, "%s, set %s: no signal", s->name, fake_repr (address));
      return;
    }
  FUZZ_CHECK (v, "%s, set %s: signal %s %s", s->name, fake_repr (address),
              fake_repr (sig), fake_repr (data));
  FUZZ_CHECK (fake_is_symbol (v, fits ? "t" : "nil"),
              "%s (length %u), set %s: %s", s->name, (unsigned) before_len,
              fake_repr (address), fake_repr (v));
  FUZZ_CHECK (after_len == before_len,
              "%s, set %s: length %u, was %u", s->name, fake_repr (address),
              (unsigned) after_len, (unsigned) before_len);
  if (!fits)
    {
      FUZZ_CHECK (memcmp (&after, &before, sizeof after) == 0,
                  "%s, refused %s: changed", s->name, fake_repr (address));
      return;
    }
  guint8 zeros[sizeof after] = { 0 };
  socklen_t n = MIN (parsed_len, after_len);
  FUZZ_CHECK (memcmp (&after, &parsed, n) == 0
              && memcmp ((guint8 *) &after + n, zeros, after_len - n) == 0,
              "%s, set %s: another address", s->name, fake_repr (address));
}

static void
op_received (Socket *s, FuzzInput *in)
{
  emacs_value sender;
  if (fi_u8 (in) & 1)
    sender = lisp_gen_value (in);
  else
    {
      size_t n;
      const guint8 *bytes = fi_bytes (in, fi_u8 (in), &n);
      sender = fake_string (bytes, n, FAKE_UNIBYTE);
    }
  struct sockaddr_storage before, after;
  socklen_t before_len, after_len;
  current (s, &before, &before_len);

  emacs_value args[2] = { s->handle, sender };
  emacs_value sig, data;
  emacs_value v = fake_call ("netproc--datagram-received", 2, args, &sig,
                             &data);
  current (s, &after, &after_len);
  FUZZ_CHECK (after_len == before_len, "%s, from %s: length %u, was %u",
              s->name, fake_repr (sender), (unsigned) after_len,
              (unsigned) before_len);

  if (fake_type (sender) != FAKE_STRING
      || fake_string_kind (sender) == FAKE_MULTIBYTE_RAW)
    {
      FUZZ_CHECK (!v && fake_is_symbol (sig, "wrong-type-argument")
                  && memcmp (&after, &before, sizeof after) == 0,
                  "%s, from %s: not refused", s->name, fake_repr (sender));
      return;
    }
  size_t n;
  const guint8 *bytes = fake_string_bytes (sender, &n);
  if (n > sizeof (struct sockaddr_storage))
    {
      FUZZ_CHECK (!v && fake_is_symbol (sig, "error")
                  && memcmp (&after, &before, sizeof after) == 0,
                  "%s, from %zu bytes: not refused", s->name, n);
      return;
    }
  FUZZ_CHECK (v && fake_is_nil (v), "%s, from %s: %s, signal %s %s",
              s->name, fake_repr (sender), fake_repr (v), fake_repr (sig),
              fake_repr (data));
  size_t copied = MIN (n, (size_t) before_len);
  FUZZ_CHECK (memcmp (&after, bytes, copied) == 0
              && memcmp ((guint8 *) &after + copied,
                         (guint8 *) &before + copied,
                         sizeof after - copied) == 0,
              "%s, from %s: not copied over the first %zu bytes", s->name,
              fake_repr (sender), copied);
}

static void
op_address (emacs_env *env, Socket *s)
{
  struct sockaddr_storage addr;
  socklen_t len;
  current (s, &addr, &len);
  emacs_value sig, data;
  emacs_value v = fake_call ("netproc--datagram-address", 1, &s->handle,
                             &sig, &data);
  FUZZ_CHECK (v, "%s: signal %s %s", s->name, fake_repr (sig),
              fake_repr (data));
  emacs_value expected
    = np_sockaddr_to_lisp (env, (struct sockaddr *) &addr, len);
  FUZZ_CHECK (expected && fake_equal (v, expected), "%s: %s, expected %s",
              s->name, fake_repr (v), fake_repr (expected));
}

static void
op_not_handle (FuzzInput *in)
{
  static const struct
  {
    const char *name;
    ptrdiff_t arity;
  } fns[] = {
    { "netproc--set-datagram-address", 2 },
    { "netproc--datagram-received", 2 },
    { "netproc--datagram-address", 1 },
  };
  guint8 which = fi_u8 (in) % G_N_ELEMENTS (fns);
  emacs_value args[2] = { lisp_gen_value (in), lisp_gen_value (in) };
  emacs_value sig, data;
  emacs_value v = fake_call (fns[which].name, fns[which].arity, args, &sig,
                             &data);
  FUZZ_CHECK (!v && fake_is_symbol (sig, "wrong-type-argument")
              && fake_equal (data, fake_list (2, (emacs_value[]) {
                                fake_symbol ("user-ptrp"), args[0] })),
              "%s of %s: %s, signal %s %s", fns[which].name,
              fake_repr (args[0]), fake_repr (v), fake_repr (sig),
              fake_repr (data));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (n_sockets == 0)
    set_up ();
  emacs_env *env = fake_env ();
  FuzzInput in = { data, size, 0 };
  Socket *s = &sockets[fi_u8 (&in) % n_sockets];
  /* Back to where it started, which an earlier input may have moved.  */
  FUZZ_CHECK (np_conn_set_datagram_address (s->conn,
                                            (struct sockaddr *) &s->first,
                                            s->first_len),
              "%s: its first address refused", s->name);

  for (int i = 0; i < 8 && fi_left (&in) > 0; i++)
    switch (fi_u8 (&in) % 4)
      {
      case 0:
        op_set (env, s, &in);
        break;
      case 1:
        op_received (s, &in);
        break;
      case 2:
        op_address (env, s);
        break;
      default:
        op_not_handle (&in);
        break;
      }
  fake_env_reset ();
  return 0;
}
