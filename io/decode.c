/* decode.c - an inference output's predictions decoded as Keras' decode_predictions gives them:
 * per row, its input (file name, else dataset row), then (wnid, name, probability) for the top
 * k classes, most probable first (docs/cli.md, "Labels and decoded predictions"). A pass over a
 * finished output file (complete = 1), so that it does not depend on how the rows were computed or
 * distributed: rows are read in blocks of SN_DECODE_ROWS, so memory does not grow with N.
 *
 * The decoded file is written to PATH.tmp.<pid> and renamed to PATH only when complete (removed
 * on failure): a reader never sees a partial file under the real name. Formats:
 *   CSV        header file,index,class_1,wnid_1,name_1,probability_1,...; one line per row;
 *              fields quoted (RFC 4180) where they hold a comma, a quote, a line break or edge
 *              spaces
 *   JSON Lines {"file": "a.jpg", "index": 0, "classes": [..], "predictions": [[wnid, name, p],
 *              ...]} per row; file null without /filenames, wnid null for a plain label list,
 *              name null without labels; strings are valid UTF-8 (invalid bytes become U+FFFD)
 * Probabilities are written with 9 significant digits, which round-trip float32 exactly.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "h5util.h"

#define SN_DECODE_ROWS 4096 /* rows read per block */

void sn_decode_options_init(sn_decode_options *o) {
  memset(o, 0, sizeof *o);
  o->format = SN_DECODE_AUTO;
}

/* ---------------------------------------------------------------- a growing string */

typedef struct sbuf {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *t = realloc(b->s, cap);
    if (!t) {
      b->oom = 1;
      return;
    }
    b->s = t;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...) {
  char t[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t, sizeof t, fmt, ap);
  va_end(ap);
  sb_add(b, t, n < 0 ? 0 : (size_t)n < sizeof t ? (size_t)n : sizeof t - 1);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if s does not start one. */
static int utf8_len(const unsigned char *s) {
  if (s[0] < 0x80) return 1;
  int n = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
          : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
          : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                         : 0;
  for (int i = 1; i < n; ++i)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (n == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;
  if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
  return n;
}

/* s as a JSON string (null for NULL). */
static void sb_json(sbuf *b, const char *s) {
  if (!s) {
    sb_str(b, "null");
    return;
  }
  sb_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      sb_add(b, e, 2);
      ++p;
    } else if (*p < 0x20) {
      sb_fmt(b, "\\u%04x", *p);
      ++p;
    } else {
      int n = utf8_len(p);
      if (n)
        sb_add(b, (const char *)p, (size_t)n);
      else
        sb_str(b, "\\ufffd");
      p += n ? n : 1;
    }
  }
  sb_add(b, "\"", 1);
}

/* s as a CSV field ("" for NULL). */
static void sb_csv(sbuf *b, const char *s) {
  if (!s) return;
  size_t n = strlen(s);
  if (!strpbrk(s, ",\"\r\n") && !(n && (s[0] == ' ' || s[n - 1] == ' '))) {
    sb_add(b, s, n);
    return;
  }
  sb_add(b, "\"", 1);
  for (const char *p = s; *p; ++p)
    if (*p == '"')
      sb_add(b, "\"\"", 2);
    else
      sb_add(b, p, 1);
  sb_add(b, "\"", 1);
}

/* ---------------------------------------------------------------- reading the output */

typedef struct outfile {
  const char *path;
  hid_t f, idx, val, index, names; /* names: /filenames or -1 */
  int64_t n;
  int k;
} outfile;

static void out_close(outfile *o) {
  hid_t h[] = {o->idx, o->val, o->index, o->names};
  for (size_t i = 0; i < sizeof h / sizeof h[0]; ++i)
    if (h[i] >= 0) H5Dclose(h[i]);
  if (o->f >= 0) H5Fclose(o->f);
}

/* Opens dataset name, checks its rank and first dim (rows) and returns its second dim in *cols
 * (rank 2). */
static sn_status open_rows(outfile *o, const char *name, int rank, int64_t rows, int *cols,
                           hid_t *d) {
  int nd;
  int64_t dims[SN_H5_MAX_RANK];
  sn_status st = sn_h5_dataset_shape(o->f, name, o->path, &nd, dims);
  if (st == SN_ERR_NOTFOUND)
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: dataset %s not found%s", o->path, name,
                        rank == 2 ? " (the output holds no predictions: written with --top-k 0 or "
                                    "without a classifier?)"
                                  : "");
  if (st) return st;
  if (nd != rank || (rows >= 0 && dims[0] != rows))
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: dataset %s has %d dims and %lld rows, expected %d "
                        "and %lld",
                        o->path, name, nd, (long long)dims[0], rank, (long long)rows);
  if (cols) *cols = (int)dims[1];
  if (rows < 0) o->n = dims[0];
  *d = H5Dopen2(o->f, name, H5P_DEFAULT);
  return *d < 0 ? sn_error_set(SN_ERR_FORMAT, "file %s: cannot open dataset %s", o->path, name)
                : SN_OK;
}

static sn_status out_open(outfile *o, const char *path) {
  memset(o, 0, sizeof *o);
  o->path = path;
  o->f = o->idx = o->val = o->index = o->names = -1;
  sn_status st = sn_h5_open_read(path, &o->f);
  if (st) return st;
  int64_t complete = 0;
  if (!sn_h5_has_attr(o->f, "complete") ||
      sn_h5_read_int_attr(o->f, "complete", path, "/", &complete) != SN_OK || complete != 1)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: not a complete inference output (no root attribute complete = "
                        "1): only finished outputs are decoded",
                        path);
  int kv = 0;
  st = open_rows(o, "predictions/top_k_indices", 2, -1, &o->k, &o->idx);
  if (!st) st = open_rows(o, "predictions/top_k_scores", 2, o->n, &kv, &o->val);
  if (!st && kv != o->k)
    st = sn_error_set(SN_ERR_FORMAT,
                      "file %s: /predictions/top_k_scores has %d columns, top_k_indices %d", path,
                      kv, o->k);
  if (!st && sn_h5_exists(o->f, "index")) st = open_rows(o, "index", 1, o->n, NULL, &o->index);
  if (!st && sn_h5_exists(o->f, "filenames"))
    st = open_rows(o, "filenames", 1, o->n, NULL, &o->names);
  if (!st && o->names >= 0) {
    hid_t t = H5Dget_type(o->names);
    if (H5Tget_class(t) != H5T_STRING)
      st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset /filenames does not hold strings", path);
    H5Tclose(t);
  }
  return st;
}

/* Rows [r0, r0 + m) of the 1-D or 2-D dataset d into buf, converted to memory type mt. */
static sn_status read_block(const outfile *o, hid_t d, const char *name, int64_t r0, int64_t m,
                            int cols, hid_t mt, void *buf) {
  hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)m, (hsize_t)cols};
  const int rank = cols ? 2 : 1;
  hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
  herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
  if (e >= 0) e = H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  return e < 0 ? sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: cannot read rows %lld..%lld",
                              o->path, name, (long long)r0, (long long)(r0 + m - 1))
               : SN_OK;
}

/* Rows [r0, r0 + m) of /filenames into names (m new strings; fixed- or variable-length). */
static sn_status read_names(const outfile *o, int64_t r0, int64_t m, char **names) {
  hid_t t = H5Dget_type(o->names), mt;
  const int var = H5Tis_variable_str(t) > 0;
  const size_t width = var ? sizeof(char *) : H5Tget_size(t);
  const int spacepad = !var && H5Tget_strpad(t) == H5T_STR_SPACEPAD;
  if (var) {
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
  } else {
    mt = H5Tcopy(t);
  }
  H5Tset_cset(mt, H5Tget_cset(t));
  char *raw = width && width <= ((size_t)1 << 16) ? calloc((size_t)m, width) : NULL;
  sn_status st =
      raw ? read_block(o, o->names, "/filenames", r0, m, 0, mt, raw)
          : sn_error_set(SN_ERR_FORMAT, "file %s: /filenames: string width %zu", o->path, width);
  for (int64_t i = 0; i < m && !st; ++i) {
    const char *s = var ? ((char **)raw)[i] : raw + (size_t)i * width;
    size_t len = var ? (s ? strlen(s) : 0) : strnlen(s, width);
    while (spacepad && len > 0 && s[len - 1] == ' ')
      --len;
    if (!(names[i] = strndup(s ? s : "", len)))
      st = sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", o->path);
  }
  if (var && raw && !st) {
    hsize_t c = (hsize_t)m;
    hid_t ms = H5Screate_simple(1, &c, NULL);
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mt, ms, H5P_DEFAULT, raw);
#else
    H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, raw);
#endif
    H5Sclose(ms);
  }
  free(raw);
  H5Tclose(mt);
  H5Tclose(t);
  return st;
}

/* ---------------------------------------------------------------- formatting */

/* One row: CSV or JSON line into line, the printed form into text (when wanted). */
static void format_row(sn_decode_format fmt, const sn_labels *lb, const char *file, int64_t index,
                       const int32_t *cls, const float *p, int k, sbuf *line, sbuf *text) {
  line->n = 0;
  if (fmt == SN_DECODE_CSV) {
    sb_csv(line, file);
    sb_fmt(line, ",%lld", (long long)index);
    for (int t = 0; t < k; ++t) {
      sb_fmt(line, ",%d,", cls[t]);
      sb_csv(line, sn_labels_wnid(lb, cls[t]));
      sb_add(line, ",", 1);
      sb_csv(line, sn_labels_name(lb, cls[t]));
      sb_fmt(line, ",%.9g", p[t]);
    }
  } else {
    sb_str(line, "{\"file\": ");
    sb_json(line, file);
    sb_fmt(line, ", \"index\": %lld, \"classes\": [", (long long)index);
    for (int t = 0; t < k; ++t)
      sb_fmt(line, "%s%d", t ? ", " : "", cls[t]);
    sb_str(line, "], \"predictions\": [");
    for (int t = 0; t < k; ++t) {
      sb_str(line, t ? ", [" : "[");
      sb_json(line, sn_labels_wnid(lb, cls[t]));
      sb_str(line, ", ");
      sb_json(line, sn_labels_name(lb, cls[t]));
      if (isfinite(p[t]))
        sb_fmt(line, ", %.9g]", p[t]);
      else
        sb_str(line, ", null]");
    }
    sb_str(line, "]}");
  }
  sb_add(line, "\n", 1);
  if (!text) return;
  text->n = 0;
  if (file)
    sb_str(text, file);
  else
    sb_fmt(text, "row %lld", (long long)index);
  sb_add(text, ":", 1);
  for (int t = 0; t < k; ++t) {
    const char *w = sn_labels_wnid(lb, cls[t]), *nm = sn_labels_name(lb, cls[t]);
    sb_str(text, t ? " | " : " ");
    if (w) { /* Keras' tuple */
      sb_str(text, w);
      sb_add(text, " ", 1);
      sb_str(text, nm);
    } else if (nm) { /* a plain list: the name and the class */
      sb_str(text, nm);
      sb_fmt(text, " (%d)", cls[t]);
    } else { /* no labels: the class */
      sb_fmt(text, "%d", cls[t]);
    }
    sb_fmt(text, " %.4f", p[t]);
  }
}

sn_decode_format sn_decode_format_of(const char *path) {
  const char *dot = path ? strrchr(path, '.') : NULL;
  if (dot && strchr(dot, '/')) dot = NULL;
  if (dot && !strcasecmp(dot, ".csv")) return SN_DECODE_CSV;
  if (dot &&
      (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") || !strcasecmp(dot, ".json")))
    return SN_DECODE_JSONL;
  return SN_DECODE_AUTO;
}

/* ---------------------------------------------------------------- the pass */

typedef struct pass {
  outfile o;
  FILE *out;
  char tmp[4200];
  int32_t *cls; /* (SN_DECODE_ROWS, K) */
  float *p;     /* (SN_DECODE_ROWS, K) */
  int64_t *index;
  char **names; /* (SN_DECODE_ROWS) */
  sbuf line, text;
} pass;

static sn_status run_pass(pass *ps, const sn_labels *lb, const char *decoded, sn_decode_format fmt,
                          const sn_decode_options *opt) {
  outfile *o = &ps->o;
  const int k = opt->top > 0 && opt->top < o->k ? opt->top : o->k;
  const int64_t B = SN_DECODE_ROWS;
  ps->cls = malloc((size_t)B * (size_t)(o->k ? o->k : 1) * sizeof *ps->cls);
  ps->p = malloc((size_t)B * (size_t)(o->k ? o->k : 1) * sizeof *ps->p);
  ps->index = malloc((size_t)B * sizeof *ps->index);
  ps->names = calloc((size_t)B, sizeof *ps->names);
  if (!ps->cls || !ps->p || !ps->index || !ps->names)
    return sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", o->path);
  if (decoded && fmt == SN_DECODE_CSV) {
    sb_str(&ps->line, "file,index");
    for (int t = 1; t <= k; ++t)
      sb_fmt(&ps->line, ",class_%d,wnid_%d,name_%d,probability_%d", t, t, t, t);
    sb_add(&ps->line, "\n", 1);
    fwrite(ps->line.s, 1, ps->line.n, ps->out);
  }
  const int64_t nprint = opt->print ? opt->print_rows : 0;
  sn_status st = SN_OK;
  for (int64_t r0 = 0; r0 < o->n && !st && (decoded || r0 < nprint); r0 += B) {
    const int64_t m = o->n - r0 < B ? o->n - r0 : B;
    st =
        read_block(o, o->idx, "/predictions/top_k_indices", r0, m, o->k, H5T_NATIVE_INT32, ps->cls);
    if (!st)
      st = read_block(o, o->val, "/predictions/top_k_scores", r0, m, o->k, H5T_NATIVE_FLOAT, ps->p);
    if (!st && o->index >= 0)
      st = read_block(o, o->index, "/index", r0, m, 0, H5T_NATIVE_INT64, ps->index);
    for (int64_t i = 0; i < m && o->index < 0; ++i)
      ps->index[i] = r0 + i;
    if (!st && o->names >= 0) st = read_names(o, r0, m, ps->names);
    for (int64_t i = 0; i < m && !st; ++i) {
      const int32_t *c = ps->cls + (size_t)i * o->k;
      for (int t = 0; t < k && !st; ++t)
        if (c[t] < 0 || (lb && c[t] >= sn_labels_count(lb)))
          st = sn_error_set(SN_ERR_FORMAT,
                            "file %s: row %lld: class %d is outside the %d classes of the labels",
                            o->path, (long long)(r0 + i), c[t], sn_labels_count(lb));
      if (st) break;
      const int want_text = r0 + i < nprint;
      format_row(fmt, lb, o->names >= 0 ? ps->names[i] : NULL, ps->index[i], c,
                 ps->p + (size_t)i * o->k, k, &ps->line, want_text ? &ps->text : NULL);
      if (ps->line.oom || ps->text.oom)
        st = sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", o->path);
      else if (decoded && fwrite(ps->line.s, 1, ps->line.n, ps->out) != ps->line.n)
        st = sn_error_set(SN_ERR_IO, "decoded file %s: write failed: %s", decoded, strerror(errno));
      if (!st && want_text) opt->print(opt->print_ctx, ps->text.s);
    }
    for (int64_t i = 0; i < m; ++i) {
      free(ps->names[i]);
      ps->names[i] = NULL;
    }
  }
  return st;
}

sn_status sn_output_decode(const char *output_path, const sn_labels *labels,
                           const char *decoded_path, const sn_decode_options *opt) {
  sn_decode_options dflt;
  sn_decode_options_init(&dflt);
  if (!opt) opt = &dflt;
  if (!output_path)
    return sn_error_set(SN_ERR_INVALID, "sn_output_decode: the output path is required");
  sn_decode_format fmt = opt->format;
  if (decoded_path && fmt == SN_DECODE_AUTO) fmt = sn_decode_format_of(decoded_path);
  if (decoded_path && fmt != SN_DECODE_CSV && fmt != SN_DECODE_JSONL)
    return sn_error_set(SN_ERR_INVALID,
                        "decoded file %s: cannot tell its format from the extension (.csv, "
                        ".jsonl); name the format",
                        decoded_path);
  if (!decoded_path) fmt = SN_DECODE_JSONL; /* rows are formatted but not written */
  pass ps;
  memset(&ps, 0, sizeof ps);
  sn_h5_lock();
  sn_status st = out_open(&ps.o, output_path);
  if (!st && decoded_path) {
    snprintf(ps.tmp, sizeof ps.tmp, "%s.tmp.%ld", decoded_path, (long)getpid());
    if (!(ps.out = fopen(ps.tmp, "w")))
      st = sn_error_set(SN_ERR_IO, "decoded file %s: cannot create %s: %s", decoded_path, ps.tmp,
                        strerror(errno));
  }
  if (!st) st = run_pass(&ps, labels, decoded_path, fmt, opt);
  out_close(&ps.o);
  sn_h5_unlock();
  if (ps.out) {
    if (fclose(ps.out) != 0 && !st)
      st = sn_error_set(SN_ERR_IO, "decoded file %s: write failed: %s", decoded_path,
                        strerror(errno));
    if (!st && rename(ps.tmp, decoded_path) != 0)
      st = sn_error_set(SN_ERR_IO, "decoded file %s: cannot rename %s to it: %s", decoded_path,
                        ps.tmp, strerror(errno));
    if (st) remove(ps.tmp);
  }
  free(ps.cls);
  free(ps.p);
  free(ps.index);
  free(ps.names);
  free(ps.line.s);
  free(ps.text.s);
  return st;
}
