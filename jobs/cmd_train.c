/* cmd_train.c - `shardnet train`: data-parallel training with synchronized batch norm.
 * Every rank reads only its slice of each global batch; gradients are all-reduced in buckets
 * during backward; rank 0 writes checkpoints, metrics and the final weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *EXAMPLES =
    "  shardnet train --arch resnet20 --input 28x28x1 --data train.h5 --val test.h5 --epochs 3 \\\n"
    "      --batch 128 --lr 0.1 --schedule cosine --out resnet20.h5\n"
    "  mpirun -np 2 shardnet train --arch resnet20 --input 28x28x1 --data train.h5 --batch 128 \\\n"
    "      --checkpoint ckpt.h5 --resume --threads 1\n";

typedef struct evalres {
  double loss, correct, count;
} evalres;

/* Each rank evaluates its contiguous block of the validation set; sums are all-reduced. */
static sn_status evaluate(cli_job *job, sn_net *evalnet, sn_net *net, sn_dataset *val, const char *vpath, int batch,
                          sn_preprocess pre, void *raw, float *x, int32_t *labels, float *logits,
                          evalres *r) {
  size_t nb;
  float *src = sn_net_param_block(net, &nb), *dst = sn_net_param_block(evalnet, NULL);
  memcpy(dst, src, nb * sizeof(float));
  sn_status s = sn_net_refresh(evalnet);
  int64_t b, e;
  sn_shard_block(sn_dataset_get_info(val)->n, job->rank, job->size, &b, &e);
  int h, w, k;
  sn_net_output_shape(evalnet, &h, &w, &k);
  double acc[3] = {0, 0, 0};
  int64_t *rows = malloc((size_t)batch * sizeof *rows);
  float *probs = malloc((size_t)batch * k * sizeof *probs);
  if (!rows || !probs) s = sn_error_set(SN_ERR_NOMEM, "evaluation: out of memory");
  for (int64_t i = b; s == SN_OK && i < e; i += batch) {
    int n = (int)(e - i < batch ? e - i : batch);
    for (int j = 0; j < n; ++j) rows[j] = i + j;
    s = cli_load_batch(val, rows, n, pre, raw, x, labels);
    if (s == SN_OK) s = sn_net_forward(evalnet, x, n, logits);
    if (s != SN_OK) break;
    sn_softmax(logits, n, k, probs);
    for (int j = 0; j < n; ++j) {
      const float *p = probs + (size_t)j * k;
      int best = 0;
      for (int c = 1; c < k; ++c)
        if (p[c] > p[best]) best = c;
      int y = labels[j];
      if (y < 0 || y >= k) {
        s = sn_error_set(SN_ERR_FORMAT, "file %s: validation row %lld: label %d outside [0, %d)",
                         vpath, (long long)rows[j], y, k);
        break;
      }
      acc[0] += -log(fmax((double)p[y], 1e-30));
      acc[1] += best == y;
      acc[2] += 1;
    }
  }
  free(rows);
  free(probs);
  cli_check(job, s);
  s = sn_comm_allreduce(job->comm, acc, 3, SN_F64, SN_SUM);
  r->loss = acc[2] ? acc[0] / acc[2] : 0;
  r->correct = acc[1];
  r->count = acc[2];
  return s;
}

int cmd_train(int argc, char **argv) {
  cli_opt o[] = {CLI_MODEL_OPTS,
                 {"data", 1, "training dataset (HDF5, /images and /labels)", NULL},
                 {"val", 1, "validation dataset, evaluated after every epoch", NULL},
                 {"epochs", 1, "epochs to train (default 1)", NULL},
                 {"steps", 1, "stop after this many global steps (overrides --epochs)", NULL},
                 {"batch", 1, "global batch size, the same whatever the rank count (default 128)", NULL},
                 {"lr", 1, "base learning rate (default 0.1)", NULL},
                 {"momentum", 1, "SGD momentum (default 0.9)", NULL},
                 {"nesterov", 0, "Nesterov momentum", NULL},
                 {"weight-decay", 1, "weight decay (default 5e-4)", NULL},
                 {"no-decay-bn-bias", 0, "no weight decay on BN parameters and biases", NULL},
                 {"schedule", 1, "constant|step|cosine (default cosine)", NULL},
                 {"warmup", 1, "linear warm-up epochs (default 0)", NULL},
                 {"label-smoothing", 1, "label smoothing (default 0)", NULL},
                 {"preprocess", 1, "caffe|tf|torch|unit|none (default: the architecture's)", NULL},
                 {"augment", 1, "crop-flip|resized-crop|flip|none (default: resized-crop from 96x96 up, else crop-flip)", NULL},
                 {"shuffle", 1, "on|off (default on)", NULL},
                 {"drop-last", 0, "drop the last partial global batch (default: pad by wrapping)", NULL},
                 {"seed", 1, "global seed (default 1)", NULL},
                 {"bn", 1, "sync|local batch-norm statistics across ranks (default sync)", NULL},
                 {"bn-style", 1, "torch|keras moving-statistics rule (default: the architecture's)", NULL},
                 {"zero-init-residual", 0, "zero the last BN gamma of each residual block", NULL},
                 {"bucket-mb", 1, "gradient all-reduce bucket size in MiB (default 25)", NULL},
                 {"threads", 1, "threads per rank (default: the cores available to the rank)", NULL},
                 {"checkpoint", 1, "checkpoint file, written atomically after every epoch", NULL},
                 {"resume", 0, "continue from --checkpoint", NULL},
                 {"init", 1, "initial weights (fine-tuning; a new head if --classes differs)", NULL},
                 {"out", 1, "final weights (shardnet HDF5)", NULL},
                 {"metrics", 1, "append one JSON line per epoch to this file", NULL},
                 {"quiet", 0, "no progress bar", NULL},
                 {"help", 0, "show this help", NULL}};
  int no = (int)(sizeof o / sizeof o[0]);
  if (cli_parse("train", argc, argv, 2, o, no)) return EXIT_USAGE;
  if (cli_has(o, no, "help")) {
    cli_print_help(stdout, "train", "--arch A --data TRAIN.h5 [options]", EXAMPLES, o, no);
    return 0;
  }
  if (cli_has(o, no, "quiet")) cli_verbose = 0;
  sn_model_config cfg;
  if (cli_model_config(o, no, &cfg)) return EXIT_USAGE;
  const char *data = cli_get(o, no, "data");
  if (!data) {
    cli_error("train: --data is required");
    return EXIT_USAGE;
  }
  long epochs, steps_limit, batch, seed, threads, warm_unused = 0;
  double lr, mom, wd, ls, warmup, bucket;
  (void)warm_unused;
  if (cli_int(o, no, "epochs", 1, 100000, 1, &epochs) || cli_int(o, no, "steps", 1, 1L << 40, 0, &steps_limit) ||
      cli_int(o, no, "batch", 1, 1 << 20, 128, &batch) || cli_int(o, no, "seed", 0, 1L << 62, 1, &seed) ||
      cli_int(o, no, "threads", 1, 1024, 0, &threads) || cli_float(o, no, "lr", 0, 1e3, 0.1, &lr) ||
      cli_float(o, no, "momentum", 0, 1, 0.9, &mom) || cli_float(o, no, "weight-decay", 0, 1, 5e-4, &wd) ||
      cli_float(o, no, "label-smoothing", 0, 0.999, 0, &ls) ||
      cli_float(o, no, "warmup", 0, 1e5, 0, &warmup) || cli_float(o, no, "bucket-mb", 0.001, 4096, 25, &bucket))
    return EXIT_USAGE;
  sn_schedule sched = SN_SCHED_COSINE;
  const char *sv = cli_get(o, no, "schedule");
  if (sv && !strcmp(sv, "constant")) sched = SN_SCHED_CONSTANT;
  else if (sv && !strcmp(sv, "step")) sched = SN_SCHED_STEP;
  else if (sv && strcmp(sv, "cosine")) {
    cli_error("option --schedule: '%s' is not constant, step or cosine", sv);
    return EXIT_USAGE;
  }
  sn_augment aug = SN_AUG_CROP_FLIP;
  if (cli_get(o, no, "augment") && sn_augment_parse(cli_get(o, no, "augment"), &aug) != SN_OK) {
    cli_error("option --augment: %s", sn_last_error());
    return EXIT_USAGE;
  }
  const char *shuf = cli_get(o, no, "shuffle"), *bnopt = cli_get(o, no, "bn"), *bst = cli_get(o, no, "bn-style");
  if ((shuf && strcmp(shuf, "on") && strcmp(shuf, "off")) || (bnopt && strcmp(bnopt, "sync") && strcmp(bnopt, "local")) ||
      (bst && strcmp(bst, "torch") && strcmp(bst, "keras"))) {
    cli_error("train: --shuffle takes on|off, --bn sync|local, --bn-style torch|keras");
    return EXIT_USAGE;
  }
  if (bst) cfg.bn_momentum_style = !strcmp(bst, "keras") ? SN_STYLE_KERAS : SN_STYLE_TORCH;
  int shuffle = !shuf || !strcmp(shuf, "on"), sync_bn = !bnopt || !strcmp(bnopt, "sync");
  const char *ckpt = cli_get(o, no, "checkpoint");
  int resume = cli_has(o, no, "resume");
  if (resume && !ckpt) {
    cli_error("train: --resume needs --checkpoint FILE");
    return EXIT_USAGE;
  }
  if (!cfg.include_top) {
    cli_error("train: --no-top models have no classifier to train");
    return EXIT_USAGE;
  }

  cli_job job;
  int rc = cli_job_start(&job, &argc, &argv, threads);
  if (rc) return rc;
  sn_dataset *train = NULL, *val = NULL;
  sn_net *net = NULL, *evalnet = NULL;
  sn_status s = sn_dataset_open(data, job.comm, &train);
  if (s == SN_OK && cli_get(o, no, "val")) s = sn_dataset_open(cli_get(o, no, "val"), job.comm, &val);
  cli_check(&job, s);
  const sn_dataset_info *ti = sn_dataset_get_info(train);
  if (!ti->has_labels) s = sn_error_set(SN_ERR_FORMAT, "file %s: no /labels to train on", data);
  if (s == SN_OK && ti->n == 0) s = sn_error_set(SN_ERR_FORMAT, "file %s: the dataset has no rows", data);
  if (s == SN_OK && cfg.classes <= 0 && ti->num_classes > 0) cfg.classes = ti->num_classes;
  if (s == SN_OK && cfg.height <= 0) {
    cfg.height = ti->h;
    cfg.width = ti->w;
    cfg.channels = ti->c;
  }
  if (s == SN_OK) s = sn_net_create(&cfg, (uint64_t)seed, &net);
  if (s == SN_OK) s = cli_apply_engine_env(net);
  cli_check(&job, s);
  int h, w, c, k, oh, ow;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &k);
  if (ti->h != h || ti->w != w || ti->c != c)
    s = sn_error_set(SN_ERR_SHAPE, "file %s: images are %dx%dx%d but %s takes %dx%dx%d (--input)",
                     data, ti->h, ti->w, ti->c, cfg.arch, h, w, c);
  if (s == SN_OK && ti->num_classes > k)
    s = sn_error_set(SN_ERR_SHAPE, "file %s: %d classes but the model has %d outputs (--classes)",
                     data, ti->num_classes, k);
  if (s == SN_OK && val) {
    const sn_dataset_info *vi = sn_dataset_get_info(val);
    if (vi->h != h || vi->w != w || vi->c != c || !vi->has_labels)
      s = sn_error_set(SN_ERR_SHAPE, "file %s: validation images %dx%dx%d%s do not match the model's %dx%dx%d",
                       cli_get(o, no, "val"), vi->h, vi->w, vi->c, vi->has_labels ? "" : " (or no /labels)", h, w, c);
  }
  cli_check(&job, s);
  sn_preprocess pre = sn_net_default_preprocess(net);
  if (cli_get(o, no, "preprocess")) s = sn_preprocess_parse(cli_get(o, no, "preprocess"), &pre);
  if (s == SN_OK && cli_get(o, no, "init")) s = sn_weights_load_bcast_ex(net, cli_get(o, no, "init"), job.comm, SN_LOAD_NEW_HEAD, NULL);
  if (s == SN_OK && cli_has(o, no, "zero-init-residual") && !cli_get(o, no, "init")) sn_net_zero_init_residual(net);
  /* Every rank starts from rank 0's parameters, so ranks cannot drift. */
  size_t nblock;
  float *block = sn_net_param_block(net, &nblock);
  if (s == SN_OK) s = sn_comm_bcast(job.comm, block, nblock * sizeof(float), 0);
  int local_max = sn_shard_local_max(batch, job.size);
  if (s == SN_OK && batch < job.size)
    s = sn_error_set(SN_ERR_INVALID, "global batch %ld is smaller than the %d ranks", batch, job.size);
  if (s == SN_OK) s = sn_net_plan(net, local_max, 1);
  sn_net_set_comm(net, job.comm, sync_bn);
  sn_net_set_bucket_mb(net, bucket);
  if (s == SN_OK && val) s = sn_net_create(&cfg, (uint64_t)seed, &evalnet);
  if (s == SN_OK && val) s = cli_apply_engine_env(evalnet);
  if (s == SN_OK && val) s = sn_net_plan(evalnet, local_max, 0);
  cli_check(&job, s);

  sn_checkpoint_meta meta = {0, 0, (uint64_t)seed, job.size, batch};
  if (resume) {
    FILE *f = fopen(ckpt, "rb");
    if (f) {
      fclose(f);
      s = sn_checkpoint_load(net, ckpt, &meta);
      if (s == SN_OK && meta.global_batch != batch && job.rank == 0 && cli_verbose)
        fprintf(stderr, "shardnet: note: checkpoint used global batch %lld, continuing with %ld\n",
                (long long)meta.global_batch, batch);
      if (s == SN_OK && meta.ranks != job.size && job.rank == 0 && cli_verbose)
        fprintf(stderr, "shardnet: note: checkpoint written by %d ranks, resuming on %d with the same "
                "global batch %ld\n", meta.ranks, job.size, batch);
      if (s == SN_OK && job.rank == 0 && cli_verbose)
        fprintf(stderr, "shardnet: resuming from %s after epoch %lld (step %lld)\n", ckpt,
                (long long)meta.epoch, (long long)meta.step);
    } else if (job.rank == 0 && cli_verbose) {
      fprintf(stderr, "shardnet: no checkpoint at %s yet; starting fresh\n", ckpt);
    }
    cli_check(&job, s);
    seed = (long)meta.seed;
  }

  int drop_last = cli_has(o, no, "drop-last");
  int64_t steps_per_epoch = sn_shard_epoch_steps(ti->n, batch, drop_last);
  if (steps_per_epoch <= 0) s = sn_error_set(SN_ERR_INVALID, "file %s: %lld rows make no global batch of %ld",
                                              data, (long long)ti->n, batch);
  cli_check(&job, s);
  int64_t total_steps = steps_limit > 0 ? steps_limit : steps_per_epoch * epochs;
  sn_lr_schedule ls_sched = {sched, (float)lr, total_steps, (int64_t)(warmup * steps_per_epoch),
                             steps_per_epoch * 30, 0.1f};
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.momentum = (float)mom;
  tc.nesterov = cli_has(o, no, "nesterov");
  tc.weight_decay = (float)wd;
  tc.decay_bn_and_bias = !cli_has(o, no, "no-decay-bn-bias");
  tc.label_smoothing = (float)ls;

  size_t img = (size_t)h * w * c;
  int64_t *epoch_rows = malloc((size_t)(steps_per_epoch * local_max) * sizeof(int64_t));
  void *raw = malloc((size_t)local_max * img * sizeof(float));
  float *x = malloc((size_t)local_max * img * sizeof(float));
  float *logits = malloc((size_t)local_max * k * sizeof(float));
  int32_t *labels = malloc((size_t)local_max * sizeof(int32_t));
  int64_t *perm = malloc((size_t)ti->n * sizeof(int64_t));
  int64_t *rows = malloc((size_t)local_max * sizeof(int64_t));
  if (!raw || !x || !logits || !labels || !perm || !rows || !epoch_rows)
    s = sn_error_set(SN_ERR_NOMEM, "train: out of memory for batch buffers");
  cli_check(&job, s);
  FILE *metrics = NULL;
  if (job.rank == 0 && cli_get(o, no, "metrics")) {
    metrics = fopen(cli_get(o, no, "metrics"), "a");
    if (!metrics) s = sn_error_set(SN_ERR_IO, "cannot open metrics file %s", cli_get(o, no, "metrics"));
  }
  cli_check(&job, s);

  int64_t step = meta.step;
  if (resume && meta.global_batch > 0 && meta.global_batch != batch) {
    /* The checkpoint counts steps of its own global batch: carry over whole epochs, and the
     * samples of a partly done epoch rounded down to steps of the new batch (none are skipped;
     * a few may be seen twice). */
    int64_t old_spe = sn_shard_epoch_steps(ti->n, meta.global_batch, drop_last);
    int64_t within = old_spe > 0 ? meta.step - meta.epoch * old_spe : 0;
    if (within < 0) within = 0;
    int64_t new_within = within * meta.global_batch / batch;
    if (new_within >= steps_per_epoch) new_within = steps_per_epoch - 1;
    step = meta.epoch * steps_per_epoch + new_within;
    if (job.rank == 0 && cli_verbose)
      fprintf(stderr, "shardnet: step %lld of global batch %lld is step %lld of global batch %ld\n",
              (long long)meta.step, (long long)meta.global_batch, (long long)step, batch);
  }
  double t_start = cli_now(), wait_data = 0;
  for (int64_t epoch = meta.epoch; step < total_steps; ++epoch) {
    if (shuffle) sn_shard_permutation(ti->n, (uint64_t)seed, epoch, perm);
    else for (int64_t i = 0; i < ti->n; ++i) perm[i] = i;
    /* This rank's rows of every global batch of the epoch (a constant count per rank), read and
     * augmented ahead by the reader's thread. */
    int64_t first = step - epoch * steps_per_epoch, nlocal = 0;
    if (first < 0) first = 0;
    int per_step = 0;
    for (int64_t st = first; st < steps_per_epoch; ++st) {
      per_step = sn_shard_step_rows(perm, ti->n, batch, drop_last, job.rank, job.size, st,
                                    epoch_rows + nlocal);
      nlocal += per_step;
    }
    sn_reader_options ro;
    sn_reader_options_init(&ro);
    ro.batch = per_step;
    ro.preprocess = pre;
    ro.augment = cli_get(o, no, "augment") ? aug : h >= 96 ? SN_AUG_RESIZED_CROP : SN_AUG_CROP_FLIP;
    ro.pad = h >= 64 ? h / 8 : 4;
    ro.seed = (uint64_t)seed;
    ro.epoch = epoch;
    sn_reader *rd = NULL;
    s = sn_reader_create(train, epoch_rows, nlocal, &ro, &rd);
    cli_watch_reader(rd);
    cli_check(&job, s);
    double t0 = cli_now(), sums[3] = {0, 0, 0};
    for (int64_t st = first; st < steps_per_epoch && step < total_steps; ++st) {
      float *xb;
      int32_t *lb;
      int64_t *rb;
      int n = 0;
      s = sn_reader_next(rd, &xb, &lb, &rb, &n);
      if (s == SN_OK && n != per_step)
        s = sn_error_set(SN_ERR_INVALID, "train: reader gave %d rows, expected %d", n, per_step);
      if (s == SN_OK && ti->dtype == SN_F32 && !sn_values_finite(xb, (size_t)n * img))
        s = sn_error_set(SN_ERR_NUMERIC, "file %s: /images rows of step %lld contain NaN or infinity", data,
                         (long long)step + 1);
      for (int i = 0; s == SN_OK && i < n; ++i)
        if (lb[i] < 0 || lb[i] >= k)
          s = sn_error_set(SN_ERR_FORMAT, "file %s: row %lld: label %d outside [0, %d)", data,
                           (long long)rb[i], lb[i], k);
      cli_check(&job, s);
      float loss = 0;
      int correct = 0;
      s = sn_net_train_step(net, xb, lb, n, (int)batch, &tc, &loss, &correct);
      if (s == SN_ERR_NUMERIC)
        s = sn_error_set(s, "epoch %lld step %lld: %s; the last checkpoint is kept", (long long)epoch + 1,
                         (long long)step + 1, sn_last_error());
      cli_check(&job, s);
      s = sn_net_sgd_update(net, &tc, sn_lr_at(&ls_sched, step));
      cli_check(&job, s);
      sums[0] += (double)loss * n;
      sums[1] += correct;
      sums[2] += n;
      ++step;
      if (job.rank == 0 && cli_verbose) {
        double el = cli_now() - t0, done = (double)(st + 1 - first);
        int64_t rest = steps_per_epoch - st - 1 < total_steps - step ? steps_per_epoch - st - 1 : total_steps - step;
        char extra[160];
        snprintf(extra, sizeof extra, "loss %.4f acc %.1f%% %.0f img/s ETA %.0fs ", sums[0] / sums[2],
                 100.0 * sums[1] / sums[2], done * batch / el, el / done * (double)rest);
        char what[48];
        snprintf(what, sizeof what, "epoch %lld", (long long)epoch + 1);
        cli_progress(what, (double)(st + 1), (double)steps_per_epoch, extra);
      }
    }
    wait_data += sn_reader_wait_seconds(rd);
    cli_watch_reader(NULL);
    sn_reader_destroy(rd);
    s = sn_comm_allreduce(job.comm, sums, 3, SN_F64, SN_SUM);
    cli_check(&job, s);
    double secs = cli_now() - t0;
    evalres ev = {0, 0, 0};
    if (val) {
      s = evaluate(&job, evalnet, net, val, cli_get(o, no, "val"), local_max, pre, raw, x, labels, logits, &ev);
      cli_check(&job, s);
    }
    /* An epoch cut short by --steps is not complete: a resume continues inside it. */
    int epoch_done = step >= (epoch + 1) * steps_per_epoch;
    meta.epoch = epoch_done ? epoch + 1 : epoch;
    meta.step = step;
    meta.ranks = job.size;
    meta.seed = (uint64_t)seed;
    meta.global_batch = batch;
    if (ckpt && job.rank == 0) s = sn_checkpoint_save(net, ckpt, &meta);
    cli_check(&job, s);
    if (job.rank == 0) {
      char line[512];
      double comm_s = 0; /* rank 0's time blocked on gradient all-reduces after backward */
      int64_t comm_bytes = 0;
      sn_net_comm_stats(net, &comm_s, &comm_bytes);
      snprintf(line, sizeof line,
               "{\"epoch\": %lld, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, "
               "\"val_loss\": %.6f, \"val_acc\": %.6f, \"lr\": %.6g, \"seconds\": %.3f, "
               "\"images_per_s\": %.1f, \"data_wait_s\": %.3f, \"ranks\": %d, \"threads\": %d, "
               "\"comm_exposed_s\": %.4f, \"comm_bytes\": %lld}",
               (long long)epoch + 1, (long long)step, sums[0] / sums[2], sums[1] / sums[2],
               ev.loss, ev.count ? ev.correct / ev.count : 0.0, sn_lr_at(&ls_sched, step ? step - 1 : 0),
               secs, sums[2] / secs, wait_data, job.size, job.threads, comm_s, (long long)comm_bytes);
      if (metrics) {
        fprintf(metrics, "%s\n", line);
        fflush(metrics);
      }
      if (cli_verbose)
      {
        char vbuf[64] = "";
        if (val) snprintf(vbuf, sizeof vbuf, " | val loss %.4f acc %.2f%%", ev.loss, 100.0 * ev.correct / ev.count);
        printf("epoch %lld%s: loss %.4f acc %.2f%%%s %.1f s %.0f img/s\n", (long long)epoch + 1,
               epoch_done ? "" : " (partial)", sums[0] / sums[2], 100.0 * sums[1] / sums[2], vbuf, secs,
               sums[2] / secs);
      }
      fflush(stdout);
    }
  }
  if (cli_get(o, no, "out") && job.rank == 0) s = sn_weights_save(net, cli_get(o, no, "out"));
  cli_check(&job, s);
  if (job.rank == 0 && cli_verbose)
    printf("trained %lld steps in %.1f s on %d rank(s) x %d thread(s)%s%s\n", (long long)step,
           cli_now() - t_start, job.size, job.threads, cli_get(o, no, "out") ? "; weights: " : "",
           cli_get(o, no, "out") ? cli_get(o, no, "out") : "");
  if (metrics) fclose(metrics);
  free(epoch_rows); free(raw); free(x); free(logits); free(labels); free(perm); free(rows);
  cli_print_profile(net);
  cli_print_profile(evalnet);
  sn_net_destroy(net);
  sn_net_destroy(evalnet);
  sn_dataset_close(train);
  sn_dataset_close(val);
  return cli_job_end(&job, 0);
}
