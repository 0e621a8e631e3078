/* calib.c - calibration of int8 activation scales: float32 forward passes that count every
 * convolution's and dense layer's input into a histogram (sn_hist, kernels/quant.c), then one
 * threshold per layer from the histograms summed over the ranks.
 *
 * The passes run the net's float32 inference plan with every fusion but SN_FUSE_BNIN, so that
 * each observed input is a tensor in the arena, read just before the layer runs (later layers may
 * reuse its memory). Counts are integers and extrema exact, so the sums over images, batches
 * and ranks - hence the thresholds - do not depend on how the sample was split. */
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

struct sn_calibrator {
  sn_net *net;
  int max_batch;
  int nobs;      /* observed layers */
  int *layer;    /* (nobs) their indices */
  sn_hist *hist; /* (nobs) */
  int64_t rows;  /* images added on this rank (all ranks after finish) */
};

const char *sn_calib_method_name(sn_calib_method m) {
  switch (m) {
  case SN_CALIB_MSE:
    return "mse";
  case SN_CALIB_MAX:
    return "max";
  case SN_CALIB_PERCENTILE:
    return "percentile";
  }
  return "?";
}

sn_status sn_calib_method_parse(const char *name, sn_calib_method *out) {
  for (int m = SN_CALIB_MSE; m <= SN_CALIB_PERCENTILE; ++m)
    if (name && !strcmp(name, sn_calib_method_name((sn_calib_method)m))) {
      *out = (sn_calib_method)m;
      return SN_OK;
    }
  return sn_error_set(SN_ERR_INVALID, "calibration method '%s' is not mse, max or percentile",
                      name ? name : "(null)");
}

int64_t sn_calib_rows(int64_t n, int64_t count, int rank, int size, int64_t *rows) {
  const int64_t c = count < n ? count : n;
  if (c <= 0 || size <= 0 || rank < 0 || rank >= size) return 0;
  int64_t b, e;
  sn_shard_block(c, rank, size, &b, &e);
  for (int64_t i = b; i < e; ++i)
    rows[i - b] = (int64_t)((unsigned __int128)i * (unsigned __int128)n / (unsigned __int128)c);
  return e - b;
}

void sn_calibrator_destroy(sn_calibrator *c) {
  if (!c) return;
  free(c->layer);
  free(c->hist);
  free(c);
}

sn_status sn_calibrator_create(sn_net *net, int max_batch, sn_calibrator **out) {
  *out = NULL;
  const sn_engine_options saved = net->opts;
  net->opts.precision = SN_PRECISION_FP32;
  net->opts.fuse &= ~(unsigned)SN_FUSE_BNIN;
  sn_status s = sn_net_plan(net, max_batch, 0);
  net->opts = saved; /* read by the plan only */
  if (s != SN_OK) return s;
  sn_calibrator *c = calloc(1, sizeof *c);
  if (!c) return sn_error_set(SN_ERR_NOMEM, "%s: out of memory for calibration", net->arch);
  c->net = net;
  c->max_batch = max_batch;
  c->nobs = sn_net_num_act_scales(net);
  c->layer = malloc((size_t)(c->nobs ? c->nobs : 1) * sizeof *c->layer);
  c->hist = malloc((size_t)(c->nobs ? c->nobs : 1) * sizeof *c->hist);
  if (!c->layer || !c->hist) {
    sn_calibrator_destroy(c);
    return sn_error_set(SN_ERR_NOMEM, "%s: out of memory for %d calibration histograms", net->arch,
                        c->nobs);
  }
  for (int j = 0, k = 0; j < net->nlayers; ++j)
    if (sn_lowp_scalable(&net->layers[j])) {
      c->layer[k] = j;
      sn_hist_init(&c->hist[k++]);
    }
  *out = c;
  return SN_OK;
}

/* Counts the input of observed layer k (n images) into its histogram. */
static sn_status observe(sn_calibrator *c, int k, int n) {
  const sn_net *net = c->net;
  const sn_layer *l = &net->layers[c->layer[k]];
  const size_t count = (size_t)n * sn_shape_size(*sn_layer_in_shape(net, l, 0));
  sn_hist *h = &c->hist[k];
  const int64_t bad = h->nonfinite;
  sn_hist_add(h, sn_layer_input(net, l, 0), count);
  if (h->nonfinite != bad)
    return sn_error_set(SN_ERR_NUMERIC, "layer %s: NaN or infinity in its input during calibration",
                        l->name);
  return SN_OK;
}

sn_status sn_calibrator_add(sn_calibrator *c, const float *x, int n) {
  sn_net *net = c->net;
  if (!net->planned || net->training || net->max_batch != c->max_batch)
    return sn_error_set(SN_ERR_INVALID, "%s: the net was replanned during calibration", net->arch);
  if (n <= 0 || n > c->max_batch)
    return sn_error_set(SN_ERR_INVALID, "%s: calibration batch %d outside 1..%d", net->arch, n,
                        c->max_batch);
  net->input = x;
  net->last_n = n;
  sn_status s = SN_OK;
  for (int j = 0, k = 0; j < net->nlayers && s == SN_OK; ++j) {
    sn_layer *l = &net->layers[j];
    const int observed = k < c->nobs && c->layer[k] == j;
    if (observed && !l->fuse.skip) s = observe(c, k, n);
    k += observed;
    if (s == SN_OK && !l->fuse.skip && l->ops->forward) s = l->ops->forward(net, l, n, 0);
  }
  net->input = NULL;
  if (s == SN_OK) c->rows += n;
  return s;
}

int64_t sn_calibrator_rows(const sn_calibrator *c) { return c->rows; }

/* Sums the histograms, extrema and image counts over the ranks: every rank makes the same calls,
 * whatever happened before (the first failure is kept). */
static sn_status merge(sn_calibrator *c, sn_comm *comm) {
  float *mn = malloc((size_t)(c->nobs ? c->nobs : 1) * 2 * sizeof *mn);
  if (!mn) return sn_comm_agree(comm, sn_error_set(SN_ERR_NOMEM, "calibration: out of memory"));
  sn_status s = sn_comm_agree(comm, SN_OK); /* every rank has its buffers */
  if (s != SN_OK) {
    free(mn);
    return s;
  }
  float *mx = mn + c->nobs;
  for (int k = 0; k < c->nobs; ++k) {
    mn[k] = c->hist[k].min;
    mx[k] = c->hist[k].max;
    sn_status r = sn_comm_allreduce(comm, c->hist[k].bins, SN_HIST_BINS + 2, SN_I64, SN_SUM);
    if (s == SN_OK) s = r;
  }
  sn_status r = sn_comm_allreduce(comm, mn, (size_t)c->nobs, SN_F32, SN_MIN);
  if (s == SN_OK) s = r;
  r = sn_comm_allreduce(comm, mx, (size_t)c->nobs, SN_F32, SN_MAX);
  if (s == SN_OK) s = r;
  r = sn_comm_allreduce(comm, &c->rows, 1, SN_I64, SN_SUM);
  if (s == SN_OK) s = r;
  for (int k = 0; k < c->nobs; ++k) {
    c->hist[k].min = mn[k];
    c->hist[k].max = mx[k];
  }
  free(mn);
  return s;
}

sn_status sn_calibrator_finish(sn_calibrator *c, sn_comm *comm, sn_calib_method method) {
  if (!comm) comm = sn_comm_serial();
  sn_status s = merge(c, comm);
  if (s != SN_OK) return s;
  sn_net *net = c->net;
  if (c->rows == 0) return sn_error_set(SN_ERR_INVALID, "%s: calibration saw no images", net->arch);
  for (int k = 0; k < c->nobs; ++k) {
    const sn_hist *h = &c->hist[k];
    const sn_layer *l = &net->layers[c->layer[k]];
    const double t = sn_hist_threshold(h, method, h->min < 0 ? 127 : 255);
    if (!(t > 0))
      return sn_error_set(SN_ERR_INVALID,
                          "layer %s: its input was zero on all %lld calibration images", l->name,
                          (long long)c->rows);
    s = sn_net_set_act_scale(net, l->name, (float)t, h->min, h->max);
    if (s != SN_OK) return s;
  }
  return SN_OK;
}
