/* cpu.c - the CPU features the kernels dispatch on, detected once per process. */
#include <pthread.h>

#include "kernels.h"

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static int cpu_avx512; /* written once, by detect, before any reader returns from pthread_once */

static void detect(void) {
  __builtin_cpu_init();
  cpu_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
}

int sn_cpu_has_avx512(void) {
  pthread_once(&cpu_once, detect);
  return cpu_avx512;
}
