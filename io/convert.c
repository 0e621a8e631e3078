/* convert.c - converters to the dataset schema (docs/hdf5-schema.md): MNIST idx files, and image
 * folders or lists (io/source.c) raw or encoded, serial or collectively by all ranks into one
 * file; bad images fail the conversion or are left out and listed in /skipped. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io_impl.h"

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
static const char *const digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

void sn_convert_options_init(sn_convert_options *o) {
  memset(o, 0, sizeof *o);
  o->height = o->width = 224;
  o->channels = 3;
  o->resize = SN_RESIZE_BILINEAR;
  o->labels_from = SN_LABELS_AUTO;
  o->bad_images = SN_BAD_FAIL;
  o->threads = 1;
}

/* Rows per chunk: about 1 MiB of images, at least 1, at most 4096 and n. Depends only on the
 * image size (never on the rank count), so files are identical whatever the number of ranks. */
static int64_t auto_chunk(int64_t n, size_t row_bytes, int requested) {
  int64_t k = requested > 0 ? requested : (int64_t)((1u << 20) / (row_bytes ? row_bytes : 1));
  if (k < 1) k = 1;
  if (k > 4096 && requested <= 0) k = 4096;
  if (k > n) k = n;
  return k < 1 ? 1 : k;
}

/* Rank r's rows: a contiguous run of whole chunks of k rows. */
static void rank_rows(int64_t n, int64_t k, sn_comm *comm, int64_t *b, int64_t *e) {
  int64_t cb, ce;
  sn_shard_block((n + k - 1) / k, sn_comm_rank(comm), sn_comm_size(comm), &cb, &ce);
  *b = cb * k < n ? cb * k : n;
  *e = ce * k < n ? ce * k : n;
}

static void progress(const sn_convert_options *o, int64_t done, int64_t total) {
  if (o->progress) o->progress(o->progress_ctx, done, total);
}

/* ---------------------------------------------------------------- output file */

typedef struct out_file {
  const char *path;
  char tmp[4096];
  hid_t file, dxpl;
  sn_comm *comm;
} out_file;

/* Creates OUT.partial collectively. */
static sn_status out_create(out_file *o, const char *path, sn_comm *comm) {
  o->path = path;
  o->comm = comm;
  o->file = o->dxpl = -1;
  if (snprintf(o->tmp, sizeof o->tmp, "%s.partial", path) >= (int)sizeof o->tmp)
    return sn_error_set(SN_ERR_INVALID, "file %s: path too long", path);
  sn_status st = SN_OK;
  sn_h5_lock();
  hid_t fapl = sn_h5_fapl(comm, o->tmp);
  if (fapl < 0) {
    st = SN_ERR_IO; /* message set */
  } else {
    o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    char det[256] = "";
    if (o->file < 0) sn_h5_detail(det, sizeof det);
    H5Pclose(fapl);
    if (o->file < 0)
      st = sn_error_set(SN_ERR_IO, "file %s: cannot create: %s", o->tmp, det[0] ? det : "error");
  }
  o->dxpl = sn_h5_dxpl(comm, o->tmp); /* on failure the first write reports it */
  sn_h5_unlock();
  return sn_comm_agree(comm, st);
}

/* Closes the file collectively; on success renames it to the final path (rank 0), else
 * removes it. Returns the agreed status. */
static sn_status out_finish(out_file *o, sn_status st) {
  sn_h5_lock();
  if (o->dxpl >= 0) H5Pclose(o->dxpl);
  herr_t e = o->file >= 0 ? H5Fclose(o->file) : 0;
  sn_h5_unlock();
  if (st == SN_OK && e < 0) st = sn_error_set(SN_ERR_IO, "file %s: cannot close", o->tmp);
  st = sn_comm_agree(o->comm, st);
  sn_status r = SN_OK;
  if (sn_comm_rank(o->comm) == 0) {
    if (st == SN_OK) {
      if (rename(o->tmp, o->path) != 0)
        r = sn_error_set(SN_ERR_IO, "file %s: cannot rename from %s: %s", o->path, o->tmp,
                         strerror(errno));
    } else {
      remove(o->tmp);
    }
  }
  if (st != SN_OK) return st;
  return sn_comm_agree(o->comm, r);
}

/* /labels (n,) int32: rows [b, e) from lab (indexed from b). Collective. */
static sn_status write_labels(out_file *o, int64_t n, int64_t b, int64_t e, const int32_t *lab) {
  sn_h5_lock();
  hsize_t dims[1] = {(hsize_t)n};
  hid_t d;
  sn_status st =
      sn_h5_create_dataset(o->file, "labels", H5T_STD_I32LE, 1, dims, 1 << 16, 0, o->tmp, &d);
  if (st == SN_OK) st = sn_h5_write_rows(d, H5T_NATIVE_INT32, b, e - b, lab, o->dxpl, o->tmp);
  if (d >= 0) H5Dclose(d);
  sn_h5_unlock();
  return st;
}

/* ---------------------------------------------------------------- idx */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static sn_status gz_read_all(gzFile g, const char *path, void *buf, size_t n, const char *what) {
  size_t got = 0;
  while (got < n) {
    unsigned want = (unsigned)((n - got) > (1u << 30) ? (1u << 30) : (n - got));
    int r = gzread(g, (char *)buf + got, want);
    if (r < 0) {
      int code = 0;
      const char *m = gzerror(g, &code);
      return sn_error_set(SN_ERR_FORMAT, "file %s: corrupt gzip data: %s", path, m ? m : "?");
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  if (got < n)
    return sn_error_set(SN_ERR_FORMAT, "file %s: truncated: %zu of %zu %s bytes", path, got, n,
                        what);
  return SN_OK;
}

/* Reads an idx file of unsigned bytes with ndim dims: magic 0x0000080<ndim>. */
static sn_status read_idx(const char *path, int ndim, uint32_t *dims, uint8_t **data) {
  *data = NULL;
  struct stat sb;
  if (!path || stat(path, &sb) != 0)
    return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path ? path : "(null)",
                        strerror(errno));
  gzFile g = gzopen(path, "rb");
  if (!g) return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
  unsigned char hdr[16];
  sn_status st = gz_read_all(g, path, hdr, 4, "header");
  const uint32_t want = 0x00000800u | (uint32_t)ndim;
  if (st == SN_OK && be32(hdr) != want)
    st = sn_error_set(SN_ERR_FORMAT,
                      "file %s: bad idx magic 0x%08x (expected 0x%08x: unsigned bytes, %d dims)",
                      path, be32(hdr), want, ndim);
  if (st == SN_OK) st = gz_read_all(g, path, hdr + 4, 4 * (size_t)ndim, "header");
  size_t total = 1;
  for (int i = 0; st == SN_OK && i < ndim; ++i) {
    dims[i] = be32(hdr + 4 + 4 * i);
    const uint32_t lim = i == 0 ? (1u << 31) - 1 : 4096;
    if (dims[i] < 1 || dims[i] > lim || !sn_io_mul(total, dims[i], &total))
      st = sn_error_set(SN_ERR_FORMAT, "file %s: idx dimension %d is %u (accepted 1..%u)", path, i,
                        dims[i], lim);
  }
  /* The header's sizes are not trusted: the buffer grows with the data actually present, so a
   * small file declaring billions of images is "truncated", not an allocation failure. */
  uint8_t *buf = NULL;
  size_t have = 0, cap = 0;
  while (st == SN_OK && have < total) {
    size_t next = cap ? (cap * 2 < total ? cap * 2 : total)
                      : (total < ((size_t)64 << 20) ? total : ((size_t)64 << 20));
    uint8_t *nb = realloc(buf, next);
    if (!nb) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: %zu bytes of idx data", path, next);
      break;
    }
    buf = nb;
    cap = next;
    size_t want = cap - have;
    st = gz_read_all(g, path, buf + have, want, "data");
    if (st != SN_OK && have + want < total) /* name the whole declared size */
      st = sn_error_set(SN_ERR_FORMAT,
                        "file %s: truncated: the header declares %zu data bytes, the file "
                        "holds fewer",
                        path, total);
    have = cap;
  }
  gzclose(g);
  if (st != SN_OK) {
    free(buf);
    return st;
  }
  *data = buf;
  return SN_OK;
}

sn_status sn_convert_idx(const char *images_idx, const char *labels_idx, const char *out_path,
                         sn_comm *comm, const sn_convert_options *opt) {
  sn_convert_options defaults;
  if (!opt) {
    sn_convert_options_init(&defaults);
    opt = &defaults;
  }
  if (!out_path) return sn_error_set(SN_ERR_INVALID, "sn_convert_idx: no output path");
  uint32_t idims[3] = {0, 0, 0}, ldims[1] = {0};
  uint8_t *img = NULL, *lab8 = NULL;
  int32_t *lab = NULL;
  sn_status st = read_idx(images_idx, 3, idims, &img);
  if (st == SN_OK) st = read_idx(labels_idx, 1, ldims, &lab8);
  if (st == SN_OK && idims[0] != ldims[0])
    st = sn_error_set(SN_ERR_SHAPE, "file %s has %u images but file %s has %u labels", images_idx,
                      idims[0], labels_idx, ldims[0]);
  const int64_t n = idims[0];
  if (st == SN_OK && !(lab = malloc((size_t)n * sizeof *lab)))
    st = sn_error_set(SN_ERR_NOMEM, "file %s: %lld labels", labels_idx, (long long)n);
  for (int64_t i = 0; st == SN_OK && i < n; ++i) {
    if (lab8[i] > 9)
      st = sn_error_set(SN_ERR_FORMAT, "file %s: row %lld has label %u, outside [0, 10)",
                        labels_idx, (long long)i, lab8[i]);
    else
      lab[i] = lab8[i];
  }
  free(lab8);
  st = sn_comm_agree(comm, st);
  if (st != SN_OK) {
    free(img);
    free(lab);
    return st;
  }
  const size_t row = (size_t)idims[1] * idims[2];
  const int64_t k = auto_chunk(n, row, opt->chunk_rows);
  int64_t b, e;
  rank_rows(n, k, comm, &b, &e);
  out_file o;
  st = out_create(&o, out_path, comm);
  if (st != SN_OK) {
    free(img);
    free(lab);
    return st;
  }
  progress(opt, 0, e - b);
  sn_h5_lock();
  hsize_t dims[4] = {(hsize_t)n, idims[1], idims[2], 1};
  hid_t d;
  st = sn_h5_create_dataset(o.file, "images", H5T_STD_U8LE, 4, dims, (hsize_t)k, opt->compression,
                            o.tmp, &d);
  if (st == SN_OK)
    st = sn_h5_write_rows(d, H5T_NATIVE_UINT8, b, e - b, img + b * row, o.dxpl, o.tmp);
  if (d >= 0) H5Dclose(d);
  sn_h5_unlock();
  if (st == SN_OK) st = write_labels(&o, n, b, e, lab + b);
  if (st == SN_OK) {
    sn_h5_lock();
    st = sn_h5_write_str_dataset(o.file, "classes", opt->fashion ? fashion_names : digit_names, 10,
                                 comm, o.tmp);
    sn_h5_unlock();
  }
  if (st == SN_OK) progress(opt, e - b, e - b);
  free(img);
  free(lab);
  return out_finish(&o, st);
}

/* ---------------------------------------------------------------- image folders and lists */

/* Rows are the listed images kept, in listing order. Work goes in rounds: in round j rank r takes
 * the r-th slab of `per` consecutive inputs of the window [j * size * per, ...); after decoding
 * (raw) or reading and checking (encoded) its slab, the ranks exchange how many images each kept,
 * so that every kept image lands right after those of the lower ranks: the file does not depend
 * on the rank count, with or without skipped images. */
typedef struct img_conv {
  sn_dataset *ds; /* the listing, decoder and labels */
  out_file *o;
  const sn_convert_options *opt;
  int64_t n, per, rounds; /* inputs, slab size, rounds */
  int64_t out_next;       /* rows written by the previous rounds */
  int64_t bytes_next;     /* encoded: bytes written by the previous rounds */
  int64_t *skip_rows;     /* this rank's skipped inputs and reasons */
  char **skip_why;
  int64_t nskip, skip_cap;
} img_conv;

static sn_status note_skip(img_conv *c, int64_t row, const char *why) {
  if (c->nskip == c->skip_cap) {
    const int64_t cap = c->skip_cap ? 2 * c->skip_cap : 64;
    int64_t *r = realloc(c->skip_rows, (size_t)cap * sizeof *r);
    if (r) c->skip_rows = r;
    char **w = realloc(c->skip_why, (size_t)cap * sizeof *w);
    if (w) c->skip_why = w;
    if (!r || !w) return sn_error_set(SN_ERR_NOMEM, "file %s: skipped list", c->o->tmp);
    c->skip_cap = cap;
  }
  c->skip_rows[c->nskip] = row;
  if (!(c->skip_why[c->nskip] = strdup(why)))
    return sn_error_set(SN_ERR_NOMEM, "file %s: skipped list", c->o->tmp);
  c->nskip++;
  return SN_OK;
}

/* This rank's slab of round j: inputs [*b, *e). */
static void slab(const img_conv *c, int64_t j, int64_t *b, int64_t *e) {
  const int size = sn_comm_size(c->o->comm), rank = sn_comm_rank(c->o->comm);
  *b = (j * size + rank) * c->per;
  *e = *b + c->per;
  if (*b > c->n) *b = c->n;
  if (*e > c->n) *e = c->n;
}

/* Where this rank's `kept` rows (and `bytes`) of a round go: after those of the lower ranks.
 * Returns the rows and bytes of the round in all. Collective. */
static sn_status place_round(img_conv *c, int64_t kept, int64_t bytes, int64_t *row, int64_t *byte,
                             int64_t *rows_all, int64_t *bytes_all) {
  sn_comm *comm = c->o->comm;
  const int size = sn_comm_size(comm), rank = sn_comm_rank(comm);
  int64_t mine[2] = {kept, bytes};
  int64_t *all = malloc((size_t)size * sizeof mine);
  sn_status st = all ? SN_OK : sn_error_set(SN_ERR_NOMEM, "file %s: %d ranks", c->o->tmp, size);
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_allgather(comm, mine, all, sizeof mine);
  *row = c->out_next;
  *byte = c->bytes_next;
  *rows_all = *bytes_all = 0;
  for (int r = 0; st == SN_OK && r < size; ++r) {
    if (r < rank) {
      *row += all[2 * r];
      *byte += all[2 * r + 1];
    }
    *rows_all += all[2 * r];
    *bytes_all += all[2 * r + 1];
  }
  free(all);
  return st;
}

/* Raw form: every rank decodes its slab through the reader (its threads, bad images skipped or
 * failing as the reader does) and the kept rows are written collectively. */
static sn_status images_raw(img_conv *c, int64_t chunk) {
  const sn_convert_options *opt = c->opt;
  const int h = opt->height, w = opt->width, ch = opt->channels;
  const size_t row = (size_t)h * w * ch;
  sn_status st = sn_dataset_set_channels(c->ds, ch);
  if (st == SN_OK) st = sn_dataset_set_decode(c->ds, h, w, opt->resize, opt->resize_shorter);
  /* this rank's inputs, slab after slab */
  int64_t nmine = 0;
  for (int64_t j = 0; j < c->rounds; ++j) {
    int64_t b, e;
    slab(c, j, &b, &e);
    nmine += e - b;
  }
  int64_t *mine = malloc((nmine ? (size_t)nmine : 1) * sizeof *mine);
  uint8_t *buf = malloc((size_t)c->per * row);
  if (st == SN_OK && (!mine || !buf))
    st = sn_error_set(SN_ERR_NOMEM, "file %s: conversion buffer", c->o->tmp);
  for (int64_t j = 0, k = 0; mine && j < c->rounds; ++j) {
    int64_t b, e;
    slab(c, j, &b, &e);
    for (int64_t i = b; i < e; ++i)
      mine[k++] = i;
  }
  sn_reader *rd = NULL;
  sn_reader_options ro;
  sn_reader_options_init(&ro);
  ro.batch = (int)c->per;
  ro.prefetch = 1;
  ro.threads = opt->threads > 0 ? opt->threads : 1;
  ro.bad_images = opt->bad_images;
  if (st == SN_OK && nmine > 0) st = sn_reader_create(c->ds, mine, nmine, &ro, &rd);
  st = sn_comm_agree(c->o->comm, st);
  hid_t d = -1;
  if (st == SN_OK) {
    sn_h5_lock();
    hsize_t dims[4] = {(hsize_t)c->n, (hsize_t)h, (hsize_t)w, (hsize_t)ch};
    st = sn_h5_create_dataset_max(c->o->file, "images", H5T_STD_U8LE, 4, dims, (hsize_t)c->n,
                                  (hsize_t)chunk, opt->compression, c->o->tmp, &d);
    sn_h5_unlock();
    st = sn_comm_agree(c->o->comm, st);
  }
  int64_t done = 0;
  for (int64_t j = 0; st == SN_OK && j < c->rounds; ++j) {
    int64_t b, e, kept = 0;
    slab(c, j, &b, &e);
    sn_batch bt;
    memset(&bt, 0, sizeof bt);
    if (e > b) st = sn_reader_next_batch(rd, &bt);
    if (st == SN_OK && bt.inputs != (int)(e - b))
      st = sn_error_set(SN_ERR_INVALID, "file %s: the reader gave %d of %lld inputs", c->o->tmp,
                        bt.inputs, (long long)(e - b));
    for (int i = 0; st == SN_OK && i < bt.skipped; ++i)
      st = note_skip(c, bt.skipped_rows[i], bt.skipped_reasons[i]);
    if (st == SN_OK) {
      kept = bt.count;
      for (size_t i = 0; i < (size_t)kept * row; ++i)
        buf[i] = (uint8_t)bt.x[i];
    }
    st = sn_comm_agree(c->o->comm, st);
    int64_t at, byte, rows_all, bytes_all;
    if (st == SN_OK) st = place_round(c, kept, 0, &at, &byte, &rows_all, &bytes_all);
    if (st != SN_OK) break;
    sn_h5_lock();
    st = sn_h5_write_rows(d, H5T_NATIVE_UINT8, at, kept, buf, c->o->dxpl, c->o->tmp);
    sn_h5_unlock();
    st = sn_comm_agree(c->o->comm, st);
    c->out_next += rows_all;
    done += e - b;
    progress(opt, done, nmine);
  }
  sn_reader_destroy(rd);
  if (st == SN_OK) {
    sn_h5_lock();
    hsize_t dims[4] = {(hsize_t)c->out_next, (hsize_t)h, (hsize_t)w, (hsize_t)ch};
    if (H5Dset_extent(d, dims) < 0)
      st = sn_error_set(SN_ERR_IO, "file %s: dataset /images: cannot set the row count", c->o->tmp);
    sn_h5_unlock();
    st = sn_comm_agree(c->o->comm, st);
  }
  sn_h5_lock();
  if (d >= 0) H5Dclose(d);
  sn_h5_unlock();
  free(mine);
  free(buf);
  return st;
}

/* Encoded form: each rank reads its slab's files and checks their headers; the kept files' bytes
 * are appended to /encoded and their offsets written, round by round. */
static sn_status images_encoded(img_conv *c) {
  const sn_convert_options *opt = c->opt;
  sn_comm *comm = c->o->comm;
  const sn_dataset *ds = c->ds;
  sn_status st = SN_OK;
  hid_t de = -1, dof = -1;
  sn_h5_lock();
  hsize_t edims[1] = {0}, odims[1] = {(hsize_t)c->n + 1};
  st = sn_h5_create_dataset_max(c->o->file, "encoded", H5T_STD_U8LE, 1, edims, H5S_UNLIMITED,
                                1 << 20, 0, c->o->tmp, &de);
  /* whatever happened to /encoded: creation is collective, every rank makes the same calls */
  sn_status sto = sn_h5_create_dataset_max(c->o->file, "offsets", H5T_STD_I64LE, 1, odims, odims[0],
                                           1 << 16, 0, c->o->tmp, &dof);
  if (st == SN_OK) st = sto;
  const int64_t attrs[3] = {opt->height, opt->width, opt->channels};
  const char *names[3] = {"height", "width", "channels"};
  for (int i = 0; st == SN_OK && i < 3; ++i)
    st = sn_h5_write_int_attr(de, names[i], attrs[i], c->o->tmp);
  sn_h5_unlock();
  st = sn_comm_agree(comm, st);
  uint8_t *buf = NULL;
  size_t cap = 0;
  sn_decoder dec;
  memset(&dec, 0, sizeof dec);
  int64_t *off = malloc((size_t)(c->per + 1) * sizeof *off), nmine = 0, done = 0;
  if (!off) st = sn_error_set(SN_ERR_NOMEM, "file %s: offsets", c->o->tmp);
  st = sn_comm_agree(comm, st);
  for (int64_t j = 0; j < c->rounds; ++j) {
    int64_t b, e;
    slab(c, j, &b, &e);
    nmine += e - b;
  }
  for (int64_t j = 0; st == SN_OK && j < c->rounds; ++j) {
    int64_t b, e, kept = 0;
    size_t used = 0;
    slab(c, j, &b, &e);
    for (int64_t i = b; st == SN_OK && i < e; ++i) {
      char path[4096], why[512];
      size_t n = 0;
      int ih, iw;
      sn_status fs = sn_listing_path(&ds->src, i, path, sizeof path)
                         ? SN_OK
                         : sn_error_set(SN_ERR_IO, "file %s: path too long", ds->src.names[i]);
      if (fs == SN_OK) {
        fs = sn_read_image_file(path, &dec, &n, why, sizeof why);
        if (fs == SN_OK) fs = sn_image_probe(dec.file, n, &ih, &iw, why, sizeof why);
      }
      if (fs == SN_OK) {
        if (used + n > cap) {
          size_t nc = 2 * (used + n);
          uint8_t *p = realloc(buf, nc);
          if (!p) {
            st = sn_error_set(SN_ERR_NOMEM, "file %s: %zu bytes", c->o->tmp, nc);
            break;
          }
          buf = p;
          cap = nc;
        }
        memcpy(buf + used, dec.file, n);
        off[kept++] = (int64_t)used;
        used += n;
      } else if ((fs == SN_ERR_IO || fs == SN_ERR_FORMAT) && opt->bad_images == SN_BAD_SKIP) {
        st = note_skip(c, i, why);
      } else {
        st = sn_error_set(fs, "file %s: %s", path, why);
      }
    }
    st = sn_comm_agree(comm, st);
    int64_t at, byte, rows_all, bytes_all;
    if (st == SN_OK) st = place_round(c, kept, (int64_t)used, &at, &byte, &rows_all, &bytes_all);
    if (st != SN_OK) break;
    for (int64_t i = 0; i < kept; ++i)
      off[i] += byte;
    sn_h5_lock();
    hsize_t grown[1] = {(hsize_t)(c->bytes_next + bytes_all)};
    if (H5Dset_extent(de, grown) < 0)
      st = sn_error_set(SN_ERR_IO, "file %s: dataset /encoded: cannot grow", c->o->tmp);
    if (st == SN_OK)
      st = sn_h5_write_rows(de, H5T_NATIVE_UINT8, byte, (int64_t)used, buf, c->o->dxpl, c->o->tmp);
    if (st == SN_OK)
      st = sn_h5_write_rows(dof, H5T_NATIVE_INT64, at, kept, off, c->o->dxpl, c->o->tmp);
    sn_h5_unlock();
    st = sn_comm_agree(comm, st);
    c->out_next += rows_all;
    c->bytes_next += bytes_all;
    done += e - b;
    progress(opt, done, nmine);
  }
  /* the end offset, and /offsets cut to the rows kept */
  if (st == SN_OK) {
    const int64_t end = c->bytes_next;
    const int root = sn_comm_rank(comm) == 0;
    sn_h5_lock();
    hsize_t dims[1] = {(hsize_t)c->out_next + 1};
    if (H5Dset_extent(dof, dims) < 0)
      st =
          sn_error_set(SN_ERR_IO, "file %s: dataset /offsets: cannot set the row count", c->o->tmp);
    if (st == SN_OK)
      st = sn_h5_write_rows(dof, H5T_NATIVE_INT64, root ? c->out_next : 0, root ? 1 : 0, &end,
                            c->o->dxpl, c->o->tmp);
    sn_h5_unlock();
    st = sn_comm_agree(comm, st);
  }
  sn_h5_lock();
  if (de >= 0) H5Dclose(de);
  if (dof >= 0) H5Dclose(dof);
  sn_h5_unlock();
  free(buf);
  free(off);
  sn_decoder_free(&dec);
  return st;
}

/* Every rank's skipped inputs and reasons, on every rank, sorted by input. Collective. */
static sn_status share_skipped(img_conv *c, int64_t **rows, char ***why, int64_t *n) {
  sn_comm *comm = c->o->comm;
  const int size = sn_comm_size(comm), rank = sn_comm_rank(comm);
  *rows = NULL;
  *why = NULL;
  *n = 0;
  int64_t *counts = malloc((size_t)size * sizeof *counts);
  sn_status st = counts ? SN_OK : sn_error_set(SN_ERR_NOMEM, "skipped list");
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_allgather(comm, &c->nskip, counts, sizeof c->nskip);
  int64_t total = 0;
  for (int r = 0; st == SN_OK && r < size; ++r)
    total += counts[r];
  if (st == SN_OK) {
    *rows = malloc((total ? (size_t)total : 1) * sizeof **rows);
    *why = calloc(total ? (size_t)total : 1, sizeof **why);
    if (!*rows || !*why) st = sn_error_set(SN_ERR_NOMEM, "skipped list");
  }
  st = sn_comm_agree(comm, st);
  /* rank r's entries in turn: its rows, then its reasons as one NUL-separated blob */
  int64_t at = 0;
  for (int r = 0; st == SN_OK && r < size; ++r) {
    if (counts[r] == 0) continue;
    int64_t len = 0;
    char *blob = NULL;
    if (r == rank) {
      memcpy(*rows + at, c->skip_rows, (size_t)counts[r] * sizeof **rows);
      for (int64_t i = 0; i < c->nskip; ++i)
        len += (int64_t)strlen(c->skip_why[i]) + 1;
    }
    st = sn_comm_bcast(comm, *rows + at, (size_t)counts[r] * sizeof **rows, r);
    if (st == SN_OK) st = sn_comm_bcast(comm, &len, sizeof len, r);
    if (st == SN_OK && !(blob = malloc((size_t)len))) st = sn_error_set(SN_ERR_NOMEM, "skipped");
    st = sn_comm_agree(comm, st);
    if (st == SN_OK && r == rank) {
      char *p = blob;
      for (int64_t i = 0; i < c->nskip; ++i)
        p = stpcpy(p, c->skip_why[i]) + 1;
    }
    if (st == SN_OK) st = sn_comm_bcast(comm, blob, (size_t)len, r);
    const char *p = blob;
    for (int64_t i = 0; st == SN_OK && i < counts[r]; ++i, p += strlen(p) + 1)
      if (!((*why)[at + i] = strdup(p))) st = sn_error_set(SN_ERR_NOMEM, "skipped");
    free(blob);
    at += counts[r];
  }
  free(counts);
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) {
    /* insertion sort by input (bad images are few) */
    for (int64_t i = 1; i < total; ++i)
      for (int64_t j = i; j > 0 && (*rows)[j] < (*rows)[j - 1]; --j) {
        const int64_t t = (*rows)[j];
        (*rows)[j] = (*rows)[j - 1];
        (*rows)[j - 1] = t;
        char *w = (*why)[j];
        (*why)[j] = (*why)[j - 1];
        (*why)[j - 1] = w;
      }
    *n = total;
  } else {
    free(*rows);
    sn_h5_free_strs(*why, total);
    *rows = NULL;
    *why = NULL;
  }
  return st;
}

/* /labels, /classes, /filenames of the rows kept, /skipped and the source attributes.
 * Collective. */
static sn_status images_tail(img_conv *c, const int64_t *srows, char **swhy, int64_t ns) {
  const sn_dataset *ds = c->ds;
  const sn_listing *l = &ds->src;
  const int64_t kept = c->n - ns;
  const char **names = malloc((kept ? (size_t)kept : 1) * sizeof *names);
  const char **snames = malloc((ns ? (size_t)ns : 1) * sizeof *snames);
  int32_t *labels = ds->labels ? malloc((kept ? (size_t)kept : 1) * sizeof *labels) : NULL;
  sn_status st = names && snames && (labels || !ds->labels)
                     ? SN_OK
                     : sn_error_set(SN_ERR_NOMEM, "file %s: names", c->o->tmp);
  for (int64_t i = 0, k = 0, j = 0; st == SN_OK && i < c->n; ++i) {
    if (j < ns && srows[j] == i) {
      snames[j++] = l->names[i];
      continue;
    }
    names[k] = l->names[i];
    if (labels) labels[k] = ds->labels[i];
    ++k;
  }
  st = sn_comm_agree(c->o->comm, st);
  if (st == SN_OK && labels) {
    const int root = sn_comm_rank(c->o->comm) == 0;
    st = sn_comm_agree(c->o->comm, write_labels(c->o, kept, 0, root ? kept : 0, labels));
  }
  sn_h5_lock();
  if (st == SN_OK && ds->classes)
    st = sn_h5_write_str_dataset(c->o->file, "classes", (const char *const *)ds->classes,
                                 ds->n_classes, c->o->comm, c->o->tmp);
  if (st == SN_OK)
    st = sn_h5_write_str_dataset(c->o->file, "filenames", names, kept, c->o->comm, c->o->tmp);
  hid_t d = -1;
  hsize_t dims[1] = {(hsize_t)ns};
  if (st == SN_OK)
    st = sn_h5_create_dataset_max(c->o->file, "skipped/index", H5T_STD_I64LE, 1, dims,
                                  H5S_UNLIMITED, 4096, 0, c->o->tmp, &d);
  const int root = sn_comm_rank(c->o->comm) == 0;
  if (st == SN_OK)
    st = sn_h5_write_rows(d, H5T_NATIVE_INT64, 0, root ? ns : 0, srows, c->o->dxpl, c->o->tmp);
  if (d >= 0) H5Dclose(d);
  if (st == SN_OK)
    st = sn_h5_write_str_dataset(c->o->file, "skipped/filename", snames, ns, c->o->comm, c->o->tmp);
  if (st == SN_OK)
    st = sn_h5_write_str_dataset(c->o->file, "skipped/reason", (const char *const *)swhy, ns,
                                 c->o->comm, c->o->tmp);
  static const char *const kinds[3] = {"hdf5", "folder", "list"};
  if (st == SN_OK) st = sn_h5_write_str_attr(c->o->file, "source_kind", kinds[l->kind], c->o->tmp);
  if (st == SN_OK)
    st = sn_h5_write_str_attr(c->o->file, "source", l->origin[0] ? l->origin : "(image files)",
                              c->o->tmp);
  if (st == SN_OK) st = sn_h5_write_str_attr(c->o->file, "labels_from", l->labels_from, c->o->tmp);
  sn_h5_unlock();
  free(names);
  free(snames);
  free(labels);
  return sn_comm_agree(c->o->comm, st);
}

sn_status sn_convert_images(const char *const *paths, int npaths, const char *out_path,
                            sn_comm *comm, const sn_convert_options *opt, int64_t *skipped) {
  sn_convert_options defaults;
  if (!opt) {
    sn_convert_options_init(&defaults);
    opt = &defaults;
  }
  if (skipped) *skipped = 0;
  if (!comm) comm = sn_comm_serial();
  if (!paths || npaths < 1 || !out_path)
    return sn_error_set(SN_ERR_INVALID, "sn_convert_images: no input or output path");
  const char *what = paths[0] ? paths[0] : "(null)";
  if (opt->height < 1 || opt->width < 1 || opt->height > SN_IO_MAX_SIDE ||
      opt->width > SN_IO_MAX_SIDE || (opt->channels != 1 && opt->channels != 3) ||
      opt->resize_shorter < 0 || opt->threads < 0 ||
      (opt->bad_images != SN_BAD_FAIL && opt->bad_images != SN_BAD_SKIP) ||
      (!opt->encoded && opt->resize_shorter > 0 &&
       (opt->height > opt->resize_shorter || opt->width > opt->resize_shorter)))
    return sn_error_set(SN_ERR_INVALID, "%s: target %dx%dx%d (resize shorter %d) is invalid", what,
                        opt->height, opt->width, opt->channels, opt->resize_shorter);
  sn_source_options so;
  sn_source_options_init(&so);
  so.labels_from = opt->labels_from;
  so.channels = opt->channels;
  img_conv c;
  memset(&c, 0, sizeof c);
  c.opt = opt;
  sn_status st = sn_dataset_open_sources(paths, npaths, &so, comm, &c.ds);
  if (st == SN_OK && c.ds->src.kind == SN_SOURCE_HDF5)
    st = sn_error_set(SN_ERR_INVALID,
                      "%s: an HDF5 dataset already (convert takes image folders "
                      "and lists)",
                      what);
  st = sn_comm_agree(comm, st);
  if (st != SN_OK) {
    sn_dataset_close(c.ds);
    return st;
  }
  c.n = c.ds->info.n;
  const size_t row = (size_t)opt->height * opt->width * opt->channels;
  const int64_t k = auto_chunk(c.n, row, opt->chunk_rows);
  c.per = opt->encoded ? 64 : k * (k >= 64 ? 1 : (64 + k - 1) / k);
  const int64_t win = c.per * sn_comm_size(comm);
  c.rounds = (c.n + win - 1) / win;
  out_file o;
  st = out_create(&o, out_path, comm);
  c.o = &o;
  if (st == SN_OK) {
    progress(opt, 0, 1);
    st = opt->encoded ? images_encoded(&c) : images_raw(&c, k);
    int64_t *srows = NULL, ns = 0;
    char **swhy = NULL;
    if (st == SN_OK) st = share_skipped(&c, &srows, &swhy, &ns);
    if (st == SN_OK && ns == c.n)
      st = sn_error_set(SN_ERR_FORMAT, "%s: all %lld images are bad (see the first: %s)", what,
                        (long long)ns, ns ? swhy[0] : "");
    if (st == SN_OK) st = images_tail(&c, srows, swhy, ns);
    if (st == SN_OK && skipped) *skipped = ns;
    free(srows);
    sn_h5_free_strs(swhy, ns);
    st = out_finish(&o, st);
  }
  free(c.skip_rows);
  sn_h5_free_strs(c.skip_why, c.nskip);
  sn_dataset_close(c.ds);
  return st;
}

sn_status sn_convert_folder(const char *root, const char *out_path, sn_comm *comm,
                            const sn_convert_options *opt) {
  if (!root) return sn_error_set(SN_ERR_INVALID, "sn_convert_folder: NULL path");
  struct stat sb;
  if (stat(root, &sb) != 0)
    return sn_error_set(SN_ERR_IO, "folder %s: cannot open: %s", root, strerror(errno));
  if (!S_ISDIR(sb.st_mode)) return sn_error_set(SN_ERR_INVALID, "folder %s: not a folder", root);
  return sn_convert_images(&root, 1, out_path, comm, opt, NULL);
}
