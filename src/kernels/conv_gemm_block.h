/* conv_gemm_block.h - private to src/kernels: the packed AVX-512 GEMM block with a fused
 * epilogue, the building block of the convolution as GEMM (conv_gemm.c) and of the inference
 * Winograd products (conv_wino.c). A leaf: it calls nothing of the other convolution files.
 * Sizes in floats.
 *
 * C (M, N) = A (M, K) . B (K, N):
 *   B is packed once at plan time, K in blocks of kc = sn_conv_gemm_kc(K) <= SN_KC, each block as
 *   panels of SN_NR columns: bp[K/kc][N/NR][kc][NR] (zero padded), so that one K block of B is
 *   one sequential stream (hardware prefetch) whichever columns a task takes.
 *   A is copied per call into row panels of SN_MR rows with the fixed row stride SN_LDA:
 *   ap[M/MR][MR][SN_LDA], one K block at a time. A fixed stride makes every
 *   broadcast address a constant offset (no index registers), and its 1088-byte step spreads the
 *   14 rows over distinct L1 sets. Micro-tile SN_MR x SN_NR = 14 x 32 (28 zmm accumulators).
 * Each element of C is one chain of FMAs over K in order: independent of how callers split the
 * work. The functions with AVX-512 bodies run only where the CPU has it (conv.c checks). */
#ifndef SN_CONV_GEMM_BLOCK_H
#define SN_CONV_GEMM_BLOCK_H

#include <stddef.h>

#include "conv_util.h"
#include "relu.h"

#define SN_MR 14
#define SN_NR 32
#define SN_KC 256 /* K block */
#ifndef SN_LDA
#define SN_LDA (SN_KC + 16) /* row stride of a packed A panel */
#endif
#define SN_PANEL (SN_MR * SN_LDA) /* floats per packed A panel */
#define SN_ROWS_LDA 6             /* Cin * stride of the row-direct kernel (RGB stem, stride 2) */

/* Epilogue flags of the macro-kernel. */
enum {
  SN_GEMM_ACC = 1, /* C += A.B (else C = A.B) */
  SN_GEMM_EPI = 2  /* then C = act(C + bias + res) */
};

/* K block for a GEMM of depth k: equal blocks, multiples of 16, at most SN_KC. */
int sn_conv_gemm_kc(int k);
size_t sn_conv_gemm_packb_floats(int k, int n);
/* b (K, N) with row stride ldb -> bp (sn_conv_gemm_packb_floats). Portable C, plan time. */
void sn_conv_gemm_packb(int k, int n, const float *b, size_t ldb, float *bp);
/* Start of K block [k0, k0 + kcur) in a packed B with npan = ceil(N/NR) column panels; its
 * column panel j is at + j * kcur * SN_NR. */
static inline const float *sn_conv_gemm_bblock(const float *bp, int npan, int k0) {
  return bp + (size_t)k0 * npan * SN_NR;
}

/* C (m, n) [+]= ap . bp over kc, then the epilogue when flags has SN_GEMM_EPI.
 * ap: ceil(m/MR) packed A panels (SN_PANEL floats each, consecutive), kc <= SN_KC.
 * bp: ceil(n/NR) packed B panels, panel j at bp + j * bstride (bstride >= kc * NR).
 * bias (n) or NULL, res (m, n) with row stride ldr or NULL; c row stride ldc.
 * bnext: the B panel (kc x NR) the caller runs next, or NULL: with 2 or more A panels the later
 * ones prefetch it into L2 while the first panel's reads of B are done. */
void sn_conv_gemm_block(int m, int n, int kc, const float *ap, const float *bp, size_t bstride,
                        float *c, size_t ldc, int flags, const float *bias, const float *res,
                        size_t ldr, int relu, const float *bnext);

/* ------------------------------------------------------------ micro-kernel pieces
 * Shared by the block's kernel and the row-direct kernel of conv_gemm.c, which reads A in place
 * (no packing) for convolutions with Cin * stride == SN_ROWS_LDA. */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")

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
 * prefetches into L2 pfl cache lines per k step from pf onwards (see sn_conv_gemm_block). */
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
                                                           size_t ldc, int flags, const float *bias,
                                                           const float *res, size_t ldr, int relu) {
  __mmask16 m0 = tail_mask(n), m1 = tail_mask(n - 16);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  if ((flags & SN_GEMM_EPI) && bias) {
    bias0 = _mm512_maskz_loadu_ps(m0, bias);
    bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
  }
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
        v0 = sn_relu_ps(v0);
        v1 = sn_relu_ps(v1);
      }
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

#pragma GCC pop_options

#endif /* SN_CONV_GEMM_BLOCK_H */
