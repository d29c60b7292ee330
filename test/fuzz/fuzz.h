/* fuzz.h -- what every fuzz target shares.

   A target is one function, LLVMFuzzerTestOneInput(), built twice: with
   libFuzzer by `make fuzz', and by `make check' with replay.c's main(),
   which feeds it the kept inputs (test/fuzz/corpus/TARGET/ and
   test/fuzz/regressions/TARGET/).  It checks invariants with
   FUZZ_CHECK, which aborts: libFuzzer and the replay both take that for
   a crash.  Its input is read with a FuzzInput, which gives zeros once
   the bytes run out, so every input means something.  */

#ifndef NETPROC_FUZZ_H
#define NETPROC_FUZZ_H

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                           \
  do {                                                                  \
    if (!(cond))                                                        \
      {                                                                 \
        fprintf (stderr, "%s:%d: invariant failed: %s\n  ", __FILE__,   \
                 __LINE__, #cond);                                      \
        fprintf (stderr, __VA_ARGS__);                                  \
        fputc ('\n', stderr);                                           \
        abort ();                                                       \
      }                                                                 \
  } while (0)

typedef struct
{
  const guint8 *data;
  size_t size;
  size_t pos;
} FuzzInput;

static inline size_t
fi_left (const FuzzInput *in)
{
  return in->size - in->pos;
}

static inline guint8
fi_u8 (FuzzInput *in)
{
  return in->pos < in->size ? in->data[in->pos++] : 0;
}

/* Big-endian, as the seed files are easiest written.  */
static inline guint16
fi_u16 (FuzzInput *in)
{
  guint16 hi = fi_u8 (in);
  return (guint16) (hi << 8 | fi_u8 (in));
}

static inline guint32
fi_u32 (FuzzInput *in)
{
  guint32 hi = fi_u16 (in);
  return hi << 16 | fi_u16 (in);
}

static inline guint64
fi_u64 (FuzzInput *in)
{
  guint64 hi = fi_u32 (in);
  return hi << 32 | fi_u32 (in);
}

/* Up to WANT bytes, fewer when the input ends: *LEN says how many.  */
static inline const guint8 *
fi_bytes (FuzzInput *in, size_t want, size_t *len)
{
  *len = MIN (want, fi_left (in));
  const guint8 *p = in->data + in->pos;
  in->pos += *len;
  return p;
}

#endif /* NETPROC_FUZZ_H */
