/* bn.c - batch-normalization kernels over (rows, C) tensors, rows = N*H*W.
 *
 * Determinism: the per-channel sums are computed by blocks of 16 channels (one cache line);
 * each block belongs to one thread and is accumulated in row order, so results are identical
 * for any thread count. Elementwise passes are parallel over rows.
 */
#include <math.h>
#include <stddef.h>

#include "kernels.h"

#define SN_OMP_MIN 32768
/* Channels whose coefficients are precomputed at a time on the stack. */
#define SN_BN_CBLOCK 256

void sn_bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
                float eps, int c, float *scale, float *shift) {
  for (int j = 0; j < c; ++j) {
    const double s = (double)gamma[j] / sqrt((double)var[j] + (double)eps);
    scale[j] = (float)s;
    shift[j] = (float)((double)beta[j] - (double)mean[j] * s);
  }
}

void sn_bn_affine(const float *x, size_t rows, int c, const float *scale, const float *shift,
                  int relu, float *y) {
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
  for (long r = 0; r < (long)rows; ++r) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    if (relu) {
      for (int j = 0; j < c; ++j) {
        const float v = xr[j] * scale[j] + shift[j];
        yr[j] = v > 0.0f ? v : 0.0f;
      }
    } else {
      for (int j = 0; j < c; ++j) yr[j] = xr[j] * scale[j] + shift[j];
    }
  }
}

void sn_bn_sums(const float *x, size_t rows, int c, double *sum, double *sumsq) {
  const int nb = (c + 15) / 16;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN && nb > 1)
  for (int b = 0; b < nb; ++b) {
    const int c0 = b * 16, c1 = c0 + 16 < c ? c0 + 16 : c;
    double s[16] = {0}, q[16] = {0};
    for (size_t r = 0; r < rows; ++r) {
      const float *xr = x + r * c;
      for (int j = c0; j < c1; ++j) {
        const double v = xr[j];
        s[j - c0] += v;
        q[j - c0] += v * v;
      }
    }
    for (int j = c0; j < c1; ++j) {
      sum[j] = s[j - c0];
      sumsq[j] = q[j - c0];
    }
  }
}

void sn_bn_normalize(const float *x, size_t rows, int c, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, float *y) {
  for (int c0 = 0; c0 < c; c0 += SN_BN_CBLOCK) {
    const int c1 = c0 + SN_BN_CBLOCK < c ? c0 + SN_BN_CBLOCK : c;
    float a[SN_BN_CBLOCK], m[SN_BN_CBLOCK], bb[SN_BN_CBLOCK];
    for (int j = c0; j < c1; ++j) {
      a[j - c0] = (float)((double)gamma[j] * invstd[j]);
      m[j - c0] = mean[j];
      bb[j - c0] = beta[j];
    }
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
    for (long r = 0; r < (long)rows; ++r) {
      const float *xr = x + (size_t)r * c + c0;
      float *yr = y + (size_t)r * c + c0;
      for (int j = 0; j < c1 - c0; ++j) yr[j] = (xr[j] - m[j]) * a[j] + bb[j];
    }
  }
}

void sn_bn_backward_sums(const float *x, const float *dy, size_t rows, int c, const float *mean,
                         double *sum_dy, double *sum_dy_xmu) {
  const int nb = (c + 15) / 16;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN && nb > 1)
  for (int b = 0; b < nb; ++b) {
    const int c0 = b * 16, c1 = c0 + 16 < c ? c0 + 16 : c;
    double s[16] = {0}, q[16] = {0};
    for (size_t r = 0; r < rows; ++r) {
      const float *xr = x + r * c, *dr = dy + r * c;
      for (int j = c0; j < c1; ++j) {
        const double d = dr[j];
        s[j - c0] += d;
        q[j - c0] += d * ((double)xr[j] - (double)mean[j]);
      }
    }
    for (int j = c0; j < c1; ++j) {
      sum_dy[j] = s[j - c0];
      sum_dy_xmu[j] = q[j - c0];
    }
  }
}

void sn_bn_backward_dx(const float *x, const float *dy, size_t rows, int c, const float *mean,
                       const float *invstd, const float *gamma, const double *sum_dy,
                       const double *sum_dy_xmu, double count, float *dx) {
  /* dx = k1 * (dy - mdy - (x - mean) * k2) with k1 = gamma*invstd, mdy = sum_dy/count,
   * k2 = invstd^2 * sum_dy_xmu / count; coefficients in double, rounded once. */
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
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
    for (long r = 0; r < (long)rows; ++r) {
      const float *xr = x + (size_t)r * c + c0;
      const float *dr = dy + (size_t)r * c + c0;
      float *or_ = dx + (size_t)r * c + c0;
      for (int j = 0; j < c1 - c0; ++j)
        or_[j] = k1[j] * (dr[j] - mdy[j] - (xr[j] - m[j]) * k2[j]);
    }
  }
}
