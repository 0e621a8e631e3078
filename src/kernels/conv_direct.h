/* conv_direct.h - private to src/kernels: the AVX-512 direct convolution of the training path
 * (and of the inference plans that choose "direct"): forward, backward data and weight gradient
 * on the direct tiles (conv_tiles.h), NHWC, float32, no im2col. conv.c chooses it per geometry
 * and pass.
 *
 * Work is split into chunks of whole images, G = min(N, SN_CONV_CHUNKS) (4 for the backward of
 * layers with more than 64K weights); each chunk owns a slice of the workspace (zero-padded
 * copies of its images, the weight-gradient partial sums) and is processed by one thread at a
 * time (dynamic schedule). The weight gradient is the sum of the chunks' partials in chunk order,
 * so every result is independent of the thread count and of the schedule. */
#ifndef SN_CONV_DIRECT_H
#define SN_CONV_DIRECT_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

size_t sn_conv_direct_forward_workspace(const sn_conv_geom *g);
size_t sn_conv_direct_backward_workspace(const sn_conv_geom *g);
/* y = act(conv(x', w) + bias + res), x' = x through the input map in (NULL: x itself; only for
 * a padded geometry, applied as each image is copied into its padded buffer). */
void sn_conv_direct_forward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                            const float *w, const float *bias, const float *res, int relu, float *y,
                            float *ws);
/* dx (or NULL) and dw (or NULL: dx alone) of y = conv(x', w), x' as in the forward; dx_acc:
 * dx += the input gradient, added in the tiles' output pass. */
void sn_conv_direct_backward(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                             const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                             float *ws);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_DIRECT_H */
