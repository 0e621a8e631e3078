/* conv_direct_impl.h - private to conv_direct.c and conv_wino.c: the pieces the direct
 * training convolution and its Winograd path share (tile kernels, padding, packing layout,
 * chunking). See conv_direct.h. */
#ifndef SN_CONV_DIRECT_IMPL_H
#define SN_CONV_DIRECT_IMPL_H

#include <stddef.h>

#include "conv_direct.h"

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

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
  int hp, wp; /* rows and columns of the (padded) input the tiles read */
  int padded; /* 1: x is first copied into a zero-padded buffer */
} dpass;

static inline void dpass_init(dpass *d, int h, int w, int cin, int kh, int kw, int sh, int sw,
                              int pt, int pl, int pb, int pr, int cout) {
  d->h = h;
  d->w = w;
  d->cin = cin;
  d->kh = kh;
  d->kw = kw;
  d->sh = sh;
  d->sw = sw;
  d->pt = pt;
  d->pl = pl;
  d->pb = pb;
  d->pr = pr;
  d->cout = cout;
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

static inline size_t dpass_pad_floats(const dpass *d) {
  return d->padded ? round16((size_t)d->hp * d->wp * d->cin) : 0;
}

/* Packed B: K rows x Cout columns as column blocks of 64 (the last one 16 * ceil(cols/16) wide,
 * zero padded); block cb starts at K * cb * 64. */
static inline size_t packed_floats(int k, int n) {
  return round16((size_t)k * (size_t)round16((size_t)n));
}

/* Forward tile: c (R, cols) = act(sum_s A_s . B_s + bias + res) with A_s row r at
 * a + s*sa + r*lda (kseg floats) and B_s = b + s*kseg*16*NV (packed rows of 16*NV floats); res
 * has row stride ldc. R <= k_rmax[nv]. AVX-512. */
typedef void (*sn_dconv_tile_fn)(const float *a, ptrdiff_t lda, int nseg, ptrdiff_t sa, int kseg,
                                 const float *b, float *c, ptrdiff_t ldc, int cols,
                                 const float *bias, const float *res, int relu);
sn_dconv_tile_fn sn_dconv_pick_tile(int r, int nv, ptrdiff_t lda);

/* Weight-gradient tile: out (MR, cols) += sum over images im < nimg, rows and pixels of
 * a_p[m] * d_p[0, cols), a_p = as[im] + aoff + row*lrow + p*lpix, d_p = ds[im] + doff +
 * row*drow + p*dpix; with `first`, out is not read: out = 0 + the sum (bitwise the same as
 * zeroing out first). MR <= k_rmax[nv]. AVX-512. */
typedef void (*sn_dconv_wtile_fn)(const float *const *as, const float *const *ds, int nimg,
                                  ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix, ptrdiff_t lrow,
                                  ptrdiff_t dpix, ptrdiff_t drow, int nrows, int npix, int cols,
                                  float *out, ptrdiff_t ldo, int first);
sn_dconv_wtile_fn sn_dconv_pick_wtile(int mr, int nv);

/* One image x (H, W, Cin) into the zero-padded buffer (HP, WP, Cin) of d, through the input map
 * in (NULL: a copy); the border is written only when `border` (it never changes between
 * images). AVX-512. */
void sn_dconv_pad_image(const dpass *d, const float *x, float *buf, int border,
                        const sn_conv_in *in);

/* Chunks of whole images of a batch of n, and the OpenMP team for them. */
static inline int sn_dconv_chunks(int n) { return imin(n, SN_DCONV_CHUNKS); }
int sn_dconv_team_size(int chunks);

/* Winograd F(2x2, 3x3) for 3x3 stride-1 training convolutions (conv_wino.c). */
int sn_dconv_wino_valid(const sn_conv_geom *g);    /* 3x3, stride 1, padding <= 2 */
int sn_dconv_wino_eligible(const sn_conv_geom *g); /* valid and chosen (size rule, opts) */
size_t sn_dconv_wino_forward_workspace(const sn_conv_geom *g);
size_t sn_dconv_wino_backward_workspace(const sn_conv_geom *g);
void sn_dconv_wino_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                           const float *res, int relu, float *y, float *ws);
void sn_dconv_wino_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *ws);

#endif /* SN_CONV_DIRECT_IMPL_H */
