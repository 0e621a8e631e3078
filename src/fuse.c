/* fuse.c - the planner's graph rewrites: layers folded into their neighbours (inference), ReLUs
 * and batch norms fused into the layers next to them and gradient buffers shared (training).
 * They work on the plan's copy of the wiring (sn_net_plan restores the built graph first). */
#include "net_impl.h"

static int single_consumer_of(const sn_net *net, int producer, int from) {
  int found = -1;
  for (int j = from; j < net->nlayers; ++j) {
    const sn_layer *c = &net->layers[j];
    if (c->fuse.skip) continue;
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
void sn_fuse_for_inference(sn_net *net, int mask) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    const sn_layer_type k = l->ops->type;
    int p = l->nin ? l->in[0] : -1;
    sn_layer *pl = p >= 0 ? &net->layers[p] : NULL;
    if (k == SN_LAYER_PAD && (mask & SN_FUSE_PAD)) {
      int c = single_consumer_of(net, j, j + 1);
      if (c < 0) continue;
      sn_layer *cl = &net->layers[c];
      if (!cl->ops->take_pad || !cl->ops->take_pad(cl, l)) continue;
      l->fuse.skip = 1;
      cl->in[0] = l->in[0];
    } else if (k == SN_LAYER_BN && (mask & SN_FUSE_BN) && pl && (pl->ops->caps & SN_CAP_FOLD_BN) &&
               pl->fuse.fold_bn < 0 && !pl->fuse.relu && pl->fuse.residual == -2 &&
               single_consumer_of(net, p, p + 1) == j) {
      pl->fuse.fold_bn = j;
      l->fuse.skip = 1;
      rewire(net, j, p);
    } else if (k == SN_LAYER_ADD && (mask & SN_FUSE_ADD)) {
      /* Fuse into the convolution producing one operand if it is used only here. */
      for (int side = 1; side >= 0; --side) {
        int c = l->in[side], other = l->in[1 - side];
        if (c < 0 || other == c) continue;
        sn_layer *cl = &net->layers[c];
        if (!(cl->ops->caps & SN_CAP_RESIDUAL) || cl->fuse.relu || cl->fuse.residual != -2)
          continue;
        if (single_consumer_of(net, c, c + 1) != j) continue;
        if (other > c) continue; /* the other operand must exist before the conv runs */
        cl->fuse.residual = other;
        l->fuse.skip = 1;
        rewire(net, j, c);
        break;
      }
    } else if (k == SN_LAYER_RELU && (mask & SN_FUSE_RELU) && pl && !pl->fuse.relu &&
               (pl->ops->caps & SN_CAP_RELU) && single_consumer_of(net, p, p + 1) == j &&
               net->feature != p) {
      pl->fuse.relu = 1;
      l->fuse.skip = 1;
      rewire(net, j, p);
    }
  }
  if (mask & SN_FUSE_BNIN) fuse_bn_into_inputs(net);
  for (int j = 0; j < net->nlayers; ++j)
    net->layers[j].fuse.alias = j;
}

/* Inference, SN_FUSE_BNIN: a batch norm that could not be folded into a preceding convolution
 * (V2's pre-activation, after an add) and whose readers all take it as an input map (their
 * input_map_ok: unpadded 1x1 convolutions on the packed GEMM) is applied by those readers as they
 * copy their input rows (sn_conv_impl_forward_in, bitwise the separate pass): the batch norm's
 * pass and its output tensor disappear, and its readers read its input. Not for the network output
 * or the feature layer, nor for a batch norm read as a residual. */
static void fuse_bn_into_inputs(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip || l->ops->type != SN_LAYER_BN || net->output == j || net->feature == j)
      continue;
    int readers = 0, ok = 1;
    for (int c = j + 1; c < net->nlayers && ok; ++c) {
      const sn_layer *cl = &net->layers[c];
      if (cl->fuse.skip) continue;
      const int reads = (cl->nin > 0 && cl->in[0] == j) || (cl->nin > 1 && cl->in[1] == j);
      if (cl->fuse.residual == j) ok = 0;
      if (!reads) continue;
      readers++;
      ok =
          ok && cl->ops->input_map_ok && cl->fuse.in_bn < 0 && cl->ops->input_map_ok(net, cl, 1, 0);
    }
    if (!ok || !readers) continue;
    for (int c = j + 1; c < net->nlayers; ++c)
      if (!net->layers[c].fuse.skip && net->layers[c].nin == 1 && net->layers[c].in[0] == j)
        net->layers[c].fuse.in_bn = j;
    l->fuse.skip = 1;
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
void sn_fuse_for_training(sn_net *net, int mask) {
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
 * asks again (the convolution's input_map_ok), since the convolution's path depends on the batch,
 * and where the answer is no the batch norm writes its output as before. Its output buffer stays
 * planned for those calls and for evaluation. */
static void fuse_bn_into_convs(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip || l->ops->type != SN_LAYER_BN || l->fuse.into_add || net->output == j ||
        net->feature == j)
      continue;
    const int c = single_consumer_of(net, j, j + 1);
    if (c < 0) continue;
    sn_layer *cl = &net->layers[c];
    if (!cl->ops->input_map_ok || cl->in[0] != j) continue;
    if (cl->ops->input_map_ok(net, cl, net->max_batch, 1)) l->fuse.into_conv = c + 1;
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
    if (l->fuse.skip || l->ops->type != SN_LAYER_ADD || l->in[0] == l->in[1]) continue;
    int best = -1;
    for (int i = 0; i < 2; ++i) {
      const int p = l->in[i];
      if (p < 0 || net->feature == p || net->output == p) continue;
      const sn_layer *pl = &net->layers[p];
      if (pl->fuse.skip || pl->fuse.relu || pl->ops->type != SN_LAYER_BN ||
          single_consumer_of(net, p, p + 1) != j)
        continue;
      if (l->in[1 - i] < p && (best < 0 || p > l->in[best])) best = i;
    }
    if (best < 0) continue;
    net->layers[l->in[best]].fuse.into_add = j + 1;
    l->fuse.from_bn = l->in[best] + 1;
  }
}

/* Training fusion: a ReLU whose input is a batch norm or an add consumed only by it runs inside
 * that layer (forward stores relu(y), backward masks its dy by y > 0: sn_bn_*_relu kernels, or
 * the add's gradient pass), so the ReLU layer is skipped in forward and backward and has neither
 * an output nor a gradient buffer. Its consumers are rewired to the producer, whose output then
 * holds the activation (the producer's pre-activation value is not kept). The network output and
 * the feature layer are never fused into, as in inference. SN_FUSE_RELU in the mask enables it. */
static void fuse_relus_for_training(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    int p = l->nin ? l->in[0] : -1;
    if (l->ops->type != SN_LAYER_RELU || p < 0) continue;
    sn_layer *pl = &net->layers[p];
    if (pl->fuse.relu || !(pl->ops->caps & SN_CAP_RELU_TRAIN)) continue;
    if (single_consumer_of(net, p, p + 1) != j || net->feature == p || net->output == p) continue;
    pl->fuse.relu = 1;
    l->fuse.skip = 1;
    l->fuse.alias = p;
    rewire(net, j, p);
  }
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
void sn_fuse_share_add_grads(sn_net *net, int *own) {
  for (int j = net->nlayers - 1; j >= 0; --j) {
    sn_layer *l = &net->layers[j];
    if (l->fuse.skip || l->ops->type != SN_LAYER_ADD || l->in[0] == l->in[1]) continue;
    int first_reader = net->nlayers; /* lowest index of a layer reading the buffer */
    for (int i = 0; i < 2; ++i) {
      const int p = l->in[i];
      if (p < 0 || net->feature == p || net->output == p) continue;
      sn_layer *pl = &net->layers[p];
      if (pl->fuse.skip || pl->fuse.relu || !(pl->ops->caps & SN_CAP_SHARE_DY) ||
          single_consumer_of(net, p, p + 1) != j)
        continue;
      own[p] = own[j];
      l->fuse.shared_in |= 1 << i;
      if (p < first_reader) first_reader = p;
    }
    for (int i = 0; i < 2; ++i) {
      const int p = l->in[i];
      if (p < 0 || (l->fuse.shared_in >> i & 1) || net->feature == p || net->output == p) continue;
      sn_layer *pl = &net->layers[p];
      if (pl->fuse.skip || pl->ops->type != SN_LAYER_ADD) continue;
      int ok = 1; /* j is p's last consumer; the others run their backward after the readers */
      for (int c = p + 1; c < net->nlayers && ok; ++c) {
        const sn_layer *cl = &net->layers[c];
        if (c == j || cl->fuse.skip) continue;
        for (int k = 0; k < cl->nin; ++k)
          if (cl->in[k] == p && (c > j || c > first_reader)) ok = 0;
      }
      if (!ok) continue;
      own[p] = own[j];
      l->fuse.shared_in |= 1 << i;
    }
  }
}
