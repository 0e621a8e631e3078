/* cpu.c - the CPU features the kernels dispatch on, detected once per process.
 *
 * AVX-512 (F, BW, VL, DQ) with FMA is what the float32 kernels need. The low-precision kernels
 * (conv_lowp.c) need AVX512-BF16 or AMX-BF16 for bf16 and AVX512-VNNI or AMX-INT8 for int8. The
 * AMX tiles are usable only when the CPU has them (CPUID leaf 7), the OS enables their state in
 * XCR0 (bits 17 and 18) and grants this process the tile data (Linux arch_prctl
 * ARCH_REQ_XCOMP_PERM, which is requested here, once, at the first sn_cpu_features call: a
 * process that never asks for the features never changes its signal-frame size). */
#define _DEFAULT_SOURCE /* syscall */
#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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

static pthread_once_t features_once = PTHREAD_ONCE_INIT;
static unsigned cpu_features; /* written once, by detect_features */

#define ARCH_REQ_XCOMP_PERM 0x1023 /* <asm/prctl.h>, Linux 5.16 */
#define XFEATURE_XTILEDATA 18

static unsigned long long xgetbv0(void) {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

static void detect_features(void) {
  unsigned f = sn_cpu_has_avx512() ? SN_CPU_AVX512 : 0;
  unsigned a, b, c, d;
  if (f && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    const unsigned max_sub = a;
    if (c & (1u << 11)) f |= SN_CPU_AVX512_VNNI;
    if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)))
      f |= SN_CPU_AVX512_BF16;
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    const int tile = (d >> 24) & 1, tbf16 = (d >> 22) & 1, tint8 = (d >> 25) & 1;
    unsigned a1, b1, c1, d1;
    const int osxsave = __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 & (1u << 27));
    /* XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): the OS saves and restores the tiles */
    if (tile && osxsave && (xgetbv0() & (3ull << 17)) == (3ull << 17) &&
        syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0) {
      if (tbf16) f |= SN_CPU_AMX_BF16;
      if (tint8) f |= SN_CPU_AMX_INT8;
    }
  }
  cpu_features = f;
}

unsigned sn_cpu_features(void) {
  pthread_once(&features_once, detect_features);
  return cpu_features;
}

const char *sn_cpu_feature_names(unsigned mask, char *buf, size_t n) {
  static const char *const names[] = {"avx512", "avx512_bf16", "avx512_vnni", "amx_bf16",
                                      "amx_int8"};
  size_t used = 0;
  if (n) buf[0] = 0;
  for (int i = 0; i < 5; ++i)
    if ((mask >> i) & 1) {
      int w = snprintf(buf + used, used < n ? n - used : 0, "%s%s", used ? " " : "", names[i]);
      if (w > 0) used += (size_t)w;
    }
  if (!used && n) snprintf(buf, n, "none");
  return buf;
}
