/* conv_wino.c - Winograd convolutions for 3x3 stride-1 layers (conv_wino.h), NHWC (Lavin & Gray
 * 2015; matrices in docs/kernels.md).
 *
 * F(m x m, 3x3), m = 4 or 2: Y = A^T [ U (.) V ] A per a x a input tile d (a = m + 2, stride m),
 * U = G g G^T (plan time), V = B^T d B. Summed over channels this is P = a^2 GEMMs (36 or 16):
 * M[xi] (tiles, Cout) = V[xi] (tiles, Cin) . U[xi] (Cin, Cout). F(4x4) does 4x fewer
 * multiplications than the direct convolution, F(2x2) 2.25x; but U is P Cin Cout floats, and
 * at batch 1 on 14x14x256 (resnet50's layer 3) F(4x4) streams 9.4 MB of U per layer for 16
 * tiles, F(2x2) 4.2 MB (conv.c's cost rule picks between them).
 * Inference (any zero padding): tiles (img, ty, tx) are numbered in one flat list and processed
 * in bands:
 *   1. input transform of the band, written straight into GEMM A panels:
 *      Vp[xi][kblock][panel][MR][SN_LDA] (K = Cin in blocks of sn_conv_gemm_kc(Cin))
 *   2. P GEMMs into Mb[xi][tile][Cout] (U packed once as GEMM B panels)
 *   3. output transform, fused with bias, residual and ReLU, into y.
 * With many tiles each thread runs whole bands on its own (V and M stay in its L2); with few
 * tiles (batch 1, 14x14) all threads share one band and split each phase, so U is read once.
 *
 * Training, F(2x2, 3x3) with padding <= 2 (forward, backward data with the flipped kernel,
 * weight gradient): 2.25x fewer multiplications (docs/kernels.md); measured error no larger
 * than the direct kernels' (relative RMS 1-5e-7 on the resnet20/50 shapes). Per image, in bands
 * of tile rows so that V and M stay in L2, on the direct tiles (conv_tiles.h):
 *   forward:  V = B^T d B of every 4x4 input patch (stride 2) of the zero-padded image;
 *             M[xi,nu] (tiles, Cout) = V[xi,nu] (tiles, Cin) . U[xi,nu] (Cin, Cout) - 16 GEMMs
 *             with the tile kernel, U = G g G^T packed per call; y = A^T M A (+ bias, res, ReLU).
 *   dW:       dU[xi,nu] (Cin, Cout) += V[xi,nu]^T . dM[xi,nu] with dM = A dY A^T of the 2x2 dy
 *             blocks (the weight-gradient tile kernel, reduction over tiles); per-chunk partials
 *             are summed in chunk order, then dW = G^T dU G.
 *   dx:       the forward pass of dy (padded by 2 - p) with U of the flipped, transposed kernel.
 * U and G^T dU G are computed in double and rounded once.
 *
 * Shared: the 1-D transforms of F(2x2) (bt4, at4) serve both paths, the same operations in the
 * same order. The weight transforms stay apart: inference forms U = G g G^T as products with
 * every entry of G (zeros included), training as the factored sums 0.5 (g0 + g1 + g2); both in
 * double, they agree on finite weights except for the sign of a zero, and the layouts differ
 * (GEMM B panels against tile column blocks), so each keeps its body and its bits. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_gemm_block.h"
#include "conv_tiles.h"
#include "conv_util.h"
#include "conv_wino.h"
#include "relu.h"

#define SN_WINO_INFER_BAND_FLOATS 262144 /* inference: Vp + Mb of one thread's band: 1 MiB */
#define SN_WINO_TRAIN_BAND_FLOATS 65536  /* training: V or M of one band: 256 KiB */

/* ------------------------------------------------------------ inference: portable parts */

/* input points per tile side (a) and GEMMs (P = a^2) of F(m x m, 3x3) */
static int wino_a(int m) { return m + 2; }
static int wino_p(int m) { return wino_a(m) * wino_a(m); }

size_t sn_conv_wino_u_floats(int m, int cin, int cout) {
  return (size_t)wino_p(m) * sn_conv_gemm_packb_floats(cin, cout);
}

void sn_conv_wino_pack_u(int m, int cin, int cout, const float *w, float *u) {
  static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                  {0, 0, 1}};
  static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const double(*G)[3] = m == 2 ? G2 : G4;
  const int a = wino_a(m);
  size_t pb = sn_conv_gemm_packb_floats(cin, cout);
  int kc = sn_conv_gemm_kc(cin), npan = ceil_div(cout, SN_NR);
  memset(u, 0, (size_t)wino_p(m) * pb * sizeof(float));
  for (int ci = 0; ci < cin; ci++) {
    int k0 = ci / kc * kc, kcur = imin(kc, cin - k0);
    for (int co = 0; co < cout; co++) {
      double g[3][3], gg[6][3];
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
          g[a][b] = w[((size_t)(a * 3 + b) * cin + ci) * cout + co];
      for (int i = 0; i < a; i++)
        for (int b = 0; b < 3; b++)
          gg[i][b] = G[i][0] * g[0][b] + G[i][1] * g[1][b] + G[i][2] * g[2][b];
      /* the packed B position of (ci, co), as sn_conv_gemm_packb lays it out */
      float *dst = (float *)sn_conv_gemm_bblock(u, npan, k0) + (size_t)(co / SN_NR) * kcur * SN_NR +
                   (size_t)(ci - k0) * SN_NR + co % SN_NR;
      for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++)
          dst[(size_t)(i * a + j) * pb] =
              (float)(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
    }
  }
}

/* Tiles per band of one thread: Vp and Mb of the band fit SN_WINO_INFER_BAND_FLOATS (L2), but at
 * least 56 tiles (112 when U exceeds 4 MiB): each band reads all of U (P Cin Cout floats,
 * 9.4 MB at 256 channels for F(4x4)), so for wide layers a band that spills to L3 beats
 * re-streaming U every few tiles (measured at 14x14x256, batch 8: 14-tile bands 53 GFLOP/s in
 * the GEMMs, 112-tile bands 109). Never more than a thread's share of the T tiles (workspace). */
static int band_tiles(int P, int cin, int cout, int T, int nt) {
  int tb = SN_WINO_INFER_BAND_FLOATS / (P * (cin + cout)) / SN_MR * SN_MR;
  int min_tb = (size_t)P * cin * cout * sizeof(float) > (4u << 20) ? 8 * SN_MR : 4 * SN_MR;
  tb = imin(imax(tb, min_tb), 16 * SN_MR);
  return imin(tb, ceil_div(ceil_div(T, nt), SN_MR) * SN_MR);
}

static int tiles(int m, const sn_conv_geom *g) {
  return g->n * ceil_div(g->oh, m) * ceil_div(g->ow, m);
}

/* Per-thread band buffers: Vp (P x K blocks x panels of SN_PANEL) and Mb (P, tb, Cout). */
static size_t vp_floats(int P, int cin, int tb) {
  return (size_t)P * ceil_div(cin, sn_conv_gemm_kc(cin)) * ceil_div(tb, SN_MR) * SN_PANEL;
}

size_t sn_conv_wino_packed_workspace(int m, const sn_conv_geom *g, int nthreads) {
  int nt = imax(1, nthreads), P = wino_p(m);
  int tb = band_tiles(P, g->cin, g->cout, tiles(m, g), nt); /* grows with the batch */
  return (size_t)nt * (vp_floats(P, g->cin, tb) + (size_t)P * tb * g->cout) + 64;
}

/* ------------------------------------------------------------ training: portable parts */

/* One Winograd pass over one image: (h, w, cin) padded by (pt, pl) -> (oh, ow, cout). */
typedef struct wplan {
  int th, tw; /* 2x2 output tiles */
  int bh;     /* tile rows per band */
  int oh, ow, cin, cout;
  dpass pad; /* the input into a (2*th + 2) x (2*tw + 2) zero-padded buffer */
} wplan;

static void wplan_init(wplan *p, int h, int w, int cin, int pt, int pl, int oh, int ow, int cout) {
  p->th = ceil_div(oh, 2);
  p->tw = ceil_div(ow, 2);
  p->oh = oh;
  p->ow = ow;
  p->cin = cin;
  p->cout = cout;
  const int tiles = imax(p->tw, SN_WINO_TRAIN_BAND_FLOATS / (16 * imax(cin, cout)));
  p->bh = imax(1, imin(p->th, tiles / p->tw));
  dpass *d = &p->pad;
  memset(d, 0, sizeof *d);
  d->h = h;
  d->w = w;
  d->cin = cin;
  d->pt = pt;
  d->pl = pl;
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
static size_t train_u_floats(int cin, int cout) { return 16 * packed_floats(cin, cout); }

size_t sn_conv_wino_forward_workspace(const sn_conv_geom *g) {
  wplan f;
  wplan_fwd(g, &f);
  return train_u_floats(g->cin, g->cout) +
         (size_t)sn_conv_tile_chunks(g->n) * (wplan_pad_floats(&f) + 2 * wplan_band_floats(&f));
}

static size_t wino_chunk_floats(const sn_conv_geom *g) {
  wplan f, b;
  wplan_fwd(g, &f);
  wplan_bwd(g, &b);
  const size_t band =
      wplan_band_floats(&f) > wplan_band_floats(&b) ? wplan_band_floats(&f) : wplan_band_floats(&b);
  return wplan_pad_floats(&f) + wplan_pad_floats(&b) + 2 * band +
         round16((size_t)16 * g->cin * g->cout);
}

size_t sn_conv_wino_backward_workspace(const sn_conv_geom *g) {
  return train_u_floats(g->cout, g->cin) + (size_t)sn_conv_tile_chunks(g->n) * wino_chunk_floats(g);
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
    const int cb = co / SN_TILE_NB * SN_TILE_NB;
    const int cols = imin(SN_TILE_NB, cout - cb), ldb = 16 * ceil_div(cols, 16);
    for (int q = 0; q < 16; q++) {
      float *dst = u + (size_t)q * uplane + (size_t)cin * cb + (size_t)ci * ldb;
      dst[co - cb] = (float)uu[q / 4][q % 4];
      if (co == cb + cols - 1)
        for (int j = cols; j < ldb; j++)
          dst[j] = 0.0f;
    }
  }
}

/* ------------------------------------------------------------ AVX-512 transforms */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

/* 1-D B^T: o = B^T d for 6 vectors (F(4x4,3x3) points 0, +-1, +-2, inf). */
static inline void bt6(const __m512 d[6], __m512 o[6]) {
  const __m512 c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f), c2 = _mm512_set1_ps(2.0f);
  __m512 t0 = _mm512_fnmadd_ps(c4, d[2], d[4]); /* d4 - 4 d2 */
  __m512 t1 = _mm512_fnmadd_ps(c4, d[1], d[3]); /* d3 - 4 d1 */
  __m512 t2 = _mm512_sub_ps(d[4], d[2]);
  __m512 t3 = _mm512_mul_ps(c2, _mm512_sub_ps(d[3], d[1]));
  o[0] = _mm512_fmadd_ps(c4, d[0], _mm512_fnmadd_ps(c5, d[2], d[4]));
  o[1] = _mm512_add_ps(t0, t1);
  o[2] = _mm512_sub_ps(t0, t1);
  o[3] = _mm512_add_ps(t2, t3);
  o[4] = _mm512_sub_ps(t2, t3);
  o[5] = _mm512_fmadd_ps(c4, d[1], _mm512_fnmadd_ps(c5, d[3], d[5]));
}

/* 1-D A^T: 6 -> 4. */
static inline void at6(const __m512 m[6], __m512 o[4]) {
  const __m512 c2 = _mm512_set1_ps(2.0f), c4 = _mm512_set1_ps(4.0f), c8 = _mm512_set1_ps(8.0f);
  __m512 s1 = _mm512_add_ps(m[1], m[2]), d1 = _mm512_sub_ps(m[1], m[2]);
  __m512 s2 = _mm512_add_ps(m[3], m[4]), d2 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s1), s2);
  o[1] = _mm512_fmadd_ps(c2, d2, d1);
  o[2] = _mm512_fmadd_ps(c4, s2, s1);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(c8, d2, d1), m[5]);
}

/* 1-D B^T of F(2x2, 3x3) (points 0, +-1, inf): 4 -> 4. */
static inline void bt4(const __m512 d[4], __m512 o[4]) {
  o[0] = _mm512_sub_ps(d[0], d[2]);
  o[1] = _mm512_add_ps(d[1], d[2]);
  o[2] = _mm512_sub_ps(d[2], d[1]);
  o[3] = _mm512_sub_ps(d[1], d[3]);
}

/* 1-D A^T of F(2x2, 3x3): 4 -> 2. */
static inline void at4(const __m512 m[4], __m512 o[2]) {
  __m512 d = _mm512_sub_ps(m[1], m[2]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]);
  o[1] = _mm512_sub_ps(d, m[3]);
}

/* o = B^T d over A = 6 or 4 points (inlined with a constant A) */
static inline __attribute__((always_inline)) void bt_n(const int A, const __m512 *d, __m512 *o) {
  if (A == 6)
    bt6(d, o);
  else
    bt4(d, o);
}

/* o = A^T m over A = 6 or 4 points */
static inline __attribute__((always_inline)) void at_n(const int A, const __m512 *m, __m512 *o) {
  if (A == 6)
    at6(m, o);
  else
    at4(m, o);
}

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
        __m512 t[4][4]; /* t[.][j] = B^T of column j of the patch, then each row */
        for (int j = 0; j < 4; j++) {
          const __m512 d[4] = {_mm512_maskz_loadu_ps(k, base + j * c + c0),
                               _mm512_maskz_loadu_ps(k, base + row + j * c + c0),
                               _mm512_maskz_loadu_ps(k, base + 2 * row + j * c + c0),
                               _mm512_maskz_loadu_ps(k, base + 3 * row + j * c + c0)};
          __m512 o[4];
          bt4(d, o);
          t[0][j] = o[0];
          t[1][j] = o[1];
          t[2][j] = o[2];
          t[3][j] = o[3];
        }
        for (int i = 0; i < 4; i++) {
          float *o = vp + (size_t)(4 * i) * plane + c0;
          __m512 r[4];
          bt4(t[i], r);
          _mm512_mask_storeu_ps(o, k, r[0]);
          _mm512_mask_storeu_ps(o + plane, k, r[1]);
          _mm512_mask_storeu_ps(o + 2 * plane, k, r[2]);
          _mm512_mask_storeu_ps(o + 3 * plane, k, r[3]);
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
        __m512 u[2][4]; /* u[.][j] = A^T of column j of M, then each row */
        for (int j = 0; j < 4; j++) {
          const __m512 mv[4] = {_mm512_maskz_loadu_ps(k, mp + (size_t)j * plane + c0),
                                _mm512_maskz_loadu_ps(k, mp + (size_t)(4 + j) * plane + c0),
                                _mm512_maskz_loadu_ps(k, mp + (size_t)(8 + j) * plane + c0),
                                _mm512_maskz_loadu_ps(k, mp + (size_t)(12 + j) * plane + c0)};
          __m512 o[2];
          at4(mv, o);
          u[0][j] = o[0];
          u[1][j] = o[1];
        }
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(k, bias + c0) : zero;
        for (int i = 0; i < 2; i++) {
          const int oy = 2 * tr + i;
          if (oy >= oh) break;
          __m512 o[2];
          at4(u[i], o);
          for (int j = 0; j < 2; j++) {
            const int ox = 2 * tc + j;
            if (ox >= ow) break;
            const size_t off = ((size_t)oy * ow + ox) * c + c0;
            __m512 v = _mm512_add_ps(o[j], bv);
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + off));
            if (relu) v = sn_relu_ps(v);
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
        const __m512 d =
            in01 && in10 ? _mm512_maskz_loadu_ps(k, p00 + (size_t)ow * c + c + c0) : zero;
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

/* ------------------------------------------------------------ inference: drivers */

typedef struct wino_ctx {
  const sn_conv_geom *g;
  const float *x, *u, *bias, *res;
  float *y;
  int relu;
  int m, P;    /* output tile size (4 or 2), GEMMs (wino_p) */
  int tw, tpi; /* tiles per row, tiles per image */
  int kc, nkb; /* K block (sn_conv_gemm_kc(Cin)) and number of K blocks */
  size_t upb;  /* floats per packed U[xi] */
} wino_ctx;

/* V of band tile tl (image img, tile row ty, column tx), channels [c0, c0 + 16), into its rows
 * of the A panels. A = a (6 or 4), M = m: constants after inlining. */
static inline __attribute__((always_inline)) void input_chunk(const int A, const int M,
                                                              const wino_ctx *w, int np, int tl,
                                                              int img, int ty, int tx, int ch,
                                                              float *vp) {
  const sn_conv_geom *g = w->g;
  int c0 = ch * 16, kr = imin(16, g->cin - c0);
  __mmask16 cm = lane_mask(kr);
  int iy0 = M * ty - g->pt, ix0 = M * tx - g->pl;
  const float *base = w->x + (size_t)img * g->h * g->w * g->cin + c0;
  /* rows [i_lo, i_hi) and columns [j_lo, j_hi) of the A x A patch are inside x, the rest is 0 */
  int i_lo = imax(0, -iy0), i_hi = imin(A, g->h - iy0);
  int j_lo = imax(0, -ix0), j_hi = imin(A, g->w - ix0);
  const __m512 zero = _mm512_setzero_ps();
  /* column by column: c[.][j] = B^T d[.][j] (A loads live at a time); then rows */
  __m512 c[6][6];
  for (int j = 0; j < A; j++) {
    __m512 col[6], o[6];
    int jin = j >= j_lo && j < j_hi;
    for (int i = 0; i < A; i++)
      col[i] =
          jin && i >= i_lo && i < i_hi
              ? _mm512_maskz_loadu_ps(cm, base + ((size_t)(iy0 + i) * g->w + (ix0 + j)) * g->cin)
              : zero;
    bt_n(A, col, o);
    for (int i = 0; i < A; i++)
      c[i][j] = o[i];
  }
  int kb = c0 / w->kc, p = tl / SN_MR, r = tl % SN_MR;
  float *dst = vp + ((size_t)kb * np + p) * SN_PANEL + (size_t)r * SN_LDA + (c0 - kb * w->kc);
  size_t xstride = (size_t)w->nkb * np * SN_PANEL;
  for (int i = 0; i < A; i++) {
    __m512 o[6];
    bt_n(A, c[i], o);
    for (int j = 0; j < A; j++)
      _mm512_mask_storeu_ps(dst + (size_t)(i * A + j) * xstride, cm, o[j]);
  }
}

/* Phase 1 item: all channels of tile t0 + tl (one division per tile, not per chunk). */
static void input_item(const wino_ctx *w, int t0, int np, int tl, float *vp) {
  int t = t0 + tl, nch = ceil_div(w->g->cin, 16);
  int img = t / w->tpi, rem = t % w->tpi, ty = rem / w->tw, tx = rem % w->tw;
  if (w->m == 2)
    for (int ch = 0; ch < nch; ch++)
      input_chunk(4, 2, w, np, tl, img, ty, tx, ch, vp);
  else
    for (int ch = 0; ch < nch; ch++)
      input_chunk(6, 4, w, np, tl, img, ty, tx, ch, vp);
}

/* The U panel of GEMM item it (position it / npan, column panel it % npan), K block kb. */
static const float *u_panel(const wino_ctx *w, int it, int kb) {
  int npan = ceil_div(w->g->cout, SN_NR), k0 = kb * w->kc, kcur = imin(w->kc, w->g->cin - k0);
  return sn_conv_gemm_bblock(w->u + (size_t)(it / npan) * w->upb, npan, k0) +
         (size_t)(it % npan) * kcur * SN_NR;
}

/* Phase 2 item it: GEMM of position xi = it / npan, output column panel j = it % npan. next:
 * the item this thread runs after it, or -1: the later A panels of each K block prefetch the
 * next K block's U panel, or next's first one (at batch 1 every U panel comes from memory:
 * conv_bench --cold 300, 14x14x256, F(2x2) 0.98 ms without this). */
static void gemm_item(const wino_ctx *w, int bt, int np, int it, int next, const float *vp,
                      float *mb) {
  int cin = w->g->cin, cout = w->g->cout;
  int npan = ceil_div(cout, SN_NR), xi = it / npan, n0 = it % npan * SN_NR;
  for (int kb = 0; kb < w->nkb; kb++) {
    int k0 = kb * w->kc, kcur = imin(w->kc, cin - k0);
    const float *bn = kb + 1 < w->nkb ? u_panel(w, it, kb + 1)
                      : next >= 0     ? u_panel(w, next, 0)
                                      : NULL;
    sn_conv_gemm_block(bt, imin(SN_NR, cout - n0), kcur,
                       vp + ((size_t)xi * w->nkb + kb) * np * SN_PANEL, u_panel(w, it, kb),
                       (size_t)kcur * SN_NR, mb + (size_t)xi * bt * cout + n0, cout,
                       kb > 0 ? SN_GEMM_ACC : 0, NULL, NULL, 0, 0, bn);
  }
}

/* Output transform of band tile tl (image img, tile row ty, column tx), channel chunk ch, with
 * the fused epilogue. A = a, M = m as in input_chunk. */
static inline __attribute__((always_inline)) void output_chunk(const int A, const int M,
                                                               const wino_ctx *w, int bt, int tl,
                                                               int img, int ty, int tx, int ch,
                                                               const float *mb) {
  const sn_conv_geom *g = w->g;
  int cout = g->cout;
  int c0 = ch * 16, kr = imin(16, cout - c0);
  __mmask16 cm = lane_mask(kr);
  __m512 c[4][6];
  for (int j = 0; j < A; j++) {
    __m512 col[6], o[4];
    for (int i = 0; i < A; i++)
      col[i] = _mm512_maskz_loadu_ps(cm, mb + ((size_t)(i * A + j) * bt + tl) * cout + c0);
    at_n(A, col, o);
    for (int a = 0; a < M; a++)
      c[a][j] = o[a];
  }
  __m512 bias = w->bias ? _mm512_maskz_loadu_ps(cm, w->bias + c0) : _mm512_setzero_ps();
  for (int a = 0; a < M; a++) {
    int oy = M * ty + a;
    if (oy >= g->oh) break;
    __m512 o[4];
    at_n(A, c[a], o);
    for (int b = 0; b < M; b++) {
      int ox = M * tx + b;
      if (ox >= g->ow) break;
      size_t off = (((size_t)img * g->oh + oy) * g->ow + ox) * cout + c0;
      __m512 v = _mm512_add_ps(o[b], bias);
      if (w->res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm, w->res + off));
      if (w->relu) v = sn_relu_ps(v);
      _mm512_mask_storeu_ps(w->y + off, cm, v);
    }
  }
}

/* Phase 3 item: all channels of tile t0 + tl. */
static void output_item(const wino_ctx *w, int t0, int bt, int tl, const float *mb) {
  int t = t0 + tl, nco = ceil_div(w->g->cout, 16);
  int img = t / w->tpi, rem = t % w->tpi, ty = rem / w->tw, tx = rem % w->tw;
  if (w->m == 2)
    for (int ch = 0; ch < nco; ch++)
      output_chunk(4, 2, w, bt, tl, img, ty, tx, ch, mb);
  else
    for (int ch = 0; ch < nco; ch++)
      output_chunk(6, 4, w, bt, tl, img, ty, tx, ch, mb);
}

/* One band [t0, t0 + bt) run by one thread. */
static void band_alone(const wino_ctx *w, int t0, int bt, float *vp, float *mb) {
  int np = ceil_div(bt, SN_MR);
  int npan = ceil_div(w->g->cout, SN_NR);
  for (int tl = 0; tl < bt; tl++)
    input_item(w, t0, np, tl, vp);
  /* prefetch the next U panel only for short bands (resnet50's layer 1 at batch 1: 4 A panels
   * per U panel, conv_bench --cold 300 0.70-0.80 -> 0.50-0.53 ms); long bands reuse each panel
   * from L1 over many A panels (batch 32: within noise, 1.02 [0.93, 1.06] in pair_bench) */
  const int n2 = w->P * npan, pf = np <= 4;
  for (int it = 0; it < n2; it++)
    gemm_item(w, bt, np, it, pf && it + 1 < n2 ? it + 1 : -1, vp, mb);
  for (int tl = 0; tl < bt; tl++)
    output_item(w, t0, bt, tl, mb);
}

/* One band shared by all threads of the enclosing parallel region (every thread must call it):
 * each phase is a dynamic loop, its implicit barrier separates the phases. */
static void band_shared(const wino_ctx *w, int t0, int bt, int nth, float *vp, float *mb) {
  int np = ceil_div(bt, SN_MR);
  int npan = ceil_div(w->g->cout, SN_NR);
  int n2 = w->P * npan, ct = imax(1, bt / (8 * nth));
  /* GEMM items in chunks of consecutive ones (a thread knows its next item inside a chunk) */
  int cg = imax(1, imin(npan, n2 / (4 * nth)));
#pragma omp for schedule(dynamic, ct)
  for (int tl = 0; tl < bt; tl++)
    input_item(w, t0, np, tl, vp);
#pragma omp for schedule(dynamic, cg)
  for (int it = 0; it < n2; it++)
    gemm_item(w, bt, np, it, (it + 1) % cg && it + 1 < n2 ? it + 1 : -1, vp, mb);
#pragma omp for schedule(dynamic, ct)
  for (int tl = 0; tl < bt; tl++)
    output_item(w, t0, bt, tl, mb);
}

void sn_conv_wino_forward_packed(int m, const sn_conv_geom *g, int nthreads, const float *x,
                                 const float *u, const float *bias, const float *res, int relu,
                                 float *y, float *ws) {
  m = m == 2 ? 2 : 4;
  wino_ctx w = {g,         x,
                u,         bias,
                res,       y,
                relu,      m,
                wino_p(m), ceil_div(g->ow, m),
                0,         sn_conv_gemm_kc(g->cin),
                0,         sn_conv_gemm_packb_floats(g->cin, g->cout)};
  w.nkb = ceil_div(g->cin, w.kc);
  w.tpi = ceil_div(g->oh, m) * w.tw; /* tiles cover the output */
  int T = g->n * w.tpi;
  int nt = imax(1, nthreads);
  int tb = band_tiles(w.P, g->cin, g->cout, T, nt);
  /* Enough tiles: a multiple of nt bands of at most tb tiles, handed out dynamically, each run
   * by one thread in its own buffers. Else all threads share bands of up to nt * tb tiles (the
   * per-thread buffers are contiguous). */
  int shared = ceil_div(T, tb) < 2 * nt && nt > 1;
  int nb = shared ? ceil_div(T, nt * tb) : ceil_div(ceil_div(T, tb), nt) * nt;
  int bsz = ceil_div(T, nb);
  nb = ceil_div(T, bsz);
  size_t vpt = vp_floats(w.P, g->cin, tb), mbt = (size_t)w.P * tb * g->cout;
  float *vp0 = ws, *mb0 = ws + (size_t)nt * vpt;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    if (shared) {
      for (int b = 0; b < nb; b++)
        band_shared(&w, b * bsz, imin(bsz, T - b * bsz), nth, vp0, mb0);
    } else {
#pragma omp for schedule(dynamic, 1)
      for (int b = 0; b < nb; b++)
        band_alone(&w, b * bsz, imin(bsz, T - b * bsz), vp0 + tid * vpt, mb0 + tid * mbt);
    }
  }
}

#pragma GCC pop_options

/* ------------------------------------------------------------ training: drivers */

/* M = V . U for the 16 planes of a band of nb tiles. */
static void wino_gemm(const float *v, int nb, int cin, const float *u, int cout, float *m) {
  const size_t vplane = (size_t)nb * cin, mplane = (size_t)nb * cout;
  const size_t uplane = packed_floats(cin, cout);
  for (int q = 0; q < 16; q++)
    for (int cb = 0; cb < cout; cb += SN_TILE_NB) {
      const int cols = imin(SN_TILE_NB, cout - cb), nv = ceil_div(cols, 16);
      const int rmax = k_rmax[nv], nt = ceil_div(nb, rmax);
      for (int t = 0; t < nt; t++) {
        const int a0 = (int)((long)nb * t / nt), a1 = (int)((long)nb * (t + 1) / nt);
        sn_conv_tile_pick(a1 - a0, nv, cin)(
            v + q * vplane + (size_t)a0 * cin, cin, 1, 0, cin, u + q * uplane + (size_t)cin * cb,
            m + q * mplane + (size_t)a0 * cout + cb, cout, cols, NULL, NULL, 0);
      }
    }
}

/* One image: y = act(conv(x) + bias + res). */
static void wino_image(const wplan *p, const float *x, const float *u, const float *bias,
                       const float *res, int relu, float *y, float *padbuf, float *vb, float *mb,
                       int border) {
  sn_conv_tile_pad_image(&p->pad, x, padbuf, border, NULL);
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
  sn_conv_tile_pad_image(&p->pad, x, padbuf, border, NULL);
  for (int tr0 = 0; tr0 < p->th; tr0 += p->bh) {
    const int tr1 = imin(p->th, tr0 + p->bh), nb = (tr1 - tr0) * p->tw;
    wino_in(padbuf, p->pad.wp, cin, p->tw, tr0, tr1, vb);
    wino_dy(dy, p->oh, p->ow, cout, p->tw, tr0, tr1, mb);
    const size_t vplane = (size_t)nb * cin, mplane = (size_t)nb * cout;
    for (int q = 0; q < 16; q++)
      for (int cb = 0; cb < cout; cb += SN_TILE_NB) {
        const int cols = imin(SN_TILE_NB, cout - cb), nv = ceil_div(cols, 16);
        const int rmax = k_rmax[nv], nt = ceil_div(cin, rmax);
        for (int t = 0; t < nt; t++) {
          const int k0 = (int)((long)cin * t / nt), k1 = (int)((long)cin * (t + 1) / nt);
          const float *va = vb + q * vplane, *ma = mb + q * mplane;
          sn_conv_tile_pick_wgrad(k1 - k0, nv)(&va, &ma, 1, k0, cb, cin, 0, cout, 0, 1, nb, cols,
                                               du + ((size_t)q * cin + k0) * cout + cb, cout, 0);
        }
      }
  }
}

void sn_conv_wino_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                          const float *res, int relu, float *y, float *ws) {
  wplan f;
  wplan_fwd(g, &f);
  const int nch = sn_conv_tile_chunks(g->n);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_img = (size_t)g->oh * g->ow * g->cout;
  const size_t padn = wplan_pad_floats(&f), bandn = wplan_band_floats(&f);
  const size_t chunkn = padn + 2 * bandn;
  float *u = ws, *chunks = ws + train_u_floats(g->cin, g->cout);
#pragma omp parallel num_threads(sn_conv_tile_team_size(nch))
  {
#pragma omp for schedule(static)
    for (int ci = 0; ci < g->cin; ci++)
      wino_pack_u_row(w, g->cin, g->cout, 0, ci, u);
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

void sn_conv_wino_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *ws) {
  wplan f, b;
  wplan_fwd(g, &f);
  wplan_bwd(g, &b);
  const int nch = sn_conv_tile_chunks(g->n), cin = g->cin, cout = g->cout;
  const size_t in_img = (size_t)g->h * g->w * cin, out_img = (size_t)g->oh * g->ow * cout;
  const size_t padf = wplan_pad_floats(&f), padb = wplan_pad_floats(&b);
  const size_t bandn =
      wplan_band_floats(&f) > wplan_band_floats(&b) ? wplan_band_floats(&f) : wplan_band_floats(&b);
  const size_t chunkn = wino_chunk_floats(g), nu = (size_t)16 * cin * cout;
  float *uf = ws, *chunks = ws + train_u_floats(cout, cin);
#define SN_WINO_DU(ch) (chunks + (size_t)(ch)*chunkn + padf + padb + 2 * bandn)
#pragma omp parallel num_threads(sn_conv_tile_team_size(nch))
  {
    if (dx) {
#pragma omp for schedule(static)
      for (int co = 0; co < cout; co++)
        wino_pack_u_row(w, cout, cin, 1, co, uf);
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
          for (int ch = 1; ch < nch; ch++)
            acc += SN_WINO_DU(ch)[o];
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
