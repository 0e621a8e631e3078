/* conv_direct.c - AVX-512 direct convolution (see conv_direct.h).
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
 * Runs only where the CPU has AVX-512 and g->opts.portable is 0 (conv.c checks). */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "conv_tiles.h"

/* x (padded) + dy bytes of the block of images whose weight gradient is summed together, and
 * the pixels one sweep of the weight-gradient tiles covers (wgrad_images) */
#define SN_WGRAD_BLOCK_BYTES (1 << 20)
#define SN_WGRAD_SWEEP_BYTES (256 << 10)
#define SN_WGRAD_SWEEP_PIX 256
/* weights (floats) above which the backward uses fewer chunks and longer weight-gradient bands */
#define SN_DIRECT_BIG_W 65536

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

/* y = act(conv(x) + bias + res) for one image; bp packed (packed_floats(KH*KW*Cin, Cout)). */
static void pass_image(const dpass *d, const float *x, const sn_conv_in *in, const float *bp,
                       const float *bias, const float *res, int relu, float *y, float *padbuf,
                       int border) {
  const float *src = x;
  if (d->padded) {
    sn_conv_tile_pad_image(d, x, padbuf, border, in);
    src = padbuf;
  }
  const int cin = d->cin, cout = d->cout;
  const ptrdiff_t k = (ptrdiff_t)d->kh * d->kw * cin, kseg = (ptrdiff_t)d->kw * cin;
  const ptrdiff_t lda = (ptrdiff_t)d->sw * cin, sa = (ptrdiff_t)d->wp * cin;
  for (int cb = 0; cb < cout; cb += SN_TILE_NB) {
    const int cols = imin(SN_TILE_NB, cout - cb), nv = ceil_div(cols, 16), rmax = k_rmax[nv];
    const float *b = bp + k * cb;
    const int nt = ceil_div(d->ow, rmax);
    for (int oy = 0; oy < d->oh; oy++) {
      const float *arow = src + (ptrdiff_t)oy * d->sh * sa;
      for (int t = 0; t < nt; t++) {
        const int ox0 = (int)((long)d->ow * t / nt), ox1 = (int)((long)d->ow * (t + 1) / nt);
        const ptrdiff_t o = ((ptrdiff_t)oy * d->ow + ox0) * cout + cb;
        sn_conv_tile_pick(ox1 - ox0, nv, lda)(arow + ox0 * lda, lda, d->kh, sa, (int)kseg, b, y + o,
                                              cout, cols, bias ? bias + cb : NULL,
                                              res ? res + o : NULL, relu);
      }
    }
  }
}

/* partial (KH*KW*Cin, Cout) += weight gradient of nimg images (srcs: x of each, padded as in
 * pass_image; dys: dy of each); with `first`, partial = 0 + it (partial is not read). The output
 * rows (or, for a pointwise image, its pixels) are swept in bands whose x and dy take about
 * SN_WGRAD_SWEEP_BYTES, each band by every weight tile: the band's dy columns and x rows are reused
 * from L2 by all the tiles (as a GEMM's blocks); a band has at least SN_WGRAD_SWEEP_PIX pixels when
 * the weights are large (the read-modify-write of a tile of the partial is amortised over the
 * band's pixels). Every weight tile sums a band's images in order; the bands are added in order. */
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
  const int minpix = nw > SN_DIRECT_BIG_W ? SN_WGRAD_SWEEP_PIX : SN_WGRAD_SWEEP_PIX / 8;
  const int band =
      imax(1, imin(total, imax(ceil_div(minpix, per), (int)(SN_WGRAD_SWEEP_BYTES / unit))));
  for (int u0 = 0; u0 < total; u0 += band) {
    const int nu = imin(band, total - u0);
    const ptrdiff_t aoff = rows ? (ptrdiff_t)u0 * d->sh * sa : (ptrdiff_t)u0 * lpix;
    const ptrdiff_t doff = rows ? (ptrdiff_t)u0 * d->ow * cout : (ptrdiff_t)u0 * cout;
    for (int cb = 0; cb < cout; cb += SN_TILE_NB) {
      const int cols = imin(SN_TILE_NB, cout - cb), nv = ceil_div(cols, 16), rmax = k_rmax[nv];
      const int nt = ceil_div((int)kseg, rmax);
      for (int ky = 0; ky < d->kh; ky++)
        for (int t = 0; t < nt; t++) {
          const int k0 = (int)(kseg * t / nt), k1 = (int)(kseg * (t + 1) / nt);
          sn_conv_tile_pick_wgrad(k1 - k0, nv)(
              srcs, dys, nimg, aoff + ky * sa + k0, doff + cb, lpix, d->sh * sa, cout,
              (ptrdiff_t)d->ow * cout, rows ? nu : 1, rows ? d->ow : nu, cols,
              partial + (ky * kseg + k0) * cout + cb, cout, first && u0 == 0);
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
  for (int cb = 0; cb < n; cb += SN_TILE_NB) {
    const int cols = imin(SN_TILE_NB, n - cb), ldb = 16 * ceil_div(cols, 16);
    float *d = bp + (size_t)k * cb + (size_t)kr * ldb;
    memcpy(d, src + cb, (size_t)cols * sizeof(float));
    for (int j = cols; j < ldb; j++)
      d[j] = 0.0f;
  }
}

/* Backward of layers with large weights: fewer chunks (each chunk's dW partial is read and
 * written once per block of images, and summed at the end). */
#define SN_DIRECT_BWD_CHUNKS_BIG 4
/* A weight tile of the gradient sweeps the x (padded) and dy of a block of images: as many as
 * fit this budget (at least one, at most SN_WGRAD_MAX_IMAGES), so that large weights are
 * read-modify-written once per block rather than once per image. */
#define SN_WGRAD_MAX_IMAGES 32

static int bwd_chunks(const sn_conv_geom *g) {
  const size_t nw = (size_t)g->kh * g->kw * g->cin * g->cout;
  return imin(g->n, nw > SN_DIRECT_BIG_W ? SN_DIRECT_BWD_CHUNKS_BIG : SN_CONV_CHUNKS);
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

size_t sn_conv_direct_forward_workspace(const sn_conv_geom *g) {
  dpass d;
  fwd_pass_of(g, &d);
  return packed_floats(g->kh * g->kw * g->cin, g->cout) +
         (size_t)sn_conv_tile_chunks(g->n) * dpass_pad_floats(&d);
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

size_t sn_conv_direct_backward_workspace(const sn_conv_geom *g) {
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
  for (int c0 = 0; c0 < cin; c0 += SN_TILE_NB) {
    const int cols = imin(SN_TILE_NB, cin - c0), ldb = 16 * ceil_div(cols, 16);
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
        for (int cb = 0; cb < cin; cb += SN_TILE_NB) {
          const int cols = imin(SN_TILE_NB, cin - cb), nv = ceil_div(cols, 16);
          const int rmax = k_rmax[nv], nt = ceil_div(nr, rmax);
          const float *b = bp + boff + (size_t)kph * cb;
          for (int t = 0; t < nt; t++) {
            const int a0 = (int)((long)nr * t / nt), a1 = (int)((long)nr * (t + 1) / nt);
            const int r = r0 + a0;
            float *c = dx + ((size_t)iy * g->w + ix0 + (size_t)a0 * sw) * cin + cb;
            sn_conv_tile_pick(a1 - a0, nv, cout)(arow + (ptrdiff_t)(r - tx + 1 + d->pl) * cout,
                                                 cout, ty, sa, tx * cout, b, c, (ptrdiff_t)sw * cin,
                                                 cols, NULL, acc ? c : NULL, 0);
          }
        }
      }
      boff += (size_t)kph * round16((size_t)cin);
    }
  }
}

void sn_conv_direct_forward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                            const float *w, const float *bias, const float *res, int relu, float *y,
                            float *ws) {
  dpass d;
  fwd_pass_of(g, &d);
  const int k = g->kh * g->kw * g->cin, nch = sn_conv_tile_chunks(g->n);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_img = (size_t)g->oh * g->ow * g->cout;
  /* one column block of whole vectors is the HWIO tensor itself */
  const int inplace = g->cout % 16 == 0 && g->cout <= SN_TILE_NB;
  float *pads = ws + packed_floats(k, g->cout);
  const float *bp = inplace ? w : ws;
  const size_t padn = dpass_pad_floats(&d);
#pragma omp parallel num_threads(sn_conv_tile_team_size(nch))
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
void sn_conv_direct_backward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
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
#pragma omp parallel num_threads(sn_conv_tile_team_size(nch))
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
              sn_conv_tile_pad_image(&d, x + i * in_img, base + (size_t)(i - ib) * padx, ib == i0,
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
            sn_conv_tile_pad_image(&b.pad, dyi, dypad, i == i0, NULL);
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
