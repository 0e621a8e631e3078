// conv_generic_test.cpp - the portable convolution (src/kernels/conv_generic.c): im2col + sgemm on
// the direct shapes and in chunks of images, and the prepared "generic" plans.
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

// Batches larger than one im2col chunk: 32x32 with K = 2304 is one image per chunk; K = 864
// gives two images per chunk, so n = 3 ends with a partial chunk.
TEST(KernelConv, ChunkedBatch) {
  const Shape big[] = {{3, 32, 32, 256, 3, 3, 1, 1, 1, 1, 1, 1, 4},
                       {3, 32, 32, 96, 3, 3, 1, 1, 1, 1, 1, 1, 4}};
  for (const Shape &s : big) {
    sn_conv_geom g = geom(s);
    const size_t per_image = (size_t)g.oh * g.ow * g.kh * g.kw * g.cin;
    ASSERT_LT(sn_conv_forward_workspace(&g), per_image * g.n); // really chunked
    check_forward(s, 300);
    check_backward(s, 310);
  }
}

// The generic path (used without AVX-512) on the same shapes.
TEST(KernelConv, GenericPathShapes) {
  sn_kernel_opts generic{};
  generic.portable = 1;
  uint64_t seed = 700;
  for (const Shape &s : kDirectShapes) {
    check_forward(s, seed += 10, generic);
    check_backward(s, seed += 10, generic);
  }
  check_backward(kShapes[1], 790, generic);
}

TEST(ConvImpl, GenericMatchesReference) {
  check_all(kGemmShapes, sizeof kGemmShapes / sizeof *kGemmShapes, SN_CONV_GENERIC, 2e-5);
}
