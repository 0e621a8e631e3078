/* conv_generic.h - private to src/kernels: the portable convolution (conv_generic.c), im2col +
 * OpenBLAS sgemm, which conv.c runs without AVX-512 (or with g->opts.portable); and the bias
 * gradient every path shares. The plain reference versions (_ref) are in kernels.h. */
#ifndef SN_CONV_GENERIC_H
#define SN_CONV_GENERIC_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

size_t sn_conv_generic_workspace(const sn_conv_geom *g); /* forward and backward alike */
/* y = act(conv(x, w) + bias + res) */
void sn_conv_generic_forward(const sn_conv_geom *g, const float *x, const float *w,
                             const float *bias, const float *res, int relu, float *y, float *ws);
/* dx (or NULL) and dw (overwritten) of y = conv(x, w) */
void sn_conv_generic_backward(const sn_conv_geom *g, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *ws);
/* db (C) = the column sums of dy (rows, C), in double, independent of the thread count. */
void sn_conv_generic_bias_grad(const float *dy, size_t rows, int c, float *db);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_GENERIC_H */
