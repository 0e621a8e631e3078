/* net.c - running a planned network: the inference pass and the helpers layers call during a
 * pass (their inputs, their input gradients). The training step is train.c. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

const float *sn_layer_input(const sn_net *net, const sn_layer *l, int i) {
  if (l->in[i] < 0) return net->input;
  return net->layers[net->layers[l->in[i]].fuse.alias].y;
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
  for (size_t i = 0; i < n; ++i)
    dst[i] += src[i];
}

const float *sn_net_features(const sn_net *net) {
  if (net->feature < 0 || !net->planned) return NULL;
  return net->layers[net->layers[net->feature].fuse.alias].y;
}

const float *sn_net_output(const sn_net *net) {
  if (!net->planned) return NULL;
  return net->layers[net->layers[net->output].fuse.alias].y;
}

void sn_net_set_probe(sn_net *net, sn_layer_probe probe, void *user) {
  net->probe = probe;
  net->probe_user = probe ? user : NULL;
}

/* Shows layer l's output (n images) to the probe, dequantized if the plan stores it as uint8. */
static sn_status probe(sn_net *net, const sn_layer *l, int n) {
  const sn_shape o = l->out;
  const size_t count = (size_t)n * sn_shape_size(o);
  const float *y = l->y;
  if (l->out_u8) {
    if (net->probe_n < count) {
      float *b = realloc(net->probe_buf, count * sizeof *b);
      if (!b) return sn_error_set(SN_ERR_NOMEM, "layer %s: out of memory for the probe", l->name);
      net->probe_buf = b;
      net->probe_n = count;
    }
    const uint8_t *q = (const uint8_t *)l->y;
    for (size_t i = 0; i < count; ++i)
      net->probe_buf[i] = l->out_scale * (float)q[i];
    y = net->probe_buf;
  }
  net->probe(net->probe_user, l->name, l->ops->kind, y, n, o.h, o.w, o.c);
  return SN_OK;
}

sn_status sn_net_forward(sn_net *net, const float *x, int n, float *out) {
  if (!net->planned || net->training)
    return sn_error_set(SN_ERR_INVALID,
                        "%s: sn_net_forward needs an inference plan (sn_net_plan(net, batch, 0))",
                        net->arch);
  if (n <= 0 || n > net->max_batch)
    return sn_error_set(SN_ERR_INVALID, "%s: batch %d outside the planned range 1..%d", net->arch,
                        n, net->max_batch);
  net->input = x;
  net->last_n = n;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip || !l->ops->forward) continue;
    if (l->pair && !net->probe) continue; /* computed inside its pair's call */
    double t0 = net->prof ? omp_get_wtime() : 0;
    sn_status s = l->ops->forward(net, l, n, 0);
    if (s != SN_OK) {
      net->input = NULL;
      return s;
    }
    if (net->prof) net->prof[j] += omp_get_wtime() - t0;
    if (net->probe && (s = probe(net, l, n)) != SN_OK) {
      net->input = NULL;
      return s;
    }
  }
  if (net->prof) net->prof_passes++;
  const sn_layer *o = &net->layers[net->layers[net->output].fuse.alias];
  if (out)
    memcpy(out, o->y, (size_t)n * sn_shape_size(net->layers[net->output].out) * sizeof(float));
  net->input = NULL;
  return SN_OK;
}

int sn_net_is_training(const sn_net *net) { return net->planned && net->training; }

sn_status sn_net_profile(const sn_net *net, sn_layer_profile **rows, int *n, long *passes) {
  *rows = NULL;
  *n = 0;
  *passes = 0;
  if (!net->prof) return SN_OK;
  int run = 0;
  for (int j = 0; j < net->nlayers; ++j)
    run += !net->layers[j].fuse.skip;
  sn_layer_profile *r = malloc((run ? (size_t)run : 1) * sizeof *r);
  if (!r) return sn_error_set(SN_ERR_NOMEM, "%s: out of memory for the profile", net->arch);
  int k = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->fuse.skip) continue;
    r[k].layer = l->name;
    r[k].kind = l->ops->kind;
    r[k].algorithm = l->pair && !net->probe ? "paired" : l->impl ? sn_conv_impl_name(l->impl) : "-";
    r[k].forward_s = net->prof[j];
    r[k].backward_s = net->training ? net->prof[net->nlayers + j] : 0.0;
    k++;
  }
  *rows = r;
  *n = run;
  *passes = net->prof_passes;
  return SN_OK;
}
