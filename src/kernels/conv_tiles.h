/* conv_tiles.h - private to src/kernels: the direct tile kernels (AVX-512) and what the drivers
 * built on them share: the packed-weight layout, the zero-padded copy of an image (through an
 * input map) and the split of a batch into chunks of whole images. The direct convolution
 * (conv_direct.c) and the training Winograd path (conv_wino.c) run their products on these
 * tiles. A leaf: it calls nothing of the other convolution files. */
#ifndef SN_CONV_TILES_H
#define SN_CONV_TILES_H

#include <stddef.h>

#include "conv_util.h"
#include "kernels.h"

#define SN_TILE_NB 64 /* output channels per column block (NV <= 4 vectors) */
/* Chunks of whole images a batch is split into at most (each chunk owns a slice of the
 * workspace and runs on one thread at a time). */
#define SN_CONV_CHUNKS 8

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
typedef void (*sn_conv_tile_fn)(const float *a, ptrdiff_t lda, int nseg, ptrdiff_t sa, int kseg,
                                const float *b, float *c, ptrdiff_t ldc, int cols,
                                const float *bias, const float *res, int relu);
sn_conv_tile_fn sn_conv_tile_pick(int r, int nv, ptrdiff_t lda);

/* Weight-gradient tile: out (MR, cols) += sum over images im < nimg, rows and pixels of
 * a_p[m] * d_p[0, cols), a_p = as[im] + aoff + row*lrow + p*lpix, d_p = ds[im] + doff +
 * row*drow + p*dpix; with `first`, out is not read: out = 0 + the sum (bitwise the same as
 * zeroing out first). MR <= k_rmax[nv]. AVX-512. */
typedef void (*sn_conv_tile_wgrad_fn)(const float *const *as, const float *const *ds, int nimg,
                                      ptrdiff_t aoff, ptrdiff_t doff, ptrdiff_t lpix,
                                      ptrdiff_t lrow, ptrdiff_t dpix, ptrdiff_t drow, int nrows,
                                      int npix, int cols, float *out, ptrdiff_t ldo, int first);
sn_conv_tile_wgrad_fn sn_conv_tile_pick_wgrad(int mr, int nv);

/* One image x (H, W, Cin) into the zero-padded buffer (HP, WP, Cin) of d, through the input map
 * in (NULL: a copy); the border is written only when `border` (it never changes between
 * images). AVX-512. */
void sn_conv_tile_pad_image(const dpass *d, const float *x, float *buf, int border,
                            const sn_conv_in *in);

/* Chunks of whole images of a batch of n, and the OpenMP team for them. */
static inline int sn_conv_tile_chunks(int n) { return imin(n, SN_CONV_CHUNKS); }
int sn_conv_tile_team_size(int chunks);

#endif /* SN_CONV_TILES_H */
