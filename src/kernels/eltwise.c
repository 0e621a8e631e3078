/* eltwise.c - ReLU, residual add, Keras-style zero padding and the finiteness check.
 * ReLU and add have AVX-512 bodies (unless the caller passes portable = 1) with identical results:
 * they are exact (a select, relu.h) or one rounding (add). ReLU(NaN) = NaN; the backward passes
 * give NaN inputs no gradient (their mask is y > 0). */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "relu.h"

#define SN_OMP_MIN 32768
/* Elements per parallel task of the elementwise loops (a multiple of 16). */
#define SN_EW_BLOCK 16384

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

static inline __mmask16 ew_mask(size_t n) { return (__mmask16)((1u << n) - 1); }

static void relu_fwd_avx512(const float *x, size_t n, float *y) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, sn_relu_ps(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = ew_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, sn_relu_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

/* dx = dy where y > 0 (an ordered compare: NaN y gives 0, as the portable loop) */
static void relu_bwd_avx512(const float *y, const float *dy, size_t n, float *dx) {
  const __m512 z = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), z, _CMP_GT_OQ);
    _mm512_storeu_ps(dx + i, _mm512_maskz_mov_ps(pos, _mm512_loadu_ps(dy + i)));
  }
  if (i < n) {
    const __mmask16 m = ew_mask(n - i);
    const __mmask16 pos =
        _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, y + i), z, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(pos, dy + i));
  }
}

/* dx += dy where y > 0 */
static void relu_bwd_acc_avx512(const float *y, const float *dy, size_t n, float *dx) {
  const __m512 z = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), z, _CMP_GT_OQ);
    _mm512_storeu_ps(dx + i, _mm512_mask_add_ps(_mm512_loadu_ps(dx + i), pos,
                                                _mm512_loadu_ps(dx + i), _mm512_loadu_ps(dy + i)));
  }
  if (i < n) {
    const __mmask16 m = ew_mask(n - i);
    const __mmask16 pos =
        _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, y + i), z, _CMP_GT_OQ);
    const __m512 o = _mm512_maskz_loadu_ps(m, dx + i);
    _mm512_mask_storeu_ps(dx + i, m,
                          _mm512_mask_add_ps(o, pos, o, _mm512_maskz_loadu_ps(pos, dy + i)));
  }
}

static void add_avx512(const float *a, const float *b, size_t n, int relu, float *y) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    _mm512_storeu_ps(y + i, relu ? sn_relu_ps(v) : v);
  }
  if (i < n) {
    const __mmask16 m = ew_mask(n - i);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    _mm512_mask_storeu_ps(y + i, m, relu ? sn_relu_ps(v) : v);
  }
}

#pragma GCC pop_options

/* Runs body(i0, len) over [0, n) in blocks of SN_EW_BLOCK, in parallel when n is large. */
#define SN_EW_BLOCKS(n, body)                                                                      \
  do {                                                                                             \
    const long nb_ = (long)(((n) + SN_EW_BLOCK - 1) / SN_EW_BLOCK);                                \
    _Pragma("omp parallel for schedule(static) if ((n) > SN_OMP_MIN)") for (long b_ = 0; b_ < nb_; \
                                                                            ++b_) {                \
      const size_t i0 = (size_t)b_ * SN_EW_BLOCK;                                                  \
      const size_t len = (n)-i0 < SN_EW_BLOCK ? (n)-i0 : SN_EW_BLOCK;                              \
      body;                                                                                        \
    }                                                                                              \
  } while (0)

void sn_relu_forward(int portable, const float *x, size_t n, float *y) {
  if (sn_use_avx512(portable)) {
    SN_EW_BLOCKS(n, relu_fwd_avx512(x + i0, len, y + i0));
    return;
  }
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i)
    y[i] = sn_relu(x[i]);
}

/* dx = dy where y > 0, else 0 (the gradient at 0 is 0, as in PyTorch). dy is read
 * unconditionally so that the loop vectorizes (a select, not a branch). */
void sn_relu_backward(int portable, const float *y, const float *dy, size_t n, float *dx) {
  if (sn_use_avx512(portable)) {
    SN_EW_BLOCKS(n, relu_bwd_avx512(y + i0, dy + i0, len, dx + i0));
    return;
  }
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i) {
    const float d = dy[i];
    dx[i] = y[i] > 0.0f ? d : 0.0f;
  }
}

void sn_relu_backward_acc(int portable, const float *y, const float *dy, size_t n, float *dx) {
  if (sn_use_avx512(portable)) {
    SN_EW_BLOCKS(n, relu_bwd_acc_avx512(y + i0, dy + i0, len, dx + i0));
    return;
  }
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i) {
    const float d = dy[i];
    dx[i] += y[i] > 0.0f ? d : 0.0f;
  }
}

void sn_add_forward(int portable, const float *a, const float *b, size_t n, int relu, float *y) {
  if (sn_use_avx512(portable)) {
    SN_EW_BLOCKS(n, add_avx512(a + i0, b + i0, len, relu, y + i0));
    return;
  }
  if (relu) {
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
    for (long i = 0; i < (long)n; ++i) {
      const float v = a[i] + b[i];
      y[i] = sn_relu(v);
    }
  } else {
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
    for (long i = 0; i < (long)n; ++i)
      y[i] = a[i] + b[i];
  }
}

/* x (N, H, W, C) -> y (N, H+pt+pb, W+pl+pr, C), zeros in the border. */
void sn_pad_forward(const float *x, int n, int h, int w, int c, int pt, int pl, int pb, int pr,
                    float *y) {
  const int yh = h + pt + pb, yw = w + pl + pr;
  const long rows = (long)n * yh;
  const size_t total = (size_t)rows * yw * c;
#pragma omp parallel for schedule(static) if (total > SN_OMP_MIN)
  for (long r = 0; r < rows; ++r) {
    const int img = (int)(r / yh), oy = (int)(r % yh), iy = oy - pt;
    float *yr = y + (size_t)r * yw * c;
    if (iy < 0 || iy >= h) {
      memset(yr, 0, (size_t)yw * c * sizeof(float));
      continue;
    }
    memset(yr, 0, (size_t)pl * c * sizeof(float));
    memcpy(yr + (size_t)pl * c, x + ((size_t)img * h + iy) * w * c, (size_t)w * c * sizeof(float));
    memset(yr + (size_t)(pl + w) * c, 0, (size_t)pr * c * sizeof(float));
  }
}

/* dy (N, H+pt+pb, W+pl+pr, C) -> dx (N, H, W, C): the interior crop. */
void sn_pad_backward(const float *dy, int n, int h, int w, int c, int pt, int pl, int pb, int pr,
                     float *dx) {
  const int yh = h + pt + pb, yw = w + pl + pr;
  const long rows = (long)n * h;
  const size_t total = (size_t)rows * w * c;
#pragma omp parallel for schedule(static) if (total > SN_OMP_MIN)
  for (long r = 0; r < rows; ++r) {
    const int img = (int)(r / h), iy = (int)(r % h);
    memcpy(dx + (size_t)r * w * c, dy + (((size_t)img * yh + iy + pt) * yw + pl) * c,
           (size_t)w * c * sizeof(float));
  }
}

int sn_all_finite(const float *x, size_t n) {
  int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i)
    ok = ok && isfinite(x[i]);
  return ok;
}
