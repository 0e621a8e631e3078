// train_test.cpp - the training step (src/train.c): a NaN in the input makes the loss NaN and the
// step fails with SN_ERR_NUMERIC (what stops `shardnet train`), also in a network without batch
// norm, where only the layers themselves can carry the NaN to the loss (LeNet: convolution, ReLU,
// max pool, dense). The loss and gradients of finite data are compared with PyTorch in
// train_parity_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "shardnet.h"
#include "test_util.h"

TEST(Train, NanInputGivesNanLoss) {
  for (const char *arch : {"lenet", "lenet_bn", "resnet20"}) {
    for (int portable = 0; portable <= 1; ++portable) {
      SCOPED_TRACE(std::string(arch) + (portable ? " portable" : ""));
      sn_model_config cfg;
      sn_model_config_init(&cfg, arch);
      cfg.height = cfg.width = 28;
      cfg.channels = 1;
      sn_net *net = nullptr;
      ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
      sn_engine_options o = *sn_net_options(net);
      o.portable = portable;
      ASSERT_EQ(sn_net_set_options(net, &o), SN_OK);
      ASSERT_EQ(sn_net_plan(net, 4, 1), SN_OK) << sn_last_error();
      sn_train_config tc;
      sn_train_config_init(&tc);
      std::vector<float> x = sntest::uniform(4 * 28 * 28, 7, 0.0f, 1.0f);
      const int32_t labels[4] = {1, 2, 3, 4};
      float loss = 0;
      int correct = 0;
      ASSERT_EQ(sn_net_train_step(net, x.data(), labels, 4, 4, &tc, &loss, &correct), SN_OK)
          << sn_last_error();
      EXPECT_TRUE(std::isfinite(loss));
      x[2 * 28 * 28 + 14 * 28 + 9] = NAN; // image 2
      EXPECT_EQ(sn_net_train_step(net, x.data(), labels, 4, 4, &tc, &loss, &correct),
                SN_ERR_NUMERIC);
      EXPECT_TRUE(std::isnan(loss));
      EXPECT_NE(std::strstr(sn_last_error(), "loss is NaN"), nullptr) << sn_last_error();
      sn_net_destroy(net);
    }
  }
}
