// keras_view_test.cpp - sn_net_keras_layers: the layers Keras lists in model.layers for the
// Keras code each architecture reproduces, in Keras' order (docs/models.md, "Layer names and
// Keras' layer order"). The complete lists are checked against the Keras code in summary_test.cpp;
// here the rules themselves.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "shardnet.h"

namespace {

std::vector<std::string> keras_layers(const char *arch, int include_top = 1) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.include_top = include_top;
  cfg.skip_init = 1;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
  const char **names = nullptr;
  int n = 0;
  EXPECT_EQ(sn_net_keras_layers(net, &names, &n), SN_OK);
  std::vector<std::string> v(names, names + n);
  free(names);
  sn_net_destroy(net);
  return v;
}

size_t pos(const std::vector<std::string> &v, const std::string &name) {
  return std::find(v.begin(), v.end(), name) - v.begin();
}

} // namespace

// Keras' len(model.layers) (docs/models.md, "Parameter counts"; the LeNets: the course's code).
TEST(KerasView, LayerCountsAreKeras) {
  const std::pair<const char *, size_t> counts[] = {{"keras_resnet50", 177},
                                                    {"keras_resnet101", 347},
                                                    {"keras_resnet152", 517},
                                                    {"keras_resnet50v2", 192},
                                                    {"keras_resnet101v2", 379},
                                                    {"keras_resnet152v2", 566},
                                                    {"keras_resnet50_v02", 177},
                                                    {"lenet", 8},
                                                    {"lenet_bn", 12},
                                                    {"lenet_bn_conventional", 12}};
  for (const auto &c : counts)
    EXPECT_EQ(keras_layers(c.first).size(), c.second) << c.first;
}

// Functional models: the input layer first; a block's shortcut and main path interleave by depth
// (the shortcut's 1x1 convolution after the main path's second ReLU), ties in the order the walk
// from the output reaches them: Add([shortcut, x]) visits the shortcut first, the v0.2 code's
// add([x, shortcut]) the main path first.
TEST(KerasView, FunctionalOrderByDepthThenWalk) {
  std::vector<std::string> v = keras_layers("keras_resnet50");
  ASSERT_EQ(v.front(), "input_1");
  EXPECT_LT(pos(v, "conv2_block1_2_relu"), pos(v, "conv2_block1_0_conv"));
  EXPECT_EQ(pos(v, "conv2_block1_0_conv") + 1, pos(v, "conv2_block1_3_conv"));
  EXPECT_EQ(pos(v, "conv2_block1_3_conv") + 1, pos(v, "conv2_block1_0_bn"));
  EXPECT_EQ(pos(v, "conv2_block1_0_bn") + 1, pos(v, "conv2_block1_3_bn"));
  EXPECT_EQ(v.back(), "predictions");
  v = keras_layers("keras_resnet50_v02");
  EXPECT_EQ(pos(v, "res2a_branch2c") + 1, pos(v, "res2a_branch1"));
  EXPECT_EQ(pos(v, "bn2a_branch2c") + 1, pos(v, "bn2a_branch1"));
  EXPECT_EQ(v[4], "activation");
  EXPECT_EQ(v[6], "max_pooling2d");
  EXPECT_EQ(v.back(), "fc1000");
  v = keras_layers("keras_resnet50_v02", 0);
  EXPECT_EQ(v.back(), "global_average_pooling2d");
}

// Keras' automatic names for layers its code leaves unnamed: V2's stride-2 shortcut pools.
TEST(KerasView, UnnamedLayersGetKerasNames) {
  std::vector<std::string> v = keras_layers("keras_resnet50v2");
  EXPECT_LT(pos(v, "max_pooling2d"), pos(v, "conv2_block3_out"));
  EXPECT_LT(pos(v, "max_pooling2d_1"), pos(v, "conv3_block4_out"));
  EXPECT_LT(pos(v, "max_pooling2d_2"), pos(v, "conv4_block6_out"));
  EXPECT_EQ(pos(v, "max_pooling2d_3"), v.size());
}

// Sequential: no input layer; activations given to Conv2D / Dense are not layers of their own.
TEST(KerasView, SequentialLeNets) {
  const std::vector<std::string> plain = {"conv2d",  "max_pooling2d", "conv2d_1", "max_pooling2d_1",
                                          "flatten", "dense",         "dense_1",  "dense_2"};
  EXPECT_EQ(keras_layers("lenet"), plain);
  const std::vector<std::string> bn = {"conv2d",       "batch_normalization",
                                       "activation",   "max_pooling2d",
                                       "conv2d_1",     "batch_normalization_1",
                                       "activation_1", "max_pooling2d_1",
                                       "flatten",      "dense",
                                       "dense_1",      "dense_2"};
  EXPECT_EQ(keras_layers("lenet_bn"), bn);
  EXPECT_EQ(keras_layers("lenet_bn_conventional"), bn);
}

// A torchvision-style net gets the same rule applied to its own graph.
TEST(KerasView, TorchNetsUseTheSameRule) {
  std::vector<std::string> v = keras_layers("resnet18");
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v.front(), "input_1");
  EXPECT_EQ(v.back(), "fc");
  EXPECT_EQ(v[1], "conv1");
}
