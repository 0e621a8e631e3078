// kernel_check.h - helpers for the kernel suites: double-precision vectors, closeness checks and
// central finite differences.
//
// Tolerance convention: a float32 kernel is compared with a float64 reference as
//   max |got - ref| <= atol + rtol * max |ref|.
// float32 has unit roundoff u = 6e-8; a sum of K products of O(1) values carries an error of
// about sqrt(K) * u * |terms| typically and K * u * sum|terms| at worst, so each suite states
// its rtol from the largest K it uses. Wrong indexing, padding or strides give errors of the
// order of the values themselves (rtol ~ 1), so every check can fail.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kcheck {
using dvec = std::vector<double>;
using fvec = std::vector<float>;

// The `portable` argument of the kernels that have an AVX-512 body: kSimd runs that body where
// the CPU has it (the default), kPortable the portable one.
constexpr int kSimd = 0, kPortable = 1;

inline dvec to_d(const fvec &v) { return dvec(v.begin(), v.end()); }
inline fvec to_f(const dvec &v) { return fvec(v.begin(), v.end()); }

inline double max_abs(const dvec &v) {
  double m = 0;
  for (double x : v)
    m = std::fmax(m, std::fabs(x));
  return m;
}

inline ::testing::AssertionResult close(const float *got, const dvec &ref, double rtol,
                                        double atol = 1e-6) {
  const double tol = atol + rtol * max_abs(ref);
  double worst = -1;
  size_t wi = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs((double)got[i] - ref[i]);
    if (!(d <= worst)) { // also catches NaN
      worst = std::isnan(d) ? INFINITY : d;
      wi = i;
    }
  }
  if (worst <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max |got - ref| = " << worst << " at " << wi << " (got " << got[wi] << ", ref "
         << ref[wi] << "), tolerance " << tol << " (n = " << ref.size() << ")";
}
inline ::testing::AssertionResult close(const fvec &got, const dvec &ref, double rtol,
                                        double atol = 1e-6) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << ref.size();
  return close(got.data(), ref, rtol, atol);
}

// d f / d x_i for every i by central differences with step h (in double).
inline dvec fd_grad(const std::function<double(const dvec &)> &f, const dvec &x, double h) {
  dvec g(x.size());
  dvec xp = x;
  for (size_t i = 0; i < x.size(); ++i) {
    xp[i] = x[i] + h;
    const double fp = f(xp);
    xp[i] = x[i] - h;
    const double fm = f(xp);
    xp[i] = x[i];
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

inline double dot(const dvec &a, const dvec &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

// n distinct values (j + 1/2) * gap, j in [-n/2, n/2), in a seeded random order: no ties and
// |v| >= gap/2, so max pooling (also against a padded 0) and ReLU have no kink within a
// finite-difference step much smaller than gap.
inline fvec distinct(size_t n, uint64_t seed, float gap) {
  fvec v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = ((float)((long)i - (long)(n / 2)) + 0.5f) * gap;
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (size_t i = n; i > 1; --i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    std::swap(v[i - 1], v[(s >> 33) % i]);
  }
  return v;
}
} // namespace kcheck
