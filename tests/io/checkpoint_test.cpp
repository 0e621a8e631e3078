// checkpoint_test.cpp - io/checkpoint.c: a checkpoint reloads bit for bit, and one holding NaN or
// infinity (parameters or momentum) is refused naming the tensor, leaving the net unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

namespace {
sn_net *trained_lenet(uint64_t seed) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "lenet_bn");
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, seed, &net), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_net_plan(net, 4, 1), SN_OK) << sn_last_error();
  sn_train_config tc;
  sn_train_config_init(&tc);
  tc.lr = 0.01f;
  tc.momentum = 0.9f;
  std::vector<float> x = sntest::uniform(4 * 28 * 28, seed, 0.0f, 1.0f);
  const int32_t labels[4] = {0, 1, 2, 3};
  EXPECT_EQ(sn_net_train_step(net, x.data(), labels, 4, 4, &tc, nullptr, nullptr), SN_OK);
  EXPECT_EQ(sn_net_sgd_update(net, &tc, tc.lr), SN_OK);
  return net;
}
std::vector<float> block(sn_net *net, bool momentum) {
  size_t n = 0;
  float *b = momentum ? sn_net_momentum_block(net, &n) : sn_net_param_block(net, &n);
  return std::vector<float>(b, b + n);
}
} // namespace

TEST(Checkpoint, NonFiniteValuesAreRefusedNamingTheTensor) {
  const std::string dir = sntest::temp_dir(), path = dir + "/ck.h5";
  sn_net *src = trained_lenet(1), *dst = trained_lenet(2);
  sn_checkpoint_meta meta = {1, 3, 7, 1, 4}, got;
  ASSERT_EQ(sn_checkpoint_save(src, path.c_str(), &meta), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_checkpoint_load(dst, path.c_str(), &got), SN_OK) << sn_last_error();
  EXPECT_EQ(block(src, false), block(dst, false));
  EXPECT_EQ(block(src, true), block(dst, true));
  EXPECT_EQ(got.step, 3);

  const int conv2 = sn_net_find_param(src, "conv2", SN_ROLE_KERNEL);
  const int bn2 = sn_net_find_param(src, "bn2", SN_ROLE_MOVING_VAR);
  ASSERT_GE(conv2, 0);
  ASSERT_GE(bn2, 0);
  sn_param_info p;
  for (int what = 0; what < 3; ++what) {
    SCOPED_TRACE(what);
    sn_net *bad = trained_lenet(1);
    const char *expect = nullptr;
    if (what == 0) { // a weight
      sn_net_param(bad, conv2, &p);
      p.data[5] = NAN;
      expect = "params of layer conv2 kernel: 1 NaN and 0 infinite";
    } else if (what == 1) { // a moving statistic
      sn_net_param(bad, bn2, &p);
      p.data[0] = INFINITY;
      expect = "params of layer bn2 moving_variance: 0 NaN and 1 infinite";
    } else { // the momentum of a weight
      sn_net_param(bad, conv2, &p);
      float *mom = sn_net_momentum_block(bad, nullptr);
      mom[(p.data - sn_net_param_block(bad, nullptr)) + 2] = NAN;
      expect = "momentum of layer conv2 kernel: 1 NaN and 0 infinite";
    }
    ASSERT_EQ(sn_checkpoint_save(bad, path.c_str(), &meta), SN_OK) << sn_last_error();
    const std::vector<float> before = block(dst, false), mbefore = block(dst, true);
    EXPECT_EQ(sn_checkpoint_load(dst, path.c_str(), &got), SN_ERR_NUMERIC);
    EXPECT_NE(std::strstr(sn_last_error(), expect), nullptr) << sn_last_error();
    EXPECT_NE(std::strstr(sn_last_error(), path.c_str()), nullptr) << sn_last_error();
    EXPECT_EQ(block(dst, false), before);
    EXPECT_EQ(block(dst, true), mbefore);
    sn_net_destroy(bad);
  }
  sn_net_destroy(src);
  sn_net_destroy(dst);
}
