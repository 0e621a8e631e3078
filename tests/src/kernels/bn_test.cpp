// bn_test.cpp - batch-norm kernels against float64 formulas, and the training backward (dx from
// the local sums) against finite differences of a float64 batch-norm forward.
//
// Tolerances: the elementwise kernels do 2-3 float32 operations per element on O(1) values,
// so rtol = 1e-6 (a few ulps of max|y|). The sums use double accumulators (rows in order within
// fixed row blocks), so they match a double sum of the same floats to ~1e-15 relative; we allow
// 1e-12. The backward dx rounds its three per-channel coefficients to float and does ~5 float
// operations: rtol = 1e-5.
// The finite differences use h = 1e-4 on a smooth function (truncation ~h^2 * |f'''| ~ 1e-8).
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::dvec;
using kcheck::fvec;

namespace {
// Training-mode BN in double: batch mean and biased variance per channel.
dvec bn_train_fwd(const dvec &x, size_t rows, int c, const dvec &gamma, const dvec &beta,
                  double eps) {
  dvec y(x.size());
  for (int j = 0; j < c; ++j) {
    double m = 0, v = 0;
    for (size_t r = 0; r < rows; ++r)
      m += x[r * c + j];
    m /= rows;
    for (size_t r = 0; r < rows; ++r)
      v += (x[r * c + j] - m) * (x[r * c + j] - m);
    v /= rows;
    const double is = 1.0 / std::sqrt(v + eps);
    for (size_t r = 0; r < rows; ++r)
      y[r * c + j] = gamma[j] * (x[r * c + j] - m) * is + beta[j];
  }
  return y;
}
} // namespace

TEST(KernelBn, Fold) {
  const int c = 37;
  fvec g = sntest::randn(c, 1), b = sntest::randn(c, 2), m = sntest::randn(c, 3);
  fvec v = sntest::uniform(c, 4, 0.01f, 3.0f), scale(c), shift(c);
  sn_bn_fold(g.data(), b.data(), m.data(), v.data(), 1.001e-5f, c, scale.data(), shift.data());
  for (int j = 0; j < c; ++j) {
    const double s = (double)g[j] / std::sqrt((double)v[j] + (double)1.001e-5f);
    EXPECT_EQ((float)s, scale[j]); // computed in double, rounded once
    EXPECT_EQ((float)((double)b[j] - (double)m[j] * s), shift[j]);
  }
}

TEST(KernelBn, AffineAndRelu) {
  const size_t rows = 1000;
  const int c = 19;
  fvec x = sntest::randn(rows * c, 5), sc = sntest::randn(c, 6), sh = sntest::randn(c, 7);
  for (int relu = 0; relu < 2; ++relu) {
    dvec ref(rows * c);
    for (size_t r = 0; r < rows; ++r)
      for (int j = 0; j < c; ++j) {
        double v = (double)x[r * c + j] * sc[j] + sh[j];
        ref[r * c + j] = relu && v < 0 ? 0 : v;
      }
    fvec y(rows * c, NAN);
    sn_bn_affine(kcheck::kSimd, x.data(), rows, c, sc.data(), sh.data(), relu, y.data());
    EXPECT_TRUE(kcheck::close(y, ref, 1e-6));
    fvec z = x; // in place
    sn_bn_affine(kcheck::kSimd, z.data(), rows, c, sc.data(), sh.data(), relu, z.data());
    EXPECT_EQ(y, z);
  }
}

TEST(KernelBn, SumsAndNormalize) {
  const size_t rows = 3 * 7 * 5;
  for (int c : {3, 16, 17, 70}) {
    SCOPED_TRACE(c);
    fvec x = sntest::randn(rows * c, 10 + c, 2.0f);
    for (auto &v : x)
      v += 1.5f;
    std::vector<double> sum(c), sq(c);
    sn_bn_sums(kcheck::kSimd, x.data(), rows, c, sum.data(), sq.data());
    dvec mean(c), var(c);
    for (int j = 0; j < c; ++j) {
      double s = 0, q = 0;
      for (size_t r = 0; r < rows; ++r) {
        s += x[r * c + j];
        q += (double)x[r * c + j] * x[r * c + j];
      }
      EXPECT_NEAR(s, sum[j], 1e-12 * (1 + std::fabs(s)));
      EXPECT_NEAR(q, sq[j], 1e-12 * q);
      mean[j] = s / rows;
      var[j] = q / rows - mean[j] * mean[j];
    }
    fvec m(c), is(c), g = sntest::randn(c, 20), b = sntest::randn(c, 21);
    for (int j = 0; j < c; ++j) {
      m[j] = (float)mean[j];
      is[j] = (float)(1.0 / std::sqrt(var[j] + 1e-5));
    }
    dvec ref(rows * c);
    for (size_t r = 0; r < rows; ++r)
      for (int j = 0; j < c; ++j)
        ref[r * c + j] = (double)g[j] * ((double)x[r * c + j] - m[j]) * is[j] + b[j];
    fvec y(rows * c, NAN);
    sn_bn_normalize(kcheck::kSimd, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(),
                    y.data());
    EXPECT_TRUE(kcheck::close(y, ref, 1e-6));
    // Matches the double training forward (statistics rounded to float once).
    EXPECT_TRUE(kcheck::close(
        y, bn_train_fwd(kcheck::to_d(x), rows, c, kcheck::to_d(g), kcheck::to_d(b), 1e-5), 1e-5));
  }
}

// Full training backward: sums -> mean/invstd -> backward sums -> dx, checked against finite
// differences of L = sum(dy * bn_train(x)) in double; dgamma = sum_dy_xmu * invstd and
// dbeta = sum_dy likewise.
TEST(KernelBn, BackwardFiniteDifferences) {
  const size_t rows = 2 * 3 * 5;
  const int c = 17;
  const double eps = 1e-5;
  fvec x = sntest::randn(rows * c, 30), dy = sntest::randn(rows * c, 31);
  fvec g = sntest::uniform(c, 32, 0.5f, 1.5f), b = sntest::randn(c, 33);
  std::vector<double> sum(c), sq(c), sdy(c), sdx(c);
  sn_bn_sums(kcheck::kSimd, x.data(), rows, c, sum.data(), sq.data());
  fvec m(c), is(c);
  for (int j = 0; j < c; ++j) {
    const double mu = sum[j] / rows;
    m[j] = (float)mu;
    is[j] = (float)(1.0 / std::sqrt(sq[j] / rows - mu * mu + eps));
  }
  sn_bn_backward_sums(kcheck::kSimd, x.data(), dy.data(), rows, c, m.data(), sdy.data(),
                      sdx.data());
  fvec dx(rows * c, NAN);
  sn_bn_backward_dx(kcheck::kSimd, x.data(), dy.data(), rows, c, m.data(), is.data(), g.data(),
                    sdy.data(), sdx.data(), (double)rows, dx.data());

  const dvec xd = kcheck::to_d(x), dyd = kcheck::to_d(dy), gd = kcheck::to_d(g),
             bd = kcheck::to_d(b);
  auto lx = [&](const dvec &v) { return kcheck::dot(dyd, bn_train_fwd(v, rows, c, gd, bd, eps)); };
  auto lg = [&](const dvec &v) { return kcheck::dot(dyd, bn_train_fwd(xd, rows, c, v, bd, eps)); };
  auto lb = [&](const dvec &v) { return kcheck::dot(dyd, bn_train_fwd(xd, rows, c, gd, v, eps)); };
  EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(lx, xd, 1e-4), 1e-5));
  fvec dgamma(c), dbeta(c);
  for (int j = 0; j < c; ++j) {
    dgamma[j] = (float)(sdx[j] * is[j]);
    dbeta[j] = (float)sdy[j];
  }
  EXPECT_TRUE(kcheck::close(dgamma, kcheck::fd_grad(lg, gd, 1e-4), 1e-5));
  EXPECT_TRUE(kcheck::close(dbeta, kcheck::fd_grad(lb, bd, 1e-4), 1e-5));

  // dx may alias dy.
  fvec inplace = dy;
  sn_bn_backward_dx(kcheck::kSimd, x.data(), inplace.data(), rows, c, m.data(), is.data(), g.data(),
                    sdy.data(), sdx.data(), (double)rows, inplace.data());
  EXPECT_EQ(dx, inplace);
}

// The sums are accumulated per channel in row order: bitwise identical for 1 and 2 threads, on
// a size large enough to take the parallel path.
TEST(KernelBn, SumsDeterministicAcrossThreads) {
  const size_t rows = 4096;
  const int c = 64;
  fvec x = sntest::randn(rows * c, 40), dy = sntest::randn(rows * c, 41);
  fvec m = sntest::randn(c, 42);
  std::vector<double> s1(c), q1(c), s2(c), q2(c), a1(c), b1(c), a2(c), b2(c);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  sn_bn_sums(kcheck::kSimd, x.data(), rows, c, s1.data(), q1.data());
  sn_bn_backward_sums(kcheck::kSimd, x.data(), dy.data(), rows, c, m.data(), a1.data(), b1.data());
  omp_set_num_threads(2);
  sn_bn_sums(kcheck::kSimd, x.data(), rows, c, s2.data(), q2.data());
  sn_bn_backward_sums(kcheck::kSimd, x.data(), dy.data(), rows, c, m.data(), a2.data(), b2.data());
  omp_set_num_threads(saved);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(a1, a2);
  EXPECT_EQ(b1, b2);
}

// The sums use fixed row blocks and 64-channel groups: identical for 1, 2 and 3 threads also
// with one 16-channel group (rows split only) and with C = 300 (four 64-channel groups, then 44
// channels in a partial vector). AVX-512 and portable bodies add in the same order, but the
// compiler may contract a product and a sum into an FMA in one of them (one rounding less per
// term), so they are compared with 1e-14 * sum|terms| (~100 u of the absolute terms; the
// recursive-summation bound is n u sum|terms|). The elementwise passes agree to rtol 1e-6 (one
// or two roundings of O(1) values) on every channel count, rows < 16 included.
TEST(KernelBn, BlockedSumsAndPaths) {
  for (int c : {16, 300, 5}) {
    for (size_t rows : {(size_t)5, (size_t)2000}) {
      SCOPED_TRACE("c " + std::to_string(c) + " rows " + std::to_string(rows));
      fvec x = sntest::randn(rows * c, 50 + c), dy = sntest::randn(rows * c, 51 + c);
      fvec m = sntest::randn(c, 52), is = sntest::uniform(c, 53, 0.5f, 2.0f);
      fvec g = sntest::randn(c, 54), b = sntest::randn(c, 55);
      struct Out {
        std::vector<double> s, q, a, bq;
        fvec y, dx, af;
      };
      auto run = [&](int threads, int portable = kcheck::kSimd) {
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        Out o{std::vector<double>(c), std::vector<double>(c), std::vector<double>(c),
              std::vector<double>(c), fvec(rows * c),         fvec(rows * c),
              fvec(rows * c)};
        sn_bn_sums(portable, x.data(), rows, c, o.s.data(), o.q.data());
        sn_bn_backward_sums(portable, x.data(), dy.data(), rows, c, m.data(), o.a.data(),
                            o.bq.data());
        sn_bn_normalize(portable, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(),
                        o.y.data());
        sn_bn_backward_dx(portable, x.data(), dy.data(), rows, c, m.data(), is.data(), g.data(),
                          o.a.data(), o.bq.data(), (double)rows, o.dx.data());
        sn_bn_affine(portable, x.data(), rows, c, g.data(), b.data(), 1, o.af.data());
        omp_set_num_threads(saved);
        return o;
      };
      Out o1 = run(1), o2 = run(2), o3 = run(3);
      EXPECT_EQ(o1.s, o2.s);
      EXPECT_EQ(o1.q, o2.q);
      EXPECT_EQ(o1.a, o3.a);
      EXPECT_EQ(o1.bq, o3.bq);
      EXPECT_EQ(o1.y, o2.y);
      EXPECT_EQ(o1.dx, o3.dx);
      // double references in row order; abs_[j] = sum of |terms| of each sum
      std::vector<double> abs_s(c), abs_a(c), abs_b(c);
      for (int j = 0; j < c; ++j) {
        double s = 0, q = 0, a = 0, bq = 0;
        for (size_t r = 0; r < rows; ++r) {
          const double v = x[r * c + j], d = dy[r * c + j];
          s += v;
          q += v * v;
          a += d;
          bq += d * (v - (double)m[j]);
          abs_s[j] += std::fabs(v);
          abs_a[j] += std::fabs(d);
          abs_b[j] += std::fabs(d * (v - (double)m[j]));
        }
        ASSERT_NEAR(s, o1.s[j], 1e-12 * (1 + std::fabs(s)));
        ASSERT_NEAR(q, o1.q[j], 1e-12 * q);
        ASSERT_NEAR(a, o1.a[j], 1e-12 * (1 + std::fabs(a)));
        ASSERT_NEAR(bq, o1.bq[j], 1e-12 * (1 + std::fabs(bq)));
      }
      Out p = run(2, kcheck::kPortable);
      for (int j = 0; j < c; ++j) {
        EXPECT_NEAR(p.s[j], o1.s[j], 1e-14 * abs_s[j]);
        EXPECT_NEAR(p.q[j], o1.q[j], 1e-14 * p.q[j]);
        EXPECT_NEAR(p.a[j], o1.a[j], 1e-14 * abs_a[j]);
        EXPECT_NEAR(p.bq[j], o1.bq[j], 1e-14 * abs_b[j]);
      }
      EXPECT_TRUE(kcheck::close(o1.y, kcheck::to_d(p.y), 1e-6));
      EXPECT_TRUE(kcheck::close(o1.dx, kcheck::to_d(p.dx), 1e-6));
      EXPECT_TRUE(kcheck::close(o1.af, kcheck::to_d(p.af), 1e-6));
    }
  }
}

// BN with a fused ReLU: the forward is max(0, normalize) exactly; the backward sums and dx with
// the output mask equal the plain kernels fed with the ReLU's gradient (bitwise: the masked dy
// values are the same floats), and dx matches finite differences of sum(dy * relu(bn(x))) (on a
// case with every |bn(x)| >= 0.05, so no kink within h = 1e-4).
TEST(KernelBn, FusedRelu) {
  for (int c : {17, 64}) {
    for (int simd = 1; simd >= 0; --simd) {
      SCOPED_TRACE("c " + std::to_string(c) + " simd " + std::to_string(simd));
      const int portable = !simd;
      const size_t rows = 2 * 3 * 5;
      const double eps = 1e-5;
      fvec x = sntest::randn(rows * c, 70 + c), dy = sntest::randn(rows * c, 71);
      fvec g = sntest::uniform(c, 72, 0.5f, 1.5f), b = sntest::uniform(c, 73, -0.3f, 0.3f);
      std::vector<double> sum(c), sq(c);
      sn_bn_sums(portable, x.data(), rows, c, sum.data(), sq.data());
      fvec m(c), is(c);
      for (int j = 0; j < c; ++j) {
        const double mu = sum[j] / rows;
        m[j] = (float)mu;
        is[j] = (float)(1.0 / std::sqrt(sq[j] / rows - mu * mu + eps));
      }
      fvec y(rows * c), z(rows * c), zr(rows * c);
      sn_bn_normalize(portable, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(),
                      y.data());
      sn_bn_normalize_relu(portable, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(),
                           z.data());
      sn_relu_forward(portable, y.data(), rows * c, zr.data());
      EXPECT_EQ(zr, z);
      // masked gradient, then the plain kernels
      fvec dm(rows * c);
      sn_relu_backward(portable, z.data(), dy.data(), rows * c, dm.data());
      std::vector<double> a1(c), b1(c), a2(c), b2(c);
      sn_bn_backward_sums(portable, x.data(), dm.data(), rows, c, m.data(), a1.data(), b1.data());
      sn_bn_backward_sums_relu(portable, x.data(), z.data(), dy.data(), rows, c, m.data(),
                               a2.data(), b2.data());
      EXPECT_EQ(a1, a2);
      EXPECT_EQ(b1, b2);
      fvec dx1(rows * c), dx2(rows * c);
      sn_bn_backward_dx(portable, x.data(), dm.data(), rows, c, m.data(), is.data(), g.data(),
                        a1.data(), b1.data(), (double)rows, dx1.data());
      sn_bn_backward_dx_relu(portable, x.data(), z.data(), dy.data(), rows, c, m.data(), is.data(),
                             g.data(), a2.data(), b2.data(), (double)rows, dx2.data());
      EXPECT_EQ(dx1, dx2);
      fvec inplace = dy; // dx may alias dy
      sn_bn_backward_dx_relu(portable, x.data(), z.data(), inplace.data(), rows, c, m.data(),
                             is.data(), g.data(), a2.data(), b2.data(), (double)rows,
                             inplace.data());
      EXPECT_EQ(dx2, inplace);
    }
  }
  // Finite differences on a small case whose BN outputs all keep |y| >= 0.05 (the first such
  // seed), so that no ReLU kink lies within h of any input.
  const size_t rows = 6;
  const int c = 3;
  const double eps = 1e-5;
  bool checked = false;
  for (uint64_t seed = 90; seed < 190 && !checked; ++seed) {
    fvec x = sntest::randn(rows * c, seed), dy = sntest::randn(rows * c, seed + 1000);
    fvec g = sntest::uniform(c, seed + 2000, 0.5f, 1.5f),
         b = sntest::uniform(c, seed + 3000, -0.3f, 0.3f);
    const dvec xd = kcheck::to_d(x), dyd = kcheck::to_d(dy), gd = kcheck::to_d(g),
               bd = kcheck::to_d(b);
    const dvec yd = bn_train_fwd(xd, rows, c, gd, bd, eps);
    bool kink = false;
    for (double v : yd)
      kink = kink || std::fabs(v) < 0.05;
    if (kink) continue;
    std::vector<double> sum(c), sq(c), a(c), bq(c);
    sn_bn_sums(kcheck::kSimd, x.data(), rows, c, sum.data(), sq.data());
    fvec m(c), is(c), z(rows * c), dx(rows * c);
    for (int j = 0; j < c; ++j) {
      const double mu = sum[j] / rows;
      m[j] = (float)mu;
      is[j] = (float)(1.0 / std::sqrt(sq[j] / rows - mu * mu + eps));
    }
    sn_bn_normalize_relu(kcheck::kSimd, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(),
                         z.data());
    sn_bn_backward_sums_relu(kcheck::kSimd, x.data(), z.data(), dy.data(), rows, c, m.data(),
                             a.data(), bq.data());
    sn_bn_backward_dx_relu(kcheck::kSimd, x.data(), z.data(), dy.data(), rows, c, m.data(),
                           is.data(), g.data(), a.data(), bq.data(), (double)rows, dx.data());
    auto lx = [&](const dvec &v) {
      dvec o = bn_train_fwd(v, rows, c, gd, bd, eps);
      for (double &t : o)
        t = t > 0 ? t : 0;
      return kcheck::dot(dyd, o);
    };
    EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(lx, xd, 1e-4), 1e-5));
    checked = true;
  }
  EXPECT_TRUE(checked);
}

// The AVX-512 sums walk each row block in L1-sized sub-blocks of rows, group by group, when a
// pass has more than 64 channels (c = 100, 300, 600: a 512-channel pass then 88; sub-blocks of 3
// to 33 rows, the last one partial). On awkward channel and row counts, all three sums (plain,
// backward, backward through a ReLU mask) match double references in row order (1e-12, as
// above), are bitwise the same for 1, 2 and 3 threads, agree with the portable bodies to
// 1e-14 * sum|terms| (FMA contraction only), and the ReLU variant equals the plain backward sums
// fed with the masked gradient bitwise.
TEST(KernelBn, SumsAwkwardShapes) {
  for (int c : {1, 5, 17, 40, 100, 300, 600}) {
    for (size_t rows : {(size_t)7, (size_t)1237, (size_t)3001}) {
      SCOPED_TRACE("c " + std::to_string(c) + " rows " + std::to_string(rows));
      const size_t n = rows * c;
      fvec x = sntest::randn(n, 60 + c, 2.0f), dy = sntest::randn(n, 61 + c);
      fvec y = sntest::randn(n, 62 + c), m = sntest::randn(c, 63);
      for (auto &v : x)
        v += 1.5f;
      fvec dm(n); // dy where y > 0
      for (size_t i = 0; i < n; ++i)
        dm[i] = y[i] > 0.0f ? dy[i] : 0.0f;
      using D = std::vector<double>;
      struct Out {
        D s, q, a, b, ar, br, am, bm;
      };
      auto run = [&](int threads, int portable = kcheck::kSimd) {
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        Out o{D(c), D(c), D(c), D(c), D(c), D(c), D(c), D(c)};
        sn_bn_sums(portable, x.data(), rows, c, o.s.data(), o.q.data());
        sn_bn_backward_sums(portable, x.data(), dy.data(), rows, c, m.data(), o.a.data(),
                            o.b.data());
        sn_bn_backward_sums_relu(portable, x.data(), y.data(), dy.data(), rows, c, m.data(),
                                 o.ar.data(), o.br.data());
        sn_bn_backward_sums(portable, x.data(), dm.data(), rows, c, m.data(), o.am.data(),
                            o.bm.data());
        omp_set_num_threads(saved);
        return o;
      };
      const Out o1 = run(1), o2 = run(2), o3 = run(3);
      for (const Out *o : {&o2, &o3}) {
        EXPECT_EQ(o1.s, o->s);
        EXPECT_EQ(o1.q, o->q);
        EXPECT_EQ(o1.a, o->a);
        EXPECT_EQ(o1.b, o->b);
        EXPECT_EQ(o1.ar, o->ar);
        EXPECT_EQ(o1.br, o->br);
      }
      EXPECT_EQ(o1.ar, o1.am);
      EXPECT_EQ(o1.br, o1.bm);
      const Out p = run(2, kcheck::kPortable);
      for (int j = 0; j < c; ++j) {
        // terms of each sum, in row order: x, x^2, d, d (x - m), dm, dm (x - m)
        double r[6] = {0, 0, 0, 0, 0, 0}, ab[6] = {0, 0, 0, 0, 0, 0};
        for (size_t i = 0; i < rows; ++i) {
          const double v = x[i * c + j], d = dy[i * c + j], e = dm[i * c + j];
          const double t[6] = {v, v * v, d, d * (v - (double)m[j]), e, e * (v - (double)m[j])};
          for (int k = 0; k < 6; ++k) {
            r[k] += t[k];
            ab[k] += std::fabs(t[k]);
          }
        }
        const double got[6] = {o1.s[j], o1.q[j], o1.a[j], o1.b[j], o1.ar[j], o1.br[j]};
        const double port[6] = {p.s[j], p.q[j], p.a[j], p.b[j], p.ar[j], p.br[j]};
        for (int k = 0; k < 6; ++k) {
          SCOPED_TRACE("channel " + std::to_string(j) + " sum " + std::to_string(k));
          ASSERT_NEAR(r[k], got[k], 1e-12 * (1 + std::fabs(r[k])));
          ASSERT_NEAR(port[k], got[k], 1e-14 * ab[k]);
        }
      }
    }
  }
}

// The elementwise passes precompute per-channel coefficients for SN_BN_CBLOCK = 2048 channels at
// a time: c = 2100 takes a second, partial pass (52 channels). Normalize (with and without ReLU)
// and the backward dx (with and without the ReLU mask) against double formulas, in both bodies.
TEST(KernelBn, ElementwiseWideChannels) {
  const size_t rows = 37;
  const int c = 2100;
  const size_t n = rows * c;
  fvec x = sntest::randn(n, 80), dy = sntest::randn(n, 81), y = sntest::randn(n, 82);
  fvec m = sntest::randn(c, 83), is = sntest::uniform(c, 84, 0.5f, 2.0f);
  fvec g = sntest::randn(c, 85), b = sntest::randn(c, 86);
  std::vector<double> sdy(c), sdx(c);
  for (int j = 0; j < c; ++j) {
    sdy[j] = 3.0 * std::sin(j);
    sdx[j] = 5.0 * std::cos(j);
  }
  dvec yn(n), yr(n), dx(n), dxr(n);
  for (size_t r = 0; r < rows; ++r)
    for (int j = 0; j < c; ++j) {
      const size_t i = r * c + j;
      const double xm = (double)x[i] - m[j], s = is[j];
      yn[i] = (double)g[j] * s * xm + b[j];
      yr[i] = yn[i] > 0 ? yn[i] : 0;
      auto f = [&](double d) {
        return g[j] * s * (d - sdy[j] / rows - xm * s * s * sdx[j] / rows);
      };
      dx[i] = f(dy[i]);
      dxr[i] = f(y[i] > 0 ? dy[i] : 0.0);
    }
  for (int simd = 1; simd >= 0; --simd) {
    SCOPED_TRACE("simd " + std::to_string(simd));
    const int portable = !simd;
    fvec o(n, NAN);
    sn_bn_normalize(portable, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(), o.data());
    EXPECT_TRUE(kcheck::close(o, yn, 1e-6));
    sn_bn_normalize_relu(portable, x.data(), rows, c, m.data(), is.data(), g.data(), b.data(),
                         o.data());
    EXPECT_TRUE(kcheck::close(o, yr, 1e-6));
    sn_bn_backward_dx(portable, x.data(), dy.data(), rows, c, m.data(), is.data(), g.data(),
                      sdy.data(), sdx.data(), (double)rows, o.data());
    EXPECT_TRUE(kcheck::close(o, dx, 1e-5));
    sn_bn_backward_dx_relu(portable, x.data(), y.data(), dy.data(), rows, c, m.data(), is.data(),
                           g.data(), sdy.data(), sdx.data(), (double)rows, o.data());
    EXPECT_TRUE(kcheck::close(o, dxr, 1e-5));
  }
}
