/* conv.c - convolution layer: Keras Conv2D / torch Conv2d, HWIO kernel, optional bias.
 * Inference runs through a prepared sn_conv_impl with batch norm folded in and the bias,
 * residual and ReLU fused into the output pass; in a bf16 or int8 plan (l->lp, lowp.c) the
 * prepared convolution is a low-precision one, whose input, residual and output may be uint8. */
#include <stdlib.h>
#include <string.h>

#include "../net_impl.h"

static int geom(const sn_net *net, const sn_layer *l, int n, sn_conv_geom *g) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  return sn_conv_geom_init(g, &net->opts, n, s->h, s->w, s->c, l->kh, l->kw, l->sh, l->sw, l->pt,
                           l->pl, l->pb, l->pr, l->filters);
}

static sn_status conv_shape(sn_net *net, sn_layer *l) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  int oh = (s->h + l->pt + l->pb - l->kh) / l->sh + 1;
  int ow = (s->w + l->pl + l->pr - l->kw) / l->sw + 1;
  if (l->filters <= 0 || s->h + l->pt + l->pb < l->kh || s->w + l->pl + l->pr < l->kw || oh <= 0 ||
      ow <= 0)
    return sn_error_set(SN_ERR_SHAPE,
                        "layer %s: %dx%d kernel (stride %d, padding %d/%d) does not fit input "
                        "(%d, %d, %d)",
                        l->name, l->kh, l->kw, l->sh, l->pt, l->pb, s->h, s->w, s->c);
  l->out = (sn_shape){oh, ow, l->filters};
  return SN_OK;
}

static sn_status conv_params(sn_net *net, sn_layer *l) {
  const int ks[4] = {l->kh, l->kw, sn_layer_in_shape(net, l, 0)->c, l->filters}; /* HWIO */
  sn_status s = sn_net_add_param(net, l, SN_ROLE_KERNEL, 4, ks);
  if (s == SN_OK && l->use_bias) s = sn_net_add_param(net, l, SN_ROLE_BIAS, 1, &l->filters);
  return s;
}

static size_t conv_workspace(const sn_net *net, const sn_layer *l, int n, int training) {
  sn_conv_geom g;
  geom(net, l, n, &g);
  if (!training) return l->impl ? sn_conv_impl_workspace(l->impl) : sn_conv_forward_workspace(&g);
  size_t f = sn_conv_forward_workspace(&g), b = sn_conv_backward_workspace(&g);
  return (f > b ? f : b) + (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0));
}

/* Folds the following batch norm (if any) and prepares the inference convolution. */
static sn_status conv_prepare(sn_net *net, sn_layer *l) {
  sn_conv_geom g;
  geom(net, l, net->max_batch, &g);
  size_t kn = (size_t)l->kh * l->kw * g.cin * l->filters;
  const float *w = sn_param_data(net, l, 0);
  const float *b = l->use_bias ? sn_param_data(net, l, 1) : NULL;
  if (l->fuse.fold_bn >= 0) {
    const sn_layer *bn = &net->layers[l->fuse.fold_bn];
    if (!l->fold) l->fold = malloc((kn + (size_t)l->filters) * sizeof(float));
    if (!l->fold)
      return sn_error_set(SN_ERR_NOMEM, "layer %s: out of memory folding %s", l->name, bn->name);
    float *fw = l->fold, *fb = l->fold + kn;
    /* w' = s*w, b' = beta + (b - mean)*s, in double. */
    for (int o = 0; o < l->filters; ++o) {
      double mean, s, beta;
      sn_bn_layer_channel(net, bn, o, &mean, &s, &beta);
      fb[o] = (float)(beta + ((b ? (double)b[o] : 0.0) - mean) * s);
      for (size_t i = (size_t)o; i < kn; i += (size_t)l->filters)
        fw[i] = (float)((double)w[i] * s);
    }
    w = fw;
    b = fb;
  }
  if (l->fuse.in_bn >= 0) { /* the input's batch norm, applied as the input is read */
    sn_layer *bn = &net->layers[l->fuse.in_bn];
    sn_status s = bn->ops->prepare(net, bn);
    if (s != SN_OK) return s;
  }
  if (l->lp) return sn_layer_prepare_impl_lp(net, l, &g, w, b);
  return sn_layer_prepare_impl(net, l, &g, w, b);
}

/* Zero padding is added to the convolution's own. */
static int conv_take_pad(sn_layer *l, const sn_layer *pad) {
  l->pt += pad->pt;
  l->pl += pad->pl;
  l->pb += pad->pb;
  l->pr += pad->pr;
  return 1;
}

/* Inference: unpadded 1x1 layers on the packed GEMM (sn_conv_impl_forward_in); training: the
 * direct kernels with zero padding (sn_conv_forward_in / _backward_in). */
static int conv_input_map_ok(const sn_net *net, const sn_layer *l, int n, int training) {
  sn_conv_geom g;
  if (l->nin != 1 || geom(net, l, n, &g) != 0) return 0;
  return training ? sn_conv_train_input_map_ok(&g) : sn_conv_impl_input_map_ok(&g);
}

static int conv_residual_in_place(const sn_net *net, const sn_layer *l, int n) {
  sn_conv_geom g;
  if (geom(net, l, n, &g) != 0 ||
      (size_t)g.oh * g.ow * g.cout != sn_shape_size(net->layers[l->fuse.residual].out))
    return 0;
  if (l->lp) {
    const sn_conv_lp q = sn_lowp_conv_params(net, l);
    return sn_conv_lp_residual_in_place_ok(&g, &q);
  }
  return sn_conv_residual_in_place_ok(&g);
}

/* Training: the batch norm (fuse.into_conv) whose normalize pass this convolution applies to its
 * input for a batch of n, or NULL when the batch norm writes its output and the convolution
 * reads it (the kernels take the map only on some paths). The batch norm asks the same, per
 * call (bn.c). */
static const sn_layer *input_bn(const sn_net *net, const sn_layer *l, int n) {
  if (l->nin != 1 || l->in[0] < 0) return NULL;
  const sn_layer *bn = &net->layers[l->in[0]];
  if (bn->fuse.into_conv != (int)(l - net->layers) + 1) return NULL;
  return conv_input_map_ok(net, l, n, 1) ? bn : NULL;
}

/* The batch norm bn's pass as an input map (bn.c), or nothing for bn NULL. */
static sn_conv_in input_map(const sn_net *net, const sn_layer *bn, int training) {
  const sn_conv_in none = {NULL, NULL, 0, NULL};
  return bn ? sn_bn_layer_input_map(net, bn, training) : none;
}

static sn_status conv_forward(sn_net *net, sn_layer *l, int n, int training) {
  const float *x = sn_layer_input(net, l, 0);
  if (!training) {
    const float *res = l->fuse.residual >= 0
                           ? net->layers[net->layers[l->fuse.residual].fuse.alias].y
                       : l->fuse.residual == -1 ? net->input
                                                : NULL;
    const sn_layer *bn = l->fuse.in_bn >= 0 ? &net->layers[l->fuse.in_bn] : NULL;
    const sn_conv_in in = input_map(net, bn, 0);
    const sn_layer *pr =
        l->fuse.residual >= 0 ? &net->layers[net->layers[l->fuse.residual].fuse.alias] : NULL;
    if (pr && pr->pair == (int)(l - net->layers) + 1 && !net->probe) {
      sn_conv_impl_forward_lp_pair(l->impl, pr->impl, n, x, bn ? &in : NULL,
                                   sn_layer_input(net, pr, 0), l->fuse.relu, l->y, net->ws);
      return SN_OK;
    }
    if (l->lp) /* the tensors' formats are the plan's: x, res and y may be uint8 */
      sn_conv_impl_forward_lp(l->impl, n, x, bn ? &in : NULL, res, l->fuse.relu, l->y, net->ws);
    else
      sn_conv_impl_forward_in(l->impl, n, x, bn ? &in : NULL, res, l->fuse.relu, l->y, net->ws);
    return SN_OK;
  }
  sn_conv_geom g;
  geom(net, l, n, &g);
  const sn_layer *bn = input_bn(net, l, n);
  const sn_conv_in in = input_map(net, bn, 1);
  sn_conv_forward_in(&g, bn ? sn_layer_input(net, bn, 0) : x, bn ? &in : NULL,
                     sn_param_data(net, l, 0), l->use_bias ? sn_param_data(net, l, 1) : NULL, NULL,
                     0, l->y, net->ws);
  return SN_OK;
}

static sn_status conv_backward(sn_net *net, sn_layer *l, int n) {
  sn_conv_geom g;
  geom(net, l, n, &g);
  int acc = 0;
  float *dx = sn_layer_input_grad(net, l, 0, &acc);
  size_t in_n = (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0));
  size_t f = sn_conv_forward_workspace(&g), b = sn_conv_backward_workspace(&g);
  float *tmp = net->ws + (f > b ? f : b);
  const float *x = sn_layer_input(net, l, 0), *w = sn_param_data(net, l, 0);
  float *dw = sn_param_grad(net, l, 0), *db = l->use_bias ? sn_param_grad(net, l, 1) : NULL;
  const sn_layer *bn = input_bn(net, l, n); /* as the forward decided */
  const sn_conv_in in = input_map(net, bn, 1);
  if (bn) x = sn_layer_input(net, bn, 0);
  /* an accumulated dx is added in the kernel's output pass where it can, else through tmp */
  const int in_kernel = dx && acc && sn_conv_backward_accumulates(&g);
  sn_conv_backward_in(&g, x, bn ? &in : NULL, w, l->dy, dx && acc && !in_kernel ? tmp : dx,
                      in_kernel, dw, db, net->ws);
  if (dx && acc && !in_kernel) sn_net_accumulate(dx, tmp, in_n);
  return SN_OK;
}

const sn_layer_ops sn_conv_ops = {
    .kind = "conv",
    .keras_type = "Conv2D",
    .type = SN_LAYER_CONV,
    .caps = SN_CAP_FOLD_BN | SN_CAP_RESIDUAL | SN_CAP_RELU | SN_CAP_SHARE_DY,
    .shape = conv_shape,
    .params = conv_params,
    .workspace = conv_workspace,
    .prepare = conv_prepare,
    .take_pad = conv_take_pad,
    .input_map_ok = conv_input_map_ok,
    .residual_in_place = conv_residual_in_place,
    .forward = conv_forward,
    .backward = conv_backward,
};
