/* bn.c - batch-normalization kernels over (rows, C) tensors, rows = N*H*W.
 *
 * Determinism: the per-channel sums split the rows into a fixed number of blocks
 * (min(rows, SN_BN_RBLOCKS), independent of the thread count); each block accumulates its rows in
 * order in double, and the block partials are added in block order. Results are therefore
 * identical for any thread count. The AVX-512 and portable bodies add in the same order (they may
 * differ by FMA contraction only). Elementwise passes are parallel over rows.
 *
 * AVX-512 bodies (unless the caller passes portable = 1) keep up to 64 channels per row pass in
 * registers (16 double accumulators for the sums). A sums task covers whole row segments of its
 * block (L1-sized sub-blocks of rows, 64-channel groups inside), never a narrow channel slice.
 */
#include <math.h>
#include <stddef.h>

#include "kernels.h"
#include "relu.h"

#define SN_OMP_MIN 32768
/* Channels whose coefficients are precomputed at a time on the stack (at most 4 * 8 KiB): every
 * ResNet width in one pass, so a row task streams whole rows. */
#define SN_BN_CBLOCK 2048
/* Row blocks of the sums (fixed: the results do not depend on the thread count) and channels per
 * pass (their double partials live on the stack: 2 * 16 * 512 * 8 = 128 KiB). A pass reads
 * 2 KiB row segments; 256 channels (1 KiB) measured ~20% slower at C >= 512, 1024 no faster. */
#define SN_BN_RBLOCKS 16
#define SN_BN_SUMC 512
/* Bytes of input per row sub-block of the AVX-512 sums (walked over all channels of the pass
 * while it stays in L1). */
#define SN_BN_SUBBYTES 16384
/* Rows per parallel task of the elementwise passes (times C floats). */
#define SN_BN_ROWTASK 1024

void sn_bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
                float eps, int c, float *scale, float *shift) {
  for (int j = 0; j < c; ++j) {
    const double s = (double)gamma[j] / sqrt((double)var[j] + (double)eps);
    scale[j] = (float)s;
    shift[j] = (float)((double)beta[j] - (double)mean[j] * s);
  }
}

/* ------------------------------------------------------------ AVX-512 bodies */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

static inline __mmask16 bn_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* s[j], q[j] (j < cw <= 64, nv = ceil(cw / 16)) += sums over rows [r0, r1) of x[r*c + c0 + j]
 * and its square; with mode 1 or 2: s += sum d, q += sum d * (x - mean) (the backward sums; mode 2
 * masks d by ym > 0). Lane j of the accumulators is channel j, rows in order: the same additions
 * as the portable loop. s and q are 64-byte aligned with room for 64 doubles. Inlined with
 * constant nv and mode, so that the accumulator arrays live in registers (a runtime nv indexes
 * them in memory: a store-to-load round trip on every addition). */
static inline __attribute__((always_inline)) void
sums_group_body(const float *x, const float *d, const float *ym, const float *mean, const float *ma,
                const float *mb, size_t r0, size_t r1, int c, int c0, int cw, double *s, double *q,
                const int nv, const int mode) {
  __m512d as[8], aq[8], mu[8];
  __mmask16 mk[4];
  for (int v = 0; v < nv; v++)
    mk[v] = bn_mask(cw - 16 * v);
  for (int h = 0; h < 2 * nv; h++) {
    as[h] = _mm512_load_pd(s + 8 * h);
    aq[h] = _mm512_load_pd(q + 8 * h);
    mu[h] = _mm512_setzero_pd();
  }
  if (mode)
    for (int v = 0; v < nv; v++) {
      const __m512 m = _mm512_maskz_loadu_ps(mk[v], mean + c0 + 16 * v);
      mu[2 * v] = _mm512_cvtps_pd(_mm512_castps512_ps256(m));
      mu[2 * v + 1] =
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m), 1)));
    }
#define SN_BN_HALVES(V, X)                                                                         \
  const __m512d lo##V = _mm512_cvtps_pd(_mm512_castps512_ps256(X));                                \
  const __m512d hi##V =                                                                            \
      _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(X), 1)))
  for (size_t r = r0; r < r1; r++) {
    const float *xr = x + r * c + c0;
    if (mode) {
      const float *dr = d + r * c + c0;
      for (int v = 0; v < nv; v++) {
        const __m512 xv = _mm512_maskz_loadu_ps(mk[v], xr + 16 * v);
        __mmask16 dm = mk[v];
        if (mode == 2) /* the gradient through a fused ReLU: dy where y > 0 */
          dm = _mm512_mask_cmp_ps_mask(dm, _mm512_maskz_loadu_ps(dm, ym + r * c + c0 + 16 * v),
                                       _mm512_setzero_ps(), _CMP_GT_OQ);
        if (mode == 3) /* y > 0 recomputed from x as the forward computed it (affine_rows) */
          dm = _mm512_mask_cmp_ps_mask(
              dm,
              _mm512_fmadd_ps(_mm512_sub_ps(xv, _mm512_maskz_loadu_ps(dm, mean + c0 + 16 * v)),
                              _mm512_maskz_loadu_ps(dm, ma + 16 * v),
                              _mm512_maskz_loadu_ps(dm, mb + 16 * v)),
              _mm512_setzero_ps(), _CMP_GT_OQ);
        const __m512 dv = _mm512_maskz_loadu_ps(dm, dr + 16 * v);
        SN_BN_HALVES(x, xv);
        SN_BN_HALVES(d, dv);
        as[2 * v] = _mm512_add_pd(as[2 * v], lod);
        as[2 * v + 1] = _mm512_add_pd(as[2 * v + 1], hid);
        aq[2 * v] = _mm512_add_pd(aq[2 * v], _mm512_mul_pd(lod, _mm512_sub_pd(lox, mu[2 * v])));
        aq[2 * v + 1] =
            _mm512_add_pd(aq[2 * v + 1], _mm512_mul_pd(hid, _mm512_sub_pd(hix, mu[2 * v + 1])));
      }
    } else {
      for (int v = 0; v < nv; v++) {
        const __m512 xv = _mm512_maskz_loadu_ps(mk[v], xr + 16 * v);
        SN_BN_HALVES(x, xv);
        as[2 * v] = _mm512_add_pd(as[2 * v], lox);
        as[2 * v + 1] = _mm512_add_pd(as[2 * v + 1], hix);
        aq[2 * v] = _mm512_add_pd(aq[2 * v], _mm512_mul_pd(lox, lox));
        aq[2 * v + 1] = _mm512_add_pd(aq[2 * v + 1], _mm512_mul_pd(hix, hix));
      }
    }
  }
#undef SN_BN_HALVES
  for (int h = 0; h < 2 * nv; h++) {
    _mm512_store_pd(s + 8 * h, as[h]);
    _mm512_store_pd(q + 8 * h, aq[h]);
  }
}

/* sums_group_body for d == NULL (mode 0), ym == NULL (1) or not (2), or the mask recomputed
 * from x (3: ma != NULL, the channels' scale and shift from c0 on), by the vector count. */
static void sums_group_avx512(const float *x, const float *d, const float *ym, const float *mean,
                              const float *ma, const float *mb, size_t r0, size_t r1, int c, int c0,
                              int cw, double *s, double *q) {
  const int mode = !d ? 0 : ma ? 3 : !ym ? 1 : 2;
#define SN_BN_GROUP(NV, M) sums_group_body(x, d, ym, mean, ma, mb, r0, r1, c, c0, cw, s, q, NV, M)
#define SN_BN_MODES(NV)                                                                            \
  (mode == 0   ? SN_BN_GROUP(NV, 0)                                                                \
   : mode == 1 ? SN_BN_GROUP(NV, 1)                                                                \
   : mode == 2 ? SN_BN_GROUP(NV, 2)                                                                \
               : SN_BN_GROUP(NV, 3))
  switch ((cw + 15) / 16) {
  case 1:
    SN_BN_MODES(1);
    break;
  case 2:
    SN_BN_MODES(2);
    break;
  case 3:
    SN_BN_MODES(3);
    break;
  default:
    SN_BN_MODES(4);
    break;
  }
#undef SN_BN_MODES
#undef SN_BN_GROUP
}

/* s[j], q[j] (j < cw <= SN_BN_SUMC) = the sums of sums_group_avx512 over rows [r0, r1) and
 * channels c0 + j. The rows are walked in L1-sized sub-blocks, each over all cw channels
 * group by group, so that a task streams whole row segments (the hardware prefetchers fetch
 * lines this task needs, not another task's); per channel the rows are still added in order. */
static void sums_block_avx512(const float *x, const float *d, const float *ym, const float *mean,
                              const float *ma, const float *mb, size_t r0, size_t r1, int c, int c0,
                              int cw, double *s, double *q) {
  _Alignas(64) double ts[SN_BN_SUMC], tq[SN_BN_SUMC];
  const int cp = (cw + 63) / 64 * 64;
  for (int j = 0; j < cp; j++)
    ts[j] = tq[j] = 0.0;
  /* rows per sub-block: its segments of the 1-3 input tensors fill about SN_BN_SUBBYTES */
  const int nt = 1 + (d != NULL) + (ym != NULL);
  const size_t sr = cw <= 64 ? r1 - r0 : (size_t)(SN_BN_SUBBYTES / (4 * cp * nt) + 1);
  for (size_t rs = r0; rs < r1; rs += sr) {
    const size_t re = rs + sr < r1 ? rs + sr : r1;
    for (int g0 = 0; g0 < cw; g0 += 64)
      sums_group_avx512(x, d, ym, mean, ma ? ma + g0 : NULL, mb ? mb + g0 : NULL, rs, re, c,
                        c0 + g0, cw - g0 < 64 ? cw - g0 : 64, ts + g0, tq + g0);
  }
  for (int j = 0; j < cw; j++) {
    s[j] = ts[j];
    q[j] = tq[j];
  }
}

/* y[r][j] = act((x[r][j] - m[j]) * a[j] + b[j] (+ res[r][j])) (m, res may be NULL) for rows
 * [r0, r1) and channels j < cw; x, res and y have row stride c (y may alias res). */
static void affine_rows_avx512(const float *x, const float *res, size_t r0, size_t r1, int c,
                               int cw, const float *m, const float *a, const float *b, int relu,
                               float *y) {
  const __m512 z = _mm512_setzero_ps();
  for (size_t r = r0; r < r1; r++) {
    const float *xr = x + r * c;
    float *yr = y + r * c;
    for (int j = 0; j < cw; j += 16) {
      const __mmask16 k = bn_mask(cw - j);
      const __m512 xv = _mm512_maskz_loadu_ps(k, xr + j);
      const __m512 mv = m ? _mm512_maskz_loadu_ps(k, m + j) : z;
      __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(xv, mv), _mm512_maskz_loadu_ps(k, a + j),
                                 _mm512_maskz_loadu_ps(k, b + j));
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + r * c + j));
      if (relu) v = sn_relu_ps(v);
      _mm512_mask_storeu_ps(yr + j, k, v);
    }
  }
}

/* dx = k1 * (dy - mdy - (x - m) * k2) over rows [r0, r1), channels j < cw, row stride c; with
 * ym, dy is taken as 0 where ym <= 0 (a fused ReLU's output). */
static void bwd_dx_rows_avx512(const float *x, const float *dy, const float *ym, const float *mb,
                               size_t r0, size_t r1, int c, int cw, const float *m, const float *k1,
                               const float *mdy, const float *k2, float *dx) {
  for (size_t r = r0; r < r1; r++) {
    const float *xr = x + r * c, *dr = dy + r * c;
    float *o = dx + r * c;
    for (int j = 0; j < cw; j += 16) {
      const __mmask16 k = bn_mask(cw - j);
      __mmask16 dm = k;
      if (ym)
        dm = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, ym + r * c + j),
                                     _mm512_setzero_ps(), _CMP_GT_OQ);
      const __m512 xm =
          _mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + j), _mm512_maskz_loadu_ps(k, m + j));
      if (mb) /* y > 0 recomputed as the forward did: k1 is its scale, mb its shift */
        dm = _mm512_mask_cmp_ps_mask(
            k,
            _mm512_fmadd_ps(xm, _mm512_maskz_loadu_ps(k, k1 + j), _mm512_maskz_loadu_ps(k, mb + j)),
            _mm512_setzero_ps(), _CMP_GT_OQ);
      const __m512 t =
          _mm512_sub_ps(_mm512_maskz_loadu_ps(dm, dr + j), _mm512_maskz_loadu_ps(k, mdy + j));
      const __m512 v =
          _mm512_mul_ps(_mm512_maskz_loadu_ps(k, k1 + j),
                        _mm512_sub_ps(t, _mm512_mul_ps(xm, _mm512_maskz_loadu_ps(k, k2 + j))));
      _mm512_mask_storeu_ps(o + j, k, v);
    }
  }
}

#pragma GCC pop_options

/* ------------------------------------------------------------ portable bodies */

static void sums_block(const float *x, const float *d, const float *ym, const float *mean,
                       const float *ma, const float *mb, size_t r0, size_t r1, int c, int c0,
                       int cw, double *s, double *q) {
  for (int j = 0; j < cw; ++j)
    s[j] = q[j] = 0.0;
  for (size_t r = r0; r < r1; ++r) {
    const float *xr = x + r * c + c0;
    if (d) {
      const float *dr = d + r * c + c0;
      const float *yr = ym ? ym + r * c + c0 : NULL;
      for (int j = 0; j < cw; ++j) {
        const float dj = dr[j];
        int off = yr && !(yr[j] > 0.0f);
        if (ma) { /* y > 0 recomputed as normalize() computed it */
          const float v = (xr[j] - mean[c0 + j]) * ma[j] + mb[j];
          off = !(v > 0.0f);
        }
        const double dv = off ? 0.0 : dj;
        s[j] += dv;
        q[j] += dv * ((double)xr[j] - (double)mean[c0 + j]);
      }
    } else {
      for (int j = 0; j < cw; ++j) {
        const double v = xr[j];
        s[j] += v;
        q[j] += v * v;
      }
    }
  }
}

/* sum/sumsq (or the backward sums when d != NULL, of d masked by ym > 0 when ym != NULL) over
 * all rows, by fixed row blocks. */
static void block_sums(int portable, const float *x, const float *d, const float *ym,
                       const float *mean, const float *invstd, const float *gamma,
                       const float *beta, size_t rows, int c, double *sum, double *sq) {
  const int nb = rows < SN_BN_RBLOCKS ? (int)rows : SN_BN_RBLOCKS;
  const int simd = sn_use_avx512(portable);
  double ps[SN_BN_RBLOCKS][SN_BN_SUMC], pq[SN_BN_RBLOCKS][SN_BN_SUMC];
  for (int c0 = 0; c0 < c; c0 += SN_BN_SUMC) {
    const int cw = c - c0 < SN_BN_SUMC ? c - c0 : SN_BN_SUMC;
    float ma[SN_BN_SUMC], mb[SN_BN_SUMC]; /* gamma != NULL: the forward's scale and shift */
    for (int j = 0; gamma && j < cw; ++j) {
      ma[j] = (float)((double)gamma[c0 + j] * invstd[c0 + j]);
      mb[j] = beta[c0 + j];
    }
    const float *pa = gamma ? ma : NULL, *pb = gamma ? mb : NULL;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
    for (int b = 0; b < nb; ++b) {
      const size_t r0 = rows * (size_t)b / (size_t)nb, r1 = rows * (size_t)(b + 1) / (size_t)nb;
      if (simd)
        sums_block_avx512(x, d, ym, mean, pa, pb, r0, r1, c, c0, cw, ps[b], pq[b]);
      else
        sums_block(x, d, ym, mean, pa, pb, r0, r1, c, c0, cw, ps[b], pq[b]);
    }
    for (int j = 0; j < cw; ++j) {
      double s = 0.0, q = 0.0;
      for (int b = 0; b < nb; ++b) {
        s += ps[b][j];
        q += pq[b][j];
      }
      sum[c0 + j] = s;
      sq[c0 + j] = q;
    }
  }
}

void sn_bn_sums(int portable, const float *x, size_t rows, int c, double *sum, double *sumsq) {
  block_sums(portable, x, NULL, NULL, NULL, NULL, NULL, NULL, rows, c, sum, sumsq);
}

void sn_bn_backward_sums(int portable, const float *x, const float *dy, size_t rows, int c,
                         const float *mean, double *sum_dy, double *sum_dy_xmu) {
  block_sums(portable, x, dy, NULL, mean, NULL, NULL, NULL, rows, c, sum_dy, sum_dy_xmu);
}

void sn_bn_backward_sums_relu(int portable, const float *x, const float *y, const float *dy,
                              size_t rows, int c, const float *mean, double *sum_dy,
                              double *sum_dy_xmu) {
  block_sums(portable, x, dy, y, mean, NULL, NULL, NULL, rows, c, sum_dy, sum_dy_xmu);
}

/* ------------------------------------------------------------ elementwise passes */

void sn_bn_affine(int portable, const float *x, size_t rows, int c, const float *scale,
                  const float *shift, int relu, float *y) {
  if (sn_use_avx512(portable)) {
    const long nt = (long)((rows + SN_BN_ROWTASK - 1) / SN_BN_ROWTASK);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
    for (long t = 0; t < nt; ++t) {
      const size_t r0 = (size_t)t * SN_BN_ROWTASK;
      const size_t r1 = r0 + SN_BN_ROWTASK < rows ? r0 + SN_BN_ROWTASK : rows;
      affine_rows_avx512(x, NULL, r0, r1, c, c, NULL, scale, shift, relu, y);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
  for (long r = 0; r < (long)rows; ++r) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    if (relu) {
      for (int j = 0; j < c; ++j) {
        const float v = xr[j] * scale[j] + shift[j];
        yr[j] = sn_relu(v);
      }
    } else {
      for (int j = 0; j < c; ++j)
        yr[j] = xr[j] * scale[j] + shift[j];
    }
  }
}

/* y = act(normalize(x) (+ res)); res may be NULL, y may alias it. */
static void normalize(int portable, const float *x, const float *res, size_t rows, int c,
                      const float *mean, const float *invstd, const float *gamma, const float *beta,
                      int relu, float *y) {
  const int simd = sn_use_avx512(portable);
  for (int c0 = 0; c0 < c; c0 += SN_BN_CBLOCK) {
    const int c1 = c0 + SN_BN_CBLOCK < c ? c0 + SN_BN_CBLOCK : c;
    float a[SN_BN_CBLOCK], m[SN_BN_CBLOCK], bb[SN_BN_CBLOCK];
    for (int j = c0; j < c1; ++j) {
      a[j - c0] = (float)((double)gamma[j] * invstd[j]);
      m[j - c0] = mean[j];
      bb[j - c0] = beta[j];
    }
    if (simd) {
      const long nt = (long)((rows + SN_BN_ROWTASK - 1) / SN_BN_ROWTASK);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
      for (long t = 0; t < nt; ++t) {
        const size_t r0 = (size_t)t * SN_BN_ROWTASK;
        const size_t r1 = r0 + SN_BN_ROWTASK < rows ? r0 + SN_BN_ROWTASK : rows;
        affine_rows_avx512(x + c0, res ? res + c0 : NULL, r0, r1, c, c1 - c0, m, a, bb, relu,
                           y + c0);
      }
      continue;
    }
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
    for (long r = 0; r < (long)rows; ++r) {
      const float *xr = x + (size_t)r * c + c0;
      const float *rr = res ? res + (size_t)r * c + c0 : NULL;
      float *yr = y + (size_t)r * c + c0;
      for (int j = 0; j < c1 - c0; ++j) {
        float v = (xr[j] - m[j]) * a[j] + bb[j];
        if (rr) v = v + rr[j]; /* as sn_add_forward: the normalized value plus the residual */
        yr[j] = relu ? sn_relu(v) : v;
      }
    }
  }
}

void sn_bn_normalize(int portable, const float *x, size_t rows, int c, const float *mean,
                     const float *invstd, const float *gamma, const float *beta, float *y) {
  normalize(portable, x, NULL, rows, c, mean, invstd, gamma, beta, 0, y);
}

void sn_bn_normalize_relu(int portable, const float *x, size_t rows, int c, const float *mean,
                          const float *invstd, const float *gamma, const float *beta, float *y) {
  normalize(portable, x, NULL, rows, c, mean, invstd, gamma, beta, 1, y);
}

static void backward_dx(int portable, const float *x, const float *ym, const float *beta,
                        const float *dy, size_t rows, int c, const float *mean, const float *invstd,
                        const float *gamma, const double *sum_dy, const double *sum_dy_xmu,
                        double count, float *dx) {
  /* dx = k1 * (dy - mdy - (x - mean) * k2) with k1 = gamma*invstd, mdy = sum_dy/count,
   * k2 = invstd^2 * sum_dy_xmu / count; coefficients in double, rounded once. */
  const int simd = sn_use_avx512(portable);
  for (int c0 = 0; c0 < c; c0 += SN_BN_CBLOCK) {
    const int c1 = c0 + SN_BN_CBLOCK < c ? c0 + SN_BN_CBLOCK : c;
    float k1[SN_BN_CBLOCK], mdy[SN_BN_CBLOCK], k2[SN_BN_CBLOCK], m[SN_BN_CBLOCK];
    for (int j = c0; j < c1; ++j) {
      const double is = invstd[j];
      k1[j - c0] = (float)((double)gamma[j] * is);
      mdy[j - c0] = (float)(sum_dy[j] / count);
      k2[j - c0] = (float)(is * is * sum_dy_xmu[j] / count);
      m[j - c0] = mean[j];
    }
    if (simd) {
      const long nt = (long)((rows + SN_BN_ROWTASK - 1) / SN_BN_ROWTASK);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
      for (long t = 0; t < nt; ++t) {
        const size_t r0 = (size_t)t * SN_BN_ROWTASK;
        const size_t r1 = r0 + SN_BN_ROWTASK < rows ? r0 + SN_BN_ROWTASK : rows;
        bwd_dx_rows_avx512(x + c0, dy + c0, ym ? ym + c0 : NULL, beta ? beta + c0 : NULL, r0, r1, c,
                           c1 - c0, m, k1, mdy, k2, dx + c0);
      }
      continue;
    }
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
    for (long r = 0; r < (long)rows; ++r) {
      const float *xr = x + (size_t)r * c + c0;
      const float *dr = dy + (size_t)r * c + c0;
      const float *yr = ym ? ym + (size_t)r * c + c0 : NULL;
      float *or_ = dx + (size_t)r * c + c0;
      for (int j = 0; j < c1 - c0; ++j) {
        const float dj = dr[j];
        int off = yr && !(yr[j] > 0.0f);
        if (beta) { /* y > 0 recomputed as normalize() computed it (k1: its scale) */
          const float v = (xr[j] - m[j]) * k1[j] + beta[c0 + j];
          off = !(v > 0.0f);
        }
        const float d = off ? 0.0f : dj;
        or_[j] = k1[j] * (d - mdy[j] - (xr[j] - m[j]) * k2[j]);
      }
    }
  }
}

void sn_bn_backward_dx(int portable, const float *x, const float *dy, size_t rows, int c,
                       const float *mean, const float *invstd, const float *gamma,
                       const double *sum_dy, const double *sum_dy_xmu, double count, float *dx) {
  backward_dx(portable, x, NULL, NULL, dy, rows, c, mean, invstd, gamma, sum_dy, sum_dy_xmu, count,
              dx);
}

void sn_bn_backward_dx_relu(int portable, const float *x, const float *y, const float *dy,
                            size_t rows, int c, const float *mean, const float *invstd,
                            const float *gamma, const double *sum_dy, const double *sum_dy_xmu,
                            double count, float *dx) {
  backward_dx(portable, x, y, NULL, dy, rows, c, mean, invstd, gamma, sum_dy, sum_dy_xmu, count,
              dx);
}

/* Training, a batch norm whose only consumer is an add (net.c fuse_bn_into_add): the same
 * operations in the same order as sn_bn_normalize followed by sn_add_forward (float addition
 * commutes, so which input of the add the batch norm was does not matter): bitwise their
 * result, without writing and re-reading the normalized tensor. */
void sn_bn_normalize_add(int portable, const float *x, size_t rows, int c, const float *mean,
                         const float *invstd, const float *gamma, const float *beta,
                         const float *res, int relu, float *y) {
  normalize(portable, x, res, rows, c, mean, invstd, gamma, beta, relu, y);
}

/* ------------------------------------------------------------ fused-ReLU backward from x
 * The fused ReLU's mask y > 0 recomputed from x with the forward's own scale and shift and the
 * same operations (affine_rows / normalize), instead of read from y: the same mask bit for bit,
 * one tensor fewer read by each of the two backward passes. */
void sn_bn_backward_sums_relu_x(int portable, const float *x, const float *dy, size_t rows, int c,
                                const float *mean, const float *invstd, const float *gamma,
                                const float *beta, double *sum_dy, double *sum_dy_xmu) {
  block_sums(portable, x, dy, NULL, mean, invstd, gamma, beta, rows, c, sum_dy, sum_dy_xmu);
}

void sn_bn_backward_dx_relu_x(int portable, const float *x, const float *dy, size_t rows, int c,
                              const float *mean, const float *invstd, const float *gamma,
                              const float *beta, const double *sum_dy, const double *sum_dy_xmu,
                              double count, float *dx) {
  backward_dx(portable, x, NULL, beta, dy, rows, c, mean, invstd, gamma, sum_dy, sum_dy_xmu, count,
              dx);
}
