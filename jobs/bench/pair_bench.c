/* pair_bench.c - two variants of one network timed call by call in one process (a "paired" run):
 * on a shared machine whose speed drifts by 2x over minutes, two variants measured minutes apart
 * (or in two processes) differ by more than most changes do; alternated call by call, both see
 * the same machine, and the per-round ratio B/A stays stable when the times do not.
 *
 * A variant is a list of engine option settings (sn_engine_options, docs/cli.md) applied to its
 * own net before it is planned, so the two nets of one process take different paths:
 *   fuse=MASK (SN_FUSE_* bits, e.g. 127 or 0x7f), portable=0|1, conv_gemm=auto|on|off,
 *   conv_wgrad=auto|on|off, winograd=auto|on|off, comm_poll=0|1
 * ("" or "default": the defaults). Within a round the order alternates (A B, then B A), so that
 * whichever runs second (warmer caches, or a descheduled neighbour) favours each equally.
 *
 * Usage: pair_bench [--arch resnet20] [--input 28x28x1] [--classes 10] [--batch 128] [--train]
 *                   [--reps 40] --a "NAME=V[,NAME=V...]" --b "NAME=V[,...]"
 * Output: one JSON line: each variant's median and minimum milliseconds per call (a training
 * step: forward, backward, SGD update with momentum; else a forward pass) and the median and
 * quartiles of the per-round ratio B/A (below 1: B is faster).
 * Compiled by jobs/bench/train_bench.sh (not part of the CMake build), or by hand:
 *   cc -O2 -std=c11 -fopenmp -Isrc jobs/bench/pair_bench.c build/libshardnet_static.a \
 *      -lopenblas -lm -o build/pair_bench                                                     */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "shardnet.h"

#define MAX_REPS 1000

static int parse_choice(const char *v, sn_choice *out) {
  if (!strcmp(v, "auto"))
    *out = SN_CHOICE_AUTO;
  else if (!strcmp(v, "on"))
    *out = SN_CHOICE_ON;
  else if (!strcmp(v, "off"))
    *out = SN_CHOICE_OFF;
  else
    return -1;
  return 0;
}

static int parse_flag(const char *v, int *out) {
  if (strcmp(v, "0") && strcmp(v, "1")) return -1;
  *out = v[0] == '1';
  return 0;
}

/* Sets the options of "NAME=V,NAME=V,..." in o (from the defaults); 0 on success. */
static int parse_options(const char *spec, sn_engine_options *o) {
  sn_engine_options_init(o);
  if (!strcmp(spec, "default")) return 0;
  char buf[1024];
  if (strlen(spec) >= sizeof buf) return -1;
  strcpy(buf, spec);
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *v = strchr(kv, '=');
    if (!v || v == kv) return -1;
    *v++ = '\0';
    char *end;
    int bad = 0;
    if (!strcmp(kv, "fuse")) {
      unsigned long m = strtoul(v, &end, 0);
      bad = !*v || *end || m > SN_FUSE_ALL;
      o->fuse = (unsigned)m;
    } else if (!strcmp(kv, "portable"))
      bad = parse_flag(v, &o->portable);
    else if (!strcmp(kv, "comm_poll"))
      bad = parse_flag(v, &o->comm_poll);
    else if (!strcmp(kv, "conv_gemm"))
      bad = parse_choice(v, &o->conv_gemm);
    else if (!strcmp(kv, "conv_wgrad"))
      bad = parse_choice(v, &o->conv_wgrad);
    else if (!strcmp(kv, "winograd"))
      bad = parse_choice(v, &o->winograd);
    else
      bad = 1;
    if (bad) {
      fprintf(stderr, "pair_bench: bad option %s=%s\n", kv, v);
      return -1;
    }
  }
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "pair_bench: %s: %s\n", what, sn_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *arch = "resnet20", *spec[2] = {NULL, NULL};
  int batch = 128, reps = 40, train = 0, h = 28, w = 28, c = 1, classes = 10;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--train")) {
      train = 1;
      continue;
    }
    if (!v) goto usage;
    i++;
    if (!strcmp(a, "--arch"))
      arch = v;
    else if (!strcmp(a, "--input")) {
      if (sscanf(v, "%dx%dx%d", &h, &w, &c) != 3) goto usage;
    } else if (!strcmp(a, "--classes"))
      classes = atoi(v);
    else if (!strcmp(a, "--batch"))
      batch = atoi(v);
    else if (!strcmp(a, "--reps"))
      reps = atoi(v);
    else if (!strcmp(a, "--a"))
      spec[0] = v;
    else if (!strcmp(a, "--b"))
      spec[1] = v;
    else
      goto usage;
  }
  if (!spec[0] || !spec[1] || batch < 1 || reps < 4 || reps > MAX_REPS || h < 1 || w < 1 || c < 1 ||
      classes < 1)
    goto usage;

  sn_engine_options opts[2];
  for (int v = 0; v < 2; v++)
    if (parse_options(spec[v], &opts[v])) goto usage;
  sn_net *net[2] = {NULL, NULL};
  for (int v = 0; v < 2; v++) {
    sn_model_config cfg;
    sn_model_config_init(&cfg, arch);
    cfg.height = h;
    cfg.width = w;
    cfg.channels = c;
    cfg.classes = classes;
    if (sn_net_create(&cfg, 1, &net[v]) != SN_OK || sn_net_set_options(net[v], &opts[v]) != SN_OK ||
        sn_net_plan(net[v], batch, train) != SN_OK)
      return fail("net");
  }
  const size_t nx = (size_t)batch * h * w * c;
  float *x = malloc(nx * sizeof(float)), *out = malloc((size_t)batch * classes * sizeof(float));
  int32_t *labels = malloc((size_t)batch * sizeof(int32_t));
  double *t[2] = {malloc(MAX_REPS * sizeof(double)), malloc(MAX_REPS * sizeof(double))};
  double *ratio = malloc(MAX_REPS * sizeof(double));
  if (!x || !out || !labels || !t[0] || !t[1] || !ratio) {
    fprintf(stderr, "pair_bench: out of memory\n");
    return 1;
  }
  uint32_t s = 1;
  for (size_t i = 0; i < nx; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
  for (int i = 0; i < batch; i++)
    labels[i] = i % classes;
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.momentum = 0.9f;

  for (int r = -1; r < reps; r++) /* round -1 warms both up */
    for (int k = 0; k < 2; k++) {
      const int v = (r & 1) ? 1 - k : k;
      const double t0 = now();
      float loss;
      if (train ? sn_net_train_step(net[v], x, labels, batch, batch, &tc, &loss, NULL) != SN_OK ||
                      sn_net_sgd_update(net[v], &tc, 0.01f) != SN_OK
                : sn_net_forward(net[v], x, batch, out) != SN_OK)
        return fail(train ? "train step" : "forward");
      if (r >= 0) t[v][r] = now() - t0;
    }
  for (int r = 0; r < reps; r++)
    ratio[r] = t[1][r] / t[0][r];
  qsort(t[0], (size_t)reps, sizeof(double), cmp_d);
  qsort(t[1], (size_t)reps, sizeof(double), cmp_d);
  qsort(ratio, (size_t)reps, sizeof(double), cmp_d);
  printf("{\"arch\": \"%s\", \"input\": \"%dx%dx%d\", \"batch\": %d, \"mode\": \"%s\", "
         "\"reps\": %d, \"a\": \"%s\", \"b\": \"%s\", \"a_ms_median\": %.2f, \"a_ms_min\": %.2f, "
         "\"b_ms_median\": %.2f, \"b_ms_min\": %.2f, \"ratio_b_over_a\": %.3f, "
         "\"ratio_q1\": %.3f, \"ratio_q3\": %.3f}\n",
         arch, h, w, c, batch, train ? "train" : "infer", reps, spec[0], spec[1],
         t[0][reps / 2] * 1e3, t[0][0] * 1e3, t[1][reps / 2] * 1e3, t[1][0] * 1e3, ratio[reps / 2],
         ratio[reps / 4], ratio[3 * reps / 4]);
  sn_net_destroy(net[0]);
  sn_net_destroy(net[1]);
  free(x);
  free(out);
  free(labels);
  free(t[0]);
  free(t[1]);
  free(ratio);
  return 0;

usage:
  fprintf(stderr,
          "usage: pair_bench [--arch A] [--input HxWxC] [--classes K] [--batch N] [--train] "
          "[--reps R (4-%d)] --a \"NAME=V,...\" --b \"NAME=V,...\" (NAME: fuse, portable, "
          "conv_gemm, conv_wgrad, winograd, comm_poll; or \"default\")\n",
          MAX_REPS);
  return 2;
}
