// bn_add_test.cpp - the training batch-norm fusions. sn_bn_normalize_add (training: a batch norm
// writing its consumer add's output in one pass) against sn_bn_normalize followed by
// sn_add_forward: bitwise equal, with and without the ReLU, in place over the residual, on both
// instruction-set paths, on channel counts around the vector width and past the 2048-channel
// coefficient block.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "test_util.h"

TEST(KernelBnAdd, NormalizeAddEqualsTwoPasses) {
  const int channels[] = {1, 5, 16, 17, 40, 300, 2100};
  const size_t rows_of[] = {1, 7, 1500};
  uint64_t seed = 70;
  for (int simd = 0; simd < 2; ++simd) {
    if (simd && !sn_cpu_has_avx512()) continue;
    const int portable = !simd;
    for (int c : channels)
      for (size_t rows : rows_of)
        for (int relu = 0; relu < 2; ++relu) {
          SCOPED_TRACE(testing::Message()
                       << "simd " << simd << " c " << c << " rows " << rows << " relu " << relu);
          const size_t n = rows * (size_t)c;
          auto x = sntest::randn(n, ++seed), res = sntest::randn(n, ++seed);
          auto mean = sntest::randn(c, ++seed), gamma = sntest::randn(c, ++seed),
               beta = sntest::randn(c, ++seed), invstd = sntest::randn(c, ++seed);
          for (float &v : invstd)
            v = std::fabs(v) + 0.1f;
          std::vector<float> t(n), want(n), got(n, NAN);
          sn_bn_normalize(portable, x.data(), rows, c, mean.data(), invstd.data(), gamma.data(),
                          beta.data(), t.data());
          sn_add_forward(portable, t.data(), res.data(), n, relu, want.data());
          sn_bn_normalize_add(portable, x.data(), rows, c, mean.data(), invstd.data(), gamma.data(),
                              beta.data(), res.data(), relu, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), n * sizeof(float)));
          std::vector<float> inplace = res; // y aliasing the residual
          sn_bn_normalize_add(portable, x.data(), rows, c, mean.data(), invstd.data(), gamma.data(),
                              beta.data(), inplace.data(), relu, inplace.data());
          ASSERT_EQ(0, std::memcmp(want.data(), inplace.data(), n * sizeof(float)));
        }
  }
}

// The fused-ReLU backward passes with the mask recomputed from x (sn_bn_*_relu_x) against the
// same passes reading the forward's output y = sn_bn_normalize_relu(x): bitwise equal sums and
// dx on both instruction-set paths, including elements exactly at the kink (x == mean with a
// zero shift: y = 0, masked), negative scales and a second coefficient pass (c = 2100).
TEST(KernelBnAdd, ReluMaskFromInputEqualsMaskFromOutput) {
  const int channels[] = {1, 5, 17, 40, 300, 2100};
  const size_t rows_of[] = {1, 9, 1500};
  uint64_t seed = 170;
  for (int simd = 0; simd < 2; ++simd) {
    if (simd && !sn_cpu_has_avx512()) continue;
    const int portable = !simd;
    for (int c : channels)
      for (size_t rows : rows_of) {
        SCOPED_TRACE(testing::Message() << "simd " << simd << " c " << c << " rows " << rows);
        const size_t n = rows * (size_t)c;
        auto x = sntest::randn(n, ++seed), dy = sntest::randn(n, ++seed);
        auto mean = sntest::randn(c, ++seed), gamma = sntest::randn(c, ++seed),
             beta = sntest::randn(c, ++seed), invstd = sntest::randn(c, ++seed);
        for (float &v : invstd)
          v = std::fabs(v) + 0.1f;
        for (int j = 0; j < c; j += 3)
          beta[j] = 0.0f;
        for (size_t i = 0; i < n; i += 7)
          x[i] = mean[i % c]; // exactly at the kink where beta = 0
        std::vector<float> y(n);
        sn_bn_normalize_relu(portable, x.data(), rows, c, mean.data(), invstd.data(), gamma.data(),
                             beta.data(), y.data());
        std::vector<double> s1(c), q1(c), s2(c), q2(c);
        sn_bn_backward_sums_relu(portable, x.data(), y.data(), dy.data(), rows, c, mean.data(),
                                 s1.data(), q1.data());
        sn_bn_backward_sums_relu_x(portable, x.data(), dy.data(), rows, c, mean.data(),
                                   invstd.data(), gamma.data(), beta.data(), s2.data(), q2.data());
        ASSERT_EQ(0, std::memcmp(s1.data(), s2.data(), c * sizeof(double)));
        ASSERT_EQ(0, std::memcmp(q1.data(), q2.data(), c * sizeof(double)));
        std::vector<float> d1(n, NAN), d2(n, NAN);
        const double count = (double)rows * 1.5;
        sn_bn_backward_dx_relu(portable, x.data(), y.data(), dy.data(), rows, c, mean.data(),
                               invstd.data(), gamma.data(), s1.data(), q1.data(), count, d1.data());
        sn_bn_backward_dx_relu_x(portable, x.data(), dy.data(), rows, c, mean.data(), invstd.data(),
                                 gamma.data(), beta.data(), s1.data(), q1.data(), count, d2.data());
        ASSERT_EQ(0, std::memcmp(d1.data(), d2.data(), n * sizeof(float)));
      }
  }
}
