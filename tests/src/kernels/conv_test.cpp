// conv_test.cpp - the convolution entry points and the algorithm choice (src/kernels/conv.c):
// geometry, workspaces, forced and default choices, accumulation, input maps, prepared
// convolutions, results independent of the thread count.
// Reference convolutions, shapes and tolerances: conv_check.h.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <string>
#include <vector>

#include "conv_check.h"
#include "kernels.h"
#include "test_util.h"

using namespace convcheck;

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
    for (size_t i = 0; i < nx; ++i)
      dx[i] += base[i];
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

// Thread counts other than the default 2 change the work split (1 thread: no split; 3 threads:
// uneven ranges); the prepared workspace must also cover running with fewer threads.
TEST(ConvImpl, ThreadCounts) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const int saved = omp_get_max_threads();
  const ImplShape g1 = {3, 19, 19, 300, 1, 1, 0, 0, 0, 0, 40};
  const ImplShape g3 = {3, 13, 13, 17, 3, 2, 1, 1, 1, 1, 33};
  const ImplShape w1 = {3, 29, 29, 64, 3, 1, 1, 1, 1, 1, 48};
  const ImplShape w2 = {1, 14, 14, 48, 3, 1, 1, 1, 1, 1, 130};
  for (int nt : {1, 3}) {
    omp_set_num_threads(nt);
    EXPECT_LE(run_case(g1, SN_CONV_GEMM, true, true, true, 3, 7), 2e-6) << nt;
    EXPECT_LE(run_case(g3, SN_CONV_GEMM, true, true, true, 2, 8), 2e-6) << nt;
    EXPECT_LE(run_case(w1, SN_CONV_WINOGRAD, true, true, true, 3, 9), 1e-5) << nt;
    EXPECT_LE(run_case(w2, SN_CONV_WINOGRAD, true, true, true, 1, 10), 1e-5) << nt;
    EXPECT_LE(run_case(w1, SN_CONV_WINOGRAD2, true, true, true, 3, 11), 2e-6) << nt;
    EXPECT_LE(run_case(w2, SN_CONV_WINOGRAD2, true, true, true, 1, 12), 2e-6) << nt;
  }
  omp_set_num_threads(saved);
}

TEST(ConvImpl, AutoChoosesByShape) {
  const bool fast = sn_cpu_has_avx512();
  // the direct tiles split a call by images: planned for at least as many images as threads
  const int nt = omp_get_max_threads();
  struct Want {
    ImplShape s;
    bool bias, res, relu;
    int n_run;
    double tol;
    const char *fast_name; // with AVX-512; "generic" without
  };
  const Want wants[] = {
      {{1, 56, 56, 64, 3, 1, 1, 1, 1, 1, 64}, true, true, true, 1, 1e-5, "winograd4x4"},
      // 14x14x256 (resnet50 layer 3): at batch 1 F(4x4) streams 9.4 MB of U for 16 tiles, and
      // F(2x2) (4.2 MB) is cheaper; at batch 2 F(4x4) again, unless more than 2 threads share
      // the streaming (the cost rule's DRAM rate stops growing at 2)
      {{1, 14, 14, 256, 3, 1, 1, 1, 1, 1, 256}, true, false, true, 1, 1e-5, "winograd2x2"},
      {{2, 14, 14, 256, 3, 1, 1, 1, 1, 1, 256},
       true,
       false,
       true,
       1,
       1e-5,
       nt > 2 ? "winograd2x2" : "winograd4x4"},
      {{1, 7, 7, 64, 3, 1, 1, 1, 1, 1, 64}, true, false, true, 1, 2e-5, "im2col"},
      {{2, 14, 14, 64, 1, 1, 0, 0, 0, 0, 256}, true, true, false, 2, 2e-5, "gemm1x1"},
      {{2, 14, 14, 64, 1, 2, 0, 0, 0, 0, 128}, false, false, true, 2, 2e-5, "gemm1x1"},
      {{1, 28, 28, 64, 3, 2, 1, 1, 1, 1, 64}, true, false, true, 1, 2e-5, "im2col"},
      {{nt, 28, 28, 16, 3, 1, 1, 1, 1, 1, 16}, true, true, true, 2, 2e-5, "direct"}, // resnet20
      {{nt, 28, 28, 16, 3, 2, 1, 1, 1, 1, 32}, true, false, true, 2, 2e-5, "direct"},
      {{nt, 28, 28, 16, 1, 2, 0, 0, 0, 0, 32}, true, true, false, 2, 2e-5, "gemm1x1"},
      {{nt, 64, 64, 3, 7, 2, 3, 3, 3, 3, 64}, true, false, true, 1, 2e-5, "direct"}, // RGB stem
      {{1, 64, 64, 3, 7, 2, 3, 3, 3, 3, 64},
       true,
       false,
       true,
       1,
       2e-5,
       nt > 1 ? "im2col" : "direct"}, // at batch 1 the GEMM keeps both threads busy
  };
  uint64_t seed = 1;
  for (const Want &w : wants) {
    std::string name;
    // n_run <= the planned batch (the resnet20 rows plan nt images: 1 with one thread)
    const int n_run = w.n_run < w.s.n ? w.n_run : w.s.n;
    EXPECT_LE(run_case(w.s, SN_CONV_AUTO, w.bias, w.res, w.relu, n_run, seed++, &name), w.tol)
        << str(w.s);
    EXPECT_EQ(name, fast ? w.fast_name : "generic") << str(w.s);
  }
}

// sn_conv_impl_update repacks: after it the plan computes with the new weights and bias.
TEST(ConvImpl, UpdateRepacks) {
  for (sn_conv_algo algo : {SN_CONV_GENERIC, SN_CONV_GEMM, SN_CONV_WINOGRAD, SN_CONV_WINOGRAD2}) {
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, 2, 9, 9, 17, 3, 3, 1, 1, 1, 1, 1, 1, 20));
    const size_t K = 9 * 17;
    std::vector<float> x = sntest::randn(2 * 81 * 17, 1);
    std::vector<float> w1 = sntest::randn(K * 20, 2, 0.1f), w2 = sntest::randn(K * 20, 3, 0.1f);
    std::vector<float> b1 = sntest::randn(20, 4), b2 = sntest::randn(20, 5);
    sn_conv_impl *c = nullptr;
    ASSERT_EQ(0, sn_conv_prepare_algo(&g, w1.data(), b1.data(), algo, &c));
    sn_conv_impl_update(c, w2.data(), b2.data());
    std::vector<float> ws(sn_conv_impl_workspace(c) + 1), y(2 * 81 * 20), ref(y.size());
    sn_conv_impl_forward(c, 2, x.data(), nullptr, 0, y.data(), ws.data());
    sn_conv_forward_ref(&g, x.data(), w2.data(), b2.data(), nullptr, 0, ref.data());
    EXPECT_LE(sntest::max_abs_diff(y.data(), ref.data(), y.size()),
              1e-5 * sntest::max_abs(ref.data(), ref.size()))
        << algo_name(algo);
    sn_conv_impl_destroy(c);
  }
}

TEST(ConvImpl, DestroyNull) { sn_conv_impl_destroy(nullptr); }

// sn_conv_impl_forward_in (a batch norm's affine map and ReLU applied while the 1x1 input rows
// are copied) against sn_bn_affine into a buffer, then sn_conv_impl_forward: bitwise equal, on
// the unpadded 1x1 shapes: Cin not a multiple of 16, two K blocks (Cin 300), stride 2, wide N
// (Cout 300: all row panels packed first), a batch of 1 (7x7: A packed once and shared), with
// and without the ReLU, bias and residual; x holds negative values, -0 and a NaN.
TEST(ConvImpl, InputMapEqualsAffineThenConv) {
  if (!sn_cpu_has_avx512()) GTEST_SKIP() << "the map runs in the AVX-512 packed GEMM";
  const ImplShape shapes[] = {
      {3, 7, 7, 17, 1, 1, 0, 0, 0, 0, 33},   {3, 19, 19, 300, 1, 1, 0, 0, 0, 0, 40},
      {3, 13, 13, 33, 1, 2, 0, 0, 0, 0, 17}, {2, 9, 9, 64, 1, 1, 0, 0, 0, 0, 300},
      {1, 7, 7, 512, 1, 1, 0, 0, 0, 0, 128},
  };
  uint64_t seed = 700;
  int cases = 0;
  for (const ImplShape &s : shapes) {
    sn_conv_geom g;
    ASSERT_EQ(0, sn_conv_geom_init(&g, nullptr, s.n, s.h, s.w, s.cin, 1, 1, s.s, s.s, 0, 0, 0, 0,
                                   s.cout));
    ASSERT_TRUE(sn_conv_impl_input_map_ok(&g)) << str(s);
    const size_t rows = (size_t)s.n * s.h * s.w, ny = (size_t)s.n * g.oh * g.ow * s.cout;
    std::vector<float> x = sntest::randn(rows * s.cin, seed += 10);
    x[1] = -0.0f;
    x[2] = NAN;
    std::vector<float> w = sntest::randn((size_t)s.cin * s.cout, seed + 1, 0.1f);
    std::vector<float> b = sntest::randn(s.cout, seed + 2, 0.1f);
    std::vector<float> res = sntest::randn(ny, seed + 3);
    std::vector<float> scale = sntest::randn(s.cin, seed + 4),
                       shift = sntest::randn(s.cin, seed + 5);
    sn_conv_impl *c = nullptr;
    ASSERT_EQ(0, sn_conv_prepare(&g, w.data(), b.data(), &c));
    std::vector<float> ws(sn_conv_impl_workspace(c));
    for (int bn_relu = 0; bn_relu < 2; ++bn_relu)
      for (const Epi &e : kEpis) {
        SCOPED_TRACE(str(s) + " bn relu " + std::to_string(bn_relu) + " res " +
                     std::to_string(e.res) + " relu " + std::to_string(e.relu));
        std::vector<float> xm(x.size()), y1(ny, 1.0f), y2(ny, 2.0f);
        sn_bn_affine(0, x.data(), rows, s.cin, scale.data(), shift.data(), bn_relu, xm.data());
        sn_conv_impl_forward(c, s.n, xm.data(), e.res ? res.data() : nullptr, e.relu, y1.data(),
                             ws.data());
        const sn_conv_in in = {scale.data(), shift.data(), bn_relu};
        sn_conv_impl_forward_in(c, s.n, x.data(), &in, e.res ? res.data() : nullptr, e.relu,
                                y2.data(), ws.data());
        EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), ny * sizeof(float)));
        ++cases;
      }
    sn_conv_impl_destroy(c);
  }
  EXPECT_EQ(cases, 5 * 2 * 4);
  // not for padded or 3x3 convolutions (the planner checks this before fusing)
  sn_conv_geom g3;
  ASSERT_EQ(0, sn_conv_geom_init(&g3, nullptr, 1, 7, 7, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16));
  EXPECT_FALSE(sn_conv_impl_input_map_ok(&g3));
  ASSERT_EQ(0, sn_conv_geom_init(&g3, nullptr, 1, 7, 7, 16, 1, 1, 1, 1, 1, 1, 1, 1, 16));
  EXPECT_FALSE(sn_conv_impl_input_map_ok(&g3));
}
