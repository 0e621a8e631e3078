// conv_check.h - shared code of the convolution suites: conv_test.cpp (the dispatcher, conv.c) and
// one suite per algorithm (conv_direct_test.cpp, conv_gemm_test.cpp, conv_wino_test.cpp,
// conv_generic_test.cpp).
//
// Training kernels (sn_conv_forward/_backward and their _ref versions) are compared against a
// float64 direct convolution written here, plus finite-difference gradient checks.
// Tolerances: inputs and weights are N(0, 1), so a conv output is a sum of K = KH*KW*Cin
// products of size ~1 and max|y| ~ 3*sqrt(K). float32 accumulation over K <= 2304 terms
// (blocked sgemm, any order) stays within ~K*u*sqrt(K) <= 1.4e-4*sqrt(K) at worst and is
// ~1e-6*sqrt(K) in practice; relative to max|y| we allow rtol = 2e-5 (measured <= 3e-6).
// Gradients sum N*OH*OW terms (dw, db) or KH*KW*Cout terms (dx): same argument, rtol = 2e-5.
// The finite differences are taken in double on the double reference with h = 1e-3; the loss
// sum(dy * y) is linear in x and in w, so they are exact up to ~1e-12.
//
// Prepared inference convolutions (sn_conv_prepare and the forced algorithms of sn_conv_algo)
// are compared against sn_conv_forward_ref (direct, double accumulation).
// Data: x = ReLU(N(0,1)), w He-normal (stddev sqrt(2/K)), bias N(0, 0.1), res N(0,1), as in
// docs/kernels.md, "Error budget". Error is measured as max|y - ref| / max|ref|.
//   GEMM paths (fp32 FMA over K <= 600 terms, any blocking order): rtol 2e-6 (docs/kernels.md,
//   "Error budget"
//     measured ~5e-7 for fp32 direct; measured here <= 4.3e-7).
//   Winograd F(4x4, 3x3) (fp32 transforms, entries of B^T/A^T up to 8 and of G down to 1/24
//     amplify roundoff): rtol 1e-5, the per-layer error measured in docs/kernels.md (5.6e-6 to
//     9.7e-6 with Cin up to 512; these shapes have Cin <= 64, measured here <= 4.8e-6).
//   Winograd F(2x2, 3x3) (entries of B^T/A^T are +-1, of G 1/2 and 1): the GEMM paths' rtol
//     2e-6; docs/kernels.md gives 3.4e-7 to 5.6e-7 (1-2x direct's RMS).
// A wrong index, padding, stride or epilogue gives errors of order 1, so every check can fail.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

namespace convcheck {

using kcheck::dvec;
using kcheck::fvec;

// ---------------------------------------------------------------- training convolutions

struct Shape {
  int n, h, w, cin, kh, kw, sh, sw, pt, pl, pb, pr, cout;
};

// y (N, OH, OW, Cout) in double.
inline dvec conv_fwd(const sn_conv_geom &g, const dvec &x, const dvec &w, const dvec *bias,
                     const dvec *res, bool relu) {
  dvec y((size_t)g.n * g.oh * g.ow * g.cout);
  for (int n = 0; n < g.n; ++n)
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        for (int co = 0; co < g.cout; ++co) {
          double a = bias ? (*bias)[co] : 0.0;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              for (int ci = 0; ci < g.cin; ++ci)
                a += x[(((size_t)n * g.h + iy) * g.w + ix) * g.cin + ci] *
                     w[(((size_t)ky * g.kw + kx) * g.cin + ci) * g.cout + co];
            }
          const size_t o = (((size_t)n * g.oh + oy) * g.ow + ox) * g.cout + co;
          if (res) a += (*res)[o];
          if (relu && a < 0) a = 0;
          y[o] = a;
        }
  return y;
}

// Analytic double backward: dx, dw, db of sum(dy * conv(x, w) + b).
inline void conv_bwd(const sn_conv_geom &g, const dvec &x, const dvec &w, const dvec &dy, dvec &dx,
                     dvec &dw, dvec &db) {
  dx.assign((size_t)g.n * g.h * g.w * g.cin, 0.0);
  dw.assign((size_t)g.kh * g.kw * g.cin * g.cout, 0.0);
  db.assign(g.cout, 0.0);
  for (int n = 0; n < g.n; ++n)
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        for (int co = 0; co < g.cout; ++co) {
          const double d = dy[(((size_t)n * g.oh + oy) * g.ow + ox) * g.cout + co];
          db[co] += d;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              for (int ci = 0; ci < g.cin; ++ci) {
                const size_t xi = (((size_t)n * g.h + iy) * g.w + ix) * g.cin + ci;
                const size_t wi = (((size_t)ky * g.kw + kx) * g.cin + ci) * g.cout + co;
                dx[xi] += w[wi] * d;
                dw[wi] += x[xi] * d;
              }
            }
        }
}

// The geometry of s with the kernel options o.
inline sn_conv_geom geom(const Shape &s, const sn_kernel_opts &o = {}) {
  sn_conv_geom g;
  EXPECT_EQ(0, sn_conv_geom_init(&g, nullptr, s.n, s.h, s.w, s.cin, s.kh, s.kw, s.sh, s.sw, s.pt,
                                 s.pl, s.pb, s.pr, s.cout));
  g.opts = o;
  return g;
}

// Workspace with a NaN canary tail: the kernel must not touch past the advertised size.
struct Workspace {
  std::vector<float> buf;
  size_t n;
  explicit Workspace(size_t floats) : buf(floats + 64, NAN), n(floats) {}
  float *data() { return buf.data(); }
  bool canary_intact() const {
    for (size_t i = n; i < buf.size(); ++i)
      if (!std::isnan(buf[i])) return false;
    return true;
  }
};

// Kernel options that force the training convolutions' algorithms: winograd on = Winograd for
// every 3x3 stride-1 geometry (also the small ones the size rule leaves to the other kernels),
// off = never; gemm on = the packed GEMM for every forward and stride-1 backward-data pass, off =
// never; wgrad on = the weight gradient by the packed GEMM (16x16 transposes of the im2col rows,
// dy's rows as B panels) for every geometry, off = never (the direct weight-gradient tiles).
inline sn_kernel_opts forced(sn_choice winograd, sn_choice gemm = SN_CHOICE_AUTO,
                             sn_choice wgrad = SN_CHOICE_AUTO) {
  sn_kernel_opts o{};
  o.winograd = winograd;
  o.conv_gemm = gemm;
  o.conv_wgrad = wgrad;
  return o;
}
inline const sn_choice kOn = SN_CHOICE_ON, kOff = SN_CHOICE_OFF, kAuto = SN_CHOICE_AUTO;

inline const Shape kShapes[] = {
    // n  h   w  cin kh kw sh sw pt pl pb pr cout
    {1, 9, 11, 3, 3, 3, 1, 1, 1, 1, 1, 1, 5},  // 3x3 same, odd sizes, Cin 3
    {3, 7, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, 17},  // stride 2, batch 3, Cout 17
    {3, 9, 9, 17, 3, 3, 2, 2, 0, 0, 1, 1, 8},  // Keras asymmetric pad (0,1), stride 2
    {1, 15, 13, 3, 7, 7, 2, 2, 3, 3, 3, 3, 8}, // 7x7/2 stem-like
    {2, 10, 10, 3, 7, 7, 2, 2, 0, 0, 0, 0, 4}, // Keras stem after ZeroPadding (valid)
    {3, 9, 7, 17, 1, 1, 2, 2, 0, 0, 0, 0, 6},  // 1x1 strided (row gather)
    {3, 5, 7, 17, 1, 1, 1, 1, 0, 0, 0, 0, 5},  // 1x1 stride 1 (sgemm in place)
    {1, 6, 6, 5, 1, 1, 1, 1, 1, 0, 0, 1, 3},   // 1x1 padded: generic path
    {2, 8, 6, 5, 3, 2, 1, 3, 2, 0, 1, 2, 7},   // non-square kernel, mixed strides/pads
    {1, 5, 5, 5, 5, 5, 1, 1, 0, 0, 0, 0, 3},   // kernel = image: 1x1 output
};

inline std::string name(const Shape &s) {
  char b[160];
  snprintf(b, sizeof b, "n%d %dx%dx%d k%dx%d s%dx%d p%d,%d,%d,%d cout%d", s.n, s.h, s.w, s.cin,
           s.kh, s.kw, s.sh, s.sw, s.pt, s.pl, s.pb, s.pr, s.cout);
  return b;
}

inline void check_forward(const Shape &s, uint64_t seed, const sn_kernel_opts &o = {}) {
  SCOPED_TRACE(name(s));
  sn_conv_geom g = geom(s, o);
  const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
  const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
  fvec x = sntest::randn(nx, seed), w = sntest::randn(nw, seed + 1);
  fvec b = sntest::randn(g.cout, seed + 2), r = sntest::randn(ny, seed + 3);
  dvec xd = kcheck::to_d(x), wd = kcheck::to_d(w), bd = kcheck::to_d(b), rd = kcheck::to_d(r);
  for (int variant = 0; variant < 4; ++variant) {
    const bool use_b = variant & 1, use_r = variant & 2, relu = variant != 0;
    SCOPED_TRACE("bias " + std::to_string(use_b) + " res " + std::to_string(use_r) + " relu " +
                 std::to_string(relu));
    dvec ref = conv_fwd(g, xd, wd, use_b ? &bd : nullptr, use_r ? &rd : nullptr, relu);
    Workspace ws(sn_conv_forward_workspace(&g));
    fvec y(ny, NAN), yr(ny, NAN);
    sn_conv_forward(&g, x.data(), w.data(), use_b ? b.data() : nullptr, use_r ? r.data() : nullptr,
                    relu, y.data(), ws.data());
    EXPECT_TRUE(kcheck::close(y, ref, 2e-5));
    EXPECT_TRUE(ws.canary_intact());
    sn_conv_forward_ref(&g, x.data(), w.data(), use_b ? b.data() : nullptr,
                        use_r ? r.data() : nullptr, relu, yr.data());
    EXPECT_TRUE(kcheck::close(yr, ref, 2e-5));
  }
}

inline void check_backward(const Shape &s, uint64_t seed, const sn_kernel_opts &o = {}) {
  SCOPED_TRACE(name(s));
  sn_conv_geom g = geom(s, o);
  const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
  const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
  fvec x = sntest::randn(nx, seed), w = sntest::randn(nw, seed + 1),
       dy = sntest::randn(ny, seed + 2);
  dvec dxr, dwr, dbr;
  conv_bwd(g, kcheck::to_d(x), kcheck::to_d(w), kcheck::to_d(dy), dxr, dwr, dbr);
  Workspace ws(sn_conv_backward_workspace(&g));
  fvec dx(nx, NAN), dw(nw, NAN), db(g.cout, NAN);
  sn_conv_backward(&g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), ws.data());
  EXPECT_TRUE(kcheck::close(dx, dxr, 2e-5));
  EXPECT_TRUE(kcheck::close(dw, dwr, 2e-5));
  EXPECT_TRUE(kcheck::close(db, dbr, 2e-5));
  EXPECT_TRUE(ws.canary_intact());
  // dx and db are optional; dw alone must be unchanged.
  fvec dw2(nw, NAN);
  sn_conv_backward(&g, x.data(), w.data(), dy.data(), nullptr, dw2.data(), nullptr, ws.data());
  EXPECT_TRUE(kcheck::close(dw2, dwr, 2e-5));
  // Reference versions.
  fvec dx3(nx, NAN), dw3(nw, NAN), db3(g.cout, NAN);
  sn_conv_backward_ref(&g, x.data(), w.data(), dy.data(), dx3.data(), dw3.data(), db3.data());
  EXPECT_TRUE(kcheck::close(dx3, dxr, 2e-5));
  EXPECT_TRUE(kcheck::close(dw3, dwr, 2e-5));
  EXPECT_TRUE(kcheck::close(db3, dbr, 2e-5));
}

// Shapes of the direct AVX-512 kernels' corner cases (conv_direct.c): column blocks of 64 with a
// partial last vector, row tiles split unevenly (OW > 28), the constant-stride full tiles
// (Cin*stride 16/32/64 with Cout 16/32), Cin = 1, pointwise rows longer than a tile, batch not a
// multiple of the 8 chunks, batch 1, stride 2 (backward data by phases, some rows of the last
// phase beyond dy), padding >= kernel, asymmetric padding, stride 3 > kernel 2 (phases without
// taps: zero dx), stride 2 with an even kernel and more phase rows than dy rows.
inline const Shape kDirectShapes[] = {
    // n  h   w  cin kh kw sh sw pt pl pb pr cout
    {11, 5, 30, 17, 3, 3, 1, 1, 1, 1, 1, 1, 70},  {2, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16},
    {2, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 32},  {2, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 32},
    {2, 28, 28, 16, 3, 3, 2, 2, 1, 1, 1, 1, 32},  {3, 28, 28, 1, 3, 3, 1, 1, 1, 1, 1, 1, 16},
    {2, 14, 14, 16, 1, 1, 2, 2, 0, 0, 0, 0, 32},  {2, 7, 9, 33, 1, 1, 1, 1, 0, 0, 0, 0, 50},
    {9, 5, 6, 48, 3, 3, 1, 1, 1, 1, 1, 1, 48},    {1, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 64},
    {1, 8, 8, 20, 3, 3, 1, 1, 0, 0, 2, 2, 24},    {2, 6, 7, 5, 3, 3, 1, 1, 3, 0, 0, 3, 19},
    {3, 11, 10, 24, 5, 5, 2, 2, 2, 2, 2, 2, 130}, {2, 8, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 128},
    {2, 11, 10, 7, 2, 2, 3, 3, 1, 0, 1, 2, 9},    {3, 9, 8, 6, 4, 4, 2, 2, 3, 1, 0, 2, 5},
    {2, 7, 7, 16, 1, 1, 2, 2, 1, 1, 1, 1, 16},
};

// ---------------------------------------------------------------- prepared convolutions

// A square kernel k and stride s: the shapes of the prepared-convolution suites.
struct ImplShape {
  int n, h, w, cin, k, s, pt, pl, pb, pr, cout;
};

inline std::string str(const ImplShape &s) {
  char b[160];
  snprintf(b, sizeof b, "n%d %dx%dx%d k%d s%d pad(%d,%d,%d,%d) cout%d", s.n, s.h, s.w, s.cin, s.k,
           s.s, s.pt, s.pl, s.pb, s.pr, s.cout);
  return b;
}

inline const char *algo_name(sn_conv_algo a) {
  switch (a) {
  case SN_CONV_GENERIC:
    return "generic";
  case SN_CONV_GEMM:
    return "gemm";
  case SN_CONV_WINOGRAD:
    return "winograd";
  case SN_CONV_WINOGRAD2:
    return "winograd2x2";
  case SN_CONV_DIRECT:
    return "direct";
  default:
    return "auto";
  }
}

// Prepares s (batch s.n) with algo, runs it on n_run <= s.n images and returns the relative
// max error against the double reference. Also checks that nothing is written past y.
inline double run_case(const ImplShape &s, sn_conv_algo algo, bool bias_on, bool res_on, bool relu,
                       int n_run, uint64_t seed, std::string *name = nullptr) {
  sn_conv_geom g;
  EXPECT_EQ(0, sn_conv_geom_init(&g, nullptr, s.n, s.h, s.w, s.cin, s.k, s.k, s.s, s.s, s.pt, s.pl,
                                 s.pb, s.pr, s.cout));
  const size_t K = (size_t)s.k * s.k * s.cin;
  std::vector<float> x = sntest::randn((size_t)s.n * s.h * s.w * s.cin, seed);
  for (auto &v : x)
    v = v > 0 ? v : 0;
  std::vector<float> w = sntest::randn(K * s.cout, seed + 1, std::sqrt(2.0f / (float)K));
  std::vector<float> b = sntest::randn(s.cout, seed + 2, 0.1f);
  const size_t ny = (size_t)s.n * g.oh * g.ow * s.cout;
  std::vector<float> res = sntest::randn(ny, seed + 3);

  sn_conv_impl *c = nullptr;
  EXPECT_EQ(0, sn_conv_prepare_algo(&g, w.data(), bias_on ? b.data() : nullptr, algo, &c));
  if (!c) return 1e9;
  if (name) *name = sn_conv_impl_name(c);
  std::vector<float> ws(sn_conv_impl_workspace(c) + 1, 0.0f);
  const float sentinel = 12345.0f;
  ws.back() = sentinel;
  std::vector<float> y(ny + 32, sentinel);

  sn_conv_geom gr = g;
  gr.n = n_run;
  const size_t nyr = (size_t)n_run * g.oh * g.ow * s.cout;
  sn_conv_impl_forward(c, n_run, x.data(), res_on ? res.data() : nullptr, relu ? 1 : 0, y.data(),
                       ws.data());
  std::vector<float> ref(nyr);
  sn_conv_forward_ref(&gr, x.data(), w.data(), bias_on ? b.data() : nullptr,
                      res_on ? res.data() : nullptr, relu ? 1 : 0, ref.data());
  for (size_t i = nyr; i < y.size(); ++i)
    EXPECT_EQ(y[i], sentinel) << "write past y at " << i;
  EXPECT_EQ(ws.back(), sentinel) << "write past the workspace";
  sn_conv_impl_destroy(c);
  double mx = sntest::max_abs(ref.data(), nyr);
  return sntest::max_abs_diff(y.data(), ref.data(), nyr) / (mx > 0 ? mx : 1.0);
}

inline const ImplShape kGemmShapes[] = {
    // 1x1 stride 1: in place; Cin/Cout not multiples of 16, K blocking (Cin 300, 600)
    {3, 7, 7, 17, 1, 1, 0, 0, 0, 0, 33},
    {1, 9, 9, 3, 1, 1, 0, 0, 0, 0, 5},
    {1, 13, 13, 64, 1, 1, 0, 0, 0, 0, 64},
    {3, 19, 19, 300, 1, 1, 0, 0, 0, 0, 40},
    {1, 7, 7, 600, 1, 1, 0, 0, 0, 0, 70},
    // 1x1 stride 2 (projection shortcut)
    {3, 13, 13, 33, 1, 2, 0, 0, 0, 0, 17},
    // 3x3 stride 1 and 2, pad 1; asymmetric Keras-style padding
    {1, 9, 9, 3, 3, 1, 1, 1, 1, 1, 5},
    {3, 13, 13, 17, 3, 1, 1, 1, 1, 1, 33},
    {3, 13, 13, 17, 3, 2, 1, 1, 1, 1, 33},
    {2, 14, 14, 16, 3, 2, 0, 0, 1, 1, 32},
    {1, 7, 7, 128, 3, 1, 1, 1, 1, 1, 96},
    // 7x7 stride 2 pad 3 (stem)
    {1, 23, 23, 3, 7, 2, 3, 3, 3, 3, 64},
    {3, 9, 9, 5, 7, 2, 3, 3, 3, 3, 17},
    {2, 64, 64, 3, 7, 2, 3, 3, 3, 3, 24}, // stem, row-direct interior panels (Cin*stride = 6)
    {1, 30, 30, 6, 3, 1, 1, 1, 1, 1, 20}, // Cin*stride = 6 with stride 1
};

inline const ImplShape kWinoShapes[] = {
    {1, 9, 9, 3, 3, 1, 1, 1, 1, 1, 5},     // 3x3 tiles, ragged edges
    {3, 13, 13, 17, 3, 1, 1, 1, 1, 1, 33}, // 4x4 tiles per image, odd channels
    {3, 7, 7, 33, 3, 1, 1, 1, 1, 1, 17},    {1, 16, 16, 64, 3, 1, 1, 1, 1, 1, 64}, // exact tiles
    {3, 29, 29, 64, 3, 1, 1, 1, 1, 1, 48},  // 192 tiles: several bands per thread
    {1, 14, 14, 48, 3, 1, 1, 1, 1, 1, 130}, // one shared band
    {2, 5, 11, 16, 3, 1, 1, 1, 1, 1, 16},   // non-square
    {2, 11, 9, 16, 3, 1, 0, 0, 0, 0, 20},   // valid (pre-padded input)
    {1, 10, 12, 8, 3, 1, 0, 1, 2, 0, 24},   // asymmetric padding
    {1, 9, 9, 300, 3, 1, 1, 1, 1, 1, 40},   // Cin in two K blocks of 160
};

struct Epi {
  bool bias, res, relu;
};
inline const Epi kEpis[] = {
    {false, false, false}, {true, false, true}, {true, true, true}, {false, true, false}};

inline void check_all(const ImplShape *shapes, size_t nshapes, sn_conv_algo algo, double rtol) {
  uint64_t seed = 100;
  for (size_t i = 0; i < nshapes; ++i) {
    const ImplShape &s = shapes[i];
    for (const Epi &e : kEpis) {
      seed += 10;
      for (int n_run : {s.n, 1}) {
        double err = run_case(s, algo, e.bias, e.res, e.relu, n_run, seed);
        EXPECT_LE(err, rtol) << algo_name(algo) << " " << str(s) << " bias " << e.bias << " res "
                             << e.res << " relu " << e.relu << " n_run " << n_run;
      }
    }
  }
}

// The direct tiles on the shapes the size rule gives them (small channel counts: resnet20,
// LeNet, the stems) and on the GEMM shapes: an fp32 FMA chain over K per output, as the GEMM.
inline const ImplShape kImplDirectShapes[] = {
    {3, 28, 28, 16, 3, 1, 1, 1, 1, 1, 16}, // resnet20 layer1
    {2, 28, 28, 1, 3, 1, 1, 1, 1, 1, 16},  // its grayscale stem
    {2, 28, 28, 16, 3, 2, 1, 1, 1, 1, 32}, // stride 2, 32 channels
    {2, 14, 14, 32, 3, 2, 1, 1, 1, 1, 64},
    {2, 28, 28, 16, 1, 2, 0, 0, 0, 0, 32}, // projection shortcut (forced: AUTO keeps the GEMM)
    {1, 13, 11, 5, 5, 1, 0, 0, 0, 0, 6},   // LeNet-style 5x5 valid, channels not 16
    {2, 12, 12, 6, 5, 1, 2, 2, 2, 2, 16},
    {1, 33, 33, 3, 7, 2, 3, 3, 3, 3, 64}, // RGB stem, odd size
};

} // namespace convcheck
