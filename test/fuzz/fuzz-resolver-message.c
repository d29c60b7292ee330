/* fuzz-resolver-message.c -- a failed lookup's text (np__resolver_message:
   address.c).

   The engine cuts GLib's "Error resolving “HOST”: TEXT" down to TEXT,
   finding the prefix by the host name, which comes from Lisp, in a
   message whose wording comes from the translations.  Input: a flags
   byte (bit 0: no host), then the host, a NUL, and the message.

   Invariants:
   - The result is the message, or what follows a ": " after the first
     occurrence of the host in it; never empty unless the message is.
   - Valid UTF-8 in, valid UTF-8 out: the result goes to make_string,
     which refuses anything else.  */

#include "engine-private.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  FuzzInput in = { data, size, 0 };
  gboolean no_host = fi_u8 (&in) & 1;
  size_t rest;
  const guint8 *bytes = fi_bytes (&in, fi_left (&in), &rest);
  const guint8 *nul = memchr (bytes, 0, rest);
  size_t host_len = nul ? (size_t) (nul - bytes) : rest;
  g_autofree char *host = g_strndup ((const char *) bytes, host_len);
  g_autofree char *message
    = nul ? g_strndup ((const char *) nul + 1, rest - host_len - 1)
          : g_strdup ("");

  g_autoptr (GError) error
    = g_error_new_literal (G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND,
                           message);
  g_autofree char *text = np__resolver_message (error,
                                                no_host ? NULL : host);

  FUZZ_CHECK (text != NULL, "no text");
  size_t n = strlen (message), t = strlen (text);
  FUZZ_CHECK (t <= n && strcmp (message + n - t, text) == 0,
              "\"%s\" is no tail of \"%s\"", text, message);
  FUZZ_CHECK (t > 0 || n == 0, "\"%s\" cut to nothing", message);
  if (t < n)
    {
      const char *at = strstr (message, host);
      FUZZ_CHECK (!no_host && at && n - t >= 2
                  && memcmp (message + n - t - 2, ": ", 2) == 0
                  && message + n - t - 2 >= at + strlen (host),
                  "\"%s\" cut to \"%s\" without host \"%s\" and \": \" "
                  "before", message, text, host);
    }
  if (g_utf8_validate (message, -1, NULL))
    FUZZ_CHECK (g_utf8_validate (text, -1, NULL),
                "\"%s\" cut to invalid UTF-8", message);
  return 0;
}
