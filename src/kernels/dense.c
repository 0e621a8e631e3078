/* dense.c - fully connected layer: y (N, Out) = x (N, In) . w (In, Out) + b.
 *
 * Plain OpenMP loops the compiler vectorises (dense_body.h, built for AVX-512 and for the
 * baseline and chosen at run time), not OpenBLAS: the layers are small (resnet50's classifier is
 * 2048 x 1000, 4 MFLOP per image) and a threaded OpenBLAS call leaves its worker threads
 * spinning in sched_yield for about 0.1 s afterwards, competing with the engine's own threads in
 * the next layers (4.7% of the CPU samples of resnet50 inference at batch 8). Every output
 * element is summed by one thread in a fixed order, so results do not depend on the thread
 * count. */
#include <omp.h>

#include "kernels.h"

#define SN_DENSE_COLS 256 /* output columns per task: an (N x 256) block of y stays in cache */

#define SN_DENSE_SFX generic
#include "dense_body.h"
#undef SN_DENSE_SFX

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#define SN_DENSE_SFX avx512
#include "dense_body.h"
#undef SN_DENSE_SFX
#pragma GCC pop_options

void sn_dense_forward(int portable, const float *x, const float *w, const float *b, int n, int in,
                      int out, float *y) {
  if (sn_use_avx512(portable))
    forward_avx512(x, w, b, n, in, out, y);
  else
    forward_generic(x, w, b, n, in, out, y);
}

void sn_dense_backward(int portable, const float *x, const float *w, const float *dy, int n, int in,
                       int out, float *dx, float *dw, float *db) {
  if (sn_use_avx512(portable))
    backward_avx512(x, w, dy, n, in, out, dx, dw);
  else
    backward_generic(x, w, dy, n, in, out, dx, dw);
  if (db) {
    for (int j = 0; j < out; ++j) {
      double s = 0.0;
      for (int r = 0; r < n; ++r)
        s += dy[(size_t)r * out + j];
      db[j] = (float)s;
    }
  }
}
