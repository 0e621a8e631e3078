/* sanity.c - training setups that run but cannot be what the user meant: one class, a global
 * batch larger than the dataset, an input far from the architecture's design size, classes of
 * the model without a single training example (docs/cli.md, "Sanity warnings"). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_impl.h"

static void warn(sn_warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(sn_warnings *w, const char *fmt, ...) {
  if (w->n >= SN_MAX_WARNINGS) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->text[w->n++], SN_WARNING_BYTES, fmt, ap);
  va_end(ap);
}

/* The classes of [0, k) that no label names: how many, the first few in list, and the class of
 * the labels when they are all the same one (else -1). */
static sn_status class_coverage(const int32_t *labels, int64_t n, int k, int *missing, char *list,
                                size_t list_size, int *only) {
  unsigned char *seen = calloc(k > 0 ? (size_t)k : 1, 1);
  if (!seen) return sn_error_set(SN_ERR_NOMEM, "sanity checks: %d classes", k);
  int present = 0, last = -1;
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] >= 0 && labels[i] < k && !seen[labels[i]]) {
      seen[labels[i]] = 1;
      last = labels[i];
      ++present;
    }
  *only = present == 1 ? last : -1;
  *missing = k - present;
  list[0] = '\0';
  size_t len = 0;
  for (int c = 0, shown = 0; c < k && shown < 6; ++c) {
    if (seen[c]) continue;
    int wr = snprintf(list + len, list_size - len, "%s%d", shown ? ", " : "", c);
    if (wr < 0 || (size_t)wr >= list_size - len) break;
    len += (size_t)wr;
    if (++shown == 6 && *missing > 6) snprintf(list + len, list_size - len, ", ...");
  }
  free(seen);
  return SN_OK;
}

sn_status sn_train_warnings(const sn_train_recipe *r, const sn_dataset *ds, sn_warnings *w) {
  memset(w, 0, sizeof *w);
  if (!r || !ds) return sn_error_set(SN_ERR_INVALID, "sn_train_warnings: NULL argument");
  const sn_dataset_info *info = &ds->info;
  sn_status s = SN_OK;
  if (ds->labels && r->classes > 0) {
    int missing = 0, only = -1;
    char list[64];
    s = class_coverage(ds->labels, info->n, r->classes, &missing, list, sizeof list, &only);
    const char *name = only >= 0 ? sn_dataset_class_name(ds, only) : NULL;
    if (s == SN_OK && only >= 0)
      warn(w,
           "file %s: every training label is class %d%s%s%s: the model can only learn to "
           "predict it",
           ds->path, only, name ? " (" : "", name ? name : "", name ? ")" : "");
    else if (s == SN_OK && missing > 0)
      warn(w, "file %s: %d of the model's %d classes have no training example (class%s %s)",
           ds->path, missing, r->classes, missing > 1 ? "es" : "", list);
  }
  if (r->global_batch > info->n)
    warn(w,
         "global batch %lld is larger than the %lld rows of %s: every step sees rows several "
         "times",
         (long long)r->global_batch, (long long)info->n, ds->path);
  int dh, dw, dc;
  if (sn_arch_input_size(r->arch, &dh, &dw, &dc) == SN_OK &&
      (r->height > 2 * dh || 2 * r->height < dh || r->width > 2 * dw || 2 * r->width < dw))
    warn(w, "input %dx%d is far from %s's design size %dx%d (more than 2x apart)", r->height,
         r->width, r->arch, dh, dw);
  return s;
}
