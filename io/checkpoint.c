/* checkpoint.c - training checkpoints (docs/hdf5-schema.md, section 4): one HDF5 file with the
 * whole parameter block (weights and moving statistics), the momentum block, the loop state and
 * the recipe. Written atomically (temporary name, fsync, rename), so a kill at any moment leaves
 * either the previous checkpoint or the new one. Saving is collective only to gather per-rank
 * batch-norm statistics; rank 0 writes. Loading is collective: rank 0 reads and checks, then
 * broadcasts, so every rank gets the same state or the same error. Every HDF5 call holds the io
 * lock: a checkpoint is written in the middle of an epoch, while the reader's thread is alive. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"

/* ---------------------------------------------------------------- recipe attributes */

/* The recipe's numbers, one attribute of /recipe each (the enumerations are stored by name). */
typedef enum { F_INT, F_I64, F_U64, F_F64 } field_type;
static const struct {
  const char *name;
  size_t off;
  field_type type;
} fields[] = {
    {"classes", offsetof(sn_train_recipe, classes), F_INT},
    {"height", offsetof(sn_train_recipe, height), F_INT},
    {"width", offsetof(sn_train_recipe, width), F_INT},
    {"channels", offsetof(sn_train_recipe, channels), F_INT},
    {"base_width", offsetof(sn_train_recipe, base_width), F_INT},
    {"data_rows", offsetof(sn_train_recipe, data_rows), F_I64},
    {"epochs", offsetof(sn_train_recipe, epochs), F_I64},
    {"steps", offsetof(sn_train_recipe, steps), F_I64},
    {"global_batch", offsetof(sn_train_recipe, global_batch), F_I64},
    {"lr", offsetof(sn_train_recipe, lr), F_F64},
    {"warmup_epochs", offsetof(sn_train_recipe, warmup_epochs), F_F64},
    {"momentum", offsetof(sn_train_recipe, momentum), F_F64},
    {"nesterov", offsetof(sn_train_recipe, nesterov), F_INT},
    {"weight_decay", offsetof(sn_train_recipe, weight_decay), F_F64},
    {"decay_bn_and_bias", offsetof(sn_train_recipe, decay_bn_and_bias), F_INT},
    {"label_smoothing", offsetof(sn_train_recipe, label_smoothing), F_F64},
    {"shuffle", offsetof(sn_train_recipe, shuffle), F_INT},
    {"drop_last", offsetof(sn_train_recipe, drop_last), F_INT},
    {"seed", offsetof(sn_train_recipe, seed), F_U64},
    {"bn_group", offsetof(sn_train_recipe, bn_group), F_INT},
    {"crop_scale", offsetof(sn_train_recipe, crop_scale), F_F64}, /* older files: 0.08 */
};
enum { NFIELDS = sizeof fields / sizeof fields[0] };

static sn_status write_field(hid_t g, int i, const sn_train_recipe *r, const char *path) {
  const char *p = (const char *)r + fields[i].off;
  int64_t v = 0;
  switch (fields[i].type) {
  case F_F64:
    return sn_h5_write_f64_attr(g, fields[i].name, (const double *)p, 1, path);
  case F_INT:
    v = *(const int *)p;
    break;
  case F_I64:
    v = *(const int64_t *)p;
    break;
  case F_U64:
    v = (int64_t) * (const uint64_t *)p;
    break;
  }
  return sn_h5_write_int_attr(g, fields[i].name, v, path);
}

static sn_status read_field(hid_t g, int i, sn_train_recipe *r, const char *path) {
  char *p = (char *)r + fields[i].off;
  if (fields[i].type == F_F64)
    return sn_h5_read_f64_attr(g, fields[i].name, path, "/recipe", (double *)p, 1);
  int64_t v = 0;
  sn_status s = sn_h5_read_int_attr(g, fields[i].name, path, "/recipe", &v);
  if (s == SN_OK && fields[i].type == F_INT && (v < -2147483647 - 1 || v > 2147483647))
    s = sn_error_set(SN_ERR_FORMAT, "file %s: /recipe: attribute %s: %lld out of range", path,
                     fields[i].name, (long long)v);
  if (s != SN_OK) return s;
  if (fields[i].type == F_INT)
    *(int *)p = (int)v;
  else if (fields[i].type == F_I64)
    *(int64_t *)p = v;
  else
    *(uint64_t *)p = (uint64_t)v;
  return SN_OK;
}

/* Group /recipe: one attribute per field, enumerations as their names. */
static sn_status write_recipe(hid_t f, const sn_train_recipe *r, const char *path) {
  hid_t g = H5Gcreate2(f, "recipe", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return sn_error_set(SN_ERR_IO, "file %s: cannot create group /recipe", path);
  sn_status s = sn_h5_write_str_attr(g, "arch", r->arch, path);
  for (int i = 0; s == SN_OK && i < NFIELDS; ++i)
    s = write_field(g, i, r, path);
  if (s == SN_OK) s = sn_h5_write_str_attr(g, "schedule", sn_schedule_name(r->schedule), path);
  if (s == SN_OK) s = sn_h5_write_str_attr(g, "augment", sn_augment_name(r->augment), path);
  if (s == SN_OK)
    s = sn_h5_write_str_attr(g, "preprocess", sn_preprocess_name(r->preprocess), path);
  if (s == SN_OK)
    s = sn_h5_write_str_attr(g, "bn_style", r->bn_style == SN_STYLE_KERAS ? "keras" : "torch",
                             path);
  H5Gclose(g);
  return s;
}

/* An enumeration attribute of /recipe through its parser; a bad name is SN_ERR_FORMAT. */
static sn_status read_enum(hid_t g, const char *name, const char *path, int *out) {
  char *v = NULL;
  sn_status s = sn_h5_read_str_attr(g, name, path, "/recipe", &v);
  if (s != SN_OK) return s;
  sn_augment a;
  sn_preprocess p;
  sn_schedule k;
  if (!strcmp(name, "augment") && sn_augment_parse(v, &a) == SN_OK)
    *out = (int)a;
  else if (!strcmp(name, "preprocess") && sn_preprocess_parse(v, &p) == SN_OK)
    *out = (int)p;
  else if (!strcmp(name, "schedule") && sn_schedule_parse(v, &k) == SN_OK)
    *out = (int)k;
  else if (!strcmp(name, "bn_style") && (!strcmp(v, "torch") || !strcmp(v, "keras")))
    *out = !strcmp(v, "keras") ? SN_STYLE_KERAS : SN_STYLE_TORCH;
  else
    s = sn_error_set(SN_ERR_FORMAT, "file %s: /recipe: attribute %s: unknown value '%s'", path,
                     name, v);
  free(v);
  return s;
}

static sn_status read_recipe(hid_t f, const char *path, sn_train_recipe *r) {
  hid_t g = H5Gopen2(f, "recipe", H5P_DEFAULT);
  if (g < 0) return sn_error_set(SN_ERR_FORMAT, "file %s: cannot open group /recipe", path);
  char *arch = NULL;
  sn_status s = sn_h5_read_str_attr(g, "arch", path, "/recipe", &arch);
  if (s == SN_OK) snprintf(r->arch, sizeof r->arch, "%s", arch);
  free(arch);
  r->crop_scale = SN_CROP_SCALE_DEFAULT;
  for (int i = 0; s == SN_OK && i < NFIELDS; ++i)
    if (strcmp(fields[i].name, "crop_scale") || H5Aexists(g, "crop_scale") > 0)
      s = read_field(g, i, r, path);
  int sched = 0, aug = 0, pre = 0;
  if (s == SN_OK) s = read_enum(g, "schedule", path, &sched);
  if (s == SN_OK) s = read_enum(g, "augment", path, &aug);
  if (s == SN_OK) s = read_enum(g, "preprocess", path, &pre);
  if (s == SN_OK) s = read_enum(g, "bn_style", path, &r->bn_style);
  H5Gclose(g);
  r->schedule = (sn_schedule)sched;
  r->augment = (sn_augment)aug;
  r->preprocess = (sn_preprocess)pre;
  return s;
}

/* ---------------------------------------------------------------- save */

/* Everything of the file but the per-rank statistics; f is open, the io lock held. */
static sn_status write_body(hid_t f, sn_net *net, const char *path, const sn_checkpoint_meta *m) {
  size_t nblock, nmom;
  float *block = sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  int64_t d1 = (int64_t)nblock, d2 = (int64_t)nmom;
  sn_status s = sn_h5_write_f32(f, "params", path, 1, &d1, block);
  if (s == SN_OK && mom && nmom) s = sn_h5_write_f32(f, "momentum", path, 1, &d2, mom);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "format", "shardnet-checkpoint", path);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "version", SN_VERSION, path);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "arch", sn_net_arch(net), path);
  struct {
    const char *k;
    int64_t v;
  } ints[] = {{"param_count", (int64_t)nblock},
              {"momentum_count", (int64_t)(mom ? nmom : 0)},
              {"height", h},
              {"width", w},
              {"channels", c},
              {"outputs", oc},
              {"epoch", m->epoch},
              {"step", m->step},
              {"report_pending", m->report_pending},
              {"sgd_steps", sn_net_sgd_steps(net)},
              {"seed", (int64_t)m->recipe.seed},
              {"ranks", m->ranks},
              {"global_batch", m->recipe.global_batch}};
  for (size_t i = 0; s == SN_OK && i < sizeof ints / sizeof ints[0]; ++i)
    s = sn_h5_write_int_attr(f, ints[i].k, ints[i].v, path);
  if (s == SN_OK) s = sn_h5_write_f64_attr(f, "epoch_sums", m->epoch_sums, 4, path);
  if (s == SN_OK) s = write_recipe(f, &m->recipe, path);
  return s;
}

sn_status sn_checkpoint_save(sn_net *net, const char *path, const sn_checkpoint_meta *m,
                             sn_comm *comm) {
  if (!comm) comm = sn_comm_serial();
  const int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  size_t nblock;
  float *block = sn_net_param_block(net, &nblock);
  int64_t ntrain = 0, nstat = 0;
  sn_net_param_counts(net, NULL, &ntrain, &nstat);
  /* (size, nstat): every rank's moving statistics, when the ranks do not share them. */
  float *stats = NULL;
  sn_status s = SN_OK;
  const int gather = size > 1 && m->recipe.bn_group != 0 && nstat > 0;
  if (gather) {
    stats = malloc((size_t)size * (size_t)nstat * sizeof(float));
    if (!stats)
      s = sn_error_set(SN_ERR_NOMEM, "checkpoint %s: %d x %lld moving statistics", path, size,
                       (long long)nstat);
    s = sn_comm_agree(comm, s);
    if (s == SN_OK)
      s = sn_comm_allgather(comm, block + ntrain, stats, (size_t)nstat * sizeof(float));
  }
  if (s == SN_OK && rank == 0) {
    hid_t f;
    char tmp[4096];
    /* HDF5 is not thread-safe: exclude a live dataset reader's thread (h5util.h). */
    sn_h5_lock();
    s = sn_h5_create_atomic(path, &f, tmp, sizeof tmp);
    if (s == SN_OK) {
      s = write_body(f, net, path, m);
      int64_t dims[2] = {size, nstat};
      if (s == SN_OK && gather) s = sn_h5_write_f32(f, "rank_moving_stats", path, 2, dims, stats);
      sn_status fin = sn_h5_finish_atomic(f, tmp, path, s == SN_OK);
      if (s == SN_OK) s = fin;
    }
    sn_h5_unlock();
  }
  free(stats);
  return s;
}

/* ---------------------------------------------------------------- load */

static sn_status check_attr_int(hid_t f, const char *path, const char *name, int64_t want) {
  int64_t v = 0;
  sn_status s = sn_h5_read_int_attr(f, name, path, "/", &v);
  if (s != SN_OK) return s;
  if (v != want)
    return sn_error_set(SN_ERR_SHAPE, "checkpoint %s: %s is %lld but the model has %lld", path,
                        name, (long long)v, (long long)want);
  return SN_OK;
}

/* The loop state and the recipe from an open file. */
static sn_status read_meta(hid_t f, const char *path, sn_checkpoint_meta *m) {
  memset(m, 0, sizeof *m);
  char *fmt = NULL, *arch = NULL;
  sn_status s = sn_h5_read_str_attr(f, "format", path, "/", &fmt);
  if (s == SN_OK && strcmp(fmt, "shardnet-checkpoint"))
    s = sn_error_set(SN_ERR_FORMAT, "file %s: not a shardnet checkpoint (format '%s')", path, fmt);
  if (s == SN_OK) s = sn_h5_read_str_attr(f, "arch", path, "/", &arch);
  int64_t v[5] = {0};
  const char *keys[5] = {"epoch", "step", "ranks", "seed", "global_batch"};
  for (int i = 0; s == SN_OK && i < 5; ++i)
    s = sn_h5_read_int_attr(f, keys[i], path, "/", &v[i]);
  int64_t pending = 0;
  if (s == SN_OK && sn_h5_has_attr(f, "report_pending"))
    s = sn_h5_read_int_attr(f, "report_pending", path, "/", &pending);
  m->report_pending = pending != 0;
  if (s == SN_OK && sn_h5_has_attr(f, "epoch_sums"))
    s = sn_h5_read_f64_attr(f, "epoch_sums", path, "/", m->epoch_sums, 4);
  m->has_recipe = sn_h5_is_group(f, "recipe");
  if (s == SN_OK && m->has_recipe) s = read_recipe(f, path, &m->recipe);
  if (s == SN_OK && !m->has_recipe) { /* an older checkpoint: what its attributes say */
    sn_train_recipe_init(&m->recipe);
    snprintf(m->recipe.arch, sizeof m->recipe.arch, "%s", arch);
    m->recipe.seed = (uint64_t)v[3];
    m->recipe.global_batch = v[4];
  }
  if (s == SN_OK && (v[0] < 0 || v[1] < 0 || v[2] < 1))
    s = sn_error_set(SN_ERR_FORMAT, "file %s: epoch %lld, step %lld, ranks %lld out of range", path,
                     (long long)v[0], (long long)v[1], (long long)v[2]);
  m->epoch = v[0];
  m->step = v[1];
  m->ranks = (int)v[2];
  free(fmt);
  free(arch);
  return s;
}

sn_status sn_checkpoint_read_meta(const char *path, sn_comm *comm, sn_checkpoint_meta *m) {
  if (!comm) comm = sn_comm_serial();
  sn_status s = SN_OK;
  if (sn_comm_rank(comm) == 0) {
    hid_t f;
    sn_h5_lock();
    s = sn_h5_open_read(path, &f);
    if (s == SN_OK) {
      s = read_meta(f, path, m);
      H5Fclose(f);
    }
    sn_h5_unlock();
  }
  s = sn_comm_agree(comm, s);
  if (s == SN_OK) s = sn_comm_bcast(comm, m, sizeof *m, 0);
  return s;
}

/* The file's contents, read on rank 0 before anything of a net changes. */
typedef struct staged {
  sn_checkpoint_meta meta;
  int64_t sgd_steps;
  int64_t stat_ranks; /* rows of /rank_moving_stats (0: none) */
  int32_t has_momentum;
  float *params, *momentum; /* (nblock), (nmom) */
  float *stats;             /* (stat_ranks, nstat) */
} staged;

/* vals (n floats, laid out as the net's parameter block: `what` is "params" or the "momentum" of
 * its trainable part) hold finite values; else SN_ERR_NUMERIC naming the first tensor with NaN or
 * infinity, its layer and role, and the counts. */
static sn_status check_finite(sn_net *net, const char *path, const char *what, const float *vals,
                              size_t n) {
  if (sn_values_finite(vals, n)) return SN_OK;
  const float *block = sn_net_param_block(net, NULL);
  for (int i = 0; i < sn_net_num_params(net); ++i) {
    sn_param_info p;
    if (sn_net_param(net, i, &p) != SN_OK) break;
    const size_t off = (size_t)(p.data - block);
    if (off + (size_t)p.count > n) continue; /* a moving statistic: not in the momentum */
    int64_t nan = 0, inf = 0;
    for (int64_t k = 0; k < p.count; ++k) {
      nan += isnan(vals[off + k]) != 0;
      inf += isinf(vals[off + k]) != 0;
    }
    if (nan || inf)
      return sn_error_set(SN_ERR_NUMERIC,
                          "checkpoint %s: %s of layer %s %s: %lld NaN and %lld infinite of %lld "
                          "values; a checkpoint must be finite",
                          path, what, p.layer, sn_param_role_name(p.role, SN_STYLE_KERAS, NULL),
                          (long long)nan, (long long)inf, (long long)p.count);
  }
  return sn_error_set(SN_ERR_NUMERIC, "checkpoint %s: %s contain NaN or infinity", path, what);
}

/* Reads and checks everything; the io lock is held. */
static sn_status read_file(sn_net *net, const char *path, staged *st) {
  hid_t f;
  sn_status s = sn_h5_open_read(path, &f);
  if (s != SN_OK) return s;
  s = read_meta(f, path, &st->meta);
  size_t nblock, nmom;
  sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  int64_t ntrain = 0, nstat = 0;
  sn_net_param_counts(net, NULL, &ntrain, &nstat);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  if (s == SN_OK && strcmp(st->meta.recipe.arch, sn_net_arch(net)))
    s = sn_error_set(SN_ERR_SHAPE, "checkpoint %s: architecture %s, but the model is %s", path,
                     st->meta.recipe.arch, sn_net_arch(net));
  if (s == SN_OK) s = check_attr_int(f, path, "param_count", (int64_t)nblock);
  if (s == SN_OK) s = check_attr_int(f, path, "height", h);
  if (s == SN_OK) s = check_attr_int(f, path, "width", w);
  if (s == SN_OK) s = check_attr_int(f, path, "channels", c);
  if (s == SN_OK) s = check_attr_int(f, path, "outputs", oc);
  if (s == SN_OK) s = sn_h5_read_int_attr(f, "sgd_steps", path, "/", &st->sgd_steps);
  st->has_momentum = sn_h5_exists(f, "momentum") && mom && nmom;
  int ndim = 0;
  int64_t dims[SN_H5_MAX_RANK] = {0};
  if (s == SN_OK && sn_h5_exists(f, "rank_moving_stats")) {
    s = sn_h5_dataset_shape(f, "rank_moving_stats", path, &ndim, dims);
    if (s == SN_OK && (ndim != 2 || dims[1] != nstat || dims[0] > 1 << 20))
      s = sn_error_set(SN_ERR_SHAPE, "checkpoint %s: /rank_moving_stats is not (ranks, %lld)", path,
                       (long long)nstat);
    st->stat_ranks = dims[0];
  }
  if (s == SN_OK) {
    st->params = malloc((nblock ? nblock : 1) * sizeof(float));
    st->momentum = malloc((nmom ? nmom : 1) * sizeof(float));
    st->stats = malloc((size_t)(st->stat_ranks * nstat + 1) * sizeof(float));
    if (!st->params || !st->momentum || !st->stats)
      s = sn_error_set(SN_ERR_NOMEM, "checkpoint %s: out of memory", path);
  }
  int64_t d1 = (int64_t)nblock, d2 = (int64_t)nmom;
  if (s == SN_OK) s = sn_h5_read_f32(f, "params", path, 1, &d1, st->params);
  if (s == SN_OK && st->has_momentum) s = sn_h5_read_f32(f, "momentum", path, 1, &d2, st->momentum);
  if (s == SN_OK && st->stat_ranks)
    s = sn_h5_read_f32(f, "rank_moving_stats", path, 2, dims, st->stats);
  H5Fclose(f);
  if (s == SN_OK) s = check_finite(net, path, "params", st->params, nblock);
  if (s == SN_OK && st->has_momentum) s = check_finite(net, path, "momentum", st->momentum, nmom);
  if (s == SN_OK && !sn_values_finite(st->stats, (size_t)(st->stat_ranks * nstat)))
    s = sn_error_set(SN_ERR_NUMERIC,
                     "checkpoint %s: /rank_moving_stats contain NaN or infinity; a checkpoint must "
                     "be finite",
                     path);
  return s;
}

static void staged_free(staged *st) {
  free(st->params);
  free(st->momentum);
  free(st->stats);
}

/* Rank 0's staged state to every rank (their buffers are allocated here). No early return
 * between the collectives. */
static sn_status bcast_staged(sn_comm *comm, sn_net *net, const char *path, staged *st,
                              sn_status s) {
  const int rank = sn_comm_rank(comm);
  size_t nblock, nmom;
  sn_net_param_block(net, &nblock);
  sn_net_momentum_block(net, &nmom);
  int64_t ntrain = 0, nstat = 0;
  sn_net_param_counts(net, NULL, &ntrain, &nstat);
  s = sn_comm_agree(comm, s); /* rank 0's read */
  if (s == SN_OK) s = sn_comm_bcast(comm, st, offsetof(staged, params), 0);
  if (s == SN_OK && rank != 0) {
    st->params = malloc((nblock ? nblock : 1) * sizeof(float));
    st->momentum = malloc((nmom ? nmom : 1) * sizeof(float));
    st->stats = malloc((size_t)(st->stat_ranks * nstat + 1) * sizeof(float));
    if (!st->params || !st->momentum || !st->stats)
      s = sn_error_set(SN_ERR_NOMEM, "checkpoint %s: out of memory", path);
  }
  s = sn_comm_agree(comm, s); /* every rank's buffers */
  if (s == SN_OK) s = sn_comm_bcast(comm, st->params, nblock * sizeof(float), 0);
  if (s == SN_OK && st->has_momentum)
    s = sn_comm_bcast(comm, st->momentum, nmom * sizeof(float), 0);
  if (s == SN_OK && st->stat_ranks)
    s = sn_comm_bcast(comm, st->stats, (size_t)(st->stat_ranks * nstat) * sizeof(float), 0);
  return s;
}

sn_status sn_checkpoint_load(sn_net *net, const char *path, sn_comm *comm, sn_checkpoint_meta *m) {
  if (!comm) comm = sn_comm_serial();
  const int rank = sn_comm_rank(comm), size = sn_comm_size(comm);
  staged st;
  memset(&st, 0, sizeof st);
  sn_status s = SN_OK;
  if (rank == 0) {
    sn_h5_lock();
    s = read_file(net, path, &st);
    sn_h5_unlock();
  }
  s = bcast_staged(comm, net, path, &st, s);
  /* Nothing is half-loaded: the net changes only now, on every rank alike. */
  if (s == SN_OK) {
    size_t nblock, nmom;
    float *block = sn_net_param_block(net, &nblock);
    float *mom = sn_net_momentum_block(net, &nmom);
    int64_t ntrain = 0, nstat = 0;
    sn_net_param_counts(net, NULL, &ntrain, &nstat);
    memcpy(block, st.params, nblock * sizeof(float));
    if (st.stat_ranks == size && size > 1)
      memcpy(block + ntrain, st.stats + (size_t)rank * (size_t)nstat,
             (size_t)nstat * sizeof(float));
    if (mom && nmom) {
      if (st.has_momentum)
        memcpy(mom, st.momentum, nmom * sizeof(float));
      else
        memset(mom, 0, nmom * sizeof(float));
    }
    sn_net_set_sgd_steps(net, st.has_momentum ? st.sgd_steps : 0);
    *m = st.meta;
    s = sn_net_refresh(net);
  }
  staged_free(&st);
  return s;
}
