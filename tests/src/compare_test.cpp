// compare_test.cpp - the layer probe (sn_net_set_probe, src/net.c) and the comparison of plans
// built on it (src/compare.c), on the resnet20 fixture (tests/fixtures): the probe sees every layer
// the plan runs, in order, with the values the pass computed (an int8 plan's uint8 tensors
// dequantized); the comparison's numbers for the output and the features equal those computed
// independently from sn_net_forward's results; plans that differ are refused.
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
};

sn_net *load(const char *name, Fx *fx) {
  H5Reader f(sntest::fixture(std::string(name) + ".expected.h5"));
  std::vector<int64_t> di;
  if (!f.read_f32("input", fx->input, &di)) return nullptr;
  fx->n = (int)di[0];
  std::string err;
  sn_net *net = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  if (!net) return nullptr;
  const std::string w = sntest::fixture(std::string(name) + ".h5");
  if (sn_weights_load(net, w.c_str(), SN_WEIGHTS_AUTO, nullptr) != SN_OK) {
    sn_net_destroy(net);
    return nullptr;
  }
  return net;
}

bool have_int8() {
  const unsigned f = sn_cpu_features();
  return (f & SN_CPU_AVX512) && (f & (SN_CPU_AVX512_VNNI | SN_CPU_AMX_INT8));
}

void calibrate(sn_net *net, const Fx &fx) {
  sn_calibrator *c = nullptr;
  ASSERT_EQ(sn_calibrator_create(net, fx.n, &c), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_calibrator_add(c, fx.input.data(), fx.n), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_calibrator_finish(c, nullptr, SN_CALIB_MSE), SN_OK) << sn_last_error();
  sn_calibrator_destroy(c);
}

void plan(sn_net *net, sn_precision p, int batch, unsigned fuse = SN_FUSE_ALL, int profile = 0) {
  sn_engine_options o = *sn_net_options(net);
  o.precision = p;
  o.fuse = fuse;
  o.profile = profile;
  ASSERT_EQ(sn_net_set_options(net, &o), SN_OK) << sn_last_error();
  ASSERT_EQ(sn_net_plan(net, batch, 0), SN_OK) << sn_last_error();
}

// Every probe call of a pass: name and a copy of the values.
struct Seen {
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;
};
void record(void *user, const char *layer, const char *kind, const float *y, int n, int h, int w,
            int c) {
  (void)kind;
  Seen *s = static_cast<Seen *>(user);
  s->names.emplace_back(layer);
  s->values.emplace_back(y, y + (size_t)n * h * w * c);
}

double rel_l2(const std::vector<float> &a, const std::vector<float> &ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

// Per-image cosines of (n, d) arrays: mean and min.
void cosines(const std::vector<float> &a, const std::vector<float> &b, int n, double *mean,
             double *mn) {
  const size_t d = a.size() / n;
  *mean = 0;
  *mn = 1;
  for (int i = 0; i < n; ++i) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t k = i * d; k < (i + 1) * d; ++k) {
      ab += (double)a[k] * b[k];
      aa += (double)a[k] * a[k];
      bb += (double)b[k] * b[k];
    }
    const double c = ab / std::sqrt(aa * bb);
    *mean += c / n;
    *mn = std::fmin(*mn, c);
  }
}

int argmax(const float *v, int k) {
  int b = 0;
  for (int i = 1; i < k; ++i)
    if (v[i] > v[b]) b = i;
  return b;
}

// fp32: one call per layer the plan runs (the profile's rows, in order); the last call shows the
// output sn_net_forward returns and one shows the pooled features, bit for bit.
TEST(Probe, SeesEveryLayerRunWithItsOutput) {
  Fx fx;
  sn_net *net = load("resnet20", &fx);
  ASSERT_NE(net, nullptr) << sn_last_error();
  ASSERT_NO_FATAL_FAILURE(plan(net, SN_PRECISION_FP32, fx.n, SN_FUSE_ALL, 1));
  Seen seen;
  sn_net_set_probe(net, record, &seen);
  std::vector<float> out((size_t)fx.n * 10);
  ASSERT_EQ(sn_net_forward(net, fx.input.data(), fx.n, out.data()), SN_OK) << sn_last_error();
  sn_layer_profile *rows = nullptr;
  int nrows = 0;
  long passes = 0;
  ASSERT_EQ(sn_net_profile(net, &rows, &nrows, &passes), SN_OK);
  ASSERT_EQ((int)seen.names.size(), nrows);
  for (int i = 0; i < nrows; ++i)
    EXPECT_EQ(seen.names[i], rows[i].layer) << "call " << i;
  free(rows);
  ASSERT_EQ(seen.values.back().size(), out.size());
  EXPECT_EQ(std::memcmp(seen.values.back().data(), out.data(), out.size() * sizeof(float)), 0);
  const int d = sn_net_feature_dim(net);
  const float *feat = sn_net_features(net);
  int found = 0;
  for (const auto &v : seen.values)
    found += v.size() == (size_t)fx.n * d && !std::memcmp(v.data(), feat, v.size() * sizeof(float));
  EXPECT_EQ(found, 1);
  // removed: the next pass calls nothing
  sn_net_set_probe(net, nullptr, nullptr);
  const size_t calls = seen.names.size();
  ASSERT_EQ(sn_net_forward(net, fx.input.data(), fx.n, out.data()), SN_OK);
  EXPECT_EQ(seen.names.size(), calls);
  sn_net_destroy(net);
}

// int8: the same layers as fp32, and every layer's values within the whole-network bound of
// lowp_test.cpp (5.9e-3 per int8 layer): uint8 tensors shown as stored would be far off.
TEST(Probe, Int8ShowsTheSameLayersDequantized) {
  if (!have_int8()) GTEST_SKIP() << "no AVX512-VNNI / AMX-INT8";
  Fx fx;
  sn_net *net = load("resnet20", &fx);
  ASSERT_NE(net, nullptr) << sn_last_error();
  ASSERT_NO_FATAL_FAILURE(calibrate(net, fx));
  Seen f32, i8;
  ASSERT_NO_FATAL_FAILURE(plan(net, SN_PRECISION_FP32, fx.n));
  sn_net_set_probe(net, record, &f32);
  ASSERT_EQ(sn_net_forward(net, fx.input.data(), fx.n, nullptr), SN_OK);
  ASSERT_NO_FATAL_FAILURE(plan(net, SN_PRECISION_INT8, fx.n)); // the probe survives the replan
  sn_net_set_probe(net, record, &i8);
  ASSERT_EQ(sn_net_forward(net, fx.input.data(), fx.n, nullptr), SN_OK);
  ASSERT_EQ(f32.names, i8.names);
  const double bound = (1.0 / 510 + 1.0 / 254) * (sn_net_num_act_scales(net) - 2);
  for (size_t k = 0; k < f32.names.size(); ++k) {
    ASSERT_EQ(f32.values[k].size(), i8.values[k].size()) << f32.names[k];
    EXPECT_LE(rel_l2(i8.values[k], f32.values[k]), bound) << f32.names[k];
  }
  sn_net_destroy(net);
}

// The comparison's output and feature rows equal the errors computed from the passes' own
// results; a plan against an identical one gives zero error and cosine 1.
TEST(Compare, AgreesWithIndependentErrors) {
  if (!have_int8()) GTEST_SKIP() << "no AVX512-VNNI / AMX-INT8";
  Fx fx;
  sn_net *ref = load("resnet20", &fx), *same = load("resnet20", &fx), *q = load("resnet20", &fx);
  ASSERT_TRUE(ref && same && q) << sn_last_error();
  ASSERT_NO_FATAL_FAILURE(calibrate(q, fx));
  const int b = 2; // batches of 2 and a last one of 1 when n is odd
  ASSERT_NO_FATAL_FAILURE(plan(ref, SN_PRECISION_FP32, b));
  ASSERT_NO_FATAL_FAILURE(plan(same, SN_PRECISION_FP32, b));
  ASSERT_NO_FATAL_FAILURE(plan(q, SN_PRECISION_INT8, b));
  sn_net *tests[2] = {same, q};
  sn_compare *c = nullptr;
  ASSERT_EQ(sn_compare_create(ref, tests, 2, &c), SN_OK) << sn_last_error();
  const size_t img = fx.input.size() / fx.n;
  const int d = sn_net_feature_dim(ref);
  std::vector<float> l32, l8, f32, f8, lo(b * 10);
  for (int i = 0; i < fx.n; i += b) {
    const int m = std::min(b, fx.n - i);
    ASSERT_EQ(sn_compare_add(c, fx.input.data() + i * img, m), SN_OK) << sn_last_error();
    // the same batch again, outside the comparison
    ASSERT_EQ(sn_net_forward(ref, fx.input.data() + i * img, m, lo.data()), SN_OK);
    l32.insert(l32.end(), lo.begin(), lo.begin() + m * 10);
    f32.insert(f32.end(), sn_net_features(ref), sn_net_features(ref) + (size_t)m * d);
    ASSERT_EQ(sn_net_forward(q, fx.input.data() + i * img, m, lo.data()), SN_OK);
    l8.insert(l8.end(), lo.begin(), lo.begin() + m * 10);
    f8.insert(f8.end(), sn_net_features(q), sn_net_features(q) + (size_t)m * d);
  }
  ASSERT_EQ(sn_compare_finish(c, nullptr), SN_OK);
  EXPECT_EQ(sn_compare_add(c, fx.input.data(), 1), SN_ERR_INVALID);
  EXPECT_EQ(sn_compare_images(c), fx.n);
  int outputs = 0, features = 0, changed = 0;
  for (int i = 0; i < sn_compare_num_layers(c); ++i) {
    sn_layer_error e;
    ASSERT_EQ(sn_compare_layer(c, 0, i, &e), SN_OK);
    EXPECT_EQ(e.rel_l2, 0.0) << e.layer;
    EXPECT_EQ(e.cos_min, 1.0) << e.layer;
    ASSERT_EQ(sn_compare_layer(c, 1, i, &e), SN_OK);
    changed += e.rel_l2 > 0; // all but the float32 stem (and what only it feeds)
    if (e.role & SN_LAYER_IS_OUTPUT) {
      outputs++;
      EXPECT_NEAR(e.rel_l2, rel_l2(l8, l32), 1e-9 * rel_l2(l8, l32));
    }
    if (e.role & SN_LAYER_IS_FEATURES) {
      features++;
      double mean, mn;
      cosines(f8, f32, fx.n, &mean, &mn);
      EXPECT_NEAR(e.rel_l2, rel_l2(f8, f32), 1e-9 * rel_l2(f8, f32));
      EXPECT_NEAR(e.cos_mean, mean, 1e-12);
      EXPECT_NEAR(e.cos_min, mn, 1e-12);
      EXPECT_EQ(e.values, d);
    }
  }
  EXPECT_EQ(outputs, 1);
  EXPECT_EQ(features, 1);
  EXPECT_GE(changed, sn_compare_num_layers(c) - 2);
  int agree = 0;
  for (int i = 0; i < fx.n; ++i)
    agree += argmax(&l8[i * 10], 10) == argmax(&l32[i * 10], 10);
  EXPECT_EQ(sn_compare_top1_agreement(c, 0), 1.0);
  EXPECT_DOUBLE_EQ(sn_compare_top1_agreement(c, 1), (double)agree / fx.n);
  sn_layer_error e;
  EXPECT_EQ(sn_compare_layer(c, 2, 0, &e), SN_ERR_INVALID);
  sn_compare_destroy(c);
  sn_net_destroy(ref);
  sn_net_destroy(same);
  sn_net_destroy(q);
}

// Plans that run other layers (other fusion options), a training plan and an unplanned net are
// refused, naming what differs.
TEST(Compare, RefusesPlansThatDiffer) {
  Fx fx;
  sn_net *ref = load("resnet20", &fx), *other = load("resnet20", &fx);
  ASSERT_TRUE(ref && other) << sn_last_error();
  sn_compare *c = nullptr;
  ASSERT_NO_FATAL_FAILURE(plan(ref, SN_PRECISION_FP32, 2));
  EXPECT_EQ(sn_compare_create(ref, &other, 1, &c), SN_ERR_INVALID);
  ASSERT_NO_FATAL_FAILURE(plan(other, SN_PRECISION_FP32, 2, 0));
  EXPECT_EQ(sn_compare_create(ref, &other, 1, &c), SN_ERR_INVALID);
  EXPECT_NE(std::strstr(sn_last_error(), "same fusion options"), nullptr) << sn_last_error();
  ASSERT_EQ(sn_net_plan(other, 2, 1), SN_OK);
  EXPECT_EQ(sn_compare_create(ref, &other, 1, &c), SN_ERR_INVALID);
  EXPECT_EQ(c, nullptr);
  sn_net_destroy(ref);
  sn_net_destroy(other);
}

} // namespace
