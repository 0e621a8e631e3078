/* relu.h - private to src/kernels: the ReLU every kernel applies, in one place (the ReLU kernels
 * and every fused epilogue: direct tiles, packed GEMM, Winograd, batch norm, add, input maps).
 *
 *   relu(x) = x <= 0 ? +0 : x
 *
 * Negative values and both zeros give +0; positive values, +infinity and NaN pass unchanged, so
 * ReLU(NaN) = NaN as in PyTorch and a NaN reaches the output and loss checks instead of becoming
 * a plausible 0. For every x that is not NaN this is bitwise max(x, 0) with +0 for -0 (what
 * _mm512_max_ps(x, 0) and `x > 0 ? x : 0` gave). The vector form keeps the lanes where x <= 0 is
 * false (_CMP_NLE_UQ: true for NaN) and zeroes the others: the scalar expression lane by lane.
 * _mm512_max_ps(x, 0) would not do: it returns its second operand when either is NaN, and with
 * the operands swapped it keeps -0. A leaf: it includes nothing of the kernels. */
#ifndef SN_RELU_H
#define SN_RELU_H

#include <immintrin.h>

static inline float sn_relu(float x) { return x <= 0.0f ? 0.0f : x; }

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
static inline __m512 sn_relu_ps(__m512 x) {
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ), x);
}
#pragma GCC pop_options

#endif /* SN_RELU_H */
