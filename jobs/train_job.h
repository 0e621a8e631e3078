/* train_job.h - the state of a `shardnet train` job and the steps of cmd_train.c: setting it up,
 * resuming and validating it (train_job.c), and running its epochs with mid-epoch checkpoints
 * and stop requests (train_loop.c). */
#ifndef SN_TRAIN_JOB_H
#define SN_TRAIN_JOB_H

#include "cli.h"

/* Step-boundary flag (besides the CLI_STOP_* bits): a periodic checkpoint is due. */
enum { TRAIN_SAVE = 1u };

typedef struct train_job {
  cli_job job;
  /* options */
  sn_model_config cfg;
  const char *data, *vpath, *ckpt, *init, *out, *metrics_path, *pre_name;
  long epochs, steps_limit, batch, seed, threads, ckpt_every, val_every, decode_threads;
  double lr, mom, wd, ls, warmup, bucket, ckpt_minutes;
  sn_schedule sched;
  sn_augment aug;
  double crop_scale;         /* --crop-scale */
  sn_weights_format out_fmt; /* --out-format */
  int augment_given, shuffle, sync_bn, resume, allow_change, drop_last, zero_init, nesterov,
      decay_bn_bias;
  long bn_group;               /* --bn-group: ranks per sync-BN group, 0: all */
  sn_allreduce_algo allreduce; /* --allreduce */
  int allreduce_given;
  /* built by train_build */
  sn_dataset *train, *val;
  sn_net *net, *evalnet; /* evalnet: inference copy for validation (NULL without --val) */
  sn_comm *bn_comm;      /* the rank's sync-BN group with --bn-group (NULL: all ranks) */
  sn_preprocess pre;
  int h, w, ch, k, local_max; /* input shape, classes, most rows per rank and step */
  sn_train_recipe recipe;     /* what the options resolve to; recorded in checkpoints */
  sn_warnings warnings;       /* the setup's sanity warnings */
  /* train_resume and train_schedule */
  sn_checkpoint_meta meta;
  int64_t steps_per_epoch, total_steps, step; /* step: global steps completed */
  sn_lr_schedule lrs;
  sn_train_config tc;
  FILE *metrics; /* rank 0 */
  double wait_data;
  /* train_loop.c */
  int64_t saved_step; /* step of the last checkpoint written or loaded (-1: none) */
  double saved_at;    /* when it was written (cli_now), or the run started */
  unsigned stop;      /* the agreed stop request (CLI_STOP_* bits); 0 while running */
} train_job;

/* --bn-group K (a number >= 1; with --bn local only 1) and --allreduce (NULL: absent). Returns 0
 * or EXIT_USAGE after the message. */
int train_parse_scale(train_job *c, const char *bn_group, const char *allreduce);
/* Datasets, checks of their shapes and labels, the net (initial weights broadcast from rank 0,
 * planned for training), the validation net, the recipe and the sanity warnings (printed by
 * rank 0). Exits on failure, as all of these do. */
void train_build(train_job *c);
/* --resume: the checkpoint's recipe compared with this run's (an error listing the differences
 * unless --allow-recipe-change, which prints them), then its parameters, momentum and loop state;
 * notes what a change of rank count changes. */
void train_resume(train_job *c);
/* Steps per epoch, the learning-rate schedule, the SGD configuration, the --metrics file and the
 * step to start from (a checkpoint of another global batch is mapped onto this one). */
void train_schedule(train_job *c);
/* Validation after an epoch: evalnet takes net's parameters, every rank evaluates its contiguous
 * block of the validation set; loss, top-1 and top-5 hits and rows summed over the ranks
 * (out[4]). Every batch ends at a collective check, so a stop request ends it within a batch:
 * then it returns 0 with c->stop set (out undefined). */
int train_validate(train_job *c, double out[4]);
/* The training reader's options: preprocessing, augmentation (the recipe's), its translation,
 * --decode-threads. */
void train_reader_options(const train_job *c, sn_reader_options *ro);
/* This rank's rows of a step: the image and label checks before the collective step. */
sn_status train_check_batch(const train_job *c, int n, int per_step, const float *x,
                            const int32_t *lb, const int64_t *rb);
/* The progress bar of an epoch after step st (rank 0). */
void train_progress(const train_job *c, int64_t epoch, int64_t st, int64_t first, double t0,
                    const double sums[5]);
/* After an epoch's steps (started at t0): sums over the ranks, validation, checkpoint, report. */
void train_end_epoch(train_job *c, cli_epoch *e, double t0);
/* Closes the metrics file, prints the profile (with the option) and frees the nets and datasets. */
void train_free(train_job *c);
/* SN_ERR_FORMAT naming the file and row of the first label outside [0, k). */
sn_status train_check_labels(const char *path, const char *what, const int32_t *labels,
                             const int64_t *rows, int n, int k);

/* train_loop.c */
/* Before the first step: agrees on a stop signal that came during set-up (cmd_train catches them
 * from its start). */
void train_start(train_job *c);
/* The steps of epoch `epoch` from the current one on. sums: this rank's loss x rows, top-1 and
 * top-5 hits, rows (rank 0 starts from a resumed epoch's totals), rows trained by this run. At
 * every step boundary the ranks agree on the step's status and on the flags: a checkpoint due
 * (--checkpoint-every, --checkpoint-minutes) is written, a stop request writes one and sets
 * c->stop. Returns the steps' start time. */
double train_epoch(train_job *c, int64_t epoch, double sums[5]);
/* The checkpoint at the current step (collective; rank 0 writes when --checkpoint is given):
 * epoch in progress, the epoch's sums over the ranks so far (sums[4]), report_pending. */
void train_save(train_job *c, int64_t epoch, const double sums[4], int report_pending);
/* After a stop request: rank 0's one line saying where the run stopped and how to resume. */
void train_report_stop(const train_job *c);

#endif
