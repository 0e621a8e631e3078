/* tile_bench.c - GFLOP/s of one direct-convolution tile (src/kernels/conv_tiles.c) with its data
 * in L1, against a plain FMA loop (16 independent zmm accumulators): how close a tile comes to
 * the core's FMA peak before memory and the rest of a layer enter.
 *
 * A tile computes R output pixels x 16*NV output channels of a 3x3 convolution from three
 * padded input rows with Cin channels (K = 3 * 3 * Cin); the row stride passed is Cin, so the
 * tile picked is the one sn_conv_tile_pick returns for (R, NV, Cin): a constant-stride variant
 * where one exists, else the generic one.
 *
 * Compiled by jobs/bench/train_bench.sh (not part of the CMake build), or by hand:
 *   cc -O2 -std=c11 -fopenmp -Isrc jobs/bench/tile_bench.c build/libshardnet_static.a \
 *      -lopenblas -lm -o build/tile_bench
 * Usage: tile_bench [--rounds 7] R NV CIN [R NV CIN ...]
 *   e.g. tile_bench 28 1 16 14 2 32 7 4 64   (resnet20's 3x3 layers)
 * Output: one JSON line per tile and one for the FMA loop; the best of the rounds (the machine is
 * shared: the best round is the one least disturbed). AVX-512 only. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "kernels/conv_tiles.h"

#define FMA_ITERS 20000000L

#define SN_ACC(i) __m512 a##i = _mm512_set1_ps((float)(i));
#define SN_FMA(i) a##i = _mm512_fmadd_ps(a##i, m, c);
/* FLOPs of FMA_ITERS x 16 independent zmm FMAs; out keeps the result live. */
__attribute__((target("avx512f,fma"), noinline)) static double fma_loop(float *out) {
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-6f);
  /* clang-format off */
  SN_ACC(0) SN_ACC(1) SN_ACC(2) SN_ACC(3) SN_ACC(4) SN_ACC(5) SN_ACC(6) SN_ACC(7)
  SN_ACC(8) SN_ACC(9) SN_ACC(10) SN_ACC(11) SN_ACC(12) SN_ACC(13) SN_ACC(14) SN_ACC(15)
  for (long it = 0; it < FMA_ITERS; it++) {
    SN_FMA(0) SN_FMA(1) SN_FMA(2) SN_FMA(3) SN_FMA(4) SN_FMA(5) SN_FMA(6) SN_FMA(7)
    SN_FMA(8) SN_FMA(9) SN_FMA(10) SN_FMA(11) SN_FMA(12) SN_FMA(13) SN_FMA(14) SN_FMA(15)
  } /* clang-format on */
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s,
                    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                  _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
  _mm512_storeu_ps(out, s);
  return (double)FMA_ITERS * 16 * 16 * 2;
}

static void bench_tile(int r, int nv, int cin, int rounds) {
  const int cout = 16 * nv, wp = r + 2, kseg = 3 * cin;
  const size_t na = (size_t)3 * wp * cin, nb = (size_t)3 * kseg * cout;
  float *a = aligned_alloc(64, (na * 4 + 63) / 64 * 64),
        *b = aligned_alloc(64, (nb * 4 + 63) / 64 * 64);
  float *c = aligned_alloc(64, ((size_t)r * cout * 4 + 63) / 64 * 64);
  if (!a || !b || !c) {
    fprintf(stderr, "tile_bench: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < na; i++)
    a[i] = 0.001f * (float)(i % 97) - 0.03f;
  for (size_t i = 0; i < nb; i++)
    b[i] = 0.001f * (float)(i % 89) - 0.04f;
  const sn_conv_tile_fn f = sn_conv_tile_pick(r, nv, cin);
  const long reps = 40000000L / ((long)r * nv * kseg * 3);
  double best = 0.0;
  for (int k = 0; k < rounds; k++) {
    const double t0 = now();
    for (long i = 0; i < reps; i++)
      f(a, cin, 3, (ptrdiff_t)wp * cin, kseg, b, c, cout, cout, NULL, NULL, 0);
    const double g = (double)reps * r * cout * 3 * kseg * 2 / (now() - t0) * 1e-9;
    if (g > best) best = g;
  }
  printf("{\"tile\": \"R=%d NV=%d Cin=%d\", \"gflops_best\": %.1f, \"check\": %g}\n", r, nv, cin,
         best, (double)c[0]);
  free(a);
  free(b);
  free(c);
}

int main(int argc, char **argv) {
  int rounds = 7, i = 1;
  if (argc > 2 && !strcmp(argv[1], "--rounds")) {
    rounds = atoi(argv[2]);
    i = 3;
  }
  if (!sn_cpu_has_avx512() || rounds < 1 || (argc - i) % 3 || argc - i < 3) {
    fprintf(stderr, "usage: tile_bench [--rounds N] R NV CIN [R NV CIN ...] (AVX-512 only)\n");
    return 2;
  }
  for (; i + 2 < argc; i += 3) {
    const int r = atoi(argv[i]), nv = atoi(argv[i + 1]), cin = atoi(argv[i + 2]);
    if (nv < 1 || nv > 4 || r < 1 || r > k_rmax[nv] || cin < 1) {
      fprintf(stderr, "tile_bench: R=%d NV=%d Cin=%d: need 1 <= NV <= 4, 1 <= R <= %d\n", r, nv,
              cin, nv >= 1 && nv <= 4 ? k_rmax[nv] : 0);
      return 2;
    }
    bench_tile(r, nv, cin, rounds);
  }
  float o[16];
  double best = 0.0;
  for (int k = 0; k < rounds; k++) {
    const double t0 = now();
    const double f = fma_loop(o);
    const double g = f / (now() - t0) * 1e-9;
    if (g > best) best = g;
  }
  printf("{\"fma_loop_gflops_best\": %.1f, \"check\": %g}\n", best, (double)o[0]);
  return 0;
}
