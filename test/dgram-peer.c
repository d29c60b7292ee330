/* dgram-peer.c -- a plain datagram peer for the ERT suite, with nothing
   of Emacs in it.

     dgram-peer echo ipv4|ipv6 COUNT       bind a free loopback port, print
     dgram-peer echo unix PATH COUNT       it (or "ready" for PATH), then
                                           send each of COUNT datagrams
                                           back to its sender, unchanged
     dgram-peer send ipv4|ipv6 PORT TEXT...  send each TEXT as one datagram
     dgram-peer send unix PATH TEXT...       to loopback PORT or PATH; an
                                           empty TEXT is a zero-length
                                           datagram, which Emacs cannot send

   Every wait is bounded: echo gives up 10 seconds after the last
   datagram, and exits 3 then.  Other failures exit 1 with a message on
   stderr.  */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_MS 10000
/* Larger than any UDP payload, and than the Unix datagrams tests send.  */
#define BUF_SIZE (256 * 1024)

static void
die (const char *what)
{
  fprintf (stderr, "dgram-peer: %s: %s\n", what, strerror (errno));
  exit (1);
}

/* The loopback address of FAMILY ("ipv4" or "ipv6") with PORT, or the
   Unix address PATH for "unix", into SS; returns its length.  */
static socklen_t
address (const char *family, const char *where, struct sockaddr_storage *ss)
{
  memset (ss, 0, sizeof *ss);
  if (strcmp (family, "unix") == 0)
    {
      struct sockaddr_un *sun = (struct sockaddr_un *) ss;
      if (strlen (where) >= sizeof sun->sun_path)
        {
          errno = ENAMETOOLONG;
          die (where);
        }
      sun->sun_family = AF_UNIX;
      strcpy (sun->sun_path, where);
      return sizeof *sun;
    }
  int port = atoi (where);
  if (strcmp (family, "ipv6") == 0)
    {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_addr = in6addr_loopback;
      sin6->sin6_port = htons (port);
      return sizeof *sin6;
    }
  struct sockaddr_in *sin = (struct sockaddr_in *) ss;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  sin->sin_port = htons (port);
  return sizeof *sin;
}

static int
echo (const char *family, const char *where, int count)
{
  struct sockaddr_storage ss;
  socklen_t len = address (family, where, &ss);
  int fd = socket (ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0)
    die ("socket");
  if (bind (fd, (struct sockaddr *) &ss, len) < 0)
    die ("bind");
  if (ss.ss_family == AF_UNIX)
    {
      int size = BUF_SIZE + 4096;
      setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
      printf ("ready\n");
    }
  else
    {
      len = sizeof ss;
      if (getsockname (fd, (struct sockaddr *) &ss, &len) < 0)
        die ("getsockname");
      printf ("%d\n", ntohs (ss.ss_family == AF_INET6
                             ? ((struct sockaddr_in6 *) &ss)->sin6_port
                             : ((struct sockaddr_in *) &ss)->sin_port));
    }
  fflush (stdout);

  static char buf[BUF_SIZE];
  for (int i = 0; i < count; i++)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      if (poll (&pfd, 1, WAIT_MS) <= 0)
        return 3;
      struct sockaddr_storage from;
      socklen_t from_len = sizeof from;
      ssize_t n = recvfrom (fd, buf, sizeof buf, 0,
                            (struct sockaddr *) &from, &from_len);
      if (n < 0)
        die ("recvfrom");
      if (sendto (fd, buf, n, 0, (struct sockaddr *) &from, from_len) < 0)
        die ("sendto");
    }
  return 0;
}

static int
send_each (const char *family, const char *where, int n, char **texts)
{
  struct sockaddr_storage ss;
  socklen_t len = address (family, where, &ss);
  int fd = socket (ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0)
    die ("socket");
  if (ss.ss_family == AF_UNIX)
    {
      /* Bound, so that the receiver sees who sent it.  */
      struct sockaddr_storage me;
      char path[sizeof ((struct sockaddr_un *) 0)->sun_path];
      snprintf (path, sizeof path, "%s.peer", where);
      socklen_t me_len = address (family, path, &me);
      unlink (path);
      if (bind (fd, (struct sockaddr *) &me, me_len) < 0)
        die ("bind");
    }
  for (int i = 0; i < n; i++)
    if (sendto (fd, texts[i], strlen (texts[i]), 0, (struct sockaddr *) &ss,
                len) < 0)
      die ("sendto");
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 5 && strcmp (argv[1], "echo") == 0 && strcmp (argv[2], "unix") == 0)
    return echo (argv[2], argv[3], atoi (argv[4]));
  if (argc == 4 && strcmp (argv[1], "echo") == 0)
    return echo (argv[2], "0", atoi (argv[3]));
  if (argc >= 5 && strcmp (argv[1], "send") == 0)
    return send_each (argv[2], argv[3], argc - 4, argv + 4);
  fprintf (stderr, "usage: dgram-peer echo ipv4|ipv6 COUNT\n"
                   "       dgram-peer echo unix PATH COUNT\n"
                   "       dgram-peer send ipv4|ipv6|unix PORT|PATH TEXT...\n");
  return 2;
}
