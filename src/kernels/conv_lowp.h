/* conv_lowp.h - private to src/kernels: the low-precision inference convolutions (bf16, int8) of
 * conv_lowp.c, chosen by the dispatcher conv.c, and their micro-kernels (conv_lowp_tiles.c).
 *
 * The convolution is C (M, N) = A (M, K) . B (K, N) over 32-bit k-groups: four bytes of a row of
 * A (4 uint8 or 2 bf16 values) meet four bytes of a column of B in one lane of one instruction
 * (vpdpbusd, vdpbf16ps, or a row of an AMX tile). Layouts (bytes):
 *   B, packed once: [ceil(N/16)][KG][16 columns][4 bytes], KG = Kp * es / 4 groups with K padded
 *     by zeros to Kp, a multiple of 64 bytes (one AMX tile row). A column block's group row is 64
 *     bytes: the zmm of the AVX-512 kernels and a row of an AMX B tile (16 of them per tile).
 *   A: rows at a stride lda (packed rows of Kp elements, or the input read in place), k-step s
 *     (64 bytes) of row r at r * lda + koff[s]: 64 s for packed rows, the tap's offset for the
 *     input read in place (conv_lowp.c, line mode).
 * The micro-kernels write their sums (int32 or float32) to a C buffer of SN_LP_LDC columns. */
#ifndef SN_CONV_LOWP_H
#define SN_CONV_LOWP_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SN_LP_MR 14 /* rows of the AVX-512 micro-tile (28 zmm accumulators for 32 columns) */
#define SN_LP_AMX_ROWS 32
#define SN_LP_LDC 32 /* columns of the C buffer (one 32-column panel) */

typedef struct sn_lp_conv sn_lp_conv;

/* conv_lowp.c: prepared convolutions (amx 1: the AMX kernels, 0: AVX-512). */
int sn_lp_prepare(const sn_conv_geom *g, const sn_conv_lp *q, int amx, sn_lp_conv **out);
void sn_lp_pack(sn_lp_conv *c, const float *w, const float *bias);
size_t sn_lp_workspace(const sn_lp_conv *c); /* floats, any batch <= g->n */
void sn_lp_forward(const sn_lp_conv *c, int nthreads, int n, const void *x, const sn_conv_in *in,
                   const void *res, int relu, void *y, float *ws);
const char *sn_lp_name(const sn_lp_conv *c);
/* A pair: y = act(conv c (x) + conv p (px)), p's output never stored. p must be an int8 1x1
 * stride-1 convolution reading uint8 px in place with float32 output (sn_lp_pair_ok), with c's
 * output geometry; the sum is bit for bit that of p writing its float32 output and c reading it as
 * its residual. AVX-512 only (not AMX). */
int sn_lp_pair_ok(const sn_lp_conv *c, const sn_lp_conv *p);
void sn_lp_forward_pair(const sn_lp_conv *c, const sn_lp_conv *p, int nthreads, int n,
                        const void *x, const sn_conv_in *in, const void *px, int relu, void *y,
                        float *ws);
void sn_lp_destroy(sn_lp_conv *c);

/* conv_lowp_tiles.c: micro-kernels. */
/* AVX-512: C (mr <= SN_LP_MR rows, 16 or 32 columns) = A . B over ks k-steps of 64 bytes: row r's
 * step s at a + r * lda + koff[s]; B's column block 0 at b0, block 1 at b1 (NULL: 16 columns).
 * int8: uint8 x int8 -> int32 (AVX512-VNNI); bf16: float32 (AVX512-BF16). */
void sn_lp_avx512_int8(int mr, int ks, const uint8_t *a, size_t lda, const int32_t *koff,
                       const uint8_t *b0, const uint8_t *b1, int32_t *c);
void sn_lp_avx512_bf16(int mr, int ks, const uint8_t *a, size_t lda, const int32_t *koff,
                       const uint8_t *b0, const uint8_t *b1, float *c);
/* AMX: C (32 rows, 32 columns) = A . B over ks k-steps of 64 bytes: A rows r < 16 at
 * a + r * lda + koff[s], rows 16..31 (when two_a) at a + (16 + r) * lda + koff[s]; B tile of
 * column block 0 at b0 + s * 1024, of block 1 (when b1) at b1 + s * 1024. Rows and columns not
 * computed are left as they were. Call between sn_lp_amx_begin and sn_lp_amx_end on the thread. */
void sn_lp_amx_int8(int ks, const uint8_t *a, size_t lda, const int32_t *koff, int two_a,
                    const uint8_t *b0, const uint8_t *b1, int32_t *c);
void sn_lp_amx_bf16(int ks, const uint8_t *a, size_t lda, const int32_t *koff, int two_a,
                    const uint8_t *b0, const uint8_t *b1, float *c);
/* Loads the tile configuration (8 tiles of 16 rows x 64 bytes) on the calling thread / releases
 * the tiles. */
void sn_lp_amx_begin(void);
void sn_lp_amx_end(void);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_LOWP_H */
