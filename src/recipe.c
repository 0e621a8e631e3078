/* recipe.c - the training recipe: everything that decides what a training run computes, and the
 * comparison that tells a resumed run which of it changed (docs/checkpoints.md). Checkpoints
 * store it (io/checkpoint.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shardnet.h"

static const char *const sched_names[] = {"constant", "step", "cosine"};

const char *sn_schedule_name(sn_schedule s) {
  return s >= SN_SCHED_CONSTANT && s <= SN_SCHED_COSINE ? sched_names[s] : "?";
}

sn_status sn_schedule_parse(const char *name, sn_schedule *out) {
  for (int i = 0; name && i < 3; ++i)
    if (!strcmp(name, sched_names[i])) {
      *out = (sn_schedule)i;
      return SN_OK;
    }
  return sn_error_set(SN_ERR_INVALID, "schedule '%s' is not constant, step or cosine",
                      name ? name : "(null)");
}

void sn_train_recipe_init(sn_train_recipe *r) {
  memset(r, 0, sizeof *r);
  r->epochs = 1;
  r->global_batch = 128;
  r->lr = 0.1;
  r->momentum = 0.9;
  r->weight_decay = 5e-4;
  r->decay_bn_and_bias = 1;
  r->schedule = SN_SCHED_COSINE;
  r->augment = SN_AUG_NONE;
  r->crop_scale = SN_CROP_SCALE_DEFAULT;
  r->preprocess = SN_PRE_NONE;
  r->shuffle = 1;
  r->seed = 1;
  r->bn_group = 0;
  r->bn_style = SN_STYLE_TORCH;
}

/* The growing list of differences. */
typedef struct diff_buf {
  char *buf;
  size_t n, len;
  int count;
} diff_buf;

static void add(diff_buf *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(diff_buf *d, const char *fmt, ...) {
  d->count++;
  if (!d->buf || d->n == 0 || d->len + 1 >= d->n) return;
  char item[2 * SN_MAX_NAME + 64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(item, sizeof item, fmt, ap);
  va_end(ap);
  int w = snprintf(d->buf + d->len, d->n - d->len, "%s%s", d->count > 1 ? ", " : "", item);
  if (w < 0 || (size_t)w >= d->n - d->len) { /* truncated: end with "..." */
    if (d->n >= 4) memcpy(d->buf + d->n - 4, "...", 4);
    d->len = d->n;
  } else {
    d->len += (size_t)w;
  }
}

static void diff_int(diff_buf *d, const char *name, int64_t a, int64_t b) {
  if (a != b) add(d, "%s %lld -> %lld", name, (long long)a, (long long)b);
}

static void diff_double(diff_buf *d, const char *name, double a, double b) {
  if (a == b) return;
  char sa[32], sb[32];
  snprintf(sa, sizeof sa, "%g", a);
  snprintf(sb, sizeof sb, "%g", b);
  if (!strcmp(sa, sb)) { /* the same to 6 digits: show them all */
    snprintf(sa, sizeof sa, "%.17g", a);
    snprintf(sb, sizeof sb, "%.17g", b);
  }
  add(d, "%s %s -> %s", name, sa, sb);
}

static void diff_str(diff_buf *d, const char *name, const char *a, const char *b) {
  if (strcmp(a, b)) add(d, "%s %s -> %s", name, a, b);
}

static const char *on_off(int v) { return v ? "on" : "off"; }

static const char *bn_name(int group, char *buf, size_t n) {
  if (group == 0) return "sync";
  if (group == 1) return "local";
  snprintf(buf, n, "groups of %d", group);
  return buf;
}

int sn_train_recipe_diff(const sn_train_recipe *a, const sn_train_recipe *b, char *buf, size_t n) {
  diff_buf d = {buf, n, 0, 0};
  if (buf && n) buf[0] = '\0';
  diff_str(&d, "arch", a->arch, b->arch);
  diff_int(&d, "classes", a->classes, b->classes);
  if (a->height != b->height || a->width != b->width || a->channels != b->channels)
    add(&d, "input %dx%dx%d -> %dx%dx%d", a->height, a->width, a->channels, b->height, b->width,
        b->channels);
  diff_int(&d, "width", a->base_width, b->base_width);
  diff_int(&d, "data rows", a->data_rows, b->data_rows);
  diff_int(&d, "epochs", a->epochs, b->epochs);
  diff_int(&d, "steps", a->steps, b->steps);
  diff_int(&d, "batch", a->global_batch, b->global_batch);
  diff_double(&d, "lr", a->lr, b->lr);
  diff_str(&d, "schedule", sn_schedule_name(a->schedule), sn_schedule_name(b->schedule));
  diff_double(&d, "warmup", a->warmup_epochs, b->warmup_epochs);
  diff_double(&d, "momentum", a->momentum, b->momentum);
  diff_str(&d, "nesterov", on_off(a->nesterov), on_off(b->nesterov));
  diff_double(&d, "weight-decay", a->weight_decay, b->weight_decay);
  diff_str(&d, "no-decay-bn-bias", on_off(!a->decay_bn_and_bias), on_off(!b->decay_bn_and_bias));
  diff_double(&d, "label-smoothing", a->label_smoothing, b->label_smoothing);
  diff_str(&d, "augment", sn_augment_name(a->augment), sn_augment_name(b->augment));
  if (a->augment == SN_AUG_RESIZED_CROP || b->augment == SN_AUG_RESIZED_CROP)
    diff_double(&d, "crop-scale", a->crop_scale, b->crop_scale);
  diff_str(&d, "preprocess", sn_preprocess_name(a->preprocess), sn_preprocess_name(b->preprocess));
  diff_str(&d, "shuffle", on_off(a->shuffle), on_off(b->shuffle));
  diff_str(&d, "drop-last", on_off(a->drop_last), on_off(b->drop_last));
  if (a->seed != b->seed)
    add(&d, "seed %llu -> %llu", (unsigned long long)a->seed, (unsigned long long)b->seed);
  char ga[32], gb[32];
  diff_str(&d, "bn", bn_name(a->bn_group, ga, sizeof ga), bn_name(b->bn_group, gb, sizeof gb));
  diff_str(&d, "bn-style", a->bn_style == SN_STYLE_KERAS ? "keras" : "torch",
           b->bn_style == SN_STYLE_KERAS ? "keras" : "torch");
  return d.count;
}
