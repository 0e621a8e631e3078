/* conv_gemm_block.c - the packed AVX-512 GEMM block (conv_gemm_block.h): B packing, the 14 x 32
 * micro-kernel with its epilogue and its prefetches.
 *
 * A block runs column panel by column panel, each against all row panels: the first row panel
 * streams the B panel (kc x 32) from memory and the later ones reuse it from L1, so the later
 * ones prefetch the next B panel into L2 (conv_gemm_block_body.h). */
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

#include "conv_gemm_block_body.h"

void sn_conv_gemm_block(int m, int n, int kc, const float *ap, const float *bp, size_t bstride,
                        float *c, size_t ldc, int flags, const float *bias, const float *res,
                        size_t ldr, int relu, const float *bnext) {
  gemm_block(m, n, kc, ap, bp, bstride, c, ldc, flags, bias, res, ldr, relu, NULL, 0, 0, bnext);
}

#pragma GCC pop_options
