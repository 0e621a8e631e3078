// fuse_test.cpp - the planner's fusion passes (src/fuse.c). Inference: the fused graph (zero
// padding, batch norm, residual add and ReLU folded into their neighbours) reproduces the
// training-mode graph, and a batch norm applied by the convolutions reading it is bitwise the
// separate pass. Training: ReLUs and batch norms run inside the layers next to them and adds share
// their gradient buffers; fused and unfused plans must give the same losses, logits, gradients
// and parameters after SGD steps, and the fused plans skip layers and use less memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "net_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {
struct Case {
  const char *arch;
  int hw, c, width;
};
// Inputs large enough that the last stage keeps 2x2 pixels: batch statistics over a handful of
// values per channel amplify rounding differences (x - mean cancels) far beyond the tolerance.
const Case kCases[] = {{"lenet_bn", 28, 1, 0},       {"resnet20", 16, 3, 4},
                       {"resnet18", 64, 3, 4},       {"resnet50", 64, 3, 4},
                       {"keras_resnet50", 64, 3, 4}, {"keras_resnet50v2", 64, 3, 4}};

// k with 10 classes; keras_momentum: the Keras rule for the moving statistics.
sn_net *make(const Case &k, uint64_t seed = 11, bool keras_momentum = false) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, k.arch);
  cfg.height = cfg.width = k.hw;
  cfg.channels = k.c;
  cfg.base_width = k.width;
  cfg.classes = 10;
  if (keras_momentum) cfg.bn_momentum_style = SN_STYLE_KERAS;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, seed, &net), SN_OK) << sn_last_error();
  return net;
}

// Parameters N(0, 0.05^2) from seed, so that outputs are not the initializer's (returns nb).
size_t randomize(sn_net *net, uint64_t seed) {
  size_t nb;
  float *src = sn_net_param_block(net, &nb);
  auto p = sntest::randn(nb, seed, 0.05f);
  std::copy(p.begin(), p.end(), src);
  return nb;
}

int count_skipped_relus(const sn_net *net) {
  int s = 0;
  for (int j = 0; j < net->nlayers; ++j)
    if (net->layers[j].fuse.skip && net->layers[j].ops->type == SN_LAYER_RELU) ++s;
  return s;
}

// Two SGD steps of two plans of the same network on the same batch: bitwise equal losses and
// gradients after each step. Destroys both nets.
void expect_same_steps(sn_net *a, sn_net *b, const Case &k, int n, uint64_t seed) {
  const size_t img = (size_t)k.hw * k.hw * k.c;
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i)
    labels[i] = i + 1;
  sn_train_config tc;
  sn_train_config_init(&tc);
  for (int step = 0; step < 2; ++step) {
    auto x = sntest::randn(n * img, seed + step);
    float la = 0, lb = 0;
    ASSERT_EQ(sn_net_train_step(a, x.data(), labels.data(), n, n, &tc, &la, nullptr), SN_OK)
        << sn_last_error();
    ASSERT_EQ(sn_net_train_step(b, x.data(), labels.data(), n, n, &tc, &lb, nullptr), SN_OK)
        << sn_last_error();
    EXPECT_EQ(la, lb) << k.arch << " step " << step;
    size_t ng;
    float *ga = sn_net_grad_block(a, &ng), *gb = sn_net_grad_block(b, nullptr);
    EXPECT_EQ(0, std::memcmp(ga, gb, ng * sizeof(float))) << k.arch << " grads step " << step;
    ASSERT_EQ(sn_net_sgd_update(a, &tc, 0.1f), SN_OK);
    ASSERT_EQ(sn_net_sgd_update(b, &tc, 0.1f), SN_OK);
  }
  sn_net_destroy(a);
  sn_net_destroy(b);
}
} // namespace

// With Keras-rule momentum 0 the moving statistics become the batch's (biased) statistics, so
// the fused inference graph (BN folded, residual and ReLU fused, padding folded) must reproduce
// the training-mode forward on the same batch. Tolerance: float32 with different summation
// order (folding changes rounding): 1e-4 relative to the logits' scale, as in parity_test.cpp.
TEST(InferenceFusion, FusedEqualsTrainingGraph) {
  for (const Case &k : kCases) {
    sn_net *train = make(k, 3, true);
    ASSERT_NE(train, nullptr);
    const int n = 8;
    ASSERT_EQ(sn_net_plan(train, n, 1), SN_OK) << sn_last_error();
    size_t img = (size_t)k.hw * k.hw * k.c;
    auto x = sntest::randn(n * img, 5);
    std::vector<int32_t> labels = {1, 2, 3, 4, 5, 6, 7, 8};
    sn_train_config tc;
    sn_train_config_init(&tc);
    tc.bn_momentum = 0.0f; // Keras rule: moving = moving*0 + batch*1
    float loss;
    int correct;
    ASSERT_EQ(sn_net_train_step(train, x.data(), labels.data(), n, n, &tc, &loss, &correct), SN_OK)
        << sn_last_error();
    std::vector<float> ref(train->layers[train->output].y, train->layers[train->output].y + n * 10);

    sn_net *inf = make(k, 3, true);
    size_t nb;
    float *src = sn_net_param_block(train, &nb);
    std::copy(src, src + nb, sn_net_param_block(inf, nullptr));
    double tol = 1e-4 + 1e-4 * sntest::max_abs(ref.data(), ref.size());
    for (int mask : {(int)SN_FUSE_ALL, 0, (int)SN_FUSE_PAD, (int)SN_FUSE_BN, (int)SN_FUSE_ADD,
                     (int)SN_FUSE_RELU, (int)SN_FUSE_ALL}) {
      ASSERT_EQ(sntest::plan_fused(inf, n, 0, mask), SN_OK) << sn_last_error();
      std::vector<float> out(n * 10);
      ASSERT_EQ(sn_net_forward(inf, x.data(), n, out.data()), SN_OK);
      EXPECT_LE(sntest::max_abs_diff(out.data(), ref.data(), ref.size()), tol)
          << k.arch << " fusions " << mask;
    }
    sn_net_destroy(train);
    sn_net_destroy(inf);
  }
}

// SN_FUSE_BNIN: V2's pre-activation batch norms (after an add, so not foldable into a
// convolution) are applied by the 1x1 convolutions reading them as they copy their input rows.
// The logits are bitwise those of the plan without it; the batch norms are skipped, so their
// outputs take no arena.
TEST(InferenceFusion, BatchNormIntoConvInputsIsBitwise) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "the map runs in the AVX-512 packed GEMM";
  const Case v2 = {"keras_resnet50v2", 64, 3, 4};
  sn_net *a = make(v2, 3, true), *b = make(v2, 3, true);
  ASSERT_TRUE(a && b);
  const size_t nb = randomize(a, 21);
  const float *src = sn_net_param_block(a, nullptr);
  std::copy(src, src + nb, sn_net_param_block(b, nullptr));
  const int n = 3;
  ASSERT_EQ(sntest::plan_fused(a, n, 0, SN_FUSE_ALL), SN_OK) << sn_last_error();
  ASSERT_EQ(sntest::plan_fused(b, n, 0, SN_FUSE_ALL & ~SN_FUSE_BNIN), SN_OK) << sn_last_error();
  int mapped = 0, bn_run_a = 0, bn_run_b = 0;
  for (int j = 0; j < a->nlayers; ++j) {
    mapped += a->layers[j].fuse.in_bn >= 0;
    bn_run_a += !a->layers[j].fuse.skip && a->layers[j].ops->type == SN_LAYER_BN;
    bn_run_b += !b->layers[j].fuse.skip && b->layers[j].ops->type == SN_LAYER_BN;
  }
  EXPECT_EQ(mapped, 16 + 4); // every block's conv1, and the 4 projection shortcuts
  EXPECT_EQ(bn_run_a, 1);    // post_bn (read by the pooling) still runs
  EXPECT_EQ(bn_run_b, 17);
  EXPECT_LT(a->arena_n, b->arena_n);
  auto x = sntest::randn((size_t)n * 64 * 64 * 3, 22);
  std::vector<float> ya(n * 10), yb(n * 10);
  ASSERT_EQ(sn_net_forward(a, x.data(), n, ya.data()), SN_OK);
  ASSERT_EQ(sn_net_forward(b, x.data(), n, yb.data()), SN_OK);
  EXPECT_EQ(0, memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)));
  sn_net_destroy(a);
  sn_net_destroy(b);
}

TEST(TrainFusion, FusedEqualsUnfused) {
  for (const Case &k : kCases) {
    sn_net *a = make(k), *b = make(k);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const int n = 6;
    ASSERT_EQ(sntest::plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
    ASSERT_EQ(sntest::plan_fused(b, n, 1, 0), SN_OK) << sn_last_error();
    EXPECT_GT(count_skipped_relus(a), 0) << k.arch;
    EXPECT_EQ(count_skipped_relus(b), 0) << k.arch;
    EXPECT_LT(a->arena_n, b->arena_n) << k.arch;
    size_t img = (size_t)k.hw * k.hw * k.c;
    std::vector<int32_t> labels = {1, 2, 3, 4, 5, 6};
    sn_train_config tc;
    sn_train_config_init(&tc);
    for (int step = 0; step < 2; ++step) {
      auto x = sntest::randn(n * img, 40 + step);
      float la = 0, lb = 0;
      int ca = 0, cb = 0;
      ASSERT_EQ(sn_net_train_step(a, x.data(), labels.data(), n, n, &tc, &la, &ca), SN_OK)
          << sn_last_error();
      ASSERT_EQ(sn_net_train_step(b, x.data(), labels.data(), n, n, &tc, &lb, &cb), SN_OK)
          << sn_last_error();
      EXPECT_EQ(la, lb) << k.arch << " step " << step;
      EXPECT_EQ(ca, cb);
      const float *ya = a->layers[a->output].y, *yb = b->layers[b->output].y;
      EXPECT_EQ(sntest::max_abs_diff(ya, yb, n * 10), 0.0) << k.arch << " logits step " << step;
      size_t ng;
      float *ga = sn_net_grad_block(a, &ng), *gb = sn_net_grad_block(b, nullptr);
      double scale = sntest::max_abs(gb, ng);
      EXPECT_LE(sntest::max_abs_diff(ga, gb, ng), 1e-6 * scale) << k.arch << " grads step " << step;
      ASSERT_EQ(sn_net_sgd_update(a, &tc, 0.1f), SN_OK);
      ASSERT_EQ(sn_net_sgd_update(b, &tc, 0.1f), SN_OK);
    }
    size_t nb;
    float *pa = sn_net_param_block(a, &nb), *pb = sn_net_param_block(b, nullptr);
    EXPECT_LE(sntest::max_abs_diff(pa, pb, nb), 1e-6 * (1.0 + sntest::max_abs(pb, nb))) << k.arch;
    // Features (the pooled layer) are never fused into and stay readable.
    if (sn_net_feature_dim(a) > 0 && sn_net_features(a) && sn_net_features(b))
      EXPECT_LE(sntest::max_abs_diff(sn_net_features(a), sn_net_features(b),
                                     (size_t)n * sn_net_feature_dim(a)),
                1e-5 *
                    (1.0 + sntest::max_abs(sn_net_features(b), (size_t)n * sn_net_feature_dim(b))))
          << k.arch;
    sn_net_destroy(a);
    sn_net_destroy(b);
  }
}

// SN_FUSE_GRAD (sn_fuse_share_add_grads): an add's batch-norm inputs and its identity-shortcut
// input share its gradient buffer, masked in place by the add's ReLU, instead of receiving
// copies. With and without it the steps are bitwise equal (the same floats, added in the same
// order), and it applies to every residual block of the ResNets.
TEST(TrainFusion, SharedAddGradientsEqualCopies) {
  for (const Case &k : kCases) {
    sn_net *a = make(k), *b = make(k);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const int n = 5;
    ASSERT_EQ(sntest::plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
    ASSERT_EQ(sntest::plan_fused(b, n, 1, SN_FUSE_ALL & ~SN_FUSE_GRAD), SN_OK) << sn_last_error();
    int shared = 0, adds = 0;
    for (int j = 0; j < a->nlayers; ++j) {
      const sn_layer *l = &a->layers[j];
      if (l->fuse.skip || l->ops->type != SN_LAYER_ADD) continue;
      ++adds;
      shared += l->fuse.shared_in != 0;
      for (int i = 0; i < 2; ++i)
        if (l->fuse.shared_in >> i & 1) {
          const sn_layer *p = &a->layers[l->in[i]];
          EXPECT_TRUE(p->ops->type == SN_LAYER_BN || p->ops->type == SN_LAYER_CONV ||
                      p->ops->type == SN_LAYER_ADD);
          EXPECT_EQ(p->dy, l->dy);
        }
    }
    for (int j = 0; j < b->nlayers; ++j)
      EXPECT_EQ(b->layers[j].fuse.shared_in, 0);
    if (std::string(k.arch) == "lenet_bn")
      EXPECT_EQ(adds, 0);
    else
      EXPECT_EQ(shared, adds) << k.arch;
    expect_same_steps(a, b, k, n, 60);
  }
}

// SN_FUSE_BNADD (fuse_bn_into_add): a batch norm read only by an add writes the add's
// output, act(normalize + other input), in one pass; the steps are bitwise those of the two
// passes, on every residual block of the ResNets.
TEST(TrainFusion, BatchNormIntoAddEqualsTwoPasses) {
  for (const Case &k : kCases) {
    SCOPED_TRACE(k.arch);
    sn_net *a = make(k), *b = make(k);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const int n = 4;
    ASSERT_EQ(sntest::plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
    ASSERT_EQ(sntest::plan_fused(b, n, 1, SN_FUSE_ALL & ~SN_FUSE_BNADD), SN_OK) << sn_last_error();
    int fused = 0, adds = 0;
    for (int j = 0; j < a->nlayers; ++j) {
      const sn_layer *l = &a->layers[j];
      if (l->fuse.skip || l->ops->type != SN_LAYER_ADD) continue;
      ++adds;
      if (!l->fuse.from_bn) continue;
      ++fused;
      const sn_layer *p = &a->layers[l->fuse.from_bn - 1];
      EXPECT_STREQ(p->ops->kind, "bn");
      EXPECT_EQ(p->fuse.into_add, j + 1);
    }
    for (int j = 0; j < b->nlayers; ++j)
      EXPECT_EQ(b->layers[j].fuse.into_add + b->layers[j].fuse.from_bn, 0);
    const std::string arch = k.arch;
    if (arch == "lenet_bn" || arch == "keras_resnet50v2") // V2's adds take convolutions
      EXPECT_EQ(fused, 0);
    else
      EXPECT_EQ(fused, adds);
    expect_same_steps(a, b, k, n, 80);
  }
}

// SN_FUSE_BNCONV (fuse_bn_into_convs): a batch norm read only by a padded convolution on
// the direct kernels leaves its normalize pass (and fused ReLU) to that convolution, which applies
// it as it copies each image into its padded buffer, in the forward pass and for the weight
// gradient. The steps are bitwise those of the separate pass. With conv_wgrad on (the weight
// gradient on the packed GEMM, which reads the input in place) the convolutions refuse the map
// at call time and the batch norms write their outputs as before: bitwise the same again.
TEST(TrainFusion, BatchNormIntoConvInputEqualsSeparatePass) {
  for (int forced_gemm = 0; forced_gemm < 2; ++forced_gemm) {
    for (const Case &k : kCases) {
      SCOPED_TRACE(std::string(k.arch) + (forced_gemm ? " conv_wgrad on" : ""));
      sn_net *a = make(k), *b = make(k);
      ASSERT_NE(a, nullptr);
      ASSERT_NE(b, nullptr);
      for (sn_net *net : {a, b}) {
        sn_engine_options o = *sn_net_options(net);
        o.conv_wgrad = forced_gemm ? SN_CHOICE_ON : SN_CHOICE_AUTO;
        ASSERT_EQ(sn_net_set_options(net, &o), SN_OK) << sn_last_error();
      }
      const int n = 4;
      ASSERT_EQ(sntest::plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
      ASSERT_EQ(sntest::plan_fused(b, n, 1, SN_FUSE_ALL & ~SN_FUSE_BNCONV), SN_OK)
          << sn_last_error();
      int marked = 0, active = 0;
      for (int j = 0; j < a->nlayers; ++j) {
        const sn_layer *l = &a->layers[j];
        if (l->fuse.skip || !l->fuse.into_conv) continue;
        ++marked;
        EXPECT_STREQ(l->ops->kind, "bn");
        const sn_layer *c = &a->layers[l->fuse.into_conv - 1];
        EXPECT_STREQ(c->ops->kind, "conv");
        EXPECT_EQ(c->in[0], j);
        active += c->ops->input_map_ok(a, c, n, 1); // asked per call, as the layers do
      }
      for (int j = 0; j < b->nlayers; ++j)
        EXPECT_EQ(b->layers[j].fuse.into_conv, 0);
      const std::string arch = k.arch;
      if (sn_cpu_has_avx512() && !forced_gemm &&
          (arch == "resnet20" || arch == "resnet18" || arch == "resnet50"))
        EXPECT_GT(active, 0);
      if (forced_gemm || !sn_cpu_has_avx512()) EXPECT_EQ(active, 0);
      EXPECT_EQ(active, marked); // planned at this batch: every mark is taken
      expect_same_steps(a, b, k, n, 90);
    }
  }
}
