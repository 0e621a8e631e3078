/* fuzz_image.c - JPEG/PNG decoding and the resize/crop pipeline (io/image.c, private API).
 *
 * Input: 4 control bytes, then the encoded image.
 *   byte 0: bit 0 channels (1 or 3), bit 1 resize filter, bits 2.. shorter-side choice
 *   bytes 1, 2: output height and width (1..256)
 *   byte 3: the crop taken at decode: bit 0 jpeg_scale, bit 1 flip, bits 2.. the box
 * The crop decode must succeed wherever the whole decode did and, at full scale, equal the whole
 * decode cropped and resized.
 * The decoded image and every output buffer are allocated to their exact size so that ASan sees
 * any overrun; the decoder's scratch is reused across inputs, as a dataset reuses it across rows.
 */
#include "fuzz_common.h"
#include "image.h"
#include "io_limits.h"

/* Known finding F2 (docs/reliability.md): a thin image resized by its shorter side makes a
 * huge intermediate (a 1x65535 PNG -> 224 x 14.7M). Skipped here above this many pixels so that
 * long runs keep exploring (SN_FUZZ_STRICT=1 does not skip); remove once sn_image_fit bounds the
 * intermediate. */
#define FZ_MAX_FIT_PIXELS ((int64_t)1 << 26)

static sn_image_scratch scratch;

/* The box of byte 3 in an h x w picture (sn_image_crop_fn). */
typedef struct fz_crop {
  int sel, oh, ow, flip, jpeg_scale;
} fz_crop;
static void fz_choose(void *ctx, int h, int w, sn_image_crop *c) {
  const fz_crop *f = ctx;
  c->height = 1 + (int)((int64_t)(h - 1) * ((f->sel & 7) + 1) / 8);
  c->width = 1 + (int)((int64_t)(w - 1) * (((f->sel >> 3) & 7) + 1) / 8);
  c->top = (h - c->height) * (f->sel & 3) / 3;
  c->left = (w - c->width) * ((f->sel >> 2) & 3) / 3;
  c->out_h = f->oh;
  c->out_w = f->ow;
  c->flip = f->flip;
  c->jpeg_scale = f->jpeg_scale;
}

/* The crop decode against the whole decode `in` (h, w, channels). */
static void fz_check_crop(const uint8_t *img, size_t n, const uint8_t *in, int h, int w,
                          int channels, int byte3, int oh, int ow) {
  fz_crop f = {byte3 >> 2, oh, ow, (byte3 >> 1) & 1, byte3 & 1};
  sn_image_crop c;
  fz_choose(&f, h, w, &c);
  uint8_t *got = malloc((size_t)oh * ow * channels), *want = malloc((size_t)oh * ow * channels);
  uint8_t *box = malloc((size_t)c.height * c.width * channels);
  char err[512] = "";
  sn_status st =
      sn_image_decode_crop(img, n, channels, fz_choose, &f, got, &scratch, err, sizeof err);
  if (st != SN_OK && st != SN_ERR_NOMEM)
    fz_fail("sn_image_decode_crop returned %d (%s) where sn_image_decode succeeded", st, err);
  if (st == SN_OK && !f.jpeg_scale) {
    for (int y = 0; y < c.height; ++y)
      memcpy(box + (size_t)y * c.width * channels,
             in + ((size_t)(c.top + y) * w + c.left) * channels, (size_t)c.width * channels);
    if (sn_image_resize(box, c.height, c.width, channels, want, oh, ow, SN_RESIZE_BILINEAR,
                        &scratch) == SN_OK) {
      for (int y = 0; f.flip && y < oh; ++y)
        for (int a = 0, b = ow - 1; a < b; ++a, --b)
          for (int k = 0; k < channels; ++k) {
            uint8_t t = want[((size_t)y * ow + a) * channels + k];
            want[((size_t)y * ow + a) * channels + k] = want[((size_t)y * ow + b) * channels + k];
            want[((size_t)y * ow + b) * channels + k] = t;
          }
      if (memcmp(got, want, (size_t)oh * ow * channels) != 0)
        fz_fail("crop %dx%d at (%d, %d) of a %dx%d image differs from the whole decode", c.width,
                c.height, c.left, c.top, w, h);
    }
  }
  free(box);
  free(want);
  free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  const int channels = data[0] & 1 ? 3 : 1;
  const sn_resize_mode mode = data[0] & 2 ? SN_RESIZE_BILINEAR : SN_RESIZE_NEAREST;
  const int oh = 1 + data[1], ow = 1 + data[2];
  static const int shorter_choices[8] = {0, 0, 0, 0, 256, 288, 300, 320};
  const int shorter = shorter_choices[(data[0] >> 2) & 7];
  /* A copy of exactly the image's bytes: reads past its end are caught. */
  const size_t n = size - 4;
  uint8_t *img = malloc(n ? n : 1);
  memcpy(img, data + 4, n);
  char err[512] = "";
  int h = -1, w = -1;
  sn_status st = sn_image_decode(img, n, channels, &scratch, &h, &w, err, sizeof err);
  if (st != SN_OK) {
    if (st != SN_ERR_FORMAT && st != SN_ERR_NOMEM) fz_fail("sn_image_decode returned %d", st);
    if (!err[0] || strchr(err, '\n')) fz_fail("sn_image_decode: bad message '%s'", err);
    free(img);
    return 0;
  }
  if (h < 1 || w < 1 || h > SN_IO_MAX_SIDE || w > SN_IO_MAX_SIDE ||
      (int64_t)h * w > SN_IO_MAX_PIXELS)
    fz_fail("sn_image_decode: accepted a %dx%d image", w, h);
  /* The decoded pixels, copied to an exact-size buffer. */
  const size_t pix = (size_t)h * w * channels;
  uint8_t *in = malloc(pix);
  memcpy(in, scratch.pix, pix);
  fz_check_crop(img, n, in, h, w, channels, data[3], oh, ow);
  uint8_t *out = malloc((size_t)oh * ow * channels);
  int rh = shorter, rw = shorter;
  if (shorter > 0) {
    if (w <= h)
      rh = (int)((int64_t)shorter * h / w);
    else
      rw = (int)((int64_t)shorter * w / h);
  }
  if (fz_strict() || (int64_t)rh * rw <= FZ_MAX_FIT_PIXELS) {
    st = sn_image_fit(in, h, w, channels, out, oh, ow, mode, shorter, &scratch);
    if (st != SN_OK && st != SN_ERR_INVALID && st != SN_ERR_NOMEM)
      fz_fail("sn_image_fit returned %d", st);
    if (st == SN_ERR_INVALID && shorter == 0) fz_fail("sn_image_fit: straight resize refused");
  }
  /* Round trip through the encoders on small images (PNG is lossless). */
  if (pix <= 4096) {
    uint8_t *enc = NULL;
    size_t en = 0;
    if (sn_image_encode_png(in, h, w, channels, &enc, &en) != SN_OK) fz_fail("PNG encode failed");
    int h2, w2;
    if (sn_image_decode(enc, en, channels, &scratch, &h2, &w2, err, sizeof err) != SN_OK ||
        h2 != h || w2 != w || memcmp(scratch.pix, in, pix) != 0)
      fz_fail("PNG round trip of a %dx%dx%d image differs", w, h, channels);
    free(enc);
  }
  free(out);
  free(in);
  free(img);
  return 0;
}
