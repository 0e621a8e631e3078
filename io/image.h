/* image.h - private: JPEG/PNG decoding and encoding, Pillow-exact resizing and the torchvision /
 * Keras fit (io/image.c). No HDF5: the converters, the dataset and the tests use it. */
#ifndef SN_IMAGE_H
#define SN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Growable buffers reused across images (one per thread of use). */
typedef struct sn_image_scratch {
  uint8_t *pix; /* decoded image (h, w, c) */
  size_t pix_cap;
  uint8_t *tmp; /* colour conversion / resize intermediate */
  size_t tmp_cap;
  uint8_t *tmp2; /* second intermediate (resize then crop) */
  size_t tmp2_cap;
  void *coef; /* resampling coefficients and bounds */
  size_t coef_cap;
  int32_t *acc; /* one row of vertical-pass sums */
  size_t acc_cap;
} sn_image_scratch;

void sn_image_scratch_free(sn_image_scratch *s);

/* Decodes a JPEG or PNG (recognised by its signature, whatever the file's name) into s->pix as
 * (h, w, channels) 8-bit, channels 1 or 3 (grey replicated to RGB; RGB to grey with PIL's "L"
 * weights; CMYK/YCCK JPEGs converted as Pillow does, Adobe-inverted; alpha dropped, palettes
 * expanded, 16-bit samples reduced to their high byte), then turned upright by its EXIF
 * orientation as Pillow's ImageOps.exif_transpose does (JPEG: the first APP1 "Exif" segment; PNG:
 * eXIf, "Raw profile type exif" text, or the XMP packet's tiff:Orientation), so h and w are the
 * upright image's. A header claiming more than SN_IO_MAX_SIDE per side or SN_IO_MAX_PIXELS is
 * refused before anything is allocated for it. Returns SN_OK or SN_ERR_FORMAT (corrupt,
 * truncated, empty, not an image, another format: err names it) / SN_ERR_NOMEM with a one-line
 * message in err; never exits. */
sn_status sn_image_decode(const uint8_t *data, size_t n, int channels, sn_image_scratch *s, int *h,
                          int *w, char *err, size_t errlen);
/* The format a file's first bytes announce ("JPEG", "PNG", "GIF", "WebP", "TIFF", "BMP", "HEIF",
 * "AVIF", "JPEG 2000", "JPEG XL", "PNM", "ICO"), or NULL. Only JPEG and PNG are decoded. */
const char *sn_image_format_name(const uint8_t *data, size_t n);
/* Reads only the header: the stored size (h, w) of a JPEG or PNG, checked against the limits as
 * sn_image_decode checks it. Errors as sn_image_decode's (the image data is not decoded: a file
 * truncated after its header passes). */
sn_status sn_image_probe(const uint8_t *data, size_t n, int *h, int *w, char *err, size_t errlen);

/* Pillow-exact resizes of (ih, iw, c) uint8 into (oh, ow, c): bilinear is Pillow's antialiased
 * two-pass convolution (what torchvision's Resize does to PIL images), nearest is Pillow's
 * Image.resize(NEAREST) (Keras load_img's default). */
sn_status sn_image_resize(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh, int ow,
                          sn_resize_mode mode, sn_image_scratch *s);

/* The decode target pipeline: shorter > 0: resize the shorter side to `shorter` (longer =
 * floor(shorter * long / short)) then centre crop (oh, ow) at round-half-even offsets
 * (torchvision Resize + CenterCrop); shorter == 0: straight resize to (oh, ow). */
sn_status sn_image_fit(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh, int ow,
                       sn_resize_mode mode, int shorter, sn_image_scratch *s);

/* A crop of a picture, resized: torchvision's resized_crop (crop, then Resize, bilinear with
 * antialiasing) on a PIL image, then optionally its horizontal flip. */
typedef struct sn_image_crop {
  int top, left, height, width; /* the box, in the picture's pixels; must lie inside it */
  int out_h, out_w;             /* output size */
  int flip;                     /* 1: mirror the output left to right */
  int jpeg_scale;               /* 1: a JPEG may be decoded at a reduced DCT scale (below) */
} sn_image_crop;
/* Chooses the crop once the picture's size (h, w) is known (from the JPEG header, or after
 * decoding any other format). */
typedef void (*sn_image_crop_fn)(void *ctx, int h, int w, sn_image_crop *crop);

/* Decodes a picture (as sn_image_decode: channels 1 or 3) and writes the crop that choose picks
 * into out (out_h, out_w, channels), bit for bit what Pillow's img.crop(box).resize(out size,
 * BILINEAR) gives, mirrored with flip. A JPEG is decoded only as far as it must be: rows above
 * and below the box are skipped (their entropy data is still read, so truncation is still an
 * error) and columns beyond it cropped by libjpeg, with a margin that keeps the box's pixels
 * identical to a full decode. With jpeg_scale, a JPEG is decoded at the smallest libjpeg scale
 * k/8 (k = 1..8) at which the box still spans out_h x out_w pixels, and the box (scaled by k/8)
 * is resampled from that image with Pillow's Image.resize(box=...): close to the full-size
 * result, not equal to it. A box outside the picture is SN_ERR_INVALID; otherwise errors are
 * those of sn_image_decode, with the message in err. */
sn_status sn_image_decode_crop(const uint8_t *data, size_t n, int channels, sn_image_crop_fn choose,
                               void *ctx, uint8_t *out, sn_image_scratch *s, char *err,
                               size_t errlen);

/* Encoders (tests and tools); JPEG takes c = 1, 3 or 4 (CMYK, Adobe marker), PNG 1..4. *out is
 * malloc'd; the caller frees it. */
sn_status sn_image_encode_jpeg(const uint8_t *pix, int h, int w, int c, int quality, uint8_t **out,
                               size_t *n);
sn_status sn_image_encode_png(const uint8_t *pix, int h, int w, int c, uint8_t **out, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* SN_IMAGE_H */
