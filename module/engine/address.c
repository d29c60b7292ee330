/* address.c -- socket address helpers.  */

#include <string.h>
#include <sys/un.h>

#include "engine-private.h"

/* Fills SS with an AF_UNIX address for PATH.  FALSE when PATH does not
   fit in sun_path (the caller reports ENAMETOOLONG).  */
gboolean
np__address_unix (const char *path, struct sockaddr_storage *ss,
                  socklen_t *len)
{
  struct sockaddr_un *sun = (struct sockaddr_un *) ss;
  gsize path_len = strlen (path);
  if (path_len >= sizeof sun->sun_path)
    return FALSE;
  memset (ss, 0, sizeof *ss);
  sun->sun_family = AF_UNIX;
  memcpy (sun->sun_path, path, path_len + 1);
  *len = (socklen_t) (G_STRUCT_OFFSET (struct sockaddr_un, sun_path)
                      + path_len + 1);
  return TRUE;
}

/* GLib words a failed lookup as "Error resolving “HOST”: TEXT", where
   TEXT is gai_strerror()'s; the engine reports TEXT alone, as the builtin
   does.  The prefix is found by the host name rather than by its wording,
   which translations change.  */
char *
np__resolver_message (const GError *error, const char *host)
{
  const char *msg = error->message;
  /* An empty HOST is found at the start; its separator is then the first
     ": " in the message, which is the one after the quoted name.  */
  const char *at = host ? strstr (msg, host) : NULL;
  if (at)
    {
      const char *sep = strstr (at + strlen (host), ": ");
      if (sep && sep[2])
        return g_strdup (sep + 2);
    }
  return g_strdup (msg);
}
