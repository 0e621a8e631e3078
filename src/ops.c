/* ops.c - small public helpers: input preprocessing, softmax and top-k over rows, the
 * learning-rate schedule and the training-config defaults. */
#include <math.h>
#include <string.h>

#include "shardnet.h"

#define SN_OMP_MIN 32768
#define SN_PI 3.14159265358979323846

/* ---------------------------------------------------------------- preprocessing */

/* docs/models.md, "Preprocessing" (Keras imagenet_utils.preprocess_input / torchvision
 * normalisation), applied to float RGB 0..255: caffe: RGB->BGR, subtract (103.939, 116.779, 123.68)
 * in BGR order; tf:    x / 127.5 - 1; torch: (x / 255 - mean) / std, mean (0.485, 0.456, 0.406),
 * std (0.229, 0.224, 0.225); unit:  x / 255;  none: unchanged. caffe and torch are defined only for
 * 3-channel RGB. For C != 3 they fall back to unit (x / 255); tf is per-element and applies to any
 * C. SN_PRE_DEFAULT is resolved by the caller (the net knows its default); here it is treated as
 * none. */
static const float sn_caffe_mean_bgr[3] = {103.939f, 116.779f, 123.68f};
static const float sn_torch_mean[3] = {0.485f, 0.456f, 0.406f};
static const float sn_torch_std[3] = {0.229f, 0.224f, 0.225f};

/* One pixel of c channels, in RGB 0..255 -> out (may alias in). */
static void pre_pixel(const float *in, int c, sn_preprocess mode, float *out) {
  if ((mode == SN_PRE_CAFFE || mode == SN_PRE_TORCH) && c != 3) mode = SN_PRE_UNIT;
  switch (mode) {
  case SN_PRE_CAFFE: {
    const float r = in[0], g = in[1], b = in[2];
    out[0] = b - sn_caffe_mean_bgr[0];
    out[1] = g - sn_caffe_mean_bgr[1];
    out[2] = r - sn_caffe_mean_bgr[2];
    break;
  }
  case SN_PRE_TF:
    for (int j = 0; j < c; ++j)
      out[j] = in[j] / 127.5f - 1.0f;
    break;
  case SN_PRE_TORCH:
    for (int j = 0; j < 3; ++j)
      out[j] = (in[j] / 255.0f - sn_torch_mean[j]) / sn_torch_std[j];
    break;
  case SN_PRE_UNIT:
    for (int j = 0; j < c; ++j)
      out[j] = in[j] / 255.0f;
    break;
  default:
    if (out != in) memcpy(out, in, (size_t)c * sizeof(float));
    break;
  }
}

void sn_preprocess_u8(const uint8_t *in, size_t n, int h, int w, int c, sn_preprocess mode,
                      float *out) {
  const size_t pixels = n * (size_t)h * w;
#pragma omp parallel for schedule(static) if (pixels * (size_t)c > SN_OMP_MIN)
  for (long p = 0; p < (long)pixels; ++p) {
    float *o = out + (size_t)p * c;
    for (int j = 0; j < c; ++j)
      o[j] = (float)in[(size_t)p * c + j];
    pre_pixel(o, c, mode, o);
  }
}

void sn_preprocess_f32(float *x, size_t n, int h, int w, int c, sn_preprocess mode) {
  if (mode == SN_PRE_NONE || mode == SN_PRE_DEFAULT) return;
  const size_t pixels = n * (size_t)h * w;
#pragma omp parallel for schedule(static) if (pixels * (size_t)c > SN_OMP_MIN)
  for (long p = 0; p < (long)pixels; ++p)
    pre_pixel(x + (size_t)p * c, c, mode, x + (size_t)p * c);
}

static const struct {
  sn_preprocess mode;
  const char *name;
} sn_pre_names[] = {{SN_PRE_DEFAULT, "default"}, {SN_PRE_NONE, "none"},   {SN_PRE_CAFFE, "caffe"},
                    {SN_PRE_TF, "tf"},           {SN_PRE_TORCH, "torch"}, {SN_PRE_UNIT, "unit"}};

const char *sn_preprocess_name(sn_preprocess p) {
  for (size_t i = 0; i < sizeof sn_pre_names / sizeof sn_pre_names[0]; ++i)
    if (sn_pre_names[i].mode == p) return sn_pre_names[i].name;
  return "unknown";
}

sn_status sn_preprocess_parse(const char *name, sn_preprocess *out) {
  if (!name) return sn_error_set(SN_ERR_INVALID, "preprocess: no mode given");
  for (size_t i = 0; i < sizeof sn_pre_names / sizeof sn_pre_names[0]; ++i)
    if (strcmp(sn_pre_names[i].name, name) == 0) {
      *out = sn_pre_names[i].mode;
      return SN_OK;
    }
  return sn_error_set(SN_ERR_INVALID,
                      "preprocess: unknown mode '%s' (expected none, caffe, tf, torch, unit or "
                      "default)",
                      name);
}

/* ---------------------------------------------------------------- softmax, top-k */

void sn_softmax(const float *logits, int n, int k, float *probs) {
#pragma omp parallel for schedule(static) if ((size_t)n * k > SN_OMP_MIN)
  for (int r = 0; r < n; ++r) {
    const float *l = logits + (size_t)r * k;
    float *p = probs + (size_t)r * k;
    float m = l[0];
    for (int j = 1; j < k; ++j)
      if (l[j] > m) m = l[j];
    double s = 0.0;
    for (int j = 0; j < k; ++j)
      s += exp((double)l[j] - m);
    const double ls = log(s) + m;
    for (int j = 0; j < k; ++j)
      p[j] = (float)exp((double)l[j] - ls);
  }
}

/* a ranks above b: larger, with NaN below everything. */
static int topk_beats(float a, float b) { return a > b || (isnan(b) && !isnan(a)); }

/* Per row: the k largest scores in descending order, ties to the lower index (insertion into a
 * sorted list while scanning in index order; an equal score never passes an earlier one).
 * If k > classes the tail is idx -1, val -inf. */
void sn_topk(const float *scores, int n, int classes, int k, int32_t *idx, float *val) {
  if (k <= 0) return;
  for (int r = 0; r < n; ++r) {
    const float *s = scores + (size_t)r * classes;
    int32_t *ir = idx + (size_t)r * k;
    float *vr = val + (size_t)r * k;
    int len = 0;
    for (int j = 0; j < classes; ++j) {
      const float v = s[j];
      if (len == k && !topk_beats(v, vr[k - 1])) continue;
      int pos = len < k ? len : k - 1;
      while (pos > 0 && topk_beats(v, vr[pos - 1])) {
        vr[pos] = vr[pos - 1];
        ir[pos] = ir[pos - 1];
        --pos;
      }
      vr[pos] = v;
      ir[pos] = j;
      if (len < k) ++len;
    }
    for (int j = len; j < k; ++j) {
      ir[j] = -1;
      vr[j] = -INFINITY;
    }
  }
}

int sn_topk_hits(const float *scores, int n, int classes, int k, const int32_t *labels) {
  int hits = 0;
  for (int r = 0; r < n; ++r) {
    const int32_t y = labels[r];
    if (y < 0 || y >= classes) continue;
    const float *s = scores + (size_t)r * classes;
    int above = 0; /* entries sn_topk puts before the label's: larger, or equal and earlier */
    for (int j = 0; j < classes && above < k; ++j)
      above += topk_beats(s[j], s[y]) || (j < y && !topk_beats(s[y], s[j]));
    hits += above < k;
  }
  return hits;
}

/* ---------------------------------------------------------------- learning rate */

/* Linear warm-up: lr = base_lr * (step+1) / warmup_steps for step < warmup_steps. Then:
 *   constant: base_lr;
 *   step:     base_lr * step_gamma^floor(step / step_every), counted from step 0 (as Goyal et
 *             al.'s "divide at epochs 30, 60, 80" with a 5-epoch warm-up);
 *   cosine:   base_lr * (1 + cos(pi * t / T)) / 2, t = step - warmup_steps,
 *             T = total_steps - warmup_steps; 0 from total_steps on. */
float sn_lr_at(const sn_lr_schedule *s, int64_t step) {
  const double base = s->base_lr;
  if (step < 0) step = 0;
  if (s->warmup_steps > 0 && step < s->warmup_steps)
    return (float)(base * (double)(step + 1) / (double)s->warmup_steps);
  switch (s->kind) {
  case SN_SCHED_STEP:
    if (s->step_every <= 0) return (float)base;
    return (float)(base * pow((double)s->step_gamma, (double)(step / s->step_every)));
  case SN_SCHED_COSINE: {
    const int64_t w = s->warmup_steps > 0 ? s->warmup_steps : 0;
    const int64_t T = s->total_steps - w;
    const int64_t t = step - w;
    if (T <= 0 || t >= T) return 0.0f;
    return (float)(base * 0.5 * (1.0 + cos(SN_PI * (double)t / (double)T)));
  }
  case SN_SCHED_CONSTANT:
  default:
    return (float)base;
  }
}

void sn_train_config_init(sn_train_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->lr = 0.1f;
  cfg->momentum = 0.9f;
  cfg->nesterov = 0;
  cfg->weight_decay = 0.0f;
  cfg->decay_bn_and_bias = 1;
  cfg->label_smoothing = 0.0f;
  cfg->bn_momentum = -1.0f;
}
