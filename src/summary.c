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

sn_status sn_net_summary(const sn_net *net, char **out) {
  strbuf b = {0};
  char c1[32], c2[48], rule[112];
  memset(rule, '_', 108);
  rule[108] = 0;
  sb_printf(&b, "Model: \"%s\"\n%s\n", net->arch, rule);
  sb_printf(&b, " %-50s %-22s %-12s %s\n", "Layer (type)", "Output Shape", "Param #",
            "Connected to");
  memset(rule, '=', 108);
  sb_printf(&b, "%s\n", rule);
  snprintf(c2, sizeof c2, "(None, %d, %d, %d)", net->in.h, net->in.w, net->in.c);
  sb_printf(&b, " %-50s %-22s %-12s\n", "input (InputLayer)", c2, "0");
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *l = &net->layers[j];
    int64_t np = 0;
    for (int k = 0; k < l->np; ++k)
      np += net->params[l->p0 + k].count;
    char name[160];
    snprintf(name, sizeof name, "%s (%s)", l->name, keras_type(l));
    if (l->out.h == 1 && l->out.w == 1 && l->ops->type != SN_LAYER_CONV &&
        l->ops->type != SN_LAYER_BN)
      snprintf(c2, sizeof c2, "(None, %d)", l->out.c);
    else
      snprintf(c2, sizeof c2, "(None, %d, %d, %d)", l->out.h, l->out.w, l->out.c);
    char conn[2 * SN_MAX_NAME + 8] = "";
    for (int i = 0; i < l->nin; ++i) {
      const char *src = l->in[i] < 0 ? "input" : net->layers[l->in[i]].name;
      if (i) strcat(conn, ", ");
      strncat(conn, src, SN_MAX_NAME);
    }
    sb_printf(&b, " %-50s %-22s %-12s %s\n", name, c2, commas(np, c1), conn);
  }
  int64_t total, trainable, nontrainable;
  sn_net_param_counts(net, &total, &trainable, &nontrainable);
  sb_printf(&b, "%s\n", rule);
  sb_printf(&b, "Total params: %s\n", commas(total, c1));
  sb_printf(&b, "Trainable params: %s\n", commas(trainable, c1));
  sb_printf(&b, "Non-trainable params: %s\n", commas(nontrainable, c1));
  memset(rule, '_', 108);
  sb_printf(&b, "%s\n", rule);
  if (!b.s) return sn_error_set(SN_ERR_NOMEM, "summary: out of memory");
  *out = b.s;
  return SN_OK;
}
