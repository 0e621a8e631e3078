/* cmd_infer.c - `shardnet infer`: predictions, logits and features for an HDF5 dataset. Under
 * mpirun each rank takes a contiguous, chunk-aligned share of the rows, reads it through the
 * prefetching reader and all ranks write the one output file collectively. --resume completes
 * only the rows an interrupted run did not write. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *EXAMPLES =
    "  shardnet infer --arch resnet50 --weights resnet50.h5 --data images.h5 --out preds.h5\n"
    "  mpirun -np 4 shardnet infer --arch keras_resnet50 --weights resnet50_weights_tf_dim_ordering_tf_kernels.h5 \\\n"
    "      --data val.h5 --out val_preds.h5 --logits --labels imagenet_labels_keras.txt\n"
    "  mpirun -np 4 shardnet infer --arch resnet50 --no-top --pooling avg --weights w.h5 --data d.h5 \\\n"
    "      --out features.h5 --features --features-dtype f16\n";

/* A write unit: rows [begin, begin + count), inside one chunk of the output. */
typedef struct unit {
  int64_t begin;
  int count;
} unit;

/* Cuts the ascending row list into runs of consecutive rows that do not cross chunk borders. */
static unit *make_units(const int64_t *rows, int64_t n, int64_t chunk, int64_t *nunits) {
  unit *u = malloc((size_t)(n ? n : 1) * sizeof *u);
  int64_t k = 0;
  for (int64_t i = 0; u && i < n;) {
    int64_t b = rows[i], j = i + 1;
    while (j < n && rows[j] == rows[j - 1] + 1 && rows[j] / chunk == b / chunk) ++j;
    u[k++] = (unit){b, (int)(j - i)};
    i = j;
  }
  *nunits = k;
  return u;
}

static char **read_label_file(const char *path, int *n) {
  FILE *f = fopen(path, "r");
  *n = 0;
  if (!f) return NULL;
  char **names = NULL, line[512];
  int cap = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (*n == cap) {
      cap = cap ? 2 * cap : 1024;
      char **t = realloc(names, (size_t)cap * sizeof *t);
      if (!t) break;
      names = t;
    }
    names[(*n)++] = strdup(line);
  }
  fclose(f);
  return names;
}

int cmd_infer(int argc, char **argv) {
  cli_opt o[] = {CLI_MODEL_OPTS,
                 {"weights", 1, "weights: shardnet, torchvision (HDF5) or Keras .h5 (default: random init)", NULL},
                 {"data", 1, "input dataset (HDF5: /images or /encoded)", NULL},
                 {"out", 1, "output HDF5 file", NULL},
                 {"batch", 1, "images per forward pass (default 32)", NULL},
                 {"preprocess", 1, "caffe|tf|torch|unit|none (default: the architecture's)", NULL},
                 {"top-k", 1, "predictions per image (default 5; 0: none)", NULL},
                 {"logits", 0, "also write /logits", NULL},
                 {"features", 0, "also write /features (the pooled vector before the classifier)", NULL},
                 {"features-dtype", 1, "f32|f16 (default f32)", NULL},
                 {"labels", 1, "class names file (one per line) to print decoded predictions", NULL},
                 {"print", 1, "print the predictions of the first N rows (default 5 with --labels)", NULL},
                 {"confusion", 1, "with /labels: write the confusion matrix (TSV, rows = true class)", NULL},
                 {"compression", 1, "gzip level 0-9 for the output (default 0)", NULL},
                 {"resume", 0, "complete an interrupted output (only missing rows are computed)", NULL},
                 {"force", 0, "replace an existing output", NULL},
                 {"threads", 1, "threads per rank (default: the cores available to the rank)", NULL},
                 {"metrics", 1, "append one JSON line with throughput figures", NULL},
                 {"quiet", 0, "no progress bar or report", NULL},
                 {"help", 0, "show this help", NULL}};
  int no = (int)(sizeof o / sizeof o[0]);
  if (cli_parse("infer", argc, argv, 2, o, no)) return EXIT_USAGE;
  if (cli_has(o, no, "help")) {
    cli_print_help(stdout, "infer", "--arch A --data IN.h5 --out OUT.h5 [--weights W.h5] [options]", EXAMPLES, o, no);
    return 0;
  }
  if (cli_has(o, no, "quiet")) cli_verbose = 0;
  sn_model_config cfg;
  if (cli_model_config(o, no, &cfg)) return EXIT_USAGE;
  const char *data = cli_get(o, no, "data"), *out = cli_get(o, no, "out");
  const char *wpath = cli_get(o, no, "weights");
  if (!data || !out) {
    cli_error("infer: --data and --out are required");
    return EXIT_USAGE;
  }
  long batch, topk, threads, comp, nprint;
  if (cli_int(o, no, "batch", 1, 1 << 16, 32, &batch) || cli_int(o, no, "top-k", 0, 1000, 5, &topk) ||
      cli_int(o, no, "threads", 1, 1024, 0, &threads) || cli_int(o, no, "compression", 0, 9, 0, &comp) ||
      cli_int(o, no, "print", 0, INT_MAX, cli_has(o, no, "labels") ? 5 : 0, &nprint))
    return EXIT_USAGE;
  const char *fd = cli_get(o, no, "features-dtype");
  if (fd && strcmp(fd, "f32") && strcmp(fd, "f16")) {
    cli_error("option --features-dtype: '%s' is not f32 or f16", fd);
    return EXIT_USAGE;
  }
  int resume = cli_has(o, no, "resume"), force = cli_has(o, no, "force");
  if (resume && force) {
    cli_error("infer: --resume and --force exclude each other");
    return EXIT_USAGE;
  }
  char rin[PATH_MAX], rout[PATH_MAX];
  if (realpath(data, rin) && realpath(out, rout) && !strcmp(rin, rout)) {
    cli_error("infer: output %s is the input file", out);
    return EXIT_USAGE;
  }
  sn_output_state state = SN_OUTPUT_MISSING;
  sn_status s = sn_output_status(out, &state);
  if (s != SN_OK && !force) {
    cli_error("%s (use --force to replace it)", sn_last_error());
    return cli_exit_code(s);
  }
  if (state == SN_OUTPUT_COMPLETE && !force) {
    cli_error("infer: output %s is complete already (use --force to recompute it)", out);
    return EXIT_USAGE;
  }
  if (state == SN_OUTPUT_INCOMPLETE && !force && !resume) {
    cli_error("infer: output %s exists and is incomplete (use --resume to finish it or --force)", out);
    return EXIT_USAGE;
  }

  cli_job job;
  int rc = cli_job_start(&job, &argc, &argv, threads);
  if (rc) return rc;
  sn_dataset *ds = NULL;
  sn_net *net = NULL;
  s = sn_dataset_open(data, job.comm, &ds);
  cli_check(&job, s);
  const sn_dataset_info *di = sn_dataset_get_info(ds);
  if (di->n == 0) s = sn_error_set(SN_ERR_FORMAT, "file %s: the dataset has no rows", data);
  cli_check(&job, s);
  if (cfg.height <= 0 && !di->encoded) {
    cfg.height = di->h;
    cfg.width = di->w;
    cfg.channels = di->c;
  }
  s = sn_net_create(&cfg, 1, &net);
  if (s == SN_OK) s = cli_apply_engine_env(net);
  cli_check(&job, s);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  sn_preprocess pre = sn_net_default_preprocess(net);
  if (cli_get(o, no, "preprocess")) s = sn_preprocess_parse(cli_get(o, no, "preprocess"), &pre);
  if (s == SN_OK && di->encoded) /* MODELS.md 7: torchvision resize-256 + centre crop; Keras straight nearest */
    s = sn_dataset_set_decode(ds, h, w, pre == SN_PRE_TORCH ? SN_RESIZE_BILINEAR : SN_RESIZE_NEAREST,
                              pre == SN_PRE_TORCH ? (h * 256 + 112) / 224 : 0);
  if (s == SN_OK && (di->h != h || di->w != w || di->c != c))
    s = sn_error_set(SN_ERR_SHAPE, "file %s: images are %dx%dx%d but %s takes %dx%dx%d (--input)", data,
                     di->h, di->w, di->c, cfg.arch, h, w, c);
  if (s == SN_OK && di->dtype == SN_F32 && !di->encoded && pre != SN_PRE_NONE && job.rank == 0 && cli_verbose)
    fprintf(stderr, "shardnet: note: float32 images are preprocessed with '%s' (use --preprocess none "
            "if they are already)\n", sn_preprocess_name(pre));
  char md5[33] = "";
  if (s == SN_OK && wpath)
    s = sn_weights_load_bcast_ex(net, wpath, job.comm, cfg.include_top ? 0 : SN_LOAD_IGNORE_HEAD, md5);
  else if (s == SN_OK && job.rank == 0 && cli_verbose)
    fprintf(stderr, "shardnet: warning: no --weights: random initialisation\n");
  cli_check(&job, s);
  int top = cfg.include_top;
  int fdim = top ? sn_net_feature_dim(net) : oh * ow * oc;
  if (!top && topk) topk = 0; /* no classifier, no predictions */
  if (topk > oc) topk = oc;
  sn_writer_config wc;
  sn_writer_config_init(&wc);
  wc.n_total = di->n;
  wc.top_k = (int)topk;
  wc.classes = top ? oc : 0;
  wc.feature_dim = fdim;
  wc.feature_dtype = fd && !strcmp(fd, "f16") ? SN_FEATURES_F16 : SN_FEATURES_F32;
  wc.flags = (topk ? SN_WRITE_PREDICTIONS : 0) | (top && cli_has(o, no, "logits") ? SN_WRITE_LOGITS : 0) |
             (cli_has(o, no, "features") || !top ? SN_WRITE_FEATURES : 0);
  wc.compression = (int)comp;
  wc.resume = resume;
  if (!wc.flags) s = sn_error_set(SN_ERR_INVALID, "infer: nothing to write (--top-k 0 without --logits or --features)");
  char **names = NULL;
  int nnames = 0;
  if (s == SN_OK && cli_get(o, no, "labels") && job.rank == 0) {
    names = read_label_file(cli_get(o, no, "labels"), &nnames);
    if (!names) s = sn_error_set(SN_ERR_IO, "cannot read label file %s", cli_get(o, no, "labels"));
  }
  if (s == SN_OK && cli_get(o, no, "confusion") && !(di->has_labels && topk > 0))
    s = sn_error_set(SN_ERR_INVALID, "infer: --confusion needs a dataset with /labels and --top-k > 0 (%s has %s)",
                     data, di->has_labels ? "labels" : "no /labels");
  /* Resuming must continue the same computation: same model, weights and preprocessing. */
  if (s == SN_OK && resume && state == SN_OUTPUT_INCOMPLETE) {
    const char *want[][2] = {{"arch", cfg.arch}, {"weights_md5", md5}, {"preprocess", sn_preprocess_name(pre)}};
    for (size_t i = 0; s == SN_OK && i < sizeof want / sizeof want[0]; ++i) {
      char have[128];
      sn_status a = sn_file_attr_str(out, want[i][0], have, sizeof have);
      if (a == SN_OK && strcmp(have, want[i][1]))
        s = sn_error_set(SN_ERR_INVALID, "infer: cannot resume %s: it was started with %s '%s', this run has '%s'",
                         out, want[i][0], have, want[i][1]);
    }
  }
  FILE *metrics = NULL, *confusion = NULL; /* opened now: an unwritable path fails before any work */
  if (s == SN_OK && job.rank == 0 && cli_get(o, no, "metrics")) {
    metrics = fopen(cli_get(o, no, "metrics"), "a");
    if (!metrics) s = sn_error_set(SN_ERR_IO, "cannot open metrics file %s", cli_get(o, no, "metrics"));
  }
  if (s == SN_OK && job.rank == 0 && cli_get(o, no, "confusion")) {
    confusion = fopen(cli_get(o, no, "confusion"), "w");
    if (!confusion) s = sn_error_set(SN_ERR_IO, "cannot write confusion matrix %s", cli_get(o, no, "confusion"));
  }
  sn_writer *wr = NULL;
  cli_check(&job, s);
  s = sn_writer_create(out, job.comm, &wc, &wr);
  cli_check(&job, s);
  const char *attrs[][2] = {{"arch", cfg.arch}, {"weights", wpath ? wpath : "(random)"},
                            {"weights_md5", md5}, {"preprocess", sn_preprocess_name(pre)},
                            {"version", SN_VERSION}, {"data", data}};
  for (size_t i = 0; s == SN_OK && i < sizeof attrs / sizeof attrs[0]; ++i)
    s = sn_writer_set_attr_str(wr, attrs[i][0], attrs[i][1]);
  cli_check(&job, s);

  /* This rank's share: a contiguous block of the missing rows' write units. */
  int64_t *missing = NULL, nmissing = 0, nunits = 0;
  s = sn_writer_missing_rows(wr, &missing, &nmissing);
  cli_check(&job, s);
  unit *units = make_units(missing, nmissing, sn_writer_chunk_rows(wr), &nunits);
  int64_t ub, ue, max_units = 0;
  sn_shard_block(nunits, job.rank, job.size, &ub, &ue);
  for (int r = 0; r < job.size; ++r) {
    int64_t b, e;
    sn_shard_block(nunits, r, job.size, &b, &e);
    if (e - b > max_units) max_units = e - b;
  }
  int64_t nrows = 0, maxu = 0;
  for (int64_t i = ub; i < ue; ++i) {
    nrows += units[i].count;
    if (units[i].count > maxu) maxu = units[i].count;
  }
  int64_t *rows = malloc((size_t)(nrows ? nrows : 1) * sizeof *rows);
  for (int64_t i = ub, k = 0; rows && i < ue; ++i)
    for (int j = 0; j < units[i].count; ++j) rows[k++] = units[i].begin + j;
  size_t stage = (size_t)(maxu + batch);
  int32_t *sidx = malloc(stage * (size_t)(topk ? topk : 1) * sizeof *sidx);
  float *sval = malloc(stage * (size_t)(topk ? topk : 1) * sizeof *sval);
  float *slog = malloc(stage * (size_t)oc * oh * ow * sizeof *slog);
  float *sfeat = malloc(stage * (size_t)(fdim ? fdim : 1) * sizeof *sfeat);
  float *probs = malloc((size_t)batch * oc * sizeof *probs);
  if (!units || !rows || !sidx || !sval || !slog || !sfeat || !probs)
    s = sn_error_set(SN_ERR_NOMEM, "infer: out of memory for output staging");
  if (s == SN_OK) s = sn_net_plan(net, (int)batch, 0);
  sn_reader *rd = NULL;
  sn_reader_options ro;
  sn_reader_options_init(&ro);
  ro.batch = (int)batch;
  ro.preprocess = pre;
  if (s == SN_OK && nrows) s = sn_reader_create(ds, rows, nrows, &ro, &rd);
  cli_watch_reader(rd);
  cli_check(&job, s);

  /* With labels: top-1/top-k hits and the confusion matrix (summed over ranks at the end). */
  int labelled = di->has_labels && topk > 0;
  double *conf = labelled ? calloc((size_t)oc * oc + 2, sizeof *conf) : NULL;
  if (labelled && !conf) s = sn_error_set(SN_ERR_NOMEM, "infer: out of memory");
  cli_check(&job, s);
  double t0 = cli_now(), t_compute = 0;
  int64_t filled = 0, done_rows = 0, printed = 0;
  size_t lw = (size_t)oc * oh * ow;
  for (int64_t i = 0; i < max_units; ++i) {
    unit u = {0, 0};
    if (ub + i < ue) u = units[ub + i];
    while (s == SN_OK && filled < u.count) {
      float *x;
      int32_t *lab;
      int64_t *brows;
      int n = 0;
      s = sn_reader_next(rd, &x, &lab, &brows, &n);
      if (s == SN_OK && n == 0) s = sn_error_set(SN_ERR_INVALID, "infer: reader ended early");
      if (s != SN_OK) break;
      if (di->dtype == SN_F32 && !sn_values_finite(x, (size_t)n * h * w * c)) {
        s = sn_error_set(SN_ERR_NUMERIC, "file %s: /images rows %lld..%lld contain NaN or infinity", data,
                         (long long)brows[0], (long long)brows[n - 1]);
        break;
      }
      double tc = cli_now();
      s = sn_net_forward(net, x, n, slog + (size_t)filled * lw);
      t_compute += cli_now() - tc;
      if (s != SN_OK) break;
      if (!sn_values_finite(slog + (size_t)filled * lw, (size_t)n * lw))
        s = sn_error_set(SN_ERR_NUMERIC, "file %s: rows %lld..%lld give non-finite outputs (NaN input?)", data,
                         (long long)brows[0], (long long)brows[n - 1]);
      if (fdim) {
        const float *f = top ? sn_net_features(net) : slog + (size_t)filled * lw;
        memcpy(sfeat + (size_t)filled * fdim, f, (size_t)n * fdim * sizeof(float));
      }
      if (topk) {
        sn_softmax(slog + (size_t)filled * lw, n, oc, probs);
        sn_topk(probs, n, oc, (int)topk, sidx + (size_t)filled * topk, sval + (size_t)filled * topk);
        for (int j = 0; labelled && lab && j < n; ++j) {
          const int32_t *ix = sidx + (size_t)(filled + j) * topk;
          if (lab[j] < 0 || lab[j] >= oc) continue;
          conf[(size_t)lab[j] * oc + ix[0]] += 1;
          for (int t = 0; t < topk; ++t)
            if (ix[t] == lab[j]) conf[(size_t)oc * oc] += 1; /* top-k hits */
          conf[(size_t)oc * oc + 1] += 1;                    /* labelled rows */
        }
        for (int j = 0; j < n && printed < nprint && job.rank == 0; ++j, ++printed) {
          printf("row %lld:", (long long)brows[j]);
          for (int t = 0; t < topk && t < 5; ++t) {
            int id = sidx[(size_t)(filled + j) * topk + t];
            printf(" %s%s(%d) %.4f", t ? "| " : "", id < nnames ? names[id] : "", id,
                   sval[(size_t)(filled + j) * topk + t]);
          }
          printf("\n");
        }
      }
      filled += n;
    }
    cli_check(&job, s);
    s = sn_writer_write_block(wr, u.begin, u.count, topk ? sidx : NULL, topk ? sval : NULL,
                              top ? slog : NULL, fdim ? sfeat : NULL, NULL);
    cli_check(&job, s);
    int64_t left = filled - u.count; /* rows of the next unit computed already */
    if (left > 0) {
      memmove(sidx, sidx + (size_t)u.count * topk, (size_t)left * topk * sizeof *sidx);
      memmove(sval, sval + (size_t)u.count * topk, (size_t)left * topk * sizeof *sval);
      memmove(slog, slog + (size_t)u.count * lw, (size_t)left * lw * sizeof *slog);
      if (fdim) memmove(sfeat, sfeat + (size_t)u.count * fdim, (size_t)left * fdim * sizeof *sfeat);
    }
    filled = left;
    done_rows += u.count;
    char extra[96];
    double el = cli_now() - t0;
    snprintf(extra, sizeof extra, "%.0f img/s/rank ETA %.0fs ", done_rows / (el > 0 ? el : 1),
             done_rows ? el / done_rows * (nrows - done_rows) : 0.0);
    cli_progress("infer", (double)done_rows, (double)(nrows ? nrows : 1), extra);
  }
  s = sn_writer_finish(wr);
  cli_check(&job, s);
  double secs = cli_now() - t0, wait = rd ? sn_reader_wait_seconds(rd) : 0;
  double tot[4] = {(double)nrows, wait, t_compute, secs};
  s = sn_comm_allreduce(job.comm, tot, 4, SN_F64, SN_SUM);
  cli_check(&job, s);
  if (labelled) {
    s = sn_comm_allreduce(job.comm, conf, (size_t)oc * oc + 2, SN_F64, SN_SUM);
    cli_check(&job, s);
  }
  if (job.rank == 0 && labelled && conf[(size_t)oc * oc + 1] > 0) {
    double n = conf[(size_t)oc * oc + 1], hit1 = 0;
    for (int i = 0; i < oc; ++i) hit1 += conf[(size_t)i * oc + i];
    if (cli_verbose) {
      printf("accuracy on %.0f labelled rows: top-1 %.2f%%, top-%ld %.2f%%\n", n, 100.0 * hit1 / n, topk,
             100.0 * conf[(size_t)oc * oc] / n);
      if (oc <= 100) {
        printf("per-class top-1 accuracy:\n");
        for (int i = 0; i < oc; ++i) {
          double row = 0;
          for (int j = 0; j < oc; ++j) row += conf[(size_t)i * oc + j];
          const char *name = sn_dataset_class_name(ds, i);
          if (row > 0) printf("  %3d %-20s %6.2f%% of %.0f\n", i, name ? name : "", 100.0 * conf[(size_t)i * oc + i] / row, row);
        }
      }
    }
    for (int i = 0; confusion && i < oc; ++i)
      for (int j = 0; j < oc; ++j)
        fprintf(confusion, "%.0f%c", conf[(size_t)i * oc + j], j + 1 < oc ? '\t' : '\n');
  }
  /* Rank 0 alone writes the matrix; every rank takes part in the check (an agreement). */
  if (confusion && fclose(confusion) != 0)
    s = sn_error_set(SN_ERR_IO, "cannot write confusion matrix %s", cli_get(o, no, "confusion"));
  confusion = NULL;
  cli_check(&job, s);
  free(conf);
  if (job.rank == 0) {
    if (cli_verbose)
      printf("inferred %lld rows on %d rank(s) in %.2f s: %.1f images/s; waiting for data %.1f%% of the "
             "time; output %s\n", (long long)tot[0], job.size, secs, tot[0] / secs,
             tot[3] > 0 ? 100.0 * tot[1] / tot[3] : 0.0, out);
    if (metrics) {
      fprintf(metrics, "{\"rows\": %.0f, \"seconds\": %.3f, \"images_per_s\": %.1f, \"data_wait_s\": %.3f, "
              "\"compute_s\": %.3f, \"ranks\": %d, \"threads\": %d, \"batch\": %ld}\n",
              tot[0], secs, tot[0] / secs, tot[1] / job.size, tot[2] / job.size, job.size, job.threads, batch);
      if (fclose(metrics) != 0)
        fprintf(stderr, "shardnet: warning: writing metrics file %s failed\n", cli_get(o, no, "metrics"));
      metrics = NULL;
    }
  }
  for (int i = 0; i < nnames; ++i) free(names[i]);
  free(names);
  cli_watch_reader(NULL);
  sn_reader_destroy(rd);
  sn_writer_destroy(wr);
  free(missing); free(units); free(rows); free(sidx); free(sval); free(slog); free(sfeat); free(probs);
  cli_print_profile(net);
  sn_net_destroy(net);
  sn_dataset_close(ds);
  return cli_job_end(&job, 0);
}
