/* eltwise.c - ReLU, residual add, Keras-style zero padding and the finiteness check. */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define SN_OMP_MIN 32768

void sn_relu_forward(const float *x, size_t n, float *y) {
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx = dy where y > 0, else 0 (the gradient at 0 is 0, as in PyTorch). */
void sn_relu_backward(const float *y, const float *dy, size_t n, float *dx) {
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void sn_add_forward(const float *a, const float *b, size_t n, int relu, float *y) {
  if (relu) {
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
    for (long i = 0; i < (long)n; ++i) {
      const float v = a[i] + b[i];
      y[i] = v > 0.0f ? v : 0.0f;
    }
  } else {
#pragma omp parallel for schedule(static) if (n > SN_OMP_MIN)
    for (long i = 0; i < (long)n; ++i) y[i] = a[i] + b[i];
  }
}

/* x (N, H, W, C) -> y (N, H+pt+pb, W+pl+pr, C), zeros in the border. */
void sn_pad_forward(const float *x, int n, int h, int w, int c, int pt, int pl, int pb, int pr,
                    float *y) {
  const int yh = h + pt + pb, yw = w + pl + pr;
  const long rows = (long)n * yh;
  const size_t total = (size_t)rows * yw * c;
#pragma omp parallel for schedule(static) if (total > SN_OMP_MIN)
  for (long r = 0; r < rows; ++r) {
    const int img = (int)(r / yh), oy = (int)(r % yh), iy = oy - pt;
    float *yr = y + (size_t)r * yw * c;
    if (iy < 0 || iy >= h) {
      memset(yr, 0, (size_t)yw * c * sizeof(float));
      continue;
    }
    memset(yr, 0, (size_t)pl * c * sizeof(float));
    memcpy(yr + (size_t)pl * c, x + ((size_t)img * h + iy) * w * c, (size_t)w * c * sizeof(float));
    memset(yr + (size_t)(pl + w) * c, 0, (size_t)pr * c * sizeof(float));
  }
}

/* dy (N, H+pt+pb, W+pl+pr, C) -> dx (N, H, W, C): the interior crop. */
void sn_pad_backward(const float *dy, int n, int h, int w, int c, int pt, int pl, int pb, int pr,
                     float *dx) {
  const int yh = h + pt + pb, yw = w + pl + pr;
  const long rows = (long)n * h;
  const size_t total = (size_t)rows * w * c;
#pragma omp parallel for schedule(static) if (total > SN_OMP_MIN)
  for (long r = 0; r < rows; ++r) {
    const int img = (int)(r / h), iy = (int)(r % h);
    memcpy(dx + (size_t)r * w * c, dy + (((size_t)img * yh + iy + pt) * yw + pl) * c,
           (size_t)w * c * sizeof(float));
  }
}

int sn_all_finite(const float *x, size_t n) {
  int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (n > SN_OMP_MIN)
  for (long i = 0; i < (long)n; ++i) ok = ok && isfinite(x[i]);
  return ok;
}
