/* no-textdomain.c -- preloaded with AddressSanitizer into an Emacs that was
   not built with it, for `make sanitize'.

   In such an Emacs 28.2 the C library's locale lock is found corrupted, so
   the first bindtextdomain() waits on it forever (a module that does
   nothing but call it hangs the same way).  GLib binds its translation
   domain lazily, at its first translated message; these stand-ins let it
   go on untranslated, which the tests do not mind: they run in the C
   locale.  */

#include <stddef.h>

char *
bindtextdomain (const char *domain, const char *dirname)
{
  (void) domain;
  return (char *) (dirname ? dirname : "/usr/share/locale");
}

char *
bind_textdomain_codeset (const char *domain, const char *codeset)
{
  (void) domain;
  return (char *) codeset;
}
