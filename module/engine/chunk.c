/* chunk.c -- output buffers, filled by the sender and owned by the queue.

   A sender that copies its bytes from elsewhere anyway (the binding
   copies each Lisp string out of Emacs) copies them into a chunk and
   hands it over: what the kernel does not take at once is queued as it
   is, with no second copy, and nothing is allocated or copied while the
   connection's output lock is held.

   Chunks of middling size come from, and go back to, a few spares kept
   for the whole process.  A stream of large sends is written by the
   engine thread (stream.c): without spares, Emacs's thread would fill
   fresh memory for each send, which the engine thread then frees, and
   pay for it in page faults and cache misses; a spare just written out
   is still mapped, and often still cached.  The spares are bounded
   (NP_CHUNK_SPARES of NP_CHUNK_SPARE_SIZE bytes) and kept until exit.  */

#include <pthread.h>

#include "engine-private.h"

/* A 64 KiB string and the terminating NUL its copy comes with.  */
#define NP_CHUNK_SPARE_SIZE (64 * 1024 + 1)
/* Smaller chunks are cheap to allocate, and would waste a spare.  */
#define NP_CHUNK_SPARE_MIN (8 * 1024)
#define NP_CHUNK_SPARES 32

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static NpChunk *spares[NP_CHUNK_SPARES];
static int spare_count;

NpChunk *
np_chunk_new (gsize size)
{
  NpChunk *chunk = NULL;
  gboolean spare_sized = size >= NP_CHUNK_SPARE_MIN
                         && size <= NP_CHUNK_SPARE_SIZE;
  if (spare_sized)
    {
      size = NP_CHUNK_SPARE_SIZE;
      pthread_mutex_lock (&spare_lock);
      if (spare_count > 0)
        chunk = spares[--spare_count];
      pthread_mutex_unlock (&spare_lock);
    }
  if (!chunk)
    {
      chunk = g_malloc (sizeof *chunk + size);
      chunk->size = size;
    }
  chunk->len = 0;
  return chunk;
}

guint8 *
np_chunk_bytes (NpChunk *chunk)
{
  return chunk->data;
}

void
np_chunk_free (NpChunk *chunk)
{
  if (chunk && chunk->size == NP_CHUNK_SPARE_SIZE)
    {
      pthread_mutex_lock (&spare_lock);
      if (spare_count < NP_CHUNK_SPARES)
        spares[spare_count++] = g_steal_pointer (&chunk);
      pthread_mutex_unlock (&spare_lock);
    }
  g_free (chunk);
}
