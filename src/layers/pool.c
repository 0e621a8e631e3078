/* pool.c - max pool (zero or -inf padding), average pool, global average and max pools. */
#include "../net_impl.h"

static void pgeom(const sn_net *net, const sn_layer *l, int n, sn_pool_geom *g) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_pool_geom_init(g, n, s->h, s->w, s->c, l->kh, l->kw, l->sh, l->sw, l->pt, l->pl, l->pb, l->pr,
                    l->pad_zero);
}

static size_t in_workspace(const sn_net *net, const sn_layer *l, int n, int training) {
  return training ? (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0)) : 0;
}

static void give(sn_net *net, sn_layer *l, const float *g, size_t count) {
  int acc = 0;
  float *dx = sn_layer_input_grad(net, l, 0, &acc);
  if (!dx) return;
  if (acc)
    sn_net_accumulate(dx, g, count);
  else
    for (size_t i = 0; i < count; ++i)
      dx[i] = g[i];
}

static sn_status pool_shape(sn_net *net, sn_layer *l) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  int oh = (s->h + l->pt + l->pb - l->kh) / l->sh + 1,
      ow = (s->w + l->pl + l->pr - l->kw) / l->sw + 1;
  if (s->h + l->pt + l->pb < l->kh || s->w + l->pl + l->pr < l->kw || oh <= 0 || ow <= 0)
    return sn_error_set(SN_ERR_SHAPE, "layer %s: %dx%d pool does not fit input (%d, %d, %d)",
                        l->name, l->kh, l->kw, s->h, s->w, s->c);
  l->out = (sn_shape){oh, ow, s->c};
  return SN_OK;
}

/* Training: the argmax of every output, for backward. */
static void argmax_state(sn_layer *l, int n, int training, sn_plan_arena *a) {
  if (training) l->argmax = sn_plan_ints(a, (size_t)n * sn_shape_size(l->out));
}

/* Zero padding is added to the pool's own, which then pads with zeros (as Keras's padding layer
 * before a pool does); not where the pool already pads with -inf. */
static int maxpool_take_pad(sn_layer *l, const sn_layer *pad) {
  if (!l->pad_zero && (l->pt || l->pl)) return 0;
  l->pt += pad->pt;
  l->pl += pad->pl;
  l->pb += pad->pb;
  l->pr += pad->pr;
  l->pad_zero = 1;
  return 1;
}

static sn_status maxpool_forward(sn_net *net, sn_layer *l, int n, int training) {
  sn_pool_geom g;
  pgeom(net, l, n, &g);
  if (l->out_u8) { /* int8 plan (lowp.c): codes out, codes or float32 in */
    const int in = l->in[0];
    sn_maxpool_forward_u8(&g, sn_layer_input(net, l, 0), in >= 0 && net->layers[in].out_u8,
                          l->out_scale, (uint8_t *)l->y);
    return SN_OK;
  }
  sn_maxpool_forward(net->opts.portable, &g, sn_layer_input(net, l, 0), l->y,
                     training ? l->argmax : NULL);
  return SN_OK;
}
static sn_status maxpool_backward(sn_net *net, sn_layer *l, int n) {
  sn_pool_geom g;
  pgeom(net, l, n, &g);
  sn_maxpool_backward(net->opts.portable, &g, l->argmax, l->dy, net->ws);
  give(net, l, net->ws, (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0)));
  return SN_OK;
}
const sn_layer_ops sn_maxpool_ops = {
    .kind = "maxpool",
    .keras_type = "MaxPooling2D",
    .type = SN_LAYER_MAXPOOL,
    .shape = pool_shape,
    .workspace = in_workspace,
    .state = argmax_state,
    .take_pad = maxpool_take_pad,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};

static sn_status avgpool_forward(sn_net *net, sn_layer *l, int n, int training) {
  (void)training;
  sn_pool_geom g;
  pgeom(net, l, n, &g);
  sn_avgpool_forward(&g, sn_layer_input(net, l, 0), l->y);
  return SN_OK;
}
static sn_status avgpool_backward(sn_net *net, sn_layer *l, int n) {
  sn_pool_geom g;
  pgeom(net, l, n, &g);
  sn_avgpool_backward(&g, l->dy, net->ws);
  give(net, l, net->ws, (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0)));
  return SN_OK;
}
const sn_layer_ops sn_avgpool_ops = {
    .kind = "avgpool",
    .keras_type = "AveragePooling2D",
    .type = SN_LAYER_AVGPOOL,
    .shape = pool_shape,
    .workspace = in_workspace,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};

static sn_status global_shape(sn_net *net, sn_layer *l) {
  l->out = (sn_shape){1, 1, sn_layer_in_shape(net, l, 0)->c};
  return SN_OK;
}
static sn_status gap_forward(sn_net *net, sn_layer *l, int n, int training) {
  (void)training;
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_global_avgpool_forward(sn_layer_input(net, l, 0), n, s->h * s->w, s->c, l->y);
  return SN_OK;
}
static sn_status gap_backward(sn_net *net, sn_layer *l, int n) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_global_avgpool_backward(l->dy, n, s->h * s->w, s->c, net->ws);
  give(net, l, net->ws, (size_t)n * sn_shape_size(*s));
  return SN_OK;
}
const sn_layer_ops sn_gap_ops = {
    .kind = "gap",
    .keras_type = "GlobalAveragePooling2D",
    .type = SN_LAYER_GAP,
    .shape = global_shape,
    .workspace = in_workspace,
    .forward = gap_forward,
    .backward = gap_backward,
};

static sn_status gmp_forward(sn_net *net, sn_layer *l, int n, int training) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_global_maxpool_forward(sn_layer_input(net, l, 0), n, s->h * s->w, s->c, l->y,
                            training ? l->argmax : NULL);
  return SN_OK;
}
static sn_status gmp_backward(sn_net *net, sn_layer *l, int n) {
  const sn_shape *s = sn_layer_in_shape(net, l, 0);
  sn_global_maxpool_backward(l->argmax, l->dy, n, s->h * s->w, s->c, net->ws);
  give(net, l, net->ws, (size_t)n * sn_shape_size(*s));
  return SN_OK;
}
const sn_layer_ops sn_gmp_ops = {
    .kind = "gmp",
    .keras_type = "GlobalMaxPooling2D",
    .type = SN_LAYER_GMP,
    .shape = global_shape,
    .workspace = in_workspace,
    .state = argmax_state,
    .forward = gmp_forward,
    .backward = gmp_backward,
};
