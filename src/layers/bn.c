/* bn.c - batch normalization layer (per channel over N*H*W), training and inference.
 * Moving statistics follow the network's convention: torch (running = (1-p)*running + p*batch,
 * unbiased variance) or Keras (moving = moving*m + batch*(1-m), biased variance). With a
 * communicator and sync_bn, the batch statistics and the backward sums are summed over the
 * communicator, or over the net's BN group (sn_net_set_bn_comm). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../net_impl.h"

static sn_status bn_shape(sn_net *net, sn_layer *l) {
  l->out = *sn_layer_in_shape(net, l, 0);
  return SN_OK;
}

static sn_status bn_params(sn_net *net, sn_layer *l) {
  sn_status s = SN_OK;
  for (int r = SN_ROLE_GAMMA; r <= SN_ROLE_MOVING_VAR && s == SN_OK; ++r)
    s = sn_net_add_param(net, l, (sn_param_role)r, 1, &l->out.c);
  return s;
}

static size_t bn_workspace(const sn_net *net, const sn_layer *l, int n, int training) {
  if (!training) return 0;
  /* 6C+2 doubles of sums, then an input-sized buffer for accumulating dx */
  return 2 * (6 * (size_t)l->out.c + 2) + (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0));
}

/* Training: the statistics of the last forward, mean and invstd, then (fuse.into_conv) the scale
 * gamma * invstd: C floats each, in the room of 6C doubles. */
static void bn_state(sn_layer *l, int n, int training, sn_plan_arena *a) {
  (void)n;
  (void)training;
  double *d = sn_plan_doubles(a, 6 * (size_t)l->out.c);
  l->mean = (float *)d;
  l->invstd = d ? l->mean + l->out.c : NULL;
}

/* Inference: the scale and shift of sn_bn_affine. */
static sn_status bn_prepare(sn_net *net, sn_layer *l) {
  int c = l->out.c;
  if (!l->fold) l->fold = malloc(2 * (size_t)c * sizeof(float));
  if (!l->fold) return sn_error_set(SN_ERR_NOMEM, "layer %s: out of memory", l->name);
  sn_bn_fold(sn_param_data(net, l, 0), sn_param_data(net, l, 1), sn_param_data(net, l, 2),
             sn_param_data(net, l, 3), l->eps, c, l->fold, l->fold + c);
  return SN_OK;
}

void sn_bn_layer_channel(const sn_net *net, const sn_layer *l, int k, double *mean, double *s,
                         double *beta) {
  const float *g = sn_param_data(net, l, 0), *b = sn_param_data(net, l, 1);
  const float *m = sn_param_data(net, l, 2), *v = sn_param_data(net, l, 3);
  *s = (double)g[k] / sqrt((double)v[k] + (double)l->eps);
  *mean = (double)m[k];
  *beta = (double)b[k];
}

sn_conv_in sn_bn_layer_input_map(const sn_net *net, const sn_layer *l, int training) {
  const int c = l->out.c;
  if (!training) {
    const sn_conv_in in = {l->fold, l->fold + c, l->fuse.relu, NULL}; /* bn_prepare's */
    return in;
  }
  /* the batch statistics and the scale bn_forward computed for the convolution */
  const sn_conv_in in = {l->invstd + c, sn_param_data(net, l, 1), l->fuse.relu, l->mean};
  return in;
}

/* The communicator batch statistics are summed over (sync BN, grouped or not), or NULL: local. */
static sn_comm *bn_comm(const sn_net *net) {
  sn_comm *c = net->bn_comm ? net->bn_comm : net->comm;
  return net->sync_bn && c && sn_comm_size(c) > 1 ? c : NULL;
}

static sn_status bn_forward(sn_net *net, sn_layer *l, int n, int training) {
  const float *x = sn_layer_input(net, l, 0);
  int c = l->out.c;
  size_t rows = (size_t)n * l->out.h * l->out.w;
  if (!training) {
    sn_bn_affine(net->opts.portable, x, rows, c, l->fold, l->fold + c, l->fuse.relu, l->y);
    return SN_OK;
  }
  double *sum = (double *)net->ws, *sumsq = sum + c;
  sn_bn_sums(net->opts.portable, x, rows, c, sum, sumsq);
  sum[2 * c] = (double)rows;
  if (bn_comm(net)) {
    sn_status s = sn_comm_allreduce(bn_comm(net), sum, 2 * (size_t)c + 1, SN_F64, SN_SUM);
    if (s != SN_OK) return s;
  }
  double m = sum[2 * c];
  const sn_train_config *tc = net->tcfg;
  float *gamma = sn_param_data(net, l, 0), *beta = sn_param_data(net, l, 1);
  float *rmean = sn_param_data(net, l, 2), *rvar = sn_param_data(net, l, 3);
  int keras = net->bn_style == SN_STYLE_KERAS;
  double p = tc && tc->bn_momentum >= 0 ? tc->bn_momentum : (keras ? 0.99 : 0.1);
  for (int k = 0; k < c; ++k) {
    double mu = m > 0 ? sum[k] / m : 0.0;
    double var = m > 0 ? sumsq[k] / m - mu * mu : 0.0;
    if (var < 0) var = 0;
    l->mean[k] = (float)mu;
    l->invstd[k] = (float)(1.0 / sqrt(var + (double)l->eps));
    if (keras) {
      rmean[k] = (float)((double)rmean[k] * p + mu * (1.0 - p));
      rvar[k] = (float)((double)rvar[k] * p + var * (1.0 - p));
    } else {
      double unbiased = m > 1 ? var * m / (m - 1) : var;
      rmean[k] = (float)((1.0 - p) * (double)rmean[k] + p * mu);
      rvar[k] = (float)((1.0 - p) * (double)rvar[k] + p * unbiased);
    }
  }
  const sn_layer *conv = l->fuse.into_conv ? &net->layers[l->fuse.into_conv - 1] : NULL;
  if (conv && conv->ops->input_map_ok(net, conv, n, 1)) {
    /* the convolution normalizes its input copies (fuse.c fuse_bn_into_convs) with this scale,
     * rounded as normalize() rounds it */
    float *scale = l->invstd + c;
    for (int k = 0; k < c; ++k)
      scale[k] = (float)((double)gamma[k] * l->invstd[k]);
  } else if (l->fuse.into_add) { /* writes the consumer add's output (fuse.c fuse_bn_into_add) */
    sn_layer *a = &net->layers[l->fuse.into_add - 1];
    const int self = (int)(l - net->layers);
    sn_bn_normalize_add(net->opts.portable, x, rows, c, l->mean, l->invstd, gamma, beta,
                        sn_layer_input(net, a, a->in[0] == self ? 1 : 0), a->fuse.relu, a->y);
  } else if (l->fuse.relu) {
    sn_bn_normalize_relu(net->opts.portable, x, rows, c, l->mean, l->invstd, gamma, beta, l->y);
  } else {
    sn_bn_normalize(net->opts.portable, x, rows, c, l->mean, l->invstd, gamma, beta, l->y);
  }
  return SN_OK;
}

static sn_status bn_backward(sn_net *net, sn_layer *l, int n) {
  const float *x = sn_layer_input(net, l, 0);
  int c = l->out.c;
  size_t rows = (size_t)n * l->out.h * l->out.w;
  double *sdy = (double *)net->ws, *sdyx = sdy + c, *count = sdy + 2 * c;
  float *tmp = net->ws + 2 * (6 * (size_t)c + 2);
  /* With a fused ReLU, l->y = relu(bn(x)) (src/kernels/relu.h) and l->dy is the gradient w.r.t. it:
   * the kernels use dy where y > 0, else 0, recomputing y > 0 from x as the forward computed y (the
   * parameters change only after the step) rather than reading y. */
  const float *gamma = sn_param_data(net, l, 0), *beta = sn_param_data(net, l, 1);
  if (l->fuse.relu)
    sn_bn_backward_sums_relu_x(net->opts.portable, x, l->dy, rows, c, l->mean, l->invstd, gamma,
                               beta, sdy, sdyx);
  else
    sn_bn_backward_sums(net->opts.portable, x, l->dy, rows, c, l->mean, sdy, sdyx);
  float *dgamma = sn_param_grad(net, l, 0), *dbeta = sn_param_grad(net, l, 1);
  for (int k = 0; k < c; ++k) { /* parameter gradients stay local: gradient sync sums them */
    dgamma[k] = (float)(sdyx[k] * (double)l->invstd[k]);
    dbeta[k] = (float)sdy[k];
  }
  count[0] = (double)rows;
  if (bn_comm(net)) {
    sn_status s = sn_comm_allreduce(bn_comm(net), sdy, 2 * (size_t)c + 1, SN_F64, SN_SUM);
    if (s != SN_OK) return s;
  }
  int acc = 0;
  float *dx = sn_layer_input_grad(net, l, 0, &acc);
  if (!dx) return SN_OK;
  if (l->fuse.relu)
    sn_bn_backward_dx_relu_x(net->opts.portable, x, l->dy, rows, c, l->mean, l->invstd, gamma, beta,
                             sdy, sdyx, count[0], acc ? tmp : dx);
  else
    sn_bn_backward_dx(net->opts.portable, x, l->dy, rows, c, l->mean, l->invstd, gamma, sdy, sdyx,
                      count[0], acc ? tmp : dx);
  if (acc) sn_net_accumulate(dx, tmp, rows * (size_t)c);
  return SN_OK;
}

const sn_layer_ops sn_bn_ops = {
    .kind = "bn",
    .keras_type = "BatchNormalization",
    .type = SN_LAYER_BN,
    .caps = SN_CAP_RELU | SN_CAP_RELU_TRAIN | SN_CAP_SHARE_DY,
    .shape = bn_shape,
    .params = bn_params,
    .workspace = bn_workspace,
    .state = bn_state,
    .prepare = bn_prepare,
    .forward = bn_forward,
    .backward = bn_backward,
};
