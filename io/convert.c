/* convert.c - converters to the dataset schema (docs/hdf5-schema.md): MNIST idx files and
 * ImageNet-style folders, raw or encoded, serial or collectively by all ranks into one file. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#define _DEFAULT_SOURCE         /* DT_DIR */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "h5util.h"
#include "image.h"
#include "io_limits.h"

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
static const char *const digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

void sn_convert_options_init(sn_convert_options *o) {
  memset(o, 0, sizeof *o);
  o->height = o->width = 224;
  o->channels = 3;
  o->resize = SN_RESIZE_BILINEAR;
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

/* ---------------------------------------------------------------- folders */

typedef struct entry {
  char *dir;  /* relative directory (class/sub/...) */
  char *name; /* file name */
  int32_t label;
} entry;

typedef struct listing {
  char **classes;
  int64_t n_classes;
  char **files; /* relative paths class/.../name, sorted */
  int32_t *labels;
  int64_t n;
} listing;

static void listing_free(listing *l) {
  sn_h5_free_strs(l->classes, l->n_classes);
  sn_h5_free_strs(l->files, l->n);
  free(l->labels);
  memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->label != y->label) return x->label < y->label ? -1 : 1;
  int c = strcmp(x->dir, y->dir);
  return c ? c : strcmp(x->name, y->name);
}

static int is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

typedef struct entries {
  entry *v;
  int64_t n, cap;
} entries;

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Collects image files under root/rel recursively (following links, as os.walk(followlinks)). */
static sn_status walk(const char *root, const char *rel, int32_t label, entries *out, int depth) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", root, rel) >= (int)sizeof path)
    return sn_error_set(SN_ERR_INVALID, "folder %s: path too long under %s", root, rel);
  if (depth > 32)
    return sn_error_set(SN_ERR_INVALID, "folder %s: directories nested too deep", path);
  DIR *d = opendir(path);
  if (!d) return sn_error_set(SN_ERR_IO, "folder %s: cannot list: %s", path, strerror(errno));
  sn_status st = SN_OK;
  struct dirent *de;
  while (st == SN_OK && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char sub[4096], full[4096];
    if (snprintf(sub, sizeof sub, "%s/%s", rel, de->d_name) >= (int)sizeof sub ||
        snprintf(full, sizeof full, "%s/%s", path, de->d_name) >= (int)sizeof full) {
      st = sn_error_set(SN_ERR_INVALID, "folder %s: path too long: %s", root, de->d_name);
      break;
    }
    if (is_dir(full)) {
      st = walk(root, sub, label, out, depth + 1);
    } else if (is_image_name(de->d_name)) {
      if (out->n == out->cap) {
        int64_t cap = out->cap ? 2 * out->cap : 1024;
        entry *v = realloc(out->v, (size_t)cap * sizeof *v);
        if (!v) {
          st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
          break;
        }
        out->v = v;
        out->cap = cap;
      }
      entry *e = &out->v[out->n];
      e->dir = strdup(rel);
      e->name = strdup(de->d_name);
      e->label = label;
      if (!e->dir || !e->name) {
        free(e->dir);
        free(e->name);
        st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
      } else {
        out->n++;
      }
    }
  }
  closedir(d);
  return st;
}

/* Lists root on this rank: sorted class folders, then each class's files sorted by (directory,
 * name) as torchvision's ImageFolder does. */
static sn_status list_folder(const char *root, listing *l) {
  memset(l, 0, sizeof *l);
  DIR *d = opendir(root);
  if (!d) return sn_error_set(SN_ERR_IO, "folder %s: cannot open: %s", root, strerror(errno));
  sn_status st = SN_OK;
  int64_t cap = 0;
  struct dirent *de;
  while (st == SN_OK && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char full[4096];
    if (snprintf(full, sizeof full, "%s/%s", root, de->d_name) >= (int)sizeof full || !is_dir(full))
      continue;
    if (l->n_classes == cap) {
      cap = cap ? 2 * cap : 64;
      char **c = realloc(l->classes, (size_t)cap * sizeof *c);
      if (!c) {
        st = sn_error_set(SN_ERR_NOMEM, "folder %s: class list", root);
        break;
      }
      l->classes = c;
    }
    if (!(l->classes[l->n_classes] = strdup(de->d_name)))
      st = sn_error_set(SN_ERR_NOMEM, "folder %s: class list", root);
    else
      l->n_classes++;
  }
  closedir(d);
  if (st == SN_OK && l->n_classes == 0)
    st = sn_error_set(SN_ERR_NOTFOUND, "folder %s: no class sub-folders", root);
  if (st == SN_OK && l->n_classes > SN_IO_MAX_CLASSES)
    st = sn_error_set(SN_ERR_INVALID, "folder %s: %lld classes", root, (long long)l->n_classes);
  if (st != SN_OK) {
    listing_free(l);
    return st;
  }
  qsort(l->classes, (size_t)l->n_classes, sizeof *l->classes, cmp_str);
  entries es = {NULL, 0, 0};
  for (int64_t c = 0; st == SN_OK && c < l->n_classes; ++c) {
    const int64_t before = es.n;
    st = walk(root, l->classes[c], (int32_t)c, &es, 0);
    if (st == SN_OK && es.n == before)
      st = sn_error_set(SN_ERR_NOTFOUND, "folder %s: class '%s' has no .jpg/.jpeg/.png files", root,
                        l->classes[c]);
  }
  if (st == SN_OK) {
    qsort(es.v, (size_t)es.n, sizeof *es.v, cmp_entry);
    l->files = calloc((size_t)es.n, sizeof *l->files);
    l->labels = malloc((size_t)es.n * sizeof *l->labels);
    if (!l->files || !l->labels) st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
    for (int64_t i = 0; st == SN_OK && i < es.n; ++i) {
      const entry *e = &es.v[i];
      size_t len = strlen(e->dir) + strlen(e->name) + 2;
      if (!(l->files[i] = malloc(len))) {
        st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
        break;
      }
      snprintf(l->files[i], len, "%s/%s", e->dir, e->name);
      l->labels[i] = e->label;
      l->n = i + 1;
    }
  }
  for (int64_t i = 0; i < es.n; ++i) {
    free(es.v[i].dir);
    free(es.v[i].name);
  }
  free(es.v);
  if (st != SN_OK) listing_free(l);
  return st;
}

/* Rank 0 lists the folder; the listing is broadcast so that every rank agrees on it. */
static sn_status share_listing(const char *root, sn_comm *comm, listing *l) {
  sn_status st = SN_OK;
  memset(l, 0, sizeof *l);
  if (sn_comm_rank(comm) == 0) st = list_folder(root, l);
  st = sn_comm_agree(comm, st);
  if (st != SN_OK || sn_comm_size(comm) == 1) return st;
  /* blob: class names then file paths, each NUL-terminated */
  int64_t hdr[3] = {l->n_classes, l->n, 0};
  char *blob = NULL;
  if (sn_comm_rank(comm) == 0) {
    size_t len = 0;
    for (int64_t i = 0; i < l->n_classes; ++i)
      len += strlen(l->classes[i]) + 1;
    for (int64_t i = 0; i < l->n; ++i)
      len += strlen(l->files[i]) + 1;
    hdr[2] = (int64_t)len;
    blob = malloc(len ? len : 1);
    if (!blob) st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing of %zu bytes", root, len);
    char *p = blob;
    for (int64_t i = 0; blob && i < l->n_classes; ++i)
      p = stpcpy(p, l->classes[i]) + 1;
    for (int64_t i = 0; blob && i < l->n; ++i)
      p = stpcpy(p, l->files[i]) + 1;
  }
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_bcast(comm, hdr, sizeof hdr, 0);
  if (st != SN_OK) {
    free(blob);
    return st;
  }
  if (sn_comm_rank(comm) != 0) {
    blob = malloc(hdr[2] ? (size_t)hdr[2] : 1);
    l->classes = calloc((size_t)hdr[0], sizeof *l->classes);
    l->files = calloc((size_t)hdr[1], sizeof *l->files);
    l->labels = malloc((size_t)hdr[1] * sizeof *l->labels);
    if (!blob || !l->classes || !l->files || !l->labels)
      st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing of %lld bytes", root, (long long)hdr[2]);
  }
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_bcast(comm, blob, (size_t)hdr[2], 0);
  if (st == SN_OK) st = sn_comm_bcast(comm, l->labels, (size_t)hdr[1] * sizeof *l->labels, 0);
  if (st == SN_OK && sn_comm_rank(comm) != 0) {
    const char *p = blob;
    for (int64_t i = 0; st == SN_OK && i < hdr[0]; ++i, p += strlen(p) + 1)
      if (!(l->classes[i] = strdup(p))) st = sn_error_set(SN_ERR_NOMEM, "listing");
    l->n_classes = hdr[0];
    for (int64_t i = 0; st == SN_OK && i < hdr[1]; ++i, p += strlen(p) + 1)
      if (!(l->files[i] = strdup(p))) st = sn_error_set(SN_ERR_NOMEM, "listing");
    l->n = hdr[1];
  }
  free(blob);
  st = sn_comm_agree(comm, st);
  if (st != SN_OK) listing_free(l);
  return st;
}

/* Reads a whole file into *buf (grown as needed); *n is its size. */
static sn_status slurp(const char *path, uint8_t **buf, size_t *cap, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 || sb.st_size > SN_IO_MAX_ROW_BYTES) {
    fclose(f);
    return sn_error_set(SN_ERR_IO, "file %s: unusable size", path);
  }
  size_t size = (size_t)sb.st_size;
  if (size > *cap) {
    uint8_t *p = realloc(*buf, size);
    if (!p) {
      fclose(f);
      return sn_error_set(SN_ERR_NOMEM, "file %s: %zu bytes", path, size);
    }
    *buf = p;
    *cap = size;
  }
  size_t got = size ? fread(*buf, 1, size, f) : 0;
  fclose(f);
  if (got != size)
    return sn_error_set(SN_ERR_IO, "file %s: read %zu of %zu bytes", path, got, size);
  *n = size;
  return SN_OK;
}

static int looks_like_image(const uint8_t *p, size_t n) {
  return (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) ||
         (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8));
}

/* Raw form: every rank decodes its rows in rounds of whole chunks and writes them collectively. */
static sn_status folder_raw(const char *root, const listing *l, out_file *o,
                            const sn_convert_options *opt, int64_t k, int64_t b, int64_t e) {
  const int h = opt->height, w = opt->width, c = opt->channels;
  const size_t row = (size_t)h * w * c;
  const int64_t per_round = k * (k >= 64 ? 1 : (64 + k - 1) / k);
  int64_t rounds = (e - b + per_round - 1) / per_round;
  sn_status st = sn_comm_allreduce(o->comm, &rounds, 1, SN_I64, SN_MAX);
  if (st != SN_OK) return st;
  uint8_t *buf = malloc((size_t)per_round * row);
  uint8_t *file = NULL;
  size_t file_cap = 0;
  sn_image_scratch img;
  memset(&img, 0, sizeof img);
  if (!buf) st = sn_error_set(SN_ERR_NOMEM, "file %s: conversion buffer", o->tmp);
  st = sn_comm_agree(o->comm, st);
  hid_t d = -1;
  if (st == SN_OK) {
    sn_h5_lock();
    hsize_t dims[4] = {(hsize_t)l->n, (hsize_t)h, (hsize_t)w, (hsize_t)c};
    st = sn_h5_create_dataset(o->file, "images", H5T_STD_U8LE, 4, dims, (hsize_t)k,
                              opt->compression, o->tmp, &d);
    sn_h5_unlock();
    st = sn_comm_agree(o->comm, st);
  }
  for (int64_t r = 0; st == SN_OK && r < rounds; ++r) {
    int64_t rb = b + r * per_round, re = rb + per_round;
    if (rb > e) rb = e;
    if (re > e) re = e;
    for (int64_t i = rb; st == SN_OK && i < re; ++i) {
      char path[4096], err[512];
      snprintf(path, sizeof path, "%s/%s", root, l->files[i]);
      size_t n = 0;
      int ih = 0, iw = 0;
      st = slurp(path, &file, &file_cap, &n);
      if (st != SN_OK) break;
      st = sn_image_decode(file, n, c, &img, &ih, &iw, err, sizeof err);
      if (st == SN_OK) {
        st = sn_image_fit(img.pix, ih, iw, c, buf + (size_t)(i - rb) * row, h, w, opt->resize,
                          opt->resize_shorter, &img);
        if (st != SN_OK) snprintf(err, sizeof err, "cannot resize a %dx%d image", iw, ih);
      }
      if (st != SN_OK) st = sn_error_set(st, "file %s: %s", path, err);
    }
    st = sn_comm_agree(o->comm, st);
    if (st != SN_OK) break;
    sn_h5_lock();
    st = sn_h5_write_rows(d, H5T_NATIVE_UINT8, rb, re - rb, buf, o->dxpl, o->tmp);
    sn_h5_unlock();
    st = sn_comm_agree(o->comm, st);
    progress(opt, re - b, e - b);
  }
  sn_h5_lock();
  if (d >= 0) H5Dclose(d);
  sn_h5_unlock();
  free(buf);
  free(file);
  sn_image_scratch_free(&img);
  return st;
}

/* Encoded form: byte counts are gathered to place every rank's bytes, then written in rounds. */
static sn_status folder_encoded(const char *root, const listing *l, out_file *o,
                                const sn_convert_options *opt, int64_t b, int64_t e) {
  sn_comm *comm = o->comm;
  const int size = sn_comm_size(comm);
  sn_status st = SN_OK;
  int64_t *off = malloc((size_t)(e - b + 1) * sizeof *off); /* local offsets, then global */
  int64_t *totals = malloc((size_t)size * sizeof *totals);
  if (!off || !totals) st = sn_error_set(SN_ERR_NOMEM, "file %s: offsets", o->tmp);
  if (off) off[0] = 0;
  for (int64_t i = b; st == SN_OK && i < e; ++i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, l->files[i]);
    struct stat sb;
    if (stat(path, &sb) != 0)
      st = sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", path, strerror(errno));
    else if (sb.st_size <= 0 || sb.st_size > SN_IO_MAX_ROW_BYTES)
      st = sn_error_set(SN_ERR_FORMAT, "file %s: size %lld is not usable", path,
                        (long long)sb.st_size);
    else
      off[i - b + 1] = off[i - b] + (int64_t)sb.st_size;
  }
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_allgather(comm, &off[e - b], totals, sizeof(int64_t));
  if (st != SN_OK) {
    free(off);
    free(totals);
    return st;
  }
  int64_t base = 0, total = 0;
  for (int r = 0; r < size; ++r) {
    if (r < sn_comm_rank(comm)) base += totals[r];
    total += totals[r];
  }
  for (int64_t i = 0; i <= e - b; ++i)
    off[i] += base;
  free(totals);

  const int64_t per_round = 64;
  int64_t rounds = (e - b + per_round - 1) / per_round;
  st = sn_comm_allreduce(comm, &rounds, 1, SN_I64, SN_MAX);
  hid_t de = -1, dof = -1;
  if (st == SN_OK) {
    sn_h5_lock();
    hsize_t edims[1] = {(hsize_t)total}, odims[1] = {(hsize_t)l->n + 1};
    st = sn_h5_create_dataset(o->file, "encoded", H5T_STD_U8LE, 1, edims, 1 << 20, 0, o->tmp, &de);
    /* whatever happened to /encoded: creation is collective, every rank makes the same calls */
    sn_status sto =
        sn_h5_create_dataset(o->file, "offsets", H5T_STD_I64LE, 1, odims, 1 << 16, 0, o->tmp, &dof);
    if (st == SN_OK) st = sto;
    const int64_t attrs[3] = {opt->height, opt->width, opt->channels};
    const char *names[3] = {"height", "width", "channels"};
    for (int i = 0; st == SN_OK && i < 3; ++i)
      st = sn_h5_write_int_attr(de, names[i], attrs[i], o->tmp);
    /* offsets [b, e), plus the end offset from the rank that holds the last row */
    const int64_t count = (e - b) + (e == l->n && e > b ? 1 : 0);
    if (st == SN_OK) st = sn_h5_write_rows(dof, H5T_NATIVE_INT64, b, count, off, o->dxpl, o->tmp);
    sn_h5_unlock();
  }
  st = sn_comm_agree(comm, st);
  uint8_t *buf = NULL, *file = NULL;
  size_t cap = 0, file_cap = 0;
  for (int64_t r = 0; st == SN_OK && r < rounds; ++r) {
    int64_t rb = b + r * per_round, re = rb + per_round;
    if (rb > e) rb = e;
    if (re > e) re = e;
    const size_t bytes = (size_t)(off[re - b] - off[rb - b]);
    if (bytes > cap) {
      uint8_t *p = realloc(buf, bytes);
      if (!p)
        st = sn_error_set(SN_ERR_NOMEM, "file %s: %zu bytes", o->tmp, bytes);
      else {
        buf = p;
        cap = bytes;
      }
    }
    for (int64_t i = rb; st == SN_OK && i < re; ++i) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", root, l->files[i]);
      size_t n = 0;
      st = slurp(path, &file, &file_cap, &n);
      if (st != SN_OK) break;
      const size_t want = (size_t)(off[i - b + 1] - off[i - b]);
      if (n != want) {
        st = sn_error_set(SN_ERR_IO, "file %s: changed size during conversion (%zu, then %zu)",
                          path, want, n);
      } else if (!looks_like_image(file, n)) {
        st = sn_error_set(SN_ERR_FORMAT, "file %s: not a JPEG or PNG file", path);
      } else {
        memcpy(buf + (off[i - b] - off[rb - b]), file, n);
      }
    }
    st = sn_comm_agree(comm, st);
    if (st != SN_OK) break;
    sn_h5_lock();
    st = sn_h5_write_rows(de, H5T_NATIVE_UINT8, off[rb - b], (int64_t)bytes, buf, o->dxpl, o->tmp);
    sn_h5_unlock();
    st = sn_comm_agree(comm, st);
    progress(opt, re - b, e - b);
  }
  sn_h5_lock();
  if (de >= 0) H5Dclose(de);
  if (dof >= 0) H5Dclose(dof);
  sn_h5_unlock();
  free(buf);
  free(file);
  free(off);
  return st;
}

sn_status sn_convert_folder(const char *root, const char *out_path, sn_comm *comm,
                            const sn_convert_options *opt) {
  sn_convert_options defaults;
  if (!opt) {
    sn_convert_options_init(&defaults);
    opt = &defaults;
  }
  if (!root || !out_path) return sn_error_set(SN_ERR_INVALID, "sn_convert_folder: NULL path");
  if (opt->height < 1 || opt->width < 1 || opt->height > SN_IO_MAX_SIDE ||
      opt->width > SN_IO_MAX_SIDE || (opt->channels != 1 && opt->channels != 3) ||
      opt->resize_shorter < 0 ||
      (!opt->encoded && opt->resize_shorter > 0 &&
       (opt->height > opt->resize_shorter || opt->width > opt->resize_shorter)))
    return sn_error_set(SN_ERR_INVALID, "folder %s: target %dx%dx%d (resize shorter %d) is invalid",
                        root, opt->height, opt->width, opt->channels, opt->resize_shorter);
  listing l;
  sn_status st = share_listing(root, comm, &l);
  if (st != SN_OK) return st;
  const size_t row = (size_t)opt->height * opt->width * opt->channels;
  const int64_t k = opt->encoded ? 1 : auto_chunk(l.n, row, opt->chunk_rows);
  int64_t b, e;
  rank_rows(l.n, opt->encoded ? 64 : k, comm, &b, &e);
  out_file o;
  st = out_create(&o, out_path, comm);
  if (st != SN_OK) {
    listing_free(&l);
    return st;
  }
  progress(opt, 0, e - b);
  if (opt->encoded)
    st = folder_encoded(root, &l, &o, opt, b, e);
  else
    st = folder_raw(root, &l, &o, opt, k, b, e);
  if (st == SN_OK) st = sn_comm_agree(comm, write_labels(&o, l.n, b, e, l.labels + b));
  if (st == SN_OK) {
    sn_h5_lock();
    st = sn_h5_write_str_dataset(o.file, "classes", (const char *const *)l.classes, l.n_classes,
                                 comm, o.tmp);
    if (st == SN_OK)
      st = sn_h5_write_str_dataset(o.file, "filenames", (const char *const *)l.files, l.n, comm,
                                   o.tmp);
    sn_h5_unlock();
    st = sn_comm_agree(comm, st);
  }
  listing_free(&l);
  return out_finish(&o, st);
}
