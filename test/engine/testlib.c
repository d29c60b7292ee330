/* testlib.c -- see testlib.h.  */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "testlib.h"

/* Per-case limit; the runner adds one per binary.  */
#define T_CASE_TIMEOUT_S 90

static int fail_fd = -1;

void
t_fail (const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  char *line_text = g_strdup_printf ("%s:%d: %s", file, line, msg);
  if (fail_fd >= 0)
    {
      ssize_t unused = write (fail_fd, line_text, strlen (line_text));
      (void) unused;
    }
  else
    fprintf (stderr, "%s\n", line_text);
  /* No exit handlers: a failed case's leftovers are not worth reports.  */
  _exit (1);
}

int
t_count_fds (void)
{
  DIR *dir = opendir ("/proc/self/fd");
  if (!dir)
    return -1;
  int n = 0;
  struct dirent *entry;
  while ((entry = readdir (dir)))
    if (entry->d_name[0] != '.')
      n++;
  closedir (dir);
  return n - 1;  /* the directory's own descriptor */
}

static void
noop_task (GTask *task, gpointer source, gpointer data, GCancellable *cancel)
{
  (void) source;
  (void) data;
  (void) cancel;
  g_task_return_boolean (task, TRUE);
}

/* GLib opens two descriptors once per process and keeps them: the global
   default main context's eventfd (g_main_context_push_thread_default()
   compares against it) and, with the first GTask thread (the resolver's),
   the worker context's eventfd.  Creating them before the first count
   keeps the leak check about the engine's own descriptors.  */
static void
warm_up_glib (void)
{
  (void) g_main_context_default ();
  GTask *task = g_task_new (NULL, NULL, NULL, NULL);
  g_task_run_in_thread_sync (task, noop_task);
  g_object_unref (task);
}

static void
run_case (const TCase *tc)
{
  warm_up_glib ();
  int before = t_count_fds ();
  tc->func ();
  /* A cancelled lookup returns at once, but glibc's getaddrinfo() goes on
     in GLib's worker thread with its own DNS socket until it times out:
     not ours, and it does close.  A real leak never settles.  */
  int after = t_count_fds ();
  for (gint64 end = t_now_ms () + 30000; after != before && t_now_ms () < end;
       after = t_count_fds ())
    usleep (50000);
  if (after != before)
    T_FAIL ("descriptor leak: %d open before the case, %d after", before,
            after);
}

int
t_main (int argc, char **argv, const TCase *cases, gsize n_cases)
{
  int failed = 0;
  setvbuf (stdout, NULL, _IOLBF, 0);
  signal (SIGPIPE, SIG_IGN);

  for (gsize i = 0; i < n_cases; i++)
    {
      const TCase *tc = &cases[i];
      if (argc > 1 && strcmp (argv[1], tc->name) != 0)
        continue;

      int pipefd[2];
      if (pipe2 (pipefd, O_CLOEXEC) < 0)
        {
          perror ("pipe");
          return 2;
        }
      fflush (stdout);
      fflush (stderr);
      pid_t pid = fork ();
      if (pid < 0)
        {
          perror ("fork");
          return 2;
        }
      if (pid == 0)
        {
          close (pipefd[0]);
          fail_fd = pipefd[1];
          alarm (T_CASE_TIMEOUT_S);
          run_case (tc);
          close (fail_fd);
          exit (0);  /* exit, not _exit: sanitizers report at exit */
        }
      close (pipefd[1]);
      GString *detail = g_string_new (NULL);
      char buf[4096];
      ssize_t n;
      while ((n = read (pipefd[0], buf, sizeof buf)) != 0)
        {
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            break;
          g_string_append_len (detail, buf, n);
        }
      close (pipefd[0]);
      int status;
      while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
      if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        printf ("PASS %s\n", tc->name);
      else
        {
          failed++;
          if (detail->len == 0)
            {
              if (WIFSIGNALED (status))
                g_string_printf (detail, "killed by signal %d%s",
                                 WTERMSIG (status),
                                 WTERMSIG (status) == SIGALRM
                                   ? " (timeout)" : "");
              else
                g_string_printf (detail,
                                 "exit status %d (sanitizer report above?)",
                                 WEXITSTATUS (status));
            }
          printf ("FAIL %s: %s\n", tc->name, detail->str);
        }
      g_string_free (detail, TRUE);
    }
  return failed ? 1 : 0;
}

gint64
t_now_ms (void)
{
  return g_get_monotonic_time () / 1000;
}

static gboolean
is_socket (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISSOCK (st.st_mode);
}

/* Each word of a hosts line that is not a [STATUS=ACTION] item is a
   source; any source not known to stay on this machine ("dns",
   "resolve", "mdns4_minimal", ...) makes the answer FALSE.  Without the
   file or a hosts line glibc asks the DNS: FALSE too.  */
gboolean
t_lookups_local (void)
{
  static const char *const local[] = { "files", "myhostname", NULL };
  if (is_socket ("/var/run/nscd/socket") || is_socket ("/run/nscd/socket"))
    return FALSE;
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/etc/nsswitch.conf", &text, NULL, NULL))
    return FALSE;
  gboolean seen = FALSE;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      char *hash = strchr (*l, '#');
      if (hash)
        *hash = '\0';
      const char *p = *l;
      while (g_ascii_isspace (*p))
        p++;
      /* As glibc reads it: the name, then any run of blanks and colons
         (so "hosts files" is a hosts line too).  */
      if (g_ascii_strncasecmp (p, "hosts", 5) != 0)
        continue;
      p += 5;
      if (*p != ':' && !g_ascii_isspace (*p))
        continue;
      while (*p == ':' || g_ascii_isspace (*p))
        p++;
      int sources = 0;
      while (*p)
        {
          if (g_ascii_isspace (*p))
            p++;
          else if (*p == '[')
            {
              p = strchr (p, ']');
              if (!p)
                return FALSE;
              p++;
            }
          else
            {
              const char *start = p;
              while (*p && !g_ascii_isspace (*p) && *p != '[')
                p++;
              g_autofree char *source = g_strndup (start, (gsize) (p - start));
              if (!g_strv_contains (local, source))
                return FALSE;
              sources++;
            }
        }
      if (sources == 0)
        return FALSE;
      seen = TRUE;
    }
  return seen;
}

/* Harness.  */

void
th_init (THarness *h, const NpLimits *limits)
{
  memset (h, 0, sizeof *h);
  if (limits)
    h->limits = *limits;
  else
    np_limits_init_default (&h->limits);
  if (pipe (h->wake) < 0)
    T_FAIL ("pipe: %s", g_strerror (errno));
  g_autoptr (GError) error = NULL;
  h->engine = np_engine_new (h->wake[1], &h->limits, &error);
  if (!h->engine)
    T_FAIL ("np_engine_new: %s", error->message);
  h->events = g_ptr_array_new_with_free_func ((GDestroyNotify) np_event_free);
  h->buf = g_new0 (NpEvent *, h->limits.drain_events);
}

void
th_free (THarness *h)
{
  np_engine_free (h->engine);
  h->engine = NULL;
  g_ptr_array_unref (h->events);
  g_free (h->buf);
  close (h->wake[0]);
  close (h->wake[1]);
}

guint
th_pump (THarness *h, int timeout_ms)
{
  struct pollfd pfd = { .fd = h->wake[0], .events = POLLIN };
  int rc = poll (&pfd, 1, timeout_ms);
  if (rc <= 0)
    return 0;
  char bytes[256];
  ssize_t n = read (h->wake[0], bytes, sizeof bytes);
  if (n > 0)
    h->wake_bytes += (guint) n;
  guint got = np_engine_drain (h->engine, h->buf);
  h->drains++;
  for (guint i = 0; i < got; i++)
    g_ptr_array_add (h->events, h->buf[i]);
  return got;
}

static const char *
type_name (NpEventType type)
{
  switch (type)
    {
    case NP_EVENT_OPEN: return "OPEN";
    case NP_EVENT_DATA: return "DATA";
    case NP_EVENT_FAILED: return "FAILED";
    case NP_EVENT_CLOSED: return "CLOSED";
    case NP_EVENT_WRITABLE: return "WRITABLE";
    case NP_EVENT_ACCEPTED: return "ACCEPTED";
    case NP_EVENT_ACCEPT_FAILED: return "ACCEPT_FAILED";
    case NP_EVENT_SEND_FAILED: return "SEND_FAILED";
    }
  return "?";
}

char *
th_describe (THarness *h)
{
  GString *s = g_string_new ("[");
  guint shown = 0;
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      /* Runs of DATA are summarised; a long list helps nobody.  */
      if (e->type == NP_EVENT_DATA && i > 0
          && ((NpEvent *) g_ptr_array_index (h->events, i - 1))->type
               == NP_EVENT_DATA
          && ((NpEvent *) g_ptr_array_index (h->events, i - 1))->id == e->id)
        continue;
      if (++shown > 40)
        {
          g_string_append (s, " ...");
          break;
        }
      g_string_append_printf (s, " %" G_GUINT64_FORMAT ":%s", e->id,
                              type_name (e->type));
      if (e->type == NP_EVENT_ACCEPTED)
        g_string_append_printf (s, "(%" G_GUINT64_FORMAT ")",
                                e->accepted_id);
      if (e->type == NP_EVENT_FAILED || e->type == NP_EVENT_CLOSED
          || e->type == NP_EVENT_ACCEPT_FAILED)
        g_string_append_printf (s, "(%d %s)", e->code,
                                e->message ? e->message : "");
    }
  g_string_append (s, " ]");
  return g_string_free (s, FALSE);
}

NpEvent *
th_find (THarness *h, guint64 id, NpEventType type)
{
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id == id && e->type == type)
        return e;
    }
  return NULL;
}

guint
th_count (THarness *h, guint64 id, NpEventType type)
{
  guint n = 0;
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      n += e->id == id && e->type == type;
    }
  return n;
}

NpEvent *
th_wait (THarness *h, guint64 id, NpEventType type, int timeout_ms)
{
  gint64 deadline = t_now_ms () + timeout_ms;
  for (;;)
    {
      NpEvent *e = th_find (h, id, type);
      if (e)
        return e;
      gint64 left = deadline - t_now_ms ();
      if (left <= 0)
        T_FAIL ("timed out waiting for %s on id %" G_GUINT64_FORMAT
                "; seen %s", type_name (type), id, th_describe (h));
      th_pump (h, (int) MIN (left, 100));
    }
}

gsize
th_data_len (THarness *h, guint64 id)
{
  gsize n = 0;
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id == id && e->type == NP_EVENT_DATA)
        n += e->len;
    }
  return n;
}

void
th_wait_data (THarness *h, guint64 id, gsize want, int timeout_ms)
{
  gint64 deadline = t_now_ms () + timeout_ms;
  gsize have;
  while ((have = th_data_len (h, id)) < want)
    {
      gint64 left = deadline - t_now_ms ();
      if (left <= 0)
        T_FAIL ("timed out waiting for %zu bytes on id %" G_GUINT64_FORMAT
                ", have %zu; seen %s", want, id, have, th_describe (h));
      th_pump (h, (int) MIN (left, 100));
    }
}

GByteArray *
th_data (THarness *h, guint64 id)
{
  GByteArray *out = g_byte_array_new ();
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id == id && e->type == NP_EVENT_DATA)
        g_byte_array_append (out, e->data, (guint) e->len);
    }
  return out;
}

void
th_check_order (THarness *h, guint64 id)
{
  int stage = 0;  /* 0 nothing, 1 opened, 2 failed or closed */
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id != id)
        continue;
      gboolean ok;
      switch (e->type)
        {
        case NP_EVENT_OPEN:
        case NP_EVENT_FAILED:
          ok = stage == 0;
          stage = e->type == NP_EVENT_OPEN ? 1 : 2;
          break;
        case NP_EVENT_CLOSED:
          ok = stage == 1;
          stage = 2;
          break;
        default:
          ok = stage == 1;
          break;
        }
      if (!ok)
        T_FAIL ("event %u (%s) out of order for id %" G_GUINT64_FORMAT
                ": %s", i, type_name (e->type), id, th_describe (h));
    }
}

NpConn *
th_connect_tcp (THarness *h, guint64 id, const char *host, guint16 port,
                int family)
{
  NpConnectSpec spec = { .family = family, .host = host, .port = port };
  return np_engine_connect (h->engine, id, &spec);
}

/* Peers.  */

int
t_listen_tcp (int family, guint16 *port)
{
  int fd = socket (family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    T_FAIL ("socket: %s", g_strerror (errno));
  int one = 1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_storage ss;
  memset (&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
      sin->sin_family = AF_INET;
      sin->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      len = sizeof *sin;
    }
  else
    {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_addr = in6addr_loopback;
      len = sizeof *sin6;
    }
  if (bind (fd, (struct sockaddr *) &ss, len) < 0)
    T_FAIL ("bind: %s", g_strerror (errno));
  if (listen (fd, 512) < 0)
    T_FAIL ("listen: %s", g_strerror (errno));
  len = sizeof ss;
  getsockname (fd, (struct sockaddr *) &ss, &len);
  *port = ntohs (family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                   : ((struct sockaddr_in6 *) &ss)->sin6_port);
  return fd;
}

int
t_listen_unix (const char *path)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  g_strlcpy (sun.sun_path, path, sizeof sun.sun_path);
  if (bind (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    T_FAIL ("bind %s: %s", path, g_strerror (errno));
  if (listen (fd, 64) < 0)
    T_FAIL ("listen: %s", g_strerror (errno));
  return fd;
}

int
t_accept (int lfd, int timeout_ms)
{
  struct pollfd pfd = { .fd = lfd, .events = POLLIN };
  if (poll (&pfd, 1, timeout_ms) <= 0)
    T_FAIL ("no connection to accept within %d ms", timeout_ms);
  int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    T_FAIL ("accept: %s", g_strerror (errno));
  return fd;
}

void
t_write_all (int fd, const void *data, gsize len)
{
  const guint8 *p = data;
  while (len > 0)
    {
      ssize_t n = send (fd, p, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        {
          struct pollfd pfd = { .fd = fd, .events = POLLOUT };
          poll (&pfd, 1, 1000);
          continue;
        }
      if (n < 0)
        T_FAIL ("send: %s", g_strerror (errno));
      p += n;
      len -= (gsize) n;
    }
}

gsize
t_read_full (int fd, void *buf, gsize len, int timeout_ms)
{
  guint8 *p = buf;
  gsize got = 0;
  gint64 deadline = t_now_ms () + timeout_ms;
  while (got < len)
    {
      gint64 left = deadline - t_now_ms ();
      if (left <= 0)
        break;
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      if (poll (&pfd, 1, (int) left) <= 0)
        break;
      ssize_t n = recv (fd, p + got, len - got, MSG_DONTWAIT);
      if (n == 0)
        break;
      if (n < 0)
        {
          if (errno == EINTR || errno == EAGAIN)
            continue;
          break;
        }
      got += (gsize) n;
    }
  return got;
}

void
t_set_nonblock (int fd)
{
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
}

char *
t_tmpdir (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("netproc-test-XXXXXX", &error);
  if (!dir)
    T_FAIL ("mkdtemp: %s", error->message);
  return dir;
}

/* Removes DIR and the few plain entries a test left in it.  */
void
t_rmdir (char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d)))
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_unlink (path);
    }
  if (d)
    g_dir_close (d);
  g_rmdir (dir);
  g_free (dir);
}

void
t_pair_open (TPair *p, const NpLimits *limits)
{
  th_init (&p->h, limits);
  guint16 port;
  p->lfd = t_listen_tcp (AF_INET, &port);
  p->conn = th_connect_tcp (&p->h, 1, "127.0.0.1", port, AF_INET);
  th_wait (&p->h, 1, NP_EVENT_OPEN, WAIT_MS);
  p->peer = t_accept (p->lfd, WAIT_MS);
}

void
t_pair_close (TPair *p)
{
  np_conn_close (p->conn);
  np_conn_unref (p->conn);
  th_free (&p->h);
  if (p->peer >= 0)
    close (p->peer);
  close (p->lfd);
}

void
th_drain_now (THarness *h)
{
  guint n;
  while ((n = np_engine_drain (h->engine, h->buf)) > 0)
    for (guint i = 0; i < n; i++)
      g_ptr_array_add (h->events, h->buf[i]);
}

void
th_assert_quiet_after (THarness *h, guint64 id, guint from)
{
  for (guint i = from; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id == id)
        T_FAIL ("event type %d for id %" G_GUINT64_FORMAT
                " after close (index %u, boundary %u)", e->type, id, i,
                from);
    }
}

socklen_t
t_loopback (int family, guint16 port, struct sockaddr_storage *ss)
{
  memset (ss, 0, sizeof *ss);
  if (family == AF_INET)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) ss;
      sin->sin_family = AF_INET;
      sin->sin_port = htons (port);
      sin->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      return sizeof *sin;
    }
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons (port);
  sin6->sin6_addr = in6addr_loopback;
  return sizeof *sin6;
}

socklen_t
t_unix_address (const char *path, struct sockaddr_storage *ss)
{
  memset (ss, 0, sizeof *ss);
  struct sockaddr_un *sun = (struct sockaddr_un *) ss;
  sun->sun_family = AF_UNIX;
  g_strlcpy (sun->sun_path, path, sizeof sun->sun_path);
  return (socklen_t) (G_STRUCT_OFFSET (struct sockaddr_un, sun_path)
                      + strlen (path) + 1);
}

/* utime + stime of the thread named netproc-engine, in ms.  One engine
   per case, so one such thread.  */
gint64
t_engine_cpu_ms (void)
{
  DIR *dir = opendir ("/proc/self/task");
  T_ASSERT (dir != NULL);
  g_autofree char *stat = NULL;
  struct dirent *entry;
  while (!stat && (entry = readdir (dir)))
    {
      if (entry->d_name[0] == '.')
        continue;
      g_autofree char *comm_path
        = g_strdup_printf ("/proc/self/task/%s/comm", entry->d_name);
      g_autofree char *comm = NULL;
      if (!g_file_get_contents (comm_path, &comm, NULL, NULL)
          || strcmp (g_strstrip (comm), "netproc-engine") != 0)
        continue;
      g_autofree char *path
        = g_strdup_printf ("/proc/self/task/%s/stat", entry->d_name);
      g_file_get_contents (path, &stat, NULL, NULL);
    }
  closedir (dir);
  if (!stat)
    T_FAIL ("no thread named netproc-engine");

  /* The name, field 2, is in parentheses and may hold spaces: count from
     the last ')'.  Field 3 (state) comes first; utime is field 14,
     stime 15.  */
  const char *rest = strrchr (stat, ')');
  T_ASSERT (rest != NULL);
  g_auto (GStrv) f = g_strsplit (rest + 2, " ", -1);
  T_ASSERT (g_strv_length (f) > 12);
  guint64 ticks = g_ascii_strtoull (f[11], NULL, 10)
                  + g_ascii_strtoull (f[12], NULL, 10);
  return (gint64) (ticks * 1000 / (guint64) sysconf (_SC_CLK_TCK));
}

/* Pumps for MS, taking whatever comes.  */
void
th_pump_for (THarness *h, int ms)
{
  gint64 end = t_now_ms () + ms;
  for (gint64 left = ms; left > 0; left = end - t_now_ms ())
    th_pump (h, (int) left);
}

void
th_wait_unqueued (THarness *h, NpConn *conn)
{
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (np_conn_queued (conn) > 0 && t_now_ms () < deadline)
    th_pump (h, 10);
  T_EQ (0, np_conn_queued (conn));
}

GPtrArray *
th_data_events (THarness *h, guint64 id)
{
  GPtrArray *out = g_ptr_array_new ();
  for (guint i = 0; i < h->events->len; i++)
    {
      NpEvent *e = g_ptr_array_index (h->events, i);
      if (e->id == id && e->type == NP_EVENT_DATA)
        g_ptr_array_add (out, e);
    }
  return out;
}

void
th_wait_count (THarness *h, guint64 id, NpEventType type, guint want)
{
  gint64 deadline = t_now_ms () + WAIT_MS;
  while (th_count (h, id, type) < want)
    {
      if (t_now_ms () > deadline)
        T_FAIL ("timed out waiting for %u events of type %d for id %"
                G_GUINT64_FORMAT ", have %u; seen %s", want, type, id,
                th_count (h, id, type), th_describe (h));
      th_pump (h, 100);
    }
}

/* epoll_ctl() failures on demand: the engine's answer to a full set
   cannot be reached otherwise without lowering a limit of the whole
   machine.  */
static gint epoll_fail_op = -1;
static gint epoll_fail_errno;
static gint epoll_fail_times;

void
t_epoll_fail (int op, int err, int times)
{
  g_atomic_int_set (&epoll_fail_errno, err);
  g_atomic_int_set (&epoll_fail_times, times);
  g_atomic_int_set (&epoll_fail_op, op);
}

int __real_epoll_ctl (int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl (int epfd, int op, int fd, struct epoll_event *event);

int
__wrap_epoll_ctl (int epfd, int op, int fd, struct epoll_event *event)
{
  if (g_atomic_int_get (&epoll_fail_op) == op)
    {
      gint left = g_atomic_int_get (&epoll_fail_times);
      while (left > 0
             && !g_atomic_int_compare_and_exchange (&epoll_fail_times, left,
                                                    left - 1))
        left = g_atomic_int_get (&epoll_fail_times);
      if (left > 0)
        {
          errno = g_atomic_int_get (&epoll_fail_errno);
          return -1;
        }
    }
  return __real_epoll_ctl (epfd, op, fd, event);
}

/* poll() calls on one thread, told apart: a look (no timeout) or a
   wait.  The tests are linked with --wrap=poll for it.  */
static __thread gboolean poll_counting;
static __thread guint poll_looks;
static __thread guint poll_waits;

void
t_poll_count (void)
{
  poll_counting = TRUE;
  poll_looks = poll_waits = 0;
}

void
t_poll_counted (guint *looks, guint *waits)
{
  poll_counting = FALSE;
  *looks = poll_looks;
  *waits = poll_waits;
}

int __real_poll (struct pollfd *fds, nfds_t nfds, int timeout);
int __wrap_poll (struct pollfd *fds, nfds_t nfds, int timeout);

int
__wrap_poll (struct pollfd *fds, nfds_t nfds, int timeout)
{
  if (poll_counting)
    {
      if (timeout == 0)
        poll_looks++;
      else
        poll_waits++;
    }
  return __real_poll (fds, nfds, timeout);
}

void
t_send_until_queued (NpConn *conn, gsize queued, gsize *total)
{
  static const guint8 zeros[65536];
  while (np_conn_queued (conn) < queued)
    {
      np_conn_send (conn, zeros, sizeof zeros);
      *total += sizeof zeros;
      T_LE (*total, 256u * 1024 * 1024);
    }
}
