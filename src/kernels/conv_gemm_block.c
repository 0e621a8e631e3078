/* conv_gemm_block.c - the packed AVX-512 GEMM block (conv_gemm_block.h): B packing, the 14 x 32
 * micro-kernel with its epilogue and its prefetches.
 *
 * A block runs column panel by column panel, each against all row panels: the first row panel
 * streams the B panel (kc x 32) from memory and the later ones reuse it from L1, so the later
 * ones prefetch the next B panel into L2 (sn_conv_gemm_block_prefetch). */
#include <stddef.h>

#include "conv_gemm_block.h"
#include "conv_util.h"

/* ------------------------------------------------------------ portable parts (no AVX-512) */

int sn_conv_gemm_kc(int k) {
  int nkb = ceil_div(k, SN_KC);
  return imin(k, (ceil_div(k, nkb) + 15) / 16 * 16);
}

size_t sn_conv_gemm_packb_floats(int k, int n) {
  return (size_t)ceil_div(n, SN_NR) * SN_NR * (size_t)k;
}

void sn_conv_gemm_packb(int k, int n, const float *b, size_t ldb, float *bp) {
  int kc = sn_conv_gemm_kc(k), npan = ceil_div(n, SN_NR);
  for (int k0 = 0; k0 < k; k0 += kc) {
    int kcur = imin(kc, k - k0);
    for (int j = 0; j < npan; j++) {
      float *p = (float *)sn_conv_gemm_bblock(bp, npan, k0) + (size_t)j * kcur * SN_NR;
      int nj = imin(SN_NR, n - j * SN_NR);
      for (int kk = 0; kk < kcur; kk++)
        for (int q = 0; q < SN_NR; q++)
          p[(size_t)kk * SN_NR + q] = q < nj ? b[(k0 + kk) * ldb + j * SN_NR + q] : 0.0f;
    }
  }
}

/* ------------------------------------------------------------ AVX-512 parts */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

/* Packed-panel micro-kernel: C (MRC, n) [+]= a (MRC, kc; stride SN_LDA) . b, then epilogue. */
static inline __attribute__((always_inline)) void ukernel(const int MRC, int n, int kc,
                                                          const float *a, const float *b, float *c,
                                                          size_t ldc, int flags, const float *bias,
                                                          const float *res, size_t ldr, int relu,
                                                          const float *pf, int pfl) {
  __m512 c0[SN_MR], c1[SN_MR];
  uk_zero(MRC, c0, c1, c, ldc, res, ldr);
  uk_loop(MRC, SN_LDA, kc, a, b, c0, c1, pf, pfl);
  uk_store(MRC, c0, c1, n, c, ldc, flags, bias, res, ldr, relu);
}

#define SN_UK_CASE(R)                                                                              \
  case R:                                                                                          \
    ukernel(R, n, kc, a, b, c, ldc, flags, bias, res, ldr, relu, pf, pfl);                         \
    break;

static void ukernel_m(int m, int n, int kc, const float *a, const float *b, float *c, size_t ldc,
                      int flags, const float *bias, const float *res, size_t ldr, int relu,
                      const float *pf, int pfl) {
  switch (m) {
    /* clang-format off */
    SN_UK_CASE(14) SN_UK_CASE(13) SN_UK_CASE(12) SN_UK_CASE(11) SN_UK_CASE(10) SN_UK_CASE(9)
    SN_UK_CASE(8) SN_UK_CASE(7) SN_UK_CASE(6) SN_UK_CASE(5) SN_UK_CASE(4) SN_UK_CASE(3)
    SN_UK_CASE(2) SN_UK_CASE(1)
        /* clang-format on */
        default : break;
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

void sn_conv_gemm_block(int m, int n, int kc, const float *ap, const float *bp, size_t bstride,
                        float *c, size_t ldc, int flags, const float *bias, const float *res,
                        size_t ldr, int relu, const float *bnext) {
  gemm_block(m, n, kc, ap, bp, bstride, c, ldc, flags, bias, res, ldr, relu, NULL, 0, 0, bnext);
}

void sn_conv_gemm_block_prefetch(int m, int n, int kc, const float *ap, const float *bp,
                                 size_t bstride, float *c, size_t ldc, int flags, const float *bias,
                                 const float *res, size_t ldr, int relu, const float *pf, int pfl,
                                 int pfparts, const float *bafter) {
  gemm_block(m, n, kc, ap, bp, bstride, c, ldc, flags, bias, res, ldr, relu, pf, pfl, pfparts,
             bafter);
}

#pragma GCC pop_options
