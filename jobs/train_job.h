/* train_job.h - the state of a `shardnet train` job and the steps of cmd_train.c that set it up,
 * resume it and validate it (train_job.c). */
#ifndef SN_TRAIN_JOB_H
#define SN_TRAIN_JOB_H

#include "cli.h"

typedef struct train_job {
  cli_job job;
  /* options */
  sn_model_config cfg;
  const char *data, *vpath, *ckpt, *init, *out, *metrics_path, *pre_name;
  long epochs, steps_limit, batch, seed, threads;
  double lr, mom, wd, ls, warmup, bucket;
  sn_schedule sched;
  sn_augment aug;
  sn_weights_format out_fmt; /* --out-format */
  int augment_given, shuffle, sync_bn, resume, drop_last, zero_init, nesterov, decay_bn_bias;
  /* built by train_build */
  sn_dataset *train, *val;
  sn_net *net, *evalnet; /* evalnet: inference copy for validation (NULL without --val) */
  sn_preprocess pre;
  int h, w, ch, k, local_max; /* input shape, classes, most rows per rank and step */
  /* train_resume and train_schedule */
  sn_checkpoint_meta meta;
  int64_t steps_per_epoch, total_steps, step; /* step: global steps completed */
  sn_lr_schedule lrs;
  sn_train_config tc;
  FILE *metrics; /* rank 0 */
  double wait_data;
} train_job;

/* Datasets, checks of their shapes and labels, the net (initial weights broadcast from rank 0,
 * planned for training) and the validation net. Exits on failure, as all of these do. */
void train_build(train_job *c);
/* --resume: the checkpoint's parameters, momentum and loop state (and its seed). */
void train_resume(train_job *c);
/* Steps per epoch, the learning-rate schedule, the SGD configuration, the --metrics file and the
 * step to start from (a checkpoint of another global batch is mapped onto this one). */
void train_schedule(train_job *c);
/* Validation after an epoch: evalnet takes net's parameters, every rank evaluates its contiguous
 * block of the validation set; loss, correct and rows summed over the ranks. */
void train_validate(train_job *c, double *loss, double *correct, double *count);
/* This rank's rows of a step: the image and label checks before the collective step. */
sn_status train_check_batch(const train_job *c, int n, int per_step, const float *x,
                            const int32_t *lb, const int64_t *rb);
/* The progress bar of an epoch after step st (rank 0). */
void train_progress(const train_job *c, int64_t epoch, int64_t st, int64_t first, double t0,
                    const double sums[3]);
/* After an epoch's steps (started at t0): sums over the ranks, validation, checkpoint, report. */
void train_end_epoch(train_job *c, cli_epoch *e, double t0);
/* Closes the metrics file, prints the profile (with the option) and frees the nets and datasets. */
void train_free(train_job *c);
/* SN_ERR_FORMAT naming the file and row of the first label outside [0, k). */
sn_status train_check_labels(const char *path, const char *what, const int32_t *labels,
                             const int64_t *rows, int n, int k);

#endif
