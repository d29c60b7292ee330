/* replay.c -- a fuzz target without libFuzzer: every kept input, once.

   Built by `make check' with gcc around each target (FUZZ_TARGET names
   it), so that the inputs the fuzzers found worth keeping, and above
   all those that once crashed, are run on every check:

     test/fuzz/corpus/FUZZ_TARGET/       the seed corpus
     test/fuzz/regressions/FUZZ_TARGET/  inputs that crashed, now fixed

   run from the top directory.  Each input that passes prints
   "PASS TARGET/DIR/FILE", the form test/run-engine-tests.sh counts; one
   that breaks an invariant aborts the binary, which then counts as a
   failure, after "RUN ..." has named the input.  */

#include "fuzz.h"

#include <dirent.h>
#include <errno.h>

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the target"
#endif

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Feeds every file of DIR to the target, in name order.  Returns how
   many; a missing DIR has none.  */
static int
replay_dir (const char *dir)
{
  DIR *d = opendir (dir);
  if (!d)
    {
      if (errno != ENOENT)
        {
          printf ("FAIL %s: %s\n", dir, g_strerror (errno));
          exit (1);
        }
      return 0;
    }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  struct dirent *entry;
  while ((entry = readdir (d)))
    if (entry->d_name[0] != '.')
      g_ptr_array_add (names, g_strdup (entry->d_name));
  closedir (d);
  qsort (names->pdata, names->len, sizeof (char *), compare_names);

  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *path = g_build_filename (dir, names->pdata[i], NULL);
      g_autofree char *data = NULL;
      gsize len = 0;
      g_autoptr (GError) error = NULL;
      if (!g_file_get_contents (path, &data, &len, &error))
        {
          printf ("FAIL %s: %s\n", path, error->message);
          exit (1);
        }
      printf ("RUN %s\n", path);
      fflush (stdout);
      /* A copy of its own size, so that a read past the end shows.  */
      g_autofree guint8 *copy = g_memdup2 (data, len);
      LLVMFuzzerTestOneInput (copy, len);
      printf ("PASS %s\n", path);
    }
  int n = (int) names->len;
  g_ptr_array_free (names, TRUE);
  return n;
}

int
main (void)
{
  int n = replay_dir ("test/fuzz/corpus/" FUZZ_TARGET)
          + replay_dir ("test/fuzz/regressions/" FUZZ_TARGET);
  if (n == 0)
    {
      /* A target with nothing to replay has lost its corpus.  */
      printf ("FAIL %s: no inputs to replay\n", FUZZ_TARGET);
      return 1;
    }
  return 0;
}
