/* runtime.c - what a program embedding the library asks of it as a whole: its version at run
 * time, the threads its kernels use, and freeing what it allocated for the caller. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "shardnet.h"

const char *sn_version(void) { return SN_VERSION; }

sn_status sn_threads_set(int n) {
  if (n < 1) return sn_error_set(SN_ERR_INVALID, "sn_threads_set: %d threads (need >= 1)", n);
  omp_set_num_threads(n);
  /* OpenBLAS keeps a pool of its own, used only by the portable convolution path */
  openblas_set_num_threads(n);
  return SN_OK;
}

int sn_threads_get(void) { return omp_get_max_threads(); }

void sn_free(void *p) { free(p); }
