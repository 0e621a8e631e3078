/* conv_lowp.c - low-precision inference convolutions: bf16 and int8 as a GEMM over 32-bit
 * k-groups (conv_lowp.h has the layouts) on AMX tiles or AVX-512 (AVX512-BF16, AVX512-VNNI).
 *
 * A call: (1) stage the input where the kernels cannot read it as it is: a float32 input is
 * mapped (the input map of a batch norm folded into this layer's input), then rounded to bf16 or
 * quantized to uint8 (sn_quant_u8_ref's rule) into the workspace; for the line mode a
 * zero-padded copy is made (padding = the zero point). (2) Rows of A (units of 32 rows for AMX,
 * 14 for AVX-512) come from one of:
 *   pack  im2col (or the pixel's channels, for unpadded 1x1) of the staged or uint8 input into
 *         a buffer of rows at a stride;
 *   rows  unpadded 1x1 stride 1 with Cin * es a multiple of 64: the input read in place,
 *         row m = pixel m (AMX copies the last, partial unit of rows; AVX-512 runs fewer rows);
 *   line  stride 1 with Cin * es a multiple of 64: the padded input, on its padded width:
 *         position p = y * Wp + x of an image reads, for tap (ky, kx), padded pixel
 *         p + ky * Wp + kx, so consecutive positions are rows at stride Cin; positions with
 *         x >= OW are computed and dropped (3.6% more rows at 56x56, 29% at 7x7, where AVX-512
 *         packs instead), no im2col.
 * (3) Micro-kernels (conv_lowp_tiles.c) over all of K per 32x32 (AMX) or 14x32 (AVX-512) block,
 * then the epilogue here: int8 y = (sum - zp * colsum[o]) * mult[o] + bias[o] (the integer part
 * exact), bf16 y = sum + bias[o]; + residual
 * (float32, or uint8 * res_scale); ReLU; stored as float32 or quantized to uint8.
 * Work split: blocks of rows per task (each task packs its own rows, B streams once per task)
 * when there are at least 4 blocks per thread, else column panels per task over all rows
 * (packed once, shared): at batch 1 the 7x7 and 14x14 layers have 2 to 7 blocks of 32 rows.
 * Every output is one kernel's sum over K in order: independent of the split, the batch and the
 * thread count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_lowp.h"
#include "conv_util.h"

enum { A_PACK = 0, A_ROWS = 1, A_LINE = 2 };

struct sn_lp_conv {
  sn_conv_geom g; /* g.n: the largest batch */
  sn_conv_lp q;
  int amx, es;   /* AMX (1) or AVX-512; bytes per element (1 int8, 2 bf16) */
  int k, kp, kg; /* K, K padded to 64 bytes (elements), 4-byte groups of a row */
  int nb;        /* column blocks of 16 */
  int mode;      /* A_PACK, A_ROWS, A_LINE */
  int hs, ws;    /* the staged input's height and width (padded in A_LINE) */
  size_t lda;    /* AMX packed rows: bytes between rows */
  int ks;        /* AMX k-steps of 64 bytes (kg / 16) */
  int32_t *koff; /* (ks) AMX: byte offset of k-step s in a row of A */
  uint8_t *b;    /* packed weights: nb * kg * 64 bytes */
  float *mult;   /* (N) int8: in_scale * wscale[o] */
  int32_t *comp; /* (N) int8: in_zp * colsum[o], subtracted from the sum (exact) */
  float *bias;   /* (N) the bias (0 without one) */
  int nt;        /* threads the workspace is sized for */
};

#define SN_LP_BLOCK_BYTES (256u << 10) /* a task's packed rows stay in L2 */
#define SN_LP_TASKS_PER_THREAD 4       /* row split when there are this many blocks per thread */

static int unit_rows(const sn_lp_conv *c) { return c->amx ? SN_LP_AMX_ROWS : SN_LP_MR; }

/* Bytes of one packed unit (a block of unit_rows rows). */
static size_t unit_bytes(const sn_lp_conv *c) { return (size_t)unit_rows(c) * c->lda; }

/* Units (blocks of rows) of a batch of n; positions per image in line mode. */
static int units_per_image(const sn_lp_conv *c) { return ceil_div(c->g.oh * c->ws, unit_rows(c)); }
static int num_units(const sn_lp_conv *c, int n) {
  if (c->mode == A_LINE) return n * units_per_image(c);
  return ceil_div(n * c->g.oh * c->g.ow, unit_rows(c));
}

int sn_lp_prepare(const sn_conv_geom *g, const sn_conv_lp *q, int amx, sn_lp_conv **out) {
  *out = NULL;
  sn_lp_conv *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->g = *g;
  c->q = *q;
  c->amx = amx;
  c->es = q->type == SN_PRECISION_INT8 ? 1 : 2;
  c->k = g->kh * g->kw * g->cin;
  const int epr = 64 / c->es; /* elements per 64 bytes */
  c->kp = ceil_div(c->k, epr) * epr;
  c->kg = c->kp * c->es / 4;
  c->ks = c->kg / 16;
  c->nb = ceil_div(g->cout, 16);
  c->nt = omp_get_max_threads();
  const int s1 = g->sh == 1 && g->sw == 1, whole = (g->cin * c->es) % 64 == 0;
  const int pad = g->pt || g->pl || g->pb || g->pr;
  /* AVX-512 keeps im2col where the line mode's dropped positions would cost more than packing
   * (padded width over a quarter wider than the output: 9 / 7 at 7x7). */
  const int line_ok = amx || 4 * (g->w + g->pl + g->pr) <= 5 * g->ow;
  c->mode = !s1 || !whole                      ? A_PACK
            : g->kh == 1 && g->kw == 1 && !pad ? A_ROWS
            : line_ok                          ? A_LINE
                                               : A_PACK;
  c->hs = c->mode == A_LINE ? g->h + g->pt + g->pb : g->h;
  c->ws = c->mode == A_LINE ? g->w + g->pl + g->pr : g->w;
  c->lda = (size_t)c->kp * c->es + 64; /* off a multiple of 4 KiB: rows in distinct L1 sets */
  c->koff = malloc((size_t)(c->ks ? c->ks : 1) * sizeof *c->koff);
  c->b = aligned_alloc(64, (size_t)c->nb * c->kg * 64);
  c->mult = malloc((size_t)g->cout * sizeof(float));
  c->comp = malloc((size_t)g->cout * sizeof(int32_t));
  c->bias = malloc((size_t)g->cout * sizeof(float));
  if (!c->koff || !c->b || !c->mult || !c->comp || !c->bias) {
    sn_lp_destroy(c);
    return -1;
  }
  for (int s = 0; s < c->ks; s++) {
    if (c->mode != A_LINE) {
      c->koff[s] = 64 * s;
      continue;
    }
    const int e0 = s * epr, tap = e0 / g->cin, ci = e0 % g->cin;
    c->koff[s] = (int32_t)((((size_t)(tap / g->kw) * c->ws + tap % g->kw) * g->cin + ci) * c->es);
  }
  *out = c;
  return 0;
}

void sn_lp_destroy(sn_lp_conv *c) {
  if (!c) return;
  free(c->koff);
  free(c->b);
  free(c->mult);
  free(c->comp);
  free(c->bias);
  free(c);
}

const char *sn_lp_name(const sn_lp_conv *c) {
  if (c->q.type == SN_PRECISION_INT8) return c->amx ? "int8-amx" : "int8-vnni";
  return c->amx ? "bf16-amx" : "bf16-avx512";
}

/* ------------------------------------------------------------ weights */

/* Byte i (0..3) of k-group grp of column o in the packed B. */
static uint8_t *b_at(const sn_lp_conv *c, int o, int grp) {
  return c->b + (((size_t)(o / 16) * c->kg + grp) * 16 + o % 16) * 4;
}

void sn_lp_pack(sn_lp_conv *c, const float *w, const float *bias) {
  const int n = c->g.cout, k = c->k;
  memset(c->b, 0, (size_t)c->nb * c->kg * 64);
  for (int o = 0; o < n; ++o)
    c->bias[o] = bias ? bias[o] : 0.0f;
  if (c->q.type == SN_PRECISION_BF16) {
    for (int i = 0; i < k; ++i)
      for (int o = 0; o < n; ++o) {
        const uint16_t v = sn_bf16_from_f32(w[(size_t)i * n + o]);
        memcpy(b_at(c, o, i / 2) + 2 * (i % 2), &v, 2);
      }
    return;
  }
  int8_t *q = malloc((size_t)k * n);
  float *ws = malloc((size_t)n * sizeof *ws);
  int32_t *colsum = malloc((size_t)n * sizeof *colsum);
  if (q && ws && colsum) {
    sn_quant_weights_s8(w, k, n, q, ws, colsum);
    for (int i = 0; i < k; ++i)
      for (int o = 0; o < n; ++o)
        b_at(c, o, i / 4)[i % 4] = (uint8_t)q[(size_t)i * n + o];
    for (int o = 0; o < n; ++o) {
      c->mult[o] = (float)((double)c->q.in_scale * (double)ws[o]);
      c->comp[o] = c->q.in_zp * colsum[o];
    }
  } else { /* no memory to quantize: zero weights, NaN outputs (never a plausible result) */
    for (int o = 0; o < n; ++o) {
      c->mult[o] = NAN;
      c->comp[o] = 0;
    }
  }
  free(q);
  free(ws);
  free(colsum);
}

/* ------------------------------------------------------------ workspace */

/* 1 if the call stages its input (float32 input, or the padded copy of the line mode). */
static int staged(const sn_lp_conv *c) { return !c->q.in_u8 || c->mode == A_LINE; }

static size_t staged_bytes(const sn_lp_conv *c, int n) {
  const size_t px = (size_t)c->g.cin * c->es;
  return (size_t)n * c->hs * c->ws * px + (size_t)(SN_LP_AMX_ROWS + c->g.kw + 1) * px + 64;
}

/* Per thread: two C buffers (the second for a paired convolution's sums), a row for the AVX-512
 * interleave or the AMX tail copy, the output pixels of its units, the packed block of the row
 * split. */
static size_t block_units(const sn_lp_conv *c) {
  const size_t u = unit_bytes(c);
  return u >= SN_LP_BLOCK_BYTES ? 1 : SN_LP_BLOCK_BYTES / u;
}
static int max_units(const sn_lp_conv *c);
static size_t thread_bytes(const sn_lp_conv *c) {
  size_t t = (size_t)2 * SN_LP_AMX_ROWS * SN_LP_LDC * 4 + c->lda * SN_LP_AMX_ROWS +
             (size_t)max_units(c) * SN_LP_AMX_ROWS * sizeof(int);
  if (c->mode == A_PACK) t += block_units(c) * unit_bytes(c);
  return (t + 63) & ~(size_t)63;
}
static size_t shared_bytes(const sn_lp_conv *c) {
  return c->mode == A_PACK ? (size_t)SN_LP_TASKS_PER_THREAD * c->nt * unit_bytes(c) : 0;
}

size_t sn_lp_workspace(const sn_lp_conv *c) {
  const size_t b = (staged(c) ? (staged_bytes(c, c->g.n) + 63) & ~(size_t)63 : 0) +
                   ((shared_bytes(c) + 63) & ~(size_t)63) + 64 + (size_t)c->nt * thread_bytes(c);
  return (b + 3) / 4;
}

/* ------------------------------------------------------------ AVX-512: staging, epilogue */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include <immintrin.h>

/* 16 floats to bf16 by sn_bf16_from_f32's rule, in integer arithmetic (AVX-512F only). */
static inline __m256i bf16_16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v), hi = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  __m512i r =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7F800000));
  const __mmask16 den = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7F800000));
  r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
  r = _mm512_mask_and_epi32(r, den, hi, _mm512_set1_epi32(0x8000));
  return _mm512_cvtepi32_epi16(r);
}

/* 16 floats to uint8 by sn_quant_u8_ref's rule: min(x * inv, 255 - zp) (a NaN stays NaN),
 * rounded to nearest even, + zp, clamped at 0 (NaN converts to INT_MIN: 0). */
static inline __m128i u8_16(__m512 v, __m512 inv, __m512 hi, __m512i zp) {
  const __m512 t = _mm512_min_ps(hi, _mm512_mul_ps(v, inv));
  __m512i q = _mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  q = _mm512_max_epi32(_mm512_add_epi32(q, zp), _mm512_setzero_si512());
  return _mm512_cvtusepi32_epi8(q);
}

/* One pixel's cin float32 values through the input map, to cin elements at d. */
static void stage_pixel(const sn_lp_conv *c, const float *s, const sn_conv_in *in, uint8_t *d) {
  const int cin = c->g.cin, int8 = c->q.type == SN_PRECISION_INT8;
  const __m512 inv = _mm512_set1_ps(int8 ? 1.0f / c->q.in_scale : 0.0f);
  const __m512 hi = _mm512_set1_ps((float)(255 - c->q.in_zp));
  const __m512i zp = _mm512_set1_epi32(c->q.in_zp);
  for (int j = 0; j < cin; j += 16) {
    const __mmask16 m = tail_mask(cin - j);
    __m512 v = _mm512_maskz_loadu_ps(m, s + j);
    if (in) {
      v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, in->scale + j),
                          _mm512_maskz_loadu_ps(m, in->shift + j));
      if (in->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
    }
    if (int8)
      _mm_mask_storeu_epi8(d + j, m, u8_16(v, inv, hi, zp));
    else
      _mm256_mask_storeu_epi16(d + 2 * j, m, bf16_16(v));
  }
}

/* n pixels of the padding value: the zero point (int8) or +0 (bf16). */
static void stage_fill(const sn_lp_conv *c, uint8_t *d, size_t pixels) {
  memset(d, c->q.type == SN_PRECISION_INT8 ? c->q.in_zp : 0, pixels * c->g.cin * c->es);
}

/* The staged input (n, hs, ws, Cin): x through the input map, rounded or quantized (float32 x),
 * or copied (uint8 x); padded by the convolution's padding in line mode. */
static void stage(const sn_lp_conv *c, int nt, int n, const void *x, const sn_conv_in *in,
                  uint8_t *dst) {
  const sn_conv_geom *g = &c->g;
  const int line = c->mode == A_LINE, pt = line ? g->pt : 0, pl = line ? g->pl : 0;
  const size_t px = (size_t)g->cin * c->es;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (int r = 0; r < n * c->hs; r++) {
    const int img = r / c->hs, iy = r % c->hs - pt;
    uint8_t *d = dst + (size_t)r * c->ws * px;
    if (iy < 0 || iy >= g->h) {
      stage_fill(c, d, (size_t)c->ws);
      continue;
    }
    stage_fill(c, d, (size_t)pl);
    stage_fill(c, d + (size_t)(pl + g->w) * px, (size_t)(c->ws - pl - g->w));
    const size_t src = ((size_t)img * g->h + iy) * g->w * g->cin;
    if (c->q.in_u8) {
      memcpy(d + pl * px, (const uint8_t *)x + src, (size_t)g->w * px);
      continue;
    }
    for (int ix = 0; ix < g->w; ix++)
      stage_pixel(c, (const float *)x + src + (size_t)ix * g->cin, in, d + (pl + ix) * px);
  }
}

/* Output pixels of rows [0, rows) of a block: pix[r] (-1: a row not written). */
static void block_pixels(const sn_lp_conv *c, int n, int u, int *pix) {
  const sn_conv_geom *g = &c->g;
  if (c->mode != A_LINE) {
    const int m = n * g->oh * g->ow, r0 = u * unit_rows(c);
    for (int r = 0; r < unit_rows(c); r++)
      pix[r] = r0 + r < m ? r0 + r : -1;
    return;
  }
  const int upi = units_per_image(c), img = u / upi, p0 = u % upi * unit_rows(c);
  for (int r = 0; r < unit_rows(c); r++) {
    const int p = p0 + r, y = p / c->ws, x = p % c->ws;
    pix[r] = y < g->oh && x < g->ow ? (img * g->oh + y) * g->ow + x : -1;
  }
}

/* The epilogue of one block: acc (rows, SN_LP_LDC) int32 or float32 sums of columns
 * [j0, j0 + nj) into y at the rows' pixels. pc (int8, or NULL): the paired convolution whose
 * int32 sums of the same rows and columns are acc2; its float32 output, computed as its own
 * epilogue would, is the residual. */
static void epilogue(const sn_lp_conv *c, const void *acc, int rows, const int *pix, int j0, int nj,
                     const void *res, const sn_lp_conv *pc, const int32_t *acc2, int relu,
                     void *y) {
  const int n = c->g.cout, int8 = c->q.type == SN_PRECISION_INT8;
  const __mmask16 m0 = tail_mask(nj), m1 = tail_mask(nj - 16);
  const __m512 b0 = _mm512_maskz_loadu_ps(m0, c->bias + j0),
               b1 = _mm512_maskz_loadu_ps(m1, c->bias + j0 + 16);
  const __m512 s0 = int8 ? _mm512_maskz_loadu_ps(m0, c->mult + j0) : _mm512_setzero_ps();
  const __m512 s1 = int8 ? _mm512_maskz_loadu_ps(m1, c->mult + j0 + 16) : _mm512_setzero_ps();
  const __m512i z0 = int8 ? _mm512_maskz_loadu_epi32(m0, c->comp + j0) : _mm512_setzero_si512();
  const __m512i z1 =
      int8 ? _mm512_maskz_loadu_epi32(m1, c->comp + j0 + 16) : _mm512_setzero_si512();
  const __m512 rs = _mm512_set1_ps(c->q.res_scale), z = _mm512_setzero_ps();
  const __m512 inv = _mm512_set1_ps(c->q.out_u8 ? 1.0f / c->q.out_scale : 0.0f);
  const __m512 hi = _mm512_set1_ps(255.0f);
  const __m512i zp = _mm512_setzero_si512();
  const sn_lp_conv *q = pc ? pc : c; /* the pair's constants (unused without one) */
  const __m512 pb0 = _mm512_maskz_loadu_ps(m0, q->bias + j0),
               pb1 = _mm512_maskz_loadu_ps(m1, q->bias + j0 + 16);
  const __m512 ps0 = pc ? _mm512_maskz_loadu_ps(m0, q->mult + j0) : z;
  const __m512 ps1 = pc ? _mm512_maskz_loadu_ps(m1, q->mult + j0 + 16) : z;
  const __m512i pz0 = pc ? _mm512_maskz_loadu_epi32(m0, q->comp + j0) : zp;
  const __m512i pz1 = pc ? _mm512_maskz_loadu_epi32(m1, q->comp + j0 + 16) : zp;
  for (int r = 0; r < rows; r++) {
    if (pix[r] < 0) continue;
    const size_t off = (size_t)pix[r] * n + j0;
    __m512 v0, v1;
    if (int8) {
      const int32_t *a = (const int32_t *)acc + r * SN_LP_LDC;
      v0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(a), z0)), s0, b0);
      v1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(a + 16), z1)), s1,
                           b1);
    } else {
      const float *a = (const float *)acc + r * SN_LP_LDC;
      v0 = _mm512_add_ps(_mm512_loadu_ps(a), b0);
      v1 = _mm512_add_ps(_mm512_loadu_ps(a + 16), b1);
    }
    if (res && c->q.res_u8) {
      const uint8_t *rr = (const uint8_t *)res + off;
      v0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m0, rr))),
                           rs, v0);
      v1 = _mm512_fmadd_ps(
          _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m1, rr + 16))), rs, v1);
    } else if (res) {
      const float *rr = (const float *)res + off;
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, rr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, rr + 16));
    } else if (pc) { /* bit for bit the float32 output the pair would have stored */
      const int32_t *a = acc2 + r * SN_LP_LDC;
      v0 = _mm512_add_ps(
          v0, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(a), pz0)), ps0,
                              pb0));
      v1 = _mm512_add_ps(
          v1, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(a + 16), pz1)),
                              ps1, pb1));
    }
    if (relu) {
      v0 = _mm512_max_ps(v0, z);
      v1 = _mm512_max_ps(v1, z);
    }
    if (c->q.out_u8) {
      uint8_t *d = (uint8_t *)y + off;
      _mm_mask_storeu_epi8(d, m0, u8_16(v0, inv, hi, zp));
      _mm_mask_storeu_epi8(d + 16, m1, u8_16(v1, inv, hi, zp));
    } else {
      float *d = (float *)y + off;
      _mm512_mask_storeu_ps(d, m0, v0);
      _mm512_mask_storeu_ps(d + 16, m1, v1);
    }
  }
}

#pragma GCC pop_options

/* ------------------------------------------------------------ packing A */

/* Row m of A (kp elements of es bytes: im2col of the (h, w) input src, HWIO order, the
 * padding's zero point and zeros past K) into dst. */
static void pack_row(const sn_lp_conv *c, const uint8_t *src, int m, uint8_t *dst) {
  const sn_conv_geom *g = &c->g;
  const int es = c->es, ohw = g->oh * g->ow, img = m / ohw, oy = m % ohw / g->ow,
            ox = m % ohw % g->ow;
  const int iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
  const size_t px = (size_t)g->cin * es, run = g->kw * px;
  const int fill = c->q.type == SN_PRECISION_INT8 ? c->q.in_zp : 0;
  const int kx0 = imax(0, -ix0), kx1 = imin(g->kw, g->w - ix0);
  for (int ky = 0; ky < g->kh; ky++) {
    uint8_t *d = dst + ky * run;
    const int iy = iy0 + ky;
    if (iy < 0 || iy >= g->h || kx0 >= kx1) {
      memset(d, fill, run);
      continue;
    }
    if (kx0 > 0) memset(d, fill, kx0 * px);
    memcpy(d + kx0 * px, src + (((size_t)img * g->h + iy) * g->w + ix0 + kx0) * px,
           (size_t)(kx1 - kx0) * px);
    if (kx1 < g->kw) memset(d + kx1 * px, fill, (size_t)(g->kw - kx1) * px);
  }
  memset(dst + (size_t)c->k * es, 0, (size_t)(c->kp - c->k) * es);
}

/* Packs units [u0, u1) of a batch of n into dst (unit_bytes each): rows at stride lda, rows past
 * the batch 0. */
static void pack_units(const sn_lp_conv *c, int n, const uint8_t *src, int u0, int u1,
                       uint8_t *dst) {
  const int m = n * c->g.oh * c->g.ow, ur = unit_rows(c);
  for (int u = u0; u < u1; u++) {
    uint8_t *p = dst + (size_t)(u - u0) * unit_bytes(c);
    for (int r = 0; r < ur; r++) {
      const int row = u * ur + r;
      uint8_t *d = p + r * c->lda;
      if (row < m)
        pack_row(c, src, row, d);
      else
        memset(d, 0, (size_t)c->kp * c->es);
    }
  }
}

/* ------------------------------------------------------------ blocks */

typedef struct lp_call {
  const sn_lp_conv *c;
  int n, nt;
  const uint8_t *src; /* the A source: staged input, or the uint8 x */
  int src_slack;      /* 1: rows may be read past the end of src (the staged buffer) */
  const void *res;
  const sn_lp_conv *pc; /* a paired convolution (sn_lp_forward_pair), or NULL */
  const uint8_t *psrc;  /* its uint8 input, read in place */
  int relu;
  void *y;
} lp_call;

/* One block (unit u, its output pixels pix) x one 32-column panel: the micro-kernel, then the
 * epilogue. packed: the unit's packed rows (A_PACK), else NULL; tmp: room for a copied tail of
 * rows (A_ROWS). */
static void run_block(const lp_call *k, int u, const int *pix, int panel, const uint8_t *packed,
                      uint8_t *tmp, void *acc) {
  const sn_lp_conv *c = k->c;
  const int j0 = panel * 32, nj = imin(32, c->g.cout - j0), int8 = c->q.type == SN_PRECISION_INT8;
  const uint8_t *b0 = c->b + (size_t)(2 * panel) * c->kg * 64;
  const uint8_t *b1 = 2 * panel + 1 < c->nb ? b0 + (size_t)c->kg * 64 : NULL;
  const int ur = unit_rows(c);
  const uint8_t *a = packed;
  size_t lda = c->lda;
  int rows = ur;
  if (c->mode != A_PACK) {
    const size_t px = (size_t)c->g.cin * c->es;
    lda = px;
    if (c->mode == A_LINE) {
      const int upi = units_per_image(c);
      a = k->src + ((size_t)(u / upi) * c->hs * c->ws + (size_t)(u % upi) * ur) * px;
    } else {
      const int m = k->n * c->g.oh * c->g.ow, r0 = u * ur;
      a = k->src + (size_t)r0 * px;
      if (r0 + ur > m && !k->src_slack && !c->amx) {
        rows = m - r0;                           /* the last rows: no reads past the input */
      } else if (r0 + ur > m && !k->src_slack) { /* AMX: the last rows, copied */
        memset(tmp, 0, SN_LP_AMX_ROWS * px);
        memcpy(tmp, a, (size_t)(m - r0) * px);
        a = tmp;
      }
    }
  }
  if (!c->amx) {
    if (int8)
      sn_lp_avx512_int8(rows, c->ks, a, lda, c->koff, b0, b1, acc);
    else
      sn_lp_avx512_bf16(rows, c->ks, a, lda, c->koff, b0, b1, acc);
    int32_t *acc2 = NULL;
    if (k->pc) { /* the pair's rows: the same pixels of its input, none past the batch */
      const sn_lp_conv *p = k->pc;
      const int m = k->n * c->g.oh * c->g.ow, r0 = u * ur;
      const uint8_t *pb0 = p->b + (size_t)(2 * panel) * p->kg * 64;
      const uint8_t *pb1 = 2 * panel + 1 < p->nb ? pb0 + (size_t)p->kg * 64 : NULL;
      acc2 = (int32_t *)acc + SN_LP_AMX_ROWS * SN_LP_LDC;
      sn_lp_avx512_int8(imin(ur, m - r0), p->ks, k->psrc + (size_t)r0 * p->g.cin, p->g.cin, p->koff,
                        pb0, pb1, acc2);
    }
    epilogue(c, acc, rows, pix, j0, nj, k->res, k->pc, acc2, k->relu, k->y);
    return;
  }
  const int two_a = c->mode == A_LINE || pix[SN_LP_AMX_ROWS / 2] >= 0;
  if (int8)
    sn_lp_amx_int8(c->ks, a, lda, c->koff, two_a, b0, b1, acc);
  else
    sn_lp_amx_bf16(c->ks, a, lda, c->koff, two_a, b0, b1, acc);
  epilogue(c, acc, two_a ? SN_LP_AMX_ROWS : SN_LP_AMX_ROWS / 2, pix, j0, nj, k->res, NULL, NULL,
           k->relu, k->y);
}

/* Units a thread handles at once: a row-split task, or every unit of a column split. */
static int max_units(const sn_lp_conv *c) {
  return imax((int)block_units(c), SN_LP_TASKS_PER_THREAD * c->nt);
}

/* The thread's areas in the workspace (thread_bytes): C buffer, row / tail buffer, the output
 * pixels of its units, the packed block. */
typedef struct thread_ws {
  void *acc;
  uint8_t *tmp, *block;
  int *pix;
} thread_ws;

static thread_ws thread_area(const sn_lp_conv *c, uint8_t *base, int t) {
  uint8_t *p = base + (size_t)t * thread_bytes(c);
  thread_ws w;
  w.acc = p;
  w.tmp = p + 2 * SN_LP_AMX_ROWS * SN_LP_LDC * 4;
  w.pix = (int *)(w.tmp + c->lda * SN_LP_AMX_ROWS);
  w.block = (uint8_t *)(w.pix + (size_t)max_units(c) * SN_LP_AMX_ROWS);
  return w;
}

/* Row split: tasks of bu consecutive units over every panel (a panel of B stays in L2 while
 * the task's units pass it). */
static void run_rows(const lp_call *k, int nu, uint8_t *tws) {
  const sn_lp_conv *c = k->c;
  const int np = ceil_div(c->g.cout, 32);
  const int bu = imin((int)block_units(c), ceil_div(nu, k->nt));
  const int ntask = ceil_div(nu, bu);
#pragma omp parallel num_threads(imin(k->nt, ntask)) if (k->nt > 1)
  {
    const thread_ws w = thread_area(c, tws, omp_get_thread_num());
    if (c->amx) sn_lp_amx_begin();
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < ntask; t++) {
      const int u0 = t * bu, u1 = imin(nu, u0 + bu);
      if (c->mode == A_PACK) pack_units(c, k->n, k->src, u0, u1, w.block);
      for (int u = u0; u < u1; u++)
        block_pixels(c, k->n, u, w.pix + (size_t)(u - u0) * SN_LP_AMX_ROWS);
      for (int p = 0; p < np; p++)
        for (int u = u0; u < u1; u++)
          run_block(k, u, w.pix + (size_t)(u - u0) * SN_LP_AMX_ROWS, p,
                    c->mode == A_PACK ? w.block + (size_t)(u - u0) * unit_bytes(c) : NULL, w.tmp,
                    w.acc);
    }
    if (c->amx) sn_lp_amx_end();
  }
}

/* Column split: every unit packed once (shared), then tasks of one column panel over all
 * units. */
static void run_cols(const lp_call *k, int nu, uint8_t *shared, uint8_t *tws) {
  const sn_lp_conv *c = k->c;
  const int np = ceil_div(c->g.cout, 32);
#pragma omp parallel num_threads(k->nt) if (k->nt > 1)
  {
    const thread_ws w = thread_area(c, tws, omp_get_thread_num());
    if (c->mode == A_PACK) {
#pragma omp for schedule(static)
      for (int u = 0; u < nu; u++)
        pack_units(c, k->n, k->src, u, u + 1, shared + (size_t)u * unit_bytes(c));
    }
    for (int u = 0; u < nu; u++)
      block_pixels(c, k->n, u, w.pix + (size_t)u * SN_LP_AMX_ROWS);
    if (c->amx) sn_lp_amx_begin();
#pragma omp for schedule(dynamic, 1)
    for (int p = 0; p < np; p++)
      for (int u = 0; u < nu; u++)
        run_block(k, u, w.pix + (size_t)u * SN_LP_AMX_ROWS, p,
                  c->mode == A_PACK ? shared + (size_t)u * unit_bytes(c) : NULL, w.tmp, w.acc);
    if (c->amx) sn_lp_amx_end();
  }
}

static void forward(const sn_lp_conv *c, const sn_lp_conv *pc, const uint8_t *px, int nthreads,
                    int n, const void *x, const sn_conv_in *in, const void *res, int relu, void *y,
                    float *ws) {
  if (n <= 0) return;
  const int nt = imax(1, imin(nthreads, c->nt));
  uint8_t *base = (uint8_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
  lp_call k = {c, n, nt, x, 0, res, pc, px, relu, y};
  if (staged(c)) {
    stage(c, nt, n, x, in, base);
    k.src = base;
    k.src_slack = 1;
    base += (staged_bytes(c, c->g.n) + 63) & ~(size_t)63;
  }
  uint8_t *shared = base;
  uint8_t *tws = base + ((shared_bytes(c) + 63) & ~(size_t)63);
  const int nu = num_units(c, n);
  if (nu >= SN_LP_TASKS_PER_THREAD * nt)
    run_rows(&k, nu, tws);
  else
    run_cols(&k, nu, shared, tws);
}

void sn_lp_forward(const sn_lp_conv *c, int nthreads, int n, const void *x, const sn_conv_in *in,
                   const void *res, int relu, void *y, float *ws) {
  forward(c, NULL, NULL, nthreads, n, x, in, res, relu, y, ws);
}

int sn_lp_pair_ok(const sn_lp_conv *c, const sn_lp_conv *p) {
  const sn_conv_geom *a = &c->g, *b = &p->g;
  return !c->amx && !p->amx && c->q.type == SN_PRECISION_INT8 && p->q.type == SN_PRECISION_INT8 &&
         c->mode != A_LINE && p->mode == A_ROWS && p->q.in_u8 && !p->q.out_u8 && a->n == b->n &&
         a->oh == b->oh && a->ow == b->ow && a->cout == b->cout;
}

void sn_lp_forward_pair(const sn_lp_conv *c, const sn_lp_conv *p, int nthreads, int n,
                        const void *x, const sn_conv_in *in, const void *px, int relu, void *y,
                        float *ws) {
  forward(c, p, px, nthreads, n, x, in, NULL, relu, y, ws);
}
