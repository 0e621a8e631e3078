/* image.c - JPEG/PNG decoding (libjpeg-turbo, libpng; errors come back through setjmp, never
 * exit) with the EXIF orientation applied as Pillow's ImageOps.exif_transpose does, Pillow-exact
 * bilinear and nearest resizing, and the torchvision/Keras fit pipeline. */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h> /* needs stddef.h and stdio.h first */
#include <png.h>

#include "image.h"
#include "io_limits.h"

void sn_image_scratch_free(sn_image_scratch *s) {
  if (!s) return;
  free(s->pix);
  free(s->tmp);
  free(s->tmp2);
  free(s->coef);
  free(s->acc);
  memset(s, 0, sizeof *s);
}

/* Grows *buf to at least n bytes. Returns 0 on allocation failure. */
static int grow(uint8_t **buf, size_t *cap, size_t n) {
  if (*cap >= n) return 1;
  size_t want = n + n / 4;
  uint8_t *p = realloc(*buf, want);
  if (!p) return 0;
  *buf = p;
  *cap = want;
  return 1;
}

/* Pillow's RGB -> "L": (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. In place allowed. */
static void rgb_to_grey(const uint8_t *rgb, size_t pixels, uint8_t *grey) {
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t *p = rgb + 3 * i;
    grey[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
  }
}

static int check_dims(long h, long w, int c, char *err, size_t errlen) {
  if (h <= 0 || w <= 0 || h > SN_IO_MAX_SIDE || w > SN_IO_MAX_SIDE ||
      (int64_t)h * w > SN_IO_MAX_PIXELS || (int64_t)h * w * c > SN_IO_MAX_ROW_BYTES) {
    snprintf(err, errlen,
             "image size %ldx%ld (from its header) outside the accepted range (sides up to %d, "
             "%lld pixels)",
             w, h, SN_IO_MAX_SIDE, (long long)SN_IO_MAX_PIXELS);
    return 0;
  }
  return 1;
}

/* ---------------------------------------------------------------- EXIF orientation */

/* The orientation tag (0x0112) of IFD0 of a TIFF-structured EXIF block, as Pillow's
 * Image.getexif() reads it: a SHORT or LONG of count 1 (the last such entry wins); 0 when absent
 * or unreadable. An optional "Exif\0\0" prefix is skipped. Every offset is bounds-checked. */
static int exif_orientation(const uint8_t *p, size_t n) {
  if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) {
    p += 6;
    n -= 6;
  }
  if (n < 8) return 0;
  const int le = p[0] == 'I' && p[1] == 'I';
  if (!le && !(p[0] == 'M' && p[1] == 'M')) return 0;
#define RD16(q) (le ? (uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 : (uint32_t)(q)[0] << 8 | (q)[1])
#define RD32(q) (le ? RD16(q) | RD16((q) + 2) << 16 : RD16(q) << 16 | RD16((q) + 2))
  if (RD16(p + 2) != 42) return 0;
  const uint32_t ifd = RD32(p + 4);
  if (ifd > n - 2 || ifd < 8) return 0;
  const uint32_t count = RD16(p + ifd);
  int orientation = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
    if (e + 12 > n) break; /* a truncated directory: the entries read so far count */
    const uint32_t tag = RD16(p + e), type = RD16(p + e + 2), cnt = RD32(p + e + 4);
    if (tag != 0x0112 || cnt != 1) continue;
    if (type == 3)
      orientation = (int)RD16(p + e + 8);
    else if (type == 4)
      orientation = (int)RD32(p + e + 8);
  }
#undef RD16
#undef RD32
  return orientation >= 1 && orientation <= 8 ? orientation : 0;
}

/* Applies orientation o (2..8) to the (h, w, c) image in s->pix, as Pillow's exif_transpose:
 * 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE,
 * 8 ROTATE_90 (5..8 swap height and width). The result replaces s->pix (s->tmp is swapped in). */
static sn_status orient(sn_image_scratch *s, int *h, int *w, int c, int o) {
  if (o < 2 || o > 8) return SN_OK;
  const int ih = *h, iw = *w, swap = o >= 5;
  const int oh = swap ? iw : ih, ow = swap ? ih : iw;
  if (!grow(&s->tmp, &s->tmp_cap, (size_t)ih * iw * c)) return SN_ERR_NOMEM;
  const uint8_t *in = s->pix;
  uint8_t *out = s->tmp;
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      int sy, sx; /* the source pixel of output (y, x) */
      switch (o) {
      case 2:
        sy = y, sx = iw - 1 - x;
        break;
      case 3:
        sy = ih - 1 - y, sx = iw - 1 - x;
        break;
      case 4:
        sy = ih - 1 - y, sx = x;
        break;
      case 5:
        sy = x, sx = y;
        break;
      case 6:
        sy = ih - 1 - x, sx = y;
        break;
      case 7:
        sy = ih - 1 - x, sx = iw - 1 - y;
        break;
      default:
        sy = x, sx = iw - 1 - y;
        break;
      }
      memcpy(out + ((size_t)y * ow + x) * c, in + ((size_t)sy * iw + sx) * c, (size_t)c);
    }
  }
  uint8_t *t = s->pix;
  size_t tc = s->pix_cap;
  s->pix = s->tmp;
  s->pix_cap = s->tmp_cap;
  s->tmp = t;
  s->tmp_cap = tc;
  *h = oh;
  *w = ow;
  return SN_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct jpeg_err {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
  jpeg_err *e = (jpeg_err *)c->err;
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jb, 1);
}

/* Warnings are ignored except a premature end of data: Pillow refuses truncated files. */
static void jpeg_on_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(c);
  if (level < 0) c->err->num_warnings++;
}

static void jpeg_quiet(j_common_ptr c) { (void)c; }

/* A decompressor whose errors longjmp to jerr->jb with the message in jerr->msg (the caller
 * does the setjmp) and whose warnings are handled as above. */
static void jpeg_errors(struct jpeg_decompress_struct *cinfo, jpeg_err *jerr) {
  memset(cinfo, 0, sizeof *cinfo);
  cinfo->err = jpeg_std_error(&jerr->pub);
  jerr->pub.error_exit = jpeg_on_error;
  jerr->pub.emit_message = jpeg_on_message;
  jerr->pub.output_message = jpeg_quiet;
  jerr->msg[0] = '\0';
}

/* Pixels decoded with oc components (4: CMYK, Adobe-inverted if `inverted`) into `channels`
 * (1 or 3) at out, as Pillow converts them. Nothing to do when oc == channels (then in is out). */
static void jpeg_to_channels(uint8_t *in, size_t pixels, int oc, int inverted, int channels,
                             uint8_t *out) {
  if (oc == 4) {
    /* Pillow: Adobe files hold inverted CMYK ("CMYK;I"); then cmyk2rgb:
     * nk = 255 - K, out = nk - C * nk / 255 (rounded as MULDIV255). */
    for (size_t i = 0; i < pixels; ++i) {
      const uint8_t *q = in + 4 * i;
      const unsigned k = inverted ? q[3] : 255u - q[3];
      for (int j = 0; j < 3; ++j) {
        const unsigned cc = inverted ? 255u - q[j] : q[j];
        const unsigned t = cc * k + 128;
        const int v = (int)k - (int)(((t >> 8) + t) >> 8);
        in[3 * i + j] = (uint8_t)(v < 0 ? 0 : v);
      }
    }
    if (channels == 3)
      memcpy(out, in, pixels * 3);
    else
      rgb_to_grey(in, pixels, out);
  } else if (oc != channels) {
    rgb_to_grey(in, pixels, out);
  }
}

/* Error handling and colour space of a JPEG decode, after jpeg_read_header: grey output straight
 * from a grey file; CMYK as is (converted by jpeg_to_channels like Pillow); otherwise RGB,
 * reduced to grey like Pillow if needed. */
static void jpeg_out_space(struct jpeg_decompress_struct *cinfo, int channels) {
  const int cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  const int grey_in = cinfo->num_components == 1;
  cinfo->out_color_space = cmyk ? JCS_CMYK : (grey_in && channels == 1) ? JCS_GRAYSCALE : JCS_RGB;
}

static sn_status decode_jpeg(const uint8_t *data, size_t n, int channels, sn_image_scratch *s,
                             int *h, int *w, char *err, size_t errlen) {
  struct jpeg_decompress_struct cinfo;
  jpeg_err jerr;
  jpeg_errors(&cinfo, &jerr);
  if (setjmp(jerr.jb)) {
    jpeg_destroy_decompress(&cinfo);
    snprintf(err, errlen, "corrupt JPEG: %s", jerr.msg);
    return SN_ERR_FORMAT;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)n);
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if (!check_dims((long)cinfo.image_height, (long)cinfo.image_width, 3, err, errlen)) {
    jpeg_destroy_decompress(&cinfo);
    return SN_ERR_FORMAT;
  }
  /* Pillow reads the first APP1 segment that starts "Exif\0". */
  int orientation = 0;
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 5 && !memcmp(m->data, "Exif", 5)) {
      orientation = exif_orientation(m->data, m->data_length);
      break;
    }
  jpeg_out_space(&cinfo, channels);
  jpeg_start_decompress(&cinfo);
  const int oc = cinfo.output_components;
  const size_t ww = cinfo.output_width, hh = cinfo.output_height;
  const size_t stride = ww * (size_t)oc;
  uint8_t **dst = oc == channels ? &s->pix : &s->tmp;
  size_t *cap = oc == channels ? &s->pix_cap : &s->tmp_cap;
  if (!grow(dst, cap, stride * hh) ||
      (oc != channels && !grow(&s->pix, &s->pix_cap, ww * hh * 3))) {
    jpeg_destroy_decompress(&cinfo);
    snprintf(err, errlen, "out of memory for a %zux%zu image", ww, hh);
    return SN_ERR_NOMEM;
  }
  uint8_t *base = *dst;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = base + (size_t)cinfo.output_scanline * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  const int inverted = cinfo.saw_Adobe_marker;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  jpeg_to_channels(s->tmp, ww * hh, oc, inverted, channels, s->pix);
  *h = (int)hh;
  *w = (int)ww;
  if (orient(s, h, w, channels, orientation) != SN_OK) {
    snprintf(err, errlen, "out of memory for a %zux%zu image", ww, hh);
    return SN_ERR_NOMEM;
  }
  return SN_OK;
}

/* ---------------------------------------------------------------- PNG */

typedef struct png_src {
  const uint8_t *data;
  size_t n, pos;
  char *err;
  size_t errlen;
  jmp_buf jb;
} png_src;

static void png_on_error(png_structp p, png_const_charp msg) {
  png_src *src = png_get_error_ptr(p);
  snprintf(src->err, src->errlen, "corrupt PNG: %s", msg);
  longjmp(src->jb, 1);
}
static void png_on_warning(png_structp p, png_const_charp msg) {
  (void)p;
  (void)msg;
}
static void png_read_mem(png_structp p, png_bytep out, size_t len) {
  png_src *src = png_get_io_ptr(p);
  if (len > src->n - src->pos) png_error(p, "truncated data");
  memcpy(out, src->data + src->pos, len);
  src->pos += len;
}

/* The orientation Pillow finds in a PNG: the eXIf chunk, else ImageMagick's "Raw profile type
 * exif" text (hex after three header lines), then, if neither holds the tag, the XMP packet's
 * tiff:Orientation (text key XML:com.adobe.xmp). 0 if none. */
static int png_orientation(png_structp p, png_infop info) {
  png_bytep exif = NULL;
  png_uint_32 nexif = 0;
  png_textp text = NULL;
  int ntext = 0;
  png_get_text(p, info, &text, &ntext);
  int o = 0, have_exif = 0;
  if (png_get_eXIf_1(p, info, &nexif, &exif) && exif) {
    have_exif = 1;
    o = exif_orientation(exif, nexif);
  }
  for (int i = 0; !have_exif && i < ntext; ++i) {
    if (strcmp(text[i].key, "Raw profile type exif") != 0) continue;
    have_exif = 1;
    const char *t = text[i].text;
    const size_t len = text[i].itxt_length ? text[i].itxt_length : text[i].text_length;
    size_t pos = 0;
    for (int lines = 0; pos < len && lines < 3; ++pos)
      lines += t[pos] == '\n';
    uint8_t *bin = malloc(len / 2 + 1);
    size_t nb = 0;
    int hi = -1;
    for (; bin && pos < len; ++pos) {
      const char ch = t[pos];
      const int v = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
      if (v < 0) continue;
      if (hi < 0) {
        hi = v;
      } else {
        bin[nb++] = (uint8_t)(hi << 4 | v);
        hi = -1;
      }
    }
    if (bin) o = exif_orientation(bin, nb);
    free(bin);
  }
  for (int i = 0; !o && i < ntext; ++i) {
    if (strcmp(text[i].key, "XML:com.adobe.xmp") != 0) continue;
    /* the first match of Pillow's pattern tiff:Orientation(="|>)([0-9]) */
    for (const char *x = strstr(text[i].text, "tiff:Orientation"); x;
         x = strstr(x, "tiff:Orientation")) {
      x += strlen("tiff:Orientation");
      if (x[0] == '=' && x[1] == '"' && x[2] >= '0' && x[2] <= '9') {
        o = x[2] - '0';
        break;
      }
      if (x[0] == '>' && x[1] >= '0' && x[1] <= '9') {
        o = x[1] - '0';
        break;
      }
    }
    if (o > 8) o = 0;
    break;
  }
  return o;
}

static sn_status decode_png(const uint8_t *data, size_t n, int channels, sn_image_scratch *s,
                            int *h, int *w, char *err, size_t errlen) {
  png_src src;
  memset(&src, 0, sizeof src);
  src.data = data;
  src.n = n;
  src.err = err;
  src.errlen = errlen;
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  if (!p) {
    snprintf(err, errlen, "out of memory (PNG reader)");
    return SN_ERR_NOMEM;
  }
  png_infop info = png_create_info_struct(p);
  png_bytep *volatile rows = NULL;
  if (!info) {
    png_destroy_read_struct(&p, NULL, NULL);
    snprintf(err, errlen, "out of memory (PNG reader)");
    return SN_ERR_NOMEM;
  }
  if (setjmp(src.jb)) {
    free(rows);
    png_destroy_read_struct(&p, &info, NULL);
    return SN_ERR_FORMAT;
  }
  png_set_read_fn(p, &src, png_read_mem);
  /* The header's size is checked below with a message of ours (libpng's own limit would say
   * "exceeds user limit"); nothing is allocated from it before that. */
  png_set_user_limits(p, 0x7fffffffL, 0x7fffffffL);
  png_read_info(p, info);
  const png_uint_32 pw = png_get_image_width(p, info), ph = png_get_image_height(p, info);
  if (!check_dims((long)ph, (long)pw, 3, err, errlen)) {
    png_destroy_read_struct(&p, &info, NULL);
    return SN_ERR_FORMAT;
  }
  const int ct = png_get_color_type(p, info);
  const int depth = png_get_bit_depth(p, info);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
  if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
  if (depth == 16) png_set_strip_16(p);
  if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(p);
  const int grey_in = (ct & PNG_COLOR_MASK_COLOR) == 0;
  if (grey_in && channels == 3) png_set_gray_to_rgb(p);
  png_set_interlace_handling(p);
  png_read_update_info(p, info);
  const int oc = png_get_channels(p, info);
  if (oc != 1 && oc != 3) png_error(p, "unexpected channel count after conversion");
  const size_t stride = png_get_rowbytes(p, info);
  if (stride != (size_t)pw * oc) png_error(p, "unexpected row size after conversion");
  uint8_t **dst = oc == channels ? &s->pix : &s->tmp;
  size_t *cap = oc == channels ? &s->pix_cap : &s->tmp_cap;
  rows = malloc((size_t)ph * sizeof *rows);
  if (!rows || !grow(dst, cap, stride * ph) ||
      (oc != channels && !grow(&s->pix, &s->pix_cap, (size_t)pw * ph))) {
    free(rows);
    png_destroy_read_struct(&p, &info, NULL);
    snprintf(err, errlen, "out of memory for a %ux%u image", (unsigned)pw, (unsigned)ph);
    return SN_ERR_NOMEM;
  }
  for (png_uint_32 y = 0; y < ph; ++y)
    rows[y] = *dst + (size_t)y * stride;
  png_read_image(p, rows);
  png_read_end(p, info); /* chunks after the image data (eXIf, text) land in info too */
  const int orientation = png_orientation(p, info);
  free(rows);
  png_destroy_read_struct(&p, &info, NULL);
  if (oc != channels) rgb_to_grey(s->tmp, (size_t)pw * ph, s->pix);
  *h = (int)ph;
  *w = (int)pw;
  if (orient(s, h, w, channels, orientation) != SN_OK) {
    snprintf(err, errlen, "out of memory for a %ux%u image", (unsigned)pw, (unsigned)ph);
    return SN_ERR_NOMEM;
  }
  return SN_OK;
}

sn_status sn_image_decode(const uint8_t *data, size_t n, int channels, sn_image_scratch *s, int *h,
                          int *w, char *err, size_t errlen) {
  if (channels != 1 && channels != 3) {
    snprintf(err, errlen, "cannot decode to %d channels (1 or 3)", channels);
    return SN_ERR_INVALID;
  }
  if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
    return decode_jpeg(data, n, channels, s, h, w, err, errlen);
  if (n >= 8 && png_sig_cmp(data, 0, 8) == 0)
    return decode_png(data, n, channels, s, h, w, err, errlen);
  const char *other = sn_image_format_name(data, n);
  if (n == 0)
    snprintf(err, errlen, "empty file (0 bytes)");
  else if (other)
    snprintf(err, errlen, "unsupported image format %s (shardnet decodes JPEG and PNG)", other);
  else
    snprintf(err, errlen, "not an image (first bytes %02x %02x %02x %02x)", data[0],
             n > 1 ? data[1] : 0, n > 2 ? data[2] : 0, n > 3 ? data[3] : 0);
  return SN_ERR_FORMAT;
}

const char *sn_image_format_name(const uint8_t *p, size_t n) {
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "JPEG";
  if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
  if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return "GIF";
  if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return "WebP";
  if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) return "TIFF";
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return "BMP";
  if (n >= 12 && !memcmp(p + 4, "ftyp", 4)) {
    if (!memcmp(p + 8, "avif", 4) || !memcmp(p + 8, "avis", 4)) return "AVIF";
    if (!memcmp(p + 8, "hei", 3) || !memcmp(p + 8, "mif1", 4) || !memcmp(p + 8, "msf1", 4))
      return "HEIF";
  }
  if (n >= 12 && !memcmp(p, "\0\0\0\x0cjP  ", 8)) return "JPEG 2000";
  if (n >= 4 && !memcmp(p, "\xff\x0a", 2)) return "JPEG XL";
  if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7') return "PNM";
  if (n >= 4 && !memcmp(p, "\0\0\1\0", 4)) return "ICO";
  return NULL;
}

sn_status sn_image_probe(const uint8_t *data, size_t n, int *h, int *w, char *err, size_t errlen) {
  *h = *w = 0;
  if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    jpeg_errors(&cinfo, &jerr);
    if (setjmp(jerr.jb)) {
      jpeg_destroy_decompress(&cinfo);
      snprintf(err, errlen, "corrupt JPEG: %s", jerr.msg);
      return SN_ERR_FORMAT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    const long ih = (long)cinfo.image_height, iw = (long)cinfo.image_width;
    jpeg_destroy_decompress(&cinfo);
    if (!check_dims(ih, iw, 3, err, errlen)) return SN_ERR_FORMAT;
    *h = (int)ih;
    *w = (int)iw;
    return SN_OK;
  }
  if (n >= 8 && png_sig_cmp(data, 0, 8) == 0) {
    png_src src;
    memset(&src, 0, sizeof src);
    src.data = data;
    src.n = n;
    src.err = err;
    src.errlen = errlen;
    png_structp p =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    if (!p || !info) {
      png_destroy_read_struct(&p, NULL, NULL);
      snprintf(err, errlen, "out of memory (PNG reader)");
      return SN_ERR_NOMEM;
    }
    if (setjmp(src.jb)) {
      png_destroy_read_struct(&p, &info, NULL);
      return SN_ERR_FORMAT;
    }
    png_set_read_fn(p, &src, png_read_mem);
    png_set_user_limits(p, 0x7fffffffL, 0x7fffffffL);
    png_read_info(p, info);
    const long ih = (long)png_get_image_height(p, info), iw = (long)png_get_image_width(p, info);
    png_destroy_read_struct(&p, &info, NULL);
    if (!check_dims(ih, iw, 3, err, errlen)) return SN_ERR_FORMAT;
    *h = (int)ih;
    *w = (int)iw;
    return SN_OK;
  }
  /* the messages of sn_image_decode for everything else */
  int dh, dw;
  return sn_image_decode(data, n, 3, NULL, &dh, &dw, err, errlen);
}

/* ---------------------------------------------------------------- resizing */

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1), for
 * the input range [in0, in1) of an axis of in_size pixels (Image.resize's box; the support may
 * reach outside the box, up to the image's edges): for each output index, bounds (first input,
 * count) and ksize fixed-point weights. */
static int coeffs(int in_size, double in0, double in1, int out_size, int *bounds, int32_t *kk,
                  double *tmp, int ksize) {
  const double scale = (in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double wgt = bilinear_filter((x + xmin - center + 0.5) * ss);
      tmp[x] = wgt;
      ww += wgt;
    }
    for (int x = 0; x < ksize; ++x) {
      double v = x < xmax ? (ww != 0.0 ? tmp[x] / ww : tmp[x]) : 0.0;
      kk[xx * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                                 : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return 0;
}

static inline uint8_t clip8(int v) {
  v >>= PRECISION_BITS;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int ksize_for(double in_size, int out_size) {
  const double scale = in_size / out_size;
  const double support = scale < 1.0 ? 1.0 : scale;
  int k = (int)support;
  if ((double)k < support) ++k; /* ceil */
  return 2 * k + 1;
}

/* Pillow's ImagingResample (bilinear) of the box (x0, y0, x1, y1) of an iw x ih image into
 * (oh, ow, c). Only part of the image need be in memory: src holds the rows [ry0, ...) and columns
 * [rx0, ...) that the filter reaches (see needed_span), row after row `stride` bytes apart. */
typedef struct resample_src {
  const uint8_t *px; /* pixel (rx0, ry0) */
  size_t stride;     /* bytes from one row to the next */
  int rx0, ry0;      /* image coordinates of px */
  int iw, ih;        /* the whole image */
} resample_src;

static sn_status resample(const resample_src *in, int c, const double box[4], uint8_t *out, int oh,
                          int ow, sn_image_scratch *s) {
  const int iw = in->iw, ih = in->ih;
  const int need_h = ow != iw || box[0] != 0.0 || box[2] != (double)iw;
  const int need_v = oh != ih || box[1] != 0.0 || box[3] != (double)ih;
  if (!need_h && !need_v) {
    for (int y = 0; y < oh; ++y)
      memcpy(out + (size_t)y * ow * c, in->px + (size_t)(y - in->ry0) * in->stride, (size_t)ow * c);
    return SN_OK;
  }
  const int kh = ksize_for(box[2] - box[0], ow), kv = ksize_for(box[3] - box[1], oh);
  const int kmax = kh > kv ? kh : kv;
  /* coefficient memory: bounds_h, bounds_v (ints), kk_h, kk_v (int32), tmp (doubles) */
  const size_t bytes = sizeof(int) * 2 * ((size_t)ow + oh) +
                       sizeof(int32_t) * ((size_t)ow * kh + (size_t)oh * kv) +
                       sizeof(double) * (size_t)(kmax + 1) + 16;
  if (!grow((uint8_t **)&s->coef, &s->coef_cap, bytes)) return SN_ERR_NOMEM;
  double *tmpd = (double *)s->coef;
  int *bh = (int *)(tmpd + kmax + 1);
  int *bv = bh + 2 * ow;
  int32_t *kkh = (int32_t *)(bv + 2 * oh);
  int32_t *kkv = kkh + (size_t)ow * kh;
  coeffs(ih, box[1], box[3], oh, bv, kkv, tmpd, kv);
  const int y_first = bv[0];
  const int y_last = bv[2 * oh - 2] + bv[2 * oh - 1];
  const uint8_t *src = in->px; /* row `src_row` of the image */
  size_t src_stride = in->stride;
  int src_row = in->ry0;
  if (need_h) {
    coeffs(iw, box[0], box[2], ow, bh, kkh, tmpd, kh);
    for (int i = 0; i < oh; ++i)
      bv[2 * i] -= y_first;
    const int th = y_last - y_first;
    if (!grow(&s->tmp2, &s->tmp2_cap, (size_t)th * ow * c)) return SN_ERR_NOMEM;
    uint8_t *t = s->tmp2;
    for (int yy = 0; yy < th; ++yy) {
      const uint8_t *row = in->px + (size_t)(yy + y_first - in->ry0) * in->stride;
      for (int xx = 0; xx < ow; ++xx) {
        const int xmin = bh[2 * xx], xmax = bh[2 * xx + 1];
        const int32_t *k = kkh + (size_t)xx * kh;
        int ss[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                     1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1)};
        const uint8_t *px = row + (size_t)(xmin - in->rx0) * c;
        if (c == 3) {
          for (int x = 0; x < xmax; ++x, px += 3) {
            ss[0] += px[0] * k[x];
            ss[1] += px[1] * k[x];
            ss[2] += px[2] * k[x];
          }
        } else {
          for (int x = 0; x < xmax; ++x, px += c)
            for (int ch = 0; ch < c; ++ch)
              ss[ch] += px[ch] * k[x];
        }
        for (int ch = 0; ch < c; ++ch)
          t[((size_t)yy * ow + xx) * c + ch] = clip8(ss[ch]);
      }
    }
    src = t; /* rows y_first.. (the bounds were shifted to count from it) */
    src_stride = (size_t)ow * c;
    src_row = 0;
  }
  if (need_v) {
    /* Row by row: accumulate the kernel's input rows into one int32 row (contiguous access).
     * Without the horizontal pass ow == iw and the box spans every column: src rows start at
     * column 0 (rx0 is 0). */
    const size_t rw = (size_t)ow * c;
    if (!grow((uint8_t **)&s->acc, &s->acc_cap, rw * sizeof(int32_t))) return SN_ERR_NOMEM;
    int32_t *acc = s->acc;
    for (int yy = 0; yy < oh; ++yy) {
      const int ymin = bv[2 * yy], ymax = bv[2 * yy + 1];
      const int32_t *k = kkv + (size_t)yy * kv;
      for (size_t j = 0; j < rw; ++j)
        acc[j] = 1 << (PRECISION_BITS - 1);
      for (int y = 0; y < ymax; ++y) {
        const uint8_t *srow = src + (size_t)(y + ymin - src_row) * src_stride;
        const int32_t ky = k[y];
        for (size_t j = 0; j < rw; ++j)
          acc[j] += srow[j] * ky;
      }
      uint8_t *o = out + (size_t)yy * rw;
      for (size_t j = 0; j < rw; ++j)
        o[j] = clip8(acc[j]);
    }
  } else {
    memcpy(out, src, (size_t)oh * ow * c);
  }
  return SN_OK;
}

static sn_status resize_bilinear(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh,
                                 int ow, sn_image_scratch *s) {
  const resample_src src = {in, (size_t)iw * c, 0, 0, iw, ih};
  const double box[4] = {0.0, 0.0, (double)iw, (double)ih};
  return resample(&src, c, box, out, oh, ow, s);
}

/* Pillow's ImagingScaleAffine: source index COORD(a*0.5 + i*a), accumulated in double. */
static sn_status resize_nearest(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh,
                                int ow, sn_image_scratch *s) {
  if (!grow((uint8_t **)&s->coef, &s->coef_cap, sizeof(int) * (size_t)ow)) return SN_ERR_NOMEM;
  int *xin = (int *)s->coef;
  const double ax = (double)iw / ow, ay = (double)ih / oh;
  double xo = ax * 0.5;
  for (int x = 0; x < ow; ++x) {
    int v = xo < 0.0 ? -1 : (int)xo;
    xin[x] = v < 0 ? 0 : v >= iw ? iw - 1 : v;
    xo += ax;
  }
  double yo = ay * 0.5;
  for (int y = 0; y < oh; ++y) {
    int yi = yo < 0.0 ? -1 : (int)yo;
    yi = yi < 0 ? 0 : yi >= ih ? ih - 1 : yi;
    const uint8_t *row = in + (size_t)yi * iw * c;
    uint8_t *o = out + (size_t)y * ow * c;
    for (int x = 0; x < ow; ++x)
      memcpy(o + (size_t)x * c, row + (size_t)xin[x] * c, (size_t)c);
    yo += ay;
  }
  return SN_OK;
}

sn_status sn_image_resize(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh, int ow,
                          sn_resize_mode mode, sn_image_scratch *s) {
  if (ih <= 0 || iw <= 0 || oh <= 0 || ow <= 0 || c <= 0) return SN_ERR_INVALID;
  if (mode == SN_RESIZE_NEAREST) return resize_nearest(in, ih, iw, c, out, oh, ow, s);
  return resize_bilinear(in, ih, iw, c, out, oh, ow, s);
}

/* Python's round() of d / 2 (half to even), d >= 0. */
static int half_even_half(int d) {
  const int k = d / 2;
  if (d % 2 == 0) return k;
  return (k % 2 == 0) ? k : k + 1;
}

sn_status sn_image_fit(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int oh, int ow,
                       sn_resize_mode mode, int shorter, sn_image_scratch *s) {
  if (shorter <= 0) {
    if (ih == oh && iw == ow) {
      memcpy(out, in, (size_t)ih * iw * c);
      return SN_OK;
    }
    return sn_image_resize(in, ih, iw, c, out, oh, ow, mode, s);
  }
  int rh, rw;
  if (iw <= ih) {
    rw = shorter;
    rh = (int)((int64_t)shorter * ih / iw);
  } else {
    rh = shorter;
    rw = (int)((int64_t)shorter * iw / ih);
  }
  if (rh < oh || rw < ow) return SN_ERR_INVALID;
  const uint8_t *r = in;
  if (rh != ih || rw != iw) {
    /* The resized image goes to tmp (tmp2 and coef are the resizer's own). */
    size_t bytes;
    if (!sn_io_mul((size_t)rh * rw, (size_t)c, &bytes) || !grow(&s->tmp, &s->tmp_cap, bytes))
      return SN_ERR_NOMEM;
    sn_status st = sn_image_resize(in, ih, iw, c, s->tmp, rh, rw, mode, s);
    if (st != SN_OK) return st;
    r = s->tmp;
  }
  const int top = half_even_half(rh - oh), left = half_even_half(rw - ow);
  for (int y = 0; y < oh; ++y)
    memcpy(out + (size_t)y * ow * c, r + ((size_t)(y + top) * rw + left) * c, (size_t)ow * c);
  return SN_OK;
}

/* ---------------------------------------------------------------- decoding a crop */

/* Checks the crop choose picked for an h x w picture. */
static int crop_ok(const sn_image_crop *cr, int h, int w, char *err, size_t errlen) {
  if (cr->top < 0 || cr->left < 0 || cr->height < 1 || cr->width < 1 || cr->top > h - cr->height ||
      cr->left > w - cr->width || cr->out_h < 1 || cr->out_w < 1 || cr->out_h > SN_IO_MAX_SIDE ||
      cr->out_w > SN_IO_MAX_SIDE) {
    snprintf(err, errlen, "crop %dx%d at (%d, %d) to %dx%d does not fit a %dx%d image", cr->width,
             cr->height, cr->left, cr->top, cr->out_w, cr->out_h, w, h);
    return 0;
  }
  return 1;
}

/* First and one-past-last input index that Pillow's bilinear coefficients for [in0, in1) of an
 * axis of in_size pixels reach (the bounds of the first and the last output). */
static void reach(int in_size, double in0, double in1, int out_size, int *lo, int *hi) {
  const double scale = (in1 - in0) / out_size;
  const double support = scale < 1.0 ? 1.0 : scale;
  const double c0 = in0 + 0.5 * scale, c1 = in0 + (out_size - 0.5) * scale;
  int a = (int)(c0 - support + 0.5), b = (int)(c1 + support + 0.5);
  *lo = a < 0 ? 0 : a;
  *hi = b > in_size ? in_size : b;
}

static void mirror(uint8_t *px, int h, int w, int c) {
  for (int y = 0; y < h; ++y) {
    uint8_t *row = px + (size_t)y * w * c;
    for (int a = 0, b = w - 1; a < b; ++a, --b)
      for (int k = 0; k < c; ++k) {
        const uint8_t t = row[(size_t)a * c + k];
        row[(size_t)a * c + k] = row[(size_t)b * c + k];
        row[(size_t)b * c + k] = t;
      }
  }
}

/* The JPEG scale k/8 for a crop: 8 (full size), or with jpeg_scale the smallest k at which the
 * box keeps at least out_h x out_w pixels. */
static int jpeg_scale_for(const sn_image_crop *cr) {
  if (!cr->jpeg_scale) return 8;
  const int kh = (8 * cr->out_h + cr->height - 1) / cr->height;
  const int kw = (8 * cr->out_w + cr->width - 1) / cr->width;
  const int k = kh > kw ? kh : kw;
  return k < 1 ? 1 : k > 8 ? 8 : k;
}

/* Margin in (scaled) pixels kept left and right of the columns a crop needs: libjpeg's column
 * cropping treats its edges as image edges when upsampling subsampled chroma, which changes the
 * edge pixels (measured: 1 column is enough; 16 is one iMCU of 4:2:0). */
enum { JPEG_COLUMN_MARGIN = 16 };

static sn_status decode_jpeg_crop(const uint8_t *data, size_t n, int channels,
                                  sn_image_crop_fn choose, void *ctx, uint8_t *out,
                                  sn_image_scratch *s, char *err, size_t errlen) {
  struct jpeg_decompress_struct cinfo;
  jpeg_err jerr;
  jpeg_errors(&cinfo, &jerr);
  if (setjmp(jerr.jb)) {
    jpeg_destroy_decompress(&cinfo);
    snprintf(err, errlen, "corrupt JPEG: %s", jerr.msg);
    return SN_ERR_FORMAT;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)n);
  jpeg_read_header(&cinfo, TRUE);
  const int H = (int)cinfo.image_height, W = (int)cinfo.image_width;
  if (!check_dims(H, W, 3, err, errlen)) {
    jpeg_destroy_decompress(&cinfo);
    return SN_ERR_FORMAT;
  }
  sn_image_crop cr;
  memset(&cr, 0, sizeof cr);
  choose(ctx, H, W, &cr);
  if (!crop_ok(&cr, H, W, err, errlen)) {
    jpeg_destroy_decompress(&cinfo);
    return SN_ERR_INVALID;
  }
  jpeg_out_space(&cinfo, channels);
  const int k = jpeg_scale_for(&cr);
  cinfo.scale_num = (unsigned)k;
  cinfo.scale_denom = 8;
  jpeg_calc_output_dimensions(&cinfo);
  const int sw = (int)cinfo.output_width, sh = (int)cinfo.output_height;
  /* The virtual image the resampler sees and the box in it: the crop itself at full size (crop,
   * then resize: the filter stops at the crop's edges); the scaled picture with the scaled box
   * otherwise (Image.resize(box=...): the filter may reach past the box). */
  double box[4];
  int vw, vh, ox, oy; /* virtual image size; its origin in the decoded picture */
  if (k == 8) {
    vw = cr.width, vh = cr.height, ox = cr.left, oy = cr.top;
    box[0] = box[1] = 0.0, box[2] = vw, box[3] = vh;
  } else {
    vw = sw, vh = sh, ox = oy = 0;
    const double f = k / 8.0;
    box[0] = cr.left * f, box[1] = cr.top * f;
    box[2] = (cr.left + cr.width) * f, box[3] = (cr.top + cr.height) * f;
    if (box[2] > sw) box[2] = sw;
    if (box[3] > sh) box[3] = sh;
  }
  int x0, x1, y0, y1; /* the decoded picture's columns and rows the resampler reads */
  reach(vw, box[0], box[2], cr.out_w, &x0, &x1);
  reach(vh, box[1], box[3], cr.out_h, &y0, &y1);
  x0 += ox, x1 += ox, y0 += oy, y1 += oy;
  jpeg_start_decompress(&cinfo);
  JDIMENSION xoff = (JDIMENSION)(x0 > JPEG_COLUMN_MARGIN ? x0 - JPEG_COLUMN_MARGIN : 0);
  JDIMENSION xend = (JDIMENSION)(x1 + JPEG_COLUMN_MARGIN < sw ? x1 + JPEG_COLUMN_MARGIN : sw);
  JDIMENSION xw = xend - xoff;
  if (xw < (JDIMENSION)sw)
    jpeg_crop_scanline(&cinfo, &xoff, &xw); /* moves xoff to an iMCU boundary, widens xw */
  else
    xoff = 0;
  const int oc = cinfo.output_components;
  const size_t stride = (size_t)xw * oc, rows = (size_t)(y1 - y0);
  uint8_t **dst = oc == channels ? &s->pix : &s->tmp;
  size_t *cap = oc == channels ? &s->pix_cap : &s->tmp_cap;
  if (!grow(dst, cap, stride * (rows + 1)) ||
      (oc != channels && !grow(&s->pix, &s->pix_cap, (size_t)xw * rows * 3))) {
    jpeg_destroy_decompress(&cinfo);
    snprintf(err, errlen, "out of memory for a %zux%zu crop", (size_t)xw, rows + 1);
    return SN_ERR_NOMEM;
  }
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y0);
  uint8_t *base = *dst;
  while ((int)cinfo.output_scanline < y1) {
    JSAMPROW row = base + (size_t)((int)cinfo.output_scanline - y0) * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  /* The rest is skipped, not abandoned, and its last row read (into the row after the box's):
   * libjpeg's skip to the very end reads nothing, and a truncated file must be an error whatever
   * the crop. */
  if (cinfo.output_scanline < cinfo.output_height) {
    if (cinfo.output_scanline + 1 < cinfo.output_height)
      jpeg_skip_scanlines(&cinfo, cinfo.output_height - cinfo.output_scanline - 1);
    JSAMPROW row = base + rows * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  const int inverted = cinfo.saw_Adobe_marker;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  jpeg_to_channels(s->tmp, (size_t)xw * rows, oc, inverted, channels, s->pix);
  const size_t pstride = (size_t)xw * channels;
  const resample_src src = {s->pix + (size_t)(oy - y0 > 0 ? oy - y0 : 0) * pstride +
                                (size_t)(ox - (int)xoff > 0 ? ox - (int)xoff : 0) * channels,
                            pstride,
                            k == 8 ? 0 : (int)xoff,
                            k == 8 ? 0 : y0,
                            vw,
                            vh};
  sn_status st = resample(&src, channels, box, out, cr.out_h, cr.out_w, s);
  if (st != SN_OK) {
    snprintf(err, errlen, "out of memory resizing a %dx%d crop", cr.width, cr.height);
    return st;
  }
  if (cr.flip) mirror(out, cr.out_h, cr.out_w, channels);
  return SN_OK;
}

sn_status sn_image_decode_crop(const uint8_t *data, size_t n, int channels, sn_image_crop_fn choose,
                               void *ctx, uint8_t *out, sn_image_scratch *s, char *err,
                               size_t errlen) {
  err[0] = '\0';
  if (channels != 1 && channels != 3) {
    snprintf(err, errlen, "cannot decode to %d channels (1 or 3)", channels);
    return SN_ERR_INVALID;
  }
  if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
    return decode_jpeg_crop(data, n, channels, choose, ctx, out, s, err, errlen);
  /* Other formats: decode whole, then crop and resize. */
  int h = 0, w = 0;
  sn_status st = sn_image_decode(data, n, channels, s, &h, &w, err, errlen);
  if (st != SN_OK) return st;
  sn_image_crop cr;
  memset(&cr, 0, sizeof cr);
  choose(ctx, h, w, &cr);
  if (!crop_ok(&cr, h, w, err, errlen)) return SN_ERR_INVALID;
  const size_t stride = (size_t)w * channels;
  const resample_src src = {s->pix + (size_t)cr.top * stride + (size_t)cr.left * channels,
                            stride,
                            0,
                            0,
                            cr.width,
                            cr.height};
  const double box[4] = {0.0, 0.0, (double)cr.width, (double)cr.height};
  st = resample(&src, channels, box, out, cr.out_h, cr.out_w, s);
  if (st != SN_OK) {
    snprintf(err, errlen, "out of memory resizing a %dx%d crop", cr.width, cr.height);
    return st;
  }
  if (cr.flip) mirror(out, cr.out_h, cr.out_w, channels);
  return SN_OK;
}

/* ---------------------------------------------------------------- encoders */

sn_status sn_image_encode_jpeg(const uint8_t *pix, int h, int w, int c, int quality, uint8_t **out,
                               size_t *n) {
  *out = NULL;
  *n = 0;
  if ((c != 1 && c != 3 && c != 4) || h <= 0 || w <= 0) return SN_ERR_INVALID;
  struct jpeg_compress_struct cinfo;
  jpeg_err jerr;
  unsigned char *volatile buf = NULL;
  unsigned long size = 0;
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = jpeg_on_error;
  jerr.pub.output_message = jpeg_quiet;
  if (setjmp(jerr.jb)) {
    jpeg_destroy_compress(&cinfo);
    free(buf);
    return SN_ERR_FORMAT;
  }
  jpeg_create_compress(&cinfo);
  unsigned char *b = NULL;
  jpeg_mem_dest(&cinfo, &b, &size);
  cinfo.image_width = (JDIMENSION)w;
  cinfo.image_height = (JDIMENSION)h;
  cinfo.input_components = c;
  cinfo.in_color_space = c == 4 ? JCS_CMYK : c == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)(pix + (size_t)cinfo.next_scanline * w * c);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  buf = b;
  jpeg_destroy_compress(&cinfo);
  *out = buf;
  *n = size;
  return SN_OK;
}

typedef struct png_dst {
  uint8_t *buf;
  size_t n, cap;
  int oom;
} png_dst;

static void png_write_mem(png_structp p, png_bytep data, size_t len) {
  png_dst *d = png_get_io_ptr(p);
  if (!grow(&d->buf, &d->cap, d->n + len)) {
    d->oom = 1;
    png_error(p, "out of memory");
  }
  memcpy(d->buf + d->n, data, len);
  d->n += len;
}
static void png_flush_mem(png_structp p) { (void)p; }

sn_status sn_image_encode_png(const uint8_t *pix, int h, int w, int c, uint8_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (c < 1 || c > 4 || h <= 0 || w <= 0) return SN_ERR_INVALID;
  char err[128];
  png_src src;
  memset(&src, 0, sizeof src);
  src.err = err;
  src.errlen = sizeof err;
  png_dst dst = {NULL, 0, 0, 0};
  png_structp p =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  if (!p) return SN_ERR_NOMEM;
  png_infop info = png_create_info_struct(p);
  if (!info || setjmp(src.jb)) {
    png_destroy_write_struct(&p, info ? &info : NULL);
    free(dst.buf);
    return SN_ERR_FORMAT;
  }
  static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                               PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(p, &dst, png_write_mem, png_flush_mem);
  png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, types[c], PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(p, info);
  for (int y = 0; y < h; ++y)
    png_write_row(p, (png_const_bytep)(pix + (size_t)y * w * c));
  png_write_end(p, NULL);
  png_destroy_write_struct(&p, &info);
  *out = dst.buf;
  *n = dst.n;
  return SN_OK;
}
