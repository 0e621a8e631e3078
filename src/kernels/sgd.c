/* sgd.c - the SGD parameter update, PyTorch torch.optim.SGD semantics (dampening 0). */
#include "kernels.h"

#define SN_OMP_MIN 32768

void sn_sgd_update(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                   float wd, int nesterov, int first) {
  if (momentum == 0.0f) {
    /* PyTorch keeps no buffer without momentum: p -= lr * (g + wd*p). */
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
    for (long i = 0; i < (long)n; ++i) {
      const float d = g[i] + wd * p[i];
      p[i] -= lr * d;
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i) {
    float d = g[i] + wd * p[i];
    const float b = first ? d : momentum * buf[i] + d;
    buf[i] = b;
    d = nesterov ? d + momentum * b : b;
    p[i] -= lr * d;
  }
}
