/* dataset.c - the logical dataset (docs/hdf5-schema.md): one or several HDF5 files (validated at
 * open, rows read as coalesced hyperslabs, global row = row in the concatenation) or image files
 * (a folder or a list, io/source.c); encoded rows and image files decoded and fitted
 * (io/image.c). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_impl.h"

/* ---------------------------------------------------------------- one HDF5 file */

/* What one file holds; combined into the dataset by combine(). */
typedef struct part_info {
  int raw, h, w, c, elem; /* raw: /images (h, w, c as stored); else the decode target */
  sn_dtype dtype;
  int32_t *labels; /* (n) or NULL */
  char **classes;
  int64_t n_classes;
  int num_classes;
} part_info;

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

static hid_t open_dataset(const sn_part *p, const char *name, sn_status *st) {
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  hid_t d = H5Dopen2(p->file, name, dapl);
  H5Pclose(dapl);
  if (d < 0) *st = sn_error_set(SN_ERR_FORMAT, "file %s: /%s is not a dataset", p->path, name);
  return d;
}

/* Sizes the chunk cache of an open dataset (reopens it): a few chunks when they are filtered
 * (a compressed chunk is decoded whole), none when they are not, so that HDF5 reads just the
 * selected bytes instead of whole chunks (shuffled rows touch a different chunk each). */
static hid_t with_chunk_cache(const sn_part *p, hid_t d, const char *name) {
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
  hid_t d2 = H5Dopen2(p->file, name, dapl);
  H5Pclose(dapl);
  if (d2 < 0) d2 = H5Dopen2(p->file, name, H5P_DEFAULT);
  return d2;
}

/* Every declared row must be stored: a dataset that declares more rows than the file holds
 * (unwritten chunks, or a contiguous layout larger than its storage) is rejected before anything
 * is sized from its row count. */
static sn_status check_rows_stored(const sn_part *p, hid_t d, const hsize_t dims[4], int elem) {
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
        double need =
            (double)dims[0] * (double)dims[1] * (double)dims[2] * (double)dims[3] * (double)elem;
        int filtered = H5Pget_nfilters(dcpl) > 0;
        nch = (filtered ? stored > 0 : stored >= need)
                  ? blocks * per
                  : (hsize_t)(stored / ((double)cd[0] * cd[1] * cd[2] * cd[3] * elem));
      }
      if (nch < blocks * per)
        st = sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset /images declares %llu rows but stores only %llu of its "
                          "%llu chunks (rows never written, or a damaged file)",
                          p->path, (unsigned long long)dims[0], (unsigned long long)nch,
                          (unsigned long long)(blocks * per));
    }
  } else if (lay == H5D_CONTIGUOUS) {
    double need =
        (double)dims[0] * (double)dims[1] * (double)dims[2] * (double)dims[3] * (double)elem;
    if ((double)H5Dget_storage_size(d) < need)
      st = sn_error_set(
          SN_ERR_FORMAT, "file %s: dataset /images declares %llu rows but stores only %llu bytes",
          p->path, (unsigned long long)dims[0], (unsigned long long)H5Dget_storage_size(d));
  }
  H5Pclose(dcpl);
  return st;
}

/* A virtual dataset reads its missing source files as fill values, silently: every source it
 * maps must exist (HDF5 looks for a relative source name from the working directory, then from
 * the virtual file's directory). */
static sn_status check_virtual_sources(const sn_part *p, hid_t d, const char *name) {
  hid_t dcpl = H5Dget_create_plist(d);
  if (dcpl < 0) return SN_OK;
  sn_status st = SN_OK;
  size_t count = 0;
  if (H5Pget_layout(dcpl) == H5D_VIRTUAL && H5Pget_virtual_count(dcpl, &count) >= 0) {
    char *dir = strdup(p->path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) *slash = 0;
    for (size_t i = 0; st == SN_OK && i < count; ++i) {
      char src[4096], alt[8192];
      ssize_t len = H5Pget_virtual_filename(dcpl, i, src, sizeof src);
      if (len <= 0 || len >= (ssize_t)sizeof src || !strcmp(src, ".")) continue;
      struct stat sb;
      int found = stat(src, &sb) == 0;
      if (!found && src[0] != '/' && slash) {
        snprintf(alt, sizeof alt, "%s/%s", dir, src);
        found = stat(alt, &sb) == 0;
      }
      if (!found)
        st = sn_error_set(SN_ERR_IO,
                          "file %s: virtual dataset /%s maps source file %s, which does not "
                          "exist (its rows would read as zeros)",
                          p->path, name, src);
    }
    free(dir);
  }
  H5Pclose(dcpl);
  return st;
}

static sn_status open_images(sn_part *p, part_info *pi) {
  sn_status st = SN_OK;
  hid_t d = open_dataset(p, "images", &st);
  if (d < 0) return st;
  p->images = d;
  hsize_t dims[4];
  int r = ds_shape(d, dims, 4);
  if (r != 4)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /images has rank %d, expected 4 (N,H,W,C)",
                        p->path, r);
  hid_t t = H5Dget_type(d);
  char tn[64];
  type_name(t, tn, sizeof tn);
  const H5T_class_t cl = H5Tget_class(t);
  const size_t sz = H5Tget_size(t);
  const int sign = cl == H5T_INTEGER ? (int)H5Tget_sign(t) : -1;
  H5Tclose(t);
  if (cl == H5T_INTEGER && sz == 1 && sign == H5T_SGN_NONE) {
    pi->dtype = SN_U8;
    pi->elem = 1;
  } else if (cl == H5T_FLOAT && sz == 4) {
    pi->dtype = SN_F32;
    pi->elem = 4;
  } else {
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /images has type %s, expected uint8 or float32", p->path,
                        tn);
  }
  if (dims[0] > (hsize_t)SN_IO_MAX_ROWS || dims[1] < 1 || dims[2] < 1 || dims[1] > SN_IO_MAX_SIDE ||
      dims[2] > SN_IO_MAX_SIDE || dims[3] < 1 || dims[3] > 4 ||
      (double)dims[1] * dims[2] * dims[3] * pi->elem > (double)SN_IO_MAX_ROW_BYTES)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /images has shape (%llu,%llu,%llu,%llu) outside the "
                        "accepted range (H, W <= %d, C in 1..4)",
                        p->path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                        (unsigned long long)dims[2], (unsigned long long)dims[3], SN_IO_MAX_SIDE);
  sn_status cov = check_rows_stored(p, d, dims, pi->elem);
  if (cov == SN_OK) cov = check_virtual_sources(p, d, "images");
  if (cov != SN_OK) return cov;
  p->n = (int64_t)dims[0];
  pi->raw = 1;
  pi->h = (int)dims[1];
  pi->w = (int)dims[2];
  pi->c = (int)dims[3];
  p->images = with_chunk_cache(p, d, "images");
  return SN_OK;
}

/* Reads a 1-D integer dataset of `n` entries as int64 into a new buffer. */
static sn_status read_int_1d(const sn_part *p, const char *name, int64_t want_n, const char *what,
                             int64_t **out) {
  *out = NULL;
  sn_status st = SN_OK;
  hid_t d = open_dataset(p, name, &st);
  if (d < 0) return st;
  hsize_t dims[1];
  int r = ds_shape(d, dims, 1);
  hid_t t = H5Dget_type(d);
  char tn[64];
  type_name(t, tn, sizeof tn);
  const int is_int = H5Tget_class(t) == H5T_INTEGER;
  H5Tclose(t);
  if (r != 1) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s has rank %d, expected 1", p->path, name,
                      r);
  } else if (!is_int) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s has type %s, expected an integer type",
                      p->path, name, tn);
  } else if ((int64_t)dims[0] != want_n) {
    st = sn_error_set(SN_ERR_SHAPE, "file %s: %s but /%s has %llu entries", p->path, what, name,
                      (unsigned long long)dims[0]);
  } else {
    int64_t *buf = malloc((want_n ? (size_t)want_n : 1) * sizeof *buf);
    if (!buf) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s: dataset /%s: %lld entries", p->path, name,
                        (long long)want_n);
    } else if (want_n > 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
      char det[256];
      free(buf);
      st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /%s: cannot read: %s", p->path, name,
                        sn_h5_detail(det, sizeof det));
    } else {
      *out = buf;
    }
  }
  H5Dclose(d);
  return st;
}

static sn_status open_encoded(sn_part *p, part_info *pi) {
  sn_status st = SN_OK;
  hid_t d = open_dataset(p, "encoded", &st);
  if (d < 0) return st;
  p->encoded = d;
  hsize_t dims[1];
  int r = ds_shape(d, dims, 1);
  hid_t t = H5Dget_type(d);
  char tn[64];
  type_name(t, tn, sizeof tn);
  const int ok_type = H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1;
  H5Tclose(t);
  if (r != 1)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /encoded has rank %d, expected 1", p->path,
                        r);
  if (!ok_type)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /encoded has type %s, expected uint8",
                        p->path, tn);
  p->encoded_bytes = (int64_t)dims[0];
  if (!sn_h5_exists(p->file, "offsets"))
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset /offsets not found (needed by /encoded)",
                        p->path);
  hid_t od = open_dataset(p, "offsets", &st);
  if (od < 0) return st;
  hsize_t odims[1] = {0};
  r = ds_shape(od, odims, 1);
  H5Dclose(od);
  if (r != 1 || odims[0] < 1 || odims[0] - 1 > (hsize_t)SN_IO_MAX_ROWS)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /offsets must be 1-D (N+1,) with N >= 0",
                        p->path);
  const int64_t n = (int64_t)odims[0] - 1;
  char what[96];
  snprintf(what, sizeof what, "/offsets has %lld entries", (long long)n + 1);
  st = read_int_1d(p, "offsets", n + 1, what, &p->offsets);
  if (st != SN_OK) return st;
  if (p->offsets[0] < 0)
    return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /offsets: offset[0] = %lld is negative",
                        p->path, (long long)p->offsets[0]);
  for (int64_t i = 0; i < n; ++i) {
    /* compared before subtracting: both are then >= 0 and the difference cannot overflow */
    if (p->offsets[i + 1] < p->offsets[i])
      return sn_error_set(
          SN_ERR_FORMAT, "file %s: dataset /offsets not monotone at row %lld (%lld then %lld)",
          p->path, (long long)i, (long long)p->offsets[i], (long long)p->offsets[i + 1]);
    const int64_t len = p->offsets[i + 1] - p->offsets[i];
    if (len > SN_IO_MAX_ROW_BYTES)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /offsets: row %lld has %lld bytes",
                          p->path, (long long)i, (long long)len);
  }
  if (p->offsets[n] > p->encoded_bytes)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /offsets ends at %lld, beyond /encoded (%lld bytes)",
                        p->path, (long long)p->offsets[n], (long long)p->encoded_bytes);
  int64_t v[3] = {0, 0, 3};
  const char *names[3] = {"height", "width", "channels"};
  for (int i = 0; i < 3; ++i) {
    if (i == 2 && !sn_h5_has_attr(d, names[i])) continue; /* channels: 3 unless stated */
    sn_status a = sn_h5_read_int_attr(d, names[i], p->path, "/encoded", &v[i]);
    if (a == SN_ERR_NOTFOUND)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /encoded: attribute %s missing", p->path,
                          names[i]);
    if (a != SN_OK)
      return sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset /encoded: attribute %s is not an integer scalar",
                          p->path, names[i]);
  }
  if (v[0] < 1 || v[0] > SN_IO_MAX_SIDE || v[1] < 1 || v[1] > SN_IO_MAX_SIDE ||
      (v[2] != 1 && v[2] != 3))
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset /encoded: decode target %lldx%lldx%lld outside the "
                        "accepted range (sides 1..%d, channels 1 or 3)",
                        p->path, (long long)v[0], (long long)v[1], (long long)v[2], SN_IO_MAX_SIDE);
  p->n = n;
  pi->raw = 0;
  pi->h = (int)v[0];
  pi->w = (int)v[1];
  pi->c = (int)v[2];
  pi->dtype = SN_U8;
  pi->elem = 1;
  p->encoded = with_chunk_cache(p, d, "encoded");
  return SN_OK;
}

static sn_status open_labels(sn_part *p, part_info *pi) {
  const int64_t n = p->n;
  if (sn_h5_exists(p->file, "classes")) {
    sn_status st =
        sn_h5_read_str_dataset(p->file, "classes", p->path, &pi->classes, &pi->n_classes);
    if (st != SN_OK) return st;
    if (pi->n_classes < 1 || pi->n_classes > SN_IO_MAX_CLASSES)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /classes has %lld names", p->path,
                          (long long)pi->n_classes);
    pi->num_classes = (int)pi->n_classes;
  }
  char what[96];
  snprintf(what, sizeof what, "%s has %lld rows", pi->raw ? "/images" : "/offsets", (long long)n);
  if (sn_h5_exists(p->file, "filenames")) {
    sn_status st = SN_OK;
    hid_t d = open_dataset(p, "filenames", &st);
    if (d < 0) return st;
    p->filenames = d;
    hsize_t dims[1] = {0};
    hid_t t = H5Dget_type(d);
    const int is_str = H5Tget_class(t) == H5T_STRING;
    H5Tclose(t);
    if (ds_shape(d, dims, 1) != 1 || !is_str)
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /filenames is not a 1-D string dataset",
                          p->path);
    if ((int64_t)dims[0] != n)
      return sn_error_set(SN_ERR_SHAPE, "file %s: %s but /filenames has %llu entries", p->path,
                          what, (unsigned long long)dims[0]);
  }
  if (!sn_h5_exists(p->file, "labels")) return SN_OK;
  int64_t *l64 = NULL;
  sn_status st = read_int_1d(p, "labels", n, what, &l64);
  if (st != SN_OK) return st;
  pi->labels = malloc((n ? (size_t)n : 1) * sizeof *pi->labels);
  if (!pi->labels) {
    free(l64);
    return sn_error_set(SN_ERR_NOMEM, "file %s: /labels: %lld rows", p->path, (long long)n);
  }
  const int64_t hi = pi->num_classes > 0 ? pi->num_classes : SN_IO_MAX_CLASSES;
  int64_t maxl = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (l64[i] < 0 || l64[i] >= hi) {
      const int64_t bad = l64[i];
      free(l64);
      if (pi->num_classes > 0)
        return sn_error_set(SN_ERR_FORMAT,
                            "file %s: dataset /labels: row %lld has label %lld, outside [0, %lld) "
                            "(%lld names in /classes)",
                            p->path, (long long)i, (long long)bad, (long long)hi, (long long)hi);
      return sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset /labels: row %lld has label %lld, outside [0, %lld)",
                          p->path, (long long)i, (long long)bad, (long long)hi);
    }
    pi->labels[i] = (int32_t)l64[i];
    if (l64[i] > maxl) maxl = l64[i];
  }
  free(l64);
  if (pi->num_classes == 0) pi->num_classes = (int)(maxl + 1);
  return SN_OK;
}

static sn_status open_part(sn_part *p, part_info *pi) {
  sn_status st = sn_h5_open_read(p->path, &p->file);
  if (st == SN_OK) {
    if (sn_h5_exists(p->file, "images"))
      st = open_images(p, pi);
    else if (sn_h5_exists(p->file, "encoded"))
      st = open_encoded(p, pi);
    else
      st = sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset /images not found", p->path);
  }
  if (st == SN_OK) st = open_labels(p, pi);
  return st;
}

static int same_classes(const part_info *a, const part_info *b) {
  if (a->n_classes != b->n_classes) return 0;
  for (int64_t i = 0; i < a->n_classes; ++i)
    if (strcmp(a->classes[i], b->classes[i])) return 0;
  return 1;
}

/* The files as one dataset: same form and image size, same /classes where given; labels only
 * when every file has them. */
static sn_status combine(sn_dataset *ds, part_info *pis) {
  const part_info *a = &pis[0];
  int64_t n = 0;
  int labelled = 1, named = 1, num_classes = 0, classes_from = -1;
  for (int i = 0; i < ds->nparts; ++i) {
    const part_info *b = &pis[i];
    sn_part *p = &ds->parts[i];
    if (b->raw != a->raw || b->h != a->h || b->w != a->w || b->c != a->c || b->dtype != a->dtype)
      return sn_error_set(SN_ERR_SHAPE,
                          "file %s: %s %dx%dx%d %s, but file %s has %s %dx%dx%d %s: the files of "
                          "one dataset must agree",
                          p->path, b->raw ? "images" : "decode target", b->h, b->w, b->c,
                          b->dtype == SN_F32 ? "float32" : "uint8", ds->parts[0].path,
                          a->raw ? "images" : "decode target", a->h, a->w, a->c,
                          a->dtype == SN_F32 ? "float32" : "uint8");
    if (b->classes) {
      if (classes_from < 0) {
        classes_from = i;
      } else if (!same_classes(b, &pis[classes_from])) {
        return sn_error_set(SN_ERR_FORMAT, "file %s: /classes differ from those of file %s",
                            p->path, ds->parts[classes_from].path);
      }
    }
    if (n > SN_IO_MAX_ROWS - p->n)
      return sn_error_set(SN_ERR_FORMAT, "file %s: more than %lld rows in all", p->path,
                          (long long)SN_IO_MAX_ROWS);
    p->first = n;
    n += p->n;
    labelled &= b->labels != NULL;
    named &= p->filenames >= 0;
    if (b->num_classes > num_classes) num_classes = b->num_classes;
  }
  ds->info.n = n;
  ds->info.h = ds->stored_h = a->h;
  ds->info.w = ds->stored_w = a->w;
  ds->info.c = a->c;
  ds->info.dtype = a->dtype;
  ds->info.encoded = !a->raw;
  ds->elem = a->elem;
  ds->stored_row_bytes = (size_t)a->h * a->w * a->c * a->elem;
  ds->has_names = named;
  ds->mode = SN_RESIZE_BILINEAR;
  ds->shorter = 0;
  if (classes_from >= 0) {
    ds->classes = pis[classes_from].classes;
    ds->n_classes = pis[classes_from].n_classes;
    pis[classes_from].classes = NULL;
    pis[classes_from].n_classes = 0;
  }
  ds->info.num_classes = num_classes;
  if (labelled) {
    ds->labels = malloc((n ? (size_t)n : 1) * sizeof *ds->labels);
    if (!ds->labels)
      return sn_error_set(SN_ERR_NOMEM, "file %s: labels of %lld rows", ds->path, (long long)n);
    for (int i = 0; i < ds->nparts; ++i)
      memcpy(ds->labels + ds->parts[i].first, pis[i].labels,
             (size_t)ds->parts[i].n * sizeof *ds->labels);
    ds->info.has_labels = 1;
  } else if (classes_from < 0) {
    ds->info.num_classes = 0;
  }
  return SN_OK;
}

static sn_status open_hdf5_parts(sn_dataset *ds) {
  const int np = (int)ds->src.n;
  ds->parts = calloc((size_t)np, sizeof *ds->parts);
  part_info *pis = calloc((size_t)np, sizeof *pis);
  if (!ds->parts || !pis) {
    free(pis);
    return sn_error_set(SN_ERR_NOMEM, "file %s: %d files", ds->path, np);
  }
  sn_status st = SN_OK;
  sn_h5_lock();
  for (int i = 0; i < np; ++i) {
    sn_part *p = &ds->parts[i];
    p->file = p->images = p->encoded = p->filenames = -1;
    ds->nparts = i + 1;
    if (!(p->path = strdup(ds->src.names[i]))) {
      st = sn_error_set(SN_ERR_NOMEM, "file %s", ds->src.names[i]);
      break;
    }
    st = open_part(p, &pis[i]);
    if (st != SN_OK) break;
  }
  if (st == SN_OK) st = combine(ds, pis);
  sn_h5_unlock();
  for (int i = 0; i < np; ++i) {
    free(pis[i].labels);
    sn_h5_free_strs(pis[i].classes, pis[i].n_classes);
  }
  free(pis);
  return st;
}

/* ---------------------------------------------------------------- image files */

static sn_status open_files(sn_dataset *ds, const sn_source_options *o) {
  if (o->height < 1 || o->width < 1 || o->height > SN_IO_MAX_SIDE || o->width > SN_IO_MAX_SIDE ||
      (o->channels != 1 && o->channels != 3))
    return sn_error_set(SN_ERR_INVALID, "%s: decode target %dx%dx%d is invalid", ds->path,
                        o->height, o->width, o->channels);
  const sn_listing *l = &ds->src;
  ds->info.n = l->n;
  ds->info.h = ds->stored_h = o->height;
  ds->info.w = ds->stored_w = o->width;
  ds->info.c = o->channels;
  ds->info.dtype = SN_U8;
  ds->info.encoded = 1;
  ds->elem = 1;
  ds->has_names = 1;
  ds->mode = SN_RESIZE_BILINEAR;
  ds->shorter = 0;
  if (l->labels) {
    ds->labels = malloc((size_t)l->n * sizeof *ds->labels);
    if (!ds->labels) return sn_error_set(SN_ERR_NOMEM, "%s: labels", ds->path);
    memcpy(ds->labels, l->labels, (size_t)l->n * sizeof *ds->labels);
    int32_t maxl = -1;
    for (int64_t i = 0; i < l->n; ++i)
      if (l->labels[i] > maxl) maxl = l->labels[i];
    ds->info.has_labels = 1;
    ds->info.num_classes = l->n_classes > 0 ? (int)l->n_classes : maxl + 1;
  }
  if (l->n_classes > 0) {
    ds->classes = calloc((size_t)l->n_classes, sizeof *ds->classes);
    if (!ds->classes) return sn_error_set(SN_ERR_NOMEM, "%s: classes", ds->path);
    ds->n_classes = l->n_classes;
    for (int64_t i = 0; i < l->n_classes; ++i)
      if (!(ds->classes[i] = strdup(l->classes[i])))
        return sn_error_set(SN_ERR_NOMEM, "%s: classes", ds->path);
  }
  return SN_OK;
}

/* ---------------------------------------------------------------- open and close */

static sn_status open_listed(sn_dataset *ds, const sn_source_options *o) {
  const char *name = ds->src.kind == SN_SOURCE_FOLDER                      ? ds->src.origin
                     : ds->src.kind == SN_SOURCE_LIST && ds->src.origin[0] ? ds->src.origin
                                                                           : ds->src.names[0];
  if (!(ds->path = strdup(name))) return sn_error_set(SN_ERR_NOMEM, "dataset %s", name);
  ds->row_bytes = 0;
  sn_status st = ds->src.kind == SN_SOURCE_HDF5 ? open_hdf5_parts(ds) : open_files(ds, o);
  if (st == SN_OK) ds->row_bytes = (size_t)ds->info.h * ds->info.w * ds->info.c * ds->elem;
  return st;
}

sn_status sn_dataset_open_sources(const char *const *paths, int n, const sn_source_options *o,
                                  sn_comm *comm, sn_dataset **out) {
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_dataset_open_sources: out is NULL");
  *out = NULL;
  sn_source_options defaults;
  if (!o) {
    sn_source_options_init(&defaults);
    o = &defaults;
  }
  sn_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return sn_error_set(SN_ERR_NOMEM, "cannot allocate the dataset");
  sn_status st = comm && sn_comm_size(comm) > 1 ? sn_listing_share(paths, n, o, comm, &ds->src)
                                                : sn_listing_make(paths, n, o, &ds->src);
  if (st == SN_OK) st = open_listed(ds, o);
  if (st != SN_OK) {
    sn_dataset_close(ds);
    return st;
  }
  *out = ds;
  return SN_OK;
}

sn_status sn_dataset_open(const char *path, sn_comm *comm, sn_dataset **out) {
  (void)comm; /* messages get the rank prefix from sn_error_set */
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_dataset_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return sn_error_set(SN_ERR_INVALID, "sn_dataset_open: empty path");
  return sn_dataset_open_sources(&path, 1, NULL, NULL, out);
}

void sn_fetch_free(sn_fetch *f) {
  free(f->refs);
  free(f->uniq);
  free(f->upos);
  free(f->raw);
  memset(f, 0, sizeof *f);
}

void sn_decoder_free(sn_decoder *d) {
  sn_image_scratch_free(&d->img);
  free(d->file);
  memset(d, 0, sizeof *d);
}

void sn_dataset_close(sn_dataset *ds) {
  if (!ds) return;
  sn_h5_lock();
  for (int i = 0; i < ds->nparts; ++i) {
    sn_part *p = &ds->parts[i];
    if (p->images >= 0) H5Dclose(p->images);
    if (p->encoded >= 0) H5Dclose(p->encoded);
    if (p->filenames >= 0) H5Dclose(p->filenames);
    if (p->file >= 0) H5Fclose(p->file);
  }
  sn_h5_unlock();
  for (int i = 0; i < ds->nparts; ++i) {
    free(ds->parts[i].path);
    free(ds->parts[i].offsets);
  }
  free(ds->parts);
  sn_listing_free(&ds->src);
  free(ds->path);
  free(ds->labels);
  sn_h5_free_strs(ds->classes, ds->n_classes);
  sn_fetch_free(&ds->fetch);
  sn_decoder_free(&ds->dec);
  free(ds);
}

const sn_dataset_info *sn_dataset_get_info(const sn_dataset *ds) { return ds ? &ds->info : NULL; }

const char *sn_dataset_class_name(const sn_dataset *ds, int i) {
  if (!ds || !ds->classes || i < 0 || i >= ds->n_classes) return NULL;
  return ds->classes[i];
}

const int32_t *sn_dataset_labels(const sn_dataset *ds) { return ds ? ds->labels : NULL; }

void sn_dataset_describe(const sn_dataset *ds, char *buf, size_t n) {
  if (!buf || n == 0) return;
  if (!ds) {
    snprintf(buf, n, "(no dataset)");
    return;
  }
  const sn_listing *l = &ds->src;
  char labels[160];
  if (l->kind == SN_SOURCE_HDF5)
    snprintf(labels, sizeof labels, "%s",
             ds->info.has_labels ? "labels from /labels" : "no labels");
  else if (!strcmp(l->labels_from, "folders"))
    snprintf(labels, sizeof labels, "labels from folders: %lld classes", (long long)ds->n_classes);
  else if (!strcmp(l->labels_from, "list"))
    snprintf(labels, sizeof labels, "labels from the list");
  else
    snprintf(labels, sizeof labels, "labels from none: unlabelled");
  if (l->kind == SN_SOURCE_FOLDER)
    snprintf(buf, n, "folder %s: %lld image files, %s", l->origin, (long long)ds->info.n, labels);
  else if (l->kind == SN_SOURCE_LIST && l->origin[0])
    snprintf(buf, n, "list %s: %lld image files, %s", l->origin, (long long)ds->info.n, labels);
  else if (l->kind == SN_SOURCE_LIST)
    snprintf(buf, n, "%lld image file%s, %s", (long long)ds->info.n, ds->info.n == 1 ? "" : "s",
             labels);
  else if (ds->nparts == 1)
    snprintf(buf, n, "%s: %lld rows (%s), %s", ds->path, (long long)ds->info.n,
             ds->info.encoded ? "encoded" : "raw", labels);
  else
    snprintf(buf, n, "%d HDF5 files (%s, ...): %lld rows (%s), %s", ds->nparts, ds->path,
             (long long)ds->info.n, ds->info.encoded ? "encoded" : "raw", labels);
}

/* ---------------------------------------------------------------- decode target */

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
                                     double crop_scale, int jpeg_scale) {
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
  ds->crop.scale = crop_scale;
  return SN_OK;
}

sn_status sn_dataset_set_channels(sn_dataset *ds, int channels) {
  if (!ds) return sn_error_set(SN_ERR_INVALID, "sn_dataset_set_channels: NULL dataset");
  if (channels == ds->info.c) return SN_OK;
  if (!ds->info.encoded)
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: /images is stored with %d channels; raw datasets are not "
                        "converted (asked for %d)",
                        ds->path, ds->info.c, channels);
  if (channels != 1 && channels != 3)
    return sn_error_set(SN_ERR_INVALID, "file %s: images decode to 1 or 3 channels, not %d",
                        ds->path, channels);
  ds->info.c = channels;
  ds->row_bytes = (size_t)ds->info.h * ds->info.w * channels;
  return SN_OK;
}

sn_status sn_dataset_set_decode_for(sn_dataset *ds, int h, int w, sn_preprocess pre) {
  if (!ds) return sn_error_set(SN_ERR_INVALID, "sn_dataset_set_decode_for: NULL dataset");
  if (!ds->info.encoded) return SN_OK;
  if (pre == SN_PRE_DEFAULT)
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: no decode rule for preprocessing 'default' (resolve it first)",
                        ds->path);
  /* docs/models.md, "Preprocessing" */
  if (pre == SN_PRE_TORCH)
    return sn_dataset_set_decode(ds, h, w, SN_RESIZE_BILINEAR, (h * 256 + 112) / 224);
  return sn_dataset_set_decode(ds, h, w, SN_RESIZE_NEAREST, 0);
}

/* ---------------------------------------------------------------- reading rows */

static int cmp_ref(const void *a, const void *b) {
  const struct sn_row_ref *x = a, *y = b;
  if (x->row != y->row) return x->row < y->row ? -1 : 1;
  return x->dest < y->dest ? -1 : x->dest > y->dest;
}

static sn_status ensure_rows(sn_fetch *f, int count, const char *path) {
  if (count <= f->cap_rows) return SN_OK;
  struct sn_row_ref *r = realloc(f->refs, (size_t)count * sizeof *r);
  if (r) f->refs = r;
  int64_t *u = realloc(f->uniq, (size_t)count * sizeof *u);
  if (u) f->uniq = u;
  int64_t *p = realloc(f->upos, (size_t)count * sizeof *p);
  if (p) f->upos = p;
  if (!r || !u || !p) return sn_error_set(SN_ERR_NOMEM, "file %s: read of %d rows", path, count);
  f->cap_rows = count;
  return SN_OK;
}

static sn_status ensure_raw(sn_fetch *f, size_t bytes, const char *path) {
  if (bytes <= f->raw_cap) return SN_OK;
  uint8_t *p = realloc(f->raw, bytes);
  if (!p) return sn_error_set(SN_ERR_NOMEM, "file %s: %zu bytes for a read", path, bytes);
  f->raw = p;
  f->raw_cap = bytes;
  return SN_OK;
}

/* The file holding global row `row` (parts are in row order). */
static int part_of(const sn_dataset *ds, int64_t row) {
  int lo = 0, hi = ds->nparts - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (ds->parts[mid].first <= row)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
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

/* Pulls the unique rows of one file (f->uniq[ub..ue), all in part p) into dst under the io lock:
 * runs of consecutive rows (encoded: adjacent byte ranges) read as one slab each. */
static sn_status fetch_part(const sn_dataset *ds, const sn_part *p, const sn_fetch *f, int ub,
                            int ue, uint8_t *dst) {
  const int nu = ue - ub;
  int64_t *starts = malloc(2 * (size_t)nu * sizeof *starts);
  if (!starts) return sn_error_set(SN_ERR_NOMEM, "file %s: read of %d rows", p->path, nu);
  int64_t *lens = starts + nu;
  int nr = 0;
  const int enc = ds->info.encoded;
  for (int u = ub; u < ue; ++u) {
    const int64_t r = f->uniq[u] - p->first;
    if (enc) {
      const int64_t b = p->offsets[r], e = p->offsets[r + 1];
      if (e == b) continue;
      if (nr > 0 && starts[nr - 1] + lens[nr - 1] == b) {
        lens[nr - 1] += e - b;
      } else {
        starts[nr] = b;
        lens[nr++] = e - b;
      }
    } else if (nr > 0 && starts[nr - 1] + lens[nr - 1] == r) {
      lens[nr - 1]++;
    } else {
      starts[nr] = r;
      lens[nr++] = 1;
    }
  }
  hid_t d = enc ? p->encoded : p->images;
  hsize_t fdims[4] = {enc ? (hsize_t)p->encoded_bytes : (hsize_t)p->n, (hsize_t)ds->stored_h,
                      (hsize_t)ds->stored_w, (hsize_t)ds->info.c};
  hid_t mt = enc || ds->info.dtype == SN_U8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  sn_h5_lock();
  herr_t e =
      read_runs(d, mt, enc ? 1 : 4, fdims, starts, lens, nr, dst, enc ? 1 : ds->stored_row_bytes);
  char det[256] = "";
  if (e < 0) sn_h5_detail(det, sizeof det);
  sn_h5_unlock();
  free(starts);
  if (e < 0)
    return sn_error_set(SN_ERR_IO, "file %s: dataset /%s: cannot read %d rows (first row %lld): %s",
                        p->path, enc ? "encoded" : "images", nu,
                        (long long)(f->uniq[ub] - p->first), det);
  return SN_OK;
}

sn_status sn_dataset_fetch(sn_dataset *ds, sn_fetch *f, const int64_t *rows, int count,
                           void *images) {
  f->direct = 0;
  f->count = f->nu = 0;
  if (!ds || count < 0 || (count > 0 && (!rows || !images)))
    return sn_error_set(SN_ERR_INVALID, "sn_dataset_read_rows: invalid arguments (count %d)",
                        count);
  if (count == 0) return SN_OK;
  sn_status st = ensure_rows(f, count, ds->path);
  if (st != SN_OK) return st;
  int sorted = 1;
  for (int i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= ds->info.n)
      return sn_error_set(SN_ERR_INVALID, "file %s: row %lld out of range [0, %lld)", ds->path,
                          (long long)rows[i], (long long)ds->info.n);
    f->refs[i].row = rows[i];
    f->refs[i].dest = i;
    if (i > 0 && rows[i] <= rows[i - 1]) sorted = 0;
  }
  if (!sorted) qsort(f->refs, (size_t)count, sizeof *f->refs, cmp_ref);
  int nu = 0;
  for (int i = 0; i < count; ++i) {
    if (nu == 0 || f->uniq[nu - 1] != f->refs[i].row) f->uniq[nu++] = f->refs[i].row;
    f->refs[i].u = nu - 1;
  }
  f->count = count;
  f->nu = nu;
  if (ds->src.kind != SN_SOURCE_HDF5) return SN_OK; /* image files are read when placed */
  /* Byte positions of the unique rows in the fetch buffer. */
  size_t total = 0;
  for (int u = 0; u < nu; ++u) {
    f->upos[u] = (int64_t)total;
    size_t len = ds->stored_row_bytes;
    if (ds->info.encoded) {
      const sn_part *p = &ds->parts[part_of(ds, f->uniq[u])];
      const int64_t r = f->uniq[u] - p->first;
      len = (size_t)(p->offsets[r + 1] - p->offsets[r]);
    }
    if (total > SIZE_MAX - len)
      return sn_error_set(SN_ERR_NOMEM, "file %s: read of %d rows overflows", ds->path, count);
    total += len;
  }
  uint8_t *dst;
  if (!ds->info.encoded && sorted) {
    dst = images; /* ascending unique rows land in place */
    f->direct = 1;
  } else {
    st = ensure_raw(f, total ? total : 1, ds->path);
    if (st != SN_OK) return st;
    dst = f->raw;
  }
  if (total == 0) return SN_OK;
  for (int ub = 0; ub < nu;) {
    const int pi = part_of(ds, f->uniq[ub]);
    const sn_part *p = &ds->parts[pi];
    int ue = ub + 1;
    while (ue < nu && f->uniq[ue] < p->first + p->n)
      ++ue;
    st = fetch_part(ds, p, f, ub, ue, dst + f->upos[ub]);
    if (st != SN_OK) return st;
    ub = ue;
  }
  return SN_OK;
}

sn_status sn_read_image_file(const char *path, sn_decoder *d, size_t *n, char *why, size_t whylen) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    snprintf(why, whylen, "cannot open: %s", strerror(errno));
    return SN_ERR_IO;
  }
  struct stat sb;
  if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0 ||
      sb.st_size > SN_IO_MAX_ROW_BYTES) {
    fclose(fp);
    snprintf(why, whylen, "not a regular file of at most %lld bytes",
             (long long)SN_IO_MAX_ROW_BYTES);
    return SN_ERR_IO;
  }
  const size_t size = (size_t)sb.st_size;
  if (size > d->file_cap) {
    uint8_t *p = realloc(d->file, size);
    if (!p) {
      fclose(fp);
      snprintf(why, whylen, "out of memory for %zu bytes", size);
      return SN_ERR_NOMEM;
    }
    d->file = p;
    d->file_cap = size;
  }
  const size_t got = size ? fread(d->file, 1, size, fp) : 0;
  const int err = ferror(fp);
  fclose(fp);
  if (got != size || err) {
    snprintf(why, whylen, "read %zu of %zu bytes%s%s", got, size, err ? ": " : "",
             err ? strerror(errno) : "");
    return SN_ERR_IO;
  }
  *n = size;
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
  sn_augment_crop_box(ds->crop.seed, ds->crop.epoch, rc->row, h, w, ds->crop.scale, box, &flip);
  *c = (sn_image_crop){box[0],     box[1],     box[2], box[3],
                       ds->info.h, ds->info.w, flip,   ds->crop.jpeg_scale};
}

/* Decodes one image's bytes (of dataset row `row`) into out: fitted to the dataset's target, or
 * the training crop of sn_dataset_set_decode_crop taken from the original picture. */
static sn_status decode_fit(const sn_dataset *ds, int64_t row, const uint8_t *src, size_t len,
                            uint8_t *out, sn_decoder *d, char *why, size_t whylen) {
  const int c = ds->info.c;
  int h = 0, w = 0;
  if (ds->crop.on) {
    row_crop rc = {ds, row};
    sn_status st = sn_image_decode_crop(src, len, c, choose_crop, &rc, out, &d->img, why, whylen);
    return st == SN_OK ? SN_OK : st == SN_ERR_NOMEM ? SN_ERR_NOMEM : SN_ERR_FORMAT;
  }
  sn_status st = sn_image_decode(src, len, c, &d->img, &h, &w, why, whylen);
  if (st != SN_OK) return st == SN_ERR_NOMEM ? SN_ERR_NOMEM : SN_ERR_FORMAT;
  if (ds->shorter > 0) {
    /* The resized image must stay within the pixel limit (a 1 x 60000 strip resized to a
     * shorter side of 256 would make 256 x 15 million pixels). */
    const int64_t lo = h < w ? h : w, hi = h < w ? w : h;
    if ((int64_t)ds->shorter * ((int64_t)ds->shorter * hi / lo) > SN_IO_MAX_PIXELS) {
      snprintf(why, whylen,
               "a %dx%d image resized to a shorter side of %d would exceed %lld pixels", w, h,
               ds->shorter, (long long)SN_IO_MAX_PIXELS);
      return SN_ERR_FORMAT;
    }
  }
  st = sn_image_fit(d->img.pix, h, w, c, out, ds->info.h, ds->info.w, ds->mode, ds->shorter,
                    &d->img);
  if (st == SN_ERR_INVALID) {
    snprintf(why, whylen, "a %dx%d image cannot be cropped to %dx%d", w, h, ds->info.w, ds->info.h);
    return SN_ERR_FORMAT;
  }
  if (st != SN_OK) {
    snprintf(why, whylen, "out of memory resizing a %dx%d image", w, h);
    return SN_ERR_NOMEM;
  }
  return SN_OK;
}

sn_status sn_dataset_place_one(const sn_dataset *ds, const sn_fetch *f, int k, void *images,
                               sn_decoder *d, char *why, size_t whylen) {
  why[0] = 0;
  const struct sn_row_ref *r = &f->refs[k];
  uint8_t *out = (uint8_t *)images + (size_t)r->dest * ds->row_bytes;
  if (ds->src.kind != SN_SOURCE_HDF5) {
    char path[4096];
    if (!sn_listing_path(&ds->src, r->row, path, sizeof path)) {
      snprintf(why, whylen, "path too long");
      return SN_ERR_IO;
    }
    size_t n = 0;
    sn_status st = sn_read_image_file(path, d, &n, why, whylen);
    if (st != SN_OK) return st;
    return decode_fit(ds, r->row, d->file, n, out, d, why, whylen);
  }
  if (ds->info.encoded) {
    const sn_part *p = &ds->parts[part_of(ds, r->row)];
    const int64_t lr = r->row - p->first;
    return decode_fit(ds, r->row, f->raw + f->upos[r->u],
                      (size_t)(p->offsets[lr + 1] - p->offsets[lr]), out, d, why, whylen);
  }
  /* Raw rows fetched out of order: copied from the sorted fetch buffer. */
  if (!f->direct) memcpy(out, f->raw + f->upos[r->u], ds->row_bytes);
  return SN_OK;
}

void sn_dataset_row_label(const sn_dataset *ds, int64_t row, char *buf, size_t n) {
  if (ds->src.kind != SN_SOURCE_HDF5) {
    char path[4096];
    if (row >= 0 && row < ds->src.n && sn_listing_path(&ds->src, row, path, sizeof path))
      snprintf(buf, n, "file %s", path);
    else
      snprintf(buf, n, "%s: row %lld", ds->path, (long long)row);
    return;
  }
  const sn_part *p = &ds->parts[part_of(ds, row)];
  char *name = NULL;
  if (p->filenames >= 0) {
    sn_h5_lock();
    if (sn_h5_read_str_rows(p->filenames, row - p->first, 1, p->path, "dataset /filenames",
                            &name) != SN_OK)
      name = NULL;
    sn_h5_unlock();
  }
  char global[64] = "";
  if (ds->nparts > 1) snprintf(global, sizeof global, ", input row %lld", (long long)row);
  snprintf(buf, n, "file %s: row %lld%s%s%s%s", p->path, (long long)(row - p->first), global,
           name ? " (" : "", name ? name : "", name ? ")" : "");
  free(name);
}

sn_status sn_dataset_row_names(const sn_dataset *ds, const int64_t *rows, int64_t count,
                               char **strs) {
  if (!ds->has_names)
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: the rows have no names", ds->path);
  if (ds->src.kind != SN_SOURCE_HDF5) {
    for (int64_t i = 0; i < count; ++i)
      if (!(strs[i] = strdup(ds->src.names[rows[i]])))
        return sn_error_set(SN_ERR_NOMEM, "%s: names", ds->path);
    return SN_OK;
  }
  sn_status st = SN_OK;
  for (int64_t a = 0; st == SN_OK && a < count;) {
    const sn_part *p = &ds->parts[part_of(ds, rows[a])];
    int64_t b = a + 1;
    while (b < count && rows[b] < p->first + p->n)
      ++b;
    /* one read of the span [rows[a], rows[b-1]] of this file, then the rows picked from it */
    const int64_t lo = rows[a] - p->first, span = rows[b - 1] - rows[a] + 1;
    char **all = calloc((size_t)span, sizeof *all);
    if (!all) return sn_error_set(SN_ERR_NOMEM, "file %s: %lld names", p->path, (long long)span);
    sn_h5_lock();
    st = sn_h5_read_str_rows(p->filenames, lo, span, p->path, "dataset /filenames", all);
    sn_h5_unlock();
    for (int64_t i = a; st == SN_OK && i < b; ++i) {
      strs[i] = all[rows[i] - p->first - lo];
      all[rows[i] - p->first - lo] = NULL;
    }
    sn_h5_free_strs(all, span);
    a = b;
  }
  return st;
}

sn_status sn_dataset_check_row(const sn_dataset *ds, int64_t row, char *why, size_t whylen) {
  sn_fetch f;
  sn_decoder d;
  memset(&f, 0, sizeof f);
  memset(&d, 0, sizeof d);
  uint8_t *img = malloc(ds->row_bytes ? ds->row_bytes : 1);
  sn_status st =
      img ? sn_dataset_fetch((sn_dataset *)ds, &f, &row, 1, img)
          : sn_error_set(SN_ERR_NOMEM, "%s: check of row %lld", ds->path, (long long)row);
  if (st == SN_OK)
    st = sn_dataset_place_one(ds, &f, 0, img, &d, why, whylen);
  else
    snprintf(why, whylen, "%s", sn_last_error());
  free(img);
  sn_fetch_free(&f);
  sn_decoder_free(&d);
  return st;
}

sn_status sn_dataset_read_rows(sn_dataset *ds, const int64_t *rows, int count, void *images,
                               int32_t *labels) {
  sn_status st = sn_dataset_fetch(ds, &ds->fetch, rows, count, images);
  if (st != SN_OK || count == 0) return st;
  char why[512], label[1024];
  for (int k = 0; k < count; ++k) {
    st = sn_dataset_place_one(ds, &ds->fetch, k, images, &ds->dec, why, sizeof why);
    if (st != SN_OK) {
      sn_dataset_row_label(ds, ds->fetch.refs[k].row, label, sizeof label);
      return sn_error_set(st, "%s: %s", label, why);
    }
  }
  if (labels) {
    if (!ds->labels)
      return sn_error_set(SN_ERR_INVALID, "file %s: the dataset has no labels", ds->path);
    for (int i = 0; i < count; ++i)
      labels[ds->fetch.refs[i].dest] = ds->labels[ds->fetch.refs[i].row];
  }
  return SN_OK;
}
