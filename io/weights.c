/* weights.c - loading and saving network parameters in HDF5.
 *
 * Three layouts (docs/models.md, "Weight layouts and names"):
 *  - torchvision: one dataset per state_dict key at the root ("layer1.0.conv1.weight"), PyTorch
 *    layout (conv OIHW, Linear (out, in)), num_batches_tracked ignored;
 *  - Keras legacy: attribute layer_names on / or /model_weights, one group per layer with
 *    attribute weight_names naming its datasets; engine (HWIO) layout; the file's layers with
 *    weights are paired with the net's in Keras' layer order, as Keras loads them (by name when
 *    the file lists the same names in another order);
 *  - Keras 3 .weights.h5: layers/<class>[_k]/vars/<i>, matched by the vars' name attribute;
 *  - native (written here): /params/<layer>/<keras role name> in engine layout, root attributes
 *    format = "shardnet", version, arch, classes, height, width, channels, include_top, pooling,
 *    base_width, style.
 * Loading stages every tensor in a private buffer and validates every key, shape and value
 * (finite) before the net is touched: on failure the net is unchanged.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "md5.h"
#include "shardnet.h"

/* ---------------------------------------------------------------- known files (docs/weights.md) */

typedef struct known_file {
  const char *md5;
  const char *arch; /* the architecture the file fits */
  int top;
  const char *file;
  const char *what; /* where the file comes from */
} known_file;

#define KERAS_RELEASE "the Keras applications release"
#define KERAS_V02 "the Keras <= 2.2.4 file (deep-learning-models release v0.2)"

static const known_file known_files[] = {
    {"2cb95161c43110f7111970584f804107", "keras_resnet50", 1,
     "resnet50_weights_tf_dim_ordering_tf_kernels.h5", KERAS_RELEASE},
    {"4d473c1dd8becc155b73f8504c6f6626", "keras_resnet50", 0,
     "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_RELEASE},
    {"f1aeb4b969a6efcfb50fad2f0c20cfc5", "keras_resnet101", 1,
     "resnet101_weights_tf_dim_ordering_tf_kernels.h5", KERAS_RELEASE},
    {"88cf7a10940856eca736dc7b7e228a21", "keras_resnet101", 0,
     "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_RELEASE},
    {"100835be76be38e30d865e96f2aaae62", "keras_resnet152", 1,
     "resnet152_weights_tf_dim_ordering_tf_kernels.h5", KERAS_RELEASE},
    {"ee4c566cf9a93f14d82f913c2dc6dd0c", "keras_resnet152", 0,
     "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_RELEASE},
    {"3ef43a0b657b3be2300d5770ece849e0", "keras_resnet50v2", 1,
     "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5", KERAS_RELEASE},
    {"fac2f116257151a9d068a22e544a4917", "keras_resnet50v2", 0,
     "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_RELEASE},
    {"6343647c601c52e1368623803854d971", "keras_resnet101v2", 1,
     "resnet101v2_weights_tf_dim_ordering_tf_kernels.h5", KERAS_RELEASE},
    {"c0ed64b8031c3730f411d2eb4eea35b5", "keras_resnet101v2", 0,
     "resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_RELEASE},
    {"a49b44d1979771252814e80f8ec446f9", "keras_resnet152v2", 1,
     "resnet152v2_weights_tf_dim_ordering_tf_kernels.h5", KERAS_RELEASE},
    {"ed17cf2e0169df9d443503ef94b23b33", "keras_resnet152v2", 0,
     "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_RELEASE},
    {"a7b3fe01876f51b976af0dea6bc144eb", "keras_resnet50_v02", 1,
     "resnet50_weights_tf_dim_ordering_tf_kernels.h5", KERAS_V02},
    {"a268eb855778b3df3c7506639542a6af", "keras_resnet50_v02", 0,
     "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", KERAS_V02},
};

static const known_file *find_known(const char *md5) {
  if (!md5) return NULL;
  for (size_t i = 0; i < sizeof known_files / sizeof known_files[0]; ++i)
    if (!strcmp(known_files[i].md5, md5)) return &known_files[i];
  return NULL;
}

const char *sn_weights_known_file(const char *md5_hex) {
  const known_file *k = find_known(md5_hex);
  return k ? k->file : NULL;
}

/* ---------------------------------------------------------------- the staging context */

/* Role names: Keras style for native files and messages; torch style for state_dict keys. */
static const char *keras_role(sn_param_role r) {
  return sn_param_role_name(r, SN_STYLE_KERAS, NULL);
}
static const char *torch_role(sn_param_role r, const char *kind) {
  return sn_param_role_name(r, SN_STYLE_TORCH, kind);
}

typedef struct loader {
  sn_net *net;
  const char *path;
  int np;              /* number of parameter tensors */
  sn_param_info *info; /* (np) */
  size_t *offset;      /* (np) offset of tensor i in stage */
  float *stage;        /* (sum of counts) the file's values in engine layout */
  int *filled;         /* (np) 1 once tensor i was read */
  float *scratch;      /* (largest count) PyTorch-layout tensor before transposition */
  const char *head;    /* SN_LOAD_NEW_HEAD: the classifier layer (last dense layer), else NULL */
  const char *const *ignore; /* SN_LOAD_IGNORE_HEAD on a net without a classifier: the file's */
  int nignore;               /* top layers that are skipped (see top_layers), else NULL / 0 */
  const char *classifier;    /* the net's last dense layer, NULL without one (for messages) */
  sn_weights_format fmt;     /* the file's layout, for naming its tensors in messages */
} loader;

static void loader_free(loader *L) {
  free(L->info);
  free(L->offset);
  free(L->stage);
  free(L->filled);
  free(L->scratch);
}

/* The dense layers that the net's architecture has with include_top = 1 and lacks without: torch
 * and CIFAR style "fc", Keras style "predictions" ("fc1000" for the v0.2 ResNet50), LeNet dense,
 * dense_1 and dense_2. */
static const char *const *top_layers(const sn_net *net, int *n) {
  static const char *const torch_top[] = {"fc"}, *const keras_top[] = {"predictions"},
                           *const v02_top[] = {"fc1000"},
                           *const lenet_top[] = {"dense", "dense_1", "dense_2"};
  *n = 1;
  if (!strncmp(sn_net_arch(net), "lenet", 5)) {
    *n = 3;
    return lenet_top;
  }
  if (!strcmp(sn_net_arch(net), "keras_resnet50_v02")) return v02_top;
  return sn_net_style(net) == SN_STYLE_KERAS ? keras_top : torch_top;
}

static sn_status loader_init(loader *L, sn_net *net, const char *path, unsigned flags) {
  memset(L, 0, sizeof *L);
  L->net = net;
  L->path = path;
  L->np = sn_net_num_params(net);
  size_t nn = L->np > 0 ? (size_t)L->np : 1;
  L->info = calloc(nn, sizeof *L->info);
  L->offset = calloc(nn, sizeof *L->offset);
  L->filled = calloc(nn, sizeof *L->filled);
  if (!L->info || !L->offset || !L->filled)
    return sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", path);
  size_t total = 0, largest = 1;
  int has_dense = 0;
  for (int i = 0; i < L->np; ++i) {
    sn_status st = sn_net_param(net, i, &L->info[i]);
    if (st) return st;
    L->offset[i] = total;
    total += (size_t)L->info[i].count;
    if ((size_t)L->info[i].count > largest) largest = (size_t)L->info[i].count;
    if ((flags & SN_LOAD_NEW_HEAD) && !strcmp(L->info[i].layer_kind, "dense"))
      L->head = L->info[i].layer;
    if (!strcmp(L->info[i].layer_kind, "dense")) {
      has_dense = 1;
      L->classifier = L->info[i].layer;
    }
  }
  if ((flags & SN_LOAD_IGNORE_HEAD) && !has_dense) L->ignore = top_layers(net, &L->nignore);
  L->stage = malloc((total ? total : 1) * sizeof(float));
  L->scratch = malloc(largest * sizeof(float));
  if (!L->stage || !L->scratch)
    return sn_error_set(SN_ERR_NOMEM, "file %s: cannot allocate %zu floats to stage weights", path,
                        total);
  return SN_OK;
}

/* Index of the net's tensor (layer, role), or -1. */
static int loader_find(const loader *L, const char *layer, sn_param_role role) {
  for (int i = 0; i < L->np; ++i)
    if (L->info[i].role == role && !strcmp(L->info[i].layer, layer)) return i;
  return -1;
}

/* 1 if the net has a tensor of this layer. */
static int loader_has_layer(const loader *L, const char *layer) {
  for (int i = 0; i < L->np; ++i)
    if (!strcmp(L->info[i].layer, layer)) return 1;
  return 0;
}

/* SN_LOAD_IGNORE_HEAD: 1 if the file's layer (or, with prefix, a torch key starting with
 * "<layer>.") is a top layer of a net built without one. */
static int ignored(const loader *L, const char *name, int prefix) {
  for (int k = 0; k < L->nignore; ++k) {
    size_t m = strlen(L->ignore[k]);
    if (prefix ? !strncmp(name, L->ignore[k], m) && name[m] == '.' : !strcmp(name, L->ignore[k]))
      return 1;
  }
  return 0;
}

/* 1 if tensor i belongs to the classifier that SN_LOAD_NEW_HEAD may keep. */
static int is_head(const loader *L, int i) { return L->head && !strcmp(L->info[i].layer, L->head); }

/* SN_LOAD_NEW_HEAD: 1 if tensor i is the classifier's and dataset dset under loc is absent or
 * of another shape (another class count): the tensor is skipped, not an error. */
static int head_differs(const loader *L, hid_t loc, const char *dset, int i, int ndim,
                        const int64_t *dims) {
  if (!is_head(L, i)) return 0;
  if (!sn_h5_is_dataset(loc, dset)) return 1;
  int fnd;
  int64_t fd[SN_H5_MAX_RANK];
  if (sn_h5_dataset_shape(loc, dset, L->path, &fnd, fd) != SN_OK) return 0; /* reported later */
  if (fnd != ndim) return 1;
  for (int k = 0; k < ndim; ++k)
    if (fd[k] != dims[k]) return 1;
  return 0;
}

static void engine_dims(const sn_param_info *p, int64_t *dims) {
  for (int k = 0; k < p->ndim; ++k)
    dims[k] = p->shape[k];
}

/* The tensor's shape in PyTorch layout: conv OIHW, Linear (out, in), vectors unchanged. */
static void torch_dims(const sn_param_info *p, int64_t *dims) {
  if (p->ndim == 4) {
    dims[0] = p->shape[3];
    dims[1] = p->shape[2];
    dims[2] = p->shape[0];
    dims[3] = p->shape[1];
  } else if (p->ndim == 2) {
    dims[0] = p->shape[1];
    dims[1] = p->shape[0];
  } else {
    engine_dims(p, dims);
  }
}

/* Copies a PyTorch-layout tensor src into engine layout dst. */
static void from_torch(const sn_param_info *p, const float *src, float *dst) {
  if (p->ndim == 4) {
    const int64_t kh = p->shape[0], kw = p->shape[1], ci = p->shape[2], co = p->shape[3];
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < ci; ++i)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t x = 0; x < kw; ++x)
            dst[((y * kw + x) * ci + i) * co + o] = src[((o * ci + i) * kh + y) * kw + x];
  } else if (p->ndim == 2) {
    const int64_t in = p->shape[0], out = p->shape[1];
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i)
        dst[i * out + o] = src[o * in + i];
  } else {
    memcpy(dst, src, (size_t)p->count * sizeof(float));
  }
}

/* For a shape mismatch of the classifier's tensor i: "; the file's classifier has K classes, the
 * net N (...)" into buf, else "". fd: the file's dims (torch = 1: PyTorch layout). */
static const char *classifier_hint(const loader *L, int i, const int64_t *fd, int torch, char *buf,
                                   size_t n) {
  buf[0] = '\0';
  const sn_param_info *p = &L->info[i];
  if (!L->classifier || strcmp(p->layer, L->classifier)) return buf;
  /* classes: the bias's length, the kernel's output dim ((in, out), torch (out, in)) */
  const int64_t file = p->ndim == 1 ? fd[0] : fd[torch ? 0 : 1];
  const int net = p->ndim == 1 ? p->shape[0] : p->shape[1];
  if (file != net)
    snprintf(buf, n,
             "; the file's classifier has %lld classes and the net %d (build the net with "
             "classes = %lld, or load with SN_LOAD_NEW_HEAD to keep the net's own)",
             (long long)file, net, (long long)file);
  return buf;
}

/* Shape check of dataset `dset` under loc against dims; the message names the key, the layer
 * and both shapes. */
static sn_status check_shape(const loader *L, hid_t loc, const char *dset, const char *keyword,
                             const char *key, int i, int ndim, const int64_t *dims,
                             const char *layout) {
  int fnd;
  int64_t fd[SN_H5_MAX_RANK];
  sn_status st = sn_h5_dataset_shape(loc, dset, L->path, &fnd, fd);
  if (st == SN_ERR_NOTFOUND)
    return sn_error_set(SN_ERR_NOTFOUND, "file %s: %s %s: not found (layer %s %s)", L->path,
                        keyword, key, L->info[i].layer, keras_role(L->info[i].role));
  if (st) return st;
  int same = fnd == ndim;
  for (int k = 0; same && k < ndim; ++k)
    same = fd[k] == dims[k];
  if (!same) {
    char a[96], b[96], hint[192];
    return sn_error_set(
        SN_ERR_SHAPE, "file %s: %s %s: shape %s does not match layer %s %s %s%s%s", L->path,
        keyword, key, sn_h5_shape_str(fnd, fd, a, sizeof a), L->info[i].layer,
        keras_role(L->info[i].role), sn_h5_shape_str(ndim, dims, b, sizeof b), layout,
        fnd == ndim ? classifier_hint(L, i, fd, layout[0] != '\0', hint, sizeof hint) : "");
  }
  return SN_OK;
}

/* Reads dataset dset (engine layout, shape-checked) into the stage of tensor i. */
static sn_status stage_engine(loader *L, hid_t loc, const char *dset, const char *keyword,
                              const char *key, int i) {
  if (L->filled[i])
    return sn_error_set(SN_ERR_FORMAT, "file %s: %s %s: layer %s %s given twice", L->path, keyword,
                        key, L->info[i].layer, keras_role(L->info[i].role));
  int64_t dims[4];
  engine_dims(&L->info[i], dims);
  if (head_differs(L, loc, dset, i, L->info[i].ndim, dims)) return SN_OK;
  sn_status st = check_shape(L, loc, dset, keyword, key, i, L->info[i].ndim, dims, "");
  if (!st) st = sn_h5_read_f32(loc, dset, L->path, L->info[i].ndim, dims, L->stage + L->offset[i]);
  if (!st) L->filled[i] = 1;
  return st;
}

/* Every staged tensor that loader_commit copies (the classifier only if head_loaded) holds
 * finite values; else SN_ERR_NUMERIC naming the tensor as the file names it, its layer and role,
 * and the counts: a NaN or an infinity in the weights would make every output that depends on
 * them NaN (docs/weights.md). */
static sn_status check_finite(const loader *L, int head_loaded) {
  for (int i = 0; i < L->np; ++i) {
    if (!head_loaded && is_head(L, i)) continue;
    const sn_param_info *p = &L->info[i];
    const float *v = L->stage + L->offset[i];
    int64_t nan = 0, inf = 0;
    for (int64_t k = 0; k < p->count; ++k) {
      nan += isnan(v[k]) != 0;
      inf += isinf(v[k]) != 0;
    }
    if (!nan && !inf) continue;
    char name[2 * SN_MAX_NAME + 32];
    if (L->fmt == SN_WEIGHTS_TORCH)
      snprintf(name, sizeof name, "key %s.%s", p->layer, torch_role(p->role, p->layer_kind));
    else if (L->fmt == SN_WEIGHTS_NATIVE)
      snprintf(name, sizeof name, "dataset params/%s/%s", p->layer, keras_role(p->role));
    else
      snprintf(name, sizeof name, "layer %s weight %s", p->layer, keras_role(p->role));
    return sn_error_set(SN_ERR_NUMERIC,
                        "file %s: %s (layer %s %s): %lld NaN and %lld infinite of %lld values; "
                        "weights must be finite",
                        L->path, name, p->layer, keras_role(p->role), (long long)nan,
                        (long long)inf, (long long)p->count);
  }
  return SN_OK;
}

/* Checks the staged values, copies them into the net and refreshes derived inference weights.
 * The classifier (SN_LOAD_NEW_HEAD) is copied only if the file gave all its tensors with the
 * net's shapes. */
static sn_status loader_commit(loader *L) {
  int head_loaded = 1;
  for (int i = 0; i < L->np; ++i)
    if (is_head(L, i) && !L->filled[i]) head_loaded = 0;
  sn_status st = check_finite(L, head_loaded);
  if (st) return st;
  for (int i = 0; i < L->np; ++i)
    if (head_loaded || !is_head(L, i))
      memcpy(L->info[i].data, L->stage + L->offset[i], (size_t)L->info[i].count * sizeof(float));
  return sn_net_refresh(L->net);
}

/* A hint for a file classifier met by a net built without one (layer NULL: whatever its name). */
static const char *top_hint(const loader *L, const char *layer) {
  for (int i = 0; i < L->np; ++i)
    if (!strcmp(L->info[i].layer_kind, "dense")) return "";
  int n;
  const char *const *top = top_layers(L->net, &n);
  for (int k = 0; k < n; ++k)
    if (!layer || !strcmp(layer, top[k]))
      return "; the net was built without a classifier (include_top = 0; "
             "SN_LOAD_IGNORE_HEAD skips the file's)";
  return "";
}

/* First tensor not read, reported as missing. */
static sn_status check_all_filled(const loader *L, const char *what) {
  for (int i = 0; i < L->np; ++i)
    if (!L->filled[i] && !is_head(L, i))
      return sn_error_set(SN_ERR_NOTFOUND, "file %s: %s: layer %s %s is missing", L->path, what,
                          L->info[i].layer, keras_role(L->info[i].role));
  return SN_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* ---------------------------------------------------------------- torchvision state_dict */

static sn_status load_torch(loader *L, hid_t f) {
  char key[2 * SN_MAX_NAME + 32];
  char **names = NULL;
  int n = 0;
  sn_status st = sn_h5_list(f, "/", L->path, &names, &n);
  if (st) return st;
  if (sn_h5_has_attr(f, "arch")) {
    char *arch = NULL;
    if (sn_h5_read_str_attr(f, "arch", L->path, "/", &arch) == SN_OK &&
        strcmp(arch, sn_net_arch(L->net)) != 0) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: weights are for arch %s but the net is %s",
                        L->path, arch, sn_net_arch(L->net));
    }
    free(arch);
    if (st) goto done;
  }
  /* Every tensor of the net: present, right shape (in PyTorch layout), read and transposed. */
  for (int i = 0; i < L->np && !st; ++i) {
    const sn_param_info *p = &L->info[i];
    snprintf(key, sizeof key, "%s.%s", p->layer, torch_role(p->role, p->layer_kind));
    const char *k = key;
    int64_t hd[4];
    torch_dims(p, hd);
    if (head_differs(L, f, key, i, p->ndim, hd)) continue;
    if (!bsearch(&k, names, (size_t)n, sizeof *names, cmp_str)) {
      char b[96];
      int64_t dims[4];
      torch_dims(p, dims);
      st = sn_error_set(SN_ERR_NOTFOUND,
                        "file %s: key %s: missing (layer %s %s, expected shape %s in PyTorch "
                        "layout)",
                        L->path, key, p->layer, keras_role(p->role),
                        sn_h5_shape_str(p->ndim, dims, b, sizeof b));
      break;
    }
    int64_t dims[4];
    torch_dims(p, dims);
    /* "/" + key: a key is one link name even if it looked like a path. */
    st = check_shape(L, f, key, "key", key, i, p->ndim, dims, " in PyTorch layout");
    if (!st) st = sn_h5_read_f32(f, key, L->path, p->ndim, dims, L->scratch);
    if (!st) {
      from_torch(p, L->scratch, L->stage + L->offset[i]);
      L->filled[i] = 1;
    }
  }
  /* Every key of the file: known to the net (num_batches_tracked excepted). */
  for (int j = 0; j < n && !st; ++j) {
    if (ends_with(names[j], ".num_batches_tracked") || ignored(L, names[j], 1)) continue;
    const char *dot = strrchr(names[j], '.');
    int known = 0;
    if (dot && (size_t)(dot - names[j]) < SN_MAX_NAME) {
      char layer[SN_MAX_NAME];
      memcpy(layer, names[j], (size_t)(dot - names[j]));
      layer[dot - names[j]] = '\0';
      for (int r = SN_ROLE_KERNEL; r <= SN_ROLE_MOVING_VAR && !known; ++r) {
        int i = loader_find(L, layer, (sn_param_role)r);
        known = i >= 0 && !strcmp(dot + 1, torch_role((sn_param_role)r, L->info[i].layer_kind));
      }
    }
    if (!known) {
      char layer[SN_MAX_NAME] = "";
      if (dot && (size_t)(dot - names[j]) < SN_MAX_NAME)
        snprintf(layer, sizeof layer, "%.*s", (int)(dot - names[j]), names[j]);
      st = sn_error_set(SN_ERR_FORMAT, "file %s: key %s: unexpected (no such parameter in %s)%s",
                        L->path, names[j], sn_net_arch(L->net), top_hint(L, layer));
    }
  }
done:
  sn_h5_free_strs(names, n);
  return st;
}

/* ---------------------------------------------------------------- Keras legacy HDF5 */

/* Role of a Keras weight name "conv1_conv/kernel:0" or "conv1_conv/kernel", or -1. */
static int keras_role_of(const char *wname) {
  const char *last = strrchr(wname, '/');
  last = last ? last + 1 : wname;
  size_t len = strlen(last);
  const char *colon = strrchr(last, ':');
  if (colon) len = (size_t)(colon - last);
  for (int r = SN_ROLE_KERNEL; r <= SN_ROLE_MOVING_VAR; ++r) {
    const char *rn = keras_role((sn_param_role)r);
    if (strlen(rn) == len && !strncmp(last, rn, len)) return r;
  }
  return -1;
}

/* The group holding layer_names: "/" or "/model_weights"; NULL if neither. */
static const char *keras_base(hid_t f) {
  if (sn_h5_has_attr(f, "layer_names") || sn_h5_has_attr(f, "layer_names0")) return "/";
  if (sn_h5_is_group(f, "model_weights")) {
    hid_t g = H5Gopen2(f, "model_weights", H5P_DEFAULT);
    int has = g >= 0 && (sn_h5_has_attr(g, "layer_names") || sn_h5_has_attr(g, "layer_names0"));
    if (g >= 0) H5Gclose(g);
    if (has) return "/model_weights";
  }
  return NULL;
}

/* Loads the tensors of the net's layer `layer` from one file layer `flayer` (group g holding
 * weight names wn[0..nw)); messages name each tensor as prefix + weight name, and both layers when
 * their names differ. */
static sn_status keras_layer(loader *L, hid_t g, const char *layer, const char *flayer, char **wn,
                             int nw, const char *prefix) {
  /* The net's tensors of this layer, in role order (= Keras order: kernel, bias / gamma, beta,
   * moving_mean, moving_variance). */
  int idx[SN_ROLE_MOVING_VAR + 1], m = 0;
  char roles[128] = "";
  for (int r = SN_ROLE_KERNEL; r <= SN_ROLE_MOVING_VAR; ++r) {
    int i = loader_find(L, layer, (sn_param_role)r);
    if (i >= 0) {
      idx[m++] = i;
      snprintf(roles + strlen(roles), sizeof roles - strlen(roles), "%s%s", m > 1 ? ", " : "",
               keras_role((sn_param_role)r));
    }
  }
  if (nw != m && L->head && !strcmp(layer, L->head)) return SN_OK; /* a new head: skipped */
  if (nw != m && !strcmp(layer, flayer))
    return sn_error_set(SN_ERR_SHAPE,
                        "file %s: layer %s: has %d weights in the file but %d (%s) in the net",
                        L->path, layer, nw, m, roles);
  if (nw != m)
    return sn_error_set(SN_ERR_SHAPE,
                        "file %s: file layer %s (paired in Keras' layer order with the net's layer "
                        "%s): has %d weights in the file but %d (%s) in the net",
                        L->path, flayer, layer, nw, m, roles);
  /* Match by the role in each weight name when all are recognisable, else by position. */
  int by_name = 1, seen = 0;
  for (int k = 0; k < nw && by_name; ++k) {
    int r = keras_role_of(wn[k]);
    if (r < 0 || (seen & (1 << r)) || loader_find(L, layer, (sn_param_role)r) < 0)
      by_name = 0;
    else
      seen |= 1 << r;
  }
  for (int k = 0; k < nw; ++k) {
    int i = by_name ? loader_find(L, layer, (sn_param_role)keras_role_of(wn[k])) : idx[k];
    char key[3 * SN_MAX_NAME + 64];
    snprintf(key, sizeof key, "%s%s", prefix, wn[k]);
    sn_status st = stage_engine(L, g, wn[k], "weight", key, i);
    if (st) return st;
  }
  return SN_OK;
}

/* A layer of a Keras legacy file that has weights. */
typedef struct file_layer {
  const char *name; /* one of the layer_names strings */
  char **wn;        /* (nw) its weight_names */
  int nw;
} file_layer;

/* The file's layers with weights, in layer_names order (Keras' model.layers order when Keras
 * wrote the file): fl has room for nl entries; *nf receives their count. */
static sn_status keras_file_layers(loader *L, hid_t b, const char *base, char **layers, int nl,
                                   file_layer *fl, int *nf) {
  *nf = 0;
  for (int j = 0; j < nl; ++j) {
    const char *layer = layers[j];
    if (!sn_h5_is_group(b, layer))
      return sn_error_set(SN_ERR_FORMAT, "file %s: layer_names lists %s but %s%s%s is not a group",
                          L->path, layer, base, strcmp(base, "/") ? "/" : "", layer);
    hid_t g = H5Gopen2(b, layer, H5P_DEFAULT);
    if (g < 0)
      return sn_error_set(SN_ERR_FORMAT, "file %s: layer %s: cannot open group", L->path, layer);
    char **wn = NULL;
    int nw = 0;
    sn_status st = sn_h5_read_str_array_attr(g, "weight_names", L->path, layer, &wn, &nw);
    H5Gclose(g);
    if (st == SN_ERR_NOTFOUND)
      return sn_error_set(SN_ERR_FORMAT, "file %s: layer %s: no weight_names attribute", L->path,
                          layer);
    if (st) return st;
    if (nw > 0)
      fl[(*nf)++] = (file_layer){layer, wn, nw};
    else
      sn_h5_free_strs(wn, nw);
  }
  return SN_OK;
}

static int file_has(const file_layer *fl, int nf, const char *name) {
  for (int k = 0; k < nf; ++k)
    if (!strcmp(fl[k].name, name)) return 1;
  return 0;
}

static int list_has(const char *const *v, int n, const char *name) {
  for (int k = 0; k < n; ++k)
    if (!strcmp(v[k], name)) return 1;
  return 0;
}

/* A known release file loaded into another architecture (or with the other top), and the
 * deep-learning-models v0.2 ResNet50 (layers bn_conv1, res2a_branch2a) into a net other than
 * keras_resnet50_v02: it would pair by order with another epsilon (1e-3) or swap same-shaped
 * shortcut and main-path convolutions. */
static sn_status keras_file_fits(const loader *L, const char *md5, char **layers, int nl) {
  const known_file *kf = find_known(md5);
  int top = 0;
  for (int i = 0; i < L->np; ++i)
    top |= !strcmp(L->info[i].layer_kind, "dense");
  /* SN_LOAD_IGNORE_HEAD: a top file may feed a no-top net. */
  if (kf &&
      (strcmp(kf->arch, sn_net_arch(L->net)) != 0 || (top != kf->top && !(L->ignore && kf->top))))
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: this is %s %s, which fits arch %s with include_top = %d; the net "
                        "is %s with include_top = %d",
                        L->path, kf->what, kf->file, kf->arch, kf->top, sn_net_arch(L->net), top);
  if (list_has((const char *const *)layers, nl, "bn_conv1") &&
      list_has((const char *const *)layers, nl, "res2a_branch2a") &&
      !loader_has_layer(L, "bn_conv1"))
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: layers bn_conv1, res2a_branch2a: this is a Keras <= 2.2.4 "
                        "ResNet50 file (deep-learning-models v0.2 names, BN eps 1e-3), which fits "
                        "arch keras_resnet50_v02; the net is %s",
                        L->path, sn_net_arch(L->net));
  return SN_OK;
}

/* Files whose count of layers with weights differs from the net's: names the first file layer the
 * net lacks (other than a top layer SN_LOAD_IGNORE_HEAD may skip), else the first net layer the
 * file lacks. */
static sn_status keras_count_error(const loader *L, const file_layer *fl, int nf,
                                   const char *const *nl, int nn) {
  for (int k = 0; k < nf; ++k)
    if (!list_has(nl, nn, fl[k].name) && !ignored(L, fl[k].name, 0))
      return sn_error_set(SN_ERR_FORMAT,
                          "file %s: unexpected layer %s with %d weights (%s has no such layer; the "
                          "file has %d layers with weights, the net %d)%s",
                          L->path, fl[k].name, fl[k].nw, sn_net_arch(L->net), nf, nn,
                          k == nf - 1 ? top_hint(L, NULL) : "");
  for (int k = 0; k < nn; ++k)
    if (!file_has(fl, nf, nl[k])) {
      int i = 0;
      while (i < L->np && strcmp(L->info[i].layer, nl[k]))
        ++i;
      return sn_error_set(SN_ERR_NOTFOUND,
                          "file %s: layer %s (%s) is missing from the file (the file has %d layers "
                          "with weights, the net %d)",
                          L->path, nl[k], i < L->np ? L->info[i].layer_kind : "?", nf, nn);
    }
  return sn_error_set(SN_ERR_FORMAT, "file %s: %d layers with weights, the net %s has %d", L->path,
                      nf, sn_net_arch(L->net), nn);
}

/* Pairs the file's layers with weights (fl) with the net's (nl, Keras' order), as Keras'
 * load_weights does: by position, every tensor's shape checked. When the names agree
 * position by position nothing is reported; when the file lists exactly the net's names in
 * another order, layers are matched by name (pairing by position would swap them); otherwise
 * by position, and info->note says how many names differ. */
static sn_status keras_pair(loader *L, hid_t b, const file_layer *fl, int nf, const char *const *nl,
                            int nn, sn_weights_info *info) {
  if (nf != nn) return keras_count_error(L, fl, nf, nl, nn);
  int renamed = 0, first = -1, permuted = 1;
  for (int k = 0; k < nf; ++k)
    if (strcmp(fl[k].name, nl[k])) {
      renamed++;
      if (first < 0) first = k;
    }
  for (int k = 0; k < nf && renamed; ++k) /* layer_names are distinct groups */
    permuted &= list_has(nl, nn, fl[k].name);
  permuted = permuted && renamed;
  for (int k = 0; k < nf; ++k) {
    const char *layer = permuted ? fl[k].name : nl[k];
    hid_t g = H5Gopen2(b, fl[k].name, H5P_DEFAULT);
    if (g < 0)
      return sn_error_set(SN_ERR_FORMAT, "file %s: layer %s: cannot open group", L->path,
                          fl[k].name);
    char prefix[SN_MAX_NAME + 8];
    snprintf(prefix, sizeof prefix, "%s/", fl[k].name);
    sn_status st = keras_layer(L, g, layer, fl[k].name, fl[k].wn, fl[k].nw, prefix);
    H5Gclose(g);
    if (st) return st;
  }
  for (int i = 0; i < L->np; ++i)
    if (!L->filled[i] && !is_head(L, i))
      return sn_error_set(SN_ERR_NOTFOUND, "file %s: layer %s (%s) is missing from the file",
                          L->path, L->info[i].layer, L->info[i].layer_kind);
  if (!info || !renamed) return SN_OK;
  info->renamed = permuted ? 0 : renamed;
  if (permuted)
    snprintf(info->note, sizeof info->note,
             "file %s: lists its %d layers with weights in another order than Keras' order of %s "
             "(%s where %s is expected); matched by name",
             L->path, nf, sn_net_arch(L->net), fl[first].name, nl[first]);
  else
    snprintf(info->note, sizeof info->note,
             "file %s: the names of %d of %d layers with weights differ from %s's (%s%s for %s); "
             "paired by position in Keras' layer order, as Keras loads them",
             L->path, renamed, nf, sn_net_arch(L->net), renamed > 1 ? "first: " : "",
             fl[first].name, nl[first]);
  return SN_OK;
}

/* 1 if the file layer's first tensor is 2-D (a dense kernel: a classifier, whatever its name). */
static int file_layer_dense(const loader *L, hid_t b, const file_layer *fl) {
  char path[3 * SN_MAX_NAME + 8];
  snprintf(path, sizeof path, "%s/%s", fl->name, fl->wn[0]);
  int nd = 0;
  int64_t d[SN_H5_MAX_RANK];
  return sn_h5_dataset_shape(b, path, L->path, &nd, d) == SN_OK && nd == 2;
}

/* The net's layers with weights in Keras' order (sn_net_keras_layers), without the head when a
 * SN_LOAD_NEW_HEAD file has none (one layer fewer, the last not a dense one). *nl is allocated
 * (free()); its strings belong to the net. */
static sn_status keras_net_layers(loader *L, hid_t b, const file_layer *fl, int nf,
                                  const char ***nl, int *nn) {
  int n = 0;
  sn_status st = sn_net_keras_layers(L->net, nl, &n);
  if (st) return st;
  *nn = 0;
  for (int k = 0; k < n; ++k)
    if (loader_has_layer(L, (*nl)[k])) (*nl)[(*nn)++] = (*nl)[k];
  if (L->head && nf == *nn - 1 && *nn > 0 && !strcmp((*nl)[*nn - 1], L->head) &&
      (nf == 0 || !file_layer_dense(L, b, &fl[nf - 1])))
    --*nn;
  return SN_OK;
}

/* SN_LOAD_IGNORE_HEAD on a net without a classifier: a file with the architecture's top layers
 * (the last ones in Keras' order, whatever their names) drops them if they are dense layers. */
static int keras_drop_top(const loader *L, hid_t b, const file_layer *fl, int nf, int nn) {
  if (!L->ignore || nf != nn + L->nignore) return nf;
  for (int k = nn; k < nf; ++k)
    if (!file_layer_dense(L, b, &fl[k])) return nf;
  return nn;
}

static sn_status load_keras(loader *L, hid_t f, const char *md5, sn_weights_info *info) {
  const char *base = keras_base(f);
  if (!base)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: not a Keras weights file (no layer_names attribute on / or "
                        "/model_weights)",
                        L->path);
  hid_t b = H5Gopen2(f, base, H5P_DEFAULT);
  if (b < 0) return sn_error_set(SN_ERR_FORMAT, "file %s: cannot open group %s", L->path, base);
  char **layers = NULL;
  const char **nl = NULL;
  int nlayers = 0, nf = 0, nn = 0;
  sn_status st = sn_h5_read_str_array_attr(b, "layer_names", L->path, base, &layers, &nlayers);
  file_layer *fl = st ? NULL : calloc(nlayers ? (size_t)nlayers : 1, sizeof *fl);
  if (!st && !fl) st = sn_error_set(SN_ERR_NOMEM, "file %s: out of memory", L->path);
  if (!st) st = keras_file_layers(L, b, base, layers, nlayers, fl, &nf);
  if (!st) st = keras_file_fits(L, md5, layers, nlayers);
  if (!st) st = keras_net_layers(L, b, fl, nf, &nl, &nn);
  if (!st) st = keras_pair(L, b, fl, keras_drop_top(L, b, fl, nf, nn), nl, nn, info);
  for (int k = 0; fl && k < nf; ++k)
    sn_h5_free_strs(fl[k].wn, fl[k].nw);
  free(fl);
  free(nl);
  sn_h5_free_strs(layers, nlayers);
  H5Gclose(b);
  return st;
}

/* ---------------------------------------------------------------- Keras 3 .weights.h5 */

/* The group holding per-layer groups in a Keras 3 file ("layers", or the Keras 2.13 name). */
static const char *keras3_base(hid_t f) {
  if (sn_h5_is_group(f, "layers")) return "layers";
  if (sn_h5_is_group(f, "_layer_checkpoint_dependencies")) return "_layer_checkpoint_dependencies";
  return NULL;
}

/* Layer groups are named by class ("conv2d_3"), not by layer; the real name is the "name"
 * attribute of the vars group (Keras >= 3.6) or of the layer group. Without it the file cannot
 * be matched by name, and matching by position is unsafe (same-shaped layers could swap). */
static sn_status load_keras3(loader *L, hid_t f) {
  const char *base = keras3_base(f);
  if (!base)
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: not a Keras weights file (no layer_names "
                        "attribute and no /layers group)",
                        L->path);
  char **groups = NULL;
  int ng = 0;
  sn_status st = sn_h5_list(f, base, L->path, &groups, &ng);
  for (int j = 0; j < ng && !st; ++j) {
    char vpath[2 * SN_MAX_NAME + 64];
    snprintf(vpath, sizeof vpath, "%s/%s/vars", base, groups[j]);
    if (!sn_h5_is_group(f, vpath)) continue;
    char **vars = NULL;
    int nv = 0;
    st = sn_h5_list(f, vpath, L->path, &vars, &nv);
    sn_h5_free_strs(vars, nv);
    if (st || nv == 0) continue; /* weightless layer */
    hid_t g = H5Gopen2(f, vpath, H5P_DEFAULT);
    if (g < 0) {
      st = sn_error_set(SN_ERR_FORMAT, "file %s: group %s: cannot open", L->path, vpath);
      break;
    }
    char *layer = NULL;
    st = sn_h5_read_str_attr(g, "name", L->path, vpath, &layer);
    if (st == SN_ERR_NOTFOUND) {
      char lpath[2 * SN_MAX_NAME + 64];
      snprintf(lpath, sizeof lpath, "%s/%s", base, groups[j]);
      hid_t lg = H5Gopen2(f, lpath, H5P_DEFAULT);
      st = lg >= 0 ? sn_h5_read_str_attr(lg, "name", L->path, lpath, &layer) : SN_ERR_NOTFOUND;
      if (lg >= 0) H5Gclose(lg);
    }
    if (!st && ignored(L, layer, 0)) {
      free(layer);
      H5Gclose(g);
      continue;
    }
    if (st == SN_ERR_NOTFOUND)
      st = sn_error_set(SN_ERR_FORMAT,
                        "file %s: group %s has no layer name attribute (Keras 3 before 3.6): "
                        "layers cannot be matched by name; save with Keras >= 3.6 or in the "
                        "legacy format (model.save(\"model.h5\"))",
                        L->path, vpath);
    /* Variables are "0", "1", ... in Keras order. */
    char *names[SN_ROLE_MOVING_VAR + 1];
    char bufs[SN_ROLE_MOVING_VAR + 1][8];
    for (int k = 0; k <= SN_ROLE_MOVING_VAR; ++k) {
      snprintf(bufs[k], sizeof bufs[k], "%d", k);
      names[k] = bufs[k];
    }
    if (!st && nv > SN_ROLE_MOVING_VAR + 1)
      st = sn_error_set(SN_ERR_SHAPE, "file %s: %s (layer %s): %d variables, at most %d expected",
                        L->path, vpath, layer, nv, SN_ROLE_MOVING_VAR + 1);
    for (int k = 0; k < nv && !st; ++k)
      if (!sn_h5_is_dataset(g, names[k]))
        st = sn_error_set(SN_ERR_FORMAT, "file %s: %s (layer %s): variable %d missing", L->path,
                          vpath, layer, k);
    if (!st && !loader_has_layer(L, layer))
      st = sn_error_set(SN_ERR_FORMAT,
                        "file %s: unexpected layer %s (%s) with %d weights (%s has no such "
                        "layer)%s",
                        L->path, layer, vpath, nv, sn_net_arch(L->net), top_hint(L, layer));
    if (!st) {
      char prefix[2 * SN_MAX_NAME + 72];
      snprintf(prefix, sizeof prefix, "%s/", vpath);
      st = keras_layer(L, g, layer, layer, names, nv, prefix);
    }
    free(layer);
    H5Gclose(g);
  }
  sn_h5_free_strs(groups, ng);
  for (int i = 0; i < L->np && !st; ++i)
    if (!L->filled[i] && !is_head(L, i))
      st = sn_error_set(SN_ERR_NOTFOUND, "file %s: layer %s (%s) is missing from the file", L->path,
                        L->info[i].layer, L->info[i].layer_kind);
  return st;
}

/* ---------------------------------------------------------------- native */

static int native_file(hid_t f) {
  if (!sn_h5_has_attr(f, "format")) return 0;
  char *fmt = NULL;
  int yes = sn_h5_read_str_attr(f, "format", "", "/", &fmt) == SN_OK && !strcmp(fmt, "shardnet");
  free(fmt);
  return yes;
}

static sn_status load_native(loader *L, hid_t f) {
  if (!native_file(f))
    return sn_error_set(SN_ERR_FORMAT,
                        "file %s: not a shardnet weights file (no format = "
                        "\"shardnet\" attribute)",
                        L->path);
  char *arch = NULL;
  sn_status st = sn_h5_read_str_attr(f, "arch", L->path, "/", &arch);
  if (st) return st;
  if (strcmp(arch, sn_net_arch(L->net)) != 0)
    st = sn_error_set(SN_ERR_FORMAT, "file %s: weights are for arch %s but the net is %s", L->path,
                      arch, sn_net_arch(L->net));
  free(arch);
  char key[2 * SN_MAX_NAME + 32];
  for (int i = 0; i < L->np && !st; ++i) {
    snprintf(key, sizeof key, "params/%s/%s", L->info[i].layer, keras_role(L->info[i].role));
    st = stage_engine(L, f, key, "dataset", key, i);
  }
  /* Nothing in /params that the net lacks. */
  char **layers = NULL;
  int nl = 0;
  if (!st) st = sn_h5_list(f, "params", L->path, &layers, &nl);
  for (int j = 0; j < nl && !st; ++j) {
    if (ignored(L, layers[j], 0)) continue;
    snprintf(key, sizeof key, "params/%s", layers[j]);
    char **roles = NULL;
    int nr = 0;
    st = sn_h5_list(f, key, L->path, &roles, &nr);
    if (st == SN_ERR_NOTFOUND)
      st = sn_error_set(SN_ERR_FORMAT, "file %s: dataset %s: unexpected (not a layer group)",
                        L->path, key);
    for (int k = 0; k < nr && !st; ++k) {
      int r = keras_role_of(roles[k]);
      if (r < 0 || strcmp(roles[k], keras_role((sn_param_role)r)) != 0 ||
          loader_find(L, layers[j], (sn_param_role)r) < 0)
        st = sn_error_set(SN_ERR_FORMAT,
                          "file %s: dataset %s/%s: unexpected (no such parameter in %s)", L->path,
                          key, roles[k], sn_net_arch(L->net));
    }
    sn_h5_free_strs(roles, nr);
  }
  sn_h5_free_strs(layers, nl);
  if (!st) st = check_all_filled(L, "params");
  return st;
}

/* ---------------------------------------------------------------- detection and entry points */

/* A torchvision file: a root dataset named like a state_dict key. */
static int torch_file(hid_t f) {
  char **names = NULL;
  int n = 0, yes = 0;
  if (sn_h5_list(f, "/", "", &names, &n) != SN_OK) return 0;
  for (int j = 0; j < n && !yes; ++j)
    yes = strchr(names[j], '.') && sn_h5_is_dataset(f, names[j]);
  sn_h5_free_strs(names, n);
  return yes;
}

/* Stages the file's tensors into L (HDF5 part of sn_weights_load; the caller holds the io lock).
 * info->md5 receives the file's MD5 when want_md5 or the file is Keras. */
static sn_status read_weights(loader *L, sn_net *net, const char *path, sn_weights_format fmt,
                              unsigned flags, int want_md5, sn_weights_info *info) {
  hid_t f;
  sn_status st = sn_h5_open_read(path, &f);
  if (st) return st;
  if (fmt == SN_WEIGHTS_AUTO) {
    if (native_file(f))
      fmt = SN_WEIGHTS_NATIVE;
    else if (keras_base(f) || keras3_base(f))
      fmt = SN_WEIGHTS_KERAS;
    else if (torch_file(f))
      fmt = SN_WEIGHTS_TORCH;
    else
      st = sn_error_set(SN_ERR_FORMAT,
                        "file %s: unrecognised weights layout (neither shardnet, torchvision "
                        "state_dict nor Keras layer_names)",
                        path);
  }
  info->format = fmt;
  if (!st && (want_md5 || fmt == SN_WEIGHTS_KERAS)) st = sn_md5_file(path, info->md5);
  if (!st) st = loader_init(L, net, path, flags);
  L->fmt = fmt;
  if (!st) {
    switch (fmt) {
    case SN_WEIGHTS_NATIVE:
      st = load_native(L, f);
      break;
    case SN_WEIGHTS_TORCH:
      st = load_torch(L, f);
      break;
    default:
      st = !keras_base(f) && keras3_base(f) ? load_keras3(L, f) : load_keras(L, f, info->md5, info);
      break;
    }
  }
  H5Fclose(f);
  return st;
}

/* sn_weights_load_info, computing the MD5 only when want_md5 or the file is Keras. */
static sn_status load_file(sn_net *net, const char *path, sn_weights_format fmt, unsigned flags,
                           int want_md5, sn_weights_info *info) {
  memset(info, 0, sizeof *info);
  if (!net || !path)
    return sn_error_set(SN_ERR_INVALID, "sn_weights_load: net and path are required");
  if (fmt < SN_WEIGHTS_AUTO || fmt > SN_WEIGHTS_KERAS)
    return sn_error_set(SN_ERR_INVALID, "file %s: unknown weights format %d", path, (int)fmt);
  if (flags & ~(unsigned)(SN_LOAD_NEW_HEAD | SN_LOAD_IGNORE_HEAD))
    return sn_error_set(SN_ERR_INVALID, "file %s: unknown load flags 0x%x", path, flags);
  loader L;
  memset(&L, 0, sizeof L);
  /* HDF5 is not thread-safe here: exclude a live dataset reader's thread (h5util.h). */
  sn_h5_lock();
  sn_status st = read_weights(&L, net, path, fmt, flags, want_md5, info);
  sn_h5_unlock();
  if (!st) st = loader_commit(&L);
  loader_free(&L);
  if (st) {
    info->md5[0] = '\0';
    info->renamed = 0;
    info->note[0] = '\0';
  }
  return st;
}

sn_status sn_weights_load(sn_net *net, const char *path, sn_weights_format fmt, char *md5_hex) {
  return sn_weights_load_ex(net, path, fmt, SN_LOAD_STRICT, md5_hex);
}

sn_status sn_weights_load_ex(sn_net *net, const char *path, sn_weights_format fmt, unsigned flags,
                             char *md5_hex) {
  sn_weights_info info;
  if (md5_hex) md5_hex[0] = '\0';
  sn_status st = load_file(net, path, fmt, flags, md5_hex != NULL, &info);
  if (!st && md5_hex) memcpy(md5_hex, info.md5, sizeof info.md5);
  return st;
}

sn_status sn_weights_load_info(sn_net *net, const char *path, sn_weights_format fmt, unsigned flags,
                               sn_weights_info *info) {
  sn_weights_info local;
  return load_file(net, path, fmt, flags, 1, info ? info : &local);
}

sn_status sn_weights_load_bcast(sn_net *net, const char *path, sn_comm *comm, char *md5_hex) {
  return sn_weights_load_bcast_ex(net, path, comm, SN_LOAD_STRICT, md5_hex);
}

sn_status sn_weights_load_bcast_ex(sn_net *net, const char *path, sn_comm *comm, unsigned flags,
                                   char *md5_hex) {
  sn_weights_info info;
  if (md5_hex) md5_hex[0] = '\0';
  sn_status st = sn_weights_load_bcast_info(net, path, comm, flags, &info);
  if (!st && md5_hex) memcpy(md5_hex, info.md5, sizeof info.md5);
  return st;
}

sn_status sn_weights_load_bcast_info(sn_net *net, const char *path, sn_comm *comm, unsigned flags,
                                     sn_weights_info *info) {
  sn_weights_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof *info);
  if (!comm) comm = sn_comm_serial();
  const int rank = sn_comm_rank(comm);
  sn_status st = SN_OK;
  if (rank == 0) st = sn_weights_load_info(net, path, SN_WEIGHTS_AUTO, flags, info);
  st = sn_comm_agree(comm, st);
  if (st) return st;
  if (sn_comm_size(comm) == 1) return SN_OK;
  size_t n = 0;
  float *block = sn_net_param_block(net, &n);
  /* Other ranks receive into a staging copy so that a failed broadcast leaves them unchanged. */
  float *recv = rank == 0 ? block : malloc((n ? n : 1) * sizeof(float));
  st = recv ? SN_OK : sn_error_set(SN_ERR_NOMEM, "file %s: cannot allocate %zu floats", path, n);
  st = sn_comm_agree(comm, st);
  if (st) return st;
  sn_weights_info got = *info;
  st = sn_comm_bcast(comm, recv, n * sizeof(float), 0);
  if (!st) st = sn_comm_bcast(comm, &got, sizeof got, 0);
  st = sn_comm_agree(comm, st);
  if (!st && rank != 0) {
    memcpy(block, recv, n * sizeof(float));
    st = sn_net_refresh(net);
  }
  if (rank != 0) free(recv);
  st = sn_comm_agree(comm, st);
  if (!st) *info = got;
  return st;
}

/* ---------------------------------------------------------------- what a file records */

/* The output width of the 2-D kernel `dset` under loc (column = 1: engine (in, out), 0: PyTorch
 * (out, in)) into *classes. */
static sn_status kernel_outputs(hid_t loc, const char *dset, const char *path, int column,
                                int *classes) {
  int nd;
  int64_t d[SN_H5_MAX_RANK];
  sn_status st = sn_h5_dataset_shape(loc, dset, path, &nd, d);
  if (!st && nd != 2)
    st = sn_error_set(SN_ERR_FORMAT, "file %s: classifier kernel %s has rank %d, expected 2", path,
                      dset, nd);
  if (!st) *classes = (int)d[column];
  return st;
}

/* Keras legacy: the kernel of layer "predictions" (by its role in weight_names, else the first
 * weight); no such layer: 0. */
static sn_status keras_classes(hid_t f, const char *path, int *classes) {
  const char *base = keras_base(f);
  hid_t b = H5Gopen2(f, base, H5P_DEFAULT);
  if (b < 0) return sn_error_set(SN_ERR_FORMAT, "file %s: cannot open group %s", path, base);
  *classes = 0;
  sn_status st = SN_OK;
  if (sn_h5_is_group(b, "predictions")) {
    hid_t g = H5Gopen2(b, "predictions", H5P_DEFAULT);
    char **wn = NULL;
    int nw = 0;
    st = g < 0 ? sn_error_set(SN_ERR_FORMAT, "file %s: layer predictions: cannot open group", path)
               : sn_h5_read_str_array_attr(g, "weight_names", path, "predictions", &wn, &nw);
    int k = 0;
    while (k < nw && keras_role_of(wn[k]) != SN_ROLE_KERNEL)
      ++k;
    if (!st && nw > 0) st = kernel_outputs(g, wn[k < nw ? k : 0], path, 1, classes);
    sn_h5_free_strs(wn, nw);
    if (g >= 0) H5Gclose(g);
  }
  H5Gclose(b);
  return st;
}

/* Keras 3: vars/0 of the layer whose name attribute (on vars or the layer group) is
 * "predictions"; no such layer: 0. */
static sn_status keras3_classes(hid_t f, const char *path, int *classes) {
  const char *base = keras3_base(f);
  char **groups = NULL;
  int ng = 0;
  *classes = 0;
  sn_status st = sn_h5_list(f, base, path, &groups, &ng);
  for (int j = 0; j < ng && !st; ++j) {
    char lpath[2 * SN_MAX_NAME + 64], vpath[2 * SN_MAX_NAME + 72], v0[2 * SN_MAX_NAME + 80];
    snprintf(lpath, sizeof lpath, "%s/%s", base, groups[j]);
    snprintf(vpath, sizeof vpath, "%s/vars", lpath);
    snprintf(v0, sizeof v0, "%s/0", vpath);
    if (!sn_h5_is_dataset(f, v0)) continue;
    int named = 0;
    for (int where = 0; where < 2 && !named; ++where) {
      hid_t g = H5Gopen2(f, where ? lpath : vpath, H5P_DEFAULT);
      char *name = NULL;
      if (g >= 0 && sn_h5_has_attr(g, "name") &&
          sn_h5_read_str_attr(g, "name", path, where ? lpath : vpath, &name) == SN_OK)
        named = !strcmp(name, "predictions");
      free(name);
      if (g >= 0) H5Gclose(g);
    }
    if (named) {
      hid_t g = H5Gopen2(f, vpath, H5P_DEFAULT);
      st = kernel_outputs(g, "0", path, 1, classes);
      H5Gclose(g);
      break;
    }
  }
  sn_h5_free_strs(groups, ng);
  return st;
}

static sn_status inspect(hid_t f, const char *path, sn_weights_record *info) {
  int64_t v = 0;
  char *arch = NULL;
  sn_status st = SN_OK;
  if (native_file(f)) {
    info->format = SN_WEIGHTS_NATIVE;
    st = sn_h5_read_str_attr(f, "arch", path, "/", &arch);
    if (!st) st = sn_h5_read_int_attr(f, "classes", path, "/", &v);
    info->classes = (int)v;
  } else if (keras_base(f)) {
    info->format = SN_WEIGHTS_KERAS;
    st = keras_classes(f, path, &info->classes);
  } else if (keras3_base(f)) {
    info->format = SN_WEIGHTS_KERAS;
    st = keras3_classes(f, path, &info->classes);
  } else if (torch_file(f)) {
    info->format = SN_WEIGHTS_TORCH;
    if (sn_h5_has_attr(f, "arch")) st = sn_h5_read_str_attr(f, "arch", path, "/", &arch);
    info->classes = 0;
    if (!st && sn_h5_is_dataset(f, "fc.weight"))
      st = kernel_outputs(f, "fc.weight", path, 0, &info->classes);
  } else {
    st = sn_error_set(SN_ERR_FORMAT,
                      "file %s: unrecognised weights layout (neither shardnet, torchvision "
                      "state_dict nor Keras layer_names)",
                      path);
  }
  if (!st && arch) snprintf(info->arch, sizeof info->arch, "%s", arch);
  free(arch);
  return st;
}

sn_status sn_weights_inspect(const char *path, sn_weights_record *info) {
  if (!path || !info)
    return sn_error_set(SN_ERR_INVALID, "sn_weights_inspect: path and info are required");
  memset(info, 0, sizeof *info);
  sn_h5_lock(); /* see sn_weights_load */
  hid_t f;
  sn_status st = sn_h5_open_read(path, &f);
  if (!st) {
    st = inspect(f, path, info);
    H5Fclose(f);
  }
  sn_h5_unlock();
  if (st) memset(info, 0, sizeof *info);
  return st;
}

/* ---------------------------------------------------------------- saving */

sn_status sn_weights_save(const sn_net *net, const char *path) {
  if (!net || !path)
    return sn_error_set(SN_ERR_INVALID, "sn_weights_save: net and path are required");
  const int np = sn_net_num_params(net);
  /* Configuration as far as the public accessors reveal it. */
  int h, w, c, oh, ow, oc, top = 0, base_width = 0;
  sn_net_input_shape(net, &h, &w, &c);
  sn_net_output_shape(net, &oh, &ow, &oc);
  for (int i = 0; i < np; ++i) {
    sn_param_info p;
    sn_status st = sn_net_param(net, i, &p);
    if (st) return st;
    if (strchr(p.layer, '/'))
      return sn_error_set(SN_ERR_INVALID, "file %s: layer name %s contains '/'", path, p.layer);
    if (!strcmp(p.layer_kind, "dense")) top = 1;
    if (!base_width && !strcmp(p.layer_kind, "conv") && p.ndim == 4) base_width = p.shape[3];
  }
  const int feature = sn_net_feature_dim(net);
  /* Keras semantics: pooling applies only without a top. Without one, the API shows whether the
   * output is pooled but not whether by average or maximum (weight-free either way). */
  const char *pooling = top || feature == 0 ? "none" : "pooled";

  hid_t f;
  char tmp[4096];
  sn_h5_lock(); /* see sn_weights_load */
  sn_status st = sn_h5_create_atomic(path, &f, tmp, sizeof tmp);
  if (st) {
    sn_h5_unlock();
    return st;
  }
  st = sn_h5_write_str_attr(f, "format", "shardnet", path);
  if (!st) st = sn_h5_write_str_attr(f, "version", SN_VERSION, path);
  if (!st) st = sn_h5_write_str_attr(f, "arch", sn_net_arch(net), path);
  if (!st)
    st = sn_h5_write_str_attr(f, "style", sn_net_style(net) == SN_STYLE_TORCH ? "torch" : "keras",
                              path);
  if (!st) st = sn_h5_write_int_attr(f, "classes", top ? oc : 0, path);
  if (!st) st = sn_h5_write_int_attr(f, "height", h, path);
  if (!st) st = sn_h5_write_int_attr(f, "width", w, path);
  if (!st) st = sn_h5_write_int_attr(f, "channels", c, path);
  if (!st) st = sn_h5_write_int_attr(f, "include_top", top, path);
  if (!st) st = sn_h5_write_str_attr(f, "pooling", pooling, path);
  if (!st) st = sn_h5_write_int_attr(f, "base_width", base_width, path);
  char key[2 * SN_MAX_NAME + 32];
  for (int i = 0; i < np && !st; ++i) {
    sn_param_info p;
    st = sn_net_param(net, i, &p);
    if (st) break;
    int64_t dims[4];
    engine_dims(&p, dims);
    snprintf(key, sizeof key, "params/%s/%s", p.layer, keras_role(p.role));
    st = sn_h5_write_f32(f, key, path, p.ndim, dims, p.data);
  }
  sn_status fin = sn_h5_finish_atomic(f, tmp, path, st == SN_OK);
  sn_h5_unlock();
  return st ? st : fin;
}
