/* train.c - one training step (forward, loss, backward, gradient all-reduce) and SGD. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

void sn_net_set_bucket_mb(sn_net *net, double mb) {
  size_t f = (size_t)(mb * 1048576.0 / sizeof(float));
  net->bucket_floats = f ? f : 1;
}

sn_status sn_net_set_comm(sn_net *net, sn_comm *comm, int sync_bn) {
  net->comm = comm;
  net->sync_bn = sync_bn;
  return SN_OK;
}

sn_status sn_net_set_bn_comm(sn_net *net, sn_comm *bn_comm) {
  if (!net) return sn_error_set(SN_ERR_INVALID, "sn_net_set_bn_comm: NULL net");
  net->bn_comm = bn_comm;
  return SN_OK;
}

void sn_net_comm_stats(const sn_net *net, double *exposed_seconds, int64_t *bytes) {
  if (exposed_seconds) *exposed_seconds = net->comm_exposed_s;
  if (bytes) *bytes = net->comm_bytes;
}

void sn_net_comm_buckets(const sn_net *net, int64_t *launched, int64_t *done_in_backward) {
  if (launched) *launched = net->comm_buckets;
  if (done_in_backward) *done_in_backward = net->comm_buckets_early;
}

int64_t sn_net_sgd_steps(const sn_net *net) { return net->sgd_steps; }
void sn_net_set_sgd_steps(sn_net *net, int64_t steps) { net->sgd_steps = steps; }

void sn_net_zero_init_residual(sn_net *net) {
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    if (l->residual_last_bn && l->ops->type == SN_LAYER_BN)
      memset(sn_param_data(net, l, 0), 0, (size_t)l->out.c * sizeof(float));
  }
}

/* Lowest trainable offset of the parameters of layers >= j (grads there are final once layer j's
 * backward ran), or ntrainable if none. */
static size_t first_offset_from(const sn_net *net, int j) {
  const sn_layer *l = &net->layers[j];
  for (int k = 0; k < l->np; ++k) {
    const sn_param *p = &net->params[l->p0 + k];
    if (p->trainable) return p->offset;
  }
  return (size_t)-1;
}

typedef struct bucket_state {
  sn_request *req[4096];
  int nreq;
  int ndone; /* req[0, ndone) are known to have completed (sn_comm_test) */
  size_t pending_end;
} bucket_state;

static sn_status launch(sn_net *net, bucket_state *b, size_t lo) {
  if (b->pending_end <= lo) return SN_OK;
  if (b->nreq == (int)(sizeof b->req / sizeof b->req[0])) {
    double t0 = omp_get_wtime();
    for (int i = 0; i < b->nreq; ++i) {
      sn_status s = sn_comm_wait(net->comm, b->req[i]);
      if (s != SN_OK) return s;
    }
    net->comm_exposed_s += omp_get_wtime() - t0;
    net->comm_buckets += b->nreq;
    net->comm_buckets_early += b->ndone;
    b->nreq = b->ndone = 0;
  }
  sn_status s =
      sn_comm_iallreduce_f32(net->comm, net->grads + lo, b->pending_end - lo, &b->req[b->nreq]);
  if (s != SN_OK) return s;
  b->nreq++;
  b->pending_end = lo;
  return SN_OK;
}

/* The MPI library has no progress thread (Open MPI 4.1: "OMPI progress: no"), so a launched
 * bucket advances only inside MPI calls. After each layer's backward, test the oldest bucket not
 * yet known complete: each test enters the progress engine, which advances every pending
 * non-blocking collective. No call at all when nothing is pending. */
static sn_status poll_buckets(sn_net *net, bucket_state *b) {
  while (b->ndone < b->nreq) {
    int done = 0;
    sn_status s = sn_comm_test(net->comm, b->req[b->ndone], &done);
    if (s != SN_OK) return s;
    if (!done) break;
    b->ndone++;
  }
  return SN_OK;
}

sn_status sn_net_train_step(sn_net *net, const float *x, const int32_t *labels, int n, int global_n,
                            const sn_train_config *cfg, float *loss, int *correct) {
  if (!net->planned || !net->training)
    return sn_error_set(SN_ERR_INVALID, "%s: training needs sn_net_plan(net, batch, 1)", net->arch);
  if (n <= 0 || n > net->max_batch || global_n < n)
    return sn_error_set(SN_ERR_INVALID, "%s: batch %d (global %d) outside 1..%d", net->arch, n,
                        global_n, net->max_batch);
  sn_layer *out = &net->layers[net->output];
  int k = out->out.c;
  if (out->out.h != 1 || out->out.w != 1 || out->ops->type != SN_LAYER_DENSE)
    return sn_error_set(SN_ERR_INVALID, "%s: training needs a classifier top", net->arch);
  for (int i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= k)
      return sn_error_set(SN_ERR_INVALID, "%s: label %d of sample %d outside [0, %d)", net->arch,
                          labels[i], i, k);
  net->input = x;
  net->tcfg = cfg;
  net->last_n = n;
  for (int j = 0; j < net->nlayers; ++j) {
    sn_layer *l = &net->layers[j];
    l->dy_written = 0;
    if (l->fuse.skip) continue; /* a ReLU fused into its producer */
    double t0 = net->prof ? omp_get_wtime() : 0;
    sn_status s = l->ops->forward(net, l, n, 1);
    if (s != SN_OK) return s; /* a sync-BN all-reduce failed (no later collective is started) */
    if (net->prof) net->prof[j] += omp_get_wtime() - t0;
  }
  int ok = 0;
  double sum = sn_softmax_xent(out->y, labels, n, k, cfg->label_smoothing, 1.0f / (float)global_n,
                               out->dy, &ok);
  if (correct) *correct = ok;
  if (loss) *loss = (float)(sum / n);
  /* A non-finite loss is reported after backward, so that every rank still joins the same
   * collectives (a rank returning early would leave the others waiting). */
  int bad_loss = !isfinite(sum);
  out->dy_written = 1;

  int dist = net->comm && sn_comm_size(net->comm) > 1;
  bucket_state b;
  b.nreq = b.ndone = 0;
  b.pending_end = net->ntrainable;
  for (int j = net->nlayers - 1; j >= 0; --j) {
    sn_layer *l = &net->layers[j];
    if (!l->fuse.skip) {
      double t0 = net->prof ? omp_get_wtime() : 0;
      if (!l->dy_written) /* unreachable from the loss: zero gradient */
        memset(l->dy, 0, (size_t)n * sn_shape_size(l->out) * sizeof(float));
      if (l->ops->backward) {
        sn_status s = l->ops->backward(net, l, n);
        if (s != SN_OK) return s;
      }
      if (net->prof) net->prof[net->nlayers + j] += omp_get_wtime() - t0;
    }
    if (dist) {
      size_t lo = first_offset_from(net, j);
      if (lo != (size_t)-1 && b.pending_end - lo >= net->bucket_floats) {
        sn_status s = launch(net, &b, lo);
        if (s != SN_OK) return s;
      }
      if (net->opts.comm_poll) {
        sn_status s = poll_buckets(net, &b);
        if (s != SN_OK) return s;
      }
    }
  }
  net->input = NULL;
  if (net->prof) net->prof_passes++;
  if (dist) {
    /* Exposed communication: from the end of backward until every bucket is reduced. One test
     * first (also without polling) counts the buckets that completed during backward. */
    double t0 = omp_get_wtime();
    sn_status s = poll_buckets(net, &b);
    net->comm_buckets_early += b.ndone;
    net->comm_buckets += b.nreq + (b.pending_end > 0);
    if (s == SN_OK) s = launch(net, &b, 0);
    for (int i = 0; i < b.nreq && s == SN_OK; ++i)
      s = sn_comm_wait(net->comm, b.req[i]);
    net->comm_exposed_s += omp_get_wtime() - t0;
    net->comm_bytes += (int64_t)(net->ntrainable * sizeof(float));
    if (s != SN_OK) return s;
  }
  if (bad_loss)
    return sn_error_set(SN_ERR_NUMERIC, "%s: loss is %s", net->arch,
                        isnan(sum) ? "NaN" : "infinite");
  return SN_OK;
}

sn_status sn_net_sgd_update(sn_net *net, const sn_train_config *cfg, float lr) {
  if (!net->grads || !net->momentum)
    return sn_error_set(SN_ERR_INVALID, "%s: no gradients (plan with training = 1)", net->arch);
  int first = net->sgd_steps == 0;
  for (int i = 0; i < net->nparams; ++i) {
    const sn_param *p = &net->params[i];
    if (!p->trainable) continue;
    int exempt = !cfg->decay_bn_and_bias && p->role != SN_ROLE_KERNEL;
    sn_sgd_update(net->block + p->offset, net->grads + p->offset, net->momentum + p->offset,
                  (size_t)p->count, lr, cfg->momentum, exempt ? 0.0f : cfg->weight_decay,
                  cfg->nesterov, first);
  }
  net->sgd_steps++;
  if (!sn_all_finite(net->block, net->ntrainable))
    return sn_error_set(SN_ERR_NUMERIC, "%s: parameters became non-finite after SGD step %lld",
                        net->arch, (long long)net->sgd_steps);
  return SN_OK;
}

int sn_values_finite(const float *x, size_t n) { return sn_all_finite(x, n); }
