/* conv_impl.c - prepared inference convolutions: the algorithm is chosen and the weights are
 * packed once at plan time (kernels.h, sn_conv_prepare).
 *
 * Algorithms (conv_fast.h):
 *   winograd4x4  3x3 stride-1 (any padding) when the cost model below predicts it faster
 *   winograd2x2  the same with F(2x2, 3x3): a third of F(4x4)'s U to stream, for the layers
 *                whose weights, not their multiplications, bound F(4x4) (few tiles per call)
 *   gemm1x1      unpadded 1x1 (any stride): packed AVX-512 GEMM, A rows copied from x
 *   im2col       everything else: packed AVX-512 GEMM over im2col rows
 *   direct       small channel counts (direct_fits): the training kernels' direct NHWC tiles
 *                (sn_conv2d_forward), a copy of the weights
 *   generic      no AVX-512: a copy of the weights and sn_conv2d_forward. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_fast.h"
#include "kernels.h"
#include "shardnet.h"

/* Cost model for choosing Winograd (measured on the 2-core Sapphire Rapids VM, conv_bench and
 * jobs/bench/bench_infer.sh): a thread's GEMM rate, the DRAM bandwidth that streams the weights
 * (resnet50's 102 MB never stay in cache between images), and the cost of the two Winograd
 * transforms per tile and channel. U = G g G^T is 4x the weights (9.4 MB at 14x14x256, 37.7 MB at
 * 7x7x512), so at batch 1 the 7x7 layers are faster direct; with a few images per call the
 * tiles amortise U (spec/KERNELS.md 2.2). F(2x2)'s U is 16/36 of F(4x4)'s (4.2 MB at 14x14x256),
 * for 2.25x (not 4x) fewer multiplications than direct: at batch 1 it is the cheaper of the two
 * at 14x14x256 on 2 threads. The transforms' cost per tile scales with the tile's points. */
#define SN_COST_GFLOPS_PER_THREAD 140.0
#define SN_COST_DRAM_GBS 15.0 /* 2 threads streaming U at 7x7x512, batch 2: 17 GB/s */
#define SN_COST_WINO_TRANSFORM_NS 9.0 /* per tile and (Cin + Cout) channel, one thread */

struct sn_conv_impl {
  sn_conv_geom g;    /* g.n = largest batch */
  sn_conv_algo algo; /* resolved: GENERIC, GEMM, WINOGRAD or DIRECT */
  int nt;            /* threads the workspace is sized for */
  float *w;          /* GENERIC, DIRECT: (KH, KW, Cin, Cout) copy; GEMM: packed B; WINOGRAD: U */
  size_t nw;         /* floats in w */
  float *bias;       /* (Cout) copy, or NULL */
};

static double dmax(double a, double b) { return a > b ? a : b; }

/* Bytes per second nt threads stream from DRAM: one thread half of two's (14x14x256 at batch
 * 1 with caches flushed, conv_bench --cold 300: F(4x4) 1.8-2.0 ms on 1 thread for 9.4 MB of U,
 * 0.73-0.88 ms on 2). */
static double dram_bps(int nt) { return SN_COST_DRAM_GBS * 1e9 * (nt < 2 ? 0.5 : 1.0); }

/* Predicted seconds of the direct (GEMM) and Winograd paths at batch g->n on nt threads: the
 * larger of compute and weight streaming (the kernels read weights sequentially, so the two
 * overlap). */
static double cost_direct(const sn_conv_geom *g, int nt) {
  double flops = 2.0 * g->n * g->oh * g->ow * (double)g->kh * g->kw * g->cin * g->cout;
  double bytes = 4.0 * g->kh * g->kw * (double)g->cin * g->cout;
  return dmax(flops / (SN_COST_GFLOPS_PER_THREAD * 1e9 * nt), bytes / dram_bps(nt));
}

/* F(m x m, 3x3), m = 4 or 2: P = (m + 2)^2 GEMMs and points per tile */
static double cost_wino(const sn_conv_geom *g, int nt, int m) {
  const double P = (m + 2) * (m + 2);
  double tiles = (double)g->n * ((g->oh + m - 1) / m) * ((g->ow + m - 1) / m);
  double flops = 2.0 * P * tiles * (double)g->cin * g->cout;
  double tr = tiles * (g->cin + g->cout) * SN_COST_WINO_TRANSFORM_NS * (P / 36) * 1e-9 / nt;
  double bytes = 4.0 * P * (double)g->cin * g->cout;
  return dmax(flops / (SN_COST_GFLOPS_PER_THREAD * 1e9 * nt) + tr, bytes / dram_bps(nt));
}

/* Shapes where the direct tiles (one output vector per pixel and 16 channels, the input read in
 * place) beat the packed GEMM, whose 14x32 tile computes 32 columns for 16 output channels and
 * whose im2col copies K floats per pixel for K = 9 to 288, and Winograd, whose transforms cost as
 * much as its GEMMs save below 32 channels. Measured (1 thread, batch 64, paired calls, ms; the
 * session notes in docs/performance.md): resnet20 28x28 16->16 3x3 direct 3.1 against Winograd
 * 6.4 and im2col 8.7; the 1->16 stem 0.54 against 2.4; 16->32 stride 2 1.7 against 2.5; 32->64
 * stride 2 1.5 against 1.8; the RGB 7x7 stem (2 threads) 9.5-9.8 against 10.9-11.4 at batch 8,
 * 36.0-38.3 against 43.1-45.8 at batch 32. At 32
 * output channels stride 1 Winograd stays ahead (14x14 32->32: 2.5 against 2.8), hence its cost
 * rule first above 16 output channels. Unpadded 1x1 layers stay on the packed GEMM, which reads
 * their rows without im2col (and takes the input map, the in-place residual and the classifier):
 * there the two measured within a few percent. The direct kernels split a call by whole images:
 * with fewer images than threads (the RGB stem at batch 1: 2.1 ms on one thread against the
 * GEMM's 1.4-3.0 on two) the GEMM stays. */
static int is_1x1_unpadded(const sn_conv_geom *g);
static int direct_fits(const sn_conv_geom *g) {
  return !is_1x1_unpadded(g) && (g->cin <= 4 || g->cout <= 16 || (g->cin <= 32 && g->cout <= 64));
}

static sn_conv_algo choose(const sn_conv_geom *g, int nt, sn_conv_algo want) {
  if (want == SN_CONV_GENERIC || !sn_use_avx512(g->opts.portable)) return SN_CONV_GENERIC;
  if (want == SN_CONV_WINOGRAD || want == SN_CONV_WINOGRAD2)
    return sn_wino_eligible(g) ? want : SN_CONV_GENERIC;
  if (want == SN_CONV_GEMM || want == SN_CONV_DIRECT) return want;
  /* Winograd only with a clear predicted gain: its rounding error is ~10x direct's */
  const int eligible = sn_wino_eligible(g);
  const double c4 = eligible ? cost_wino(g, nt, 4) : 0, c2 = eligible ? cost_wino(g, nt, 2) : 0;
  const double cw = c2 < c4 ? c2 : c4;
  const int wino = eligible && cw < 0.8 * cost_direct(g, nt);
  if (direct_fits(g) && g->n >= nt && (g->cout <= 16 || !wino)) return SN_CONV_DIRECT;
  if (!wino) return SN_CONV_GEMM;
  return c2 < c4 ? SN_CONV_WINOGRAD2 : SN_CONV_WINOGRAD;
}

int sn_conv_residual_in_place_ok(const sn_conv_geom *g) {
  /* The packed GEMM with a single K block writes each output element once, in the epilogue of
   * the tile that has just read the same element of the residual; nothing else reads it. With
   * several K blocks partial sums would overwrite the residual first; the generic path runs
   * its GEMM into y before adding the residual; Winograd is not checked. */
  int k = g->kh * g->kw * g->cin;
  return choose(g, omp_get_max_threads(), SN_CONV_AUTO) == SN_CONV_GEMM && sn_gemm_kc(k) == k;
}

int sn_conv_prepare_algo(const sn_conv_geom *g, const float *w, const float *bias,
                         sn_conv_algo algo, sn_conv_impl **out) {
  *out = NULL;
  sn_conv_impl *c = calloc(1, sizeof *c);
  if (!c) return sn_error_set(SN_ERR_NOMEM, "conv prepare: out of memory");
  c->g = *g;
  c->nt = omp_get_max_threads();
  c->algo = choose(g, c->nt, algo);
  switch (c->algo) {
    case SN_CONV_WINOGRAD: c->nw = sn_wino_u_floats(4, g->cin, g->cout); break;
    case SN_CONV_WINOGRAD2: c->nw = sn_wino_u_floats(2, g->cin, g->cout); break;
    case SN_CONV_GEMM: c->nw = sn_gemm_packb_floats(g->kh * g->kw * g->cin, g->cout); break;
    default: c->nw = (size_t)g->kh * g->kw * g->cin * g->cout; break;
  }
  /* 64-byte alignment for the packed panels */
  c->w = aligned_alloc(64, (c->nw * sizeof(float) + 63) / 64 * 64);
  if (bias) c->bias = malloc((size_t)g->cout * sizeof(float));
  if (!c->w || (bias && !c->bias)) {
    size_t nw = c->nw;
    sn_conv_impl_destroy(c);
    return sn_error_set(SN_ERR_NOMEM, "conv prepare: out of memory for %zu packed weights", nw);
  }
  sn_conv_impl_update(c, w, bias);
  *out = c;
  return SN_OK;
}

int sn_conv_prepare(const sn_conv_geom *g, const float *w, const float *bias, sn_conv_impl **out) {
  return sn_conv_prepare_algo(g, w, bias, SN_CONV_AUTO, out);
}

void sn_conv_impl_update(sn_conv_impl *c, const float *w, const float *bias) {
  const sn_conv_geom *g = &c->g;
  switch (c->algo) {
    case SN_CONV_WINOGRAD: sn_wino_prepare_u(4, g->cin, g->cout, w, c->w); break;
    case SN_CONV_WINOGRAD2: sn_wino_prepare_u(2, g->cin, g->cout, w, c->w); break;
    case SN_CONV_GEMM: sn_gemm_packb(g->kh * g->kw * g->cin, g->cout, w, (size_t)g->cout, c->w); break;
    default: memcpy(c->w, w, c->nw * sizeof(float)); break;
  }
  if (c->bias && bias) memcpy(c->bias, bias, (size_t)g->cout * sizeof(float));
}

size_t sn_conv_impl_workspace(const sn_conv_impl *c) {
  switch (c->algo) {
    case SN_CONV_WINOGRAD: return sn_wino_workspace(4, &c->g, c->nt);
    case SN_CONV_WINOGRAD2: return sn_wino_workspace(2, &c->g, c->nt);
    case SN_CONV_GEMM: return sn_gemm_conv_workspace(&c->g, c->nt);
    default: return sn_conv2d_forward_workspace(&c->g);
  }
}

static int is_1x1_unpadded(const sn_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && !g->pt && !g->pl && !g->pb && !g->pr;
}

int sn_conv_input_map_ok(const sn_conv_geom *g) {
  return is_1x1_unpadded(g) && choose(g, omp_get_max_threads(), SN_CONV_AUTO) == SN_CONV_GEMM;
}

void sn_conv_impl_forward_in(const sn_conv_impl *c, int n, const float *x, const sn_conv_in *in,
                             const float *res, int relu, float *y, float *ws) {
  if (n <= 0) return;
  sn_conv_geom g = c->g;
  g.n = n;
  int nt = omp_get_max_threads();
  if (nt > c->nt) nt = c->nt;
  if (in && (c->algo != SN_CONV_GEMM || !is_1x1_unpadded(&g))) abort(); /* planner's contract */
  switch (c->algo) {
    case SN_CONV_WINOGRAD: sn_wino_forward_avx512(4, &g, nt, x, c->w, c->bias, res, relu, y, ws); break;
    case SN_CONV_WINOGRAD2: sn_wino_forward_avx512(2, &g, nt, x, c->w, c->bias, res, relu, y, ws); break;
    case SN_CONV_GEMM: sn_gemm_conv_forward_avx512(&g, nt, x, in, c->w, c->bias, res, relu, y, ws); break;
    default: sn_conv2d_forward(&g, x, c->w, c->bias, res, relu, y, ws); break;
  }
}

void sn_conv_impl_forward(const sn_conv_impl *c, int n, const float *x, const float *res, int relu,
                          float *y, float *ws) {
  sn_conv_impl_forward_in(c, n, x, NULL, res, relu, y, ws);
}

const char *sn_conv_impl_name(const sn_conv_impl *c) {
  const sn_conv_geom *g = &c->g;
  switch (c->algo) {
    case SN_CONV_WINOGRAD: return "winograd4x4";
    case SN_CONV_WINOGRAD2: return "winograd2x2";
    case SN_CONV_GEMM: return is_1x1_unpadded(g) ? "gemm1x1" : "im2col";
    case SN_CONV_DIRECT: return "direct";
    default: return "generic";
  }
}

void sn_conv_impl_destroy(sn_conv_impl *c) {
  if (!c) return;
  free(c->w);
  free(c->bias);
  free(c);
}
