/* quant.c - the rounding and quantization rules of the low-precision paths, in plain C (the
 * reference of the vector versions in conv_lowp.c), the int8 weight quantization, and the
 * calibration histograms with the threshold rules (docs/kernels.md, "Low precision").
 *
 * Histogram bins: the top 16 bits of |x|'s float32 pattern (8 exponent bits, 7 mantissa bits)
 * give a bin that is monotone in |x|, 128 per octave, each 2^-7 of its lower edge wide; the bins
 * of octaves [-SN_HIST_LOW_OCT, SN_HIST_HIGH_OCT) are kept. Counting is per thread into private
 * histograms summed in thread order: integer counts, so the result does not depend on the split.
 *
 * Thresholds (T; levels L = 255 steps for zero point 0, 127 for 128, step s = T / L):
 *   max         T = the largest |x| (the upper edge of the highest occupied bin, clamped to max|x|)
 *   percentile  T = the upper edge of the bin where the count of |x| (zeros included) reaches
 *               99.99% of all values
 *   mse         T minimising E = the sum over all values of their squared quantization error,
 *               each bin's values taken at the bin's centre v: v <= T rounds to a step of s,
 *               with error v^2 when v < s / 2 (it becomes 0) and s^2 / 12 otherwise (uniform
 *               rounding error); v > T is clipped to T, a step itself, with error (v - T)^2;
 *               zeros are exact. Candidates: max|x| and the upper edges of the bins from
 *               max|x| / 2^12 up; the first minimum from the top wins (the larger T). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

uint16_t sn_bf16_from_f32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);          /* zero, denormal */
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: quiet */
  if ((u & 0x7FFFFFFFu) == 0x7F800000u) return (uint16_t)(u >> 16);            /* infinity */
  return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* nearest, ties to even */
}

uint8_t sn_quant_u8_ref(float x, float inv_scale, int zp) {
  const float t = x * inv_scale; /* the float32 product is what is rounded */
  if (isnan(t)) return 0;
  const float hi = (float)(255 - zp);
  const double r = nearbyint(t > hi ? hi : t); /* round half to even (default rounding mode) */
  const double q = r + zp;
  return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

void sn_quant_weights_s8(const float *w, int k, int n, int8_t *q, float *scale, int32_t *colsum) {
  for (int o = 0; o < n; ++o) {
    double m = 0;
    for (int i = 0; i < k; ++i)
      m = fmax(m, fabs((double)w[(size_t)i * n + o]));
    const double s = m > 0 ? m / 127.0 : 1.0;
    int32_t sum = 0;
    for (int i = 0; i < k; ++i) {
      double v = nearbyint((double)w[(size_t)i * n + o] / s);
      v = v > 127 ? 127 : v < -127 ? -127 : v;
      q[(size_t)i * n + o] = (int8_t)v;
      sum += (int32_t)v;
    }
    scale[o] = (float)s;
    colsum[o] = sum;
  }
}

/* ------------------------------------------------------------ histograms */

#define SN_HIST_BASE ((uint32_t)(127 - SN_HIST_LOW_OCT) << 7) /* top-16 pattern of 2^-LOW */

void sn_hist_init(sn_hist *h) {
  memset(h, 0, sizeof *h);
  h->min = INFINITY;
  h->max = -INFINITY;
}

double sn_hist_edge(int i) {
  const int e = i / 128 - SN_HIST_LOW_OCT, m = i % 128;
  return ldexp(1.0 + m / 128.0, e);
}

/* Adds x into h, which no other thread touches. */
static void hist_add_serial(sn_hist *h, const float *x, size_t n) {
  float lo = h->min, hi = h->max;
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    memcpy(&u, &x[i], 4);
    u &= 0x7FFFFFFFu;
    if (u >= 0x7F800000u) {
      h->nonfinite++;
      continue;
    }
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    const uint32_t top = u >> 16;
    if (top < SN_HIST_BASE)
      h->zeros++;
    else
      h->bins[top - SN_HIST_BASE < SN_HIST_BINS ? top - SN_HIST_BASE : SN_HIST_BINS - 1]++;
  }
  h->min = lo;
  h->max = hi;
}

static void hist_merge(sn_hist *dst, const sn_hist *src) {
  for (int i = 0; i < SN_HIST_BINS; ++i)
    dst->bins[i] += src->bins[i];
  dst->zeros += src->zeros;
  dst->nonfinite += src->nonfinite;
  dst->min = src->min < dst->min ? src->min : dst->min;
  dst->max = src->max > dst->max ? src->max : dst->max;
}

#define SN_HIST_PAR_MIN 65536 /* values below which one thread counts */

void sn_hist_add(sn_hist *h, const float *x, size_t n) {
  const int nt = omp_get_max_threads();
  if (nt < 2 || n < SN_HIST_PAR_MIN) {
    hist_add_serial(h, x, n);
    return;
  }
  sn_hist *part = malloc((size_t)nt * sizeof *part);
  if (!part) { /* no room for private counts: count serially */
    hist_add_serial(h, x, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    sn_hist_init(&part[t]);
    hist_add_serial(&part[t], x + n * t / team, n * (t + 1) / team - n * t / team);
  }
  for (int t = 0; t < nt; ++t)
    if (part[t].min <= part[t].max || part[t].zeros || part[t].nonfinite) hist_merge(h, &part[t]);
  free(part);
}

/* Highest occupied bin, or -1. */
static int top_bin(const sn_hist *h) {
  for (int i = SN_HIST_BINS - 1; i >= 0; --i)
    if (h->bins[i]) return i;
  return -1;
}

static double absmax(const sn_hist *h) { return fmax(fabs((double)h->min), fabs((double)h->max)); }

static double threshold_percentile(const sn_hist *h, int top) {
  double total = (double)h->zeros;
  for (int i = 0; i <= top; ++i)
    total += (double)h->bins[i];
  const double want = 0.9999 * total;
  double run = (double)h->zeros;
  for (int i = 0; i <= top; ++i) {
    run += (double)h->bins[i];
    if (run >= want) return fmin(sn_hist_edge(i + 1), absmax(h));
  }
  return absmax(h);
}

/* The squared error of quantizing the histogram's values (bin centres v[0..top]) with
 * threshold t (the mse rule above). */
static double mse_error(const sn_hist *h, const double *v, int top, double t, int levels) {
  const double s = t / levels, noise = s * s / 12.0;
  double e = 0;
  for (int i = 0; i <= top; ++i) {
    if (!h->bins[i]) continue;
    const double c = (double)h->bins[i];
    if (v[i] > t)
      e += c * (v[i] - t) * (v[i] - t);
    else
      e += c * (v[i] < 0.5 * s ? v[i] * v[i] : noise);
  }
  return e;
}

static double threshold_mse(const sn_hist *h, int top, int levels) {
  const double mx = absmax(h);
  double *v = malloc((size_t)(top + 1) * sizeof *v);
  if (!v) return mx; /* no room for the search: the max rule */
  for (int i = 0; i <= top; ++i)
    v[i] = 0.5 * (sn_hist_edge(i) + sn_hist_edge(i + 1));
  double best_t = mx, best_e = mse_error(h, v, top, mx, levels);
  for (int i = top; i >= 0 && sn_hist_edge(i + 1) >= mx / 4096.0; --i) {
    const double t = fmin(sn_hist_edge(i + 1), mx);
    const double e = mse_error(h, v, top, t, levels);
    if (e < best_e) {
      best_e = e;
      best_t = t;
    }
  }
  free(v);
  return best_t;
}

double sn_hist_threshold(const sn_hist *h, int method, int levels) {
  const int top = top_bin(h);
  if (top < 0 || !(absmax(h) > 0)) return 0;
  switch (method) {
  case SN_CALIB_MAX:
    return absmax(h);
  case SN_CALIB_PERCENTILE:
    return threshold_percentile(h, top);
  default:
    return threshold_mse(h, top, levels);
  }
}
