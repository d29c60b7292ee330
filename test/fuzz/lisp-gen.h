/* lisp-gen.h -- a Lisp value made of fuzz input, for the fake env.

   Each value starts with a tag byte (its low four bits):

     0 nil          1 t
     2 fixnum, 1 byte (0..255)        3 fixnum, 2 bytes (0..65535)
     4 fixnum, 8 bytes (signed)       5 bignum (next byte: its sign)
     6 float, 8 bytes                 7 symbol, 1 byte: see the table
     8 unibyte string, 1 length byte, then the bytes
     9 unibyte string, 2 length bytes (at most 4096), then the bytes
    10 multibyte string: as 8, its bytes made valid UTF-8
    11 multibyte string holding raw bytes: as 8
    12 vector, 1 length byte, then the elements
    13 cons: car, then cdr
    14 a foreign user pointer (not a netproc handle)
    15 list, 1 length byte, then the elements

   Numbers are big-endian.  Depth and the number of values are bounded;
   past either, or past the end of the input, values are nil.  */

#ifndef NETPROC_LISP_GEN_H
#define NETPROC_LISP_GEN_H

#include "fake-lisp.h"
#include "fuzz.h"

emacs_value lisp_gen_value (FuzzInput *in);

#endif /* NETPROC_LISP_GEN_H */
