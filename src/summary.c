/* summary.c - Keras-style model summary: one row per layer, then the parameter counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

typedef struct strbuf {
  char *s;
  size_t n, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_printf(strbuf *b, const char *fmt, ...) {
  if (!b->s && b->cap == (size_t)-1) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->s && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
    char *s = realloc(b->s, cap);
    if (!s) {
      free(b->s);
      b->s = NULL;
      b->cap = (size_t)-1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
}

/* Formats v with thousands separators, as Keras prints counts. */
static const char *commas(int64_t v, char *buf) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  int len = (int)strlen(tmp), o = 0;
  for (int i = 0; i < len; ++i) {
    if (i && (len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = tmp[i];
  }
  buf[o] = 0;
  return buf;
}

static const char *keras_type(const sn_layer *l) { return l->ops->keras_type; }

/* "(None, H, W, C)", or "(None, C)" for vectors. */
static const char *shape_str(const sn_layer *l, char *buf, size_t n) {
  if (l->out.h == 1 && l->out.w == 1 && l->ops->type != SN_LAYER_CONV &&
      l->ops->type != SN_LAYER_BN)
    snprintf(buf, n, "(None, %d)", l->out.c);
  else
    snprintf(buf, n, "(None, %d, %d, %d)", l->out.h, l->out.w, l->out.c);
  return buf;
}

/* The layer whose output input i of l is, as the summary names it: through activations folded
 * into their producer; the input layer for -1. */
static const char *source_name(const sn_layer *L, const sn_layer *l, int i, const char *input) {
  int p = l->in[i];
  while (p >= 0 && L[p].keras_folded)
    p = L[p].in[0];
  return p < 0 ? input : L[p].name;
}

/* Rows: Keras-style nets list the layers of the Keras model in the order of its model.layers
 * (keras_view.c), with the input layer for functional models and without "Connected to" for
 * Sequential ones, as Keras prints them; torchvision-style nets list every layer in network
 * order. */
sn_status sn_net_summary(const sn_net *net, char **out) {
  strbuf b = {0};
  char c1[32], c2[48], rule[112];
  const int keras = net->keras_model != NULL, seq = keras && net->keras_sequential;
  const char *input = keras ? SN_KERAS_INPUT_NAME : "input";
  const sn_layer *L = net->built ? net->built : net->layers; /* the wiring as built */
  int *order = malloc(((size_t)net->nlayers + 1) * sizeof *order);
  int n = order ? net->nlayers : -1;
  if (order && keras) n = sn_net_keras_order(net, order);
  for (int k = 0; order && !keras && k < n; ++k)
    order[k] = k;
  if (n < 0) {
    free(order);
    return sn_error_set(SN_ERR_NOMEM, "summary: out of memory");
  }
  const int width = seq ? 80 : 108;
  memset(rule, '_', (size_t)width);
  rule[width] = 0;
  sb_printf(&b, "Model: \"%s\"\n%s\n", keras ? net->keras_model : net->arch, rule);
  if (seq)
    sb_printf(&b, " %-44s %-22s %s\n", "Layer (type)", "Output Shape", "Param #");
  else
    sb_printf(&b, " %-50s %-22s %-12s %s\n", "Layer (type)", "Output Shape", "Param #",
              "Connected to");
  memset(rule, '=', (size_t)width);
  sb_printf(&b, "%s\n", rule);
  if (!seq) {
    char name[160];
    snprintf(name, sizeof name, "%s (InputLayer)", input);
    snprintf(c2, sizeof c2, keras ? "[(None, %d, %d, %d)]" : "(None, %d, %d, %d)", net->in.h,
             net->in.w, net->in.c);
    sb_printf(&b, " %-50s %-22s %-12s\n", name, c2, "0");
  }
  for (int k = 0; k < n; ++k) {
    if (order[k] < 0) continue; /* the input layer, printed above */
    const sn_layer *l = &L[order[k]];
    int64_t np = 0;
    for (int i = 0; i < l->np; ++i)
      np += net->params[l->p0 + i].count;
    char name[160];
    snprintf(name, sizeof name, "%s (%s)", l->name, keras_type(l));
    shape_str(l, c2, sizeof c2);
    if (seq) {
      sb_printf(&b, " %-44s %-22s %s\n", name, c2, commas(np, c1));
      continue;
    }
    char conn[2 * SN_MAX_NAME + 8] = "";
    for (int i = 0; i < l->nin; ++i) {
      if (i) strcat(conn, ", ");
      strncat(conn, source_name(L, l, i, input), SN_MAX_NAME);
    }
    sb_printf(&b, " %-50s %-22s %-12s %s\n", name, c2, commas(np, c1), conn);
  }
  free(order);
  int64_t total, trainable, nontrainable;
  sn_net_param_counts(net, &total, &trainable, &nontrainable);
  sb_printf(&b, "%s\n", rule);
  sb_printf(&b, "Total params: %s\n", commas(total, c1));
  sb_printf(&b, "Trainable params: %s\n", commas(trainable, c1));
  sb_printf(&b, "Non-trainable params: %s\n", commas(nontrainable, c1));
  memset(rule, '_', (size_t)width);
  sb_printf(&b, "%s\n", rule);
  if (!b.s) return sn_error_set(SN_ERR_NOMEM, "summary: out of memory");
  *out = b.s;
  return SN_OK;
}
