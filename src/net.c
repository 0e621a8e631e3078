/* net.c - network creation, parameters, planning and the inference pass. */
#include <math.h>
#include <omp.h>
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
  l->alias = idx;
  l->fused_res = -2;
  l->fold_bn = -1;
  l->in_bn = -1;
  l->p0 = net->nparams;
  l->sh = l->sw = 1;
  net->nlayers++;
  return idx;
}

static int add_param(sn_net *net, int layer, sn_param_role role, int ndim, const int *shape) {
  if (net->nparams == net->params_cap) {
    int cap = net->params_cap ? net->params_cap * 2 : 128;
    sn_param *p = realloc(net->params, (size_t)cap * sizeof *p);
    if (!p) return -1;
    net->params = p;
    net->params_cap = cap;
  }
  sn_param *p = &net->params[net->nparams];
  memset(p, 0, sizeof *p);
  p->layer = layer;
  p->role = role;
  p->ndim = ndim;
  p->count = 1;
  for (int i = 0; i < ndim; ++i) {
    p->shape[i] = shape[i];
    p->count *= shape[i];
  }
  p->trainable = role != SN_ROLE_MOVING_MEAN && role != SN_ROLE_MOVING_VAR;
  net->layers[layer].np++;
  return net->nparams++;
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
  /* Parameters, in Keras order. */
  const char *k = l->ops->kind;
  if (!strcmp(k, "conv")) {
    int ks[4] = {l->kh, l->kw, sn_layer_in_shape(net, l, 0)->c, l->filters};
    if (add_param(net, idx, SN_ROLE_KERNEL, 4, ks) < 0) return -1;
    if (l->use_bias && add_param(net, idx, SN_ROLE_BIAS, 1, &l->filters) < 0) return -1;
  } else if (!strcmp(k, "dense")) {
    int ks[2] = {(int)sn_shape_size(*sn_layer_in_shape(net, l, 0)), l->filters};
    if (add_param(net, idx, SN_ROLE_KERNEL, 2, ks) < 0) return -1;
    if (l->use_bias && add_param(net, idx, SN_ROLE_BIAS, 1, &l->filters) < 0) return -1;
  } else if (!strcmp(k, "bn")) {
    int c = l->out.c;
    for (int r = SN_ROLE_GAMMA; r <= SN_ROLE_MOVING_VAR; ++r)
      if (add_param(net, idx, (sn_param_role)r, 1, &c) < 0) return -1;
  }
  return idx;
}

int sn_add_conv_pads(sn_net *net, const char *name, int in, int filters, int kh, int kw,
                     int stride, int pt, int pl, int pb, int pr, int bias) {
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

/* ------------------------------------------------------------------ accessors used by layers */

const sn_shape *sn_layer_in_shape(const sn_net *net, const sn_layer *l, int i) {
  return l->in[i] < 0 ? &net->in : &net->layers[l->in[i]].out;
}

const float *sn_layer_input(const sn_net *net, const sn_layer *l, int i) {
  if (l->in[i] < 0) return net->input;
  return net->layers[net->layers[l->in[i]].alias].y;
}

float *sn_layer_input_grad(sn_net *net, sn_layer *l, int i, int *accumulate) {
  *accumulate = 0;
  if (l->in[i] < 0) return NULL;
  sn_layer *p = &net->layers[l->in[i]];
  if (p->dy_written) *accumulate = 1;
  p->dy_written = 1;
  return p->dy;
}

void sn_net_accumulate(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
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
      for (int64_t j = 0; j < p->count; ++j) d[j] = v;
      continue;
    }
    int conv = !strcmp(l->ops->kind, "conv");
    double sd = conv ? sqrt(2.0 / ((double)p->shape[0] * p->shape[1] * p->shape[2])) : 0.0;
    double bound = conv ? 0.0 : 1.0 / sqrt((double)p->shape[0]);
    int64_t nchunks = (p->count + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) {
      rng r;
      uint64_t x = seed ^ ((uint64_t)i << 40) ^ (uint64_t)c * 0x2545f4914f6cdd1dull;
      for (int k = 0; k < 4; ++k) r.s[k] = splitmix(&x);
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
  net->opts = *o;
  return SN_OK;
}

const sn_engine_options *sn_net_options(const sn_net *net) { return &net->opts; }

void sn_model_config_init(sn_model_config *cfg, const char *arch) {
  memset(cfg, 0, sizeof *cfg);
  cfg->arch = arch;
  cfg->include_top = 1;
  cfg->pooling = SN_POOL_AVG;
  cfg->bn_momentum_style = -1;
}

sn_status sn_net_create(const sn_model_config *cfg, uint64_t seed, sn_net **out) {
  *out = NULL;
  if (!cfg || !cfg->arch) return sn_error_set(SN_ERR_INVALID, "sn_net_create: no architecture");
  sn_net *net = calloc(1, sizeof *net);
  if (!net) return sn_error_set(SN_ERR_NOMEM, "sn_net_create: out of memory");
  net->cfg = *cfg;
  snprintf(net->arch, sizeof net->arch, "%s", cfg->arch);
  net->cfg.arch = net->arch;
  net->feature = -1;
  net->seed = seed;
  sn_engine_options_init(&net->opts);
  net->bucket_floats = (size_t)25 << 18; /* 25 MiB of float32 */
  sn_status s = sn_models_build(net);
  if (s != SN_OK) {
    sn_net_destroy(net);
    return s;
  }
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
  if (!net->block) {
    sn_status st = sn_error_set(SN_ERR_NOMEM, "%s: cannot allocate %zu parameters", net->arch, off);
    sn_net_destroy(net); /* after the message: it names net->arch */
    return st;
  }
  if (!cfg->skip_init) init_params(net, seed);
  *out = net;
  return SN_OK;
}

/* SN_PROFILE=1: the time of every layer, summed over the passes of one plan (inference
 * forwards, or training steps: forward and backward apart), printed to stderr when the plan is
 * freed (largest first, with each convolution's algorithm). */
static void print_profile(sn_net *net) {
  if (!net->prof || net->prof_passes == 0) return;
  const int nl = net->nlayers, tr = net->training;
  double total = 0;
  int *order = malloc((size_t)nl * sizeof *order);
  if (!order) return;
  double *t = net->prof;
#define SN_PROF_LAYER(j) (t[j] + (tr ? t[nl + (j)] : 0.0))
  int n = 0;
  for (int j = 0; j < nl; ++j)
    if (SN_PROF_LAYER(j) > 0) {
      total += SN_PROF_LAYER(j);
      order[n++] = j;
    }
  for (int a = 1; a < n; ++a) /* insertion sort, largest first */
    for (int b = a; b > 0 && SN_PROF_LAYER(order[b]) > SN_PROF_LAYER(order[b - 1]); --b) {
      int o = order[b];
      order[b] = order[b - 1];
      order[b - 1] = o;
    }
  const double per = 1e3 / (double)net->prof_passes;
  fprintf(stderr, "shardnet profile: %s, %ld %s, %.3f ms per pass\n", net->arch, net->prof_passes,
          tr ? "training steps (forward, backward; loss and SGD not included)" : "forward passes",
          per * total);
  if (tr)
    fprintf(stderr, "%-32s %-8s %-12s %10s %10s %7s\n", "layer", "kind", "algorithm", "fwd ms",
            "bwd ms", "share");
  else
    fprintf(stderr, "%-32s %-8s %-12s %10s %7s\n", "layer", "kind", "algorithm", "ms/pass", "share");
  for (int i = 0; i < n; ++i) {
    const int j = order[i];
    const sn_layer *l = &net->layers[j];
    const char *alg = l->impl ? sn_conv_impl_name(l->impl) : "-";
    if (tr)
      fprintf(stderr, "%-32s %-8s %-12s %10.3f %10.3f %6.1f%%\n", l->name, l->ops->kind, alg,
              per * t[j], per * t[nl + j], 100.0 * SN_PROF_LAYER(j) / total);
    else
      fprintf(stderr, "%-32s %-8s %-12s %10.3f %6.1f%%\n", l->name, l->ops->kind, alg, per * t[j],
              100.0 * t[j] / total);
  }
#undef SN_PROF_LAYER
  free(order);
}

static void free_plan(sn_net *net) {
  print_profile(net);
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
  free_plan(net);
  free(net->layers);
  free(net->params);
  free(net->block);
  free(net->grads);
  free(net->momentum);
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

int64_t sn_net_macs(const sn_net *net) {
  int64_t macs = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *l = &net->layers[j];
    if (!strcmp(l->ops->kind, "conv"))
      macs += (int64_t)l->out.h * l->out.w * l->out.c * l->kh * l->kw * sn_layer_in_shape(net, l, 0)->c;
    else if (!strcmp(l->ops->kind, "dense"))
      macs += (int64_t)l->out.c * (int64_t)sn_shape_size(*sn_layer_in_shape(net, l, 0));
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
  for (int k = 0; k < 4; ++k) info->shape[k] = k < p->ndim ? p->shape[k] : 0;
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
  static const char *keras[] = {"kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"};
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

const float *sn_net_features(const sn_net *net) {
  if (net->feature < 0 || !net->planned) return NULL;
  return net->layers[net->layers[net->feature].alias].y;
}

/* ------------------------------------------------------------------ planning */

static int single_consumer_of(const sn_net *net, int producer, int from) {
  int found = -1;
  for (int j = from; j < net->nlayers; ++j) {
    const sn_layer *c = &net->layers[j];
    if (c->skip) continue;
    for (int i = 0; i < c->nin; ++i)
      if (c->in[i] == producer) {
        if (found >= 0) return -1;
        found = j;
      }
  }
  return found;
}

/* Rewires consumers of layer `from` to read layer `to`. */
static void rewire(sn_net *net, int from, int to) {
  for (int j = from + 1; j < net->nlayers; ++j)
    for (int i = 0; i < net->layers[j].nin; ++i)
      if (net->layers[j].in[i] == from) net->layers[j].in[i] = to;
  if (net->output == from) net->output = to;
  if (net->feature == from) net->feature = to;
}

static void fuse_bn_into_inputs(sn_net *net);

/* Inference fusion, on a copy of the layer wiring: zero padding into the consumer, batch norm
 * into the preceding convolution, residual add into the convolution that produces one operand,
 * ReLU into its producer. The layers stay in the table (marked skip) for the summary. */
static void fuse_for_inference(sn_net *net, int mask) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    const char *k = l->ops->kind;
    int p = l->nin ? l->in[0] : -1;
    sn_layer *pl = p >= 0 ? &net->layers[p] : NULL;
    if (!strcmp(k, "pad") && (mask & SN_FUSE_PAD)) {
      int c = single_consumer_of(net, j, j + 1);
      if (c < 0) continue;
      sn_layer *cl = &net->layers[c];
      int ok = !strcmp(cl->ops->kind, "conv") ||
               (!strcmp(cl->ops->kind, "maxpool") && (cl->pad_zero || (!cl->pt && !cl->pl)));
      if (!ok) continue;
      cl->pt += l->pt;
      cl->pl += l->pl;
      cl->pb += l->pb;
      cl->pr += l->pr;
      if (!strcmp(cl->ops->kind, "maxpool")) cl->pad_zero = 1;
      l->skip = 1;
      cl->in[0] = l->in[0];
    } else if (!strcmp(k, "bn") && (mask & SN_FUSE_BN) && pl && !strcmp(pl->ops->kind, "conv") && pl->fold_bn < 0 &&
               !pl->fused_relu && pl->fused_res == -2 && single_consumer_of(net, p, p + 1) == j) {
      pl->fold_bn = j;
      l->skip = 1;
      rewire(net, j, p);
    } else if (!strcmp(k, "add") && (mask & SN_FUSE_ADD)) {
      /* Fuse into the convolution producing one operand if it is used only here. */
      for (int side = 1; side >= 0; --side) {
        int c = l->in[side], other = l->in[1 - side];
        if (c < 0 || other == c) continue;
        sn_layer *cl = &net->layers[c];
        if (strcmp(cl->ops->kind, "conv") || cl->fused_relu || cl->fused_res != -2) continue;
        if (single_consumer_of(net, c, c + 1) != j) continue;
        if (other > c) continue; /* the other operand must exist before the conv runs */
        cl->fused_res = other;
        l->skip = 1;
        rewire(net, j, c);
        break;
      }
    } else if (!strcmp(k, "relu") && (mask & SN_FUSE_RELU) && pl && !pl->fused_relu &&
               (!strcmp(pl->ops->kind, "conv") || !strcmp(pl->ops->kind, "bn") ||
                !strcmp(pl->ops->kind, "add")) &&
               single_consumer_of(net, p, p + 1) == j && net->feature != p) {
      pl->fused_relu = 1;
      l->skip = 1;
      rewire(net, j, p);
    }
  }
  if (mask & SN_FUSE_BNIN) fuse_bn_into_inputs(net);
  for (int j = 0; j < net->nlayers; ++j) net->layers[j].alias = j;
}

/* Inference, SN_FUSE_BNIN: a batch norm that could not be folded into a preceding convolution
 * (V2's pre-activation, after an add) and whose readers are all unpadded 1x1 convolutions on
 * the packed GEMM (sn_conv_impl_input_map_ok) is applied by those convolutions as they copy their
 * input rows (sn_conv_impl_forward_in, bitwise the separate pass): the batch norm's pass and
 * its output tensor disappear, and its readers read its input. Not for the network output or
 * the feature layer, nor for a batch norm read as a residual. */
static void fuse_bn_into_inputs(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip || strcmp(l->ops->kind, "bn") || net->output == j || net->feature == j) continue;
    int readers = 0, ok = 1;
    for (int c = j + 1; c < net->nlayers && ok; ++c) {
      const sn_layer *cl = &net->layers[c];
      if (cl->skip) continue;
      const int reads = (cl->nin > 0 && cl->in[0] == j) || (cl->nin > 1 && cl->in[1] == j);
      if (cl->fused_res == j) ok = 0;
      if (!reads) continue;
      readers++;
      sn_conv_geom g;
      const sn_shape *s = sn_layer_in_shape(net, cl, 0);
      ok = ok && !strcmp(cl->ops->kind, "conv") && cl->nin == 1 && cl->in_bn < 0 &&
           sn_conv_geom_init(&g, &net->opts, 1, s->h, s->w, s->c, cl->kh, cl->kw, cl->sh, cl->sw,
                             cl->pt, cl->pl, cl->pb, cl->pr, cl->filters) == 0 &&
           sn_conv_impl_input_map_ok(&g);
    }
    if (!ok || !readers) continue;
    for (int c = j + 1; c < net->nlayers; ++c)
      if (!net->layers[c].skip && net->layers[c].nin == 1 && net->layers[c].in[0] == j)
        net->layers[c].in_bn = j;
    l->skip = 1;
    rewire(net, j, l->in[0]);
  }
}

static void fuse_bn_into_add(sn_net *net);
static void fuse_bn_into_convs(sn_net *net);
static void fuse_relus_for_training(sn_net *net);

/* Training fusion: ReLUs into their producers (SN_FUSE_RELU), then batch norms into the adds
 * they feed (SN_FUSE_BNADD, which needs to know whether the add applies a ReLU), then the
 * normalize passes of batch norms read only by a convolution into its input copy
 * (SN_FUSE_BNCONV). */
static void fuse_for_training(sn_net *net, int mask) {
  if (mask & SN_FUSE_RELU) fuse_relus_for_training(net);
  if (mask & SN_FUSE_BNADD) fuse_bn_into_add(net);
  if (mask & SN_FUSE_BNCONV) fuse_bn_into_convs(net);
}

/* Training, SN_FUSE_BNCONV: a batch norm (with its fused ReLU) whose only reader is a
 * convolution on the direct kernels with zero padding (the second 3x3 of each resnet20 block,
 * which reads bn1) computes its statistics and leaves act(normalize(x)) to that convolution, which
 * applies it to each image as it copies it into its padded buffer, in the forward pass and again
 * for the weight gradient (sn_conv_forward_in / _backward_in, bitwise the separate pass): the
 * normalized tensor is neither written nor read back. The batch norm's backward needs only its
 * input (the ReLU mask is recomputed from it). Marked here for the plan's largest batch; each call
 * asks again (sn_conv_layer_input_bn), since the convolution's path depends on the batch, and
 * the batch norm then writes its output as before. Its output buffer stays planned for those
 * calls and for evaluation. */
static void fuse_bn_into_convs(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip || strcmp(l->ops->kind, "bn") || l->into_add || net->output == j ||
        net->feature == j)
      continue;
    const int c = single_consumer_of(net, j, j + 1);
    if (c < 0) continue;
    sn_layer *cl = &net->layers[c];
    if (strcmp(cl->ops->kind, "conv") || cl->nin != 1 || cl->in[0] != j) continue;
    l->into_conv = c + 1;
    if (!sn_conv_layer_input_bn(net, cl, net->max_batch)) l->into_conv = 0;
  }
}

/* Training, SN_FUSE_BNADD: a batch norm read only by an add (a residual branch's last BN, or
 * the projection shortcut's) writes the add's output itself, act(normalize(x) + other input)
 * (sn_bn_normalize_add, bitwise the two passes), when the add's other input is computed before
 * it; the add's forward does nothing. The batch norm's own output is never written (nothing
 * reads it: its backward needs its input, the add's backward its own output). Of two such
 * inputs the later one fuses. */
static void fuse_bn_into_add(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip || strcmp(l->ops->kind, "add") || l->in[0] == l->in[1]) continue;
    int best = -1;
    for (int i = 0; i < 2; ++i) {
      const int p = l->in[i];
      if (p < 0 || net->feature == p || net->output == p) continue;
      const sn_layer *pl = &net->layers[p];
      if (pl->skip || pl->fused_relu || strcmp(pl->ops->kind, "bn") ||
          single_consumer_of(net, p, p + 1) != j)
        continue;
      if (l->in[1 - i] < p && (best < 0 || p > l->in[best])) best = i;
    }
    if (best < 0) continue;
    net->layers[l->in[best]].into_add = j + 1;
    l->from_bn = l->in[best] + 1;
  }
}

/* Training fusion: a ReLU whose input is a batch norm or an add consumed only by it runs inside
 * that layer (forward stores max(0, y), backward masks its dy by y > 0: sn_bn_*_relu kernels, or
 * the add's gradient pass), so the ReLU layer is skipped in forward and backward and has neither
 * an output nor a gradient buffer. Its consumers are rewired to the producer, whose output then
 * holds the activation (the producer's pre-activation value is not kept). The network output and
 * the feature layer are never fused into, as in inference. SN_FUSE_RELU in the mask enables it. */
static void fuse_relus_for_training(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    int p = l->nin ? l->in[0] : -1;
    if (strcmp(l->ops->kind, "relu") || p < 0) continue;
    sn_layer *pl = &net->layers[p];
    if (pl->fused_relu || (strcmp(pl->ops->kind, "bn") && strcmp(pl->ops->kind, "add"))) continue;
    if (single_consumer_of(net, p, p + 1) != j || net->feature == p || net->output == p) continue;
    pl->fused_relu = 1;
    l->skip = 1;
    l->alias = p;
    rewire(net, j, p);
  }
}

/* Assigns arena offsets to the outputs of non-skipped layers by liveness (first fit). */
typedef struct interval {
  size_t off, size;
  int end;
} interval;

/* The lowest offset where `size` floats overlap none of the live intervals (first fit). */
static size_t first_fit(const interval *live, int nlive, size_t size) {
  size_t off = 0;
  for (int moved = 1; moved;) {
    moved = 0;
    for (int i = 0; i < nlive; ++i)
      if (off < live[i].off + live[i].size && live[i].off < off + size) {
        off = live[i].off + live[i].size;
        moved = 1;
      }
  }
  return off;
}

static size_t plan_offsets(sn_net *net, int n, size_t *offs, int reuse) {
  int L = net->nlayers;
  int *last = malloc((size_t)L * sizeof *last);
  interval *live = malloc((size_t)L * sizeof *live);
  int nlive = 0;
  size_t top = 0;
  for (int j = 0; j < L; ++j) last[j] = j;
  for (int j = 0; j < L; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->skip) continue;
    for (int i = 0; i < l->nin; ++i)
      if (l->in[i] >= 0 && last[l->in[i]] < j) last[l->in[i]] = j;
    if (l->fused_res >= 0 && last[l->fused_res] < j) last[l->fused_res] = j;
  }
  if (net->output >= 0) last[net->output] = L;
  if (net->feature >= 0) last[net->feature] = L;
  for (int j = 0; j < L; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->skip) continue;
    size_t size = ((size_t)n * sn_shape_size(l->out) + 15) & ~(size_t)15;
    if (reuse) { /* drop intervals that ended before this layer */
      int k = 0;
      for (int i = 0; i < nlive; ++i)
        if (live[i].end >= j) live[k++] = live[i];
      nlive = k;
    }
    /* A convolution whose fused residual dies with it writes over the residual when its
     * algorithm allows (sn_conv_residual_in_place_ok): the residual's interval becomes this
     * layer's. */
    if (reuse && l->fused_res >= 0 && net->layers[l->fused_res].alias == l->fused_res &&
        last[l->fused_res] == j && l->in[0] != l->fused_res && !strcmp(l->ops->kind, "conv")) {
      const sn_shape *s = sn_layer_in_shape(net, l, 0);
      sn_conv_geom g;
      int r = l->fused_res, found = -1;
      for (int i = 0; i < nlive; ++i)
        if (live[i].off == offs[r] && live[i].size == size) found = i;
      if (found >= 0 &&
          sn_conv_geom_init(&g, &net->opts, n, s->h, s->w, s->c, l->kh, l->kw, l->sh, l->sw, l->pt,
                            l->pl, l->pb, l->pr, l->filters) == 0 &&
          (size_t)g.oh * g.ow * g.cout == sn_shape_size(net->layers[r].out) &&
          sn_conv_residual_in_place_ok(&g)) {
        offs[j] = offs[r];
        live[found].end = last[j];
        continue;
      }
    }
    const size_t off = first_fit(live, nlive, size);
    offs[j] = off;
    live[nlive++] = (interval){off, size, last[j]};
    if (off + size > top) top = off + size;
  }
  free(last);
  free(live);
  return top;
}

/* n floats (at least one) at a 64-byte boundary. Activation offsets in the arena are multiples
 * of 16 floats, so with an aligned base every tensor starts on a cache line and the kernels'
 * 16-float vectors never straddle two lines (a malloc'd block of this size sits 16 bytes past a
 * page boundary: every vector load and store of an activation was split).
 * Released with free(). (Advising the training arena as transparent huge pages - the kernel's
 * default here is "madvise" - measured no faster in paired runs: resnet50 b16 training step
 * time ratio 1.07 [q1 1.00, q3 1.11], resnet20 b128 1.00.) */
float *sn_alloc_floats(size_t n) {
  size_t bytes = ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes);
}

/* Training, SN_FUSE_GRAD: an add's inputs take its gradient by sharing its buffer instead of
 * receiving copies. The add's backward masks its dy in place by its fused ReLU's output (one
 * pass), and then the buffer holds the gradient of:
 *   - an input batch norm (or convolution: V2's branches end in one) read by nothing else (a
 *     residual branch's last layer, or the projection shortcut's): it reads the buffer in its
 *     own backward;
 *   - an input add whose last consumer this add is (the identity shortcut): the add's other
 *     consumers (the next block's first convolution) accumulate into the buffer when their
 *     backward runs, which must come after every layer reading the buffer (their indices
 *     are below those layers'), and that add's own backward then masks it in place in turn.
 * So a stage of identity blocks passes one buffer down, and each block saves the masked copies
 * (two passes over the tensor, one of which wrote it). Adds are visited from the last one down,
 * so an add's buffer is final when its inputs take it. own[k]: the layer whose buffer holds layer
 * k's gradient (k itself unless shared). */
static void share_add_grads(sn_net *net, int *own) {
  for (int j = net->nlayers - 1; j >= 0; --j) {
    sn_layer *l = &net->layers[j];
    if (l->skip || strcmp(l->ops->kind, "add") || l->in[0] == l->in[1]) continue;
    int first_reader = net->nlayers; /* lowest index of a layer reading the buffer */
    for (int i = 0; i < 2; ++i) {
      const int p = l->in[i];
      if (p < 0 || net->feature == p || net->output == p) continue;
      sn_layer *pl = &net->layers[p];
      if (pl->skip || pl->fused_relu || (strcmp(pl->ops->kind, "bn") && strcmp(pl->ops->kind, "conv")) ||
          single_consumer_of(net, p, p + 1) != j)
        continue;
      own[p] = own[j];
      l->shared_in |= 1 << i;
      if (p < first_reader) first_reader = p;
    }
    for (int i = 0; i < 2; ++i) {
      const int p = l->in[i];
      if (p < 0 || (l->shared_in >> i & 1) || net->feature == p || net->output == p) continue;
      sn_layer *pl = &net->layers[p];
      if (pl->skip || strcmp(pl->ops->kind, "add")) continue;
      int ok = 1; /* j is p's last consumer; the others run their backward after the readers */
      for (int c = p + 1; c < net->nlayers && ok; ++c) {
        const sn_layer *cl = &net->layers[c];
        if (c == j || cl->skip) continue;
        for (int k = 0; k < cl->nin; ++k)
          if (cl->in[k] == p && (c > j || c > first_reader)) ok = 0;
      }
      if (!ok) continue;
      own[p] = own[j];
      l->shared_in |= 1 << i;
    }
  }
}

/* Training: offsets of the gradient buffers (dy) by their lifetimes in the backward pass, which
 * visits layer k at time L-1-k. A buffer (a layer's, or a group sharing one: share_add_grads) is
 * live from its first write - the backward of its highest consumer, or before the backward for
 * the network output (the loss gradient) - to the backward of its lowest member, which reads
 * it while writing its input's buffer: buffers live at the same time never overlap, and a buffer
 * may take the place of one whose last reader ran strictly earlier (first fit). Every first
 * writer overwrites its buffer (later ones add; an unreachable layer's is zeroed), so stale
 * contents are never read. Returns the floats needed; doffs[k] for every run layer k. */
static size_t plan_grad_offsets(sn_net *net, int n, int share, size_t *doffs) {
  const int L = net->nlayers;
  int *own = malloc((size_t)L * sizeof *own), *start = malloc((size_t)L * sizeof *start);
  int *end = malloc((size_t)L * sizeof *end), *order = malloc((size_t)L * sizeof *order);
  interval *live = malloc((size_t)L * sizeof *live);
  size_t *goff = malloc((size_t)L * sizeof *goff);
  size_t top = 0;
  if (!own || !start || !end || !order || !live || !goff) {
    top = (size_t)-1;
    goto done;
  }
  for (int j = 0; j < L; ++j) {
    own[j] = j;
    net->layers[j].shared_in = 0;
  }
  if (share) share_add_grads(net, own);
  for (int j = 0; j < L; ++j) start[j] = L, end[j] = -2;
  for (int j = 0; j < L; ++j) { /* j's buffer is first written when its highest consumer runs */
    if (net->layers[j].skip) continue;
    int last = j; /* no consumer: zeroed at its own backward */
    for (int c = j + 1; c < L; ++c) {
      const sn_layer *cl = &net->layers[c];
      if (cl->skip) continue;
      for (int i = 0; i < cl->nin; ++i)
        if (cl->in[i] == j) last = c;
    }
    const int o = own[j], w = j == net->output ? -1 : L - 1 - last, r = L - 1 - j;
    if (w < start[o]) start[o] = w;
    if (r > end[o]) end[o] = r;
  }
  int ng = 0;
  for (int j = 0; j < L; ++j)
    if (!net->layers[j].skip && own[j] == j) order[ng++] = j;
  for (int a = 1; a < ng; ++a) /* by first write */
    for (int b = a; b > 0 && start[order[b]] < start[order[b - 1]]; --b) {
      int t = order[b];
      order[b] = order[b - 1];
      order[b - 1] = t;
    }
  int nlive = 0;
  for (int gi = 0; gi < ng; ++gi) {
    const int o = order[gi];
    const size_t size = ((size_t)n * sn_shape_size(net->layers[o].out) + 15) & ~(size_t)15;
    int k = 0;
    for (int i = 0; i < nlive; ++i)
      if (live[i].end >= start[o]) live[k++] = live[i];
    nlive = k;
    const size_t off = first_fit(live, nlive, size);
    goff[o] = off;
    live[nlive++] = (interval){off, size, end[o]};
    if (off + size > top) top = off + size;
  }
  for (int j = 0; j < L; ++j) doffs[j] = net->layers[j].skip ? 0 : goff[own[j]];
done:
  free(own);
  free(start);
  free(end);
  free(order);
  free(live);
  free(goff);
  return top;
}

static size_t layer_ws(const sn_net *net, const sn_layer *l, int n, int training) {
  return l->ops->workspace ? l->ops->workspace(net, l, n, training) : 0;
}


sn_status sn_net_plan(sn_net *net, int max_batch, int training) {
  /* SN_FUSE=mask restricts the fusions (docs/cli.md): for A/B measurements and bug isolation */
  const char *e = getenv("SN_FUSE");
  const int mask = e && e[0] ? (int)strtol(e, NULL, 0) & SN_FUSE_ALL : SN_FUSE_ALL;
  return sn_net_plan_fused(net, max_batch, training, mask);
}

sn_status sn_net_plan_fused(sn_net *net, int max_batch, int training, int fuse_mask) {
  if (max_batch <= 0) return sn_error_set(SN_ERR_INVALID, "%s: batch %d must be positive", net->arch, max_batch);
  free_plan(net);
  /* Reset wiring changes of an earlier inference plan by rebuilding the graph. */
  if (net->nlayers) {
    sn_net tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = net->cfg;
    memcpy(tmp.arch, net->arch, sizeof tmp.arch);
    tmp.cfg.arch = tmp.arch;
    tmp.feature = -1;
    sn_status s = sn_models_build(&tmp);
    if (s != SN_OK) return s;
    free(net->layers);
    free(tmp.params);
    net->layers = tmp.layers;
    net->nlayers = tmp.nlayers;
    net->layers_cap = tmp.layers_cap;
    net->output = tmp.output;
    net->feature = tmp.feature;
  }
  net->training = training;
  net->max_batch = max_batch;
  if (!training) fuse_for_inference(net, fuse_mask);
  else fuse_for_training(net, fuse_mask);

  size_t *offs = calloc(net->nlayers > 0 ? (size_t)net->nlayers : 1, sizeof *offs);
  if (!offs) return sn_error_set(SN_ERR_NOMEM, "%s: out of memory planning", net->arch);
  size_t total = plan_offsets(net, max_batch, offs, !training);
  size_t act = total;
  size_t *doffs = NULL;
  if (training) { /* gradients, by their lifetimes in the backward pass */
    doffs = calloc((size_t)net->nlayers, sizeof *doffs);
    size_t g = doffs ? plan_grad_offsets(net, max_batch, (fuse_mask & SN_FUSE_GRAD) != 0, doffs)
                     : (size_t)-1;
    if (g == (size_t)-1) {
      free(offs);
      free(doffs);
      return sn_error_set(SN_ERR_NOMEM, "%s: out of memory planning", net->arch);
    }
    total += g;
  }
  size_t imax = 0, ws = 0, stats = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip) continue;
    size_t w = layer_ws(net, l, max_batch, training);
    if (w > ws) ws = w;
    if (training && (!strcmp(l->ops->kind, "maxpool") || !strcmp(l->ops->kind, "gmp")))
      imax += (size_t)max_batch * sn_shape_size(l->out);
    if (!strcmp(l->ops->kind, "bn")) stats += 6 * (size_t)l->out.c;
  }
  net->arena = sn_alloc_floats(total);
  net->ws = sn_alloc_floats(ws);
  net->iarena = malloc((imax ? imax : 1) * sizeof(int32_t));
  net->stats = malloc((stats ? stats : 1) * sizeof(double));
  net->stats_n = stats;
  net->ws_n = ws;
  net->arena_n = total;
  if (!net->arena || !net->ws || !net->iarena || !net->stats) {
    free(offs);
    free(doffs);
    free_plan(net);
    return sn_error_set(SN_ERR_NOMEM,
                        "%s: cannot allocate %.1f MiB of activations for batch %d",
                        net->arch, (double)(total + ws) * 4.0 / 1048576.0, max_batch);
  }
  size_t ioff = 0, soff = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip) continue;
    l->y = net->arena + offs[j];
    if (training) l->dy = net->arena + act + doffs[j];
    if (training && (!strcmp(l->ops->kind, "maxpool") || !strcmp(l->ops->kind, "gmp"))) {
      l->argmax = net->iarena + ioff;
      ioff += (size_t)max_batch * sn_shape_size(l->out);
    }
    if (!strcmp(l->ops->kind, "bn")) {
      l->mean = (float *)(net->stats + soff);
      l->invstd = l->mean + l->out.c;
      soff += 6 * (size_t)l->out.c;
    }
  }
  free(offs);
  free(doffs);
  if (training) {
    if (!net->grads) net->grads = calloc(net->ntrainable ? net->ntrainable : 1, sizeof(float));
    if (!net->momentum) net->momentum = calloc(net->ntrainable ? net->ntrainable : 1, sizeof(float));
    if (!net->grads || !net->momentum) {
      free_plan(net);
      return sn_error_set(SN_ERR_NOMEM, "%s: cannot allocate gradients", net->arch);
    }
  }
  const char *prof = getenv("SN_PROFILE");
  if (prof && prof[0] && strcmp(prof, "0") != 0) /* training: forward and backward times */
    net->prof = calloc((size_t)net->nlayers * (training ? 2 : 1), sizeof *net->prof);
  net->planned = 1;
  return sn_net_refresh(net);
}

/* The layer's prepared convolution for geometry g (packed at the first call, repacked after),
 * and a workspace large enough for it (the plan's contents are scratch: not copied). */
sn_status sn_layer_prepare_impl(sn_net *net, sn_layer *l, const sn_conv_geom *g, const float *w,
                                const float *b) {
  if (l->impl) {
    sn_conv_impl_update(l->impl, w, b);
    return SN_OK;
  }
  if (sn_conv_prepare(g, w, b, &l->impl) != 0)
    return sn_error_set(SN_ERR_NOMEM, "layer %s: cannot prepare convolution", l->name);
  size_t need = sn_conv_impl_workspace(l->impl);
  if (need > net->ws_n) {
    float *ws = sn_alloc_floats(need);
    if (!ws) return sn_error_set(SN_ERR_NOMEM, "layer %s: cannot allocate workspace", l->name);
    free(net->ws);
    net->ws = ws;
    net->ws_n = need;
  }
  return SN_OK;
}

/* Derives folded/prepared inference weights from the parameter block. */
sn_status sn_net_refresh(sn_net *net) {
  if (!net->planned || net->training) return SN_OK;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip) continue;
    sn_status s = SN_OK;
    if (!strcmp(l->ops->kind, "conv")) s = sn_conv_layer_prepare(net, l, net->max_batch);
    else if (!strcmp(l->ops->kind, "bn")) s = sn_bn_layer_prepare(net, l);
    else if (!strcmp(l->ops->kind, "dense")) s = sn_dense_layer_prepare(net, l);
    if (s != SN_OK) return s;
  }
  return SN_OK;
}

sn_status sn_net_forward(sn_net *net, const float *x, int n, float *out) {
  if (!net->planned || net->training)
    return sn_error_set(SN_ERR_INVALID, "%s: sn_net_forward needs an inference plan (sn_net_plan(net, batch, 0))", net->arch);
  if (n <= 0 || n > net->max_batch)
    return sn_error_set(SN_ERR_INVALID, "%s: batch %d outside the planned range 1..%d", net->arch, n, net->max_batch);
  net->input = x;
  net->last_n = n;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->skip || !l->ops->forward) continue;
    double t0 = net->prof ? omp_get_wtime() : 0;
    l->ops->forward(net, l, n, 0);
    if (net->prof) net->prof[j] += omp_get_wtime() - t0;
  }
  if (net->prof) net->prof_passes++;
  const sn_layer *o = &net->layers[net->layers[net->output].alias];
  if (out) memcpy(out, o->y, (size_t)n * sn_shape_size(net->layers[net->output].out) * sizeof(float));
  net->input = NULL;
  return SN_OK;
}
