/* conv_train_bench.c - GFLOP/s of the training convolution kernels (sn_conv_forward and
 * sn_conv_backward with dx and dW) on the conv shapes of resnet20 at 28x28x1 or resnet50 at
 * 224, one JSON line per shape. Times are the minimum (and median) of REPS calls: on a shared
 * machine the minimum is the kernel's speed, the median what a training step sees. cpu_*: the
 * minimum process CPU time of a call (all threads): with 1 thread on a loaded machine it is the
 * kernel's time without the preemptions (which long calls cannot avoid).
 * Compiled by jobs/bench/train_bench.sh (KERNELS=1) against libshardnet_static.a.
 *
 * Usage: conv_train_bench [--model resnet20|resnet50] [--batch N] [--reps R] [--generic] [--no-dx]
 *   --generic: the portable im2col + OpenBLAS path (options.portable); --no-dx: backward without dx
 *   (the weight gradient alone; bwd_gflops still counts the dx flops); --layers: only the layers
 *   whose name contains SUBSTR. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "kernels.h"

/* n floats at a 64-byte boundary (free() releases it) */
static float *alloc64(size_t n) {
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

typedef struct shape {
  const char *name;
  int h, w, cin, k, s, p, cout, count; /* count: occurrences in the network */
} shape;

static const shape k_r20[] = {
    {"stem", 28, 28, 1, 3, 1, 1, 16, 1},      {"s1.3x3", 28, 28, 16, 3, 1, 1, 16, 6},
    {"s2.3x3/2", 28, 28, 16, 3, 2, 1, 32, 1}, {"s2.ds", 28, 28, 16, 1, 2, 0, 32, 1},
    {"s2.3x3", 14, 14, 32, 3, 1, 1, 32, 5},   {"s3.3x3/2", 14, 14, 32, 3, 2, 1, 64, 1},
    {"s3.ds", 14, 14, 32, 1, 2, 0, 64, 1},    {"s3.3x3", 7, 7, 64, 3, 1, 1, 64, 5},
};

static const shape k_r50[] = {
    {"stem7x7/2", 224, 224, 3, 7, 2, 3, 64, 1}, {"l1.1x1a", 56, 56, 64, 1, 1, 0, 64, 1},
    {"l1.3x3", 56, 56, 64, 3, 1, 1, 64, 3},     {"l1.1x1b", 56, 56, 64, 1, 1, 0, 256, 4},
    {"l1.1x1c", 56, 56, 256, 1, 1, 0, 64, 2},   {"l2.1x1a", 56, 56, 256, 1, 1, 0, 128, 1},
    {"l2.3x3/2", 56, 56, 128, 3, 2, 1, 128, 1}, {"l2.3x3", 28, 28, 128, 3, 1, 1, 128, 3},
    {"l2.1x1b", 28, 28, 128, 1, 1, 0, 512, 4},  {"l2.ds", 56, 56, 256, 1, 2, 0, 512, 1},
    {"l2.1x1c", 28, 28, 512, 1, 1, 0, 128, 3},  {"l3.3x3", 14, 14, 256, 3, 1, 1, 256, 5},
    {"l3.1x1b", 14, 14, 256, 1, 1, 0, 1024, 6}, {"l3.1x1c", 14, 14, 1024, 1, 1, 0, 256, 5},
    {"l4.3x3", 7, 7, 512, 3, 1, 1, 512, 2},     {"l4.1x1b", 7, 7, 512, 1, 1, 0, 2048, 3},
    {"l4.1x1c", 7, 7, 2048, 1, 1, 0, 512, 2},
};

int main(int argc, char **argv) {
  const char *model = "resnet20";
  int batch = -1, reps = 7, nodx = 0;
  sn_engine_options opts;
  sn_engine_options_init(&opts);
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc)
      model = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--generic"))
      opts.portable = 1;
    else if (!strcmp(argv[i], "--no-dx"))
      nodx = 1;
    else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf(stderr,
              "usage: %s [--model resnet20|resnet50] [--batch N] [--reps R] [--generic] [--no-dx] "
              "[--layers SUBSTR]\n",
              argv[0]);
      return 2;
    }
  }
  int r50 = !strcmp(model, "resnet50");
  const shape *sh = r50 ? k_r50 : k_r20;
  int ns = r50 ? (int)(sizeof k_r50 / sizeof *k_r50) : (int)(sizeof k_r20 / sizeof *k_r20);
  if (batch <= 0) batch = r50 ? 16 : 128;
  double tot[2] = {0, 0}, totf[2] = {0, 0};
  double *t = malloc(sizeof(double) * (size_t)reps), *ct = malloc(sizeof(double) * (size_t)reps);
  for (int i = 0; i < ns; i++) {
    const shape *s = &sh[i];
    if (only && !strstr(s->name, only)) continue;
    sn_conv_geom g;
    sn_conv_geom_init(&g, &opts, batch, s->h, s->w, s->cin, s->k, s->k, s->s, s->s, s->p, s->p,
                      s->p, s->p, s->cout);
    size_t nx = (size_t)batch * s->h * s->w * s->cin, nw = (size_t)s->k * s->k * s->cin * s->cout;
    size_t ny = (size_t)batch * g.oh * g.ow * s->cout;
    size_t wsn = sn_conv_forward_workspace(&g), wbn = sn_conv_backward_workspace(&g);
    /* 64-byte aligned, as the network's arena and workspace */
    float *x = alloc64(nx), *w = alloc64(nw), *y = alloc64(ny), *dy = alloc64(ny);
    float *dx = alloc64(nx), *dw = alloc64(nw), *ws = alloc64(wsn > wbn ? wsn : wbn);
    for (size_t j = 0; j < nx; j++)
      x[j] = (float)((j * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t j = 0; j < nw; j++)
      w[j] = (float)((j * 40503u) % 1000) * 1e-3f - 0.5f;
    for (size_t j = 0; j < ny; j++)
      dy[j] = (float)((j * 69069u) % 1000) * 1e-3f - 0.5f;
    double flops = 2.0 * batch * g.oh * g.ow * (double)nw;
    double med[2], mn[2], cmn[2];
    for (int pass = 0; pass < 2; pass++) {
      for (int r = 0; r < reps + 1; r++) {
        double t0 = now(), c0 = cpu_now();
        if (pass == 0)
          sn_conv_forward(&g, x, w, NULL, NULL, 0, y, ws);
        else
          sn_conv_backward(&g, x, w, dy, (i == 0 || nodx) ? NULL : dx, dw, NULL, ws);
        if (r > 0) {
          t[r - 1] = now() - t0;
          ct[r - 1] = cpu_now() - c0;
        }
      }
      qsort(t, (size_t)reps, sizeof(double), cmp_d);
      qsort(ct, (size_t)reps, sizeof(double), cmp_d);
      cmn[pass] = ct[0];
      med[pass] = t[reps / 2];
      mn[pass] = t[0];
      tot[pass] += s->count * mn[pass];
      totf[pass] += s->count * flops * (pass ? (i == 0 ? 1 : 2) : 1);
    }
    double bflops = flops * (i == 0 ? 1 : 2);
    printf("{\"model\": \"%s\", \"layer\": \"%s\", \"batch\": %d, \"count\": %d, \"threads\": %d, "
           "\"fwd_ms\": %.3f, \"fwd_gflops\": %.1f, \"fwd_ms_median\": %.3f, \"bwd_ms\": %.3f, "
           "\"bwd_gflops\": %.1f, \"bwd_ms_median\": %.3f, \"cpu_fwd_ms\": %.3f, "
           "\"cpu_bwd_ms\": %.3f}\n",
           model, s->name, batch, s->count, omp_get_max_threads(), mn[0] * 1e3,
           flops / mn[0] * 1e-9, med[0] * 1e3, mn[1] * 1e3, bflops / mn[1] * 1e-9, med[1] * 1e3,
           cmn[0] * 1e3, cmn[1] * 1e3);
    fflush(stdout);
    free(x);
    free(w);
    free(y);
    free(dy);
    free(dx);
    free(dw);
    free(ws);
  }
  printf("{\"model\": \"%s\", \"total\": true, \"fwd_ms\": %.2f, \"fwd_gflops\": %.1f, "
         "\"bwd_ms\": %.2f, \"bwd_gflops\": %.1f}\n",
         model, tot[0] * 1e3, totf[0] / tot[0] * 1e-9, tot[1] * 1e3, totf[1] / tot[1] * 1e-9);
  free(t);
  free(ct);
  return 0;
}
