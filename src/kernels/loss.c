/* loss.c - softmax cross-entropy with label smoothing (PyTorch CrossEntropyLoss semantics). */
#include <math.h>

#include "kernels.h"

/* Rows are split into a fixed number of blocks whose partial losses are summed in block order:
 * the result does not depend on the thread count. */
#define SN_XENT_BLOCKS 64

/* Per row, with lse = log sum_k exp(l_k) (computed stably around the max):
 *   loss = (1-eps) * (lse - l_y) + eps * mean_k (lse - l_k)
 *   dlogits = scale * (p - ((1-eps) * onehot(y) + eps/K)). */
double sn_softmax_xent(const float *logits, const int32_t *labels, int n, int k, float smoothing,
                       float scale, float *dlogits, int *correct) {
  double part[SN_XENT_BLOCKS] = {0};
  int hits[SN_XENT_BLOCKS] = {0};
  const double eps = smoothing;
  const int per = (n + SN_XENT_BLOCKS - 1) / SN_XENT_BLOCKS;
#pragma omp parallel for schedule(static) if ((size_t)n * k > 32768)
  for (int b = 0; b < SN_XENT_BLOCKS; ++b) {
    const int r0 = b * per, r1 = r0 + per < n ? r0 + per : n;
    for (int r = r0; r < r1; ++r) {
      const float *l = logits + (size_t)r * k;
      const int y = labels[r];
      int am = 0;
      for (int j = 1; j < k; ++j)
        if (l[j] > l[am]) am = j;
      const double m = l[am];
      double se = 0.0, sl = 0.0;
      for (int j = 0; j < k; ++j) {
        se += exp((double)l[j] - m);
        sl += l[j];
      }
      const double lse = m + log(se);
      part[b] += (1.0 - eps) * (lse - l[y]) + eps * (lse - sl / k);
      hits[b] += am == y;
      if (dlogits) {
        float *d = dlogits + (size_t)r * k;
        const double off = eps / k;
        for (int j = 0; j < k; ++j) {
          const double p = exp((double)l[j] - lse);
          const double t = off + (j == y ? 1.0 - eps : 0.0);
          d[j] = (float)(scale * (p - t));
        }
      }
    }
  }
  double loss = 0.0;
  int c = 0;
  for (int b = 0; b < SN_XENT_BLOCKS; ++b) {
    loss += part[b];
    c += hits[b];
  }
  if (correct) *correct = c;
  return loss;
}
