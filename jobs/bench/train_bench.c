/* train_bench.c - training throughput of shardnet: sn_net_train_step + sn_net_sgd_update on
 * random data (no data loading), printed as one JSON line in the format of train_peer.py.
 * An interim tool until `shardnet bench` covers training; compiled by jobs/bench/train_bench.sh
 * (not part of the CMake build).
 *
 * Usage: train_bench [--arch resnet20] [--input 28x28x1] [--classes 10] [--batch 128]
 *                    [--warmup 3] [--reps 10] [--min-time 10]
 * img_per_s is batch / median step time (forward + loss + backward + SGD update);
 * cpu_ms_per_step is the median process CPU time of a step (all threads; on a loaded machine it
 * shows the work done when the wall time mostly shows the waiting). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "shardnet.h"

int main(int argc, char **argv) {
  const char *arch = "resnet20";
  int batch = 128, reps = 10, warmup = 3, h = 28, w = 28, c = 1, classes = 10;
  double min_time = 10.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--arch") && i + 1 < argc)
      arch = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
      warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--classes") && i + 1 < argc)
      classes = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
      min_time = atof(argv[++i]);
    else if (!strcmp(argv[i], "--input") && i + 1 < argc) {
      if (sscanf(argv[++i], "%dx%dx%d", &h, &w, &c) != 3) return 2;
    } else {
      fprintf(stderr,
              "usage: %s [--arch A] [--input HxWxC] [--classes K] [--batch N] [--warmup W] "
              "[--reps R] [--min-time S]\n",
              argv[0]);
      return 2;
    }
  }
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.height = h;
  cfg.width = w;
  cfg.channels = c;
  cfg.classes = classes;
  sn_net *net = NULL;
  if (sn_net_create(&cfg, 1, &net) || sn_net_plan(net, batch, 1)) {
    fprintf(stderr, "train_bench: %s\n", sn_last_error());
    return 1;
  }
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.momentum = 0.9f;
  tc.weight_decay = 5e-4f;
  size_t nx = (size_t)batch * h * w * c;
  float *x = malloc(nx * sizeof(float));
  int32_t *labels = malloc((size_t)batch * sizeof(int32_t));
  unsigned s = 12345;
  for (size_t i = 0; i < nx; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
  for (int i = 0; i < batch; i++)
    labels[i] = i % classes;
  int cap = 3 * reps + 3;
  double *ts = malloc(sizeof(double) * (size_t)cap), *cs = malloc(sizeof(double) * (size_t)cap);
  float loss = 0;
  for (int i = 0; i < warmup; i++) {
    if (sn_net_train_step(net, x, labels, batch, batch, &tc, &loss, NULL) ||
        sn_net_sgd_update(net, &tc, 0.01f)) {
      fprintf(stderr, "train_bench: %s\n", sn_last_error());
      return 1;
    }
  }
  int nr = 0;
  double start = now();
  while (nr < reps || (nr < cap && now() - start < min_time)) {
    double t0 = now(), c0 = cpu_now();
    if (sn_net_train_step(net, x, labels, batch, batch, &tc, &loss, NULL) ||
        sn_net_sgd_update(net, &tc, 0.01f)) {
      fprintf(stderr, "train_bench: %s\n", sn_last_error());
      return 1;
    }
    cs[nr] = cpu_now() - c0;
    ts[nr++] = now() - t0;
    if (nr >= 3 && now() - start > 6 * min_time) break;
  }
  qsort(ts, (size_t)nr, sizeof(double), cmp_d);
  qsort(cs, (size_t)nr, sizeof(double), cmp_d);
  double med = ts[nr / 2];
  double la[3] = {0, 0, 0};
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
    fclose(f);
  }
  printf(
      "{\"framework\": \"shardnet\", \"version\": \"%s\", \"mode\": \"train\", \"model\": \"%s\", "
      "\"input\": \"%dx%dx%d\", \"batch\": %d, \"threads\": %d, \"img_per_s\": %.2f, "
      "\"ms_per_step\": %.3f, \"ms_min\": %.3f, \"cpu_ms_per_step\": %.3f, \"runs\": %d, \"loss\": "
      "%.4f, "
      "\"load_avg_1min\": %.2f}\n",
      SN_VERSION, arch, h, w, c, batch, omp_get_max_threads(), batch / med, med * 1e3, ts[0] * 1e3,
      cs[nr / 2] * 1e3, nr, loss, la[0]);
  sn_net_destroy(net);
  free(x);
  free(labels);
  free(ts);
  free(cs);
  return 0;
}
