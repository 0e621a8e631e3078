// relu_test.cpp - the ReLU of src/kernels/relu.h and every kernel path that applies it: the
// separate ReLU, add + ReLU, the batch-norm passes with a fused ReLU (inference affine, training
// normalize, normalize + add), every prepared inference convolution's epilogue (packed GEMM 1x1
// and im2col, Winograd F(4x4) and F(2x2), the direct tiles, the generic path), the training
// convolutions' epilogues (direct tiles, Winograd, packed GEMM) and the input maps (a batch norm
// + ReLU applied as a convolution reads its input, inference and training), AVX-512 and portable.
//
// ReLU(NaN) must be NaN, as in PyTorch, so that a NaN reaches the output and loss checks instead
// of becoming a plausible 0 (max(NaN, 0) gave 0). For every other value the result must be
// bitwise what the kernels gave before: x > 0 ? x : +0 (-0 included). Each path gets a NaN in
// its input (and its residual, where it has one); every output that depends on it must be NaN.
// The other outputs stay finite except where an algorithm's transform mixes neighbours
// (Winograd spreads a NaN over its whole tile; a batch norm's statistics over its channel).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "conv_check.h"
#include "kernel_check.h"
#include "kernels.h"
#include "kernels/relu.h"
#include "test_util.h"

using kcheck::fvec;

namespace {
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
// The ReLU the kernels computed before NaN propagated, for the values that are not NaN.
float old_relu(float x) { return x > 0.0f ? x : 0.0f; }

// Special values: both zeros, the smallest and largest normals and subnormals of both signs,
// infinities and NaNs with payloads of both signs.
fvec specials() {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  fvec v = {0.0f,
            -0.0f,
            1.0f,
            -1.0f,
            std::numeric_limits<float>::denorm_min(),
            -std::numeric_limits<float>::denorm_min(),
            std::numeric_limits<float>::min(),
            -std::numeric_limits<float>::min(),
            std::numeric_limits<float>::max(),
            -std::numeric_limits<float>::max(),
            INFINITY,
            -INFINITY,
            qnan,
            -qnan};
  uint32_t payload = 0x7fc12345u, snan = 0x7f800001u, nsnan = 0xff812345u;
  float f;
  std::memcpy(&f, &payload, 4);
  v.push_back(f);
  std::memcpy(&f, &snan, 4);
  v.push_back(f);
  std::memcpy(&f, &nsnan, 4);
  v.push_back(f);
  fvec r = sntest::randn(40, 1); // and ordinary values, enough for a masked tail
  v.insert(v.end(), r.begin(), r.end());
  return v;
}

// y = relu(x) for every special value: NaN for NaN, else bitwise old_relu.
::testing::AssertionResult relu_of(const fvec &x, const fvec &y) {
  for (size_t i = 0; i < x.size(); ++i) {
    const bool ok = std::isnan(x[i]) ? (bool)std::isnan(y[i]) : bits(y[i]) == bits(old_relu(x[i]));
    if (!ok)
      return ::testing::AssertionFailure()
             << "relu(" << x[i] << " = 0x" << std::hex << bits(x[i]) << ") gave 0x" << bits(y[i]);
  }
  return ::testing::AssertionSuccess();
}

// The paths a kernel has on this CPU: portable, and AVX-512 where the CPU has it.
std::vector<int> paths() {
  std::vector<int> p = {kcheck::kPortable};
  if (sn_cpu_has_avx512()) p.push_back(kcheck::kSimd);
  return p;
}
} // namespace

TEST(KernelRelu, Semantics) {
  const fvec x = specials();
  fvec y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = sn_relu(x[i]);
  EXPECT_TRUE(relu_of(x, y));
  for (int p : paths()) {
    SCOPED_TRACE(p == kcheck::kSimd ? "AVX-512" : "portable");
    fvec yk(x.size(), 7.0f);
    sn_relu_forward(p, x.data(), x.size(), yk.data());
    EXPECT_TRUE(relu_of(x, yk));
    // add + ReLU: x + 0 is x for every special value but -0 (+0 then, which relu maps to +0 too)
    const fvec zero(x.size(), 0.0f);
    fvec ya(x.size(), 7.0f);
    sn_add_forward(p, x.data(), zero.data(), x.size(), 1, ya.data());
    EXPECT_TRUE(relu_of(x, ya));
  }
}

// The backward mask is unchanged: dy where y > 0, so a NaN output passes no gradient.
TEST(KernelRelu, BackwardMaskUnchanged) {
  const fvec y = specials();
  const fvec dy = sntest::randn(y.size(), 2);
  for (int p : paths()) {
    fvec dx(y.size(), 7.0f), acc(y.size(), 1.0f);
    sn_relu_backward(p, y.data(), dy.data(), y.size(), dx.data());
    sn_relu_backward_acc(p, y.data(), dy.data(), y.size(), acc.data());
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_EQ(y[i] > 0.0f ? dy[i] : 0.0f, dx[i]) << i;
      EXPECT_EQ(1.0f + (y[i] > 0.0f ? dy[i] : 0.0f), acc[i]) << i;
    }
  }
}

// Batch norm with a fused ReLU: inference (sn_bn_affine), training (sn_bn_normalize_relu) and
// normalize + add + ReLU (sn_bn_normalize_add), with a NaN in x and one in the residual. In
// inference the NaN stays in its element; in training the mean over the channel is NaN too.
TEST(KernelRelu, BatchNormPaths) {
  const size_t rows = 300;
  const int c = 70; // 4 vectors of 16 and a tail
  fvec x = sntest::randn(rows * c, 3), res = sntest::randn(rows * c, 4);
  fvec scale = sntest::uniform(c, 5, 0.5f, 1.5f), shift = sntest::randn(c, 6);
  fvec mean = sntest::randn(c, 7, 0.1f), invstd = sntest::uniform(c, 8, 0.5f, 2.0f);
  const size_t bad = 17 * c + 33, bad_res = 200 * c + 65;
  x[bad] = NAN;
  res[bad_res] = NAN;
  for (int p : paths()) {
    SCOPED_TRACE(p == kcheck::kSimd ? "AVX-512" : "portable");
    fvec y(rows * c, 7.0f);
    sn_bn_affine(p, x.data(), rows, c, scale.data(), shift.data(), 1, y.data());
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_EQ(i == bad, (bool)std::isnan(y[i])) << "affine " << i;
    fvec yt(rows * c, 7.0f);
    sn_bn_normalize_relu(p, x.data(), rows, c, mean.data(), invstd.data(), scale.data(),
                         shift.data(), yt.data());
    EXPECT_TRUE(std::isnan(yt[bad]));
    fvec ya(rows * c, 7.0f);
    sn_bn_normalize_add(p, x.data(), rows, c, mean.data(), invstd.data(), scale.data(),
                        shift.data(), res.data(), 1, ya.data());
    EXPECT_TRUE(std::isnan(ya[bad]));
    EXPECT_TRUE(std::isnan(ya[bad_res]));
    for (size_t i = 0; i < ya.size(); ++i)
      if (i != bad && i != bad_res) ASSERT_FALSE(std::isnan(ya[i])) << "normalize+add " << i;
  }
}

namespace {
// A 3x3 "same" convolution (or the shape's own kernel) whose input has a NaN in pixel (py, px)
// of image img, channel ci: the outputs whose window covers that pixel, all channels.
std::vector<char> reached(const sn_conv_geom &g, int img, int py, int px) {
  std::vector<char> r((size_t)g.n * g.oh * g.ow * g.cout, 0);
  for (int oy = 0; oy < g.oh; ++oy)
    for (int ox = 0; ox < g.ow; ++ox) {
      const int ky = py - (oy * g.sh - g.pt), kx = px - (ox * g.sw - g.pl);
      if (ky < 0 || ky >= g.kh || kx < 0 || kx >= g.kw) continue;
      for (int co = 0; co < g.cout; ++co)
        r[(((size_t)img * g.oh + oy) * g.ow + ox) * g.cout + co] = 1;
    }
  return r;
}

// Every reached output is NaN; with exact = true every other output is finite.
::testing::AssertionResult nan_exactly(const fvec &y, const std::vector<char> &r, bool exact) {
  size_t hit = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i] && !std::isnan(y[i]))
      return ::testing::AssertionFailure() << "output " << i << " = " << y[i] << ", not NaN";
    if (exact && !r[i] && !std::isfinite(y[i]))
      return ::testing::AssertionFailure() << "output " << i << " = " << y[i] << " not reached";
    hit += r[i];
  }
  if (!hit) return ::testing::AssertionFailure() << "no output reached";
  return ::testing::AssertionSuccess();
}

struct NanCase {
  convcheck::ImplShape s;
  sn_conv_algo algo;
  const char *impl; // the prepared convolution's name with AVX-512
};
} // namespace

// Every prepared inference convolution with a fused ReLU (and bias, and a residual): a NaN in the
// input reaches every output of its receptive field, a NaN in the residual its own output.
TEST(KernelRelu, PreparedConvolutions) {
  const NanCase cases[] = {
      {{2, 9, 9, 17, 1, 1, 0, 0, 0, 0, 40}, SN_CONV_GEMM, "gemm1x1"},
      {{2, 9, 9, 17, 3, 1, 1, 1, 1, 1, 40}, SN_CONV_GEMM, "im2col"},
      {{2, 12, 12, 16, 3, 1, 1, 1, 1, 1, 32}, SN_CONV_WINOGRAD, "winograd4x4"},
      {{2, 12, 12, 16, 3, 1, 1, 1, 1, 1, 32}, SN_CONV_WINOGRAD2, "winograd2x2"},
      {{2, 12, 12, 16, 3, 1, 1, 1, 1, 1, 16}, SN_CONV_DIRECT, "direct"},
      {{2, 15, 15, 3, 7, 2, 3, 3, 3, 3, 16}, SN_CONV_DIRECT, "direct"}, // stem
      {{2, 9, 9, 17, 3, 1, 1, 1, 1, 1, 40}, SN_CONV_GENERIC, "generic"},
  };
  for (const NanCase &k : cases) {
    const convcheck::ImplShape &s = k.s;
    const std::string what = convcheck::str(s) + " " + convcheck::algo_name(k.algo);
    SCOPED_TRACE(what);
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, s.n, s.h, s.w, s.cin, s.k, s.k, s.s, s.s, s.pt,
                                   s.pl, s.pb, s.pr, s.cout));
    const size_t K = (size_t)s.k * s.k * s.cin, ny = (size_t)s.n * g.oh * g.ow * s.cout;
    fvec x = sntest::randn((size_t)s.n * s.h * s.w * s.cin, 9);
    fvec w = sntest::randn(K * s.cout, 10, std::sqrt(2.0f / (float)K)),
         b = sntest::randn(s.cout, 11);
    fvec res = sntest::randn(ny, 12);
    const int py = s.h / 2, px = s.w / 2 - 1;
    x[(((size_t)1 * s.h + py) * s.w + px) * s.cin + 2] = NAN; // image 1
    std::vector<char> r = reached(g, 1, py, px);
    const size_t bad_res = 5 * (size_t)s.cout + 3; // image 0
    res[bad_res] = NAN;
    r[bad_res] = 1;
    sn_conv_impl *c = nullptr;
    ASSERT_EQ(0, sn_conv_prepare_algo(&g, w.data(), b.data(), k.algo, &c));
    if (sn_cpu_has_avx512()) EXPECT_STREQ(k.impl, sn_conv_impl_name(c));
    std::vector<float> ws(sn_conv_impl_workspace(c) + 1);
    fvec y(ny, 7.0f);
    sn_conv_impl_forward(c, s.n, x.data(), res.data(), 1, y.data(), ws.data());
    const bool wino = std::strncmp(sn_conv_impl_name(c), "winograd", 8) == 0;
    EXPECT_TRUE(nan_exactly(y, r, !wino)) << sn_conv_impl_name(c);
    sn_conv_impl_destroy(c);
  }
}

// The training convolutions (sn_conv_forward) with a fused ReLU on each forced algorithm.
TEST(KernelRelu, TrainingConvolutions) {
  using convcheck::forced;
  using convcheck::kAuto;
  using convcheck::kOff;
  using convcheck::kOn;
  struct TC {
    convcheck::Shape s;
    sn_kernel_opts o;
    const char *what;
  } cases[] = {
      {{2, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16}, forced(kOff, kOff), "direct"},
      {{2, 28, 28, 3, 3, 3, 2, 2, 1, 1, 1, 1, 16}, forced(kOff, kOff), "direct stride 2"},
      {{2, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16}, forced(kOn, kOff), "winograd"},
      {{2, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16}, forced(kOff, kOn), "packed GEMM"},
      {{2, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16},
       sn_kernel_opts{1, kAuto, kAuto, kAuto},
       "portable"},
  };
  for (const TC &t : cases) {
    SCOPED_TRACE(t.what);
    sn_conv_geom g = convcheck::geom(t.s, t.o);
    const size_t nx = (size_t)g.n * g.h * g.w * g.cin, ny = (size_t)g.n * g.oh * g.ow * g.cout;
    fvec x = sntest::randn(nx, 13), w = sntest::randn((size_t)g.kh * g.kw * g.cin * g.cout, 14);
    fvec res = sntest::randn(ny, 15);
    const int py = g.h / 2, px = 3;
    x[(((size_t)1 * g.h + py) * g.w + px) * g.cin + 1] = NAN;
    std::vector<char> r = reached(g, 1, py, px);
    res[7 * (size_t)g.cout] = NAN;
    r[7 * (size_t)g.cout] = 1;
    convcheck::Workspace ws(sn_conv_forward_workspace(&g));
    fvec y(ny, 7.0f);
    sn_conv_forward(&g, x.data(), w.data(), nullptr, res.data(), 1, y.data(), ws.data());
    EXPECT_TRUE(nan_exactly(y, r, std::strcmp(t.what, "winograd") != 0));
  }
}

// Input maps with a ReLU (a batch norm applied as the convolution reads its input): inference,
// the packed GEMM's 1x1 rows (sn_conv_impl_forward_in); training, the direct kernels' padded
// copy (sn_conv_forward_in). A NaN input must survive the map's ReLU.
TEST(KernelRelu, InputMaps) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "input maps run on the AVX-512 kernels only";
  const int cin = 20, cout = 24;
  fvec scale = sntest::uniform(cin, 16, 0.5f, 1.5f), shift = sntest::randn(cin, 17);
  fvec mean = sntest::randn(cin, 18, 0.1f);
  {
    SCOPED_TRACE("inference 1x1");
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 2, 7, 7, cin, 1, 1, 1, 1, 0, 0, 0, 0, cout));
    ASSERT_TRUE(sn_conv_impl_input_map_ok(&g));
    fvec x = sntest::randn((size_t)2 * 49 * cin, 19), w = sntest::randn((size_t)cin * cout, 20);
    x[((size_t)49 + 10) * cin + 4] = NAN; // image 1, pixel 10
    sn_conv_impl *c = nullptr;
    ASSERT_EQ(0, sn_conv_prepare(&g, w.data(), nullptr, &c));
    std::vector<float> ws(sn_conv_impl_workspace(c) + 1);
    const sn_conv_in in = {scale.data(), shift.data(), 1, nullptr};
    fvec y((size_t)2 * 49 * cout, 7.0f);
    sn_conv_impl_forward_in(c, 2, x.data(), &in, nullptr, 0, y.data(), ws.data());
    EXPECT_TRUE(nan_exactly(y, reached(g, 1, 1, 3), true)); // pixel 10 of 7x7 = (1, 3)
    sn_conv_impl_destroy(c);
  }
  {
    SCOPED_TRACE("training 3x3 padded");
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 2, 10, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16));
    ASSERT_TRUE(sn_conv_train_input_map_ok(&g));
    fvec x = sntest::randn((size_t)2 * 100 * 16, 21), w = sntest::randn((size_t)9 * 16 * 16, 22);
    x[(((size_t)1 * 10 + 4) * 10 + 6) * 16 + 9] = NAN;
    const sn_conv_in in = {scale.data(), shift.data(), 1, mean.data()};
    convcheck::Workspace ws(sn_conv_forward_workspace(&g));
    fvec y((size_t)2 * 100 * 16, 7.0f);
    sn_conv_forward_in(&g, x.data(), &in, w.data(), nullptr, nullptr, 0, y.data(), ws.data());
    EXPECT_TRUE(nan_exactly(y, reached(g, 1, 4, 6), true));
  }
}
