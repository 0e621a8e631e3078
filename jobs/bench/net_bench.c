/* net_bench.c - whole-network inference throughput of shardnet (random weights, planned for
 * inference: batch norm folded, prepared convolutions), printed as one JSON line in the format of
 * jobs/bench/peers.py so the engines can be compared side by side. An interim tool until
 * `shardnet bench` exists; compiled by jobs/bench/bench_infer.sh (not part of the CMake build).
 *
 * Usage: net_bench [--arch resnet50] [--batch 8] [--reps 10] [--min-time 10] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shardnet.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *arch = "resnet50";
  int batch = 8, reps = 10;
  double min_time = 10.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--arch") && i + 1 < argc) arch = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--arch A] [--batch N] [--reps R] [--min-time S]\n", argv[0]);
      return 2;
    }
  }
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  sn_net *net = NULL;
  if (sn_net_create(&cfg, 1, &net) || sn_net_plan(net, batch, 0)) {
    fprintf(stderr, "net_bench: %s\n", sn_last_error());
    return 1;
  }
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  size_t nx = (size_t)batch * h * w * c, nout = (size_t)batch * oh * ow * oc;
  float *x = malloc(nx * sizeof(float)), *out = malloc(nout * sizeof(float));
  unsigned s = 12345;
  for (size_t i = 0; i < nx; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
  int cap = 3 * reps + 3;
  double *ts = malloc(sizeof(double) * (size_t)cap);
  for (int i = 0; i < 2; i++) sn_net_forward(net, x, batch, out);
  int nr = 0;
  double start = now();
  while (nr < reps || (nr < cap && now() - start < min_time)) {
    double t0 = now();
    if (sn_net_forward(net, x, batch, out)) {
      fprintf(stderr, "net_bench: %s\n", sn_last_error());
      return 1;
    }
    ts[nr++] = now() - t0;
    if (nr >= 3 && now() - start > 6 * min_time) break;
  }
  qsort(ts, (size_t)nr, sizeof(double), cmp_d);
  double med = ts[nr / 2];
  double la[3] = {0, 0, 0};
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
    fclose(f);
  }
  printf("{\"framework\": \"shardnet\", \"version\": \"%s\", \"model\": \"%s\", \"batch\": %d, "
         "\"threads\": %d, \"img_per_s\": %.2f, \"ms_per_batch\": %.3f, \"ms_min\": %.3f, "
         "\"runs\": %d, \"load_avg_1min\": %.2f}\n",
         SN_VERSION, arch, batch, omp_get_max_threads(), batch / med, med * 1e3, ts[0] * 1e3, nr,
         la[0]);
  sn_net_destroy(net);
  free(x);
  free(out);
  free(ts);
  return 0;
}
