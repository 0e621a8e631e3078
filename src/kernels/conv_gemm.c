/* conv_gemm.c - convolution as a packed AVX-512 GEMM (conv_gemm.h): A rows copied from x for
 * unpadded 1x1, built by im2col otherwise; B the packed weights; the GEMM block of
 * conv_gemm_block.c with bias, residual and ReLU fused into its epilogue.
 *
 * One task = a block of rows x a range of column panels. For each K block (kc <= SN_KC):
 *   narrow N (B block (kc, ncols) <= 256 KiB, stays in L2): for each row panel: copy its 14 rows
 *     into one panel buffer (L1), then run it against every column panel; the RGB stem's
 *     interior panels skip the copy (row-direct kernel reading x in place);
 *   wide N: copy all row panels of the block (<= 512 KiB, L2), then for each column panel (B
 *     panel (kc, 32) stays in L1) run every row panel.
 * Threads split the rows when there are enough of them, else the column panels (plan_conv).
 *
 * Training: the forward pass and the stride-1 backward-data pass (the forward pass of dy with the
 * flipped kernel) pack the weights into the workspace per call, then run the inference path
 * above; the direct tiles stream the whole weight block per row tile, which does not fit in L2
 * when K is large. Each output is accumulated by one task over the K blocks in order:
 * deterministic for any thread count.
 *
 * Weight gradient: dW (K, Cout) = sum over blocks of kc output pixels of A (K, kc) . B (kc, Cout),
 * A the im2col matrix transposed (row k = (ky, kx, ci): channel ci of tap (ky, kx) under each of
 * the block's pixels, zero where the tap falls in the padding) and B the block's rows of dy. A
 * task is a range of dW's rows x a range of its columns; it sweeps the pixel blocks in order,
 * packing its columns of dy into B panels (kc, SN_NR) and, per chunk of <= SN_WG_MC rows, its rows
 * of A by 16x16 transposes of the pixels' channel runs (SN_LDA-strided panels of SN_MR rows), then
 * runs the GEMM block, accumulating into dW. Each element of dW is the same chain of FMAs
 * whatever the split: independent of the thread count. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_gemm.h"
#include "conv_gemm_block.h"
#include "conv_util.h"
#include "relu.h"

#define SN_A_BLOCK_FLOATS 131072 /* packed A block <= 512 KiB, in L2 */
#define SN_NARROW_N 256          /* column count up to which a task runs panel by panel */

/* ------------------------------------------------------------ portable parts (no AVX-512) */

size_t sn_conv_gemm_weights_floats(const sn_conv_geom *g) {
  return sn_conv_gemm_packb_floats(g->kh * g->kw * g->cin, g->cout);
}

void sn_conv_gemm_pack_weights(const sn_conv_geom *g, const float *w, float *bp) {
  sn_conv_gemm_packb(g->kh * g->kw * g->cin, g->cout, w, (size_t)g->cout, bp);
}

int sn_conv_gemm_single_kblock(const sn_conv_geom *g) {
  const int k = g->kh * g->kw * g->cin;
  return sn_conv_gemm_kc(k) == k;
}

/* Blocking of one conv-as-GEMM call. Two ways to split the work over threads:
 *   rows:     row blocks are tasks (dynamic, so a thread that the shared machine descheduled
 *             does not hold the others up); each task covers all columns.
 *   shared A: few rows (batch 1 at 7x7): all threads pack A once, then column ranges are tasks,
 *             so each B panel is read from memory once and reused by every row panel. */
typedef struct gemm_plan {
  int m, k, n;   /* GEMM sizes: M = N*OH*OW, K = KH*KW*Cin, N = Cout */
  int kc, nkb;   /* K block and number of K blocks */
  int mp;        /* row panels */
  int direct;    /* 1: unpadded 1x1, A rows are pixels of x; 0: im2col rows */
  int rowdirect; /* 1: Cin * stride == SN_ROWS_LDA, one K block: interior panels run row-direct */
  int shared_a;  /* 1: shared-A split */
  int ppb, nmb;  /* rows split: panels per row block, row blocks */
  int nsplit;    /* shared-A split: column ranges */
} gemm_plan;

static int max_panels_per_block(void) { return imax(1, SN_A_BLOCK_FLOATS / SN_PANEL); }
static int shared_a_limit(int nt) { return 4 * nt; } /* shared A when mp < this */

static void plan_conv(const sn_conv_geom *g, int nt, gemm_plan *p) {
  p->m = g->n * g->oh * g->ow;
  p->k = g->kh * g->kw * g->cin;
  p->n = g->cout;
  p->kc = sn_conv_gemm_kc(p->k);
  p->nkb = ceil_div(p->k, p->kc);
  p->direct = g->kh == 1 && g->kw == 1 && g->pt == 0 && g->pl == 0 && g->pb == 0 && g->pr == 0;
  p->rowdirect = g->cin * g->sw == SN_ROWS_LDA && p->nkb == 1 && !p->direct;
  p->mp = ceil_div(p->m, SN_MR);
  p->shared_a = p->mp < shared_a_limit(nt);
  int npan = ceil_div(p->n, SN_NR);
  /* shared A: every column task reads all of packed A, so few tasks when A is large */
  size_t abytes = (size_t)p->mp * p->nkb * SN_PANEL * sizeof(float);
  p->nsplit = imin(npan, abytes > (512u << 10) ? nt : 4 * nt);
  /* rows: panels per task such that the threads get equal shares (the busiest thread's
   * ceil(tasks / nt) * ppb panels as small as possible: at batch 1 at 14x14, 5 tasks of 3 panels
   * would put 9 on one thread and 5 on the other), then the number of tasks nearest to 3 per
   * thread (1 per thread when B's K block does not fit L2: every task streams it), then the
   * larger ppb. At least 2 panels per task when there are enough: the second and third panels
   * prefetch the weights the next ones need (the GEMM block, conv_task). */
  int want = (size_t)p->kc * p->n * sizeof(float) <= (1u << 20) ? 3 * nt : nt;
  int lo = p->mp >= 2 * nt ? 2 : 1,
      hi = imax(lo, imin(max_panels_per_block(), ceil_div(p->mp, nt)));
  int best = hi, best_load = INT32_MAX, best_dist = INT32_MAX;
  for (int ppb = lo; ppb <= hi; ppb++) {
    int nmb = ceil_div(p->mp, ppb), load = ceil_div(nmb, nt) * ppb, dist = abs(nmb - want);
    if (load < best_load || (load == best_load && dist <= best_dist)) {
      best = ppb;
      best_load = load;
      best_dist = dist;
    }
  }
  p->ppb = best;
  p->nmb = ceil_div(p->mp, p->ppb);
}

/* Workspace bounds valid for every batch up to g->n: rows split, per thread, ppb <= maxppb and
 * ppb <= mp; shared A, mp < shared_a_limit. */
static size_t rows_thread_ws(const sn_conv_geom *g) {
  int mp = ceil_div(g->n * g->oh * g->ow, SN_MR);
  return (size_t)imin(mp, max_panels_per_block()) * SN_PANEL + 16;
}

size_t sn_conv_gemm_packed_workspace(const sn_conv_geom *g, int nthreads) {
  int nt = imax(1, nthreads);
  gemm_plan p;
  plan_conv(g, nt, &p);
  size_t shared = (size_t)imin(p.mp, shared_a_limit(nt) - 1) * p.nkb * SN_PANEL + 16;
  size_t rows = (size_t)nt * rows_thread_ws(g);
  return shared > rows ? shared : rows;
}

/* ------------------------------------------------------------ AVX-512 parts */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

/* The block's body, inlined into the loops below (conv_gemm_block_body.h says why). */
#include "conv_gemm_block_body.h"

static void block(int m, int n, int kc, const float *ap, const float *bp, size_t bstride, float *c,
                  size_t ldc, int flags, const float *bias, const float *res, size_t ldr, int relu,
                  const float *bnext) {
  gemm_block(m, n, kc, ap, bp, bstride, c, ldc, flags, bias, res, ldr, relu, NULL, 0, 0, bnext);
}

/* d = act(s * scale + shift), n floats: the operations of sn_bn_affine (bn.c
 * affine_rows_avx512 without a mean: one FMA, then sn_relu_ps), so bitwise its output. */
static inline void map_f(float *d, const float *s, int n, const float *scale, const float *shift,
                         int relu) {
  for (int j = 0; j < n; j += 16) {
    const __mmask16 k = lane_mask(n - j < 16 ? n - j : 16);
    __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, s + j), _mm512_maskz_loadu_ps(k, scale + j),
                               _mm512_maskz_loadu_ps(k, shift + j));
    if (relu) v = sn_relu_ps(v);
    _mm512_mask_storeu_ps(d + j, k, v);
  }
}

/* Row m of the im2col matrix (K = KH*KW*Cin in HWIO order), columns [k0, k0 + kc), into dst.
 * For each kernel row ky the KW*Cin values are one contiguous run of x, clipped at the edges. */
static void im2col_row(const sn_conv_geom *g, const float *x, int m, int k0, int kc, float *dst) {
  int ohw = g->oh * g->ow;
  int img = m / ohw, rem = m % ohw;
  int oy = rem / g->ow, ox = rem % g->ow;
  int iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
  int cin = g->cin, run = g->kw * cin;
  int kx_lo = imax(0, -ix0), kx_hi = imin(g->kw, g->w - ix0);
  int k1 = k0 + kc;
  for (int ky = k0 / run; ky < g->kh && ky * run < k1; ky++) {
    int s = ky * run;
    int a = imax(s, k0), b = imin(s + run, k1);
    int iy = iy0 + ky;
    if (iy < 0 || iy >= g->h || kx_lo >= kx_hi) {
      zero_f(dst + (a - k0), b - a);
      continue;
    }
    int v0 = imin(imax(s + kx_lo * cin, a), b), v1 = imax(imin(s + kx_hi * cin, b), v0);
    if (v0 > a) zero_f(dst + (a - k0), v0 - a);
    if (v1 > v0) {
      ptrdiff_t base = (((ptrdiff_t)img * g->h + iy) * g->w + ix0) * cin - s;
      copy_f(dst + (v0 - k0), x + base + v0, v1 - v0);
    }
    if (b > v1) zero_f(dst + (v1 - k0), b - v1);
  }
}

/* Row-direct micro-kernel for convolutions with Cin * stride == SN_ROWS_LDA (the RGB stem,
 * 3 channels, stride 2): MRC consecutive output pixels of one output row read x in place, each
 * kernel row ky being a segment a_s (MRC rows at stride SN_ROWS_LDA, len contiguous floats)
 * against b_s. No im2col copy. */
static inline __attribute__((always_inline)) void
ukernel_rows(const int MRC, int n, int nseg, const float *const *as, const float *const *bs,
             int len, float *c, size_t ldc, const float *bias, const float *res, size_t ldr,
             int relu) {
  __m512 c0[SN_MR], c1[SN_MR];
  uk_zero(MRC, c0, c1, c, ldc, res, ldr);
  for (int sg = 0; sg < nseg; sg++)
    uk_loop(MRC, SN_ROWS_LDA, len, as[sg], bs[sg], c0, c1, NULL, 0);
  uk_store(MRC, c0, c1, n, c, ldc, SN_GEMM_EPI, bias, res, ldr, relu);
}

#define SN_UKR_CASE(R)                                                                             \
  case R:                                                                                          \
    ukernel_rows(R, n, nseg, as, bs, len, c, ldc, bias, res, ldr, relu);                           \
    break;

static void ukernel_rows_m(int m, int n, int nseg, const float *const *as, const float *const *bs,
                           int len, float *c, size_t ldc, const float *bias, const float *res,
                           size_t ldr, int relu) {
  switch (m) {
    /* clang-format off */
    SN_UKR_CASE(14) SN_UKR_CASE(13) SN_UKR_CASE(12) SN_UKR_CASE(11) SN_UKR_CASE(10)
    SN_UKR_CASE(9) SN_UKR_CASE(8) SN_UKR_CASE(7) SN_UKR_CASE(6) SN_UKR_CASE(5) SN_UKR_CASE(4)
    SN_UKR_CASE(3) SN_UKR_CASE(2) SN_UKR_CASE(1)
        /* clang-format on */
        default : break;
  }
}

/* Walks output pixels m = i0, i0 + 1, ... of an unpadded 1x1 convolution and gives the offset in
 * x of each one's input pixel, without a division per pixel (the divisions cost about as much
 * as a 64-channel panel's FMAs). */
typedef struct pixel_walk {
  const sn_conv_geom *g;
  int img, oy, ox;
  size_t off;
} pixel_walk;

static inline void walk_init(pixel_walk *w, const sn_conv_geom *g, int m) {
  int ohw = g->oh * g->ow;
  w->g = g;
  w->img = m / ohw;
  w->oy = m % ohw / g->ow;
  w->ox = m % ohw % g->ow;
  w->off =
      (((size_t)w->img * g->h + (size_t)w->oy * g->sh) * g->w + (size_t)w->ox * g->sw) * g->cin;
}

static inline void walk_next(pixel_walk *w) {
  const sn_conv_geom *g = w->g;
  if (++w->ox < g->ow) {
    w->off += (size_t)g->sw * g->cin;
    return;
  }
  w->ox = 0;
  if (++w->oy == g->oh) {
    w->oy = 0;
    w->img++;
  }
  w->off = (((size_t)w->img * g->h + (size_t)w->oy * g->sh) * g->w) * g->cin;
}

/* Copies rows [i0, i0 + mi) of A, columns [k0, k0 + kc), into the panel ap. The caller
 * prefetches the next panel's rows during this one's kernel where they are one contiguous run
 * (conv_task). A burst of prefetches after each copy stalled on the fill buffers; prefetches
 * spread over the k loop measured the same as none in isolated paired runs (warm caches), but
 * in a network pass x comes from memory: the 56x56 256->64 layer at batch 8 with caches flushed
 * (conv_bench --cold 300) takes 4.3-4.7 ms without them, 3.2-3.5 with. */
static void pack_panel(const sn_conv_geom *g, const gemm_plan *p, const float *x,
                       const sn_conv_in *in, int i0, int mi, int k0, int kc, float *ap) {
  if (p->direct) {
    pixel_walk cur;
    walk_init(&cur, g, i0);
    for (int r = 0; r < mi; r++) {
      if (in)
        map_f(ap + (size_t)r * SN_LDA, x + cur.off + k0, kc, in->scale + k0, in->shift + k0,
              in->relu);
      else
        copy_f(ap + (size_t)r * SN_LDA, x + cur.off + k0, kc);
      walk_next(&cur);
    }
    return;
  }
  for (int r = 0; r < mi; r++)
    im2col_row(g, x, i0 + r, k0, kc, ap + (size_t)r * SN_LDA);
}

static int kh_fits(const sn_conv_geom *g) { return g->kh <= 16; }

/* 1 if output pixels [i0, i0 + mi) lie in one output row with every kernel column inside x. */
static int rows_direct_ok(const sn_conv_geom *g, int i0, int mi) {
  int ox0 = i0 % (g->oh * g->ow) % g->ow;
  if (ox0 + mi > g->ow) return 0;
  int ix0 = ox0 * g->sw - g->pl, ix1 = (ox0 + mi - 1) * g->sw - g->pl + g->kw - 1;
  return ix0 >= 0 && ix1 < g->w;
}

/* Rows [i0, i0 + mi) x columns [n0, n0 + ncols) without packing: one segment per kernel row
 * inside the image. bk: the (single) K block of B at column panel n0 / NR. */
static void rows_direct_panel(const sn_conv_geom *g, const gemm_plan *p, const float *x, int i0,
                              int mi, const float *bk, int n0, int ncols, const float *bias,
                              const float *res, int relu, float *y) {
  int ohw = g->oh * g->ow;
  int img = i0 / ohw, oy = i0 % ohw / g->ow, ox0 = i0 % ohw % g->ow;
  int run = g->kw * g->cin, nseg = 0;
  const float *as[16], *bs[16];
  int koff[16];
  for (int ky = 0; ky < g->kh && nseg < 16; ky++) {
    int iy = oy * g->sh - g->pt + ky;
    if (iy < 0 || iy >= g->h) continue;
    as[nseg] = x + (((size_t)img * g->h + iy) * g->w + (size_t)(ox0 * g->sw - g->pl)) * g->cin;
    koff[nseg++] = ky * run;
  }
  for (int j0 = 0; j0 < ncols; j0 += SN_NR) {
    for (int sg = 0; sg < nseg; sg++)
      bs[sg] = bk + (size_t)(j0 / SN_NR) * p->k * SN_NR + (size_t)koff[sg] * SN_NR;
    size_t off = (size_t)i0 * p->n + n0 + j0;
    ukernel_rows_m(mi, imin(SN_NR, ncols - j0), nseg, as, bs, run, y + off, p->n,
                   bias ? bias + n0 + j0 : NULL, res ? res + off : NULL, p->n, relu);
  }
}

/* Column panel q of K block kb + 1 of the packed B, or NULL after the last K block: what the
 * last column panel of K block kb prefetches (the GEMM block's bnext). Without it every K
 * block's first panel streams from memory on demand misses in the wide-N and shared-A paths
 * (resnet50 at batch 1 and 32: about 3% slower in paired runs). A prefetch past the end of B
 * (a shorter last K block) does not fault. */
static const float *next_kblock(const gemm_plan *p, const float *bp, int kb, int q) {
  if (kb + 1 >= p->nkb) return NULL;
  int k1 = (kb + 1) * p->kc, kcn = imin(p->kc, p->k - k1);
  return sn_conv_gemm_bblock(bp, ceil_div(p->n, SN_NR), k1) + (size_t)q * kcn * SN_NR;
}

/* One task: rows [m0, m1) x column panels [p0, p1). */
static void conv_task(const sn_conv_geom *g, const gemm_plan *p, const float *x,
                      const sn_conv_in *in, const float *bp, const float *bias, const float *res,
                      int relu, float *y, int m0, int m1, int p0, int p1, float *ap) {
  int n0 = p0 * SN_NR, ncols = imin(p->n, p1 * SN_NR) - n0;
  if (ncols <= 0 || m1 <= m0) return;
  const int npan = ceil_div(p->n, SN_NR);
  const float *bias0 = bias ? bias + n0 : NULL;
  for (int kb = 0; kb < p->nkb; kb++) {
    int k0 = kb * p->kc, kc = imin(p->kc, p->k - k0);
    int flags = (kb > 0 ? SN_GEMM_ACC : 0) | (kb == p->nkb - 1 ? SN_GEMM_EPI : 0);
    const size_t bstride = (size_t)kc * SN_NR;
    const float *bk = sn_conv_gemm_bblock(bp, npan, k0) + (size_t)p0 * bstride;
    if (ncols <= SN_NARROW_N) {
      /* The first row panel streams this K block of B (kc x ncols) from memory, the others
       * reuse it from L2; the second and third prefetch the next K block (kcn x ncols, 2 kcn
       * lines per column panel: one line per k step each, or two when only one follows). */
      const int ncp = ceil_div(ncols, SN_NR), rest = ceil_div(m1 - m0, SN_MR) - 1;
      const int kcn = kb + 1 < p->nkb ? imin(p->kc, p->k - k0 - kc) : 0;
      const float *bn =
          kcn ? sn_conv_gemm_bblock(bp, npan, k0 + kc) + (size_t)p0 * kcn * SN_NR : NULL;
      const int pfl = rest == 1 ? 2 : 1;
      const int arows = p->direct && p->nkb == 1 && g->sh == 1 && g->sw == 1;
      for (int i0 = m0, ip = 0; i0 < m1; i0 += SN_MR, ip++) {
        int mi = imin(SN_MR, m1 - i0);
        if (!in && p->rowdirect && kh_fits(g) && rows_direct_ok(g, i0, mi)) {
          rows_direct_panel(g, p, x, i0, mi, bk, n0, ncols, bias, res, relu, y);
          continue;
        }
        pack_panel(g, p, x, in, i0, mi, k0, kc, ap);
        /* this panel's share of the next block: ncp * kc * pfl lines from line (ip-1) * that */
        const float *pf = NULL;
        int pl = pfl, parts = ncp;
        size_t share = (size_t)ncp * kc * pfl * 16, have = (size_t)ncp * kcn * SN_NR;
        if (bn && (ip == 1 || ip == 2) && (size_t)(ip - 1) * share < have)
          pf = bn + (size_t)(ip - 1) * share;
        else if (!bn && arows && i0 + SN_MR < m1) {
          /* one K block of a stride-1 unpadded 1x1: the next panel's rows are the next
           * SN_MR * Cin floats of x; the first column panels prefetch them, a line per k step */
          pf = x + (size_t)(i0 + SN_MR) * g->cin;
          pl = 1;
          parts = ceil_div(imin(SN_MR, m1 - i0 - SN_MR) * g->cin, 16 * kc);
        }
        gemm_block(mi, ncols, kc, ap, bk, bstride, y + (size_t)i0 * p->n + n0, p->n, flags, bias0,
                   res ? res + (size_t)i0 * p->n + n0 : NULL, p->n, relu, pf, pl, parts, NULL);
      }
    } else {
      for (int i0 = m0; i0 < m1; i0 += SN_MR)
        pack_panel(g, p, x, in, i0, imin(SN_MR, m1 - i0), k0, kc,
                   ap + (size_t)((i0 - m0) / SN_MR) * SN_PANEL);
      block(m1 - m0, ncols, kc, ap, bk, bstride, y + (size_t)m0 * p->n + n0, p->n, flags, bias0,
            res ? res + (size_t)m0 * p->n + n0 : NULL, p->n, relu, next_kblock(p, bp, kb, p0));
    }
  }
}

void sn_conv_gemm_forward_packed(const sn_conv_geom *g, int nthreads, const float *x,
                                 const sn_conv_in *in, const float *bp, const float *bias,
                                 const float *res, int relu, float *y, float *ws) {
  gemm_plan p;
  int nt = imax(1, nthreads);
  plan_conv(g, nt, &p);
  int npan = ceil_div(p.n, SN_NR);
  if (p.shared_a) {
    float *a = ws; /* [kb][panel] */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
      for (int it = 0; it < p.mp * p.nkb; it++) {
        int kb = it / p.mp, pi = it % p.mp, k0 = kb * p.kc;
        pack_panel(g, &p, x, in, pi * SN_MR, imin(SN_MR, p.m - pi * SN_MR), k0,
                   imin(p.kc, p.k - k0), a + ((size_t)kb * p.mp + pi) * SN_PANEL);
      }
#pragma omp for schedule(dynamic, 1)
      for (int ns = 0; ns < p.nsplit; ns++) {
        int q0 = npan * ns / p.nsplit, q1 = npan * (ns + 1) / p.nsplit;
        int n0 = q0 * SN_NR, ncols = imin(p.n, q1 * SN_NR) - n0;
        for (int kb = 0; kb < p.nkb; kb++) {
          int k0 = kb * p.kc, kc = imin(p.kc, p.k - k0);
          int flags = (kb > 0 ? SN_GEMM_ACC : 0) | (kb == p.nkb - 1 ? SN_GEMM_EPI : 0);
          const size_t bstride = (size_t)kc * SN_NR;
          block(p.m, ncols, kc, a + (size_t)kb * p.mp * SN_PANEL,
                sn_conv_gemm_bblock(bp, npan, k0) + (size_t)q0 * bstride, bstride, y + n0, p.n,
                flags, bias ? bias + n0 : NULL, res ? res + n0 : NULL, p.n, relu,
                next_kblock(&p, bp, kb, q0));
        }
      }
    }
  } else {
    size_t tws = rows_thread_ws(g);
    nt = imin(nt, p.nmb);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      float *ap = ws + (size_t)omp_get_thread_num() * tws;
#pragma omp for schedule(dynamic, 1)
      for (int mb = 0; mb < p.nmb; mb++) {
        int m0 = mb * p.ppb * SN_MR, m1 = imin(p.m, m0 + p.ppb * SN_MR);
        conv_task(g, &p, x, in, bp, bias, res, relu, y, m0, m1, 0, npan, ap);
      }
    }
  }
}

#pragma GCC pop_options

/* ------------------------------------------------------------ training */

#define SN_GEMM_THREADS_MAX 16 /* the workspace covers up to this many threads */

size_t sn_conv_gemm_forward_workspace(const sn_conv_geom *g) {
  return round16(sn_conv_gemm_packb_floats(g->kh * g->kw * g->cin, g->cout)) +
         sn_conv_gemm_packed_workspace(g, SN_GEMM_THREADS_MAX);
}

/* flipped HWIO kernel (KH*KW*Cout, Cin) + the forward workspace of the backward geometry */
size_t sn_conv_gemm_backward_data_workspace(const sn_conv_geom *g, const sn_conv_geom *b) {
  return round16((size_t)g->kh * g->kw * g->cin * g->cout) + sn_conv_gemm_forward_workspace(b);
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

/* b (K, N), row stride ldb -> bp in sn_conv_gemm_packb's layout (K blocks of sn_conv_gemm_kc(K)
 * rows, each as column panels (kcur, SN_NR), zero padded): the same floats, by vector copies,
 * rows split over the calling team (called inside a parallel region, or by one thread). */
static void pack_b_rows(int k, int n, const float *b, size_t ldb, float *bp) {
  const int kc = sn_conv_gemm_kc(k), npan = ceil_div(n, SN_NR);
#pragma omp for schedule(static)
  for (int r = 0; r < k; r++) {
    const int k0 = r / kc * kc, kcur = imin(kc, k - k0), kk = r - k0;
    const float *src = b + (size_t)r * ldb;
    float *dst = (float *)sn_conv_gemm_bblock(bp, npan, k0) + (size_t)kk * SN_NR;
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

void sn_conv_gemm_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                          const float *res, int relu, float *y, float *ws) {
  const int k = g->kh * g->kw * g->cin;
#pragma omp parallel num_threads(gemm_threads())
  pack_b_rows(k, g->cout, w, (size_t)g->cout, ws);
  sn_conv_gemm_forward_packed(g, gemm_threads(), x, NULL, ws, bias, res, relu, y,
                              ws + round16(sn_conv_gemm_packb_floats(k, g->cout)));
}

/* dx = forward of dy with wf[ky][kx][co][ci] = w[KH-1-ky][KW-1-kx][ci][co] */
void sn_conv_gemm_backward_data(const sn_conv_geom *g, const sn_conv_geom *b, const float *w,
                                const float *dy, float *dx, float *ws) {
  const int cin = g->cin, cout = g->cout, taps = g->kh * g->kw;
  float *wf = ws;
#pragma omp parallel num_threads(gemm_threads())
  flip_kernel(g, w, wf);
  sn_conv_gemm_forward(b, dy, wf, NULL, NULL, 0, dx, ws + round16((size_t)taps * cin * cout));
}

/* ------------------------------------------------------------ weight gradient */

#define SN_WG_MC (16 * SN_MR) /* rows of A per packed chunk: 16 panels, 238 KiB (L2) */
#define SN_WG_MAX_N 1024      /* columns per task: the task's B block <= 1 MiB */

typedef struct wgplan {
  int m, n, p; /* dW rows (K), columns (Cout), pixels (N*OH*OW) */
  int kc, npb; /* pixels per block, blocks */
  int mt, nt;  /* row ranges x column ranges = tasks */
} wgplan;

/* Splits dW into >= 2 tasks per thread, choosing the split that packs least: A is packed once
 * per column range (a transpose: counted twice), B once per row range. */
static void wgplan_init(const sn_conv_geom *g, int threads, wgplan *p) {
  p->m = g->kh * g->kw * g->cin;
  p->n = g->cout;
  p->p = g->n * g->oh * g->ow;
  p->kc = sn_conv_gemm_kc(p->p);
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

size_t sn_conv_gemm_wgrad_workspace(const sn_conv_geom *g) {
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

void sn_conv_gemm_wgrad(const sn_conv_geom *g, const float *x, const float *dy, float *dw,
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
          sn_conv_gemm_block(c1 - c0, n1 - n0, kc, abuf, bbuf, (size_t)kc * SN_NR,
                             dw + (size_t)c0 * p.n + n0, (size_t)p.n, pb ? SN_GEMM_ACC : 0, NULL,
                             NULL, 0, 0, NULL);
        }
      }
    }
  }
}
