/* shardnet.h - the one public header of libshardnet.
 *
 * libshardnet is a CPU ResNet engine (src/), a distributed layer over MPI (mpi/) and an HDF5
 * data plane (io/). This header includes neither mpi.h nor hdf5.h. Its sections:
 *   errors          sn_status, sn_last_error
 *   runtime         sn_version, sn_threads_set, sn_free
 *   communicator    sn_comm: serial by default, MPI through sn_comm_create_world
 *   models          sn_model_config, sn_net_create, shapes, parameters, sn_net_summary
 *   engine options  sn_engine_options (algorithm choices, fusions, profiling, precision)
 *   inference       sn_net_plan, sn_net_forward, sn_net_predict (classify a batch: forward +
 *                   softmax + top-k)
 *   int8            activation scales and their calibration (sn_calibrator_*)
 *   training        sn_net_train_step, sn_net_sgd_update, learning-rate schedules, sharding
 *   preprocessing   sn_preprocess_u8, augmentation, softmax, top-k, metrics
 *   HDF5            weights, checkpoints, scales, datasets, the streaming reader, the parallel
 * writer images          sn_image_load: a JPEG or PNG file to pixels, as Keras' load_img MPI
 * sn_mpi_init, agreement with a deadline
 *
 * Conventions
 *  - Every function that can fail returns sn_status; SN_OK is 0. On failure a one-line message
 *    (naming the file, dataset, layer and rank where known) is readable with sn_last_error().
 *  - Objects come in create/destroy pairs; destroy accepts NULL.
 *  - Tensors are float32, NHWC, row-major. Buffer shapes are given in comments as (N, H, W, C).
 *  - "Collective" marks functions that every rank of the object's communicator must call.
 *
 * Example: ResNet-50 classifies a batch of four images and prints each one's top 5 (compile with
 * `cc example.c $(pkg-config --cflags --libs shardnet)`; argv[1] is a weights file in any of
 * the formats sn_weights_load reads; without it the weights are random).
 *
 *   #include <stdio.h>
 *   #include "shardnet.h"
 *   #define CHECK(call) if ((call) != SN_OK) return fprintf(stderr, "%s\n", sn_last_error()), 1
 *   enum { N = 4, K = 5, SIDE = 224, CLASSES = 1000 };
 *   static uint8_t pixels[N * SIDE * SIDE * 3]; // (N, 224, 224, 3) RGB, e.g. decoded photos
 *   static float x[N * SIDE * SIDE * 3], logits[N * CLASSES], probs[N * CLASSES], top_p[N * K];
 *   static int32_t top_class[N * K];
 *
 *   int main(int argc, char **argv) {
 *     sn_model_config cfg;
 *     sn_model_config_init(&cfg, "resnet50");
 *     sn_net *net;
 *     CHECK(sn_net_create(&cfg, 1, &net));
 *     if (argc > 1) CHECK(sn_weights_load(net, argv[1], SN_WEIGHTS_AUTO, NULL));
 *     CHECK(sn_net_plan(net, N, 0)); // inference, batches of up to N images
 *     sn_preprocess_u8(pixels, N, SIDE, SIDE, 3, sn_net_default_preprocess(net), x);
 *     CHECK(sn_net_predict(net, x, N, K, logits, NULL, probs, top_class, top_p));
 *     for (int i = 0; i < N * K; ++i)
 *       printf("image %d: class %d p %.4f\n", i / K, top_class[i], top_p[i]);
 *     sn_net_destroy(net);
 *     return 0;
 *   }
 */
#ifndef SHARDNET_H
#define SHARDNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions libshardnet exports (it is built with hidden visibility: only the calls
 * declared here are its API). */
#if defined(__GNUC__)
#define SN_API __attribute__((visibility("default")))
#else
#define SN_API
#endif

/* The version of this header. The build reads it from here (CMakeLists.txt), so it is the one
 * place the version is written; sn_version() gives the library's at run time. */
#define SN_VERSION_MAJOR 0
#define SN_VERSION_MINOR 1
#define SN_VERSION_PATCH 0
#define SN_VERSION "0.1.0"
#define SN_MAX_NAME 96

/* ---------------------------------------------------------------- errors */

typedef enum sn_status {
  SN_OK = 0,
  SN_ERR_INVALID = 1, /* bad argument or configuration */
  SN_ERR_SHAPE = 2,   /* shapes that do not fit together */
  SN_ERR_IO = 3,      /* file missing, unreadable, unwritable */
  SN_ERR_FORMAT = 4,  /* file readable but malformed or of the wrong layout */
  SN_ERR_NOMEM = 5,   /* allocation failed or a size overflowed */
  SN_ERR_NUMERIC = 6, /* NaN or infinity where a finite value was required */
  SN_ERR_COMM = 7,    /* communication failed, or another rank failed */
  SN_ERR_NOTFOUND = 8 /* a named key, dataset or layer does not exist */
} sn_status;

/* The message of the last failure on this thread ("" if none). Valid until the next failure. */
SN_API const char *sn_last_error(void);
/* A short fixed name for a status ("invalid argument", ...). */
SN_API const char *sn_status_string(sn_status s);
/* Sets the last error (printf-style) and returns s. The message is prefixed with "rank R: " when
 * a communicator of size > 1 exists. For use by the libraries and by callers that wrap them. */
SN_API sn_status sn_error_set(sn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
SN_API void sn_error_clear(void);

/* ---------------------------------------------------------------- runtime */

/* The version of the loaded library, "MAJOR.MINOR.PATCH" (SN_VERSION of the library's build;
 * compare with SN_VERSION to detect a program built against another header). Static string. */
SN_API const char *sn_version(void);
/* Threads of the engine's kernels (OpenMP, and OpenBLAS's pool of the portable path) for parallel
 * regions started from the calling thread: omp_set_num_threads and openblas_set_num_threads.
 * Default: OMP_NUM_THREADS, else one per core. n < 1: SN_ERR_INVALID. Not collective. */
SN_API sn_status sn_threads_set(int n);
/* The threads a kernel started from the calling thread uses (omp_get_max_threads). */
SN_API int sn_threads_get(void);
/* Frees memory the library allocated and handed to the caller (the text of sn_net_summary, the
 * pixels of sn_image_load, the rows of sn_writer_missing_rows, ...): free(), for bindings that
 * cannot reach the C library's own. NULL is ignored. */
SN_API void sn_free(void *p);

/* ---------------------------------------------------------------- communicator */

/* The engine reaches other ranks only through sn_comm. sn_comm_serial() is a process-wide
 * serial communicator (rank 0 of 1) owned by the library: never destroy it (destroy ignores it). */
typedef struct sn_comm sn_comm;

SN_API sn_comm *sn_comm_serial(void);
/* MPI communicator wrapping MPI_COMM_WORLD (MPI must be initialised by the caller, e.g. through
 * sn_mpi_init). Collective. The returned object is owned by the caller. */
SN_API sn_status sn_comm_create_world(sn_comm **out);
/* Wraps an MPI communicator given by its Fortran handle (MPI_Comm_c2f). Collective. */
SN_API sn_status sn_comm_create_mpi(int mpi_fortran_handle, sn_comm **out);
SN_API void sn_comm_destroy(sn_comm *comm);

SN_API int sn_comm_rank(const sn_comm *comm);
SN_API int sn_comm_size(const sn_comm *comm);
/* Returns the MPI Fortran handle of the communicator, or -1 for the serial one. */
SN_API int sn_comm_fortran_handle(const sn_comm *comm);

typedef enum sn_dtype { SN_F32 = 0, SN_F64 = 1, SN_I32 = 2, SN_I64 = 3, SN_U8 = 4 } sn_dtype;
typedef enum sn_reduce_op { SN_SUM = 0, SN_MAX = 1, SN_MIN = 2 } sn_reduce_op;

/* In-place all-reduce of n values. Collective. */
SN_API sn_status sn_comm_allreduce(sn_comm *comm, void *buf, size_t n, sn_dtype t, sn_reduce_op op);
/* Broadcast of bytes from root. Collective. */
SN_API sn_status sn_comm_bcast(sn_comm *comm, void *buf, size_t bytes, int root);
/* Gathers `bytes` from every rank into recv (size * bytes, rank order) on every rank.
 * Collective. */
SN_API sn_status sn_comm_allgather(sn_comm *comm, const void *send, void *recv, size_t bytes);
SN_API sn_status sn_comm_barrier(sn_comm *comm);
/* Non-blocking in-place all-reduce (sum of float32). The request is completed by sn_comm_wait. */
typedef struct sn_request sn_request;
SN_API sn_status sn_comm_iallreduce_f32(sn_comm *comm, float *buf, size_t n, sn_request **req);
SN_API sn_status sn_comm_wait(sn_comm *comm, sn_request *req);
/* Drives the MPI progress engine once and sets *done = 1 if req (NULL: completed) has completed.
 * Does not free req: call sn_comm_wait afterwards (it then returns at once). With no
 * asynchronous progress in the MPI library (Open MPI 4.1), a pending non-blocking all-reduce
 * advances only inside MPI calls such as this one. Not collective. */
SN_API sn_status sn_comm_test(sn_comm *comm, sn_request *req, int *done);

/* Algorithm of sn_comm_iallreduce_f32, the gradient all-reduce (docs/distributed.md, section 3). */
typedef enum sn_allreduce_algo {
  SN_ALLREDUCE_AUTO = 0, /* RING, unless the user chose the MPI library's own algorithm (Open
                            MPI's MCA parameter coll_libnbc_iallreduce_algorithm set by mpirun
                            --mca, the environment or a parameter file): then MPI */
  SN_ALLREDUCE_RING = 1, /* shardnet's ring: reduce-scatter then allgather, 2 (p-1)/p of the
                            buffer sent and received per rank (bandwidth-optimal); the result is
                            bitwise the same on every rank and in every run with the same rank
                            count and buffer; it advances inside sn_comm_test / sn_comm_wait */
  SN_ALLREDUCE_MPI = 2   /* MPI_Iallreduce, as the MPI library chooses (Open MPI 4.1: a binomial
                            tree for in-place sums unless coll_libnbc_iallreduce_algorithm says
                            otherwise) */
} sn_allreduce_algo;
/* Sets the algorithm of sn_comm_iallreduce_f32 (an MPI communicator starts with AUTO resolved).
 * AUTO is resolved on each rank, then the ranks check that they agree: if they do not (an MCA
 * parameter set on some nodes only), every rank gets SN_ERR_INVALID naming both choices and the
 * communicator keeps its algorithm. Call it with no all-reduce pending. Unknown value:
 * SN_ERR_INVALID. Serial communicator: SN_OK, nothing to choose. Collective. */
SN_API sn_status sn_comm_set_allreduce(sn_comm *comm, sn_allreduce_algo algo);
/* The algorithm in use: RING or MPI (AUTO for the serial communicator, which reduces nothing). */
SN_API sn_allreduce_algo sn_comm_allreduce_algo(const sn_comm *comm);
/* "auto", "ring", "mpi"; parsing an unknown name is SN_ERR_INVALID listing the names. */
SN_API const char *sn_allreduce_name(sn_allreduce_algo a);
SN_API sn_status sn_allreduce_parse(const char *name, sn_allreduce_algo *out);

/* Groups of group_size consecutive ranks: ranks [g K, (g+1) K) of comm form group g, ordered as
 * in comm (e.g. for batch-norm statistics shared within a group, sn_net_set_bn_comm). group_size
 * must divide the size of comm (1 .. size), else SN_ERR_INVALID naming both. The new
 * communicator keeps comm's all-reduce algorithm. The caller owns *out (sn_comm_destroy); for
 * the serial communicator *out is sn_comm_serial(). Collective over comm. */
SN_API sn_status sn_comm_split_groups(sn_comm *comm, int group_size, sn_comm **out);
/* Agreement: returns SN_OK on every rank iff `local` is SN_OK on every rank; otherwise every rank
 * gets SN_ERR_COMM (or its own error) and the message names the lowest failing rank and its
 * message. Collective. */
SN_API sn_status sn_comm_agree(sn_comm *comm, sn_status local);

/* ---------------------------------------------------------------- models */

typedef enum sn_pooling { SN_POOL_NONE = 0, SN_POOL_AVG = 1, SN_POOL_MAX = 2 } sn_pooling;

/* Which framework's conventions a model follows: parameter names, weight layouts on load, the
 * batch-norm moving-statistics rule and the default preprocessing. */
typedef enum sn_style { SN_STYLE_TORCH = 0, SN_STYLE_KERAS = 1 } sn_style;

typedef enum sn_preprocess {
  SN_PRE_DEFAULT = -1, /* the architecture's own */
  SN_PRE_NONE = 0,     /* float input taken as is */
  SN_PRE_CAFFE = 1,    /* RGB->BGR, subtract ImageNet BGR means */
  SN_PRE_TF = 2,       /* x/127.5 - 1 */
  SN_PRE_TORCH = 3,    /* x/255, subtract mean, divide by std (ImageNet) */
  SN_PRE_UNIT = 4      /* x/255 (small-image models) */
} sn_preprocess;

typedef struct sn_model_config {
  const char *arch; /* resnet18..152, keras_resnet50[v2].., keras_resnet50_v02, resnet20/32/56,
                       lenet, lenet_bn, lenet_bn_conventional (sn_arch_names) */
  int classes;      /* <= 0: architecture default (1000, or 10 for small-image models) */
  int height, width, channels; /* <= 0: architecture default (224x224x3, 28x28x1, 32x32x3) */
  int include_top;             /* 1: classifier on top; 0: "no top" feature extractor */
  sn_pooling pooling;          /* with include_top == 0: pooling after the last stage */
  int base_width; /* <= 0: default (64, LeNet 6, CIFAR 16); reduced-width variants for tests */
  int bn_momentum_style; /* -1: the architecture's; else an sn_style whose BN rule to use */
  int skip_init; /* 1: parameters start at zero (for summaries or when weights are loaded) */
} sn_model_config;

/* Fills cfg with defaults for arch (include_top = 1, everything else "default"). */
SN_API void sn_model_config_init(sn_model_config *cfg, const char *arch);
/* Names of all architectures, NULL-terminated. */
SN_API const char *const *sn_arch_names(void);
/* The input size arch was designed for, which sn_net_create uses when the configuration leaves
 * it at 0: 224x224x3 for the ImageNet ResNets, 32x32x3 for the CIFAR-style ones, 28x28x1 for
 * LeNet. Unknown arch: SN_ERR_INVALID. */
SN_API sn_status sn_arch_input_size(const char *arch, int *h, int *w, int *c);

typedef struct sn_net sn_net;

/* Builds a network (parameters allocated and initialised: He normal, BN gamma 1, beta 0, moving
 * mean 0, var 1; seeded by seed). The caller owns *out. */
SN_API sn_status sn_net_create(const sn_model_config *cfg, uint64_t seed, sn_net **out);
SN_API void sn_net_destroy(sn_net *net);

SN_API const char *sn_net_arch(const sn_net *net);
/* The configuration the net was built from, with every default resolved (classes, input shape,
 * base width). The arch string is owned by the net. */
SN_API const sn_model_config *sn_net_config(const sn_net *net);
SN_API sn_style sn_net_style(const sn_net *net);
SN_API sn_preprocess sn_net_default_preprocess(const sn_net *net);
/* Input shape of one image: (H, W, C), what sn_net_forward reads per image. */
SN_API void sn_net_input_shape(const sn_net *net, int *h, int *w, int *c);
/* Output shape of one image, (h, w, c), what sn_net_forward writes per image (h * w * c floats):
 *   with a classifier (include_top = 1):        (1, 1, classes)  - the logits
 *   without, pooling SN_POOL_AVG or SN_POOL_MAX: (1, 1, D)        - the pooled features
 *   without, pooling SN_POOL_NONE:              (H', W', C')     - the last stage's map
 * The class count is c, not h: use sn_net_classes, which is 0 for a model without classifier. */
SN_API void sn_net_output_shape(const sn_net *net, int *h, int *w, int *c);
/* Number of classes of the classifier (the width of the logits and of sn_net_predict's probs
 * rows), or 0 for a model without one (include_top = 0). */
SN_API int sn_net_classes(const sn_net *net);
/* Width D of the pooled feature vector (the classifier's input), 0 if the model has none. */
SN_API int sn_net_feature_dim(const sn_net *net);

/* Multiply-adds of one image's forward pass (convolutions and dense layers), as docs/models.md
 * counts them. */
SN_API int64_t sn_net_macs(const sn_net *net);
/* Parameter counts as Keras reports them (moving statistics are non-trainable). */
SN_API void sn_net_param_counts(const sn_net *net, int64_t *total, int64_t *trainable,
                                int64_t *non_trainable);
/* Writes the Keras-style summary table and the count lines to a string: for the Keras-style
 * architectures the rows model.summary() prints for the Keras code the net reproduces (Keras'
 * layer names, unnamed layers by Keras' automatic names, its row order, activations folded into
 * their layers; docs/models.md, "Layer names and Keras' layer order"); for the torchvision-style
 * ones every layer in network order. Caller frees *out. Errors: SN_ERR_NOMEM. */
SN_API sn_status sn_net_summary(const sn_net *net, char **out);
/* The layers of the Keras model the net reproduces, in the order of Keras' model.layers: for a
 * functional model the input layer "input_1" first, then the layers by decreasing depth (longest
 * path to the output), ties in the order a depth-first walk from the output first reaches them
 * (the order in which a Keras legacy .h5 file lists them and Keras pairs their weights); for a
 * Sequential model (the LeNets) the layers in order, without an input layer. Activations that
 * Keras folds into the layer before them are not listed. For the torchvision-style nets the same
 * rule applied to their graph. *names (*n entries) is allocated here and freed by the caller
 * with free(); the strings belong to the net. Not collective. Errors: SN_ERR_NOMEM. */
SN_API sn_status sn_net_keras_layers(const sn_net *net, const char ***names, int *n);

/* Parameter tensors, in network order. */
typedef enum sn_param_role {
  SN_ROLE_KERNEL = 0,      /* conv (KH, KW, Cin, Cout) = HWIO; dense (In, Out) */
  SN_ROLE_BIAS = 1,        /* (Cout) */
  SN_ROLE_GAMMA = 2,       /* BN (C) */
  SN_ROLE_BETA = 3,        /* BN (C) */
  SN_ROLE_MOVING_MEAN = 4, /* BN (C), non-trainable */
  SN_ROLE_MOVING_VAR = 5   /* BN (C), non-trainable */
} sn_param_role;

typedef struct sn_param_info {
  const char *layer; /* layer name: Keras ("conv2_block1_1_conv") or torch ("layer1.0.conv1") */
  const char *layer_kind; /* "conv", "bn", "dense" */
  sn_param_role role;
  int ndim;
  int shape[4]; /* engine layout, see sn_param_role */
  int64_t count;
  int trainable;
  float *data; /* into the net's parameter block; owned by the net */
  float *grad; /* gradient (NULL until training is planned) */
} sn_param_info;

SN_API int sn_net_num_params(const sn_net *net);
SN_API sn_status sn_net_param(const sn_net *net, int i, sn_param_info *info);
/* Index of the tensor (layer, role), or -1. */
SN_API int sn_net_find_param(const sn_net *net, const char *layer, sn_param_role role);
/* Name of a role in a style: torch "weight"/"bias"/"running_mean"..., keras "kernel"/"gamma"... */
SN_API const char *sn_param_role_name(sn_param_role role, sn_style style, const char *layer_kind);

/* The contiguous parameter block: all parameters (trainable then moving statistics), in
 * network order. `grads` is the matching gradient block (trainable part only) after
 * sn_net_plan(..., training = 1). */
SN_API float *sn_net_param_block(sn_net *net, size_t *n_floats);
SN_API float *sn_net_grad_block(sn_net *net, size_t *n_floats);

/* Engine options: algorithm and fusion choices, profiling, communication polling. They never
 * change what is computed beyond the documented tolerances (most choices are bitwise neutral);
 * they exist for A/B timing, for tests of the portable paths and for isolating a suspected bug.
 * Set them before sn_net_plan: a plan reads them once (comm_poll is read by every training step).
 * The CLI maps environment variables onto them (docs/cli.md, "Environment"). */
typedef enum sn_choice {
  SN_CHOICE_AUTO = 0, /* the size rule */
  SN_CHOICE_ON = 1,   /* wherever the algorithm can run */
  SN_CHOICE_OFF = 2   /* never */
} sn_choice;

/* Planner fusions (sn_engine_options.fuse). */
enum {
  SN_FUSE_PAD = 1,    /* zero padding into the consumer */
  SN_FUSE_BN = 2,     /* batch norm into the preceding convolution (inference) */
  SN_FUSE_ADD = 4,    /* residual add into a convolution */
  SN_FUSE_RELU = 8,   /* ReLU into its producer */
  SN_FUSE_GRAD = 16,  /* shared add gradients (training) */
  SN_FUSE_BNADD = 32, /* batch norm into the add (training) */
  SN_FUSE_BNIN = 64,  /* batch norm into the input of the 1x1 convolutions reading it (inference) */
  SN_FUSE_BNCONV =
      128, /* batch norm into the padded input copy of the next convolution (training) */
  SN_FUSE_ALL = 255
};

/* Arithmetic of an inference plan's convolutions (sn_engine_options.precision):
 *   SN_PRECISION_FP32  float32 throughout (the default; the only precision of training plans)
 *   SN_PRECISION_BF16  weights stored in bfloat16, each convolution's input rounded to bfloat16
 *                      (round to nearest even), products accumulated in float32; activations
 *                      between layers stay float32
 *   SN_PRECISION_INT8  post-training static quantization: per-output-channel symmetric int8
 *                      weights (batch norm folded first), uint8 activations whose scales come
 *                      from a calibration pass (sn_calibrator_*, or sn_scales_load), int32 sums
 * The layers of sn_engine_options.fp32_layers stay float32 in both; pooling, the element-wise
 * layers and the softmax always do. docs/kernels.md states the rounding rules and error budgets;
 * docs/cli.md how the CLI runs them. Planning bf16 or int8 on a CPU without the instructions
 * (AVX512-BF16 or AMX-BF16; AVX512-VNNI or AMX-INT8) fails with SN_ERR_INVALID, naming them. */
typedef enum sn_precision {
  SN_PRECISION_FP32 = 0,
  SN_PRECISION_BF16 = 1,
  SN_PRECISION_INT8 = 2
} sn_precision;
/* "fp32", "bf16", "int8"; and the reverse (unknown name: SN_ERR_INVALID). */
SN_API const char *sn_precision_name(sn_precision p);
SN_API sn_status sn_precision_parse(const char *name, sn_precision *out);

/* Layers a bf16 or int8 plan keeps in float32 (sn_engine_options.fp32_layers). */
enum {
  SN_FP32_STEM = 1,       /* the convolution reading the network input */
  SN_FP32_CLASSIFIER = 2, /* the dense layers */
  SN_FP32_DEFAULT = 3
};

/* CPU features the kernels dispatch on (sn_cpu_features, sn_engine_options.cpu_off). */
enum {
  SN_CPU_AVX512 = 1,      /* AVX-512 F, BW, VL, DQ and FMA: the fast float32 kernels */
  SN_CPU_AVX512_BF16 = 2, /* vdpbf16ps, vcvtneps2bf16 */
  SN_CPU_AVX512_VNNI = 4, /* vpdpbusd */
  SN_CPU_AMX_BF16 = 8,    /* AMX tiles and tdpbf16ps, usable: the OS granted the tile state */
  SN_CPU_AMX_INT8 = 16,   /* AMX tiles and tdpbusd, usable */
  SN_CPU_ALL = 31
};

typedef struct sn_engine_options {
  int portable;           /* 1: portable kernels only, never AVX-512 (default 0: by the CPU) */
  sn_choice conv_gemm;    /* training convolutions on the packed GEMM (forward, backward data) */
  sn_choice conv_wgrad;   /* training weight gradients on the packed GEMM */
  sn_choice winograd;     /* training 3x3 convolutions on Winograd F(2x2, 3x3) */
  unsigned fuse;          /* SN_FUSE_* mask (default SN_FUSE_ALL) */
  int profile;            /* 1: time every layer of every pass of the plan (sn_net_profile) */
  int comm_poll;          /* 1 (default): sn_net_train_step polls the pending gradient all-reduces
                             (sn_comm_test) after each layer's backward, so that they progress
                             while backward continues (the MPI library has no progress thread);
                             the result is the same either way */
  sn_precision precision; /* inference plans: fp32 (default), bf16 or int8 */
  unsigned fp32_layers;   /* SN_FP32_* layers that bf16 and int8 plans keep in float32
                             (default SN_FP32_DEFAULT: the stem and the classifier) */
  unsigned cpu_off;       /* SN_CPU_* features the kernels must not use, as on a CPU without
                             them (default 0): tests of the refusal and of the AVX-512 paths
                             that stand in for AMX. SN_CPU_AVX512 acts as portable = 1 */
} sn_engine_options;
SN_API void sn_engine_options_init(sn_engine_options *o);
/* Copies o into the net; takes effect at the next sn_net_plan. Unknown fuse, fp32_layers or
 * cpu_off bits, choice or precision values: SN_ERR_INVALID. */
SN_API sn_status sn_net_set_options(sn_net *net, const sn_engine_options *o);
SN_API const sn_engine_options *sn_net_options(const sn_net *net);
/* 1 if the CPU has the AVX-512 subsets (F, BW, VL, DQ) and FMA that the engine's fast kernels
 * use, detected once; the kernels run them unless sn_engine_options.portable is set. */
SN_API int sn_cpu_has_avx512(void);
/* The SN_CPU_* features of this CPU, detected once. The AMX bits are set only when the CPU has
 * the tiles, the OS enables their state (XCR0) and grants this process its use
 * (arch_prctl(ARCH_REQ_XCOMP_PERM), requested at the first call). */
SN_API unsigned sn_cpu_features(void);
/* The names of the features in mask ("avx512 avx512_bf16 ...", "none"), into buf (n bytes,
 * truncated). Returns buf. */
SN_API const char *sn_cpu_feature_names(unsigned mask, char *buf, size_t n);

/* Plans activation memory for batches of up to max_batch. training = 1 keeps what backward
 * needs and allocates gradients; training = 0 may fold batch norm into convolutions and reuse
 * activation memory. Must be called again after parameters change if training = 0 (folding
 * copies the weights): see sn_net_refresh. */
SN_API sn_status sn_net_plan(sn_net *net, int max_batch, int training);
/* Re-derives folded inference weights after parameters were loaded or trained. */
SN_API sn_status sn_net_refresh(sn_net *net);

/* Forward pass on 1 <= n <= max_batch images. x: (n, H, W, C) preprocessed float32 (the shape of
 * sn_net_input_shape). out: (n, h, w, c) of sn_net_output_shape, i.e. (n, classes) logits with
 * a classifier; NULL: the output is not copied (sn_net_features still is valid). */
SN_API sn_status sn_net_forward(sn_net *net, const float *x, int n, float *out);
/* After sn_net_forward: the pooled features (n, feature_dim) (the classifier's input). */
SN_API const float *sn_net_features(const sn_net *net);
/* After sn_net_forward or sn_net_train_step: the output of that pass, (n, D) (a classifier's
 * logits; for a training step, those its loss was computed from). Owned by the net, valid until
 * the next pass or plan; NULL before the net is planned. */
SN_API const float *sn_net_output(const sn_net *net);
/* 1 if the net is planned for training (sn_net_plan(..., training = 1)), else 0. */
SN_API int sn_net_is_training(const sn_net *net);

/* One layer's time in the passes of the current plan (sn_engine_options.profile). */
typedef struct sn_layer_profile {
  const char *layer;     /* layer name */
  const char *kind;      /* "conv", "bn", "relu", ... */
  const char *algorithm; /* the prepared convolution's algorithm in inference ("gemm1x1",
                            "im2col", "winograd4x4", "winograd2x2", "direct", "generic"; also a
                            dense layer on the packed GEMM; "paired": an int8 convolution run
                            inside the call of the one that adds its output, whose row has the
                            time), else "-" */
  double forward_s;      /* seconds in forward, summed over the passes */
  double backward_s;     /* seconds in backward, summed over the training steps (0 in inference) */
} sn_layer_profile;
/* The per-layer times of the passes run since the net was planned with the profile option set:
 * one row per layer the plan runs (layers fused into others are not), in network order, and in
 * *passes the number of passes timed (inference forwards, or training steps: forward and backward,
 * loss and SGD not included). Without the option: *rows NULL, *n 0, *passes 0. *rows is allocated
 * here and freed by the caller with free(); its strings belong to the net (valid until it is
 * destroyed). A new plan starts the counts afresh. Not collective. Errors: SN_ERR_NOMEM. */
SN_API sn_status sn_net_profile(const sn_net *net, sn_layer_profile **rows, int *n, long *passes);

/* A probe sees the output of every layer an inference pass (sn_net_forward) runs, in network
 * order, right after the layer: n images of h x w x c float32 values (NHWC). Layers fused into
 * another are not seen; the layer they are fused into gives the fused result (a convolution with
 * its batch norm, ReLU and residual add, as the plan runs it), so two plans of the same net with
 * the same fusion options - float32 and bf16 or int8 - show the same layers with the same shapes.
 * An int8 plan's uint8 tensor is given dequantized (scale x q). y is valid during the call only.
 * The probe may call nothing on this net. Not collective. */
typedef void (*sn_layer_probe)(void *user, const char *layer, const char *kind, const float *y,
                               int n, int h, int w, int c);
/* Sets (probe non-NULL) or removes the probe. Takes effect at the next pass; survives replans. */
SN_API void sn_net_set_probe(sn_net *net, sn_layer_probe probe, void *user);

/* Comparing plans: how far bf16 or int8 plans of a net move every layer's output from a float32
 * plan of the same parameters, on the same images (src/compare.c). Each sn_compare_add runs the
 * batch through the reference, keeping every layer's output, then through each other net; the
 * error at a layer includes what the layers before it contributed, as the network runs. */
typedef struct sn_compare sn_compare;
/* ref and tests[0..ntests) are inference plans of the same architecture and parameters with the
 * same fusion options (the tests planned for batches at least as large as ref's); they must
 * outlive the comparison and are not replanned while it lives. Memory: one batch of every layer's
 * reference output (max_batch x the sum of the layer sizes floats). The caller owns *out.
 * Errors: plans that do not run the same layers (naming the first that differs), SN_ERR_INVALID;
 * SN_ERR_NOMEM. */
SN_API sn_status sn_compare_create(sn_net *ref, sn_net *const *tests, int ntests, sn_compare **out);
SN_API void sn_compare_destroy(sn_compare *c);
/* Runs n <= ref's max_batch preprocessed images x (n, H, W, C) through every net and adds the
 * differences. Not collective. Errors: those of sn_net_forward; after sn_compare_finish,
 * SN_ERR_INVALID. */
SN_API sn_status sn_compare_add(sn_compare *c, const float *x, int n);
/* Sums the differences over the ranks of comm (NULL: serial). Collective; once. */
SN_API sn_status sn_compare_finish(sn_compare *c, sn_comm *comm);
/* The layers compared: every layer the plans run, in network order (fused layers are part of the
 * layer they are fused into, e.g. a convolution with its batch norm, ReLU and residual add). */
SN_API int sn_compare_num_layers(const sn_compare *c);
/* Images compared (on this rank before sn_compare_finish, on all ranks after). */
SN_API int64_t sn_compare_images(const sn_compare *c);
enum { SN_LAYER_IS_OUTPUT = 1, SN_LAYER_IS_FEATURES = 2 }; /* sn_layer_error.role bits */
typedef struct sn_layer_error {
  const char *layer, *kind; /* owned by the reference net */
  int64_t values;           /* output values per image */
  int role;                 /* SN_LAYER_IS_* bits: the net's output, its pooled features */
  double rel_l2;   /* ||t - r|| / ||r|| over all images and values (t: the test's output) */
  double cos_mean; /* cosine similarity of t and r per image (the whole output of the layer for
                      one image as a vector; 1 where both are zero), mean over the images */
  double cos_min;  /* and its smallest value */
} sn_layer_error;
/* Layer i (0 <= i < sn_compare_num_layers) of test net `test`. Errors: indices out of range,
 * SN_ERR_INVALID. */
SN_API sn_status sn_compare_layer(const sn_compare *c, int test, int i, sn_layer_error *out);
/* Fraction of the images whose top-1 class in test's output equals the reference's, or -1 for a
 * net without a classifier or before any image. */
SN_API double sn_compare_top1_agreement(const sn_compare *c, int test);

/* ---------------------------------------------------------------- int8: scales, calibration */

/* An int8 plan quantizes the input of each layer it runs in int8 (every convolution and dense
 * layer not kept in float32 by sn_engine_options.fp32_layers) to uint8:
 *   q = clamp(round_half_even(x / scale) + zero_point, 0, 255),   x ~ scale * (q - zero_point)
 * with zero_point 0 and scale = threshold / 255 for an input never negative in calibration (a
 * ReLU's output: every convolution's input in the ResNets but the stem's), else zero_point 128 and
 * scale = threshold / 127. Values beyond the threshold are clipped to it. The thresholds come from
 * calibration (sn_calibrator_*) or a scales file (sn_scales_load). docs/kernels.md ("Low
 * precision") has the whole arithmetic. */
typedef struct sn_act_scale {
  const char *layer; /* the layer whose input this is (conv or dense); owned by the net */
  float threshold;   /* clipping threshold T > 0; 0: not set */
  float scale;       /* T / 255 (zero_point 0) or T / 127 (zero_point 128) */
  int zero_point;    /* 0 when min >= 0, else 128 */
  float min, max;    /* the input's range in calibration */
} sn_act_scale;

/* The layers that take an activation scale: every convolution and dense layer, in network order
 * (index i of sn_net_act_scale). */
SN_API int sn_net_num_act_scales(const sn_net *net);
/* Scale i (0 <= i < sn_net_num_act_scales, else SN_ERR_INVALID). Not collective. */
SN_API sn_status sn_net_act_scale(const sn_net *net, int i, sn_act_scale *out);
/* Sets the scale of layer's input from a threshold and the observed range (scale and zero point
 * are derived). Takes effect at the next sn_net_plan. Errors: no such conv or dense layer,
 * SN_ERR_NOTFOUND; threshold not finite and positive, or min > max, SN_ERR_INVALID. */
SN_API sn_status sn_net_set_act_scale(sn_net *net, const char *layer, float threshold, float min,
                                      float max);

/* Calibration: statistics of every convolution's and dense layer's input over a set of images,
 * and a threshold chosen from them for each (docs/kernels.md, "Calibration"):
 *   SN_CALIB_MSE         minimises the expected squared error of the quantized input (rounding
 *                        below the threshold, clipping above) over the histogram of |x|
 *   SN_CALIB_MAX         the largest |x| seen
 *   SN_CALIB_PERCENTILE  the 99.99th percentile of |x|
 * The statistics are integer counts in fixed bins (128 per octave of |x|) and exact extrema, and
 * a plan's float32 result for an image does not depend on the batch it runs in, so for a given
 * max_batch the thresholds do not depend on how the images were split into batches or over
 * ranks (a different max_batch may choose other float32 algorithms, whose rounding may move a
 * threshold by a bin). */
typedef enum sn_calib_method {
  SN_CALIB_MSE = 0,
  SN_CALIB_MAX = 1,
  SN_CALIB_PERCENTILE = 2
} sn_calib_method;
/* "mse", "max", "percentile"; and the reverse (unknown name: SN_ERR_INVALID). */
SN_API const char *sn_calib_method_name(sn_calib_method m);
SN_API sn_status sn_calib_method_parse(const char *name, sn_calib_method *out);

typedef struct sn_calibrator sn_calibrator;
/* Plans net for float32 inference with batches of up to max_batch (batch norms not folded into
 * the layers reading them, so that every input observed is a tensor) and starts empty
 * statistics. Do not replan the net while the calibrator lives; plan it again (int8) after
 * sn_calibrator_finish. The caller owns *out; net must outlive it. Errors: those of
 * sn_net_plan, SN_ERR_NOMEM. */
SN_API sn_status sn_calibrator_create(sn_net *net, int max_batch, sn_calibrator **out);
/* A float32 forward pass on n <= max_batch preprocessed images x (n, H, W, C), adding every
 * observed input to the statistics. Not collective. Errors: those of sn_net_forward;
 * SN_ERR_NUMERIC when an observed input holds NaN or infinity (naming the layer). */
SN_API sn_status sn_calibrator_add(sn_calibrator *c, const float *x, int n);
/* Sums the statistics over the ranks of comm (NULL: serial), chooses each threshold by method
 * and sets it in the net (sn_net_set_act_scale). Collective. Errors: no images on any rank, or a
 * layer whose input was zero everywhere, SN_ERR_INVALID (naming it); SN_ERR_COMM. */
SN_API sn_status sn_calibrator_finish(sn_calibrator *c, sn_comm *comm, sn_calib_method method);
/* Images added: on this rank before sn_calibrator_finish, on all ranks after. */
SN_API int64_t sn_calibrator_rows(const sn_calibrator *c);
SN_API void sn_calibrator_destroy(sn_calibrator *c);
/* The calibration sample of a dataset of n rows: rows evenly spaced over it (sample i, for
 * i < min(count, n), is row floor(i * n / min(count, n))), so that a dataset sorted by class
 * gives every class its share; rank r of size takes the contiguous block sn_shard_block of the
 * samples. Writes this rank's rows (at most ceil(count / size)) and returns how many. */
SN_API int64_t sn_calib_rows(int64_t n, int64_t count, int rank, int size, int64_t *rows);

/* ---------------------------------------------------------------- training */

typedef struct sn_train_config {
  float lr;
  float momentum; /* SGD momentum (PyTorch semantics: buf = m*buf + g; p -= lr*buf) */
  int nesterov;
  float weight_decay;
  int decay_bn_and_bias; /* 1: weight decay on BN parameters and biases too (PyTorch default) */
  float label_smoothing;
  /* < 0: the style's default (torch 0.1 on the new value, keras 0.99 on the old) */
  float bn_momentum;
} sn_train_config;
SN_API void sn_train_config_init(sn_train_config *cfg);

/* Hook through which batch-norm statistics and their backward sums become global. The default
 * (NULL comm or size 1) is local. The distributed layer sets the communicator. */
SN_API sn_status sn_net_set_comm(sn_net *net, sn_comm *comm, int sync_bn);
/* Grouped synchronized batch norm: with sync_bn set, the batch statistics and the backward sums
 * are summed over bn_comm instead of the net's communicator, so each group of ranks normalises
 * over its own rows (LBANN's statistics_group_size, MLPerf's BN span); the gradient all-reduce
 * still spans the net's communicator. bn_comm is borrowed: it must outlive the net's training
 * steps, and its ranks must be ranks of the net's communicator (sn_comm_split_groups of it).
 * NULL (the default) sums over the net's communicator. Not collective. */
SN_API sn_status sn_net_set_bn_comm(sn_net *net, sn_comm *bn_comm);

/* Training forward + loss + backward for one (local) batch. labels: (n) int32 in [0, classes).
 * `global_n` is the global batch size (the loss and gradients are averaged over it: with one
 * process global_n = n). Gradients are written (not accumulated) into the gradient block.
 * Returns the mean loss over the local batch in *loss and the number correct in *correct. */
SN_API sn_status sn_net_train_step(sn_net *net, const float *x, const int32_t *labels, int n,
                                   int global_n, const sn_train_config *cfg, float *loss,
                                   int *correct);
/* Applies SGD with the given learning rate to the parameter block from the gradient block. */
SN_API sn_status sn_net_sgd_update(sn_net *net, const sn_train_config *cfg, float lr);
/* Zeroes the last BN gamma of each residual block (Goyal et al.). */
SN_API void sn_net_zero_init_residual(sn_net *net);
/* Optimizer state (momentum buffers), same layout as the trainable part of the parameter block. */
SN_API float *sn_net_momentum_block(sn_net *net, size_t *n_floats);
/* Number of SGD updates applied (0: the next update initialises the momentum buffers, as PyTorch
 * does). Checkpoints save and restore it. */
SN_API int64_t sn_net_sgd_steps(const sn_net *net);
SN_API void sn_net_set_sgd_steps(sn_net *net, int64_t steps);
/* Size of the gradient all-reduce buckets (MiB, default 25). */
SN_API void sn_net_set_bucket_mb(sn_net *net, double mb);
/* Communication counters of the gradient all-reduce, cumulative over all train steps of this
 * net: seconds blocked after backward until every bucket was reduced (the communication not
 * hidden behind backward) and gradient bytes all-reduced per rank. Zero with one rank. Sync-BN
 * all-reduces are not included. */
SN_API void sn_net_comm_stats(const sn_net *net, double *exposed_seconds, int64_t *bytes);
/* Gradient buckets launched (cumulative) and how many of them had completed when backward ended,
 * i.e. were fully overlapped with backward (the last bucket, launched after backward, never is). */
SN_API void sn_net_comm_buckets(const sn_net *net, int64_t *launched, int64_t *done_in_backward);

/* Learning-rate schedule. */
typedef enum sn_schedule {
  SN_SCHED_CONSTANT = 0,
  SN_SCHED_STEP = 1,
  SN_SCHED_COSINE = 2
} sn_schedule;
typedef struct sn_lr_schedule {
  sn_schedule kind;
  float base_lr;
  int64_t total_steps;
  int64_t warmup_steps; /* linear warm-up from base_lr/warmup_steps... to base_lr */
  int64_t step_every;   /* SN_SCHED_STEP: multiply by step_gamma every step_every steps */
  float step_gamma;
} sn_lr_schedule;
SN_API float sn_lr_at(const sn_lr_schedule *s, int64_t step);

/* ---------------------------------------------------------------- preprocessing */

/* Converts (n, H, W, C) uint8 RGB images to float32 per mode. out may not alias in. */
SN_API void sn_preprocess_u8(const uint8_t *in, size_t n, int h, int w, int c, sn_preprocess mode,
                             float *out);
/* Same for float32 input in 0..255 (in place allowed). */
SN_API void sn_preprocess_f32(float *x, size_t n, int h, int w, int c, sn_preprocess mode);
SN_API const char *sn_preprocess_name(sn_preprocess p);
SN_API sn_status sn_preprocess_parse(const char *name, sn_preprocess *out);

/* 1 if all n values are finite. */
SN_API int sn_values_finite(const float *x, size_t n);

/* Training augmentation of a preprocessed batch x (n, H, W, C), in place: horizontal flip with
 * probability 1/2 and (crop-flip) a random translation of up to `pad` pixels with zero fill
 * (torchvision RandomCrop(padding=pad) + RandomHorizontalFlip), or (resized-crop) torchvision's
 * RandomResizedCrop(H x W, scale crop_scale..1, ratio 3/4..4/3) of the image, resized back to
 * H x W bilinearly (half-pixel centres, no antialiasing), then the flip. crop_scale is the
 * smallest fraction of the area a crop takes (torchvision's scale[0]; outside (0, 1]: the default
 * SN_CROP_SCALE_DEFAULT, 0.08). Choices depend only on (seed, epoch, rows[i]). scratch: H*W*C
 * floats. For an encoded dataset the reader takes the
 * resized crop from the original picture at decode instead (sn_dataset_set_decode_crop); this
 * one crops images already stored at H x W. */
typedef enum sn_augment {
  SN_AUG_NONE = 0,
  SN_AUG_FLIP = 1,
  SN_AUG_CROP_FLIP = 2,
  SN_AUG_RESIZED_CROP = 3
} sn_augment;
#define SN_CROP_SCALE_DEFAULT 0.08
SN_API void sn_augment_batch(float *x, int n, int h, int w, int c, sn_augment mode, int pad,
                             double crop_scale, uint64_t seed, int64_t epoch, const int64_t *rows,
                             float *scratch);
/* The choices SN_AUG_RESIZED_CROP makes for dataset row `row` in epoch `epoch` of an h x w
 * picture: box = (top, left, height, width), torchvision RandomResizedCrop.get_params (scale
 * crop_scale..1, ratio 3/4..4/3, ten tries then the centre crop), always inside the picture, and
 * *flip (1: mirror). The same function of (seed, epoch, row) as sn_augment_batch: applied to an
 * encoded dataset's original pictures at decode (sn_dataset_set_decode_crop), to a raw dataset's
 * stored images by sn_augment_batch. */
SN_API void sn_augment_crop_box(uint64_t seed, int64_t epoch, int64_t row, int h, int w,
                                double crop_scale, int box[4], int *flip);
SN_API const char *sn_augment_name(sn_augment a);
SN_API sn_status sn_augment_parse(const char *name, sn_augment *out);

/* Softmax over rows (in place allowed) and top-k per row (indices and values, descending,
 * ties broken by lower index). */
SN_API void sn_softmax(const float *logits, int n, int k, float *probs);
SN_API void sn_topk(const float *scores, int n, int classes, int k, int32_t *idx, float *val);
/* The rows whose label is among their k highest scores in sn_topk's order (ties to the lower
 * index): the top-k hits of a batch. scores (n, classes), labels (n); a label outside
 * [0, classes) is a miss. */
SN_API int sn_topk_hits(const float *scores, int n, int classes, int k, const int32_t *labels);

/* ---------------------------------------------------------------- prediction and metrics */

/* Classifies a batch: inference on 1 <= n <= max_batch images in one call (what `shardnet infer`
 * computes per batch): sn_net_forward, then the features, the softmax and the top k classes.
 *   x        (n, H, W, C) preprocessed float32 (sn_preprocess_u8 with sn_net_default_preprocess
 *            turns decoded images into it)
 *   out      (n, h*w*c) the output of sn_net_output_shape (the logits with a classifier), or
 *            NULL when probs (or, without a classifier, features) is given
 *   features (n, F) or NULL: the pooled features (F = sn_net_feature_dim) of a model with a
 *            classifier; for a model without one (include_top = 0), a copy of the output
 *   probs    (n, classes) or NULL: softmax probabilities of the logits; required when k > 0.
 *            May be out itself (the logits are then replaced by the probabilities) or, with out
 *            NULL, the only output buffer
 *   top_idx, top_val (n, k): the k most probable classes and their probabilities, descending,
 *            ties to the lower index (sn_topk of probs); NULL when k = 0
 * So the smallest classify call is sn_net_predict(net, x, n, k, NULL, NULL, probs, top_idx,
 * top_val). probs and k > 0 need a classifier and k <= sn_net_classes. All buffers are the
 * caller's; the net must be planned for inference (sn_net_plan(net, max_batch, 0)). Outputs are
 * not checked for NaN or infinity (sn_values_finite). Errors: SN_ERR_INVALID (arguments, no
 * output buffer, or no classifier), those of sn_net_forward. Not collective. */
SN_API sn_status sn_net_predict(sn_net *net, const float *x, int n, int k, float *out,
                                float *features, float *probs, int32_t *top_idx, float *top_val);

/* Classification metrics summed over batches and ranks: labelled rows, top-1 and top-k hits,
 * the summed cross-entropy -log(max(p[label], 1e-30)) and optionally the confusion matrix
 * (classes, classes) of counts, row = true class, column = top-1 prediction. Counts are doubles
 * (exact up to 2^53). */
typedef struct sn_metrics sn_metrics;
/* k: the width of the top_idx rows given to sn_metrics_add (1 <= k <= classes); confusion = 1
 * keeps the matrix. The caller owns *out. */
SN_API sn_status sn_metrics_create(int classes, int k, int confusion, sn_metrics **out);
SN_API void sn_metrics_destroy(sn_metrics *m);
/* Adds n rows: labels (n), top_idx (n, k) as sn_net_predict gives them, probs (n, classes) or
 * NULL (then no loss is summed). Rows whose label is outside [0, classes) are not counted (check
 * labels first where that is an error). Not collective. */
SN_API void sn_metrics_add(sn_metrics *m, int n, const int32_t *labels, const int32_t *top_idx,
                           const float *probs);
/* Replaces every rank's sums by the sums over the ranks of comm. Collective. */
SN_API sn_status sn_metrics_allreduce(sn_metrics *m, sn_comm *comm);
/* The sums so far (any pointer may be NULL): labelled rows, top-1 hits, top-k hits, summed
 * cross-entropy (0 if no probs were given). */
SN_API void sn_metrics_sums(const sn_metrics *m, double *rows, double *top1, double *topk,
                            double *loss);
/* The confusion matrix (classes, classes), or NULL if it is not kept. Owned by m. */
SN_API const double *sn_metrics_confusion(const sn_metrics *m);

/* Sharding: pure functions of (dataset size, epoch seed, rank, size). */
/* The epoch permutation (n entries), identical on every rank for the same seed and epoch. */
SN_API void sn_shard_permutation(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);
/* Contiguous inference block of rank r: rows [*begin, *end). Every row exactly once; the first
 * n % size ranks get one row more than the others. */
SN_API void sn_shard_block(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

/* Training epochs (data parallel, Goyal et al.: one shuffle per epoch split across the ranks).
 * Global batch s is the slice [s*B, (s+1)*B) of the epoch permutation; rank r takes its part
 * sn_shard_block(B, r, size) of it, so ranks get B/size or B/size + 1 rows (the first B % size
 * ranks get the extra one) and the union over ranks, in rank order, is exactly the global batch.
 * Every rank runs the same number of steps (no hang at the epoch's end):
 *   drop_last = 1: floor(n / B) steps; the last n % B rows of the permutation are skipped.
 *   drop_last = 0: ceil(n / B) steps; the last global batch is padded to B by wrapping around
 *                  to the start of the permutation (those rows are seen twice this epoch).
 * So every step's global batch has exactly B rows: pass global_n = B to sn_net_train_step. */
SN_API int64_t sn_shard_epoch_steps(int64_t n, int64_t global_batch, int drop_last);
/* Most rows a rank gets in one step: ceil(B / size). */
SN_API int sn_shard_local_max(int64_t global_batch, int size);
/* Rank r's rows of global batch `step`, from the epoch permutation perm (n entries). Writes up to
 * sn_shard_local_max rows and returns their count (0 for an out-of-range step or argument). */
SN_API int sn_shard_step_rows(const int64_t *perm, int64_t n, int64_t global_batch, int drop_last,
                              int rank, int size, int64_t step, int64_t *rows);
/* The whole epoch of rank r: *steps = sn_shard_epoch_steps(...); rows: (steps, local_max) with
 * counts[s] valid entries in row s (caller-allocated: steps * local_max and steps entries).
 * Allocates (and frees) one n-entry permutation. */
SN_API sn_status sn_shard_epoch_rows(int64_t n, uint64_t seed, int64_t epoch, int rank, int size,
                                     int64_t global_batch, int drop_last, int64_t *rows,
                                     int *counts, int64_t *steps);

/* ---------------------------------------------------------------- training recipe */

SN_API const char *sn_schedule_name(sn_schedule s); /* "constant", "step", "cosine" */
/* Errors: SN_ERR_INVALID naming the string. */
SN_API sn_status sn_schedule_parse(const char *name, sn_schedule *out);

/* Everything that decides what a training run computes, with every default resolved (the
 * values used, never "default" markers). A checkpoint records it (sn_checkpoint_meta.recipe), so
 * that a resumed run can check that it continues the same training (sn_train_recipe_diff).
 * Not part of it, because they do not change what is computed: the thread count, the all-reduce
 * bucket size, file names (the training data are identified by their row count, so a dataset
 * copied elsewhere still matches), and what acts only before the first step (initial weights,
 * zero-initialised residual gammas: a resumed run takes its parameters from the checkpoint).
 * The rank count is loop state (sn_checkpoint_meta.ranks): the global batch defines the
 * optimisation, so a run may resume on another rank count. */
typedef struct sn_train_recipe {
  char arch[SN_MAX_NAME];
  int classes, height, width, channels; /* the model's outputs and input size */
  int base_width;
  int64_t data_rows;    /* rows of the training set */
  int64_t epochs;       /* length of the run in epochs (what counts when steps is 0) */
  int64_t steps;        /* length in global steps; 0: epochs x steps per epoch */
  int64_t global_batch; /* images per step over all ranks */
  double lr;            /* base learning rate */
  sn_schedule schedule;
  double warmup_epochs; /* linear warm-up, in epochs (fractions allowed) */
  double momentum;
  int nesterov;
  double weight_decay;
  int decay_bn_and_bias; /* weight decay on BN parameters and biases too */
  double label_smoothing;
  sn_augment augment;
  double crop_scale; /* resized-crop: the smallest area fraction of a crop */
  sn_preprocess preprocess;
  int shuffle;   /* one permutation per epoch (0: file order) */
  int drop_last; /* drop the last partial global batch (0: pad it by wrapping) */
  uint64_t seed; /* initialisation, shuffling and augmentation */
  int bn_group;  /* ranks sharing batch-norm statistics: 0 all (synchronized), 1 none (local),
                    K > 1 groups of K consecutive ranks */
  int bn_style;  /* sn_style of the moving-statistics rule */
} sn_train_recipe;
/* Zeroes r, then `shardnet train`'s defaults where they do not depend on the model or the data:
 * epochs 1, global batch 128, lr 0.1, cosine, momentum 0.9, weight decay 5e-4 (BN parameters and
 * biases included), crop scale 0.08, shuffle on, seed 1, synchronized BN, torch BN style. */
SN_API void sn_train_recipe_init(sn_train_recipe *r);
/* Compares a recorded recipe `was` (a checkpoint's) with `now`. Returns the number of fields that
 * differ and writes them into buf (n bytes; may be NULL), one "name was -> now" per difference
 * separated by ", ", named as `shardnet train`'s options, e.g. "epochs 2 -> 3, lr 0.1 -> 0.05,
 * input 28x28x1 -> 32x32x3"; always terminated, ending in "..." when cut short. Not collective. */
SN_API int sn_train_recipe_diff(const sn_train_recipe *was, const sn_train_recipe *now, char *buf,
                                size_t n);

/* ---------------------------------------------------------------- HDF5 (io/) */

/* Weights. The loader recognises the layout: shardnet native, torchvision state_dict in HDF5
 * (docs/models.md), Keras legacy HDF5 or Keras 3 .weights.h5 with layer-name attributes
 * (docs/weights.md). A Keras legacy file is loaded as Keras loads it: its layers with weights, in
 * its layer_names order, paired with the net's layers with weights in Keras' layer order
 * (sn_net_keras_layers), every tensor's shape checked; when the file lists exactly the net's
 * names in another order they are matched by name instead (sn_weights_load_info reports either
 * deviation from name-by-name agreement). Nothing is half-loaded: on any mismatch the net is
 * unchanged and the message names the key or both layers and both shapes. Errors: missing file
 * SN_ERR_IO; not HDF5, truncated, unexpected key/layer, wrong arch SN_ERR_FORMAT; missing key or
 * layer SN_ERR_NOTFOUND; wrong shape or weight count SN_ERR_SHAPE (for the classifier, with the
 * file's class count); a NaN or infinity in any tensor loaded SN_ERR_NUMERIC naming the tensor
 * (the file's key or dataset, the layer and role) and the counts. A known file for another
 * architecture (the Keras release files, the Keras <= 2.2.4 ResNet50 file, which fits
 * keras_resnet50_v02) is refused naming the architecture it fits. md5_hex (33 bytes, may be NULL)
 * receives the file's MD5 (see sn_weights_known_file). Calls sn_net_refresh. Not collective:
 * every rank may call it; rank 0 reading and broadcasting is done with sn_weights_load_bcast. */
typedef enum sn_weights_format {
  SN_WEIGHTS_AUTO = 0,
  SN_WEIGHTS_NATIVE = 1,
  SN_WEIGHTS_TORCH = 2,
  SN_WEIGHTS_KERAS = 3
} sn_weights_format;

SN_API sn_status sn_weights_load(sn_net *net, const char *path, sn_weights_format fmt,
                                 char *md5_hex);
/* Rank 0 loads (format detected), then parameters and MD5 are broadcast; a failure on rank 0
 * is returned on every rank and no net changes. comm NULL: serial. Collective. */
SN_API sn_status sn_weights_load_bcast(sn_net *net, const char *path, sn_comm *comm, char *md5_hex);
/* Load flags. SN_LOAD_NEW_HEAD (fine-tuning with another class count): the classifier (the
 * net's last "dense" layer: torch "fc", Keras "predictions", "fc1000" or LeNet "dense_2") is
 * loaded only if the file has all its tensors with the net's shapes; if any is absent or shaped
 * differently (or the Keras layer has another weight count), the net keeps its own classifier.
 * Every other tensor stays strict (missing, unexpected or mis-shaped keys are errors). No effect
 * without a classifier. SN_LOAD_IGNORE_HEAD (feature extraction from a full file): when the net
 * has no classifier (include_top = 0: no "dense" layer), the file's top is skipped: torch keys
 * "fc.*"; Keras legacy: the file's last layers with weights beyond the net's, if they are the
 * architecture's count of dense layers (1; LeNet 3), whatever their names; Keras 3 vars named
 * "predictions" ("fc1000"; LeNet dense, dense_1, dense_2); native /params/<those names>. No effect
 * on a net with a classifier; everything else stays strict. The flags combine (each acts only in
 * its case). Unknown bits: SN_ERR_INVALID. The functions without _ex use SN_LOAD_STRICT. */
typedef enum { SN_LOAD_STRICT = 0, SN_LOAD_NEW_HEAD = 1, SN_LOAD_IGNORE_HEAD = 2 } sn_load_flags;
SN_API sn_status sn_weights_load_ex(sn_net *net, const char *path, sn_weights_format fmt,
                                    unsigned flags, char *md5_hex);
SN_API sn_status sn_weights_load_bcast_ex(sn_net *net, const char *path, sn_comm *comm,
                                          unsigned flags, char *md5_hex);
/* What a load found in the file besides the tensors. */
typedef struct sn_weights_info {
  char md5[33];             /* the file's MD5 in hex */
  sn_weights_format format; /* the layout found (NATIVE, TORCH or KERAS) */
  int renamed;              /* Keras legacy, paired by position: layers whose file name differs
                               from the net's (e.g. probs for predictions); 0 when every name
                               agrees or the names were matched in another order */
  char note[1024];          /* one line saying how a Keras legacy file's layers were matched when
                               not name by name in order ("" otherwise), for the caller to show */
} sn_weights_info;
/* sn_weights_load_ex that always computes the MD5 and fills *info (may be NULL); on failure
 * *info is empty. Not collective. */
SN_API sn_status sn_weights_load_info(sn_net *net, const char *path, sn_weights_format fmt,
                                      unsigned flags, sn_weights_info *info);
/* sn_weights_load_bcast_ex with rank 0's *info (may be NULL) on every rank. Collective. */
SN_API sn_status sn_weights_load_bcast_info(sn_net *net, const char *path, sn_comm *comm,
                                            unsigned flags, sn_weights_info *info);
/* Saves the native layout: /params/<layer>/<role> datasets (Keras role names: kernel, bias,
 * gamma, beta, moving_mean, moving_variance) in engine layout; root attributes format =
 * "shardnet", version, arch, style, classes, height, width, channels, include_top, pooling,
 * base_width. Atomic: written to PATH.tmp.<pid> and renamed. Not collective (call on one rank). */
SN_API sn_status sn_weights_save(const sn_net *net, const char *path);
/* Saves in the layout fmt: SN_WEIGHTS_NATIVE (sn_weights_save) or SN_WEIGHTS_KERAS, Keras 2's
 * legacy save_weights("x.h5") layout (docs/weights.md): root attributes layer_names (the layers
 * of sn_net_keras_layers, in that order), backend, keras_version; one group per layer with
 * weight_names ("conv2d/kernel:0", ...) and the tensors at <layer>/<layer>/<role>:0 in engine
 * (= Keras) layout, so that Keras' load_weights of the same model pairs every tensor with its
 * layer. Atomic like sn_weights_save. Not collective. Errors: SN_ERR_INVALID (another format, a
 * layer name with '/'), SN_ERR_IO. */
SN_API sn_status sn_weights_save_as(const sn_net *net, const char *path, sn_weights_format fmt);
/* Names a known weight file from its MD5 (as returned by sn_weights_load): the Keras release
 * file name, e.g. "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", or NULL if unknown.
 * The string is static. */
SN_API const char *sn_weights_known_file(const char *md5_hex);
/* What a weights file records about the model it fits, read without loading its tensors (a few
 * attributes and one dataset shape), so that a caller can build the matching net:
 *   format   the layout (sn_weights_load's detection; never SN_WEIGHTS_AUTO)
 *   arch     the architecture the file names: the native arch attribute, a torchvision file's
 *            arch attribute (jobs/convert_torch_weights.py writes it); "" when it names none
 *            (Keras files: sn_weights_known_file identifies the release files by MD5)
 *   classes  the classifier's outputs: the native classes attribute, the rows of a torchvision
 *            file's fc.weight, the columns of the kernel of a Keras file's layer "predictions"
 *            (legacy or Keras 3); 0 when the file has no such classifier (a "no top" file)
 * Errors: those of opening a file (SN_ERR_IO, SN_ERR_FORMAT), an unrecognised layout or a
 * classifier kernel that is not 2-D (SN_ERR_FORMAT). On failure *info is zeroed. Not collective;
 * takes the io lock. */
typedef struct sn_weights_record {
  sn_weights_format format;
  char arch[SN_MAX_NAME];
  int classes;
} sn_weights_record;
SN_API sn_status sn_weights_inspect(const char *path, sn_weights_record *info);

/* Training checkpoints: one HDF5 file (docs/hdf5-schema.md) with the parameter block (weights
 * and moving statistics), the momentum block, the loop state and the recipe, written atomically
 * (a kill never leaves a broken file under the real name; the previous checkpoint stays until
 * the rename). Together with the pure sampler and augmentation (functions of seed, epoch and
 * row) this is all a run needs to continue bit for bit from any global step. */
typedef struct sn_checkpoint_meta {
  int64_t epoch;        /* the epoch in progress (0-based) = epochs completed and reported */
  int64_t step;         /* global steps completed */
  int report_pending;   /* 1: the steps of `epoch` (up to `step`) are done but the epoch was not
                           reported (stopped before or during its validation) */
  int ranks;            /* rank count that wrote it */
  double epoch_sums[4]; /* the epoch's training sums so far, over all ranks: loss x rows,
                           top-1 hits, top-5 hits, rows */
  int has_recipe;       /* on load: 0 for a checkpoint written before recipes were recorded;
                           then only recipe.arch, .seed and .global_batch are known */
  sn_train_recipe recipe;
} sn_checkpoint_meta;
/* Saves net (planned for training, so that it has momentum buffers; without them none are
 * written) and meta to path. Collective over comm (NULL: serial): when meta->recipe.bn_group is
 * not 0 (batch-norm statistics not shared by all ranks) every rank's moving statistics are
 * gathered and stored too, so that each rank gets its own back on a resume with the same rank
 * count. Only rank 0 writes: the write's status is returned on rank 0 (SN_OK on the others after
 * the gather), so that a caller agreeing with a deadline (sn_comm_agree_timeout) can name a
 * stuck file system; agree on it before the next collective step. Holds the io lock while it
 * calls HDF5 (a live sn_reader may run alongside). Errors: SN_ERR_IO (cannot create, write or
 * rename), SN_ERR_NOMEM, SN_ERR_COMM (the gather). */
SN_API sn_status sn_checkpoint_save(sn_net *net, const char *path, const sn_checkpoint_meta *meta,
                                    sn_comm *comm);
/* Reads only the loop state and the recipe (rank 0 reads, the result and the status are
 * broadcast), so that a caller can compare the recipe before loading anything. Collective.
 * Errors: SN_ERR_IO (missing, unreadable), SN_ERR_FORMAT (not a shardnet checkpoint, a
 * malformed attribute). */
SN_API sn_status sn_checkpoint_read_meta(const char *path, sn_comm *comm, sn_checkpoint_meta *meta);
/* Loads parameters, momentum, the SGD step count and meta into net: rank 0 reads and checks the
 * file, then broadcasts, so every rank gets the same blocks and the same status. With the
 * per-rank moving statistics of a checkpoint written by as many ranks as comm has, rank r takes
 * its own; otherwise every rank takes rank 0's. Nothing is half-loaded: on any error no net
 * changes. Calls sn_net_refresh. Collective. Errors: those of sn_checkpoint_read_meta;
 * SN_ERR_SHAPE (another architecture, input, class count or parameter count), SN_ERR_NUMERIC
 * (NaN or infinity in the parameters), SN_ERR_NOMEM, SN_ERR_COMM. */
SN_API sn_status sn_checkpoint_load(sn_net *net, const char *path, sn_comm *comm,
                                    sn_checkpoint_meta *meta);

/* Scales files: the activation scales of int8 plans with their provenance (docs/hdf5-schema.md,
 * "Scales files"). */
typedef struct sn_scales_info {
  char arch[32];        /* the architecture they were calibrated for */
  char weights[256];    /* the weights file ("(random)" without one) */
  char weights_md5[33]; /* its MD5 (sn_weights_load), "" without one */
  char data[256];       /* the calibration dataset */
  char preprocess[16];  /* sn_preprocess_name of its preprocessing */
  char method[16];      /* sn_calib_method_name */
  int64_t rows;         /* images observed */
  int ranks;            /* ranks that observed them */
  char version[16];     /* shardnet version that wrote the file (set by sn_scales_save) */
  char created[32];     /* UTC time of writing, ISO 8601 (set by sn_scales_save) */
} sn_scales_info;
/* Writes every scale set in net (sn_net_act_scale with threshold > 0; at least one, else
 * SN_ERR_INVALID) and info. Atomic: written to PATH.tmp.<pid> and renamed. Not collective (call
 * on one rank). Errors: SN_ERR_IO. */
SN_API sn_status sn_scales_save(const sn_net *net, const char *path, const sn_scales_info *info);
/* Reads a scales file into net (sn_net_set_act_scale for each entry) and its provenance into
 * info (may be NULL). Nothing is half-loaded. Errors: missing file SN_ERR_IO; not a scales file,
 * another architecture, a malformed entry SN_ERR_FORMAT; a layer the net does not have
 * SN_ERR_NOTFOUND (the messages name the file and the layer). Not collective. */
SN_API sn_status sn_scales_load(sn_net *net, const char *path, sn_scales_info *info);
/* Rank 0 reads, the scales and info are broadcast; a failure on rank 0 is returned on every
 * rank and no net changes. comm NULL: serial. Collective. */
SN_API sn_status sn_scales_load_bcast(sn_net *net, const char *path, sn_comm *comm,
                                      sn_scales_info *info);

/* Datasets: the rows of one HDF5 file (/images (N,H,W,C) uint8 or float32, or the encoded form;
 * optional /labels (N)), of several HDF5 files concatenated, of a folder tree of images or of a
 * list of image files (docs/hdf5-schema.md, "Data sources"). A row's number is its place in the
 * whole: for several files, its row in their concatenation. */
typedef struct sn_dataset sn_dataset;

typedef struct sn_dataset_info {
  int64_t n;
  int h, w, c;
  sn_dtype dtype;  /* of /images: SN_U8 or SN_F32 (SN_U8 for decoded rows) */
  int encoded;     /* 1: rows are decoded from JPEG/PNG (the encoded form, or image files) */
  int has_labels;  /* every row has a label */
  int num_classes; /* from /classes or the labels' maximum + 1; 0 if unknown */
} sn_dataset_info;

/* Where the labels of a folder come from: auto (class sub-folders when the root holds
 * sub-folders and no image file of its own, else none), folders (torchvision ImageFolder: label
 * = index of the sorted sub-folder names) or none (every image of the tree, unlabelled). */
typedef enum sn_labels_from {
  SN_LABELS_AUTO = 0,
  SN_LABELS_FOLDERS = 1,
  SN_LABELS_NONE = 2
} sn_labels_from;
typedef struct sn_source_options {
  sn_labels_from labels_from;  /* folders (default auto); a list's label column is used unless
                                  SN_LABELS_NONE */
  int height, width, channels; /* decode target of image files (default 224 x 224 x 3); change it
                                  with sn_dataset_set_decode(_for) and sn_dataset_set_channels */
} sn_source_options;
SN_API void sn_source_options_init(sn_source_options *o);

/* Opens what the n paths name as one dataset: HDF5 dataset files (one or more, in the order
 * given; a path holding * ? [ that names no file is expanded as a glob, sorted), a text file
 * listing HDF5 files, a folder of images (sub-folders per o->labels_from), a text file listing
 * image files (one per line, relative paths from the list's directory, an optional label column)
 * or image files named one by one. One kind per dataset. Image files (.jpg .jpeg .jpe .jfif .png,
 * any case; other image extensions are listed too and fail to decode, naming their format) are
 * decoded when read, like the encoded form. Collective when comm has more than one rank: rank 0
 * lists folders and lists and broadcasts the listing, so every rank sees the same rows; each rank
 * then opens the files itself. comm may be NULL (serial). The caller owns *out. Errors:
 * SN_ERR_IO (missing path or folder), SN_ERR_FORMAT (malformed file or list), SN_ERR_SHAPE (files
 * that do not agree), SN_ERR_NOTFOUND (no images, no /images), SN_ERR_INVALID (a mix of kinds). */
SN_API sn_status sn_dataset_open_sources(const char *const *paths, int n,
                                         const sn_source_options *o, sn_comm *comm,
                                         sn_dataset **out);
/* sn_dataset_open_sources of one path with default options, listed on this rank. Not collective
 * (each rank opens independently); `comm` is used for error messages only. The caller owns
 * *out. */
SN_API sn_status sn_dataset_open(const char *path, sn_comm *comm, sn_dataset **out);
/* One line saying what the dataset is, for reports: "folder photos: 1234 image files, labels
 * from folders: 3 classes", "3 HDF5 files (a.h5, ...): 30000 rows (encoded), no labels", ... into
 * buf (n bytes, truncated). */
SN_API void sn_dataset_describe(const sn_dataset *ds, char *buf, size_t n);
SN_API void sn_dataset_close(sn_dataset *ds);
SN_API const sn_dataset_info *sn_dataset_get_info(const sn_dataset *ds);
/* Reads the given rows into images (count, H, W, C) (uint8, or float32 per the dataset dtype;
 * encoded rows are decoded and resized/cropped to target size when h,w > 0) and labels (may be
 * NULL). */
SN_API sn_status sn_dataset_read_rows(sn_dataset *ds, const int64_t *rows, int count, void *images,
                                      int32_t *labels);
/* Schema, validation rules and limits: docs/hdf5-schema.md. A dataset is used by one thread at a
 * time. Rows may come in any order and repeat; runs of consecutive rows are read as one slab. */

/* Decode target of an encoded dataset (default: its height/width attributes, straight resize,
 * bilinear). resize_shorter > 0: shorter side -> resize_shorter (longer = floor(S*long/short)),
 * then centre crop (out_h, out_w) (torchvision Resize(S) + CenterCrop; needs out_h, out_w <= S);
 * resize_shorter = 0: straight resize to (out_h, out_w) (Keras load_img). Resizes are
 * Pillow-exact (bilinear antialiased as for PIL images). Updates the info's h and w. For a raw
 * dataset only its own size is accepted. */
typedef enum sn_resize_mode { SN_RESIZE_NEAREST = 0, SN_RESIZE_BILINEAR = 1 } sn_resize_mode;
SN_API sn_status sn_dataset_set_decode(sn_dataset *ds, int out_h, int out_w, sn_resize_mode mode,
                                       int resize_shorter);
/* The decode target for a model of input h x w fed with preprocessing pre, fitted as that
 * preprocessing's framework does it: SN_PRE_TORCH, torchvision Resize(S) + CenterCrop(h x w)
 * with S = (h * 256 + 112) / 224 (resize-256, crop-224 scaled to the input), bilinear; any other,
 * a straight nearest-neighbour resize to h x w (Keras load_img). A raw dataset is left as it is
 * (compare its info with the model's input). Errors: those of sn_dataset_set_decode;
 * SN_PRE_DEFAULT for an encoded dataset is SN_ERR_INVALID (resolve it with
 * sn_net_default_preprocess first). */
SN_API sn_status sn_dataset_set_decode_for(sn_dataset *ds, int h, int w, sn_preprocess pre);
/* Training decode of an encoded dataset, RandomResizedCrop + RandomHorizontalFlip taken from the
 * original picture as torchvision takes them from the PIL image: each row's picture is decoded,
 * the box of sn_augment_crop_box(seed, epoch, row, its height, its width, crop_scale) cut out and
 * resized to the decode target (out_h x out_w of sn_dataset_set_decode) with Pillow's antialiased
 * bilinear filter, and mirrored when the flip is drawn; bit for bit torchvision's F.resized_crop +
 * F.hflip on the PIL image. A JPEG is decoded only as far as the box needs (the same pixels).
 * jpeg_scale = 1 lets libjpeg decode JPEGs at the smallest scale k/8 at which the box still spans
 * the target, then resamples the scaled box (as Pillow's draft mode + resize(box=...)): faster on
 * large pictures, no longer bit-exact (docs/hdf5-schema.md). enable = 0 returns to the fitted
 * decode. sn_reader does this itself for SN_AUG_RESIZED_CROP. Raw dataset: SN_ERR_INVALID (its
 * images are cropped as stored, by sn_augment_batch). Not collective. */
SN_API sn_status sn_dataset_set_decode_crop(sn_dataset *ds, int enable, uint64_t seed,
                                            int64_t epoch, double crop_scale, int jpeg_scale);
/* Channels of decoded rows (1: Pillow's "L" conversion, 3: RGB). A raw dataset keeps its own
 * (asking for another is SN_ERR_INVALID). */
SN_API sn_status sn_dataset_set_channels(sn_dataset *ds, int channels);
/* Name of class i from /classes, or NULL (no /classes or i out of range). Owned by ds. */
SN_API const char *sn_dataset_class_name(const sn_dataset *ds, int i);

/* Sanity warnings: training setups that run but cannot be what was meant, one line each (for
 * rank 0 to print and record): every label of the training set is one class; some of the
 * model's classes (recipe->classes) have no training example; the global batch is larger than
 * the dataset; the input is more than 2x larger or smaller than the architecture's design size
 * (sn_arch_input_size). Each names the file or the sizes. Fills w (w->n lines) from the recipe
 * and the training set's labels; nothing is read from the file. Not collective. Errors:
 * SN_ERR_INVALID (NULL argument), SN_ERR_NOMEM (w holds the warnings found before). */
#define SN_MAX_WARNINGS 8
#define SN_WARNING_BYTES 256
typedef struct sn_warnings {
  int n;
  char text[SN_MAX_WARNINGS][SN_WARNING_BYTES];
} sn_warnings;
SN_API sn_status sn_train_warnings(const sn_train_recipe *recipe, const sn_dataset *train,
                                   sn_warnings *w);
/* The file's labels (info.n entries), or NULL if it has none. Owned by ds. */
SN_API const int32_t *sn_dataset_labels(const sn_dataset *ds);

/* What to do with a bad input (an image file that cannot be read, or an image that does not
 * decode: truncated, empty, not an image, an unsupported format, absurd header dimensions). */
typedef enum sn_bad_images {
  SN_BAD_FAIL = 0, /* stop with a message naming the file and the reason */
  SN_BAD_SKIP = 1  /* leave the input out and report it (sn_batch.skipped_*, /skipped) */
} sn_bad_images;

/* Progress of a long operation on this rank: `done` of `total` local units. */
typedef void (*sn_progress_fn)(void *ctx, int64_t done, int64_t total);

/* Converters to the dataset schema. The output is written to OUT.partial and renamed to OUT on
 * success (removed on failure). With a communicator of size > 1 every rank converts a contiguous,
 * chunk-aligned part and all ranks write the one file collectively (parallel HDF5); the datasets'
 * content does not depend on the number of ranks. Collective. */
typedef struct sn_convert_options {
  int encoded;                /* folder: 1 stores the original file bytes (/encoded + /offsets) */
  int height, width;          /* folder raw: decode target; encoded: recorded as the decode
                               * target (default 224 x 224) */
  int channels;               /* folder: 1 or 3 (default 3) */
  sn_resize_mode resize;      /* folder raw: resize filter (default bilinear) */
  int resize_shorter;         /* folder raw: > 0 shorter side -> S then centre crop; 0 straight */
  int chunk_rows;             /* rows per /images chunk; 0: about 1 MiB per chunk */
  int compression;            /* gzip level 0..9 for /images (0: none) */
  int fashion;                /* idx: 1 Fashion-MNIST class names, 0 digits "0".."9" */
  sn_labels_from labels_from; /* images: where a folder's labels come from (default auto) */
  sn_bad_images bad_images;   /* images: SN_BAD_FAIL (default) or SN_BAD_SKIP */
  int threads;                /* images raw: decoding threads per rank (default 1) */
  sn_progress_fn progress;    /* may be NULL; called on every rank with its own counts */
  void *progress_ctx;
} sn_convert_options;
SN_API void sn_convert_options_init(sn_convert_options *o);

/* MNIST / Fashion-MNIST idx files (gzip or plain) -> /images (N,28,28,1) uint8, /labels int32,
 * /classes. Every rank parses both inputs (they are small). Collective. */
SN_API sn_status sn_convert_idx(const char *images_idx, const char *labels_idx,
                                const char *out_path, sn_comm *comm, const sn_convert_options *o);
/* Image files to the dataset schema: a folder (with class sub-folders per o->labels_from) or a
 * list of images, as sn_dataset_open_sources lists them (torchvision ImageFolder order: sorted
 * classes, then files sorted per folder). Rows are the images kept, in listing order; writes
 * /filenames (as listed: paths relative to the folder, or as in the list), /labels and /classes
 * when there are labels, /skipped/index (position in the listing), /skipped/filename and
 * /skipped/reason (bad images left out with SN_BAD_SKIP; empty otherwise), root attributes
 * source_kind, source and labels_from, and either /images (decoded and fitted, on o->threads
 * threads) or /encoded + /offsets (the files' bytes; each file's header is checked, its data is
 * decoded when the dataset is read). A bad image with SN_BAD_FAIL fails the conversion, naming
 * the file and the reason; *skipped (may be NULL) receives the count left out. Rank 0 lists the
 * input and broadcasts the listing. Collective. */
SN_API sn_status sn_convert_images(const char *const *paths, int n, const char *out_path,
                                   sn_comm *comm, const sn_convert_options *o, int64_t *skipped);
/* sn_convert_images of one folder. */
SN_API sn_status sn_convert_folder(const char *root, const char *out_path, sn_comm *comm,
                                   const sn_convert_options *o);

/* Inference output: one file written collectively by all ranks (docs/hdf5-schema.md 3). Output
 * rows are the inputs computed, in input order: an input left out (a bad image skipped) has no
 * row, and /index (N,) int64 gives each row's input (its row in the dataset). Datasets:
 * /predictions/top_k_indices (N,K) int32, /predictions/top_k_scores (N,K) float32, /logits
 * (N,classes) float32, /features (N,D) or (N,H,W,C) float32 or IEEE half, /index, and /done
 * (inputs,) uint8 per input (0 pending, 1 written, 2 skipped; for resuming). At the end
 * sn_writer_finish adds /filenames (N,) (the inputs' names, when the source has them), /skipped
 * (index, filename, reason) and /sources, then writes the root attribute complete = 1 last, and
 * only when every input is done. The datasets' content is identical whatever the number of
 * ranks. HDF5 calls happen on the calling (main) thread under the io lock, so a live sn_reader
 * may run alongside. */
typedef struct sn_writer sn_writer;
typedef enum sn_feature_dtype { SN_FEATURES_F32 = 0, SN_FEATURES_F16 = 1 } sn_feature_dtype;
#define SN_WRITE_PREDICTIONS 1u /* /predictions/top_k_* (top_k > 0) */
#define SN_WRITE_LOGITS 2u      /* /logits */
#define SN_WRITE_FEATURES 4u    /* /features */
typedef struct sn_writer_config {
  int64_t n_total;      /* inputs: the rows of the dataset (at most this many output rows) */
  int top_k;            /* K */
  int classes;          /* width of /logits */
  int feature_dim;      /* D of /features */
  int feature_shape[3]; /* (H, W, C) with H*W*C = D: /features is (N, H, W, C) (a feature map);
                           zeros: (N, D) */
  sn_feature_dtype feature_dtype;
  unsigned flags;  /* SN_WRITE_* */
  int compression; /* gzip level 0..9 (parallel: filtered writes are collective) */
  int chunk_rows;  /* rows per chunk; 0: about 1 MiB of the widest dataset, smaller to give
                      every rank of the communicator 4 chunks (not below 64 rows); on
                      resume the existing file's chunking is kept */
  int resume;      /* 1: reopen an existing output (shapes must match) and keep its rows */
} sn_writer_config;
SN_API void sn_writer_config_init(sn_writer_config *c);
/* Creates path (truncating) or, with resume and an existing file, reopens it: the work then
 * starts at the first input not done (a damaged file whose /index and /done disagree is
 * SN_ERR_FORMAT). Collective; every rank passes the same path and configuration. The caller owns
 * *out. */
SN_API sn_status sn_writer_create(const char *path, sn_comm *comm, const sn_writer_config *cfg,
                                  sn_writer **out);
/* The dataset the inputs come from (its rows = n_total), used by sn_writer_finish for
 * /filenames, /skipped/filename, /sources and the attributes source_kind and labels_from, and to
 * find again why an input skipped by an interrupted run was skipped. ds is not owned: keep it
 * open, with no reader alive on it, until sn_writer_finish. NULL: none of those are written but
 * /skipped (index, reason). Not collective (every rank passes its own). */
SN_API sn_status sn_writer_set_source(sn_writer *w, const sn_dataset *ds);
/* Inputs not done yet (all for a new file; none for a complete one), ascending. *rows is
 * malloc'd (NULL when *count is 0); the caller frees it. Not collective. */
SN_API sn_status sn_writer_missing_rows(const sn_writer *w, int64_t **rows, int64_t *count);
/* Rows per chunk, and inputs per unit of the work split. */
SN_API int64_t sn_writer_chunk_rows(const sn_writer *w);
/* A root string attribute (arch, weights, weights_md5, preprocess, version, ...). Collective:
 * every rank passes the same name and value. */
SN_API sn_status sn_writer_set_attr_str(sn_writer *w, const char *name, const char *value);
/* Writes output rows [row_begin, row_begin + count) as the inputs with the same numbers (output
 * row = input row: nothing skipped) and marks those inputs done. Collective: every rank calls it
 * the same number of times; a rank with nothing to write passes count = 0. Buffers (count rows):
 * top_k_indices (count,K), top_k_scores (count,K), logits (count,classes), features (count,D)
 * float32 (converted to half for F16); those of datasets not written may be NULL; index
 * (count) may be NULL (row numbers are written). Inputs that may be skipped go through
 * sn_staging instead. */
SN_API sn_status sn_writer_write_block(sn_writer *w, int64_t row_begin, int count,
                                       const int32_t *top_k_indices, const float *top_k_scores,
                                       const float *logits, const float *features,
                                       const int64_t *index);
/* Checks that every input is done on some rank, closes the file, and then, on rank 0 (through
 * the serial driver), cuts the datasets to the rows written, writes /filenames, /skipped and
 * /sources and complete = 1 last. Inputs not done -> SN_ERR_INVALID
 * naming the first one (the file stays incomplete). Collective. sn_writer_destroy is still
 * needed. */
SN_API sn_status sn_writer_finish(sn_writer *w);
/* After a successful sn_writer_finish: rows in the output, and inputs skipped (by this run and
 * any it resumed), the same on every rank. */
SN_API void sn_writer_counts(const sn_writer *w, int64_t *rows, int64_t *skipped);
/* Closes the file if sn_writer_finish was not called (then collective) and frees w. */
SN_API void sn_writer_destroy(sn_writer *w);
/* The work split. The inputs from the first one not done are taken in rounds: round j covers
 * the next size x chunk inputs, and rank r takes the r-th unit (chunk consecutive inputs) of it,
 * so for a new file no two ranks write the same chunk. *rows (*count entries) are this rank's
 * inputs, unit after unit, malloc'd (NULL when *count is 0; the caller frees them); *writes (may
 * be NULL) is the number of rounds, i.e. of collective writes every rank makes. Call it before
 * writing, when every rank sees the same output. Not collective. */
SN_API sn_status sn_writer_local_rows(const sn_writer *w, int64_t **rows, int64_t *count,
                                      int64_t *writes);

/* Output staging: the results of this rank's inputs (sn_writer_local_rows) are added as they are
 * computed, in that order and in batches of any size, and written one unit per round by
 * collective calls that every rank makes equally often:
 *
 *   while (sn_staging_writes(st) > 0) {
 *     while (!sn_staging_ready(st)) { compute the next rows; sn_staging_add_batch(st, ...); }
 *     sn_staging_write(st);                               (collective)
 *   }
 *
 * Staged are the datasets the writer writes (/predictions, /logits, /features); memory is
 * bounded by (largest unit + max_batch) rows. */
typedef struct sn_staging sn_staging;
typedef struct sn_batch sn_batch; /* one batch of the streaming reader (below) */
/* Staging for w (which must outlive it) and batches of up to max_batch rows. Not collective.
 * The caller owns *out. */
SN_API sn_status sn_staging_create(sn_writer *w, int max_batch, sn_staging **out);
SN_API void sn_staging_destroy(sn_staging *st);
/* This rank's inputs in the order they are to be added (*count entries). Owned by st. */
SN_API const int64_t *sn_staging_rows(const sn_staging *st, int64_t *count);
/* Collective writes left to make (the same on every rank). */
SN_API int64_t sn_staging_writes(const sn_staging *st);
/* 1 if every input of this rank's next unit is staged or skipped (or it has none left). */
SN_API int sn_staging_ready(const sn_staging *st);
/* Stages the results of a reader batch whose inputs are the next b->inputs of this rank's
 * (checked): b->count computed rows (top_k_indices (count,K), top_k_scores (count,K), logits
 * (count,classes), features (count,D) float32 as for sn_writer_write_block; those of datasets not
 * written may be NULL) and b->skipped inputs left out, whose reasons are kept for /skipped.
 * count <= max_batch. A batch that does not fit or does not match: SN_ERR_INVALID. Not
 * collective. */
SN_API sn_status sn_staging_add_batch(sn_staging *st, const sn_batch *b,
                                      const int32_t *top_k_indices, const float *top_k_scores,
                                      const float *logits, const float *features);
/* Stages the next n inputs, all computed (as sn_staging_add_batch with nothing skipped). */
SN_API sn_status sn_staging_add(sn_staging *st, int n, const int32_t *top_k_indices,
                                const float *top_k_scores, const float *logits,
                                const float *features);
/* Writes this rank's unit of the round (nothing once its share is written) after the rows the
 * lower ranks keep in it; a rank whose unit is not ready gets SN_ERR_INVALID on every rank.
 * Collective. */
SN_API sn_status sn_staging_write(sn_staging *st);
/* Inputs of this rank's share written so far (computed or skipped). */
SN_API int64_t sn_staging_written(const sn_staging *st);

/* State of an output file: missing, incomplete (no complete = 1: resumable) or complete. Not
 * collective. A file that exists but is not HDF5 -> SN_ERR_FORMAT. */
typedef enum sn_output_state {
  SN_OUTPUT_MISSING = 0,
  SN_OUTPUT_INCOMPLETE = 1,
  SN_OUTPUT_COMPLETE = 2
} sn_output_state;
SN_API sn_status sn_output_status(const char *path, sn_output_state *state);
/* A root string attribute of an HDF5 file (e.g. "arch" or "weights_md5" of an output) into buf
 * (n bytes, truncated). Missing attribute -> SN_ERR_NOTFOUND. Not collective. */
SN_API sn_status sn_file_attr_str(const char *path, const char *name, char *buf, size_t n);
/* The row count (first dimension) of dataset `dataset` (e.g. "skipped/index") of an HDF5 file.
 * Missing dataset -> SN_ERR_NOTFOUND. Not collective. */
SN_API sn_status sn_file_rows(const char *path, const char *dataset, int64_t *rows);

/* Class labels: the names (and WordNet ids) of a model's classes, from a label file in one of two
 * forms: a plain list, one name per line (line i names class i; CR LF and a UTF-8 byte-order mark
 * accepted, trailing blank lines ignored, a blank line before the last name refused), or Keras'
 * imagenet_class_index.json ({"0": ["n01440764", "tench"], ...}: the keys are the class indices
 * 0..K-1, each once, the values [wnid, name]). classes > 0: the file must name exactly that many
 * classes, else SN_ERR_SHAPE "label file F names 1000 classes but the model has 3". Errors:
 * unreadable SN_ERR_IO; empty, malformed (naming the line), a gap in the JSON keys
 * SN_ERR_FORMAT. The caller owns *out (sn_labels_destroy). Not collective. */
typedef struct sn_labels sn_labels;
SN_API sn_status sn_labels_read(const char *path, int classes, sn_labels **out);
SN_API void sn_labels_destroy(sn_labels *l);
/* Number of classes named (0 for NULL). */
SN_API int sn_labels_count(const sn_labels *l);
/* Name / WordNet id of class i, owned by l; NULL when i is out of range, l is NULL or (wnid) the
 * file is a plain list, which has none. */
SN_API const char *sn_labels_name(const sn_labels *l, int i);
SN_API const char *sn_labels_wnid(const sn_labels *l, int i);

/* Decoded predictions: a finished inference output's /predictions in Keras' decode_predictions
 * form, per row its input and (wnid, name, probability) for the top k classes, most probable
 * first (docs/cli.md, "Labels and decoded predictions"). The input is named by /filenames when the
 * output has it, else by its dataset row (/index). Formats of the decoded file: CSV (header
 * file,index,class_1,wnid_1,name_1,probability_1,...) or JSON Lines ({"file": ..., "index": ...,
 * "classes": [...], "predictions": [[wnid, name, p], ...]}); without wnids (a plain label list)
 * the wnid is empty / null, without labels the name too. */
typedef enum sn_decode_format {
  SN_DECODE_AUTO = 0, /* by the decoded file's extension: .csv, .jsonl (.json, .ndjson) */
  SN_DECODE_CSV = 1,
  SN_DECODE_JSONL = 2
} sn_decode_format;
/* Called with each printed row's line (no newline), e.g. "cat/1.jpg: n02123045 tabby 0.8123 |
 * ..." ("name (class) p" without wnids, "class p" without labels; "row R:" without
 * /filenames). */
typedef void (*sn_decode_print_fn)(void *ctx, const char *line);
typedef struct sn_decode_options {
  int top;                  /* classes per row: 0 (default) or more than K: all K of the file */
  sn_decode_format format;  /* of the decoded file (default SN_DECODE_AUTO) */
  int64_t print_rows;       /* the first rows passed to print (default 0) */
  sn_decode_print_fn print; /* may be NULL: nothing printed */
  void *print_ctx;
} sn_decode_options;
SN_API void sn_decode_options_init(sn_decode_options *o);
/* The format an extension implies, or SN_DECODE_AUTO when it implies none. */
SN_API sn_decode_format sn_decode_format_of(const char *path);
/* Reads the inference output output_path, which must be complete (complete = 1, else
 * SN_ERR_FORMAT), in blocks of rows, and writes decoded_path (NULL: none; written to
 * PATH.tmp.<pid> and renamed when complete, removed on failure) and/or passes the first
 * o->print_rows rows to o->print. labels may be NULL (names unknown); with labels, a class
 * outside them is SN_ERR_FORMAT naming the row. Errors: no /predictions (an output written
 * without predictions) SN_ERR_NOTFOUND; shapes that disagree SN_ERR_FORMAT; an unknown format
 * SN_ERR_INVALID; writing SN_ERR_IO. o may be NULL (the defaults). Not collective: one rank
 * decodes a finished file; takes the io lock. */
SN_API sn_status sn_output_decode(const char *output_path, const sn_labels *labels,
                                  const char *decoded_path, const sn_decode_options *o);

/* Streaming reader: a pool of decoding threads reads, decodes, preprocesses (and augments) the
 * next batches into a ring of prefetch + 1 preallocated batch buffers, so memory is bounded by
 * batch x (prefetch + 1) rows whatever the dataset size. Rows are decoded in parallel but each
 * lands at its own place and batches come out in order: the batches do not depend on the thread
 * count. The reader owns the dataset's use while it lives (do not read ds elsewhere). HDF5 is not
 * thread-safe: the reader's threads take the io lock around their HDF5 calls; other HDF5 users
 * in the process must go through io/ (writer, converters, datasets) or take the same lock. Not
 * collective; no MPI on the reader's threads. */
typedef struct sn_reader sn_reader;
typedef struct sn_reader_options {
  int batch;                /* rows per batch (sn_reader_create) */
  int prefetch;             /* batches prepared ahead (default 2) */
  sn_preprocess preprocess; /* applied to every batch; SN_PRE_NONE gives pixel values as float */
  sn_augment augment;       /* sn_augment_batch after preprocessing (default none); with an
                               encoded dataset SN_AUG_RESIZED_CROP is taken from the original
                               pictures at decode (sn_dataset_set_decode_crop) while the reader
                               lives */
  int jpeg_scale;           /* that decode: 1 lets libjpeg decode at a reduced scale (default 0:
                               full size, bit-exact with torchvision) */
  double crop_scale;        /* SN_AUG_RESIZED_CROP: the smallest area fraction of a crop (default
                               SN_CROP_SCALE_DEFAULT) */
  int pad;                  /* translation for SN_AUG_CROP_FLIP */
  uint64_t seed;            /* augmentation seed (sn_reader_create_epoch: its seed) */
  int64_t epoch;            /* augmentation epoch (sn_reader_create_epoch: its epoch) */
  int threads;              /* threads that decode, preprocess and augment the rows (default 1,
                               at most 256); the batches do not depend on it */
  sn_bad_images bad_images; /* default SN_BAD_FAIL */
} sn_reader_options;
/* One batch from the reader. Pointers are owned by the reader, valid until the next call. */
struct sn_batch {
  float *x;        /* (count, H, W, C) the images decoded, preprocessed (and augmented) */
  int32_t *labels; /* (count), or NULL if the dataset has no labels */
  int64_t *rows;   /* (count) their dataset rows, in the order of the reader's row list */
  int count;       /* images in x */
  int inputs;      /* rows of the row list this batch covers: count + skipped (0: no more) */
  int skipped;     /* bad inputs left out (SN_BAD_SKIP) */
  const int64_t *skipped_rows;        /* (skipped) their dataset rows */
  const char *const *skipped_reasons; /* (skipped) one line each, e.g. "corrupt JPEG: ..." */
};
SN_API void sn_reader_options_init(sn_reader_options *o);
/* Batches of o->batch consecutive entries of rows (n_rows entries, copied; the last batch may be
 * short). The caller owns *out; ds must outlive it. */
SN_API sn_status sn_reader_create(sn_dataset *ds, const int64_t *rows, int64_t n_rows,
                                  const sn_reader_options *o, sn_reader **out);
/* One training epoch of rank `rank` of `size`: the batches of sn_shard_epoch_rows (global batch
 * B split across ranks, same step count on every rank). o->batch is ignored. */
SN_API sn_status sn_reader_create_epoch(sn_dataset *ds, uint64_t seed, int64_t epoch, int rank,
                                        int size, int64_t global_batch, int drop_last,
                                        const sn_reader_options *o, sn_reader **out);
/* The epoch of sn_reader_create_epoch from global step `start` on: the batches of steps
 * [start, sn_shard_epoch_steps) only, so a run resumed part way through an epoch reads the same
 * rows at each step as an uninterrupted one. shuffle = 0 takes the epoch in file order (the
 * identity permutation) instead of sn_shard_permutation. Each batch is one step's rows: every
 * batch of rank r has the size of sn_shard_block(global_batch, r, size). start = 0 with
 * shuffle = 1 is sn_reader_create_epoch; start >= the epoch's steps gives no batches. */
SN_API sn_status sn_reader_create_epoch_from(sn_dataset *ds, uint64_t seed, int64_t epoch,
                                             int64_t start, int shuffle, int rank, int size,
                                             int64_t global_batch, int drop_last,
                                             const sn_reader_options *o, sn_reader **out);
/* Blocks until the next batch is ready. After the last batch: SN_OK with b->inputs = 0. A read
 * or decode failure is returned for the batch that hit it (the message names the file, the row
 * where there is one, and the reason); the reader is then finished. With SN_BAD_SKIP a batch may
 * hold no image (count 0, inputs > 0). Not collective. */
SN_API sn_status sn_reader_next_batch(sn_reader *r, sn_batch *b);
/* sn_reader_next_batch without the skipped inputs: x (count, H, W, C), labels (count) or NULL,
 * rows (count); batches with no image are passed over. After the last batch: SN_OK with
 * *count = 0. */
SN_API sn_status sn_reader_next(sn_reader *r, float **x, int32_t **labels, int64_t **rows,
                                int *count);
/* 1 if the reader stopped on a bad input (what SN_BAD_SKIP would have skipped), else 0. */
SN_API int sn_reader_bad_input(const sn_reader *r);
SN_API int64_t sn_reader_num_batches(const sn_reader *r);
/* Seconds sn_reader_next spent waiting for the background thread, cumulated. */
SN_API double sn_reader_wait_seconds(const sn_reader *r);
/* Bytes of batch buffers held by the reader (independent of the dataset size). */
SN_API size_t sn_reader_buffer_bytes(const sn_reader *r);
/* Stops the thread (mid-epoch is fine) and frees everything. */
SN_API void sn_reader_destroy(sn_reader *r);

/* ---------------------------------------------------------------- images (io/, no HDF5) */

/* One image file or buffer decoded to 8-bit pixels by the decoders of the encoded datasets:
 * JPEG (libjpeg-turbo) or PNG (libpng), recognised by their signature whatever the name. With the
 * defaults this is Keras' load_img(path, color_mode, target_size, interpolation="nearest"):
 * Pillow's convert("RGB") or convert("L"), then Image.resize to the target size when the image
 * has another size, bit for bit (docs/models.md, "Preprocessing"). */
typedef struct sn_image_options {
  int channels;          /* 3 (default): RGB, grey replicated, alpha dropped; 1: grey, PIL's "L"
                            weights */
  int height, width;     /* target size; 0 (default): the image's own size (both or neither) */
  sn_resize_mode resize; /* SN_RESIZE_NEAREST (default, Keras' interpolation="nearest") or
                            SN_RESIZE_BILINEAR (Pillow's antialiased, "bilinear") */
  int resize_shorter;    /* > 0: shorter side to this (longer = floor(S * long / short)), then a
                            centre crop to height x width (torchvision Resize(S) + CenterCrop;
                            needs a target size <= S); 0 (default): straight resize */
} sn_image_options;
SN_API void sn_image_options_init(sn_image_options *o);
/* Decodes the file at path into *pixels, (*h, *w, o->channels) uint8, row-major, allocated here
 * and freed by the caller with sn_free (or free). o NULL: the defaults. Nothing is allocated on
 * failure. Errors, naming the file: missing or unreadable SN_ERR_IO; not JPEG or PNG, corrupt,
 * truncated or larger than 65535 pixels a side SN_ERR_FORMAT; bad options SN_ERR_INVALID;
 * SN_ERR_NOMEM. Thread-safe (no shared state). Not collective. */
SN_API sn_status sn_image_load(const char *path, const sn_image_options *o, uint8_t **pixels,
                               int *h, int *w);
/* The same for n bytes of an encoded image in memory (the caller's); name (may be NULL) stands
 * for the file in error messages. */
SN_API sn_status sn_image_load_bytes(const void *data, size_t n, const char *name,
                                     const sn_image_options *o, uint8_t **pixels, int *h, int *w);

/* ---------------------------------------------------------------- MPI (mpi/) */

/* MPI_Init_thread (MPI_THREAD_FUNNELED or better), installs an error handler that returns codes.
 * Safe to call when MPI is already initialised. */
SN_API sn_status sn_mpi_init(int *argc, char ***argv);
SN_API void sn_mpi_finalize(void);

/* Agreement with a deadline: like sn_comm_agree, but rank 0 collects every rank's status with
 * polled point-to-point messages and gives up after timeout_s seconds, so a rank that hangs is
 * named instead of hanging the job: every rank that arrived gets SN_ERR_COMM with
 * "rank R: did not reach the step agreement within T s ...", and a rank waiting more than
 * 2 * timeout_s + 1 s (+ up to 2 s, staggered by rank) for rank 0 gets the same naming rank 0.
 * After a timeout the communicator must not be used again: end the job. timeout_s <= 0 waits
 * forever. Serial comm: returns local. Collective. */
SN_API sn_status sn_comm_agree_timeout(sn_comm *comm, sn_status local, double timeout_s);

#ifdef __cplusplus
}
#endif
#endif /* SHARDNET_H */
