/* cmd_calibrate.c - `shardnet calibrate`: int8 activation scales from float32 passes over a
 * sample of a dataset's rows (sn_calib_rows: evenly spaced; under mpirun each rank takes a block
 * of the sample and the statistics are summed), written with their provenance to a scales file
 * for `infer --precision int8 --scales`. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *EXAMPLES =
    "  shardnet calibrate --arch resnet50 --weights w.h5 --data calib.h5 --rows 512 --out s.h5\n"
    "  mpirun -np 4 shardnet calibrate --arch resnet20 --input 28x28x1 --weights w.h5 \\\n"
    "      --data train.h5 --method percentile --out s.h5\n"
    "  shardnet calibrate --arch resnet50 --weights w.h5 --data calib.h5 --out s.h5 \\\n"
    "      --report layers.csv       # per-layer error of bf16 and int8 against fp32\n";

static cli_opt O[] = {
    CLI_MODEL_OPTS,
    {"weights", 1, "weights: shardnet, torchvision (HDF5) or Keras .h5 (default: random init)",
     NULL},
    {"data", 1, "calibration dataset (HDF5: /images or /encoded)", NULL},
    {"rows", 1, "images sampled, evenly spaced over the dataset (default 512)", NULL},
    {"out", 1, "scales file to write", NULL},
    {"method", 1, "mse|max|percentile threshold rule (default mse)", NULL},
    {"batch", 1, "images per forward pass (default 32)", NULL},
    {"preprocess", 1, "caffe|tf|torch|unit|none (default: the architecture's)", NULL},
    {"threads", 1, "threads per rank (default: the cores available to the rank)", NULL},
    {"report", 1, "CSV: every layer's error in bf16 and int8 against fp32, on other rows", NULL},
    {"report-rows", 1, "rows the report compares (default 256)", NULL},
    {"force", 0, "replace an existing scales file", NULL},
    {"quiet", 0, "no report", NULL},
    {"help", 0, "show this help", NULL}};
enum { NO = sizeof O / sizeof O[0] };
#define OPT(name) cli_get(O, NO, name)

typedef struct calib_job {
  cli_job job;
  sn_model_config cfg;
  const char *data, *out, *wpath;
  long rows, batch, threads, report_rows;
  sn_calib_method method;
  sn_preprocess pre;
  sn_dataset *ds;
  sn_net *net;
  char md5[33];
} calib_job;

static int parse(calib_job *c, int argc, char **argv) {
  if (cli_parse("calibrate", argc, argv, 2, O, NO)) return EXIT_USAGE;
  if (cli_has(O, NO, "help")) {
    cli_print_help(stdout, "calibrate", "--arch A --data IN.h5 --out SCALES.h5 [options]", EXAMPLES,
                   O, NO);
    return -1;
  }
  if (cli_has(O, NO, "quiet")) cli_verbose = 0;
  if (cli_model_config(O, NO, &c->cfg)) return EXIT_USAGE;
  c->data = OPT("data");
  c->out = OPT("out");
  c->wpath = OPT("weights");
  if (!c->data || !c->out) {
    cli_error("calibrate: --data and --out are required");
    return EXIT_USAGE;
  }
  if (cli_int(O, NO, "rows", 1, 1 << 24, 512, &c->rows) ||
      cli_int(O, NO, "batch", 1, 1 << 16, 32, &c->batch) ||
      cli_int(O, NO, "threads", 1, 1024, 0, &c->threads) ||
      cli_int(O, NO, "report-rows", 1, 1 << 24, 256, &c->report_rows))
    return EXIT_USAGE;
  if (OPT("method") && sn_calib_method_parse(OPT("method"), &c->method) != SN_OK) {
    cli_error("option --method: '%s' is not mse, max or percentile", OPT("method"));
    return EXIT_USAGE;
  }
  if (!cli_has(O, NO, "force") && access(c->out, F_OK) == 0) {
    cli_error("calibrate: %s exists (--force replaces it)", c->out);
    return EXIT_USAGE;
  }
  return 0;
}

/* Dataset, net and weights, as infer builds them. */
static sn_status build(calib_job *c) {
  sn_status s = sn_dataset_open(c->data, c->job.comm, &c->ds);
  if (s != SN_OK) return s;
  const sn_dataset_info *di = sn_dataset_get_info(c->ds);
  if (c->cfg.height <= 0 && !di->encoded) {
    c->cfg.height = di->h;
    c->cfg.width = di->w;
    c->cfg.channels = di->c;
  }
  s = sn_net_create(&c->cfg, 1, &c->net);
  if (s == SN_OK) s = cli_apply_engine_env(c->net);
  if (s != SN_OK) return s;
  int h, w, ch;
  sn_net_input_shape(c->net, &h, &w, &ch);
  c->pre = sn_net_default_preprocess(c->net);
  if (OPT("preprocess")) s = sn_preprocess_parse(OPT("preprocess"), &c->pre);
  if (s == SN_OK) s = sn_dataset_set_decode_for(c->ds, h, w, c->pre);
  if (s == SN_OK && (di->h != h || di->w != w || di->c != ch))
    s = sn_error_set(SN_ERR_SHAPE, "file %s: images are %dx%dx%d but %s takes %dx%dx%d (--input)",
                     c->data, di->h, di->w, di->c, c->cfg.arch, h, w, ch);
  if (s == SN_OK && di->n == 0)
    s = sn_error_set(SN_ERR_FORMAT, "file %s: the dataset has no rows", c->data);
  if (s == SN_OK && c->wpath)
    s = sn_weights_load_bcast_ex(c->net, c->wpath, c->job.comm,
                                 c->cfg.include_top ? 0 : SN_LOAD_IGNORE_HEAD, c->md5);
  return s;
}

sn_status calib_read_rows(const calib_read *rd, const int64_t *rows, int m, void *raw, float *x) {
  const sn_dataset_info *di = sn_dataset_get_info(rd->ds);
  const size_t img = (size_t)di->h * di->w * di->c;
  sn_status s = sn_dataset_read_rows(rd->ds, rows, m, raw, NULL);
  if (s != SN_OK) return s;
  if (di->dtype == SN_F32) {
    memcpy(x, raw, (size_t)m * img * sizeof(float));
    sn_preprocess_f32(x, (size_t)m, di->h, di->w, di->c, rd->pre);
  } else {
    sn_preprocess_u8(raw, (size_t)m, di->h, di->w, di->c, rd->pre, x);
  }
  if (!sn_values_finite(x, (size_t)m * img))
    return sn_error_set(SN_ERR_NUMERIC, "file %s: /images rows %lld..%lld contain NaN or infinity",
                        rd->data, (long long)rows[0], (long long)rows[m - 1]);
  return SN_OK;
}

/* This rank's block of the sample, read, preprocessed and observed batch by batch. */
static sn_status observe(calib_job *c, sn_calibrator *cal, int64_t *nrows) {
  const sn_dataset_info *di = sn_dataset_get_info(c->ds);
  const size_t img = (size_t)di->h * di->w * di->c, b = (size_t)c->batch;
  const calib_read rd = {c->ds, c->data, c->pre, c->batch};
  int64_t *rows = malloc(((size_t)c->rows / c->job.size + 1) * sizeof *rows);
  float *x = malloc(b * img * sizeof *x);
  void *raw = malloc(b * img * (di->dtype == SN_F32 ? sizeof(float) : 1));
  sn_status s = rows && x && raw ? SN_OK : sn_error_set(SN_ERR_NOMEM, "calibrate: out of memory");
  const int64_t n = s == SN_OK ? sn_calib_rows(di->n, c->rows, c->job.rank, c->job.size, rows) : 0;
  for (int64_t i = 0; s == SN_OK && i < n; i += (int64_t)b) {
    const int m = (int)(n - i < (int64_t)b ? n - i : (int64_t)b);
    s = calib_read_rows(&rd, rows + i, m, raw, x);
    if (s == SN_OK) s = sn_calibrator_add(cal, x, m);
  }
  *nrows = n;
  free(rows);
  free(x);
  free(raw);
  return s;
}

int cmd_calibrate(int argc, char **argv) {
  calib_job c = {0};
  int rc = parse(&c, argc, argv);
  if (rc) return rc < 0 ? 0 : rc;
  rc = cli_job_start(&c.job, &argc, &argv, c.threads);
  if (rc) return rc;
  double t0 = cli_now();
  cli_check(&c.job, build(&c));
  if (OPT("report")) cli_check(&c.job, calib_report_check(c.net));
  sn_calibrator *cal = NULL;
  cli_check(&c.job, sn_calibrator_create(c.net, (int)c.batch, &cal));
  int64_t mine = 0;
  cli_check(&c.job, observe(&c, cal, &mine));
  cli_check(&c.job, sn_calibrator_finish(cal, c.job.comm, c.method));
  sn_scales_info info;
  memset(&info, 0, sizeof info);
  snprintf(info.weights, sizeof info.weights, "%s", c.wpath ? c.wpath : "(random)");
  snprintf(info.weights_md5, sizeof info.weights_md5, "%s", c.md5);
  snprintf(info.data, sizeof info.data, "%s", c.data);
  snprintf(info.preprocess, sizeof info.preprocess, "%s", sn_preprocess_name(c.pre));
  snprintf(info.method, sizeof info.method, "%s", sn_calib_method_name(c.method));
  info.rows = sn_calibrator_rows(cal);
  info.ranks = c.job.size;
  sn_status s = c.job.rank == 0 ? sn_scales_save(c.net, c.out, &info) : SN_OK;
  cli_check(&c.job, sn_comm_agree(c.job.comm, s));
  if (c.job.rank == 0 && cli_verbose)
    printf("calibrate: %lld images on %d rank(s), %d scales (%s) -> %s in %.1f s\n",
           (long long)info.rows, c.job.size, sn_net_num_act_scales(c.net), info.method, c.out,
           cli_now() - t0);
  sn_calibrator_destroy(cal);
  if (OPT("report")) {
    const calib_read rd = {c.ds, c.data, c.pre, c.batch};
    calib_report(&c.job, c.net, &rd, c.report_rows, c.rows, OPT("report"));
  }
  sn_net_destroy(c.net);
  sn_dataset_close(c.ds);
  return cli_job_end(&c.job, 0);
}
