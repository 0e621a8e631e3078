/* pool.c - max and average pooling (windowed and global), NHWC.
 *
 * Backward passes scatter into dx; to stay race-free and deterministic they are parallel over
 * (image, block of 16 channels): a window's argmax or cells always lie in the same image and
 * channel, so no two threads touch the same dx element and each element is summed in a fixed
 * (oy, ox) order.
 * Global max pool argmax is the flat index within the image, p*C + c (p = spatial index),
 * the same convention as the windowed max pool.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define SN_OMP_MIN 32768
#define SN_CB 16

int sn_pool_geom_init(sn_pool_geom *g, int n, int h, int w, int c, int kh, int kw, int sh, int sw,
                      int pt, int pl, int pb, int pr, int pad_zero) {
  memset(g, 0, sizeof *g);
  if (n <= 0 || h <= 0 || w <= 0 || c <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || pt < 0 ||
      pl < 0 || pb < 0 || pr < 0)
    return -1;
  if (h + pt + pb < kh || w + pl + pr < kw) return -1;
  g->n = n;
  g->h = h;
  g->w = w;
  g->c = c;
  g->kh = kh;
  g->kw = kw;
  g->sh = sh;
  g->sw = sw;
  g->pt = pt;
  g->pl = pl;
  g->pb = pb;
  g->pr = pr;
  g->oh = (h + pt + pb - kh) / sh + 1;
  g->ow = (w + pl + pr - kw) / sw + 1;
  g->pad_zero = pad_zero ? 1 : 0;
  return 0;
}

/* Window cells are scanned in (ky, kx) order and a later cell wins only if strictly greater,
 * so ties go to the first cell (a padded zero included, as in TensorFlow's max pool over an
 * explicitly padded tensor), or if it is NaN: a NaN in the window makes the maximum NaN (the
 * last NaN's cell is the argmax), as in torch's max_pool2d (`val > maxval || isnan(val)`). */
static inline int takes_max(float v, float m) { return v > m || v != v; }

/* Per output pixel the taps are the outer loop and the channels the inner, contiguous one (the
 * NHWC rows of one input pixel), so the compare-and-select vectorises; the result is the same as
 * scanning each channel's window in (ky, kx) order. */
static void max_tap(const float *xp, int c, int32_t base, float *yp, int32_t *ap, int first) {
  if (first) {
    for (int ch = 0; ch < c; ++ch)
      yp[ch] = xp ? xp[ch] : 0.0f;
    if (ap)
      for (int ch = 0; ch < c; ++ch)
        ap[ch] = xp ? base + ch : -1;
    return;
  }
  if (!xp) { /* a padded zero */
    for (int ch = 0; ch < c; ++ch) {
      const int gt = 0.0f > yp[ch];
      yp[ch] = gt ? 0.0f : yp[ch];
      if (ap) ap[ch] = gt ? -1 : ap[ch];
    }
    return;
  }
  if (!ap) {
    for (int ch = 0; ch < c; ++ch)
      yp[ch] = takes_max(xp[ch], yp[ch]) ? xp[ch] : yp[ch];
    return;
  }
  for (int ch = 0; ch < c; ++ch) {
    const int gt = takes_max(xp[ch], yp[ch]);
    yp[ch] = gt ? xp[ch] : yp[ch];
    ap[ch] = gt ? base + ch : ap[ch];
  }
}

static void maxpool_forward_scalar(const sn_pool_geom *g, const float *x, float *y,
                                   int32_t *argmax) {
  const int h = g->h, w = g->w, c = g->c, oh = g->oh, ow = g->ow;
  const long opix = (long)g->n * oh * ow;
#pragma omp parallel for schedule(static) if ((size_t)opix * c * g->kh * g->kw > SN_OMP_MIN)
  for (long p = 0; p < opix; ++p) {
    const int img = (int)(p / ((long)oh * ow)), rem = (int)(p % ((long)oh * ow));
    const int oy = rem / ow, ox = rem % ow;
    const float *xi = x + (size_t)img * h * w * c;
    float *yp = y + (size_t)p * c;
    int32_t *ap = argmax ? argmax + (size_t)p * c : NULL;
    int first = 1;
    for (int ky = 0; ky < g->kh; ++ky) {
      const int iy = oy * g->sh - g->pt + ky;
      for (int kx = 0; kx < g->kw; ++kx) {
        const int ix = ox * g->sw - g->pl + kx;
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
          if (!g->pad_zero) continue;
          max_tap(NULL, c, -1, yp, ap, first);
        } else {
          const int32_t base = (int32_t)(((size_t)iy * w + ix) * c);
          max_tap(xi + base, c, base, yp, ap, first);
        }
        first = 0;
      }
    }
    if (first) { /* no cell at all (cannot happen for a valid geometry) */
      for (int ch = 0; ch < c; ++ch)
        yp[ch] = 0.0f;
      if (ap)
        for (int ch = 0; ch < c; ++ch)
          ap[ch] = -1;
    }
  }
}

/* The gradient of one (image, block of SN_CB channels) job: dx (that image, those channels)
 * zeroed, then each output's dy added at its argmax, outputs in order. */
static void maxpool_backward_job(const sn_pool_geom *g, const int32_t *ai, const float *dyi,
                                 float *dxi, int c0) {
  const int c = g->c, c1 = c0 + SN_CB < c ? c0 + SN_CB : c;
  for (size_t q = 0; q < (size_t)g->h * g->w; ++q)
    for (int ch = c0; ch < c1; ++ch)
      dxi[q * c + ch] = 0.0f;
  for (size_t q = 0; q < (size_t)g->oh * g->ow; ++q)
    for (int ch = c0; ch < c1; ++ch) {
      const int32_t a = ai[q * c + ch];
      if (a >= 0) dxi[a] += dyi[q * c + ch];
    }
}

/* ------------------------------------------------------------ AVX-512 max pool
 * The same scans as above, 16 channels per vector: the running maximum and argmax of a channel
 * block stay in registers over the window's cells (taken in (ky, kx) order, a later cell winning
 * only if strictly greater or NaN: takes_max lane by lane), so the results are bitwise the
 * portable loops'. Backward: the argmax of one output pixel's 16 channels are 16
 * distinct elements of dx, so a masked gather-add-scatter per vector adds in the same order. */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

static inline __mmask16 pool_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* One body for training (ARG: the argmax kept beside the maximum, a compare-and-select per tap)
 * and inference (no argmax: m = max(v, m), which is v > m ? v : m and keeps a NaN m, then v
 * where v is NaN - the same select as takes_max, so bitwise the same values). Only the pixels
 * whose window crosses the border test the taps. */
static inline __attribute__((always_inline)) void maxpool_avx512_body(const sn_pool_geom *g,
                                                                      const float *x, float *y,
                                                                      int32_t *argmax,
                                                                      const int ARG) {
  const int h = g->h, w = g->w, c = g->c, oh = g->oh, ow = g->ow;
  const long opix = (long)g->n * oh * ow;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma omp parallel for schedule(static) if ((size_t)opix * c * g->kh * g->kw > SN_OMP_MIN)
  for (long p = 0; p < opix; ++p) {
    const int img = (int)(p / ((long)oh * ow)), rem = (int)(p % ((long)oh * ow));
    const int iy0 = rem / ow * g->sh - g->pt, ix0 = rem % ow * g->sw - g->pl;
    const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + g->kh <= h && ix0 + g->kw <= w;
    const float *xi = x + (size_t)img * h * w * c;
    float *yp = y + (size_t)p * c;
    for (int c0 = 0; c0 < c; c0 += 16) {
      const __mmask16 k = pool_mask(c - c0);
      __m512 m = _mm512_setzero_ps();
      __m512i a = _mm512_set1_epi32(-1);
      int first = 1;
      for (int ky = 0; ky < g->kh; ++ky) {
        const int iy = iy0 + ky;
        for (int kx = 0; kx < g->kw; ++kx) {
          const int ix = ix0 + kx;
          __m512 v = _mm512_setzero_ps();
          __m512i vi = _mm512_set1_epi32(-1);
          if (!inside && (iy < 0 || iy >= h || ix < 0 || ix >= w)) {
            if (!g->pad_zero) continue; /* a padded zero: value 0, argmax -1 */
          } else {
            const int32_t base = (int32_t)(((size_t)iy * w + ix) * c) + c0;
            v = _mm512_maskz_loadu_ps(k, xi + base);
            if (ARG) vi = _mm512_add_epi32(_mm512_set1_epi32(base), lane);
          }
          if (first) {
            m = v;
            a = vi;
            first = 0;
          } else if (ARG) {
            const __mmask16 gt = _mm512_mask_cmp_ps_mask(k, v, m, _CMP_GT_OQ) |
                                 _mm512_mask_cmp_ps_mask(k, v, v, _CMP_UNORD_Q);
            m = _mm512_mask_mov_ps(m, gt, v);
            a = _mm512_mask_mov_epi32(a, gt, vi);
          } else {
            m = _mm512_mask_mov_ps(_mm512_max_ps(v, m), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
          }
        }
      }
      _mm512_mask_storeu_ps(yp + c0, k, m); /* no cell at all: 0 and -1 */
      if (ARG) _mm512_mask_storeu_epi32(argmax + (size_t)p * c + c0, k, a);
    }
  }
}

static void maxpool_forward_avx512(const sn_pool_geom *g, const float *x, float *y,
                                   int32_t *argmax) {
  if (argmax)
    maxpool_avx512_body(g, x, y, argmax, 1);
  else
    maxpool_avx512_body(g, x, y, NULL, 0);
}

static void maxpool_backward_job_avx512(const sn_pool_geom *g, const int32_t *ai, const float *dyi,
                                        float *dxi, int c0) {
  const int c = g->c;
  const __mmask16 k = pool_mask(c - c0);
  for (size_t q = 0; q < (size_t)g->h * g->w; ++q)
    _mm512_mask_storeu_ps(dxi + q * c + c0, k, _mm512_setzero_ps());
  for (size_t q = 0; q < (size_t)g->oh * g->ow; ++q) {
    const __m512i a = _mm512_maskz_loadu_epi32(k, ai + q * c + c0);
    const __mmask16 m = _mm512_mask_cmpge_epi32_mask(k, a, _mm512_setzero_si512());
    const __m512 d = _mm512_maskz_loadu_ps(m, dyi + q * c + c0);
    const __m512 t = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, a, dxi, 4);
    _mm512_mask_i32scatter_ps(dxi, m, a, _mm512_add_ps(t, d), 4);
  }
}

#pragma GCC pop_options

void sn_maxpool_forward(int portable, const sn_pool_geom *g, const float *x, float *y,
                        int32_t *argmax) {
  if (sn_use_avx512(portable))
    maxpool_forward_avx512(g, x, y, argmax);
  else
    maxpool_forward_scalar(g, x, y, argmax);
}

/* ---- uint8 output (int8 inference plans) */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")

/* 16 float32 maxima to uint8 by sn_quant_u8_ref's rule with zero point 0: min(m * inv, 255)
 * rounded to nearest even, clamped at 0 (a NaN converts to INT_MIN, hence 0). */
static inline __m128i pool_u8_16(__m512 m, __m512 inv) {
  const __m512 t = _mm512_min_ps(_mm512_set1_ps(255.0f), _mm512_mul_ps(m, inv));
  const __m512i q = _mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_cvtusepi32_epi8(_mm512_max_epi32(q, _mm512_setzero_si512()));
}

/* The window of output pixel p: first input row and column, and whether it lies inside. */
static inline int pool_window(const sn_pool_geom *g, long p, int *img, int *iy0, int *ix0) {
  const long ohw = (long)g->oh * g->ow;
  const int rem = (int)(p % ohw);
  *img = (int)(p / ohw);
  *iy0 = rem / g->ow * g->sh - g->pt;
  *ix0 = rem % g->ow * g->sw - g->pl;
  return *iy0 >= 0 && *ix0 >= 0 && *iy0 + g->kh <= g->h && *ix0 + g->kw <= g->w;
}

/* uint8 input: the maximum of the codes, 64 channels per step (quantization with zero point 0
 * is monotonic, so the maximum of the codes is the code of the maximum; a padded zero is code
 * 0, a window without cells gives 0). */
static void maxpool_u8_from_u8(const sn_pool_geom *g, const uint8_t *x, uint8_t *y) {
  const long opix = (long)g->n * g->oh * g->ow;
  const int c = g->c;
#pragma omp parallel for schedule(static) if ((size_t)opix * c * g->kh * g->kw > SN_OMP_MIN)
  for (long p = 0; p < opix; ++p) {
    int img, iy0, ix0;
    const int inside = pool_window(g, p, &img, &iy0, &ix0);
    const uint8_t *xi = x + (size_t)img * g->h * g->w * c;
    for (int c0 = 0; c0 < c; c0 += 64) {
      const __mmask64 k = c - c0 >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (c - c0)) - 1;
      __m512i m = _mm512_setzero_si512();
      for (int ky = 0; ky < g->kh; ++ky)
        for (int kx = 0; kx < g->kw; ++kx) {
          const int iy = iy0 + ky, ix = ix0 + kx;
          if (!inside && (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)) continue;
          m = _mm512_max_epu8(m,
                              _mm512_maskz_loadu_epi8(k, xi + ((size_t)iy * g->w + ix) * c + c0));
        }
      _mm512_mask_storeu_epi8(y + (size_t)p * c + c0, k, m);
    }
  }
}

/* float32 input: the maximum as sn_maxpool_forward computes it, then quantized. */
static void maxpool_u8_from_f32(const sn_pool_geom *g, const float *x, float inv_scale,
                                uint8_t *y) {
  const long opix = (long)g->n * g->oh * g->ow;
  const int c = g->c;
  const __m512 inv = _mm512_set1_ps(inv_scale);
#pragma omp parallel for schedule(static) if ((size_t)opix * c * g->kh * g->kw > SN_OMP_MIN)
  for (long p = 0; p < opix; ++p) {
    int img, iy0, ix0;
    const int inside = pool_window(g, p, &img, &iy0, &ix0);
    const float *xi = x + (size_t)img * g->h * g->w * c;
    for (int c0 = 0; c0 < c; c0 += 16) {
      const __mmask16 k = pool_mask(c - c0);
      __m512 m = _mm512_setzero_ps();
      int first = 1;
      for (int ky = 0; ky < g->kh; ++ky)
        for (int kx = 0; kx < g->kw; ++kx) {
          const int iy = iy0 + ky, ix = ix0 + kx;
          __m512 v = _mm512_setzero_ps();
          if (!inside && (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)) {
            if (!g->pad_zero) continue;
          } else {
            v = _mm512_maskz_loadu_ps(k, xi + ((size_t)iy * g->w + ix) * c + c0);
          }
          m = first ? v
                    : _mm512_mask_mov_ps(_mm512_max_ps(v, m),
                                         _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
          first = 0;
        }
      _mm_mask_storeu_epi8(y + (size_t)p * c + c0, k, pool_u8_16(m, inv));
    }
  }
}

#pragma GCC pop_options

void sn_maxpool_forward_u8(const sn_pool_geom *g, const void *x, int x_u8, float out_scale,
                           uint8_t *y) {
  if (x_u8)
    maxpool_u8_from_u8(g, (const uint8_t *)x, y);
  else
    maxpool_u8_from_f32(g, (const float *)x, 1.0f / out_scale, y);
}

/* Parallel over (image, block of SN_CB channels): see the top of the file. */
void sn_maxpool_backward(int portable, const sn_pool_geom *g, const int32_t *argmax,
                         const float *dy, float *dx) {
  const int c = g->c, nb = (c + SN_CB - 1) / SN_CB, simd = sn_use_avx512(portable);
  const size_t in_img = (size_t)g->h * g->w * c, out_img = (size_t)g->oh * g->ow * c;
  const long jobs = (long)g->n * nb;
#pragma omp parallel for schedule(static) if ((in_img + out_img) * g->n > SN_OMP_MIN)
  for (long jb = 0; jb < jobs; ++jb) {
    const int img = (int)(jb / nb), c0 = (int)(jb % nb) * SN_CB;
    const int32_t *ai = argmax + (size_t)img * out_img;
    const float *dyi = dy + (size_t)img * out_img;
    float *dxi = dx + (size_t)img * in_img;
    if (simd)
      maxpool_backward_job_avx512(g, ai, dyi, dxi, c0);
    else
      maxpool_backward_job(g, ai, dyi, dxi, c0);
  }
}

/* Number of window cells inside the image along one axis. */
static int pool_span(int o, int s, int p, int k, int n, int *i0) {
  int a = o * s - p, b = a + k;
  if (a < 0) a = 0;
  if (b > n) b = n;
  *i0 = a;
  return b > a ? b - a : 0;
}

void sn_avgpool_forward(const sn_pool_geom *g, const float *x, float *y) {
  const int h = g->h, w = g->w, c = g->c, oh = g->oh, ow = g->ow;
  const long opix = (long)g->n * oh * ow;
#pragma omp parallel for schedule(static) if ((size_t)opix * c * g->kh * g->kw > SN_OMP_MIN)
  for (long p = 0; p < opix; ++p) {
    const int img = (int)(p / ((long)oh * ow)), rem = (int)(p % ((long)oh * ow));
    const int oy = rem / ow, ox = rem % ow;
    int y0, x0;
    const int ny = pool_span(oy, g->sh, g->pt, g->kh, h, &y0);
    const int nx = pool_span(ox, g->sw, g->pl, g->kw, w, &x0);
    const int cnt = ny * nx;
    const float *xi = x + (size_t)img * h * w * c;
    float *yp = y + (size_t)p * c;
    for (int ch = 0; ch < c; ++ch) {
      double s = 0.0;
      for (int iy = y0; iy < y0 + ny; ++iy)
        for (int ix = x0; ix < x0 + nx; ++ix)
          s += xi[((size_t)iy * w + ix) * c + ch];
      yp[ch] = cnt ? (float)(s / cnt) : 0.0f;
    }
  }
}

void sn_avgpool_backward(const sn_pool_geom *g, const float *dy, float *dx) {
  const int h = g->h, w = g->w, c = g->c, oh = g->oh, ow = g->ow, nb = (c + SN_CB - 1) / SN_CB;
  const size_t in_img = (size_t)h * w * c, out_pix = (size_t)oh * ow;
  const long jobs = (long)g->n * nb;
#pragma omp parallel for schedule(static) if ((in_img + out_pix * c * g->kh * g->kw) * g->n >      \
                                              SN_OMP_MIN)
  for (long jb = 0; jb < jobs; ++jb) {
    const int img = (int)(jb / nb), b = (int)(jb % nb);
    const int c0 = b * SN_CB, c1 = c0 + SN_CB < c ? c0 + SN_CB : c;
    float *dxi = dx + (size_t)img * in_img;
    for (size_t q = 0; q < (size_t)h * w; ++q)
      for (int ch = c0; ch < c1; ++ch)
        dxi[q * c + ch] = 0.0f;
    const float *dyi = dy + (size_t)img * out_pix * c;
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        int y0, x0;
        const int ny = pool_span(oy, g->sh, g->pt, g->kh, h, &y0);
        const int nx = pool_span(ox, g->sw, g->pl, g->kw, w, &x0);
        if (!ny || !nx) continue;
        const float inv = 1.0f / (float)(ny * nx);
        const float *d = dyi + ((size_t)oy * ow + ox) * c;
        for (int iy = y0; iy < y0 + ny; ++iy)
          for (int ix = x0; ix < x0 + nx; ++ix) {
            float *t = dxi + ((size_t)iy * w + ix) * c;
            for (int ch = c0; ch < c1; ++ch)
              t[ch] += d[ch] * inv;
          }
      }
  }
}

/* x (N, HW, C) -> y (N, C): mean over HW, double accumulators. */
void sn_global_avgpool_forward(const float *x, int n, int hw, int c, float *y) {
  const int nb = (c + SN_CB - 1) / SN_CB;
  const long jobs = (long)n * nb;
#pragma omp parallel for schedule(static) if ((size_t)n * hw * c > SN_OMP_MIN && jobs > 1)
  for (long jb = 0; jb < jobs; ++jb) {
    const int img = (int)(jb / nb), b = (int)(jb % nb);
    const int c0 = b * SN_CB, c1 = c0 + SN_CB < c ? c0 + SN_CB : c;
    double s[SN_CB] = {0};
    const float *xi = x + (size_t)img * hw * c;
    for (int p = 0; p < hw; ++p)
      for (int ch = c0; ch < c1; ++ch)
        s[ch - c0] += xi[(size_t)p * c + ch];
    for (int ch = c0; ch < c1; ++ch)
      y[(size_t)img * c + ch] = (float)(s[ch - c0] / hw);
  }
}

void sn_global_avgpool_backward(const float *dy, int n, int hw, int c, float *dx) {
  const float inv = 1.0f / (float)hw;
  const long rows = (long)n * hw;
#pragma omp parallel for schedule(static) if ((size_t)rows * c > SN_OMP_MIN)
  for (long r = 0; r < rows; ++r) {
    const float *d = dy + (size_t)(r / hw) * c;
    float *t = dx + (size_t)r * c;
    for (int ch = 0; ch < c; ++ch)
      t[ch] = d[ch] * inv;
  }
}

/* First maximum in spatial order wins (a NaN always wins: takes_max); argmax (N, C) = p*C + c
 * within the image. */
void sn_global_maxpool_forward(const float *x, int n, int hw, int c, float *y, int32_t *argmax) {
  const int nb = (c + SN_CB - 1) / SN_CB;
  const long jobs = (long)n * nb;
#pragma omp parallel for schedule(static) if ((size_t)n * hw * c > SN_OMP_MIN && jobs > 1)
  for (long jb = 0; jb < jobs; ++jb) {
    const int img = (int)(jb / nb), b = (int)(jb % nb);
    const int c0 = b * SN_CB, c1 = c0 + SN_CB < c ? c0 + SN_CB : c;
    const float *xi = x + (size_t)img * hw * c;
    float best[SN_CB];
    int32_t bi[SN_CB];
    for (int ch = c0; ch < c1; ++ch) {
      best[ch - c0] = xi[ch];
      bi[ch - c0] = ch;
    }
    for (int p = 1; p < hw; ++p)
      for (int ch = c0; ch < c1; ++ch) {
        const float v = xi[(size_t)p * c + ch];
        if (takes_max(v, best[ch - c0])) {
          best[ch - c0] = v;
          bi[ch - c0] = (int32_t)((size_t)p * c + ch);
        }
      }
    for (int ch = c0; ch < c1; ++ch) {
      y[(size_t)img * c + ch] = best[ch - c0];
      if (argmax) argmax[(size_t)img * c + ch] = bi[ch - c0];
    }
  }
}

void sn_global_maxpool_backward(const int32_t *argmax, const float *dy, int n, int hw, int c,
                                float *dx) {
  memset(dx, 0, (size_t)n * hw * c * sizeof(float));
  for (int img = 0; img < n; ++img)
    for (int ch = 0; ch < c; ++ch) {
      const int32_t a = argmax[(size_t)img * c + ch];
      if (a >= 0) dx[(size_t)img * hw * c + a] = dy[(size_t)img * c + ch];
    }
}
