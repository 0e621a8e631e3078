// eltwise_test.cpp - ReLU, add, zero padding and the finiteness check.
//
// These kernels are exact in float32 (max, one addition, copies), so results are compared for
// equality with float64 references of the same operations on the same floats, except add
// (one rounding: compared exactly with the float sum). Gradients are checked by central
// differences in double (h = 1e-3) with inputs kept >= 5e-3 away from ReLU's kink; the losses
// are piecewise linear, so the differences are exact up to ~1e-12, and rtol = 1e-6 is used.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::dvec;
using kcheck::fvec;

TEST(KernelEltwise, ReluForwardBackward) {
  const size_t n = 100003; // odd, and large enough for the parallel path
  fvec x = kcheck::distinct(n, 1, 1e-2f), y(n, NAN);
  sn_relu_forward(kcheck::kSimd, x.data(), n, y.data());
  for (size_t i = 0; i < n; ++i)
    ASSERT_EQ(x[i] > 0 ? x[i] : 0.0f, y[i]) << i;
  fvec z = x;
  sn_relu_forward(kcheck::kSimd, z.data(), n, z.data()); // in place
  EXPECT_EQ(y, z);

  // Gradient: small case by finite differences of sum(dy * relu(x)).
  const size_t m = 257;
  fvec xs = kcheck::distinct(m, 2, 1e-2f), ys(m), dy = sntest::randn(m, 3), dx(m, NAN);
  sn_relu_forward(kcheck::kSimd, xs.data(), m, ys.data());
  sn_relu_backward(kcheck::kSimd, ys.data(), dy.data(), m, dx.data());
  const dvec dyd = kcheck::to_d(dy);
  auto loss = [&](const dvec &v) {
    double s = 0;
    for (size_t i = 0; i < m; ++i)
      s += dyd[i] * (v[i] > 0 ? v[i] : 0);
    return s;
  };
  EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss, kcheck::to_d(xs), 1e-3), 1e-6));
  fvec d2 = dy;
  sn_relu_backward(kcheck::kSimd, ys.data(), d2.data(), m, d2.data()); // dx aliases dy
  EXPECT_EQ(dx, d2);
  // Gradient at exactly 0 is 0 (PyTorch convention).
  float y0 = 0.0f, g0 = 1.0f, r0 = NAN;
  sn_relu_backward(kcheck::kSimd, &y0, &g0, 1, &r0);
  EXPECT_EQ(0.0f, r0);
}

TEST(KernelEltwise, Add) {
  const size_t n = 70001;
  fvec a = sntest::randn(n, 4), b = sntest::randn(n, 5), y(n, NAN), yr(n, NAN);
  sn_add_forward(kcheck::kSimd, a.data(), b.data(), n, 0, y.data());
  sn_add_forward(kcheck::kSimd, a.data(), b.data(), n, 1, yr.data());
  for (size_t i = 0; i < n; ++i) {
    const float s = a[i] + b[i];
    ASSERT_EQ(s, y[i]);
    ASSERT_EQ(s > 0 ? s : 0.0f, yr[i]);
  }
  sn_add_forward(kcheck::kSimd, a.data(), b.data(), n, 0, a.data()); // y aliases a
  EXPECT_EQ(y, a);
}

namespace {
dvec pad_ref(const dvec &x, int n, int h, int w, int c, int pt, int pl, int pb, int pr) {
  const int H = h + pt + pb, W = w + pl + pr;
  dvec y((size_t)n * H * W * c, 0.0);
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < h; ++r)
      for (int s = 0; s < w; ++s)
        for (int k = 0; k < c; ++k)
          y[(((size_t)i * H + r + pt) * W + s + pl) * c + k] =
              x[(((size_t)i * h + r) * w + s) * c + k];
  return y;
}
} // namespace

TEST(KernelEltwise, PadForwardBackward) {
  struct P {
    int n, h, w, c, pt, pl, pb, pr;
  };
  for (P p : {P{2, 5, 7, 3, 3, 3, 3, 3}, P{1, 6, 6, 5, 0, 0, 1, 1}, P{3, 4, 3, 2, 1, 0, 2, 0},
              P{1, 2, 2, 1, 0, 0, 0, 0}}) {
    SCOPED_TRACE(testing::Message() << p.n << "x" << p.h << "x" << p.w << "x" << p.c << " pads "
                                    << p.pt << p.pl << p.pb << p.pr);
    const size_t nx = (size_t)p.n * p.h * p.w * p.c;
    const size_t ny = (size_t)p.n * (p.h + p.pt + p.pb) * (p.w + p.pl + p.pr) * p.c;
    fvec x = sntest::randn(nx, 6), y(ny, NAN), dy = sntest::randn(ny, 7), dx(nx, NAN);
    sn_pad_forward(x.data(), p.n, p.h, p.w, p.c, p.pt, p.pl, p.pb, p.pr, y.data());
    const dvec ref = pad_ref(kcheck::to_d(x), p.n, p.h, p.w, p.c, p.pt, p.pl, p.pb, p.pr);
    for (size_t i = 0; i < ny; ++i)
      ASSERT_EQ((float)ref[i], y[i]) << i;
    sn_pad_backward(dy.data(), p.n, p.h, p.w, p.c, p.pt, p.pl, p.pb, p.pr, dx.data());
    const dvec dyd = kcheck::to_d(dy);
    auto loss = [&](const dvec &v) {
      return kcheck::dot(dyd, pad_ref(v, p.n, p.h, p.w, p.c, p.pt, p.pl, p.pb, p.pr));
    };
    EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss, kcheck::to_d(x), 1e-3), 1e-6));
  }
}

TEST(KernelEltwise, AllFinite) {
  const size_t n = 200000;
  fvec x = sntest::randn(n, 8);
  EXPECT_EQ(1, sn_all_finite(x.data(), n));
  EXPECT_EQ(1, sn_all_finite(x.data(), 0));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY}) {
    for (size_t at : {(size_t)0, n / 2 + 1, n - 1}) {
      fvec y = x;
      y[at] = bad;
      EXPECT_EQ(0, sn_all_finite(y.data(), n)) << bad << " at " << at;
      EXPECT_EQ(0, sn_all_finite(y.data() + at, 1));
    }
  }
  float big = std::numeric_limits<float>::max();
  EXPECT_EQ(1, sn_all_finite(&big, 1));
}

// The AVX-512 bodies (tail masks included) and the portable loops give identical results: the
// operations are exact (max, select) or one rounding (add).
TEST(KernelEltwise, SimdMatchesPortable) {
  for (size_t n : {(size_t)1, (size_t)15, (size_t)17, (size_t)40000, (size_t)100003}) {
    SCOPED_TRACE(n);
    fvec x = sntest::randn(n, 60), b = sntest::randn(n, 61), dy = sntest::randn(n, 62);
    if (n > 3) x[3] = NAN; // ReLU backward at NaN: 0 in both
    auto run = [&](int portable) {
      std::vector<fvec> o(4, fvec(n));
      sn_relu_forward(portable, x.data(), n, o[0].data());
      sn_relu_backward(portable, x.data(), dy.data(), n, o[1].data());
      sn_add_forward(portable, x.data(), b.data(), n, 0, o[2].data());
      sn_add_forward(portable, x.data(), b.data(), n, 1, o[3].data());
      return o;
    };
    std::vector<fvec> fast = run(kcheck::kSimd), portable = run(kcheck::kPortable);
    for (int k = 0; k < 4; ++k)
      EXPECT_EQ(0, memcmp(fast[k].data(), portable[k].data(), n * sizeof(float))) << k;
  }
}

// dx += dy where y > 0: the same floats as relu_backward followed by an addition (one rounding),
// SIMD (tail masks) and portable alike; NaN y adds nothing.
TEST(KernelEltwise, ReluBackwardAccumulate) {
  for (size_t n : {(size_t)1, (size_t)17, (size_t)40000, (size_t)100003}) {
    SCOPED_TRACE(n);
    fvec y = sntest::randn(n, 80), dy = sntest::randn(n, 81), base = sntest::randn(n, 82);
    if (n > 3) y[3] = NAN;
    fvec ref(n);
    for (size_t i = 0; i < n; ++i)
      ref[i] = base[i] + (y[i] > 0 ? dy[i] : 0.0f);
    for (int simd = 1; simd >= 0; --simd) {
      const int portable = !simd;
      fvec dx = base;
      sn_relu_backward_acc(portable, y.data(), dy.data(), n, dx.data());
      EXPECT_EQ(0, memcmp(ref.data(), dx.data(), n * sizeof(float))) << "simd " << simd;
    }
  }
}
