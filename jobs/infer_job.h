/* infer_job.h - the state of a `shardnet infer` job and the steps of cmd_infer.c that set it up
 * and compute a batch (infer_job.c). */
#ifndef SN_INFER_JOB_H
#define SN_INFER_JOB_H

#include "cli.h"

typedef struct infer_job {
  cli_job job;
  sn_model_config cfg;
  /* options */
  const char *data, *out, *wpath, *pre_name, *labels_path, *confusion_path, *metrics_path;
  const char *scales; /* int8: the scales file */
  sn_precision precision;
  long batch, topk, threads, comp, nprint;
  int resume, want_logits, want_features, f16;
  sn_output_state state; /* of the output before the run */
  /* built by infer_build and infer_open_output */
  sn_dataset *ds;
  sn_net *net;
  sn_preprocess pre;
  char md5[33];
  int classes, fdim; /* output channels (the classes with a classifier); /features width */
  size_t lw, img;    /* output and input values per image */
  sn_writer *wr;
  sn_staging *st;
  sn_reader *rd;
  sn_metrics *mx; /* labelled dataset and --top-k > 0: accuracy and confusion matrix */
  /* one batch's results (K = topk) */
  float *out_b;   /* (batch, lw) */
  float *feat_b;  /* (batch, fdim) */
  float *probs_b; /* (batch, classes) */
  float *val_b;   /* (batch, K) */
  int32_t *idx_b; /* (batch, K) */
  cli_names names;
  FILE *metrics, *confusion; /* rank 0 */
  double t_compute;
  int64_t printed;
} infer_job;

/* Dataset and net: decode target, input check, weights. Exits on failure, as all of these do. */
void infer_build(infer_job *c);
/* Creates the output (or reopens it with --resume) and this rank's staging, batch buffers, plan,
 * reader and metrics. */
void infer_open_output(infer_job *c);
/* Reads, predicts and stages the next batch of this rank's rows (printing the first rows'
 * predictions on rank 0). Not collective. */
sn_status infer_batch(infer_job *c);
/* Frees everything but the job. */
void infer_free(infer_job *c);

#endif
