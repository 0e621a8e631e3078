/* keras_view.c - the net as Keras lists it: the layers of the Keras model it reproduces, in the
 * order of Keras' model.layers (docs/models.md, "Layer names and Keras' layer order").
 *
 * Keras 2 and 3 order a functional model's layers by decreasing depth (the longest path to the
 * output), ties by the order in which a depth-first walk from the output, visiting each layer's
 * inputs in call order, first reaches them (tf.keras functional.py _map_graph_network). The input
 * layer is therefore first. A Sequential model lists its layers in order, without the input
 * layer. Activations that Keras shows inside the layer before them (Conv2D(..., activation=
 * 'relu')) are layers here (keras_folded) but not in Keras' list: the walk passes through them.
 * The order decides which weights a Keras legacy .h5 file pairs with which layer
 * (io/weights.c), and the summary's rows.
 */
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

typedef struct walk {
  const sn_layer *L;
  int nl;
  int *index;    /* (nl + 1) first-visit order, -1 unvisited; slot nl is the input layer */
  int *finished; /* (nl + 1) */
  int *post;     /* (nl + 1) slots in post-order */
  int npost, nindex;
} walk;

/* The Keras layer that produces input i of slot v: through folded activations; slot nl for the
 * network input. */
static int producer(const walk *w, int v, int i) {
  int p = w->L[v].in[i];
  while (p >= 0 && w->L[p].keras_folded)
    p = w->L[p].in[0];
  return p < 0 ? w->nl : p;
}

static int slot_inputs(const walk *w, int v) { return v == w->nl ? 0 : w->L[v].nin; }

static void visit(walk *w, int v) {
  if (w->finished[v]) return;
  if (w->index[v] < 0) w->index[v] = w->nindex++;
  for (int i = 0; i < slot_inputs(w, v); ++i)
    visit(w, producer(w, v, i));
  w->finished[v] = 1;
  w->post[w->npost++] = v;
}

typedef struct ranked {
  int depth, index, slot;
} ranked;

static int by_depth_then_index(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->depth != y->depth) return x->depth > y->depth ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

int sn_net_keras_order(const sn_net *net, int *order) {
  const int nl = net->nlayers, n1 = nl + 1;
  walk w = {net->built ? net->built : net->layers, nl, NULL, NULL, NULL, 0, 0};
  int *buf = malloc((size_t)4 * n1 * sizeof(int));
  ranked *r = malloc((size_t)n1 * sizeof *r);
  if (!buf || !r) {
    free(buf);
    free(r);
    return -1;
  }
  w.index = buf;
  w.finished = buf + n1;
  w.post = buf + 2 * n1;
  int *depth = buf + 3 * n1;
  for (int v = 0; v < n1; ++v) {
    w.index[v] = -1;
    w.finished[v] = 0;
    depth[v] = 0;
  }
  int out = net->built ? net->built_output : net->output;
  while (out >= 0 && w.L[out].keras_folded)
    out = w.L[out].in[0];
  visit(&w, out < 0 ? nl : out);
  /* Reversed post-order lists every layer before the layers it reads. */
  for (int k = w.npost - 1; k >= 0; --k) {
    const int v = w.post[k];
    for (int i = 0; i < slot_inputs(&w, v); ++i) {
      const int u = producer(&w, v, i);
      if (depth[u] < depth[v] + 1) depth[u] = depth[v] + 1;
    }
  }
  for (int k = 0; k < w.npost; ++k)
    r[k] = (ranked){depth[w.post[k]], w.index[w.post[k]], w.post[k]};
  qsort(r, (size_t)w.npost, sizeof *r, by_depth_then_index);
  int n = 0;
  for (int k = 0; k < w.npost; ++k) {
    if (r[k].slot == nl && net->keras_sequential) continue;
    order[n++] = r[k].slot == nl ? -1 : r[k].slot;
  }
  free(buf);
  free(r);
  return n;
}

sn_status sn_net_keras_layers(const sn_net *net, const char ***names, int *n) {
  *names = NULL;
  *n = 0;
  int *order = malloc(((size_t)net->nlayers + 1) * sizeof *order);
  const char **v = malloc(((size_t)net->nlayers + 1) * sizeof *v);
  int m = order && v ? sn_net_keras_order(net, order) : -1;
  if (m < 0) {
    free(order);
    free(v);
    return sn_error_set(SN_ERR_NOMEM, "%s: out of memory listing the Keras layers", net->arch);
  }
  for (int k = 0; k < m; ++k)
    v[k] = order[k] < 0 ? SN_KERAS_INPUT_NAME : net->layers[order[k]].name;
  free(order);
  *names = v;
  *n = m;
  return SN_OK;
}
