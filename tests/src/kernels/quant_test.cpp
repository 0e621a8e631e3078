// quant_test.cpp - the quantization rules and calibration histograms of src/kernels/quant.c:
// the int8 weight rule against a double formula, histogram counts against a plain loop (and
// independent of how the values are split), and the threshold rules on distributions whose
// answer is known.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::fvec;

TEST(KernelQuant, WeightsPerOutputChannel) {
  const int k = 37, n = 5;
  fvec w = sntest::randn((size_t)k * n, 11);
  for (int i = 0; i < k; ++i)
    w[(size_t)i * n + 3] = 0;   // a zero column: scale 1, all zero
  w[(size_t)4 * n + 1] = 10.0f; // the largest of its column
  std::vector<int8_t> q((size_t)k * n);
  std::vector<float> scale(n);
  std::vector<int32_t> colsum(n);
  sn_quant_weights_s8(w.data(), k, n, q.data(), scale.data(), colsum.data());
  for (int o = 0; o < n; ++o) {
    double m = 0;
    for (int i = 0; i < k; ++i)
      m = std::fmax(m, std::fabs((double)w[(size_t)i * n + o]));
    const double s = m > 0 ? m / 127 : 1;
    EXPECT_EQ((float)s, scale[o]) << "column " << o;
    int32_t sum = 0;
    for (int i = 0; i < k; ++i) {
      const double want = std::fmax(-127, std::fmin(127, std::nearbyint(w[(size_t)i * n + o] / s)));
      EXPECT_EQ(want, q[(size_t)i * n + o]) << "row " << i << " column " << o;
      sum += (int32_t)want;
    }
    EXPECT_EQ(sum, colsum[o]);
  }
  EXPECT_EQ(127, std::abs(q[(size_t)4 * n + 1])); // the maximum maps to +-127
}

// Bin i of |x| is the top 16 bits of its float pattern, offset: edges are exact powers of two
// times (1 + m/128).
TEST(KernelQuant, HistogramCountsAndSplit) {
  fvec x = sntest::randn(300000, 12);
  for (size_t i = 0; i < x.size(); i += 7)
    x[i] = 0;
  x[5] = 1e-20f; // below the lowest octave: a zero
  x[6] = 3e20f;  // above the highest: the last bin
  x[8] = NAN;
  x[9] = -INFINITY;
  std::vector<int64_t> want(SN_HIST_BINS, 0);
  std::vector<double> edge(SN_HIST_BINS);
  for (int i = 0; i < SN_HIST_BINS; ++i)
    edge[i] = sn_hist_edge(i);
  EXPECT_EQ(std::ldexp(1.0, -SN_HIST_LOW_OCT), edge[0]);
  EXPECT_EQ(1.0, edge[128 * SN_HIST_LOW_OCT]);
  EXPECT_EQ(1.0 + 1.0 / 128, edge[128 * SN_HIST_LOW_OCT + 1]);
  int64_t zeros = 0, nonfinite = 0;
  for (float v : x) {
    if (!std::isfinite(v)) {
      nonfinite++;
      continue;
    }
    const double a = std::fabs((double)v);
    if (a < edge[0]) {
      zeros++;
      continue;
    }
    // the last edge <= a (the last bin also takes everything above the range)
    const int i = (int)(std::upper_bound(edge.begin(), edge.end(), a) - edge.begin()) - 1;
    want[i]++;
  }
  const int saved = omp_get_max_threads();
  std::vector<sn_hist> hs(3);
  int t = 1;
  for (sn_hist &h : hs) {
    omp_set_num_threads(t++);
    sn_hist_init(&h);
    if (&h == &hs[2]) { // in uneven pieces
      sn_hist_add(&h, x.data(), 1000);
      sn_hist_add(&h, x.data() + 1000, 70001);
      sn_hist_add(&h, x.data() + 71001, x.size() - 71001);
    } else {
      sn_hist_add(&h, x.data(), x.size());
    }
  }
  omp_set_num_threads(saved);
  for (const sn_hist &h : hs) {
    EXPECT_EQ(zeros, h.zeros);
    EXPECT_EQ(nonfinite, h.nonfinite);
    EXPECT_EQ(0, memcmp(want.data(), h.bins, sizeof h.bins));
    EXPECT_EQ(3e20f, h.max);
  }
}

TEST(KernelQuant, Thresholds) {
  sn_hist h;
  // uniform on [0, 1]: nothing to gain by clipping; every rule gives about the maximum
  fvec u = sntest::uniform(200000, 13, 0.0f, 1.0f);
  sn_hist_init(&h);
  sn_hist_add(&h, u.data(), u.size());
  const double mx = h.max;
  EXPECT_EQ(mx, sn_hist_threshold(&h, SN_CALIB_MAX, 255));
  EXPECT_NEAR(1.0, sn_hist_threshold(&h, SN_CALIB_PERCENTILE, 255), 2e-3);
  EXPECT_NEAR(mx, sn_hist_threshold(&h, SN_CALIB_MSE, 255), 0.02);
  // half-normal: for 8 bits the squared error is least when about the top 1e-4 of the values
  // are clipped (near 4 sigma; Banner et al. 2019 give 3.9 sigma for a Gaussian), below the
  // sample maximum (about 4.9 here) and near the 99.99th percentile (3.9)
  fvec g = sntest::randn(1000000, 14);
  for (float &v : g)
    v = std::fabs(v);
  sn_hist_init(&h);
  sn_hist_add(&h, g.data(), g.size());
  const double p = sn_hist_threshold(&h, SN_CALIB_PERCENTILE, 255),
               m = sn_hist_threshold(&h, SN_CALIB_MSE, 255),
               x = sn_hist_threshold(&h, SN_CALIB_MAX, 255);
  EXPECT_EQ((double)h.max, x);
  EXPECT_GT(p, 3.8);
  EXPECT_LT(p, 4.0);
  EXPECT_GT(m, 3.0);
  EXPECT_LT(m, x);
  // the rule's choice measured directly: quantizing the values themselves with the mse
  // threshold errs less than with the maximum, and no more than with the percentile (5%: the
  // rule works on bin centres)
  auto err = [&](double t) {
    double e = 0;
    const double s = t / 255;
    for (float v : g) {
      const double q = std::fmin(255, std::nearbyint(v / s)) * s;
      e += (v - q) * (v - q);
    }
    return e;
  };
  EXPECT_LT(err(m), err(x));
  EXPECT_LT(err(m), err(p) * 1.05);
  // with zero point 128 (127 steps) the optimum clips more: a lower threshold
  EXPECT_LT(sn_hist_threshold(&h, SN_CALIB_MSE, 127), m);
  // nothing above zero: no threshold
  fvec z(100, 0.0f);
  sn_hist_init(&h);
  sn_hist_add(&h, z.data(), z.size());
  EXPECT_EQ(0.0, sn_hist_threshold(&h, SN_CALIB_MSE, 255));
}
