/* augment.c - training augmentation on preprocessed float32 NHWC batches. Each sample's random
 * choices come from (seed, epoch, dataset row) only, so they do not depend on the rank count or
 * on which rank holds the sample. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shardnet.h"

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

const char *sn_augment_name(sn_augment a) {
  switch (a) {
  case SN_AUG_NONE: return "none";
  case SN_AUG_CROP_FLIP: return "crop-flip";
  case SN_AUG_FLIP: return "flip";
  }
  return "?";
}

sn_status sn_augment_parse(const char *name, sn_augment *out) {
  if (!strcmp(name, "none")) *out = SN_AUG_NONE;
  else if (!strcmp(name, "crop-flip")) *out = SN_AUG_CROP_FLIP;
  else if (!strcmp(name, "flip")) *out = SN_AUG_FLIP;
  else return sn_error_set(SN_ERR_INVALID, "unknown augmentation '%s' (none, flip, crop-flip)", name);
  return SN_OK;
}

void sn_augment_batch(float *x, int n, int h, int w, int c, sn_augment mode, int pad, uint64_t seed,
                      int64_t epoch, const int64_t *rows, float *scratch) {
  if (mode == SN_AUG_NONE) return;
  size_t img = (size_t)h * w * c;
  for (int i = 0; i < n; ++i) {
    uint64_t r = mix(seed ^ mix((uint64_t)epoch * 0x632be59bd9b4e019ull ^ mix((uint64_t)rows[i])));
    int flip = (int)(r & 1);
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
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) memset(o, 0, (size_t)c * sizeof(float));
        else memcpy(o, scratch + ((size_t)iy * w + ix) * c, (size_t)c * sizeof(float));
      }
  }
}
