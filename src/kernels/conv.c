/* conv.c - 2-D convolution: the entry points of kernels.h and the one place that chooses an
 * algorithm for a geometry and a pass. Every size rule and every option check is here; the
 * algorithms (one file each) compute what they are told and never call each other or this file:
 *   direct    conv_direct.c: AVX-512 NHWC tiles (forward, backward data by stride phases,
 *             weight gradient), the input read in place or from zero-padded image copies
 *   gemm      conv_gemm.c: packed AVX-512 GEMM over copied (unpadded 1x1) or im2col rows, the
 *             stride-1 backward data as a forward over dy, the weight gradient
 *   winograd  conv_wino.c: F(4x4, 3x3) and F(2x2, 3x3) inference, F(2x2, 3x3) training
 *   generic   conv_generic.c: im2col + OpenBLAS sgemm (no AVX-512, or g->opts.portable), the
 *             bias gradient and the reference versions
 * They share two leaf building blocks: the direct tiles (conv_tiles.c) and the packed GEMM
 * block (conv_gemm_block.c).
 *
 * Training (sn_conv_forward / sn_conv_backward), with AVX-512, per geometry: Winograd F(2x2, 3x3)
 * for large 3x3 stride-1 layers, the packed GEMM for large K (forward and stride-1 backward data)
 * and for the weight gradient of layers with K >= 256 and Cout >= 128 (the transposed im2col rows
 * packed as A, dy's rows as B), else the direct tiles. g->opts turns each of Winograd, the GEMM
 * and the GEMM weight gradient on (wherever it can run) or off. The workspace is the largest
 * need of the paths the geometry may take, valid whichever runs.
 *
 * Inference (sn_conv_prepare): the algorithm is chosen and the weights are packed once at plan
 * time:
 *   winograd4x4  3x3 stride-1 (any padding) when the cost model below predicts it faster
 *   winograd2x2  the same with F(2x2, 3x3): a third of F(4x4)'s U to stream, for the layers
 *                whose weights, not their multiplications, bound F(4x4) (few tiles per call)
 *   gemm1x1      unpadded 1x1 (any stride): packed AVX-512 GEMM, A rows copied from x
 *   im2col       everything else: packed AVX-512 GEMM over im2col rows
 *   direct       small channel counts (direct_fits): the training path (sn_conv_forward, on the
 *                direct tiles for the shapes the size rule gives it), a copy of the weights
 *   generic      no AVX-512: a copy of the weights and sn_conv_forward.
 * Low precision (sn_conv_prepare_lp, chosen by the plan's precision, not by size): bf16 and int8
 * on AMX tiles where the CPU has them (sn_cpu_features, less g->opts.cpu_off), else on
 * AVX512-BF16 / AVX512-VNNI (conv_lowp.c); without either, no low-precision convolution. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "conv_gemm.h"
#include "conv_generic.h"
#include "conv_lowp.h"
#include "conv_wino.h"
#include "kernels.h"
#include "shardnet.h"

int sn_conv_geom_init(sn_conv_geom *g, const sn_engine_options *opts, int n, int h, int w, int cin,
                      int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int cout) {
  memset(g, 0, sizeof *g);
  if (n <= 0 || h <= 0 || w <= 0 || cin <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 ||
      cout <= 0 || pt < 0 || pl < 0 || pb < 0 || pr < 0)
    return -1;
  if (h + pt + pb < kh || w + pl + pr < kw) return -1;
  g->n = n;
  g->h = h;
  g->w = w;
  g->cin = cin;
  g->kh = kh;
  g->kw = kw;
  g->sh = sh;
  g->sw = sw;
  g->pt = pt;
  g->pl = pl;
  g->pb = pb;
  g->pr = pr;
  g->oh = (h + pt + pb - kh) / sh + 1;
  g->ow = (w + pl + pr - kw) / sw + 1;
  g->cout = cout;
  if (opts) g->opts = sn_kernel_opts_of(opts);
  return 0;
}

/* ------------------------------------------------------------ training: size rules and options */

/* Winograd F(2x2, 3x3): 3x3 stride-1 layers with padding <= 2 (the flipped backward pass pads by
 * 2 - p). Used where it measured faster (conv_train_bench, 1 thread, CPU time):
 * min(Cin, Cout) >= SN_WINO_MIN_C and at least SN_WINO_MIN_PIX output pixels - resnet50's
 * 56x56x64 (fwd 25 vs 27 ms, bwd 51 vs 61 ms at batch 16) and 28x28x128 (17 vs 26, 39 vs 52).
 * With 16-64 channels at 7x7-28x28 (resnet20) the transforms cost as much as the GEMMs save
 * (28x28x16: 2.1 vs 1.7 ms per 64 images), and at 7x7x512 each band has too few tiles to
 * amortise U. */
#define SN_WINO_MIN_C 64
#define SN_WINO_MIN_PIX 784

static int wino_train_valid(const sn_conv_geom *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt <= 2 && g->pl <= 2 &&
         g->pb <= 2 && g->pr <= 2;
}

/* g->opts.winograd: off, never; on, every valid geometry (3x3, stride 1, padding <= 2: the
 * tests force it on small shapes); auto, by the size rule above. */
static int wino_train_eligible(const sn_conv_geom *g) {
  if (g->opts.winograd == SN_CHOICE_OFF || !wino_train_valid(g)) return 0;
  return g->opts.winograd == SN_CHOICE_ON ||
         (g->cin >= SN_WINO_MIN_C && g->cout >= SN_WINO_MIN_C && g->oh * g->ow >= SN_WINO_MIN_PIX);
}

/* The packed GEMM (conv_gemm.c) for the forward pass and the stride-1 backward-data pass: used
 * where K = KH*KW*Cin and Cout are large enough for its 14x32 tiles and K blocking
 * (SN_GEMM_MIN_K, SN_GEMM_MIN_N, SN_GEMM_MAX_PIX; from conv_train_bench on resnet50 at batch 16,
 * 1 thread, best CPU times on a loaded machine: 7x7x512 3x3 forward 31 vs 39 ms, backward with
 * dx 83 vs 121 ms; 14x14 and 28x28 layers with K = 256-2304 within the noise of each other; the
 * 28x28 1x1/2 downsample faster direct, 30 vs 39 ms); the direct tiles stream the whole weight
 * block per row tile, which does not fit in L2 when K is large. */
#define SN_GEMM_MIN_K 1024
#define SN_GEMM_MIN_N 128   /* resnet20's 7x7x64 layers: direct 150 GFLOP/s in a training step */
#define SN_GEMM_MAX_PIX 196 /* K >= MIN_K / 2 suffices at <= 14x14 */

/* g->opts.conv_gemm: off 0 (never), on 1 (every geometry), auto -1 (the size rule). */
static int gemm_mode(const sn_conv_geom *g) {
  return g->opts.conv_gemm == SN_CHOICE_AUTO ? -1 : g->opts.conv_gemm == SN_CHOICE_ON;
}

/* The size rule (forward and backward data): large K. */
static int gemm_size_rule(const sn_conv_geom *g) {
  const int k = g->kh * g->kw * g->cin;
  return g->cout >= SN_GEMM_MIN_N &&
         (k >= SN_GEMM_MIN_K || (k >= SN_GEMM_MIN_K / 2 && g->oh * g->ow <= SN_GEMM_MAX_PIX));
}

/* Forward: the size rule, or an unpadded stride-1 1x1 with Cout >= SN_GEMM_MIN_N (A rows read
 * from x by the packer, no im2col: 56x56x64->256 12.7 vs 17.9 ms direct, 56x56x256->128 26.0 vs
 * 31.9, batch 16, 1 thread, CPU-time minima of 5 interleaved calls; its backward data stays
 * direct, where the GEMM measured no faster). */
static int gemm_fwd_eligible(const sn_conv_geom *g) {
  const int m = gemm_mode(g);
  if (m >= 0) return m;
  const int pointwise =
      g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !g->pt && !g->pl && !g->pb && !g->pr;
  return gemm_size_rule(g) || (pointwise && g->cout >= SN_GEMM_MIN_N);
}

/* The backward-data pass of a stride-1 convolution as a forward geometry over dy (the same
 * options). */
static int gemm_bwd_geom(const sn_conv_geom *g, sn_conv_geom *b) {
  if (g->sh != 1 || g->sw != 1 || g->pt >= g->kh || g->pb >= g->kh || g->pl >= g->kw ||
      g->pr >= g->kw)
    return -1;
  const int r =
      sn_conv_geom_init(b, NULL, g->n, g->oh, g->ow, g->cout, g->kh, g->kw, 1, 1, g->kh - 1 - g->pt,
                        g->kw - 1 - g->pl, g->kh - 1 - g->pb, g->kw - 1 - g->pr, g->cin);
  b->opts = g->opts;
  return r;
}

static int gemm_bwd_eligible(const sn_conv_geom *g) {
  sn_conv_geom b;
  if (gemm_bwd_geom(g, &b) != 0) return 0;
  const int m = gemm_mode(g);
  if (m >= 0) return m;
  return gemm_size_rule(&b);
}

/* The weight gradient by the packed GEMM (conv_gemm.c) for layers with K >= 256 and
 * Cout >= 128; the direct weight-gradient tiles keep resnet20's narrow layers, where the GEMM
 * measured no faster. */
#define SN_WG_MIN_N 128 /* default rule: Cout >= this ... */
#define SN_WG_MIN_K 256 /* ... and K = KH*KW*Cin >= this */

/* g->opts.conv_wgrad: off, the direct tiles; on, the packed GEMM for every geometry; auto, the
 * size rule. */
static int gemm_wgrad_eligible(const sn_conv_geom *g) {
  if (g->opts.conv_wgrad != SN_CHOICE_AUTO) return g->opts.conv_wgrad == SN_CHOICE_ON;
  return g->cout >= SN_WG_MIN_N && g->kh * g->kw * g->cin >= SN_WG_MIN_K;
}

/* 1 when the forward and the weight gradient of g run on the direct tiles from zero-padded
 * copies of the input images (padding, not Winograd, not the packed GEMM): an input map (in)
 * can be applied as the images are copied. */
static int direct_input_map_ok(const sn_conv_geom *g) {
  return (g->pt || g->pl || g->pb || g->pr) && !wino_train_eligible(g) && !gemm_fwd_eligible(g) &&
         !gemm_wgrad_eligible(g);
}

/* 1 when the backward data pass of g runs on the direct kernels (not Winograd, not the GEMM). */
static int direct_dx(const sn_conv_geom *g) {
  return !wino_train_eligible(g) && !gemm_bwd_eligible(g);
}

/* ------------------------------------------------------------ training: AVX-512 dispatch */

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static size_t avx512_forward_workspace(const sn_conv_geom *g) {
  size_t d = sn_conv_direct_forward_workspace(g);
  if (sn_conv_gemm_forward_workspace(g) > d) d = sn_conv_gemm_forward_workspace(g);
  if (wino_train_valid(g) && sn_conv_wino_forward_workspace(g) > d)
    d = sn_conv_wino_forward_workspace(g);
  return d;
}

/* the GEMM's backward data (0 where it cannot run) */
static size_t gemm_bwd_workspace(const sn_conv_geom *g) {
  sn_conv_geom b;
  if (gemm_bwd_geom(g, &b) != 0) return 0;
  return sn_conv_gemm_backward_data_workspace(g, &b);
}

static size_t avx512_backward_workspace(const sn_conv_geom *g) {
  size_t d = sn_conv_direct_backward_workspace(g);
  if (gemm_bwd_workspace(g) > d) d = gemm_bwd_workspace(g);
  if (sn_conv_gemm_wgrad_workspace(g) > d) d = sn_conv_gemm_wgrad_workspace(g);
  if (wino_train_valid(g) && sn_conv_wino_backward_workspace(g) > d)
    d = sn_conv_wino_backward_workspace(g);
  return d;
}

static void gemm_bwd_data(const sn_conv_geom *g, const float *w, const float *dy, float *dx,
                          float *ws) {
  sn_conv_geom b;
  gemm_bwd_geom(g, &b);
  sn_conv_gemm_backward_data(g, &b, w, dy, dx, ws);
}

static void avx512_forward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                           const float *w, const float *bias, const float *res, int relu, float *y,
                           float *ws) {
  /* with an input map only the direct path runs (direct_input_map_ok) */
  if (!in && wino_train_eligible(g))
    sn_conv_wino_forward(g, x, w, bias, res, relu, y, ws);
  else if (!in && gemm_fwd_eligible(g))
    sn_conv_gemm_forward(g, x, w, bias, res, relu, y, ws);
  else
    sn_conv_direct_forward(g, x, in, w, bias, res, relu, y, ws);
}

/* dx (or NULL) and dw; db is computed by the callers, before. */
static void avx512_backward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                            const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                            float *ws) {
  /* with an input map the weight gradient runs on the direct tiles (direct_input_map_ok) */
  if (!in && wino_train_eligible(g)) {
    sn_conv_wino_backward(g, x, w, dy, dx, dw, ws);
  } else if (!in && gemm_wgrad_eligible(g)) {
    /* the weight gradient by the packed GEMM, then dx (the same workspace, one after the other) */
    sn_conv_gemm_wgrad(g, x, dy, dw, ws);
    if (dx && gemm_bwd_eligible(g))
      gemm_bwd_data(g, w, dy, dx, ws);
    else if (dx)
      sn_conv_direct_backward(g, x, NULL, w, dy, dx, dx_acc, NULL, ws);
  } else if (dx && gemm_bwd_eligible(g)) {
    /* the weight gradient by the direct kernels, then dx by the packed GEMM (the same
     * workspace, one after the other) */
    sn_conv_direct_backward(g, x, in, w, dy, NULL, 0, dw, ws);
    gemm_bwd_data(g, w, dy, dx, ws);
  } else {
    sn_conv_direct_backward(g, x, in, w, dy, dx, dx_acc, dw, ws);
  }
}

/* ------------------------------------------------------------ training: entry points */

/* The larger of the generic and the AVX-512 paths' workspace, so that a workspace stays valid
 * whichever path runs. */
size_t sn_conv_forward_workspace(const sn_conv_geom *g) {
  return zmax(sn_conv_generic_workspace(g), avx512_forward_workspace(g));
}

/* The same for the backward pass (the generic path's is the forward's: one im2col chunk
 * buffer, first for im2col(x) (dW), then for dy . W^T (dx, before col2im)). */
size_t sn_conv_backward_workspace(const sn_conv_geom *g) {
  return zmax(sn_conv_generic_workspace(g), avx512_backward_workspace(g));
}

void sn_conv_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                     const float *res, int relu, float *y, float *ws) {
  if (sn_use_avx512(g->opts.portable)) {
    avx512_forward(g, x, NULL, w, bias, res, relu, y, ws);
    return;
  }
  sn_conv_generic_forward(g, x, w, bias, res, relu, y, ws);
}

int sn_conv_backward_accumulates(const sn_conv_geom *g) {
  return sn_use_avx512(g->opts.portable) && direct_dx(g);
}

void sn_conv_backward_acc(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db, float *ws) {
  sn_conv_backward_in(g, x, NULL, w, dy, dx, 1, dw, db, ws);
}

int sn_conv_train_input_map_ok(const sn_conv_geom *g) {
  return sn_use_avx512(g->opts.portable) && direct_input_map_ok(g);
}

void sn_conv_forward_in(const sn_conv_geom *g, const float *x, const sn_conv_in *in, const float *w,
                        const float *bias, const float *res, int relu, float *y, float *ws) {
  if (in)
    avx512_forward(g, x, in, w, bias, res, relu, y, ws);
  else
    sn_conv_forward(g, x, w, bias, res, relu, y, ws);
}

void sn_conv_backward_in(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                         const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                         float *db, float *ws) {
  if (!in && !dx_acc) {
    sn_conv_backward(g, x, w, dy, dx, dw, db, ws);
    return;
  }
  if (db) sn_conv_generic_bias_grad(dy, (size_t)g->n * g->oh * g->ow, g->cout, db);
  avx512_backward(g, x, in, w, dy, dx, dx_acc, dw, ws);
}

void sn_conv_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db, float *ws) {
  if (db) sn_conv_generic_bias_grad(dy, (size_t)g->n * g->oh * g->ow, g->cout, db);
  if (sn_use_avx512(g->opts.portable)) {
    avx512_backward(g, x, NULL, w, dy, dx, 0, dw, ws);
    return;
  }
  sn_conv_generic_backward(g, x, w, dy, dx, dw, ws);
}

/* ------------------------------------------------------------ inference: prepared convolutions */

/* Cost model for choosing Winograd (measured on the 2-core Sapphire Rapids VM, conv_bench and
 * jobs/bench/bench_infer.sh): a thread's GEMM rate, the DRAM bandwidth that streams the weights
 * (resnet50's 102 MB never stay in cache between images), and the cost of the two Winograd
 * transforms per tile and channel. U = G g G^T is 4x the weights (9.4 MB at 14x14x256, 37.7 MB at
 * 7x7x512), so at batch 1 the 7x7 layers are faster direct; with a few images per call the
 * tiles amortise U (docs/kernels.md, "Winograd minimal filtering"). F(2x2)'s U is 16/36 of F(4x4)'s
 * (4.2 MB at 14x14x256), for 2.25x (not 4x) fewer multiplications than direct: at batch 1 it is the
 * cheaper of the two at 14x14x256 on 2 threads. The transforms' cost per tile scales with the
 * tile's points. */
#define SN_COST_GFLOPS_PER_THREAD 140.0
#define SN_COST_DRAM_GBS 15.0         /* 2 threads streaming U at 7x7x512, batch 2: 17 GB/s */
#define SN_COST_WINO_TRANSFORM_NS 9.0 /* per tile and (Cin + Cout) channel, one thread */

struct sn_conv_impl {
  sn_conv_geom g;    /* g.n = largest batch */
  sn_conv_algo algo; /* resolved: GENERIC, GEMM, WINOGRAD, DIRECT or LOWP */
  int nt;            /* threads the workspace is sized for */
  float *w;          /* GENERIC, DIRECT: (KH, KW, Cin, Cout) copy; GEMM: packed B; WINOGRAD: U */
  size_t nw;         /* floats in w */
  float *bias;       /* (Cout) copy, or NULL */
  sn_lp_conv *lp;    /* LOWP: the prepared bf16 or int8 convolution (its own weights) */
  sn_conv_lp q;      /* LOWP: its precision and tensor formats */
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
 * much as its GEMMs save below 32 channels. Measured (1 thread, batch 64, paired calls, ms):
 * resnet20 28x28 16->16 3x3 direct 3.1 against Winograd 6.4 and im2col 8.7; the 1->16 stem 0.54
 * against 2.4; 16->32 stride 2 1.7 against 2.5; 32->64 stride 2 1.5 against 1.8; the RGB 7x7 stem
 * (2 threads) 9.5-9.8 against 10.9-11.4 at batch 8, 36.0-38.3 against 43.1-45.8 at batch 32. At 32
 * output channels stride 1 Winograd stays ahead (14x14 32->32: 2.5 against 2.8), hence its cost
 * rule first above 16 output channels. Unpadded 1x1 layers stay on the packed GEMM, which reads
 * their rows without im2col (and takes the input map, the in-place residual and the classifier):
 * there the two measured within a few percent. The direct kernels split a call by whole images:
 * with fewer images than threads (the RGB stem at batch 1: 2.1 ms on one thread against the GEMM's
 * 1.4-3.0 on two) the GEMM stays. */
static int is_1x1_unpadded(const sn_conv_geom *g);
static int direct_fits(const sn_conv_geom *g) {
  return !is_1x1_unpadded(g) && (g->cin <= 4 || g->cout <= 16 || (g->cin <= 32 && g->cout <= 64));
}

/* Winograd for inference: 3x3 stride-1, any zero padding. */
static int wino_infer_ok(const sn_conv_geom *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1;
}

static sn_conv_algo choose(const sn_conv_geom *g, int nt, sn_conv_algo want) {
  if (want == SN_CONV_GENERIC || !sn_use_avx512(g->opts.portable)) return SN_CONV_GENERIC;
  if (want == SN_CONV_WINOGRAD || want == SN_CONV_WINOGRAD2)
    return wino_infer_ok(g) ? want : SN_CONV_GENERIC;
  if (want == SN_CONV_GEMM || want == SN_CONV_DIRECT) return want;
  /* Winograd only with a clear predicted gain: its rounding error is ~10x direct's */
  const int eligible = wino_infer_ok(g);
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
  return choose(g, omp_get_max_threads(), SN_CONV_AUTO) == SN_CONV_GEMM &&
         sn_conv_gemm_single_kblock(g);
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
  case SN_CONV_WINOGRAD:
    c->nw = sn_conv_wino_u_floats(4, g->cin, g->cout);
    break;
  case SN_CONV_WINOGRAD2:
    c->nw = sn_conv_wino_u_floats(2, g->cin, g->cout);
    break;
  case SN_CONV_GEMM:
    c->nw = sn_conv_gemm_weights_floats(g);
    break;
  default:
    c->nw = (size_t)g->kh * g->kw * g->cin * g->cout;
    break;
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

int sn_lp_supported(sn_precision p, unsigned f) {
  if (p == SN_PRECISION_FP32) return 1;
  if (!(f & SN_CPU_AVX512)) return 0;
  if (p == SN_PRECISION_BF16) return (f & (SN_CPU_AVX512_BF16 | SN_CPU_AMX_BF16)) != 0;
  return p == SN_PRECISION_INT8 && (f & (SN_CPU_AVX512_VNNI | SN_CPU_AMX_INT8)) != 0;
}

int sn_conv_prepare_lp(const sn_conv_geom *g, const float *w, const float *bias,
                       const sn_conv_lp *q, sn_conv_impl **out) {
  *out = NULL;
  const unsigned f = sn_kernel_features(&g->opts);
  if (!sn_lp_supported(q->type, f)) {
    char have[96];
    return sn_error_set(
        SN_ERR_INVALID, "%s convolution needs %s; the CPU offers %s", sn_precision_name(q->type),
        q->type == SN_PRECISION_BF16 ? "AVX512-BF16 or AMX-BF16" : "AVX512-VNNI or AMX-INT8",
        sn_cpu_feature_names(f, have, sizeof have));
  }
  const int amx = (f & (q->type == SN_PRECISION_INT8 ? SN_CPU_AMX_INT8 : SN_CPU_AMX_BF16)) != 0;
  sn_conv_impl *c = calloc(1, sizeof *c);
  if (!c || sn_lp_prepare(g, q, amx, &c->lp) != 0) {
    free(c);
    return sn_error_set(SN_ERR_NOMEM, "conv prepare: out of memory for %s weights",
                        sn_precision_name(q->type));
  }
  c->g = *g;
  c->algo = SN_CONV_LOWP;
  c->nt = omp_get_max_threads();
  c->q = *q;
  sn_lp_pack(c->lp, w, bias);
  *out = c;
  return SN_OK;
}

int sn_conv_lp_residual_in_place_ok(const sn_conv_geom *g, const sn_conv_lp *q) {
  /* the epilogue reads each residual element just before it writes the same output element;
   * only equal element sizes keep the other rows of the residual intact */
  (void)g;
  return q->type == SN_PRECISION_BF16 || q->res_u8 == q->out_u8;
}

void sn_conv_impl_update(sn_conv_impl *c, const float *w, const float *bias) {
  const sn_conv_geom *g = &c->g;
  switch (c->algo) {
  case SN_CONV_LOWP:
    sn_lp_pack(c->lp, w, bias);
    return;
  case SN_CONV_WINOGRAD:
    sn_conv_wino_pack_u(4, g->cin, g->cout, w, c->w);
    break;
  case SN_CONV_WINOGRAD2:
    sn_conv_wino_pack_u(2, g->cin, g->cout, w, c->w);
    break;
  case SN_CONV_GEMM:
    sn_conv_gemm_pack_weights(g, w, c->w);
    break;
  default:
    memcpy(c->w, w, c->nw * sizeof(float));
    break;
  }
  if (c->bias && bias) memcpy(c->bias, bias, (size_t)g->cout * sizeof(float));
}

size_t sn_conv_impl_workspace(const sn_conv_impl *c) {
  switch (c->algo) {
  case SN_CONV_LOWP:
    return sn_lp_workspace(c->lp);
  case SN_CONV_WINOGRAD:
    return sn_conv_wino_packed_workspace(4, &c->g, c->nt);
  case SN_CONV_WINOGRAD2:
    return sn_conv_wino_packed_workspace(2, &c->g, c->nt);
  case SN_CONV_GEMM:
    return sn_conv_gemm_packed_workspace(&c->g, c->nt);
  default:
    return sn_conv_forward_workspace(&c->g);
  }
}

static int is_1x1_unpadded(const sn_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && !g->pt && !g->pl && !g->pb && !g->pr;
}

int sn_conv_impl_input_map_ok(const sn_conv_geom *g) {
  return is_1x1_unpadded(g) && choose(g, omp_get_max_threads(), SN_CONV_AUTO) == SN_CONV_GEMM;
}

void sn_conv_impl_forward_in(const sn_conv_impl *c, int n, const float *x, const sn_conv_in *in,
                             const float *res, int relu, float *y, float *ws) {
  if (n <= 0) return;
  sn_conv_geom g = c->g;
  g.n = n;
  int nt = omp_get_max_threads();
  if (nt > c->nt) nt = c->nt;
  if (in && c->algo != SN_CONV_LOWP && (c->algo != SN_CONV_GEMM || !is_1x1_unpadded(&g)))
    abort(); /* planner's contract */
  switch (c->algo) {
  case SN_CONV_LOWP:
    sn_lp_forward(c->lp, nt, n, x, in, res, relu, y, ws);
    break;
  case SN_CONV_WINOGRAD:
    sn_conv_wino_forward_packed(4, &g, nt, x, c->w, c->bias, res, relu, y, ws);
    break;
  case SN_CONV_WINOGRAD2:
    sn_conv_wino_forward_packed(2, &g, nt, x, c->w, c->bias, res, relu, y, ws);
    break;
  case SN_CONV_GEMM:
    sn_conv_gemm_forward_packed(&g, nt, x, in, c->w, c->bias, res, relu, y, ws);
    break;
  default:
    sn_conv_forward(&g, x, c->w, c->bias, res, relu, y, ws);
    break;
  }
}

void sn_conv_impl_forward(const sn_conv_impl *c, int n, const float *x, const float *res, int relu,
                          float *y, float *ws) {
  sn_conv_impl_forward_in(c, n, x, NULL, res, relu, y, ws);
}

void sn_conv_impl_forward_lp(const sn_conv_impl *c, int n, const void *x, const sn_conv_in *in,
                             const void *res, int relu, void *y, float *ws) {
  if (n <= 0) return;
  if (c->algo != SN_CONV_LOWP) abort(); /* planner's contract */
  const int nt = omp_get_max_threads();
  sn_lp_forward(c->lp, nt < c->nt ? nt : c->nt, n, x, in, res, relu, y, ws);
}

int sn_conv_lp_pair_ok(const sn_conv_impl *c, const sn_conv_impl *p) {
  return c->algo == SN_CONV_LOWP && p->algo == SN_CONV_LOWP && sn_lp_pair_ok(c->lp, p->lp);
}

void sn_conv_impl_forward_lp_pair(const sn_conv_impl *c, const sn_conv_impl *p, int n,
                                  const void *x, const sn_conv_in *in, const void *px, int relu,
                                  void *y, float *ws) {
  if (n <= 0) return;
  if (!sn_conv_lp_pair_ok(c, p)) abort(); /* planner's contract */
  const int nt = omp_get_max_threads();
  sn_lp_forward_pair(c->lp, p->lp, nt < c->nt ? nt : c->nt, n, x, in, px, relu, y, ws);
}

const char *sn_conv_impl_name(const sn_conv_impl *c) {
  const sn_conv_geom *g = &c->g;
  switch (c->algo) {
  case SN_CONV_LOWP:
    return sn_lp_name(c->lp);
  case SN_CONV_WINOGRAD:
    return "winograd4x4";
  case SN_CONV_WINOGRAD2:
    return "winograd2x2";
  case SN_CONV_GEMM:
    return is_1x1_unpadded(g) ? "gemm1x1" : "im2col";
  case SN_CONV_DIRECT:
    return "direct";
  default:
    return "generic";
  }
}

void sn_conv_impl_destroy(sn_conv_impl *c) {
  if (!c) return;
  sn_lp_destroy(c->lp);
  free(c->w);
  free(c->bias);
  free(c);
}
