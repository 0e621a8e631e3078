#define _GNU_SOURCE
/* report.c - what `infer` and `train` print and append on rank 0: decoded predictions, accuracy
 * and the confusion matrix, the closing summary lines and the --metrics JSON lines
 * (docs/cli.md). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

sn_status cli_names_read(const char *path, cli_names *names) {
  memset(names, 0, sizeof *names);
  FILE *f = fopen(path, "r");
  if (!f) return sn_error_set(SN_ERR_IO, "cannot read label file %s", path);
  char line[512];
  int cap = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (names->n == cap) {
      cap = cap ? 2 * cap : 1024;
      char **t = realloc(names->v, (size_t)cap * sizeof *t);
      if (!t) break;
      names->v = t;
    }
    names->v[names->n++] = strdup(line);
  }
  fclose(f);
  /* an empty file names nothing: refused as unreadable */
  return names->v ? SN_OK : sn_error_set(SN_ERR_IO, "cannot read label file %s", path);
}

void cli_names_free(cli_names *names) {
  for (int i = 0; i < names->n; ++i)
    free(names->v[i]);
  free(names->v);
  memset(names, 0, sizeof *names);
}

void cli_report_rows(const cli_names *names, const int64_t *rows, int n, const int32_t *idx,
                     const float *val, int k, int64_t *printed, int64_t nprint) {
  for (int j = 0; j < n && *printed < nprint; ++j, ++*printed) {
    printf("row %lld:", (long long)rows[j]);
    for (int t = 0; t < k && t < 5; ++t) {
      int id = idx[(size_t)j * k + t];
      printf(" %s%s(%d) %.4f", t ? "| " : "", id < names->n ? names->v[id] : "", id,
             val[(size_t)j * k + t]);
    }
    printf("\n");
  }
}

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

void cli_report_epoch(const cli_job *job, const cli_epoch *e, const sn_net *net, FILE *metrics) {
  const double *s = e->sums;
  char line[512];
  double comm_s = 0; /* rank 0's time blocked on gradient all-reduces after backward */
  int64_t comm_bytes = 0;
  sn_net_comm_stats(net, &comm_s, &comm_bytes);
  snprintf(line, sizeof line,
           "{\"epoch\": %lld, \"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, "
           "\"val_loss\": %.6f, \"val_acc\": %.6f, \"lr\": %.6g, \"seconds\": %.3f, "
           "\"images_per_s\": %.1f, \"data_wait_s\": %.3f, \"ranks\": %d, \"threads\": %d, "
           "\"comm_exposed_s\": %.4f, \"comm_bytes\": %lld}",
           (long long)e->epoch + 1, (long long)e->step, s[0] / s[2], s[1] / s[2], e->val_loss,
           e->val_count ? e->val_correct / e->val_count : 0.0, e->lr, e->secs, s[2] / e->secs,
           e->wait, job->size, job->threads, comm_s, (long long)comm_bytes);
  if (metrics) {
    fprintf(metrics, "%s\n", line);
    fflush(metrics);
  }
  if (cli_verbose) {
    char vbuf[64] = "";
    if (e->has_val)
      snprintf(vbuf, sizeof vbuf, " | val loss %.4f acc %.2f%%", e->val_loss,
               100.0 * e->val_correct / e->val_count);
    printf("epoch %lld%s: loss %.4f acc %.2f%%%s %.1f s %.0f img/s\n", (long long)e->epoch + 1,
           e->done ? "" : " (partial)", s[0] / s[2], 100.0 * s[1] / s[2], vbuf, e->secs,
           s[2] / e->secs);
  }
  fflush(stdout);
}
