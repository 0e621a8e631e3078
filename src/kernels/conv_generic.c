/* conv_generic.c - the portable 2-D convolution (conv_generic.h): im2col + sgemm, forward and
 * backward; and the plain reference versions the tests compare against (kernels.h, _ref).
 *
 * Layout: x (N, H, W, Cin), w (KH, KW, Cin, Cout) = HWIO, y / dy (N, OH, OW, Cout).
 * The im2col matrix has one row per output pixel and K = KH*KW*Cin columns in (ky, kx, ci)
 * order, so the HWIO weight tensor is already the (K, Cout) right-hand matrix.
 *
 * Chunking: the batch is processed in chunks of whole images so that the im2col buffer stays
 * bounded (see sn_conv_chunk_images). Whole-image chunks also make col2im a race-free gather:
 * every input pixel of the chunk is written by exactly one thread, in a fixed order.
 */
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "conv_generic.h"
#include "relu.h"

/* Target size of one im2col chunk, in floats (8 MiB). One image is always allowed even if it
 * alone exceeds this. */
#define SN_IM2COL_BUDGET ((size_t)1 << 21)

/* Below this many floats a loop is not worth an OpenMP fork. */
#define SN_OMP_MIN 32768

/* 1x1, stride 1, no padding: the input (N*H*W, Cin) is the im2col matrix itself. */
static int conv_is_pointwise(const sn_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
         g->pb == 0 && g->pr == 0;
}

static size_t conv_k(const sn_conv_geom *g) { return (size_t)g->kh * g->kw * g->cin; }

/* Images per im2col chunk: max(1, floor(BUDGET / (OH*OW*K))), at most N. */
static int sn_conv_chunk_images(const sn_conv_geom *g) {
  size_t per_image = (size_t)g->oh * g->ow * conv_k(g);
  size_t imgs = per_image ? SN_IM2COL_BUDGET / per_image : 1;
  if (imgs < 1) imgs = 1;
  if (imgs > (size_t)g->n) imgs = (size_t)g->n;
  return (int)imgs;
}

/* Workspace (floats):
 *   1x1 stride-1 unpadded: 0 (x is used in place);
 *   otherwise: B * OH*OW * KH*KW*Cin with B = min(N, max(1, floor(2^21 / (OH*OW*KH*KW*Cin))))
 *   images per chunk, i.e. at most max(8 MiB, one image's im2col matrix). */
size_t sn_conv_generic_workspace(const sn_conv_geom *g) {
  if (conv_is_pointwise(g)) return 0;
  return (size_t)sn_conv_chunk_images(g) * g->oh * g->ow * conv_k(g);
}

/* col (nimg*OH*OW, K) = im2col of images [0, nimg) of x (x points at the first image). */
static void im2col(const sn_conv_geom *g, const float *x, int nimg, float *col) {
  const int oh = g->oh, ow = g->ow, cin = g->cin;
  const size_t k = conv_k(g);
  const long rows = (long)nimg * oh * ow;
  const size_t cbytes = (size_t)cin * sizeof(float);
#pragma omp parallel for schedule(static) if ((size_t)rows * k > SN_OMP_MIN)
  for (long r = 0; r < rows; ++r) {
    const int img = (int)(r / ((long)oh * ow));
    const int rem = (int)(r % ((long)oh * ow));
    const int oy = rem / ow, ox = rem % ow;
    const float *xi = x + (size_t)img * g->h * g->w * cin;
    float *dst = col + (size_t)r * k;
    /* The taps kx = 0..KW-1 of one kernel row are adjacent pixels of one input row, i.e. one
     * contiguous run of KW*Cin floats: copy its in-image part at once, zero the rest. */
    const int ix0 = ox * g->sw - g->pl;
    const int a = ix0 < 0 ? -ix0 : 0;                      /* first tap inside */
    const int b = ix0 + g->kw > g->w ? g->w - ix0 : g->kw; /* one past the last */
    for (int ky = 0; ky < g->kh; ++ky, dst += (size_t)g->kw * cin) {
      const int iy = oy * g->sh - g->pt + ky;
      if (iy < 0 || iy >= g->h || b <= a) {
        memset(dst, 0, (size_t)g->kw * cbytes);
        continue;
      }
      if (a > 0) memset(dst, 0, (size_t)a * cbytes);
      memcpy(dst + (size_t)a * cin, xi + ((size_t)iy * g->w + ix0 + a) * cin,
             (size_t)(b - a) * cbytes);
      if (b < g->kw) memset(dst + (size_t)b * cin, 0, (size_t)(g->kw - b) * cbytes);
    }
  }
}

/* dx (nimg, H, W, Cin) = col2im(col): every input pixel gathers, in (ky, kx) order, the columns
 * of the output pixels whose window covers it. Overwrites dx. */
static void col2im(const sn_conv_geom *g, const float *col, int nimg, float *dx) {
  const int h = g->h, w = g->w, cin = g->cin, oh = g->oh, ow = g->ow;
  const size_t k = conv_k(g);
  const long pixels = (long)nimg * h * w;
#pragma omp parallel for schedule(static) if ((size_t)pixels * k > SN_OMP_MIN)
  for (long p = 0; p < pixels; ++p) {
    const int img = (int)(p / ((long)h * w));
    const int rem = (int)(p % ((long)h * w));
    const int iy = rem / w, ix = rem % w;
    float *dst = dx + (size_t)p * cin;
    for (int c = 0; c < cin; ++c)
      dst[c] = 0.0f;
    for (int ky = 0; ky < g->kh; ++ky) {
      const int ty = iy + g->pt - ky; /* = oy * sh */
      if (ty < 0 || ty % g->sh) continue;
      const int oy = ty / g->sh;
      if (oy >= oh) continue;
      for (int kx = 0; kx < g->kw; ++kx) {
        const int tx = ix + g->pl - kx;
        if (tx < 0 || tx % g->sw) continue;
        const int ox = tx / g->sw;
        if (ox >= ow) continue;
        const float *src =
            col + (((size_t)img * oh + oy) * ow + ox) * k + ((size_t)ky * g->kw + kx) * cin;
        for (int c = 0; c < cin; ++c)
          dst[c] += src[c];
      }
    }
  }
}

/* y (rows, C) = act(y + bias + res), one pass. */
static void conv_epilogue(float *y, size_t rows, int c, const float *bias, const float *res,
                          int relu) {
  if (!bias && !res && !relu) return;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN)
  for (long r = 0; r < (long)rows; ++r) {
    float *yr = y + (size_t)r * c;
    const float *rr = res ? res + (size_t)r * c : NULL;
    if (bias)
      for (int j = 0; j < c; ++j)
        yr[j] += bias[j];
    if (rr)
      for (int j = 0; j < c; ++j)
        yr[j] += rr[j];
    if (relu)
      for (int j = 0; j < c; ++j)
        yr[j] = sn_relu(yr[j]);
  }
}

void sn_conv_generic_forward(const sn_conv_geom *g, const float *x, const float *w,
                             const float *bias, const float *res, int relu, float *y, float *ws) {
  const int cout = g->cout;
  if (conv_is_pointwise(g)) {
    const size_t rows = (size_t)g->n * g->h * g->w;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, cout, g->cin, 1.0f, x, g->cin,
                w, cout, 0.0f, y, cout);
    conv_epilogue(y, rows, cout, bias, res, relu);
    return;
  }
  const int k = (int)conv_k(g);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_pix = (size_t)g->oh * g->ow;
  const int chunk = sn_conv_chunk_images(g);
  for (int i0 = 0; i0 < g->n; i0 += chunk) {
    const int nimg = g->n - i0 < chunk ? g->n - i0 : chunk;
    const size_t rows = (size_t)nimg * out_pix;
    float *yc = y + (size_t)i0 * out_pix * cout;
    im2col(g, x + (size_t)i0 * in_img, nimg, ws);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, cout, k, 1.0f, ws, k, w, cout,
                0.0f, yc, cout);
    conv_epilogue(yc, rows, cout, bias, res ? res + (size_t)i0 * out_pix * cout : NULL, relu);
  }
}

/* Column sums of a (rows, c) matrix into db (c), double accumulators. Parallel over blocks of 16
 * channels (one cache line each): every thread owns whole lines and each sum is accumulated in
 * row order, so the result does not depend on the thread count. */
void sn_conv_generic_bias_grad(const float *a, size_t rows, int c, float *db) {
  const int nb = (c + 15) / 16;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > SN_OMP_MIN && nb > 1)
  for (int b = 0; b < nb; ++b) {
    const int c0 = b * 16, c1 = c0 + 16 < c ? c0 + 16 : c;
    double acc[16] = {0};
    for (size_t r = 0; r < rows; ++r) {
      const float *ar = a + r * c;
      for (int j = c0; j < c1; ++j)
        acc[j - c0] += ar[j];
    }
    for (int j = c0; j < c1; ++j)
      db[j] = (float)acc[j - c0];
  }
}

void sn_conv_generic_backward(const sn_conv_geom *g, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *ws) {
  const int cout = g->cout, cin = g->cin;
  const size_t out_pix = (size_t)g->oh * g->ow;
  if (conv_is_pointwise(g)) {
    const int rows = g->n * g->h * g->w;
    /* dw (Cin, Cout) = x^T . dy; dx (rows, Cin) = dy . w^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cin, cout, rows, 1.0f, x, cin, dy, cout,
                0.0f, dw, cout);
    if (dx)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cin, cout, 1.0f, dy, cout, w, cout,
                  0.0f, dx, cin);
    return;
  }
  const int k = (int)conv_k(g);
  const size_t in_img = (size_t)g->h * g->w * cin;
  const int chunk = sn_conv_chunk_images(g);
  for (int i0 = 0; i0 < g->n; i0 += chunk) {
    const int nimg = g->n - i0 < chunk ? g->n - i0 : chunk;
    const int rows = (int)((size_t)nimg * out_pix);
    const float *dyc = dy + (size_t)i0 * out_pix * cout;
    /* dw (K, Cout) (+)= col^T . dy_chunk */
    im2col(g, x + (size_t)i0 * in_img, nimg, ws);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, cout, rows, 1.0f, ws, k, dyc, cout,
                i0 == 0 ? 0.0f : 1.0f, dw, cout);
    if (dx) {
      /* col (rows, K) = dy_chunk . w^T, then scattered back as a gather */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, cout, 1.0f, dyc, cout, w, cout,
                  0.0f, ws, k);
      col2im(g, ws, nimg, dx + (size_t)i0 * in_img);
    }
  }
}

/* ------------------------------------------------------------ reference (double, direct) */

void sn_conv_forward_ref(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                         const float *res, int relu, float *y) {
  for (int n = 0; n < g->n; ++n)
    for (int oy = 0; oy < g->oh; ++oy)
      for (int ox = 0; ox < g->ow; ++ox)
        for (int co = 0; co < g->cout; ++co) {
          double acc = bias ? bias[co] : 0.0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky;
            if (iy < 0 || iy >= g->h) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx;
              if (ix < 0 || ix >= g->w) continue;
              const float *xp = x + (((size_t)n * g->h + iy) * g->w + ix) * g->cin;
              const float *wp = w + ((size_t)ky * g->kw + kx) * g->cin * g->cout + co;
              for (int ci = 0; ci < g->cin; ++ci)
                acc += (double)xp[ci] * wp[(size_t)ci * g->cout];
            }
          }
          const size_t o = (((size_t)n * g->oh + oy) * g->ow + ox) * g->cout + co;
          if (res) acc += res[o];
          if (relu && acc <= 0.0) acc = 0.0; /* NaN passes, as sn_relu */
          y[o] = (float)acc;
        }
}

void sn_conv_backward_ref(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db) {
  const size_t nx = (size_t)g->n * g->h * g->w * g->cin;
  const size_t nw = (size_t)g->kh * g->kw * g->cin * g->cout;
  if (dx) memset(dx, 0, nx * sizeof(float));
  memset(dw, 0, nw * sizeof(float));
  if (db) memset(db, 0, (size_t)g->cout * sizeof(float));
  for (int n = 0; n < g->n; ++n)
    for (int oy = 0; oy < g->oh; ++oy)
      for (int ox = 0; ox < g->ow; ++ox)
        for (int co = 0; co < g->cout; ++co) {
          const float d = dy[(((size_t)n * g->oh + oy) * g->ow + ox) * g->cout + co];
          if (db) db[co] += d;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky;
            if (iy < 0 || iy >= g->h) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx;
              if (ix < 0 || ix >= g->w) continue;
              const size_t xo = (((size_t)n * g->h + iy) * g->w + ix) * g->cin;
              const size_t wo = ((size_t)ky * g->kw + kx) * g->cin * g->cout + co;
              for (int ci = 0; ci < g->cin; ++ci) {
                dw[wo + (size_t)ci * g->cout] += x[xo + ci] * d;
                if (dx) dx[xo + ci] += w[wo + (size_t)ci * g->cout] * d;
              }
            }
          }
        }
}
