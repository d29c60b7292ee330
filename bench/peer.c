/* peer.c -- the benchmark's loopback peer.
 *
 *   peer serve PORTFILE SOURCE_BYTES LIFETIME_S
 *       One epoll loop on 127.0.0.1 with four listening ports, written to
 *       PORTFILE as "source=P sink=P echo=P tsource=P pid=N\n":
 *         source   each connection gets SOURCE_BYTES bytes, then is closed;
 *         sink     reads and discards; at EOF answers "<bytes>\n" and closes;
 *         echo     writes back whatever it reads;
 *         tsource  reads a line "COUNT INTERVAL_US\n", then sends COUNT
 *                  64-byte messages, each starting with the send time
 *                  (CLOCK_REALTIME, decimal nanoseconds, 20 digits),
 *                  INTERVAL_US apart (0: as fast as possible), then closes.
 *       Exits after LIFETIME_S seconds, or on SIGTERM.
 *
 *   peer connect PORT SECONDS INFLIGHT
 *       Opens connections to 127.0.0.1:PORT as fast as it can, keeping at
 *       most INFLIGHT pending; a connection ends when the server closes it
 *       (or after one second), and another is opened.  Stops after SECONDS.
 *       Prints "opened=N closed_by_server=N errors=N".
 *
 * Loopback only; every loop is bounded by a count or a deadline.  The
 * descriptor limit is raised as far as the system allows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum kind { K_LISTEN, K_SOURCE, K_SINK, K_ECHO, K_TSOURCE };

struct conn {
  int fd;
  enum kind kind;
  enum kind listen_kind; /* for K_LISTEN */
  uint64_t left;         /* source: bytes still to send; sink: bytes seen */
  char buf[4096];        /* echo: pending bytes; tsource: request line */
  size_t len, off;
};

static char block[1 << 20];
static volatile sig_atomic_t stop_flag;

static void on_term (int sig) { (void) sig; stop_flag = 1; }

static double now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void raise_nofile (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    return;
  /* A privileged peer may go beyond the hard limit, so that it is never
     the side that runs out first. */
  struct rlimit want = { 200000, 200000 };
  if (rl.rlim_max < want.rlim_max && setrlimit (RLIMIT_NOFILE, &want) == 0)
    return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit (RLIMIT_NOFILE, &rl);
}

static int listen_on (int *port)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) != 0
      || listen (fd, 4096) != 0
      || getsockname (fd, (struct sockaddr *) &sa, &sl) != 0)
    {
      close (fd);
      return -1;
    }
  *port = ntohs (sa.sin_port);
  return fd;
}

static void drop (int ep, struct conn *c)
{
  epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  free (c);
}

static int set_events (int ep, struct conn *c, uint32_t ev)
{
  struct epoll_event e = { .events = ev, .data.ptr = c };
  return epoll_ctl (ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* tsource: the whole stream is sent from here, blocking, bounded by the
   count and by a 60-second deadline; nothing else is served meanwhile. */
static void run_tsource (int fd, long count, long interval_us)
{
  int fl = fcntl (fd, F_GETFL);
  fcntl (fd, F_SETFL, fl & ~O_NONBLOCK);
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (count < 0)
    count = 0;
  if (count > 100000000L)
    count = 100000000L;
  double deadline = now_s () + 60;
  struct timespec next;
  clock_gettime (CLOCK_MONOTONIC, &next);
  char msg[64];
  for (long i = 0; i < count && !stop_flag; i++)
    {
      if (interval_us > 0)
        {
          next.tv_nsec += interval_us * 1000L;
          while (next.tv_nsec >= 1000000000L)
            {
              next.tv_nsec -= 1000000000L;
              next.tv_sec++;
            }
          clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
      struct timespec rt;
      clock_gettime (CLOCK_REALTIME, &rt);
      memset (msg, '.', sizeof msg);
      char head[32];
      int n = snprintf (head, sizeof head, "%020lld",
                        (long long) rt.tv_sec * 1000000000LL + rt.tv_nsec);
      memcpy (msg, head, (size_t) n);
      msg[63] = '\n';
      size_t off = 0;
      while (off < sizeof msg)
        {
          ssize_t w = send (fd, msg + off, sizeof msg - off, MSG_NOSIGNAL);
          if (w <= 0)
            {
              if (w < 0 && errno == EINTR)
                continue;
              return;
            }
          off += (size_t) w;
        }
      if ((i & 1023) == 0 && now_s () > deadline)
        return;
    }
}

static int serve (const char *portfile, uint64_t source_bytes, int lifetime)
{
  memset (block, 'x', sizeof block);
  int ep = epoll_create1 (EPOLL_CLOEXEC);
  if (ep < 0)
    return 1;
  static const enum kind kinds[4] = { K_SOURCE, K_SINK, K_ECHO, K_TSOURCE };
  int ports[4];
  for (int i = 0; i < 4; i++)
    {
      struct conn *l = calloc (1, sizeof *l);
      if (!l || (l->fd = listen_on (&ports[i])) < 0)
        {
          perror ("peer: listen");
          return 1;
        }
      l->kind = K_LISTEN;
      l->listen_kind = kinds[i];
      struct epoll_event e = { .events = EPOLLIN, .data.ptr = l };
      epoll_ctl (ep, EPOLL_CTL_ADD, l->fd, &e);
    }
  char tmp[4096];
  snprintf (tmp, sizeof tmp, "%s.tmp", portfile);
  FILE *f = fopen (tmp, "w");
  if (!f)
    return 1;
  fprintf (f, "source=%d sink=%d echo=%d tsource=%d pid=%d\n", ports[0],
           ports[1], ports[2], ports[3], (int) getpid ());
  fclose (f);
  rename (tmp, portfile);

  double end = now_s () + lifetime;
  struct epoll_event evs[256];
  while (!stop_flag && now_s () < end)
    {
      int n = epoll_wait (ep, evs, 256, 200);
      for (int i = 0; i < n; i++)
        {
          struct conn *c = evs[i].data.ptr;
          uint32_t ev = evs[i].events;
          if (c->kind == K_LISTEN)
            {
              /* Bounded: at most 256 accepts per wake-up. */
              for (int k = 0; k < 256; k++)
                {
                  int fd = accept4 (c->fd, NULL, NULL,
                                    SOCK_NONBLOCK | SOCK_CLOEXEC);
                  if (fd < 0)
                    break;
                  struct conn *a = calloc (1, sizeof *a);
                  if (!a)
                    {
                      close (fd);
                      break;
                    }
                  a->fd = fd;
                  a->kind = c->listen_kind;
                  uint32_t want = EPOLLIN;
                  if (a->kind == K_SOURCE)
                    {
                      a->left = source_bytes;
                      want = EPOLLOUT;
                    }
                  if (a->kind == K_ECHO)
                    {
                      int one = 1;
                      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                  sizeof one);
                    }
                  struct epoll_event e = { .events = want, .data.ptr = a };
                  if (epoll_ctl (ep, EPOLL_CTL_ADD, fd, &e) != 0)
                    {
                      close (fd);
                      free (a);
                    }
                }
              continue;
            }
          switch (c->kind)
            {
            case K_SOURCE:
              {
                int done = 0;
                for (int k = 0; k < 64 && c->left > 0; k++)
                  {
                    size_t want = c->left < sizeof block ? c->left
                                                         : sizeof block;
                    ssize_t w = send (c->fd, block, want, MSG_NOSIGNAL);
                    if (w < 0)
                      {
                        if (errno != EAGAIN && errno != EINTR)
                          done = 1;
                        break;
                      }
                    c->left -= (uint64_t) w;
                  }
                if (done || c->left == 0)
                  drop (ep, c);
                break;
              }
            case K_SINK:
              {
                int done = 0;
                for (int k = 0; k < 64; k++)
                  {
                    ssize_t r = recv (c->fd, block, sizeof block, 0);
                    if (r > 0)
                      {
                        c->left += (uint64_t) r;
                        continue;
                      }
                    if (r == 0 || (errno != EAGAIN && errno != EINTR))
                      done = 1;
                    break;
                  }
                if (done)
                  {
                    int fl = fcntl (c->fd, F_GETFL);
                    fcntl (c->fd, F_SETFL, fl & ~O_NONBLOCK);
                    int m = snprintf (tmp, sizeof tmp, "%llu\n",
                                      (unsigned long long) c->left);
                    if (send (c->fd, tmp, (size_t) m, MSG_NOSIGNAL) < 0)
                      { /* the client is gone: nothing to report to */ }
                    drop (ep, c);
                  }
                break;
              }
            case K_ECHO:
              {
                if ((ev & EPOLLOUT) && c->len > c->off)
                  {
                    ssize_t w = send (c->fd, c->buf + c->off, c->len - c->off,
                                      MSG_NOSIGNAL);
                    if (w < 0 && errno != EAGAIN && errno != EINTR)
                      {
                        drop (ep, c);
                        break;
                      }
                    if (w > 0)
                      c->off += (size_t) w;
                    if (c->off == c->len)
                      {
                        c->off = c->len = 0;
                        set_events (ep, c, EPOLLIN);
                      }
                    break;
                  }
                if (c->len > c->off)
                  break;
                ssize_t r = recv (c->fd, c->buf, sizeof c->buf, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                  {
                    drop (ep, c);
                    break;
                  }
                if (r < 0)
                  break;
                ssize_t w = send (c->fd, c->buf, (size_t) r, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                  {
                    drop (ep, c);
                    break;
                  }
                if (w < 0)
                  w = 0;
                if (w < r)
                  {
                    c->off = (size_t) w;
                    c->len = (size_t) r;
                    set_events (ep, c, EPOLLOUT);
                  }
                break;
              }
            case K_TSOURCE:
              {
                ssize_t r = recv (c->fd, c->buf + c->len,
                                  sizeof c->buf - 1 - c->len, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                  {
                    drop (ep, c);
                    break;
                  }
                if (r < 0)
                  break;
                c->len += (size_t) r;
                c->buf[c->len] = 0;
                if (!strchr (c->buf, '\n'))
                  {
                    if (c->len >= sizeof c->buf - 1)
                      drop (ep, c);
                    break;
                  }
                long count = 0, interval = 0;
                if (sscanf (c->buf, "%ld %ld", &count, &interval) != 2)
                  count = 0;
                epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
                run_tsource (c->fd, count, interval);
                close (c->fd);
                free (c);
                break;
              }
            case K_LISTEN:
              break;
            }
        }
    }
  unlink (portfile);
  return 0;
}

/* Client mode for the accept rate. */
struct pending {
  int fd;
  double since;
};

static int connect_loop (int port, double seconds, int inflight)
{
  if (inflight < 1)
    inflight = 1;
  if (inflight > 1024)
    inflight = 1024;
  int ep = epoll_create1 (EPOLL_CLOEXEC);
  struct pending *slots = calloc ((size_t) inflight, sizeof *slots);
  if (ep < 0 || !slots)
    return 1;
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_port = htons ((uint16_t) port),
                            .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  long opened = 0, by_server = 0, errors = 0;
  double end = now_s () + seconds;
  for (int i = 0; i < inflight; i++)
    slots[i].fd = -1;
  struct epoll_event evs[1024];
  while (!stop_flag)
    {
      double t = now_s ();
      int open_now = t < end;
      for (int i = 0; i < inflight; i++)
        {
          if (slots[i].fd >= 0 && t - slots[i].since > 1.0)
            {
              close (slots[i].fd);
              slots[i].fd = -1;
              errors++;
            }
          if (slots[i].fd < 0 && open_now)
            {
              int fd = socket (AF_INET,
                               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
              if (fd < 0)
                {
                  errors++;
                  continue;
                }
              if (connect (fd, (struct sockaddr *) &sa, sizeof sa) != 0
                  && errno != EINPROGRESS)
                {
                  close (fd);
                  errors++;
                  continue;
                }
              struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP,
                                       .data.u32 = (uint32_t) i };
              epoll_ctl (ep, EPOLL_CTL_ADD, fd, &e);
              slots[i].fd = fd;
              slots[i].since = t;
              opened++;
            }
        }
      int any = 0;
      for (int i = 0; i < inflight; i++)
        any |= slots[i].fd >= 0;
      if (!any && !open_now)
        break;
      if (t > end + 2)
        break;
      int n = epoll_wait (ep, evs, 1024, 50);
      for (int k = 0; k < n; k++)
        {
          int i = (int) evs[k].data.u32;
          if (slots[i].fd < 0)
            continue;
          char b[64];
          ssize_t r = recv (slots[i].fd, b, sizeof b, 0);
          if (r > 0)
            continue;
          if (r < 0 && errno == EAGAIN)
            continue;
          if (r == 0 || errno == ECONNRESET)
            by_server++;
          else
            errors++;
          close (slots[i].fd);
          slots[i].fd = -1;
        }
    }
  for (int i = 0; i < inflight; i++)
    if (slots[i].fd >= 0)
      close (slots[i].fd);
  printf ("opened=%ld closed_by_server=%ld errors=%ld\n", opened, by_server,
          errors);
  return 0;
}

int main (int argc, char **argv)
{
  signal (SIGPIPE, SIG_IGN);
  signal (SIGTERM, on_term);
  signal (SIGINT, on_term);
  raise_nofile ();
  if (argc == 5 && strcmp (argv[1], "serve") == 0)
    {
      int life = atoi (argv[4]);
      if (life <= 0 || life > 3600)
        life = 600;
      return serve (argv[2], strtoull (argv[3], NULL, 10), life);
    }
  if (argc == 5 && strcmp (argv[1], "connect") == 0)
    {
      double secs = atof (argv[3]);
      if (secs <= 0 || secs > 600)
        secs = 5;
      return connect_loop (atoi (argv[2]), secs, atoi (argv[4]));
    }
  fprintf (stderr,
           "usage: peer serve PORTFILE SOURCE_BYTES LIFETIME_S\n"
           "       peer connect PORT SECONDS INFLIGHT\n");
  return 2;
}
