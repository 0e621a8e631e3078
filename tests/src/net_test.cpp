// net_test.cpp - running a planned network (src/net.c): the per-layer profile of its passes.
// Fusion and planning are tested in fuse_test.cpp and plan_test.cpp. Backward is checked per layer
// against finite differences (tests/src/kernels/*_test.cpp) and through whole networks against
// PyTorch (train_parity_test.cpp). Whole-network finite differences in float32 were tried and
// dropped: with batch norm over a few images the loss is so curved that central differences of
// single tensors scatter by 1-50% (resnet20, resnet18, Keras nets at batch 4-16, steps 2e-5..2e-2
// of the loss) while converging to the backward values as the step shrinks - a test that would
// either be flaky or not able to fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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

// resnet20 on 16x16x3 planned for batch 2 with the profile option (training or inference).
sn_net *profiled_resnet20(int training) {
  sn_net *net = make("resnet20", 16, 3, 4);
  if (!net) return nullptr;
  sn_engine_options o = *sn_net_options(net);
  o.profile = 1;
  EXPECT_EQ(sn_net_set_options(net, &o), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_net_plan(net, 2, training), SN_OK) << sn_last_error();
  return net;
}
} // namespace

// sn_net_output after a training step holds the logits its loss came from: their top-1 hits
// are the step's `correct`, and after an inference forward it is the output that was copied out.
TEST(Net, OutputOfTheLastPass) {
  sn_net *net = make("resnet20", 16, 3, 4);
  ASSERT_TRUE(net);
  EXPECT_EQ(sn_net_output(net), nullptr); // not planned
  ASSERT_EQ(sn_net_plan(net, 8, 1), SN_OK) << sn_last_error();
  std::vector<float> x = sntest::randn(8 * 16 * 16 * 3, 11);
  int32_t labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  sn_train_config tc;
  sn_train_config_init(&tc);
  for (int step = 0; step < 3; ++step) {
    float loss;
    int correct = -1;
    ASSERT_EQ(sn_net_train_step(net, x.data(), labels, 8, 8, &tc, &loss, &correct), SN_OK);
    ASSERT_NE(sn_net_output(net), nullptr);
    EXPECT_EQ(sn_topk_hits(sn_net_output(net), 8, 10, 1, labels), correct);
    ASSERT_EQ(sn_net_sgd_update(net, &tc, 0.5f), SN_OK);
  }
  ASSERT_EQ(sn_net_plan(net, 8, 0), SN_OK) << sn_last_error();
  std::vector<float> out(8 * 10);
  ASSERT_EQ(sn_net_forward(net, x.data(), 8, out.data()), SN_OK);
  EXPECT_EQ(std::vector<float>(sn_net_output(net), sn_net_output(net) + 80), out);
  sn_net_destroy(net);
}

// The profile option: every layer run in an inference forward is timed and listed in network
// order (with the convolutions' algorithms); skipped (fused) layers are not. Without the option
// there is no profile.
TEST(Net, ProfileListsEveryRunLayer) {
  sn_net *net = profiled_resnet20(0);
  ASSERT_NE(net, nullptr);
  auto x = sntest::randn(2 * 16 * 16 * 3, 7);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(sn_net_forward(net, x.data(), 2, nullptr), SN_OK);
  sn_layer_profile *rows = nullptr;
  int n = 0;
  long passes = 0;
  ASSERT_EQ(sn_net_profile(net, &rows, &n, &passes), SN_OK) << sn_last_error();
  EXPECT_EQ(passes, 3);
  EXPECT_EQ(sn_net_is_training(net), 0);
  int k = 0, convs = 0;
  for (int j = 0; j < net->nlayers && k < n; ++j) {
    const sn_layer *l = &net->layers[j];
    if (l->fuse.skip) continue;
    EXPECT_STREQ(rows[k].layer, l->name);
    EXPECT_STREQ(rows[k].kind, l->ops->kind);
    EXPECT_GT(rows[k].forward_s, 0.0) << l->name;
    EXPECT_EQ(rows[k].backward_s, 0.0) << l->name;
    if (l->ops->type == SN_LAYER_CONV) {
      ++convs;
      EXPECT_STRNE(rows[k].algorithm, "-") << l->name;
    }
    ++k;
  }
  int run = 0;
  for (int j = 0; j < net->nlayers; ++j)
    run += !net->layers[j].fuse.skip;
  EXPECT_EQ(n, run);
  EXPECT_EQ(k, run);
  EXPECT_GT(convs, 0);
  free(rows);
  sn_net_destroy(net);

  sn_net *quiet = make("resnet20", 16, 3, 4); // without the option: no profile
  ASSERT_NE(quiet, nullptr);
  ASSERT_EQ(sn_net_plan(quiet, 2, 0), SN_OK);
  ASSERT_EQ(sn_net_forward(quiet, x.data(), 2, nullptr), SN_OK);
  sn_layer_profile stale;
  rows = &stale; // reset by the call
  ASSERT_EQ(sn_net_profile(quiet, &rows, &n, &passes), SN_OK);
  EXPECT_EQ(rows, nullptr);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(passes, 0);
  sn_net_destroy(quiet);
}

// The profile option on a training plan: every layer that ran is listed with its forward and
// backward times, and the passes are the training steps.
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
  sn_layer_profile *rows = nullptr;
  int n = 0;
  long passes = 0;
  ASSERT_EQ(sn_net_profile(net, &rows, &n, &passes), SN_OK) << sn_last_error();
  EXPECT_EQ(passes, 2);
  EXPECT_EQ(sn_net_is_training(net), 1);
  int run = 0;
  for (int j = 0; j < net->nlayers; ++j)
    run += !net->layers[j].fuse.skip;
  EXPECT_EQ(n, run);
  double backward = 0;
  for (int i = 0; i < n; ++i) {
    EXPECT_GT(rows[i].forward_s + rows[i].backward_s, 0.0) << rows[i].layer;
    backward += rows[i].backward_s;
  }
  EXPECT_GT(backward, 0.0);
  free(rows);
  sn_net_destroy(net);
}

// NaN in, NaN out, as in PyTorch: with one NaN pixel in image 1 of a batch of 2, every output of
// image 1 is NaN and every output of image 0 finite, in every architecture, with all fusions
// (the fused epilogues) and with none (the separate ReLU and batch-norm passes); on the portable
// kernels for one architecture of each family. A ReLU or max pool mapping NaN to a number (as
// max(NaN, 0) = 0 did) would give image 1 finite, plausible outputs that no check catches.
TEST(Net, NanInputGivesNanOutputEveryArchitecture) {
  for (const char *const *a = sn_arch_names(); *a; ++a) {
    const bool small = !std::strncmp(*a, "lenet", 5) || !std::strncmp(*a, "resnet20", 8) ||
                       !std::strncmp(*a, "resnet32", 8) || !std::strncmp(*a, "resnet56", 8);
    const int hw = small ? 28 : 32, c = small && **a == 'l' ? 1 : 3;
    const bool family = !std::strcmp(*a, "resnet18") || !std::strcmp(*a, "keras_resnet50") ||
                        !std::strcmp(*a, "keras_resnet50v2") || !std::strcmp(*a, "resnet20") ||
                        !std::strcmp(*a, "lenet");
    for (int portable = 0; portable <= family; ++portable)
      for (unsigned fuse : {(unsigned)SN_FUSE_ALL, 0u}) {
        SCOPED_TRACE(std::string(*a) + (portable ? " portable" : "") + " fuse " +
                     std::to_string(fuse));
        sn_net *net = make(*a, hw, c, small ? 0 : 8);
        ASSERT_NE(net, nullptr);
        sn_engine_options o = *sn_net_options(net);
        o.portable = portable;
        o.fuse = fuse;
        ASSERT_EQ(sn_net_set_options(net, &o), SN_OK);
        ASSERT_EQ(sn_net_plan(net, 2, 0), SN_OK) << sn_last_error();
        const size_t img = (size_t)hw * hw * c;
        std::vector<float> x = sntest::randn(2 * img, 5), y(2 * 10, 7.0f);
        x[img + (hw / 2 * hw + hw / 3) * c] = NAN;
        ASSERT_EQ(sn_net_forward(net, x.data(), 2, y.data()), SN_OK) << sn_last_error();
        for (int k = 0; k < 10; ++k) {
          EXPECT_TRUE(std::isfinite(y[k])) << "image 0, class " << k << ": " << y[k];
          EXPECT_TRUE(std::isnan(y[10 + k])) << "image 1, class " << k << ": " << y[10 + k];
        }
        sn_net_destroy(net);
      }
  }
}
