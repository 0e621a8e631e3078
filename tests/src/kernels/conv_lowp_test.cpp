// conv_lowp_test.cpp - the low-precision inference convolutions (src/kernels/conv_lowp.c and its
// micro-kernels conv_lowp_tiles.c), through the dispatcher's sn_conv_prepare_lp, on AMX and on
// the AVX-512 kernels (AMX switched off with sn_kernel_opts.cpu_off), against float64 references
// that apply the rounding rules of docs/kernels.md ("Low precision"):
//   bf16: every input (after the input map) and weight rounded by sn_bf16_from_f32 (nearest,
//         ties to even; denormals to zero), products summed in double. The kernel's products are
//         exact in float32 and only its float32 sums differ: a sum of K terms carries about
//         sqrt(K) u |terms| (u = 6e-8), so rtol 2e-6 for K <= 1200 (the GEMM paths' rule,
//         docs/kernels.md "The tolerance rule").
//   int8: inputs quantized by sn_quant_u8_ref, weights per output channel by the rule written
//         out here in double (scale = max|w| / 127, q = round half even, clamp +-127), integer
//         sums in int64 (exact), then y = in_scale * wscale[o] * (sum - zp * colsum[o]) + bias
//         (+ residual, ReLU) in double. The kernel's sums are exact; its float32 epilogue rounds
//         mult, the product and the additions: a few u of max|y|, rtol 1e-6. A wrong quantized
//         input or weight changes y by wscale * in_scale * |q| ~ 1e-3 of max|y|: caught.
//   uint8 outputs: q = the rule applied to the reference y; a kernel value that differs must
//         differ by 1 and come from a y within 1e-4 steps of a rounding tie.
// Bitwise checks: the vector rounding and quantization against the scalar rules (identity
// weights make y the rounded input), AMX against AVX-512 for int8 (both exact), and any thread
// count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "conv_check.h"
#include "kernels.h"
#include "test_util.h"

using namespace convcheck;

namespace {

struct Isa {
  const char *name;
  unsigned off; // cpu_off
};
const Isa kAmx = {"amx", 0}, kAvx512 = {"avx512", SN_CPU_AMX_BF16 | SN_CPU_AMX_INT8};

// The ISA variants that run here: AMX only where the CPU has it (else it would repeat AVX-512).
std::vector<Isa> isas(sn_precision p) {
  std::vector<Isa> v;
  const unsigned f = sn_cpu_features();
  const unsigned amx = p == SN_PRECISION_INT8 ? SN_CPU_AMX_INT8 : SN_CPU_AMX_BF16;
  if (f & amx) v.push_back(kAmx);
  if (sn_lp_supported(p, f & ~kAvx512.off)) v.push_back(kAvx512);
  return v;
}

sn_conv_geom lgeom(const Shape &s, unsigned off) {
  sn_kernel_opts o{};
  o.cpu_off = off;
  return geom(s, o);
}

struct Case {
  bool signed_in = false; // int8: N(0,1) input, zero point 128; else ReLU(N(0,1)), 0
  bool in_map = false;    // an input map (scale, shift, ReLU) before rounding
  bool bias = true, res = false, relu = true;
  bool in_u8 = false, out_u8 = false, res_u8 = false; // int8 storage formats
};

std::string label(const Shape &s, const Case &c, const Isa &isa) {
  char b[200];
  snprintf(b, sizeof b,
           "%s n%d %dx%dx%d k%dx%d s%d p%d,%d,%d,%d cout %d signed %d map %d res %d "
           "in_u8 %d out_u8 %d res_u8 %d",
           isa.name, s.n, s.h, s.w, s.cin, s.kh, s.kw, s.sh, s.pt, s.pl, s.pb, s.pr, s.cout,
           c.signed_in, c.in_map, c.res, c.in_u8, c.out_u8, c.res_u8);
  return b;
}

struct Data {
  fvec x, w, bias, res, scale, shift;
};

Data make_data(const sn_conv_geom &g, const Case &c, uint64_t seed) {
  Data d;
  const size_t nx = (size_t)g.n * g.h * g.w * g.cin, k = (size_t)g.kh * g.kw * g.cin;
  d.x = sntest::randn(nx, seed);
  if (!c.signed_in && !c.in_map)
    for (float &v : d.x)
      v = v > 0 ? v : 0;
  d.w = sntest::randn(k * g.cout, seed + 1, (float)std::sqrt(2.0 / (double)k));
  d.bias = sntest::randn(g.cout, seed + 2, 0.1f);
  d.res = sntest::randn((size_t)g.n * g.oh * g.ow * g.cout, seed + 3);
  d.scale = sntest::uniform(g.cin, seed + 4, 0.5f, 1.5f);
  d.shift = sntest::randn(g.cin, seed + 5, 0.3f);
  return d;
}

// The input the convolution rounds: x through the map (scale, shift, ReLU) in float32 with an FMA,
// as the map is applied.
fvec mapped(const sn_conv_geom &g, const Data &d, const Case &c) {
  fvec v = d.x;
  if (!c.in_map) return v;
  for (size_t i = 0; i < v.size(); ++i) {
    const int ch = (int)(i % g.cin);
    v[i] = std::fma(v[i], d.scale[ch], d.shift[ch]);
    if (v[i] < 0) v[i] = 0;
  }
  return v;
}

// The documented int8 weight rule in double: per column o of w (K, N).
void quant_weights(const fvec &w, int k, int n, std::vector<int> &q, dvec &scale, dvec &colsum) {
  q.assign((size_t)k * n, 0);
  scale.assign(n, 1.0);
  colsum.assign(n, 0.0);
  for (int o = 0; o < n; ++o) {
    double m = 0;
    for (int i = 0; i < k; ++i)
      m = std::fmax(m, std::fabs((double)w[(size_t)i * n + o]));
    const double s = m > 0 ? m / 127.0 : 1.0;
    scale[o] = (float)s; // stored in float32, as the kernel keeps it
    for (int i = 0; i < k; ++i) {
      double v = std::nearbyint((double)w[(size_t)i * n + o] / s);
      v = std::fmin(127, std::fmax(-127, v));
      q[(size_t)i * n + o] = (int)v;
      colsum[o] += v;
    }
  }
}

// A prepared convolution and its workspace (with a NaN canary after it).
struct Prepared {
  sn_conv_impl *impl = nullptr;
  ~Prepared() { sn_conv_impl_destroy(impl); }
};

void run_lp(const sn_conv_geom &g, const sn_conv_lp &q, const Data &d, const Case &c, const void *x,
            const void *res, void *y) {
  Prepared p;
  ASSERT_EQ(SN_OK,
            sn_conv_prepare_lp(&g, d.w.data(), c.bias ? d.bias.data() : nullptr, &q, &p.impl))
      << sn_last_error();
  Workspace ws(sn_conv_impl_workspace(p.impl));
  const sn_conv_in in = {d.scale.data(), d.shift.data(), 1, nullptr};
  sn_conv_impl_forward_lp(p.impl, g.n, x, c.in_map ? &in : nullptr, res, c.relu, y, ws.data());
  EXPECT_TRUE(ws.canary_intact()) << "workspace overrun";
}

void check_bf16(const Shape &s, const Case &c, const Isa &isa, uint64_t seed) {
  const sn_conv_geom g = lgeom(s, isa.off);
  SCOPED_TRACE(label(s, c, isa));
  const Data d = make_data(g, c, seed);
  const fvec xm = mapped(g, d, c);
  dvec xr(xm.size()), wr(d.w.size()), b = kcheck::to_d(d.bias), r = kcheck::to_d(d.res);
  for (size_t i = 0; i < xm.size(); ++i)
    xr[i] = sn_bf16_to_f32(sn_bf16_from_f32(xm[i]));
  for (size_t i = 0; i < d.w.size(); ++i)
    wr[i] = sn_bf16_to_f32(sn_bf16_from_f32(d.w[i]));
  const dvec ref = conv_fwd(g, xr, wr, c.bias ? &b : nullptr, c.res ? &r : nullptr, c.relu);
  sn_conv_lp q{};
  q.type = SN_PRECISION_BF16;
  fvec y(ref.size(), NAN);
  run_lp(g, q, d, c, d.x.data(), c.res ? d.res.data() : nullptr, y.data());
  EXPECT_TRUE(kcheck::close(y, ref, 2e-6));
}

// Quantizes v by the rule (scale s, zero point zp).
std::vector<uint8_t> quantize(const fvec &v, float s, int zp) {
  std::vector<uint8_t> q(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    q[i] = sn_quant_u8_ref(v[i], 1.0f / s, zp);
  return q;
}

float absmax(const fvec &v) {
  float m = 0;
  for (float x : v)
    m = std::fmax(m, std::fabs(x));
  return m;
}

void check_int8(const Shape &s, const Case &c, const Isa &isa, uint64_t seed) {
  const sn_conv_geom g = lgeom(s, isa.off);
  SCOPED_TRACE(label(s, c, isa));
  const Data d = make_data(g, c, seed);
  const fvec xm = mapped(g, d, c);
  sn_conv_lp q{};
  q.type = SN_PRECISION_INT8;
  q.in_zp = c.signed_in ? 128 : 0;
  // a threshold below the maximum, so that some inputs clip
  q.in_scale = 0.8f * absmax(xm) / (c.signed_in ? 127.0f : 255.0f);
  q.in_u8 = c.in_u8;
  const std::vector<uint8_t> qx = quantize(xm, q.in_scale, q.in_zp);
  const int k = g.kh * g.kw * g.cin;
  std::vector<int> qw;
  dvec ws, colsum;
  quant_weights(d.w, k, g.cout, qw, ws, colsum);
  // exact integer sums, the zero point's padding contributing 0
  dvec xd(qx.size()), wd(qw.size());
  for (size_t i = 0; i < qx.size(); ++i)
    xd[i] = (double)qx[i] - q.in_zp;
  for (size_t i = 0; i < qw.size(); ++i)
    wd[i] = qw[i];
  const dvec acc = conv_fwd(g, xd, wd, nullptr, nullptr, false);
  // the residual as the kernel reads it
  fvec resf = d.res;
  std::vector<uint8_t> resq;
  if (c.res_u8) {
    for (float &v : resf)
      v = std::fabs(v);
    q.res_u8 = 1;
    q.res_scale = absmax(resf) / 255.0f;
    resq = quantize(resf, q.res_scale, 0);
  }
  dvec ref(acc.size());
  const size_t np = ref.size() / g.cout;
  for (size_t p = 0; p < np; ++p)
    for (int o = 0; o < g.cout; ++o) {
      const size_t i = p * g.cout + o;
      double v = (double)q.in_scale * ws[o] * acc[i] + (c.bias ? d.bias[o] : 0.0);
      if (c.res) v += c.res_u8 ? (double)resq[i] * q.res_scale : (double)resf[i];
      ref[i] = c.relu && v < 0 ? 0 : v;
    }
  const void *x = c.in_u8 ? (const void *)qx.data() : (const void *)d.x.data();
  const void *res = !c.res ? nullptr : c.res_u8 ? (const void *)resq.data() : resf.data();
  if (!c.out_u8) {
    fvec y(ref.size(), NAN);
    run_lp(g, q, d, c, x, res, y.data());
    EXPECT_TRUE(kcheck::close(y, ref, 1e-6));
    return;
  }
  q.out_u8 = 1;
  double mx = 0;
  for (double v : ref)
    mx = std::fmax(mx, v);
  q.out_scale = (float)(0.9 * mx / 255.0);
  std::vector<uint8_t> y(ref.size(), 77);
  run_lp(g, q, d, c, x, res, y.data());
  int off_by_one = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double t = ref[i] / q.out_scale;
    const int want = sn_quant_u8_ref((float)ref[i], 1.0f / q.out_scale, 0);
    if (y[i] == want) continue;
    const double tie_dist = std::fabs(t - std::floor(t) - 0.5);
    ASSERT_TRUE(std::abs((int)y[i] - want) == 1 && tie_dist < 1e-4)
        << "output " << i << ": " << (int)y[i] << " against " << want << " (y/scale " << t << ")";
    off_by_one++;
  }
  EXPECT_LE(off_by_one, 2) << "outputs at a rounding tie";
}

// Shapes of every A source: rows (unpadded 1x1 stride 1, Cin * es a multiple of 64), line
// (stride 1, padded), pack (strided, small Cin, Cin not a multiple of 64 for int8); tails in M
// (M < 32, M not a multiple of 14 or 32) and in N (Cout 16, 33, 40, 70: partial panels, an odd
// number of column blocks).
const Shape kLpShapes[] = {
    // n  h  w  cin kh kw sh sw pt pl pb pr cout
    {2, 7, 9, 64, 1, 1, 1, 1, 0, 0, 0, 0, 96},   {1, 5, 5, 128, 1, 1, 1, 1, 0, 0, 0, 0, 40},
    {2, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1, 64},   {1, 7, 7, 96, 3, 3, 1, 1, 1, 1, 1, 1, 48},
    {2, 9, 9, 32, 3, 3, 2, 2, 1, 1, 1, 1, 70},   {1, 11, 11, 3, 7, 7, 2, 2, 3, 3, 3, 3, 16},
    {3, 6, 6, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16},   {2, 8, 8, 64, 1, 1, 2, 2, 0, 0, 0, 0, 128},
    {1, 14, 14, 64, 3, 3, 1, 1, 2, 0, 1, 2, 33}, {1, 2, 3, 128, 3, 3, 1, 1, 1, 1, 1, 1, 32},
};

} // namespace

TEST(KernelConvLowp, Bf16MatchesReference) {
  const std::vector<Isa> v = isas(SN_PRECISION_BF16);
  if (v.empty()) GTEST_SKIP() << "no AVX512-BF16 or AMX-BF16 on this CPU";
  uint64_t seed = 9000;
  Case plain, with_res, mapped_in;
  with_res.res = true;
  with_res.bias = false;
  mapped_in.in_map = true;
  mapped_in.relu = false;
  for (const Isa &isa : v)
    for (const Shape &s : kLpShapes) {
      check_bf16(s, plain, isa, seed += 10);
      check_bf16(s, with_res, isa, seed += 10);
      check_bf16(s, mapped_in, isa, seed += 10);
    }
}

TEST(KernelConvLowp, Int8MatchesReference) {
  const std::vector<Isa> v = isas(SN_PRECISION_INT8);
  if (v.empty()) GTEST_SKIP() << "no AVX512-VNNI or AMX-INT8 on this CPU";
  uint64_t seed = 9500;
  Case f32_in, u8_in, signed_in, mapped_in, res_f32, res_u8, out_u8;
  u8_in.in_u8 = true;
  signed_in.signed_in = true;
  signed_in.relu = false;
  mapped_in.in_map = true;
  res_f32.res = true;
  res_u8.res = res_u8.res_u8 = true;
  res_u8.in_u8 = true;
  out_u8.out_u8 = out_u8.in_u8 = true;
  out_u8.res = out_u8.res_u8 = true;
  for (const Isa &isa : v)
    for (const Shape &s : kLpShapes)
      for (const Case &c : {f32_in, u8_in, signed_in, mapped_in, res_f32, res_u8, out_u8})
        check_int8(s, c, isa, seed += 10);
}

namespace {

// 1x1 convolution of (1, 1, rows, cin) with weights w (cin, cin) through sn_conv_prepare_lp.
template <typename Y>
std::vector<Y> pointwise(const sn_conv_lp &q, const Isa &isa, const fvec &x, int rows, int cin,
                         const fvec &w) {
  const Shape s = {1, 1, rows, cin, 1, 1, 1, 1, 0, 0, 0, 0, cin};
  const sn_conv_geom g = lgeom(s, isa.off);
  Prepared p;
  std::vector<Y> y((size_t)rows * cin);
  EXPECT_EQ(SN_OK, sn_conv_prepare_lp(&g, w.data(), nullptr, &q, &p.impl)) << sn_last_error();
  if (!p.impl) return y;
  Workspace ws(sn_conv_impl_workspace(p.impl));
  sn_conv_impl_forward_lp(p.impl, 1, x.data(), nullptr, nullptr, 0, y.data(), ws.data());
  return y;
}

float bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// Values that exercise a rounding rule: ties either way, just off ties, denormals, the largest
// floats, random values over many octaves.
fvec hard_values() {
  fvec v = {0.0f,
            -0.0f,
            1.0f,
            -1.5f,
            bits(0x3F808000u),
            bits(0x3F818000u),
            bits(0x3F808001u),
            bits(0x3F807FFFu),
            bits(0xBF808000u),
            bits(0x00000001u),
            bits(0x807FFFFFu),
            bits(0x00800000u),
            bits(0x7F7F7FFFu),
            3.0e38f,
            1e-30f};
  fvec r = sntest::randn(400, 77);
  for (size_t i = 0; i < r.size(); ++i)
    v.push_back(r[i] * std::ldexp(1.0f, (int)(i % 40) - 20));
  return v;
}

} // namespace

// The bf16 rounding of the kernels' input staging against sn_bf16_from_f32, bitwise: identity
// weights (exact in bf16) make every output the rounded input itself (the other products are
// exact zeros). Infinities and NaN each sit alone in a row, of which only their own column is
// checked (elsewhere the zero weights times infinity give NaN).
TEST(KernelConvLowp, Bf16RoundingBitwise) {
  const std::vector<Isa> v = isas(SN_PRECISION_BF16);
  if (v.empty()) GTEST_SKIP() << "no AVX512-BF16 or AMX-BF16 on this CPU";
  const int cin = 32;
  fvec vals = hard_values();
  const fvec special = {INFINITY, -INFINITY, NAN, bits(0x7F7FFFFFu)}; // the last rounds to inf
  const int rows = (int)(vals.size() + cin - 1) / cin + (int)special.size();
  fvec x((size_t)rows * cin, 0.0f), w((size_t)cin * cin, 0.0f);
  for (int i = 0; i < cin; ++i)
    w[(size_t)i * cin + i] = 1.0f;
  for (size_t i = 0; i < vals.size(); ++i)
    x[i] = vals[i];
  const size_t s0 = (size_t)(rows - (int)special.size()) * cin;
  for (size_t i = 0; i < special.size(); ++i)
    x[s0 + i * cin + i] = special[i];
  sn_conv_lp q{};
  q.type = SN_PRECISION_BF16;
  for (const Isa &isa : v) {
    SCOPED_TRACE(isa.name);
    const fvec y = pointwise<float>(q, isa, x, rows, cin, w);
    for (size_t i = 0; i < x.size(); ++i) {
      // in a row holding an infinity the zero weights give NaN: only its own column counts
      if (i >= s0 && (i - s0) % cin != (i - s0) / cin) continue;
      const float want = sn_bf16_to_f32(sn_bf16_from_f32(x[i]));
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(y[i])) << "input " << i;
      } else if (want == 0) {
        EXPECT_EQ(0.0f, y[i]) << "input " << i << " " << x[i];
      } else {
        uint32_t a, b;
        memcpy(&a, &y[i], 4);
        memcpy(&b, &want, 4);
        EXPECT_EQ(b, a) << "input " << i << " = " << x[i];
      }
    }
  }
}

// The int8 quantization of the input staging against sn_quant_u8_ref, exactly: weights 127 * I
// give wscale = 1 and q = 127 on the diagonal, and in_scale = 1/16 makes mult = 1/16, so every
// output is 127 * (q - zp) / 16, exact in float32, and gives back q.
TEST(KernelConvLowp, Int8QuantizationExact) {
  const std::vector<Isa> v = isas(SN_PRECISION_INT8);
  if (v.empty()) GTEST_SKIP() << "no AVX512-VNNI or AMX-INT8 on this CPU";
  const int cin = 64;
  fvec vals = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e30f, -1e30f, 3e9f, -3e9f};
  for (int k = -140; k <= 300; ++k) // every tie q +- 0.5 and neighbours, past both ends
    for (float d : {0.5f, 0.4999f, 0.5001f, 0.0f})
      vals.push_back((k + d) / 16.0f);
  const int rows = (int)(vals.size() + cin - 1) / cin;
  fvec x((size_t)rows * cin, 0.0f), w((size_t)cin * cin, 0.0f);
  for (size_t i = 0; i < vals.size(); ++i)
    x[i] = vals[i];
  for (int i = 0; i < cin; ++i)
    w[(size_t)i * cin + i] = 127.0f;
  for (int zp : {0, 128})
    for (const Isa &isa : v) {
      SCOPED_TRACE(std::string(isa.name) + " zero point " + std::to_string(zp));
      sn_conv_lp q{};
      q.type = SN_PRECISION_INT8;
      q.in_scale = 1.0f / 16;
      q.in_zp = zp;
      const fvec y = pointwise<float>(q, isa, x, rows, cin, w);
      for (size_t i = 0; i < x.size(); ++i) {
        const double got = (double)y[i] * 16.0 / 127.0 + zp;
        EXPECT_EQ((double)sn_quant_u8_ref(x[i], 16.0f, zp), got) << "input " << x[i];
      }
    }
}

// The rules themselves against independent formulas: bf16 as the nearest float with 8
// significant bits (ties to the even one), from frexp in double; uint8 as clamp(rint(x/s) + zp).
TEST(KernelConvLowp, RoundingRulesAgainstFormulas) {
  for (float x : hard_values()) {
    if (x == 0 || !std::isfinite(x) || std::fabs(x) < 1.1754944e-38f) continue;
    int e;
    const double m = std::frexp((double)x, &e); // |m| in [0.5, 1)
    const double r = std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);
    const float want = std::fabs(r) > 3.4028234663852886e38 ? std::copysign(INFINITY, x) : (float)r;
    EXPECT_EQ(want, sn_bf16_to_f32(sn_bf16_from_f32(x))) << x;
  }
  EXPECT_EQ(0x7FC0, sn_bf16_from_f32(NAN) & 0x7FC0);
  EXPECT_EQ(0x0000, sn_bf16_from_f32(bits(0x00000001u))); // a denormal becomes zero
  EXPECT_EQ(0x8000, sn_bf16_from_f32(bits(0x807FFFFFu)));
  for (int zp : {0, 128})
    for (float x : sntest::randn(1000, 5)) {
      const float inv = 10.0f, t = x * inv;
      const double want = std::fmin(255, std::fmax(0, std::nearbyint(t) + zp));
      EXPECT_EQ(want, sn_quant_u8_ref(x, inv, zp)) << x;
    }
  EXPECT_EQ(0, sn_quant_u8_ref(NAN, 1.0f, 128));
  EXPECT_EQ(2, sn_quant_u8_ref(2.5f, 1.0f, 0)); // ties to even
  EXPECT_EQ(4, sn_quant_u8_ref(3.5f, 1.0f, 0));
}

// int8 gives the same bits on AMX and on AVX-512 (exact integer sums, one epilogue), and both
// ISAs and both precisions give the same bits for 1, 2 and 3 threads (every output is one
// kernel's sum over K in order, whatever the split).
TEST(KernelConvLowp, SameBitsAnyThreadCountAndIsa) {
  const Shape shapes[] = {{4, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 96},
                          {3, 13, 11, 64, 1, 1, 1, 1, 0, 0, 0, 0, 130},
                          {2, 15, 15, 48, 3, 3, 2, 2, 1, 1, 1, 1, 64}};
  const int saved = omp_get_max_threads();
  for (sn_precision p : {SN_PRECISION_BF16, SN_PRECISION_INT8}) {
    const std::vector<Isa> v = isas(p);
    std::vector<fvec> int8_isa;
    for (const Isa &isa : v)
      for (const Shape &s : shapes) {
        const sn_conv_geom g = lgeom(s, isa.off);
        Case c;
        c.res = true;
        const Data d = make_data(g, c, 4242);
        sn_conv_lp q{};
        q.type = p;
        q.in_scale = 0.02f;
        std::vector<fvec> outs;
        for (int t : {1, 2, 3}) {
          omp_set_num_threads(t);
          fvec y((size_t)g.n * g.oh * g.ow * g.cout, NAN);
          run_lp(g, q, d, c, d.x.data(), d.res.data(), y.data());
          outs.push_back(y);
        }
        omp_set_num_threads(saved);
        for (size_t i = 1; i < outs.size(); ++i)
          EXPECT_EQ(0, memcmp(outs[0].data(), outs[i].data(), outs[0].size() * sizeof(float)))
              << sn_precision_name(p) << " " << isa.name << " threads " << i + 1;
        if (p == SN_PRECISION_INT8) int8_isa.push_back(outs[0]);
      }
    if (p == SN_PRECISION_INT8 && v.size() == 2)
      for (size_t i = 0; i < 3; ++i)
        EXPECT_EQ(0, memcmp(int8_isa[i].data(), int8_isa[i + 3].data(),
                            int8_isa[i].size() * sizeof(float)))
            << "int8 AMX against AVX-512, shape " << i;
  }
}

// Without the instructions a low-precision convolution is refused with a message naming them.
TEST(KernelConvLowp, RefusedWithoutTheInstructions) {
  const Shape s = {1, 4, 4, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16};
  const fvec w((size_t)9 * 16 * 16, 0.5f);
  for (sn_precision p : {SN_PRECISION_BF16, SN_PRECISION_INT8}) {
    sn_conv_lp q{};
    q.type = p;
    q.in_scale = 1;
    const unsigned off = p == SN_PRECISION_BF16 ? SN_CPU_AVX512_BF16 | SN_CPU_AMX_BF16
                                                : SN_CPU_AVX512_VNNI | SN_CPU_AMX_INT8;
    const sn_conv_geom g = lgeom(s, off);
    sn_conv_impl *impl = nullptr;
    EXPECT_EQ(SN_ERR_INVALID, sn_conv_prepare_lp(&g, w.data(), nullptr, &q, &impl));
    EXPECT_EQ(nullptr, impl);
    EXPECT_NE(
        std::string::npos,
        std::string(sn_last_error()).find(p == SN_PRECISION_BF16 ? "AVX512-BF16" : "AVX512-VNNI"))
        << sn_last_error();
  }
}
