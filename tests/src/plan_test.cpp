// plan_test.cpp - memory planning (src/plan.c): inference activations reuse memory by liveness
// (a convolution may write over its fused residual), training gradient buffers are laid out by
// their lifetimes in the backward pass, and every plan starts from the graph as built.
#include <gtest/gtest.h>

#include <algorithm>
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
} // namespace

// The planner gives a convolution whose fused residual dies with it the residual's buffer when
// the packed GEMM allows (single K block, K = KH*KW*Cin <= 256): in resnet50 the convolution
// the add is fused into (the block's last, or its downsample) runs in place in layer1-2 and in
// layer3's identity blocks, not in layer3.0 (downsample, K = 512) or layer4 (K >= 512); the
// output equals the plan without the add fused.
TEST(Plan, ResidualConvolutionsRunInPlace) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "in-place residuals need the AVX-512 GEMM path";
  sn_net *net = make({"resnet50", 64, 3, 0}, 3, true);
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
  EXPECT_EQ(inplace, 12); // 3 + 4 + 5 blocks
  EXPECT_EQ(separate, 4); // layer3.0, layer4.0-2
  auto x = sntest::randn(2 * 64 * 64 * 3, 11);
  std::vector<float> a(2 * 10), b(2 * 10);
  ASSERT_EQ(sn_net_forward(net, x.data(), 2, a.data()), SN_OK);
  ASSERT_EQ(sntest::plan_fused(net, 2, 0, SN_FUSE_ALL & ~SN_FUSE_ADD), SN_OK);
  ASSERT_EQ(sn_net_forward(net, x.data(), 2, b.data()), SN_OK);
  EXPECT_LE(sntest::max_abs_diff(a.data(), b.data(), a.size()),
            1e-5 + 1e-5 * sntest::max_abs(b.data(), b.size()));
  sn_net_destroy(net);
}

// Training plans place the gradient buffers by their lifetimes in the backward pass
// (plan_grad_offsets): buffers that overlap in memory are never live at the same time. A buffer
// (the layers sharing one dy pointer) is live from the backward of its highest consumer (the
// loss, before the backward, for the network output) to the backward of its lowest member; the
// backward visits layer k at time L-1-k, and a layer reads its own buffer while writing its
// inputs', so two overlapping buffers need one's last read strictly before the other's first
// write. The gradient half of the arena is also far smaller than the activations'.
TEST(Plan, GradientBuffersNeverOverlapWhileLive) {
  for (const Case &k : kCases) {
    SCOPED_TRACE(k.arch);
    sn_net *net = make(k);
    ASSERT_NE(net, nullptr);
    const int n = 3, L = net->nlayers;
    ASSERT_EQ(sn_net_plan(net, n, 1), SN_OK) << sn_last_error();
    // groups: an add and the inputs sharing its buffer (shared_in bits), joined transitively
    std::vector<int> root(L);
    for (int j = 0; j < L; ++j)
      root[j] = j;
    auto find = [&](int j) {
      while (root[j] != j)
        j = root[j];
      return j;
    };
    for (int j = 0; j < L; ++j)
      for (int i = 0; i < 2; ++i)
        if (!net->layers[j].fuse.skip && (net->layers[j].fuse.shared_in >> i & 1)) {
          const int p = net->layers[j].in[i];
          EXPECT_EQ(net->layers[p].dy, net->layers[j].dy);
          root[find(p)] = find(j);
        }
    struct Buf {
      const float *p;
      size_t size;
      int start, end;
    };
    std::vector<Buf> bufs(L, Buf{nullptr, 0, L, -2});
    for (int j = 0; j < L; ++j) {
      const sn_layer *l = &net->layers[j];
      if (l->fuse.skip) continue;
      int last = j;
      for (int c = j + 1; c < L; ++c)
        for (int i = 0; i < net->layers[c].nin; ++i)
          if (!net->layers[c].fuse.skip && net->layers[c].in[i] == j) last = c;
      const int w = j == net->output ? -1 : L - 1 - last, r = L - 1 - j;
      Buf &b = bufs[find(j)];
      b.p = l->dy;
      b.start = std::min(b.start, w);
      b.end = std::max(b.end, r);
      b.size = std::max(b.size, (size_t)n * sn_shape_size(l->out));
    }
    bufs.erase(std::remove_if(bufs.begin(), bufs.end(), [](const Buf &b) { return !b.p; }),
               bufs.end());
    size_t grad_floats = 0;
    for (size_t a = 0; a < bufs.size(); ++a) {
      grad_floats = std::max(grad_floats, (size_t)(bufs[a].p - net->arena) + bufs[a].size);
      for (size_t b = a + 1; b < bufs.size(); ++b) {
        const Buf &x = bufs[a], &y = bufs[b];
        if (x.p + x.size <= y.p || y.p + y.size <= x.p) continue; // disjoint memory
        EXPECT_TRUE(x.end < y.start || y.end < x.start)
            << "buffers " << a << " [" << x.start << "," << x.end << "] off " << (x.p - net->arena)
            << " size " << x.size << " and " << b << " [" << y.start << "," << y.end << "] off "
            << (y.p - net->arena) << " size " << y.size << " overlap while live";
      }
    }
    ASSERT_LE(grad_floats, net->arena_n);
    size_t act = 0;
    for (int j = 0; j < L; ++j)
      if (!net->layers[j].fuse.skip) act += (size_t)n * sn_shape_size(net->layers[j].out);
    if (std::string(k.arch) != "lenet_bn") EXPECT_LT(net->arena_n, act + act / 2);
    sn_net_destroy(net);
  }
}

// Only ReLUs are skipped in a training plan, each into a producer marked fused that no other layer
// reads, and nothing reads a skipped layer; an inference plan after a training plan is still the
// inference fusion (a plan starts from the graph as built).
TEST(Plan, ReplanKeepsInferenceFusion) {
  const Case k = {"resnet20", 16, 3, 4};
  sn_net *net = make(k);
  ASSERT_NE(net, nullptr);
  const int n = 4;
  ASSERT_EQ(sn_net_plan(net, n, 1), SN_OK) << sn_last_error();
  for (int j = 0; j < net->nlayers; ++j) {
    const sn_layer *l = &net->layers[j];
    if (!l->fuse.skip) continue;
    ASSERT_STREQ(l->ops->kind, "relu");
    const sn_layer *p = &net->layers[l->fuse.alias];
    EXPECT_TRUE(p->fuse.relu);
    EXPECT_TRUE(p->ops->type == SN_LAYER_BN || p->ops->type == SN_LAYER_ADD);
    for (int c = 0; c < net->nlayers; ++c)
      for (int i = 0; i < net->layers[c].nin; ++i)
        EXPECT_NE(net->layers[c].in[i], j);
  }
  size_t img = (size_t)k.hw * k.hw * k.c;
  auto x = sntest::randn(n * img, 3);
  std::vector<float> fused(n * 10), plain(n * 10);
  ASSERT_EQ(sntest::plan_fused(net, n, 0, SN_FUSE_ALL), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_forward(net, x.data(), n, fused.data()), SN_OK);
  ASSERT_EQ(sntest::plan_fused(net, n, 0, 0), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_forward(net, x.data(), n, plain.data()), SN_OK);
  EXPECT_LE(sntest::max_abs_diff(fused.data(), plain.data(), fused.size()),
            1e-4 + 1e-4 * sntest::max_abs(plain.data(), plain.size()));
  sn_net_destroy(net);
}

// Every plan starts from the graph as built (the copy kept by sn_net_create): an inference plan
// made after a training plan and after an unfused inference plan gives bitwise the logits of a
// fresh net's first plan.
TEST(Plan, ReplanEqualsFirstPlan) {
  for (const Case &k : kCases) {
    SCOPED_TRACE(k.arch);
    sn_net *a = make(k), *b = make(k);
    ASSERT_TRUE(a && b);
    const int n = 3;
    ASSERT_EQ(sn_net_plan(a, n, 0), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_net_plan(b, n, 1), SN_OK) << sn_last_error();
    ASSERT_EQ(sntest::plan_fused(b, n, 0, 0), SN_OK) << sn_last_error();
    ASSERT_EQ(sntest::plan_fused(b, n, 0, SN_FUSE_ALL), SN_OK) << sn_last_error();
    const auto x = sntest::randn((size_t)n * k.hw * k.hw * k.c, 5);
    std::vector<float> ya(n * 10), yb(n * 10);
    ASSERT_EQ(sn_net_forward(a, x.data(), n, ya.data()), SN_OK);
    ASSERT_EQ(sn_net_forward(b, x.data(), n, yb.data()), SN_OK);
    EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)));
    sn_net_destroy(a);
    sn_net_destroy(b);
  }
}
