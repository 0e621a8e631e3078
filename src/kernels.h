/* kernels.h - private: the engine's numerical kernels.
 *
 * Kernels are pure functions over const inputs, sizes and a caller-supplied workspace. They never
 * allocate, print, or see the network. Each optimized kernel keeps a plain reference version
 * (suffix _ref) that the tests compare against. Tensors are float32 NHWC, row-major.
 * Threading: kernels may use OpenMP internally; they must not be called from inside a parallel
 * region. OpenBLAS is only called from outside parallel regions.
 * Options: a kernel's algorithm choices are arguments, never read from the environment. A
 * convolution takes them in its geometry (sn_conv_geom.opts); the other kernels with an AVX-512
 * body take a `portable` flag (1: the portable body). Zero means the default (AVX-512 where
 * sn_cpu_has_avx512(), every algorithm by its size rule).
 */
#ifndef SN_KERNELS_H
#define SN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "shardnet.h" /* sn_choice, sn_engine_options, sn_cpu_has_avx512 */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ options */

/* The choices of sn_engine_options that reach the kernels; all zero: the defaults. */
typedef struct sn_kernel_opts {
  int portable;         /* 1: the portable bodies, never AVX-512 */
  sn_choice conv_gemm;  /* training convolutions on the packed GEMM (forward, backward data) */
  sn_choice conv_wgrad; /* training weight gradients on the packed GEMM */
  sn_choice winograd;   /* training 3x3 stride-1 convolutions on Winograd F(2x2, 3x3) */
  unsigned cpu_off;     /* SN_CPU_* features not to use (the low-precision kernels' choice) */
} sn_kernel_opts;

static inline sn_kernel_opts sn_kernel_opts_of(const sn_engine_options *o) {
  sn_kernel_opts k = {o->portable || (o->cpu_off & SN_CPU_AVX512), o->conv_gemm, o->conv_wgrad,
                      o->winograd, o->cpu_off};
  return k;
}

/* 1 when a kernel runs its AVX-512 body: not told `portable` and the CPU has it. */
static inline int sn_use_avx512(int portable) { return !portable && sn_cpu_has_avx512(); }

/* The SN_CPU_* features the kernels may use under opts: the CPU's, less those switched off
 * (none at all when the portable bodies are asked for). */
static inline unsigned sn_kernel_features(const sn_kernel_opts *o) {
  return sn_use_avx512(o->portable) ? sn_cpu_features() & ~o->cpu_off : 0;
}

/* ------------------------------------------------------------ convolution */

/* Geometry of a 2-D convolution (cross-correlation, dilation 1, groups 1, zero padding), with
 * the options its algorithm is chosen by. */
typedef struct sn_conv_geom {
  int n, h, w, cin;    /* input (N, H, W, Cin) */
  int kh, kw, sh, sw;  /* kernel and stride */
  int pt, pl, pb, pr;  /* zero padding top, left, bottom, right */
  int oh, ow, cout;    /* output (N, OH, OW, Cout) */
  sn_kernel_opts opts; /* zero (sn_conv_geom_init): the defaults */
} sn_conv_geom;

/* Fills g, computes oh = (h + pt + pb - kh) / sh + 1 (likewise ow) and takes the kernel choices
 * of opts (NULL: the defaults). Returns 0, or -1 if the output would be empty or any size is not
 * positive. */
int sn_conv_geom_init(sn_conv_geom *g, const sn_engine_options *opts, int n, int h, int w, int cin,
                      int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int cout);

/* A per-channel map applied to a convolution's input as it is read (Cin channels; act = ReLU
 * when relu): inference, x' = act(x * scale + shift) (mean NULL), the operations of
 * sn_bn_affine; training, x' = act((x - mean) * scale + shift), those of the batch norm's
 * normalize pass (sn_bn_normalize(_relu) with scale = gamma * invstd rounded to float, shift =
 * beta). Either way the result is bitwise that of the batch norm's pass followed by the
 * convolution. */
typedef struct sn_conv_in {
  const float *scale, *shift;
  int relu;
  const float *mean;
} sn_conv_in;

/* Workspace (floats) that sn_conv_forward / _backward need for this geometry: the largest need
 * of the algorithms it may take, valid whichever runs. */
size_t sn_conv_forward_workspace(const sn_conv_geom *g);
size_t sn_conv_backward_workspace(const sn_conv_geom *g);

/* y = act(conv(x, w) + bias + res).
 * x (N, H, W, Cin); w (KH, KW, Cin, Cout) = HWIO; bias (Cout) or NULL; res (N, OH, OW, Cout) or
 * NULL (residual added before the activation); relu 0/1; y (N, OH, OW, Cout).
 * With AVX-512 (the training path): direct NHWC tiles, Winograd F(2x2,3x3) or the packed GEMM by
 * geometry and g->opts (kernels/conv.c); results independent of the thread count. Generic path
 * (g->opts.portable or no AVX-512): 1x1 stride-1 unpadded = one sgemm on x in place; otherwise
 * im2col + sgemm. */
void sn_conv_forward(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                     const float *res, int relu, float *y, float *ws);
void sn_conv_forward_ref(const sn_conv_geom *g, const float *x, const float *w, const float *bias,
                         const float *res, int relu, float *y);

/* Backward of y = conv(x, w) + bias (no activation: callers apply the activation's backward
 * first). dy (N, OH, OW, Cout). Outputs are overwritten, not accumulated: dx (N, H, W, Cin) or
 * NULL, dw (KH, KW, Cin, Cout), db (Cout) or NULL. */
void sn_conv_backward(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db, float *ws);
void sn_conv_backward_ref(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db);
/* Whether sn_conv_backward_acc can add the input gradient into dx in its own output pass (the
 * AVX-512 direct path computes dx for this geometry; there o = (dx_tile + dx), bitwise the
 * same as computing dx apart and adding it). */
int sn_conv_backward_accumulates(const sn_conv_geom *g);
/* sn_conv_backward with dx += the input gradient (dx != NULL); only where
 * sn_conv_backward_accumulates(g). */
void sn_conv_backward_acc(const sn_conv_geom *g, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db, float *ws);
/* Training with an input map (the batch norm before the convolution, applied as each image is
 * copied into its zero-padded buffer, so that the normalized tensor is never written): 1 if g
 * takes one, that is the AVX-512 direct kernels run its forward and weight gradient from padded
 * copies. Depends on g->n and the algorithm choices in g->opts: ask per call. */
int sn_conv_train_input_map_ok(const sn_conv_geom *g);
/* sn_conv_forward and sn_conv_backward(_acc) of the convolution of act((x - mean) * scale +
 * shift) (in->mean set), bitwise the same as on that tensor; an input map only where
 * sn_conv_train_input_map_ok(g), in NULL: sn_conv_forward / sn_conv_backward(_acc). dx, dw and
 * db are the gradients w.r.t. the mapped tensor and the weights; dx_acc: dx += (only where
 * sn_conv_backward_accumulates(g)). */
void sn_conv_forward_in(const sn_conv_geom *g, const float *x, const sn_conv_in *in, const float *w,
                        const float *bias, const float *res, int relu, float *y, float *ws);
void sn_conv_backward_in(const sn_conv_geom *g, const float *x, const sn_conv_in *in,
                         const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                         float *db, float *ws);

/* A prepared convolution for inference: the algorithm is chosen (by geometry and g->opts) and the
 * weights are packed or transformed once, at plan time (this is the only place a convolution
 * allocates). g->n is the largest batch the plan will be used for. */
typedef struct sn_conv_impl sn_conv_impl;
int sn_conv_prepare(const sn_conv_geom *g, const float *w, const float *bias, sn_conv_impl **out);
/* Recomputes the packed weights after w/bias changed (same geometry). */
void sn_conv_impl_update(sn_conv_impl *c, const float *w, const float *bias);
size_t sn_conv_impl_workspace(const sn_conv_impl *c); /* floats, for batch g->n */
/* Same contract as sn_conv_forward for n <= g->n images. */
void sn_conv_impl_forward(const sn_conv_impl *c, int n, const float *x, const float *res, int relu,
                          float *y, float *ws);
/* 1 if the prepared convolution of g reads its input through sn_conv_impl_forward_in: unpadded
 * 1x1 on the packed GEMM (AVX-512), whose input rows are copied anyway. */
int sn_conv_impl_input_map_ok(const sn_conv_geom *g);
/* sn_conv_impl_forward on act(x * scale + shift) without writing it (only where
 * sn_conv_impl_input_map_ok; in may be NULL: no map). */
void sn_conv_impl_forward_in(const sn_conv_impl *c, int n, const float *x, const sn_conv_in *in,
                             const float *res, int relu, float *y, float *ws);
const char *sn_conv_impl_name(const sn_conv_impl *c); /* "gemm1x1", "im2col", "winograd4x4"... */
void sn_conv_impl_destroy(sn_conv_impl *c);
/* 1 if the prepared convolution of g may write its output over its residual input (y == res):
 * the planner then gives a convolution whose residual dies with it the residual's buffer, which
 * saves the output's read-for-ownership traffic (25.7 MB per layer1 block at batch 8). */
int sn_conv_residual_in_place_ok(const sn_conv_geom *g);

/* Low-precision inference convolutions (conv_lowp.c; docs/kernels.md, "Low precision"). The
 * planner decides how each tensor is stored; the kernel reads and writes those formats:
 *   bf16: x, res and y float32; x (after the input map) rounded to bfloat16 as it is read, the
 *         weights stored in bfloat16, float32 sums, the epilogue (bias, residual, ReLU) in float32.
 *   int8: x uint8 q with x = in_scale * (q - in_zp) (in_u8), or float32 quantized as it is read
 *         (sn_quant_u8 rule, after the input map); weights per output channel symmetric int8;
 *         int32 sums; y = (sum - in_zp * colsum[o]) * mult[o] + bias[o] (+ res) (ReLU) in
 *         float32 with mult[o] = in_scale * wscale[o] rounded to float32, stored as float32
 *         or as uint8 with out_scale (zero point 0, after a ReLU); res float32 or uint8 with
 *         res_scale (zero point 0). */
typedef struct sn_conv_lp {
  sn_precision type; /* SN_PRECISION_BF16 or SN_PRECISION_INT8 */
  float in_scale;    /* int8: the input's scale and zero point (0 or 128) */
  int in_zp;
  int in_u8;  /* int8: the input tensor is stored as uint8 (in_scale, zero point 0) */
  int out_u8; /* int8: store y as uint8 with out_scale */
  float out_scale;
  int res_u8; /* int8: the residual is stored as uint8 with res_scale */
  float res_scale;
} sn_conv_lp;
/* Prepares g (inference, g->n the largest batch) in low precision: the weights w (KH, KW, Cin,
 * Cout) and bias (Cout, or NULL) are rounded or quantized and packed once. The instructions are
 * chosen from sn_kernel_features(&g->opts): AMX where present, else AVX512-BF16 / AVX512-VNNI.
 * Returns -1 (SN_ERR_INVALID set, naming the instructions) when neither is there, or on
 * allocation failure (SN_ERR_NOMEM). */
int sn_conv_prepare_lp(const sn_conv_geom *g, const float *w, const float *bias,
                       const sn_conv_lp *q, sn_conv_impl **out);
/* 1 if the features allow precision p (bf16: AVX512-BF16 or AMX-BF16; int8: AVX512-VNNI or
 * AMX-INT8; both need AVX-512; fp32 always). */
int sn_lp_supported(sn_precision p, unsigned features);
/* sn_conv_impl_forward of a prepared low-precision convolution: x (N, H, W, Cin) and res
 * (N, OH, OW, Cout) or NULL, y (N, OH, OW, Cout) in the formats of its sn_conv_lp (uint8 or
 * float32); in: the input map applied to a float32 x before rounding (may be NULL). y may be res
 * only when both are stored alike (sn_conv_lp_residual_in_place_ok). */
void sn_conv_impl_forward_lp(const sn_conv_impl *c, int n, const void *x, const sn_conv_in *in,
                             const void *res, int relu, void *y, float *ws);
/* Two int8 convolutions run as one (conv_lowp.h, sn_lp_pair_ok): y = act(c (x) + p (px)),
 * bit for bit as p writing its float32 output and c reading it as its residual, without that
 * tensor. */
int sn_conv_lp_pair_ok(const sn_conv_impl *c, const sn_conv_impl *p);
void sn_conv_impl_forward_lp_pair(const sn_conv_impl *c, const sn_conv_impl *p, int n,
                                  const void *x, const sn_conv_in *in, const void *px, int relu,
                                  void *y, float *ws);
/* 1 if a low-precision convolution of g with q may write y over res. */
int sn_conv_lp_residual_in_place_ok(const sn_conv_geom *g, const sn_conv_lp *q);

/* Rounding and quantization rules of the low-precision paths (quant.c), with the plain
 * versions the tests compare against. */
/* float32 -> bfloat16 bits as VCVTNEPS2BF16 does it: round to nearest even; NaN stays a quiet
 * NaN (sign and top mantissa bits kept); float32 denormals become zeros of their sign. */
uint16_t sn_bf16_from_f32(float x);
static inline float sn_bf16_to_f32(uint16_t b) {
  union {
    uint32_t u;
    float f;
  } v = {(uint32_t)b << 16};
  return v.f;
}
/* q = clamp(round_half_even(min(x * inv_scale, 255 - zp)) + zp, 0, 255) with the float32 product
 * x * inv_scale the value rounded; NaN gives 0. */
uint8_t sn_quant_u8_ref(float x, float inv_scale, int zp);
/* Per-output-channel symmetric int8 weights of w (K, N) (row k, column o; HWIO flattened):
 * scale[o] = max_k |w[k][o]| / 127 (1 when the column is zero), q = clamp(round_half_even(w /
 * scale[o]), -127, 127) in double; colsum[o] = sum_k q[k][o]. q (K, N). */
void sn_quant_weights_s8(const float *w, int k, int n, int8_t *q, float *scale, int32_t *colsum);

/* Calibration histograms (quant.c): the bins of |x| are the top 16 bits of its float32 pattern
 * (8 exponent bits, 7 mantissa bits: 128 bins per octave, each about 0.8% wide) for |x| in
 * [2^-SN_HIST_LOW_OCT, 2^SN_HIST_HIGH_OCT); smaller values count as zeros, larger ones in the
 * last bin. Counts are integers, so sums over images, batches and ranks are exact. */
#define SN_HIST_LOW_OCT 40
#define SN_HIST_HIGH_OCT 40
#define SN_HIST_BINS ((SN_HIST_LOW_OCT + SN_HIST_HIGH_OCT) * 128)
typedef struct sn_hist {
  int64_t bins[SN_HIST_BINS]; /* counts of |x| per bin */
  int64_t zeros;              /* |x| < 2^-SN_HIST_LOW_OCT (exact zeros among them) */
  int64_t nonfinite;          /* NaN or infinity */
  float min, max;             /* extrema of x (finite values) */
} sn_hist;
void sn_hist_init(sn_hist *h);
/* Adds n values of x (OpenMP inside; counts independent of the thread count). */
void sn_hist_add(sn_hist *h, const float *x, size_t n);
/* The lower edge of bin i. */
double sn_hist_edge(int i);
/* The threshold of a histogram by method (sn_calib_method; quant.c has the rules); levels: the
 * number of uint8 steps above zero the threshold maps to (255 for zero point 0, 127 for 128).
 * 0 when the histogram has no value above zero. */
double sn_hist_threshold(const sn_hist *h, int method, int levels);

/* The algorithms of a prepared convolution; forcing one is for tests and benchmarks. */
typedef enum sn_conv_algo {
  SN_CONV_AUTO = 0,
  SN_CONV_GENERIC = 1,   /* sn_conv_forward on a copy of the weights */
  SN_CONV_GEMM = 2,      /* packed AVX-512 GEMM (1x1 rows copied, else im2col rows) */
  SN_CONV_WINOGRAD = 3,  /* Winograd F(4x4, 3x3), 3x3 stride 1 only */
  SN_CONV_DIRECT = 4,    /* AVX-512: the training path's kernels (sn_conv_forward; the direct NHWC
                            tiles for the small-channel shapes the size rule gives it) on a copy of
                            the weights */
  SN_CONV_WINOGRAD2 = 5, /* Winograd F(2x2, 3x3), 3x3 stride 1 only */
  SN_CONV_LOWP = 6       /* bf16 or int8 (sn_conv_prepare_lp; not forced through _algo) */
} sn_conv_algo;
/* sn_conv_prepare with a forced algorithm (falls back to generic when the algorithm cannot run:
 * no AVX-512 or g->opts.portable, or Winograd on an ineligible geometry). */
int sn_conv_prepare_algo(const sn_conv_geom *g, const float *w, const float *bias,
                         sn_conv_algo algo, sn_conv_impl **out);

/* ------------------------------------------------------------ batch normalization */

/* Folds inference BN into a per-channel affine map, computed in double and rounded once:
 * scale = gamma / sqrt(var + eps), shift = beta - mean * scale. */
void sn_bn_fold(const float *gamma, const float *beta, const float *mean, const float *var,
                float eps, int c, float *scale, float *shift);

/* y = act(x * scale + shift), x and y (rows, C) with rows = N*H*W; y may alias x. */
void sn_bn_affine(int portable, const float *x, size_t rows, int c, const float *scale,
                  const float *shift, int relu, float *y);

/* Per-channel local sums over rows: sum[c] = sum x, sumsq[c] = sum x^2 (double accumulators). */
void sn_bn_sums(int portable, const float *x, size_t rows, int c, double *sum, double *sumsq);

/* Normalises with given statistics: y = gamma * (x - mean) * invstd + beta. */
void sn_bn_normalize(int portable, const float *x, size_t rows, int c, const float *mean,
                     const float *invstd, const float *gamma, const float *beta, float *y);

/* Local backward sums with the (global) mean: sum_dy[c] = sum dy,
 * sum_dy_xmu[c] = sum dy*(x-mean). */
void sn_bn_backward_sums(int portable, const float *x, const float *dy, size_t rows, int c,
                         const float *mean, double *sum_dy, double *sum_dy_xmu);

/* dx = gamma*invstd*(dy - sum_dy/count - (x-mean)*invstd^2*sum_dy_xmu/count), count = global
 * number of elements per channel. dx may alias dy. */
void sn_bn_backward_dx(int portable, const float *x, const float *dy, size_t rows, int c,
                       const float *mean, const float *invstd, const float *gamma,
                       const double *sum_dy, const double *sum_dy_xmu, double count, float *dx);

/* The fused-ReLU backward passes with the mask y > 0 recomputed from x, gamma and beta exactly
 * as sn_bn_normalize_relu computed y (bitwise the same mask), instead of read from y. */
void sn_bn_backward_sums_relu_x(int portable, const float *x, const float *dy, size_t rows, int c,
                                const float *mean, const float *invstd, const float *gamma,
                                const float *beta, double *sum_dy, double *sum_dy_xmu);
void sn_bn_backward_dx_relu_x(int portable, const float *x, const float *dy, size_t rows, int c,
                              const float *mean, const float *invstd, const float *gamma,
                              const float *beta, const double *sum_dy, const double *sum_dy_xmu,
                              double count, float *dx);

/* y = act(normalize(x) + res) (act: ReLU when relu): bitwise sn_bn_normalize into a buffer
 * followed by sn_add_forward(buffer, res, relu, y), in one pass. y may alias res. */
void sn_bn_normalize_add(int portable, const float *x, size_t rows, int c, const float *mean,
                         const float *invstd, const float *gamma, const float *beta,
                         const float *res, int relu, float *y);

/* Batch norm with a fused ReLU in training: y = max(0, normalize(x)); the backward passes take
 * the gradient w.r.t. y and use dy where y > 0, else 0 (PyTorch's ReLU gradient at 0), so no
 * separate ReLU pass or buffer is needed. y is the output of sn_bn_normalize_relu. */
void sn_bn_normalize_relu(int portable, const float *x, size_t rows, int c, const float *mean,
                          const float *invstd, const float *gamma, const float *beta, float *y);
void sn_bn_backward_sums_relu(int portable, const float *x, const float *y, const float *dy,
                              size_t rows, int c, const float *mean, double *sum_dy,
                              double *sum_dy_xmu);
void sn_bn_backward_dx_relu(int portable, const float *x, const float *y, const float *dy,
                            size_t rows, int c, const float *mean, const float *invstd,
                            const float *gamma, const double *sum_dy, const double *sum_dy_xmu,
                            double count, float *dx);

/* ------------------------------------------------------------ elementwise */

void sn_relu_forward(int portable, const float *x, size_t n, float *y); /* y may alias x */
/* dx = dy where y > 0, else 0; dx may alias dy. _acc: dx += that. */
void sn_relu_backward(int portable, const float *y, const float *dy, size_t n, float *dx);
void sn_relu_backward_acc(int portable, const float *y, const float *dy, size_t n, float *dx);
void sn_add_forward(int portable, const float *a, const float *b, size_t n, int relu, float *y);
/* Keras ZeroPadding2D: (N, H, W, C) -> (N, H+pt+pb, W+pl+pr, C); backward crops. */
void sn_pad_forward(const float *x, int n, int h, int w, int c, int pt, int pl, int pb, int pr,
                    float *y);
void sn_pad_backward(const float *dy, int n, int h, int w, int c, int pt, int pl, int pb, int pr,
                     float *dx);

/* ------------------------------------------------------------ pooling */

typedef struct sn_pool_geom {
  int n, h, w, c;
  int kh, kw, sh, sw;
  int pt, pl, pb, pr;
  int oh, ow;
  int pad_zero; /* max pool: 1 = padded cells are 0 (Keras ZeroPadding), 0 = -inf (PyTorch) */
} sn_pool_geom;
int sn_pool_geom_init(sn_pool_geom *g, int n, int h, int w, int c, int kh, int kw, int sh, int sw,
                      int pt, int pl, int pb, int pr, int pad_zero);

/* argmax (N, OH, OW, C) int32 flat input index of the max within its image (h*W + w)*C + c, or
 * -1 for a padded zero; may be NULL in inference. */
void sn_maxpool_forward(int portable, const sn_pool_geom *g, const float *x, float *y,
                        int32_t *argmax);
/* Inference of an int8 plan, AVX-512 only: y as uint8 codes with scale out_scale, zero point 0,
 * equal to sn_quant_u8_ref(max, 1.0f / out_scale, 0) of sn_maxpool_forward's max. x: float32, or
 * (x_u8) uint8 codes with that same scale, whose maximum is the code of the maximum. */
void sn_maxpool_forward_u8(const sn_pool_geom *g, const void *x, int x_u8, float out_scale,
                           uint8_t *y);
void sn_maxpool_backward(int portable, const sn_pool_geom *g, const int32_t *argmax,
                         const float *dy, float *dx);
/* Average pool; padded cells are excluded from the count (only used unpadded in these models). */
void sn_avgpool_forward(const sn_pool_geom *g, const float *x, float *y);
void sn_avgpool_backward(const sn_pool_geom *g, const float *dy, float *dx);

/* Global pools: x (N, HW, C) -> y (N, C). */
void sn_global_avgpool_forward(const float *x, int n, int hw, int c, float *y);
void sn_global_avgpool_backward(const float *dy, int n, int hw, int c, float *dx);
void sn_global_maxpool_forward(const float *x, int n, int hw, int c, float *y, int32_t *argmax);
void sn_global_maxpool_backward(const int32_t *argmax, const float *dy, int n, int hw, int c,
                                float *dx);

/* ------------------------------------------------------------ dense and loss */

/* y (N, Out) = x (N, In) . w (In, Out) + b (Out, may be NULL). */
void sn_dense_forward(int portable, const float *x, const float *w, const float *b, int n, int in,
                      int out, float *y);
/* dx (N, In) or NULL, dw (In, Out), db (Out) or NULL: overwritten. */
void sn_dense_backward(int portable, const float *x, const float *w, const float *dy, int n, int in,
                       int out, float *dx, float *dw, float *db);

/* Softmax cross-entropy with label smoothing eps (targets (1-eps)*onehot + eps/K, as PyTorch).
 * Returns the SUM of per-row losses (double). dlogits (N, K) = scale * (softmax - target), or
 * NULL. *correct = number of rows whose argmax equals the label (may be NULL).
 * Labels outside [0, K) must be rejected by the caller. */
double sn_softmax_xent(const float *logits, const int32_t *labels, int n, int k, float smoothing,
                       float scale, float *dlogits, int *correct);

/* SGD, PyTorch semantics: d = g + wd*p; buf = first ? d : momentum*buf + d;
 * d = nesterov ? d + momentum*buf : buf; p -= lr*d. wd may be 0. */
void sn_sgd_update(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                   float wd, int nesterov, int first);

/* ------------------------------------------------------------ misc */

/* 1 if every value is finite. */
int sn_all_finite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* SN_KERNELS_H */
