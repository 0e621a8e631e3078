/* models.c - the architectures, described as graphs of layers (docs/models.md).
 *
 * torchvision resnet18..152 (v1.5, torch names), Keras ResNet50/101/152 v1 and v2 (Keras names),
 * the Keras <= 2.2.4 ResNet50 (keras_applications/resnet50.py, the deep-learning-models v0.2
 * weights), CIFAR-style resnet20/32/56 and their plain
 * (shortcut-free) twins plain20/32/56 (torch names) and the course's Keras Sequential LeNet with
 * and without batch norm, plus the conventional conv -> BN -> ReLU LeNet (Keras names and
 * conventions). base_width scales every stage (tests use reduced widths). Layers the Keras code
 * leaves unnamed get Keras' automatic names (keras_auto: "activation", "activation_1", ...).
 */
#include <stdio.h>
#include <string.h>

#include "net_impl.h"

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if ((x) < 0) return -1;                                                                        \
  } while (0)

enum { FAM_TORCH, FAM_KERAS1, FAM_KERAS2, FAM_KERAS_V02, FAM_CIFAR, FAM_LENET };
/* LeNet variants: where the batch norm sits (docs/models.md, "LeNet"). */
enum { LENET_PLAIN, LENET_BN_COURSE, LENET_BN_CONVENTIONAL };

typedef struct arch_info {
  const char *name;
  int family;     /* FAM_* */
  int bottleneck; /* torchvision */
  int blocks[4];
  int variant;             /* lenet: LENET_*; unused elsewhere */
  const char *keras_model; /* Keras' model name (the summary's title); NULL: torchvision style */
  int plain;               /* cifar: no shortcuts (He et al.'s "plain" networks) */
} arch_info;

static const arch_info archs[] = {
    {"resnet18", FAM_TORCH, 0, {2, 2, 2, 2}, 0, NULL, 0},
    {"resnet34", FAM_TORCH, 0, {3, 4, 6, 3}, 0, NULL, 0},
    {"resnet50", FAM_TORCH, 1, {3, 4, 6, 3}, 0, NULL, 0},
    {"resnet101", FAM_TORCH, 1, {3, 4, 23, 3}, 0, NULL, 0},
    {"resnet152", FAM_TORCH, 1, {3, 8, 36, 3}, 0, NULL, 0},
    {"keras_resnet50", FAM_KERAS1, 1, {3, 4, 6, 3}, 0, "resnet50", 0},
    {"keras_resnet101", FAM_KERAS1, 1, {3, 4, 23, 3}, 0, "resnet101", 0},
    {"keras_resnet152", FAM_KERAS1, 1, {3, 8, 36, 3}, 0, "resnet152", 0},
    {"keras_resnet50v2", FAM_KERAS2, 1, {3, 4, 6, 3}, 0, "resnet50v2", 0},
    {"keras_resnet101v2", FAM_KERAS2, 1, {3, 4, 23, 3}, 0, "resnet101v2", 0},
    {"keras_resnet152v2", FAM_KERAS2, 1, {3, 8, 36, 3}, 0, "resnet152v2", 0},
    {"keras_resnet50_v02", FAM_KERAS_V02, 1, {3, 4, 6, 3}, 0, "resnet50", 0},
    {"resnet20", FAM_CIFAR, 0, {3, 3, 3, 0}, 0, NULL, 0},
    {"resnet32", FAM_CIFAR, 0, {5, 5, 5, 0}, 0, NULL, 0},
    {"resnet56", FAM_CIFAR, 0, {9, 9, 9, 0}, 0, NULL, 0},
    {"plain20", FAM_CIFAR, 0, {3, 3, 3, 0}, 0, NULL, 1},
    {"plain32", FAM_CIFAR, 0, {5, 5, 5, 0}, 0, NULL, 1},
    {"plain56", FAM_CIFAR, 0, {9, 9, 9, 0}, 0, NULL, 1},
    {"lenet", FAM_LENET, 0, {0, 0, 0, 0}, LENET_PLAIN, "sequential", 0},
    {"lenet_bn", FAM_LENET, 0, {0, 0, 0, 0}, LENET_BN_COURSE, "sequential", 0},
    {"lenet_bn_conventional", FAM_LENET, 0, {0, 0, 0, 0}, LENET_BN_CONVENTIONAL, "sequential", 0},
};
#define NARCH ((int)(sizeof archs / sizeof archs[0]))

const char *const *sn_arch_names(void) {
  static const char *names[NARCH + 1];
  if (!names[0])
    for (int i = 0; i < NARCH; ++i)
      names[i] = archs[i].name;
  return names;
}

/* Batch-norm epsilons: torchvision, keras_applications' resnet_common.py, and Keras' default
 * (the v0.2 ResNet50 and the course's LeNet leave it unset). */
static const float TORCH_EPS = 1e-5f, KERAS_EPS = 1.001e-5f, KERAS_DEFAULT_EPS = 1e-3f;

/* Layer name: fmt is "%s<suffix>"; the prefix a is substituted (truncated to fit). */
static const char *nm(char *buf, const char *fmt, const char *a, const char *unused) {
  (void)unused;
  const char *suffix = strstr(fmt, "%s");
  suffix = suffix ? suffix + 2 : fmt;
  size_t ls = strlen(suffix), la = strlen(a);
  if (ls >= SN_MAX_NAME) ls = SN_MAX_NAME - 1;
  if (la + ls >= SN_MAX_NAME) la = SN_MAX_NAME - 1 - ls;
  memcpy(buf, a, la);
  memcpy(buf + la, suffix, ls);
  buf[la + ls] = 0;
  return buf;
}

/* Keras' automatic name for the next unnamed layer of a class whose snake-case name is base:
 * base, base_1, base_2, ... in creation order (tf.keras 2 and Keras 3 count from zero per name in
 * a fresh process; docs/models.md, "Layer names"). Counts the layers built so far. */
static const char *keras_auto(const sn_net *net, const char *base, char *buf) {
  const size_t n = strlen(base);
  int k = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    const char *s = net->layers[j].name;
    if (strncmp(s, base, n)) continue;
    if (!s[n]) {
      ++k;
    } else if (s[n] == '_' && s[n + 1]) {
      const char *d = s + n + 1;
      while (*d >= '0' && *d <= '9')
        ++d;
      k += !*d;
    }
  }
  if (k)
    snprintf(buf, SN_MAX_NAME, "%s_%d", base, k);
  else
    snprintf(buf, SN_MAX_NAME, "%s", base);
  return buf;
}

/* The ReLU of a Keras layer built with activation='relu': a layer of its own here, named
 * "<layer>_relu", that Keras shows inside the layer (keras_folded). */
static int folded_relu(sn_net *net, int x) {
  char b[SN_MAX_NAME];
  int y = sn_add_relu(net, nm(b, "%s_relu", net->layers[x].name, 0), x);
  if (y >= 0) net->layers[y].keras_folded = 1;
  return y;
}

/* ---------------------------------------------------------------- torchvision and CIFAR */

/* A torchvision basic or bottleneck block; plain: the same layers without the shortcut (no
 * addition, no downsampling projection), as He et al.'s plain networks. */
static int torch_block(sn_net *net, int x, const char *p, int planes, int stride, int bottleneck,
                       int downsample, int plain) {
  char b[SN_MAX_NAME];
  int y, sc = x;
  if (!bottleneck) {
    CHECK(y = sn_add_conv(net, nm(b, "%s.conv1", p, 0), x, planes, 3, stride, 1, 0));
    CHECK(y = sn_add_bn(net, nm(b, "%s.bn1", p, 0), y, TORCH_EPS));
    CHECK(y = sn_add_relu(net, nm(b, "%s.relu1", p, 0), y));
    CHECK(y = sn_add_conv(net, nm(b, "%s.conv2", p, 0), y, planes, 3, 1, 1, 0));
    CHECK(y = sn_add_bn(net, nm(b, "%s.bn2", p, 0), y, TORCH_EPS));
  } else {
    CHECK(y = sn_add_conv(net, nm(b, "%s.conv1", p, 0), x, planes, 1, 1, 0, 0));
    CHECK(y = sn_add_bn(net, nm(b, "%s.bn1", p, 0), y, TORCH_EPS));
    CHECK(y = sn_add_relu(net, nm(b, "%s.relu1", p, 0), y));
    CHECK(y = sn_add_conv(net, nm(b, "%s.conv2", p, 0), y, planes, 3, stride, 1, 0));
    CHECK(y = sn_add_bn(net, nm(b, "%s.bn2", p, 0), y, TORCH_EPS));
    CHECK(y = sn_add_relu(net, nm(b, "%s.relu2", p, 0), y));
    CHECK(y = sn_add_conv(net, nm(b, "%s.conv3", p, 0), y, planes * 4, 1, 1, 0, 0));
    CHECK(y = sn_add_bn(net, nm(b, "%s.bn3", p, 0), y, TORCH_EPS));
  }
  if (plain) return sn_add_relu(net, nm(b, "%s.relu", p, 0), y);
  net->layers[y].residual_last_bn = 1;
  if (downsample) {
    CHECK(sc = sn_add_conv(net, nm(b, "%s.downsample.0", p, 0), x, planes * (bottleneck ? 4 : 1), 1,
                           stride, 0, 0));
    CHECK(sc = sn_add_bn(net, nm(b, "%s.downsample.1", p, 0), sc, TORCH_EPS));
  }
  CHECK(y = sn_add_sum(net, nm(b, "%s.add", p, 0), sc, y));
  return sn_add_relu(net, nm(b, "%s.relu", p, 0), y);
}

static int build_torch(sn_net *net, const arch_info *a, int w, int *feat_in) {
  int x;
  int cifar = a->family == FAM_CIFAR;
  if (cifar) {
    CHECK(x = sn_add_conv(net, "conv1", -1, w, 3, 1, 1, 0));
  } else {
    CHECK(x = sn_add_conv(net, "conv1", -1, w, 7, 2, 3, 0));
  }
  CHECK(x = sn_add_bn(net, "bn1", x, TORCH_EPS));
  CHECK(x = sn_add_relu(net, "relu", x));
  if (!cifar) CHECK(x = sn_add_maxpool(net, "maxpool", x, 3, 2, 1, 0));
  int inplanes = w, exp = a->bottleneck ? 4 : 1, nstages = cifar ? 3 : 4;
  for (int s = 0; s < nstages; ++s) {
    int planes = w << s, stride = s == 0 ? 1 : 2;
    for (int i = 0; i < a->blocks[s]; ++i) {
      char p[SN_MAX_NAME];
      snprintf(p, sizeof p, "layer%d.%d", s + 1, i);
      int st = i == 0 ? stride : 1;
      int ds = i == 0 && (st != 1 || inplanes != planes * exp);
      CHECK(x = torch_block(net, x, p, planes, st, a->bottleneck, ds, a->plain));
      inplanes = planes * exp;
    }
  }
  *feat_in = x;
  return x;
}

/* ---------------------------------------------------------------- Keras v1 */

static int keras_block1(sn_net *net, int x, const char *p, int f, int stride, int conv_shortcut) {
  char b[SN_MAX_NAME];
  int sc = x, y;
  if (conv_shortcut) {
    CHECK(sc = sn_add_conv(net, nm(b, "%s_0_conv", p, 0), x, 4 * f, 1, stride, 0, 1));
    CHECK(sc = sn_add_bn(net, nm(b, "%s_0_bn", p, 0), sc, KERAS_EPS));
  }
  CHECK(y = sn_add_conv(net, nm(b, "%s_1_conv", p, 0), x, f, 1, stride, 0, 1));
  CHECK(y = sn_add_bn(net, nm(b, "%s_1_bn", p, 0), y, KERAS_EPS));
  CHECK(y = sn_add_relu(net, nm(b, "%s_1_relu", p, 0), y));
  CHECK(y = sn_add_conv(net, nm(b, "%s_2_conv", p, 0), y, f, 3, 1, 1, 1));
  CHECK(y = sn_add_bn(net, nm(b, "%s_2_bn", p, 0), y, KERAS_EPS));
  CHECK(y = sn_add_relu(net, nm(b, "%s_2_relu", p, 0), y));
  CHECK(y = sn_add_conv(net, nm(b, "%s_3_conv", p, 0), y, 4 * f, 1, 1, 0, 1));
  CHECK(y = sn_add_bn(net, nm(b, "%s_3_bn", p, 0), y, KERAS_EPS));
  net->layers[y].residual_last_bn = 1;
  CHECK(y = sn_add_sum(net, nm(b, "%s_add", p, 0), sc, y));
  return sn_add_relu(net, nm(b, "%s_out", p, 0), y);
}

/* ---------------------------------------------------------------- Keras v2 (pre-activation) */

static int keras_block2(sn_net *net, int x, const char *p, int f, int stride, int conv_shortcut) {
  char b[SN_MAX_NAME];
  int pre, sc, y;
  CHECK(pre = sn_add_bn(net, nm(b, "%s_preact_bn", p, 0), x, KERAS_EPS));
  CHECK(pre = sn_add_relu(net, nm(b, "%s_preact_relu", p, 0), pre));
  if (conv_shortcut) {
    CHECK(sc = sn_add_conv(net, nm(b, "%s_0_conv", p, 0), pre, 4 * f, 1, stride, 0, 1));
  } else if (stride > 1) {
    /* unnamed in the Keras code: max_pooling2d, max_pooling2d_1, ... */
    CHECK(sc = sn_add_maxpool(net, keras_auto(net, "max_pooling2d", b), x, 1, stride, 0, 1));
  } else {
    sc = x;
  }
  CHECK(y = sn_add_conv(net, nm(b, "%s_1_conv", p, 0), pre, f, 1, 1, 0, 0));
  CHECK(y = sn_add_bn(net, nm(b, "%s_1_bn", p, 0), y, KERAS_EPS));
  CHECK(y = sn_add_relu(net, nm(b, "%s_1_relu", p, 0), y));
  CHECK(y = sn_add_pad(net, nm(b, "%s_2_pad", p, 0), y, 1));
  CHECK(y = sn_add_conv(net, nm(b, "%s_2_conv", p, 0), y, f, 3, stride, 0, 0));
  CHECK(y = sn_add_bn(net, nm(b, "%s_2_bn", p, 0), y, KERAS_EPS));
  CHECK(y = sn_add_relu(net, nm(b, "%s_2_relu", p, 0), y));
  CHECK(y = sn_add_conv(net, nm(b, "%s_3_conv", p, 0), y, 4 * f, 1, 1, 0, 1));
  return sn_add_sum(net, nm(b, "%s_out", p, 0), sc, y);
}

static int build_keras(sn_net *net, const arch_info *a, int w, int *feat_in) {
  int v2 = a->family == FAM_KERAS2, x;
  CHECK(x = sn_add_pad(net, "conv1_pad", -1, 3));
  CHECK(x = sn_add_conv(net, "conv1_conv", x, w, 7, 2, 0, 1));
  if (!v2) {
    CHECK(x = sn_add_bn(net, "conv1_bn", x, KERAS_EPS));
    CHECK(x = sn_add_relu(net, "conv1_relu", x));
  }
  CHECK(x = sn_add_pad(net, "pool1_pad", x, 1));
  CHECK(x = sn_add_maxpool(net, "pool1_pool", x, 3, 2, 0, 1));
  for (int s = 0; s < 4; ++s) {
    int f = w << s, n = a->blocks[s];
    char p[SN_MAX_NAME];
    for (int i = 1; i <= n; ++i) {
      snprintf(p, sizeof p, "conv%d_block%d", s + 2, i);
      if (!v2) {
        CHECK(x = keras_block1(net, x, p, f, i == 1 && s > 0 ? 2 : 1, i == 1));
      } else {
        int stride = i == n && s < 3 ? 2 : 1;
        CHECK(x = keras_block2(net, x, p, f, stride, i == 1));
      }
    }
  }
  if (v2) {
    CHECK(x = sn_add_bn(net, "post_bn", x, KERAS_EPS));
    CHECK(x = sn_add_relu(net, "post_relu", x));
  }
  *feat_in = x;
  return x;
}

/* ---------------------------------------------------------------- Keras <= 2.2.4 ResNet50 */

/* keras_applications/resnet50.py's conv_block (conv_shortcut) and identity_block, in the order
 * that code creates the layers: the main path res<S><b>_branch2a/2b/2c (1x1 with the stride, 3x3
 * "same", 1x1), then the shortcut res<S><b>_branch1 (1x1 with the stride); the add takes
 * [main, shortcut]; the ReLUs and adds are unnamed there (activation_k, add_k). */
static int v02_block(sn_net *net, int x, int stage, int block, int f, int stride,
                     int conv_shortcut) {
  char b[SN_MAX_NAME], conv[24], bn[24];
  snprintf(conv, sizeof conv, "res%d%c_branch", stage, 'a' + block);
  snprintf(bn, sizeof bn, "bn%d%c_branch", stage, 'a' + block);
  int y, sc = x;
  CHECK(y = sn_add_conv(net, nm(b, "%s2a", conv, 0), x, f, 1, stride, 0, 1));
  CHECK(y = sn_add_bn(net, nm(b, "%s2a", bn, 0), y, KERAS_DEFAULT_EPS));
  CHECK(y = sn_add_relu(net, keras_auto(net, "activation", b), y));
  CHECK(y = sn_add_conv(net, nm(b, "%s2b", conv, 0), y, f, 3, 1, 1, 1));
  CHECK(y = sn_add_bn(net, nm(b, "%s2b", bn, 0), y, KERAS_DEFAULT_EPS));
  CHECK(y = sn_add_relu(net, keras_auto(net, "activation", b), y));
  CHECK(y = sn_add_conv(net, nm(b, "%s2c", conv, 0), y, 4 * f, 1, 1, 0, 1));
  CHECK(y = sn_add_bn(net, nm(b, "%s2c", bn, 0), y, KERAS_DEFAULT_EPS));
  net->layers[y].residual_last_bn = 1;
  if (conv_shortcut) {
    CHECK(sc = sn_add_conv(net, nm(b, "%s1", conv, 0), x, 4 * f, 1, stride, 0, 1));
    CHECK(sc = sn_add_bn(net, nm(b, "%s1", bn, 0), sc, KERAS_DEFAULT_EPS));
  }
  CHECK(y = sn_add_sum(net, keras_auto(net, "add", b), y, sc));
  return sn_add_relu(net, keras_auto(net, "activation", b), y);
}

/* Stem conv1_pad, conv1 7x7/2 (bias), bn_conv1 (Keras' default eps 1e-3), ReLU, pool1_pad, max
 * pool 3x3/2; stages 2..5 with blocks a, b, ... (the first a conv_block, stride 1 in stage 2). */
static int build_keras_v02(sn_net *net, const arch_info *a, int w) {
  char b[SN_MAX_NAME];
  int x;
  CHECK(x = sn_add_pad(net, "conv1_pad", -1, 3));
  CHECK(x = sn_add_conv(net, "conv1", x, w, 7, 2, 0, 1));
  CHECK(x = sn_add_bn(net, "bn_conv1", x, KERAS_DEFAULT_EPS));
  CHECK(x = sn_add_relu(net, keras_auto(net, "activation", b), x));
  CHECK(x = sn_add_pad(net, "pool1_pad", x, 1));
  CHECK(x = sn_add_maxpool(net, keras_auto(net, "max_pooling2d", b), x, 3, 2, 0, 1));
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < a->blocks[s]; ++i)
      CHECK(x = v02_block(net, x, s + 2, i, w << s, i == 0 && s > 0 ? 2 : 1, i == 0));
  return x;
}

/* ---------------------------------------------------------------- LeNet (the course's) */

/* The course's Keras Sequential LeNet (docs/models.md, "LeNet"), twice Conv2D(f, 5,
 * padding='same', activation='relu') [BatchNormalization(), Activation('relu')] MaxPool2D(), with
 * f = 6 and 16 (scaled by width / 6); the conventional variant's convolutions have no activation
 * (conv -> BN -> ReLU). Every layer has Keras' automatic name. */
static int build_lenet(sn_net *net, const arch_info *a, int w) {
  char b[SN_MAX_NAME];
  int x = -1;
  const int filters[2] = {w, (16 * w + 5) / 6};
  for (int i = 0; i < 2; ++i) {
    CHECK(x = sn_add_conv(net, keras_auto(net, "conv2d", b), x, filters[i], 5, 1, 2, 1));
    if (a->variant != LENET_BN_CONVENTIONAL) CHECK(x = folded_relu(net, x));
    if (a->variant != LENET_PLAIN) {
      CHECK(x = sn_add_bn(net, keras_auto(net, "batch_normalization", b), x, KERAS_DEFAULT_EPS));
      CHECK(x = sn_add_relu(net, keras_auto(net, "activation", b), x));
    }
    CHECK(x = sn_add_maxpool(net, keras_auto(net, "max_pooling2d", b), x, 2, 2, 0, 0));
  }
  return x;
}

/* Flatten, Dense(120, relu), Dense(84, relu) (the feature vector), Dense(classes, softmax). */
static int lenet_top(sn_net *net, int x, int classes) {
  char b[SN_MAX_NAME];
  CHECK(x = sn_add_flatten(net, "flatten", x));
  CHECK(x = sn_add_dense(net, keras_auto(net, "dense", b), x, 120, 1));
  CHECK(x = folded_relu(net, x));
  CHECK(x = sn_add_dense(net, keras_auto(net, "dense", b), x, 84, 1));
  CHECK(x = folded_relu(net, x));
  net->feature = x;
  return sn_add_dense(net, keras_auto(net, "dense", b), x, classes, 1);
}

/* ---------------------------------------------------------------- head */

/* The classifier (include_top) or the no-top pooling, named as the architecture's own code names
 * them; the Keras code of the v0.2 ResNet50 and of the LeNets leaves the no-top pools unnamed. */
static int add_head(sn_net *net, const arch_info *a, int x, int classes) {
  const sn_model_config *cfg = &net->cfg;
  const int torch = a->keras_model == NULL;
  const int autonamed = a->family == FAM_KERAS_V02 || a->family == FAM_LENET;
  char b[SN_MAX_NAME];
  if (cfg->include_top && a->family == FAM_LENET) return lenet_top(net, x, classes);
  if (cfg->include_top) {
    CHECK(x = sn_add_gap(net, torch ? "avgpool" : "avg_pool", x));
    net->feature = x;
    const char *fc = torch ? "fc" : a->family == FAM_KERAS_V02 ? "fc1000" : "predictions";
    return sn_add_dense(net, fc, x, classes, 1);
  }
  if (cfg->pooling == SN_POOL_NONE) return x;
  if (cfg->pooling == SN_POOL_MAX)
    x = sn_add_gmp(net, autonamed ? keras_auto(net, "global_max_pooling2d", b) : "max_pool", x);
  else
    x = sn_add_gap(net,
                   autonamed ? keras_auto(net, "global_average_pooling2d", b)
                   : torch   ? "avgpool"
                             : "avg_pool",
                   x);
  if (x >= 0) net->feature = x;
  return x;
}

/* ---------------------------------------------------------------- entry */

#define CHECKS(x)                                                                                  \
  do {                                                                                             \
    if ((x) < 0) return SN_ERR_SHAPE;                                                              \
  } while (0)

static const arch_info *find_arch(const char *name) {
  for (int i = 0; name && i < NARCH; ++i)
    if (!strcmp(archs[i].name, name)) return &archs[i];
  return NULL;
}

static void design_input(const arch_info *a, int *h, int *w, int *c) {
  *h = *w = a->family == FAM_LENET ? 28 : a->family == FAM_CIFAR ? 32 : 224;
  *c = a->family == FAM_LENET ? 1 : 3;
}

sn_status sn_arch_input_size(const char *arch, int *h, int *w, int *c) {
  const arch_info *a = find_arch(arch);
  if (!a) return sn_error_set(SN_ERR_INVALID, "unknown architecture '%s'", arch ? arch : "(null)");
  design_input(a, h, w, c);
  return SN_OK;
}

static sn_status build(sn_net *net) {
  const sn_model_config *cfg = &net->cfg;
  const arch_info *a = find_arch(cfg->arch);
  if (!a) {
    char list[512] = "";
    for (int i = 0; i < NARCH; ++i) {
      strncat(list, archs[i].name, sizeof list - strlen(list) - 2);
      if (i + 1 < NARCH) strncat(list, " ", sizeof list - strlen(list) - 1);
    }
    return sn_error_set(SN_ERR_INVALID, "unknown architecture '%s' (known: %s)", cfg->arch, list);
  }
  int small = a->family == FAM_CIFAR || a->family == FAM_LENET;
  int def_w = a->family == FAM_LENET ? 6 : a->family == FAM_CIFAR ? 16 : 64;
  int w = cfg->base_width > 0 ? cfg->base_width : def_w;
  int classes = cfg->classes > 0 ? cfg->classes : (small ? 10 : 1000);
  int dh, dw, dc;
  design_input(a, &dh, &dw, &dc);
  net->in.h = cfg->height > 0 ? cfg->height : dh;
  net->in.w = cfg->width > 0 ? cfg->width : net->in.h;
  net->in.c = cfg->channels > 0 ? cfg->channels : dc;
  net->cfg.classes = classes;
  net->cfg.height = net->in.h;
  net->cfg.width = net->in.w;
  net->cfg.channels = net->in.c;
  net->cfg.base_width = w;
  net->style = a->keras_model ? SN_STYLE_KERAS : SN_STYLE_TORCH;
  net->bn_style = net->style;
  net->keras_model = a->keras_model;
  net->keras_sequential = a->family == FAM_LENET;
  net->preprocess = a->family == FAM_KERAS1 || a->family == FAM_KERAS_V02 ? SN_PRE_CAFFE
                    : a->family == FAM_KERAS2                             ? SN_PRE_TF
                    : a->family == FAM_TORCH                              ? SN_PRE_TORCH
                                                                          : SN_PRE_UNIT;
  if (net->in.h < 8 || net->in.w < 8 || net->in.c < 1 || net->in.h > 8192 || net->in.w > 8192 ||
      net->in.c > 64 || w > 4096 || classes > 1000000)
    return sn_error_set(SN_ERR_SHAPE, "%s: input %dx%dx%d, width %d or %d classes out of range",
                        a->name, net->in.h, net->in.w, net->in.c, w, classes);

  int x, feat_in = -1;
  if (a->family == FAM_TORCH || a->family == FAM_CIFAR)
    x = build_torch(net, a, w, &feat_in);
  else if (a->family == FAM_LENET)
    x = build_lenet(net, a, w);
  else if (a->family == FAM_KERAS_V02)
    x = build_keras_v02(net, a, w);
  else
    x = build_keras(net, a, w, &feat_in);
  if (x < 0 || (x = add_head(net, a, x, classes)) < 0) return SN_ERR_SHAPE;
  (void)feat_in;
  net->output = x;
  return SN_OK;
}

void sn_model_config_init(sn_model_config *cfg, const char *arch) {
  memset(cfg, 0, sizeof *cfg);
  cfg->arch = arch;
  cfg->include_top = 1;
  cfg->pooling = SN_POOL_AVG;
  cfg->bn_momentum_style = -1;
}

sn_status sn_net_create(const sn_model_config *cfg, uint64_t seed, sn_net **out) {
  *out = NULL;
  if (!cfg || !cfg->arch) return sn_error_set(SN_ERR_INVALID, "sn_net_create: no architecture");
  sn_net *net = NULL;
  sn_status s = sn_net_new(cfg, seed, &net);
  if (s == SN_OK) s = build(net);
  if (s == SN_OK) s = sn_net_finish_graph(net);
  if (s != SN_OK) {
    sn_net_destroy(net);
    return s;
  }
  *out = net;
  return SN_OK;
}
