/* conv_lowp_tiles.c - the micro-kernels of the low-precision convolutions (conv_lowp.h has the
 * layouts): AVX-512 tiles of 14 rows x 32 columns (28 zmm accumulators, one broadcast of a
 * 4-byte k-group per row and step, vpdpbusd for int8 and vdpbf16ps for bf16) and AMX blocks of
 * 32 x 32 (four C tiles, two A and two B tiles per 64-byte k-step, tdpbusd / tdpbf16ps). Each
 * kernel sums over all of K in order and stores its sums to the C buffer (row stride SN_LP_LDC);
 * the epilogue (conv_lowp.c) reads them from there.
 *
 * Rounding: int8 sums are exact (a uint8 x int8 product fits 16 bits, K <= 2^15 of them fit
 * int32). bf16 products are exact in float32 (8 x 8 significant bits); vdpbf16ps adds the two
 * products of a group to the accumulator with float32 round-to-nearest-even, treating bf16
 * denormals as zero and flushing denormal results (Intel SDM); tdpbf16ps likewise accumulates in
 * float32. The conversions never produce bf16 denormals (float32 denormals become zeros). */
#include <immintrin.h>
#include <string.h>

#include "conv_lowp.h"

/* ------------------------------------------------------------ AVX-512 (VNNI, BF16) */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16")

static inline __attribute__((always_inline)) __m512i bcast32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/* Row r's 4 bytes at offset 4 * j of k-step s: rows 0-4, 5-9 and 10-13 from three bases, so that
 * every address is a base plus lda times 0, 1, 2, 3 or 4 plus a constant (no row pointers to
 * keep). */
#define SN_LP_ROW(r, j) ((r) < 5 ? p0 : (r) < 10 ? p1 : p2) + ((r) % 5) * lda + 4 * (j)

/* Constant MRC (rows) and TWO (two column blocks) so that the accumulators stay in registers.
 * A row r's k-step s at a + r * lda + koff[s] (64 bytes = 16 groups); B's group g at b + 64 g. */
static inline __attribute__((always_inline)) void int8_tile(const int MRC, const int TWO, int ks,
                                                            const uint8_t *a, size_t lda,
                                                            const int32_t *koff, const uint8_t *b0,
                                                            const uint8_t *b1, int32_t *c) {
  __m512i c0[SN_LP_MR], c1[SN_LP_MR];
#pragma GCC unroll 14
  for (int r = 0; r < MRC; r++) {
    c0[r] = _mm512_setzero_si512();
    c1[r] = _mm512_setzero_si512();
  }
  for (int s = 0; s < ks; s++) {
    const uint8_t *p0 = a + koff[s], *p1 = p0 + 5 * lda, *p2 = p0 + 10 * lda;
    const uint8_t *q0 = b0 + 1024 * (size_t)s, *q1 = TWO ? b1 + 1024 * (size_t)s : q0;
#pragma GCC unroll 2
    for (int j = 0; j < 16; j++) {
      const __m512i v0 = _mm512_loadu_si512(q0 + 64 * j);
      const __m512i v1 = TWO ? _mm512_loadu_si512(q1 + 64 * j) : v0;
#pragma GCC unroll 14
      for (int r = 0; r < MRC; r++) {
        const __m512i av = bcast32(SN_LP_ROW(r, j));
        c0[r] = _mm512_dpbusd_epi32(c0[r], av, v0);
        if (TWO) c1[r] = _mm512_dpbusd_epi32(c1[r], av, v1);
      }
    }
  }
#pragma GCC unroll 14
  for (int r = 0; r < MRC; r++) {
    _mm512_storeu_si512(c + r * SN_LP_LDC, c0[r]);
    if (TWO) _mm512_storeu_si512(c + r * SN_LP_LDC + 16, c1[r]);
  }
}

static inline __attribute__((always_inline)) void bf16_tile(const int MRC, const int TWO, int ks,
                                                            const uint8_t *a, size_t lda,
                                                            const int32_t *koff, const uint8_t *b0,
                                                            const uint8_t *b1, float *c) {
  __m512 c0[SN_LP_MR], c1[SN_LP_MR];
#pragma GCC unroll 14
  for (int r = 0; r < MRC; r++) {
    c0[r] = _mm512_setzero_ps();
    c1[r] = _mm512_setzero_ps();
  }
  for (int s = 0; s < ks; s++) {
    const uint8_t *p0 = a + koff[s], *p1 = p0 + 5 * lda, *p2 = p0 + 10 * lda;
    const uint8_t *q0 = b0 + 1024 * (size_t)s, *q1 = TWO ? b1 + 1024 * (size_t)s : q0;
#pragma GCC unroll 2
    for (int j = 0; j < 16; j++) {
      const __m512bh v0 = (__m512bh)_mm512_loadu_si512(q0 + 64 * j);
      const __m512bh v1 = TWO ? (__m512bh)_mm512_loadu_si512(q1 + 64 * j) : v0;
#pragma GCC unroll 14
      for (int r = 0; r < MRC; r++) {
        const __m512bh av = (__m512bh)bcast32(SN_LP_ROW(r, j));
        c0[r] = _mm512_dpbf16_ps(c0[r], av, v0);
        if (TWO) c1[r] = _mm512_dpbf16_ps(c1[r], av, v1);
      }
    }
  }
#pragma GCC unroll 14
  for (int r = 0; r < MRC; r++) {
    _mm512_storeu_ps(c + r * SN_LP_LDC, c0[r]);
    if (TWO) _mm512_storeu_ps(c + r * SN_LP_LDC + 16, c1[r]);
  }
}

#define SN_LP_CASE(R, F)                                                                           \
  case R:                                                                                          \
    if (b1)                                                                                        \
      F(R, 1, ks, a, lda, koff, b0, b1, c);                                                        \
    else                                                                                           \
      F(R, 0, ks, a, lda, koff, b0, b1, c);                                                        \
    break;
#define SN_LP_CASES(F)                                                                             \
  SN_LP_CASE(14, F)                                                                                \
  SN_LP_CASE(13, F)                                                                                \
  SN_LP_CASE(12, F)                                                                                \
  SN_LP_CASE(11, F)                                                                                \
  SN_LP_CASE(10, F)                                                                                \
  SN_LP_CASE(9, F)                                                                                 \
  SN_LP_CASE(8, F)                                                                                 \
  SN_LP_CASE(7, F)                                                                                 \
  SN_LP_CASE(6, F)                                                                                 \
  SN_LP_CASE(5, F)                                                                                 \
  SN_LP_CASE(4, F) SN_LP_CASE(3, F) SN_LP_CASE(2, F) SN_LP_CASE(1, F)

void sn_lp_avx512_int8(int mr, int ks, const uint8_t *a, size_t lda, const int32_t *koff,
                       const uint8_t *b0, const uint8_t *b1, int32_t *c) {
  switch (mr) {
    SN_LP_CASES(int8_tile)
  default:
    break;
  }
}

void sn_lp_avx512_bf16(int mr, int ks, const uint8_t *a, size_t lda, const int32_t *koff,
                       const uint8_t *b0, const uint8_t *b1, float *c) {
  switch (mr) {
    SN_LP_CASES(bf16_tile)
  default:
    break;
  }
}

#pragma GCC pop_options

/* ------------------------------------------------------------ AMX */

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-int8,amx-bf16")

/* The tile configuration: palette 1, tiles 0-3 C, 4-5 A, 6-7 B, each 16 rows x 64 bytes. */
typedef struct tile_config {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

/* In static storage: GCC 12 does not see _tile_loadconfig read the 64 bytes, and dropped the
 * stores of a configuration built on the stack before it (a #GP on ldtilecfg). */
static const tile_config amx_config __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

void sn_lp_amx_begin(void) { _tile_loadconfig(&amx_config); }

void sn_lp_amx_end(void) { _tile_release(); }

/* The tile products of one k-step, tdpbf16ps (BF = 1) or tdpbusd: C tile (0..3) += A tile (4, 5)
 * . B tile (6, 7); the tile numbers are part of the instruction. */
static inline __attribute__((always_inline)) void dp_0_4_6(const int BF) {
  if (BF)
    _tile_dpbf16ps(0, 4, 6);
  else
    _tile_dpbusd(0, 4, 6);
}
static inline __attribute__((always_inline)) void dp_1_4_7(const int BF) {
  if (BF)
    _tile_dpbf16ps(1, 4, 7);
  else
    _tile_dpbusd(1, 4, 7);
}
static inline __attribute__((always_inline)) void dp_2_5_6(const int BF) {
  if (BF)
    _tile_dpbf16ps(2, 5, 6);
  else
    _tile_dpbusd(2, 5, 6);
}
static inline __attribute__((always_inline)) void dp_3_5_7(const int BF) {
  if (BF)
    _tile_dpbf16ps(3, 5, 7);
  else
    _tile_dpbusd(3, 5, 7);
}

/* One body for both types (BF constant); c holds 4-byte sums. Each k-step loads the B tiles and
 * the first A tile before the products that need them, so that the loads of the second A tile
 * overlap the first products. */
static inline __attribute__((always_inline)) void amx_block(const int BF, int ks, const uint8_t *a,
                                                            size_t lda, const int32_t *koff,
                                                            int two_a, const uint8_t *b0,
                                                            const uint8_t *b1, void *c) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const uint8_t *a1 = a + 16 * lda;
  for (int s = 0; s < ks; s++) {
    _tile_loadd(6, b0 + 1024 * (size_t)s, 64);
    _tile_loadd(4, a + koff[s], lda);
    if (b1) _tile_loadd(7, b1 + 1024 * (size_t)s, 64);
    dp_0_4_6(BF);
    if (two_a) _tile_loadd(5, a1 + koff[s], lda);
    if (b1) dp_1_4_7(BF);
    if (two_a) dp_2_5_6(BF);
    if (two_a && b1) dp_3_5_7(BF);
  }
  uint8_t *cb = c;
  const size_t ld = 4 * SN_LP_LDC, half = 4 * 16 * SN_LP_LDC;
  _tile_stored(0, cb, ld);
  if (b1) _tile_stored(1, cb + 64, ld);
  if (two_a) _tile_stored(2, cb + half, ld);
  if (two_a && b1) _tile_stored(3, cb + half + 64, ld);
}

void sn_lp_amx_int8(int ks, const uint8_t *a, size_t lda, const int32_t *koff, int two_a,
                    const uint8_t *b0, const uint8_t *b1, int32_t *c) {
  amx_block(0, ks, a, lda, koff, two_a, b0, b1, c);
}

void sn_lp_amx_bf16(int ks, const uint8_t *a, size_t lda, const int32_t *koff, int two_a,
                    const uint8_t *b0, const uint8_t *b1, float *c) {
  amx_block(1, ks, a, lda, koff, two_a, b0, b1, c);
}

#pragma GCC pop_options
