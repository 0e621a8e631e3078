/* train_job.c - setting up, resuming and validating a `shardnet train` job (cmd_train.c runs the
 * epochs). */
#include "train_job.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* What the options resolve to, once the data and the net have fixed the defaults. */
static void build_recipe(train_job *c) {
  sn_train_recipe *r = &c->recipe;
  const sn_model_config *mc = sn_net_config(c->net);
  sn_train_recipe_init(r);
  snprintf(r->arch, sizeof r->arch, "%s", mc->arch);
  r->classes = c->k;
  r->height = c->h;
  r->width = c->w;
  r->channels = c->ch;
  r->base_width = mc->base_width;
  r->data_rows = sn_dataset_get_info(c->train)->n;
  r->epochs = c->epochs;
  r->steps = c->steps_limit;
  r->global_batch = c->batch;
  r->lr = c->lr;
  r->schedule = c->sched;
  r->warmup_epochs = c->warmup;
  r->momentum = c->mom;
  r->nesterov = c->nesterov;
  r->weight_decay = c->wd;
  r->decay_bn_and_bias = c->decay_bn_bias;
  r->label_smoothing = c->ls;
  r->augment = c->augment_given ? c->aug : c->h >= 96 ? SN_AUG_RESIZED_CROP : SN_AUG_CROP_FLIP;
  r->crop_scale = c->crop_scale;
  r->preprocess = c->pre;
  r->shuffle = c->shuffle;
  r->drop_last = c->drop_last;
  r->seed = (uint64_t)c->seed;
  r->bn_group = c->sync_bn ? (int)c->bn_group : 1;
  r->bn_style =
      c->cfg.bn_momentum_style >= 0 ? c->cfg.bn_momentum_style : (int)sn_net_style(c->net);
}

int train_parse_scale(train_job *c, const char *bn_group, const char *allreduce) {
  char *end = NULL;
  c->bn_group = bn_group ? strtol(bn_group, &end, 10) : 0;
  if (bn_group && (!*bn_group || *end || c->bn_group < 1 || c->bn_group > 1 << 20)) {
    cli_error("option --bn-group: '%s' is not a group size (1, 2, ... ranks)", bn_group);
    return EXIT_USAGE;
  }
  if (!c->sync_bn && c->bn_group > 1) {
    cli_error("train: --bn local and --bn-group %ld contradict each other", c->bn_group);
    return EXIT_USAGE;
  }
  c->allreduce_given = allreduce != NULL;
  if (allreduce && sn_allreduce_parse(allreduce, &c->allreduce) != SN_OK) {
    cli_error("option --allreduce: %s", sn_last_error());
    return EXIT_USAGE;
  }
  return 0;
}

/* The gradient all-reduce's algorithm and the sync-BN groups (both collective). */
static sn_status set_scale(train_job *c) {
  sn_status s = sn_comm_set_allreduce(c->job.comm, c->allreduce);
  if (s == SN_OK && c->job.rank == 0 && cli_verbose && c->job.size > 1 && !c->allreduce_given &&
      sn_comm_allreduce_algo(c->job.comm) == SN_ALLREDUCE_MPI)
    fprintf(stderr, "shardnet: note: gradient all-reduce by MPI_Iallreduce, as Open MPI's "
                    "coll_libnbc_iallreduce_algorithm asks (shardnet's ring without it)\n");
  if (s == SN_OK && c->bn_group > 0 && c->job.size % c->bn_group != 0)
    s = sn_error_set(SN_ERR_INVALID, "--bn-group %ld does not divide the %d ranks", c->bn_group,
                     c->job.size);
  if (s == SN_OK && c->sync_bn && c->bn_group > 0 && c->bn_group < c->job.size)
    s = sn_comm_split_groups(c->job.comm, (int)c->bn_group, &c->bn_comm);
  if (s == SN_OK) s = sn_net_set_bn_comm(c->net, c->bn_comm);
  return s;
}

void train_build(train_job *c) {
  open_data(c);
  sn_status s = sn_net_create(&c->cfg, (uint64_t)c->seed, &c->net);
  if (s == SN_OK) s = cli_apply_engine_env(c->net);
  cli_check(&c->job, s);
  int oh, ow;
  sn_net_input_shape(c->net, &c->h, &c->w, &c->ch);
  sn_net_output_shape(c->net, &oh, &ow, &c->k);
  c->pre = sn_net_default_preprocess(c->net);
  if (c->pre_name) s = sn_preprocess_parse(c->pre_name, &c->pre);
  /* Encoded pictures are decoded to the model's input as the preprocessing's framework fits
   * them (the reader crops them at decode instead for resized-crop training). */
  if (s == SN_OK) s = sn_dataset_set_decode_for(c->train, c->h, c->w, c->pre);
  if (s == SN_OK && c->val) s = sn_dataset_set_decode_for(c->val, c->h, c->w, c->pre);
  cli_check(&c->job, s);
  cli_check(&c->job, check_shapes(c));
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
  if (s == SN_OK) s = set_scale(c);
  sn_net_set_bucket_mb(c->net, c->bucket);
  if (s == SN_OK && c->val) s = sn_net_create(&c->cfg, (uint64_t)c->seed, &c->evalnet);
  if (s == SN_OK && c->val) s = cli_apply_engine_env(c->evalnet);
  if (s == SN_OK && c->val) s = sn_net_plan(c->evalnet, c->local_max, 0);
  cli_check(&c->job, s);
  build_recipe(c);
  cli_check(&c->job, sn_train_warnings(&c->recipe, c->train, &c->warnings));
  for (int i = 0; c->job.rank == 0 && cli_verbose && i < c->warnings.n; ++i)
    fprintf(stderr, "shardnet: warning: %s\n", c->warnings.text[i]);
}

/* What resuming on another rank count changes (rank 0). */
static void note_rank_change(const train_job *c) {
  const sn_checkpoint_meta *m = &c->meta;
  if (c->job.rank != 0 || m->ranks == c->job.size) return; /* also with --quiet */
  fprintf(stderr,
          "shardnet: note: checkpoint written by %d rank(s), resuming on %d with the same global "
          "batch %ld: up to %d rows per rank and step instead of %d; %s\n",
          m->ranks, c->job.size, c->batch, c->local_max, sn_shard_local_max(c->batch, m->ranks),
          c->sync_bn ? "batch norm still normalises over the global batch, so the training "
                       "continues the same up to float rounding (sums reduced in another order), "
                       "not bit for bit"
                     : "with --bn local each rank's batch statistics now come from that many rows "
                       "(another computation), and every rank continues from rank 0's moving "
                       "statistics");
}

void train_resume(train_job *c) {
  memset(&c->meta, 0, sizeof c->meta);
  c->meta.ranks = c->job.size;
  if (!c->resume) return;
  const int note = c->job.rank == 0 && cli_verbose;
  sn_checkpoint_meta *m = &c->meta;
  int exists = c->job.rank == 0 && access(c->ckpt, F_OK) == 0;
  cli_check(&c->job, sn_comm_bcast(c->job.comm, &exists, sizeof exists, 0));
  if (!exists) {
    if (note) fprintf(stderr, "shardnet: no checkpoint at %s yet; starting fresh\n", c->ckpt);
    return;
  }
  cli_check(&c->job, sn_checkpoint_read_meta(c->ckpt, c->job.comm, m));
  char diff[1024] = "";
  int nd = m->has_recipe ? sn_train_recipe_diff(&m->recipe, &c->recipe, diff, sizeof diff) : 0;
  sn_status s = SN_OK;
  if (nd && !c->allow_change)
    s = sn_error_set(SN_ERR_INVALID,
                     "checkpoint %s: %d option%s differ%s from the run it continues: %s (resume "
                     "with the same options, or accept the change with --allow-recipe-change)",
                     c->ckpt, nd, nd > 1 ? "s" : "", nd > 1 ? "" : "s", diff);
  cli_check(&c->job, s);
  if (nd && c->job.rank == 0) /* asked for: printed also with --quiet */
    fprintf(stderr, "shardnet: note: resuming %s with a changed recipe: %s\n", c->ckpt, diff);
  if (!m->has_recipe && note)
    fprintf(stderr,
            "shardnet: note: checkpoint %s records no recipe (an older version wrote it): "
            "the options are not checked against it\n",
            c->ckpt);
  cli_check(&c->job, sn_checkpoint_load(c->net, c->ckpt, c->job.comm, m));
  note_rank_change(c);
  if (note)
    fprintf(stderr, "shardnet: resuming from %s at step %lld (epoch %lld)\n", c->ckpt,
            (long long)m->step, (long long)m->epoch + 1);
  if (!m->has_recipe) c->seed = (long)m->recipe.seed;
}

/* The first step of this run: the checkpoint's, or, when it counts steps of another global batch,
 * its whole epochs and the samples of a partly done epoch rounded down to steps of this batch
 * (none are skipped; a few may be seen twice). */
static int64_t start_step(const train_job *c) {
  const sn_checkpoint_meta *m = &c->meta;
  const int64_t old_batch = m->recipe.global_batch;
  if (!c->resume || old_batch <= 0 || old_batch == c->batch) return m->step;
  const int64_t n = sn_dataset_get_info(c->train)->n;
  int64_t old_spe =
      sn_shard_epoch_steps(n, old_batch, m->has_recipe ? m->recipe.drop_last : c->drop_last);
  int64_t within = old_spe > 0 ? m->step - m->epoch * old_spe : 0;
  if (within < 0) within = 0;
  int64_t new_within = within * old_batch / c->batch;
  if (within >= old_spe) /* the epoch's steps were all done (its report was pending) */
    new_within = c->steps_per_epoch;
  else if (new_within >= c->steps_per_epoch)
    new_within = c->steps_per_epoch - 1;
  int64_t step = m->epoch * c->steps_per_epoch + new_within;
  if (c->job.rank == 0 && cli_verbose)
    fprintf(stderr, "shardnet: step %lld of global batch %lld is step %lld of global batch %ld\n",
            (long long)m->step, (long long)old_batch, (long long)step, c->batch);
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

/* Validation of one batch: image and label checks, prediction (top-k5), sums. */
static sn_status validate_batch(train_job *c, sn_reader *rd, sn_metrics *m, int k5, float *out,
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
  if (s == SN_OK) s = sn_net_predict(c->evalnet, x, n, k5, out, NULL, probs, top, val);
  if (s == SN_OK) sn_metrics_add(m, n, lab, top, probs);
  return s;
}

int train_validate(train_job *c, double out[4]) {
  size_t nb;
  float *src = sn_net_param_block(c->net, &nb), *dst = sn_net_param_block(c->evalnet, NULL);
  memcpy(dst, src, nb * sizeof(float));
  sn_status s = sn_net_refresh(c->evalnet);
  const int64_t nval = sn_dataset_get_info(c->val)->n;
  int64_t b, e;
  sn_shard_block(nval, c->job.rank, c->job.size, &b, &e);
  /* Every rank makes as many rounds as the largest block needs: one collective check each. */
  const int64_t rounds = ((nval + c->job.size - 1) / c->job.size + c->local_max - 1) / c->local_max;
  const size_t max = (size_t)c->local_max;
  const int k5 = c->k < 5 ? c->k : 5;
  int64_t *rows = malloc((e > b ? (size_t)(e - b) : 1) * sizeof *rows);
  float *o = malloc(max * c->k * sizeof *o), *probs = malloc(max * c->k * sizeof *probs);
  float *val = malloc(max * k5 * sizeof *val);
  int32_t *top = malloc(max * k5 * sizeof *top);
  if (!rows || !o || !probs || !val || !top)
    s = sn_error_set(SN_ERR_NOMEM, "evaluation: out of memory");
  for (int64_t i = b; rows && i < e; ++i)
    rows[i - b] = i;
  sn_reader_options ro;
  sn_reader_options_init(&ro);
  ro.batch = c->local_max;
  ro.preprocess = c->pre;
  ro.threads = (int)c->decode_threads;
  sn_reader *rd = NULL;
  sn_metrics *m = NULL;
  if (s == SN_OK) s = sn_metrics_create(c->k, k5, 0, &m);
  if (s == SN_OK && e > b) s = sn_reader_create(c->val, rows, e - b, &ro, &rd);
  cli_watch_reader(rd);
  for (int64_t r = 0; r < rounds && !c->stop; ++r) {
    if (s == SN_OK && b + r * c->local_max < e)
      s = validate_batch(c, rd, m, k5, o, probs, top, val);
    unsigned f = cli_stop_flags();
    cli_check_flags(&c->job, s, &f);
    c->stop = f & CLI_STOP_ANY;
  }
  cli_watch_reader(NULL);
  sn_reader_destroy(rd);
  free(rows);
  free(o);
  free(probs);
  free(val);
  free(top);
  if (!c->stop) cli_check(&c->job, sn_metrics_allreduce(m, c->job.comm));
  double rows_sum = 0, loss_sum = 0;
  if (m) sn_metrics_sums(m, &rows_sum, &out[1], &out[2], &loss_sum);
  out[0] = rows_sum ? loss_sum / rows_sum : 0;
  out[3] = rows_sum;
  sn_metrics_destroy(m);
  return !c->stop;
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
                    const double sums[5]) {
  if (c->job.rank != 0 || !cli_verbose) return;
  double el = cli_now() - t0, done = (double)(st + 1 - first);
  int64_t rest = c->steps_per_epoch - st - 1, left = c->total_steps - c->step;
  if (left < rest) rest = left;
  char extra[160], what[48];
  snprintf(extra, sizeof extra, "loss %.4f acc %.1f%% %.0f img/s ETA %.0fs ", sums[0] / sums[3],
           100.0 * sums[1] / sums[3], done * c->batch / el, el / done * (double)rest);
  snprintf(what, sizeof what, "epoch %lld", (long long)epoch + 1);
  cli_progress(what, (double)(st + 1), (double)c->steps_per_epoch, extra);
}

void train_end_epoch(train_job *c, cli_epoch *e, double t0) {
  cli_check(&c->job, sn_comm_allreduce(c->job.comm, e->sums, 5, SN_F64, SN_SUM));
  e->secs = cli_now() - t0;
  e->step = c->step;
  e->done = c->step >= (e->epoch + 1) * c->steps_per_epoch;
  double v[4];
  e->has_val = c->val && train_validate(c, v);
  if (c->stop) { /* stopped during validation: the report comes first when resumed */
    train_save(c, e->epoch, e->sums, 1);
    return;
  }
  if (e->has_val) {
    e->val_loss = v[0];
    e->val_correct = v[1];
    e->val_top5 = v[2];
    e->val_count = v[3];
  }
  /* A finished epoch's checkpoint starts the next one; one cut short by --steps keeps its sums,
   * so that a resume with more steps reports the whole epoch. */
  const double zero[4] = {0, 0, 0, 0};
  train_save(c, e->done ? e->epoch + 1 : e->epoch, e->done ? zero : e->sums, 0);
  e->lr = sn_lr_at(&c->lrs, c->step ? c->step - 1 : 0);
  e->wait = c->wait_data;
  e->top5 = c->k > 5;
  e->warnings = &c->warnings;
  if (c->job.rank == 0) cli_report_epoch(&c->job, e, c->net, c->metrics);
}

void train_free(train_job *c) {
  if (c->metrics) fclose(c->metrics);
  c->metrics = NULL;
  cli_print_profile(c->net);
  cli_print_profile(c->evalnet);
  sn_net_destroy(c->net);
  sn_net_destroy(c->evalnet);
  sn_comm_destroy(c->bn_comm);
  sn_dataset_close(c->train);
  sn_dataset_close(c->val);
}

void train_reader_options(const train_job *c, sn_reader_options *ro) {
  sn_reader_options_init(ro);
  ro->preprocess = c->pre;
  ro->augment = c->recipe.augment;
  ro->crop_scale = c->recipe.crop_scale;
  ro->pad = c->h >= 64 ? c->h / 8 : 4;
  ro->threads = (int)c->decode_threads;
}
