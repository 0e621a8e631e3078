/* augment.c - training augmentation on preprocessed float32 NHWC batches. Each sample's random
 * choices come from (seed, epoch, dataset row) only, so they do not depend on the rank count or
 * on which rank holds the sample. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment_impl.h"
#include "shardnet.h"

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

const char *sn_augment_name(sn_augment a) {
  switch (a) {
  case SN_AUG_NONE:
    return "none";
  case SN_AUG_CROP_FLIP:
    return "crop-flip";
  case SN_AUG_FLIP:
    return "flip";
  case SN_AUG_RESIZED_CROP:
    return "resized-crop";
  }
  return "?";
}

sn_status sn_augment_parse(const char *name, sn_augment *out) {
  if (!strcmp(name, "none"))
    *out = SN_AUG_NONE;
  else if (!strcmp(name, "crop-flip"))
    *out = SN_AUG_CROP_FLIP;
  else if (!strcmp(name, "flip"))
    *out = SN_AUG_FLIP;
  else if (!strcmp(name, "resized-crop"))
    *out = SN_AUG_RESIZED_CROP;
  else
    return sn_error_set(SN_ERR_INVALID,
                        "unknown augmentation '%s' (none, flip, crop-flip, resized-crop)", name);
  return SN_OK;
}

/* Uniform in [0, 1) from the k-th draw of a sample's stream. */
static double unif(uint64_t r, int k) {
  return (double)(mix(r + 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1)) >> 11) * 0x1p-53;
}

/* torchvision RandomResizedCrop.get_params (scale smin..1, ratio 3/4..4/3): up to 10 tries of a
 * random area and log-uniform aspect ratio, else the centre crop with the ratio clamped. */
void sn_resized_crop_params(uint64_t r, int h, int w, double smin, int *top, int *left, int *ch,
                            int *cw) {
  const double area = (double)h * w, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
  if (!(smin > 0 && smin <= 1)) smin = SN_CROP_SCALE_DEFAULT;
  for (int t = 0; t < 10; ++t) {
    const double target = area * (smin + (1.0 - smin) * unif(r, 4 * t));
    const double ratio = exp(lr0 + (lr1 - lr0) * unif(r, 4 * t + 1));
    const int cw_ = (int)lround(sqrt(target * ratio)), ch_ = (int)lround(sqrt(target / ratio));
    if (cw_ > 0 && cw_ <= w && ch_ > 0 && ch_ <= h) {
      *ch = ch_;
      *cw = cw_;
      *top = (int)(unif(r, 4 * t + 2) * (h - ch_ + 1));
      *left = (int)(unif(r, 4 * t + 3) * (w - cw_ + 1));
      return;
    }
  }
  const double in_ratio = (double)w / h;
  if (in_ratio < 3.0 / 4.0) {
    *cw = w;
    *ch = (int)lround(w / (3.0 / 4.0));
  } else if (in_ratio > 4.0 / 3.0) {
    *ch = h;
    *cw = (int)lround(h * (4.0 / 3.0));
  } else {
    *cw = w;
    *ch = h;
  }
  if (*ch > h) *ch = h;
  if (*cw > w) *cw = w;
  *top = (h - *ch) / 2;
  *left = (w - *cw) / 2;
}

/* Bilinear resize (half-pixel centres, edge clamped, no antialiasing) of the crop
 * src[top.., left..] (ch x cw) to dst (h x w), flipped horizontally if asked. */
static void resize_crop(const float *src, int h, int w, int c, int top, int left, int ch, int cw,
                        int flip, float *dst) {
  const double sy = (double)ch / h, sx = (double)cw / w;
  for (int yy = 0; yy < h; ++yy) {
    double fy = (yy + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    int y0 = (int)fy;
    if (y0 > ch - 1) y0 = ch - 1;
    const int y1 = y0 + 1 < ch ? y0 + 1 : ch - 1;
    const float wy = (float)(fy - y0);
    for (int xx = 0; xx < w; ++xx) {
      double fx = ((flip ? w - 1 - xx : xx) + 0.5) * sx - 0.5;
      if (fx < 0) fx = 0;
      int x0 = (int)fx;
      if (x0 > cw - 1) x0 = cw - 1;
      const int x1 = x0 + 1 < cw ? x0 + 1 : cw - 1;
      const float wx = (float)(fx - x0);
      const float *a = src + ((size_t)(top + y0) * w + left + x0) * c;
      const float *b = src + ((size_t)(top + y0) * w + left + x1) * c;
      const float *d = src + ((size_t)(top + y1) * w + left + x0) * c;
      const float *e = src + ((size_t)(top + y1) * w + left + x1) * c;
      float *o = dst + ((size_t)yy * w + xx) * c;
      for (int k = 0; k < c; ++k) {
        const float t0 = a[k] + wx * (b[k] - a[k]), t1 = d[k] + wx * (e[k] - d[k]);
        o[k] = t0 + wy * (t1 - t0);
      }
    }
  }
}

/* The random stream of one sample: a function of (seed, epoch, dataset row) only. */
static uint64_t stream(uint64_t seed, int64_t epoch, int64_t row) {
  return mix(seed ^ mix((uint64_t)epoch * 0x632be59bd9b4e019ull ^ mix((uint64_t)row)));
}

void sn_augment_crop_box(uint64_t seed, int64_t epoch, int64_t row, int h, int w, double scale,
                         int box[4], int *flip) {
  const uint64_t r = stream(seed, epoch, row);
  sn_resized_crop_params(r, h, w, scale, &box[0], &box[1], &box[2], &box[3]);
  *flip = (int)(r & 1);
}

void sn_augment_batch(float *x, int n, int h, int w, int c, sn_augment mode, int pad,
                      double crop_scale, uint64_t seed, int64_t epoch, const int64_t *rows,
                      float *scratch) {
  if (mode == SN_AUG_NONE) return;
  size_t img = (size_t)h * w * c;
  for (int i = 0; i < n; ++i) {
    uint64_t r = stream(seed, epoch, rows[i]);
    int flip = (int)(r & 1);
    if (mode == SN_AUG_RESIZED_CROP) {
      int top, left, ch, cw;
      sn_resized_crop_params(r, h, w, crop_scale, &top, &left, &ch, &cw);
      float *im = x + (size_t)i * img;
      memcpy(scratch, im, img * sizeof(float));
      resize_crop(scratch, h, w, c, top, left, ch, cw, flip, im);
      continue;
    }
    int dy = 0, dx = 0;
    if (mode == SN_AUG_CROP_FLIP && pad > 0) {
      dy = (int)((r >> 8) % (uint64_t)(2 * pad + 1)) - pad;
      dx = (int)((r >> 24) % (uint64_t)(2 * pad + 1)) - pad;
    }
    if (!flip && !dy && !dx) continue;
    float *im = x + (size_t)i * img;
    memcpy(scratch, im, img * sizeof(float));
    /* out(y, x) = in(y + dy, flip ? w-1-(x+dx)... ): crop of the zero-padded image, then flip */
    for (int yy = 0; yy < h; ++yy)
      for (int xx = 0; xx < w; ++xx) {
        int sx = flip ? w - 1 - xx : xx;
        int iy = yy + dy, ix = sx + dx;
        float *o = im + ((size_t)yy * w + xx) * c;
        if (iy < 0 || iy >= h || ix < 0 || ix >= w)
          memset(o, 0, (size_t)c * sizeof(float));
        else
          memcpy(o, scratch + ((size_t)iy * w + ix) * c, (size_t)c * sizeof(float));
      }
  }
}
