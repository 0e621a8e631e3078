/* scales.c - scales files: the int8 activation scales of a net with their provenance
 * (docs/hdf5-schema.md, "Scales files"). Written atomically; read into staging first, so that a
 * bad file changes nothing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "h5util.h"

#define SCALES_FORMAT "shardnet-scales"
#define SCALES_RULE                                                                                \
  "x ~ scale * (q - zero_point), q = clamp(round_half_even(x / scale) + zero_point, 0, 255); "     \
  "scale = threshold / 255 with zero_point 0 (min >= 0), threshold / 127 with 128 (min < 0)"

/* The provenance attributes, in file order (the integers rows and ranks apart). */
typedef struct str_attr {
  const char *name;
  size_t off, size;
} str_attr;
#define INFO_STR(f)                                                                                \
  { #f, offsetof(sn_scales_info, f), sizeof(((sn_scales_info *)0)->f) }
static const str_attr info_strs[] = {INFO_STR(arch),    INFO_STR(weights),    INFO_STR(weights_md5),
                                     INFO_STR(data),    INFO_STR(preprocess), INFO_STR(method),
                                     INFO_STR(version), INFO_STR(created)};
enum { NINFO = sizeof info_strs / sizeof info_strs[0] };

static void utc_now(char *buf, size_t n) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static sn_status write_i32(hid_t f, const char *name, const int32_t *v, int64_t n,
                           const char *path) {
  const hsize_t dims = (hsize_t)n;
  hid_t d;
  sn_status s = sn_h5_create_dataset(f, name, H5T_STD_I32LE, 1, &dims, dims, 0, path, &d);
  if (s != SN_OK) return s;
  s = sn_h5_write_rows(d, H5T_NATIVE_INT32, 0, n, v, H5P_DEFAULT, path);
  H5Dclose(d);
  return s;
}

/* The scales set in net: names (owned by the net) and (threshold, min, max, scale) columns. */
typedef struct scale_table {
  int n;
  const char **name;
  float *col[4];
  int32_t *zp;
} scale_table;

static void table_free(scale_table *t) {
  free(t->name);
  free(t->col[0]);
  free(t->zp);
}

static sn_status table_of(const sn_net *net, const char *path, scale_table *t) {
  memset(t, 0, sizeof *t);
  const int n = sn_net_num_act_scales(net);
  t->name = malloc((size_t)(n ? n : 1) * sizeof *t->name);
  t->col[0] = malloc((size_t)(n ? n : 1) * 4 * sizeof(float));
  t->zp = malloc((size_t)(n ? n : 1) * sizeof *t->zp);
  if (!t->name || !t->col[0] || !t->zp)
    return sn_error_set(SN_ERR_NOMEM, "file %s: out of memory for %d scales", path, n);
  for (int c = 1; c < 4; ++c)
    t->col[c] = t->col[0] + (size_t)c * (n ? n : 1);
  for (int i = 0; i < n; ++i) {
    sn_act_scale a;
    sn_net_act_scale(net, i, &a);
    if (!(a.threshold > 0)) continue;
    t->name[t->n] = a.layer;
    t->col[0][t->n] = a.threshold;
    t->col[1][t->n] = a.min;
    t->col[2][t->n] = a.max;
    t->col[3][t->n] = a.scale;
    t->zp[t->n++] = a.zero_point;
  }
  if (!t->n)
    return sn_error_set(SN_ERR_INVALID, "file %s: %s has no activation scales to save", path,
                        sn_net_arch(net));
  return SN_OK;
}

static const char *const cols[4] = {"threshold", "min", "max", "scale"};

sn_status sn_scales_save(const sn_net *net, const char *path, const sn_scales_info *info) {
  scale_table t;
  sn_status s = table_of(net, path, &t);
  if (s != SN_OK) {
    table_free(&t);
    return s;
  }
  sn_scales_info inf = *info;
  snprintf(inf.version, sizeof inf.version, "%s", SN_VERSION);
  utc_now(inf.created, sizeof inf.created);
  snprintf(inf.arch, sizeof inf.arch, "%s", sn_net_arch(net));
  sn_h5_lock();
  hid_t f;
  char tmp[4096];
  s = sn_h5_create_atomic(path, &f, tmp, sizeof tmp);
  if (s != SN_OK) {
    sn_h5_unlock();
    table_free(&t);
    return s;
  }
  const int64_t n = t.n;
  s = sn_h5_write_str_dataset(f, "layers", t.name, n, sn_comm_serial(), path);
  for (int c = 0; s == SN_OK && c < 4; ++c)
    s = sn_h5_write_f32(f, cols[c], path, 1, &n, t.col[c]);
  if (s == SN_OK) s = write_i32(f, "zero_point", t.zp, n, path);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "format", SCALES_FORMAT, path);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "rule", SCALES_RULE, path);
  for (int i = 0; s == SN_OK && i < NINFO; ++i)
    s = sn_h5_write_str_attr(f, info_strs[i].name, (const char *)&inf + info_strs[i].off, path);
  if (s == SN_OK) s = sn_h5_write_int_attr(f, "rows", inf.rows, path);
  if (s == SN_OK) s = sn_h5_write_int_attr(f, "ranks", inf.ranks, path);
  sn_status fin = sn_h5_finish_atomic(f, tmp, path, s == SN_OK);
  sn_h5_unlock();
  table_free(&t);
  return s != SN_OK ? s : fin;
}

/* The provenance attributes of f into info. */
static sn_status read_info(hid_t f, const char *path, sn_scales_info *info) {
  memset(info, 0, sizeof *info);
  sn_status s = SN_OK;
  for (int i = 0; s == SN_OK && i < NINFO; ++i) {
    char *v = NULL;
    s = sn_h5_read_str_attr(f, info_strs[i].name, path, "/", &v);
    if (s == SN_OK) snprintf((char *)info + info_strs[i].off, info_strs[i].size, "%s", v);
    free(v);
  }
  int64_t rows = 0, ranks = 0;
  if (s == SN_OK) s = sn_h5_read_int_attr(f, "rows", path, "/", &rows);
  if (s == SN_OK) s = sn_h5_read_int_attr(f, "ranks", path, "/", &ranks);
  info->rows = rows;
  info->ranks = (int)ranks;
  return s;
}

/* Checks every entry against net (names, values) before anything is set. */
static sn_status check_entries(const sn_net *net, const char *path, char **names, int64_t n,
                               float *const *col) {
  for (int64_t i = 0; i < n; ++i) {
    int found = 0;
    for (int k = 0; k < sn_net_num_act_scales(net) && !found; ++k) {
      sn_act_scale a;
      sn_net_act_scale(net, k, &a);
      found = !strcmp(a.layer, names[i]);
    }
    if (!found)
      return sn_error_set(SN_ERR_NOTFOUND,
                          "file %s: layer %s has no convolution or dense layer "
                          "of that name in %s",
                          path, names[i], sn_net_arch(net));
    const float t = col[0][i], mn = col[1][i], mx = col[2][i];
    if (!(t > 0) || !(t < 3.4e38f) || !(mn <= mx) || !(mn > -3.4e38f) || !(mx < 3.4e38f))
      return sn_error_set(SN_ERR_FORMAT,
                          "file %s: layer %s: threshold %g with range [%g, %g] is not a scale",
                          path, names[i], t, mn, mx);
  }
  return SN_OK;
}

sn_status sn_scales_load(sn_net *net, const char *path, sn_scales_info *info) {
  sn_scales_info local;
  if (!info) info = &local;
  sn_h5_lock();
  hid_t f;
  sn_status s = sn_h5_open_read(path, &f);
  if (s != SN_OK) {
    sn_h5_unlock();
    return s;
  }
  char *fmt = NULL, **names = NULL;
  int64_t n = 0;
  float *col[3] = {NULL, NULL, NULL};
  s = sn_h5_read_str_attr(f, "format", path, "/", &fmt);
  if (s != SN_OK || strcmp(fmt, SCALES_FORMAT))
    s = sn_error_set(SN_ERR_FORMAT, "file %s: not a shardnet scales file (format %s)", path,
                     fmt ? fmt : "missing");
  if (s == SN_OK) s = read_info(f, path, info);
  if (s == SN_OK && strcmp(info->arch, sn_net_arch(net)))
    s = sn_error_set(SN_ERR_FORMAT, "file %s: scales calibrated for %s, but the model is %s", path,
                     info->arch, sn_net_arch(net));
  if (s == SN_OK) s = sn_h5_read_str_dataset(f, "layers", path, &names, &n);
  for (int c = 0; s == SN_OK && c < 3; ++c) {
    col[c] = malloc((size_t)(n ? n : 1) * sizeof(float));
    s = col[c] ? sn_h5_read_f32(f, cols[c], path, 1, &n, col[c])
               : sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", path);
  }
  H5Fclose(f);
  sn_h5_unlock();
  if (s == SN_OK) s = check_entries(net, path, names, n, col);
  for (int64_t i = 0; s == SN_OK && i < n; ++i) /* checked: every call succeeds */
    s = sn_net_set_act_scale(net, names[i], col[0][i], col[1][i], col[2][i]);
  free(fmt);
  sn_h5_free_strs(names, n);
  for (int c = 0; c < 3; ++c)
    free(col[c]);
  return s;
}

sn_status sn_scales_load_bcast(sn_net *net, const char *path, sn_comm *comm, sn_scales_info *info) {
  if (!comm) comm = sn_comm_serial();
  sn_scales_info local;
  if (!info) info = &local;
  const int rank = sn_comm_rank(comm);
  sn_status s = rank == 0 ? sn_scales_load(net, path, info) : SN_OK;
  s = sn_comm_agree(comm, s);
  if (s != SN_OK || sn_comm_size(comm) == 1) return s;
  const int ns = sn_net_num_act_scales(net);
  float *v = malloc((size_t)(ns ? ns : 1) * 3 * sizeof *v);
  s = v ? SN_OK : sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", path);
  s = sn_comm_agree(comm, s);
  if (s != SN_OK) {
    free(v);
    return s;
  }
  for (int i = 0; rank == 0 && i < ns; ++i) {
    sn_act_scale a;
    sn_net_act_scale(net, i, &a);
    v[3 * i] = a.threshold;
    v[3 * i + 1] = a.min;
    v[3 * i + 2] = a.max;
  }
  s = sn_comm_bcast(comm, v, (size_t)ns * 3 * sizeof *v, 0);
  if (s == SN_OK) s = sn_comm_bcast(comm, info, sizeof *info, 0);
  for (int i = 0; s == SN_OK && rank != 0 && i < ns; ++i) {
    sn_act_scale a;
    sn_net_act_scale(net, i, &a);
    if (v[3 * i] > 0) s = sn_net_set_act_scale(net, a.layer, v[3 * i], v[3 * i + 1], v[3 * i + 2]);
  }
  free(v);
  return sn_comm_agree(comm, s);
}
