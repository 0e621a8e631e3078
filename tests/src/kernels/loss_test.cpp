// loss_test.cpp - softmax cross-entropy with label smoothing.
//
// The loss is computed in double inside the kernel, so it is compared with the double
// reference to 1e-9 relative (the only error is float logits vs double arithmetic: none, the
// inputs are the same floats). dlogits are rounded to float once: rtol = 1e-6 of max|d|.
// Finite differences of the double loss use h = 1e-4 (smooth; truncation ~1e-9).
#include <cmath>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::dvec;
using kcheck::fvec;

namespace {
// PyTorch CrossEntropyLoss(label_smoothing=eps, reduction='sum') in double.
double xent_ref(const dvec &l, const std::vector<int32_t> &y, int n, int k, double eps) {
  double total = 0;
  for (int r = 0; r < n; ++r) {
    double m = -INFINITY;
    for (int j = 0; j < k; ++j)
      m = std::fmax(m, l[(size_t)r * k + j]);
    double s = 0;
    for (int j = 0; j < k; ++j)
      s += std::exp(l[(size_t)r * k + j] - m);
    const double lse = m + std::log(s);
    double mean_nll = 0;
    for (int j = 0; j < k; ++j)
      mean_nll += (lse - l[(size_t)r * k + j]) / k;
    total += (1 - eps) * (lse - l[(size_t)r * k + y[r]]) + eps * mean_nll;
  }
  return total;
}
} // namespace

// Values from torch.nn.functional.cross_entropy(logits, labels, label_smoothing=eps,
// reduction='sum') in float64 (PyTorch 1.13).
TEST(KernelLoss, MatchesPyTorch) {
  const fvec l = {2.0f, -1.0f, 0.5f, 3.0f, 0.1f, 0.2f, 0.3f, -0.4f, -5.0f, 7.0f, 1.0f, 0.0f};
  const std::vector<int32_t> y = {3, 0, 2};
  const double expect[3][2] = {
      {0.0, 7.75691174505716}, {0.1, 7.97441174505716}, {0.3, 8.40941174505716}};
  for (auto &e : expect) {
    int correct = -1;
    const double loss =
        sn_softmax_xent(l.data(), y.data(), 3, 4, (float)e[0], 1.0f, nullptr, &correct);
    // eps is passed as float: 0.1f differs from 0.1 by 1.5e-9, times |mean nll - nll| <= 10.
    EXPECT_NEAR(e[1], loss, 1e-7) << "eps " << e[0];
    EXPECT_EQ(1, correct); // only row 0 (argmax 3 == label 3)
  }
}

TEST(KernelLoss, ValueAndGradient) {
  const int n = 5, k = 7;
  fvec l = sntest::randn((size_t)n * k, 1, 3.0f);
  std::vector<int32_t> y = {0, 6, 3, 3, 1};
  const dvec ld = kcheck::to_d(l);
  for (float eps : {0.0f, 0.1f, 0.25f}) {
    for (float scale : {1.0f, 0.125f}) {
      SCOPED_TRACE(testing::Message() << "eps " << eps << " scale " << scale);
      fvec d((size_t)n * k, NAN);
      const double loss = sn_softmax_xent(l.data(), y.data(), n, k, eps, scale, d.data(), nullptr);
      const double ref = xent_ref(ld, y, n, k, eps);
      EXPECT_NEAR(ref, loss, 1e-9 * std::fabs(ref));
      auto f = [&](const dvec &v) { return scale * xent_ref(v, y, n, k, eps); };
      EXPECT_TRUE(kcheck::close(d, kcheck::fd_grad(f, ld, 1e-4), 1e-6, 1e-9));
      // Each row of dlogits sums to 0 (softmax and target both sum to 1).
      for (int r = 0; r < n; ++r) {
        double s = 0;
        for (int j = 0; j < k; ++j)
          s += d[(size_t)r * k + j];
        EXPECT_NEAR(0.0, s, 1e-6);
      }
    }
  }
}

TEST(KernelLoss, StableForHugeLogits) {
  const fvec l = {1000.0f, -1000.0f, 999.0f, -3e4f, 3e4f, 0.0f};
  const std::vector<int32_t> y = {2, 0};
  fvec d(6, NAN);
  int correct = -1;
  const double loss = sn_softmax_xent(l.data(), y.data(), 2, 3, 0.0f, 1.0f, d.data(), &correct);
  // row 0: lse = 1000 + log(1 + e^-1) -> loss = 1 + log(1 + e^-1); row 1: 3e4 - (-3e4) = 6e4.
  EXPECT_NEAR(1.0 + std::log1p(std::exp(-1.0)) + 6e4, loss, 1e-6);
  EXPECT_EQ(0, correct);
  EXPECT_EQ(1, sn_all_finite(d.data(), 6));
  EXPECT_NEAR(-1.0, d[3], 1e-7); // label 0 of row 1 has p = 0
}

// Rows beyond a multiple of the internal block count, argmax ties go to the first index.
TEST(KernelLoss, CorrectCountManyRows) {
  const int n = 131, k = 3;
  fvec l((size_t)n * k, 0.0f);
  std::vector<int32_t> y(n);
  int expect = 0;
  for (int r = 0; r < n; ++r) {
    const int hot = r % 3;
    l[(size_t)r * k + hot] = (r % 5 == 0) ? 0.0f : 1.0f; // r%5==0: all-equal row, argmax 0
    y[r] = (r * 7) % 3;
    const int am = (r % 5 == 0) ? 0 : hot;
    expect += am == y[r];
  }
  int correct = -1;
  const double loss = sn_softmax_xent(l.data(), y.data(), n, k, 0.0f, 1.0f, nullptr, &correct);
  EXPECT_EQ(expect, correct);
  EXPECT_NEAR(xent_ref(kcheck::to_d(l), y, n, k, 0.0), loss, 1e-9 * loss);
}
