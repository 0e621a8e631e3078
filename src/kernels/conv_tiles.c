/* conv_tiles.c - the direct tile kernels (conv_tiles.h), AVX-512.
 *
 * Forward tile: R consecutive output pixels x 16*NV output channels (R x NV zmm accumulators,
 * R * NV <= 28), summed over segments of contiguous input floats (broadcast from A, read in
 * place) against packed weight rows (B); bias, residual and ReLU applied as the tile is stored.
 * Weight-gradient tile: MR consecutive rows of dW x 16*NV columns, summed over the pixels of
 * a list of images in order. Each tile is instantiated per (R, NV) (and, for the row strides of
 * the small-channel layers, per constant stride) so that the accumulators live in registers;
 * the pick functions return the instance for a shape. Every output is one chain of FMAs in a
 * fixed order: independent of the thread count. */
#include <omp.h>

#include "conv_tiles.h"
#include "relu.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

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
#pragma GCC unroll 28
  for (int r = 0; r < R; r++) {
    float *cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m512 o = _mm512_add_ps(acc[r][v], bb[v]);
      if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(mk[v], res + r * ldc + 16 * v));
      if (relu) o = sn_relu_ps(o);
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

/* clang-format off */
SN_TILES4(1, 2, 3, 4, 1) SN_TILES4(5, 6, 7, 8, 1) SN_TILES4(9, 10, 11, 12, 1)
SN_TILES4(13, 14, 15, 16, 1) SN_TILES4(17, 18, 19, 20, 1) SN_TILES4(21, 22, 23, 24, 1)
SN_TILES4(25, 26, 27, 28, 1)
SN_TILES4(1, 2, 3, 4, 2) SN_TILES4(5, 6, 7, 8, 2) SN_TILES4(9, 10, 11, 12, 2)
SN_TILE(13, 2, 0) SN_TILE(14, 2, 0)
SN_TILES4(1, 2, 3, 4, 3) SN_TILES4(5, 6, 7, 8, 3) SN_TILE(9, 3, 0)
SN_TILES4(1, 2, 3, 4, 4) SN_TILE(5, 4, 0) SN_TILE(6, 4, 0) SN_TILE(7, 4, 0)
/* full tiles with the row strides of the small-channel layers as constants (resnet20 at
 * 28x28: every 3x3 forward and stride-1 backward-data row, and the stride-2 layers' backward
 * phases, 14x1 over 32-channel dy and 7x2 over 64) */
SN_TILE(28, 1, 16) SN_TILE(28, 1, 32) SN_TILE(28, 1, 64) SN_TILE(14, 2, 16) SN_TILE(14, 2, 32)
SN_TILE(14, 2, 64) SN_TILE(14, 2, 128) SN_TILE(14, 1, 32) SN_TILE(7, 2, 64) SN_TILE(7, 4, 64)

#define T1(R) tile_##R##_1_0
#define T2(R) tile_##R##_2_0
#define T3(R) tile_##R##_3_0
#define T4(R) tile_##R##_4_0
static const sn_conv_tile_fn k_tiles1[29] = {
    NULL,   T1(1),  T1(2),  T1(3),  T1(4),  T1(5),  T1(6),  T1(7),  T1(8),  T1(9),
    T1(10), T1(11), T1(12), T1(13), T1(14), T1(15), T1(16), T1(17), T1(18), T1(19),
    T1(20), T1(21), T1(22), T1(23), T1(24), T1(25), T1(26), T1(27), T1(28)};
/* clang-format on */
static const sn_conv_tile_fn k_tiles2[15] = {NULL,   T2(1),  T2(2),  T2(3),  T2(4),
                                             T2(5),  T2(6),  T2(7),  T2(8),  T2(9),
                                             T2(10), T2(11), T2(12), T2(13), T2(14)};
static const sn_conv_tile_fn k_tiles3[10] = {NULL,  T3(1), T3(2), T3(3), T3(4),
                                             T3(5), T3(6), T3(7), T3(8), T3(9)};
static const sn_conv_tile_fn k_tiles4[8] = {NULL, T4(1), T4(2), T4(3), T4(4), T4(5), T4(6), T4(7)};

sn_conv_tile_fn sn_conv_tile_pick(int r, int nv, ptrdiff_t lda) {
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

/* clang-format off */
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
static const sn_conv_tile_wgrad_fn k_wtiles1[29] = {
    NULL,   W1(1),  W1(2),  W1(3),  W1(4),  W1(5),  W1(6),  W1(7),  W1(8),  W1(9),
    W1(10), W1(11), W1(12), W1(13), W1(14), W1(15), W1(16), W1(17), W1(18), W1(19),
    W1(20), W1(21), W1(22), W1(23), W1(24), W1(25), W1(26), W1(27), W1(28)};
/* clang-format on */
static const sn_conv_tile_wgrad_fn k_wtiles2[15] = {NULL,   W2(1),  W2(2),  W2(3),  W2(4),
                                                    W2(5),  W2(6),  W2(7),  W2(8),  W2(9),
                                                    W2(10), W2(11), W2(12), W2(13), W2(14)};
static const sn_conv_tile_wgrad_fn k_wtiles3[10] = {NULL,  W3(1), W3(2), W3(3), W3(4),
                                                    W3(5), W3(6), W3(7), W3(8), W3(9)};
static const sn_conv_tile_wgrad_fn k_wtiles4[8] = {NULL,  W4(1), W4(2), W4(3),
                                                   W4(4), W4(5), W4(6), W4(7)};

sn_conv_tile_wgrad_fn sn_conv_tile_pick_wgrad(int mr, int nv) {
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

/* d[p * c + j] = act((s[p * c + j] - mean[j]) * scale[j] + shift[j]) for npix pixels (row
 * stride c) and the cw <= 64 channels j from j0: the operations of the batch norm's normalize
 * pass (bn.c affine_rows_avx512), so bitwise its output. The coefficients stay in registers. */
static inline __attribute__((always_inline)) void map_group(const int NV, float *d, const float *s,
                                                            size_t npix, int c, int j0, int cw,
                                                            const sn_conv_in *in) {
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
      __m512 x =
          _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k[v], s + 16 * v), m[v]), a[v], b[v]);
      if (in->relu) x = sn_relu_ps(x);
      _mm512_mask_storeu_ps(d + 16 * v, k[v], x);
    }
}

/* map_group over all c channels of npix pixels, 64 at a time. */
static void map_pixels(float *d, const float *s, size_t npix, int c, const sn_conv_in *in) {
  for (int j0 = 0; j0 < c; j0 += 64) {
    const int cw = imin(64, c - j0);
    switch ((cw + 15) / 16) {
    case 1:
      map_group(1, d, s, npix, c, j0, cw, in);
      break;
    case 2:
      map_group(2, d, s, npix, c, j0, cw, in);
      break;
    case 3:
      map_group(3, d, s, npix, c, j0, cw, in);
      break;
    default:
      map_group(4, d, s, npix, c, j0, cw, in);
      break;
    }
  }
}

/* One image x (H, W, Cin) into the zero-padded buffer (HP, WP, Cin), through the input map `in`
 * when not NULL (the padding stays zero: it pads the mapped tensor). The border is zeroed only
 * when `border` (the interior is rewritten by every image, the border never changes). */
void sn_conv_tile_pad_image(const dpass *d, const float *x, float *buf, int border,
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

#pragma GCC pop_options

int sn_conv_tile_team_size(int chunks) {
  int t = omp_get_max_threads();
  return imax(1, imin(t, chunks));
}
