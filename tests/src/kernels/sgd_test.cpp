// sgd_test.cpp - sn_sgd_update against torch.optim.SGD.
//
// The expected values were produced by PyTorch 1.13 (float32) with lr 0.1, momentum 0.9,
// weight_decay 0.01 over three steps of fixed gradients (script in the comment below). float32
// elementwise arithmetic may differ from PyTorch's vectorised kernels by an ulp per operation,
// so values are compared with an absolute tolerance of 1e-6 (values are O(1); three steps of
// ~5 operations each stay within ~1e-6).
//   p = torch.tensor([0.5, -1.25, 2.0, 0.0]); grads as below
//   opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=N)
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

namespace {
const float kGrads[3][4] = {
    {0.1f, 0.2f, -0.3f, 0.4f}, {-0.05f, 0.3f, 0.1f, 0.0f}, {0.2f, -0.1f, 0.05f, -0.2f}};

void run(int nesterov, std::vector<float> &p, std::vector<float> &buf) {
  p = {0.5f, -1.25f, 2.0f, 0.0f};
  buf.assign(4, NAN); // the first step must not read the buffer
  for (int s = 0; s < 3; ++s)
    sn_sgd_update(p.data(), kGrads[s], buf.data(), 4, 0.1f, 0.9f, 0.01f, nesterov, s == 0);
}
} // namespace

TEST(KernelSgd, MatchesPyTorchMomentum) {
  std::vector<float> p, buf;
  run(0, p, buf);
  const float ep[4] = {0.45963037f, -1.34408748f, 2.0459857f, -0.0882480368f};
  const float eb[4] = {0.249301106f, 0.297312677f, -0.0481362864f, 0.122880355f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(ep[i], p[i], 1e-6) << i;
    EXPECT_NEAR(eb[i], buf[i], 1e-6) << i;
  }
}

TEST(KernelSgd, MatchesPyTorchNesterov) {
  std::vector<float> p, buf;
  run(1, p, buf);
  const float ep[4] = {0.437227309f, -1.37072206f, 2.05022717f, -0.099148348f};
  const float eb[4] = {0.249171779f, 0.296750665f, -0.0477914065f, 0.122233421f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(ep[i], p[i], 1e-6) << i;
    EXPECT_NEAR(eb[i], buf[i], 1e-6) << i;
  }
}

// Large vector (parallel path) against the formula in double, two steps, no weight decay.
TEST(KernelSgd, FormulaLarge) {
  const size_t n = 100001;
  std::vector<float> p = sntest::randn(n, 1), g1 = sntest::randn(n, 2), g2 = sntest::randn(n, 3);
  std::vector<float> buf(n, NAN), p0 = p;
  sn_sgd_update(p.data(), g1.data(), buf.data(), n, 0.05f, 0.8f, 0.0f, 0, 1);
  sn_sgd_update(p.data(), g2.data(), buf.data(), n, 0.05f, 0.8f, 0.0f, 0, 0);
  for (size_t i = 0; i < n; ++i) {
    const double b = 0.8 * g1[i] + g2[i];
    const double e = p0[i] - 0.05 * g1[i] - 0.05 * b;
    ASSERT_NEAR(e, p[i], 1e-6 * (1 + std::fabs(e))) << i;
    ASSERT_NEAR(b, buf[i], 1e-6 * (1 + std::fabs(b))) << i;
  }
}

// Without momentum PyTorch keeps no buffer: plain p -= lr * (g + wd * p); buf may be NULL.
TEST(KernelSgd, NoMomentum) {
  std::vector<float> p = {1.0f, -2.0f}, g = {0.5f, 0.25f};
  sn_sgd_update(p.data(), g.data(), nullptr, 2, 0.1f, 0.0f, 0.1f, 0, 1);
  EXPECT_FLOAT_EQ(1.0f - 0.1f * (0.5f + 0.1f), p[0]);
  EXPECT_FLOAT_EQ(-2.0f - 0.1f * (0.25f - 0.2f), p[1]);
}
