/* compare.c - how far other plans of a net (bf16, int8) move each layer's output from a reference
 * plan (float32) on the same images: the relative L2 error and the per-image cosine similarity of
 * every layer the plans run, and the top-1 agreement of their outputs, summed over the images
 * given and, at the end, over the ranks.
 *
 * Each batch runs through the reference with a probe (sn_net_set_probe) that keeps every layer's
 * output, then through each other plan with a probe that compares its outputs with those kept, so
 * an error measured at a layer includes what the layers before it contributed (as the network
 * runs), not the layer's own rounding alone. Memory: the reference outputs of one batch, about
 * max_batch x (the sum of all layer sizes) floats. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

typedef struct cmp_layer {
  const char *name, *kind; /* the reference net's (owned by it) */
  size_t size;             /* values per image */
  float *ref;              /* (max_batch, size): the reference output of the current batch */
} cmp_layer;

enum { ACC_D2, ACC_R2, ACC_COS, ACC_N }; /* per test and layer: sum (t-r)^2, sum r^2, sum cos */

struct sn_compare {
  sn_net *ref;
  sn_net **tests; /* (ntests), borrowed */
  int ntests;
  cmp_layer *layers;       /* (nl) the layers the reference plan runs, in order */
  int nl, feature, output; /* positions in layers of the feature and output layers, or -1 */
  int max_batch, classes, finished;
  double *acc;   /* (ntests, nl, ACC_N) */
  double *cmin;  /* (ntests, nl): smallest cosine seen */
  double *agree; /* (ntests + 1): images whose top-1 equals the reference's; then images seen */
  float *out;    /* (2, max_batch, classes): reference and test outputs */
  /* the pass under way */
  int pos, test;
  sn_status err;
};

static int runs(const sn_layer *l) { return !l->fuse.skip && l->ops->forward; }

static sn_status pass_error(sn_compare *c, const char *layer) {
  const sn_net *t = c->tests[c->test];
  return sn_error_set(SN_ERR_INVALID,
                      "%s: the %s plan ran layer %s where the reference plan runs %s (compare "
                      "plans with the same fusion options)",
                      t->arch, sn_precision_name(t->opts.precision), layer,
                      c->pos < c->nl ? c->layers[c->pos].name : "no more layers");
}

static void keep(void *user, const char *layer, const char *kind, const float *y, int n, int h,
                 int w, int ch) {
  (void)kind;
  sn_compare *c = user;
  const int k = c->pos;
  if (c->err != SN_OK) return;
  if (k >= c->nl || strcmp(layer, c->layers[k].name) || (size_t)h * w * ch != c->layers[k].size) {
    c->err = sn_error_set(SN_ERR_INVALID, "%s: the reference plan changed (layer %s)", c->ref->arch,
                          layer);
    return;
  }
  memcpy(c->layers[k].ref, y, (size_t)n * c->layers[k].size * sizeof(float));
  c->pos++;
}

static void measure(void *user, const char *layer, const char *kind, const float *y, int n, int h,
                    int w, int ch) {
  (void)kind;
  sn_compare *c = user;
  const int k = c->pos;
  if (c->err != SN_OK) return;
  if (k >= c->nl || strcmp(layer, c->layers[k].name) || (size_t)h * w * ch != c->layers[k].size) {
    c->err = pass_error(c, layer);
    return;
  }
  const size_t size = c->layers[k].size;
  double *a = c->acc + ((size_t)c->test * c->nl + k) * ACC_N, *mn = c->cmin + c->test * c->nl + k;
  for (int i = 0; i < n; ++i) {
    const float *r = c->layers[k].ref + (size_t)i * size, *t = y + (size_t)i * size;
    double d2 = 0, rr = 0, tt = 0, rt = 0;
    for (size_t j = 0; j < size; ++j) {
      const double d = (double)t[j] - r[j];
      d2 += d * d;
      rr += (double)r[j] * r[j];
      tt += (double)t[j] * t[j];
      rt += (double)r[j] * t[j];
    }
    const double cos = rr > 0 && tt > 0 ? rt / sqrt(rr * tt) : (rr == tt ? 1.0 : 0.0);
    a[ACC_D2] += d2;
    a[ACC_R2] += rr;
    a[ACC_COS] += cos;
    if (cos < *mn) *mn = cos;
  }
  c->pos++;
}

void sn_compare_destroy(sn_compare *c) {
  if (!c) return;
  if (c->layers)
    for (int k = 0; k < c->nl; ++k)
      free(c->layers[k].ref);
  free(c->layers);
  free(c->tests);
  free(c->acc);
  free(c->cmin);
  free(c->agree);
  free(c->out);
  free(c);
}

/* Checks that test runs the same layers as the reference, with the same output sizes. */
static sn_status same_layers(const sn_compare *c, const sn_net *t) {
  int k = 0;
  for (int j = 0; j < t->nlayers; ++j) {
    const sn_layer *l = &t->layers[j];
    if (!runs(l)) continue;
    if (k >= c->nl || strcmp(l->name, c->layers[k].name) ||
        sn_shape_size(l->out) != c->layers[k].size)
      return sn_error_set(SN_ERR_INVALID,
                          "%s: the %s plan runs layer %s where the reference plan runs %s "
                          "(compare plans with the same fusion options)",
                          t->arch, sn_precision_name(t->opts.precision), l->name,
                          k < c->nl ? c->layers[k].name : "no more layers");
    k++;
  }
  if (k != c->nl)
    return sn_error_set(SN_ERR_INVALID, "%s: the %s plan stops before layer %s", t->arch,
                        sn_precision_name(t->opts.precision), c->layers[k].name);
  return SN_OK;
}

sn_status sn_compare_create(sn_net *ref, sn_net *const *tests, int ntests, sn_compare **out) {
  *out = NULL;
  if (!ref->planned || ref->training || ntests < 1)
    return sn_error_set(SN_ERR_INVALID,
                        "%s: sn_compare_create needs an inference plan of the reference and at "
                        "least one other net",
                        ref->arch);
  for (int i = 0; i < ntests; ++i)
    if (!tests[i]->planned || tests[i]->training || tests[i]->max_batch < ref->max_batch ||
        tests[i]->nlayers != ref->nlayers)
      return sn_error_set(SN_ERR_INVALID,
                          "%s: net %d to compare is not an inference plan of the same "
                          "architecture for batches of %d",
                          ref->arch, i, ref->max_batch);
  sn_compare *c = calloc(1, sizeof *c);
  if (!c) return sn_error_set(SN_ERR_NOMEM, "%s: out of memory for the comparison", ref->arch);
  c->ref = ref;
  c->ntests = ntests;
  c->max_batch = ref->max_batch;
  c->feature = c->output = -1;
  c->classes = (int)sn_shape_size(ref->layers[ref->output].out);
  const int fa = ref->feature >= 0 ? ref->layers[ref->feature].fuse.alias : -1;
  const int oa = ref->layers[ref->output].fuse.alias;
  for (int j = 0; j < ref->nlayers; ++j)
    c->nl += runs(&ref->layers[j]);
  c->tests = malloc((size_t)ntests * sizeof *c->tests);
  c->layers = calloc((size_t)c->nl, sizeof *c->layers);
  c->acc = calloc((size_t)ntests * c->nl * ACC_N, sizeof *c->acc);
  c->cmin = malloc((size_t)ntests * c->nl * sizeof *c->cmin);
  c->agree = calloc((size_t)ntests + 1, sizeof *c->agree);
  c->out = malloc(2 * (size_t)c->max_batch * c->classes * sizeof *c->out);
  sn_status s = c->tests && c->layers && c->acc && c->cmin && c->agree && c->out
                    ? SN_OK
                    : sn_error_set(SN_ERR_NOMEM, "%s: out of memory for the comparison", ref->arch);
  for (int j = 0, k = 0; s == SN_OK && j < ref->nlayers; ++j) {
    const sn_layer *l = &ref->layers[j];
    if (!runs(l)) continue;
    c->layers[k] = (cmp_layer){l->name, l->ops->kind, sn_shape_size(l->out), NULL};
    c->layers[k].ref = malloc((size_t)c->max_batch * c->layers[k].size * sizeof(float));
    if (!c->layers[k].ref)
      s = sn_error_set(SN_ERR_NOMEM, "layer %s: out of memory for the comparison", l->name);
    if (j == fa) c->feature = k;
    if (j == oa) c->output = k;
    k++;
  }
  for (int i = 0; s == SN_OK && i < ntests; ++i) {
    c->tests[i] = tests[i];
    s = same_layers(c, tests[i]);
  }
  for (size_t i = 0; c->cmin && i < (size_t)ntests * c->nl; ++i)
    c->cmin[i] = 1.0;
  if (s != SN_OK) {
    sn_compare_destroy(c);
    return s;
  }
  *out = c;
  return SN_OK;
}

static int argmax(const float *v, int n) {
  int b = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[b]) b = i;
  return b;
}

/* One forward pass of net with probe fn; the probe's error first, then the pass's. */
static sn_status run(sn_compare *c, sn_net *net, sn_layer_probe fn, const float *x, int n,
                     float *out) {
  c->pos = 0;
  c->err = SN_OK;
  sn_net_set_probe(net, fn, c);
  sn_status s = sn_net_forward(net, x, n, out);
  sn_net_set_probe(net, NULL, NULL);
  if (c->err != SN_OK) return c->err;
  if (s == SN_OK && c->pos != c->nl)
    s = sn_error_set(SN_ERR_INVALID, "%s: a pass ran %d of the %d layers compared", net->arch,
                     c->pos, c->nl);
  return s;
}

sn_status sn_compare_add(sn_compare *c, const float *x, int n) {
  if (c->finished)
    return sn_error_set(SN_ERR_INVALID, "%s: sn_compare_add after sn_compare_finish", c->ref->arch);
  if (n <= 0 || n > c->max_batch)
    return sn_error_set(SN_ERR_INVALID, "%s: comparison batch %d outside 1..%d", c->ref->arch, n,
                        c->max_batch);
  float *ro = c->out, *to = c->out + (size_t)c->max_batch * c->classes;
  sn_status s = run(c, c->ref, keep, x, n, ro);
  for (int t = 0; s == SN_OK && t < c->ntests; ++t) {
    c->test = t;
    s = run(c, c->tests[t], measure, x, n, to);
    for (int i = 0; s == SN_OK && i < n; ++i)
      c->agree[t] += argmax(ro + (size_t)i * c->classes, c->classes) ==
                     argmax(to + (size_t)i * c->classes, c->classes);
  }
  if (s == SN_OK) c->agree[c->ntests] += n;
  return s;
}

sn_status sn_compare_finish(sn_compare *c, sn_comm *comm) {
  if (!comm) comm = sn_comm_serial();
  if (c->finished)
    return sn_error_set(SN_ERR_INVALID, "%s: sn_compare_finish called twice", c->ref->arch);
  c->finished = 1;
  const size_t m = (size_t)c->ntests * c->nl;
  sn_status s = sn_comm_allreduce(comm, c->acc, m * ACC_N, SN_F64, SN_SUM);
  sn_status r = sn_comm_allreduce(comm, c->cmin, m, SN_F64, SN_MIN);
  if (s == SN_OK) s = r;
  r = sn_comm_allreduce(comm, c->agree, (size_t)c->ntests + 1, SN_F64, SN_SUM);
  return s == SN_OK ? r : s;
}

int sn_compare_num_layers(const sn_compare *c) { return c->nl; }

int64_t sn_compare_images(const sn_compare *c) { return (int64_t)c->agree[c->ntests]; }

sn_status sn_compare_layer(const sn_compare *c, int test, int i, sn_layer_error *out) {
  if (test < 0 || test >= c->ntests || i < 0 || i >= c->nl)
    return sn_error_set(SN_ERR_INVALID, "%s: comparison (%d, %d) out of range (%d, %d)",
                        c->ref->arch, test, i, c->ntests, c->nl);
  const double *a = c->acc + ((size_t)test * c->nl + i) * ACC_N;
  const double images = c->agree[c->ntests];
  out->layer = c->layers[i].name;
  out->kind = c->layers[i].kind;
  out->values = (int64_t)c->layers[i].size;
  out->role =
      (i == c->output ? SN_LAYER_IS_OUTPUT : 0) | (i == c->feature ? SN_LAYER_IS_FEATURES : 0);
  out->rel_l2 = a[ACC_R2] > 0 ? sqrt(a[ACC_D2] / a[ACC_R2]) : a[ACC_D2] > 0 ? INFINITY : 0.0;
  out->cos_mean = images > 0 ? a[ACC_COS] / images : 0.0;
  out->cos_min = c->cmin[(size_t)test * c->nl + i];
  return SN_OK;
}

double sn_compare_top1_agreement(const sn_compare *c, int test) {
  if (test < 0 || test >= c->ntests || !(c->agree[c->ntests] > 0) || !c->ref->cfg.include_top)
    return -1.0;
  return c->agree[test] / c->agree[c->ntests];
}
