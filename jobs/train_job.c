/* train_job.c - setting up, resuming and validating a `shardnet train` job (cmd_train.c runs the
 * epochs). */
#include "train_job.h"

#include <stdlib.h>
#include <string.h>

/* The training and validation datasets and what they fix of the model: classes and input size. */
static void open_data(train_job *c) {
  sn_status s = sn_dataset_open(c->data, c->job.comm, &c->train);
  if (s == SN_OK && c->vpath) s = sn_dataset_open(c->vpath, c->job.comm, &c->val);
  cli_check(&c->job, s);
  const sn_dataset_info *ti = sn_dataset_get_info(c->train);
  if (!ti->has_labels) s = sn_error_set(SN_ERR_FORMAT, "file %s: no /labels to train on", c->data);
  if (s == SN_OK && ti->n == 0)
    s = sn_error_set(SN_ERR_FORMAT, "file %s: the dataset has no rows", c->data);
  if (s == SN_OK && c->cfg.classes <= 0 && ti->num_classes > 0) c->cfg.classes = ti->num_classes;
  if (s == SN_OK && c->cfg.height <= 0) {
    c->cfg.height = ti->h;
    c->cfg.width = ti->w;
    c->cfg.channels = ti->c;
  }
  cli_check(&c->job, s);
}

/* The model's input and classes against the datasets. */
static sn_status check_shapes(const train_job *c) {
  const sn_dataset_info *ti = sn_dataset_get_info(c->train);
  if (ti->h != c->h || ti->w != c->w || ti->c != c->ch)
    return sn_error_set(SN_ERR_SHAPE,
                        "file %s: images are %dx%dx%d but %s takes %dx%dx%d (--input)", c->data,
                        ti->h, ti->w, ti->c, c->cfg.arch, c->h, c->w, c->ch);
  if (ti->num_classes > c->k)
    return sn_error_set(SN_ERR_SHAPE,
                        "file %s: %d classes but the model has %d outputs (--classes)", c->data,
                        ti->num_classes, c->k);
  const sn_dataset_info *vi = c->val ? sn_dataset_get_info(c->val) : NULL;
  if (vi && (vi->h != c->h || vi->w != c->w || vi->c != c->ch || !vi->has_labels))
    return sn_error_set(
        SN_ERR_SHAPE, "file %s: validation images %dx%dx%d%s do not match the model's %dx%dx%d",
        c->vpath, vi->h, vi->w, vi->c, vi->has_labels ? "" : " (or no /labels)", c->h, c->w, c->ch);
  return SN_OK;
}

void train_build(train_job *c) {
  open_data(c);
  sn_status s = sn_net_create(&c->cfg, (uint64_t)c->seed, &c->net);
  if (s == SN_OK) s = cli_apply_engine_env(c->net);
  cli_check(&c->job, s);
  int oh, ow;
  sn_net_input_shape(c->net, &c->h, &c->w, &c->ch);
  sn_net_output_shape(c->net, &oh, &ow, &c->k);
  cli_check(&c->job, check_shapes(c));
  c->pre = sn_net_default_preprocess(c->net);
  if (c->pre_name) s = sn_preprocess_parse(c->pre_name, &c->pre);
  if (s == SN_OK && c->init) s = cli_load_weights(&c->job, c->net, c->init, SN_LOAD_NEW_HEAD, NULL);
  if (s == SN_OK && c->zero_init && !c->init) sn_net_zero_init_residual(c->net);
  /* Every rank starts from rank 0's parameters, so ranks cannot drift. */
  size_t nblock;
  float *block = sn_net_param_block(c->net, &nblock);
  if (s == SN_OK) s = sn_comm_bcast(c->job.comm, block, nblock * sizeof(float), 0);
  c->local_max = sn_shard_local_max(c->batch, c->job.size);
  if (s == SN_OK && c->batch < c->job.size)
    s = sn_error_set(SN_ERR_INVALID, "global batch %ld is smaller than the %d ranks", c->batch,
                     c->job.size);
  if (s == SN_OK) s = sn_net_plan(c->net, c->local_max, 1);
  sn_net_set_comm(c->net, c->job.comm, c->sync_bn);
  sn_net_set_bucket_mb(c->net, c->bucket);
  if (s == SN_OK && c->val) s = sn_net_create(&c->cfg, (uint64_t)c->seed, &c->evalnet);
  if (s == SN_OK && c->val) s = cli_apply_engine_env(c->evalnet);
  if (s == SN_OK && c->val) s = sn_net_plan(c->evalnet, c->local_max, 0);
  cli_check(&c->job, s);
}

void train_resume(train_job *c) {
  c->meta = (sn_checkpoint_meta){0, 0, (uint64_t)c->seed, c->job.size, c->batch};
  if (!c->resume) return;
  const int note = c->job.rank == 0 && cli_verbose;
  sn_checkpoint_meta *m = &c->meta;
  sn_status s = SN_OK;
  FILE *f = fopen(c->ckpt, "rb");
  if (f) {
    fclose(f);
    s = sn_checkpoint_load(c->net, c->ckpt, m);
    if (s == SN_OK && m->global_batch != c->batch && note)
      fprintf(stderr, "shardnet: note: checkpoint used global batch %lld, continuing with %ld\n",
              (long long)m->global_batch, c->batch);
    if (s == SN_OK && m->ranks != c->job.size && note)
      fprintf(stderr,
              "shardnet: note: checkpoint written by %d ranks, resuming on %d with the same "
              "global batch %ld\n",
              m->ranks, c->job.size, c->batch);
    if (s == SN_OK && note)
      fprintf(stderr, "shardnet: resuming from %s after epoch %lld (step %lld)\n", c->ckpt,
              (long long)m->epoch, (long long)m->step);
  } else if (note) {
    fprintf(stderr, "shardnet: no checkpoint at %s yet; starting fresh\n", c->ckpt);
  }
  cli_check(&c->job, s);
  c->seed = (long)m->seed;
}

/* The first step of this run: the checkpoint's, or, when it counts steps of another global batch,
 * its whole epochs and the samples of a partly done epoch rounded down to steps of this batch
 * (none are skipped; a few may be seen twice). */
static int64_t start_step(const train_job *c) {
  const sn_checkpoint_meta *m = &c->meta;
  if (!c->resume || m->global_batch <= 0 || m->global_batch == c->batch) return m->step;
  const int64_t n = sn_dataset_get_info(c->train)->n;
  int64_t old_spe = sn_shard_epoch_steps(n, m->global_batch, c->drop_last);
  int64_t within = old_spe > 0 ? m->step - m->epoch * old_spe : 0;
  if (within < 0) within = 0;
  int64_t new_within = within * m->global_batch / c->batch;
  if (new_within >= c->steps_per_epoch) new_within = c->steps_per_epoch - 1;
  int64_t step = m->epoch * c->steps_per_epoch + new_within;
  if (c->job.rank == 0 && cli_verbose)
    fprintf(stderr, "shardnet: step %lld of global batch %lld is step %lld of global batch %ld\n",
            (long long)m->step, (long long)m->global_batch, (long long)step, c->batch);
  return step;
}

void train_schedule(train_job *c) {
  const int64_t n = sn_dataset_get_info(c->train)->n;
  c->steps_per_epoch = sn_shard_epoch_steps(n, c->batch, c->drop_last);
  sn_status s = SN_OK;
  if (c->steps_per_epoch <= 0)
    s = sn_error_set(SN_ERR_INVALID, "file %s: %lld rows make no global batch of %ld", c->data,
                     (long long)n, c->batch);
  cli_check(&c->job, s);
  c->total_steps = c->steps_limit > 0 ? c->steps_limit : c->steps_per_epoch * c->epochs;
  c->lrs = (sn_lr_schedule){.kind = c->sched,
                            .base_lr = (float)c->lr,
                            .total_steps = c->total_steps,
                            .warmup_steps = (int64_t)(c->warmup * c->steps_per_epoch),
                            .step_every = c->steps_per_epoch * 30,
                            .step_gamma = 0.1f};
  sn_train_config_init(&c->tc);
  c->tc.momentum = (float)c->mom;
  c->tc.nesterov = c->nesterov;
  c->tc.weight_decay = (float)c->wd;
  c->tc.decay_bn_and_bias = c->decay_bn_bias;
  c->tc.label_smoothing = (float)c->ls;
  if (c->job.rank == 0 && c->metrics_path)
    s = cli_fopen(c->metrics_path, "a", "cannot open metrics file", &c->metrics);
  cli_check(&c->job, s);
  c->step = start_step(c);
}

sn_status train_check_labels(const char *path, const char *what, const int32_t *labels,
                             const int64_t *rows, int n, int k) {
  for (int i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= k)
      return sn_error_set(SN_ERR_FORMAT, "file %s: %s %lld: label %d outside [0, %d)", path, what,
                          (long long)rows[i], labels[i], k);
  return SN_OK;
}

/* Validation of one batch: image and label checks, prediction, sums. */
static sn_status validate_batch(train_job *c, sn_reader *rd, sn_metrics *m, float *out,
                                float *probs, int32_t *top, float *val) {
  float *x;
  int32_t *lab;
  int64_t *rows;
  int n = 0;
  sn_status s = sn_reader_next(rd, &x, &lab, &rows, &n);
  if (s != SN_OK || n == 0) return s;
  if (sn_dataset_get_info(c->val)->dtype == SN_F32 &&
      !sn_values_finite(x, (size_t)n * c->h * c->w * c->ch))
    return sn_error_set(SN_ERR_NUMERIC, "file %s: /images rows %lld..%lld contain NaN or infinity",
                        c->vpath, (long long)rows[0], (long long)rows[n - 1]);
  s = train_check_labels(c->vpath, "validation row", lab, rows, n, c->k);
  if (s == SN_OK) s = sn_net_predict(c->evalnet, x, n, 1, out, NULL, probs, top, val);
  if (s == SN_OK) sn_metrics_add(m, n, lab, top, probs);
  return s;
}

void train_validate(train_job *c, double *loss, double *correct, double *count) {
  size_t nb;
  float *src = sn_net_param_block(c->net, &nb), *dst = sn_net_param_block(c->evalnet, NULL);
  memcpy(dst, src, nb * sizeof(float));
  sn_status s = sn_net_refresh(c->evalnet);
  int64_t b, e;
  sn_shard_block(sn_dataset_get_info(c->val)->n, c->job.rank, c->job.size, &b, &e);
  const size_t max = (size_t)c->local_max;
  int64_t *rows = malloc((e > b ? (size_t)(e - b) : 1) * sizeof *rows);
  float *out = malloc(max * c->k * sizeof *out), *probs = malloc(max * c->k * sizeof *probs);
  float *val = malloc(max * sizeof *val);
  int32_t *top = malloc(max * sizeof *top);
  if (!rows || !out || !probs || !val || !top)
    s = sn_error_set(SN_ERR_NOMEM, "evaluation: out of memory");
  for (int64_t i = b; rows && i < e; ++i)
    rows[i - b] = i;
  sn_reader_options ro;
  sn_reader_options_init(&ro);
  ro.batch = c->local_max;
  ro.preprocess = c->pre;
  sn_reader *rd = NULL;
  sn_metrics *m = NULL;
  if (s == SN_OK) s = sn_metrics_create(c->k, 1, 0, &m);
  if (s == SN_OK && e > b) s = sn_reader_create(c->val, rows, e - b, &ro, &rd);
  cli_watch_reader(rd);
  for (int64_t i = b; s == SN_OK && i < e; i += c->local_max)
    s = validate_batch(c, rd, m, out, probs, top, val);
  cli_check(&c->job, s);
  cli_watch_reader(NULL);
  sn_reader_destroy(rd);
  free(rows);
  free(out);
  free(probs);
  free(val);
  free(top);
  cli_check(&c->job, sn_metrics_allreduce(m, c->job.comm));
  double rows_sum, loss_sum;
  sn_metrics_sums(m, &rows_sum, correct, NULL, &loss_sum);
  *loss = rows_sum ? loss_sum / rows_sum : 0;
  *count = rows_sum;
  sn_metrics_destroy(m);
}

sn_status train_check_batch(const train_job *c, int n, int per_step, const float *x,
                            const int32_t *lb, const int64_t *rb) {
  if (n != per_step)
    return sn_error_set(SN_ERR_INVALID, "train: reader gave %d rows, expected %d", n, per_step);
  if (sn_dataset_get_info(c->train)->dtype == SN_F32 &&
      !sn_values_finite(x, (size_t)n * c->h * c->w * c->ch))
    return sn_error_set(SN_ERR_NUMERIC,
                        "file %s: /images rows of step %lld contain NaN or infinity", c->data,
                        (long long)c->step + 1);
  return train_check_labels(c->data, "row", lb, rb, n, c->k);
}

void train_progress(const train_job *c, int64_t epoch, int64_t st, int64_t first, double t0,
                    const double sums[3]) {
  if (c->job.rank != 0 || !cli_verbose) return;
  double el = cli_now() - t0, done = (double)(st + 1 - first);
  int64_t rest = c->steps_per_epoch - st - 1, left = c->total_steps - c->step;
  if (left < rest) rest = left;
  char extra[160], what[48];
  snprintf(extra, sizeof extra, "loss %.4f acc %.1f%% %.0f img/s ETA %.0fs ", sums[0] / sums[2],
           100.0 * sums[1] / sums[2], done * c->batch / el, el / done * (double)rest);
  snprintf(what, sizeof what, "epoch %lld", (long long)epoch + 1);
  cli_progress(what, (double)(st + 1), (double)c->steps_per_epoch, extra);
}

void train_end_epoch(train_job *c, cli_epoch *e, double t0) {
  cli_check(&c->job, sn_comm_allreduce(c->job.comm, e->sums, 3, SN_F64, SN_SUM));
  e->secs = cli_now() - t0;
  e->has_val = c->val != NULL;
  if (c->val) train_validate(c, &e->val_loss, &e->val_correct, &e->val_count);
  /* An epoch cut short by --steps is not complete: a resume continues inside it. */
  e->step = c->step;
  e->done = c->step >= (e->epoch + 1) * c->steps_per_epoch;
  c->meta = (sn_checkpoint_meta){e->done ? e->epoch + 1 : e->epoch, c->step, (uint64_t)c->seed,
                                 c->job.size, c->batch};
  sn_status s = SN_OK;
  if (c->ckpt && c->job.rank == 0) s = sn_checkpoint_save(c->net, c->ckpt, &c->meta);
  cli_check(&c->job, s);
  e->lr = sn_lr_at(&c->lrs, c->step ? c->step - 1 : 0);
  e->wait = c->wait_data;
  if (c->job.rank == 0) cli_report_epoch(&c->job, e, c->net, c->metrics);
}

void train_free(train_job *c) {
  if (c->metrics) fclose(c->metrics);
  c->metrics = NULL;
  cli_print_profile(c->net);
  cli_print_profile(c->evalnet);
  sn_net_destroy(c->net);
  sn_net_destroy(c->evalnet);
  sn_dataset_close(c->train);
  sn_dataset_close(c->val);
}
