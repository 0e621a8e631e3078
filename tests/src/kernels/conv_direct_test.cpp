// conv_direct_test.cpp - the direct convolution (src/kernels/conv_direct.c, on the tiles of
// conv_tiles.c): its corner-case shapes, weight-gradient bands, and the prepared "direct" plans.
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

TEST(KernelConv, DirectShapesForward) {
  uint64_t seed = 500;
  for (const Shape &s : kDirectShapes)
    check_forward(s, seed += 10);
}

TEST(KernelConv, DirectShapesBackward) {
  uint64_t seed = 600;
  for (const Shape &s : kDirectShapes)
    check_backward(s, seed += 10);
}

// Images whose x and dy exceed the weight gradient's sweep (1 MiB): bands of pixels of a
// pointwise image, bands of output rows (stride 1 with Winograd off, and stride 2).
TEST(KernelConv, WeightGradientBands) {
  const sn_kernel_opts off = forced(kOff);
  const Shape shapes[] = {{1, 56, 56, 64, 1, 1, 1, 1, 0, 0, 0, 0, 256},
                          {1, 48, 48, 96, 3, 3, 1, 1, 1, 1, 1, 1, 96},
                          {1, 60, 60, 64, 3, 3, 2, 2, 1, 1, 1, 1, 80}};
  uint64_t seed = 1100;
  for (const Shape &s : shapes)
    check_backward(s, seed += 10, off);
}

TEST(ConvImpl, DirectMatchesReference) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_all(kImplDirectShapes, sizeof kImplDirectShapes / sizeof *kImplDirectShapes, SN_CONV_DIRECT,
            2e-6);
  check_all(kGemmShapes, sizeof kGemmShapes / sizeof *kGemmShapes, SN_CONV_DIRECT, 2e-6);
}
