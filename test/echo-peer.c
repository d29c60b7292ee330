/* echo-peer.c -- a plain TCP echo peer for the ERT suite, outside Emacs.

     echo-peer COUNT    listen on a free port of 127.0.0.1, print it, then
                        take COUNT connections one after the other and
                        send back whatever each one sends, until its end

   A peer in Emacs answers only when Emacs runs its filter, which is
   never while a netproc wait reads its socket directly: this one
   answers while Emacs waits, as a server elsewhere would.

   Every wait is bounded: the peer gives up 10 seconds after the last
   thing that happened, and exits 3 then.  Other failures exit 1 with a
   message on stderr.  */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_MS 10000

static void
die (const char *what)
{
  fprintf (stderr, "echo-peer: %s: %s\n", what, strerror (errno));
  exit (1);
}

/* Waits for FD to be readable; exits 3 if it stays quiet too long.  */
static void
await_input (int fd)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  int n;
  while ((n = poll (&pfd, 1, WAIT_MS)) < 0 && errno == EINTR)
    ;
  if (n < 0)
    die ("poll");
  if (n == 0)
    exit (3);
}

/* Sends back what FD sends until its end (or a reset).  */
static void
echo (int fd)
{
  char buf[65536];
  for (;;)
    {
      await_input (fd);
      ssize_t n = recv (fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      for (ssize_t off = 0; off < n;)
        {
          ssize_t w = send (fd, buf + off, n - off, MSG_NOSIGNAL);
          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            return;
          off += w;
        }
    }
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    {
      fprintf (stderr, "usage: echo-peer COUNT\n");
      return 2;
    }
  long count = strtol (argv[1], NULL, 10);
  int lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0)
    die ("socket");
  struct sockaddr_in sin = { .sin_family = AF_INET };
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  if (bind (lfd, (struct sockaddr *) &sin, sizeof sin) < 0
      || listen (lfd, 16) < 0
      || getsockname (lfd, (struct sockaddr *) &sin, &len) < 0)
    die ("listen");
  printf ("%d\n", ntohs (sin.sin_port));
  fflush (stdout);

  for (long i = 0; i < count; i++)
    {
      await_input (lfd);
      int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        die ("accept");
      echo (fd);
      close (fd);
    }
  close (lfd);
  return 0;
}
