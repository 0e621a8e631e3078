/* fuzz_weights_h5.c - structure-aware fuzzing of the weight and checkpoint loaders.
 *
 * The input is a small program that writes an HDF5 file with the HDF5 API: one of the layouts
 * the loaders know (torchvision state_dict, shardnet native, Keras legacy at / or
 * /model_weights, Keras 3 .weights.h5, checkpoint) for one of the two nets of fuzz_nets.h, with
 * up to 7 perturbations of single tensors (missing, wrong shape or layout, rank, type, NaN,
 * extra, duplicated, group instead of dataset, huge, ...), then free-form operations (datasets,
 * attributes, groups, links and deletions named from a dictionary of the nets' real names).
 *
 * Program: byte 0 ctrl: bit 0 net loaded into, bits 1-2 format (auto, native, torch, keras),
 *          bit 3 HDF5 latest format, bit 4 fixed-length strings, bits 5-7 layout
 *          (0 torch, 1 native, 2 keras /, 3 keras /model_weights, 4 keras 3, 5 checkpoint,
 *          6 none, 7 torch + arch attribute);
 *          byte 1: bit 0 net the layout is written for, bits 1-2 storage layout, bit 3 Keras
 *          weightless layers, bit 4 layer_names split into layer_names0/1, bit 5 Keras 3 name
 *          attribute on the layer group; byte 2: perturbation count (mod 8); per perturbation
 *          u16 tensor, u8 kind; then free operations until the end.
 * Oracles (besides fuzz_nets.h's): a file for the loading net with only benign perturbations
 * (float64 storage, NaN values, reordered Keras weight names, extra num_batches_tracked)
 * and no free operations must load, and then every parameter equals what was written.
 * SN_FUZZ_EMIT=dir keeps each generated file as dir/<n>.h5 (seeds for fuzz_weights).
 */
#include "fuzz_h5build.h"
#include "fuzz_nets.h"
#include "h5util.h"

enum { L_TORCH, L_NATIVE, L_KERAS_ROOT, L_KERAS_MW, L_KERAS3, L_CKPT, L_NONE, L_TORCH_ARCH };

enum {
  P_OMIT,
  P_DIM_PLUS,
  P_OTHER_LAYOUT,
  P_RANK_DROP,
  P_F64, /* benign */
  P_I32,
  P_F16, /* refused: float32 or float64 only */
  P_STR,
  P_NAN, /* refused: weights must be finite (io/weights.c) */
  P_EXTRA,
  P_GROUP,
  P_SWAP,
  P_SCALAR,
  P_BIG,
  P_NBT,     /* benign: torch num_batches_tracked / an extra attribute */
  P_REORDER, /* benign: Keras weight names in reverse order */
  P_KINDS
};

static int benign(int kind) {
  /* float16 is refused by design: sn_h5_read_f32 takes float32 or float64 only */
  return kind == P_F64 || kind == P_NBT || kind == P_REORDER;
}

/* ---------------------------------------------------------------- dictionary */

static char **dict;
static int ndict;

static void dict_add(const char *s) { fzb_dict_add(&dict, &ndict, s); }

static const char *roles_k(sn_param_role r) { return sn_param_role_name(r, SN_STYLE_KERAS, NULL); }
static const char *roles_t(const sn_param_info *p) {
  return sn_param_role_name(p->role, SN_STYLE_TORCH, p->layer_kind);
}

static void dict_setup(void) {
  static const char *words[] = {"params",
                                "model_weights",
                                "layers",
                                "_layer_checkpoint_dependencies",
                                "vars",
                                "layer_names",
                                "layer_names0",
                                "layer_names1",
                                "weight_names",
                                "weight_names0",
                                "name",
                                "format",
                                "shardnet",
                                "shardnet-checkpoint",
                                "arch",
                                "version",
                                "style",
                                "torch",
                                "keras",
                                "classes",
                                "momentum",
                                "param_count",
                                "momentum_count",
                                "height",
                                "width",
                                "channels",
                                "outputs",
                                "epoch",
                                "step",
                                "sgd_steps",
                                "seed",
                                "ranks",
                                "global_batch",
                                "include_top",
                                "pooling",
                                "base_width",
                                "0",
                                "1",
                                "2",
                                "3",
                                "4",
                                "5",
                                "6",
                                "fc",
                                "predictions",
                                "num_batches_tracked",
                                "bn_conv1",
                                "res2a_branch2a",
                                "fc1000",
                                "resnet18",
                                "keras_resnet50",
                                "resnet50",
                                "kernel",
                                "bias",
                                "gamma",
                                "beta",
                                "moving_mean",
                                "moving_variance",
                                "weight",
                                "running_mean",
                                "running_var",
                                "kernel:0",
                                "",
                                "/",
                                "a/b",
                                ".",
                                "..",
                                "x.y",
                                "layers/conv2d/vars",
                                "layers/dense/vars",
                                "layers/conv2d",
                                "top_level_model_weights",
                                "fc.weight",
                                "fc.bias",
                                "conv1.weight",
                                "predictions/kernel:0",
                                "/model_weights/fc"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; ++i)
    dict_add(words[i]);
  char buf[512];
  memset(buf, 'n', 300);
  buf[300] = '\0';
  dict_add(buf);
  for (int k = 0; k < FZ_NETS; ++k) {
    const fz_net *z = &fz_nets[k];
    dict_add(sn_net_arch(z->net));
    for (int i = 0; i < z->np; ++i) {
      const sn_param_info *p = &z->info[i];
      dict_add(p->layer);
      snprintf(buf, sizeof buf, "%s.%s", p->layer, roles_t(p));
      dict_add(buf);
      snprintf(buf, sizeof buf, "params/%s/%s", p->layer, roles_k(p->role));
      dict_add(buf);
      snprintf(buf, sizeof buf, "params/%s", p->layer);
      dict_add(buf);
      snprintf(buf, sizeof buf, "%s/%s/%s:0", p->layer, p->layer, roles_k(p->role));
      dict_add(buf);
      snprintf(buf, sizeof buf, "%s/%s:0", p->layer, roles_k(p->role));
      dict_add(buf);
      snprintf(buf, sizeof buf, "model_weights/%s", p->layer);
      dict_add(buf);
    }
  }
}

/* ---------------------------------------------------------------- layouts */

typedef struct pert {
  int kind; /* -1: none */
} pert;

/* Engine-layout values of tensor i of a net: fzb_value(100 + i, k). */
static float *engine_values(const sn_param_info *p, int i) {
  float *v = malloc((size_t)p->count * sizeof *v);
  for (int64_t k = 0; k < p->count; ++k)
    v[k] = fzb_value(100u + (uint32_t)i, (size_t)k);
  return v;
}

/* PyTorch layout of an engine tensor (the inverse of weights.c's from_torch). */
static void to_torch(const sn_param_info *p, const float *e, float *t, hsize_t *dims) {
  if (p->ndim == 4) {
    const int64_t kh = p->shape[0], kw = p->shape[1], ci = p->shape[2], co = p->shape[3];
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < ci; ++i)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t x = 0; x < kw; ++x)
            t[((o * ci + i) * kh + y) * kw + x] = e[((y * kw + x) * ci + i) * co + o];
    dims[0] = (hsize_t)co, dims[1] = (hsize_t)ci, dims[2] = (hsize_t)kh, dims[3] = (hsize_t)kw;
  } else if (p->ndim == 2) {
    const int64_t in = p->shape[0], out = p->shape[1];
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i)
        t[o * in + i] = e[i * out + o];
    dims[0] = (hsize_t)out, dims[1] = (hsize_t)in;
  } else {
    memcpy(t, e, (size_t)p->count * sizeof *t);
    for (int k = 0; k < p->ndim; ++k)
      dims[k] = (hsize_t)p->shape[k];
  }
}

/* Writes tensor i (values v in the file's layout, shape (rank, dims)) at name, applying the
 * perturbation. other: the name of another tensor (for P_SWAP). */
static void put_tensor(hid_t loc, const char *name, const char *other, const float *v, int rank,
                       const hsize_t *dims0, int kind, int storage, uint32_t tag) {
  hsize_t dims[4];
  for (int k = 0; k < rank; ++k)
    dims[k] = dims0[k];
  int t = FZT_F32, nan = 0;
  const float *vals = v;
  char buf[600];
  switch (kind) {
  case P_OMIT:
    return;
  case P_DIM_PLUS:
    dims[0] += 1, vals = NULL;
    break;
  case P_OTHER_LAYOUT:
    if (rank >= 2) {
      hsize_t d0 = dims[0];
      for (int k = 0; k + 1 < rank; ++k)
        dims[k] = dims[k + 1];
      dims[rank - 1] = d0;
    }
    break;
  case P_RANK_DROP:
    if (rank >= 2) dims[rank - 2] *= dims[rank - 1];
    rank = rank > 0 ? rank - 1 : 0;
    break;
  case P_F64:
    t = FZT_F64;
    break;
  case P_I32:
    t = FZT_I32;
    break;
  case P_F16:
    t = FZT_F16;
    break;
  case P_STR:
    t = FZT_STR;
    break;
  case P_NAN:
    nan = 1 + (tag & 1);
    break;
  case P_EXTRA:
    snprintf(buf, sizeof buf, "%s_extra", name);
    fzb_dataset(loc, buf, FZT_F32, rank, dims, v, tag, storage, 0);
    break;
  case P_GROUP: {
    hid_t g = fzb_group(loc, name);
    if (g >= 0) H5Gclose(g);
    return;
  }
  case P_SWAP:
    fzb_dataset(loc, other, FZT_F32, rank, dims, v, tag, storage, 0);
    break;
  case P_SCALAR:
    rank = 0, vals = NULL;
    break;
  case P_BIG:
    dims[0] = (hsize_t)1 << 21, vals = NULL;
    break;
  default:
    break;
  }
  fzb_dataset(loc, name, t, rank, dims, vals, tag, storage, nan);
  if (kind == P_NBT) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d >= 0) {
      fzb_attr_str(d, "note", "extra", 0);
      H5Dclose(d);
    }
  }
}

static void write_torch(hid_t f, const fz_net *z, const int *pk, int storage, int arch_attr) {
  char key[600], other[600];
  for (int i = 0; i < z->np; ++i) {
    const sn_param_info *p = &z->info[i];
    float *e = engine_values(p, i), *t = malloc((size_t)p->count * sizeof *t);
    hsize_t dims[4];
    to_torch(p, e, t, dims);
    snprintf(key, sizeof key, "%s.%s", p->layer, roles_t(p));
    const sn_param_info *q = &z->info[(i + 1) % z->np];
    snprintf(other, sizeof other, "%s.%s", q->layer, roles_t(q));
    /* A key is one link name even if it holds a '/'-free dotted path: create it at the root. */
    put_tensor(f, key, other, t, p->ndim, dims, pk[i], storage, 100u + (uint32_t)i);
    if (pk[i] == P_NBT && !strcmp(p->layer_kind, "bn")) {
      snprintf(key, sizeof key, "%s.num_batches_tracked", p->layer);
      hsize_t none[1] = {0};
      fzb_dataset(f, key, FZT_I64, 0, none, NULL, 7, 0, 0);
    }
    free(t);
    free(e);
  }
  if (arch_attr) fzb_attr_str(f, "arch", sn_net_arch(z->net), arch_attr == 2);
}

static void write_native(hid_t f, const fz_net *z, const int *pk, int storage, int fixed) {
  char key[600], other[600];
  for (int i = 0; i < z->np; ++i) {
    const sn_param_info *p = &z->info[i];
    float *e = engine_values(p, i);
    hsize_t dims[4];
    for (int k = 0; k < p->ndim; ++k)
      dims[k] = (hsize_t)p->shape[k];
    snprintf(key, sizeof key, "params/%s/%s", p->layer, roles_k(p->role));
    const sn_param_info *q = &z->info[(i + 1) % z->np];
    snprintf(other, sizeof other, "params/%s/%s", q->layer, roles_k(q->role));
    put_tensor(f, key, other, e, p->ndim, dims, pk[i], storage, 100u + (uint32_t)i);
    free(e);
  }
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(z->net, &h, &w, &c);
  sn_net_output_shape(z->net, &oh, &ow, &oc);
  fzb_attr_str(f, "format", "shardnet", fixed);
  fzb_attr_str(f, "version", SN_VERSION, fixed);
  fzb_attr_str(f, "arch", sn_net_arch(z->net), fixed);
  fzb_attr_str(f, "style", sn_net_style(z->net) == SN_STYLE_TORCH ? "torch" : "keras", fixed);
  fzb_attr_int(f, "classes", FZT_I64, oc, 0);
  fzb_attr_int(f, "height", FZT_I64, h, 0);
  fzb_attr_int(f, "width", FZT_I64, w, 0);
  fzb_attr_int(f, "channels", FZT_I64, c, 0);
  fzb_attr_int(f, "include_top", FZT_I64, 1, 0);
  fzb_attr_str(f, "pooling", "none", fixed);
  fzb_attr_int(f, "base_width", FZT_I64, 2, 0);
}

/* Keras legacy: layer groups under base with weight_names, datasets at <layer>/<weight name>. */
static void write_keras(hid_t f, const fz_net *z, const int *pk, int storage, int fixed,
                        int model_weights, int weightless, int split) {
  hid_t base = model_weights ? fzb_group(f, "model_weights") : H5Gopen2(f, "/", H5P_DEFAULT);
  if (base < 0) return;
  char **names = calloc((size_t)z->np * 2 + 2, sizeof *names);
  int nl = 0;
  char wn[6][600], key[600], other[600];
  for (int i = 0; i < z->np;) {
    const char *layer = z->info[i].layer;
    int j = i;
    while (j < z->np && !strcmp(z->info[j].layer, layer))
      ++j;
    if (weightless && (nl % 7) == 3) {
      char lbuf[64];
      snprintf(lbuf, sizeof lbuf, "pad_%d", nl);
      names[nl++] = strdup(lbuf);
      hid_t g = fzb_group(base, lbuf);
      if (g >= 0) {
        if (nl & 1)
          fzb_attr_empty_f64(g, "weight_names");
        else
          fzb_attr_strs(g, "weight_names", NULL, 0, fixed);
        H5Gclose(g);
      }
    }
    /* Layer-level perturbations come from its first tensor's kind. */
    const int lk = pk[i];
    if (lk != P_SCALAR) names[nl++] = strdup(layer); /* P_SCALAR: layer left out of layer_names */
    hid_t g = lk == P_GROUP ? -1 : fzb_group(base, layer);
    if (g >= 0) {
      const char *wptr[6];
      int nw = 0;
      for (int t = i; t < j && nw < 5; ++t) {
        const sn_param_info *p = &z->info[t];
        snprintf(wn[nw], sizeof wn[nw], "%s/%s:0", layer, roles_k(p->role));
        float *e = engine_values(p, t);
        hsize_t dims[4];
        for (int k = 0; k < p->ndim; ++k)
          dims[k] = (hsize_t)p->shape[k];
        const sn_param_info *q = &z->info[t + 1 < j ? t + 1 : i];
        snprintf(other, sizeof other, "%s/%s:0", layer, roles_k(q->role));
        snprintf(key, sizeof key, "%s", wn[nw]);
        put_tensor(g, key, other, e, p->ndim, dims,
                   pk[t] == P_GROUP || pk[t] == P_SCALAR ? -1 : pk[t], storage, 100u + (uint32_t)t);
        free(e);
        ++nw;
      }
      if (lk == P_EXTRA && nw < 6) {
        snprintf(wn[nw], sizeof wn[nw], "%s/extra:0", layer);
        ++nw;
      }
      for (int k = 0; k < nw; ++k)
        wptr[k] = wn[k];
      if (lk == P_REORDER)
        for (int k = 0; k < nw / 2; ++k) {
          const char *s = wptr[k];
          wptr[k] = wptr[nw - 1 - k];
          wptr[nw - 1 - k] = s;
        }
      if (lk != P_BIG) fzb_attr_strs(g, "weight_names", wptr, nw, fixed); /* P_BIG: missing */
      H5Gclose(g);
    }
    i = j;
  }
  if (split && nl > 1) {
    fzb_attr_strs(base, "layer_names0", (const char *const *)names, nl / 2, fixed);
    fzb_attr_strs(base, "layer_names1", (const char *const *)names + nl / 2, nl - nl / 2, fixed);
  } else {
    fzb_attr_strs(base, "layer_names", (const char *const *)names, nl, fixed);
  }
  fzb_attr_str(base, "backend", "tensorflow", fixed);
  for (int k = 0; k < nl; ++k)
    free(names[k]);
  free(names);
  H5Gclose(base);
}

/* Keras 3: /layers/<class>_<n>/vars/0..k, layer name in the vars (or layer) group's "name". */
static void write_keras3(hid_t f, const fz_net *z, const int *pk, int storage, int fixed,
                         int name_on_layer) {
  char gpath[700], vname[16], other[16];
  int nlayer = 0;
  for (int i = 0; i < z->np;) {
    const char *layer = z->info[i].layer;
    int j = i;
    while (j < z->np && !strcmp(z->info[j].layer, layer))
      ++j;
    const int lk = pk[i];
    snprintf(gpath, sizeof gpath, "layers/%s_%d/vars", z->info[i].layer_kind, nlayer++);
    hid_t g = fzb_group(f, gpath);
    if (g >= 0) {
      for (int t = i; t < j; ++t) {
        const sn_param_info *p = &z->info[t];
        int idx = t - i;
        if (lk == P_REORDER) idx = j - 1 - t; /* not benign here: Keras 3 order is positional */
        snprintf(vname, sizeof vname, "%d", idx);
        snprintf(other, sizeof other, "%d", (idx + 1) % (j - i));
        float *e = engine_values(p, t);
        hsize_t dims[4];
        for (int k = 0; k < p->ndim; ++k)
          dims[k] = (hsize_t)p->shape[k];
        put_tensor(g, vname, other, e, p->ndim, dims,
                   pk[t] == P_GROUP || pk[t] == P_REORDER ? -1 : pk[t], storage,
                   100u + (uint32_t)t);
        free(e);
      }
      if (lk == P_EXTRA) {
        snprintf(vname, sizeof vname, "%d", j - i);
        hsize_t one[1] = {1};
        fzb_dataset(g, vname, FZT_F32, 1, one, NULL, 9, storage, 0);
      }
      if (lk != P_GROUP) {
        if (name_on_layer) {
          H5Gclose(g);
          gpath[strlen(gpath) - strlen("/vars")] = '\0';
          g = fzb_group(f, gpath);
        }
        if (g >= 0) fzb_attr_str(g, "name", layer, fixed);
      }
      if (g >= 0) H5Gclose(g);
    }
    i = j;
  }
}

/* Checkpoint of net z: params fzb_value(1000, k), momentum fzb_value(2000, k). The
 * perturbation of tensor t acts on target t % 16: 0 /params, 1 /momentum, 2 the format
 * attribute, 3 arch, 4.. the integer attributes. Returns 1 if the result must load (only benign
 * changes: float64 storage, int32 attributes, changed values the loader does not check). */
enum { CK_TARGETS = 16 };
static const char *const ck_ints[12] = {"param_count", "momentum_count", "height", "width",
                                        "channels",    "outputs",        "epoch",  "step",
                                        "sgd_steps",   "seed",           "ranks",  "global_batch"};

static int write_ckpt(hid_t f, const fz_net *z, const int *pk, int storage, int fixed,
                      float **want_p, float **want_m) {
  size_t nb = z->nblock, nm = z->nmom;
  float *pv = malloc(nb * sizeof *pv), *mv = malloc((nm ? nm : 1) * sizeof *mv);
  for (size_t k = 0; k < nb; ++k)
    pv[k] = fzb_value(1000, k);
  for (size_t k = 0; k < nm; ++k)
    mv[k] = fzb_value(2000, k);
  int kind[CK_TARGETS];
  for (int i = 0; i < CK_TARGETS; ++i)
    kind[i] = -1;
  for (int t = 0; t < z->np; ++t)
    if (pk[t] >= 0) kind[t % CK_TARGETS] = pk[t];
  int ok = 1;
  hsize_t d1[1] = {nb}, d2[1] = {nm};
  for (int i = 0; i < 2; ++i) {
    const int k = kind[i];
    if (k != -1 && k != P_F64 && k != P_NBT && k != P_REORDER) ok = 0;
  }
  put_tensor(f, "params", "momentum", pv, 1, d1, kind[0], storage, 1000);
  put_tensor(f, "momentum", "params", mv, 1, d2, kind[1], storage, 2000);
  int h, w, c, oh, ow, oc;
  sn_net_input_shape(z->net, &h, &w, &c);
  sn_net_output_shape(z->net, &oh, &ow, &oc);
  if (kind[2] != P_SCALAR)
    fzb_attr_str(f, "format", kind[2] == P_OMIT ? "shardnet" : "shardnet-checkpoint", fixed);
  if (kind[3] != P_SCALAR)
    fzb_attr_str(f, "arch", kind[3] == P_OMIT ? "resnet34" : sn_net_arch(z->net), fixed);
  if (kind[2] == P_OMIT || kind[2] == P_SCALAR || kind[3] == P_OMIT || kind[3] == P_SCALAR) ok = 0;
  fzb_attr_str(f, "version", SN_VERSION, fixed);
  const int64_t vals[12] = {(int64_t)nb, (int64_t)nm, h, w, c, oc, 3, 77, 70, 42, 2, 64};
  for (int i = 0; i < 12; ++i) {
    const int k = kind[4 + i];
    const int checked = i != 1 && i < 6; /* the loader compares these with the net */
    if (k == P_SCALAR || k == P_OMIT) {  /* missing */
      if (i != 1) ok = 0;
      continue;
    }
    if (k == P_STR)
      fzb_attr_str(f, ck_ints[i], "7", fixed);
    else if (k == P_DIM_PLUS)
      fzb_attr_int(f, ck_ints[i], FZT_I64, vals[i] + 1, 0);
    else if (k == P_RANK_DROP)
      fzb_attr_int(f, ck_ints[i], FZT_I32, vals[i], 3);
    else if (k == P_I32)
      fzb_attr_int(f, ck_ints[i], FZT_I32, vals[i], 0);
    else if (k == P_F64)
      fzb_attr_int(f, ck_ints[i], FZT_F64, vals[i], 0);
    else
      fzb_attr_int(f, ck_ints[i], FZT_I64, vals[i], 0);
    if (k == P_STR || k == P_RANK_DROP || k == P_F64) ok = i == 1 ? ok : 0;
    if (k == P_DIM_PLUS && checked) ok = 0;
  }
  *want_p = pv;
  *want_m = mv;
  return ok;
}

/* ---------------------------------------------------------------- entry points */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  sn_h5_init();
  fz_nets_setup();
  dict_setup();
  return 0;
}

static int values_match(float got, float want) {
  return got == want || (isnan(got) && isnan(want)) || (isinf(got) && isinf(want));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  fz_in in = {data, size, 0};
  const unsigned ctrl = fz_u8(&in), opt = fz_u8(&in);
  const int y = (int)(ctrl & 1);
  static const sn_weights_format fmts[4] = {SN_WEIGHTS_AUTO, SN_WEIGHTS_NATIVE, SN_WEIGHTS_TORCH,
                                            SN_WEIGHTS_KERAS};
  const sn_weights_format fmt = fmts[(ctrl >> 1) & 3];
  const int latest = (ctrl >> 3) & 1, fixed = (ctrl >> 4) & 1, layout = (int)(ctrl >> 5);
  const int x = layout == L_CKPT ? 0 : (int)(opt & 1); /* checkpoints: net 0 has momentum */
  const int storage = (int)((opt >> 1) & 3);
  const fz_net *zx = &fz_nets[x];
  int *pk = malloc((size_t)zx->np * sizeof *pk);
  for (int i = 0; i < zx->np; ++i)
    pk[i] = -1;
  const int npert = (int)(fz_u8(&in) % 8);
  int all_benign = 1;
  for (int k = 0; k < npert; ++k) {
    const int t = (int)(fz_u16(&in) % (unsigned)zx->np), kind = (int)(fz_u8(&in) % P_KINDS);
    pk[t] = kind;
    if (!benign(kind)) all_benign = 0;
  }
  const int has_free = fz_left(&in);

  const char *path = fz_path("wh5.h5");
  hid_t f = fzb_create(path, latest);
  float *want_p = NULL, *want_m = NULL;
  int ckpt_ok = 0;
  switch (layout) {
  case L_TORCH:
    write_torch(f, zx, pk, storage, 0);
    break;
  case L_TORCH_ARCH:
    write_torch(f, zx, pk, storage, 1 + fixed);
    break;
  case L_NATIVE:
    write_native(f, zx, pk, storage, fixed);
    break;
  case L_KERAS_ROOT:
  case L_KERAS_MW:
    write_keras(f, zx, pk, storage, fixed, layout == L_KERAS_MW, (opt >> 3) & 1, (opt >> 4) & 1);
    break;
  case L_KERAS3:
    write_keras3(f, zx, pk, storage, fixed, (opt >> 5) & 1);
    break;
  case L_CKPT:
    ckpt_ok = write_ckpt(f, zx, pk, storage, fixed, &want_p, &want_m);
    break;
  default:
    break;
  }
  fzb_free_ops(f, &in, dict, ndict);
  if (H5Fclose(f) < 0) fz_fail("builder: H5Fclose failed");
  fz_check_no_open_h5("building the file");
  const char *emit = getenv("SN_FUZZ_EMIT");
  if (emit) {
    static int seq = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/%d.h5'", path, emit, seq++);
    if (system(cmd) != 0) fz_fail("cannot copy to %s", emit);
  }

  if (layout == L_CKPT) {
    sn_status st = fz_load_checkpoint(0, path);
    const int must = ckpt_ok && !has_free;
    if (must && st != SN_OK) fz_fail("a valid checkpoint was rejected: %s", sn_last_error());
    if (st == SN_OK && must) {
      size_t n, m;
      const float *b = sn_net_param_block(fz_nets[0].net, &n);
      const float *mo = sn_net_momentum_block(fz_nets[0].net, &m);
      for (size_t k = 0; k < n; ++k)
        if (b[k] != want_p[k])
          fz_fail("checkpoint: parameter %zu is %g, wrote %g", k, b[k], want_p[k]);
      for (size_t k = 0; k < m; ++k)
        if (mo[k] != want_m[k])
          fz_fail("checkpoint: momentum %zu is %g, wrote %g", k, mo[k], want_m[k]);
    }
  } else {
    sn_status st = fz_load_weights(y, path, fmt);
    const int compatible = (layout == L_TORCH || layout == L_TORCH_ARCH)
                               ? (fmt == SN_WEIGHTS_AUTO || fmt == SN_WEIGHTS_TORCH)
                           : layout == L_NATIVE
                               ? (fmt == SN_WEIGHTS_AUTO || fmt == SN_WEIGHTS_NATIVE)
                           : layout == L_NONE ? 0
                                              : (fmt == SN_WEIGHTS_AUTO || fmt == SN_WEIGHTS_KERAS);
    int must = compatible && x == y && all_benign && !has_free;
    /* Keras 3 has no reordering that keeps meaning (variables are positional). */
    if (layout == L_KERAS3)
      for (int i = 0; i < zx->np; ++i)
        must = must && pk[i] != P_REORDER;
    if (must && st != SN_OK)
      fz_fail("a valid file (layout %d) was rejected: %s", layout, sn_last_error());
    if (st == SN_OK && must) {
      const fz_net *z = &fz_nets[y];
      for (int i = 0; i < z->np; ++i) {
        const sn_param_info *p = &z->info[i];
        float *e = engine_values(p, i);
        for (int64_t k = 0; k < p->count; ++k)
          if (!values_match(p->data[k], e[k]))
            fz_fail("layout %d: %s %s element %lld is %g, the file has %g", layout, p->layer,
                    roles_k(p->role), (long long)k, p->data[k], e[k]);
        free(e);
      }
    }
    if (layout == L_NONE) fz_load_weights(1 - y, path, SN_WEIGHTS_AUTO);
  }
  free(want_p);
  free(want_m);
  free(pk);
  return 0;
}
