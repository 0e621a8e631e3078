// dense_test.cpp - fully connected forward/backward against float64 and finite differences.
//
// Tolerances: y sums In <= 300 products of N(0,1) values; float32 sgemm error is ~sqrt(In)*u
// relative to max|y| typically and below In*u = 2e-5 at worst: rtol = 2e-5. Gradients sum N or
// Out terms: same bound. The loss sum(dy * y) is linear in x, w and b, so central differences
// (h = 1e-3, double) are exact up to ~1e-12.
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::dvec;
using kcheck::fvec;

namespace {
dvec dense_ref(const dvec &x, const dvec &w, const dvec *b, int n, int in, int out) {
  dvec y((size_t)n * out);
  for (int r = 0; r < n; ++r)
    for (int o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (int i = 0; i < in; ++i) s += x[(size_t)r * in + i] * w[(size_t)i * out + o];
      y[(size_t)r * out + o] = s;
    }
  return y;
}
}  // namespace

TEST(KernelDense, Forward) {
  struct S { int n, in, out; };
  for (S s : {S{1, 300, 10}, S{3, 17, 5}, S{8, 64, 1000}}) {
    fvec x = sntest::randn((size_t)s.n * s.in, 1), w = sntest::randn((size_t)s.in * s.out, 2);
    fvec b = sntest::randn(s.out, 3), y((size_t)s.n * s.out, NAN);
    const dvec bd = kcheck::to_d(b);
    sn_dense_forward(x.data(), w.data(), b.data(), s.n, s.in, s.out, y.data());
    EXPECT_TRUE(kcheck::close(y, dense_ref(kcheck::to_d(x), kcheck::to_d(w), &bd, s.n, s.in, s.out), 2e-5));
    fvec y2((size_t)s.n * s.out, NAN);
    sn_dense_forward(x.data(), w.data(), nullptr, s.n, s.in, s.out, y2.data());
    EXPECT_TRUE(kcheck::close(y2, dense_ref(kcheck::to_d(x), kcheck::to_d(w), nullptr, s.n, s.in, s.out), 2e-5));
  }
}

TEST(KernelDense, BackwardFiniteDifferences) {
  struct S { int n, in, out; };
  for (S s : {S{1, 7, 3}, S{3, 17, 5}, S{5, 4, 11}}) {
    SCOPED_TRACE(testing::Message() << s.n << " " << s.in << " " << s.out);
    fvec x = sntest::randn((size_t)s.n * s.in, 4), w = sntest::randn((size_t)s.in * s.out, 5);
    fvec b = sntest::randn(s.out, 6), dy = sntest::randn((size_t)s.n * s.out, 7);
    const dvec xd = kcheck::to_d(x), wd = kcheck::to_d(w), bd = kcheck::to_d(b), dyd = kcheck::to_d(dy);
    fvec dx(x.size(), NAN), dw(w.size(), NAN), db(b.size(), NAN);
    sn_dense_backward(x.data(), w.data(), dy.data(), s.n, s.in, s.out, dx.data(), dw.data(), db.data());
    auto lx = [&](const dvec &v) { return kcheck::dot(dyd, dense_ref(v, wd, &bd, s.n, s.in, s.out)); };
    auto lw = [&](const dvec &v) { return kcheck::dot(dyd, dense_ref(xd, v, &bd, s.n, s.in, s.out)); };
    auto lb = [&](const dvec &v) { return kcheck::dot(dyd, dense_ref(xd, wd, &v, s.n, s.in, s.out)); };
    EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(lx, xd, 1e-3), 2e-5));
    EXPECT_TRUE(kcheck::close(dw, kcheck::fd_grad(lw, wd, 1e-3), 2e-5));
    EXPECT_TRUE(kcheck::close(db, kcheck::fd_grad(lb, bd, 1e-3), 2e-5));
    fvec dw2(w.size(), NAN);  // dx and db optional
    sn_dense_backward(x.data(), w.data(), dy.data(), s.n, s.in, s.out, nullptr, dw2.data(), nullptr);
    EXPECT_EQ(dw, dw2);
  }
}
