/* net_impl.h - private: the network as data.
 *
 * A network is an array of layers in topological order. Each layer names up to two inputs (earlier
 * layers, or -1 for the network input), has a kind (a const table of functions, sn_layer_ops) and a
 * few hyperparameters. Parameters of all layers live in one block (trainable tensors first, then
 * moving statistics), gradients and momentum in matching blocks. Activations come from an arena
 * planned once per (batch, mode).
 *
 * graph.c holds the net object (models.c builds the architectures with it), fuse.c rewrites the
 * plan's copy of the graph, plan.c lays out its memory, net.c runs the inference pass and train.c
 * the training step; src/layers/ holds the kinds.
 */
#ifndef SN_NET_IMPL_H
#define SN_NET_IMPL_H

#include "comm_impl.h"
#include "kernels.h"
#include "shardnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_shape {
  int h, w, c; /* per image; dense outputs are (1, 1, units) */
} sn_shape;

static inline size_t sn_shape_size(sn_shape s) { return (size_t)s.h * s.w * s.c; }

typedef struct sn_layer sn_layer;

/* Layer kinds, for the planner's pattern tests (fuse.c: which layer a fusion removes) and the few
 * places that need one kind (a training step needs a dense classifier on top). */
typedef enum sn_layer_type {
  SN_LAYER_CONV,
  SN_LAYER_BN,
  SN_LAYER_RELU,
  SN_LAYER_PAD,
  SN_LAYER_MAXPOOL,
  SN_LAYER_AVGPOOL,
  SN_LAYER_GAP,
  SN_LAYER_GMP,
  SN_LAYER_ADD,
  SN_LAYER_DENSE,
  SN_LAYER_FLATTEN
} sn_layer_type;

/* What a layer can take over from its neighbours when the planner fuses (sn_layer_ops.caps). */
enum {
  SN_CAP_FOLD_BN = 1,    /* inference: folds the batch norm reading its output into its weights */
  SN_CAP_RESIDUAL = 2,   /* inference: adds a residual operand in its output pass */
  SN_CAP_RELU = 4,       /* inference: applies the ReLU reading its output in its output pass */
  SN_CAP_RELU_TRAIN = 8, /* training: stores max(0, y) and masks its dy by y > 0 in backward */
  SN_CAP_SHARE_DY = 16   /* training: may take the gradient buffer of the add it feeds as its dy
                            (sn_fuse_share_add_grads): its backward only reads dy */
};

/* Plan-time state a layer keeps besides its output (max pool argmax, batch norm statistics),
 * taken from two arenas in layer order. The planner calls the state hooks twice: with NULL bases
 * to count, then with the allocated arenas (sn_plan_ints and sn_plan_doubles return NULL while
 * counting). */
typedef struct sn_plan_arena {
  int32_t *ints;
  double *doubles;
  size_t nints, ndoubles; /* taken so far */
} sn_plan_arena;

static inline int32_t *sn_plan_ints(sn_plan_arena *a, size_t n) {
  int32_t *p = a->ints ? a->ints + a->nints : NULL;
  a->nints += n;
  return p;
}

static inline double *sn_plan_doubles(sn_plan_arena *a, size_t n) {
  double *p = a->doubles ? a->doubles + a->ndoubles : NULL;
  a->ndoubles += n;
  return p;
}

/* A layer kind: a const table (one per kind, src/layers/). Hooks marked optional may be NULL. */
typedef struct sn_layer_ops {
  const char *kind;       /* "conv", "bn", "relu", ...: for messages, summaries and profiles */
  const char *keras_type; /* for the summary: "Conv2D", "BatchNormalization", ... */
  sn_layer_type type;
  unsigned caps; /* SN_CAP_* */
  /* Computes l->out from the input shapes; the message names the layer and the shapes. */
  sn_status (*shape)(sn_net *net, sn_layer *l);
  /* Optional: declares the layer's parameter tensors in Keras order (sn_net_add_param). */
  sn_status (*params)(sn_net *net, sn_layer *l);
  /* Optional: workspace floats needed for a batch of n. */
  size_t (*workspace)(const sn_net *net, const sn_layer *l, int n, int training);
  /* Optional: takes the plan-time state for a batch of n from a (sn_plan_arena). */
  void (*state)(sn_layer *l, int n, int training, sn_plan_arena *a);
  /* Optional, inference: derives what the pass needs from the parameter block (folded or packed
   * weights), at plan time and at sn_net_refresh. */
  sn_status (*prepare)(sn_net *net, sn_layer *l);
  /* Optional, inference fusion: takes the zero padding of `pad`, its input, into its own padding;
   * returns 0 (nothing changed) where it cannot. */
  int (*take_pad)(sn_layer *l, const sn_layer *pad);
  /* Optional, fusion: 1 if the layer can apply a batch norm's normalize pass (and its ReLU) to its
   * input as it reads it, for a batch of n (inference: the prepared path; training: the training
   * kernels, asked again at every call). */
  int (*input_map_ok)(const sn_net *net, const sn_layer *l, int n, int training);
  /* Optional, inference planning: 1 if the output pass may write over the buffer of the fused
   * residual (l->fuse.residual), for a batch of n. */
  int (*residual_in_place)(const sn_net *net, const sn_layer *l, int n);
  /* One pass over a batch of n: l->y from the inputs (training: and what backward needs). */
  sn_status (*forward)(sn_net *net, sn_layer *l, int n, int training);
  /* Computes the gradients of the layer's parameters and the input gradients (through
   * sn_layer_input_grad). NULL for layers with nothing to propagate. */
  sn_status (*backward)(sn_net *net, sn_layer *l, int n);
} sn_layer_ops;

extern const sn_layer_ops sn_conv_ops, sn_bn_ops, sn_relu_ops, sn_pad_ops, sn_maxpool_ops,
    sn_avgpool_ops, sn_gap_ops, sn_gmp_ops, sn_add_ops, sn_dense_ops, sn_flatten_ops;

/* What the planner fused (fuse.c), on the plan's copy of the graph: inference folds zero padding,
 * batch norm, residual add and ReLU into their neighbours; training fuses a ReLU into the batch
 * norm or add before it, a batch norm into the add or convolution reading it, and shares the
 * gradient buffers of an add and its inputs. Layer references are indices (with the sentinels
 * given) or 1 + index where 0 means none. */
typedef struct sn_layer_fusion {
  int skip;      /* folded into another layer: not run, no buffers; its output is alias's */
  int alias;     /* layer whose buffer holds this layer's output (itself unless skipped) */
  int relu;      /* a ReLU applied in this layer's output pass (in training, y holds max(0, .)
                    and backward masks dy by y > 0) */
  int residual;  /* conv, inference: layer whose output is added before the activation (-1: the
                    network input), or -2 */
  int fold_bn;   /* conv, inference: the batch norm folded into its weights, or -1 */
  int in_bn;     /* conv, inference, SN_FUSE_BNIN: the batch norm (affine and its ReLU) applied to
                    this layer's input as it is read (fuse_bn_into_inputs), or -1 */
  int into_add;  /* bn, training, SN_FUSE_BNADD: 1 + the add whose output this layer's forward
                    writes, act(normalize + other input) (fuse_bn_into_add), or 0 */
  int from_bn;   /* add, training: 1 + that batch norm (the add's forward does nothing), or 0 */
  int into_conv; /* bn, training, SN_FUSE_BNCONV: 1 + the convolution (its only reader) that
                    applies this layer's normalize pass as it copies its input (fuse_bn_into_convs;
                    per call only where that convolution's kernels take the map), or 0 */
  int shared_in; /* add, training, SN_FUSE_GRAD: bit i set when input i's gradient buffer is this
                    add's dy (sn_fuse_share_add_grads) */
} sn_layer_fusion;

struct sn_layer {
  const sn_layer_ops *ops;
  char name[SN_MAX_NAME];
  int in[2]; /* producer layer indices; -1 = network input */
  int nin;
  sn_shape out; /* output shape per image */
  /* hyperparameters */
  int filters, kh, kw, sh, sw, pt, pl, pb, pr, use_bias;
  int pad_zero;         /* max pool: padding cells are zero (Keras) instead of -inf */
  float eps;            /* batch norm */
  int residual_last_bn; /* 1: last BN of a residual branch (zero-init target) */
  int keras_folded;     /* 1: an activation that Keras shows inside the layer before it
                           (Conv2D(..., activation='relu')): not a layer of the Keras view
                           (keras_view.c: summary rows, Keras files) */
  /* parameters: tensors [p0, p0 + np) of net->params */
  int p0, np;
  sn_layer_fusion fuse; /* set by fuse.c on the plan's copy; unset in the built graph */
  /* low precision, set by sn_lowp_plan on the plan's copy (lowp.c) */
  int lp;             /* conv or dense run in the plan's bf16 or int8 */
  int out_u8;         /* int8: the output is stored as uint8 with out_scale, zero point 0 */
  float out_scale;    /* the scale its int8 readers quantize it with */
  int pair;           /* int8 inference: 1 + the convolution whose kernel call computes this
                         convolution's output as its residual, never stored (sn_lowp_pair), or 0 */
  sn_conv_impl *impl; /* prepared convolution (inference) */
  float *fold;        /* folded kernel/bias or BN scale/shift (inference), owned */
  /* activations (views into the arenas) */
  float *y;             /* (N, out) */
  float *dy;            /* (N, out), training */
  int dy_written;       /* backward: first contribution overwrites, later ones add */
  int32_t *argmax;      /* max pools, training */
  float *mean, *invstd; /* batch norm, training: statistics used in the last forward, then
                           (fuse.into_conv) the scale gamma * invstd at invstd + C */
  int nconsumers;
};

typedef struct sn_param {
  int layer;
  sn_param_role role;
  int ndim, shape[4];
  int64_t count;
  int trainable;
  size_t offset; /* into the parameter block (and, if trainable, grad/momentum blocks) */
} sn_param;

struct sn_net {
  sn_model_config cfg;
  char arch[32];
  sn_style style;          /* naming and loading conventions */
  sn_style bn_style;       /* moving statistics rule */
  const char *keras_model; /* Keras' name of the model ("resnet50", "sequential"), NULL for the
                              torchvision-style nets; static */
  int keras_sequential;    /* 1: a Keras Sequential model (no input layer in model.layers) */
  sn_preprocess preprocess;
  sn_shape in;
  sn_layer *layers;
  int nlayers, layers_cap;
  sn_layer *built; /* (nlayers) the graph as built: each plan fuses a copy of it */
  int built_output, built_feature;
  sn_param *params;
  int nparams, params_cap;
  float *block; /* all parameters: trainable, then moving statistics */
  size_t nblock, ntrainable;
  float *grads;    /* (ntrainable) */
  float *momentum; /* (ntrainable) */
  int64_t sgd_steps;
  int output;  /* output layer */
  int feature; /* pooled-feature layer, or -1 */
  /* plan */
  int planned, max_batch, training;
  float *arena; /* activations (and gradients when training) */
  size_t arena_n;
  int32_t *iarena;
  float *ws; /* shared workspace */
  size_t ws_n;
  double *stats;        /* batch-norm scratch (sums) */
  double *prof;         /* opts.profile: seconds per layer (training: nlayers forward, then
                           nlayers backward), or NULL */
  long prof_passes;     /* passes timed into prof */
  sn_layer_probe probe; /* sn_net_set_probe: called after each layer of an inference pass */
  void *probe_user;
  float *probe_buf; /* a uint8 output dequantized for the probe (allocated at first need) */
  size_t probe_n;
  size_t stats_n;
  int last_n;         /* batch of the last forward */
  const float *input; /* (N, H, W, C) network input during a pass */
  /* distribution */
  sn_comm *comm;
  sn_comm *bn_comm; /* sync-BN group (sn_net_set_bn_comm, borrowed), NULL: comm */
  int sync_bn;
  size_t bucket_floats;        /* gradient all-reduce bucket size */
  double comm_exposed_s;       /* seconds blocked completing gradient all-reduces, cumulative */
  int64_t comm_bytes;          /* gradient bytes all-reduced, cumulative */
  int64_t comm_buckets;        /* gradient buckets launched, cumulative */
  int64_t comm_buckets_early;  /* of those, complete when backward ended (overlapped) */
  const sn_train_config *tcfg; /* during a train step */
  uint64_t seed;
  sn_engine_options opts; /* sn_net_set_options; read by sn_net_plan (comm_poll: by each
                             training step) */
  float *act;             /* (nlayers, 3) or NULL: the int8 activation scale of each conv and
                             dense layer's input: threshold (0: unset), min, max (lowp.c) */
};

/* ---- graph building (graph.c; sn_net_create in models.c builds an architecture with these) */
/* An empty net with a copy of cfg (cfg->arch set). */
sn_status sn_net_new(const sn_model_config *cfg, uint64_t seed, sn_net **out);
/* After the last layer: lays out and initialises the parameter block and keeps the built graph. */
sn_status sn_net_finish_graph(sn_net *net);
/* Restores the built wiring and fusion marks into net->layers (plan.c, before fusing). */
void sn_net_restore_graph(sn_net *net);
/* Adds a parameter tensor of layer l (its params hook). */
sn_status sn_net_add_param(sn_net *net, sn_layer *l, sn_param_role role, int ndim,
                           const int *shape);
/* Each returns the new layer index or -1. */
int sn_net_add_layer(sn_net *net, const sn_layer_ops *ops, const char *name, int in0, int in1);
int sn_add_conv(sn_net *net, const char *name, int in, int filters, int k, int stride, int pad,
                int bias);
int sn_add_conv_pads(sn_net *net, const char *name, int in, int filters, int kh, int kw, int stride,
                     int pt, int pl, int pb, int pr, int bias);
int sn_add_bn(sn_net *net, const char *name, int in, float eps);
int sn_add_relu(sn_net *net, const char *name, int in);
int sn_add_pad(sn_net *net, const char *name, int in, int pad);
int sn_add_maxpool(sn_net *net, const char *name, int in, int k, int stride, int pad, int pad_zero);
int sn_add_gap(sn_net *net, const char *name, int in);
int sn_add_gmp(sn_net *net, const char *name, int in);
int sn_add_sum(sn_net *net, const char *name, int a, int b);
int sn_add_dense(sn_net *net, const char *name, int in, int units, int bias);
int sn_add_flatten(sn_net *net, const char *name, int in);

/* Channel k of batch norm l in inference, y = (x - mean) * s + beta with s = gamma / sqrt(var +
 * eps), in double (a convolution folds it into its weights; layers/bn.c). */
void sn_bn_layer_channel(const sn_net *net, const sn_layer *l, int k, double *mean, double *s,
                         double *beta);
/* The pass of batch norm l as the input map of the convolution that applies it as it reads its
 * input (fuse.in_bn in inference: the folded scale and shift; fuse.into_conv in training: the
 * last forward's statistics, its scale gamma * invstd and beta), with its fused ReLU (layers/bn.c;
 * the only code that knows the batch norm's buffers). */
sn_conv_in sn_bn_layer_input_map(const sn_net *net, const sn_layer *l, int training);
/* l->impl for g (prepared, or repacked from w and b) and net->ws grown to its workspace (plan.c;
 * the prepare hooks of conv and dense). */
sn_status sn_layer_prepare_impl(sn_net *net, sn_layer *l, const sn_conv_geom *g, const float *w,
                                const float *b);
/* The same for a layer run in low precision (l->lp): prepared with sn_lowp_conv_params. */
sn_status sn_layer_prepare_impl_lp(sn_net *net, sn_layer *l, const sn_conv_geom *g, const float *w,
                                   const float *b);

/* Frees what a plan allocated: arenas, workspace, prepared convolutions, profile (graph.c, with
 * the rest of the net's memory). */
void sn_net_unplan(sn_net *net);

/* ---- the Keras view (keras_view.c) */
/* The layers of the Keras model the net reproduces, in the order of Keras' model.layers (see
 * sn_net_keras_layers): writes their indices into order (nlayers + 1 entries; -1 stands for the
 * functional model's input layer) and returns their count, or -1 (out of memory). Works on the
 * graph as built. */
int sn_net_keras_order(const sn_net *net, int *order);
/* The name Keras gives the input layer of a functional model. */
#define SN_KERAS_INPUT_NAME "input_1"

/* ---- low precision (lowp.c), on the plan's copy after fusion */
/* Decides which layers run in the plan's precision and how int8 tensors are stored; refuses a
 * CPU without the instructions, a training plan, and int8 layers without scales. */
sn_status sn_lowp_plan(sn_net *net);
/* Pairs the int8 convolutions whose float32 output only another one reads, as its residual
 * (sn_conv_lp_pair_ok: the first convolution of a residual block's projection pair): sets
 * layer.pair, after the convolutions are prepared (sn_net_refresh). */
void sn_lowp_pair(sn_net *net);
/* The convolution parameters of layer l (lp set) in its plan: precision, scales, formats. */
sn_conv_lp sn_lowp_conv_params(const sn_net *net, const sn_layer *l);
/* 1 if l is a conv or dense layer (they take an activation scale). */
int sn_lowp_scalable(const sn_layer *l);

/* ---- fusion (fuse.c), on the plan's copy of the wiring */
/* Inference: pad, BN, add and ReLU folded into their neighbours (mask: SN_FUSE_*). */
void sn_fuse_for_inference(sn_net *net, int mask);
/* Training: ReLUs into their producers, BNs into the adds and convolutions reading them. */
void sn_fuse_for_training(sn_net *net, int mask);
/* Training, SN_FUSE_GRAD: adds whose inputs take their gradient buffer; own[k] is the layer whose
 * buffer holds layer k's gradient (preset to k). */
void sn_fuse_share_add_grads(sn_net *net, int *own);

/* ---- used by layers */
const sn_shape *sn_layer_in_shape(const sn_net *net, const sn_layer *l, int i);
/* Output buffer of input i (through fusion aliases); the network input for -1. */
const float *sn_layer_input(const sn_net *net, const sn_layer *l, int i);
/* Gradient buffer to write the input-i gradient into: returns NULL if input i is the network
 * input. *accumulate is set when another consumer already wrote it (then the layer writes into
 * the workspace and adds with sn_net_accumulate). */
float *sn_layer_input_grad(sn_net *net, sn_layer *l, int i, int *accumulate);
void sn_net_accumulate(float *dst, const float *src, size_t n);
float *sn_alloc_floats(size_t n); /* n floats, 64-byte aligned (plan.c) */
float *sn_param_data(const sn_net *net, const sn_layer *l, int k);
float *sn_param_grad(const sn_net *net, const sn_layer *l, int k);

#ifdef __cplusplus
}
#endif
#endif /* SN_NET_IMPL_H */
