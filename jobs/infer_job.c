/* infer_job.c - setting up a `shardnet infer` job and computing one batch (cmd_infer.c runs the
 * loop of collective writes). */
#include "infer_job.h"

#include <stdlib.h>
#include <string.h>

/* The dataset: what --data names, described on rank 0. */
static void open_data(infer_job *c) {
  sn_source_options so;
  sn_source_options_init(&so);
  so.labels_from = c->labels_from;
  sn_status s = sn_dataset_open_sources(c->data, c->ndata, &so, c->job.comm, &c->ds);
  cli_check(&c->job, s);
  const sn_dataset_info *di = sn_dataset_get_info(c->ds);
  if (di->n == 0) s = sn_error_set(SN_ERR_FORMAT, "file %s: the dataset has no rows", c->data_str);
  cli_check(&c->job, s);
  if (c->job.rank == 0 && cli_verbose) {
    char d[512];
    sn_dataset_describe(c->ds, d, sizeof d);
    printf("input: %s\n", d);
  }
}

void infer_build(infer_job *c) {
  open_data(c);
  const sn_dataset_info *di = sn_dataset_get_info(c->ds);
  sn_status s = SN_OK;
  if (c->cfg.height <= 0 && !di->encoded) {
    c->cfg.height = di->h;
    c->cfg.width = di->w;
    c->cfg.channels = di->c;
  }
  s = infer_classes_from_weights(&c->cfg, c->wpath);
  if (s == SN_OK) s = sn_net_create(&c->cfg, 1, &c->net);
  if (s == SN_OK) s = cli_apply_engine_env(c->net);
  cli_check(&c->job, s);
  int h, w, ch;
  sn_net_input_shape(c->net, &h, &w, &ch);
  c->img = (size_t)h * w * ch;
  c->pre = sn_net_default_preprocess(c->net);
  if (c->pre_name) s = sn_preprocess_parse(c->pre_name, &c->pre);
  if (s == SN_OK && di->encoded && (ch == 1 || ch == 3)) s = sn_dataset_set_channels(c->ds, ch);
  if (s == SN_OK) s = sn_dataset_set_decode_for(c->ds, h, w, c->pre);
  if (s == SN_OK && (di->h != h || di->w != w || di->c != ch))
    s = sn_error_set(SN_ERR_SHAPE, "file %s: images are %dx%dx%d but %s takes %dx%dx%d (--input)",
                     c->data_str, di->h, di->w, di->c, c->cfg.arch, h, w, ch);
  if (s == SN_OK && di->dtype == SN_F32 && !di->encoded && c->pre != SN_PRE_NONE &&
      c->job.rank == 0 && cli_verbose)
    fprintf(stderr,
            "shardnet: note: float32 images are preprocessed with '%s' (use --preprocess none "
            "if they are already)\n",
            sn_preprocess_name(c->pre));
  if (s == SN_OK && c->wpath)
    s = cli_load_weights(&c->job, c->net, c->wpath, c->cfg.include_top ? 0 : SN_LOAD_IGNORE_HEAD,
                         c->md5);
  else if (s == SN_OK && c->job.rank == 0 && cli_verbose)
    fprintf(stderr, "shardnet: warning: no --weights: random initialisation\n");
  cli_check(&c->job, s);
  cli_check(&c->job, cli_set_precision(&c->job, c->net, c->precision, c->scales, c->md5));
}

/* The writer's configuration, the checks a resumed output must pass and the report files. */
static sn_status configure(infer_job *c, sn_writer_config *wc) {
  int top = c->cfg.include_top, oh, ow;
  sn_net_output_shape(c->net, &oh, &ow, &c->classes);
  c->lw = (size_t)oh * ow * c->classes;
  c->fdim = top ? sn_net_feature_dim(c->net) : (int)c->lw;
  if (!top) c->topk = 0; /* no classifier, no predictions */
  if (c->topk > c->classes) c->topk = c->classes;
  sn_writer_config_init(wc);
  wc->n_total = sn_dataset_get_info(c->ds)->n;
  if (!top && c->cfg.pooling == SN_POOL_NONE) { /* a feature map keeps its shape */
    wc->feature_shape[0] = oh;
    wc->feature_shape[1] = ow;
    wc->feature_shape[2] = c->classes;
  }
  wc->top_k = (int)c->topk;
  wc->classes = top ? c->classes : 0;
  wc->feature_dim = c->fdim;
  wc->compression = (int)c->comp;
  wc->resume = c->resume;
  wc->feature_dtype = c->f16 ? SN_FEATURES_F16 : SN_FEATURES_F32;
  wc->flags = (c->topk ? SN_WRITE_PREDICTIONS : 0) | (top && c->want_logits ? SN_WRITE_LOGITS : 0) |
              (c->want_features || !top ? SN_WRITE_FEATURES : 0);
  if (!wc->flags)
    return sn_error_set(SN_ERR_INVALID,
                        "infer: nothing to write (--top-k 0 without --logits or --features)");
  sn_status s = infer_labels_open(c);
  int has_labels = sn_dataset_get_info(c->ds)->has_labels;
  if (s == SN_OK && c->confusion_path && !(has_labels && c->topk > 0))
    s = sn_error_set(SN_ERR_INVALID,
                     "infer: --confusion needs a dataset with labels and --top-k > 0 (%s has %s)",
                     c->data_str, has_labels ? "labels" : "none");
  /* Resuming must continue the same computation: same model, weights and preprocessing. */
  const char *want[][2] = {{"arch", c->cfg.arch},
                           {"weights_md5", c->md5},
                           {"preprocess", sn_preprocess_name(c->pre)},
                           {"precision", sn_precision_name(c->precision)}};
  const int resuming = wc->resume && c->state == SN_OUTPUT_INCOMPLETE;
  for (size_t i = 0; resuming && s == SN_OK && i < sizeof want / sizeof want[0]; ++i) {
    char have[128];
    if (sn_file_attr_str(c->out, want[i][0], have, sizeof have) == SN_OK &&
        strcmp(have, want[i][1]))
      s = sn_error_set(SN_ERR_INVALID,
                       "infer: cannot resume %s: it was started with %s '%s', this run has '%s'",
                       c->out, want[i][0], have, want[i][1]);
  }
  /* opened now: an unwritable path fails before any work */
  if (s == SN_OK && c->job.rank == 0 && c->metrics_path)
    s = cli_fopen(c->metrics_path, "a", "cannot open metrics file", &c->metrics);
  if (s == SN_OK && c->job.rank == 0 && c->confusion_path)
    s = cli_fopen(c->confusion_path, "w", "cannot write confusion matrix", &c->confusion);
  return s;
}

void infer_open_output(infer_job *c) {
  sn_writer_config wc;
  sn_status s = configure(c, &wc);
  if (s == SN_OK) s = sn_net_plan(c->net, (int)c->batch, 0); /* refusals before any output */
  cli_check(&c->job, s);
  s = sn_writer_create(c->out, c->job.comm, &wc, &c->wr);
  if (s == SN_OK) s = sn_writer_set_source(c->wr, c->ds);
  cli_check(&c->job, s);
  const char *attrs[][2] = {{"arch", c->cfg.arch},
                            {"weights", c->wpath ? c->wpath : "(random)"},
                            {"weights_md5", c->md5},
                            {"preprocess", sn_preprocess_name(c->pre)},
                            {"version", SN_VERSION},
                            {"data", c->data_str},
                            {"bad_images", c->bad_images == SN_BAD_SKIP ? "skip" : "fail"},
                            {"precision", sn_precision_name(c->precision)},
                            {"scales", c->scales ? c->scales : ""}};
  for (size_t i = 0; s == SN_OK && i < sizeof attrs / sizeof attrs[0]; ++i)
    s = sn_writer_set_attr_str(c->wr, attrs[i][0], attrs[i][1]);
  cli_check(&c->job, s);
  s = sn_staging_create(c->wr, (int)c->batch, &c->st);
  size_t b = (size_t)c->batch, k = c->topk ? (size_t)c->topk : 1;
  c->out_b = malloc(b * c->lw * sizeof(float));
  c->feat_b = malloc(b * (c->fdim ? c->fdim : 1) * sizeof(float));
  c->probs_b = malloc(b * c->classes * sizeof(float));
  c->val_b = malloc(b * k * sizeof(float));
  c->idx_b = malloc(b * k * sizeof(int32_t));
  if (s == SN_OK && (!c->out_b || !c->feat_b || !c->probs_b || !c->val_b || !c->idx_b))
    s = sn_error_set(SN_ERR_NOMEM, "infer: out of memory for output staging");
  sn_reader_options ro;
  sn_reader_options_init(&ro);
  ro.batch = (int)c->batch;
  ro.preprocess = c->pre;
  ro.threads = c->dthreads > 0 ? (int)c->dthreads : c->job.threads;
  ro.bad_images = c->bad_images;
  int64_t nrows;
  const int64_t *rows = sn_staging_rows(c->st, &nrows);
  if (s == SN_OK && nrows) s = sn_reader_create(c->ds, rows, nrows, &ro, &c->rd);
  cli_watch_reader(c->rd);
  cli_check(&c->job, s);
  if (sn_dataset_get_info(c->ds)->has_labels && c->topk > 0)
    s = sn_metrics_create(c->classes, (int)c->topk, 1, &c->mx);
  cli_check(&c->job, s);
}

/* The reader's next batch; a bad input's message says how to skip such inputs. */
static sn_status next_batch(infer_job *c, sn_batch *b) {
  sn_status s = sn_reader_next_batch(c->rd, b);
  if (s != SN_OK && sn_reader_bad_input(c->rd))
    return sn_error_set(s,
                        "%s (use --bad-images skip to leave bad images out; they are then "
                        "listed in /skipped)",
                        sn_last_error());
  if (s == SN_OK && b->inputs == 0) s = sn_error_set(SN_ERR_INVALID, "infer: reader ended early");
  return s;
}

sn_status infer_batch(infer_job *c) {
  sn_batch b;
  sn_status s = next_batch(c, &b);
  const int n = b.count;
  if (s == SN_OK && n > 0 && sn_dataset_get_info(c->ds)->dtype == SN_F32 &&
      !sn_values_finite(b.x, (size_t)n * c->img))
    s = sn_error_set(SN_ERR_NUMERIC, "file %s: /images rows %lld..%lld contain NaN or infinity",
                     c->data_str, (long long)b.rows[0], (long long)b.rows[n - 1]);
  if (s != SN_OK) return s;
  double t0 = cli_now();
  if (n > 0)
    s = sn_net_predict(c->net, b.x, n, (int)c->topk, c->out_b, c->fdim ? c->feat_b : NULL,
                       c->topk ? c->probs_b : NULL, c->idx_b, c->val_b);
  c->t_compute += cli_now() - t0;
  if (s == SN_OK) s = sn_staging_add_batch(c->st, &b, c->idx_b, c->val_b, c->out_b, c->feat_b);
  if (s != SN_OK || n == 0) return s;
  c->computed += n;
  if (c->mx && b.labels) sn_metrics_add(c->mx, n, b.labels, c->idx_b, NULL);
  if (!sn_values_finite(c->out_b, (size_t)n * c->lw))
    s = sn_error_set(SN_ERR_NUMERIC,
                     "file %s: rows %lld..%lld give non-finite outputs (NaN input?)", c->data_str,
                     (long long)b.rows[0], (long long)b.rows[n - 1]);
  return s;
}

void infer_free(infer_job *c) {
  sn_labels_destroy(c->labels);
  cli_watch_reader(NULL);
  sn_reader_destroy(c->rd);
  sn_staging_destroy(c->st);
  sn_writer_destroy(c->wr);
  sn_metrics_destroy(c->mx);
  free(c->out_b);
  free(c->feat_b);
  free(c->probs_b);
  free(c->val_b);
  free(c->idx_b);
  cli_print_profile(c->net);
  sn_net_destroy(c->net);
  sn_dataset_close(c->ds);
  free(c->data_str);
}
