// train_fusion_test.cpp - training-time ReLU fusion (net.c fuse_for_training): a ReLU after a
// batch norm or an add that is its input's only consumer runs inside that layer. Fused and
// unfused plans must give the same losses, logits, gradients and parameters after SGD steps, and
// the fused plan must skip the ReLU layers and use less activation memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/conv_fast.h"
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

sn_net *make(const Case &k) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, k.arch);
  cfg.height = cfg.width = k.hw;
  cfg.channels = k.c;
  cfg.base_width = k.width;
  cfg.classes = 10;
  sn_net *net = nullptr;
  EXPECT_EQ(sn_net_create(&cfg, 11, &net), SN_OK) << sn_last_error();
  return net;
}

int count_skipped_relus(const sn_net *net) {
  int s = 0;
  for (int j = 0; j < net->nlayers; ++j)
    if (net->layers[j].fuse.skip && net->layers[j].ops->type == SN_LAYER_RELU) ++s;
  return s;
}

// Two SGD steps of two plans of the same network on the same batch: bitwise equal losses and
// gradients after each step. Destroys both nets.
void expect_same_steps(sn_net *a, sn_net *b, const Case &k, int n, uint64_t seed) {
  const size_t img = (size_t)k.hw * k.hw * k.c;
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = i + 1;
  sn_train_config tc;
  sn_train_config_init(&tc);
  for (int step = 0; step < 2; ++step) {
    auto x = sntest::randn(n * img, seed + step);
    float la = 0, lb = 0;
    ASSERT_EQ(sn_net_train_step(a, x.data(), labels.data(), n, n, &tc, &la, nullptr), SN_OK)
        << sn_last_error();
    ASSERT_EQ(sn_net_train_step(b, x.data(), labels.data(), n, n, &tc, &lb, nullptr), SN_OK)
        << sn_last_error();
    EXPECT_EQ(la, lb) << k.arch << " step " << step;
    size_t ng;
    float *ga = sn_net_grad_block(a, &ng), *gb = sn_net_grad_block(b, nullptr);
    EXPECT_EQ(0, std::memcmp(ga, gb, ng * sizeof(float))) << k.arch << " grads step " << step;
    ASSERT_EQ(sn_net_sgd_update(a, &tc, 0.1f), SN_OK);
    ASSERT_EQ(sn_net_sgd_update(b, &tc, 0.1f), SN_OK);
  }
  sn_net_destroy(a);
  sn_net_destroy(b);
}
}  // namespace

TEST(TrainFusion, FusedEqualsUnfused) {
  for (const Case &k : kCases) {
    sn_net *a = make(k), *b = make(k);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const int n = 6;
    ASSERT_EQ(sn_net_plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_net_plan_fused(b, n, 1, 0), SN_OK) << sn_last_error();
    EXPECT_GT(count_skipped_relus(a), 0) << k.arch;
    EXPECT_EQ(count_skipped_relus(b), 0) << k.arch;
    EXPECT_LT(a->arena_n, b->arena_n) << k.arch;
    size_t img = (size_t)k.hw * k.hw * k.c;
    std::vector<int32_t> labels = {1, 2, 3, 4, 5, 6};
    sn_train_config tc;
    sn_train_config_init(&tc);
    for (int step = 0; step < 2; ++step) {
      auto x = sntest::randn(n * img, 40 + step);
      float la = 0, lb = 0;
      int ca = 0, cb = 0;
      ASSERT_EQ(sn_net_train_step(a, x.data(), labels.data(), n, n, &tc, &la, &ca), SN_OK)
          << sn_last_error();
      ASSERT_EQ(sn_net_train_step(b, x.data(), labels.data(), n, n, &tc, &lb, &cb), SN_OK)
          << sn_last_error();
      EXPECT_EQ(la, lb) << k.arch << " step " << step;
      EXPECT_EQ(ca, cb);
      const float *ya = a->layers[a->output].y, *yb = b->layers[b->output].y;
      EXPECT_EQ(sntest::max_abs_diff(ya, yb, n * 10), 0.0) << k.arch << " logits step " << step;
      size_t ng;
      float *ga = sn_net_grad_block(a, &ng), *gb = sn_net_grad_block(b, nullptr);
      double scale = sntest::max_abs(gb, ng);
      EXPECT_LE(sntest::max_abs_diff(ga, gb, ng), 1e-6 * scale) << k.arch << " grads step " << step;
      ASSERT_EQ(sn_net_sgd_update(a, &tc, 0.1f), SN_OK);
      ASSERT_EQ(sn_net_sgd_update(b, &tc, 0.1f), SN_OK);
    }
    size_t nb;
    float *pa = sn_net_param_block(a, &nb), *pb = sn_net_param_block(b, nullptr);
    EXPECT_LE(sntest::max_abs_diff(pa, pb, nb), 1e-6 * (1.0 + sntest::max_abs(pb, nb))) << k.arch;
    // Features (the pooled layer) are never fused into and stay readable.
    if (sn_net_feature_dim(a) > 0 && sn_net_features(a) && sn_net_features(b))
      EXPECT_LE(sntest::max_abs_diff(sn_net_features(a), sn_net_features(b),
                                     (size_t)n * sn_net_feature_dim(a)),
                1e-5 * (1.0 + sntest::max_abs(sn_net_features(b), (size_t)n * sn_net_feature_dim(b))))
          << k.arch;
    sn_net_destroy(a);
    sn_net_destroy(b);
  }
}

// Only ReLUs are skipped in a training plan, each into a producer marked fused that no other layer
// reads, and nothing reads a skipped layer; an inference plan after a training plan is still the
// inference fusion (re-planning rebuilds the wiring).
TEST(TrainFusion, ReplanKeepsInferenceFusion) {
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
      for (int i = 0; i < net->layers[c].nin; ++i) EXPECT_NE(net->layers[c].in[i], j);
  }
  size_t img = (size_t)k.hw * k.hw * k.c;
  auto x = sntest::randn(n * img, 3);
  std::vector<float> fused(n * 10), plain(n * 10);
  ASSERT_EQ(sn_net_plan_fused(net, n, 0, SN_FUSE_ALL), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_forward(net, x.data(), n, fused.data()), SN_OK);
  ASSERT_EQ(sn_net_plan_fused(net, n, 0, 0), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_forward(net, x.data(), n, plain.data()), SN_OK);
  EXPECT_LE(sntest::max_abs_diff(fused.data(), plain.data(), fused.size()),
            1e-4 + 1e-4 * sntest::max_abs(plain.data(), plain.size()));
  sn_net_destroy(net);
}

// SN_FUSE_GRAD (net.c share_add_grads): an add's batch-norm inputs and its identity-shortcut
// input share its gradient buffer, masked in place by the add's ReLU, instead of receiving
// copies. With and without it the steps are bitwise equal (the same floats, added in the same
// order), and it applies to every residual block of the ResNets.
TEST(TrainFusion, SharedAddGradientsEqualCopies) {
  for (const Case &k : kCases) {
    sn_net *a = make(k), *b = make(k);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const int n = 5;
    ASSERT_EQ(sn_net_plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_net_plan_fused(b, n, 1, SN_FUSE_ALL & ~SN_FUSE_GRAD), SN_OK) << sn_last_error();
    int shared = 0, adds = 0;
    for (int j = 0; j < a->nlayers; ++j) {
      const sn_layer *l = &a->layers[j];
      if (l->fuse.skip || l->ops->type != SN_LAYER_ADD) continue;
      ++adds;
      shared += l->fuse.shared_in != 0;
      for (int i = 0; i < 2; ++i)
        if (l->fuse.shared_in >> i & 1) {
          const sn_layer *p = &a->layers[l->in[i]];
          EXPECT_TRUE(p->ops->type == SN_LAYER_BN || p->ops->type == SN_LAYER_CONV ||
                      p->ops->type == SN_LAYER_ADD);
          EXPECT_EQ(p->dy, l->dy);
        }
    }
    for (int j = 0; j < b->nlayers; ++j) EXPECT_EQ(b->layers[j].fuse.shared_in, 0);
    if (std::string(k.arch) == "lenet_bn")
      EXPECT_EQ(adds, 0);
    else
      EXPECT_EQ(shared, adds) << k.arch;
    expect_same_steps(a, b, k, n, 60);
  }
}

// Training plans place the gradient buffers by their lifetimes in the backward pass (net.c
// plan_grad_offsets): buffers that overlap in memory are never live at the same time. A buffer
// (the layers sharing one dy pointer) is live from the backward of its highest consumer (the
// loss, before the backward, for the network output) to the backward of its lowest member; the
// backward visits layer k at time L-1-k, and a layer reads its own buffer while writing its
// inputs', so two overlapping buffers need one's last read strictly before the other's first
// write. The gradient half of the arena is also far smaller than the activations'.
TEST(TrainFusion, GradientBuffersNeverOverlapWhileLive) {
  for (const Case &k : kCases) {
    SCOPED_TRACE(k.arch);
    sn_net *net = make(k);
    ASSERT_NE(net, nullptr);
    const int n = 3, L = net->nlayers;
    ASSERT_EQ(sn_net_plan(net, n, 1), SN_OK) << sn_last_error();
    // groups: an add and the inputs sharing its buffer (shared_in bits), joined transitively
    std::vector<int> root(L);
    for (int j = 0; j < L; ++j) root[j] = j;
    auto find = [&](int j) {
      while (root[j] != j) j = root[j];
      return j;
    };
    for (int j = 0; j < L; ++j)
      for (int i = 0; i < 2; ++i)
        if (!net->layers[j].fuse.skip && (net->layers[j].fuse.shared_in >> i & 1)) {
          const int p = net->layers[j].in[i];
          EXPECT_EQ(net->layers[p].dy, net->layers[j].dy);
          root[find(p)] = find(j);
        }
    struct Buf { const float *p; size_t size; int start, end; };
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
        if (x.p + x.size <= y.p || y.p + y.size <= x.p) continue;  // disjoint memory
        EXPECT_TRUE(x.end < y.start || y.end < x.start)
            << "buffers " << a << " [" << x.start << "," << x.end << "] off " << (x.p - net->arena) << " size " << x.size << " and " << b << " [" << y.start << "," << y.end << "] off " << (y.p - net->arena) << " size " << y.size << " overlap while live";
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

// SN_FUSE_BNADD (net.c fuse_bn_into_add): a batch norm read only by an add writes the add's
// output, act(normalize + other input), in one pass; the steps are bitwise those of the two
// passes, on every residual block of the ResNets.
TEST(TrainFusion, BatchNormIntoAddEqualsTwoPasses) {
  for (const Case &k : kCases) {
    SCOPED_TRACE(k.arch);
    sn_net *a = make(k), *b = make(k);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    const int n = 4;
    ASSERT_EQ(sn_net_plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
    ASSERT_EQ(sn_net_plan_fused(b, n, 1, SN_FUSE_ALL & ~SN_FUSE_BNADD), SN_OK) << sn_last_error();
    int fused = 0, adds = 0;
    for (int j = 0; j < a->nlayers; ++j) {
      const sn_layer *l = &a->layers[j];
      if (l->fuse.skip || l->ops->type != SN_LAYER_ADD) continue;
      ++adds;
      if (!l->fuse.from_bn) continue;
      ++fused;
      const sn_layer *p = &a->layers[l->fuse.from_bn - 1];
      EXPECT_STREQ(p->ops->kind, "bn");
      EXPECT_EQ(p->fuse.into_add, j + 1);
    }
    for (int j = 0; j < b->nlayers; ++j) EXPECT_EQ(b->layers[j].fuse.into_add + b->layers[j].fuse.from_bn, 0);
    const std::string arch = k.arch;
    if (arch == "lenet_bn" || arch == "keras_resnet50v2")  // V2's adds take convolutions
      EXPECT_EQ(fused, 0);
    else
      EXPECT_EQ(fused, adds);
    expect_same_steps(a, b, k, n, 80);
  }
}

// SN_FUSE_BNCONV (net.c fuse_bn_into_convs): a batch norm read only by a padded convolution on
// the direct kernels leaves its normalize pass (and fused ReLU) to that convolution, which applies
// it as it copies each image into its padded buffer, in the forward pass and for the weight
// gradient. The steps are bitwise those of the separate pass. With SN_CONV_WGRAD=1 (the weight
// gradient on the packed GEMM, which reads the input in place) the convolutions refuse the map
// at call time and the batch norms write their outputs as before: bitwise the same again.
TEST(TrainFusion, BatchNormIntoConvInputEqualsSeparatePass) {
  for (int forced_gemm = 0; forced_gemm < 2; ++forced_gemm) {
    if (forced_gemm) setenv("SN_CONV_WGRAD", "1", 1);
    for (const Case &k : kCases) {
      SCOPED_TRACE(std::string(k.arch) + (forced_gemm ? " SN_CONV_WGRAD=1" : ""));
      sn_net *a = make(k), *b = make(k);
      ASSERT_NE(a, nullptr);
      ASSERT_NE(b, nullptr);
      const int n = 4;
      ASSERT_EQ(sn_net_plan_fused(a, n, 1, SN_FUSE_ALL), SN_OK) << sn_last_error();
      ASSERT_EQ(sn_net_plan_fused(b, n, 1, SN_FUSE_ALL & ~SN_FUSE_BNCONV), SN_OK)
          << sn_last_error();
      int marked = 0, active = 0;
      for (int j = 0; j < a->nlayers; ++j) {
        const sn_layer *l = &a->layers[j];
        if (l->fuse.skip || !l->fuse.into_conv) continue;
        ++marked;
        EXPECT_STREQ(l->ops->kind, "bn");
        const sn_layer *c = &a->layers[l->fuse.into_conv - 1];
        EXPECT_STREQ(c->ops->kind, "conv");
        EXPECT_EQ(c->in[0], j);
        active += c->ops->input_map_ok(a, c, n, 1);  // asked per call, as the layers do
      }
      for (int j = 0; j < b->nlayers; ++j) EXPECT_EQ(b->layers[j].fuse.into_conv, 0);
      const std::string arch = k.arch;
      if (sn_cpu_has_avx512() && !forced_gemm &&
          (arch == "resnet20" || arch == "resnet18" || arch == "resnet50"))
        EXPECT_GT(active, 0);
      if (forced_gemm || !sn_cpu_has_avx512()) EXPECT_EQ(active, 0);
      EXPECT_EQ(active, marked);  // planned at this batch: every mark is taken
      expect_same_steps(a, b, k, n, 90);
    }
    if (forced_gemm) unsetenv("SN_CONV_WGRAD");
  }
}
