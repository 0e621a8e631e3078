// conv_wino_test.cpp - Winograd convolutions (src/kernels/conv_wino.c): F(2x2, 3x3) training and
// the prepared F(4x4, 3x3) and F(2x2, 3x3) plans.
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

// Winograd F(2x2, 3x3) corner cases: odd output sizes (partial 2x2 tiles), padding 0 and 2 and
// asymmetric (the flipped backward pass pads by 2 - p), channels not a multiple of 16 and more
// than one 64-column block, several bands of tile rows per image (30x30 with 80 channels:
// 51 tiles per band), batch 1 and batch 9 (uneven chunks). Same tolerance as direct: F(2x2)'s
// transforms have coefficients 0, +-1, +-1/2 and add ~2x the rounding of a direct sum
// (docs/kernels.md, "Error budget").
TEST(KernelConv, WinogradShapes) {
  const sn_kernel_opts force = forced(kOn);
  const Shape shapes[] = {
      // n  h   w  cin kh kw sh sw pt pl pb pr cout
      {1, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8},    {9, 6, 5, 19, 3, 3, 1, 1, 1, 1, 1, 1, 21},
      {2, 8, 7, 16, 3, 3, 1, 1, 0, 0, 0, 0, 16},  {2, 5, 6, 16, 3, 3, 1, 1, 2, 2, 2, 2, 24},
      {2, 7, 8, 24, 3, 3, 1, 1, 0, 2, 1, 0, 70},  {2, 30, 30, 80, 3, 3, 1, 1, 1, 1, 1, 1, 80},
      {5, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 128}, {3, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 130},
  };
  uint64_t seed = 1000;
  for (const Shape &s : shapes) {
    check_forward(s, seed += 10, force);
    check_backward(s, seed += 10, force);
  }
}

TEST(ConvImpl, WinogradMatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kWinoShapes, sizeof kWinoShapes / sizeof *kWinoShapes, SN_CONV_WINOGRAD, 1e-5);
}

TEST(ConvImpl, Winograd2x2MatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kWinoShapes, sizeof kWinoShapes / sizeof *kWinoShapes, SN_CONV_WINOGRAD2, 2e-6);
  // resnet50's layer 3 at batch 1, the shape the cost rule gives F(2x2): 49 tiles, K = 256
  const ImplShape l3 = {1, 14, 14, 256, 3, 1, 1, 1, 1, 1, 256};
  EXPECT_LE(run_case(l3, SN_CONV_WINOGRAD2, true, false, true, 1, 77), 2e-6);
}
