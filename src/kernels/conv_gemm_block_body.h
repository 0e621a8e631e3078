/* conv_gemm_block_body.h - private to conv_gemm_block.c and conv_gemm.c: the body of the packed
 * AVX-512 GEMM block (the 14 x 32 micro-kernel over a block of row and column panels) as static
 * functions. conv_gemm_block.c exports it (sn_conv_gemm_block, for Winograd's GEMMs); the
 * convolution GEMM in conv_gemm.c includes it too, so that its calls are inlined into its
 * loops: through the exported function (another translation unit) resnet50's 1x1 layers at
 * batch 8 ran about 1.5% slower (19 alternated rounds, median 0.986 [q1 0.964, q3 0.996]).
 * Include it inside a region compiled for AVX-512 (#pragma GCC target), after
 * conv_gemm_block.h, conv_util.h and <immintrin.h>. */
#ifndef SN_CONV_GEMM_BLOCK_BODY_H
#define SN_CONV_GEMM_BLOCK_BODY_H

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
  /* clang-format off */
  switch (m) {
    SN_UK_CASE(14) SN_UK_CASE(13) SN_UK_CASE(12) SN_UK_CASE(11) SN_UK_CASE(10) SN_UK_CASE(9)
    SN_UK_CASE(8) SN_UK_CASE(7) SN_UK_CASE(6) SN_UK_CASE(5) SN_UK_CASE(4) SN_UK_CASE(3)
    SN_UK_CASE(2) SN_UK_CASE(1)
  default:
    break;
  }
  /* clang-format on */
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

#endif /* SN_CONV_GEMM_BLOCK_BODY_H */
