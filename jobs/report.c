#define _GNU_SOURCE
/* report.c - what `infer` and `train` print and append on rank 0: accuracy
 * and the confusion matrix, the closing summary lines and the --metrics JSON lines
 * (docs/cli.md). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_report_accuracy(const sn_metrics *m, const sn_dataset *ds, int classes, int k,
                         FILE *confusion) {
  double n, hit1, hitk;
  sn_metrics_sums(m, &n, &hit1, &hitk, NULL);
  const double *conf = sn_metrics_confusion(m);
  if (n <= 0) return;
  if (cli_verbose) {
    printf("accuracy on %.0f labelled rows: top-1 %.2f%%, top-%d %.2f%%\n", n, 100.0 * hit1 / n, k,
           100.0 * hitk / n);
    if (classes <= 100) {
      printf("per-class top-1 accuracy:\n");
      for (int i = 0; i < classes; ++i) {
        double row = 0;
        for (int j = 0; j < classes; ++j)
          row += conf[(size_t)i * classes + j];
        const char *name = sn_dataset_class_name(ds, i);
        if (row > 0)
          printf("  %3d %-20s %6.2f%% of %.0f\n", i, name ? name : "",
                 100.0 * conf[(size_t)i * classes + i] / row, row);
      }
    }
  }
  for (int i = 0; confusion && i < classes; ++i)
    for (int j = 0; j < classes; ++j)
      fprintf(confusion, "%.0f%c", conf[(size_t)i * classes + j], j + 1 < classes ? '\t' : '\n');
}

void cli_report_infer(const cli_job *job, const double tot[4], double secs, const char *out,
                      long batch, int64_t skipped, FILE *metrics, const char *metrics_path) {
  if (cli_verbose && skipped > 0)
    printf("skipped %lld bad input%s (listed in /skipped of %s)\n", (long long)skipped,
           skipped == 1 ? "" : "s", out);
  if (cli_verbose)
    printf("inferred %lld rows on %d rank(s) in %.2f s: %.1f images/s; waiting for data %.1f%% "
           "of the time; output %s\n",
           (long long)tot[0], job->size, secs, tot[0] / secs,
           tot[3] > 0 ? 100.0 * tot[1] / tot[3] : 0.0, out);
  if (!metrics) return;
  fprintf(metrics,
          "{\"rows\": %.0f, \"seconds\": %.3f, \"images_per_s\": %.1f, \"data_wait_s\": %.3f, "
          "\"compute_s\": %.3f, \"ranks\": %d, \"threads\": %d, \"batch\": %ld, "
          "\"skipped\": %lld}\n",
          tot[0], secs, tot[0] / secs, tot[1] / job->size, tot[2] / job->size, job->size,
          job->threads, batch, (long long)skipped);
  if (fclose(metrics) != 0)
    fprintf(stderr, "shardnet: warning: writing metrics file %s failed\n", metrics_path);
}

/* Appends printf-style text to the line (len bytes used of n; stops when full). */
static void put(char *line, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *line, size_t n, size_t *len, const char *fmt, ...) {
  if (*len + 1 >= n) return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(line + *len, n - *len, fmt, ap);
  va_end(ap);
  *len = w < 0 ? n : *len + (size_t)w < n ? *len + (size_t)w : n - 1;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_json_str(char *line, size_t n, size_t *len, const char *s) {
  put(line, n, len, "\"");
  for (; *s; ++s) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      put(line, n, len, "\\%c", ch);
    else if (ch < 0x20)
      put(line, n, len, "\\u%04x", ch);
    else
      put(line, n, len, "%c", ch);
  }
  put(line, n, len, "\"");
}

void cli_report_epoch(const cli_job *job, const cli_epoch *e, const sn_net *net, FILE *metrics) {
  const double *s = e->sums;
  char line[4096];
  size_t len = 0, n = sizeof line;
  double comm_s = 0; /* rank 0's time blocked on gradient all-reduces after backward */
  int64_t comm_bytes = 0;
  sn_net_comm_stats(net, &comm_s, &comm_bytes);
  /* Fields that do not apply are absent (no validation: no val_*; 5 classes or fewer: no top-5). */
  put(line, n, &len, "{\"epoch\": %lld, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f",
      (long long)e->epoch + 1, (long long)e->step, s[0] / s[3], s[1] / s[3]);
  if (e->top5) put(line, n, &len, ", \"train_top5\": %.6f", s[2] / s[3]);
  if (e->has_val && e->val_count > 0) {
    put(line, n, &len, ", \"val_loss\": %.6f, \"val_acc\": %.6f", e->val_loss,
        e->val_correct / e->val_count);
    if (e->top5) put(line, n, &len, ", \"val_top5\": %.6f", e->val_top5 / e->val_count);
  }
  put(line, n, &len,
      ", \"lr\": %.6g, \"seconds\": %.3f, \"images_per_s\": %.1f, \"data_wait_s\": %.3f, "
      "\"ranks\": %d, \"threads\": %d, \"comm_exposed_s\": %.4f, \"comm_bytes\": %lld",
      e->lr, e->secs, e->secs > 0 ? s[4] / e->secs : 0.0, e->wait, job->size, job->threads, comm_s,
      (long long)comm_bytes);
  for (int i = 0; e->warnings && i < e->warnings->n; ++i) {
    put(line, n, &len, i ? ", " : ", \"warnings\": [");
    put_json_str(line, n, &len, e->warnings->text[i]);
    if (i + 1 == e->warnings->n) put(line, n, &len, "]");
  }
  put(line, n, &len, "}");
  if (metrics) {
    fprintf(metrics, "%s\n", line);
    fflush(metrics);
  }
  if (cli_verbose) {
    char vbuf[64] = "";
    if (e->has_val && e->val_count > 0)
      snprintf(vbuf, sizeof vbuf, " | val loss %.4f acc %.2f%%", e->val_loss,
               100.0 * e->val_correct / e->val_count);
    printf("epoch %lld%s: loss %.4f acc %.2f%%%s %.1f s %.0f img/s\n", (long long)e->epoch + 1,
           e->done ? "" : " (partial)", s[0] / s[3], 100.0 * s[1] / s[3], vbuf, e->secs,
           e->secs > 0 ? s[4] / e->secs : 0.0);
  }
  fflush(stdout);
}
