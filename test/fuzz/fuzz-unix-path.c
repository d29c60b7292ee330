/* fuzz-unix-path.c -- Unix socket paths of any length (np__address_unix:
   address.c; and the path form of np_lisp_to_sockaddr: lisp-address.c).

   A path reaches the engine as :service of a local connection (a C
   string) and as a :remote or :local string (a Lisp string, NULs and
   all).  Input: the path's bytes, up to 4 KiB.

   Invariants:
   - np__address_unix takes a path exactly when it and its NUL fit
     sun_path, and makes the address of that path with its length;
     refused, it writes nothing (its caller reports ENAMETOOLONG).
   - The Lisp form of the same bytes is taken exactly when they have no
     NUL and fit, and makes the very same address: a path means one
     thing whichever way it comes.  */

#include "binding.h"
#include "engine-private.h"
#include "fake-env.h"
#include "lisp-gen.h"

#include <sys/un.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  emacs_env *env = fake_env ();
  /* libFuzzer's empty input may come as NULL, which g_strndup keeps.  */
  g_autofree char *path = g_strndup (size ? (const char *) data : "", size);
  size_t n = strlen (path);
  const size_t room = sizeof ((struct sockaddr_un *) 0)->sun_path;

  struct sockaddr_storage ss;
  socklen_t len = 0x5a5a;
  memset (&ss, 0x5a, sizeof ss);
  gboolean ok = np__address_unix (path, &ss, &len);
  FUZZ_CHECK (ok == (n < room), "a path of %zu bytes: returned %d", n, ok);
  if (!ok)
    {
      guint8 poison[sizeof ss];
      memset (poison, 0x5a, sizeof poison);
      FUZZ_CHECK (len == 0x5a5a && memcmp (&ss, poison, sizeof ss) == 0,
                  "a path of %zu bytes, refused: written to", n);
    }
  else
    {
      const struct sockaddr_un *sun = (const struct sockaddr_un *) &ss;
      guint8 zeros[sizeof ss] = { 0 };
      size_t end = offsetof (struct sockaddr_un, sun_path) + n + 1;
      FUZZ_CHECK (sun->sun_family == AF_UNIX
                  && len == end && len <= sizeof (struct sockaddr_un)
                  && memcmp (sun->sun_path, path, n + 1) == 0
                  && memcmp ((guint8 *) &ss + end, zeros,
                             sizeof ss - end) == 0,
                  "a path of %zu bytes: length %u, or not the path", n,
                  (unsigned) len);
    }

  struct sockaddr_storage from_lisp;
  socklen_t from_lisp_len = 0;
  emacs_value string = fake_string (data, size, FAKE_UNIBYTE);
  gboolean lisp_ok = np_lisp_to_sockaddr (env, string, &from_lisp,
                                          &from_lisp_len);
  FUZZ_CHECK (!fake_pending (NULL, NULL), "%s: a signal",
              fake_repr (string));
  FUZZ_CHECK (lisp_ok == (ok && n == size), "%s: returned %d",
              fake_repr (string), lisp_ok);
  if (lisp_ok)
    FUZZ_CHECK (from_lisp_len == len
                && memcmp (&from_lisp, &ss, sizeof ss) == 0,
                "%s: another address than the same C string's",
                fake_repr (string));
  fake_env_reset ();
  return 0;
}
