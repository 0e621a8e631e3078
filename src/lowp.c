/* lowp.c - low-precision inference plans (bf16, int8): the activation scales a net keeps, which
 * layers of a plan run in low precision, and how the int8 plan stores its tensors.
 *
 * Layers: every convolution and dense layer, except those kept in float32
 * (sn_engine_options.fp32_layers: the stem - the first convolution - and the dense layers by
 * default). Pooling, element-wise layers, unfused batch norms and the softmax stay float32.
 *
 * Tensors of an int8 plan: a convolution quantizes its input with the input's scale as it reads
 * it (conv_lowp.c). A max pool read only by int8 convolutions as their input, with one scale and
 * zero point 0, stores its output as uint8 codes of that scale (the codes its readers would have
 * made). A convolution whose output goes through its fused ReLU and is read only by int8
 * convolutions (as their input or as their fused residual) or by such a max pool stores it as
 * uint8 with that scale, zero point 0 (the pool then takes the maximum of the codes): the next
 * convolution reads the bytes as they are, and the memory and traffic of the tensor shrink
 * fourfold. Its readers' scales are calibrated on that same tensor, so they agree; where they do
 * not (a scale set by hand), or a reader is anything else (a pool, the network output, a batch norm
 * applied as an input map), the output stays float32.
 *
 * Pairs (sn_lowp_pair, after the convolutions are prepared): a float32 output that only one
 * int8 convolution reads, as its residual, from a 1x1 int8 convolution the kernels can pair with
 * it (sn_conv_lp_pair_ok), is computed inside the reader's kernel call and never stored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

int sn_lowp_scalable(const sn_layer *l) {
  return l->ops->type == SN_LAYER_CONV || l->ops->type == SN_LAYER_DENSE;
}

/* ------------------------------------------------------------ scales */

int sn_net_num_act_scales(const sn_net *net) {
  int n = 0;
  for (int j = 0; j < net->nlayers; ++j)
    n += sn_lowp_scalable(&net->layers[j]);
  return n;
}

/* The layer index of scale i, or -1. */
static int scale_layer(const sn_net *net, int i) {
  for (int j = 0; j < net->nlayers; ++j)
    if (sn_lowp_scalable(&net->layers[j]) && i-- == 0) return j;
  return -1;
}

/* Zero point and scale of a threshold t for an input with minimum mn. */
static void derive(float t, float mn, int *zp, float *scale) {
  *zp = mn < 0 ? 128 : 0;
  *scale = t / (*zp ? 127.0f : 255.0f);
}

sn_status sn_net_act_scale(const sn_net *net, int i, sn_act_scale *out) {
  const int j = i >= 0 ? scale_layer(net, i) : -1;
  if (j < 0)
    return sn_error_set(SN_ERR_INVALID, "%s: activation scale %d out of range [0, %d)", net->arch,
                        i, sn_net_num_act_scales(net));
  memset(out, 0, sizeof *out);
  out->layer = net->layers[j].name;
  if (!net->act || !(net->act[3 * j] > 0)) return SN_OK;
  out->threshold = net->act[3 * j];
  out->min = net->act[3 * j + 1];
  out->max = net->act[3 * j + 2];
  derive(out->threshold, out->min, &out->zero_point, &out->scale);
  return SN_OK;
}

sn_status sn_net_set_act_scale(sn_net *net, const char *layer, float threshold, float min,
                               float max) {
  int j = -1;
  for (int k = 0; k < net->nlayers && j < 0; ++k)
    if (sn_lowp_scalable(&net->layers[k]) && !strcmp(net->layers[k].name, layer)) j = k;
  if (j < 0)
    return sn_error_set(SN_ERR_NOTFOUND, "%s: no convolution or dense layer named %s", net->arch,
                        layer);
  if (!isfinite(threshold) || !(threshold > 0) || !isfinite(min) || !isfinite(max) || min > max)
    return sn_error_set(SN_ERR_INVALID,
                        "layer %s: activation threshold %g with range [%g, %g] (the threshold "
                        "must be finite and positive, the range finite)",
                        layer, threshold, min, max);
  if (!net->act) {
    net->act = calloc(3 * (size_t)net->nlayers, sizeof *net->act);
    if (!net->act) return sn_error_set(SN_ERR_NOMEM, "%s: out of memory for scales", net->arch);
  }
  net->act[3 * j] = threshold;
  net->act[3 * j + 1] = min;
  net->act[3 * j + 2] = max;
  return SN_OK;
}

/* ------------------------------------------------------------ the plan */

/* The convolution reading the network input: the first convolution. */
static int stem_index(const sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j)
    if (net->layers[j].ops->type == SN_LAYER_CONV) return j;
  return -1;
}

/* The scale of l's input (act set), zero point 0 and 128 alike. */
static float input_scale(const sn_net *net, int j, int *zp) {
  float s;
  derive(net->act[3 * j], net->act[3 * j + 1], zp, &s);
  return s;
}

/* 1 if every reader of layer p's output is an int8 convolution that reads it as its input
 * (without an input map) with scale s, or as its fused residual. */
static int readers_take_u8(const sn_net *net, int p, float *s) {
  int readers = 0;
  *s = 0;
  if (net->output == p || net->feature == p) return 0;
  for (int c = p + 1; c < net->nlayers; ++c) {
    const sn_layer *l = &net->layers[c];
    if (l->fuse.skip) continue;
    const int as_input = (l->nin > 0 && l->in[0] == p) || (l->nin > 1 && l->in[1] == p);
    if (!as_input && l->fuse.residual != p) continue;
    readers++;
    if (l->ops->type == SN_LAYER_MAXPOOL && l->out_u8 && as_input) { /* codes pooled as bytes */
      if (*s > 0 && l->out_scale != *s) return 0;
      *s = l->out_scale;
      continue;
    }
    if (!l->lp || l->ops->type != SN_LAYER_CONV) return 0;
    if (!as_input) continue; /* a residual is read with p's own scale */
    if (l->nin != 1 || l->fuse.in_bn >= 0 || l->fuse.residual == p) return 0;
    int zp;
    const float sc = input_scale(net, c, &zp);
    if (zp || (*s > 0 && sc != *s)) return 0;
    *s = sc;
  }
  return readers > 0 && *s > 0;
}

sn_status sn_lowp_plan(sn_net *net) {
  const sn_precision p = net->opts.precision;
  if (p == SN_PRECISION_FP32) return SN_OK;
  if (net->training)
    return sn_error_set(SN_ERR_INVALID, "%s: precision %s is for inference; training runs in fp32",
                        net->arch, sn_precision_name(p));
  const sn_kernel_opts ko = sn_kernel_opts_of(&net->opts);
  const unsigned f = sn_kernel_features(&ko);
  if (!sn_lp_supported(p, f)) {
    char have[96];
    return sn_error_set(SN_ERR_INVALID, "%s: precision %s needs %s; usable here: %s", net->arch,
                        sn_precision_name(p),
                        p == SN_PRECISION_BF16 ? "AVX-512 with AVX512-BF16 or AMX-BF16"
                                               : "AVX-512 with AVX512-VNNI or AMX-INT8",
                        sn_cpu_feature_names(f, have, sizeof have));
  }
  const int stem = stem_index(net);
  const unsigned keep = net->opts.fp32_layers;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip || !sn_lowp_scalable(l)) continue;
    if (l->ops->type == SN_LAYER_CONV)
      l->lp = !(j == stem && (keep & SN_FP32_STEM));
    else
      l->lp = !(keep & SN_FP32_CLASSIFIER);
    if (l->lp && p == SN_PRECISION_INT8 && !(net->act && net->act[3 * j] > 0))
      return sn_error_set(SN_ERR_INVALID,
                          "layer %s: no int8 activation scale (calibrate the net, e.g. shardnet "
                          "calibrate, and load the scales file)",
                          l->name);
  }
  if (p != SN_PRECISION_INT8) return SN_OK;
  for (int j = 0; j < net->nlayers; ++j) { /* max pools first: a convolution before one asks */
    sn_layer *l = &net->layers[j];
    float s;
    if (!l->fuse.skip && l->ops->type == SN_LAYER_MAXPOOL && readers_take_u8(net, j, &s)) {
      l->out_u8 = 1;
      l->out_scale = s;
    }
  }
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    float s;
    if (l->lp && l->ops->type == SN_LAYER_CONV && l->fuse.relu && readers_take_u8(net, j, &s)) {
      l->out_u8 = 1;
      l->out_scale = s;
    }
  }
  return SN_OK;
}

sn_conv_lp sn_lowp_conv_params(const sn_net *net, const sn_layer *l) {
  sn_conv_lp q;
  memset(&q, 0, sizeof q);
  q.type = net->opts.precision;
  if (q.type != SN_PRECISION_INT8) return q;
  const int j = (int)(l - net->layers);
  q.in_scale = input_scale(net, j, &q.in_zp);
  const sn_layer *in = l->in[0] >= 0 ? &net->layers[l->in[0]] : NULL;
  q.in_u8 = in && in->out_u8 && !(l->ops->type == SN_LAYER_CONV && l->fuse.in_bn >= 0);
  q.out_u8 = l->out_u8;
  q.out_scale = l->out_scale;
  const sn_layer *r = l->ops->type == SN_LAYER_CONV && l->fuse.residual >= 0
                          ? &net->layers[l->fuse.residual]
                          : NULL;
  q.res_u8 = r && r->out_u8;
  q.res_scale = r ? r->out_scale : 0;
  return q;
}

/* ------------------------------------------------------------ pairs */

/* The readers of layer p's output among the layers that run: as an input or a fused residual. */
static int readers_of(const sn_net *net, int p) {
  int readers = 0;
  for (int c = 0; c < net->nlayers; ++c) {
    const sn_layer *l = &net->layers[c];
    if (l->fuse.skip || c == p) continue;
    for (int i = 0; i < l->nin; ++i)
      readers += l->in[i] >= 0 && net->layers[l->in[i]].fuse.alias == p;
    readers += l->ops->type == SN_LAYER_CONV && l->fuse.residual >= 0 &&
               net->layers[l->fuse.residual].fuse.alias == p;
  }
  return readers;
}

/* Bytes of layer j's output buffer at the plan's largest batch. */
static size_t out_bytes(const sn_net *net, int j) {
  const sn_layer *l = &net->layers[j];
  return (size_t)net->max_batch * sn_shape_size(l->out) * (l->out_u8 ? 1 : sizeof(float));
}

/* 1 if no layer that runs after p up to c writes into p's input: the pair reads it at c, where
 * the arena may already have given its memory to a later layer's output. */
static int input_kept(const sn_net *net, int p, int c) {
  const int in = net->layers[p].in[0];
  if (in < 0) return 1; /* the network input */
  const uint8_t *a = (const uint8_t *)net->layers[in].y, *ae = a + out_bytes(net, in);
  for (int k = p + 1; k <= c; ++k) {
    const sn_layer *l = &net->layers[k];
    if (l->fuse.skip) continue;
    const uint8_t *b = (const uint8_t *)l->y, *be = b + out_bytes(net, k);
    if (b < ae && a < be) return 0;
  }
  return 1;
}

void sn_lowp_pair(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j)
    net->layers[j].pair = 0;
  if (net->training || net->opts.precision != SN_PRECISION_INT8) return;
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *c = &net->layers[j];
    if (c->fuse.skip || !c->lp || c->ops->type != SN_LAYER_CONV || c->fuse.residual < 0 || !c->impl)
      continue;
    const int r = net->layers[c->fuse.residual].fuse.alias;
    sn_layer *p = &net->layers[r];
    if (r >= j || !p->lp || p->ops->type != SN_LAYER_CONV || !p->impl || p->fuse.relu ||
        p->fuse.residual != -2 || p->fuse.in_bn >= 0 || p->out_u8 || p->pair)
      continue;
    if (net->layers[net->output].fuse.alias == r ||
        (net->feature >= 0 && net->layers[net->feature].fuse.alias == r))
      continue;
    if (readers_of(net, r) == 1 && input_kept(net, r, j) && sn_conv_lp_pair_ok(c->impl, p->impl))
      p->pair = j + 1;
  }
}
