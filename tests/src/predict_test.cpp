// predict_test.cpp - tests of src/predict.c: sn_net_predict equals sn_net_forward, the features,
// sn_softmax and sn_topk called one by one (bit for bit), for models with and without a
// classifier, and refuses what it cannot compute.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {

sn_net *make(const char *arch, int hw, int c, int include_top, sn_pooling pooling) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, arch);
  cfg.height = cfg.width = hw;
  cfg.channels = c;
  cfg.base_width = 4;
  cfg.classes = 10;
  cfg.include_top = include_top;
  cfg.pooling = pooling;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 5, &net), SN_OK) << sn_last_error();
  if (net) EXPECT_EQ(sn_net_plan(net, 4, 0), SN_OK) << sn_last_error();
  return net;
}

size_t output_width(const sn_net *net) {
  int h, w, c;
  sn_net_output_shape(net, &h, &w, &c);
  return (size_t)h * w * c;
}

} // namespace

TEST(Predict, EqualsForwardSoftmaxTopk) {
  sn_net *net = make("resnet20", 16, 3, 1, SN_POOL_AVG);
  ASSERT_NE(net, nullptr);
  const int n = 3, k = 4, classes = 10, d = sn_net_feature_dim(net);
  ASSERT_GT(d, 0);
  auto x = sntest::randn((size_t)n * 16 * 16 * 3, 7);
  // one by one
  std::vector<float> out0(n * classes), feat0((size_t)n * d), probs0(n * classes), val0(n * k);
  std::vector<int32_t> idx0(n * k);
  ASSERT_EQ(sn_net_forward(net, x.data(), n, out0.data()), SN_OK);
  std::memcpy(feat0.data(), sn_net_features(net), feat0.size() * sizeof(float));
  sn_softmax(out0.data(), n, classes, probs0.data());
  sn_topk(probs0.data(), n, classes, k, idx0.data(), val0.data());
  // in one call
  std::vector<float> out(n * classes), feat((size_t)n * d), probs(n * classes), val(n * k);
  std::vector<int32_t> idx(n * k);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, k, out.data(), feat.data(), probs.data(), idx.data(),
                           val.data()),
            SN_OK)
      << sn_last_error();
  EXPECT_EQ(0, std::memcmp(out.data(), out0.data(), out.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(feat.data(), feat0.data(), feat.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(probs.data(), probs0.data(), probs.size() * sizeof(float)));
  EXPECT_EQ(idx, idx0);
  EXPECT_EQ(0, std::memcmp(val.data(), val0.data(), val.size() * sizeof(float)));
  // optional outputs: logits only, then probabilities without top-k
  std::vector<float> out2(n * classes);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, 0, out2.data(), nullptr, nullptr, nullptr, nullptr),
            SN_OK);
  EXPECT_EQ(0, std::memcmp(out2.data(), out0.data(), out2.size() * sizeof(float)));
  std::fill(probs.begin(), probs.end(), 0.0f);
  ASSERT_EQ(
      sn_net_predict(net, x.data(), n, 0, out2.data(), nullptr, probs.data(), nullptr, nullptr),
      SN_OK);
  EXPECT_EQ(0, std::memcmp(probs.data(), probs0.data(), probs.size() * sizeof(float)));
  sn_net_destroy(net);
}

TEST(Predict, NoTopFeaturesAreTheOutput) {
  for (sn_pooling p : {SN_POOL_AVG, SN_POOL_NONE}) {
    sn_net *net = make("resnet20", 16, 3, 0, p);
    ASSERT_NE(net, nullptr);
    const int n = 2;
    const size_t w = output_width(net);
    auto x = sntest::randn((size_t)n * 16 * 16 * 3, 8);
    std::vector<float> out(n * w), feat(n * w, -1.0f);
    ASSERT_EQ(
        sn_net_predict(net, x.data(), n, 0, out.data(), feat.data(), nullptr, nullptr, nullptr),
        SN_OK)
        << sn_last_error();
    EXPECT_EQ(0, std::memcmp(out.data(), feat.data(), out.size() * sizeof(float)));
    // no classifier, no probabilities
    std::vector<float> probs(n * w), val(n);
    std::vector<int32_t> idx(n);
    EXPECT_EQ(sn_net_predict(net, x.data(), n, 1, out.data(), nullptr, probs.data(), idx.data(),
                             val.data()),
              SN_ERR_INVALID);
    EXPECT_EQ(
        sn_net_predict(net, x.data(), n, 0, out.data(), nullptr, probs.data(), nullptr, nullptr),
        SN_ERR_INVALID);
    sn_net_destroy(net);
  }
}

TEST(Predict, RefusesWhatItCannotCompute) {
  sn_net *net = make("lenet", 28, 1, 1, SN_POOL_AVG);
  ASSERT_NE(net, nullptr);
  auto x = sntest::randn(28 * 28, 9);
  std::vector<float> out(10), probs(10), val(11);
  std::vector<int32_t> idx(11);
  EXPECT_EQ(sn_net_predict(net, x.data(), 1, 11, out.data(), nullptr, probs.data(), idx.data(),
                           val.data()),
            SN_ERR_INVALID); // k > classes
  EXPECT_EQ(
      sn_net_predict(net, x.data(), 1, 2, out.data(), nullptr, nullptr, idx.data(), val.data()),
      SN_ERR_INVALID); // top-k without probs
  EXPECT_EQ(sn_net_predict(net, x.data(), 1, 0, nullptr, nullptr, nullptr, nullptr, nullptr),
            SN_ERR_INVALID); // no output buffer
  std::vector<float> feat(84);
  EXPECT_EQ(sn_net_predict(net, x.data(), 1, 0, nullptr, feat.data(), nullptr, nullptr, nullptr),
            SN_ERR_INVALID); // features alone are not an output buffer with a classifier
  EXPECT_NE(std::string(sn_last_error()).find("output buffer"), std::string::npos)
      << sn_last_error();
  EXPECT_EQ(sn_net_predict(net, x.data(), 1, -1, out.data(), nullptr, nullptr, nullptr, nullptr),
            SN_ERR_INVALID);
  EXPECT_EQ(sn_net_predict(net, x.data(), 1, 2, out.data(), nullptr, probs.data(), idx.data(),
                           val.data()),
            SN_OK);
  sn_net_destroy(net);
}

// The classify call without a logits buffer: probs alone, or probs == out, give the probabilities
// and top-k of the full call bit for bit; without a classifier, features alone receive the output.
TEST(Predict, ClassifyIntoProbsAlone) {
  sn_net *net = make("resnet20", 16, 3, 1, SN_POOL_AVG);
  ASSERT_NE(net, nullptr);
  const int n = 4, k = 3, classes = sn_net_classes(net), d = sn_net_feature_dim(net);
  ASSERT_EQ(classes, 10);
  auto x = sntest::randn((size_t)n * 16 * 16 * 3, 11);
  std::vector<float> out(n * classes), probs(n * classes), val(n * k), feat((size_t)n * d);
  std::vector<int32_t> idx(n * k);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, k, out.data(), feat.data(), probs.data(), idx.data(),
                           val.data()),
            SN_OK)
      << sn_last_error();
  // probs only
  std::vector<float> probs1(n * classes, -1.0f), val1(n * k), feat1((size_t)n * d);
  std::vector<int32_t> idx1(n * k);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, k, nullptr, feat1.data(), probs1.data(), idx1.data(),
                           val1.data()),
            SN_OK)
      << sn_last_error();
  EXPECT_EQ(0, std::memcmp(probs1.data(), probs.data(), probs.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(feat1.data(), feat.data(), feat.size() * sizeof(float)));
  EXPECT_EQ(idx1, idx);
  EXPECT_EQ(0, std::memcmp(val1.data(), val.data(), val.size() * sizeof(float)));
  // probs == out: the logits are replaced by the probabilities
  std::vector<float> both(n * classes, -1.0f);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, k, both.data(), nullptr, both.data(), idx1.data(),
                           val1.data()),
            SN_OK);
  EXPECT_EQ(0, std::memcmp(both.data(), probs.data(), probs.size() * sizeof(float)));
  EXPECT_EQ(idx1, idx);
  sn_net_destroy(net);

  net = make("resnet20", 16, 3, 0, SN_POOL_AVG);
  ASSERT_NE(net, nullptr);
  const size_t w = output_width(net);
  std::vector<float> o(n * w), f(n * w, -1.0f);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, 0, o.data(), nullptr, nullptr, nullptr, nullptr),
            SN_OK);
  ASSERT_EQ(sn_net_predict(net, x.data(), n, 0, nullptr, f.data(), nullptr, nullptr, nullptr),
            SN_OK)
      << sn_last_error();
  EXPECT_EQ(0, std::memcmp(o.data(), f.data(), o.size() * sizeof(float)));
  sn_net_destroy(net);
}
