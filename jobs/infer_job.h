/* infer_job.h - the state of a `shardnet infer` job and the steps of cmd_infer.c that set it up
 * and compute a batch (infer_job.c). */
#ifndef SN_INFER_JOB_H
#define SN_INFER_JOB_H

#include "cli.h"

typedef struct infer_job {
  cli_job job;
  sn_model_config cfg;
  /* options */
  const char **data; /* (ndata) --data paths */
  int ndata;
  const char *out, *wpath, *pre_name, *labels_path, *confusion_path, *metrics_path;
  const char *decoded_path;
  char *data_str; /* the --data paths joined by spaces (messages, the output's attribute) */
  long batch, topk, threads, comp, nprint, dthreads;
  const char *scales; /* int8: the scales file */
  sn_precision precision;
  int resume, want_logits, want_features, f16;
  sn_labels_from labels_from;
  sn_bad_images bad_images;
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
  float *out_b;              /* (batch, lw) */
  float *feat_b;             /* (batch, fdim) */
  float *probs_b;            /* (batch, classes) */
  float *val_b;              /* (batch, K) */
  int32_t *idx_b;            /* (batch, K) */
  sn_labels *labels;         /* --labels, checked against the class count */
  FILE *metrics, *confusion; /* rank 0 */
  double t_compute;
  int64_t computed; /* rows computed by this rank */
} infer_job;

/* Dataset and net: decode target, input check, weights. Exits on failure, as all of these do. */
void infer_build(infer_job *c);
/* Creates the output (or reopens it with --resume) and this rank's staging, batch buffers, plan,
 * reader and metrics. */
void infer_open_output(infer_job *c);
/* Reads, predicts and stages the next batch of this rank's rows. Not collective. */
sn_status infer_batch(infer_job *c);
/* infer_decode.c. The class count weights file wpath records (0 for none) into cfg->classes, or
 * SN_ERR_SHAPE naming both when an explicit --classes contradicts it. Not collective. */
sn_status infer_classes_from_weights(sn_model_config *cfg, const char *wpath);
/* Checks --labels, --print and --decoded before any work: predictions wanted, the decoded file's
 * format and path; reads the label file, whose class count must be the model's. Not
 * collective. */
sn_status infer_labels_open(infer_job *c);
/* After the output is complete: rank 0 prints the first --print rows and writes --decoded from
 * it. Collective (the failure check); exits on failure. */
void infer_decode(infer_job *c);
/* Frees everything but the job. */
void infer_free(infer_job *c);

#endif
