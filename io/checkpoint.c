/* checkpoint.c - training checkpoints: one HDF5 file with the whole parameter block (weights and
 * moving statistics), the momentum block and the loop state, written atomically (temporary name,
 * fsync, rename), so a kill at any moment leaves either the previous checkpoint or the new one. */
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

sn_status sn_checkpoint_save(sn_net *net, const char *path, const sn_checkpoint_meta *m) {
  size_t nblock, nmom;
  float *block = sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  hid_t f;
  char tmp[4096];
  /* HDF5 is not thread-safe: exclude a live dataset reader's thread (h5util.h). */
  sn_h5_lock();
  sn_status s = sn_h5_create_atomic(path, &f, tmp, sizeof tmp);
  if (s != SN_OK) {
    sn_h5_unlock();
    return s;
  }
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
  sn_h5_unlock();
  return s != SN_OK ? s : fin;
}

/* The file's contents, read before anything of the net changes. */
typedef struct staged {
  float *params, *momentum; /* (nblock), (nmom) */
  int has_momentum;
  int64_t v[6]; /* epoch, step, sgd_steps, seed, ranks, global_batch */
} staged;

/* Reads and checks everything under the io lock (HDF5 is not thread-safe: a live dataset
 * reader's thread may be inside it otherwise, h5util.h). */
static sn_status read_checkpoint(sn_net *net, const char *path, staged *st) {
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
  sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  if (s == SN_OK) s = check_attr_int(f, path, "param_count", (int64_t)nblock);
  if (s == SN_OK) s = check_attr_int(f, path, "height", h);
  if (s == SN_OK) s = check_attr_int(f, path, "width", w);
  if (s == SN_OK) s = check_attr_int(f, path, "channels", c);
  if (s == SN_OK) s = check_attr_int(f, path, "outputs", oc);
  const char *keys[6] = {"epoch", "step", "sgd_steps", "seed", "ranks", "global_batch"};
  for (int i = 0; s == SN_OK && i < 6; ++i)
    s = sn_h5_read_int_attr(f, keys[i], path, "/", &st->v[i]);
  if (s == SN_OK) {
    st->params = malloc((nblock ? nblock : 1) * sizeof(float));
    st->momentum = malloc((nmom ? nmom : 1) * sizeof(float));
    if (!st->params || !st->momentum)
      s = sn_error_set(SN_ERR_NOMEM, "checkpoint %s: out of memory", path);
  }
  int64_t d1 = (int64_t)nblock, d2 = (int64_t)nmom;
  if (s == SN_OK) s = sn_h5_read_f32(f, "params", path, 1, &d1, st->params);
  st->has_momentum = sn_h5_exists(f, "momentum");
  if (s == SN_OK && mom && nmom && st->has_momentum)
    s = sn_h5_read_f32(f, "momentum", path, 1, &d2, st->momentum);
  free(fmt);
  free(arch);
  H5Fclose(f);
  return s;
}

sn_status sn_checkpoint_load(sn_net *net, const char *path, sn_checkpoint_meta *m) {
  staged st;
  memset(&st, 0, sizeof st);
  sn_h5_lock();
  sn_status s = read_checkpoint(net, path, &st);
  sn_h5_unlock();
  size_t nblock, nmom;
  float *block = sn_net_param_block(net, &nblock);
  float *mom = sn_net_momentum_block(net, &nmom);
  if (s == SN_OK && !sn_values_finite(st.params, nblock))
    s = sn_error_set(SN_ERR_NUMERIC, "checkpoint %s: parameters contain NaN or infinity", path);
  /* Nothing is half-loaded: the net changes only now. */
  if (s == SN_OK) {
    memcpy(block, st.params, nblock * sizeof(float));
    if (mom && nmom) {
      if (st.has_momentum)
        memcpy(mom, st.momentum, nmom * sizeof(float));
      else
        memset(mom, 0, nmom * sizeof(float));
    }
    sn_net_set_sgd_steps(net, st.has_momentum ? st.v[2] : 0);
    m->epoch = st.v[0];
    m->step = st.v[1];
    m->seed = (uint64_t)st.v[3];
    m->ranks = (int)st.v[4];
    m->global_batch = st.v[5];
    s = sn_net_refresh(net);
  }
  free(st.params);
  free(st.momentum);
  return s;
}
