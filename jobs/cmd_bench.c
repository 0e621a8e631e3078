/* cmd_bench.c - `shardnet bench`: median images/s of inference passes or training steps on random
 * data, as one JSON line (the format jobs/bench/peers.py prints for PyTorch and ONNX Runtime, so
 * the scripts can compare them side by side). */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

/* An environment variable's value for the JSON line: "default" when unset, "other" when it
 * holds anything but letters, digits and . _ - (no escaping needed). */
static const char *env_or_default(const char *name) {
  const char *v = getenv(name);
  if (!v) return "default";
  for (const char *p = v; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return "other";
  return *v ? v : "default";
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Times passes on x (two warm-up passes first) until reps runs and min_time seconds have passed,
 * or cap runs: seconds of each run into ts, their count into *nr. */
static sn_status time_passes(sn_net *net, int train, int batch, const float *x,
                             const int32_t *labels, float *out, long reps, double min_time, int cap,
                             double *ts, int *nr) {
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.lr = 0.01f;
  sn_status s = SN_OK;
  double start = 0;
  for (int it = -2; s == SN_OK; ++it) { /* two warm-up passes */
    if (it == 0) start = cli_now();
    double t0 = cli_now();
    if (train) {
      float loss;
      int correct;
      s = sn_net_train_step(net, x, labels, batch, batch, &tc, &loss, &correct);
      if (s == SN_OK) s = sn_net_sgd_update(net, &tc, tc.lr);
    } else {
      s = sn_net_forward(net, x, batch, out);
    }
    if (it < 0) continue;
    ts[(*nr)++] = cli_now() - t0;
    if (*nr >= cap || (*nr >= reps && cli_now() - start >= min_time)) break;
  }
  return s;
}

/* Deterministic inputs in [-1, 1) and labels cycling over the classes. */
static void fill_inputs(float *x, size_t nx, int32_t *labels, int batch, int classes) {
  uint32_t r = 12345;
  for (size_t i = 0; i < nx; ++i) {
    r = r * 1664525u + 1013904223u;
    x[i] = (float)(r >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
  for (int i = 0; i < batch; ++i)
    labels[i] = (int32_t)(i % classes);
}

/* Plans net for batch in precision p; int8 takes its scales from a calibration pass on x (the
 * benchmark's own input: the speed does not depend on the scales' values). */
static sn_status plan(sn_net *net, int train, int batch, sn_precision p, const float *x) {
  sn_status s = SN_OK;
  if (p == SN_PRECISION_INT8) {
    sn_calibrator *c = NULL;
    s = sn_calibrator_create(net, batch, &c);
    if (s == SN_OK) s = sn_calibrator_add(c, x, batch);
    if (s == SN_OK) s = sn_calibrator_finish(c, NULL, SN_CALIB_MSE);
    sn_calibrator_destroy(c);
  }
  sn_engine_options o = *sn_net_options(net);
  o.precision = p;
  if (s == SN_OK) s = sn_net_set_options(net, &o);
  return s == SN_OK ? sn_net_plan(net, batch, train) : s;
}

/* The one JSON line the peers' runners also print: the median and fastest of nr pass times ts
 * (sorted here), the effective GFLOP/s and the process's peak RSS. */
static void print_result(const sn_net *net, int train, int batch, int threads, double *ts, int nr) {
  qsort(ts, (size_t)nr, sizeof(double), cmp_d);
  double med = ts[nr / 2];
  double flop = 2.0 * (double)sn_net_macs(net) * (double)batch * (train ? 3.0 : 1.0);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"framework\": \"shardnet\", \"version\": \"%s\", \"model\": \"%s\", \"mode\": \"%s\", "
         "\"precision\": \"%s\", \"batch\": %d, \"threads\": %d, \"img_per_s\": %.2f, "
         "\"ms_per_batch\": %.3f, "
         "\"ms_min\": %.3f, \"runs\": %d, \"gflops\": %.1f, \"peak_rss_mb\": %.1f, "
         "\"omp_wait_policy\": \"%s\", \"gomp_spincount\": \"%s\"}\n",
         SN_VERSION, sn_net_arch(net), train ? "train" : "infer",
         sn_precision_name(sn_net_options(net)->precision), batch, threads, batch / med, med * 1e3,
         ts[0] * 1e3, nr, flop / med / 1e9, ru.ru_maxrss / 1024.0,
         env_or_default("OMP_WAIT_POLICY"), env_or_default("GOMP_SPINCOUNT"));
}

int cmd_bench(int argc, char **argv) {
  cli_opt o[] = {
      CLI_MODEL_OPTS,
      {"batch", 1, "images per pass (default 8)", NULL},
      {"train", 0, "time training steps (forward, backward, SGD) instead of inference", NULL},
      {"reps", 1, "timed repetitions at least (default 10)", NULL},
      {"min-time", 1,
       "keep repeating until this many seconds passed, up to 3 x --reps runs (default 5)", NULL},
      {"threads", 1, "threads (default: the cores available)", NULL},
      {"precision", 1, "fp32|bf16|int8 inference (int8: scales calibrated on the input)", NULL},
      {"help", 0, "show this help", NULL}};
  int no = (int)(sizeof o / sizeof o[0]);
  if (cli_parse("bench", argc, argv, 2, o, no)) return EXIT_USAGE;
  if (cli_has(o, no, "help")) {
    cli_print_help(
        stdout, "bench", "--arch A [--batch N] [--train] [options]",
        "  shardnet bench --arch resnet50 --batch 16\n"
        "  shardnet bench --arch resnet20 --input 28x28x1 --batch 128 --train\n"
        "  jobs/bench/bench_infer.sh   (shardnet, PyTorch and ONNX Runtime side by side)\n",
        o, no);
    return 0;
  }
  long batch, reps, threads;
  double min_time;
  if (cli_int(o, no, "batch", 1, 1 << 16, 8, &batch) ||
      cli_int(o, no, "reps", 1, 100000, 10, &reps) ||
      cli_int(o, no, "threads", 1, 1024, 0, &threads) ||
      cli_float(o, no, "min-time", 0, 3600, 5, &min_time))
    return EXIT_USAGE;
  sn_model_config cfg;
  if (cli_model_config(o, no, &cfg)) return EXIT_USAGE;
  int train = cli_has(o, no, "train");
  sn_precision prec = SN_PRECISION_FP32;
  const char *pn = cli_get(o, no, "precision");
  if (pn && sn_precision_parse(pn, &prec) != SN_OK) {
    cli_error("option --precision: '%s' is not fp32, bf16 or int8", pn);
    return EXIT_USAGE;
  }
  cli_job job;
  int rc = cli_job_start(&job, &argc, &argv, threads);
  if (rc) return rc;
  sn_net *net = NULL;
  sn_status s = sn_net_create(&cfg, 1, &net);
  if (s == SN_OK) s = cli_apply_engine_env(net);
  cli_check(&job, s);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  size_t nx = (size_t)batch * h * w * c;
  float *x = malloc(nx * sizeof(float)),
        *out = malloc((size_t)batch * oh * ow * oc * sizeof(float));
  int32_t *labels = malloc((size_t)batch * sizeof(int32_t));
  int cap = (int)(3 * reps); /* as jobs/bench/peers.py and ort_run.js: at most 3 x reps runs */
  double *ts = malloc((size_t)cap * sizeof(double));
  if (!x || !out || !labels || !ts) s = sn_error_set(SN_ERR_NOMEM, "bench: out of memory");
  cli_check(&job, s);
  fill_inputs(x, nx, labels, (int)batch, oc);
  cli_check(&job, plan(net, train, (int)batch, prec, x));
  int nr = 0;
  if (s == SN_OK)
    s = time_passes(net, train, (int)batch, x, labels, out, reps, min_time, cap, ts, &nr);
  cli_check(&job, s);
  print_result(net, train, (int)batch, job.threads, ts, nr);
  free(x);
  free(out);
  free(labels);
  free(ts);
  cli_print_profile(net);
  sn_net_destroy(net);
  return cli_job_end(&job, 0);
}
