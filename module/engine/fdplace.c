/* fdplace.c -- where the engine's descriptors live.

   Emacs waits with select(), so it lowers its soft RLIMIT_NOFILE to
   FD_SETSIZE (1024) and refuses any descriptor at or above it.  The engine
   therefore raises the soft limit to the hard one and moves each of its
   sockets to a number >= 1024: the low numbers stay free for Emacs's own
   pipes and subprocesses, and the engine can hold thousands of
   connections.  Emacs restores the original limit for its children
   itself.  */

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine-private.h"

#define NP_FD_FLOOR 1024

void
np__fd_raise_limit (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
    return;
  rl.rlim_cur = rl.rlim_max;
  /* Failing leaves the old limit: sockets then stay below 1024 (see
     np__fd_socket), which is what the builtin would have had anyway.  */
  (void) setrlimit (RLIMIT_NOFILE, &rl);
}

/* A close-on-exec, non-blocking socket, numbered 1024 or above when the
   limit leaves room there.  Returns the descriptor, or -1 with *ERR set.  */
int
np__fd_socket (int family, int type, int *err)
{
  int fd = socket (family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      *err = errno;
      return -1;
    }
  return np__fd_place (fd);
}

/* Moves FD (close-on-exec, and non-blocking if it was) to 1024 or above
   when the limit leaves room there, and returns where it is now.  A
   duplicate shares the open file, so O_NONBLOCK comes along.  */
int
np__fd_place (int fd)
{
  if (fd >= NP_FD_FLOOR)
    return fd;

  int high = fcntl (fd, F_DUPFD_CLOEXEC, NP_FD_FLOOR);
  if (high < 0)
    return fd;  /* EINVAL or EMFILE: no room up there, keep the low one */
  close (fd);
  return high;
}
