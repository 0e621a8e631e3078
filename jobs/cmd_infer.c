/* cmd_infer.c - `shardnet infer`: predictions, logits and features for a dataset: HDF5 files, a
 * folder of images or a list. Under mpirun the ranks take chunk-sized units of the inputs in turn
 * (sn_staging), read them through the prefetching reader and write the one output file
 * collectively. --resume completes only the inputs an interrupted run did not write. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "infer_job.h"

static const char *EXAMPLES =
    "  shardnet infer --arch resnet50 --weights resnet50.h5 --data images.h5 --out preds.h5\n"
    "  mpirun -np 4 shardnet infer --arch keras_resnet50 --weights "
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5 \\\n"
    "      --data val.h5 --out val_preds.h5 --labels imagenet_class_index.json --decoded "
    "val_top5.csv\n"
    "  mpirun -np 4 shardnet infer --arch resnet50 --no-top --pooling avg --weights w.h5 --data "
    "shards/*.h5 \\\n"
    "      --out features.h5 --features --features-dtype f16\n"
    "  shardnet infer --arch resnet50 --weights w.h5 --data photos/ --out preds.h5 --top-k 3 "
    "--bad-images skip\n"
    "  shardnet infer --arch resnet50 --weights w.h5 --data d.h5 --out p.h5 --precision int8 "
    "--scales s.h5\n";

static cli_opt O[] = {
    CLI_MODEL_OPTS,
    {"weights", 1, "weights: shardnet, torchvision (HDF5) or Keras .h5 (default: random init)",
     NULL},
    {"data", 2, "input: HDF5 files (several, a glob or a text file of paths), a folder or a list",
     NULL},
    {"labels-from", 1, "a folder's labels: auto|folders|none (default auto)", NULL},
    {"bad-images", 1, "fail|skip: stop at a bad image, or leave it out (default fail)", NULL},
    {"decode-threads", 1, "decoding threads per rank (default: --threads)", NULL},
    {"out", 1, "output HDF5 file", NULL},
    {"batch", 1, "images per forward pass (default 32)", NULL},
    {"preprocess", 1, "caffe|tf|torch|unit|none (default: the architecture's)", NULL},
    {"top-k", 1, "predictions per image (default 5; 0: none)", NULL},
    {"logits", 0, "also write /logits", NULL},
    {"features", 0, "also write /features (the pooled vector before the classifier)", NULL},
    {"features-dtype", 1, "f32|f16 (default f32)", NULL},
    {"labels", 1, "class names: one per line, or Keras' imagenet_class_index.json (count checked)",
     NULL},
    {"print", 1, "print the decoded predictions of the first N rows (default 5 with --labels)",
     NULL},
    {"decoded", 1, "write every row's decoded predictions (.csv or .jsonl)", NULL},
    {"confusion", 1, "with /labels: write the confusion matrix (TSV, rows = true class)", NULL},
    {"compression", 1, "gzip level 0-9 for the output (default 0)", NULL},
    {"precision", 1, "fp32|bf16|int8 arithmetic of the convolutions (default fp32)", NULL},
    {"scales", 1, "int8: activation scales file from `shardnet calibrate`", NULL},
    {"resume", 0, "complete an interrupted output (only missing rows are computed)", NULL},
    {"force", 0, "replace an existing output", NULL},
    {"threads", 1, "threads per rank (default: the cores available to the rank)", NULL},
    {"metrics", 1, "append one JSON line with throughput figures", NULL},
    {"quiet", 0, "no progress bar or report", NULL},
    {"help", 0, "show this help", NULL}};
enum { NO = sizeof O / sizeof O[0] };
#define OPT(name) cli_get(O, NO, name)

/* Options and the rules for an existing output; -1 after --help. */
static int parse(infer_job *c, int argc, char **argv) {
  if (cli_parse("infer", argc, argv, 2, O, NO)) return EXIT_USAGE;
  if (cli_has(O, NO, "help")) {
    cli_print_help(stdout, "infer", "--arch A --data IN --out OUT.h5 [--weights W.h5] [options]",
                   EXAMPLES, O, NO);
    return -1;
  }
  if (cli_has(O, NO, "quiet")) cli_verbose = 0;
  if (cli_model_config(O, NO, &c->cfg)) return EXIT_USAGE;
  c->data = cli_get_all(O, NO, "data", &c->ndata);
  c->out = OPT("out");
  c->wpath = OPT("weights");
  if (!c->ndata || !c->out) {
    cli_error("infer: --data and --out are required");
    return EXIT_USAGE;
  }
  if (cli_input_options(O, NO, &c->labels_from, &c->bad_images) ||
      cli_int(O, NO, "decode-threads", 1, 256, 0, &c->dthreads) ||
      cli_int(O, NO, "batch", 1, 1 << 16, 32, &c->batch) ||
      cli_int(O, NO, "top-k", 0, 1000, 5, &c->topk) ||
      cli_int(O, NO, "threads", 1, 1024, 0, &c->threads) ||
      cli_int(O, NO, "compression", 0, 9, 0, &c->comp) ||
      cli_int(O, NO, "print", 0, INT_MAX, OPT("labels") ? 5 : 0, &c->nprint))
    return EXIT_USAGE;
  const char *fd = OPT("features-dtype");
  if (fd && strcmp(fd, "f32") && strcmp(fd, "f16")) {
    cli_error("option --features-dtype: '%s' is not f32 or f16", fd);
    return EXIT_USAGE;
  }
  c->f16 = fd && !strcmp(fd, "f16");
  c->scales = OPT("scales");
  const char *prec = OPT("precision");
  if (prec && sn_precision_parse(prec, &c->precision) != SN_OK) {
    cli_error("option --precision: '%s' is not fp32, bf16 or int8", prec);
    return EXIT_USAGE;
  }
  if ((c->precision == SN_PRECISION_INT8) != (c->scales != NULL)) {
    cli_error("infer: --scales goes with --precision int8, and int8 needs it (shardnet calibrate)");
    return EXIT_USAGE;
  }
  c->pre_name = OPT("preprocess");
  c->labels_path = OPT("labels");
  c->decoded_path = OPT("decoded");
  c->confusion_path = OPT("confusion");
  c->metrics_path = OPT("metrics");
  c->resume = cli_has(O, NO, "resume");
  c->want_logits = cli_has(O, NO, "logits");
  c->want_features = cli_has(O, NO, "features");
  size_t len = 1;
  for (int i = 0; i < c->ndata; ++i)
    len += strlen(c->data[i]) + 1;
  if (!(c->data_str = calloc(len, 1))) return EXIT_FAIL;
  for (int i = 0; i < c->ndata; ++i) {
    if (i) strcat(c->data_str, " ");
    strcat(c->data_str, c->data[i]);
    int rc = cli_check_output("infer", c->data[i], c->out, c->resume, cli_has(O, NO, "force"),
                              &c->state);
    if (rc) return rc;
  }
  return 0;
}

/* Every rank writes one unit per collective write, computing batches until its unit is staged. */
static void run(infer_job *c) {
  double t0 = cli_now();
  int64_t nrows;
  sn_staging_rows(c->st, &nrows);
  while (sn_staging_writes(c->st) > 0) {
    sn_status s = SN_OK;
    while (s == SN_OK && !sn_staging_ready(c->st))
      s = infer_batch(c);
    cli_check(&c->job, s);
    cli_check(&c->job, sn_staging_write(c->st));
    int64_t done = sn_staging_written(c->st);
    double el = cli_now() - t0;
    char extra[96];
    snprintf(extra, sizeof extra, "%.0f img/s/rank ETA %.0fs ", done / (el > 0 ? el : 1),
             done ? el / done * (nrows - done) : 0.0);
    cli_progress("infer", (double)done, (double)(nrows ? nrows : 1), extra);
  }
  double secs = cli_now() - t0,
         tot[4] = {(double)c->computed, sn_reader_wait_seconds(c->rd), c->t_compute, secs};
  cli_watch_reader(NULL);
  sn_reader_destroy(c->rd); /* the writer reads the dataset's names when it finishes */
  c->rd = NULL;
  cli_check(&c->job, sn_writer_finish(c->wr));
  int64_t skipped = 0;
  sn_writer_counts(c->wr, NULL, &skipped);
  cli_check(&c->job, sn_comm_allreduce(c->job.comm, tot, 4, SN_F64, SN_SUM));
  infer_decode(c);
  if (c->mx) cli_check(&c->job, sn_metrics_allreduce(c->mx, c->job.comm));
  if (c->job.rank == 0 && c->mx)
    cli_report_accuracy(c->mx, c->ds, c->classes, (int)c->topk, c->confusion);
  /* Rank 0 alone writes the matrix; every rank takes part in the check (an agreement). */
  sn_status s = SN_OK;
  if (c->confusion && fclose(c->confusion) != 0)
    s = sn_error_set(SN_ERR_IO, "cannot write confusion matrix %s", c->confusion_path);
  c->confusion = NULL;
  cli_check(&c->job, s);
  if (c->job.rank == 0)
    cli_report_infer(&c->job, tot, secs, c->out, c->batch, skipped, c->metrics, c->metrics_path);
  c->metrics = NULL;
}

int cmd_infer(int argc, char **argv) {
  infer_job c = {0};
  int rc = parse(&c, argc, argv);
  if (rc) return rc < 0 ? 0 : rc;
  rc = cli_job_start(&c.job, &argc, &argv, c.threads);
  if (rc) return rc;
  infer_build(&c);
  infer_open_output(&c);
  run(&c);
  infer_free(&c);
  return cli_job_end(&c.job, 0);
}
