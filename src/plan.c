/* plan.c - planning: fusion (fuse.c), then the activation and gradient arenas laid out by
 * liveness, workspace and per-layer state, and the inference preparation of the weights. */
#include <stdlib.h>

#include "net_impl.h"

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
  for (int j = 0; j < L; ++j)
    last[j] = j;
  for (int j = 0; j < L; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->fuse.skip) continue;
    for (int i = 0; i < l->nin; ++i)
      if (l->in[i] >= 0 && last[l->in[i]] < j) last[l->in[i]] = j;
    if (l->fuse.residual >= 0 && last[l->fuse.residual] < j) last[l->fuse.residual] = j;
    /* int8: a 1x1 convolution whose output this one adds may run inside this one's call
     * (sn_lowp_pair), reading its own input here: that input lives until this layer */
    const sn_layer *p =
        l->fuse.residual >= 0 ? &net->layers[net->layers[l->fuse.residual].fuse.alias] : NULL;
    if (p && l->lp && net->opts.precision == SN_PRECISION_INT8 && p->lp &&
        p->ops->type == SN_LAYER_CONV && p->kh == 1 && p->kw == 1 && p->nin == 1 && p->in[0] >= 0 &&
        last[p->in[0]] < j)
      last[p->in[0]] = j;
  }
  if (net->output >= 0) last[net->output] = L;
  if (net->feature >= 0) last[net->feature] = L;
  for (int j = 0; j < L; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->fuse.skip) continue;
    const size_t elems = (size_t)n * sn_shape_size(l->out);
    size_t size = ((l->out_u8 ? (elems + 3) / 4 : elems) + 15) & ~(size_t)15; /* uint8: 1/4 */
    if (reuse) { /* drop intervals that ended before this layer */
      int k = 0;
      for (int i = 0; i < nlive; ++i)
        if (live[i].end >= j) live[k++] = live[i];
      nlive = k;
    }
    /* A layer whose fused residual dies with it writes over the residual when its algorithm
     * allows (its residual_in_place): the residual's interval becomes this layer's. */
    const int r = l->fuse.residual;
    if (reuse && r >= 0 && net->layers[r].fuse.alias == r && last[r] == j && l->in[0] != r &&
        l->ops->residual_in_place) {
      int found = -1;
      for (int i = 0; i < nlive; ++i)
        if (live[i].off == offs[r] && live[i].size == size) found = i;
      if (found >= 0 && l->ops->residual_in_place(net, l, n)) {
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

/* Training: offsets of the gradient buffers (dy) by their lifetimes in the backward pass, which
 * visits layer k at time L-1-k. A buffer (a layer's, or a group sharing one:
 * sn_fuse_share_add_grads) is live from its first write - the backward of its highest consumer, or
 * before the backward for the network output (the loss gradient) - to the backward of its lowest
 * member, which reads it while writing its input's buffer: buffers live at the same time never
 * overlap, and a buffer may take the place of one whose last reader ran strictly earlier (first
 * fit). Every first writer overwrites its buffer (later ones add; an unreachable layer's is
 * zeroed), so stale contents are never read. Returns the floats needed; doffs[k] for every run
 * layer k. */
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
    net->layers[j].fuse.shared_in = 0;
  }
  if (share) sn_fuse_share_add_grads(net, own);
  for (int j = 0; j < L; ++j)
    start[j] = L, end[j] = -2;
  for (int j = 0; j < L; ++j) { /* j's buffer is first written when its highest consumer runs */
    if (net->layers[j].fuse.skip) continue;
    int last = j; /* no consumer: zeroed at its own backward */
    for (int c = j + 1; c < L; ++c) {
      const sn_layer *cl = &net->layers[c];
      if (cl->fuse.skip) continue;
      for (int i = 0; i < cl->nin; ++i)
        if (cl->in[i] == j) last = c;
    }
    const int o = own[j], w = j == net->output ? -1 : L - 1 - last, r = L - 1 - j;
    if (w < start[o]) start[o] = w;
    if (r > end[o]) end[o] = r;
  }
  int ng = 0;
  for (int j = 0; j < L; ++j)
    if (!net->layers[j].fuse.skip && own[j] == j) order[ng++] = j;
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
  for (int j = 0; j < L; ++j)
    doffs[j] = net->layers[j].fuse.skip ? 0 : goff[own[j]];
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
  if (max_batch <= 0)
    return sn_error_set(SN_ERR_INVALID, "%s: batch %d must be positive", net->arch, max_batch);
  sn_net_unplan(net);
  sn_net_restore_graph(net);                 /* undo an earlier plan's fusion */
  const int fuse_mask = (int)net->opts.fuse; /* restricted for A/B timing and bug isolation */
  net->training = training;
  net->max_batch = max_batch;
  if (!training)
    sn_fuse_for_inference(net, fuse_mask);
  else
    sn_fuse_for_training(net, fuse_mask);
  sn_status ls = sn_lowp_plan(net); /* after fusion: the formats depend on what fused */
  if (ls != SN_OK) {
    sn_net_restore_graph(net);
    return ls;
  }

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
  size_t ws = 0;
  sn_plan_arena count = {NULL, NULL, 0, 0}; /* layers' state: counted, allocated, then taken */
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip) continue;
    size_t w = layer_ws(net, l, max_batch, training);
    if (w > ws) ws = w;
    if (l->ops->state) l->ops->state(l, max_batch, training, &count);
  }
  const size_t imax = count.nints, stats = count.ndoubles;
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
    sn_net_unplan(net);
    return sn_error_set(SN_ERR_NOMEM, "%s: cannot allocate %.1f MiB of activations for batch %d",
                        net->arch, (double)(total + ws) * 4.0 / 1048576.0, max_batch);
  }
  sn_plan_arena take = {net->iarena, net->stats, 0, 0};
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip) continue;
    l->y = net->arena + offs[j];
    if (training) l->dy = net->arena + act + doffs[j];
    if (l->ops->state) l->ops->state(l, max_batch, training, &take);
  }
  free(offs);
  free(doffs);
  if (training) {
    if (!net->grads) net->grads = calloc(net->ntrainable ? net->ntrainable : 1, sizeof(float));
    if (!net->momentum)
      net->momentum = calloc(net->ntrainable ? net->ntrainable : 1, sizeof(float));
    if (!net->grads || !net->momentum) {
      sn_net_unplan(net);
      return sn_error_set(SN_ERR_NOMEM, "%s: cannot allocate gradients", net->arch);
    }
  }
  if (net->opts.profile) /* training: forward and backward times */
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

sn_status sn_layer_prepare_impl_lp(sn_net *net, sn_layer *l, const sn_conv_geom *g, const float *w,
                                   const float *b) {
  if (l->impl) {
    sn_conv_impl_update(l->impl, w, b);
    return SN_OK;
  }
  const sn_conv_lp q = sn_lowp_conv_params(net, l);
  sn_status s = sn_conv_prepare_lp(g, w, b, &q, &l->impl);
  if (s != SN_OK) return sn_error_set(s, "layer %s: %s", l->name, sn_last_error());
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
    if (l->fuse.skip) continue;
    sn_status s = l->ops->prepare ? l->ops->prepare(net, l) : SN_OK;
    if (s != SN_OK) return s;
  }
  sn_lowp_pair(net);
  return SN_OK;
}
