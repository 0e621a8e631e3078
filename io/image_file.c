/* image_file.c - one image file or buffer to pixels (sn_image_load), on the decoders and the
 * Pillow-exact resizers of image.c; what Keras' load_img does, for programs and the Python
 * binding. No HDF5. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "io_limits.h"

void sn_image_options_init(sn_image_options *o) {
  memset(o, 0, sizeof *o);
  o->channels = 3;
  o->resize = SN_RESIZE_NEAREST;
}

static sn_status check_options(const char *name, const sn_image_options *o) {
  if (o->channels != 1 && o->channels != 3)
    return sn_error_set(SN_ERR_INVALID, "%s: cannot decode to %d channels (1 or 3)", name,
                        o->channels);
  if (o->height < 0 || o->width < 0 || (o->height > 0) != (o->width > 0) ||
      o->height > SN_IO_MAX_SIDE || o->width > SN_IO_MAX_SIDE)
    return sn_error_set(SN_ERR_INVALID,
                        "%s: target size %dx%d (height and width both 1..%d, or both 0 for the "
                        "image's own size)",
                        name, o->height, o->width, SN_IO_MAX_SIDE);
  if (o->resize != SN_RESIZE_NEAREST && o->resize != SN_RESIZE_BILINEAR)
    return sn_error_set(SN_ERR_INVALID, "%s: unknown resize mode %d", name, (int)o->resize);
  if (o->resize_shorter < 0 || o->resize_shorter > SN_IO_MAX_SIDE ||
      (o->resize_shorter > 0 && o->height == 0))
    return sn_error_set(SN_ERR_INVALID,
                        "%s: resize_shorter %d needs a target size to crop to (and 1..%d)", name,
                        o->resize_shorter, SN_IO_MAX_SIDE);
  if (o->resize_shorter > 0 && (o->height > o->resize_shorter || o->width > o->resize_shorter))
    return sn_error_set(SN_ERR_INVALID,
                        "%s: centre crop %dx%d larger than the resized shorter side %d", name,
                        o->height, o->width, o->resize_shorter);
  return SN_OK;
}

sn_status sn_image_load_bytes(const void *data, size_t n, const char *name,
                              const sn_image_options *o, uint8_t **pixels, int *h, int *w) {
  sn_image_options dflt;
  if (!o) {
    sn_image_options_init(&dflt);
    o = &dflt;
  }
  if (!name) name = "image bytes";
  if (!pixels || !h || !w || (!data && n > 0))
    return sn_error_set(SN_ERR_INVALID, "%s: sn_image_load: NULL argument", name);
  *pixels = NULL;
  *h = *w = 0;
  sn_status s = check_options(name, o);
  if (s != SN_OK) return s;
  const int c = o->channels;
  sn_image_scratch sc = {0};
  char err[256] = "";
  int ih, iw;
  s = sn_image_decode(data, n, c, &sc, &ih, &iw, err, sizeof err);
  if (s != SN_OK) {
    sn_image_scratch_free(&sc);
    return sn_error_set(s, "%s: %s", name, err);
  }
  const int oh = o->height > 0 ? o->height : ih, ow = o->width > 0 ? o->width : iw;
  uint8_t *out = malloc((size_t)oh * ow * c); /* sides <= 65535: no overflow */
  if (!out)
    s = sn_error_set(SN_ERR_NOMEM, "%s: out of memory for %dx%dx%d pixels", name, oh, ow, c);
  if (s == SN_OK) {
    s = sn_image_fit(sc.pix, ih, iw, c, out, oh, ow, o->resize, o->resize_shorter, &sc);
    if (s != SN_OK)
      s = sn_error_set(s, "%s: cannot fit the %dx%d image to %dx%d (resize_shorter %d)", name, iw,
                       ih, ow, oh, o->resize_shorter);
  }
  sn_image_scratch_free(&sc);
  if (s != SN_OK) {
    free(out);
    return s;
  }
  *pixels = out;
  *h = oh;
  *w = ow;
  return SN_OK;
}

/* Reads the whole file (at most SN_IO_MAX_ROW_BYTES) into *buf, malloc'd. */
static sn_status read_file(const char *path, uint8_t **buf, size_t *n) {
  *buf = NULL;
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
  size_t cap = 0, len = 0;
  uint8_t *b = NULL;
  sn_status s = SN_OK;
  for (;;) {
    if (len == cap) {
      if (cap >= (size_t)SN_IO_MAX_ROW_BYTES) {
        s = sn_error_set(SN_ERR_FORMAT, "file %s: larger than %lld bytes, not read as an image",
                         path, (long long)SN_IO_MAX_ROW_BYTES);
        break;
      }
      cap = cap ? 2 * cap : 1 << 16;
      uint8_t *nb = realloc(b, cap);
      if (!nb) {
        s = sn_error_set(SN_ERR_NOMEM, "file %s: out of memory reading it", path);
        break;
      }
      b = nb;
    }
    size_t got = fread(b + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) s = sn_error_set(SN_ERR_IO, "file %s: cannot read: %s", path, strerror(errno));
      break;
    }
  }
  fclose(f);
  if (s != SN_OK) {
    free(b);
    return s;
  }
  *buf = b;
  *n = len;
  return SN_OK;
}

sn_status sn_image_load(const char *path, const sn_image_options *o, uint8_t **pixels, int *h,
                        int *w) {
  if (!path) return sn_error_set(SN_ERR_INVALID, "sn_image_load: no path");
  if (pixels) *pixels = NULL;
  uint8_t *data;
  size_t n;
  sn_status s = read_file(path, &data, &n);
  if (s != SN_OK) return s;
  char name[1100];
  snprintf(name, sizeof name, "file %s", path);
  s = sn_image_load_bytes(data, n, name, o, pixels, h, w);
  free(data);
  return s;
}
