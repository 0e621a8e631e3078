// pool_test.cpp - max/avg pooling (windowed and global) against float64 references, argmax
// conventions, and finite-difference gradient checks.
//
// Max pooling is exact (selection): compared for equality; the AVX-512 path bitwise against the
// portable one. Averages are summed in double and
// rounded once: rtol = 1e-6. Gradient checks use central differences (h = 1e-4, double) of
// L = sum(dy * pool(x)); inputs are distinct values 1e-2 apart (kcheck::distinct), so no two
// cells of a window tie within h and the max is differentiable; the losses are piecewise
// linear, so the differences are exact up to ~1e-11 and rtol = 1e-6 applies.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::dvec;
using kcheck::fvec;

namespace {
struct PS {
  int n, h, w, c, kh, kw, sh, sw, pt, pl, pb, pr, pad_zero;
};

sn_pool_geom geom(const PS &s) {
  sn_pool_geom g;
  EXPECT_EQ(0, sn_pool_geom_init(&g, s.n, s.h, s.w, s.c, s.kh, s.kw, s.sh, s.sw, s.pt, s.pl, s.pb,
                                 s.pr, s.pad_zero));
  return g;
}

// Max pool in double; padded cells are 0 (pad_zero) or absent.
dvec maxpool_ref(const sn_pool_geom &g, const dvec &x) {
  dvec y((size_t)g.n * g.oh * g.ow * g.c);
  for (int n = 0; n < g.n; ++n)
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        for (int c = 0; c < g.c; ++c) {
          double m = -INFINITY;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
                if (g.pad_zero) m = std::fmax(m, 0.0);
                continue;
              }
              m = std::fmax(m, x[(((size_t)n * g.h + iy) * g.w + ix) * g.c + c]);
            }
          y[(((size_t)n * g.oh + oy) * g.ow + ox) * g.c + c] = m;
        }
  return y;
}

// Average over the cells inside the image.
dvec avgpool_ref(const sn_pool_geom &g, const dvec &x) {
  dvec y((size_t)g.n * g.oh * g.ow * g.c);
  for (int n = 0; n < g.n; ++n)
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        for (int c = 0; c < g.c; ++c) {
          double s = 0;
          int cnt = 0;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              s += x[(((size_t)n * g.h + iy) * g.w + ix) * g.c + c];
              ++cnt;
            }
          y[(((size_t)n * g.oh + oy) * g.ow + ox) * g.c + c] = s / cnt;
        }
  return y;
}

const PS kMax[] = {
    // n  h  w  c  kh kw sh sw pt pl pb pr zero
    {2, 9, 9, 5, 3, 3, 2, 2, 1, 1, 1, 1, 0},   // torchvision stem pool (-inf padding)
    {1, 8, 7, 17, 3, 3, 2, 2, 0, 0, 1, 1, 0},  // asymmetric padding
    {3, 9, 11, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1},  // Keras ZeroPadding(1) + MaxPool 3x3/2
    {1, 28, 28, 6, 2, 2, 2, 2, 0, 0, 0, 0, 0}, // LeNet 2x2/2
    {2, 7, 5, 4, 3, 2, 1, 2, 2, 0, 0, 1, 1},   // mixed
};
// Several 16-channel vectors (the AVX-512 path's blocks): the forward and path-equality tests.
const PS kMaxWide[] = {
    {2, 11, 12, 40, 3, 3, 2, 2, 1, 1, 1, 1, 0}, // 2.5 vectors of channels
    {1, 10, 9, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1},  // resnet50's stem pool channels, zero padding
};
std::vector<PS> all_max() {
  std::vector<PS> v(std::begin(kMax), std::end(kMax));
  v.insert(v.end(), std::begin(kMaxWide), std::end(kMaxWide));
  return v;
}

std::string name(const PS &s) {
  char b[160];
  snprintf(b, sizeof b, "n%d %dx%dx%d k%dx%d s%dx%d p%d,%d,%d,%d zero%d", s.n, s.h, s.w, s.c, s.kh,
           s.kw, s.sh, s.sw, s.pt, s.pl, s.pb, s.pr, s.pad_zero);
  return b;
}
} // namespace

TEST(KernelPool, GeomInit) {
  sn_pool_geom g;
  ASSERT_EQ(0, sn_pool_geom_init(&g, 1, 112, 112, 64, 3, 3, 2, 2, 1, 1, 1, 1, 0));
  EXPECT_EQ(56, g.oh);
  ASSERT_EQ(0, sn_pool_geom_init(&g, 1, 114, 114, 64, 3, 3, 2, 2, 0, 0, 0, 0, 1));
  EXPECT_EQ(56, g.ow);
  EXPECT_EQ(-1, sn_pool_geom_init(&g, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0, 0, 0, 0));
  EXPECT_EQ(-1, sn_pool_geom_init(&g, 1, 4, 4, 0, 2, 2, 2, 2, 0, 0, 0, 0, 0));
}

TEST(KernelPool, MaxForwardArgmax) {
  uint64_t seed = 1;
  for (const PS &s : all_max()) {
    SCOPED_TRACE(name(s));
    sn_pool_geom g = geom(s);
    const size_t nx = (size_t)g.n * g.h * g.w * g.c, ny = (size_t)g.n * g.oh * g.ow * g.c;
    fvec x = sntest::randn(nx, ++seed);
    fvec y(ny, NAN), y2(ny, NAN);
    std::vector<int32_t> am(ny, -7);
    sn_maxpool_forward(kcheck::kSimd, &g, x.data(), y.data(), am.data());
    sn_maxpool_forward(kcheck::kSimd, &g, x.data(), y2.data(), nullptr); // argmax optional
    EXPECT_EQ(y, y2);
    const dvec ref = maxpool_ref(g, kcheck::to_d(x));
    const size_t img = (size_t)g.h * g.w * g.c, opix = (size_t)g.oh * g.ow * g.c;
    for (size_t i = 0; i < ny; ++i) {
      ASSERT_EQ((float)ref[i], y[i]) << i;
      const int32_t a = am[i];
      if (a == -1) {
        ASSERT_TRUE(g.pad_zero) << i;
        ASSERT_EQ(0.0f, y[i]) << i;
      } else {
        ASSERT_GE(a, 0);
        ASSERT_LT((size_t)a, img);
        ASSERT_EQ((size_t)a % g.c, i % g.c) << i; // same channel
        ASSERT_EQ(y[i], x[(i / opix) * img + a]) << i;
      }
    }
  }
}

// With pad_zero = 1 and all-negative inputs the padded zero wins at the border (argmax -1);
// with pad_zero = 0 padded cells never win.
TEST(KernelPool, MaxPaddingSemantics) {
  const int h = 4, w = 4, c = 2;
  fvec x((size_t)h * w * c);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = -1.0f - (float)i;
  for (int zero = 0; zero < 2; ++zero) {
    sn_pool_geom g = geom({1, h, w, c, 3, 3, 2, 2, 1, 1, 1, 1, zero});
    fvec y((size_t)g.oh * g.ow * c);
    std::vector<int32_t> am(y.size());
    sn_maxpool_forward(kcheck::kSimd, &g, x.data(), y.data(), am.data());
    // Output (0,0) covers rows/cols -1..1: padded for zero = 1, else max of x[0..1][0..1].
    if (zero) {
      EXPECT_EQ(0.0f, y[0]);
      EXPECT_EQ(-1, am[0]);
    } else {
      EXPECT_EQ(-1.0f, y[0]);
      EXPECT_EQ(0, am[0]);
      EXPECT_EQ(-2.0f, y[1]);
      EXPECT_EQ(1, am[1]);
      for (int32_t a : am)
        EXPECT_GE(a, 0);
    }
  }
  // All-positive input: the zero never wins.
  fvec xp(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    xp[i] = 1.0f + (float)i;
  sn_pool_geom g = geom({1, h, w, c, 3, 3, 2, 2, 1, 1, 1, 1, 1});
  std::vector<int32_t> am((size_t)g.oh * g.ow * c);
  fvec y(am.size());
  sn_maxpool_forward(kcheck::kSimd, &g, xp.data(), y.data(), am.data());
  for (int32_t a : am)
    EXPECT_GE(a, 0);

  // Ties go to the first cell in window order (PyTorch and TensorFlow): on an all-zero input
  // a window starting in the padding picks the padded zero (-1) when pad_zero = 1.
  fvec z(x.size(), 0.0f);
  for (int zero = 0; zero < 2; ++zero) {
    sn_pool_geom gz = geom({1, h, w, c, 3, 3, 2, 2, 1, 1, 1, 1, zero});
    std::vector<int32_t> az((size_t)gz.oh * gz.ow * c);
    fvec yz(az.size());
    sn_maxpool_forward(kcheck::kSimd, &gz, z.data(), yz.data(), az.data());
    EXPECT_EQ(zero ? -1 : 0, az[0]);                     // output (0,0), channel 0
    EXPECT_EQ(zero ? -1 : 1, az[1]);                     // channel 1
    EXPECT_EQ((1 * w + 1) * c, az[(1 * gz.ow + 1) * c]); // output (1,1): window starts at (1,1)
  }
}

TEST(KernelPool, MaxBackwardFiniteDifferences) {
  uint64_t seed = 10;
  for (const PS &s : kMax) {
    SCOPED_TRACE(name(s));
    sn_pool_geom g = geom(s);
    const size_t nx = (size_t)g.n * g.h * g.w * g.c, ny = (size_t)g.n * g.oh * g.ow * g.c;
    // Distinct values 1e-2 apart and at least 5e-3 from 0 (the padded zero).
    fvec x = kcheck::distinct(nx, ++seed, 1e-2f);
    fvec y(ny), dy = sntest::randn(ny, ++seed), dx(nx, NAN);
    std::vector<int32_t> am(ny);
    sn_maxpool_forward(kcheck::kSimd, &g, x.data(), y.data(), am.data());
    sn_maxpool_backward(kcheck::kSimd, &g, am.data(), dy.data(), dx.data());
    const dvec dyd = kcheck::to_d(dy);
    auto loss = [&](const dvec &v) { return kcheck::dot(dyd, maxpool_ref(g, v)); };
    EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss, kcheck::to_d(x), 1e-4), 1e-6));
  }
}

TEST(KernelPool, AvgForwardBackward) {
  const PS shapes[] = {{2, 8, 8, 5, 2, 2, 2, 2, 0, 0, 0, 0, 0},
                       {1, 9, 7, 17, 3, 3, 2, 2, 1, 1, 1, 1, 0}, // padding excluded
                       {3, 5, 6, 3, 3, 2, 1, 2, 0, 1, 2, 0, 0}};
  uint64_t seed = 20;
  for (const PS &s : shapes) {
    SCOPED_TRACE(name(s));
    sn_pool_geom g = geom(s);
    const size_t nx = (size_t)g.n * g.h * g.w * g.c, ny = (size_t)g.n * g.oh * g.ow * g.c;
    fvec x = sntest::randn(nx, ++seed), y(ny, NAN), dy = sntest::randn(ny, ++seed), dx(nx, NAN);
    sn_avgpool_forward(&g, x.data(), y.data());
    EXPECT_TRUE(kcheck::close(y, avgpool_ref(g, kcheck::to_d(x)), 1e-6));
    sn_avgpool_backward(&g, dy.data(), dx.data());
    const dvec dyd = kcheck::to_d(dy);
    auto loss = [&](const dvec &v) { return kcheck::dot(dyd, avgpool_ref(g, v)); };
    EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss, kcheck::to_d(x), 1e-3), 1e-6));
  }
}

TEST(KernelPool, GlobalAvg) {
  const int n = 3, hw = 49, c = 37;
  fvec x = sntest::randn((size_t)n * hw * c, 30), y((size_t)n * c, NAN);
  sn_global_avgpool_forward(x.data(), n, hw, c, y.data());
  auto ref = [&](const dvec &v) {
    dvec r((size_t)n * c, 0.0);
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p)
        for (int k = 0; k < c; ++k)
          r[(size_t)i * c + k] += v[((size_t)i * hw + p) * c + k] / hw;
    return r;
  };
  const dvec xd = kcheck::to_d(x);
  EXPECT_TRUE(kcheck::close(y, ref(xd), 1e-6));
  fvec dy = sntest::randn((size_t)n * c, 31), dx(x.size(), NAN);
  sn_global_avgpool_backward(dy.data(), n, hw, c, dx.data());
  const dvec dyd = kcheck::to_d(dy);
  auto loss = [&](const dvec &v) { return kcheck::dot(dyd, ref(v)); };
  EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss, xd, 1e-3), 1e-6));
}

TEST(KernelPool, GlobalMax) {
  const int n = 2, hw = 16, c = 19;
  fvec x = kcheck::distinct((size_t)n * hw * c, 40, 1e-2f), y((size_t)n * c, NAN);
  std::vector<int32_t> am((size_t)n * c, -7);
  sn_global_maxpool_forward(x.data(), n, hw, c, y.data(), am.data());
  auto ref = [&](const dvec &v) {
    dvec r((size_t)n * c, -INFINITY);
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p)
        for (int k = 0; k < c; ++k)
          r[(size_t)i * c + k] = std::fmax(r[(size_t)i * c + k], v[((size_t)i * hw + p) * c + k]);
    return r;
  };
  const dvec xd = kcheck::to_d(x), yr = ref(xd);
  for (int i = 0; i < n * c; ++i) {
    ASSERT_EQ((float)yr[i], y[i]);
    ASSERT_EQ(i % c, am[i] % c); // argmax = p*C + c within the image
    ASSERT_EQ(y[i], x[(size_t)(i / c) * hw * c + am[i]]);
  }
  fvec dy = sntest::randn((size_t)n * c, 41), dx(x.size(), NAN);
  sn_global_maxpool_backward(am.data(), dy.data(), n, hw, c, dx.data());
  const dvec dyd = kcheck::to_d(dy);
  auto loss = [&](const dvec &v) { return kcheck::dot(dyd, ref(v)); };
  EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss, xd, 1e-4), 1e-6));
  // Ties: the first position wins.
  fvec t((size_t)hw * 1, 2.0f), ty(1);
  int32_t ta = -7;
  sn_global_maxpool_forward(t.data(), 1, hw, 1, ty.data(), &ta);
  EXPECT_EQ(0, ta);
}

// The AVX-512 max pool (16 channels per vector, maximum and argmax kept in registers; backward
// by gather-add-scatter) against the portable loops, bitwise: forward values and argmax, and the
// scattered gradient, on every shape above (channels not a multiple of 16, padding with and
// without zeros, strides, batch 1), with inputs rounded to a few levels so that windows tie
// (first cell wins) and a NaN and an infinity placed in each image. The inference forward (no
// argmax: its own AVX-512 body) gives the same values, bitwise.
TEST(KernelPool, MaxAvx512MatchesPortable) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  uint64_t seed = 40;
  for (const PS &s : all_max()) {
    SCOPED_TRACE(name(s));
    sn_pool_geom g = geom(s);
    const size_t img = (size_t)g.h * g.w * g.c;
    const size_t nx = (size_t)g.n * img, ny = (size_t)g.n * g.oh * g.ow * g.c;
    fvec x = sntest::randn(nx, ++seed);
    for (float &v : x)
      v = std::round(v * 2.0f) / 2.0f; // ties
    for (int n = 0; n < g.n; ++n) {
      x[(size_t)n * img + (img / 3)] = NAN;
      x[(size_t)n * img + (img / 2)] = INFINITY;
    }
    const fvec dy = sntest::randn(ny, ++seed);
    fvec y[2], dx[2], yi[2];
    std::vector<int32_t> am[2];
    for (int simd = 1; simd >= 0; --simd) {
      const int portable = !simd;
      y[simd].assign(ny, -5.0f);
      yi[simd].assign(ny, -6.0f);
      am[simd].assign(ny, -7);
      dx[simd].assign(nx, -5.0f);
      sn_maxpool_forward(portable, &g, x.data(), y[simd].data(), am[simd].data());
      sn_maxpool_forward(portable, &g, x.data(), yi[simd].data(), nullptr); // inference: no argmax
      sn_maxpool_backward(portable, &g, am[simd].data(), dy.data(), dx[simd].data());
    }
    ASSERT_EQ(0, std::memcmp(y[0].data(), y[1].data(), ny * sizeof(float)));
    ASSERT_EQ(0, std::memcmp(yi[1].data(), y[1].data(), ny * sizeof(float)));
    ASSERT_EQ(0, std::memcmp(yi[0].data(), y[0].data(), ny * sizeof(float)));
    ASSERT_EQ(am[0], am[1]);
    ASSERT_EQ(0, std::memcmp(dx[0].data(), dx[1].data(), nx * sizeof(float)));
  }
}

namespace {
// Max pool with torch's max_pool2d rule: cells in (ky, kx) order, a cell wins if it is greater
// or NaN (`val > maxval || isnan(val)`), so a NaN anywhere in the window gives NaN, its argmax
// the last NaN's cell; a padded zero (pad_zero) is a cell of value 0 and argmax -1.
void maxpool_torch(const sn_pool_geom &g, const fvec &x, fvec &y, std::vector<int32_t> &am) {
  y.assign((size_t)g.n * g.oh * g.ow * g.c, 0.0f);
  am.assign(y.size(), -1);
  for (int n = 0; n < g.n; ++n)
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        for (int c = 0; c < g.c; ++c) {
          bool first = true;
          float m = 0.0f;
          int32_t a = -1;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
              float v = 0.0f;
              int32_t vi = -1;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
                if (!g.pad_zero) continue;
              } else {
                vi = (int32_t)(((size_t)iy * g.w + ix) * g.c + c);
                v = x[(size_t)n * g.h * g.w * g.c + vi];
              }
              if (first || v > m || std::isnan(v)) {
                m = v;
                a = vi;
              }
              first = false;
            }
          const size_t o = (((size_t)n * g.oh + oy) * g.ow + ox) * g.c + c;
          y[o] = m;
          am[o] = a;
        }
}
} // namespace

// NaN propagates through max pooling as in torch's max_pool2d: on every shape, with NaNs placed
// as a window's first cell, as a later cell, two in one window and next to a padded border, the
// AVX-512 and portable paths (with and without argmax) give NaN exactly where the torch rule
// does, the same finite values elsewhere, and the last NaN's cell as the argmax; the gradient
// goes to that cell. (A NaN that never replaced the maximum left a plausible finite output.)
TEST(KernelPool, MaxPropagatesNaN) {
  uint64_t seed = 60;
  for (const PS &s : all_max()) {
    SCOPED_TRACE(name(s));
    sn_pool_geom g = geom(s);
    const size_t img = (size_t)g.h * g.w * g.c;
    fvec x = sntest::randn((size_t)g.n * img, ++seed);
    for (int n = 0; n < g.n; ++n) {
      float *xi = x.data() + (size_t)n * img;
      xi[0] = NAN; // corner: first cell, by the border
      xi[((size_t)(g.h / 2) * g.w + g.w / 2) * g.c + 1 % g.c] = NAN;      // interior
      xi[((size_t)(g.h / 2) * g.w + g.w / 2 + 1) * g.c + 1 % g.c] = -NAN; // its neighbour
      xi[img - 1] = NAN; // last pixel, last channel
    }
    fvec ref;
    std::vector<int32_t> ref_am;
    maxpool_torch(g, x, ref, ref_am);
    size_t nans = 0;
    for (int portable = 0; portable <= 1; ++portable) {
      if (!portable && !sn_cpu_has_avx512()) continue;
      fvec y(ref.size(), -5.0f), yi(ref.size(), -6.0f);
      std::vector<int32_t> am(ref.size(), -7);
      sn_maxpool_forward(portable, &g, x.data(), y.data(), am.data());
      sn_maxpool_forward(portable, &g, x.data(), yi.data(), nullptr);
      nans = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        if (std::isnan(ref[i])) {
          ++nans;
          ASSERT_TRUE(std::isnan(y[i])) << "portable " << portable << " output " << i;
          ASSERT_TRUE(std::isnan(yi[i])) << "portable " << portable << " output " << i;
        } else {
          ASSERT_EQ(ref[i], y[i]) << "portable " << portable << " output " << i;
          ASSERT_EQ(ref[i], yi[i]) << "portable " << portable << " output " << i;
        }
        ASSERT_EQ(ref_am[i], am[i]) << "portable " << portable << " output " << i;
      }
      // The gradient of a NaN output goes to its (last) NaN cell.
      fvec dy(ref.size(), 1.0f), dx(x.size(), -5.0f);
      sn_maxpool_backward(portable, &g, am.data(), dy.data(), dx.data());
      EXPECT_NE(0.0f, dx[(size_t)ref_am[0]]);
    }
    EXPECT_GE(nans, (size_t)3 * g.n);
  }
  // Global max pool: a NaN at any position gives NaN, argmax at the last NaN.
  const int n = 2, hw = 9, c = 5;
  fvec x = sntest::randn((size_t)n * hw * c, 70), y((size_t)n * c, -5.0f);
  x[(size_t)2 * c + 1] = NAN;  // image 0, position 2, channel 1
  x[(size_t)6 * c + 1] = NAN;  // and position 6
  x[(size_t)hw * c + 0] = NAN; // image 1, first position, channel 0
  std::vector<int32_t> am((size_t)n * c, -7);
  sn_global_maxpool_forward(x.data(), n, hw, c, y.data(), am.data());
  for (int i = 0; i < n * c; ++i)
    EXPECT_EQ(i == 1 || i == c, (bool)std::isnan(y[i])) << i;
  EXPECT_EQ(6 * c + 1, am[1]);
  EXPECT_EQ(0, am[c]);
}

// The uint8 max pool of int8 plans: from float32, the codes sn_quant_u8_ref gives the float32
// max pool's result (NaN to 0 included); from the codes of the input, the same codes (the
// quantization is monotonic). Channel counts around the 16- and 64-lane widths, both paddings.
TEST(KernelPool, MaxUint8IsTheQuantizedMax) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "int8 plans need AVX-512";
  const PS shapes[] = {{2, 9, 9, 64, 3, 3, 2, 2, 1, 1, 1, 1, 0},
                       {1, 8, 7, 70, 3, 3, 2, 2, 1, 1, 1, 1, 1},
                       {2, 6, 6, 3, 2, 2, 2, 2, 0, 0, 0, 0, 0},
                       {1, 5, 5, 130, 3, 3, 1, 1, 1, 1, 1, 1, 0}};
  const float scale = 0.05f, inv = 1.0f / scale;
  for (const PS &s : shapes) {
    const sn_pool_geom g = geom(s);
    fvec x((size_t)s.n * s.h * s.w * s.c);
    unsigned st = 7;
    for (float &v : x) {
      st = st * 1664525u + 1013904223u;
      v = ((float)(st >> 8) / 16777216.0f - 0.3f) *
          16.0f; /* -4.8 .. 11.2: below 0, above 255 codes */
    }
    const size_t ny = (size_t)g.n * g.oh * g.ow * g.c;
    fvec yf(ny);
    sn_maxpool_forward(0, &g, x.data(), yf.data(), nullptr);
    std::vector<uint8_t> want(ny), got(ny), xq(x.size());
    for (size_t i = 0; i < ny; ++i)
      want[i] = sn_quant_u8_ref(yf[i], inv, 0);
    sn_maxpool_forward_u8(&g, x.data(), 0, scale, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), ny), 0) << "from float32, c " << s.c;
    for (size_t i = 0; i < x.size(); ++i)
      xq[i] = sn_quant_u8_ref(x[i], inv, 0);
    std::fill(got.begin(), got.end(), 0xAB);
    sn_maxpool_forward_u8(&g, xq.data(), 1, scale, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), ny), 0) << "from uint8, c " << s.c;
    x[5] = NAN; // a NaN window: float32 max NaN, code 0
    sn_maxpool_forward(0, &g, x.data(), yf.data(), nullptr);
    for (size_t i = 0; i < ny; ++i)
      want[i] = sn_quant_u8_ref(yf[i], inv, 0);
    sn_maxpool_forward_u8(&g, x.data(), 0, scale, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), ny), 0) << "NaN from float32, c " << s.c;
  }
}
