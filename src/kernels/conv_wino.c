/* conv_wino.c - Winograd F(2x2, 3x3) for the training convolutions (conv_direct_impl.h).
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

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct_impl.h"

#define SN_WINO_MIN_C 64
#define SN_WINO_MIN_PIX 784
#define SN_WINO_BAND_FLOATS 65536 /* V or M of one band: 256 KiB */

int sn_dconv_wino_valid(const sn_conv_geom *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt <= 2 && g->pl <= 2 &&
         g->pb <= 2 && g->pr <= 2;
}

/* g->opts.winograd: off, never; on, every valid geometry (3x3, stride 1, padding <= 2: the
 * tests force it on small shapes); auto, by the size rule above. */
int sn_dconv_wino_eligible(const sn_conv_geom *g) {
  if (g->opts.winograd == SN_CHOICE_OFF || !sn_dconv_wino_valid(g)) return 0;
  return g->opts.winograd == SN_CHOICE_ON ||
         (g->cin >= SN_WINO_MIN_C && g->cout >= SN_WINO_MIN_C && g->oh * g->ow >= SN_WINO_MIN_PIX);
}

/* ------------------------------------------------------------ AVX-512 transforms */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

static inline __mmask16 tail_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
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

#pragma GCC pop_options

/* ------------------------------------------------------------ drivers */

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
  const int tiles = imax(p->tw, SN_WINO_BAND_FLOATS / (16 * imax(cin, cout)));
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
static size_t wino_u_floats(int cin, int cout) { return 16 * packed_floats(cin, cout); }

size_t sn_dconv_wino_forward_workspace(const sn_conv_geom *g) {
  wplan f;
  wplan_fwd(g, &f);
  return wino_u_floats(g->cin, g->cout) +
         (size_t)sn_dconv_chunks(g->n) * (wplan_pad_floats(&f) + 2 * wplan_band_floats(&f));
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

size_t sn_dconv_wino_backward_workspace(const sn_conv_geom *g) {
  return wino_u_floats(g->cout, g->cin) + (size_t)sn_dconv_chunks(g->n) * wino_chunk_floats(g);
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
        for (int j = cols; j < ldb; j++)
          dst[j] = 0.0f;
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
        sn_dconv_pick_tile(a1 - a0, nv, cin)(
            v + q * vplane + (size_t)a0 * cin, cin, 1, 0, cin, u + q * uplane + (size_t)cin * cb,
            m + q * mplane + (size_t)a0 * cout + cb, cout, cols, NULL, NULL, 0);
      }
    }
}

/* One image: y = act(conv(x) + bias + res). */
static void wino_image(const wplan *p, const float *x, const float *u, const float *bias,
                       const float *res, int relu, float *y, float *padbuf, float *vb, float *mb,
                       int border) {
  sn_dconv_pad_image(&p->pad, x, padbuf, border, NULL);
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
  sn_dconv_pad_image(&p->pad, x, padbuf, border, NULL);
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
          sn_dconv_pick_wtile(k1 - k0, nv)(&va, &ma, 1, k0, cb, cin, 0, cout, 0, 1, nb, cols,
                                           du + ((size_t)q * cin + k0) * cout + cb, cout, 0);
        }
      }
  }
}

void sn_dconv_wino_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                           const float *res, int relu, float *y, float *ws) {
  wplan f;
  wplan_fwd(g, &f);
  const int nch = sn_dconv_chunks(g->n);
  const size_t in_img = (size_t)g->h * g->w * g->cin, out_img = (size_t)g->oh * g->ow * g->cout;
  const size_t padn = wplan_pad_floats(&f), bandn = wplan_band_floats(&f);
  const size_t chunkn = padn + 2 * bandn;
  float *u = ws, *chunks = ws + wino_u_floats(g->cin, g->cout);
#pragma omp parallel num_threads(sn_dconv_team_size(nch))
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

void sn_dconv_wino_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *ws) {
  wplan f, b;
  wplan_fwd(g, &f);
  wplan_bwd(g, &b);
  const int nch = sn_dconv_chunks(g->n), cin = g->cin, cout = g->cout;
  const size_t in_img = (size_t)g->h * g->w * cin, out_img = (size_t)g->oh * g->ow * cout;
  const size_t padf = wplan_pad_floats(&f), padb = wplan_pad_floats(&b);
  const size_t bandn =
      wplan_band_floats(&f) > wplan_band_floats(&b) ? wplan_band_floats(&f) : wplan_band_floats(&b);
  const size_t chunkn = wino_chunk_floats(g), nu = (size_t)16 * cin * cout;
  float *uf = ws, *chunks = ws + wino_u_floats(cout, cin);
#define SN_WINO_DU(ch) (chunks + (size_t)(ch)*chunkn + padf + padb + 2 * bandn)
#pragma omp parallel num_threads(sn_dconv_team_size(nch))
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
