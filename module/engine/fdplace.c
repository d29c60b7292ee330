/* fdplace.c -- where the engine's descriptors live.

   Emacs waits with select(), so it lowers its soft RLIMIT_NOFILE to
   FD_SETSIZE (1024) and refuses any descriptor at or above it.  The engine
   therefore raises the soft limit to the hard one and moves each of its
   sockets to a number >= 1024: the low numbers stay free for Emacs's own
   pipes and subprocesses, and the engine can hold thousands of
   connections.  Emacs restores the original limit for its children
   itself.

   When every number from 1024 up is taken, the engine spills into the
   upper half of the low range, 512 to 1023, and no further: numbers
   below 512 stay Emacs's, so that it can still open a file or start a
   subprocess with the most connections open.  Only when the limit could
   not be raised past 1024 does the engine take any number, as the
   builtin would.  */

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine-private.h"

#define NP_FD_FLOOR 1024
#define NP_FD_SPILL 512

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

/* A close-on-exec, non-blocking socket placed by np__fd_place().
   Returns the descriptor, or -1 with *ERR set.  */
int
np__fd_socket (int family, int type, int *err)
{
  int fd = socket (family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      *err = errno;
      return -1;
    }
  fd = np__fd_place (fd);
  if (fd < 0)
    *err = errno;
  return fd;
}

static gboolean
limit_above_floor (void)
{
  struct rlimit rl;
  return getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > NP_FD_FLOOR;
}

/* Moves FD (close-on-exec, and non-blocking if it was) where the engine
   keeps its descriptors (see above), and returns where it is now; or
   closes it and returns -1 with errno EMFILE when only Emacs's numbers
   are left.  A duplicate shares the open file, so O_NONBLOCK comes
   along.  */
int
np__fd_place (int fd)
{
  if (fd >= NP_FD_FLOOR)
    return fd;

  int high = fcntl (fd, F_DUPFD_CLOEXEC, NP_FD_FLOOR);
  if (high >= 0)
    {
      close (fd);
      return high;
    }
  /* A limit of 1024 or less: the low range is all there is.  */
  if (!limit_above_floor () || fd >= NP_FD_SPILL)
    return fd;

  high = fcntl (fd, F_DUPFD_CLOEXEC, NP_FD_SPILL);
  close (fd);
  if (high >= 0 && high < NP_FD_FLOOR)
    return high;
  if (high >= 0)
    close (high);
  errno = EMFILE;
  return -1;
}
