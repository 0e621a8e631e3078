// dense_test.cpp - the dense layer (src/layers/dense.c) in a network.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "kernels.h"
#include "net_impl.h"
#include "shardnet.h"
#include "test_util.h"

// Inference runs the classifier as a 1x1 convolution on the packed GEMM (weights packed at plan
// time): the logits match sn_dense_forward's loops on the same features to float rounding
// (different summation order: 1e-5 of the logits' scale), for every batch up to the planned one.
TEST(DenseLayer, InferenceOnPackedGemm) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "the packed GEMM needs AVX-512";
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet18");
  cfg.height = cfg.width = 32;
  cfg.channels = 3;
  cfg.base_width = 8;
  cfg.classes = 10;
  cfg.bn_momentum_style = SN_STYLE_KERAS;
  sn_net *net = nullptr;
  ASSERT_EQ(sn_net_create(&cfg, 3, &net), SN_OK) << sn_last_error();
  size_t nb;
  float *params = sn_net_param_block(net, &nb);
  const auto p = sntest::randn(nb, 31, 0.05f); // so that outputs are not the initializer's
  std::copy(p.begin(), p.end(), params);
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
    sn_dense_forward(net->opts.portable, sn_layer_input(net, fc, 0), sn_param_data(net, fc, 0),
                     fc->use_bias ? sn_param_data(net, fc, 1) : nullptr, m, in, out, ref.data());
    EXPECT_LE(sntest::max_abs_diff(y.data(), ref.data(), ref.size()),
              1e-5 * sntest::max_abs(ref.data(), ref.size()))
        << "batch " << m;
  }
  sn_net_destroy(net);
}
