/* conv_bench.c - per-layer timing of the prepared inference convolutions (sn_conv_prepare) on
 * the torchvision resnet18/resnet50 conv shapes at 224x224, against the generic path
 * (sn_conv_forward: im2col + OpenBLAS) and a plain cblas_sgemm of the same M x K x N (the
 * "ceiling" a GEMM-based direct convolution could reach with OpenBLAS; Winograd can beat it).
 *
 * Not part of the CMake build (only the top-level jobs .c files are globbed):
 * jobs/bench/bench_infer.sh compiles it against build-<dir>/libshardnet_static.a.
 *
 * Usage: conv_bench [--model resnet50|resnet18] [--batch N] [--reps R] [--algo
 * auto|gemm|wino|wino2]
 *                   [--no-generic] [--no-sgemm] [--layer SUBSTR] [--res] [--cold MB]
 *                   [--precision fp32|bf16|int8] [--f32-io]
 * Epilogue: bias + ReLU, plus a residual with --res (a worst case: in the networks only the last
 * conv of a block adds one).
 * --precision bf16|int8: the low-precision convolution (sn_conv_prepare_lp) instead; bf16 reads
 * and writes float32 (as in a bf16 plan), int8 reads and writes uint8 (as between two int8
 * layers; --f32-io: float32 in and out, as at the stem's output or a downsample). The residual is
 * stored like the output.
 * Output: one JSON line per layer and a total line. GFLOP/s counts the direct convolution's
 * 2*M*K*N flops (M = N*OH*OW, K = KH*KW*Cin, N = Cout), also for Winograd. Times are medians. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "kernels.h"

typedef struct layer {
  const char *name;
  int h, cin, k, s, cout, count; /* square input h x h; pad = k / 2 */
} layer;

/* torchvision resnet50 (v1.5: stride on the 3x3), convs grouped by shape with multiplicity. */
static const layer R50[] = {
    {"stem 7x7/2", 224, 3, 7, 2, 64, 1},
    {"l1 1x1 64>64", 56, 64, 1, 1, 64, 1},
    {"l1 3x3 64", 56, 64, 3, 1, 64, 3},
    {"l1 1x1 64>256", 56, 64, 1, 1, 256, 4}, /* 3 conv3 + downsample */
    {"l1 1x1 256>64", 56, 256, 1, 1, 64, 2},
    {"l2 1x1 256>128", 56, 256, 1, 1, 128, 1},
    {"l2 3x3/2 128", 56, 128, 3, 2, 128, 1},
    {"l2 1x1 128>512", 28, 128, 1, 1, 512, 4},
    {"l2 ds 1x1/2 256>512", 56, 256, 1, 2, 512, 1},
    {"l2 1x1 512>128", 28, 512, 1, 1, 128, 3},
    {"l2 3x3 128", 28, 128, 3, 1, 128, 3},
    {"l3 1x1 512>256", 28, 512, 1, 1, 256, 1},
    {"l3 3x3/2 256", 28, 256, 3, 2, 256, 1},
    {"l3 1x1 256>1024", 14, 256, 1, 1, 1024, 6},
    {"l3 ds 1x1/2 512>1024", 28, 512, 1, 2, 1024, 1},
    {"l3 1x1 1024>256", 14, 1024, 1, 1, 256, 5},
    {"l3 3x3 256", 14, 256, 3, 1, 256, 5},
    {"l4 1x1 1024>512", 14, 1024, 1, 1, 512, 1},
    {"l4 3x3/2 512", 14, 512, 3, 2, 512, 1},
    {"l4 1x1 512>2048", 7, 512, 1, 1, 2048, 3},
    {"l4 ds 1x1/2 1024>2048", 14, 1024, 1, 2, 2048, 1},
    {"l4 1x1 2048>512", 7, 2048, 1, 1, 512, 2},
    {"l4 3x3 512", 7, 512, 3, 1, 512, 2},
};

static const layer R18[] = {
    {"stem 7x7/2", 224, 3, 7, 2, 64, 1},
    {"l1 3x3 64", 56, 64, 3, 1, 64, 4},
    {"l2 3x3/2 64>128", 56, 64, 3, 2, 128, 1},
    {"l2 ds 1x1/2 64>128", 56, 64, 1, 2, 128, 1},
    {"l2 3x3 128", 28, 128, 3, 1, 128, 3},
    {"l3 3x3/2 128>256", 28, 128, 3, 2, 256, 1},
    {"l3 ds 1x1/2 128>256", 28, 128, 1, 2, 256, 1},
    {"l3 3x3 256", 14, 256, 3, 1, 256, 3},
    {"l4 3x3/2 256>512", 14, 256, 3, 2, 512, 1},
    {"l4 ds 1x1/2 256>512", 14, 256, 1, 2, 512, 1},
    {"l4 3x3 512", 7, 512, 3, 1, 512, 3},
};

static void fill(float *p, size_t n, unsigned seed, float scale, int nonneg) {
  unsigned s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    float v = ((float)(s >> 8) / 16777216.0f - 0.5f) * 2.0f * scale;
    p[i] = nonneg && v < 0 ? -v : v;
  }
}

static float *falloc(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

/* The low-precision options of --precision (type 0: float32, the prepared float32 path). */
typedef struct lp_opts {
  sn_precision type;
  int f32_io;
} lp_opts;

/* Prepares the convolution of g in the precision of lp (float32: algo). Inputs in [0, 1]
 * quantized with scale 1/255, outputs and the residual with scale 1/32. */
static int prepare(const sn_conv_geom *g, const float *w, const float *b, sn_conv_algo algo,
                   const lp_opts *lp, sn_conv_impl **c) {
  if (lp->type != SN_PRECISION_BF16 && lp->type != SN_PRECISION_INT8)
    return sn_conv_prepare_algo(g, w, b, algo, c);
  const int u8 = lp->type == SN_PRECISION_INT8 && !lp->f32_io;
  sn_conv_lp q = {lp->type, 1.0f / 255, 0, u8, u8, 1.0f / 32, u8, 1.0f / 32};
  return sn_conv_prepare_lp(g, w, b, &q, c);
}

/* x and res converted to the stored format of lp (uint8 for int8 without --f32-io). */
static void *as_stored(const lp_opts *lp, const float *v, size_t n, float scale) {
  if (lp->type != SN_PRECISION_INT8 || lp->f32_io) return (void *)v;
  uint8_t *q = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    const float t = v[i] < 0 ? 0 : v[i] / scale;
    q[i] = (uint8_t)(t > 255 ? 255 : t + 0.5f);
  }
  return q;
}

typedef struct timing {
  double med, min;
} timing;

/* --cold MB: before every call, each thread rewrites its share of a buffer of MB megabytes (not
 * timed), so that the layer's input, weights and output come from L3 or memory as in a network
 * pass (where ~100 MB of other layers' data go through the caches between two uses). */
static float *g_flush;
static size_t g_flush_n;
static void flush_caches(void) {
  if (!g_flush_n) return;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < g_flush_n; i += 16)
    g_flush[i] += 1.0f;
}

/* Runs fn reps times after 2 warm-ups; a short pause-free loop, median and min in seconds. */
#define TIME_IT(out, reps, stmt)                                                                   \
  do {                                                                                             \
    double *ts_ = malloc(sizeof(double) * (size_t)(reps));                                         \
    for (int w_ = 0; w_ < 2; w_++) {                                                               \
      flush_caches();                                                                              \
      stmt;                                                                                        \
    }                                                                                              \
    for (int r_ = 0; r_ < (reps); r_++) {                                                          \
      flush_caches();                                                                              \
      double t0_ = now();                                                                          \
      stmt;                                                                                        \
      ts_[r_] = now() - t0_;                                                                       \
    }                                                                                              \
    qsort(ts_, (size_t)(reps), sizeof(double), cmp_d);                                             \
    (out).med = ts_[(reps) / 2];                                                                   \
    (out).min = ts_[0];                                                                            \
    free(ts_);                                                                                     \
  } while (0)

int main(int argc, char **argv) {
  const char *model = "resnet50", *algo_s = "auto", *only = NULL;
  int batch = 1, reps = 21, do_generic = 1, do_sgemm = 1, use_res = 0;
  lp_opts lp = {SN_PRECISION_FP32, 0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc)
      model = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--algo") && i + 1 < argc)
      algo_s = argv[++i];
    else if (!strcmp(argv[i], "--layer") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--no-generic"))
      do_generic = 0;
    else if (!strcmp(argv[i], "--no-sgemm"))
      do_sgemm = 0;
    else if (!strcmp(argv[i], "--res"))
      use_res = 1;
    else if (!strcmp(argv[i], "--f32-io"))
      lp.f32_io = 1;
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
      const char *v = argv[++i];
      lp.type = !strcmp(v, "bf16")   ? SN_PRECISION_BF16
                : !strcmp(v, "int8") ? SN_PRECISION_INT8
                                     : SN_PRECISION_FP32;
    } else if (!strcmp(argv[i], "--cold") && i + 1 < argc) {
      g_flush_n = (size_t)atoi(argv[++i]) << 18; /* MB -> floats */
      g_flush = calloc(g_flush_n ? g_flush_n : 1, sizeof(float));
    } else {
      fprintf(
          stderr,
          "usage: %s [--model resnet50|resnet18] [--batch N] [--reps R] "
          "[--algo auto|gemm|wino|wino2|generic] [--no-generic] [--no-sgemm] [--layer S] [--res] "
          "[--cold MB] [--precision fp32|bf16|int8] [--f32-io]\n",
          argv[0]);
      return 2;
    }
  }
  sn_conv_algo algo = !strcmp(algo_s, "gemm")      ? SN_CONV_GEMM
                      : !strcmp(algo_s, "wino")    ? SN_CONV_WINOGRAD
                      : !strcmp(algo_s, "wino2")   ? SN_CONV_WINOGRAD2
                      : !strcmp(algo_s, "generic") ? SN_CONV_GENERIC
                                                   : SN_CONV_AUTO;
  const layer *L = !strcmp(model, "resnet18") ? R18 : R50;
  int nl = !strcmp(model, "resnet18") ? (int)(sizeof R18 / sizeof *R18)
                                      : (int)(sizeof R50 / sizeof *R50);
  double tot_impl = 0, tot_gen = 0, tot_sg = 0, tot_flop = 0;
  for (int li = 0; li < nl; li++) {
    const layer *l = &L[li];
    if (only && !strstr(l->name, only)) continue;
    int p = l->k / 2;
    sn_conv_geom g;
    if (sn_conv_geom_init(&g, NULL, batch, l->h, l->h, l->cin, l->k, l->k, l->s, l->s, p, p, p, p,
                          l->cout)) {
      fprintf(stderr, "bad geometry %s\n", l->name);
      return 1;
    }
    size_t nx = (size_t)batch * l->h * l->h * l->cin, ny = (size_t)batch * g.oh * g.ow * l->cout;
    size_t K = (size_t)l->k * l->k * l->cin, M = (size_t)batch * g.oh * g.ow;
    /* 64-byte aligned like the network's arena (src/net.c) */
    float *x = falloc(nx), *w = falloc(K * l->cout);
    float *b = falloc((size_t)l->cout), *y = falloc(ny);
    float *res = falloc(ny);
    fill(x, nx, 1, 1.0f, 1);
    fill(w, K * l->cout, 2, 0.05f, 0);
    fill(b, (size_t)l->cout, 3, 0.1f, 0);
    fill(res, ny, 4, 1.0f, 0);
    double flop = 2.0 * (double)M * (double)K * l->cout;

    sn_conv_impl *c = NULL;
    if (prepare(&g, w, b, algo, &lp, &c)) {
      fprintf(stderr, "prepare failed %s\n", l->name);
      return 1;
    }
    size_t nws = sn_conv_impl_workspace(c);
    float *ws = falloc(nws + 1);
    timing ti;
    const float *r = use_res ? res : NULL;
    if (lp.type == SN_PRECISION_BF16 || lp.type == SN_PRECISION_INT8) {
      const void *xs = as_stored(&lp, x, nx, 1.0f / 255), *rs = as_stored(&lp, res, ny, 1.0f / 32);
      TIME_IT(ti, reps, sn_conv_impl_forward_lp(c, batch, xs, NULL, use_res ? rs : NULL, 1, y, ws));
      if (xs != x) free((void *)xs);
      if (rs != res) free((void *)rs);
    } else
      TIME_IT(ti, reps, sn_conv_impl_forward(c, batch, x, r, 1, y, ws));

    timing tg = {0, 0}, ts = {0, 0};
    if (do_generic) {
      size_t ngw = sn_conv_forward_workspace(&g);
      float *gws = malloc((ngw + 1) * sizeof(float));
      TIME_IT(tg, reps, sn_conv_forward(&g, x, w, b, r, 1, y, gws));
      free(gws);
    }
    if (do_sgemm) {
      /* A = the first M x K floats of a buffer large enough (contents irrelevant to speed) */
      float *a = malloc(M * K * sizeof(float));
      fill(a, M * K, 5, 1.0f, 0);
      TIME_IT(ts, reps,
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, l->cout, (int)K, 1.0f,
                          a, (int)K, w, l->cout, 0.0f, y, l->cout));
      free(a);
    }
    printf("{\"model\":\"%s\",\"batch\":%d,\"layer\":\"%s\",\"count\":%d,\"algo\":\"%s\","
           "\"res\":%d,\"ms\":%.4f,\"ms_min\":%.4f,\"gflops\":%.1f",
           model, batch, l->name, l->count, sn_conv_impl_name(c), use_res, ti.med * 1e3,
           ti.min * 1e3, flop / ti.med * 1e-9);
    if (do_generic)
      printf(",\"generic_gflops\":%.1f,\"generic_ms_min\":%.4f", flop / tg.med * 1e-9,
             tg.min * 1e3);
    if (do_sgemm)
      printf(",\"sgemm_gflops\":%.1f,\"sgemm_ms_min\":%.4f", flop / ts.med * 1e-9, ts.min * 1e3);
    printf("}\n");
    fflush(stdout);
    tot_impl += ti.med * l->count;
    tot_gen += tg.med * l->count;
    tot_sg += ts.med * l->count;
    tot_flop += flop * l->count;
    sn_conv_impl_destroy(c);
    free(ws);
    free(x);
    free(w);
    free(b);
    free(y);
    free(res);
  }
  printf("{\"model\":\"%s\",\"batch\":%d,\"layer\":\"TOTAL convs\",\"threads\":%d,\"ms\":%.3f,"
         "\"gflops\":%.1f,\"conv_img_per_s\":%.2f",
         model, batch, omp_get_max_threads(), tot_impl * 1e3, tot_flop / tot_impl * 1e-9,
         batch / tot_impl);
  if (do_generic)
    printf(",\"generic_ms\":%.3f,\"generic_img_per_s\":%.2f", tot_gen * 1e3, batch / tot_gen);
  if (do_sgemm) printf(",\"sgemm_ms\":%.3f,\"sgemm_img_per_s\":%.2f", tot_sg * 1e3, batch / tot_sg);
  printf("}\n");
  return 0;
}
