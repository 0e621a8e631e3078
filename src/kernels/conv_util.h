/* conv_util.h - private to src/kernels: the small functions every convolution file uses (integer
 * arithmetic, AVX-512 lane masks, masked copies). A leaf: it includes nothing of the kernels. */
#ifndef SN_CONV_UTIL_H
#define SN_CONV_UTIL_H

#include <immintrin.h>
#include <stddef.h>

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The first n of 16 lanes, n clamped to [0, 16]. */
static inline __mmask16 tail_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* The first n of 16 lanes for 0 <= n <= 16 (no clamping: for loops whose n is in range). */
static inline __mmask16 lane_mask(int n) { return (__mmask16)(n == 16 ? 0xFFFFu : (1u << n) - 1); }

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")

/* d[0, n) = s[0, n) / = 0 */
static inline void copy_f(float *d, const float *s, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    __mmask16 m = tail_mask((int)(n - i));
    _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
  }
}
static inline void zero_f(float *d, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(d + i, _mm512_setzero_ps());
  if (i < n) _mm512_mask_storeu_ps(d + i, tail_mask((int)(n - i)), _mm512_setzero_ps());
}

#pragma GCC pop_options

#endif /* SN_CONV_UTIL_H */
