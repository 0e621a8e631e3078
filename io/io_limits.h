/* io_limits.h - private: the bounds io/ applies to every size read from a file before anything
 * is allocated, and overflow-checked size arithmetic. No HDF5: the image code includes it too. */
#ifndef SN_IO_LIMITS_H
#define SN_IO_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#define SN_IO_MAX_SIDE 65535                   /* image height or width */
#define SN_IO_MAX_PIXELS ((int64_t)1 << 28)    /* one decoded image, before resizing */
#define SN_IO_MAX_ROW_BYTES ((int64_t)1 << 30) /* one stored or encoded image */
#define SN_IO_MAX_ROWS ((int64_t)1 << 40)      /* rows of a dataset */
#define SN_IO_MAX_CLASSES (1 << 24)

/* *out = a * b; returns 0 on overflow (then *out is undefined). */
static inline int sn_io_mul(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

#endif /* SN_IO_LIMITS_H */
