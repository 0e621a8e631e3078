/* calib_report.c - `calibrate --report`: after calibration, the bf16 and int8 plans (those the CPU
 * can run) of the net just calibrated are compared with its float32 plan on rows the calibration
 * did not see (sn_compare_*): per layer the relative L2 error and the per-image cosine similarity,
 * written as CSV by rank 0, with a summary line per precision. Each rank compares its block of
 * the rows; the sums are all-reduced. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* 1 if row r is in the calibration sample of c rows out of n (rows floor(i * n / c)). */
static int in_sample(int64_t n, int64_t c, int64_t r) {
  const int64_t i = (int64_t)(((unsigned __int128)r * c + n - 1) / n); /* ceil(r c / n) */
  return i < c && (int64_t)((unsigned __int128)i * n / c) == r;
}

/* This rank's report rows: `count` evenly spaced rows (floor((i + 1/2) n / count)), each moved to
 * a neighbour when it is a calibration row (cal of them); ranks take contiguous blocks. */
static int64_t report_rows(int64_t n, int64_t count, int64_t cal, int rank, int size,
                           int64_t *rows) {
  const int64_t m = count < n ? count : n, c = cal < n ? cal : n;
  int64_t b, e;
  sn_shard_block(m, rank, size, &b, &e);
  for (int64_t i = b; i < e; ++i) {
    int64_t r = (int64_t)(((unsigned __int128)(2 * i + 1) * n) / (unsigned __int128)(2 * m));
    if (in_sample(n, c, r) && r + 1 < n && !in_sample(n, c, r + 1))
      r++;
    else if (in_sample(n, c, r) && r > 0 && !in_sample(n, c, r - 1))
      r--;
    rows[i - b] = r;
  }
  return e - b;
}

/* A copy of net (parameters and int8 scales) planned for inference at precision p. */
static sn_status plan_copy(sn_net *net, sn_precision p, int batch, sn_net **out) {
  *out = NULL;
  sn_net *t = NULL;
  sn_status s = sn_net_create(sn_net_config(net), 1, &t);
  sn_engine_options o = *sn_net_options(net);
  o.precision = p;
  if (s == SN_OK) s = sn_net_set_options(t, &o);
  size_t n = 0, m = 0;
  const float *src = s == SN_OK ? sn_net_param_block(net, &n) : NULL;
  float *dst = s == SN_OK ? sn_net_param_block(t, &m) : NULL;
  if (s == SN_OK && n == m) memcpy(dst, src, n * sizeof *dst);
  for (int i = 0; s == SN_OK && p == SN_PRECISION_INT8 && i < sn_net_num_act_scales(net); ++i) {
    sn_act_scale a;
    s = sn_net_act_scale(net, i, &a);
    if (s == SN_OK && a.threshold > 0)
      s = sn_net_set_act_scale(t, a.layer, a.threshold, a.min, a.max);
  }
  if (s == SN_OK) s = sn_net_plan(t, batch, 0);
  if (s != SN_OK) {
    sn_net_destroy(t);
    return s;
  }
  *out = t;
  return SN_OK;
}

static void write_csv(FILE *f, const sn_compare *cmp, const sn_precision *p, int np) {
  fprintf(f, "layer,kind,values,role");
  for (int t = 0; t < np; ++t)
    fprintf(f, ",%s_rel_l2,%s_cos_mean,%s_cos_min", sn_precision_name(p[t]),
            sn_precision_name(p[t]), sn_precision_name(p[t]));
  fprintf(f, "\n");
  for (int i = 0; i < sn_compare_num_layers(cmp); ++i) {
    sn_layer_error e;
    sn_compare_layer(cmp, 0, i, &e);
    fprintf(f, "%s,%s,%lld,%s", e.layer, e.kind, (long long)e.values,
            e.role & SN_LAYER_IS_OUTPUT     ? "output"
            : e.role & SN_LAYER_IS_FEATURES ? "features"
                                            : "");
    for (int t = 0; t < np; ++t) {
      sn_compare_layer(cmp, t, i, &e);
      fprintf(f, ",%.6e,%.9f,%.9f", e.rel_l2, e.cos_mean, e.cos_min);
    }
    fprintf(f, "\n");
  }
}

/* One line per precision: the worst layer, the features and the output. */
static void summarize(const sn_compare *cmp, const sn_precision *p, int np) {
  for (int t = 0; t < np; ++t) {
    sn_layer_error e, worst = {0}, feat = {0}, out = {0};
    for (int i = 0; i < sn_compare_num_layers(cmp); ++i) {
      sn_compare_layer(cmp, t, i, &e);
      if (!worst.layer || e.rel_l2 > worst.rel_l2) worst = e;
      if (e.role & SN_LAYER_IS_FEATURES) feat = e;
      if (e.role & SN_LAYER_IS_OUTPUT) out = e;
    }
    printf("report: %s: largest layer error %.3e (%s)", sn_precision_name(p[t]), worst.rel_l2,
           worst.layer);
    if (feat.layer)
      printf("; features rel L2 %.3e, cosine mean %.6f min %.6f", feat.rel_l2, feat.cos_mean,
             feat.cos_min);
    printf("; output rel L2 %.3e", out.rel_l2);
    const double a = sn_compare_top1_agreement(cmp, t);
    if (a >= 0) printf(", top-1 agreement %.2f%%", 100.0 * a);
    printf("\n");
  }
}

/* The precisions net's options let this CPU run: int8, then bf16 (into p); how many. */
static int usable(const sn_net *net, sn_precision p[2], unsigned *features) {
  const sn_engine_options *o = sn_net_options(net);
  const unsigned f = o->portable ? 0 : sn_cpu_features() & ~o->cpu_off;
  int np = 0;
  if ((f & SN_CPU_AVX512) && (f & (SN_CPU_AVX512_VNNI | SN_CPU_AMX_INT8)))
    p[np++] = SN_PRECISION_INT8;
  if ((f & SN_CPU_AVX512) && (f & (SN_CPU_AVX512_BF16 | SN_CPU_AMX_BF16)))
    p[np++] = SN_PRECISION_BF16;
  *features = f;
  return np;
}

sn_status calib_report_check(const sn_net *net) {
  sn_precision p[2];
  unsigned f;
  char have[96];
  if (usable(net, p, &f) > 0) return SN_OK;
  return sn_error_set(SN_ERR_INVALID,
                      "calibrate --report: this CPU runs neither bf16 nor int8 (they need AVX-512 "
                      "with AVX512-BF16 or AMX-BF16, AVX512-VNNI or AMX-INT8; usable here: %s)",
                      sn_cpu_feature_names(f, have, sizeof have));
}

void calib_report(cli_job *job, sn_net *net, const calib_read *rd, long rows, long cal_rows,
                  const char *path) {
  const sn_dataset_info *di = sn_dataset_get_info(rd->ds);
  const int batch = rd->batch < 8 ? (int)rd->batch : 8; /* the reference outputs of a batch */
  sn_precision p[2];
  unsigned f;
  const int np = usable(net, p, &f);
  cli_check(job, calib_report_check(net));
  sn_net *ref = NULL, *tests[2] = {NULL, NULL};
  sn_status s = plan_copy(net, SN_PRECISION_FP32, batch, &ref);
  for (int t = 0; s == SN_OK && t < np; ++t)
    s = plan_copy(net, p[t], batch, &tests[t]);
  sn_compare *cmp = NULL;
  if (s == SN_OK) s = sn_compare_create(ref, tests, np, &cmp);
  cli_check(job, s);
  const size_t img = (size_t)di->h * di->w * di->c;
  int64_t *r = malloc(((size_t)rows / job->size + 1) * sizeof *r);
  float *x = malloc((size_t)batch * img * sizeof *x);
  void *raw = malloc((size_t)batch * img * (di->dtype == SN_F32 ? sizeof(float) : 1));
  s = r && x && raw ? SN_OK : sn_error_set(SN_ERR_NOMEM, "calibrate --report: out of memory");
  const int64_t n = s == SN_OK ? report_rows(di->n, rows, cal_rows, job->rank, job->size, r) : 0;
  double t0 = cli_now();
  for (int64_t i = 0; s == SN_OK && i < n; i += batch) {
    const int m = (int)(n - i < batch ? n - i : batch);
    s = calib_read_rows(rd, r + i, m, raw, x);
    if (s == SN_OK) s = sn_compare_add(cmp, x, m);
    cli_progress("report", (double)(i + m), (double)n, NULL);
  }
  cli_check(job, s);
  cli_check(job, sn_compare_finish(cmp, job->comm));
  s = SN_OK;
  if (job->rank == 0) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fo = NULL;
    s = cli_fopen(tmp, "w", "calibrate --report: cannot write", &fo);
    if (s == SN_OK) {
      write_csv(fo, cmp, p, np);
      if (fclose(fo) != 0 || rename(tmp, path) != 0)
        s = sn_error_set(SN_ERR_IO, "calibrate --report: cannot write %s", path);
    }
    if (s == SN_OK && cli_verbose) {
      printf("report: %lld rows, %d layers, in %.1f s -> %s\n", (long long)sn_compare_images(cmp),
             sn_compare_num_layers(cmp), cli_now() - t0, path);
      summarize(cmp, p, np);
    }
  }
  cli_check(job, sn_comm_agree(job->comm, s));
  free(r);
  free(x);
  free(raw);
  sn_compare_destroy(cmp);
  for (int t = 0; t < np; ++t)
    sn_net_destroy(tests[t]);
  sn_net_destroy(ref);
}
