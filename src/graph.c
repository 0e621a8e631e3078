/* graph.c - the network object and its memory: its layers (added in topological order, shapes
 * computed as they are added), its parameter tensors in one block and their initialisation, engine
 * options and queries. Building a graph: models.c; planning it: fuse.c and plan.c; running it:
 * net.c and train.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

/* ------------------------------------------------------------------ layer table */

int sn_net_add_layer(sn_net *net, const sn_layer_ops *ops, const char *name, int in0, int in1) {
  if (net->nlayers == net->layers_cap) {
    int cap = net->layers_cap ? net->layers_cap * 2 : 64;
    sn_layer *l = realloc(net->layers, (size_t)cap * sizeof *l);
    if (!l) return -1;
    net->layers = l;
    net->layers_cap = cap;
  }
  int idx = net->nlayers;
  sn_layer *l = &net->layers[idx];
  memset(l, 0, sizeof *l);
  l->ops = ops;
  snprintf(l->name, sizeof l->name, "%s", name);
  l->in[0] = in0;
  l->in[1] = in1;
  l->nin = in1 == -2 ? (in0 == -2 ? 0 : 1) : 2;
  l->fuse.alias = idx;
  l->fuse.residual = -2;
  l->fuse.fold_bn = -1;
  l->fuse.in_bn = -1;
  l->p0 = net->nparams;
  l->sh = l->sw = 1;
  net->nlayers++;
  return idx;
}

sn_status sn_net_add_param(sn_net *net, sn_layer *l, sn_param_role role, int ndim,
                           const int *shape) {
  if (net->nparams == net->params_cap) {
    int cap = net->params_cap ? net->params_cap * 2 : 128;
    sn_param *p = realloc(net->params, (size_t)cap * sizeof *p);
    if (!p) return sn_error_set(SN_ERR_NOMEM, "layer %s: out of memory", l->name);
    net->params = p;
    net->params_cap = cap;
  }
  sn_param *p = &net->params[net->nparams];
  memset(p, 0, sizeof *p);
  p->layer = (int)(l - net->layers);
  p->role = role;
  p->ndim = ndim;
  p->count = 1;
  for (int i = 0; i < ndim; ++i) {
    p->shape[i] = shape[i];
    p->count *= shape[i];
  }
  p->trainable = role != SN_ROLE_MOVING_MEAN && role != SN_ROLE_MOVING_VAR;
  l->np++;
  net->nparams++;
  return SN_OK;
}

/* Shapes are computed as layers are added: the input shape is known up front. A failure leaves
 * the message (naming the layer and both shapes) and returns -1. */
static int finish_layer(sn_net *net, int idx) {
  if (idx < 0) {
    sn_error_set(SN_ERR_NOMEM, "out of memory while building %s", net->arch);
    return -1;
  }
  sn_layer *l = &net->layers[idx];
  for (int i = 0; i < l->nin; ++i)
    if (l->in[i] >= idx || l->in[i] < -1) {
      sn_error_set(SN_ERR_INVALID, "layer %s: input %d is not an earlier layer", l->name, i);
      return -1;
    }
  if (l->ops->shape(net, l) != SN_OK) return -1;
  for (int i = 0; i < l->nin; ++i)
    if (l->in[i] >= 0) net->layers[l->in[i]].nconsumers++;
  if (l->ops->params && l->ops->params(net, l) != SN_OK) return -1;
  return idx;
}

int sn_add_conv_pads(sn_net *net, const char *name, int in, int filters, int kh, int kw, int stride,
                     int pt, int pl, int pb, int pr, int bias) {
  int i = sn_net_add_layer(net, &sn_conv_ops, name, in, -2);
  if (i < 0) return finish_layer(net, i);
  sn_layer *l = &net->layers[i];
  l->filters = filters;
  l->kh = kh;
  l->kw = kw;
  l->sh = l->sw = stride;
  l->pt = pt;
  l->pl = pl;
  l->pb = pb;
  l->pr = pr;
  l->use_bias = bias;
  return finish_layer(net, i);
}

int sn_add_conv(sn_net *net, const char *name, int in, int filters, int k, int stride, int pad,
                int bias) {
  return sn_add_conv_pads(net, name, in, filters, k, k, stride, pad, pad, pad, pad, bias);
}

int sn_add_bn(sn_net *net, const char *name, int in, float eps) {
  int i = sn_net_add_layer(net, &sn_bn_ops, name, in, -2);
  if (i >= 0) net->layers[i].eps = eps;
  return finish_layer(net, i);
}

int sn_add_relu(sn_net *net, const char *name, int in) {
  return finish_layer(net, sn_net_add_layer(net, &sn_relu_ops, name, in, -2));
}

int sn_add_pad(sn_net *net, const char *name, int in, int pad) {
  int i = sn_net_add_layer(net, &sn_pad_ops, name, in, -2);
  if (i >= 0) {
    sn_layer *l = &net->layers[i];
    l->pt = l->pl = l->pb = l->pr = pad;
  }
  return finish_layer(net, i);
}

int sn_add_maxpool(sn_net *net, const char *name, int in, int k, int stride, int pad,
                   int pad_zero) {
  int i = sn_net_add_layer(net, &sn_maxpool_ops, name, in, -2);
  if (i >= 0) {
    sn_layer *l = &net->layers[i];
    l->kh = l->kw = k;
    l->sh = l->sw = stride;
    l->pt = l->pl = l->pb = l->pr = pad;
    l->pad_zero = pad_zero;
  }
  return finish_layer(net, i);
}

int sn_add_gap(sn_net *net, const char *name, int in) {
  return finish_layer(net, sn_net_add_layer(net, &sn_gap_ops, name, in, -2));
}

int sn_add_gmp(sn_net *net, const char *name, int in) {
  return finish_layer(net, sn_net_add_layer(net, &sn_gmp_ops, name, in, -2));
}

int sn_add_sum(sn_net *net, const char *name, int a, int b) {
  return finish_layer(net, sn_net_add_layer(net, &sn_add_ops, name, a, b));
}

int sn_add_dense(sn_net *net, const char *name, int in, int units, int bias) {
  int i = sn_net_add_layer(net, &sn_dense_ops, name, in, -2);
  if (i >= 0) {
    net->layers[i].filters = units;
    net->layers[i].use_bias = bias;
  }
  return finish_layer(net, i);
}

int sn_add_flatten(sn_net *net, const char *name, int in) {
  return finish_layer(net, sn_net_add_layer(net, &sn_flatten_ops, name, in, -2));
}

/* ------------------------------------------------------------------ accessors */

const sn_shape *sn_layer_in_shape(const sn_net *net, const sn_layer *l, int i) {
  return l->in[i] < 0 ? &net->in : &net->layers[l->in[i]].out;
}

float *sn_param_data(const sn_net *net, const sn_layer *l, int k) {
  return net->block + net->params[l->p0 + k].offset;
}

float *sn_param_grad(const sn_net *net, const sn_layer *l, int k) {
  const sn_param *p = &net->params[l->p0 + k];
  return p->trainable && net->grads ? net->grads + p->offset : NULL;
}

/* ------------------------------------------------------------------ creation */

/* splitmix64-seeded xoshiro256** for He initialisation. */
typedef struct rng {
  uint64_t s[4];
} rng;
static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return res;
}
static double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* He-normal convolution kernels, PyTorch-default dense kernels, BN gamma 1 / var 1. Each tensor
 * is filled in chunks with their own generators, so the result depends only on the seed (not on
 * the thread count). */
static void init_params(sn_net *net, uint64_t seed) {
  const int64_t chunk = 1 << 16;
  for (int i = 0; i < net->nparams; ++i) {
    const sn_param *p = &net->params[i];
    const sn_layer *l = &net->layers[p->layer];
    float *d = net->block + p->offset;
    if (p->role != SN_ROLE_KERNEL) {
      float v = (p->role == SN_ROLE_GAMMA || p->role == SN_ROLE_MOVING_VAR) ? 1.0f : 0.0f;
      for (int64_t j = 0; j < p->count; ++j)
        d[j] = v;
      continue;
    }
    int conv = l->ops->type == SN_LAYER_CONV;
    double sd = conv ? sqrt(2.0 / ((double)p->shape[0] * p->shape[1] * p->shape[2])) : 0.0;
    double bound = conv ? 0.0 : 1.0 / sqrt((double)p->shape[0]);
    int64_t nchunks = (p->count + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) {
      rng r;
      uint64_t x = seed ^ ((uint64_t)i << 40) ^ (uint64_t)c * 0x2545f4914f6cdd1dull;
      for (int k = 0; k < 4; ++k)
        r.s[k] = splitmix(&x);
      int64_t end = (c + 1) * chunk < p->count ? (c + 1) * chunk : p->count;
      if (!conv) {
        for (int64_t j = c * chunk; j < end; ++j)
          d[j] = (float)(bound * (2.0 * rng_uniform(&r) - 1.0));
        continue;
      }
      for (int64_t j = c * chunk; j < end; j += 2) { /* Box-Muller: two normals per pair */
        float u1 = (float)rng_uniform(&r), u2 = (float)rng_uniform(&r);
        float rad = sqrtf(-2.0f * logf(u1 > 1e-30f ? u1 : 1e-30f)) * (float)sd;
        d[j] = rad * cosf(6.2831853f * u2);
        if (j + 1 < end) d[j + 1] = rad * sinf(6.2831853f * u2);
      }
    }
  }
}

void sn_engine_options_init(sn_engine_options *o) {
  memset(o, 0, sizeof *o);
  o->fuse = SN_FUSE_ALL;
  o->comm_poll = 1;
  o->precision = SN_PRECISION_FP32;
  o->fp32_layers = SN_FP32_DEFAULT;
}

const char *sn_precision_name(sn_precision p) {
  switch (p) {
  case SN_PRECISION_FP32:
    return "fp32";
  case SN_PRECISION_BF16:
    return "bf16";
  case SN_PRECISION_INT8:
    return "int8";
  }
  return "?";
}

sn_status sn_precision_parse(const char *name, sn_precision *out) {
  for (int p = SN_PRECISION_FP32; p <= SN_PRECISION_INT8; ++p)
    if (name && !strcmp(name, sn_precision_name((sn_precision)p))) {
      *out = (sn_precision)p;
      return SN_OK;
    }
  return sn_error_set(SN_ERR_INVALID, "precision '%s' is not fp32, bf16 or int8",
                      name ? name : "(null)");
}

sn_status sn_net_set_options(sn_net *net, const sn_engine_options *o) {
  const int choices[3] = {o->conv_gemm, o->conv_wgrad, o->winograd};
  for (int i = 0; i < 3; ++i)
    if (choices[i] < SN_CHOICE_AUTO || choices[i] > SN_CHOICE_OFF)
      return sn_error_set(SN_ERR_INVALID, "%s: engine option choice %d is not auto, on or off",
                          net->arch, choices[i]);
  if (o->fuse & ~(unsigned)SN_FUSE_ALL)
    return sn_error_set(SN_ERR_INVALID, "%s: fusion mask 0x%x has unknown bits (all: 0x%x)",
                        net->arch, o->fuse, (unsigned)SN_FUSE_ALL);
  if (o->precision < SN_PRECISION_FP32 || o->precision > SN_PRECISION_INT8)
    return sn_error_set(SN_ERR_INVALID, "%s: precision %d is not fp32, bf16 or int8", net->arch,
                        (int)o->precision);
  if (o->fp32_layers & ~(unsigned)SN_FP32_DEFAULT)
    return sn_error_set(SN_ERR_INVALID, "%s: fp32_layers mask 0x%x has unknown bits (all: 0x%x)",
                        net->arch, o->fp32_layers, (unsigned)SN_FP32_DEFAULT);
  if (o->cpu_off & ~(unsigned)SN_CPU_ALL)
    return sn_error_set(SN_ERR_INVALID, "%s: cpu_off mask 0x%x has unknown bits (all: 0x%x)",
                        net->arch, o->cpu_off, (unsigned)SN_CPU_ALL);
  net->opts = *o;
  return SN_OK;
}

const sn_engine_options *sn_net_options(const sn_net *net) { return &net->opts; }

sn_status sn_net_new(const sn_model_config *cfg, uint64_t seed, sn_net **out) {
  *out = NULL;
  sn_net *net = calloc(1, sizeof *net);
  if (!net) return sn_error_set(SN_ERR_NOMEM, "sn_net_create: out of memory");
  net->cfg = *cfg;
  snprintf(net->arch, sizeof net->arch, "%s", cfg->arch);
  net->cfg.arch = net->arch;
  net->feature = -1;
  net->seed = seed;
  sn_engine_options_init(&net->opts);
  net->bucket_floats = (size_t)25 << 18; /* 25 MiB of float32 */
  *out = net;
  return SN_OK;
}

sn_status sn_net_finish_graph(sn_net *net) {
  if (net->cfg.bn_momentum_style == SN_STYLE_TORCH || net->cfg.bn_momentum_style == SN_STYLE_KERAS)
    net->bn_style = (sn_style)net->cfg.bn_momentum_style;
  /* Lay out the parameter block: trainable tensors first, then moving statistics. */
  size_t off = 0;
  for (int pass = 1; pass >= 0; --pass)
    for (int i = 0; i < net->nparams; ++i)
      if (net->params[i].trainable == pass) {
        net->params[i].offset = off;
        off += (size_t)net->params[i].count;
        if (pass == 1) net->ntrainable = off;
      }
  net->nblock = off;
  net->block = calloc(off ? off : 1, sizeof(float));
  if (!net->block) /* the caller destroys the net after this message, which names net->arch */
    return sn_error_set(SN_ERR_NOMEM, "%s: cannot allocate %zu parameters", net->arch, off);
  if (!net->cfg.skip_init) init_params(net, net->seed);
  net->built = malloc((net->nlayers ? (size_t)net->nlayers : 1) * sizeof *net->built);
  if (!net->built) return sn_error_set(SN_ERR_NOMEM, "%s: out of memory", net->arch);
  if (net->nlayers) memcpy(net->built, net->layers, (size_t)net->nlayers * sizeof *net->built);
  net->built_output = net->output;
  net->built_feature = net->feature;
  return SN_OK;
}

void sn_net_restore_graph(sn_net *net) {
  if (net->nlayers) memcpy(net->layers, net->built, (size_t)net->nlayers * sizeof *net->layers);
  net->output = net->built_output;
  net->feature = net->built_feature;
}

void sn_net_unplan(sn_net *net) {
  free(net->prof);
  net->prof = NULL;
  net->prof_passes = 0;
  for (int i = 0; i < net->nlayers; ++i) {
    sn_layer *l = &net->layers[i];
    sn_conv_impl_destroy(l->impl);
    l->impl = NULL;
    free(l->fold);
    l->fold = NULL;
    l->y = l->dy = NULL;
    l->argmax = NULL;
    l->mean = l->invstd = NULL;
  }
  free(net->arena);
  free(net->iarena);
  free(net->ws);
  free(net->stats);
  net->arena = NULL;
  net->iarena = NULL;
  net->ws = NULL;
  net->stats = NULL;
  net->planned = 0;
}

void sn_net_destroy(sn_net *net) {
  if (!net) return;
  sn_net_unplan(net);
  free(net->layers);
  free(net->built);
  free(net->params);
  free(net->act);
  free(net->block);
  free(net->grads);
  free(net->momentum);
  free(net->probe_buf);
  free(net);
}

/* ------------------------------------------------------------------ queries */

const char *sn_net_arch(const sn_net *net) { return net->arch; }
const sn_model_config *sn_net_config(const sn_net *net) { return &net->cfg; }
sn_style sn_net_style(const sn_net *net) { return net->style; }
sn_preprocess sn_net_default_preprocess(const sn_net *net) { return net->preprocess; }

void sn_net_input_shape(const sn_net *net, int *h, int *w, int *c) {
  *h = net->in.h;
  *w = net->in.w;
  *c = net->in.c;
}

void sn_net_output_shape(const sn_net *net, int *h, int *w, int *c) {
  sn_shape s = net->layers[net->output].out;
  *h = s.h;
  *w = s.w;
  *c = s.c;
}

int sn_net_classes(const sn_net *net) {
  return net->cfg.include_top ? (int)sn_shape_size(net->layers[net->output].out) : 0;
}

int sn_net_feature_dim(const sn_net *net) {
  return net->feature >= 0 ? (int)sn_shape_size(net->layers[net->feature].out) : 0;
}

void sn_net_param_counts(const sn_net *net, int64_t *total, int64_t *trainable,
                         int64_t *non_trainable) {
  int64_t t = 0, nt = 0;
  for (int i = 0; i < net->nparams; ++i)
    (net->params[i].trainable ? &t : &nt)[0] += net->params[i].count;
  if (total) *total = t + nt;
  if (trainable) *trainable = t;
  if (non_trainable) *non_trainable = nt;
}

/* Each kernel weight is multiplied once per output pixel (conv and dense alike). */
int64_t sn_net_macs(const sn_net *net) {
  int64_t macs = 0;
  for (int i = 0; i < net->nparams; ++i) {
    const sn_param *p = &net->params[i];
    const sn_layer *l = &net->layers[p->layer];
    if (p->role == SN_ROLE_KERNEL) macs += (int64_t)l->out.h * l->out.w * p->count;
  }
  return macs;
}

int sn_net_num_params(const sn_net *net) { return net->nparams; }

sn_status sn_net_param(const sn_net *net, int i, sn_param_info *info) {
  if (i < 0 || i >= net->nparams)
    return sn_error_set(SN_ERR_INVALID, "parameter index %d out of range [0, %d)", i, net->nparams);
  const sn_param *p = &net->params[i];
  const sn_layer *l = &net->layers[p->layer];
  info->layer = l->name;
  info->layer_kind = l->ops->kind;
  info->role = p->role;
  info->ndim = p->ndim;
  for (int k = 0; k < 4; ++k)
    info->shape[k] = k < p->ndim ? p->shape[k] : 0;
  info->count = p->count;
  info->trainable = p->trainable;
  info->data = net->block + p->offset;
  info->grad = p->trainable && net->grads ? net->grads + p->offset : NULL;
  return SN_OK;
}

int sn_net_find_param(const sn_net *net, const char *layer, sn_param_role role) {
  for (int i = 0; i < net->nparams; ++i)
    if (net->params[i].role == role && !strcmp(net->layers[net->params[i].layer].name, layer))
      return i;
  return -1;
}

const char *sn_param_role_name(sn_param_role role, sn_style style, const char *layer_kind) {
  (void)layer_kind;
  static const char *torch[] = {"weight", "bias", "weight", "bias", "running_mean", "running_var"};
  static const char *keras[] = {"kernel", "bias",        "gamma",
                                "beta",   "moving_mean", "moving_variance"};
  if ((int)role < 0 || role > SN_ROLE_MOVING_VAR) return "?";
  return style == SN_STYLE_TORCH ? torch[role] : keras[role];
}

float *sn_net_param_block(sn_net *net, size_t *n) {
  if (n) *n = net->nblock;
  return net->block;
}

float *sn_net_grad_block(sn_net *net, size_t *n) {
  if (n) *n = net->grads ? net->ntrainable : 0;
  return net->grads;
}

float *sn_net_momentum_block(sn_net *net, size_t *n) {
  if (n) *n = net->momentum ? net->ntrainable : 0;
  return net->momentum;
}
