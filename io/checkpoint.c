/* checkpoint.c - training checkpoints: one HDF5 file with the whole parameter block (weights and
 * moving statistics), the momentum block and the loop state, written atomically (temporary name,
 * fsync, rename), so a kill at any moment leaves either the previous checkpoint or the new one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"

static sn_status check_attr_int(hid_t f, const char *path, const char *name, int64_t want) {
  int64_t v = 0;
  sn_status s = sn_h5_read_int_attr(f, name, path, "/", &v);
  if (s != SN_OK) return s;
  if (v != want)
    return sn_error_set(SN_ERR_SHAPE, "checkpoint %s: %s is %lld but the model has %lld", path,
                        name, (long long)v, (long long)want);
  return SN_OK;
}

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

sn_status sn_checkpoint_save(sn_net *net, const char *path, const sn_checkpoint_meta *m) {
  size_t nblock, nmom;
  float *block = sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  hid_t f;
  char tmp[4096];
  sn_status s = sn_h5_create_atomic(path, &f, tmp, sizeof tmp);
  if (s != SN_OK) return s;
  int64_t d1 = (int64_t)nblock, d2 = (int64_t)nmom;
  int h, w, c;
  sn_net_input_shape(net, &h, &w, &c);
  int oh, ow, oc;
  sn_net_output_shape(net, &oh, &ow, &oc);
  s = sn_h5_write_f32(f, "params", path, 1, &d1, block);
  if (s == SN_OK && mom && nmom) s = sn_h5_write_f32(f, "momentum", path, 1, &d2, mom);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "format", "shardnet-checkpoint", path);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "version", SN_VERSION, path);
  if (s == SN_OK) s = sn_h5_write_str_attr(f, "arch", sn_net_arch(net), path);
  struct {
    const char *k;
    int64_t v;
  } ints[] = {{"param_count", (int64_t)nblock},
              {"momentum_count", (int64_t)nmom},
              {"height", h},
              {"width", w},
              {"channels", c},
              {"outputs", oc},
              {"epoch", m->epoch},
              {"step", m->step},
              {"sgd_steps", sn_net_sgd_steps(net)},
              {"seed", (int64_t)m->seed},
              {"ranks", m->ranks},
              {"global_batch", m->global_batch}};
  for (size_t i = 0; s == SN_OK && i < sizeof ints / sizeof ints[0]; ++i)
    s = sn_h5_write_int_attr(f, ints[i].k, ints[i].v, path);
  sn_status fin = sn_h5_finish_atomic(f, tmp, path, s == SN_OK);
  return s != SN_OK ? s : fin;
}

sn_status sn_checkpoint_load(sn_net *net, const char *path, sn_checkpoint_meta *m) {
  hid_t f;
  sn_status s = sn_h5_open_read(path, &f);
  if (s != SN_OK) return s;
  char *fmt = NULL, *arch = NULL;
  s = sn_h5_read_str_attr(f, "format", path, "/", &fmt);
  if (s == SN_OK && strcmp(fmt, "shardnet-checkpoint"))
    s = sn_error_set(SN_ERR_FORMAT, "file %s: not a shardnet checkpoint (format '%s')", path, fmt);
  if (s == SN_OK) s = sn_h5_read_str_attr(f, "arch", path, "/", &arch);
  if (s == SN_OK && strcmp(arch, sn_net_arch(net)))
    s = sn_error_set(SN_ERR_SHAPE, "checkpoint %s: architecture %s, but the model is %s", path,
                     arch, sn_net_arch(net));
  size_t nblock, nmom;
  float *block = sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  if (s == SN_OK) s = check_attr_int(f, path, "param_count", (int64_t)nblock);
  if (s == SN_OK) s = check_attr_int(f, path, "height", h);
  if (s == SN_OK) s = check_attr_int(f, path, "width", w);
  if (s == SN_OK) s = check_attr_int(f, path, "channels", c);
  if (s == SN_OK) s = check_attr_int(f, path, "outputs", oc);
  int64_t v[6] = {0};
  const char *keys[6] = {"epoch", "step", "sgd_steps", "seed", "ranks", "global_batch"};
  for (int i = 0; s == SN_OK && i < 6; ++i)
    s = sn_h5_read_int_attr(f, keys[i], path, "/", &v[i]);
  /* Read into temporaries first: nothing is half-loaded. */
  float *pb = NULL, *mb = NULL;
  if (s == SN_OK) {
    pb = malloc((nblock ? nblock : 1) * sizeof(float));
    mb = malloc((nmom ? nmom : 1) * sizeof(float));
    if (!pb || !mb) s = sn_error_set(SN_ERR_NOMEM, "checkpoint %s: out of memory", path);
  }
  int64_t d1 = (int64_t)nblock, d2 = (int64_t)nmom;
  if (s == SN_OK) s = sn_h5_read_f32(f, "params", path, 1, &d1, pb);
  int has_mom = sn_h5_exists(f, "momentum");
  if (s == SN_OK && mom && nmom && has_mom) s = sn_h5_read_f32(f, "momentum", path, 1, &d2, mb);
  if (s == SN_OK) s = check_finite(net, path, "params", pb, nblock);
  if (s == SN_OK && mom && nmom && has_mom) s = check_finite(net, path, "momentum", mb, nmom);
  if (s == SN_OK) {
    memcpy(block, pb, nblock * sizeof(float));
    if (mom && nmom) {
      if (has_mom)
        memcpy(mom, mb, nmom * sizeof(float));
      else
        memset(mom, 0, nmom * sizeof(float));
    }
    sn_net_set_sgd_steps(net, has_mom ? v[2] : 0);
    m->epoch = v[0];
    m->step = v[1];
    m->seed = (uint64_t)v[3];
    m->ranks = (int)v[4];
    m->global_batch = v[5];
    s = sn_net_refresh(net);
  }
  free(pb);
  free(mb);
  free(fmt);
  free(arch);
  H5Fclose(f);
  return s;
}
