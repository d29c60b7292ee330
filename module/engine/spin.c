/* spin.c -- the owner's wait for a reply that is about to come.

   A thread that blocks in poll() for a reply gives up its CPU, and
   getting it back costs a context switch, and the writer a wake-up: on
   loopback, where a reply takes tens of microseconds, those are most of
   a round trip.  (Emacs's own loop, busier between its write and its
   next select, often finds the reply there already and never sleeps.)
   So before blocking, the owner looks without blocking for a while:

   - for at most engine->spin_us, NP_SPIN_US by default, and only on a
     machine with more than one CPU, where the writer can run meanwhile;
   - not on a connection whose last reply outlasted the look, until a
     reply comes within that time again: a peer that answers slowly
     costs one look, not one per wait.  */

#include <errno.h>
#include <poll.h>

#include "engine-private.h"

/* Long enough for a loopback round trip, and for most of its tail.  */
#define NP_SPIN_US 100

int
np__spin_default (void)
{
  return g_get_num_processors () > 1 ? NP_SPIN_US : 0;
}

void
np_engine_set_spin (NpEngine *engine, int spin_us)
{
  g_atomic_int_set (&engine->spin_us, MAX (spin_us, 0));
}

/* Looks at FD for input without blocking, for up to SPIN_US.  Returns
   whether input (or an end, or an error) came.  */
static gboolean
look_for_input (int fd, int spin_us)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  gint64 until = g_get_monotonic_time () + spin_us;
  do
    {
      int n = poll (&pfd, 1, 0);
      /* A signal (Emacs's profiler sends one every few milliseconds)
         is no reason to stop looking; another error is the read's to
         find.  */
      if (n > 0 || (n < 0 && errno != EINTR))
        return TRUE;
    }
  while (g_get_monotonic_time () < until);
  return FALSE;
}

/* Waits up to TIMEOUT_MS for input on FD, CONN's socket, that the owner
   reads itself: first looking for it as above, then blocking.  The
   caller reads whatever came.  Owner's thread only, with CONN's
   read_lock not held.  */
void
np__spin_wait_readable (NpConn *conn, int fd, int timeout_ms)
{
  int spin_us = g_atomic_int_get (&conn->engine->spin_us);
  /* Time from the start of the wait, look included: a reply that comes
     just after a look that missed it is still a late one.  */
  gint64 start = spin_us > 0 ? g_get_monotonic_time () : 0;
  if (spin_us > 0 && !conn->spin_missed
      && MIN (timeout_ms, G_MAXINT / 1000) * 1000 > spin_us)
    {
      if (look_for_input (fd, spin_us))
        return;
      conn->spin_missed = TRUE;
    }

  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  int n = poll (&pfd, 1, timeout_ms);
  /* A reply that came within the look's time makes the next wait look
     again.  */
  if (spin_us > 0 && n > 0 && g_get_monotonic_time () - start <= spin_us)
    conn->spin_missed = FALSE;
}
