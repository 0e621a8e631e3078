/* isa_peak.c - the peak rate of the three multiply-add instructions the inference kernels are
 * built on, per core and on all threads: vfmadd231ps (float32, 16 lanes x 2 flops), vdpbf16ps
 * (bf16 pairs into float32, 16 lanes x 4 flops) and vpdpbusd (uint8 x int8 quadruples into int32,
 * 16 lanes x 8 ops), all on zmm registers. Twelve independent accumulators per thread hide the
 * instructions' latency, so the loop runs at the issue rate of the instruction alone: the ceiling
 * a convolution kernel of that precision can approach, against which kernels and precisions are
 * compared (docs/performance.md).
 *
 * Not part of the CMake build:
 *   cc -O2 -fopenmp -mavx512f -mavx512bw -mavx512bf16 -mavx512vnni jobs/bench/isa_peak.c \
 *      -o isa_peak && ./isa_peak
 * Output: one JSON line per instruction and thread count (threads 1 and OMP_NUM_THREADS), with
 * giga-instructions and giga-operations per second (the best of 5 runs). Needs
 * AVX512-BF16 and AVX512-VNNI (refused otherwise). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define ITERS 100000000L /* loop trips per run (12 instructions each): about 0.2 s */

enum { FMA, BF16, VNNI };

/* Runs ITERS x 12 instructions of kind k on the calling thread; returns a value that depends on
 * every accumulator (so that nothing is optimised away). */
__attribute__((target("avx512f,avx512bw,avx512bf16,avx512vnni"))) static double run(int k) {
  double out = 0;
  if (k == FMA) {
    __m512 a[12], x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
      a[i] = _mm512_setzero_ps();
    for (long t = 0; t < ITERS; t++) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++)
        a[i] = _mm512_fmadd_ps(x, y, a[i]);
      __asm__ volatile("" : "+v"(x));
    }
    for (int i = 0; i < 12; i++)
      out += _mm512_reduce_add_ps(a[i]);
  } else if (k == BF16) {
    __m512 a[12];
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
    for (int i = 0; i < 12; i++)
      a[i] = _mm512_setzero_ps();
    for (long t = 0; t < ITERS; t++) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++)
        a[i] = _mm512_dpbf16_ps(a[i], x, y);
      __asm__ volatile("" : "+v"(x));
    }
    for (int i = 0; i < 12; i++)
      out += _mm512_reduce_add_ps(a[i]);
  } else {
    __m512i a[12], x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(1);
    for (int i = 0; i < 12; i++)
      a[i] = _mm512_setzero_si512();
    for (long t = 0; t < ITERS; t++) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++)
        a[i] = _mm512_dpbusd_epi32(a[i], x, y);
      __asm__ volatile("" : "+v"(x));
    }
    for (int i = 0; i < 12; i++)
      out += _mm512_reduce_add_epi32(a[i]);
  }
  return out;
}

int main(void) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512vnni")) {
    fprintf(stderr, "isa_peak: this CPU lacks AVX512-BF16 or AVX512-VNNI\n");
    return 1;
  }
  const char *name[] = {"vfmadd231ps", "vdpbf16ps", "vpdpbusd"};
  const int ops[] = {32, 64, 128}; /* per instruction: lanes x operations */
  const int nmax = omp_get_max_threads();
  for (int k = FMA; k <= VNNI; k++)
    for (int nt = 1; nt <= nmax; nt += nmax > 1 ? nmax - 1 : 1) {
      double best = 0, sink = 0;
      for (int rep = 0; rep < 5; rep++) {
        const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nt) reduction(+ : sink)
        sink += run(k);
        const double gi = (double)nt * ITERS * 12 / (omp_get_wtime() - t0) * 1e-9;
        if (gi > best) best = gi;
      }
      printf("{\"instruction\":\"%s\",\"threads\":%d,\"ginst_per_s\":%.2f,\"gops\":%.1f,"
             "\"check\":%g}\n",
             name[k], nt, best, best * ops[k], sink > 0 ? 1.0 : 0.0);
      if (nmax == 1) break;
    }
  return 0;
}
