// graph_test.cpp - the network object (src/graph.c): counts derived from the layer table.
#include <gtest/gtest.h>

#include "net_impl.h"
#include "shardnet.h"

namespace {
// Multiply-adds per image, layer by layer: a convolution's output elements times KH*KW*Cin, a
// dense layer's inputs times outputs.
int64_t macs_by_layer(const sn_net *net) {
  int64_t macs = 0;
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *l = &net->layers[j];
    const sn_shape *in = sn_layer_in_shape(net, l, 0);
    if (l->ops->type == SN_LAYER_CONV)
      macs += (int64_t)l->out.h * l->out.w * l->out.c * l->kh * l->kw * in->c;
    else if (l->ops->type == SN_LAYER_DENSE)
      macs += (int64_t)l->out.c * (int64_t)sn_shape_size(*in);
  }
  return macs;
}
} // namespace

// sn_net_macs counts each kernel weight once per output pixel: the per-layer formula for every
// architecture, and torchvision's 4.09 GMACs for resnet50 at 224x224.
TEST(Graph, MacsCountEveryConvolutionAndDenseLayer) {
  for (const char *const *a = sn_arch_names(); *a; ++a) {
    sn_model_config cfg;
    sn_model_config_init(&cfg, *a);
    cfg.skip_init = 1;
    cfg.height = cfg.width = 64;
    cfg.base_width = 8;
    sn_net *net = nullptr;
    ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << *a << ": " << sn_last_error();
    EXPECT_EQ(sn_net_macs(net), macs_by_layer(net)) << *a;
    EXPECT_GT(sn_net_macs(net), 0) << *a;
    sn_net_destroy(net);
  }
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet50");
  cfg.skip_init = 1;
  sn_net *net = nullptr;
  ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_net_macs(net), macs_by_layer(net));
  EXPECT_NEAR((double)sn_net_macs(net), 4.09e9, 0.01e9);
  sn_net_destroy(net);
}

// sn_net_output_shape is per image, (1, 1, classes) with a classifier, (1, 1, D) pooled without,
// the last map without pooling; sn_net_classes is the class count, 0 without a classifier.
TEST(Graph, OutputShapeAndClassCount) {
  struct {
    const char *arch;
    int top;
    sn_pooling pool;
    int h, w, c, classes;
  } cases[] = {
      {"resnet18", 1, SN_POOL_AVG, 1, 1, 7, 7},
      {"resnet18", 0, SN_POOL_AVG, 1, 1, 64, 0},
      {"resnet18", 0, SN_POOL_MAX, 1, 1, 64, 0},
      {"resnet18", 0, SN_POOL_NONE, 2, 2, 64, 0},
      {"keras_resnet50", 1, SN_POOL_AVG, 1, 1, 7, 7},
      {"keras_resnet50v2", 0, SN_POOL_NONE, 2, 2, 256, 0},
      {"lenet", 1, SN_POOL_AVG, 1, 1, 7, 7},
      {"resnet20", 1, SN_POOL_AVG, 1, 1, 7, 7},
  };
  for (const auto &k : cases) {
    sn_model_config cfg;
    sn_model_config_init(&cfg, k.arch);
    cfg.skip_init = 1;
    cfg.height = cfg.width = 64;
    cfg.base_width = 8;
    cfg.classes = 7;
    cfg.include_top = k.top;
    cfg.pooling = k.pool;
    sn_net *net = nullptr;
    ASSERT_EQ(sn_net_create(&cfg, 1, &net), SN_OK) << k.arch << ": " << sn_last_error();
    int h, w, c;
    sn_net_output_shape(net, &h, &w, &c);
    EXPECT_EQ(h, k.h) << k.arch << " top " << k.top;
    EXPECT_EQ(w, k.w) << k.arch << " top " << k.top;
    EXPECT_EQ(c, k.c) << k.arch << " top " << k.top;
    EXPECT_EQ(sn_net_classes(net), k.classes) << k.arch << " top " << k.top;
    sn_net_destroy(net);
  }
}
