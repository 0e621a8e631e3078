/* conv_direct.h - private to src/kernels: the AVX-512 direct convolution behind
 * sn_conv2d_forward / sn_conv2d_backward (the training path; conv.c dispatches here when
 * sn_cpu_has_avx512()). NHWC, float32, no im2col for the forward and the weight gradient.
 *
 * Work is split into chunks of whole images, G = min(N, SN_DCONV_CHUNKS) (4 for the backward of
 * layers with more than 64K weights); each chunk owns a slice of the workspace (zero-padded
 * copies of its images, the weight-gradient partial sums) and is processed by one thread at a
 * time (dynamic schedule). The weight gradient is the sum of the chunks' partials in chunk order,
 * so every result is independent of the thread count and of the schedule. The workspace is the
 * largest need of the paths the geometry may take (direct, Winograd, packed GEMM), valid
 * whichever runs. */
#ifndef SN_CONV_DIRECT_H
#define SN_CONV_DIRECT_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SN_DCONV_CHUNKS 8

size_t sn_dconv_forward_workspace(const sn_conv_geom *g);
size_t sn_dconv_backward_workspace(const sn_conv_geom *g);
/* Same contracts as sn_conv2d_forward_in / sn_conv2d_backward_in (in NULL: sn_conv2d_forward /
 * sn_conv2d_backward); only when sn_cpu_has_avx512(). */
void sn_dconv_forward_avx512(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                             const float *w, const float *bias, const float *res, int relu,
                             float *y, float *ws);
/* dx_acc: dx += the input gradient (only where sn_dconv_dx_direct(g)). */
void sn_dconv_backward_avx512(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                              const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                              float *db, float *ws);
/* 1 when the forward and the weight gradient of g run on the direct tiles from zero-padded
 * copies of the input images (padding, not Winograd, not the packed GEMM): an input map (in)
 * can be applied as the images are copied. */
int sn_dconv_input_map_ok(const sn_conv_geom *g);
/* 1 when the backward data pass of g runs on the direct kernels (not Winograd, not the GEMM). */
int sn_dconv_dx_direct(const sn_conv_geom *g);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_DIRECT_H */
