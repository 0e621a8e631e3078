/* metrics.c - classification metrics summed over batches and ranks: labelled rows, top-1 and
 * top-k hits, summed cross-entropy and the confusion matrix (`shardnet infer` on a labelled
 * dataset, and validation in `shardnet train`). */
#include <math.h>
#include <stdlib.h>

#include "shardnet.h"

enum { SUM_LOSS, SUM_TOP1, SUM_ROWS, SUM_TOPK, SUM_COUNT };

struct sn_metrics {
  int classes, k;
  double sums[SUM_COUNT];
  double *confusion; /* (classes, classes) counts, row = true class; NULL if not kept */
};

sn_status sn_metrics_create(int classes, int k, int confusion, sn_metrics **out) {
  if (!out) return sn_error_set(SN_ERR_INVALID, "sn_metrics_create: out is NULL");
  *out = NULL;
  if (classes < 1 || k < 1 || k > classes)
    return sn_error_set(SN_ERR_INVALID, "sn_metrics_create: top-%d of %d classes", k, classes);
  sn_metrics *m = calloc(1, sizeof *m);
  if (m && confusion) m->confusion = calloc((size_t)classes * (size_t)classes, sizeof(double));
  if (!m || (confusion && !m->confusion)) {
    free(m);
    return sn_error_set(SN_ERR_NOMEM, "metrics: confusion matrix of %d classes", classes);
  }
  m->classes = classes;
  m->k = k;
  *out = m;
  return SN_OK;
}

void sn_metrics_destroy(sn_metrics *m) {
  if (!m) return;
  free(m->confusion);
  free(m);
}

void sn_metrics_add(sn_metrics *m, int n, const int32_t *labels, const int32_t *top_idx,
                    const float *probs) {
  const int c = m->classes;
  for (int i = 0; i < n; ++i) {
    const int32_t y = labels[i];
    if (y < 0 || y >= c) continue;
    const int32_t *top = top_idx + (size_t)i * m->k;
    if (probs) m->sums[SUM_LOSS] += -log(fmax((double)probs[(size_t)i * c + y], 1e-30));
    m->sums[SUM_TOP1] += top[0] == y;
    for (int t = 0; t < m->k; ++t)
      m->sums[SUM_TOPK] += top[t] == y;
    m->sums[SUM_ROWS] += 1;
    if (m->confusion && top[0] >= 0) m->confusion[(size_t)y * c + top[0]] += 1;
  }
}

sn_status sn_metrics_allreduce(sn_metrics *m, sn_comm *comm) {
  if (!m) return sn_error_set(SN_ERR_INVALID, "sn_metrics_allreduce: NULL metrics");
  sn_status s = sn_comm_allreduce(comm, m->sums, SUM_COUNT, SN_F64, SN_SUM);
  if (s == SN_OK && m->confusion)
    s = sn_comm_allreduce(comm, m->confusion, (size_t)m->classes * m->classes, SN_F64, SN_SUM);
  return s;
}

void sn_metrics_sums(const sn_metrics *m, double *rows, double *top1, double *topk, double *loss) {
  if (rows) *rows = m->sums[SUM_ROWS];
  if (top1) *top1 = m->sums[SUM_TOP1];
  if (topk) *topk = m->sums[SUM_TOPK];
  if (loss) *loss = m->sums[SUM_LOSS];
}

const double *sn_metrics_confusion(const sn_metrics *m) { return m ? m->confusion : NULL; }
