/* dense_body.h - private to dense.c: the loops of the dense layer, included once per instruction
 * set with SN_DENSE_SFX naming the functions (dense.c picks one at run time). */
#define SN_DENSE_CAT2(a, b) a##_##b
#define SN_DENSE_CAT(a, b) SN_DENSE_CAT2(a, b)
#define SN_DENSE_FN(name) SN_DENSE_CAT(name, SN_DENSE_SFX)

static void SN_DENSE_FN(forward)(const float *x, const float *w, const float *b, int n, int in,
                                 int out, float *y) {
  int nblk = (out + SN_DENSE_COLS - 1) / SN_DENSE_COLS;
#pragma omp parallel for schedule(static) if (nblk > 1 && (double)n * in * out > 1e6)
  for (int blk = 0; blk < nblk; ++blk) {
    int c0 = blk * SN_DENSE_COLS, c1 = out < c0 + SN_DENSE_COLS ? out : c0 + SN_DENSE_COLS;
    for (int r = 0; r < n; ++r) {
      float *yr = y + (size_t)r * out;
      for (int j = c0; j < c1; ++j)
        yr[j] = b ? b[j] : 0.0f;
    }
    for (int k = 0; k < in; ++k) {
      const float *wk = w + (size_t)k * out;
      for (int r = 0; r < n; ++r) {
        const float a = x[(size_t)r * in + k];
        float *yr = y + (size_t)r * out;
#pragma omp simd
        for (int j = c0; j < c1; ++j)
          yr[j] += a * wk[j];
      }
    }
  }
}

static void SN_DENSE_FN(backward)(const float *x, const float *w, const float *dy, int n, int in,
                                  int out, float *dx, float *dw) {
  const int par = (double)n * in * out > 1e6;
  /* dw (In, Out) = x^T . dy: row k of dw sums x[r][k] * dy[r][:] over r */
#pragma omp parallel for schedule(static) if (par)
  for (int k = 0; k < in; ++k) {
    float *dwk = dw + (size_t)k * out;
    for (int j = 0; j < out; ++j)
      dwk[j] = 0.0f;
    for (int r = 0; r < n; ++r) {
      const float a = x[(size_t)r * in + k];
      const float *dyr = dy + (size_t)r * out;
#pragma omp simd
      for (int j = 0; j < out; ++j)
        dwk[j] += a * dyr[j];
    }
  }
  /* dx (N, In) = dy . w^T: dot products of dy's rows with w's rows */
  if (dx) {
#pragma omp parallel for schedule(static) if (par)
    for (int k = 0; k < in; ++k) {
      const float *wk = w + (size_t)k * out;
      for (int r = 0; r < n; ++r) {
        const float *dyr = dy + (size_t)r * out;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < out; ++j)
          s += dyr[j] * wk[j];
        dx[(size_t)r * in + k] = s;
      }
    }
  }
}

#undef SN_DENSE_FN
#undef SN_DENSE_CAT
#undef SN_DENSE_CAT2
