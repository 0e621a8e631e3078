/* conv_impl.c - prepared inference convolutions: the algorithm is chosen and the weights are
 * packed once at plan time (kernels.h, sn_conv_prepare). */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "shardnet.h"

struct sn_conv_impl {
  sn_conv_geom g; /* g.n = largest batch */
  float *w;       /* (KH, KW, Cin, Cout) copy */
  float *bias;    /* (Cout) copy, or NULL */
};

int sn_conv_prepare(const sn_conv_geom *g, const float *w, const float *bias, sn_conv_impl **out) {
  *out = NULL;
  size_t nw = (size_t)g->kh * g->kw * g->cin * g->cout;
  sn_conv_impl *c = calloc(1, sizeof *c);
  if (!c) return sn_error_set(SN_ERR_NOMEM, "conv prepare: out of memory");
  c->g = *g;
  c->w = malloc(nw * sizeof(float));
  if (bias) c->bias = malloc((size_t)g->cout * sizeof(float));
  if (!c->w || (bias && !c->bias)) {
    sn_conv_impl_destroy(c);
    return sn_error_set(SN_ERR_NOMEM, "conv prepare: out of memory for %zu weights", nw);
  }
  sn_conv_impl_update(c, w, bias);
  *out = c;
  return SN_OK;
}

void sn_conv_impl_update(sn_conv_impl *c, const float *w, const float *bias) {
  const sn_conv_geom *g = &c->g;
  memcpy(c->w, w, (size_t)g->kh * g->kw * g->cin * g->cout * sizeof(float));
  if (c->bias && bias) memcpy(c->bias, bias, (size_t)g->cout * sizeof(float));
}

size_t sn_conv_impl_workspace(const sn_conv_impl *c) { return sn_conv2d_forward_workspace(&c->g); }

void sn_conv_impl_forward(const sn_conv_impl *c, int n, const float *x, const float *res, int relu,
                          float *y, float *ws) {
  sn_conv_geom g = c->g;
  g.n = n;
  sn_conv2d_forward(&g, x, c->w, c->bias, res, relu, y, ws);
}

const char *sn_conv_impl_name(const sn_conv_impl *c) {
  (void)c;
  return "generic";
}

void sn_conv_impl_destroy(sn_conv_impl *c) {
  if (!c) return;
  free(c->w);
  free(c->bias);
  free(c);
}
