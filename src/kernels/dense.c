/* dense.c - fully connected layer: y (N, Out) = x (N, In) . w (In, Out) + b. */
#include <cblas.h>

#include "kernels.h"

void sn_dense_forward(const float *x, const float *w, const float *b, int n, int in, int out,
                      float *y) {
  /* Seed y with the bias, then accumulate the product into it. */
  if (b) {
    for (int r = 0; r < n; ++r)
      for (int j = 0; j < out; ++j) y[(size_t)r * out + j] = b[j];
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, x, in, w, out,
              b ? 1.0f : 0.0f, y, out);
}

void sn_dense_backward(const float *x, const float *w, const float *dy, int n, int in, int out,
                       float *dx, float *dw, float *db) {
  /* dw (In, Out) = x^T . dy */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, x, in, dy, out, 0.0f, dw,
              out);
  /* dx (N, In) = dy . w^T */
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, dy, out, w, out, 0.0f,
                dx, in);
  if (db) {
    for (int j = 0; j < out; ++j) {
      double s = 0.0;
      for (int r = 0; r < n; ++r) s += dy[(size_t)r * out + j];
      db[j] = (float)s;
    }
  }
}
