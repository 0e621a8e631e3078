// models_test.cpp - architectures: parameter counts (docs/models.md, "Parameter counts"), shapes,
// and the plan/forward machinery on every architecture.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {
struct Counts {
  const char *arch;
  int64_t total, trainable, non_trainable, notop_total;
};
// Keras: Total/Trainable/Non-trainable from docs/models.md, "Parameter counts". torchvision:
// "Params" is the trainable count and "BN running floats" the non-trainable count (docs/models.md).
const Counts kCounts[] = {
    {"resnet18", 11689512 + 9600, 11689512, 9600, 0},
    {"resnet34", 21797672 + 17024, 21797672, 17024, 0},
    {"resnet50", 25557032 + 53120, 25557032, 53120, 0},
    {"resnet101", 44549160 + 105344, 44549160, 105344, 0},
    {"resnet152", 60192808 + 151424, 60192808, 151424, 0},
    {"keras_resnet50", 25636712, 25583592, 53120, 23587712},
    {"keras_resnet101", 44707176, 44601832, 105344, 42658176},
    {"keras_resnet152", 60419944, 60268520, 151424, 58370944},
    {"keras_resnet50v2", 25613800, 25568360, 45440, 23564800},
    {"keras_resnet101v2", 44675560, 44577896, 97664, 42626560},
    {"keras_resnet152v2", 60380648, 60236904, 143744, 58331648},
    {"keras_resnet50_v02", 25636712, 25583592, 53120, 23587712},
    // The course's LeNets (Keras' summary of the course's code, docs/models.md).
    {"lenet", 107786, 107786, 0, 0},
    {"lenet_bn", 107874, 107830, 44, 0},
    {"lenet_bn_conventional", 107874, 107830, 44, 0},
};

sn_net *make(const char *arch, int include_top = 1, int h = 0, int c = 0, int width = 0,
             int classes = 0, sn_pooling pool = SN_POOL_AVG, int skip_init = 0) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.include_top = include_top;
  cfg.height = cfg.width = h;
  cfg.channels = c;
  cfg.base_width = width;
  cfg.classes = classes;
  cfg.pooling = pool;
  cfg.skip_init = skip_init;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 7, &net), SN_OK) << sn_last_error();
  return net;
}
} // namespace

TEST(Models, ParameterCountsMatchModelsMd) {
  for (const Counts &c : kCounts) {
    sn_net *net = make(c.arch, 1, 0, 0, 0, 0, SN_POOL_AVG, 1);
    ASSERT_NE(net, nullptr);
    int64_t t, tr, nt;
    sn_net_param_counts(net, &t, &tr, &nt);
    EXPECT_EQ(t, c.total) << c.arch;
    EXPECT_EQ(tr, c.trainable) << c.arch;
    EXPECT_EQ(nt, c.non_trainable) << c.arch;
    sn_net_destroy(net);
    if (c.notop_total) {
      net = make(c.arch, 0, 0, 0, 0, 0, SN_POOL_AVG, 1);
      sn_net_param_counts(net, &t, &tr, &nt);
      EXPECT_EQ(t, c.notop_total) << c.arch << " notop";
      sn_net_destroy(net);
    }
  }
}

TEST(Models, SummaryPrintsKerasCountLines) {
  sn_net *net = make("keras_resnet50", 1, 0, 0, 0, 0, SN_POOL_AVG, 1);
  char *text = nullptr;
  ASSERT_EQ(sn_net_summary(net, &text), SN_OK);
  std::string s(text);
  free(text);
  EXPECT_NE(s.find("Total params: 25,636,712\n"), std::string::npos);
  EXPECT_NE(s.find("Trainable params: 25,583,592\n"), std::string::npos);
  EXPECT_NE(s.find("Non-trainable params: 53,120\n"), std::string::npos);
  EXPECT_NE(s.find("conv4_block6_3_bn"), std::string::npos);
  sn_net_destroy(net);
}

TEST(Models, StageShapes) {
  int h, w, c;
  sn_net *net = make("keras_resnet50", 0, 0, 0, 0, 0, SN_POOL_NONE, 1);
  sn_net_output_shape(net, &h, &w, &c);
  EXPECT_EQ(h, 7);
  EXPECT_EQ(w, 7);
  EXPECT_EQ(c, 2048);
  sn_net_destroy(net);
  net = make("resnet18", 0, 0, 0, 0, 0, SN_POOL_MAX, 1);
  sn_net_output_shape(net, &h, &w, &c);
  EXPECT_EQ(c, 512);
  EXPECT_EQ(sn_net_feature_dim(net), 512);
  sn_net_destroy(net);
  net = make("lenet_bn");
  sn_net_output_shape(net, &h, &w, &c);
  EXPECT_EQ(c, 10);
  EXPECT_EQ(sn_net_feature_dim(net), 84);
  sn_net_destroy(net);
}

TEST(Models, UnknownArchitectureIsAnError) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet51");
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 1, &net), SN_ERR_INVALID);
  EXPECT_NE(std::string(sn_last_error()).find("resnet51"), std::string::npos);
  EXPECT_EQ(net, nullptr);
}

// The design input size is what a config without an input size gets.
TEST(Models, DesignInputSizes) {
  for (const char *arch : {"resnet50", "keras_resnet50v2", "resnet56", "lenet_bn"}) {
    int h, w, c, nh, nw, nc;
    ASSERT_EQ(sn_arch_input_size(arch, &h, &w, &c), SN_OK) << arch;
    sn_model_config cfg;
    sn_model_config_init(&cfg, arch);
    cfg.base_width = 2;
    sn_net *net = nullptr;
    ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
    sn_net_input_shape(net, &nh, &nw, &nc);
    EXPECT_EQ(h * 100000 + w * 10 + c, nh * 100000 + nw * 10 + nc) << arch;
    sn_net_destroy(net);
  }
  int h, w, c;
  ASSERT_EQ(sn_arch_input_size("resnet32", &h, &w, &c), SN_OK);
  EXPECT_EQ(h * 100000 + w * 10 + c, 32 * 100000 + 320 + 3);
  EXPECT_EQ(sn_arch_input_size("vgg16", &h, &w, &c), SN_ERR_INVALID);
  EXPECT_NE(std::string(sn_last_error()).find("vgg16"), std::string::npos);
}

TEST(Models, TooSmallInputIsAnError) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet50");
  cfg.height = cfg.width = 4;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 1, &net), SN_ERR_SHAPE);
  EXPECT_NE(std::string(sn_last_error()).find("4x4x3"), std::string::npos) << sn_last_error();
  EXPECT_EQ(net, nullptr);
}

// Every architecture, reduced width, runs an inference plan and produces finite outputs, and
// fused inference equals the unfused training-mode graph evaluated with the moving statistics
// (checked in net_test.cpp); here: batch independence (row i of a batch == the image alone).
TEST(Models, EveryArchitectureRunsAndIsBatchIndependent) {
  for (const char *const *a = sn_arch_names(); *a; ++a) {
    std::string arch = *a;
    bool small = arch.rfind("lenet", 0) == 0 || arch == "resnet20" || arch == "resnet32" ||
                 arch == "resnet56" || arch.rfind("plain", 0) == 0;
    int hw = arch.rfind("lenet", 0) == 0 ? 28 : small ? 32 : 64;
    int ch = arch.rfind("lenet", 0) == 0 ? 1 : 3;
    sn_net *net = make(arch.c_str(), 1, hw, ch, arch.rfind("lenet", 0) == 0 ? 0 : 4, 10);
    ASSERT_NE(net, nullptr) << arch;
    ASSERT_EQ(sn_net_plan(net, 3, 0), SN_OK) << sn_last_error();
    size_t img = (size_t)hw * hw * ch;
    auto x = sntest::randn(3 * img, 11);
    std::vector<float> y3(30), y1(10);
    ASSERT_EQ(sn_net_forward(net, x.data(), 3, y3.data()), SN_OK);
    ASSERT_EQ(sn_net_forward(net, x.data() + 2 * img, 1, y1.data()), SN_OK);
    for (int k = 0; k < 10; ++k) {
      EXPECT_TRUE(std::isfinite(y3[k])) << arch;
      EXPECT_NEAR(y3[20 + k], y1[k], 1e-4 * (1 + std::fabs(y1[k]))) << arch;
    }
    sn_net_destroy(net);
  }
}

// plainN is resnetN without its shortcuts: the same convolutions and batch norms, minus the two
// downsampling projections (1x1 convolution + batch norm at the 16->32 and 32->64 transitions)
// and minus every residual addition.
TEST(Models, PlainNetworksAreResNetsWithoutShortcuts) {
  for (const char *n : {"20", "32", "56"}) {
    const std::string plain = std::string("plain") + n, res = std::string("resnet") + n;
    sn_net *p = make(plain.c_str(), 1, 0, 0, 0, 10, SN_POOL_AVG, 1);
    sn_net *r = make(res.c_str(), 1, 0, 0, 0, 10, SN_POOL_AVG, 1);
    ASSERT_NE(p, nullptr);
    ASSERT_NE(r, nullptr);
    int64_t pt, ptr, pnt, rt, rtr, rnt;
    sn_net_param_counts(p, &pt, &ptr, &pnt);
    sn_net_param_counts(r, &rt, &rtr, &rnt);
    // projections: 16*32 + 32*64 weights; their batch norms: 2*(32+64) trainable, as many moving
    const int64_t proj_trainable = 16 * 32 + 32 * 64 + 2 * (32 + 64), proj_moving = 2 * (32 + 64);
    EXPECT_EQ(rtr - ptr, proj_trainable) << plain;
    EXPECT_EQ(rnt - pnt, proj_moving) << plain;
    EXPECT_EQ(sn_net_macs(r) - sn_net_macs(p), (int64_t)16 * 16 * 16 * 32 + 8 * 8 * 32 * 64)
        << plain;
    char *sum = nullptr;
    ASSERT_EQ(sn_net_summary(p, &sum), SN_OK);
    EXPECT_EQ(std::string(sum).find("Add"), std::string::npos) << plain << " has an addition";
    EXPECT_EQ(std::string(sum).find("downsample"), std::string::npos) << plain;
    free(sum);
    ASSERT_EQ(sn_net_summary(r, &sum), SN_OK);
    EXPECT_NE(std::string(sum).find("Add"), std::string::npos) << res;
    free(sum);
    sn_net_destroy(p);
    sn_net_destroy(r);
  }
}
