// net_test.cpp - the network machinery: fused inference equals the training-mode graph.
// Backward is checked per layer against finite differences (tests/src/kernels/*_test.cpp) and
// through whole networks against PyTorch (train_parity_test.cpp). Whole-network finite
// differences in float32 were tried and dropped: with batch norm over a few images the loss is
// so curved that central differences of single tensors scatter by 1-50% (resnet20, resnet18,
// Keras nets at batch 4-16, steps 2e-5..2e-2 of the loss) while converging to the backward
// values as the step shrinks - a test that would either be flaky or not able to fail.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/conv_fast.h"
#include "net_impl.h"
#include "shardnet.h"
#include "test_util.h"

namespace {
sn_net *make(const char *arch, int hw, int c, int width) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.height = cfg.width = hw;
  cfg.channels = c;
  cfg.base_width = width;
  cfg.classes = 10;
  cfg.bn_momentum_style = SN_STYLE_KERAS;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 3, &net), SN_OK) << sn_last_error();
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

// resnet20 on 16x16x3 planned for batch 2 with SN_PROFILE=1 (training or inference).
sn_net *profiled_resnet20(int training) {
  setenv("SN_PROFILE", "1", 1);
  sn_net *net = make("resnet20", 16, 3, 4);
  EXPECT_NE(net, nullptr);
  if (net) EXPECT_EQ(sn_net_plan(net, 2, training), SN_OK) << sn_last_error();
  unsetenv("SN_PROFILE");
  return net;
}

struct Case {
  const char *arch;
  int hw, c, width;
};
// Inputs large enough that the last stage keeps 2x2 pixels: batch statistics over a handful of
// values per channel amplify rounding differences (x - mean cancels) far beyond the tolerance.
const Case kCases[] = {{"lenet_bn", 28, 1, 0},       {"resnet20", 16, 3, 4},
                       {"resnet18", 64, 3, 4},       {"resnet50", 64, 3, 4},
                       {"keras_resnet50", 64, 3, 4}, {"keras_resnet50v2", 64, 3, 4}};
}  // namespace

// With Keras-rule momentum 0 the moving statistics become the batch's (biased) statistics, so
// the fused inference graph (BN folded, residual and ReLU fused, padding folded) must reproduce
// the training-mode forward on the same batch. Tolerance: float32 with different summation
// order (folding changes rounding): 1e-4 relative to the logits' scale, MODELS.md section 9.
TEST(Net, FusedInferenceEqualsTrainingGraph) {
  for (const Case &k : kCases) {
    sn_net *train = make(k.arch, k.hw, k.c, k.width);
    ASSERT_NE(train, nullptr);
    const int n = 8;
    ASSERT_EQ(sn_net_plan(train, n, 1), SN_OK) << sn_last_error();
    size_t img = (size_t)k.hw * k.hw * k.c;
    auto x = sntest::randn(n * img, 5);
    std::vector<int32_t> labels = {1, 2, 3, 4, 5, 6, 7, 8};
    sn_train_config tc;
    sn_train_config_init(&tc);
    tc.bn_momentum = 0.0f;  // Keras rule: moving = moving*0 + batch*1
    float loss;
    int correct;
    ASSERT_EQ(sn_net_train_step(train, x.data(), labels.data(), n, n, &tc, &loss, &correct), SN_OK)
        << sn_last_error();
    std::vector<float> ref(train->layers[train->output].y, train->layers[train->output].y + n * 10);

    sn_net *inf = make(k.arch, k.hw, k.c, k.width);
    size_t nb;
    float *src = sn_net_param_block(train, &nb);
    std::copy(src, src + nb, sn_net_param_block(inf, nullptr));
    double tol = 1e-4 + 1e-4 * sntest::max_abs(ref.data(), ref.size());
    for (int mask : {(int)SN_FUSE_ALL, 0, (int)SN_FUSE_PAD, (int)SN_FUSE_BN, (int)SN_FUSE_ADD, (int)SN_FUSE_RELU,
                     (int)SN_FUSE_ALL}) {
      ASSERT_EQ(sn_net_plan_fused(inf, n, 0, mask), SN_OK) << sn_last_error();
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
TEST(Net, BatchNormIntoConvInputsIsBitwise) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "the map runs in the AVX-512 packed GEMM";
  sn_net *a = make("keras_resnet50v2", 64, 3, 4), *b = make("keras_resnet50v2", 64, 3, 4);
  ASSERT_TRUE(a && b);
  const size_t nb = randomize(a, 21);
  const float *src = sn_net_param_block(a, nullptr);
  std::copy(src, src + nb, sn_net_param_block(b, nullptr));
  const int n = 3;
  ASSERT_EQ(sn_net_plan_fused(a, n, 0, SN_FUSE_ALL), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_plan_fused(b, n, 0, SN_FUSE_ALL & ~SN_FUSE_BNIN), SN_OK) << sn_last_error();
  int mapped = 0, bn_run_a = 0, bn_run_b = 0;
  for (int j = 0; j < a->nlayers; ++j) {
    mapped += a->layers[j].fuse.in_bn >= 0;
    bn_run_a += !a->layers[j].fuse.skip && a->layers[j].ops->type == SN_LAYER_BN;
    bn_run_b += !b->layers[j].fuse.skip && b->layers[j].ops->type == SN_LAYER_BN;
  }
  EXPECT_EQ(mapped, 16 + 4);  // every block's conv1, and the 4 projection shortcuts
  EXPECT_EQ(bn_run_a, 1);     // post_bn (read by the pooling) still runs
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

// Inference runs the classifier as a 1x1 convolution on the packed GEMM (weights packed at plan
// time): the logits match sn_dense_forward's loops on the same features to float rounding
// (different summation order: 1e-5 of the logits' scale), for every batch up to the planned one.
TEST(Net, InferenceDenseOnPackedGemm) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "the packed GEMM needs AVX-512";
  sn_net *net = make("resnet18", 32, 3, 8);
  ASSERT_NE(net, nullptr);
  randomize(net, 31);
  const int n = 5;
  ASSERT_EQ(sn_net_plan(net, n, 0), SN_OK) << sn_last_error();
  const sn_layer *fc = &net->layers[net->output];
  ASSERT_STREQ(fc->ops->kind, "dense");
  ASSERT_NE(fc->impl, nullptr);
  const int in = (int)sn_shape_size(*sn_layer_in_shape(net, fc, 0)), out = fc->filters;
  auto x = sntest::randn((size_t)n * 32 * 32 * 3, 32);
  for (int m : {n, 1, 3}) {
    std::vector<float> y(m * out), ref(m * out);
    ASSERT_EQ(sn_net_forward(net, x.data(), m, y.data()), SN_OK);
    sn_dense_forward(sn_layer_input(net, fc, 0), sn_param_data(net, fc, 0),
                     fc->use_bias ? sn_param_data(net, fc, 1) : nullptr, m, in, out, ref.data());
    EXPECT_LE(sntest::max_abs_diff(y.data(), ref.data(), ref.size()),
              1e-5 * sntest::max_abs(ref.data(), ref.size()))
        << "batch " << m;
  }
  sn_net_destroy(net);
}

// SN_PROFILE=1: every layer run in an inference forward is timed and listed (with the
// convolutions' algorithms) on stderr when the plan is freed; skipped (fused) layers are not.
TEST(Net, ProfileListsEveryRunLayer) {
  sn_net *net = profiled_resnet20(0);
  ASSERT_NE(net, nullptr);
  auto x = sntest::randn(2 * 16 * 16 * 3, 7);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(sn_net_forward(net, x.data(), 2, nullptr), SN_OK);
  int run = 0;
  for (int j = 0; j < net->nlayers; ++j) run += !net->layers[j].fuse.skip;
  testing::internal::CaptureStderr();
  sn_net_destroy(net);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("shardnet profile: resnet20, 3 forward passes"), std::string::npos) << err;
  int lines = 0;
  for (size_t p = 0; (p = err.find('\n', p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, run + 2) << err;  // title, header, one line per layer that ran
  EXPECT_NE(err.find(" conv "), std::string::npos) << err;

  sn_net *quiet = make("resnet20", 16, 3, 4);  // without the variable: no table
  ASSERT_EQ(sn_net_plan(quiet, 2, 0), SN_OK);
  ASSERT_EQ(sn_net_forward(quiet, x.data(), 2, nullptr), SN_OK);
  testing::internal::CaptureStderr();
  sn_net_destroy(quiet);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

// SN_PROFILE=1 on a training plan: every layer that ran is listed with its forward and backward
// times, and the title counts the training steps.
TEST(Net, ProfileListsTrainingForwardAndBackward) {
  sn_net *net = profiled_resnet20(1);
  ASSERT_NE(net, nullptr);
  auto x = sntest::randn(2 * 16 * 16 * 3, 8);
  const int32_t labels[2] = {1, 3};
  sn_train_config tc;
  sn_train_config_init(&tc);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(sn_net_train_step(net, x.data(), labels, 2, 2, &tc, nullptr, nullptr), SN_OK)
        << sn_last_error();
  int run = 0;
  for (int j = 0; j < net->nlayers; ++j) run += !net->layers[j].fuse.skip;
  testing::internal::CaptureStderr();
  sn_net_destroy(net);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("shardnet profile: resnet20, 2 training steps"), std::string::npos) << err;
  EXPECT_NE(err.find("fwd ms"), std::string::npos) << err;
  EXPECT_NE(err.find("bwd ms"), std::string::npos) << err;
  int lines = 0;
  for (size_t p = 0; (p = err.find('\n', p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, run + 2) << err;
}

// The planner gives a convolution whose fused residual dies with it the residual's buffer when
// the packed GEMM allows (single K block, K = KH*KW*Cin <= 256): in resnet50 the convolution
// the add is fused into (the block's last, or its downsample) runs in place in layer1-2 and in
// layer3's identity blocks, not in layer3.0 (downsample, K = 512) or layer4 (K >= 512); the
// output equals the plan without the add fused.
TEST(Net, ResidualConvolutionsRunInPlace) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "in-place residuals need the AVX-512 GEMM path";
  sn_net *net = make("resnet50", 64, 3, 0);
  ASSERT_NE(net, nullptr);
  ASSERT_EQ(sn_net_plan(net, 2, 0), SN_OK) << sn_last_error();
  int inplace = 0, separate = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->fuse.skip || l->fuse.residual < 0) continue;
    const bool same = l->y == net->layers[l->fuse.residual].y;
    (same ? inplace : separate)++;
    EXPECT_EQ(same, l->kh * l->kw * sn_layer_in_shape(net, l, 0)->c <= 256) << l->name;
  }
  EXPECT_EQ(inplace, 12);  // 3 + 4 + 5 blocks
  EXPECT_EQ(separate, 4);  // layer3.0, layer4.0-2
  auto x = sntest::randn(2 * 64 * 64 * 3, 11);
  std::vector<float> a(2 * 10), b(2 * 10);
  ASSERT_EQ(sn_net_forward(net, x.data(), 2, a.data()), SN_OK);
  ASSERT_EQ(sn_net_plan_fused(net, 2, 0, SN_FUSE_ALL & ~SN_FUSE_ADD), SN_OK);
  ASSERT_EQ(sn_net_forward(net, x.data(), 2, b.data()), SN_OK);
  EXPECT_LE(sntest::max_abs_diff(a.data(), b.data(), a.size()),
            1e-5 + 1e-5 * sntest::max_abs(b.data(), b.size()));
  sn_net_destroy(net);
}
