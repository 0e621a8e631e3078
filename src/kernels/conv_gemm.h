/* conv_gemm.h - private to src/kernels: convolution as a packed AVX-512 GEMM (conv_gemm.c), on
 * the GEMM block of conv_gemm_block.h. Inference runs on weights packed once at plan time (the
 * _packed functions, nthreads the threads the call may use); training packs them per call (the
 * forward, the stride-1 backward data as the forward of dy with the flipped kernel, the weight
 * gradient). conv.c chooses it per geometry and pass; everything here needs AVX-512. */
#ifndef SN_CONV_GEMM_H
#define SN_CONV_GEMM_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The packed weights of g: w (KH, KW, Cin, Cout) viewed as B (KH*KW*Cin, Cout). */
size_t sn_conv_gemm_weights_floats(const sn_conv_geom *g);
void sn_conv_gemm_pack_weights(const sn_conv_geom *g, const float *w, float *bp);
/* 1 if g's K = KH*KW*Cin is one K block: every output element is then written once, by the
 * epilogue of the tile that has just read the same element of the residual. */
int sn_conv_gemm_single_kblock(const sn_conv_geom *g);

/* Inference: y = act(conv(x', w) + bias + res), bp = sn_conv_gemm_pack_weights; x' = x through
 * the input map in (unpadded 1x1 only: applied as the A rows are copied), or x (in NULL).
 * g->n is the batch of this call; the workspace bound holds for every batch up to g->n. */
size_t sn_conv_gemm_packed_workspace(const sn_conv_geom *g, int nthreads);
void sn_conv_gemm_forward_packed(const sn_conv_geom *g, int nthreads, const float *x,
                                 const sn_conv_in *in, const float *bp, const float *bias,
                                 const float *res, int relu, float *y, float *ws);

/* Training: the same with w (KH, KW, Cin, Cout) packed per call. */
size_t sn_conv_gemm_forward_workspace(const sn_conv_geom *g);
void sn_conv_gemm_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                          const float *res, int relu, float *y, float *ws);
/* dx of a stride-1 g as the forward pass over dy of b, g's backward-data geometry (conv.c: Cin
 * and Cout swapped, padding KH-1-pt ...), with the kernel flipped and transposed. */
size_t sn_conv_gemm_backward_data_workspace(const sn_conv_geom *g, const sn_conv_geom *b);
void sn_conv_gemm_backward_data(const sn_conv_geom *g, const sn_conv_geom *b, const float *w,
                                const float *dy, float *dx, float *ws);
/* dw (KH, KW, Cin, Cout) = the weight gradient (overwritten). */
size_t sn_conv_gemm_wgrad_workspace(const sn_conv_geom *g);
void sn_conv_gemm_wgrad(const sn_conv_geom *g, const float *x, const float *dy, float *dw,
                        float *ws);

#ifdef __cplusplus
}
#endif
#endif /* SN_CONV_GEMM_H */
