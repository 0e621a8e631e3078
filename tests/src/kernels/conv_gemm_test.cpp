// conv_gemm_test.cpp - convolution as packed GEMM (src/kernels/conv_gemm.c, on the block of
// conv_gemm_block.c): the weight gradient and the prepared "gemm1x1" / "im2col" plans.
// Reference convolutions, shapes and tolerances: conv_check.h.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <string>
#include <vector>

#include "conv_check.h"
#include "kernels.h"
#include "test_util.h"

using namespace convcheck;

// The packed-GEMM weight gradient forced on every shape above (Cin 1, 3, 5, 17: partial 16-row
// transposes; Cout 3-130: partial 32-column panels; stride 2 and 3, padding >= kernel, asymmetric
// padding: taps in the padding are zeros), on shapes with several pixel blocks and a partial last
// one (N*OH*OW not a multiple of the block), dW row ranges longer than one packed chunk of A
// (K = 9*64 = 576 rows) and more than 1024 columns; then every direct shape with it off.
TEST(KernelConv, WeightGradientGemm) {
  const Shape more[] = {
      // n  h   w  cin kh kw sh sw pt pl pb pr cout
      {3, 13, 11, 64, 3, 3, 1, 1, 1, 1, 1, 1, 40},  {1, 15, 17, 19, 3, 3, 2, 2, 1, 1, 1, 1, 33},
      {2, 9, 9, 256, 1, 1, 1, 1, 0, 0, 0, 0, 1100}, {5, 7, 7, 48, 1, 1, 2, 2, 0, 0, 0, 0, 64},
      {1, 23, 21, 3, 7, 7, 2, 2, 3, 3, 3, 3, 64},
  };
  uint64_t seed = 1300;
  const sn_kernel_opts on = forced(kAuto, kAuto, kOn), off = forced(kAuto, kAuto, kOff);
  for (const Shape &s : kShapes)
    check_backward(s, seed += 10, on);
  for (const Shape &s : kDirectShapes)
    check_backward(s, seed += 10, on);
  for (const Shape &s : more)
    check_backward(s, seed += 10, on);
  for (const Shape &s : kDirectShapes)
    check_backward(s, seed += 10, off);
}

// The packed-GEMM weight gradient gives the same bits for 1, 2 and 3 threads (the task split
// changes with the thread count; every dW element is the same chain of FMAs over the same pixel
// blocks).
TEST(KernelConv, WeightGradientGemmAnyThreadCount) {
  const Shape shapes[] = {{3, 13, 11, 64, 3, 3, 1, 1, 1, 1, 1, 1, 40},
                          {2, 9, 9, 256, 1, 1, 1, 1, 0, 0, 0, 0, 1100},
                          {4, 14, 14, 17, 3, 3, 2, 2, 1, 1, 1, 1, 70}};
  const int saved = omp_get_max_threads();
  for (const Shape &s : shapes) {
    SCOPED_TRACE(name(s));
    sn_conv_geom g = geom(s, forced(kAuto, kAuto, kOn));
    const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
    const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
    fvec x = sntest::randn(nx, 1400), dy = sntest::randn(ny, 1402), w = sntest::randn(nw, 1401);
    std::vector<fvec> outs;
    for (int t : {1, 2, 3}) {
      omp_set_num_threads(t);
      Workspace wb(sn_conv_backward_workspace(&g));
      fvec dw(nw, NAN);
      sn_conv_backward(&g, x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr, wb.data());
      EXPECT_TRUE(wb.canary_intact());
      outs.push_back(dw);
    }
    omp_set_num_threads(saved);
    for (size_t i = 1; i < outs.size(); ++i)
      EXPECT_EQ(0, memcmp(outs[0].data(), outs[i].data(), outs[0].size() * sizeof(float)));
  }
}

TEST(ConvImpl, PackedGemmMatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kGemmShapes, sizeof kGemmShapes / sizeof *kGemmShapes, SN_CONV_GEMM, 2e-6);
}

TEST(ConvImpl, PackedGemmOnWinogradShapes) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kWinoShapes, sizeof kWinoShapes / sizeof *kWinoShapes, SN_CONV_GEMM, 2e-6);
}
