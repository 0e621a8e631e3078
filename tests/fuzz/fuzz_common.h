/* fuzz_common.h - shared pieces of the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 *
 * Every harness checks, besides "no sanitizer report", the library's promises on hostile input:
 *  - a failure returns a status in the sn_status range and leaves a one-line message that names
 *    the file it was given (sn_last_error());
 *  - no HDF5 object (file, group, dataset, attribute, datatype) is left open after a call;
 *  - nothing is half-loaded (weights): on failure the net's parameter block is bit-identical.
 * A broken promise aborts with "FUZZ INVARIANT: ...", which libFuzzer records as a crash.
 * Header-only: each harness is one translation unit plus this file.
 */
#ifndef SN_FUZZ_COMMON_H
#define SN_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <hdf5.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardnet.h"

static inline void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FUZZ INVARIANT: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

/* A per-process scratch path on tmpfs (the loaders take paths, not buffers). */
static inline const char *fz_path(const char *tag) {
  static char buf[8][256];
  static int next = 0;
  char *p = buf[next++ & 7];
  const char *dir = getenv("SN_FUZZ_TMP");
  if (!dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(p, 256, "%s/sn_fuzz_%d_%s", dir, (int)getpid(), tag);
  return p;
}

static inline void fz_write(const char *path, const uint8_t *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) fz_fail("cannot write %s", path);
  if (n && fwrite(data, 1, n, f) != n) fz_fail("short write to %s", path);
  fclose(f);
}

/* Checks a call's status: on failure a known code and a one-line message naming `path`
 * (path may be NULL when the message need not name a file). */
static inline void fz_check_status(sn_status st, const char *call, const char *path) {
  if ((int)st < SN_OK || (int)st > SN_ERR_NOTFOUND) fz_fail("%s returned status %d", call, (int)st);
  if (st == SN_OK) return;
  const char *m = sn_last_error();
  if (!m || !*m) fz_fail("%s failed (%s) with an empty message", call, sn_status_string(st));
  if (strchr(m, '\n')) fz_fail("%s: message is not one line: %s", call, m);
  if (path && !strstr(m, path)) fz_fail("%s: message does not name the file %s: %s", call, path, m);
}

/* Fails if any HDF5 file, group, dataset, datatype or attribute is still open. */
static inline void fz_check_no_open_h5(const char *after) {
  ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (n != 0) {
    hid_t ids[16];
    ssize_t k = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, 16, ids);
    char name[256] = "";
    if (k > 0) H5Iget_name(ids[0], name, sizeof name);
    fz_fail("after %s: %zd HDF5 objects left open (first: type %d, name '%s')", after, n,
            k > 0 ? (int)H5Iget_type(ids[0]) : -1, name);
  }
}

/* SN_FUZZ_STRICT=1 turns off the harnesses' skips of known, reported findings
 * (docs/reliability.md), to check whether they are fixed. */
static inline int fz_strict(void) {
  static int v = -1;
  if (v < 0) v = getenv("SN_FUZZ_STRICT") && atoi(getenv("SN_FUZZ_STRICT")) > 0;
  return v;
}

/* A bounded little reader over the fuzz input. */
typedef struct fz_in {
  const uint8_t *p;
  size_t n, pos;
} fz_in;

static inline int fz_left(const fz_in *in) { return in->pos < in->n; }
static inline unsigned fz_u8(fz_in *in) { return in->pos < in->n ? in->p[in->pos++] : 0; }
static inline unsigned fz_u16(fz_in *in) {
  unsigned a = fz_u8(in);
  return a | fz_u8(in) << 8;
}
static inline uint32_t fz_u32(fz_in *in) {
  uint32_t a = fz_u16(in);
  return a | (uint32_t)fz_u16(in) << 16;
}
/* Up to max bytes (at least what is left); returns the count taken. */
static inline size_t fz_take(fz_in *in, size_t max, const uint8_t **out) {
  size_t k = in->n - in->pos < max ? in->n - in->pos : max;
  *out = in->p + in->pos;
  in->pos += k;
  return k;
}

#endif /* SN_FUZZ_COMMON_H */
