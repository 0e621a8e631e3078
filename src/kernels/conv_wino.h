/* conv_wino.h - private to src/kernels: Winograd convolutions for 3x3 stride-1 layers
 * (conv_wino.c). Inference: F(4x4, 3x3) or F(2x2, 3x3) (m = 4 or 2) on the GEMM block, with U
 * prepared once at plan time. Training: F(2x2, 3x3) on the direct tiles, forward, backward data
 * and weight gradient, for padding <= 2. conv.c chooses them per geometry and pass; everything
 * here needs AVX-512 except the preparation of U. */
#ifndef SN_CONV_WINO_H
#define SN_CONV_WINO_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Inference. w (3, 3, Cin, Cout) -> u: U = G g G^T computed in double, rounded once, packed per
 * (xi, nu) as GEMM B operands. */
size_t sn_conv_wino_u_floats(int m, int cin, int cout);
void sn_conv_wino_pack_u(int m, int cin, int cout, const float *w, float *u);
size_t sn_conv_wino_packed_workspace(int m, const sn_conv_geom *g, int nthreads);
void sn_conv_wino_forward_packed(int m, const sn_conv_geom *g, int nthreads, const float *x,
                                 const float *u, const float *bias, const float *res, int relu,
                                 float *y, float *ws);

/* Training, F(2x2, 3x3), U of w transformed per call: y = act(conv(x, w) + bias + res); dx (or
 * NULL) and dw (overwritten) of y = conv(x, w). */
size_t sn_conv_wino_forward_workspace(const sn_conv_geom *g);
size_t sn_conv_wino_backward_workspace(const sn_conv_geom *g);
void sn_conv_wino_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                          const float *res, int relu, float *y, float *ws);
void sn_conv_wino_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *ws);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_WINO_H */
