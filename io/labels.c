/* labels.c - class names (and WordNet ids) from a label file (docs/cli.md, "Labels and
 * decoded predictions").
 *
 * Two forms, told apart by the first character after any byte-order mark and white space:
 *  - a plain list: one class name per line, line i naming class i (CR LF accepted, trailing blank
 *    lines ignored; a blank line before the last name is an error: it would shift every class
 *    after it);
 *  - Keras' imagenet_class_index.json, '{': an object {"0": ["n01440764", "tench"], ...} whose keys
 *    are the class indices 0..K-1, each once, in any order, and whose values are [wnid, name].
 * The JSON reader accepts exactly this shape (any white space, every string escape, \u escapes
 * as UTF-8 with surrogate pairs) and names the line of the first thing it does not expect.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardnet.h"

/* Largest label file accepted (a 1000-class file is 40 KB) and largest class count. */
#define SN_LABELS_MAX_BYTES ((size_t)64 << 20)
#define SN_LABELS_MAX_CLASSES 1000000

struct sn_labels {
  int n;
  char **name; /* (n) */
  char **wnid; /* (n) or NULL: a plain list has none */
};

void sn_labels_destroy(sn_labels *l) {
  if (!l) return;
  for (int i = 0; i < l->n; ++i) {
    free(l->name[i]);
    if (l->wnid) free(l->wnid[i]);
  }
  free(l->name);
  free(l->wnid);
  free(l);
}

int sn_labels_count(const sn_labels *l) { return l ? l->n : 0; }

const char *sn_labels_name(const sn_labels *l, int i) {
  return l && i >= 0 && i < l->n ? l->name[i] : NULL;
}

const char *sn_labels_wnid(const sn_labels *l, int i) {
  return l && l->wnid && i >= 0 && i < l->n ? l->wnid[i] : NULL;
}

/* The whole file, NUL-terminated, into *buf (*len bytes before the NUL). */
static sn_status slurp(const char *path, char **buf, size_t *len) {
  *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return sn_error_set(SN_ERR_IO, "label file %s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap + 1);
  sn_status st = b ? SN_OK : sn_error_set(SN_ERR_NOMEM, "label file %s: out of memory", path);
  while (!st) {
    size_t got = fread(b + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
    if (n == cap) {
      char *t = cap < SN_LABELS_MAX_BYTES ? realloc(b, 2 * cap + 1) : NULL;
      if (!t)
        st = sn_error_set(SN_ERR_FORMAT, "label file %s: larger than %zu MiB", path,
                          SN_LABELS_MAX_BYTES >> 20);
      else
        b = t, cap *= 2;
    }
  }
  if (!st && ferror(f))
    st = sn_error_set(SN_ERR_IO, "label file %s: read error: %s", path, strerror(errno));
  fclose(f);
  if (st) {
    free(b);
    return st;
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
  return SN_OK;
}

/* Appends name to l's names (*cap: their capacity); 0 when out of memory. */
static int push(sn_labels *l, int *cap, char *name) {
  if (l->n == *cap) {
    int nc = *cap ? 2 * *cap : 1024;
    char **a = realloc(l->name, (size_t)nc * sizeof *a);
    if (!a) return 0;
    l->name = a;
    *cap = nc;
  }
  l->name[l->n++] = name;
  return 1;
}

static sn_status read_list(const char *path, const char *text, sn_labels *l) {
  int cap = 0, line = 0, blank_at = 0;
  for (const char *p = text; *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    ++line;
    if (len > 0 && p[len - 1] == '\r') --len;
    if (len == 0) {
      if (!blank_at) blank_at = line;
    } else {
      if (blank_at)
        return sn_error_set(SN_ERR_FORMAT,
                            "label file %s: line %d is empty (a plain label file names one class "
                            "per line, line i class i)",
                            path, blank_at);
      if (memchr(p, '\0', len))
        return sn_error_set(SN_ERR_FORMAT, "label file %s: line %d holds a NUL byte", path, line);
      if (l->n >= SN_LABELS_MAX_CLASSES)
        return sn_error_set(SN_ERR_FORMAT, "label file %s: more than %d classes", path,
                            SN_LABELS_MAX_CLASSES);
      char *name = strndup(p, len);
      if (!name || !push(l, &cap, name)) {
        free(name);
        return sn_error_set(SN_ERR_NOMEM, "label file %s: out of memory", path);
      }
    }
    if (!e) break;
    p = e + 1;
  }
  if (l->n == 0) return sn_error_set(SN_ERR_FORMAT, "label file %s: no class names", path);
  return SN_OK;
}

/* ---------------------------------------------------------------- Keras' class index JSON */

typedef struct json {
  const char *path, *p;
  int line;
} json;

static void skip_ws(json *j) {
  for (; *j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'; ++j->p)
    if (*j->p == '\n') ++j->line;
}

static sn_status expected(const json *j, const char *what) {
  char got[24];
  if (!*j->p)
    snprintf(got, sizeof got, "the end of the file");
  else
    snprintf(got, sizeof got, "'%.8s'", j->p);
  return sn_error_set(SN_ERR_FORMAT,
                      "label file %s: line %d: expected %s, found %s (a JSON label file is Keras' "
                      "imagenet_class_index.json: {\"0\": [\"n01440764\", \"tench\"], ...})",
                      j->path, j->line, what, got);
}

static int hex4(const char *s, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return 0;
    *v = *v * 16 + (unsigned)d;
  }
  return 1;
}

static size_t utf8(unsigned cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* A JSON string at j->p into a new NUL-terminated *out (escapes decoded). */
static sn_status string(json *j, char **out) {
  *out = NULL;
  skip_ws(j);
  if (*j->p != '"') return expected(j, "a string");
  /* the decoded string is never longer than its source (an escape shrinks or keeps its length) */
  const char *q = ++j->p;
  for (; *q && *q != '"'; ++q)
    if (*q == '\\' && q[1]) ++q;
  char *o = malloc((size_t)(q - j->p) + 8), *w = o;
  if (!o) return sn_error_set(SN_ERR_NOMEM, "label file %s: out of memory", j->path);
  for (;;) {
    unsigned char c = (unsigned char)*j->p;
    if (c == '"') break;
    if (c == '\0' || c == '\n' || c < 0x20) {
      free(o);
      return expected(j, "the end of the string (\")");
    }
    if (c != '\\') {
      *w++ = (char)c;
      ++j->p;
      continue;
    }
    char e = j->p[1];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *k = e ? strchr(from, e) : NULL;
    if (k) {
      *w++ = to[k - from];
      j->p += 2;
      continue;
    }
    unsigned cp, lo;
    if (e != 'u' || !hex4(j->p + 2, &cp)) {
      free(o);
      return expected(j, "a JSON escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
    }
    j->p += 6;
    if (cp >= 0xD800 && cp < 0xDC00 && j->p[0] == '\\' && j->p[1] == 'u' && hex4(j->p + 2, &lo) &&
        lo >= 0xDC00 && lo < 0xE000) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      j->p += 6;
    } else if (cp >= 0xD800 && cp < 0xE000) {
      cp = 0xFFFD; /* a lone surrogate */
    }
    if (cp == 0) {
      free(o);
      return expected(j, "a string without \\u0000");
    }
    w += utf8(cp, w);
  }
  ++j->p;
  *w = '\0';
  *out = o;
  return SN_OK;
}

static sn_status punct(json *j, char c, const char *what) {
  skip_ws(j);
  if (*j->p != c) return expected(j, what);
  ++j->p;
  return SN_OK;
}

/* The class index a key names: decimal digits, no sign or leading zero, < the limit. */
static int key_index(const char *k) {
  if (!*k || (k[0] == '0' && k[1]) || strlen(k) > 9) return -1;
  int v = 0;
  for (; *k; ++k) {
    if (*k < '0' || *k > '9') return -1;
    v = v * 10 + (*k - '0');
  }
  return v < SN_LABELS_MAX_CLASSES ? v : -1;
}

typedef struct entry {
  int index, line;
  char *wnid, *name;
} entry;

static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  return (x->index > y->index) - (x->index < y->index);
}

static sn_status read_json(const char *path, const char *text, sn_labels *l) {
  json j = {path, text, 1};
  entry *v = NULL;
  int n = 0, cap = 0;
  sn_status st = punct(&j, '{', "'{'");
  skip_ws(&j);
  int empty = *j.p == '}';
  while (!st && !empty) {
    if (n == cap) {
      cap = cap ? 2 * cap : 1024;
      entry *t = cap <= SN_LABELS_MAX_CLASSES ? realloc(v, (size_t)cap * sizeof *t) : NULL;
      if (!t) {
        st = sn_error_set(SN_ERR_FORMAT, "label file %s: more than %d classes", path,
                          SN_LABELS_MAX_CLASSES);
        break;
      }
      v = t;
    }
    entry *e = &v[n];
    memset(e, 0, sizeof *e);
    char *key = NULL;
    st = string(&j, &key);
    e->line = j.line;
    if (!st && (e->index = key_index(key)) < 0)
      st = sn_error_set(SN_ERR_FORMAT,
                        "label file %s: line %d: key \"%s\" is not a class index (0, 1, 2, ...)",
                        path, j.line, key);
    free(key);
    if (!st) st = punct(&j, ':', "':'");
    if (!st) st = punct(&j, '[', "'[' (a value is [wnid, name])");
    if (!st) st = string(&j, &e->wnid);
    if (!st) st = punct(&j, ',', "',' (a value is [wnid, name])");
    if (!st) st = string(&j, &e->name);
    if (!st) st = punct(&j, ']', "']' (a value is [wnid, name])");
    if (e->wnid || e->name) ++n;
    if (st) break;
    skip_ws(&j);
    if (*j.p == '}') break;
    st = punct(&j, ',', "',' or '}'");
  }
  if (!st) st = punct(&j, '}', "'}'");
  skip_ws(&j);
  if (!st && *j.p) st = expected(&j, "the end of the file after '}'");
  if (!st && n == 0) st = sn_error_set(SN_ERR_FORMAT, "label file %s: no classes", path);
  if (!st) {
    qsort(v, (size_t)n, sizeof *v, cmp_entry);
    for (int i = 0; i < n && !st; ++i)
      if (v[i].index != i)
        st = sn_error_set(SN_ERR_FORMAT,
                          "label file %s: line %d: class %d %s (the keys must be 0..%d, each once)",
                          path, v[i].line, v[i].index < i ? v[i].index : i,
                          v[i].index < i ? "given twice" : "missing", n - 1);
  }
  if (!st) {
    l->name = malloc((size_t)n * sizeof *l->name);
    l->wnid = malloc((size_t)n * sizeof *l->wnid);
    if (!l->name || !l->wnid) st = sn_error_set(SN_ERR_NOMEM, "label file %s: out of memory", path);
  }
  if (!st) {
    for (int i = 0; i < n; ++i) {
      l->name[i] = v[i].name;
      l->wnid[i] = v[i].wnid;
    }
    l->n = n;
  } else {
    for (int i = 0; i < n; ++i) {
      free(v[i].name);
      free(v[i].wnid);
    }
  }
  free(v);
  return st;
}

sn_status sn_labels_read(const char *path, int classes, sn_labels **out) {
  if (out) *out = NULL;
  if (!path || !out) return sn_error_set(SN_ERR_INVALID, "sn_labels_read: path and out required");
  char *text = NULL;
  size_t len = 0;
  sn_status st = slurp(path, &text, &len);
  if (st) return st;
  sn_labels *l = calloc(1, sizeof *l);
  if (!l) st = sn_error_set(SN_ERR_NOMEM, "label file %s: out of memory", path);
  char *p = text;
  if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* UTF-8 byte-order mark */
  if (!st && strlen(p) != len - (size_t)(p - text))
    st = sn_error_set(SN_ERR_FORMAT, "label file %s: holds NUL bytes (not a text file)", path);
  const char *q = p;
  while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
    ++q;
  if (!st) st = *q == '{' ? read_json(path, p, l) : read_list(path, p, l);
  free(text);
  if (!st && classes > 0 && l->n != classes)
    st = sn_error_set(SN_ERR_SHAPE, "label file %s names %d classes but the model has %d", path,
                      l->n, classes);
  if (st) {
    sn_labels_destroy(l);
    return st;
  }
  *out = l;
  return SN_OK;
}
