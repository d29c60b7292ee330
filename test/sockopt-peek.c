/* sockopt-peek.c -- read the socket options of a socket in another process.

     sockopt-peek PID tcp PORT [listen]   the TCP socket (IPv4 or IPv6)
                                          whose local port is PORT; with
                                          "listen", the listening one
     sockopt-peek PID udp PORT            the UDP socket (IPv4 or IPv6)
                                          whose local port is PORT
     sockopt-peek PID unix PATH           the Unix socket bound to PATH

   Finds the socket's inode in /proc/net/{tcp,tcp6,udp,udp6,unix}, the
   descriptor of PID that refers to it in /proc/PID/fd, takes a duplicate
   of it with pidfd_getfd(2) (Linux 5.6 or later; needs the right to
   ptrace PID, which root has), and prints what getsockopt() says, as a
   Lisp plist:

     (:bindtodevice "lo" :broadcast 0 :dontroute 0 :keepalive 1
      :linger (1 . 5) :oobinline 0 :priority 3 :reuseaddr 0)

   The same for a builtin network process and a netproc, so the ERT
   suite compares what each really set.  Errors go to stderr, with exit
   status 1 (not found: 2).  */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TCP_LISTEN_STATE 0x0A

static int fd_of (int pid, unsigned long inode);

/* The inode of a TCP socket of process PID with local port PORT in the
   table FILE (LISTEN only: in the listening state), or 0.  Other
   processes' sockets may have the same port (an IPv4 and an IPv6 one, or
   the two ends of a loopback connection that the kernel numbered alike):
   only one of PID's own counts.  */
static unsigned long
tcp_inode (const char *file, int pid, unsigned port, int listen)
{
  FILE *f = fopen (file, "r");
  if (!f)
    return 0;
  char line[512];
  unsigned long found = 0;
  if (!fgets (line, sizeof line, f))  /* the header */
    line[0] = 0;
  while (!found && fgets (line, sizeof line, f))
    {
      char local[64], remote[64];
      unsigned state;
      unsigned long inode;
      /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
      if (sscanf (line, " %*s %63s %63s %x %*s %*s %*s %*u %*u %lu",
                  local, remote, &state, &inode) != 4)
        continue;
      char *colon = strrchr (local, ':');
      if (!colon || strtoul (colon + 1, NULL, 16) != port)
        continue;
      if (listen && state != TCP_LISTEN_STATE)
        continue;
      if (!listen && state == TCP_LISTEN_STATE)
        continue;
      if (inode != 0 && fd_of (pid, inode) >= 0)
        found = inode;
    }
  fclose (f);
  return found;
}

static unsigned long
unix_inode (const char *path)
{
  FILE *f = fopen ("/proc/net/unix", "r");
  if (!f)
    return 0;
  char line[4096];
  unsigned long found = 0;
  if (!fgets (line, sizeof line, f))
    line[0] = 0;
  while (!found && fgets (line, sizeof line, f))
    {
      /* Num RefCount Protocol Flags Type St Inode Path */
      unsigned long inode;
      int offset = 0;
      if (sscanf (line, "%*s %*s %*s %*s %*s %*s %lu %n", &inode, &offset) < 1
          || offset == 0)
        continue;
      char *name = line + offset;
      name[strcspn (name, "\n")] = 0;
      if (strcmp (name, path) == 0)
        found = inode;
    }
  fclose (f);
  return found;
}

/* The descriptor of PID that is socket INODE, or -1.  */
static int
fd_of (int pid, unsigned long inode)
{
  char dir[64], want[64];
  snprintf (dir, sizeof dir, "/proc/%d/fd", pid);
  snprintf (want, sizeof want, "socket:[%lu]", inode);
  DIR *d = opendir (dir);
  if (!d)
    return -1;
  struct dirent *e;
  int fd = -1;
  while (fd < 0 && (e = readdir (d)))
    {
      char link[600], target[128];
      snprintf (link, sizeof link, "%s/%s", dir, e->d_name);
      ssize_t n = readlink (link, target, sizeof target - 1);
      if (n < 0)
        continue;
      target[n] = 0;
      if (strcmp (target, want) == 0)
        fd = atoi (e->d_name);
    }
  closedir (d);
  return fd;
}

static int
int_option (int fd, int name)
{
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt (fd, SOL_SOCKET, name, &value, &len) < 0)
    return -1;
  return value;
}

int
main (int argc, char **argv)
{
  if (argc < 4)
    {
      fprintf (stderr, "usage: %s PID tcp PORT [listen] | PID udp PORT"
               " | PID unix PATH\n", argv[0]);
      return 1;
    }
  int pid = atoi (argv[1]);
  unsigned long inode = 0;
  if (strcmp (argv[2], "tcp") == 0)
    {
      unsigned port = (unsigned) strtoul (argv[3], NULL, 10);
      int listen = argc > 4 && strcmp (argv[4], "listen") == 0;
      inode = tcp_inode ("/proc/net/tcp", pid, port, listen);
      if (!inode)
        inode = tcp_inode ("/proc/net/tcp6", pid, port, listen);
    }
  else if (strcmp (argv[2], "udp") == 0)
    {
      /* The UDP tables have the TCP tables' columns; no socket there
         is in the listening state.  */
      unsigned port = (unsigned) strtoul (argv[3], NULL, 10);
      inode = tcp_inode ("/proc/net/udp", pid, port, 0);
      if (!inode)
        inode = tcp_inode ("/proc/net/udp6", pid, port, 0);
    }
  else if (strcmp (argv[2], "unix") == 0)
    inode = unix_inode (argv[3]);
  if (!inode)
    {
      fprintf (stderr, "no such socket\n");
      return 2;
    }
  int remote_fd = fd_of (pid, inode);
  if (remote_fd < 0)
    {
      fprintf (stderr, "socket %lu is not one of process %d's\n", inode, pid);
      return 2;
    }
  int pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  if (pidfd < 0)
    {
      perror ("pidfd_open");
      return 1;
    }
  int fd = (int) syscall (SYS_pidfd_getfd, pidfd, remote_fd, 0);
  if (fd < 0)
    {
      perror ("pidfd_getfd");
      return 1;
    }

  char device[IFNAMSIZ + 1] = { 0 };
  socklen_t device_len = IFNAMSIZ;
  if (getsockopt (fd, SOL_SOCKET, SO_BINDTODEVICE, device, &device_len) < 0)
    device_len = 0;
  device[device_len < IFNAMSIZ ? device_len : IFNAMSIZ] = 0;
  struct linger linger = { 0, 0 };
  socklen_t linger_len = sizeof linger;
  if (getsockopt (fd, SOL_SOCKET, SO_LINGER, &linger, &linger_len) < 0)
    linger.l_onoff = linger.l_linger = -1;

  /* Interface names are printable and have no quotes or backslashes.  */
  printf ("(:bindtodevice \"%s\" :broadcast %d :dontroute %d :keepalive %d"
          " :linger (%d . %d) :oobinline %d :priority %d :reuseaddr %d)\n",
          device, int_option (fd, SO_BROADCAST),
          int_option (fd, SO_DONTROUTE), int_option (fd, SO_KEEPALIVE),
          linger.l_onoff, linger.l_linger, int_option (fd, SO_OOBINLINE),
          int_option (fd, SO_PRIORITY), int_option (fd, SO_REUSEADDR));
  close (fd);
  close (pidfd);
  return 0;
}
