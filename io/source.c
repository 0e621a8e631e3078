/* source.c - what the paths given as a dataset name (docs/hdf5-schema.md, "Data sources"): HDF5
 * files (given one by one, as a glob, or in a text file of paths), a folder tree of images (with
 * or without class sub-folders), or image files (in a text list with an optional label column, or
 * given one by one). Listed on one rank and broadcast, so that every rank reads the same rows. */
#define _POSIX_C_SOURCE 200809L /* strdup, stpcpy */
#define _DEFAULT_SOURCE         /* DT_DIR */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "io_impl.h"

void sn_source_options_init(sn_source_options *o) {
  memset(o, 0, sizeof *o);
  o->labels_from = SN_LABELS_AUTO;
  o->height = o->width = 224;
  o->channels = 3;
}

void sn_listing_free(sn_listing *l) {
  if (!l) return;
  free(l->origin);
  free(l->base);
  sn_h5_free_strs(l->names, l->n);
  free(l->labels);
  sn_h5_free_strs(l->classes, l->n_classes);
  free(l->labels_from);
  memset(l, 0, sizeof *l);
}

static int has_ext(const char *name, const char *const *exts) {
  const char *dot = strrchr(name, '.');
  if (!dot || strchr(dot, '/')) return 0;
  for (; *exts; ++exts)
    if (!strcasecmp(dot + 1, *exts)) return 1;
  return 0;
}

/* Decoded: jpg jpeg jpe jfif png. Listed too, so that a folder's GIF or WebP files are reported
 * (failed or skipped with the reason) instead of silently left out: the other formats Pillow
 * reads. */
static const char *const image_exts[] = {"jpg", "jpeg", "jpe",  "jfif", "png",  "gif",  "webp",
                                         "bmp", "tif",  "tiff", "heic", "heif", "avif", "jp2",
                                         "jxl", "ppm",  "pgm",  "pbm",  "pnm",  "ico",  NULL};
static const char *const hdf5_exts[] = {"h5", "hdf5", "he5", "hdf", NULL};

int sn_is_image_name(const char *name) { return has_ext(name, image_exts); }

int sn_listing_path(const sn_listing *l, int64_t i, char *buf, size_t n) {
  const char *name = l->names[i];
  int w;
  if (l->kind == SN_SOURCE_FOLDER || (l->base && l->base[0] && name[0] != '/'))
    w = snprintf(buf, n, "%s/%s", l->base, name);
  else
    w = snprintf(buf, n, "%s", name);
  return w >= 0 && (size_t)w < n;
}

/* ---------------------------------------------------------------- folders */

typedef struct entry {
  char *dir;  /* relative directory ("" for the root, class/sub/...) */
  char *name; /* file name */
  int32_t label;
} entry;

typedef struct entries {
  entry *v;
  int64_t n, cap;
} entries;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* torchvision ImageFolder's order: class, then directory, then file name. */
static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->label != y->label) return x->label < y->label ? -1 : 1;
  int c = strcmp(x->dir, y->dir);
  return c ? c : strcmp(x->name, y->name);
}

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void entries_free(entries *es) {
  for (int64_t i = 0; i < es->n; ++i) {
    free(es->v[i].dir);
    free(es->v[i].name);
  }
  free(es->v);
  memset(es, 0, sizeof *es);
}

/* Collects image files under root/rel recursively (following links, as os.walk(followlinks));
 * hidden entries (".name") are left out. */
static sn_status walk(const char *root, const char *rel, int32_t label, entries *out, int depth) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel) >= (int)sizeof path)
    return sn_error_set(SN_ERR_INVALID, "folder %s: path too long under %s", root, rel);
  if (depth > 32)
    return sn_error_set(SN_ERR_INVALID, "folder %s: directories nested too deep", path);
  DIR *d = opendir(path);
  if (!d) return sn_error_set(SN_ERR_IO, "folder %s: cannot list: %s", path, strerror(errno));
  sn_status st = SN_OK;
  struct dirent *de;
  while (st == SN_OK && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char sub[PATH_MAX], full[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) >=
            (int)sizeof sub ||
        snprintf(full, sizeof full, "%s/%s", path, de->d_name) >= (int)sizeof full) {
      st = sn_error_set(SN_ERR_INVALID, "folder %s: path too long: %s", root, de->d_name);
      break;
    }
    if (is_dir(full)) {
      st = walk(root, sub, label, out, depth + 1);
    } else if (sn_is_image_name(de->d_name)) {
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

/* Lists a folder: with class sub-folders (labels = index of the sorted folder names; files in the
 * root itself belong to no class and are left out, as torchvision's ImageFolder leaves them) or
 * without (every image file of the tree, unlabelled). auto: class sub-folders when the root holds
 * sub-folders and no image file of its own. */
static sn_status list_folder(const char *root, sn_labels_from from, sn_listing *l) {
  DIR *d = opendir(root);
  if (!d) return sn_error_set(SN_ERR_IO, "folder %s: cannot open: %s", root, strerror(errno));
  sn_status st = SN_OK;
  int64_t cap = 0, own_images = 0;
  struct dirent *de;
  while (st == SN_OK && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s/%s", root, de->d_name) >= (int)sizeof full) continue;
    if (!is_dir(full)) {
      own_images += sn_is_image_name(de->d_name);
      continue;
    }
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
  if (st != SN_OK) return st;
  const int classes =
      from == SN_LABELS_FOLDERS || (from == SN_LABELS_AUTO && l->n_classes > 0 && own_images == 0);
  if (classes && l->n_classes == 0)
    return sn_error_set(SN_ERR_NOTFOUND,
                        "folder %s: no class sub-folders (labels from folders; use labels from "
                        "none for a folder of unlabelled images)",
                        root);
  if (classes && l->n_classes > SN_IO_MAX_CLASSES)
    return sn_error_set(SN_ERR_INVALID, "folder %s: %lld classes", root, (long long)l->n_classes);
  entries es = {NULL, 0, 0};
  if (classes) {
    qsort(l->classes, (size_t)l->n_classes, sizeof *l->classes, cmp_str);
    for (int64_t c = 0; st == SN_OK && c < l->n_classes; ++c) {
      const int64_t before = es.n;
      st = walk(root, l->classes[c], (int32_t)c, &es, 0);
      if (st == SN_OK && es.n == before)
        st = sn_error_set(SN_ERR_NOTFOUND, "folder %s: class '%s' has no image files", root,
                          l->classes[c]);
    }
  } else {
    sn_h5_free_strs(l->classes, l->n_classes);
    l->classes = NULL;
    l->n_classes = 0;
    st = walk(root, "", 0, &es, 0);
    if (st == SN_OK && es.n == 0)
      st =
          sn_error_set(SN_ERR_NOTFOUND, "folder %s: no image files (.jpg, .jpeg, .png, ...)", root);
  }
  if (st == SN_OK && es.n > SN_IO_MAX_ROWS)
    st = sn_error_set(SN_ERR_INVALID, "folder %s: %lld files", root, (long long)es.n);
  if (st == SN_OK) {
    qsort(es.v, (size_t)es.n, sizeof *es.v, cmp_entry);
    l->names = calloc((size_t)es.n, sizeof *l->names);
    l->labels = classes ? malloc((size_t)es.n * sizeof *l->labels) : NULL;
    if (!l->names || (classes && !l->labels))
      st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
    for (int64_t i = 0; st == SN_OK && i < es.n; ++i) {
      const entry *e = &es.v[i];
      size_t len = strlen(e->dir) + strlen(e->name) + 2;
      if (!(l->names[i] = malloc(len))) {
        st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
        break;
      }
      snprintf(l->names[i], len, "%s%s%s", e->dir, e->dir[0] ? "/" : "", e->name);
      if (classes) l->labels[i] = e->label;
      l->n = i + 1;
    }
  }
  entries_free(&es);
  if (st == SN_OK) {
    l->kind = SN_SOURCE_FOLDER;
    l->origin = strdup(root);
    l->base = strdup(root);
    l->labels_from = strdup(classes ? "folders" : "none");
    if (!l->origin || !l->base || !l->labels_from)
      st = sn_error_set(SN_ERR_NOMEM, "folder %s: listing", root);
  }
  return st;
}

/* ---------------------------------------------------------------- lists */

typedef struct strs {
  char **v;
  int64_t n, cap;
} strs;

static int strs_push(strs *s, const char *p, size_t len) {
  if (s->n == s->cap) {
    int64_t cap = s->cap ? 2 * s->cap : 256;
    char **v = realloc(s->v, (size_t)cap * sizeof *v);
    if (!v) return 0;
    s->v = v;
    s->cap = cap;
  }
  char *c = malloc(len + 1);
  if (!c) return 0;
  memcpy(c, p, len);
  c[len] = 0;
  s->v[s->n++] = c;
  return 1;
}

/* The label at the end of a list line: "<path>\t<int>", or "<path><sep><int>" with sep a comma or
 * blanks. Returns the length of the path part, or -1 without a label. */
static long split_label(const char *line, int tab, int64_t *label) {
  const char *sep = tab ? strrchr(line, '\t') : NULL;
  if (!tab) {
    const char *end = line + strlen(line);
    const char *q = end;
    while (q > line && q[-1] >= '0' && q[-1] <= '9')
      --q;
    if (q == end || q == line) return -1;
    if (q[-1] != ',' && q[-1] != ' ') return -1;
    sep = q - 1;
  }
  if (!sep || sep == line) return -1;
  char *e;
  errno = 0;
  long long v = strtoll(sep + 1, &e, 10);
  while (*e == ' ' || *e == '\t')
    ++e;
  if (*e || e == sep + 1 || errno || v < 0 || v >= SN_IO_MAX_CLASSES) return -2;
  const char *p = sep;
  while (p > line && (p[-1] == ' ' || (!tab && p[-1] == ',')))
    --p;
  *label = v;
  return (long)(p - line);
}

/* Reads a text file of paths. Empty lines and lines starting with '#' are skipped. Labels: with
 * a tab on every line, the number after the last tab; else, when every line ends in a comma or
 * blank and a number, that number; otherwise the whole line is the path. */
static sn_status read_list(const char *path, strs *names, int32_t **labels) {
  *labels = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return sn_error_set(SN_ERR_IO, "list %s: cannot open: %s", path, strerror(errno));
  strs lines = {NULL, 0, 0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  sn_status st = SN_OK;
  int64_t lineno = 0, tabs = 0;
  int64_t *nos = NULL;
  while (st == SN_OK && (len = getline(&line, &cap, f)) >= 0) {
    ++lineno;
    if (memchr(line, 0, (size_t)len)) {
      st = sn_error_set(SN_ERR_FORMAT,
                        "file %s: neither an HDF5 file, an image, a folder nor a text list of "
                        "paths (binary data on line %lld)",
                        path, (long long)lineno);
      break;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = 0;
    if (len == 0 || line[0] == '#') continue;
    if (len >= PATH_MAX) {
      st = sn_error_set(SN_ERR_FORMAT, "list %s: line %lld is %zd bytes long", path,
                        (long long)lineno, len);
      break;
    }
    int64_t *nn = realloc(nos, (size_t)(lines.n + 1) * sizeof *nos);
    if (!nn || !strs_push(&lines, line, (size_t)len)) {
      if (nn) nos = nn;
      st = sn_error_set(SN_ERR_NOMEM, "list %s: line %lld", path, (long long)lineno);
      break;
    }
    nos = nn;
    nos[lines.n - 1] = lineno;
    tabs += strchr(line, '\t') != NULL;
  }
  free(line);
  fclose(f);
  if (st == SN_OK && lines.n == 0)
    st = sn_error_set(SN_ERR_FORMAT, "list %s: no paths in it", path);
  /* label column? */
  int with_labels = 0, tab = tabs > 0;
  if (st == SN_OK && tab && tabs != lines.n) {
    for (int64_t i = 0; i < lines.n; ++i)
      if (!strchr(lines.v[i], '\t')) {
        st = sn_error_set(SN_ERR_FORMAT,
                          "list %s: line %lld has no tab before a label (other lines have "
                          "\"path<TAB>label\")",
                          path, (long long)nos[i]);
        break;
      }
  }
  if (st == SN_OK) {
    with_labels = 1;
    for (int64_t i = 0; i < lines.n && with_labels; ++i) {
      int64_t lab;
      long k = split_label(lines.v[i], tab, &lab);
      if (k == -2 || (tab && k < 0)) {
        st = sn_error_set(SN_ERR_FORMAT,
                          "list %s: line %lld: the label after the %s is not an integer in [0, "
                          "%d)",
                          path, (long long)nos[i], tab ? "tab" : "path", SN_IO_MAX_CLASSES);
        break;
      }
      if (k < 0) with_labels = 0;
    }
  }
  if (st == SN_OK && with_labels && !(*labels = malloc((size_t)lines.n * sizeof **labels)))
    st = sn_error_set(SN_ERR_NOMEM, "list %s: labels", path);
  for (int64_t i = 0; st == SN_OK && i < lines.n; ++i) {
    int64_t lab = 0;
    long k = with_labels ? split_label(lines.v[i], tab, &lab) : (long)strlen(lines.v[i]);
    if (k <= 0) {
      st = sn_error_set(SN_ERR_FORMAT, "list %s: line %lld: no path before the label", path,
                        (long long)nos[i]);
      break;
    }
    if (!strs_push(names, lines.v[i], (size_t)k))
      st = sn_error_set(SN_ERR_NOMEM, "list %s: names", path);
    else if (with_labels)
      (*labels)[i] = (int32_t)lab;
  }
  sn_h5_free_strs(lines.v, lines.n);
  free(nos);
  if (st != SN_OK) {
    free(*labels);
    *labels = NULL;
  }
  return st;
}

/* ---------------------------------------------------------------- classification */

enum { P_MISSING, P_DIR, P_HDF5, P_IMAGE, P_TEXT };

static int classify(const char *path, int *err) {
  struct stat sb;
  *err = 0;
  if (stat(path, &sb) != 0) {
    *err = errno;
    return P_MISSING;
  }
  if (S_ISDIR(sb.st_mode)) return P_DIR;
  sn_h5_lock();
  const htri_t h = H5Fis_hdf5(path);
  sn_h5_unlock();
  if (h > 0) return P_HDF5;
  FILE *f = fopen(path, "rb");
  uint8_t head[16] = {0};
  const size_t got = f ? fread(head, 1, sizeof head, f) : 0;
  if (f) fclose(f);
  if (got > 0 && sn_image_format_name(head, got)) return P_IMAGE;
  if (has_ext(path, hdf5_exts)) return P_HDF5; /* a damaged HDF5 file: opening it says so */
  if (sn_is_image_name(path)) return P_IMAGE;  /* a bad image file: decoding it says so */
  return P_TEXT;
}

static int has_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

/* The directory part of path ("" if none), malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup("");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* Adds the HDF5 paths of a text list (relative to the list's directory) to out. */
static sn_status hdf5_list(const char *list, strs *lines, strs *out) {
  char *base = dir_of(list);
  sn_status st = base ? SN_OK : sn_error_set(SN_ERR_NOMEM, "list %s", list);
  for (int64_t i = 0; st == SN_OK && i < lines->n; ++i) {
    char p[PATH_MAX];
    const char *name = lines->v[i];
    const int w = name[0] == '/' || !base[0] ? snprintf(p, sizeof p, "%s", name)
                                             : snprintf(p, sizeof p, "%s/%s", base, name);
    if (w < 0 || w >= (int)sizeof p)
      st = sn_error_set(SN_ERR_INVALID, "list %s: path too long: %s", list, name);
    else if (!strs_push(out, p, strlen(p)))
      st = sn_error_set(SN_ERR_NOMEM, "list %s", list);
  }
  free(base);
  return st;
}

sn_status sn_listing_make(const char *const *paths, int n, const sn_source_options *o,
                          sn_listing *l) {
  memset(l, 0, sizeof *l);
  sn_source_options defaults;
  if (!o) {
    sn_source_options_init(&defaults);
    o = &defaults;
  }
  if (n < 1 || !paths)
    return sn_error_set(SN_ERR_INVALID, "no input given (a folder, a list or HDF5 files)");
  if (o->labels_from != SN_LABELS_AUTO && o->labels_from != SN_LABELS_FOLDERS &&
      o->labels_from != SN_LABELS_NONE)
    return sn_error_set(SN_ERR_INVALID, "labels_from %d is not auto, folders or none",
                        (int)o->labels_from);
  strs h5 = {NULL, 0, 0}, images = {NULL, 0, 0};
  sn_status st = SN_OK;
  int folders = 0, lists = 0;
  const char *folder = NULL, *list = NULL;
  int32_t *list_labels = NULL;
  strs listed = {NULL, 0, 0};
  for (int i = 0; st == SN_OK && i < n; ++i) {
    const char *p = paths[i];
    if (!p || !*p) {
      st = sn_error_set(SN_ERR_INVALID, "an empty input path");
      break;
    }
    int err = 0, kind = classify(p, &err);
    if (kind == P_MISSING && has_glob(p)) {
      glob_t g;
      int r = glob(p, 0, NULL, &g);
      if (r == GLOB_NOMATCH || (r == 0 && g.gl_pathc == 0)) {
        st = sn_error_set(SN_ERR_IO, "file %s: the pattern matches no file", p);
      } else if (r != 0) {
        st = sn_error_set(SN_ERR_IO, "file %s: cannot expand the pattern", p);
      } else {
        for (size_t j = 0; st == SN_OK && j < g.gl_pathc; ++j) {
          int e2;
          const int k = classify(g.gl_pathv[j], &e2);
          strs *to = k == P_HDF5 ? &h5 : k == P_IMAGE ? &images : NULL;
          if (!to)
            st = sn_error_set(SN_ERR_FORMAT,
                              "file %s (matched by %s): neither an HDF5 file nor an image", p,
                              g.gl_pathv[j]);
          else if (!strs_push(to, g.gl_pathv[j], strlen(g.gl_pathv[j])))
            st = sn_error_set(SN_ERR_NOMEM, "inputs");
        }
      }
      if (r == 0) globfree(&g);
      continue;
    }
    switch (kind) {
    case P_MISSING:
      st = sn_error_set(SN_ERR_IO, "file %s: cannot open: %s", p, strerror(err));
      break;
    case P_DIR:
      folders++;
      folder = p;
      break;
    case P_HDF5:
      if (!strs_push(&h5, p, strlen(p))) st = sn_error_set(SN_ERR_NOMEM, "inputs");
      break;
    case P_IMAGE:
      if (!strs_push(&images, p, strlen(p))) st = sn_error_set(SN_ERR_NOMEM, "inputs");
      break;
    default: {
      strs lines = {NULL, 0, 0};
      int32_t *labs = NULL;
      st = read_list(p, &lines, &labs);
      /* a list of HDF5 files, or of images */
      int64_t nh5 = 0;
      for (int64_t j = 0; st == SN_OK && j < lines.n; ++j)
        nh5 += has_ext(lines.v[j], hdf5_exts);
      if (st == SN_OK && nh5 == lines.n && labs) {
        st = sn_error_set(SN_ERR_FORMAT, "list %s: a list of HDF5 files takes no label column", p);
      } else if (st == SN_OK && nh5 == lines.n) {
        st = hdf5_list(p, &lines, &h5);
      } else if (st == SN_OK && nh5 > 0) {
        st = sn_error_set(SN_ERR_FORMAT,
                          "list %s: names HDF5 files and other files; a list holds either HDF5 "
                          "datasets or images",
                          p);
      } else if (st == SN_OK) {
        lists++;
        list = p;
        sn_h5_free_strs(listed.v, listed.n);
        free(list_labels);
        listed = lines;
        list_labels = labs;
        lines = (strs){NULL, 0, 0};
        labs = NULL;
      }
      sn_h5_free_strs(lines.v, lines.n);
      free(labs);
    }
    }
  }
  /* one kind of source per dataset */
  const int kinds = (folders > 0) + (lists > 0) + (h5.n > 0) + (images.n > 0);
  if (st == SN_OK && (kinds > 1 || folders > 1 || lists > 1))
    st = sn_error_set(SN_ERR_INVALID,
                      "inputs: a job reads one folder, one list of images, image files or HDF5 "
                      "files, not a mix (got %d folder(s), %d list(s), %lld image file(s), %lld "
                      "HDF5 file(s))",
                      folders, lists, (long long)images.n, (long long)h5.n);
  if (st == SN_OK && folders) {
    st = list_folder(folder, o->labels_from, l);
  } else if (st == SN_OK && (lists || images.n)) {
    if (o->labels_from == SN_LABELS_FOLDERS)
      st = sn_error_set(SN_ERR_INVALID,
                        "%s: labels from folders needs a folder with class sub-folders",
                        lists ? list : images.v[0]);
    l->kind = SN_SOURCE_LIST;
    l->origin = strdup(lists ? list : "");
    l->base = lists ? dir_of(list) : strdup("");
    const int labelled = lists && list_labels && o->labels_from != SN_LABELS_NONE;
    l->labels_from = strdup(labelled ? "list" : "none");
    strs *src = lists ? &listed : &images;
    l->names = src->v;
    l->n = src->n;
    src->v = NULL;
    src->n = 0;
    if (labelled) {
      l->labels = list_labels;
      list_labels = NULL;
    }
    if (st == SN_OK && (!l->origin || !l->base || !l->labels_from))
      st = sn_error_set(SN_ERR_NOMEM, "inputs");
  } else if (st == SN_OK) {
    if (o->labels_from == SN_LABELS_FOLDERS)
      st = sn_error_set(SN_ERR_INVALID,
                        "file %s: labels from folders needs a folder with class sub-folders",
                        h5.v[0]);
    l->kind = SN_SOURCE_HDF5;
    l->origin = strdup(h5.v[0]);
    l->base = strdup("");
    l->labels_from = strdup("");
    l->names = h5.v;
    l->n = h5.n;
    h5.v = NULL;
    h5.n = 0;
    if (st == SN_OK && (!l->origin || !l->base || !l->labels_from))
      st = sn_error_set(SN_ERR_NOMEM, "inputs");
  }
  sn_h5_free_strs(h5.v, h5.n);
  sn_h5_free_strs(images.v, images.n);
  sn_h5_free_strs(listed.v, listed.n);
  free(list_labels);
  if (st != SN_OK) sn_listing_free(l);
  return st;
}

/* ---------------------------------------------------------------- sharing */

static size_t blob_len(const char *s) { return strlen(s) + 1; }

sn_status sn_listing_share(const char *const *paths, int n, const sn_source_options *o,
                           sn_comm *comm, sn_listing *l) {
  memset(l, 0, sizeof *l);
  const int rank = sn_comm_rank(comm);
  sn_status st = rank == 0 ? sn_listing_make(paths, n, o, l) : SN_OK;
  st = sn_comm_agree(comm, st);
  if (st != SN_OK || sn_comm_size(comm) == 1) return st;
  /* header: kind, n, n_classes, labelled, blob bytes; blob: origin, base, labels_from, classes,
   * names, each NUL-terminated */
  int64_t hdr[5] = {l->kind, l->n, l->n_classes, l->labels != NULL, 0};
  char *blob = NULL;
  if (rank == 0) {
    size_t len = blob_len(l->origin) + blob_len(l->base) + blob_len(l->labels_from);
    for (int64_t i = 0; i < l->n_classes; ++i)
      len += blob_len(l->classes[i]);
    for (int64_t i = 0; i < l->n; ++i)
      len += blob_len(l->names[i]);
    hdr[4] = (int64_t)len;
    if (!(blob = malloc(len))) {
      st = sn_error_set(SN_ERR_NOMEM, "listing of %zu bytes", len);
    } else {
      char *p = stpcpy(blob, l->origin) + 1;
      p = stpcpy(p, l->base) + 1;
      p = stpcpy(p, l->labels_from) + 1;
      for (int64_t i = 0; i < l->n_classes; ++i)
        p = stpcpy(p, l->classes[i]) + 1;
      for (int64_t i = 0; i < l->n; ++i)
        p = stpcpy(p, l->names[i]) + 1;
    }
  }
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_bcast(comm, hdr, sizeof hdr, 0);
  if (st == SN_OK && rank != 0) {
    l->kind = (sn_source_kind)hdr[0];
    blob = malloc(hdr[4] ? (size_t)hdr[4] : 1);
    l->names = calloc(hdr[1] ? (size_t)hdr[1] : 1, sizeof *l->names);
    l->classes = calloc(hdr[2] ? (size_t)hdr[2] : 1, sizeof *l->classes);
    l->labels = hdr[3] ? malloc((size_t)hdr[1] * sizeof *l->labels) : NULL;
    if (!blob || !l->names || !l->classes || (hdr[3] && !l->labels))
      st = sn_error_set(SN_ERR_NOMEM, "listing of %lld bytes", (long long)hdr[4]);
  }
  st = sn_comm_agree(comm, st);
  if (st == SN_OK) st = sn_comm_bcast(comm, blob, (size_t)hdr[4], 0);
  if (st == SN_OK && hdr[3])
    st = sn_comm_bcast(comm, l->labels, (size_t)hdr[1] * sizeof *l->labels, 0);
  if (st == SN_OK && rank != 0) {
    const char *p = blob;
    char **fixed[3] = {&l->origin, &l->base, &l->labels_from};
    for (int i = 0; i < 3; ++i, p += strlen(p) + 1)
      if (!(*fixed[i] = strdup(p))) st = sn_error_set(SN_ERR_NOMEM, "listing");
    for (int64_t i = 0; st == SN_OK && i < hdr[2]; ++i, p += strlen(p) + 1) {
      if (!(l->classes[i] = strdup(p))) st = sn_error_set(SN_ERR_NOMEM, "listing");
      l->n_classes = i + 1;
    }
    for (int64_t i = 0; st == SN_OK && i < hdr[1]; ++i, p += strlen(p) + 1) {
      if (!(l->names[i] = strdup(p))) st = sn_error_set(SN_ERR_NOMEM, "listing");
      l->n = i + 1;
    }
  }
  free(blob);
  st = sn_comm_agree(comm, st);
  if (st != SN_OK) sn_listing_free(l);
  return st;
}
