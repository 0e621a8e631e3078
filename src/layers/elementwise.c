/* elementwise.c - ReLU, residual add, zero padding and flatten layers. */
#include <string.h>

#include "../net_impl.h"

static size_t acc_workspace(const sn_net *net, const sn_layer *l, int n, int training) {
  return training ? (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0)) : 0;
}

/* Passes g (the gradient w.r.t. input i, n*size floats) to input i, adding if needed. */
static void give_grad(sn_net *net, sn_layer *l, int i, const float *g, size_t count) {
  int acc = 0;
  float *dx = sn_layer_input_grad(net, l, i, &acc);
  if (!dx) return;
  if (acc)
    sn_net_accumulate(dx, g, count);
  else if (dx != g)
    memcpy(dx, g, count * sizeof(float));
}

/* ---- ReLU */
static sn_status same_shape(sn_net *net, sn_layer *l) {
  l->out = *sn_layer_in_shape(net, l, 0);
  return SN_OK;
}
static sn_status relu_forward(sn_net *net, sn_layer *l, int n, int training) {
  (void)training;
  sn_relu_forward(net->opts.portable, sn_layer_input(net, l, 0), (size_t)n * sn_shape_size(l->out),
                  l->y);
  return SN_OK;
}
/* Passes the gradient of input i of a layer whose output y = relu(v): dy where y > 0, else 0,
 * written (or added) straight into the input's gradient buffer. */
static void give_relu_grad(sn_net *net, sn_layer *l, int i, size_t count) {
  int acc = 0;
  float *dx = sn_layer_input_grad(net, l, i, &acc);
  if (!dx) return;
  if (acc)
    sn_relu_backward_acc(net->opts.portable, l->y, l->dy, count, dx);
  else
    sn_relu_backward(net->opts.portable, l->y, l->dy, count, dx);
}
static sn_status relu_backward(sn_net *net, sn_layer *l, int n) {
  give_relu_grad(net, l, 0, (size_t)n * sn_shape_size(l->out));
  return SN_OK;
}
const sn_layer_ops sn_relu_ops = {
    .kind = "relu",
    .keras_type = "Activation",
    .type = SN_LAYER_RELU,
    .shape = same_shape,
    .forward = relu_forward,
    .backward = relu_backward,
};

/* ---- residual add */
static sn_status add_shape(sn_net *net, sn_layer *l) {
  const sn_shape *a = sn_layer_in_shape(net, l, 0), *b = sn_layer_in_shape(net, l, 1);
  if (a->h != b->h || a->w != b->w || a->c != b->c)
    return sn_error_set(SN_ERR_SHAPE, "layer %s: cannot add (%d, %d, %d) and (%d, %d, %d)", l->name,
                        a->h, a->w, a->c, b->h, b->w, b->c);
  l->out = *a;
  return SN_OK;
}
static sn_status add_forward(sn_net *net, sn_layer *l, int n, int training) {
  if (training && l->fuse.from_bn) /* computed by that batch norm (fuse.c fuse_bn_into_add) */
    return SN_OK;
  sn_add_forward(net->opts.portable, sn_layer_input(net, l, 0), sn_layer_input(net, l, 1),
                 (size_t)n * sn_shape_size(l->out), l->fuse.relu, l->y);
  return SN_OK;
}
static sn_status add_backward(sn_net *net, sn_layer *l, int n) {
  size_t count = (size_t)n * sn_shape_size(l->out);
  int relu = l->fuse.relu;         /* training fusion (fuse.c) */
  if (l->fuse.shared_in && relu) { /* mask in place: the inputs sharing dy read it as is */
    sn_relu_backward(net->opts.portable, l->y, l->dy, count, l->dy);
    relu = 0;
  }
  for (int i = 0; i < 2; ++i) {
    if (l->fuse.shared_in >> i & 1)
      net->layers[l->in[i]].dy_written = 1; /* fuse.c sn_fuse_share_add_grads */
    else if (relu)
      give_relu_grad(net, l, i, count);
    else
      give_grad(net, l, i, l->dy, count);
  }
  return SN_OK;
}
const sn_layer_ops sn_add_ops = {
    .kind = "add",
    .keras_type = "Add",
    .type = SN_LAYER_ADD,
    .caps = SN_CAP_RELU | SN_CAP_RELU_TRAIN,
    .shape = add_shape,
    .forward = add_forward,
    .backward = add_backward,
};

/* ---- zero padding (Keras ZeroPadding2D) */
static sn_status pad_shape(sn_net *net, sn_layer *l) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  l->out = (sn_shape){s->h + l->pt + l->pb, s->w + l->pl + l->pr, s->c};
  return SN_OK;
}
static sn_status pad_forward(sn_net *net, sn_layer *l, int n, int training) {
  (void)training;
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_pad_forward(sn_layer_input(net, l, 0), n, s->h, s->w, s->c, l->pt, l->pl, l->pb, l->pr, l->y);
  return SN_OK;
}
static sn_status pad_backward(sn_net *net, sn_layer *l, int n) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_pad_backward(l->dy, n, s->h, s->w, s->c, l->pt, l->pl, l->pb, l->pr, net->ws);
  give_grad(net, l, 0, net->ws, (size_t)n * sn_shape_size(*s));
  return SN_OK;
}
const sn_layer_ops sn_pad_ops = {
    .kind = "pad",
    .keras_type = "ZeroPadding2D",
    .type = SN_LAYER_PAD,
    .shape = pad_shape,
    .workspace = acc_workspace,
    .forward = pad_forward,
    .backward = pad_backward,
};

/* ---- flatten (NHWC order, as Keras) */
static sn_status flatten_shape(sn_net *net, sn_layer *l) {
  l->out = (sn_shape){1, 1, (int)sn_shape_size(*sn_layer_in_shape(net, l, 0))};
  return SN_OK;
}
static sn_status flatten_forward(sn_net *net, sn_layer *l, int n, int training) {
  (void)training;
  memcpy(l->y, sn_layer_input(net, l, 0), (size_t)n * sn_shape_size(l->out) * sizeof(float));
  return SN_OK;
}
static sn_status flatten_backward(sn_net *net, sn_layer *l, int n) {
  give_grad(net, l, 0, l->dy, (size_t)n * sn_shape_size(l->out));
  return SN_OK;
}
const sn_layer_ops sn_flatten_ops = {
    .kind = "flatten",
    .keras_type = "Flatten",
    .type = SN_LAYER_FLATTEN,
    .shape = flatten_shape,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
