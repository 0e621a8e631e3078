// dense_test.cpp - fully connected forward/backward against float64 and finite differences.
//
// Tolerances: y sums In <= 300 products of N(0,1) values; float32 sgemm error is ~sqrt(In)*u
// relative to max|y| typically and below In*u = 2e-5 at worst: rtol = 2e-5. Gradients sum N or
// Out terms: same bound. The loss sum(dy * y) is linear in x, w and b, so central differences
// (h = 1e-3, double) are exact up to ~1e-12.
#include <omp.h>

#include <cstdlib>
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
      for (int i = 0; i < in; ++i)
        s += x[(size_t)r * in + i] * w[(size_t)i * out + o];
      y[(size_t)r * out + o] = s;
    }
  return y;
}
} // namespace

TEST(KernelDense, Forward) {
  struct S {
    int n, in, out;
  };
  for (S s : {S{1, 300, 10}, S{3, 17, 5}, S{8, 64, 1000}}) {
    fvec x = sntest::randn((size_t)s.n * s.in, 1), w = sntest::randn((size_t)s.in * s.out, 2);
    fvec b = sntest::randn(s.out, 3), y((size_t)s.n * s.out, NAN);
    const dvec bd = kcheck::to_d(b);
    sn_dense_forward(kcheck::kSimd, x.data(), w.data(), b.data(), s.n, s.in, s.out, y.data());
    EXPECT_TRUE(
        kcheck::close(y, dense_ref(kcheck::to_d(x), kcheck::to_d(w), &bd, s.n, s.in, s.out), 2e-5));
    fvec y2((size_t)s.n * s.out, NAN);
    sn_dense_forward(kcheck::kSimd, x.data(), w.data(), nullptr, s.n, s.in, s.out, y2.data());
    EXPECT_TRUE(kcheck::close(
        y2, dense_ref(kcheck::to_d(x), kcheck::to_d(w), nullptr, s.n, s.in, s.out), 2e-5));
  }
}

TEST(KernelDense, BackwardFiniteDifferences) {
  struct S {
    int n, in, out;
  };
  for (S s : {S{1, 7, 3}, S{3, 17, 5}, S{5, 4, 11}}) {
    SCOPED_TRACE(testing::Message() << s.n << " " << s.in << " " << s.out);
    fvec x = sntest::randn((size_t)s.n * s.in, 4), w = sntest::randn((size_t)s.in * s.out, 5);
    fvec b = sntest::randn(s.out, 6), dy = sntest::randn((size_t)s.n * s.out, 7);
    const dvec xd = kcheck::to_d(x), wd = kcheck::to_d(w), bd = kcheck::to_d(b),
               dyd = kcheck::to_d(dy);
    fvec dx(x.size(), NAN), dw(w.size(), NAN), db(b.size(), NAN);
    sn_dense_backward(kcheck::kSimd, x.data(), w.data(), dy.data(), s.n, s.in, s.out, dx.data(),
                      dw.data(), db.data());
    auto lx = [&](const dvec &v) {
      return kcheck::dot(dyd, dense_ref(v, wd, &bd, s.n, s.in, s.out));
    };
    auto lw = [&](const dvec &v) {
      return kcheck::dot(dyd, dense_ref(xd, v, &bd, s.n, s.in, s.out));
    };
    auto lb = [&](const dvec &v) {
      return kcheck::dot(dyd, dense_ref(xd, wd, &v, s.n, s.in, s.out));
    };
    EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(lx, xd, 1e-3), 2e-5));
    EXPECT_TRUE(kcheck::close(dw, kcheck::fd_grad(lw, wd, 1e-3), 2e-5));
    EXPECT_TRUE(kcheck::close(db, kcheck::fd_grad(lb, bd, 1e-3), 2e-5));
    fvec dw2(w.size(), NAN); // dx and db optional
    sn_dense_backward(kcheck::kSimd, x.data(), w.data(), dy.data(), s.n, s.in, s.out, nullptr,
                      dw2.data(), nullptr);
    EXPECT_EQ(dw, dw2);
  }
}

// Sizes above the threshold where the loops run in parallel (N*In*Out > 1e6; several 256-column
// blocks, a partial last one), for both builds of the loops (AVX-512 and baseline, forced by
// portable = 1), against float64 products; and the result must not depend on the thread count.
TEST(KernelDense, ParallelSizesBothInstructionSets) {
  const int n = 4, in = 300, out = 1000;
  fvec x = sntest::randn((size_t)n * in, 8), w = sntest::randn((size_t)in * out, 9);
  fvec b = sntest::randn(out, 10), dy = sntest::randn((size_t)n * out, 11);
  const dvec xd = kcheck::to_d(x), wd = kcheck::to_d(w), bd = kcheck::to_d(b),
             dyd = kcheck::to_d(dy);
  dvec dwr((size_t)in * out, 0.0), dxr((size_t)n * in, 0.0);
  for (int r = 0; r < n; ++r)
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o) {
        dwr[(size_t)i * out + o] += xd[(size_t)r * in + i] * dyd[(size_t)r * out + o];
        dxr[(size_t)r * in + i] += dyd[(size_t)r * out + o] * wd[(size_t)i * out + o];
      }
  fvec first;
  for (int portable : {kcheck::kSimd, kcheck::kPortable}) {
    SCOPED_TRACE(testing::Message() << "portable " << portable);
    fvec y((size_t)n * out, NAN), dx(x.size(), NAN), dw(w.size(), NAN), db(b.size(), NAN);
    sn_dense_forward(portable, x.data(), w.data(), b.data(), n, in, out, y.data());
    EXPECT_TRUE(kcheck::close(y, dense_ref(xd, wd, &bd, n, in, out), 2e-5));
    sn_dense_backward(portable, x.data(), w.data(), dy.data(), n, in, out, dx.data(), dw.data(),
                      db.data());
    EXPECT_TRUE(kcheck::close(dw, dwr, 2e-5));
    EXPECT_TRUE(kcheck::close(dx, dxr, 2e-5));
    const int saved = omp_get_max_threads();
    for (int threads : {1, 3}) {
      omp_set_num_threads(threads);
      fvec y1((size_t)n * out, NAN), dw1(w.size(), NAN), dx1(x.size(), NAN);
      sn_dense_forward(portable, x.data(), w.data(), b.data(), n, in, out, y1.data());
      sn_dense_backward(portable, x.data(), w.data(), dy.data(), n, in, out, dx1.data(), dw1.data(),
                        nullptr);
      EXPECT_EQ(y1, y) << threads << " threads";
      EXPECT_EQ(dw1, dw) << threads << " threads";
      EXPECT_EQ(dx1, dx) << threads << " threads";
    }
    omp_set_num_threads(saved);
  }
}
