/* cmd_train.c - `shardnet train`: data-parallel training with synchronized batch norm.
 * Every rank reads only its slice of each global batch; gradients are all-reduced in buckets
 * during backward; rank 0 writes checkpoints, metrics and the final weights. */
#include <stdlib.h>
#include <string.h>

#include "train_job.h"

static const char *EXAMPLES =
    "  shardnet train --arch resnet20 --input 28x28x1 --data train.h5 --val test.h5 --epochs 3 \\\n"
    "      --batch 128 --lr 0.1 --schedule cosine --out resnet20.h5\n"
    "  mpirun -np 2 shardnet train --arch resnet20 --input 28x28x1 --data train.h5 --batch 128 \\\n"
    "      --checkpoint ckpt.h5 --checkpoint-minutes 30 --resume --threads 1\n"
    "\n"
    "stopping: SIGTERM, SIGINT or SIGUSR1 (to any rank, or SIGUSR1 to mpirun) make every rank\n"
    "finish its step and write --checkpoint; the job exits 75, and the same command with\n"
    "--resume continues (bit for bit on the same rank count). A second signal exits at once.\n"
    "Time limits, requeue and Slurm's --signal: docs/slurm.md.\n";

static cli_opt O[] = {
    CLI_MODEL_OPTS,
    {"data", 1, "training dataset (HDF5, /images and /labels)", NULL},
    {"val", 1, "validation dataset, evaluated after every epoch", NULL},
    {"val-every", 1, "also evaluate --val every N global steps (a metrics line each)", NULL},
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
    {"augment", 1,
     "crop-flip|resized-crop|flip|none (default: resized-crop from 96x96 up, else crop-flip)",
     NULL},
    {"crop-scale", 1, "resized-crop: the smallest area fraction of a crop (default 0.08)", NULL},
    {"shuffle", 1, "on|off (default on)", NULL},
    {"drop-last", 0, "drop the last partial global batch (default: pad by wrapping)", NULL},
    {"seed", 1, "global seed (default 1)", NULL},
    {"bn", 1, "sync|local batch-norm statistics across ranks (default sync)", NULL},
    {"bn-group", 1, "sync BN within groups of K consecutive ranks (default: all ranks)", NULL},
    {"allreduce", 1, "gradient all-reduce: auto|ring|mpi (default auto: ring)", NULL},
    {"bn-style", 1, "torch|keras moving-statistics rule (default: the architecture's)", NULL},
    {"zero-init-residual", 0, "zero the last BN gamma of each residual block", NULL},
    {"bucket-mb", 1, "gradient all-reduce bucket size in MiB (default 25)", NULL},
    {"threads", 1, "threads per rank (default: the cores available to the rank)", NULL},
    {"decode-threads", 1, "threads per rank decoding and augmenting the data (default 1)", NULL},
    {"checkpoint", 1, "checkpoint file, written atomically after every epoch and on a stop", NULL},
    {"checkpoint-every", 1, "also write the checkpoint every N global steps", NULL},
    {"checkpoint-minutes", 1, "also write the checkpoint every M minutes (rank 0's clock)", NULL},
    {"resume", 0, "continue from --checkpoint (the options must give its recipe)", NULL},
    {"allow-recipe-change", 0, "with --resume: accept options that differ from the checkpoint's",
     NULL},
    {"init", 1, "initial weights (fine-tuning; a new head if --classes differs)", NULL},
    {"out", 1, "final weights (HDF5, layout --out-format)", NULL},
    {"out-format", 1, "native|keras: shardnet's or Keras' legacy layout (default native)", NULL},
    {"metrics", 1, "append one JSON line per epoch to this file", NULL},
    {"quiet", 0, "no progress bar", NULL},
    {"help", 0, "show this help", NULL}};
enum { NO = sizeof O / sizeof O[0] };
#define OPT(name) cli_get(O, NO, name)

/* Options; -1 after --help. */
static int parse(train_job *c, int argc, char **argv) {
  if (cli_parse("train", argc, argv, 2, O, NO)) return EXIT_USAGE;
  if (cli_has(O, NO, "help")) {
    cli_print_help(stdout, "train", "--arch A --data TRAIN.h5 [options]", EXAMPLES, O, NO);
    return -1;
  }
  if (cli_has(O, NO, "quiet")) cli_verbose = 0;
  if (cli_model_config(O, NO, &c->cfg)) return EXIT_USAGE;
  if (!(c->data = OPT("data"))) {
    cli_error("train: --data is required");
    return EXIT_USAGE;
  }
  if (cli_int(O, NO, "epochs", 1, 100000, 1, &c->epochs) ||
      cli_int(O, NO, "steps", 1, 1L << 40, 0, &c->steps_limit) ||
      cli_int(O, NO, "batch", 1, 1 << 20, 128, &c->batch) ||
      cli_int(O, NO, "seed", 0, 1L << 62, 1, &c->seed) ||
      cli_int(O, NO, "threads", 1, 1024, 0, &c->threads) ||
      cli_int(O, NO, "decode-threads", 1, 256, 1, &c->decode_threads) ||
      cli_float(O, NO, "lr", 0, 1e3, 0.1, &c->lr) ||
      cli_float(O, NO, "momentum", 0, 1, 0.9, &c->mom) ||
      cli_float(O, NO, "weight-decay", 0, 1, 5e-4, &c->wd) ||
      cli_float(O, NO, "label-smoothing", 0, 0.999, 0, &c->ls) ||
      cli_float(O, NO, "warmup", 0, 1e5, 0, &c->warmup) ||
      cli_float(O, NO, "bucket-mb", 0.001, 4096, 25, &c->bucket) ||
      cli_int(O, NO, "checkpoint-every", 1, 1L << 40, 0, &c->ckpt_every) ||
      cli_int(O, NO, "val-every", 1, 1L << 40, 0, &c->val_every) ||
      cli_float(O, NO, "checkpoint-minutes", 0.001, 1e6, 0, &c->ckpt_minutes) ||
      cli_float(O, NO, "crop-scale", 0.001, 1, SN_CROP_SCALE_DEFAULT, &c->crop_scale))
    return EXIT_USAGE;
  c->sched = SN_SCHED_COSINE;
  if (OPT("schedule") && sn_schedule_parse(OPT("schedule"), &c->sched) != SN_OK) {
    cli_error("option --schedule: '%s' is not constant, step or cosine", OPT("schedule"));
    return EXIT_USAGE;
  }
  c->aug = SN_AUG_CROP_FLIP;
  if (OPT("augment") && sn_augment_parse(OPT("augment"), &c->aug) != SN_OK) {
    cli_error("option --augment: %s", sn_last_error());
    return EXIT_USAGE;
  }
  const char *shuf = OPT("shuffle"), *bnopt = OPT("bn"), *bst = OPT("bn-style"),
             *of = OPT("out-format");
  if ((shuf && strcmp(shuf, "on") && strcmp(shuf, "off")) ||
      (bnopt && strcmp(bnopt, "sync") && strcmp(bnopt, "local")) ||
      (bst && strcmp(bst, "torch") && strcmp(bst, "keras")) ||
      (of && strcmp(of, "native") && strcmp(of, "keras"))) {
    cli_error("train: --shuffle takes on|off, --bn sync|local, --bn-style torch|keras, "
              "--out-format native|keras");
    return EXIT_USAGE;
  }
  c->out_fmt = of && !strcmp(of, "keras") ? SN_WEIGHTS_KERAS : SN_WEIGHTS_NATIVE;
  if (bst) c->cfg.bn_momentum_style = !strcmp(bst, "keras") ? SN_STYLE_KERAS : SN_STYLE_TORCH;
  c->shuffle = !shuf || !strcmp(shuf, "on");
  c->sync_bn = !bnopt || !strcmp(bnopt, "sync");
  if (train_parse_scale(c, OPT("bn-group"), OPT("allreduce"))) return EXIT_USAGE;
  c->ckpt = OPT("checkpoint");
  c->resume = cli_has(O, NO, "resume");
  c->allow_change = cli_has(O, NO, "allow-recipe-change");
  c->vpath = OPT("val");
  if (((c->resume || c->ckpt_every || c->ckpt_minutes > 0) && !c->ckpt) ||
      (c->val_every && !c->vpath)) {
    cli_error("train: --resume, --checkpoint-every and --checkpoint-minutes need --checkpoint "
              "FILE; --val-every needs --val FILE");
    return EXIT_USAGE;
  }
  if (!c->cfg.include_top) {
    cli_error("train: --no-top models have no classifier to train");
    return EXIT_USAGE;
  }
  c->init = OPT("init");
  c->out = OPT("out");
  c->metrics_path = OPT("metrics");
  c->pre_name = OPT("preprocess");
  c->augment_given = OPT("augment") != NULL;
  c->drop_last = cli_has(O, NO, "drop-last");
  c->zero_init = cli_has(O, NO, "zero-init-residual");
  c->nesterov = cli_has(O, NO, "nesterov");
  c->decay_bn_bias = !cli_has(O, NO, "no-decay-bn-bias");
  return 0;
}

int cmd_train(int argc, char **argv) {
  train_job c = {0};
  int rc = parse(&c, argc, argv);
  if (rc) return rc < 0 ? 0 : rc;
  cli_catch_stop_signals(); /* from here a stop signal is recorded, not fatal */
  rc = cli_job_start(&c.job, &argc, &argv, c.threads);
  if (rc) return rc;
  train_build(&c);
  train_resume(&c);
  train_schedule(&c);
  train_start(&c);
  double t_start = cli_now();
  int pending = c.meta.report_pending; /* a resumed epoch whose report is still to come */
  for (int64_t epoch = c.meta.epoch; !c.stop && (c.step < c.total_steps || pending);
       ++epoch, pending = 0) {
    cli_epoch e = {.epoch = epoch};
    if (c.job.rank == 0 && epoch == c.meta.epoch)
      memcpy(e.sums, c.meta.epoch_sums, sizeof c.meta.epoch_sums);
    double t0 = train_epoch(&c, epoch, e.sums);
    if (!c.stop) train_end_epoch(&c, &e, t0);
  }
  if (c.stop) {
    cli_ignore_stop_signals();
    train_report_stop(&c);
    train_free(&c);
    return cli_job_end(&c.job, EXIT_TEMPFAIL);
  }
  sn_status s = SN_OK;
  if (c.out && c.job.rank == 0) s = sn_weights_save_as(c.net, c.out, c.out_fmt);
  cli_check(&c.job, s);
  if (c.job.rank == 0 && cli_verbose)
    printf("trained %lld steps in %.1f s on %d rank(s) x %d thread(s)%s%s\n", (long long)c.step,
           cli_now() - t_start, c.job.size, c.job.threads, c.out ? "; weights: " : "",
           c.out ? c.out : "");
  train_free(&c);
  return cli_job_end(&c.job, 0);
}
