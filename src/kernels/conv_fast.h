/* conv_fast.h - private to src/kernels: the AVX-512 inference convolution paths behind
 * sn_conv_prepare (conv_impl.c). Tensors are float32 NHWC; all sizes in floats.
 *
 * Packed GEMM (gemm_avx512.c): C (M, N) = A (M, K) . B (K, N) with a fused epilogue.
 *   B is packed once at plan time, K in blocks of kc = sn_gemm_kc(K) <= SN_KC, each block as
 *   panels of SN_NR columns: bp[K/kc][N/NR][kc][NR] (zero padded), so that one K block of B is
 *   one sequential stream (hardware prefetch) whichever columns a task takes.
 *   A is copied per call into row panels of SN_MR rows with the fixed row stride SN_LDA:
 *   ap[M/MR][MR][SN_LDA], one K block at a time. A fixed stride makes every
 *   broadcast address a constant offset (no index registers), and its 1088-byte step spreads the
 *   14 rows over distinct L1 sets. Micro-tile SN_MR x SN_NR = 14 x 32 (28 zmm accumulators).
 * Winograd F(4x4, 3x3) (winograd_avx512.c): 3x3 stride-1 convolutions; U = G g G^T per
 *   (xi, nu) packed as 36 GEMM B operands; tiles are processed in bands so that V and M stay in L2.
 *
 * Everything with the suffix _avx512 must only be called when sn_use_avx512(g->opts.portable).
 */
#ifndef SN_CONV_FAST_H
#define SN_CONV_FAST_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SN_MR 14
#define SN_NR 32
#define SN_KC 256             /* K block */
#ifndef SN_LDA
#define SN_LDA (SN_KC + 16)   /* row stride of a packed A panel */
#endif
#define SN_PANEL (SN_MR * SN_LDA) /* floats per packed A panel */

/* ------------------------------------------------------------ packed GEMM */

/* Epilogue flags of the macro-kernel. */
enum { SN_GEMM_ACC = 1, /* C += A.B (else C = A.B) */
       SN_GEMM_EPI = 2  /* then C = act(C + bias + res) */ };

/* K block for a GEMM of depth k: equal blocks, multiples of 16, at most SN_KC. */
int sn_gemm_kc(int k);
size_t sn_gemm_packb_floats(int k, int n);
/* b (K, N) with row stride ldb -> bp (sn_gemm_packb_floats). Portable C, plan time. */
void sn_gemm_packb(int k, int n, const float *b, size_t ldb, float *bp);
/* Start of K block [k0, k0 + kcur) in a packed B with npan = ceil(N/NR) column panels; its
 * column panel j is at + j * kcur * SN_NR. */
static inline const float *sn_gemm_bblock(const float *bp, int npan, int k0) {
  return bp + (size_t)k0 * npan * SN_NR;
}

/* C (m, n) [+]= ap . bp over kc, then the epilogue when flags has SN_GEMM_EPI.
 * ap: ceil(m/MR) packed A panels (SN_PANEL floats each, consecutive), kc <= SN_KC.
 * bp: ceil(n/NR) packed B panels, panel j at bp + j * bstride (bstride >= kc * NR).
 * bias (n) or NULL, res (m, n) with row stride ldr or NULL; c row stride ldc.
 * bnext: the B panel (kc x NR) the caller runs next, or NULL: with 2 or more A panels the later
 * ones prefetch it into L2 while the first panel's reads of B are done. */
void sn_gemm_block_avx512(int m, int n, int kc, const float *ap, const float *bp, size_t bstride,
                          float *c, size_t ldc, int flags, const float *bias, const float *res,
                          size_t ldr, int relu, const float *bnext);

/* Convolution as packed GEMM (A rows copied from x for unpadded 1x1, else built by im2col).
 * bp = sn_gemm_packb of w viewed as (KH*KW*Cin, Cout). g->n is the batch of this call. */
size_t sn_gemm_conv_workspace(const sn_conv_geom *g, int nthreads);
/* in: map applied to x's values as the A rows are copied (unpadded 1x1 only), or NULL. */
void sn_gemm_conv_forward_avx512(const sn_conv_geom *g, int nthreads, const float *x,
                                 const sn_conv_in *in, const float *bp, const float *bias,
                                 const float *res, int relu, float *y, float *ws);

/* ------------------------------------------------------------ Winograd F(m x m, 3x3), m = 4 or 2 */

/* 1 if g is a 3x3 stride-1 convolution (any zero padding). */
int sn_wino_eligible(const sn_conv_geom *g);
size_t sn_wino_u_floats(int m, int cin, int cout);
/* w (3, 3, Cin, Cout) -> u: U = G g G^T computed in double, rounded once, packed per (xi, nu). */
void sn_wino_prepare_u(int m, int cin, int cout, const float *w, float *u);
size_t sn_wino_workspace(int m, const sn_conv_geom *g, int nthreads);
void sn_wino_forward_avx512(int m, const sn_conv_geom *g, int nthreads, const float *x,
                            const float *u, const float *bias, const float *res, int relu, float *y,
                            float *ws);

/* ------------------------------------------------------------ algorithm choice (for tests) */

typedef enum sn_conv_algo {
  SN_CONV_AUTO = 0,
  SN_CONV_GENERIC = 1,  /* sn_conv2d_forward on a copy of the weights */
  SN_CONV_GEMM = 2,     /* packed AVX-512 GEMM (1x1 rows copied, else im2col rows) */
  SN_CONV_WINOGRAD = 3, /* Winograd F(4x4, 3x3), only if sn_wino_eligible */
  SN_CONV_DIRECT = 4,   /* AVX-512: the training path's kernels (sn_conv2d_forward; the direct NHWC
                           tiles for the small-channel shapes the size rule gives it) on a copy of
                           the weights */
  SN_CONV_WINOGRAD2 = 5 /* Winograd F(2x2, 3x3), only if sn_wino_eligible */
} sn_conv_algo;

/* sn_conv_prepare with a forced algorithm (falls back to generic when the algorithm cannot run:
 * no AVX-512, or Winograd on an ineligible geometry). */
int sn_conv_prepare_algo(const sn_conv_geom *g, const float *w, const float *bias,
                         sn_conv_algo algo, sn_conv_impl **out);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_FAST_H */
