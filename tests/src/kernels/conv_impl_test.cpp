// conv_impl_test.cpp - prepared inference convolutions (sn_conv_prepare and the forced
// algorithms of kernels.h) against sn_conv_forward_ref (direct, double accumulation).
//
// Data: x = ReLU(N(0,1)), w He-normal (stddev sqrt(2/K)), bias N(0, 0.1), res N(0,1), as in
// spec/KERNELS.md 4.1. Error is measured as max|y - ref| / max|ref|.
//   GEMM paths (fp32 FMA over K <= 600 terms, any blocking order): rtol 2e-6 (KERNELS.md 4.1
//     measured ~5e-7 for fp32 direct; measured here <= 4.3e-7).
//   Winograd F(4x4, 3x3) (fp32 transforms, entries of B^T/A^T up to 8 and of G down to 1/24
//     amplify roundoff): rtol 1e-5, the per-layer error measured in KERNELS.md 4.1 (5.6e-6 to
//     9.7e-6 with Cin up to 512; these shapes have Cin <= 64, measured here <= 4.8e-6).
//   Winograd F(2x2, 3x3) (entries of B^T/A^T are +-1, of G 1/2 and 1): the GEMM paths' rtol
//     2e-6; KERNELS.md 4.1 measured 3.4e-7 to 5.6e-7 (1-2x direct's RMS).
// A wrong index, padding, stride or epilogue gives errors of order 1, so every check can fail.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels.h"
#include "test_util.h"

namespace {

struct Shape {
  int n, h, w, cin, k, s, pt, pl, pb, pr, cout;
};

std::string str(const Shape &s) {
  char b[160];
  snprintf(b, sizeof b, "n%d %dx%dx%d k%d s%d pad(%d,%d,%d,%d) cout%d", s.n, s.h, s.w, s.cin, s.k,
           s.s, s.pt, s.pl, s.pb, s.pr, s.cout);
  return b;
}

const char *algo_name(sn_conv_algo a) {
  switch (a) {
    case SN_CONV_GENERIC: return "generic";
    case SN_CONV_GEMM: return "gemm";
    case SN_CONV_WINOGRAD: return "winograd";
    case SN_CONV_WINOGRAD2: return "winograd2x2";
    case SN_CONV_DIRECT: return "direct";
    default: return "auto";
  }
}

// Prepares s (batch s.n) with algo, runs it on n_run <= s.n images and returns the relative
// max error against the double reference. Also checks that nothing is written past y.
double run_case(const Shape &s, sn_conv_algo algo, bool bias_on, bool res_on, bool relu,
                int n_run, uint64_t seed, std::string *name = nullptr) {
  sn_conv_geom g;
  EXPECT_EQ(0, sn_conv_geom_init(&g, nullptr, s.n, s.h, s.w, s.cin, s.k, s.k, s.s, s.s, s.pt, s.pl,
                                 s.pb, s.pr, s.cout));
  const size_t K = (size_t)s.k * s.k * s.cin;
  std::vector<float> x = sntest::randn((size_t)s.n * s.h * s.w * s.cin, seed);
  for (auto &v : x) v = v > 0 ? v : 0;
  std::vector<float> w = sntest::randn(K * s.cout, seed + 1, std::sqrt(2.0f / (float)K));
  std::vector<float> b = sntest::randn(s.cout, seed + 2, 0.1f);
  const size_t ny = (size_t)s.n * g.oh * g.ow * s.cout;
  std::vector<float> res = sntest::randn(ny, seed + 3);

  sn_conv_impl *c = nullptr;
  EXPECT_EQ(0, sn_conv_prepare_algo(&g, w.data(), bias_on ? b.data() : nullptr, algo, &c));
  if (!c) return 1e9;
  if (name) *name = sn_conv_impl_name(c);
  std::vector<float> ws(sn_conv_impl_workspace(c) + 1, 0.0f);
  const float sentinel = 12345.0f;
  ws.back() = sentinel;
  std::vector<float> y(ny + 32, sentinel);

  sn_conv_geom gr = g;
  gr.n = n_run;
  const size_t nyr = (size_t)n_run * g.oh * g.ow * s.cout;
  sn_conv_impl_forward(c, n_run, x.data(), res_on ? res.data() : nullptr, relu ? 1 : 0, y.data(),
                       ws.data());
  std::vector<float> ref(nyr);
  sn_conv_forward_ref(&gr, x.data(), w.data(), bias_on ? b.data() : nullptr,
                      res_on ? res.data() : nullptr, relu ? 1 : 0, ref.data());
  for (size_t i = nyr; i < y.size(); ++i) EXPECT_EQ(y[i], sentinel) << "write past y at " << i;
  EXPECT_EQ(ws.back(), sentinel) << "write past the workspace";
  sn_conv_impl_destroy(c);
  double mx = sntest::max_abs(ref.data(), nyr);
  return sntest::max_abs_diff(y.data(), ref.data(), nyr) / (mx > 0 ? mx : 1.0);
}

const Shape kGemmShapes[] = {
    // 1x1 stride 1: in place; Cin/Cout not multiples of 16, K blocking (Cin 300, 600)
    {3, 7, 7, 17, 1, 1, 0, 0, 0, 0, 33},
    {1, 9, 9, 3, 1, 1, 0, 0, 0, 0, 5},
    {1, 13, 13, 64, 1, 1, 0, 0, 0, 0, 64},
    {3, 19, 19, 300, 1, 1, 0, 0, 0, 0, 40},
    {1, 7, 7, 600, 1, 1, 0, 0, 0, 0, 70},
    // 1x1 stride 2 (projection shortcut)
    {3, 13, 13, 33, 1, 2, 0, 0, 0, 0, 17},
    // 3x3 stride 1 and 2, pad 1; asymmetric Keras-style padding
    {1, 9, 9, 3, 3, 1, 1, 1, 1, 1, 5},
    {3, 13, 13, 17, 3, 1, 1, 1, 1, 1, 33},
    {3, 13, 13, 17, 3, 2, 1, 1, 1, 1, 33},
    {2, 14, 14, 16, 3, 2, 0, 0, 1, 1, 32},
    {1, 7, 7, 128, 3, 1, 1, 1, 1, 1, 96},
    // 7x7 stride 2 pad 3 (stem)
    {1, 23, 23, 3, 7, 2, 3, 3, 3, 3, 64},
    {3, 9, 9, 5, 7, 2, 3, 3, 3, 3, 17},
    {2, 64, 64, 3, 7, 2, 3, 3, 3, 3, 24},  // stem, row-direct interior panels (Cin*stride = 6)
    {1, 30, 30, 6, 3, 1, 1, 1, 1, 1, 20},  // Cin*stride = 6 with stride 1
};

const Shape kWinoShapes[] = {
    {1, 9, 9, 3, 3, 1, 1, 1, 1, 1, 5},     // 3x3 tiles, ragged edges
    {3, 13, 13, 17, 3, 1, 1, 1, 1, 1, 33},  // 4x4 tiles per image, odd channels
    {3, 7, 7, 33, 3, 1, 1, 1, 1, 1, 17},
    {1, 16, 16, 64, 3, 1, 1, 1, 1, 1, 64},  // exact tiles
    {3, 29, 29, 64, 3, 1, 1, 1, 1, 1, 48},  // 192 tiles: several bands per thread
    {1, 14, 14, 48, 3, 1, 1, 1, 1, 1, 130}, // one shared band
    {2, 5, 11, 16, 3, 1, 1, 1, 1, 1, 16},   // non-square
    {2, 11, 9, 16, 3, 1, 0, 0, 0, 0, 20},   // valid (pre-padded input)
    {1, 10, 12, 8, 3, 1, 0, 1, 2, 0, 24},   // asymmetric padding
    {1, 9, 9, 300, 3, 1, 1, 1, 1, 1, 40},   // Cin in two K blocks of 160
};

struct Epi {
  bool bias, res, relu;
};
const Epi kEpis[] = {{false, false, false}, {true, false, true}, {true, true, true},
                     {false, true, false}};

void check_all(const Shape *shapes, size_t nshapes, sn_conv_algo algo, double rtol) {
  uint64_t seed = 100;
  for (size_t i = 0; i < nshapes; ++i) {
    const Shape &s = shapes[i];
    for (const Epi &e : kEpis) {
      seed += 10;
      for (int n_run : {s.n, 1}) {
        double err = run_case(s, algo, e.bias, e.res, e.relu, n_run, seed);
        EXPECT_LE(err, rtol) << algo_name(algo) << " " << str(s) << " bias " << e.bias << " res "
                             << e.res << " relu " << e.relu << " n_run " << n_run;
      }
    }
  }
}

TEST(ConvImpl, GenericMatchesReference) {
  check_all(kGemmShapes, sizeof kGemmShapes / sizeof *kGemmShapes, SN_CONV_GENERIC, 2e-5);
}

TEST(ConvImpl, PackedGemmMatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kGemmShapes, sizeof kGemmShapes / sizeof *kGemmShapes, SN_CONV_GEMM, 2e-6);
}

TEST(ConvImpl, WinogradMatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kWinoShapes, sizeof kWinoShapes / sizeof *kWinoShapes, SN_CONV_WINOGRAD, 1e-5);
}

TEST(ConvImpl, Winograd2x2MatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kWinoShapes, sizeof kWinoShapes / sizeof *kWinoShapes, SN_CONV_WINOGRAD2, 2e-6);
  // resnet50's layer 3 at batch 1, the shape the cost rule gives F(2x2): 49 tiles, K = 256
  const Shape l3 = {1, 14, 14, 256, 3, 1, 1, 1, 1, 1, 256};
  EXPECT_LE(run_case(l3, SN_CONV_WINOGRAD2, true, false, true, 1, 77), 2e-6);
}

// The direct tiles on the shapes the size rule gives them (small channel counts: resnet20,
// LeNet, the stems) and on the GEMM shapes: an fp32 FMA chain over K per output, as the GEMM.
const Shape kDirectShapes[] = {
    {3, 28, 28, 16, 3, 1, 1, 1, 1, 1, 16},  // resnet20 layer1
    {2, 28, 28, 1, 3, 1, 1, 1, 1, 1, 16},   // its grayscale stem
    {2, 28, 28, 16, 3, 2, 1, 1, 1, 1, 32},  // stride 2, 32 channels
    {2, 14, 14, 32, 3, 2, 1, 1, 1, 1, 64},
    {2, 28, 28, 16, 1, 2, 0, 0, 0, 0, 32},  // projection shortcut (forced: AUTO keeps the GEMM)
    {1, 13, 11, 5, 5, 1, 0, 0, 0, 0, 6},    // LeNet-style 5x5 valid, channels not 16
    {2, 12, 12, 6, 5, 1, 2, 2, 2, 2, 16},
    {1, 33, 33, 3, 7, 2, 3, 3, 3, 3, 64},   // RGB stem, odd size
};

TEST(ConvImpl, DirectMatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kDirectShapes, sizeof kDirectShapes / sizeof *kDirectShapes, SN_CONV_DIRECT, 2e-6);
  check_all(kGemmShapes, sizeof kGemmShapes / sizeof *kGemmShapes, SN_CONV_DIRECT, 2e-6);
}

TEST(ConvImpl, PackedGemmOnWinogradShapes) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kWinoShapes, sizeof kWinoShapes / sizeof *kWinoShapes, SN_CONV_GEMM, 2e-6);
}

// Thread counts other than the default 2 change the work split (1 thread: no split; 3 threads:
// uneven ranges); the prepared workspace must also cover running with fewer threads.
TEST(ConvImpl, ThreadCounts) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const int saved = omp_get_max_threads();
  const Shape g1 = {3, 19, 19, 300, 1, 1, 0, 0, 0, 0, 40};
  const Shape g3 = {3, 13, 13, 17, 3, 2, 1, 1, 1, 1, 33};
  const Shape w1 = {3, 29, 29, 64, 3, 1, 1, 1, 1, 1, 48};
  const Shape w2 = {1, 14, 14, 48, 3, 1, 1, 1, 1, 1, 130};
  for (int nt : {1, 3}) {
    omp_set_num_threads(nt);
    EXPECT_LE(run_case(g1, SN_CONV_GEMM, true, true, true, 3, 7), 2e-6) << nt;
    EXPECT_LE(run_case(g3, SN_CONV_GEMM, true, true, true, 2, 8), 2e-6) << nt;
    EXPECT_LE(run_case(w1, SN_CONV_WINOGRAD, true, true, true, 3, 9), 1e-5) << nt;
    EXPECT_LE(run_case(w2, SN_CONV_WINOGRAD, true, true, true, 1, 10), 1e-5) << nt;
    EXPECT_LE(run_case(w1, SN_CONV_WINOGRAD2, true, true, true, 3, 11), 2e-6) << nt;
    EXPECT_LE(run_case(w2, SN_CONV_WINOGRAD2, true, true, true, 1, 12), 2e-6) << nt;
  }
  omp_set_num_threads(saved);
}

TEST(ConvImpl, AutoChoosesByShape) {
  const bool fast = sn_cpu_has_avx512();
  // the direct tiles split a call by images: planned for at least as many images as threads
  const int nt = omp_get_max_threads();
  struct Want {
    Shape s;
    bool bias, res, relu;
    int n_run;
    double tol;
    const char *fast_name;  // with AVX-512; "generic" without
  };
  const Want wants[] = {
      {{1, 56, 56, 64, 3, 1, 1, 1, 1, 1, 64}, true, true, true, 1, 1e-5, "winograd4x4"},
      // 14x14x256 (resnet50 layer 3): at batch 1 F(4x4) streams 9.4 MB of U for 16 tiles, and
      // F(2x2) (4.2 MB) is cheaper; at batch 2 F(4x4) again, unless more than 2 threads share
      // the streaming (the cost rule's DRAM rate stops growing at 2)
      {{1, 14, 14, 256, 3, 1, 1, 1, 1, 1, 256}, true, false, true, 1, 1e-5, "winograd2x2"},
      {{2, 14, 14, 256, 3, 1, 1, 1, 1, 1, 256}, true, false, true, 1, 1e-5,
       nt > 2 ? "winograd2x2" : "winograd4x4"},
      {{1, 7, 7, 64, 3, 1, 1, 1, 1, 1, 64}, true, false, true, 1, 2e-5, "im2col"},
      {{2, 14, 14, 64, 1, 1, 0, 0, 0, 0, 256}, true, true, false, 2, 2e-5, "gemm1x1"},
      {{2, 14, 14, 64, 1, 2, 0, 0, 0, 0, 128}, false, false, true, 2, 2e-5, "gemm1x1"},
      {{1, 28, 28, 64, 3, 2, 1, 1, 1, 1, 64}, true, false, true, 1, 2e-5, "im2col"},
      {{nt, 28, 28, 16, 3, 1, 1, 1, 1, 1, 16}, true, true, true, 2, 2e-5, "direct"},  // resnet20
      {{nt, 28, 28, 16, 3, 2, 1, 1, 1, 1, 32}, true, false, true, 2, 2e-5, "direct"},
      {{nt, 28, 28, 16, 1, 2, 0, 0, 0, 0, 32}, true, true, false, 2, 2e-5, "gemm1x1"},
      {{nt, 64, 64, 3, 7, 2, 3, 3, 3, 3, 64}, true, false, true, 1, 2e-5, "direct"},  // RGB stem
      {{1, 64, 64, 3, 7, 2, 3, 3, 3, 3, 64}, true, false, true, 1, 2e-5,
       nt > 1 ? "im2col" : "direct"},  // at batch 1 the GEMM keeps both threads busy
  };
  uint64_t seed = 1;
  for (const Want &w : wants) {
    std::string name;
    // n_run <= the planned batch (the resnet20 rows plan nt images: 1 with one thread)
    const int n_run = w.n_run < w.s.n ? w.n_run : w.s.n;
    EXPECT_LE(run_case(w.s, SN_CONV_AUTO, w.bias, w.res, w.relu, n_run, seed++, &name), w.tol)
        << str(w.s);
    EXPECT_EQ(name, fast ? w.fast_name : "generic") << str(w.s);
  }
}

// sn_conv_impl_update repacks: after it the plan computes with the new weights and bias.
TEST(ConvImpl, UpdateRepacks) {
  for (sn_conv_algo algo : {SN_CONV_GENERIC, SN_CONV_GEMM, SN_CONV_WINOGRAD, SN_CONV_WINOGRAD2}) {
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 2, 9, 9, 17, 3, 3, 1, 1, 1, 1, 1, 1, 20));
    const size_t K = 9 * 17;
    std::vector<float> x = sntest::randn(2 * 81 * 17, 1);
    std::vector<float> w1 = sntest::randn(K * 20, 2, 0.1f), w2 = sntest::randn(K * 20, 3, 0.1f);
    std::vector<float> b1 = sntest::randn(20, 4), b2 = sntest::randn(20, 5);
    sn_conv_impl *c = nullptr;
    ASSERT_EQ(0, sn_conv_prepare_algo(&g, w1.data(), b1.data(), algo, &c));
    sn_conv_impl_update(c, w2.data(), b2.data());
    std::vector<float> ws(sn_conv_impl_workspace(c) + 1), y(2 * 81 * 20), ref(y.size());
    sn_conv_impl_forward(c, 2, x.data(), nullptr, 0, y.data(), ws.data());
    sn_conv_forward_ref(&g, x.data(), w2.data(), b2.data(), nullptr, 0, ref.data());
    EXPECT_LE(sntest::max_abs_diff(y.data(), ref.data(), y.size()),
              1e-5 * sntest::max_abs(ref.data(), ref.size()))
        << algo_name(algo);
    sn_conv_impl_destroy(c);
  }
}

TEST(ConvImpl, DestroyNull) { sn_conv_impl_destroy(nullptr); }

}  // namespace

// sn_conv_impl_forward_in (a batch norm's affine map and ReLU applied while the 1x1 input rows
// are copied) against sn_bn_affine into a buffer, then sn_conv_impl_forward: bitwise equal, on
// the unpadded 1x1 shapes: Cin not a multiple of 16, two K blocks (Cin 300), stride 2, wide N
// (Cout 300: all row panels packed first), a batch of 1 (7x7: A packed once and shared), with
// and without the ReLU, bias and residual; x holds negative values, -0 and a NaN.
TEST(ConvImpl, InputMapEqualsAffineThenConv) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "the map runs in the AVX-512 packed GEMM";
  const Shape shapes[] = {
      {3, 7, 7, 17, 1, 1, 0, 0, 0, 0, 33},   {3, 19, 19, 300, 1, 1, 0, 0, 0, 0, 40},
      {3, 13, 13, 33, 1, 2, 0, 0, 0, 0, 17},  {2, 9, 9, 64, 1, 1, 0, 0, 0, 0, 300},
      {1, 7, 7, 512, 1, 1, 0, 0, 0, 0, 128},
  };
  uint64_t seed = 700;
  int cases = 0;
  for (const Shape &s : shapes) {
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, s.n, s.h, s.w, s.cin, 1, 1, s.s, s.s, 0, 0, 0, 0,
                                   s.cout));
    ASSERT_TRUE(sn_conv_impl_input_map_ok(&g)) << str(s);
    const size_t rows = (size_t)s.n * s.h * s.w, ny = (size_t)s.n * g.oh * g.ow * s.cout;
    std::vector<float> x = sntest::randn(rows * s.cin, seed += 10);
    x[1] = -0.0f;
    x[2] = NAN;
    std::vector<float> w = sntest::randn((size_t)s.cin * s.cout, seed + 1, 0.1f);
    std::vector<float> b = sntest::randn(s.cout, seed + 2, 0.1f);
    std::vector<float> res = sntest::randn(ny, seed + 3);
    std::vector<float> scale = sntest::randn(s.cin, seed + 4), shift = sntest::randn(s.cin, seed + 5);
    sn_conv_impl *c = nullptr;
    ASSERT_EQ(0, sn_conv_prepare(&g, w.data(), b.data(), &c));
    std::vector<float> ws(sn_conv_impl_workspace(c));
    for (int bn_relu = 0; bn_relu < 2; ++bn_relu)
      for (const Epi &e : kEpis) {
        SCOPED_TRACE(str(s) + " bn relu " + std::to_string(bn_relu) + " res " +
                     std::to_string(e.res) + " relu " + std::to_string(e.relu));
        std::vector<float> xm(x.size()), y1(ny, 1.0f), y2(ny, 2.0f);
        sn_bn_affine(0, x.data(), rows, s.cin, scale.data(), shift.data(), bn_relu, xm.data());
        sn_conv_impl_forward(c, s.n, xm.data(), e.res ? res.data() : nullptr, e.relu, y1.data(),
                             ws.data());
        const sn_conv_in in = {scale.data(), shift.data(), bn_relu};
        sn_conv_impl_forward_in(c, s.n, x.data(), &in, e.res ? res.data() : nullptr, e.relu,
                                y2.data(), ws.data());
        EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), ny * sizeof(float)));
        ++cases;
      }
    sn_conv_impl_destroy(c);
  }
  EXPECT_EQ(cases, 5 * 2 * 4);
  // not for padded or 3x3 convolutions (the planner checks this before fusing)
  sn_conv_geom g3;
  ASSERT_EQ(0, sn_conv_geom_init(&g3, nullptr, 1, 7, 7, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16));
  EXPECT_FALSE(sn_conv_impl_input_map_ok(&g3));
  ASSERT_EQ(0, sn_conv_geom_init(&g3, nullptr, 1, 7, 7, 16, 1, 1, 1, 1, 1, 1, 1, 1, 16));
  EXPECT_FALSE(sn_conv_impl_input_map_ok(&g3));
}
