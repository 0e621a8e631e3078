/* infer_decode.c - what `shardnet infer` takes from the weights and label files and gives back as
 * decoded predictions (docs/cli.md, "Labels and decoded predictions"): the class count a weights
 * file records, the label file checked against it, and after the output is complete the
 * --print lines and the --decoded file, made by one rank from the finished output. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "infer_job.h"

sn_status infer_classes_from_weights(sn_model_config *cfg, const char *wpath) {
  if (!wpath || !cfg->include_top) return SN_OK; /* no classifier: its width does not matter */
  sn_weights_record wi;
  sn_status s = sn_weights_inspect(wpath, &wi);
  if (s != SN_OK || wi.classes <= 0) return s; /* a "no top" file: the load says what is missing */
  if (cfg->classes > 0 && cfg->classes != wi.classes)
    return sn_error_set(SN_ERR_SHAPE,
                        "weights file %s records %d classes but --classes is %d (drop --classes "
                        "to take the file's)",
                        wpath, wi.classes, cfg->classes);
  cfg->classes = wi.classes;
  return SN_OK;
}

sn_status infer_labels_open(infer_job *c) {
  if (!c->labels_path && !c->decoded_path) return SN_OK;
  sn_status s = SN_OK;
  if (!c->cfg.include_top || c->topk == 0)
    s = sn_error_set(SN_ERR_INVALID, "infer: --labels, --print and --decoded need predictions (a "
                                     "classifier and --top-k > 0)");
  if (s == SN_OK && c->decoded_path && sn_decode_format_of(c->decoded_path) == SN_DECODE_AUTO)
    s = sn_error_set(SN_ERR_INVALID,
                     "infer: --decoded %s: the extension names no format (.csv or .jsonl)",
                     c->decoded_path);
  int same = c->decoded_path && !strcmp(c->decoded_path, c->out);
  for (int i = 0; c->decoded_path && i < c->ndata; ++i)
    same |= !strcmp(c->decoded_path, c->data[i]);
  if (s == SN_OK && same)
    s = sn_error_set(SN_ERR_INVALID, "infer: --decoded %s is also the input or the output",
                     c->decoded_path);
  if (s == SN_OK && c->decoded_path && c->job.rank == 0) { /* unwritable: fail before any work */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s.tmp.%ld", c->decoded_path, (long)getpid());
    FILE *f = fopen(probe, "w");
    if (!f)
      s = sn_error_set(SN_ERR_IO, "infer: --decoded %s: cannot create it: %s", c->decoded_path,
                       strerror(errno));
    else
      fclose(f), remove(probe);
  }
  /* every rank reads the labels, so that a bad file fails the job before any work on all ranks
   * alike; only rank 0 uses them */
  if (s == SN_OK && c->labels_path) s = sn_labels_read(c->labels_path, c->classes, &c->labels);
  return s;
}

static void print_line(void *ctx, const char *line) {
  (void)ctx;
  printf("%s\n", line);
}

void infer_decode(infer_job *c) {
  if (!c->decoded_path && c->nprint == 0) return;
  sn_status s = SN_OK;
  if (c->job.rank == 0) {
    sn_decode_options o;
    sn_decode_options_init(&o);
    o.print_rows = c->nprint;
    o.print = print_line;
    s = sn_output_decode(c->out, c->labels, c->decoded_path, &o);
    fflush(stdout);
  }
  cli_check(&c->job, s);
}
