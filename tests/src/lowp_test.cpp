// lowp_test.cpp - bf16 and int8 inference plans (src/lowp.c, src/calib.c) on whole networks: the
// parity fixtures' models (tests/fixtures) run in float32, bf16 and int8 on the fixtures' inputs.
//
// Tolerances, derived from the formats (docs/kernels.md, "Low precision: whole networks"):
//   bf16: rounding to bfloat16 (8 significant bits, nearest) perturbs each rounded value by at
//         most u = 2^-9 relative. A layer run in bf16 rounds its input and its weights, so each
//         product carries at most 2u and the layer's output, relative to the sum of |products|,
//         at most 2u; the errors of L such layers, passed on through the float32 layers after
//         them, add up to at most about 2uL relative in the features (a linear first-order bound,
//         with the layers' gains taken as 1: batch norm keeps the activations' scale). Rule:
//         ||f_bf16 - f_fp32|| / ||f_fp32|| <= 2uL on the pooled features (L2 over the batch),
//         and the same for the logits.
//   int8: activations quantized with a step s = T/255 carry at most s/2 absolute error, i.e. a
//         relative error against the threshold of 1/510; weights per channel at most 1/254 of
//         the channel's max|w|. Per layer at most 1/510 + 1/254 = 5.9e-3 of the scale of its
//         terms; L layers: Rule: relative L2 error of features and logits <= 5.9e-3 L, and cosine
//         similarity of each image's features >= 1 - (5.9e-3 L)^2 / 2.
// Also: precision fp32 stays bitwise the default plan; the refusals (a CPU without the
// instructions, simulated through cpu_off; int8 without scales; a training plan); calibration
// gives the same thresholds however the images are split into batches.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "parity_util.h"
#include "shardnet.h"
#include "test_util.h"

namespace {

using sntest::H5Reader;

struct Fx {
  std::vector<float> input;
  int n = 0;
  sn_net *net = nullptr;
};

void load(const std::string &name, Fx *fx) {
  H5Reader f(sntest::fixture(name + ".expected.h5"));
  std::vector<int64_t> di;
  ASSERT_TRUE(f.read_f32("input", fx->input, &di)) << name;
  fx->n = (int)di[0];
  std::string err;
  fx->net = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  ASSERT_NE(fx->net, nullptr) << err;
  ASSERT_EQ(
      sn_weights_load(fx->net, sntest::fixture(name + ".h5").c_str(), SN_WEIGHTS_AUTO, nullptr),
      SN_OK)
      << sn_last_error();
}

// Logits and features of one plan of `precision`.
void run(sn_net *net, sn_precision p, const Fx &fx, std::vector<float> *logits,
         std::vector<float> *feat) {
  sn_engine_options o = *sn_net_options(net);
  o.precision = p;
  ASSERT_EQ(sn_net_set_options(net, &o), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_plan(net, fx.n, 0), SN_OK) << sn_last_error();
  int oh, ow, oc;
  sn_net_output_shape(net, &oh, &ow, &oc);
  logits->assign((size_t)fx.n * oh * ow * oc, 0.f);
  ASSERT_EQ(sn_net_forward(net, fx.input.data(), fx.n, logits->data()), SN_OK) << sn_last_error();
  const int d = sn_net_feature_dim(net);
  feat->assign(sn_net_features(net), sn_net_features(net) + (size_t)fx.n * d);
}

double rel_l2(const std::vector<float> &a, const std::vector<float> &ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

double min_cosine(const std::vector<float> &a, const std::vector<float> &b, int n) {
  const size_t d = a.size() / n;
  double worst = 1;
  for (int i = 0; i < n; ++i) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t k = i * d; k < (i + 1) * d; ++k) {
      ab += (double)a[k] * b[k];
      aa += (double)a[k] * a[k];
      bb += (double)b[k] * b[k];
    }
    worst = std::fmin(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

// Layers run in low precision under the default fp32_layers (the stem and classifier kept).
int lowp_layers(const sn_net *net) { return sn_net_num_act_scales(net) - 2; }

bool have(sn_precision p) {
  const unsigned f = sn_cpu_features();
  return p == SN_PRECISION_BF16
             ? (f & SN_CPU_AVX512) && (f & (SN_CPU_AVX512_BF16 | SN_CPU_AMX_BF16))
             : (f & SN_CPU_AVX512) && (f & (SN_CPU_AVX512_VNNI | SN_CPU_AMX_INT8));
}

void calibrate(sn_net *net, const Fx &fx, int batch) {
  sn_calibrator *c = nullptr;
  ASSERT_EQ(sn_calibrator_create(net, batch, &c), SN_OK) << sn_last_error();
  const size_t img = fx.input.size() / fx.n;
  for (int i = 0; i < fx.n; i += batch) {
    const int b = std::min(batch, fx.n - i);
    ASSERT_EQ(sn_calibrator_add(c, fx.input.data() + i * img, b), SN_OK) << sn_last_error();
  }
  ASSERT_EQ(sn_calibrator_finish(c, nullptr, SN_CALIB_MSE), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_calibrator_rows(c), fx.n);
  sn_calibrator_destroy(c);
}

class LowpNet : public ::testing::TestWithParam<const char *> {};

TEST_P(LowpNet, Bf16WithinFormatBound) {
  if (!have(SN_PRECISION_BF16)) GTEST_SKIP() << "no AVX512-BF16 / AMX-BF16";
  Fx fx;
  ASSERT_NO_FATAL_FAILURE(load(GetParam(), &fx));
  std::vector<float> l32, f32, l16, f16;
  ASSERT_NO_FATAL_FAILURE(run(fx.net, SN_PRECISION_FP32, fx, &l32, &f32));
  ASSERT_NO_FATAL_FAILURE(run(fx.net, SN_PRECISION_BF16, fx, &l16, &f16));
  const int L = lowp_layers(fx.net);
  const double tol = 2 * std::ldexp(1.0, -9) * L;
  const double ef = rel_l2(f16, f32), el = rel_l2(l16, l32);
  std::printf("  %s bf16 (%d layers): features %.2e, logits %.2e, bound %.2e, cos %.6f\n",
              GetParam(), L, ef, el, tol, min_cosine(f16, f32, fx.n));
  EXPECT_LE(ef, tol);
  EXPECT_LE(el, tol);
  sn_net_destroy(fx.net);
}

TEST_P(LowpNet, Int8WithinFormatBound) {
  if (!have(SN_PRECISION_INT8)) GTEST_SKIP() << "no AVX512-VNNI / AMX-INT8";
  Fx fx;
  ASSERT_NO_FATAL_FAILURE(load(GetParam(), &fx));
  std::vector<float> l32, f32, l8, f8;
  ASSERT_NO_FATAL_FAILURE(run(fx.net, SN_PRECISION_FP32, fx, &l32, &f32));
  ASSERT_NO_FATAL_FAILURE(calibrate(fx.net, fx, fx.n));
  ASSERT_NO_FATAL_FAILURE(run(fx.net, SN_PRECISION_INT8, fx, &l8, &f8));
  const int L = lowp_layers(fx.net);
  const double tol = (1.0 / 510 + 1.0 / 254) * L;
  const double ef = rel_l2(f8, f32), el = rel_l2(l8, l32), cs = min_cosine(f8, f32, fx.n);
  std::printf("  %s int8 (%d layers): features %.2e, logits %.2e, bound %.2e, cos %.6f\n",
              GetParam(), L, ef, el, tol, cs);
  EXPECT_LE(ef, tol);
  EXPECT_LE(el, tol);
  EXPECT_GE(cs, 1 - tol * tol / 2);
  sn_net_destroy(fx.net);
}

// Each image's result does not depend on the batch it ran in (hence not on the rank count of a
// job, whose ranks split the rows): batch n against one image at a time, bitwise; and int8 on the
// AVX-512 kernels against AMX, bitwise (integer sums are exact in both).
TEST(LowpPlan, SameBitsAnyBatchAndIsa) {
  for (sn_precision p : {SN_PRECISION_BF16, SN_PRECISION_INT8}) {
    if (!have(p)) continue;
    Fx fx;
    ASSERT_NO_FATAL_FAILURE(load("resnet20", &fx));
    if (p == SN_PRECISION_INT8) ASSERT_NO_FATAL_FAILURE(calibrate(fx.net, fx, 3));
    std::vector<float> all, feat;
    ASSERT_NO_FATAL_FAILURE(run(fx.net, p, fx, &all, &feat));
    const size_t img = fx.input.size() / fx.n, k = all.size() / fx.n;
    std::vector<float> one(k);
    for (int i = 0; i < fx.n; ++i) {
      ASSERT_EQ(sn_net_forward(fx.net, fx.input.data() + i * img, 1, one.data()), SN_OK);
      EXPECT_EQ(std::memcmp(one.data(), &all[i * k], k * sizeof(float)), 0)
          << sn_precision_name(p) << ": image " << i << " alone differs from the batch";
    }
    const unsigned amx = p == SN_PRECISION_INT8 ? SN_CPU_AMX_INT8 : SN_CPU_AMX_BF16;
    if (p == SN_PRECISION_INT8 && (sn_cpu_features() & amx)) {
      sn_engine_options o = *sn_net_options(fx.net);
      o.cpu_off = amx;
      ASSERT_EQ(sn_net_set_options(fx.net, &o), SN_OK);
      std::vector<float> avx, f2;
      ASSERT_NO_FATAL_FAILURE(run(fx.net, p, fx, &avx, &f2));
      EXPECT_EQ(std::memcmp(avx.data(), all.data(), all.size() * sizeof(float)), 0)
          << "int8 on AVX512-VNNI differs from AMX";
    }
    sn_net_destroy(fx.net);
  }
}

void no_probe(void *, const char *, const char *, const float *, int, int, int, int) {}

// An int8 convolution whose float32 output only another one adds as its residual (a bottleneck
// block's last convolution and its projection) runs inside that one's call, its output never
// stored: the logits are bit for bit those of the two run apart (as they run while a probe
// watches every layer), and the profile names the paired layers, one per stage of a full-width
// resnet50 (the reduced-width fixtures have too few channels to read in place).
TEST(LowpPlan, PairedConvolutionsMatchTheirSeparateRun) {
  if (!have(SN_PRECISION_INT8)) GTEST_SKIP() << "no AVX512-VNNI / AMX-INT8";
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet50");
  cfg.height = cfg.width = 32;
  cfg.classes = 10;
  Fx fx;
  ASSERT_EQ(sn_net_create(&cfg, 7, &fx.net), SN_OK) << sn_last_error();
  fx.n = 3;
  fx.input.resize((size_t)fx.n * 32 * 32 * 3);
  uint64_t st = 11;
  for (float &v : fx.input) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    v = (float)((st >> 40) / 16777216.0 * 2 - 1);
  }
  ASSERT_NO_FATAL_FAILURE(calibrate(fx.net, fx, fx.n));
  sn_engine_options o = *sn_net_options(fx.net);
  o.profile = 1;
  ASSERT_EQ(sn_net_set_options(fx.net, &o), SN_OK);
  std::vector<float> paired, apart, feat;
  ASSERT_NO_FATAL_FAILURE(run(fx.net, SN_PRECISION_INT8, fx, &paired, &feat));
  sn_layer_profile *rows = nullptr;
  int nrows = 0;
  long passes = 0;
  ASSERT_EQ(sn_net_profile(fx.net, &rows, &nrows, &passes), SN_OK);
  int npaired = 0;
  for (int i = 0; i < nrows; ++i)
    if (!std::strcmp(rows[i].algorithm, "paired")) {
      npaired++;
      EXPECT_EQ(rows[i].forward_s, 0.0) << rows[i].layer << " ran alone";
    }
  free(rows);
  const bool amx = sn_cpu_features() & SN_CPU_AMX_INT8; // pairs are AVX-512 only
  EXPECT_EQ(npaired, amx ? 0 : 4) << "one pair per stage";
  sn_net_set_probe(fx.net, no_probe, nullptr);
  apart.assign(paired.size(), 0.f);
  ASSERT_EQ(sn_net_forward(fx.net, fx.input.data(), fx.n, apart.data()), SN_OK);
  EXPECT_EQ(std::memcmp(apart.data(), paired.data(), paired.size() * sizeof(float)), 0);
  float sum = 0;
  for (float v : paired)
    sum += std::fabs(v);
  EXPECT_GT(sum, 0.f) << "the logits are not all zero";
  sn_net_destroy(fx.net);
}

// fp32 named explicitly is the default plan, bit for bit.
TEST(LowpPlan, Fp32IsTheDefaultPlan) {
  Fx fx;
  ASSERT_NO_FATAL_FAILURE(load("resnet20", &fx));
  std::vector<float> a, fa, b, fb;
  ASSERT_EQ(sn_net_plan(fx.net, fx.n, 0), SN_OK);
  a.resize((size_t)fx.n * 10);
  ASSERT_EQ(sn_net_forward(fx.net, fx.input.data(), fx.n, a.data()), SN_OK);
  ASSERT_NO_FATAL_FAILURE(run(fx.net, SN_PRECISION_FP32, fx, &b, &fb));
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  sn_net_destroy(fx.net);
}

// A CPU without the instructions (simulated with cpu_off), int8 without scales and a training
// plan are refused with messages that say why; the net still plans fp32 afterwards.
TEST(LowpPlan, Refusals) {
  Fx fx;
  ASSERT_NO_FATAL_FAILURE(load("resnet20", &fx));
  sn_net *net = fx.net;
  sn_engine_options o = *sn_net_options(net);
  struct {
    sn_precision p;
    unsigned off;
    const char *needs;
  } cases[] = {{SN_PRECISION_BF16, SN_CPU_AVX512_BF16 | SN_CPU_AMX_BF16, "AVX512-BF16"},
               {SN_PRECISION_INT8, SN_CPU_AVX512_VNNI | SN_CPU_AMX_INT8, "AVX512-VNNI"},
               {SN_PRECISION_BF16, SN_CPU_AVX512, "AVX-512"}};
  for (const auto &c : cases) {
    o.precision = c.p;
    o.cpu_off = c.off;
    ASSERT_EQ(sn_net_set_options(net, &o), SN_OK);
    EXPECT_EQ(sn_net_plan(net, 2, 0), SN_ERR_INVALID);
    EXPECT_NE(std::strstr(sn_last_error(), c.needs), nullptr) << sn_last_error();
    EXPECT_NE(std::strstr(sn_last_error(), sn_precision_name(c.p)), nullptr) << sn_last_error();
  }
  o.cpu_off = 0;
  if (have(SN_PRECISION_INT8)) {
    o.precision = SN_PRECISION_INT8;
    ASSERT_EQ(sn_net_set_options(net, &o), SN_OK);
    EXPECT_EQ(sn_net_plan(net, 2, 0), SN_ERR_INVALID);
    EXPECT_NE(std::strstr(sn_last_error(), "no int8 activation scale"), nullptr) << sn_last_error();
  }
  o.precision = SN_PRECISION_BF16;
  ASSERT_EQ(sn_net_set_options(net, &o), SN_OK);
  EXPECT_EQ(sn_net_plan(net, 2, 1), SN_ERR_INVALID);
  EXPECT_NE(std::strstr(sn_last_error(), "training runs in fp32"), nullptr) << sn_last_error();
  o.precision = SN_PRECISION_FP32;
  ASSERT_EQ(sn_net_set_options(net, &o), SN_OK);
  EXPECT_EQ(sn_net_plan(net, 2, 0), SN_OK) << sn_last_error();
  sn_net_destroy(net);
}

// Activation scales: bad values and unknown layers are refused; scale and zero point follow the
// rule of shardnet.h.
TEST(LowpPlan, ActivationScales) {
  Fx fx;
  ASSERT_NO_FATAL_FAILURE(load("resnet20", &fx));
  sn_net *net = fx.net;
  sn_act_scale a;
  ASSERT_EQ(sn_net_act_scale(net, 1, &a), SN_OK);
  EXPECT_EQ(a.threshold, 0.f);
  const std::string name = a.layer;
  EXPECT_EQ(sn_net_set_act_scale(net, name.c_str(), 2.55f, 0, 3), SN_OK);
  ASSERT_EQ(sn_net_act_scale(net, 1, &a), SN_OK);
  EXPECT_EQ(a.zero_point, 0);
  EXPECT_FLOAT_EQ(a.scale, 0.01f);
  EXPECT_EQ(sn_net_set_act_scale(net, name.c_str(), 1.27f, -1, 3), SN_OK);
  ASSERT_EQ(sn_net_act_scale(net, 1, &a), SN_OK);
  EXPECT_EQ(a.zero_point, 128);
  EXPECT_FLOAT_EQ(a.scale, 0.01f);
  EXPECT_EQ(sn_net_set_act_scale(net, name.c_str(), 0, 0, 1), SN_ERR_INVALID);
  EXPECT_EQ(sn_net_set_act_scale(net, name.c_str(), NAN, 0, 1), SN_ERR_INVALID);
  EXPECT_EQ(sn_net_set_act_scale(net, name.c_str(), 1, 2, 1), SN_ERR_INVALID);
  EXPECT_EQ(sn_net_set_act_scale(net, "nosuchlayer", 1, 0, 1), SN_ERR_NOTFOUND);
  EXPECT_EQ(sn_net_act_scale(net, sn_net_num_act_scales(net), &a), SN_ERR_INVALID);
  sn_net_destroy(net);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LowpNet,
                         ::testing::Values("resnet20", "resnet18", "resnet50", "keras_resnet50v2"),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                           return std::string(i.param);
                         });

} // namespace
