/* dataset.c - reading image datasets (docs/hdf5-schema.md): validation at open, row reads as
 * coalesced hyperslabs, decoding of the encoded form (io/image.c). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_impl.h"

/* ---------------------------------------------------------------- opening */

/* 1-D or N-D shape of a dataset; returns rank or -1. */
static int ds_shape(hid_t d, hsize_t *dims, int max) {
  hid_t s = H5Dget_space(d);
  if (s < 0) return -1;
  int r = H5Sget_simple_extent_ndims(s);
  if (r >= 0 && r <= max) H5Sget_simple_extent_dims(s, dims, NULL);
  H5Sclose(s);
  return r;
}

static const char *type_name(hid_t t, char *buf, size_t n) {
  H5T_class_t cl = H5Tget_class(t);
  size_t sz = H5Tget_size(t);
  if (cl == H5T_INTEGER)
    snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8);
  else if (cl == H5T_FLOAT)
    snprintf(buf, n, "float%zu", sz * 8);
  else if (cl == H5T_STRING)
    snprintf(buf, n, "string");
  else
    snprintf(buf, n, "class %d size %zu", (int)cl, sz);
  return buf;
}

static hid_t open_dataset(sn_dataset *ds, const char *name, sn_status *st) {
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  hid_t d = H5Dopen2(ds->file, name, dapl);
  H5Pclose(dapl);
  if (d < 0) *st = sn_error_set(SN_ERR_FORMAT, "file %s: /%s is not a dataset", ds->path, name);
  return d;
}

/* Sizes the chunk cache of an open dataset (reopens it): a few chunks when they are filtered
 * (a compressed chunk is decoded whole), none when they are not, so that HDF5 reads just the
 * selected bytes instead of whole chunks (shuffled rows touch a different chunk each). */
static hid_t with_chunk_cache(sn_dataset *ds, hid_t d, const char *name) {
  hid_t dcpl = H5Dget_create_plist(d);
  hsize_t chunk[4] = {0, 0, 0, 0};
  int r = H5Pget_layout(dcpl) == H5D_CHUNKED ? H5Pget_chunk(dcpl, 4, chunk) : -1;
  const int filtered = H5Pget_nfilters(dcpl) > 0;
  H5Pclose(dcpl);
  if (r <= 0) return d;
  hid_t t = H5Dget_type(d);
  double bytes = (double)H5Tget_size(t);
  H5Tclose(t);
  for (int i = 0; i < r; ++i)
    bytes *= (double)chunk[i];
  double cache = 4 * bytes;
  if (cache < (1 << 20)) cache = 1 << 20;
  if (cache > (double)(256 << 20)) cache = (double)(256 << 20);
  if (!filtered) cache = 0;
  /* HDF5 keeps the first open handle's chunk cache for a dataset that is open twice: close it
   * before reopening, or the settings are ignored (every shuffled row then read its whole
   * chunk). */
  H5Dclose(d);
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  H5Pset_chunk_cache(dapl, 521, (size_t)cache, 0.75);
  hid_t d2 = H5Dopen2(ds->file, name, dapl);
  H5Pclose(dapl);
  if (d2 < 0) d2 = H5Dopen2(ds->file, name, H5P_DEFAULT);
  return d2;
}

/* Every declared row must be stored: a dataset that declares more rows than the file holds
 * (unwritten chunks, or a contiguous layout larger than its storage) is rejected before anything
 * is sized from its row count. */
static sn_status check_rows_stored(const sn_dataset *ds, hid_t d, const hsize_t dims[4]) {
  if (dims[0] == 0) return SN_OK;
  hid_t dcpl = H5Dget_create_plist(d);
  if (dcpl < 0) return SN_OK;
  H5D_layout_t lay = H5Pget_layout(dcpl);
  sn_status st = SN_OK;
  if (lay == H5D_CHUNKED) {
    hsize_t cd[4] = {1, 1, 1, 1};
    if (H5Pget_chunk(dcpl, 4, cd) == 4 && cd[0] && cd[1] && cd[2] && cd[3]) {
      hsize_t blocks = (dims[0] + cd[0] - 1) / cd[0];
      hsize_t per = ((dims[1] + cd[1] - 1) / cd[1]) * ((dims[2] + cd[2] - 1) / cd[2]) *
                    ((dims[3] + cd[3] - 1) / cd[3]);
      hsize_t nch = 0;
      hid_t space = H5Dget_space(d);
      herr_t got = space >= 0 ? H5Dget_num_chunks(d, space, &nch) : -1;
      if (space >= 0) H5Sclose(space);
      if (got < 0) {
        /* Without a chunk count: unfiltered chunks must hold every byte; filtered ones at least
         * something. */
        double stored = (double)H5Dget_storage_size(d);
        double need = (double)dims[0] * (double)dims[1] * (double)dims[2] * (double)dims[3] *
                      (double)ds->elem;
        int filtered = H5Pget_nfilters(dcpl) > 0;
        nch = (filtered ? stored > 0 : stored >= need)
                  ? blocks * per
                  : (hsize_t)(stored / ((double)cd[0] * cd[1] * cd[2] * cd[3] * ds->elem));
      }
      if (nch < blocks * per)
        st = sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset /images declares %llu rows but stores only %llu of its "
                          "%llu chunks (rows never written, or a damaged file)",
                          ds->path, (unsigned long long)dims[0], (unsigned long long)nch,
                          (unsigned long long)(blocks * per));
    }
  } else if (lay == H5D_CONTIGUOUS) {
    double need =
        (double)dims[0] * (double)dims[1] * (double)dims[2] * (double)dims[3] * (double)ds->elem;
    if ((double)H5Dget_storage_size(d) < need)
      st = sn_error_set(
          SN_ERR_FORMAT, "file %s: dataset /images declares %llu rows but stores only %llu bytes",
          ds->path, (unsigned long long)dims[0], (unsigned long long)H5Dget_storage_size(d));
  }
  H5Pclose(dcpl);
  return st;
}

static sn_status open_images(sn_dataset *ds) {
  sn_status st = SN_OK;
  hid_t d = open_dataset(ds, "images", &st);
  if (d < 0) return st;
  ds->images = d;
  hsize_t dims[4];
  int r = ds_shape(d, dims, 4);
  if (r != 4)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /images has rank %d, expected 4 (N,H,W,C)",
                        ds->path, r);
  hid_t t = H5Dget_type(d);
  char tn[64];
  type_name(t, tn, sizeof tn);
  const H5T_class_t cl = H5Tget_class(t);
  const size_t sz = H5Tget_size(t);
  const int sign = cl == H5T_INTEGER ? (int)H5Tget_sign(t) : -1;
  H5Tclose(t);
  if (cl == H5T_INTEGER && sz == 1 && sign == H5T_SGN_NONE) {
    ds->info.dtype = SN_U8;
    ds->elem = 1;
  } else if (cl == H5T_FLOAT && sz == 4) {
    ds->info.dtype = SN_F32;
    ds->elem = 4;
  } else {
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /images has type %s, expected uint8 or float32", ds->path,
                        tn);
  }
  if (dims[0] > (hsize_t)SN_IO_MAX_ROWS || dims[1] < 1 || dims[2] < 1 || dims[1] > SN_IO_MAX_SIDE ||
      dims[2] > SN_IO_MAX_SIDE || dims[3] < 1 || dims[3] > 4 ||
      (double)dims[1] * dims[2] * dims[3] * ds->elem > (double)SN_IO_MAX_ROW_BYTES)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /images has shape (%llu,%llu,%llu,%llu) outside the "
                        "accepted range (H, W <= %d, C in 1..4)",
                        ds->path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                        (unsigned long long)dims[2], (unsigned long long)dims[3], SN_IO_MAX_SIDE);
  sn_status cov = check_rows_stored(ds, d, dims);
  if (cov != SN_OK) return cov;
  ds->info.n = (int64_t)dims[0];
  ds->info.h = ds->stored_h = (int)dims[1];
  ds->info.w = ds->stored_w = (int)dims[2];
  ds->info.c = (int)dims[3];
  ds->stored_row_bytes = (size_t)dims[1] * dims[2] * dims[3] * ds->elem;
  ds->images = with_chunk_cache(ds, d, "images");
  return SN_OK;
}

/* Reads a 1-D integer dataset of `n` entries as int64 into a new buffer. */
static sn_status read_int_1d(sn_dataset *ds, const char *name, int64_t want_n, const char *what,
                             int64_t **out) {
  *out = NULL;
  sn_status st = SN_OK;
  hid_t d = open_dataset(ds, name, &st);
  if (d < 0) return st;
  hsize_t dims[1];
  int r = ds_shape(d, dims, 1);
  hid_t t = H5Dget_type(d);
  char tn[64];
  type_name(t, tn, sizeof tn);
  const int is_int = H5Tget_class(t) == H5T_INTEGER;
  H5Tclose(t);
  if (r != 1) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s has rank %d, expected 1", ds->path, name,
                      r);
  } else if (!is_int) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s has type %s, expected an integer type",
                      ds->path, name, tn);
  } else if ((int64_t)dims[0] != want_n) {
    st = sn_error_set(SN_ERR_SHAPE, "file %s: %s but /%s has %llu entries", ds->path, what, name,
                      (unsigned long long)dims[0]);
  } else {
    int64_t *buf = malloc((want_n ? (size_t)want_n : 1) * sizeof *buf);
    if (!buf) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: dataset /%s: %lld entries", ds->path, name,
                        (long long)want_n);
    } else if (want_n > 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
      char det[256];
      free(buf);
      st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s: cannot read: %s", ds->path, name,
                        sn_h5_detail(det, sizeof det));
    } else {
      *out = buf;
    }
  }
  H5Dclose(d);
  return st;
}

static sn_status open_encoded(sn_dataset *ds) {
  sn_status st = SN_OK;
  hid_t d = open_dataset(ds, "encoded", &st);
  if (d < 0) return st;
  ds->encoded = d;
  hsize_t dims[1];
  int r = ds_shape(d, dims, 1);
  hid_t t = H5Dget_type(d);
  char tn[64];
  type_name(t, tn, sizeof tn);
  const int ok_type = H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1;
  H5Tclose(t);
  if (r != 1)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /encoded has rank %d, expected 1",
                        ds->path, r);
  if (!ok_type)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /encoded has type %s, expected uint8",
                        ds->path, tn);
  ds->encoded_bytes = (int64_t)dims[0];
  if (!sn_h5_exists(ds->file, "offsets"))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset /offsets not found (needed by /encoded)",
                        ds->path);
  hid_t od = open_dataset(ds, "offsets", &st);
  if (od < 0) return st;
  hsize_t odims[1] = {0};
  r = ds_shape(od, odims, 1);
  H5Dclose(od);
  if (r != 1 || odims[0] < 1 || odims[0] - 1 > (hsize_t)SN_IO_MAX_ROWS)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /offsets must be 1-D (N+1,) with N >= 0",
                        ds->path);
  const int64_t n = (int64_t)odims[0] - 1;
  char what[96];
  snprintf(what, sizeof what, "/offsets has %lld entries", (long long)n + 1);
  st = read_int_1d(ds, "offsets", n + 1, what, &ds->offsets);
  if (st != SN_OK) return st;
  if (ds->offsets[0] < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /offsets: offset[0] = %lld is negative",
                        ds->path, (long long)ds->offsets[0]);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = ds->offsets[i + 1] - ds->offsets[i];
    if (len < 0)
      return sn_error_set(
          SN_ERR_FORMAT, "file %s: dataset /offsets not monotone at row %lld (%lld then %lld)",
          ds->path, (long long)i, (long long)ds->offsets[i], (long long)ds->offsets[i + 1]);
    if (len > SN_IO_MAX_ROW_BYTES)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /offsets: row %lld has %lld bytes",
                          ds->path, (long long)i, (long long)len);
  }
  if (ds->offsets[n] > ds->encoded_bytes)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /offsets ends at %lld, beyond /encoded (%lld bytes)",
                        ds->path, (long long)ds->offsets[n], (long long)ds->encoded_bytes);
  int64_t v[3] = {0, 0, 3};
  const char *names[3] = {"height", "width", "channels"};
  for (int i = 0; i < 3; ++i) {
    if (i == 2 && !sn_h5_has_attr(d, names[i])) continue; /* channels: 3 unless stated */
    sn_status a = sn_h5_read_int_attr(d, names[i], ds->path, "/encoded", &v[i]);
    if (a == SN_ERR_NOTFOUND)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /encoded: attribute %s missing",
                          ds->path, names[i]);
    if (a != SN_OK)
      return sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset /encoded: attribute %s is not an integer scalar",
                          ds->path, names[i]);
  }
  if (v[0] < 1 || v[0] > SN_IO_MAX_SIDE || v[1] < 1 || v[1] > SN_IO_MAX_SIDE ||
      (v[2] != 1 && v[2] != 3))
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /encoded: decode target %lldx%lldx%lld outside the "
                        "accepted range (sides 1..%d, channels 1 or 3)",
                        ds->path, (long long)v[0], (long long)v[1], (long long)v[2],
                        SN_IO_MAX_SIDE);
  ds->info.n = n;
  ds->info.h = (int)v[0];
  ds->info.w = (int)v[1];
  ds->info.c = (int)v[2];
  ds->info.dtype = SN_U8;
  ds->info.encoded = 1;
  ds->elem = 1;
  ds->mode = SN_RESIZE_BILINEAR;
  ds->shorter = 0;
  ds->encoded = with_chunk_cache(ds, d, "encoded");
  return SN_OK;
}

static sn_status open_labels(sn_dataset *ds) {
  const int64_t n = ds->info.n;
  if (sn_h5_exists(ds->file, "classes")) {
    sn_status st =
        sn_h5_read_str_dataset(ds->file, "classes", ds->path, &ds->classes, &ds->n_classes);
    if (st != SN_OK) return st;
    if (ds->n_classes < 1 || ds->n_classes > SN_IO_MAX_CLASSES)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /classes has %lld names", ds->path,
                          (long long)ds->n_classes);
    ds->info.num_classes = (int)ds->n_classes;
  }
  if (!sn_h5_exists(ds->file, "labels")) return SN_OK;
  char what[96];
  snprintf(what, sizeof what, "%s has %lld rows", ds->info.encoded ? "/offsets" : "/images",
           (long long)n);
  int64_t *l64 = NULL;
  sn_status st = read_int_1d(ds, "labels", n, what, &l64);
  if (st != SN_OK) return st;
  ds->labels = malloc((n ? (size_t)n : 1) * sizeof *ds->labels);
  if (!ds->labels) {
    free(l64);
    return sn_error_set(SN_ERR_NOMEM, "file %s: /labels: %lld rows", ds->path, (long long)n);
  }
  const int64_t hi = ds->info.num_classes > 0 ? ds->info.num_classes : SN_IO_MAX_CLASSES;
  int64_t maxl = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (l64[i] < 0 || l64[i] >= hi) {
      const int64_t bad = l64[i];
      free(l64);
      if (ds->info.num_classes > 0)
        return sn_error_set(SN_ERR_FORMAT,
                            "file %s: dataset /labels: row %lld has label %lld, outside [0, %lld) "
                            "(%lld names in /classes)",
                            ds->path, (long long)i, (long long)bad, (long long)hi, (long long)hi);
      return sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset /labels: row %lld has label %lld, outside [0, %lld)",
                          ds->path, (long long)i, (long long)bad, (long long)hi);
    }
    ds->labels[i] = (int32_t)l64[i];
    if (l64[i] > maxl) maxl = l64[i];
  }
  free(l64);
  ds->info.has_labels = 1;
  if (ds->info.num_classes == 0) ds->info.num_classes = (int)(maxl + 1);
  return SN_OK;
}

sn_status sn_dataset_open(const char *path, sn_comm *comm, sn_dataset **out) {
  (void)comm; /* messages get the rank prefix from sn_error_set */
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_dataset_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return sn_error_set(SN_ERR_INVALID, "sn_dataset_open: empty path");
  sn_dataset *ds = calloc(1, sizeof *ds);
  if (!ds || !(ds->path = strdup(path))) {
    free(ds);
    return sn_error_set(SN_ERR_NOMEM, "file %s: cannot allocate the dataset", path);
  }
  ds->file = ds->images = ds->encoded = -1;
  sn_h5_lock();
  sn_status st = sn_h5_open_read(ds->path, &ds->file);
  if (st == SN_OK) {
    if (sn_h5_exists(ds->file, "images"))
      st = open_images(ds);
    else if (sn_h5_exists(ds->file, "encoded"))
      st = open_encoded(ds);
    else
      st = sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset /images not found", path);
  }
  if (st == SN_OK) st = open_labels(ds);
  sn_h5_unlock();
  if (st == SN_OK) {
    ds->row_bytes = (size_t)ds->info.h * ds->info.w * ds->info.c * ds->elem;
  } else {
    sn_dataset_close(ds);
    return st;
  }
  *out = ds;
  return SN_OK;
}

void sn_dataset_close(sn_dataset *ds) {
  if (!ds) return;
  sn_h5_lock();
  if (ds->images >= 0) H5Dclose(ds->images);
  if (ds->encoded >= 0) H5Dclose(ds->encoded);
  if (ds->file >= 0) H5Fclose(ds->file);
  sn_h5_unlock();
  free(ds->path);
  free(ds->labels);
  free(ds->offsets);
  sn_h5_free_strs(ds->classes, ds->n_classes);
  free(ds->refs);
  free(ds->uniq);
  free(ds->upos);
  free(ds->raw);
  sn_image_scratch_free(&ds->img);
  free(ds);
}

const sn_dataset_info *sn_dataset_get_info(const sn_dataset *ds) { return ds ? &ds->info : NULL; }

const char *sn_dataset_class_name(const sn_dataset *ds, int i) {
  if (!ds || !ds->classes || i < 0 || i >= ds->n_classes) return NULL;
  return ds->classes[i];
}

const int32_t *sn_dataset_labels(const sn_dataset *ds) { return ds ? ds->labels : NULL; }

sn_status sn_dataset_set_decode(sn_dataset *ds, int out_h, int out_w, sn_resize_mode mode,
                                int resize_shorter) {
  if (!ds) return sn_error_set(SN_ERR_INVALID, "sn_dataset_set_decode: NULL dataset");
  if (out_h < 1 || out_w < 1 || out_h > SN_IO_MAX_SIDE || out_w > SN_IO_MAX_SIDE ||
      resize_shorter < 0 || resize_shorter > SN_IO_MAX_SIDE ||
      (mode != SN_RESIZE_NEAREST && mode != SN_RESIZE_BILINEAR))
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: decode target %dx%d (resize shorter %d, mode %d) is invalid",
                        ds->path, out_h, out_w, resize_shorter, (int)mode);
  if (resize_shorter > 0 && (out_h > resize_shorter || out_w > resize_shorter))
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: centre crop %dx%d is larger than the resized shorter side %d",
                        ds->path, out_h, out_w, resize_shorter);
  if (!ds->info.encoded) {
    if (out_h != ds->stored_h || out_w != ds->stored_w || resize_shorter != 0)
      return sn_error_set(SN_ERR_INVALID,
                          "file %s: /images is stored at %dx%d; raw datasets are not resized "
                          "(asked for %dx%d)",
                          ds->path, ds->stored_h, ds->stored_w, out_h, out_w);
    return SN_OK;
  }
  ds->info.h = out_h;
  ds->info.w = out_w;
  ds->mode = mode;
  ds->shorter = resize_shorter;
  ds->row_bytes = (size_t)out_h * out_w * ds->info.c;
  return SN_OK;
}

sn_status sn_dataset_set_decode_crop(sn_dataset *ds, int enable, uint64_t seed, int64_t epoch,
                                     int jpeg_scale) {
  if (!ds) return sn_error_set(SN_ERR_INVALID, "sn_dataset_set_decode_crop: NULL dataset");
  if (enable && !ds->info.encoded)
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: /images is stored decoded; a crop of the original picture needs "
                        "the encoded form (convert folder --encoded)",
                        ds->path);
  ds->crop.on = enable != 0;
  ds->crop.jpeg_scale = jpeg_scale != 0;
  ds->crop.seed = seed;
  ds->crop.epoch = epoch;
  return SN_OK;
}

/* ---------------------------------------------------------------- reading rows */

static int cmp_ref(const void *a, const void *b) {
  const struct sn_row_ref *x = a, *y = b;
  if (x->row != y->row) return x->row < y->row ? -1 : 1;
  return x->dest < y->dest ? -1 : x->dest > y->dest;
}

static sn_status ensure_rows(sn_dataset *ds, int count) {
  if (count <= ds->cap_rows) return SN_OK;
  struct sn_row_ref *r = realloc(ds->refs, (size_t)count * sizeof *r);
  if (r) ds->refs = r;
  int64_t *u = realloc(ds->uniq, (size_t)count * sizeof *u);
  if (u) ds->uniq = u;
  int64_t *p = realloc(ds->upos, (size_t)count * sizeof *p);
  if (p) ds->upos = p;
  if (!r || !u || !p)
    return sn_error_set(SN_ERR_NOMEM, "file %s: read of %d rows", ds->path, count);
  ds->cap_rows = count;
  return SN_OK;
}

static sn_status ensure_raw(sn_dataset *ds, size_t bytes) {
  if (bytes <= ds->raw_cap) return SN_OK;
  uint8_t *p = realloc(ds->raw, bytes);
  if (!p) return sn_error_set(SN_ERR_NOMEM, "file %s: %zu bytes for a read", ds->path, bytes);
  ds->raw = p;
  ds->raw_cap = bytes;
  return SN_OK;
}

/* Reads runs [start_i, start_i + len_i) x (rest of the dims) of a dataset one after the other
 * into dst (row_bytes per leading index). One H5Dread per run: HDF5 1.10 handles a union of
 * many hyperslabs in a chunked dataset far more slowly (about 50x for 256 scattered rows). */
static herr_t read_runs(hid_t d, hid_t mt, int rank, const hsize_t *dims, const int64_t *starts,
                        const int64_t *lens, int nruns, uint8_t *dst, size_t row_bytes) {
  hid_t fs = H5Dget_space(d);
  if (fs < 0) return -1;
  hsize_t start[4] = {0, 0, 0, 0}, count[4];
  for (int i = 0; i < rank; ++i)
    count[i] = dims[i];
  herr_t e = 0;
  for (int i = 0; e >= 0 && i < nruns; ++i) {
    start[0] = (hsize_t)starts[i];
    count[0] = (hsize_t)lens[i];
    hid_t ms = H5Screate_simple(rank, count, NULL);
    e = ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (e >= 0) e = H5Dread(d, mt, ms, fs, H5P_DEFAULT, dst);
    if (ms >= 0) H5Sclose(ms);
    dst += (size_t)lens[i] * row_bytes;
  }
  H5Sclose(fs);
  return e;
}

sn_status sn_dataset_fetch(sn_dataset *ds, const int64_t *rows, int count, void *images,
                           int *direct) {
  *direct = 0;
  if (!ds || count < 0 || (count > 0 && (!rows || !images)))
    return sn_error_set(SN_ERR_INVALID, "sn_dataset_read_rows: invalid arguments (count %d)",
                        count);
  if (count == 0) return SN_OK;
  sn_status st = ensure_rows(ds, count);
  if (st != SN_OK) return st;
  int sorted = 1;
  for (int i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= ds->info.n)
      return sn_error_set(SN_ERR_INVALID, "file %s: row %lld out of range [0, %lld)", ds->path,
                          (long long)rows[i], (long long)ds->info.n);
    ds->refs[i].row = rows[i];
    ds->refs[i].dest = i;
    if (i > 0 && rows[i] <= rows[i - 1]) sorted = 0;
  }
  if (!sorted) qsort(ds->refs, (size_t)count, sizeof *ds->refs, cmp_ref);
  /* Unique rows, then runs of consecutive rows (stored in refs' scratch: reuse upos for lens). */
  int nu = 0;
  for (int i = 0; i < count; ++i) {
    if (nu == 0 || ds->uniq[nu - 1] != ds->refs[i].row) ds->uniq[nu++] = ds->refs[i].row;
    ds->refs[i].u = nu - 1;
  }
  /* Byte sizes and positions of the unique rows in the fetch buffer. */
  size_t total = 0;
  for (int u = 0; u < nu; ++u) {
    ds->upos[u] = (int64_t)total;
    size_t len = ds->info.encoded
                     ? (size_t)(ds->offsets[ds->uniq[u] + 1] - ds->offsets[ds->uniq[u]])
                     : ds->stored_row_bytes;
    if (total > SIZE_MAX - len)
      return sn_error_set(SN_ERR_NOMEM, "file %s: read of %d rows overflows", ds->path, count);
    total += len;
  }
  uint8_t *dst;
  if (!ds->info.encoded && sorted) {
    dst = images; /* ascending unique rows land in place */
    *direct = 1;
  } else {
    st = ensure_raw(ds, total ? total : 1);
    if (st != SN_OK) return st;
    dst = ds->raw;
  }
  if (total == 0) return SN_OK;
  /* Runs of consecutive unique rows (encoded: consecutive rows are adjacent byte ranges). */
  int64_t *starts = malloc(2 * (size_t)nu * sizeof *starts);
  if (!starts) return sn_error_set(SN_ERR_NOMEM, "file %s: read of %d rows", ds->path, count);
  int64_t *lens = starts + nu;
  int nr = 0;
  for (int u = 0; u < nu; ++u) {
    if (ds->info.encoded) {
      const int64_t b = ds->offsets[ds->uniq[u]], e = ds->offsets[ds->uniq[u] + 1];
      if (e == b) continue;
      if (nr > 0 && starts[nr - 1] + lens[nr - 1] == b) {
        lens[nr - 1] += e - b;
      } else {
        starts[nr] = b;
        lens[nr++] = e - b;
      }
    } else if (nr > 0 && starts[nr - 1] + lens[nr - 1] == ds->uniq[u]) {
      lens[nr - 1]++;
    } else {
      starts[nr] = ds->uniq[u];
      lens[nr++] = 1;
    }
  }
  hid_t d = ds->info.encoded ? ds->encoded : ds->images;
  hsize_t fdims[4] = {ds->info.encoded ? (hsize_t)ds->encoded_bytes : (hsize_t)ds->info.n,
                      (hsize_t)ds->stored_h, (hsize_t)ds->stored_w, (hsize_t)ds->info.c};
  const int rank = ds->info.encoded ? 1 : 4;
  hid_t mt = ds->info.encoded || ds->info.dtype == SN_U8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  sn_h5_lock();
  herr_t e = read_runs(d, mt, rank, fdims, starts, lens, nr, dst,
                       ds->info.encoded ? 1 : ds->stored_row_bytes);
  char det[256] = "";
  if (e < 0) sn_h5_detail(det, sizeof det);
  sn_h5_unlock();
  free(starts);
  if (e < 0)
    return sn_error_set(SN_ERR_IO, "file %s: dataset /%s: cannot read %d rows (first row %lld): %s",
                        ds->path, ds->info.encoded ? "encoded" : "images", count,
                        (long long)ds->uniq[0], det);
  return SN_OK;
}

/* The training crop of a row (sn_image_crop_fn): sn_augment_crop_box of the picture's size. */
typedef struct row_crop {
  const sn_dataset *ds;
  int64_t row;
} row_crop;
static void choose_crop(void *ctx, int h, int w, sn_image_crop *c) {
  const row_crop *rc = ctx;
  const sn_dataset *ds = rc->ds;
  int box[4], flip = 0;
  sn_augment_crop_box(ds->crop.seed, ds->crop.epoch, rc->row, h, w, box, &flip);
  *c = (sn_image_crop){box[0],     box[1],     box[2], box[3],
                       ds->info.h, ds->info.w, flip,   ds->crop.jpeg_scale};
}

sn_status sn_dataset_decode_row(const sn_dataset *ds, int64_t row, const uint8_t *src, size_t len,
                                uint8_t *out, sn_image_scratch *img) {
  char err[512] = "";
  int h = 0, w = 0;
  sn_status st;
  if (ds->crop.on) {
    row_crop rc = {ds, row};
    st = sn_image_decode_crop(src, len, ds->info.c, choose_crop, &rc, out, img, err, sizeof err);
  } else {
    st = sn_image_decode(src, len, ds->info.c, img, &h, &w, err, sizeof err);
    if (st == SN_OK) {
      st = sn_image_fit(img->pix, h, w, ds->info.c, out, ds->info.h, ds->info.w, ds->mode,
                        ds->shorter, img);
      if (st == SN_ERR_INVALID)
        snprintf(err, sizeof err, "a %dx%d image cannot be cropped to %dx%d", w, h, ds->info.w,
                 ds->info.h);
      else if (st != SN_OK)
        snprintf(err, sizeof err, "out of memory resizing a %dx%d image", w, h);
    }
  }
  if (st == SN_OK) return SN_OK;
  return sn_error_set(st == SN_ERR_NOMEM ? SN_ERR_NOMEM : SN_ERR_FORMAT, "file %s: row %lld: %s",
                      ds->path, (long long)row, err);
}

sn_status sn_dataset_place(sn_dataset *ds, int count, int direct, void *images, int32_t *labels) {
  uint8_t *out = images;
  if (ds->info.encoded) {
    for (int i = 0; i < count; ++i) {
      const struct sn_row_ref *r = &ds->refs[i];
      const int64_t row = r->row;
      const uint8_t *src = ds->raw + ds->upos[r->u];
      const size_t len = (size_t)(ds->offsets[row + 1] - ds->offsets[row]);
      sn_status st =
          sn_dataset_decode_row(ds, row, src, len, out + (size_t)r->dest * ds->row_bytes, &ds->img);
      if (st != SN_OK) return st;
    }
  } else if (!direct) {
    /* Raw rows fetched out of order: copy each from the sorted fetch buffer. */
    for (int i = 0; i < count; ++i) {
      const struct sn_row_ref *r = &ds->refs[i];
      memcpy(out + (size_t)r->dest * ds->row_bytes, ds->raw + ds->upos[r->u], ds->row_bytes);
    }
  }
  return sn_dataset_place_labels(ds, count, labels);
}

sn_status sn_dataset_place_labels(const sn_dataset *ds, int count, int32_t *labels) {
  if (!labels || count <= 0) return SN_OK;
  if (!ds->labels)
    return sn_error_set(SN_ERR_INVALID, "file %s: the dataset has no /labels", ds->path);
  for (int i = 0; i < count; ++i)
    labels[ds->refs[i].dest] = ds->labels[ds->refs[i].row];
  return SN_OK;
}

sn_status sn_dataset_read_rows(sn_dataset *ds, const int64_t *rows, int count, void *images,
                               int32_t *labels) {
  int direct = 0;
  sn_status st = sn_dataset_fetch(ds, rows, count, images, &direct);
  if (st != SN_OK || count == 0) return st;
  return sn_dataset_place(ds, count, direct, images, labels);
}

sn_status sn_dataset_set_decode_for(sn_dataset *ds, int h, int w, sn_preprocess pre) {
  if (!ds) return sn_error_set(SN_ERR_INVALID, "sn_dataset_set_decode_for: NULL dataset");
  if (!ds->info.encoded) return SN_OK;
  if (pre == SN_PRE_DEFAULT)
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: no decode rule for preprocessing 'default' (resolve it first)",
                        ds->path);
  /* docs/cli.md, "Input size and decoding" */
  if (pre == SN_PRE_TORCH)
    return sn_dataset_set_decode(ds, h, w, SN_RESIZE_BILINEAR, (h * 256 + 112) / 224);
  return sn_dataset_set_decode(ds, h, w, SN_RESIZE_NEAREST, 0);
}
