// conv_test.cpp - sn_conv_forward/_backward (and their _ref versions) against a float64 direct
// convolution written here, plus finite-difference gradient checks.
//
// Tolerances: inputs and weights are N(0, 1), so a conv output is a sum of K = KH*KW*Cin
// products of size ~1 and max|y| ~ 3*sqrt(K). float32 accumulation over K <= 2304 terms
// (blocked sgemm, any order) stays within ~K*u*sqrt(K) <= 1.4e-4*sqrt(K) at worst and is
// ~1e-6*sqrt(K) in practice; relative to max|y| we allow rtol = 2e-5 (measured <= 3e-6).
// Gradients sum N*OH*OW terms (dw, db) or KH*KW*Cout terms (dx): same argument, rtol = 2e-5.
// The finite differences are taken in double on the double reference with h = 1e-3; the loss
// sum(dy * y) is linear in x and in w, so they are exact up to ~1e-12.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernel_check.h"
#include "kernels.h"
#include "test_util.h"

using kcheck::dvec;
using kcheck::fvec;

namespace {

struct Shape {
  int n, h, w, cin, kh, kw, sh, sw, pt, pl, pb, pr, cout;
};

// y (N, OH, OW, Cout) in double.
dvec conv_fwd(const sn_conv_geom &g, const dvec &x, const dvec &w, const dvec *bias,
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
void conv_bwd(const sn_conv_geom &g, const dvec &x, const dvec &w, const dvec &dy, dvec &dx,
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
sn_conv_geom geom(const Shape &s, const sn_kernel_opts &o = {}) {
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
sn_kernel_opts forced(sn_choice winograd, sn_choice gemm = SN_CHOICE_AUTO,
                      sn_choice wgrad = SN_CHOICE_AUTO) {
  sn_kernel_opts o{};
  o.winograd = winograd;
  o.conv_gemm = gemm;
  o.conv_wgrad = wgrad;
  return o;
}
const sn_choice kOn = SN_CHOICE_ON, kOff = SN_CHOICE_OFF, kAuto = SN_CHOICE_AUTO;

const Shape kShapes[] = {
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

std::string name(const Shape &s) {
  char b[160];
  snprintf(b, sizeof b, "n%d %dx%dx%d k%dx%d s%dx%d p%d,%d,%d,%d cout%d", s.n, s.h, s.w, s.cin,
           s.kh, s.kw, s.sh, s.sw, s.pt, s.pl, s.pb, s.pr, s.cout);
  return b;
}

void check_forward(const Shape &s, uint64_t seed, const sn_kernel_opts &o = {}) {
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

void check_backward(const Shape &s, uint64_t seed, const sn_kernel_opts &o = {}) {
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

} // namespace

TEST(KernelConv, GeomInit) {
  sn_conv_geom g;
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 2, 224, 224, 3, 7, 7, 2, 2, 3, 3, 3, 3, 64));
  EXPECT_EQ(112, g.oh);
  EXPECT_EQ(112, g.ow);
  ASSERT_EQ(
      0, sn_conv_geom_init(&g, nullptr, 1, 56, 56, 64, 3, 3, 2, 2, 0, 0, 1, 1, 128)); // Keras (0,1)
  EXPECT_EQ(28, g.oh);
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 1, 7, 9, 4, 3, 3, 2, 2, 1, 1, 1, 1, 4));
  EXPECT_EQ(4, g.oh);
  EXPECT_EQ(5, g.ow);
  EXPECT_EQ(-1,
            sn_conv_geom_init(&g, nullptr, 1, 2, 2, 4, 3, 3, 1, 1, 0, 0, 0, 0, 4)); // empty output
  EXPECT_EQ(-1, sn_conv_geom_init(&g, nullptr, 0, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4));
  EXPECT_EQ(-1, sn_conv_geom_init(&g, nullptr, 1, 8, 8, 4, 3, 3, 0, 1, 1, 1, 1, 1, 4));
  EXPECT_EQ(-1, sn_conv_geom_init(&g, nullptr, 1, 8, 8, 4, 3, 3, 1, 1, -1, 1, 1, 1, 4));
}

// Workspace: the largest need of the paths that may run (generic im2col + sgemm; direct;
// Winograd for 3x3 stride 1), so that a workspace stays valid whichever path runs. Every shape
// test runs the kernels on a workspace of exactly the advertised size with a NaN canary after
// it. Here: the generic formula is a lower bound -
//   0 for unpadded 1x1 stride 1, else B * OH*OW * KH*KW*Cin with
//   B = min(N, max(1, floor(2^21 / (OH*OW*KH*KW*Cin)))) images per im2col chunk -
// and so are the packed weights (K * r16(Cout)) of the direct forward.
TEST(KernelConv, WorkspaceFormula) {
  sn_conv_geom g;
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 8, 56, 56, 64, 1, 1, 1, 1, 0, 0, 0, 0, 256));
  EXPECT_GE(sn_conv_forward_workspace(&g), (size_t)64 * 256);
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 8, 56, 56, 64, 1, 1, 1, 1, 0, 0, 0, 0, 20));
  EXPECT_GE(sn_conv_forward_workspace(&g), (size_t)64 * 32);
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 8, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 64));
  EXPECT_GE(sn_conv_forward_workspace(&g), (size_t)3136 * 576);
  EXPECT_GE(sn_conv_backward_workspace(&g), (size_t)3136 * 576);
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 32, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 512));
  EXPECT_GE(sn_conv_forward_workspace(&g), (size_t)9 * 49 * 4608);
  ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 3, 9, 9, 17, 3, 3, 2, 2, 1, 1, 1, 1, 20));
  EXPECT_GE(sn_conv_backward_workspace(&g), (size_t)3 * 25 * 153);
}

TEST(KernelConv, ForwardShapes) {
  uint64_t seed = 100;
  for (const Shape &s : kShapes)
    check_forward(s, seed += 10);
}

TEST(KernelConv, BackwardShapes) {
  uint64_t seed = 200;
  for (const Shape &s : kShapes)
    check_backward(s, seed += 10);
}

// Batches larger than one im2col chunk: 32x32 with K = 2304 is one image per chunk; K = 864
// gives two images per chunk, so n = 3 ends with a partial chunk.
TEST(KernelConv, ChunkedBatch) {
  const Shape big[] = {{3, 32, 32, 256, 3, 3, 1, 1, 1, 1, 1, 1, 4},
                       {3, 32, 32, 96, 3, 3, 1, 1, 1, 1, 1, 1, 4}};
  for (const Shape &s : big) {
    sn_conv_geom g = geom(s);
    const size_t per_image = (size_t)g.oh * g.ow * g.kh * g.kw * g.cin;
    ASSERT_LT(sn_conv_forward_workspace(&g), per_image * g.n); // really chunked
    check_forward(s, 300);
    check_backward(s, 310);
  }
}

// Finite differences of L = sum(dy * conv(x, w) + b) in double against the float kernel.
// Run with the default algorithm choice and with Winograd (the 3x3 stride-1 shapes) and the
// packed GEMM (the others) forced.
TEST(KernelConv, GradientFiniteDifferences) {
  const Shape small[] = {
      {2, 5, 6, 3, 3, 3, 2, 2, 0, 0, 1, 1, 4}, {1, 7, 5, 2, 7, 7, 2, 2, 3, 3, 3, 3, 3},
      {3, 5, 5, 3, 1, 1, 2, 2, 0, 0, 0, 0, 2}, {2, 4, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 2},
      {2, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 2}, {1, 6, 5, 2, 3, 3, 1, 1, 2, 0, 1, 2, 3}};
  uint64_t seed = 400;
  for (int pass = 0; pass < 2; ++pass)
    for (const Shape &s : small) {
      SCOPED_TRACE(name(s) + (pass ? " winograd and gemm forced" : ""));
      sn_conv_geom g = geom(s, pass ? forced(kOn, kOn) : sn_kernel_opts{});
      const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
      const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
      fvec x = sntest::randn(nx, ++seed), w = sntest::randn(nw, ++seed);
      fvec b = sntest::randn(g.cout, ++seed), dy = sntest::randn(ny, ++seed);
      const dvec xd = kcheck::to_d(x), wd = kcheck::to_d(w), bd = kcheck::to_d(b);
      const dvec dyd = kcheck::to_d(dy);
      auto loss_x = [&](const dvec &v) {
        return kcheck::dot(dyd, conv_fwd(g, v, wd, &bd, nullptr, false));
      };
      auto loss_w = [&](const dvec &v) {
        return kcheck::dot(dyd, conv_fwd(g, xd, v, &bd, nullptr, false));
      };
      auto loss_b = [&](const dvec &v) {
        return kcheck::dot(dyd, conv_fwd(g, xd, wd, &v, nullptr, false));
      };
      Workspace ws(sn_conv_backward_workspace(&g));
      fvec dx(nx), dw(nw), db(g.cout);
      sn_conv_backward(&g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(),
                       ws.data());
      EXPECT_TRUE(kcheck::close(dx, kcheck::fd_grad(loss_x, xd, 1e-3), 2e-5));
      EXPECT_TRUE(kcheck::close(dw, kcheck::fd_grad(loss_w, wd, 1e-3), 2e-5));
      EXPECT_TRUE(kcheck::close(db, kcheck::fd_grad(loss_b, bd, 1e-3), 2e-5));
    }
}

// The residual is added before the activation: relu(conv + res) differs from relu(conv) + res.
TEST(KernelConv, ResidualBeforeRelu) {
  sn_conv_geom g = geom({1, 4, 4, 2, 1, 1, 1, 1, 0, 0, 0, 0, 2});
  fvec x(32, 1.0f), w = {1, 0, 0, 1}, r(32, -3.0f), y(32);
  Workspace ws(sn_conv_forward_workspace(&g));
  sn_conv_forward(&g, x.data(), w.data(), nullptr, r.data(), 1, y.data(), ws.data());
  for (float v : y)
    EXPECT_EQ(0.0f, v); // relu(1 - 3) = 0, not relu(1) - 3 = -2
  fvec b = {2.5f, 1.0f};
  sn_conv_forward(&g, x.data(), w.data(), b.data(), r.data(), 1, y.data(), ws.data());
  for (int i = 0; i < 16; ++i) {
    EXPECT_FLOAT_EQ(0.5f, y[2 * i]);
    EXPECT_FLOAT_EQ(0.0f, y[2 * i + 1]);
  }
}

namespace {

// Shapes of the direct AVX-512 kernels' corner cases (conv_direct.c): column blocks of 64 with a
// partial last vector, row tiles split unevenly (OW > 28), the constant-stride full tiles
// (Cin*stride 16/32/64 with Cout 16/32), Cin = 1, pointwise rows longer than a tile, batch not a
// multiple of the 8 chunks, batch 1, stride 2 (backward data by phases, some rows of the last
// phase beyond dy), padding >= kernel, asymmetric padding, stride 3 > kernel 2 (phases without
// taps: zero dx), stride 2 with an even kernel and more phase rows than dy rows.
const Shape kDirectShapes[] = {
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

} // namespace

TEST(KernelConv, DirectShapesForward) {
  uint64_t seed = 500;
  for (const Shape &s : kDirectShapes)
    check_forward(s, seed += 10);
}

TEST(KernelConv, DirectShapesBackward) {
  uint64_t seed = 600;
  for (const Shape &s : kDirectShapes)
    check_backward(s, seed += 10);
}

// The direct shapes again with Winograd forced where valid, with it off (the direct kernels
// everywhere), and with the packed GEMM forced (forward and stride-1 backward data).
TEST(KernelConv, DirectShapesWinogradForcedAndOff) {
  uint64_t seed = 900;
  for (int mode = 0; mode < 3; ++mode) {
    const sn_kernel_opts o = forced(mode == 0 ? kOn : kOff, mode == 2 ? kOn : kOff);
    SCOPED_TRACE("mode " + std::to_string(mode));
    for (const Shape &s : kDirectShapes) {
      check_forward(s, seed += 10, o);
      check_backward(s, seed += 10, o);
    }
  }
}

// Winograd F(2x2, 3x3) corner cases: odd output sizes (partial 2x2 tiles), padding 0 and 2 and
// asymmetric (the flipped backward pass pads by 2 - p), channels not a multiple of 16 and more
// than one 64-column block, several bands of tile rows per image (30x30 with 80 channels:
// 51 tiles per band), batch 1 and batch 9 (uneven chunks). Same tolerance as direct: F(2x2)'s
// transforms have coefficients 0, +-1, +-1/2 and add ~2x the rounding of a direct sum
// (spec/KERNELS.md 4.1).
TEST(KernelConv, WinogradShapes) {
  const sn_kernel_opts force = forced(kOn);
  const Shape shapes[] = {
      // n  h   w  cin kh kw sh sw pt pl pb pr cout
      {1, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8},    {9, 6, 5, 19, 3, 3, 1, 1, 1, 1, 1, 1, 21},
      {2, 8, 7, 16, 3, 3, 1, 1, 0, 0, 0, 0, 16},  {2, 5, 6, 16, 3, 3, 1, 1, 2, 2, 2, 2, 24},
      {2, 7, 8, 24, 3, 3, 1, 1, 0, 2, 1, 0, 70},  {2, 30, 30, 80, 3, 3, 1, 1, 1, 1, 1, 1, 80},
      {5, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 128}, {3, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 130},
  };
  uint64_t seed = 1000;
  for (const Shape &s : shapes) {
    check_forward(s, seed += 10, force);
    check_backward(s, seed += 10, force);
  }
}

// Images whose x and dy exceed the weight gradient's sweep (1 MiB): bands of pixels of a
// pointwise image, bands of output rows (stride 1 with Winograd off, and stride 2).
TEST(KernelConv, WeightGradientBands) {
  const sn_kernel_opts off = forced(kOff);
  const Shape shapes[] = {{1, 56, 56, 64, 1, 1, 1, 1, 0, 0, 0, 0, 256},
                          {1, 48, 48, 96, 3, 3, 1, 1, 1, 1, 1, 1, 96},
                          {1, 60, 60, 64, 3, 3, 2, 2, 1, 1, 1, 1, 80}};
  uint64_t seed = 1100;
  for (const Shape &s : shapes)
    check_backward(s, seed += 10, off);
}

// The generic path (used without AVX-512) on the same shapes.
TEST(KernelConv, GenericPathShapes) {
  sn_kernel_opts generic{};
  generic.portable = 1;
  uint64_t seed = 700;
  for (const Shape &s : kDirectShapes) {
    check_forward(s, seed += 10, generic);
    check_backward(s, seed += 10, generic);
  }
  check_backward(kShapes[1], 790, generic);
}

// Results do not depend on the thread count: each output (and each chunk's partial dW) is
// computed by one thread in a fixed order, and the partials are summed in chunk order.
TEST(KernelConv, SameResultsForAnyThreadCount) {
  const Shape shapes[] = {
      {11, 5, 30, 17, 3, 3, 1, 1, 1, 1, 1, 1, 70},  {16, 14, 14, 16, 3, 3, 2, 2, 1, 1, 1, 1, 32},
      {10, 30, 30, 80, 3, 3, 1, 1, 1, 1, 1, 1, 80}, {5, 7, 7, 64, 3, 3, 2, 2, 1, 1, 1, 1, 128},
      {5, 7, 7, 512, 1, 1, 1, 1, 0, 0, 0, 0, 160},  {3, 7, 7, 64, 1, 1, 1, 1, 0, 0, 0, 0, 512}};
  // The third shape by Winograd (forced; the first by direct: 5 rows); the last
  // three by the packed GEMM (forward of the first two, backward data of the last) and the
  // large-weight gradient (> 64K weights: 4 chunks, blocks of images).
  const int saved = omp_get_max_threads();
  for (const Shape &s : shapes) {
    SCOPED_TRACE(name(s));
    sn_conv_geom g = geom(s, forced(kOn));
    const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
    const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
    fvec x = sntest::randn(nx, 800), w = sntest::randn(nw, 801), dy = sntest::randn(ny, 802);
    std::vector<fvec> outs;
    for (int t : {1, 2, 3}) {
      omp_set_num_threads(t);
      Workspace wf(sn_conv_forward_workspace(&g)), wb(sn_conv_backward_workspace(&g));
      fvec y(ny), dx(nx), dw(nw), db(g.cout);
      sn_conv_forward(&g, x.data(), w.data(), nullptr, nullptr, 0, y.data(), wf.data());
      sn_conv_backward(&g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(),
                       wb.data());
      fvec all = y;
      all.insert(all.end(), dx.begin(), dx.end());
      all.insert(all.end(), dw.begin(), dw.end());
      all.insert(all.end(), db.begin(), db.end());
      outs.push_back(all);
    }
    omp_set_num_threads(saved);
    for (size_t i = 1; i < outs.size(); ++i)
      EXPECT_EQ(0, memcmp(outs[0].data(), outs[i].data(), outs[0].size() * sizeof(float)));
  }
}

// The packed-GEMM weight gradient forced on every shape above (Cin 1, 3, 5, 17: partial 16-row
// transposes; Cout 3-130: partial 32-column panels; stride 2 and 3, padding >= kernel, asymmetric
// padding: taps in the padding are zeros), on shapes with several pixel blocks and a partial last
// one (N*OH*OW not a multiple of the block), dW row ranges longer than one packed chunk of A
// (K = 9*64 = 576 rows) and more than 1024 columns; then every direct shape with it off.
TEST(KernelConv, WeightGradientGemm) {
  const Shape more[] = {
      // n  h   w  cin kh kw sh sw pt pl pb pr cout
      {3, 13, 11, 64, 3, 3, 1, 1, 1, 1, 1, 1, 40},  {1, 15, 17, 19, 3, 3, 2, 2, 1, 1, 1, 1, 33},
      {2, 9, 9, 256, 1, 1, 1, 1, 0, 0, 0, 0, 1100}, {5, 7, 7, 48, 1, 1, 2, 2, 0, 0, 0, 0, 64},
      {1, 23, 21, 3, 7, 7, 2, 2, 3, 3, 3, 3, 64},
  };
  uint64_t seed = 1300;
  const sn_kernel_opts on = forced(kAuto, kAuto, kOn), off = forced(kAuto, kAuto, kOff);
  for (const Shape &s : kShapes)
    check_backward(s, seed += 10, on);
  for (const Shape &s : kDirectShapes)
    check_backward(s, seed += 10, on);
  for (const Shape &s : more)
    check_backward(s, seed += 10, on);
  for (const Shape &s : kDirectShapes)
    check_backward(s, seed += 10, off);
}

// The packed-GEMM weight gradient gives the same bits for 1, 2 and 3 threads (the task split
// changes with the thread count; every dW element is the same chain of FMAs over the same pixel
// blocks).
TEST(KernelConv, WeightGradientGemmAnyThreadCount) {
  const Shape shapes[] = {{3, 13, 11, 64, 3, 3, 1, 1, 1, 1, 1, 1, 40},
                          {2, 9, 9, 256, 1, 1, 1, 1, 0, 0, 0, 0, 1100},
                          {4, 14, 14, 17, 3, 3, 2, 2, 1, 1, 1, 1, 70}};
  const int saved = omp_get_max_threads();
  for (const Shape &s : shapes) {
    SCOPED_TRACE(name(s));
    sn_conv_geom g = geom(s, forced(kAuto, kAuto, kOn));
    const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
    const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
    fvec x = sntest::randn(nx, 1400), dy = sntest::randn(ny, 1402), w = sntest::randn(nw, 1401);
    std::vector<fvec> outs;
    for (int t : {1, 2, 3}) {
      omp_set_num_threads(t);
      Workspace wb(sn_conv_backward_workspace(&g));
      fvec dw(nw, NAN);
      sn_conv_backward(&g, x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr, wb.data());
      EXPECT_TRUE(wb.canary_intact());
      outs.push_back(dw);
    }
    omp_set_num_threads(saved);
    for (size_t i = 1; i < outs.size(); ++i)
      EXPECT_EQ(0, memcmp(outs[0].data(), outs[i].data(), outs[0].size() * sizeof(float)));
  }
}

// sn_conv_backward_acc (dx += the input gradient in the direct kernels' output pass) against
// sn_conv_backward into a separate buffer and then added: bitwise equal (float addition
// commutes), with dW and db unchanged, on every direct shape (strides with tapless phases,
// channels not a multiple of 16, batch 1) where the geometry's dx runs on the direct kernels.
TEST(KernelConv, BackwardAccumulatesIntoDx) {
  uint64_t seed = 1300;
  int accumulating = 0;
  for (const Shape &s : kDirectShapes) {
    SCOPED_TRACE(name(s));
    sn_conv_geom g = geom(s);
    if (!sn_conv_backward_accumulates(&g)) continue;
    ++accumulating;
    const size_t nx = (size_t)g.n * g.h * g.w * g.cin, nw = (size_t)g.kh * g.kw * g.cin * g.cout;
    const size_t ny = (size_t)g.n * g.oh * g.ow * g.cout;
    fvec x = sntest::randn(nx, seed += 10), w = sntest::randn(nw, seed + 1),
         dy = sntest::randn(ny, seed + 2), base = sntest::randn(nx, seed + 3);
    Workspace ws(sn_conv_backward_workspace(&g));
    fvec dx(nx, NAN), dw(nw, NAN), db(g.cout, NAN);
    sn_conv_backward(&g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), ws.data());
    for (size_t i = 0; i < nx; ++i) dx[i] += base[i];
    fvec acc = base, dw2(nw, NAN), db2(g.cout, NAN);
    sn_conv_backward_acc(&g, x.data(), w.data(), dy.data(), acc.data(), dw2.data(), db2.data(),
                         ws.data());
    EXPECT_EQ(0, std::memcmp(dx.data(), acc.data(), nx * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(dw.data(), dw2.data(), nw * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(db.data(), db2.data(), g.cout * sizeof(float)));
    EXPECT_TRUE(ws.canary_intact());
  }
  if (sn_cpu_has_avx512()) EXPECT_GT(accumulating, 10);
}
