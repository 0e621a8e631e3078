/* writer.c - inference outputs written collectively into one HDF5 file (docs/hdf5-schema.md):
 * predictions, logits, features (float32 or IEEE half, (N, D) or (N, H, W, C)) and the input row
 * of each output row, a done marker per input for resuming, and at the end the rows' names, the
 * inputs skipped and the sources; complete = 1 is written last.
 *
 * Inputs and rows. Output rows are the inputs that were computed, in input order: an input left
 * out (a bad image skipped) has no row, so row r holds input /index[r]. Work goes in rounds over
 * windows of consecutive inputs: in each round rank k takes the k-th unit (a run of chunk-many
 * inputs) of the window, and after computing it the ranks exchange how many rows they kept, so
 * each knows where its rows go (sn_staging_write). The rows written so far are always those of a
 * prefix of the inputs, whatever the rank count, and a resumed run starts at the first input not
 * done. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_impl.h"

enum { D_IDX, D_VAL, D_LOGITS, D_FEAT, D_INDEX, D_DONE, D_COUNT };
static const char *const dnames[D_COUNT] = {
    "predictions/top_k_indices", "predictions/top_k_scores", "logits", "features", "index", "done"};
enum { DONE_PENDING = 0, DONE_WRITTEN = 1, DONE_SKIPPED = 2 };

struct sn_writer {
  char *path;
  sn_comm *comm;
  sn_writer_config cfg;
  hid_t file, dxpl, half;
  hid_t d[D_COUNT]; /* -1 when not written */
  int64_t cols[D_COUNT];
  int64_t chunk;
  uint8_t *done;    /* (n) per input, as far as this rank knows: DONE_* */
  int64_t start;    /* first input not done when the writer was opened: the work starts there */
  int64_t out_next; /* output rows of the inputs before the next round */
  int64_t out_rows, skipped; /* after sn_writer_finish */
  int64_t *skip_rows;        /* (nskip) inputs this rank skipped, and why (malloc'd) */
  char **skip_why;
  int64_t nskip, skip_cap;
  const sn_dataset *src; /* names the rows at the end; may be NULL */
  uint16_t *f16;         /* (cap * D) conversion buffer */
  int64_t *rowids;       /* (cap) */
  uint8_t *status;       /* (cap) */
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
  const int *fs = c->feature_shape;
  const int shaped = fs[0] > 0 || fs[1] > 0 || fs[2] > 0;
  if (c->n_total < 1 || c->n_total > SN_IO_MAX_ROWS || c->compression < 0 || c->compression > 9 ||
      c->chunk_rows < 0 || (c->flags & ~7u) ||
      (pred && (c->classes < 1 || c->top_k > c->classes)) ||
      ((c->flags & SN_WRITE_LOGITS) && c->classes < 1) ||
      ((c->flags & SN_WRITE_FEATURES) && c->feature_dim < 1) ||
      (shaped &&
       (fs[0] < 1 || fs[1] < 1 || fs[2] < 1 || (int64_t)fs[0] * fs[1] * fs[2] != c->feature_dim)) ||
      (c->feature_dtype != SN_FEATURES_F32 && c->feature_dtype != SN_FEATURES_F16))
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: invalid output configuration (rows %lld, top_k %d, classes %d, "
                        "feature dim %d (%dx%dx%d), flags %u, compression %d)",
                        path ? path : "(null)", (long long)c->n_total, c->top_k, c->classes,
                        c->feature_dim, fs[0], fs[1], fs[2], c->flags, c->compression);
  return SN_OK;
}

/* Rank and dims of dataset i (rows first; /features (N, H, W, C) when shaped). */
static int dims_of(const sn_writer *w, int i, int64_t rows, hsize_t *dims) {
  dims[0] = (hsize_t)rows;
  if (i == D_INDEX || i == D_DONE) return 1;
  if (i == D_FEAT && w->cfg.feature_shape[0] > 0) {
    for (int k = 0; k < 3; ++k)
      dims[k + 1] = (hsize_t)w->cfg.feature_shape[k];
    return 4;
  }
  dims[1] = (hsize_t)w->cols[i];
  return 2;
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
  const int64_t n = w->cfg.n_total;
  for (int i = 0; i < D_COUNT; ++i) {
    if (!w->cols[i]) continue;
    hsize_t dims[4];
    const int rank = dims_of(w, i, n, dims);
    const int gz = i == D_DONE ? 0 : w->cfg.compression;
    /* rows: as many as inputs at first; sn_writer_finish cuts them to the rows written */
    sn_status st = sn_h5_create_dataset_max(w->file, dnames[i], file_type(w, i), rank, dims,
                                            (hsize_t)n, (hsize_t)w->chunk, gz, w->path, &w->d[i]);
    if (st != SN_OK) return st;
  }
  /* /done starts at 0 everywhere (fill time is never: write it). */
  if (sn_comm_rank(w->comm) == 0) memset(w->done, 0, (size_t)n);
  int64_t b = sn_comm_rank(w->comm) == 0 ? 0 : n, cnt = sn_comm_rank(w->comm) == 0 ? n : 0;
  sn_status st =
      sn_h5_write_rows(w->d[D_DONE], H5T_NATIVE_UINT8, b, cnt, w->done, w->dxpl, w->path);
  if (st != SN_OK) return st;
  return sn_h5_write_int_attr(w->file, "complete", 0, w->path);
}

/* Reopens the datasets of an existing output and checks them against the configuration; row
 * datasets cut by an interrupted finish get back their full extent. */
static sn_status open_datasets(sn_writer *w) {
  const int64_t n = w->cfg.n_total;
  for (int i = 0; i < D_COUNT; ++i) {
    if (!w->cols[i]) continue;
    if (H5Lexists(w->file, i <= D_VAL ? "predictions" : dnames[i], H5P_DEFAULT) <= 0 ||
        H5Lexists(w->file, dnames[i], H5P_DEFAULT) <= 0)
      return sn_error_set(SN_ERR_SHAPE, "file %s: cannot resume: dataset /%s is missing", w->path,
                          dnames[i]);
    w->d[i] = H5Dopen2(w->file, dnames[i], H5P_DEFAULT);
    if (w->d[i] < 0) return fail(w, SN_ERR_FORMAT, "cannot resume: a dataset does not open");
    hid_t s = H5Dget_space(w->d[i]);
    hsize_t dims[4] = {0, 0, 0, 0}, maxd[4] = {0, 0, 0, 0}, want[4] = {0, 0, 0, 0};
    const int rank = H5Sget_simple_extent_ndims(s);
    if (rank >= 1 && rank <= 4) H5Sget_simple_extent_dims(s, dims, maxd);
    H5Sclose(s);
    const int want_rank = dims_of(w, i, n, want);
    hid_t t = H5Dget_type(w->d[i]);
    const int same_type = H5Tequal(t, file_type(w, i)) > 0;
    H5Tclose(t);
    int same = rank == want_rank && same_type && maxd[0] >= (hsize_t)n &&
               (i == D_DONE ? dims[0] == (hsize_t)n : dims[0] <= (hsize_t)n);
    for (int k = 1; k < want_rank; ++k)
      same &= dims[k] == want[k];
    if (!same) {
      int64_t have64[4], want64[4];
      for (int k = 0; k < 4; ++k) {
        have64[k] = (int64_t)dims[k];
        want64[k] = (int64_t)want[k];
      }
      char a[96], b[96];
      return sn_error_set(
          SN_ERR_SHAPE,
          "file %s: cannot resume: dataset /%s has shape %s%s but this run needs "
          "%s",
          w->path, dnames[i], sn_h5_shape_str(rank < 0 || rank > 4 ? 0 : rank, have64, a, sizeof a),
          same_type ? "" : " of another type", sn_h5_shape_str(want_rank, want64, b, sizeof b));
    }
    if (dims[0] != (hsize_t)n && H5Dset_extent(w->d[i], want) < 0)
      return fail(w, SN_ERR_IO, "cannot resume: cannot restore the rows of a dataset");
  }
  /* The file's own chunking (it may have been created by another number of ranks). */
  hid_t dcpl = H5Dget_create_plist(w->d[D_DONE]);
  hsize_t cdims[1] = {0};
  if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, cdims) == 1 &&
      cdims[0] > 0)
    w->chunk = (int64_t)cdims[0];
  if (dcpl >= 0) H5Pclose(dcpl);
  if (H5Dread(w->d[D_DONE], H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, w->dxpl, w->done) < 0)
    return fail(w, SN_ERR_FORMAT, "dataset /done: cannot read");
  return SN_OK;
}

/* Where a reopened output continues: the first input not done, and the rows before it. The last
 * of those rows must hold the last input before it that was written. */
static sn_status find_start(sn_writer *w) {
  const int64_t n = w->cfg.n_total;
  int64_t i = 0, rows = 0, last = -1;
  for (; i < n && w->done[i] != DONE_PENDING; ++i)
    if (w->done[i] == DONE_WRITTEN) {
      rows++;
      last = i;
    } else if (w->done[i] != DONE_SKIPPED) {
      return sn_error_set(SN_ERR_FORMAT, "file %s: dataset /done: input %lld has status %d",
                          w->path, (long long)i, w->done[i]);
    }
  w->start = i;
  w->out_next = rows;
  if (rows == 0) return SN_OK;
  int64_t got = -1;
  hid_t fs = H5Dget_space(w->d[D_INDEX]);
  hsize_t off[1] = {(hsize_t)(rows - 1)}, one[1] = {1};
  hid_t ms = H5Screate_simple(1, one, NULL);
  herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, one, NULL);
  if (e >= 0) e = H5Dread(w->d[D_INDEX], H5T_NATIVE_INT64, ms, fs, w->dxpl, &got);
  H5Sclose(ms);
  H5Sclose(fs);
  if (e < 0) return fail(w, SN_ERR_FORMAT, "dataset /index: cannot read");
  if (got != last)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: cannot resume: row %lld holds input %lld in /index but /done "
                        "says input %lld (a damaged output; use --force)",
                        w->path, (long long)(rows - 1), (long long)got, (long long)last);
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
      if (st == SN_OK) st = find_start(w);
    } else {
      w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
      st = w->file < 0 ? fail(w, SN_ERR_IO, "cannot create") : create_datasets(w);
    }
    if (fapl >= 0) H5Pclose(fapl);
    if (st == SN_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
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

sn_status sn_writer_set_source(sn_writer *w, const sn_dataset *ds) {
  if (!w || w->finished) return sn_error_set(SN_ERR_INVALID, "sn_writer_set_source: no writer");
  if (ds && ds->info.n != w->cfg.n_total)
    return sn_error_set(SN_ERR_INVALID, "file %s: the output has %lld inputs but %s has %lld rows",
                        w->path, (long long)w->cfg.n_total, ds->path, (long long)ds->info.n);
  w->src = ds;
  return SN_OK;
}

sn_status sn_writer_missing_rows(const sn_writer *w, int64_t **rows, int64_t *count) {
  *rows = NULL;
  *count = 0;
  if (!w) return sn_error_set(SN_ERR_INVALID, "sn_writer_missing_rows: NULL writer");
  int64_t n = 0;
  for (int64_t i = 0; i < w->cfg.n_total; ++i)
    n += w->done[i] == DONE_PENDING;
  if (n == 0) return SN_OK;
  int64_t *r = malloc((size_t)n * sizeof *r);
  if (!r) return sn_error_set(SN_ERR_NOMEM, "file %s: %lld missing rows", w->path, (long long)n);
  int64_t j = 0;
  for (int64_t i = 0; i < w->cfg.n_total; ++i)
    if (w->done[i] == DONE_PENDING) r[j++] = i;
  *rows = r;
  *count = n;
  return SN_OK;
}

int64_t sn_writer_chunk_rows(const sn_writer *w) { return w ? w->chunk : 0; }

void sn_writer_counts(const sn_writer *w, int64_t *rows, int64_t *skipped) {
  if (rows) *rows = w ? w->out_rows : 0;
  if (skipped) *skipped = w ? w->skipped : 0;
}

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
  uint8_t *o = realloc(w->status, (size_t)count);
  if (o) w->status = o;
  if (!h || !r || !o)
    return sn_error_set(SN_ERR_NOMEM, "file %s: buffers for %d rows", w->path, count);
  w->cap = (size_t)count;
  return SN_OK;
}

/* Writes output rows [out_begin, out_begin + count) (the datasets of rows, /index = index) and
 * the status of inputs [in_begin, in_begin + in_count) (status: (in_count) DONE_*), then flushes.
 * Collective: every rank calls it, with counts of 0 when it has nothing. */
static sn_status write_rows_and_status(sn_writer *w, int64_t out_begin, int count,
                                       const void *const src_in[D_INDEX + 1], int64_t in_begin,
                                       int in_count, const uint8_t *status) {
  const void *src[D_COUNT];
  for (int i = 0; i <= D_INDEX; ++i)
    src[i] = src_in[i];
  src[D_DONE] = status;
  if (w->cols[D_FEAT] && w->cfg.feature_dtype == SN_FEATURES_F16 && count > 0) {
    const float *features = src[D_FEAT];
    const size_t n = (size_t)count * (size_t)w->cfg.feature_dim;
    for (size_t i = 0; i < n; ++i)
      w->f16[i] = f32_to_f16(features[i]);
    src[D_FEAT] = w->f16;
  }
  sn_status st = SN_OK;
  sn_h5_lock();
  for (int i = 0; st == SN_OK && i < D_COUNT; ++i) {
    if (w->d[i] < 0) continue;
    if (i == D_DONE)
      st = sn_h5_write_rows(w->d[i], mem_type(w, i), in_begin, in_count, src[i], w->dxpl, w->path);
    else
      st = sn_h5_write_rows(w->d[i], mem_type(w, i), out_begin, count, src[i], w->dxpl, w->path);
  }
  if (st == SN_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) st = fail(w, SN_ERR_IO, "flush");
  sn_h5_unlock();
  if (st == SN_OK)
    for (int i = 0; i < in_count; ++i)
      w->done[in_begin + i] = status[i];
  return sn_comm_agree(w->comm, st);
}

sn_status sn_writer_write_block(sn_writer *w, int64_t row_begin, int count,
                                const int32_t *top_k_indices, const float *top_k_scores,
                                const float *logits, const float *features, const int64_t *index) {
  if (!w) return sn_error_set(SN_ERR_INVALID, "sn_writer_write_block: NULL writer");
  sn_status st = SN_OK;
  const void *src[D_INDEX + 1] = {top_k_indices, top_k_scores, logits, features, index};
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
  if (!index) {
    for (int i = 0; i < count; ++i)
      w->rowids[i] = row_begin + i;
    src[D_INDEX] = w->rowids;
  }
  memset(w->status, DONE_WRITTEN, (size_t)count);
  return write_rows_and_status(w, row_begin, count, src, row_begin, count, w->status);
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

/* ---------------------------------------------------------------- finishing */

static int cmp_skip(const void *a, const void *b) {
  const int64_t x = **(const int64_t *const *)a, y = **(const int64_t *const *)b;
  return x < y ? -1 : x > y;
}

/* Every rank's skipped inputs and reasons, gathered on rank 0 into (*rows, *why) (n entries,
 * sorted by input). Collective. */
static sn_status gather_skipped(sn_writer *w, int64_t **rows, char ***why, int64_t *n) {
  *rows = NULL;
  *why = NULL;
  *n = 0;
  const int rank = sn_comm_rank(w->comm), size = sn_comm_size(w->comm);
  /* this rank's blob: (input int64, reason NUL-terminated) ... */
  size_t len = 0;
  for (int64_t i = 0; i < w->nskip; ++i)
    len += sizeof(int64_t) + strlen(w->skip_why[i]) + 1;
  int64_t *lens = calloc((size_t)size, sizeof *lens);
  char *mine = malloc(len ? len : 1);
  sn_status st =
      lens && mine ? SN_OK : sn_error_set(SN_ERR_NOMEM, "file %s: skipped list", w->path);
  if (st == SN_OK) {
    char *p = mine;
    for (int64_t i = 0; i < w->nskip; ++i) {
      memcpy(p, &w->skip_rows[i], sizeof(int64_t));
      p = stpcpy(p + sizeof(int64_t), w->skip_why[i]) + 1;
    }
  }
  st = sn_comm_agree(w->comm, st);
  const int64_t l64 = (int64_t)len;
  if (st == SN_OK) st = sn_comm_allgather(w->comm, &l64, lens, sizeof l64);
  int64_t total = 0, count = 0;
  char *all = NULL;
  if (st == SN_OK) {
    for (int r = 0; r < size; ++r)
      total += lens[r];
    all = malloc(total ? (size_t)total : 1);
    if (!all) st = sn_error_set(SN_ERR_NOMEM, "file %s: skipped list", w->path);
  }
  st = sn_comm_agree(w->comm, st);
  /* each rank's blob in turn (bad images are few) */
  int64_t at = 0;
  for (int r = 0; st == SN_OK && r < size; ++r) {
    if (r == rank) memcpy(all + at, mine, (size_t)lens[r]);
    if (lens[r] > 0 && size > 1) st = sn_comm_bcast(w->comm, all + at, (size_t)lens[r], r);
    at += lens[r];
  }
  free(mine);
  free(lens);
  if (st != SN_OK || rank != 0) {
    free(all);
    return st;
  }
  for (const char *p = all; p < all + total; p += sizeof(int64_t) + strlen(p + sizeof(int64_t)) + 1)
    count++;
  int64_t **order = malloc((count ? (size_t)count : 1) * sizeof *order);
  *rows = malloc((count ? (size_t)count : 1) * sizeof **rows);
  *why = calloc(count ? (size_t)count : 1, sizeof **why);
  int64_t *tmp = malloc((count ? (size_t)count : 1) * sizeof *tmp);
  char **tw = calloc(count ? (size_t)count : 1, sizeof *tw);
  if (!order || !*rows || !*why || !tmp || !tw) {
    st = sn_error_set(SN_ERR_NOMEM, "file %s: skipped list", w->path);
  } else {
    int64_t k = 0;
    for (const char *p = all; p < all + total; ++k) {
      memcpy(&tmp[k], p, sizeof(int64_t));
      tw[k] = strdup(p + sizeof(int64_t));
      p += sizeof(int64_t) + strlen(p + sizeof(int64_t)) + 1;
      order[k] = &tmp[k];
    }
    qsort(order, (size_t)count, sizeof *order, cmp_skip);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = order[i] - tmp;
      (*rows)[i] = tmp[j];
      (*why)[i] = tw[j];
      tw[j] = NULL;
    }
    *n = count;
  }
  free(order);
  free(tmp);
  sn_h5_free_strs(tw, count);
  free(all);
  return st;
}

/* Deletes name under loc if it exists (a finish that is being repeated). */
static void unlink_if(hid_t loc, const char *name) {
  if (H5Lexists(loc, name, H5P_DEFAULT) > 0) H5Ldelete(loc, name, H5P_DEFAULT);
}

/* /filenames (rows) from the source's names of the inputs in /index, block by block. */
static sn_status write_filenames(sn_writer *w, hid_t f, int64_t rows) {
  const int64_t block = 65536;
  hid_t t = sn_h5_vlstr_type(), d = -1, di = H5Dopen2(f, "index", H5P_DEFAULT);
  hsize_t dims[1] = {(hsize_t)rows};
  sn_status st = di < 0 ? fail(w, SN_ERR_FORMAT, "dataset /index")
                        : sn_h5_create_dataset_max(f, "filenames", t, 1, dims, (hsize_t)rows, 4096,
                                                   0, w->path, &d);
  int64_t *idx = malloc((size_t)block * sizeof *idx);
  char **names = calloc((size_t)block, sizeof *names);
  if (st == SN_OK && (!idx || !names))
    st = sn_error_set(SN_ERR_NOMEM, "file %s: /filenames", w->path);
  for (int64_t b = 0; st == SN_OK && b < rows; b += block) {
    const int64_t cnt = rows - b < block ? rows - b : block;
    hid_t fs = H5Dget_space(di);
    hsize_t off[1] = {(hsize_t)b}, c[1] = {(hsize_t)cnt};
    hid_t ms = H5Screate_simple(1, c, NULL);
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, c, NULL);
    if (e >= 0) e = H5Dread(di, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, idx);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
      st = fail(w, SN_ERR_FORMAT, "dataset /index: cannot read");
      break;
    }
    st = sn_dataset_row_names(w->src, idx, cnt, names);
    if (st == SN_OK) st = sn_h5_write_rows(d, t, b, cnt, names, H5P_DEFAULT, w->path);
    for (int64_t i = 0; i < cnt; ++i) {
      free(names[i]);
      names[i] = NULL;
    }
  }
  free(idx);
  free(names);
  if (d >= 0) H5Dclose(d);
  if (di >= 0) H5Dclose(di);
  H5Tclose(t);
  return st;
}

/* /skipped/{index,filename,reason}: the inputs without a row. Reasons not known to this run (an
 * input skipped by an interrupted run) are found again by decoding the input. */
static sn_status write_skipped(sn_writer *w, hid_t f, const int64_t *rows, char **why, int64_t n) {
  int64_t total = 0;
  for (int64_t i = 0; i < w->cfg.n_total; ++i)
    total += w->done[i] == DONE_SKIPPED;
  int64_t *all = malloc((total ? (size_t)total : 1) * sizeof *all);
  char **reasons = calloc(total ? (size_t)total : 1, sizeof *reasons);
  char **names = calloc(total ? (size_t)total : 1, sizeof *names);
  sn_status st =
      all && reasons && names ? SN_OK : sn_error_set(SN_ERR_NOMEM, "file %s: /skipped", w->path);
  for (int64_t i = 0, k = 0, j = 0; st == SN_OK && i < w->cfg.n_total; ++i) {
    if (w->done[i] != DONE_SKIPPED) continue;
    while (j < n && rows[j] < i)
      ++j;
    all[k] = i;
    char buf[512];
    if (j < n && rows[j] == i) {
      snprintf(buf, sizeof buf, "%s", why[j]);
    } else if (w->src) {
      if (sn_dataset_check_row(w->src, i, buf, sizeof buf) == SN_OK)
        snprintf(buf, sizeof buf, "skipped by an earlier run; it decodes now");
    } else {
      snprintf(buf, sizeof buf, "skipped by an earlier run");
    }
    if (!(reasons[k++] = strdup(buf))) st = sn_error_set(SN_ERR_NOMEM, "/skipped");
  }
  unlink_if(f, "skipped");
  hsize_t dims[1] = {(hsize_t)total};
  hid_t d = -1;
  if (st == SN_OK)
    st = sn_h5_create_dataset_max(f, "skipped/index", H5T_STD_I64LE, 1, dims, H5S_UNLIMITED, 4096,
                                  0, w->path, &d);
  if (st == SN_OK) st = sn_h5_write_rows(d, H5T_NATIVE_INT64, 0, total, all, H5P_DEFAULT, w->path);
  if (d >= 0) H5Dclose(d);
  if (st == SN_OK)
    st = sn_h5_write_vlstr_dataset(f, "skipped/reason", (const char *const *)reasons, total,
                                   w->path);
  if (st == SN_OK && w->src && w->src->has_names) {
    st = sn_dataset_row_names(w->src, all, total, names);
    if (st == SN_OK)
      st = sn_h5_write_vlstr_dataset(f, "skipped/filename", (const char *const *)names, total,
                                     w->path);
  }
  free(all);
  sn_h5_free_strs(reasons, total);
  sn_h5_free_strs(names, total);
  return st;
}

/* /sources/{path,first_row,rows} and the attributes naming the source. */
static sn_status write_sources(sn_writer *w, hid_t f) {
  const sn_dataset *ds = w->src;
  const sn_listing *l = &ds->src;
  const int hdf5 = l->kind == SN_SOURCE_HDF5;
  const int64_t ns = hdf5 ? ds->nparts : 1;
  const char **paths = calloc((size_t)ns, sizeof *paths);
  int64_t *first = calloc((size_t)ns, sizeof *first), *count = calloc((size_t)ns, sizeof *count);
  sn_status st =
      paths && first && count ? SN_OK : sn_error_set(SN_ERR_NOMEM, "file %s: /sources", w->path);
  for (int64_t i = 0; st == SN_OK && i < ns; ++i) {
    paths[i] = hdf5 ? ds->parts[i].path : l->origin[0] ? l->origin : "(image files)";
    first[i] = hdf5 ? ds->parts[i].first : 0;
    count[i] = hdf5 ? ds->parts[i].n : ds->info.n;
  }
  unlink_if(f, "sources");
  if (st == SN_OK) st = sn_h5_write_vlstr_dataset(f, "sources/path", paths, ns, w->path);
  hsize_t dims[1] = {(hsize_t)ns};
  const char *names[2] = {"sources/first_row", "sources/rows"};
  const int64_t *vals[2] = {first, count};
  for (int k = 0; st == SN_OK && k < 2; ++k) {
    hid_t d = -1;
    st = sn_h5_create_dataset(f, names[k], H5T_STD_I64LE, 1, dims, 1024, 0, w->path, &d);
    if (st == SN_OK)
      st = sn_h5_write_rows(d, H5T_NATIVE_INT64, 0, ns, vals[k], H5P_DEFAULT, w->path);
    if (d >= 0) H5Dclose(d);
  }
  static const char *const kinds[3] = {"hdf5", "folder", "list"};
  if (st == SN_OK) st = sn_h5_write_str_attr(f, "source_kind", kinds[l->kind], w->path);
  if (st == SN_OK)
    st = sn_h5_write_str_attr(
        f, "labels_from", hdf5 ? (ds->info.has_labels ? "hdf5" : "none") : l->labels_from, w->path);
  free(paths);
  free(first);
  free(count);
  return st;
}

/* Rank 0, after the collective file is closed: the rows' names, the skipped inputs and the
 * sources (variable-length strings: written through the serial driver), then complete = 1. */
static sn_status write_identity(sn_writer *w, const int64_t *srows, char **swhy, int64_t ns) {
  sn_h5_lock();
  hid_t f = H5Fopen(w->path, H5F_ACC_RDWR, H5P_DEFAULT);
  sn_status st = f < 0 ? fail(w, SN_ERR_IO, "cannot reopen to finish") : SN_OK;
  /* The row datasets keep the rows written. Here, not collectively: H5Dset_extent reads
   * metadata collectively, and the ranks' metadata caches differ after writing different
   * chunks (a hang at 1000 rows of /features on 2 ranks). */
  for (int i = 0; st == SN_OK && i < D_DONE; ++i) {
    if (!w->cols[i]) continue;
    hsize_t dims[4];
    dims_of(w, i, w->out_rows, dims);
    hid_t d = H5Dopen2(f, dnames[i], H5P_DEFAULT);
    if (d < 0 || H5Dset_extent(d, dims) < 0) st = fail(w, SN_ERR_IO, "cannot set the row count");
    if (d >= 0) H5Dclose(d);
  }
  if (st == SN_OK) {
    unlink_if(f, "filenames");
    if (w->src && w->src->has_names) st = write_filenames(w, f, w->out_rows);
  }
  if (st == SN_OK) st = write_skipped(w, f, srows, swhy, ns);
  if (st == SN_OK && w->src) st = write_sources(w, f);
  if (st == SN_OK && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) st = fail(w, SN_ERR_IO, "flush");
  if (st == SN_OK) st = sn_h5_write_int_attr(f, "complete", 1, w->path);
  if (f >= 0 && H5Fclose(f) < 0 && st == SN_OK) st = fail(w, SN_ERR_IO, "cannot close");
  sn_h5_unlock();
  return st;
}

sn_status sn_writer_finish(sn_writer *w) {
  if (!w || w->finished) return sn_error_set(SN_ERR_INVALID, "sn_writer_finish: no open writer");
  const int64_t n = w->cfg.n_total;
  /* Inputs done anywhere: the union over ranks of what each knows. */
  sn_status st = sn_comm_allreduce(w->comm, w->done, (size_t)n, SN_U8, SN_MAX);
  if (st != SN_OK) return st;
  int64_t missing = 0, first = -1, rows = 0, skipped = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (w->done[i] == DONE_PENDING) {
      if (first < 0) first = i;
      ++missing;
    }
    rows += w->done[i] == DONE_WRITTEN;
    skipped += w->done[i] == DONE_SKIPPED;
  }
  if (missing) {
    close_all(w);
    w->finished = 1;
    return sn_error_set(SN_ERR_INVALID,
                        "file %s: %lld of %lld rows not written (first: row %lld); the output "
                        "stays incomplete",
                        w->path, (long long)missing, (long long)n, (long long)first);
  }
  w->out_rows = rows;
  w->skipped = skipped;
  int64_t *srows = NULL, ns = 0;
  char **swhy = NULL;
  st = gather_skipped(w, &srows, &swhy, &ns);
  sn_h5_lock();
  if (st == SN_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) st = fail(w, SN_ERR_IO, "flush");
  sn_h5_unlock();
  close_all(w);
  w->finished = 1;
  st = sn_comm_agree(w->comm, st);
  if (st == SN_OK && sn_comm_rank(w->comm) == 0) st = write_identity(w, srows, swhy, ns);
  free(srows);
  sn_h5_free_strs(swhy, ns);
  return sn_comm_agree(w->comm, st);
}

void sn_writer_destroy(sn_writer *w) {
  if (!w) return;
  if (!w->finished) close_all(w);
  free(w->path);
  free(w->done);
  free(w->f16);
  free(w->rowids);
  free(w->status);
  free(w->skip_rows);
  sn_h5_free_strs(w->skip_why, w->nskip);
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

/* This rank's units of the rounds from w->start on: unit j is inputs
 * [start + (j * size + rank) * chunk, ... + chunk) when that is not empty. */
static sn_status split(const sn_writer *w, int64_t **begins, int **counts, int64_t *nunits,
                       int64_t *rounds) {
  const int rank = sn_comm_rank(w->comm), size = sn_comm_size(w->comm);
  const int64_t n = w->cfg.n_total, left = n - w->start, win = w->chunk * size;
  *rounds = (left + win - 1) / win;
  *begins = malloc((*rounds ? (size_t)*rounds : 1) * sizeof **begins);
  *counts = malloc((*rounds ? (size_t)*rounds : 1) * sizeof **counts);
  if (!*begins || !*counts) {
    free(*begins);
    free(*counts);
    *begins = NULL;
    *counts = NULL;
    return sn_error_set(SN_ERR_NOMEM, "file %s: %lld rounds", w->path, (long long)*rounds);
  }
  int64_t k = 0;
  for (int64_t j = 0; j < *rounds; ++j) {
    const int64_t b = w->start + j * win + (int64_t)rank * w->chunk;
    const int64_t e = b + w->chunk < n ? b + w->chunk : n;
    if (b >= e) continue;
    (*begins)[k] = b;
    (*counts)[k++] = (int)(e - b);
  }
  *nunits = k;
  return SN_OK;
}

sn_status sn_writer_local_rows(const sn_writer *w, int64_t **rows, int64_t *count,
                               int64_t *writes) {
  *rows = NULL;
  *count = 0;
  if (writes) *writes = 0;
  if (!w) return sn_error_set(SN_ERR_INVALID, "sn_writer_local_rows: NULL writer");
  int64_t *begins = NULL, nunits = 0, rounds = 0, n = 0;
  int *counts = NULL;
  sn_status st = split(w, &begins, &counts, &nunits, &rounds);
  if (st != SN_OK) return st;
  for (int64_t u = 0; u < nunits; ++u)
    n += counts[u];
  int64_t *r = n ? malloc((size_t)n * sizeof *r) : NULL;
  if (n && !r) st = sn_error_set(SN_ERR_NOMEM, "file %s: %lld rows", w->path, (long long)n);
  for (int64_t u = 0, k = 0; r && u < nunits; ++u)
    for (int j = 0; j < counts[u]; ++j)
      r[k++] = begins[u] + j;
  free(begins);
  free(counts);
  if (st != SN_OK) return st;
  *rows = r;
  *count = n;
  if (writes) *writes = rounds;
  return SN_OK;
}

/* The staged datasets, D_IDX..D_FEAT: int32 or float32 values, 4 bytes each. */
enum { S_IDX, S_VAL, S_LOGITS, S_FEAT, S_COUNT };
_Static_assert(sizeof(int32_t) == sizeof(float), "staged values are 4 bytes");

struct sn_staging {
  sn_writer *w;
  int64_t *rows, nrows;  /* this rank's inputs, unit after unit */
  int64_t *begins;       /* (nunits) first input of each unit (one unit per round) */
  int *counts;           /* (nunits) inputs of each unit */
  int64_t *ends;         /* (nunits) end of each unit in rows[] */
  int64_t nunits, unit;  /* units of this rank; the next one to write */
  int64_t writes;        /* collective writes left */
  int64_t cursor;        /* inputs of rows[] covered (computed or skipped) */
  int64_t written;       /* inputs of rows[] whose unit is written */
  size_t width[S_COUNT]; /* values per row of each staged dataset (0: not written) */
  void *buf[S_COUNT];    /* (cap, width) computed rows, the next unit's first */
  int64_t *ids;          /* (cap) their inputs */
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
  sn_status s = split(w, &st->begins, &st->counts, &st->nunits, &st->writes);
  if (s == SN_OK) s = sn_writer_local_rows(w, &st->rows, &st->nrows, NULL);
  int64_t largest = 0;
  if (s == SN_OK && !(st->ends = malloc((st->nunits ? (size_t)st->nunits : 1) * sizeof *st->ends)))
    s = sn_error_set(SN_ERR_NOMEM, "file %s: staging", w->path);
  for (int64_t u = 0, e = 0; s == SN_OK && u < st->nunits; ++u) {
    e += st->counts[u];
    st->ends[u] = e;
    if (st->counts[u] > largest) largest = st->counts[u];
  }
  st->cap = largest + max_batch;
  if (s == SN_OK && !(st->ids = malloc((size_t)st->cap * sizeof *st->ids)))
    s = sn_error_set(SN_ERR_NOMEM, "file %s: staging", w->path);
  for (int i = 0; s == SN_OK && i < S_COUNT; ++i) {
    st->width[i] = (size_t)w->cols[i];
    if (!st->width[i]) continue;
    st->buf[i] = malloc((size_t)st->cap * st->width[i] * sizeof(float));
    if (!st->buf[i])
      s = sn_error_set(SN_ERR_NOMEM, "file %s: staging of %lld rows", w->path, (long long)st->cap);
  }
  if (s == SN_OK) s = ensure_cap(w, (int)st->cap);
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
  free(st->ends);
  free(st->ids);
  free(st);
}

const int64_t *sn_staging_rows(const sn_staging *st, int64_t *count) {
  *count = st ? st->nrows : 0;
  return st ? st->rows : NULL;
}

int64_t sn_staging_writes(const sn_staging *st) { return st ? st->writes : 0; }

int64_t sn_staging_written(const sn_staging *st) { return st ? st->written : 0; }

int sn_staging_ready(const sn_staging *st) {
  return st->unit >= st->nunits || st->cursor >= st->ends[st->unit];
}

/* Stages `count` computed rows (ids: their inputs) covering the next `inputs` inputs. */
static sn_status stage(sn_staging *st, int inputs, int count, const int64_t *ids,
                       const int32_t *top_k_indices, const float *top_k_scores, const float *logits,
                       const float *features) {
  const void *src[S_COUNT] = {top_k_indices, top_k_scores, logits, features};
  if (inputs < 0 || count < 0 || count > inputs || count > st->max_batch ||
      st->cursor + inputs > st->nrows || st->filled + count > st->cap)
    return sn_error_set(SN_ERR_INVALID,
                        "sn_staging_add: %d rows (%d inputs) do not fit (%lld of %lld added, "
                        "batch %d)",
                        count, inputs, (long long)st->cursor, (long long)st->nrows, st->max_batch);
  for (int i = 0; i < S_COUNT; ++i)
    if (st->width[i] && count > 0 && !src[i])
      return sn_error_set(SN_ERR_INVALID, "file %s: no data given for /%s", st->w->path, dnames[i]);
  for (int i = 0; i < S_COUNT; ++i)
    if (st->width[i])
      memcpy((char *)st->buf[i] + (size_t)st->filled * st->width[i] * sizeof(float), src[i],
             (size_t)count * st->width[i] * sizeof(float));
  memcpy(st->ids + st->filled, ids, (size_t)count * sizeof *ids);
  st->filled += count;
  st->cursor += inputs;
  return SN_OK;
}

sn_status sn_staging_add(sn_staging *st, int n, const int32_t *top_k_indices,
                         const float *top_k_scores, const float *logits, const float *features) {
  if (!st || n < 0 || st->cursor + n > st->nrows)
    return sn_error_set(SN_ERR_INVALID, "sn_staging_add: %d rows do not fit (%lld of %lld added)",
                        n, st ? (long long)st->cursor : 0LL, st ? (long long)st->nrows : 0LL);
  return stage(st, n, n, st->rows + st->cursor, top_k_indices, top_k_scores, logits, features);
}

sn_status sn_staging_add_batch(sn_staging *st, const sn_batch *b, const int32_t *top_k_indices,
                               const float *top_k_scores, const float *logits,
                               const float *features) {
  if (!st || !b || b->inputs < 0 || b->count < 0 || b->skipped < 0 ||
      b->count + b->skipped != b->inputs || st->cursor + b->inputs > st->nrows)
    return sn_error_set(SN_ERR_INVALID, "sn_staging_add_batch: a batch of %d inputs does not fit",
                        b ? b->inputs : -1);
  /* the batch must be the next inputs of this rank's share, each kept or skipped */
  for (int j = 0, kc = 0, ks = 0; j < b->inputs; ++j) {
    const int64_t want = st->rows[st->cursor + j];
    if (kc < b->count && b->rows[kc] == want)
      ++kc;
    else if (ks < b->skipped && b->skipped_rows[ks] == want)
      ++ks;
    else
      return sn_error_set(SN_ERR_INVALID,
                          "file %s: staged input %lld is neither computed nor skipped in the "
                          "batch",
                          st->w->path, (long long)want);
  }
  sn_writer *w = st->w;
  if (w->nskip + b->skipped > w->skip_cap) {
    const int64_t cap = 2 * (w->nskip + b->skipped) + 16;
    int64_t *r = realloc(w->skip_rows, (size_t)cap * sizeof *r);
    if (r) w->skip_rows = r;
    char **why = realloc(w->skip_why, (size_t)cap * sizeof *why);
    if (why) w->skip_why = why;
    if (!r || !why) return sn_error_set(SN_ERR_NOMEM, "file %s: skipped inputs", w->path);
    w->skip_cap = cap;
  }
  sn_status s =
      stage(st, b->inputs, b->count, b->rows, top_k_indices, top_k_scores, logits, features);
  for (int k = 0; s == SN_OK && k < b->skipped; ++k) {
    w->skip_rows[w->nskip] = b->skipped_rows[k];
    if (!(w->skip_why[w->nskip] = strdup(b->skipped_reasons[k])))
      return sn_error_set(SN_ERR_NOMEM, "file %s: skipped inputs", w->path);
    w->nskip++;
  }
  return s;
}

sn_status sn_staging_write(sn_staging *st) {
  if (!st) return sn_error_set(SN_ERR_INVALID, "sn_staging_write: NULL staging");
  sn_writer *w = st->w;
  sn_status s = SN_OK;
  if (st->writes < 1 || !sn_staging_ready(st))
    s = sn_error_set(SN_ERR_INVALID, "file %s: staged rows written before they are complete",
                     w->path);
  s = sn_comm_agree(w->comm, s);
  if (s != SN_OK) return s;
  /* this rank's unit of the round: the staged rows of its inputs, and the status of each */
  int64_t in_begin = 0, kept = 0;
  int in_count = 0;
  if (st->unit < st->nunits) {
    in_begin = st->begins[st->unit];
    in_count = st->counts[st->unit];
    memset(w->status, DONE_SKIPPED, (size_t)in_count);
    while (kept < st->filled && st->ids[kept] < in_begin + in_count)
      w->status[st->ids[kept++] - in_begin] = DONE_WRITTEN;
  }
  /* rows go after those of the lower ranks in this round */
  const int size = sn_comm_size(w->comm), rank = sn_comm_rank(w->comm);
  int64_t counts[1024], *all = size <= 1024 ? counts : malloc((size_t)size * sizeof *all);
  if (!all) s = sn_error_set(SN_ERR_NOMEM, "file %s: %d ranks", w->path, size);
  s = sn_comm_agree(w->comm, s);
  if (s == SN_OK) s = sn_comm_allgather(w->comm, &kept, all, sizeof kept);
  int64_t before = 0, total = 0;
  for (int r = 0; s == SN_OK && r < size; ++r) {
    if (r < rank) before += all[r];
    total += all[r];
  }
  if (all != counts) free(all);
  if (s != SN_OK) return s;
  const void *src[D_INDEX + 1] = {st->buf[S_IDX], st->buf[S_VAL], st->buf[S_LOGITS],
                                  st->buf[S_FEAT], st->ids};
  s = write_rows_and_status(w, w->out_next + before, (int)kept, src, in_begin, in_count, w->status);
  if (s != SN_OK) return s;
  w->out_next += total;
  /* rows of the next unit computed already move to the front */
  const int64_t left = st->filled - kept;
  for (int i = 0; i < S_COUNT && left > 0; ++i)
    if (st->width[i])
      memmove(st->buf[i], (char *)st->buf[i] + (size_t)kept * st->width[i] * sizeof(float),
              (size_t)left * st->width[i] * sizeof(float));
  if (left > 0) memmove(st->ids, st->ids + kept, (size_t)left * sizeof *st->ids);
  st->filled = left;
  st->written += in_count;
  st->unit += st->unit < st->nunits;
  st->writes--;
  return SN_OK;
}
