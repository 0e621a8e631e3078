// calib_test.cpp - calibration of int8 activation scales (src/calib.c): the thresholds do not
// depend on how the images are split into batches; the sample of rows; the method names; bad
// inputs are refused.
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

sn_net *fixture(const char *name, std::vector<float> *input, int *n) {
  H5Reader f(sntest::fixture(std::string(name) + ".expected.h5"));
  std::vector<int64_t> di;
  if (!f.read_f32("input", *input, &di)) return nullptr;
  *n = (int)di[0];
  std::string err;
  sn_net *net = sntest::fixture_net(f, name, 1, SN_POOL_NONE, &err);
  if (net && sn_weights_load(net, sntest::fixture(std::string(name) + ".h5").c_str(),
                             SN_WEIGHTS_AUTO, nullptr) != SN_OK) {
    sn_net_destroy(net);
    return nullptr;
  }
  return net;
}

// The thresholds after calibrating on all images, planned for batches of n, added in batches of
// `batch`.
std::vector<sn_act_scale> thresholds(sn_net *net, const std::vector<float> &x, int n, int batch,
                                     sn_calib_method m) {
  std::vector<sn_act_scale> out;
  sn_calibrator *c = nullptr;
  EXPECT_EQ(sn_calibrator_create(net, n, &c), SN_OK) << sn_last_error();
  if (!c) return out;
  const size_t img = x.size() / n;
  for (int i = 0; i < n; i += batch)
    EXPECT_EQ(sn_calibrator_add(c, x.data() + i * img, std::min(batch, n - i)), SN_OK);
  EXPECT_EQ(sn_calibrator_finish(c, nullptr, m), SN_OK) << sn_last_error();
  EXPECT_EQ(sn_calibrator_rows(c), n);
  sn_calibrator_destroy(c);
  for (int i = 0; i < sn_net_num_act_scales(net); ++i) {
    sn_act_scale a;
    EXPECT_EQ(sn_net_act_scale(net, i, &a), SN_OK);
    out.push_back(a);
  }
  return out;
}

TEST(Calibration, SameThresholdsAnyBatchSplit) {
  std::vector<float> x;
  int n = 0;
  sn_net *net = fixture("resnet20", &x, &n);
  ASSERT_NE(net, nullptr);
  ASSERT_GE(n, 2);
  for (sn_calib_method m : {SN_CALIB_MSE, SN_CALIB_MAX, SN_CALIB_PERCENTILE}) {
    auto a = thresholds(net, x, n, n, m), b = thresholds(net, x, n, 1, m);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_GT(a[i].threshold, 0.f) << a[i].layer;
      EXPECT_EQ(a[i].threshold, b[i].threshold) << sn_calib_method_name(m) << " " << a[i].layer;
      EXPECT_EQ(a[i].min, b[i].min);
      EXPECT_EQ(a[i].max, b[i].max);
      if (m == SN_CALIB_MAX) // the largest |x| seen, to the histogram's bin (0.8 %)
        EXPECT_NEAR(a[i].threshold, std::fmax(a[i].max, -a[i].min), 0.01 * a[i].threshold);
      else
        EXPECT_LE(a[i].threshold, std::fmax(a[i].max, -a[i].min) * 1.01f);
    }
  }
  // The stem reads the preprocessed image (signed): zero point 128; the convolutions after a
  // ReLU: 0.
  sn_act_scale s;
  ASSERT_EQ(sn_net_act_scale(net, 0, &s), SN_OK);
  EXPECT_EQ(s.zero_point, s.min < 0 ? 128 : 0);
  ASSERT_EQ(sn_net_act_scale(net, 1, &s), SN_OK);
  EXPECT_EQ(s.zero_point, 0);
  sn_net_destroy(net);
}

TEST(Calibration, RefusesNonFiniteInputAndBadBatches) {
  std::vector<float> x;
  int n = 0;
  sn_net *net = fixture("resnet20", &x, &n);
  ASSERT_NE(net, nullptr);
  sn_calibrator *c = nullptr;
  ASSERT_EQ(sn_calibrator_create(net, 2, &c), SN_OK);
  EXPECT_EQ(sn_calibrator_add(c, x.data(), 3), SN_ERR_INVALID);
  x[5] = NAN;
  EXPECT_EQ(sn_calibrator_add(c, x.data(), 1), SN_ERR_NUMERIC);
  EXPECT_NE(std::strstr(sn_last_error(), "NaN"), nullptr) << sn_last_error();
  EXPECT_EQ(sn_calibrator_rows(c), 0);
  EXPECT_EQ(sn_calibrator_finish(c, nullptr, SN_CALIB_MSE), SN_ERR_INVALID);
  sn_calibrator_destroy(c);
  sn_calibrator_destroy(nullptr);
  sn_net_destroy(net);
}

TEST(Calibration, RowSampleAndMethodNames) {
  std::vector<int64_t> r(10);
  // 4 samples of 10 rows: 0, 2, 5, 7; two ranks take two each.
  ASSERT_EQ(sn_calib_rows(10, 4, 0, 1, r.data()), 4);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], 2);
  EXPECT_EQ(r[2], 5);
  EXPECT_EQ(r[3], 7);
  ASSERT_EQ(sn_calib_rows(10, 4, 1, 2, r.data()), 2);
  EXPECT_EQ(r[0], 5);
  EXPECT_EQ(r[1], 7);
  EXPECT_EQ(sn_calib_rows(3, 100, 0, 1, r.data()), 3); // capped at the dataset
  EXPECT_EQ(sn_calib_rows(3, 0, 0, 1, r.data()), 0);
  sn_calib_method m;
  for (sn_calib_method k : {SN_CALIB_MSE, SN_CALIB_MAX, SN_CALIB_PERCENTILE}) {
    ASSERT_EQ(sn_calib_method_parse(sn_calib_method_name(k), &m), SN_OK);
    EXPECT_EQ(m, k);
  }
  EXPECT_EQ(sn_calib_method_parse("entropy", &m), SN_ERR_INVALID);
}

} // namespace
