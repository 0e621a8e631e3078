/* bench_clock.h - the timing helpers the standalone bench programs of this directory share
 * (each is compiled on its own, outside CMake; needs _POSIX_C_SOURCE >= 199309L or the
 * default GNU feature set for clock_gettime). */
#ifndef SN_BENCH_CLOCK_H
#define SN_BENCH_CLOCK_H

#include <time.h>

/* Wall-clock seconds (monotonic). */
static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the whole process (all threads). */
static inline double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* qsort comparator for doubles, ascending. */
static inline int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#endif
