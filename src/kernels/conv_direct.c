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
 * loads of dy. Blocks of images are swept in bands by every weight tile (wgrad_images); each
 * chunk of images accumulates into its own partial dW (the chunk's first band writes it, as 0 +
 * its sums: no zeroing pass); the partials are summed in chunk order at the end.
 *
 * Entry points (bottom of the file) choose per geometry: Winograd F(2x2, 3x3) (conv_wino.c) for
 * large 3x3 stride-1 layers, the inference path's packed GEMM for large K (forward and stride-1
 * backward data) and for the weight gradient of layers with K >= 256 and Cout >= 128 (the
 * transposed im2col rows packed as A, dy's rows as B), else the direct tiles above.
 *
 * Every function here runs only when sn_cpu_has_avx512() (conv.c checks). */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct_impl.h"
#include "conv_fast.h"

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
static inline __attribute__((always_inline)) void
tile_body(const int R, const int NV, const int LDA, const float *a, ptrdiff_t lda_rt, int nseg,
          ptrdiff_t sa, int kseg, const float *b, float *c, ptrdiff_t ldc, int cols,
          const float *bias, const float *res, int relu) {
  const ptrdiff_t lda = LDA ? (ptrdiff_t)LDA : lda_rt;
  const int ldb = 16 * NV;
  __m512 acc[28][4];
#pragma GCC unroll 28
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm512_setzero_ps();
  for (int s = 0; s < nseg; s++) {
    const float *as = a + s * sa;
    const float *bs = b + (ptrdiff_t)s * kseg * ldb;
    for (int k = 0; k < kseg; k++) {
      __m512 bv[4];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++)
        bv[v] = _mm512_loadu_ps(bs + (ptrdiff_t)k * ldb + 16 * v);
#pragma GCC unroll 28
      for (int r = 0; r < R; r++) {
        const __m512 av = _mm512_set1_ps(as[r * lda + k]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
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

#define SN_TILE(R, NV, LDA)                                                                        \
  static void tile_##R##_##NV##_##LDA(const float *a, ptrdiff_t lda, int nseg, ptrdiff_t sa,       \
                                      int kseg, const float *b, float *c, ptrdiff_t ldc, int cols, \
                                      const float *bias, const float *res, int relu) {             \
    tile_body(R, NV, LDA, a, lda, nseg, sa, kseg, b, c, ldc, cols, bias, res, relu);               \
  }
#define SN_TILES4(A, B, C, D, NV)                                                                  \
  SN_TILE(A, NV, 0) SN_TILE(B, NV, 0) SN_TILE(C, NV, 0) SN_TILE(D, NV, 0)

SN_TILES4(1, 2, 3, 4, 1)
SN_TILES4(5, 6, 7, 8, 1) SN_TILES4(9, 10, 11, 12, 1) SN_TILES4(13, 14, 15, 16, 1)
    SN_TILES4(17, 18, 19, 20, 1) SN_TILES4(21, 22, 23, 24, 1) SN_TILES4(25, 26, 27, 28, 1)
        SN_TILES4(1, 2, 3, 4, 2) SN_TILES4(5, 6, 7, 8, 2) SN_TILES4(9, 10, 11, 12, 2)
            SN_TILE(13, 2, 0) SN_TILE(14, 2, 0) SN_TILES4(1, 2, 3, 4, 3) SN_TILES4(5, 6, 7, 8, 3)
                SN_TILE(9, 3, 0) SN_TILES4(1, 2, 3, 4, 4) SN_TILE(5, 4, 0) SN_TILE(6, 4, 0)
                    SN_TILE(7, 4, 0)
    /* full tiles with the row strides of the small-channel layers as constants (resnet20 at
     * 28x28: every 3x3 forward and stride-1 backward-data row, and the stride-2 layers' backward
     * phases, 14x1 over 32-channel dy and 7x2 over 64) */
    SN_TILE(28, 1, 16) SN_TILE(28, 1, 32) SN_TILE(28, 1, 64) SN_TILE(14, 2, 16) SN_TILE(14, 2, 32)
        SN_TILE(14, 2, 64) SN_TILE(14, 2, 128) SN_TILE(14, 1, 32) SN_TILE(7, 2, 64) SN_TILE(7, 4, 64)

#define T1(R) tile_##R##_1_0
#define T2(R) tile_##R##_2_0
#define T3(R) tile_##R##_3_0
#define T4(R) tile_##R##_4_0
            static const sn_dconv_tile_fn k_tiles1[29] = {
                NULL,   T1(1),  T1(2),  T1(3),  T1(4),  T1(5),  T1(6),  T1(7),  T1(8),  T1(9),
                T1(10), T1(11), T1(12), T1(13), T1(14), T1(15), T1(16), T1(17), T1(18), T1(19),
                T1(20), T1(21), T1(22), T1(23), T1(24), T1(25), T1(26), T1(27), T1(28)};
static const sn_dconv_tile_fn k_tiles2[15] = {NULL,   T2(1),  T2(2),  T2(3),  T2(4),
                                              T2(5),  T2(6),  T2(7),  T2(8),  T2(9),
                                              T2(10), T2(11), T2(12), T2(13), T2(14)};
static const sn_dconv_tile_fn k_tiles3[10] = {NULL,  T3(1), T3(2), T3(3), T3(4),
                                              T3(5), T3(6), T3(7), T3(8), T3(9)};
static const sn_dconv_tile_fn k_tiles4[8] = {NULL, T4(1), T4(2), T4(3), T4(4), T4(5), T4(6), T4(7)};

sn_dconv_tile_fn sn_dconv_pick_tile(int r, int nv, ptrdiff_t lda) {
  switch (nv) {
  case 1:
    if (r == 28 && lda == 16) return tile_28_1_16;
    if (r == 28 && lda == 32) return tile_28_1_32;
    if (r == 28 && lda == 64) return tile_28_1_64;
    if (r == 14 && lda == 32) return tile_14_1_32;
    return k_tiles1[r];
  case 2:
    if (r == 14 && lda == 16) return tile_14_2_16;
    if (r == 14 && lda == 32) return tile_14_2_32;
    if (r == 14 && lda == 64) return tile_14_2_64;
    if (r == 14 && lda == 128) return tile_14_2_128;
    if (r == 7 && lda == 64) return tile_7_2_64;
    return k_tiles2[r];
  case 3:
    return k_tiles3[r];
  default:
    if (r == 7 && lda == 64) return tile_7_4_64;
    return k_tiles4[r];
  }
}

/* Weight-gradient tile: out (MR, cols) += sum over the images im < nimg and their pixels of
 * a_p[m] * d_p[0, cols), with a_p = as[im] + aoff + row*lrow + p*lpix (MR consecutive floats),
 * d_p = ds[im] + doff + row*drow + p*dpix; the images in order, then rows, then pixels. With
 * `first`, out = 0 + the sum, without reading out. */
static inline __attribute__((always_inline)) void
wtile_body(const int MR, const int NV, const float *const *as, const float *const *ds, int nimg,
           ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix, ptrdiff_t lrow, ptrdiff_t dpix,
           ptrdiff_t drow, int nrows, int npix, int cols, float *out, ptrdiff_t ldo, int first) {
  __m512 acc[28][4];
  __mmask16 mk[4];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++)
    mk[v] = tail_mask(cols - 16 * v);
#pragma GCC unroll 28
  for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[m][v] = _mm512_setzero_ps();
  for (int im = 0; im < nimg; im++)
    for (int row = 0; row < nrows; row++) {
      const float *ap = as[im] + aoff + row * lrow;
      const float *dp = ds[im] + doff + row * drow;
      for (int p = 0; p < npix; p++, ap += lpix, dp += dpix) {
        __m512 dv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          dv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mk[v], dp + 16 * v)
                              : _mm512_loadu_ps(dp + 16 * v);
#pragma GCC unroll 28
        for (int m = 0; m < MR; m++) {
          const __m512 av = _mm512_set1_ps(ap[m]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++)
            acc[m][v] = _mm512_fmadd_ps(av, dv[v], acc[m][v]);
        }
      }
    }
#pragma GCC unroll 28
  for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float *o = out + m * ldo + 16 * v;
      const __m512 prev = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[v], o);
      _mm512_mask_storeu_ps(o, mk[v], _mm512_add_ps(acc[m][v], prev));
    }
}

#define SN_WTILE(MR, NV)                                                                           \
  static void wtile_##MR##_##NV(const float *const *as, const float *const *ds, int nimg,          \
                                ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix, ptrdiff_t lrow,    \
                                ptrdiff_t dpix, ptrdiff_t drow, int nrows, int npix, int cols,     \
                                float *out, ptrdiff_t ldo, int first) {                            \
    wtile_body(MR, NV, as, ds, nimg, aoff, doff, lpix, lrow, dpix, drow, nrows, npix, cols, out,   \
               ldo, first);                                                                        \
  }
#define SN_WTILES4(A, B, C, D, NV) SN_WTILE(A, NV) SN_WTILE(B, NV) SN_WTILE(C, NV) SN_WTILE(D, NV)

SN_WTILES4(1, 2, 3, 4, 1)
SN_WTILES4(5, 6, 7, 8, 1) SN_WTILES4(9, 10, 11, 12, 1) SN_WTILES4(13, 14, 15, 16, 1)
    SN_WTILES4(17, 18, 19, 20, 1) SN_WTILES4(21, 22, 23, 24, 1) SN_WTILES4(25, 26, 27, 28, 1)
        SN_WTILES4(1, 2, 3, 4, 2) SN_WTILES4(5, 6, 7, 8, 2) SN_WTILES4(9, 10, 11, 12, 2)
            SN_WTILE(13, 2) SN_WTILE(14, 2) SN_WTILES4(1, 2, 3, 4, 3) SN_WTILES4(5, 6, 7, 8, 3)
                SN_WTILE(9, 3) SN_WTILES4(1, 2, 3, 4, 4) SN_WTILE(5, 4) SN_WTILE(6, 4)
                    SN_WTILE(7, 4)

#define W1(R) wtile_##R##_1
#define W2(R) wtile_##R##_2
#define W3(R) wtile_##R##_3
#define W4(R) wtile_##R##_4
                        static const sn_dconv_wtile_fn k_wtiles1[29] = {
                            NULL,   W1(1),  W1(2),  W1(3),  W1(4),  W1(5),  W1(6),  W1(7),
                            W1(8),  W1(9),  W1(10), W1(11), W1(12), W1(13), W1(14), W1(15),
                            W1(16), W1(17), W1(18), W1(19), W1(20), W1(21), W1(22), W1(23),
                            W1(24), W1(25), W1(26), W1(27), W1(28)};
static const sn_dconv_wtile_fn k_wtiles2[15] = {NULL,   W2(1),  W2(2),  W2(3),  W2(4),
                                                W2(5),  W2(6),  W2(7),  W2(8),  W2(9),
                                                W2(10), W2(11), W2(12), W2(13), W2(14)};
static const sn_dconv_wtile_fn k_wtiles3[10] = {NULL,  W3(1), W3(2), W3(3), W3(4),
                                                W3(5), W3(6), W3(7), W3(8), W3(9)};
static const sn_dconv_wtile_fn k_wtiles4[8] = {NULL,  W4(1), W4(2), W4(3),
                                               W4(4), W4(5), W4(6), W4(7)};

sn_dconv_wtile_fn sn_dconv_pick_wtile(int mr, int nv) {
  switch (nv) {
  case 1:
    return k_wtiles1[mr];
  case 2:
    return k_wtiles2[mr];
  case 3:
    return k_wtiles3[mr];
  default:
    return k_wtiles4[mr];
  }
}

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

/* d[p * c + j] = act((s[p * c + j] - mean[j]) * scale[j] + shift[j]) for npix pixels (row
 * stride c) and the cw <= 64 channels j from j0: the operations of the batch norm's normalize
 * pass (bn.c affine_rows_avx512), so bitwise its output. The coefficients stay in registers. */
static inline __attribute__((always_inline)) void
map_group(const int NV, float *d, const float *s, size_t npix, int c, int j0, int cw,
          const sn_conv_in *in) {
  const __m512 z = _mm512_setzero_ps();
  __m512 m[4], a[4], b[4];
  __mmask16 k[4];
  for (int v = 0; v < NV; v++) {
    k[v] = tail_mask(cw - 16 * v);
    m[v] = _mm512_maskz_loadu_ps(k[v], in->mean + j0 + 16 * v);
    a[v] = _mm512_maskz_loadu_ps(k[v], in->scale + j0 + 16 * v);
    b[v] = _mm512_maskz_loadu_ps(k[v], in->shift + j0 + 16 * v);
  }
  d += j0;
  s += j0;
  for (size_t p = 0; p < npix; p++, d += c, s += c)
    for (int v = 0; v < NV; v++) {
      __m512 x = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k[v], s + 16 * v), m[v]),
                                 a[v], b[v]);
      if (in->relu) x = _mm512_max_ps(x, z);
      _mm512_mask_storeu_ps(d + 16 * v, k[v], x);
    }
}

/* map_group over all c channels of npix pixels, 64 at a time. */
static void map_pixels(float *d, const float *s, size_t npix, int c, const sn_conv_in *in) {
  for (int j0 = 0; j0 < c; j0 += 64) {
    const int cw = imin(64, c - j0);
    switch ((cw + 15) / 16) {
    case 1: map_group(1, d, s, npix, c, j0, cw, in); break;
    case 2: map_group(2, d, s, npix, c, j0, cw, in); break;
    case 3: map_group(3, d, s, npix, c, j0, cw, in); break;
    default: map_group(4, d, s, npix, c, j0, cw, in); break;
    }
  }
}

/* One image x (H, W, Cin) into the zero-padded buffer (HP, WP, Cin), through the input map `in`
 * when not NULL (the padding stays zero: it pads the mapped tensor). The border is zeroed only
 * when `border` (the interior is rewritten by every image, the border never changes). */
void sn_dconv_pad_image(const dpass *d, const float *x, float *buf, int border,
                        const sn_conv_in *in) {
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
    if (in)
      map_pixels(br + (size_t)d->pl * c, x + (size_t)iy * d->w * c, (size_t)d->w, d->cin, in);
    else
      copy_f(br + (size_t)d->pl * c, x + (size_t)iy * d->w * c, (size_t)d->w * c);
  }
}

/* y = act(conv(x) + bias + res) for one image; bp packed (packed_floats(KH*KW*Cin, Cout)). */
static void pass_image(const dpass *d, const float *x, const sn_conv_in *in, const float *bp,
                       const float *bias, const float *res, int relu, float *y, float *padbuf,
                       int border) {
  const float *src = x;
  if (d->padded) {
    sn_dconv_pad_image(d, x, padbuf, border, in);
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
        sn_dconv_pick_tile(ox1 - ox0, nv, lda)(arow + ox0 * lda, lda, d->kh, sa, (int)kseg, b,
                                               y + o, cout, cols, bias ? bias + cb : NULL,
                                               res ? res + o : NULL, relu);
      }
    }
  }
}

/* partial (KH*KW*Cin, Cout) += weight gradient of nimg images (srcs: x of each, padded as in
 * pass_image; dys: dy of each); with `first`, partial = 0 + it (partial is not read). The output rows (or, for a pointwise image, its pixels) are
 * swept in bands whose x and dy take about SN_WGRAD_SWEEP_BYTES, each band by every weight tile:
 * the band's dy columns and x rows are reused from L2 by all the tiles (as a GEMM's blocks); a
 * band has at least SN_WGRAD_SWEEP_PIX pixels when the weights are large (the read-modify-write
 * of a tile of the partial is amortised over the band's pixels).
 * Every weight tile sums a band's images in order; the bands are added in order. */
static void wgrad_images(const dpass *d, const float *const *srcs, const float *const *dys,
                         int nimg, float *partial, int first) {
  const int cin = d->cin, cout = d->cout;
  const ptrdiff_t kseg = (ptrdiff_t)d->kw * cin, sa = (ptrdiff_t)d->wp * cin;
  const ptrdiff_t lpix = (ptrdiff_t)d->sw * cin;
  const int rows = d->oh > 1;
  const int total = rows ? d->oh : d->ow;
  const int per = (rows ? d->ow : 1) * nimg; /* pixels per unit (row or pixel) */
  /* x and dy bytes per unit; at least SN_WGRAD_SWEEP_PIX pixels when the weights are large */
  const size_t unit =
      (rows ? (size_t)d->sh * sa + (size_t)d->ow * cout : (size_t)lpix + (size_t)cout) *
      sizeof(float) * (size_t)nimg;
  const size_t nw = (size_t)d->kh * kseg * cout;
  const int minpix = nw > SN_DCONV_BIG_W ? SN_WGRAD_SWEEP_PIX : SN_WGRAD_SWEEP_PIX / 8;
  const int band =
      imax(1, imin(total, imax(ceil_div(minpix, per), (int)(SN_WGRAD_SWEEP_BYTES / unit))));
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
          sn_dconv_pick_wtile(k1 - k0, nv)(srcs, dys, nimg, aoff + ky * sa + k0, doff + cb, lpix,
                                           d->sh * sa, cout, (ptrdiff_t)d->ow * cout, rows ? nu : 1,
                                           rows ? d->ow : nu, cols,
                                           partial + (ky * kseg + k0) * cout + cb, cout,
                                           first && u0 == 0);
        }
    }
  }
}

/* dw[j0, j1) = p_0 + p_1 + ... + p_{n-1}, added in that order, p_c = parts + c * stride. */
static void sum_partials(float *dw, const float *parts, size_t stride, int n, size_t j0,
                         size_t j1) {
  for (size_t j = j0; j < j1; j += 16) {
    const __mmask16 k = tail_mask((int)(j1 - j < 16 ? j1 - j : 16));
    __m512 s = _mm512_maskz_loadu_ps(k, parts + j);
    for (int c = 1; c < n; c++)
      s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(k, parts + (size_t)c * stride + j));
    _mm512_mask_storeu_ps(dw + j, k, s);
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
    for (int j = cols; j < ldb; j++)
      d[j] = 0.0f;
  }
}

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
  d->h = g->oh;
  d->w = g->ow;
  d->cin = g->cout;
  d->pt = pt;
  d->pl = pl;
  d->pb = pb;
  d->pr = pr;
  d->hp = g->oh + pt + pb;
  d->wp = g->ow + pl + pr;
  d->padded = pt || pl || pb || pr;
}

static size_t direct_forward_workspace(const sn_conv_geom *g) {
  dpass d;
  fwd_pass_of(g, &d);
  return packed_floats(g->kh * g->kw * g->cin, g->cout) +
         (size_t)sn_dconv_chunks(g->n) * dpass_pad_floats(&d);
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
    for (int j = 0; j < cols; j++)
      dst[j] = src[(size_t)(c0 + j) * cout];
    for (int j = cols; j < ldb; j++)
      dst[j] = 0.0f;
  }
}

/* dx (H, W, Cin) of one image from the padded dy (bplan) and the packed phases; acc: dx += it
 * (the tiles' residual input is dx itself: each element is read, added and stored in place). */
static void bwd_data_image(const sn_conv_geom *g, const bplan *bp_, const float *dyp,
                           const float *bp, float *dx, int acc) {
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
        if (acc) continue;
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
            sn_dconv_pick_tile(a1 - a0, nv, cout)(arow + (ptrdiff_t)(r - tx + 1 + d->pl) * cout,
                                                  cout, ty, sa, tx * cout, b, c,
                                                  (ptrdiff_t)sw * cin, cols, NULL,
                                                  acc ? c : NULL, 0);
          }
        }
      }
      boff += (size_t)kph * round16((size_t)cin);
    }
  }
}

int sn_dconv_team_size(int chunks) {
  int t = omp_get_max_threads();
  return imax(1, imin(t, chunks));
}

static void direct_forward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                           const float *w, const float *bias, const float *res, int relu, float *y,
                           float *ws) {
  dpass d;
  fwd_pass_of(g, &d);
  const int k = g->kh * g->kw * g->cin, nch = sn_dconv_chunks(g->n);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_img = (size_t)g->oh * g->ow * g->cout;
  /* one column block of whole vectors is the HWIO tensor itself */
  const int inplace = g->cout % 16 == 0 && g->cout <= SN_DCONV_NB;
  float *pads = ws + packed_floats(k, g->cout);
  const float *bp = inplace ? w : ws;
  const size_t padn = dpass_pad_floats(&d);
#pragma omp parallel num_threads(sn_dconv_team_size(nch))
  {
    if (!inplace) {
#pragma omp for schedule(static)
      for (int kr = 0; kr < k; kr++)
        pack_row(k, g->cout, kr, w + (size_t)kr * g->cout, ws);
    }
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nch; ch++) {
      const int i0 = (int)((long)g->n * ch / nch), i1 = (int)((long)g->n * (ch + 1) / nch);
      for (int i = i0; i < i1; i++)
        pass_image(&d, x + i * in_img, in, bp, bias, res ? res + i * out_img : NULL, relu,
                   y + i * out_img, pads + ch * padn, i == i0);
    }
  }
}

/* dx (or NULL) and dw (or NULL: dx alone) by the direct tiles. */
static void direct_backward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                            const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                            float *ws) {
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
#pragma omp parallel num_threads(sn_dconv_team_size(nch))
  {
    if (dx) {
      size_t boff = 0;
      for (int py = 0; py < g->sh; py++)
        for (int px = 0; px < g->sw; px++) {
          const int ty = phase_taps(g->kh, g->sh, py), tx = phase_taps(g->kw, g->sw, px);
          const int kph = ty * tx * cout;
#pragma omp for schedule(static) nowait
          for (int kr = 0; kr < kph; kr++)
            pack_phase_row(g, w, py, px, ty, tx, kr, bp + boff);
          boff += (size_t)kph * round16((size_t)cin);
        }
#pragma omp barrier
    }
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nch; ch++) {
      float *base = chunks + ch * chunkn;
      float *dypad = base + (size_t)blk * padx, *partial = base + partoff;
      const int i0 = (int)((long)g->n * ch / nch), i1 = (int)((long)g->n * (ch + 1) / nch);
      for (int ib = i0; ib < i1; ib += blk) {
        const int ie = imin(i1, ib + blk);
        if (dw) {
          const float *srcs[SN_WGRAD_MAX_IMAGES], *dys[SN_WGRAD_MAX_IMAGES];
          for (int i = ib; i < ie; i++) {
            srcs[i - ib] = x + i * in_img;
            dys[i - ib] = dy + i * out_img;
            if (d.padded) {
              sn_dconv_pad_image(&d, x + i * in_img, base + (size_t)(i - ib) * padx, ib == i0,
                                 in);
              srcs[i - ib] = base + (size_t)(i - ib) * padx;
            }
          }
          wgrad_images(&d, srcs, dys, ie - ib, partial, ib == i0); /* the first block writes */
        }
        if (!dx) continue;
        for (int i = ib; i < ie; i++) {
          const float *dyi = dy + i * out_img;
          if (b.pad.padded) {
            sn_dconv_pad_image(&b.pad, dyi, dypad, i == i0, NULL);
            dyi = dypad;
          }
          bwd_data_image(g, &b, dyi, bp, dx + i * in_img, dx_acc);
        }
      }
    }
    /* dW = sum of the partials in chunk order (dw NULL: dx only) */
#pragma omp for schedule(static)
    for (size_t j0 = 0; j0 < (dw ? nw : 0); j0 += 256)
      sum_partials(dw, chunks + partoff, chunkn, nch, j0, j0 + 256 < nw ? j0 + 256 : nw);
  }
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
#define SN_GEMM_MIN_N 128      /* resnet20's 7x7x64 layers: direct 150 GFLOP/s in a training step */
#define SN_GEMM_MAX_PIX 196    /* K >= MIN_K / 2 suffices at <= 14x14 */
#define SN_GEMM_THREADS_MAX 16 /* the workspace covers up to this many threads */

/* g->opts.conv_gemm: off 0 (never), on 1 (every geometry), auto -1 (the size rule). */
static int gemm_mode(const sn_conv_geom *g) {
  return g->opts.conv_gemm == SN_CHOICE_AUTO ? -1 : g->opts.conv_gemm == SN_CHOICE_ON;
}

/* The size rule (forward and backward data): large K. */
static int gemm_size_rule(const sn_conv_geom *g) {
  const int k = g->kh * g->kw * g->cin;
  return g->cout >= SN_GEMM_MIN_N &&
         (k >= SN_GEMM_MIN_K || (k >= SN_GEMM_MIN_K / 2 && g->oh * g->ow <= SN_GEMM_MAX_PIX));
}

/* Forward: the size rule, or an unpadded stride-1 1x1 with Cout >= SN_GEMM_MIN_N (A rows read
 * from x by the packer, no im2col: 56x56x64->256 12.7 vs 17.9 ms direct, 56x56x256->128 26.0 vs
 * 31.9, batch 16, 1 thread, CPU-time minima of 5 interleaved calls; its backward data stays
 * direct, where the GEMM measured no faster). */
static int gemm_fwd_eligible(const sn_conv_geom *g) {
  const int m = gemm_mode(g);
  if (m >= 0) return m;
  const int pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !g->pt &&
                        !g->pl && !g->pb && !g->pr;
  return gemm_size_rule(g) || (pointwise && g->cout >= SN_GEMM_MIN_N);
}

/* The backward-data pass of a stride-1 convolution as a forward geometry over dy. */
static int gemm_bwd_geom(const sn_conv_geom *g, sn_conv_geom *b) {
  if (g->sh != 1 || g->sw != 1 || g->pt >= g->kh || g->pb >= g->kh || g->pl >= g->kw ||
      g->pr >= g->kw)
    return -1;
  return sn_conv_geom_init(b, NULL, g->n, g->oh, g->ow, g->cout, g->kh, g->kw, 1, 1,
                           g->kh - 1 - g->pt, g->kw - 1 - g->pl, g->kh - 1 - g->pb,
                           g->kw - 1 - g->pr, g->cin);
}

static int gemm_bwd_eligible(const sn_conv_geom *g) {
  sn_conv_geom b;
  if (gemm_bwd_geom(g, &b) != 0) return 0;
  const int m = gemm_mode(g);
  if (m >= 0) return m;
  return gemm_size_rule(&b);
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

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")

/* r[i][j] <- r[j][i] for a 16x16 block of floats held in 16 registers. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
  }
}

/* b (K, N), row stride ldb -> bp in sn_gemm_packb's layout (K blocks of sn_gemm_kc(K) rows,
 * each as column panels (kcur, SN_NR), zero padded): the same floats, by vector copies, rows
 * split over the calling team (called inside a parallel region, or by one thread). */
static void pack_b_rows(int k, int n, const float *b, size_t ldb, float *bp) {
  const int kc = sn_gemm_kc(k), npan = ceil_div(n, SN_NR);
#pragma omp for schedule(static)
  for (int r = 0; r < k; r++) {
    const int k0 = r / kc * kc, kcur = imin(kc, k - k0), kk = r - k0;
    const float *src = b + (size_t)r * ldb;
    float *dst = (float *)sn_gemm_bblock(bp, npan, k0) + (size_t)kk * SN_NR;
    for (int j = 0; j < npan; j++) {
      const int nj = n - j * SN_NR;
      float *d = dst + (size_t)j * kcur * SN_NR;
      _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(tail_mask(nj), src + j * SN_NR));
      _mm512_storeu_ps(d + 16, _mm512_maskz_loadu_ps(tail_mask(nj - 16), src + j * SN_NR + 16));
    }
  }
}

/* wf[ky][kx][co][ci] = w[KH-1-ky][KW-1-kx][ci][co] by 16x16 transposes, split over the team. */
static void flip_kernel(const sn_conv_geom *g, const float *w, float *wf) {
  const int cin = g->cin, cout = g->cout, taps = g->kh * g->kw;
  const int cib = ceil_div(cin, 16), cob = ceil_div(cout, 16);
#pragma omp for schedule(static)
  for (int t = 0; t < taps * cib * cob; t++) {
    const int tap = t / (cib * cob), ci0 = t / cob % cib * 16, co0 = t % cob * 16;
    const int ftap = taps - 1 - tap; /* (KH-1-ky, KW-1-kx) */
    const int nci = imin(16, cin - ci0), nco = imin(16, cout - co0);
    const float *src = w + ((size_t)ftap * cin + ci0) * cout + co0;
    float *dst = wf + ((size_t)tap * cout + co0) * cin + ci0;
    __m512 v[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
      v[j] = j < nci ? _mm512_maskz_loadu_ps(tail_mask(nco), src + (size_t)j * cout)
                     : _mm512_setzero_ps();
    transpose16(v);
    for (int j = 0; j < nco; j++)
      _mm512_mask_storeu_ps(dst + (size_t)j * cin, tail_mask(nci), v[j]);
  }
}

#pragma GCC pop_options

static void gemm_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                         const float *res, int relu, float *y, float *ws) {
  const int k = g->kh * g->kw * g->cin;
#pragma omp parallel num_threads(gemm_threads())
  pack_b_rows(k, g->cout, w, (size_t)g->cout, ws);
  sn_gemm_conv_forward_avx512(g, gemm_threads(), x, NULL, ws, bias, res, relu, y,
                              ws + round16(sn_gemm_packb_floats(k, g->cout)));
}

/* dx = forward of dy with wf[ky][kx][co][ci] = w[KH-1-ky][KW-1-kx][ci][co] */
static void gemm_bwd_data(const sn_conv_geom *g, const float *w, const float *dy, float *dx,
                          float *ws) {
  sn_conv_geom b;
  gemm_bwd_geom(g, &b);
  const int cin = g->cin, cout = g->cout, taps = g->kh * g->kw;
  float *wf = ws;
#pragma omp parallel num_threads(gemm_threads())
  flip_kernel(g, w, wf);
  gemm_forward(&b, dy, wf, NULL, NULL, 0, dx, ws + round16((size_t)taps * cin * cout));
}

/* ------------------------------------------------------------ weight gradient by packed GEMM
 *
 * dW (K, Cout) = sum over blocks of kc output pixels of A (K, kc) . B (kc, Cout), A the im2col
 * matrix transposed (row k = (ky, kx, ci): channel ci of tap (ky, kx) under each of the block's
 * pixels, zero where the tap falls in the padding) and B the block's rows of dy. A task is a
 * range of dW's rows x a range of its columns; it sweeps the pixel blocks in order, packing its
 * columns of dy into B panels (kc, SN_NR) and, per chunk of <= SN_WG_MC rows, its rows of A by
 * 16x16 transposes of the pixels' channel runs (SN_LDA-strided panels of SN_MR rows), then runs
 * the inference path's micro-kernel (sn_gemm_block_avx512), accumulating into dW. Each element of
 * dW is the same chain of FMAs whatever the split: independent of the thread count. The direct
 * weight-gradient tiles (above) keep resnet20's narrow layers, where this measured no faster. */

#define SN_WG_MC (16 * SN_MR) /* rows of A per packed chunk: 16 panels, 238 KiB (L2) */
#define SN_WG_MAX_N 1024      /* columns per task: the task's B block <= 1 MiB */
#define SN_WG_MIN_N 128       /* default rule: Cout >= this ... */
#define SN_WG_MIN_K 256       /* ... and K = KH*KW*Cin >= this */

/* g->opts.conv_wgrad: off, the direct tiles; on, the packed GEMM for every geometry; auto, the
 * size rule. */
static int gemm_wgrad_eligible(const sn_conv_geom *g) {
  if (g->opts.conv_wgrad != SN_CHOICE_AUTO) return g->opts.conv_wgrad == SN_CHOICE_ON;
  return g->cout >= SN_WG_MIN_N && g->kh * g->kw * g->cin >= SN_WG_MIN_K;
}

typedef struct wgplan {
  int m, n, p;   /* dW rows (K), columns (Cout), pixels (N*OH*OW) */
  int kc, npb;   /* pixels per block, blocks */
  int mt, nt;    /* row ranges x column ranges = tasks */
} wgplan;

/* Splits dW into >= 2 tasks per thread, choosing the split that packs least: A is packed once
 * per column range (a transpose: counted twice), B once per row range. */
static void wgplan_init(const sn_conv_geom *g, int threads, wgplan *p) {
  p->m = g->kh * g->kw * g->cin;
  p->n = g->cout;
  p->p = g->n * g->oh * g->ow;
  p->kc = sn_gemm_kc(p->p);
  p->npb = ceil_div(p->p, p->kc);
  const int mp = ceil_div(p->m, SN_MR), np = ceil_div(p->n, SN_NR);
  const int nmin = ceil_div(p->n, SN_WG_MAX_N);
  const long want = imin(2 * threads, mp * np);
  double best = -1.0;
  p->mt = 1;
  p->nt = nmin;
  for (int mt = 1; mt <= mp; mt++)
    for (int nt = nmin; nt <= np; nt++) {
      if ((long)mt * nt < want) continue;
      const double cost = 2.0 * p->m * nt + (double)p->n * mt + 0.5 * (double)mt * nt;
      if (best < 0 || cost < best) {
        best = cost;
        p->mt = mt;
        p->nt = nt;
      }
      break; /* larger nt only costs more */
    }
}

static size_t gemm_wgrad_thread_floats(const sn_conv_geom *g) {
  wgplan p;
  wgplan_init(g, 1, &p);
  const int ncols = imin(p.n, SN_WG_MAX_N);
  return (size_t)p.kc * (size_t)ceil_div(ncols, SN_NR) * SN_NR +
         (size_t)(SN_WG_MC / SN_MR) * SN_PANEL;
}

static size_t gemm_wgrad_workspace(const sn_conv_geom *g) {
  return (size_t)SN_GEMM_THREADS_MAX * round16(gemm_wgrad_thread_floats(g));
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")

/* Rows [r0, r1) of A for the pixels of one block (kc of them; pixel q's top-left input tap at
 * row piy[q], column pix[q] of image pimg[q]) into panels ap (row r - r0 at panel (r-r0)/SN_MR,
 * slot (r-r0)%SN_MR, stride SN_LDA; columns rounded up to 16 with zeros). Per tap and group of
 * 16 pixels, the pixels' channel runs are read in order (16 sequential streams; x's pixels are
 * Cin*4 bytes apart, which for Cin >= 1024 maps a group's loads to one L1 set) and transposed
 * 16 channels at a time. */
static void wg_pack_a(const sn_conv_geom *g, const float *x, const int *pimg, const int *piy,
                      const int *pix, int kc, int r0, int r1, float *ap) {
  const int cin = g->cin;
  const __m512 zero = _mm512_setzero_ps();
  float *rowp[SN_WG_MC];
  for (int r = 0; r < r1 - r0; r++)
    rowp[r] = ap + (size_t)(r / SN_MR) * SN_PANEL + (size_t)(r % SN_MR) * SN_LDA;
  for (int m = r0; m < r1;) {
    const int tap = m / cin, ci0 = m % cin, ky = tap / g->kw, kx = tap % g->kw;
    const int mend = imin(r1, (tap + 1) * cin); /* rows m..mend-1: channels ci0.. of this tap */
    for (int q0 = 0; q0 < kc; q0 += 16) {
      const float *src[16];
      for (int j = 0; j < 16; j++) {
        const int q = q0 + j;
        const int iy = q < kc ? piy[q] + ky : -1, ix = q < kc ? pix[q] + kx : -1;
        src[j] = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w
                     ? x + (((size_t)pimg[q] * g->h + iy) * g->w + ix) * cin + ci0
                     : NULL;
      }
      for (int c = 0; c < mend - m; c += 16) {
        const int nr = imin(16, mend - m - c);
        const __mmask16 mk = tail_mask(nr);
        __m512 v[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
          v[j] = src[j] ? _mm512_maskz_loadu_ps(mk, src[j] + c) : zero;
        transpose16(v);
        float *const *dst = rowp + (m - r0 + c);
        for (int j = 0; j < nr; j++)
          _mm512_storeu_ps(dst[j] + q0, v[j]);
      }
    }
    m = mend;
  }
}

/* Columns [n0, n0 + ncols) of dy's rows [p0, p0 + kc) into panels (kc, SN_NR), zero padded. */
static void wg_pack_b(const float *dy, int cout, int p0, int kc, int n0, int ncols, float *bp) {
  for (int j = 0; j < ncols; j += SN_NR) {
    const int nj = imin(SN_NR, ncols - j);
    const __mmask16 m0 = tail_mask(nj), m1 = tail_mask(nj - 16);
    float *dst = bp + (size_t)(j / SN_NR) * kc * SN_NR;
    const float *src = dy + (size_t)p0 * cout + n0 + j;
    for (int q = 0; q < kc; q++) {
      _mm512_storeu_ps(dst + (size_t)q * SN_NR, _mm512_maskz_loadu_ps(m0, src + (size_t)q * cout));
      _mm512_storeu_ps(dst + (size_t)q * SN_NR + 16,
                      _mm512_maskz_loadu_ps(m1, src + (size_t)q * cout + 16));
    }
  }
}

#pragma GCC pop_options

static void gemm_wgrad(const sn_conv_geom *g, const float *x, const float *dy, float *dw,
                       float *ws) {
  const int threads = gemm_threads();
  wgplan p;
  wgplan_init(g, threads, &p);
  const int mp = ceil_div(p.m, SN_MR), np = ceil_div(p.n, SN_NR), ntask = p.mt * p.nt;
  const size_t tws = round16(gemm_wgrad_thread_floats(g));
  const int ohw = g->oh * g->ow;
#pragma omp parallel num_threads(imin(threads, ntask))
  {
    float *bbuf = ws + (size_t)omp_get_thread_num() * tws;
    float *abuf = bbuf + (size_t)p.kc * (size_t)imin(np * SN_NR, SN_WG_MAX_N);
    int pimg[SN_KC], piy[SN_KC], pix[SN_KC];
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < ntask; t++) {
      const int ti = t / p.nt, tj = t % p.nt;
      const int r0 = (int)((long)mp * ti / p.mt) * SN_MR;
      const int r1 = imin(p.m, (int)((long)mp * (ti + 1) / p.mt) * SN_MR);
      const int n0 = (int)((long)np * tj / p.nt) * SN_NR;
      const int n1 = imin(p.n, (int)((long)np * (tj + 1) / p.nt) * SN_NR);
      for (int pb = 0; pb < p.npb; pb++) {
        const int p0 = pb * p.kc, kc = imin(p.kc, p.p - p0);
        for (int q = 0; q < kc; q++) {
          const int pp = p0 + q, img = pp / ohw, oy = pp % ohw / g->ow, ox = pp % g->ow;
          pimg[q] = img;
          piy[q] = oy * g->sh - g->pt;
          pix[q] = ox * g->sw - g->pl;
        }
        wg_pack_b(dy, g->cout, p0, kc, n0, n1 - n0, bbuf);
        for (int c0 = r0; c0 < r1; c0 += SN_WG_MC) {
          const int c1 = imin(r1, c0 + SN_WG_MC);
          wg_pack_a(g, x, pimg, piy, pix, kc, c0, c1, abuf);
          sn_gemm_block_avx512(c1 - c0, n1 - n0, kc, abuf, bbuf, (size_t)kc * SN_NR,
                               dw + (size_t)c0 * p.n + n0, (size_t)p.n, pb ? SN_GEMM_ACC : 0,
                               NULL, NULL, 0, 0, NULL);
        }
      }
    }
  }
}

/* ------------------------------------------------------------ entry points */

size_t sn_dconv_forward_workspace(const sn_conv_geom *g) {
  size_t d = direct_forward_workspace(g);
  if (gemm_fwd_workspace(g) > d) d = gemm_fwd_workspace(g);
  if (sn_dconv_wino_valid(g) && sn_dconv_wino_forward_workspace(g) > d)
    d = sn_dconv_wino_forward_workspace(g);
  return d;
}

size_t sn_dconv_backward_workspace(const sn_conv_geom *g) {
  size_t d = direct_backward_workspace(g);
  if (gemm_bwd_workspace(g) > d) d = gemm_bwd_workspace(g);
  if (gemm_wgrad_workspace(g) > d) d = gemm_wgrad_workspace(g);
  if (sn_dconv_wino_valid(g) && sn_dconv_wino_backward_workspace(g) > d)
    d = sn_dconv_wino_backward_workspace(g);
  return d;
}

int sn_dconv_input_map_ok(const sn_conv_geom *g) {
  return (g->pt || g->pl || g->pb || g->pr) && !sn_dconv_wino_eligible(g) &&
         !gemm_fwd_eligible(g) && !gemm_wgrad_eligible(g);
}

void sn_dconv_forward_avx512(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                             const float *w, const float *bias, const float *res, int relu,
                             float *y, float *ws) {
  /* with an input map only the direct path runs (sn_dconv_input_map_ok) */
  if (!in && sn_dconv_wino_eligible(g))
    sn_dconv_wino_forward(g, x, w, bias, res, relu, y, ws);
  else if (!in && gemm_fwd_eligible(g))
    gemm_forward(g, x, w, bias, res, relu, y, ws);
  else
    direct_forward(g, x, in, w, bias, res, relu, y, ws);
}

int sn_dconv_dx_direct(const sn_conv_geom *g) {
  return !sn_dconv_wino_eligible(g) && !gemm_bwd_eligible(g);
}

void sn_dconv_backward_avx512(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                              const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                              float *db, float *ws) {
  (void)db; /* the caller (conv.c) computes db */
  /* with an input map the weight gradient runs on the direct tiles (sn_dconv_input_map_ok) */
  if (!in && sn_dconv_wino_eligible(g)) {
    sn_dconv_wino_backward(g, x, w, dy, dx, dw, ws);
  } else if (!in && gemm_wgrad_eligible(g)) {
    /* the weight gradient by the packed GEMM, then dx (the same workspace, one after the other) */
    gemm_wgrad(g, x, dy, dw, ws);
    if (dx && gemm_bwd_eligible(g))
      gemm_bwd_data(g, w, dy, dx, ws);
    else if (dx)
      direct_backward(g, x, NULL, w, dy, dx, dx_acc, NULL, ws);
  } else if (dx && gemm_bwd_eligible(g)) {
    /* the weight gradient by the direct kernels, then dx by the packed GEMM (the same
     * workspace, one after the other) */
    direct_backward(g, x, in, w, dy, NULL, 0, dw, ws);
    gemm_bwd_data(g, w, dy, dx, ws);
  } else {
    direct_backward(g, x, in, w, dy, dx, dx_acc, dw, ws);
  }
}
