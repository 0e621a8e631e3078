/* dense.c - fully connected layer: y (N, Out) = x (N, In) . W (In, Out) + b. */
#include "../net_impl.h"

static sn_status dense_shape(sn_net *net, sn_layer *l) {
  (void)net;
  if (l->filters <= 0) return sn_error_set(SN_ERR_SHAPE, "layer %s: %d units", l->name, l->filters);
  l->out = (sn_shape){1, 1, l->filters};
  return SN_OK;
}
static size_t dense_workspace(const sn_net *net, const sn_layer *l, int n, int training) {
  return training ? (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0)) : 0;
}
static void dense_forward(sn_net *net, sn_layer *l, int n, int training) {
  (void)training;
  int in = (int)sn_shape_size(*sn_layer_in_shape(net, l, 0));
  sn_dense_forward(sn_layer_input(net, l, 0), sn_param_data(net, l, 0),
                   l->use_bias ? sn_param_data(net, l, 1) : NULL, n, in, l->filters, l->y);
}
static sn_status dense_backward(sn_net *net, sn_layer *l, int n) {
  int in = (int)sn_shape_size(*sn_layer_in_shape(net, l, 0));
  int acc = 0;
  float *dx = sn_layer_input_grad(net, l, 0, &acc);
  sn_dense_backward(sn_layer_input(net, l, 0), sn_param_data(net, l, 0), l->dy, n, in, l->filters,
                    dx ? (acc ? net->ws : dx) : NULL, sn_param_grad(net, l, 0),
                    l->use_bias ? sn_param_grad(net, l, 1) : NULL);
  if (dx && acc) sn_net_accumulate(dx, net->ws, (size_t)n * in);
  return SN_OK;
}
const sn_layer_ops sn_dense_ops = {"dense", "Dense", dense_shape, dense_workspace, dense_forward,
                                   dense_backward};
