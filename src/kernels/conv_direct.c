/* conv_direct.c - AVX-512 direct convolution for training (see conv_direct.h).
 *
 * Forward, one image at a time: the image is copied into a zero-padded buffer (L2-sized), then
 * every output tile of R consecutive pixels of one output row x up to 64 output channels
 * (R x NV zmm accumulators, R * NV <= 28) is
 *   sum over kernel rows ky of  A_ky (R, KW*Cin) . B_ky (KW*Cin, 16*NV)
 * where row r of A_ky starts at padded pixel (oy*sh + ky, (ox0 + r)*sw): the KW taps of one
 * kernel row are adjacent pixels, so each row of A_ky is one contiguous run of KW*Cin floats and
 * consecutive rows overlap (row stride sw*Cin). A is read in place (broadcasts), B is the weight
 * tensor repacked once per call into column blocks of 64 (one sequential stream per block).
 * Bias, residual and ReLU are applied when the tile is stored.
 *
 * Backward data, by stride phases (bwd_data_image): the dx pixels of one phase (iy mod sh,
 * ix mod sw) are a stride-1 correlation of dy with the flipped, transposed sub-kernel of the taps
 * that reach them, computed with the same tile kernel over a zero-padded copy of dy; each dx
 * pixel is written once (no col2im, no atomics). At stride 1 this is the forward pass of dy with
 * the whole kernel flipped.
 *
 * Backward weights: tile = MR consecutive rows k of one kernel row's KW*Cin block x 16*NV output
 * channels; for every output pixel, MR broadcasts of the (contiguous) padded input run and NV
 * loads of dy. Each chunk of images accumulates into its own partial dW; the partials are summed
 * in chunk order at the end.
 *
 * Every function here runs only when sn_cpu_has_avx512() (conv.c checks). */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "conv_fast.h"

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int ceil_div(int a, int b) { return (a + b - 1) / b; }
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

#define SN_DCONV_NB 64 /* output channels per column block (NV <= 4 vectors) */
/* x (padded) + dy bytes of the block of images whose weight gradient is summed together, and
 * the pixels one sweep of the weight-gradient tiles covers (wgrad_images) */
#define SN_WGRAD_BLOCK_BYTES (1 << 20)
#define SN_WGRAD_SWEEP_BYTES (256 << 10)
#define SN_WGRAD_SWEEP_PIX 256
/* weights (floats) above which the backward uses fewer chunks and longer weight-gradient bands */
#define SN_DCONV_BIG_W 65536

/* Largest tile rows for NV vectors per row: R * NV <= 28 accumulators. */
static const int k_rmax[5] = {0, 28, 14, 9, 7};

/* One direct pass over one image: y (OH, OW, Cout) = act(conv(x (H, W, Cin)) + bias + res). */
typedef struct dpass {
  int h, w, cin, kh, kw, sh, sw, pt, pl, pb, pr, oh, ow, cout;
  int hp, wp;  /* rows and columns of the (padded) input the tiles read */
  int padded;  /* 1: x is first copied into a zero-padded buffer */
} dpass;

static void dpass_init(dpass *d, int h, int w, int cin, int kh, int kw, int sh, int sw, int pt,
                       int pl, int pb, int pr, int cout) {
  d->h = h; d->w = w; d->cin = cin; d->kh = kh; d->kw = kw; d->sh = sh; d->sw = sw;
  d->pt = pt; d->pl = pl; d->pb = pb; d->pr = pr; d->cout = cout;
  d->oh = (h + pt + pb - kh) / sh + 1;
  d->ow = (w + pl + pr - kw) / sw + 1;
  d->padded = pt || pl || pb || pr;
  d->hp = h + pt + pb;
  d->wp = w + pl + pr;
  if (kh == 1 && kw == 1 && sh == 1 && sw == 1 && !d->padded) {
    /* pointwise: the image is one row of H*W pixels (longer tiles, no row ends) */
    d->w = d->wp = d->ow = h * w;
    d->h = d->hp = d->oh = 1;
  }
}

static size_t dpass_pad_floats(const dpass *d) {
  return d->padded ? round16((size_t)d->hp * d->wp * d->cin) : 0;
}

/* Packed B: K rows x Cout columns as column blocks of 64 (the last one 16 * ceil(cols/16) wide,
 * zero padded); block cb starts at K * cb * 64. */
static size_t packed_floats(int k, int n) {
  return round16((size_t)k * (size_t)round16((size_t)n));
}

/* ------------------------------------------------------------ AVX-512 kernels */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

static inline __mmask16 tail_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Forward tile: c (R, cols) = act(sum_s A_s . B_s + bias + res), A_s row r at a + s*sa + r*lda
 * (kseg floats), B_s = b + s*kseg*ldb (kseg rows of ldb = 16*NV floats). res has row stride ldc.
 * LDA != 0 makes the row stride a compile-time constant (constant broadcast offsets). */
static inline __attribute__((always_inline)) void tile_body(
    const int R, const int NV, const int LDA, const float *a, ptrdiff_t lda_rt, int nseg,
    ptrdiff_t sa, int kseg, const float *b, float *c, ptrdiff_t ldc, int cols, const float *bias,
    const float *res, int relu) {
  const ptrdiff_t lda = LDA ? (ptrdiff_t)LDA : lda_rt;
  const int ldb = 16 * NV;
  __m512 acc[28][4];
#pragma GCC unroll 28
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int s = 0; s < nseg; s++) {
    const float *as = a + s * sa;
    const float *bs = b + (ptrdiff_t)s * kseg * ldb;
    for (int k = 0; k < kseg; k++) {
      __m512 bv[4];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(bs + (ptrdiff_t)k * ldb + 16 * v);
#pragma GCC unroll 28
      for (int r = 0; r < R; r++) {
        const __m512 av = _mm512_set1_ps(as[r * lda + k]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
  }
  __mmask16 mk[4];
  __m512 bb[4];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    mk[v] = tail_mask(cols - 16 * v);
    bb[v] = bias ? _mm512_maskz_loadu_ps(mk[v], bias + 16 * v) : _mm512_setzero_ps();
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 28
  for (int r = 0; r < R; r++) {
    float *cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m512 o = _mm512_add_ps(acc[r][v], bb[v]);
      if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(mk[v], res + r * ldc + 16 * v));
      if (relu) o = _mm512_max_ps(o, zero);
      _mm512_mask_storeu_ps(cr + 16 * v, mk[v], o);
    }
  }
}

typedef void (*tile_fn)(const float *a, ptrdiff_t lda, int nseg, ptrdiff_t sa, int kseg,
                        const float *b, float *c, ptrdiff_t ldc, int cols, const float *bias,
                        const float *res, int relu);

#define SN_TILE(R, NV, LDA)                                                                   \
  static void tile_##R##_##NV##_##LDA(const float *a, ptrdiff_t lda, int nseg, ptrdiff_t sa,  \
                                      int kseg, const float *b, float *c, ptrdiff_t ldc,      \
                                      int cols, const float *bias, const float *res,          \
                                      int relu) {                                             \
    tile_body(R, NV, LDA, a, lda, nseg, sa, kseg, b, c, ldc, cols, bias, res, relu);          \
  }
#define SN_TILES4(A, B, C, D, NV) SN_TILE(A, NV, 0) SN_TILE(B, NV, 0) SN_TILE(C, NV, 0) SN_TILE(D, NV, 0)

SN_TILES4(1, 2, 3, 4, 1) SN_TILES4(5, 6, 7, 8, 1) SN_TILES4(9, 10, 11, 12, 1)
SN_TILES4(13, 14, 15, 16, 1) SN_TILES4(17, 18, 19, 20, 1) SN_TILES4(21, 22, 23, 24, 1)
SN_TILES4(25, 26, 27, 28, 1)
SN_TILES4(1, 2, 3, 4, 2) SN_TILES4(5, 6, 7, 8, 2) SN_TILES4(9, 10, 11, 12, 2)
SN_TILE(13, 2, 0) SN_TILE(14, 2, 0)
SN_TILES4(1, 2, 3, 4, 3) SN_TILES4(5, 6, 7, 8, 3) SN_TILE(9, 3, 0)
SN_TILES4(1, 2, 3, 4, 4) SN_TILE(5, 4, 0) SN_TILE(6, 4, 0) SN_TILE(7, 4, 0)
/* full tiles with the row strides of the small-channel layers as constants */
SN_TILE(28, 1, 16) SN_TILE(28, 1, 32) SN_TILE(28, 1, 64)
SN_TILE(14, 2, 16) SN_TILE(14, 2, 32) SN_TILE(14, 2, 64) SN_TILE(14, 2, 128)

#define T1(R) tile_##R##_1_0
#define T2(R) tile_##R##_2_0
#define T3(R) tile_##R##_3_0
#define T4(R) tile_##R##_4_0
static const tile_fn k_tiles1[29] = {NULL,   T1(1),  T1(2),  T1(3),  T1(4),  T1(5),  T1(6),  T1(7),
                                     T1(8),  T1(9),  T1(10), T1(11), T1(12), T1(13), T1(14), T1(15),
                                     T1(16), T1(17), T1(18), T1(19), T1(20), T1(21), T1(22), T1(23),
                                     T1(24), T1(25), T1(26), T1(27), T1(28)};
static const tile_fn k_tiles2[15] = {NULL,  T2(1),  T2(2),  T2(3),  T2(4),  T2(5),  T2(6), T2(7),
                                     T2(8), T2(9),  T2(10), T2(11), T2(12), T2(13), T2(14)};
static const tile_fn k_tiles3[10] = {NULL,  T3(1), T3(2), T3(3), T3(4),
                                     T3(5), T3(6), T3(7), T3(8), T3(9)};
static const tile_fn k_tiles4[8] = {NULL, T4(1), T4(2), T4(3), T4(4), T4(5), T4(6), T4(7)};

static tile_fn pick_tile(int r, int nv, ptrdiff_t lda) {
  switch (nv) {
    case 1:
      if (r == 28 && lda == 16) return tile_28_1_16;
      if (r == 28 && lda == 32) return tile_28_1_32;
      if (r == 28 && lda == 64) return tile_28_1_64;
      return k_tiles1[r];
    case 2:
      if (r == 14 && lda == 16) return tile_14_2_16;
      if (r == 14 && lda == 32) return tile_14_2_32;
      if (r == 14 && lda == 64) return tile_14_2_64;
      if (r == 14 && lda == 128) return tile_14_2_128;
      return k_tiles2[r];
    case 3: return k_tiles3[r];
    default: return k_tiles4[r];
  }
}

/* Weight-gradient tile: out (MR, cols) += sum over the images im < nimg and their pixels of
 * a_p[m] * d_p[0, cols), with a_p = as[im] + aoff + row*lrow + p*lpix (MR consecutive floats),
 * d_p = ds[im] + doff + row*drow + p*dpix; the images in order, then rows, then pixels. */
static inline __attribute__((always_inline)) void wtile_body(
    const int MR, const int NV, const float *const *as, const float *const *ds, int nimg,
    ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix, ptrdiff_t lrow, ptrdiff_t dpix, ptrdiff_t drow,
    int nrows, int npix, int cols, float *out, ptrdiff_t ldo) {
  __m512 acc[28][4];
  __mmask16 mk[4];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) mk[v] = tail_mask(cols - 16 * v);
#pragma GCC unroll 28
  for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[m][v] = _mm512_setzero_ps();
  for (int im = 0; im < nimg; im++)
    for (int row = 0; row < nrows; row++) {
      const float *ap = as[im] + aoff + row * lrow;
      const float *dp = ds[im] + doff + row * drow;
      for (int p = 0; p < npix; p++, ap += lpix, dp += dpix) {
        __m512 dv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          dv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mk[v], dp + 16 * v) : _mm512_loadu_ps(dp + 16 * v);
#pragma GCC unroll 28
        for (int m = 0; m < MR; m++) {
          const __m512 av = _mm512_set1_ps(ap[m]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++) acc[m][v] = _mm512_fmadd_ps(av, dv[v], acc[m][v]);
        }
      }
    }
#pragma GCC unroll 28
  for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float *o = out + m * ldo + 16 * v;
      _mm512_mask_storeu_ps(o, mk[v], _mm512_add_ps(acc[m][v], _mm512_maskz_loadu_ps(mk[v], o)));
    }
}

typedef void (*wtile_fn)(const float *const *as, const float *const *ds, int nimg,
                         ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix, ptrdiff_t lrow,
                         ptrdiff_t dpix, ptrdiff_t drow, int nrows, int npix, int cols, float *out,
                         ptrdiff_t ldo);

#define SN_WTILE(MR, NV)                                                                        \
  static void wtile_##MR##_##NV(const float *const *as, const float *const *ds, int nimg,       \
                                ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix, ptrdiff_t lrow, \
                                ptrdiff_t dpix, ptrdiff_t drow, int nrows, int npix, int cols,  \
                                float *out, ptrdiff_t ldo) {                                    \
    wtile_body(MR, NV, as, ds, nimg, aoff, doff, lpix, lrow, dpix, drow, nrows, npix, cols, out, \
               ldo);                                                                            \
  }
#define SN_WTILES4(A, B, C, D, NV) SN_WTILE(A, NV) SN_WTILE(B, NV) SN_WTILE(C, NV) SN_WTILE(D, NV)

SN_WTILES4(1, 2, 3, 4, 1) SN_WTILES4(5, 6, 7, 8, 1) SN_WTILES4(9, 10, 11, 12, 1)
SN_WTILES4(13, 14, 15, 16, 1) SN_WTILES4(17, 18, 19, 20, 1) SN_WTILES4(21, 22, 23, 24, 1)
SN_WTILES4(25, 26, 27, 28, 1)
SN_WTILES4(1, 2, 3, 4, 2) SN_WTILES4(5, 6, 7, 8, 2) SN_WTILES4(9, 10, 11, 12, 2)
SN_WTILE(13, 2) SN_WTILE(14, 2)
SN_WTILES4(1, 2, 3, 4, 3) SN_WTILES4(5, 6, 7, 8, 3) SN_WTILE(9, 3)
SN_WTILES4(1, 2, 3, 4, 4) SN_WTILE(5, 4) SN_WTILE(6, 4) SN_WTILE(7, 4)

#define W1(R) wtile_##R##_1
#define W2(R) wtile_##R##_2
#define W3(R) wtile_##R##_3
#define W4(R) wtile_##R##_4
static const wtile_fn k_wtiles1[29] = {NULL,   W1(1),  W1(2),  W1(3),  W1(4),  W1(5),  W1(6),  W1(7),
                                       W1(8),  W1(9),  W1(10), W1(11), W1(12), W1(13), W1(14), W1(15),
                                       W1(16), W1(17), W1(18), W1(19), W1(20), W1(21), W1(22), W1(23),
                                       W1(24), W1(25), W1(26), W1(27), W1(28)};
static const wtile_fn k_wtiles2[15] = {NULL,  W2(1),  W2(2),  W2(3),  W2(4),  W2(5),  W2(6), W2(7),
                                       W2(8), W2(9),  W2(10), W2(11), W2(12), W2(13), W2(14)};
static const wtile_fn k_wtiles3[10] = {NULL,  W3(1), W3(2), W3(3), W3(4),
                                       W3(5), W3(6), W3(7), W3(8), W3(9)};
static const wtile_fn k_wtiles4[8] = {NULL, W4(1), W4(2), W4(3), W4(4), W4(5), W4(6), W4(7)};

static wtile_fn pick_wtile(int mr, int nv) {
  switch (nv) {
    case 1: return k_wtiles1[mr];
    case 2: return k_wtiles2[mr];
    case 3: return k_wtiles3[mr];
    default: return k_wtiles4[mr];
  }
}

/* d[0, n) = s[0, n) / = 0 */
static inline void copy_f(float *d, const float *s, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    __mmask16 m = tail_mask((int)(n - i));
    _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
  }
}
static inline void zero_f(float *d, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_setzero_ps());
  if (i < n) _mm512_mask_storeu_ps(d + i, tail_mask((int)(n - i)), _mm512_setzero_ps());
}

/* One image x (H, W, Cin) into the zero-padded buffer (HP, WP, Cin). The border is zeroed only
 * when `border` (the interior is rewritten by every image, the border never changes). */
static void pad_image(const dpass *d, const float *x, float *buf, int border) {
  const size_t c = (size_t)d->cin, row = (size_t)d->wp * c;
  for (int y = 0; y < d->hp; y++) {
    float *br = buf + (size_t)y * row;
    const int iy = y - d->pt;
    if (iy < 0 || iy >= d->h) {
      if (border) zero_f(br, row);
      continue;
    }
    if (border) {
      zero_f(br, (size_t)d->pl * c);
      zero_f(br + (size_t)(d->pl + d->w) * c, (size_t)d->pr * c);
    }
    copy_f(br + (size_t)d->pl * c, x + (size_t)iy * d->w * c, (size_t)d->w * c);
  }
}

/* y = act(conv(x) + bias + res) for one image; bp packed (packed_floats(KH*KW*Cin, Cout)). */
static void pass_image(const dpass *d, const float *x, const float *bp, const float *bias,
                       const float *res, int relu, float *y, float *padbuf, int border) {
  const float *src = x;
  if (d->padded) {
    pad_image(d, x, padbuf, border);
    src = padbuf;
  }
  const int cin = d->cin, cout = d->cout;
  const ptrdiff_t k = (ptrdiff_t)d->kh * d->kw * cin, kseg = (ptrdiff_t)d->kw * cin;
  const ptrdiff_t lda = (ptrdiff_t)d->sw * cin, sa = (ptrdiff_t)d->wp * cin;
  for (int cb = 0; cb < cout; cb += SN_DCONV_NB) {
    const int cols = imin(SN_DCONV_NB, cout - cb), nv = ceil_div(cols, 16), rmax = k_rmax[nv];
    const float *b = bp + k * cb;
    const int nt = ceil_div(d->ow, rmax);
    for (int oy = 0; oy < d->oh; oy++) {
      const float *arow = src + (ptrdiff_t)oy * d->sh * sa;
      for (int t = 0; t < nt; t++) {
        const int ox0 = (int)((long)d->ow * t / nt), ox1 = (int)((long)d->ow * (t + 1) / nt);
        const ptrdiff_t o = ((ptrdiff_t)oy * d->ow + ox0) * cout + cb;
        pick_tile(ox1 - ox0, nv, lda)(arow + ox0 * lda, lda, d->kh, sa, (int)kseg, b, y + o, cout,
                                      cols, bias ? bias + cb : NULL, res ? res + o : NULL, relu);
      }
    }
  }
}

/* partial (KH*KW*Cin, Cout) += weight gradient of nimg images (srcs: x of each, padded as in
 * pass_image; dys: dy of each). The output rows (or, for a pointwise image, its pixels) are
 * swept in bands whose x and dy take about SN_WGRAD_SWEEP_BYTES, each band by every weight tile:
 * the band's dy columns and x rows are reused from L2 by all the tiles (as a GEMM's blocks); a
 * band has at least SN_WGRAD_SWEEP_PIX pixels when the weights are large (the read-modify-write
 * of a tile of the partial is amortised over the band's pixels).
 * Every weight tile sums a band's images in order; the bands are added in order. */
static void wgrad_images(const dpass *d, const float *const *srcs, const float *const *dys,
                         int nimg, float *partial) {
  const int cin = d->cin, cout = d->cout;
  const ptrdiff_t kseg = (ptrdiff_t)d->kw * cin, sa = (ptrdiff_t)d->wp * cin;
  const ptrdiff_t lpix = (ptrdiff_t)d->sw * cin;
  const int rows = d->oh > 1;
  const int total = rows ? d->oh : d->ow;
  const int per = (rows ? d->ow : 1) * nimg; /* pixels per unit (row or pixel) */
  /* x and dy bytes per unit; at least SN_WGRAD_SWEEP_PIX pixels when the weights are large */
  const size_t unit = (rows ? (size_t)d->sh * sa + (size_t)d->ow * cout
                            : (size_t)lpix + (size_t)cout) * sizeof(float) * (size_t)nimg;
  const size_t nw = (size_t)d->kh * kseg * cout;
  const int minpix = nw > SN_DCONV_BIG_W ? SN_WGRAD_SWEEP_PIX : SN_WGRAD_SWEEP_PIX / 8;
  const int band = imax(1, imin(total, imax(ceil_div(minpix, per),
                                            (int)(SN_WGRAD_SWEEP_BYTES / unit))));
  for (int u0 = 0; u0 < total; u0 += band) {
    const int nu = imin(band, total - u0);
    const ptrdiff_t aoff = rows ? (ptrdiff_t)u0 * d->sh * sa : (ptrdiff_t)u0 * lpix;
    const ptrdiff_t doff = rows ? (ptrdiff_t)u0 * d->ow * cout : (ptrdiff_t)u0 * cout;
    for (int cb = 0; cb < cout; cb += SN_DCONV_NB) {
      const int cols = imin(SN_DCONV_NB, cout - cb), nv = ceil_div(cols, 16), rmax = k_rmax[nv];
      const int nt = ceil_div((int)kseg, rmax);
      for (int ky = 0; ky < d->kh; ky++)
        for (int t = 0; t < nt; t++) {
          const int k0 = (int)(kseg * t / nt), k1 = (int)(kseg * (t + 1) / nt);
          pick_wtile(k1 - k0, nv)(srcs, dys, nimg, aoff + ky * sa + k0, doff + cb, lpix,
                                  d->sh * sa, cout, (ptrdiff_t)d->ow * cout, rows ? nu : 1,
                                  rows ? d->ow : nu, cols,
                                  partial + (ky * kseg + k0) * cout + cb, cout);
        }
    }
  }
}

/* ---- Winograd F(2x2, 3x3) transforms (see the Winograd section below) */

/* V[xi*4+nu][p][c] = (B^T d B)[xi][nu] for the tiles p of tile rows [tr0, tr1): d is the 4x4
 * patch of the padded buffer at (2*tr, 2*tc). */
static void wino_in(const float *buf, int wp, int c, int tw, int tr0, int tr1, float *v) {
  const size_t plane = (size_t)(tr1 - tr0) * tw * c;
  const ptrdiff_t row = (ptrdiff_t)wp * c;
  for (int tr = tr0; tr < tr1; tr++)
    for (int tc = 0; tc < tw; tc++) {
      const float *base = buf + (ptrdiff_t)2 * tr * row + (ptrdiff_t)2 * tc * c;
      float *vp = v + ((size_t)(tr - tr0) * tw + tc) * c;
      for (int c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 k = tail_mask(c - c0);
        __m512 t[4][4];
        for (int j = 0; j < 4; j++) {
          const __m512 d0 = _mm512_maskz_loadu_ps(k, base + j * c + c0);
          const __m512 d1 = _mm512_maskz_loadu_ps(k, base + row + j * c + c0);
          const __m512 d2 = _mm512_maskz_loadu_ps(k, base + 2 * row + j * c + c0);
          const __m512 d3 = _mm512_maskz_loadu_ps(k, base + 3 * row + j * c + c0);
          t[0][j] = _mm512_sub_ps(d0, d2);
          t[1][j] = _mm512_add_ps(d1, d2);
          t[2][j] = _mm512_sub_ps(d2, d1);
          t[3][j] = _mm512_sub_ps(d1, d3);
        }
        for (int i = 0; i < 4; i++) {
          float *o = vp + (size_t)(4 * i) * plane + c0;
          _mm512_mask_storeu_ps(o, k, _mm512_sub_ps(t[i][0], t[i][2]));
          _mm512_mask_storeu_ps(o + plane, k, _mm512_add_ps(t[i][1], t[i][2]));
          _mm512_mask_storeu_ps(o + 2 * plane, k, _mm512_sub_ps(t[i][2], t[i][1]));
          _mm512_mask_storeu_ps(o + 3 * plane, k, _mm512_sub_ps(t[i][1], t[i][3]));
        }
      }
    }
}

/* y (2x2 per tile) = act(A^T M A + bias + res) for the tiles of rows [tr0, tr1), pixels inside
 * (oh, ow) only. */
static void wino_out(const float *m, int c, int tw, int tr0, int tr1, int oh, int ow,
                     const float *bias, const float *res, int relu, float *y) {
  const size_t plane = (size_t)(tr1 - tr0) * tw * c;
  const __m512 zero = _mm512_setzero_ps();
  for (int tr = tr0; tr < tr1; tr++)
    for (int tc = 0; tc < tw; tc++) {
      const float *mp = m + ((size_t)(tr - tr0) * tw + tc) * c;
      for (int c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 k = tail_mask(c - c0);
        __m512 u[2][4];
        for (int j = 0; j < 4; j++) {
          const __m512 m0 = _mm512_maskz_loadu_ps(k, mp + (size_t)j * plane + c0);
          const __m512 m1 = _mm512_maskz_loadu_ps(k, mp + (size_t)(4 + j) * plane + c0);
          const __m512 m2 = _mm512_maskz_loadu_ps(k, mp + (size_t)(8 + j) * plane + c0);
          const __m512 m3 = _mm512_maskz_loadu_ps(k, mp + (size_t)(12 + j) * plane + c0);
          u[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
          u[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(k, bias + c0) : zero;
        for (int i = 0; i < 2; i++) {
          const int oy = 2 * tr + i;
          if (oy >= oh) break;
          __m512 o[2];
          o[0] = _mm512_add_ps(_mm512_add_ps(u[i][0], u[i][1]), u[i][2]);
          o[1] = _mm512_sub_ps(_mm512_sub_ps(u[i][1], u[i][2]), u[i][3]);
          for (int j = 0; j < 2; j++) {
            const int ox = 2 * tc + j;
            if (ox >= ow) break;
            const size_t off = ((size_t)oy * ow + ox) * c + c0;
            __m512 v = _mm512_add_ps(o[j], bv);
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + off));
            if (relu) v = _mm512_max_ps(v, zero);
            _mm512_mask_storeu_ps(y + off, k, v);
          }
        }
      }
    }
}

/* dM[xi*4+nu][p][c] = (A dY A^T)[xi][nu] of the 2x2 block of dy (oh, ow, c) at (2*tr, 2*tc)
 * (zero outside), for the tiles of rows [tr0, tr1). */
static void wino_dy(const float *dy, int oh, int ow, int c, int tw, int tr0, int tr1, float *dm) {
  const size_t plane = (size_t)(tr1 - tr0) * tw * c;
  const __m512 zero = _mm512_setzero_ps();
  for (int tr = tr0; tr < tr1; tr++)
    for (int tc = 0; tc < tw; tc++) {
      float *mp = dm + ((size_t)(tr - tr0) * tw + tc) * c;
      const int y0 = 2 * tr, x0 = 2 * tc;
      const int in01 = x0 + 1 < ow, in10 = y0 + 1 < oh;
      const float *p00 = dy + ((size_t)y0 * ow + x0) * c;
      for (int c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 k = tail_mask(c - c0);
        const __m512 a = _mm512_maskz_loadu_ps(k, p00 + c0);
        const __m512 b = in01 ? _mm512_maskz_loadu_ps(k, p00 + c + c0) : zero;
        const __m512 cc = in10 ? _mm512_maskz_loadu_ps(k, p00 + (size_t)ow * c + c0) : zero;
        const __m512 d = in01 && in10 ? _mm512_maskz_loadu_ps(k, p00 + (size_t)ow * c + c + c0) : zero;
        __m512 r[4][2];
        r[0][0] = a;
        r[0][1] = b;
        r[1][0] = _mm512_add_ps(a, cc);
        r[1][1] = _mm512_add_ps(b, d);
        r[2][0] = _mm512_sub_ps(a, cc);
        r[2][1] = _mm512_sub_ps(b, d);
        r[3][0] = _mm512_sub_ps(zero, cc);
        r[3][1] = _mm512_sub_ps(zero, d);
        for (int i = 0; i < 4; i++) {
          float *o = mp + (size_t)(4 * i) * plane + c0;
          _mm512_mask_storeu_ps(o, k, r[i][0]);
          _mm512_mask_storeu_ps(o + plane, k, _mm512_add_ps(r[i][0], r[i][1]));
          _mm512_mask_storeu_ps(o + 2 * plane, k, _mm512_sub_ps(r[i][0], r[i][1]));
          _mm512_mask_storeu_ps(o + 3 * plane, k, _mm512_sub_ps(zero, r[i][1]));
        }
      }
    }
}

#pragma GCC pop_options

/* ------------------------------------------------------------ packing and drivers */

/* Row kr of a packed (K, N) matrix: bp row kr of every column block gets src[0, N). */
static void pack_row(int k, int n, int kr, const float *src, float *bp) {
  for (int cb = 0; cb < n; cb += SN_DCONV_NB) {
    const int cols = imin(SN_DCONV_NB, n - cb), ldb = 16 * ceil_div(cols, 16);
    float *d = bp + (size_t)k * cb + (size_t)kr * ldb;
    memcpy(d, src + cb, (size_t)cols * sizeof(float));
    for (int j = cols; j < ldb; j++) d[j] = 0.0f;
  }
}

static int chunks_of(int n) { return imin(n, SN_DCONV_CHUNKS); }

/* Backward of layers with large weights: fewer chunks (each chunk's dW partial is read and
 * written once per block of images, and summed at the end). */
#define SN_DCONV_BWD_CHUNKS_BIG 4
/* A weight tile of the gradient sweeps the x (padded) and dy of a block of images: as many as
 * fit this budget (at least one, at most SN_WGRAD_MAX_IMAGES), so that large weights are
 * read-modify-written once per block rather than once per image. */
#define SN_WGRAD_MAX_IMAGES 32

static int bwd_chunks(const sn_conv_geom *g) {
  const size_t nw = (size_t)g->kh * g->kw * g->cin * g->cout;
  return imin(g->n, nw > SN_DCONV_BIG_W ? SN_DCONV_BWD_CHUNKS_BIG : SN_DCONV_CHUNKS);
}

static void fwd_pass_of(const sn_conv_geom *g, dpass *d) {
  dpass_init(d, g->h, g->w, g->cin, g->kh, g->kw, g->sh, g->sw, g->pt, g->pl, g->pb, g->pr,
             g->cout);
}

/* Backward data by stride phases. Input pixel iy belongs to phase py = (iy + pt) mod sh; its
 * taps are ky = py + sh*t (t < ty), from dy row q - t with q = (iy + pt - py) / sh (columns
 * likewise). Per phase this is a stride-1 correlation of dy with the flipped sub-kernel
 * w[py + sh*(ty-1-t')][px + sw*(tx-1-u')]^T: the forward tile over a zero-padded copy of dy
 * (PT = max ty - 1 rows above, PB below so that every q of every phase has its rows; columns
 * likewise), output pixels at stride sw in the row of dx. At stride 1 there is one phase (the
 * whole flipped kernel). Phases without taps (stride > kernel) are zero. */
typedef struct bplan {
  dpass pad; /* dy (OH, OW, Cout) -> padded buffer (hp, wp, Cout) */
} bplan;

static int phase_taps(int k, int s, int p) { return p < k ? ceil_div(k - p, s) : 0; }

static void bplan_init(const sn_conv_geom *g, bplan *b) {
  const int pt = ceil_div(g->kh, g->sh) - 1, pl = ceil_div(g->kw, g->sw) - 1;
  const int qmax = (g->h - 1 + g->pt) / g->sh, rmax = (g->w - 1 + g->pl) / g->sw;
  const int pb = imax(0, qmax - (g->oh - 1)), pr = imax(0, rmax - (g->ow - 1));
  dpass *d = &b->pad;
  memset(d, 0, sizeof *d);
  d->h = g->oh; d->w = g->ow; d->cin = g->cout;
  d->pt = pt; d->pl = pl; d->pb = pb; d->pr = pr;
  d->hp = g->oh + pt + pb;
  d->wp = g->ow + pl + pr;
  d->padded = pt || pl || pb || pr;
}

static size_t direct_forward_workspace(const sn_conv_geom *g) {
  dpass d;
  fwd_pass_of(g, &d);
  return packed_floats(g->kh * g->kw * g->cin, g->cout) +
         (size_t)chunks_of(g->n) * dpass_pad_floats(&d);
}

/* Images per weight-gradient block (wgrad_images). */
static int wgrad_block(const sn_conv_geom *g, const dpass *d) {
  const size_t xf = d->padded ? dpass_pad_floats(d) : (size_t)g->h * g->w * g->cin;
  const size_t per = (xf + (size_t)g->oh * g->ow * g->cout) * sizeof(float);
  const int b = (int)(SN_WGRAD_BLOCK_BYTES / per);
  return imax(1, imin(imin(b, SN_WGRAD_MAX_IMAGES), ceil_div(g->n, bwd_chunks(g))));
}

/* Per chunk: padded x of a block of images, padded dy, the dW partial. */
static size_t bwd_chunk_floats(const sn_conv_geom *g) {
  dpass d;
  bplan b;
  fwd_pass_of(g, &d);
  bplan_init(g, &b);
  return (size_t)wgrad_block(g, &d) * dpass_pad_floats(&d) + dpass_pad_floats(&b.pad) +
         round16((size_t)g->kh * g->kw * g->cin * g->cout);
}

/* Flipped sub-kernels of all phases, each packed (ty*tx*Cout rows, Cin columns): every tap is in
 * exactly one phase. */
static size_t bwd_packed_floats(const sn_conv_geom *g) {
  return (size_t)g->kh * g->kw * g->cout * round16((size_t)g->cin);
}

static size_t direct_backward_workspace(const sn_conv_geom *g) {
  return bwd_packed_floats(g) + (size_t)bwd_chunks(g) * bwd_chunk_floats(g);
}

/* Row kr = (t', u', co) of the packed flipped sub-kernel of phase (py, px):
 * w[py + sh*(ty-1-t')][px + sw*(tx-1-u')][ci][co] over ci, in column blocks of 64. */
static void pack_phase_row(const sn_conv_geom *g, const float *w, int py, int px, int ty, int tx,
                           int kr, float *bp) {
  const int cin = g->cin, cout = g->cout, kph = ty * tx * cout;
  const int tap = kr / cout, co = kr % cout;
  const int ky = py + g->sh * (ty - 1 - tap / tx), kx = px + g->sw * (tx - 1 - tap % tx);
  const float *src = w + ((size_t)(ky * g->kw + kx) * cin) * cout + co;
  for (int c0 = 0; c0 < cin; c0 += SN_DCONV_NB) {
    const int cols = imin(SN_DCONV_NB, cin - c0), ldb = 16 * ceil_div(cols, 16);
    float *dst = bp + (size_t)kph * c0 + (size_t)kr * ldb;
    for (int j = 0; j < cols; j++) dst[j] = src[(size_t)(c0 + j) * cout];
    for (int j = cols; j < ldb; j++) dst[j] = 0.0f;
  }
}

/* dx (H, W, Cin) of one image from the padded dy (bplan) and the packed phases. */
static void bwd_data_image(const sn_conv_geom *g, const bplan *bp_, const float *dyp,
                           const float *bp, float *dx) {
  const int cin = g->cin, cout = g->cout, sh = g->sh, sw = g->sw;
  const dpass *d = &bp_->pad;
  const ptrdiff_t sa = (ptrdiff_t)d->wp * cout;
  size_t boff = 0;
  for (int py = 0; py < sh; py++) {
    const int ty = phase_taps(g->kh, sh, py);
    const int iy0 = ((py - g->pt) % sh + sh) % sh;
    for (int px = 0; px < sw; px++) {
      const int tx = phase_taps(g->kw, sw, px);
      const int ix0 = ((px - g->pl) % sw + sw) % sw;
      if (ix0 >= g->w || iy0 >= g->h) {
        boff += (size_t)ty * tx * cout * round16((size_t)cin);
        continue;
      }
      const int r0 = (ix0 + g->pl - px) / sw, nr = ceil_div(g->w - ix0, sw);
      if (!ty || !tx) { /* no tap reaches these pixels */
        for (int iy = iy0; iy < g->h; iy += sh)
          for (int r = 0; r < nr; r++)
            memset(dx + ((size_t)iy * g->w + ix0 + (size_t)r * sw) * cin, 0,
                   (size_t)cin * sizeof(float));
        continue;
      }
      const int kph = ty * tx * cout;
      for (int iy = iy0; iy < g->h; iy += sh) {
        const int q = (iy + g->pt - py) / sh;
        const float *arow = dyp + (ptrdiff_t)(q - ty + 1 + d->pt) * sa;
        for (int cb = 0; cb < cin; cb += SN_DCONV_NB) {
          const int cols = imin(SN_DCONV_NB, cin - cb), nv = ceil_div(cols, 16);
          const int rmax = k_rmax[nv], nt = ceil_div(nr, rmax);
          const float *b = bp + boff + (size_t)kph * cb;
          for (int t = 0; t < nt; t++) {
            const int a0 = (int)((long)nr * t / nt), a1 = (int)((long)nr * (t + 1) / nt);
            const int r = r0 + a0;
            float *c = dx + ((size_t)iy * g->w + ix0 + (size_t)a0 * sw) * cin + cb;
            pick_tile(a1 - a0, nv, cout)(arow + (ptrdiff_t)(r - tx + 1 + d->pl) * cout, cout, ty,
                                         sa, tx * cout, b, c, (ptrdiff_t)sw * cin, cols, NULL,
                                         NULL, 0);
          }
        }
      }
      boff += (size_t)kph * round16((size_t)cin);
    }
  }
}

static int team_size(int chunks) {
  int t = omp_get_max_threads();
  return imax(1, imin(t, chunks));
}

static void direct_forward(const sn_conv_geom *g, const float *x, const float *w,
                           const float *bias, const float *res, int relu, float *y, float *ws) {
  dpass d;
  fwd_pass_of(g, &d);
  const int k = g->kh * g->kw * g->cin, nch = chunks_of(g->n);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_img = (size_t)g->oh * g->ow * g->cout;
  /* one column block of whole vectors is the HWIO tensor itself */
  const int inplace = g->cout % 16 == 0 && g->cout <= SN_DCONV_NB;
  float *pads = ws + packed_floats(k, g->cout);
  const float *bp = inplace ? w : ws;
  const size_t padn = dpass_pad_floats(&d);
#pragma omp parallel num_threads(team_size(nch))
  {
    if (!inplace) {
#pragma omp for schedule(static)
      for (int kr = 0; kr < k; kr++) pack_row(k, g->cout, kr, w + (size_t)kr * g->cout, ws);
    }
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nch; ch++) {
      const int i0 = (int)((long)g->n * ch / nch), i1 = (int)((long)g->n * (ch + 1) / nch);
      for (int i = i0; i < i1; i++)
        pass_image(&d, x + i * in_img, bp, bias, res ? res + i * out_img : NULL, relu,
                   y + i * out_img, pads + ch * padn, i == i0);
    }
  }
}

static void direct_backward(const sn_conv_geom *g, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, float *ws) {
  dpass d;
  bplan b;
  fwd_pass_of(g, &d);
  bplan_init(g, &b);
  const int nch = bwd_chunks(g), blk = wgrad_block(g, &d), cin = g->cin, cout = g->cout;
  const size_t nw = (size_t)g->kh * g->kw * cin * cout;
  const size_t in_img = (size_t)g->h * g->w * cin, out_img = (size_t)g->oh * g->ow * cout;
  const size_t padx = dpass_pad_floats(&d), pady = dpass_pad_floats(&b.pad);
  const size_t chunkn = bwd_chunk_floats(g), partoff = (size_t)blk * padx + pady;
  float *bp = ws, *chunks = ws + bwd_packed_floats(g);
#pragma omp parallel num_threads(team_size(nch))
  {
    if (dx) {
      size_t boff = 0;
      for (int py = 0; py < g->sh; py++)
        for (int px = 0; px < g->sw; px++) {
          const int ty = phase_taps(g->kh, g->sh, py), tx = phase_taps(g->kw, g->sw, px);
          const int kph = ty * tx * cout;
#pragma omp for schedule(static) nowait
          for (int kr = 0; kr < kph; kr++) pack_phase_row(g, w, py, px, ty, tx, kr, bp + boff);
          boff += (size_t)kph * round16((size_t)cin);
        }
#pragma omp barrier
    }
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nch; ch++) {
      float *base = chunks + ch * chunkn;
      float *dypad = base + (size_t)blk * padx, *partial = base + partoff;
      memset(partial, 0, nw * sizeof(float));
      const int i0 = (int)((long)g->n * ch / nch), i1 = (int)((long)g->n * (ch + 1) / nch);
      for (int ib = i0; ib < i1; ib += blk) {
        const int ie = imin(i1, ib + blk);
        const float *srcs[SN_WGRAD_MAX_IMAGES], *dys[SN_WGRAD_MAX_IMAGES];
        for (int i = ib; i < ie; i++) {
          srcs[i - ib] = x + i * in_img;
          dys[i - ib] = dy + i * out_img;
          if (d.padded) {
            pad_image(&d, x + i * in_img, base + (size_t)(i - ib) * padx, ib == i0);
            srcs[i - ib] = base + (size_t)(i - ib) * padx;
          }
        }
        wgrad_images(&d, srcs, dys, ie - ib, partial);
        if (!dx) continue;
        for (int i = ib; i < ie; i++) {
          const float *dyi = dy + i * out_img;
          if (b.pad.padded) {
            pad_image(&b.pad, dyi, dypad, i == i0);
            dyi = dypad;
          }
          bwd_data_image(g, &b, dyi, bp, dx + i * in_img);
        }
      }
    }
    /* dW = sum of the partials in chunk order */
#pragma omp for schedule(static)
    for (size_t j0 = 0; j0 < nw; j0 += 256) {
      const size_t j1 = j0 + 256 < nw ? j0 + 256 : nw;
      const float *p0 = chunks + partoff;
      for (size_t j = j0; j < j1; j++) dw[j] = p0[j];
      for (int ch = 1; ch < nch; ch++) {
        const float *p = chunks + ch * chunkn + partoff;
        for (size_t j = j0; j < j1; j++) dw[j] += p[j];
      }
    }
  }
}

/* ------------------------------------------------------------ Winograd F(2x2, 3x3)
 *
 * 3x3 stride-1 convolutions (forward, backward data with the flipped kernel, weight gradient):
 * 2.25x fewer multiplications (spec/KERNELS.md 2); measured error no larger than the direct
 * kernels' (relative RMS 1-5e-7 on the resnet20/50 shapes). Used where it measured faster
 * (conv_train_bench, 1 thread, CPU time): min(Cin, Cout) >= SN_WINO_MIN_C and at least
 * SN_WINO_MIN_PIX output pixels - resnet50's 56x56x64 (fwd 25 vs 27 ms, bwd 51 vs 61 ms at batch
 * 16) and 28x28x128 (17 vs 26, 39 vs 52). With 16-64 channels at 7x7-28x28 (resnet20) the
 * transforms cost as much as the GEMMs save (28x28x16: 2.1 vs 1.7 ms per 64 images), and at
 * 7x7x512 each band has too few tiles to amortise U. Per image, in bands of tile rows so that
 * V and M stay in L2:
 *   forward:  V = B^T d B of every 4x4 input patch (stride 2) of the zero-padded image;
 *             M[xi,nu] (tiles, Cout) = V[xi,nu] (tiles, Cin) . U[xi,nu] (Cin, Cout) - 16 GEMMs
 *             with the tile kernel, U = G g G^T packed per call; y = A^T M A (+ bias, res, ReLU).
 *   dW:       dU[xi,nu] (Cin, Cout) += V[xi,nu]^T . dM[xi,nu] with dM = A dY A^T of the 2x2 dy
 *             blocks (the weight-gradient tile kernel, reduction over tiles); per-chunk partials
 *             are summed in chunk order, then dW = G^T dU G.
 *   dx:       the forward pass of dy (padded by 2 - p) with U of the flipped, transposed kernel.
 * U and G^T dU G are computed in double and rounded once. */

#define SN_WINO_MIN_C 64
#define SN_WINO_MIN_PIX 784
#define SN_WINO_BAND_FLOATS 65536 /* V or M of one band: 256 KiB */

/* SN_WINOGRAD=0: never; SN_WINOGRAD=1: every valid geometry (3x3, stride 1, padding <= 2: the
 * tests force it on small shapes); unset: by the size rule above. */
static int wino_eligible(const sn_conv_geom *g) {
  const char *e = getenv("SN_WINOGRAD");
  const int mode = e && e[0] ? (strcmp(e, "0") != 0 ? 1 : 0) : -1;
  if (mode == 0) return 0;
  if (!(g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt <= 2 && g->pl <= 2 &&
        g->pb <= 2 && g->pr <= 2))
    return 0;
  return mode == 1 || (g->cin >= SN_WINO_MIN_C && g->cout >= SN_WINO_MIN_C &&
                       g->oh * g->ow >= SN_WINO_MIN_PIX);
}

/* One Winograd pass over one image: (h, w, cin) padded by (pt, pl) -> (oh, ow, cout). */
typedef struct wplan {
  int th, tw;   /* 2x2 output tiles */
  int bh;       /* tile rows per band */
  int oh, ow, cin, cout;
  dpass pad;    /* the input into a (2*th + 2) x (2*tw + 2) zero-padded buffer */
} wplan;

static void wplan_init(wplan *p, int h, int w, int cin, int pt, int pl, int oh, int ow,
                       int cout) {
  p->th = ceil_div(oh, 2);
  p->tw = ceil_div(ow, 2);
  p->oh = oh; p->ow = ow; p->cin = cin; p->cout = cout;
  const int tiles = imax(p->tw, SN_WINO_BAND_FLOATS / (16 * imax(cin, cout)));
  p->bh = imax(1, imin(p->th, tiles / p->tw));
  dpass *d = &p->pad;
  memset(d, 0, sizeof *d);
  d->h = h; d->w = w; d->cin = cin; d->pt = pt; d->pl = pl;
  d->hp = 2 * p->th + 2;
  d->wp = 2 * p->tw + 2;
  d->pb = d->hp - h - pt;
  d->pr = d->wp - w - pl;
  d->padded = 1;
}

static void wplan_fwd(const sn_conv_geom *g, wplan *p) {
  wplan_init(p, g->h, g->w, g->cin, g->pt, g->pl, g->oh, g->ow, g->cout);
}
static void wplan_bwd(const sn_conv_geom *g, wplan *p) {
  wplan_init(p, g->oh, g->ow, g->cout, 2 - g->pt, 2 - g->pl, g->h, g->w, g->cin);
}

static size_t wplan_pad_floats(const wplan *p) {
  return round16((size_t)p->pad.hp * p->pad.wp * p->cin);
}
/* one of V / M: 16 planes of a band's tiles x max(cin, cout) */
static size_t wplan_band_floats(const wplan *p) {
  return round16((size_t)16 * p->bh * p->tw * imax(p->cin, p->cout));
}
static size_t wino_u_floats(int cin, int cout) { return 16 * packed_floats(cin, cout); }

static size_t wino_forward_workspace(const sn_conv_geom *g) {
  wplan f;
  wplan_fwd(g, &f);
  return wino_u_floats(g->cin, g->cout) +
         (size_t)chunks_of(g->n) * (wplan_pad_floats(&f) + 2 * wplan_band_floats(&f));
}

static size_t wino_chunk_floats(const sn_conv_geom *g) {
  wplan f, b;
  wplan_fwd(g, &f);
  wplan_bwd(g, &b);
  const size_t band = wplan_band_floats(&f) > wplan_band_floats(&b) ? wplan_band_floats(&f)
                                                                     : wplan_band_floats(&b);
  return wplan_pad_floats(&f) + wplan_pad_floats(&b) + 2 * band +
         round16((size_t)16 * g->cin * g->cout);
}

static size_t wino_backward_workspace(const sn_conv_geom *g) {
  return wino_u_floats(g->cout, g->cin) + (size_t)chunks_of(g->n) * wino_chunk_floats(g);
}

/* Row ci of the 16 packed U[xi,nu] (cin, cout) from g[ky][kx] = w[ky][kx][ci][co] (flip = 0) or
 * w[2-ky][2-kx][co][ci] of the original (cout', cin') kernel (flip = 1: the backward-data
 * kernel, here cin = Cout, cout = Cin of the convolution). */
static void wino_pack_u_row(const float *w, int cin, int cout, int flip, int ci, float *u) {
  const size_t uplane = packed_floats(cin, cout);
  for (int co = 0; co < cout; co++) {
    double gk[3][3], t[4][3], uu[4][4];
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++)
        gk[ky][kx] = flip ? w[((size_t)((2 - ky) * 3 + (2 - kx)) * cout + co) * cin + ci]
                          : w[((size_t)(ky * 3 + kx) * cin + ci) * cout + co];
    for (int j = 0; j < 3; j++) {
      t[0][j] = gk[0][j];
      t[1][j] = 0.5 * (gk[0][j] + gk[1][j] + gk[2][j]);
      t[2][j] = 0.5 * (gk[0][j] - gk[1][j] + gk[2][j]);
      t[3][j] = gk[2][j];
    }
    for (int i = 0; i < 4; i++) {
      uu[i][0] = t[i][0];
      uu[i][1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]);
      uu[i][2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]);
      uu[i][3] = t[i][2];
    }
    const int cb = co / SN_DCONV_NB * SN_DCONV_NB;
    const int cols = imin(SN_DCONV_NB, cout - cb), ldb = 16 * ceil_div(cols, 16);
    for (int q = 0; q < 16; q++) {
      float *dst = u + (size_t)q * uplane + (size_t)cin * cb + (size_t)ci * ldb;
      dst[co - cb] = (float)uu[q / 4][q % 4];
      if (co == cb + cols - 1)
        for (int j = cols; j < ldb; j++) dst[j] = 0.0f;
    }
  }
}

/* M = V . U for the 16 planes of a band of nb tiles. */
static void wino_gemm(const float *v, int nb, int cin, const float *u, int cout, float *m) {
  const size_t vplane = (size_t)nb * cin, mplane = (size_t)nb * cout;
  const size_t uplane = packed_floats(cin, cout);
  for (int q = 0; q < 16; q++)
    for (int cb = 0; cb < cout; cb += SN_DCONV_NB) {
      const int cols = imin(SN_DCONV_NB, cout - cb), nv = ceil_div(cols, 16);
      const int rmax = k_rmax[nv], nt = ceil_div(nb, rmax);
      for (int t = 0; t < nt; t++) {
        const int a0 = (int)((long)nb * t / nt), a1 = (int)((long)nb * (t + 1) / nt);
        pick_tile(a1 - a0, nv, cin)(v + q * vplane + (size_t)a0 * cin, cin, 1, 0, cin,
                                    u + q * uplane + (size_t)cin * cb,
                                    m + q * mplane + (size_t)a0 * cout + cb, cout, cols, NULL,
                                    NULL, 0);
      }
    }
}

/* One image: y = act(conv(x) + bias + res). */
static void wino_image(const wplan *p, const float *x, const float *u, const float *bias,
                       const float *res, int relu, float *y, float *padbuf, float *vb, float *mb,
                       int border) {
  pad_image(&p->pad, x, padbuf, border);
  for (int tr0 = 0; tr0 < p->th; tr0 += p->bh) {
    const int tr1 = imin(p->th, tr0 + p->bh), nb = (tr1 - tr0) * p->tw;
    wino_in(padbuf, p->pad.wp, p->cin, p->tw, tr0, tr1, vb);
    wino_gemm(vb, nb, p->cin, u, p->cout, mb);
    wino_out(mb, p->cout, p->tw, tr0, tr1, p->oh, p->ow, bias, res, relu, y);
  }
}

/* dU (16, cin, cout) += V^T dM for one image (x padded into padbuf). */
static void wino_wgrad_image(const wplan *p, const float *x, const float *dy, float *du,
                             float *padbuf, float *vb, float *mb, int border) {
  const int cin = p->cin, cout = p->cout;
  pad_image(&p->pad, x, padbuf, border);
  for (int tr0 = 0; tr0 < p->th; tr0 += p->bh) {
    const int tr1 = imin(p->th, tr0 + p->bh), nb = (tr1 - tr0) * p->tw;
    wino_in(padbuf, p->pad.wp, cin, p->tw, tr0, tr1, vb);
    wino_dy(dy, p->oh, p->ow, cout, p->tw, tr0, tr1, mb);
    const size_t vplane = (size_t)nb * cin, mplane = (size_t)nb * cout;
    for (int q = 0; q < 16; q++)
      for (int cb = 0; cb < cout; cb += SN_DCONV_NB) {
        const int cols = imin(SN_DCONV_NB, cout - cb), nv = ceil_div(cols, 16);
        const int rmax = k_rmax[nv], nt = ceil_div(cin, rmax);
        for (int t = 0; t < nt; t++) {
          const int k0 = (int)((long)cin * t / nt), k1 = (int)((long)cin * (t + 1) / nt);
          const float *va = vb + q * vplane, *ma = mb + q * mplane;
          pick_wtile(k1 - k0, nv)(&va, &ma, 1, k0, cb, cin, 0, cout, 0, 1, nb, cols,
                                  du + ((size_t)q * cin + k0) * cout + cb, cout);
        }
      }
  }
}

static void wino_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                         const float *res, int relu, float *y, float *ws) {
  wplan f;
  wplan_fwd(g, &f);
  const int nch = chunks_of(g->n);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_img = (size_t)g->oh * g->ow * g->cout;
  const size_t padn = wplan_pad_floats(&f), bandn = wplan_band_floats(&f);
  const size_t chunkn = padn + 2 * bandn;
  float *u = ws, *chunks = ws + wino_u_floats(g->cin, g->cout);
#pragma omp parallel num_threads(team_size(nch))
  {
#pragma omp for schedule(static)
    for (int ci = 0; ci < g->cin; ci++) wino_pack_u_row(w, g->cin, g->cout, 0, ci, u);
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nch; ch++) {
      float *base = chunks + ch * chunkn;
      const int i0 = (int)((long)g->n * ch / nch), i1 = (int)((long)g->n * (ch + 1) / nch);
      for (int i = i0; i < i1; i++)
        wino_image(&f, x + i * in_img, u, bias, res ? res + i * out_img : NULL, relu,
                   y + i * out_img, base, base + padn, base + padn + bandn, i == i0);
    }
  }
}

static void wino_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *ws) {
  wplan f, b;
  wplan_fwd(g, &f);
  wplan_bwd(g, &b);
  const int nch = chunks_of(g->n), cin = g->cin, cout = g->cout;
  const size_t in_img = (size_t)g->h * g->w * cin, out_img = (size_t)g->oh * g->ow * cout;
  const size_t padf = wplan_pad_floats(&f), padb = wplan_pad_floats(&b);
  const size_t bandn = wplan_band_floats(&f) > wplan_band_floats(&b) ? wplan_band_floats(&f)
                                                                      : wplan_band_floats(&b);
  const size_t chunkn = wino_chunk_floats(g), nu = (size_t)16 * cin * cout;
  float *uf = ws, *chunks = ws + wino_u_floats(cout, cin);
#define SN_WINO_DU(ch) (chunks + (size_t)(ch) * chunkn + padf + padb + 2 * bandn)
#pragma omp parallel num_threads(team_size(nch))
  {
    if (dx) {
#pragma omp for schedule(static)
      for (int co = 0; co < cout; co++) wino_pack_u_row(w, cout, cin, 1, co, uf);
    }
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nch; ch++) {
      float *base = chunks + ch * chunkn;
      float *xpad = base, *ypad = base + padf, *vb = base + padf + padb, *mb = vb + bandn;
      float *du = SN_WINO_DU(ch);
      memset(du, 0, nu * sizeof(float));
      const int i0 = (int)((long)g->n * ch / nch), i1 = (int)((long)g->n * (ch + 1) / nch);
      for (int i = i0; i < i1; i++) {
        wino_wgrad_image(&f, x + i * in_img, dy + i * out_img, du, xpad, vb, mb, i == i0);
        if (dx)
          wino_image(&b, dy + i * out_img, uf, NULL, NULL, 0, dx + i * in_img, ypad, vb, mb,
                     i == i0);
      }
    }
    /* dU = sum of the partials in chunk order; dW = G^T dU G (double, rounded once) */
#pragma omp for schedule(static)
    for (int ci = 0; ci < cin; ci++)
      for (int co = 0; co < cout; co++) {
        double d[4][4], t[3][4];
        for (int q = 0; q < 16; q++) {
          const size_t o = ((size_t)q * cin + ci) * cout + co;
          double acc = SN_WINO_DU(0)[o];
          for (int ch = 1; ch < nch; ch++) acc += SN_WINO_DU(ch)[o];
          d[q / 4][q % 4] = acc;
        }
        for (int j = 0; j < 4; j++) {
          t[0][j] = d[0][j] + 0.5 * (d[1][j] + d[2][j]);
          t[1][j] = 0.5 * (d[1][j] - d[2][j]);
          t[2][j] = 0.5 * (d[1][j] + d[2][j]) + d[3][j];
        }
        for (int ky = 0; ky < 3; ky++) {
          const double r0 = t[ky][0] + 0.5 * (t[ky][1] + t[ky][2]);
          const double r1 = 0.5 * (t[ky][1] - t[ky][2]);
          const double r2 = 0.5 * (t[ky][1] + t[ky][2]) + t[ky][3];
          float *o = dw + ((size_t)(ky * 3) * cin + ci) * cout + co;
          o[0] = (float)r0;
          o[(size_t)cin * cout] = (float)r1;
          o[(size_t)2 * cin * cout] = (float)r2;
        }
      }
  }
#undef SN_WINO_DU
}


/* ------------------------------------------------------------ packed GEMM (gemm_avx512.c)
 *
 * Large layers by the inference path's packed AVX-512 GEMM (conv_fast.h: B packed in K blocks,
 * A rows packed per panel by im2col): the forward pass, and the stride-1 backward-data pass as
 * the forward pass of dy with the flipped kernel. Used where K = KH*KW*Cin and Cout are large
 * enough for its 14x32 tiles and K blocking (SN_GEMM_MIN_K, SN_GEMM_MIN_N, SN_GEMM_MAX_PIX; from
 * conv_train_bench on resnet50 at batch 16, 1 thread, best CPU times on a loaded machine:
 * 7x7x512 3x3 forward 31 vs 39 ms, backward with dx 83 vs 121 ms; 14x14 and 28x28 layers with
 * K = 256-2304 within the noise of each other; the 28x28 1x1/2 downsample faster direct, 30 vs
 * 39 ms); the direct tiles stream the whole weight block per row tile, which does not fit in L2
 * when K is large. Each output is accumulated by one task over the K blocks in order:
 * deterministic for any thread count. */

#define SN_GEMM_MIN_K 1024
#define SN_GEMM_MIN_N 128 /* resnet20's 7x7x64 layers: direct 150 GFLOP/s in a training step */
#define SN_GEMM_MAX_PIX 196 /* K >= MIN_K / 2 suffices at <= 14x14 */
#define SN_GEMM_THREADS_MAX 16 /* the workspace covers up to this many threads */

/* SN_CONV_GEMM=0: never; =1: every geometry; unset: the size rule. */
static int gemm_mode(void) {
  const char *e = getenv("SN_CONV_GEMM");
  return e && e[0] ? (strcmp(e, "0") != 0 ? 1 : 0) : -1;
}

static int gemm_fwd_eligible(const sn_conv_geom *g) {
  const int m = gemm_mode();
  if (m >= 0) return m;
  const int k = g->kh * g->kw * g->cin;
  return g->cout >= SN_GEMM_MIN_N &&
         (k >= SN_GEMM_MIN_K || (k >= SN_GEMM_MIN_K / 2 && g->oh * g->ow <= SN_GEMM_MAX_PIX));
}

/* The backward-data pass of a stride-1 convolution as a forward geometry over dy. */
static int gemm_bwd_geom(const sn_conv_geom *g, sn_conv_geom *b) {
  if (g->sh != 1 || g->sw != 1 || g->pt >= g->kh || g->pb >= g->kh || g->pl >= g->kw ||
      g->pr >= g->kw)
    return -1;
  return sn_conv_geom_init(b, g->n, g->oh, g->ow, g->cout, g->kh, g->kw, 1, 1, g->kh - 1 - g->pt,
                           g->kw - 1 - g->pl, g->kh - 1 - g->pb, g->kw - 1 - g->pr, g->cin);
}

static int gemm_bwd_eligible(const sn_conv_geom *g) {
  sn_conv_geom b;
  if (gemm_bwd_geom(g, &b) != 0) return 0;
  const int m = gemm_mode();
  if (m >= 0) return m;
  return gemm_fwd_eligible(&b);
}

static size_t gemm_fwd_workspace(const sn_conv_geom *g) {
  return round16(sn_gemm_packb_floats(g->kh * g->kw * g->cin, g->cout)) +
         sn_gemm_conv_workspace(g, SN_GEMM_THREADS_MAX);
}

/* flipped HWIO kernel (KH*KW*Cout, Cin) + the forward workspace of the backward geometry */
static size_t gemm_bwd_workspace(const sn_conv_geom *g) {
  sn_conv_geom b;
  if (gemm_bwd_geom(g, &b) != 0) return 0;
  return round16((size_t)g->kh * g->kw * g->cin * g->cout) + gemm_fwd_workspace(&b);
}

static int gemm_threads(void) { return imax(1, imin(omp_get_max_threads(), SN_GEMM_THREADS_MAX)); }

static void gemm_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                         const float *res, int relu, float *y, float *ws) {
  const int k = g->kh * g->kw * g->cin;
  sn_gemm_packb(k, g->cout, w, (size_t)g->cout, ws);
  sn_gemm_conv_forward_avx512(g, gemm_threads(), x, ws, bias, res, relu, y,
                              ws + round16(sn_gemm_packb_floats(k, g->cout)));
}

/* dx = forward of dy with wf[ky][kx][co][ci] = w[KH-1-ky][KW-1-kx][ci][co] */
static void gemm_bwd_data(const sn_conv_geom *g, const float *w, const float *dy, float *dx,
                          float *ws) {
  sn_conv_geom b;
  gemm_bwd_geom(g, &b);
  const int cin = g->cin, cout = g->cout, taps = g->kh * g->kw;
  float *wf = ws;
#pragma omp parallel for schedule(static) num_threads(gemm_threads())
  for (int r = 0; r < taps * cout; r++) {
    const int tap = r / cout, co = r % cout;
    const int ky = g->kh - 1 - tap / g->kw, kx = g->kw - 1 - tap % g->kw;
    const float *src = w + ((size_t)(ky * g->kw + kx) * cin) * cout + co;
    float *dst = wf + (size_t)r * cin;
    for (int ci = 0; ci < cin; ci++) dst[ci] = src[(size_t)ci * cout];
  }
  gemm_forward(&b, dy, wf, NULL, NULL, 0, dx, ws + round16((size_t)taps * cin * cout));
}

/* ------------------------------------------------------------ entry points */

size_t sn_dconv_forward_workspace(const sn_conv_geom *g) {
  size_t d = direct_forward_workspace(g);
  if (gemm_fwd_workspace(g) > d) d = gemm_fwd_workspace(g);
  if (g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt <= 2 && g->pl <= 2 &&
      g->pb <= 2 && g->pr <= 2) {
    size_t w = wino_forward_workspace(g);
    if (w > d) d = w;
  }
  return d;
}

size_t sn_dconv_backward_workspace(const sn_conv_geom *g) {
  size_t d = direct_backward_workspace(g);
  if (gemm_bwd_workspace(g) > d) d = gemm_bwd_workspace(g);
  if (g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt <= 2 && g->pl <= 2 &&
      g->pb <= 2 && g->pr <= 2) {
    size_t w = wino_backward_workspace(g);
    if (w > d) d = w;
  }
  return d;
}

void sn_dconv_forward_avx512(const sn_conv_geom *g, const float *x, const float *w,
                             const float *bias, const float *res, int relu, float *y, float *ws) {
  if (wino_eligible(g))
    wino_forward(g, x, w, bias, res, relu, y, ws);
  else if (gemm_fwd_eligible(g))
    gemm_forward(g, x, w, bias, res, relu, y, ws);
  else
    direct_forward(g, x, w, bias, res, relu, y, ws);
}

void sn_dconv_backward_avx512(const sn_conv_geom *g, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *db, float *ws) {
  (void)db; /* the caller (conv.c) computes db */
  if (wino_eligible(g)) {
    wino_backward(g, x, w, dy, dx, dw, ws);
  } else if (dx && gemm_bwd_eligible(g)) {
    /* the weight gradient by the direct kernels, then dx by the packed GEMM (the same
     * workspace, one after the other) */
    direct_backward(g, x, w, dy, NULL, dw, ws);
    gemm_bwd_data(g, w, dy, dx, ws);
  } else {
    direct_backward(g, x, w, dy, dx, dw, ws);
  }
}
