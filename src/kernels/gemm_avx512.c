/* gemm_avx512.c - packed AVX-512 GEMM with a fused epilogue, and convolution on top of it
 * (A rows copied from x for unpadded 1x1, built by im2col otherwise). See conv_fast.h.
 *
 * One task = a block of rows x a range of column panels. For each K block (kc <= SN_KC):
 *   narrow N (B block (kc, ncols) <= 256 KiB, stays in L2): for each row panel: copy its 14 rows
 *     into one panel buffer (L1), then run it against every column panel; the RGB stem's
 *     interior panels skip the copy (row-direct kernel reading x in place);
 *   wide N: copy all row panels of the block (<= 512 KiB, L2), then for each column panel (B
 *     panel (kc, 32) stays in L1) run every row panel.
 * Threads split the rows when there are enough of them, else the column panels (plan_conv). */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_fast.h"

#define SN_A_BLOCK_FLOATS 131072 /* packed A block <= 512 KiB, in L2 */
#define SN_NARROW_N 256          /* column count up to which a task runs panel by panel */
#define SN_ROWS_LDA 6            /* Cin * stride of the row-direct kernel (RGB stem, stride 2) */

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* ------------------------------------------------------------ portable parts (no AVX-512) */

int sn_gemm_kc(int k) {
  int nkb = ceil_div(k, SN_KC);
  return imin(k, (ceil_div(k, nkb) + 15) / 16 * 16);
}

size_t sn_gemm_packb_floats(int k, int n) {
  return (size_t)ceil_div(n, SN_NR) * SN_NR * (size_t)k;
}

void sn_gemm_packb(int k, int n, const float *b, size_t ldb, float *bp) {
  int kc = sn_gemm_kc(k), npan = ceil_div(n, SN_NR);
  for (int k0 = 0; k0 < k; k0 += kc) {
    int kcur = imin(kc, k - k0);
    for (int j = 0; j < npan; j++) {
      float *p = (float *)sn_gemm_bblock(bp, npan, k0) + (size_t)j * kcur * SN_NR;
      int nj = imin(SN_NR, n - j * SN_NR);
      for (int kk = 0; kk < kcur; kk++)
        for (int q = 0; q < SN_NR; q++)
          p[(size_t)kk * SN_NR + q] = q < nj ? b[(k0 + kk) * ldb + j * SN_NR + q] : 0.0f;
    }
  }
}

/* Blocking of one conv-as-GEMM call. Two ways to split the work over threads:
 *   rows:     row blocks are tasks (dynamic, so a thread that the shared machine descheduled
 *             does not hold the others up); each task covers all columns.
 *   shared A: few rows (batch 1 at 7x7): all threads pack A once, then column ranges are tasks,
 *             so each B panel is read from memory once and reused by every row panel. */
typedef struct gemm_plan {
  int m, k, n;    /* GEMM sizes: M = N*OH*OW, K = KH*KW*Cin, N = Cout */
  int kc, nkb;    /* K block and number of K blocks */
  int mp;         /* row panels */
  int direct;     /* 1: unpadded 1x1, A rows are pixels of x; 0: im2col rows */
  int rowdirect;  /* 1: Cin * stride == SN_ROWS_LDA, one K block: interior panels run row-direct */
  int shared_a;   /* 1: shared-A split */
  int ppb, nmb;   /* rows split: panels per row block, row blocks */
  int nsplit;     /* shared-A split: column ranges */
} gemm_plan;

static int max_panels_per_block(void) { return imax(1, SN_A_BLOCK_FLOATS / SN_PANEL); }
static int shared_a_limit(int nt) { return 4 * nt; } /* shared A when mp < this */

static void plan_conv(const sn_conv_geom *g, int nt, gemm_plan *p) {
  p->m = g->n * g->oh * g->ow;
  p->k = g->kh * g->kw * g->cin;
  p->n = g->cout;
  p->kc = sn_gemm_kc(p->k);
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
   * ceil(tasks / nt) * ppb panels as small as possible; batch 1 at 14x14 used to be 5 tasks of
   * 3 panels, 9 on one thread and 5 on the other), then the number of tasks nearest to 3 per
   * thread (1 per thread when B's K block does not fit L2: every task streams it), then the
   * larger ppb. At least 2 panels per task when there are enough: the second and third panels
   * prefetch the weights the next ones need (gemm_block, conv_task). */
  int want = (size_t)p->kc * p->n * sizeof(float) <= (1u << 20) ? 3 * nt : nt;
  int lo = p->mp >= 2 * nt ? 2 : 1, hi = imax(lo, imin(max_panels_per_block(), ceil_div(p->mp, nt)));
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

size_t sn_gemm_conv_workspace(const sn_conv_geom *g, int nthreads) {
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

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1); }

/* d[0, n) = s[0, n), n small (a few vectors). */
static inline void copy_f(float *d, const float *s, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
  }
}

/* d = act(s * scale + shift), n floats: the operations of sn_bn_affine (bn.c
 * affine_rows_avx512 without a mean: one FMA, then max(v, 0)), so bitwise its output. */
static inline void map_f(float *d, const float *s, int n, const float *scale, const float *shift,
                         int relu) {
  const __m512 z = _mm512_setzero_ps();
  for (int j = 0; j < n; j += 16) {
    const __mmask16 k = tail_mask(n - j < 16 ? n - j : 16);
    __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, s + j), _mm512_maskz_loadu_ps(k, scale + j),
                               _mm512_maskz_loadu_ps(k, shift + j));
    if (relu) v = _mm512_max_ps(v, z);
    _mm512_mask_storeu_ps(d + j, k, v);
  }
}

static inline void zero_f(float *d, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_setzero_ps());
  if (i < n) _mm512_mask_storeu_ps(d + i, tail_mask(n - i), _mm512_setzero_ps());
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

static inline __mmask16 col_mask(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Micro-kernel pieces, inlined with constant MRC (rows) and LDAC (A row stride) so that the 28
 * accumulators live in registers and every broadcast is a constant offset. */
static inline __attribute__((always_inline)) void uk_zero(const int MRC, __m512 *c0, __m512 *c1,
                                                          const float *c, size_t ldc,
                                                          const float *res, size_t ldr) {
#pragma GCC unroll 14
  for (int r = 0; r < MRC; r++) {
    c0[r] = _mm512_setzero_ps();
    c1[r] = _mm512_setzero_ps();
    /* the C (and residual) lines the epilogue touches arrive during the k loop */
    _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + (size_t)r * ldc + 16), _MM_HINT_T0);
    if (res) {
      _mm_prefetch((const char *)(res + (size_t)r * ldr), _MM_HINT_T0);
      _mm_prefetch((const char *)(res + (size_t)r * ldr + 16), _MM_HINT_T0);
    }
  }
}

/* acc (MRC, 32) += a (MRC, kc; row stride LDAC) . b (kc, SN_NR). With pfl = 1 or 2, also
 * prefetches into L2 pfl cache lines per k step from pf onwards (see sn_gemm_block_avx512). */
static inline __attribute__((always_inline)) void uk_loop(const int MRC, const int LDAC, int kc,
                                                          const float *restrict a,
                                                          const float *restrict b, __m512 *c0,
                                                          __m512 *c1, const float *pf, int pfl) {
  for (int k = 0; k < kc; k++) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    if (pfl) {
      _mm_prefetch((const char *)pf, _MM_HINT_T1);
      if (pfl == 2) _mm_prefetch((const char *)(pf + 16), _MM_HINT_T1);
      pf += 16 * pfl;
    }
#pragma GCC unroll 14
    for (int r = 0; r < MRC; r++) {
      __m512 av = _mm512_set1_ps(a[r * LDAC]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
    a++;
    b += SN_NR;
  }
}

/* C (MRC rows, n <= 32 cols) = [C +] acc, then the epilogue act(. + bias + res). */
static inline __attribute__((always_inline)) void uk_store(const int MRC, const __m512 *c0,
                                                           const __m512 *c1, int n, float *c,
                                                           size_t ldc, int flags,
                                                           const float *bias, const float *res,
                                                           size_t ldr, int relu) {
  __mmask16 m0 = col_mask(n), m1 = col_mask(n - 16);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  if ((flags & SN_GEMM_EPI) && bias) {
    bias0 = _mm512_maskz_loadu_ps(m0, bias);
    bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int r = 0; r < MRC; r++) {
    float *cr = c + (size_t)r * ldc;
    __m512 v0 = c0[r], v1 = c1[r];
    if (flags & SN_GEMM_ACC) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    if (flags & SN_GEMM_EPI) {
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
      if (res) {
        const float *rr = res + (size_t)r * ldr;
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, rr));
        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, rr + 16));
      }
      if (relu) {
        v0 = _mm512_max_ps(v0, zero);
        v1 = _mm512_max_ps(v1, zero);
      }
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

/* Packed-panel micro-kernel: C (MRC, n) [+]= a (MRC, kc; stride SN_LDA) . b, then epilogue. */
static inline __attribute__((always_inline)) void ukernel(const int MRC, int n, int kc,
                                                          const float *a, const float *b,
                                                          float *c, size_t ldc, int flags,
                                                          const float *bias, const float *res,
                                                          size_t ldr, int relu, const float *pf,
                                                          int pfl) {
  __m512 c0[SN_MR], c1[SN_MR];
  uk_zero(MRC, c0, c1, c, ldc, res, ldr);
  uk_loop(MRC, SN_LDA, kc, a, b, c0, c1, pf, pfl);
  uk_store(MRC, c0, c1, n, c, ldc, flags, bias, res, ldr, relu);
}

/* Row-direct micro-kernel for convolutions with Cin * stride == SN_ROWS_LDA (the RGB stem,
 * 3 channels, stride 2): MRC consecutive output pixels of one output row read x in place, each
 * kernel row ky being a segment a_s (MRC rows at stride SN_ROWS_LDA, len contiguous floats)
 * against b_s. No im2col copy. */
static inline __attribute__((always_inline)) void ukernel_rows(
    const int MRC, int n, int nseg, const float *const *as, const float *const *bs, int len,
    float *c, size_t ldc, const float *bias, const float *res, size_t ldr, int relu) {
  __m512 c0[SN_MR], c1[SN_MR];
  uk_zero(MRC, c0, c1, c, ldc, res, ldr);
  for (int sg = 0; sg < nseg; sg++) uk_loop(MRC, SN_ROWS_LDA, len, as[sg], bs[sg], c0, c1, NULL, 0);
  uk_store(MRC, c0, c1, n, c, ldc, SN_GEMM_EPI, bias, res, ldr, relu);
}

#define SN_UK_CASE(R)                                                                 \
  case R:                                                                             \
    ukernel(R, n, kc, a, b, c, ldc, flags, bias, res, ldr, relu, pf, pfl);            \
    break;

static void ukernel_m(int m, int n, int kc, const float *a, const float *b, float *c, size_t ldc,
                      int flags, const float *bias, const float *res, size_t ldr, int relu,
                      const float *pf, int pfl) {
  switch (m) {
    SN_UK_CASE(14) SN_UK_CASE(13) SN_UK_CASE(12) SN_UK_CASE(11) SN_UK_CASE(10) SN_UK_CASE(9)
    SN_UK_CASE(8) SN_UK_CASE(7) SN_UK_CASE(6) SN_UK_CASE(5) SN_UK_CASE(4) SN_UK_CASE(3)
    SN_UK_CASE(2) SN_UK_CASE(1)
    default: break;
  }
}

#define SN_UKR_CASE(R)                                                                \
  case R:                                                                             \
    ukernel_rows(R, n, nseg, as, bs, len, c, ldc, bias, res, ldr, relu);              \
    break;

static void ukernel_rows_m(int m, int n, int nseg, const float *const *as, const float *const *bs,
                           int len, float *c, size_t ldc, const float *bias, const float *res,
                           size_t ldr, int relu) {
  switch (m) {
    SN_UKR_CASE(14) SN_UKR_CASE(13) SN_UKR_CASE(12) SN_UKR_CASE(11) SN_UKR_CASE(10)
    SN_UKR_CASE(9) SN_UKR_CASE(8) SN_UKR_CASE(7) SN_UKR_CASE(6) SN_UKR_CASE(5) SN_UKR_CASE(4)
    SN_UKR_CASE(3) SN_UKR_CASE(2) SN_UKR_CASE(1)
    default: break;
  }
}

/* C (m, n) [+]= ap . bp over kc, column panel by column panel, each against all row panels.
 * pf == NULL: the first row panel streams each B panel (kc x 32, 2 kc cache lines) from memory
 * (demand misses, faster than memory delivers) and the later ones reuse it from L1 with memory
 * idle, so those later panels prefetch the next B panel into L2: the second and third row
 * panels one line per k step each, or the second alone two lines per k step when there are
 * only two. (At batch 1 the 7x7 layers' 4 row panels stream 4-9 MB of weights per layer.)
 * The last column panel prefetches bafter (the panel the caller runs next: the next K block's
 * first one), when not NULL.
 * pf != NULL: instead, the first pfparts column panels' kernels prefetch pfl lines per k step
 * of the stream at pf (consecutive column panels, consecutive parts of it). */
static void gemm_block(int m, int n, int kc, const float *ap, const float *bp, size_t bstride,
                       float *c, size_t ldc, int flags, const float *bias, const float *res,
                       size_t ldr, int relu, const float *pf, int pfl, int pfparts,
                       const float *bafter) {
  const int mp = (m + SN_MR - 1) / SN_MR;
  for (int j0 = 0; j0 < n; j0 += SN_NR) {
    const float *bj = bp + (size_t)(j0 / SN_NR) * bstride;
    const float *bnext = j0 + SN_NR < n ? bj + bstride : bafter;
    int nj = imin(SN_NR, n - j0);
    for (int i0 = 0, ip = 0; i0 < m; i0 += SN_MR, ip++) {
      const float *q = NULL;
      int ql = 0;
      if (pf) {
        if (ip == 0 && j0 / SN_NR < pfparts) {
          q = pf + (size_t)(j0 / SN_NR) * kc * 16 * pfl;
          ql = pfl;
        }
      } else if (bnext && mp == 2 && ip == 1) {
        q = bnext;
        ql = 2;
      } else if (bnext && mp > 2 && (ip == 1 || ip == 2)) {
        q = bnext + (size_t)(ip - 1) * kc * 16;
        ql = 1;
      }
      ukernel_m(imin(SN_MR, m - i0), nj, kc, ap + (size_t)ip * SN_PANEL, bj,
                c + (size_t)i0 * ldc + j0, ldc, flags, bias ? bias + j0 : NULL,
                res ? res + (size_t)i0 * ldr + j0 : NULL, ldr, relu, q, ql);
    }
  }
}

void sn_gemm_block_avx512(int m, int n, int kc, const float *ap, const float *bp, size_t bstride,
                          float *c, size_t ldc, int flags, const float *bias, const float *res,
                          size_t ldr, int relu, const float *bnext) {
  gemm_block(m, n, kc, ap, bp, bstride, c, ldc, flags, bias, res, ldr, relu, NULL, 0, 0, bnext);
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
  w->off = (((size_t)w->img * g->h + (size_t)w->oy * g->sh) * g->w + (size_t)w->ox * g->sw) * g->cin;
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
  for (int r = 0; r < mi; r++) im2col_row(g, x, i0 + r, k0, kc, ap + (size_t)r * SN_LDA);
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
 * last column panel of K block kb prefetches (gemm_block's bafter). Until 2026-11-28 nothing
 * did, so every K block's first panel streamed from memory on demand misses in the wide-N and
 * shared-A paths; paired runs (pair_bench, resnet50): b1 0.974 and 1/1.036, b32 1/1.035,
 * b8 within noise (1/1.033, 1.055, 1.008). A prefetch past the end of B (a shorter last
 * K block) does not fault. */
static const float *next_kblock(const gemm_plan *p, const float *bp, int kb, int q) {
  if (kb + 1 >= p->nkb) return NULL;
  int k1 = (kb + 1) * p->kc, kcn = imin(p->kc, p->k - k1);
  return sn_gemm_bblock(bp, ceil_div(p->n, SN_NR), k1) + (size_t)q * kcn * SN_NR;
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
    const float *bk = sn_gemm_bblock(bp, npan, k0) + (size_t)p0 * bstride;
    if (ncols <= SN_NARROW_N) {
      /* The first row panel streams this K block of B (kc x ncols) from memory, the others
       * reuse it from L2; the second and third prefetch the next K block (kcn x ncols, 2 kcn
       * lines per column panel: one line per k step each, or two when only one follows). */
      const int ncp = ceil_div(ncols, SN_NR), rest = ceil_div(m1 - m0, SN_MR) - 1;
      const int kcn = kb + 1 < p->nkb ? imin(p->kc, p->k - k0 - kc) : 0;
      const float *bn = kcn ? sn_gemm_bblock(bp, npan, k0 + kc) + (size_t)p0 * kcn * SN_NR : NULL;
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
        gemm_block(mi, ncols, kc, ap, bk, bstride, y + (size_t)i0 * p->n + n0, p->n, flags,
                   bias0, res ? res + (size_t)i0 * p->n + n0 : NULL, p->n, relu, pf, pl, parts,
                   NULL);
      }
    } else {
      for (int i0 = m0; i0 < m1; i0 += SN_MR)
        pack_panel(g, p, x, in, i0, imin(SN_MR, m1 - i0), k0, kc,
                   ap + (size_t)((i0 - m0) / SN_MR) * SN_PANEL);
      gemm_block(m1 - m0, ncols, kc, ap, bk, bstride, y + (size_t)m0 * p->n + n0, p->n, flags,
                 bias0, res ? res + (size_t)m0 * p->n + n0 : NULL, p->n, relu, NULL, 0, 0,
                 next_kblock(p, bp, kb, p0));
    }
  }
}

void sn_gemm_conv_forward_avx512(const sn_conv_geom *g, int nthreads, const float *x,
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
          gemm_block(p.m, ncols, kc, a + (size_t)kb * p.mp * SN_PANEL,
                     sn_gemm_bblock(bp, npan, k0) + (size_t)q0 * bstride, bstride, y + n0, p.n,
                     flags, bias ? bias + n0 : NULL, res ? res + n0 : NULL, p.n, relu, NULL, 0, 0,
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
