/* writer.c - inference outputs written collectively into one HDF5 file (docs/hdf5-schema.md):
 * predictions, logits, features (float32 or IEEE half), row index and per-row done markers for
 * resuming; complete = 1 is written last. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_impl.h"

enum { D_IDX, D_VAL, D_LOGITS, D_FEAT, D_INDEX, D_DONE, D_COUNT };
static const char *const dnames[D_COUNT] = {
    "predictions/top_k_indices", "predictions/top_k_scores", "logits", "features", "index", "done"};

struct sn_writer {
  char *path;
  sn_comm *comm;
  sn_writer_config cfg;
  hid_t file, dxpl, half;
  hid_t d[D_COUNT]; /* -1 when not written */
  int64_t cols[D_COUNT];
  int64_t chunk;
  uint8_t *done;   /* (n): rows written, as far as this rank knows */
  uint16_t *f16;   /* (cap * D) conversion buffer */
  int64_t *rowids; /* (cap) */
  uint8_t *ones;   /* (cap) */
  size_t cap;
  int finished;
};

void sn_writer_config_init(sn_writer_config *c) {
  memset(c, 0, sizeof *c);
  c->top_k = 5;
  c->flags = SN_WRITE_PREDICTIONS;
}

/* IEEE binary16 from binary32, round to nearest even; overflow -> inf, NaN stays NaN. */
static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xFFu;
  uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u | (mant >> 13) : 0));
  const int32_t e = (int32_t)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7C00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h; /* a carry rounds up the exponent */
  return (uint16_t)(sign | h);
}

/* The half type h5py and numpy use (float16). */
static hid_t half_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

static sn_status fail(sn_writer *w, sn_status s, const char *what) {
  char det[256];
  return sn_error_set(s, "file %s: %s: %s", w->path, what, sn_h5_detail(det, sizeof det));
}

static hid_t file_type(const sn_writer *w, int i) {
  switch (i) {
  case D_IDX:
    return H5T_STD_I32LE;
  case D_VAL:
  case D_LOGITS:
    return H5T_IEEE_F32LE;
  case D_FEAT:
    return w->cfg.feature_dtype == SN_FEATURES_F16 ? w->half : H5T_IEEE_F32LE;
  case D_INDEX:
    return H5T_STD_I64LE;
  default:
    return H5T_STD_U8LE;
  }
}

static hid_t mem_type(const sn_writer *w, int i) {
  switch (i) {
  case D_IDX:
    return H5T_NATIVE_INT32;
  case D_VAL:
  case D_LOGITS:
    return H5T_NATIVE_FLOAT;
  case D_FEAT:
    return w->cfg.feature_dtype == SN_FEATURES_F16 ? w->half : H5T_NATIVE_FLOAT;
  case D_INDEX:
    return H5T_NATIVE_INT64;
  default:
    return H5T_NATIVE_UINT8;
  }
}

static sn_status check_config(const char *path, const sn_writer_config *c) {
  const int pred = (c->flags & SN_WRITE_PREDICTIONS) && c->top_k > 0;
  if (c->n_total < 1 || c->n_total > SN_IO_MAX_ROWS || c->compression < 0 || c->compression > 9 ||
      c->chunk_rows < 0 || (c->flags & ~7u) ||
      (pred && (c->classes < 1 || c->top_k > c->classes)) ||
      ((c->flags & SN_WRITE_LOGITS) && c->classes < 1) ||
      ((c->flags & SN_WRITE_FEATURES) && c->feature_dim < 1) ||
      (c->feature_dtype != SN_FEATURES_F32 && c->feature_dtype != SN_FEATURES_F16))
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: invalid output configuration (rows %lld, top_k %d, classes %d, "
                        "feature dim %d, flags %u, compression %d)",
                        path ? path : "(null)", (long long)c->n_total, c->top_k, c->classes,
                        c->feature_dim, c->flags, c->compression);
  return SN_OK;
}

enum { SN_WRITER_CHUNKS_PER_RANK = 4, SN_WRITER_MIN_CHUNK = 64 };

static void set_columns(sn_writer *w) {
  const sn_writer_config *c = &w->cfg;
  for (int i = 0; i < D_COUNT; ++i)
    w->cols[i] = 0;
  if ((c->flags & SN_WRITE_PREDICTIONS) && c->top_k > 0) w->cols[D_IDX] = w->cols[D_VAL] = c->top_k;
  if (c->flags & SN_WRITE_LOGITS) w->cols[D_LOGITS] = c->classes;
  if (c->flags & SN_WRITE_FEATURES) w->cols[D_FEAT] = c->feature_dim;
  w->cols[D_INDEX] = w->cols[D_DONE] = 1; /* 1-D */
  int64_t widest = 8;
  for (int i = 0; i < D_COUNT; ++i) {
    int64_t b = w->cols[i] * (int64_t)(i == D_FEAT && c->feature_dtype == SN_FEATURES_F16 ? 2 : 4);
    if (b > widest) widest = b;
  }
  int64_t k = c->chunk_rows > 0 ? c->chunk_rows : ((int64_t)1 << 20) / widest;
  if (c->chunk_rows <= 0) {
    if (k > 65536) k = 65536;
    /* Ranks write whole chunks of their own (jobs align their shares to chunks): keep at least
     * SN_WRITER_CHUNKS_PER_RANK chunks per rank so a small output still spreads over the ranks,
     * unless that makes chunks smaller than SN_WRITER_MIN_CHUNK rows. */
    const int64_t want = (int64_t)SN_WRITER_CHUNKS_PER_RANK * sn_comm_size(w->comm);
    int64_t balanced = (c->n_total + want - 1) / want;
    if (balanced < SN_WRITER_MIN_CHUNK) balanced = SN_WRITER_MIN_CHUNK;
    if (balanced < k) k = balanced;
  }
  if (k < 1) k = 1;
  if (k > c->n_total) k = c->n_total;
  w->chunk = k;
}

static sn_status create_datasets(sn_writer *w) {
  for (int i = 0; i < D_COUNT; ++i) {
    if (!w->cols[i]) continue;
    hsize_t dims[2] = {(hsize_t)w->cfg.n_total, (hsize_t)w->cols[i]};
    const int rank = i == D_INDEX || i == D_DONE ? 1 : 2;
    const int gz = i == D_DONE ? 0 : w->cfg.compression;
    sn_status st = sn_h5_create_dataset(w->file, dnames[i], file_type(w, i), rank, dims,
                                        (hsize_t)w->chunk, gz, w->path, &w->d[i]);
    if (st != SN_OK) return st;
  }
  /* /done starts at 0 everywhere (fill time is never: write it). */
  size_t n = (size_t)w->cfg.n_total;
  if (sn_comm_rank(w->comm) == 0) memset(w->done, 0, n);
  int64_t b = sn_comm_rank(w->comm) == 0 ? 0 : (int64_t)n,
          cnt = sn_comm_rank(w->comm) == 0 ? (int64_t)n : 0;
  sn_status st =
      sn_h5_write_rows(w->d[D_DONE], H5T_NATIVE_UINT8, b, cnt, w->done, w->dxpl, w->path);
  if (st != SN_OK) return st;
  return sn_h5_write_int_attr(w->file, "complete", 0, w->path);
}

/* Reopens the datasets of an existing output and checks them against the configuration. */
static sn_status open_datasets(sn_writer *w) {
  for (int i = 0; i < D_COUNT; ++i) {
    if (!w->cols[i]) continue;
    if (H5Lexists(w->file, i <= D_VAL ? "predictions" : dnames[i], H5P_DEFAULT) <= 0 ||
        H5Lexists(w->file, dnames[i], H5P_DEFAULT) <= 0)
      return sn_error_set(SN_ERR_SHAPE, "file %s: cannot resume: dataset /%s is missing", w->path,
                          dnames[i]);
    w->d[i] = H5Dopen2(w->file, dnames[i], H5P_DEFAULT);
    if (w->d[i] < 0) return fail(w, SN_ERR_FORMAT, "cannot resume: a dataset does not open");
    hid_t s = H5Dget_space(w->d[i]);
    hsize_t dims[2] = {0, 0};
    const int rank = H5Sget_simple_extent_ndims(s);
    if (rank >= 1 && rank <= 2) H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    const int want_rank = i == D_INDEX || i == D_DONE ? 1 : 2;
    hid_t t = H5Dget_type(w->d[i]);
    const int same_type = H5Tequal(t, file_type(w, i)) > 0;
    H5Tclose(t);
    if (rank != want_rank || dims[0] != (hsize_t)w->cfg.n_total ||
        (want_rank == 2 && dims[1] != (hsize_t)w->cols[i]) || !same_type)
      return sn_error_set(SN_ERR_SHAPE,
                          "file %s: cannot resume: dataset /%s has shape (%llu,%llu) rank %d%s but "
                          "this run needs (%lld,%lld)",
                          w->path, dnames[i], (unsigned long long)dims[0],
                          (unsigned long long)dims[1], rank, same_type ? "" : " of another type",
                          (long long)w->cfg.n_total, (long long)w->cols[i]);
  }
  /* The file's own chunking (it may have been created by another number of ranks). */
  hid_t dcpl = H5Dget_create_plist(w->d[D_DONE]);
  hsize_t cdims[1] = {0};
  if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, cdims) == 1 &&
      cdims[0] > 0)
    w->chunk = (int64_t)cdims[0];
  if (dcpl >= 0) H5Pclose(dcpl);
  int64_t complete = 0;
  sn_status a = sn_h5_read_int_attr(w->file, "complete", w->path, "/", &complete);
  if (a == SN_OK && complete == 1) {
    memset(w->done, 1, (size_t)w->cfg.n_total);
    return SN_OK;
  }
  if (H5Dread(w->d[D_DONE], H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, w->dxpl, w->done) < 0)
    return fail(w, SN_ERR_FORMAT, "dataset /done: cannot read");
  return SN_OK;
}

sn_status sn_writer_create(const char *path, sn_comm *comm, const sn_writer_config *cfg,
                           sn_writer **out) {
  if (!out || !cfg || !path) return sn_error_set(SN_ERR_INVALID, "sn_writer_create: NULL argument");
  *out = NULL;
  sn_status st = check_config(path, cfg);
  if (st != SN_OK) return st;
  sn_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path)) || !(w->done = malloc((size_t)cfg->n_total))) {
    if (w) free(w->path);
    free(w);
    return sn_error_set(SN_ERR_NOMEM, "file %s: writer of %lld rows", path,
                        (long long)cfg->n_total);
  }
  w->comm = comm ? comm : sn_comm_serial();
  w->cfg = *cfg;
  w->file = w->dxpl = w->half = -1;
  for (int i = 0; i < D_COUNT; ++i)
    w->d[i] = -1;
  set_columns(w);
  /* Does the file exist? Rank 0 decides for everybody. */
  int32_t exists = 0;
  if (sn_comm_rank(w->comm) == 0) {
    struct stat sb;
    exists = stat(path, &sb) == 0;
  }
  st = sn_comm_bcast(w->comm, &exists, sizeof exists, 0);
  const int reopen = st == SN_OK && cfg->resume && exists;
  if (st == SN_OK) {
    sn_h5_lock();
    w->half = half_type();
    w->dxpl = sn_h5_dxpl(w->comm, path);
    hid_t fapl = sn_h5_fapl(w->comm, path);
    if (reopen) {
      w->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
      st = w->file < 0 ? fail(w, SN_ERR_IO, "cannot reopen to resume") : open_datasets(w);
    } else {
      w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
      st = w->file < 0 ? fail(w, SN_ERR_IO, "cannot create") : create_datasets(w);
    }
    if (fapl >= 0) H5Pclose(fapl);
    if (st == SN_OK && !reopen && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
      st = fail(w, SN_ERR_IO, "cannot flush");
    sn_h5_unlock();
  }
  /* rank 0 wrote the zeros of /done; the others know them too */
  if (st == SN_OK && !reopen) memset(w->done, 0, (size_t)cfg->n_total);
  st = sn_comm_agree(w->comm, st);
  if (st != SN_OK) {
    w->finished = 0;
    sn_writer_destroy(w);
    return st;
  }
  *out = w;
  return SN_OK;
}

sn_status sn_writer_missing_rows(const sn_writer *w, int64_t **rows, int64_t *count) {
  *rows = NULL;
  *count = 0;
  if (!w) return sn_error_set(SN_ERR_INVALID, "sn_writer_missing_rows: NULL writer");
  int64_t n = 0;
  for (int64_t i = 0; i < w->cfg.n_total; ++i)
    n += !w->done[i];
  if (n == 0) return SN_OK;
  int64_t *r = malloc((size_t)n * sizeof *r);
  if (!r) return sn_error_set(SN_ERR_NOMEM, "file %s: %lld missing rows", w->path, (long long)n);
  int64_t j = 0;
  for (int64_t i = 0; i < w->cfg.n_total; ++i)
    if (!w->done[i]) r[j++] = i;
  *rows = r;
  *count = n;
  return SN_OK;
}

int64_t sn_writer_chunk_rows(const sn_writer *w) { return w ? w->chunk : 0; }

sn_status sn_writer_set_attr_str(sn_writer *w, const char *name, const char *value) {
  if (!w || !name || !value || w->finished)
    return sn_error_set(SN_ERR_INVALID, "sn_writer_set_attr_str: invalid arguments");
  sn_h5_lock();
  if (H5Aexists(w->file, name) > 0) H5Adelete(w->file, name);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(value) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(w->file, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, t, value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  sn_status st = e < 0 ? fail(w, SN_ERR_IO, "cannot write an attribute") : SN_OK;
  sn_h5_unlock();
  return sn_comm_agree(w->comm, st);
}

static sn_status ensure_cap(sn_writer *w, int count) {
  if ((size_t)count <= w->cap) return SN_OK;
  const size_t d = w->cfg.feature_dim > 0 ? (size_t)w->cfg.feature_dim : 1;
  uint16_t *h = realloc(w->f16, (size_t)count * d * sizeof *h);
  if (h) w->f16 = h;
  int64_t *r = realloc(w->rowids, (size_t)count * sizeof *r);
  if (r) w->rowids = r;
  uint8_t *o = realloc(w->ones, (size_t)count);
  if (o) w->ones = o;
  if (!h || !r || !o)
    return sn_error_set(SN_ERR_NOMEM, "file %s: buffers for %d rows", w->path, count);
  memset(w->ones, 1, (size_t)count);
  w->cap = (size_t)count;
  return SN_OK;
}

sn_status sn_writer_write_block(sn_writer *w, int64_t row_begin, int count,
                                const int32_t *top_k_indices, const float *top_k_scores,
                                const float *logits, const float *features, const int64_t *index) {
  if (!w) return sn_error_set(SN_ERR_INVALID, "sn_writer_write_block: NULL writer");
  sn_status st = SN_OK;
  const void *src[D_COUNT] = {top_k_indices, top_k_scores, logits, features, index, NULL};
  if (w->finished || count < 0 || row_begin < 0 || row_begin > w->cfg.n_total - count)
    st =
        sn_error_set(SN_ERR_INVALID, "file %s: cannot write rows [%lld, %lld) of %lld", w->path,
                     (long long)row_begin, (long long)row_begin + count, (long long)w->cfg.n_total);
  for (int i = 0; st == SN_OK && count > 0 && i < D_INDEX; ++i)
    if (w->cols[i] && !src[i])
      st = sn_error_set(SN_ERR_INVALID, "file %s: no data given for /%s", w->path, dnames[i]);
  if (st == SN_OK) st = ensure_cap(w, count);
  st = sn_comm_agree(w->comm, st);
  if (st != SN_OK) return st;
  if (w->cols[D_FEAT] && w->cfg.feature_dtype == SN_FEATURES_F16 && count > 0) {
    const size_t n = (size_t)count * (size_t)w->cfg.feature_dim;
    for (size_t i = 0; i < n; ++i)
      w->f16[i] = f32_to_f16(features[i]);
    src[D_FEAT] = w->f16;
  }
  if (!index) {
    for (int i = 0; i < count; ++i)
      w->rowids[i] = row_begin + i;
    src[D_INDEX] = w->rowids;
  }
  src[D_DONE] = w->ones;
  sn_h5_lock();
  for (int i = 0; st == SN_OK && i < D_COUNT; ++i) {
    if (w->d[i] < 0) continue;
    st = sn_h5_write_rows(w->d[i], mem_type(w, i), row_begin, count, src[i], w->dxpl, w->path);
  }
  if (st == SN_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) st = fail(w, SN_ERR_IO, "flush");
  sn_h5_unlock();
  if (st == SN_OK && count > 0) memset(w->done + row_begin, 1, (size_t)count);
  return sn_comm_agree(w->comm, st);
}

static void close_all(sn_writer *w) {
  sn_h5_lock();
  for (int i = 0; i < D_COUNT; ++i)
    if (w->d[i] >= 0) H5Dclose(w->d[i]);
  for (int i = 0; i < D_COUNT; ++i)
    w->d[i] = -1;
  if (w->dxpl >= 0) H5Pclose(w->dxpl);
  if (w->half >= 0) H5Tclose(w->half);
  if (w->file >= 0) H5Fclose(w->file);
  w->file = w->dxpl = w->half = -1;
  sn_h5_unlock();
}

sn_status sn_writer_finish(sn_writer *w) {
  if (!w || w->finished) return sn_error_set(SN_ERR_INVALID, "sn_writer_finish: no open writer");
  /* Rows done anywhere: the union over ranks of what each knows. */
  sn_status st = sn_comm_allreduce(w->comm, w->done, (size_t)w->cfg.n_total, SN_U8, SN_MAX);
  if (st != SN_OK) return st;
  int64_t missing = 0, first = -1;
  for (int64_t i = 0; i < w->cfg.n_total; ++i)
    if (!w->done[i]) {
      if (first < 0) first = i;
      ++missing;
    }
  if (missing) {
    close_all(w);
    w->finished = 1;
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: %lld of %lld rows not written (first: row %lld); the output "
                        "stays incomplete",
                        w->path, (long long)missing, (long long)w->cfg.n_total, (long long)first);
  }
  sn_h5_lock();
  if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) st = fail(w, SN_ERR_IO, "flush");
  if (st == SN_OK) st = sn_h5_write_int_attr(w->file, "complete", 1, w->path);
  if (st == SN_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) st = fail(w, SN_ERR_IO, "flush");
  sn_h5_unlock();
  close_all(w);
  w->finished = 1;
  return sn_comm_agree(w->comm, st);
}

void sn_writer_destroy(sn_writer *w) {
  if (!w) return;
  if (!w->finished) close_all(w);
  free(w->path);
  free(w->done);
  free(w->f16);
  free(w->rowids);
  free(w->ones);
  free(w);
}

sn_status sn_output_status(const char *path, sn_output_state *state) {
  *state = SN_OUTPUT_MISSING;
  struct stat sb;
  if (!path || stat(path, &sb) != 0) {
    if (path && errno != ENOENT)
      return sn_error_set(SN_ERR_IO, "file %s: cannot check: %s", path, strerror(errno));
    return SN_OK;
  }
  sn_h5_lock();
  sn_status st = SN_OK;
  if (H5Fis_hdf5(path) <= 0) {
    st = sn_error_set(SN_ERR_FORMAT, "file %s: exists but is not an HDF5 file", path);
  } else {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
      /* An HDF5 signature that does not open: a crashed write; treat as incomplete. */
      *state = SN_OUTPUT_INCOMPLETE;
    } else {
      int64_t c = 0;
      *state = sn_h5_read_int_attr(f, "complete", path, "/", &c) == SN_OK && c == 1
                   ? SN_OUTPUT_COMPLETE
                   : SN_OUTPUT_INCOMPLETE;
      H5Fclose(f);
    }
  }
  sn_h5_unlock();
  return st;
}

/* ---------------------------------------------------------------- work split and staging */

/* The write units of an ascending row list: runs of consecutive rows inside one chunk. *begins
 * and *counts (malloc'd, *n entries). */
static sn_status cut_units(const sn_writer *w, const int64_t *rows, int64_t count, int64_t **begins,
                           int **counts, int64_t *n) {
  *begins = malloc((count ? (size_t)count : 1) * sizeof **begins);
  *counts = malloc((count ? (size_t)count : 1) * sizeof **counts);
  if (!*begins || !*counts) {
    free(*begins);
    free(*counts);
    *begins = NULL;
    *counts = NULL;
    return sn_error_set(SN_ERR_NOMEM, "file %s: write units of %lld rows", w->path,
                        (long long)count);
  }
  int64_t k = 0;
  for (int64_t i = 0; i < count;) {
    int64_t j = i + 1;
    while (j < count && rows[j] == rows[j - 1] + 1 && rows[j] / w->chunk == rows[i] / w->chunk)
      ++j;
    (*begins)[k] = rows[i];
    (*counts)[k++] = (int)(j - i);
    i = j;
  }
  *n = k;
  return SN_OK;
}

sn_status sn_writer_local_rows(const sn_writer *w, int64_t **rows, int64_t *count,
                               int64_t *writes) {
  *rows = NULL;
  *count = 0;
  if (writes) *writes = 0;
  int64_t *missing = NULL, nmissing = 0, *begins = NULL, nunits = 0;
  int *counts = NULL;
  sn_status st = sn_writer_missing_rows(w, &missing, &nmissing);
  if (st == SN_OK) st = cut_units(w, missing, nmissing, &begins, &counts, &nunits);
  free(missing);
  if (st != SN_OK) return st;
  /* this rank's block of units; rank 0's block is the largest */
  const int rank = sn_comm_rank(w->comm), size = sn_comm_size(w->comm);
  int64_t ub, ue, b0, e0, n = 0;
  sn_shard_block(nunits, rank, size, &ub, &ue);
  sn_shard_block(nunits, 0, size, &b0, &e0);
  for (int64_t u = ub; u < ue; ++u)
    n += counts[u];
  int64_t *r = n ? malloc((size_t)n * sizeof *r) : NULL;
  if (n && !r) st = sn_error_set(SN_ERR_NOMEM, "file %s: %lld rows", w->path, (long long)n);
  for (int64_t u = ub, k = 0; r && u < ue; ++u)
    for (int j = 0; j < counts[u]; ++j)
      r[k++] = begins[u] + j;
  free(begins);
  free(counts);
  if (st != SN_OK) return st;
  *rows = r;
  *count = n;
  if (writes) *writes = e0 - b0;
  return SN_OK;
}

/* The staged datasets, D_IDX..D_FEAT: int32 or float32 values, 4 bytes each. */
enum { S_IDX, S_VAL, S_LOGITS, S_FEAT, S_COUNT };
_Static_assert(sizeof(int32_t) == sizeof(float), "staged values are 4 bytes");

struct sn_staging {
  sn_writer *w;
  int64_t *rows, nrows; /* this rank's share, ascending */
  int64_t *begins;      /* (nunits) first row of each write unit */
  int *counts;          /* (nunits) rows of each write unit */
  int64_t nunits, unit; /* units of this rank; the next one to write */
  int64_t writes;       /* collective writes left */
  int64_t added, written;
  size_t width[S_COUNT]; /* values per row of each staged dataset (0: not written) */
  void *buf[S_COUNT];    /* (cap, width) staged rows, the next unit's first */
  int64_t cap, filled;
  int max_batch;
};

sn_status sn_staging_create(sn_writer *w, int max_batch, sn_staging **out) {
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_staging_create: out is NULL");
  *out = NULL;
  if (!w || w->finished || max_batch < 1)
    return sn_error_set(SN_ERR_INVALID, "sn_staging_create: no open writer or batch %d", max_batch);
  sn_staging *st = calloc(1, sizeof *st);
  if (!st) return sn_error_set(SN_ERR_NOMEM, "file %s: staging", w->path);
  st->w = w;
  st->max_batch = max_batch;
  sn_status s = sn_writer_local_rows(w, &st->rows, &st->nrows, &st->writes);
  if (s == SN_OK) s = cut_units(w, st->rows, st->nrows, &st->begins, &st->counts, &st->nunits);
  int64_t largest = 0;
  for (int64_t u = 0; s == SN_OK && u < st->nunits; ++u)
    if (st->counts[u] > largest) largest = st->counts[u];
  st->cap = largest + max_batch;
  for (int i = 0; s == SN_OK && i < S_COUNT; ++i) {
    st->width[i] = (size_t)w->cols[i];
    if (!st->width[i]) continue;
    st->buf[i] = malloc((size_t)st->cap * st->width[i] * sizeof(float));
    if (!st->buf[i])
      s = sn_error_set(SN_ERR_NOMEM, "file %s: staging of %lld rows", w->path, (long long)st->cap);
  }
  if (s != SN_OK) {
    sn_staging_destroy(st);
    return s;
  }
  *out = st;
  return SN_OK;
}

void sn_staging_destroy(sn_staging *st) {
  if (!st) return;
  for (int i = 0; i < S_COUNT; ++i)
    free(st->buf[i]);
  free(st->rows);
  free(st->begins);
  free(st->counts);
  free(st);
}

const int64_t *sn_staging_rows(const sn_staging *st, int64_t *count) {
  *count = st ? st->nrows : 0;
  return st ? st->rows : NULL;
}

int64_t sn_staging_writes(const sn_staging *st) { return st ? st->writes : 0; }

int64_t sn_staging_written(const sn_staging *st) { return st ? st->written : 0; }

int sn_staging_ready(const sn_staging *st) {
  return st->unit >= st->nunits || st->filled >= st->counts[st->unit];
}

sn_status sn_staging_add(sn_staging *st, int n, const int32_t *top_k_indices,
                         const float *top_k_scores, const float *logits, const float *features) {
  const void *src[S_COUNT] = {top_k_indices, top_k_scores, logits, features};
  if (!st || n < 0 || n > st->max_batch || st->added + n > st->nrows || st->filled + n > st->cap)
    return sn_error_set(
        SN_ERR_INVALID, "sn_staging_add: %d rows do not fit (%lld of %lld added, batch %d)", n,
        st ? (long long)st->added : 0LL, st ? (long long)st->nrows : 0LL, st ? st->max_batch : 0);
  for (int i = 0; i < S_COUNT; ++i)
    if (st->width[i] && n > 0 && !src[i])
      return sn_error_set(SN_ERR_INVALID, "file %s: no data given for /%s", st->w->path, dnames[i]);
  for (int i = 0; i < S_COUNT; ++i)
    if (st->width[i])
      memcpy((char *)st->buf[i] + (size_t)st->filled * st->width[i] * sizeof(float), src[i],
             (size_t)n * st->width[i] * sizeof(float));
  st->filled += n;
  st->added += n;
  return SN_OK;
}

sn_status sn_staging_write(sn_staging *st) {
  if (!st) return sn_error_set(SN_ERR_INVALID, "sn_staging_write: NULL staging");
  sn_status s = SN_OK;
  if (st->writes < 1 || !sn_staging_ready(st))
    s = sn_error_set(SN_ERR_INVALID, "file %s: staged rows written before they are complete",
                     st->w->path);
  s = sn_comm_agree(st->w->comm, s);
  if (s != SN_OK) return s;
  int64_t begin = 0;
  int count = 0;
  if (st->unit < st->nunits) {
    begin = st->begins[st->unit];
    count = st->counts[st->unit];
  }
  s = sn_writer_write_block(st->w, begin, count, st->buf[S_IDX], st->buf[S_VAL], st->buf[S_LOGITS],
                            st->buf[S_FEAT], NULL);
  if (s != SN_OK) return s;
  /* rows of the next unit computed already move to the front */
  const int64_t left = st->filled - count;
  for (int i = 0; i < S_COUNT && left > 0; ++i)
    if (st->width[i])
      memmove(st->buf[i], (char *)st->buf[i] + (size_t)count * st->width[i] * sizeof(float),
              (size_t)left * st->width[i] * sizeof(float));
  st->filled = left;
  st->written += count;
  st->unit += st->unit < st->nunits;
  st->writes--;
  return SN_OK;
}
